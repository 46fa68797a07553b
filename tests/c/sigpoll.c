/*
 * A signal that arrives while a forked child's first call on a
 * notification pipe is still working, before it would sleep: the
 * child installs a handler (sigaction without SA_RESTART) that sets a
 * flag, tells the parent it is ready, and calls argv[1] ("poll",
 * "ppoll", "select", "pselect", "read", "readv", "epoll_wait",
 * "epoll_pwait" or "epoll_pwait2") on the pipe's read end, which has no
 * record and never will (the epoll modes make their epoll instance and
 * add the read end in that window too), or "splice-out" (splice from
 * the read end into a full ordinary pipe, which waits for room) or
 * "splice-in" (from an empty ordinary pipe with a writer into the write
 * end, which waits for data); the parent sends the signal as soon as it
 * hears the child is ready, so it lands inside the call (a child's first
 * emulated call connects to the kernel). The kernel checks for a signal
 * before it sleeps, so each call fails with EINTR and the child exits 0;
 * a call that sleeps after the handler ran is ended by alarm(2) after 3
 * s (SIGALRM's default: the child dies of it), which is counted as a lost
 * signal. argv[2]: rounds (default 40). Prints "<call>: N rounds, L lost,
 * E other" (other: the call returned something besides EINTR).
 * With argv[3] "plain", an ordinary pipe: the host's own kernel.
 * argv[4]: the parent's delay in microseconds between the child's
 * "ready" and the signal (default 300; a negative one, a random delay
 * up to its size each round). The calls with a mask argument
 * (ppoll, pselect, epoll_pwait, epoll_pwait2) are called with SIGTERM
 * blocked and let in only by that mask.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int wfd_g, full_g[2];
static int child(const char *call, int rfd, int ready)
{
	struct sigaction sa;
	char buf[256];
	long r;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) < 0)
		return 2;
	alarm(3);
	if (strcmp(call, "ppoll") == 0 || strcmp(call, "pselect") == 0 ||
	    strcmp(call, "epoll_pwait") == 0 || strcmp(call, "epoll_pwait2") == 0) {
		/* Held until ppoll's own mask lets it in: the one call whose
		 * window the program can close itself. */
		sigset_t term;
		sigemptyset(&term);
		sigaddset(&term, SIGTERM);
		sigprocmask(SIG_BLOCK, &term, NULL);
	}
	if (write(ready, "r", 1) != 1)
		return 2;
	if (strcmp(call, "poll") == 0) {
		struct pollfd p = { .fd = rfd, .events = POLLIN };
		r = poll(&p, 1, -1);
	} else if (strcmp(call, "ppoll") == 0) {
		struct pollfd p = { .fd = rfd, .events = POLLIN };
		sigset_t none;
		sigemptyset(&none);
		r = ppoll(&p, 1, NULL, &none);
	} else if (strcmp(call, "select") == 0) {
		fd_set s;
		FD_ZERO(&s);
		FD_SET(rfd, &s);
		r = select(rfd + 1, &s, NULL, NULL, NULL);
	} else if (strcmp(call, "pselect") == 0) {
		fd_set s;
		sigset_t none;
		sigemptyset(&none);
		FD_ZERO(&s);
		FD_SET(rfd, &s);
		r = pselect(rfd + 1, &s, NULL, NULL, NULL, &none);
	} else if (strncmp(call, "epoll", 5) == 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = rfd }, out;
		int ep = epoll_create1(EPOLL_CLOEXEC);
		sigset_t none;
		sigemptyset(&none);
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, rfd, &ev) < 0)
			return 3;
		if (strcmp(call, "epoll_wait") == 0)
			r = epoll_wait(ep, &out, 1, -1);
		else if (strcmp(call, "epoll_pwait") == 0)
			r = epoll_pwait(ep, &out, 1, -1, &none);
		else
			r = epoll_pwait2(ep, &out, 1, NULL, &none);
	} else if (strcmp(call, "splice-out") == 0) {
		r = splice(rfd, NULL, full_g[1], NULL, 16, 0);
	} else if (strcmp(call, "splice-in") == 0) {
		r = splice(full_g[0], NULL, wfd_g, NULL, 16, 0);
	} else if (strcmp(call, "readv") == 0) {
		struct iovec iov = { buf, sizeof(buf) };
		r = readv(rfd, &iov, 1);
	} else {
		r = read(rfd, buf, sizeof(buf));
	}
	if (r < 0 && errno == EINTR && stop)
		return 0;
	return 4;
}

int main(int argc, char **argv)
{
	const char *call = argc > 1 ? argv[1] : "poll";
	int rounds = argc > 2 ? atoi(argv[2]) : 40;
	int plain = argc > 3 && strcmp(argv[3], "plain") == 0;
	int delay = argc > 4 ? atoi(argv[4]) : 300;
	int fds[2], lost = 0, other = 0;

	if (plain ? pipe(fds) < 0 : pipe2(fds, 0x80) < 0) {
		perror("pipe");
		return 1;
	}
	if (!plain && ioctl(fds[0], _IO('W', 0x60), 16) < 0) {
		perror("set size");
		return 1;
	}
	wfd_g = fds[1];
	for (int i = 0; i < rounds; i++) {
		int ready[2], w;
		if (pipe(full_g) < 0)
			return 1;
		if (strcmp(call, "splice-out") == 0) {
			fcntl(full_g[1], F_SETFL, O_NONBLOCK);
			char junk[4096] = {0};
			while (write(full_g[1], junk, sizeof junk) > 0)
				;
			fcntl(full_g[1], F_SETFL, 0);
		}
		char c;
		pid_t pid;

		if (pipe(ready) < 0) {
			perror("pipe");
			return 1;
		}
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			close(ready[0]);
			_exit(child(call, fds[0], ready[1]));
		}
		close(ready[1]);
		if (read(ready[0], &c, 1) != 1) {
			perror("ready");
			return 1;
		}
		close(ready[0]);
		/* A negative delay: a random one up to its size, each round. */
		usleep(delay < 0 ? (unsigned)rand() % (unsigned)-delay : (unsigned)delay);
		kill(pid, SIGTERM);
		if (waitpid(pid, &w, 0) != pid) {
			perror("waitpid");
			return 1;
		}
		close(full_g[0]);
		close(full_g[1]);
		if (WIFSIGNALED(w) && WTERMSIG(w) == SIGALRM)
			lost++;
		else if (!WIFEXITED(w) || WEXITSTATUS(w) != 0)
			other++;
	}
	printf("%s: %d rounds, %d lost, %d other\n", call, rounds, lost, other);
	return 0;
}

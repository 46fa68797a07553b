/*
 * Signals arriving inside each blocking call on a notification pipe, with
 * a handler installed without and with SA_RESTART (argv[1]: "intr" or
 * "restart"). A consumer thread sleeps in read(), readv(), poll(),
 * select() or epoll_wait(); the main thread sends it SIGUSR1 100 ms
 * later, then updates the watched key 100 ms after that. Prints one line
 * per call: "<call> EINTR" when the call failed with EINTR, or
 * "<call> <n>" when it returned n (read: the record's 16 bytes; the
 * others: 1 ready descriptor), and the record is drained before the next.
 * The kernel's rules (signal(7)): a pipe's read() and readv() are
 * restarted under SA_RESTART and fail with EINTR without it; poll(),
 * select() and epoll_wait() are never restarted after a handler ran.
 * With argv[2] "plain" the pipe is an ordinary one and the event a
 * 16-byte write: what the host's own kernel does, to compare with.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static int fds[2];
static const char *call;
static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
	(void)sig;
	handled++;
}

static void *consumer(void *arg)
{
	unsigned char buf[256];
	long r;
	(void)arg;
	if (strcmp(call, "read") == 0) {
		r = read(fds[0], buf, sizeof(buf));
	} else if (strcmp(call, "readv") == 0) {
		struct iovec iov = { buf, sizeof(buf) };
		r = readv(fds[0], &iov, 1);
	} else if (strcmp(call, "poll") == 0) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		r = poll(&p, 1, 5000);
	} else if (strcmp(call, "select") == 0) {
		fd_set s;
		struct timeval tv = { .tv_sec = 5 };
		FD_ZERO(&s);
		FD_SET(fds[0], &s);
		r = select(fds[0] + 1, &s, NULL, NULL, &tv);
	} else {
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fds[0] }, out;
		int ep = epoll_create1(EPOLL_CLOEXEC);
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev) < 0)
			return (void *)-2L;
		r = epoll_wait(ep, &out, 1, 5000);
		close(ep);
	}
	if (r < 0)
		r = errno == EINTR ? -1 : -2;
	return (void *)r;
}

int main(int argc, char **argv)
{
	static const char *calls[] = { "read", "readv", "poll", "select", "epoll_wait" };
	int restart = argc > 1 && strcmp(argv[1], "restart") == 0;
	int plain = argc > 2 && strcmp(argv[2], "plain") == 0;
	long key = 0;
	struct sigaction sa;
	unsigned char buf[256];

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0) {
		perror("sigaction");
		return 1;
	}
	if (plain) {
		if (pipe(fds) < 0) {
			perror("pipe");
			return 1;
		}
	} else {
		if (pipe2(fds, 0x80) < 0 || ioctl(fds[0], _IO('W', 0x60), 16) < 0) {
			perror("notification pipe");
			return 1;
		}
		key = syscall(SYS_add_key, "user", "sig", "x", 1, -3);
		if (key < 0 || syscall(SYS_keyctl, 32, key, fds[0], 1) < 0) {
			perror("key");
			return 1;
		}
	}
	for (unsigned i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		pthread_t t;
		void *ret;
		call = calls[i];
		handled = 0;
		pthread_create(&t, NULL, consumer, NULL);
		usleep(100000);
		pthread_kill(t, SIGUSR1);
		usleep(100000);
		if (plain ? write(fds[1], "0123456789abcdef", 16) != 16
			  : syscall(SYS_keyctl, 2, key, "y", 1) < 0) {
			perror("event");
			return 1;
		}
		pthread_join(t, &ret);
		if ((long)ret == -1)
			printf("%s EINTR\n", call);
		else if ((long)ret == -2)
			printf("%s error %s\n", call, strerror(errno));
		else
			printf("%s %ld\n", call, (long)ret);
		if (!handled)
			printf("%s: the handler did not run\n", call);
		/* Drain what the update queued (a read the signal cut short
		 * left the record there). */
		if ((long)ret != 16 && read(fds[0], buf, sizeof(buf)) != 16)
			printf("%s: no record after\n", call);
	}
	return 0;
}

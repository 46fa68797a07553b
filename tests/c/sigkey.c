/*
 * A signal that arrives while a forked child's first key call is still
 * working, before the wait for a key under construction has begun.
 *
 * The main program has another process construct a key (a child's
 * request_key with call-out information; this program is the helper,
 * `watchq exec --request-key`, and holds the construction until a file
 * named in the call-out exists). Each round forks a child that installs
 * a SIGUSR1 handler (with SA_RESTART for the "-restart" modes), tells the
 * parent it is ready and makes its call on that key, its first emulated
 * call (it connects to the kernel); the parent sends SIGUSR1 argv[3]
 * microseconds after it hears the child is ready (default 1000; the test uses 100), so the
 * signal lands while the call is still looking, or already waiting.
 *
 * The kernel's wait for the construction (`wait_for_key_construction()`,
 * interruptible) ends at once on a pending signal with -ERESTARTSYS, so:
 *
 *   request_key, update: -1 EINTR (no SA_RESTART)
 *   read, read-restart:  -1 ENOKEY (keyctl_read_key() makes any failed
 *                        lookup ENOKEY, so it is never restarted)
 *   request_key-restart, update-restart: restarted, so still waiting
 *                        once the handler has run: the parent sees the
 *                        handler's byte, waits 100 ms more, finds the
 *                        child still there and kills it
 *
 * A call that sleeps on after its handler ran is ended by alarm(2)
 * (SIGALRM's default: the child dies of it), which is counted as a lost
 * signal; any other end is counted as "other". argv[1]: the mode, argv[2]:
 * rounds (default 20). Prints "<mode>: N rounds, L lost, E other".
 *
 * As the helper: `sigkey create KEY UID GID T P S` (/sbin/request-key's
 * form); the call-out is "hold:PATH".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keyhold.h"

static int handled_fd = -1;

static void on_usr1(int s)
{
	(void)s;
	if (write(handled_fd, "h", 1) < 0) {
		/* nothing to do */
	}
}

static const char *desc = "sigkey:held";
static long key;

static int child(const char *mode, int ready)
{
	struct sigaction sa;
	char buf[64];
	long r;
	int restart = strstr(mode, "-restart") != NULL;

	handled_fd = ready;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		return 2;
	alarm(2);
	if (write(ready, "r", 1) != 1)
		return 2;
	if (strncmp(mode, "request_key", 11) == 0)
		r = rk("user", desc, NULL, 0);
	else if (strncmp(mode, "update", 6) == 0)
		r = kc(KEYCTL_UPDATE, key, (long)"new", 3, 0);
	else
		r = kc(KEYCTL_READ, key, (long)buf, sizeof buf, 0);
	int e = errno;
	if (strncmp(mode, "read", 4) == 0)
		return r < 0 && e == ENOKEY ? 0 : 4;
	return r < 0 && e == EINTR && !restart ? 0 : 4;
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "create") == 0)
		return create(argv);
	const char *mode = argc > 1 ? argv[1] : "request_key";
	int rounds = argc > 2 ? atoi(argv[2]) : 20;
	int delay = argc > 3 ? atoi(argv[3]) : 1000;
	int restart = strstr(mode, "-restart") != NULL;
	int reads = strncmp(mode, "read", 4) == 0;
	int lost = 0, other = 0;
	char dir[64], go[96], callout[128];

	snprintf(dir, sizeof dir, "/tmp/sigkey.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(go, sizeof go, "%s/go", dir);
	snprintf(callout, sizeof callout, "hold:%s", go);
	pid_t requestor = fork();
	if (requestor == 0)
		_exit(rk("user", desc, callout, 0) > 0 ? 0 : 1);
	for (int i = 0; i < 1000 && key <= 0; i++) {
		key = kc(KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, (long)"user", (long)desc, 0);
		if (key <= 0)
			msleep(10);
	}
	if (key <= 0) {
		printf("%s: the key under construction was not found\n", mode);
		return 1;
	}
	for (int i = 0; i < rounds; i++) {
		int ready[2], w;
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
			_exit(child(mode, ready[1]));
		}
		close(ready[1]);
		if (read(ready[0], &c, 1) != 1) {
			perror("ready");
			return 1;
		}
		usleep((unsigned)delay);
		kill(pid, SIGUSR1);
		if (restart && !reads) {
			/* Restarted: the handler ran, and the call waits again. */
			struct pollfd p = { .fd = ready[0], .events = POLLIN };
			int ran = poll(&p, 1, 2500) == 1 && read(ready[0], &c, 1) == 1 && c == 'h';
			msleep(100);
			int gone = waitpid(pid, &w, WNOHANG) == pid;
			if (!gone) {
				kill(pid, SIGKILL);
				waitpid(pid, &w, 0);
			}
			if (!ran || gone)
				other++;
			close(ready[0]);
			continue;
		}
		if (waitpid(pid, &w, 0) != pid) {
			perror("waitpid");
			return 1;
		}
		close(ready[0]);
		if (WIFSIGNALED(w) && WTERMSIG(w) == SIGALRM)
			lost++;
		else if (!WIFEXITED(w) || WEXITSTATUS(w) != 0) {
			other++;
			fprintf(stderr, "round %d: status %#x\n", i, w);
		}
	}
	int fd = open(go, O_CREAT | O_WRONLY, 0600);
	if (fd >= 0)
		close(fd);
	int st = 0;
	waitpid(requestor, &st, 0);
	unlink(go);
	rmdir(dir);
	printf("%s: %d rounds, %d lost, %d other%s\n", mode, rounds, lost, other,
	       WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "" : " (the requestor failed)");
	return 0;
}

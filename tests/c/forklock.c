/*
 * fork() while other threads are inside emulated calls (holding the
 * library's locks: its connection to the kernel, its descriptor cache).
 * Two threads make emulated calls without pause (key updates and reads,
 * non-blocking reads and FIONREAD of a notification pipe, a fresh
 * notification pipe made and closed), and a third reads the notification
 * pipe, empty, without pause (each read takes the lock of the library's
 * table of shared-memory mirrors, and only that), while the main thread forks
 * argv[1] children (default 100). Each child makes emulated calls of its
 * own (a key added and read, a notification pipe made, sized and
 * watched, the parent's pipe read) under alarm(10), and exits 0; one
 * that hangs dies of SIGALRM. Prints "forked N, all well" or what went
 * wrong. Exit status 0 on success.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int fds[2];
static long key;
static volatile int stop;

static void *churn(void *arg)
{
	unsigned char buf[256];
	long n = 0;
	(void)arg;
	while (!stop) {
		int p[2], avail;
		syscall(SYS_keyctl, 2, key, "u", 1);	/* KEYCTL_UPDATE */
		syscall(SYS_keyctl, 11, key, buf, sizeof(buf));	/* KEYCTL_READ */
		read(fds[0], buf, sizeof(buf));
		ioctl(fds[0], FIONREAD, &avail);
		if (pipe2(p, 0x80 | O_NONBLOCK) == 0) {
			close(p[0]);
			close(p[1]);
		}
		n++;
	}
	return (void *)n;
}

static void *spin(void *arg)
{
	unsigned char buf[256];
	long n = 0;
	(void)arg;
	while (!stop) {
		read(fds[0], buf, sizeof(buf));
		n++;
	}
	return (void *)n;
}

static int child(void)
{
	unsigned char buf[256];
	int p[2];
	alarm(10);
	long k = syscall(SYS_add_key, "user", "child", "c", 1, -3);
	if (k < 0)
		return 2;
	if (syscall(SYS_keyctl, 11, k, buf, sizeof(buf)) != 1)
		return 3;
	if (pipe2(p, 0x80 | O_NONBLOCK) < 0 || ioctl(p[0], _IO('W', 0x60), 1) < 0)
		return 4;
	if (syscall(SYS_keyctl, 32, k, p[0], 1) < 0)	/* KEYCTL_WATCH_KEY */
		return 5;
	if (read(fds[0], buf, sizeof(buf)) < 0 && errno != EAGAIN)
		return 6;
	return 0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100;
	pthread_t t[3];

	if (pipe2(fds, 0x80 | O_NONBLOCK) < 0 || ioctl(fds[0], _IO('W', 0x60), 16) < 0) {
		perror("notification pipe");
		return 1;
	}
	key = syscall(SYS_add_key, "user", "fork", "x", 1, -3);
	if (key < 0 || syscall(SYS_keyctl, 32, key, fds[0], 1) < 0) {
		perror("key");
		return 1;
	}
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, churn, NULL);
	pthread_create(&t[2], NULL, spin, NULL);
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0)
			_exit(child());
		int st;
		if (waitpid(pid, &st, 0) != pid) {
			perror("waitpid");
			return 1;
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			if (WIFSIGNALED(st))
				printf("child %d died of signal %d (%s)\n", i, WTERMSIG(st),
				       WTERMSIG(st) == SIGALRM ? "hung" : "crashed");
			else
				printf("child %d failed at step %d\n", i, WEXITSTATUS(st));
			stop = 1;
			return 1;
		}
	}
	stop = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	printf("forked %d, all well\n", n);
	return 0;
}

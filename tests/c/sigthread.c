/*
 * A process-wide signal that another thread takes must not end a
 * blocking read in the thread that did not take it.
 *
 * A second thread reads the read end of a notification pipe that never
 * gets a record (argv[2] "plain": an ordinary pipe, the host kernel's
 * answer); the main thread waits in sigsuspend() with SIGUSR1 let in,
 * and a child process sends the process SIGUSR1 (kill(), process-wide)
 * argv[1] times, 2 ms apart. The kernel gives a process-wide signal to
 * one thread that lets it in: the main thread, when it is waiting for
 * it, or the reader, whose read then fails with EINTR after the handler
 * ran in it. Each EINTR the reader sees is checked against the handler:
 * one without a handler run in the reader since its read began is
 * spurious. At the end the reader is sent SIGUSR2 of its own
 * (pthread_kill) with the stop flag set. argv[3]: the gap between the
 * signals in microseconds (default 2000). Prints "N signals, R taken by
 * the reader, S spurious, O other" (other: a read that ended otherwise
 * than with EINTR).
 */
#define _GNU_SOURCE
#include <errno.h>
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
static pid_t reader_tid;
static volatile sig_atomic_t in_reader, stop;
static volatile int taken, spurious, other;

static void on_sig(int s)
{
	(void)s;
	if (syscall(SYS_gettid) == reader_tid)
		in_reader = 1;
}

static void *reader(void *a)
{
	char buf[256];
	(void)a;
	reader_tid = syscall(SYS_gettid);
	while (!stop) {
		in_reader = 0;
		long r = read(fds[0], buf, sizeof buf);
		if (r < 0 && errno == EINTR) {
			if (in_reader)
				taken++;
			else
				spurious++;
		} else {
			other++;
			fprintf(stderr, "read: %ld %s\n", r, r < 0 ? strerror(errno) : "");
			return NULL;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 200;
	int plain = argc > 2 && strcmp(argv[2], "plain") == 0;
	int gap = argc > 3 ? atoi(argv[3]) : 2000;
	struct sigaction sa;
	pthread_t t;

	if (plain ? pipe(fds) < 0 : pipe2(fds, 0x80) < 0) {
		perror("pipe");
		return 1;
	}
	if (!plain && ioctl(fds[0], _IO('W', 0x60), 16) < 0) {
		perror("set size");
		return 1;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sig;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	alarm(60);
	pthread_create(&t, NULL, reader, NULL);
	while (!__atomic_load_n(&reader_tid, __ATOMIC_SEQ_CST))
		usleep(1000);
	usleep(20000);
	pid_t me = getpid(), kid = fork();
	if (kid == 0) {
		for (int i = 0; i < n; i++) {
			kill(me, SIGUSR1);
			usleep(gap);
		}
		_exit(0);
	}
	int st;
	/* SIGUSR1 let in all the while: the kernel gives it to this
	 * thread, waiting in waitpid(). */
	while (waitpid(kid, &st, 0) != kid)
		;
	usleep(20000);
	stop = 1;
	pthread_kill(t, SIGUSR2);
	pthread_join(t, NULL);
	printf("%d signals, %d taken by the reader, %d spurious, %d other\n", n, taken, spurious,
	       other);
	return 0;
}

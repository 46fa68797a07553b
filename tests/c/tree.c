/*
 * Multi-process patterns on one emulated kernel (watchq exec --shared).
 * argv[1] picks one; each prints what it saw and exits 0 on success:
 *
 *   parent-watches  the parent watches @s, a forked child adds a key
 *   child-reads     a forked child reads, the parent updates the key
 *   exec-reader     an exec'd program reads the inherited read end
 *   reader FD N     (the exec'd half) read N records from FD
 *   poll            poll() on @s until a record comes (another program
 *                   changes the keyring), then print it
 *   sigpipe         a signal handler writes to a self-pipe (setitimer,
 *                   every 2 ms) while the main thread sleeps in read()
 *   block           sleep in read() (the kernel is killed meanwhile)
 *   pollblock       sleep in poll() (the kernel is killed meanwhile)
 *   vfork-close     a vfork child closes both ends and exits; the
 *                   parent's own ends still read what is posted after
 *   close-range     close_range() over both ends (the kernel sees the
 *                   last close: its --log says so)
 *   efault          read() into a page the program cannot write: EFAULT,
 *                   and the record is still there for the next read
 *   close-all       close every descriptor above 2 and put /dev/null at
 *                   every number up to 1199, then use keys again
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define O_NOTIFICATION_PIPE O_EXCL
#define IOC_WATCH_QUEUE_SET_SIZE _IO('W', 0x60)
#define KEYCTL_UPDATE 2
#define KEYCTL_WATCH_KEY 32
#define KEY_SPEC_SESSION_KEYRING -3

static long add_key(const char *desc, const char *v)
{
	return syscall(SYS_add_key, "user", desc, v, strlen(v), KEY_SPEC_SESSION_KEYRING);
}

static int watched(long key, int fds[2])
{
	if (pipe2(fds, O_NOTIFICATION_PIPE) < 0)
		return perror("pipe2"), -1;
	if (ioctl(fds[0], IOC_WATCH_QUEUE_SET_SIZE, 16) < 0)
		return perror("SET_SIZE"), -1;
	if (syscall(SYS_keyctl, KEYCTL_WATCH_KEY, key, fds[0], 1) < 0)
		return perror("WATCH_KEY"), -1;
	return 0;
}

/* Reads n records; prints "sub=S" for each. */
static int read_records(int fd, int n)
{
	unsigned char buf[256];
	while (n > 0) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			printf("read: %s\n", strerror(errno));
			return 1;
		}
		if (r == 0) {
			printf("eof\n");
			return 1;
		}
		for (ssize_t off = 0; off < r; off += buf[off + 4] & 0x7f) {
			printf("sub=%u\n", buf[off + 3]);
			n--;
		}
	}
	fflush(stdout);
	return 0;
}

static volatile sig_atomic_t ticks;
static int self_pipe[2];

static void on_alarm(int sig)
{
	char c = 1;
	(void)sig;
	ticks++;
	if (write(self_pipe[1], &c, 1) < 0)
		_exit(9);
}

int main(int argc, char **argv)
{
	int fds[2];
	const char *mode = argc > 1 ? argv[1] : "";
	long ring = syscall(SYS_keyctl, 0, KEY_SPEC_SESSION_KEYRING, 1);

	if (strcmp(mode, "reader") == 0 && argc == 4)
		return read_records(atoi(argv[2]), atoi(argv[3]));
	if (strcmp(mode, "parent-watches") == 0) {
		if (watched(ring, fds) < 0)
			return 1;
		pid_t c = fork();
		if (c == 0)
			_exit(add_key("from-child", "v") < 0);
		int st;
		waitpid(c, &st, 0);
		return read_records(fds[0], 1) || st != 0;
	}
	if (strcmp(mode, "poll") == 0) {
		if (watched(ring, fds) < 0)
			return 1;
		printf("watching\n");
		fflush(stdout);
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		if (poll(&p, 1, 10000) != 1)
			return printf("poll timed out\n"), 1;
		return read_records(fds[0], 1);
	}
	long key = add_key("k", "v");
	if (key < 0)
		return perror("add_key"), 1;
	if (strcmp(mode, "child-reads") == 0 || strcmp(mode, "exec-reader") == 0) {
		if (watched(key, fds) < 0)
			return 1;
		pid_t c = fork();
		if (c == 0) {
			if (mode[0] == 'e') {
				char fd[16];
				snprintf(fd, sizeof fd, "%d", fds[0]);
				execl("/proc/self/exe", argv[0], "reader", fd, "2", (char *)NULL);
				_exit(8);
			}
			_exit(read_records(fds[0], 2));
		}
		close(fds[0]);
		usleep(100000);
		syscall(SYS_keyctl, KEYCTL_UPDATE, key, "w", 1);
		syscall(SYS_keyctl, KEYCTL_UPDATE, key, "x", 1);
		int st;
		waitpid(c, &st, 0);
		return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	if (strcmp(mode, "sigpipe") == 0) {
		if (watched(key, fds) < 0 || pipe(self_pipe) < 0)
			return 1;
		struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
		sigaction(SIGALRM, &sa, NULL);
		struct itimerval it = { { 0, 2000 }, { 0, 2000 } };
		setitimer(ITIMER_REAL, &it, NULL);
		pid_t c = fork();
		if (c == 0) {
			usleep(300000);
			_exit(syscall(SYS_keyctl, KEYCTL_UPDATE, key, "w", 1) < 0);
		}
		int r = read_records(fds[0], 1);
		struct itimerval off = { { 0, 0 }, { 0, 0 } };
		setitimer(ITIMER_REAL, &off, NULL);
		waitpid(c, NULL, 0);
		printf("handler ran %s\n", ticks > 10 ? "often" : "rarely");
		return r;
	}
	if (strcmp(mode, "block") == 0) {
		if (watched(key, fds) < 0)
			return 1;
		printf("blocking\n");
		fflush(stdout);
		return read_records(fds[0], 1) ? 3 : 0;
	}
	if (strcmp(mode, "pollblock") == 0) {
		if (watched(key, fds) < 0)
			return 1;
		printf("polling\n");
		fflush(stdout);
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		int n = poll(&p, 1, 10000);
		printf("poll = %d%s\n", n, n == 1 && (p.revents & POLLHUP) ? " POLLHUP" : "");
		fflush(stdout);
		return read_records(fds[0], 1) ? 3 : 0;
	}
	if (strcmp(mode, "vfork-close") == 0) {
		if (watched(key, fds) < 0)
			return 1;
		pid_t c = vfork();
		if (c == 0) {
			close(fds[0]);
			close(fds[1]);
			_exit(0);
		}
		waitpid(c, NULL, 0);
		syscall(SYS_keyctl, KEYCTL_UPDATE, key, "w", 1);
		return read_records(fds[0], 1);
	}
	if (strcmp(mode, "close-range") == 0) {
		if (watched(key, fds) < 0)
			return 1;
		int lo = fds[0] < fds[1] ? fds[0] : fds[1];
		int hi = fds[0] < fds[1] ? fds[1] : fds[0];
		if (close_range(lo, hi, 0) < 0)
			return perror("close_range"), 1;
		usleep(300000);
		printf("closed\n");
		return 0;
	}
	if (strcmp(mode, "close-all") == 0) {
		close_range(3, ~0U, 0);
		int null = open("/dev/null", O_RDONLY);
		for (int i = 3; i < 1200; i++)
			if (i != null)
				dup2(null, i);
		char got[8] = { 0 };
		long n = syscall(SYS_keyctl, 11, key, got, sizeof got);
		long k2 = add_key("after", "y");
		printf("read %ld %s, add %s\n", n, got, k2 > 0 ? "ok" : strerror(errno));
		return !(n == 1 && k2 > 0);
	}
	if (strcmp(mode, "efault") == 0) {
		if (watched(key, fds) < 0)
			return 1;
		syscall(SYS_keyctl, KEYCTL_UPDATE, key, "w", 1);
		char *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		poll(&p, 1, 2000);
		ssize_t r = read(fds[0], page, 256);
		printf("read(unwritable) = %zd %s\n", r, r < 0 ? strerror(errno) : "");
		return read_records(fds[0], 1);
	}
	fprintf(stderr, "usage: tree MODE\n");
	return 2;
}

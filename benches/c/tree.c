/*
 * The costs of one kernel for a process tree, each against its peer in
 * the same run (scripts/bench-tree.sh runs this under `watchq exec`):
 *
 *   read      read() of a pending 16-byte record   vs  read() of 16 bytes from a real pipe
 *   key       keyctl(KEYCTL_UPDATE) on watchq      vs  the real kernel's keyctl(KEYCTL_GET_KEYRING_ID)
 *   plain     read()+write() of a real pipe through the preload's interposers
 *                                                  vs  the same calls straight into libc
 *   wake      a post wakes a reader blocked in another process (ack back on a pipe)
 *                                                  vs  a write to a real pipe doing the same
 *
 * Prints one line per case: name, ns per operation for watchq and for the
 * peer, and their ratio (the median of 5 rounds each).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define O_NOTIFICATION_PIPE O_EXCL
#define IOC_WATCH_QUEUE_SET_SIZE _IO('W', 0x60)
#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_UPDATE 2
#define KEYCTL_WATCH_KEY 32
#define KEY_SPEC_SESSION_KEYRING -3

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

/* The real kernel's keyctl, past every interposer. */
static long raw_keyctl(long op, long a)
{
	long ret;
	register long r10 __asm__("r10") = 0;
	register long r8 __asm__("r8") = 0;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"((long)SYS_keyctl), "D"(op), "S"(a), "d"(0L), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof *v, cmp);
	return v[n / 2];
}

static void report(const char *name, double ours, double peer)
{
	printf("%-6s %10.0f %10.0f %8.2f\n", name, ours, peer, ours / peer);
}

#define ROUNDS 5
#define BATCH 256

int main(void)
{
	int n[2], p[2], q[2];
	unsigned char buf[4096];
	double a[ROUNDS], b[ROUNDS];

	long key = syscall(SYS_add_key, "user", "bench", "v", 1, KEY_SPEC_SESSION_KEYRING);
	if (key < 0 || pipe2(n, O_NOTIFICATION_PIPE) < 0 || ioctl(n[0], IOC_WATCH_QUEUE_SET_SIZE, BATCH) < 0 ||
	    syscall(SYS_keyctl, KEYCTL_WATCH_KEY, key, n[0], 1) < 0 || pipe(p) < 0 || pipe(q) < 0) {
		perror("setup");
		return 1;
	}
	printf("case    watchq_ns    peer_ns    ratio\n");

	/* read: BATCH pending records, read one by one, vs BATCH 16-byte messages. */
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < BATCH; i++)
			syscall(SYS_keyctl, KEYCTL_UPDATE, key, "w", 1);
		double t0 = now();
		for (int i = 0; i < BATCH; i++)
			if (read(n[0], buf, 16) != 16)
				return printf("short read\n"), 1;
		a[r] = (now() - t0) / BATCH;
		for (int i = 0; i < BATCH; i++)
			if (write(p[1], buf, 16) != 16)
				return 1;
		t0 = now();
		for (int i = 0; i < BATCH; i++)
			if (read(p[0], buf, 16) != 16)
				return 1;
		b[r] = (now() - t0) / BATCH;
	}
	report("read", median(a, ROUNDS), median(b, ROUNDS));

	/* key: an emulated update (no watcher reads it: drain afterwards). */
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now();
		for (int i = 0; i < BATCH; i++)
			syscall(SYS_keyctl, KEYCTL_UPDATE, key, "w", 1);
		a[r] = (now() - t0) / BATCH;
		for (int left = 1; ioctl(n[0], FIONREAD, &left) == 0 && left > 0;)
			if (read(n[0], buf, sizeof buf) <= 0)
				break;
		t0 = now();
		for (int i = 0; i < BATCH; i++)
			raw_keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING);
		b[r] = (now() - t0) / BATCH;
	}
	report("key", median(a, ROUNDS), median(b, ROUNDS));

	/* plain: write+read of one byte on a real pipe, interposed vs libc's own. */
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	ssize_t (*libc_read)(int, void *, size_t) = libc ? dlsym(libc, "read") : NULL;
	ssize_t (*libc_write)(int, const void *, size_t) = libc ? dlsym(libc, "write") : NULL;
	if (!libc_read || !libc_write)
		return printf("no libc\n"), 1;
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now();
		for (int i = 0; i < 4096; i++) {
			write(p[1], buf, 1);
			read(p[0], buf, 1);
		}
		a[r] = (now() - t0) / 4096;
		t0 = now();
		for (int i = 0; i < 4096; i++) {
			libc_write(p[1], buf, 1);
			libc_read(p[0], buf, 1);
		}
		b[r] = (now() - t0) / 4096;
	}
	report("plain", median(a, ROUNDS), median(b, ROUNDS));

	/* wake: a child blocked in read() on the notification pipe (or the real
	 * pipe p) acks each wake-up on q. */
	for (int mode = 0; mode < 2; mode++) {
		pid_t c = fork();
		if (c == 0) {
			int fd = mode == 0 ? n[0] : p[0];
			for (int i = 0; i < ROUNDS * 64; i++) {
				if (read(fd, buf, 16) <= 0)
					_exit(1);
				if (write(q[1], buf, 1) != 1)
					_exit(1);
			}
			_exit(0);
		}
		for (int r = 0; r < ROUNDS; r++) {
			double sum = 0;
			for (int i = 0; i < 64; i++) {
				usleep(500); /* let the reader fall asleep */
				double t0 = now();
				if (mode == 0)
					syscall(SYS_keyctl, KEYCTL_UPDATE, key, "w", 1);
				else if (write(p[1], buf, 16) != 16)
					return 1;
				if (read(q[0], buf, 1) != 1)
					return 1;
				sum += now() - t0;
			}
			(mode == 0 ? a : b)[r] = sum / 64;
		}
		waitpid(c, NULL, 0);
	}
	report("wake", median(a, ROUNDS), median(b, ROUNDS));
	return 0;
}

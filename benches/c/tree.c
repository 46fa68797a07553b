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
 * and the physical floor, measured in the same rounds: what any design
 * with a kernel process could reach on this machine, against the same peer.
 *
 *   rt        a bare SOCK_SEQPACKET request/response between two processes,
 *             SCM_CREDENTIALS on each request (SO_PASSCRED, read by the server)
 *                                                  vs  the real keyctl(KEYCTL_GET_KEYRING_ID)
 *   futex     a futex ping-pong between two processes (shared memory, one
 *             FUTEX_WAKE and one FUTEX_WAIT each way)  vs  the real keyctl
 *   key/rt    watchq's key call                    vs  rt (how far from the floor)
 *   key100    watchq's key call with 100 more notification pipes open
 *                                                  vs  the key call without them
 *   relay     a write to a pipe read by a relay process, which writes to the
 *             reader's pipe and then replies to the poster (the shape of a
 *             post through a kernel process), ack back on a pipe
 *                                                  vs  the real pipe wake-up
 *   wake/relay watchq's wake-up                    vs  relay
 *
 * Prints one line per case: name, ns per operation for watchq (or the
 * floor) and for the peer, and their ratio (the median of 5 rounds each).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
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
	printf("%-10s %6.0f %10.0f %8.2f\n", name, ours, peer, ours / peer);
}

#define ROUNDS 5
#define BATCH 256

/* The floor's server: one request, one reply, each request's credentials
 * read (as watchq's server does). Runs until the socket closes. */
static void rt_server(int s)
{
	char buf[512];
	char cbuf[CMSG_SPACE(sizeof(struct ucred))];
	for (;;) {
		struct iovec iov = {buf, sizeof buf};
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
		ssize_t n = recvmsg(s, &m, 0);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		if (n <= 0 || !c || c->cmsg_type != SCM_CREDENTIALS)
			_exit(n == 0 ? 0 : 1);
		struct iovec o = {buf, 32};
		struct msghdr mo = {.msg_iov = &o, .msg_iovlen = 1};
		if (sendmsg(s, &mo, MSG_NOSIGNAL) != 32)
			_exit(1);
	}
}

static double rt_round(int s, int n)
{
	char buf[512];
	memset(buf, 0, sizeof buf);
	double t0 = now();
	for (int i = 0; i < n; i++) {
		/* The request the size of a key update's. */
		if (send(s, buf, 64, MSG_NOSIGNAL) != 64 || recv(s, buf, sizeof buf, 0) <= 0)
			return -1;
	}
	return (now() - t0) / n;
}

static long futex(atomic_int *w, int op, int v)
{
	return syscall(SYS_futex, w, op, v, NULL, NULL, 0);
}

/* A futex ping-pong: `turn` goes 1 (the helper's) and back to 0. */
static void futex_server(atomic_int *turn)
{
	for (;;) {
		while (atomic_load(turn) != 1) {
			if (atomic_load(turn) == 2)
				_exit(0);
			futex(turn, FUTEX_WAIT, 0);
		}
		atomic_store(turn, 0);
		futex(turn, FUTEX_WAKE, 1);
	}
}

static double futex_round(atomic_int *turn, int n)
{
	double t0 = now();
	for (int i = 0; i < n; i++) {
		atomic_store(turn, 1);
		futex(turn, FUTEX_WAKE, 1);
		while (atomic_load(turn) != 0)
			futex(turn, FUTEX_WAIT, 1);
	}
	return (now() - t0) / n;
}

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
	printf("case     watchq_ns    peer_ns    ratio\n");

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

	/* The floor's helpers: a socket server and a futex partner. */
	int sv[2], one = 1;
	atomic_int *turn = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0 || turn == MAP_FAILED) {
		perror("floor setup");
		return 1;
	}
	*turn = 0;
	pid_t rt_pid = fork();
	if (rt_pid == 0) {
		close(sv[0]);
		rt_server(sv[1]);
	}
	close(sv[1]);
	pid_t fx_pid = fork();
	if (fx_pid == 0)
		futex_server(turn);
	double c[ROUNDS], d[ROUNDS], e[ROUNDS], kr[ROUNDS];

	/* key: an emulated update (no watcher reads it: drain afterwards),
	 * in the same rounds as the floor's round trips. */
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
		c[r] = rt_round(sv[0], BATCH);
		d[r] = futex_round(turn, BATCH);
		if (c[r] < 0)
			return printf("floor round trip failed\n"), 1;
		e[r] = a[r] / c[r];
		kr[r] = a[r];
	}
	double key_ns = median(a, ROUNDS), keyctl_ns = median(b, ROUNDS), rt_ns = median(c, ROUNDS);
	report("key", key_ns, keyctl_ns);
	report("rt", rt_ns, keyctl_ns);
	report("futex", median(d, ROUNDS), keyctl_ns);
	printf("%-10s %6.0f %10.0f %8.2f  (median of the rounds' own ratios: %.2f)\n", "key/rt", key_ns, rt_ns,
	       key_ns / rt_ns, median(e, ROUNDS));
	/* key100: the same update with 100 more notification pipes open (sized,
	 * idle) against it without: a call's cost must not grow with them. */
	int more[100][2];
	for (int i = 0; i < 100; i++)
		if (pipe2(more[i], O_NOTIFICATION_PIPE) < 0 || ioctl(more[i][0], IOC_WATCH_QUEUE_SET_SIZE, 16) < 0)
			return perror("pipe2"), 1;
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now();
		for (int i = 0; i < BATCH; i++)
			syscall(SYS_keyctl, KEYCTL_UPDATE, key, "w", 1);
		c[r] = (now() - t0) / BATCH;
		for (int left = 1; ioctl(n[0], FIONREAD, &left) == 0 && left > 0;)
			if (read(n[0], buf, sizeof buf) <= 0)
				break;
		e[r] = c[r] / kr[r];
	}
	printf("%-10s %6.0f %10.0f %8.2f  (median of the rounds' own ratios: %.2f)\n", "key100", median(c, ROUNDS),
	       key_ns, median(c, ROUNDS) / key_ns, median(e, ROUNDS));
	for (int i = 0; i < 100; i++)
		close(more[i][0]), close(more[i][1]);

	close(sv[0]);
	atomic_store(turn, 2);
	futex(turn, FUTEX_WAKE, 1);
	waitpid(rt_pid, NULL, 0);
	waitpid(fx_pid, NULL, 0);

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

	/* wake: a child blocked in read() on the notification pipe (mode 0),
	 * on the real pipe p (1) or on the pipe r2 a relay process writes to
	 * (2) acks each wake-up on q; the modes take turns within each round. */
	int pr[2], rp[2], r2[2];
	if (pipe(pr) < 0 || pipe(rp) < 0 || pipe(r2) < 0)
		return perror("pipe"), 1;
	pid_t kids[4];
	for (int mode = 0; mode < 3; mode++) {
		kids[mode] = fork();
		if (kids[mode] == 0) {
			int fd = mode == 0 ? n[0] : mode == 1 ? p[0] : r2[0];
			for (int i = 0; i < ROUNDS * 64; i++) {
				if (read(fd, buf, 16) <= 0)
					_exit(1);
				if (write(q[1], buf, 1) != 1)
					_exit(1);
			}
			_exit(0);
		}
	}
	kids[3] = fork();
	if (kids[3] == 0) {
		/* The relay: a request in, the reader's write, then the reply. */
		for (int i = 0; i < ROUNDS * 64; i++) {
			if (read(pr[0], buf, 1) != 1 || write(r2[1], buf, 16) != 16 || write(rp[1], buf, 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	for (int r = 0; r < ROUNDS; r++) {
		for (int mode = 0; mode < 3; mode++) {
			double sum = 0;
			for (int i = 0; i < 64; i++) {
				usleep(500); /* let the reader fall asleep */
				double t0 = now();
				if (mode == 0)
					syscall(SYS_keyctl, KEYCTL_UPDATE, key, "w", 1);
				else if (mode == 1 && write(p[1], buf, 16) != 16)
					return 1;
				else if (mode == 2 && (write(pr[1], buf, 1) != 1 || read(rp[0], buf, 1) != 1))
					return 1;
				if (read(q[0], buf, 1) != 1)
					return 1;
				sum += now() - t0;
			}
			(mode == 0 ? a : mode == 1 ? b : c)[r] = sum / 64;
		}
		e[r] = a[r] / c[r];
	}
	for (int k = 0; k < 4; k++)
		waitpid(kids[k], NULL, 0);
	double wake_ns = median(a, ROUNDS), pipe_ns = median(b, ROUNDS), relay_ns = median(c, ROUNDS);
	report("wake", wake_ns, pipe_ns);
	report("relay", relay_ns, pipe_ns);
	printf("%-10s %6.0f %10.0f %8.2f  (median of the rounds' own ratios: %.2f)\n", "wake/relay", wake_ns,
	       relay_ns, wake_ns / relay_ns, median(e, ROUNDS));
	return 0;
}

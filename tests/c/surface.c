/*
 * The rest of the surface a consumer reaches, one mode per run, each line
 * a call and its result (tests/tests/surface.rs says what the kernel
 * gives):
 *   numbers  syscall(436) and syscall(SYS_close_range) are close_range;
 *            440 and 441 the real process_madvise and epoll_pwait2;
 *            watchq's own numbers reach the unmerged watch calls
 *   poll     revents of both ends of a notification pipe and of
 *            /dev/watch_queue, empty, with records, after the other end
 *            closed; ppoll, __ppoll_chk (built with _FORTIFY_SOURCE)
 *   epollet  an EPOLLET reader gets an edge per post
 *   sigio    O_ASYNC with F_SETOWN and F_SETSIG: a signal per post
 *   select   select with a descriptor at 1024 or above in a larger set,
 *            and pselect
 *   pread    pread, preadv, preadv2 of an emulated end (ESPIPE, EINVAL)
 *   sys      the syscall() forms of read, readv, dup2, fcntl, ppoll, close
 *   keyctl   KEYCTL_GET_SECURITY and KEYCTL_SET_REQKEY_KEYRING reach the kernel
 *   openat2  syscall(SYS_openat2) of a keys sysctl is the emulated file (root)
 *   freopen  freopen of a keys sysctl onto stdout and a read stream (root)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define O_NOTIFICATION_PIPE O_EXCL
#define WQ_WATCH_MOUNT 0x77710001L
#define WQ_WATCH_DEVICES 0x77710003L

static const char *errname(int e)
{
	switch (e) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(EINTR) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT)
	E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(EINVAL) E(ESPIPE) E(ENOSYS) E(ENOBUFS)
	E(EOPNOTSUPP) E(ESRCH) E(ENOPKG) E(ENOKEY)
#undef E
	default: return "E?";
	}
}

static void show(const char *what, long r)
{
	if (r < 0)
		printf("%s = -1 %s\n", what, errname(errno));
	else
		printf("%s = %ld\n", what, r);
	fflush(stdout);
}
#define CALL(e) show(#e, (long)(e))

static void npipe(int p[2])
{
	if (pipe2(p, O_NOTIFICATION_PIPE) < 0 || ioctl(p[0], _IO('W', 0x60), 16) < 0) {
		perror("notification pipe");
		exit(1);
	}
}

static int32_t session(void)
{
	return (int32_t)syscall(SYS_keyctl, 0, -3, 1);
}

/* Posts one record to every watch on the session keyring: a new key linked. */
static void post(int i)
{
	char d[16];
	snprintf(d, sizeof d, "k%d", i);
	syscall(SYS_add_key, "user", d, "x", 1, -3);
}

static void watch(int fd, int tag)
{
	if (syscall(SYS_keyctl, 32, session(), fd, tag) < 0) {
		perror("watch");
		exit(1);
	}
}

static const char *bits(short r)
{
	static char b[128];
	b[0] = 0;
	if (r & POLLIN) strcat(b, "|IN");
	if (r & POLLRDNORM) strcat(b, "|RDNORM");
	if (r & POLLOUT) strcat(b, "|OUT");
	if (r & POLLWRNORM) strcat(b, "|WRNORM");
	if (r & POLLHUP) strcat(b, "|HUP");
	if (r & POLLERR) strcat(b, "|ERR");
	if (r & POLLPRI) strcat(b, "|PRI");
	if (r & POLLNVAL) strcat(b, "|NVAL");
	return b[0] ? b + 1 : "0";
}

static void pollone(const char *what, int fd, short ev)
{
	struct pollfd p = {.fd = fd, .events = ev};
	int n = poll(&p, 1, 0);
	printf("poll(%s) = %d %s\n", what, n, bits(p.revents));
}

static void m_numbers(void)
{
	int p[2];
	npipe(p);
	CALL(syscall(SYS_close_range, p[0], p[0], 0));
	CALL(fcntl(p[0], F_GETFD));
	CALL(syscall(436, p[1], p[1], 0));
	CALL(fcntl(p[1], F_GETFD));
	npipe(p);
	/* 440 and 441 with an emulated end where the proposals had the queue:
	 * the real kernel's answer, the same as with an ordinary pipe's end
	 * at the same number. */
	int o[2];
	if (pipe(o) < 0 || dup2(o[0], 50) < 0 || dup2(p[0], 51) < 0)
		exit(1);
	for (long nr = 440; nr <= 441; nr++) {
		errno = 0;
		long a = syscall(nr, AT_FDCWD, "/", 0, 50, 5);
		int ea = errno;
		errno = 0;
		long b = syscall(nr, AT_FDCWD, "/", 0, 51, 5);
		int eb = errno;
		printf("syscall(%ld, ..., emulated end, 5) is the real call: %s\n", nr,
		       a == b && ea == eb ? "yes" : "no");
	}
	CALL(syscall(WQ_WATCH_DEVICES, p[0], 4, 0));
	CALL(syscall(WQ_WATCH_DEVICES, p[0], 256, 0));
	CALL(syscall(WQ_WATCH_MOUNT, AT_FDCWD, "/", 0, p[0], 6));
}

static void m_poll(void)
{
	int p[2];
	npipe(p);
	watch(p[0], 1);
	short all = POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM | POLLPRI;
	pollone("read end, empty", p[0], all);
	pollone("write end", p[1], all);
	post(1);
	pollone("read end, a record", p[0], all);
	pollone("read end, a record, POLLIN asked", p[0], POLLIN);
	pollone("read end, a record, POLLRDNORM asked", p[0], POLLRDNORM);
	struct pollfd pp = {.fd = p[0], .events = POLLIN};
	struct timespec ts = {0, 0};
	int pn = ppoll(&pp, 1, &ts, NULL);
	printf("ppoll = %d %s\n", pn, bits(pp.revents));
	close(p[1]);
	pollone("read end, a record, writer gone", p[0], all);
	char buf[256];
	if (read(p[0], buf, sizeof buf) < 0)
		perror("read");
	pollone("read end, empty, writer gone", p[0], all);
	close(p[0]);
	npipe(p);
	close(p[0]);
	pollone("write end, reader gone", p[1], all);
	close(p[1]);

	int d = open("/dev/watch_queue", O_RDWR);
	if (d < 0) {
		perror("/dev/watch_queue");
		return;
	}
	CALL(ioctl(d, _IO('s', 0x01), 1)); /* IOC_WATCH_QUEUE_SET_SIZE: one page */
	void *ring = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
	(void)ring;
	watch(d, 2);
	pollone("/dev/watch_queue, empty", d, all);
	post(2);
	pollone("/dev/watch_queue, a record", d, all);
	close(d);
}

static void m_epollet(void)
{
	int p[2];
	npipe(p);
	watch(p[0], 1);
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = p[0]};
	epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
	int edges = 0;
	for (int i = 0; i < 3; i++) {
		post(10 + i);
		struct epoll_event out;
		int n = epoll_wait(ep, &out, 1, 1000);
		if (n == 1 && (out.events & EPOLLIN))
			edges++;
		n = epoll_wait(ep, &out, 1, 0);
		printf("post %d: edge, then %d more\n", i + 1, n);
	}
	printf("edges %d (nothing read)\n", edges);
}

static volatile sig_atomic_t signals, last_fd, last_code;
static void on_sig(int sig, siginfo_t *si, void *u)
{
	(void)sig;
	(void)u;
	signals++;
	last_fd = si->si_fd;
	last_code = si->si_code;
}

static void m_sigio(void)
{
	int p[2];
	npipe(p);
	watch(p[0], 1);
	struct sigaction sa = {.sa_sigaction = on_sig, .sa_flags = SA_SIGINFO};
	sigaction(SIGRTMIN + 1, &sa, NULL);
	CALL(fcntl(p[0], F_SETOWN, getpid()));
	CALL(fcntl(p[0], F_SETSIG, SIGRTMIN + 1));
	CALL(fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_ASYNC));
	CALL(fcntl(p[0], F_GETFL) & O_ASYNC ? 1 : 0);
	for (int i = 0; i < 3; i++) {
		post(20 + i);
		for (int t = 0; t < 100 && signals <= i; t++)
			usleep(10000);
	}
	printf("signals %d, si_fd is the read end: %s, si_code POLL_IN: %s\n", (int)signals,
	       last_fd == p[0] ? "yes" : "no", last_code == POLL_IN ? "yes" : "no");
}

static void m_select(void)
{
	int p[2];
	npipe(p);
	watch(p[0], 1);
	int hi = dup2(p[0], 1500);
	if (hi < 0) {
		perror("dup2 1500");
		return;
	}
	post(30);
	/* A set of 2048 bits, every one set: select checks 0..nfds-1 only. */
	uint64_t set[32], wset[32];
	memset(set, 0, sizeof set);
	memset(wset, 0, sizeof wset);
	/* Bit 1500 and every bit above it (1501..2047: not descriptors). */
	set[1500 / 64] = ~(uint64_t)0 << (1500 % 64);
	for (int w = 1500 / 64 + 1; w < 32; w++)
		set[w] = ~(uint64_t)0;
	struct timeval tv = {0, 0};
	int n = select(1501, (fd_set *)set, (fd_set *)wset, NULL, &tv);
	printf("select(1501) = %d, bit 1500 %s, bits above nfds left %s\n", n,
	       set[1500 / 64] >> (1500 % 64) & 1 ? "set" : "clear",
	       set[31] == ~(uint64_t)0 && set[1500 / 64] >> (1500 % 64 + 1) == ~(uint64_t)0 >> (1500 % 64 + 1)
		       ? "alone" : "changed");
	memset(set, 0, sizeof set);
	set[1500 / 64] = (uint64_t)1 << (1500 % 64);
	struct timespec ts = {0, 0};
	sigset_t m;
	sigemptyset(&m);
	n = pselect(1501, (fd_set *)set, NULL, NULL, &ts, &m);
	printf("pselect(1501) = %d, bit 1500 %s\n", n,
	       set[1500 / 64] >> (1500 % 64) & 1 ? "set" : "clear");
	char buf[256];
	if (read(hi, buf, sizeof buf) < 0)
		perror("read");
	memset(set, 0, sizeof set);
	set[1500 / 64] = (uint64_t)1 << (1500 % 64);
	n = select(1501, (fd_set *)set, NULL, NULL, &tv);
	printf("select(1501) after the read = %d, bit 1500 %s\n", n,
	       set[1500 / 64] >> (1500 % 64) & 1 ? "set" : "clear");
}

static void m_pread(void)
{
	int p[2];
	npipe(p);
	watch(p[0], 1);
	post(40);
	char b[64];
	struct iovec v = {b, sizeof b};
	CALL(pread(p[0], b, sizeof b, 0));
	CALL(pread(p[0], b, sizeof b, -1));
	CALL(preadv(p[0], &v, 1, 0));
	CALL(preadv2(p[0], &v, 1, 0, 0));
	CALL(preadv2(p[0], &v, 1, -1, 0));
	CALL(pwrite(p[1], b, 1, 0));
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	CALL(read(p[0], b, sizeof b));
}

static void m_keyctl(void)
{
	long u = syscall(SYS_add_key, "user", "u", "x", 1, -3);
	char buf[64];
	memset(buf, 'z', sizeof buf);
	CALL(syscall(SYS_keyctl, 17 /* GET_SECURITY */, u, buf, sizeof buf));
	printf("buf[0] = %d\n", buf[0]);
	CALL(syscall(SYS_keyctl, 17, u, NULL, 0));
	CALL(syscall(SYS_keyctl, 17, 0x7fffffff, buf, sizeof buf));
	CALL(syscall(SYS_keyctl, 14 /* SET_REQKEY_KEYRING */, 2));
	CALL(syscall(SYS_keyctl, 14, -1));
	CALL(syscall(SYS_keyctl, 14, 6));
}

/* openat2 through syscall(): the emulated sysctl, not the machine's. */
static void m_openat2(void)
{
	int fd = open("/proc/sys/kernel/keys/maxkeys", O_WRONLY);
	CALL(write(fd, "123", 3));
	close(fd);
	struct {
		uint64_t flags, mode, resolve;
	} how = {O_RDONLY, 0, 0};
	fd = syscall(SYS_openat2, AT_FDCWD, "/proc/sys/kernel/keys/maxkeys", &how, sizeof how);
	char b[32] = {0};
	CALL(read(fd, b, sizeof b - 1));
	printf("maxkeys = %s", b);
	close(fd);
}

/* freopen onto stdout and onto a read stream: the emulated sysctls (root).
 * The results go to stderr (stdout is the sysctl by then). */
static void m_freopen(void)
{
	if (!freopen("/proc/sys/kernel/keys/gc_delay", "w", stdout))
		exit(1);
	printf("42\n");
	fclose(stdout);
	FILE *f = fopen("/proc/sys/kernel/keys/gc_delay", "r");
	char b[32] = {0}, c[32] = {0};
	if (!f || !fgets(b, sizeof b, f) || !freopen("/proc/sys/kernel/keys/maxkeys", "r", f) ||
	    !fgets(c, sizeof c, f))
		exit(2);
	fprintf(stderr, "gc_delay %smaxkeys %s", b, c);
}

static void m_sys(void)
{
	int p[2];
	npipe(p);
	watch(p[0], 1);
	post(50);
	char b[64];
	struct iovec v = {b, sizeof b};
	struct pollfd pp = {.fd = p[0], .events = POLLIN};
	struct timespec ts = {0, 0};
	CALL(syscall(SYS_ppoll, &pp, 1, &ts, NULL, 8));
	printf("revents %s\n", bits(pp.revents));
	CALL(syscall(SYS_fcntl, p[0], F_GETPIPE_SZ));
	CALL(syscall(SYS_dup2, p[0], 200));
	CALL(syscall(SYS_readv, 200, &v, 1));
	post(51);
	CALL(syscall(SYS_read, p[0], b, 8));
	CALL(syscall(SYS_read, p[0], b, sizeof b));
	CALL(syscall(SYS_close, 200));
	CALL(syscall(SYS_fcntl, 200, F_GETFD));
}

int main(int argc, char **argv)
{
	const char *m = argc > 1 ? argv[1] : "";
	if (!strcmp(m, "numbers")) m_numbers();
	else if (!strcmp(m, "poll")) m_poll();
	else if (!strcmp(m, "epollet")) m_epollet();
	else if (!strcmp(m, "sigio")) m_sigio();
	else if (!strcmp(m, "select")) m_select();
	else if (!strcmp(m, "pread")) m_pread();
	else if (!strcmp(m, "sys")) m_sys();
	else if (!strcmp(m, "keyctl")) m_keyctl();
	else if (!strcmp(m, "openat2")) m_openat2();
	else if (!strcmp(m, "freopen")) m_freopen();
	else {
		fprintf(stderr, "usage: surface MODE\n");
		return 2;
	}
	return 0;
}

/*
 * Reads of a mirrored notification pipe by a reader that cannot read the
 * mirror itself, under `watchq exec` (tests/tests/shm.rs):
 *
 *   handler N  a SIGUSR1 handler reads pipe B while the thread it
 *              interrupted holds the preload's table of mirrors. The
 *              signal is raised from malloc (this program's, which the
 *              preload's allocations come through too) on every
 *              allocation of main's first read of pipe A, and that read
 *              keeps A's new mirror in the table, allocating under its
 *              lock; B's mirror is in the table already. Every record of
 *              B (N) is read once, by the handler or by main afterwards,
 *              and no read fails: "handler H eio 0 other 0 total N"
 *   emfile N   the process is at its descriptor limit, so the mirror's
 *              memfds cannot come over SCM_RIGHTS (EMFILE): N pending
 *              records, read one by one: "emfile read N"
 *   efault     such a reader's readv takes two records, and the second's
 *              vector is unwritable: it returns the first, and the second
 *              stays queued at the head, as pipe_read() leaves it. A child
 *              that has the mirror mapped then polls and epolls (readable),
 *              reads the second, then a record posted after it:
 *              "efault 16 a poll 1 epoll 1 b c"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define O_NOTIFICATION_PIPE O_EXCL
#define IOC_WATCH_QUEUE_SET_SIZE _IO('W', 0x60)
#define KEYCTL_UPDATE 2
#define KEYCTL_WATCH_KEY 32
#define KEY_SPEC_SESSION_KEYRING -3

extern void *__libc_malloc(size_t);

static volatile sig_atomic_t armed, in_handler;
static int hfd = -1;
static int hgot, heio, hother, fired;

/* Every allocation while armed first runs the handler (not its own). */
void *malloc(size_t n)
{
	if (armed && !in_handler)
		raise(SIGUSR1);
	return __libc_malloc(n);
}

static void on_usr1(int sig)
{
	(void)sig;
	int saved = errno;
	unsigned char b[16];
	in_handler = 1;
	fired++;
	ssize_t r = read(hfd, b, sizeof b);
	if (r == 16)
		hgot++;
	else if (r < 0 && errno == EIO)
		heio++;
	else if (!(r < 0 && errno == EAGAIN))
		hother++;
	in_handler = 0;
	errno = saved;
}

/* A non-blocking notification pipe of 256 notes watching a new key. */
static long watched(int fds[2], const char *desc)
{
	long key = syscall(SYS_add_key, "user", desc, "v", 1, KEY_SPEC_SESSION_KEYRING);
	if (key < 0 || pipe2(fds, O_NOTIFICATION_PIPE | O_NONBLOCK) < 0 ||
	    ioctl(fds[0], IOC_WATCH_QUEUE_SET_SIZE, 256) < 0 ||
	    syscall(SYS_keyctl, KEYCTL_WATCH_KEY, key, fds[0], 1) < 0) {
		perror("setup");
		return -1;
	}
	return key;
}

static void update(long key)
{
	syscall(SYS_keyctl, KEYCTL_UPDATE, key, "w", 1);
}

/* Fills every descriptor number under the highest of `fds` and sets the
 * limit just above it: no descriptor can come in. */
static int at_fd_limit(const int *fds, int n)
{
	int top = 0;
	for (int i = 0; i < n; i++)
		top = fds[i] > top ? fds[i] : top;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = top + 1;
	for (int fd = 0; fd < top; fd++)
		if (fcntl(fd, F_GETFD) < 0 && dup2(fds[0], fd) < 0)
			return perror("dup2"), -1;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return perror("setrlimit"), -1;
	return 0;
}

/* The key a 16-byte key record names, as a letter of `keys`. */
static char which(const unsigned char *rec, const long *keys, int n)
{
	int id;
	memcpy(&id, rec + 8, 4);
	for (int i = 0; i < n; i++)
		if (keys[i] == id)
			return 'a' + i;
	return '?';
}

static int efault(void)
{
	int p[2], go[2], back[2];
	unsigned char buf[16];
	long keys[3];
	char c;
	if ((keys[0] = watched(p, "f")) < 0 || pipe(go) < 0 || pipe(back) < 0)
		return 1;
	for (int i = 1; i < 3; i++) {
		char d[2] = { 'f' + i, 0 };
		keys[i] = syscall(SYS_add_key, "user", d, "v", 1, KEY_SPEC_SESSION_KEYRING);
		if (keys[i] < 0 || syscall(SYS_keyctl, KEYCTL_WATCH_KEY, keys[i], p[0], 1) < 0)
			return perror("watch"), 1;
	}
	update(keys[0]);
	fflush(stdout);
	pid_t kid = fork();
	if (kid == 0) {
		/* A first record maps the mirror here. */
		if (read(p[0], buf, 16) != 16 || write(back[1], "m", 1) != 1 ||
		    read(go[0], &c, 1) != 1)
			_exit(3);
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		int ready = poll(&pf, 1, 0);
		struct epoll_event ev = { .events = EPOLLIN }, got;
		int ep = epoll_create1(0);
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) < 0)
			return perror(" epoll"), 1;
		int eready = epoll_wait(ep, &got, 1, 0);
		ssize_t r = read(p[0], buf, 16);
		if (r != 16)
			return printf(" child read: %zd %s\n", r, strerror(errno)), 1;
		char second = which(buf, keys, 3);
		update(keys[2]);
		r = read(p[0], buf, 16);
		if (r != 16)
			return printf(" child read 2: %zd %s\n", r, strerror(errno)), 1;
		char third = which(buf, keys, 3);
		r = read(p[0], buf, 16);
		if (r != -1 || errno != EAGAIN)
			return printf(" child then %zd %s\n", r, strerror(errno)), 1;
		printf(" poll %d epoll %d %c %c\n", ready == 1 && (pf.revents & POLLIN), eready,
		       second, third);
		return 0;
	}
	if (read(back[0], &c, 1) != 1)
		return printf("child gone\n"), 1;
	update(keys[0]);
	update(keys[1]);
	int fds[4] = { p[0], p[1], go[1], back[0] };
	if (at_fd_limit(fds, 4) < 0)
		return 1;
	struct iovec iov[2] = { { buf, 16 }, { (void *)8, 16 } };
	ssize_t r = readv(p[0], iov, 2);
	printf("efault %zd %c", r, r == 16 ? which(buf, keys, 3) : '-');
	fflush(stdout);
	if (write(go[1], "g", 1) != 1)
		return perror("go"), 1;
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return printf(" child failed\n"), 1;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned char buf[16];
	const char *mode = argc > 1 ? argv[1] : "";
	int n = argc > 2 ? atoi(argv[2]) : 0;

	if (strcmp(mode, "handler") == 0) {
		int a[2], b[2];
		long ka = watched(a, "a"), kb = watched(b, "b");
		if (ka < 0 || kb < 0)
			return 1;
		for (int i = 0; i < n + 1; i++)
			update(kb);
		update(ka);
		/* B's mirror goes into the table. */
		if (read(b[0], buf, 16) != 16)
			return printf("first read of b\n"), 1;
		hfd = b[0];
		struct sigaction sa = { .sa_handler = on_usr1 };
		sigaction(SIGUSR1, &sa, NULL);
		armed = 1;
		ssize_t r = read(a[0], buf, 16);
		armed = 0;
		if (r != 16)
			return printf("read of a: %zd %s\n", r, strerror(errno)), 1;
		int total = hgot;
		while ((r = read(b[0], buf, 16)) == 16)
			total++;
		if (r != -1 || errno != EAGAIN)
			return printf("drain of b: %zd %s\n", r, strerror(errno)), 1;
		printf("handler %d eio %d other %d total %d\n", hgot > 0, heio, hother, total);
		return 0;
	}
	if (strcmp(mode, "emfile") == 0) {
		int p[2];
		long k = watched(p, "e");
		if (k < 0)
			return 1;
		for (int i = 0; i < n; i++)
			update(k);
		if (at_fd_limit(p, 2) < 0)
			return 1;
		int got = 0;
		for (int i = 0; i < n; i++) {
			ssize_t r = read(p[0], buf, 16);
			if (r != 16)
				return printf("read %d: %zd %s\n", i, r, strerror(errno)), 1;
			got++;
		}
		ssize_t r = read(p[0], buf, 16);
		if (r != -1 || errno != EAGAIN)
			return printf("then %zd %s\n", r, strerror(errno)), 1;
		printf("emfile read %d\n", got);
		return 0;
	}
	if (strcmp(mode, "efault") == 0)
		return efault();
	fprintf(stderr, "usage: shmblind MODE [N]\n");
	return 2;
}

/*
 * Reads of a notification pipe through its shared-memory mirror, under
 * `watchq exec` (tests/tests/shm.rs runs it with WATCHQ_SHM_STATS set, so
 * each process that exits normally says how many of its reads were local
 * and how many went to the kernel):
 *
 *   local N        a forked child reads N pending records one by one
 *                  (posted by the parent before it starts): "child read N"
 *   two-readers N  two forked children read one pipe at once until end of
 *                  file while the parent posts N records into a queue that
 *                  holds them all: "read A+B=N" (every record once)
 *   poll N         N records, each waited for with poll() then read: "polled N"
 *   efault         a read into an unwritable page fails and takes nothing;
 *                  the record is read next: "efault ok"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define O_NOTIFICATION_PIPE O_EXCL
#define IOC_WATCH_QUEUE_SET_SIZE _IO('W', 0x60)
#define KEYCTL_UPDATE 2
#define KEYCTL_WATCH_KEY 32
#define KEY_SPEC_SESSION_KEYRING -3

static long key;

static int watched(int fds[2], int notes)
{
	key = syscall(SYS_add_key, "user", "shm", "v", 1, KEY_SPEC_SESSION_KEYRING);
	if (key < 0 || pipe2(fds, O_NOTIFICATION_PIPE) < 0 ||
	    ioctl(fds[0], IOC_WATCH_QUEUE_SET_SIZE, notes) < 0 ||
	    syscall(SYS_keyctl, KEYCTL_WATCH_KEY, key, fds[0], 1) < 0) {
		perror("setup");
		return -1;
	}
	return 0;
}

static void update(void)
{
	syscall(SYS_keyctl, KEYCTL_UPDATE, key, "w", 1);
}

/* Records in the bytes a read returned (16-byte key records). */
static int records(const unsigned char *b, ssize_t n)
{
	int c = 0;
	for (ssize_t at = 0; at + 8 <= n; at += b[at + 4] & 0x7f, c++)
		if ((b[at + 4] & 0x7f) < 8)
			return -1;
	return c;
}

int main(int argc, char **argv)
{
	int fds[2];
	unsigned char buf[4096];
	const char *mode = argc > 1 ? argv[1] : "";
	int n = argc > 2 ? atoi(argv[2]) : 0;

	if (strcmp(mode, "local") == 0) {
		if (watched(fds, 256) < 0)
			return 1;
		for (int i = 0; i < n; i++)
			update();
		pid_t c = fork();
		if (c == 0) {
			int got = 0;
			while (got < n) {
				ssize_t r = read(fds[0], buf, 16);
				if (r != 16)
					return printf("read %zd\n", r), 1;
				got++;
			}
			printf("child read %d\n", got);
			fflush(stdout);
			exit(0);
		}
		int st;
		waitpid(c, &st, 0);
		return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	}
	if (strcmp(mode, "two-readers") == 0) {
		int res[2];
		if (watched(fds, 256) < 0 || pipe(res) < 0)
			return 1;
		pid_t kids[2];
		for (int k = 0; k < 2; k++) {
			kids[k] = fork();
			if (kids[k] == 0) {
				close(fds[1]);
				int got = 0;
				for (;;) {
					ssize_t r = read(fds[0], buf, k == 0 ? 16 : sizeof buf);
					if (r == 0)
						break;
					if (r < 0)
						return printf("read: %s\n", strerror(errno)), 1;
					got += records(buf, r);
				}
				if (write(res[1], &got, sizeof got) != sizeof got)
					return 1;
				exit(0);
			}
		}
		for (int i = 0; i < n; i++) {
			update();
			if (i % 16 == 0)
				usleep(200);
		}
		/* The last write end goes: end of file after the last record. */
		close(fds[1]);
		int a = 0, b = 0;
		if (read(res[0], &a, sizeof a) != sizeof a || read(res[0], &b, sizeof b) != sizeof b)
			return 1;
		for (int k = 0; k < 2; k++)
			waitpid(kids[k], NULL, 0);
		printf("read %d+%d=%d\n", a < b ? a : b, a < b ? b : a, a + b);
		printf("both read: %s\n", a > 0 && b > 0 ? "yes" : "no");
		return 0;
	}
	if (strcmp(mode, "poll") == 0) {
		if (watched(fds, 256) < 0)
			return 1;
		for (int i = 0; i < n; i++)
			update();
		int got = 0;
		for (int i = 0; i < n; i++) {
			struct pollfd p = { .fd = fds[0], .events = POLLIN };
			if (poll(&p, 1, 2000) != 1 || !(p.revents & POLLIN))
				return printf("poll %d\n", i), 1;
			if (read(fds[0], buf, 16) != 16)
				return 1;
			got++;
		}
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		if (poll(&p, 1, 0) != 0)
			return printf("still readable\n"), 1;
		printf("polled %d\n", got);
		return 0;
	}
	if (strcmp(mode, "efault") == 0) {
		if (watched(fds, 16) < 0)
			return 1;
		update();
		update();
		/* The first read makes the mirror; the second is local. */
		if (read(fds[0], buf, 16) != 16)
			return 1;
		char *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ssize_t r = read(fds[0], page, 256);
		if (r != -1 || errno != EFAULT)
			return printf("read(unwritable) = %zd\n", r), 1;
		/* A record that would straddle into an unwritable page. */
		char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		mprotect(two + 4096, 4096, PROT_NONE);
		r = read(fds[0], two + 4088, 16);
		if (r != -1 || errno != EFAULT)
			return printf("read(straddling) = %zd\n", r), 1;
		int left = 0;
		ioctl(fds[0], FIONREAD, &left);
		if (read(fds[0], buf, sizeof buf) != 16 || left != 16)
			return printf("left %d\n", left), 1;
		printf("efault ok\n");
		return 0;
	}
	fprintf(stderr, "usage: shm MODE [N]\n");
	return 2;
}

/* io_uring under `watchq exec`: raw system calls, as liburing makes them
 * (no libc wrapper the preload could see).
 *
 *   iouring calls        io_uring_setup, _enter and _register: each call's
 *                        result (`= fd` for a ring, or `= -1 ENAME`)
 *   iouring read PATH    IORING_OP_OPENAT then IORING_OP_READ of PATH through
 *                        a ring; prints what the read returned, or the
 *                        setup's error (status 3)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *ename(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOSYS: return "ENOSYS";
	case EBADF: return "EBADF";
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EACCES: return "EACCES";
	default: return "E?";
	}
}

static void show(const char *what, long r)
{
	if (r < 0)
		printf("%s = -1 %s\n", what, ename(errno));
	else
		printf("%s = fd\n", what);
}

struct ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int ring_open(struct ring *r)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	r->fd = syscall(SYS_io_uring_setup, 4, &p);
	if (r->fd < 0)
		return -1;
	size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			r->fd, IORING_OFF_SQ_RING);
	char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
		       IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

/* Submits `sqe` and waits for its completion; its result. */
static int ring_do(struct ring *r, const struct io_uring_sqe *sqe)
{
	unsigned tail = *r->sq_tail, i = tail & *r->sq_mask;
	r->sqes[i] = *sqe;
	r->sq_array[i] = i;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(SYS_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
		perror("io_uring_enter");
		exit(1);
	}
	unsigned head = *r->cq_head;
	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) {
		fprintf(stderr, "no completion\n");
		exit(1);
	}
	int res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "calls")) {
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		long fd = syscall(SYS_io_uring_setup, 4, &p);
		show("io_uring_setup(4, &p)", fd);
		/* A descriptor that is not a ring: the kernel's EOPNOTSUPP. */
		show("io_uring_enter(0, 0, 0, 0)",
		     syscall(SYS_io_uring_enter, 0, 0, 0, 0, NULL, 0));
		show("io_uring_register(0, 0, NULL, 0)",
		     syscall(SYS_io_uring_register, 0, 0, NULL, 0));
		/* Other calls pass: */
		show("open(/dev/null)", open("/dev/null", O_RDONLY));
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "read")) {
		struct ring r;
		if (ring_open(&r) < 0) {
			printf("io_uring_setup = -1 %s\n", ename(errno));
			return 3;
		}
		struct io_uring_sqe sqe;
		memset(&sqe, 0, sizeof sqe);
		sqe.opcode = IORING_OP_OPENAT;
		sqe.fd = AT_FDCWD;
		sqe.addr = (unsigned long)argv[2];
		sqe.open_flags = O_RDONLY;
		int fd = ring_do(&r, &sqe);
		if (fd < 0) {
			printf("openat = -1 %s\n", ename(-fd));
			return 1;
		}
		char buf[256];
		memset(&sqe, 0, sizeof sqe);
		sqe.opcode = IORING_OP_READ;
		sqe.fd = fd;
		sqe.addr = (unsigned long)buf;
		sqe.len = sizeof buf - 1;
		int n = ring_do(&r, &sqe);
		if (n < 0) {
			printf("read = -1 %s\n", ename(-n));
			return 1;
		}
		buf[n] = 0;
		printf("%s", buf);
		return 0;
	}
	fprintf(stderr, "usage: iouring calls | iouring read PATH\n");
	return 2;
}

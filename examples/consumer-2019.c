/*
 * A consumer written to the 2019 design (the seed's "ver #2", June 2019):
 * open /dev/watch_queue, size the ring in pages, mmap it, watch the session
 * keyring, and read records with the protocol of the design: load head
 * with acquire, walk records from tail (skipping SKIP padding), store tail
 * with release. It makes its own events so it runs stand-alone.
 *
 *   cc -o consumer-2019 examples/consumer-2019.c
 *   watchq exec -- ./consumer-2019
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define IOC_WATCH_QUEUE_SET_SIZE _IO('s', 0x01)
#define WATCH_TYPE_META 0
#define WATCH_TYPE_KEY_NOTIFY 3
#define WATCH_META_SKIP_NOTIFICATION 0
#define WATCH_META_REMOVAL_NOTIFICATION 1
#define WATCH_INFO_OVERRUN 0x1
#define WATCH_INFO_LENGTH 0x1f8
#define KEYCTL_UPDATE 2
#define KEYCTL_WATCH_KEY 32
#define KEY_SPEC_SESSION_KEYRING -3

struct watch_notification {
	uint32_t type : 24, subtype : 8;
	uint32_t info;
};

struct watch_queue_buffer {
	union {
		struct {
			struct watch_notification watch; /* SKIP over the header */
			volatile uint32_t head;          /* the kernel's */
			volatile uint32_t tail;          /* ours */
			uint32_t mask;
			uint32_t reserved;
		} meta;
		struct watch_notification slots[0];
	};
};

static int consume(struct watch_queue_buffer *buf)
{
	uint32_t mask = buf->meta.mask;
	uint32_t head = __atomic_load_n(&buf->meta.head, __ATOMIC_ACQUIRE);
	uint32_t tail = buf->meta.tail;
	int n = 0;

	while (tail != head) {
		struct watch_notification *w = &buf->slots[tail & mask];
		uint32_t len = (w->info & WATCH_INFO_LENGTH) >> 3;
		if (len == 0) {
			fprintf(stderr, "corrupt ring\n");
			return -1;
		}
		if (w->type == WATCH_TYPE_KEY_NOTIFY) {
			uint32_t *p = (uint32_t *)w;
			printf("KEY %08x change=%u aux=%u tag=%u%s\n", p[2], w->subtype, p[3],
			       w->info >> 24, w->info & WATCH_INFO_OVERRUN ? " OVERRUN" : "");
			n++;
		} else if (w->type == WATCH_TYPE_META && w->subtype == WATCH_META_REMOVAL_NOTIFICATION) {
			printf("REMOVAL tag=%u\n", w->info >> 24);
			n++;
		}
		tail += len;
	}
	__atomic_store_n(&buf->meta.tail, tail, __ATOMIC_RELEASE);
	return n;
}

int main(void)
{
	int fd = open("/dev/watch_queue", O_RDWR);
	if (fd < 0) {
		printf("open /dev/watch_queue: %s\n", strerror(errno));
		return 1;
	}
	if (ioctl(fd, IOC_WATCH_QUEUE_SET_SIZE, 1) < 0) {
		perror("SET_SIZE");
		return 1;
	}
	struct watch_queue_buffer *buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (syscall(SYS_keyctl, KEYCTL_WATCH_KEY, KEY_SPEC_SESSION_KEYRING, fd, 0x01) < 0) {
		perror("KEYCTL_WATCH_KEY");
		return 1;
	}
	long key = syscall(SYS_add_key, "user", "watchq-2019", "v1", 2, KEY_SPEC_SESSION_KEYRING);
	if (key < 0 || syscall(SYS_keyctl, KEYCTL_WATCH_KEY, key, fd, 0x02) < 0 ||
	    syscall(SYS_keyctl, KEYCTL_UPDATE, key, "v2", 2) < 0 ||
	    syscall(SYS_keyctl, KEYCTL_WATCH_KEY, key, fd, -1) < 0) {
		perror("keys");
		return 1;
	}
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int total = 0;
	while (poll(&p, 1, 200) > 0 && (p.revents & POLLIN)) {
		int n = consume(buf);
		if (n < 0)
			return 1;
		total += n;
	}
	printf("%d record(s), head=%u tail=%u\n", total, buf->meta.head, buf->meta.tail);
	munmap(buf, 4096);
	close(fd);
	return total == 3 ? 0 : 1;
}

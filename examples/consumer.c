/*
 * A small notification-queue consumer, written the way real ones are (the
 * kernel's sample, keyutils' `keyctl watch`): a notification pipe, a size,
 * a KEY-only filter, a watch on the session keyring, then poll() and read()
 * with the sample's odd 433-byte buffer. It makes its own events (adds and
 * updates a key) so it runs stand-alone.
 *
 *   cc -o consumer examples/consumer.c
 *   ./consumer                        # on this machine: pipe2: ENOPKG
 *   watchq exec -- ./consumer         # on watchq: the records
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define O_NOTIFICATION_PIPE 0x80
#define IOC_WATCH_QUEUE_SET_SIZE _IO('W', 0x60)
#define IOC_WATCH_QUEUE_SET_FILTER _IO('W', 0x61)
#define KEYCTL_UPDATE 2
#define KEYCTL_WATCH_KEY 32
#define KEY_SPEC_SESSION_KEYRING -3

struct type_filter {
	uint32_t type, info_filter, info_mask, subtype_filter[8];
};
struct filter {
	uint32_t nr_filters, reserved;
	struct type_filter filters[1];
};

static const char *names[] = { "instantiated", "updated", "linked", "unlinked",
			       "cleared", "revoked", "invalidated", "setattr" };

static int consume(int fd)
{
	unsigned char buf[433];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int got = 0;

	while (poll(&p, 1, 200) > 0) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		printf("read() = %zd\n", n);
		for (ssize_t off = 0; off < n;) {
			uint32_t w0, info, key = 0, aux = 0;
			memcpy(&w0, buf + off, 4);
			memcpy(&info, buf + off + 4, 4);
			size_t len = info & 0x7f;
			if (len < 8 || off + (ssize_t)len > n) {
				fprintf(stderr, "bad record length %zu\n", len);
				return -1;
			}
			unsigned type = w0 & 0xffffff, sub = w0 >> 24;
			if (type == 1 && len == 16) {
				memcpy(&key, buf + off + 8, 4);
				memcpy(&aux, buf + off + 12, 4);
				printf("KEY %08x change=%u[%s] aux=%u\n", key, sub,
				       sub < 8 ? names[sub] : "?", aux);
			} else if (type == 0 && sub == 1) {
				printf("-- LOSS --\n");
			} else if (type == 0 && sub == 0) {
				printf("REMOVAL of watchpoint %08x\n", (info >> 8) & 0xff);
			}
			off += len;
			got++;
		}
	}
	return got;
}

int main(void)
{
	int fds[2];
	struct filter f = { .nr_filters = 1 };

	if (pipe2(fds, O_NOTIFICATION_PIPE) < 0) {
		printf("pipe2: %s\n", strerror(errno));
		return 1;
	}
	if (ioctl(fds[0], IOC_WATCH_QUEUE_SET_SIZE, 256) < 0) {
		perror("SET_SIZE");
		return 1;
	}
	f.filters[0].type = 1; /* WATCH_TYPE_KEY_NOTIFY */
	f.filters[0].subtype_filter[0] = ~0u;
	if (ioctl(fds[0], IOC_WATCH_QUEUE_SET_FILTER, &f) < 0) {
		perror("SET_FILTER");
		return 1;
	}
	if (syscall(SYS_keyctl, KEYCTL_WATCH_KEY, KEY_SPEC_SESSION_KEYRING, fds[0], 0x01) < 0) {
		perror("KEYCTL_WATCH_KEY");
		return 1;
	}
	long key = syscall(SYS_add_key, "user", "watchq-example", "v1", 2, KEY_SPEC_SESSION_KEYRING);
	if (key < 0) {
		perror("add_key");
		return 1;
	}
	if (syscall(SYS_keyctl, KEYCTL_WATCH_KEY, key, fds[0], 0x02) < 0 ||
	    syscall(SYS_keyctl, KEYCTL_UPDATE, key, "v2", 2) < 0) {
		perror("keyctl");
		return 1;
	}
	int n = consume(fds[0]);
	printf("%d record(s)\n", n);
	return n == 2 ? 0 : 1;
}

/*
 * Watches the global device list (watch_devices: watchq serves it as syscall 0x77710003; 436 in the
 * pipe-era device series) on a notification pipe and prints the USB and
 * block records it reads, in the series' sample format, until it has seen
 * argv[1] records or two seconds pass.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *usb_names[] = { "dev-add", "dev-remove", "dev-reset", "dev-error" };

int main(int argc, char **argv)
{
	int want = argc > 1 ? atoi(argv[1]) : 1, got = 0, fds[2];
	unsigned char buf[512];

	if (pipe2(fds, 0x80) < 0 || ioctl(fds[0], _IO('W', 0x60), 16) < 0) {
		perror("notification pipe");
		return 1;
	}
	if (syscall(0x77710003 /* watchq: watch_devices */, fds[0], 0x04, 0) < 0) {
		perror("watch_devices");
		return 1;
	}
	struct pollfd p = { .fd = fds[0], .events = POLLIN };
	while (got < want && poll(&p, 1, 2000) > 0) {
		ssize_t n = read(fds[0], buf, sizeof(buf));
		for (ssize_t off = 0; off < n;) {
			uint32_t w0, info;
			memcpy(&w0, buf + off, 4);
			memcpy(&info, buf + off + 4, 4);
			unsigned type = w0 & 0xffffff, sub = w0 >> 24, len = info & 0x7f;
			if (type == 3) {
				uint32_t err;
				memcpy(&err, buf + off + 8, 4);
				printf("USB %.*s %s e=%x\n", buf[off + 16], buf + off + 17,
				       sub < 4 ? usb_names[sub] : "?", err);
			} else if (type == 2) {
				uint64_t dev, sector;
				memcpy(&dev, buf + off + 8, 8);
				memcpy(&sector, buf + off + 16, 8);
				printf("BLOCK %08" PRIx64 " e=%u s=%" PRIx64 "\n", dev, sub, sector);
			}
			off += len;
			got++;
		}
	}
	return got == want ? 0 : 1;
}

/*
 * Watches the mount tree from / (watch_mount: watchq serves it as syscall 0x77710001; 440 in the 2020
 * proposals) on a notification pipe and prints the mount records it
 * reads until it has seen argv[1] of them or two seconds pass.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int want = argc > 1 ? atoi(argv[1]) : 1, got = 0, fds[2];
	unsigned char buf[512];

	if (pipe2(fds, 0x80) < 0 || ioctl(fds[0], _IO('W', 0x60), 16) < 0) {
		perror("notification pipe");
		return 1;
	}
	if (syscall(0x77710001 /* watchq: watch_mount */, AT_FDCWD, "/", 0, fds[0], 0x05) < 0) {
		perror("watch_mount");
		return 1;
	}
	struct pollfd p = { .fd = fds[0], .events = POLLIN };
	while (got < want && poll(&p, 1, 2000) > 0) {
		ssize_t n = read(fds[0], buf, sizeof(buf));
		for (ssize_t off = 0; off < n;) {
			uint32_t w0, info;
			uint64_t on, aux;
			memcpy(&w0, buf + off, 4);
			memcpy(&info, buf + off + 4, 4);
			if ((w0 & 0xffffff) == 4) {
				memcpy(&on, buf + off + 8, 8);
				memcpy(&aux, buf + off + 16, 8);
				printf("MOUNT on=%" PRIu64 " sub=%u aux=%" PRIu64 "%s\n", on, w0 >> 24, aux,
				       info & 0x10000 ? " subtree" : "");
				got++;
			}
			off += info & 0x7f;
		}
	}
	return got == want ? 0 : 1;
}

/*
 * A consumer thread sleeps on a notification pipe in poll(), select(),
 * epoll_wait() or a blocking read() (argv[1]); the main thread updates a
 * watched key 100 ms later. Prints "woke <bytes>" when the consumer got
 * the record. Exit status 0 on success.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fds[2];
static const char *mode;

static void *consumer(void *arg)
{
	unsigned char buf[256];
	(void)arg;
	if (strcmp(mode, "poll") == 0) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		if (poll(&p, 1, 5000) != 1 || !(p.revents & POLLIN))
			return "poll";
	} else if (strcmp(mode, "select") == 0) {
		fd_set r;
		struct timeval tv = { .tv_sec = 5 };
		FD_ZERO(&r);
		FD_SET(fds[0], &r);
		if (select(fds[0] + 1, &r, NULL, NULL, &tv) != 1 || !FD_ISSET(fds[0], &r))
			return "select";
	} else if (strcmp(mode, "epoll") == 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fds[0] }, out;
		int ep = epoll_create1(EPOLL_CLOEXEC);
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev) < 0)
			return "epoll_ctl";
		if (epoll_wait(ep, &out, 1, 5000) != 1 || out.data.fd != fds[0])
			return "epoll_wait";
		close(ep);
	}
	/* "read": block in read() itself (the fd is blocking). */
	ssize_t n = read(fds[0], buf, sizeof(buf));
	if (n != 16)
		return "read";
	printf("woke %zd\n", n);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;
	void *err;

	mode = argc > 1 ? argv[1] : "poll";
	if (pipe2(fds, 0x80) < 0 || ioctl(fds[0], _IO('W', 0x60), 16) < 0) {
		perror("notification pipe");
		return 1;
	}
	long key = syscall(SYS_add_key, "user", "wake", "x", 1, -3);
	if (key < 0 || syscall(SYS_keyctl, 32, key, fds[0], 1) < 0) {
		perror("key");
		return 1;
	}
	pthread_create(&t, NULL, consumer, NULL);
	usleep(100000);
	if (syscall(SYS_keyctl, 2, key, "y", 1) < 0) {
		perror("update");
		return 1;
	}
	pthread_join(t, &err);
	if (err) {
		printf("failed in %s: %s\n", (char *)err, strerror(errno));
		return 1;
	}
	return 0;
}

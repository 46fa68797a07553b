/*
 * The variadic libc entry points of watchq's preload library.
 *
 * Stable Rust cannot define a variadic function, so each of these reads
 * its variable arguments the way glibc's own wrapper does and passes them
 * on, fixed, to a watchq_* function written in Rust, which decides whether
 * the call is watchq's or the real libc's.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <sys/types.h>

long watchq_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
int watchq_ioctl(int fd, unsigned long req, unsigned long arg);
int watchq_fcntl(int fd, int cmd, unsigned long arg);
int watchq_openat(int dirfd, const char *path, int flags, unsigned int mode);

long syscall(long nr, ...)
{
	va_list ap;
	long a[6];
	int i;

	/* glibc's syscall() takes six argument registers whatever nr needs. */
	va_start(ap, nr);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	return watchq_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	unsigned long arg;

	va_start(ap, req);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	return watchq_ioctl(fd, req, arg);
}

static unsigned long fcntl_arg(va_list ap)
{
	return va_arg(ap, unsigned long);
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	unsigned long arg;

	va_start(ap, cmd);
	arg = fcntl_arg(ap);
	va_end(ap);
	return watchq_fcntl(fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	unsigned long arg;

	va_start(ap, cmd);
	arg = fcntl_arg(ap);
	va_end(ap);
	return watchq_fcntl(fd, cmd, arg);
}

/* A mode argument is only passed with O_CREAT or O_TMPFILE. */
#define NEEDS_MODE(flags) (((flags) & O_CREAT) || (((flags) & O_TMPFILE) == O_TMPFILE))

int open(const char *path, int flags, ...)
{
	va_list ap;
	unsigned int mode = 0;

	if (NEEDS_MODE(flags)) {
		va_start(ap, flags);
		mode = va_arg(ap, unsigned int);
		va_end(ap);
	}
	return watchq_openat(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	unsigned int mode = 0;

	if (NEEDS_MODE(flags)) {
		va_start(ap, flags);
		mode = va_arg(ap, unsigned int);
		va_end(ap);
	}
	return watchq_openat(AT_FDCWD, path, flags | O_LARGEFILE, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	unsigned int mode = 0;

	if (NEEDS_MODE(flags)) {
		va_start(ap, flags);
		mode = va_arg(ap, unsigned int);
		va_end(ap);
	}
	return watchq_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	unsigned int mode = 0;

	if (NEEDS_MODE(flags)) {
		va_start(ap, flags);
		mode = va_arg(ap, unsigned int);
		va_end(ap);
	}
	return watchq_openat(dirfd, path, flags | O_LARGEFILE, mode);
}

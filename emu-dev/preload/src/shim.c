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


/* The one word fcntl() and ioctl() take after their fixed arguments. */
#define WORD_ARG(last)                                  \
	({                                              \
		va_list ap_;                            \
		unsigned long word_;                    \
		va_start(ap_, last);                    \
		word_ = va_arg(ap_, unsigned long);     \
		va_end(ap_);                            \
		word_;                                  \
	})

int ioctl(int fd, unsigned long req, ...)
{
	return watchq_ioctl(fd, req, WORD_ARG(req));
}

int fcntl(int fd, int cmd, ...)
{
	return watchq_fcntl(fd, cmd, WORD_ARG(cmd));
}

int fcntl64(int fd, int cmd, ...)
{
	return watchq_fcntl(fd, cmd, WORD_ARG(cmd));
}

/*
 * A mode argument is only passed with O_CREAT or O_TMPFILE; read it the way
 * glibc does. `last` is the last named parameter.
 */
#define MODE_ARG(flags, last)                                                   \
	({                                                                      \
		unsigned int mode_ = 0;                                         \
		if (((flags) & O_CREAT) || (((flags) & O_TMPFILE) == O_TMPFILE)) { \
			va_list ap_;                                            \
			va_start(ap_, last);                                    \
			mode_ = va_arg(ap_, unsigned int);                      \
			va_end(ap_);                                            \
		}                                                               \
		mode_;                                                          \
	})

int open(const char *path, int flags, ...)
{
	return watchq_openat(AT_FDCWD, path, flags, MODE_ARG(flags, flags));
}

int open64(const char *path, int flags, ...)
{
	return watchq_openat(AT_FDCWD, path, flags | O_LARGEFILE, MODE_ARG(flags, flags));
}

int openat(int dirfd, const char *path, int flags, ...)
{
	return watchq_openat(dirfd, path, flags, MODE_ARG(flags, flags));
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	return watchq_openat(dirfd, path, flags | O_LARGEFILE, MODE_ARG(flags, flags));
}

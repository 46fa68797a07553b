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

/*
 * Staying in the tree: a program that clears or rebuilds its environment
 * (env -i, a daemon's clean environ) still runs its children on the same
 * kernel. Every exec and spawn entry point puts LD_PRELOAD (with this
 * library) and WATCHQ_KERNEL back into the environment it passes on.
 * glibc's own exec functions call execve internally, where no preload
 * can see them, so each public one is wrapped here.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

extern char **environ;

static char *wq_preload_entry; /* "LD_PRELOAD=<this library>" */
static char *wq_lib;           /* this library's path */
static char *wq_kernel_entry;  /* "WATCHQ_KERNEL=<socket>" */

/* Called once the library knows its kernel (watchq's load). */
void watchq_exec_env_init(void)
{
	Dl_info info;
	const char *k = getenv("WATCHQ_KERNEL");
	if (!k || !*k || !dladdr((void *)watchq_exec_env_init, &info) || !info.dli_fname)
		return;
	wq_lib = strdup(info.dli_fname);
	size_t n = strlen(wq_lib) + sizeof "LD_PRELOAD=";
	wq_preload_entry = malloc(n);
	size_t m = strlen(k) + sizeof "WATCHQ_KERNEL=";
	wq_kernel_entry = malloc(m);
	if (!wq_lib || !wq_preload_entry || !wq_kernel_entry) {
		wq_lib = NULL;
		return;
	}
	strcpy(wq_preload_entry, "LD_PRELOAD=");
	strcat(wq_preload_entry, wq_lib);
	strcpy(wq_kernel_entry, "WATCHQ_KERNEL=");
	strcat(wq_kernel_entry, k);
}

/*
 * `envp` with the two entries put back where missing (a new array, or
 * `envp` itself when nothing is missing). An LD_PRELOAD without this
 * library gets it in front. The array is never freed: exec replaces the
 * image, and a failed exec leaks one array.
 */
static char *const *fix_env(char *const envp[])
{
	size_t n = 0, pre = (size_t)-1, ker = (size_t)-1;
	if (!wq_lib)
		return envp;
	if (envp)
		for (; envp[n]; n++) {
			if (strncmp(envp[n], "LD_PRELOAD=", 11) == 0)
				pre = n;
			else if (strncmp(envp[n], "WATCHQ_KERNEL=", 14) == 0)
				ker = n;
		}
	int pre_ok = pre != (size_t)-1 && strstr(envp[pre], wq_lib);
	if (pre_ok && ker != (size_t)-1)
		return envp;
	char **out = malloc((n + 3) * sizeof *out);
	if (!out)
		return envp;
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (i == pre || i == ker)
			continue;
		out[j++] = envp[i];
	}
	if (pre != (size_t)-1 && !pre_ok) {
		/* LD_PRELOAD=<ours>:<theirs> */
		const char *theirs = envp[pre] + 11;
		char *e = malloc(strlen(wq_preload_entry) + 1 + strlen(theirs) + 1);
		if (e) {
			strcpy(e, wq_preload_entry);
			if (*theirs) {
				strcat(e, ":");
				strcat(e, theirs);
			}
			out[j++] = e;
		} else {
			out[j++] = wq_preload_entry;
		}
	} else if (pre != (size_t)-1) {
		out[j++] = envp[pre];
	} else {
		out[j++] = wq_preload_entry;
	}
	out[j++] = ker != (size_t)-1 ? envp[ker] : wq_kernel_entry;
	out[j] = NULL;
	return out;
}

#define REAL(name, type)                                              \
	static type real_##name;                                      \
	if (!real_##name)                                             \
		real_##name = (type)dlsym(RTLD_NEXT, #name);

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			const posix_spawnattr_t *, char *const[], char *const[]);

/* tree.rs: the kernel's view of new processes and threads. */
void watchq_forked(int pid);
void watchq_before_exec(void);
int watchq_thread_keyring_passes(void);
void watchq_thread_keyring_new(void);

int execve(const char *path, char *const argv[], char *const envp[])
{
	REAL(execve, execve_fn);
	watchq_before_exec();
	return real_execve(path, argv, fix_env(envp));
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
	REAL(execvpe, execve_fn);
	watchq_before_exec();
	return real_execvpe(file, argv, fix_env(envp));
}

int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

/* execl, execlp, execle: the list made a vector (at most 4096 words). */
#define LIST_ARGS(first, ap, argv)                                    \
	char *argv[4097];                                             \
	size_t argc_ = 0;                                             \
	argv[argc_++] = (char *)(first);                              \
	while (argc_ < 4096 && (argv[argc_] = va_arg(ap, char *)))    \
		argc_++;                                              \
	argv[argc_] = NULL;

int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	LIST_ARGS(arg, ap, argv);
	va_end(ap);
	return execve(path, argv, environ);
}

int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	LIST_ARGS(arg, ap, argv);
	va_end(ap);
	return execvpe(file, argv, environ);
}

int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	LIST_ARGS(arg, ap, argv);
	char *const *envp = va_arg(ap, char *const *);
	va_end(ap);
	return execve(path, argv, envp);
}

static int spawned(int rc, pid_t child, pid_t *pid)
{
	if (rc == 0) {
		int e = errno;
		watchq_forked(child);
		errno = e;
		if (pid)
			*pid = child;
	}
	return rc;
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
		const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	REAL(posix_spawn, spawn_fn);
	pid_t child;
	int rc = real_posix_spawn(&child, path, fa, attr, argv, fix_env(envp));
	return spawned(rc, child, pid);
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
		 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	REAL(posix_spawnp, spawn_fn);
	pid_t child;
	int rc = real_posix_spawnp(&child, file, fa, attr, argv, fix_env(envp));
	return spawned(rc, child, pid);
}

/*
 * A child made by fork() or posix_spawn() is entered in the kernel as this
 * process's fork at once, so it keeps its session keyring even if this
 * process exits before the child's first call (tree.rs). errno is the
 * real call's.
 */
typedef pid_t (*fork_fn)(void);

pid_t fork(void)
{
	REAL(fork, fork_fn);
	pid_t pid = real_fork();
	if (pid > 0) {
		int e = errno;
		watchq_forked(pid);
		errno = e;
	}
	return pid;
}

/*
 * daemon(3): glibc's forks internally, where the wrapper above cannot see
 * it, and its parent exits at once, before the child's first call: the
 * very case the announcement is for. So it is done here, with the same
 * steps and errors as daemon(3) documents (a new session; "/" unless
 * nochdir; standard streams on /dev/null unless noclose, ENODEV when that
 * is not the null device).
 */
int daemon(int nochdir, int noclose)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	if (!nochdir && chdir("/") < 0) {
		/* daemon(3) goes on from where it is. */
	}
	if (noclose)
		return 0;
	int fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
		close(fd);
		errno = ENODEV;
		return -1;
	}
	for (int i = 0; i <= 2; i++)
		dup2(fd, i);
	if (fd > 2)
		close(fd);
	return 0;
}

/*
 * A new thread gets a thread keyring of its own when its creator has one
 * (tree.rs): then the start routine runs behind one that makes it.
 */
struct wq_start {
	void *(*fn)(void *);
	void *arg;
};

static void *wq_thread_start(void *p)
{
	struct wq_start s = *(struct wq_start *)p;
	free(p);
	watchq_thread_keyring_new();
	return s.fn(s.arg);
}

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	REAL(pthread_create, pthread_create_fn);
	struct wq_start *s;
	if (!watchq_thread_keyring_passes() || !(s = malloc(sizeof *s)))
		return real_pthread_create(t, attr, fn, arg);
	s->fn = fn;
	s->arg = arg;
	int rc = real_pthread_create(t, attr, wq_thread_start, s);
	if (rc)
		free(s);
	return rc;
}

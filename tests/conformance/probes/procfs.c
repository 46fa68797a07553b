/* procfs.c - the key subsystem's /proc files, on a real kernel and on watchq.
 *
 * watchq's own probe (tests/conformance/README.md). Sections:
 *   sysctl: reads and root's writes of /proc/sys/kernel/keys/ (each file): whole and
 *     short reads, a read past the start, good, bad and out-of-range
 *     values, a write past the start, two numbers, pwrite, and the same
 *     through stdio (fprintf, as `sysctl -w` and bash's echo write); every
 *     value is put back.
 *   sysctl-user: the same files as uid 1000: opens for reading and for
 *     writing, and a write through a descriptor root opened (EPERM).
 *   listing: a uid-1000 child's own keys as /proc/keys lists them (serials
 *     as labels) and its /proc/key-users line; /proc/keys opened for
 *     writing. (Before `effect`, whose keys the collector removes later.)
 *   effect: root sets maxkeys to 4; uid 1000 adds keys until EDQUOT; root
 *     puts it back.
 *   pipe-pages: /proc/sys/fs/pipe-user-pages-soft and -hard (their
 *     parsing; as uid 1000, notification pipes made over the soft limit
 *     get 2 pages, SET_SIZE growing one past them is EPERM, over the hard
 *     limit pipe2 is ENFILE); both put back.
 *   sysctl-stdio: writes through stdio (fflush and fclose get the
 *     handler's errno, the stream's error flag), fdopen over open()'s
 *     descriptor, spellings of one value and two values, writev, a write
 *     in two parts, lseek back to the start, a stream written after
 *     dropping to uid 1000 (EPERM), and bash's and dash's `echo >`.
 *
 *   writes-strict: /proc/sys/kernel/sysctl_writes_strict at 1, 0 and -1:
 *     writes past the start of gc_delay (a second write, pwrite, stdio)
 *     ignored or taken as values; its own range.
 *   usage: /proc/keys's usage counts with several holders: links, forked
 *     children that made no call, a zombie, a second thread, a thread with
 *     a thread keyring, a process keyring and a child.
 *   gc-link-bytes: uid 1000's charged keys and bytes (/proc/key-users)
 *     around a keyring's links: a key added, invalidated and removed by
 *     the collector (its link's 4 bytes stay charged to the keyring), a key
 *     unlinked (they go back), another added, the keyring cleared.
 *   big-key: big_key payloads around the size above which the kernel
 *     keeps one in a file (/proc/keys says "[file]" or "[buff]"), read
 *     back, and what they charge (/proc/key-users), as uid 1002.
 *   pipe-pages-ordinary (only with --native-pipes): ordinary pipes made
 *     by uid 1000 under the page limits: 16 or 2 pages, F_SETPIPE_SZ's
 *     EPERM and what it charges, a notification pipe after them, ENFILE.
 *
 * Usage: procfs [--native-pipes] [SECTION...]   (as root)
 */
#include "probe.h"
#include <pthread.h>
#include <sys/wait.h>

static const char *files[] = {"maxkeys", "maxbytes", "root_maxkeys", "root_maxbytes",
			      "gc_delay", "persistent_keyring_expiry"};

static char path_buf[128];
static const char *path(const char *f)
{
	snprintf(path_buf, sizeof path_buf, "/proc/sys/kernel/keys/%s", f);
	return path_buf;
}

/* Prints `read(what, n) = r "text"`. */
static void rdp(int fd, size_t n, const char *what)
{
	char b[256];
	if (n > sizeof b - 1)
		n = sizeof b - 1;
	ssize_t r = read(fd, b, n);
	int e = errno;
	if (r < 0) {
		printf("read(%s, %zu) = -1 %s\n", what, n, errname(e));
		return;
	}
	printf("read(%s, %zu) = %zd \"", what, n, r);
	for (ssize_t i = 0; i < r; i++)
		printf(b[i] == '\n' ? "\\n" : "%c", b[i]);
	printf("\"\n");
}

/* The number the file at `p` holds (-1 when it cannot be read). */
static long read_long(const char *p)
{
	char b[64] = {0};
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, b, sizeof b - 1);
	close(fd);
	return n > 0 ? atol(b) : -1;
}

static long value(const char *f)
{
	return read_long(path(f));
}

static void put(const char *f, long v)
{
	char b[32];
	int fd = open(path(f), O_WRONLY);
	int n = snprintf(b, sizeof b, "%ld\n", v);
	if (fd >= 0) {
		if (write(fd, b, n) != n)
			printf("# restoring %s failed\n", f);
		close(fd);
	}
}

/* One write of `text` to a fresh open of `f`, and the value after. */
static void wr(const char *f, const char *text)
{
	int fd = open(path(f), O_WRONLY | O_TRUNC);
	if (fd < 0) {
		printf("open(%s, O_WRONLY|O_TRUNC) = -1 %s\n", f, errname(errno));
		return;
	}
	ssize_t r = write(fd, text, strlen(text));
	int e = errno;
	close(fd);
	printf("write(%s, \"", f);
	for (const char *c = text; *c; c++)
		printf(*c == '\n' ? "\\n" : "%c", *c);
	if (r < 0)
		printf("\") = -1 %s", errname(e));
	else
		printf("\") = %zd", r);
	printf("; now %ld\n", value(f));
}

static void sec_sysctl(void)
{
	section("sysctl");
	long saved[6];
	for (int i = 0; i < 6; i++) {
		saved[i] = value(files[i]);
		int fd = open(path(files[i]), O_RDONLY);
		if (fd < 0) {
			printf("open(%s) = -1 %s\n", files[i], errname(errno));
			continue;
		}
		rdp(fd, 200, files[i]);
		rdp(fd, 200, files[i]);
		close(fd);
	}
	/* Short reads: what one byte at a time gives, from a fresh open. */
	int fd = open(path("gc_delay"), O_RDONLY);
	rdp(fd, 1, "gc_delay");
	rdp(fd, 1, "gc_delay");
	close(fd);
	fd = open(path("maxkeys"), O_RDONLY);
	rdp(fd, 3, "maxkeys");
	rdp(fd, 3, "maxkeys");
	close(fd);
	fd = open(path("gc_delay"), O_RDONLY);
	CALL(write(fd, "1", 1));
	close(fd);

	const char *gc_inputs[] = {"7\n", "8", "  9  \n", "0x10", "011", "09", "-1", "-0",
				   "+5", "abc", "5x", " \n", "1 2", "2147483647",
				   "2147483648", "123456789012345678901", ""};
	for (size_t i = 0; i < sizeof gc_inputs / sizeof *gc_inputs; i++)
		wr("gc_delay", gc_inputs[i]);
	wr("maxkeys", "0");
	wr("maxkeys", "1");
	wr("root_maxbytes", "0");
	wr("persistent_keyring_expiry", "0");

	/* A write past the start is ignored (and taken whole). */
	fd = open(path("gc_delay"), O_WRONLY);
	CALL(write(fd, "11", 2));
	CALL(write(fd, "12", 2));
	close(fd);
	printf("gc_delay now %ld\n", value("gc_delay"));
	fd = open(path("gc_delay"), O_WRONLY);
	CALL(pwrite(fd, "13", 2, 0));
	CALL(pwrite(fd, "14", 2, 5));
	close(fd);
	printf("gc_delay now %ld\n", value("gc_delay"));
	fd = open(path("gc_delay"), O_RDWR);
	CALL(write(fd, "15\n", 3));
	CALL(lseek(fd, 0, SEEK_SET));
	rdp(fd, 100, "gc_delay");
	close(fd);
	fd = open(path("gc_delay"), O_RDONLY);
	CALL(write(fd, "16", 2));
	char b[8];
	CALL(pread(fd, b, sizeof b, 0));
	CALL(pread(fd, b, sizeof b, 1));
	close(fd);

	/* Through stdio, as `sysctl -w` and bash's echo write. */
	FILE *f = fopen(path("gc_delay"), "w");
	if (f) {
		fprintf(f, "17\n");
		printf("fclose = %d\n", fclose(f));
	}
	printf("gc_delay now %ld\n", value("gc_delay"));
	f = fopen(path("gc_delay"), "r");
	if (f) {
		char line[32] = {0};
		printf("fgets = \"%s\"", fgets(line, sizeof line, f) ? strtok(line, "\n") : "");
		printf("\n");
		fclose(f);
	}
	CALL(open(path("gc_delay"), O_WRONLY | O_CREAT | O_EXCL, 0644));
	CALL(open(path("gc_delay"), O_RDONLY | O_DIRECTORY));
	CALL(open("/proc/sys/kernel/keys/nonesuch", O_RDONLY));
	for (int i = 0; i < 6; i++)
		if (saved[i] >= 0)
			put(files[i], saved[i]);
	for (int i = 0; i < 6; i++)
		printf("restored %s = %s\n", files[i], value(files[i]) == saved[i] ? "yes" : "no");
}

static int32_t S;

static int as_user(void)
{
	if (setresgid(1000, 1000, 1000) < 0 || setresuid(1000, 1000, 1000) < 0) {
		printf("setresuid(1000) = -1 %s\n", errname(errno));
		return -1;
	}
	return 0;
}

static void wait_child(pid_t pid)
{
	int st = 0;
	waitpid(pid, &st, 0);
	printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static void sec_sysctl_user(void)
{
	section("sysctl-user");
	fflush(stdout);
	int rootfd = open(path("gc_delay"), O_WRONLY);
	pid_t pid = fork();
	if (pid == 0) {
		if (as_user() < 0)
			_exit(1);
		int fd = open(path("gc_delay"), O_RDONLY);
		printf("open(gc_delay, O_RDONLY) = %s\n", fd >= 0 ? "fd" : errname(errno));
		if (fd >= 0) {
			rdp(fd, 100, "gc_delay");
			close(fd);
		}
		CALL(open(path("gc_delay"), O_WRONLY));
		CALL(open(path("gc_delay"), O_RDWR));
		CALL(open(path("maxkeys"), O_WRONLY | O_TRUNC));
		CALL(write(rootfd, "5", 1));
		CALL(open("/proc/keys", O_WRONLY));
		CALL(open("/proc/key-users", O_RDWR));
		fd = open("/proc/keys", O_RDONLY);
		printf("open(/proc/keys, O_RDONLY) = %s\n", fd >= 0 ? "fd" : errname(errno));
		fflush(stdout);
		_exit(0);
	}
	wait_child(pid);
	close(rootfd);
	printf("gc_delay now %ld\n", value("gc_delay"));
}

/* Does uid 1000 own keys, as /proc/key-users says? */
static int user_has_keys(void)
{
	FILE *f = fopen("/proc/key-users", "r");
	char line[256];
	int found = 0;
	while (f && fgets(line, sizeof line, f))
		found |= strncmp(line, " 1000:", 6) == 0;
	if (f)
		fclose(f);
	return found;
}

static void sec_effect(void)
{
	section("effect");
	/* The collector removes an earlier section's keys a moment after its
	 * child exits: wait for that (up to 3 s) so the quota starts empty. */
	for (int i = 0; i < 300 && user_has_keys(); i++)
		usleep(10000);
	printf("uid 1000 owns keys: %s\n", user_has_keys() ? "yes" : "no");
	long saved = value("maxkeys");
	put("maxkeys", 4);
	printf("maxkeys = %ld\n", value("maxkeys"));
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (as_user() < 0)
			_exit(1);
		nnames = 0;
		S = new_session();
		char d[8];
		for (int i = 0; i < 6; i++) {
			snprintf(d, sizeof d, "k%d", i);
			long r = add_key("user", d, "x", 1, S);
			printf("add_key(user, %s) = %s\n", d, r < 0 ? errname(errno) : "ok");
		}
		fflush(stdout);
		_exit(0);
	}
	wait_child(pid);
	put("maxkeys", saved);
	printf("maxkeys restored = %s\n", value("maxkeys") == saved ? "yes" : "no");
}

/* uid 1000's charged keys and bytes, as /proc/key-users says. */
static void user_quota(int *keys, int *bytes)
{
	FILE *f = fopen("/proc/key-users", "r");
	char line[256];
	unsigned uid;
	int usage, n, ni, maxk, maxb;
	*keys = *bytes = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, " %u: %d %d/%d %d/%d %d/%d", &uid, &usage, &n, &ni, keys, &maxk,
			   bytes, &maxb) == 8 &&
		    uid == 1000)
			break;
	if (f)
		fclose(f);
}

/* Prints the change since `*k`, `*b` (then makes the present the base),
 * after waiting up to 3 s for the charged keys to fall below `wait_below`
 * (the collector's work item runs a moment after the call). */
static void quota_step(const char *what, int *k, int *b, int wait_below)
{
	int nk, nb;
	user_quota(&nk, &nb);
	for (int i = 0; i < 300 && wait_below && nk >= wait_below; i++) {
		usleep(10000);
		user_quota(&nk, &nb);
	}
	printf("%s: keys %+d, bytes %+d\n", what, nk - *k, nb - *b);
	*k = nk;
	*b = nb;
}

static void sec_gc_link_bytes(void)
{
	section("gc-link-bytes");
	for (int i = 0; i < 300 && user_has_keys(); i++)
		usleep(10000);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (as_user() < 0)
			_exit(1);
		nnames = 0;
		S = new_session();
		int32_t R = ADD("keyring", "R", NULL, S, "R");
		int k0, b0;
		user_quota(&k0, &b0);
		int32_t k = ADD("user", "k", "vvvv", R, "k");
		quota_step("add_key k into R", &k0, &b0, 0);
		KC(K_INVALIDATE, k, 0, 0, 0);
		quota_step("k invalidated, then collected", &k0, &b0, k0);
		int32_t k2 = ADD("user", "k2", "vvvv", R, "k2");
		quota_step("add_key k2 into R", &k0, &b0, 0);
		KC(K_UNLINK, k2, R, 0, 0);
		quota_step("k2 unlinked, then collected", &k0, &b0, k0);
		ADD("user", "k3", "vvvv", R, "k3");
		quota_step("add_key k3 into R", &k0, &b0, 0);
		KC(K_CLEAR, R, 0, 0, 0);
		quota_step("R cleared, k3 collected", &k0, &b0, k0);
		fflush(stdout);
		_exit(0);
	}
	wait_child(pid);
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* /proc/keys lines for the keys this process named, serials as labels,
 * sorted (the kernel lists in serial order, and serials are random). */
static void keys_lines(void)
{
	FILE *f = fopen("/proc/keys", "r");
	char line[512], *out[64];
	int n = 0;
	while (f && fgets(line, sizeof line, f) && n < 64) {
		unsigned s;
		if (sscanf(line, "%x", &s) != 1 || !label_of((int32_t)s))
			continue;
		if (asprintf(&out[n], "keys: <%s>%s", label_of((int32_t)s), line + 8) > 0)
			n++;
	}
	if (f)
		fclose(f);
	qsort(out, n, sizeof *out, cmp_line);
	for (int i = 0; i < n; i++) {
		printf("%s", out[i]);
		free(out[i]);
	}
}

/* The /proc/key-users line that starts with `uid` (" 1000:"). */
static void key_users_line(const char *uid)
{
	FILE *f = fopen("/proc/key-users", "r");
	char line[256];
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, uid, strlen(uid)) == 0)
			printf("key-users: %s", line);
	if (f)
		fclose(f);
}

static void sec_listing(void)
{
	section("listing");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (as_user() < 0)
			_exit(1);
		nnames = 0;
		S = new_session();
		int32_t a = ADD("user", "a", "hello", S, "a");
		int32_t R = ADD("keyring", "R", NULL, S, "R");
		KC(K_LINK, a, R, 0, 0);
		int32_t t = ADD("user", "timed", "x", R, "t");
		KC(K_SET_TIMEOUT, t, 100, 0, 0);
		int32_t t2 = ADD("user", "timed2", "x", R, "t2");
		KC(K_SET_TIMEOUT, t2, 5400, 0, 0); /* 1h even a second later */
		int32_t v = ADD("user", "revoked", "x", R, "v");
		KC(K_REVOKE, v, 0, 0, 0);
		int32_t p = ADD("user", "private", "x", S, "p");
		KC(K_SETPERM, p, 0x3f000000, 0, 0);
		ADD("keyring", "E", NULL, S, "E");
		ADD("big_key", "big", "small", S, "big");
		keys_lines();
		key_users_line(" 1000:");
		fflush(stdout);
		_exit(0);
	}
	wait_child(pid);
	int fd = open("/proc/keys", O_WRONLY);
	printf("open(/proc/keys, O_WRONLY) as root = %s\n", fd >= 0 ? "fd" : errname(errno));
	if (fd >= 0) {
		CALL(write(fd, "x", 1));
		close(fd);
	}
	fd = open("/proc/key-users", O_RDONLY);
	CALL(write(fd, "x", 1));
	close(fd);
}

static void sec_big_key(void)
{
	section("big-key");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		/* A uid no other section used: its counts are this section's. */
		if (setresgid(1002, 1002, 1002) < 0 || setresuid(1002, 1002, 1002) < 0)
			_exit(1);
		nnames = 0;
		S = new_session();
		static const int lens[] = { 1,   512, 700, 760, 761, 762, 763, 764, 765, 766,
					    767, 768, 769, 770, 771, 772, 773, 774, 775, 776,
					    777, 778, 779, 780, 781, 782, 783, 784, 792, 793,
					    1024, 4096 };
		static char data[4096];
		for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
			char desc[16], label[16];
			memset(data, 'a' + (int)(i % 26), (size_t)lens[i]);
			snprintf(desc, sizeof desc, "b%d", lens[i]);
			snprintf(label, sizeof label, "b%d", lens[i]);
			long r = add_key("big_key", desc, data, (size_t)lens[i], S);
			if (r > 0)
				name(r, label);
			char text[64];
			snprintf(text, sizeof text, "add_key(big_key, %s, <%d bytes>, S)", desc, lens[i]);
			show(text, r);
			if (r > 0) {
				static char back[4096];
				long n = keyctl(K_READ, r, (long)back, sizeof back, 0);
				printf("read back %ld bytes, %s\n", n,
				       n == lens[i] && memcmp(back, data, (size_t)n) == 0 ? "same" : "DIFFERENT");
			}
		}
		keys_lines();
		key_users_line(" 1002:");
		KC(K_CLEAR, S, 0, 0, 0);
		fflush(stdout);
		_exit(0);
	}
	wait_child(pid);
}

static const char *fs_path(const char *f)
{
	snprintf(path_buf, sizeof path_buf, "/proc/sys/fs/%s", f);
	return path_buf;
}

static long fs_value(const char *f)
{
	return read_long(fs_path(f));
}

static long fs_put(const char *f, const char *text)
{
	int fd = open(fs_path(f), O_WRONLY);
	if (fd < 0)
		return -1;
	long r = write(fd, text, strlen(text));
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

static void pipe_user(const char *what)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (as_user() < 0)
			_exit(1);
		int a[2], b[2], c[2];
		printf("# %s\n", what);
		if (show("pipe2(a)", pipe2(a, O_NOTIFICATION_PIPE)) < 0)
			_exit(0);
		CALL(fcntl(a[0], F_GETPIPE_SZ));
		CALL(ioctl(a[0], IOC_SET_SIZE, 512));
		CALL(fcntl(a[0], F_GETPIPE_SZ));
		if (show("pipe2(b)", pipe2(b, O_NOTIFICATION_PIPE)) < 0)
			_exit(0);
		CALL(fcntl(b[0], F_GETPIPE_SZ));
		CALL(ioctl(b[0], IOC_SET_SIZE, 512));
		CALL(ioctl(b[0], IOC_SET_SIZE, 0));
		CALL(ioctl(b[0], IOC_SET_SIZE, 64));
		CALL(fcntl(b[0], F_GETPIPE_SZ));
		close(a[0]);
		close(a[1]);
		if (show("pipe2(c)", pipe2(c, O_NOTIFICATION_PIPE)) < 0)
			_exit(0);
		CALL(fcntl(c[0], F_GETPIPE_SZ));
		CALL(ioctl(c[0], IOC_SET_SIZE, 33));
		CALL(fcntl(c[0], F_GETPIPE_SZ));
		fflush(stdout);
		_exit(0);
	}
	wait_child(pid);
}

static void sec_pipe_pages(void)
{
	section("pipe-pages");
	long soft = fs_value("pipe-user-pages-soft"), hard = fs_value("pipe-user-pages-hard");
	printf("pipe-user-pages-soft = %ld, -hard = %ld\n", soft, hard);
	CALL(fs_put("pipe-user-pages-soft", "-1"));
	CALL(fs_put("pipe-user-pages-soft", "-0"));
	CALL(fs_put("pipe-user-pages-soft", "abc"));
	CALL(fs_put("pipe-user-pages-soft", "18446744073709551615"));
	int fd = open(fs_path("pipe-user-pages-soft"), O_RDONLY);
	rdp(fd, 100, "pipe-user-pages-soft");
	close(fd);
	CALL(fs_put("pipe-user-pages-soft", "20\n"));
	CALL(fs_put("pipe-user-pages-hard", "0"));
	pipe_user("soft 20, no hard limit");
	CALL(fs_put("pipe-user-pages-soft", "0"));
	CALL(fs_put("pipe-user-pages-hard", "20"));
	pipe_user("no soft limit, hard 20");
	char b[32];
	snprintf(b, sizeof b, "%ld", soft);
	fs_put("pipe-user-pages-soft", b);
	snprintf(b, sizeof b, "%ld", hard);
	fs_put("pipe-user-pages-hard", b);
	printf("restored = %s\n",
	       fs_value("pipe-user-pages-soft") == soft && fs_value("pipe-user-pages-hard") == hard
		       ? "yes" : "no");
}


/* `expr` on stream `f`: its result, errno when it failed, and ferror. */
#define FCALL(f, expr)                                                              \
	do {                                                                        \
		errno = 0;                                                          \
		long r_ = (long)(expr);                                             \
		int e_ = errno;                                                     \
		if (r_ < 0)                                                         \
			printf("%s = %ld %s", #expr, r_, errname(e_));              \
		else                                                                \
			printf("%s = %ld", #expr, r_);                              \
		printf("; ferror %d\n", ferror(f) ? 1 : 0);                         \
	} while (0)

/* A shell command's output (stderr too) and status. */
static void shell(const char *cmd)
{
	printf("$ %s\n", cmd);
	fflush(stdout);
	char b[512];
	snprintf(b, sizeof b, "%s 2>&1", cmd);
	int st = system(b);
	printf("status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void sec_sysctl_stdio(void)
{
	section("sysctl-stdio");
	long saved = value("gc_delay");
	/* A fully buffered stream: the value reaches the handler at fflush. */
	FILE *f = fopen(path("gc_delay"), "w");
	FCALL(f, fprintf(f, "abc\n"));
	FCALL(f, fflush(f));
	printf("gc_delay now %ld\n", value("gc_delay"));
	FCALL(f, fprintf(f, "21\n"));
	FCALL(f, fflush(f));
	printf("gc_delay now %ld\n", value("gc_delay"));
	printf("fclose = %d\n", fclose(f));
	/* At fclose. */
	f = fopen(path("gc_delay"), "w");
	FCALL(f, fputs("5x\n", f));
	errno = 0;
	int r = fclose(f);
	printf("fclose = %d %s\n", r, r ? errname(errno) : "");
	printf("gc_delay now %ld\n", value("gc_delay"));
	f = fopen(path("gc_delay"), "w");
	FCALL(f, fputs("22\n", f));
	printf("fclose = %d\n", fclose(f));
	printf("gc_delay now %ld\n", value("gc_delay"));
	/* A stream over a descriptor from open(), as a shell's redirection. */
	int fd = open(path("gc_delay"), O_WRONLY);
	f = fdopen(fd, "w");
	FCALL(f, fputs("-3\n", f));
	FCALL(f, fflush(f));
	printf("fclose = %d\n", fclose(f));
	printf("gc_delay now %ld\n", value("gc_delay"));
	/* Other spellings of one value, and two values. */
	const char *inputs[] = {"299\n", "299", "299\n\n", " 299 \n", "299\n300", "300 299\n",
				"\n299"};
	for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++)
		wr("gc_delay", inputs[i]);
	/* writev: one handler call with the vectors' bytes. */
	fd = open(path("gc_delay"), O_WRONLY);
	struct iovec v[2] = {{"2", 1}, {"3\n", 2}};
	CALL(writev(fd, v, 2));
	close(fd);
	printf("gc_delay now %ld\n", value("gc_delay"));
	/* A write in two parts: the second is past the start. */
	fd = open(path("gc_delay"), O_WRONLY);
	CALL(write(fd, "2", 1));
	CALL(write(fd, "99", 2));
	close(fd);
	printf("gc_delay now %ld\n", value("gc_delay"));
	/* Back to the start with lseek, then a write there. */
	fd = open(path("gc_delay"), O_WRONLY);
	CALL(write(fd, "24", 2));
	CALL(lseek(fd, 0, SEEK_SET));
	CALL(write(fd, "25", 2));
	CALL(write(fd, "abc", 3));
	CALL(lseek(fd, 0, SEEK_SET));
	CALL(write(fd, "abc", 3));
	close(fd);
	printf("gc_delay now %ld\n", value("gc_delay"));
	/* A stream root opened, written after dropping to uid 1000. */
	f = fopen(path("gc_delay"), "w");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (as_user() == 0) {
			FCALL(f, fputs("26\n", f));
			FCALL(f, fflush(f));
		}
		fflush(stdout);
		_exit(0);
	}
	wait_child(pid);
	fclose(f);
	printf("gc_delay now %ld\n", value("gc_delay"));
	/* Shells: bash's echo writes through stdio, dash's with write(). */
	shell("bash -c 'echo abc > /proc/sys/kernel/keys/gc_delay'");
	shell("bash -c 'echo 27 > /proc/sys/kernel/keys/gc_delay; cat /proc/sys/kernel/keys/gc_delay'");
	shell("bash -c 'printf 28 > /proc/sys/kernel/keys/gc_delay && cat /proc/sys/kernel/keys/gc_delay'");
	shell("dash -c 'echo abc > /proc/sys/kernel/keys/gc_delay'");
	shell("dash -c 'echo 29 > /proc/sys/kernel/keys/gc_delay; cat /proc/sys/kernel/keys/gc_delay'");
	put("gc_delay", saved);
	printf("restored gc_delay = %s\n", value("gc_delay") == saved ? "yes" : "no");
}


/* Ordinary pipes as uid 1000 under the limits (soft, hard), in a child. */
static void ordinary_user(const char *soft, const char *hard)
{
	fs_put("pipe-user-pages-soft", soft);
	fs_put("pipe-user-pages-hard", hard);
	printf("# soft %s, hard %s\n", soft, hard);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (as_user() < 0)
			_exit(1);
		int a[2], b[2], c[2], d[2];
		if (CALL(pipe2(a, 0)) < 0)
			_exit(0);
		CALL(fcntl(a[0], F_GETPIPE_SZ));
		if (CALL(pipe2(b, 0)) < 0)
			_exit(0);
		CALL(fcntl(b[0], F_GETPIPE_SZ));
		CALL(fcntl(b[0], F_SETPIPE_SZ, 4096));
		CALL(fcntl(b[0], F_SETPIPE_SZ, 65536));
		CALL(fcntl(a[1], F_SETPIPE_SZ, 8192));
		CALL(fcntl(b[0], F_SETPIPE_SZ, 65536));
		CALL(fcntl(a[1], F_SETPIPE_SZ, 65536));
		if (CALL(pipe2(c, O_NOTIFICATION_PIPE)) >= 0) {
			CALL(fcntl(c[0], F_GETPIPE_SZ));
			close(c[0]);
			close(c[1]);
		}
		close(a[0]);
		close(a[1]);
		if (CALL(pipe2(d, 0)) >= 0) {
			CALL(fcntl(d[0], F_GETPIPE_SZ));
			CALL(fcntl(d[0], F_SETPIPE_SZ, 0));
			CALL(fcntl(d[0], F_SETPIPE_SZ, 5000));
			CALL(fcntl(d[0], F_SETPIPE_SZ, 2 << 20));
			CALL(fcntl(d[0], F_SETPIPE_SZ, (1u << 31) + 1));
			CALL(fcntl(d[0], F_GETPIPE_SZ));
		}
		fflush(stdout);
		_exit(0);
	}
	wait_child(pid);
}

/* Ordinary pipes and the page limits: only with --native-pipes (under
 * watchq exec a program's ordinary pipes are the machine's, under the
 * machine's limits; tests/tests/conformance_corpus.rs replays this in
 * process). */
static void sec_pipe_pages_ordinary(void)
{
	section("pipe-pages-ordinary");
	long soft = fs_value("pipe-user-pages-soft"), hard = fs_value("pipe-user-pages-hard");
	ordinary_user("20", "0");
	ordinary_user("0", "20");
	ordinary_user("1", "0");
	char b[32];
	snprintf(b, sizeof b, "%ld", soft);
	fs_put("pipe-user-pages-soft", b);
	snprintf(b, sizeof b, "%ld", hard);
	fs_put("pipe-user-pages-hard", b);
	printf("restored = %s\n",
	       fs_value("pipe-user-pages-soft") == soft && fs_value("pipe-user-pages-hard") == hard
		       ? "yes" : "no");
}


/* The usage column /proc/keys shows for `key` (-1 when not listed). */
static int usage_of(int32_t key)
{
	FILE *f = fopen("/proc/keys", "r");
	char line[512];
	int u = -1;
	while (f && fgets(line, sizeof line, f)) {
		unsigned s;
		char flags[16];
		int n;
		if (sscanf(line, "%x %15s %d", &s, flags, &n) == 3 && (int32_t)s == key)
			u = n;
	}
	if (f)
		fclose(f);
	return u;
}

static int gate[2];

static void *blocked_thread(void *arg)
{
	if (arg)
		printf("thread keyring = %s\n",
		       keyctl(K_GET_KEYRING_ID, -1 /* thread */, 1, 0, 0) > 0 ? "made" : "none");
	fflush(stdout);
	char c;
	if (read(gate[0], &c, 1) < 0)
		return NULL;
	return NULL;
}

/* Forks `n` children that wait on the gate without a call. */
static void fork_waiters(int n, pid_t *pids)
{
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			char c;
			if (read(gate[0], &c, 1) < 0)
				_exit(1);
			_exit(0);
		}
	}
}

static void open_gate(int n)
{
	for (int i = 0; i < n; i++)
		if (write(gate[1], "x", 1) != 1)
			printf("# gate\n");
}

/* Who holds a key, as /proc/keys counts it: each link, each credential
 * that names it (a process's; a thread's own once it has a thread
 * keyring), a zombie's until it is reaped. */
static void sec_usage(void)
{
	section("usage");
	fflush(stdout);
	pid_t top = fork();
	if (top == 0) {
		nnames = 0;
		S = new_session();
		if (pipe(gate) < 0)
			_exit(1);
		printf("usage S alone = %d\n", usage_of(S));
		int32_t a = ADD("user", "a", "x", S, "a");
		int32_t R = ADD("keyring", "R", NULL, S, "R");
		KC(K_LINK, a, R, 0, 0);
		printf("usage a (in S and R) = %d\n", usage_of(a));
		printf("usage R = %d\n", usage_of(R));
		pid_t kids[2];
		fork_waiters(2, kids);
		usleep(100000);
		printf("usage S with 2 children = %d\n", usage_of(S));
		printf("usage a with 2 children = %d\n", usage_of(a));
		open_gate(2);
		for (int i = 0; i < 2; i++)
			waitpid(kids[i], NULL, 0);
		sleep(1); /* a released cred drops its keys after an RCU grace period */
		printf("usage S after they are reaped = %d\n", usage_of(S));
		fflush(stdout);
		pid_t z = fork();
		if (z == 0)
			_exit(0);
		usleep(200000);
		printf("usage S with a zombie = %d\n", usage_of(S));
		waitpid(z, NULL, 0);
		sleep(1);
		printf("usage S after it is reaped = %d\n", usage_of(S));
		pthread_t t;
		pthread_create(&t, NULL, blocked_thread, NULL);
		usleep(100000);
		printf("usage S with a second thread = %d\n", usage_of(S));
		open_gate(1);
		pthread_join(t, NULL);
		pthread_create(&t, NULL, blocked_thread, "keyring");
		usleep(100000);
		printf("usage S with a thread that has a thread keyring = %d\n", usage_of(S));
		open_gate(1);
		pthread_join(t, NULL);
		sleep(1);
		printf("usage S after it ended = %d\n", usage_of(S));
		int32_t P = (int32_t)keyctl(K_GET_KEYRING_ID, -2 /* process */, 1, 0, 0);
		name(P, "P");
		sleep(1);
		printf("usage P = %d\n", usage_of(P));
		printf("usage S with a process keyring = %d\n", usage_of(S));
		fork_waiters(1, kids);
		usleep(100000);
		printf("usage P with a child = %d\n", usage_of(P));
		printf("usage S with a child = %d\n", usage_of(S));
		open_gate(1);
		waitpid(kids[0], NULL, 0);
		fflush(stdout);
		_exit(0);
	}
	wait_child(top);
	/* A descriptor keeps the cred it was opened under. */
	top = fork();
	if (top == 0) {
		nnames = 0;
		S = new_session();
		int fd = open("/dev/null", O_RDONLY);
		int32_t P = (int32_t)keyctl(K_GET_KEYRING_ID, -2 /* process */, 1, 0, 0);
		name(P, "P");
		sleep(1);
		printf("usage S after a process keyring, a file open from before = %d\n",
		       usage_of(S));
		close(fd);
		sleep(1);
		printf("usage S once it is closed = %d\n", usage_of(S));
		fflush(stdout);
		_exit(0);
	}
	wait_child(top);
}


static const char *strict_path = "/proc/sys/kernel/sysctl_writes_strict";

/* Writes `text` to sysctl_writes_strict. */
static long strict_put(const char *text)
{
	int fd = open(strict_path, O_WRONLY);
	if (fd < 0)
		return -1;
	long r = write(fd, text, strlen(text));
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

/* Two writes in one open, and a pwrite past the start, of gc_delay. */
static void past_the_start(void)
{
	int fd = open(path("gc_delay"), O_WRONLY);
	CALL(write(fd, "31", 2));
	CALL(write(fd, "32\n", 3));
	CALL(write(fd, "abc", 3));
	close(fd);
	printf("gc_delay now %ld\n", value("gc_delay"));
	fd = open(path("gc_delay"), O_WRONLY);
	CALL(pwrite(fd, "33", 2, 7));
	close(fd);
	printf("gc_delay now %ld\n", value("gc_delay"));
	FILE *f = fopen(path("gc_delay"), "w");
	fprintf(f, "34\n");
	fflush(f);
	fprintf(f, "35\n");
	printf("fclose = %d\n", fclose(f));
	printf("gc_delay now %ld\n", value("gc_delay"));
}

/* sysctl_writes_strict: 1 ignores a write past the start of a number
 * sysctl, 0 (warn) and -1 (legacy) read it as a value. */
static void sec_writes_strict(void)
{
	section("writes-strict");
	long saved = value("gc_delay"), strict = read_long(strict_path);
	printf("sysctl_writes_strict = %ld\n", strict);
	past_the_start();
	CALL(strict_put("0"));
	past_the_start();
	CALL(strict_put("-1\n"));
	printf("sysctl_writes_strict = %ld\n", read_long(strict_path));
	past_the_start();
	CALL(strict_put("2"));
	CALL(strict_put("-2"));
	CALL(strict_put("x"));
	int fd = open(strict_path, O_WRONLY);
	CALL(write(fd, "1", 1));
	CALL(write(fd, "0", 1));
	close(fd);
	printf("sysctl_writes_strict = %ld\n", read_long(strict_path));
	char b[32];
	snprintf(b, sizeof b, "%ld", strict);
	strict_put(b);
	put("gc_delay", saved);
	printf("restored = %s\n",
	       read_long(strict_path) == strict && value("gc_delay") == saved ? "yes" : "no");
}

int main(int argc, char **argv)
{
	int native_pipes = 0;
	options(argc, argv, NULL, NULL, "--native-pipes", &native_pipes);
	printf("# procfs probe, uid %u\n", (unsigned)getuid());
	if (wanted("sysctl")) sec_sysctl();
	if (wanted("sysctl-user")) sec_sysctl_user();
	if (wanted("listing")) sec_listing();
	if (wanted("effect")) sec_effect();
	if (wanted("pipe-pages")) sec_pipe_pages();
	if (wanted("sysctl-stdio")) sec_sysctl_stdio();
	if (wanted("writes-strict")) sec_writes_strict();
	if (wanted("usage")) sec_usage();
	if (wanted("gc-link-bytes")) sec_gc_link_bytes();
	if (wanted("big-key")) sec_big_key();
	if (native_pipes && wanted("pipe-pages-ordinary")) sec_pipe_pages_ordinary();
	printf("=== DONE\n");
	return 0;
}

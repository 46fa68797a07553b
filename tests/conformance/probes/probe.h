/* probe.h - the conformance probes' common part: calling, naming, decoding.
 *
 * watchq's own code (see tests/conformance/README.md). Every probe prints,
 * one line each, every call it makes with its result, and every record it
 * reads, decoded and in hex. Key serials are random on a real kernel, so a
 * probe gives each key a label when it is made (`name(serial, "k1")`) and
 * prints `<k1>` wherever that serial appears: in a result, in a record's
 * decoded fields and in its hex words. Two runs on two kernels then print
 * the same text when the kernels behave the same.
 *
 * A line that starts with `~` depends on timing (when the key collector
 * ran); the comparison treats it by the rule of tests/conformance/README.md.
 *
 * Only raw system calls: no libkeyutils, so a probe links with libc alone
 * and `watchq exec` sees every call through its syscall() interposer.
 */
#ifndef WQ_PROBE_H
#define WQ_PROBE_H

#define _GNU_SOURCE
#pragma GCC diagnostic ignored "-Wunused-function"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* uapi values (include/uapi/linux/{keyctl,watch_queue}.h), written out so
 * the probes build against any libc headers. */
#define O_NOTIFICATION_PIPE O_EXCL
#define IOC_SET_SIZE _IO('W', 0x60)
#define IOC_SET_FILTER _IO('W', 0x61)
#define K_GET_KEYRING_ID 0
#define K_JOIN_SESSION 1
#define K_UPDATE 2
#define K_REVOKE 3
#define K_CHOWN 4
#define K_SETPERM 5
#define K_DESCRIBE 6
#define K_CLEAR 7
#define K_LINK 8
#define K_UNLINK 9
#define K_SEARCH 10
#define K_READ 11
#define K_INSTANTIATE 12
#define K_NEGATE 13
#define K_SET_REQKEY 14
#define K_SET_TIMEOUT 15
#define K_ASSUME_AUTHORITY 16
#define K_GET_SECURITY 17
#define K_REJECT 19
#define K_INVALIDATE 21
#define K_GET_PERSISTENT 22
#define K_RESTRICT 29
#define K_MOVE 30
#define K_CAPABILITIES 31
#define K_WATCH_KEY 32
#define MOVE_EXCL 1
#define SPEC_THREAD -1
#define SPEC_PROCESS -2
#define SPEC_SESSION -3
#define SPEC_USER -4
#define SPEC_USER_SESSION -5
#define SPEC_REQKEY_AUTH -7

struct wq_type_filter {
	uint32_t type, info_filter, info_mask, subtype_filter[8];
};
struct wq_filter {
	uint32_t nr_filters, reserved;
	struct wq_type_filter filters[16];
};

/* ---------------------------------------------------------------- names */

#define MAX_NAMES 256
static struct {
	int32_t serial;
	char label[24];
} names[MAX_NAMES];
static int nnames;

/* Gives `serial` a label (a later label for the same serial wins). */
static int32_t name(long serial, const char *label)
{
	if (serial <= 0)
		return (int32_t)serial;
	for (int i = 0; i < nnames; i++)
		if (names[i].serial == serial) {
			snprintf(names[i].label, sizeof names[i].label, "%s", label);
			return (int32_t)serial;
		}
	if (nnames < MAX_NAMES) {
		names[nnames].serial = (int32_t)serial;
		snprintf(names[nnames].label, sizeof names[nnames].label, "%s", label);
		nnames++;
	}
	return (int32_t)serial;
}

static const char *label_of(int32_t serial)
{
	for (int i = 0; i < nnames; i++)
		if (names[i].serial == serial)
			return names[i].label;
	return NULL;
}

/* A key the probe did not make itself (request_key's negative keys, say):
 * named `?DESC` after its description, if the caller may describe it. */
static const char *label_unknown(int32_t serial)
{
	char d[256];
	if (serial <= 0 || syscall(SYS_keyctl, 6 /* DESCRIBE */, serial, d, sizeof d) < 0)
		return NULL;
	d[sizeof d - 1] = 0;
	char *desc = strrchr(d, ';');
	char l[24];
	snprintf(l, sizeof l, "?%.20s", desc ? desc + 1 : d);
	name(serial, l);
	return label_of(serial);
}

/* A serial as `<label>`, or as `?` when unnamed (a serial is random, so an
 * unnamed one must never reach the output). */
static const char *key_str(int32_t serial)
{
	static char buf[8][32];
	static int n;
	char *b = buf[n++ % 8];
	const char *l = label_of(serial);
	if (!l)
		l = label_unknown(serial);
	if (l)
		snprintf(b, 32, "<%s>", l);
	else if (serial <= 0)
		snprintf(b, 32, "%d", serial);
	else
		snprintf(b, 32, "<?>");
	return b;
}

/* ---------------------------------------------------------------- calls */

static const char *errname(int e)
{
	switch (e) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(EINTR) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES)
	E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR) E(EINVAL)
	E(EMFILE) E(ENOTTY) E(ESPIPE) E(EPIPE) E(EDEADLK) E(ENOSYS) E(ELOOP)
	E(ENODATA) E(EBADSLT) E(ENOPKG) E(EOPNOTSUPP) E(ENOBUFS) E(EDQUOT)
	E(ENOKEY) E(EKEYEXPIRED) E(EKEYREVOKED) E(EKEYREJECTED) E(EBADMSG)
	E(ENOSPC) E(EMSGSIZE) E(ENFILE) E(EIO) E(EOVERFLOW)
#undef E
	default: return "E?";
	}
}

/* Prints `text = result`: a named serial as its label, else the number;
 * a failure as `-1 ENAME`. Returns the result (errno kept). */
static long show(const char *text, long r)
{
	int e = errno;
	if (r < 0)
		printf("%s = -1 %s\n", text, errname(e));
	else if (r > 0 && label_of((int32_t)r))
		printf("%s = %s\n", text, key_str((int32_t)r));
	else
		printf("%s = %ld\n", text, r);
	fflush(stdout);
	errno = e;
	return r;
}

#define CALL(expr) show(#expr, (long)(expr))

/* A call returning a new key: named `label` before it is printed. */
static long named(const char *text, long r, const char *label)
{
	int e = errno;
	if (r > 0 && !label_of((int32_t)r))
		name(r, label);
	errno = e;
	return show(text, r);
}
#define NAMED(label, expr) named(#expr, (long)(expr), label)

static long keyctl(int cmd, long a2, long a3, long a4, long a5)
{
	return syscall(SYS_keyctl, cmd, a2, a3, a4, a5);
}
static long add_key(const char *type, const char *desc, const void *data, size_t len, long ring)
{
	return syscall(SYS_add_key, type, desc, data, len, ring);
}
static long request_key(const char *type, const char *desc, const char *info, long dest)
{
	return syscall(SYS_request_key, type, desc, info, dest);
}

/* keyctl(cmd, a, b, c, d), printed as written: `KC(K_LINK, k1, R, 0, 0)`. */
#define KC(cmd, a, b, c, d) show("keyctl(" #cmd ", " #a ", " #b ", " #c ", " #d ")", \
				 keyctl(cmd, (long)(a), (long)(b), (long)(c), (long)(d)))

/* add_key(type, desc, payload-string or NULL, ring), the result named. */
static int32_t addkey(const char *type, const char *desc, const char *payload,
		      long ring, const char *ring_text, const char *label)
{
	char text[256];
	long r = add_key(type, desc, payload, payload ? strlen(payload) : 0, ring);
	int e = errno;
	if (r > 0 && label && !label_of((int32_t)r))
		name(r, label);
	char shown[48];
	if (!payload)
		snprintf(shown, sizeof shown, "NULL");
	else if (strlen(payload) > 32)
		snprintf(shown, sizeof shown, "<%zu bytes>", strlen(payload));
	else
		snprintf(shown, sizeof shown, "\"%s\"", payload);
	snprintf(text, sizeof text, "add_key(\"%s\", \"%s\", %s, %s)", type, desc, shown,
		 ring_text);
	errno = e;
	return (int32_t)show(text, r);
}
#define ADD(type, desc, payload, ring, label) addkey(type, desc, payload, ring, #ring, label)

/* A fresh anonymous session keyring, labelled S. */
static int32_t new_session(void)
{
	return (int32_t)named("keyctl(K_JOIN_SESSION, 0, 0, 0, 0)",
			      keyctl(K_JOIN_SESSION, 0, 0, 0, 0), "S");
}

/* A non-blocking notification pipe with `notes` notes; fds[0] is read. */
static void npipe(int fds[2], unsigned long notes)
{
	if (pipe2(fds, O_NOTIFICATION_PIPE | O_NONBLOCK) < 0) {
		printf("pipe2(O_NOTIFICATION_PIPE) = -1 %s\n", errname(errno));
		exit(1);
	}
	if (notes)
		show("ioctl(p[0], IOC_SET_SIZE, notes)", ioctl(fds[0], IOC_SET_SIZE, notes));
}

static long watch(int32_t key, int fd, int tag)
{
	char text[96];
	snprintf(text, sizeof text, "watch_key(%s, fd, %d)", key_str(key), tag);
	return show(text, keyctl(K_WATCH_KEY, key, fd, tag, 0));
}

/* ------------------------------------------------------------- keyrings */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A keyring's contents as sorted labels (the kernel's order follows its
 * index's hashes, which include a kernel address). */
static void contents(int32_t ring, const char *what)
{
	int32_t ids[64];
	long n = keyctl(K_READ, ring, (long)ids, sizeof ids, 0);
	printf("contents(%s) = ", what);
	if (n < 0) {
		printf("-1 %s\n", errname(errno));
		return;
	}
	char *lab[64];
	int m = (int)(n / 4);
	if (m > 64)
		m = 64;
	for (int i = 0; i < m; i++)
		lab[i] = strdup(key_str(ids[i]));
	qsort(lab, m, sizeof lab[0], cmp_str);
	for (int i = 0; i < m; i++) {
		printf("%s%s", i ? " " : "", lab[i]);
		free(lab[i]);
	}
	printf("%s\n", m ? "" : "(empty)");
}

/* The system keyrings (keyrings whose description starts with a dot) that
 * /proc/keys shows the caller, each named after its description, sorted
 * by name (the file lists them in the order of their serials, which are
 * random). Returns how many of at most `max` went into `rings`. */
static int system_keyrings(int32_t *rings, int max)
{
	char line[512];
	int nr = 0;
	FILE *f = fopen("/proc/keys", "r");
	while (f && nr < max && fgets(line, sizeof line, f)) {
		unsigned serial;
		char type[32], desc[128];
		if (sscanf(line, "%x %*s %*s %*s %*s %*s %*s %31s %127[^:\n]", &serial, type, desc) ==
			    3 &&
		    strcmp(type, "keyring") == 0 && desc[0] == '.') {
			name((int32_t)serial, desc);
			rings[nr++] = (int32_t)serial;
		}
	}
	if (f)
		fclose(f);
	for (int i = 0; i < nr; i++)
		for (int j = i + 1; j < nr; j++)
			if (strcmp(label_of(rings[i]), label_of(rings[j])) > 0) {
				int32_t t = rings[i];
				rings[i] = rings[j];
				rings[j] = t;
			}
	return nr;
}

/* ---------------------------------------------------------------- records */

static const char *key_sub[] = {"instantiated", "updated", "linked", "unlinked",
				"cleared", "revoked", "invalidated", "setattr"};

/* Prints one record: decoded, then its hex in 4-byte words, each word that
 * is a named serial shown as its label. */
static void show_record(const unsigned char *p, size_t len)
{
	uint32_t w0, info;
	memcpy(&w0, p, 4);
	memcpy(&info, p + 4, 4);
	unsigned type = w0 & 0xffffff, sub = w0 >> 24, tag = (info >> 8) & 0xff;
	uint32_t a = 0, b = 0;
	if (len >= 12)
		memcpy(&a, p + 8, 4);
	if (len >= 16)
		memcpy(&b, p + 12, 4);
	printf("  rec ");
	if (type == 0 && sub == 1)
		printf("LOSS");
	else if (type == 0 && sub == 0 && len == 16)
		printf("REMOVAL tag=%u id=%s", tag, key_str((int32_t)a));
	else if (type == 0 && sub == 0)
		printf("REMOVAL tag=%u", tag);
	else if (type == 1 && sub < 8 && len == 16) {
		printf("KEY %s tag=%u key=%s", key_sub[sub], tag, key_str((int32_t)a));
		if (sub == 2 || sub == 3)
			printf(" aux=%s", key_str((int32_t)b));
		else if (b)
			printf(" aux=%d", (int32_t)b);
	} else
		printf("type=%u sub=%u tag=%u len=%zu", type, sub, tag, len);
	if (info & 0xffff0080)
		printf(" flags=0x%x", info & 0xffff0080);
	printf(" |");
	for (size_t i = 0; i < len; i += 4) {
		uint32_t w;
		memcpy(&w, p + i, 4);
		if (i >= 8 && label_of((int32_t)w))
			printf(" %s", key_str((int32_t)w));
		else
			printf(" %02x%02x%02x%02x", p[i], p[i + 1], p[i + 2], p[i + 3]);
	}
	printf("\n");
}

/* Prints the records of one read. Runs of identical records are printed
 * once with a count, so a burst of 512 stays short. */
static void show_records(const unsigned char *buf, long n)
{
	long off = 0;
	while (off < n) {
		size_t len = buf[off + 4] & 0x7f;
		if (len < 8 || off + (long)len > n) {
			printf("  bad record at %ld (len %zu)\n", off, len);
			return;
		}
		long run = 1;
		while (off + (run + 1) * (long)len <= n &&
		       memcmp(buf + off, buf + off + run * len, len) == 0)
			run++;
		if (run > 2) {
			printf("  %ld x\n", run);
			show_record(buf + off, len);
			off += run * len;
		} else {
			show_record(buf + off, len);
			off += len;
		}
	}
}

/* One read(fd, size): its result and records. */
static long rd(int fd, size_t size)
{
	static unsigned char buf[65536];
	long n = read(fd, buf, size);
	printf("read(fd, %zu) = ", size);
	if (n < 0)
		printf("-1 %s\n", errname(errno));
	else
		printf("%ld\n", n);
	if (n > 0)
		show_records(buf, n);
	fflush(stdout);
	return n;
}

/* Reads with `size` until EAGAIN, without waiting: what is queued now. */
static void drain(int fd, size_t size)
{
	while (rd(fd, size) > 0)
		;
}

/* Sleeps `ms` milliseconds (real time). */
static void msleep(long ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Waits up to `ms` for the pipe to be readable; returns poll's revents. */
static int wait_readable(int fd, int ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	int r = poll(&p, 1, ms);
	return r > 0 ? p.revents : 0;
}

static void section(const char *n)
{
	printf("=== SECTION %s\n", n);
	fflush(stdout);
}

/* How long `later` waits for the collector, in ms (--settle). */
static int settle = 3000;

/* Waits for what the key collector posts: until readable (`settle` ms at
 * most), then a tenth of that longer so a cascade of collections is
 * complete, then drains. */
static void later(int fd)
{
	printf("# later\n");
	wait_readable(fd, settle);
	msleep(settle / 10);
	drain(fd, 4096);
}

/* Starts section `s` with a fresh session keyring (returned, labelled S)
 * and a notification pipe `p` of 256 notes. */
static int32_t begin_section(const char *s, int p[2])
{
	section(s);
	nnames = 0;
	int32_t S = new_session();
	npipe(p, 256);
	return S;
}

/* Ends a section begun by begin_section: what is left, then the pipe goes. */
static void end_section(int p[2])
{
	drain(p[0], 4096);
	close(p[0]);
	close(p[1]);
}

/* Sections chosen on the command line (none: all). */
static int nsel;
static char **sel;

/* The key collector's delay the probe assumes (--gc-delay): the
 * recorder sets the kernel's, `watchq exec --gc-delay` watchq's. */
static int gc_delay = 300;

/* Reads the options: --gc-delay N, --settle MS, and the probe's own
 * `number` (NAME N) and `flag` (NAME) if given; the rest are the sections
 * to run (see `wanted`). */
static void options(int argc, char **argv, const char *number, int *value, const char *flag,
		    int *set)
{
	int i = 1;
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--gc-delay") == 0 && i + 1 < argc)
			gc_delay = atoi(argv[++i]);
		else if (strcmp(argv[i], "--settle") == 0 && i + 1 < argc)
			settle = atoi(argv[++i]);
		else if (number && strcmp(argv[i], number) == 0 && i + 1 < argc)
			*value = atoi(argv[++i]);
		else if (flag && strcmp(argv[i], flag) == 0)
			*set = 1;
		else
			break;
	}
	nsel = argc - i;
	sel = argv + i;
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static int wanted(const char *s)
{
	if (nsel == 0)
		return 1;
	for (int i = 0; i < nsel; i++)
		if (strcmp(sel[i], s) == 0)
			return 1;
	return 0;
}

#endif

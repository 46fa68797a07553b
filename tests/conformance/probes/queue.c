/* queue.c - the queue's side: loss at several capacities, filters, reads.
 *
 * watchq's own probe (tests/conformance/README.md). Every record comes
 * from key calls on keys of a fresh session keyring. Sections:
 *   q-loss: SET_SIZE(n) for several n, capacity + 8 events, then reads;
 *     the loss record's place when more records follow; two episodes;
 *     events before SET_SIZE.
 *   q-filter: filters on subtype, on the watch tag, on unknown types; META
 *     records pass every filter; a rejected filter keeps the old one.
 *   q-read: read sizes 0, 1, 8, 15, 16, 17, 31, 32, 4096 against 16-byte
 *     records, readv, a pending loss record read with 4, 7 and 8 bytes.
 *
 * Usage: queue [SECTION...]
 */
#include "probe.h"

static int32_t S;

static int32_t fresh(const char *desc, const char *label)
{
	return ADD("user", desc, "v", S, label);
}

/* `n` updates of key k, reported as one line. */
static void updates(int32_t k, int n)
{
	int ok = 0;
	for (int i = 0; i < n; i++)
		ok += keyctl(K_UPDATE, k, (long)"u", 1, 0) == 0;
	printf("%d x keyctl(K_UPDATE, %s, \"u\", 1, 0): %d returned 0\n", n, key_str(k), ok);
}

static void fionread(int fd)
{
	int n = -1;
	long r = ioctl(fd, FIONREAD, &n);
	if (r < 0)
		printf("ioctl(fd, FIONREAD) = -1 %s\n", errname(errno));
	else
		printf("ioctl(fd, FIONREAD) = 0, %d\n", n);
}

static void pollshow(int fd)
{
	struct pollfd p = {fd, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM, 0};
	int r = poll(&p, 1, 0);
	printf("poll(fd, 0) = %d revents=0x%x\n", r, p.revents);
}

static void sec_loss(void)
{
	section("q-loss");
	nnames = 0;
	S = new_session();
	unsigned long sizes[] = {1, 32, 33, 64, 65, 512};
	for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		int p[2];
		unsigned long n = sizes[i];
		int cap = (int)((n + 31) / 32 * 32);
		printf("# SET_SIZE(%lu): %d + 8 events\n", n, cap);
		npipe(p, n);
		int32_t k = fresh("k", "k");
		watch(k, p[0], 1);
		updates(k, cap + 8);
		fionread(p[0]);
		pollshow(p[0]);
		drain(p[0], 4096);
		close(p[0]);
		close(p[1]);
		KC(K_UNLINK, k, S, 0, 0);
	}
	int p[2];
	printf("# the loss record sits right after the record before the loss\n");
	npipe(p, 1);
	int32_t a = fresh("a", "a");
	int32_t b = fresh("b", "b");
	watch(a, p[0], 1);
	watch(b, p[0], 2);
	updates(a, 40);
	rd(p[0], 16);
	KC(K_UPDATE, b, "x", 1, 0);
	drain(p[0], 4096);
	printf("# two episodes: two loss records\n");
	updates(a, 40);
	rd(p[0], 16);
	KC(K_UPDATE, b, "x", 1, 0);
	updates(a, 5);
	drain(p[0], 4096);
	printf("# the last record before the loss was the last queued\n");
	updates(a, 33);
	rd(p[0], 496);
	rd(p[0], 24);
	fionread(p[0]);
	pollshow(p[0]);
	rd(p[0], 24);
	rd(p[0], 24);
	close(p[0]);
	close(p[1]);
	printf("# events before SET_SIZE are dropped without a loss record\n");
	npipe(p, 0);
	watch(a, p[0], 1);
	updates(a, 5);
	fionread(p[0]);
	rd(p[0], 4096);
	show("ioctl(p[0], IOC_SET_SIZE, 1)", ioctl(p[0], IOC_SET_SIZE, 1));
	updates(a, 1);
	drain(p[0], 4096);
	printf("# a removal into a full queue is lost like any record\n");
	updates(a, 32);
	watch(a, p[0], -1);
	drain(p[0], 4096);
	close(p[0]);
	close(p[1]);
}

static void setfilter(int fd, struct wq_filter *f, const char *what)
{
	char text[128];
	snprintf(text, sizeof text, "ioctl(fd, IOC_SET_FILTER, %s)", what);
	show(text, ioctl(fd, IOC_SET_FILTER, f));
}

static struct wq_filter one(uint32_t type, uint32_t subtypes, uint32_t mask, uint32_t filter)
{
	struct wq_filter f;
	memset(&f, 0, sizeof f);
	f.nr_filters = 1;
	f.filters[0].type = type;
	f.filters[0].subtype_filter[0] = subtypes;
	f.filters[0].info_mask = mask;
	f.filters[0].info_filter = filter;
	return f;
}

/* The events every filter case sees: update k (tag 2), setperm k, link
 * and unlink k2 in R (tag 1). */
static void events(int32_t R, int32_t k, int32_t k2)
{
	KC(K_UPDATE, k, "x", 1, 0);
	KC(K_SETPERM, k, 0x3f3f0000, 0, 0);
	KC(K_LINK, k2, R, 0, 0);
	KC(K_UNLINK, k2, R, 0, 0);
}

static void sec_filter(void)
{
	section("q-filter");
	nnames = 0;
	S = new_session();
	int p[2];
	npipe(p, 256);
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	int32_t k = fresh("k", "k");
	int32_t k2 = fresh("k2", "k2");
	watch(R, p[0], 1);
	watch(k, p[0], 2);
	struct wq_filter f;

	printf("# subtypes linked and unlinked\n");
	f = one(1, (1 << 2) | (1 << 3), 0, 0);
	setfilter(p[0], &f, "key:linked,unlinked");
	events(R, k, k2);
	drain(p[0], 4096);

	printf("# the watch tag 2 only\n");
	f = one(1, ~0u, 0xff00, 0x0200);
	setfilter(p[1], &f, "key, info 0x0200/0xff00 (write end)");
	events(R, k, k2);
	drain(p[0], 4096);

	printf("# three entries: updated (any tag), type 77, setattr of tag 2\n");
	memset(&f, 0, sizeof f);
	f.nr_filters = 3;
	f.filters[0].type = 1;
	f.filters[0].subtype_filter[0] = 1 << 1;
	f.filters[1].type = 77;
	f.filters[1].subtype_filter[0] = ~0u;
	f.filters[2].type = 1;
	f.filters[2].subtype_filter[0] = 1 << 7;
	f.filters[2].info_mask = 0xff00;
	f.filters[2].info_filter = 0x0200;
	setfilter(p[0], &f, "three entries");
	events(R, k, k2);
	drain(p[0], 4096);

	printf("# a rejected filter keeps the one in force\n");
	f = one(1, ~0u, 0, 1);
	setfilter(p[0], &f, "info_filter outside info_mask");
	f = one(1, ~0u, 0x7f, 0);
	setfilter(p[0], &f, "info_mask & 0x7f");
	memset(&f, 0, sizeof f);
	setfilter(p[0], &f, "nr_filters 0");
	f.nr_filters = 17;
	setfilter(p[0], &f, "nr_filters 17");
	f = one(1, ~0u, 0, 0);
	f.reserved = 1;
	setfilter(p[0], &f, "reserved 1");
	show("ioctl(fd, IOC_SET_FILTER, (void *)1)", ioctl(p[0], IOC_SET_FILTER, (void *)1));
	events(R, k, k2);
	drain(p[0], 4096);

	printf("# only an unknown type: no key record passes, META does\n");
	f = one(9, ~0u, 0, 0);
	setfilter(p[0], &f, "type 9");
	events(R, k, k2);
	watch(k, p[0], -1);
	int32_t g = fresh("g", "g");
	watch(g, p[0], 3);
	KC(K_INVALIDATE, g, 0, 0, 0);
	later(p[0]);

	printf("# subtype bits beyond the first word are not used\n");
	memset(&f, 0, sizeof f);
	f.nr_filters = 1;
	f.filters[0].type = 1;
	for (int i = 1; i < 8; i++)
		f.filters[0].subtype_filter[i] = ~0u;
	setfilter(p[0], &f, "key, subtype_filter[1..7] only");
	events(R, k, k2);
	drain(p[0], 4096);

	printf("# NULL clears the filter\n");
	show("ioctl(fd, IOC_SET_FILTER, NULL)", ioctl(p[0], IOC_SET_FILTER, NULL));
	events(R, k, k2);
	drain(p[0], 4096);
	close(p[0]);
	close(p[1]);
}

static void sec_read(void)
{
	section("q-read");
	nnames = 0;
	S = new_session();
	int p[2];
	npipe(p, 1);
	int32_t k = fresh("k", "k");
	watch(k, p[0], 1);
	updates(k, 3);
	fionread(p[0]);
	pollshow(p[0]);
	size_t sizes[] = {0, 1, 8, 15, 16, 17, 31, 32, 4096};
	for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		rd(p[0], sizes[i]);
	printf("# readv [8, 8]\n");
	updates(k, 2);
	unsigned char a[8], b[8];
	struct iovec iov[2] = {{a, 8}, {b, 8}};
	long n = readv(p[0], iov, 2);
	printf("readv(fd, [8, 8]) = %ld\n", n);
	if (n == 16) {
		unsigned char rec[16];
		memcpy(rec, a, 8);
		memcpy(rec + 8, b, 8);
		show_records(rec, 16);
	}
	drain(p[0], 4096);
	printf("# a pending loss record alone\n");
	updates(k, 33);
	rd(p[0], 512);
	fionread(p[0]);
	pollshow(p[0]);
	rd(p[0], 4);
	rd(p[0], 7);
	rd(p[0], 0);
	rd(p[0], 8);
	rd(p[0], 8);
	printf("# a removal (16 bytes) read with 8 and 15\n");
	watch(k, p[0], -1);
	rd(p[0], 8);
	rd(p[0], 15);
	rd(p[0], 16);
	close(p[0]);
	close(p[1]);
}

int main(int argc, char **argv)
{
	nsel = argc - 1;
	sel = argv + 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# queue probe\n");
	if (wanted("q-loss")) sec_loss();
	if (wanted("q-filter")) sec_filter();
	if (wanted("q-read")) sec_read();
	printf("=== DONE\n");
	return 0;
}

/* gc.c - when the key collector's records arrive.
 *
 * watchq's own probe (tests/conformance/README.md). A key made dead by a
 * call (invalidated, or its last link unlinked or cleared) is destroyed by
 * the kernel's collector, a work item; its watchers get a removal record
 * then. Sections:
 *   gc-order: the call's own record and the removal, read right away and
 *     then after a wait, for each way of killing a key.
 *   gc-between: what may happen between the call and the first read
 *     (nothing, another system call, a key call, a yield, a sleep), TRIALS
 *     times each: how often the removal was already in the first read
 *     (timing lines, `~`).
 *   gc-lookup: what a lookup of a key whose last link went sees before
 *     the collector ran.
 *   gc-delay: a revoked and an expired key are collected gc_delay seconds
 *     later, not before; nothing is posted at expiry.
 *   gc-blocking: a blocking read and a poll after the call's own record
 *     was read: the removal wakes them.
 *
 * Usage: gc [--gc-delay N] [--settle MS] [--trials N] [SECTION...]
 */
#include "probe.h"

static int p[2];
static int32_t S;
static int trials = 20;

static void begin(const char *s)
{
	S = begin_section(s, p);
	watch(S, p[0], 1);
}

static void end(void)
{
	end_section(p);
}

/* ------------------------------------------------------------- gc-order */

static void sec_order(void)
{
	begin("gc-order");
	printf("# invalidate a watched key\n");
	int32_t a = ADD("user", "a", "v", S, "a");
	watch(a, p[0], 2);
	drain(p[0], 4096);
	KC(K_INVALIDATE, a, 0, 0, 0);
	rd(p[0], 4096);
	later(p[0]);

	printf("# unlink the last link of a watched key\n");
	int32_t b = ADD("user", "b", "v", S, "b");
	watch(b, p[0], 3);
	drain(p[0], 4096);
	KC(K_UNLINK, b, S, 0, 0);
	rd(p[0], 4096);
	later(p[0]);

	printf("# clear the keyring holding the last link of two watched keys\n");
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	watch(R, p[0], 4);
	int32_t c = ADD("user", "c", "v", R, "c");
	int32_t d = ADD("user", "d", "v", R, "d");
	watch(c, p[0], 5);
	watch(d, p[0], 6);
	drain(p[0], 4096);
	KC(K_CLEAR, R, 0, 0, 0);
	rd(p[0], 4096);
	later(p[0]);

	printf("# unlink a watched keyring holding a watched key: both collected\n");
	int32_t e = ADD("user", "e", "v", R, "e");
	watch(e, p[0], 7);
	drain(p[0], 4096);
	KC(K_UNLINK, R, S, 0, 0);
	rd(p[0], 4096);
	later(p[0]);

	printf("# the same, nested two deep\n");
	int32_t R1 = ADD("keyring", "R1", NULL, S, "R1");
	int32_t R2 = ADD("keyring", "R2", NULL, R1, "R2");
	int32_t f = ADD("user", "f", "v", R2, "f");
	watch(R1, p[0], 8);
	watch(R2, p[0], 9);
	watch(f, p[0], 10);
	drain(p[0], 4096);
	KC(K_UNLINK, R1, S, 0, 0);
	rd(p[0], 4096);
	later(p[0]);

	printf("# replaced in its keyring by a key of its description\n");
	int32_t g = ADD("keyring", "g", NULL, S, "g");
	watch(g, p[0], 11);
	drain(p[0], 4096);
	ADD("keyring", "g", NULL, S, "g2");
	rd(p[0], 4096);
	later(p[0]);

	printf("# several calls before the first read\n");
	int32_t h = ADD("user", "h", "v", S, "h");
	int32_t i = ADD("user", "i", "v", S, "i");
	watch(h, p[0], 12);
	watch(i, p[0], 13);
	drain(p[0], 4096);
	KC(K_INVALIDATE, h, 0, 0, 0);
	KC(K_INVALIDATE, i, 0, 0, 0);
	rd(p[0], 4096);
	later(p[0]);
	end();
}

/* ----------------------------------------------------------- gc-between */

enum { NOTHING, GETPID, KEYCALL, YIELD, SLEEP1, SLEEP20, NCOND };
static const char *cond_name[] = {"nothing", "getpid()", "keyctl(DESCRIBE, S)",
				  "sched_yield()", "1 ms sleep", "20 ms sleep"};

static void between(int cond)
{
	char buf[64];
	switch (cond) {
	case GETPID: syscall(SYS_getpid); break;
	case KEYCALL: keyctl(K_DESCRIBE, S, (long)buf, sizeof buf, 0); break;
	case YIELD: sched_yield(); break;
	case SLEEP1: msleep(1); break;
	case SLEEP20: msleep(20); break;
	}
}

/* Kills a fresh watched key by `how` (0 invalidate, 1 unlink), does
 * `cond`, reads once: 1 if the removal was in that read. Waits for the
 * removal afterwards: -1 if it never came. */
static int trial(int how, int cond)
{
	unsigned char buf[4096];
	long k = add_key("user", "t", "v", 1, S);
	if (k < 0 || keyctl(K_WATCH_KEY, k, p[0], 2, 0) < 0)
		return -2;
	while (read(p[0], buf, sizeof buf) > 0)
		;
	if (how == 0)
		keyctl(K_INVALIDATE, k, 0, 0, 0);
	else
		keyctl(K_UNLINK, k, S, 0, 0);
	between(cond);
	long n = read(p[0], buf, sizeof buf);
	int removal_first = 0;
	for (long off = 0; n > 0 && off + 16 <= n; off += buf[off + 4] & 0x7f)
		if (buf[off] == 0 && buf[off + 3] == 0)
			removal_first = 1;
	if (removal_first)
		return 1;
	for (int tries = 0; tries < 30; tries++) {
		wait_readable(p[0], 100);
		n = read(p[0], buf, sizeof buf);
		for (long off = 0; n > 0 && off + 16 <= n; off += buf[off + 4] & 0x7f)
			if (buf[off] == 0 && buf[off + 3] == 0)
				return 0;
	}
	return -1;
}

static void sec_between(void)
{
	begin("gc-between");
	drain(p[0], 4096);
	printf("# TRIALS=%d: a fresh watched key killed, then the condition, then one read\n",
	       trials);
	for (int how = 0; how < 2; how++)
		for (int c = 0; c < NCOND; c++) {
			int first = 0, never = 0;
			for (int t = 0; t < trials; t++) {
				int r = trial(how, c);
				first += r == 1;
				never += r < 0;
			}
			printf("~ %s, then %s: removal already in the first read %d/%d, never came %d\n",
			       how ? "unlink" : "invalidate", cond_name[c], first, trials, never);
		}
	end();
}

/* ------------------------------------------------------------ gc-lookup */

static void sec_lookup(void)
{
	begin("gc-lookup");
	char buf[64];
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	int32_t a = ADD("user", "a", "v", R, "a");
	int32_t b = ADD("user", "b", "v", S, "b");
	watch(R, p[0], 2);
	watch(a, p[0], 3);
	watch(b, p[0], 4);
	drain(p[0], 4096);
	printf("# right after the last link went, before anything is read\n");
	KC(K_UNLINK, b, S, 0, 0);
	KC(K_DESCRIBE, b, buf, sizeof buf, 0);
	KC(K_LINK, b, S, 0, 0);
	KC(K_UNLINK, R, S, 0, 0);
	KC(K_DESCRIBE, R, buf, sizeof buf, 0);
	printf("# a key linked only from the dying keyring\n");
	KC(K_DESCRIBE, a, buf, sizeof buf, 0);
	KC(K_LINK, a, S, 0, 0);
	rd(p[0], 4096);
	later(p[0]);
	KC(K_DESCRIBE, a, buf, sizeof buf, 0);
	KC(K_UNLINK, a, S, 0, 0);
	later(p[0]);
	KC(K_DESCRIBE, a, buf, sizeof buf, 0);
	end();
}

/* ------------------------------------------------------------- gc-delay */

/* Polls for a removal up to `ms`; prints whether one came. */
static void removal_within(int ms, const char *what)
{
	unsigned char buf[4096];
	double t0 = now_s();
	int got = 0;
	while (!got && (now_s() - t0) * 1000 < ms) {
		wait_readable(p[0], 50);
		long n;
		while ((n = read(p[0], buf, sizeof buf)) > 0) {
			show_records(buf, n);
			for (long off = 0; off + 16 <= n; off += buf[off + 4] & 0x7f)
				if (buf[off] == 0 && buf[off + 3] == 0)
					got = 1;
		}
	}
	printf("%s: removal %s\n", what, got ? "came" : "not yet");
}

static void sec_delay(void)
{
	begin("gc-delay");
	printf("# gc_delay is %d s\n", gc_delay);
	int32_t r = ADD("user", "rv", "v", S, "rv");
	watch(r, p[0], 2);
	drain(p[0], 4096);
	KC(K_REVOKE, r, 0, 0, 0);
	drain(p[0], 4096);
	removal_within(gc_delay * 1000 - 900, "revoked, before gc_delay - 0.9 s");
	char buf[64];
	KC(K_DESCRIBE, r, buf, sizeof buf, 0);
	removal_within(2600, "revoked, by gc_delay + 1.7 s");

	int32_t e = ADD("user", "ex", "v", S, "ex");
	watch(e, p[0], 3);
	drain(p[0], 4096);
	KC(K_SET_TIMEOUT, e, 1, 0, 0);
	drain(p[0], 4096);
	removal_within(900, "expiring in 1 s, after 0.9 s");
	removal_within(gc_delay * 1000, "expired, before 1 s + gc_delay - 0.9 s");
	KC(K_READ, e, buf, sizeof buf, 0);
	removal_within(2600, "expired, by 1 s + gc_delay + 1.7 s");

	printf("# an invalidated key does not wait for gc_delay\n");
	int32_t iv = ADD("user", "iv", "v", S, "iv");
	watch(iv, p[0], 4);
	drain(p[0], 4096);
	KC(K_INVALIDATE, iv, 0, 0, 0);
	removal_within(800, "invalidated, within 0.8 s");
	end();
}

/* ---------------------------------------------------------- gc-blocking */

static void on_alarm(int sig)
{
	(void)sig;
}

static void sec_blocking(void)
{
	begin("gc-blocking");
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	int32_t a = ADD("user", "a", "v", S, "a");
	watch(a, p[0], 2);
	drain(p[0], 4096);
	int fl = fcntl(p[0], F_GETFL);
	fcntl(p[0], F_SETFL, fl & ~O_NONBLOCK);
	KC(K_INVALIDATE, a, 0, 0, 0);
	alarm(3);
	printf("# two blocking reads of 16 bytes\n");
	rd(p[0], 16);
	rd(p[0], 16);
	alarm(0);
	fcntl(p[0], F_SETFL, fl);

	int32_t b = ADD("user", "b", "v", S, "b");
	watch(b, p[0], 3);
	drain(p[0], 4096);
	KC(K_INVALIDATE, b, 0, 0, 0);
	rd(p[0], 16);
	printf("# poll after the call's own record was read\n");
	struct pollfd pf = {p[0], POLLIN, 0};
	int n = poll(&pf, 1, 3000);
	printf("poll(fd, POLLIN, 3000) = %d revents=0x%x\n", n, pf.revents);
	drain(p[0], 4096);
	end();
}

int main(int argc, char **argv)
{
	options(argc, argv, "--trials", &trials, NULL, NULL);
	printf("# gc probe, gc_delay assumed %d\n", gc_delay);
	if (wanted("gc-order")) sec_order();
	if (wanted("gc-between")) sec_between();
	if (wanted("gc-lookup")) sec_lookup();
	if (gc_delay <= 5 && wanted("gc-delay")) sec_delay();
	if (wanted("gc-blocking")) sec_blocking();
	printf("=== DONE\n");
	return 0;
}

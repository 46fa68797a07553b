/* keys.c - what each keyctl command posts, and keyrings as indexes.
 *
 * watchq's own probe (tests/conformance/README.md). Sections:
 *   link, update, revoke, revoke-ring, invalidate, clear, attr, move,
 *   index, expiry:
 *     every keyctl command that posts, and the cases where two keys share
 *     a type and a description (a keyring holds one key per (type,
 *     description): link replaces, unlink and move find by that index).
 *   quota: what keys, payloads and links cost the owner's quota, as
 *     /proc/key-users shows it, in a child running as uid 1000.
 *   possess: possession in searches and reads: it comes from the
 *     reference the call starts from (a special id is possessed; a
 *     keyring id is possessed when the caller's keyrings reach it), and
 *     every keyring and key the search meets is judged with it.
 *   join-gone (with possess): a join by name of a keyring whose last link
 *     went just before.
 *   authority (with --helper-conf, or --helper-is-me 1 when the kernel
 *     runs this program in request-key's place): what a helper's
 *     KEYCTL_ASSUME_AUTHORITY returns, the `.request_key_auth` key, and an
 *     instantiation after the helper's child made one.
 *   construct: request_key construction through /sbin/request-key, with
 *     this program as the helper; only with `--helper-conf`, which writes
 *     /etc/request-key.d/wqprobe.conf (run it in a throwaway guest only).
 *
 * Usage: keys [--gc-delay N] [--settle MS] [--helper-conf] [SECTION...]
 *        keys helper KEY DESC CALLOUT   (what request-key runs)
 */
#include "probe.h"
#include <stdarg.h>
#include <sys/wait.h>

static int p[2];
static int32_t S; /* the section's session keyring */

static void begin(const char *s)
{
	S = begin_section(s, p);
}

static void end(void)
{
	end_section(p);
}

static void sec_link(void)
{
	begin("link");
	watch(S, p[0], 1);
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	watch(R, p[0], 2);
	int32_t k1 = ADD("user", "k1", "v1", R, "k1");
	int32_t R2 = ADD("keyring", "R2", NULL, S, "R2");
	watch(R2, p[0], 3);
	drain(p[0], 4096);
	printf("# watching a key posts nothing; link, link again\n");
	KC(K_LINK, k1, R2, 0, 0);
	KC(K_LINK, k1, R2, 0, 0);
	drain(p[0], 4096);
	KC(K_UNLINK, k1, R2, 0, 0);
	KC(K_UNLINK, k1, R2, 0, 0);
	drain(p[0], 4096);
	printf("# cycles and non-keyrings\n");
	KC(K_LINK, R, R, 0, 0);
	KC(K_LINK, S, R, 0, 0);
	KC(K_LINK, R2, R, 0, 0);
	KC(K_LINK, R, R2, 0, 0);
	KC(K_LINK, k1, k1, 0, 0);
	KC(K_UNLINK, k1, k1, 0, 0);
	KC(K_LINK, 0x7ffffff0, R, 0, 0);
	drain(p[0], 4096);
	contents(R, "R");
	contents(R2, "R2");
	end();
}

static void sec_update(void)
{
	begin("update");
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	int32_t R2 = ADD("keyring", "R2", NULL, S, "R2");
	watch(R, p[0], 1);
	watch(R2, p[0], 2);
	int32_t k1 = ADD("user", "k1", "v1", R, "k1");
	watch(k1, p[0], 3);
	drain(p[0], 4096);
	KC(K_UPDATE, k1, "v2", 2, 0);
	drain(p[0], 4096);
	printf("# add_key of a (type, description) the keyring holds: update in place\n");
	ADD("user", "k1", "v3", R, "k1");
	drain(p[0], 4096);
	printf("# the same description in another keyring: a new key\n");
	ADD("user", "k1", "v4", R2, "k1b");
	drain(p[0], 4096);
	printf("# the same description, another type: a new key beside it\n");
	ADD("keyring", "k1", NULL, R, "k1ring");
	drain(p[0], 4096);
	contents(R, "R");
	KC(K_UPDATE, R, "x", 1, 0);
	KC(K_UPDATE, k1, "", 0, 0);
	KC(K_UPDATE, k1, NULL, 0, 0);
	char big[32768];
	memset(big, 'b', sizeof big);
	KC(K_UPDATE, k1, big, 4096, 0);
	KC(K_UPDATE, k1, big, 4097, 0);
	KC(K_UPDATE, k1, big, 32767, 0);
	ADD("user", "k1", NULL, R, "k1");
	char big2[32769];
	memset(big2, 'c', sizeof big2 - 1);
	big2[32768] = 0;
	big2[32767] = 0;
	ADD("user", "k1", big2, R, "k1");
	big2[32767] = 'c';
	ADD("user", "k1", big2, R, "k1");
	printf("# an update clears a timeout\n");
	KC(K_SET_TIMEOUT, k1, 1, 0, 0);
	KC(K_UPDATE, k1, "v5", 2, 0);
	msleep(1500);
	char rb[64];
	KC(K_READ, k1, rb, sizeof rb, 0);
	drain(p[0], 4096);
	char buf[8];
	KC(K_READ, k1, buf, 0, 0);
	end();
}

static void sec_revoke(void)
{
	begin("revoke");
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	watch(R, p[0], 1);
	int32_t k2 = ADD("user", "k2", "v", R, "k2");
	watch(k2, p[0], 2);
	drain(p[0], 4096);
	KC(K_REVOKE, k2, 0, 0, 0);
	KC(K_REVOKE, k2, 0, 0, 0);
	KC(K_UPDATE, k2, "x", 1, 0);
	char buf[64];
	KC(K_DESCRIBE, k2, buf, sizeof buf, 0);
	KC(K_READ, k2, buf, sizeof buf, 0);
	KC(K_SETPERM, k2, 0x3f3f0000, 0, 0);
	KC(K_SET_TIMEOUT, k2, 10, 0, 0);
	KC(K_INVALIDATE, k2, 0, 0, 0);
	drain(p[0], 4096);
	printf("# a revoked key stays linked until the collector's delay\n");
	contents(R, "R");
	printf("# add_key over a revoked key of that description: a new key replaces it\n");
	ADD("user", "k2", "new", R, "k2b");
	drain(p[0], 4096);
	contents(R, "R");
	later(p[0]);
	KC(K_UNLINK, k2, R, 0, 0);
	end();
}

static void sec_revoke_ring(void)
{
	begin("revoke-ring");
	printf("# revoking a keyring: what happens to the keys it holds\n");
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	int32_t k4 = ADD("user", "k4", "v", R, "k4");
	int32_t k5 = ADD("user", "k5", "v", R, "k5");
	KC(K_LINK, k5, S, 0, 0);
	watch(k4, p[0], 2);
	watch(k5, p[0], 3);
	drain(p[0], 4096);
	KC(K_REVOKE, R, 0, 0, 0);
	rd(p[0], 4096);
	contents(R, "R");
	later(p[0]);
	char buf[64];
	KC(K_DESCRIBE, k4, buf, sizeof buf, 0);
	KC(K_DESCRIBE, k5, buf, sizeof buf, 0);
	end();
}

static void sec_invalidate(void)
{
	begin("invalidate");
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	watch(R, p[0], 1);
	int32_t k3 = ADD("user", "k3", "v", R, "k3");
	KC(K_LINK, k3, S, 0, 0);
	watch(k3, p[0], 2);
	drain(p[0], 4096);
	KC(K_INVALIDATE, k3, 0, 0, 0);
	printf("# the call's own record\n");
	rd(p[0], 4096);
	later(p[0]);
	KC(K_INVALIDATE, k3, 0, 0, 0);
	KC(K_UNLINK, k3, R, 0, 0);
	contents(R, "R");
	printf("# invalidating a keyring\n");
	int32_t R3 = ADD("keyring", "R3", NULL, S, "R3");
	int32_t k4 = ADD("user", "k4", "v", R3, "k4");
	watch(R3, p[0], 3);
	watch(k4, p[0], 4);
	drain(p[0], 4096);
	KC(K_INVALIDATE, R3, 0, 0, 0);
	later(p[0]);
	end();
}

static void sec_clear(void)
{
	begin("clear");
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	watch(R, p[0], 1);
	int32_t a = ADD("user", "a", "v", R, "a");
	int32_t b = ADD("user", "b", "v", R, "b");
	KC(K_LINK, b, S, 0, 0);
	watch(a, p[0], 2);
	watch(b, p[0], 3);
	drain(p[0], 4096);
	printf("# a's only link was in R: collected; b lives on in S\n");
	KC(K_CLEAR, R, 0, 0, 0);
	rd(p[0], 4096);
	later(p[0]);
	contents(R, "R");
	KC(K_CLEAR, R, 0, 0, 0);
	KC(K_CLEAR, b, 0, 0, 0);
	drain(p[0], 4096);
	printf("# a restricted keyring\n");
	int32_t Q = ADD("keyring", "Q", NULL, S, "Q");
	ADD("user", "q", "v", Q, "q");
	KC(K_RESTRICT, Q, 0, 0, 0);
	KC(K_CLEAR, Q, 0, 0, 0);
	contents(Q, "Q");
	drain(p[0], 4096);
	end();
}

static void sec_attr(void)
{
	begin("attr");
	int32_t k = ADD("user", "k", "v", S, "k");
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	watch(k, p[0], 1);
	watch(R, p[0], 2);
	drain(p[0], 4096);
	KC(K_SETPERM, k, 0x3f3f0000, 0, 0);
	KC(K_SETPERM, k, 0x40000000, 0, 0);
	KC(K_CHOWN, k, -1, -1, 0);
	KC(K_CHOWN, k, 0, 0, 0);
	KC(K_CHOWN, k, -1, 1234, 0);
	KC(K_SET_TIMEOUT, k, 3600, 0, 0);
	KC(K_SET_TIMEOUT, k, 0, 0, 0);
	drain(p[0], 4096);
	KC(K_RESTRICT, R, 0, 0, 0);
	KC(K_RESTRICT, R, 0, 0, 0);
	KC(K_LINK, k, R, 0, 0);
	ADD("user", "r", "v", R, "r");
	KC(K_RESTRICT, k, 0, 0, 0);
	KC(K_RESTRICT, S, 0, "chain", 0);
	KC(K_RESTRICT, S, "keyring", "chain", 0);
	KC(K_RESTRICT, S, "nosuchtype", 0, 0);
	KC(K_RESTRICT, S, "nosuchtype", "x", 0);
	KC(K_RESTRICT, S, "user", "x", 0);
	KC(K_RESTRICT, S, "", "x", 0);
	KC(K_RESTRICT, S, ".x", "x", 0);
	printf("# which comes first: the key's checks or the type's\n");
	KC(K_RESTRICT, k, "nosuchtype", 0, 0);
	KC(K_RESTRICT, k, "nosuchtype", "x", 0);
	KC(K_RESTRICT, k, "user", "x", 0);
	KC(K_RESTRICT, R, "nosuchtype", "x", 0);
	KC(K_RESTRICT, R, "user", "x", 0);
	KC(K_RESTRICT, 0x7ffffff0, "nosuchtype", 0, 0);
	KC(K_RESTRICT, 0x7ffffff0, "", "x", 0);
	drain(p[0], 4096);
	end();
}

static void sec_move(void)
{
	begin("move");
	int32_t A = ADD("keyring", "A", NULL, S, "A");
	int32_t B = ADD("keyring", "B", NULL, S, "B");
	int32_t C = ADD("keyring", "C", NULL, S, "C");
	watch(A, p[0], 1);
	watch(B, p[0], 2);
	watch(C, p[0], 3);
	int32_t x = ADD("user", "x", "1", A, "x");
	watch(x, p[0], 4);
	drain(p[0], 4096);
	KC(K_MOVE, x, A, B, 0);
	drain(p[0], 4096);
	KC(K_MOVE, x, A, B, 0);
	KC(K_MOVE, x, B, B, 0);
	KC(K_MOVE, x, B, B, MOVE_EXCL);
	KC(K_MOVE, x, A, B, 2);
	drain(p[0], 4096);
	printf("# B holds x; y has x's description\n");
	int32_t y = ADD("user", "x", "2", A, "y");
	watch(y, p[0], 5);
	drain(p[0], 4096);
	KC(K_MOVE, y, A, B, MOVE_EXCL);
	drain(p[0], 4096);
	printf("# without EXCL y replaces x in B; x's last link goes\n");
	KC(K_MOVE, y, A, B, 0);
	rd(p[0], 4096);
	later(p[0]);
	contents(A, "A");
	contents(B, "B");
	printf("# the key is not in from, but to holds its description: which error first\n");
	int32_t z = ADD("user", "x", "3", C, "z");
	drain(p[0], 4096);
	KC(K_MOVE, z, A, B, MOVE_EXCL);
	KC(K_MOVE, z, A, B, 0);
	printf("# from holds the description, but another key: found by the index\n");
	int32_t w1 = ADD("user", "w", "1", A, "w1");
	int32_t w2 = ADD("user", "w", "2", C, "w2");
	drain(p[0], 4096);
	KC(K_MOVE, w2, A, B, 0);
	drain(p[0], 4096);
	contents(A, "A");
	contents(B, "B");
	contents(C, "C");
	later(p[0]);
	printf("# the key already in to (moved onto itself)\n");
	KC(K_LINK, y, A, 0, 0);
	drain(p[0], 4096);
	KC(K_MOVE, y, A, B, MOVE_EXCL);
	KC(K_MOVE, y, A, B, 0);
	drain(p[0], 4096);
	contents(A, "A");
	contents(B, "B");
	printf("# keyrings: into itself or a child\n");
	int32_t D = ADD("keyring", "D", NULL, A, "D");
	drain(p[0], 4096);
	KC(K_MOVE, A, S, D, 0);
	KC(K_MOVE, D, A, D, 0);
	KC(K_MOVE, y, B, w1, 0);
	KC(K_MOVE, y, w1, B, 0);
	drain(p[0], 4096);
	end();
}

static void sec_index(void)
{
	begin("index");
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	int32_t Q = ADD("keyring", "Q", NULL, S, "Q");
	watch(R, p[0], 1);
	watch(Q, p[0], 2);
	int32_t a1 = ADD("user", "dup", "1", R, "a1");
	int32_t a2 = ADD("user", "dup", "2", Q, "a2");
	watch(a1, p[0], 3);
	watch(a2, p[0], 4);
	drain(p[0], 4096);
	printf("# link a key whose (type, description) R holds: it replaces a1\n");
	KC(K_LINK, a2, R, 0, 0);
	rd(p[0], 4096);
	later(p[0]);
	contents(R, "R");
	contents(Q, "Q");
	printf("# unlink a key R does not hold, while R holds its description\n");
	int32_t Q2 = ADD("keyring", "Q2", NULL, S, "Q2");
	int32_t a3 = ADD("user", "dup", "3", Q2, "a3");
	drain(p[0], 4096);
	KC(K_UNLINK, a3, R, 0, 0);
	drain(p[0], 4096);
	contents(R, "R");
	later(p[0]);
	printf("# another type, the same description: both stay\n");
	ADD("user", "same", "u", R, "same_user");
	ADD("keyring", "same", NULL, R, "same_ring");
	ADD("logon", "same:x", "l", R, "same_logon");
	ADD("user", "same:x", "u", R, "same_user2");
	drain(p[0], 4096);
	contents(R, "R");
	printf("# add_key keyring with a description R holds: a new keyring replaces it\n");
	int32_t kr = keyctl(K_SEARCH, R, (long)"keyring", (long)"same", 0);
	watch(kr, p[0], 5);
	ADD("keyring", "same", NULL, R, "same_ring2");
	rd(p[0], 4096);
	later(p[0]);
	contents(R, "R");
	printf("# search finds by (type, description)\n");
	KC(K_SEARCH, R, "user", "same", 0);
	KC(K_SEARCH, R, "keyring", "same", 0);
	KC(K_SEARCH, R, "logon", "same:x", 0);
	KC(K_SEARCH, Q2, "user", "dup", 0);
	KC(K_SEARCH, S, "user", "nothing", 0);
	KC(K_SEARCH, S, "nosuchtype", "dup", 0);
	KC(K_SEARCH, S, "", "dup", 0);
	KC(K_SEARCH, S, ".x", "dup", 0);
	printf("# search with a destination that holds the description: replaced\n");
	watch(Q2, p[0], 6);
	watch(a3, p[0], 7);
	drain(p[0], 4096);
	KC(K_SEARCH, Q, "user", "dup", Q2);
	rd(p[0], 4096);
	later(p[0]);
	contents(Q2, "Q2");
	printf("# add_key into a keyring holding the description updates that key\n");
	ADD("user", "dup", "5", Q2, "a5");
	drain(p[0], 4096);
	end();
}


static void sec_expiry(void)
{
	begin("expiry");
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	watch(R, p[0], 1);
	int32_t e = ADD("user", "e", "v", R, "e");
	watch(e, p[0], 2);
	drain(p[0], 4096);
	KC(K_SET_TIMEOUT, e, 1, 0, 0);
	drain(p[0], 4096);
	printf("# 1.5 s later the key has expired; nothing is posted for that\n");
	msleep(1500);
	drain(p[0], 4096);
	char buf[64];
	KC(K_READ, e, buf, sizeof buf, 0);
	KC(K_DESCRIBE, e, buf, sizeof buf, 0);
	KC(K_UPDATE, e, "w", 1, 0);
	KC(K_SET_TIMEOUT, e, 100, 0, 0);
	contents(R, "R");
	printf("# add_key over an expired key of that description\n");
	ADD("user", "e", "new", R, "e2");
	drain(p[0], 4096);
	contents(R, "R");
	KC(K_READ, e, buf, sizeof buf, 0);
	if (gc_delay <= 5) {
		later(p[0]);
		contents(R, "R");
	}
	end();
}

/* ----------------------------------------------------------------- quota */

/* The caller's quota use as /proc/key-users shows it: keys/maxkeys and
 * bytes/maxbytes. */
static void quota(const char *what)
{
	char line[256];
	char me[16];
	snprintf(me, sizeof me, "%u:", (unsigned)getuid());
	FILE *f = fopen("/proc/key-users", "r");
	while (f && fgets(line, sizeof line, f)) {
		char uid[16], usage[32], inst[32], keys[32], bytes[32];
		if (sscanf(line, "%15s %31s %31s %31s %31s", uid, usage, inst, keys, bytes) == 5 &&
		    strcmp(uid, me) == 0) {
			printf("quota %s: keys %s bytes %s\n", what, keys, bytes);
			fclose(f);
			return;
		}
	}
	if (f)
		fclose(f);
	printf("quota %s: none\n", what);
}

/* As uid 1000 (root's quota is a million keys): what each key, payload
 * and link costs, and EDQUOT. Runs in a child that drops to uid 1000. */
static void sec_quota(void)
{
	section("quota");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (setresgid(1000, 1000, 1000) < 0 || setresuid(1000, 1000, 1000) < 0) {
			printf("setresuid(1000) = -1 %s\n", errname(errno));
			_exit(1);
		}
		nnames = 0;
		S = new_session();
		quota("after the session keyring (\"_ses\")");
		int32_t a = ADD("user", "a", "0123456789", S, "a");
		quota("after user \"a\" of 10 bytes");
		KC(K_UPDATE, a, "0123456789012345678901234567890123456789", 40, 0);
		quota("after updating it to 40 bytes");
		int32_t R = ADD("keyring", "R", NULL, S, "R");
		quota("after keyring \"R\"");
		KC(K_LINK, a, R, 0, 0);
		quota("after linking a into R");
		KC(K_LINK, a, R, 0, 0);
		quota("after linking a into R again");
		int32_t a2 = ADD("user", "a", "x", R, "a2");
		quota("after add_key of \"a\" into R (an update)");
		KC(K_UNLINK, a, R, 0, 0);
		quota("after unlinking a from R");
		ADD("user", "b", "b", R, "b");
		ADD("user", "c", "c", R, "c");
		quota("after b and c in R");
		KC(K_CLEAR, R, 0, 0, 0);
		msleep(1500);
		quota("after clearing R and a wait");
		char big[8001];
		memset(big, 'q', 8000);
		big[8000] = 0;
		ADD("user", "big1", big, S, "big1");
		ADD("user", "big2", big, S, "big2");
		quota("after two keys of 8000 bytes");
		ADD("user", "big3", big, S, "big3");
		int32_t sm = ADD("user", "small", "s", S, "small");
		char mid[4097];
		memset(mid, 'm', 4096);
		mid[4096] = 0;
		KC(K_UPDATE, sm, mid, 4096, 0);
		quota("after EDQUOT");
		KC(K_UNLINK, sm, S, 0, 0);
		msleep(1500);
		quota("after unlinking small and a wait");
		(void)a2;
		fflush(stdout);
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* ------------------------------------------------------------ construction */

/* What a helper saw, for the probe to print (the helper has no stdout):
 * written to REPORT, read back by `report()`. */
#define REPORT "/tmp/wqprobe-report"

static void say(const char *fmt, ...)
{
	FILE *f = fopen(REPORT, "a");
	if (!f)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

static const char *result(long r)
{
	static char buf[4][32];
	static int n;
	char *b = buf[n++ % 4];
	if (r < 0)
		snprintf(b, 32, "-1 %s", errname(errno));
	else
		snprintf(b, 32, "%ld", r);
	return b;
}

/* The helper's child instantiates the key, then the helper tries. */
static void helper_twice(long key)
{
	pid_t kid = fork();
	if (kid == 0)
		_exit(keyctl(K_INSTANTIATE, key, (long)"child", 5, 0) == 0 ? 0 : 1);
	int st = 0;
	waitpid(kid, &st, 0);
	say("helper: child's instantiate %s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "0" : "failed");
	long r = keyctl(K_INSTANTIATE, key, (long)"parent", 6, 0);
	say("helper: its own instantiate after = %s\n", result(r));
	r = keyctl(K_NEGATE, key, 30, 0, 0);
	say("helper: negate after = %s\n", result(r));
}

/* What assuming the authority returned, and the authority key itself. */
static void helper_auth(long key, long auth)
{
	char d[256], hex[16];
	say("helper: assume_authority = %s\n", auth == key ? "the key" : auth > 0 ? "another key" : result(auth));
	snprintf(hex, sizeof hex, "%lx", key);
	long n = keyctl(K_DESCRIBE, SPEC_REQKEY_AUTH, (long)d, sizeof d, 0);
	if (n > 0) {
		char *at = strstr(d, hex);
		say("helper: describe(-7) = %.*s%s%s\n", at ? (int)(at - d) : (int)strlen(d), d,
		    at ? "<key hex>" : "", at ? at + strlen(hex) : "");
	} else {
		say("helper: describe(-7) = %s\n", result(n));
	}
	long id = keyctl(K_GET_KEYRING_ID, SPEC_REQKEY_AUTH, 0, 0, 0);
	say("helper: id(-7) %s\n", id == auth ? "= assume's" : result(id));
	n = keyctl(K_DESCRIBE, auth, (long)d, sizeof d, 0);
	say("helper: describe(assume's) = %s\n", n > 0 ? "ok" : result(n));
	n = keyctl(K_READ, SPEC_REQKEY_AUTH, (long)d, sizeof d, 0);
	say("helper: read(-7) = %s \"%.*s\"\n", result(n), n > 0 ? (int)n : 0, d);
	int32_t ids[16];
	n = keyctl(K_READ, SPEC_SESSION, (long)ids, sizeof ids, 0);
	int has = 0;
	for (long i = 0; i < n / 4; i++)
		has |= ids[i] == auth;
	say("helper: session holds %ld keys, the authority %s\n", n / 4, has ? "among them" : "not");
	long r = keyctl(K_INSTANTIATE, key, (long)"made", 4, 0);
	say("helper: instantiate = %s\n", result(r));
	n = keyctl(K_DESCRIBE, auth, (long)d, sizeof d, 0);
	say("helper: describe(assume's) after = %s\n", n > 0 ? "ok" : result(n));
	id = keyctl(K_GET_KEYRING_ID, SPEC_REQKEY_AUTH, 0, 0, 0);
	say("helper: id(-7) after = %s\n", id == auth ? "assume's" : result(id));
}

/* Prints what the helper said, and forgets it. */
static void report(void)
{
	char line[256];
	FILE *f = fopen(REPORT, "r");
	while (f && fgets(line, sizeof line, f))
		printf("%s", line);
	if (f)
		fclose(f);
	unlink(REPORT);
}

/* As request-key's configuration runs it (`helper KEY DESC CALLOUT`), or
 * in its place (`create KEY UID GID THREAD PROCESS SESSION`, under
 * `watchq exec --request-key`: the call-out read from the authority). */
static int helper(int argc, char **argv)
{
	int own = strcmp(argv[1], "create") == 0;
	if (argc < (own ? 3 : 5))
		return 2;
	long key = atol(argv[2]);
	long auth = keyctl(K_ASSUME_AUTHORITY, key, 0, 0, 0);
	if (auth < 0)
		return 3;
	char info[256] = "";
	if (own) {
		long n = keyctl(K_READ, SPEC_REQKEY_AUTH, (long)info, sizeof info - 1, 0);
		info[n > 0 && n < (long)sizeof info ? n : 0] = 0;
	}
	const char *callout = own ? info : argv[4];
	if (strcmp(callout, "inst") == 0)
		keyctl(K_INSTANTIATE, key, (long)"made", 4, 0);
	else if (strcmp(callout, "inst-ring") == 0)
		keyctl(K_INSTANTIATE, key, (long)"made", 4, SPEC_SESSION);
	else if (strcmp(callout, "neg") == 0)
		keyctl(K_NEGATE, key, 30, 0, 0);
	else if (strcmp(callout, "rej") == 0)
		keyctl(K_REJECT, key, 30, EKEYREJECTED, 0);
	else if (strcmp(callout, "rej-expired") == 0)
		keyctl(K_REJECT, key, 30, EKEYEXPIRED, 0);
	else if (strcmp(callout, "twice") == 0)
		helper_twice(key);
	else if (strcmp(callout, "auth") == 0)
		helper_auth(key, auth);
	return 0;
}

static void sec_construct(void)
{
	begin("construct");
	watch(S, p[0], 1);
	printf("# instantiated by the helper: LINKED on the destination\n");
	int32_t a = NAMED("a", request_key("user", "wqprobe:a", "inst", S));
	drain(p[0], 4096);
	watch(a, p[0], 2);
	KC(K_UPDATE, a, "v2", 2, 0);
	drain(p[0], 4096);
	CALL(request_key("user", "wqprobe:a", "inst", 0));
	printf("# negated, rejected, left uninstantiated\n");
	CALL(request_key("user", "wqprobe:n", "neg", S));
	drain(p[0], 4096);
	CALL(request_key("user", "wqprobe:n", "neg", S));
	CALL(request_key("user", "wqprobe:r", "rej", S));
	CALL(request_key("user", "wqprobe:x", "rej-expired", S));
	CALL(request_key("user", "wqprobe:u", "nothing", S));
	drain(p[0], 4096);
	printf("# add_key over a negative key of that description\n");
	ADD("user", "wqprobe:n", "now", S, "n");
	drain(p[0], 4096);
	printf("# request_key of revoked, expired and invalid arguments\n");
	KC(K_REVOKE, a, 0, 0, 0);
	drain(p[0], 4096);
	CALL(request_key("user", "wqprobe:a", "inst", S));
	int32_t e = ADD("user", "wqprobe:e", "v", S, "e");
	KC(K_SET_TIMEOUT, e, 1, 0, 0);
	msleep(1500);
	NAMED("e2", request_key("user", "wqprobe:e", "inst", S));
	CALL(request_key("user", "wqprobe:b", (const char *)1, S));
	CALL(request_key("nosuchtype", "wqprobe:a", NULL, S));
	CALL(request_key("keyring", "wqprobe:k", NULL, S));
	CALL(request_key("user", "", NULL, S));
	CALL(request_key(".user", "wqprobe:a", NULL, S));
	drain(p[0], 4096);
	end();
}

/* The helper's authority: what assuming it returns, the key standing for
 * it, and a second instantiation. */
static void sec_authority(void)
{
	begin("authority");
	printf("# a helper whose child instantiated the key first\n");
	unlink(REPORT);
	int32_t t = NAMED("t", request_key("user", "wqprobe:t", "twice", S));
	report();
	char v[16];
	long n = keyctl(K_READ, t, (long)v, sizeof v, 0);
	printf("read(t) = %ld \"%.*s\"\n", n, n > 0 ? (int)n : 0, v);
	printf("# the authority a helper assumes\n");
	NAMED("h", request_key("user", "wqprobe:h", "auth", S));
	report();
	end();
}

/* KEYCTL_SEARCH for the user key `desc` from `ring` (printed as
 * `ring_text`), from the user keyring's number `U` and from its special id,
 * as KC prints them. */
static void search_from_three(int32_t ring, const char *ring_text, int32_t U, const char *desc)
{
	char text[128];
	const char *from[3] = { ring_text, "U", "SPEC_USER" };
	const long ids[3] = { ring, U, SPEC_USER };
	for (int i = 0; i < 3; i++) {
		snprintf(text, sizeof text, "keyctl(K_SEARCH, %s, \"user\", \"%s\", 0)", from[i], desc);
		show(text, keyctl(K_SEARCH, ids[i], (long)"user", (long)desc, 0));
	}
}

/* Possessor-only rights on keys reached through the user keyring, which
 * the section's session does not link: what each start of a search (a
 * special id, a keyring's number) makes of them. The keys are made and
 * their rights set while S links them (possessed), then moved to @u. */
static void sec_possess(void)
{
	begin("possess");
	const long POS_ALL_USR_VIEW = 0x3f010000, ALL = 0x3f3f0000;
	int32_t U = NAMED("U", keyctl(K_GET_KEYRING_ID, SPEC_USER, 0, 0, 0));
	printf("# a keyring in @u holding a possessor-only key that S links too\n");
	int32_t K = ADD("keyring", "wqposs-K", NULL, S, "K");
	KC(K_SETPERM, K, ALL, 0, 0);
	int32_t X = ADD("user", "wqposs-x", "x", K, "X");
	KC(K_SETPERM, X, POS_ALL_USR_VIEW, 0, 0);
	KC(K_LINK, X, S, 0, 0);
	KC(K_LINK, K, SPEC_USER, 0, 0);
	KC(K_UNLINK, K, S, 0, 0);
	search_from_three(K, "K", U, "wqposs-x");
	printf("# S no longer links it\n");
	KC(K_UNLINK, X, S, 0, 0);
	search_from_three(K, "K", U, "wqposs-x");
	KC(K_DESCRIBE, X, 0, 0, 0);
	printf("# found from a special id, linked with the possessor's link\n");
	KC(K_SEARCH, SPEC_USER, "user", "wqposs-x", S);
	contents(S, "S");
	KC(K_UNLINK, X, S, 0, 0);
	printf("# a possessor-only nested keyring that S links\n");
	int32_t K2 = ADD("keyring", "wqposs-K2", NULL, S, "K2");
	KC(K_SETPERM, K2, ALL, 0, 0);
	int32_t N = ADD("keyring", "wqposs-N", NULL, K2, "N");
	int32_t Y = ADD("user", "wqposs-y", "y", N, "Y");
	KC(K_SETPERM, Y, ALL, 0, 0);
	KC(K_SETPERM, N, POS_ALL_USR_VIEW, 0, 0);
	KC(K_LINK, N, S, 0, 0);
	KC(K_LINK, K2, SPEC_USER, 0, 0);
	KC(K_UNLINK, K2, S, 0, 0);
	KC(K_SEARCH, K2, "user", "wqposs-y", 0);
	KC(K_SEARCH, SPEC_USER, "user", "wqposs-y", 0);
	KC(K_SEARCH, S, "user", "wqposs-y", 0);
	printf("# a possessor-only key in @u alone\n");
	int32_t Z = ADD("user", "wqposs-z", "zz", S, "Z");
	KC(K_SETPERM, Z, 0x3f000000, 0, 0);
	KC(K_LINK, Z, SPEC_USER, 0, 0);
	KC(K_UNLINK, Z, S, 0, 0);
	KC(K_READ, Z, 0, 0, 0);
	KC(K_DESCRIBE, Z, 0, 0, 0);
	KC(K_SEARCH, SPEC_USER, "user", "wqposs-z", 0);
	KC(K_SEARCH, U, "user", "wqposs-z", 0);
	printf("# add_key updating a possessor-write key in @u\n");
	int32_t W = ADD("user", "wqposs-w", "w", S, "W");
	KC(K_SETPERM, W, POS_ALL_USR_VIEW, 0, 0);
	KC(K_LINK, W, SPEC_USER, 0, 0);
	KC(K_UNLINK, W, S, 0, 0);
	ADD("user", "wqposs-w", "w2", SPEC_USER, "W2");
	ADD("user", "wqposs-w", "w3", U, "W3");
	KC(K_UNLINK, K, SPEC_USER, 0, 0);
	KC(K_UNLINK, K2, SPEC_USER, 0, 0);
	KC(K_UNLINK, Z, SPEC_USER, 0, 0);
	KC(K_UNLINK, W, SPEC_USER, 0, 0);
	printf("# joining a possessed keyring by name that only its possessor may search\n");
	int32_t J = ADD("keyring", "wqposs-J", NULL, S, "J");
	KC(K_SETPERM, J, POS_ALL_USR_VIEW, 0, 0);
	NAMED("J2", keyctl(K_JOIN_SESSION, (long)"wqposs-J", 0, 0, 0));
	KC(K_SETPERM, J, ALL, 0, 0);
	NAMED("J3", keyctl(K_JOIN_SESSION, (long)"wqposs-J", 0, 0, 0));
	drain(p[0], 4096);
	end();
	begin("join-gone");
	printf("# joining by name a keyring a second keyring holds\n");
	int32_t H = ADD("keyring", "wqjoin-held", NULL, S, "H");
	KC(K_SETPERM, H, ALL, 0, 0);
	int32_t T = ADD("keyring", "wqjoin-T", NULL, S, "T");
	KC(K_LINK, H, T, 0, 0);
	KC(K_UNLINK, H, S, 0, 0);
	NAMED("H2", keyctl(K_JOIN_SESSION, (long)"wqjoin-held", 0, 0, 0));
	printf("# and one its last link just let go\n");
	NAMED("S2", keyctl(K_JOIN_SESSION, 0, 0, 0, 0));
	int32_t G = ADD("keyring", "wqjoin-gone", NULL, SPEC_SESSION, "G");
	KC(K_SETPERM, G, ALL, 0, 0);
	KC(K_UNLINK, G, SPEC_SESSION, 0, 0);
	NAMED("G2", keyctl(K_JOIN_SESSION, (long)"wqjoin-gone", 0, 0, 0));
	end();
}

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "helper") == 0 || strcmp(argv[1], "create") == 0))
		return helper(argc, argv);
	int helper_conf = 0, helper_me = 0;
	options(argc, argv, "--helper-is-me", &helper_me, "--helper-conf", &helper_conf);
	printf("# keys probe, gc_delay assumed %d\n", gc_delay);
	if (wanted("link")) sec_link();
	if (wanted("update")) sec_update();
	if (wanted("revoke")) sec_revoke();
	if (wanted("revoke-ring")) sec_revoke_ring();
	if (wanted("invalidate")) sec_invalidate();
	if (wanted("clear")) sec_clear();
	if (wanted("attr")) sec_attr();
	if (wanted("move")) sec_move();
	if (wanted("index")) sec_index();
	if (wanted("expiry")) sec_expiry();
	if (wanted("quota")) sec_quota();
	if (wanted("possess") || wanted("join-gone")) sec_possess();
	if (helper_conf && wanted("construct")) {
		char self[512];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		self[n > 0 ? n : 0] = 0;
		FILE *f = fopen("/etc/request-key.d/wqprobe.conf", "w");
		if (f) {
			fprintf(f, "create user wqprobe:* * %s helper %%k %%d %%c\n", self);
			fclose(f);
		}
		sec_construct();
	}
	if ((helper_conf || helper_me) && wanted("authority"))
		sec_authority();
	printf("=== DONE\n");
	return 0;
}

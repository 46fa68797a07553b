/* surface.c - the rest of the key interface: persistent keyrings, the
 * public-key commands on keys that are not asymmetric, the system
 * keyrings, KEYCTL_SESSION_TO_PARENT's rules, user pointers, and what
 * KEYCTL_READ and its relatives copy.
 *
 * watchq's own probe (tests/conformance/README.md). Sections:
 *   persistent: KEYCTL_GET_PERSISTENT as root: the keyring, its
 *     description, the link into the destination and its record, the
 *     destination's checks, the keyring kept in the register after an
 *     unlink.
 *   persistent-user: the same as uid 1000 (a child), and root fetching
 *     uid 1000's.
 *   persistent-expiry: the persistent keyring's timeout and the
 *     register as /proc/keys shows them.
 *   pkey: KEYCTL_PKEY_QUERY/ENCRYPT/DECRYPT/SIGN/VERIFY on keys that are
 *     not asymmetric, in the kernel's order of checks.
 *   sysrings: the system keyrings (/proc/keys), what reading, linking,
 *     searching and request_key give, and what uid 1000 sees of them.
 *   s2p: KEYCTL_SESSION_TO_PARENT: a child's new session replaces its
 *     parent's, the same session is a no-op, a session without link
 *     permission is refused, a multi-threaded parent is refused.
 *   efault: a bad pointer in each argument of add_key, request_key and
 *     the keyctl commands that take one, in the kernel's order of checks.
 *   readbuf: KEYCTL_READ, DESCRIBE and GET_SECURITY with buffers too
 *     small, exact and absent: what they copy.
 *   caps: KEYCTL_CAPABILITIES into buffers of 0 to 6 bytes.
 *   keytypes: the asymmetric and blacklist types' argument checks: no
 *     payload, no description, not a keyring, blacklist descriptions.
 *   read-race: KEYCTL_READ in one thread while another updates the key
 *     to payloads of other lengths: every length read comes with that
 *     payload's bytes, and a length too big for the buffer leaves it
 *     untouched.
 *
 * Usage: surface [SECTION...]
 */
#include "probe.h"
#include <grp.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define K_SESSION_TO_PARENT 18
#define K_INSTANTIATE_IOV 20
#define K_PKEY_QUERY 24
#define K_PKEY_ENCRYPT 25
#define K_PKEY_DECRYPT 26
#define K_PKEY_SIGN 27
#define K_PKEY_VERIFY 28

static int p[2];
static int32_t S;
static char *bad;      /* a PROT_NONE page */
static char *edge;     /* "user" with no NUL, ending where `bad` starts */

/* Maps two pages: the first readable, the second PROT_NONE, so a string
 * that runs off the first one faults. */
static void map_bad(void)
{
	char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		printf("mmap failed\n");
		exit(1);
	}
	mprotect(m + 4096, 4096, PROT_NONE);
	bad = m + 4096;
	edge = bad - 4;
	memcpy(edge, "user", 4);
}

/* Runs `fn` in a child as uid and gid 1000 (no supplementary groups);
 * waits and prints how it ended. */
static void as_user(void (*fn)(void))
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(1000, 1000, 1000) < 0 ||
		    setresuid(1000, 1000, 1000) < 0) {
			printf("setuid failed: %s\n", errname(errno));
			_exit(1);
		}
		fn();
		fflush(stdout);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static void describe(const char *what, int32_t k)
{
	char d[256];
	long n = keyctl(K_DESCRIBE, k, (long)d, sizeof d, 0);
	printf("describe(%s) = %s\n", what, n > 0 ? d : errname(errno));
}

/* ------------------------------------------------------------ persistent */

static long persistent(const char *text, long uid, long dest, const char *label)
{
	long r = keyctl(K_GET_PERSISTENT, uid, dest, 0, 0);
	int e = errno;
	if (r > 0 && label && !label_of((int32_t)r))
		name(r, label);
	errno = e;
	return show(text, r);
}

static void sec_persistent(void)
{
	S = begin_section("persistent", p);
	watch(S, p[0], 1);
	int32_t k = ADD("user", "u", "v", S, "u");
	drain(p[0], 4096);
	int32_t P0 = persistent("keyctl(K_GET_PERSISTENT, -1, S, 0, 0)", -1, S, "P0");
	describe("P0", P0);
	drain(p[0], 4096);
	printf("# again: the same keyring, already linked\n");
	persistent("keyctl(K_GET_PERSISTENT, -1, S, 0, 0)", -1, S, "P0b");
	persistent("keyctl(K_GET_PERSISTENT, 0, S, 0, 0)", 0, S, "P0c");
	drain(p[0], 4096);
	contents(S, "S");
	printf("# the destination\n");
	persistent("keyctl(K_GET_PERSISTENT, -1, 0, 0, 0)", -1, 0, "x1");
	persistent("keyctl(K_GET_PERSISTENT, -1, 0x7fffffff, 0, 0)", -1, 0x7fffffff, "x2");
	persistent("keyctl(K_GET_PERSISTENT, -1, u, 0, 0)", -1, k, "x3");
	persistent("keyctl(K_GET_PERSISTENT, -1, SPEC_PROCESS, 0, 0)", -1, SPEC_PROCESS, "x4");
	persistent("keyctl(K_GET_PERSISTENT, 0xffffffff, S, 0, 0)", 0xffffffffL, S, "x5");
	printf("# unlinked, it stays in the register\n");
	KC(K_UNLINK, P0, S, 0, 0);
	drain(p[0], 4096);
	persistent("keyctl(K_GET_PERSISTENT, -1, S, 0, 0)", -1, S, "P0d");
	drain(p[0], 4096);
	printf("# what a possessor may do with it\n");
	KC(K_READ, P0, NULL, 0, 0);
	ADD("user", "inp", "v", P0, "inp");
	contents(P0, "P0");
	KC(K_SETPERM, P0, 0x3f3f0000, 0, 0);
	KC(K_SEARCH, S, "keyring", "_persistent.0", 0);
	KC(K_SEARCH, S, "user", "inp", 0);
	KC(K_CLEAR, P0, 0, 0, 0);
	contents(P0, "P0");
	end_section(p);
}

static void persistent_child(void)
{
	int32_t s = (int32_t)named("keyctl(K_JOIN_SESSION, 0, 0, 0, 0)",
				   keyctl(K_JOIN_SESSION, 0, 0, 0, 0), "S1000");
	int32_t P = (int32_t)persistent("keyctl(K_GET_PERSISTENT, -1, S1000, 0, 0)", -1, s, "Pu");
	describe("GET_PERSISTENT(-1) as uid 1000", P);
	persistent("keyctl(K_GET_PERSISTENT, 1000, S1000, 0, 0)", 1000, s, "Pu2");
	persistent("keyctl(K_GET_PERSISTENT, 0, S1000, 0, 0)", 0, s, "Pr");
	persistent("keyctl(K_GET_PERSISTENT, 0, 0x7fffffff, 0, 0)", 0, 0x7fffffff, "Pr2");
	persistent("keyctl(K_GET_PERSISTENT, 1001, S1000, 0, 0)", 1001, s, "Pr3");
	contents(s, "S1000");
}

static void sec_persistent_user(void)
{
	section("persistent-user");
	nnames = 0;
	S = new_session();
	int32_t P = (int32_t)persistent("keyctl(K_GET_PERSISTENT, 1000, S, 0, 0)", 1000, S,
					"P1000");
	describe("P1000", P);
	as_user(persistent_child);
	contents(S, "S");
}

/* The /proc/keys line of `serial`, from its timeout column on (the first
 * three columns are the serial, flags and usage count, which vary). */
static void proc_keys(const char *what, int32_t serial)
{
	char line[512];
	FILE *f = fopen("/proc/keys", "r");
	int found = 0;
	while (f && fgets(line, sizeof line, f)) {
		unsigned s;
		char timeout[16], perm[16], type[32], rest[256];
		unsigned uid, gid;
		if (sscanf(line, "%x %*s %*s %15s %15s %u %u %31s %255[^\n]", &s, timeout, perm,
			   &uid, &gid, type, rest) == 7 &&
		    (int32_t)s == serial) {
			/* Three days less the seconds since the fetch shows as
			 * 3d or, a second later, 2d: printed as one value. */
			if (strcmp(timeout, "3d") == 0 || strcmp(timeout, "2d") == 0)
				strcpy(timeout, "2d-3d");
			printf("/proc/keys %s: %s %s %u %u %s %s\n", what, timeout, perm, uid, gid,
			       type, rest);
			found = 1;
		}
	}
	if (f)
		fclose(f);
	if (!found)
		printf("/proc/keys %s: absent\n", what);
}

static int32_t find_proc_key(const char *type_want, const char *desc_want)
{
	char line[512];
	FILE *f = fopen("/proc/keys", "r");
	int32_t r = 0;
	while (f && fgets(line, sizeof line, f)) {
		unsigned s;
		char type[32], desc[128];
		if (sscanf(line, "%x %*s %*s %*s %*s %*s %*s %31s %127[^:\n]", &s, type, desc) == 3 &&
		    strcmp(type, type_want) == 0 && strcmp(desc, desc_want) == 0)
			r = (int32_t)s;
	}
	if (f)
		fclose(f);
	return r;
}

static void sec_persistent_expiry(void)
{
	section("persistent-expiry");
	nnames = 0;
	S = new_session();
	int32_t P = (int32_t)persistent("keyctl(K_GET_PERSISTENT, -1, S, 0, 0)", -1, S, "P0");
	proc_keys("P0", P);
	int32_t reg = name(find_proc_key("keyring", ".persistent_register"), "register");
	proc_keys("register", reg);
	contents(reg, "register");
	KC(K_SET_TIMEOUT, P, 100, 0, 0);
	proc_keys("P0 after SET_TIMEOUT 100", P);
	persistent("keyctl(K_GET_PERSISTENT, -1, S, 0, 0)", -1, S, "P0");
	proc_keys("P0 fetched again", P);
}

/* ------------------------------------------------------------------ pkey */

struct pkey_params {
	int32_t key_id;
	uint32_t in_len;
	union {
		uint32_t out_len;
		uint32_t in2_len;
	};
	uint32_t spare[7];
};

static void sec_pkey(void)
{
	section("pkey");
	nnames = 0;
	S = new_session();
	int32_t u = ADD("user", "u", "v", S, "u");
	int32_t lg = ADD("logon", "svc:u", "v", S, "lg");
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	int32_t bk = ADD("big_key", "bk", "big", S, "bk");
	int32_t ns = ADD("user", "nosearch", "v", S, "ns");
	KC(K_SETPERM, ns, 0x37370000, 0, 0);
	unsigned char res[64];
	char in[64] = {0}, out[64];
	printf("# KEYCTL_PKEY_QUERY (id, reserved, info, result)\n");
	KC(K_PKEY_QUERY, u, 1, "", res);
	KC(K_PKEY_QUERY, u, 0, NULL, res);
	KC(K_PKEY_QUERY, u, 0, bad, res);
	KC(K_PKEY_QUERY, 0x7fffffff, 0, bad, res);
	KC(K_PKEY_QUERY, u, 0, "bogus", res);
	KC(K_PKEY_QUERY, 0x7fffffff, 0, "bogus", res);
	KC(K_PKEY_QUERY, u, 0, "enc=", res);
	KC(K_PKEY_QUERY, u, 0, "hash=sha256 hash=sha1", res);
	KC(K_PKEY_QUERY, u, 0, "enc=pkcs1 hash=sha256", res);
	KC(K_PKEY_QUERY, 0x7fffffff, 0, "", res);
	KC(K_PKEY_QUERY, 0, 0, "", res);
	KC(K_PKEY_QUERY, ns, 0, "", res);
	KC(K_PKEY_QUERY, u, 0, "", res);
	KC(K_PKEY_QUERY, u, 0, "", bad);
	KC(K_PKEY_QUERY, lg, 0, "", res);
	KC(K_PKEY_QUERY, R, 0, "", res);
	KC(K_PKEY_QUERY, bk, 0, "", res);
	printf("# ENCRYPT, DECRYPT, SIGN, VERIFY (params, info, in, out)\n");
	struct pkey_params pp = {.key_id = u, .in_len = 16, .out_len = 16};
	struct pkey_params none = {.key_id = 0x7fffffff, .in_len = 16, .out_len = 16};
	struct pkey_params pns = {.key_id = ns, .in_len = 16, .out_len = 16};
	struct pkey_params pr = {.key_id = R, .in_len = 16, .out_len = 16};
	int ops[] = {K_PKEY_ENCRYPT, K_PKEY_DECRYPT, K_PKEY_SIGN, K_PKEY_VERIFY};
	const char *opn[] = {"ENCRYPT", "DECRYPT", "SIGN", "VERIFY"};
	for (int i = 0; i < 4; i++) {
		char t[128];
#define PK(what, a, b, c, d)                                                        \
	snprintf(t, sizeof t, "keyctl(K_PKEY_%s, %s)", opn[i], what);               \
	show(t, keyctl(ops[i], (long)(a), (long)(b), (long)(c), (long)(d)))
		PK("NULL, \"\", in, out", NULL, "", in, out);
		PK("bad, \"\", in, out", bad, "", in, out);
		PK("{u}, NULL, in, out", &pp, NULL, in, out);
		PK("{u}, bad, in, out", &pp, bad, in, out);
		PK("{u}, \"x=y\", in, out", &pp, "x=y", in, out);
		PK("{none}, \"\", in, out", &none, "", in, out);
		PK("{nosearch}, \"\", in, out", &pns, "", in, out);
		PK("{u}, \"\", in, out", &pp, "", in, out);
		PK("{u}, \"\", bad, bad", &pp, "", bad, bad);
		PK("{R}, \"\", in, out", &pr, "", in, out);
#undef PK
	}
}

/* -------------------------------------------------------------- sysrings */

static int32_t sys_rings[16];
static int sys_nr;

static void sysrings_child(void)
{
	for (int i = 0; i < sys_nr; i++) {
		int32_t r = sys_rings[i];
		char text[128];
		snprintf(text, sizeof text, "uid 1000: keyctl(K_DESCRIBE, <%s>)", label_of(r));
		char d[256];
		show(text, keyctl(K_DESCRIBE, r, (long)d, sizeof d, 0));
		snprintf(text, sizeof text, "uid 1000: keyctl(K_READ, <%s>, NULL, 0)", label_of(r));
		show(text, keyctl(K_READ, r, 0, 0, 0));
	}
}

static void sec_sysrings(void)
{
	section("sysrings");
	nnames = 0;
	S = new_session();
	/* The register of persistent keyrings exists once one was asked for. */
	keyctl(K_GET_PERSISTENT, -1, SPEC_PROCESS, 0, 0);
	int32_t rings[16];
	int nr = system_keyrings(rings, 16);
	printf("%d system keyrings\n", nr);
	memcpy(sys_rings, rings, sizeof rings);
	sys_nr = nr;
	for (int i = 0; i < nr; i++) {
		int32_t r = rings[i];
		const char *l = label_of(r);
		char text[160];
		describe(l, r);
		int32_t ids[64];
		long n = keyctl(K_READ, r, (long)ids, sizeof ids, 0);
		snprintf(text, sizeof text, "keyctl(K_READ, <%s>, ids, sizeof ids, 0)", l);
		show(text, n);
		snprintf(text, sizeof text, "keyctl(K_LINK, <%s>, S, 0, 0)", l);
		show(text, keyctl(K_LINK, r, S, 0, 0));
		snprintf(text, sizeof text, "keyctl(K_SEARCH, <%s>, \"asymmetric\", \"x\", 0)", l);
		show(text, keyctl(K_SEARCH, r, (long)"asymmetric", (long)"x", 0));
		snprintf(text, sizeof text, "keyctl(K_SEARCH, S, \"keyring\", \"%s\", 0)", l);
		show(text, keyctl(K_SEARCH, S, (long)"keyring", (long)l, 0));
		snprintf(text, sizeof text, "request_key(\"keyring\", \"%s\", NULL, 0)", l);
		show(text, request_key("keyring", l, NULL, 0));
		snprintf(text, sizeof text, "keyctl(K_GET_SECURITY, <%s>, NULL, 0, 0)", l);
		show(text, keyctl(K_GET_SECURITY, r, 0, 0, 0));
		snprintf(text, sizeof text, "keyctl(K_RESTRICT, <%s>, NULL, NULL, 0)", l);
		show(text, keyctl(K_RESTRICT, r, 0, 0, 0));
		snprintf(text, sizeof text, "keyctl(K_WATCH_KEY, <%s>, -1, -1, 0)", l);
		show(text, keyctl(K_WATCH_KEY, r, -1, -1, 0));
	}
	as_user(sysrings_child);
}

/* ------------------------------------------------------------------- s2p */

static int thread_pipe[2];

static void *sleeper(void *arg)
{
	(void)arg;
	char c;
	while (read(thread_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

/* Forks a child that (with `join`) joins a new session keyring, labelled
 * `label`, sets its permissions to `perm` (unless 0), and calls
 * KEYCTL_SESSION_TO_PARENT; the parent names the child's keyring and
 * shows its own session keyring afterwards. */
static void s2p_case(const char *what, int join, const char *label, unsigned perm)
{
	int sync[2];
	if (pipe(sync) < 0)
		exit(1);
	printf("# %s\n", what);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(sync[0]);
		int32_t s = join ? (int32_t)keyctl(K_JOIN_SESSION, 0, 0, 0, 0)
				 : (int32_t)keyctl(K_GET_KEYRING_ID, SPEC_SESSION, 0, 0, 0);
		if (write(sync[1], &s, sizeof s) != sizeof s)
			_exit(1);
		close(sync[1]);
		if (join)
			name(s, label);
		if (perm)
			show("child: keyctl(K_SETPERM, session, perm, 0, 0)",
			     keyctl(K_SETPERM, s, perm, 0, 0));
		show("child: keyctl(K_SESSION_TO_PARENT, 0, 0, 0, 0)",
		     keyctl(K_SESSION_TO_PARENT, 0, 0, 0, 0));
		fflush(stdout);
		_exit(0);
	}
	close(sync[1]);
	int32_t s = 0;
	if (read(sync[0], &s, sizeof s) != sizeof s)
		printf("no serial from the child\n");
	close(sync[0]);
	if (join)
		name(s, label);
	int st;
	waitpid(pid, &st, 0);
	printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	show("keyctl(K_GET_KEYRING_ID, SPEC_SESSION, 0, 0, 0)",
	     keyctl(K_GET_KEYRING_ID, SPEC_SESSION, 0, 0, 0));
}

static void sec_s2p(void)
{
	section("s2p");
	nnames = 0;
	S = new_session();
	s2p_case("a child's new session keyring replaces its parent's", 1, "C1", 0);
	s2p_case("the parent's own session keyring: nothing to do", 0, "C1", 0);
	s2p_case("a session keyring without link permission", 1, "C2", 0x2f2f0000);
	if (pipe(thread_pipe) < 0)
		exit(1);
	pthread_t t;
	pthread_create(&t, NULL, sleeper, NULL);
	s2p_case("a parent with a second thread", 1, "C3", 0);
	close(thread_pipe[1]);
	pthread_join(t, NULL);
	close(thread_pipe[0]);
	s2p_case("the parent single-threaded again", 1, "C4", 0);
}

/* ---------------------------------------------------------------- efault */

static void sec_efault(void)
{
	section("efault");
	nnames = 0;
	S = new_session();
	int32_t u = ADD("user", "u", "v", S, "u");
	char buf[256];
	printf("# add_key(type, description, payload, plen, keyring)\n");
	CALL(add_key(bad, "d", "p", 1, S));
	CALL(add_key(NULL, "d", "p", 1, S));
	CALL(add_key(edge, "d", "p", 1, S));
	CALL(add_key("user", bad, "p", 1, S));
	CALL(add_key("user", edge, "p", 1, S));
	CALL(add_key("user", "d", bad, 1, S));
	CALL(add_key("user", "d", NULL, 1, S));
	CALL(add_key("user", "d", bad, 1, 0x7fffffff));
	CALL(add_key("user", "d", bad, 0, S));
	CALL(add_key("user", "d", bad - 1, 2, S));
	CALL(add_key(bad, bad, bad, 1024 * 1024, S));
	CALL(add_key(".user", bad, bad, 1, S));
	CALL(add_key("keyring", ".x", bad, 1, S));
	CALL(add_key("nosuchtype", "d", bad, 1, S));
	CALL(add_key("nosuchtype", "d", "p", 1, 0x7fffffff));
	CALL(add_key("user", NULL, "p", 1, S));
	CALL(add_key("0123456789012345678901234567890123456789", "d", "p", 1, S));
	printf("# request_key(type, description, callout_info, keyring)\n");
	CALL(request_key(bad, "d", NULL, 0));
	CALL(request_key(edge, "d", NULL, 0));
	CALL(request_key("user", bad, NULL, 0));
	CALL(request_key("user", NULL, NULL, 0));
	CALL(request_key("user", "d", bad, 0));
	CALL(request_key("user", "d", edge, 0));
	CALL(request_key("user", "d", bad, 0x7fffffff));
	CALL(request_key("user", "d", NULL, 0x7fffffff));
	CALL(request_key("nosuchtype", "d", NULL, 0x7fffffff));
	CALL(request_key("nosuchtype", "d", NULL, 0));
	CALL(request_key("user", "u", bad, 0));
	printf("# keyctl\n");
	KC(K_JOIN_SESSION, bad, 0, 0, 0);
	KC(K_UPDATE, u, bad, 1, 0);
	KC(K_UPDATE, u, NULL, 1, 0);
	KC(K_UPDATE, 0x7fffffff, bad, 1, 0);
	KC(K_UPDATE, u, bad, 5000, 0);
	KC(K_DESCRIBE, u, bad, sizeof buf, 0);
	KC(K_DESCRIBE, u, bad, 1, 0);
	KC(K_DESCRIBE, 0x7fffffff, bad, sizeof buf, 0);
	KC(K_SEARCH, S, bad, "u", 0);
	KC(K_SEARCH, S, "user", bad, 0);
	KC(K_SEARCH, 0x7fffffff, bad, "u", 0);
	KC(K_SEARCH, 0x7fffffff, "user", bad, 0);
	KC(K_SEARCH, S, "nosuchtype", bad, 0);
	KC(K_READ, u, bad, sizeof buf, 0);
	KC(K_READ, u, bad, 1, 0);
	KC(K_READ, u, bad, 0, 0);
	KC(K_READ, 0x7fffffff, bad, sizeof buf, 0);
	KC(K_READ, S, bad, sizeof buf, 0);
	KC(K_INSTANTIATE, u, bad, 1, 0);
	KC(K_INSTANTIATE_IOV, u, bad, 1, 0);
	KC(K_GET_SECURITY, u, bad, sizeof buf, 0);
	KC(K_GET_SECURITY, u, bad, 0, 0);
	KC(K_GET_SECURITY, 0x7fffffff, bad, sizeof buf, 0);
	KC(K_RESTRICT, S, bad, "x", 0);
	KC(K_RESTRICT, S, "user", bad, 0);
	KC(K_RESTRICT, S, bad, NULL, 0);
	KC(K_RESTRICT, S, NULL, bad, 0);
	KC(K_RESTRICT, 0x7fffffff, bad, bad, 0);
	KC(K_CAPABILITIES, bad, 4, 0, 0);
	KC(K_CAPABILITIES, bad, 0, 0, 0);
	KC(K_CAPABILITIES, NULL, 4, 0, 0);
	contents(S, "S");
}

/* --------------------------------------------------------------- readbuf */

static void hexs(const char *what, const unsigned char *b, int n)
{
	printf("%s:", what);
	for (int i = 0; i < n; i++)
		printf(" %02x", b[i]);
	printf("\n");
}

static void sec_readbuf(void)
{
	section("readbuf");
	nnames = 0;
	S = new_session();
	int32_t k = ADD("user", "k", "0123456789", S, "k");
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	ADD("user", "a", "a", R, "a");
	ADD("user", "b", "b", R, "b");
	ADD("user", "c", "c", R, "c");
	int32_t bk = ADD("big_key", "bk", "big", S, "bk");
	char buf[32];
	int sizes[] = {0, 1, 4, 9, 10, 11, 32};
	for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		memset(buf, '#', sizeof buf);
		char t[96];
		snprintf(t, sizeof t, "keyctl(K_READ, k, buf, %d, 0)", sizes[i]);
		show(t, keyctl(K_READ, k, (long)buf, sizes[i], 0));
		printf("buf = %.12s\n", buf);
	}
	KC(K_READ, k, NULL, 100, 0);
	memset(buf, '#', sizeof buf);
	KC(K_READ, bk, buf, 2, 0);
	printf("buf = %.12s\n", buf);
	int32_t ids[4] = {0x23232323, 0x23232323, 0x23232323, 0x23232323};
	KC(K_READ, R, ids, 8, 0);
	hexs("ids", (unsigned char *)ids, 16);
	KC(K_READ, R, ids, 13, 0);
	printf("ids hold %d named keys\n",
	       !!label_of(ids[0]) + !!label_of(ids[1]) + !!label_of(ids[2]));
	memset(buf, '#', sizeof buf);
	KC(K_DESCRIBE, k, buf, 5, 0);
	printf("buf = %.12s\n", buf);
	memset(buf, '#', sizeof buf);
	KC(K_GET_SECURITY, k, buf, 1, 0);
	hexs("buf", (unsigned char *)buf, 4);
	memset(buf, '#', sizeof buf);
	KC(K_GET_SECURITY, k, buf, 0, 0);
	hexs("buf", (unsigned char *)buf, 4);
}

static void sec_caps(void)
{
	section("caps");
	unsigned char caps[6];
	int csz[] = {0, 1, 2, 4, 6};
	for (unsigned i = 0; i < sizeof csz / sizeof csz[0]; i++) {
		memset(caps, 0xaa, sizeof caps);
		char t[96];
		snprintf(t, sizeof t, "keyctl(K_CAPABILITIES, caps, %d, 0, 0)", csz[i]);
		show(t, keyctl(K_CAPABILITIES, (long)caps, csz[i], 0, 0));
		hexs("caps", caps, 6);
	}
}

/* -------------------------------------------------------------- keytypes */

static void sec_keytypes(void)
{
	section("keytypes");
	nnames = 0;
	S = new_session();
	int32_t u = ADD("user", "u", "v", S, "u");
	printf("# asymmetric: no parser knows the data\n");
	ADD("asymmetric", "as", "not a certificate", S, "as");
	ADD("asymmetric", "as", NULL, S, "as");
	CALL(add_key("asymmetric", NULL, "x", 1, S));
	ADD("asymmetric", "as", "x", u, "as");
	CALL(add_key("asymmetric", NULL, "x", 1, u));
	KC(K_SEARCH, S, "asymmetric", "as", 0);
	printf("# blacklist: tbs: or bin: and an even number of lower-case hex digits\n");
	const char *descs[] = {"x", "tbs", "tbs:", "bin:", "tbs:a", "tbs:ab", "bin:0123", "bin:AB",
			       "bin:zz", "tb:ab", "tbsx:ab", ":ab"};
	for (unsigned i = 0; i < sizeof descs / sizeof descs[0]; i++)
		ADD("blacklist", descs[i], "v", S, "bl");
	char longd[160] = "bin:";
	memset(longd + 4, 'a', 130);
	longd[134] = 0;
	ADD("blacklist", longd, "v", S, "bl");
	longd[132] = 0;
	ADD("blacklist", longd, "v", S, "bl");
	longd[132] = 'G';
	ADD("blacklist", longd, "v", S, "bl");
	ADD("blacklist", "tbs:ab", NULL, S, "bl");
	CALL(add_key("blacklist", NULL, "v", 1, S));
	ADD("blacklist", "tbs:ab", "v", u, "bl");
	KC(K_SEARCH, S, "blacklist", "tbs:ab", 0);
	contents(S, "S");
}

/* ------------------------------------------------------------- read-race */

/* Each payload length has its own byte, so a read can be checked. */
static const int race_len[] = {1, 7, 100, 1000, 4000};
static const char race_byte[] = {'A', 'B', 'C', 'D', 'E'};
static int32_t race_key;
static volatile int race_done;

static void *race_writer(void *arg)
{
	(void)arg;
	static char pay[4096];
	for (int i = 0; i < 3000; i++) {
		int j = i % 5;
		memset(pay, race_byte[j], race_len[j]);
		keyctl(K_UPDATE, race_key, (long)pay, race_len[j], 0);
	}
	race_done = 1;
	return NULL;
}

static void sec_read_race(void)
{
	section("read-race");
	nnames = 0;
	S = new_session();
	race_key = ADD("user", "race", "A", S, "race");
	race_done = 0;
	pthread_t t;
	pthread_create(&t, NULL, race_writer, NULL);
	static char buf[8192];
	int sizes[] = {50, 4096, 8192};
	long reads = 0, bad_len = 0, bad_bytes = 0, touched = 0, fit = 0, big = 0;
	while (!race_done || reads < 300) {
		int size = sizes[reads % 3];
		memset(buf, '#', size);
		long n = keyctl(K_READ, race_key, (long)buf, size, 0);
		reads++;
		int j = -1;
		for (int i = 0; i < 5; i++)
			if (n == race_len[i])
				j = i;
		if (j < 0) {
			bad_len++;
			continue;
		}
		if (n > size) {
			big++;
			for (int i = 0; i < size; i++)
				if (buf[i] != '#') {
					touched++;
					break;
				}
			continue;
		}
		fit++;
		for (long i = 0; i < n; i++)
			if (buf[i] != race_byte[j]) {
				bad_bytes++;
				break;
			}
		if (n < size && buf[n] != '#')
			bad_bytes++;
	}
	pthread_join(t, NULL);
	printf("reads with a length no payload had: %ld\n", bad_len);
	printf("reads whose bytes were not that length's payload: %ld\n", bad_bytes);
	printf("reads too big for the buffer that wrote to it: %ld\n", touched);
	printf("reads that fit: %s; too big for the buffer: %s\n", fit ? "some" : "none",
	       big ? "some" : "none");
}

int main(int argc, char **argv)
{
	options(argc, argv, NULL, NULL, NULL, NULL);
	map_bad();
	printf("# surface probe\n");
	if (wanted("persistent")) sec_persistent();
	if (wanted("persistent-user")) sec_persistent_user();
	if (wanted("persistent-expiry")) sec_persistent_expiry();
	if (wanted("pkey")) sec_pkey();
	if (wanted("sysrings")) sec_sysrings();
	if (wanted("s2p")) sec_s2p();
	if (wanted("efault")) sec_efault();
	if (wanted("readbuf")) sec_readbuf();
	if (wanted("caps")) sec_caps();
	if (wanted("keytypes")) sec_keytypes();
	if (wanted("read-race")) sec_read_race();
	printf("=== DONE\n");
	return 0;
}

/* dh.c - KEYCTL_DH_COMPUTE and its KDF variant (watchq's own probe).
 *
 * Sections:
 *   dh      results: their length (the prime's, in whole 64-bit limbs),
 *           zero padding, buflen 0 asking the length, a short buffer, and
 *           the checks of the keys and the dh parameters
 *   dh-kdf  the KDF variant: derived bytes for several digests, and the
 *           checks of struct keyctl_kdf_params in the kernel's order
 *
 * Results print as hex, so two kernels that compute the same print the
 * same text.
 */
#include "probe.h"

#define K_DH_COMPUTE 23

struct dh_params {
	int32_t priv, prime, base;
};

struct kdf_params {
	char *hashname;
	char *otherinfo;
	uint32_t otherinfolen;
	uint32_t spare[8];
};

static unsigned char big[256];

/* A user key holding `len` bytes: `top` first, then `fill`, `low` last. */
static int32_t num(const char *label, size_t len, unsigned char top, unsigned char fill,
		   unsigned char low)
{
	memset(big, fill, len);
	big[0] = top;
	big[len - 1] = low;
	long r = add_key("user", label, big, len, SPEC_SESSION);
	if (r > 0)
		name(r, label);
	printf("user key %s: %zu bytes %02x %02x.. %02x = %s\n", label, len, top, fill, low,
	       r > 0 ? key_str((int32_t)r) : errname(errno));
	return (int32_t)r;
}

static void dh(const char *text, struct dh_params *p, void *buf, long len, struct kdf_params *k)
{
	unsigned char out[1100];
	memset(out, 0xee, sizeof out);
	long r = keyctl(K_DH_COMPUTE, (long)p, buf == (void *)1 ? (long)out : (long)buf, len,
			(long)k);
	int e = errno;
	printf("%s = ", text);
	if (r < 0) {
		printf("-1 %s\n", errname(e));
		return;
	}
	printf("%ld", r);
	if (buf == (void *)1 && r > 0) {
		printf(":");
		for (long i = 0; i < r && i < (long)sizeof out; i++)
			printf("%s%02x", i % 32 ? "" : " ", out[i]);
		printf(" | next %02x", out[r]);
	}
	printf("\n");
}

#define OUT ((void *)1)

static int32_t p1551, g5, x, p1536, g1, x3, small, zero, lg, revoked;

static void keys(void)
{
	new_session();
	p1551 = num("p1551", 194, 0x40, 0x5a, 0xa7); /* 1551 bits */
	g5 = num("g5", 1, 0x05, 0x05, 0x05);
	x = num("x", 90, 0x12, 0x34, 0x57);
	p1536 = num("p1536", 192, 0x80, 0x00, 0x01);
	g1 = num("g1", 1, 0x01, 0x01, 0x01);
	x3 = num("x3", 1, 0x03, 0x03, 0x03);
	small = num("p1528", 191, 0x80, 0x11, 0x01);
	zero = num("zero", 192, 0x00, 0x00, 0x00);
	revoked = num("revoked", 1, 0x02, 0x02, 0x02);
	KC(K_REVOKE, revoked, 0, 0, 0);
	long r = add_key("logon", "dh:logon", "\0", 1, SPEC_SESSION);
	lg = name(r, "logon");
}

static void sec_dh(void)
{
	section("dh");
	keys();
	struct dh_params p = {x, p1551, g5};
	dh("dh(x, p1551, g5, NULL, 0)", &p, NULL, 0, NULL);
	dh("dh(x, p1551, g5, out, 1100)", &p, OUT, 1100, NULL);
	dh("dh(x, p1551, g5, out, 199)", &p, OUT, 199, NULL);
	struct dh_params q = {x3, p1536, g1};
	dh("dh(x3, p1536, g1, out, 192)", &q, OUT, 192, NULL);
	struct dh_params bad[] = {
		{x, small, g5}, {p1551, p1536, g5}, {x, p1536, p1551}, {x, zero, g5},
		{x, p1551, revoked}, {x, p1551, lg}, {x, p1551, SPEC_SESSION}, {x, p1551, 0},
		{0, small, g5}, {x, lg, 0},
	};
	const char *what[] = {
		"x, p1528, g5", "p1551, p1536, g5", "x, p1536, p1551", "x, zero, g5",
		"x, p1551, revoked", "x, p1551, logon", "x, p1551, @s", "x, p1551, 0",
		"0, p1528, g5", "x, logon, 0",
	};
	char t[80];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(t, sizeof t, "dh(%s, out, 1100)", what[i]);
		dh(t, &bad[i], OUT, 1100, NULL);
	}
	dh("dh(NULL params, out, 1100)", NULL, OUT, 1100, NULL);
	dh("dh(x, p1551, g5, NULL, 1100)", &p, NULL, 1100, NULL);
	dh("dh(bad params pointer, out, 1100)", (void *)8, OUT, 1100, NULL);
	dh("dh(x, p1551, g5, bad buffer, 1100)", &p, (void *)8, 1100, NULL);
}

static void sec_kdf(void)
{
	section("dh-kdf");
	keys();
	struct dh_params p = {x, p1551, g5};
	struct dh_params q = {x3, p1536, g1};
	const char *hashes[] = {"sha256", "sha224", "sha384", "sha512", "sha1", "sha3-256",
				"sha3-512", "sha256-generic", "sha1-generic", "hmac(sha256)",
				"md5", "nosuchhash", ""};
	char oi[] = "other";
	char t[96];
	for (size_t i = 0; i < sizeof hashes / sizeof hashes[0]; i++) {
		struct kdf_params k = {(char *)hashes[i], oi, 5, {0}};
		snprintf(t, sizeof t, "kdf(x3, p1536, g1, out, 40, \"%s\", \"other\")", hashes[i]);
		dh(t, &q, OUT, 40, &k);
	}
	struct kdf_params k = {"sha256", oi, 5, {0}};
	dh("kdf(x, p1551, g5, out, 70, sha256)", &p, OUT, 70, &k);
	dh("kdf(x, p1551, g5, NULL, 0, sha256)", &p, NULL, 0, &k);
	dh("kdf(x, p1551, g5, out, 1, sha256)", &p, OUT, 1, &k);
	dh("kdf(x, p1551, g5, out, 1024, sha256) (length only)", &p, NULL, 0, &k);
	struct kdf_params none = {"sha256", NULL, 0, {0}};
	dh("kdf(x3, p1536, g1, out, 32, sha256, no otherinfo)", &q, OUT, 32, &none);
	printf("# the checks, in order\n");
	struct kdf_params kk = k;
	dh("kdf(bad kdf pointer)", &p, OUT, 16, (void *)8);
	dh("kdf(NULL params)", NULL, OUT, 16, &k);
	kk.spare[3] = 1;
	dh("kdf(spare word set)", &p, OUT, 16, &kk);
	kk = k;
	dh("kdf(buflen 1025)", &p, OUT, 1025, &kk);
	kk.otherinfolen = 65;
	dh("kdf(otherinfolen 65)", &p, OUT, 16, &kk);
	static char oi64[64] = "sixty-four bytes of other information, zero-padded";
	kk.otherinfo = oi64;
	kk.otherinfolen = 64;
	dh("kdf(otherinfolen 64)", &p, OUT, 16, &kk);
	kk = k;
	kk.hashname = (char *)8;
	dh("kdf(bad hashname pointer)", &p, OUT, 16, &kk);
	char longname[200];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	kk.hashname = longname;
	dh("kdf(199-byte hashname)", &p, OUT, 16, &kk);
	kk.hashname = "nosuchhash";
	struct dh_params nokey = {x, p1551, 0};
	dh("kdf(nosuchhash, no base key)", &nokey, OUT, 16, &kk);
	kk = k;
	kk.otherinfo = (char *)8;
	dh("kdf(bad otherinfo pointer)", &p, OUT, 16, &kk);
	dh("kdf(bad otherinfo pointer, no base key)", &nokey, OUT, 16, &kk);
	struct dh_params smallp = {x, small, g5};
	dh("kdf(bad otherinfo pointer, p1528)", &smallp, OUT, 16, &kk);
}

int main(int argc, char **argv)
{
	nsel = argc - 1;
	sel = argv + 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# dh probe\n");
	if (wanted("dh")) sec_dh();
	if (wanted("dh-kdf")) sec_kdf();
	printf("=== DONE\n");
	return 0;
}

/* types.c - the rest of the key interface a test suite reaches.
 *
 * watchq's own probe (tests/conformance/README.md). Sections:
 *   reqkey: KEYCTL_SET_REQKEY_KEYRING, each value and what it returns.
 *   types: add_key's argument checks for each key type the kernel has
 *     (user, logon, keyring, big_key, encrypted, trusted, asymmetric,
 *     dns_resolver, and internal ones), and reads of what was made.
 *   system: the system keyrings (/proc/keys lines whose description
 *     starts with a dot): their descriptions, and what a process may do
 *     with them.
 *
 * Usage: types [--guest] [SECTION...]
 * `system` changes the system keyrings (setperm, clear, invalidate): it
 * runs only with --guest, in a throwaway guest or under watchq exec, never
 * natively on a machine that matters.
 */
#include "probe.h"

static int32_t S;

static void sec_reqkey(void)
{
	section("reqkey");
	nnames = 0;
	S = new_session();
	int vals[] = {-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, -2, 9, -1};
	for (unsigned i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		char text[64];
		snprintf(text, sizeof text, "keyctl(K_SET_REQKEY, %d, 0, 0, 0)", vals[i]);
		show(text, keyctl(K_SET_REQKEY, vals[i], 0, 0, 0));
	}
	KC(K_SET_REQKEY, 0, 0, 0, 0);
}

static void sec_types(void)
{
	section("types");
	nnames = 0;
	S = new_session();
	char buf[256];
	printf("# user and logon\n");
	ADD("user", "u", "v", S, "u");
	int32_t lg = ADD("logon", "svc:u", "v", S, "lg");
	ADD("logon", "nocolon", "v", S, "lg2");
	ADD("logon", ":x", "v", S, "lg3");
	KC(K_READ, lg, buf, sizeof buf, 0);
	printf("# keyring\n");
	ADD("keyring", "kr", "payload", S, "kr");
	ADD("keyring", ".kr", NULL, S, "kr2");
	printf("# big_key\n");
	int32_t bk = ADD("big_key", "bk", "big", S, "bk");
	KC(K_READ, bk, buf, sizeof buf, 0);
	KC(K_DESCRIBE, bk, buf, sizeof buf, 0);
	printf("describe = %s\n", buf);
	ADD("big_key", "bk0", NULL, S, "bk0");
	KC(K_UPDATE, bk, "x", 1, 0);
	printf("# encrypted, trusted, asymmetric, dns_resolver\n");
	ADD("encrypted", "enc", "new user:kmk 32", S, "enc");
	ADD("user", "kmk", "01234567890123456789012345678901", S, "kmk");
	int32_t enc = ADD("encrypted", "enc", "new user:kmk 32", S, "enc");
	ADD("encrypted", "enc2", "bogus", S, "enc2");
	ADD("encrypted", "enc3", "new user:kmk 31", S, "enc3");
	KC(K_READ, enc, NULL, 0, 0);
	ADD("trusted", "tr", "new 32", S, "tr");
	ADD("asymmetric", "as", "not a certificate", S, "as");
	ADD("asymmetric", "", "not a certificate", S, "as2");
	ADD("dns_resolver", "dns", "x", S, "dns");
	ADD("dns_resolver", "", "x", S, "dns2");
	printf("# internal and unknown types\n");
	ADD(".request_key_auth", "x", "v", S, "i1");
	ADD("request_key_auth", "x", "v", S, "i2");
	ADD("id_resolver", "x", "v", S, "i3");
	ADD("ceph", "x", "v", S, "i4");
	ADD("rxrpc", "x", "v", S, "i5");
	ADD("nosuchtype", "x", "v", S, "i6");
	ADD("blacklist", "x", "v", S, "i7");
	printf("# KEYCTL_GET_SECURITY, GET_PERSISTENT, capabilities\n");
	int32_t u = keyctl(K_SEARCH, S, (long)"user", (long)"u", 0);
	KC(K_GET_SECURITY, u, buf, sizeof buf, 0);
	long pk = keyctl(K_GET_PERSISTENT, -1, S, 0, 0);
	if (pk > 0)
		name(pk, "persistent");
	show("keyctl(K_GET_PERSISTENT, -1, S, 0, 0)", pk);
	unsigned char caps[4] = {0};
	long n = keyctl(K_CAPABILITIES, (long)caps, sizeof caps, 0, 0);
	printf("keyctl(K_CAPABILITIES, caps, 4, 0, 0) = %ld: %02x %02x %02x %02x\n", n, caps[0],
	       caps[1], caps[2], caps[3]);
	show("keyctl(23 /* DH_COMPUTE */, 0, 0, 0, 0)", keyctl(23, 0, 0, 0, 0));
	show("keyctl(24 /* PKEY_QUERY */, 0, 0, 0, 0)", keyctl(24, 0, 0, 0, 0));
	show("keyctl(18 /* SESSION_TO_PARENT */, 0, 0, 0, 0)", keyctl(18, 0, 0, 0, 0));
	show("keyctl(33, 0, 0, 0, 0)", keyctl(33, 0, 0, 0, 0));
	show("keyctl(99, 0, 0, 0, 0)", keyctl(99, 0, 0, 0, 0));
}

static void sec_system(void)
{
	section("system");
	nnames = 0;
	S = new_session();
	int32_t rings[16];
	int nr = system_keyrings(rings, 16);
	for (int i = 0; i < nr; i++) {
		int32_t r = rings[i];
		char d[256];
		long n = keyctl(K_DESCRIBE, r, (long)d, sizeof d, 0);
		printf("keyctl(K_DESCRIBE, %s) = %s\n", key_str(r), n > 0 ? d : errname(errno));
		char text[128];
		snprintf(text, sizeof text, "add_key(\"user\", \"x\", \"v\", %s)", key_str(r));
		show(text, add_key("user", "x", "v", 1, r));
		snprintf(text, sizeof text, "keyctl(K_LINK, %s, S, 0, 0)", key_str(r));
		show(text, keyctl(K_LINK, r, S, 0, 0));
		snprintf(text, sizeof text, "keyctl(K_SEARCH, %s, \"user\", \"x\", 0)", key_str(r));
		show(text, keyctl(K_SEARCH, r, (long)"user", (long)"x", 0));
		snprintf(text, sizeof text, "keyctl(K_CLEAR, %s, 0, 0, 0)", key_str(r));
		show(text, keyctl(K_CLEAR, r, 0, 0, 0));
		snprintf(text, sizeof text, "keyctl(K_SETPERM, %s, 0x3f3f0000, 0, 0)", key_str(r));
		show(text, keyctl(K_SETPERM, r, 0x3f3f0000, 0, 0));
		snprintf(text, sizeof text, "keyctl(K_INVALIDATE, %s, 0, 0, 0)", key_str(r));
		show(text, keyctl(K_INVALIDATE, r, 0, 0, 0));
	}
	printf("%d system keyrings\n", nr);
}

int main(int argc, char **argv)
{
	int guest = argc > 1 && strcmp(argv[1], "--guest") == 0;
	nsel = argc - 1 - guest;
	sel = argv + 1 + guest;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# types probe\n");
	if (wanted("reqkey")) sec_reqkey();
	if (wanted("types")) sec_types();
	if (guest && wanted("system")) sec_system();
	printf("=== DONE\n");
	return 0;
}

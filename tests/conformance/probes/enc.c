/* enc.c - the encrypted key type (watchq's own probe).
 *
 * Sections:
 *   enc        add_key("encrypted") with `new` and `load` blobs: the
 *              checks of the blob (keyword, format (default, enc32,
 *              ecryptfs and its hex description), master key name,
 *              length, extra words), the key's description and
 *              /proc/keys line, KEYCTL_READ's length and blob (made only
 *              when the buffer holds it, with the master key), a blob
 *              loaded back, updates that re-key it to another master key
 *              (KEYCTL_UPDATE and add_key's update path), a missing or
 *              revoked master key
 *   enc-blobs  blobs made by the other kernel (enc-blobs.h): each loads
 *              with the master key user:wqmk, reads back the same, and
 *              re-keyed to user:wqmk2 reads as a blob that depends on the
 *              secret it decrypted (the IV stays), so two kernels print
 *              the same only when they decrypted the same secret
 *   enc-make   (not compared: random) a blob made with `new`, to copy into
 *              enc-blobs.h
 */
#include "probe.h"
#include "enc-blobs.h"

static const char MK[] = "0123456789abcdef0123456789abcdef";
static const char MK2[] = "a second master key, 38 bytes long....";

static char blob[8192];

/* KEYCTL_READ of `k` into a buffer of `size` bytes: the result, and
 * the blob's first three words and its hex part's length. */
static long read_blob(int32_t k, size_t size)
{
	memset(blob, 0, sizeof blob);
	long n = keyctl(K_READ, k, size ? (long)blob : 0, (long)size, 0);
	int e = errno;
	printf("read(%s, %zu) = ", key_str(k), size);
	if (n < 0) {
		printf("-1 %s\n", errname(e));
		return n;
	}
	if ((size_t)n > size || n == 0) {
		printf("%ld (nothing copied: %s)\n", n, blob[0] ? "no" : "yes");
		return n;
	}
	blob[n] = 0;
	int sp = 0;
	long i = 0;
	for (; i < n && sp < 3; i++)
		if (blob[i] == ' ')
			sp++;
	long hex = 0;
	for (long j = i; j < n; j++)
		hex += !!strchr("0123456789abcdef", blob[j]);
	printf("%ld \"%.*s\" + %ld hex digits of %ld\n", n, (int)i, blob, hex, n - i);
	return n;
}

static int32_t enc_add(const char *desc, const char *data, int32_t ring, const char *label)
{
	char text[200];
	snprintf(text, sizeof text, "add_key(\"encrypted\", %s%s%s, \"%s\", %s)", desc ? "\"" : "",
		 desc ? desc : "NULL", desc ? "\"" : "", data, key_str(ring));
	return (int32_t)named(text, add_key("encrypted", desc, data, strlen(data), ring), label);
}

static long enc_update(int32_t k, const char *data)
{
	char text[200];
	snprintf(text, sizeof text, "update(%s, \"%s\")", key_str(k), data);
	return show(text, keyctl(K_UPDATE, k, (long)data, (long)strlen(data), 0));
}

static void describe(int32_t k)
{
	char d[256];
	long n = keyctl(K_DESCRIBE, k, (long)d, sizeof d, 0);
	if (n < 0) {
		printf("describe(%s) = -1 %s\n", key_str(k), errname(errno));
		return;
	}
	char type[32] = "", desc[200] = "";
	unsigned perm = 0;
	sscanf(d, "%31[^;];%*d;%*d;%x;%199[^\n]", type, &perm, desc);
	printf("describe(%s) = %s perm=%08x \"%s\"\n", key_str(k), type, perm, desc);
}

/* The key's description column in /proc/keys (user_describe()). */
static void proc_keys(int32_t k)
{
	FILE *f = fopen("/proc/keys", "r");
	char line[600], want[16];
	snprintf(want, sizeof want, "%08x ", k);
	printf("/proc/keys(%s) = ", key_str(k));
	while (f && fgets(line, sizeof line, f)) {
		if (strncmp(line, want, 9) != 0)
			continue;
		char *p = line;
		for (int i = 0; i < 8 && p; i++) {
			p += strspn(p, " ");
			p = strchr(p, ' ');
		}
		if (p)
			p += strspn(p, " ");
		printf("\"%.*s\"\n", p ? (int)strcspn(p, "\n") : 0, p ? p : "");
		fclose(f);
		return;
	}
	printf("(none)\n");
	if (f)
		fclose(f);
}

static int32_t masters(int32_t S)
{
	int32_t mk = ADD("user", "wqmk", MK, S, "mk");
	ADD("user", "wqmk2", MK2, S, "mk2");
	return mk;
}

static void sec_enc(void)
{
	int p[2];
	int32_t S = begin_section("enc", p);
	watch(S, p[1], 1);
	int32_t mk = masters(S);
	long n0;
	int32_t e1 = enc_add("e1", "new user:wqmk 32", S, "e1");
	describe(e1);
	proc_keys(e1);
	read_blob(e1, 0);
	read_blob(e1, 10);
	read_blob(e1, sizeof blob - 1);
	drain(p[0], 4096);

	/* new looks no master key up; a read with a buffer does */
	int32_t e2 = enc_add("e2", "new user:nosuch 20", S, "e2");
	read_blob(e2, 0);
	read_blob(e2, sizeof blob - 1);
	int32_t e5 = enc_add("e5", "new trusted:tk 4096", S, "e5");
	describe(e5);
	read_blob(e5, 0);
	read_blob(e5, sizeof blob - 1);
	int32_t e3 = enc_add("e3", "new enc32 user:wqmk 32", S, "e3");
	describe(e3);
	read_blob(e3, sizeof blob - 1);
	/* ecryptfs: 64 bytes in an authentication token, a hex description */
	int32_t ef = enc_add("0123456789abcdef", "new ecryptfs user:wqmk 64", S, "ef");
	describe(ef);
	proc_keys(ef);
	n0 = read_blob(ef, sizeof blob - 1);
	if (n0 > 0) {
		char l[8300];
		snprintf(l, sizeof l, "load %.*s", (int)n0, blob);
		int32_t ef2 = (int32_t)named("add_key(\"encrypted\", \"fedcba9876543210\", \"load \" + ef's blob, S)",
					     add_key("encrypted", "fedcba9876543210", l, strlen(l), S), "ef2");
		proc_keys(ef2);
		named("add_key(\"encrypted\", \"not-hex-16-chars\", \"load \" + ef's blob, S)",
		      add_key("encrypted", "not-hex-16-chars", l, strlen(l), S), "bad");
	}
	enc_add("0123456789abcde", "new ecryptfs user:wqmk 64", S, "bad");
	enc_add("0123456789abcdeg", "new ecryptfs user:wqmk 64", S, "bad");
	enc_add("0123456789ABCDEF", "new ecryptfs user:wqmk 32", S, "bad");
	enc_add("0123456789ABCDEF", "new ecryptfs trusted:tk 64", S, "efu");
	enc_add("e6", "new default user:wqmk 020", S, "e6");
	read_blob(keyctl(K_SEARCH, S, (long)"encrypted", (long)"e6", 0), sizeof blob - 1);

	/* the blob's checks */
	const char *bad[] = {
		"new enc32 user:wqmk 31", "new user:wqmk 19", "new user:wqmk 4097",
		"new user:wqmk x", "new user:wqmk 32 00112233", "new  user:wqmk 32",
		"new user:wqmk", "new key:wqmk 32", "new user: 32", "new default", "load user:wqmk 32",
		"load user:wqmk 32 00", "update user:wqmk", "bogus user:wqmk 32", "new", "new\tuser:wqmk\t21",
	};
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
		enc_add("bad", bad[i], S, "bad");
	named("add_key(\"encrypted\", NULL, \"new user:wqmk 32\", S)",
	      add_key("encrypted", NULL, "new user:wqmk 32", 16, S), "nodesc");
	named("add_key(\"encrypted\", \"b0\", \"\", 0, S)", add_key("encrypted", "b0", "", 0, S), "b0");
	named("add_key(\"encrypted\", \"b1\", \"new user:wqmk 32\\0x\", 18, S)",
	      add_key("encrypted", "b1", "new user:wqmk 32\0x", 18, S), "b1");
	drain(p[0], 4096);

	/* a blob loads back as the same secret */
	long n = read_blob(e3, sizeof blob - 1);
	char load[8300];
	snprintf(load, sizeof load, "load %.*s", (int)n, blob);
	int32_t e4 = (int32_t)named("add_key(\"encrypted\", \"e4\", \"load \" + e3's blob, S)",
				    add_key("encrypted", "e4", load, strlen(load), S), "e4");
	char first[8192];
	memcpy(first, blob, n);
	long m = read_blob(e4, sizeof blob - 1);
	printf("e4's blob is e3's: %s\n", m == n && memcmp(first, blob, n) == 0 ? "yes" : "no");
	/* without its format word the HMAC covers less: refused */
	char *fmt_end = strchr(load + 5, ' ');
	char noformat[8300];
	snprintf(noformat, sizeof noformat, "load%s", fmt_end);
	named("add_key(\"encrypted\", \"e7\", \"load\" + e3's blob without \"enc32\", S)",
	      add_key("encrypted", "e7", noformat, strlen(noformat), S), "e7");
	/* a corrupt HMAC, a bad hex digit, a wrong master key */
	char tmp[8400];
	strcpy(tmp, load);
	tmp[strlen(tmp) - 1] = tmp[strlen(tmp) - 1] == '0' ? '1' : '0';
	named("add_key(\"encrypted\", \"e8\", e3's blob, its last digit changed, S)",
	      add_key("encrypted", "e8", tmp, strlen(tmp), S), "e8");
	strcpy(tmp, load);
	tmp[strlen(tmp) - 70] = 'g';
	named("add_key(\"encrypted\", \"e8\", e3's blob, a digit made g, S)",
	      add_key("encrypted", "e8", tmp, strlen(tmp), S), "e8");
	snprintf(tmp, sizeof tmp, "load enc32 user:wqmk2 %s", load + strlen("load enc32 user:wqmk "));
	named("add_key(\"encrypted\", \"e8\", e3's blob for user:wqmk2, S)",
	      add_key("encrypted", "e8", tmp, strlen(tmp), S), "e8");
	snprintf(tmp, sizeof tmp, "load enc32 user:nosuch %s", load + strlen("load enc32 user:wqmk "));
	named("add_key(\"encrypted\", \"e8\", e3's blob for user:nosuch, S)",
	      add_key("encrypted", "e8", tmp, strlen(tmp), S), "e8");
	strcpy(tmp, load);
	tmp[strlen(tmp) - 1] = 0;
	named("add_key(\"encrypted\", \"e8\", e3's blob less a digit, S)",
	      add_key("encrypted", "e8", tmp, strlen(tmp), S), "e8");
	drain(p[0], 4096);

	/* updates re-key the secret */
	enc_update(e1, "update user:wqmk2");
	describe(e1);
	proc_keys(e1);
	read_blob(e1, sizeof blob - 1);
	enc_update(e1, "update trusted:tk");
	enc_update(e1, "update user:");
	enc_update(e1, "update");
	enc_update(e1, "new user:wqmk 32");
	enc_update(e1, "update default user:wqmk");
	enc_update(e3, "update enc32 user:wqmk2");
	read_blob(e3, sizeof blob - 1);
	enc_update(e5, "update user:wqmk");
	enc_update(e5, "update trusted:tk2");
	enc_add("e1", "new user:wqmk 32", S, "e1b");
	enc_add("e1", "update user:wqmk2", S, "e1c");
	read_blob(e1, sizeof blob - 1);
	drain(p[0], 4096);

	/* a revoked master key */
	KC(K_REVOKE, mk, 0, 0, 0);
	read_blob(e4, 0);
	read_blob(e4, sizeof blob - 1);
	read_blob(e1, sizeof blob - 1);
	KC(K_UNLINK, mk, S, 0, 0);
	end_section(p);
}

static void one_blob(const char *who, const char *b, int32_t S)
{
	printf("# the blob %s made\n", who);
	if (!*b) {
		printf("(none yet)\n");
		return;
	}
	char load[8300];
	snprintf(load, sizeof load, "load %s", b);
	int32_t k = (int32_t)named("add_key(\"encrypted\", \"blob\", \"load \" + blob, S)",
				   add_key("encrypted", "blob", load, strlen(load), S), "blob");
	long n = read_blob(k, sizeof blob - 1);
	printf("reads as loaded: %s\n", n == (long)strlen(b) && memcmp(blob, b, n) == 0 ? "yes" : "no");
	enc_update(k, "update user:wqmk2");
	n = read_blob(k, sizeof blob - 1);
	if (n > 0)
		printf("blob: %.*s\n", (int)n, blob);
	KC(K_UNLINK, k, S, 0, 0);
}

static void sec_blobs(void)
{
	int p[2];
	int32_t S = begin_section("enc-blobs", p);
	masters(S);
	one_blob("the real kernel", kernel_blob, S);
	one_blob("watchq", watchq_blob, S);
	end_section(p);
}

static void sec_make(void)
{
	int p[2];
	int32_t S = begin_section("enc-make", p);
	masters(S);
	int32_t k = enc_add("made", "new user:wqmk 40", S, "made");
	long n = keyctl(K_READ, k, (long)blob, sizeof blob - 1, 0);
	if (n > 0)
		printf("made: %.*s\n", (int)n, blob);
	end_section(p);
}

int main(int argc, char **argv)
{
	options(argc, argv, NULL, NULL, NULL, NULL);
	printf("# enc probe\n");
	if (wanted("enc"))
		sec_enc();
	if (wanted("enc-blobs"))
		sec_blobs();
	if (wanted("enc-make"))
		sec_make();
	printf("=== DONE\n");
	return 0;
}

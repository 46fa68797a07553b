/* asym.c - the asymmetric key type with X.509 certificates, and keyring
 * restrictions (watchq's own probe).
 *
 * Sections:
 *   asym-parse     add_key("asymmetric") of certificates: the description
 *                  the kernel makes (subject name, then the SKID or the
 *                  serial in hex), an explicit one kept, the permissions,
 *                  READ/UPDATE, a second add of the same certificate,
 *                  garbage, truncated and tampered certificates (a broken
 *                  self-signature), searching by `id:`/`ex:` key ids, and
 *                  the key's /proc/keys description
 *   asym-parse2    the same for asym-certs2.h's shapes (a version-1
 *                  certificate, names, SKIDs, key usage, P-384, P-521,
 *                  ECDSA-SHA-1, an AKID of a key id alone) and the PKCS#1
 *                  v1.5 checks of a self-signature: pad with signatures
 *                  over chosen blocks, one byte longer, or named ECDSA
 *   asym-restrict  KEYCTL_RESTRICT_KEYRING with the asymmetric type:
 *                  key_or_keyring:ID[:chain], builtin_trusted,
 *                  builtin_and_secondary_trusted, the argument checks,
 *                  the restriction cycle, restricting twice, and every
 *                  link and add_key checked against a restriction (signer
 *                  found in the trusted keyring, the trusted key, or the
 *                  keyring itself; bad signatures; other key types)
 *   asym-restrict2 a signer found by its serial and issuer whose SKID is
 *                  not the key id the candidate's AKID names beside them
 *   asym-search    the search permission a restriction's signer search
 *                  needs (on the keyring it starts from, a nested keyring,
 *                  the key), with the possessor's bits whoever the caller
 *                  is; a search by key id that meets a revoked or expired
 *                  key of another id
 *   asym-pkey      KEYCTL_PKEY_QUERY on RSA and EC keys with each encoding
 *                  and hash, and on a key that is not asymmetric
 *   asym-pkey-ops  KEYCTL_PKEY_ENCRYPT, DECRYPT, SIGN and VERIFY with an
 *                  RSA public key: raw encryption's bytes, pkcs1's length,
 *                  the size checks, EFAULT after them
 *
 * The certificates (asym-certs.h, asym-certs2.h) are
 * scripts/make-asym-certs.sh's (asym-certs2.h: with --more).
 */
#include "probe.h"
#include "asym-certs.h"
#include "asym-certs2.h"

#define CERT(c) cert_##c, cert_##c##_len

/* add_key("asymmetric", desc, cert, ring), printed by the certificate's name. */
static int32_t add_cert(const char *cname, const unsigned char *der, unsigned len,
			const char *desc, int32_t ring, const char *label)
{
	char text[160];
	snprintf(text, sizeof text, "add_key(\"asymmetric\", %s%s%s, %s, %s)",
		 desc ? "\"" : "", desc ? desc : "NULL", desc ? "\"" : "", cname, key_str(ring));
	long r = add_key("asymmetric", desc, der, len, ring);
	int e = errno;
	if (r > 0)
		name(r, label ? label : cname);
	errno = e;
	return (int32_t)show(text, r);
}
#define ADDC(c, desc, ring, label) add_cert(#c, CERT(c), desc, ring, label)

/* KEYCTL_DESCRIBE, without the uid and gid (the recording's are root's). */
static void describe(int32_t k)
{
	char d[512];
	long n = keyctl(K_DESCRIBE, k, (long)d, sizeof d, 0);
	printf("describe(%s) = ", key_str(k));
	if (n < 0) {
		printf("-1 %s\n", errname(errno));
		return;
	}
	char type[32] = "", desc[400] = "";
	unsigned perm = 0;
	sscanf(d, "%31[^;];%*d;%*d;%x;%399[^\n]", type, &perm, desc);
	printf("%s perm=%08x \"%s\"\n", type, perm, desc);
}

/* The key's description column in /proc/keys (the type's describe). */
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

/* keyctl(KEYCTL_RESTRICT_KEYRING, ring, type, restriction), where the
 * restriction may name one key: `%K` in `fmt` stands for its serial and
 * prints as its label. */
static long restrict_(int32_t ring, const char *type, const char *fmt, int32_t k)
{
	char real[96] = "", shown[96] = "";
	if (fmt) {
		const char *at = strstr(fmt, "%K");
		if (at) {
			snprintf(real, sizeof real, "%.*s%d%s", (int)(at - fmt), fmt, k, at + 2);
			snprintf(shown, sizeof shown, "%.*s%s%s", (int)(at - fmt), fmt, key_str(k),
				 at + 2);
		} else {
			snprintf(real, sizeof real, "%s", fmt);
			snprintf(shown, sizeof shown, "%s", fmt);
		}
	}
	char text[200];
	snprintf(text, sizeof text, "restrict(%s, %s%s%s, %s%s%s)", key_str(ring),
		 type ? "\"" : "", type ? type : "NULL", type ? "\"" : "", fmt ? "\"" : "",
		 fmt ? shown : "NULL", fmt ? "\"" : "");
	return show(text, keyctl(K_RESTRICT, ring, (long)type, fmt ? (long)real : 0, 0));
}

static long link_(int32_t k, int32_t ring)
{
	char text[96];
	snprintf(text, sizeof text, "link(%s, %s)", key_str(k), key_str(ring));
	return show(text, keyctl(K_LINK, k, ring, 0, 0));
}

static int32_t keyring(const char *desc, int32_t parent, const char *label)
{
	char text[96];
	snprintf(text, sizeof text, "add_key(\"keyring\", \"%s\", NULL, %s)", desc,
		 key_str(parent));
	return (int32_t)named(text, add_key("keyring", desc, NULL, 0, parent), label);
}

/* Searches `ring` for an asymmetric key by `spec` (printed as given). */
static void search(int32_t ring, const char *spec)
{
	char text[200];
	snprintf(text, sizeof text, "search(%s, \"asymmetric\", \"%s\")", key_str(ring), spec);
	show(text, keyctl(K_SEARCH, ring, (long)"asymmetric", (long)spec, 0));
}

static void hex(char *out, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* The DER element at p: its header length and content length. */
static size_t der_len(const unsigned char *p, size_t *hdr)
{
	if (p[1] < 0x80) {
		*hdr = 2;
		return p[1];
	}
	size_t n = p[1] & 0x7f, v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[2 + i];
	*hdr = 2 + n;
	return v;
}

/* A copy of `cert` with the first `from` bytes (found after `skip`
 * bytes) replaced by `to`. */
static unsigned char *tampered(const unsigned char *cert, unsigned len, size_t skip,
			       const char *from, const char *to)
{
	unsigned char *c = malloc(len);
	memcpy(c, cert, len);
	unsigned char *at = memmem(c + skip, len - skip, from, strlen(from));
	if (!at) {
		printf("tamper: \"%s\" not found\n", from);
		exit(1);
	}
	memcpy(at, to, strlen(to));
	return c;
}

/* A copy of `cert` with the byte `off` bytes after each of the first
 * `times` occurrences of the `plen` bytes `pat` made `to` (binary-safe,
 * unlike tampered()). */
static unsigned char *edited(const unsigned char *cert, unsigned len, const char *pat,
			     size_t plen, long off, unsigned char to, int times)
{
	unsigned char *c = malloc(len);
	memcpy(c, cert, len);
	unsigned char *at = c;
	for (int i = 0; i < times; i++) {
		at = memmem(at, len - (size_t)(at - c), pat, plen);
		if (!at) {
			printf("edit: pattern %d not found\n", i);
			exit(1);
		}
		at[off] = to;
		at += plen;
	}
	return c;
}

/* add_key of an edited certificate, printed by `what`. */
static void add_edited(const char *what, unsigned char *c, unsigned len, int32_t ring)
{
	char text[200];
	snprintf(text, sizeof text, "add_key(\"asymmetric\", NULL, %s, S)", what);
	int32_t k = (int32_t)named(text, add_key("asymmetric", NULL, c, len, ring), "edited");
	if (k > 0) {
		describe(k);
		proc_keys(k);
		keyctl(K_UNLINK, k, ring, 0, 0);
	}
	free(c);
}

static void sec_parse(void)
{
	int p[2];
	int32_t S = begin_section("asym-parse", p);
	watch(S, p[1], 1);
	int32_t ca1 = ADDC(ca1, NULL, S, "ca1");
	describe(ca1);
	proc_keys(ca1);
	int32_t ee = ADDC(ee, NULL, S, "ee");
	describe(ee);
	proc_keys(ee);
	int32_t mine = ADDC(ee2, "mine", S, "mine");
	describe(mine);
	proc_keys(mine);
	const char *names[] = {"noskid", "noakid", "prefix", "orgcn", "mailonly", "self", "ee-sha1"};
	const unsigned char *ders[] = {cert_noskid, cert_noakid, cert_prefix, cert_orgcn,
				       cert_mailonly, cert_self, cert_ee_sha1};
	unsigned lens[] = {cert_noskid_len, cert_noakid_len, cert_prefix_len, cert_orgcn_len,
			   cert_mailonly_len, cert_self_len, cert_ee_sha1_len};
	int32_t ks[7];
	for (int i = 0; i < 7; i++) {
		ks[i] = add_cert(names[i], ders[i], lens[i], NULL, S, names[i]);
		describe(ks[i]);
	}
	proc_keys(ks[0]);
	int32_t ec = ADDC(ec_ee, NULL, S, "ec-ee");
	describe(ec);
	proc_keys(ec);
	ADDC(ec_self, NULL, S, "ec-self");
	drain(p[0], 4096);

	/* No read, no update; a second add of the certificate is a new key. */
	char buf[64];
	KC(K_READ, ee, buf, sizeof buf, 0);
	KC(K_UPDATE, ee, cert_ee, cert_ee_len, 0);
	int32_t ee_again = ADDC(ee, NULL, S, "ee-again");
	printf("same key: %s\n", ee_again == ee ? "yes" : "no");
	contents(S, "S");
	drain(p[0], 4096);

	/* Bad payloads. */
	show("add_key(\"asymmetric\", NULL, \"\", 0, S)", add_key("asymmetric", NULL, "", 0, S));
	show("add_key(\"asymmetric\", \"x\", \"garbage\", 7, S)",
	     add_key("asymmetric", "x", "garbage", 7, S));
	show("add_key(\"asymmetric\", NULL, ca1 less 1 byte, S)",
	     add_key("asymmetric", NULL, cert_ca1, cert_ca1_len - 1, S));
	show("add_key(\"asymmetric\", NULL, ca1 less its signature, S)",
	     add_key("asymmetric", NULL, cert_ca1, cert_ca1_len - 64, S));
	unsigned char *bad = tampered(cert_ca1, cert_ca1_len, 0, "ca1@", "cb1@");
	named("add_key(\"asymmetric\", NULL, ca1 with its issuer's mail changed, S)",
	     add_key("asymmetric", NULL, bad, cert_ca1_len, S), "ca1-issuer");
	free(bad);
	bad = tampered(cert_self, cert_self_len, 0, "self@", "selg@");
	named("add_key(\"asymmetric\", NULL, self with its issuer's mail changed, S)",
	     add_key("asymmetric", NULL, bad, cert_self_len, S), "bad");
	free(bad);
	bad = malloc(cert_self_len);
	memcpy(bad, cert_self, cert_self_len);
	bad[cert_self_len - 1] ^= 1;
	named("add_key(\"asymmetric\", NULL, self with its signature's last byte changed, S)",
	     add_key("asymmetric", NULL, bad, cert_self_len, S), "bad");
	free(bad);
	drain(p[0], 4096);

	/* Certificates edited in place (same lengths). int's basic
	 * constraints (CA:TRUE, 30 03 01 01 ff) made an explicit CA:FALSE, a
	 * path length alone (an INTEGER) and an OCTET STRING: what
	 * x509_process_extension() takes of a non-empty SEQUENCE. */
	const char bc[] = "\x55\x1d\x13\x01\x01\xff\x04\x05\x30\x03\x01\x01\xff";
	add_edited("int with CA:FALSE", edited(cert_int, cert_int_len, bc, 13, 12, 0, 1),
		   cert_int_len, S);
	unsigned char *e = edited(cert_int, cert_int_len, bc, 13, 10, 0x02, 1);
	e[(unsigned char *)memmem(e, cert_int_len, "\x55\x1d\x13", 3) - e + 12] = 0;
	add_edited("int with a path length alone", e, cert_int_len, S);
	add_edited("int with an OCTET STRING in its basic constraints",
		   edited(cert_int, cert_int_len, bc, 13, 10, 0x04, 1), cert_int_len, S);
	/* ec-self's two ecdsa-with-SHA256 OIDs (1.2.840.10045.4.3.2) made
	 * SHA-224, SHA-384, SHA-512 (4.3.1, 4.3.3, 4.3.4): self-signed, so
	 * checked with its own key. */
	const char ecsha[] = "\x2a\x86\x48\xce\x3d\x04\x03\x02";
	const char *hashes[] = {"SHA-224", "SHA-384", "SHA-512"};
	for (int i = 0; i < 3; i++) {
		char what[80];
		snprintf(what, sizeof what, "ec-self signed with ECDSA-%s", hashes[i]);
		add_edited(what, edited(cert_ec_self, cert_ec_self_len, ecsha, 8, 7,
					(unsigned char[]){1, 3, 4}[i], 2),
			   cert_ec_self_len, S);
	}
	/* ec-ee's curve (prime256v1, 1.2.840.10045.3.1.7) made prime192v1
	 * (3.1.1); not self-signed. */
	add_edited("ec-ee on P-192",
		   edited(cert_ec_ee, cert_ec_ee_len, "\x2a\x86\x48\xce\x3d\x03\x01\x07", 8, 7,
			  1, 1),
		   cert_ec_ee_len, S);
	/* self's AKID (keyid:always, issuer:always: its own SKID, issuer and
	 * serial) made to name another key id, another serial, or both. */
	const unsigned char *ak = memmem(cert_self, cert_self_len, "\x55\x1d\x23\x04", 4);
	long akid_at = ak - cert_self, akid_end = akid_at + 5 + ak[4];
	e = malloc(cert_self_len);
	memcpy(e, cert_self, cert_self_len);
	e[akid_at + 9] ^= 1;
	add_edited("self with its AKID's key id changed", e, cert_self_len, S);
	e = malloc(cert_self_len);
	memcpy(e, cert_self, cert_self_len);
	e[akid_end - 1] ^= 1;
	add_edited("self with its AKID's serial changed", e, cert_self_len, S);
	e = malloc(cert_self_len);
	memcpy(e, cert_self, cert_self_len);
	e[akid_at + 9] ^= 1;
	e[akid_end - 1] ^= 1;
	add_edited("self with its AKID's key id and serial changed", e, cert_self_len, S);
	drain(p[0], 4096);

	/* Searches by key id: ex: whole ids, id: their tails. */
	char spec[600], h[520];
	size_t hdr, n;
	/* ee's SKID: 20 bytes found after its OID 2.5.29.14 (55 1d 0e 04 16 04 14). */
	const unsigned char *skid = memmem(cert_ee, cert_ee_len, "\x55\x1d\x0e\x04\x16\x04\x14", 7);
	hex(h, skid + 7, 20);
	snprintf(spec, sizeof spec, "ex:%s", h);
	search(S, spec);
	snprintf(spec, sizeof spec, "id:%s", h + 32);
	search(S, spec);
	for (char *c = spec + 3; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c -= 32;
	search(S, spec);
	snprintf(spec, sizeof spec, "ex:%s", h + 32);
	search(S, spec);
	snprintf(spec, sizeof spec, "id:%s", h + 33);
	search(S, spec);
	search(S, "id:");
	search(S, "id:zz");
	search(S, "ex:00");
	/* ee's serial and issuer: ex: of both, id: of the issuer's tail. */
	const unsigned char *tbs = cert_ee;
	der_len(tbs, &hdr);
	tbs += hdr;
	der_len(tbs, &hdr);
	const unsigned char *q = tbs + hdr;
	if (q[0] == 0xa0) { /* version */
		n = der_len(q, &hdr);
		q += hdr + n;
	}
	size_t slen = der_len(q, &hdr);
	const unsigned char *serial = q + hdr;
	q += hdr + slen;
	n = der_len(q, &hdr); /* signature algorithm */
	q += hdr + n;
	size_t ilen = der_len(q, &hdr);
	const unsigned char *issuer = q + hdr;
	hex(h, serial, slen);
	hex(h + 2 * slen, issuer, ilen);
	snprintf(spec, sizeof spec, "ex:%s", h);
	search(S, spec);
	/* ca1's own issuer name ends in its mail address, the only such one. */
	search(S, "id:636131406578616d706c652e636f6d");
	/* ... and the subject name alone (the third id). */
	q += hdr + ilen;
	n = der_len(q, &hdr); /* validity */
	q += hdr + n;
	size_t sulen = der_len(q, &hdr);
	hex(h, q + hdr, sulen);
	snprintf(spec, sizeof spec, "ex:%s", h);
	search(S, spec);
	snprintf(spec, sizeof spec, "dn:%s", h);
	search(S, spec);
	search(S, "dn:00");
	search(S, "dn:0");
	/* The description. */
	char d[512];
	keyctl(K_DESCRIBE, ee_again, (long)d, sizeof d, 0);
	char *desc = strrchr(d, ';') + 1;
	snprintf(spec, sizeof spec, "%s", desc);
	printf("search(S, \"asymmetric\", <ee's description>) = %s\n",
	       keyctl(K_SEARCH, S, (long)"asymmetric", (long)spec, 0) == ee_again ? "<ee-again>" : "?");
	search(S, "Org: EndEntity");
	end_section(p);
}

/* add_key of each of asym-certs2.h's certificates, then pad with each
 * signature put in its place. */
static void sec_parse2(void)
{
	int p[2];
	int32_t S = begin_section("asym-parse2", p);
	const char *names[] = {"ca3", "orgonly", "prefix7", "skid1", "skid2", "ku2", "v1",
			       "ec384", "ec521", "ecsha1", "selfkid", "pad", "pad_long",
			       "pad_ecsig"};
	const unsigned char *ders[] = {cert_ca3,    cert_orgonly, cert_prefix7, cert_skid1,
				       cert_skid2,  cert_ku2,	  cert_v1,	cert_ec384,
				       cert_ec521,  cert_ecsha1,  cert_selfkid, cert_pad,
				       cert_pad_long, cert_pad_ecsig};
	unsigned lens[] = {cert_ca3_len,   cert_orgonly_len, cert_prefix7_len, cert_skid1_len,
			   cert_skid2_len, cert_ku2_len,     cert_v1_len,      cert_ec384_len,
			   cert_ec521_len, cert_ecsha1_len,  cert_selfkid_len, cert_pad_len,
			   cert_pad_long_len, cert_pad_ecsig_len};
	for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
		int32_t k = add_cert(names[i], ders[i], lens[i], NULL, S, names[i]);
		if (k > 0) {
			describe(k);
			proc_keys(k);
			keyctl(K_UNLINK, k, S, 0, 0);
		}
	}
	/* selfkid's AKID (its own key id alone) made to name another key id:
	 * then not self-signed, its signature (now wrong) not checked. */
	const unsigned char *ak = memmem(cert_selfkid, cert_selfkid_len, "\x55\x1d\x23\x04", 4);
	unsigned char *e = malloc(cert_selfkid_len);
	memcpy(e, cert_selfkid, cert_selfkid_len);
	e[ak - cert_selfkid + 9] ^= 1;
	add_edited("selfkid with its AKID's key id changed", e, cert_selfkid_len, S);
	/* ee's AKID (30 67: [0] key id, [1] issuer, [2] serial) with the
	 * issuer's tag made [3] constructed, and the serial's [3] primitive:
	 * tags x509_akid.asn1 has not. */
	ak = memmem(cert_ee, cert_ee_len, "\x55\x1d\x23\x04", 4);
	long at = ak - cert_ee + 29;
	e = malloc(cert_ee_len);
	memcpy(e, cert_ee, cert_ee_len);
	e[at] = 0xa3;
	add_edited("ee with its AKID's [1] made [3]", e, cert_ee_len, S);
	e = malloc(cert_ee_len);
	memcpy(e, cert_ee, cert_ee_len);
	e[at + 2 + cert_ee[at + 1]] = 0x83;
	add_edited("ee with its AKID's [2] made [3]", e, cert_ee_len, S);
	/* pad with each signature of asym-certs2.h in place of its own. */
	const char *sigs[] = {"ok", "ff8", "ff7", "no00", "allff", "infoonly", "short", "digest"};
	const unsigned char *sig[] = {sig_pad_ok,    sig_pad_ff8,      sig_pad_ff7,
				      sig_pad_no00,  sig_pad_allff,    sig_pad_infoonly,
				      sig_pad_short, sig_pad_digest};
	for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		char what[80];
		snprintf(what, sizeof what, "pad signed over the block %s", sigs[i]);
		e = malloc(cert_pad_len);
		memcpy(e, cert_pad, cert_pad_len);
		memcpy(e + cert_pad_len - 256, sig[i], 256);
		add_edited(what, e, cert_pad_len, S);
	}
	end_section(p);
}

static void sec_restrict(void)
{
	int p[2];
	int32_t S = begin_section("asym-restrict", p);
	int32_t ca = keyring("ca", S, "ca");
	int32_t rbkr = keyring("rbkr", S, "rbkr");
	watch(rbkr, p[1], 2);
	restrict_(rbkr, "asymmetric", "key_or_keyring:%K", ca);
	drain(p[0], 4096);
	/* the cycle and the second restriction */
	restrict_(ca, "asymmetric", "key_or_keyring:%K", rbkr);
	restrict_(rbkr, "asymmetric", "builtin_trusted", 0);
	restrict_(rbkr, NULL, NULL, 0);
	int32_t self_r = keyring("selfr", S, "selfr");
	restrict_(self_r, "asymmetric", "key_or_keyring:%K", self_r);
	int32_t a = keyring("a", S, "a"), b = keyring("b", S, "b"), c = keyring("c", S, "c");
	restrict_(a, "asymmetric", "key_or_keyring:%K", b);
	restrict_(b, "asymmetric", "key_or_keyring:%K", c);
	restrict_(c, "asymmetric", "key_or_keyring:%K", a);
	restrict_(c, "asymmetric", "key_or_keyring:%K:chain", a);
	/* the restriction's argument */
	int32_t arg = keyring("arg", S, "arg");
	restrict_(arg, "asymmetric", "", 0);
	restrict_(arg, "asymmetric", "bogus", 0);
	restrict_(arg, "asymmetric", "key_or_keyring", 0);
	restrict_(arg, "asymmetric", "key_or_keyring:", 0);
	restrict_(arg, "asymmetric", "key_or_keyring:x", 0);
	restrict_(arg, "asymmetric", "key_or_keyring:0", 0);
	restrict_(arg, "asymmetric", "key_or_keyring:2147483647", 0);
	restrict_(arg, "asymmetric", "key_or_keyring:%K:", ca);
	restrict_(arg, "asymmetric", "key_or_keyring:%K:chai", ca);
	restrict_(arg, "asymmetric", "key_or_keyring:%K:chain:", ca);
	restrict_(arg, "asymmetric", "builtin_trusted:", 0);
	restrict_(arg, "user", "key_or_keyring:%K", ca);
	restrict_(arg, "keyring", "key_or_keyring:%K", ca);
	restrict_(arg, "asymmetric", "builtin_and_secondary_trusted", 0);
	int32_t hexr = keyring("hex", S, "hex");
	char hexspec[64];
	snprintf(hexspec, sizeof hexspec, "key_or_keyring:0x%x", ca);
	show("restrict(<hex>, \"asymmetric\", \"key_or_keyring:0x<ca>\")",
	     keyctl(K_RESTRICT, hexr, (long)"asymmetric", (long)hexspec, 0));
	int32_t bt = keyring("bt", S, "bt");
	restrict_(bt, "asymmetric", "builtin_trusted", 0);

	/* the trusted keyring */
	int32_t ca1 = ADDC(ca1, NULL, ca, "ca1");
	ADDC(ee, NULL, rbkr, NULL);
	ADDC(ee, NULL, bt, NULL);
	int32_t ca2 = ADDC(ca2, NULL, ca, "ca2");
	int32_t rbk = keyring("rbk", S, "rbk");
	restrict_(rbk, "asymmetric", "key_or_keyring:%K", ca2);
	int32_t ee = ADDC(ee, NULL, rbkr, "ee");
	link_(ee, rbk);
	ADDC(self, NULL, rbkr, NULL);
	ADDC(self, NULL, rbk, NULL);
	restrict_(rbk, "asymmetric", "builtin_trusted", 0);
	ADDC(noakid, NULL, rbkr, "noakid");
	ADDC(noskid, NULL, rbkr, "noskid");
	ADDC(ee_sha1, NULL, rbk, "ee-sha1");
	ADDC(ee2, NULL, rbkr, NULL);
	ADDC(ca1, NULL, rbk, NULL);
	link_(ca1, rbkr);
	ADDC(ec_ee, NULL, rbk, "ec-ee");
	drain(p[0], 4096);
	/* tampered: signer found, signature wrong */
	unsigned char *bad = tampered(cert_prefix, cert_prefix_len, 0, "Acme", "Acne");
	named("add_key(\"asymmetric\", NULL, prefix with its subject changed, <rbkr>)",
	     add_key("asymmetric", NULL, bad, cert_prefix_len, rbkr), "bad");
	memcpy(bad, cert_prefix, cert_prefix_len);
	bad[cert_prefix_len - 1] ^= 1;
	named("add_key(\"asymmetric\", NULL, prefix with its signature's last byte changed, <rbkr>)",
	     add_key("asymmetric", NULL, bad, cert_prefix_len, rbkr), "bad");
	free(bad);
	/* other key types */
	named("add_key(\"user\", \"u\", \"x\", 1, <rbkr>)", add_key("user", "u", "x", 1, rbkr), "bad");
	int32_t u = (int32_t)named("add_key(\"user\", \"u\", \"x\", 1, S)", add_key("user", "u", "x", 1, S), "u");
	link_(u, rbkr);
	link_(ca, rbkr);
	/* a restriction on a key that is not asymmetric */
	int32_t byu = keyring("byu", S, "byu");
	restrict_(byu, "asymmetric", "key_or_keyring:%K", u);
	ADDC(ee, NULL, byu, NULL);
	/* a revoked trusted key */
	int32_t rv = keyring("rv", S, "rv");
	restrict_(rv, "asymmetric", "key_or_keyring:%K", ca2);
	int32_t prefix = ADDC(prefix, NULL, S, "prefix");
	int32_t ca2b = ADDC(ca2, "ca2-copy", S, "ca2b");
	int32_t rvb = keyring("rvb", S, "rvb");
	restrict_(rvb, "asymmetric", "key_or_keyring:%K", ca2b);
	KC(K_REVOKE, ca2b, 0, 0, 0);
	link_(prefix, rvb);
	link_(prefix, rv);

	/* keyrings restricted by their own contents */
	int32_t rbs1 = keyring("rbs1", S, "rbs1"), rbs2 = keyring("rbs2", S, "rbs2");
	link_(ee, rbs1);
	link_(ca2, rbs2);
	restrict_(rbs1, "asymmetric", "key_or_keyring:0:chain", 0);
	restrict_(rbs2, "asymmetric", "key_or_keyring:0:chain", 0);
	link_(ca2, rbs1);
	ADDC(self, NULL, rbs1, NULL);
	ADDC(self, NULL, rbs2, NULL);
	link_(ee, rbs2);
	int32_t in = ADDC(int, NULL, rbs2, "int");
	int32_t ee2 = ADDC(ee2, NULL, rbs2, "ee2");
	contents(rbs2, "rbs2");
	/* a chain with a trusted keyring */
	int32_t rbi = keyring("rbi", S, "rbi");
	restrict_(rbi, "asymmetric", "key_or_keyring:%K:chain", ca);
	link_(ee2, rbi);
	link_(in, rbi);
	link_(ee2, rbi);
	contents(rbi, "rbi");
	/* no chain: the trusted key alone */
	int32_t rbik = keyring("rbik", S, "rbik");
	restrict_(rbik, "asymmetric", "key_or_keyring:%K", in);
	link_(ee2, rbik);
	link_(ee, rbik);
	/* the fully restricted keyring */
	int32_t fr = keyring("fr", S, "fr");
	link_(ca2, fr);
	restrict_(fr, NULL, NULL, 0);
	link_(ca2, fr);
	ADDC(self, NULL, fr, NULL);
	restrict_(fr, "asymmetric", "builtin_trusted", 0);
	/* the key ids of a restriction keyring are searched for, as root */
	contents(rbkr, "rbkr");
	contents(ca, "ca");
	KC(K_CLEAR, rbkr, 0, 0, 0);
	link_(ee, rbkr);
	end_section(p);
}

/* Restrictions by a signer whose SKID is not the one the candidate's
 * AKID names beside the signer's serial and issuer: int (not
 * self-signed, so taken as edited) with its SKID changed, trusted as a
 * keyring's key and as the key itself, and ee2 (signed by int, its AKID
 * int's key id, serial and issuer) added under each; then the same with
 * int as made. */
static void sec_restrict2(void)
{
	int p[2];
	int32_t S = begin_section("asym-restrict2", p);
	const unsigned char *skid = memmem(cert_int, cert_int_len,
					   "\x55\x1d\x0e\x04\x16\x04\x14", 7);
	unsigned char *e = malloc(cert_int_len);
	memcpy(e, cert_int, cert_int_len);
	e[skid - cert_int + 7] ^= 1;
	for (int edited = 1; edited >= 0; edited--) {
		const char *what = edited ? "int with its SKID changed" : "int";
		int32_t t = keyring(edited ? "t-edited" : "t", S, edited ? "t-edited" : "t");
		char text[200];
		snprintf(text, sizeof text, "add_key(\"asymmetric\", NULL, %s, %s)", what,
			 key_str(t));
		int32_t in = (int32_t)named(text,
					    add_key("asymmetric", NULL, edited ? e : cert_int,
						    cert_int_len, t),
					    edited ? "int-edited" : "int");
		int32_t rr = keyring(edited ? "rr-edited" : "rr", S, edited ? "rr-edited" : "rr");
		restrict_(rr, "asymmetric", "key_or_keyring:%K", t);
		ADDC(ee2, NULL, rr, NULL);
		int32_t rk = keyring(edited ? "rk-edited" : "rk", S, edited ? "rk-edited" : "rk");
		restrict_(rk, "asymmetric", "key_or_keyring:%K", in);
		ADDC(ee2, NULL, rk, NULL);
	}
	free(e);
	end_section(p);
}

/* A restriction's signer search, case `name`: a keyring t (in S) holding
 * a keyring n holding ca2, t's and n's and ca2's permissions set to `perm`
 * as `which` says (1: t, 2: n, 4: ca2), and with `held` t moved out of
 * S into a keyring the caller cannot search (so nothing of the tree is
 * possessed); then a keyring restricted by t, and ee added to it. */
static void signer_perm(int32_t S, const char *name, unsigned perm, int which, int held)
{
	char d[32];
	snprintf(d, sizeof d, "t-%s", name);
	int32_t t = keyring(d, S, d);
	snprintf(d, sizeof d, "n-%s", name);
	int32_t n = keyring(d, t, d);
	int32_t ca = ADDC(ca2, NULL, n, NULL);
	if (which & 1)
		KC(K_SETPERM, t, perm, 0, 0);
	if (which & 2)
		KC(K_SETPERM, n, perm, 0, 0);
	if (which & 4)
		KC(K_SETPERM, ca, perm, 0, 0);
	if (held) {
		snprintf(d, sizeof d, "hold-%s", name);
		int32_t hold = keyring(d, S, d);
		link_(t, hold);
		KC(K_UNLINK, t, S, 0, 0);
		KC(K_SETPERM, hold, 0x37370000, 0, 0);
	}
	snprintf(d, sizeof d, "r-%s", name);
	int32_t r = keyring(d, S, d);
	restrict_(r, "asymmetric", "key_or_keyring:%K", t);
	ADDC(ee, NULL, r, NULL);
}

/* KEYCTL_SEARCH of `ring` for the asymmetric key with the id `spec`,
 * printed as `shown`. */
static void search_id(int32_t ring, const char *spec, const char *shown)
{
	char text[200];
	snprintf(text, sizeof text, "search(%s, \"asymmetric\", \"%s\")", key_str(ring), shown);
	show(text, keyctl(K_SEARCH, ring, (long)"asymmetric", (long)spec, 0));
}

static void sec_search(void)
{
	int p[2];
	int32_t S = begin_section("asym-search", p);
	/* search permission in a restriction's signer search: the possessor
	 * and owner without it (0x37), the possessor alone with it */
	signer_perm(S, "top", 0x37370000, 1, 0);
	signer_perm(S, "nested", 0x37370000, 2, 0);
	signer_perm(S, "key", 0x37370000, 4, 0);
	signer_perm(S, "pos", 0x3f010000, 7, 0);
	signer_perm(S, "held", 0x3f010000, 7, 1);
	/* a search by key id meets a revoked or an expired key on the way */
	int32_t probe = keyring("probe", S, "probe");
	int32_t ee = ADDC(ee, NULL, probe, "ee");
	char d[512], spec[64] = "id:";
	long len = keyctl(K_DESCRIBE, ee, (long)d, sizeof d, 0);
	const char *last = len > 0 ? strrchr(d, ' ') : NULL;
	if (last && strlen(last + 1) >= 8)
		snprintf(spec, sizeof spec, "id:%s", last + 1 + strlen(last + 1) - 8);
	/* the revoked ones searched at once: the collector unlinks a revoked
	 * key gc_delay seconds on */
	int32_t rv = keyring("s-revoked", S, "s-revoked");
	int32_t c = ADDC(ca1, NULL, rv, "ca1-revoked");
	int32_t tf = keyring("s-then-found", S, "s-then-found");
	int32_t c2 = ADDC(ca1, NULL, tf, "ca1-revoked2");
	ADDC(ee, NULL, tf, "ee-in-tf");
	int32_t ex = keyring("s-expired", S, "s-expired");
	int32_t c3 = ADDC(ca1, NULL, ex, "ca1-expired");
	KC(K_SET_TIMEOUT, c3, 1, 0, 0);
	KC(K_REVOKE, c, 0, 0, 0);
	KC(K_REVOKE, c2, 0, 0, 0);
	search_id(rv, spec, "id:<ee's last 8 hex digits>");
	search_id(tf, spec, "id:<ee's last 8 hex digits>");
	search(rv, "no such description");
	/* the expired one after its timeout, before the collector's delay
	 * past it (gc_delay 2 in the recording) */
	sleep(2);
	search_id(ex, spec, "id:<ee's last 8 hex digits>");
	search(ex, "no such description");
	end_section(p);
}

#define K_PKEY_QUERY 24
#define K_PKEY_ENCRYPT 25
#define K_PKEY_DECRYPT 26
#define K_PKEY_SIGN 27
#define K_PKEY_VERIFY 28

/* KEYCTL_PKEY_QUERY(k, 0, info, res): the result and struct
 * keyctl_pkey_query (res filled with 0xee first: the spare words are
 * cleared). */
static void pkey_query(int32_t k, const char *info, int null_res)
{
	unsigned char res[56];
	memset(res, 0xee, sizeof res);
	long r = keyctl(K_PKEY_QUERY, k, 0, (long)info, null_res ? 0 : (long)res);
	int e = errno;
	printf("pkey_query(%s, \"%s\"%s) = ", key_str(k), info, null_res ? ", NULL" : "");
	if (r < 0) {
		printf("-1 %s\n", errname(e));
		return;
	}
	uint32_t ops, bits;
	uint16_t sz[4];
	memcpy(&ops, res, 4);
	memcpy(&bits, res + 4, 4);
	memcpy(sz, res + 8, 8);
	int spare = 0;
	for (int i = 16; i < 56; i++)
		spare |= res[i];
	printf("%ld ops=0x%x bits=%u data=%u sig=%u enc=%u dec=%u spare=%s\n", r, ops, bits, sz[0],
	       sz[1], sz[2], sz[3], spare ? "set" : "0");
}

static void sec_pkey(void)
{
	int p[2];
	int32_t S = begin_section("asym-pkey", p);
	int32_t ee = ADDC(ee, NULL, S, "ee");
	int32_t ee2 = ADDC(ee2, NULL, S, "ee2");
	int32_t ec = ADDC(ec_ee, NULL, S, "ec-ee");
	int32_t u = (int32_t)named("add_key(\"user\", \"u\", \"x\", 1, S)",
				   add_key("user", "u", "x", 1, S), "u");
	const char *infos[] = {"", "enc=raw", "enc=pkcs1", "enc=pkcs1 hash=sha256",
			       "hash=sha1 enc=pkcs1", "enc=pkcs1 hash=md5", "enc=pkcs1 hash=sha3-256",
			       "enc=pkcs1 hash=foo", "enc=raw hash=sha256", "enc=oaep",
			       "enc=x962 hash=sha256"};
	for (unsigned i = 0; i < sizeof infos / sizeof infos[0]; i++)
		pkey_query(ee, infos[i], 0);
	pkey_query(ee2, "enc=pkcs1 hash=sha512", 0);
	pkey_query(ec, "enc=x962 hash=sha256", 0);
	pkey_query(ec, "enc=x962", 0);
	pkey_query(ec, "enc=x962 hash=md5", 0);
	pkey_query(ec, "", 0);
	pkey_query(u, "", 0);
	pkey_query(ee, "enc=pkcs1", 1);
	pkey_query(ee, "enc=oaep", 1);
	pkey_query(u, "", 1);
	end_section(p);
}

/* KEYCTL_PKEY_{ENCRYPT,DECRYPT,SIGN,VERIFY}: the result, and the first
 * bytes of the output. */
/* in and out: 0 the probe's buffers, 1 NULL. The input is zeros but its
 * last byte, `last`; a pkcs1 encryption's output is random: only raw
 * outputs are shown, as their first bytes and byte 255. */
static void pkey_op_(int op, const char *name, int32_t k, const char *info, uint32_t in_len,
		     uint32_t out_len, int null_in, int null_out, unsigned char last)
{
	struct {
		int32_t key_id;
		uint32_t in_len;
		uint32_t out_len;
		uint32_t spare[7];
	} params = {k, in_len, out_len, {0}};
	static unsigned char in[1024], out[1024];
	memset(in, 0, sizeof in);
	in[in_len ? in_len - 1 : 0] = last;
	memset(out, 0xee, sizeof out);
	long r = keyctl(op, (long)&params, (long)info, null_in ? 0 : (long)in,
			null_out ? 0 : (long)out);
	int e = errno;
	printf("%s(%s, \"%s\", in %u%s, out %u%s) = ", name, key_str(k), info, in_len,
	       null_in ? " NULL" : "", out_len, null_out ? " NULL" : "");
	if (r < 0)
		printf("-1 %s\n", errname(e));
	else if (strstr(info, "pkcs1"))
		printf("%ld\n", r);
	else
		printf("%ld, %02x%02x%02x%02x.. [255] %02x\n", r, out[0], out[1], out[2], out[3],
		       out[255]);
}

static void pkey_op(int op, const char *name, int32_t k, const char *info, uint32_t in_len,
		    uint32_t out_len)
{
	pkey_op_(op, name, k, info, in_len, out_len, 0, 0, 2);
}

/* KEYCTL_PKEY_ENCRYPT of ee's modulus less `less`, raw (256 bytes in
 * and out), shown as pkey_op_() shows a raw output. */
static void encrypt_n_less(int32_t ee, unsigned less)
{
	const unsigned char *n = memmem(cert_ee, cert_ee_len, "\x02\x82\x01\x01\x00", 5);
	struct {
		int32_t key_id;
		uint32_t in_len;
		uint32_t out_len;
		uint32_t spare[7];
	} params = {ee, 256, 256, {0}};
	unsigned char in[256], out[256];
	memcpy(in, n + 5, 256);
	unsigned borrow = less;
	for (int i = 255; i >= 0 && borrow; i--) { /* in = n - less */
		unsigned v = in[i];
		in[i] = (unsigned char)(v - borrow);
		borrow = v < borrow;
	}
	memset(out, 0xee, sizeof out);
	long r = keyctl(K_PKEY_ENCRYPT, (long)&params, (long)"enc=raw", (long)in, (long)out);
	int e = errno;
	printf("encrypt(<ee>, \"enc=raw\", in <ee's n less %u>, out 256) = ", less);
	if (r < 0)
		printf("-1 %s\n", errname(e));
	else
		printf("%ld, %02x%02x%02x%02x.. [255] %02x\n", r, out[0], out[1], out[2], out[3],
		       out[255]);
}

static void sec_pkey_ops(void)
{
	int p[2];
	int32_t S = begin_section("asym-pkey-ops", p);
	int32_t ee = ADDC(ee, NULL, S, "ee");
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee, "enc=raw", 256, 256);
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee, "enc=raw", 1, 256);
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee, "enc=pkcs1", 32, 256);
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee, "enc=pkcs1", 300, 256);
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee, "enc=pkcs1", 32, 300);
	pkey_op(K_PKEY_DECRYPT, "decrypt", ee, "enc=raw", 256, 256);
	pkey_op(K_PKEY_SIGN, "sign", ee, "enc=pkcs1 hash=sha256", 32, 256);
	pkey_op(K_PKEY_VERIFY, "verify", ee, "enc=pkcs1 hash=sha256", 32, 256);
	pkey_op(K_PKEY_VERIFY, "verify", ee, "enc=raw", 256, 256);
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee, "enc=raw", 256, 10);
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee, "enc=pkcs1", 245, 256);
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee, "enc=pkcs1", 246, 256);
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee, "enc=pkcs1", 0, 256);
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee, "enc=pkcs1 hash=sha256", 32, 256);
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee, "enc=oaep", 32, 256);
	pkey_op(K_PKEY_DECRYPT, "decrypt", ee, "enc=pkcs1", 256, 256);
	pkey_op(K_PKEY_SIGN, "sign", ee, "enc=raw", 32, 256);
	pkey_op(K_PKEY_VERIFY, "verify", ee, "enc=pkcs1", 0, 0);
	pkey_op_(K_PKEY_ENCRYPT, "encrypt", ee, "enc=raw", 256, 256, 0, 0, 1);
	pkey_op_(K_PKEY_ENCRYPT, "encrypt", ee, "enc=raw", 256, 256, 0, 0, 0);
	pkey_op_(K_PKEY_ENCRYPT, "encrypt", ee, "enc=raw", 32, 256, 1, 0, 2);
	pkey_op_(K_PKEY_ENCRYPT, "encrypt", ee, "enc=raw", 300, 256, 1, 0, 2);
	pkey_op_(K_PKEY_ENCRYPT, "encrypt", ee, "enc=raw", 32, 256, 0, 1, 2);
	pkey_op_(K_PKEY_VERIFY, "verify", ee, "enc=pkcs1", 32, 256, 1, 0, 2);
	pkey_op_(K_PKEY_SIGN, "sign", ee, "enc=pkcs1", 32, 256, 1, 0, 2);
	/* rsa_check_payload(): 1 < m < n - 1 */
	encrypt_n_less(ee, 1);
	encrypt_n_less(ee, 2);
	int32_t u = (int32_t)named("add_key(\"user\", \"u\", \"x\", 1, S)",
				   add_key("user", "u", "x", 1, S), "u");
	pkey_op(K_PKEY_ENCRYPT, "encrypt", u, "enc=raw", 32, 256);
	pkey_op_(K_PKEY_ENCRYPT, "encrypt", u, "enc=raw", 32, 256, 1, 0, 2);
	/* each length against its own size of the query's: one over the
	 * decrypted size (ENCRYPT's input), the data size (VERIFY's), and
	 * a 3072-bit key's sizes, 384 */
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee, "enc=raw", 257, 256);
	pkey_op(K_PKEY_VERIFY, "verify", ee, "enc=raw", 257, 256);
	int32_t ee2 = ADDC(ee2, NULL, S, "ee2");
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee2, "enc=raw", 384, 384);
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee2, "enc=raw", 385, 384);
	pkey_op(K_PKEY_ENCRYPT, "encrypt", ee2, "enc=raw", 384, 385);
	pkey_op(K_PKEY_VERIFY, "verify", ee2, "enc=raw", 384, 384);
	end_section(p);
}

int main(int argc, char **argv)
{
	options(argc, argv, NULL, NULL, NULL, NULL);
	printf("# asym probe\n");
	if (wanted("asym-parse"))
		sec_parse();
	if (wanted("asym-parse2"))
		sec_parse2();
	if (wanted("asym-restrict"))
		sec_restrict();
	if (wanted("asym-restrict2"))
		sec_restrict2();
	if (wanted("asym-search"))
		sec_search();
	if (wanted("asym-pkey"))
		sec_pkey();
	if (wanted("asym-pkey-ops"))
		sec_pkey_ops();
	printf("=== DONE\n");
	return 0;
}

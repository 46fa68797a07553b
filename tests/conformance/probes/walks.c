/* walks.c - how the kernel walks a keyring tree (watchq's own probe).
 *
 * Sections:
 *   order   the order KEYCTL_READ lists a small keyring's links in (the
 *           associative array's slots: the first link into an empty
 *           keyring takes slot 0, later ones the highest free slot; an
 *           unlink frees its slot; clear and the last unlink drop the node)
 *   search  which key KEYCTL_SEARCH finds when nested keyrings hold keys
 *           of the same description (the keyring's own links first, then
 *           its nested keyrings in slot order), past unusable matches
 *   cycle   KEYCTL_LINK's cycle check: EDEADLK at every depth the check
 *           reaches, ELOOP where it meets a keyring below the sixth level
 *
 * Unlike keys.c, `order` prints a keyring's contents in the kernel's order:
 * with at most 16 links that order follows from the history alone.
 */
#include "probe.h"

static void listing(int32_t ring, const char *what)
{
	int32_t ids[32];
	long n = keyctl(K_READ, ring, (long)ids, sizeof ids, 0);
	printf("read(%s) = ", what);
	if (n < 0) {
		printf("-1 %s\n", errname(errno));
		return;
	}
	for (long i = 0; i < n / 4 && i < 32; i++)
		printf("%s%s", i ? " " : "", key_str(ids[i]));
	printf("%s\n", n ? "" : "(empty)");
}

static int32_t ring(const char *desc, int32_t in, const char *label)
{
	long r = add_key("keyring", desc, NULL, 0, in);
	if (r > 0)
		name(r, label);
	return (int32_t)r;
}

static int32_t user(const char *desc, const char *data, int32_t in, const char *label)
{
	long r = add_key("user", desc, data, strlen(data), in);
	if (r > 0)
		name(r, label);
	return (int32_t)r;
}

static void sec_order(void)
{
	section("order");
	new_session();
	int32_t R = ring("R", SPEC_SESSION, "R");
	listing(R, "R empty");
	char l[8];
	int32_t k[8];
	for (int i = 1; i <= 5; i++) {
		snprintf(l, sizeof l, "k%d", i);
		k[i] = user(l, "x", R, l);
	}
	listing(R, "R after k1..k5");
	KC(K_UNLINK, k[3], R, 0, 0);
	listing(R, "R less k3");
	user("k6", "x", R, "k6");
	listing(R, "R plus k6");
	KC(K_UNLINK, k[1], R, 0, 0);
	user("k7", "x", R, "k7");
	listing(R, "R less k1 plus k7");
	printf("# a key of k5's description replaces it in its slot\n");
	user("k5", "y", R, "k5b");
	listing(R, "R k5 replaced");
	KC(K_CLEAR, R, 0, 0, 0);
	int32_t k8 = user("k8", "x", R, "k8");
	int32_t k9 = user("k9", "x", R, "k9");
	listing(R, "R cleared plus k8 k9");
	KC(K_UNLINK, k8, R, 0, 0);
	KC(K_UNLINK, k9, R, 0, 0);
	listing(R, "R emptied by unlinks");
	user("k11", "x", R, "k11");
	user("k12", "x", R, "k12");
	listing(R, "R plus k11 k12");
	printf("# sixteen links fill the node\n");
	int32_t F = ring("F", SPEC_SESSION, "F");
	for (int i = 1; i <= 16; i++) {
		snprintf(l, sizeof l, "f%d", i);
		user(l, "x", F, l);
	}
	listing(F, "F after f1..f16");
}

static void search_for(int32_t from, const char *what, const char *desc)
{
	long r = keyctl(K_SEARCH, from, (long)"user", (long)desc, 0);
	int e = errno;
	printf("search(%s, user, %s) = ", what, desc);
	if (r < 0)
		printf("-1 %s\n", errname(e));
	else
		printf("%s\n", key_str((int32_t)r));
}

static void sec_search(void)
{
	section("search");
	new_session();
	int32_t T = ring("T", SPEC_SESSION, "T");
	int32_t W1 = ring("w1", T, "W1");
	int32_t W2 = ring("w2", T, "W2");
	int32_t a1 = user("lizard", "1", W1, "a1");
	user("lizard", "2", W2, "a2");
	search_for(T, "T", "lizard");
	KC(K_UNLINK, a1, W1, 0, 0);
	search_for(T, "T", "lizard");
	int32_t W3 = ring("w3", T, "W3");
	user("lizard", "3", W3, "a3");
	search_for(T, "T", "lizard");
	int32_t own = user("lizard", "0", T, "a0");
	search_for(T, "T", "lizard");
	KC(K_REVOKE, own, 0, 0, 0);
	search_for(T, "T", "lizard");
	printf("# W3 revoked: not searched\n");
	KC(K_REVOKE, W3, 0, 0, 0);
	search_for(T, "T", "lizard");
}

static void sec_cycle(void)
{
	section("cycle");
	new_session();
	int32_t top = ring("first", SPEC_SESSION, "K1");
	KC(K_LINK, top, top, 0, 0);
	int32_t r = top;
	char l[8];
	for (int i = 2; i <= 9; i++) {
		snprintf(l, sizeof l, "K%d", i);
		r = ring(l, r, l);
		printf("depth %d: ", i);
		KC(K_LINK, top, r, 0, 0);
	}
	printf("# two stacks of five joined end to end\n");
	int32_t A = ring("A1", SPEC_SESSION, "A1"), B = ring("B1", SPEC_SESSION, "B1");
	int32_t a = A, b = B;
	for (int i = 2; i <= 5; i++) {
		snprintf(l, sizeof l, "A%d", i);
		a = ring(l, a, l);
		snprintf(l, sizeof l, "B%d", i);
		b = ring(l, b, l);
	}
	KC(K_LINK, A, b, 0, 0);
	KC(K_LINK, B, a, 0, 0);
	printf("# a revoked keyring in the way is not descended into\n");
	KC(K_UNLINK, A, b, 0, 0);
	int32_t c = ring("C1", SPEC_SESSION, "C1");
	int32_t c2 = ring("C2", c, "C2");
	int32_t c3 = ring("C3", c2, "C3");
	KC(K_REVOKE, c2, 0, 0, 0);
	KC(K_LINK, c, c3, 0, 0);
}

int main(int argc, char **argv)
{
	nsel = argc - 1;
	sel = argv + 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# walks probe\n");
	if (wanted("order")) sec_order();
	if (wanted("search")) sec_search();
	if (wanted("cycle")) sec_cycle();
	printf("=== DONE\n");
	return 0;
}

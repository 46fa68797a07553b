/* Key calls whose payload travels straight from the program's memory into
 * the request (watchq's own test program; what this machine's kernel
 * prints for it is the expected output):
 *
 *   - KEYCTL_UPDATE and add_key read their payload: a payload that ends in
 *     an unreadable page is EFAULT and changes nothing; one that ends just
 *     before it is taken whole, and so is one too big for one message.
 *   - A thread whose update faults leaves no trace: the main thread's next
 *     key call is still the main thread's (its own thread keyring).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_UPDATE 2
#define KEYCTL_SEARCH 10
#define KEYCTL_READ 11
#define KEY_SPEC_THREAD_KEYRING -1
#define KEY_SPEC_SESSION_KEYRING -3

static long kc(long cmd, long a, long b, long c, long d)
{
	return syscall(SYS_keyctl, cmd, a, b, c, d);
}

static const char *err(long r)
{
	static char b[64];
	if (r >= 0)
		return "ok";
	snprintf(b, sizeof b, "%s", strerrorname_np(errno));
	return b;
}

static char *edge; /* the last page readable, the next one not */
static int go[2], done[2];
static long key;

static void *thread(void *arg)
{
	char c;
	(void)arg;
	long mine = kc(KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 1, 0, 0);
	printf("thread: own @t %s\n", mine > 0 ? "made" : "failed");
	printf("thread: update from an unreadable page: %s\n",
	       err(kc(KEYCTL_UPDATE, key, (long)(edge + 4096), 4, 0)));
	if (write(done[1], "x", 1) != 1 || read(go[0], &c, 1) != 1)
		return NULL;
	long found = kc(KEYCTL_SEARCH, KEY_SPEC_THREAD_KEYRING, (long)"user", (long)"main-t", 0);
	printf("thread: main's key in the thread's @t: %s\n", found > 0 ? "found" : "not found");
	return NULL;
}

int main(void)
{
	char buf[64];
	edge = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (edge == MAP_FAILED || mprotect(edge + 4096, 4096, PROT_NONE))
		return 2;
	memcpy(edge + 4096 - 5, "tail!", 5);
	key = syscall(SYS_add_key, "user", "kc", "first", 5, KEY_SPEC_SESSION_KEYRING);
	printf("add_key: %s\n", err(key));
	printf("update across into the unreadable page: %s\n",
	       err(kc(KEYCTL_UPDATE, key, (long)(edge + 4096 - 5), 6, 0)));
	long n = kc(KEYCTL_READ, key, (long)buf, sizeof buf, 0);
	printf("payload still: %.*s\n", (int)(n > 0 ? n : 0), buf);
	printf("update ending at the page's end: %s\n", err(kc(KEYCTL_UPDATE, key, (long)(edge + 4096 - 5), 5, 0)));
	n = kc(KEYCTL_READ, key, (long)buf, sizeof buf, 0);
	printf("payload now: %.*s\n", (int)(n > 0 ? n : 0), buf);
	printf("add_key across into the unreadable page: %s\n",
	       err(syscall(SYS_add_key, "user", "kc2", edge + 4096 - 5, 6, KEY_SPEC_SESSION_KEYRING)));
	printf("kc2 made: %s\n",
	       kc(KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, (long)"user", (long)"kc2", 0) > 0 ? "yes" : "no");
	long k2 = syscall(SYS_add_key, "user", "kc2", edge + 4096 - 5, 5, KEY_SPEC_SESSION_KEYRING);
	n = kc(KEYCTL_READ, k2, (long)buf, sizeof buf, 0);
	printf("add_key ending at the page's end: %s, payload %.*s\n", err(k2), (int)(n > 0 ? n : 0), buf);
	/* A payload bigger than one message (200 KiB, the big_key-free limit of
	 * a user key is 32767: a keyring-less "user" key refuses it, so the
	 * size is checked by the error, the same either way). */
	size_t big = 200 * 1024;
	char *b = malloc(big);
	memset(b, 'b', big);
	printf("add_key of %zu bytes: %s\n", big,
	       err(syscall(SYS_add_key, "user", "big", b, big, KEY_SPEC_SESSION_KEYRING)));
	printf("add_key of 32767 bytes: %s\n",
	       err(syscall(SYS_add_key, "user", "big", b, (size_t)32767, KEY_SPEC_SESSION_KEYRING)));
	free(b);

	pthread_t t;
	long main_t = kc(KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 1, 0, 0);
	if (pipe(go) || pipe(done) || pthread_create(&t, NULL, thread, NULL))
		return 2;
	if (read(done[0], buf, 1) != 1)
		return 2;
	/* The thread's faulted update came last: this call is main's own. */
	long k = syscall(SYS_add_key, "user", "main-t", "v", 1, KEY_SPEC_THREAD_KEYRING);
	printf("main: key in its @t: %s\n", err(k));
	printf("main: @t still its own: %s\n",
	       kc(KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 0, 0, 0) == main_t ? "yes" : "no");
	printf("main: its key in its @t: %s\n",
	       kc(KEYCTL_SEARCH, KEY_SPEC_THREAD_KEYRING, (long)"user", (long)"main-t", 0) > 0 ? "found"
												: "not found");
	if (write(go[1], "x", 1) != 1)
		return 2;
	pthread_join(t, NULL);
	return 0;
}

/* Thread keyrings are per thread (watchq's own test program): each task's
 * cred has its own thread keyring. A thread started while its creator had
 * none starts without one; the one it makes is not its creator's. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int go[2];
static long main_ring;

static long kc(long cmd, long a, long b, long c)
{
	return syscall(SYS_keyctl, cmd, a, b, c, 0);
}

static void *thread(void *arg)
{
	char c;
	(void)arg;
	if (read(go[0], &c, 1) != 1)
		return NULL;
	long none = kc(0 /* GET_KEYRING_ID */, -1 /* @t */, 0, 0);
	printf("thread: @t before = %s\n", none < 0 ? "none" : "a keyring");
	long mine = kc(0, -1, 1, 0);
	printf("thread: its own @t %s main's\n", mine > 0 && mine != main_ring ? "is not" : "is");
	long k = syscall(SYS_add_key, "user", "t-only", "v", 1, -1);
	printf("thread: key in its @t %s\n", k > 0 ? "added" : "failed");
	return NULL;
}

int main(void)
{
	pthread_t t;
	if (pipe(go) || pthread_create(&t, NULL, thread, NULL))
		return 2;
	main_ring = kc(0, -1, 1, 0);
	printf("main: @t %s\n", main_ring > 0 ? "made" : "failed");
	if (write(go[1], "x", 1) != 1)
		return 2;
	pthread_join(t, NULL);
	printf("main: @t still its own: %s\n", kc(0, -1, 0, 0) == main_ring ? "yes" : "no");
	long found = kc(10 /* SEARCH */, -1, (long)"user", (long)"t-only");
	printf("main: the thread's key in main's @t: %s\n", found > 0 ? "found" : "not found");
	return 0;
}

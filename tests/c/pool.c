/*
 * A call that sleeps in the kernel holds up nothing else of its process.
 *
 * A child's request_key with call-out information puts a key under
 * construction (this program is the helper, `watchq exec --request-key`,
 * and holds the construction until a file named in the call-out exists).
 * Then, in one process:
 *
 *   - a second thread waits for that key (request_key, which sleeps in
 *     the kernel's wait_for_key_construction()), with a SIGUSR1 handler
 *     installed with SA_RESTART, so a signal runs the handler and the
 *     call goes on waiting (the kernel restarts it);
 *   - the main thread meanwhile makes key calls and opens and sizes a
 *     notification pipe: on a kernel each is its own system call, none
 *     waits for the sleeping thread;
 *   - SIGUSR1 to the sleeping thread: its handler makes a key call of its
 *     own (the session keyring's id) and reports it through a pipe;
 *   - the file appears: the construction ends, and the waiter gets the
 *     key.
 *
 * Each step is bounded (alarm: SIGALRM's default kills the process, and
 * the lines printed so far say how far it got). Prints one line a step:
 *
 *   calls: ok          the main thread's calls all returned
 *   handler: ok        the handler's key call returned the session id
 *   waiter: ok         the waiter got the key once it was made
 *
 * `pool threads N`: N threads each make a thread keyring, add a key of
 * their own to it and check, 200 times over, that their thread keyring is
 * still theirs and holds their key alone (a kernel's thread keyrings are
 * per task, whatever the other threads do at the same moment); prints
 * "threads: N ok" or what went wrong.
 *
 * As the helper: `pool create KEY UID GID T P S` (/sbin/request-key's
 * form); the call-out is "hold:PATH".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keyhold.h"
#define O_NOTIFICATION_PIPE O_EXCL
#define IOC_WATCH_QUEUE_SET_SIZE _IO('W', 0x60)

static const char *desc = "pool:held";
static int report[2];

/* Runs in the waiting thread, inside its request_key. */
static void on_usr1(int s)
{
	(void)s;
	long id = kc(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0, 0, 0);
	if (write(report[1], &id, sizeof id) < 0) {
		/* the main thread then times out */
	}
}

static long got;

static void *waiter(void *arg)
{
	(void)arg;
	got = rk("user", desc, NULL, 0);
	return NULL;
}

static int step(const char *what, int ok)
{
	printf("%s: %s\n", what, ok ? "ok" : "FAILED");
	fflush(stdout);
	return ok;
}

static int held(void)
{
	char dir[64], go[96], callout[128], buf[256];
	struct sigaction sa;
	pthread_t t;
	long key = 0, session;

	snprintf(dir, sizeof dir, "/tmp/pool.XXXXXX");
	if (!mkdtemp(dir) || pipe(report) < 0) {
		perror("setup");
		return 1;
	}
	snprintf(go, sizeof go, "%s/go", dir);
	snprintf(callout, sizeof callout, "hold:%s", go);
	pid_t requestor = fork();
	if (requestor == 0)
		_exit(rk("user", desc, callout, 0) > 0 ? 0 : 1);
	for (int i = 0; i < 1000 && key <= 0; i++) {
		key = kc(KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, (long)"user", (long)desc, 0);
		if (key <= 0)
			msleep(10);
	}
	if (key <= 0) {
		printf("the key under construction was not found\n");
		return 1;
	}
	session = kc(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0, 0, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0 || pthread_create(&t, NULL, waiter, NULL))
		return 1;
	/* The waiter is asleep in its call by then. */
	msleep(300);

	alarm(10);
	int ok = 1;
	for (int i = 0; i < 20 && ok; i++) {
		int p[2];
		ok = kc(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0, 0, 0) == session &&
		     kc(KEYCTL_DESCRIBE, key, (long)buf, sizeof buf, 0) > 0 &&
		     pipe2(p, O_NOTIFICATION_PIPE) == 0;
		if (ok) {
			ok = ioctl(p[0], IOC_WATCH_QUEUE_SET_SIZE, 16) == 0;
			close(p[0]);
			close(p[1]);
		}
	}
	alarm(0);
	if (!step("calls", ok))
		return 1;

	pthread_kill(t, SIGUSR1);
	struct pollfd pf = { .fd = report[0], .events = POLLIN };
	long id = 0;
	ok = poll(&pf, 1, 10000) == 1 && read(report[0], &id, sizeof id) == sizeof id &&
	     id == session;
	if (!step("handler", ok))
		return 1;

	close(open(go, O_CREAT | O_WRONLY, 0600));
	alarm(10);
	pthread_join(t, NULL);
	alarm(0);
	unlink(go);
	rmdir(dir);
	int w;
	waitpid(requestor, &w, 0);
	return step("waiter", got == key) ? 0 : 1;
}

static int nthreads;
static pthread_barrier_t start;

static void *own_ring(void *arg)
{
	long i = (long)arg;
	char name[32], found[128];
	snprintf(name, sizeof name, "pool:t%ld", i);
	pthread_barrier_wait(&start);
	long ring = kc(KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 1, 0, 0);
	long k = syscall(SYS_add_key, "user", name, "v", 1, KEY_SPEC_THREAD_KEYRING);
	if (ring <= 0 || k <= 0) {
		snprintf(found, sizeof found, "thread %ld: no thread keyring or key", i);
		return strdup(found);
	}
	for (int round = 0; round < 200; round++) {
		long now = kc(KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 0, 0, 0);
		long mine = kc(KEYCTL_SEARCH, KEY_SPEC_THREAD_KEYRING, (long)"user", (long)name, 0);
		long len = kc(KEYCTL_READ, KEY_SPEC_THREAD_KEYRING, 0, 0, 0);
		if (now != ring || mine != k || len != 4) {
			snprintf(found, sizeof found, "thread %ld round %d: @t %s, key %s, %ld links",
				 i, round, now == ring ? "ok" : "changed", mine == k ? "ok" : "lost",
				 len / 4);
			return strdup(found);
		}
	}
	return NULL;
}

static int threads(int n)
{
	pthread_t t[64];
	int bad = 0;
	nthreads = n > 64 ? 64 : n;
	pthread_barrier_init(&start, NULL, (unsigned)nthreads);
	for (long i = 0; i < nthreads; i++)
		if (pthread_create(&t[i], NULL, own_ring, (void *)i))
			return 1;
	for (int i = 0; i < nthreads; i++) {
		void *r;
		pthread_join(t[i], &r);
		if (r) {
			printf("%s\n", (char *)r);
			bad = 1;
		}
	}
	if (!bad)
		printf("threads: %d ok\n", nthreads);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "create") == 0)
		return create(argv);
	if (argc > 1 && strcmp(argv[1], "threads") == 0)
		return threads(argc > 2 ? atoi(argv[2]) : 8);
	return held();
}

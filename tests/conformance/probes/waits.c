/* waits.c - a signal arriving inside the kernel's waits that are not a
 * pipe read: a key call waiting for a key under construction, and
 * splice() waiting on the real pipe at its other end. Each wait is made
 * by a second thread; the main thread sends it SIGUSR1 (handler installed
 * without, then with, SA_RESTART), looks whether the call has returned,
 * then ends the wait (the construction completes, the pipe gets room or
 * data) and prints what the call gave.
 *
 *   key-wait: request_key(), KEYCTL_READ and KEYCTL_UPDATE of a key that another
 *     process's request_key() is constructing (this program is the
 *     helper: `--helper-conf` writes /etc/request-key.d/wqwait.conf, so
 *     run that section only in the guest or where the helper is this
 *     program). The helper holds the construction until the main thread
 *     creates a file named in the call-out.
 *   key-wait-stop: the same three calls while the whole process is
 *     stopped and continued (a child sends SIGSTOP, then SIGCONT 300 ms
 *     later), KEYCTL_READ when a lone SIGCONT comes (the process
 *     running, SIGCONT's default disposition), and KEYCTL_READ and
 *     request_key stopped for 1 ms only: no handler runs in any.
 *     The helper as for key-wait.
 *   splice-wait: splice() from a notification pipe into a full real pipe
 *     (waiting for room, then what?), into one without readers, with an
 *     offset; and from an empty real pipe into a notification pipe
 *     (waiting for data, then what?).
 *
 * Usage: waits [--helper-conf] [SECTION...]
 *        waits helper KEY DESC CALLOUT      (request-key.conf's form)
 *        waits create KEY UID GID T P S     (/sbin/request-key's form)
 */
#include "probe.h"
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define SPLICE_NB 2 /* SPLICE_F_NONBLOCK */

static volatile sig_atomic_t handled, pipes;
static void on_usr1(int s)
{
	(void)s;
	handled++;
}
static void on_pipe(int s)
{
	(void)s;
	pipes++;
}

static void handler(int restart)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_pipe;
	sa.sa_flags = 0;
	sigaction(SIGPIPE, &sa, NULL);
}

/* ------------------------------------------------------------ the helper */

static int helper_main(long key, const char *callout)
{
	if (keyctl(K_ASSUME_AUTHORITY, key, 0, 0, 0) < 0)
		return 3;
	if (strncmp(callout, "hold:", 5) == 0) {
		struct stat st;
		for (int i = 0; i < 2000 && stat(callout + 5, &st) < 0; i++)
			msleep(10);
	}
	keyctl(K_INSTANTIATE, key, (long)"made", 4, 0);
	return 0;
}

static int helper(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	return helper_main(atol(argv[2]), argv[4]);
}

/* As /sbin/request-key: create KEY UID GID THREAD PROCESS SESSION; the
 * call-out is the authority key's payload. */
static int create(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	long key = atol(argv[2]);
	char callout[512];
	if (keyctl(K_ASSUME_AUTHORITY, key, 0, 0, 0) < 0)
		return 3;
	long n = keyctl(K_READ, SPEC_REQKEY_AUTH, (long)callout, sizeof callout - 1, 0);
	if (n < 0)
		return 4;
	callout[n < (long)sizeof callout ? n : (long)sizeof callout - 1] = 0;
	return helper_main(key, callout);
}

/* ------------------------------------------------------------- the waits */

/* One wait in a thread: `fn` makes the call; the main thread signals it,
 * looks, releases, joins. */
static long (*call_fn)(void);
static long call_ret;
static int call_errno;
static volatile int call_done;

static void *waiter(void *a)
{
	(void)a;
	call_ret = call_fn();
	call_errno = errno;
	__atomic_store_n(&call_done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Prints what the waiter's call gave: -1 and its errno, a key's label,
 * or the number. */
static void print_result(void)
{
	if (call_ret < 0)
		printf("-1 %s", errname(call_errno));
	else if (call_ret > 0 && label_of((int32_t)call_ret))
		printf("%s", key_str((int32_t)call_ret));
	else
		printf("%ld", call_ret);
}

/* Runs `fn` in a thread, signals it 500 ms later, says whether it had
 * returned 1500 ms after that, then runs `release` and joins it (roomy
 * margins: a loaded machine, or qemu's TCG, must not change the lines). */
static void signalled(const char *what, int restart, long (*fn)(void), void (*release)(void))
{
	pthread_t t;
	handler(restart);
	handled = 0;
	pipes = 0;
	call_fn = fn;
	call_done = 0;
	alarm(30); /* a wait that never ends kills the probe */
	pthread_create(&t, NULL, waiter, NULL);
	msleep(500);
	pthread_kill(t, SIGUSR1);
	msleep(1500);
	int early = __atomic_load_n(&call_done, __ATOMIC_SEQ_CST);
	if (release)
		release();
	pthread_join(t, NULL);
	alarm(0);
	printf("%s, %s: ", what, restart ? "SA_RESTART" : "no SA_RESTART");
	print_result();
	printf(" (%s the wait ended; handler ran %d; SIGPIPE %d)\n",
	       early ? "before" : "after", (int)handled, (int)pipes);
}

/* ---------------------------------------------------------- key-wait */

static char dir[64];
static char desc[64];
static char go[96];
static int32_t under;
static pid_t requestor;

/* A child of this process requests `desc`; the helper holds it until
 * `go` exists. Returns once the key is there, under construction. */
static void start_construction(int n, const char *label)
{
	snprintf(desc, sizeof desc, "wqwait:%d", n);
	snprintf(go, sizeof go, "%s/go%d", dir, n);
	char callout[128];
	snprintf(callout, sizeof callout, "hold:%s", go);
	requestor = fork();
	if (requestor == 0) {
		long r = request_key("user", desc, callout, 0);
		_exit(r > 0 ? 0 : 1);
	}
	under = 0;
	for (int i = 0; i < 1000 && under <= 0; i++) {
		under = (int32_t)keyctl(K_SEARCH, SPEC_SESSION, (long)"user", (long)desc, 0);
		if (under <= 0)
			msleep(10);
	}
	name(under, label);
	printf("# %s under construction: %s\n", desc, under > 0 ? "found" : "NOT FOUND");
}

static void finish_construction(void)
{
	int fd = open(go, O_CREAT | O_WRONLY, 0600);
	if (fd >= 0)
		close(fd);
	int st = 0;
	waitpid(requestor, &st, 0);
	printf("# the requestor's request_key: %s\n",
	       WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "the key" : "failed");
}

static long wait_request(void)
{
	return request_key("user", desc, NULL, 0);
}

static long wait_read(void)
{
	char buf[16];
	return keyctl(K_READ, under, (long)buf, sizeof buf, 0);
}

static long wait_update(void)
{
	return keyctl(K_UPDATE, under, (long)"new", 3, 0);
}

static void sec_key_wait(void)
{
	section("key-wait");
	nnames = 0;
	new_session();
	snprintf(dir, sizeof dir, "/tmp/wqwait.XXXXXX");
	if (!mkdtemp(dir)) {
		printf("mkdtemp: -1 %s\n", errname(errno));
		return;
	}
	static const char *labels[] = {"k1", "k2", "k3", "k4", "k5", "k6"};
	int n = 0;
	for (int restart = 0; restart < 2; restart++) {
		start_construction(n, labels[n]);
		signalled("request_key(user, wqwait, NULL, 0) waiting", restart, wait_request,
			  finish_construction);
		n++;
		start_construction(n, labels[n]);
		signalled("keyctl(K_READ, key under construction)", restart, wait_read,
			  finish_construction);
		n++;
		start_construction(n, labels[n]);
		signalled("keyctl(K_UPDATE, key under construction)", restart, wait_update,
			  finish_construction);
		n++;
	}
	char rm[128];
	snprintf(rm, sizeof rm, "rm -rf %s", dir);
	if (system(rm) != 0)
		printf("rm failed\n");
}

/* ----------------------------------------------------- key-wait-stop */

/* Runs `fn` in a thread; 500 ms later a child stops this process and
 * continues it `stop` ms on, or (0) only sends SIGCONT; says whether
 * the call had returned 1500 ms after the child was started, then ends
 * the construction and joins. */
static void stopped(const char *what, int stop, long (*fn)(void))
{
	pthread_t t;
	handler(0);
	handled = 0;
	call_fn = fn;
	call_done = 0;
	alarm(30);
	pthread_create(&t, NULL, waiter, NULL);
	msleep(500);
	pid_t me = getpid();
	pid_t c = fork();
	if (c == 0) {
		if (stop) {
			kill(me, SIGSTOP);
			msleep(stop);
		}
		kill(me, SIGCONT);
		_exit(0);
	}
	waitpid(c, NULL, 0);
	msleep(1500);
	int early = __atomic_load_n(&call_done, __ATOMIC_SEQ_CST);
	finish_construction();
	pthread_join(t, NULL);
	alarm(0);
	if (stop == 300)
		printf("%s, SIGSTOP then SIGCONT: ", what);
	else if (stop)
		printf("%s, SIGSTOP then SIGCONT %d ms on: ", what, stop);
	else
		printf("%s, SIGCONT alone: ", what);
	print_result();
	printf(" (%s the wait ended)\n", early ? "before" : "after");
}

static void sec_key_wait_stop(void)
{
	section("key-wait-stop");
	nnames = 0;
	new_session();
	snprintf(dir, sizeof dir, "/tmp/wqwait.XXXXXX");
	if (!mkdtemp(dir)) {
		printf("mkdtemp: -1 %s\n", errname(errno));
		return;
	}
	start_construction(10, "k1");
	stopped("request_key(user, wqwait, NULL, 0) waiting", 300, wait_request);
	start_construction(11, "k2");
	stopped("keyctl(K_READ, key under construction)", 300, wait_read);
	start_construction(12, "k3");
	stopped("keyctl(K_UPDATE, key under construction)", 300, wait_update);
	start_construction(13, "k4");
	stopped("keyctl(K_READ, key under construction)", 0, wait_read);
	/* a stop far shorter than any polling of the task's state */
	start_construction(14, "k5");
	stopped("keyctl(K_READ, key under construction)", 1, wait_read);
	start_construction(15, "k6");
	stopped("request_key(user, wqwait, NULL, 0) waiting", 1, wait_request);
	char rm[128];
	snprintf(rm, sizeof rm, "rm -rf %s", dir);
	if (system(rm) != 0)
		printf("rm failed\n");
}

/* -------------------------------------------------------- splice-wait */

static int np[2], rp[2];

/* Fills the real pipe's write end (left blocking); returns the bytes. */
static long fill(int fd)
{
	char b[4096];
	long total = 0;
	memset(b, 'x', sizeof b);
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	for (;;) {
		long w = write(fd, b, sizeof b);
		if (w <= 0)
			break;
		total += w;
	}
	fcntl(fd, F_SETFL, fl);
	return total;
}

static void drain_some(void)
{
	char b[4096];
	if (read(rp[0], b, sizeof b) != (long)sizeof b)
		printf("drain: short\n");
}

static void put_data(void)
{
	if (write(rp[1], "0123456789abcdef", 16) != 16)
		printf("write: failed\n");
}

static long splice_out(void)
{
	return splice(np[0], NULL, rp[1], NULL, 16, 0);
}

static long splice_out_off(void)
{
	loff_t off = 0;
	return splice(np[0], &off, rp[1], NULL, 16, 0);
}

static long splice_in(void)
{
	return splice(rp[0], NULL, np[1], NULL, 16, 0);
}

static void real_pipe(void)
{
	if (pipe(rp) < 0) {
		printf("pipe: -1 %s\n", errname(errno));
		exit(1);
	}
}

static void sec_splice_wait(void)
{
	section("splice-wait");
	if (pipe2(np, O_NOTIFICATION_PIPE) < 0) {
		printf("pipe2(O_NOTIFICATION_PIPE) = -1 %s\n", errname(errno));
		return;
	}
	handler(0);
	printf("# from a notification pipe into a real pipe with room\n");
	real_pipe();
	CALL(splice(np[0], NULL, rp[1], NULL, 16, 0));
	CALL(splice(np[0], NULL, rp[1], NULL, 16, SPLICE_NB));
	printf("# ... into a full real pipe\n");
	printf("filled: %s\n", fill(rp[1]) > 0 ? "yes" : "no");
	CALL(splice(np[0], NULL, rp[1], NULL, 16, SPLICE_NB));
	CALL(splice(np[0], NULL, rp[1], NULL, 0, 0));
	int fl = fcntl(rp[1], F_GETFL);
	fcntl(rp[1], F_SETFL, fl | O_NONBLOCK);
	CALL(splice(np[0], NULL, rp[1], NULL, 16, 0));
	fcntl(rp[1], F_SETFL, fl);
	for (int restart = 0; restart < 2; restart++) {
		signalled("splice(np, NULL, full pipe, NULL, 16, 0)", restart, splice_out,
			  drain_some);
		fill(rp[1]);
	}
	signalled("splice(np, &off, full pipe, NULL, 16, 0)", 0, splice_out_off, drain_some);
	close(rp[0]);
	close(rp[1]);
	printf("# ... into a real pipe without readers (full, then with room)\n");
	real_pipe();
	fill(rp[1]);
	close(rp[0]);
	handler(0);
	pipes = 0;
	CALL(splice(np[0], NULL, rp[1], NULL, 16, 0));
	printf("SIGPIPE %d\n", (int)pipes);
	close(rp[1]);
	real_pipe();
	close(rp[0]);
	pipes = 0;
	CALL(splice(np[0], NULL, rp[1], NULL, 16, 0));
	printf("SIGPIPE %d\n", (int)pipes);
	close(rp[1]);

	printf("# from an empty real pipe into a notification pipe\n");
	real_pipe();
	CALL(splice(rp[0], NULL, np[1], NULL, 16, SPLICE_NB));
	for (int restart = 0; restart < 2; restart++) {
		signalled("splice(empty pipe, NULL, np, NULL, 16, 0)", restart, splice_in,
			  put_data);
		int q = -1;
		ioctl(rp[0], FIONREAD, &q);
		printf("bytes left in the real pipe: %d\n", q);
		char b[64];
		if (read(rp[0], b, sizeof b) != 16)
			printf("read: not 16\n");
	}
	close(rp[1]);
	CALL(splice(rp[0], NULL, np[1], NULL, 16, 0));
	close(rp[0]);
	close(np[0]);
	close(np[1]);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "helper") == 0)
		return helper(argc, argv);
	if (argc > 1 && strcmp(argv[1], "create") == 0)
		return create(argc, argv);
	int helper_conf = 0;
	options(argc, argv, NULL, NULL, "--helper-conf", &helper_conf);
	printf("# waits probe\n");
	if (wanted("splice-wait"))
		sec_splice_wait();
	if (wanted("key-wait") || wanted("key-wait-stop")) {
		if (helper_conf) {
			char self[512];
			ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
			self[n > 0 ? n : 0] = 0;
			FILE *f = fopen("/etc/request-key.d/wqwait.conf", "w");
			if (f) {
				fprintf(f, "create user wqwait:* * %s helper %%k %%d %%c\n", self);
				fclose(f);
			}
		}
		if (wanted("key-wait"))
			sec_key_wait();
		if (wanted("key-wait-stop"))
			sec_key_wait_stop();
	}
	printf("=== DONE\n");
	return 0;
}

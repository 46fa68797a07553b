/* procs.c - a watcher in one process, the changes in others.
 *
 * watchq's own probe (tests/conformance/README.md). Sections:
 *   fork-child: the parent watches its session keyring; a forked child
 *     adds, updates and unlinks keys in it; the parent reads the records
 *     after the child has exited.
 *   exec-reader: the parent makes a notification pipe and a watch, then
 *     forks a child that execs this program as a reader with the read
 *     end inherited; the parent changes keys and the exec'd reader reads
 *     the records.
 *   scm-rights: a child that never had the pipe receives its read end
 *     over a Unix socket (SCM_RIGHTS) after the parent closed its own
 *     ends; separate `keyctl` commands (keyutils' program, run by the
 *     parent) change keys; the child reads the records.
 *
 *   orphan-fork, orphan-exec, orphan-spawn, orphan-vfork, orphan-daemon:
 *     a parent joins a session keyring of its own, makes a child (fork;
 *     fork then exec once the parent is gone; posix_spawn; vfork then exec;
 *     daemon(), in which the parent exits) and exits at once; the child makes its first key call only after its parent is
 *     gone (the spawned and vforked ones exec a waiter first: this program,
 *     or PROCS_WAITER, which then execs this program) and says whether its
 *     session keyring is the one it inherited.
 *   daemon-streams: daemon(0, 0)'s child: "/", /dev/null, a new session.
 *   fork-then-join: a child forked before its parent joins a new session
 *     keyring keeps the old one (its first key call comes after the join).
 *   thread-ring: threads and thread keyrings (copy_creds()): a thread made
 *     while its creator has a thread keyring has a new, empty one of its
 *     own before its first key call (and so does one it makes); one made
 *     before has none; a child forked by a thread with one has none.
 *   epoll-hup: epoll (level and edge triggered) of a notification pipe's
 *     read end while a forked child still holds the write end, after the
 *     child's exit (every write end closed: EPOLLHUP), after a record is
 *     posted into the hung-up pipe (EPOLLIN too, and an edge) and after it
 *     is read.
 *
 * Serials made in one process reach the one that prints them through a
 * plain pipe or the socket, as `label=serial` lines, so every process
 * prints labels only.
 *
 * Usage: procs [SECTION...]
 *        procs --reader FD NAMES-FD   (what exec-reader execs)
 *        procs --orphan-wait PPID PROG WANT   (the orphan sections' waiter)
 *        procs --orphan-report PPID WANT      (what the waiter execs)
 */
#include "probe.h"
#include <pthread.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

static int p[2];
static int32_t S;

static void wait_child(pid_t pid, const char *who)
{
	int st;
	waitpid(pid, &st, 0);
	printf("%s exit %d\n", who, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

/* Sends `label=serial` lines for every named key down `fd`. */
static void send_names(int fd)
{
	char line[64];
	for (int i = 0; i < nnames; i++) {
		int n = snprintf(line, sizeof line, "%s=%d\n", names[i].label, names[i].serial);
		if (write(fd, line, n) != n)
			exit(1);
	}
}

/* Reads `label=serial` lines from `fd` until end of file and names them. */
static void recv_names(int fd)
{
	static char text[8192];
	size_t len = 0;
	long n;
	while ((n = read(fd, text + len, sizeof text - 1 - len)) > 0)
		len += n;
	text[len] = 0;
	for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
		char *eq = strchr(l, '=');
		if (eq) {
			*eq = 0;
			name(atol(eq + 1), l);
		}
	}
}

/* Waits for records and prints them: readable within `settle` ms, then
 * everything queued. */
static void read_now(int fd)
{
	printf("readable: %s\n", wait_readable(fd, settle) & POLLIN ? "yes" : "no");
	drain(fd, 4096);
}

static void sec_fork_child(void)
{
	S = begin_section("fork-child", p);
	watch(S, p[0], 1);
	int sync[2];
	if (pipe(sync) < 0)
		exit(1);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(sync[0]);
		printf("# the child adds, updates and unlinks\n");
		int32_t c1 = ADD("user", "c1", "v1", S, "c1");
		KC(K_UPDATE, c1, "v2", 2, 0);
		int32_t R = ADD("keyring", "R", NULL, S, "R");
		KC(K_LINK, c1, R, 0, 0);
		KC(K_UNLINK, c1, S, 0, 0);
		send_names(sync[1]);
		fflush(stdout);
		_exit(0);
	}
	close(sync[1]);
	recv_names(sync[0]);
	close(sync[0]);
	wait_child(pid, "child");
	printf("# the parent reads\n");
	read_now(p[0]);
	end_section(p);
}

static int reader(int fd, int names_fd)
{
	recv_names(names_fd);
	close(names_fd);
	printf("# the exec'd reader reads the inherited end\n");
	read_now(fd);
	close(fd);
	return 0;
}

static void sec_exec_reader(int argc, char **argv)
{
	(void)argc;
	S = begin_section("exec-reader", p);
	watch(S, p[0], 2);
	int32_t R = ADD("keyring", "R", NULL, S, "R");
	watch(R, p[0], 3);
	drain(p[0], 4096);
	int sync[2];
	if (pipe(sync) < 0)
		exit(1);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(sync[1]);
		close(p[1]);
		char fd[16], nfd[16];
		snprintf(fd, sizeof fd, "%d", p[0]);
		snprintf(nfd, sizeof nfd, "%d", sync[0]);
		execl("/proc/self/exe", argv[0], "--reader", fd, nfd, (char *)NULL);
		printf("exec failed: %s\n", errname(errno));
		_exit(1);
	}
	close(sync[0]);
	close(p[0]);
	printf("# the parent changes keys; the reader has the only read end\n");
	int32_t k1 = ADD("user", "k1", "v1", R, "k1");
	KC(K_UPDATE, k1, "v2", 2, 0);
	KC(K_LINK, k1, S, 0, 0);
	KC(K_SETPERM, k1, 0x3f3f0000, 0, 0);
	KC(K_UNLINK, k1, R, 0, 0);
	send_names(sync[1]);
	fflush(stdout);
	close(sync[1]);
	wait_child(pid, "reader");
	close(p[1]);
}

static void send_fd(int sock, int fd)
{
	char c = 'F';
	struct iovec iov = {&c, 1};
	char ctl[CMSG_SPACE(sizeof(int))];
	memset(ctl, 0, sizeof ctl);
	struct msghdr m = {0};
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl;
	m.msg_controllen = sizeof ctl;
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof fd);
	if (sendmsg(sock, &m, 0) != 1)
		exit(1);
}

static int recv_fd(int sock)
{
	char c;
	struct iovec iov = {&c, 1};
	char ctl[CMSG_SPACE(sizeof(int))];
	struct msghdr m = {0};
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl;
	m.msg_controllen = sizeof ctl;
	if (recvmsg(sock, &m, 0) != 1)
		return -1;
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	if (!h || h->cmsg_type != SCM_RIGHTS)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(h), sizeof fd);
	return fd;
}

/* Runs keyutils' `keyctl` with `args` (NULL-terminated) and returns what
 * it printed on its first line as a number (a new key's serial), or its
 * exit status negated when it printed nothing. */
static long run_keyctl(const char *text, char *const args[])
{
	int out[2];
	if (pipe(out) < 0)
		exit(1);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(out[1], 1);
		close(out[0]);
		close(out[1]);
		execvp("keyctl", args);
		_exit(127);
	}
	close(out[1]);
	char line[64] = {0};
	size_t len = 0;
	long n;
	while (len < sizeof line - 1 && (n = read(out[0], line + len, sizeof line - 1 - len)) > 0)
		len += n;
	close(out[0]);
	int st;
	waitpid(pid, &st, 0);
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	long v = len ? atol(line) : -rc;
	printf("%s: exit %d\n", text, rc);
	return v;
}

static void sec_scm_rights(void)
{
	section("scm-rights");
	nnames = 0;
	S = new_session();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		exit(1);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		int fd = recv_fd(sv[1]);
		recv_names(sv[1]);
		printf("# the child received the read end: %s\n", fd >= 0 ? "yes" : "no");
		read_now(fd);
		close(fd);
		fflush(stdout);
		_exit(0);
	}
	close(sv[1]);
	npipe(p, 256);
	watch(S, p[0], 4);
	send_fd(sv[0], p[0]);
	close(p[0]);
	close(p[1]);
	printf("# the parent closed its ends; keyctl commands change keys\n");
	char ring[16];
	snprintf(ring, sizeof ring, "%d", S);
	char *add[] = {"keyctl", "add", "user", "kc1", "one", ring, NULL};
	long kc1 = run_keyctl("keyctl add user kc1 one S", add);
	name(kc1, "kc1");
	char key[16];
	snprintf(key, sizeof key, "%ld", kc1);
	char *upd[] = {"keyctl", "update", key, "two", NULL};
	run_keyctl("keyctl update kc1 two", upd);
	char *nring[] = {"keyctl", "newring", "R", ring, NULL};
	long R = run_keyctl("keyctl newring R S", nring);
	name(R, "R");
	char rs[16];
	snprintf(rs, sizeof rs, "%ld", R);
	char *lnk[] = {"keyctl", "link", key, rs, NULL};
	run_keyctl("keyctl link kc1 R", lnk);
	char *unl[] = {"keyctl", "unlink", key, ring, NULL};
	run_keyctl("keyctl unlink kc1 S", unl);
	char *rev[] = {"keyctl", "revoke", rs, NULL};
	run_keyctl("keyctl revoke R", rev);
	send_names(sv[0]);
	close(sv[0]);
	wait_child(pid, "child");
}

/* Waits (10 s at most) until this process's parent is not `ppid` any more. */
static int parent_gone(pid_t ppid)
{
	for (int i = 0; i < 10000; i++) {
		if (getppid() != ppid)
			return 1;
		usleep(1000);
	}
	return 0;
}

/* An orphan section's child, its parent (`ppid`, whose session keyring is
 * `want`) gone: its first key call. */
static int orphan_report(pid_t ppid, long want)
{
	int gone = parent_gone(ppid);
	long s = keyctl(K_GET_KEYRING_ID, SPEC_SESSION, 0, 0, 0);
	printf("child: parent gone before its first key call: %s\n", gone ? "yes" : "no");
	printf("child: @s is the one it inherited: %s\n", s == want ? "yes" : "no");
	fflush(stdout);
	return 0;
}

static char self[4096];

static void sec_orphan(const char *sec, const char *how)
{
	section(sec);
	printf("# the parent joins a session keyring of its own, makes a child (%s) "
	       "and exits; the child's first key call comes after\n", how);
	fflush(stdout);
	const char *waiter = getenv("PROCS_WAITER");
	if (!waiter || !*waiter)
		waiter = self;
	int done[2];
	if (pipe(done) < 0)
		exit(1);
	pid_t p = fork();
	if (p == 0) {
		close(done[0]);
		long s = keyctl(K_JOIN_SESSION, 0, 0, 0, 0);
		char ppid[16], want[24];
		snprintf(ppid, sizeof ppid, "%d", (int)getpid());
		snprintf(want, sizeof want, "%ld", s);
		char *args[] = {(char *)waiter, "--orphan-wait", ppid, self, want, NULL};
		pid_t me = getpid(), c = -1;
		if (strcmp(how, "fork") == 0) {
			c = fork();
			if (c == 0)
				_exit(orphan_report(me, s));
		} else if (strcmp(how, "fork, then exec") == 0) {
			c = fork();
			if (c == 0) {
				parent_gone(me);
				execl(self, self, "--orphan-report", ppid, want, (char *)NULL);
				_exit(127);
			}
		} else if (strcmp(how, "daemon") == 0) {
			/* The parent exits inside daemon(); the child goes on. */
			fflush(stdout);
			if (daemon(1, 1) < 0) {
				printf("daemon: %s\n", errname(errno));
				_exit(1);
			}
			_exit(orphan_report(me, s));
		} else if (strcmp(how, "posix_spawn") == 0) {
			if (posix_spawn(&c, waiter, NULL, NULL, args, environ) != 0)
				c = -1;
		} else {
			c = vfork();
			if (c == 0) {
				execv(waiter, args);
				_exit(127);
			}
		}
		if (c < 0)
			printf("could not make the child\n");
		fflush(stdout);
		_exit(0);
	}
	close(done[1]);
	waitpid(p, NULL, 0);
	char c;
	while (read(done[0], &c, 1) > 0)
		;
	close(done[0]);
}

/* daemon(0, 0): the child is in "/", its standard streams on /dev/null,
 * in a session of its own; it says so down a pipe. */
static void sec_daemon_streams(void)
{
	section("daemon-streams");
	fflush(stdout);
	int rep[2];
	if (pipe(rep) < 0)
		exit(1);
	pid_t p = fork();
	if (p == 0) {
		close(rep[0]);
		pid_t before = getsid(0);
		if (daemon(0, 0) < 0)
			_exit(1);
		char cwd[64] = "", line[256];
		struct stat null, st;
		int streams = stat("/dev/null", &null) == 0;
		for (int fd = 0; fd <= 2; fd++)
			streams = streams && fstat(fd, &st) == 0 && st.st_rdev == null.st_rdev &&
				  S_ISCHR(st.st_mode);
		int n = snprintf(line, sizeof line,
				 "daemon: cwd %s; standard streams on /dev/null: %s; a new session: %s\n",
				 getcwd(cwd, sizeof cwd) ? cwd : "?", streams ? "yes" : "no",
				 getsid(0) == getpid() && getsid(0) != before ? "yes" : "no");
		if (write(rep[1], line, n) != n)
			_exit(1);
		_exit(0);
	}
	close(rep[1]);
	waitpid(p, NULL, 0);
	char buf[512];
	long n, len = 0;
	while ((n = read(rep[0], buf + len, sizeof buf - 1 - len)) > 0)
		len += n;
	buf[len] = 0;
	printf("%s", buf);
	close(rep[0]);
}

static void sec_fork_then_join(void)
{
	section("fork-then-join");
	printf("# a child forked before its parent joins a new session keyring; "
	       "its first key call comes after the join\n");
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		long s1 = keyctl(K_JOIN_SESSION, 0, 0, 0, 0);
		int go[2];
		if (pipe(go) < 0)
			_exit(1);
		pid_t c = fork();
		if (c == 0) {
			close(go[1]);
			long s2 = 0;
			if (read(go[0], &s2, sizeof s2) != sizeof s2)
				_exit(1);
			long s = keyctl(K_GET_KEYRING_ID, SPEC_SESSION, 0, 0, 0);
			printf("child: @s is the one at the fork: %s\n", s == s1 ? "yes" : "no");
			printf("child: @s is the parent's new one: %s\n", s == s2 ? "yes" : "no");
			fflush(stdout);
			_exit(0);
		}
		close(go[0]);
		long s2 = keyctl(K_JOIN_SESSION, 0, 0, 0, 0);
		printf("parent: joined a new session keyring: %s\n", s2 > 0 && s2 != s1 ? "yes" : "no");
		fflush(stdout);
		if (write(go[1], &s2, sizeof s2) != sizeof s2)
			_exit(1);
		waitpid(c, NULL, 0);
		_exit(0);
	}
	waitpid(p, NULL, 0);
}

static long tkr(int create)
{
	return keyctl(K_GET_KEYRING_ID, SPEC_THREAD, create, 0, 0);
}

static long main_tkr;
static int gate[2];

/* The calling thread's thread keyring `r`, described (an empty keyring
 * reads as 0 bytes). */
static const char *ring_state(long r)
{
	if (r <= 0)
		return "none";
	return keyctl(K_READ, r, 0, 0, 0) == 0 ? "a keyring, empty" : "a keyring, not empty";
}

static const char *nested_state;

static void *t_nested(void *arg)
{
	long *out = arg;
	*out = tkr(0);
	nested_state = ring_state(*out);
	return NULL;
}

static void *t_after(void *arg)
{
	(void)arg;
	long mine = tkr(0);
	printf("thread made while main has @t: @t is %s; main's: %s\n", ring_state(mine),
	       mine == main_tkr ? "yes" : "no");
	pthread_t n;
	long nested = 0;
	if (pthread_create(&n, NULL, t_nested, &nested) == 0)
		pthread_join(n, NULL);
	printf("thread made by that thread: @t is %s; its creator's: %s; main's: %s\n",
	       nested_state ? nested_state : "?", nested == mine ? "yes" : "no", nested == main_tkr ? "yes" : "no");
	return NULL;
}

static void *t_before(void *arg)
{
	(void)arg;
	char c;
	if (read(gate[0], &c, 1) != 1)
		return NULL;
	printf("thread made before main had @t: @t is %s\n", ring_state(tkr(0)));
	return NULL;
}

static void sec_thread_ring(void)
{
	section("thread-ring");
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		pthread_t before, after;
		if (pipe(gate) < 0 || pthread_create(&before, NULL, t_before, NULL))
			_exit(1);
		main_tkr = tkr(1);
		printf("main: @t made: %s\n", main_tkr > 0 ? "yes" : "no");
		fflush(stdout);
		if (pthread_create(&after, NULL, t_after, NULL) == 0)
			pthread_join(after, NULL);
		if (write(gate[1], "x", 1) != 1)
			_exit(1);
		pthread_join(before, NULL);
		pid_t c = fork();
		if (c == 0) {
			printf("child forked by main: @t is %s\n", ring_state(tkr(0)));
			fflush(stdout);
			_exit(0);
		}
		waitpid(c, NULL, 0);
		printf("main: @t still its own: %s\n", tkr(0) == main_tkr ? "yes" : "no");
		fflush(stdout);
		_exit(0);
	}
	waitpid(p, NULL, 0);
}

/* What one epoll_wait of `ep` reports, within `ms`. */
static const char *ep_events(int ep, int ms)
{
	static char text[64];
	struct epoll_event ev[2];
	int n = epoll_wait(ep, ev, 2, ms);
	if (n < 0)
		return errname(errno);
	if (n == 0)
		return "nothing";
	text[0] = 0;
	uint32_t e = ev[0].events;
	if (e & EPOLLIN)
		strcat(text, "|EPOLLIN");
	if (e & EPOLLRDNORM)
		strcat(text, "|EPOLLRDNORM");
	if (e & EPOLLHUP)
		strcat(text, "|EPOLLHUP");
	if (e & EPOLLERR)
		strcat(text, "|EPOLLERR");
	if (!text[0])
		snprintf(text, sizeof text, "|0x%x", e);
	return text + 1;
}

static void sec_epoll_hup(void)
{
	S = begin_section("epoll-hup", p);
	watch(S, p[0], 1);
	int lt = epoll_create1(EPOLL_CLOEXEC), et = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};
	epoll_ctl(lt, EPOLL_CTL_ADD, p[0], &ev);
	ev.events = EPOLLIN | EPOLLET;
	epoll_ctl(et, EPOLL_CTL_ADD, p[0], &ev);
	int go[2];
	if (pipe(go) < 0)
		exit(1);
	fflush(stdout);
	pid_t c = fork();
	if (c == 0) {
		/* Holds the write end until the parent says. */
		close(go[1]);
		char x;
		if (read(go[0], &x, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(go[0]);
	close(p[1]);
	printf("# the parent closed its write end; the child holds one\n");
	printf("level: %s\n", ep_events(lt, 0));
	printf("edge: %s\n", ep_events(et, 0));
	close(go[1]);
	waitpid(c, NULL, 0);
	printf("# the child exited: no write end is left\n");
	printf("level: %s\n", ep_events(lt, 2000));
	printf("edge: %s\n", ep_events(et, 2000));
	printf("edge again: %s\n", ep_events(et, 0));
	printf("# a record posted into the hung-up pipe\n");
	ADD("user", "k", "v", S, "k");
	printf("level: %s\n", ep_events(lt, 2000));
	printf("edge: %s\n", ep_events(et, 2000));
	printf("edge again: %s\n", ep_events(et, 0));
	printf("# read\n");
	rd(p[0], 4096);
	printf("level: %s\n", ep_events(lt, 0));
	rd(p[0], 4096);
	close(lt);
	close(et);
	close(p[0]);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--reader") == 0) {
		setvbuf(stdout, NULL, _IOLBF, 0);
		return reader(atoi(argv[2]), atoi(argv[3]));
	}
	if (argc == 5 && strcmp(argv[1], "--orphan-wait") == 0) {
		parent_gone(atoi(argv[2]));
		execl(argv[3], argv[3], "--orphan-report", argv[2], argv[4], (char *)NULL);
		return 127;
	}
	if (argc == 4 && strcmp(argv[1], "--orphan-report") == 0) {
		setvbuf(stdout, NULL, _IOLBF, 0);
		return orphan_report(atoi(argv[2]), atol(argv[3]));
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n < 0)
		return 1;
	self[n] = 0;
	options(argc, argv, NULL, NULL, NULL, NULL);
	printf("# procs probe\n");
	if (wanted("fork-child")) sec_fork_child();
	if (wanted("exec-reader")) sec_exec_reader(argc, argv);
	if (wanted("scm-rights")) sec_scm_rights();
	if (wanted("orphan-fork")) sec_orphan("orphan-fork", "fork");
	if (wanted("orphan-exec")) sec_orphan("orphan-exec", "fork, then exec");
	if (wanted("orphan-spawn")) sec_orphan("orphan-spawn", "posix_spawn");
	if (wanted("orphan-vfork")) sec_orphan("orphan-vfork", "vfork, then exec");
	if (wanted("orphan-daemon")) sec_orphan("orphan-daemon", "daemon");
	if (wanted("daemon-streams")) sec_daemon_streams();
	if (wanted("fork-then-join")) sec_fork_then_join();
	if (wanted("thread-ring")) sec_thread_ring();
	if (wanted("epoll-hup")) sec_epoll_hup();
	printf("=== DONE\n");
	return 0;
}

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
 * Serials made in one process reach the one that prints them through a
 * plain pipe or the socket, as `label=serial` lines, so every process
 * prints labels only.
 *
 * Usage: procs [SECTION...]
 *        procs --reader FD NAMES-FD   (what exec-reader execs)
 */
#include "probe.h"
#include <sys/socket.h>
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

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--reader") == 0) {
		setvbuf(stdout, NULL, _IOLBF, 0);
		return reader(atoi(argv[2]), atoi(argv[3]));
	}
	options(argc, argv, NULL, NULL, NULL, NULL);
	printf("# procs probe\n");
	if (wanted("fork-child")) sec_fork_child();
	if (wanted("exec-reader")) sec_exec_reader(argc, argv);
	if (wanted("scm-rights")) sec_scm_rights();
	printf("=== DONE\n");
	return 0;
}

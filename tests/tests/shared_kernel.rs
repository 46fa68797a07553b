//! One emulated kernel for a whole process tree: programs under
//! `watchq exec` (and `watchq kernel` + `--join`) share keys, queues and
//! watches across fork, exec, `SCM_RIGHTS` and separate commands. Each of
//! these failed when every process had a private kernel of its own (the
//! library before the shared kernel): a record that never came, a key
//! that was not there, a read of nothing.
//!
//! Needs `cargo build --workspace`, gcc and keyutils (scripts/test.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use watchq_tests::programs::{cc, exec_within, repo, text, watchq};

/// tests/c/tree.c, compiled once (tests run in parallel: a second
/// compile would rewrite the binary while another test runs it).
fn tree() -> PathBuf {
    static TREE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TREE.get_or_init(|| cc(&repo("tests/c/tree.c"), "tree"))
        .clone()
}

/// `timeout SECS watchq exec FLAGS -- PROGRAM ARGS`.
fn run(secs: &str, flags: &[&str], program: &Path, args: &[&str]) -> Output {
    exec_within(secs, flags, program, args)
}

/// Runs `tree MODE` on a standalone kernel, SIGKILLs the kernel once the
/// client says it is about to sleep (its first line), and returns the
/// client's output (that line included), asserting it ended within 5 s of
/// the kill (its own sleep would last 10 s: the wake-up is the kernel's
/// death, however loaded the machine); the kernel's directory is removed.
fn kill_kernel_under(mode: &str) -> Output {
    use std::io::{BufRead, Read};
    let (sock, pid) = kernel();
    let mut child = Command::new("timeout")
        .arg("10")
        .arg(watchq())
        .args(["exec", "--join", &sock, "--"])
        .arg(tree())
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // Into its read() or poll() a moment after it said so (a kill before
    // the sleep begins gives the same answers: the real pipe has hung up).
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    // SAFETY: plain kill(2) of the kernel we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let mut out = child.wait_with_output().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    out.stdout = [first.into_bytes(), rest].concat();
    let _ = std::fs::remove_dir_all(Path::new(&sock).parent().unwrap());
    out
}

fn shared_ok(program: &Path, args: &[&str]) -> String {
    let out = run("20", &[], program, args);
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `watchq kernel`: a standalone kernel's socket and pid.
fn kernel() -> (String, i32) {
    let out = Command::new(watchq()).arg("kernel").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    let get = |k: &str| {
        lines
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .to_string()
    };
    (
        get("WATCHQ_KERNEL="),
        get("WATCHQ_KERNEL_PID=").parse().unwrap(),
    )
}

fn sh() -> &'static Path {
    Path::new("/bin/sh")
}

#[test]
fn shared_separate_keyctl_commands_see_each_others_keys() {
    let script = "k=$(keyctl add user t x @s); keyctl print $k";
    assert_eq!(shared_ok(sh(), &["-c", script]), "x\n");
}

/// A program that clears its environment stays on the tree's kernel.
#[test]
fn shared_env_i_stays_in_the_tree() {
    let script = "k=$(env -i keyctl add user t x @s); env -i keyctl print $k";
    assert_eq!(shared_ok(sh(), &["-c", script]), "x\n");
}

#[test]
fn shared_parent_watches_while_a_forked_child_changes_keys() {
    assert_eq!(shared_ok(&tree(), &["parent-watches"]), "sub=2\n");
}

#[test]
fn shared_forked_child_reads_while_the_parent_changes_keys() {
    assert_eq!(shared_ok(&tree(), &["child-reads"]), "sub=1\nsub=1\n");
}

#[test]
fn shared_reader_execd_with_the_inherited_end() {
    assert_eq!(shared_ok(&tree(), &["exec-reader"]), "sub=1\nsub=1\n");
}

#[test]
fn shared_signal_handler_writes_a_self_pipe_during_an_emulated_read() {
    assert_eq!(
        shared_ok(&tree(), &["sigpipe"]),
        "sub=1\nhandler ran often\n"
    );
}

/// A C program polls a notification pipe on @s while separate `keyctl`
/// commands of the same shell change the keyring.
#[test]
fn shared_keyctl_commands_change_a_keyring_a_program_polls() {
    let script = format!(
        "{} poll & sleep 0.3; keyctl add user k v @s >/dev/null; wait $!",
        tree().display()
    );
    assert_eq!(shared_ok(sh(), &["-c", &script]), "watching\nsub=2\n");
}

/// `keyctl watch @s` in the background sees the keyring changes the
/// shell's later commands make (keyutils' own test suite does this).
#[test]
fn shared_keyctl_watch_sees_other_commands() {
    let out_file = std::env::temp_dir().join(format!("wq-watch-{}.out", std::process::id()));
    let script = format!(
        "keyctl watch @s > {f} & sleep 0.4; k=$(keyctl add user k v @s); \
         keyctl unlink $k @s; sleep 0.4; kill $!; wait; cat {f}",
        f = out_file.display()
    );
    let out = shared_ok(sh(), &["-c", &script]);
    let _ = std::fs::remove_file(&out_file);
    // keyctl says "Monitoring terminated" when killed.
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("Monitoring"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains(" link "), "{out}");
    assert!(lines[1].contains(" unlk "), "{out}");
}

/// A vfork child that closes both ends closes its own copies only.
#[test]
fn shared_vfork_child_closes_the_end() {
    assert_eq!(shared_ok(&tree(), &["vfork-close"]), "sub=1\n");
}

/// close_range over both ends: the kernel learns of the last close from
/// the real kernel (no close() was interposed) and releases the pipe.
#[test]
fn shared_close_range_over_an_emulated_end_is_the_last_close() {
    let log = std::env::temp_dir().join(format!("wq-close-range-{}.log", std::process::id()));
    let out = run(
        "20",
        &["--log", log.to_str().unwrap()],
        &tree(),
        &["close-range"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        if l.contains("read end released (last close)") && l.contains("write end released") {
            break;
        }
        assert!(Instant::now() < end, "{l}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&log);
}

/// A program that closes every descriptor, or puts its own files at every
/// number, takes the connection's descriptor: the library connects anew
/// (the same emulated process, its keys still there) and never closes the
/// program's files.
#[test]
fn shared_program_closing_every_descriptor_keeps_its_kernel() {
    assert_eq!(shared_ok(&tree(), &["close-all"]), "read 1 v, add ok\n");
}

/// A read into memory the program cannot write is EFAULT and leaves the
/// record queued (the kernel's pipe_read() does).
#[test]
fn shared_efault_leaves_the_records_queued() {
    assert_eq!(
        shared_ok(&tree(), &["efault"]),
        "read(unwritable) = -1 Bad address\nsub=1\n"
    );
}

/// `watchq kernel` starts a kernel separate programs join; killing it
/// makes a client blocked in read() fail promptly, with a message.
#[test]
fn shared_kernel_killed_while_a_client_blocks_in_read() {
    let out = kill_kernel_under("block");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "blocking\nread: Input/output error\n");
    assert!(
        text(&out.stderr).contains("the emulated kernel at") && text(&out.stderr).contains("gone"),
        "{}",
        text(&out.stderr)
    );
}

/// The kernel killed while a client sleeps in poll(): the poll wakes promptly
/// (the kernel's end of the real pipe is gone) and fails with EIO,
/// as every call on the dead kernel does.
#[test]
fn shared_kernel_killed_while_a_client_blocks_in_poll() {
    let out = kill_kernel_under("pollblock");
    assert_eq!(
        text(&out.stdout),
        "polling\npoll = -1\nread: Input/output error\n"
    );
    assert!(text(&out.stderr).contains("gone"), "{}", text(&out.stderr));
}

/// SIGTERM stops a standalone kernel and removes its socket.
#[test]
fn shared_kernel_stops_cleanly_on_sigterm() {
    let (sock, pid) = kernel();
    assert!(Path::new(&sock).exists());
    let k = run(
        "10",
        &["--join", &sock],
        Path::new("/bin/sh"),
        &["-c", "keyctl add user k v @u"],
    );
    assert!(k.status.success(), "{}", text(&k.stderr));
    // SAFETY: plain kill(2) of the kernel we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    // The socket goes first, then its directory (two steps: wait for
    // both, or the check can land between them).
    let end = Instant::now() + Duration::from_secs(30);
    let dir = Path::new(&sock).parent().unwrap().to_path_buf();
    while Path::new(&sock).exists() || dir.exists() {
        assert!(
            Instant::now() < end,
            "still running, or its directory left behind"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

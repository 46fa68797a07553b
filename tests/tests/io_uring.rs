//! io_uring under `watchq exec`: refused, because its submissions reach
//! the real kernel past the preload (watchq::seal).
//!
//! tests/c/iouring.c makes the raw system calls liburing makes. Under
//! `watchq exec` (and `--join`) `io_uring_setup`, `_enter` and `_register`
//! fail with EPERM, as `io_uring_setup` does on a kernel with
//! `kernel.io_uring_disabled=2`; with `--allow-io-uring` they are the
//! machine's, exactly as outside watchq. A ring's `IORING_OP_OPENAT` of
//! `/proc/sys/kernel/keys/gc_delay` would open the machine's file, not the
//! emulated one (shown with the opt-out when this machine has io_uring).
//! The filter costs no_new_privs only without CAP_SYS_ADMIN: a setuid
//! program started by an unprivileged user in the tree keeps that user's
//! ids.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use watchq_tests::programs::{bounded, cc, exec, exec_wrapped, repo, target_dir, text, watchq};

/// The C program, compiled once for all the tests (they run in threads).
fn program() -> PathBuf {
    static P: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    P.get_or_init(|| cc(&repo("tests/c/iouring.c"), "iouring"))
        .clone()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}: {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

const REFUSED: &str = "io_uring_setup(4, &p) = -1 EPERM\n\
                       io_uring_enter(0, 0, 0, 0) = -1 EPERM\n\
                       io_uring_register(0, 0, NULL, 0) = -1 EPERM\n\
                       open(/dev/null) = fd\n";

#[test]
fn io_uring_calls_fail_with_eperm_under_exec() {
    let p = program();
    assert_eq!(ok(&exec(&[], &p, &["calls"])), REFUSED);
    // A process the program starts inherits the filter.
    let sh = format!("{} calls", p.display());
    assert_eq!(ok(&exec(&[], Path::new("/bin/sh"), &["-c", &sh])), REFUSED);
}

#[test]
fn io_uring_opt_out_gives_the_machines_results() {
    let p = program();
    let native = ok(&Command::new(&p).arg("calls").output().unwrap());
    assert_eq!(ok(&exec(&["--allow-io-uring"], &p, &["calls"])), native);
}

#[test]
fn io_uring_calls_fail_with_eperm_under_exec_join() {
    let out = bounded().arg("kernel").output().unwrap();
    let lines = ok(&out);
    let get = |k: &str| lines.lines().find_map(|l| l.strip_prefix(k)).unwrap();
    let (sock, pid) = (get("WATCHQ_KERNEL="), get("WATCHQ_KERNEL_PID="));
    let joined = exec(&["--join", sock], &program(), &["calls"]);
    let _ = Command::new("kill").arg(pid).status();
    assert_eq!(ok(&joined), REFUSED);
}

/// The ring's openat and read of the keys' gc_delay: refused at setup
/// under `watchq exec` (the emulated value is 7, the machine's whatever it
/// is); with the opt-out, on a machine whose kernel has io_uring, the ring
/// reads the machine's file: what the filter is there to stop (a root
/// program's IORING_OP_WRITE there would change the machine).
#[test]
fn io_uring_cannot_reach_the_machines_proc_keys() {
    let p = program();
    let gc = "/proc/sys/kernel/keys/gc_delay";
    let script = format!("cat {gc}; {} read {gc}; echo status=$?", p.display());
    let sh = Path::new("/bin/sh");
    let out = ok(&exec(&["--gc-delay", "7"], sh, &["-c", &script]));
    assert_eq!(out, "7\nio_uring_setup = -1 EPERM\nstatus=3\n");
    let native = Command::new(&p).args(["read", gc]).output().unwrap();
    if native.status.success() {
        let host = std::fs::read_to_string(gc).unwrap();
        let out = ok(&exec(
            &["--gc-delay", "7", "--allow-io-uring"],
            sh,
            &["-c", &script],
        ));
        assert_eq!(out, format!("7\n{host}status=0\n"));
    }
}

/// `setpriv` to uid 1000 with no capabilities, then `watchq exec`.
fn as_user(flags: &[&str], program: &Path, args: &[&str]) -> Output {
    let user = [
        "setpriv",
        "--reuid",
        "1000",
        "--regid",
        "1000",
        "--clear-groups",
        "--",
    ];
    exec_wrapped("60", &user, flags, program, args)
}

fn status_lines(s: &str) -> String {
    s.lines()
        .filter(|l| l.starts_with("NoNewPrivs:") || l.starts_with("Seccomp:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect()
}

/// Root (CAP_SYS_ADMIN) gets the filter without no_new_privs; uid 1000
/// with no capabilities gets no_new_privs, and a setuid-root program it
/// starts in the tree runs with its ids (the documented cost), unless it
/// opts out.
#[test]
fn io_uring_filter_sets_no_new_privs_only_without_cap_sys_admin() {
    if !root() {
        eprintln!(
            "io_uring_filter_sets_no_new_privs_only_without_cap_sys_admin: needs root; skipped"
        );
        return;
    }
    let grep = Path::new("/bin/grep");
    let st = ["-E", "NoNewPrivs|Seccomp", "/proc/self/status"];
    assert_eq!(
        status_lines(&ok(&exec(&[], grep, &st))),
        "NoNewPrivs: 0\nSeccomp: 2\n"
    );
    // uid 1000 must reach the build (a checkout under a 0700 directory,
    // such as a fresh clone in mktemp's, does not let it).
    let reach = Command::new("setpriv")
        .args(["--reuid", "1000", "--regid", "1000", "--clear-groups", "--"])
        .args([
            "sh",
            "-c",
            "test -x \"$0\" && test -r \"$1\" && test -x \"$2\"",
        ])
        .arg(watchq())
        .arg(watchq_tests::programs::preload_lib())
        .arg(program())
        .status()
        .unwrap();
    if !reach.success() {
        eprintln!(
            "io_uring_filter_sets_no_new_privs_only_without_cap_sys_admin: uid 1000 cannot reach \
             the build; the unprivileged half skipped"
        );
        return;
    }
    assert_eq!(
        status_lines(&ok(&as_user(&[], grep, &st))),
        "NoNewPrivs: 1\nSeccomp: 2\n"
    );
    assert_eq!(
        status_lines(&ok(&as_user(&["--allow-io-uring"], grep, &st))),
        "NoNewPrivs: 0\nSeccomp: 0\n"
    );
    assert_eq!(ok(&as_user(&[], &program(), &["calls"])), REFUSED);

    let id = target_dir().join("c-tests").join("setuid-id");
    std::fs::create_dir_all(id.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&id);
    std::fs::copy("/usr/bin/id", &id).unwrap();
    let chmod = Command::new("chmod").arg("4755").arg(&id).status().unwrap();
    assert!(chmod.success());
    let native = Command::new("setpriv")
        .args(["--reuid", "1000", "--regid", "1000", "--clear-groups", "--"])
        .arg(&id)
        .output()
        .unwrap();
    assert!(ok(&native).contains("euid=0"), "{}", text(&native.stdout));
    let inside = ok(&as_user(&[], &id, &[]));
    assert!(!inside.contains("euid="), "{inside}");
    assert!(inside.starts_with("uid=1000"), "{inside}");
    let opted = ok(&as_user(&["--allow-io-uring"], &id, &[]));
    assert!(opted.contains("euid=0"), "{opted}");
}

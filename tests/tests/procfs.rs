//! The key subsystem's /proc files under `watchq exec`: `/proc/keys`,
//! `/proc/key-users` and `/proc/sys/kernel/keys/*` are the emulated
//! kernel's, and nothing a program writes there reaches the machine.
//!
//! `procfs_probe_matches_linux` runs tests/conformance/probes/procfs.c
//! (reads, root's good and bad writes, a uid-1000 child's EACCES and
//! EPERM, maxkeys taking effect, the listings) with the emulated gc_delay
//! set to 2 from inside the tree, as the recording's guest had it, and
//! compares with what Linux 6.12.118 printed
//! (tests/data/conformance/procfs.txt). Both tests check the machine's
//! own values are what they were. They need root (the probe drops to
//! uid 1000 in children, and a write must be a root's to prove it stays
//! in the emulation); as another user they say so and pass.

use std::process::Command;
use watchq_tests::programs::{cc, repo, text, watchq};

const FILES: [&str; 6] = [
    "gc_delay",
    "maxkeys",
    "maxbytes",
    "root_maxkeys",
    "root_maxbytes",
    "persistent_keyring_expiry",
];

/// The machine's own values of the keys' sysctls (and of
/// `sysctl_writes_strict`, which the probe sets too).
fn host_values() -> Vec<String> {
    FILES
        .iter()
        .map(|f| format!("/proc/sys/kernel/keys/{f}"))
        .chain(["/proc/sys/kernel/sysctl_writes_strict".to_string()])
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn exec_sh(script: &str) -> std::process::Output {
    Command::new("timeout")
        .arg("60")
        .arg(watchq())
        .args(["exec", "--", "sh", "-c", script])
        .output()
        .unwrap()
}

#[test]
fn procfs_probe_matches_linux() {
    if !root() {
        eprintln!("procfs_probe_matches_linux: needs root; skipped");
        return;
    }
    let probe = cc(
        &repo("tests/conformance/probes/procfs.c"),
        "conformance-procfs",
    );
    let before = host_values();
    let out = exec_sh(&format!(
        "echo 2 > /proc/sys/kernel/keys/gc_delay && exec {}",
        probe.display()
    ));
    assert_eq!(host_values(), before, "the machine's sysctls changed");
    let ours = text(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{ours}\n{}",
        out.status,
        text(&out.stderr)
    );
    let recorded = include_str!("../data/conformance/procfs.txt");
    // `pipe-pages-ordinary` ran only in the guest (`--native-pipes`: a
    // program's ordinary pipes are the machine's under `watchq exec`);
    // conformance_corpus.rs replays it in process. `usage` has its own
    // test below (known differences).
    const SEPARATE: [&str; 2] = ["=== SECTION pipe-pages-ordinary", "=== SECTION usage"];
    let mut native_only = false;
    let kernel: Vec<&str> = recorded
        .lines()
        .skip_while(|l| {
            l.starts_with("# recorded")
                || l.starts_with("# kernel")
                || l.starts_with("# uname")
                || l.starts_with("# qemu")
        })
        .filter(|l| {
            if l.starts_with("=== ") {
                native_only = SEPARATE.contains(l);
            }
            !native_only
        })
        .collect();
    let mut separate = false;
    let ours: Vec<&str> = ours
        .lines()
        .filter(|l| {
            if l.starts_with("=== ") {
                separate = SEPARATE.contains(l);
            }
            !separate
        })
        .collect();
    for (i, (a, b)) in ours.iter().zip(&kernel).enumerate() {
        assert_eq!(a, b, "line {} differs (watchq, then Linux)", i + 1);
    }
    assert_eq!(ours.len(), kernel.len(), "lengths:\n{}", ours.join("\n"));
}

/// A root shell (dash's echo: write()), bash (whose echo writes through
/// stdio, which no preload sees), relative and `..` spellings, procps'
/// `sysctl -w` (fopen and fprintf) all write the emulated values, a bad
/// value is refused; the machine's stay as they were.
#[test]
fn procfs_root_writes_stay_in_the_emulation() {
    if !root() {
        eprintln!("procfs_root_writes_stay_in_the_emulation: needs root; skipped");
        return;
    }
    let before = host_values();
    let d = "/proc/sys/kernel/keys";
    let mut script = format!(
        "echo 299 > {d}/gc_delay; cat {d}/gc_delay; \
         bash -c 'echo 7 > {d}/maxkeys'; cat {d}/maxkeys; \
         cd {d} && echo 11 > root_maxkeys; cat ../keys/root_maxkeys; cd /; \
         echo 5 > /proc/self/../sys/kernel/keys/persistent_keyring_expiry; \
         cat {d}/persistent_keyring_expiry; \
         echo nope > {d}/maxbytes || echo rejected; cat {d}/maxbytes; "
    );
    if std::path::Path::new("/usr/sbin/sysctl").exists() {
        script.push_str(&format!(
            "/usr/sbin/sysctl -q -w kernel.keys.root_maxbytes=12345; cat {d}/root_maxbytes; "
        ));
    } else {
        script.push_str("echo 12345; ");
    }
    let out = exec_sh(&script);
    assert_eq!(host_values(), before, "the machine's sysctls changed");
    assert_eq!(
        text(&out.stdout),
        "299\n7\n11\n5\nrejected\n20000\n12345\n",
        "{}",
        text(&out.stderr)
    );
}

/// keys.c's `quota` section, a uid-1000 child reading its quota use from
/// `/proc/key-users` after each call, under `watchq exec` (it was only
/// replayed in process before, as the file was the machine's): it prints
/// what Linux 6.12.117 printed (tests/data/conformance/keys.txt).
#[test]
fn procfs_key_users_quota_section_matches_linux() {
    if !root() {
        eprintln!("procfs_key_users_quota_section_matches_linux: needs root; skipped");
        return;
    }
    let probe = cc(&repo("tests/conformance/probes/keys.c"), "conformance-keys");
    let out = Command::new("timeout")
        .arg("60")
        .arg(watchq())
        .args(["exec", "--"])
        .arg(&probe)
        .args(["--gc-delay", "2", "--settle", "300", "quota"])
        .output()
        .unwrap();
    let section = |t: &str| -> Vec<String> {
        t.lines()
            .skip_while(|l| *l != "=== SECTION quota")
            .skip(1)
            .take_while(|l| !l.starts_with("=== "))
            .map(str::to_string)
            .collect()
    };
    let kernel = section(include_str!("../data/conformance/keys.txt"));
    assert!(kernel.iter().any(|l| l.starts_with("quota ")));
    assert_eq!(section(&text(&out.stdout)), kernel, "{}", text(&out.stderr));
}

/// A program given the library by hand hosts the kernel and is its first
/// client: its own writes to the keys' sysctls (the shell's redirection
/// here) are the emulated kernel's too. They reached the machine while the
/// hosting process did not join its own kernel.
#[test]
fn procfs_hosting_process_writes_stay_in_the_emulation() {
    if !root() {
        eprintln!("procfs_hosting_process_writes_stay_in_the_emulation: needs root; skipped");
        return;
    }
    let before = host_values();
    let out = Command::new("timeout")
        .args(["30", "env"])
        .arg(format!(
            "LD_PRELOAD={}",
            watchq_tests::programs::preload_lib().display()
        ))
        .args([
            "sh",
            "-c",
            "echo 5 > /proc/sys/kernel/keys/gc_delay; cat /proc/sys/kernel/keys/gc_delay",
        ])
        .output()
        .unwrap();
    assert_eq!(host_values(), before, "the machine's sysctls changed");
    assert_eq!(text(&out.stdout), "5\n", "{}", text(&out.stderr));
}

/// A procfs mounted elsewhere (in a mount namespace of the program's own)
/// names the same files: `/mnt/sys/kernel/keys/maxkeys` is the emulated
/// sysctl, `/mnt/keys` the emulated listing; the machine's stay.
#[test]
fn procfs_another_procfs_mount_is_the_same_emulated_files() {
    if !root() {
        eprintln!("procfs_another_procfs_mount_is_the_same_emulated_files: needs root; skipped");
        return;
    }
    let unshare = watchq_tests::programs::require("unshare");
    watchq_tests::programs::require("keyctl");
    let dir = watchq_tests::programs::target_dir().join("procfs-mount");
    std::fs::create_dir_all(&dir).unwrap();
    let before = host_values();
    let d = dir.display();
    let out = Command::new("timeout")
        .arg("30")
        .arg(watchq())
        .args(["exec", "--"])
        .arg(unshare)
        .args(["-m", "sh", "-c"])
        .arg(format!(
            "mount -t proc proc {d} && echo 7 > {d}/sys/kernel/keys/maxkeys && \
             cat /proc/sys/kernel/keys/maxkeys && keyctl add user k v @s > /dev/null && \
             grep -c ' user ' {d}/keys"
        ))
        .output()
        .unwrap();
    assert_eq!(host_values(), before, "the machine's sysctls changed");
    assert_eq!(text(&out.stdout), "7\n1\n", "{}", text(&out.stderr));
}

/// procfs.c's `usage` section: /proc/keys's usage column with several
/// holders. The kernel counts links plus every live `struct cred` that
/// names the key: each process's, a thread's own once it has a thread
/// keyring, a zombie's until it is reaped, and the creds open files keep
/// (`f_cred`: a process keyring's new cred leaves the old one alive in
/// the descriptors opened before), each released after an RCU grace
/// period. watchq counts links and one per emulated process it knows.
/// The lines where the two differ are listed with watchq's value, so the
/// test fails when either side changes.
#[test]
fn procfs_usage_counts_match_linux_where_known() {
    let probe = cc(
        &repo("tests/conformance/probes/procfs.c"),
        "conformance-procfs-usage",
    );
    let out = Command::new("timeout")
        .arg("60")
        .arg(watchq())
        .arg("exec")
        .arg("--")
        .arg(&probe)
        .arg("usage")
        .output()
        .unwrap();
    let ours = text(&out.stdout);
    assert!(out.status.success(), "{ours}{}", text(&out.stderr));
    let section = |t: &str| -> Vec<String> {
        t.lines()
            .skip_while(|l| *l != "=== SECTION usage")
            .skip(1)
            .take_while(|l| !l.starts_with("=== "))
            .map(str::to_owned)
            .collect()
    };
    let kernel = section(include_str!("../data/conformance/procfs.txt"));
    let ours = section(&ours);
    // (what Linux printed, what watchq prints): forked children are known
    // to the emulated kernel from their fork (the parent announces them),
    // but a zombie is not (released at exit, not at the reap), nor is a
    // thread's own cred or the old cred open files hold.
    const KNOWN: [(&str, &str); 5] = [
        ("usage S with a zombie = 2", "usage S with a zombie = 1"),
        (
            "usage S with a thread that has a thread keyring = 2",
            "usage S with a thread that has a thread keyring = 1",
        ),
        (
            "usage S with a process keyring = 2",
            "usage S with a process keyring = 1",
        ),
        ("usage S with a child = 3", "usage S with a child = 2"),
        (
            "usage S after a process keyring, a file open from before = 2",
            "usage S after a process keyring, a file open from before = 1",
        ),
    ];
    assert_eq!(ours.len(), kernel.len(), "{}", ours.join("\n"));
    for (a, b) in ours.iter().zip(&kernel) {
        let want = KNOWN
            .iter()
            .find(|(k, _)| k == b)
            .map_or(b.as_str(), |(_, w)| *w);
        assert_eq!(a, want, "Linux printed {b:?}");
    }
}

/// More than a pipe holds written through stdio before the flush (bash's
/// printf of 100 000 digits, in 4 KiB internal writes) never blocks the
/// writer: the kernel takes the bytes once the pipe is filling (they are
/// not a number, so the value stays); the machine's values are untouched.
#[test]
fn procfs_stdio_writes_past_a_pipe_never_block() {
    if !root() {
        eprintln!("procfs_stdio_writes_past_a_pipe_never_block: needs root; skipped");
        return;
    }
    let before = host_values();
    let out = Command::new("timeout")
        .arg("20")
        .arg(watchq())
        .args(["exec", "--gc-delay", "5", "--", "bash", "-c"])
        .arg(
            "printf '%0100000d' 0 > /proc/sys/kernel/keys/gc_delay; \
             cat /proc/sys/kernel/keys/gc_delay",
        )
        .output()
        .unwrap();
    assert_eq!(host_values(), before, "the machine's sysctls changed");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "5\n");
}

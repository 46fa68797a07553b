//! The rest of the surface a consumer reaches under `watchq exec`
//! (tests/c/surface.c, built with `_FORTIFY_SOURCE`, one mode per test),
//! each against the kernel's rule:
//!
//! - real system call numbers reach the real kernel (436 is `close_range`,
//!   440 and 441 `process_madvise` and `epoll_pwait2`); the unmerged watch
//!   calls are at watchq's own numbers (docs/uapi.md);
//! - `pipe_poll()`'s bits on both ends, `watch_queue_poll()`'s on the 2019
//!   device, an `EPOLLET` edge per post, `SIGIO` per post with
//!   `F_SETOWN`/`F_SETSIG` (spec §1.11);
//! - `select`/`pselect` with descriptors at 1024 and above, bits above
//!   `nfds` left alone;
//! - `pread`/`preadv`/`preadv2`/`pwrite` (`ESPIPE`, `EINVAL`), the
//!   `syscall()` forms of read, readv, dup2, fcntl, ppoll and close.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use watchq_tests::programs::{repo, require, target_dir, text, watchq};

fn surface() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = target_dir().join("c-tests");
        std::fs::create_dir_all(&out).unwrap();
        let bin = out.join("surface");
        let st = Command::new(require("gcc"))
            .args(["-O1", "-Wall", "-D_FORTIFY_SOURCE=2", "-o"])
            .arg(&bin)
            .arg(repo("tests/c/surface.c"))
            .status()
            .unwrap();
        assert!(st.success());
        bin
    })
    .clone()
}

fn run(mode: &str) -> String {
    let out = Command::new("timeout")
        .arg("30")
        .arg(watchq())
        .args(["exec", "--"])
        .arg(surface())
        .arg(mode)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{mode}: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn surface_real_syscall_numbers_reach_the_real_kernel() {
    assert_eq!(
        run("numbers"),
        "syscall(SYS_close_range, p[0], p[0], 0) = 0\n\
         fcntl(p[0], F_GETFD) = -1 EBADF\n\
         syscall(436, p[1], p[1], 0) = 0\n\
         fcntl(p[1], F_GETFD) = -1 EBADF\n\
         syscall(440, ..., emulated end, 5) is the real call: yes\n\
         syscall(441, ..., emulated end, 5) is the real call: yes\n\
         syscall(WQ_WATCH_DEVICES, p[0], 4, 0) = 0\n\
         syscall(WQ_WATCH_DEVICES, p[0], 256, 0) = -1 EINVAL\n\
         syscall(WQ_WATCH_MOUNT, AT_FDCWD, \"/\", 0, p[0], 6) = 0\n"
    );
}

#[test]
fn surface_poll_bits_on_both_designs() {
    assert_eq!(
        run("poll"),
        "poll(read end, empty) = 0 0\n\
         poll(write end) = 1 OUT|WRNORM\n\
         poll(read end, a record) = 1 IN|RDNORM\n\
         poll(read end, a record, POLLIN asked) = 1 IN\n\
         poll(read end, a record, POLLRDNORM asked) = 1 RDNORM\n\
         ppoll = 1 IN\n\
         poll(read end, a record, writer gone) = 1 IN|RDNORM|HUP\n\
         poll(read end, empty, writer gone) = 1 HUP\n\
         poll(write end, reader gone) = 1 OUT|WRNORM|ERR\n\
         ioctl(d, _IO('s', 0x01), 1) = 0\n\
         poll(/dev/watch_queue, empty) = 0 0\n\
         poll(/dev/watch_queue, a record) = 1 IN|RDNORM\n"
    );
}

#[test]
fn surface_epollet_edge_per_post() {
    assert_eq!(
        run("epollet"),
        "post 1: edge, then 0 more\npost 2: edge, then 0 more\n\
         post 3: edge, then 0 more\nedges 3 (nothing read)\n"
    );
}

#[test]
fn surface_o_async_sigio_per_post() {
    let out = run("sigio");
    assert!(
        out.ends_with("signals 3, si_fd is the read end: yes, si_code POLL_IN: yes\n"),
        "{out}"
    );
}

#[test]
fn surface_select_above_fd_setsize_checks_only_nfds_bits() {
    assert_eq!(
        run("select"),
        "select(1501) = 1, bit 1500 set, bits above nfds left alone\n\
         pselect(1501) = 1, bit 1500 set\n\
         select(1501) after the read = 0, bit 1500 clear\n"
    );
}

#[test]
fn surface_positional_reads_are_espipe() {
    assert_eq!(
        run("pread"),
        "pread(p[0], b, sizeof b, 0) = -1 ESPIPE\n\
         pread(p[0], b, sizeof b, -1) = -1 EINVAL\n\
         preadv(p[0], &v, 1, 0) = -1 ESPIPE\n\
         preadv2(p[0], &v, 1, 0, 0) = -1 ESPIPE\n\
         preadv2(p[0], &v, 1, -1, 0) = 16\n\
         pwrite(p[1], b, 1, 0) = -1 ESPIPE\n\
         read(p[0], b, sizeof b) = -1 EAGAIN\n"
    );
}

#[test]
fn surface_syscall_forms_of_the_fd_calls() {
    assert_eq!(
        run("sys"),
        "syscall(SYS_ppoll, &pp, 1, &ts, NULL, 8) = 1\n\
         revents IN\n\
         syscall(SYS_fcntl, p[0], F_GETPIPE_SZ) = 4096\n\
         syscall(SYS_dup2, p[0], 200) = 200\n\
         syscall(SYS_readv, 200, &v, 1) = 16\n\
         syscall(SYS_read, p[0], b, 8) = -1 ENOBUFS\n\
         syscall(SYS_read, p[0], b, sizeof b) = 16\n\
         syscall(SYS_close, 200) = 0\n\
         syscall(SYS_fcntl, 200, F_GETFD) = -1 EBADF\n"
    );
}

/// KEYCTL_GET_SECURITY (no LSM label: an empty string, its NUL copied) and
/// KEYCTL_SET_REQKEY_KEYRING (the old setting back; 6 is EINVAL) reach the
/// emulated kernel instead of answering EOPNOTSUPP.
#[test]
fn surface_keyctl_get_security_and_set_reqkey_keyring() {
    assert_eq!(
        run("keyctl"),
        "syscall(SYS_keyctl, 17 , u, buf, sizeof buf) = 1\n\
         buf[0] = 0\n\
         syscall(SYS_keyctl, 17, u, NULL, 0) = 1\n\
         syscall(SYS_keyctl, 17, 0x7fffffff, buf, sizeof buf) = -1 ENOKEY\n\
         syscall(SYS_keyctl, 14 , 2) = 0\n\
         syscall(SYS_keyctl, 14, -1) = 2\n\
         syscall(SYS_keyctl, 14, 6) = -1 EINVAL\n"
    );
}

/// types.c's `reqkey` section (every KEY_REQKEY_DEFL_* value and what
/// KEYCTL_SET_REQKEY_KEYRING returns) under `watchq exec` prints what
/// Linux 6.12.117 printed (tests/data/conformance/types.txt).
#[test]
fn surface_reqkey_section_matches_linux() {
    let probe = watchq_tests::programs::cc(
        &repo("tests/conformance/probes/types.c"),
        "conformance-types",
    );
    let out = Command::new("timeout")
        .arg("30")
        .arg(watchq())
        .args(["exec", "--"])
        .arg(&probe)
        .arg("reqkey")
        .output()
        .unwrap();
    let section = |t: &str| -> Vec<String> {
        t.lines()
            .skip_while(|l| *l != "=== SECTION reqkey")
            .skip(1)
            .take_while(|l| !l.starts_with("=== "))
            .map(str::to_string)
            .collect()
    };
    let kernel = section(include_str!("../data/conformance/types.txt"));
    assert!(!kernel.is_empty());
    assert_eq!(section(&text(&out.stdout)), kernel, "{}", text(&out.stderr));
}

/// `syscall(SYS_openat2)` of a keys sysctl opens the emulated file: a
/// root write of 123 reads back, the machine's value stays.
#[test]
fn surface_openat2_of_a_keys_sysctl_is_emulated() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("surface_openat2_of_a_keys_sysctl_is_emulated: needs root; skipped");
        return;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/keys/maxkeys").unwrap();
    assert_eq!(
        run("openat2"),
        "write(fd, \"123\", 3) = 3\nread(fd, b, sizeof b - 1) = 4\nmaxkeys = 123\n"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/keys/maxkeys").unwrap(),
        host
    );
}

/// `freopen` of a keys sysctl onto stdout (written through stdio) and onto
/// a read stream: the emulated files; the machine's value stays.
#[test]
fn surface_freopen_of_a_keys_sysctl_is_emulated() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("surface_freopen_of_a_keys_sysctl_is_emulated: needs root; skipped");
        return;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/keys/gc_delay").unwrap();
    let out = Command::new("timeout")
        .arg("30")
        .arg(watchq())
        .args(["exec", "--"])
        .arg(surface())
        .arg("freopen")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "gc_delay 42\nmaxkeys 200\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/keys/gc_delay").unwrap(),
        host
    );
}

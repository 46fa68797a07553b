//! Reads through a notification pipe's shared-memory mirror
//! (`watchq_core::ring::shm`): the kernel's process alone writes the
//! records into a sealed ring every reader maps read-only, and readers take
//! them with a CAS on a progress page the kernel validates. Each test here
//! failed before the mirror existed (every read was a round trip) or
//! guards what the mirror must never do: deliver a record twice, lose one
//! a reader did not take, let a scribbling reader reach past its pipe.
//!
//! Needs `cargo build --workspace` and gcc (scripts/test.sh).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use watchq_core::uapi::*;
use watchq_kernel::keyctl::cmd;
use watchq_kernel::remote::{CallError, Remote, RoundRead};
use watchq_kernel::server::{Server, ServerOptions};
use watchq_kernel::{Errno, Kernel, KernelConfig};
use watchq_tests::child::{fork, wait};
use watchq_tests::programs::{cc, repo, text, watchq};

/// Forked children hold copies of the in-process servers' pipe ends: one
/// test at a time (as tests/tests/server.rs).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn server() -> Server {
    Server::start(
        Kernel::new(KernelConfig::default()),
        ServerOptions::default(),
    )
    .unwrap()
}

fn kc(r: &Remote, op: u32, a: [u64; 4], fd: Option<BorrowedFd<'_>>) -> i64 {
    r.keyctl(op, a, (None, None), None, fd).unwrap().0
}

fn add_key(r: &Remote, desc: &str) -> i32 {
    r.add_key("user", Some(desc), b"v", KEY_SPEC_SESSION_KEYRING)
        .unwrap()
}

/// A notification pipe of `notes` notes watching `key`.
fn watched_pipe(r: &Remote, key: i32, notes: u64) -> [OwnedFd; 2] {
    let [rd, wr] = r.pipe2(O_NOTIFICATION_PIPE).unwrap();
    r.ioctl(rd.as_fd(), IOC_WATCH_QUEUE_SET_SIZE, notes, None)
        .unwrap();
    kc(r, cmd::WATCH_KEY, [key as u64, 0, 1, 0], Some(rd.as_fd()));
    [rd, wr]
}

fn update(r: &Remote, key: i32) {
    r.keyctl(
        cmd::UPDATE,
        [key as u64, 0, 0, 0],
        (None, None),
        Some(b"w".to_vec()),
        None,
    )
    .unwrap();
}

fn poll_in(fd: BorrowedFd<'_>, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) == 1 && p.revents & libc::POLLIN != 0 }
}

/// (records, loss records) in what a read returned; panics on anything
/// that is not a whole key record or loss record.
fn count(b: &[u8]) -> (u64, u64) {
    let (mut recs, mut losses) = (0, 0);
    let mut b = b;
    while !b.is_empty() {
        assert!(b.len() >= 8, "a torn record: {b:?}");
        let len = (b[4] & 0x7f) as usize;
        if b[0] == WATCH_TYPE_META as u8 && b[3] == WATCH_META_LOSS_NOTIFICATION {
            assert_eq!(len, 8);
            losses += 1;
        } else {
            assert_eq!(b[0], WATCH_TYPE_KEY_NOTIFY as u8, "{b:?}");
            assert_eq!(len, 16, "{b:?}");
            recs += 1;
        }
        b = &b[len..];
    }
    (recs, losses)
}

fn errno<T: std::fmt::Debug>(r: Result<T, CallError>) -> Errno {
    match r {
        Err(CallError::Errno(e)) => e,
        other => panic!("expected an errno, got {other:?}"),
    }
}

/// Reads every record of `rd` until EAGAIN: (records, loss records).
fn drain_all(r: &Remote, rd: BorrowedFd<'_>) -> (u64, u64) {
    let (mut a, mut b) = (0, 0);
    loop {
        match r.read(rd, 4096) {
            Ok(d) if !d.is_empty() => {
                let (x, y) = count(&d);
                a += x;
                b += y;
            }
            Ok(_) => return (a, b),
            Err(CallError::Errno(Errno::EAGAIN)) => return (a, b),
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// tests/c/shm.c, compiled once.
fn shm_prog() -> PathBuf {
    static P: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    P.get_or_init(|| cc(&repo("tests/c/shm.c"), "shm")).clone()
}

/// `watchq exec -- shm ARGS` with WATCHQ_SHM_STATS: stdout, and the
/// (local, round trip) read counts of each process that said them.
fn run_shm(args: &[&str]) -> (String, Vec<(u64, u64)>) {
    let out = Command::new("timeout")
        .arg("30")
        .arg(watchq())
        .args(["exec", "--"])
        .arg(shm_prog())
        .args(args)
        .env("WATCHQ_SHM_STATS", "1")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(
        out.status.success(),
        "{:?}: {}{err}",
        out.status,
        text(&out.stdout)
    );
    let counts = err
        .lines()
        .filter_map(|l| l.strip_prefix("watchq shm: "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].parse().unwrap(), w[3].parse().unwrap())
        })
        .collect();
    (text(&out.stdout), counts)
}

/// A forked child reads 50 pending records with 50 read() calls: all but
/// the first (which maps the mirror) make no round trip to the kernel.
#[test]
fn shm_reads_of_pending_records_make_no_round_trip() {
    let (out, counts) = run_shm(&["local", "50"]);
    assert_eq!(out, "child read 50\n");
    assert!(counts.contains(&(50, 1)), "{counts:?}");
}

/// poll() of a mirrored read end is answered from the mirror: 20 records,
/// each waited for with poll() and read, and a last poll that finds the
/// pipe empty: the kernel is asked by the first poll only (before the
/// first read made the mirror).
#[test]
fn shm_polls_of_a_mirrored_read_end_make_no_round_trip() {
    let out = Command::new("timeout")
        .arg("30")
        .arg(watchq())
        .args(["exec", "--"])
        .arg(shm_prog())
        .args(["poll", "20"])
        .env("WATCHQ_SHM_STATS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "polled 20\n");
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "watchq shm: 20 local reads, 1 round trips, 20 local polls, 1 poll round trips"
        ),
        "{err}"
    );
}

/// Two processes read one pipe at once, one record at a time and in
/// batches: every record reaches exactly one of them.
#[test]
fn shm_two_processes_read_every_record_once() {
    let (out, counts) = run_shm(&["two-readers", "200"]);
    assert!(out.starts_with("read ") && out.contains("=200\n"), "{out}");
    assert!(out.ends_with("both read: yes\n"), "{out}");
    assert!(
        counts.iter().filter(|(local, _)| *local > 0).count() >= 2,
        "both readers read locally: {counts:?}"
    );
}

/// A local read into memory the program cannot write (all of it, or the
/// second half of a record) is EFAULT and takes nothing (issue 17 item 5).
#[test]
fn shm_efault_leaves_the_records_queued() {
    let (out, counts) = run_shm(&["efault"]);
    assert_eq!(out, "efault ok\n");
    assert!(counts.iter().any(|&(local, _)| local >= 2), "{counts:?}");
}

/// Readers in two processes (over the Rust client) read one pipe while its
/// key changes: the records they got add up to what the queue says it
/// delivered, and nothing is left.
#[test]
fn shm_forked_readers_account_for_every_record() {
    let _serial = serial();
    let s = server();
    let r = Remote::connect(s.path(), true).unwrap();
    let key = add_key(&r, "k");
    let [rd, wr] = watched_pipe(&r, key, 16);
    let mut res = [0i32; 2];
    // SAFETY: a two-int buffer.
    assert_eq!(unsafe { libc::pipe(res.as_mut_ptr()) }, 0);
    let path = s.path().to_path_buf();
    let kids: Vec<_> = (0..2)
        .map(|k| {
            let path = path.clone();
            let (rfd, wfd, out) = (rd.as_raw_fd(), wr.as_raw_fd(), res[1]);
            fork(move || {
                // SAFETY: our inherited copy of the write end.
                unsafe { libc::close(wfd) };
                let c = Remote::connect(&path, true).unwrap();
                // SAFETY: the inherited read end, open for the child's life.
                let rd = unsafe { BorrowedFd::borrow_raw(rfd) };
                let (mut recs, mut losses) = (0u64, 0u64);
                loop {
                    match c.read(rd, if k == 0 { 16 } else { 4096 }) {
                        Ok(d) if d.is_empty() => break,
                        Ok(d) => {
                            let (a, b) = count(&d);
                            recs += a;
                            losses += b;
                        }
                        Err(CallError::Errno(Errno::EAGAIN)) => {
                            poll_in(rd, 100);
                        }
                        Err(_) => return 1,
                    }
                }
                let msg = [recs.to_le_bytes(), losses.to_le_bytes()].concat();
                // SAFETY: a valid buffer, our pipe.
                unsafe { libc::write(out, msg.as_ptr().cast(), msg.len()) };
                0
            })
        })
        .collect();
    for i in 0..600 {
        update(&r, key);
        if i % 8 == 0 {
            std::thread::sleep(Duration::from_micros(300));
        }
    }
    drop(wr);
    let (mut recs, mut losses) = (0, 0);
    for _ in 0..2 {
        let mut b = [0u8; 16];
        // SAFETY: a valid buffer, our pipe.
        assert_eq!(unsafe { libc::read(res[0], b.as_mut_ptr().cast(), 16) }, 16);
        recs += u64::from_le_bytes(b[..8].try_into().unwrap());
        losses += u64::from_le_bytes(b[8..].try_into().unwrap());
    }
    for k in kids {
        assert_eq!(wait(k), 0);
    }
    let st = r.stats(rd.as_fd()).unwrap();
    assert_eq!(st.posted, 600);
    assert_eq!(st.read, recs, "{st:?}");
    assert_eq!(st.loss_records, losses, "{st:?}");
    assert_eq!(st.posted, st.read + st.lost, "{st:?}");
    assert_eq!(st.queued, 0);
    // SAFETY: our pipe's ends.
    unsafe {
        libc::close(res[0]);
        libc::close(res[1]);
    }
}

/// A reader that scribbles on the progress page it shares with the other
/// readers of its pipe (here: every value a random walk gives, between
/// every read) never makes the kernel touch memory outside the mirror
/// (this test's process hosts it), never corrupts another pipe's queue,
/// and costs the honest reader at most records it could have read itself:
/// what it reads are whole records, and the statistics add up.
#[test]
fn shm_hostile_reader_scribbling_its_progress_word() {
    let _serial = serial();
    let s = server();
    let r = Remote::connect(s.path(), true).unwrap();
    let hostile = Remote::connect(s.path(), true).unwrap();
    let (k1, k2) = (add_key(&r, "one"), add_key(&r, "two"));
    let [rd1, _wr1] = watched_pipe(&r, k1, 16);
    let [rd2, _wr2] = watched_pipe(&r, k2, 16);
    update(&r, k1);
    let m = match hostile.read_round(rd1.as_fd(), 4096).unwrap() {
        RoundRead::Look(Some(m)) => m,
        other => panic!("no mirror: {other:?}"),
    };
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let (mut got1, mut got2) = (0u64, 0u64);
    for i in 0..2000u64 {
        update(&r, k1);
        update(&r, k2);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Values near the real positions as well as wild ones.
        let v = match i % 4 {
            0 => x,
            1 => x % 4096,
            2 => i * 24 + (x % 64),
            _ => u64::MAX - (x % 16),
        };
        m.scribble(v);
        got1 += drain_all(&r, rd1.as_fd()).0;
        let (a, b) = drain_all(&r, rd2.as_fd());
        assert_eq!((a, b), (1, 0), "the other pipe is untouched (round {i})");
        got2 += a;
    }
    assert_eq!(got2, 2000);
    let st1 = r.stats(rd1.as_fd()).unwrap();
    assert_eq!(st1.posted, 2001);
    assert!(got1 <= st1.read, "{got1} > {st1:?}");
    assert_eq!(st1.posted, st1.read + st1.lost + st1.queued, "{st1:?}");
    let st2 = r.stats(rd2.as_fd()).unwrap();
    assert_eq!((st2.read, st2.lost, st2.queued), (2000, 0, 0));
    assert!(
        s.audit().iter().any(|l| l.contains("scribbled")),
        "{:?}",
        s.audit()
    );
    // Once it stops, the honest reader gets every record again.
    drop(m);
    update(&r, k1);
    assert!(poll_in(rd1.as_fd(), 1000));
    assert_eq!(drain_all(&r, rd1.as_fd()).0, 1);
}

/// Readers SIGKILLed in the middle of reading (between taking records
/// and draining their readiness bytes, or anywhere else) leave the pipe
/// consistent: the survivor reads the rest, the statistics add up, new
/// records are readable and wake it.
#[test]
fn shm_reader_killed_mid_read_leaves_the_pipe_consistent() {
    let _serial = serial();
    let s = server();
    let r = Remote::connect(s.path(), true).unwrap();
    let key = add_key(&r, "k");
    let [rd, _wr] = watched_pipe(&r, key, 64);
    let path = s.path().to_path_buf();
    let mut taken = (0, 0);
    for round in 0..12u64 {
        for _ in 0..40 {
            update(&r, key);
        }
        let rfd = rd.as_raw_fd();
        let p = path.clone();
        let kid = fork(move || {
            let c = Remote::connect(&p, true).unwrap();
            // SAFETY: the inherited read end.
            let rd = unsafe { BorrowedFd::borrow_raw(rfd) };
            loop {
                let _ = c.read(rd, 16);
            }
        });
        std::thread::sleep(Duration::from_micros(200 + round * 150));
        // SAFETY: our own child.
        unsafe { libc::kill(kid, libc::SIGKILL) };
        assert_eq!(wait(kid), -libc::SIGKILL);
        let (a, b) = drain_all(&r, rd.as_fd());
        taken.0 += a;
        taken.1 += b;
    }
    let st = r.stats(rd.as_fd()).unwrap();
    assert_eq!(st.posted, 480);
    assert_eq!(st.queued, 0, "{st:?}");
    assert_eq!(st.posted, st.read + st.lost, "{st:?}");
    assert!(taken.0 <= st.read);
    // The pipe still works: a new record is readable and read once.
    update(&r, key);
    let end = Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    while got == 0 && Instant::now() < end {
        assert!(poll_in(rd.as_fd(), 30_000));
        got = drain_all(&r, rd.as_fd()).0;
    }
    assert_eq!(got, 1);
    assert_eq!(errno(r.read(rd.as_fd(), 4096)), Errno::EAGAIN);
    // Readiness bytes a killed reader left behind (it took records and
    // died before draining) are drained within a couple of clock ticks:
    // the empty pipe stops polling readable.
    let end = Instant::now() + Duration::from_secs(30);
    while poll_in(rd.as_fd(), 0) {
        assert!(Instant::now() < end, "stale readiness never drained");
        let _ = r.read(rd.as_fd(), 4096);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Losses through the mirror: a full queue's loss record comes after the
/// last record, alone in the next read when nothing follows it, and
/// between the records when one does (pipe_read()'s `note_loss`); the room
/// a read makes is the queue's room again at once.
#[test]
fn shm_loss_records_come_where_pipe_read_puts_them() {
    let _serial = serial();
    let s = server();
    let r = Remote::connect(s.path(), true).unwrap();
    let key = add_key(&r, "k");
    // One note asked for: a page of them.
    let [rd, _wr] = watched_pipe(&r, key, 1);
    for _ in 0..33 {
        update(&r, key);
    }
    let d = r.read(rd.as_fd(), 4096).unwrap();
    assert_eq!(count(&d), (32, 0), "the records, then the loss waits");
    assert_eq!(count(&r.read(rd.as_fd(), 4096).unwrap()), (0, 1));
    assert_eq!(errno(r.read(rd.as_fd(), 4096)), Errno::EAGAIN);
    for _ in 0..33 {
        update(&r, key);
    }
    // One read makes room for one more record, after the loss.
    assert_eq!(r.read(rd.as_fd(), 16).unwrap().len(), 16);
    update(&r, key);
    let d = r.read(rd.as_fd(), 4096).unwrap();
    assert_eq!(count(&d), (32, 1));
    assert_eq!(d.len(), 31 * 16 + 8 + 16);
    assert_eq!(&d[31 * 16..31 * 16 + 8], &LOSS_BYTES);
    let st = r.stats(rd.as_fd()).unwrap();
    assert_eq!((st.posted, st.read, st.lost), (67, 65, 2), "{st:?}");
    assert_eq!((st.loss_records, st.queued), (2, 0), "{st:?}");
}

/// A loss record's bytes.
const LOSS_BYTES: [u8; 8] = [
    WATCH_TYPE_META as u8,
    0,
    0,
    WATCH_META_LOSS_NOTIFICATION,
    8,
    0,
    0,
    0,
];

/// tests/c/shmblind.c, compiled once.
fn shmblind_prog() -> PathBuf {
    static P: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    P.get_or_init(|| cc(&repo("tests/c/shmblind.c"), "shmblind"))
        .clone()
}

/// `watchq exec -- shmblind ARGS`: its stdout, once it exited 0.
fn run_shmblind(args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("30")
        .arg(watchq())
        .args(["exec", "--"])
        .arg(shmblind_prog())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A signal handler reads a mirrored pipe while the thread it interrupted
/// holds the preload's table of mirrors (raised from malloc while that
/// thread keeps a new mirror in the table): the table cannot be
/// consulted, and the kernel, which gave this connection the mirror,
/// says "look there". Every read returns the records, asked for by value,
/// as a real read would (issue 20 item 6: EIO before).
#[test]
fn shm_handler_reads_while_its_thread_holds_the_mirror_table() {
    assert_eq!(
        run_shmblind(&["handler", "200"]),
        "handler 1 eio 0 other 0 total 200\n"
    );
}

/// A process at its descriptor limit cannot receive a mirror's memfds
/// (SCM_RIGHTS drops them: EMFILE), and the kernel thinks it has them:
/// its reads still return every record, by value (EIO before).
#[test]
fn shm_reader_at_its_descriptor_limit_reads_every_record() {
    assert_eq!(run_shmblind(&["emfile", "20"]), "emfile read 20\n");
}

/// The Rust client's own read loop (`Remote::read`) at the descriptor
/// limit: the mirror's memfds cannot come, and every read still returns
/// its record, by value (EIO before).
#[test]
fn shm_client_at_its_descriptor_limit_reads_every_record() {
    let _serial = serial();
    let s = server();
    let r = Remote::connect(s.path(), true).unwrap();
    let key = add_key(&r, "k");
    let [rd, _wr] = watched_pipe(&r, key, 16);
    for _ in 0..10 {
        update(&r, key);
    }
    let path = s.path().to_path_buf();
    let rfd = rd.as_raw_fd();
    let kid = fork(move || {
        let c = Remote::connect(&path, true).unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid rlimit buffer.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        lim.rlim_cur = 64;
        // SAFETY: a valid rlimit; the child's own limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return 2;
        }
        // Every number under the limit taken.
        // SAFETY: dup of an open descriptor, kept for the child's life.
        while unsafe { libc::dup(0) } >= 0 {}
        // SAFETY: the inherited read end, open for the child's life.
        let rd = unsafe { BorrowedFd::borrow_raw(rfd) };
        for i in 0..10 {
            match c.read(rd, 16) {
                Ok(d) if d.len() == 16 => {}
                other => {
                    eprintln!("read {i}: {other:?}");
                    return 1;
                }
            }
        }
        match c.read(rd, 16) {
            Err(CallError::Errno(Errno::EAGAIN)) => 0,
            other => {
                eprintln!("then {other:?}");
                3
            }
        }
    });
    assert_eq!(wait(kid), 0);
}

/// A reader that cannot read the mirror (at its descriptor limit) takes
/// two records by value and cannot copy out the second (EFAULT): it
/// returns the first, and the second stays at the head of the queue, as
/// the kernel's pipe_read() leaves it. A reader in another process that
/// has the mirror mapped then sees it readable (poll and epoll) and reads
/// it before a record posted later (before: it read EAGAIN, the record
/// given back waiting for a by-value read).
#[test]
fn shm_records_given_back_by_a_blind_reader_come_first_for_every_reader() {
    assert_eq!(
        run_shmblind(&["efault"]),
        "efault 16 a poll 1 epoll 1 b c\n"
    );
}

/// The Rust client's read loop with the mirror mapped: a record taken by
/// value and given back (`Remote::unread`) is read before the mirror's,
/// which were posted after it, in the same read, as pipe_read() takes
/// every record that fits (before: the mirror's came first, and the one
/// given back in a read of its own).
#[test]
fn shm_client_reads_records_given_back_before_the_mirrors() {
    let _serial = serial();
    let s = server();
    let r = Remote::connect(s.path(), true).unwrap();
    let (a, b) = (add_key(&r, "a"), add_key(&r, "b"));
    let [rd, _wr] = watched_pipe(&r, a, 16);
    kc(&r, cmd::WATCH_KEY, [b as u64, 0, 2, 0], Some(rd.as_fd()));
    let keys = |d: &[u8]| -> Vec<i32> {
        d.chunks(16)
            .map(|rec| i32::from_ne_bytes(rec[8..12].try_into().unwrap()))
            .collect()
    };
    // A first read maps the mirror here.
    update(&r, a);
    assert_eq!(r.read(rd.as_fd(), 16).unwrap().len(), 16);
    update(&r, a);
    update(&r, b);
    assert_eq!(keys(&r.read_value(rd.as_fd(), 32).unwrap()), [a, b]);
    r.unread(rd.as_fd(), 16).unwrap();
    update(&r, a);
    update(&r, b);
    // Room for two: the one given back and the first of the mirror's.
    assert_eq!(keys(&r.read(rd.as_fd(), 32).unwrap()), [b, a]);
    assert_eq!(keys(&r.read(rd.as_fd(), 64).unwrap()), [b]);
    assert_eq!(errno(r.read(rd.as_fd(), 64)), Errno::EAGAIN);
    // Given back again, in a read too small for the rest.
    update(&r, a);
    assert_eq!(keys(&r.read_value(rd.as_fd(), 16).unwrap()), [a]);
    r.unread(rd.as_fd(), 16).unwrap();
    update(&r, b);
    assert_eq!(keys(&r.read(rd.as_fd(), 16).unwrap()), [a]);
    assert_eq!(keys(&r.read(rd.as_fd(), 16).unwrap()), [b]);
    assert_eq!(errno(r.read(rd.as_fd(), 64)), Errno::EAGAIN);
    assert!(!poll_in(rd.as_fd(), 0), "stale readiness bytes");
}

/// Records given back with a loss behind them: the loss record comes in
/// the read after them, as pipe_read() emits it after other records only
/// when a record follows (before the fix of records given back, both
/// came in one read).
#[test]
fn shm_a_loss_behind_records_given_back_waits_for_the_next_read() {
    let _serial = serial();
    let s = server();
    let r = Remote::connect(s.path(), true).unwrap();
    let a = add_key(&r, "a");
    let [rd, _wr] = watched_pipe(&r, a, 1);
    // A first read maps the mirror here.
    update(&r, a);
    assert_eq!(r.read(rd.as_fd(), 16).unwrap().len(), 16);
    for _ in 0..40 {
        update(&r, a);
    }
    let taken = r.read_value(rd.as_fd(), 4096).unwrap();
    let (n, lost) = count(&taken);
    assert!(n > 0 && n < 40 && lost == 0, "{n} {lost}");
    r.unread(rd.as_fd(), taken.len()).unwrap();
    assert_eq!(r.read(rd.as_fd(), 4096).unwrap(), taken);
    assert_eq!(count(&r.read(rd.as_fd(), 4096).unwrap()), (0, 1));
    assert_eq!(errno(r.read(rd.as_fd(), 64)), Errno::EAGAIN);
    assert!(!poll_in(rd.as_fd(), 0), "stale readiness bytes");
}

//! `watchq demo`: a consumer reading key notifications from an emulated
//! notification pipe, printed as the kernel's sample consumer prints them
//! and in hex.
//!
//! The consumer (pid 1) creates the pipe, sizes it to one note (so one page
//! of 32 records), installs the sample's KEY-only filter, and watches its
//! session keyring (tag 1). A second process forked from it (so it shares
//! the session keyring) adds a key, which the consumer then also watches
//! (tag 2), updates it, changes its permissions, links and unlinks it,
//! bursts 40 updates into the full queue, revokes it, and lets the
//! collector destroy it. The consumer reads with the sample's odd 433-byte
//! buffer and prints each record, the loss record and the removal record,
//! then the queue's statistics.

use crate::format::{render, Format};
use std::fmt::Write as _;
use watchq_core::uapi::*;
use watchq_core::{Errno, Notification, Result};
use watchq_kernel::prelude::*;
use watchq_kernel::{Kernel, KernelConfig, PollFd};
use watchq_sources::keys::{KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING};

/// The sample consumer's read() size.
const READ_SIZE: usize = 433;

/// Runs the demo scenario and returns what it prints.
///
/// # Errors
/// Any errno a step meets (none on a correct emulation).
pub fn run() -> Result<String> {
    let mut out = String::new();
    let kernel = Kernel::new(KernelConfig::default());
    let consumer = kernel.spawn(1000, 1000);
    let session = consumer.keyctl_join_session_keyring(None)?;
    let [rfd, wfd] = consumer.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK)?;
    consumer.set_queue_size(rfd, 1)?;
    let mut key_only = RawWatchNotificationTypeFilter {
        type_: WATCH_TYPE_KEY_NOTIFY,
        ..Default::default()
    };
    key_only.subtype_filter[0] = u32::MAX;
    consumer.set_queue_filter(rfd, Some(&filter_blob(&[key_only])))?;
    consumer.keyctl_watch_key(KEY_SPEC_SESSION_KEYRING, rfd, 1)?;
    let _ = writeln!(
        out,
        "# consumer pid {}: notification pipe fds {rfd},{wfd}, SET_SIZE(1) = {} records, \
         KEY-only filter, watching session keyring {session:#x} with tag 1",
        consumer.pid(),
        consumer.watch_queue(rfd)?.capacity()
    );

    let actor = consumer.fork();
    let key = actor.add_key(
        "user",
        Some("demo:token"),
        b"secret-1",
        KEY_SPEC_SESSION_KEYRING,
    )?;
    consumer.keyctl_watch_key(key, rfd, 2)?;
    let user_ring = actor.keyctl_get_keyring_id(KEY_SPEC_USER_KEYRING, true)?;
    let _ = writeln!(
        out,
        "# actor pid {} added user key {key:#x} \"demo:token\"; consumer watches it with tag 2",
        actor.pid()
    );
    let step = |out: &mut String, what: &str, r: Result<()>| {
        let _ = writeln!(
            out,
            "# {what} = {}",
            r.map_or_else(|e| format!("-1 {}", e.name()), |()| "0".into())
        );
    };
    step(
        &mut out,
        "keyctl(UPDATE, key, \"secret-2\")",
        actor.keyctl_update(key, b"secret-2"),
    );
    step(
        &mut out,
        "keyctl(SETPERM, key, 0x3f010000)",
        actor.keyctl_setperm(key, 0x3f01_0000),
    );
    step(
        &mut out,
        "keyctl(LINK, key, @u)",
        actor.keyctl_link(key, user_ring),
    );
    step(
        &mut out,
        "keyctl(UNLINK, key, @u)",
        actor.keyctl_unlink(key, user_ring),
    );
    drain(&consumer, rfd, &mut out)?;

    let _ = writeln!(
        out,
        "# burst: 40 x keyctl(UPDATE) into a queue that holds 32"
    );
    for _ in 0..40 {
        actor.keyctl_update(key, b"burst")?;
    }
    drain(&consumer, rfd, &mut out)?;

    step(&mut out, "keyctl(REVOKE, key)", actor.keyctl_revoke(key));
    step(
        &mut out,
        "keyctl(UNLINK, key, @s) (last link: the collector destroys the key)",
        actor.keyctl_unlink(key, KEY_SPEC_SESSION_KEYRING),
    );
    drain(&consumer, rfd, &mut out)?;

    let s = consumer.queue_stats(rfd)?;
    let _ = writeln!(
        out,
        "# queue statistics: posted={} read={} lost={} (loss records={}) filtered={} denied={} queued={}",
        s.posted, s.read, s.lost, s.loss_records, s.filtered, s.denied, s.queued
    );
    actor.exit();
    consumer.exit();
    Ok(out)
}

/// Reads until EAGAIN and a poll finds nothing more (the wait that lets the
/// key collector post its removal records), printing like the kernel's
/// sample consumer; a run of records identical to the one before is
/// summarised in one line.
fn drain(p: &watchq_kernel::Process, fd: i32, out: &mut String) -> Result<()> {
    let mut buf = [0u8; READ_SIZE];
    let mut prev: Option<Notification> = None;
    let mut same = 0usize;
    let flush = |out: &mut String, same: &mut usize| {
        if *same > 0 {
            let _ = writeln!(out, "  ... {same} more identical record(s)");
            *same = 0;
        }
    };
    loop {
        let n = match p.read(fd, &mut buf) {
            Ok(n) => n,
            Err(Errno::EAGAIN) => {
                if p.poll(&mut [PollFd::new(fd, POLLIN)], 0)? > 0 {
                    continue;
                }
                flush(out, &mut same);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        flush(out, &mut same);
        let _ = writeln!(out, "read() = {n}");
        if n == 0 {
            let _ = writeln!(out, "-- END --");
            return Ok(());
        }
        let mut off = 0;
        while off < n {
            let rec = Notification::decode(&buf[off..n])?;
            off += rec.len();
            if prev.is_some_and(|p| p.as_bytes() == rec.as_bytes()) {
                same += 1;
                continue;
            }
            flush(out, &mut same);
            for line in render(&rec, off - rec.len(), Format::Sample) {
                let _ = writeln!(out, "{line}");
            }
            prev = Some(rec);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_prints_records_loss_and_removal_deterministically() {
        let a = super::run().unwrap();
        assert_eq!(a, super::run().unwrap(), "the demo is deterministic");
        for needle in [
            "KEY 10000001 change=2[linked] aux=268435458",
            "  hex: 01 00 00 01 10 02 00 00 02 00 00 10 00 00 00 00",
            "read() = 432",
            "-- LOSS --\n  hex: 00 00 00 01 08 00 00 00",
            "REMOVAL of watchpoint 00000002 id=268435458",
            "posted=46 read=38 lost=8 (loss records=1)",
        ] {
            assert!(a.contains(needle), "missing {needle:?} in\n{a}");
        }
    }
}

//! The system-call workloads: a record through the emulated kernel's
//! read() against a real pipe(2), per record and per read()-sized batch,
//! and a blocking reader under a streaming producer (the wake-ups it
//! pays).

use crate::{per_batch, st_pair, Mode, Peer, CAPACITY, READ_BUF};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};
use watchq_core::uapi::{O_NONBLOCK, O_NOTIFICATION_PIPE};
use watchq_core::{Notification, ReadMode, WatchQueue};
use watchq_kernel::prelude::*;

/// An emulated process with a sized, non-blocking notification pipe:
/// `f` gets the process, the read end and its queue.
fn with_emulated_pipe<R>(f: impl FnOnce(&watchq_kernel::Process, i32, &WatchQueue) -> R) -> R {
    let k = watchq_kernel::Kernel::new(watchq_kernel::KernelConfig::default());
    let p = k.spawn(1000, 1000);
    let [r, _w] = p
        .pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK)
        .expect("a notification pipe");
    p.set_queue_size(r, CAPACITY as u64).expect("512 notes");
    let q = p.watch_queue(r).expect("its queue");
    f(&p, r, &q)
}

/// `syscall/read`, watchq: a record posted to an emulated notification
/// pipe and one emulated `read()` of it through `Kernel`, `iters` times.
pub fn emulated_read(iters: u64) -> Duration {
    with_emulated_pipe(|p, r, q| {
        let n = Notification::key(3, 7, 0);
        let mut buf = [0u8; 16];
        let start = Instant::now();
        for _ in 0..iters {
            q.post(&n);
            let got = p.read(r, &mut buf);
            debug_assert_eq!(got, Ok(16));
            std::hint::black_box(got.ok());
        }
        start.elapsed()
    })
}

/// `syscall/read_batch`, watchq: a read()-sized batch of records (256 of
/// 16 bytes) posted to an emulated notification pipe, then one emulated
/// `read()` of 4096 bytes taking them all; `iters` records in all.
pub fn emulated_read_batch(iters: u64) -> Duration {
    with_emulated_pipe(|p, r, q| {
        let n = Notification::key(3, 7, 0);
        let k = per_batch(16) as u64;
        let rounds = iters.div_ceil(k);
        let mut buf = [0u8; READ_BUF];
        let start = Instant::now();
        for _ in 0..rounds {
            for _ in 0..k {
                q.post(&n);
            }
            let got = p.read(r, &mut buf);
            debug_assert_eq!(got, Ok(k as usize * 16));
            std::hint::black_box(got.ok());
        }
        start.elapsed().mul_f64(iters as f64 / (rounds * k) as f64)
    })
}

/// `syscall/read`, the peer: a 16-byte `write(2)` and `read(2)` on a real pipe.
pub fn real_pipe_read(iters: u64) -> Duration {
    st_pair(Peer::Pipe, 16, Mode::PerRecord, iters)
}

/// `syscall/read_batch`, the peer: 256 16-byte `write(2)`s, then one
/// `read(2)` of 4096 bytes on a real pipe.
pub fn real_pipe_read_batch(iters: u64) -> Duration {
    st_pair(Peer::Pipe, 16, Mode::Batch, iters)
}

/// What a blocking consumer under a streaming producer saw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Wakeups {
    /// Records the consumer read.
    pub records: u64,
    /// Times the sleeping consumer was woken.
    pub wakeups: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Wakeups {
    /// Records per wake-up (records if there was none).
    pub fn records_per_wakeup(&self) -> f64 {
        self.records as f64 / self.wakeups.max(1) as f64
    }

    /// The report's line for `block/wakeups` against its target (at least
    /// 64 records per wake-up).
    pub fn line(&self) -> String {
        let r = self.records_per_wakeup();
        format!(
            "block/wakeups: {} records read, {} wake-ups: {r:.0} records per wake-up (target ≥ 64: {})\n",
            self.records,
            self.wakeups,
            if r >= 64.0 { "met" } else { "not met" }
        )
    }
}

/// `block/wakeups`: a producer posts `iters` key records to a queue as
/// fast as it can (a full queue loses them, as in the kernel) while a
/// consumer reads with blocking `read()`s of 4 KiB.
pub fn wakeups(iters: u64) -> Wakeups {
    let q = WatchQueue::new();
    q.set_size(CAPACITY as u64).expect("512 notes");
    let done = AtomicBool::new(false);
    let n = Notification::key(3, 7, 0);
    let start = Barrier::new(2);
    let before = q.rd_wait().wakeups();
    let (records, elapsed) = thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            for _ in 0..iters {
                q.post(&n);
            }
            done.store(true, Ordering::Release);
            q.wake_readers();
        });
        let mut buf = [0u8; 4096];
        let mode = ReadMode {
            nonblock: false,
            deadline: None,
        };
        start.wait();
        let t0 = Instant::now();
        let writers = || !done.load(Ordering::Acquire);
        while let Ok(1..) = q.read(&mut buf, mode, &writers) {}
        (q.stats().read, t0.elapsed())
    });
    let w = Wakeups {
        records,
        wakeups: q.rd_wait().wakeups() - before,
        elapsed,
    };
    q.clear();
    w
}

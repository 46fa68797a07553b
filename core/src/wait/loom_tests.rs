//! loom models of the sleep/wake protocol: a reader registering to sleep
//! while a producer publishes and wakes. A lost wake-up leaves the reader
//! parked with nobody left to unpark it, which loom reports as a deadlock;
//! `loom_wait_check_before_register_loses_wakeup` shows that it does, on a
//! reader that skips the re-check after registering.

use super::*;
use crate::loom_tests::model;
use crate::queue::{ReadMode, WatchQueue};
use crate::record::{Notification, LOSS_RECORD};
use crate::ring::pipe::PipeRing;
use crate::ring::PostOutcome;
use crate::sync::thread;

fn rec(id: u8) -> [u8; 16] {
    let mut r = [0u8; 16];
    r[0] = 1;
    r[4] = 16;
    r[8] = id;
    r
}

/// A post racing a reader going to sleep on the pipe ring (the readiness
/// check is `has_published`, Relaxed loads ordered by the register fence):
/// the reader wakes and finds the record.
#[test]
fn loom_wait_post_wakes_sleeping_reader() {
    model(|| {
        let ring = Arc::new(PipeRing::new(1).unwrap());
        let wq = Arc::new(WaitQueue::new());
        let reader = {
            let (ring, wq) = (ring.clone(), wq.clone());
            thread::spawn(move || wq.wait_until(None, || ring.has_published()))
        };
        assert_eq!(ring.try_post(&rec(1)), PostOutcome::Posted);
        wq.wake();
        assert!(reader.join().unwrap());
        assert_eq!(wq.sleepers(), 0);
    });
}

/// Two readers sleep on one wait queue while two posts each wake: both
/// readers wake (a wake reaches every registered sleeper, and a reader
/// that registered after a wake sees its record).
#[test]
fn loom_wait_two_sleepers_two_posts() {
    model(|| {
        let ring = Arc::new(PipeRing::new(2).unwrap());
        let wq = Arc::new(WaitQueue::new());
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (ring, wq) = (ring.clone(), wq.clone());
                thread::spawn(move || wq.wait_until(None, || ring.has_published()))
            })
            .collect();
        for id in 1..=2 {
            assert_eq!(ring.try_post(&rec(id)), PostOutcome::Posted);
            wq.wake();
        }
        for r in readers {
            assert!(r.join().unwrap());
        }
    });
}

/// A thread in the queue's blocking read() (64 bytes of room): what it
/// returned.
fn blocking_reader(q: &Arc<WatchQueue>) -> thread::JoinHandle<crate::Result<Vec<u8>>> {
    let q = q.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mode = ReadMode {
            nonblock: false,
            deadline: None,
        };
        q.read(&mut buf, mode, &|| true).map(|n| buf[..n].to_vec())
    })
}

/// The queue's own blocking read() against a post (the path a program's
/// read() takes): the read returns the record, never sleeps through it.
#[test]
fn loom_wait_blocking_read_races_post() {
    model(|| {
        let q = WatchQueue::new();
        q.set_size(1).unwrap();
        let reader = blocking_reader(&q);
        let n = Notification::key(1, 0x1234, 0);
        assert_eq!(q.post(&n), PostOutcome::Posted);
        assert_eq!(reader.join().unwrap().unwrap(), n.as_bytes());
    });
}

/// The end-count pattern of the kernel's pipes (emu-dev/kernel/src/pipe.rs:
/// `release_end` drops the writer count and wakes; a reader sleeps until
/// `writers() == 0`), with the count Relaxed as there: the register fence
/// and the wake's fence order it, so the reader sees the last writer go.
#[test]
fn loom_wait_last_writer_wakes_reader() {
    model(|| {
        let writers = Arc::new(AtomicUsize::new(1));
        let wq = Arc::new(WaitQueue::new());
        let reader = {
            let (writers, wq) = (writers.clone(), wq.clone());
            // Relaxed: as the kernel's `Pipe::writers`.
            thread::spawn(move || wq.wait_until(None, || writers.load(Ordering::Relaxed) == 0))
        };
        // Relaxed: as the kernel's `Pipe::release_end`.
        if writers.fetch_sub(1, Ordering::Relaxed) == 1 {
            wq.wake();
        }
        assert!(reader.join().unwrap());
    });
}

/// The broken protocol, to show the models catch a lost wake-up: a reader
/// that checks readiness and then registers without checking again goes
/// to sleep through a post that came between its check and its register.
/// (The sleep is not taken here: loom reports a thread parked for good as
/// a deadlock, and its unwinding of the parked thread aborts the test
/// binary, so the model asserts that a reader that would sleep has a
/// wake-up coming instead.)
#[test]
#[should_panic(expected = "lost wake-up")]
fn loom_wait_check_before_register_loses_wakeup() {
    model(|| {
        let ring = Arc::new(PipeRing::new(1).unwrap());
        let wq = Arc::new(WaitQueue::new());
        let reader = {
            let (ring, wq) = (ring.clone(), wq.clone());
            thread::spawn(move || {
                if ring.has_published() {
                    return None;
                }
                let w = Waiter::current();
                wq.register(&w);
                Some(w)
            })
        };
        assert_eq!(ring.try_post(&rec(1)), PostOutcome::Posted);
        wq.wake();
        if let Some(w) = reader.join().unwrap() {
            // Acquire: pairs with the Release store in `Waiter::wake`.
            assert!(w.woken.load(Ordering::Acquire), "lost wake-up");
        }
    });
}

/// A reader asleep on an empty queue of one record's room while the main
/// thread posts a record, posts another that is lost (each post wakes the
/// sleeper), and then reads the record itself before the sleeper looks:
/// the sleeper finds no record but a loss record owed, and must wake for
/// it (`WatchQueue::loss_pending` in its wake condition) rather than sleep
/// again with no post left to wake it (loom's deadlock). Between them the
/// two readers get the record and the loss record, or, when the sleeper's
/// read made room first, both records; never the loss record twice.
#[test]
fn loom_wait_sleeper_wakes_for_loss_another_reader_left() {
    model(|| {
        let q = WatchQueue::new();
        q.set_capacity_for_loom(1).unwrap();
        let sleeper = blocking_reader(&q);
        let (a, b) = (Notification::key(1, 1, 0), Notification::key(2, 2, 0));
        assert_eq!(q.post(&a), PostOutcome::Posted);
        let second = q.post(&b);
        let mut buf = [0u8; 64];
        let mode = ReadMode {
            nonblock: true,
            deadline: None,
        };
        let n = q.read(&mut buf, mode, &|| true).unwrap();
        let mut got = vec![buf[..n].to_vec(), sleeper.join().unwrap().unwrap()];
        got.sort();
        let mut want = vec![
            a.as_bytes().to_vec(),
            match second {
                PostOutcome::Posted => b.as_bytes().to_vec(),
                PostOutcome::Lost => LOSS_RECORD.to_vec(),
            },
        ];
        want.sort();
        assert_eq!(got, want);
        let s = q.stats();
        assert_eq!(s.read + s.lost, 2);
        assert_eq!(s.loss_records, s.lost);
    });
}

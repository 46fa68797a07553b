//! Multi-producer stress: producers post while a reader reads, for queue
//! sizes from 1 to 512 notes. Every posted record is read exactly once,
//! untorn, in per-producer order, or is covered by a loss record between
//! its producer's neighbouring records; the statistics add up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use watchq_core::uapi::{O_NONBLOCK, O_NOTIFICATION_PIPE};
use watchq_core::{Errno, Notification};
use watchq_kernel::prelude::*;
use watchq_kernel::{Kernel, KernelConfig};

const PRODUCERS: u32 = 3;
const PER_PRODUCER: u32 = 40_000;

/// One item of the read stream.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Item {
    Rec { producer: u32, seq: u32 },
    Loss,
}

fn run(notes: u64, read_len: usize) {
    let k = Kernel::new(KernelConfig::default());
    let p = k.spawn(0, 0);
    let [r, _w] = p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
    p.set_queue_size(r, notes).unwrap();
    let q = p.watch_queue(r).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let q = q.clone();
            thread::spawn(move || {
                let mut posted = Vec::new();
                for seq in 0..PER_PRODUCER {
                    // Producer id in the subtype and aux, the sequence in key_id:
                    // a torn record would disagree with itself.
                    let n = Notification::key(id as u8, seq, id);
                    if q.post(&n) == watchq_core::PostOutcome::Posted {
                        posted.push(seq);
                    }
                }
                posted
            })
        })
        .collect();
    let reader = {
        let p = p.clone();
        let done = done.clone();
        thread::spawn(move || {
            let mut items = Vec::new();
            let mut buf = vec![0u8; read_len];
            loop {
                let finished = done.load(Ordering::Acquire);
                match p.read(r, &mut buf) {
                    Ok(n) => {
                        for rec in Notification::decode_all(&buf[..n]).expect("whole records") {
                            if rec.is_meta() {
                                assert_eq!(rec.as_bytes(), [0, 0, 0, 1, 8, 0, 0, 0]);
                                items.push(Item::Loss);
                            } else {
                                let (seq, aux) = rec.key_fields().unwrap();
                                assert_eq!(rec.subtype() as u32, aux, "torn record");
                                items.push(Item::Rec { producer: aux, seq });
                            }
                        }
                    }
                    Err(Errno::EAGAIN) if finished => return items,
                    Err(Errno::EAGAIN) => thread::yield_now(),
                    Err(e) => panic!("read: {e}"),
                }
            }
        })
    };
    let posted: Vec<Vec<u32>> = producers.into_iter().map(|h| h.join().unwrap()).collect();
    done.store(true, Ordering::Release);
    let items = reader.join().unwrap();

    let stats = q.stats();
    let total = u64::from(PRODUCERS * PER_PRODUCER);
    assert_eq!(stats.posted, total);
    assert_eq!(stats.read + stats.lost, total, "{stats:?}");
    assert_eq!(stats.queued, 0);
    let losses = items.iter().filter(|i| **i == Item::Loss).count() as u64;
    assert_eq!(losses, stats.loss_records);
    assert_eq!(losses > 0, stats.lost > 0, "{stats:?}");

    for id in 0..PRODUCERS {
        // Positions of this producer's records in the stream, in order.
        let mine: Vec<(usize, u32)> = items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| match *it {
                Item::Rec { producer, seq } if producer == id => Some((i, seq)),
                _ => None,
            })
            .collect();
        let seqs: Vec<u32> = mine.iter().map(|&(_, s)| s).collect();
        assert_eq!(
            seqs, posted[id as usize],
            "producer {id}: read exactly what was posted, in order"
        );
        // Every gap (lost records) has a loss record between the records around it.
        let loss_between = |from: usize, to: usize| items[from..to].contains(&Item::Loss);
        let mut prev: Option<(usize, u32)> = None;
        for &(pos, seq) in &mine {
            let expected = prev.map_or(0, |(_, s)| s + 1);
            if seq != expected {
                let from = prev.map_or(0, |(p, _)| p);
                assert!(
                    loss_between(from, pos),
                    "producer {id}: gap before seq {seq} not covered"
                );
            }
            prev = Some((pos, seq));
        }
        if prev.is_none_or(|(_, s)| s + 1 != PER_PRODUCER) {
            let from = prev.map_or(0, |(p, _)| p);
            assert!(
                loss_between(from, items.len()),
                "producer {id}: trailing loss not covered"
            );
        }
    }
}

#[test]
fn stress_small_queue_many_losses() {
    run(1, 4096);
}

#[test]
fn stress_odd_size_small_reads() {
    run(65, 40);
}

#[test]
fn stress_largest_queue() {
    run(512, 1 << 16);
}

#[test]
fn stress_sizes_sweep() {
    for notes in [2, 33, 100, 300] {
        run(notes, 4096);
    }
}

/// A policy that panics on every record a process labelled `boom` causes:
/// a producer that dies in the middle of a post (in the policy hook,
/// between the watch list's walk and the ring).
struct PanicOnBoom;

impl watchq_core::Policy for PanicOnBoom {
    fn name(&self) -> &str {
        "panic-on-boom"
    }

    fn post_notification(
        &self,
        _watcher: &watchq_core::lsm::Cred,
        source: &watchq_core::lsm::Cred,
        _n: &Notification,
    ) -> watchq_core::lsm::Verdict {
        if source.label() == Some("boom") {
            panic!("the policy hook panics");
        }
        Ok(())
    }
}

/// A panic in a producer thread (here in the policy hook the post path
/// calls, with the key's and the watch list's state in hand) blocks no
/// other producer and not the reader: two producers keep posting while
/// panicking producers come and go, the reader reads every record the
/// two posted, and the queue and the key go on working afterwards.
#[test]
fn stress_producer_panic_blocks_no_one() {
    use watchq_kernel::keys::KEY_SPEC_SESSION_KEYRING;
    const POSTS: u32 = 2_000;
    let k = Kernel::new(KernelConfig::default());
    k.set_policy(Arc::new(PanicOnBoom));
    let p = k.spawn(0, 0);
    p.keyctl_join_session_keyring(None).unwrap();
    let [r, _w] = p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
    p.set_queue_size(r, 256).unwrap();
    let key = p
        .add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    p.keyctl_watch_key(key, r, 1).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    // The panicking producers: each updates the key once and dies in the
    // hook, over and over while the others post.
    let boom = {
        let p = p.fork();
        p.set_label(Some("boom"));
        let done = done.clone();
        thread::spawn(move || {
            let mut panics = 0u32;
            while !done.load(Ordering::Acquire) || panics == 0 {
                let p = p.clone();
                let died = thread::spawn(move || p.keyctl_update(key, b"boom")).join();
                assert!(died.is_err(), "the hook panicked");
                panics += 1;
            }
            panics
        })
    };
    let producers: Vec<_> = (0..2)
        .map(|_| {
            let p = p.fork();
            thread::spawn(move || {
                for _ in 0..POSTS {
                    p.keyctl_update(key, b"ok").unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let p = p.clone();
        let done = done.clone();
        thread::spawn(move || {
            let (mut records, mut losses) = (0u32, 0u32);
            let mut buf = vec![0u8; 4096];
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                assert!(std::time::Instant::now() < deadline, "the reader is stuck");
                let finished = done.load(Ordering::Acquire);
                match p.read(r, &mut buf) {
                    Ok(n) => {
                        for rec in Notification::decode_all(&buf[..n]).unwrap() {
                            if rec.is_meta() {
                                losses += 1;
                            } else {
                                records += 1;
                            }
                        }
                    }
                    Err(Errno::EAGAIN) if finished => return (records, losses),
                    Err(Errno::EAGAIN) => thread::yield_now(),
                    Err(e) => panic!("read: {e}"),
                }
            }
        })
    };
    for h in producers {
        h.join()
            .expect("a producer beside the panicking ones finished");
    }
    done.store(true, Ordering::Release);
    let panics = boom.join().unwrap();
    let (records, losses) = reader.join().unwrap();
    let stats = p.watch_queue(r).unwrap().stats();
    // Every update the two made was posted (none is lost for good without
    // a loss record), and the panicking posts never reached the ring.
    assert_eq!(stats.posted, u64::from(2 * POSTS), "{stats:?}");
    assert_eq!(u64::from(records) + stats.lost, u64::from(2 * POSTS));
    assert_eq!(losses > 0, stats.lost > 0);
    assert!(panics > 0);
    // Afterwards the key and the queue work as before.
    p.keyctl_update(key, b"after").unwrap();
    let n = p.read(r, &mut [0u8; 64]).unwrap();
    assert_eq!(n, 16);
}

/// Several threads read one queue (blocking reads of one descriptor)
/// while others post, and one closes it (both ends) under them: every
/// record is read at most once, whole, in its producer's order for each
/// reader; every reader ends (end of file, or EBADF once the descriptor
/// is gone) and none is left asleep (the alarm bounds each sleep: EINTR
/// fails the test); posts after the last reference went are counted
/// after close; the books balance.
#[test]
fn stress_readers_posters_and_a_closer() {
    const READERS: usize = 3;
    const POSTERS: u32 = 2;
    for round in 0..10 {
        let k = Kernel::new(KernelConfig::default());
        let p = k.spawn(0, 0);
        let [r, w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
        p.set_queue_size(r, 8).unwrap();
        p.set_alarm(Some(std::time::Duration::from_secs(20)));
        let q = p.watch_queue(r).unwrap();
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let p = p.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 256];
                    loop {
                        match p.read(r, &mut buf) {
                            Ok(0) | Err(Errno::EBADF) => return got,
                            Ok(n) => {
                                for rec in Notification::decode_all(&buf[..n]).expect("whole") {
                                    if !rec.is_meta() {
                                        let (seq, aux) = rec.key_fields().unwrap();
                                        assert_eq!(rec.subtype() as u32, aux, "torn record");
                                        got.push((aux, seq));
                                    }
                                }
                            }
                            Err(e) => panic!("read: {e}"),
                        }
                    }
                })
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let posters: Vec<_> = (0..POSTERS)
            .map(|id| {
                let (q, stop) = (q.clone(), stop.clone());
                thread::spawn(move || {
                    let mut seq = 0;
                    while !stop.load(Ordering::Acquire) {
                        q.post(&Notification::key(id as u8, seq, id));
                        seq += 1;
                        if seq % 64 == 0 {
                            thread::yield_now();
                        }
                    }
                    seq
                })
            })
            .collect();
        thread::sleep(std::time::Duration::from_millis(2 + round));
        p.close(w).unwrap();
        p.close(r).unwrap();
        let got: Vec<Vec<(u32, u32)>> = readers.into_iter().map(|h| h.join().unwrap()).collect();
        // Posts go on after the last reader let go (until one is counted
        // after the close).
        let bound = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while q.stats().after_close == 0 && std::time::Instant::now() < bound {
            thread::yield_now();
        }
        stop.store(true, Ordering::Release);
        let posts: u32 = posters.into_iter().map(|h| h.join().unwrap()).sum();
        for g in &got {
            for id in 0..POSTERS {
                let mine: Vec<u32> = g.iter().filter(|r| r.0 == id).map(|r| r.1).collect();
                assert!(
                    mine.windows(2).all(|w| w[0] < w[1]),
                    "a reader saw producer {id} out of order"
                );
            }
        }
        let mut all: Vec<(u32, u32)> = got.iter().flatten().copied().collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a record read twice");
        let s = q.stats();
        assert_eq!(s.posted + s.after_close, u64::from(posts), "{s:?}");
        assert!(s.after_close > 0, "posts went on after the close: {s:?}");
        assert_eq!(s.read, n as u64, "{s:?}");
        assert_eq!(s.posted, s.read + s.lost + s.queued + s.discarded, "{s:?}");
    }
}

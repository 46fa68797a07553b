//! loom models of [`MmapRing`]: claims across the wrap, publication vs the
//! consumer's acquire of head, a SKIP record racing the consumer, and a
//! garbage tail written while a producer posts. Rings of 16 slots (13 for
//! records), records of 3 slots whose payload repeats an id (a torn record
//! would not). Slot reads and writes are also checked by loom through
//! `HeapStorage`'s shadow cells, so a missing Release/Acquire on `head` or
//! `tail` fails a model (checked by weakening each; see the closing note).

use super::*;
use crate::loom_tests::model;
use crate::sync::{thread, Arc};

fn rec(id: u32) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&WATCH_TYPE_KEY_NOTIFY.to_le_bytes());
    r.extend_from_slice(&24u32.to_le_bytes());
    for _ in 0..4 {
        r.extend_from_slice(&id.to_le_bytes());
    }
    r
}

fn id_of(r: &RingRecord) -> u32 {
    let w: Vec<u32> = r.bytes[8..]
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(w.iter().all(|&x| x == w[0]), "torn record {:?}", r.bytes);
    w[0]
}

fn ring() -> Arc<MmapRing<HeapStorage>> {
    Arc::new(MmapRing::new(HeapStorage::new(128).unwrap()).unwrap())
}

/// Posts `n` records and consumes them, leaving head = tail = 3 + 3n.
fn advance(r: &MmapRing<HeapStorage>, n: u32) {
    let mut c = Consumer::of(r.storage()).unwrap();
    for i in 0..n {
        assert_eq!(r.try_post(&rec(100 + i)), PostOutcome::Posted);
        assert!(c.pop().unwrap().is_some());
    }
}

fn drain(r: &MmapRing<HeapStorage>) -> Vec<u32> {
    let mut c = Consumer::of(r.storage()).unwrap();
    std::iter::from_fn(|| c.pop().unwrap())
        .map(|x| id_of(&x))
        .collect()
}

/// Two producers claim at once with head one slot before the end: one
/// wraps (SKIP + header + record), the other lands after it; both records
/// are read, in claim order, untorn.
#[test]
fn loom_mmap_two_producers_claim_across_wrap() {
    model(|| {
        let r = ring();
        advance(&r, 4); // head = tail = 15
        let hs: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|id| {
                let r = r.clone();
                thread::spawn(move || r.try_post(&rec(id)))
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), PostOutcome::Posted);
        }
        let mut got = drain(&r);
        assert_eq!(got.len(), 2);
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_eq!(r.head(), 15 + 1 + 3 + 3 + 3);
    });
}

/// A consumer reading while a producer posts two records sees a prefix,
/// never a record head does not yet cover; the rest is read afterwards.
#[test]
fn loom_mmap_publish_vs_consumer_acquire() {
    model(|| {
        let r = ring();
        let p = {
            let r = r.clone();
            thread::spawn(move || [r.try_post(&rec(1)), r.try_post(&rec(2))])
        };
        let mut got = Vec::new();
        {
            let mut c = Consumer::of(r.storage()).unwrap();
            for _ in 0..2 {
                if let Some(x) = c.pop().unwrap() {
                    got.push(id_of(&x));
                }
            }
        }
        assert_eq!(p.join().unwrap(), [PostOutcome::Posted; 2]);
        got.extend(drain(&r));
        assert_eq!(got, [1, 2]);
    });
}

/// A producer wraps (writing a SKIP record and the header) while the
/// consumer reads the two records before the wrap.
#[test]
fn loom_mmap_skip_races_consumer() {
    model(|| {
        let r = ring();
        advance(&r, 2); // head = tail = 9
        assert_eq!(r.try_post(&rec(10)), PostOutcome::Posted); // 9..12
        assert_eq!(r.try_post(&rec(11)), PostOutcome::Posted); // 12..15
        let p = {
            let r = r.clone();
            thread::spawn(move || r.try_post(&rec(12))) // wraps: needs tail >= 6
        };
        let mut got = Vec::new();
        {
            let mut c = Consumer::of(r.storage()).unwrap();
            if let Some(x) = c.pop().unwrap() {
                got.push(id_of(&x));
            }
        }
        assert_eq!(p.join().unwrap(), PostOutcome::Posted);
        got.extend(drain(&r));
        assert_eq!(got, [10, 11, 12]);
    });
}

/// The consumer writes a garbage tail (inside the header) and then a sane
/// one while a producer posts: the post is lost or lands whole; a lost post
/// marks the next record with OVERRUN.
#[test]
fn loom_mmap_garbage_tail_vs_post() {
    model(|| {
        let r = ring();
        let sane = r.tail();
        let scribbler = {
            let r = r.clone();
            thread::spawn(move || {
                let w = r.storage().words();
                w[TAIL_WORD].store(1, Ordering::Release);
                w[TAIL_WORD].store(sane, Ordering::Release);
            })
        };
        let first = r.try_post(&rec(1));
        scribbler.join().unwrap();
        assert_eq!(r.try_post(&rec(2)), PostOutcome::Posted);
        let mut c = Consumer::of(r.storage()).unwrap();
        let got: Vec<RingRecord> = std::iter::from_fn(|| c.pop().unwrap()).collect();
        match first {
            PostOutcome::Posted => {
                assert_eq!(got.iter().map(id_of).collect::<Vec<_>>(), [1, 2]);
                assert!(!got[1].overrun());
            }
            PostOutcome::Lost => {
                assert_eq!(got.len(), 1);
                assert_eq!(id_of(&got[0]), 2);
                assert!(got[0].overrun());
            }
        }
    });
}

/// The consumer reads the oldest record while a producer needs exactly its
/// slots for a record that wraps: the producer may write them only after
/// the consumer's tail store says they are free (the tail's Release).
#[test]
fn loom_mmap_slot_reuse_after_tail() {
    model(|| {
        let r = ring();
        advance(&r, 4); // head = tail = 15
        assert_eq!(r.try_post(&rec(20)), PostOutcome::Posted); // skip 15, header, 3..6
        assert_eq!(r.try_post(&rec(21)), PostOutcome::Posted); // 6..9
        assert_eq!(r.try_post(&rec(22)), PostOutcome::Posted); // 9..12
        assert_eq!(r.try_post(&rec(23)), PostOutcome::Posted); // 12..15
        let mut c = Consumer::of(r.storage()).unwrap();
        // The ring is full. Read record 20 (slots 3..6, after the SKIP and
        // the header) while a producer tries to post into those slots.
        let p = {
            let r = r.clone();
            thread::spawn(move || r.try_post(&rec(24)))
        };
        let first = c.pop().unwrap().map(|x| id_of(&x));
        let out = p.join().unwrap();
        assert_eq!(first, Some(20));
        let rest: Vec<u32> = std::iter::from_fn(|| c.pop().unwrap())
            .map(|x| id_of(&x))
            .collect();
        match out {
            PostOutcome::Posted => assert_eq!(rest, [21, 22, 23, 24]),
            PostOutcome::Lost => assert_eq!(rest, [21, 22, 23]),
        }
    });
}

/// The batch consumer (`drain`: one head load, one tail store) while a
/// producer posts two records and then, across the wrap, a third into
/// slots the batch frees: every record whole, in order, exactly once.
#[test]
fn loom_mmap_drain_races_post() {
    model(|| {
        let r = ring();
        advance(&r, 3); // head = tail = 12: the third record wraps
        let p = {
            let r = r.clone();
            thread::spawn(move || {
                [
                    r.try_post(&rec(1)),
                    r.try_post(&rec(2)),
                    r.try_post(&rec(3)),
                ]
            })
        };
        let mut got = Vec::new();
        {
            let mut c = Consumer::of(r.storage()).unwrap();
            let mut buf = [0u8; 64];
            for _ in 0..2 {
                c.drain(&mut buf, |b| {
                    got.push(id_of(&RingRecord { bytes: b.to_vec() }));
                })
                .unwrap();
            }
        }
        let posted = p.join().unwrap();
        got.extend(drain(&r));
        let want: Vec<u32> = (1..=3)
            .filter(|&i| posted[i as usize - 1] == PostOutcome::Posted)
            .collect();
        assert_eq!(got, want);
        assert_eq!(posted[..2], [PostOutcome::Posted; 2]);
    });
}

/// Two producers post a record each while the consumer takes a
/// read()-sized batch (`Consumer::read`): whichever claims first may finish
/// last, and `head` must not cover its record before it is written (the
/// consumer would read it torn, or loom would see the slots' race).
/// Every record is read whole and once; the two may arrive in either
/// order, each producer's own in order.
#[test]
fn loom_mmap_two_producers_publish_vs_batch() {
    model(|| {
        let r = ring();
        let hs: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|id| {
                let r = r.clone();
                thread::spawn(move || r.try_post(&rec(id)))
            })
            .collect();
        let mut got = Vec::new();
        {
            let mut c = Consumer::of(r.storage()).unwrap();
            let mut buf = [0u8; 64];
            let n = c.read(&mut buf).unwrap();
            for b in buf[..n].chunks(24) {
                got.push(id_of(&RingRecord { bytes: b.to_vec() }));
            }
        }
        for h in hs {
            assert_eq!(h.join().unwrap(), PostOutcome::Posted);
        }
        got.extend(drain(&r));
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_eq!(r.head(), 3 + 3 + 3);
    });
}

/// Three threads on a full ring at the end of its second lap: two
/// producers post a record each into the slots the consumer's read()-sized
/// batch frees (the first across the wrap, into the third lap, writing the
/// SKIP record and the header again). Each post lands whole and is read once,
/// or is lost; a loss is never silent: the next record posted (the
/// producers' or one posted afterwards) carries OVERRUN.
#[test]
fn loom_mmap_two_producers_and_consumer_on_full_ring_across_laps() {
    model(|| {
        let r = ring();
        // Eight records (one wrap) leave head = tail = 31: slot 15, the
        // last of lap 1.
        advance(&r, 8);
        assert_eq!(r.head(), 31);
        assert_eq!(r.try_post(&rec(20)), PostOutcome::Posted); // skip 15, header, 3..6
        assert_eq!(r.try_post(&rec(21)), PostOutcome::Posted); // 6..9
        assert_eq!(r.try_post(&rec(22)), PostOutcome::Posted); // 9..12
        assert_eq!(r.try_post(&rec(23)), PostOutcome::Posted); // 12..15
        assert_eq!(r.try_post(&rec(24)), PostOutcome::Lost); // full
        let hs: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|id| {
                let r = r.clone();
                thread::spawn(move || r.try_post(&rec(id)))
            })
            .collect();
        let mut got = Vec::new();
        {
            let mut c = Consumer::of(r.storage()).unwrap();
            let mut buf = [0u8; 48];
            let n = c.read(&mut buf).unwrap();
            for b in buf[..n].chunks(24) {
                got.push(RingRecord { bytes: b.to_vec() });
            }
        }
        let outs: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        let mut c = Consumer::of(r.storage()).unwrap();
        got.extend(std::iter::from_fn(|| c.pop().unwrap()));
        assert_eq!(r.try_post(&rec(99)), PostOutcome::Posted);
        got.extend(std::iter::from_fn(|| c.pop().unwrap()));
        let ids: Vec<u32> = got.iter().map(id_of).collect();
        assert_eq!(ids[..4], [20, 21, 22, 23], "{ids:?}");
        assert_eq!(ids.last(), Some(&99));
        for (id, o) in [1u32, 2].into_iter().zip(&outs) {
            let n = ids.iter().filter(|&&x| x == id).count();
            assert_eq!(
                n,
                usize::from(*o == PostOutcome::Posted),
                "{ids:?} {outs:?}"
            );
        }
        assert_eq!(
            ids.len(),
            5 + outs.iter().filter(|&&o| o == PostOutcome::Posted).count()
        );
        // Record 24's loss is carried by a record claimed after it (1, 2
        // or 99); a later loss may collapse into the same mark. No loss is
        // invented: without a later one, exactly one record is marked.
        assert!(!got[..4].iter().any(RingRecord::overrun));
        let marks = got[4..].iter().filter(|x| x.overrun()).count();
        if outs.contains(&PostOutcome::Lost) {
            assert!(marks >= 1, "a loss is not silent: {ids:?} {outs:?}");
        } else {
            assert_eq!(marks, 1, "one loss, one mark: {ids:?} {outs:?}");
        }
    });
}

/// One `Consumer` pops while a producer wraps and then reuses the slots
/// the first pop frees: the second pop may walk to the `head` the first
/// one loaded (the consumer's cache), the third must load it again past
/// the SKIP record and the header. Every record whole, in order, once;
/// the last post lost only while the first pop has not freed its slots.
#[test]
fn loom_mmap_cached_head_pops_race_wrap_and_reuse() {
    model(|| {
        let r = ring();
        advance(&r, 2); // head = tail = 9
        assert_eq!(r.try_post(&rec(10)), PostOutcome::Posted); // 9..12
        assert_eq!(r.try_post(&rec(11)), PostOutcome::Posted); // 12..15
        let p = {
            let r = r.clone();
            // 12 wraps (SKIP at 15, the header, 3..6), 13 at 6..9, 14 at
            // 9..12 once the consumer's tail has passed record 10.
            thread::spawn(move || [12u32, 13, 14].map(|i| (i, r.try_post(&rec(i)))))
        };
        let mut got = Vec::new();
        {
            let mut c = Consumer::of(r.storage()).unwrap();
            for _ in 0..3 {
                if let Some(x) = c.pop().unwrap() {
                    got.push(id_of(&x));
                }
            }
        }
        let posted = p.join().unwrap();
        assert_eq!(posted[0].1, PostOutcome::Posted);
        assert_eq!(posted[1].1, PostOutcome::Posted);
        got.extend(drain(&r));
        let want: Vec<u32> = [10, 11]
            .into_iter()
            .chain(
                posted
                    .iter()
                    .filter(|(_, o)| *o == PostOutcome::Posted)
                    .map(|(i, _)| *i),
            )
            .collect();
        assert_eq!(got, want);
    });
}

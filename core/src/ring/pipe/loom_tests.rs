//! loom models of [`PipeRing`]: claim/write/publish, loss marking, the
//! consumer's single pops and batches, with capacities of 1–2 records and
//! at most main + 2 threads. Every model posts more records than the ring
//! holds.
//!
//! Every model checks content (no torn record: each record's two halves
//! carry the same id), per-producer order, and accounting
//! (`delivered + lost == posted`), and that a loss is never silent nor
//! invented: a loss is reported iff a post was lost, and where a single
//! producer's loss happened, right after the last record delivered before
//! it.

use super::*;
use crate::loom_tests::model;
use crate::sync::{thread, Arc};

/// A 16-byte record of id `id`.
fn rec(id: u32) -> Vec<u8> {
    rec_of(id, 16)
}

/// A `len`-byte record whose every 4-byte word after the header holds
/// `id`, so a torn copy (part old, part new) is detected.
fn rec_of(id: u32, len: usize) -> Vec<u8> {
    let mut r = vec![0u8; len];
    r[0] = 1;
    r[4] = len as u8;
    for w in r[8..].chunks_mut(4) {
        w.copy_from_slice(&id.to_le_bytes()[..w.len()]);
    }
    r
}

/// Appends what one take gave to `out`: records as (id, a loss follows
/// it), a loss folded into the record before it (as the kernel's flag on
/// that buffer). False when the ring had nothing.
fn take(b: &mut Batch<'_>, out: &mut Vec<(u32, bool)>) -> bool {
    let mut buf = [0u8; 128];
    match b.take(&mut buf) {
        Pop::Empty => false,
        Pop::TooBig(n) => panic!("128-byte buffer too small for {n}"),
        Pop::Loss => {
            let last = out.last_mut().expect("a loss follows a record");
            assert!(!last.1, "one loss reported twice");
            last.1 = true;
            true
        }
        Pop::Record { len } => {
            assert_eq!(len, buf[4] as usize, "the length the producer wrote");
            let id = u32::from_le_bytes(buf[8..12].try_into().unwrap());
            assert_eq!(buf[..len], rec_of(id, len)[..], "torn record");
            out.push((id, false));
            true
        }
    }
}

/// One single pop (a batch of one take).
fn pop(r: &PipeRing, out: &mut Vec<(u32, bool)>) -> bool {
    // SAFETY: each model has exactly one consuming thread at a time.
    take(&mut unsafe { r.batch_unchecked() }, out)
}

/// One batch: takes until the ring is empty.
fn batch(r: &PipeRing, out: &mut Vec<(u32, bool)>) {
    // SAFETY: each model has exactly one consuming thread at a time.
    let mut b = unsafe { r.batch_unchecked() };
    while take(&mut b, out) {}
}

fn drain(r: &PipeRing, out: &mut Vec<(u32, bool)>) {
    while pop(r, out) {}
}

fn posted(o: PostOutcome) -> usize {
    usize::from(o == PostOutcome::Posted)
}

/// Single producer of `ids` with outcomes `outs`: the delivered ids are
/// exactly the posted ones, in order, and each lost one is marked on the
/// last record delivered before it; no other record is marked.
fn check_one_producer(ids: &[u32], outs: &[PostOutcome], got: &[(u32, bool)]) {
    let delivered: Vec<u32> = got.iter().map(|&(id, _)| id).collect();
    let want: Vec<u32> = ids
        .iter()
        .zip(outs)
        .filter(|(_, &o)| o == PostOutcome::Posted)
        .map(|(&id, _)| id)
        .collect();
    assert_eq!(
        delivered, want,
        "delivered in order, exactly the posted ones"
    );
    for (i, &(id, loss)) in got.iter().enumerate() {
        let next = got.get(i + 1).map_or(u32::MAX, |&(n, _)| n);
        let lost_between = ids
            .iter()
            .zip(outs)
            .any(|(&l, &o)| o == PostOutcome::Lost && l > id && l < next);
        assert_eq!(loss, lost_between, "loss mark after {id}: {got:?} {outs:?}");
    }
}

/// Two producers race for the last free slot: exactly one wins, the loser
/// marks the loss after the winner's record, and nothing is torn.
#[test]
fn loom_pipe_two_producers_race_last_slot() {
    model(|| {
        let r = Arc::new(PipeRing::new(2).unwrap());
        assert_eq!(r.try_post(&rec(100)), PostOutcome::Posted);
        let hs: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|id| {
                let r = r.clone();
                thread::spawn(move || r.try_post(&rec(id)))
            })
            .collect();
        let outs: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(outs.iter().map(|&o| posted(o)).sum::<usize>(), 1);
        let mut got = Vec::new();
        drain(&r, &mut got);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (100, false));
        let winner = if outs[0] == PostOutcome::Posted { 1 } else { 2 };
        // The loser found the ring full after the winner's claim: the loss
        // follows the winner's record.
        assert_eq!(got[1], (winner, true));
    });
}

/// A producer posting two records while the consumer pops: the consumer
/// sees a prefix in order, never a torn or unpublished record, and the
/// rest is read afterwards.
#[test]
fn loom_pipe_post_races_read() {
    model(|| {
        let r = Arc::new(PipeRing::new(2).unwrap());
        let p = {
            let r = r.clone();
            thread::spawn(move || [r.try_post(&rec(1)), r.try_post(&rec(2))])
        };
        let mut got = Vec::new();
        for _ in 0..2 {
            pop(&r, &mut got);
        }
        let outs = p.join().unwrap();
        drain(&r, &mut got);
        assert_eq!(outs, [PostOutcome::Posted; 2]);
        assert_eq!(got, vec![(1, false), (2, false)]);
    });
}

/// A loss is being marked after record A while the consumer reads A.
/// Either the post is lost and the loss is reported after A (with A, or
/// learnt late), or the reader's tail made room and B is posted: the loss
/// never vanishes.
#[test]
fn loom_pipe_loss_mark_races_read() {
    model(|| {
        let r = Arc::new(PipeRing::new(1).unwrap());
        assert_eq!(r.try_post(&rec(1)), PostOutcome::Posted);
        let p = {
            let r = r.clone();
            thread::spawn(move || r.try_post(&rec(2)))
        };
        let mut got = Vec::new();
        pop(&r, &mut got);
        let out = p.join().unwrap();
        drain(&r, &mut got);
        match out {
            PostOutcome::Lost => assert_eq!(got, vec![(1, true)]),
            PostOutcome::Posted => assert_eq!(got, vec![(1, false), (2, false)]),
        }
    });
}

/// Two producers and a reading consumer on a one-record ring: delivered +
/// lost == posted, per-producer order holds, and a loss is reported iff
/// one happened.
#[test]
fn loom_pipe_two_producers_and_reader() {
    model(|| {
        let r = Arc::new(PipeRing::new(1).unwrap());
        let hs: Vec<_> = [10u32, 20]
            .into_iter()
            .map(|id| {
                let r = r.clone();
                thread::spawn(move || r.try_post(&rec(id)))
            })
            .collect();
        let mut got = Vec::new();
        pop(&r, &mut got);
        let outs: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        drain(&r, &mut got);
        let n_posted: usize = outs.iter().map(|&o| posted(o)).sum();
        assert_eq!(got.len(), n_posted);
        for (id, o) in [10u32, 20].into_iter().zip(&outs) {
            assert_eq!(got.iter().any(|&(g, _)| g == id), *o == PostOutcome::Posted);
        }
        let marks = got.iter().filter(|&&(_, loss)| loss).count();
        assert_eq!(
            marks > 0,
            n_posted < 2,
            "a loss must be marked iff one happened"
        );
    });
}

/// One producer posts four records into a one-record ring (two slots, so
/// each slot is reused over two laps) while the consumer takes two
/// batches: ids arrive in order, delivered + lost == posted, and every
/// loss is reported right after the last record delivered before it.
#[test]
fn loom_pipe_batch_races_post_over_two_laps() {
    model(|| {
        let r = Arc::new(PipeRing::new(1).unwrap());
        // 127 + 16 + 127 + 127 bytes through a 256-byte note ring: the
        // third record runs into the slack and the fourth reuses the first
        // two's bytes.
        let ids = [1u32, 2, 3, 4];
        let lens = [127, 16, 127, 127];
        let p = {
            let r = r.clone();
            thread::spawn(move || ids.map(|id| r.try_post(&rec_of(id, lens[id as usize - 1]))))
        };
        let mut got = Vec::new();
        batch(&r, &mut got);
        batch(&r, &mut got);
        let outs = p.join().unwrap();
        batch(&r, &mut got);
        check_one_producer(&ids, &outs, &got);
    });
}

/// Two producers post two records each into a two-record ring while the
/// consumer takes a batch: per-producer order, delivered + lost ==
/// posted, and a loss is reported iff one happened.
#[test]
fn loom_pipe_batch_races_two_producers() {
    model(|| {
        let r = Arc::new(PipeRing::new(2).unwrap());
        // 127-byte records: four of them reuse the 256-byte note ring's
        // bytes, the first batch's among them.
        let hs: Vec<_> = [10u32, 20]
            .into_iter()
            .map(|base| {
                let r = r.clone();
                thread::spawn(move || {
                    [
                        r.try_post(&rec_of(base + 1, 127)),
                        r.try_post(&rec_of(base + 2, 127)),
                    ]
                })
            })
            .collect();
        let mut got = Vec::new();
        batch(&r, &mut got);
        let outs: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        batch(&r, &mut got);
        let mut n_posted = 0;
        for (base, o) in [10u32, 20].into_iter().zip(&outs) {
            let mine: Vec<u32> = got
                .iter()
                .map(|&(id, _)| id)
                .filter(|id| id / 10 == base / 10)
                .collect();
            let want: Vec<u32> = (1..=2)
                .filter(|&k| o[k as usize - 1] == PostOutcome::Posted)
                .map(|k| base + k)
                .collect();
            assert_eq!(mine, want, "producer {base}: order and accounting");
            n_posted += want.len();
        }
        assert_eq!(got.len(), n_posted);
        let marks = got.iter().filter(|&&(_, loss)| loss).count();
        assert_eq!(
            marks > 0,
            n_posted < 4,
            "a loss is reported iff one happened"
        );
    });
}

/// Posts and takes `n` 127-byte records one at a time (single-threaded),
/// so the ring's positions and byte offsets start `n` records on.
fn advance(r: &PipeRing, n: u32) {
    let mut got = Vec::new();
    for i in 0..n {
        assert_eq!(r.try_post(&rec_of(1000 + i, 127)), PostOutcome::Posted);
        assert!(pop(r, &mut got));
    }
}

/// A full two-record ring of 127-byte records (each record fills its
/// slot's 128 bytes): the consumer pops the two oldest, one at a time,
/// while a producer posts two more into exactly those slots and bytes. The post is lost (it saw the
/// old tail: the loss follows the newest record) or lands after the
/// copy-out (the shadow cells check the bytes' happens-before); the
/// producer found the ring looking full on its cached tail and refreshed
/// the cache from the consumer's tail (the `tail_cache` path).
#[test]
fn loom_pipe_full_ring_pop_races_post_into_its_slot() {
    model(|| {
        let r = Arc::new(PipeRing::new(2).unwrap());
        for id in [1, 2] {
            assert_eq!(r.try_post(&rec_of(id, 127)), PostOutcome::Posted);
        }
        let p = {
            let r = r.clone();
            thread::spawn(move || [r.try_post(&rec_of(3, 127)), r.try_post(&rec_of(4, 127))])
        };
        let mut got = Vec::new();
        assert!(pop(&r, &mut got));
        pop(&r, &mut got);
        let [o3, o4] = p.join().unwrap();
        drain(&r, &mut got);
        let outs = [PostOutcome::Posted, PostOutcome::Posted, o3, o4];
        check_one_producer(&[1, 2, 3, 4], &outs, &got);
    });
}

/// Three threads, two producers and the consumer, on a full two-record
/// ring: the consumer's batch frees both slots while each producer posts a
/// 127-byte record into them. One producer's refresh of `tail_cache` is
/// what the other may claim on (the producer-advanced tail: its writes
/// into bytes the consumer read are ordered only through the cache's
/// Release/Acquire). Each post lands whole or is lost, and a loss is
/// reported iff one happened.
#[test]
fn loom_pipe_two_producers_reuse_slots_on_advanced_tail() {
    model(|| {
        let r = Arc::new(PipeRing::new(2).unwrap());
        for id in [1, 2] {
            assert_eq!(r.try_post(&rec_of(id, 127)), PostOutcome::Posted);
        }
        let hs: Vec<_> = [10u32, 20]
            .into_iter()
            .map(|id| {
                let r = r.clone();
                thread::spawn(move || r.try_post(&rec_of(id, 127)))
            })
            .collect();
        let mut got = Vec::new();
        batch(&r, &mut got);
        let outs: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        drain(&r, &mut got);
        let ids: Vec<u32> = got.iter().map(|&(id, _)| id).collect();
        assert_eq!(ids[..2], [1, 2]);
        for (id, o) in [10u32, 20].into_iter().zip(&outs) {
            assert_eq!(
                ids.contains(&id),
                *o == PostOutcome::Posted,
                "{ids:?} {outs:?}"
            );
        }
        let n_posted: usize = outs.iter().map(|&o| posted(o)).sum();
        assert_eq!(got.len(), 2 + n_posted);
        let marks = got.iter().filter(|&&(_, loss)| loss).count();
        assert_eq!(
            marks > 0,
            n_posted < 2,
            "a loss is reported iff one happened"
        );
    });
}

/// Slot reuse across laps: after two records (lap 0) the producer posts
/// four more into a two-record ring (positions 2..6: laps 1 and 2 of
/// both slots, the same bytes each lap) while the consumer takes two
/// batches. In order, delivered + lost == posted, each loss right after
/// the last record delivered before it; a stamp left by an earlier lap is
/// never taken for a record.
#[test]
fn loom_pipe_slot_reuse_over_laps() {
    model(|| {
        let r = Arc::new(PipeRing::new(2).unwrap());
        advance(&r, 2);
        let ids = [1u32, 2, 3, 4];
        let p = {
            let r = r.clone();
            thread::spawn(move || ids.map(|id| r.try_post(&rec_of(id, 127))))
        };
        let mut got = Vec::new();
        batch(&r, &mut got);
        batch(&r, &mut got);
        let outs = p.join().unwrap();
        batch(&r, &mut got);
        check_one_producer(&ids, &outs, &got);
    });
}

/// The loss bit is set while the consumer takes records across the byte
/// ring's wrap: a one-record ring holds record 1 in its last 128 bytes;
/// the producer's post of 2 finds it full and marks the loss, and its post
/// of 3 (wrapping to the ring's first bytes) may clear the bit with its
/// claim and carry the loss in its stamp, while the consumer takes 1 and
/// then what follows. The loss is reported once, right after 1, whether
/// it is learnt from `head` or from 3's stamp.
#[test]
fn loom_pipe_loss_bit_across_wrap() {
    model(|| {
        let r = Arc::new(PipeRing::new(1).unwrap());
        advance(&r, 1);
        assert_eq!(r.try_post(&rec_of(1, 127)), PostOutcome::Posted);
        let p = {
            let r = r.clone();
            thread::spawn(move || [r.try_post(&rec_of(2, 127)), r.try_post(&rec_of(3, 127))])
        };
        let mut got = Vec::new();
        pop(&r, &mut got);
        pop(&r, &mut got);
        let [o2, o3] = p.join().unwrap();
        drain(&r, &mut got);
        check_one_producer(&[1, 2, 3], &[PostOutcome::Posted, o2, o3], &got);
    });
}

/// Two [`PipeReader`] handles in turn (the safe single-consumer handle):
/// a thread takes the handle, pops a record and drops it while the main
/// thread tries to take one too. At most one handle exists at a time, and
/// the second reader starts where the first stopped (its tail and byte
/// offset handed over through the handle's flag): every record is read
/// exactly once, in order, untorn.
#[test]
fn loom_pipe_reader_handles_in_turn() {
    model(|| {
        let r = Arc::new(PipeRing::new(2).unwrap());
        for id in [1, 2] {
            assert_eq!(r.try_post(&rec_of(id, 127)), PostOutcome::Posted);
        }
        let t = {
            let r = r.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                if let Some(mut rd) = r.reader() {
                    take(&mut rd.batch(), &mut got);
                }
                got
            })
        };
        let mut got = Vec::new();
        if let Some(mut rd) = r.reader() {
            take(&mut rd.batch(), &mut got);
        }
        let mut theirs = t.join().unwrap();
        let mut rd = r.reader().expect("no handle is out");
        let mut rest = Vec::new();
        while take(&mut rd.batch(), &mut rest) {}
        // Whoever took its handle second read after the first.
        let mut all = if theirs.first() == Some(&(1, false)) {
            theirs.append(&mut got);
            theirs
        } else {
            got.append(&mut theirs);
            got
        };
        all.append(&mut rest);
        assert_eq!(all, vec![(1, false), (2, false)]);
    });
}

//! loom models of the shared-memory mirror ([`ShmWriter`], [`ShmReader`])
//! over a heap region of 64 entry bytes (two 16-byte records: a third is
//! appended only into memory the kernel released, so the ring wraps and
//! reuses bytes a reader copied), with at most main + 2 threads.
//!
//! The entries' bytes are checked cells (`Mem` under loom), so loom itself
//! fails a model where a reader copies bytes whose writing does not happen
//! before, or the kernel overwrites bytes whose copying does not. Every
//! model checks content (a record's every byte carries its id), order, and
//! accounting (each record delivered once and released once, never more
//! than was published; honest readers never make the kernel see a
//! scribble, and never see Invalid).

use super::*;
use crate::loom_tests::model;
use crate::sync::thread;

/// Entry bytes of every model's mirror: two entries of 16-byte records.
const CAP: usize = 64;

/// A 16-byte record of id `id`: every byte but the length byte is `id`.
fn rec(id: u8) -> Vec<u8> {
    let mut r = vec![id; 16];
    r[4] = 16;
    r
}

/// One read of at most `room` bytes by `r`: what it came to and the ids
/// of the records it delivered (checked whole).
fn read(r: &ShmReader, room: usize) -> (Local, Vec<u8>) {
    let mut out = vec![0u8; room];
    let mut ends = Ends::new();
    let mut ids = Vec::new();
    let l = r.read(&mut out, &mut ends, &mut |b, e| {
        ids.clear();
        let mut from = 0;
        for &(to, _, _) in e {
            let id = b[from];
            assert_eq!(b[from..to], rec(id)[..], "torn record");
            ids.push(id);
            from = to;
        }
        e.len()
    });
    if !matches!(l, Local::Read { .. }) {
        ids.clear();
    }
    (l, ids)
}

/// Reads until the mirror is empty, appending the ids to `got`.
fn drain(r: &ShmReader, got: &mut Vec<u8>) {
    loop {
        match read(r, CAP) {
            (Local::Empty, _) => return,
            (Local::Read { .. }, ids) => got.extend(ids),
            (l, _) => panic!("drain: {l:?}"),
        }
    }
}

/// A mirror holding records `ids`, published.
fn mirror(ids: &[u8]) -> ShmWriter {
    let mut w = ShmWriter::heap(CAP);
    for &id in ids {
        assert!(w.append(&rec(id), true));
    }
    w.publish();
    w
}

/// An honest reap: no scribble, and `released` stays an entry boundary.
fn reap(w: &mut ShmWriter) -> usize {
    let r = w.reap();
    assert!(!r.scribbled, "an honest page seen as a scribble: {r:?}");
    assert_eq!(w.released % 32, 0, "released inside an entry");
    assert!(w.released <= w.published);
    r.records
}

/// The kernel appends and publishes two records while a reader reads
/// twice: the reader sees a prefix, in order, every record whole (its
/// bytes written before it saw them published), and the rest afterwards.
#[test]
fn loom_shm_publish_races_read() {
    model(|| {
        let mut w = ShmWriter::heap(CAP);
        let r = w.reader();
        let k = thread::spawn(move || {
            for id in [1, 2] {
                assert!(w.append(&rec(id), true));
                w.publish();
            }
            w
        });
        let mut got = Vec::new();
        for _ in 0..2 {
            match read(&r, CAP) {
                (Local::Empty, _) => {}
                (Local::Read { .. }, ids) => got.extend(ids),
                (l, _) => panic!("{l:?}"),
            }
        }
        let mut w = k.join().unwrap();
        drain(&r, &mut got);
        assert_eq!(got, [1, 2]);
        assert_eq!(reap(&mut w), 2);
    });
}

/// Two readers race to take the same records (room for one each) while
/// the kernel reaps: each record is delivered once, and the kernel only
/// ever sees entry boundaries.
#[test]
fn loom_shm_two_readers_race_take() {
    model(|| {
        let mut w = mirror(&[1, 2]);
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let r = w.reader();
                thread::spawn(move || match read(&r, 16) {
                    (Local::Read { bytes: 16, .. }, ids) => ids,
                    (l, _) => panic!("{l:?}"),
                })
            })
            .collect();
        let mut released = reap(&mut w);
        let mut got: Vec<u8> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2], "each record once");
        released += reap(&mut w);
        assert_eq!(released, 2);
    });
}

/// The kernel reaps, then appends a third record into the memory it
/// released, while a reader takes the first: the kernel releases only
/// what the reader took, and reuses it only after the reader's copy (the
/// cells fail the model otherwise); the reader's record is whole.
///
/// The reader is the main thread, which loom runs first: a thread's own
/// earlier access to a word hides another's from loom's search, so the
/// kernel's reap comes last for its load to race the reader's CAS.
#[test]
fn loom_shm_reap_races_read() {
    model(|| {
        let mut w = mirror(&[1, 2]);
        let r = w.reader();
        let k = thread::spawn(move || {
            let released = reap(&mut w);
            // Fits only in the bytes of a released record.
            let third = w.append(&rec(3), true);
            assert_eq!(third, released == 1);
            w.publish();
            (w, released, third)
        });
        let mut got = match read(&r, 16) {
            (Local::Read { bytes: 16, .. }, ids) => ids,
            (l, _) => panic!("{l:?}"),
        };
        assert_eq!(got, [1]);
        let (mut w, released, third) = k.join().unwrap();
        drain(&r, &mut got);
        let want: &[u8] = if third { &[1, 2, 3] } else { &[1, 2] };
        assert_eq!(got, want);
        assert_eq!(released + reap(&mut w), want.len());
    });
}

/// As `loom_shm_reap_races_read` over two laps: the kernel reaps and
/// appends into released memory twice while the reader takes a record at
/// a time twice, so bytes are reused while a later record is copied.
#[test]
fn loom_shm_reap_races_reads_over_two_laps() {
    model(|| {
        let mut w = mirror(&[1, 2]);
        let r = w.reader();
        let k = thread::spawn(move || {
            let mut released = 0;
            let mut next = 3;
            for _ in 0..2 {
                released += reap(&mut w);
                if w.append(&rec(next), true) {
                    next += 1;
                }
                w.publish();
            }
            (w, released, next - 1)
        });
        let mut got = Vec::new();
        for _ in 0..2 {
            match read(&r, 16) {
                (Local::Read { bytes: 16, .. }, ids) => got.extend(ids),
                (l, _) => panic!("{l:?}"),
            }
        }
        assert_eq!(got, [1, 2]);
        let (mut w, released, last) = k.join().unwrap();
        drain(&r, &mut got);
        let want: Vec<u8> = (1..=last).collect();
        assert_eq!(got, want);
        assert_eq!(released + reap(&mut w), want.len());
    });
}

/// A hostile reader has written a position behind what was released (0,
/// after record 1 was read and reaped). The kernel publishes record 2 and
/// reaps, repairing the page to the end of what is published, while an
/// honest reader runs `step` on it; then the books are checked: each
/// record released once, never more than published.
fn scribble_repair_races(step: fn(&ShmReader)) {
    let mut w = mirror(&[1]);
    let r = w.reader();
    assert_eq!(read(&r, CAP).1, [1]);
    assert_eq!(reap(&mut w), 1);
    w.reader().scribble(0);
    let h = thread::spawn(move || {
        step(&r);
        r
    });
    assert!(w.append(&rec(2), true));
    w.publish();
    let first = w.reap();
    assert!(w.released == 32 || w.released == 64, "{first:?}");
    let r = h.join().unwrap();
    let mut got = Vec::new();
    drain(&r, &mut got);
    let second = w.reap();
    assert!(!second.scribbled);
    assert_eq!(w.released, 64);
    assert_eq!(first.records + second.records, 1, "record 2 released once");
    assert!(got.len() <= 1);
}

/// `scribble_repair_races` with a read: the honest reader sees the
/// scribble (and, as the hostile one could, takes record 1 again), or the
/// repair and then nothing; never Invalid, which the repaired position
/// would be if `published` looked older than it.
#[test]
fn loom_shm_scribble_repair_races_read() {
    model(|| {
        scribble_repair_races(|r| match read(r, CAP) {
            (Local::Empty, _) => {}
            (Local::Read { .. }, ids) => assert_eq!(ids[0], 1, "from the scribble"),
            (l, _) => panic!("a repaired page read as {l:?}"),
        })
    });
}

/// `scribble_repair_races` with a poll: a record (record 1, from the
/// scribble) or none (the repair); never the "ask the kernel" of a page
/// that looks bad.
#[test]
fn loom_shm_scribble_repair_races_poll() {
    model(|| {
        scribble_repair_races(|r| {
            assert!(r.has_records().is_some(), "a repaired page polled as bad");
        })
    });
}

/// A hostile reader writes a position inside an entry while an honest one
/// (the main thread) takes a record and the kernel reaps twice: the
/// kernel never takes the bad value for a boundary, never releases more
/// than was published nor a record twice, and once repaired the page
/// serves honest readers again.
#[test]
fn loom_shm_hostile_scribble_races_reap() {
    model(|| {
        let mut w = mirror(&[1, 2]);
        let r = w.reader();
        let bad = w.reader();
        let hostile = thread::spawn(move || bad.scribble(8));
        let kernel = thread::spawn(move || {
            let mut released = 0;
            for _ in 0..2 {
                released += w.reap().records;
                assert_eq!(w.released % 32, 0, "released inside an entry");
                assert!(w.released <= w.published);
            }
            (w, released)
        });
        let (l, mut got) = read(&r, 16);
        assert!(
            matches!(l, Local::Read { .. } | Local::Invalid | Local::Empty),
            "{l:?}"
        );
        hostile.join().unwrap();
        let (mut w, mut released) = kernel.join().unwrap();
        released += w.reap().records;
        assert!(w.released % 32 == 0 && w.released <= w.published);
        drain(&r, &mut got);
        released += reap(&mut w);
        assert_eq!(released, 2, "each record released once");
        let mut dedup = got.clone();
        dedup.dedup();
        assert_eq!(dedup, got, "no record delivered twice: {got:?}");
        // Repaired: new records flow.
        assert!(w.append(&rec(3), true));
        w.publish();
        let mut more = Vec::new();
        drain(&r, &mut more);
        assert_eq!(more, [3]);
        assert_eq!(reap(&mut w), 1);
    });
}

//! Fuzz harness bodies, shared by the cargo-fuzz targets in `fuzz/` and by
//! the stable corpus replay in watchq-tests (feature `fuzzing`).
//!
//! Each harness takes arbitrary bytes, must never panic, and asserts the
//! invariants the rest of the crate promises.

use crate::filter::WatchFilter;
use crate::queue::{ReadMode, WatchQueue};
use crate::record::Notification;
use crate::uapi::WATCH_TYPE__NR;
use crate::Errno;

/// A user filter blob: parse, and if accepted, match every type/subtype.
pub fn filter_blob(data: &[u8]) {
    match WatchFilter::parse(data, WATCH_TYPE__NR) {
        Ok(f) => {
            for t in 0..4 {
                for s in [0u8, 1, 31, 32, 255] {
                    let _ = f.matches(t, s, 0x0000_ff10);
                }
            }
        }
        Err(e) => assert!(matches!(e, Errno::EINVAL | Errno::EFAULT), "{e:?}"),
    }
}

/// A read() buffer of records: decoding never panics, and what decodes
/// re-encodes to the same bytes.
pub fn record_decode(data: &[u8]) {
    if let Ok(recs) = Notification::decode_all(data) {
        let again: Vec<u8> = recs.iter().flat_map(|r| r.as_bytes().to_vec()).collect();
        assert_eq!(again, data);
    }
}

/// A sequence of queue operations, one per input byte pair: size, post,
/// read, filter. Reads return whole records only, and the statistics add up.
pub fn pipe_ring_ops(data: &[u8]) {
    let q = WatchQueue::new();
    let mode = ReadMode {
        nonblock: true,
        deadline: None,
    };
    let mut buf = [0u8; 600];
    for (i, pair) in data.chunks(2).enumerate() {
        let (op, arg) = (pair[0], *pair.get(1).unwrap_or(&0));
        match op % 4 {
            0 => {
                let _ = q.set_size(u64::from(arg) * 3);
            }
            1 => {
                let len = 8 + usize::from(arg) % 120;
                if let Ok(n) = Notification::new(1, arg % 8, &vec![i as u8; len - 8]) {
                    q.post(&n);
                }
            }
            2 => {
                let room = usize::from(arg) * 2 + 1;
                match q.read(&mut buf[..room], mode, &|| true) {
                    Ok(n) => assert!(Notification::decode_all(&buf[..n]).is_ok()),
                    Err(e) => assert!(matches!(e, Errno::EAGAIN | Errno::ENOBUFS), "{e:?}"),
                }
            }
            _ => {
                let end = data.len().min(i * 2 + usize::from(arg));
                let _ = q.set_filter(Some(&data[i * 2..end.max(i * 2)]));
            }
        }
    }
    let s = q.stats();
    assert_eq!(s.posted, s.read + s.lost + s.queued + s.discarded, "{s:?}");
}

/// Operations on a 2019 ring, one per input byte pair: posts of any size
/// (valid or not), consumer pops, and the consumer scribbling any value
/// into the shared `tail` and later putting its real position back.
/// Records come out whole, in post order, with the length they were posted
/// with; posts while the tail is scribbled are lost; nothing queued before
/// the scribble is damaged.
pub fn mmap_ring_ops(data: &[u8]) {
    use crate::ring::mmap::{Consumer, HeapStorage, MmapRing, RingStorage};
    use crate::ring::PostOutcome;
    use crate::sync::Ordering;
    use crate::uapi::v2::{TAIL_WORD, WATCH_LENGTH_GRANULARITY};
    use std::collections::VecDeque;

    let Some((&size, ops)) = data.split_first() else {
        return;
    };
    let bytes = 256usize << (size % 5);
    let ring = MmapRing::new(HeapStorage::new(bytes).expect("a power of two")).expect("ring");
    let words = ring.storage().words();
    let mut consumer = Consumer::new(words).expect("ring words");
    let mut queued: VecDeque<Vec<u8>> = VecDeque::new();
    let mut scribbled: Option<u32> = None;
    let mut seq = 0u32;
    let mut buf = [0u8; 512];
    for pair in ops.chunks(2) {
        let (op, arg) = (pair[0], *pair.get(1).unwrap_or(&0));
        match op % 4 {
            0 | 1 => {
                // A record of `arg % 64` 8-byte units (0: too short), its id in
                // the payload; every 16th one has a bad length field.
                let units = u32::from(arg % 64);
                let mut r = Vec::new();
                r.extend_from_slice(&crate::uapi::v2::WATCH_TYPE_KEY_NOTIFY.to_le_bytes());
                let lie = u32::from(op % 16 == 1);
                r.extend_from_slice(&((units + lie) * 8).to_le_bytes());
                while r.len() < units as usize * WATCH_LENGTH_GRANULARITY {
                    r.extend_from_slice(&seq.to_le_bytes());
                }
                r.truncate((units as usize * WATCH_LENGTH_GRANULARITY).max(4));
                seq += 1;
                let got = ring.try_post(&r);
                if scribbled.is_some() || units == 0 || lie == 1 {
                    assert_eq!(got, PostOutcome::Lost, "a post that must be lost");
                }
                if got == PostOutcome::Posted {
                    queued.push_back(r);
                }
            }
            2 if scribbled.is_none() => match consumer.pop_into(&mut buf) {
                Ok(Some(n)) => {
                    let want = queued.pop_front().expect("only posted records come out");
                    // The overrun flag (bit 0 of info) may be set; the rest is exact.
                    assert_eq!(n, want.len());
                    assert_eq!((&buf[..4], buf[4] & !1), (&want[..4], want[4]));
                    assert_eq!(buf[5..n], want[5..], "record damaged");
                }
                Ok(None) => assert!(queued.is_empty(), "a posted record vanished"),
                Err(e) => panic!("consumer: {e:?}"),
            },
            2 => {}
            _ => match scribbled.take() {
                // The consumer comes to its senses: tail where it left off.
                Some(real) => words[TAIL_WORD].store(real, Ordering::Release),
                None => {
                    // A tail the producers must refuse: beyond the head, or
                    // more than a ring behind it.
                    let real = words[TAIL_WORD].load(Ordering::Relaxed);
                    let head = ring.head();
                    let by = 1 + u32::from(arg) * u32::from(op);
                    let bad = if op & 4 == 0 {
                        head.wrapping_add(by)
                    } else {
                        head.wrapping_sub(ring.slots() + by)
                    };
                    words[TAIL_WORD].store(bad, Ordering::Release);
                    scribbled = Some(real);
                }
            },
        }
    }
    if let Some(real) = scribbled {
        words[TAIL_WORD].store(real, Ordering::Release);
    }
    while let Ok(Some(n)) = consumer.pop_into(&mut buf) {
        let want = queued.pop_front().expect("only posted records come out");
        assert_eq!(buf[5..n], want[5..]);
    }
    assert!(
        queued.is_empty(),
        "{} posted records never came out",
        queued.len()
    );
}

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

//! Shared pieces of watchq's benchmarks: record images of the sizes the
//! benches use, and the peers' single-threaded post-and-read pairs, so
//! every bench file measures the same work.
#![forbid(unsafe_code)]

use watchq_core::Notification;

/// Record sizes benchmarked: the key record, a mount-sized record, and the
/// largest record a note holds.
pub const SIZES: [usize; 3] = [16, 24, 127];

/// A record of `len` bytes (8-byte header plus payload).
pub fn record(len: usize) -> Notification {
    let payload = vec![0xa5u8; len - 8];
    Notification::new(1, 1, &payload).expect("bench sizes are valid record sizes")
}

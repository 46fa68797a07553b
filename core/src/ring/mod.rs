//! The rings records are posted into.
//!
//! [`pipe`] is the merged design's ring of preallocated 128-byte notes;
//! [`mmap`] is the 2019 design's user-mapped ring of 8-byte slots.

pub mod mmap;
pub mod pipe;
pub mod shm;

/// What became of one post. Mirrors the kernel, where posting is infallible
/// and a loss is marked in-band.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostOutcome {
    /// The record is queued and will be read.
    Posted,
    /// The record was dropped: no room (the loss is marked for the reader)
    /// or no ring yet (dropped silently, as before `SET_SIZE`).
    Lost,
}

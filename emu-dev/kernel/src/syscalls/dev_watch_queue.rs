//! The 2019 design's `/dev/watch_queue` misc device: open, ioctl, poll and
//! mmap of its descriptors.
//!
//! Mirrors drivers/misc/watch_queue.c of the June 2019 series ("ver #2"):
//! each open makes a queue of its own, `IOC_WATCH_QUEUE_SET_SIZE` sizes its
//! ring, `IOC_WATCH_QUEUE_SET_FILTER` filters it, and the consumer reads
//! records from the `mmap()`ed ring (there is no read()). `open()`,
//! `ioctl()` and `poll()` reach the device through the generic calls
//! (`FileCalls`, `PollCalls`, which call the functions here); the mapping
//! is [`DevWatchQueueCalls::mmap_watch_queue`].

use crate::file::FileKind;
use crate::process::Process;
use std::sync::Arc;
use watchq_core::uapi::v2;
use watchq_core::uapi::{POLLERR, POLLIN, POLLRDNORM};
use watchq_core::{Errno, Result, WatchQueue};

/// The 2019 device's own call. Mirrors drivers/misc/watch_queue.c (2019).
pub trait DevWatchQueueCalls {
    /// `mmap()` of a `/dev/watch_queue` descriptor: the queue whose ring
    /// the mapping shows (`ring_2019()`; its storage's words, or its memfd
    /// for a real mapping).
    ///
    /// # Errors
    /// In the 2019 driver's order: `EBADF` (not open), `ENODEV` (not the
    /// device), `EINVAL` (not `MAP_SHARED`, an offset, an unsized queue, a
    /// length of 0 or over the ring's size).
    fn mmap_watch_queue(
        &self,
        fd: i32,
        len: usize,
        shared: bool,
        offset: u64,
    ) -> Result<Arc<WatchQueue>>;
}

impl DevWatchQueueCalls for Process {
    fn mmap_watch_queue(
        &self,
        fd: i32,
        len: usize,
        shared: bool,
        offset: u64,
    ) -> Result<Arc<WatchQueue>> {
        let f = self.file(fd)?;
        let FileKind::WatchQueueDev(q) = &f.kind else {
            return Err(Errno::ENODEV);
        };
        let size = q
            .ring_2019()
            .map_or(0, |r| r.slots() as usize * v2::WATCH_LENGTH_GRANULARITY);
        if !shared || offset != 0 || size == 0 || len == 0 || len > size {
            return Err(Errno::EINVAL);
        }
        Ok(q.clone())
    }
}

/// `watch_queue_open()`: every open of the device is a new, unsized queue.
pub(super) fn open() -> FileKind {
    FileKind::WatchQueueDev(WatchQueue::new_2019())
}

/// `watch_queue_ioctl()`: IOC_WATCH_QUEUE_SET_SIZE (`arg` pages of ring)
/// and IOC_WATCH_QUEUE_SET_FILTER (`arg` 0 removes the filter, else the
/// blob is read from `mem`).
///
/// # Errors
/// As `WatchQueue::set_size`/`set_filter` (EFAULT for an unreadable blob);
/// `EOPNOTSUPP` for any other command, the June 2019 driver's answer.
pub(super) fn ioctl(q: &WatchQueue, cmd: u64, arg: u64, mem: Option<&mut [u8]>) -> Result<i64> {
    match cmd {
        v2::IOC_WATCH_QUEUE_SET_SIZE => q.set_size(arg).map(|()| 0),
        v2::IOC_WATCH_QUEUE_SET_FILTER if arg == 0 => q.set_filter(None).map(|()| 0),
        v2::IOC_WATCH_QUEUE_SET_FILTER => q
            .set_filter(Some(mem.as_deref().ok_or(Errno::EFAULT)?))
            .map(|()| 0),
        _ => Err(Errno::EOPNOTSUPP),
    }
}

/// `watch_queue_poll()`: nothing before SET_SIZE, POLLERR once the
/// consumer has corrupted the ring's indices, else readable while records
/// are queued.
pub(super) fn poll(q: &WatchQueue) -> u16 {
    match q.ring_2019() {
        None => 0,
        Some(r) if r.inconsistent() => POLLERR,
        Some(r) if r.readable() => POLLIN | POLLRDNORM,
        Some(_) => 0,
    }
}

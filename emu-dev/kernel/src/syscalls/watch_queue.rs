//! The notification queue behind a descriptor, and its ioctls as typed
//! calls.
//!
//! Mirrors the descriptor side of kernel/watch_queue.c: `get_watch_queue()`
//! (which every watch call — keyctl's WATCH_KEY, `watch_devices`,
//! `watch_mount`, `watch_sb` — uses to find the queue) and the
//! `IOC_WATCH_QUEUE_SET_SIZE`/`SET_FILTER` commands, which are plain
//! [`FileCalls::ioctl`]s underneath. The queue itself is
//! [`watchq_core::WatchQueue`].

use super::file::FileCalls;
use crate::file::FileKind;
use crate::process::Process;
use std::sync::Arc;
use watchq_core::uapi::*;
use watchq_core::{Errno, QueueStats, Result, WatchQueue};

/// A descriptor's notification queue. Mirrors kernel/watch_queue.c.
pub trait WatchQueueCalls {
    /// The notification queue behind `fd` (an end of a notification pipe,
    /// or a `/dev/watch_queue` descriptor). Mirrors `get_watch_queue()`: any
    /// failure is EINVAL, a bad fd included.
    ///
    /// # Errors
    /// EINVAL: `fd` is not an end of a notification pipe.
    fn watch_queue(&self, fd: i32) -> Result<Arc<WatchQueue>>;

    /// `IOC_WATCH_QUEUE_SET_SIZE` through [`FileCalls::ioctl`].
    ///
    /// # Errors
    /// As [`FileCalls::ioctl`].
    fn set_queue_size(&self, fd: i32, nr_notes: u64) -> Result<()>;

    /// `IOC_WATCH_QUEUE_SET_FILTER` through [`FileCalls::ioctl`]; `None`
    /// passes a NULL pointer.
    ///
    /// # Errors
    /// As [`FileCalls::ioctl`].
    fn set_queue_filter(&self, fd: i32, blob: Option<&[u8]>) -> Result<()>;

    /// `FIONREAD` through [`FileCalls::ioctl`].
    ///
    /// # Errors
    /// As [`FileCalls::ioctl`].
    fn fionread(&self, fd: i32) -> Result<usize>;

    /// Statistics of the notification queue behind `fd` (watchq's own view;
    /// the kernel has none).
    ///
    /// # Errors
    /// EINVAL: `fd` is not an end of a notification pipe.
    fn queue_stats(&self, fd: i32) -> Result<QueueStats>;
}

impl WatchQueueCalls for Process {
    fn watch_queue(&self, fd: i32) -> Result<Arc<WatchQueue>> {
        let f = self.file(fd).map_err(|_| Errno::EINVAL)?;
        if let FileKind::WatchQueueDev(q) = &f.kind {
            return Ok(q.clone());
        }
        f.pipe()
            .and_then(|p| p.queue())
            .cloned()
            .ok_or(Errno::EINVAL)
    }

    fn set_queue_size(&self, fd: i32, nr_notes: u64) -> Result<()> {
        self.ioctl(fd, IOC_WATCH_QUEUE_SET_SIZE, nr_notes, None)
            .map(drop)
    }

    fn set_queue_filter(&self, fd: i32, blob: Option<&[u8]>) -> Result<()> {
        match blob {
            None => self.ioctl(fd, IOC_WATCH_QUEUE_SET_FILTER, 0, None),
            Some(b) => {
                let mut m = b.to_vec();
                self.ioctl(fd, IOC_WATCH_QUEUE_SET_FILTER, 1, Some(&mut m))
            }
        }
        .map(drop)
    }

    fn fionread(&self, fd: i32) -> Result<usize> {
        let mut m = [0u8; 4];
        self.ioctl(fd, FIONREAD, 1, Some(&mut m))?;
        Ok(i32::from_le_bytes(m) as usize)
    }

    fn queue_stats(&self, fd: i32) -> Result<QueueStats> {
        Ok(self.watch_queue(fd)?.stats())
    }
}

//! watch_devices(2), the device watch of the pipe-era notification series
//! (never merged).
//!
//! Mirrors drivers/base/watch.c of the January 2020 series: one global
//! device watch list (`watchq_sources::devices::DeviceList`), which block
//! and USB events are posted to.

use super::watch_queue::WatchQueueCalls;
use crate::process::Process;
use watchq_core::{Errno, Result};

/// The device watch call. Mirrors drivers/base/watch.c (2020).
pub trait DeviceCalls {
    /// `watch_devices(fd, tag, flags)` (the pipe-era device series): `tag`
    /// 0..=255 makes the queue behind `fd` watch the global device list,
    /// −1 removes that watch.
    ///
    /// # Errors
    /// In the series' order: `ENOSYS` (no CONFIG_DEVICE_NOTIFICATIONS),
    /// `EINVAL` (flags, tag out of −1..=255, `fd` not a notification queue),
    /// the policy's `watch_devices` error, `EBUSY` (already watching),
    /// `EAGAIN` (watch limit), `EBADSLT` (removing a watch that is not there).
    fn watch_devices(&self, fd: i32, tag: i32, flags: u32) -> Result<()>;
}

impl DeviceCalls for Process {
    fn watch_devices(&self, fd: i32, tag: i32, flags: u32) -> Result<()> {
        if !self.kernel().config().device_notifications {
            return Err(Errno::ENOSYS);
        }
        if flags != 0 || !(-1..=255).contains(&tag) {
            return Err(Errno::EINVAL);
        }
        let q = self.watch_queue(fd)?;
        let limit = self.soft_nofile();
        let policy = self.kernel().policy();
        self.kernel()
            .devices()
            .watch(&q, tag, &self.cred(), &*policy, limit)
    }
}

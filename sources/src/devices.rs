//! The global device watch list and the two sources that post to it.
//!
//! Owns [`DeviceList`] (mirroring the pipe-era series' single
//! `watch_list` behind `watch_devices(2)`: every watch has object id 0, so a
//! queue can watch it once), [`BlockDevices`] (disks with `dev_t` numbers
//! whose request errors can be injected) and [`UsbBus`] (USB devices and
//! buses named like `1-1.2`). Block and USB events are posted to the device
//! list with the system's credentials (`init_cred`), as the series did.

use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use watchq_core::uapi::{block, usb};
use watchq_core::{
    post_watch_notification, watch_or_unwatch, Cred, Errno, Notification, Policy, PostSummary,
    Result, WatchList, WatchQueue,
};

/// The global device watch list. Mirrors the series' `device_watchers`.
pub struct DeviceList {
    list: Arc<WatchList>,
    system: Arc<Cred>,
}

impl std::fmt::Debug for DeviceList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceList")
            .field("watches", &self.list.len())
            .finish()
    }
}

impl DeviceList {
    /// An empty list; events are posted as `system` (the kernel's `init_cred`).
    pub fn new(system: Cred) -> Self {
        DeviceList {
            list: WatchList::new(),
            system: Arc::new(system),
        }
    }

    /// `watch_devices(fd, tag, 0)` once the queue is found: `tag` 0..=255
    /// adds the queue's watch, −1 removes it (posting a removal record).
    /// `limit` is the caller's soft RLIMIT_NOFILE.
    ///
    /// # Errors
    /// Adding: the policy's `watch_devices` error, `EBUSY` (the queue
    /// already watches devices), `EAGAIN` (watch limit). Removing: `EBADSLT`.
    pub fn watch(
        &self,
        queue: &Arc<WatchQueue>,
        tag: i32,
        cred: &Cred,
        policy: &dyn Policy,
        limit: u64,
    ) -> Result<()> {
        watch_or_unwatch(&self.list, queue, 0, tag, cred, limit, || {
            policy.watch_devices(cred)
        })
    }

    /// Posts `n` to every device watch, as the system.
    pub fn post(&self, n: &Notification, policy: &dyn Policy) -> PostSummary {
        post_watch_notification(Some(&self.list), n, &self.system, 0, policy)
    }

    /// Watches now.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when no queue watches devices.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// `dev_t` as the kernel encodes it (`MKDEV`: 12-bit major, 20-bit minor).
pub fn mkdev(major: u32, minor: u32) -> u64 {
    (u64::from(major) << 20) | u64::from(minor & 0xf_ffff)
}

/// Block devices. Mirrors the disks the block layer knows.
#[derive(Debug, Default)]
pub struct BlockDevices {
    disks: Mutex<BTreeMap<u64, String>>,
}

impl BlockDevices {
    /// No disks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds disk `name` as `major:minor`; returns its `dev_t`.
    ///
    /// # Errors
    /// `EEXIST`: that number or name is taken. `EINVAL`: an empty name or
    /// a major beyond 12 bits.
    pub fn add(&self, name: &str, major: u32, minor: u32) -> Result<u64> {
        if name.is_empty() || major >= 1 << 12 || minor >= 1 << 20 {
            return Err(Errno::EINVAL);
        }
        let dev = mkdev(major, minor);
        let mut d = self.disks.lock();
        if d.contains_key(&dev) || d.values().any(|n| n == name) {
            return Err(Errno::EEXIST);
        }
        d.insert(dev, name.to_string());
        Ok(dev)
    }

    /// Removes a disk.
    ///
    /// # Errors
    /// `ENODEV`: no such disk.
    pub fn remove(&self, dev: u64) -> Result<()> {
        self.disks
            .lock()
            .remove(&dev)
            .map(drop)
            .ok_or(Errno::ENODEV)
    }

    /// The `dev_t` of disk `name`.
    pub fn by_name(&self, name: &str) -> Option<u64> {
        self.disks
            .lock()
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(&d, _)| d)
    }

    /// A request on disk `dev` failed with error `kind` (1..=10, the
    /// `uapi::block` subtypes) at `sector`: posts it to the device list.
    ///
    /// # Errors
    /// `ENODEV` (no such disk), `EINVAL` (no such kind).
    pub fn inject_error(
        &self,
        list: &DeviceList,
        policy: &dyn Policy,
        dev: u64,
        kind: u8,
        sector: u64,
    ) -> Result<PostSummary> {
        if !self.disks.lock().contains_key(&dev) {
            return Err(Errno::ENODEV);
        }
        if !(block::TIMEOUT..=block::IO).contains(&kind) {
            return Err(Errno::EINVAL);
        }
        Ok(list.post(&Notification::block(kind, dev, sector), policy))
    }
}

/// USB devices and buses. Mirrors the USB core's device notifier.
#[derive(Debug, Default)]
pub struct UsbBus {
    devices: Mutex<BTreeSet<String>>,
}

impl UsbBus {
    /// No devices.
    pub fn new() -> Self {
        Self::default()
    }

    fn event(
        &self,
        list: &DeviceList,
        policy: &dyn Policy,
        st: u8,
        error: u32,
        name: &str,
    ) -> PostSummary {
        list.post(&Notification::usb(st, error, name), policy)
    }

    /// Device `name` (like `1-1.2`) is plugged in: DEVICE_ADD.
    ///
    /// # Errors
    /// `EINVAL` (empty name), `EEXIST` (already there).
    pub fn add(&self, list: &DeviceList, policy: &dyn Policy, name: &str) -> Result<PostSummary> {
        if name.is_empty() {
            return Err(Errno::EINVAL);
        }
        if !self.devices.lock().insert(name.to_string()) {
            return Err(Errno::EEXIST);
        }
        Ok(self.event(list, policy, usb::DEVICE_ADD, 0, name))
    }

    fn present(&self, name: &str) -> Result<()> {
        if self.devices.lock().contains(name) {
            Ok(())
        } else {
            Err(Errno::ENODEV)
        }
    }

    /// Device `name` is unplugged: DEVICE_REMOVE.
    ///
    /// # Errors
    /// `ENODEV`: no such device.
    pub fn remove(
        &self,
        list: &DeviceList,
        policy: &dyn Policy,
        name: &str,
    ) -> Result<PostSummary> {
        self.present(name)?;
        self.devices.lock().remove(name);
        Ok(self.event(list, policy, usb::DEVICE_REMOVE, 0, name))
    }

    /// Device `name` is reset by its hub: DEVICE_RESET.
    ///
    /// # Errors
    /// `ENODEV`: no such device.
    pub fn reset(&self, list: &DeviceList, policy: &dyn Policy, name: &str) -> Result<PostSummary> {
        self.present(name)?;
        Ok(self.event(list, policy, usb::DEVICE_RESET, 0, name))
    }

    /// Device `name` reports error `code`: DEVICE_ERROR.
    ///
    /// # Errors
    /// `ENODEV`: no such device.
    pub fn error(
        &self,
        list: &DeviceList,
        policy: &dyn Policy,
        name: &str,
        code: u32,
    ) -> Result<PostSummary> {
        self.present(name)?;
        Ok(self.event(list, policy, usb::DEVICE_ERROR, code, name))
    }

    /// Devices present now.
    pub fn devices(&self) -> Vec<String> {
        self.devices.lock().iter().cloned().collect()
    }
}

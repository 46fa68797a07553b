//! Shared fixtures of watchq's cross-crate tests.
//!
//! [`Fixture`] is a process with a notification pipe and a watched object:
//! an event source reduced to its watch list, so the queue, read and
//! syscall rules can be tested on their own; the key source has its own
//! tests.
#![deny(unsafe_code)]

// fork(2), _exit(2) and waitpid(2): the one module that needs unsafe.
#[allow(unsafe_code)]
pub mod child;
pub mod oracle;
pub mod programs;

use std::sync::Arc;
use watchq_core::uapi::{RawWatchNotificationTypeFilter, O_NONBLOCK, O_NOTIFICATION_PIPE};
use watchq_core::{
    add_watch_to_object, post_watch_notification, remove_watch_from_object, Errno, Notification,
    PostSummary, Watch, WatchList,
};
use watchq_kernel::prelude::*;
use watchq_kernel::{Kernel, KernelConfig, Process};

/// A process holding a notification pipe, and one watched object.
pub struct Fixture {
    /// The kernel.
    pub kernel: Arc<Kernel>,
    /// The consumer process (root).
    pub proc_: Arc<Process>,
    /// Read end.
    pub rfd: i32,
    /// Write end.
    pub wfd: i32,
    /// The watched object's list.
    pub list: Arc<WatchList>,
}

/// The object id the fixture watches.
pub const OBJ: u64 = 0x1234_abcd;

impl Fixture {
    /// A non-blocking notification pipe, sized to `notes` (None: unsized),
    /// watching object [`OBJ`] with tag 1.
    pub fn new(notes: Option<u64>) -> Self {
        let kernel = Kernel::new(KernelConfig::default());
        let proc_ = kernel.spawn(0, 0);
        let [rfd, wfd] = proc_.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
        if let Some(n) = notes {
            proc_.set_queue_size(rfd, n).unwrap();
        }
        let f = Fixture {
            kernel,
            proc_,
            rfd,
            wfd,
            list: WatchList::new(),
        };
        f.watch(rfd, OBJ, 1).unwrap();
        f
    }

    /// Adds a watch by the queue behind `fd` on object `id` of this list.
    ///
    /// # Errors
    /// As `add_watch_to_object`, or EINVAL for a bad fd.
    pub fn watch(&self, fd: i32, id: u64, tag: u8) -> Result<(), Errno> {
        let q = self.proc_.watch_queue(fd)?;
        let w = Watch::new(&q, &self.list, id, tag, self.proc_.cred());
        add_watch_to_object(&w, self.proc_.rlimit_nofile().0)
    }

    /// Removes the watch of the queue behind `fd` on `id`.
    ///
    /// # Errors
    /// As `remove_watch_from_object`.
    pub fn unwatch(&self, fd: i32, id: u64) -> Result<(), Errno> {
        let q = self.proc_.watch_queue(fd)?;
        remove_watch_from_object(&self.list, Some(&q), id, false)
    }

    /// Posts a key event (`subtype`, key [`OBJ`], `aux`) to the watches.
    pub fn post(&self, subtype: u8, aux: u32) -> PostSummary {
        let n = Notification::key(subtype, OBJ as u32, aux);
        post_watch_notification(
            Some(&self.list),
            &n,
            &self.proc_.cred(),
            OBJ,
            &*self.kernel.policy(),
        )
    }

    /// `read(rfd, len)`: the bytes, or the errno.
    pub fn read(&self, len: usize) -> Result<Vec<u8>, Errno> {
        let mut b = vec![0u8; len];
        let n = self.proc_.read(self.rfd, &mut b)?;
        b.truncate(n);
        Ok(b)
    }
}

/// The key record the fixture's watch (tag 1) receives for `subtype`/`aux`.
pub fn key_record(subtype: u8, aux: u32) -> Vec<u8> {
    let mut n = Notification::key(subtype, OBJ as u32, aux);
    n.set_info_id(1 << 8);
    n.as_bytes().to_vec()
}

/// The 8-byte loss record.
pub const LOSS: [u8; 8] = [0, 0, 0, 1, 8, 0, 0, 0];

/// A filter entry for `type_` accepting the subtypes in `subtypes` bitmap
/// word 0, with an info mask and filter.
pub fn entry(
    type_: u32,
    subtypes: u32,
    info_mask: u32,
    info_filter: u32,
) -> RawWatchNotificationTypeFilter {
    let mut e = RawWatchNotificationTypeFilter {
        type_,
        info_filter,
        info_mask,
        ..Default::default()
    };
    e.subtype_filter[0] = subtypes;
    e
}

/// A policy that refuses every record and counts the records it was
/// asked about (and, of those, the META ones).
#[derive(Default)]
pub struct DenyAll {
    /// Records the hook was asked about.
    pub asked: std::sync::atomic::AtomicUsize,
    /// Of those, META records.
    pub meta: std::sync::atomic::AtomicUsize,
}

impl watchq_core::Policy for DenyAll {
    fn name(&self) -> &str {
        "deny-all"
    }
    fn post_notification(
        &self,
        _: &watchq_core::Cred,
        _: &watchq_core::Cred,
        n: &Notification,
    ) -> watchq_core::lsm::Verdict {
        use std::sync::atomic::Ordering::Relaxed;
        self.asked.fetch_add(1, Relaxed);
        self.meta.fetch_add(usize::from(n.is_meta()), Relaxed);
        Err(watchq_core::lsm::Denial::new(Errno::EACCES, "deny all"))
    }
}

//! What the kernel, and other tasks, reach of a task.
//!
//! Owns [`TaskShared`]: a task's fd table (mirroring `current->files`,
//! which `/proc/PID/fd` opens read) and its keyring anchors (the keyring
//! pointers of `struct cred` and the request-key authority, which the key
//! garbage collector takes as roots). The [`Kernel`](crate::Kernel)'s
//! process table holds these, weakly, by pid; the rest of a task (its
//! credentials, limits, alarm, mount namespace) belongs to
//! [`Process`](crate::Process) alone, so the table never names it and the
//! kernel and its processes do not depend on each other.

use crate::fdtable::FdTable;
use crate::file::OpenFile;
use parking_lot::Mutex;
use std::sync::Arc;
use watchq_core::Result;
use watchq_sources::keys::Anchors;

/// A task's fd table and keyring anchors, behind their locks.
#[derive(Debug)]
pub(crate) struct TaskShared {
    pub(crate) fds: Mutex<FdTable>,
    pub(crate) anchors: Mutex<Anchors>,
}

impl TaskShared {
    /// The open file behind `fd` (`fget()`).
    ///
    /// # Errors
    /// EBADF: `fd` is not open.
    pub(crate) fn file(&self, fd: i32) -> Result<Arc<OpenFile>> {
        Ok(self.fds.lock().entry(fd)?.file.clone())
    }
}

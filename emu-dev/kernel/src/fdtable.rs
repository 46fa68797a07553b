//! A process's file descriptor table.
//!
//! Owns [`FdTable`], mirroring `struct files_struct`: slots of open files
//! with a close-on-exec bit, lowest-free allocation below the soft
//! `RLIMIT_NOFILE`, and the copy `fork()` makes (the open files themselves
//! are shared, as in the kernel).

use crate::file::OpenFile;
use std::sync::Arc;
use watchq_core::{Errno, Result};

#[derive(Clone, Debug)]
pub(crate) struct FdEntry {
    pub(crate) file: Arc<OpenFile>,
    pub(crate) cloexec: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct FdTable {
    slots: Vec<Option<FdEntry>>,
}

impl FdTable {
    /// The entry at `fd`.
    ///
    /// # Errors
    /// EBADF: `fd` is negative or not open.
    pub(crate) fn entry(&self, fd: i32) -> Result<&FdEntry> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i))
            .and_then(Option::as_ref)
            .ok_or(Errno::EBADF)
    }

    pub(crate) fn entry_mut(&mut self, fd: i32) -> Result<&mut FdEntry> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or(Errno::EBADF)
    }

    /// Lowest free descriptor at or above `min` and below `limit`.
    /// Mirrors `alloc_fd()`.
    ///
    /// # Errors
    /// EMFILE: none free below `limit`.
    pub(crate) fn lowest_free(&self, min: usize, limit: u64) -> Result<i32> {
        let mut fd = min;
        while fd < self.slots.len() && self.slots[fd].is_some() {
            fd += 1;
        }
        if fd as u64 >= limit || fd > i32::MAX as usize {
            return Err(Errno::EMFILE);
        }
        Ok(fd as i32)
    }

    /// Allocates the lowest free descriptor at or above `min` for `file`.
    ///
    /// # Errors
    /// EMFILE: none free below `limit`.
    pub(crate) fn alloc(
        &mut self,
        file: Arc<OpenFile>,
        cloexec: bool,
        min: usize,
        limit: u64,
    ) -> Result<i32> {
        let fd = self.lowest_free(min, limit)?;
        self.install(fd, FdEntry { file, cloexec });
        Ok(fd)
    }

    /// Puts `entry` at `fd`, returning what was there.
    pub(crate) fn install(&mut self, fd: i32, entry: FdEntry) -> Option<FdEntry> {
        let i = fd as usize;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        self.slots[i].replace(entry)
    }

    /// Takes the entry at `fd` out.
    ///
    /// # Errors
    /// EBADF: not open.
    pub(crate) fn remove(&mut self, fd: i32) -> Result<FdEntry> {
        self.entry(fd)?;
        Ok(self.slots[fd as usize].take().expect("checked above"))
    }

    /// Drops the close-on-exec entries (`do_close_on_exec()`).
    pub(crate) fn close_on_exec(&mut self) -> Vec<FdEntry> {
        let mut gone = Vec::new();
        for s in &mut self.slots {
            if s.as_ref().is_some_and(|e| e.cloexec) {
                gone.extend(s.take());
            }
        }
        gone
    }

    /// Every open descriptor and its entry.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i32, &FdEntry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i as i32, e)))
    }

    /// Takes every entry out (process exit).
    pub(crate) fn take_all(&mut self) -> Vec<FdEntry> {
        self.slots.drain(..).flatten().collect()
    }
}

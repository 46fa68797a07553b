//! The same system calls on a watchq process (feature `emulated`).

use crate::Backend;
use std::sync::Arc;
use watchq_core::uapi::*;
use watchq_core::Errno;
use watchq_kernel::prelude::*;
use watchq_kernel::{PollFd, Process};

/// watchq's emulated kernel, as one of its processes.
#[derive(Clone)]
pub struct Emulated {
    process: Arc<Process>,
}

impl Emulated {
    /// Calls made as `process`.
    pub fn new(process: Arc<Process>) -> Self {
        Emulated { process }
    }

    /// The process the calls are made as.
    pub fn process(&self) -> &Arc<Process> {
        &self.process
    }
}

impl Backend for Emulated {
    fn notification_pipe(&self) -> Result<[i32; 2], Errno> {
        self.process.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK)
    }
    fn set_size(&self, fd: i32, notes: u64) -> Result<(), Errno> {
        self.process.set_queue_size(fd, notes)
    }
    fn set_filter(&self, fd: i32, blob: Option<&[u8]>) -> Result<(), Errno> {
        self.process.set_queue_filter(fd, blob)
    }
    fn watch_key(&self, key: i32, fd: i32, tag: i32) -> Result<(), Errno> {
        self.process.keyctl_watch_key(key, fd, tag)
    }
    fn watch_mount(&self, path: &str, fd: i32, tag: i32) -> Result<(), Errno> {
        self.process
            .watch_mount(watchq_kernel::process_consts::AT_FDCWD, path, 0, fd, tag)
    }
    fn watch_sb(&self, path: &str, fd: i32, tag: i32) -> Result<(), Errno> {
        self.process
            .watch_sb(watchq_kernel::process_consts::AT_FDCWD, path, 0, fd, tag)
    }
    fn watch_devices(&self, fd: i32, tag: i32) -> Result<(), Errno> {
        self.process.watch_devices(fd, tag, 0)
    }
    fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
        self.process.read(fd, buf)
    }
    fn poll_in(&self, fd: i32, timeout_ms: i32) -> Result<bool, Errno> {
        let mut fds = [PollFd::new(fd, POLLIN)];
        Ok(self.process.poll(&mut fds, timeout_ms)? > 0)
    }
    fn close(&self, fd: i32) {
        let _ = self.process.close(fd);
    }
}

//! poll(2).
//!
//! Owns [`PollFd`] and mirrors `do_sys_poll()` of fs/select.c: scan every
//! entry's file, and while none is ready sleep on the pipes' wait queues
//! until a wake-up, the timeout or the alarm. A file's readiness is its
//! own (`pipe_poll()`, the 2019 device's `watch_queue_poll()`).

use super::dev_watch_queue;
use crate::file::{FileKind, OpenFile};
use crate::process::Process;
use std::sync::Arc;
use std::time::{Duration, Instant};
use watchq_core::uapi::*;
use watchq_core::wait::Waiter;
use watchq_core::{Errno, Result};

/// One entry of a `poll()` set. Mirrors `struct pollfd`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollFd {
    /// The descriptor; negative entries are ignored.
    pub fd: i32,
    /// Requested events (`POLL*`).
    pub events: u16,
    /// Returned events.
    pub revents: u16,
}

impl PollFd {
    /// An entry asking for `events` on `fd`.
    pub fn new(fd: i32, events: u16) -> Self {
        PollFd {
            fd,
            events,
            revents: 0,
        }
    }
}

/// The poll system call. Mirrors fs/select.c.
pub trait PollCalls {
    /// `poll()`: waits up to `timeout_ms` (negative: for ever, 0: not at all)
    /// for an event; returns how many entries have `revents` set.
    ///
    /// # Errors
    /// - `EINVAL`: more entries than the soft `RLIMIT_NOFILE`.
    /// - `EINTR`: the alarm went off while sleeping.
    fn poll(&self, fds: &mut [PollFd], timeout_ms: i32) -> Result<usize>;
}

impl PollCalls for Process {
    fn poll(&self, fds: &mut [PollFd], timeout_ms: i32) -> Result<usize> {
        if fds.len() as u64 > self.soft_nofile() {
            return Err(Errno::EINVAL);
        }
        let timeout =
            (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        let files: Vec<Option<Arc<OpenFile>>> = fds
            .iter()
            .map(|p| if p.fd < 0 { None } else { self.file(p.fd).ok() })
            .collect();
        let scan = |fds: &mut [PollFd]| {
            let mut n = 0;
            for (p, f) in fds.iter_mut().zip(&files) {
                p.revents = if p.fd < 0 {
                    0
                } else {
                    match f {
                        None => POLLNVAL,
                        Some(f) => poll_mask(f) & (p.events | POLLERR | POLLHUP),
                    }
                };
                n += usize::from(p.revents != 0);
            }
            n
        };
        // A notification queue in the set: a poll that finds nothing lets
        // the key collector the last key call queued run first
        // (Kernel::flush_key_gc), as a consumer's wait lets the kernel's.
        let queues_keys = files.iter().flatten().any(|f| {
            matches!(&f.kind, FileKind::WatchQueueDev(_))
                || f.pipe().is_some_and(|p| p.queue().is_some())
        });
        loop {
            let mut n = scan(fds);
            if n == 0 && queues_keys && self.kernel().keys().gc_pending() {
                self.kernel().flush_key_gc();
                n = scan(fds);
            }
            if n > 0 || timeout_ms == 0 {
                return Ok(n);
            }
            let alarm = self.alarm_deadline();
            let now = Instant::now();
            if alarm.is_some_and(|a| a <= now) {
                return Err(Errno::EINTR);
            }
            if timeout.is_some_and(|t| t <= now) {
                return Ok(0);
            }
            let w = Waiter::current();
            let mut queues = Vec::new();
            for f in files.iter().flatten() {
                if let Some(p) = f.pipe() {
                    if f.readable() {
                        queues.push(p.rd_wait());
                    }
                    if f.writable() {
                        queues.push(p.wr_wait());
                    }
                }
            }
            for q in &queues {
                q.register(&w);
            }
            if scan(fds) == 0 {
                let deadline = match (alarm, timeout) {
                    (Some(a), Some(t)) => Some(a.min(t)),
                    (a, t) => a.or(t),
                };
                w.park(deadline);
            }
            for q in &queues {
                q.unregister(&w);
            }
        }
    }
}

/// The events `f` has now (its `f_op->poll`).
fn poll_mask(f: &OpenFile) -> u16 {
    match &f.kind {
        FileKind::Pipe(p) => {
            let mut m = 0;
            if f.readable() {
                m |= p.poll_read();
            }
            if f.writable() {
                m |= p.poll_write();
            }
            m
        }
        FileKind::WatchQueueDev(q) => dev_watch_queue::poll(q),
        _ => POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM,
    }
}

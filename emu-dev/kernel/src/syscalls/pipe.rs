//! pipe(2) and pipe2(2), and the pipe's own ioctl and fcntl commands.
//!
//! Mirrors the system-call side of fs/pipe.c: `do_pipe2()` /
//! `__do_pipe_flags()`, `pipe_ioctl()` (FIONREAD and, with
//! `CONFIG_WATCH_QUEUE`, the `IOC_WATCH_QUEUE_*` commands, which go to the
//! queue as `watch_queue_set_size()`/`watch_queue_set_filter()` do) and
//! `pipe_fcntl()` (F_SETPIPE_SZ, F_GETPIPE_SZ). The pipe itself is the
//! crate's `Pipe` (pipe.rs); reads and writes of its ends are the generic
//! calls of [`ReadWriteCalls`](super::read_write::ReadWriteCalls).

use super::uaccess::write_user_int;
use crate::file::{FileKind, OpenFile};
use crate::pipe::Pipe;
use crate::process::Process;
use watchq_core::uapi::*;
use watchq_core::{Cred, Errno, Result};

/// The pipe system calls. Mirrors fs/pipe.c.
pub trait PipeCalls {
    /// `pipe()`: `pipe2(fds, 0)`.
    ///
    /// # Errors
    /// As [`PipeCalls::pipe2`].
    fn pipe(&self) -> Result<[i32; 2]>;

    /// `pipe2()`: `[read end, write end]`. With `O_NOTIFICATION_PIPE` the
    /// pipe carries a notification queue (unsized until `SET_SIZE`).
    ///
    /// # Errors
    /// In the kernel's order:
    /// - `EINVAL`: a flag other than O_CLOEXEC, O_NONBLOCK, O_DIRECT, O_NOTIFICATION_PIPE.
    /// - `ENFILE`: the user is over `pipe-user-pages-hard` (an unprivileged
    ///   caller; any pipe, `alloc_pipe_info()`).
    /// - `ENOPKG`: O_NOTIFICATION_PIPE on a kernel without `CONFIG_WATCH_QUEUE`.
    /// - `EMFILE`: no two free descriptors below the soft `RLIMIT_NOFILE`.
    fn pipe2(&self, flags: u32) -> Result<[i32; 2]>;
}

impl PipeCalls for Process {
    fn pipe(&self) -> Result<[i32; 2]> {
        self.pipe2(0)
    }

    fn pipe2(&self, flags: u32) -> Result<[i32; 2]> {
        if flags & !(O_CLOEXEC | O_NONBLOCK | O_DIRECT | O_NOTIFICATION_PIPE) != 0 {
            return Err(Errno::EINVAL);
        }
        let kernel = self.kernel();
        let ino = kernel.alloc_ino();
        let notification = flags & O_NOTIFICATION_PIPE != 0;
        // alloc_pipe_info(): every pipe is charged to its user (ENFILE),
        // before watch_queue_init() (ENOPKG) gives the pages back.
        let cred = self.cred();
        let pages = crate::pipe::alloc_pipe_pages(
            &cred.user,
            kernel.pipe_user_pages(),
            pipe_privileged(&cred),
        )?;
        if notification && !kernel.config().watch_queue {
            cred.user.account_pipe_buffers(pages as u64, 0);
            return Err(Errno::ENOPKG);
        }
        let pipe = if notification {
            Pipe::new_notification(ino, kernel.alloc_faults().clone(), cred.user.clone(), pages)
        } else {
            Pipe::new_bytes(ino, cred.user.clone(), pages)
        };
        // create_pipe_files(): O_DIRECT only shows on the write end.
        let rd = OpenFile::new(
            FileKind::Pipe(pipe.clone()),
            O_RDONLY | (flags & O_NONBLOCK),
        );
        let wr = OpenFile::new(
            FileKind::Pipe(pipe),
            O_WRONLY | (flags & (O_NONBLOCK | O_DIRECT)),
        );
        let cloexec = flags & O_CLOEXEC != 0;
        let limit = self.soft_nofile();
        let mut t = self.fd_table();
        let r = t.alloc(rd, cloexec, 0, limit)?;
        match t.alloc(wr, cloexec, 0, limit) {
            Ok(w) => Ok([r, w]),
            Err(e) => {
                let _ = t.remove(r);
                Err(e)
            }
        }
    }
}

/// `pipe_is_unprivileged_user()`'s opposite: CAP_SYS_RESOURCE or
/// CAP_SYS_ADMIN, which the pipe page limits do not bind.
pub(crate) fn pipe_privileged(cred: &Cred) -> bool {
    cred.capable(watchq_core::lsm::caps::CAP_SYS_RESOURCE)
        || cred.capable(watchq_core::lsm::caps::CAP_SYS_ADMIN)
}

/// What a pipe ioctl needs of its caller: `CONFIG_WATCH_QUEUE`, the
/// pipe page limits (soft, hard) and whether they bind the caller.
pub(super) struct IoctlCtx {
    pub(super) watch_queue: bool,
    pub(super) limits: (u64, u64),
    pub(super) privileged: bool,
}

/// `pipe_ioctl()`: FIONREAD, then (when `watch_queue`, the kernel's
/// `CONFIG_WATCH_QUEUE`) the watch-queue commands of a notification pipe.
///
/// # Errors
/// `EFAULT` (FIONREAD's `mem`), `ENODEV` (a watch-queue command on an
/// ordinary pipe), the queue's `set_size`/`set_filter` errors with
/// `EPERM` from the pipe page accounting after `EINVAL`, `ENOTTY` (any
/// other command).
pub(super) fn pipe_ioctl(
    p: &Pipe,
    cx: &IoctlCtx,
    cmd: u64,
    arg: u64,
    mem: Option<&mut [u8]>,
) -> Result<i64> {
    let watch_queue = cx.watch_queue;
    match cmd {
        FIONREAD => {
            write_user_int(mem, p.fionread() as i32)?;
            Ok(0)
        }
        IOC_WATCH_QUEUE_SET_SIZE if watch_queue => {
            let q = p.queue().ok_or(Errno::ENODEV)?;
            // ENODEV, EBUSY, EINVAL are the queue's, before the accounting.
            let nr_notes = arg as u32;
            let charged = if q.nr_pages().is_none() && (1..=512).contains(&nr_notes) {
                p.account_set_size(nr_notes, cx.limits, cx.privileged)?
            } else {
                None
            };
            if let Err(e) = q.set_size(arg) {
                if let Some(old) = charged {
                    p.unaccount_set_size(old);
                }
                return Err(e);
            }
            Ok(0)
        }
        IOC_WATCH_QUEUE_SET_FILTER if watch_queue => {
            let q = p.queue().ok_or(Errno::ENODEV)?;
            if arg == 0 {
                q.set_filter(None)?;
            } else {
                q.set_filter(Some(mem.as_deref().ok_or(Errno::EFAULT)?))?;
            }
            Ok(0)
        }
        _ => Err(Errno::ENOTTY),
    }
}

/// `pipe_fcntl()`: F_SETPIPE_SZ and F_GETPIPE_SZ on `f`.
///
/// # Errors
/// `EBADF` (`f` is not a pipe), then as `Pipe::set_pipe_size`; `EINVAL`
/// for another command.
pub(super) fn pipe_fcntl(
    f: &OpenFile,
    cmd: i32,
    arg: u64,
    cred: &Cred,
    limits: (u64, u64),
) -> Result<i64> {
    let p = f.pipe().ok_or(Errno::EBADF)?;
    match cmd {
        F_SETPIPE_SZ => Ok(p.set_pipe_size(arg, cred, limits)? as i64),
        F_GETPIPE_SZ => Ok((p.max_usage() * PAGE_SIZE) as i64),
        _ => Err(Errno::EINVAL),
    }
}

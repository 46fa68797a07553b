//! open(2), close(2), dup(2)/dup2(2)/dup3(2), fcntl(2), ioctl(2) and
//! memfd_create(2): the calls on descriptors and open files as such.
//!
//! Mirrors fs/open.c (`do_sys_open()`, `close_fd()`), fs/file.c
//! (`dup()`, `do_dup2()`), fs/fcntl.c (`do_fcntl()`), fs/ioctl.c
//! (`do_vfs_ioctl()`) and mm/memfd.c. What a command means to one kind of
//! file is that file's own: `pipe_fcntl()` and `pipe_ioctl()` in
//! [`super::pipe`], the 2019 device's ioctl in [`super::dev_watch_queue`].

use super::uaccess::{read_user_int, write_user_int};
use super::{dev_watch_queue, pipe};
use crate::fdtable::FdEntry;
use crate::file::{FileKind, MemInode, OpenFile};
use crate::process::Process;
use parking_lot::Mutex;
use std::sync::Arc;
use watchq_core::uapi::*;
use watchq_core::{Errno, Result};

/// The calls on descriptors and open files. Mirrors fs/open.c, fs/file.c,
/// fs/fcntl.c, fs/ioctl.c and mm/memfd.c.
pub trait FileCalls {
    /// `open()` of the few paths the emulation has: `/`, `/dev/null`,
    /// `/dev/console` (or `/dev/tty`), `/dev/watch_queue` (the 2019 device:
    /// every open is a new queue; absent without `CONFIG_WATCH_QUEUE`),
    /// and `/proc/self/fd/N` or
    /// `/proc/PID/fd/N`, which opens a new file on the same object (for a
    /// pipe, a new end with the requested mode, as the kernel's FIFO open).
    ///
    /// # Errors
    /// - `ENOENT`: no such path (or process, or descriptor).
    /// - `EISDIR`: a directory opened for writing.
    /// - `ENOTDIR`: O_DIRECTORY on something else.
    /// - `EMFILE`: no free descriptor.
    fn open(&self, path: &str, flags: u32) -> Result<i32>;

    /// `close()`. The last close of a notification pipe's files clears its
    /// queue: every watch is detached, without removal records.
    ///
    /// # Errors
    /// EBADF: not open.
    fn close(&self, fd: i32) -> Result<()>;

    /// `dup()`: the lowest free descriptor, sharing the open file.
    ///
    /// # Errors
    /// - `EBADF`: `fd` is not open.
    /// - `EMFILE`: no free descriptor below the soft limit.
    fn dup(&self, fd: i32) -> Result<i32>;

    /// `dup2()`: `new` refers to `old`'s open file (closing what it was).
    ///
    /// # Errors
    /// - `EBADF`: `old` not open, or `new` outside 0..soft limit.
    fn dup2(&self, old: i32, new: i32) -> Result<i32>;

    /// `dup3()`: as `dup2` with O_CLOEXEC allowed, and `old == new` refused.
    ///
    /// # Errors
    /// In the kernel's order:
    /// - `EINVAL`: a flag other than O_CLOEXEC, or `old == new`.
    /// - `EBADF`: `new` outside 0..soft limit, or `old` not open.
    fn dup3(&self, old: i32, new: i32, flags: u32) -> Result<i32>;

    /// `fcntl()`. Returns the command's value (0 for setters).
    ///
    /// # Errors
    /// - `EBADF`: `fd` not open; F_SETPIPE_SZ/F_GETPIPE_SZ on a non-pipe.
    /// - `EINVAL`: unknown command; F_DUPFD minimum at or above the soft
    ///   limit; F_SETFL asking for O_DIRECT on a file that cannot do it.
    /// - `EMFILE`: F_DUPFD with no free descriptor.
    /// - `EBUSY`: F_SETPIPE_SZ on a notification pipe, or below the queued amount.
    /// - `EPERM`: F_SETPIPE_SZ over `pipe-max-size` without CAP_SYS_RESOURCE.
    fn fcntl(&self, fd: i32, cmd: i32, arg: u64) -> Result<i64>;

    /// `ioctl()`. `arg` is the raw argument; `mem` is the user memory it
    /// points at, as far as it is accessible (`None`: nothing mapped there).
    ///
    /// Generic commands first (FIOCLEX, FIONCLEX, FIONBIO, FIONREAD on a
    /// regular file), then the pipe's: FIONREAD, and with
    /// `CONFIG_WATCH_QUEUE` IOC_WATCH_QUEUE_SET_SIZE (`arg` notes, truncated
    /// to 32 bits) and IOC_WATCH_QUEUE_SET_FILTER (`arg` 0 removes the
    /// filter, else the filter blob is read from `mem`). A `/dev/watch_queue`
    /// descriptor takes the 2019 driver's SET_SIZE and SET_FILTER instead.
    ///
    /// # Errors
    /// In the kernel's order:
    /// - `EBADF`: `fd` not open.
    /// - `EFAULT`: `mem` too short for what the command reads or writes.
    /// - `ENOTTY`: not a pipe (for the pipe commands), or a command the file does not know.
    /// - `ENODEV`: a watch-queue command on an ordinary pipe.
    /// - `EOPNOTSUPP`: a command the 2019 device does not know.
    /// - `EBUSY`, `EINVAL`, `ENOMEM`: as `WatchQueue::set_size`;
    ///   `EFAULT`, `EINVAL`: as `WatchQueue::set_filter`.
    fn ioctl(&self, fd: i32, cmd: u64, arg: u64, mem: Option<&mut [u8]>) -> Result<i64>;

    /// `memfd_create()`: an anonymous regular file, open read-write.
    ///
    /// # Errors
    /// - `EINVAL`: unknown flags, or a name longer than 249 bytes.
    /// - `EMFILE`: no free descriptor.
    fn memfd_create(&self, name: &str, flags: u32) -> Result<i32>;
}

impl FileCalls for Process {
    fn open(&self, path: &str, flags: u32) -> Result<i32> {
        let acc = flags & O_ACCMODE_MASK;
        let kind = if path == "/" {
            if acc != O_RDONLY {
                return Err(Errno::EISDIR);
            }
            FileKind::Directory
        } else if flags & O_DIRECTORY != 0 {
            return Err(if path_exists(self, path) {
                Errno::ENOTDIR
            } else {
                Errno::ENOENT
            });
        } else if path == "/dev/watch_queue" {
            // A kernel without CONFIG_WATCH_QUEUE has no such device.
            if !self.kernel().config().watch_queue {
                return Err(Errno::ENOENT);
            }
            dev_watch_queue::open()
        } else if path == "/dev/null" {
            FileKind::Null
        } else if path == "/dev/console" || path == "/dev/tty" {
            FileKind::Console
        } else if let Some(f) = proc_fd(self, path) {
            let f = f?;
            match &f.kind {
                FileKind::Pipe(p) => FileKind::Pipe(p.clone()),
                FileKind::Regular(m) => FileKind::Regular(m.clone()),
                FileKind::Null => FileKind::Null,
                FileKind::Console => FileKind::Console,
                FileKind::WatchQueueDev(_) => dev_watch_queue::open(),
                FileKind::Directory => {
                    if acc != O_RDONLY {
                        return Err(Errno::EISDIR);
                    }
                    FileKind::Directory
                }
            }
        } else {
            return Err(Errno::ENOENT);
        };
        let mut fl = flags & (O_ACCMODE_MASK | O_NONBLOCK | O_APPEND | O_DIRECT | O_ASYNC);
        if !matches!(kind, FileKind::Pipe(_)) {
            fl |= O_LARGEFILE;
        }
        if let FileKind::Regular(m) = &kind {
            if flags & O_TRUNC != 0 && acc != O_RDONLY {
                m.data.lock().clear();
            }
        }
        self.install(OpenFile::new(kind, fl), flags & O_CLOEXEC != 0)
    }

    fn close(&self, fd: i32) -> Result<()> {
        let e = self.fd_table().remove(fd)?;
        drop(e);
        Ok(())
    }

    fn dup(&self, fd: i32) -> Result<i32> {
        let limit = self.soft_nofile();
        let mut t = self.fd_table();
        let file = t.entry(fd)?.file.clone();
        t.alloc(file, false, 0, limit)
    }

    fn dup2(&self, old: i32, new: i32) -> Result<i32> {
        if old == new {
            self.file(old)?;
            return Ok(new);
        }
        self.dup3(old, new, 0)
    }

    fn dup3(&self, old: i32, new: i32, flags: u32) -> Result<i32> {
        if flags & !O_CLOEXEC != 0 || old == new {
            return Err(Errno::EINVAL);
        }
        if new < 0 || new as u64 >= self.soft_nofile() {
            return Err(Errno::EBADF);
        }
        let mut t = self.fd_table();
        let file = t.entry(old)?.file.clone();
        let prev = t.install(
            new,
            FdEntry {
                file,
                cloexec: flags & O_CLOEXEC != 0,
            },
        );
        drop(t);
        drop(prev);
        Ok(new)
    }

    fn fcntl(&self, fd: i32, cmd: i32, arg: u64) -> Result<i64> {
        let f = self.file(fd)?;
        match cmd {
            F_DUPFD | F_DUPFD_CLOEXEC => {
                let limit = self.soft_nofile();
                if arg >= limit {
                    return Err(Errno::EINVAL);
                }
                let n = self
                    .fd_table()
                    .alloc(f, cmd == F_DUPFD_CLOEXEC, arg as usize, limit)?;
                Ok(n as i64)
            }
            F_GETFD => Ok(i64::from(self.fd_table().entry(fd)?.cloexec)),
            F_SETFD => {
                self.fd_table().entry_mut(fd)?.cloexec = arg as i32 & FD_CLOEXEC != 0;
                Ok(0)
            }
            F_GETFL => Ok(f.flags() as i64),
            F_SETFL => {
                let arg = arg as u32;
                if arg & O_DIRECT != 0 && !matches!(f.kind, FileKind::Regular(_)) {
                    return Err(Errno::EINVAL);
                }
                f.set_flags((f.flags() & !SETFL_MASK) | (arg & SETFL_MASK));
                Ok(0)
            }
            F_SETPIPE_SZ | F_GETPIPE_SZ => {
                pipe::pipe_fcntl(&f, cmd, arg, &self.cred(), self.kernel().pipe_user_pages())
            }
            _ => Err(Errno::EINVAL),
        }
    }

    fn ioctl(&self, fd: i32, cmd: u64, arg: u64, mem: Option<&mut [u8]>) -> Result<i64> {
        let f = self.file(fd)?;
        match cmd {
            FIOCLEX | FIONCLEX => {
                self.fd_table().entry_mut(fd)?.cloexec = cmd == FIOCLEX;
                return Ok(0);
            }
            FIONBIO => {
                let on = read_user_int(mem.as_deref())? != 0;
                let fl = f.flags();
                f.set_flags(if on {
                    fl | O_NONBLOCK
                } else {
                    fl & !O_NONBLOCK
                });
                return Ok(0);
            }
            FIONREAD => {
                if let FileKind::Regular(m) = &f.kind {
                    let left = (m.data.lock().len() as u64).saturating_sub(*f.pos.lock());
                    write_user_int(mem, left as i32)?;
                    return Ok(0);
                }
            }
            _ => {}
        }
        // The file's own unlocked_ioctl.
        match &f.kind {
            FileKind::WatchQueueDev(q) => dev_watch_queue::ioctl(q, cmd, arg, mem),
            FileKind::Pipe(p) => {
                let cx = pipe::IoctlCtx {
                    watch_queue: self.kernel().config().watch_queue,
                    limits: self.kernel().pipe_user_pages(),
                    privileged: pipe::pipe_privileged(&self.cred()),
                };
                pipe::pipe_ioctl(p, &cx, cmd, arg, mem)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn memfd_create(&self, name: &str, flags: u32) -> Result<i32> {
        if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING) != 0 || name.len() > 249 {
            return Err(Errno::EINVAL);
        }
        let inode = Arc::new(MemInode {
            ino: self.kernel().alloc_ino(),
            data: Mutex::new(Vec::new()),
        });
        self.install(
            OpenFile::new(FileKind::Regular(inode), O_RDWR | O_LARGEFILE),
            flags & MFD_CLOEXEC != 0,
        )
    }
}

fn path_exists(p: &Process, path: &str) -> bool {
    matches!(
        path,
        "/" | "/dev/null" | "/dev/console" | "/dev/tty" | "/dev/watch_queue"
    ) || proc_fd(p, path).is_some_and(|r| r.is_ok())
}

/// Resolves `/proc/self/fd/N` or `/proc/PID/fd/N` (`proc_fd_link()`): the
/// open file, or ENOENT for anything missing.
fn proc_fd(p: &Process, path: &str) -> Option<Result<Arc<OpenFile>>> {
    let rest = path.strip_prefix("/proc/")?;
    let (who, fd) = rest.split_once("/fd/")?;
    let fd: i32 = match fd.parse() {
        Ok(fd) => fd,
        Err(_) => return Some(Err(Errno::ENOENT)),
    };
    let r = if who == "self" {
        p.file(fd)
    } else {
        match who.parse::<u32>().ok().and_then(|pid| p.kernel().task(pid)) {
            Some(t) => t.file(fd),
            None => return Some(Err(Errno::ENOENT)),
        }
    };
    Some(r.map_err(|_| Errno::ENOENT))
}

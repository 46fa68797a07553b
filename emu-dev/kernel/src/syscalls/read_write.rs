//! read(2), readv(2), write(2), writev(2) and lseek(2).
//!
//! Mirrors fs/read_write.c (`ksys_read()`, `do_readv()`, `ksys_write()`,
//! `do_writev()`, `ksys_lseek()`) and, per file kind, the `read_iter` and
//! `write_iter` it reaches: `pipe_read()`/`pipe_write()` for a pipe (a
//! notification pipe reads whole records and refuses writes), the bytes
//! of an in-memory file, `/dev/null` and the console.

use super::uaccess::{scatter, MAX_RW_COUNT, UIO_MAXIOV};
use crate::file::{read_at, write_at, FileKind, OpenFile};
use crate::process::Process;
use watchq_core::uapi::*;
use watchq_core::{Errno, ReadMode, Result};

/// The read and write system calls. Mirrors fs/read_write.c.
pub trait ReadWriteCalls {
    /// `read()`. On a notification pipe: whole records only, a loss record
    /// after the record that preceded a loss (see `docs/delivery.md`).
    ///
    /// # Errors
    /// In the kernel's order:
    /// - `EBADF`: not open, or not open for reading.
    /// - `EISDIR`: a directory.
    /// - `ENOBUFS`: notification pipe, the first record does not fit.
    /// - `EAGAIN`: empty pipe with a writer, O_NONBLOCK.
    /// - `EINTR`: the alarm went off while sleeping.
    fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize>;

    /// `read()` as if the file had O_NONBLOCK (`preadv2(RWF_NOWAIT)` in
    /// spirit): what a host that does its own waiting (the preload library,
    /// which sleeps in the real `poll()` so signals interrupt it) calls.
    ///
    /// # Errors
    /// As [`ReadWriteCalls::read`], with EAGAIN instead of sleeping.
    fn read_nowait(&self, fd: i32, buf: &mut [u8]) -> Result<usize>;

    /// `readv()`: one read into the concatenation of `iov`.
    ///
    /// # Errors
    /// `EINVAL` for more than 1024 vectors, then as [`ReadWriteCalls::read`].
    fn readv(&self, fd: i32, iov: &mut [&mut [u8]]) -> Result<usize>;

    /// `write()`.
    ///
    /// # Errors
    /// In the kernel's order:
    /// - `EBADF`: not open, or not open for writing.
    /// - `EXDEV`: a notification pipe (before anything else, even 0 bytes).
    /// - `EPIPE`: a pipe without readers (SIGPIPE is not emulated).
    /// - `EAGAIN`: a full pipe and O_NONBLOCK.
    /// - `EINTR`: the alarm went off while sleeping.
    fn write(&self, fd: i32, data: &[u8]) -> Result<usize>;

    /// `writev()`: one write of the concatenation of `iov`.
    ///
    /// # Errors
    /// `EINVAL` for more than 1024 vectors, then as [`ReadWriteCalls::write`].
    fn writev(&self, fd: i32, iov: &[&[u8]]) -> Result<usize>;

    /// `lseek()` on a regular file; pipes and ttys cannot seek.
    ///
    /// # Errors
    /// - `EBADF`: not open.
    /// - `ESPIPE`: a pipe or the console.
    /// - `EINVAL`: unknown `whence`, or a negative resulting offset.
    fn lseek(&self, fd: i32, offset: i64, whence: i32) -> Result<u64>;
}

impl ReadWriteCalls for Process {
    fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize> {
        read_as(self, fd, buf, false)
    }

    fn read_nowait(&self, fd: i32, buf: &mut [u8]) -> Result<usize> {
        read_as(self, fd, buf, true)
    }

    fn readv(&self, fd: i32, iov: &mut [&mut [u8]]) -> Result<usize> {
        if iov.len() > UIO_MAXIOV {
            return Err(Errno::EINVAL);
        }
        let total: usize = iov.iter().map(|v| v.len()).sum();
        let mut tmp = vec![0u8; total];
        let n = self.read(fd, &mut tmp)?;
        scatter(&tmp[..n], iov);
        Ok(n)
    }

    fn write(&self, fd: i32, data: &[u8]) -> Result<usize> {
        let f = self.file(fd)?;
        if !f.writable() {
            return Err(Errno::EBADF);
        }
        let data = &data[..data.len().min(MAX_RW_COUNT)];
        write_file(self, &f, data)
    }

    fn writev(&self, fd: i32, iov: &[&[u8]]) -> Result<usize> {
        if iov.len() > UIO_MAXIOV {
            return Err(Errno::EINVAL);
        }
        self.write(fd, &iov.concat())
    }

    fn lseek(&self, fd: i32, offset: i64, whence: i32) -> Result<u64> {
        let f = self.file(fd)?;
        let size = match &f.kind {
            FileKind::Pipe(_) | FileKind::Console | FileKind::WatchQueueDev(_) => {
                return Err(Errno::ESPIPE)
            }
            FileKind::Regular(m) => m.data.lock().len() as i64,
            FileKind::Null | FileKind::Directory => 0,
        };
        let mut pos = f.pos.lock();
        let base = match whence {
            SEEK_SET => 0,
            SEEK_CUR => *pos as i64,
            SEEK_END => size,
            _ => return Err(Errno::EINVAL),
        };
        let new = base.checked_add(offset).ok_or(Errno::EOVERFLOW)?;
        if new < 0 {
            return Err(Errno::EINVAL);
        }
        *pos = new as u64;
        Ok(new as u64)
    }
}

/// How a read or write of `f` by `p` may sleep: not with O_NONBLOCK, and
/// not past the alarm.
fn read_mode(p: &Process, f: &OpenFile) -> ReadMode {
    ReadMode {
        nonblock: f.nonblocking(),
        deadline: p.alarm_deadline(),
    }
}

fn read_as(p: &Process, fd: i32, buf: &mut [u8], nowait: bool) -> Result<usize> {
    let f = p.file(fd)?;
    if !f.readable() {
        return Err(Errno::EBADF);
    }
    let len = buf.len().min(MAX_RW_COUNT);
    let buf = &mut buf[..len];
    let mut mode = read_mode(p, &f);
    mode.nonblock |= nowait;
    match &f.kind {
        FileKind::Pipe(pipe) if pipe.queue().is_some() && p.kernel().keys().gc_pending() => {
            // An empty notification pipe and a queued key collector
            // (docs/delivery.md §1): a reader that would sleep lets it run
            // first; a non-blocking one gets EAGAIN, and the collector runs
            // before its next call, as the kernel's runs while it waits.
            let quick = ReadMode {
                nonblock: true,
                ..mode
            };
            match pipe.read(buf, quick) {
                Err(Errno::EAGAIN) => {
                    p.kernel().flush_key_gc();
                    if mode.nonblock {
                        Err(Errno::EAGAIN)
                    } else {
                        pipe.read(buf, mode)
                    }
                }
                r => r,
            }
        }
        FileKind::Pipe(pipe) => pipe.read(buf, mode),
        FileKind::Regular(m) => {
            let data = m.data.lock();
            let mut pos = f.pos.lock();
            let n = read_at(&data, *pos, buf);
            *pos += n as u64;
            Ok(n)
        }
        FileKind::Null | FileKind::Console => Ok(0),
        FileKind::Directory => Err(Errno::EISDIR),
        // The 2019 device has no read(): records are read from the mapping.
        FileKind::WatchQueueDev(_) => Err(Errno::EINVAL),
    }
}

fn write_file(p: &Process, f: &OpenFile, data: &[u8]) -> Result<usize> {
    match &f.kind {
        FileKind::Pipe(pipe) => pipe.write(data, f.flags() & O_DIRECT != 0, read_mode(p, f)),
        FileKind::Regular(m) => {
            let mut pos = f.pos.lock();
            let mut d = m.data.lock();
            if f.flags() & O_APPEND != 0 {
                *pos = d.len() as u64;
            }
            let n = write_at(&mut d, *pos, data)?;
            *pos += n as u64;
            Ok(n)
        }
        FileKind::Null | FileKind::Console => Ok(data.len()),
        FileKind::Directory => Err(Errno::EISDIR),
        FileKind::WatchQueueDev(_) => Err(Errno::EINVAL),
    }
}

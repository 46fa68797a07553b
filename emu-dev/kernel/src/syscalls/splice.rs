//! splice(2), tee(2), vmsplice(2) and sendfile(2).
//!
//! Mirrors fs/splice.c (`do_splice()`, `do_tee()`, `vmsplice`, and the
//! helpers they wait in: `ipipe_prep()`, `opipe_prep()`,
//! `wait_for_space()`) and `do_sendfile()` of fs/read_write.c, which
//! splices through the same machinery. Only ordinary pipes splice: a
//! notification pipe is refused as `get_pipe_info(file, true)` refuses it.

use super::uaccess::{scatter, MAX_RW_COUNT, UIO_MAXIOV};
use crate::file::{write_at, FileKind, OpenFile};
use crate::pipe::Pipe;
use crate::process::Process;
use std::sync::Arc;
use std::time::Instant;
use watchq_core::uapi::*;
use watchq_core::{Errno, ReadMode, Result};

/// How splice and friends move data once they have waited: without sleeping.
const AT_ONCE: ReadMode = ReadMode {
    nonblock: true,
    deadline: None,
};

/// The splice family. Mirrors fs/splice.c (and `do_sendfile()`).
pub trait SpliceCalls {
    /// `splice()`. A notification pipe is not a pipe to splice (the kernel's
    /// `get_pipe_info(file, true)` refuses it), so: notification pipe → pipe
    /// or file is EINVAL, pipe → notification pipe is EXDEV (the generic
    /// write path meets `pipe_write()`), file → notification pipe is EINVAL.
    ///
    /// # Errors
    /// In the kernel's order: `EINVAL` (flags), `EBADF` (bad fds or modes),
    /// `ESPIPE` (an offset on a pipe side), `EINVAL` (neither side a pipe,
    /// same pipe, an offset on a stream, O_APPEND output, a source that
    /// cannot be spliced from), `EPIPE`/`EAGAIN`/`EINTR` (waiting on a
    /// pipe), `EXDEV` (writing into a notification pipe).
    fn splice(
        &self,
        fd_in: i32,
        off_in: Option<&mut u64>,
        fd_out: i32,
        off_out: Option<&mut u64>,
        len: usize,
        flags: u32,
    ) -> Result<usize>;

    /// `tee()`: duplicates queued bytes of one ordinary pipe into another.
    ///
    /// # Errors
    /// In the kernel's order: `EINVAL` (flags), `EBADF` (bad fds or modes),
    /// `EINVAL` (not two different ordinary pipes: a notification pipe on
    /// either side included), `EPIPE`/`EAGAIN`/`EINTR` (waiting).
    fn tee(&self, fd_in: i32, fd_out: i32, len: usize, flags: u32) -> Result<usize>;

    /// `vmsplice()`: user memory into a pipe's write side (`iov` is read),
    /// or out of its read side (`iov` is filled), by the fd's open mode.
    ///
    /// # Errors
    /// In the kernel's order: `EINVAL` (flags), `EBADF` (bad fd or mode),
    /// `EINVAL` (more than 1024 vectors), `EBADF` (not an ordinary pipe: a
    /// notification pipe included; after the zero-length check),
    /// `EPIPE`/`EAGAIN`/`EINTR` (waiting).
    fn vmsplice(&self, fd: i32, iov: &mut [&mut [u8]], flags: u32) -> Result<usize>;

    /// `sendfile()`: copies from a file into a file or pipe.
    ///
    /// # Errors
    /// In the kernel's order: `EBADF` (input not open for reading), `ESPIPE`
    /// (an offset on an unseekable input), `EBADF` (output not open for
    /// writing), `EINVAL` (an input that cannot be spliced from, O_APPEND
    /// output), `EXDEV` (a notification pipe as output, when there is data),
    /// `EPIPE`/`EAGAIN`/`EINTR` (waiting on an output pipe).
    fn sendfile(
        &self,
        out_fd: i32,
        in_fd: i32,
        offset: Option<&mut u64>,
        count: usize,
    ) -> Result<usize>;
}

impl SpliceCalls for Process {
    fn splice(
        &self,
        fd_in: i32,
        off_in: Option<&mut u64>,
        fd_out: i32,
        off_out: Option<&mut u64>,
        len: usize,
        flags: u32,
    ) -> Result<usize> {
        if len == 0 {
            return Ok(0);
        }
        if flags & !SPLICE_F_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        let fin = self.file(fd_in)?;
        let fout = self.file(fd_out)?;
        let ipipe = splice_pipe(&fin);
        let opipe = splice_pipe(&fout);
        if (ipipe.is_some() && off_in.is_some()) || (opipe.is_some() && off_out.is_some()) {
            return Err(Errno::ESPIPE);
        }
        if !fin.readable() || !fout.writable() {
            return Err(Errno::EBADF);
        }
        let len = len.min(MAX_RW_COUNT);
        let mut nonblock = flags & SPLICE_F_NONBLOCK != 0;
        let deadline = self.alarm_deadline();
        match (ipipe, opipe) {
            (Some(ip), Some(op)) => {
                if Arc::ptr_eq(ip, op) {
                    return Err(Errno::EINVAL);
                }
                nonblock |= fin.nonblocking() || fout.nonblocking();
                if !wait_readable(ip, nonblock, deadline)? {
                    return Ok(0);
                }
                wait_for_space(op, nonblock, deadline)?;
                let data = ip.peek_bytes(len.min(op_room(op)));
                let n = op.write(&data, false, AT_ONCE)?;
                discard(ip, n)?;
                Ok(n)
            }
            (Some(ip), None) => {
                let pos = file_offset(&fout, off_out.as_deref().copied(), true)?;
                if fout.flags() & O_APPEND != 0 {
                    return Err(Errno::EINVAL);
                }
                if matches!(fout.kind, FileKind::Directory) {
                    return Err(Errno::EINVAL);
                }
                if !wait_readable(ip, nonblock, deadline)? {
                    return Ok(0);
                }
                let data = ip.peek_bytes(len);
                let n = write_out(&fout, pos, off_out, &data)?;
                discard(ip, n)?;
                Ok(n)
            }
            (None, Some(op)) => {
                let pos = file_offset(&fin, off_in.as_deref().copied(), false)?;
                nonblock |= fout.nonblocking();
                wait_for_space(op, nonblock, deadline)?;
                let data = splice_read(&fin, pos, len.min(op_room(op)))?;
                let n = op.write(&data, false, AT_ONCE)?;
                advance(&fin, off_in, pos, n);
                Ok(n)
            }
            (None, None) => Err(Errno::EINVAL),
        }
    }

    fn tee(&self, fd_in: i32, fd_out: i32, len: usize, flags: u32) -> Result<usize> {
        if flags & !SPLICE_F_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(0);
        }
        let fin = self.file(fd_in)?;
        let fout = self.file(fd_out)?;
        if !fin.readable() || !fout.writable() {
            return Err(Errno::EBADF);
        }
        let (Some(ip), Some(op)) = (splice_pipe(&fin), splice_pipe(&fout)) else {
            return Err(Errno::EINVAL);
        };
        if Arc::ptr_eq(ip, op) {
            return Err(Errno::EINVAL);
        }
        let nonblock = flags & SPLICE_F_NONBLOCK != 0 || fin.nonblocking() || fout.nonblocking();
        let deadline = self.alarm_deadline();
        if !wait_readable(ip, nonblock, deadline)? {
            return Ok(0);
        }
        wait_for_space(op, nonblock, deadline)?;
        let data = ip.peek_bytes(len.min(op_room(op)));
        op.write(&data, false, AT_ONCE)
    }

    fn vmsplice(&self, fd: i32, iov: &mut [&mut [u8]], flags: u32) -> Result<usize> {
        if flags & !SPLICE_F_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        let f = self.file(fd)?;
        let to_pipe = if f.writable() {
            true
        } else if f.readable() {
            false
        } else {
            return Err(Errno::EBADF);
        };
        if iov.len() > UIO_MAXIOV {
            return Err(Errno::EINVAL);
        }
        let total: usize = iov.iter().map(|v| v.len()).sum();
        if total == 0 {
            return Ok(0);
        }
        let p = splice_pipe(&f).ok_or(Errno::EBADF)?;
        let nonblock = flags & SPLICE_F_NONBLOCK != 0 || f.nonblocking();
        let deadline = self.alarm_deadline();
        if to_pipe {
            wait_for_space(p, nonblock, deadline)?;
            let data: Vec<u8> = iov.iter().flat_map(|v| v.iter().copied()).collect();
            p.write(&data[..total.min(op_room(p))], false, AT_ONCE)
        } else {
            let mut tmp = vec![0u8; total];
            let n = p.read(&mut tmp, ReadMode { nonblock, deadline })?;
            scatter(&tmp[..n], iov);
            Ok(n)
        }
    }

    fn sendfile(
        &self,
        out_fd: i32,
        in_fd: i32,
        offset: Option<&mut u64>,
        count: usize,
    ) -> Result<usize> {
        let fin = self.file(in_fd)?;
        if !fin.readable() {
            return Err(Errno::EBADF);
        }
        let pos = match offset.as_deref() {
            None => *fin.pos.lock(),
            Some(&o) => {
                if !seekable(&fin) {
                    return Err(Errno::ESPIPE);
                }
                o
            }
        };
        let fout = self.file(out_fd)?;
        if !fout.writable() {
            return Err(Errno::EBADF);
        }
        let count = count.min(MAX_RW_COUNT);
        let deadline = self.alarm_deadline();
        let (data, n) = match splice_pipe(&fout) {
            Some(op) => {
                wait_for_space(op, fout.nonblocking() || fin.nonblocking(), deadline)?;
                let data = splice_read(&fin, pos, count.min(op_room(op)))?;
                let n = op.write(&data, false, AT_ONCE)?;
                (data, n)
            }
            None => {
                if fout.flags() & O_APPEND != 0 {
                    return Err(Errno::EINVAL);
                }
                let data = splice_read(&fin, pos, count)?;
                if data.is_empty() {
                    return Ok(0);
                }
                let opos = *fout.pos.lock();
                let n = write_out(&fout, opos, None, &data)?;
                (data, n)
            }
        };
        debug_assert!(n <= data.len());
        match offset {
            Some(o) => *o = pos + n as u64,
            None => *fin.pos.lock() = pos + n as u64,
        }
        Ok(n)
    }
}

/// Writes `data` to a non-pipe splice destination at `pos`.
fn write_out(out: &OpenFile, pos: u64, off: Option<&mut u64>, data: &[u8]) -> Result<usize> {
    match &out.kind {
        FileKind::Regular(m) => {
            let n = write_at(&mut m.data.lock(), pos, data)?;
            advance(out, off, pos, n);
            Ok(n)
        }
        // Only a notification pipe is a pipe here: pipe_write() says EXDEV.
        FileKind::Pipe(p) => p.write(data, false, ReadMode::default()),
        FileKind::Null | FileKind::Console => Ok(data.len()),
        FileKind::Directory | FileKind::WatchQueueDev(_) => Err(Errno::EINVAL),
    }
}

/// The pipe splice may use: ordinary pipes only (`get_pipe_info(file, true)`).
fn splice_pipe(f: &OpenFile) -> Option<&Arc<Pipe>> {
    f.pipe().filter(|p| p.queue().is_none())
}

/// Can `f` be read or written at an explicit offset (FMODE_PREAD/PWRITE)?
fn seekable(f: &OpenFile) -> bool {
    matches!(f.kind, FileKind::Regular(_) | FileKind::Null)
}

/// The offset a splice uses on a non-pipe side: the explicit one (EINVAL
/// on a stream) or the file position.
fn file_offset(f: &OpenFile, off: Option<u64>, _write: bool) -> Result<u64> {
    match off {
        Some(o) if seekable(f) => Ok(o),
        Some(_) => Err(Errno::EINVAL),
        None => Ok(*f.pos.lock()),
    }
}

/// Moves the explicit offset, or the file position, past `n` bytes.
fn advance(f: &OpenFile, off: Option<&mut u64>, pos: u64, n: usize) {
    match off {
        Some(o) => *o = pos + n as u64,
        None => {
            if matches!(f.kind, FileKind::Regular(_)) {
                *f.pos.lock() = pos + n as u64;
            }
        }
    }
}

/// The `splice_read` of a non-pipe source: bytes of a regular file, end of
/// file for /dev/null and the console; anything else has none (EINVAL).
fn splice_read(f: &OpenFile, pos: u64, len: usize) -> Result<Vec<u8>> {
    match &f.kind {
        FileKind::Regular(m) => {
            let d = m.data.lock();
            let start = (pos.min(d.len() as u64)) as usize;
            Ok(d[start..(start + len).min(d.len())].to_vec())
        }
        FileKind::Null | FileKind::Console => Ok(Vec::new()),
        FileKind::Pipe(_) | FileKind::Directory | FileKind::WatchQueueDev(_) => Err(Errno::EINVAL),
    }
}

/// Bytes an ordinary pipe can take right now (whole free buffers).
fn op_room(p: &Pipe) -> usize {
    p.max_usage()
        .saturating_sub(p.fionread().div_ceil(PAGE_SIZE))
        * PAGE_SIZE
}

/// `ipipe_prep()`/`splice_from_pipe_next()`: Ok(false) when the pipe is
/// empty and has no writer (splice returns 0).
fn wait_readable(p: &Pipe, nonblock: bool, deadline: Option<Instant>) -> Result<bool> {
    loop {
        if !p.is_empty() {
            return Ok(true);
        }
        if p.writers() == 0 {
            return Ok(false);
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        p.wait(false, deadline, || !p.is_empty() || p.writers() == 0)?;
    }
}

/// `wait_for_space()`/`opipe_prep()`.
fn wait_for_space(p: &Pipe, nonblock: bool, deadline: Option<Instant>) -> Result<()> {
    loop {
        if p.readers() == 0 {
            return Err(Errno::EPIPE);
        }
        if p.has_room() {
            return Ok(());
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        p.wait(true, deadline, || p.has_room() || p.readers() == 0)?;
    }
}

/// Consumes `n` bytes of an ordinary pipe that were copied elsewhere.
fn discard(p: &Pipe, n: usize) -> Result<()> {
    let mut sink = vec![0u8; n];
    p.read(&mut sink, AT_ONCE).map(drop)
}

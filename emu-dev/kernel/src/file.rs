//! Open files: what an fd refers to.
//!
//! Owns [`OpenFile`] (mirroring `struct file`: the object, the open mode,
//! the status flags that `F_GETFL`/`F_SETFL` see, the file position) and
//! [`FileKind`]. Open files are shared: `dup`, `fork` and the
//! `/proc/self/fd` reopen semantics follow the kernel, and the last
//! reference going away releases the object (`pipe_release()` for pipes).
//! An in-memory regular file (memfd) is a `MemInode`, read and written at
//! an offset by `read_at`/`write_at`.

use crate::pipe::Pipe;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use watchq_core::uapi::{O_ACCMODE_MASK, O_RDWR, O_WRONLY};
use watchq_core::{Errno, Result};

/// An in-memory regular file (memfd or tmpfs file): its bytes.
#[derive(Debug, Default)]
pub(crate) struct MemInode {
    pub(crate) ino: u64,
    pub(crate) data: Mutex<Vec<u8>>,
}

/// Largest regular file the emulation keeps (its "s_maxbytes").
const MAX_FILE: u64 = 1 << 30;

/// Copies the bytes of a regular file's `data` at `pos` into `buf`;
/// returns how many (0 at or past the end).
pub(crate) fn read_at(data: &[u8], pos: u64, buf: &mut [u8]) -> usize {
    let start = pos.min(data.len() as u64) as usize;
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

/// Writes `src` into a regular file's `data` at `pos`, growing it (with
/// zeroes over any hole); returns how many bytes fit below the size limit.
///
/// # Errors
/// EFBIG: `pos` is at or past the size limit.
pub(crate) fn write_at(data: &mut Vec<u8>, pos: u64, src: &[u8]) -> Result<usize> {
    if pos >= MAX_FILE {
        return Err(Errno::EFBIG);
    }
    let n = src.len().min((MAX_FILE - pos) as usize);
    let end = pos as usize + n;
    if data.len() < end {
        data.resize(end, 0);
    }
    data[pos as usize..end].copy_from_slice(&src[..n]);
    Ok(n)
}

/// What an open file refers to.
#[derive(Debug)]
pub(crate) enum FileKind {
    /// One end (or, reopened O_RDWR, both ends) of a pipe.
    Pipe(Arc<Pipe>),
    /// A regular in-memory file.
    Regular(Arc<MemInode>),
    /// `/dev/null`.
    Null,
    /// The console (`/dev/console`, fds 0–2 of a spawned process): reads
    /// return end of file, writes are accepted and discarded.
    Console,
    /// A directory (`/`).
    Directory,
    /// `/dev/watch_queue`: a 2019-design queue of its own per open.
    WatchQueueDev(Arc<watchq_core::WatchQueue>),
}

/// An open file. Mirrors `struct file`.
#[derive(Debug)]
pub struct OpenFile {
    pub(crate) kind: FileKind,
    readable: bool,
    writable: bool,
    /// Access mode and status flags as `F_GETFL` shows them.
    flags: AtomicU32,
    pub(crate) pos: Mutex<u64>,
}

impl OpenFile {
    /// Opens `kind` with `flags` (access mode plus status flags). A pipe's
    /// end counts are taken here and given back on drop.
    pub(crate) fn new(kind: FileKind, flags: u32) -> Arc<Self> {
        let acc = flags & O_ACCMODE_MASK;
        let readable = acc != O_WRONLY;
        let writable = acc == O_WRONLY || acc == O_RDWR;
        if let FileKind::Pipe(p) = &kind {
            p.open_end(readable, writable);
        }
        Arc::new(OpenFile {
            kind,
            readable,
            writable,
            flags: AtomicU32::new(flags),
            pos: Mutex::new(0),
        })
    }

    /// Opened for reading (`FMODE_READ`).
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Opened for writing (`FMODE_WRITE`).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Access mode and status flags (`F_GETFL`).
    pub fn flags(&self) -> u32 {
        // Relaxed: a flag word; no data is published through it.
        self.flags.load(Ordering::Relaxed)
    }

    pub(crate) fn set_flags(&self, f: u32) {
        // Relaxed: as `flags`.
        self.flags.store(f, Ordering::Relaxed);
    }

    /// Is `O_NONBLOCK` set?
    pub fn nonblocking(&self) -> bool {
        self.flags() & watchq_core::uapi::O_NONBLOCK != 0
    }

    /// The pipe this file is an end of, if any.
    pub(crate) fn pipe(&self) -> Option<&Arc<Pipe>> {
        match &self.kind {
            FileKind::Pipe(p) => Some(p),
            _ => None,
        }
    }

    /// Is this an end of a notification pipe?
    pub fn is_notification_pipe(&self) -> bool {
        self.pipe().is_some_and(|p| p.queue().is_some())
    }

    /// Is this an end of any pipe?
    pub fn is_pipe(&self) -> bool {
        self.pipe().is_some()
    }

    /// A short description for diagnostics: `pipe:[ino]`, `memfd:[ino]`, ...
    pub fn describe(&self) -> String {
        match &self.kind {
            FileKind::Pipe(p) => format!("pipe:[{}]", p.ino()),
            FileKind::Regular(m) => format!("memfd:[{}]", m.ino),
            FileKind::Null => "/dev/null".into(),
            FileKind::Console => "/dev/console".into(),
            FileKind::Directory => "/".into(),
            FileKind::WatchQueueDev(_) => "/dev/watch_queue".into(),
        }
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        match &self.kind {
            FileKind::Pipe(p) => p.release_end(self.readable, self.writable),
            // The last reference to the open file: the queue goes, its
            // watches are detached (no removal records).
            FileKind::WatchQueueDev(q) => q.clear(),
            _ => {}
        }
    }
}

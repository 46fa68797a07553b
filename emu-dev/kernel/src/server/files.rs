//! Emulated notification pipes whose ends are real pipe ends.
//!
//! Owns [`RemotePipe`]. For each emulated notification pipe the server
//! makes two real pipes and hands the program one end of each: the read
//! end of pipe A is the program's read end, the write end of pipe B its
//! write end. The program's descriptors ARE those real ends, so fork,
//! exec, dup, `SCM_RIGHTS`, `close_range` and `O_CLOEXEC` are the real
//! kernel's, and `fstat` says FIFO. The server keeps the other two ends:
//!
//! - A's write end polls `POLLERR` once every read end is closed, and B's
//!   read end polls `POLLHUP` once every write end is closed: the server
//!   learns of the LAST close from the real kernel and then drops the
//!   emulated open file, which releases it exactly as `pipe_release()`
//!   does (the last file of the pipe clears the queue: watches detached,
//!   records discarded).
//! - Readiness: the server writes one token byte into A per record
//!   queued (so an `EPOLLET` reader gets an edge per post, as with a real
//!   pipe), and while no record is queued A holds none, so the real read
//!   end is readable exactly while the emulated queue has records.
//!
//! The readiness rule, all under the pipe's `ready` lock:
//! - `sync`: tokens for records queued since the last sync (counted from
//!   the queue's statistics, `posted - lost`), at most [`TOKEN_CAP`] in the
//!   pipe; and one token if records are queued but every byte in A is
//!   already promised to a drainer.
//! - A read that leaves the queue empty tells its reader to drain every
//!   byte of A not already promised to another reader (`outstanding`);
//!   the promise is kept until that reader's next request (it drains
//!   before sending anything else) or its connection closes. Two readers
//!   of one pipe each drain what they were told, so bytes drained equal
//!   bytes counted. A reader killed between its reply and its drain leaves
//!   bytes nobody was told to drain; the next read of an empty queue
//!   counts A's bytes again (`FIONREAD` of A's write end) and hands them
//!   to its reader, so the cost is one spurious wake-up, never a stuck
//!   readable descriptor.
//! - Once the write end is released, the server closes A's write end too,
//!   keeping a read end of A of its own (to count the tokens) and an
//!   `O_PATH` handle on it, both reopened through `/proc/self/fd/N` (the
//!   pipe's `fifo_open()`): the program's real read end then has no writer
//!   left, so the real kernel's `epoll` (and poll) say `EPOLLHUP` on it, as
//!   `pipe_poll()` does on a notification pipe whose writers are gone, and
//!   `EPOLLIN` exactly while tokens (records) are there. The kernel still
//!   posts into such a pipe: a record posted later gets its token through
//!   a write end reopened for the moment, which wakes an `EPOLLET` reader as
//!   a post does; while it is open (a few system calls), a reader's poll
//!   would miss `EPOLLHUP`. The last read end's close can then no longer
//!   come as `POLLERR` on a write end the server keeps: it is looked for
//!   (the server's own read end closed, a writer reopened for the moment
//!   polling `POLLERR`, the read end reopened if readers are left) before
//!   a `pipe2` or `/dev/watch_queue` open (the page accounting) and every
//!   ten seconds. Each look that finds a
//!   reader opens and closes a writer, which wakes the pipe's sleepers: a
//!   spurious wake-up for an `EPOLLET` reader (a level-triggered one is
//!   woken by `EPOLLHUP` anyway). Without `/proc` (nothing can be
//!   reopened), A's write end stays, with one token for good instead:
//!   readable as end of file, never `EPOLLHUP`.
//! - Records a reader could not copy out (EFAULT) come back with an
//!   unread and are served before the queue (`front`), so they stay
//!   queued as the kernel's `pipe_read()` leaves them. With a mirror, each
//!   gets a readiness byte, and the mirror tells its readers to ask the
//!   kernel first while any wait (`ShmWriter::set_ask`): a read then takes
//!   them by value, with what follows them in the mirror that fits.

use crate::file::OpenFile;
use parking_lot::Mutex;
use rustix::fs::OFlags;
use rustix::pipe::PipeFlags;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use watchq_core::ring::shm::{Ends, Local, ShmReader, ShmWriter};
use watchq_core::uapi::{
    O_DIRECT, O_NONBLOCK, WATCH_INFO_LENGTH, WATCH_META_LOSS_NOTIFICATION, WATCH_TYPE_META,
};
use watchq_core::{Errno, Result, WatchQueue};

/// The most token bytes the server keeps in a pipe (far below its 64 KiB).
pub(crate) const TOKEN_CAP: u64 = 4096;

/// Which end of an emulated pipe a real descriptor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Read,
    Write,
}

/// The identity of a real pipe: `st_dev`, `st_ino`.
pub(crate) type Ident = (u64, u64);

/// The identity of the real file behind `fd`, if it is a FIFO.
pub(crate) fn ident(fd: impl AsFd) -> Option<Ident> {
    let st = rustix::fs::fstat(fd).ok()?;
    (rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo)
        .then_some((st.st_dev, st.st_ino))
}

/// A descriptor of pipe A to use for a moment: the server's own write
/// end, or one reopened from the hang-up handle (closed after use).
enum AFd<'a> {
    Kept(&'a OwnedFd),
    Opened(OwnedFd),
}

impl AsFd for AFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            AFd::Kept(f) => f.as_fd(),
            AFd::Opened(f) => f.as_fd(),
        }
    }
}

/// Opens the pipe behind `fd` anew through `/proc/self/fd` (the pipe's
/// `fifo_open()`: a new reader or writer of the same pipe).
fn reopen(fd: &OwnedFd, flags: OFlags) -> io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::open(
        path.as_str(),
        flags | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}

#[derive(Default)]
struct Ready {
    /// Write end of A (tokens); None once the read end is released, or
    /// once the write end is (then `a_path` stands for it).
    a_w: Option<OwnedFd>,
    /// An `O_PATH` handle on A once the write end was released and A's
    /// write end closed (the real read end hangs up).
    a_path: Option<OwnedFd>,
    /// The server's own read end of A meanwhile (FIONREAD without an open
    /// and close, which would wake the pipe's sleepers).
    a_r: Option<OwnedFd>,
    /// Clock ticks since the last look for the read end's last close
    /// while hung up.
    hup_ticks: u32,
    /// Read end of B (its hang-up says the write end is released).
    b_r: Option<OwnedFd>,
    /// Records counted into tokens so far (`posted - lost`).
    seen: u64,
    /// Bytes of A readers were told to drain and may not have yet.
    outstanding: u64,
    /// Records given back by an unread, served before the queue.
    front: Vec<u8>,
    /// Readiness bytes in A that stand for `front`'s records, with a
    /// mirror (one each, written by the unread; the reads that take them
    /// drain them).
    front_tokens: u64,
    /// The shared-memory mirror readers read from (see `mirror`), once a
    /// read made one.
    mirror: Option<Box<ShmWriter>>,
    /// The kernel's own reader of the mirror, for the reads it answers by
    /// value ([`RemotePipe::mirror_take`]); mapped at the first.
    reader: Option<Box<ShmReader>>,
    /// Readiness bytes in A when the mirror started that stand for records
    /// it has yet to carry (they are not written again).
    credit: u64,
    /// The end-of-file byte is in A (the write end was released).
    eof_token: bool,
    /// The key collector waits for a consumer (as of the last sync).
    gc_waiting: bool,
    /// A mirror's state at the last clock tick while it was empty:
    /// (bytes in A, claimed bytes, published): unchanged a tick later, the
    /// bytes beyond the end-of-file one are stale (a reader killed between
    /// taking records and draining) and the next empty read drains them.
    stale: Option<(u64, u64, u64)>,
    /// Stale bytes the next reader of the empty mirror is to drain.
    repair: u64,
}

/// One emulated notification pipe and its two real pipes.
pub(crate) struct RemotePipe {
    pub(crate) id: u64,
    pub(crate) queue: Arc<WatchQueue>,
    /// The emulated read end; None once released.
    pub(crate) read_file: Mutex<Option<Arc<OpenFile>>>,
    /// The emulated write end; None once released.
    pub(crate) write_file: Mutex<Option<Arc<OpenFile>>>,
    /// (A, B) identities (B is A's again for the device).
    pub(crate) idents: (Ident, Ident),
    /// A `/dev/watch_queue` open file (no write end, no pipe B) rather
    /// than a notification pipe.
    pub(crate) device: bool,
    ready: Mutex<Ready>,
    /// What the last sync saw (see [`RemotePipe::sync_gc`]): a sync of a
    /// pipe whose queue posted nothing since, with the collector's state
    /// unchanged, has nothing to do and is skipped without taking a lock.
    synced: Synced,
    /// The mirror holds published records not yet reaped (its readers may
    /// have taken some): only such mirrors are reaped before a call.
    unreaped: AtomicBool,
}

/// A pipe's state as of its last sync: the queue's `posted` and `lost`
/// counts and whether the key collector waited then. `u64::MAX` posted:
/// never synced (or forced: the next sync runs).
#[derive(Debug)]
struct Synced {
    posted: AtomicU64,
    lost: AtomicU64,
    gc: AtomicBool,
}

impl Default for Synced {
    fn default() -> Self {
        Synced {
            posted: AtomicU64::new(u64::MAX),
            lost: AtomicU64::new(0),
            gc: AtomicBool::new(false),
        }
    }
}

/// What the server keeps of a new pipe and what the program gets.
pub(crate) struct Made {
    pub(crate) pipe: Arc<RemotePipe>,
    /// The program's read end (A's) and write end (B's).
    pub(crate) give: [OwnedFd; 2],
}

fn io_err(e: io::Error) -> Errno {
    e.raw_os_error()
        .and_then(Errno::from_raw)
        .unwrap_or(Errno::ENFILE)
}

impl Ready {
    /// Is A's real read end still served (tokens can be written)?
    fn a_open(&self) -> bool {
        self.a_w.is_some() || self.a_path.is_some()
    }

    /// A descriptor to write A's tokens with (None: no reader is left).
    fn a_writer(&self) -> Option<AFd<'_>> {
        if let Some(w) = &self.a_w {
            return Some(AFd::Kept(w));
        }
        let path = self.a_path.as_ref()?;
        reopen(path, OFlags::WRONLY | OFlags::NONBLOCK)
            .ok()
            .map(AFd::Opened)
    }

    /// The bytes in A (FIONREAD of the server's end of it).
    fn a_bytes(&self) -> u64 {
        self.a_w
            .as_ref()
            .or(self.a_r.as_ref())
            .map_or(0, |fd| rustix::io::ioctl_fionread(fd).unwrap_or(0))
    }
}

/// Writes `n` token bytes into `fd` (as many as fit).
fn write_tokens(fd: &impl AsFd, mut n: u64) {
    let tokens = [0u8; 64];
    while n > 0 {
        let k = n.min(tokens.len() as u64) as usize;
        match rustix::io::write(fd, &tokens[..k]) {
            Ok(w) if w > 0 => n -= w as u64,
            _ => break,
        }
    }
}

impl RemotePipe {
    /// Wraps emulated ends `rd`/`wr` in two real pipes; `flags` are
    /// pipe2's (O_NONBLOCK on both program ends, O_DIRECT on the write end).
    ///
    /// # Errors
    /// The real `pipe2`'s (EMFILE, ENFILE).
    pub(crate) fn make(id: u64, rd: Arc<OpenFile>, wr: Arc<OpenFile>, flags: u32) -> Result<Made> {
        let queue = rd
            .pipe()
            .and_then(|p| p.queue())
            .cloned()
            .ok_or(Errno::EINVAL)?;
        let (a_r, a_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
            .map_err(io::Error::from)
            .map_err(io_err)?;
        let bflags = if flags & O_DIRECT != 0 {
            PipeFlags::CLOEXEC | PipeFlags::DIRECT
        } else {
            PipeFlags::CLOEXEC
        };
        let (b_r, b_w) = rustix::pipe::pipe_with(bflags)
            .map_err(io::Error::from)
            .map_err(io_err)?;
        let set_nb = |fd: &OwnedFd| {
            let fl = rustix::fs::fcntl_getfl(fd).unwrap_or(OFlags::empty());
            let _ = rustix::fs::fcntl_setfl(fd, fl | OFlags::NONBLOCK);
        };
        set_nb(&a_w);
        set_nb(&b_r);
        if flags & O_NONBLOCK != 0 {
            set_nb(&a_r);
            set_nb(&b_w);
        }
        let idents = (
            ident(&a_r).ok_or(Errno::EINVAL)?,
            ident(&b_w).ok_or(Errno::EINVAL)?,
        );
        let pipe = Arc::new(RemotePipe {
            id,
            queue,
            read_file: Mutex::new(Some(rd)),
            write_file: Mutex::new(Some(wr)),
            idents,
            device: false,
            ready: Mutex::new(Ready {
                a_w: Some(a_w),
                b_r: Some(b_r),
                ..Ready::default()
            }),
            synced: Synced::default(),
            unreaped: AtomicBool::new(false),
        });
        Ok(Made {
            pipe,
            give: [a_r, b_w],
        })
    }

    /// Wraps an open of `/dev/watch_queue` (`dev`, its queue `queue`) in
    /// one real pipe: the program's descriptor is its read end.
    ///
    /// # Errors
    /// The real `pipe2`'s.
    pub(crate) fn make_device(
        id: u64,
        dev: Arc<OpenFile>,
        queue: Arc<WatchQueue>,
        flags: u32,
    ) -> Result<(Arc<RemotePipe>, OwnedFd)> {
        let (a_r, a_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
            .map_err(io::Error::from)
            .map_err(io_err)?;
        for (fd, on) in [(&a_w, true), (&a_r, flags & O_NONBLOCK != 0)] {
            if on {
                let fl = rustix::fs::fcntl_getfl(fd).unwrap_or(OFlags::empty());
                let _ = rustix::fs::fcntl_setfl(fd, fl | OFlags::NONBLOCK);
            }
        }
        let a = ident(&a_r).ok_or(Errno::EINVAL)?;
        let pipe = Arc::new(RemotePipe {
            id,
            queue,
            read_file: Mutex::new(Some(dev)),
            write_file: Mutex::new(None),
            idents: (a, a),
            device: true,
            ready: Mutex::new(Ready {
                a_w: Some(a_w),
                ..Ready::default()
            }),
            synced: Synced::default(),
            unreaped: AtomicBool::new(false),
        });
        Ok((pipe, a_r))
    }

    /// Runs `f` on the server's ends (A's write end, B's read end), for
    /// registering them with epoll.
    pub(crate) fn with_server_ends<R>(
        &self,
        f: impl FnOnce(Option<&OwnedFd>, Option<&OwnedFd>) -> R,
    ) -> R {
        let r = self.ready.lock();
        f(r.a_w.as_ref(), r.b_r.as_ref())
    }

    /// The emulated file of `end`, while it is open.
    pub(crate) fn file(&self, end: End) -> Option<Arc<OpenFile>> {
        match end {
            End::Read => self.read_file.lock().clone(),
            End::Write => self.write_file.lock().clone(),
        }
    }

    fn writers_gone(&self) -> bool {
        !self.device && self.write_file.lock().is_none()
    }

    /// Every real read end is closed: the emulated read end is released
    /// (`pipe_release()`; the pipe's last file clears the queue).
    pub(crate) fn release_read(&self) {
        let f = self.read_file.lock().take();
        {
            let mut r = self.ready.lock();
            r.a_w = None;
            r.a_path = None;
            r.a_r = None;
            r.mirror = None;
        }
        drop(f);
    }

    /// Every real write end is closed: the emulated write end is released,
    /// and readers wake to the end of file.
    pub(crate) fn release_write(&self) {
        // Under the pipe's lock (the order every reader takes: `ready`,
        // then `write_file`): no read sees the writer gone, and so the end
        // of file, before A's write end below is closed and the program's
        // real read end hangs up.
        let mut r = self.ready.lock();
        let f = self.write_file.lock().take();
        r.b_r = None;
        // A's write end goes too (its tokens stay): the program's read end
        // hangs up. Without /proc to come back through, it stays, with the
        // end-of-file token. Not when every read end is already closed
        // (`close_range` over both ends, an exit): then A's write end
        // holds the pending event that releases the read end, and closing
        // it would drop that event.
        let readers_gone = r.a_w.as_ref().is_some_and(|w| {
            use rustix::event::{PollFd, PollFlags};
            let mut p = [PollFd::new(w, PollFlags::OUT)];
            rustix::event::poll(&mut p, Some(&rustix::event::Timespec::default())).is_ok()
                && p[0].revents().contains(PollFlags::ERR)
        });
        if let Some(a_w) = r.a_w.take_if(|_| !readers_gone) {
            match (
                reopen(&a_w, OFlags::PATH),
                reopen(&a_w, OFlags::RDONLY | OFlags::NONBLOCK),
            ) {
                (Ok(path), Ok(rd)) => {
                    r.a_path = Some(path);
                    r.a_r = Some(rd);
                }
                _ => r.a_w = Some(a_w),
            }
        }
        self.sync_locked(&mut r);
        drop(r);
        // The file's own release runs with no pipe lock held.
        drop(f);
    }

    /// Is every real read end closed, for a pipe whose write end is
    /// released (A hung up: its epoll watch went with A's write end)? With
    /// the server's own read end closed, a writer reopened for the moment
    /// polls `POLLERR` once no reader is left (an anonymous pipe's
    /// `fifo_open()` never fails with ENXIO); the server's read end is
    /// reopened if one is.
    pub(crate) fn hung_up_readers_gone(&self) -> bool {
        use rustix::event::{PollFd, PollFlags};
        let mut r = self.ready.lock();
        if r.a_w.is_some() {
            return false;
        }
        let Some(path) = r.a_path.as_ref() else {
            return false;
        };
        let Ok(w) = reopen(path, OFlags::WRONLY | OFlags::NONBLOCK) else {
            return false;
        };
        // Closed with a writer open: no wake-up of its own.
        r.a_r = None;
        let mut p = [PollFd::new(&w, PollFlags::OUT)];
        let gone = rustix::event::poll(&mut p, Some(&rustix::event::Timespec::default())).is_ok()
            && p[0].revents().contains(PollFlags::ERR);
        if !gone {
            r.a_r = r
                .a_path
                .as_ref()
                .and_then(|p| reopen(p, OFlags::RDONLY | OFlags::NONBLOCK).ok());
        }
        drop(w);
        gone
    }

    /// Does the end of file need its token in A (the write end released
    /// and A's write end kept: no /proc to hang up through)?
    fn eof_token_needed(&self, r: &Ready) -> bool {
        self.writers_gone() && r.a_w.is_some()
    }

    /// Both ends released.
    pub(crate) fn is_gone(&self) -> bool {
        self.read_file.lock().is_none() && self.write_file.lock().is_none()
    }

    fn has_records(&self, r: &Ready) -> bool {
        !r.front.is_empty() || self.queue.has_records()
    }

    fn sync_locked(&self, r: &mut Ready) {
        if r.mirror.is_some() {
            self.pump_locked(r);
            return;
        }
        let st = self.queue.stats();
        let delivered = st.posted.saturating_sub(st.lost);
        let new = delivered.saturating_sub(r.seen);
        r.seen = r.seen.max(delivered);
        let want = self.has_records(r) || self.eof_token_needed(r);
        if !r.a_open() || (r.a_w.is_none() && new == 0 && !want) {
            // Hung up with nothing new: no system call at all.
            return;
        }
        let pending = r.a_bytes();
        let mut n = new.min(TOKEN_CAP.saturating_sub(pending));
        if n == 0 && want && pending <= r.outstanding {
            n = 1;
        }
        if n > 0 {
            if let Some(w) = r.a_writer() {
                write_tokens(&w, n);
            }
        }
    }

    /// After a read of this pipe: how many bytes of A the reader must
    /// drain (all not already promised, when no record is left), now
    /// promised to it.
    fn drain_for_reader(&self, r: &mut Ready) -> u64 {
        self.sync_locked(r);
        if self.has_records(r) {
            return 0;
        }
        if !r.a_open() {
            return 0;
        }
        let pending = r.a_bytes();
        let keep = u64::from(self.eof_token_needed(r));
        let d = pending.saturating_sub(r.outstanding + keep);
        r.outstanding += d;
        d
    }

    /// After a poll that found nothing to read: the bytes of A the poller
    /// must drain (a 2019 consumer empties its ring by moving the tail in
    /// its mapping, which no call announces; its poll catches up here).
    pub(crate) fn drain_for_poller(&self) -> u64 {
        let mut r = self.ready.lock();
        if r.mirror.is_some() {
            // Its readers drain their own share (ring::shm).
            return 0;
        }
        self.drain_for_reader(&mut r)
    }

    /// A reader kept (or broke) its promise to drain `n` bytes.
    pub(crate) fn drained(&self, n: u64) {
        let mut r = self.ready.lock();
        r.outstanding = r.outstanding.saturating_sub(n);
        // The readiness rule reads `outstanding`: the next sync runs.
        self.force_sync();
    }

    /// Makes the next [`RemotePipe::sync_gc`] run whatever it finds.
    pub(crate) fn force_sync(&self) {
        // Relaxed: the marker only lets a sync be skipped; a sync that
        // misses this store runs anyway if the queue moved, and the
        // monitor's tick syncs every pipe regardless.
        self.synced.posted.store(u64::MAX, Ordering::Relaxed);
    }

    /// One read without sleeping: `read` runs the emulated read into the
    /// buffer it is given. Returns the records (or the error) and the
    /// bytes the reader must drain.
    pub(crate) fn read(
        &self,
        count: usize,
        read: impl FnOnce(&mut [u8]) -> Result<usize>,
    ) -> (Result<Vec<u8>>, u64) {
        let mut r = self.ready.lock();
        let res = if r.front.is_empty() {
            let mut buf = vec![0u8; count];
            read(&mut buf).map(|n| {
                buf.truncate(n);
                buf
            })
        } else {
            take_front(&mut r.front, count)
        };
        let drain = self.drain_for_reader(&mut r);
        (res, drain)
    }

    /// The pipe's shared-memory mirror (made by the first call: a sized
    /// notification pipe with no records given back pending), its ring and
    /// progress page memfds for a reader to map. From then on every read
    /// of the pipe goes through it ([`RemotePipe::mirror_read`]), records
    /// travel there as they are posted (`sync`), and A holds one readiness
    /// byte per record published and not taken (plus the end-of-file one),
    /// which each reader drains for what it took (`ring::shm`).
    ///
    /// # Errors
    /// ENODEV: the device, an unsized queue or records given back pending
    /// (read through the kernel meanwhile); the memfds' errors.
    pub(crate) fn mirror(&self) -> Result<(std::fs::File, std::fs::File)> {
        let mut r = self.ready.lock();
        if r.mirror.is_none() {
            let cap = self.queue.capacity();
            if self.device || cap == 0 || !r.front.is_empty() || !r.a_open() {
                return Err(Errno::ENODEV);
            }
            let w = ShmWriter::new(cap)?;
            // The bytes in A now stand for records queued (or the end of
            // file); those promised to a drainer are about to go.
            let pending = r.a_bytes();
            r.credit = pending.saturating_sub(r.outstanding);
            r.mirror = Some(Box::new(w));
            self.pump_locked(&mut r);
        }
        let m = r.mirror.as_ref().expect("made above");
        let dup = |f: &std::fs::File| f.try_clone().map_err(|_| Errno::EMFILE);
        Ok((dup(m.ring_file())?, dup(m.page_file())?))
    }

    /// Takes in what the mirror's readers took (validating their progress
    /// page; a scribble is repaired and counted): their records leave the
    /// queue. True if the page was scribbled on.
    pub(crate) fn reap(&self) -> bool {
        let mut r = self.ready.lock();
        self.reap_locked(&mut r)
    }

    /// Does the mirror hold published records not yet reaped (which its
    /// readers may have taken)? Without a lock: a hint for `reap_all`.
    pub(crate) fn unreaped(&self) -> bool {
        // Relaxed: set before the records are published (pump_locked), so
        // a reader that took them did so after the store; the call this
        // reap precedes comes after that take in the caller's order.
        self.unreaped.load(Ordering::Relaxed)
    }

    fn reap_locked(&self, r: &mut Ready) -> bool {
        let Some(m) = r.mirror.as_mut() else {
            return false;
        };
        let got = m.reap();
        // Relaxed: as `unreaped`; written under the pipe's lock.
        self.unreaped.store(m.pending(), Ordering::Relaxed);
        if got.records > 0 || got.loss_records > 0 {
            self.queue.mirror_release(got.records, got.loss_records);
        }
        got.scribbled
    }

    /// Reap, then carry the records queued since into the mirror, with a
    /// readiness byte each, and publish them.
    fn pump_locked(&self, r: &mut Ready) {
        self.reap_locked(r);
        let writers_gone = self.writers_gone();
        let eof_token = self.eof_token_needed(r);
        let Some(m) = r.mirror.as_mut() else { return };
        let mut records = 0u64;
        let mut entries = 0u64;
        self.queue.mirror_pass(&mut |rec, ring| {
            // The capacity bound (ring::shm) leaves room for everything a
            // queue can hold, so this never fails.
            let ok = m.append(rec, ring);
            debug_assert!(ok, "mirror full");
            records += u64::from(ring);
            entries += 1;
        });
        let mut n = records.saturating_sub(r.credit);
        r.credit = r.credit.saturating_sub(records);
        if eof_token && !r.eof_token {
            r.eof_token = true;
            if r.credit > 0 {
                r.credit -= 1;
            } else {
                n += 1;
            }
        }
        // The bytes first: a reader that sees a record has its byte to drain.
        if n > 0 {
            if let Some(w) = r.a_writer() {
                write_tokens(&w, n);
            }
        }
        if let Some(m) = r.mirror.as_mut() {
            if entries > 0 || m.pending() {
                // Relaxed: see `unreaped`; stored before the publication.
                self.unreaped.store(true, Ordering::Relaxed);
            }
            m.publish();
            // Records given back wait in `front`, ahead of the mirror's:
            // every reader asks here first while there are any.
            m.set_ask(r.gc_waiting || writers_gone, !r.front.is_empty());
        }
    }

    /// Has anything a sync reads moved since the last one (see
    /// [`RemotePipe::sync_gc`])? A few atomic loads.
    pub(crate) fn needs_sync(&self, gc_waiting: bool) -> bool {
        let st = self.queue.stats();
        // Relaxed: a skip is taken only on values stored by the sync that
        // followed the post in the thread that made it (every post is
        // followed by a sync there), or by a later one.
        self.synced.posted.load(Ordering::Relaxed) != st.posted
            || self.synced.lost.load(Ordering::Relaxed) != st.lost
            || self.synced.gc.load(Ordering::Relaxed) != gc_waiting
    }

    /// Brings the readiness up to date, noting whether the key collector
    /// waits for a consumer (a mirror's readers then ask the kernel when
    /// they find it empty, so it runs as an empty read lets it).
    ///
    /// Skipped, without a lock or a system call, when the queue posted and
    /// lost nothing since the last sync and the collector's state is the
    /// same (nothing the rule reads has moved: reads, unreads, a released
    /// write end and a mirror's making sync by themselves, and a drain
    /// kept forces the next one); `force` runs it regardless (the clock
    /// tick, a sync asked from outside a call).
    pub(crate) fn sync_gc(&self, gc_waiting: bool, force: bool) {
        if !force && !self.needs_sync(gc_waiting) {
            return;
        }
        let mut r = self.ready.lock();
        // What this sync covers, read under the lock before it runs: a
        // post after the read makes the next sync run again.
        let st = self.queue.stats();
        r.gc_waiting = gc_waiting;
        self.sync_locked(&mut r);
        // Relaxed: see above.
        self.synced.lost.store(st.lost, Ordering::Relaxed);
        self.synced.gc.store(gc_waiting, Ordering::Relaxed);
        self.synced.posted.store(st.posted, Ordering::Relaxed);
    }

    /// On each clock tick: a mirror left empty with readiness bytes that
    /// did not move since the last tick has stale ones (see `stale`).
    /// True when the pipe is hung up and its last read end was found
    /// closed: looked for at ticks 1, 2, 4, … 64 after the hang-up (a
    /// program that closes both ends, or exits, is found within a few
    /// ticks), then every hundred ticks (ten seconds), each look a
    /// possible spurious edge for an edge-triggered reader.
    pub(crate) fn tick(&self) -> bool {
        let hung_up = {
            let mut r = self.ready.lock();
            r.a_path.is_some() && {
                r.hup_ticks = r.hup_ticks.saturating_add(1);
                r.hup_ticks.is_power_of_two() && r.hup_ticks <= 64
                    || r.hup_ticks.is_multiple_of(100)
            }
        };
        if hung_up && self.hung_up_readers_gone() {
            return true;
        }
        let mut r = self.ready.lock();
        let Some(m) = r.mirror.as_ref() else {
            return false;
        };
        if !r.a_open() {
            return false;
        }
        let bytes = r.a_bytes();
        let now = (bytes, m.drained_word(), m.published());
        let keep = u64::from(r.eof_token) + r.front_tokens;
        if m.pending() || bytes <= keep {
            r.stale = None;
            return false;
        }
        if r.stale == Some(now) {
            r.repair = bytes - keep;
            r.stale = None;
        } else {
            r.stale = Some(now);
        }
        false
    }

    /// A read of a mirrored pipe that found nothing in the mirror (or was
    /// told to ask first): records given back first, by value, with what
    /// follows them that fits (as [`RemotePipe::mirror_take`]); else brings
    /// the mirror up to date: true if records are there now (the reader
    /// takes them itself), false if it is empty.
    pub(crate) fn mirror_read(&self, count: usize) -> (Option<Result<Vec<u8>>>, bool, u64) {
        let mut r = self.ready.lock();
        if !r.front.is_empty() {
            let (res, drain) = self.mirror_take_locked(&mut r, count);
            return (res, false, drain);
        }
        self.pump_locked(&mut r);
        let pending = r.mirror.as_ref().is_some_and(|m| m.pending());
        let drain = if pending {
            0
        } else {
            std::mem::take(&mut r.repair)
        };
        (None, pending, drain)
    }

    /// A read by value of a mirrored pipe (`Request::ReadValue`: a reader
    /// that cannot read the mirror itself, or records given back): those
    /// first, as the kernel's `pipe_read()` leaves them at the head, then
    /// what a reader would take from the mirror now in the room left,
    /// taken by the kernel's own reader of it; and the readiness bytes
    /// that are the caller's share. None when there is nothing (or the
    /// mirror's page is scribbled on: the next reap repairs it).
    pub(crate) fn mirror_take(&self, count: usize) -> (Option<Result<Vec<u8>>>, u64) {
        let mut r = self.ready.lock();
        self.mirror_take_locked(&mut r, count)
    }

    fn mirror_take_locked(&self, r: &mut Ready, count: usize) -> (Option<Result<Vec<u8>>>, u64) {
        let mut got = Vec::new();
        let mut drain = 0;
        if !r.front.is_empty() {
            got = match take_front(&mut r.front, count) {
                Ok(d) => d,
                Err(e) => return (Some(Err(e)), 0),
            };
            // Each had its readiness byte written by the unread.
            drain = records_in(&got).min(r.front_tokens);
            r.front_tokens -= drain;
            if r.front.is_empty() {
                // Any bytes left over are stale (a reader killed before it
                // drained): the clock's repair takes them.
                r.front_tokens = 0;
            }
        }
        // Also when `front` is left non-empty: the mirror's flags follow it.
        self.pump_locked(r);
        let room = count - got.len();
        let some = |got: Vec<u8>| (!got.is_empty()).then_some(Ok(got));
        if !r.front.is_empty() || room == 0 {
            return (some(got), drain);
        }
        if r.reader.is_none() {
            let Some(m) = r.mirror.as_ref() else {
                return (some(got), drain);
            };
            let files = (m.ring_file().try_clone(), m.page_file().try_clone());
            let (Ok(ring), Ok(page)) = files else {
                return (some(got).or(Some(Err(Errno::EMFILE))), drain);
            };
            match ShmReader::open(ring, page) {
                Ok(rd) => r.reader = Some(Box::new(rd)),
                Err(e) => return (some(got).or(Some(Err(e))), drain),
            }
        }
        let rd = r.reader.as_ref().expect("mapped above");
        let mut buf = vec![0u8; room];
        let mut ends = Ends::new();
        let after_front = !got.is_empty();
        // Taken as soon as copied (into the reply: the caller gives back
        // what it cannot copy out with an unread, which lands in `front`).
        // After records given back, a loss record comes only with a
        // record behind it, as after any other records in a read; alone,
        // it is left for the next read.
        let mut take = |recs: &[u8], ends: &Ends| {
            if after_front && ends.len() == 1 && is_loss(recs) {
                0
            } else {
                ends.len()
            }
        };
        match rd.read(&mut buf, &mut ends, &mut take) {
            Local::Read { bytes, drain: d } => {
                got.extend_from_slice(&buf[..bytes]);
                self.reap_locked(r);
                (Some(Ok(got)), drain + u64::from(d))
            }
            Local::NoBufs if !after_front => (Some(Err(Errno::ENOBUFS)), 0),
            Local::NoBufs | Local::Empty | Local::Invalid | Local::Fault => (some(got), drain),
        }
    }

    /// The write end is released (a read of an empty queue is the end).
    pub(crate) fn eof(&self) -> bool {
        // Under the lock `release_write` holds until A hangs up.
        let _r = self.ready.lock();
        self.writers_gone()
    }

    /// Gives back `bytes` (whole records a reader could not copy out), to
    /// be read first.
    pub(crate) fn unread(&self, bytes: &[u8]) {
        let mut r = self.ready.lock();
        let mut v = bytes.to_vec();
        v.extend_from_slice(&r.front);
        r.front = v;
        if r.mirror.is_some() {
            // One readiness byte each, as for the mirror's records: a
            // sleeper (or a poller of the real end) wakes for them.
            let n = records_in(bytes);
            if let Some(w) = r.a_writer() {
                write_tokens(&w, n);
            }
            r.front_tokens += n;
        }
        self.sync_locked(&mut r);
    }

    /// Bytes of records given back and not yet read again (FIONREAD adds
    /// them), and whether any are (POLLIN).
    pub(crate) fn front_len(&self) -> usize {
        self.ready.lock().front.len()
    }
}

/// The length of the record at the start of `b` (its header's length
/// field), if a whole one is there.
pub fn record_len(b: &[u8]) -> Option<usize> {
    let info = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
    let n = (info & WATCH_INFO_LENGTH) as usize;
    (n >= 8 && n <= b.len()).then_some(n)
}

/// Does `b` split into whole records?
pub(crate) fn whole_records(mut b: &[u8]) -> bool {
    while !b.is_empty() {
        match record_len(b) {
            Some(n) => b = &b[n..],
            None => return false,
        }
    }
    true
}

/// Is `rec` a loss record (`WATCH_META_LOSS_NOTIFICATION`)?
fn is_loss(rec: &[u8]) -> bool {
    rec.get(..4).is_some_and(|h| {
        let w = u32::from_le_bytes(h.try_into().expect("4 bytes"));
        w & 0xff_ffff == WATCH_TYPE_META && (w >> 24) as u8 == WATCH_META_LOSS_NOTIFICATION
    })
}

/// The whole records in `b`.
fn records_in(mut b: &[u8]) -> u64 {
    let mut n = 0;
    while let Some(len) = record_len(b) {
        b = &b[len..];
        n += 1;
    }
    n
}

/// Takes the whole records of `front` that fit in `count` bytes.
///
/// # Errors
/// ENOBUFS: the first does not fit.
fn take_front(front: &mut Vec<u8>, count: usize) -> Result<Vec<u8>> {
    let mut n = 0;
    while let Some(len) = record_len(&front[n..]) {
        if n + len > count {
            break;
        }
        n += len;
    }
    if n == 0 {
        return Err(Errno::ENOBUFS);
    }
    Ok(front.drain(..n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(len: u8) -> Vec<u8> {
        let mut v = vec![0u8; len as usize];
        v[4] = len;
        v
    }

    #[test]
    fn server_front_records_split_whole() {
        let mut f = [rec(16), rec(8), rec(24)].concat();
        assert!(whole_records(&f));
        assert!(!whole_records(&f[..20]));
        assert_eq!(take_front(&mut f, 8), Err(Errno::ENOBUFS));
        assert_eq!(take_front(&mut f, 30).unwrap().len(), 24);
        assert_eq!(f.len(), 24);
        assert_eq!(take_front(&mut f, 100).unwrap().len(), 24);
        assert!(f.is_empty());
    }
}

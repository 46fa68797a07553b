//! Pipes: ordinary byte pipes and notification pipes.
//!
//! Owns [`Pipe`], mirroring `struct pipe_inode_info` and the file
//! operations of fs/pipe.c. An ordinary pipe is a ring of page-sized
//! buffers (`max_usage` of them, 16 by default): a write first tops up the
//! last buffer with its sub-page remainder when that buffer may be merged
//! into, then fills new buffers; a packet-mode (`O_DIRECT`) write makes
//! buffers that are never merged and are read one per read(), the rest of a
//! packet discarded, as in `pipe_read()`. A notification pipe wraps a
//! [`WatchQueue`] instead and refuses writes with EXDEV.
//!
//! The pipe counts its readers, writers and open files; when the last open
//! file goes, the pipe is freed and a notification queue is cleared (every
//! watch detached, no removal records), as `free_pipe_info()` does.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use watchq_core::lsm::caps::CAP_SYS_RESOURCE;
use watchq_core::lsm::UserStruct;
use watchq_core::uapi::*;
use watchq_core::wait::WaitQueue;
use watchq_core::{AllocFaults, Cred, Errno, ReadMode, Result, WatchQueue};

/// One page-sized buffer of an ordinary pipe.
#[derive(Debug)]
struct PipeBuf {
    data: Vec<u8>,
    off: usize,
    /// `PIPE_BUF_FLAG_PACKET` (written in O_DIRECT mode); otherwise `CAN_MERGE`.
    packet: bool,
}

impl PipeBuf {
    fn len(&self) -> usize {
        self.data.len() - self.off
    }
}

#[derive(Debug)]
struct ByteRing {
    bufs: VecDeque<PipeBuf>,
    /// Buffers the pipe may hold (`pipe->max_usage`).
    max_usage: usize,
}

impl ByteRing {
    fn full(&self) -> bool {
        self.bufs.len() >= self.max_usage
    }

    fn bytes(&self) -> usize {
        self.bufs.iter().map(PipeBuf::len).sum()
    }

    /// Appends `data` as `pipe_write()` would while there is room; returns
    /// how much went in. `first` says this is the call's first pass (only
    /// then may the sub-page remainder merge into the last buffer).
    fn push(&mut self, data: &[u8], packet: bool, first: bool) -> usize {
        let mut done = 0;
        let chars = data.len() % PAGE_SIZE;
        if first && chars != 0 {
            if let Some(last) = self.bufs.back_mut() {
                if !last.packet && !packet && last.data.len() + chars <= PAGE_SIZE {
                    last.data.extend_from_slice(&data[..chars]);
                    done = chars;
                }
            }
        }
        while done < data.len() && !self.full() {
            let n = (data.len() - done).min(PAGE_SIZE);
            self.bufs.push_back(PipeBuf {
                data: data[done..done + n].to_vec(),
                off: 0,
                packet,
            });
            done += n;
        }
        done
    }

    /// Copies out as `pipe_read()` does; returns bytes copied.
    fn pop(&mut self, out: &mut [u8]) -> usize {
        let mut ret = 0;
        while let Some(b) = self.bufs.front_mut() {
            if ret == out.len() {
                break;
            }
            let chars = b.len().min(out.len() - ret);
            out[ret..ret + chars].copy_from_slice(&b.data[b.off..b.off + chars]);
            ret += chars;
            b.off += chars;
            let packet = b.packet;
            if packet || b.len() == 0 {
                self.bufs.pop_front();
            }
            if packet {
                break;
            }
        }
        ret
    }
}

/// What a pipe carries.
enum PipeKind {
    /// An ordinary pipe.
    Bytes {
        ring: Mutex<ByteRing>,
        rd_wait: WaitQueue,
    },
    /// A notification pipe (`pipe->watch_queue` set).
    Notification(Arc<WatchQueue>),
}

/// A pipe. Mirrors `struct pipe_inode_info`.
pub(crate) struct Pipe {
    ino: u64,
    readers: AtomicUsize,
    writers: AtomicUsize,
    files: AtomicUsize,
    wr_wait: WaitQueue,
    kind: PipeKind,
    /// The user charged for the pipe's pages and how many
    /// (`pipe->user`, `pipe->nr_accounted`).
    account: Option<(Arc<UserStruct>, AtomicUsize)>,
}

impl Drop for Pipe {
    /// `free_pipe_info()`: the user gets the pages back.
    fn drop(&mut self) {
        if let Some((user, n)) = &self.account {
            // Relaxed: the count is the only thing it stands for (no other
            // memory is handed over through it), and the pipe is going.
            user.account_pipe_buffers(n.load(Ordering::Relaxed) as u64, 0);
        }
    }
}

impl std::fmt::Debug for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipe")
            .field("ino", &self.ino)
            .field("notification", &self.queue().is_some())
            .field("readers", &self.readers())
            .field("writers", &self.writers())
            .finish()
    }
}

impl Pipe {
    /// An ordinary pipe of `pages` pages (16, or 2 over the soft limit:
    /// [`alloc_pipe_pages`]), charged to `user`. Mirrors
    /// `alloc_pipe_info()`.
    pub(crate) fn new_bytes(ino: u64, user: Arc<UserStruct>, pages: usize) -> Arc<Self> {
        let mut p = Self::build(
            ino,
            PipeKind::Bytes {
                ring: Mutex::new(ByteRing {
                    bufs: VecDeque::new(),
                    max_usage: pages,
                }),
                rd_wait: WaitQueue::new(),
            },
        );
        p.account = Some((user, AtomicUsize::new(pages)));
        Arc::new(p)
    }

    /// A notification pipe around a fresh, unsized queue whose `SET_SIZE`
    /// obeys the kernel's fault knob, charged `pages` pages to `user`
    /// (see [`alloc_pipe_pages`]). Mirrors `alloc_pipe_info()` plus
    /// `watch_queue_init()`.
    pub(crate) fn new_notification(
        ino: u64,
        faults: Arc<AllocFaults>,
        user: Arc<UserStruct>,
        pages: usize,
    ) -> Arc<Self> {
        let mut p = Self::build(
            ino,
            PipeKind::Notification(WatchQueue::with_alloc_faults(faults)),
        );
        p.account = Some((user, AtomicUsize::new(pages)));
        Arc::new(p)
    }

    fn build(ino: u64, kind: PipeKind) -> Pipe {
        Pipe {
            ino,
            readers: AtomicUsize::new(0),
            writers: AtomicUsize::new(0),
            files: AtomicUsize::new(0),
            wr_wait: WaitQueue::new(),
            kind,
            account: None,
        }
    }

    /// `SET_SIZE`'s accounting (`watch_queue_set_size()` since the 2025 fix,
    /// commit f13abc1e8e1a): `nr_notes` (already known to be 1..=512, the
    /// queue unsized) takes `nr_pages` pages; growing past `max_usage`
    /// while the user is over `pipe-user-pages-soft` or `-hard` is EPERM
    /// for an unprivileged caller; otherwise the pipe is charged
    /// `nr_pages`. Returns what to charge back if the sizing then fails.
    ///
    /// # Errors
    /// EPERM, as above (nothing charged).
    pub(crate) fn account_set_size(
        &self,
        nr_notes: u32,
        limits: (u64, u64),
        privileged: bool,
    ) -> Result<Option<usize>> {
        let Some((user, accounted)) = &self.account else {
            return Ok(None);
        };
        let nr_pages = (nr_notes as usize).div_ceil(WATCH_QUEUE_NOTES_PER_PAGE);
        // Relaxed (this load, the store and the swap below, and
        // `max_usage`'s load): `nr_accounted` is a count that stands for
        // itself, no other memory is published through it, and the
        // user's total is its own atomic; a racing second SET_SIZE gets
        // EBUSY from the queue and gives its charge back.
        let old = accounted.load(Ordering::Relaxed);
        let user_bufs = user.account_pipe_buffers(old as u64, nr_pages as u64);
        let (soft, hard) = limits;
        let over = (hard != 0 && user_bufs > hard) || (soft != 0 && user_bufs > soft);
        if nr_pages > old && over && !privileged {
            user.account_pipe_buffers(nr_pages as u64, old as u64);
            return Err(Errno::EPERM);
        }
        accounted.store(nr_pages, Ordering::Relaxed);
        Ok(Some(old))
    }

    /// Undoes [`Pipe::account_set_size`] after a failed sizing.
    pub(crate) fn unaccount_set_size(&self, old: usize) {
        if let Some((user, accounted)) = &self.account {
            // Relaxed: see `account_set_size`.
            let now = accounted.swap(old, Ordering::Relaxed);
            user.account_pipe_buffers(now as u64, old as u64);
        }
    }

    /// The inode number.
    pub(crate) fn ino(&self) -> u64 {
        self.ino
    }

    /// The notification queue, if this is a notification pipe.
    pub(crate) fn queue(&self) -> Option<&Arc<WatchQueue>> {
        match &self.kind {
            PipeKind::Notification(q) => Some(q),
            PipeKind::Bytes { .. } => None,
        }
    }

    pub(crate) fn readers(&self) -> usize {
        // Relaxed: nothing is read through an end count. A waiter's
        // readiness check reads it after its wait queue's register fence,
        // and `release_end` wakes after dropping it (the wake's fence):
        // the two SeqCst fences are what make a sleeper see the last end
        // go (the loom model `loom_wait_last_writer_wakes_reader` is this
        // pattern with these orderings; scripts/loom-weaken.py).
        self.readers.load(Ordering::Relaxed)
    }

    pub(crate) fn writers(&self) -> usize {
        // Relaxed: as `readers`.
        self.writers.load(Ordering::Relaxed)
    }

    /// The wait queue readers sleep on.
    pub(crate) fn rd_wait(&self) -> &WaitQueue {
        match &self.kind {
            PipeKind::Notification(q) => q.rd_wait(),
            PipeKind::Bytes { rd_wait, .. } => rd_wait,
        }
    }

    /// The wait queue writers sleep on.
    pub(crate) fn wr_wait(&self) -> &WaitQueue {
        &self.wr_wait
    }

    /// A file opened one or both ends.
    pub(crate) fn open_end(&self, read: bool, write: bool) {
        // Relaxed: as `readers`; the RMWs keep the counts exact.
        self.files.fetch_add(1, Ordering::Relaxed);
        if read {
            self.readers.fetch_add(1, Ordering::Relaxed);
        }
        if write {
            self.writers.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A file of this pipe was released. Mirrors `pipe_release()`: wakes
    /// the other side; the last file frees the pipe.
    pub(crate) fn release_end(&self, read: bool, write: bool) {
        // Relaxed: as `readers` (the wake after the count's drop is what a
        // sleeper is ordered by). The RMWs' atomicity alone picks the one
        // release that saw a count reach 0; `clear` below takes the queue's
        // own locks, which order it after every other file's use of the
        // queue, so no data is handed over through `files` either.
        if read && self.readers.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.wr_wait.wake();
        }
        if write && self.writers.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.rd_wait().wake();
        }
        if self.files.fetch_sub(1, Ordering::Relaxed) == 1 {
            if let Some(q) = self.queue() {
                q.clear();
            }
        }
    }

    /// `pipe->max_usage`: buffers (pages) the pipe may hold. A notification
    /// pipe keeps the default 16 until `SET_SIZE`, then its page count.
    pub(crate) fn max_usage(&self) -> usize {
        match &self.kind {
            PipeKind::Notification(q) => q.nr_pages().unwrap_or_else(|| {
                // Relaxed: see `account_set_size`.
                self.account
                    .as_ref()
                    .map_or(PIPE_DEF_BUFFERS, |(_, n)| n.load(Ordering::Relaxed))
            }),
            PipeKind::Bytes { ring, .. } => ring.lock().max_usage,
        }
    }

    /// read(). Mirrors `pipe_read()`.
    ///
    /// # Errors
    /// EAGAIN (empty, writers, non-blocking), EINTR (deadline while
    /// sleeping), ENOBUFS (notification pipe: first record does not fit).
    pub(crate) fn read(&self, out: &mut [u8], mode: ReadMode) -> Result<usize> {
        let n = match &self.kind {
            PipeKind::Notification(q) => q.read(out, mode, &|| self.writers() > 0)?,
            PipeKind::Bytes { ring, rd_wait } => {
                if out.is_empty() {
                    return Ok(0);
                }
                loop {
                    let n = ring.lock().pop(out);
                    if n > 0 {
                        break n;
                    }
                    if self.writers() == 0 {
                        return Ok(0);
                    }
                    if mode.nonblock {
                        return Err(Errno::EAGAIN);
                    }
                    let ready = rd_wait.wait_until(mode.deadline, || {
                        !ring.lock().bufs.is_empty() || self.writers() == 0
                    });
                    if !ready {
                        return Err(Errno::EINTR);
                    }
                }
            }
        };
        if n > 0 {
            self.wr_wait.wake();
        }
        Ok(n)
    }

    /// write(). Mirrors `pipe_write()`; `packet` is the file's O_DIRECT.
    ///
    /// # Errors
    /// In the kernel's order: EXDEV (notification pipe, checked before
    /// anything else), EPIPE (no reader; SIGPIPE is not emulated), EAGAIN
    /// (full and non-blocking, nothing written), EINTR (deadline while
    /// sleeping, nothing written).
    pub(crate) fn write(&self, data: &[u8], packet: bool, mode: ReadMode) -> Result<usize> {
        let PipeKind::Bytes { ring, rd_wait } = &self.kind else {
            return Err(Errno::EXDEV);
        };
        if data.is_empty() {
            return Ok(0);
        }
        let mut done = 0;
        loop {
            if self.readers() == 0 {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::EPIPE)
                };
            }
            done += ring.lock().push(&data[done..], packet, done == 0);
            if done > 0 {
                rd_wait.wake();
            }
            if done == data.len() {
                return Ok(done);
            }
            if mode.nonblock {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::EAGAIN)
                };
            }
            let ready = self
                .wr_wait
                .wait_until(mode.deadline, || !ring.lock().full() || self.readers() == 0);
            if !ready {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::EINTR)
                };
            }
        }
    }

    /// Bytes queued (FIONREAD): record bytes for a notification pipe.
    pub(crate) fn fionread(&self) -> usize {
        match &self.kind {
            PipeKind::Notification(q) => q.fionread(),
            PipeKind::Bytes { ring, .. } => ring.lock().bytes(),
        }
    }

    /// poll() bits of the read side. Mirrors the read half of `pipe_poll()`.
    pub(crate) fn poll_read(&self) -> u16 {
        let readable = match &self.kind {
            PipeKind::Notification(q) => q.has_records(),
            PipeKind::Bytes { ring, .. } => !ring.lock().bufs.is_empty(),
        };
        let mut m = if readable { POLLIN | POLLRDNORM } else { 0 };
        if self.writers() == 0 {
            m |= POLLHUP;
        }
        m
    }

    /// poll() bits of the write side. Mirrors the write half of `pipe_poll()`.
    pub(crate) fn poll_write(&self) -> u16 {
        let full = match &self.kind {
            PipeKind::Notification(q) => q.occupancy() >= self.max_usage(),
            PipeKind::Bytes { ring, .. } => ring.lock().full(),
        };
        let mut m = if full { 0 } else { POLLOUT | POLLWRNORM };
        if self.readers() == 0 {
            m |= POLLERR;
        }
        m
    }

    /// F_SETPIPE_SZ. Mirrors `pipe_set_size()`; returns the new size in
    /// bytes. The pipe is charged the new page count (`nr_accounted`) to
    /// its user under `limits` (`pipe-user-pages-soft`, `-hard`).
    ///
    /// # Errors
    /// In the kernel's order: EBUSY (a notification pipe), EINVAL (size over
    /// 2 GiB), EPERM (over `pipe-max-size` without CAP_SYS_RESOURCE), EPERM
    /// (growing while the user, so charged, is over either page limit,
    /// without CAP_SYS_RESOURCE or CAP_SYS_ADMIN), EBUSY (more buffers
    /// queued than the new size holds); a failure charges nothing.
    pub(crate) fn set_pipe_size(&self, arg: u64, cred: &Cred, limits: (u64, u64)) -> Result<usize> {
        let PipeKind::Bytes { ring, .. } = &self.kind else {
            return Err(Errno::EBUSY);
        };
        // round_pipe_size(): the argument is an unsigned int.
        let size = arg as u32 as usize;
        if size > 1 << 31 {
            return Err(Errno::EINVAL);
        }
        let size = size.max(PAGE_SIZE).next_power_of_two();
        let nr_slots = size / PAGE_SIZE;
        let mut r = ring.lock();
        if nr_slots > r.max_usage && size > PIPE_MAX_SIZE && !cred.capable(CAP_SYS_RESOURCE) {
            return Err(Errno::EPERM);
        }
        // account_pipe_buffers(): the user is charged the new count first;
        // Relaxed, as in `account_set_size` (the ring's lock orders the
        // pipe's own count).
        let acct = self.account.as_ref();
        let old = acct.map_or(0, |(_, n)| n.load(Ordering::Relaxed));
        let revert = || {
            if let Some((user, _)) = acct {
                user.account_pipe_buffers(nr_slots as u64, old as u64);
            }
        };
        if let Some((user, _)) = acct {
            let user_bufs = user.account_pipe_buffers(old as u64, nr_slots as u64);
            let (soft, hard) = limits;
            let over = (hard != 0 && user_bufs > hard) || (soft != 0 && user_bufs > soft);
            let privileged = cred.capable(CAP_SYS_RESOURCE)
                || cred.capable(watchq_core::lsm::caps::CAP_SYS_ADMIN);
            if nr_slots > r.max_usage && over && !privileged {
                revert();
                return Err(Errno::EPERM);
            }
        }
        if r.bufs.len() > nr_slots {
            revert();
            return Err(Errno::EBUSY);
        }
        r.max_usage = nr_slots;
        if let Some((_, n)) = acct {
            n.store(nr_slots, Ordering::Relaxed);
        }
        drop(r);
        self.wr_wait.wake();
        Ok(nr_slots * PAGE_SIZE)
    }

    /// Copies up to `out.len()` queued bytes without consuming them (tee's
    /// source side). Ordinary pipes only.
    pub(crate) fn peek_bytes(&self, max: usize) -> Vec<u8> {
        let PipeKind::Bytes { ring, .. } = &self.kind else {
            return Vec::new();
        };
        let r = ring.lock();
        let mut v = Vec::new();
        for b in &r.bufs {
            let n = b.len().min(max - v.len());
            v.extend_from_slice(&b.data[b.off..b.off + n]);
            if v.len() == max {
                break;
            }
        }
        v
    }

    /// Is there room for at least one more buffer?
    pub(crate) fn has_room(&self) -> bool {
        match &self.kind {
            PipeKind::Notification(q) => q.occupancy() < self.max_usage(),
            PipeKind::Bytes { ring, .. } => !ring.lock().full(),
        }
    }

    /// Is there nothing queued?
    pub(crate) fn is_empty(&self) -> bool {
        match &self.kind {
            PipeKind::Notification(q) => !q.has_records(),
            PipeKind::Bytes { ring, .. } => ring.lock().bufs.is_empty(),
        }
    }

    /// Sleeps until `ready` or the deadline (EINTR) per the splice helpers'
    /// `wait_for_space`/`pipe_wait_readable`.
    pub(crate) fn wait(
        &self,
        write_side: bool,
        deadline: Option<Instant>,
        ready: impl Fn() -> bool,
    ) -> Result<()> {
        let wq = if write_side {
            &self.wr_wait
        } else {
            self.rd_wait()
        };
        if wq.wait_until(deadline, ready) {
            Ok(())
        } else {
            Err(Errno::EINTR)
        }
    }
}

/// `alloc_pipe_info()`'s accounting: the pages a new pipe of `user` gets
/// (16; 2 once the user is over `pipe-user-pages-soft`), charged to it.
///
/// # Errors
/// ENFILE: over `pipe-user-pages-hard` (nothing charged); both limits
/// bind only an unprivileged caller.
pub(crate) fn alloc_pipe_pages(
    user: &UserStruct,
    limits: (u64, u64),
    privileged: bool,
) -> Result<usize> {
    let (soft, hard) = limits;
    let mut pages = PIPE_DEF_BUFFERS;
    let mut bufs = user.account_pipe_buffers(0, pages as u64);
    if soft != 0 && bufs > soft && !privileged {
        bufs = user.account_pipe_buffers(pages as u64, PIPE_MIN_DEF_BUFFERS as u64);
        pages = PIPE_MIN_DEF_BUFFERS;
    }
    if hard != 0 && bufs > hard && !privileged {
        user.account_pipe_buffers(pages as u64, 0);
        return Err(Errno::ENFILE);
    }
    Ok(pages)
}

/// `PIPE_MIN_DEF_BUFFERS`: a pipe made over the soft limit.
const PIPE_MIN_DEF_BUFFERS: usize = 2;
/// `WATCH_QUEUE_NOTES_PER_PAGE`.
const WATCH_QUEUE_NOTES_PER_PAGE: usize = 32;

//! A notification queue: its ring, filter, watches, statistics and readers.
//!
//! Owns [`WatchQueue`], mirroring `struct watch_queue` together with the
//! parts of `struct pipe_inode_info` a notification pipe uses: the ring
//! (installed once by [`WatchQueue::set_size`]), the filter (replaced
//! atomically, read lock-free by posters), the watches feeding the queue, the
//! closed state, the pipe mutex that serialises readers and sizing, the
//! reader wait queue, and [`QueueStats`], which the kernel does not have:
//! every record offered to the queue is counted as read, lost, still queued,
//! or discarded at close, so a test can prove nothing vanished silently.
//! [`AllocFaults`], a fault-injection knob for tests, makes `SET_SIZE`'s
//! note allocation fail as it would under memory pressure.

use crate::errno::{Errno, Result};
use crate::filter::WatchFilter;
use crate::record::{Notification, LOSS_RECORD};
use crate::ring::mmap::{MmapRing, RingStorage};
use crate::ring::pipe::{Cursor, NoPost, PipeRing, Pop, RingCell};
use crate::ring::PostOutcome;
use crate::sync::{Arc, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Mutex, Ordering, RcuCell};
use crate::uapi::*;
use crate::wait::WaitQueue;
use crate::watch::Watch;
use std::time::Instant;

#[derive(Debug, Default)]
struct PipeState {
    /// `pipe->note_loss`: a loss record is owed before the next record.
    note_loss: bool,
    /// A read-ahead consumer (the shared-memory mirror): where it stands
    /// and whether it owes a loss record. None: reads take from the tail.
    ahead: Option<(Cursor, bool)>,
}

#[derive(Debug, Default)]
struct Counters {
    lost: AtomicU64,
    lost_unsized: AtomicU64,
    read: AtomicU64,
    loss_records: AtomicU64,
    filtered: AtomicU64,
    denied: AtomicU64,
    after_close: AtomicU64,
}

/// A snapshot of a queue's statistics.
///
/// Invariant once quiescent: `posted == read + lost + queued + discarded`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Records offered to the ring (after filter and policy, META included).
    pub posted: u64,
    /// Of those, dropped because the ring was full or not sized yet.
    pub lost: u64,
    /// Of the lost, dropped because no `SET_SIZE` had happened (no loss record follows these).
    pub lost_unsized: u64,
    /// Records consumed by read() (loss records not included).
    pub read: u64,
    /// Loss records read() fabricated.
    pub loss_records: u64,
    /// Records still in the ring.
    pub queued: u64,
    /// Records the queue's filter rejected.
    pub filtered: u64,
    /// Records the security policy refused to deliver.
    pub denied: u64,
    /// Records not offered because the queue was already closed.
    pub after_close: u64,
    /// Unread records thrown away when the queue was closed.
    pub discarded: u64,
}

/// How a read() waits.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadMode {
    /// `O_NONBLOCK`: EAGAIN instead of sleeping.
    pub nonblock: bool,
    /// Give up sleeping at this instant with EINTR, as a read interrupted by
    /// a signal does (the emulated `alarm()`).
    pub deadline: Option<Instant>,
}

/// Fault injection for tests: the next `n` note allocations of the queues
/// sharing this knob fail with ENOMEM, as `SET_SIZE` can under memory
/// pressure (kernel bugs #10 and #16 were its error paths). The kernel has
/// no such knob; nothing but tests should arm it. A queue made by
/// [`WatchQueue::new`] has none and never fails this way.
#[derive(Debug)]
pub struct AllocFaults {
    fail_next: AtomicU32,
}

impl AllocFaults {
    /// A knob that fails nothing yet.
    pub fn new() -> Arc<Self> {
        Arc::new(AllocFaults {
            fail_next: AtomicU32::new(0),
        })
    }

    /// Makes the next `n` note allocations fail (replacing any count left).
    pub fn fail_next(&self, n: u32) {
        // Relaxed: a test knob; the arming thread calls set_size itself or
        // synchronises with the caller some other way.
        self.fail_next.store(n, Ordering::Relaxed);
    }

    /// Failures still armed.
    pub fn pending(&self) -> u32 {
        // Relaxed: as `fail_next`.
        self.fail_next.load(Ordering::Relaxed)
    }

    /// Should this allocation fail? Consumes one armed failure.
    fn take(&self) -> bool {
        // Relaxed: as `fail_next`; the RMW hands each armed failure to one caller.
        self.fail_next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Record types a queue keeps a filter word for (a record of a higher
/// type asks the filter itself): every type any generation defines
/// (`WATCH_TYPE_ALL_NR`, 6) fits, and the eight words are one cache line.
const FILTER_TYPES: usize = 8;
/// Bit of a filter word: the subtype bits are not the whole answer (an
/// entry of this type tests `info`, a 2019 queue's filter, a subtype of 32
/// or more with no filter, or `set_filter` at work): ask the filter in its
/// RCU cell for a record whose subtype bit is clear.
const FILTER_ASK: u64 = 1 << 32;
/// The words of no filter: every subtype passes (one of 32 or more asks,
/// and passes too).
const FILTER_OPEN: u64 = FILTER_ASK | u32::MAX as u64;

/// `f` compiled into the post path's filter words, one per record type:
/// bit `s` (below 32) set when a record of that type and subtype `s`
/// passes whatever its `info`, [`FILTER_ASK`] when an entry of the type
/// tests `info`. A type with no entry has no bit set: its records are
/// rejected (`filter_watch_notification()`'s type bitmap).
fn filter_words(f: Option<&WatchFilter>) -> [u64; FILTER_TYPES] {
    let Some(f) = f else {
        return [FILTER_OPEN; FILTER_TYPES];
    };
    let mut w = [0u64; FILTER_TYPES];
    for e in f.entries() {
        // A type without a word asks for every record anyway.
        let Some(word) = w.get_mut(e.type_ as usize) else {
            continue;
        };
        // No mask means no `info_filter` either (`WatchFilter::parse`
        // refuses filter bits outside the mask): the entry's subtypes pass.
        *word |= if e.info_mask == 0 {
            u64::from(e.subtype_filter)
        } else {
            FILTER_ASK
        };
    }
    w
}

/// The 2019 ring over its (boxed) memory: a sealed memfd normally.
pub type Ring2019 = MmapRing<Box<dyn RingStorage>>;

/// How long a blocking read() watches for a record before it sleeps (see
/// `WatchQueue::spin_for_records`).
pub const READ_SPIN: std::time::Duration = std::time::Duration::from_micros(20);

/// A general notification queue. Mirrors `struct watch_queue` and the
/// notification half of its pipe, or (made by [`WatchQueue::new_2019`]) the
/// 2019 `/dev/watch_queue` queue with its user-mapped ring.
///
/// A queue and its watches refer to each other (as in the kernel) until
/// [`WatchQueue::clear`], which the last close of its file calls: code that
/// makes queues directly, without `watchq_emu`'s files, clears them when done.
// The fields a post reads, first and in this order (`repr(C)`, on a
// 64-byte boundary): `filter_words` to `rd_wait`'s sleeper count are 120
// bytes, two cache lines, where Rust's own order spread them over four
// (in a 64-queue fan-out every line per queue counts: the post is bound
// by the lines it touches).
#[repr(C, align(64))]
pub struct WatchQueue {
    /// The filter again, compiled for the post path ([`filter_words`]):
    /// one load per record decides it unless the word says to ask
    /// `filter`.
    /// One more word past the types', always [`FILTER_ASK`]: a record of
    /// a higher type loads it (its index clamped), so the post path has
    /// no test for "a type without a word".
    filter_words: [AtomicU64; FILTER_TYPES + 1],
    ring: RingCell,
    /// The 2019 design's ring, set once by `SET_SIZE` (None: a pipe queue).
    /// Boxed: its cache-padded indices would otherwise make every pipe
    /// queue 128-byte aligned and half a kilobyte bigger.
    v2: Option<Box<std::sync::OnceLock<Ring2019>>>,
    /// [`WatchQueue::clear`] ran (for adds, statistics, `is_closed`);
    /// posts learn it from `ring`'s marks instead.
    closed: AtomicBool,
    /// Records offered to the ring ([`QueueStats::posted`]); beside the
    /// post path's other fields, not with the rest of the statistics.
    posted: AtomicU64,
    rd_wait: WaitQueue,
    pipe: Mutex<PipeState>,
    filter: RcuCell<Option<WatchFilter>>,
    watches: Mutex<Vec<Arc<Watch>>>,
    nr_pages: AtomicUsize,
    stats: Counters,
    faults: Option<Arc<AllocFaults>>,
}

impl std::fmt::Debug for WatchQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchQueue")
            .field("capacity", &self.capacity())
            .field("closed", &self.is_closed())
            .field("stats", &self.stats())
            .finish()
    }
}

impl WatchQueue {
    /// A fresh, unsized queue with no filter. Mirrors `watch_queue_init()`.
    pub fn new() -> Arc<Self> {
        Self::make(None, None)
    }

    /// As [`WatchQueue::new`], with `SET_SIZE`'s note allocation failing
    /// whenever `faults` is armed (tests of the ENOMEM paths).
    pub fn with_alloc_faults(faults: Arc<AllocFaults>) -> Arc<Self> {
        Self::make(None, Some(faults))
    }

    /// A fresh, unsized queue of the 2019 design (`open("/dev/watch_queue")`).
    pub fn new_2019() -> Arc<Self> {
        Self::make(Some(Box::default()), None)
    }

    fn make(
        v2: Option<Box<std::sync::OnceLock<Ring2019>>>,
        faults: Option<Arc<AllocFaults>>,
    ) -> Arc<Self> {
        Arc::new(WatchQueue {
            v2,
            ring: RingCell::new(),
            pipe: Mutex::new(PipeState::default()),
            filter: RcuCell::new(None),
            filter_words: std::array::from_fn(|t| {
                AtomicU64::new(if t < FILTER_TYPES {
                    FILTER_OPEN
                } else {
                    FILTER_ASK
                })
            }),
            posted: AtomicU64::new(0),
            watches: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            nr_pages: AtomicUsize::new(0),
            stats: Counters::default(),
            rd_wait: WaitQueue::new(),
            faults,
        })
    }

    /// Allocates the notes and the ring. The argument is truncated to 32
    /// bits, as the kernel takes it as `unsigned int`; capacity is rounded up
    /// to whole pages of 32 notes and the ring to a power of two.
    ///
    /// Mirrors `watch_queue_set_size()`.
    ///
    /// # Errors
    /// In the kernel's order (ENODEV for a non-notification pipe is the caller's):
    /// - `EBUSY`: the queue is already sized.
    /// - `EINVAL`: `nr_notes` (low 32 bits) is not in 1..=512.
    /// - `ENOMEM`: the ring cannot be allocated (the queue stays unsized).
    pub fn set_size(&self, nr_notes: u64) -> Result<()> {
        if let Some(cell) = &self.v2 {
            return self.set_size_2019(cell, nr_notes);
        }
        let _pipe = self.pipe.lock();
        if self.ring.get().is_some() {
            return Err(Errno::EBUSY);
        }
        let nr_notes = nr_notes as u32;
        if nr_notes == 0 || nr_notes > WATCH_QUEUE_MAX_NOTES {
            return Err(Errno::EINVAL);
        }
        let nr_pages = (nr_notes as usize).div_ceil(WATCH_QUEUE_NOTES_PER_PAGE);
        // All notes are allocated before anything is installed, so a failure
        // leaves the queue unsized and a later SET_SIZE may try again.
        let ring = self.alloc_notes(nr_pages * WATCH_QUEUE_NOTES_PER_PAGE)?;
        self.ring.set(ring)?;
        // Relaxed: read under the pipe mutex or as an estimate for poll.
        self.nr_pages.store(nr_pages, Ordering::Relaxed);
        Ok(())
    }

    /// Sizes the queue with a ring of `capacity` records, for loom models:
    /// `SET_SIZE` rounds up to a page of 32 notes, more posts than a model
    /// can afford to fill (the style's capacities of 2–4 under loom).
    #[cfg(all(test, loom))]
    pub(crate) fn set_capacity_for_loom(&self, capacity: usize) -> Result<()> {
        let _pipe = self.pipe.lock();
        self.ring.set(PipeRing::new(capacity)?)
    }

    /// The ring with `capacity` notes, or ENOMEM (a real allocation failure
    /// or one armed in [`AllocFaults`]).
    fn alloc_notes(&self, capacity: usize) -> Result<PipeRing> {
        if self.faults.as_ref().is_some_and(|f| f.take()) {
            return Err(Errno::ENOMEM);
        }
        PipeRing::new(capacity)
    }

    /// `SET_SIZE` of the 2019 device: `nr_pages` pages (1..=16, a power of
    /// two) of zeroed ring memory in a sealed memfd.
    ///
    /// # Errors
    /// `EBUSY` (already sized), `EINVAL` (bad page count), `ENOMEM`.
    fn set_size_2019(&self, cell: &std::sync::OnceLock<Ring2019>, nr_pages: u64) -> Result<()> {
        let _pipe = self.pipe.lock();
        if cell.get().is_some() {
            return Err(Errno::EBUSY);
        }
        if nr_pages == 0 || nr_pages > crate::uapi::v2::MAX_PAGES || !nr_pages.is_power_of_two() {
            return Err(Errno::EINVAL);
        }
        let bytes = nr_pages as usize * PAGE_SIZE;
        #[cfg(not(loom))]
        let storage: Box<dyn RingStorage> = Box::new(
            crate::ring::mmap::MemfdStorage::new(bytes, "watch_queue")
                .map_err(|_| Errno::ENOMEM)?,
        );
        #[cfg(loom)]
        let storage: Box<dyn RingStorage> =
            Box::new(crate::ring::mmap::HeapStorage::new(bytes).map_err(|_| Errno::ENOMEM)?);
        let ring = MmapRing::new(storage).map_err(|_| Errno::ENOMEM)?;
        let _ = cell.set(ring);
        // Relaxed: read under the pipe mutex or as an estimate.
        self.nr_pages.store(nr_pages as usize, Ordering::Relaxed);
        Ok(())
    }

    /// The 2019 ring, once sized (None for a pipe queue).
    pub fn ring_2019(&self) -> Option<&Ring2019> {
        self.v2.as_ref().and_then(|c| c.get())
    }

    /// Is this a 2019 `/dev/watch_queue` queue?
    pub fn is_2019(&self) -> bool {
        self.v2.is_some()
    }

    /// Installs a filter parsed from `user` (the readable user memory at the
    /// ioctl's pointer), or removes the filter when `user` is `None` (a NULL
    /// pointer). A failed call leaves the old filter in force.
    ///
    /// Mirrors `watch_queue_set_filter()`.
    ///
    /// # Errors
    /// As [`WatchFilter::parse`]: `EFAULT`, `EINVAL`.
    pub fn set_filter(&self, user: Option<&[u8]>) -> Result<()> {
        let new = match user {
            None => None,
            Some(b) if self.is_2019() => {
                use crate::uapi::v2;
                Some(WatchFilter::parse_masked(
                    b,
                    v2::WATCH_TYPE__NR,
                    v2::WATCH_INFO_LENGTH,
                )?)
            }
            Some(b) => Some(WatchFilter::parse(b, WATCH_TYPE_ALL_NR)?),
        };
        // A 2019 queue's filter is matched on its own encoding, behind the
        // RCU cell: its words only say to ask.
        let words = match &new {
            Some(_) if self.is_2019() => [FILTER_ASK; FILTER_TYPES],
            f => filter_words(f.as_ref()),
        };
        let _pipe = self.pipe.lock();
        // Three steps, so that a poster never sees the new filter for one
        // type and then the old one for another (the kernel's posters see
        // one filter pointer, replaced at once): every word says "ask"
        // first, then the new filter goes into its cell, then each word
        // becomes its compiled form. A poster that saw a compiled word
        // (Acquire, below) sees every word at "ask" or newer, and one that
        // asked the cell and found the new filter sees the same through
        // the cell.
        for w in &self.filter_words[..FILTER_TYPES] {
            // Relaxed: published by the Release stores below, which every
            // poster that reads a new word acquires; a poster that sees
            // this "ask" early only asks the cell, which still holds the
            // old filter.
            w.store(FILTER_ASK, Ordering::Relaxed);
        }
        self.filter.store(Arc::new(new));
        for (w, v) in self.filter_words.iter().zip(words) {
            // ORDERING: Release, pairs with the Acquire load in
            // `filter_allows_header`: a poster that sees this word sees
            // the "ask" stores before it and the cell's new filter.
            w.store(v, Ordering::Release);
        }
        Ok(())
    }

    /// Does the queue's filter let `n` through? META records always pass.
    /// Counts a rejection.
    pub fn filter_allows(&self, n: &Notification) -> bool {
        self.filter_allows_header(n, n.header())
    }

    /// [`WatchQueue::filter_allows`] for `n` with its header (bytes 0..8,
    /// one little-endian word) as `header` (the watch's tag put in,
    /// without a copy of the record).
    #[inline(always)]
    pub(crate) fn filter_allows_header(&self, n: &Notification, header: u64) -> bool {
        let (type_, subtype) = (header as u32 & 0x00ff_ffff, (header >> 24) as u8);
        // A type without a word of its own reads the last, always "ask".
        let at = (type_ as usize).min(FILTER_TYPES);
        // ORDERING: Acquire, pairs with `set_filter`'s Release stores:
        // a word from a new filter means every later word this poster
        // loads is at "ask" or newer, never the old filter's.
        let word = self
            .filter_words
            .get(at)
            .map_or(FILTER_ASK, |w| w.load(Ordering::Acquire));
        // One test on the way of a passing record.
        if subtype < 32 && word >> subtype & 1 != 0 {
            return true;
        }
        self.filter_rejects_or_far(n, (header >> 32) as u32, word & FILTER_ASK != 0)
    }

    /// [`WatchQueue::filter_allows_header`] when the word did not say
    /// "passes": a rejection unless `ask`, which asks the RCU cell. Out of
    /// line, so a passing record's path stays small.
    #[cold]
    #[inline(never)]
    fn filter_rejects_or_far(&self, n: &Notification, info: u32, ask: bool) -> bool {
        let ok = ask && self.filter_allows_far(n, info);
        if !ok {
            // Relaxed: statistics.
            self.stats.filtered.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// [`WatchQueue::filter_allows`] through the RCU cell: an entry that
    /// tests `info`, a record type or subtype without a bit in the words, a
    /// 2019 queue's filter, or `set_filter` at work.
    #[cold]
    #[inline(never)]
    fn filter_allows_far(&self, n: &Notification, info: u32) -> bool {
        let mut tagged = *n;
        tagged.set_info_id(info);
        let n = &tagged;
        self.filter.read(|f| match (f, self.is_2019()) {
            (None, _) => true,
            (Some(f), false) => f.matches(n.type_(), n.subtype(), n.info()),
            (Some(f), true) => n.to_v2().is_some_and(|b| {
                let w0 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let info = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                f.matches(w0 & 0x00ff_ffff, (w0 >> 24) as u8, info)
            }),
        })
    }

    pub(crate) fn count_denied(&self) {
        // Relaxed: statistics.
        self.stats.denied.fetch_add(1, Ordering::Relaxed);
    }

    /// Posts one copy of `n` straight into the ring, bypassing filter and
    /// policy (the path removal records take). Lock-free; never blocks.
    ///
    /// Mirrors `post_one_notification()`.
    pub fn post(&self, n: &Notification) -> PostOutcome {
        self.post_header(n, n.header(), crate::rcu::asymmetric())
    }

    /// [`WatchQueue::post`] of `n` with its header (bytes 0..8, one
    /// little-endian word) as `header` (the watch's tag put in on the way
    /// into the ring); `asymmetric` is `crate::rcu::asymmetric()`, looked
    /// up once per event by the caller.
    #[inline(always)]
    pub(crate) fn post_header(
        &self,
        n: &Notification,
        header: u64,
        asymmetric: bool,
    ) -> PostOutcome {
        // One load and one test say "sized and open" (`RingCell`'s marks).
        // Closing is not synchronised with posting in the kernel either:
        // a post racing close lands in a ring nobody will read.
        let outcome = match self.ring.for_post() {
            Ok(ring) => {
                // Relaxed: statistics.
                self.posted.fetch_add(1, Ordering::Relaxed);
                // The length from the header word (the record's own: the
                // tag does not touch it), not a load of the record's byte
                // again.
                let len = (header >> 32) as usize & WATCH_INFO_LENGTH as usize;
                debug_assert_eq!(len, n.len());
                // SAFETY: `len` is `n`'s own length (the tag bits put into
                // `header` are not the length's), and a Notification's is
                // always 8..=127: `new` and `decode` check it, and nothing
                // else writes it (record.rs).
                unsafe { ring.try_post_with_header_unchecked(n.bytes_to(len), header) }
            }
            Err(NoPost::Closed) => {
                // Relaxed: statistics.
                self.stats.after_close.fetch_add(1, Ordering::Relaxed);
                return PostOutcome::Lost;
            }
            Err(NoPost::Unsized) => {
                // Relaxed: statistics.
                self.posted.fetch_add(1, Ordering::Relaxed);
                self.post_info_slow(n, (header >> 32) as u32)
            }
        };
        if outcome == PostOutcome::Lost {
            // Relaxed: statistics.
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
        }
        // A loss in a ring that looked full on a tail a moment stale can
        // be owed to a reader that has just gone to sleep on the empty
        // ring: it reads the loss record now, so a loss wakes too.
        self.rd_wait.wake_with(asymmetric);
        outcome
    }

    /// [`WatchQueue::post_info`] into a 2019 ring, or into a queue not
    /// sized yet: out of line, so a pipe queue's post stays small.
    #[cold]
    #[inline(never)]
    fn post_info_slow(&self, n: &Notification, info: u32) -> PostOutcome {
        let Some(cell) = &self.v2 else {
            // Relaxed: statistics.
            self.stats.lost_unsized.fetch_add(1, Ordering::Relaxed);
            return PostOutcome::Lost;
        };
        let mut tagged = *n;
        tagged.set_info_id(info);
        match (cell.get(), tagged.to_v2()) {
            (Some(ring), Some(bytes)) => ring.try_post(&bytes),
            (None, _) => {
                // Relaxed: statistics.
                self.stats.lost_unsized.fetch_add(1, Ordering::Relaxed);
                PostOutcome::Lost
            }
            // A record type the 2019 generation has no id for.
            (Some(_), None) => PostOutcome::Lost,
        }
    }

    /// One read() pass without sleeping: Ok(None) when there was nothing to
    /// return (empty, no loss owed). Every whole record that fits is taken
    /// in one [`Batch`], which publishes the consumer's progress once.
    fn read_pass(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        let mut st = self.pipe.lock();
        // SAFETY: the pipe mutex is held (`st`) for as long as the batch
        // lives (it is dropped at the end of this function, before `st`),
        // so this is the ring's only consumer.
        let mut batch = self.ring.get().map(|r| unsafe { r.batch_unchecked() });
        let mut ret = 0;
        let result = loop {
            if st.note_loss {
                if buf.len() - ret < LOSS_RECORD.len() {
                    break if ret == 0 {
                        Err(Errno::ENOBUFS)
                    } else {
                        Ok(ret)
                    };
                }
                buf[ret..ret + LOSS_RECORD.len()].copy_from_slice(&LOSS_RECORD);
                ret += LOSS_RECORD.len();
                st.note_loss = false;
                self.stats.loss_records.fetch_add(1, Ordering::Relaxed);
            }
            let Some(b) = batch.as_mut() else {
                break Ok(ret);
            };
            match b.take(&mut buf[ret..]) {
                Pop::Empty => break Ok(ret),
                // A loss after the record taken last (the kernel's LOSS
                // flag on it): the loss record comes first, now if this
                // read has room (the top of the loop), else in the next.
                Pop::Loss => st.note_loss = true,
                Pop::TooBig(_) => {
                    break if ret == 0 {
                        Err(Errno::ENOBUFS)
                    } else {
                        Ok(ret)
                    }
                }
                Pop::Record { len } => {
                    ret += len;
                    if ret == buf.len() {
                        break Ok(ret);
                    }
                    // Like pipe_read(): only loop back (and so emit a loss
                    // record now) while more records are queued.
                    if b.peek_len().is_none() {
                        break Ok(ret);
                    }
                }
            }
        };
        if let Some(n) = batch.map(|b| b.taken()).filter(|&n| n > 0) {
            // Relaxed: statistics, counted once per batch (the batch, dropped
            // in the map above, has published the tail).
            self.stats.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        result.map(|n| (n > 0).then_some(n))
    }

    /// The read-ahead of a shared-memory mirror: hands `emit` everything a
    /// read() would return from where the last pass stopped, in order: each
    /// record (`true`: it holds a place in the ring) and each loss record
    /// (`false`) where `pipe_read()` would put it. Nothing is released: the
    /// records stay queued (capacity, `FIONREAD`, `queued`) until
    /// [`WatchQueue::mirror_release`] says their readers took them. Once a
    /// queue is mirrored, [`WatchQueue::read`] must not be used on it.
    /// Returns the records emitted (loss records not counted).
    pub fn mirror_pass(&self, emit: &mut dyn FnMut(&[u8], bool)) -> usize {
        let Some(ring) = self.ring.get() else {
            return 0;
        };
        let mut st = self.pipe.lock();
        let (at, mut note_loss) = match st.ahead {
            Some(a) => a,
            // SAFETY: the pipe mutex is held: the only consumer.
            None => (unsafe { ring.cursor_unchecked() }, st.note_loss),
        };
        st.note_loss = false;
        // SAFETY: the pipe mutex is held for the pass; `at` is this ring's
        // cursor, never released past (releases stop at what was emitted).
        let mut b = unsafe { ring.batch_at_unchecked(at) };
        let mut rec = [0u8; WATCH_QUEUE_NOTE_SIZE];
        let mut n = 0;
        loop {
            if note_loss {
                emit(&LOSS_RECORD, false);
                note_loss = false;
            }
            match b.take(&mut rec) {
                Pop::Empty | Pop::TooBig(_) => break,
                Pop::Loss => note_loss = true,
                Pop::Record { len } => {
                    emit(&rec[..len], true);
                    n += 1;
                }
            }
        }
        st.ahead = Some((b.park(), note_loss));
        n
    }

    /// The readers of a mirror took `records` records and `loss_records`
    /// loss records that [`WatchQueue::mirror_pass`] emitted: the records
    /// leave the ring (their room is free again) and count as read.
    pub fn mirror_release(&self, records: usize, loss_records: usize) {
        if let Some(ring) = self.ring.get() {
            let _st = self.pipe.lock();
            if records > 0 {
                // SAFETY: the pipe mutex is held: the only consumer; the
                // read-ahead passed at least these records.
                unsafe { ring.release_unchecked(records) };
            }
        }
        // Relaxed: statistics.
        self.stats.read.fetch_add(records as u64, Ordering::Relaxed);
        self.stats
            .loss_records
            .fetch_add(loss_records as u64, Ordering::Relaxed);
    }

    /// read() on the queue: whole records only, a loss record right after
    /// the record that preceded a loss.
    ///
    /// Mirrors `pipe_read()` on a notification pipe. `has_writers` says
    /// whether a write end is still open (an empty queue without one reads 0).
    ///
    /// # Errors
    /// - `ENOBUFS`: the first thing to return (record or loss record) does not fit `buf`.
    /// - `EAGAIN`: empty, a writer is open, and `mode.nonblock`.
    /// - `EINTR`: `mode.deadline` passed while sleeping.
    pub fn read(
        &self,
        buf: &mut [u8],
        mode: ReadMode,
        has_writers: &dyn Fn() -> bool,
    ) -> Result<usize> {
        if self.is_2019() {
            // The 2019 device has no read(): records are read from the mapping.
            return Err(Errno::EINVAL);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(n) = self.read_pass(buf)? {
                return Ok(n);
            }
            if !has_writers() {
                return Ok(0);
            }
            if mode.nonblock {
                return Err(Errno::EAGAIN);
            }
            if self.spin_for_records() {
                continue;
            }
            let ready = self.rd_wait.wait_until(mode.deadline, || {
                self.has_records() || self.loss_pending() || !has_writers()
            });
            if !ready {
                return Err(Errno::EINTR);
            }
        }
    }

    /// Before a reader sleeps, it watches the ring for a short while
    /// ([`READ_SPIN`]): under a streaming producer the next record comes
    /// sooner than a sleep and a wake-up would take, so the reader keeps
    /// reading in batches and the producer rarely has to wake it; a lone
    /// record after a quiet spell still finds the reader asleep and wakes
    /// it at once. The kernel's pipe_read() sleeps at once; the records
    /// read are the same, only the wake-ups differ. True: a record came.
    fn spin_for_records(&self) -> bool {
        #[cfg(not(loom))]
        {
            let Some(ring) = self.ring.get() else {
                return false;
            };
            let start = Instant::now();
            loop {
                for _ in 0..64 {
                    if ring.has_published() {
                        return true;
                    }
                    std::hint::spin_loop();
                }
                if start.elapsed() >= READ_SPIN {
                    return false;
                }
            }
        }
        #[cfg(loom)]
        false
    }

    fn loss_pending(&self) -> bool {
        let st = self.pipe.lock();
        // SAFETY: the pipe mutex is held (only consumer).
        st.note_loss
            || self
                .ring
                .get()
                .is_some_and(|r| unsafe { r.loss_owed_unchecked() })
    }

    /// A published record is waiting (what makes poll() report POLLIN; a
    /// pending loss record alone does not).
    pub fn has_records(&self) -> bool {
        if self.is_2019() {
            return self.ring_2019().is_some_and(|r| r.readable());
        }
        let _pipe = self.pipe.lock();
        // SAFETY: the pipe mutex is held (only consumer).
        self.ring
            .get()
            .is_some_and(|r| unsafe { r.peek_len_unchecked() }.is_some())
    }

    /// Bytes of queued records, loss records not counted. Mirrors FIONREAD.
    pub fn fionread(&self) -> usize {
        let _pipe = self.pipe.lock();
        // SAFETY: the pipe mutex is held (only consumer).
        self.ring
            .get()
            .map_or(0, |r| unsafe { r.queued_bytes_unchecked() })
    }

    /// Records claimed in the ring (what the write end's POLLOUT compares
    /// with the pipe's `max_usage`).
    pub fn occupancy(&self) -> usize {
        self.ring.get().map_or(0, PipeRing::occupancy)
    }

    /// Pages of notes after `SET_SIZE`, or None while unsized.
    pub fn nr_pages(&self) -> Option<usize> {
        // Relaxed: set once under the pipe mutex; an estimate elsewhere.
        let n = self.nr_pages.load(Ordering::Relaxed);
        (n != 0).then_some(n)
    }

    /// Records the queue can hold (0 while unsized).
    pub fn capacity(&self) -> usize {
        self.ring.get().map_or(0, PipeRing::capacity)
    }

    /// Slots of the ring (0 while unsized).
    pub fn ring_slots(&self) -> usize {
        self.ring.get().map_or(0, PipeRing::slots)
    }

    /// True once [`WatchQueue::clear`] ran.
    pub fn is_closed(&self) -> bool {
        // Relaxed: a state flag; see `post_header`.
        self.closed.load(Ordering::Relaxed)
    }

    /// Wakes sleeping readers (a write end closed, so EOF may be due).
    pub fn wake_readers(&self) {
        self.rd_wait.wake();
    }

    /// The wait queue readers sleep on (poll registers here).
    pub fn rd_wait(&self) -> &WaitQueue {
        &self.rd_wait
    }

    /// The queue's statistics now.
    pub fn stats(&self) -> QueueStats {
        let c = &self.stats;
        // Relaxed: statistics.
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // Records still in the ring of a closed queue were discarded by the
        // close. Counting them here rather than in `clear` also covers a post
        // that passed the closed check before the close and landed after it
        // (the loom model `loom_queue_close_races_post` found that window).
        let (queued, discarded) = if self.is_closed() {
            (0, self.occupancy() as u64)
        } else {
            (self.occupancy() as u64, 0)
        };
        QueueStats {
            posted: l(&self.posted),
            lost: l(&c.lost),
            lost_unsized: l(&c.lost_unsized),
            read: l(&c.read),
            loss_records: l(&c.loss_records),
            queued,
            filtered: l(&c.filtered),
            denied: l(&c.denied),
            after_close: l(&c.after_close),
            discarded,
        }
    }

    /// Adds a watch to the queue's list, unless closed. Called with the
    /// object's list lock held, nested inside the queue lock (the kernel's
    /// order in `add_watch_to_object()`).
    pub(crate) fn with_watches<R>(&self, f: impl FnOnce(&mut Vec<Arc<Watch>>, bool) -> R) -> R {
        let mut w = self.watches.lock();
        f(&mut w, self.is_closed())
    }

    /// Closes the queue: no record is delivered after this, every watch is
    /// detached from its object without a removal record, unread records are
    /// discarded (and counted). Idempotent.
    ///
    /// Mirrors `watch_queue_clear()` as called from `free_pipe_info()`.
    pub fn clear(&self) {
        let watches = {
            let mut w = self.watches.lock();
            // Relaxed: the queue lock orders this against watch adds, which
            // check it under the same lock.
            if self.closed.swap(true, Ordering::Relaxed) {
                return;
            }
            // Posts see the close here: `post_header` reads only the
            // ring's word.
            self.ring.close();
            std::mem::take(&mut *w)
        };
        for w in watches {
            Watch::detach_from_object(&w);
        }
        self.rd_wait.wake();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::uapi::{filter_blob, RawWatchNotificationTypeFilter};
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = RawWatchNotificationTypeFilter> {
        (0u32..4, any::<u32>(), 0u32..4, any::<u32>()).prop_map(|(type_, sub, f, m)| {
            let info_mask = m & !WATCH_INFO_LENGTH;
            RawWatchNotificationTypeFilter {
                type_,
                info_filter: f & info_mask,
                info_mask,
                subtype_filter: [sub, 0, 0, 0, 0, 0, 0, 0],
            }
        })
    }

    fn record() -> impl Strategy<Value = Notification> {
        (0u32..10, 0u8..40, 0usize..9, any::<u32>(), any::<u8>()).prop_map(
            |(t, s, len, bits, tag)| {
                let mut n = Notification::new(t, s, &[0xa5; 8][..len]).unwrap();
                n.set_type_info(bits);
                n.set_info_id(u32::from(tag) << 8);
                n
            },
        )
    }

    proptest! {
        /// The post path's filter words decide as `WatchFilter::matches`
        /// (asking the RCU cell where the words say so) for every filter,
        /// one after another on one queue, and with no filter everything
        /// passes.
        #[test]
        fn queue_filter_words_decide_as_watch_filter(
            filters in proptest::collection::vec(
                proptest::option::of(proptest::collection::vec(entry(), 1..7)),
                1..4,
            ),
            records in proptest::collection::vec(record(), 1..20),
        ) {
            let q = WatchQueue::new();
            for entries in filters {
                let blob = entries.as_deref().map(filter_blob);
                q.set_filter(blob.as_deref()).unwrap();
                let f = blob.map(|b| WatchFilter::parse(&b, WATCH_TYPE_ALL_NR).unwrap());
                for n in &records {
                    let want = f
                        .as_ref()
                        .is_none_or(|f| f.matches(n.type_(), n.subtype(), n.info()));
                    prop_assert_eq!(q.filter_allows(n), want, "{:?} {:?}", f, n);
                }
            }
        }
    }

    /// The words of a filter: each type's unconditional subtypes, "ask"
    /// where an entry tests `info`, nothing for a type without entries.
    #[test]
    fn queue_filter_words_of_a_filter() {
        let e = |type_, sub, info_filter, info_mask| RawWatchNotificationTypeFilter {
            type_,
            info_filter,
            info_mask,
            subtype_filter: [sub, 0, 0, 0, 0, 0, 0, 0],
        };
        let blob = filter_blob(&[
            e(WATCH_TYPE_KEY_NOTIFY, 0b1010, 0, 0),
            e(WATCH_TYPE_KEY_NOTIFY, 0b0100, 0, 0),
            e(WATCH_TYPE_MOUNT_NOTIFY, 0b1, 0x100, 0x100),
        ]);
        let f = WatchFilter::parse(&blob, WATCH_TYPE_ALL_NR).unwrap();
        let w = filter_words(Some(&f));
        assert_eq!(w[WATCH_TYPE_KEY_NOTIFY as usize], 0b1110);
        assert_eq!(w[WATCH_TYPE_MOUNT_NOTIFY as usize], FILTER_ASK);
        assert_eq!(w[WATCH_TYPE_META as usize], 0);
        assert_eq!(filter_words(None), [FILTER_OPEN; FILTER_TYPES]);
    }

    /// Through the queue: a filter whose entry tests `info` (read from
    /// the RCU cell) and one decided by its words alone let the same
    /// records through, and removing the filter lets everything through
    /// again.
    #[test]
    fn queue_filter_asked_and_worded_agree() {
        let key = |t| RawWatchNotificationTypeFilter {
            type_: t,
            info_filter: 0,
            info_mask: 0,
            subtype_filter: [0b10, 0, 0, 0, 0, 0, 0, 0],
        };
        let small = filter_blob(&[key(WATCH_TYPE_KEY_NOTIFY)]);
        // The same subtypes, through an entry that tests the tag bits
        // (every record here has tag 0): decided by the cell.
        let mut asks = key(WATCH_TYPE_KEY_NOTIFY);
        asks.info_mask = WATCH_INFO_ID;
        let big = filter_blob(&[asks]);
        let q = WatchQueue::new();
        let pass = Notification::key(1, 5, 0);
        let fail = Notification::key(2, 5, 0);
        for blob in [&small, &big] {
            q.set_filter(Some(blob)).unwrap();
            assert!(q.filter_allows(&pass) && !q.filter_allows(&fail));
        }
        q.set_filter(None).unwrap();
        assert!(q.filter_allows(&fail));
        assert_eq!(q.stats().filtered, 2);
    }

    /// What a post reads of a queue lies in its first two cache lines.
    #[test]
    fn queue_post_path_fields_in_two_lines() {
        use std::mem::offset_of;
        assert_eq!(std::mem::align_of::<WatchQueue>(), 64);
        let ends = [
            offset_of!(WatchQueue, filter_words)
                + std::mem::size_of::<[AtomicU64; FILTER_TYPES + 1]>(),
            offset_of!(WatchQueue, ring) + 8,
            offset_of!(WatchQueue, v2) + 8,
            offset_of!(WatchQueue, closed) + 1,
            offset_of!(WatchQueue, posted) + 8,
            offset_of!(WatchQueue, rd_wait) + offset_of!(WaitQueue, sleepers) + 8,
        ];
        assert!(ends.iter().all(|&e| e <= 128), "{ends:?}");
    }
}

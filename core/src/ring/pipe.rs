//! The merged design's notification ring: a bounded multi-producer,
//! single-consumer ring of whole records with in-band loss marking.
//!
//! Mirrors the pipe ring as `post_one_notification()` and `pipe_read()` in
//! kernel/watch_queue.c and fs/pipe.c use it: `capacity` preallocated
//! 128-byte notes (page-rounded by `SET_SIZE`), a power-of-two number of
//! slots, one record per slot, whole-record reads, and a failed post marking
//! `PIPE_BUF_FLAG_LOSS` on the most recently posted record.
//!
//! The kernel serialises posting with a spinlock. watchq's posting is
//! lock-free instead: a bounded MPMC-style ring with per-slot sequence stamps
//! after Dmitry Vyukov's bounded queue (as in crossbeam's `ArrayQueue`),
//! restricted to one consumer, with claim, write and publish as separate
//! steps. Because notes and slots are both bounded by `capacity`, watchq keeps
//! a single occupancy bound: a post fails when `head - tail >= capacity`.
//!
//! Each slot's `stamp` encodes its state for a position `p` (slot `p & mask`):
//! `p` = free for `p` (claimed but not yet written, if `head > p`), `p + 1` =
//! record `p` published, and bit 63 ([`LOSS`]) = a loss happened right after
//! record `p`. The consumer reads in batches ([`Batch`], one read()'s
//! worth): it releases each slot as it copies it out, by swapping its stamp
//! to `p + slots` (free for the next lap), and publishes `tail` once at the
//! end. A failed post marks LOSS with a CAS that only succeeds while record
//! `p` is still unconsumed; if the reader got there first, the producer
//! advances `tail` past the released slot itself (the consumer stores the
//! same value when its batch ends, so a producer never waits for the
//! consumer) and retries the post, for which there is room again. So a loss
//! marker can never be attached to a record already read and vanish.
//! Losses before the marked record is read collapse into one marker.
//!
//! # Synchronization
//!
//! | atomic | writers | readers | ordering | partner |
//! |---|---|---|---|---|
//! | `head` | producers (CAS to claim) | producers | AcqRel CAS / Acquire load | itself: a marker that loaded `head` sees the consumer's release of the claimed slot's previous lap |
//! | `tail` | consumer (store, once per batch), a marker that found the newest record released (`fetch_max` past it) | producers (full check) | Release store and RMW / Acquire load | the consumer's copy-outs happen before a producer reuses their slots |
//! | `tail_cache` | producers that found the ring looking full (`fetch_max` of the `tail` they loaded) | producers (full check) | AcqRel RMW / Acquire load | transitively the consumer's Release `tail` store: a slot is reused only after its copy-out |
//! | `stamp` | producer (publish `fetch_add`, LOSS CAS), consumer (release `swap`) | consumer, markers | Release publish / Acquire load; Release swap / Acquire CAS failure | publish: the record bytes are visible to the consumer; swap: the copy-out is done before a marker advances the tail |
//! | `RingCell::ptr` | `set_size` (CAS once) | producers, reader | Release CAS / Acquire load | the ring is fully built before anyone reaches it |

use crate::errno::{Errno, Result};
use crate::record::MIN_RECORD_LEN;
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, Ordering, UnsafeCell};
use crate::uapi::{WATCH_INFO_LENGTH, WATCH_QUEUE_NOTE_SIZE};
use crossbeam_utils::CachePadded;

use super::PostOutcome;

/// Bit 63 of a stamp: a loss happened right after this slot's record.
const LOSS: u64 = 1 << 63;

/// A note, on cache-line boundaries so a short record touches one line.
#[repr(align(64))]
struct Note(UnsafeCell<[u8; WATCH_QUEUE_NOTE_SIZE]>);

/// One slot: its stamp and its note. The stamps are kept dense, apart from
/// the notes, so a streaming consumer and producer share a stamp line for
/// eight records instead of moving one per record.
struct Slot<'a> {
    stamp: &'a AtomicU64,
    note: &'a UnsafeCell<[u8; WATCH_QUEUE_NOTE_SIZE]>,
}

/// What the consumer found at the tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pop {
    /// No published record at the tail.
    Empty,
    /// The record at the tail is this long and does not fit the room given.
    TooBig(usize),
    /// A record of `len` bytes was copied out; `loss` says a loss happened
    /// right after it (the reader owes a loss record).
    Record {
        /// Bytes copied.
        len: usize,
        /// `PIPE_BUF_FLAG_LOSS` was set on it.
        loss: bool,
    },
}

/// The ring. Mirrors the notification use of `struct pipe_inode_info`'s
/// buffer ring together with the queue's notes.
pub struct PipeRing {
    head: CachePadded<AtomicU64>,
    tail: CachePadded<AtomicU64>,
    /// A recent `tail` for the producers' full check, so they read the
    /// consumer's line only when the ring looks full (rtrb's trick, shared
    /// by all producers here); never ahead of `tail`.
    tail_cache: CachePadded<AtomicU64>,
    capacity: u64,
    mask: u64,
    stamps: Box<[AtomicU64]>,
    notes: Box<[Note]>,
    /// A [`PipeReader`] exists (the safe single-consumer handle).
    reading: AtomicBool,
}

// SAFETY: the notes are only written by the producer that claimed the slot
// (exclusive by the head CAS) and only read by the single consumer after the
// Acquire load of the published stamp; see the Synchronization table.
unsafe impl Sync for PipeRing {}
// SAFETY: all fields are owned data; moving the ring moves them.
unsafe impl Send for PipeRing {}

impl PipeRing {
    /// A ring holding up to `capacity` records in `roundup_pow_of_two(capacity)` slots (at least 2).
    ///
    /// # Errors
    /// - `EINVAL`: `capacity` is 0.
    /// - `ENOMEM`: the slots cannot be allocated.
    pub fn new(capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(Errno::EINVAL);
        }
        let nslots = capacity.next_power_of_two().max(2);
        let mut stamps: Vec<AtomicU64> = Vec::new();
        let mut notes: Vec<Note> = Vec::new();
        stamps
            .try_reserve_exact(nslots)
            .and_then(|()| notes.try_reserve_exact(nslots))
            .map_err(|_| Errno::ENOMEM)?;
        for i in 0..nslots {
            stamps.push(AtomicU64::new(i as u64));
            notes.push(Note(UnsafeCell::new([0; WATCH_QUEUE_NOTE_SIZE])));
        }
        Ok(PipeRing {
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            tail_cache: CachePadded::new(AtomicU64::new(0)),
            capacity: capacity as u64,
            mask: nslots as u64 - 1,
            stamps: stamps.into_boxed_slice(),
            notes: notes.into_boxed_slice(),
            reading: AtomicBool::new(false),
        })
    }

    /// Records the ring can hold (the queue's notes).
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Slots in the ring (a power of two, at least the capacity).
    pub fn slots(&self) -> usize {
        self.stamps.len()
    }

    /// Claimed records not yet consumed (published or being written).
    pub fn occupancy(&self) -> usize {
        // Relaxed: an instantaneous estimate for poll; no data is read through it.
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Relaxed);
        head.saturating_sub(tail) as usize
    }

    fn slot(&self, pos: u64) -> Slot<'_> {
        let i = (pos & self.mask) as usize;
        Slot {
            stamp: &self.stamps[i],
            note: &self.notes[i].0,
        }
    }

    /// Posts one whole record (8..=127 bytes, its own length field first).
    /// Never blocks and never waits for the consumer.
    ///
    /// Mirrors `post_one_notification()`: full → the loss is marked on the
    /// most recently posted record and the record is dropped.
    pub fn try_post(&self, rec: &[u8]) -> PostOutcome {
        debug_assert!((MIN_RECORD_LEN..=WATCH_INFO_LENGTH as usize).contains(&rec.len()));
        // ORDERING: Acquire pairs with the AcqRel claim CAS of the previous
        // claimer (see `mark_loss`).
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            // ORDERING: Acquire pairs with the Release of whoever refreshed
            // the cache, which had Acquire-loaded the consumer's Release
            // store of `tail`: its copy-out of the slot we may reuse
            // happened before (transitively).
            let mut tail = self.tail_cache.load(Ordering::Acquire);
            if head.wrapping_sub(tail) >= self.capacity {
                // Looks full: look at the consumer's tail itself.
                // ORDERING: Acquire pairs with the consumer's Release store.
                tail = self.tail.load(Ordering::Acquire);
                // ORDERING: AcqRel passes on what we acquired; fetch_max
                // keeps the cache monotonic among producers.
                self.tail_cache.fetch_max(tail, Ordering::AcqRel);
            }
            if head.wrapping_sub(tail) >= self.capacity {
                match self.on_full(head) {
                    Some(outcome) => return outcome,
                    None => {
                        // ORDERING: as the first load of `head`.
                        head = self.head.load(Ordering::Acquire);
                        continue;
                    }
                }
            }
            // ORDERING: AcqRel so that a thread later loading this head also
            // sees what we saw of the consumer (its release of the slot).
            match self.head.compare_exchange_weak(
                head,
                head + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        let slot = self.slot(head);
        slot.note.with_mut(|p| {
            // SAFETY: the CAS above made this producer the only owner of
            // position `head`; the slot's previous record (`head - slots`) was
            // consumed before `tail` passed it (Acquire above), and the
            // consumer reads it again only after our Release publish.
            unsafe { (&mut (*p))[..rec.len()].copy_from_slice(rec) }
        });
        // ORDERING: Release publishes the note bytes; pairs with the Acquire
        // stamp load in `try_pop_unchecked`. fetch_add keeps a LOSS bit a
        // marker set while we were writing.
        slot.stamp.fetch_add(1, Ordering::Release);
        PostOutcome::Posted
    }

    /// The ring looked full at `head`. Confirms it against the newest tail and
    /// marks the loss (Some(Lost)), or says to retry (None).
    fn on_full(&self, head: u64) -> Option<PostOutcome> {
        // ORDERING: an RMW reads the newest tail in its modification order,
        // so a stale tail can't make a post fail while there is room. Acquire
        // as in `try_post`.
        let tail = self.tail.fetch_add(0, Ordering::Acquire);
        if head.wrapping_sub(tail) < self.capacity {
            return None;
        }
        // ORDERING: Acquire as in `try_post`.
        if self.head.load(Ordering::Acquire) != head {
            return None;
        }
        let pos = head - 1;
        if self.mark_loss(pos) {
            return Some(PostOutcome::Lost);
        }
        // The consumer released record `pos` (its stamp swap) but may not
        // have stored the new tail yet: a batch releases each slot as it
        // copies it out and publishes the tail once, at its end. Rather than
        // wait for it, advance the tail past the released slot ourselves.
        // The consumer releases slots in order, so every slot before `pos`
        // is released too; `pos` is the newest claim, so the batch ends right
        // after it and the consumer stores this same value (or, if it went on
        // after our advance, a larger one): `fetch_max` keeps the tail
        // monotonic whichever lands first. Without this a producer would
        // spin until the consumer's batch ends.
        // ORDERING: Release passes on what `mark_loss`'s Acquire saw of the
        // consumer's releases (its copy-outs) to producers that Acquire-load
        // this tail.
        self.tail.fetch_max(pos + 1, Ordering::Release);
        None
    }

    /// Sets LOSS on record `pos` if it is not consumed yet. False: the
    /// consumer already released it (its stamp moved on a lap), so the post
    /// must be retried.
    fn mark_loss(&self, pos: u64) -> bool {
        let slot = self.slot(pos);
        let mut cur = pos + 1;
        loop {
            let base = cur & !LOSS;
            if base != pos && base != pos + 1 {
                return false;
            }
            if cur & LOSS != 0 {
                return true;
            }
            // ORDERING: success Relaxed: the LOSS bit carries no data; the
            // consumer's swap (an RMW) reads it whichever comes first, and
            // publish is a fetch_add that keeps it. Failure Acquire pairs with
            // the consumer's Release swap: seeing the released stamp means its
            // copy-out happened before, which `on_full` passes on through the
            // tail.
            match slot
                .stamp
                .compare_exchange(cur, cur | LOSS, Ordering::Relaxed, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Is a published record waiting at the tail? Reads only atomics, so
    /// anyone may ask (a reader deciding whether to sleep yet).
    pub fn has_published(&self) -> bool {
        // ORDERING: Acquire, as the consumer loads them; nothing is read
        // through the answer (the reader looks again under its lock).
        let t = self.tail.load(Ordering::Acquire);
        self.slot(t).stamp.load(Ordering::Acquire) & !LOSS == t + 1
    }

    /// Length of the published record at the tail, if any.
    ///
    /// # Safety
    /// The caller is the ring's only consumer for the duration of the call
    /// (the queue's pipe mutex is held).
    pub unsafe fn peek_len_unchecked(&self) -> Option<usize> {
        // Relaxed: only the consumer writes `tail`.
        let t = self.tail.load(Ordering::Relaxed);
        // SAFETY: the caller is the only consumer (this fn's contract).
        unsafe { self.len_at(t) }
    }

    /// # Safety
    /// As `peek_len_unchecked`; `pos` is at or after the tail.
    unsafe fn len_at(&self, pos: u64) -> Option<usize> {
        let slot = self.slot(pos);
        // ORDERING: Acquire pairs with the producer's Release publish.
        let s = slot.stamp.load(Ordering::Acquire);
        if s & !LOSS != pos + 1 {
            return None;
        }
        slot.note.with(|p| {
            // SAFETY: the record is published (Acquire above) and not yet
            // released by the consumer, so no producer writes it.
            let info = unsafe { (*p)[4] };
            Some(((info as u32 & WATCH_INFO_LENGTH) as usize).max(MIN_RECORD_LEN))
        })
    }

    /// Bytes of the published records from the tail on (FIONREAD).
    ///
    /// # Safety
    /// As `peek_len_unchecked`.
    pub unsafe fn queued_bytes_unchecked(&self) -> usize {
        // Relaxed: only the consumer writes `tail`.
        let mut pos = self.tail.load(Ordering::Relaxed);
        let mut total = 0;
        // SAFETY: the caller is the only consumer (this fn's contract).
        while let Some(len) = unsafe { self.len_at(pos) } {
            total += len;
            pos += 1;
            if pos - self.tail.load(Ordering::Relaxed) >= self.capacity {
                break;
            }
        }
        total
    }

    /// Copies the record at the tail into `out` if it fits, and releases it
    /// (a batch of one).
    ///
    /// Mirrors one iteration of `pipe_read()` over a `PIPE_BUF_FLAG_WHOLE`
    /// buffer plus the release of its note.
    ///
    /// # Safety
    /// As `peek_len_unchecked`.
    pub unsafe fn try_pop_unchecked(&self, out: &mut [u8]) -> Pop {
        // SAFETY: the caller is the only consumer (this fn's contract).
        unsafe { self.batch_unchecked() }.take(out)
    }

    /// Starts a consumer's pass over the ring: a [`Batch`] takes records
    /// from the tail in order and publishes the new tail once, when it is
    /// dropped.
    ///
    /// # Safety
    /// The caller is the ring's only consumer for as long as the batch
    /// lives (the queue's pipe mutex is held).
    pub unsafe fn batch_unchecked(&self) -> Batch<'_> {
        // Relaxed: only the consumer stores `tail`; a marker's `fetch_max`
        // never raises it past a slot the consumer released, which is at or
        // before the consumer's own last store.
        let t = self.tail.load(Ordering::Relaxed);
        Batch {
            ring: self,
            start: t,
            pos: t,
        }
    }
}

/// One pass of the ring's consumer: what a read() with a buffer of many
/// records takes. Each record is copied out and its slot released in turn;
/// the tail, which producers read to see room, is published once, when the
/// batch is dropped, so the consumer's line moves once per batch instead of
/// once per record.
///
/// Mirrors the loop of `pipe_read()` over a notification pipe's buffers,
/// with `pipe->tail` written back at the end.
pub struct Batch<'a> {
    ring: &'a PipeRing,
    start: u64,
    pos: u64,
}

impl Batch<'_> {
    /// Length of the published record next in line, if any.
    pub fn peek_len(&self) -> Option<usize> {
        // SAFETY: the batch's maker is the only consumer while it lives
        // (`batch_unchecked`'s contract).
        unsafe { self.ring.len_at(self.pos) }
    }

    /// Copies the record next in line into `out` if it fits, and releases
    /// its slot.
    pub fn take(&mut self, out: &mut [u8]) -> Pop {
        let t = self.pos;
        let Some(len) = self.peek_len() else {
            return Pop::Empty;
        };
        if len > out.len() {
            return Pop::TooBig(len);
        }
        let slot = self.ring.slot(t);
        slot.note.with(|p| {
            // SAFETY: published (Acquire in len_at) and still owned by the
            // consumer: its slot is released by the swap below, and reused
            // only after the tail passes it.
            out[..len].copy_from_slice(unsafe { &(&(*p))[..len] })
        });
        // ORDERING: Release: our copy-out (and every earlier one of this
        // batch) happens before a marker that Acquire-reads the new lap's
        // stamp and then advances the tail for us (`on_full`). As an RMW
        // the swap sees any LOSS mark made before it; a marker that comes
        // later finds the new lap's stamp and retries.
        let s = slot
            .stamp
            .swap(t + self.ring.stamps.len() as u64, Ordering::Release);
        self.pos = t + 1;
        Pop::Record {
            len,
            loss: s & LOSS != 0,
        }
    }

    /// Records taken so far.
    pub fn taken(&self) -> usize {
        (self.pos - self.start) as usize
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.pos != self.start {
            // ORDERING: Release: our copy-outs happen before a producer that
            // Acquire-loads this tail reuses the slots. A marker may have
            // advanced the tail this far already (see `on_full`).
            self.ring.tail.store(self.pos, Ordering::Release);
        }
    }
}

/// The ring's one consumer, for code that holds a [`PipeRing`] of its own
/// (benchmarks, tests); a [`crate::WatchQueue`] reads its ring under its
/// pipe mutex instead. Only one exists at a time.
pub struct PipeReader<'a> {
    ring: &'a PipeRing,
}

impl PipeRing {
    /// The consumer handle, unless one is already out.
    pub fn reader(&self) -> Option<PipeReader<'_>> {
        // ORDERING: Acquire pairs with the Release store in `Drop`: the
        // previous reader's last pop happened before our first.
        self.reading
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| PipeReader { ring: self })
    }
}

impl PipeReader<'_> {
    /// Copies the record at the tail into `out` if it fits, and releases it.
    pub fn pop(&mut self, out: &mut [u8]) -> Pop {
        // SAFETY: this handle is the only consumer (`reader` hands out one).
        unsafe { self.ring.try_pop_unchecked(out) }
    }

    /// A pass over the ring (see [`Batch`]); the handle is borrowed, so no
    /// other pass or pop runs meanwhile.
    pub fn batch(&mut self) -> Batch<'_> {
        // SAFETY: this handle is the only consumer, and the batch borrows it.
        unsafe { self.ring.batch_unchecked() }
    }
}

impl Drop for PipeReader<'_> {
    fn drop(&mut self) {
        // ORDERING: Release pairs with the Acquire CAS in `reader`.
        self.ring.reading.store(false, Ordering::Release);
    }
}

/// A ring installed at most once (by `SET_SIZE`) and read without a lock.
///
/// Mirrors the pipe's ring pointer as swapped by `pipe_resize_ring()` under
/// the posting lock (kernel bug #13 was a resize that forgot it): here the
/// ring is built completely and then published with one CAS, so a racing post
/// either sees no ring (and loses the record silently, as before sizing) or
/// the complete ring.
pub struct RingCell {
    ptr: AtomicPtr<PipeRing>,
}

impl RingCell {
    /// No ring yet.
    pub fn new() -> Self {
        RingCell {
            ptr: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The ring, once installed.
    pub fn get(&self) -> Option<&PipeRing> {
        // ORDERING: Acquire pairs with the Release CAS in `set`: the ring's
        // slots are initialised before we use them.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: non-null pointers come from Box::into_raw in `set` and stay
        // valid until `self` is dropped; the ring is never replaced.
        unsafe { p.as_ref() }
    }

    /// Installs `ring` unless one is installed already.
    ///
    /// # Errors
    /// - `EBUSY`: a ring is already installed (the ring is dropped).
    pub fn set(&self, ring: PipeRing) -> Result<()> {
        let p = Box::into_raw(Box::new(ring));
        // ORDERING: Release publishes the initialised ring; pairs with the
        // Acquire load in `get`.
        match self.ptr.compare_exchange(
            std::ptr::null_mut(),
            p,
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => Ok(()),
            Err(_) => {
                // SAFETY: `p` came from Box::into_raw above and was never shared.
                drop(unsafe { Box::from_raw(p) });
                Err(Errno::EBUSY)
            }
        }
    }
}

impl Default for RingCell {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RingCell {
    fn drop(&mut self) {
        // Relaxed: `&mut self` proves no other thread holds a reference.
        let p = self.ptr.load(Ordering::Relaxed);
        if !p.is_null() {
            // SAFETY: `p` came from Box::into_raw in `set`; `&mut self` means
            // no reference from `get` is alive.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn rec(tag: u8, seq: u32) -> [u8; 16] {
        let mut r = [0u8; 16];
        r[0] = 1;
        r[4] = 16;
        r[5] = tag;
        r[8..12].copy_from_slice(&seq.to_le_bytes());
        r
    }

    fn pop(r: &PipeRing, room: usize) -> Pop {
        let mut buf = vec![0u8; room];
        // SAFETY: tests are the only consumer.
        unsafe { r.try_pop_unchecked(&mut buf) }
    }

    #[test]
    fn pipe_ring_slots_are_power_of_two() {
        for (cap, slots) in [(32, 32), (96, 128), (160, 256), (512, 512), (1, 2)] {
            let r = PipeRing::new(cap).unwrap();
            assert_eq!((r.capacity(), r.slots()), (cap, slots));
        }
        assert_eq!(PipeRing::new(0).err(), Some(Errno::EINVAL));
    }

    #[test]
    fn pipe_ring_fifo_and_full() {
        let r = PipeRing::new(96).unwrap();
        for i in 0..96 {
            assert_eq!(r.try_post(&rec(1, i)), PostOutcome::Posted);
        }
        assert_eq!(r.try_post(&rec(1, 96)), PostOutcome::Lost);
        assert_eq!(r.try_post(&rec(1, 97)), PostOutcome::Lost);
        // SAFETY: only consumer.
        assert_eq!(unsafe { r.queued_bytes_unchecked() }, 96 * 16);
        for i in 0..95 {
            assert_eq!(
                pop(&r, 16),
                Pop::Record {
                    len: 16,
                    loss: false
                },
                "{i}"
            );
        }
        // the last one carries the (collapsed) loss
        assert_eq!(
            pop(&r, 16),
            Pop::Record {
                len: 16,
                loss: true
            }
        );
        assert_eq!(pop(&r, 16), Pop::Empty);
    }

    #[test]
    fn pipe_ring_too_big_leaves_record() {
        let r = PipeRing::new(32).unwrap();
        r.try_post(&rec(1, 0));
        assert_eq!(pop(&r, 15), Pop::TooBig(16));
        assert_eq!(
            pop(&r, 16),
            Pop::Record {
                len: 16,
                loss: false
            }
        );
    }

    #[test]
    fn pipe_ring_wraps_many_laps() {
        let r = PipeRing::new(3).unwrap();
        let mut buf = [0u8; 16];
        for i in 0..1000u32 {
            assert_eq!(r.try_post(&rec(1, i)), PostOutcome::Posted);
            // SAFETY: this test is the ring's only consumer.
            let popped = unsafe { r.try_pop_unchecked(&mut buf) };
            assert_eq!(
                popped,
                Pop::Record {
                    len: 16,
                    loss: false
                }
            );
            assert_eq!(u32::from_le_bytes(buf[8..12].try_into().unwrap()), i);
        }
    }

    #[test]
    fn ring_cell_sets_once() {
        let c = RingCell::new();
        assert!(c.get().is_none());
        c.set(PipeRing::new(32).unwrap()).unwrap();
        assert_eq!(c.set(PipeRing::new(64).unwrap()), Err(Errno::EBUSY));
        assert_eq!(c.get().unwrap().capacity(), 32);
    }
}

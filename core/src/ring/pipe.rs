//! The merged design's notification ring: a bounded multi-producer,
//! single-consumer ring of whole records with in-band loss marking.
//!
//! Mirrors the pipe ring as `post_one_notification()` and `pipe_read()` in
//! kernel/watch_queue.c and fs/pipe.c use it: `capacity` preallocated
//! 128-byte notes (page-rounded by `SET_SIZE`), a power-of-two number of
//! slots, one record per slot, whole-record reads, and a failed post marking
//! a loss right after the most recently posted record.
//!
//! The kernel serialises posting with a spinlock. watchq's posting is
//! lock-free instead: a bounded ring with per-slot sequence stamps after
//! Dmitry Vyukov's bounded queue (as in crossbeam's `ArrayQueue`), restricted
//! to one consumer, with claim, write and publish as separate steps (a CAS
//! on `head`, the copy, a Release store of the slot's stamp). A post fails
//! when `head - tail >= capacity`, so producers learn the consumer's progress
//! from `tail` alone, and the consumer never writes a slot's stamp: what it
//! writes is `tail`, once per batch ([`Batch`], one read()'s worth), so the
//! consumer's line moves once per batch and the stamps' lines only ever go
//! from producers to the consumer.
//!
//! **Losses.** The kernel sets `PIPE_BUF_FLAG_LOSS` on the newest buffer, a
//! flag the reader turns into a loss record before the next record. Here the
//! newest record may still be being written by its producer, so the mark
//! goes where the loss happened instead: a failed post sets bit 63
//! ([`LOSS`]) of `head` with a CAS (losses at the same position collapse
//! into one, as on the kernel's buffer). The producer whose claim clears
//! the bit publishes its record with the same bit in its stamp: "a loss
//! happened right before this record". Until then, `loss_hint` holds the
//! position of the newest loss, so a consumer that reaches an empty
//! position sees a loss owed there without reading `head`. The consumer
//! remembers the position of the last loss it reported (`loss_seen`), so a
//! loss reached both ways is reported once. A post never waits: a full ring
//! costs the failed post a CAS on `head` at most.
//!
//! # Synchronization
//!
//! | atomic | writers | readers | ordering | partner |
//! |---|---|---|---|---|
//! | `head` | producers (claim CAS, loss-bit CAS) | producers | Relaxed | none: the CAS only hands out positions; what a claimer needs of the slot's previous lap it acquires through `tail` |
//! | `tail` | consumer (store, once per batch) | producers (full check) | Release store / Acquire load | the consumer's copy-outs happen before a producer reuses their slots |
//! | `tail_cache` | producers that found the ring looking full (`fetch_max` of a newer `tail`) | producers (full check) | AcqRel RMW / Acquire load | transitively the consumer's Release `tail` store |
//! | `stamp` | the slot's producer (publish store) | consumer | Release store / Acquire load | the record bytes are visible to the consumer |
//! | `loss_hint` | producers whose post failed (`fetch_max`) | consumer at an empty position | Relaxed | none: a flag, read with the position it names |
//! | `loss_seen` | consumer | consumer | Relaxed | none: the consumer's own memory |
//! | `RingCell::ptr` | `set_size` (CAS once) | producers, reader | Release CAS / Acquire load | the ring is fully built before anyone reaches it |

use crate::errno::{Errno, Result};
use crate::record::MIN_RECORD_LEN;
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, Ordering, UnsafeCell};
use crate::uapi::{WATCH_INFO_LENGTH, WATCH_QUEUE_NOTE_SIZE};
use crossbeam_utils::CachePadded;

use super::PostOutcome;

/// Bit 63 of `head` (a loss happened at this position, before the record
/// that will be claimed here) and of a stamp (a loss happened right before
/// this slot's record).
const LOSS: u64 = 1 << 63;

/// A note, on cache-line boundaries so a short record touches one line.
#[repr(align(64))]
struct Note(UnsafeCell<[u8; WATCH_QUEUE_NOTE_SIZE]>);

/// One slot: its stamp and its note. The stamps are kept dense, apart from
/// the notes, so a streaming consumer reads a stamp line for eight records
/// instead of one per record.
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
        /// A loss followed it (`PIPE_BUF_FLAG_LOSS` on it, in the kernel).
        loss: bool,
    },
    /// A loss happened right here, after the record taken last, and was not
    /// known when that record was taken (the reader owes a loss record
    /// before the next one). Nothing was copied.
    Loss,
}

/// The consumer's side of the ring, on a line of its own.
struct ConsumerSide {
    /// Records consumed (published once per batch).
    tail: AtomicU64,
    /// The position of the last loss reported (0: none; a loss is never at 0).
    loss_seen: AtomicU64,
}

/// The ring. Mirrors the notification use of `struct pipe_inode_info`'s
/// buffer ring together with the queue's notes.
pub struct PipeRing {
    head: CachePadded<AtomicU64>,
    cons: CachePadded<ConsumerSide>,
    /// A recent `tail` for the producers' full check, so they read the
    /// consumer's line only when the ring looks full (rtrb's trick, shared
    /// by all producers here); never ahead of `tail`.
    tail_cache: CachePadded<AtomicU64>,
    /// The position of the newest loss (0: none yet).
    loss_hint: CachePadded<AtomicU64>,
    capacity: u64,
    mask: u64,
    stamps: Box<[AtomicU64]>,
    notes: Box<[Note]>,
    /// A [`PipeReader`] exists (the safe single-consumer handle).
    reading: AtomicBool,
}

// SAFETY: the notes are only written by the producer that claimed the slot
// (exclusive by the head CAS, after the consumer's Release `tail` store said
// the previous lap was copied out) and only read by the single consumer
// after the Acquire load of the published stamp; see the Synchronization
// table.
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
        for _ in 0..nslots {
            // 0: no record published here yet (record `p` is published as
            // `p + 1`, never 0).
            stamps.push(AtomicU64::new(0));
            notes.push(Note(UnsafeCell::new([0; WATCH_QUEUE_NOTE_SIZE])));
        }
        Ok(PipeRing {
            head: CachePadded::new(AtomicU64::new(0)),
            cons: CachePadded::new(ConsumerSide {
                tail: AtomicU64::new(0),
                loss_seen: AtomicU64::new(0),
            }),
            tail_cache: CachePadded::new(AtomicU64::new(0)),
            loss_hint: CachePadded::new(AtomicU64::new(0)),
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
        let tail = self.cons.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Relaxed) & !LOSS;
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
    /// Mirrors `post_one_notification()`: full → the loss is marked right
    /// after the most recently posted record and the record is dropped.
    pub fn try_post(&self, rec: &[u8]) -> PostOutcome {
        debug_assert!((MIN_RECORD_LEN..=WATCH_INFO_LENGTH as usize).contains(&rec.len()));
        // Relaxed: see the CAS below.
        let mut head = self.head.load(Ordering::Relaxed);
        let pos = loop {
            let pos = head & !LOSS;
            // ORDERING: Acquire pairs with the AcqRel `fetch_max` of whoever
            // refreshed the cache, which had Acquire-loaded the consumer's
            // Release store of `tail`: the copy-out of the slot we may reuse
            // happened before (transitively).
            let mut tail = self.tail_cache.load(Ordering::Acquire);
            if pos.wrapping_sub(tail) >= self.capacity {
                // Looks full: look at the consumer's tail itself.
                // ORDERING: Acquire pairs with the consumer's Release store.
                let newest = self.cons.tail.load(Ordering::Acquire);
                if newest > tail {
                    // ORDERING: AcqRel passes on what we acquired to the
                    // producers that load the cache; `fetch_max` keeps it
                    // monotonic among producers. Only when it moves, so a
                    // producer spinning on a full ring writes nothing.
                    self.tail_cache.fetch_max(newest, Ordering::AcqRel);
                    tail = newest;
                }
            }
            if pos.wrapping_sub(tail) >= self.capacity {
                match self.on_full(head, tail) {
                    Some(outcome) => return outcome,
                    None => {
                        // Relaxed: as the first load.
                        head = self.head.load(Ordering::Relaxed);
                        continue;
                    }
                }
            }
            // Relaxed: the CAS only has to hand position `pos` to one
            // producer (its atomicity does that). The slot's previous lap
            // was copied out before the tail we Acquire-loaded above passed
            // it, and the loss bit we may clear carries no data.
            match self.head.compare_exchange_weak(
                head,
                pos + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break pos,
                Err(h) => head = h,
            }
        };
        let slot = self.slot(pos);
        slot.note.with_mut(|p| {
            // SAFETY: the CAS above made this producer the only owner of
            // position `pos`; the slot's previous record (`pos - slots`) was
            // copied out before `tail` passed it (Acquire above), and the
            // consumer reads it again only after our Release publish.
            unsafe { (&mut (*p))[..rec.len()].copy_from_slice(rec) }
        });
        // ORDERING: Release publishes the note bytes; pairs with the Acquire
        // stamp load in `stamp_at`. A loss marked at our position
        // (the bit our claim cleared from `head`) travels in the stamp.
        slot.stamp.store((pos + 1) | (head & LOSS), Ordering::Release);
        PostOutcome::Posted
    }

    /// The ring looked full at `head` against `tail`: marks the loss at
    /// `head`'s position (Some(Lost)), or says to retry (None) because the
    /// head moved.
    fn on_full(&self, head: u64, tail: u64) -> Option<PostOutcome> {
        let pos = head & !LOSS;
        if tail > pos {
            // `head` was loaded before the consumer passed it: stale.
            return None;
        }
        if head & LOSS == 0 {
            // Relaxed: the bit carries no data; whoever clears it with a
            // claim publishes it in its stamp, and the consumer reads it
            // there (or in `loss_hint` below). Failure: the head moved (a
            // claim, or another loss), so look again.
            if self
                .head
                .compare_exchange(head, head | LOSS, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                return None;
            }
        }
        // Tell a consumer that reaches `pos` while nothing is claimed there.
        // Relaxed: a flag read with the position it names; the load first
        // keeps a producer spinning on a full ring from writing the line.
        if self.loss_hint.load(Ordering::Relaxed) < pos {
            self.loss_hint.fetch_max(pos, Ordering::Relaxed);
        }
        Some(PostOutcome::Lost)
    }

    /// Is a published record or an unreported loss waiting at the tail?
    /// Reads only atomics, so anyone may ask (a reader deciding whether to
    /// sleep yet).
    pub fn has_published(&self) -> bool {
        // Relaxed: nothing is read through the answer; the reader takes
        // the pipe mutex and looks again with the consumer's own Acquire
        // loads (weakening these to Relaxed was not caught by any model,
        // as it should not be).
        let t = self.cons.tail.load(Ordering::Relaxed);
        self.slot(t).stamp.load(Ordering::Relaxed) & !LOSS == t + 1 || self.loss_owed_at(t)
    }

    /// A loss at `pos` (nothing claimed there, or claimed and not yet
    /// published) that the consumer has not reported.
    fn loss_owed_at(&self, pos: u64) -> bool {
        // Relaxed: flags; see the Synchronization table.
        self.loss_hint.load(Ordering::Relaxed) == pos
            && self.cons.loss_seen.load(Ordering::Relaxed) != pos
    }

    /// Length of the published record at the tail, if any.
    ///
    /// # Safety
    /// The caller is the ring's only consumer for the duration of the call
    /// (the queue's pipe mutex is held).
    pub unsafe fn peek_len_unchecked(&self) -> Option<usize> {
        // SAFETY: the caller is the only consumer (this fn's contract).
        unsafe { self.batch_unchecked() }.peek_len()
    }

    /// A loss the consumer owes at the tail that no record carries yet (a
    /// loss record alone, as the kernel reads after the newest record had
    /// `PIPE_BUF_FLAG_LOSS`).
    ///
    /// # Safety
    /// As `peek_len_unchecked`.
    pub unsafe fn loss_owed_unchecked(&self) -> bool {
        // Relaxed: only the consumer writes `tail`.
        let t = self.cons.tail.load(Ordering::Relaxed);
        self.loss_owed_at(t)
    }

    /// Bytes of the published records from the tail on (FIONREAD).
    ///
    /// # Safety
    /// As `peek_len_unchecked`.
    pub unsafe fn queued_bytes_unchecked(&self) -> usize {
        // Relaxed: only the consumer writes `tail`.
        let t = self.cons.tail.load(Ordering::Relaxed);
        (t..t + self.capacity)
            // SAFETY: the caller is the only consumer (this fn's contract).
            .map_while(|pos| unsafe { self.len_at(pos) })
            .sum()
    }

    /// The stamp at `pos`: the record's "loss before it" bit if record
    /// `pos` is published, None if it is not.
    fn stamp_at(&self, pos: u64) -> Option<bool> {
        // ORDERING: Acquire pairs with the producer's Release publish: the
        // note's bytes are visible once we see its stamp.
        let s = self.slot(pos).stamp.load(Ordering::Acquire);
        (s & !LOSS == pos + 1).then_some(s & LOSS != 0)
    }

    /// Length of record `pos` if it is published.
    ///
    /// # Safety
    /// As `peek_len_unchecked`; `pos` is at or after the tail, within a
    /// capacity of it.
    unsafe fn len_at(&self, pos: u64) -> Option<usize> {
        self.stamp_at(pos)?;
        self.slot(pos).note.with(|p| {
            // SAFETY: the record is published (Acquire in `stamp_at`) and not
            // yet consumed (the tail is not past it), so no producer writes
            // it, and the caller is the only consumer.
            let info = unsafe { (*p)[4] };
            Some(((info as u32 & WATCH_INFO_LENGTH) as usize).max(MIN_RECORD_LEN))
        })
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
        // Relaxed: only the consumer writes `tail` and `loss_seen`.
        let t = self.cons.tail.load(Ordering::Relaxed);
        let seen = self.cons.loss_seen.load(Ordering::Relaxed);
        Batch {
            ring: self,
            start: t,
            pos: t,
            seen,
            seen_start: seen,
        }
    }
}

/// One pass of the ring's consumer: what a read() with a buffer of many
/// records takes. Records are copied out in order; the tail, which
/// producers read to see room, is published once, when the batch is
/// dropped, so the consumer's line moves once per batch instead of once
/// per record.
///
/// Mirrors the loop of `pipe_read()` over a notification pipe's buffers,
/// with `pipe->tail` written back at the end.
pub struct Batch<'a> {
    ring: &'a PipeRing,
    start: u64,
    pos: u64,
    /// The last loss reported (`loss_seen`), written back on drop.
    seen: u64,
    seen_start: u64,
}

impl Batch<'_> {
    /// Reports a loss owed at `pos` unless it was reported already; `stamp`
    /// is what one load of its stamp gave.
    fn take_loss_at(&mut self, pos: u64, stamp: Option<bool>) -> bool {
        let owed = match stamp {
            Some(loss) => loss,
            // Relaxed: a flag named by its position (see the table).
            None => self.ring.loss_hint.load(Ordering::Relaxed) == pos,
        };
        if owed && self.seen != pos {
            self.seen = pos;
            return true;
        }
        false
    }

    /// Length of the published record next in line, if any.
    pub fn peek_len(&self) -> Option<usize> {
        // SAFETY: the batch's maker is the only consumer while it lives
        // (`batch_unchecked`'s contract), and `pos` is not consumed yet.
        unsafe { self.ring.len_at(self.pos) }
    }

    /// Copies the record next in line into `out` if it fits and takes it;
    /// or reports a loss owed before it.
    pub fn take(&mut self, out: &mut [u8]) -> Pop {
        let t = self.pos;
        // One load decides both the loss before the record and the record:
        // a record published between two loads would otherwise be taken
        // with its loss unseen.
        let stamp = self.ring.stamp_at(t);
        if self.take_loss_at(t, stamp) {
            return Pop::Loss;
        }
        if stamp.is_none() {
            return Pop::Empty;
        }
        let slot = self.ring.slot(t);
        let len = slot.note.with(|p| {
            // SAFETY: the record is published (Acquire in `stamp_at`) and
            // not yet consumed (the tail is not past it), so no producer
            // writes it; the batch's maker is the only consumer
            // (`batch_unchecked`'s contract).
            let info = unsafe { (*p)[4] };
            ((info as u32 & WATCH_INFO_LENGTH) as usize).max(MIN_RECORD_LEN)
        });
        if len > out.len() {
            return Pop::TooBig(len);
        }
        slot.note.with(|p| {
            // SAFETY: as above: published and still the consumer's;
            // producers reuse the slot only after the tail, published when
            // this batch ends, passes it.
            out[..len].copy_from_slice(unsafe { &(&(*p))[..len] })
        });
        self.pos = t + 1;
        // A loss right after it, known now, goes with it (as the kernel's
        // flag on the buffer); one known later is `Pop::Loss`.
        let next = self.ring.stamp_at(t + 1);
        let loss = self.take_loss_at(t + 1, next);
        Pop::Record { len, loss }
    }

    /// Records taken so far.
    pub fn taken(&self) -> usize {
        (self.pos - self.start) as usize
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.seen != self.seen_start {
            // Relaxed: the consumer's own memory.
            self.ring.cons.loss_seen.store(self.seen, Ordering::Relaxed);
        }
        if self.pos != self.start {
            // ORDERING: Release: our copy-outs happen before a producer that
            // Acquire-loads this tail reuses the slots.
            self.ring.cons.tail.store(self.pos, Ordering::Release);
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

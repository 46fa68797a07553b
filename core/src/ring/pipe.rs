//! The merged design's notification ring: a bounded multi-producer,
//! single-consumer ring of whole records with in-band loss marking.
//!
//! Mirrors the pipe ring as `post_one_notification()` and `pipe_read()` in
//! kernel/watch_queue.c and fs/pipe.c use it: `capacity` preallocated
//! 128-byte notes (page-rounded by `SET_SIZE`), at most `capacity` records
//! queued whatever their size, whole-record reads, and a failed post
//! marking a loss right after the most recently posted record.
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
//! **Packed notes.** The notes' memory (`capacity` rounded up to a power of
//! two, times 128 bytes) is one byte ring: a record takes its length rounded
//! up to 8 bytes, right after the record before it, so 16-byte records
//! share a cache line four at a time instead of taking a note's line each.
//! `head` carries the byte offset beside the position, so one CAS claims
//! both. At most `capacity` records of at most 128 bytes are ever live, so
//! the live bytes never span more than the ring; the memory has 128 bytes
//! of slack past the end, so a record that starts near the end runs on into
//! it and is never split. A stamp holds the record's length as well as its
//! position, so the consumer walks the byte ring by what producers wrote,
//! never by what a record's own length field claims.
//!
//! **Losses.** The kernel sets `PIPE_BUF_FLAG_LOSS` on the newest buffer, a
//! flag the reader turns into a loss record before the next record. Here the
//! newest record may still be being written by its producer, so the mark
//! goes where the loss happened instead: a failed post sets bit 63
//! (`LOSS`) of `head` with a CAS (losses at the same position collapse
//! into one, as on the kernel's buffer) and counts the mark in `losses`.
//! The producer whose claim clears the bit publishes its record with a LOSS
//! bit in its stamp: "a loss happened right before this record". A consumer
//! that reaches an empty position looks at `head` only when `losses` moved,
//! and reports a loss owed there if the bit is set at its position. It
//! remembers the position of the last loss it reported, so a loss reached
//! both ways is reported once. A post never waits: a full ring costs the
//! failed post a CAS on `head` and an increment of `losses`, once per
//! position; further failures at the same position only read.
//!
//! # Synchronization
//!
//! | atomic | writers | readers | ordering | partner |
//! |---|---|---|---|---|
//! | `head` | producers (claim CAS, loss-bit CAS) | producers, consumer (after `losses` moved) | Relaxed | none: the CAS only hands out positions and bytes; what a claimer needs of the memory's previous use it acquires through `tail` |
//! | `tail` | consumer (store, once per batch) | producers (full check) | Release store / Acquire load | the consumer's copy-outs happen before a producer reuses their memory |
//! | `tail_cache` | producers that found the ring looking full (store of a newer `tail`) | producers (full check) | Release store / Acquire load | transitively the consumer's Release `tail` store |
//! | `stamp` | the slot's producer (publish store) | consumer | Release store / Acquire load | the record bytes are visible to the consumer |
//! | `losses` | producers that set the loss bit (`fetch_add`) | consumer at an empty position | Release RMW / Acquire load | the bit set on `head` before the count is visible to a consumer that saw the count |
//! | consumer's private fields (position, byte offset, last loss) | consumer | consumer | Relaxed | none: the consumer's own memory |
//! | `RingCell::ptr` | `set_size` (CAS once), close (CAS of the marks) | producers (`for_post`), reader (`get`) | Release CAS / Acquire load; the close Relaxed | the ring is fully built before anyone reaches it (the close's RMW continues the release sequence); closing is not synchronised with posting |

use crate::errno::{Errno, Result};
use crate::record::MIN_RECORD_LEN;
use crate::sync::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use crate::uapi::{WATCH_INFO_LENGTH, WATCH_QUEUE_NOTE_SIZE};
use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;

use super::PostOutcome;

/// Bit 63 of `head`: a loss happened at this position, before the record
/// that will be claimed here.
const LOSS: u64 = 1 << 63;
/// Bit 31 of a stamp: a loss happened right before this slot's record.
const STAMP_LOSS: u32 = 1 << 31;
/// A stamp's position bits: the low 24 bits of `position + 1`. A slot's
/// stamp is only ever compared with the lap after the one that wrote it,
/// `slots` (at most 1024) positions on, so 24 bits tell them apart.
const STAMP_POS: u32 = (1 << 24) - 1;
/// Where a stamp keeps the record's length (8..=127: 7 bits).
const STAMP_LEN_SHIFT: u32 = 24;
/// `head`'s byte offset: 31 bits from bit 32 (wrapping; the byte ring's
/// size, a power of two, divides 2^31).
const OFF_MASK: u32 = (1 << 31) - 1;
/// The slack past the end of the byte ring: one record's most.
const SLACK: usize = WATCH_QUEUE_NOTE_SIZE;

/// A cache line of note memory. Plain bytes: accesses are ordered by the
/// stamps and `tail` (see [`PipeRing`]'s `// SAFETY:` comments); under loom
/// the shadow cells check them.
#[repr(C, align(64))]
struct Line(
    // Reached through the slice's pointer (`note_ptr`), never by name.
    #[allow(dead_code)] UnsafeCell<[u8; 64]>,
);

/// What the consumer found at the tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pop {
    /// No published record at the tail.
    Empty,
    /// The record at the tail is this long and does not fit the room given.
    TooBig(usize),
    /// A record of `len` bytes was copied out.
    Record {
        /// Bytes copied.
        len: usize,
    },
    /// A loss happened right here, after the record taken last (the
    /// kernel's `PIPE_BUF_FLAG_LOSS` on that record): the reader owes a
    /// loss record before the next one. Nothing was copied; the next take
    /// goes on to the record.
    Loss,
}

/// The consumer's side of the ring, on a line of its own.
struct ConsumerSide {
    /// Records consumed (never wrapping; producers compare its low 32 bits
    /// with `head`'s), published once per batch.
    tail: AtomicU64,
    /// The consumer's own: its byte offset in the note memory (31 bits,
    /// wrapping).
    off: AtomicU32,
    /// The position of the last loss it reported (`u64::MAX`: none).
    seen: AtomicU64,
    /// `losses` when it last found `head` at its own position.
    losses_seen: AtomicU64,
}

/// The ring. Mirrors the notification use of `struct pipe_inode_info`'s
/// buffer ring together with the queue's notes.
pub struct PipeRing {
    /// Bits 0..32: the next position to claim (wrapping); 32..63: the byte
    /// offset of its record; 63: `LOSS`.
    head: CachePadded<AtomicU64>,
    cons: CachePadded<ConsumerSide>,
    /// A recent `tail` for the producers' full check, so they read the
    /// consumer's line only when the ring looks full (rtrb's trick, shared
    /// by all producers here); never ahead of `tail`.
    tail_cache: CachePadded<AtomicU32>,
    /// Loss marks made (`head`'s bit set), for the consumer's empty check.
    losses: CachePadded<AtomicU64>,
    capacity: u32,
    mask: u32,
    stamps: Box<[AtomicU32]>,
    /// The notes: `bytes + SLACK` bytes.
    notes: Box<[Line]>,
    /// The byte ring's size (slots × 128, a power of two) less one: the
    /// mask of a byte offset.
    bytes_mask: u32,
    /// Under loom, one checked cell per 8 bytes of note memory, standing
    /// for them (loom cannot see plain memory).
    #[cfg(all(test, loom))]
    shadow: Box<[crate::sync::UnsafeCell<()>]>,
    /// A [`PipeReader`] exists (the safe single-consumer handle).
    reading: AtomicBool,
}

// SAFETY: the note memory is only written by the producer that claimed it
// (exclusive by the head CAS, after the consumer's Release `tail` store
// said its previous use was copied out) and only read by the single
// consumer after the Acquire load of the published stamp; see the
// Synchronization table and `try_post`.
unsafe impl Sync for PipeRing {}
// SAFETY: all fields are owned data; moving the ring moves them.
unsafe impl Send for PipeRing {}

impl PipeRing {
    /// A ring holding up to `capacity` records (at most 2^20) in
    /// `roundup_pow_of_two(capacity)` slots (at least 2) and as many notes.
    ///
    /// # Errors
    /// - `EINVAL`: `capacity` is 0 or over 2^20.
    /// - `ENOMEM`: the slots cannot be allocated.
    pub fn new(capacity: usize) -> Result<Self> {
        if capacity == 0 || capacity > 1 << 20 {
            return Err(Errno::EINVAL);
        }
        let nslots = capacity.next_power_of_two().max(2);
        let bytes = nslots * WATCH_QUEUE_NOTE_SIZE;
        let nlines = (bytes + SLACK) / 64;
        let mut stamps: Vec<AtomicU32> = Vec::new();
        let mut notes: Vec<Line> = Vec::new();
        stamps
            .try_reserve_exact(nslots)
            .and_then(|()| notes.try_reserve_exact(nlines))
            .map_err(|_| Errno::ENOMEM)?;
        for i in 0..nslots {
            // Slot i's first record is position i, published as i + 1: the
            // initial i is never a published stamp (see STAMP_POS).
            stamps.push(AtomicU32::new(i as u32));
        }
        for _ in 0..nlines {
            notes.push(Line(UnsafeCell::new([0; 64])));
        }
        Ok(PipeRing {
            head: CachePadded::new(AtomicU64::new(0)),
            cons: CachePadded::new(ConsumerSide {
                tail: AtomicU64::new(0),
                off: AtomicU32::new(0),
                seen: AtomicU64::new(u64::MAX),
                losses_seen: AtomicU64::new(0),
            }),
            tail_cache: CachePadded::new(AtomicU32::new(0)),
            losses: CachePadded::new(AtomicU64::new(0)),
            capacity: capacity as u32,
            mask: nslots as u32 - 1,
            stamps: stamps.into_boxed_slice(),
            notes: notes.into_boxed_slice(),
            bytes_mask: bytes as u32 - 1,
            #[cfg(all(test, loom))]
            shadow: (0..(bytes + SLACK) / 8)
                .map(|_| crate::sync::UnsafeCell::new(()))
                .collect(),
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
        let tail = self.cons.tail.load(Ordering::Relaxed) as u32;
        let head = self.head.load(Ordering::Relaxed) as u32;
        let n = head.wrapping_sub(tail);
        // A head loaded before a tail that passed it reads as 0.
        if n > self.capacity {
            0
        } else {
            n as usize
        }
    }

    #[inline]
    fn stamp(&self, pos: u32) -> &AtomicU32 {
        let i = (pos & self.mask) as usize;
        debug_assert!(i < self.stamps.len());
        // SAFETY: `mask` is the number of stamps less one, a power of two
        // (`new`), so `pos & mask` indexes one. Unchecked because the
        // check's compare and branch were on every post's way.
        unsafe { self.stamps.get_unchecked(i) }
    }

    /// The note memory at byte offset `off`, for `len` bytes: a pointer
    /// to contiguous memory (the slack takes what runs past the end).
    #[inline]
    fn note_ptr(&self, off: u32, len: usize) -> *mut u8 {
        let at = (off & self.bytes_mask) as usize;
        debug_assert!(at + len <= self.bytes_mask as usize + 1 + SLACK);
        // The lines are contiguous (a boxed slice of 64-byte `Line`s), and
        // each is an UnsafeCell, which permits writes through a shared
        // reference.
        let base = self.notes.as_ptr() as *mut u8;
        // SAFETY: `at + len` is within the allocation (`at` < bytes, `len`
        // ≤ SLACK, the allocation is bytes + SLACK).
        unsafe { base.add(at) }
    }

    /// Under loom: records an access of note bytes `[off, off + len)`.
    #[cfg(all(test, loom))]
    fn shadow(&self, off: u32, len: usize, write: bool) {
        let at = (off & self.bytes_mask) as usize;
        for g in at / 8..(at + len).div_ceil(8) {
            if write {
                self.shadow[g].with_mut(|_| ());
            } else {
                self.shadow[g].with(|_| ());
            }
        }
    }

    /// Posts one whole record (8..=127 bytes, its own length field first;
    /// anything else is dropped as Lost). Never blocks and never waits for
    /// the consumer.
    ///
    /// Mirrors `post_one_notification()`: full → the loss is marked right
    /// after the most recently posted record and the record is dropped.
    #[inline]
    pub fn try_post(&self, rec: &[u8]) -> PostOutcome {
        self.post(rec, None)
    }

    /// As [`PipeRing::try_post`], with the record's `info` word (bytes
    /// 4..8) written as `info` instead (the post path puts a watch's tag
    /// in on the way into the ring, so it never copies the record first).
    /// `info`'s length field is `rec`'s length.
    #[inline]
    pub fn try_post_with_info(&self, rec: &[u8], info: u32) -> PostOutcome {
        debug_assert_eq!((info & WATCH_INFO_LENGTH) as usize, rec.len());
        let w0 = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
        self.post(rec, Some(u64::from(w0) | u64::from(info) << 32))
    }

    /// As [`PipeRing::try_post`], with the record's header (bytes 0..8)
    /// written as `header` (its first word in the low half, the info word
    /// in the high half, as the post path works them out per watch), and
    /// the length not checked: a [`crate::Notification`]'s is always
    /// 8..=127.
    ///
    /// # Safety
    /// `rec` is 8..=127 bytes long, and `header`'s length field is its
    /// length.
    #[inline]
    pub(crate) unsafe fn try_post_with_header_unchecked(
        &self,
        rec: &[u8],
        header: u64,
    ) -> PostOutcome {
        debug_assert_eq!(
            (header >> 32) as usize & WATCH_INFO_LENGTH as usize,
            rec.len()
        );
        debug_assert!((MIN_RECORD_LEN..=WATCH_INFO_LENGTH as usize).contains(&rec.len()));
        // SAFETY: the length is in range (this fn's contract).
        unsafe { self.post_unchecked(rec, Some(header)) }
    }

    #[inline(always)]
    fn post(&self, rec: &[u8], header: Option<u64>) -> PostOutcome {
        if !(MIN_RECORD_LEN..=WATCH_INFO_LENGTH as usize).contains(&rec.len()) {
            // Not a record a note can hold: dropped, as the 2019 ring drops
            // an invalid one (no loss is marked: the ring was not full).
            return PostOutcome::Lost;
        }
        // SAFETY: the length was checked just above.
        unsafe { self.post_unchecked(rec, header) }
    }

    /// [`PipeRing::post`] past its length check.
    ///
    /// # Safety
    /// `rec` is 8..=127 bytes long.
    #[inline(always)]
    unsafe fn post_unchecked(&self, rec: &[u8], header: Option<u64>) -> PostOutcome {
        let len = rec.len();
        // `len` is at most 127 (the caller's word): no overflow, and two
        // instructions where `next_multiple_of`'s overflow-safe form took five.
        let span = (len as u32 + 7) & !7;
        // Relaxed: see the CAS below.
        let mut head = self.head.load(Ordering::Relaxed);
        #[cfg_attr(not(all(test, loom)), allow(unused_variables))]
        let (claim, off) = loop {
            let pos = head as u32;
            // With the LOSS bit as its bit 31: `note_ptr` and the mask
            // below drop it (the byte ring is at most 2^31 bytes).
            let off = (head >> 32) as u32;
            // ORDERING: Acquire pairs with the Release store of whoever
            // refreshed the cache, which had Acquire-loaded the consumer's
            // Release store of `tail`: the copy-out of the memory we may
            // reuse happened before (transitively).
            let tail = self.tail_cache.load(Ordering::Acquire);
            // One test on the way of a post into room: the rest is out of
            // line.
            if pos.wrapping_sub(tail) >= self.capacity {
                match self.looks_full(head, tail) {
                    Full::Room => {}
                    Full::Again => {
                        // Relaxed: as the first load.
                        head = self.head.load(Ordering::Relaxed);
                        continue;
                    }
                    Full::Lost => return PostOutcome::Lost,
                }
            }
            let next =
                u64::from(pos.wrapping_add(1)) | u64::from(off.wrapping_add(span) & OFF_MASK) << 32;
            // Everything the publish needs is worked out before the claim,
            // where a panic (a failed index, an overflow) would wedge
            // nothing: once the CAS succeeds, only `publish` runs.
            let claim = Claim {
                stamp: self.stamp(pos),
                value: (pos.wrapping_add(1) & STAMP_POS)
                    | (len as u32) << STAMP_LEN_SHIFT
                    | if head & LOSS != 0 { STAMP_LOSS } else { 0 },
                dst: self.note_ptr(off, len),
            };
            // Relaxed: the CAS only has to hand the position and its bytes
            // to one producer (its atomicity does that). Their previous use
            // was copied out before the tail we Acquire-loaded above passed
            // it, and the loss bit we may clear carries no data.
            match self
                .head
                .compare_exchange_weak(head, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break (claim, off),
                Err(h) => head = h,
            }
        };
        #[cfg(all(test, loom))]
        self.shadow(off, len, true);
        // SAFETY: the CAS above made this producer the only owner of
        // position `pos` (whose stamp `claim.stamp` is) and of note bytes
        // `[off, off + span)` (at `claim.dst`). At most `capacity` records
        // (of at most 128 bytes) are live from the tail we acquired to
        // ours, so the bytes last held a record the consumer copied out
        // before that tail passed it (Acquire above); with the slack they
        // are contiguous, and `rec` (8..=127 bytes, this fn's contract) is
        // another allocation.
        unsafe { no_panic::publish(claim, rec, header) };
        PostOutcome::Posted
    }

    /// The ring looked full at `head` by the cached tail `cached`: looks
    /// at the consumer's tail itself (refreshing the cache), and if the
    /// ring is full marks the loss at `head`'s position.
    #[cold]
    #[inline(never)]
    fn looks_full(&self, head: u64, cached: u32) -> Full {
        // ORDERING: Acquire pairs with the consumer's Release store.
        let newest = self.cons.tail.load(Ordering::Acquire) as u32;
        if newest != cached {
            // ORDERING: Release passes on what we acquired to the
            // producers that load the cache. A store, not an RMW: an older
            // value stored over a newer one is still never ahead of `tail`
            // (it only costs someone a refresh), and a producer spinning on
            // a full ring writes nothing.
            self.tail_cache.store(newest, Ordering::Release);
        }
        let used = (head as u32).wrapping_sub(newest);
        if used < self.capacity {
            Full::Room
        } else if used > u32::MAX / 2 {
            // `head` was loaded before the consumer passed it.
            Full::Again
        } else {
            self.on_full(head)
        }
    }

    /// The ring was full at `head`: marks the loss at its position
    /// (Lost), or says to look again because `head` moved.
    fn on_full(&self, head: u64) -> Full {
        if head & LOSS == 0 {
            // Relaxed: the bit carries no data; whoever clears it with a
            // claim publishes it in its stamp, and a consumer that finds the
            // position empty reads it after `losses` below. Failure: the
            // head moved (a claim, or another loss), so look again.
            if self
                .head
                .compare_exchange(head, head | LOSS, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                return Full::Again;
            }
            // ORDERING: Release: the bit above is visible to a consumer that
            // Acquire-loads this count (`loss_at_head`).
            self.losses.fetch_add(1, Ordering::Release);
        }
        // Else a loss is marked here already: this one collapses into it
        // (if its marker has not counted it yet, it is about to).
        Full::Lost
    }

    /// The stamp of position `pos`: the record's length and "loss before
    /// it" bit if record `pos` is published, None if it is not.
    #[inline]
    fn stamp_at(&self, pos: u32) -> Option<(usize, bool)> {
        // ORDERING: Acquire pairs with the producer's Release publish: the
        // note's bytes are visible once we see its stamp.
        let s = self.stamp(pos).load(Ordering::Acquire);
        (s & STAMP_POS == pos.wrapping_add(1) & STAMP_POS).then_some((
            ((s & !STAMP_LOSS) >> STAMP_LEN_SHIFT) as usize,
            s & STAMP_LOSS != 0,
        ))
    }

    /// Is a loss marked at empty position `pos` (nothing claimed there)?
    /// Reads `head` only when `losses` moved since `*losses_seen`; moves
    /// `*losses_seen` on when `head` is at `pos` (a later mark there counts
    /// again), and not otherwise, so a mark at a later position is looked
    /// for again from there.
    #[inline]
    fn loss_at_head(&self, pos: u32, losses_seen: &mut u64) -> bool {
        // ORDERING: Acquire pairs with the marker's Release increment: the
        // bit it set on `head` before is visible below.
        let n = self.losses.load(Ordering::Acquire);
        n != *losses_seen && self.loss_at_head_slow(pos, n, losses_seen)
    }

    /// `loss_at_head` once `losses` moved to `n`.
    #[cold]
    fn loss_at_head_slow(&self, pos: u32, n: u64, losses_seen: &mut u64) -> bool {
        // Relaxed: ordered by the Acquire in `loss_at_head`.
        let head = self.head.load(Ordering::Relaxed);
        if head as u32 != pos {
            return false;
        }
        *losses_seen = n;
        head & LOSS != 0
    }

    /// Is a published record or an unreported loss waiting at the tail?
    /// Reads only atomics, so anyone may ask (a reader deciding whether to
    /// sleep yet).
    pub fn has_published(&self) -> bool {
        // Relaxed: nothing is read through the answer; the reader takes
        // the pipe mutex and looks again with the consumer's own Acquire
        // loads (weakening these to Relaxed was not caught by any model,
        // as it should not be).
        let c = &*self.cons;
        let t = c.tail.load(Ordering::Relaxed);
        let s = self.stamp(t as u32).load(Ordering::Relaxed);
        if s & STAMP_POS == (t as u32).wrapping_add(1) & STAMP_POS {
            return true;
        }
        // A loss marked where the consumer is, not reported yet: `head`
        // is read only while a mark is not accounted for.
        self.losses.load(Ordering::Relaxed) != c.losses_seen.load(Ordering::Relaxed) && {
            let head = self.head.load(Ordering::Relaxed);
            head as u32 == t as u32 && head & LOSS != 0 && c.seen.load(Ordering::Relaxed) != t
        }
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
        // SAFETY: the caller is the only consumer (this fn's contract).
        let b = unsafe { self.batch_unchecked() };
        let mut losses_seen = b.losses_seen;
        b.seen != b.pos
            && match self.stamp_at(b.pos as u32) {
                Some((_, lost_before)) => lost_before,
                None => self.loss_at_head(b.pos as u32, &mut losses_seen),
            }
    }

    /// Bytes of the published records from the tail on (FIONREAD).
    ///
    /// # Safety
    /// As `peek_len_unchecked`.
    pub unsafe fn queued_bytes_unchecked(&self) -> usize {
        // Relaxed: only the consumer writes `tail`.
        let t = self.cons.tail.load(Ordering::Relaxed) as u32;
        (0..self.capacity)
            .map_while(|i| self.stamp_at(t.wrapping_add(i)).map(|(len, _)| len))
            .sum()
    }

    /// Copies the record at the tail into `out` if it fits, and releases it
    /// (a batch of one).
    ///
    /// Mirrors one iteration of `pipe_read()` over a `PIPE_BUF_FLAG_WHOLE`
    /// buffer plus the release of its note.
    ///
    /// # Safety
    /// As `peek_len_unchecked`.
    #[inline]
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
    #[inline]
    pub unsafe fn batch_unchecked(&self) -> Batch<'_> {
        let c = &*self.cons;
        // Relaxed: the consumer's own fields (it is the only writer of
        // `tail` too).
        let pos = c.tail.load(Ordering::Relaxed);
        let seen = c.seen.load(Ordering::Relaxed);
        let losses_seen = c.losses_seen.load(Ordering::Relaxed);
        Batch {
            ring: self,
            start: pos,
            pos,
            off: c.off.load(Ordering::Relaxed),
            seen,
            losses_seen,
            seen_start: (seen, losses_seen),
        }
    }
}

/// Where a consumer's pass stands, kept between passes by a consumer that
/// reads ahead of the tail it publishes (the shared-memory mirror of a
/// notification pipe: records stay claimed in the ring, so producers see
/// them as queued, until every reader has taken them from the mirror).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pos: u64,
    off: u32,
    seen: u64,
    losses_seen: u64,
}

impl PipeRing {
    /// The consumer's published position (where a read-ahead starts).
    ///
    /// # Safety
    /// As `batch_unchecked`.
    pub unsafe fn cursor_unchecked(&self) -> Cursor {
        // SAFETY: the caller is the only consumer (this fn's contract).
        let b = unsafe { self.batch_unchecked() };
        b.park()
    }

    /// A pass that starts at `at` (a cursor this ring's consumer parked,
    /// at or after its published tail) and publishes nothing: end it with
    /// [`Batch::park`].
    ///
    /// # Safety
    /// As `batch_unchecked`; `at` came from this ring's `cursor_unchecked`
    /// or a parked pass of it, and the tail has not been released past it.
    pub unsafe fn batch_at_unchecked(&self, at: Cursor) -> Batch<'_> {
        Batch {
            ring: self,
            start: at.pos,
            pos: at.pos,
            off: at.off,
            seen: at.seen,
            losses_seen: at.losses_seen,
            seen_start: (at.seen, at.losses_seen),
        }
    }

    /// Releases the `n` records at the tail (a read-ahead took them and
    /// their readers are done): the tail moves on, so producers may reuse
    /// their memory.
    ///
    /// # Safety
    /// As `batch_unchecked`; at least `n` records are published at the
    /// tail (a parked read-ahead passed them).
    pub unsafe fn release_unchecked(&self, n: usize) {
        // SAFETY: the caller is the only consumer (this fn's contract).
        let mut b = unsafe { self.batch_unchecked() };
        let mut scratch = [0u8; WATCH_QUEUE_NOTE_SIZE];
        while b.taken() < n {
            match b.take(&mut scratch) {
                Pop::Record { .. } | Pop::Loss => {}
                Pop::Empty | Pop::TooBig(_) => break,
            }
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
    /// The position next in line.
    pos: u64,
    /// Its byte offset.
    off: u32,
    /// The last loss reported.
    seen: u64,
    losses_seen: u64,
    /// Both as the batch started (written back only if they moved).
    seen_start: (u64, u64),
}

impl Batch<'_> {
    /// Length of the published record next in line, if any.
    #[inline]
    pub fn peek_len(&self) -> Option<usize> {
        self.ring.stamp_at(self.pos as u32).map(|(len, _)| len)
    }

    /// Copies the record next in line into `out` if it fits and takes it;
    /// or reports a loss owed before it.
    #[inline]
    pub fn take(&mut self, out: &mut [u8]) -> Pop {
        let pos = self.pos as u32;
        // One load decides both the loss before the record and the record:
        // a record published between two loads would otherwise be taken
        // with its loss unseen.
        let stamp = self.ring.stamp_at(pos);
        let Some((len, lost_before)) = stamp else {
            if self.seen != self.pos && self.ring.loss_at_head(pos, &mut self.losses_seen) {
                self.seen = self.pos;
                return Pop::Loss;
            }
            return Pop::Empty;
        };
        if lost_before && self.seen != self.pos {
            self.seen = self.pos;
            return Pop::Loss;
        }
        if len > out.len() {
            return Pop::TooBig(len);
        }
        #[cfg(all(test, loom))]
        self.ring.shadow(self.off, len, false);
        // SAFETY: the record is published (Acquire in `stamp_at`) and still
        // the consumer's: producers reuse its bytes only after the tail,
        // published when this batch ends, passes it; the batch's maker is
        // the only consumer (`batch_unchecked`'s contract). `out` is the
        // caller's memory, not the ring's, and holds `len` bytes.
        unsafe { no_panic::copy_record(self.ring.note_ptr(self.off, len), out.as_mut_ptr(), len) };
        self.pos += 1;
        self.off = self.off.wrapping_add(len.next_multiple_of(8) as u32) & OFF_MASK;
        Pop::Record { len }
    }

    /// Records taken so far.
    pub fn taken(&self) -> usize {
        (self.pos - self.start) as usize
    }

    /// Ends the pass without publishing anything: where it stands, for a
    /// later [`PipeRing::batch_at_unchecked`].
    pub fn park(self) -> Cursor {
        let c = Cursor {
            pos: self.pos,
            off: self.off,
            seen: self.seen,
            losses_seen: self.losses_seen,
        };
        // Nothing to publish: the tail stays where it is.
        std::mem::forget(self);
        c
    }
}

impl Drop for Batch<'_> {
    #[inline]
    fn drop(&mut self) {
        let c = &*self.ring.cons;
        if (self.seen, self.losses_seen) != self.seen_start {
            // Relaxed: the consumer's own fields.
            c.seen.store(self.seen, Ordering::Relaxed);
            c.losses_seen.store(self.losses_seen, Ordering::Relaxed);
        }
        if self.pos != self.start {
            // Relaxed: the consumer's own field.
            c.off.store(self.off, Ordering::Relaxed);
            // ORDERING: Release: our copy-outs happen before a producer that
            // Acquire-loads this tail reuses the memory.
            c.tail.store(self.pos, Ordering::Release);
        }
    }
}

/// What [`PipeRing::looks_full`] found.
enum Full {
    /// The consumer's own tail leaves room: claim the position.
    Room,
    /// `head` moved or was stale: load it again.
    Again,
    /// Full: the loss is marked.
    Lost,
}

/// A claimed position's publication, worked out before the claim.
struct Claim<'a> {
    /// The position's stamp.
    stamp: &'a AtomicU32,
    /// What the stamp is set to: position, length, loss before.
    value: u32,
    /// Where the record's bytes go in the note memory.
    dst: *mut u8,
}

/// What runs between a claim and its publish, and nothing else.
///
/// A producer that stopped between the two would wedge the ring: the
/// consumer waits at the unpublished position forever, and every producer
/// after it fills the ring behind it. So nothing here can panic: no
/// indexing (the stamp and the destination were found before the claim),
/// no arithmetic that can overflow (wrapping operations only), no
/// allocation, no assertion, no call out of this module but the copy's
/// unaligned moves and the stamp's store, and no user code. The lints
/// below (denied, so `cargo clippy -- -D warnings` fails on a
/// regression) check the first two; the rest is this module's whole
/// text. A panic anywhere else in a producer (before its claim, or after
/// its publish, in a policy hook say) leaves the ring as it was:
/// `tests/tests/stress.rs` `stress_producer_panic_blocks_no_one`.
mod no_panic {
    #![deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )]
    use super::Claim;
    use crate::sync::Ordering;

    /// Copies `rec` to the claimed note bytes (its bytes 0..8 replaced by
    /// `header` when given) and publishes the stamp.
    ///
    /// # Safety
    /// `claim` is this producer's (its CAS succeeded), `claim.dst` is
    /// valid for `rec.len()` bytes, and `rec` is 8..=127 bytes long.
    #[inline(always)]
    pub(super) unsafe fn publish(claim: Claim<'_>, rec: &[u8], header: Option<u64>) {
        // SAFETY: this function's contract (8 <= len <= 127).
        unsafe {
            match header {
                None => copy_record(rec.as_ptr(), claim.dst, rec.len()),
                Some(h) => copy_tagged(rec.as_ptr(), claim.dst, rec.len(), h),
            }
        }
        // ORDERING: Release publishes the note bytes; pairs with the
        // Acquire stamp load in `stamp_at`. A loss marked at our position
        // (the bit our claim cleared from `head`) travels in the stamp.
        claim.stamp.store(claim.value, Ordering::Release);
    }

    /// Copies a record of `len` bytes (8..=127) with its bytes 0..8 (the
    /// header) written as `header`: the payload a word at a time (the
    /// last word ending at `len`, overlapping the one before or the
    /// header), then the header as one word. Few values to work out per
    /// record (the post path's fan-out keeps them for every queue: the
    /// four arms of [`copy_record`] had the compiler prepare each arm's
    /// offsets once per event), and one 8-byte move for a key record.
    ///
    /// # Safety
    /// As [`copy_record`].
    #[inline(always)]
    pub(super) unsafe fn copy_tagged(src: *const u8, dst: *mut u8, len: usize, header: u64) {
        // SAFETY: every move is of 8 bytes within `[0, len)` of both
        // (`len >= 8`); unaligned reads and writes need no alignment.
        unsafe {
            let word = |at: usize| src.add(at).cast::<[u8; 8]>().read_unaligned();
            let put = |at: usize, v: [u8; 8]| dst.add(at).cast::<[u8; 8]>().write_unaligned(v);
            // For an 8-byte record `last` is 0: its one word is moved and
            // then written over by the header, a move where a test and a
            // branch were.
            let last = len.wrapping_sub(8);
            if last > 8 {
                copy_middle(src, dst, last);
            }
            put(last, word(last));
            put(0, header.to_le_bytes());
        }
    }

    /// [`copy_tagged`]'s words from byte 8 up to `last` (a record over 16
    /// bytes), out of line: inlined, its loop's set-up was worked out once
    /// per event for every record, key records included.
    ///
    /// # Safety
    /// `src` and `dst` are valid for `last + 8` bytes and do not overlap.
    #[inline(never)]
    unsafe fn copy_middle(src: *const u8, dst: *mut u8, last: usize) {
        let mut at = 8;
        while at < last {
            // SAFETY: `at + 8 <= last + 8`, within both (the contract).
            unsafe {
                dst.add(at)
                    .cast::<[u8; 8]>()
                    .write_unaligned(src.add(at).cast::<[u8; 8]>().read_unaligned());
            }
            at = at.wrapping_add(8);
        }
    }

    /// Copies a record of `len` bytes (8..=127): two overlapping moves of the
    /// largest power of two not above `len` (no call into `memcpy` for what
    /// is mostly a 16-byte key record).
    ///
    /// # Safety
    /// `src` and `dst` are valid for `len` bytes and do not overlap.
    #[inline(always)]
    pub(super) unsafe fn copy_record(src: *const u8, dst: *mut u8, len: usize) {
        /// Moves `N` bytes at the start and `N` at the end (`N <= len <= 2N`).
        ///
        /// # Safety
        /// As `copy_record`, with `N <= len <= 2 * N`.
        #[inline(always)]
        unsafe fn two<const N: usize>(src: *const u8, dst: *mut u8, len: usize) {
            // SAFETY: both ranges are within the `len` bytes (`N <= len`); the
            // unaligned reads and writes of `[u8; N]` need no alignment.
            unsafe {
                let a = src.cast::<[u8; N]>().read_unaligned();
                let b = src
                    .add(len.wrapping_sub(N))
                    .cast::<[u8; N]>()
                    .read_unaligned();
                dst.cast::<[u8; N]>().write_unaligned(a);
                dst.add(len.wrapping_sub(N))
                    .cast::<[u8; N]>()
                    .write_unaligned(b);
            }
        }
        // SAFETY: each arm's N satisfies N <= len <= 2N; the rest is the
        // caller's contract.
        unsafe {
            match len {
                ..16 => two::<8>(src, dst, len),
                16..32 => two::<16>(src, dst, len),
                32..64 => two::<32>(src, dst, len),
                _ => two::<64>(src, dst, len),
            }
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
    #[inline]
    pub fn pop(&mut self, out: &mut [u8]) -> Pop {
        // SAFETY: this handle is the only consumer (`reader` hands out one).
        unsafe { self.ring.try_pop_unchecked(out) }
    }

    /// A pass over the ring (see [`Batch`]); the handle is borrowed, so no
    /// other pass or pop runs meanwhile.
    #[inline]
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

/// A ring installed at most once (by `SET_SIZE`) and read without a lock,
/// and whether posts may still go into it.
///
/// Mirrors the pipe's ring pointer as swapped by `pipe_resize_ring()` under
/// the posting lock (kernel bug #13 was a resize that forgot it): here the
/// ring is built completely and then published with one CAS, so a racing post
/// either sees no ring (and loses the record silently, as before sizing) or
/// the complete ring.
///
/// The word is the ring's address with two marks in its low bits (a ring
/// is 128-byte aligned): `NO_POST`, "no post goes in" (not sized yet, or
/// closed), and `CLOSED`. So a post learns "sized and open, and here is
/// the ring" from one load and one test ([`RingCell::for_post`]).
pub struct RingCell {
    ptr: AtomicPtr<PipeRing>,
}

/// A [`RingCell`] mark: posts take the slow way (no ring, or closed).
const NO_POST: usize = 1;
/// A [`RingCell`] mark: the queue is closed (with [`NO_POST`]).
const CLOSED: usize = 2;
const MARKS: usize = NO_POST | CLOSED;

/// What a post found in a [`RingCell`] that did not let it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoPost {
    /// The queue is closed.
    Closed,
    /// No ring is installed (yet).
    Unsized,
}

impl RingCell {
    /// No ring yet.
    pub fn new() -> Self {
        RingCell {
            ptr: AtomicPtr::new(std::ptr::without_provenance_mut(NO_POST)),
        }
    }

    /// The ring, once installed (closed or not).
    #[inline]
    pub fn get(&self) -> Option<&PipeRing> {
        // ORDERING: Acquire pairs with the Release CAS in `set` (or, past
        // `close`'s RMW, which continues its release sequence): the
        // ring's slots are initialised before we use them.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: with the marks cleared, a non-null pointer came from
        // Box::into_raw in `set` and stays valid until `self` is dropped;
        // the ring is never replaced.
        unsafe { p.map_addr(|a| a & !MARKS).as_ref() }
    }

    /// The ring, if it is installed and the queue is open: one load and
    /// one test, the post path's.
    #[inline(always)]
    pub fn for_post(&self) -> std::result::Result<&PipeRing, NoPost> {
        // ORDERING: Acquire, as in `get`.
        let p = self.ptr.load(Ordering::Acquire);
        if p.addr() & NO_POST != 0 {
            return Err(Self::no_post(p.addr()));
        }
        // SAFETY: without NO_POST the word is the ring's own pointer,
        // from Box::into_raw in `set` (`close` sets NO_POST with CLOSED);
        // valid until `self` is dropped, never replaced.
        Ok(unsafe { &*p })
    }

    #[cold]
    fn no_post(word: usize) -> NoPost {
        if word & CLOSED != 0 {
            NoPost::Closed
        } else {
            NoPost::Unsized
        }
    }

    /// Marks the queue closed: no post goes into the ring after this (one
    /// that loaded the word before may still land, in a ring nobody
    /// reads, as a post racing the kernel's close does).
    pub fn close(&self) {
        // Relaxed: closing is not synchronised with posting (see
        // `WatchQueue::post_header`); an RMW, so a reader that loads the
        // marked word still acquires the ring from `set`'s Release.
        let mut cur = self.ptr.load(Ordering::Relaxed);
        // Relaxed, both: as the load.
        while let Err(c) = self.ptr.compare_exchange(
            cur,
            cur.map_addr(|a| a | MARKS),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            cur = c;
        }
    }

    /// Installs `ring` unless one is installed already (a closed queue
    /// keeps its mark: posts still do not go in).
    ///
    /// # Errors
    /// - `EBUSY`: a ring is already installed (the ring is dropped).
    pub fn set(&self, ring: PipeRing) -> Result<()> {
        let p = Box::into_raw(Box::new(ring));
        debug_assert_eq!(p.addr() & MARKS, 0);
        // Relaxed: the CAS below fails unless it saw this value, and it
        // carries no ring yet.
        let mut cur = self.ptr.load(Ordering::Relaxed);
        loop {
            if cur.addr() & !MARKS != 0 {
                // SAFETY: `p` came from Box::into_raw above and was never shared.
                drop(unsafe { Box::from_raw(p) });
                return Err(Errno::EBUSY);
            }
            // Open: the ring alone; closed: the ring with its marks.
            let marks = if cur.addr() & CLOSED != 0 { MARKS } else { 0 };
            // ORDERING: Release publishes the initialised ring; pairs with
            // the Acquire loads in `get` and `for_post`. Relaxed on
            // failure: nothing is read through the word then.
            match self.ptr.compare_exchange(
                cur,
                p.map_addr(|a| a | marks),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(c) => cur = c,
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
        let p = self.ptr.load(Ordering::Relaxed).map_addr(|a| a & !MARKS);
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
        for i in 0..96 {
            assert_eq!(pop(&r, 16), Pop::Record { len: 16 }, "{i}");
        }
        // the (collapsed) loss follows the last one, once
        assert_eq!(pop(&r, 16), Pop::Loss);
        assert_eq!(pop(&r, 16), Pop::Empty);
        // the next record claims the marked position: its stamp carries
        // the loss already reported, which is not reported again
        assert_eq!(r.try_post(&rec(1, 98)), PostOutcome::Posted);
        assert_eq!(pop(&r, 16), Pop::Record { len: 16 });
        assert_eq!(pop(&r, 16), Pop::Empty);
    }

    #[test]
    fn pipe_ring_too_big_leaves_record() {
        let r = PipeRing::new(32).unwrap();
        r.try_post(&rec(1, 0));
        assert_eq!(pop(&r, 15), Pop::TooBig(16));
        assert_eq!(pop(&r, 16), Pop::Record { len: 16 });
    }

    #[test]
    fn pipe_ring_wraps_many_laps() {
        let r = PipeRing::new(3).unwrap();
        let mut buf = [0u8; 16];
        for i in 0..1000u32 {
            assert_eq!(r.try_post(&rec(1, i)), PostOutcome::Posted);
            // SAFETY: this test is the ring's only consumer.
            let popped = unsafe { r.try_pop_unchecked(&mut buf) };
            assert_eq!(popped, Pop::Record { len: 16 });
            assert_eq!(u32::from_le_bytes(buf[8..12].try_into().unwrap()), i);
        }
    }

    /// Records each producer posts in the threaded tests: few under Miri,
    /// which interprets every access (and, with its weak-memory emulation,
    /// lets loads see stale stores, as hardware may).
    pub(crate) const THREADED_POSTS: u32 = if cfg!(miri) { 40 } else { 20_000 };

    /// Two producers and the consumer on their own threads, on a ring
    /// smaller than what is posted (full ring, wrap, slot reuse): every
    /// record whole, each producer's in order, delivered + lost = posted,
    /// and a loss reported between two records whenever one was lost.
    #[test]
    fn pipe_ring_threads_two_producers_and_consumer() {
        let r = PipeRing::new(4).unwrap();
        let done = AtomicU32::new(0);
        // All three start together, and the producers yield now and then,
        // so posts and pops overlap (a producer done before the consumer
        // starts is ordered before it by `done`, and races nothing).
        let start = std::sync::Barrier::new(3);
        std::thread::scope(|s| {
            let producers: Vec<_> = (1..=2u8)
                .map(|tag| {
                    let (r, done, start) = (&r, &done, &start);
                    s.spawn(move || {
                        start.wait();
                        let mut lost = 0;
                        for i in 0..THREADED_POSTS {
                            let mut rec = rec(tag, i);
                            rec[12..16].copy_from_slice(&(!i).to_le_bytes());
                            if r.try_post(&rec) == PostOutcome::Lost {
                                lost += 1;
                            }
                            if i % 8 == 0 {
                                std::thread::yield_now();
                            }
                        }
                        done.fetch_add(1, Ordering::Release);
                        lost
                    })
                })
                .collect();
            let mut reader = r.reader().unwrap();
            start.wait();
            let (mut next, mut delivered, mut losses) = ([0u32; 3], 0u32, 0u32);
            let mut buf = [0u8; 128];
            loop {
                let finished = done.load(Ordering::Acquire) == 2;
                match reader.pop(&mut buf) {
                    Pop::Record { len } => {
                        assert_eq!(len, 16);
                        let tag = usize::from(buf[5]);
                        let seq = u32::from_le_bytes(buf[8..12].try_into().unwrap());
                        let check = u32::from_le_bytes(buf[12..16].try_into().unwrap());
                        assert_eq!(check, !seq, "a torn record");
                        assert!(seq >= next[tag], "producer {tag} out of order");
                        next[tag] = seq + 1;
                        delivered += 1;
                    }
                    Pop::Loss => losses += 1,
                    Pop::TooBig(n) => panic!("a {n}-byte record"),
                    Pop::Empty if finished => break,
                    Pop::Empty => std::thread::yield_now(),
                }
            }
            let lost: u32 = producers.into_iter().map(|p| p.join().unwrap()).sum();
            assert_eq!(delivered + lost, 2 * THREADED_POSTS);
            assert_eq!(
                lost == 0,
                losses == 0,
                "a loss is reported iff one happened"
            );
            assert!(losses <= lost);
        });
    }

    /// Every record length a note holds, posted with a new info word:
    /// read back as the record's own bytes with bytes 4..8 replaced, and
    /// the neighbours' bytes untouched (`copy_tagged`'s overlapping
    /// words stay inside the record).
    #[test]
    fn ring_post_with_info_is_byte_exact_at_every_length() {
        let r = PipeRing::new(4).unwrap();
        let mut reader = r.reader().unwrap();
        for len in 8..=127usize {
            let rec: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(7) ^ len as u8)
                .collect();
            let info = (len as u32) | 0xa5_5a_00 ^ (len as u32) << 16 & 0x7f_0000;
            // A neighbour on each side, so a move past the record shows.
            let before = [0xeeu8; 24];
            assert_eq!(r.try_post(&before), PostOutcome::Posted);
            assert_eq!(r.try_post_with_info(&rec, info), PostOutcome::Posted);
            assert_eq!(r.try_post(&before), PostOutcome::Posted);
            let mut buf = [0u8; 128];
            for want in [&before[..], &rec[..], &before[..]] {
                let Pop::Record { len: n } = reader.pop(&mut buf) else {
                    panic!("no record at length {len}")
                };
                let mut want = want.to_vec();
                if want.len() == len && want != before {
                    want[4..8].copy_from_slice(&info.to_le_bytes());
                }
                assert_eq!(&buf[..n], &want[..], "length {len}");
            }
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

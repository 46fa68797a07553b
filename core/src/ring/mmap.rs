//! The 2019 design's ring: one buffer of 8-byte slots that the consumer
//! maps, with the head and tail indices inside it, variable-length records,
//! and SKIP records padding to the end so no record straddles the wrap.
//!
//! Mirrors `post_one_notification()` and the ring layout of the June 2019
//! `/dev/watch_queue` driver (spec §2.2–§2.4): slot 0 holds the meta header
//! ([`RawWatchQueueMeta`]); `head` and `tail` are free-running slot indices;
//! the consumer reads records from `tail` up to `head` and writes `tail`
//! back. watchq's producer differs in two ways, both documented in
//! docs/mmap-ring.md: the header fills three slots (the 2019 header
//! overlapped the first record), and posting is lock-free instead of taking
//! a spinlock:
//!
//! 1. **Claim**: a producer reserves the slots it needs (record, plus a SKIP
//!    record and the header rewrite when it wraps) by a CAS on a private
//!    claim word, after validating the consumer's `tail` exactly as the
//!    2019 code did. A claim that does not fit fails at once: the record is
//!    lost and the next record claimed carries `WATCH_INFO_OVERRUN`. The
//!    claim word holds the claim position and, beside it, the number of
//!    claims in flight (claimed, not yet finished) and the loss bit, so
//!    the claim counts itself and takes a pending loss mark in the same
//!    CAS.
//! 2. **Write** the claimed slots (private to this producer).
//! 3. **Finish**, and **publish** if last: a producer that finds itself the
//!    only claim in flight knows every slot below the claim position is
//!    written (every other claim finished), so it stores that position in
//!    `head` and then leaves with a CAS that counts it out; if another claim
//!    came meanwhile, that CAS fails and it looks again, leaving the
//!    newcomer to publish. A producer that is not alone just counts itself
//!    out. So `head` only ever covers complete records and only moves
//!    forward (each publisher saw the previous one leave), no producer waits
//!    for another or for the consumer, and an uncontended post costs two
//!    read-modify-writes: the claim and the finish.
//!
//! The consumer may write anything into the shared buffer. Every access the
//! producer makes to it is an atomic load or store of a 32-bit word or an
//! 8-byte slot at an index masked into the buffer, so a hostile consumer can corrupt what it
//! reads, never the producer's memory safety; a `tail` that fails
//! validation (beyond `head`, behind by a ring or more, inside the header)
//! makes posts fail as lost, as in 2019, until the consumer writes a sane
//! one.
//!
//! # Synchronization
//!
//! | atomic | writers | readers | ordering | partner |
//! |---|---|---|---|---|
//! | `claim` (position, in flight) | producers (claim CAS, finish CAS) | producers | Acquire claim; Release finish / Acquire on failure | a finish passes the claim's record words to the publisher that sees it counted out, who passes them on through `head`; every change is an RMW, so one load acquires every finish before it |
//! | `pub_head` | publisher | producers (tail validation) | Relaxed | none of its own: a tail the producer Acquire-loaded was read from a `head` stored (Release) after `pub_head` |
//! | shared `head` word | publisher | consumer (`Consumer::pop` walks to the head it last loaded while that is ahead of its tail, and loads it again before it says empty); `MmapRing::head`, `Consumer::available` (hints) | Release store / Acquire load (hints: Relaxed) | the consumer sees the record words before it sees `head` cover them |
//! | shared `tail` word | consumer | producers | Release store / Acquire load | the consumer's reads of a record happen before a producer reuses its slots |
//! | `claim`'s `OVERRUN` bit | a lost post (CAS sets it), the next claim (its CAS clears it) | producers | Relaxed (the loss's CAS) | none: a bit of the claim word, so ordered with the claims on the one location; the record it lands on is published by the finish and `head` |

use super::PostOutcome;
use crate::errno::{Errno, Result};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::uapi::v2::*;
use crossbeam_utils::CachePadded;

/// Memory for a ring, as 32-bit words (little-endian values on the wire).
///
/// # Safety
/// `words()` returns the same slice, of a length that is a power of two
/// and at least 16, for the whole life of the value, and nothing but
/// atomic accesses reach that memory while the value lives (other
/// processes included: they see it through a shared mapping).
pub unsafe trait RingStorage: Send + Sync {
    /// The ring memory.
    fn words(&self) -> &[AtomicU32];

    /// The file behind the memory, if another process can map it.
    fn file(&self) -> Option<&std::fs::File> {
        None
    }

    /// Under loom: a write of record slot `slot` by a producer, so the
    /// model checks it against the consumer's reads (the words themselves
    /// are atomics, whose stale reads loom does not surface).
    #[cfg(loom)]
    fn note_write(&self, slot: usize) {
        let _ = slot;
    }

    /// Under loom: a read of record slot `slot` by the consumer.
    #[cfg(loom)]
    fn note_read(&self, slot: usize) {
        let _ = slot;
    }
}

// SAFETY: forwards to the boxed storage, which upholds the contract.
unsafe impl RingStorage for Box<dyn RingStorage> {
    fn words(&self) -> &[AtomicU32] {
        (**self).words()
    }

    fn file(&self) -> Option<&std::fs::File> {
        (**self).file()
    }

    #[cfg(loom)]
    fn note_write(&self, slot: usize) {
        (**self).note_write(slot)
    }

    #[cfg(loom)]
    fn note_read(&self, slot: usize) {
        (**self).note_read(slot)
    }
}

/// Ring memory on the heap: for tests, loom models, and a consumer in
/// the same process.
#[derive(Debug)]
pub struct HeapStorage(
    Box<[AtomicU32]>,
    /// Under loom, one checked cell per slot standing for its bytes.
    #[cfg(loom)]
    Box<[crate::sync::UnsafeCell<()>]>,
);

impl HeapStorage {
    /// `bytes` of zeroed memory.
    ///
    /// # Errors
    /// `EINVAL`: not a power of two of at least 64 bytes.
    pub fn new(bytes: usize) -> Result<Self> {
        if !bytes.is_power_of_two() || bytes < 64 {
            return Err(Errno::EINVAL);
        }
        Ok(HeapStorage(
            (0..bytes / 4).map(|_| AtomicU32::new(0)).collect(),
            #[cfg(loom)]
            (0..bytes / 8)
                .map(|_| crate::sync::UnsafeCell::new(()))
                .collect(),
        ))
    }
}

#[cfg(loom)]
// SAFETY: (loom only) the shadow cells hold nothing; their accesses exist
// for loom to check, which it does, reporting a race if one happens.
unsafe impl Sync for HeapStorage {}

// SAFETY: the boxed slice never changes and is only reached through atomics.
unsafe impl RingStorage for HeapStorage {
    fn words(&self) -> &[AtomicU32] {
        &self.0
    }

    #[cfg(loom)]
    fn note_write(&self, slot: usize) {
        self.1[slot].with_mut(|_| ());
    }

    #[cfg(loom)]
    fn note_read(&self, slot: usize) {
        self.1[slot].with(|_| ());
    }
}

/// Ring memory in a sealed memfd, mapped shared: another process that is
/// given the fd maps the same pages and consumes from them.
///
/// The memfd is sealed with `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`
/// (seed 003), so a consumer can trust that the buffer it mapped cannot be
/// shrunk under it (which would fault it) nor the seals removed.
#[cfg(not(loom))]
#[derive(Debug)]
pub struct MemfdStorage {
    file: std::fs::File,
    map: memmap2::MmapRaw,
}

/// The seals a ring's memfd carries.
#[cfg(not(loom))]
pub const RING_SEALS: i32 = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

#[cfg(not(loom))]
impl MemfdStorage {
    /// A new sealed memfd of `bytes` zeroed bytes (close-on-exec), mapped.
    ///
    /// # Errors
    /// `EINVAL` (not a power of two of at least 64 bytes), or the errno of
    /// `memfd_create`, `ftruncate`, `F_ADD_SEALS` or `mmap`.
    pub fn new(bytes: usize, name: &str) -> Result<Self> {
        use std::os::fd::FromRawFd;
        if !bytes.is_power_of_two() || bytes < 64 {
            return Err(Errno::EINVAL);
        }
        let cname = std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)?;
        // SAFETY: a NUL-terminated name and valid flags.
        let fd = unsafe {
            libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if fd < 0 {
            return Err(last_errno());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let file = unsafe { std::fs::File::from_raw_fd(fd) };
        file.set_len(bytes as u64).map_err(io_errno)?;
        // SAFETY: F_ADD_SEALS takes an int argument.
        if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, RING_SEALS) } < 0 {
            return Err(last_errno());
        }
        Self::map(file)
    }

    /// Maps a ring memfd received from another process (the consumer's
    /// side). Refuses a memfd that could still shrink.
    ///
    /// # Errors
    /// `EPERM` (not sealed against shrinking and growing), `EINVAL` (a size
    /// that is not a power of two of at least 64 bytes), or `mmap`'s errno.
    pub fn open(file: std::fs::File) -> Result<Self> {
        use std::os::fd::AsRawFd;
        // SAFETY: F_GET_SEALS takes no argument.
        let seals = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
        let need = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
        if seals < 0 || seals & need != need {
            return Err(Errno::EPERM);
        }
        let len = file.metadata().map_err(io_errno)?.len() as usize;
        if !len.is_power_of_two() || len < 64 {
            return Err(Errno::EINVAL);
        }
        Self::map(file)
    }

    fn map(file: std::fs::File) -> Result<Self> {
        let map = memmap2::MmapOptions::new()
            .map_raw(&file)
            .map_err(io_errno)?;
        Ok(MemfdStorage { file, map })
    }

    /// The memfd (to pass to a consumer, or for `mmap` by a program).
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }
}

// SAFETY: the mapping lives as long as the value and never moves; the
// memfd is sealed, so it cannot shrink under the mapping; its length is a
// power of two (checked when made or opened); all access is through the
// AtomicU32s, which have the layout of u32 and are page-aligned.
#[cfg(not(loom))]
unsafe impl RingStorage for MemfdStorage {
    fn words(&self) -> &[AtomicU32] {
        // SAFETY: see the impl's comment.
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_mut_ptr().cast::<AtomicU32>(),
                self.map.len() / 4,
            )
        }
    }

    fn file(&self) -> Option<&std::fs::File> {
        Some(&self.file)
    }
}

#[cfg(not(loom))]
fn last_errno() -> Errno {
    io_errno(std::io::Error::last_os_error())
}

#[cfg(not(loom))]
fn io_errno(e: std::io::Error) -> Errno {
    e.raw_os_error()
        .and_then(Errno::from_raw)
        .unwrap_or(Errno::EIO)
}

/// Is `rec` a record this ring can carry: 8..=504 bytes, a whole number of
/// slots, and its own length field saying so?
#[inline]
pub fn valid_record(rec: &[u8]) -> bool {
    let len = rec.len();
    (WATCH_LENGTH_GRANULARITY..=MAX_RECORD_LEN).contains(&len)
        && len.is_multiple_of(WATCH_LENGTH_GRANULARITY)
        && (u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]) & WATCH_INFO_LENGTH) as usize
            == len
}

/// The ring memory as 8-byte slots, if it is 8-byte aligned (a mapping
/// always is; the heap nearly always), on a little-endian machine (where
/// a slot's value is its two little-endian words side by side): records
/// are then copied a slot at a time instead of a word at a time.
///
/// watchq accesses a record slot (slot 0, the meta header's SKIP record,
/// included) at 8 bytes whenever this gives a view, and the header's words
/// (slots 1 and 2: head, tail, mask) only at 4, so no location is ever
/// accessed concurrently at two sizes (which Rust's memory model forbids);
/// `MmapRing::new` and tests touch record words at 4 bytes only before or
/// after anything runs concurrently. Under loom, whose atomics are not
/// memory, there is no such view.
#[inline]
fn slots64(words: &[AtomicU32]) -> Option<&[AtomicU64]> {
    #[cfg(all(target_endian = "little", not(all(test, loom))))]
    if (words.as_ptr() as usize).is_multiple_of(std::mem::align_of::<AtomicU64>()) {
        // SAFETY: the memory is 8-aligned (checked), `words.len() / 2`
        // AtomicU64s cover exactly its first `2 * (len / 2)` words, lives as
        // long as `words` does, and is only ever accessed atomically
        // (`RingStorage`'s contract); AtomicU64 has the size of two
        // AtomicU32s and no invalid bit patterns. Accesses of the two sizes
        // never overlap concurrently (see above).
        return Some(unsafe {
            std::slice::from_raw_parts(words.as_ptr().cast::<AtomicU64>(), words.len() / 2)
        });
    }
    let _ = words;
    None
}

/// Where a claim goes.
struct Placement {
    /// Slots claimed in all (skip + header + record).
    total: u32,
    /// A SKIP record of this many slots at the claim's start.
    skip: u32,
    /// The header is rewritten at slot 0.
    meta: bool,
}

/// The ring. Mirrors the 2019 `struct watch_queue` with its mapped buffer.
pub struct MmapRing<S: RingStorage> {
    /// The producers' line: the claim word and the published head.
    prod: CachePadded<Producers>,
    storage: S,
    slots: u32,
}

/// The words only producers touch, on one cache line.
struct Producers {
    /// Bits 32..64: the claim position (slots, wrapping as `head` does);
    /// bit 31: `OVERRUN` (a post was lost since the last claim); 0..31:
    /// claims in flight.
    claim: AtomicU64,
    /// The `head` last published (what a consumer's tail can be at most);
    /// on the claim word's line, which every post writes anyway.
    pub_head: AtomicU32,
}

/// One claim in flight, in the claim word.
const IN_FLIGHT: u64 = 1;
/// The claim word's count of claims in flight.
const IN_FLIGHT_MASK: u64 = (1 << 31) - 1;
/// The claim word's loss bit: a post was lost since the last claim, so the
/// next record claimed carries `WATCH_INFO_OVERRUN`. A loss sets it with
/// the CAS that confirms the claim word is current (so it is set on the
/// newest word, after every claim the loss saw); the claim that clears it
/// takes it onto its record. Losses collapse into one mark, as the 2019
/// driver's flag does.
const OVERRUN: u64 = 1 << 31;

/// The claim position of claim word `w`.
fn claim_pos(w: u64) -> u32 {
    (w >> 32) as u32
}

impl<S: RingStorage> std::fmt::Debug for MmapRing<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmapRing")
            .field("slots", &self.slots)
            .finish()
    }
}

const META: u32 = META_SLOTS as u32;

impl<S: RingStorage> MmapRing<S> {
    /// A ring over `storage`, initialised as `SET_SIZE` leaves it: the
    /// header a SKIP record over the meta slots, `head` = `tail` = 3,
    /// `mask` = slots − 1.
    ///
    /// # Errors
    /// `EINVAL`: the storage is not a power of two of at least 16 slots.
    pub fn new(storage: S) -> Result<Self> {
        let words = storage.words().len();
        if !words.is_power_of_two() || words < 32 {
            return Err(Errno::EINVAL);
        }
        let slots = (words / 2) as u32;
        let ring = MmapRing {
            storage,
            slots,
            prod: CachePadded::new(Producers {
                claim: AtomicU64::new(u64::from(META) << 32),
                pub_head: AtomicU32::new(META),
            }),
        };
        let w = ring.storage.words();
        // Each word is zeroed at the size it is used at from now on (see
        // `slots64`): the record slots (slot 0 and those past the header)
        // at 8 bytes when they have that view, the header's words at 4.
        // A 4-byte store under an 8-byte load of the same location is a
        // mixed-size access, which Miri's weak-memory emulation cannot
        // hold (and which Rust's memory model leaves undefined if it
        // races).
        // Relaxed, all: initialisation; the ring is published to
        // consumers by the caller (mmap, or sharing the value).
        match ring.slots64() {
            Some(s64) => {
                for (i, x) in s64.iter().enumerate() {
                    if i == 0 || i >= META as usize {
                        x.store(0, Ordering::Relaxed);
                    }
                }
                for x in &w[2..2 * META as usize] {
                    x.store(0, Ordering::Relaxed);
                }
            }
            None => {
                for x in w {
                    x.store(0, Ordering::Relaxed);
                }
            }
        }
        ring.mem().write_meta_header();
        w[HEAD_WORD].store(META, Ordering::Relaxed);
        w[TAIL_WORD].store(META, Ordering::Relaxed);
        w[MASK_WORD].store(slots - 1, Ordering::Relaxed);
        Ok(ring)
    }

    /// The ring's memory.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Slots in the ring (header included).
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The ring memory. Asked of the storage each time rather than kept
    /// as a pointer: a storage that owns its memory in a `Box` moves with
    /// the ring, and a pointer taken before a move is no longer valid for
    /// the Box's unique borrow (Miri's Stacked Borrows check says so).
    #[inline]
    fn words(&self) -> &[AtomicU32] {
        self.storage.words()
    }

    /// The ring memory as 8-byte slots, if it can be (see `slots64`).
    #[inline]
    fn slots64(&self) -> Option<&[AtomicU64]> {
        slots64(self.storage.words())
    }

    fn word(&self, i: u32) -> &AtomicU32 {
        // Masked: never outside the buffer whatever `i` is.
        let w = self.words();
        &w[i as usize & (w.len() - 1)]
    }

    /// The ring memory, as the producer between claim and publish sees it.
    #[inline]
    fn mem(&self) -> no_panic::Mem<'_> {
        no_panic::Mem {
            words: self.words(),
            s64: self.slots64(),
            slots: self.slots,
            #[cfg(loom)]
            storage: &self.storage,
        }
    }

    /// The shared `head` (what the consumer sees).
    pub fn head(&self) -> u32 {
        // Relaxed: a readiness hint (poll's POLLIN/POLLERR, `readable`);
        // nothing is read through it. A consumer reads the records after
        // its own Acquire load of head (`Consumer`), and a reader deciding
        // to sleep is ordered by the wait queue's fences.
        self.word(HEAD_WORD as u32).load(Ordering::Relaxed)
    }

    /// The shared `tail` (what the consumer last wrote).
    pub fn tail(&self) -> u32 {
        // ORDERING: Acquire pairs with the consumer's Release store.
        self.word(TAIL_WORD as u32).load(Ordering::Acquire)
    }

    /// Is there something for the consumer (`head != tail`)?
    pub fn readable(&self) -> bool {
        self.head() != self.tail()
    }

    /// Are `head` and `tail` inconsistent (`head − tail > slots`: poll's EPOLLERR)?
    pub fn inconsistent(&self) -> bool {
        self.head().wrapping_sub(self.tail()) > self.slots
    }

    /// `place`'s common case alone: does a record of `len` slots fit right
    /// at the producer's position `c` (not at slot 0, before the end of
    /// the buffer and before the consumer's `tail`), with `tail` valid?
    /// Exactly when `place` would say `total: len, skip: 0, meta: false`.
    #[inline]
    fn fits_here(&self, c: u32, tail: u32, len: u32) -> bool {
        let size = self.slots;
        let mask = size - 1;
        // Relaxed: as in `place`.
        let published = self.prod.pub_head.load(Ordering::Relaxed);
        let ahead = tail.wrapping_sub(published);
        let used = c.wrapping_sub(tail);
        let (h, t) = (c & mask, tail & mask);
        let end = if h < t { t } else { size };
        // Branch-free but for the answer: each test is a flag of the same
        // checks `place` makes, in its order.
        let tail_ok = (ahead == 0) | (ahead >= 1 << 31);
        let sane = (used < size) & ((t == 0) | (t >= META));
        tail_ok & sane & (h != 0) & (len <= end.wrapping_sub(h))
    }

    /// Where a record of `len` slots goes when the producer is at `c` and
    /// the consumer's tail is `tail`, or None when it is lost (the 2019
    /// checks, with the empty-at-the-wrap case that code lost fixed).
    #[inline]
    fn place(&self, c: u32, tail: u32, len: u32) -> Option<Placement> {
        let size = self.slots;
        let mask = size - 1;
        // Relaxed: a tail the consumer took from `head` is never ahead of
        // what we load here without any ordering of our own: the caller
        // Acquire-loaded that tail (the consumer's Release store, after its
        // Acquire load of `head`, after the publisher's Release store of
        // `head`, after its store of `pub_head`), so the store we need
        // happens before this load. (Weakening the Acquire it had was
        // caught by no model: scripts/loom-weaken.py, issue 19.)
        let published = self.prod.pub_head.load(Ordering::Relaxed);
        let ahead = tail.wrapping_sub(published);
        if ahead != 0 && ahead < 1 << 31 {
            return None; // tail beyond head
        }
        let used = c.wrapping_sub(tail);
        let t = tail & mask;
        if used >= size || (t != 0 && t < META) {
            return None; // full, or inconsistent
        }
        let h = c & mask;
        // The common case: the record fits where the producer is, before
        // the end of the buffer and (when the free space is [h, t)) before
        // the tail. h == t only when the ring is empty (used < size).
        let end = if h < t { t } else { size };
        if h != 0 && len <= end - h {
            return Some(Placement {
                total: len,
                skip: 0,
                meta: false,
            });
        }
        // Packed into one word, which comes back in registers.
        Self::place_at_edge(size, h, t, used, len).map(|w| Placement {
            total: w as u32,
            skip: (w >> 32) as u32 & !(1 << 31),
            meta: w >> 63 != 0,
        })
    }

    /// `place` where the record does not simply fit at `h`: at slot 0
    /// (the header first), around the wrap, or not at all.
    #[inline(never)]
    fn place_at_edge(size: u32, h: u32, t: u32, used: u32, len: u32) -> Option<u64> {
        let fits_before_tail = |from: u32, n: u32| t >= from && n <= t - from;
        // total | skip << 32 | meta << 63 (`place` unpacks it).
        let pack = |total: u32, skip: u32, meta: bool| {
            u64::from(total) | u64::from(skip) << 32 | u64::from(meta) << 63
        };
        if used == 0 || h > t {
            // Free: [h, size) and, after the wrap, [META, t).
            if h == 0 {
                return (META + len <= size).then(|| pack(META + len, 0, true));
            }
            if len <= size - h {
                return Some(pack(len, 0, false));
            }
            let skip = size - h;
            return fits_before_tail(META, len).then(|| pack(skip + META + len, skip, true));
        }
        // h < t: free is [h, t).
        if h == 0 {
            return fits_before_tail(META, len).then(|| pack(META + len, 0, true));
        }
        fits_before_tail(h, len).then(|| pack(len, 0, false))
    }

    /// Posts one record (8..=504 bytes, its own length field first) and
    /// publishes it. Never blocks and never waits.
    ///
    /// Mirrors `post_one_notification()` of the June 2019 driver: a record
    /// that does not fit (or a ring whose tail fails validation) is lost and
    /// the next record posted carries `WATCH_INFO_OVERRUN`.
    #[inline]
    pub fn try_post(&self, rec: &[u8]) -> PostOutcome {
        if !valid_record(rec) {
            return PostOutcome::Lost;
        }
        let len = (rec.len() / WATCH_LENGTH_GRANULARITY) as u32;
        // The memory, asked of the storage before the claim.
        let mem = self.mem();
        // Relaxed: only seeds the CAS below (which acquires); what the
        // claimer needs of the slots' previous use it acquires through
        // `tail` in `place`.
        let w = self.prod.claim.load(Ordering::Relaxed);
        // The common case straight through: no loss mark to take, room
        // right where the producer is (no wrap, no header rewrite), and
        // the claim goes through at the first try. Anything else, and a
        // claim CAS that fails, is `post_contended`'s, which looks at the
        // ring afresh: this path only ever posts where it would have.
        if w & OVERRUN == 0 {
            let c = claim_pos(w);
            if self.fits_here(c, self.tail(), len) {
                let next =
                    (u64::from(c.wrapping_add(len)) << 32) | ((w & IN_FLIGHT_MASK) + IN_FLIGHT);
                // ORDERING: as the claim in `post_contended`.
                if self
                    .prod
                    .claim
                    .compare_exchange(w, next, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    // Claimed: see `post_contended`.
                    no_panic::write_and_publish(
                        &self.prod.claim,
                        &self.prod.pub_head,
                        mem,
                        next,
                        c,
                        rec,
                    );
                    return PostOutcome::Posted;
                }
            }
        }
        self.post_contended(rec, len)
    }

    /// `try_post` past its common case: a loss mark to take, a ring that
    /// looks full, or a claim that met another producer's.
    #[inline(never)]
    fn post_contended(&self, rec: &[u8], len: u32) -> PostOutcome {
        // The memory, asked of the storage before the claim.
        let mem = self.mem();
        // Relaxed: as in `try_post`.
        let mut w = self.prod.claim.load(Ordering::Relaxed);
        let (c, p, overrun) = loop {
            let c = claim_pos(w);
            let Some(p) = self.place(c, self.tail(), len) else {
                // A claim word loaded before another producer's claim, with
                // a tail newer than it, looks full or inconsistent. Confirm
                // it is current before losing the record, and mark the
                // loss on it: a CAS succeeds only on the newest value.
                // Relaxed: the bit carries no data (the record it lands on
                // is published as any other); failure: look again.
                if w & OVERRUN == 0 {
                    if let Err(now) = self.prod.claim.compare_exchange(
                        w,
                        w | OVERRUN,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        w = now;
                        continue;
                    }
                } else if let Err(now) =
                    // Marked already: this loss collapses into that mark,
                    // once the word is confirmed current.
                    self.prod.claim.compare_exchange(
                        w,
                        w,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                {
                    w = now;
                    continue;
                }
                return PostOutcome::Lost;
            };
            // The claim counts itself in flight and takes the loss bit.
            let next =
                (u64::from(c.wrapping_add(p.total)) << 32) | ((w & IN_FLIGHT_MASK) + IN_FLIGHT);
            // ORDERING: Acquire pairs with the Release finishes of the claims
            // before ours (every change of the claim word is an RMW, so they
            // form one release sequence that this CAS reads the end of): if
            // we end up publishing, their words are visible to us, and so,
            // through our Release head store, to the consumer. The claim's
            // atomicity is what makes the slots ours. Relaxed on failure:
            // the value only seeds the next try.
            match self.prod.claim.compare_exchange_weak(
                w,
                next,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let overrun = w & OVERRUN != 0;
                    w = next;
                    break (c, p, overrun);
                }
                Err(now) => w = now,
            }
        };
        // Claimed: from here to the publish nothing can panic (see
        // `no_panic`), or every later record would wait behind ours.
        no_panic::fill_and_publish(
            &self.prod.claim,
            &self.prod.pub_head,
            mem,
            w,
            c,
            p,
            rec,
            overrun,
        );
        PostOutcome::Posted
    }
}

/// What runs between a producer's claim and its count-out, and nothing
/// else.
///
/// A producer that stopped in between would wedge the ring: its claim
/// stays in flight in the claim word, so no later finisher is ever alone
/// to publish `head`, and the consumer sees nothing more, ever. So nothing
/// here can panic: no indexing (`get`, whose `None` cannot happen since
/// every index is masked into the slice's length, and would only skip a
/// word), no arithmetic that can overflow (wrapping operations only), no
/// allocation, no assertion, no call into the storage (its memory was
/// asked for before the claim: a `RingStorage` is the caller's code) or
/// any other user code. The lints below (denied, so `cargo clippy -- -D
/// warnings` fails on a regression) check the first two; the rest is this
/// module's whole text. Under loom, the shadow cells' bookkeeping
/// (`note_write`) is the model's, not the product's.
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
    use super::{claim_pos, Placement, IN_FLIGHT, IN_FLIGHT_MASK, META};
    use crate::sync::{AtomicU32, AtomicU64, Ordering};
    use crate::uapi::v2::*;

    /// The ring memory as the producer writes it.
    pub(super) struct Mem<'a> {
        pub(super) words: &'a [AtomicU32],
        /// The same memory as 8-byte slots, when it can be (`slots64`).
        pub(super) s64: Option<&'a [AtomicU64]>,
        pub(super) slots: u32,
        #[cfg(loom)]
        pub(super) storage: &'a dyn super::RingStorage,
    }

    impl Mem<'_> {
        /// Word `i`, masked into the buffer.
        #[inline]
        fn word(&self, i: u32) -> Option<&AtomicU32> {
            self.words
                .get(i as usize & self.words.len().wrapping_sub(1))
        }

        /// Stores `v` in word `i` (masked).
        #[inline]
        fn store_word(&self, i: u32, v: u32, order: Ordering) {
            if let Some(x) = self.word(i) {
                x.store(v, order);
            }
        }

        /// Stores `v` in 8-byte slot `i` (masked) of `s64`.
        #[inline]
        fn store_slot64(s64: &[AtomicU64], i: usize, v: u64) {
            // Relaxed: published by the finish (Release) and the head
            // store (Release).
            if let Some(x) = s64.get(i & s64.len().wrapping_sub(1)) {
                x.store(v, Ordering::Relaxed);
            }
        }

        #[inline]
        pub(super) fn write_slot(&self, slot: u32, lo: u32, hi: u32) {
            let s = slot & self.slots.wrapping_sub(1);
            #[cfg(loom)]
            self.storage.note_write(s as usize);
            if let Some(s64) = self.s64 {
                Self::store_slot64(s64, s as usize, u64::from(lo) | u64::from(hi) << 32);
                return;
            }
            // Relaxed: as `store_slot64`.
            self.store_word(s.wrapping_mul(2), lo, Ordering::Relaxed);
            self.store_word(s.wrapping_mul(2).wrapping_add(1), hi, Ordering::Relaxed);
        }

        #[inline]
        pub(super) fn write_meta_header(&self) {
            self.write_slot(
                0,
                u32::from(WATCH_META_SKIP_NOTIFICATION) << 24,
                META.wrapping_mul(8),
            );
            // Relaxed: as `write_slot`.
            self.store_word(
                MASK_WORD as u32,
                self.slots.wrapping_sub(1),
                Ordering::Relaxed,
            );
        }

        /// Writes `rec`'s words from slot `at` on (WATCH_INFO_OVERRUN
        /// added to its info word if `overrun`).
        #[inline]
        fn write_record(&self, at: u32, rec: &[u8], overrun: bool) {
            let at = at & self.slots.wrapping_sub(1);
            #[cfg(loom)]
            for k in 0..(rec.len() / WATCH_LENGTH_GRANULARITY) as u32 {
                self.storage
                    .note_write((at.wrapping_add(k) & self.slots.wrapping_sub(1)) as usize);
            }
            if let Some(s64) = self.s64 {
                // A record never reaches past the end of the buffer (the
                // claim placed it so): its slots are one run of `s64`.
                let run = (at as usize)..(at as usize).wrapping_add(rec.len() / 8);
                if let Some(dst) = s64.get(run) {
                    for (k, (x, b)) in dst.iter().zip(rec.chunks_exact(8)).enumerate() {
                        // A chunk is 8 bytes: the default never happens.
                        let mut v = u64::from_le_bytes(b.try_into().unwrap_or_default());
                        if k == 0 && overrun {
                            v |= u64::from(WATCH_INFO_OVERRUN) << 32;
                        }
                        // Relaxed: as `store_slot64`.
                        x.store(v, Ordering::Relaxed);
                    }
                    return;
                }
                for (k, b) in rec.chunks_exact(8).enumerate() {
                    // A chunk is 8 bytes: the default never happens.
                    let mut v = u64::from_le_bytes(b.try_into().unwrap_or_default());
                    if k == 0 && overrun {
                        v |= u64::from(WATCH_INFO_OVERRUN) << 32;
                    }
                    Self::store_slot64(s64, (at as usize).wrapping_add(k), v);
                }
                return;
            }
            let base = at.wrapping_mul(2);
            for (k, b) in rec.chunks_exact(4).enumerate() {
                // A chunk is 4 bytes: the default never happens.
                let mut v = u32::from_le_bytes(b.try_into().unwrap_or_default());
                if k == 1 && overrun {
                    v |= WATCH_INFO_OVERRUN;
                }
                // Relaxed: published by the finish (Release) and the head
                // store (Release).
                self.store_word(base.wrapping_add(k as u32), v, Ordering::Relaxed);
            }
        }
    }

    /// Fills the claim (a SKIP record, the header again after a wrap, the
    /// record) and counts it out, publishing if it is the last in flight.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn fill_and_publish(
        claim: &AtomicU64,
        pub_head: &AtomicU32,
        mem: Mem<'_>,
        w: u64,
        c: u32,
        p: Placement,
        rec: &[u8],
        overrun: bool,
    ) {
        let mut at = c;
        if p.skip > 0 {
            mem.write_slot(
                at,
                u32::from(WATCH_META_SKIP_NOTIFICATION) << 24,
                p.skip.wrapping_mul(8),
            );
            at = at.wrapping_add(p.skip);
        }
        if p.meta {
            mem.write_meta_header();
            at = at.wrapping_add(META);
        }
        mem.write_record(at, rec, overrun);
        finish(claim, pub_head, &mem, w);
    }

    /// `fill_and_publish` for a claim of just the record, at `c`, where
    /// it does not reach the end of the buffer (`MmapRing::fits_here`),
    /// with no loss mark to add.
    #[inline]
    pub(super) fn write_and_publish(
        claim: &AtomicU64,
        pub_head: &AtomicU32,
        mem: Mem<'_>,
        w: u64,
        c: u32,
        rec: &[u8],
    ) {
        mem.write_record(c, rec, false);
        finish(claim, pub_head, &mem, w);
    }

    /// Counts this producer's claim out; if it is the only claim in
    /// flight, first publishes every slot claimed (they are all written:
    /// every other claim finished).
    ///
    /// `w` is the claim word as our claim left it: if nothing changed
    /// since, the first CAS succeeds without a load. If we are alone in
    /// it, nothing else is in flight, so no other producer's words are to
    /// be acquired.
    #[inline]
    fn finish(claim: &AtomicU64, pub_head: &AtomicU32, mem: &Mem<'_>, mut w: u64) {
        loop {
            if w & IN_FLIGHT_MASK == 1 {
                // Alone: everything below the claim position is written.
                let h = claim_pos(w);
                // Relaxed: ordered for `place` by the Release head store
                // below and the consumer's tail (see `place`); publishers
                // follow each other through the claim word.
                pub_head.store(h, Ordering::Relaxed);
                // ORDERING: Release: the records' words before head covers
                // them; pairs with the consumer's Acquire load of head.
                mem.store_word(HEAD_WORD as u32, h, Ordering::Release);
            }
            // ORDERING: Release: our words before our count-out, for the
            // publisher that sees it; Acquire on failure pairs with the
            // Release finishes of the claims before ours: seen counted out,
            // their words are visible to us, and so (through our Release
            // head store) to the consumer. Every change of the claim word
            // is an RMW, so the finishes form one release sequence that the
            // failure reads the end of. A failure means a claim or a finish
            // came between: look again (alone no longer, or newly alone).
            match claim.compare_exchange_weak(
                w,
                w.wrapping_sub(IN_FLIGHT),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => w = now,
            }
        }
    }
}

/// A consumer of a ring: the protocol of spec §2.4 over any mapping of it
/// (this process's [`MmapRing`] storage, or another process's `mmap` of the
/// shared fd).
pub struct Consumer<'a> {
    words: &'a [AtomicU32],
    /// The same memory as 8-byte slots, when it can be (see `slots64`).
    slots64: Option<&'a [AtomicU64]>,
    mask: u32,
    /// The `head` last loaded (see `next`).
    head: u32,
    #[cfg(loom)]
    storage: Option<&'a dyn RingStorage>,
}

/// A record read by a [`Consumer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingRecord {
    /// The record's bytes (its length field long).
    pub bytes: Vec<u8>,
}

impl RingRecord {
    /// The record's `info` word.
    pub fn info(&self) -> u32 {
        u32::from_le_bytes([self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]])
    }

    /// The 24-bit type.
    pub fn type_(&self) -> u32 {
        u32::from_le_bytes([self.bytes[0], self.bytes[1], self.bytes[2], 0])
    }

    /// The subtype.
    pub fn subtype(&self) -> u8 {
        self.bytes[3]
    }

    /// `WATCH_INFO_OVERRUN`: records were lost before this one.
    pub fn overrun(&self) -> bool {
        self.info() & WATCH_INFO_OVERRUN != 0
    }

    /// The watch tag (top byte of `info`).
    pub fn tag(&self) -> u8 {
        (self.info() >> WATCH_INFO_ID__SHIFT) as u8
    }
}

impl<'a> Consumer<'a> {
    /// A consumer over ring memory `words`.
    ///
    /// # Errors
    /// `EINVAL`: not a power of two of at least 16 slots.
    pub fn new(words: &'a [AtomicU32]) -> Result<Self> {
        if !words.len().is_power_of_two() || words.len() < 32 {
            return Err(Errno::EINVAL);
        }
        Ok(Consumer {
            words,
            slots64: slots64(words),
            mask: (words.len() / 2) as u32 - 1,
            // Relaxed: a start for `next`'s cache, which is used only once
            // a later Acquire load has refreshed it (tail is at it, so it
            // is not ahead of tail).
            head: words[TAIL_WORD].load(Ordering::Relaxed),
            #[cfg(loom)]
            storage: None,
        })
    }

    /// A consumer of `storage`'s ring (under loom, its reads are checked
    /// against the producers' writes).
    ///
    /// # Errors
    /// As [`Consumer::new`].
    pub fn of<S: RingStorage>(storage: &'a S) -> Result<Self> {
        #[allow(unused_mut)]
        let mut c = Self::new(storage.words())?;
        #[cfg(loom)]
        {
            c.storage = Some(storage);
        }
        Ok(c)
    }

    #[inline]
    fn word(&self, i: u32) -> u32 {
        // Relaxed: record words; ordered by the Acquire load of head.
        self.words[i as usize & (self.words.len() - 1)].load(Ordering::Relaxed)
    }

    /// Is a record (or padding) waiting?
    pub fn available(&self) -> bool {
        // Relaxed: a hint; `pop`/`read`/`drain` load head again with
        // Acquire before reading what it covers.
        let head = self.words[HEAD_WORD].load(Ordering::Relaxed);
        // Relaxed: our own store.
        head != self.words[TAIL_WORD].load(Ordering::Relaxed)
    }

    /// The next record, skipping SKIP padding, or None when `tail` has
    /// reached `head`. Advances `tail` (Release) past what it read.
    ///
    /// # Errors
    /// `EIO`: a record with a zero length (corruption; tail is left there).
    pub fn pop(&mut self) -> Result<Option<RingRecord>> {
        Ok(self
            .next(|c, s, slots| {
                let mut bytes = vec![0; slots as usize * 8];
                c.words_into(s, slots, &mut bytes);
                Some(bytes)
            })?
            .map(|bytes| RingRecord { bytes }))
    }

    /// As [`Consumer::pop`], copying the record into `buf` instead of
    /// allocating: its length, or None when the ring is empty. A record
    /// longer than `buf` stays in the ring.
    ///
    /// # Errors
    /// `EIO` as [`Consumer::pop`]; `ENOBUFS`: the record does not fit `buf`.
    #[inline]
    pub fn pop_into(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        self.pop_into_walk(buf)
    }

    /// `pop_into` past padding, a record that does not fit, or corruption.
    #[inline]
    fn pop_into_walk(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        let mut fits = true;
        let len = self.next(|c, s, slots| {
            let n = slots as usize * 8;
            if n > buf.len() {
                fits = false;
                return None;
            }
            c.words_into(s, slots, buf);
            Some(n)
        })?;
        if !fits {
            return Err(Errno::ENOBUFS);
        }
        Ok(len)
    }

    /// The record at slot `s`: its length in slots and whether it is SKIP
    /// padding; None for a zero length (corruption).
    #[inline]
    fn header(&self, s: u32) -> Option<(u32, bool)> {
        let (w0, info) = self.slot(s);
        let slots = (info & WATCH_INFO_LENGTH) >> WATCH_LENGTH_SHIFT;
        let skip =
            w0 & 0x00ff_ffff == WATCH_TYPE_META && (w0 >> 24) as u8 == WATCH_META_SKIP_NOTIFICATION;
        (slots != 0).then_some((slots, skip))
    }

    /// Slot `s`'s two words.
    #[inline]
    fn slot(&self, s: u32) -> (u32, u32) {
        if let Some(s64) = self.slots64 {
            // Relaxed: record words; ordered by the Acquire load of head.
            let v = s64[(s & self.mask) as usize].load(Ordering::Relaxed);
            return (v as u32, (v >> 32) as u32);
        }
        (self.word(2 * s), self.word(2 * s + 1))
    }

    /// Copies the words of the `slots` slots from slot `s` into `buf`.
    #[inline]
    fn words_into(&self, s: u32, slots: u32, buf: &mut [u8]) {
        let out = &mut buf[..8 * slots as usize];
        if let Some(s64) = self.slots64 {
            // A record the producer wrote is one run of slots (it never
            // reaches past the end of the buffer); a corrupt length that
            // does is read around the end, as the masked loop below does.
            if let Some(src) = s64.get(s as usize..s as usize + slots as usize) {
                for (out, x) in out.chunks_exact_mut(8).zip(src) {
                    // Relaxed: record words; ordered by the Acquire load of head.
                    out.copy_from_slice(&x.load(Ordering::Relaxed).to_le_bytes());
                }
                return;
            }
            let mask = s64.len() - 1;
            for (k, out) in out.chunks_exact_mut(8).enumerate() {
                // Relaxed: record words; ordered by the Acquire load of head.
                let v = s64[(s as usize + k) & mask].load(Ordering::Relaxed);
                out.copy_from_slice(&v.to_le_bytes());
            }
            return;
        }
        let base = 2 * s as usize;
        let mask = self.words.len() - 1;
        for (k, out) in out.chunks_exact_mut(4).enumerate() {
            // Relaxed: record words; ordered by the Acquire load of head.
            out.copy_from_slice(
                &self.words[(base + k) & mask]
                    .load(Ordering::Relaxed)
                    .to_le_bytes(),
            );
        }
    }

    /// Consumes every record published when it starts, as the 2019
    /// sample consumer does: one load of `head`, each record's words copied
    /// into `buf` and handed to `each`, one store of `tail` at the end (so
    /// the producers' line is touched once per batch, not once per record).
    /// Returns the number of records. A record longer than `buf` ends the
    /// batch there and stays in the ring.
    ///
    /// # Errors
    /// `EIO` as [`Consumer::pop`] (the records before it are consumed).
    pub fn drain(&mut self, buf: &mut [u8], mut each: impl FnMut(&[u8])) -> Result<usize> {
        let mut n = 0;
        let end = self.batch(|c, s, slots| {
            let len = slots as usize * 8;
            if len > buf.len() {
                return false;
            }
            c.words_into(s, slots, buf);
            each(&buf[..len]);
            n += 1;
            true
        });
        end.map(|()| n)
    }

    /// A read()-sized batch: copies every whole record published when it
    /// starts that fits in `buf`, back to back, as a notification pipe's
    /// read() does, with one load of `head` and one store of `tail`.
    /// Returns the bytes copied (0: the ring is empty). A record that does
    /// not fit ends the batch and stays in the ring.
    ///
    /// # Errors
    /// - `ENOBUFS`: the first record does not fit `buf` (as read() on a
    ///   notification pipe).
    /// - `EIO` as [`Consumer::pop`], if it is the first record (otherwise
    ///   the records before it are returned and the next call reports it).
    #[inline]
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut ret = 0;
        let mut too_big = false;
        let end = self.batch(|c, s, slots| {
            let len = slots as usize * 8;
            if len > buf.len() - ret {
                too_big = true;
                return false;
            }
            c.words_into(s, slots, &mut buf[ret..]);
            ret += len;
            true
        });
        match (ret, end) {
            (0, Err(e)) => Err(e),
            (0, Ok(())) if too_big => Err(Errno::ENOBUFS),
            (n, _) => Ok(n),
        }
    }

    /// Walks the records from `tail` to the `head` loaded once at the
    /// start, skipping SKIP padding, handing each to `take` until it
    /// declines (false), and stores `tail` once, past what was taken.
    /// Err(EIO) if a zero-length record stopped the walk.
    #[inline]
    fn batch(&mut self, mut take: impl FnMut(&Self, u32, u32) -> bool) -> Result<()> {
        // ORDERING: Acquire pairs with the producer's Release head store:
        // the record words below head are complete.
        let head = self.words[HEAD_WORD].load(Ordering::Acquire);
        self.head = head;
        // Relaxed: the consumer owns tail.
        let start = self.words[TAIL_WORD].load(Ordering::Relaxed);
        let mut tail = start;
        let mut result = Ok(());
        while tail != head {
            let s = tail & self.mask;
            let Some((slots, skip)) = self.header(s) else {
                result = Err(Errno::EIO);
                break;
            };
            if !skip {
                #[cfg(loom)]
                if let Some(st) = self.storage {
                    for k in 0..slots {
                        st.note_read(((s + k) & self.mask) as usize);
                    }
                }
                if !take(self, s, slots) {
                    break;
                }
            }
            tail = tail.wrapping_add(slots);
        }
        if tail != start {
            // ORDERING: Release: our reads of the records happen before a
            // producer that Acquire-loads this tail reuses their slots.
            self.words[TAIL_WORD].store(tail, Ordering::Release);
        }
        result
    }

    /// Walks from `tail` to `head`, skipping SKIP padding, and hands the
    /// first record's words to `take`; advances `tail` past it unless `take`
    /// declines (None). None when the ring is empty.
    #[inline]
    fn next<R>(&mut self, mut take: impl FnMut(&Self, u32, u32) -> Option<R>) -> Result<Option<R>> {
        // Relaxed: the consumer owns tail.
        let mut tail = self.words[TAIL_WORD].load(Ordering::Relaxed);
        // The head this consumer last loaded, while it is ahead of tail by
        // at most a ring: the records below it were complete when it was
        // loaded (Acquire), and still are (a producer reuses their slots
        // only after our tail passes them). So a consumer that is behind
        // does not read the line the producer writes `head` in for every
        // record, only its own `tail` store goes there. A walk that
        // reaches it loads `head` again before it says the ring is empty.
        let mut head = self.head;
        let mut fresh = head.wrapping_sub(tail).wrapping_sub(1) > self.mask;
        loop {
            if fresh {
                // ORDERING: Acquire pairs with the producer's Release head
                // store: the record words below head are complete.
                head = self.words[HEAD_WORD].load(Ordering::Acquire);
                self.head = head;
            }
            if tail == head {
                if fresh {
                    return Ok(None);
                }
                fresh = true;
                continue;
            }
            fresh = false;
            let s = tail & self.mask;
            let (slots, skip) = self.header(s).ok_or(Errno::EIO)?;
            let got = if skip {
                None
            } else {
                #[cfg(loom)]
                if let Some(st) = self.storage {
                    for k in 0..slots {
                        st.note_read(((s + k) & self.mask) as usize);
                    }
                }
                match take(self, s, slots) {
                    Some(r) => Some(r),
                    None => return Ok(None),
                }
            };
            tail = tail.wrapping_add(slots);
            // ORDERING: Release: our reads of the record happen before a
            // producer that Acquire-loads this tail reuses its slots.
            self.words[TAIL_WORD].store(tail, Ordering::Release);
            if got.is_some() {
                return Ok(got);
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A v2 record of `slots` slots whose payload words carry `id`.
    pub(super) fn rec(id: u32, slots: u32) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&WATCH_TYPE_KEY_NOTIFY.to_le_bytes());
        r.extend_from_slice(&(slots * 8).to_le_bytes());
        for _ in 1..slots {
            r.extend_from_slice(&id.to_le_bytes());
            r.extend_from_slice(&id.to_le_bytes());
        }
        r
    }

    fn ring(bytes: usize) -> MmapRing<HeapStorage> {
        MmapRing::new(HeapStorage::new(bytes).unwrap()).unwrap()
    }

    #[test]
    fn mmap_ring_initial_state() {
        let r = ring(4096);
        let w = r.storage().words();
        let v: Vec<u32> = w[..6].iter().map(|x| x.load(Ordering::Relaxed)).collect();
        assert_eq!(v, [0, 24, 3, 3, 511, 0]);
        assert!(!r.readable());
    }

    #[test]
    fn mmap_ring_posts_wrap_with_skip_and_overrun() {
        let r = ring(128); // 16 slots, records in 3..16
        let mut c = Consumer::new(r.storage().words()).unwrap();
        // 13 free slots: 4 records of 3 slots fit (12), the 5th is lost.
        for i in 0..4 {
            assert_eq!(r.try_post(&rec(i, 3)), PostOutcome::Posted);
        }
        assert_eq!(r.try_post(&rec(9, 3)), PostOutcome::Lost);
        assert_eq!(c.pop().unwrap().unwrap().bytes, rec(0, 3));
        assert_eq!(c.pop().unwrap().unwrap().bytes, rec(1, 3));
        // Head is at 15: one slot to the end; a 3-slot record wraps with a
        // 1-slot SKIP, rewrites the header, and lands at slot 3.
        assert_eq!(r.try_post(&rec(4, 3)), PostOutcome::Posted);
        assert_eq!(r.head(), 15 + 1 + 3 + 3);
        let got: Vec<RingRecord> = std::iter::from_fn(|| c.pop().unwrap()).collect();
        assert_eq!(got.len(), 3);
        assert!(!got[0].overrun() && !got[1].overrun());
        assert!(
            got[2].overrun(),
            "the record after the loss carries OVERRUN"
        );
        assert_eq!(got[2].bytes[8..], rec(4, 3)[8..]);
    }

    #[test]
    fn mmap_ring_garbage_tail_loses_until_sane() {
        let r = ring(128);
        r.try_post(&rec(1, 2));
        let w = r.storage().words();
        let sane = w[TAIL_WORD].load(Ordering::Relaxed);
        for bad in [r.head() + 1, r.head().wrapping_sub(16), 1, 2, 0x8000_0000] {
            w[TAIL_WORD].store(bad, Ordering::Relaxed);
            assert_eq!(r.try_post(&rec(2, 2)), PostOutcome::Lost, "tail {bad:#x}");
        }
        w[TAIL_WORD].store(sane, Ordering::Relaxed);
        assert_eq!(r.try_post(&rec(3, 2)), PostOutcome::Posted);
        let mut c = Consumer::new(w).unwrap();
        assert_eq!(c.pop().unwrap().unwrap().bytes, rec(1, 2));
        let next = c.pop().unwrap().unwrap();
        assert!(next.overrun());
    }

    /// Two producers and the consumer on their own threads over a
    /// 16-slot ring (wrap, SKIP records, slot reuse, losses): every
    /// record whole, each producer's in order, delivered + lost = posted,
    /// the record after a loss marked OVERRUN. Few posts under Miri.
    #[test]
    fn mmap_ring_threads_two_producers_and_consumer() {
        let posts: u32 = if cfg!(miri) { 30 } else { 20_000 };
        let r = ring(128);
        let done = AtomicU32::new(0);
        // All three start together, and the producers yield now and then,
        // so posts and pops overlap (a producer done before the consumer
        // starts is ordered before it by `done`, and races nothing).
        let start = std::sync::Barrier::new(3);
        std::thread::scope(|s| {
            let producers: Vec<_> = (0..2u32)
                .map(|p| {
                    let (r, done, start) = (&r, &done, &start);
                    s.spawn(move || {
                        start.wait();
                        let mut lost = 0;
                        for i in 0..posts {
                            // Producer p's records are 2 or 3 slots, id = p << 24 | i.
                            if r.try_post(&rec(p << 24 | i, 2 + p)) == PostOutcome::Lost {
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
            let mut c = Consumer::of(r.storage()).unwrap();
            start.wait();
            let (mut next, mut delivered, mut overruns) = ([0u32; 2], 0u32, 0u32);
            loop {
                let finished = done.load(Ordering::Acquire) == 2;
                match c.pop().unwrap() {
                    Some(got) => {
                        let id = u32::from_le_bytes(got.bytes[8..12].try_into().unwrap());
                        let p = (id >> 24) as usize;
                        assert_eq!(got.bytes[8..], rec(id, 2 + p as u32)[8..], "a torn record");
                        assert!(id & 0xff_ffff >= next[p], "producer {p} out of order");
                        next[p] = (id & 0xff_ffff) + 1;
                        delivered += 1;
                        overruns += u32::from(got.overrun());
                    }
                    None if finished => break,
                    None => std::thread::yield_now(),
                }
            }
            let lost: u32 = producers.into_iter().map(|p| p.join().unwrap()).sum();
            assert_eq!(delivered + lost, 2 * posts);
            assert!(overruns <= lost);
        });
    }

    #[test]
    fn mmap_ring_rejects_bad_records() {
        let r = ring(128);
        assert_eq!(r.try_post(&[0; 7]), PostOutcome::Lost);
        let mut bad = rec(1, 2);
        bad[4] = 24; // length field says 3 slots
        assert_eq!(r.try_post(&bad), PostOutcome::Lost);
        assert!(HeapStorage::new(100).is_err());
    }
}

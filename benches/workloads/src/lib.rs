//! The workloads of watchq's benchmarks, with the peers people would
//! otherwise use, shared by the criterion benches (`cargo bench`) and
//! `watchq bench`, so both measure exactly the same work.
//!
//! Every workload takes a number of records (iterations) and returns the
//! time they took (criterion's `iter_custom` shape); threads are started
//! outside the timed part where the workload allows it, and joined after.
//!
//! Peers move the same bytes: a record of `len` bytes for watchq, a
//! `[u8; N]` with `N` = `len` rounded up to 8 (16, 24, 32, 64, 128, 256,
//! 504) for crossbeam's `ArrayQueue` and rtrb, `len` bytes per
//! `write(2)`/`read(2)` for a real pipe. All are reached through the same
//! `dyn` endpoints, so the call overhead is the same for everyone. A
//! queue holds [`CAPACITY`] records (the most a notification pipe can be
//! sized to) unless a workload says otherwise; the 2019 ring gets the
//! power-of-two number of pages (at least one) holding that many records.
//!
//! The consumer takes records in one of two [`Mode`]s, each peer in its
//! best way of doing the job: one record per call (a pop; a read(2) of one
//! record's bytes), or read()-sized batches (every whole record that fits
//! a 4096-byte buffer: watchq's batch read, rtrb's `read_chunk`,
//! `ArrayQueue::pop` in a loop, one read(2) of 4096 bytes).
//!
//! Modules: [`post`] (the post path: fan-out and watch lists),
//! [`syscall`] (the emulated read() and the blocking reader), [`suite`]
//! (`watchq bench`: the plan, the alternating rounds, the ratio table and
//! the report) and [`plot`] (its SVG plots).

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::hint::spin_loop;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};
use watchq_core::ring::mmap::{Consumer, HeapStorage, MmapRing};
use watchq_core::ring::pipe::{PipeReader, PipeRing, Pop};
use watchq_core::{Notification, PostOutcome};

pub mod plot;
pub mod post;
pub mod suite;
pub mod syscall;

pub use post::{fanout, fanout_array_queues, watchers_elsewhere, Fanout, Watchers};
pub use suite::{run_suite, Case, Suite, Target, TARGETS};
pub use syscall::{
    emulated_read, emulated_read_batch, real_pipe_read, real_pipe_read_batch, wakeups, Wakeups,
};

/// Record sizes of the criterion ring benches: a key record, a block
/// record, the largest record a note holds (127 bytes: the length field
/// has 7 bits; the peers and the 2019 ring move 128).
pub const SIZES: [usize; 3] = [16, 24, 127];

/// Records every queue holds unless a workload says otherwise.
pub const CAPACITY: usize = 512;

/// The buffer of a read()-sized batch.
pub const READ_BUF: usize = 4096;

/// How the consumer takes records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One record per call.
    PerRecord,
    /// Every whole record that fits [`READ_BUF`] bytes, per call.
    Batch,
}

/// A queue implementation in a benchmark group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// watchq's merged-design ring (`PipeRing`).
    PipeRing,
    /// watchq's 2019 ring (`MmapRing` with its consumer protocol).
    MmapRing,
    /// crossbeam-queue's `ArrayQueue`.
    ArrayQueue,
    /// rtrb's single-producer, single-consumer ring.
    Rtrb,
    /// A real pipe(2): one write(2) per message; one read(2) per message
    /// or per 4096 bytes.
    Pipe,
    /// A floor, not a queue anyone would pick: a single-producer ring
    /// with per-slot stamps and a cached consumer index, written here,
    /// with `0`, `1` or `2` locked read-modify-writes per push on a line
    /// only the producer touches ([`FloorRing`]); with [`FLOOR_SPLIT`]
    /// added, the stamps are in an array of their own, apart from the
    /// records (the pipe ring's layout: two lines per record). With 1 it is the least any ring whose
    /// producers claim by a CAS can cost (the pipe ring's shape); with 2,
    /// a claim and a finish (the 2019 ring's).
    Floor(u8),
    /// A prototype of the pipe ring with each stamp beside its record
    /// ([`InlineRing`]), any number of producers.
    PipeInline(bool),
}

impl Peer {
    /// Every peer.
    pub const ALL: [Peer; 5] = [
        Peer::PipeRing,
        Peer::MmapRing,
        Peer::ArrayQueue,
        Peer::Rtrb,
        Peer::Pipe,
    ];

    /// The prototypes of the pipe ring with stamps beside the records.
    pub const PROTOS: [Peer; 2] = [Peer::PipeInline(false), Peer::PipeInline(true)];

    /// The floors: [`Peer::Floor`] with 0, 1 and 2 read-modify-writes.
    pub const FLOORS: [Peer; 4] = [
        Peer::Floor(0),
        Peer::Floor(1),
        Peer::Floor(2),
        Peer::Floor(1 | FLOOR_SPLIT),
    ];

    /// The name used in benchmark ids and reports.
    pub fn name(self) -> &'static str {
        match self {
            Peer::PipeRing => "watchq_pipe_ring",
            Peer::MmapRing => "watchq_mmap_ring",
            Peer::ArrayQueue => "crossbeam_array_queue",
            Peer::Rtrb => "rtrb",
            Peer::Pipe => "pipe(2)",
            Peer::Floor(0) => "floor_spsc",
            Peer::Floor(1) => "floor_spsc_1rmw",
            Peer::Floor(2) => "floor_spsc_2rmw",
            Peer::Floor(_) => "floor_spsc_1rmw_split",
            Peer::PipeInline(false) => "proto_pipe_inline",
            Peer::PipeInline(true) => "proto_pipe_inline_raw",
        }
    }

    /// Is this one of watchq's rings?
    pub fn is_watchq(self) -> bool {
        matches!(self, Peer::PipeRing | Peer::MmapRing)
    }

    /// Can this peer carry `len`-byte records from `producers` producers?
    /// (A note holds 127 bytes, a 2019 record 504; rtrb has one producer.)
    pub fn carries(self, len: usize, producers: usize) -> bool {
        match self {
            Peer::PipeRing | Peer::PipeInline(_) => len <= 127,
            Peer::MmapRing => padded(len) <= 504,
            Peer::Rtrb | Peer::Floor(_) => producers == 1,
            Peer::ArrayQueue | Peer::Pipe => true,
        }
    }
}

/// `len` rounded up to 8: what the peers and the 2019 ring move.
pub fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// A record of `len` bytes (8-byte header plus payload).
///
/// # Panics
/// If `len` is not a valid record length (8..=127).
pub fn record(len: usize) -> Notification {
    let payload = vec![0xa5u8; len - 8];
    Notification::new(1, 1, &payload).expect("bench sizes are valid record sizes")
}

/// The sending end of a queue.
pub trait Tx: Send {
    /// Sends one record; false when the queue is full (or lost it).
    fn send(&mut self, rec: &[u8]) -> bool;
}

/// The receiving end of a queue.
pub trait Rx: Send {
    /// Receives one record into `buf`: its length, or None when empty.
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize>;

    /// Receives every whole record that fits `buf` (records back to back),
    /// as a read() of `buf.len()` bytes would: the number received.
    fn recv_batch(&mut self, buf: &mut [u8]) -> u64;

    /// One call in `mode`: the records received.
    fn take(&mut self, mode: Mode, buf: &mut [u8]) -> u64 {
        match mode {
            Mode::PerRecord => u64::from(self.recv(buf).is_some()),
            Mode::Batch => self.recv_batch(buf),
        }
    }
}

/// A queue's ends: one receiver, `producers` senders.
pub struct Link<'a> {
    /// The consumer.
    pub rx: Box<dyn Rx + 'a>,
    /// The producers.
    pub tx: Vec<Box<dyn Tx + 'a>>,
}

struct PipeTx<'a>(&'a PipeRing);
impl Tx for PipeTx<'_> {
    fn send(&mut self, rec: &[u8]) -> bool {
        self.0.try_post(rec) == PostOutcome::Posted
    }
}
struct PipeRx<'a>(PipeReader<'a>);
impl Rx for PipeRx<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        loop {
            match self.0.pop(buf) {
                Pop::Record { len, .. } => return Some(len),
                // A post that met a full ring was retried by its producer.
                Pop::Loss => continue,
                Pop::Empty | Pop::TooBig(_) => return None,
            }
        }
    }

    fn recv_batch(&mut self, buf: &mut [u8]) -> u64 {
        let mut b = self.0.batch();
        let (mut at, mut n) = (0, 0);
        loop {
            match b.take(&mut buf[at..]) {
                Pop::Record { len, .. } => {
                    at += len;
                    n += 1;
                }
                Pop::Loss => continue,
                Pop::Empty | Pop::TooBig(_) => return n,
            }
        }
    }
}

struct MmapTx<'a>(&'a MmapRing<HeapStorage>);
impl Tx for MmapTx<'_> {
    fn send(&mut self, rec: &[u8]) -> bool {
        self.0.try_post(rec) == PostOutcome::Posted
    }
}
struct MmapRx<'a>(Consumer<'a>, usize);
impl Rx for MmapRx<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.0.pop_into(buf).ok().flatten()
    }

    fn recv_batch(&mut self, buf: &mut [u8]) -> u64 {
        // Every record here is `self.1` bytes long.
        (self.0.read(buf).unwrap_or(0) / self.1) as u64
    }
}

struct AqTx<'a, const N: usize>(&'a ArrayQueue<[u8; N]>);
impl<const N: usize> Tx for AqTx<'_, N> {
    fn send(&mut self, rec: &[u8]) -> bool {
        let mut a = [0u8; N];
        a[..rec.len()].copy_from_slice(rec);
        self.0.push(a).is_ok()
    }
}
struct AqRx<'a, const N: usize>(&'a ArrayQueue<[u8; N]>);
impl<const N: usize> Rx for AqRx<'_, N> {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let a = self.0.pop()?;
        buf[..N].copy_from_slice(&a);
        Some(N)
    }

    fn recv_batch(&mut self, buf: &mut [u8]) -> u64 {
        let mut n = 0;
        for chunk in buf.chunks_exact_mut(N) {
            let Some(a) = self.0.pop() else { break };
            chunk.copy_from_slice(&a);
            n += 1;
        }
        n
    }
}

struct RtrbTx<const N: usize>(rtrb::Producer<[u8; N]>);
impl<const N: usize> Tx for RtrbTx<N> {
    fn send(&mut self, rec: &[u8]) -> bool {
        let mut a = [0u8; N];
        a[..rec.len()].copy_from_slice(rec);
        self.0.push(a).is_ok()
    }
}
struct RtrbRx<const N: usize>(rtrb::Consumer<[u8; N]>);
impl<const N: usize> Rx for RtrbRx<N> {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let a = self.0.pop().ok()?;
        buf[..N].copy_from_slice(&a);
        Some(N)
    }

    /// rtrb's chunk API: one look at the producer's index, one commit.
    fn recv_batch(&mut self, buf: &mut [u8]) -> u64 {
        let n = self.0.slots().min(buf.len() / N);
        let Ok(chunk) = self.0.read_chunk(n) else {
            return 0;
        };
        let (a, b) = chunk.as_slices();
        for (out, rec) in buf.chunks_exact_mut(N).zip(a.iter().chain(b)) {
            out.copy_from_slice(rec);
        }
        chunk.commit_all();
        n as u64
    }
}

/// [`Peer::Floor`]'s flag: the stamps apart from the records.
pub const FLOOR_SPLIT: u8 = 4;

/// [`Peer::Floor`]'s ring: one producer, one consumer, `[u8; N]` records
/// kept as 8-byte atomics (plain `mov`s on x86, no `unsafe`) in slots of
/// `N + 8` bytes whose first word is a stamp (the position + 1 once the
/// record is in), so the consumer polls the slot it reads next and never
/// the producer's index (the pipe ring's and ArrayQueue's way), and the
/// producer reads the consumer's index only when its cached copy says
/// full (rtrb's way). `RMW` compare-exchanges per push go to a line only
/// the producer touches: the first before the record is written (where a
/// multi-producer claim goes), the second after it is published (where
/// the 2019 ring's finish goes). Nothing else: what a ring with that many
/// locked instructions per post pays at the least.
pub struct FloorRing<const N: usize> {
    /// Records taken (the consumer's; the producer reads it when the ring
    /// looks full).
    head: CachePadded<AtomicUsize>,
    /// The line the read-modify-writes go to: only the producer touches it.
    claim: CachePadded<AtomicU64>,
    slots: Box<[AtomicU64]>,
    /// With [`FLOOR_SPLIT`]: the stamps (the slots' first words are then
    /// unused).
    stamps: Box<[AtomicU64]>,
    mask: usize,
    rmw: u8,
}

impl<const N: usize> FloorRing<N> {
    const WORDS: usize = N / 8 + 1;

    /// A ring of `capacity` (rounded up to a power of two) records.
    pub fn new(capacity: usize, rmw: u8) -> Self {
        let cap = capacity.next_power_of_two();
        FloorRing {
            head: CachePadded::new(AtomicUsize::new(0)),
            claim: CachePadded::new(AtomicU64::new(0)),
            slots: (0..cap * Self::WORDS).map(|_| AtomicU64::new(0)).collect(),
            stamps: (0..if rmw & FLOOR_SPLIT != 0 { cap } else { 0 })
                .map(|_| AtomicU64::new(0))
                .collect(),
            mask: cap - 1,
            rmw: rmw & !FLOOR_SPLIT,
        }
    }

    #[inline]
    fn rmw(&self) {
        // Relaxed load, Acquire CAS: what a claim does (a CAS that cannot
        // fail here, as the producer is alone).
        let c = self.claim.load(Ordering::Relaxed);
        let _ = self
            .claim
            .compare_exchange(c, c + 1, Ordering::Acquire, Ordering::Relaxed);
    }

    /// The stamp of position `pos`.
    #[inline]
    fn stamp(&self, pos: usize) -> &AtomicU64 {
        if self.stamps.is_empty() {
            &self.slot(pos)[0]
        } else {
            &self.stamps[pos & self.mask]
        }
    }

    #[inline]
    fn slot(&self, pos: usize) -> &[AtomicU64] {
        let at = (pos & self.mask) * Self::WORDS;
        &self.slots[at..at + Self::WORDS]
    }
}

struct FloorTx<'a, const N: usize> {
    ring: &'a FloorRing<N>,
    tail: usize,
    head_cache: usize,
}
impl<const N: usize> Tx for FloorTx<'_, N> {
    #[inline]
    fn send(&mut self, rec: &[u8]) -> bool {
        let r = self.ring;
        if self.tail - self.head_cache > r.mask {
            // Acquire: the consumer's reads of the slot came before.
            self.head_cache = r.head.load(Ordering::Acquire);
            if self.tail - self.head_cache > r.mask {
                return false;
            }
        }
        if r.rmw > 0 {
            r.rmw();
        }
        let mut a = [0u8; N];
        a[..rec.len()].copy_from_slice(rec);
        let (slot, stamp) = (r.slot(self.tail), r.stamp(self.tail));
        for (x, b) in slot[1..].iter().zip(a.chunks_exact(8)) {
            // Relaxed: published by the Release store of the stamp.
            x.store(u64::from_le_bytes(b.try_into().unwrap()), Ordering::Relaxed);
        }
        self.tail += 1;
        // Release: the record's words before the stamp that says so.
        stamp.store(self.tail as u64, Ordering::Release);
        if r.rmw > 1 {
            r.rmw();
        }
        true
    }
}

struct FloorRx<'a, const N: usize> {
    ring: &'a FloorRing<N>,
    head: usize,
}
impl<const N: usize> FloorRx<'_, N> {
    /// Copies the record at `pos` into `out`, if it is in.
    #[inline]
    fn copy_out(&self, pos: usize, out: &mut [u8]) -> bool {
        let slot = self.ring.slot(pos);
        // Acquire: pairs with the producer's Release stamp store.
        if self.ring.stamp(pos).load(Ordering::Acquire) != pos as u64 + 1 {
            return false;
        }
        for (x, o) in slot[1..].iter().zip(out.chunks_exact_mut(8)) {
            // Relaxed: ordered by the Acquire load of the stamp.
            o.copy_from_slice(&x.load(Ordering::Relaxed).to_le_bytes());
        }
        true
    }
}
impl<const N: usize> Rx for FloorRx<'_, N> {
    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        if !self.copy_out(self.head, &mut buf[..N]) {
            return None;
        }
        self.head += 1;
        // Release: our reads of the slot before the producer reuses it.
        self.ring.head.store(self.head, Ordering::Release);
        Some(N)
    }

    /// Every record that is in and fits, one store of the index.
    fn recv_batch(&mut self, buf: &mut [u8]) -> u64 {
        let mut n = 0;
        for out in buf.chunks_exact_mut(N) {
            if !self.copy_out(self.head + n, out) {
                break;
            }
            n += 1;
        }
        if n > 0 {
            self.head += n;
            // Release: as in `recv`.
            self.ring.head.store(self.head, Ordering::Release);
        }
        n as u64
    }
}

/// [`Peer::PipeInline`]'s ring: the pipe ring's claim (one CAS on a `head`
/// carrying the position and the byte offset, any number of producers)
/// and packed records, with each record's stamp in the 8 bytes right
/// before it, so a post and a pop of a small record touch one line, where
/// the pipe ring's stamps are an array of their own (two lines). The
/// note memory is 8-byte atomics; the consumer zeroes what it took, so a
/// word the consumer polls is only ever 0 or the stamp a producer put
/// there (a record's bytes could look like any stamp). No loss marking:
/// a full ring fails the post. Measured beside the pipe ring to decide
/// whether the layout is worth the ring's rewrite.
pub struct InlineRing {
    head: CachePadded<AtomicU64>,
    tail: CachePadded<AtomicU64>,
    tail_cache: CachePadded<AtomicU64>,
    words: Box<[AtomicU64]>,
    capacity: u32,
    /// The byte ring's size: slots × 136 (a stamp and a 128-byte note).
    bytes: u32,
    /// Copy and zero the records' bytes with plain moves through the
    /// words' pointers (only the stamps atomic), as a `memcpy` would.
    raw: bool,
}

impl InlineRing {
    /// A ring of `capacity` records.
    pub fn new(capacity: usize, raw: bool) -> Self {
        let slots = capacity.next_power_of_two().max(2);
        let bytes = slots * 136;
        InlineRing {
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            tail_cache: CachePadded::new(AtomicU64::new(0)),
            words: (0..(bytes + 136) / 8).map(|_| AtomicU64::new(0)).collect(),
            capacity: capacity as u32,
            bytes: bytes as u32,
            raw,
        }
    }

    /// The note memory from word `i` on, as bytes: a pointer with the
    /// whole slice's provenance (the words are `UnsafeCell`s inside, so
    /// writing through a shared borrow is allowed).
    #[inline]
    fn raw_at(&self, i: usize) -> *mut u8 {
        self.words.as_ptr().wrapping_add(i).cast_mut().cast()
    }

    #[inline]
    fn post(&self, rec: &[u8]) -> bool {
        let len = rec.len();
        let span = 8 + len.next_multiple_of(8) as u32;
        // Relaxed: the CAS hands out positions; tail orders the reuse.
        let mut head = self.head.load(Ordering::Relaxed);
        let (pos, off) = loop {
            let pos = head as u32;
            let off = (head >> 32) as u32;
            // Acquire: the consumer's zeroing and copy-outs came before.
            let mut tail = self.tail_cache.load(Ordering::Acquire) as u32;
            if pos.wrapping_sub(tail) >= self.capacity {
                // Acquire: as above.
                tail = self.tail.load(Ordering::Acquire) as u32;
                // Release: passes on what was acquired.
                self.tail_cache.store(u64::from(tail), Ordering::Release);
                if pos.wrapping_sub(tail) >= self.capacity {
                    return false;
                }
            }
            let mut noff = off + span;
            if noff >= self.bytes {
                noff -= self.bytes;
            }
            let next = u64::from(pos.wrapping_add(1)) | u64::from(noff) << 32;
            // Relaxed: as the load.
            match self
                .head
                .compare_exchange_weak(head, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break (pos, off),
                Err(h) => head = h,
            }
        };
        let at = off as usize / 8;
        let w = &self.words[at..at + span as usize / 8];
        if self.raw {
            // SAFETY: the claim made these words this producer's; the
            // consumer reads them only after the stamp's Acquire load.
            unsafe { raw_copy(rec.as_ptr(), self.raw_at(at + 1), len) };
            // Release: as below.
            w[0].store(
                u64::from(pos.wrapping_add(1)) | (len as u64) << 32,
                Ordering::Release,
            );
            return true;
        }
        let full = rec.chunks_exact(8);
        let (rest, nfull) = (full.remainder(), len / 8);
        for (x, c) in w[1..].iter().zip(full) {
            // Relaxed: published by the stamp's Release store.
            x.store(
                u64::from_le_bytes(c.try_into().expect("8 bytes")),
                Ordering::Relaxed,
            );
        }
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            // Relaxed: as above.
            w[1 + nfull].store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        // Release: the record's words before the stamp that says so.
        w[0].store(
            u64::from(pos.wrapping_add(1)) | (len as u64) << 32,
            Ordering::Release,
        );
        true
    }
}

/// Copies `len` (8..=127) bytes as two overlapping moves (the pipe
/// ring's `copy_record`).
///
/// # Safety
/// `src` and `dst` valid for `len` bytes, apart.
#[inline(always)]
unsafe fn raw_copy(src: *const u8, dst: *mut u8, len: usize) {
    #[inline(always)]
    unsafe fn two<const K: usize>(src: *const u8, dst: *mut u8, len: usize) {
        // SAFETY: K <= len <= 2K, within the caller's ranges.
        unsafe {
            let a = src.cast::<[u8; K]>().read_unaligned();
            let b = src.add(len - K).cast::<[u8; K]>().read_unaligned();
            dst.cast::<[u8; K]>().write_unaligned(a);
            dst.add(len - K).cast::<[u8; K]>().write_unaligned(b);
        }
    }
    // SAFETY: each arm's K suits len.
    unsafe {
        match len {
            ..16 => two::<8>(src, dst, len),
            16..32 => two::<16>(src, dst, len),
            32..64 => two::<32>(src, dst, len),
            _ => two::<64>(src, dst, len),
        }
    }
}

/// Zeroes `n` (16..=136) bytes with overlapping stores.
///
/// # Safety
/// `dst` valid for `n` bytes.
#[inline(always)]
unsafe fn raw_zero(dst: *mut u8, n: usize) {
    #[inline(always)]
    unsafe fn two<const K: usize>(dst: *mut u8, n: usize) {
        // SAFETY: K <= n <= 2K.
        unsafe {
            dst.cast::<[u8; K]>().write_unaligned([0; K]);
            dst.add(n - K).cast::<[u8; K]>().write_unaligned([0; K]);
        }
    }
    // SAFETY: each arm's K suits n (the last: 64 + 64 + the 64 ending at n).
    unsafe {
        match n {
            ..32 => two::<16>(dst, n),
            32..64 => two::<32>(dst, n),
            64..=128 => two::<64>(dst, n),
            _ => {
                two::<64>(dst, 128);
                dst.add(n - 64).cast::<[u8; 64]>().write_unaligned([0; 64]);
            }
        }
    }
}

struct InlineTx<'a>(&'a InlineRing);
impl Tx for InlineTx<'_> {
    fn send(&mut self, rec: &[u8]) -> bool {
        self.0.post(rec)
    }
}

struct InlineRx<'a> {
    ring: &'a InlineRing,
    pos: u32,
    off: u32,
}
impl InlineRx<'_> {
    /// Takes the record at the consumer's position into `out`, if one is
    /// in and fits: its length.
    #[inline]
    fn take(&mut self, out: &mut [u8], zero: bool) -> Option<usize> {
        let r = self.ring;
        let at = self.off as usize / 8;
        // Acquire: pairs with the producer's Release stamp store.
        let s = r.words[at].load(Ordering::Acquire);
        if s as u32 != self.pos.wrapping_add(1) {
            return None;
        }
        let len = (s >> 32) as usize & 0x7f;
        if len > out.len() {
            return None;
        }
        let n = len.div_ceil(8);
        let w = &r.words[at..at + 1 + n];
        if r.raw {
            // SAFETY: published (Acquire above) and the consumer's until
            // the tail passes it.
            unsafe {
                raw_copy(r.raw_at(at + 1), out.as_mut_ptr(), len);
                if zero {
                    raw_zero(r.raw_at(at), 8 * (1 + n));
                }
            }
        } else {
            let mut full = out[..len].chunks_exact_mut(8);
            for (x, c) in w[1..].iter().zip(&mut full) {
                // Relaxed: ordered by the stamp's Acquire load.
                c.copy_from_slice(&x.load(Ordering::Relaxed).to_le_bytes());
            }
            let rest = full.into_remainder();
            if !rest.is_empty() {
                // Relaxed: as above.
                let v = w[n].load(Ordering::Relaxed).to_le_bytes();
                rest.copy_from_slice(&v[..rest.len()]);
            }
            for x in w {
                // Relaxed: before the tail's Release store.
                x.store(0, Ordering::Relaxed);
            }
        }
        self.pos = self.pos.wrapping_add(1);
        let mut noff = self.off + 8 * (1 + n as u32);
        if noff >= r.bytes {
            noff -= r.bytes;
        }
        self.off = noff;
        Some(len)
    }

    #[inline]
    fn publish(&self) {
        // Release: the copy-outs and the zeroing before a producer reuses
        // the memory.
        self.ring.tail.store(u64::from(self.pos), Ordering::Release);
    }
}
impl Rx for InlineRx<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let len = self.take(buf, true)?;
        self.publish();
        Some(len)
    }

    /// With `raw`, the batch's bytes are zeroed at its end, one `memset`
    /// per run of them (two where the batch wrapped).
    fn recv_batch(&mut self, buf: &mut [u8]) -> u64 {
        let raw = self.ring.raw;
        let (mut at, mut n) = (0, 0);
        let (mut seg, mut end) = (self.off as usize, self.off as usize);
        loop {
            let off = self.off as usize;
            let Some(len) = self.take(&mut buf[at..], !raw) else {
                break;
            };
            at += len;
            n += 1;
            let phys_end = off + 8 + len.next_multiple_of(8);
            if raw && (self.off as usize) < off {
                // Wrapped: zero the run up to here.
                // SAFETY: the consumed records' bytes, the consumer's until
                // the tail below passes them.
                unsafe { std::ptr::write_bytes(self.ring.raw_at(seg / 8), 0, phys_end - seg) };
                seg = self.off as usize;
                end = seg;
            } else {
                end = phys_end;
            }
        }
        if raw && end > seg {
            // SAFETY: as above.
            unsafe { std::ptr::write_bytes(self.ring.raw_at(seg / 8), 0, end - seg) };
        }
        if n > 0 {
            self.publish();
        }
        n
    }
}

struct FdTx(std::io::PipeWriter);
impl Tx for FdTx {
    fn send(&mut self, rec: &[u8]) -> bool {
        // One write(2) per message.
        self.0.write(rec).is_ok_and(|n| n == rec.len())
    }
}
struct FdRx(std::io::PipeReader, usize);
impl Rx for FdRx {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        // One read(2) per message, of exactly the record's bytes (a pipe
        // keeps writes of up to PIPE_BUF bytes whole).
        self.0.read(&mut buf[..self.1]).ok().filter(|&n| n > 0)
    }

    /// One read(2) of as many whole messages as fit: every write is whole
    /// and the read's size is a multiple of the message's, so it returns
    /// whole messages. It blocks until there is one (the callers only ask
    /// for messages they know are coming).
    fn recv_batch(&mut self, buf: &mut [u8]) -> u64 {
        let room = buf.len() / self.1 * self.1;
        self.0
            .read(&mut buf[..room])
            .map_or(0, |n| (n / self.1) as u64)
    }
}

/// Calls `f` with the ends of a new queue of `peer` for `len`-byte records
/// with `producers` senders, holding `capacity` records; None if the peer
/// has no such queue ([`Peer::carries`]).
pub fn with_link<R>(
    peer: Peer,
    len: usize,
    producers: usize,
    capacity: usize,
    f: impl FnOnce(Link<'_>) -> R,
) -> Option<R> {
    if !peer.carries(len, producers) {
        return None;
    }
    match padded(len) {
        16 => with_link_n::<16, R>(peer, len, producers, capacity, f),
        24 => with_link_n::<24, R>(peer, len, producers, capacity, f),
        32 => with_link_n::<32, R>(peer, len, producers, capacity, f),
        64 => with_link_n::<64, R>(peer, len, producers, capacity, f),
        128 => with_link_n::<128, R>(peer, len, producers, capacity, f),
        256 => with_link_n::<256, R>(peer, len, producers, capacity, f),
        504 => with_link_n::<504, R>(peer, len, producers, capacity, f),
        n => panic!("no peer queue of {n}-byte records"),
    }
}

fn with_link_n<const N: usize, R>(
    peer: Peer,
    len: usize,
    producers: usize,
    capacity: usize,
    f: impl FnOnce(Link<'_>) -> R,
) -> Option<R> {
    fn senders<'a>(n: usize, mut make: impl FnMut() -> Box<dyn Tx + 'a>) -> Vec<Box<dyn Tx + 'a>> {
        (0..n).map(|_| make()).collect()
    }
    Some(match peer {
        Peer::PipeRing => {
            let ring = PipeRing::new(capacity).expect("notes");
            let rx = Box::new(PipeRx(ring.reader().expect("the only reader")));
            f(Link {
                rx,
                tx: senders(producers, || Box::new(PipeTx(&ring))),
            })
        }
        Peer::MmapRing => {
            let bytes = (capacity * N).next_power_of_two().max(4096);
            let ring = MmapRing::new(HeapStorage::new(bytes).expect("pages")).expect("ring");
            let rx = Box::new(MmapRx(Consumer::of(ring.storage()).expect("ring"), N));
            f(Link {
                rx,
                tx: senders(producers, || Box::new(MmapTx(&ring))),
            })
        }
        Peer::ArrayQueue => {
            let q = ArrayQueue::<[u8; N]>::new(capacity);
            f(Link {
                rx: Box::new(AqRx(&q)),
                tx: senders(producers, || Box::new(AqTx(&q))),
            })
        }
        Peer::Rtrb => {
            let (tx, rx) = rtrb::RingBuffer::<[u8; N]>::new(capacity);
            f(Link {
                rx: Box::new(RtrbRx(rx)),
                tx: vec![Box::new(RtrbTx(tx))],
            })
        }
        Peer::Floor(rmw) => {
            let ring = FloorRing::<N>::new(capacity, rmw);
            f(Link {
                rx: Box::new(FloorRx {
                    ring: &ring,
                    head: 0,
                }),
                tx: vec![Box::new(FloorTx {
                    ring: &ring,
                    tail: 0,
                    head_cache: 0,
                })],
            })
        }
        Peer::PipeInline(raw) => {
            let ring = InlineRing::new(capacity, raw);
            f(Link {
                rx: Box::new(InlineRx {
                    ring: &ring,
                    pos: 0,
                    off: 0,
                }),
                tx: senders(producers, || Box::new(InlineTx(&ring))),
            })
        }
        Peer::Pipe => {
            let (r, w) = std::io::pipe().expect("pipe(2)");
            f(Link {
                rx: Box::new(FdRx(r, len)),
                tx: senders(producers, || {
                    Box::new(FdTx(w.try_clone().expect("dup(2) of the write end")))
                }),
            })
        }
    })
}

/// The bytes `peer` carries for a `len`-byte record: the record itself,
/// or for the 2019 ring its 2019 image (lengths in 8-byte units, so a
/// 127-byte record is 128 bytes there). Beyond a note (127 bytes), a
/// 2019 key record of `padded(len)` bytes, and for the peers `len` bytes.
fn wire(peer: Peer, len: usize) -> Vec<u8> {
    if len > 127 {
        let n = padded(len);
        let mut r = vec![0xa5u8; if peer == Peer::MmapRing { n } else { len }];
        let w0 = watchq_core::uapi::v2::WATCH_TYPE_KEY_NOTIFY;
        r[..4].copy_from_slice(&w0.to_le_bytes());
        r[4..8].copy_from_slice(&(n as u32).to_le_bytes());
        return r;
    }
    let n = record(len);
    match peer {
        Peer::MmapRing => n.to_v2().expect("a key record has a 2019 id"),
        _ => n.as_bytes().to_vec(),
    }
}

/// Records of `len` bytes in one read()-sized batch.
pub fn per_batch(len: usize) -> usize {
    (READ_BUF / padded(len)).min(CAPACITY)
}

/// `ring/st_pair` (one record per call) and `ring/st_pair_batch`: one
/// thread sends records and receives them, `iters` records in all; in
/// batch mode it sends a read()-sized batch ([`per_batch`]) and receives
/// it with one call.
///
/// # Panics
/// If the peer cannot carry `len`-byte records, or loses one.
pub fn st_pair(peer: Peer, len: usize, mode: Mode, iters: u64) -> Duration {
    let rec = wire(peer, len);
    let rec = &rec[..];
    with_link(peer, len, 1, CAPACITY, |mut l| {
        let mut buf = [0u8; READ_BUF];
        let tx = &mut l.tx[0];
        let k = match mode {
            Mode::PerRecord => 1,
            Mode::Batch => per_batch(len) as u64,
        };
        let rounds = iters.div_ceil(k);
        let start = Instant::now();
        for _ in 0..rounds {
            for _ in 0..k {
                let sent = tx.send(std::hint::black_box(rec));
                assert!(sent, "{} lost a record", peer.name());
            }
            let got = l.rx.take(mode, &mut buf);
            assert_eq!(got, k, "{} lost a record", peer.name());
            std::hint::black_box(&buf);
        }
        let t = start.elapsed();
        // Per record, as if exactly `iters` had been moved.
        t.mul_f64(iters as f64 / (rounds * k) as f64)
    })
    .expect("the peer carries this record")
}

/// `ring/spsc` (`producers` = 1), `ring/mpsc2` (2) and their `_batch`
/// forms: producer threads stream `iters` records in all (retrying when
/// the queue is full) to a consumer thread taking them in `mode`, through
/// a queue of `capacity` records; the time from the start signal until
/// the consumer has them all. None if the peer has no such queue.
pub fn streaming(
    peer: Peer,
    len: usize,
    producers: usize,
    mode: Mode,
    capacity: usize,
    iters: u64,
) -> Option<Duration> {
    let rec = wire(peer, len);
    let rec = &rec[..];
    with_link(peer, len, producers, capacity, |l| {
        let Link { mut rx, tx } = l;
        let start = Barrier::new(producers + 1);
        let per = iters.div_ceil(producers as u64);
        let total = per * producers as u64;
        let pin = Pin::plan(producers);
        let _home = pin.as_ref().map(|p| p.consumer());
        thread::scope(|s| {
            for (k, mut t) in tx.into_iter().enumerate() {
                let start = &start;
                let pin = pin.as_ref();
                s.spawn(move || {
                    if let Some(p) = pin {
                        p.producer(k);
                    }
                    start.wait();
                    for _ in 0..per {
                        let mut idle = Idle::default();
                        while !t.send(rec) {
                            idle.wait();
                        }
                    }
                });
            }
            let mut buf = [0u8; READ_BUF];
            start.wait();
            let t0 = Instant::now();
            let mut got = 0;
            let mut idle = Idle::default();
            while got < total {
                match rx.take(mode, &mut buf) {
                    0 => idle.wait(),
                    n => {
                        got += n;
                        idle = Idle::default();
                    }
                }
            }
            t0.elapsed().mul_f64(iters as f64 / total as f64)
        })
    })
}

/// Where the threads of a streaming case run: when there is a CPU for
/// each thread (the one-producer cases on this 2-vCPU machine), the
/// consumer is pinned to one CPU and each producer to another of its own,
/// the same for every peer, so every case measures records crossing
/// between two cores. Unpinned, the scheduler sometimes put both threads
/// on one CPU, where they take turns (a queue is filled, then drained,
/// with no line ever crossing): rtrb's 16-byte figure was bimodal (9.5 or
/// 20–22 ns from one run to the next) by that alone. With more threads
/// than CPUs (two producers here, and the producer curve) nothing is
/// pinned and the scheduler shares the cores as it would in use.
/// `WATCHQ_BENCH_PIN=0` turns pinning off.
struct Pin {
    /// The CPUs this process may run on, in order.
    cpus: Vec<usize>,
    /// The calling thread's mask before `consumer` pinned it.
    before: libc::cpu_set_t,
}

impl Pin {
    /// A plan for one consumer and `producers` producers, if every thread
    /// gets a CPU of its own.
    /// `WATCHQ_BENCH_PIN=0` in the environment: never pin (to compare).
    fn plan(producers: usize) -> Option<Pin> {
        if std::env::var_os("WATCHQ_BENCH_PIN").is_some_and(|v| v == "0") {
            return None;
        }
        // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity
        // writes at most its size.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid 0 is the calling thread; the size is the set's.
        let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        if rc != 0 {
            return None;
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `c` is below CPU_SETSIZE.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect();
        (cpus.len() > producers).then_some(Pin { cpus, before: set })
    }

    fn pin_to(cpu: usize) {
        // SAFETY: as in `plan`; `cpu` is below CPU_SETSIZE.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            // A failure leaves the thread where the scheduler puts it.
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
        }
    }

    /// Pins the calling thread (the consumer) to the first CPU until the
    /// guard is dropped.
    fn consumer(&self) -> PinGuard<'_> {
        Self::pin_to(self.cpus[0]);
        PinGuard(self)
    }

    /// Pins the calling thread (producer `k`) to a CPU of its own.
    fn producer(&self, k: usize) {
        Self::pin_to(self.cpus[1 + k]);
    }
}

/// Gives the consumer's thread its old CPU mask back.
struct PinGuard<'a>(&'a Pin);

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: the set is the one sched_getaffinity filled.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of_val(&self.0.before), &self.0.before);
        }
    }
}

/// How a streaming thread waits for its queue (full for a producer, empty
/// for the consumer): spins, and yields its core every 64 tries so that
/// with more threads than cores (`curve/producers` at 4 and 8) the thread
/// it waits for gets to run. The same for every peer.
#[derive(Default)]
struct Idle(u32);

impl Idle {
    fn wait(&mut self) {
        self.0 += 1;
        if self.0.is_multiple_of(64) {
            thread::yield_now();
        } else {
            spin_loop();
        }
    }
}

/// `floor/copy`: copying one `len`-byte record, `iters` times (the
/// least any queue pays per record).
pub fn copy_floor(len: usize, iters: u64) -> Duration {
    let src = vec![0xa5u8; len];
    let mut dst = vec![0u8; len];
    let start = Instant::now();
    for _ in 0..iters {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    start.elapsed()
}

/// `floor/handoff`: one cache line passed from one core to the other,
/// `iters` times (two threads take turns writing it): the least a
/// streaming queue pays per line its records move on.
pub fn handoff_floor(iters: u64) -> Duration {
    let line = CachePadded::new(AtomicU64::new(0));
    let start = Barrier::new(2);
    let turns = iters.div_ceil(2) * 2;
    thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            for i in (1..turns).step_by(2) {
                // Relaxed: the value itself is the message.
                while line.load(Ordering::Relaxed) != i {
                    spin_loop();
                }
                line.store(i + 1, Ordering::Relaxed);
            }
        });
        start.wait();
        let t0 = Instant::now();
        for i in (0..turns).step_by(2) {
            while line.load(Ordering::Relaxed) != i {
                spin_loop();
            }
            line.store(i + 1, Ordering::Relaxed);
        }
        while line.load(Ordering::Relaxed) != turns {
            spin_loop();
        }
        t0.elapsed().mul_f64(iters as f64 / turns as f64)
    })
}

#[cfg(test)]
mod proto_tests {
    use super::*;

    /// The prototype keeps records whole and in order across wraps, with
    /// mixed sizes (so the stamps land on another lap's record bytes),
    /// two producers, and both consumer modes.
    #[test]
    fn proto_pipe_inline_carries_mixed_records() {
        for raw in [false, true] {
            let ring = InlineRing::new(8, raw);
            let per: u32 = if cfg!(miri) { 40 } else { 3_000 };
            std::thread::scope(|s| {
                for p in 0..2u8 {
                    let ring = &ring;
                    s.spawn(move || {
                        for i in 0..per {
                            let len = 8 + (i as usize * 7 + usize::from(p) * 3) % 120;
                            let mut r = vec![0u8; len];
                            r[0] = p;
                            r[1..5].copy_from_slice(&i.to_le_bytes());
                            for (k, b) in r.iter_mut().enumerate().skip(5) {
                                *b = (i as usize + k) as u8;
                            }
                            while !ring.post(&r) {
                                std::thread::yield_now();
                            }
                        }
                    });
                }
                let mut rx = InlineRx {
                    ring: &ring,
                    pos: 0,
                    off: 0,
                };
                let (mut next, mut got) = ([0u32; 2], 0);
                let mut buf = [0u8; READ_BUF];
                let mut check = |r: &[u8]| {
                    let p = usize::from(r[0]);
                    let i = u32::from_le_bytes(r[1..5].try_into().unwrap());
                    assert_eq!(i, next[p], "producer {p} in order");
                    next[p] += 1;
                    assert_eq!(r.len(), 8 + (i as usize * 7 + p * 3) % 120);
                    for (k, b) in r.iter().enumerate().skip(5) {
                        assert_eq!(*b, (i as usize + k) as u8, "byte {k}");
                    }
                };
                while got < 2 * per {
                    if got % 2 == 0 {
                        if let Some(len) = rx.recv(&mut buf) {
                            check(&buf[..len]);
                            got += 1;
                        }
                    } else {
                        // A batch: walk it by the lengths the records carry.
                        let n = rx.recv_batch(&mut buf);
                        let mut at = 0;
                        for _ in 0..n {
                            let p = usize::from(buf[at]);
                            let i = u32::from_le_bytes(buf[at + 1..at + 5].try_into().unwrap());
                            let len = 8 + (i as usize * 7 + p * 3) % 120;
                            check(&buf[at..at + len]);
                            at += len;
                        }
                        got += n as u32;
                    }
                }
            });
        }
    }
}

//! The shared-memory mirror of a notification pipe: reads without a round
//! trip to the kernel's process.
//!
//! On a kernel shared by a process tree (the kernel server), every read of
//! a notification pipe used to be a socket round trip. Here the kernel's
//! process copies what a read() would return (records and loss records,
//! in order: [`crate::WatchQueue::mirror_pass`]) into a ring that it alone
//! writes, and every reader maps it read-only; a read of a pending record
//! is then a copy out of that memory and one compare-and-swap.
//!
//! **Two memfds** per pipe (seed 003's sealing):
//! - the *ring* (a header page, then `cap` bytes of entries and a slack
//!   that takes an entry running past the end), sealed with
//!   [`RING_SEALS`]: `F_SEAL_SHRINK | F_SEAL_GROW` (it can never shrink
//!   under a mapping and fault a reader), `F_SEAL_FUTURE_WRITE` (the
//!   kernel's own writable mapping, made before the seal, is the only one
//!   there will ever be: a reader can map it only read-only, and
//!   `mprotect` cannot make that writable), `F_SEAL_SEAL`;
//! - the *progress page* (4 KiB, [`PAGE_SEALS`]), which every reader maps
//!   writable: `consumed`, the stream position up to which entries are
//!   taken (readers of one pipe advance it with a CAS, so each entry is
//!   delivered once), and `drained`, the readiness bytes taken so far.
//!
//! **The kernel never trusts the progress page.** [`ShmWriter::reap`]
//! accepts `consumed` only when it is an entry boundary between what it
//! released last and what it published; anything else (behind, ahead,
//! inside an entry) is a scribble, which it answers by moving `consumed` to
//! the end of what is published, as if the scribbler had read everything
//! (which it could have). Its own bookkeeping (where each entry starts,
//! which hold a place in the ring) is in its private memory, so a scribble
//! can make it release no more than was published, and nothing outside
//! this pipe's two memfds is reachable from either page.
//!
//! **Entries.** At stream position `pos` (offset `pos % cap` past the
//! header page): a 16-byte header (`pos`, the readiness sequence number
//! before the entry, the record's length, flags: a ring record or a loss
//! record), the record, padding to 8 bytes. The header's `pos` lets a
//! reader tell a boundary from the middle of an entry.
//!
//! **Readers' rules** ([`ShmReader::read`]), as `pipe_read()`'s: whole
//! records that fit; ENOBUFS when the first does not; a loss record after
//! other records only when a record is published after it (else it starts
//! the next read, as the kernel keeps `note_loss` for the next call).
//! Records are copied out (the caller's `deliver`, which may find the
//! user's buffer unwritable: EFAULT) before they are claimed, so a read
//! that faults leaves them queued.
//!
//! # Synchronization
//!
//! | atomic | writers | readers | ordering | partner |
//! |---|---|---|---|---|
//! | ring `published` | the kernel (store after the entries) | readers | Release store / Acquire load | the entries' bytes are visible to a reader that saw the position |
//! | page `consumed` | readers (CAS), the kernel (repairing a scribble) | readers, the kernel (`reap`) | Release CAS / Acquire load | a reader's copies of the entries it passed happen before the kernel reuses their memory (every mover's CAS is an RMW, so it continues the release sequences before it); a reader that sees a position sees `published` at least there |
//! | entry words | the kernel (`append`, into released or new memory) | readers (copies; one whose take fails throws its copy away) | Relaxed stores / Relaxed loads, word by word | `published`'s Release/Acquire (a reader's copy sees the entry); `consumed`'s Release CAS / Acquire in `reap` (a delivered copy happens before the reuse). Atomic so a thrown-away copy racing the reuse is not a data race |
//! | page `drained` | readers (CAS) | readers, the kernel (diagnostics) | Relaxed | none: it only apportions readiness bytes, read by a separate syscall |
//! | header `flags` | the kernel (`set_ask`) | readers (before a read or poll) | Relaxed | none: hints, ordered by the kernel's replies (a reader that misses "ask first" read before the unread's reply reached its author) |
//!
//! The protocol reaches the memory only through `Mem`: the memfds'
//! mappings normally, a heap region under loom, where the models in
//! `shm/loom_tests.rs` run the same protocol code (every ordering above
//! fails one of them when weakened: scripts/loom-weaken.py).

#[cfg(not(loom))]
use crate::errno::{Errno, Result};
use crate::sync::{AtomicU64, Ordering};
use std::collections::VecDeque;
#[cfg(not(any(loom, all(test, miri))))]
use std::fs::File;
#[cfg(not(any(loom, all(test, miri))))]
use std::os::fd::{AsRawFd, FromRawFd};

/// The seals of a mirror's ring memfd.
#[cfg(not(loom))]
pub const RING_SEALS: i32 =
    libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_SEAL;
/// The seals of a mirror's progress page.
#[cfg(not(loom))]
pub const PAGE_SEALS: i32 = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

#[cfg(not(loom))]
const MAGIC: u64 = u64::from_le_bytes(*b"WQMIRR01");
/// The header page; entries start after it.
#[cfg(not(loom))]
const HEADER: usize = 4096;
/// An entry's header: pos (8), seq (4), len (2), flags (2).
const ENTRY_HDR: usize = 16;
/// The longest record (a note).
const MAX_REC: usize = crate::uapi::WATCH_QUEUE_NOTE_SIZE;
/// Past the end of the entries: room for one entry that runs over.
#[cfg_attr(all(loom, not(test)), allow(dead_code))]
const SLACK: usize = 256;
/// The progress page's size.
#[cfg(not(loom))]
const PAGE: usize = 4096;
/// Offsets in the header page.
#[cfg(not(loom))]
const OFF_CAP: usize = 8;
#[cfg(not(loom))]
const OFF_PUBLISHED: usize = 64;
/// The kernel's word to readers: [`ASK_WHEN_EMPTY`], [`ASK_FIRST`].
#[cfg(not(loom))]
const OFF_FLAGS: usize = 128;
/// A read that finds the ring empty must ask the kernel (the key
/// collector waits for a consumer, or the write end is gone).
const ASK_WHEN_EMPTY: u64 = 1;
/// Every read must ask the kernel before it looks at the ring: records a
/// reader took and gave back (an unread after EFAULT) are queued ahead of
/// the ring's, in the kernel.
const ASK_FIRST: u64 = 2;
/// Offsets in the progress page.
#[cfg(not(loom))]
const OFF_CONSUMED: usize = 0;
#[cfg(not(loom))]
const OFF_DRAINED: usize = 64;

/// Entry flag: a record that holds a place in the queue's ring.
const F_RING: u16 = 1;
/// Entry flag: a loss record (read() makes it; it holds no place).
const F_LOSS: u16 = 2;

fn entry_size(len: usize) -> u64 {
    (ENTRY_HDR + len.next_multiple_of(8)) as u64
}

#[cfg(not(any(loom, all(test, miri))))]
fn last_errno() -> Errno {
    io_errno(std::io::Error::last_os_error())
}

#[cfg(not(any(loom, all(test, miri))))]
fn io_errno(e: std::io::Error) -> Errno {
    e.raw_os_error()
        .and_then(Errno::from_raw)
        .unwrap_or(Errno::EIO)
}

#[cfg(not(any(loom, all(test, miri))))]
fn memfd(name: &str, len: usize) -> Result<File> {
    let cname = std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: a NUL-terminated name and valid flags.
    let fd =
        unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(len as u64).map_err(io_errno)?;
    Ok(file)
}

#[cfg(not(any(loom, all(test, miri))))]
fn add_seals(file: &File, seals: i32) -> Result<()> {
    // SAFETY: F_ADD_SEALS takes an int argument.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

#[cfg(not(any(loom, all(test, miri))))]
fn seals_of(file: &File) -> i32 {
    // SAFETY: F_GET_SEALS takes no argument.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) }
}

/// The entry bytes a queue of `capacity` records can have live at once:
/// each record (a place in the ring, at most a note) and a loss record
/// before each and after the last, rounded up to a power of two.
#[cfg(not(loom))]
fn entries_for(capacity: usize) -> usize {
    let most = capacity * entry_size(MAX_REC) as usize + (capacity + 1) * entry_size(8) as usize;
    most.next_power_of_two().max(4096)
}

/// `capacity` if a mirror can be made for it, else `EINVAL`.
#[cfg(not(loom))]
fn valid_capacity(capacity: usize) -> Result<usize> {
    if capacity == 0 || capacity > 1 << 16 {
        return Err(Errno::EINVAL);
    }
    Ok(capacity)
}

/// Writes the header page's magic and entry size into a new ring.
#[cfg(not(loom))]
fn write_header(ring: &Region, cap: usize) {
    // SAFETY: offsets 0 and 8 of the header page, in the ring (HEADER +
    // cap + SLACK bytes).
    unsafe {
        // Relaxed: no reader has the memfd yet.
        word(ring.as_mut_ptr(), 0).store(MAGIC, Ordering::Relaxed);
        word(ring.as_mut_ptr(), OFF_CAP).store(cap as u64, Ordering::Relaxed);
    }
}

/// An atomic word of a mapping.
///
/// # Safety
/// `base + off` is within a live mapping, 8-byte aligned.
#[cfg(not(loom))]
unsafe fn word<'a>(base: *mut u8, off: usize) -> &'a AtomicU64 {
    // SAFETY: the caller's contract; AtomicU64 has u64's layout.
    unsafe { &*base.add(off).cast::<AtomicU64>() }
}

/// A mirror's memory as one side sees it: the ring's shared words
/// (`published`, the flags) and its entry bytes, and the progress page's
/// words (`consumed`, `drained`). The protocol (`ShmWriter`, `ShmReader`)
/// reaches that memory only through this, so the same protocol code runs
/// over two memories, as the 2019 ring's `RingStorage` does:
/// - normally the two memfds' mappings (the kernel's writable, a reader's
///   ring read-only);
/// - under loom, one heap region the model's threads share (`Heap`):
///   loom's atomics are not memory, so the words are fields, and each 8
///   bytes of entries have a checked cell standing for them, so the model
///   catches a reader copying bytes the kernel's writes do not happen
///   before, or the kernel overwriting bytes a reader's copy does not
///   happen before. The cells are stricter than the mapped memory's word
///   copies: they would also reject a thrown-away copy (see `Mem::read`)
///   meeting the kernel's reuse, which atomic words make harmless, so no
///   model lets one meet it; since the cells rule out every race on the
///   heap's bytes, those stay plain bytes.
#[cfg(not(loom))]
#[derive(Debug)]
struct Mem {
    ring: Region,
    page: Region,
}

/// A mapping of one of the memfds.
#[cfg(not(any(loom, all(test, miri))))]
type Region = memmap2::MmapRaw;

/// Core's unit tests under Miri, which can neither make a memfd nor map
/// a file: the same `Mem` code over words on the heap, allocated at the
/// mapping's exact size, so Miri checks its pointer arithmetic (bounds,
/// alignment, provenance) and the words' accesses. What it cannot check
/// here: the memfds, their seals and the read-only mapping (the tests
/// outside Miri do).
#[cfg(all(test, miri, not(loom)))]
#[derive(Debug, Clone)]
struct Region(std::sync::Arc<[AtomicU64]>);

#[cfg(all(test, miri, not(loom)))]
impl Region {
    /// `len` bytes (a multiple of 8), zeroed, as a new memfd's are.
    fn zeroed(len: usize) -> Self {
        assert!(len.is_multiple_of(8));
        Region((0..len / 8).map(|_| AtomicU64::new(0)).collect())
    }

    fn as_mut_ptr(&self) -> *mut u8 {
        // Every access through this pointer is an atomic one (`word`),
        // which the words' UnsafeCells allow through a shared borrow.
        self.0.as_ptr().cast::<u8>().cast_mut()
    }

    fn len(&self) -> usize {
        self.0.len() * 8
    }
}

#[cfg(not(loom))]
impl Mem {
    fn consumed(&self) -> &AtomicU64 {
        // SAFETY: offset 0 of the page mapping (4 KiB, sealed).
        unsafe { word(self.page.as_mut_ptr(), OFF_CONSUMED) }
    }

    fn drained(&self) -> &AtomicU64 {
        // SAFETY: offset 64 of the page mapping.
        unsafe { word(self.page.as_mut_ptr(), OFF_DRAINED) }
    }

    fn published(&self) -> &AtomicU64 {
        // SAFETY: offset 64 of the header page, in the mapping (a reader's
        // is read-only: it only loads).
        unsafe { word(self.ring.as_mut_ptr(), OFF_PUBLISHED) }
    }

    fn flags(&self) -> &AtomicU64 {
        // SAFETY: offset 128 of the header page, in the mapping (a reader
        // only loads).
        unsafe { word(self.ring.as_mut_ptr(), OFF_FLAGS) }
    }

    /// The entries' word at entry offset `at`.
    ///
    /// # Safety
    /// `at` is 8-aligned and `at + 8` ≤ the entries' `cap + SLACK` bytes.
    unsafe fn entry_word(&self, at: usize) -> &AtomicU64 {
        // A misaligned reference to an atomic is undefined behaviour even
        // where the load would work: positions from the shared page are
        // checked for alignment before they get here.
        debug_assert!(at.is_multiple_of(8), "misaligned entry word at {at}");
        // SAFETY: the caller's contract; HEADER is 8-aligned, and the
        // mapping is HEADER + cap + SLACK bytes.
        unsafe { word(self.ring.as_mut_ptr(), HEADER + at) }
    }

    /// Stores `src` at entry offset `at` (the kernel's writable mapping)
    /// a word at a time, the last word's bytes past `src` zero (they are
    /// the entry's padding).
    ///
    /// Words, not a `memcpy`: a reader whose position another reader took
    /// meanwhile may still be copying these bytes (see `read`); atomic
    /// stores against its atomic loads make that a race on values, which
    /// it throws away, not a data race (the 2019 ring's slots are words
    /// for the same reason).
    ///
    /// # Safety
    /// `at` is 8-aligned, `at + src.len()` rounded up to 8 ≤ the entries'
    /// `cap + SLACK` bytes, and what a reader may still deliver from
    /// those bytes was released (see `ShmWriter::append`).
    unsafe fn write(&self, at: usize, src: &[u8]) {
        for (i, chunk) in src.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            // SAFETY: the caller's contract (`at + 8 * i` is inside the
            // rounded-up length).
            let w = unsafe { self.entry_word(at + 8 * i) };
            // Relaxed: `publish`'s Release store orders these before any
            // reader's Acquire of `published`.
            w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
    }

    /// Copies `len` bytes at entry offset `at` to `dst`, loading a word at
    /// a time.
    ///
    /// A reader whose position another reader took meanwhile may copy
    /// bytes the kernel is already rewriting (it reused them after the
    /// other's take): that copy is thrown away, since the reader's CAS
    /// then fails and the read starts again. The loads are atomic, as the
    /// kernel's stores in `write` are, so that race is on values only,
    /// never a data race on plain bytes (undefined behaviour in Rust).
    /// Relaxed loads of aligned words are plain `mov`s on x86; a record
    /// is at most 16 of them.
    ///
    /// # Safety
    /// `at` is 8-aligned, `at + len` rounded up to 8 ≤ the entries' `cap +
    /// SLACK` bytes (checked at open), `dst` is valid for `len` bytes.
    unsafe fn read(&self, at: usize, dst: *mut u8, len: usize) {
        let mut i = 0;
        while i < len {
            // SAFETY: the caller's contract (`at + i` is 8-aligned and
            // inside the rounded-up length).
            let w = unsafe { self.entry_word(at + i) };
            // Relaxed: ordered by the Acquire load of `published` that
            // made these bytes the reader's to copy.
            let b = w.load(Ordering::Relaxed).to_ne_bytes();
            let n = (len - i).min(8);
            // SAFETY: `dst + i .. dst + i + n` is inside the caller's `len`
            // bytes; `b` is ours.
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), dst.add(i), n) };
            i += 8;
        }
    }
}

/// The mirror's memory under loom: see `Mem`.
#[cfg(loom)]
#[derive(Debug)]
struct Heap {
    published: AtomicU64,
    flags: AtomicU64,
    consumed: AtomicU64,
    drained: AtomicU64,
    /// The entries (`cap + SLACK` bytes).
    bytes: Box<[std::cell::UnsafeCell<u8>]>,
    /// One checked cell per 8 bytes of `bytes`, standing for them.
    cells: Box<[crate::sync::UnsafeCell<()>]>,
}

// SAFETY: (loom only) `bytes` is reached only through `Mem::write` and
// `Mem::read`, which first touch the checked cells standing for the bytes,
// so loom reports any access that is not ordered against a conflicting one
// (and loom runs one thread at a time).
#[cfg(loom)]
unsafe impl Sync for Heap {}

#[cfg(loom)]
#[derive(Debug, Clone)]
struct Mem(crate::sync::Arc<Heap>);

#[cfg(loom)]
impl Mem {
    #[cfg_attr(all(loom, not(test)), allow(dead_code))]
    fn new(cap: usize) -> Self {
        Mem(crate::sync::Arc::new(Heap {
            published: AtomicU64::new(0),
            flags: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            drained: AtomicU64::new(0),
            bytes: (0..cap + SLACK)
                .map(|_| std::cell::UnsafeCell::new(0))
                .collect(),
            cells: (0..(cap + SLACK) / 8)
                .map(|_| crate::sync::UnsafeCell::new(()))
                .collect(),
        }))
    }

    fn consumed(&self) -> &AtomicU64 {
        &self.0.consumed
    }

    fn drained(&self) -> &AtomicU64 {
        &self.0.drained
    }

    fn published(&self) -> &AtomicU64 {
        &self.0.published
    }

    fn flags(&self) -> &AtomicU64 {
        &self.0.flags
    }

    fn cells(&self, at: usize, len: usize) -> &[crate::sync::UnsafeCell<()>] {
        &self.0.cells[at / 8..(at + len).div_ceil(8)]
    }

    /// As the mapped `Mem::write`.
    ///
    /// # Safety
    /// None beyond the mapped one's; bounds are checked.
    unsafe fn write(&self, at: usize, src: &[u8]) {
        for c in self.cells(at, src.len()) {
            c.with_mut(|_| ());
        }
        let dst = &self.0.bytes[at..at + src.len()];
        // SAFETY: `dst` is `src.len()` bytes of `bytes`, whose cells let
        // us mutate them; the checked cells say no access races this one.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_ptr() as *mut u8, src.len()) }
    }

    /// As the mapped `Mem::read`.
    ///
    /// # Safety
    /// `dst` is valid for `len` bytes; bounds are checked.
    unsafe fn read(&self, at: usize, dst: *mut u8, len: usize) {
        for c in self.cells(at, len) {
            c.with(|_| ());
        }
        let src = &self.0.bytes[at..at + len];
        // SAFETY: `src` is `len` bytes of `bytes`; `dst` is the caller's.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr() as *const u8, dst, len) }
    }
}

/// An entry's header, read from the ring.
#[derive(Clone, Copy, Debug)]
struct EntryHdr {
    pos: u64,
    seq: u32,
    len: u16,
    flags: u16,
}

/// What the kernel's side learned from the progress page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Ring records the readers took (to release from the queue).
    pub records: usize,
    /// Loss records they took.
    pub loss_records: usize,
    /// The page held a position that is not an entry boundary in range:
    /// it was moved to the end of what is published.
    pub scribbled: bool,
}

/// The kernel's side of a mirror: the only writer of the ring.
#[derive(Debug)]
pub struct ShmWriter {
    #[cfg(not(any(loom, all(test, miri))))]
    ring_file: File,
    #[cfg(not(any(loom, all(test, miri))))]
    page_file: File,
    mem: Mem,
    /// Entry bytes (a power of two).
    cap: u64,
    /// The next entry's position.
    head: u64,
    /// What readers can see.
    published: u64,
    /// What readers took, as last validated.
    released: u64,
    /// Readiness sequence: ring records appended.
    seq: u32,
    /// Entries from `released` on: (position, flags), in order.
    live: VecDeque<(u64, u16)>,
    /// Scribbles repaired so far.
    scribbles: u64,
}

impl ShmWriter {
    /// A mirror for a queue of `capacity` records: two new sealed memfds,
    /// mapped here writable.
    ///
    /// # Errors
    /// `EINVAL` (no capacity), or the errno of `memfd_create`,
    /// `ftruncate`, `F_ADD_SEALS` or `mmap`.
    #[cfg(not(any(loom, all(test, miri))))]
    pub fn new(capacity: usize) -> Result<Self> {
        let cap = entries_for(valid_capacity(capacity)?);
        let ring_file = memfd("watchq-mirror", HEADER + cap + SLACK)?;
        let page_file = memfd("watchq-progress", PAGE)?;
        let ring = memmap2::MmapOptions::new()
            .map_raw(&ring_file)
            .map_err(io_errno)?;
        let page = memmap2::MmapOptions::new()
            .map_raw(&page_file)
            .map_err(io_errno)?;
        // The writable mapping above is made before F_SEAL_FUTURE_WRITE,
        // so it stays the only one.
        add_seals(&ring_file, RING_SEALS)?;
        add_seals(&page_file, PAGE_SEALS)?;
        write_header(&ring, cap);
        Ok(ShmWriter::empty(
            (ring_file, page_file),
            Mem { ring, page },
            cap,
        ))
    }

    /// Under Miri (core's unit tests): as `new`, on the heap (`Region`);
    /// its readers come from `ShmWriter::reader`.
    ///
    /// # Errors
    /// `EINVAL` (no capacity).
    #[cfg(all(test, miri, not(loom)))]
    pub fn new(capacity: usize) -> Result<Self> {
        let cap = entries_for(valid_capacity(capacity)?);
        let ring = Region::zeroed(HEADER + cap + SLACK);
        write_header(&ring, cap);
        let mem = Mem {
            ring,
            page: Region::zeroed(PAGE),
        };
        Ok(ShmWriter::empty(mem, cap))
    }

    /// Under Miri: a reader of this mirror, checked as `ShmReader::open`
    /// checks the mapped header.
    #[cfg(all(test, miri, not(loom)))]
    fn reader(&self) -> Result<ShmReader> {
        let ring = self.mem.ring.clone();
        let len = ring.len();
        ShmReader::of(
            Mem {
                ring,
                page: self.mem.page.clone(),
            },
            len,
        )
    }

    /// A writer of `mem` (`cap` entry bytes) with nothing appended yet:
    /// the one place every field starts.
    fn empty(
        #[cfg(not(any(loom, all(test, miri))))] files: (File, File),
        mem: Mem,
        cap: usize,
    ) -> Self {
        #[cfg(not(any(loom, all(test, miri))))]
        let (ring_file, page_file) = files;
        ShmWriter {
            #[cfg(not(any(loom, all(test, miri))))]
            ring_file,
            #[cfg(not(any(loom, all(test, miri))))]
            page_file,
            mem,
            cap: cap as u64,
            head: 0,
            published: 0,
            released: 0,
            seq: 0,
            live: VecDeque::new(),
            scribbles: 0,
        }
    }

    /// Under loom: a mirror of `cap` entry bytes (a power of two, at least
    /// 64) on the heap, whose readers come from `ShmWriter::reader`.
    #[cfg(loom)]
    #[cfg_attr(all(loom, not(test)), allow(dead_code))]
    pub(crate) fn heap(cap: usize) -> Self {
        assert!(cap.is_power_of_two() && cap >= 64);
        ShmWriter::empty(Mem::new(cap), cap)
    }

    /// Under loom: a reader of this mirror (as `ShmReader::open` of the
    /// memfds).
    #[cfg(loom)]
    #[cfg_attr(all(loom, not(test)), allow(dead_code))]
    pub(crate) fn reader(&self) -> ShmReader {
        ShmReader {
            mem: self.mem.clone(),
            cap: self.cap,
        }
    }

    /// The ring's memfd (for readers to map read-only).
    #[cfg(not(any(loom, all(test, miri))))]
    pub fn ring_file(&self) -> &File {
        &self.ring_file
    }

    /// The progress page's memfd (for readers to map writable).
    #[cfg(not(any(loom, all(test, miri))))]
    pub fn page_file(&self) -> &File {
        &self.page_file
    }

    /// Appends a record (`ring`: it holds a place in the queue's ring;
    /// else a loss record), unpublished. False if it does not fit, which
    /// the capacity bound rules out (a record that does not fit is not
    /// appended).
    pub fn append(&mut self, rec: &[u8], ring: bool) -> bool {
        let len = rec.len();
        if !(8..=MAX_REC).contains(&len) {
            return false;
        }
        let size = entry_size(len);
        if self.head + size - self.released > self.cap {
            return false;
        }
        let at = (self.head & (self.cap - 1)) as usize;
        let flags = if ring { F_RING } else { F_LOSS };
        let mut hdr = [0u8; ENTRY_HDR];
        hdr[..8].copy_from_slice(&self.head.to_le_bytes());
        hdr[8..12].copy_from_slice(&self.seq.to_le_bytes());
        hdr[12..14].copy_from_slice(&(len as u16).to_le_bytes());
        hdr[14..16].copy_from_slice(&flags.to_le_bytes());
        // SAFETY: `at` and `at + ENTRY_HDR` are 8-aligned (every entry's
        // size is a multiple of 8); `at + size` ≤ cap + SLACK (size ≤ 144 <
        // SLACK), and `size` is the record rounded up to 8; the bytes
        // are not live for any reader (they lie past `published`, and what
        // they held before was released: `head + size - released ≤ cap`).
        unsafe {
            self.mem.write(at, &hdr);
            self.mem.write(at + ENTRY_HDR, rec);
        }
        self.live.push_back((self.head, flags));
        self.head += size;
        if ring {
            self.seq = self.seq.wrapping_add(1);
        }
        true
    }

    /// Makes what was appended visible to readers.
    pub fn publish(&mut self) {
        if self.published != self.head {
            self.published = self.head;
            // ORDERING: Release: the entries' bytes are visible to a reader
            // that Acquire-loads this position (`ShmReader::published`;
            // loom_shm_publish_races_read).
            self.mem
                .published()
                .store(self.published, Ordering::Release);
        }
    }

    /// Readiness sequence: ring records appended so far (wrapping).
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Tells readers whether a read that finds the ring empty must ask the
    /// kernel rather than sleep (or say EAGAIN) by itself (`when_empty`),
    /// and whether every read and poll must ask it before looking at the
    /// ring (`first`: records given back wait in the kernel, ahead of the
    /// ring's; it implies `when_empty`).
    pub fn set_ask(&self, when_empty: bool, first: bool) {
        let want = if first {
            ASK_FIRST | ASK_WHEN_EMPTY
        } else {
            u64::from(when_empty) * ASK_WHEN_EMPTY
        };
        let w = self.mem.flags();
        // Relaxed: hints. A reader that misses `first` read the ring
        // before the give-back's reply reached its author, so before
        // anything that author did next, in the program's order: the
        // kernel's answer to the unread is what orders the two, through
        // the socket. `when_empty` is acted on only after the ring was
        // found empty, and the kernel's answer is what counts.
        if w.load(Ordering::Relaxed) != want {
            w.store(want, Ordering::Relaxed);
        }
    }

    /// Readiness bytes the readers claimed so far (the page's word, as it
    /// is: only for telling a stale state from a moving one).
    pub fn drained_word(&self) -> u64 {
        // Relaxed: compared with itself a moment later, nothing more.
        self.mem.drained().load(Ordering::Relaxed)
    }

    /// The position published last.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Published entries not yet taken (as last reaped).
    pub fn pending(&self) -> bool {
        self.released != self.published
    }

    /// Scribbles on the progress page repaired so far.
    pub fn scribbles(&self) -> u64 {
        self.scribbles
    }

    /// Reads the progress page and releases what readers took, validating
    /// it (see the module header).
    pub fn reap(&mut self) -> Reaped {
        // ORDERING: Acquire pairs with the readers' Release CAS in `read`:
        // their copies of the entries it passed happen before we reuse the
        // memory (`append`). The CAS of every reader is an RMW, so it
        // continues the release sequences of the movers before it, and
        // this one load acquires them all (loom_shm_reap_races_read).
        let c = self.mem.consumed().load(Ordering::Acquire);
        let mut r = Reaped::default();
        if c == self.released {
            return r;
        }
        let upto = if c > self.released && c <= self.published && self.is_boundary(c) {
            c
        } else {
            // A scribble: as if its author had read everything published.
            r.scribbled = true;
            self.scribbles += 1;
            // ORDERING: Release: a reader that Acquire-loads the repaired
            // position then sees `published` at least there (our store of
            // it came before), not an older one that would make the
            // position look ahead of it: Invalid, for ever, on a good page
            // (loom_shm_scribble_repair_races_read, _races_poll).
            // No Acquire: we take nothing from the page but the value,
            // which we validate; what a scribble's author wrote is not
            // ours to wait for, and with no scribbler there is no repair
            // (honest readers only move the word forward, to boundaries
            // they saw published), so no honest reader's copies are
            // released here. A failure means a reader moved it meanwhile:
            // the next reap looks again.
            let _ = self.mem.consumed().compare_exchange(
                c,
                self.published,
                Ordering::Release,
                Ordering::Relaxed,
            );
            self.published
        };
        while let Some(&(pos, flags)) = self.live.front() {
            if pos >= upto {
                break;
            }
            self.live.pop_front();
            if flags == F_RING {
                r.records += 1;
            } else {
                r.loss_records += 1;
            }
        }
        self.released = upto;
        r
    }

    fn is_boundary(&self, c: u64) -> bool {
        c == self.published || self.live.binary_search_by_key(&c, |&(pos, _)| pos).is_ok()
    }
}

/// What a reader's local read came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Local {
    /// Nothing published past what was taken: ask the kernel.
    Empty,
    /// The page or the ring is not as the kernel leaves it (a scribble):
    /// ask the kernel, which repairs it.
    Invalid,
    /// The first record does not fit the room (ENOBUFS); nothing taken.
    NoBufs,
    /// `deliver` could copy nothing out (EFAULT); nothing taken.
    Fault,
    /// `bytes` bytes of whole records taken and delivered; the caller
    /// drains `drain` readiness bytes (its share).
    Read {
        /// Bytes delivered.
        bytes: usize,
        /// Readiness bytes to drain from the read end.
        drain: u32,
    },
}

/// A reader's side of a mirror: the ring mapped read-only, the progress
/// page writable.
#[derive(Debug)]
pub struct ShmReader {
    mem: Mem,
    cap: u64,
}

/// Where each record of a local read ends: (bytes, stream position, seq).
pub type Ends = Vec<(usize, u64, u32)>;

impl ShmReader {
    /// Maps a mirror the kernel sent: the ring read-only, the page
    /// writable. Refuses memfds without their seals or of the wrong size.
    ///
    /// # Errors
    /// `EPERM` (seals missing), `EINVAL` (sizes, magic), or `mmap`'s errno.
    #[cfg(not(any(loom, all(test, miri))))]
    pub fn open(ring: File, page: File) -> Result<Self> {
        if seals_of(&ring) & RING_SEALS != RING_SEALS || seals_of(&page) & PAGE_SEALS != PAGE_SEALS
        {
            return Err(Errno::EPERM);
        }
        let rlen = ring.metadata().map_err(io_errno)?.len() as usize;
        let plen = page.metadata().map_err(io_errno)?.len() as usize;
        if plen != PAGE || rlen < HEADER + 4096 + SLACK {
            return Err(Errno::EINVAL);
        }
        let rmap = memmap2::MmapOptions::new()
            .map_raw_read_only(&ring)
            .map_err(io_errno)?;
        let pmap = memmap2::MmapOptions::new()
            .map_raw(&page)
            .map_err(io_errno)?;
        ShmReader::of(
            Mem {
                ring: rmap,
                page: pmap,
            },
            rlen,
        )
    }

    /// A reader of `mem`, whose ring is `rlen` bytes (at least a header
    /// page), once its header checks out.
    #[cfg(not(loom))]
    fn of(mem: Mem, rlen: usize) -> Result<Self> {
        // SAFETY: offsets 0 and 8 of the header page, in the ring.
        let (magic, cap) = unsafe {
            // Relaxed: written before the memfd was sent (the socket
            // message orders it).
            (
                word(mem.ring.as_mut_ptr(), 0).load(Ordering::Relaxed),
                word(mem.ring.as_mut_ptr(), OFF_CAP).load(Ordering::Relaxed),
            )
        };
        if magic != MAGIC
            || !cap.is_power_of_two()
            || HEADER as u64 + cap + SLACK as u64 != rlen as u64
        {
            return Err(Errno::EINVAL);
        }
        Ok(ShmReader { mem, cap })
    }

    fn published(&self) -> u64 {
        // ORDERING: Acquire pairs with the kernel's Release store in
        // `publish`: the entries before it are visible
        // (loom_shm_publish_races_read).
        self.mem.published().load(Ordering::Acquire)
    }

    /// The entry header at `pos` and the entry offset of its record.
    fn entry(&self, pos: u64) -> (EntryHdr, usize) {
        let at = (pos & (self.cap - 1)) as usize;
        let mut h = [0u8; ENTRY_HDR];
        // SAFETY: `at` is 8-aligned (`pos` is: the readers check the
        // shared position, and entry sizes are multiples of 8); `at +
        // ENTRY_HDR` < cap + SLACK; `h` is ours.
        unsafe { self.mem.read(at, h.as_mut_ptr(), ENTRY_HDR) };
        let hdr = EntryHdr {
            pos: u64::from_le_bytes(h[..8].try_into().expect("8 bytes")),
            seq: u32::from_le_bytes(h[8..12].try_into().expect("4 bytes")),
            len: u16::from_le_bytes(h[12..14].try_into().expect("2 bytes")),
            flags: u16::from_le_bytes(h[14..16].try_into().expect("2 bytes")),
        };
        (hdr, at + ENTRY_HDR)
    }

    fn valid(h: &EntryHdr, pos: u64) -> bool {
        h.pos == pos
            && (8..=MAX_REC as u16).contains(&h.len)
            && (h.flags == F_RING || h.flags == F_LOSS)
    }

    /// Must a read that finds the ring empty ask the kernel (see
    /// [`ShmWriter::set_ask`])? Else it may sleep on the read end, or say
    /// EAGAIN, by itself.
    pub fn ask_when_empty(&self) -> bool {
        // Relaxed: a hint (see `set_ask`).
        self.mem.flags().load(Ordering::Relaxed) & ASK_WHEN_EMPTY != 0
    }

    /// Must every read and poll ask the kernel before it looks at the
    /// ring (records given back wait there, ahead of the ring's; see
    /// [`ShmWriter::set_ask`])?
    pub fn ask_first(&self) -> bool {
        // Relaxed: a hint (see `set_ask`).
        self.mem.flags().load(Ordering::Relaxed) & ASK_FIRST != 0
    }

    /// Is a record (not a loss record alone: poll() does not report
    /// those) published past what readers took? None when the ring is not
    /// as the kernel leaves it (ask the kernel).
    pub fn has_records(&self) -> Option<bool> {
        // ORDERING: Acquire, as in `read` (loom_shm_scribble_repair_races_poll).
        let c = self.mem.consumed().load(Ordering::Acquire);
        let p = self.published();
        if c > p || p - c > self.cap || !c.is_multiple_of(8) {
            return None;
        }
        let mut pos = c;
        while pos < p {
            let (h, _) = self.entry(pos);
            if !Self::valid(&h, pos) {
                return None;
            }
            if h.flags == F_RING {
                return Some(true);
            }
            pos += entry_size(h.len as usize);
        }
        Some(false)
    }

    /// Is anything published past what readers took?
    pub fn pending(&self) -> bool {
        // Relaxed: a hint; `read` looks again with Acquire loads.
        self.mem.consumed().load(Ordering::Relaxed) != self.published()
    }

    /// One read() of at most `out.len()` bytes: whole records are copied
    /// into `out` (their ends into `ends`), then `deliver` copies them to
    /// the caller's memory and says how many of them it could (a prefix);
    /// those are then taken with a CAS on the shared progress (another
    /// reader who took them first makes the whole read start again).
    pub fn read(
        &self,
        out: &mut [u8],
        ends: &mut Ends,
        deliver: &mut dyn FnMut(&[u8], &Ends) -> usize,
    ) -> Local {
        'look: loop {
            // ORDERING: Acquire pairs with the Release CAS of whoever moved
            // it (a reader here, the kernel's repair in `reap`): the
            // `published` they saw, at least the position, happens before
            // our load of it, so a good position never looks ahead of
            // what is published (loom_shm_scribble_repair_races_read).
            // The entries' bytes come from our own Acquire of `published`.
            let c = self.mem.consumed().load(Ordering::Acquire);
            let p = self.published();
            if c == p {
                return Local::Empty;
            }
            // A position off the entries' 8-byte grid is a scribble (and
            // would make the word loads in `Mem::read` misaligned).
            if c > p || p - c > self.cap || !c.is_multiple_of(8) {
                return Local::Invalid;
            }
            ends.clear();
            let mut pos = c;
            let mut n = 0;
            while pos < p {
                let (h, rec) = self.entry(pos);
                if !Self::valid(&h, pos) || pos + entry_size(h.len as usize) > p {
                    // Another reader may have taken these entries since our
                    // load of the position, and the kernel reused their
                    // memory: a stale look, not a scribble. Look again.
                    if self.moved_from(c) {
                        continue 'look;
                    }
                    return Local::Invalid;
                }
                let len = h.len as usize;
                let next = pos + entry_size(len);
                if h.flags == F_LOSS && !ends.is_empty() {
                    // pipe_read() emits a loss record after other records
                    // only when another buffer follows it now.
                    if next >= p {
                        break;
                    }
                    let (nh, _) = self.entry(next);
                    if !Self::valid(&nh, next) || nh.flags != F_RING {
                        break;
                    }
                }
                if n + len > out.len() {
                    if ends.is_empty() {
                        // As above: a stale length is no ENOBUFS.
                        if self.moved_from(c) {
                            continue 'look;
                        }
                        return Local::NoBufs;
                    }
                    break;
                }
                // SAFETY: `rec` is the 8-aligned offset of `len` ≤ 128
                // bytes (rounded up to 8: the entry's padding) inside the
                // entries (the entry's header was inside them and SLACK
                // covers an entry running past the end); `out[n..n + len]`
                // is ours.
                unsafe { self.mem.read(rec, out.as_mut_ptr().add(n), len) };
                n += len;
                pos = next;
                let seq = h.seq.wrapping_add(u32::from(h.flags == F_RING));
                ends.push((n, pos, seq));
            }
            let k = deliver(&out[..n], ends).min(ends.len());
            if k == 0 {
                return Local::Fault;
            }
            let (bytes, upto, seq) = ends[k - 1];
            // ORDERING: Release publishes our copies (done above) to the
            // kernel's Acquire in `reap` before it reuses the memory
            // (loom_shm_reap_races_read), and the `published` we saw to
            // the next reader's Acquire of the position. No Acquire: all
            // that follows is `drained`'s apportioning (Relaxed by design),
            // and the next read acquires afresh with its load above; the
            // movers before us need not happen before our CAS for the
            // kernel to acquire them, since an RMW continues their release
            // sequences. A failure reloads (Acquire) and starts again.
            if self
                .mem
                .consumed()
                .compare_exchange(c, upto, Ordering::Release, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let mut drain = 0;
            if upto == p {
                // The stream looks empty after us: our share of the
                // readiness bytes is every one up to our last record's.
                // Relaxed: `drained` only apportions bytes among readers.
                let mut d = self.mem.drained().load(Ordering::Relaxed);
                loop {
                    let owed = seq.wrapping_sub(d as u32);
                    if owed == 0 || owed > 1 << 30 {
                        break;
                    }
                    // Relaxed: as the load.
                    match self.mem.drained().compare_exchange(
                        d,
                        u64::from(seq),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            drain = owed;
                            break;
                        }
                        Err(v) => d = v,
                    }
                }
            }
            return Local::Read { bytes, drain };
        }
    }

    /// Has the shared position moved on from `c` (another reader took
    /// what this read was looking at)?
    fn moved_from(&self, c: u64) -> bool {
        // ORDERING: Relaxed: only the value is used; a moved position
        // sends the read back to its look, whose own Acquire load takes
        // what its mover published.
        self.mem.consumed().load(Ordering::Relaxed) != c
    }

    /// Writes `v` over the shared progress word (tests: a hostile reader).
    pub fn scribble(&self, v: u64) {
        // Relaxed: a deliberate scribble.
        self.mem.consumed().store(v, Ordering::Relaxed);
    }
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn rec(len: u8, tag: u8) -> Vec<u8> {
        let mut v = vec![tag; len as usize];
        v[4] = len;
        v
    }

    #[cfg(not(miri))]
    fn reader(w: &ShmWriter) -> ShmReader {
        ShmReader::open(
            w.ring_file().try_clone().unwrap(),
            w.page_file().try_clone().unwrap(),
        )
        .unwrap()
    }

    /// Miri: the heap mirror's reader (see `Region`).
    #[cfg(miri)]
    fn reader(w: &ShmWriter) -> ShmReader {
        w.reader().unwrap()
    }

    fn read_all(r: &ShmReader, room: usize) -> (Local, Vec<u8>) {
        let mut out = vec![0u8; room];
        let mut ends = Ends::new();
        let mut got = Vec::new();
        let l = r.read(&mut out, &mut ends, &mut |b, e| {
            got = b.to_vec();
            e.len()
        });
        (l, got)
    }

    #[test]
    fn shm_reader_takes_whole_records_once() {
        let mut w = ShmWriter::new(4).unwrap();
        let r = reader(&w);
        let r2 = reader(&w);
        assert_eq!(read_all(&r, 64).0, Local::Empty);
        assert!(w.append(&rec(16, 1), true));
        assert!(w.append(&rec(24, 2), true));
        assert_eq!(read_all(&r, 64).0, Local::Empty, "unpublished");
        w.publish();
        assert_eq!(read_all(&r, 8).0, Local::NoBufs);
        let (l, got) = read_all(&r, 30);
        assert_eq!(
            l,
            Local::Read {
                bytes: 16,
                drain: 0
            }
        );
        assert_eq!(got, rec(16, 1));
        let (l, got) = read_all(&r2, 64);
        assert_eq!(
            l,
            Local::Read {
                bytes: 24,
                drain: 2
            }
        );
        assert_eq!(got, rec(24, 2));
        assert_eq!(read_all(&r, 64).0, Local::Empty);
        assert_eq!(
            w.reap(),
            Reaped {
                records: 2,
                loss_records: 0,
                scribbled: false
            }
        );
    }

    #[test]
    fn shm_loss_record_waits_for_a_following_record() {
        let mut w = ShmWriter::new(4).unwrap();
        let r = reader(&w);
        let loss = rec(8, 0);
        w.append(&rec(16, 1), true);
        w.append(&loss, false);
        w.publish();
        assert_eq!(read_all(&r, 64).1, rec(16, 1), "the loss record waits");
        assert_eq!(read_all(&r, 64).1, loss, "then comes alone");
        w.append(&rec(16, 2), true);
        w.append(&loss, false);
        w.append(&rec(16, 3), true);
        w.publish();
        assert_eq!(
            read_all(&r, 64).1,
            [rec(16, 2), loss.clone(), rec(16, 3)].concat()
        );
        let reaped = w.reap();
        assert_eq!((reaped.records, reaped.loss_records), (3, 2));
    }

    #[test]
    fn shm_a_loss_record_alone_is_not_a_record_to_poll() {
        let mut w = ShmWriter::new(4).unwrap();
        let r = reader(&w);
        assert_eq!(r.has_records(), Some(false));
        w.append(&rec(8, 0), false);
        w.publish();
        assert_eq!(r.has_records(), Some(false));
        assert!(r.pending());
        w.append(&rec(16, 1), true);
        w.publish();
        assert_eq!(r.has_records(), Some(true));
        r.scribble(3);
        assert_eq!(r.has_records(), None);
    }

    #[test]
    fn shm_fault_takes_nothing() {
        let mut w = ShmWriter::new(4).unwrap();
        let r = reader(&w);
        w.append(&rec(16, 1), true);
        w.append(&rec(16, 2), true);
        w.publish();
        let mut out = [0u8; 64];
        let mut ends = Ends::new();
        assert_eq!(r.read(&mut out, &mut ends, &mut |_, _| 0), Local::Fault);
        // One of two delivered: only it is taken.
        assert_eq!(
            r.read(&mut out, &mut ends, &mut |_, _| 1),
            Local::Read {
                bytes: 16,
                drain: 0
            }
        );
        assert_eq!(read_all(&r, 64).1, rec(16, 2));
    }

    #[test]
    fn shm_scribbles_never_reach_past_what_was_published() {
        let mut w = ShmWriter::new(4).unwrap();
        let r = reader(&w);
        for i in 0..3 {
            w.append(&rec(16, i), true);
        }
        w.publish();
        let mut released = 0;
        for bad in [u64::MAX, 7, 1 << 40, 33] {
            r.scribble(bad);
            assert_eq!(read_all(&r, 64).0, Local::Invalid, "{bad}");
            let reaped = w.reap();
            assert!(reaped.scribbled, "{bad}: {reaped:?}");
            released += reaped.records;
        }
        assert_eq!(released, 3, "never more than was published");
        // Repaired: the page says everything was taken; new records flow.
        assert_eq!(read_all(&r, 64).0, Local::Empty);
        w.append(&rec(16, 9), true);
        w.publish();
        assert_eq!(read_all(&r, 64).1, rec(16, 9));
        assert_eq!(w.reap().records, 1);
        assert_eq!(w.scribbles(), 4);
    }

    // The seals: Miri cannot make memfds (see `Region`).
    #[cfg(not(miri))]
    #[test]
    fn shm_ring_cannot_be_mapped_writable() {
        let w = ShmWriter::new(4).unwrap();
        let f = w.ring_file().try_clone().unwrap();
        assert!(memmap2::MmapOptions::new().map_raw(&f).is_err());
        assert!(f.set_len(1 << 20).is_err());
        assert!(f.set_len(64).is_err());
    }

    /// The kernel appending, publishing and reaping on one thread, two
    /// readers taking on two others, over a ring smaller than what is
    /// posted: every record is delivered once, whole, and each reader's
    /// in order. Under Miri (heap memory, weak-memory emulation) this is
    /// what checks the words' orderings on real memory accesses; loom's
    /// models check them on the heap stand-in.
    #[test]
    fn shm_threads_kernel_and_two_readers() {
        const N: u32 = if cfg!(miri) { 40 } else { 20_000 };
        fn record(id: u32) -> Vec<u8> {
            let len = 8 + (id % 15) as usize * 8;
            let mut v = vec![(id as u8) ^ 0x5a; len];
            v[..4].copy_from_slice(&id.to_le_bytes());
            v
        }
        let mut w = ShmWriter::new(2).unwrap();
        let readers = [reader(&w), reader(&w)];
        let taken = std::sync::atomic::AtomicU32::new(0);
        let got: Vec<Vec<u32>> = std::thread::scope(|s| {
            let hs: Vec<_> = readers
                .iter()
                .map(|r| {
                    let taken = &taken;
                    s.spawn(move || {
                        let mut ids = Vec::new();
                        let mut out = vec![0u8; 300];
                        let mut ends = Ends::new();
                        while taken.load(std::sync::atomic::Ordering::Relaxed) < N {
                            let mut recs = Vec::new();
                            let l = r.read(&mut out, &mut ends, &mut |b, e| {
                                let mut at = 0;
                                recs.clear();
                                for &(end, _, _) in e {
                                    recs.push(b[at..end].to_vec());
                                    at = end;
                                }
                                e.len()
                            });
                            match l {
                                Local::Read { .. } => {
                                    for x in &recs {
                                        let id = u32::from_le_bytes(x[..4].try_into().unwrap());
                                        assert_eq!(*x, record(id), "record {id} torn");
                                        ids.push(id);
                                    }
                                    taken.fetch_add(
                                        recs.len() as u32,
                                        std::sync::atomic::Ordering::Relaxed,
                                    );
                                }
                                Local::Empty => std::thread::yield_now(),
                                other => panic!("{other:?}"),
                            }
                        }
                        ids
                    })
                })
                .collect();
            for id in 0..N {
                let x = record(id);
                while !w.append(&x, true) {
                    w.publish();
                    w.reap();
                    std::thread::yield_now();
                }
                w.publish();
            }
            while w.pending() {
                w.reap();
                std::thread::yield_now();
            }
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for ids in &got {
            assert!(
                ids.windows(2).all(|p| p[0] < p[1]),
                "a reader's out of order"
            );
        }
        let mut all: Vec<u32> = got.concat();
        all.sort_unstable();
        assert_eq!(all, (0..N).collect::<Vec<_>>(), "each record once");
        assert_eq!(w.scribbles(), 0);
    }

    #[test]
    fn shm_wraps_many_times() {
        let mut w = ShmWriter::new(2).unwrap();
        let r = reader(&w);
        // Under Miri, over 2 laps of the 4 KiB of entries.
        let n = if cfg!(miri) { 120 } else { 10_000u32 };
        for i in 0..n {
            let mut x = rec(8 + (i % 15) as u8 * 8, i as u8);
            x[0] = (i >> 8) as u8;
            assert!(w.append(&x, true), "{i}");
            w.publish();
            let (l, got) = read_all(&r, 256);
            assert!(matches!(l, Local::Read { .. }), "{i}");
            assert_eq!(got, x);
            assert_eq!(w.reap().records, 1);
        }
    }
}

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
//! | page `consumed` | readers (CAS), the kernel (repairing a scribble) | readers, the kernel (`reap`) | AcqRel CAS / Acquire load | a reader's copies of the entries it passed happen before the kernel reuses their memory |
//! | page `drained` | readers (CAS) | readers, the kernel (diagnostics) | Relaxed | none: it only apportions readiness bytes, read by a separate syscall |

use crate::errno::{Errno, Result};
use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// The seals of a mirror's ring memfd.
pub const RING_SEALS: i32 =
    libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_SEAL;
/// The seals of a mirror's progress page.
pub const PAGE_SEALS: i32 = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

const MAGIC: u64 = u64::from_le_bytes(*b"WQMIRR01");
/// The header page; entries start after it.
const HEADER: usize = 4096;
/// An entry's header: pos (8), seq (4), len (2), flags (2).
const ENTRY_HDR: usize = 16;
/// The longest record (a note).
const MAX_REC: usize = crate::uapi::WATCH_QUEUE_NOTE_SIZE;
/// Past the end of the entries: room for one entry that runs over.
const SLACK: usize = 256;
/// The progress page's size.
const PAGE: usize = 4096;
/// Offsets in the header page.
const OFF_CAP: usize = 8;
const OFF_PUBLISHED: usize = 64;
/// The kernel's word to readers: bit 0, a read that finds the ring empty
/// must ask the kernel (the key collector waits for a consumer, or the
/// write end is gone).
const OFF_FLAGS: usize = 128;
/// Offsets in the progress page.
const OFF_CONSUMED: usize = 0;
const OFF_DRAINED: usize = 64;

/// Entry flag: a record that holds a place in the queue's ring.
const F_RING: u16 = 1;
/// Entry flag: a loss record (read() makes it; it holds no place).
const F_LOSS: u16 = 2;

fn entry_size(len: usize) -> u64 {
    (ENTRY_HDR + len.next_multiple_of(8)) as u64
}

fn last_errno() -> Errno {
    io_errno(std::io::Error::last_os_error())
}

fn io_errno(e: std::io::Error) -> Errno {
    e.raw_os_error()
        .and_then(Errno::from_raw)
        .unwrap_or(Errno::EIO)
}

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

fn add_seals(file: &File, seals: i32) -> Result<()> {
    // SAFETY: F_ADD_SEALS takes an int argument.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

fn seals_of(file: &File) -> i32 {
    // SAFETY: F_GET_SEALS takes no argument.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) }
}

/// The entry bytes a queue of `capacity` records can have live at once:
/// each record (a place in the ring, at most a note) and a loss record
/// before each and after the last, rounded up to a power of two.
fn entries_for(capacity: usize) -> usize {
    let most = capacity * entry_size(MAX_REC) as usize + (capacity + 1) * entry_size(8) as usize;
    most.next_power_of_two().max(4096)
}

/// An atomic word of a mapping.
///
/// # Safety
/// `base + off` is within a live mapping, 8-byte aligned.
unsafe fn word<'a>(base: *mut u8, off: usize) -> &'a AtomicU64 {
    // SAFETY: the caller's contract; AtomicU64 has u64's layout.
    unsafe { &*base.add(off).cast::<AtomicU64>() }
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
    ring_file: File,
    page_file: File,
    ring: memmap2::MmapRaw,
    page: memmap2::MmapRaw,
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
    pub fn new(capacity: usize) -> Result<Self> {
        if capacity == 0 || capacity > 1 << 16 {
            return Err(Errno::EINVAL);
        }
        let cap = entries_for(capacity);
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
        let w = ShmWriter {
            ring_file,
            page_file,
            ring,
            page,
            cap: cap as u64,
            head: 0,
            published: 0,
            released: 0,
            seq: 0,
            live: VecDeque::new(),
            scribbles: 0,
        };
        // SAFETY: offsets 0 and 8 of the header page, in the mapping.
        unsafe {
            // Relaxed: no reader has the memfd yet.
            word(w.ring.as_mut_ptr(), 0).store(MAGIC, Ordering::Relaxed);
            word(w.ring.as_mut_ptr(), OFF_CAP).store(cap as u64, Ordering::Relaxed);
        }
        Ok(w)
    }

    /// The ring's memfd (for readers to map read-only).
    pub fn ring_file(&self) -> &File {
        &self.ring_file
    }

    /// The progress page's memfd (for readers to map writable).
    pub fn page_file(&self) -> &File {
        &self.page_file
    }

    fn consumed(&self) -> &AtomicU64 {
        // SAFETY: offset 0 of the page mapping (4 KiB, sealed).
        unsafe { word(self.page.as_mut_ptr(), OFF_CONSUMED) }
    }

    fn published_word(&self) -> &AtomicU64 {
        // SAFETY: offset 64 of the header page, in the mapping.
        unsafe { word(self.ring.as_mut_ptr(), OFF_PUBLISHED) }
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
        let at = HEADER + (self.head & (self.cap - 1)) as usize;
        let flags = if ring { F_RING } else { F_LOSS };
        let mut hdr = [0u8; ENTRY_HDR];
        hdr[..8].copy_from_slice(&self.head.to_le_bytes());
        hdr[8..12].copy_from_slice(&self.seq.to_le_bytes());
        hdr[12..14].copy_from_slice(&(len as u16).to_le_bytes());
        hdr[14..16].copy_from_slice(&flags.to_le_bytes());
        // SAFETY: `at + size` ≤ HEADER + cap + SLACK (size ≤ 144 < SLACK),
        // inside the mapping; the bytes are not live for any reader (they
        // lie past `published`, and what they held before was released:
        // `head + size - released ≤ cap`).
        unsafe {
            let p = self.ring.as_mut_ptr().add(at);
            std::ptr::copy_nonoverlapping(hdr.as_ptr(), p, ENTRY_HDR);
            std::ptr::copy_nonoverlapping(rec.as_ptr(), p.add(ENTRY_HDR), len);
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
            // that Acquire-loads this position.
            self.published_word()
                .store(self.published, Ordering::Release);
        }
    }

    /// Readiness sequence: ring records appended so far (wrapping).
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Tells readers whether a read that finds the ring empty must ask the
    /// kernel rather than sleep (or say EAGAIN) by itself.
    pub fn set_ask_when_empty(&self, ask: bool) {
        // SAFETY: offset 128 of the header page, in the mapping.
        let w = unsafe { word(self.ring.as_mut_ptr(), OFF_FLAGS) };
        // Relaxed: a hint a reader acts on only after it found the ring
        // empty; the kernel's answer is what counts.
        if (w.load(Ordering::Relaxed) != 0) != ask {
            w.store(u64::from(ask), Ordering::Relaxed);
        }
    }

    /// Readiness bytes the readers claimed so far (the page's word, as it
    /// is: only for telling a stale state from a moving one).
    pub fn drained_word(&self) -> u64 {
        // SAFETY: offset 64 of the page mapping.
        let w = unsafe { word(self.page.as_mut_ptr(), OFF_DRAINED) };
        // Relaxed: compared with itself a moment later, nothing more.
        w.load(Ordering::Relaxed)
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
        // ORDERING: Acquire pairs with the readers' AcqRel CAS: their copies
        // of the entries it passed happen before we reuse the memory.
        let c = self.consumed().load(Ordering::Acquire);
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
            // ORDERING: Release: as a reader's CAS (our stores to the page
            // are only this word). A failure means a reader moved it
            // meanwhile: the next reap looks again.
            let _ = self.consumed().compare_exchange(
                c,
                self.published,
                Ordering::AcqRel,
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
    ring: memmap2::MmapRaw,
    page: memmap2::MmapRaw,
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
        // SAFETY: offsets 0 and 8 of the header page, in the mapping.
        let (magic, cap) = unsafe {
            // Relaxed: written before the memfd was sent (the socket
            // message orders it).
            (
                word(rmap.as_mut_ptr(), 0).load(Ordering::Relaxed),
                word(rmap.as_mut_ptr(), OFF_CAP).load(Ordering::Relaxed),
            )
        };
        if magic != MAGIC
            || !cap.is_power_of_two()
            || HEADER as u64 + cap + SLACK as u64 != rlen as u64
        {
            return Err(Errno::EINVAL);
        }
        Ok(ShmReader {
            ring: rmap,
            page: pmap,
            cap,
        })
    }

    fn consumed(&self) -> &AtomicU64 {
        // SAFETY: offset 0 of the page mapping (4 KiB, sealed).
        unsafe { word(self.page.as_mut_ptr(), OFF_CONSUMED) }
    }

    fn drained(&self) -> &AtomicU64 {
        // SAFETY: offset 64 of the page mapping.
        unsafe { word(self.page.as_mut_ptr(), OFF_DRAINED) }
    }

    fn published(&self) -> u64 {
        // SAFETY: offset 64 of the header page, in the mapping (read-only:
        // a load only).
        let w = unsafe { word(self.ring.as_mut_ptr(), OFF_PUBLISHED) };
        // ORDERING: Acquire pairs with the kernel's Release store: the
        // entries before it are visible.
        w.load(Ordering::Acquire)
    }

    /// The entry header at `pos` and a pointer to its record.
    fn entry(&self, pos: u64) -> (EntryHdr, *const u8) {
        let at = HEADER + (pos & (self.cap - 1)) as usize;
        let mut h = [0u8; ENTRY_HDR];
        // SAFETY: `at + ENTRY_HDR` is within the mapping (HEADER + cap +
        // SLACK bytes, checked at open); a plain copy of bytes the kernel
        // published before the Acquire load of `published`.
        let p = unsafe {
            let p = self.ring.as_ptr().add(at);
            std::ptr::copy_nonoverlapping(p, h.as_mut_ptr(), ENTRY_HDR);
            p.add(ENTRY_HDR)
        };
        let hdr = EntryHdr {
            pos: u64::from_le_bytes(h[..8].try_into().expect("8 bytes")),
            seq: u32::from_le_bytes(h[8..12].try_into().expect("4 bytes")),
            len: u16::from_le_bytes(h[12..14].try_into().expect("2 bytes")),
            flags: u16::from_le_bytes(h[14..16].try_into().expect("2 bytes")),
        };
        (hdr, p)
    }

    fn valid(h: &EntryHdr, pos: u64) -> bool {
        h.pos == pos
            && (8..=MAX_REC as u16).contains(&h.len)
            && (h.flags == F_RING || h.flags == F_LOSS)
    }

    /// Must a read that finds the ring empty ask the kernel (see
    /// [`ShmWriter::set_ask_when_empty`])? Else it may sleep on the read
    /// end, or say EAGAIN, by itself.
    pub fn ask_when_empty(&self) -> bool {
        // SAFETY: offset 128 of the header page, in the mapping (a load).
        let w = unsafe { word(self.ring.as_mut_ptr(), OFF_FLAGS) };
        // Relaxed: a hint (see `set_ask_when_empty`).
        w.load(Ordering::Relaxed) != 0
    }

    /// Is a record (not a loss record alone: poll() does not report
    /// those) published past what readers took? None when the ring is not
    /// as the kernel leaves it (ask the kernel).
    pub fn has_records(&self) -> Option<bool> {
        // ORDERING: Acquire, as in `read`.
        let c = self.consumed().load(Ordering::Acquire);
        let p = self.published();
        if c > p || p - c > self.cap {
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
        self.consumed().load(Ordering::Relaxed) != self.published()
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
        loop {
            // ORDERING: Acquire pairs with the CAS of the reader who moved
            // it (nothing to acquire from the kernel here: `published`).
            let c = self.consumed().load(Ordering::Acquire);
            let p = self.published();
            if c == p {
                return Local::Empty;
            }
            if c > p || p - c > self.cap {
                return Local::Invalid;
            }
            ends.clear();
            let mut pos = c;
            let mut n = 0;
            while pos < p {
                let (h, rec) = self.entry(pos);
                if !Self::valid(&h, pos) || pos + entry_size(h.len as usize) > p {
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
                        return Local::NoBufs;
                    }
                    break;
                }
                // SAFETY: `rec` points at `len` ≤ 128 bytes inside the
                // mapping (the entry's header was inside it and SLACK covers
                // an entry running past the end); `out[n..n + len]` is ours.
                unsafe { std::ptr::copy_nonoverlapping(rec, out.as_mut_ptr().add(n), len) };
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
            // ORDERING: AcqRel: Release publishes our copies (done above)
            // to the kernel's Acquire in `reap` before it reuses the
            // memory; Acquire pairs with the previous mover's.
            if self
                .consumed()
                .compare_exchange(c, upto, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let mut drain = 0;
            if upto == p {
                // The stream looks empty after us: our share of the
                // readiness bytes is every one up to our last record's.
                // Relaxed: `drained` only apportions bytes among readers.
                let mut d = self.drained().load(Ordering::Relaxed);
                loop {
                    let owed = seq.wrapping_sub(d as u32);
                    if owed == 0 || owed > 1 << 30 {
                        break;
                    }
                    // Relaxed: as the load.
                    match self.drained().compare_exchange(
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

    /// Writes `v` over the shared progress word (tests: a hostile reader).
    pub fn scribble(&self, v: u64) {
        // Relaxed: a deliberate scribble.
        self.consumed().store(v, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(len: u8, tag: u8) -> Vec<u8> {
        let mut v = vec![tag; len as usize];
        v[4] = len;
        v
    }

    fn reader(w: &ShmWriter) -> ShmReader {
        ShmReader::open(
            w.ring_file().try_clone().unwrap(),
            w.page_file().try_clone().unwrap(),
        )
        .unwrap()
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

    #[test]
    fn shm_ring_cannot_be_mapped_writable() {
        let w = ShmWriter::new(4).unwrap();
        let f = w.ring_file().try_clone().unwrap();
        assert!(memmap2::MmapOptions::new().map_raw(&f).is_err());
        assert!(f.set_len(1 << 20).is_err());
        assert!(f.set_len(64).is_err());
    }

    #[test]
    fn shm_wraps_many_times() {
        let mut w = ShmWriter::new(2).unwrap();
        let r = reader(&w);
        for i in 0..10_000u32 {
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

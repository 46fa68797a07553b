//! A consumer API for notification queues, written once and run on either
//! the real kernel or watchq.
//!
//! [`NotificationQueue`] is what a consumer holds: it creates a
//! notification pipe, sizes it, sets a filter, adds watches and reads typed
//! [`Record`]s. Underneath is a [`Backend`]: [`RealKernel`] makes the real
//! system calls (`pipe2(O_NOTIFICATION_PIPE)`, the `IOC_WATCH_QUEUE_*`
//! ioctls, `keyctl(KEYCTL_WATCH_KEY)`, `read`, `poll`); [`Emulated`] makes
//! the same calls on a watchq [`Process`]. On a kernel built without
//! `CONFIG_WATCH_QUEUE` the real backend fails to create a queue with
//! `ENOPKG`, exactly as the kernel does, so a consumer's fallback path can
//! be tested on both.
//!
//! ```
//! use watchq_emu::client::{Emulated, KeyChange, NotificationQueue, Record};
//! use watchq_emu::{Kernel, KernelConfig};
//! use watchq_sources::keys::KEY_SPEC_SESSION_KEYRING;
//!
//! let kernel = Kernel::new(KernelConfig::default());
//! let p = kernel.spawn(1000, 1000);
//! p.keyctl_join_session_keyring(None)?;
//! let mut q = NotificationQueue::new(Emulated::new(p.clone()))?;
//! q.set_size(16)?;
//! q.watch_key(KEY_SPEC_SESSION_KEYRING, 1)?;
//! let key = p.add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)?;
//! let records = q.read_available()?;
//! assert_eq!(
//!     records,
//!     [Record::Key { tag: 1, change: KeyChange::Linked, key: 0x1000_0001, aux: key as u32 }]
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Records are parsed with every length checked: a truncated buffer, a
//! length field under 8 bytes, or a record of a known type with the wrong
//! length is a [`RecordError`], never a panic.

use crate::process::PollFd;
use crate::Process;
use std::fmt;
use std::sync::Arc;
use watchq_core::uapi::*;
use watchq_core::{Errno, Notification};

/// The system calls a [`NotificationQueue`] needs.
pub trait Backend {
    /// `pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK)`: the read and write ends.
    fn notification_pipe(&self) -> Result<[i32; 2], Errno>;
    /// `ioctl(fd, IOC_WATCH_QUEUE_SET_SIZE, notes)`.
    fn set_size(&self, fd: i32, notes: u64) -> Result<(), Errno>;
    /// `ioctl(fd, IOC_WATCH_QUEUE_SET_FILTER, blob)` (None: remove the filter).
    fn set_filter(&self, fd: i32, blob: Option<&[u8]>) -> Result<(), Errno>;
    /// `keyctl(KEYCTL_WATCH_KEY, key, fd, tag)`.
    fn watch_key(&self, key: i32, fd: i32, tag: i32) -> Result<(), Errno>;
    /// `watch_mount(AT_FDCWD, path, 0, fd, tag)` (never merged: the real
    /// kernel has no such call, ENOSYS).
    fn watch_mount(&self, path: &str, fd: i32, tag: i32) -> Result<(), Errno>;
    /// `watch_sb(AT_FDCWD, path, 0, fd, tag)` (never merged: ENOSYS).
    fn watch_sb(&self, path: &str, fd: i32, tag: i32) -> Result<(), Errno>;
    /// `watch_devices(fd, tag, 0)` (never merged: ENOSYS).
    fn watch_devices(&self, fd: i32, tag: i32) -> Result<(), Errno>;
    /// `read(fd, buf)`.
    fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize, Errno>;
    /// `poll` for POLLIN: true if readable within `timeout_ms` (-1: forever).
    fn poll_in(&self, fd: i32, timeout_ms: i32) -> Result<bool, Errno>;
    /// `close(fd)`.
    fn close(&self, fd: i32);
}

/// The real kernel's system calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealKernel;

/// watchq's emulated kernel, as one of its processes.
#[derive(Clone)]
pub struct Emulated {
    process: Arc<Process>,
}

impl Emulated {
    /// Calls made as `process`.
    pub fn new(process: Arc<Process>) -> Self {
        Emulated { process }
    }

    /// The process the calls are made as.
    pub fn process(&self) -> &Arc<Process> {
        &self.process
    }
}

impl Backend for Emulated {
    fn notification_pipe(&self) -> Result<[i32; 2], Errno> {
        self.process.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK)
    }
    fn set_size(&self, fd: i32, notes: u64) -> Result<(), Errno> {
        self.process.set_queue_size(fd, notes)
    }
    fn set_filter(&self, fd: i32, blob: Option<&[u8]>) -> Result<(), Errno> {
        self.process.set_queue_filter(fd, blob)
    }
    fn watch_key(&self, key: i32, fd: i32, tag: i32) -> Result<(), Errno> {
        self.process.keyctl_watch_key(key, fd, tag)
    }
    fn watch_mount(&self, path: &str, fd: i32, tag: i32) -> Result<(), Errno> {
        self.process
            .watch_mount(crate::process::AT_FDCWD, path, 0, fd, tag)
    }
    fn watch_sb(&self, path: &str, fd: i32, tag: i32) -> Result<(), Errno> {
        self.process
            .watch_sb(crate::process::AT_FDCWD, path, 0, fd, tag)
    }
    fn watch_devices(&self, fd: i32, tag: i32) -> Result<(), Errno> {
        self.process.watch_devices(fd, tag, 0)
    }
    fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
        self.process.read(fd, buf)
    }
    fn poll_in(&self, fd: i32, timeout_ms: i32) -> Result<bool, Errno> {
        let mut fds = [PollFd::new(fd, POLLIN)];
        Ok(self.process.poll(&mut fds, timeout_ms)? > 0)
    }
    fn close(&self, fd: i32) {
        let _ = self.process.close(fd);
    }
}

/// The real system calls. The only unsafe code of this crate: each call
/// passes pointers to live, correctly sized buffers owned by the caller.
#[allow(unsafe_code)]
mod real {
    use super::{Backend, RealKernel};
    use watchq_core::uapi::{
        IOC_WATCH_QUEUE_SET_FILTER, IOC_WATCH_QUEUE_SET_SIZE, O_NONBLOCK, O_NOTIFICATION_PIPE,
    };
    use watchq_core::Errno;

    /// `KEYCTL_WATCH_KEY`.
    const KEYCTL_WATCH_KEY: libc::c_long = 32;

    /// The calling thread's errno (EIO for a number watchq does not know,
    /// which none of these calls returns).
    fn errno() -> Errno {
        std::io::Error::last_os_error()
            .raw_os_error()
            .and_then(Errno::from_raw)
            .unwrap_or(Errno::EIO)
    }

    fn check(r: libc::c_long) -> Result<libc::c_long, Errno> {
        if r < 0 {
            Err(errno())
        } else {
            Ok(r)
        }
    }

    impl Backend for RealKernel {
        fn notification_pipe(&self) -> Result<[i32; 2], Errno> {
            let mut fds = [-1i32; 2];
            // SAFETY: `fds` is a live array of two ints, as pipe2 writes.
            let r =
                unsafe { libc::pipe2(fds.as_mut_ptr(), (O_NOTIFICATION_PIPE | O_NONBLOCK) as i32) };
            check(r.into()).map(|_| fds)
        }
        fn set_size(&self, fd: i32, notes: u64) -> Result<(), Errno> {
            // SAFETY: this ioctl takes its argument by value.
            let r =
                unsafe { libc::ioctl(fd, IOC_WATCH_QUEUE_SET_SIZE as _, notes as libc::c_ulong) };
            check(r.into()).map(drop)
        }
        fn set_filter(&self, fd: i32, blob: Option<&[u8]>) -> Result<(), Errno> {
            let p = blob.map_or(std::ptr::null(), <[u8]>::as_ptr);
            // SAFETY: `p` is null (remove the filter) or points at the
            // caller's whole filter blob, which the kernel only reads.
            let r = unsafe { libc::ioctl(fd, IOC_WATCH_QUEUE_SET_FILTER as _, p) };
            check(r.into()).map(drop)
        }
        fn watch_key(&self, key: i32, fd: i32, tag: i32) -> Result<(), Errno> {
            // SAFETY: keyctl(KEYCTL_WATCH_KEY) takes three integers.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_keyctl,
                    KEYCTL_WATCH_KEY,
                    libc::c_long::from(key),
                    libc::c_long::from(fd),
                    libc::c_long::from(tag),
                )
            };
            check(r).map(drop)
        }
        fn watch_mount(&self, _: &str, _: i32, _: i32) -> Result<(), Errno> {
            Err(Errno::ENOSYS)
        }
        fn watch_sb(&self, _: &str, _: i32, _: i32) -> Result<(), Errno> {
            Err(Errno::ENOSYS)
        }
        fn watch_devices(&self, _: i32, _: i32) -> Result<(), Errno> {
            Err(Errno::ENOSYS)
        }
        fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
            // SAFETY: `buf` is live and writable for its whole length.
            let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            check(r as libc::c_long).map(|n| n as usize)
        }
        fn poll_in(&self, fd: i32, timeout_ms: i32) -> Result<bool, Errno> {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
            check(r.into()).map(|n| n > 0)
        }
        fn close(&self, fd: i32) {
            // SAFETY: the fd is the queue's own, closed once (on drop).
            unsafe { libc::close(fd) };
        }
    }
}

/// A key record's change (the `NOTIFY_KEY_*` subtypes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// `NOTIFY_KEY_INSTANTIATED`.
    Instantiated,
    /// `NOTIFY_KEY_UPDATED`.
    Updated,
    /// `NOTIFY_KEY_LINKED`: `aux` was linked into the keyring.
    Linked,
    /// `NOTIFY_KEY_UNLINKED`: `aux` was unlinked from the keyring.
    Unlinked,
    /// `NOTIFY_KEY_CLEARED`.
    Cleared,
    /// `NOTIFY_KEY_REVOKED`.
    Revoked,
    /// `NOTIFY_KEY_INVALIDATED`.
    Invalidated,
    /// `NOTIFY_KEY_SETATTR`.
    SetAttr,
    /// A subtype this version does not know.
    Other(u8),
}

impl KeyChange {
    fn of(st: u8) -> KeyChange {
        match st {
            NOTIFY_KEY_INSTANTIATED => KeyChange::Instantiated,
            NOTIFY_KEY_UPDATED => KeyChange::Updated,
            NOTIFY_KEY_LINKED => KeyChange::Linked,
            NOTIFY_KEY_UNLINKED => KeyChange::Unlinked,
            NOTIFY_KEY_CLEARED => KeyChange::Cleared,
            NOTIFY_KEY_REVOKED => KeyChange::Revoked,
            NOTIFY_KEY_INVALIDATED => KeyChange::Invalidated,
            NOTIFY_KEY_SETATTR => KeyChange::SetAttr,
            o => KeyChange::Other(o),
        }
    }
}

/// One notification record, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Records were lost after the previous one (the queue was full).
    Loss,
    /// A watch ended: its tag, and the watched object's id when the
    /// record carries one (16-byte form).
    Removal {
        /// The watch's tag.
        tag: u8,
        /// The object's id.
        id: Option<u64>,
    },
    /// A key or keyring changed.
    Key {
        /// The watch's tag.
        tag: u8,
        /// What happened.
        change: KeyChange,
        /// The key (or keyring) the watch is on.
        key: u32,
        /// The other key involved (linked or unlinked), else 0.
        aux: u32,
    },
    /// A block device request error (subtype: the error kind).
    Block {
        /// The watch's tag.
        tag: u8,
        /// The error kind (`NOTIFY_BLOCK_ERROR_*`).
        kind: u8,
        /// The device number.
        dev: u64,
        /// The failed sector.
        sector: u64,
    },
    /// A USB device event (subtype: add, remove, reset, error…).
    Usb {
        /// The watch's tag.
        tag: u8,
        /// The event.
        subtype: u8,
        /// The error code (error events).
        error: u32,
        /// The device name (`1-1.2`).
        name: String,
    },
    /// A mount event.
    Mount {
        /// The watch's tag.
        tag: u8,
        /// The event (`NOTIFY_MOUNT_*`).
        subtype: u8,
        /// The mount the event happened on.
        triggered_on: u64,
        /// The other mount involved, else 0.
        aux: u64,
        /// The event came from below the watched mount.
        in_subtree: bool,
        /// The mount is read-only (readonly events).
        readonly: bool,
    },
    /// A superblock event.
    Superblock {
        /// The watch's tag.
        tag: u8,
        /// The event (`NOTIFY_SUPERBLOCK_*`).
        subtype: u8,
        /// The superblock.
        sb_id: u64,
        /// The error and cookie of an error event.
        error: Option<(u32, u32)>,
        /// The superblock is read-only (readonly events).
        readonly: bool,
    },
    /// A record of a type this version does not decode.
    Other {
        /// Its type.
        type_: u32,
        /// Its subtype.
        subtype: u8,
        /// Its info word.
        info: u32,
        /// The bytes after the header.
        payload: Vec<u8>,
    },
}

/// Why bytes are not a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than a header (8) or than the record's length field says.
    Truncated {
        /// Bytes the record needs.
        need: usize,
        /// Bytes there are.
        have: usize,
    },
    /// A length field under 8 bytes.
    BadLength(usize),
    /// A record of a known type whose length is not that type's.
    WrongLength {
        /// The record's type.
        type_: u32,
        /// Its subtype.
        subtype: u8,
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Truncated { need, have } => {
                write!(f, "truncated record: needs {need} bytes, {have} left")
            }
            RecordError::BadLength(n) => write!(f, "record length {n} is under 8 bytes"),
            RecordError::WrongLength {
                type_,
                subtype,
                len,
            } => write!(
                f,
                "a record of type {type_} subtype {subtype} cannot be {len} bytes long"
            ),
        }
    }
}

impl std::error::Error for RecordError {}

/// Little-endian fields of a record's payload (offsets after the header).
fn le32(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(p[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(p: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(p[at..at + 8].try_into().expect("8 bytes"))
}

impl Record {
    /// Parses the record at the start of `buf`: it and its length.
    ///
    /// # Errors
    /// A [`RecordError`] when the bytes are not a whole, well-formed record.
    pub fn parse(buf: &[u8]) -> Result<(Record, usize), RecordError> {
        // The core decoder checks the same three things but answers EINVAL
        // for all of them; tell them apart first.
        if buf.len() < 8 {
            return Err(RecordError::Truncated {
                need: 8,
                have: buf.len(),
            });
        }
        let len =
            (u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]) & WATCH_INFO_LENGTH) as usize;
        if len < 8 {
            return Err(RecordError::BadLength(len));
        }
        let n = Notification::decode(buf).map_err(|_| RecordError::Truncated {
            need: len,
            have: buf.len(),
        })?;
        let (type_, subtype, info, tag) = (n.type_(), n.subtype(), n.info(), n.tag());
        let p = n.payload();
        let wrong = || RecordError::WrongLength {
            type_,
            subtype,
            len,
        };
        let rec = match (type_, subtype) {
            (WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION) if len == 8 => Record::Loss,
            (WATCH_TYPE_META, WATCH_META_REMOVAL_NOTIFICATION) if len == 8 => {
                Record::Removal { tag, id: None }
            }
            (WATCH_TYPE_META, WATCH_META_REMOVAL_NOTIFICATION) => Record::Removal {
                tag,
                id: Some(n.removal_id().ok_or_else(wrong)?),
            },
            (WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION) => return Err(wrong()),
            (WATCH_TYPE_KEY_NOTIFY, st) => {
                let (key, aux) = n.key_fields().ok_or_else(wrong)?;
                Record::Key {
                    tag,
                    change: KeyChange::of(st),
                    key,
                    aux,
                }
            }
            (WATCH_TYPE_BLOCK_NOTIFY, kind) if len == 24 => Record::Block {
                tag,
                kind,
                dev: le64(p, 0),
                sector: le64(p, 8),
            },
            (WATCH_TYPE_USB_NOTIFY, st)
                if len >= usb::NAME_OFFSET && usb::NAME_OFFSET + usize::from(p[8]) <= len =>
            {
                let name = &p[9..9 + usize::from(p[8])];
                Record::Usb {
                    tag,
                    subtype: st,
                    error: le32(p, 0),
                    name: String::from_utf8_lossy(name).into_owned(),
                }
            }
            (WATCH_TYPE_MOUNT_NOTIFY, st) if len == 24 => Record::Mount {
                tag,
                subtype: st,
                triggered_on: le64(p, 0),
                aux: le64(p, 8),
                in_subtree: info & WATCH_INFO_FLAG_0 != 0,
                readonly: info & WATCH_INFO_FLAG_1 != 0,
            },
            (WATCH_TYPE_SB_NOTIFY, st) if len == 16 || len == 24 => Record::Superblock {
                tag,
                subtype: st,
                sb_id: le64(p, 0),
                error: (len == 24).then(|| (le32(p, 8), le32(p, 12))),
                readonly: info & WATCH_INFO_FLAG_0 != 0,
            },
            (
                WATCH_TYPE_BLOCK_NOTIFY
                | WATCH_TYPE_USB_NOTIFY
                | WATCH_TYPE_MOUNT_NOTIFY
                | WATCH_TYPE_SB_NOTIFY,
                _,
            ) => return Err(wrong()),
            _ => Record::Other {
                type_,
                subtype,
                info,
                payload: p.to_vec(),
            },
        };
        Ok((rec, len))
    }

    /// Parses a whole read() buffer: its records back to back.
    ///
    /// # Errors
    /// The first record that is not whole and well formed.
    pub fn parse_all(mut buf: &[u8]) -> Result<Vec<Record>, RecordError> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let (r, n) = Record::parse(buf)?;
            out.push(r);
            buf = &buf[n..];
        }
        Ok(out)
    }
}

/// Why a queue operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The system call failed with this errno.
    Sys(Errno),
    /// The kernel returned bytes that are not records.
    Record(RecordError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Sys(e) => write!(f, "{e} ({})", e.name()),
            ClientError::Record(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<Errno> for ClientError {
    fn from(e: Errno) -> Self {
        ClientError::Sys(e)
    }
}

impl From<RecordError> for ClientError {
    fn from(e: RecordError) -> Self {
        ClientError::Record(e)
    }
}

/// One entry of a [`Filter`]: a record type and which of its subtypes pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterEntry {
    /// The record type (`WATCH_TYPE_*`).
    pub type_: u32,
    /// The subtypes that pass (None: all of them).
    pub subtypes: Option<Vec<u8>>,
}

/// A queue filter: only records of the listed types (and subtypes) pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The entries.
    pub entries: Vec<FilterEntry>,
}

impl Filter {
    /// A filter passing nothing until entries are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets records of `type_` through, of the given subtypes or all.
    pub fn allow(mut self, type_: u32, subtypes: Option<&[u8]>) -> Self {
        self.entries.push(FilterEntry {
            type_,
            subtypes: subtypes.map(<[u8]>::to_vec),
        });
        self
    }

    /// The blob `IOC_WATCH_QUEUE_SET_FILTER` takes.
    pub fn to_blob(&self) -> Vec<u8> {
        let raw: Vec<RawWatchNotificationTypeFilter> = self
            .entries
            .iter()
            .map(|e| {
                let mut r = RawWatchNotificationTypeFilter {
                    type_: e.type_,
                    ..Default::default()
                };
                match &e.subtypes {
                    None => r.subtype_filter = [u32::MAX; 8],
                    Some(s) => {
                        for &st in s {
                            r.subtype_filter[usize::from(st / 32)] |= 1 << (st % 32);
                        }
                    }
                }
                r
            })
            .collect();
        filter_blob(&raw)
    }
}

/// A notification queue: the read end of a notification pipe.
pub struct NotificationQueue<B: Backend> {
    backend: B,
    fds: [i32; 2],
    buf: Vec<u8>,
}

impl<B: Backend> NotificationQueue<B> {
    /// Creates the queue (`pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK)`).
    ///
    /// # Errors
    /// `ENOPKG` on a kernel without notification support; the errno of
    /// `pipe2` otherwise (EMFILE, ENFILE…).
    pub fn new(backend: B) -> Result<Self, Errno> {
        let fds = backend.notification_pipe()?;
        Ok(NotificationQueue {
            backend,
            fds,
            buf: vec![0; 4096],
        })
    }

    /// The read end's fd (to add to an event loop).
    pub fn fd(&self) -> i32 {
        self.fds[0]
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// `IOC_WATCH_QUEUE_SET_SIZE`: room for `notes` records (1..512).
    ///
    /// # Errors
    /// As the ioctl: EINVAL out of range, EBUSY once sized, ENOMEM, EPERM.
    pub fn set_size(&mut self, notes: u64) -> Result<(), Errno> {
        self.backend.set_size(self.fds[0], notes)
    }

    /// `IOC_WATCH_QUEUE_SET_FILTER`; None removes the filter.
    ///
    /// # Errors
    /// As the ioctl (EINVAL for a filter it refuses).
    pub fn set_filter(&mut self, filter: Option<&Filter>) -> Result<(), Errno> {
        let blob = filter.map(Filter::to_blob);
        self.backend.set_filter(self.fds[0], blob.as_deref())
    }

    /// `KEYCTL_WATCH_KEY` with `tag` (-1 removes the watch).
    ///
    /// # Errors
    /// As keyctl: ENOKEY, EACCES, EBUSY (already watched), EBADSLT…
    pub fn watch_key(&mut self, key: i32, tag: i32) -> Result<(), Errno> {
        self.backend.watch_key(key, self.fds[0], tag)
    }

    /// `watch_mount` on `path` and its subtree.
    ///
    /// # Errors
    /// ENOSYS on a real kernel (never merged); as watchq's `watch_mount`.
    pub fn watch_mount(&mut self, path: &str, tag: i32) -> Result<(), Errno> {
        self.backend.watch_mount(path, self.fds[0], tag)
    }

    /// `watch_sb` on the superblock of `path`.
    ///
    /// # Errors
    /// ENOSYS on a real kernel (never merged); as watchq's `watch_sb`.
    pub fn watch_sb(&mut self, path: &str, tag: i32) -> Result<(), Errno> {
        self.backend.watch_sb(path, self.fds[0], tag)
    }

    /// `watch_devices` on the global device list.
    ///
    /// # Errors
    /// ENOSYS on a real kernel (never merged); as watchq's `watch_devices`.
    pub fn watch_devices(&mut self, tag: i32) -> Result<(), Errno> {
        self.backend.watch_devices(self.fds[0], tag)
    }

    /// Is a record waiting? Waits up to `timeout_ms` (-1: forever).
    ///
    /// # Errors
    /// As poll (EINTR).
    pub fn poll(&self, timeout_ms: i32) -> Result<bool, Errno> {
        self.backend.poll_in(self.fds[0], timeout_ms)
    }

    /// One read() of up to 4096 bytes: the records it returned (empty when
    /// nothing is queued).
    ///
    /// # Errors
    /// The read's errno (other than EAGAIN), or a [`RecordError`] for bytes
    /// that are not records.
    pub fn read_once(&mut self) -> Result<Vec<Record>, ClientError> {
        match self.backend.read(self.fds[0], &mut self.buf) {
            Ok(n) => Ok(Record::parse_all(&self.buf[..n])?),
            Err(Errno::EAGAIN) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every record queued now, in order.
    ///
    /// # Errors
    /// As [`Self::read_once`].
    pub fn read_available(&mut self) -> Result<Vec<Record>, ClientError> {
        let mut all = Vec::new();
        loop {
            let got = self.read_once()?;
            if got.is_empty() {
                return Ok(all);
            }
            all.extend(got);
        }
    }

    /// The queued records as an iterator (stops when the queue is empty or
    /// at the first error, which it yields).
    pub fn records(&mut self) -> Records<'_, B> {
        Records {
            q: self,
            pending: std::collections::VecDeque::new(),
            done: false,
        }
    }
}

impl<B: Backend> Drop for NotificationQueue<B> {
    fn drop(&mut self) {
        for fd in self.fds {
            self.backend.close(fd);
        }
    }
}

/// The iterator of [`NotificationQueue::records`].
pub struct Records<'a, B: Backend> {
    q: &'a mut NotificationQueue<B>,
    pending: std::collections::VecDeque<Record>,
    done: bool,
}

impl<B: Backend> Iterator for Records<'_, B> {
    type Item = Result<Record, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(r) = self.pending.pop_front() {
            return Some(Ok(r));
        }
        if self.done {
            return None;
        }
        match self.q.read_once() {
            Ok(v) if v.is_empty() => {
                self.done = true;
                None
            }
            Ok(v) => {
                self.pending.extend(v);
                self.pending.pop_front().map(Ok)
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

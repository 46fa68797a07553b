//! The wire protocol between the kernel server and its clients.
//!
//! Owns [`Request`] and [`Reply`], their encoding and their decoding. One
//! message is one `SOCK_SEQPACKET` packet (the socket keeps the
//! boundaries), at most [`MAX_MSG`] bytes, little-endian:
//!
//! ```text
//! request: version:u8  op:u8  fields of the op ...
//! reply:   version:u8  0xff   errno:i32  value:i64  drain:u32  data:bytes
//! notice:  version:u8  0xfd   (a key call waits: its reply follows)
//! bytes:   len:u32 then len bytes        str: bytes, valid UTF-8
//! opt<T>:  0:u8, or 1:u8 then T
//! ```
//!
//! A descriptor a call acts on travels beside the message, in an
//! `SCM_RIGHTS` control message, never as a number; who sends is in the
//! `SCM_CREDENTIALS` the real kernel attaches. Neither is part of these
//! bytes.
//!
//! Hand-written, not serde with a binary format: the preload links this
//! crate, and serde plus a format crate would put two dependencies (and
//! their allocation on a length the peer claims) into every process under
//! `watchq exec` for twenty small messages; here every length is checked
//! against the bytes actually received before anything is allocated, the
//! version byte is ours to bump, and the fuzz body and the tests see the
//! whole grammar in one page. Every decode is bounds-checked: any input
//! yields a value or a [`WireError`], never a panic.

use std::fmt;
use watchq_core::Errno;

/// The protocol version; a peer speaking another is refused.
pub const VERSION: u8 = 1;

/// The largest message, either way (a key payload is at most 32 KiB, a
/// read at most [`MAX_READ`]).
pub const MAX_MSG: usize = 128 * 1024;

/// The most record bytes one read request returns.
pub const MAX_READ: usize = 64 * 1024;

/// The op byte of every reply.
const REPLY: u8 = 0xff;

/// Set in a request's op byte: its blob (a key payload) is not in the
/// message but in a memfd attached last, because it would not fit
/// [`MAX_MSG`] (add_key takes up to 1 MiB).
pub const BLOB_IN_FD: u8 = 0x80;

/// The largest blob a memfd may carry (add_key's own limit is 1 MiB - 1).
pub const MAX_BLOB: usize = 1 << 20;

/// The op byte of a reply whose data is in a memfd attached last (a key's
/// payload read back can be 1 MiB).
const REPLY_BLOB: u8 = 0xfe;

/// The op byte of a notice that comes before a key call's reply: the
/// call has begun to wait for a key under construction
/// ([`Reply::waiting_notice`]).
const WAITING: u8 = 0xfd;

/// What a client asks the kernel. The descriptor a call names (`fd` in
/// the comments) is attached as `SCM_RIGHTS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The first message of a connection. `exec`: a new program image (the
    /// library was just loaded), as opposed to a reconnection.
    Hello {
        /// A new image: the process's thread and process keyrings go.
        exec: bool,
    },
    /// `pipe2(O_NOTIFICATION_PIPE | flags)`: the reply carries the read and
    /// the write end, real pipe ends.
    Pipe2 {
        /// pipe2's flags.
        flags: u32,
    },
    /// `read(fd, count)` without sleeping: the records, or EAGAIN.
    Read {
        /// Bytes the caller's buffer holds.
        count: u32,
    },
    /// [`Request::Read`] answered with the records themselves, never
    /// [`READ_LOOK`]: for a reader that cannot read the pipe's mirror
    /// (a signal handler that interrupted its thread at the table of
    /// mirrors; a process at its descriptor limit, which could not
    /// receive the mirror's memfds). The kernel takes the records from the
    /// mirror for it, as a reader would.
    ReadValue {
        /// Bytes the caller's buffer holds.
        count: u32,
    },
    /// Gives back the last `len` bytes of this connection's last read of
    /// `fd` (whole records the caller could not copy out: EFAULT).
    Unread {
        /// Bytes to give back.
        len: u32,
    },
    /// `ioctl(fd, cmd, arg)`; `mem` is the readable user memory at `arg`
    /// for commands that read it.
    Ioctl {
        /// The command.
        cmd: u64,
        /// The raw argument.
        arg: u64,
        /// The bytes at `arg`, as far as they could be read.
        mem: Option<Vec<u8>>,
    },
    /// `fcntl(fd, cmd, arg)` for the pipe's own commands.
    Fcntl {
        /// The command.
        cmd: i32,
        /// The argument.
        arg: u64,
    },
    /// The emulated `poll()` events of `fd`.
    Poll {
        /// Requested events.
        events: u16,
    },
    /// add_key(2).
    AddKey {
        /// Key type.
        ktype: String,
        /// Description.
        desc: Option<String>,
        /// Payload.
        payload: Vec<u8>,
        /// Destination keyring.
        ring: i32,
    },
    /// request_key(2).
    RequestKey {
        /// Key type.
        ktype: String,
        /// Description.
        desc: String,
        /// Destination keyring.
        dest: i32,
        /// The call-out information, if any.
        callout: Option<Vec<u8>>,
    },
    /// keyctl(2): the command, its four integer arguments, and the strings
    /// and data the command reads (already copied from user memory). For
    /// KEYCTL_WATCH_KEY the queue is attached as `fd`.
    Keyctl {
        /// The command.
        op: u32,
        /// The integer arguments.
        args: [u64; 4],
        /// The first string argument, if the command has one.
        s1: Option<String>,
        /// The second string argument.
        s2: Option<String>,
        /// The data argument (payload).
        data: Option<Vec<u8>>,
    },
    /// The next key call is made by thread `tid` of the process (sent
    /// before a key call from any thread but the main one): thread
    /// keyrings are per thread.
    Thread {
        /// The caller's thread id.
        tid: u32,
    },
    /// The caller has just forked (or spawned) real process `pid`: the
    /// kernel enters it as a fork of the caller, while the caller is alive
    /// to vouch for it (the kernel checks `pid`'s real parent is the
    /// caller).
    Forked {
        /// The child's pid.
        pid: u32,
    },
    /// A signal handler ran in the thread waiting for this connection's
    /// key call: a wait of that call for a key under construction ends as
    /// the kernel's does when a signal is pending (sent while the call is
    /// in progress; no reply: the call's own reply follows, and a call
    /// that has already ended makes it a no-op).
    Interrupt,
    /// Mirrors the caller's `RLIMIT_NOFILE` (it bounds the user's watches).
    Rlimit {
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
    },
    /// The statistics of the queue behind `fd`.
    Stats,
    /// `open("/dev/watch_queue", flags)`: the reply carries the program's
    /// descriptor (a real pipe's read end, readable while the ring has
    /// records).
    OpenDev {
        /// open's flags.
        flags: u32,
    },
    /// `mmap()` of the `/dev/watch_queue` descriptor `fd`: the reply
    /// carries the ring's memfd, which the caller maps itself.
    Mmap {
        /// Length asked for.
        len: u64,
        /// `MAP_SHARED`.
        shared: bool,
        /// Offset asked for.
        offset: u64,
    },
    /// watch_devices(2) on the queue `fd`.
    WatchDevices {
        /// Tag, or −1 to remove.
        tag: i32,
        /// Flags.
        flags: u32,
    },
    /// watch_mount(2) (`sb` false) or watch_sb(2) on the queue `fd`, of an
    /// absolute path.
    WatchPath {
        /// watch_sb rather than watch_mount.
        sb: bool,
        /// The path.
        path: String,
        /// `AT_*` flags.
        at_flags: u32,
        /// Tag, or −1 to remove.
        tag: i32,
    },
    /// `open()` of one of the key subsystem's `/proc` files (`path`,
    /// absolute and normalised). The reply's data is the file's text;
    /// a writable open's reply carries a real pipe's write end, whose
    /// bytes the kernel takes as writes to the file (for writes the
    /// library does not see: stdio's).
    ProcOpen {
        /// The path.
        path: String,
        /// open's flags.
        flags: u32,
    },
    /// `read()` of a `/proc` file at `pos`.
    ProcRead {
        /// The path.
        path: String,
        /// The file position.
        pos: u64,
        /// Bytes the caller's buffer holds.
        count: u32,
    },
    /// `write()` of `data` to a `/proc` file at `pos`.
    ProcWrite {
        /// The path.
        path: String,
        /// The file position.
        pos: u64,
        /// The bytes written.
        data: Vec<u8>,
    },
    /// Take the bytes waiting in a writable `/proc` open's pipe (the
    /// pipe's inode) now, as a write by the caller: how stdio's writes,
    /// which the library does not see, get the handler's errno at
    /// `fflush`/`fclose`.
    ProcSync {
        /// `st_ino` of the pipe.
        ino: u64,
    },
}

/// A read's value that means: the records are in the pipe's shared-memory
/// mirror, read them there (`watchq_core::ring::shm`). The first such reply
/// on a connection carries the mirror's two memfds (ring, progress page).
pub const READ_LOOK: i64 = -1;

/// The kernel's answer: `errno` 0 and `value`, or the errno. `drain` is how
/// many readiness bytes the caller must read from the descriptor it sent
/// (see the server's readiness rule); `data` is the call's output bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// 0, or the error.
    pub errno: i32,
    /// The call's value.
    pub value: i64,
    /// Readiness bytes to drain from the sent descriptor.
    pub drain: u32,
    /// Output bytes (records, a description, a payload).
    pub data: Vec<u8>,
}

impl Reply {
    /// A success with `value`.
    pub fn ok(value: i64) -> Self {
        Reply {
            value,
            ..Reply::default()
        }
    }

    /// A failure.
    pub fn err(e: Errno) -> Self {
        Reply {
            errno: e.as_raw(),
            ..Reply::default()
        }
    }

    /// The value, or the errno (EIO for a number watchq has no name for).
    ///
    /// # Errors
    /// The reply's errno.
    pub fn result(&self) -> watchq_core::Result<i64> {
        if self.errno == 0 {
            Ok(self.value)
        } else {
            Err(Errno::from_raw(self.errno).unwrap_or(Errno::EIO))
        }
    }
}

/// Why bytes are not a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The message ended inside a field.
    Short,
    /// Another protocol version.
    Version(u8),
    /// An op this version does not have.
    Op(u8),
    /// An option tag other than 0 or 1.
    Tag(u8),
    /// A string that is not UTF-8.
    Utf8,
    /// Bytes after the last field.
    Trailing(usize),
    /// Longer than [`MAX_MSG`].
    TooLong(usize),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Short => write!(f, "message ends inside a field"),
            WireError::Version(v) => write!(f, "protocol version {v}, not {VERSION}"),
            WireError::Op(o) => write!(f, "unknown op {o}"),
            WireError::Tag(t) => write!(f, "option tag {t}"),
            WireError::Utf8 => write!(f, "string is not UTF-8"),
            WireError::Trailing(n) => write!(f, "{n} bytes after the last field"),
            WireError::TooLong(n) => write!(f, "{n} bytes, more than {MAX_MSG}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Appends fields to a message.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
        self
    }
    fn opt_bytes(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(b) => self.u8(1).bytes(b),
        }
    }
}

/// Takes fields off a received message, every one bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Short);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(WireError::Tag(t)),
        }
    }
    /// A length-prefixed field: the length is checked against what is
    /// left before anything is copied.
    fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn str(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?).map_err(|_| WireError::Utf8)
    }
    fn opt<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, WireError>,
    ) -> Result<Option<T>, WireError> {
        if self.bool()? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }
    fn finish(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing(self.0.len()))
        }
    }
}

/// Checks the length and version; returns the op and the fields.
fn open_message(b: &[u8]) -> Result<(u8, Reader<'_>), WireError> {
    if b.len() > MAX_MSG {
        return Err(WireError::TooLong(b.len()));
    }
    let mut r = Reader(b);
    let v = r.u8()?;
    if v != VERSION {
        return Err(WireError::Version(v));
    }
    let op = r.u8()?;
    Ok((op, r))
}

mod op {
    pub const HELLO: u8 = 1;
    pub const PIPE2: u8 = 2;
    pub const READ: u8 = 3;
    pub const UNREAD: u8 = 4;
    pub const IOCTL: u8 = 5;
    pub const FCNTL: u8 = 6;
    pub const POLL: u8 = 7;
    pub const ADD_KEY: u8 = 8;
    pub const REQUEST_KEY: u8 = 9;
    pub const KEYCTL: u8 = 10;
    pub const RLIMIT: u8 = 11;
    pub const STATS: u8 = 12;
    pub const OPEN_DEV: u8 = 13;
    pub const MMAP: u8 = 14;
    pub const WATCH_DEVICES: u8 = 15;
    pub const WATCH_PATH: u8 = 16;
    pub const PROC_OPEN: u8 = 17;
    pub const PROC_READ: u8 = 18;
    pub const PROC_WRITE: u8 = 19;
    pub const THREAD: u8 = 20;
    pub const FORKED: u8 = 21;
    pub const PROC_SYNC: u8 = 22;
    pub const INTERRUPT: u8 = 23;
    pub const READ_VALUE: u8 = 24;
}

impl Request {
    /// The message's bytes (a string or blob over [`MAX_MSG`] makes a
    /// message the peer refuses; callers bound them first).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(VERSION);
        match self {
            Request::Hello { exec } => w.u8(op::HELLO).u8(u8::from(*exec)),
            Request::Pipe2 { flags } => w.u8(op::PIPE2).u32(*flags),
            Request::Read { count } => w.u8(op::READ).u32(*count),
            Request::ReadValue { count } => w.u8(op::READ_VALUE).u32(*count),
            Request::Unread { len } => w.u8(op::UNREAD).u32(*len),
            Request::Ioctl { cmd, arg, mem } => w
                .u8(op::IOCTL)
                .u64(*cmd)
                .u64(*arg)
                .opt_bytes(mem.as_deref()),
            Request::Fcntl { cmd, arg } => w.u8(op::FCNTL).u32(*cmd as u32).u64(*arg),
            Request::Poll { events } => w.u8(op::POLL).u16(*events),
            Request::AddKey {
                ktype,
                desc,
                payload,
                ring,
            } => w
                .u8(op::ADD_KEY)
                .bytes(ktype.as_bytes())
                .opt_bytes(desc.as_deref().map(str::as_bytes))
                .bytes(payload)
                .u32(*ring as u32),
            Request::RequestKey {
                ktype,
                desc,
                dest,
                callout,
            } => w
                .u8(op::REQUEST_KEY)
                .bytes(ktype.as_bytes())
                .bytes(desc.as_bytes())
                .u32(*dest as u32)
                .opt_bytes(callout.as_deref()),
            Request::Keyctl {
                op: cmd,
                args,
                s1,
                s2,
                data,
            } => {
                w.u8(op::KEYCTL).u32(*cmd);
                for a in args {
                    w.u64(*a);
                }
                w.opt_bytes(s1.as_deref().map(str::as_bytes))
                    .opt_bytes(s2.as_deref().map(str::as_bytes))
                    .opt_bytes(data.as_deref())
            }
            Request::Rlimit { soft, hard } => w.u8(op::RLIMIT).u64(*soft).u64(*hard),
            Request::Thread { tid } => w.u8(op::THREAD).u32(*tid),
            Request::Forked { pid } => w.u8(op::FORKED).u32(*pid),
            Request::Stats => w.u8(op::STATS),
            Request::OpenDev { flags } => w.u8(op::OPEN_DEV).u32(*flags),
            Request::Mmap {
                len,
                shared,
                offset,
            } => w.u8(op::MMAP).u64(*len).u8(u8::from(*shared)).u64(*offset),
            Request::WatchDevices { tag, flags } => {
                w.u8(op::WATCH_DEVICES).u32(*tag as u32).u32(*flags)
            }
            Request::WatchPath {
                sb,
                path,
                at_flags,
                tag,
            } => w
                .u8(op::WATCH_PATH)
                .u8(u8::from(*sb))
                .bytes(path.as_bytes())
                .u32(*at_flags)
                .u32(*tag as u32),
            Request::ProcOpen { path, flags } => {
                w.u8(op::PROC_OPEN).bytes(path.as_bytes()).u32(*flags)
            }
            Request::ProcRead { path, pos, count } => w
                .u8(op::PROC_READ)
                .bytes(path.as_bytes())
                .u64(*pos)
                .u32(*count),
            Request::ProcWrite { path, pos, data } => w
                .u8(op::PROC_WRITE)
                .bytes(path.as_bytes())
                .u64(*pos)
                .bytes(data),
            Request::ProcSync { ino } => w.u8(op::PROC_SYNC).u64(*ino),
            Request::Interrupt => w.u8(op::INTERRUPT),
        };
        w.0
    }

    /// Parses a received message.
    ///
    /// # Errors
    /// What is wrong with the bytes, at the first bad field.
    pub fn decode(b: &[u8]) -> Result<Request, WireError> {
        let (code, mut r) = open_message(b)?;
        let code = code & !BLOB_IN_FD;
        let req = match code {
            op::HELLO => Request::Hello { exec: r.bool()? },
            op::PIPE2 => Request::Pipe2 { flags: r.u32()? },
            op::READ => Request::Read { count: r.u32()? },
            op::READ_VALUE => Request::ReadValue { count: r.u32()? },
            op::UNREAD => Request::Unread { len: r.u32()? },
            op::IOCTL => Request::Ioctl {
                cmd: r.u64()?,
                arg: r.u64()?,
                mem: r.opt(Reader::bytes)?,
            },
            op::FCNTL => Request::Fcntl {
                cmd: r.i32()?,
                arg: r.u64()?,
            },
            op::POLL => Request::Poll { events: r.u16()? },
            op::ADD_KEY => Request::AddKey {
                ktype: r.str()?,
                desc: r.opt(Reader::str)?,
                payload: r.bytes()?,
                ring: r.i32()?,
            },
            op::REQUEST_KEY => Request::RequestKey {
                ktype: r.str()?,
                desc: r.str()?,
                dest: r.i32()?,
                callout: r.opt(Reader::bytes)?,
            },
            op::KEYCTL => Request::Keyctl {
                op: r.u32()?,
                args: [r.u64()?, r.u64()?, r.u64()?, r.u64()?],
                s1: r.opt(Reader::str)?,
                s2: r.opt(Reader::str)?,
                data: r.opt(Reader::bytes)?,
            },
            op::THREAD => Request::Thread { tid: r.u32()? },
            op::FORKED => Request::Forked { pid: r.u32()? },
            op::RLIMIT => Request::Rlimit {
                soft: r.u64()?,
                hard: r.u64()?,
            },
            op::STATS => Request::Stats,
            op::OPEN_DEV => Request::OpenDev { flags: r.u32()? },
            op::MMAP => Request::Mmap {
                len: r.u64()?,
                shared: r.bool()?,
                offset: r.u64()?,
            },
            op::WATCH_DEVICES => Request::WatchDevices {
                tag: r.i32()?,
                flags: r.u32()?,
            },
            op::WATCH_PATH => Request::WatchPath {
                sb: r.bool()?,
                path: r.str()?,
                at_flags: r.u32()?,
                tag: r.i32()?,
            },
            op::PROC_OPEN => Request::ProcOpen {
                path: r.str()?,
                flags: r.u32()?,
            },
            op::PROC_READ => Request::ProcRead {
                path: r.str()?,
                pos: r.u64()?,
                count: r.u32()?,
            },
            op::PROC_WRITE => Request::ProcWrite {
                path: r.str()?,
                pos: r.u64()?,
                data: r.bytes()?,
            },
            op::PROC_SYNC => Request::ProcSync { ino: r.u64()? },
            op::INTERRUPT => Request::Interrupt,
            other => return Err(WireError::Op(other)),
        };
        r.finish()?;
        Ok(req)
    }

    /// The request's blob (a key payload), if it has one.
    pub fn blob_mut(&mut self) -> Option<&mut Vec<u8>> {
        match self {
            Request::AddKey { payload, .. } => Some(payload),
            Request::Keyctl { data: Some(d), .. } => Some(d),
            _ => None,
        }
    }

    /// The message's bytes with the blob left out and [`BLOB_IN_FD`] set
    /// (the blob goes in a memfd attached last).
    pub fn encode_blob_in_fd(&self) -> Vec<u8> {
        let mut r = self.clone();
        if let Some(b) = r.blob_mut() {
            b.clear();
        }
        let mut m = r.encode();
        m[1] |= BLOB_IN_FD;
        m
    }

    /// Does this received message say its blob is in an attached memfd?
    pub fn blob_in_fd(b: &[u8]) -> bool {
        b.get(1)
            .is_some_and(|op| op & BLOB_IN_FD != 0 && *op != REPLY)
    }

    /// The op's name, for logs and audit lines.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Pipe2 { .. } => "pipe2",
            Request::Read { .. } | Request::ReadValue { .. } => "read",
            Request::Unread { .. } => "unread",
            Request::Ioctl { .. } => "ioctl",
            Request::Fcntl { .. } => "fcntl",
            Request::Poll { .. } => "poll",
            Request::AddKey { .. } => "add_key",
            Request::RequestKey { .. } => "request_key",
            Request::Keyctl { .. } => "keyctl",
            Request::Rlimit { .. } => "rlimit",
            Request::Thread { .. } => "thread",
            Request::Forked { .. } => "fork",
            Request::Stats => "stats",
            Request::OpenDev { .. } => "open(/dev/watch_queue)",
            Request::Mmap { .. } => "mmap",
            Request::WatchDevices { .. } => "watch_devices",
            Request::WatchPath { sb: false, .. } => "watch_mount",
            Request::WatchPath { sb: true, .. } => "watch_sb",
            Request::ProcOpen { .. } => "open(/proc)",
            Request::ProcRead { .. } => "read(/proc)",
            Request::ProcWrite { .. } => "write(/proc)",
            Request::ProcSync { .. } => "fflush(/proc)",
            Request::Interrupt => "signal",
        }
    }
}

impl Reply {
    /// The message's bytes with the data left out, in a memfd attached
    /// last.
    pub fn encode_blob_in_fd(&self) -> Vec<u8> {
        let r = Reply {
            data: Vec::new(),
            ..self.clone()
        };
        let mut m = r.encode();
        m[1] = REPLY_BLOB;
        m
    }

    /// Does this received reply say its data is in an attached memfd?
    pub fn blob_in_fd(b: &[u8]) -> bool {
        b.get(1) == Some(&REPLY_BLOB)
    }

    /// The notice a key call's client gets, before the reply, when the
    /// call begins to wait for a key under construction (once per call):
    /// a client that has held its signals back since the call began
    /// settles them then, and sleeps waking on one (the kernel's
    /// `wait_for_key_construction()` ends at once on a signal already
    /// pending). Nothing follows the op byte.
    pub fn waiting_notice() -> Vec<u8> {
        vec![VERSION, WAITING]
    }

    /// Is this received message [`Reply::waiting_notice`]'s?
    pub fn is_waiting_notice(b: &[u8]) -> bool {
        b == [VERSION, WAITING]
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(VERSION)
            .u8(REPLY)
            .u32(self.errno as u32)
            .u64(self.value as u64)
            .u32(self.drain)
            .bytes(&self.data);
        w.0
    }

    /// Parses a received reply.
    ///
    /// # Errors
    /// What is wrong with the bytes.
    pub fn decode(b: &[u8]) -> Result<Reply, WireError> {
        let (code, mut r) = open_message(b)?;
        if code != REPLY && code != REPLY_BLOB {
            return Err(WireError::Op(code));
        }
        let reply = Reply {
            errno: r.i32()?,
            value: r.i64()?,
            drain: r.u32()?,
            data: r.bytes()?,
        };
        r.finish()?;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_request() -> Vec<Request> {
        vec![
            Request::Hello { exec: true },
            Request::Pipe2 { flags: 0x80 },
            Request::Read { count: 4096 },
            Request::ReadValue { count: 16 },
            Request::Unread { len: 16 },
            Request::Ioctl {
                cmd: 0x5760,
                arg: 1,
                mem: Some(vec![1, 2, 3]),
            },
            Request::Ioctl {
                cmd: 0x541b,
                arg: 0,
                mem: None,
            },
            Request::Fcntl {
                cmd: 1032,
                arg: u64::MAX,
            },
            Request::Poll { events: 1 },
            Request::AddKey {
                ktype: "user".into(),
                desc: Some("k".into()),
                payload: b"v".to_vec(),
                ring: -3,
            },
            Request::RequestKey {
                ktype: "user".into(),
                desc: "k".into(),
                dest: 0,
                callout: Some(b"info".to_vec()),
            },
            Request::Keyctl {
                op: 32,
                args: [1, 2, 3, u64::MAX],
                s1: None,
                s2: Some("é".into()),
                data: Some(vec![]),
            },
            Request::Rlimit { soft: 1, hard: 2 },
            Request::Thread { tid: 7 },
            Request::Forked { pid: 8 },
            Request::ProcSync { ino: u64::MAX },
            Request::Interrupt,
            Request::Stats,
            Request::OpenDev { flags: 2 },
            Request::Mmap {
                len: 4096,
                shared: true,
                offset: 0,
            },
            Request::WatchDevices { tag: -1, flags: 0 },
            Request::WatchPath {
                sb: true,
                path: "/mnt".into(),
                at_flags: 0,
                tag: 3,
            },
        ]
    }

    #[test]
    fn wire_round_trips_every_request_and_a_reply() {
        for r in every_request() {
            assert_eq!(Request::decode(&r.encode()), Ok(r.clone()), "{}", r.name());
        }
        let rep = Reply {
            errno: 105,
            value: -1,
            drain: 3,
            data: vec![9; 40],
        };
        assert_eq!(Reply::decode(&rep.encode()), Ok(rep));
        // The notice that a key call waits is no reply, and no reply is it.
        let notice = Reply::waiting_notice();
        assert!(Reply::is_waiting_notice(&notice));
        assert_eq!(Reply::decode(&notice), Err(WireError::Op(WAITING)));
        assert!(!Reply::is_waiting_notice(&Reply::ok(0).encode()));
        let big = Request::AddKey {
            ktype: "user".into(),
            desc: None,
            payload: vec![1; 10],
            ring: -3,
        };
        let m = big.encode_blob_in_fd();
        assert!(Request::blob_in_fd(&m));
        let mut back = Request::decode(&m).unwrap();
        assert_eq!(back.blob_mut().map(|b| b.len()), Some(0));
    }

    #[test]
    fn wire_refuses_bad_versions_ops_tags_and_lengths() {
        let good = Request::Read { count: 1 }.encode();
        let mut b = good.clone();
        b[0] = 2;
        assert_eq!(Request::decode(&b), Err(WireError::Version(2)));
        b = good.clone();
        b[1] = 99;
        assert_eq!(Request::decode(&b), Err(WireError::Op(99)));
        b = good.clone();
        b.push(0);
        assert_eq!(Request::decode(&b), Err(WireError::Trailing(1)));
        assert_eq!(Request::decode(&good[..3]), Err(WireError::Short));
        assert_eq!(Request::decode(&[]), Err(WireError::Short));
        // A length claiming more than is there is refused before copying.
        let mut lie = vec![VERSION, op::REQUEST_KEY];
        lie.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Request::decode(&lie), Err(WireError::Short));
        let mut hello = Request::Hello { exec: false }.encode();
        hello[2] = 7;
        assert_eq!(Request::decode(&hello), Err(WireError::Tag(7)));
        let mut s = Request::RequestKey {
            ktype: "a".into(),
            desc: "b".into(),
            dest: 0,
            callout: None,
        }
        .encode();
        s[6] = 0xff;
        assert_eq!(Request::decode(&s), Err(WireError::Utf8));
        let big = vec![VERSION; MAX_MSG + 1];
        assert_eq!(Request::decode(&big), Err(WireError::TooLong(MAX_MSG + 1)));
    }

    /// Every prefix, and every single-byte change, of every request either
    /// decodes or is an error: never a panic.
    #[test]
    fn wire_garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for r in every_request() {
            let b = r.encode();
            for n in 0..=b.len() {
                let _ = Request::decode(&b[..n]);
                let _ = Reply::decode(&b[..n]);
            }
            for i in 0..b.len() {
                for _ in 0..8 {
                    let mut m = b.clone();
                    m[i] = next() as u8;
                    let _ = Request::decode(&m);
                }
            }
        }
        for _ in 0..2000 {
            let len = (next() % 64) as usize;
            let mut m: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len > 0 {
                m[0] = VERSION;
            }
            let _ = Request::decode(&m);
            let _ = Reply::decode(&m);
        }
    }
}

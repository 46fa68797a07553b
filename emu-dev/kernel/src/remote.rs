//! The client end of the kernel server: a connection and the calls over it.
//!
//! Owns [`Remote`], one connection of one real process to a
//! [`Server`](crate::server::Server). Calls are synchronous (one request,
//! one reply) and never sleep in the server: a read that would block
//! returns EAGAIN and the caller sleeps in the real `poll()` on the real
//! descriptor, which the server makes readable when a record is queued. A
//! read reply may carry a count of readiness bytes to drain from that
//! descriptor, which [`Remote::read`] drains before returning (see
//! `server::files` for the rule).
//!
//! Every system call here is rustix's raw one, never libc's, so the
//! preload library that uses this does not re-enter its own interposers.

use crate::sock;
use crate::wire::{Reply, Request, MAX_MSG, READ_LOOK};
use parking_lot::Mutex;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use watchq_core::ring::shm::{Ends, Local, ShmReader};
use watchq_core::{Errno, QueueStats};

/// The connection is unusable: the kernel is gone, or refused us.
#[derive(Debug)]
pub struct Gone(pub io::Error);

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Gone {}

/// A failed call: the kernel's errno, or no kernel.
#[derive(Debug)]
pub enum CallError {
    /// The emulated call failed with this errno.
    Errno(Errno),
    /// The connection failed.
    Gone(Gone),
}

impl From<Gone> for CallError {
    fn from(g: Gone) -> Self {
        CallError::Gone(g)
    }
}

impl From<Errno> for CallError {
    fn from(e: Errno) -> Self {
        CallError::Errno(e)
    }
}

/// A call's result.
pub type CallResult<T> = std::result::Result<T, CallError>;

/// Sends a key call's request with its payload taken from the caller's
/// memory: `head`, the payload, then `tail`, as one message on the socket
/// given, and the payload read by the real kernel's `sendmsg` itself (the
/// preload's: a vector pointing at the program's buffer). No copy is made
/// and no `process_vm_readv` checks the range first: `sendmsg` fails with
/// EFAULT, sending nothing, when the range is not readable, which the
/// call returns as the errno.
pub type Splice<'a> = &'a mut dyn FnMut(BorrowedFd<'_>, &[u8], &[u8]) -> io::Result<()>;

/// What a read round trip came to ([`Remote::read_round`]).
#[derive(Debug)]
pub enum RoundRead {
    /// The kernel's read: the records (empty: the end of file).
    Data(Vec<u8>),
    /// The records are in the pipe's mirror: read them there. With the
    /// mirror when this connection had not been given it yet.
    Look(Option<ShmReader>),
}

/// One process's connection to the kernel server.
#[derive(Debug)]
pub struct Remote {
    sock: OwnedFd,
    /// `(st_dev, st_ino)` of the socket, to tell it from whatever a
    /// program may have put at its number since (close, dup2).
    ident: (u64, u64),
    /// What the kernel said at hello (bit 1: notification support).
    hello: i64,
    /// The process that connected (only it uses the connection: the
    /// server refuses a request whose credentials name another pid).
    pid: rustix::process::Pid,
    /// The receive buffer (one per connection: calls are serialised).
    buf: Mutex<Vec<u8>>,
    /// The mirrors this connection was given, by the read end's identity.
    mirrors: Mutex<HashMap<(u64, u64), Arc<ShmReader>>>,
}

impl Remote {
    /// Connects to the server at `path` and introduces this process
    /// (`exec`: a new program image).
    ///
    /// # Errors
    /// The socket's (ENOENT, ECONNREFUSED when no server listens), or the
    /// server's refusal (EACCES for another user).
    pub fn connect(path: &Path, exec: bool) -> Result<Remote, Gone> {
        let g = |e: io::Error| Gone(e);
        let sock = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| g(e.into()))?;
        // Credentials on every message, whatever the server's socket says.
        rustix::net::sockopt::set_socket_passcred(&sock, true).map_err(|e| g(e.into()))?;
        let addr = SocketAddrUnix::new(path).map_err(|e| g(e.into()))?;
        rustix::net::connect(&sock, &addr).map_err(|e| g(e.into()))?;
        // Out of the program's way: it expects the lowest free numbers to
        // be the next ones it gets (pipe2 after start-up is 3 and 4).
        let sock = [1000, 500, 100]
            .into_iter()
            .find_map(|min| rustix::io::fcntl_dupfd_cloexec(&sock, min).ok())
            .unwrap_or(sock);
        let ident = rustix::fs::fstat(&sock)
            .map(|st| (st.st_dev, st.st_ino))
            .map_err(|e| g(e.into()))?;
        let mut r = Remote {
            sock,
            ident,
            hello: 0,
            pid: rustix::process::getpid(),
            buf: Mutex::new(Vec::with_capacity(MAX_MSG + 1)),
            mirrors: Mutex::new(HashMap::new()),
        };
        match r.call(&Request::Hello { exec }, None) {
            Ok((rep, _)) => match rep.result() {
                Ok(v) => {
                    r.hello = v;
                    Ok(r)
                }
                Err(e) => Err(Gone(io::Error::from_raw_os_error(e.as_raw()))),
            },
            Err(g) => Err(g),
        }
    }

    /// Is the connection's descriptor still this connection's socket? A
    /// program that closed it (`close_range`, a loop closing every
    /// descriptor) or put another file at its number has taken it over: the
    /// caller must then forget this connection without closing anything
    /// (`std::mem::forget`) and connect anew.
    pub fn is_intact(&self) -> bool {
        rustix::fs::fstat(&self.sock).is_ok_and(|st| (st.st_dev, st.st_ino) == self.ident)
    }

    /// Does the kernel have notification support (`CONFIG_WATCH_QUEUE`)?
    pub fn watch_queue(&self) -> bool {
        self.hello & 2 != 0
    }

    /// The connection's socket (to keep it out of the program's way).
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Sends `req` (with `fd` attached) and waits for the reply and the
    /// descriptors that come with it.
    ///
    /// # Errors
    /// The connection failed or the server closed it.
    pub fn call(
        &self,
        req: &Request,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<(Reply, Vec<OwnedFd>), Gone> {
        let mut buf = self.buf.lock();
        // Thread keyrings are per thread: a key call from a thread other
        // than the main one says which, first (under the same lock).
        if matches!(
            req,
            Request::AddKey { .. } | Request::RequestKey { .. } | Request::Keyctl { .. }
        ) {
            self.say_thread(&mut buf)?;
        }
        let mut fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
        let mut msg = req.encode();
        // A blob too big for one message travels in a memfd.
        let memfd;
        if msg.len() > MAX_MSG {
            let blob = match req.clone().blob_mut() {
                Some(b) => std::mem::take(b),
                None => return Err(Gone(io::Error::from_raw_os_error(libc::EMSGSIZE))),
            };
            memfd = sock::blob_memfd(&blob).map_err(Gone)?;
            fds.push(memfd.as_fd());
            msg = req.encode_blob_in_fd();
        }
        sock::send(self.sock.as_fd(), &msg, &fds).map_err(Gone)?;
        let pkt = match key_wait(req) {
            Some(any) => self.recv_key_reply(&mut buf, any),
            None => sock::recv(self.sock.as_fd(), &mut buf),
        }
        .map_err(Gone)?
        .ok_or_else(|| Gone(io::Error::from_raw_os_error(libc::ECONNRESET)))?;
        let mut reply = Reply::decode(&buf[..pkt.len])
            .map_err(|e| Gone(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        let mut fds = pkt.fds;
        if Reply::blob_in_fd(&buf[..pkt.len]) {
            reply.data = fds
                .pop()
                .and_then(|fd| sock::read_blob(&fd))
                .ok_or_else(|| Gone(io::Error::from_raw_os_error(libc::EPROTO)))?;
        }
        Ok((reply, fds))
    }

    /// Receives the reply to a key call, which may wait in the server for
    /// a key under construction; that wait is interruptible, as the
    /// kernel's `wait_for_key_construction()`: when a signal handler runs
    /// in this thread meanwhile, the server is told
    /// (`Request::Interrupt`, once) and the call's reply follows (EINTR,
    /// or what the call made of it). `any`: every handler counts
    /// (`KEYCTL_READ`, whose `-ERESTARTSYS` becomes ENOKEY and is never
    /// restarted); else only one without `SA_RESTART` (the kernel
    /// restarts the key call's `-ERESTARTSYS` after one with: the call
    /// goes on waiting, as the restarted call would wait again).
    ///
    /// A caller that holds its signals back from the call's start
    /// ([`set_key_signals`]) loses none that comes before the wait: the
    /// server says when the wait begins ([`Reply::waiting_notice`]), and
    /// only then are the signals that came meanwhile settled and the
    /// sleep made waking on one, as the kernel's wait ends at once on a
    /// signal already pending. Any other caller sleeps in the socket
    /// call with its mask as it is (a handler that ran before the wait
    /// began is not seen).
    fn recv_key_reply(&self, buf: &mut Vec<u8>, any: bool) -> io::Result<Option<sock::Packet>> {
        let sock = self.sock.as_fd();
        let held = KEY_SIGNALS.get().filter(|k| k.held());
        let Some(held) = held else {
            return recv_key_reply_unheld(sock, buf, any);
        };
        // Nothing can interrupt this sleep: the signals are held.
        let mut pkt = sock::recv(sock, buf)?;
        loop {
            match &pkt {
                Some(p) if Reply::is_waiting_notice(&buf[..p.len]) => {}
                _ => return Ok(pkt),
            }
            // The server waits for a key under construction.
            match held.sleep(sock)? {
                KeyWake::Reply => {
                    pkt = sock::recv(sock, buf)?;
                    continue;
                }
                KeyWake::Restart if !any => continue,
                KeyWake::Interrupt | KeyWake::Restart => {}
            }
            sock::send(sock, &Request::Interrupt.encode(), &[])?;
            return recv_reply(sock, buf);
        }
    }

    /// The calling thread's id, remembered per thread with the pid of the
    /// connection it was asked under (a `gettid` per thread, not per key
    /// call). A forked child's threads carry their parent's copy, and a
    /// vfork child shares its parent's memory, so the number is asked
    /// again whenever the connection is another process's (a child always
    /// makes its own); a vfork child's answer is then asked again by its
    /// parent, for the same reason.
    fn tid(&self) -> rustix::process::Pid {
        thread_local! {
            static TID: std::cell::Cell<Option<(rustix::process::Pid, rustix::process::Pid)>> =
                const { std::cell::Cell::new(None) };
        }
        TID.with(|c| match c.get() {
            Some((pid, tid)) if pid == self.pid => tid,
            _ => {
                let tid = rustix::thread::gettid();
                c.set(Some((self.pid, tid)));
                tid
            }
        })
    }

    /// Says which thread the next key call comes from, when it is not the
    /// main one (thread keyrings are per thread). Under the call's lock.
    /// True if it said so.
    fn say_thread(&self, buf: &mut Vec<u8>) -> Result<bool, Gone> {
        // The main thread's id is the connecting process's pid (a
        // `getpid` fewer per key call).
        let tid = self.tid();
        if tid == self.pid {
            return Ok(false);
        }
        let t = Request::Thread {
            tid: tid.as_raw_pid() as u32,
        };
        sock::send(self.sock.as_fd(), &t.encode(), &[]).map_err(Gone)?;
        sock::recv(self.sock.as_fd(), buf)
            .map_err(Gone)?
            .ok_or_else(|| Gone(io::Error::from_raw_os_error(libc::ECONNRESET)))?;
        Ok(true)
    }

    /// A key call whose payload is in this process's memory: `send` sends
    /// `head`, the payload and `tail` as one message (see [`Splice`]). The
    /// reply is the call's value.
    ///
    /// # Errors
    /// EFAULT (the payload is not readable); the call's errno; the
    /// connection's.
    fn value_spliced(&self, head: &[u8], tail: &[u8], send: Splice<'_>) -> CallResult<i64> {
        let mut buf = self.buf.lock();
        let told = self.say_thread(&mut buf)?;
        let sent = send(self.sock.as_fd(), head, tail);
        match sent {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {
                if told {
                    // The thread said above is not the next call's: say
                    // the main thread again (the server then forgets it).
                    let t = Request::Thread {
                        tid: self.pid.as_raw_nonzero().get() as u32,
                    };
                    sock::send(self.sock.as_fd(), &t.encode(), &[]).map_err(Gone)?;
                    sock::recv(self.sock.as_fd(), &mut buf).map_err(Gone)?;
                }
                return Err(CallError::Errno(Errno::EFAULT));
            }
            Err(e) => return Err(Gone(e).into()),
        }
        // An update or add_key: may wait for a key under construction.
        let pkt = self
            .recv_key_reply(&mut buf, false)
            .map_err(Gone)?
            .ok_or_else(|| Gone(io::Error::from_raw_os_error(libc::ECONNRESET)))?;
        let reply = Reply::decode(&buf[..pkt.len])
            .map_err(|e| Gone(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        Ok(reply.result()?)
    }

    /// `keyctl(KEYCTL_UPDATE, key, payload, len)` with the payload (`len`
    /// bytes at `addr`) spliced in by `send` (`keyctl_update_key()` copies
    /// it before it looks the key up): EFAULT when it is not readable.
    /// `len` is at most a page.
    ///
    /// # Errors
    /// As the kernel's; EFAULT.
    pub fn keyctl_update_from_user(
        &self,
        key: i32,
        addr: usize,
        len: usize,
        send: Splice<'_>,
    ) -> CallResult<i64> {
        let req = Request::Keyctl {
            op: crate::syscalls::keys::cmd::UPDATE,
            args: [key as u32 as u64, addr as u64, len as u64, 0],
            s1: None,
            s2: None,
            data: Some(Vec::new()),
        };
        let mut head = req.encode();
        // The payload's length field ends the message (its bytes follow).
        let at = head.len() - 4;
        head[at..].copy_from_slice(&(len as u32).to_le_bytes());
        self.value_spliced(&head, &[], send)
    }

    /// add_key(2) with the payload (`len` bytes) spliced in by `send`
    /// (add_key copies it after the type and description, before anything
    /// else): EFAULT when it is not readable. The message must fit one packet
    /// ([`MAX_MSG`]); a bigger payload takes
    /// [`Remote::add_key`].
    ///
    /// # Errors
    /// As the kernel's; EFAULT.
    pub fn add_key_from_user(
        &self,
        ktype: &str,
        desc: Option<&str>,
        len: usize,
        ring: i32,
        send: Splice<'_>,
    ) -> CallResult<i32> {
        let req = Request::AddKey {
            ktype: ktype.into(),
            desc: desc.map(Into::into),
            payload: Vec::new(),
            ring,
        };
        let mut head = req.encode();
        // The message ends with the payload's length, its bytes, the ring.
        let tail = head.split_off(head.len() - 4);
        let at = head.len() - 4;
        head[at..].copy_from_slice(&(len as u32).to_le_bytes());
        self.value_spliced(&head, &tail, send).map(|v| v as i32)
    }

    /// Sends `bytes` as they are (for tests and the fuzz harness: the
    /// server must answer garbage with an error, never a panic); the
    /// reply's errno (0: none) if the server answers at all. `None`, at
    /// once, for a message the protocol never answers
    /// ([`Request::Interrupt`]: the server takes it and waits for the next
    /// request, so waiting here for a reply would wait for ever).
    ///
    /// # Errors
    /// The server closed the connection, as it does after garbage.
    pub fn call_raw(&self, bytes: &[u8]) -> Result<Option<Errno>, Gone> {
        let mut buf = self.buf.lock();
        sock::send(self.sock.as_fd(), bytes, &[]).map_err(Gone)?;
        if Request::decode(bytes) == Ok(Request::Interrupt) {
            return Ok(None);
        }
        let pkt = sock::recv(self.sock.as_fd(), &mut buf)
            .map_err(Gone)?
            .ok_or_else(|| Gone(io::Error::from_raw_os_error(libc::ECONNRESET)))?;
        let reply = Reply::decode(&buf[..pkt.len])
            .map_err(|e| Gone(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        Ok(Some(Errno::from_raw(reply.errno).unwrap_or(Errno::EIO)))
    }

    /// Tells the kernel this process has just forked or spawned real
    /// process `pid` ([`Request::Forked`]): it is entered as this
    /// process's fork now, while this process is alive to vouch for it.
    ///
    /// # Errors
    /// ESRCH (no such process, or reaped already), EPERM (not this
    /// process's child).
    pub fn forked(&self, pid: u32) -> CallResult<i64> {
        self.value(&Request::Forked { pid }, None)
    }

    /// A call whose reply is a value or an errno.
    fn value(&self, req: &Request, fd: Option<BorrowedFd<'_>>) -> CallResult<i64> {
        let (r, _) = self.call(req, fd)?;
        Ok(r.result()?)
    }

    /// `pipe2(O_NOTIFICATION_PIPE | flags)`: the real read and write ends
    /// (close-on-exec; the caller clears that if `flags` lacks O_CLOEXEC).
    ///
    /// # Errors
    /// As the kernel's `pipe2`; EMFILE when the ends could not be received.
    pub fn pipe2(&self, flags: u32) -> CallResult<[OwnedFd; 2]> {
        let (r, fds) = self.call(&Request::Pipe2 { flags }, None)?;
        r.result()?;
        let mut it = fds.into_iter();
        match (it.next(), it.next()) {
            (Some(a), Some(b)) => Ok([a, b]),
            _ => Err(CallError::Errno(Errno::EMFILE)),
        }
    }

    /// One read of `fd` without sleeping: the records (EAGAIN when none).
    /// Drains the readiness bytes the server asks for. A pipe with a
    /// shared-memory mirror is read there, without a round trip while it
    /// has records (see [`Remote::read_round`]).
    ///
    /// # Errors
    /// As the kernel's read of a notification pipe.
    pub fn read(&self, fd: BorrowedFd<'_>, count: usize) -> CallResult<Vec<u8>> {
        let count = count.min(crate::wire::MAX_READ);
        let id = rustix::fs::fstat(fd)
            .map(|st| (st.st_dev, st.st_ino))
            .map_err(|e| {
                CallError::Errno(Errno::from_raw(e.raw_os_error()).unwrap_or(Errno::EBADF))
            })?;
        let mut out = vec![0u8; count];
        let mut ends = Ends::new();
        loop {
            let m = self.mirrors.lock().get(&id).cloned();
            // Records given back wait in the kernel, ahead of the mirror's.
            if let Some(m) = m.filter(|m| !m.ask_first()) {
                match m.read(&mut out, &mut ends, &mut |_, e| e.len()) {
                    Local::Read { bytes, drain } => {
                        drain_nowait(fd, drain);
                        out.truncate(bytes);
                        return Ok(out);
                    }
                    Local::NoBufs => return Err(CallError::Errno(Errno::ENOBUFS)),
                    Local::Fault => return Err(CallError::Errno(Errno::EFAULT)),
                    Local::Empty | Local::Invalid => {}
                }
            }
            match self.read_round(fd, count)? {
                RoundRead::Data(d) => return Ok(d),
                RoundRead::Look(Some(m)) => {
                    let mut g = self.mirrors.lock();
                    // Bounded: the mirrors of pipes long closed go (one
                    // in use stays mapped until its read ends).
                    if g.len() >= 64 {
                        g.clear();
                    }
                    g.insert(id, Arc::new(m));
                }
                RoundRead::Look(None) => {
                    if !self.mirrors.lock().contains_key(&id) {
                        // The kernel thinks we have the mirror mapped, and
                        // we could not (its memfds did not come: EMFILE;
                        // or they would not map): the records by value.
                        return self.read_value(fd, count);
                    }
                }
            }
        }
    }

    /// One read round trip of `fd` (the kernel's read, without sleeping):
    /// the records, or word that they are in the pipe's shared-memory
    /// mirror, mapped here the first time this connection hears of it.
    /// `Look(None)` also when the mirror's memfds were sent and did not
    /// come (the process is at its descriptor limit: `SCM_RIGHTS` drops
    /// them) or would not map: the kernel now thinks this connection has
    /// it, so a caller without it asks by value ([`Remote::read_value`]).
    ///
    /// # Errors
    /// As the kernel's read of a notification pipe.
    pub fn read_round(&self, fd: BorrowedFd<'_>, count: usize) -> CallResult<RoundRead> {
        let count = count.min(u32::MAX as usize) as u32;
        let (r, fds) = self.call(&Request::Read { count }, Some(fd))?;
        drain(fd, r.drain);
        if r.result()? != READ_LOOK {
            return Ok(RoundRead::Data(r.data));
        }
        let mut it = fds.into_iter();
        Ok(RoundRead::Look(match (it.next(), it.next()) {
            (Some(ring), Some(page)) => ShmReader::open(ring.into(), page.into()).ok(),
            _ => None,
        }))
    }

    /// One read of `fd` without sleeping, the records by value even from
    /// a pipe with a mirror ([`Request::ReadValue`]): for a caller that
    /// cannot read the mirror (it has none mapped, or cannot consult the
    /// table it keeps them in). Drains the readiness bytes the server
    /// asks for.
    ///
    /// # Errors
    /// As the kernel's read of a notification pipe (EAGAIN when empty).
    pub fn read_value(&self, fd: BorrowedFd<'_>, count: usize) -> CallResult<Vec<u8>> {
        let count = count.min(u32::MAX as usize) as u32;
        let (r, _) = self.call(&Request::ReadValue { count }, Some(fd))?;
        drain(fd, r.drain);
        r.result()?;
        Ok(r.data)
    }

    /// Gives back the last `len` bytes of the last read of `fd` (records
    /// the caller could not copy out).
    ///
    /// # Errors
    /// EINVAL: not the tail of the last read in whole records.
    pub fn unread(&self, fd: BorrowedFd<'_>, len: usize) -> CallResult<()> {
        self.value(&Request::Unread { len: len as u32 }, Some(fd))
            .map(drop)
    }

    /// `ioctl(fd, cmd, arg)` with `mem` the readable bytes at `arg`.
    ///
    /// # Errors
    /// As the kernel's.
    pub fn ioctl(
        &self,
        fd: BorrowedFd<'_>,
        cmd: u64,
        arg: u64,
        mem: Option<Vec<u8>>,
    ) -> CallResult<i64> {
        self.value(&Request::Ioctl { cmd, arg, mem }, Some(fd))
    }

    /// `fcntl(fd, cmd, arg)` (the pipe's own commands).
    ///
    /// # Errors
    /// As the kernel's.
    pub fn fcntl(&self, fd: BorrowedFd<'_>, cmd: i32, arg: u64) -> CallResult<i64> {
        self.value(&Request::Fcntl { cmd, arg }, Some(fd))
    }

    /// The emulated `poll()` events of `fd` (draining readiness bytes the
    /// server says are left over).
    ///
    /// # Errors
    /// EBADF: not an emulated end.
    pub fn poll(&self, fd: BorrowedFd<'_>, events: u16) -> CallResult<u16> {
        let (r, _) = self.call(&Request::Poll { events }, Some(fd))?;
        drain(fd, r.drain);
        Ok(r.result()? as u16)
    }

    /// `open("/dev/watch_queue", flags)`: the program's descriptor.
    ///
    /// # Errors
    /// As the kernel's open (ENOENT without CONFIG_WATCH_QUEUE).
    pub fn open_dev(&self, flags: u32) -> CallResult<OwnedFd> {
        let (r, fds) = self.call(&Request::OpenDev { flags }, None)?;
        r.result()?;
        fds.into_iter()
            .next()
            .ok_or(CallError::Errno(Errno::EMFILE))
    }

    /// `mmap()` of the device descriptor `fd`: the ring's memfd to map.
    ///
    /// # Errors
    /// As the 2019 driver's mmap checks.
    pub fn mmap(
        &self,
        fd: BorrowedFd<'_>,
        len: u64,
        shared: bool,
        offset: u64,
    ) -> CallResult<OwnedFd> {
        let (r, fds) = self.call(
            &Request::Mmap {
                len,
                shared,
                offset,
            },
            Some(fd),
        )?;
        r.result()?;
        fds.into_iter()
            .next()
            .ok_or(CallError::Errno(Errno::EMFILE))
    }

    /// watch_devices(2) on the queue `fd` (None: not a queue).
    ///
    /// # Errors
    /// As the kernel's.
    pub fn watch_devices(
        &self,
        fd: Option<BorrowedFd<'_>>,
        tag: i32,
        flags: u32,
    ) -> CallResult<()> {
        self.value(&Request::WatchDevices { tag, flags }, fd)
            .map(drop)
    }

    /// watch_mount(2) or (`sb`) watch_sb(2) of absolute `path`.
    ///
    /// # Errors
    /// As the kernel's.
    pub fn watch_path(
        &self,
        sb: bool,
        path: &str,
        at_flags: u32,
        fd: Option<BorrowedFd<'_>>,
        tag: i32,
    ) -> CallResult<()> {
        let req = Request::WatchPath {
            sb,
            path: path.into(),
            at_flags,
            tag,
        };
        self.value(&req, fd).map(drop)
    }

    /// `open()` of a key subsystem `/proc` file: its text, and for a
    /// writable open the write end of the pipe the kernel takes writes
    /// from.
    ///
    /// # Errors
    /// As the kernel's open (`ProcCalls::proc_open`); ENOENT for another path.
    pub fn proc_open(&self, path: &str, flags: u32) -> CallResult<(Vec<u8>, Option<OwnedFd>)> {
        let req = Request::ProcOpen {
            path: path.into(),
            flags,
        };
        let (r, fds) = self.call(&req, None)?;
        r.result()?;
        Ok((r.data, fds.into_iter().next()))
    }

    /// `read()` of a `/proc` file at `pos`.
    ///
    /// # Errors
    /// As `ProcCalls::proc_read`.
    pub fn proc_read(&self, path: &str, pos: u64, count: u32) -> CallResult<Vec<u8>> {
        let req = Request::ProcRead {
            path: path.into(),
            pos,
            count,
        };
        let (r, _) = self.call(&req, None)?;
        r.result()?;
        Ok(r.data)
    }

    /// `write()` to a `/proc` file at `pos`: the bytes taken.
    ///
    /// # Errors
    /// As `ProcCalls::proc_write`.
    pub fn proc_write(&self, path: &str, pos: u64, data: &[u8]) -> CallResult<usize> {
        let req = Request::ProcWrite {
            path: path.into(),
            pos,
            data: data.to_vec(),
        };
        self.value(&req, None).map(|v| v as usize)
    }

    /// The bytes waiting in the pipe of a writable `/proc` open (`ino`,
    /// the pipe's inode) taken now as one write by this process: stdio's
    /// writes, at `fflush`/`fclose`.
    ///
    /// # Errors
    /// The write's, as the file's handler gives it (EINVAL, EPERM).
    pub fn proc_sync(&self, ino: u64) -> CallResult<()> {
        self.value(&Request::ProcSync { ino }, None).map(|_| ())
    }

    /// add_key(2).
    ///
    /// # Errors
    /// As the kernel's.
    pub fn add_key(
        &self,
        ktype: &str,
        desc: Option<&str>,
        payload: &[u8],
        ring: i32,
    ) -> CallResult<i32> {
        let req = Request::AddKey {
            ktype: ktype.into(),
            desc: desc.map(Into::into),
            payload: payload.to_vec(),
            ring,
        };
        self.value(&req, None).map(|v| v as i32)
    }

    /// request_key(2).
    ///
    /// # Errors
    /// As the kernel's.
    pub fn request_key(
        &self,
        ktype: &str,
        desc: &str,
        callout: Option<&[u8]>,
        dest: i32,
    ) -> CallResult<i32> {
        let req = Request::RequestKey {
            ktype: ktype.into(),
            desc: desc.into(),
            dest,
            callout: callout.map(<[u8]>::to_vec),
        };
        self.value(&req, None).map(|v| v as i32)
    }

    /// keyctl(2): the value and any output bytes. `fd` is KEYCTL_WATCH_KEY's queue.
    ///
    /// # Errors
    /// As the kernel's.
    pub fn keyctl(
        &self,
        op: u32,
        args: [u64; 4],
        strings: (Option<String>, Option<String>),
        data: Option<Vec<u8>>,
        fd: Option<BorrowedFd<'_>>,
    ) -> CallResult<(i64, Vec<u8>)> {
        let req = Request::Keyctl {
            op,
            args,
            s1: strings.0,
            s2: strings.1,
            data,
        };
        let (r, _) = self.call(&req, fd)?;
        let v = r.result()?;
        Ok((v, r.data))
    }

    /// Mirrors this process's `RLIMIT_NOFILE` into the emulated one.
    ///
    /// # Errors
    /// The connection's.
    pub fn rlimit(&self, soft: u64, hard: u64) -> CallResult<()> {
        self.value(&Request::Rlimit { soft, hard }, None).map(drop)
    }

    /// The statistics of the queue behind `fd`.
    ///
    /// # Errors
    /// EBADF: not an emulated end.
    pub fn stats(&self, fd: BorrowedFd<'_>) -> CallResult<QueueStats> {
        let (r, _) = self.call(&Request::Stats, Some(fd))?;
        r.result()?;
        let v: Vec<u64> = r
            .data
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let g = |i: usize| v.get(i).copied().unwrap_or(0);
        Ok(QueueStats {
            posted: g(0),
            lost: g(1),
            read: g(2),
            loss_records: g(3),
            queued: g(4),
            filtered: g(5),
            denied: g(6),
            discarded: g(7),
            ..QueueStats::default()
        })
    }
}

/// [`Remote::recv_key_reply`] for a caller that does not hold its
/// signals: the socket call sleeps with the caller's mask, and a handler
/// that runs while it sleeps ends the wait (`any`: every handler, in a
/// poll(2), which is never restarted; else one without `SA_RESTART`, in
/// recvmsg(2), which is restarted after one with).
fn recv_key_reply_unheld(
    sock: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    any: bool,
) -> io::Result<Option<sock::Packet>> {
    let once = |buf: &mut Vec<u8>| {
        if any {
            let mut p = [rustix::event::PollFd::new(
                &sock,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut p, None) {
                Ok(_) => sock::recv_or_intr(sock, buf),
                Err(e) => Err(e.into()),
            }
        } else {
            sock::recv_or_intr(sock, buf)
        }
    };
    loop {
        match once(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                sock::send(sock, &Request::Interrupt.encode(), &[])?;
                return recv_reply(sock, buf);
            }
            // The notice that the wait began: wait on for the reply.
            Ok(Some(p)) if Reply::is_waiting_notice(&buf[..p.len]) => continue,
            r => return r,
        }
    }
}

/// The reply to a key call the client has interrupted, past the notice
/// the server may have sent before it saw the interrupt.
fn recv_reply(sock: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<Option<sock::Packet>> {
    loop {
        let p = sock::recv(sock, buf)?;
        match &p {
            Some(q) if Reply::is_waiting_notice(&buf[..q.len]) => continue,
            _ => return Ok(p),
        }
    }
}

/// How a key call's sleep for a key under construction ended, on the
/// client's side ([`KeySignals::sleep`]).
#[derive(Debug, PartialEq, Eq)]
pub enum KeyWake {
    /// The socket is readable: the reply (or another notice) is there.
    Reply,
    /// A signal handler without `SA_RESTART` ran.
    Interrupt,
    /// Handlers ran, every one with `SA_RESTART`.
    Restart,
}

/// The signals of a thread making a key call, as the library that
/// interposes the call keeps them (the preload: this crate makes no
/// signal-mask calls of its own).
pub trait KeySignals: Sync {
    /// Does the calling thread hold its asynchronous signals back for
    /// the key call it is making, from the call's start?
    fn held(&self) -> bool;

    /// Called once the server says the call waits for a key under
    /// construction: settles the signals that came since the call began
    /// (their handlers run) and, when none ran a handler, sleeps until
    /// `sock` is readable or a handler has run, with the signals still
    /// held so that none can come between the look and the sleep.
    /// Signals that run no handler (ignored, or ignored by default) are
    /// no wake.
    ///
    /// # Errors
    /// The sleep's.
    fn sleep(&self, sock: BorrowedFd<'_>) -> io::Result<KeyWake>;
}

static KEY_SIGNALS: std::sync::OnceLock<&'static dyn KeySignals> = std::sync::OnceLock::new();

/// Installs the library's [`KeySignals`] (once; later calls change
/// nothing).
pub fn set_key_signals(k: &'static dyn KeySignals) {
    let _ = KEY_SIGNALS.set(k);
}

/// Can `req` wait in the server for a key under construction, and does
/// every signal handler end that wait (`Some(true)`) or only one without
/// `SA_RESTART` (`Some(false)`)? `KEYCTL_READ` turns the wait's
/// `-ERESTARTSYS` into ENOKEY (`keyctl_read_key()`: any failed lookup),
/// which is never restarted; every other key call passes it on, restarted
/// after a handler with `SA_RESTART` (tests/data/conformance/waits.txt).
fn key_wait(req: &Request) -> Option<bool> {
    match req {
        Request::Keyctl { op, .. } => {
            Some(*op & !crate::keyctl::cmd::FAULTED == crate::keyctl::cmd::READ)
        }
        Request::AddKey { .. } | Request::RequestKey { .. } => Some(false),
        _ => None,
    }
}

/// Drains `n` readiness bytes from `fd` without ever blocking (a reader's
/// share after a read of a mirror): one `preadv2(RWF_NOWAIT)` per 256
/// bytes, or [`drain`]'s poll-then-read where the kernel lacks it.
pub fn drain_nowait(fd: BorrowedFd<'_>, n: u32) {
    let mut left = n as usize;
    let mut buf = [0u8; 256];
    while left > 0 {
        let k = left.min(buf.len());
        let mut v = [std::io::IoSliceMut::new(&mut buf[..k])];
        match rustix::io::preadv2(fd, &mut v, u64::MAX, rustix::io::ReadWriteFlags::NOWAIT) {
            Ok(0) => break,
            Ok(got) => left -= got,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::OPNOTSUPP) | Err(rustix::io::Errno::INVAL) => {
                return drain(fd, left as u32)
            }
            Err(_) => break,
        }
    }
}

/// Reads `n` readiness bytes from `fd` (they are there: the server wrote
/// them before replying). A non-blocking descriptor that runs dry stops
/// the drain; the server recounts at the next read of an empty queue.
pub fn drain(fd: BorrowedFd<'_>, n: u32) {
    let mut left = n as usize;
    let mut buf = [0u8; 256];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    while left > 0 {
        // Never block: bytes another process read meanwhile are not ours.
        let mut p = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        if !matches!(rustix::event::poll(&mut p, Some(&zero)), Ok(1))
            || !p[0].revents().contains(rustix::event::PollFlags::IN)
        {
            break;
        }
        let k = left.min(buf.len());
        match rustix::io::read(fd, &mut buf[..k]) {
            Ok(0) => break,
            Ok(got) => left -= got,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
}

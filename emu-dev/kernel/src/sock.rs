//! Messages over a Unix `SOCK_SEQPACKET` socket, with the descriptors and
//! credentials the real kernel carries beside them.
//!
//! Owns [`Packet`] (one received message: its bytes, the `SCM_RIGHTS`
//! descriptors, the `SCM_CREDENTIALS` the kernel attached) and the
//! send/receive pair both ends of the kernel's protocol use. Descriptors
//! always arrive close-on-exec (`MSG_CMSG_CLOEXEC`): a receiver that wants
//! them inheritable clears the flag itself, so a `fork`+`exec` racing the
//! receive never leaks one. A blob too big for one message (a key payload
//! of up to 1 MiB, either way) travels in a sealed memfd attached last
//! ([`blob_memfd`], [`read_blob`]).

use crate::wire::MAX_MSG;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, UCred,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

/// The most descriptors one message carries.
pub(crate) const MAX_FDS: usize = 4;

/// One received message.
#[derive(Debug, Default)]
pub(crate) struct Packet {
    /// The message's bytes (`truncated`: the first [`MAX_MSG`] of more).
    pub(crate) len: usize,
    /// The descriptors that came with it.
    pub(crate) fds: Vec<OwnedFd>,
    /// The sender's pid, uid and gid, as the kernel vouches for them.
    pub(crate) cred: Option<UCred>,
    /// The message (or its descriptors) did not fit.
    pub(crate) truncated: bool,
}

/// Receives one message into `buf` (which grows to [`MAX_MSG`] + 1 once).
/// `Ok(None)` at end of stream (the peer closed).
///
/// # Errors
/// The socket's (EINTR is retried).
pub(crate) fn recv(sock: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<Option<Packet>> {
    loop {
        match recv_or_intr(sock, buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// As [`recv`], but a signal handler that ran while it waited (one
/// without `SA_RESTART`: recvmsg(2) on a socket without a timeout is
/// restarted after one with) fails it with EINTR.
///
/// # Errors
/// The socket's, EINTR included.
pub(crate) fn recv_or_intr(sock: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<Option<Packet>> {
    buf.resize(MAX_MSG + 1, 0);
    let mut space =
        [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS), ScmCredentials(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = rustix::net::recvmsg(sock, &mut iov, &mut cmsg, RecvFlags::CMSG_CLOEXEC)?;
    let mut p = Packet {
        len: msg.bytes.min(MAX_MSG + 1),
        truncated: msg.bytes > MAX_MSG
            || msg.flags.contains(ReturnFlags::TRUNC)
            || msg.flags.contains(ReturnFlags::CTRUNC),
        ..Packet::default()
    };
    for m in cmsg.drain() {
        match m {
            RecvAncillaryMessage::ScmRights(fds) => p.fds.extend(fds),
            RecvAncillaryMessage::ScmCredentials(c) => p.cred = Some(c),
            _ => {}
        }
    }
    if msg.bytes == 0 && p.fds.is_empty() && p.cred.is_none() {
        // SEQPACKET: a zero-length read with nothing attached is the end.
        return Ok(None);
    }
    Ok(Some(p))
}

/// Sends `bytes` with `fds` attached, as one message.
///
/// # Errors
/// The socket's (EPIPE when the peer is gone; no SIGPIPE is raised).
pub(crate) fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !cmsg.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    loop {
        match rustix::net::sendmsg(sock, &[IoSlice::new(bytes)], &mut cmsg, SendFlags::NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A sealed memfd holding `blob`.
pub(crate) fn blob_memfd(blob: &[u8]) -> io::Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create(
        "watchq-blob",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut done = 0;
    while done < blob.len() {
        done += rustix::io::write(&fd, &blob[done..])?;
    }
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE)?;
    Ok(fd)
}

/// The bytes of a blob memfd a client attached: a regular file of at most
/// [`MAX_BLOB`](crate::wire::MAX_BLOB) bytes, read whole with `pread` (the
/// client's own offset and later writes do not matter: it is read here,
/// once).
pub(crate) fn read_blob(fd: &OwnedFd) -> Option<Vec<u8>> {
    let st = rustix::fs::fstat(fd).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
        || st.st_size < 0
        || st.st_size as usize > crate::wire::MAX_BLOB
    {
        return None;
    }
    let mut v = vec![0u8; st.st_size as usize];
    let mut done = 0;
    while done < v.len() {
        match rustix::io::pread(fd, &mut v[done..], done as u64) {
            Ok(0) => return None,
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
    Some(v)
}

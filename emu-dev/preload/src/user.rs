//! User memory, checked: what the kernel's `copy_from_user`/`copy_to_user`
//! do for a system call, EFAULT instead of a crash.
//!
//! The program's memory is this process's own, so access goes through
//! `process_vm_readv`/`process_vm_writev` on ourselves, which fail with
//! EFAULT on an unmapped or protected address rather than fault.

use libc::{c_void, iovec};
use std::sync::atomic::{AtomicI32, Ordering};
use watchq_core::{Errno, Result};

/// This process's pid, set at load and in a forked child (glibc no longer
/// caches getpid, and a syscall per copy is a syscall per read). A vfork
/// or `posix_spawn` child runs no fork handler and keeps its parent's,
/// which is right: until it execs it shares its parent's memory.
static PID: AtomicI32 = AtomicI32::new(0);

/// Sets [`PID`] (at load and in a forked child).
pub(crate) fn note_pid() {
    // SAFETY: getpid has no preconditions.
    // Relaxed: the value itself is all a reader needs.
    PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
}

/// The pid [`note_pid`] noted (0 before load).
pub(crate) fn noted_pid() -> libc::pid_t {
    // Relaxed: as in `note_pid`.
    PID.load(Ordering::Relaxed)
}

fn pid() -> libc::pid_t {
    // Relaxed: as in `note_pid`.
    match PID.load(Ordering::Relaxed) {
        // SAFETY: getpid has no preconditions.
        0 => unsafe { libc::getpid() },
        p => p,
    }
}

/// Copies up to `len` bytes from user address `addr`. Returns the bytes
/// that could be read from the start (fewer when the range runs into
/// unmapped memory).
pub(crate) fn copy_in_prefix(addr: usize, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    if addr == 0 || len == 0 {
        out.clear();
        return out;
    }
    let local = iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = iovec {
        iov_base: addr as *mut c_void,
        iov_len: len,
    };
    // SAFETY: `local` describes our own buffer of `len` bytes; the remote
    // side is checked by the kernel, which reports a bad address as a
    // short count or EFAULT.
    let n = unsafe { libc::process_vm_readv(pid(), &local, 1, &remote, 1, 0) };
    out.truncate(n.max(0) as usize);
    out
}

/// Copies exactly `len` bytes from user address `addr`.
///
/// # Errors
/// `EFAULT`: some of the range is not readable.
pub(crate) fn copy_in(addr: usize, len: usize) -> Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let v = copy_in_prefix(addr, len);
    if v.len() == len {
        Ok(v)
    } else {
        Err(Errno::EFAULT)
    }
}

/// Copies `data` to user address `addr`.
///
/// # Errors
/// `EFAULT`: some of the range is not writable.
pub(crate) fn copy_out(addr: usize, data: &[u8]) -> Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    if addr == 0 {
        return Err(Errno::EFAULT);
    }
    let local = iovec {
        iov_base: data.as_ptr() as *mut c_void,
        iov_len: data.len(),
    };
    let remote = iovec {
        iov_base: addr as *mut c_void,
        iov_len: data.len(),
    };
    // SAFETY: as in `copy_in_prefix`; the local buffer is only read.
    let n = unsafe { libc::process_vm_writev(pid(), &local, 1, &remote, 1, 0) };
    if n == data.len() as isize {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// Is the user range `[addr, addr + len)` (at least 4 bytes) writable?
/// Asks the real kernel to write 4 bytes into each of its pages with the
/// cheapest system call that writes to user memory (`getcpu`, raw, never
/// the vDSO's), always inside the range: EFAULT says no.
fn writable(addr: usize, len: usize) -> bool {
    if addr == 0 || len < 4 {
        return false;
    }
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    let page = 4096;
    let mut at = addr;
    while at < end {
        // Four bytes of this page inside the range (the last page's may
        // start in the page before, which is in the range too).
        let probe = at.min(end - 4);
        // SAFETY: getcpu writes one unsigned int at `probe`, which lies in
        // the caller's buffer (the program asked for these bytes to be
        // written); a bad address is EFAULT, not a fault.
        let r = unsafe { libc::syscall(libc::SYS_getcpu, probe as *mut u32, 0usize, 0usize) };
        if r != 0 {
            return false;
        }
        at = (at / page + 1) * page;
    }
    true
}

/// As [`copy_out`], cheaper: the range is checked page by page
/// ([`writable`]) and then written directly. A thread that unmaps the
/// buffer between the check and the copy (a program racing its own read)
/// gets SIGSEGV rather than EFAULT.
///
/// # Errors
/// `EFAULT`: some of the range is not writable.
pub(crate) fn copy_out_checked(addr: usize, data: &[u8]) -> Result<()> {
    if data.len() < 4 {
        return copy_out(addr, data);
    }
    if !writable(addr, data.len()) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: every page of the range was just written by the kernel for
    // us (`writable`); `data` is our own memory, not the program's buffer.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
    Ok(())
}

/// Reads a NUL-terminated string of at most `max` bytes (`strndup_user`).
///
/// # Errors
/// `EFAULT` (unreadable before the NUL), `EINVAL` (no NUL within `max`).
pub(crate) fn c_string(addr: usize, max: usize) -> Result<String> {
    if addr == 0 {
        return Err(Errno::EFAULT);
    }
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() <= max {
        // Read page by page so a string ending just before unmapped memory works.
        let room = 4096 - (at % 4096);
        let chunk = copy_in_prefix(at, room);
        if chunk.is_empty() {
            return Err(Errno::EFAULT);
        }
        if let Some(i) = chunk.iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..i]);
            return if out.len() > max {
                Err(Errno::EINVAL)
            } else {
                Ok(String::from_utf8_lossy(&out).into_owned())
            };
        }
        out.extend_from_slice(&chunk);
        at += chunk.len();
    }
    Err(Errno::EINVAL)
}

/// Sends `head`, the `len` bytes of user memory at `addr`, then `tail`,
/// as one message on `sock` (a key call's request with its payload
/// spliced in: [`watchq_kernel::remote::Splice`]). The real kernel reads
/// the user range itself: EFAULT, with nothing sent, when it cannot.
///
/// # Errors
/// The socket's; EFAULT.
pub(crate) fn send_spliced(
    sock: std::os::fd::BorrowedFd<'_>,
    head: &[u8],
    addr: usize,
    len: usize,
    tail: &[u8],
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let iov = [
        iovec {
            iov_base: head.as_ptr() as *mut c_void,
            iov_len: head.len(),
        },
        iovec {
            iov_base: addr as *mut c_void,
            iov_len: len,
        },
        iovec {
            iov_base: tail.as_ptr() as *mut c_void,
            iov_len: tail.len(),
        },
    ];
    // SAFETY: a zeroed msghdr is a valid empty one.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = iov.as_ptr() as *mut iovec;
    mh.msg_iovlen = iov.len();
    loop {
        // SAFETY: the raw system call (never an interposer) on the
        // connection's socket; `mh` describes the three vectors above,
        // alive until it returns. The kernel reads the program's range
        // itself and reports a bad address as EFAULT: no reference to it
        // is made here.
        let r = unsafe {
            libc::syscall(
                libc::SYS_sendmsg,
                sock.as_raw_fd(),
                &mh as *const libc::msghdr,
                libc::MSG_NOSIGNAL,
            )
        };
        if r >= 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

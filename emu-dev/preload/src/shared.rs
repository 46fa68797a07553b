//! The emulated calls on a shared kernel, as the interposers in `entry`
//! run them when `WATCHQ_KERNEL` is set: argument copying from and to
//! user memory here, the call itself in the kernel ([`crate::client`]).

use crate::client::{self, hint, with};
use crate::real;
use crate::user::{c_string, copy_in, copy_in_prefix, copy_out};
use libc::{c_int, c_long, c_ulong, pollfd};
use std::os::fd::{BorrowedFd, IntoRawFd};
use watchq_core::uapi::*;
use watchq_core::{Errno, Result};
use watchq_kernel::keyctl::cmd;
use watchq_kernel::wire::MAX_READ;

/// `KEY_MAX_DESC_SIZE` with its NUL.
const MAX_DESC: usize = 4095;
/// The longest key type name (the kernel copies it into a 32-byte buffer
/// with its NUL: 32 characters is EINVAL).
const MAX_TYPE: usize = 31;

fn borrow(fd: c_int) -> BorrowedFd<'static> {
    // SAFETY: the caller checked `fd` is open in this process (it is an
    // emulated end: fstat succeeded), and uses it for this call only.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

fn last_errno() -> Errno {
    crate::entry::last_errno()
}

/// Does the kernel have notification support (`CONFIG_WATCH_QUEUE`)?
pub(crate) fn notifications() -> bool {
    with(false, |k| Ok(k.watch_queue())).unwrap_or(true)
}

/// `pipe2(O_NOTIFICATION_PIPE | flags)`: real pipe ends from the kernel.
pub(crate) fn pipe2(flags: u32) -> Result<[c_int; 2]> {
    let [r, w] = with(false, |k| k.pipe2(flags))?;
    let (r, w) = (r.into_raw_fd(), w.into_raw_fd());
    for fd in [r, w] {
        hint(fd);
        client::remember_fd(fd, true);
        if flags & O_CLOEXEC == 0 {
            // SAFETY: our new descriptor; clears close-on-exec.
            unsafe { real::fcntl()(fd, libc::F_SETFD, 0) };
        }
    }
    Ok([r, w])
}

fn nonblocking(fd: c_int) -> bool {
    // SAFETY: F_GETFL takes no argument.
    let fl = unsafe { real::fcntl()(fd, libc::F_GETFL) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

/// Sleeps until `fd`, the real pipe behind an emulated read end, is
/// readable (a record, or the end), the way `pipe_read()` sleeps: a signal
/// whose handler has `SA_RESTART` restarts the sleep, one without fails
/// it with EINTR. A real poll() would fail with EINTR either way (the
/// kernel never restarts poll), so the sleep is the real kernel's tee(2)
/// of one byte from `fd` into a scratch pipe: tee waits for data as
/// pipe_read() does (`ipipe_prep()`, restarted or EINTR by the same rule)
/// and copies without consuming. The scratch pipe lives for this sleep
/// only (a program may close or reuse any descriptor between calls); if
/// none can be made (EMFILE), the sleep is a real poll().
fn sleep_readable(fd: c_int) -> Result<()> {
    let mut scratch = [-1; 2];
    // SAFETY: the raw pipe2 system call (not the interposer), into a
    // valid array of two ints.
    let made = unsafe {
        libc::syscall(
            libc::SYS_pipe2,
            scratch.as_mut_ptr(),
            // Blocking: tee(2) does not wait on either pipe if one is
            // O_NONBLOCK. The scratch pipe is empty, so the one byte
            // never waits for room.
            libc::O_CLOEXEC,
        )
    };
    if made == 0 {
        // SAFETY: the raw tee system call (not the interposer) on our
        // descriptors; no memory is passed.
        let n = unsafe { libc::syscall(libc::SYS_tee, fd, scratch[1], 1usize, 0u32) };
        let e = last_errno();
        for s in scratch {
            // SAFETY: our own scratch descriptors, closed once (the raw
            // call: the interposer's bookkeeping never saw them).
            unsafe { libc::syscall(libc::SYS_close, s) };
        }
        return if n < 0 { Err(e) } else { Ok(()) };
    }
    let mut p = pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    if unsafe { real::poll()(&mut p, 1, -1) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// One read of an emulated end, sleeping while it would block (in the
/// real poll, so a signal interrupts it with EINTR).
fn read_records(fd: c_int, count: usize) -> Result<Vec<u8>> {
    loop {
        match with(false, |k| k.read(borrow(fd), count.min(MAX_READ))) {
            Err(Errno::EAGAIN) if !nonblocking(fd) => sleep_readable(fd)?,
            r => return r,
        }
    }
}

/// Copies `data` out to the vectors `out` record by record; the records
/// that did not fit (EFAULT) go back to the kernel, still queued, as the
/// kernel's pipe_read() leaves them.
fn deliver(fd: c_int, data: &[u8], out: &[(usize, usize)]) -> Result<usize> {
    let mut done = 0;
    let mut ok = true;
    while done < data.len() && ok {
        let len = watchq_kernel::server::record_len(&data[done..]).unwrap_or(data.len() - done);
        // Scatter this record across the vectors from offset `done`.
        let mut off = done;
        let mut rec = &data[done..done + len];
        let mut base = 0;
        for &(addr, vlen) in out {
            if rec.is_empty() {
                break;
            }
            if off >= base + vlen {
                base += vlen;
                continue;
            }
            let at = off - base;
            let n = rec.len().min(vlen - at);
            if copy_out(addr + at, &rec[..n]).is_err() {
                ok = false;
                break;
            }
            rec = &rec[n..];
            off += n;
            base += vlen;
        }
        if ok {
            done += len;
        }
    }
    if done < data.len() {
        let _ = with(false, |k| k.unread(borrow(fd), data.len() - done));
    }
    if done == 0 && !data.is_empty() {
        return Err(Errno::EFAULT);
    }
    Ok(done)
}

/// `read()` of an emulated end.
pub(crate) fn read(fd: c_int, buf: usize, count: usize) -> Result<usize> {
    if count == 0 {
        return Ok(0);
    }
    let data = read_records(fd, count)?;
    deliver(fd, &data, &[(buf, count)])
}

/// `readv()` of an emulated end.
pub(crate) fn readv(fd: c_int, iov: &[(usize, usize)]) -> Result<usize> {
    let total: usize = iov.iter().map(|&(_, l)| l).sum();
    if total == 0 {
        return Ok(0);
    }
    let data = read_records(fd, total)?;
    deliver(fd, &data, iov)
}

/// `write()`: EBADF on a read end, EXDEV on a write end (before anything
/// else, as pipe_write() refuses a notification pipe).
pub(crate) fn write(fd: c_int) -> Result<usize> {
    // SAFETY: F_GETFL takes no argument.
    let fl = unsafe { real::fcntl()(fd, libc::F_GETFL) };
    if fl < 0 {
        return Err(last_errno());
    }
    if fl & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(Errno::EBADF);
    }
    Err(Errno::EXDEV)
}

/// `ioctl()` on an emulated end.
pub(crate) fn ioctl(fd: c_int, req: c_ulong, arg: c_ulong) -> Result<i64> {
    match req {
        // Descriptor and status flags are the real descriptor's.
        FIOCLEX | FIONCLEX | FIONBIO => {
            // SAFETY: the caller's arguments, on the real descriptor.
            let r = unsafe { real::ioctl()(fd, req, arg) };
            if r < 0 {
                Err(last_errno())
            } else {
                Ok(i64::from(r))
            }
        }
        FIONREAD => {
            let n = with(false, |k| k.ioctl(borrow(fd), req, arg, None))?;
            copy_out(arg as usize, &(n as i32).to_ne_bytes())?;
            Ok(0)
        }
        IOC_WATCH_QUEUE_SET_FILTER | watchq_core::uapi::v2::IOC_WATCH_QUEUE_SET_FILTER
            if arg != 0 =>
        {
            let mut mem = copy_in_prefix(arg as usize, 8);
            if mem.len() == 8 {
                let nr = u32::from_ne_bytes(mem[..4].try_into().expect("4 bytes"));
                if (1..=WATCH_QUEUE_MAX_FILTERS).contains(&nr) {
                    mem = copy_in_prefix(arg as usize, 8 + 44 * nr as usize);
                }
            }
            with(false, |k| k.ioctl(borrow(fd), req, arg, Some(mem)))
        }
        _ => with(false, |k| k.ioctl(borrow(fd), req, arg, None)),
    }
}

/// `fcntl()` on an emulated end: the pipe's sizes are the kernel's, the
/// rest the real descriptor's (duplicates keep the hint).
pub(crate) fn fcntl(fd: c_int, cmd_: c_int, arg: c_ulong) -> Result<i64> {
    match cmd_ {
        F_GETPIPE_SZ | F_SETPIPE_SZ => with(false, |k| k.fcntl(borrow(fd), cmd_, arg)),
        _ => {
            // SAFETY: the caller's arguments, on the real descriptor.
            let r = unsafe { real::fcntl()(fd, cmd_, arg) };
            if r < 0 {
                return Err(last_errno());
            }
            if matches!(cmd_, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC) {
                hint(r);
            }
            Ok(i64::from(r))
        }
    }
}

/// The emulated poll events of an emulated end.
pub(crate) fn poll_events(fd: c_int, events: i16) -> Result<i16> {
    with(false, |k| k.poll(borrow(fd), events as u16)).map(|v| v as i16)
}

/// The read ends' real descriptors wake a sleeper; a write end's room is
/// not announced (its sleep is sliced, as the host's is).
pub(crate) fn is_read_end(fd: c_int) -> bool {
    // SAFETY: F_GETFL takes no argument.
    let fl = unsafe { real::fcntl()(fd, libc::F_GETFL) };
    fl >= 0 && fl & libc::O_ACCMODE != libc::O_WRONLY
}

fn opt_string(addr: usize, max: usize) -> Result<Option<String>> {
    if addr == 0 {
        Ok(None)
    } else {
        c_string(addr, max).map(Some)
    }
}

/// A buffer the kernel copies a result into (see `entry::copy_result`).
fn copy_result(data: &[u8], addr: usize, room: usize, all: bool) -> Result<c_long> {
    if addr != 0 && room > 0 && (!all || room >= data.len()) {
        copy_out(addr, &data[..data.len().min(room)])?;
    }
    Ok(data.len() as c_long)
}

/// keyctl(2) on the shared kernel.
pub(crate) fn keyctl(op: c_int, a: [c_long; 4]) -> Result<c_long> {
    let args = a.map(|v| v as u64);
    let call = |s: (Option<String>, Option<String>), d: Option<Vec<u8>>| {
        with(false, |k| k.keyctl(op as u32, args, s, d, None))
    };
    let none = (None, None);
    match op as u32 {
        cmd::JOIN_SESSION_KEYRING => {
            call((opt_string(a[0] as usize, MAX_DESC)?, None), None).map(|r| r.0 as c_long)
        }
        cmd::UPDATE | cmd::INSTANTIATE => {
            call(none, Some(copy_in(a[1] as usize, a[2] as usize)?)).map(|r| r.0 as c_long)
        }
        cmd::DESCRIBE => {
            let (_, d) = call(none, None)?;
            copy_result(&d, a[1] as usize, a[2] as usize, true)
        }
        cmd::READ => {
            let (_, d) = call(none, None)?;
            copy_result(&d, a[1] as usize, a[2] as usize, false)
        }
        cmd::CAPABILITIES => {
            let (_, d) = call(none, None)?;
            copy_result(&d, a[0] as usize, a[1] as usize, false)
        }
        cmd::SEARCH => {
            let t = c_string(a[1] as usize, MAX_TYPE)?;
            let d = c_string(a[2] as usize, MAX_DESC)?;
            call((Some(t), Some(d)), None).map(|r| r.0 as c_long)
        }
        cmd::RESTRICT_KEYRING => {
            let t = opt_string(a[1] as usize, MAX_TYPE)?;
            let r = opt_string(a[2] as usize, MAX_DESC)?;
            call((t, r), None).map(|r| r.0 as c_long)
        }
        cmd::WATCH_KEY => {
            mirror_rlimit();
            let fd = a[1] as c_int;
            // An fd that is not open cannot travel; the kernel says EINVAL.
            // SAFETY: F_GETFD takes no argument.
            let open = fd >= 0 && unsafe { real::fcntl()(fd, libc::F_GETFD) } >= 0;
            let fd = open.then(|| borrow(fd));
            with(false, |k| k.keyctl(op as u32, args, (None, None), None, fd))
                .map(|r| r.0 as c_long)
        }
        _ => call(none, None).map(|r| r.0 as c_long),
    }
}

/// Mirrors the real RLIMIT_NOFILE (it bounds the user's watches).
fn mirror_rlimit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit buffer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        let _ = with(false, |k| k.rlimit(rl.rlim_cur, rl.rlim_max));
    }
}

/// add_key(2) on the shared kernel.
pub(crate) fn add_key(
    ty: usize,
    desc: usize,
    payload: usize,
    plen: usize,
    ring: i32,
) -> Result<c_long> {
    if plen > 1024 * 1024 - 1 {
        return Err(Errno::EINVAL);
    }
    let t = c_string(ty, MAX_TYPE)?;
    let d = opt_string(desc, MAX_DESC)?;
    let data = if plen == 0 {
        Vec::new()
    } else {
        copy_in(payload, plen)?
    };
    with(false, |k| k.add_key(&t, d.as_deref(), &data, ring)).map(c_long::from)
}

/// request_key(2) on the shared kernel.
pub(crate) fn request_key(ty: usize, desc: usize, dest: i32) -> Result<c_long> {
    let t = c_string(ty, MAX_TYPE)?;
    let d = c_string(desc, MAX_DESC)?;
    with(false, |k| k.request_key(&t, &d, dest)).map(c_long::from)
}

/// Hints every descriptor an `SCM_RIGHTS` message brought.
///
/// # Safety
/// `msg` is a msghdr recvmsg just filled.
pub(crate) unsafe fn hint_received(msg: *const libc::msghdr) {
    if msg.is_null() || !client::active() {
        return;
    }
    // SAFETY: the caller's msghdr, as the kernel filled it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const c_int;
                let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..n {
                    hint(data.add(i).read_unaligned());
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
}

/// `open("/dev/watch_queue")` on the shared kernel: a real pipe's read end
/// that is readable while the 2019 ring has records.
pub(crate) fn open_dev(flags: c_int) -> Result<c_int> {
    let fd = with(false, |k| k.open_dev(flags as u32))?.into_raw_fd();
    hint(fd);
    client::remember_fd(fd, true);
    if flags & libc::O_CLOEXEC == 0 {
        // SAFETY: our new descriptor; clears close-on-exec.
        unsafe { real::fcntl()(fd, libc::F_SETFD, 0) };
    }
    Ok(fd)
}

/// `mmap()` of a device descriptor: the ring's memfd, mapped here.
pub(crate) fn mmap(
    addr: *mut libc::c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> Result<*mut libc::c_void> {
    let shared = flags & libc::MAP_SHARED != 0;
    let memfd = with(false, |k| {
        k.mmap(borrow(fd), len as u64, shared, off as u64)
    })?;
    use std::os::fd::AsRawFd;
    // SAFETY: the caller's mapping request, on the ring's memfd.
    let p = unsafe { real::mmap()(addr, len, prot, flags, memfd.as_raw_fd(), 0) };
    if p == libc::MAP_FAILED {
        return Err(last_errno());
    }
    Ok(p)
}

/// watch_devices(2) on the shared kernel.
pub(crate) fn watch_devices(fd: c_int, tag: i32, flags: u32) -> Result<c_long> {
    mirror_rlimit();
    let q = emulated_fd(fd);
    with(false, |k| k.watch_devices(q, tag, flags)).map(|()| 0)
}

/// watch_mount(2)/watch_sb(2) on the shared kernel: absolute paths (or
/// relative to `/`, the emulation's working directory).
pub(crate) fn watch_path(
    sb: bool,
    dfd: c_int,
    path: usize,
    at_flags: u32,
    fd: c_int,
    tag: i32,
) -> Result<c_long> {
    mirror_rlimit();
    let p = c_string(path, libc::PATH_MAX as usize)?;
    if dfd != libc::AT_FDCWD && !p.starts_with('/') {
        return Err(Errno::EBADF);
    }
    let q = emulated_fd(fd);
    with(false, |k| k.watch_path(sb, &p, at_flags, q, tag)).map(|()| 0)
}

/// `fd` to send with a watch call, when it is an emulated end.
fn emulated_fd(fd: c_int) -> Option<BorrowedFd<'static>> {
    client::emulated(fd).then(|| borrow(fd))
}

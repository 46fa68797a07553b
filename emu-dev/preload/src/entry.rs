//! The interposed libc entry points.
//!
//! Each function checks whether its descriptor (or syscall number) is
//! watchq's. If not, it calls the real libc function with the same
//! arguments, so the program's other I/O is untouched: for a descriptor
//! that check is one atomic load of the hint bitmap ([`client`]), no lock
//! and no allocation. If so, it runs the emulated call on the kernel
//! ([`shared`]) and returns its result the C way (-1 and `errno`). The
//! variadic ones (`ioctl`, `fcntl`, `open`, `openat`, `syscall`) arrive
//! here from the C shims as `watchq_*`.
//!
//! Emulated descriptors are real pipe ends, so `close`, `fork`, `exec`,
//! `close_range` and friends are not interposed at all (`lseek` only for
//! the keys' /proc files, in [`crate::entry_open`] with the other opens and
//! the positional calls); the dup
//! family and `recvmsg` only pass the hint on. Only notification pipes
//! and the 2019 device are emulated: `pipe2` without
//! `O_NOTIFICATION_PIPE` makes a real pipe. Keys are all emulated
//! (`syscall(SYS_keyctl/add_key/request_key)`, which libkeyutils uses).

use crate::client;
use crate::entry_open::{pread64, preadv, preadv2};
use crate::procfs;
use crate::real;
use crate::shared;
use crate::signals;
use crate::signals::{Came, Deferred};
use crate::user::{c_string, copy_in, copy_out};
use libc::{
    c_char, c_int, c_long, c_uint, c_ulong, c_void, iovec, nfds_t, pollfd, size_t, ssize_t,
};
use std::time::{Duration, Instant};
use watchq_core::uapi::*;
use watchq_core::{Errno, Result};

/// `UIO_MAXIOV`.
const UIO_MAXIOV: c_int = 1024;

pub(crate) fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// The C convention: the value, or -1 with errno set.
pub(crate) fn ret<T: TryInto<c_long>>(r: Result<T>) -> c_long {
    match r {
        Ok(v) => v.try_into().unwrap_or(c_long::MAX),
        Err(e) => {
            set_errno(e.as_raw());
            -1
        }
    }
}

/// The calling thread's errno as an [`Errno`] (EIO for numbers watchq has no name for).
pub(crate) fn last_errno() -> Errno {
    let raw = std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
    Errno::from_raw(raw).unwrap_or(Errno::EIO)
}

/// The result of a real call that returns a descriptor.
fn real_fd(r: c_int) -> Result<c_int> {
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

// ---- pipes ------------------------------------------------------------

/// `pipe()`.
///
/// # Safety
/// As libc's: `fds` points at two ints.
#[no_mangle]
pub unsafe extern "C" fn pipe(fds: *mut c_int) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { pipe2(fds, 0) }
}

/// `pipe2()`: with `O_NOTIFICATION_PIPE`, an emulated notification pipe
/// (two real pipe ends the kernel made).
///
/// # Safety
/// As libc's: `fds` points at two ints.
#[no_mangle]
pub unsafe extern "C" fn pipe2(fds: *mut c_int, flags: c_int) -> c_int {
    if flags as u32 & O_NOTIFICATION_PIPE == 0 || !client::active() {
        // SAFETY: forwarded contract.
        return unsafe { real::pipe2()(fds, flags) };
    }
    let r = shared::pipe2(flags as u32).and_then(|p| {
        let bytes: Vec<u8> = p.iter().flat_map(|v| v.to_ne_bytes()).collect();
        copy_out(fds as usize, &bytes).inspect_err(|_| {
            for fd in p {
                // SAFETY: the ends just made.
                unsafe { real::close()(fd) };
            }
        })
    });
    ret(r.map(|()| 0)) as c_int
}

// ---- read and write ---------------------------------------------------

/// `read()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    if let Some(r) = procfs::read(fd, buf as usize, count, None) {
        return ret(r) as ssize_t;
    }
    // Held from here, before the first look (see `shared::hold_for_read`);
    // a descriptor found not to be emulated lets them in at once, before
    // the real call.
    let held = shared::hold_for_read(fd);
    if let Some(id) = client::emulated_ident(fd) {
        return ret(shared::read(fd, id, buf as usize, count, held)) as ssize_t;
    }
    drop(held);
    // SAFETY: forwarded contract.
    unsafe { real::read()(fd, buf, count) }
}

/// `__read_chk()` (`read` under `_FORTIFY_SOURCE`).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    buflen: size_t,
) -> ssize_t {
    if count > buflen {
        // What glibc does on a fortify failure.
        // SAFETY: abort never returns.
        unsafe { libc::abort() };
    }
    // SAFETY: forwarded contract.
    unsafe { read(fd, buf, count) }
}

fn iovecs(iov: *const iovec, cnt: c_int) -> Result<Vec<(usize, usize)>> {
    if !(0..=UIO_MAXIOV).contains(&cnt) {
        return Err(Errno::EINVAL);
    }
    let raw = copy_in(iov as usize, cnt as usize * std::mem::size_of::<iovec>())?;
    Ok(raw
        .chunks(std::mem::size_of::<iovec>())
        .map(|c| {
            let base = usize::from_ne_bytes(c[..8].try_into().expect("8 bytes"));
            let len = usize::from_ne_bytes(c[8..16].try_into().expect("8 bytes"));
            (base, len)
        })
        .collect())
}

/// `readv()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    let held = shared::hold_for_read(fd);
    if let Some(id) = client::emulated_ident(fd) {
        return ret(iovecs(iov, cnt).and_then(|v| shared::readv(fd, id, &v, held))) as ssize_t;
    }
    drop(held);
    // SAFETY: forwarded contract.
    unsafe { real::readv()(fd, iov, cnt) }
}

/// `write()`: EBADF on a read end, EXDEV on a write end.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    if procfs::is_proc(fd) {
        let r =
            copy_in(buf as usize, count).and_then(|d| procfs::write(fd, &d, None).unwrap_or(Ok(0)));
        return ret(r) as ssize_t;
    }
    if client::emulated(fd) {
        return ret(shared::write(fd)) as ssize_t;
    }
    // SAFETY: forwarded contract.
    unsafe { real::write()(fd, buf, count) }
}

/// `writev()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    if procfs::is_proc(fd) {
        // One handler call with the vectors' bytes, as the kernel's
        // write_iter gets them.
        let r = iovecs(iov, cnt).and_then(|v| {
            let mut d = Vec::new();
            for (a, l) in v {
                d.extend(copy_in(a, l)?);
            }
            procfs::write(fd, &d, None).unwrap_or(Ok(0))
        });
        return ret(r) as ssize_t;
    }
    if client::emulated(fd) {
        return ret(iovecs(iov, cnt).and_then(|_| shared::write(fd))) as ssize_t;
    }
    // SAFETY: forwarded contract.
    unsafe { real::writev()(fd, iov, cnt) }
}

// ---- descriptors ------------------------------------------------------

/// A duplicate of a number that may be emulated may be emulated too.
fn pass_hint(old: c_int, new: c_int) -> c_int {
    if new >= 0 && client::may_be_ours(old) {
        client::hint(new);
    }
    new
}

/// `dup()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: forwarded contract.
    pass_hint(fd, unsafe { real::dup()(fd) })
}

/// `dup2()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: forwarded contract.
    pass_hint(old, unsafe { real::dup2()(old, new) })
}

/// `dup3()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: forwarded contract.
    pass_hint(old, unsafe { real::dup3()(old, new, flags) })
}

/// `fcntl()` on an emulated end: the pipe sizes are the kernel's, the rest
/// the real descriptor's.
#[no_mangle]
pub extern "C" fn watchq_fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    if client::emulated(fd) {
        return ret(shared::fcntl(fd, cmd, arg)) as c_int;
    }
    // SAFETY: the caller's arguments, passed on unchanged.
    let r = unsafe { real::fcntl()(fd, cmd, arg) };
    if matches!(cmd, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC) {
        return pass_hint(fd, r);
    }
    r
}

// ---- ioctl ------------------------------------------------------------

fn is_fifo(fd: c_int) -> bool {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid stat buffer.
    unsafe { libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO }
}

/// `ioctl()`: the watch-queue commands, FIONREAD and the generic ones on
/// emulated ends; on a real pipe the watch-queue commands fail with
/// ENODEV as on a kernel with notification support.
#[no_mangle]
pub extern "C" fn watchq_ioctl(fd: c_int, req: c_ulong, arg: c_ulong) -> c_int {
    if client::emulated(fd) {
        return ret(shared::ioctl(fd, req, arg)) as c_int;
    }
    if matches!(req, IOC_WATCH_QUEUE_SET_SIZE | IOC_WATCH_QUEUE_SET_FILTER)
        && client::active()
        && is_fifo(fd)
        && shared::notifications()
    {
        return ret(Err::<i64, _>(Errno::ENODEV)) as c_int;
    }
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { real::ioctl()(fd, req, arg) }
}

// ---- poll and select --------------------------------------------------

/// Polls a set that contains emulated ends: their readiness is the
/// emulation's, the rest the real kernel's; sleeps in the real `ppoll`
/// (on the real descriptors of emulated read ends), so signals interrupt it.
/// The asynchronous signals are held back (`held`, from before the
/// caller first asked whether a descriptor is emulated: that may be a
/// forked child's first call, which connects to the kernel) while it looks and let in only
/// by the sleep's own mask ([`signals`]): a signal handled during a look
/// would otherwise leave the call asleep after its handler ran, where the
/// kernel's `do_poll()` returns EINTR.
fn poll_mixed(
    h: Emu,
    held: &signals::Deferred,
    fds: &mut [pollfd],
    timeout: Option<Duration>,
    mask: *const libc::sigset_t,
) -> Result<c_int> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mask = if mask.is_null() {
        held.caller_mask()
    } else {
        mask
    };
    loop {
        // Real entries, without waiting; emulated ones left out (-1).
        let mut real_set: Vec<pollfd> = fds
            .iter()
            .map(|p| pollfd {
                fd: if h.of(p.fd).is_some() { -1 } else { p.fd },
                events: p.events,
                revents: 0,
            })
            .collect();
        // SAFETY: a valid array of pollfds.
        let n = unsafe { real::poll()(real_set.as_mut_ptr(), real_set.len() as nfds_t, 0) };
        if n < 0 {
            return Err(last_errno());
        }
        let mut ready = 0;
        let mut wakes_by_fd = true;
        for (p, r) in fds.iter_mut().zip(&real_set) {
            p.revents = match h.of(p.fd) {
                None => r.revents,
                Some(read_end) => {
                    if p.events & libc::POLLOUT != 0 || !read_end {
                        wakes_by_fd = false;
                    }
                    h.revents(p.fd, p.events)?
                }
            };
            ready += c_int::from(p.revents != 0);
        }
        if ready > 0 || timeout == Some(Duration::ZERO) {
            return Ok(ready);
        }
        let left = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                None => return Ok(0),
                Some(l) => Some(l),
            },
        };
        // Sleep: real entries as asked, emulated read ends on their
        // real descriptor. Changes nothing announces (a write end's room) are
        // noticed by waking every 20 ms.
        let mut wait: Vec<pollfd> = fds
            .iter()
            .map(|p| match h.of(p.fd) {
                None => *p,
                Some(true) => pollfd {
                    fd: p.fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                Some(_) => pollfd {
                    fd: -1,
                    events: 0,
                    revents: 0,
                },
            })
            .collect();
        let slice = if wakes_by_fd {
            left
        } else {
            Some(left.map_or(Duration::from_millis(20), |l| {
                l.min(Duration::from_millis(20))
            }))
        };
        let ts = slice.map(|s| libc::timespec {
            tv_sec: s.as_secs() as libc::time_t,
            tv_nsec: s.subsec_nanos() as libc::c_long,
        });
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: valid pollfds, timespec and (caller's) signal mask.
        if unsafe { real::ppoll()(wait.as_mut_ptr(), wait.len() as nfds_t, tsp, mask) } < 0 {
            return Err(last_errno());
        }
    }
}

/// The emulation a poll set may meet: the kernel this process runs on.
/// `get` is None until some descriptor was ever hinted (then no set can
/// hold an emulated end).
#[derive(Clone, Copy)]
struct Emu;

impl Emu {
    fn get() -> Option<Emu> {
        client::any_hinted().then_some(Emu)
    }

    /// Is `fd` emulated, and a read end?
    fn of(self, fd: c_int) -> Option<bool> {
        client::emulated(fd).then(|| shared::is_read_end(fd))
    }

    /// The emulated events of `fd` (an emulated end).
    fn revents(self, fd: c_int, events: i16) -> Result<i16> {
        shared::poll_events(fd, events)
    }

    fn any(self, fds: impl IntoIterator<Item = c_int>) -> bool {
        fds.into_iter().any(|fd| self.of(fd).is_some())
    }

    fn done<T: TryInto<c_long>>(self, r: Result<T>) -> c_long {
        ret(r)
    }
}

fn poll_entry(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: Option<Duration>,
    mask: *const libc::sigset_t,
) -> Option<c_int> {
    let h = Emu::get()?;
    let held = signals::Deferred::unless(timeout == Some(Duration::ZERO));
    let size = std::mem::size_of::<pollfd>();
    let raw = copy_in(fds as usize, nfds as usize * size).ok()?;
    let mut set: Vec<pollfd> = raw
        .chunks(size)
        .map(|c| pollfd {
            fd: c_int::from_ne_bytes(c[0..4].try_into().expect("4 bytes")),
            events: i16::from_ne_bytes(c[4..6].try_into().expect("2 bytes")),
            revents: 0,
        })
        .collect();
    if !h.any(set.iter().map(|p| p.fd)) {
        return None;
    }
    let r = poll_mixed(h, &held, &mut set, timeout, mask).and_then(|n| {
        let bytes: Vec<u8> = set
            .iter()
            .flat_map(|p| {
                [
                    p.fd.to_ne_bytes().to_vec(),
                    p.events.to_ne_bytes().to_vec(),
                    p.revents.to_ne_bytes().to_vec(),
                ]
                .concat()
            })
            .collect();
        copy_out(fds as usize, &bytes).map(|()| n)
    });
    Some(h.done(r) as c_int)
}

fn ms(timeout: c_int) -> Option<Duration> {
    (timeout >= 0).then(|| Duration::from_millis(timeout as u64))
}

/// `poll()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    // SAFETY: forwarded contract.
    poll_entry(fds, nfds, ms(timeout), std::ptr::null())
        .unwrap_or_else(|| unsafe { real::poll()(fds, nfds, timeout) })
}

/// `__poll_chk()` (`poll` under `_FORTIFY_SOURCE`).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: c_int,
    fdslen: size_t,
) -> c_int {
    if fdslen / std::mem::size_of::<pollfd>() < nfds as usize {
        // SAFETY: abort never returns.
        unsafe { libc::abort() };
    }
    // SAFETY: forwarded contract.
    unsafe { poll(fds, nfds, timeout) }
}

/// `ppoll()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    nfds: nfds_t,
    tmo: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: `tmo` is NULL or points at a timespec (libc's contract).
    let timeout = unsafe { tmo.as_ref() }.map(|t| {
        Duration::new(
            t.tv_sec.max(0) as u64,
            t.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    });
    // SAFETY: forwarded contract.
    poll_entry(fds, nfds, timeout, mask)
        .unwrap_or_else(|| unsafe { real::ppoll()(fds, nfds, tmo, mask) })
}

/// Bit `fd` of the user's descriptor set `s` (any size: `nfds` bits).
///
/// # Safety
/// `s` is null or holds at least `fd + 1` bits (select's contract).
unsafe fn fd_bit(s: *mut libc::fd_set, fd: c_int) -> bool {
    let fd = fd as usize;
    // SAFETY: the caller's set holds this word.
    !s.is_null()
        && unsafe { (s as *const u64).add(fd / 64).read_unaligned() } & (1 << (fd % 64)) != 0
}

/// Sets bit `fd` of `s` to `on`.
///
/// # Safety
/// As [`fd_bit`].
unsafe fn set_fd_bit(s: *mut libc::fd_set, fd: c_int, on: bool) {
    let fd = fd as usize;
    // SAFETY: the caller's set holds this word.
    unsafe {
        let w = (s as *mut u64).add(fd / 64);
        let v = w.read_unaligned();
        w.write_unaligned(if on {
            v | 1 << (fd % 64)
        } else {
            v & !(1 << (fd % 64))
        });
    }
}

/// `select()`/`pselect()` on sets that hold an emulated end: through
/// poll, as the kernel's `do_select()` (`POLLIN_SET`, `POLLOUT_SET`,
/// `POLLEX_SET`). Exactly the `nfds` bits it was given are read and
/// written back, however many that is (a program may allocate sets
/// larger than `FD_SETSIZE`); bits above them are left alone. None when
/// no emulated end is in the sets (the real call answers).
///
/// # Safety
/// Each non-null set holds `nfds` bits.
unsafe fn select_common(
    nfds: c_int,
    sets: [*mut libc::fd_set; 3],
    timeout: Option<Duration>,
    mask: *const libc::sigset_t,
) -> Option<c_int> {
    let h = Emu::get()?;
    if nfds < 0 {
        return Some(h.done(Err::<i64, _>(Errno::EINVAL)) as c_int);
    }
    let held = signals::Deferred::unless(timeout == Some(Duration::ZERO));
    let [rd, wr, ex] = sets;
    let mut set = Vec::new();
    for fd in 0..nfds {
        let mut ev = 0;
        // SAFETY: fd < nfds (the caller's contract).
        unsafe {
            if fd_bit(rd, fd) {
                ev |= libc::POLLIN;
            }
            if fd_bit(wr, fd) {
                ev |= libc::POLLOUT;
            }
            if fd_bit(ex, fd) {
                ev |= libc::POLLPRI;
            }
        }
        if ev != 0 {
            set.push(pollfd {
                fd,
                events: ev,
                revents: 0,
            });
        }
    }
    if !h.any(set.iter().map(|p| p.fd)) {
        return None;
    }
    let r = poll_mixed(h, &held, &mut set, timeout, mask).and_then(|_| {
        // select's EBADF: a descriptor in a set that is not open.
        if set.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
            return Err(Errno::EBADF);
        }
        let mut n = 0;
        for s in sets.into_iter().filter(|s| !s.is_null()) {
            for fd in 0..nfds {
                // SAFETY: fd < nfds.
                unsafe { set_fd_bit(s, fd, false) };
            }
        }
        for p in &set {
            let r = p.revents;
            for (s, bits) in [
                (
                    rd,
                    libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLRDNORM,
                ),
                (wr, libc::POLLOUT | libc::POLLERR | libc::POLLWRNORM),
                (ex, libc::POLLPRI),
            ] {
                let asked = match bits {
                    b if b & libc::POLLIN != 0 => libc::POLLIN,
                    b if b & libc::POLLOUT != 0 => libc::POLLOUT,
                    _ => libc::POLLPRI,
                };
                if !s.is_null() && p.events & asked != 0 && r & bits != 0 {
                    // SAFETY: fd < nfds.
                    unsafe { set_fd_bit(s, p.fd, true) };
                    n += 1;
                }
            }
        }
        Ok(n)
    });
    Some(h.done(r) as c_int)
}

/// `select()`: as the kernel, through poll when an emulated end is in a set.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    rd: *mut libc::fd_set,
    wr: *mut libc::fd_set,
    ex: *mut libc::fd_set,
    tv: *mut libc::timeval,
) -> c_int {
    // SAFETY: `tv` is NULL or points at a timeval (libc's contract).
    let timeout = unsafe { tv.as_ref() }.map(|t| {
        Duration::from_micros(t.tv_sec.max(0) as u64 * 1_000_000 + t.tv_usec.max(0) as u64)
    });
    // SAFETY: forwarded contract.
    unsafe { select_common(nfds, [rd, wr, ex], timeout, std::ptr::null()) }
        .unwrap_or_else(|| unsafe { real::select()(nfds, rd, wr, ex, tv) })
}

/// `pselect()`: `select` with a timespec and a signal mask in force while
/// it sleeps.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    rd: *mut libc::fd_set,
    wr: *mut libc::fd_set,
    ex: *mut libc::fd_set,
    ts: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: `ts` is NULL or points at a timespec (libc's contract).
    let timeout = unsafe { ts.as_ref() }.map(|t| {
        Duration::new(
            t.tv_sec.max(0) as u64,
            t.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    });
    // SAFETY: forwarded contract.
    unsafe { select_common(nfds, [rd, wr, ex], timeout, mask) }
        .unwrap_or_else(|| unsafe { real::pselect()(nfds, rd, wr, ex, ts, mask) })
}

/// `__ppoll_chk()` (`ppoll` under `_FORTIFY_SOURCE`).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    nfds: nfds_t,
    tmo: *const libc::timespec,
    mask: *const libc::sigset_t,
    fdslen: size_t,
) -> c_int {
    if fdslen / std::mem::size_of::<pollfd>() < nfds as usize {
        // SAFETY: abort never returns.
        unsafe { libc::abort() };
    }
    // SAFETY: forwarded contract.
    unsafe { ppoll(fds, nfds, tmo, mask) }
}

// ---- splice and friends -----------------------------------------------

/// The open mode of a descriptor: (readable, writable), real or emulated.
/// The kernel's ends are real ends with the right modes.
fn modes(_: Emu, fd: c_int) -> Result<(bool, bool)> {
    // SAFETY: F_GETFL takes no argument.
    let fl = real_fd(unsafe { real::fcntl()(fd, libc::F_GETFL) })?;
    let acc = fl & libc::O_ACCMODE;
    Ok((
        acc != libc::O_WRONLY,
        acc == libc::O_WRONLY || acc == libc::O_RDWR,
    ))
}

/// Waits, as `splice_from_pipe_next()` does, for data in the real pipe
/// `fd`: Ok(false) when it is empty and has no writer. The wait is the
/// real kernel's tee(2) ([`shared::tee_one`]), so a signal fails it with
/// EINTR or, after a handler with `SA_RESTART`, restarts it, as the
/// kernel's `-ERESTARTSYS` there does; a real poll() if no scratch pipe
/// can be made.
///
/// With the signals `held` from the call's start, the wait is a look
/// that does not wait (EAGAIN: empty, with a writer) and a sleep that
/// wakes on data, the end or a signal with them still held
/// ([`Deferred::sleep_until`]), so a handler that ran during the call's
/// first look (a round trip) ends it too, as the kernel checks for a
/// signal before it sleeps.
fn real_pipe_has_data(fd: c_int, nonblock: bool, held: Option<&Deferred>) -> Result<bool> {
    let Some(held) = held.filter(|_| !nonblock) else {
        return real_pipe_has_data_once(fd, nonblock);
    };
    held_wait(held, fd, libc::POLLIN, |nonblock| {
        real_pipe_has_data_once(fd, nonblock)
    })
}

/// A splice's wait with the signals `held`: `once(true)`, the look that
/// does not wait, until it says something other than EAGAIN, with a
/// [`held_sleep`] on `events` between; without a signalfd, `once(false)`
/// (the real kernel's wait) with the caller's mask back.
fn held_wait<T>(
    held: &Deferred,
    fd: c_int,
    events: libc::c_short,
    once: impl Fn(bool) -> Result<T>,
) -> Result<T> {
    loop {
        match once(true) {
            Err(Errno::EAGAIN) => {}
            r => return r,
        }
        match held_sleep(held, fd, events) {
            Some(r) => r?,
            None => {
                let _open = held.open();
                return once(false);
            }
        }
    }
}

/// One sleep of a splice's wait with the signals `held`: settles what
/// came (EINTR after a handler without `SA_RESTART`; after one with, the
/// kernel restarts the call, which looks again: Ok), else sleeps until
/// `fd` has `events` or a signal comes, settled the same way. None: no
/// signalfd (EMFILE).
fn held_sleep(held: &Deferred, fd: c_int, events: libc::c_short) -> Option<Result<()>> {
    match held.settle() {
        Came::Interrupt => return Some(Err(Errno::EINTR)),
        Came::Restart | Came::Unhandled | Came::Stopped => return Some(Ok(())),
        Came::Nothing => {}
    }
    Some(match held.sleep_until(fd, events)? {
        Ok(Came::Interrupt) => Err(Errno::EINTR),
        Ok(_) => Ok(()),
        Err(e) => Err(Errno::from_raw(e).unwrap_or(Errno::EIO)),
    })
}

/// [`real_pipe_has_data`]'s wait in the real kernel, with the caller's
/// mask as it is.
fn real_pipe_has_data_once(fd: c_int, nonblock: bool) -> Result<bool> {
    let flags = if nonblock { SPLICE_F_NONBLOCK } else { 0 };
    if let Some(r) = shared::tee_one(fd, flags) {
        return r.map(|n| n > 0);
    }
    let mut p = pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout = if nonblock { 0 } else { -1 };
    // SAFETY: one valid pollfd.
    let n = unsafe { real::poll()(&mut p, 1, timeout) };
    if n < 0 {
        return Err(Errno::EINTR);
    }
    if p.revents & libc::POLLIN != 0 {
        return Ok(true);
    }
    if p.revents & libc::POLLHUP != 0 {
        return Ok(false);
    }
    Err(Errno::EAGAIN)
}

/// Waits, as `splice_file_to_pipe()`'s `wait_for_space()` does, for room
/// in the real pipe `fd` (a splice's destination): EPIPE with SIGPIPE when
/// it has no reader, EAGAIN when it is full and the call non-blocking (or
/// `fd` is `O_NONBLOCK`), and a signal fails the wait with EINTR or, after
/// a handler with `SA_RESTART`, restarts it. The wait is the real kernel's
/// own: a splice from `/dev/null` into `fd`, which makes that same wait
/// first and then reads nothing (0, or EINVAL where `/dev/null` has no
/// `splice_read`); either way `fd` is left as it was. With the signals
/// `held` from the call's start it is a look that does not wait and a
/// sleep on `POLLOUT` with them held, as [`real_pipe_has_data`]'s.
fn wait_for_space(fd: c_int, len: size_t, flags: c_uint, held: Option<&Deferred>) -> Result<()> {
    let Some(held) = held.filter(|_| flags & SPLICE_F_NONBLOCK == 0 && !nonblocking(fd)) else {
        return wait_for_space_once(fd, len, flags);
    };
    held_wait(held, fd, libc::POLLOUT, |nonblock| {
        let flags = if nonblock {
            flags | SPLICE_F_NONBLOCK
        } else {
            flags
        };
        wait_for_space_once(fd, len, flags)
    })
}

/// [`wait_for_space`]'s wait in the real kernel, with the caller's mask
/// as it is.
fn wait_for_space_once(fd: c_int, len: size_t, flags: c_uint) -> Result<()> {
    // SAFETY: the raw openat system call (not the interposer) of a
    // NUL-terminated path.
    let null = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/dev/null".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if null < 0 {
        // No /dev/null: no wait (the answer that follows is the same).
        return Ok(());
    }
    let null = null as c_int;
    // SAFETY: the raw splice system call on our descriptor and the
    // caller's; no offsets.
    let n = unsafe {
        libc::syscall(
            libc::SYS_splice,
            null,
            std::ptr::null_mut::<libc::loff_t>(),
            fd,
            std::ptr::null_mut::<libc::loff_t>(),
            len,
            flags & SPLICE_F_NONBLOCK,
        )
    };
    let e = last_errno();
    // SAFETY: our own descriptor, closed once (raw: never bookkept).
    unsafe { libc::syscall(libc::SYS_close, null) };
    match (n, e) {
        (n, _) if n >= 0 => Ok(()),
        (_, e @ (Errno::EPIPE | Errno::EAGAIN | Errno::EINTR)) => Err(e),
        // EINVAL: /dev/null has no splice_read, past the wait.
        _ => Ok(()),
    }
}

/// `splice()` with an emulated end: a notification pipe is no pipe to
/// splice. From it into a real pipe: EINVAL (no `splice_read`), after
/// waiting for room in the real pipe as `splice_file_to_pipe()` does;
/// into it from a real pipe: EXDEV (once data is there, as the generic
/// write path meets `pipe_write()`); otherwise EINVAL.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn splice(
    fd_in: c_int,
    off_in: *mut libc::loff_t,
    fd_out: c_int,
    off_out: *mut libc::loff_t,
    len: size_t,
    flags: c_uint,
) -> ssize_t {
    // Held from here, before the first look (see `wait_for_space`).
    let held = shared::hold_for_splice(fd_in, fd_out, flags);
    let Some(h) = Emu::get().filter(|h| h.any([fd_in, fd_out])) else {
        drop(held);
        // SAFETY: forwarded contract.
        return unsafe { real::splice()(fd_in, off_in, fd_out, off_out, len, flags) };
    };
    let r = (|| {
        if len == 0 {
            return Ok(0);
        }
        if flags & !SPLICE_F_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        let (rin, _) = modes(h, fd_in)?;
        let (_, wout) = modes(h, fd_out)?;
        let in_pipe = h.of(fd_in).is_none() && is_fifo(fd_in);
        let out_pipe = h.of(fd_out).is_none() && is_fifo(fd_out);
        if (in_pipe && !off_in.is_null()) || (out_pipe && !off_out.is_null()) {
            return Err(Errno::ESPIPE);
        }
        if !rin || !wout {
            return Err(Errno::EBADF);
        }
        if h.of(fd_out).is_some() && in_pipe {
            if !off_out.is_null() {
                return Err(Errno::EINVAL);
            }
            // do_splice(): the source's O_NONBLOCK makes it non-blocking.
            let nonblock = flags & SPLICE_F_NONBLOCK != 0 || nonblocking(fd_in);
            return if real_pipe_has_data(fd_in, nonblock, held.as_ref())? {
                Err(Errno::EXDEV)
            } else {
                Ok(0)
            };
        }
        if h.of(fd_in).is_some() && out_pipe && off_in.is_null() {
            // An offset into a pipe is EINVAL before the wait (a pipe has
            // no FMODE_PREAD); the destination's O_NONBLOCK is the real
            // splice's own.
            wait_for_space(fd_out, len, flags, held.as_ref())?;
        }
        Err(Errno::EINVAL)
    })();
    h.done(r) as ssize_t
}

/// Is `fd` open with `O_NONBLOCK`?
fn nonblocking(fd: c_int) -> bool {
    // SAFETY: F_GETFL takes no argument.
    let fl = unsafe { real::fcntl()(fd, libc::F_GETFL) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

/// `tee()` with an emulated end: EINVAL (after the mode checks).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn tee(fd_in: c_int, fd_out: c_int, len: size_t, flags: c_uint) -> ssize_t {
    let Some(h) = Emu::get().filter(|h| h.any([fd_in, fd_out])) else {
        // SAFETY: forwarded contract.
        return unsafe { real::tee()(fd_in, fd_out, len, flags) };
    };
    let r = (|| {
        if flags & !SPLICE_F_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(0);
        }
        let (rin, _) = modes(h, fd_in)?;
        let (_, wout) = modes(h, fd_out)?;
        if !rin || !wout {
            return Err(Errno::EBADF);
        }
        Err::<ssize_t, _>(Errno::EINVAL)
    })();
    h.done(r) as ssize_t
}

/// `vmsplice()` on an emulated end: EBADF (after the flag, mode and
/// vector checks; nothing to move is 0).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn vmsplice(
    fd: c_int,
    iov: *const iovec,
    nr: size_t,
    flags: c_uint,
) -> ssize_t {
    let Some(h) = Emu::get().filter(|h| h.any([fd])) else {
        // SAFETY: forwarded contract.
        return unsafe { real::vmsplice()(fd, iov, nr, flags) };
    };
    let r = (|| {
        if flags & !SPLICE_F_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        let v = iovecs(iov, c_int::try_from(nr).unwrap_or(c_int::MAX))?;
        let total: usize = v.iter().map(|&(_, l)| l).sum();
        if total == 0 {
            return Ok(0);
        }
        Err::<ssize_t, _>(Errno::EBADF)
    })();
    h.done(r) as ssize_t
}

/// `sendfile()` with an emulated end: into one, EXDEV when the source has
/// data at the offset (0 when not); out of one, EINVAL (no `splice_read`).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn sendfile(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut libc::off_t,
    count: size_t,
) -> ssize_t {
    let Some(h) = Emu::get().filter(|h| h.any([out_fd, in_fd])) else {
        // SAFETY: forwarded contract.
        return unsafe { real::sendfile()(out_fd, in_fd, offset, count) };
    };
    let r = (|| {
        let (rin, _) = modes(h, in_fd)?;
        if !rin {
            return Err(Errno::EBADF);
        }
        let in_emulated = h.of(in_fd).is_some();
        if !offset.is_null() && (in_emulated || is_fifo(in_fd)) {
            return Err(Errno::ESPIPE);
        }
        let (_, wout) = modes(h, out_fd)?;
        if !wout {
            return Err(Errno::EBADF);
        }
        if in_emulated || is_fifo(in_fd) {
            return Err(Errno::EINVAL);
        }
        // SAFETY: an all-zero stat is valid to overwrite; `offset` is
        // NULL or points at an off_t (libc's contract).
        let (size, pos) = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            let size =
                if libc::fstat(in_fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG {
                    Some(st.st_size)
                } else {
                    None
                };
            let pos = offset
                .as_ref()
                .copied()
                .unwrap_or_else(|| real::lseek()(in_fd, 0, libc::SEEK_CUR));
            (size, pos)
        };
        if count == 0 || size.is_some_and(|s| pos >= s) {
            return Ok(0);
        }
        Err::<ssize_t, _>(Errno::EXDEV)
    })();
    h.done(r) as ssize_t
}

/// `sendfile64()`: the same on 64-bit.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn sendfile64(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut libc::off_t,
    count: size_t,
) -> ssize_t {
    // SAFETY: forwarded contract.
    unsafe { sendfile(out_fd, in_fd, offset, count) }
}

// ---- open and mmap ----------------------------------------------------

/// `open`/`openat`: `/dev/watch_queue` is the kernel's 2019 device; a
/// reopen of an emulated end through `/proc/self/fd/N` is one too (a real
/// open of the same real pipe); every other path is the real one.
#[no_mangle]
pub extern "C" fn watchq_openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    // SAFETY: the caller's arguments, passed on unchanged.
    let real_open = || unsafe { real::openat()(dirfd, path, flags, mode) };
    if !client::active() {
        return real_open();
    }
    let p = c_string(path as usize, libc::PATH_MAX as usize);
    if p.as_deref().is_ok_and(|p| p == "/dev/watch_queue") {
        return ret(shared::open_dev(flags)) as c_int;
    }
    // The keys' /proc files are the emulated kernel's, never the machine's.
    if let Some(node) = p
        .as_deref()
        .ok()
        .and_then(|p| procfs::resolve(dirfd, p, flags))
    {
        return ret(procfs::open(&node, flags)) as c_int;
    }
    let fd = real_open();
    if fd >= 0 && client::any_hinted() && is_fifo(fd) {
        let pid = std::process::id().to_string();
        let n = p.ok().and_then(|p| {
            p.strip_prefix("/proc/self/fd/")
                .or_else(|| p.strip_prefix("/dev/fd/"))
                .or_else(|| {
                    p.strip_prefix("/proc/")
                        .and_then(|r| r.strip_prefix(pid.as_str()))
                        .and_then(|r| r.strip_prefix("/fd/"))
                })
                .and_then(|n| n.parse::<c_int>().ok())
        });
        if n.is_some_and(client::may_be_ours) {
            client::hint(fd);
        }
    }
    fd
}

/// `mmap()`: a `/dev/watch_queue` descriptor maps its ring's memfd (after
/// the 2019 driver's checks, in the kernel); everything else is the real
/// mmap.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    if client::emulated(fd) {
        return match shared::mmap(addr, len, prot, flags, fd, off) {
            Ok(p) => p,
            Err(e) => {
                set_errno(e.as_raw());
                libc::MAP_FAILED
            }
        };
    }
    // SAFETY: forwarded contract.
    unsafe { real::mmap()(addr, len, prot, flags, fd, off) }
}

/// `mmap64()`: the same on 64-bit.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { mmap(addr, len, prot, flags, fd, off) }
}

// ---- syscall(): keys, the watch calls and the pipe calls ---------------

/// The unmerged watch calls' numbers: watchq's own, which no kernel
/// assigns (`watchq_core::uapi::sys`); 436, 440 and 441 are the real
/// kernel's `close_range`, `process_madvise` and `epoll_pwait2`.
const SYS_WATCH_DEVICES: c_long = watchq_core::uapi::sys::WATCH_DEVICES as c_long;
const SYS_WATCH_MOUNT: c_long = watchq_core::uapi::sys::WATCH_MOUNT as c_long;
const SYS_WATCH_SB: c_long = watchq_core::uapi::sys::WATCH_SB as c_long;

/// `syscall()`: keyctl, add_key and request_key are emulated (libkeyutils
/// calls them this way), and so are the pipe calls on emulated ends.
#[no_mangle]
pub extern "C" fn watchq_syscall(
    nr: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    // SAFETY: the caller's arguments, passed on unchanged.
    let real_call = || unsafe { real::syscall()(nr, a1, a2, a3, a4, a5, a6) };
    if !client::active() {
        return real_call();
    }
    let emu = |fd: c_long| c_int::try_from(fd).is_ok_and(client::emulated);
    // SAFETY: every arm passes the arguments libc's wrapper would pass.
    unsafe {
        match nr {
            libc::SYS_keyctl => ret(shared::keyctl(a1 as c_int, [a2, a3, a4, a5])),
            libc::SYS_add_key => ret(shared::add_key(
                a1 as usize,
                a2 as usize,
                a3 as usize,
                a4 as usize,
                a5 as i32,
            )),
            libc::SYS_request_key => ret(shared::request_key(
                a1 as usize,
                a2 as usize,
                a3 as usize,
                a4 as i32,
            )),
            // The unmerged calls, at watchq's own numbers (whatever the
            // arguments: the kernel's checks give the errno).
            SYS_WATCH_DEVICES => ret(shared::watch_devices(a1 as c_int, a2 as i32, a3 as u32)),
            SYS_WATCH_MOUNT | SYS_WATCH_SB => ret(shared::watch_path(
                nr == SYS_WATCH_SB,
                a1 as c_int,
                a2 as usize,
                a3 as u32,
                a4 as c_int,
                a5 as i32,
            )),
            // The opens: the keys' /proc files and /dev/watch_queue are the
            // emulation's whichever way they are opened.
            #[cfg(target_arch = "x86_64")]
            libc::SYS_open => c_long::from(watchq_openat(
                libc::AT_FDCWD,
                a1 as *const c_char,
                a2 as c_int,
                a3 as c_uint,
            )),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_creat => c_long::from(crate::entry_open::creat(
                a1 as *const c_char,
                a2 as libc::mode_t,
            )),
            libc::SYS_openat => c_long::from(watchq_openat(
                a1 as c_int,
                a2 as *const c_char,
                a3 as c_int,
                a4 as c_uint,
            )),
            // openat2(dirfd, path, how, size): the emulation's files by
            // `how->flags` and `how->mode`; everything else the real call.
            libc::SYS_openat2 => {
                match crate::entry_open::openat2_ours(a1 as c_int, a2 as usize, a3 as usize) {
                    Some((flags, mode)) => {
                        c_long::from(watchq_openat(a1 as c_int, a2 as *const c_char, flags, mode))
                    }
                    None => real_call(),
                }
            }
            libc::SYS_pipe2 => c_long::from(pipe2(a1 as *mut c_int, a2 as c_int)),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_pipe => c_long::from(pipe2(a1 as *mut c_int, 0)),
            libc::SYS_read if emu(a1) => {
                read(a1 as c_int, a2 as *mut c_void, a3 as size_t) as c_long
            }
            libc::SYS_write if emu(a1) => {
                write(a1 as c_int, a2 as *const c_void, a3 as size_t) as c_long
            }
            libc::SYS_ioctl if emu(a1) => {
                c_long::from(watchq_ioctl(a1 as c_int, a2 as c_ulong, a3 as c_ulong))
            }
            libc::SYS_fcntl if emu(a1) => {
                c_long::from(watchq_fcntl(a1 as c_int, a2 as c_int, a3 as c_ulong))
            }
            libc::SYS_readv if emu(a1) => {
                readv(a1 as c_int, a2 as *const iovec, a3 as c_int) as c_long
            }
            libc::SYS_pread64 if emu(a1) => pread64(
                a1 as c_int,
                a2 as *mut c_void,
                a3 as size_t,
                a4 as libc::off_t,
            ) as c_long,
            libc::SYS_preadv if emu(a1) => preadv(
                a1 as c_int,
                a2 as *const iovec,
                a3 as c_int,
                a4 as libc::off_t,
            ) as c_long,
            // preadv2(fd, iov, cnt, pos_l, pos_h, flags): x86_64 passes the
            // whole offset in pos_l.
            libc::SYS_preadv2 if emu(a1) => preadv2(
                a1 as c_int,
                a2 as *const iovec,
                a3 as c_int,
                a4 as libc::off_t,
                a6 as c_int,
            ) as c_long,
            #[cfg(target_arch = "x86_64")]
            libc::SYS_poll => c_long::from(poll(a1 as *mut pollfd, a2 as nfds_t, a3 as c_int)),
            libc::SYS_ppoll => c_long::from(ppoll(
                a1 as *mut pollfd,
                a2 as nfds_t,
                a3 as *const libc::timespec,
                a4 as *const libc::sigset_t,
            )),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_dup2 => c_long::from(dup2(a1 as c_int, a2 as c_int)),
            libc::SYS_dup => c_long::from(dup(a1 as c_int)),
            libc::SYS_dup3 => c_long::from(dup3(a1 as c_int, a2 as c_int, a3 as c_int)),
            _ => real_call(),
        }
    }
}

/// `recvmsg()`: descriptors received with `SCM_RIGHTS` may be emulated ends.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> ssize_t {
    // SAFETY: forwarded contract.
    let n = unsafe { real::recvmsg()(fd, msg, flags) };
    if n >= 0 {
        // SAFETY: the msghdr recvmsg just filled.
        unsafe { shared::hint_received(msg) };
    }
    n
}

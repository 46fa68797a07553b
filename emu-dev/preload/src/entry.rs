//! The interposed libc entry points.
//!
//! Each function checks whether its descriptor (or syscall number) is
//! watchq's. If not, it calls the real libc function with the same
//! arguments, so the program's other I/O is untouched. If so, it runs the
//! emulated system call through the [`Host`] and returns its result the C
//! way (-1 and `errno`). The variadic ones (`ioctl`, `fcntl`, `open`,
//! `openat`, `syscall`) arrive here from the C shims as `watchq_*`.
//!
//! Only notification pipes are emulated: `pipe2` without
//! `O_NOTIFICATION_PIPE` makes a real pipe. Keys are all emulated
//! (`syscall(SYS_keyctl/add_key/request_key)`, which libkeyutils uses).

use crate::client;
use crate::host::{shown, Host, Mapped};
use crate::real;
use crate::shared;
use crate::user::{c_string, copy_in, copy_in_prefix, copy_out, read_int};
use libc::{
    c_char, c_int, c_long, c_uint, c_ulong, c_void, iovec, nfds_t, pollfd, size_t, ssize_t,
};
use std::time::{Duration, Instant};
use watchq_core::uapi::v2;
use watchq_core::uapi::*;
use watchq_core::{Errno, Result};
use watchq_kernel::keyctl::cmd;
use watchq_kernel::prelude::*;
use watchq_kernel::PollFd;

/// `UIO_MAXIOV`.
const UIO_MAXIOV: c_int = 1024;
/// Largest single emulated read (records are at most 127 bytes each).
const MAX_READ: usize = 1 << 20;
/// `KEY_MAX_DESC_SIZE` with its NUL.
const MAX_DESC: usize = 4095;

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// The C convention: the value, or -1 with errno set.
fn ret<T: TryInto<c_long>>(r: Result<T>) -> c_long {
    match r {
        Ok(v) => v.try_into().unwrap_or(c_long::MAX),
        Err(e) => {
            set_errno(e.as_raw());
            -1
        }
    }
}

/// The host and the mapping of `fd`, if `fd` is an emulated pipe end.
fn mapped(fd: c_int) -> Option<(&'static Host, Mapped)> {
    let h = Host::get()?;
    h.lookup(fd).map(|m| (h, m))
}

/// Logs an emulated call and returns its result the C way.
fn done<T: TryInto<c_long> + std::fmt::Debug>(
    h: &Host,
    call: std::fmt::Arguments<'_>,
    r: Result<T>,
) -> c_long {
    h.log(format_args!("{call} = {}", shown(&r)));
    ret(r)
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

/// `pipe2()`: with `O_NOTIFICATION_PIPE`, an emulated notification pipe.
///
/// # Safety
/// As libc's: `fds` points at two ints.
#[no_mangle]
pub unsafe extern "C" fn pipe2(fds: *mut c_int, flags: c_int) -> c_int {
    if flags as u32 & O_NOTIFICATION_PIPE != 0 && client::active() {
        let r = shared::pipe2(flags as u32).and_then(|p| {
            let bytes: Vec<u8> = p.iter().flat_map(|v| v.to_ne_bytes()).collect();
            copy_out(fds as usize, &bytes).inspect_err(|_| {
                for fd in p {
                    // SAFETY: the ends just made.
                    unsafe { real::close()(fd) };
                }
            })
        });
        return ret(r.map(|()| 0)) as c_int;
    }
    let h = match Host::get() {
        Some(h) if flags as u32 & O_NOTIFICATION_PIPE != 0 => h,
        // SAFETY: forwarded contract.
        _ => return unsafe { real::pipe2()(fds, flags) },
    };
    let r = notification_pipe(h, flags as u32).and_then(|p| {
        let bytes: Vec<u8> = p.iter().flat_map(|v| v.to_ne_bytes()).collect();
        copy_out(fds as usize, &bytes).inspect_err(|_| {
            for fd in p {
                close_mapped(h, fd);
            }
        })?;
        Ok(p)
    });
    h.log(format_args!("pipe2({flags:#x}) = {}", shown(&r)));
    ret(r.map(|_| 0)) as c_int
}

fn notification_pipe(h: &Host, flags: u32) -> Result<[c_int; 2]> {
    let p = h.process();
    let [er, ew] = p.pipe2(flags)?;
    let rr = h.new_eventfd(flags).inspect_err(|_| {
        let _ = (p.close(er), p.close(ew));
    })?;
    let rw = h.new_eventfd(flags).inspect_err(|_| {
        let _ = (p.close(er), p.close(ew));
        // SAFETY: our own eventfd.
        unsafe { real::close()(rr) };
    })?;
    h.register(rr, er, true, None);
    h.register(rw, ew, false, None);
    Ok([rr, rw])
}

fn close_mapped(h: &Host, fd: c_int) {
    if let Some(m) = h.unregister(fd) {
        let _ = h.process().close(m.emu);
        // SAFETY: the eventfd behind `fd` is ours to close.
        unsafe { real::close()(fd) };
        h.sync();
    }
}

// ---- read and write ---------------------------------------------------

/// Reads from an emulated end into user memory at `addr`, sleeping (in the
/// real `poll`, so a signal interrupts it with EINTR) when it would block.
fn read_mapped(h: &Host, fd: c_int, m: &Mapped, count: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; count.min(MAX_READ)];
    loop {
        let r = h.process().read_nowait(m.emu, &mut buf);
        h.sync();
        match r {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::EAGAIN) if !h.nonblocking(m) => {
                let mut p = pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { real::poll()(&mut p, 1, -1) } < 0 {
                    return Err(Errno::EINTR);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// `read()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    if client::emulated(fd) {
        return ret(shared::read(fd, buf as usize, count)) as ssize_t;
    }
    let Some((h, m)) = mapped(fd) else {
        // SAFETY: forwarded contract.
        return unsafe { real::read()(fd, buf, count) };
    };
    let r = read_mapped(h, fd, &m, count)
        .and_then(|data| copy_out(buf as usize, &data).map(|()| data.len()));
    done(h, format_args!("read({fd}, {count})"), r) as ssize_t
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
    if client::emulated(fd) {
        return ret(iovecs(iov, cnt).and_then(|v| shared::readv(fd, &v))) as ssize_t;
    }
    let Some((h, m)) = mapped(fd) else {
        // SAFETY: forwarded contract.
        return unsafe { real::readv()(fd, iov, cnt) };
    };
    let r = iovecs(iov, cnt).and_then(|v| {
        let total = v.iter().map(|&(_, l)| l).sum();
        let data = read_mapped(h, fd, &m, total)?;
        let mut rest = &data[..];
        for (base, len) in v {
            let n = len.min(rest.len());
            copy_out(base, &rest[..n])?;
            rest = &rest[n..];
        }
        Ok(data.len())
    });
    done(h, format_args!("readv({fd}, {cnt})"), r) as ssize_t
}

/// `write()`: EBADF on a read end, EXDEV on a write end.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    if client::emulated(fd) {
        return ret(shared::write(fd)) as ssize_t;
    }
    let Some((h, m)) = mapped(fd) else {
        // SAFETY: forwarded contract.
        return unsafe { real::write()(fd, buf, count) };
    };
    // A notification pipe refuses before it looks at the data.
    let r = h.process().write(m.emu, &[]);
    done(h, format_args!("write({fd}, {count})"), r) as ssize_t
}

/// `writev()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    if client::emulated(fd) {
        return ret(iovecs(iov, cnt).and_then(|_| shared::write(fd))) as ssize_t;
    }
    let Some((h, m)) = mapped(fd) else {
        // SAFETY: forwarded contract.
        return unsafe { real::writev()(fd, iov, cnt) };
    };
    let r = iovecs(iov, cnt).and_then(|_| h.process().write(m.emu, &[]));
    done(h, format_args!("writev({fd}, {cnt})"), r) as ssize_t
}

/// `lseek()`: ESPIPE on an emulated end.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn lseek(fd: c_int, off: libc::off_t, whence: c_int) -> libc::off_t {
    let Some((h, m)) = mapped(fd) else {
        // SAFETY: forwarded contract.
        return unsafe { real::lseek()(fd, off, whence) };
    };
    let r = h.process().lseek(m.emu, off, whence);
    done(h, format_args!("lseek({fd}, {off}, {whence})"), r) as libc::off_t
}

// ---- descriptors ------------------------------------------------------

/// `close()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    let Some((h, _)) = mapped(fd) else {
        // SAFETY: forwarded contract.
        return unsafe { real::close()(fd) };
    };
    close_mapped(h, fd);
    h.log(format_args!("close({fd}) = 0"));
    0
}

/// Makes real descriptor `nfd` (a fresh duplicate of `fd`'s eventfd) an
/// emulated duplicate of `m`.
fn dup_into(h: &Host, m: &Mapped, nfd: c_int) -> Result<c_int> {
    let e = h.process().dup(m.emu).inspect_err(|_| {
        // SAFETY: the duplicate we just made.
        unsafe { real::close()(nfd) };
    })?;
    h.register(nfd, e, m.read_end, Some(m));
    Ok(nfd)
}

/// The result of a real call that returns a descriptor.
fn real_fd(r: c_int) -> Result<c_int> {
    if r < 0 {
        Err(crate::host::last_errno())
    } else {
        Ok(r)
    }
}

/// `dup()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    if client::active() {
        // SAFETY: forwarded contract.
        let r = unsafe { real::dup()(fd) };
        if r >= 0 && client::may_be_ours(fd) {
            client::hint(r);
        }
        return r;
    }
    let Some((h, m)) = mapped(fd) else {
        // SAFETY: forwarded contract.
        return unsafe { real::dup()(fd) };
    };
    // SAFETY: a valid descriptor.
    let r = real_fd(unsafe { real::dup()(fd) }).and_then(|nfd| dup_into(h, &m, nfd));
    done(h, format_args!("dup({fd})"), r) as c_int
}

/// `dup2()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { dup_to(old, new, None) }
}

/// `dup3()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { dup_to(old, new, Some(flags)) }
}

/// dup2 (`flags` None) or dup3.
unsafe fn dup_to(old: c_int, new: c_int, flags: Option<c_int>) -> c_int {
    let call = |a, b| match flags {
        // SAFETY: forwarded contract.
        None => unsafe { real::dup2()(a, b) },
        // SAFETY: forwarded contract.
        Some(f) => unsafe { real::dup3()(a, b, f) },
    };
    if client::active() {
        let r = call(old, new);
        if r >= 0 && client::may_be_ours(old) {
            client::hint(r);
        }
        return r;
    }
    let Some(h) = Host::get() else {
        return call(old, new);
    };
    let (from, to) = (h.lookup(old), h.lookup(new));
    if from.is_none() && to.is_none() {
        return call(old, new);
    }
    if old == new {
        return call(old, new);
    }
    let r = real_fd(call(old, new)).and_then(|nfd| {
        if let Some(t) = h.unregister(new) {
            let _ = h.process().close(t.emu);
        }
        match &from {
            Some(m) => dup_into(h, m, nfd),
            None => Ok(nfd),
        }
    });
    h.sync();
    done(h, format_args!("dup3({old}, {new}, {flags:?})"), r) as c_int
}

/// `fcntl()` on an emulated end: status flags and pipe sizes are the
/// emulation's; descriptor flags and duplicates are the real descriptor's.
#[no_mangle]
pub extern "C" fn watchq_fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    if client::emulated(fd) {
        return ret(shared::fcntl(fd, cmd, arg)) as c_int;
    }
    let Some((h, m)) = mapped(fd) else {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::fcntl()(fd, cmd, arg) };
    };
    let r = match cmd {
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            // SAFETY: a valid descriptor.
            real_fd(unsafe { real::fcntl()(fd, cmd, arg) })
                .and_then(|nfd| dup_into(h, &m, nfd))
                .map(i64::from)
        }
        F_GETFL | F_SETFL | F_GETPIPE_SZ | F_SETPIPE_SZ => h.process().fcntl(m.emu, cmd, arg),
        // SAFETY: the caller's arguments, on the eventfd.
        _ => real_fd(unsafe { real::fcntl()(fd, cmd, arg) }).map(i64::from),
    };
    done(h, format_args!("fcntl({fd}, {cmd}, {arg:#x})"), r) as c_int
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
    let wq_cmd = matches!(req, IOC_WATCH_QUEUE_SET_SIZE | IOC_WATCH_QUEUE_SET_FILTER);
    if client::emulated(fd) {
        return ret(shared::ioctl(fd, req, arg)) as c_int;
    }
    if client::active() && wq_cmd && is_fifo(fd) {
        return ret(Err::<i64, _>(Errno::ENODEV)) as c_int;
    }
    let Some((h, m)) = mapped(fd) else {
        if let Some(h) = Host::get() {
            if wq_cmd && h.config().watch_queue && is_fifo(fd) {
                return done(
                    h,
                    format_args!("ioctl({fd}, {req:#x})"),
                    Err::<i64, _>(Errno::ENODEV),
                ) as c_int;
            }
        }
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real::ioctl()(fd, req, arg) };
    };
    let p = h.process();
    let r = match req {
        FIOCLEX | FIONCLEX => {
            // SAFETY: close-on-exec belongs to the real descriptor.
            unsafe { real::ioctl()(fd, req, 0) };
            Ok(0)
        }
        FIONBIO => {
            read_int(arg as usize).and_then(|v| p.ioctl(m.emu, req, 1, Some(&mut v.to_ne_bytes())))
        }
        FIONREAD => p
            .fionread(m.emu)
            .and_then(|n| copy_out(arg as usize, &(n as i32).to_ne_bytes()))
            .map(|()| 0),
        IOC_WATCH_QUEUE_SET_FILTER | v2::IOC_WATCH_QUEUE_SET_FILTER if arg != 0 => {
            // The kernel reads the header, checks the count, then reads
            // the entries: pass what of that is readable.
            let mut mem = copy_in_prefix(arg as usize, 8);
            if mem.len() == 8 {
                let nr = u32::from_ne_bytes(mem[..4].try_into().expect("4 bytes"));
                if (1..=WATCH_QUEUE_MAX_FILTERS).contains(&nr) {
                    mem = copy_in_prefix(arg as usize, 8 + 44 * nr as usize);
                }
            }
            p.ioctl(m.emu, req, arg, Some(&mut mem))
        }
        _ => p.ioctl(m.emu, req, arg, None),
    };
    h.sync();
    done(h, format_args!("ioctl({fd}, {req:#x}, {arg:#x})"), r) as c_int
}

// ---- poll and select --------------------------------------------------

/// Polls a set that contains emulated ends: their readiness is the
/// emulation's, the rest the real kernel's; sleeps in the real `ppoll`
/// (on the eventfds of emulated read ends), so signals interrupt it.
fn poll_mixed(
    h: Emu<'_>,
    fds: &mut [pollfd],
    timeout: Option<Duration>,
    mask: *const libc::sigset_t,
) -> Result<c_int> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        // A 2019 consumer frees its ring by writing tail in its mapping,
        // which no call announces: bring the eventfds up to date first.
        h.sync();
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
            return Err(crate::host::last_errno());
        }
        let mut ready = 0;
        let mut wakes_by_eventfd = true;
        for (p, r) in fds.iter_mut().zip(&real_set) {
            p.revents = match h.of(p.fd) {
                None => r.revents,
                Some(read_end) => {
                    if p.events & libc::POLLOUT != 0 || !read_end {
                        wakes_by_eventfd = false;
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
        // eventfd. Changes no eventfd announces (a write end's room) are
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
        let slice = if wakes_by_eventfd {
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
            return Err(crate::host::last_errno());
        }
    }
}

/// Whose emulation a poll set meets: this process's own host, or the
/// shared kernel.
#[derive(Clone, Copy)]
enum Emu<'a> {
    Local(&'a Host),
    Shared,
}

impl Emu<'_> {
    /// The emulation in force, if any.
    fn get() -> Option<Emu<'static>> {
        if client::active() {
            // Nothing was ever hinted: no descriptor can be emulated.
            return client::any_hinted().then_some(Emu::Shared);
        }
        Host::get().map(Emu::Local)
    }

    /// Is `fd` emulated, and a read end?
    fn of(self, fd: c_int) -> Option<bool> {
        match self {
            Emu::Local(h) => h.lookup(fd).map(|m| m.read_end),
            Emu::Shared => client::emulated(fd).then(|| shared::is_read_end(fd)),
        }
    }

    /// The emulated events of `fd` (an emulated end).
    fn revents(self, fd: c_int, events: i16) -> Result<i16> {
        match self {
            Emu::Local(h) => {
                let m = h.lookup(fd).ok_or(Errno::EBADF)?;
                let mut e = [PollFd::new(m.emu, events as u16)];
                h.process().poll(&mut e, 0)?;
                Ok(e[0].revents as i16)
            }
            Emu::Shared => shared::poll_events(fd, events),
        }
    }

    /// Readiness no call announces (a 2019 ring's tail), brought up to date.
    fn sync(self) {
        if let Emu::Local(h) = self {
            h.sync();
        }
    }

    fn any(self, fds: impl IntoIterator<Item = c_int>) -> bool {
        match self {
            Emu::Local(h) => h.any_mapped(fds),
            Emu::Shared => fds.into_iter().any(|fd| self.of(fd).is_some()),
        }
    }

    fn done<T: TryInto<c_long> + std::fmt::Debug>(
        self,
        call: std::fmt::Arguments<'_>,
        r: Result<T>,
    ) -> c_long {
        match self {
            Emu::Local(h) => done(h, call, r),
            Emu::Shared => ret(r),
        }
    }
}

fn poll_entry(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: Option<Duration>,
    mask: *const libc::sigset_t,
) -> Option<c_int> {
    let h = Emu::get()?;
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
    let r = poll_mixed(h, &mut set, timeout, mask).and_then(|n| {
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
    Some(h.done(format_args!("poll({nfds} fds, {timeout:?})"), r) as c_int)
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
    // SAFETY: forwarded contract.
    let real_select = || unsafe { real::select()(nfds, rd, wr, ex, tv) };
    let Some(h) = Emu::get() else {
        return real_select();
    };
    let in_set = |s: *mut libc::fd_set, fd: c_int| {
        // SAFETY: a non-null set of at least nfds bits (libc's contract).
        !s.is_null() && unsafe { libc::FD_ISSET(fd, s) }
    };
    let limit = nfds.clamp(0, libc::FD_SETSIZE as c_int);
    let mut set = Vec::new();
    for fd in 0..limit {
        let mut ev = 0;
        if in_set(rd, fd) {
            ev |= libc::POLLIN;
        }
        if in_set(wr, fd) {
            ev |= libc::POLLOUT;
        }
        if in_set(ex, fd) {
            ev |= libc::POLLPRI;
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
        return real_select();
    }
    // SAFETY: `tv` is NULL or points at a timeval (libc's contract).
    let timeout = unsafe { tv.as_ref() }.map(|t| {
        Duration::from_micros(t.tv_sec.max(0) as u64 * 1_000_000 + t.tv_usec.max(0) as u64)
    });
    let r = poll_mixed(h, &mut set, timeout, std::ptr::null()).map(|_| {
        let mut n = 0;
        for s in [rd, wr, ex] {
            if !s.is_null() {
                // SAFETY: a valid set.
                unsafe { libc::FD_ZERO(s) };
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
                if !s.is_null() && p.events & bits != 0 && r & bits != 0 {
                    // SAFETY: a valid set; fd < nfds <= FD_SETSIZE.
                    unsafe { libc::FD_SET(p.fd, s) };
                    n += 1;
                }
            }
        }
        n
    });
    h.done(format_args!("select({nfds})"), r) as c_int
}

// ---- splice and friends -----------------------------------------------

/// The open mode of a descriptor: (readable, writable), real or emulated.
fn modes(h: &Host, fd: c_int) -> Result<(bool, bool)> {
    let fl = match h.lookup(fd) {
        Some(m) => h.process().fcntl(m.emu, F_GETFL, 0)? as c_int,
        // SAFETY: F_GETFL takes no argument.
        None => real_fd(unsafe { real::fcntl()(fd, libc::F_GETFL) })?,
    };
    let acc = fl & libc::O_ACCMODE;
    Ok((
        acc != libc::O_WRONLY,
        acc == libc::O_WRONLY || acc == libc::O_RDWR,
    ))
}

/// Waits, as `splice_from_pipe_next()` does, for data in the real pipe
/// `fd`: Ok(false) when it is empty and has no writer.
fn real_pipe_has_data(fd: c_int, nonblock: bool) -> Result<bool> {
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

/// `splice()` with an emulated end: a notification pipe is no pipe to
/// splice. From it: EINVAL. Into it from a real pipe: EXDEV (once data is
/// there, as the generic write path meets `pipe_write()`); from a file: EINVAL.
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
    // A notification pipe is no pipe to splice (approximated on a shared
    // kernel: docs/exec.md).
    if client::emulated(fd_in) || client::emulated(fd_out) {
        return ret(Err::<ssize_t, _>(Errno::EINVAL)) as ssize_t;
    }
    let Some(h) = Host::get().filter(|h| h.any_mapped([fd_in, fd_out])) else {
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
        let in_pipe = h.lookup(fd_in).is_none() && is_fifo(fd_in);
        let out_pipe = h.lookup(fd_out).is_none() && is_fifo(fd_out);
        if (in_pipe && !off_in.is_null()) || (out_pipe && !off_out.is_null()) {
            return Err(Errno::ESPIPE);
        }
        if !rin || !wout {
            return Err(Errno::EBADF);
        }
        if h.lookup(fd_out).is_some() && in_pipe {
            if !off_out.is_null() {
                return Err(Errno::EINVAL);
            }
            let nonblock = flags & SPLICE_F_NONBLOCK != 0;
            return if real_pipe_has_data(fd_in, nonblock)? {
                Err(Errno::EXDEV)
            } else {
                Ok(0)
            };
        }
        Err(Errno::EINVAL)
    })();
    done(
        h,
        format_args!("splice({fd_in}, {fd_out}, {len}, {flags:#x})"),
        r,
    ) as ssize_t
}

/// `tee()` with an emulated end: EINVAL (after the mode checks).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn tee(fd_in: c_int, fd_out: c_int, len: size_t, flags: c_uint) -> ssize_t {
    // A notification pipe is no pipe to splice (approximated on a shared
    // kernel: docs/exec.md).
    if client::emulated(fd_in) || client::emulated(fd_out) {
        return ret(Err::<ssize_t, _>(Errno::EINVAL)) as ssize_t;
    }
    let Some(h) = Host::get().filter(|h| h.any_mapped([fd_in, fd_out])) else {
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
    done(
        h,
        format_args!("tee({fd_in}, {fd_out}, {len}, {flags:#x})"),
        r,
    ) as ssize_t
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
    // A notification pipe is no pipe to splice (approximated on a shared
    // kernel: docs/exec.md).
    if client::emulated(fd) {
        return ret(Err::<ssize_t, _>(Errno::EBADF)) as ssize_t;
    }
    let Some((h, _)) = mapped(fd) else {
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
    done(h, format_args!("vmsplice({fd}, {nr}, {flags:#x})"), r) as ssize_t
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
    // A notification pipe is no pipe to splice (approximated on a shared
    // kernel: docs/exec.md).
    if client::emulated(out_fd) || client::emulated(in_fd) {
        return ret(Err::<ssize_t, _>(Errno::EINVAL)) as ssize_t;
    }
    let Some(h) = Host::get().filter(|h| h.any_mapped([out_fd, in_fd])) else {
        // SAFETY: forwarded contract.
        return unsafe { real::sendfile()(out_fd, in_fd, offset, count) };
    };
    let r = (|| {
        let (rin, _) = modes(h, in_fd)?;
        if !rin {
            return Err(Errno::EBADF);
        }
        let in_emulated = h.lookup(in_fd).is_some();
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
    done(h, format_args!("sendfile({out_fd}, {in_fd}, {count})"), r) as ssize_t
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

// ---- open -------------------------------------------------------------

/// The emulated descriptor a `/proc/self/fd/N`-style path names, if N is ours.
fn proc_fd_target(h: &Host, path: &str) -> Option<Mapped> {
    let pid = std::process::id().to_string();
    let n = path
        .strip_prefix("/proc/self/fd/")
        .or_else(|| path.strip_prefix("/dev/fd/"))
        .or_else(|| {
            path.strip_prefix("/proc/")
                .and_then(|r| r.strip_prefix(pid.as_str()))
                .and_then(|r| r.strip_prefix("/fd/"))
        })?;
    h.lookup(n.parse().ok()?)
}

/// `open`/`openat`: reopening an emulated end through `/proc/self/fd/N`
/// opens a new end of the same pipe; every other path is the real one.
#[no_mangle]
pub extern "C" fn watchq_openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    // SAFETY: the caller's arguments, passed on unchanged.
    let real_open = || unsafe { real::openat()(dirfd, path, flags, mode) };
    if client::active() {
        let fd = real_open();
        if fd >= 0 && client::may_be_ours(fd) {
            return fd;
        }
        if fd >= 0 && is_fifo(fd) {
            // A reopen of an emulated end through /proc/self/fd stays one.
            if let Ok(p) = c_string(path as usize, libc::PATH_MAX as usize) {
                let n = p
                    .strip_prefix("/proc/self/fd/")
                    .or_else(|| p.strip_prefix("/dev/fd/"))
                    .and_then(|n| n.parse::<c_int>().ok());
                if n.is_some_and(client::may_be_ours) {
                    client::hint(fd);
                }
            }
        }
        return fd;
    }
    let Some(h) = Host::get() else {
        return real_open();
    };
    let Ok(p) = c_string(path as usize, libc::PATH_MAX as usize) else {
        return real_open();
    };
    if p == "/dev/watch_queue" {
        return open_device(h, flags);
    }
    let Some(m) = proc_fd_target(h, &p) else {
        return real_open();
    };
    let r = (|| {
        let e = h
            .process()
            .open(&format!("/proc/self/fd/{}", m.emu), flags as u32)?;
        let fd = h.new_eventfd(flags as u32).inspect_err(|_| {
            let _ = h.process().close(e);
        })?;
        h.register(fd, e, flags & libc::O_ACCMODE != libc::O_WRONLY, None);
        h.sync();
        Ok(fd)
    })();
    done(h, format_args!("open({p:?}, {flags:#x})"), r) as c_int
}

/// `open("/dev/watch_queue")`: a new 2019-design queue behind an eventfd.
fn open_device(h: &Host, flags: c_int) -> c_int {
    let r = (|| {
        let e = h.process().open("/dev/watch_queue", flags as u32)?;
        let fd = h.new_eventfd(flags as u32).inspect_err(|_| {
            let _ = h.process().close(e);
        })?;
        h.register(fd, e, true, None);
        Ok(fd)
    })();
    done(h, format_args!("open(\"/dev/watch_queue\", {flags:#x})"), r) as c_int
}

/// `mmap()`: a `/dev/watch_queue` descriptor maps its ring's sealed memfd
/// (after the 2019 driver's checks); everything else is the real mmap.
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
    let Some((h, m)) = mapped(fd) else {
        // SAFETY: forwarded contract.
        return unsafe { real::mmap()(addr, len, prot, flags, fd, off) };
    };
    let shared = flags & libc::MAP_SHARED != 0;
    let r = h
        .process()
        .mmap_watch_queue(m.emu, len, shared, off as u64)
        .and_then(|q| {
            use std::os::fd::AsRawFd;
            use watchq_core::ring::mmap::RingStorage;
            let ring = q.ring_2019().ok_or(Errno::EINVAL)?;
            let file = ring.storage().file().ok_or(Errno::ENODEV)?;
            // SAFETY: the caller's mapping request, on the ring's memfd.
            let p = unsafe { real::mmap()(addr, len, prot, flags, file.as_raw_fd(), 0) };
            if p == libc::MAP_FAILED {
                Err(crate::host::last_errno())
            } else {
                Ok(p as usize)
            }
        });
    h.log(format_args!(
        "mmap({fd}, {len}, {prot:#x}, {flags:#x}, {off}) = {}",
        shown(&r)
    ));
    match r {
        Ok(p) => p as *mut c_void,
        Err(e) => {
            set_errno(e.as_raw());
            libc::MAP_FAILED
        }
    }
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

// ---- syscall(): keys, and the pipe calls ------------------------------

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
    if client::active() {
        let emu = |fd: c_long| c_int::try_from(fd).is_ok_and(client::emulated);
        // SAFETY: every arm passes the arguments libc's wrapper would pass.
        return unsafe {
            match nr {
                libc::SYS_keyctl => ret(shared::keyctl(a1 as c_int, [a2, a3, a4, a5])),
                libc::SYS_add_key => ret(shared::add_key(
                    a1 as usize,
                    a2 as usize,
                    a3 as usize,
                    a4 as usize,
                    a5 as i32,
                )),
                libc::SYS_request_key => {
                    ret(shared::request_key(a1 as usize, a2 as usize, a4 as i32))
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
                libc::SYS_dup => c_long::from(dup(a1 as c_int)),
                libc::SYS_dup3 => c_long::from(dup3(a1 as c_int, a2 as c_int, a3 as c_int)),
                // Not served by the shared kernel yet (docs/exec.md).
                SYS_WATCH_DEVICES if emu(a1) && (-1..=255).contains(&a2) => {
                    ret(Err::<c_long, _>(Errno::EOPNOTSUPP))
                }
                SYS_WATCH_MOUNT | SYS_WATCH_SB if emu(a4) && (-1..=255).contains(&a5) => {
                    ret(Err::<c_long, _>(Errno::EOPNOTSUPP))
                }
                _ => real_call(),
            }
        };
    }
    let Some(h) = Host::get() else {
        return real_call();
    };
    let is_mapped = |fd: c_long| c_int::try_from(fd).is_ok_and(|fd| h.lookup(fd).is_some());
    // SAFETY: every arm passes the arguments libc's wrapper would pass.
    unsafe {
        match nr {
            libc::SYS_keyctl => keyctl(h, a1 as c_int, [a2, a3, a4, a5]),
            libc::SYS_add_key => add_key(
                h,
                a1 as usize,
                a2 as usize,
                a3 as usize,
                a4 as usize,
                a5 as i32,
            ),
            libc::SYS_request_key => request_key(h, a1 as usize, a2 as usize, a4 as i32),
            // 436 was watch_devices in the device series; Linux 5.9 gave it
            // to close_range. A call on an emulated queue fd with a tag in
            // −1..=255 is watch_devices; anything else is the real call.
            SYS_WATCH_DEVICES if is_mapped(a1) && (-1..=255).contains(&a2) => {
                watch_devices(h, a1 as c_int, a2 as i32, a3 as u32)
            }
            // watch_mount/watch_sb (2020 asm-generic numbers; the host
            // gives them to process_madvise/epoll_pwait2): taken when the
            // queue argument is emulated and the tag in range.
            SYS_WATCH_MOUNT | SYS_WATCH_SB if is_mapped(a4) && (-1..=255).contains(&a5) => {
                watch_path(
                    h,
                    nr,
                    a1 as c_int,
                    a2 as usize,
                    a3 as u32,
                    a4 as c_int,
                    a5 as i32,
                )
            }
            libc::SYS_pipe2 => c_long::from(pipe2(a1 as *mut c_int, a2 as c_int)),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_pipe => c_long::from(pipe2(a1 as *mut c_int, 0)),
            libc::SYS_close if is_mapped(a1) => c_long::from(close(a1 as c_int)),
            libc::SYS_read if is_mapped(a1) => {
                read(a1 as c_int, a2 as *mut c_void, a3 as size_t) as c_long
            }
            libc::SYS_write if is_mapped(a1) => {
                write(a1 as c_int, a2 as *const c_void, a3 as size_t) as c_long
            }
            libc::SYS_ioctl if is_mapped(a1) => {
                c_long::from(watchq_ioctl(a1 as c_int, a2 as c_ulong, a3 as c_ulong))
            }
            libc::SYS_fcntl if is_mapped(a1) => {
                c_long::from(watchq_fcntl(a1 as c_int, a2 as c_int, a3 as c_ulong))
            }
            libc::SYS_dup if is_mapped(a1) => c_long::from(dup(a1 as c_int)),
            libc::SYS_dup3 if is_mapped(a1) || is_mapped(a2) => {
                c_long::from(dup3(a1 as c_int, a2 as c_int, a3 as c_int))
            }
            _ => real_call(),
        }
    }
}

/// `watch_devices(2)`'s number in the pipe-era device series (x86_64 and
/// asm-generic alike).
const SYS_WATCH_DEVICES: c_long = 436;

/// `watch_mount(2)`'s number in the 2020 proposals (asm-generic).
const SYS_WATCH_MOUNT: c_long = 440;
/// `watch_sb(2)`'s number in the 2020 proposals (asm-generic).
const SYS_WATCH_SB: c_long = 441;

/// watch_mount(2) or watch_sb(2) on an emulated queue. Only paths relative
/// to the working directory (`/`) or absolute are known to the emulation.
fn watch_path(
    h: &Host,
    nr: c_long,
    dfd: c_int,
    path: usize,
    at_flags: u32,
    fd: c_int,
    tag: i32,
) -> c_long {
    mirror_rlimit(h);
    let emu = h.lookup(fd).map_or(-1, |m| m.emu);
    let r = c_string(path, libc::PATH_MAX as usize).and_then(|p| {
        let dfd = if dfd == libc::AT_FDCWD || p.starts_with('/') {
            watchq_kernel::process_consts::AT_FDCWD
        } else {
            return Err(Errno::EBADF);
        };
        if nr == SYS_WATCH_MOUNT {
            h.process().watch_mount(dfd, &p, at_flags, emu, tag)
        } else {
            h.process().watch_sb(dfd, &p, at_flags, emu, tag)
        }
    });
    h.sync();
    let name = if nr == SYS_WATCH_MOUNT {
        "watch_mount"
    } else {
        "watch_sb"
    };
    done(h, format_args!("{name}({fd}, {tag})"), r.map(|()| 0))
}

/// watch_devices(2) on an emulated queue.
fn watch_devices(h: &Host, fd: c_int, tag: i32, flags: u32) -> c_long {
    mirror_rlimit(h);
    let emu = h.lookup(fd).map_or(-1, |m| m.emu);
    let r = h.process().watch_devices(emu, tag, flags).map(|()| 0);
    h.sync();
    done(h, format_args!("watch_devices({fd}, {tag}, {flags:#x})"), r)
}

/// Mirrors the real RLIMIT_NOFILE into the emulated process (it bounds
/// the user's watches).
fn mirror_rlimit(h: &Host) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit buffer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        h.process().mirror_rlimit_nofile(rl.rlim_cur, rl.rlim_max);
    }
}

fn opt_string(addr: usize, max: usize) -> Result<Option<String>> {
    if addr == 0 {
        Ok(None)
    } else {
        c_string(addr, max).map(Some)
    }
}

/// A buffer the kernel copies a result into: the whole length is returned;
/// the bytes go out if `room` allows (`all`: only when all of them fit).
fn copy_result(data: &[u8], addr: usize, room: usize, all: bool) -> Result<c_long> {
    if addr != 0 && room > 0 && (!all || room >= data.len()) {
        copy_out(addr, &data[..data.len().min(room)])?;
    }
    Ok(data.len() as c_long)
}

/// keyctl(2).
fn keyctl(h: &Host, op: c_int, a: [c_long; 4]) -> c_long {
    mirror_rlimit(h);
    let p = h.process();
    let id = |v: c_long| v as i32;
    let r: Result<c_long> = match op as u32 {
        cmd::GET_KEYRING_ID => p
            .keyctl_get_keyring_id(id(a[0]), a[1] != 0)
            .map(c_long::from),
        cmd::JOIN_SESSION_KEYRING => opt_string(a[0] as usize, MAX_DESC)
            .and_then(|n| p.keyctl_join_session_keyring(n.as_deref()))
            .map(c_long::from),
        cmd::UPDATE => copy_in(a[1] as usize, a[2] as usize)
            .and_then(|d| p.keyctl_update(id(a[0]), &d))
            .map(|()| 0),
        cmd::REVOKE => p.keyctl_revoke(id(a[0])).map(|()| 0),
        cmd::CHOWN => p
            .keyctl_chown(id(a[0]), a[1] as u32, a[2] as u32)
            .map(|()| 0),
        cmd::SETPERM => p.keyctl_setperm(id(a[0]), a[1] as u32).map(|()| 0),
        cmd::DESCRIBE => p.keyctl_describe(id(a[0])).and_then(|s| {
            let mut b = s.into_bytes();
            b.push(0);
            copy_result(&b, a[1] as usize, a[2] as usize, true)
        }),
        cmd::CLEAR => p.keyctl_clear(id(a[0])).map(|()| 0),
        cmd::LINK => p.keyctl_link(id(a[0]), id(a[1])).map(|()| 0),
        cmd::UNLINK => p.keyctl_unlink(id(a[0]), id(a[1])).map(|()| 0),
        cmd::SEARCH => c_string(a[1] as usize, 32)
            .and_then(|t| Ok((t, c_string(a[2] as usize, MAX_DESC)?)))
            .and_then(|(t, d)| p.keyctl_search(id(a[0]), &t, &d, id(a[3])))
            .map(c_long::from),
        cmd::READ => p
            .keyctl_read(id(a[0]))
            .and_then(|d| copy_result(&d, a[1] as usize, a[2] as usize, false)),
        cmd::INSTANTIATE => copy_in(a[1] as usize, a[2] as usize)
            .and_then(|d| p.keyctl_instantiate(id(a[0]), &d, id(a[3])))
            .map(|()| 0),
        cmd::NEGATE => p.keyctl_negate(id(a[0]), a[1] as u32, id(a[2])).map(|()| 0),
        cmd::REJECT => p
            .keyctl_reject(id(a[0]), a[1] as u32, a[2] as i32, id(a[3]))
            .map(|()| 0),
        cmd::SET_TIMEOUT => p.keyctl_set_timeout(id(a[0]), a[1] as u32).map(|()| 0),
        cmd::INVALIDATE => p.keyctl_invalidate(id(a[0])).map(|()| 0),
        cmd::RESTRICT_KEYRING => opt_string(a[1] as usize, 32)
            .and_then(|t| Ok((t, opt_string(a[2] as usize, MAX_DESC)?)))
            .and_then(|(t, r)| p.keyctl_restrict_keyring(id(a[0]), t.as_deref(), r.as_deref()))
            .map(|()| 0),
        cmd::MOVE => p
            .keyctl_move(id(a[0]), id(a[1]), id(a[2]), a[3] as u32)
            .map(|()| 0),
        cmd::CAPABILITIES => copy_result(
            &p.keyctl_capabilities(),
            a[0] as usize,
            a[1] as usize,
            false,
        ),
        cmd::WATCH_KEY => {
            // The queue fd is the program's real number: find its emulated one.
            let emu = c_int::try_from(a[1])
                .ok()
                .and_then(|fd| h.lookup(fd))
                .map_or(-1, |m| m.emu);
            p.keyctl_watch_key(id(a[0]), emu, a[2] as i32).map(|()| 0)
        }
        _ => Err(Errno::EOPNOTSUPP),
    };
    h.sync();
    done(
        h,
        format_args!(
            "keyctl({op}, {:#x}, {:#x}, {:#x}, {:#x})",
            a[0], a[1], a[2], a[3]
        ),
        r,
    )
}

/// add_key(2).
fn add_key(h: &Host, ty: usize, desc: usize, payload: usize, plen: usize, ring: i32) -> c_long {
    mirror_rlimit(h);
    let r = (|| {
        if plen > 1024 * 1024 - 1 {
            return Err(Errno::EINVAL);
        }
        let t = c_string(ty, 32)?;
        let d = opt_string(desc, MAX_DESC)?;
        let data = if plen == 0 {
            Vec::new()
        } else {
            copy_in(payload, plen)?
        };
        h.process().add_key(&t, d.as_deref(), &data, ring)
    })();
    h.sync();
    done(h, format_args!("add_key({ring})"), r)
}

/// request_key(2), search only.
fn request_key(h: &Host, ty: usize, desc: usize, dest: i32) -> c_long {
    mirror_rlimit(h);
    let r = (|| {
        let t = c_string(ty, 32)?;
        let d = c_string(desc, MAX_DESC)?;
        h.process().request_key(&t, &d, dest)
    })();
    h.sync();
    done(h, format_args!("request_key({dest})"), r)
}

/// `recvmsg()`: descriptors received with `SCM_RIGHTS` may be emulated
/// ends (on a shared kernel).
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

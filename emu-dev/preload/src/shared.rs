//! The emulated calls on a shared kernel, as the interposers in `entry`
//! run them when `WATCHQ_KERNEL` is set: argument copying from and to
//! user memory here, the call itself in the kernel ([`crate::client`]).

use crate::client::{self, hint, with};
use crate::real;
use crate::short::{self, ForkLock, ShortLock};
use crate::signals::{Came, Deferred, KeyHold};
use crate::user::{c_string, copy_in, copy_in_prefix, copy_out, copy_out_checked, send_spliced};
use libc::{c_int, c_long, c_ulong, pollfd};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::fd::{BorrowedFd, IntoRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use watchq_core::ring::shm::{Ends, Local, ShmReader};
use watchq_core::uapi::*;
use watchq_core::{Errno, Result};
use watchq_kernel::keyctl::cmd;
use watchq_kernel::remote::{drain_nowait, Remote, RoundRead};
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

/// The real kernel's tee(2) of one byte from the real pipe `fd` into a
/// scratch pipe made for the call, with `flags` (`SPLICE_F_NONBLOCK`):
/// it waits for data in `fd` as the kernel's pipe waits do
/// (`ipipe_prep()`: EAGAIN when non-blocking, 0 once `fd` is empty and
/// has no writer, and a signal fails it with EINTR, or restarts it after
/// a handler with `SA_RESTART`: a real poll() would fail with EINTR
/// either way, as the kernel never restarts poll), and copies without
/// consuming. The scratch pipe lives for this call only (a program may
/// close or reuse any descriptor between calls); `None` when none can be
/// made (EMFILE).
pub(crate) fn tee_one(fd: c_int, flags: u32) -> Option<Result<usize>> {
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
    if made != 0 {
        return None;
    }
    // SAFETY: the raw tee system call (not the interposer) on our
    // descriptors; no memory is passed.
    let n = unsafe { libc::syscall(libc::SYS_tee, fd, scratch[1], 1usize, flags) };
    let e = last_errno();
    for s in scratch {
        // SAFETY: our own scratch descriptors, closed once (the raw
        // call: the interposer's bookkeeping never saw them).
        unsafe { libc::syscall(libc::SYS_close, s) };
    }
    Some(if n < 0 { Err(e) } else { Ok(n as usize) })
}

/// Sleeps until `fd`, the real pipe behind an emulated read end, is
/// readable (a record, or the end), the way `pipe_read()` sleeps: a signal
/// whose handler has `SA_RESTART` restarts the sleep (back to look
/// again: Ok), one without fails it with EINTR. A signal that came while
/// the read looked (`held` kept it back) is settled first, as
/// `pipe_read()` checks for one before it sleeps; the sleep itself keeps
/// the signals held and wakes on one ([`Deferred::sleep_readable`]), so
/// none can slip in between. Only if no signalfd can be made does it
/// sleep with the caller's mask in force, in the real kernel's `tee` of
/// one byte ([`tee_one`], which restarts as `pipe_read()` does) or a real
/// poll(), where a signal in the instructions between the look at the
/// pending set and the sleep's entry would be left unaccounted.
fn sleep_readable(fd: c_int, held: &Deferred) -> Result<()> {
    match held.settle() {
        Came::Interrupt => return Err(Errno::EINTR),
        Came::Restart | Came::Unhandled | Came::Stopped => return Ok(()),
        Came::Nothing => {}
    }
    match held.sleep_readable(fd) {
        Some(Ok(Came::Interrupt)) => return Err(Errno::EINTR),
        Some(Ok(_)) => return Ok(()),
        Some(Err(e)) => return Err(Errno::from_raw(e).unwrap_or(Errno::EIO)),
        None => {}
    }
    let _open = held.open();
    if let Some(r) = tee_one(fd, 0) {
        return r.map(|_| ());
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

/// The shared-memory mirrors of the pipes this process reads, by the read
/// end's `(st_dev, st_ino)` (inherited across fork: the memory is the
/// same). Bounded: past [`MAX_MIRRORS`] the map starts afresh (a mirror in
/// use stays mapped until its read ends).
static MIRRORS: ShortLock<Option<Mirrors>> = ShortLock::new(&MIRRORS_0, short::MIRRORS);
static MIRRORS_0: Mutex<Option<Mirrors>> = parking_lot::const_mutex(None);
/// A read end's identity → its mirror.
type Mirrors = HashMap<(u64, u64), Arc<ShmReader>>;
const MAX_MIRRORS: usize = 64;

/// Local reads of a mirror so far (how a test tells a read made no round
/// trip: `WATCHQ_SHM_STATS` prints them at exit).
pub(crate) static LOCAL_READS: AtomicU64 = AtomicU64::new(0);
/// Read round trips so far.
pub(crate) static ROUND_READS: AtomicU64 = AtomicU64::new(0);
/// Polls of a mirrored read end answered from the mirror, and polls of
/// emulated ends that asked the kernel.
pub(crate) static LOCAL_POLLS: AtomicU64 = AtomicU64::new(0);
pub(crate) static ROUND_POLLS: AtomicU64 = AtomicU64::new(0);

/// With `WATCHQ_SHM_STATS` set, the counts go to stderr at exit
/// ("watchq shm: N local reads, M round trips").
pub(crate) fn report_at_exit() {
    extern "C" fn report() {
        let msg = format!(
            "watchq shm: {} local reads, {} round trips, {} local polls, {} poll round trips\n",
            LOCAL_READS.load(Ordering::Relaxed),
            ROUND_READS.load(Ordering::Relaxed),
            LOCAL_POLLS.load(Ordering::Relaxed),
            ROUND_POLLS.load(Ordering::Relaxed)
        );
        // SAFETY: a valid buffer; the real write, never the interposer.
        unsafe { crate::real::write()(2, msg.as_ptr().cast(), msg.len()) };
    }
    if std::env::var_os("WATCHQ_SHM_STATS").is_some() {
        // SAFETY: registers a handler that only reads our statics.
        unsafe { libc::atexit(report) };
    }
}

/// The mirrors' lock, for the fork handlers.
pub(crate) fn mirrors_lock() -> &'static dyn ForkLock {
    &MIRRORS
}

/// The table of mirrors cannot be consulted: a signal handler
/// interrupted this thread while it held it.
struct Busy;

/// The mirror of the read end `id`: `Ok(None)` when this process has
/// none, [`Busy`] in a handler that interrupted this thread at the table.
fn lookup(id: (u64, u64)) -> std::result::Result<Option<Arc<ShmReader>>, Busy> {
    let g = MIRRORS.lock().ok_or(Busy)?;
    Ok(g.as_ref().and_then(|m| m.get(&id).cloned()))
}

/// The mirror of the read end `id`, if this process has it and can say
/// so (see [`lookup`]).
fn mirror(id: (u64, u64)) -> Option<Arc<ShmReader>> {
    lookup(id).ok().flatten()
}

/// Keeps `m` as the mirror of `id`; false in a handler that interrupted
/// this thread at the table (nothing is kept).
fn keep_mirror(id: (u64, u64), m: ShmReader) -> bool {
    let Some(mut g) = MIRRORS.lock() else {
        return false;
    };
    let map = g.get_or_insert_with(HashMap::new);
    if map.len() >= MAX_MIRRORS {
        map.clear();
    }
    map.insert(id, Arc::new(m));
    true
}

/// Copies the bytes of a record at logical offset `off` of the read into
/// the vectors `out`.
fn scatter_out(off: usize, rec: &[u8], out: &[(usize, usize)]) -> Result<()> {
    let mut off = off;
    let mut rec = rec;
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
        copy_out(addr + at, &rec[..n])?;
        rec = &rec[n..];
        off += n;
        base += vlen;
    }
    Ok(())
}

/// Copies a local read's records out; returns how many (a prefix) could
/// be: the rest stay queued, as the kernel's pipe_read() leaves what it
/// could not copy (EFAULT).
fn copy_records(data: &[u8], ends: &Ends, out: &[(usize, usize)]) -> usize {
    if out.len() == 1 && copy_out_checked(out[0].0, data).is_ok() {
        return ends.len();
    }
    let mut done = 0;
    for (i, &(end, _, _)) in ends.iter().enumerate() {
        if scatter_out(done, &data[done..end], out).is_err() {
            return i;
        }
        done = end;
    }
    ends.len()
}

/// A read of the mirror `m` into `out` (`total` bytes): None when it has
/// nothing (or is not as the kernel left it): ask the kernel.
fn read_local(
    fd: c_int,
    m: &ShmReader,
    out: &[(usize, usize)],
    total: usize,
) -> Option<Result<usize>> {
    let room = total.min(MAX_READ);
    let mut small = [0u8; 512];
    let mut big = Vec::new();
    let buf: &mut [u8] = if room <= small.len() {
        &mut small[..room]
    } else {
        big.resize(room, 0);
        &mut big
    };
    thread_local! {
        // Reused: a read of a pending record allocates nothing.
        static ENDS: std::cell::RefCell<Ends> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut fresh = Ends::new();
    let got = ENDS.with(|e| {
        // A signal handler reading inside a read takes its own.
        let mut held = e.try_borrow_mut();
        let ends = match held.as_mut() {
            Ok(v) => &mut **v,
            Err(_) => &mut fresh,
        };
        m.read(buf, ends, &mut |d, e| copy_records(d, e, out))
    });
    match got {
        Local::Read { bytes, drain } => {
            LOCAL_READS.fetch_add(1, Ordering::Relaxed);
            if drain > 0 {
                drain_nowait(borrow(fd), drain);
            }
            Some(Ok(bytes))
        }
        Local::NoBufs => Some(Err(Errno::ENOBUFS)),
        Local::Fault => Some(Err(Errno::EFAULT)),
        Local::Empty | Local::Invalid => None,
    }
}

/// One read of an emulated end into `out` (`total` bytes), sleeping
/// while it would block (in the real poll, so a signal interrupts it with
/// EINTR). A pipe with a shared-memory mirror is read there while it has
/// records; the kernel is asked when it has none. A reader that cannot
/// read the mirror asks the kernel for the records by value
/// (`Request::ReadValue`), as a real read just returns them: a signal
/// handler that interrupted this thread at the table of mirrors (the
/// kernel says "look" to a connection it gave the mirror, and the table
/// that has it cannot be consulted), or a process whose mirror's memfds
/// did not come (at its descriptor limit, EMFILE: the kernel thinks it
/// has them).
fn read_into(
    fd: c_int,
    id: Option<(u64, u64)>,
    out: &[(usize, usize)],
    total: usize,
    held: Option<Deferred>,
) -> Result<usize> {
    let mut woke = false;
    let mut by_value = false;
    loop {
        let m = match id.map(lookup) {
            // Records given back wait in the kernel, ahead of the
            // mirror's: ask there first.
            Some(Ok(m)) => m.filter(|m| !m.ask_first()),
            Some(Err(Busy)) => {
                by_value = true;
                None
            }
            None => None,
        };
        if let Some(m) = m {
            if let Some(r) = read_local(fd, &m, out, total) {
                return r;
            }
            // Woken by a readiness byte the kernel writes just before it
            // publishes the record: watch for the record a moment rather
            // than ask the kernel.
            if woke && wait_published(&m) {
                if let Some(r) = read_local(fd, &m, out, total) {
                    return r;
                }
            }
            // Empty, and nothing waits for a consumer: sleep (or say
            // EAGAIN) without asking the kernel. A wake-up that still finds
            // nothing asks it (stale readiness bytes are drained then).
            if !woke && !m.ask_when_empty() {
                let Some(held) = &held else {
                    return Err(Errno::EAGAIN);
                };
                sleep_readable(fd, held)?;
                woke = true;
                continue;
            }
        }
        ROUND_READS.fetch_add(1, Ordering::Relaxed);
        // The records the caller cannot take go back on the connection
        // that read them (the kernel keeps a connection's last read).
        let round = with(false, |k| {
            if by_value {
                let d = k.read_value(borrow(fd), total.min(MAX_READ))?;
                return Ok(Ok(deliver(k, fd, &d, out)));
            }
            Ok(match k.read_round(borrow(fd), total.min(MAX_READ))? {
                RoundRead::Data(d) => Ok(deliver(k, fd, &d, out)),
                RoundRead::Look(m) => Err(m),
            })
        });
        match round {
            Ok(Ok(done)) => return done,
            Ok(Err(Some(m))) => {
                if !id.is_some_and(|id| keep_mirror(id, m)) {
                    by_value = true;
                }
            }
            Ok(Err(None)) => {
                if id.and_then(mirror).is_none() {
                    by_value = true;
                }
            }
            Err(Errno::EAGAIN) => match &held {
                Some(held) => {
                    sleep_readable(fd, held)?;
                    woke = true;
                }
                None => return Err(Errno::EAGAIN),
            },
            Err(e) => return Err(e),
        }
    }
}

/// How long a reader woken by a readiness byte watches the mirror for its
/// record before it asks the kernel.
const PUBLISH_SPIN: std::time::Duration = std::time::Duration::from_micros(20);

/// Watches `m` for a published record for up to [`PUBLISH_SPIN`].
fn wait_published(m: &ShmReader) -> bool {
    let start = std::time::Instant::now();
    loop {
        for _ in 0..32 {
            if m.pending() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= PUBLISH_SPIN {
            return false;
        }
    }
}

/// Copies `data` (a read through the kernel) out to the vectors `out`
/// record by record; the records that did not fit (EFAULT) go back to the
/// kernel, still queued, as the kernel's pipe_read() leaves them.
fn deliver(k: &Remote, fd: c_int, data: &[u8], out: &[(usize, usize)]) -> Result<usize> {
    let mut done = 0;
    while done < data.len() {
        let len = watchq_kernel::server::record_len(&data[done..]).unwrap_or(data.len() - done);
        if scatter_out(done, &data[done..done + len], out).is_err() {
            break;
        }
        done += len;
    }
    if done < data.len() {
        let _ = k.unread(borrow(fd), data.len() - done);
    }
    if done == 0 && !data.is_empty() {
        return Err(Errno::EFAULT);
    }
    Ok(done)
}

/// The signals held back for a read of `fd` that may sleep (a blocking
/// descriptor), from before its first look (see `sleep_readable`): taken
/// before the caller asks whether `fd` is emulated at all, which may be a
/// forked child's first call, connecting to the kernel. None (nothing
/// held, no system call) for a descriptor that cannot be emulated, or a
/// non-blocking one.
pub(crate) fn hold_for_read(fd: c_int) -> Option<Deferred> {
    (client::active() && client::may_be_ours(fd) && !nonblocking(fd)).then(Deferred::new)
}

/// The signals held back for a splice() that may wait (not
/// `SPLICE_F_NONBLOCK`) with a descriptor that may be emulated, from
/// before its first look, as [`hold_for_read`]'s: the waits for the real
/// pipe at the other end are then made without a window (see
/// `entry::wait_for_space`).
pub(crate) fn hold_for_splice(fd_in: c_int, fd_out: c_int, flags: u32) -> Option<Deferred> {
    (client::active()
        && (client::may_be_ours(fd_in) || client::may_be_ours(fd_out))
        && flags & SPLICE_F_NONBLOCK == 0)
        .then(Deferred::new)
}

/// `read()` of the emulated end `fd` (`id`: its identity; `held`:
/// [`hold_for_read`]'s).
pub(crate) fn read(
    fd: c_int,
    id: (u64, u64),
    buf: usize,
    count: usize,
    held: Option<Deferred>,
) -> Result<usize> {
    if count == 0 {
        return Ok(0);
    }
    read_into(fd, Some(id), &[(buf, count)], count, held)
}

/// `readv()` of the emulated end `fd` (`id`: its identity; `held`:
/// [`hold_for_read`]'s).
pub(crate) fn readv(
    fd: c_int,
    id: (u64, u64),
    iov: &[(usize, usize)],
    held: Option<Deferred>,
) -> Result<usize> {
    let total: usize = iov.iter().map(|&(_, l)| l).sum();
    if total == 0 {
        return Ok(0);
    }
    read_into(fd, Some(id), iov, total, held)
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

/// The emulated poll events of an emulated end. A read end with a mirror
/// is answered from it (POLLIN while a record is there) unless the kernel
/// must be asked: the key collector waits for a consumer (a poll lets it
/// run), or the write end is gone (POLLHUP).
pub(crate) fn poll_events(fd: c_int, events: i16) -> Result<i16> {
    if let Some(m) = client::emulated_ident(fd).and_then(mirror) {
        if !m.ask_when_empty() {
            if let Some(has) = m.has_records() {
                LOCAL_POLLS.fetch_add(1, Ordering::Relaxed);
                let ready = (libc::POLLIN | libc::POLLRDNORM) & events;
                return Ok(if has { ready } else { 0 });
            }
        }
    }
    ROUND_POLLS.fetch_add(1, Ordering::Relaxed);
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

/// `PAGE_SIZE`: strings copied with `strndup_user(.., PAGE_SIZE)` (call-out
/// information, restrictions, public-key info) hold at most one less.
const PAGE: usize = 4096;
/// `struct keyctl_pkey_params`: key id, two lengths, seven spare words.
const PKEY_PARAMS_SIZE: usize = 40;
/// `UIO_MAXIOV`.
const UIO_MAXIOV: usize = 1024;
/// add_key's and KEYCTL_INSTANTIATE's payload limit (1 MiB less one).
const PAYLOAD_MAX: usize = 1024 * 1024 - 1;

/// `key_get_type_from_user()`: a type name of 1..=31 bytes.
///
/// # Errors
/// `EFAULT` (unreadable), `EINVAL` (empty, or 32 bytes without a NUL),
/// `EPERM` (an internal type, starting with `.`).
fn key_type_from_user(addr: usize) -> Result<String> {
    let t = c_string(addr, MAX_TYPE)?;
    if t.is_empty() {
        return Err(Errno::EINVAL);
    }
    if t.starts_with('.') {
        return Err(Errno::EPERM);
    }
    Ok(t)
}

/// Copies a result the kernel returns whole or not at all
/// (KEYCTL_DESCRIBE, and KEYCTL_READ since Linux 5.8): only when the
/// buffer holds all of it. The length is returned either way.
fn copy_whole(data: &[u8], addr: usize, room: usize) -> Result<c_long> {
    if addr != 0 && room > 0 && room >= data.len() {
        copy_out(addr, data)?;
    }
    Ok(data.len() as c_long)
}

/// Copies what fits of a result (KEYCTL_GET_SECURITY).
fn copy_prefix(data: &[u8], addr: usize, room: usize) -> Result<c_long> {
    if addr != 0 && room > 0 {
        copy_out(addr, &data[..data.len().min(room)])?;
    }
    Ok(data.len() as c_long)
}

/// The payload of KEYCTL_INSTANTIATE_IOV: `import_iovec()` copies the
/// vector (EINVAL beyond `UIO_MAXIOV`, EFAULT when unreadable); the
/// segments are read later, after the authority check (`None`: one
/// faulted).
fn iov_payload(addr: usize, ioc: usize) -> Result<Option<Vec<u8>>> {
    if addr == 0 || ioc == 0 {
        return Ok(Some(Vec::new()));
    }
    if ioc > UIO_MAXIOV {
        return Err(Errno::EINVAL);
    }
    let raw = copy_in(addr, ioc * 16)?;
    let mut segs = Vec::with_capacity(ioc);
    let mut total = 0usize;
    for v in raw.chunks_exact(16) {
        let base = usize::from_ne_bytes(v[..8].try_into().expect("8 bytes"));
        let len = usize::from_ne_bytes(v[8..].try_into().expect("8 bytes"));
        total = total.saturating_add(len);
        segs.push((base, len));
    }
    if total > PAYLOAD_MAX {
        return Err(Errno::EINVAL);
    }
    let mut out = Vec::with_capacity(total);
    for (base, len) in segs {
        match copy_in(base, len) {
            Ok(v) => out.extend(v),
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// keyctl(2) on the shared kernel. User memory is read and written here,
/// in the kernel's order relative to its other checks: where the kernel
/// checks something before it copies (an instantiation's authority, a
/// restriction's key), a copy that faulted goes to the kernel marked
/// [`cmd::FAULTED`] so those checks come first.
pub(crate) fn keyctl(op: c_int, a: [c_long; 4]) -> Result<c_long> {
    let _hold = KeyHold::new();
    crate::tree::key_call();
    let args = a.map(|v| v as u64);
    let call = |s: (Option<String>, Option<String>), d: Option<Vec<u8>>| {
        with(false, |k| k.keyctl(op as u32, args, s, d, None))
    };
    // The checks before the copy, then EFAULT (or the copy's own error).
    let faulted = |e: Errno| {
        let r = with(false, |k| {
            k.keyctl(op as u32 | cmd::FAULTED, args, (None, None), None, None)
        });
        match r {
            Err(Errno::EFAULT) => Err(e),
            Err(other) => Err(other),
            Ok(_) => Err(e),
        }
    };
    let none = (None, None);
    let (addr, len) = (a[1] as usize, a[2] as usize);
    match op as u32 {
        cmd::JOIN_SESSION_KEYRING => {
            call((opt_string(a[0] as usize, MAX_DESC)?, None), None).map(|r| r.0 as c_long)
        }
        cmd::UPDATE => {
            if len > PAGE {
                return Err(Errno::EINVAL);
            }
            if len == 0 {
                return call(none, Some(Vec::new())).map(|r| r.0 as c_long);
            }
            // The payload goes from the program's memory straight into the
            // request (sendmsg reads it, EFAULT when it cannot).
            let mut send = |sock: BorrowedFd<'_>, head: &[u8], tail: &[u8]| {
                send_spliced(sock, head, addr, len, tail)
            };
            with(false, |k| {
                k.keyctl_update_from_user(a[0] as i32, addr, len, &mut send)
            })
            .map(|v| v as c_long)
        }
        cmd::INSTANTIATE | cmd::INSTANTIATE_IOV => {
            let payload = if op as u32 == cmd::INSTANTIATE {
                // A NULL payload instantiates with none, whatever the length.
                if addr == 0 || len == 0 {
                    Some(Vec::new())
                } else if len > PAYLOAD_MAX {
                    return Err(Errno::EINVAL);
                } else {
                    copy_in(addr, len).ok()
                }
            } else {
                iov_payload(addr, len)?
            };
            match payload {
                Some(d) => with(false, |k| {
                    k.keyctl(cmd::INSTANTIATE, args, none, Some(d), None)
                })
                .map(|r| r.0 as c_long),
                None => faulted(Errno::EFAULT),
            }
        }
        cmd::DESCRIBE => {
            let (_, d) = call(none, None)?;
            copy_whole(&d, addr, len)
        }
        // keyctl_read_key() copies the whole payload when it fits, else
        // nothing; keyctl_get_security() copies as much as fits.
        cmd::READ => {
            let (_, d) = call(none, None)?;
            copy_whole(&d, addr, len)
        }
        cmd::GET_SECURITY => {
            let (_, d) = call(none, None)?;
            copy_prefix(&d, addr, len)
        }
        cmd::CAPABILITIES => {
            // What fits of the capability bytes, the rest of the buffer
            // cleared (`clear_user()`).
            let (_, d) = call(none, None)?;
            let (addr, room) = (a[0] as usize, a[1] as usize);
            if room > 0 {
                let mut out = d.clone();
                out.resize(room, 0);
                copy_out(addr, &out)?;
            }
            Ok(d.len() as c_long)
        }
        cmd::DH_COMPUTE => dh_compute(a),
        cmd::SEARCH => {
            let t = key_type_from_user(addr)?;
            let d = c_string(len, MAX_DESC)?;
            call((Some(t), Some(d)), None).map(|r| r.0 as c_long)
        }
        cmd::RESTRICT_KEYRING => {
            // The kernel looks the keyring up first, then pairs the two
            // strings, then reads them.
            let strings = match (addr, len) {
                (0, 0) => Ok((None, None)),
                (0, _) => Ok((None, Some(String::new()))),
                (_, 0) => Ok((Some(String::new()), None)),
                _ => key_type_from_user(addr)
                    .and_then(|t| Ok((Some(t), Some(c_string(len, PAGE - 1)?)))),
            };
            match strings {
                Ok(s) => call(s, None).map(|r| r.0 as c_long),
                Err(e) => faulted(e),
            }
        }
        cmd::PKEY_QUERY => {
            if a[1] != 0 {
                return Err(Errno::EINVAL);
            }
            let info = c_string(a[2] as usize, PAGE - 1)?;
            // struct keyctl_pkey_query, its spare words cleared.
            let (_, d) = call((Some(info), None), None)?;
            copy_out(a[3] as usize, &d)?;
            Ok(0)
        }
        cmd::PKEY_ENCRYPT | cmd::PKEY_DECRYPT | cmd::PKEY_SIGN | cmd::PKEY_VERIFY => {
            let params = copy_in(a[0] as usize, PKEY_PARAMS_SIZE)?;
            let word = |i: usize| u32::from_ne_bytes(params[i..i + 4].try_into().expect("4 bytes"));
            let (id, in_len, out_len) = (word(0), word(4), word(8));
            let info = c_string(addr, PAGE - 1)?;
            // The input is copied after the kernel's checks: one that
            // cannot be read goes as a flag, for EFAULT after them.
            // (No key has more than a page's worth: the kernel refuses a
            // longer input before it reads it.)
            let input = if in_len as usize <= PAGE {
                copy_in(a[2] as usize, in_len as usize)
            } else {
                Err(Errno::EFAULT)
            };
            let args = [
                u64::from(id),
                u64::from(in_len),
                u64::from(out_len),
                u64::from(input.is_err()),
            ];
            let (_, d) = with(false, |k| {
                k.keyctl(op as u32, args, (Some(info), None), input.ok(), None)
            })?;
            // VERIFY has no output; the others write all of it.
            if op as u32 != cmd::PKEY_VERIFY {
                copy_out(a[3] as usize, &d)?;
            }
            Ok(d.len() as c_long)
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

/// KEYCTL_DH_COMPUTE(params, buffer, buflen, kdf): the user memory half of
/// `keyctl_dh_compute()`/`__keyctl_dh_compute()`, in the kernel's order
/// (the KDF parameters, the null checks, the three serials, the KDF's
/// spare words, sizes and digest name); the emulated kernel does the rest.
fn dh_compute(a: [c_long; 4]) -> Result<c_long> {
    use watchq_kernel::keys::{
        CRYPTO_MAX_ALG_NAME, KEYCTL_KDF_MAX_OI_LEN, KEYCTL_KDF_MAX_OUTPUT_LEN,
    };
    let (params, buffer, buflen, kdf) = (a[0] as usize, a[1] as usize, a[2] as usize, a[3]);
    // struct keyctl_kdf_params: hashname, otherinfo, otherinfolen, __spare[8].
    let kdf = if kdf == 0 {
        None
    } else {
        Some(copy_in(kdf as usize, 56)?)
    };
    if params == 0 || (buffer == 0 && buflen != 0) {
        return Err(Errno::EINVAL);
    }
    let p = copy_in(params, 12)?;
    let serial = |i: usize| i64::from(i32::from_ne_bytes(p[i..i + 4].try_into().unwrap()));
    let word = |b: &[u8], i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap());
    let mut other = (None, Ok(Vec::new()));
    if let Some(k) = &kdf {
        if k[20..52].iter().any(|&b| b != 0) {
            return Err(Errno::EINVAL);
        }
        let oi_len = u32::from_ne_bytes(k[16..20].try_into().unwrap()) as usize;
        if buflen > KEYCTL_KDF_MAX_OUTPUT_LEN || oi_len > KEYCTL_KDF_MAX_OI_LEN {
            return Err(Errno::EMSGSIZE);
        }
        let hash = c_string(word(k, 0) as usize, CRYPTO_MAX_ALG_NAME - 1)?;
        // The kernel copies the other information in after computing the
        // secret: a fault there comes after the key and parameter errors.
        other = (Some(hash), copy_in(word(k, 8) as usize, oi_len));
    }
    let args = [serial(0), serial(4), serial(8), buflen as i64].map(|v| v as u64);
    let (hash, otherinfo) = other;
    let faulted = otherinfo.is_err();
    let d = hash.as_ref().map(|_| otherinfo.unwrap_or_default());
    let (v, out) = with(false, |k| {
        k.keyctl(cmd::DH_COMPUTE, args, (hash, None), d, None)
    })?;
    if faulted {
        return Err(Errno::EFAULT);
    }
    copy_out(buffer, &out)?;
    Ok(v as c_long)
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

/// add_key(2) on the shared kernel, its arguments read in the kernel's
/// order: the length, the type, the description (a keyring's may not
/// start with `.`), the payload.
pub(crate) fn add_key(
    ty: usize,
    desc: usize,
    payload: usize,
    plen: usize,
    ring: i32,
) -> Result<c_long> {
    let _hold = KeyHold::new();
    crate::tree::key_call();
    if plen > PAYLOAD_MAX {
        return Err(Errno::EINVAL);
    }
    let t = key_type_from_user(ty)?;
    let d = opt_string(desc, MAX_DESC)?.filter(|d| !d.is_empty());
    if d.as_deref().is_some_and(|d| d.starts_with('.')) && t.starts_with("keyring") {
        return Err(Errno::EPERM);
    }
    let header = t.len() + d.as_ref().map_or(0, String::len) + 64;
    if plen > 0 && plen + header <= watchq_kernel::wire::MAX_MSG {
        // The payload goes from the program's memory straight into the
        // request (sendmsg reads it, EFAULT when it cannot).
        let mut send = |sock: BorrowedFd<'_>, head: &[u8], tail: &[u8]| {
            send_spliced(sock, head, payload, plen, tail)
        };
        return with(false, |k| {
            k.add_key_from_user(&t, d.as_deref(), plen, ring, &mut send)
        })
        .map(c_long::from);
    }
    let data = if plen == 0 {
        Vec::new()
    } else {
        copy_in(payload, plen)?
    };
    with(false, |k| k.add_key(&t, d.as_deref(), &data, ring)).map(c_long::from)
}

/// request_key(2) on the shared kernel: the type, the description and
/// the call-out information are read first, in that order; the call-out
/// is copied in as the kernel does (`strndup_user(_callout_info,
/// PAGE_SIZE)`: 4096 bytes or more is EINVAL) and handed to the
/// `/sbin/request-key` the emulated kernel runs when it finds no key.
pub(crate) fn request_key(ty: usize, desc: usize, callout: usize, dest: i32) -> Result<c_long> {
    let _hold = KeyHold::new();
    crate::tree::key_call();
    let t = key_type_from_user(ty)?;
    let d = c_string(desc, MAX_DESC)?;
    let callout = opt_string(callout, PAGE - 1)?;
    let callout = callout.as_deref().map(str::as_bytes);
    with(false, |k| k.request_key(&t, &d, callout, dest)).map(c_long::from)
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

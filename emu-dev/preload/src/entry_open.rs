//! The interposed entry points for opening files and for positional
//! I/O, beside [`crate::entry`]'s: the fortified and 64-bit opens
//! (`__open_2`, `__openat_2`, `creat`), stdio's opens (`fopen`, `freopen`,
//! which glibc makes without the interposable `open`), stdio's `fflush`
//! and `fclose` of a stream on a writable keys `/proc` file (the handler's
//! errno for what stdio wrote), `openat2` through `syscall()`, `lseek` of the keys' `/proc` files, and `pread`, `preadv`,
//! `preadv2`, `pwrite` (ESPIPE on an emulated end, the emulated sysctl's
//! handler for a keys `/proc` file). Every path that is not the
//! emulation's goes to the real libc unchanged.

use crate::client;
use crate::entry::{readv, ret, set_errno, watchq_openat};
use crate::procfs;
use crate::real;
use crate::user::{c_string, copy_in};
use libc::{c_char, c_int, c_uint, c_void, iovec, size_t, ssize_t};
use watchq_core::{Errno, Result};

/// `lseek()`: a writable open of a keys sysctl keeps its position here
/// (`default_llseek()` on a file of size 0); everything else is the real
/// descriptor's.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn lseek(fd: c_int, off: libc::off_t, whence: c_int) -> libc::off_t {
    if let Some(r) = procfs::lseek(fd, off, whence) {
        return ret(r) as libc::off_t;
    }
    // SAFETY: forwarded contract.
    unsafe { real::lseek()(fd, off, whence) }
}

/// `lseek64()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn lseek64(fd: c_int, off: libc::off_t, whence: c_int) -> libc::off_t {
    // SAFETY: forwarded contract.
    unsafe { lseek(fd, off, whence) }
}

/// `__open_2()` (`open` under `_FORTIFY_SOURCE`, no mode).
#[no_mangle]
pub extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    watchq_openat(libc::AT_FDCWD, path, flags, 0)
}

/// `__open64_2()`.
#[no_mangle]
pub extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    watchq_openat(libc::AT_FDCWD, path, flags | libc::O_LARGEFILE, 0)
}

/// `__openat_2()` (`openat` under `_FORTIFY_SOURCE`, no mode).
#[no_mangle]
pub extern "C" fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    watchq_openat(dirfd, path, flags, 0)
}

/// `__openat64_2()`.
#[no_mangle]
pub extern "C" fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    watchq_openat(dirfd, path, flags | libc::O_LARGEFILE, 0)
}

/// `creat()`: `open(path, O_CREAT|O_WRONLY|O_TRUNC, mode)`.
#[no_mangle]
pub extern "C" fn creat(path: *const c_char, mode: libc::mode_t) -> c_int {
    watchq_openat(
        libc::AT_FDCWD,
        path,
        libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
        mode,
    )
}

/// `creat64()`.
#[no_mangle]
pub extern "C" fn creat64(path: *const c_char, mode: libc::mode_t) -> c_int {
    creat(path, mode)
}

/// The open flags of a stdio mode string (glibc's `_IO_new_file_fopen`).
fn fopen_flags(mode: &str) -> Option<c_int> {
    let mut it = mode.bytes();
    let mut f = match it.next()? {
        b'r' => libc::O_RDONLY,
        b'w' => libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        b'a' => libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
        _ => return None,
    };
    for c in it {
        match c {
            b'+' => f = (f & !libc::O_ACCMODE) | libc::O_RDWR,
            b'e' => f |= libc::O_CLOEXEC,
            b'x' => f |= libc::O_EXCL,
            _ => {}
        }
    }
    Some(f)
}

/// `fopen()` of one of the keys' `/proc` files: a stream on the emulated
/// file (glibc's fopen opens without the interposable `open`).
fn fopen_proc(path: *const c_char, mode: *const c_char) -> Option<*mut libc::FILE> {
    if !client::active() {
        return None;
    }
    let m = c_string(mode as usize, 64).ok()?;
    let flags = fopen_flags(&m)?;
    let p = c_string(path as usize, libc::PATH_MAX as usize).ok()?;
    let node = procfs::resolve(libc::AT_FDCWD, &p, flags)?;
    Some(match procfs::open(&node, flags) {
        Ok(fd) => {
            // SAFETY: our descriptor and the caller's mode string.
            let f = unsafe { libc::fdopen(fd, mode) };
            if f.is_null() {
                // SAFETY: the descriptor just opened.
                unsafe { real::close()(fd) };
            }
            f
        }
        Err(e) => {
            set_errno(e.as_raw());
            std::ptr::null_mut()
        }
    })
}

/// `fopen()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: forwarded contract.
    fopen_proc(path, mode).unwrap_or_else(|| unsafe { real::fopen()(path, mode) })
}

/// `fopen64()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: forwarded contract.
    fopen_proc(path, mode).unwrap_or_else(|| unsafe { real::fopen64()(path, mode) })
}

/// `freopen()` of one of the keys' `/proc` files onto `stream`: the
/// emulated file is put at the stream's descriptor, then glibc's own
/// `freopen(NULL, mode, stream)` reopens that descriptor with the new mode
/// (a fresh open of the same memfd or pipe, which stays the emulation's).
///
/// # Safety
/// `stream` is a valid FILE (libc's contract).
unsafe fn freopen_proc(
    path: *const c_char,
    mode: *const c_char,
    stream: *mut libc::FILE,
    real_freopen: unsafe extern "C" fn(
        *const c_char,
        *const c_char,
        *mut libc::FILE,
    ) -> *mut libc::FILE,
) -> Option<*mut libc::FILE> {
    if !client::active() || path.is_null() || stream.is_null() {
        return None;
    }
    let m = c_string(mode as usize, 64).ok()?;
    let flags = fopen_flags(&m)?;
    let p = c_string(path as usize, libc::PATH_MAX as usize).ok()?;
    let node = procfs::resolve(libc::AT_FDCWD, &p, flags)?;
    // SAFETY: the caller's stream.
    let at = unsafe {
        libc::fflush(stream);
        libc::fileno(stream)
    };
    let fd = match procfs::open(&node, flags) {
        Ok(fd) => fd,
        Err(e) => {
            set_errno(e.as_raw());
            return Some(std::ptr::null_mut());
        }
    };
    if at >= 0 && at != fd {
        // SAFETY: our descriptor onto the stream's number; then ours goes.
        unsafe {
            real::dup2()(fd, at);
            real::close()(fd);
        }
        client::hint(at);
    }
    // SAFETY: glibc's freopen with a NULL path reopens the stream's own descriptor.
    Some(unsafe { real_freopen(std::ptr::null(), mode, stream) })
}

/// `freopen()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn freopen(
    path: *const c_char,
    mode: *const c_char,
    stream: *mut libc::FILE,
) -> *mut libc::FILE {
    // SAFETY: forwarded contract.
    unsafe {
        freopen_proc(path, mode, stream, real::freopen())
            .unwrap_or_else(|| real::freopen()(path, mode, stream))
    }
}

/// `freopen64()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn freopen64(
    path: *const c_char,
    mode: *const c_char,
    stream: *mut libc::FILE,
) -> *mut libc::FILE {
    // SAFETY: forwarded contract.
    unsafe {
        freopen_proc(path, mode, stream, real::freopen64())
            .unwrap_or_else(|| real::freopen64()(path, mode, stream))
    }
}

// ---- positional reads and writes ----------------------------------------

/// A positional read or write of an emulated end: EINVAL for a negative
/// offset, then ESPIPE (a pipe has no FMODE_PREAD/FMODE_PWRITE), before the
/// buffer is looked at (`ksys_pread64()`, `do_preadv()`).
fn positional(fd: c_int, off: i64) -> Option<Result<usize>> {
    if client::emulated(fd) {
        return Some(Err(if off < 0 {
            Errno::EINVAL
        } else {
            Errno::ESPIPE
        }));
    }
    None
}

/// A `pread` the emulation answers: a keys sysctl read at `off`, or an
/// emulated end's EINVAL/ESPIPE; None for the real call.
fn pread_emulated(fd: c_int, buf: *mut c_void, count: size_t, off: libc::off_t) -> Option<ssize_t> {
    let r = (off >= 0)
        .then(|| procfs::read(fd, buf as usize, count, Some(off as u64)))
        .flatten()
        .or_else(|| positional(fd, off))?;
    Some(ret(r) as ssize_t)
}

/// `pread()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn pread(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    off: libc::off_t,
) -> ssize_t {
    // SAFETY: forwarded contract.
    pread_emulated(fd, buf, count, off)
        .unwrap_or_else(|| unsafe { real::pread()(fd, buf, count, off) })
}

/// `pread64()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn pread64(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    off: libc::off_t,
) -> ssize_t {
    // SAFETY: forwarded contract.
    pread_emulated(fd, buf, count, off)
        .unwrap_or_else(|| unsafe { real::pread64()(fd, buf, count, off) })
}

/// `pwrite()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn pwrite(
    fd: c_int,
    buf: *const c_void,
    count: size_t,
    off: libc::off_t,
) -> ssize_t {
    if procfs::is_proc(fd) && off >= 0 {
        let r = copy_in(buf as usize, count)
            .and_then(|d| procfs::write(fd, &d, Some(off as u64)).unwrap_or(Ok(0)));
        return ret(r) as ssize_t;
    }
    if let Some(r) = positional(fd, off) {
        return ret(r) as ssize_t;
    }
    // SAFETY: forwarded contract.
    unsafe { real::pwrite()(fd, buf, count, off) }
}

/// `pwrite64()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn pwrite64(
    fd: c_int,
    buf: *const c_void,
    count: size_t,
    off: libc::off_t,
) -> ssize_t {
    if procfs::is_proc(fd) || client::emulated(fd) {
        // SAFETY: forwarded contract.
        return unsafe { pwrite(fd, buf, count, off) };
    }
    // SAFETY: forwarded contract.
    unsafe { real::pwrite64()(fd, buf, count, off) }
}

/// `preadv()`: ESPIPE on an emulated end.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn preadv(
    fd: c_int,
    iov: *const iovec,
    cnt: c_int,
    off: libc::off_t,
) -> ssize_t {
    positional(fd, off).map_or_else(
        // SAFETY: forwarded contract.
        || unsafe { real::preadv()(fd, iov, cnt, off) },
        |r| ret(r) as ssize_t,
    )
}

/// `preadv64()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn preadv64(
    fd: c_int,
    iov: *const iovec,
    cnt: c_int,
    off: libc::off_t,
) -> ssize_t {
    positional(fd, off).map_or_else(
        // SAFETY: forwarded contract.
        || unsafe { real::preadv64()(fd, iov, cnt, off) },
        |r| ret(r) as ssize_t,
    )
}

/// `preadv2()`: with offset −1 it is `readv()` (the kernel's `preadv2`
/// falls back to the file position; flags it does not know are
/// EOPNOTSUPP); any other offset of an emulated end is EINVAL (negative)
/// or ESPIPE.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn preadv2(
    fd: c_int,
    iov: *const iovec,
    cnt: c_int,
    off: libc::off_t,
    flags: c_int,
) -> ssize_t {
    if client::emulated(fd) {
        if off != -1 {
            return ret(positional(fd, off).unwrap_or(Err(Errno::ESPIPE))) as ssize_t;
        }
        // RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND | RWF_NOAPPEND | RWF_ATOMIC.
        if flags & !0x7f != 0 {
            return ret(Err::<i64, _>(Errno::EOPNOTSUPP)) as ssize_t;
        }
        // SAFETY: forwarded contract.
        return unsafe { readv(fd, iov, cnt) };
    }
    // SAFETY: forwarded contract.
    unsafe { real::preadv2()(fd, iov, cnt, off, flags) }
}

/// `preadv64v2()`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn preadv64v2(
    fd: c_int,
    iov: *const iovec,
    cnt: c_int,
    off: libc::off_t,
    flags: c_int,
) -> ssize_t {
    if client::emulated(fd) {
        // SAFETY: forwarded contract.
        return unsafe { preadv2(fd, iov, cnt, off, flags) };
    }
    // SAFETY: forwarded contract.
    unsafe { real::preadv64v2()(fd, iov, cnt, off, flags) }
}

/// For `openat2(dirfd, path, how)`: the flags and mode to open with when
/// `path` is one of the emulation's files (`/dev/watch_queue`, the keys'
/// `/proc` files); None otherwise (and for a `how` that cannot be read,
/// which the real call then reports).
pub(crate) fn openat2_ours(dirfd: c_int, path: usize, how: usize) -> Option<(c_int, c_uint)> {
    if !client::active() {
        return None;
    }
    let raw = copy_in(how, 16).ok()?;
    let flags = u64::from_ne_bytes(raw[..8].try_into().expect("8 bytes")) as c_int;
    let mode = u64::from_ne_bytes(raw[8..16].try_into().expect("8 bytes")) as c_uint;
    let p = c_string(path, libc::PATH_MAX as usize).ok()?;
    (p == "/dev/watch_queue" || procfs::resolve(dirfd, &p, flags).is_some())
        .then_some((flags, mode))
}

/// glibc's `_IO_ERR_SEEN`, in `_flags`, the first member of `struct
/// _IO_FILE` (bits/types/struct_FILE.h: public, as `ferror_unlocked`'s
/// inline body reads it).
const IO_ERR_SEEN: c_int = 0x20;

/// Marks `fp` as having met a write error (what glibc's own write path
/// does when the kernel's write fails), so `ferror` says so.
///
/// # Safety
/// `fp` is a valid glibc FILE.
unsafe fn set_stream_error(fp: *mut libc::FILE) {
    // SAFETY: `_flags` is the struct's first member, an int (the caller's
    // valid FILE).
    unsafe { *fp.cast::<c_int>() |= IO_ERR_SEEN };
}

/// `fileno(fp)` with errno left as it was (fileno sets EBADF for a
/// stream without a descriptor: `fmemopen`, `fopencookie`).
fn stream_fd(fp: *mut libc::FILE) -> c_int {
    // SAFETY: this thread's errno slot.
    let saved = unsafe { *libc::__errno_location() };
    // SAFETY: the caller's stream (non-null).
    let fd = unsafe { libc::fileno(fp) };
    set_errno(saved);
    fd
}

/// `fflush()`: on a stream writing a keys `/proc` file, what stdio wrote
/// is taken by the emulated kernel now and its errno (EINVAL for a bad
/// value) is the flush's, with the stream's error flag set, as when the
/// kernel's `write()` under stdio fails. Other streams: libc's alone
/// (one atomic load first).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fflush(fp: *mut libc::FILE) -> c_int {
    // SAFETY: forwarded contract.
    let r = unsafe { real::fflush()(fp) };
    if !procfs::any() {
        return r;
    }
    let synced = if fp.is_null() {
        Some(procfs::sync_all())
    } else {
        procfs::sync(stream_fd(fp))
    };
    match synced {
        Some(Err(e)) => {
            if !fp.is_null() {
                // SAFETY: the caller's stream.
                unsafe { set_stream_error(fp) };
            }
            set_errno(e.as_raw());
            libc::EOF
        }
        _ => r,
    }
}

/// `fclose()`: a stream writing a keys `/proc` file is flushed and what it
/// wrote taken before the close, so a bad value fails the `fclose` with
/// the handler's errno (`sysctl -w` reports it), as on the kernel.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fclose(fp: *mut libc::FILE) -> c_int {
    if procfs::any() && !fp.is_null() {
        let fd = stream_fd(fp);
        if procfs::is_piped(fd) {
            // SAFETY: the caller's stream.
            let flushed = unsafe { real::fflush()(fp) };
            let synced = procfs::sync(fd).unwrap_or(Ok(()));
            // SAFETY: forwarded contract; the stream is gone after it.
            let r = unsafe { real::fclose()(fp) };
            return match synced {
                Err(e) => {
                    set_errno(e.as_raw());
                    libc::EOF
                }
                Ok(()) if flushed != 0 => libc::EOF,
                Ok(()) => r,
            };
        }
    }
    // SAFETY: forwarded contract.
    unsafe { real::fclose()(fp) }
}

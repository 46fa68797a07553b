//! The key subsystem's `/proc` files, which the emulated kernel owns:
//! `/proc/keys`, `/proc/key-users` and `/proc/sys/kernel/keys/*`. An open
//! of any of them (by any spelling: relative, through symlinks or
//! `/proc/self/..`) never reaches the machine's own file.
//!
//! A read-only open is a memfd holding the file's text, reopened read-only
//! (so a write is EBADF, and stdio's internal reads, `pread`, `mmap`-less
//! `sendfile` and `copy_file_range` all see the kernel's text). A writable
//! open is the write end of a pipe whose read end the kernel holds: bytes
//! that arrive there by a path this library does not see (stdio's internal
//! writes) are writes to the file: `fflush` and `fclose` of a stream on
//! such a descriptor ask the kernel to take them at once ([`sync`]), so
//! the stream gets the handler's errno there, and an exit handler takes
//! what a program leaves unflushed before it ends. `read`, `write`,
//! `writev` and `pread` of a sysctl are the kernel's own handler calls,
//! with its errno (EINVAL for a bad value, EPERM) and its rule that a read
//! past the start is empty.

use crate::client::{self, with};
use crate::real;
use crate::short::{self, ForkLock, ShortLock};
use crate::user::copy_out;
use libc::c_int;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use watchq_core::{Errno, Result};
use watchq_kernel::syscalls::procfs::ProcNode;

/// An open of one of these files: the path the kernel knows it by, the
/// open's flags and, for a pipe-backed (writable) open, its position.
#[derive(Clone, Debug)]
struct ProcOpen {
    path: String,
    flags: c_int,
    pos: u64,
    /// Backed by a memfd (read-only open): its offset is the position.
    memfd: bool,
}

/// `(st_dev, st_ino)` of the real descriptor → the open.
static OPENS: ShortLock<Option<HashMap<(u64, u64), ProcOpen>>> =
    ShortLock::new(&OPENS_0, short::OPENS);
static OPENS_0: Mutex<Option<HashMap<(u64, u64), ProcOpen>>> = parking_lot::const_mutex(None);
/// Set once any such file was opened in this process.
static ANY: AtomicBool = AtomicBool::new(false);

/// The last components of the paths these files have.
const NAMES: [&str; 11] = [
    "pipe-user-pages-soft",
    "pipe-user-pages-hard",
    "keys",
    "key-users",
    "gc_delay",
    "maxkeys",
    "maxbytes",
    "root_maxkeys",
    "root_maxbytes",
    "persistent_keyring_expiry",
    "sysctl_writes_strict",
];

/// `path` with `.`, `..` and repeated slashes resolved lexically.
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn readlink_fd(fd: c_int) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
}

/// The path the kernel knows `path` (relative to `dirfd`) by, when it
/// names one of these files. Cheap unless the last component is one of
/// their names: then the real kernel resolves it (an `O_PATH` open, which
/// reads nothing and changes nothing), or, where the machine has no such
/// file, the spelling is taken lexically.
pub(crate) fn resolve(dirfd: c_int, path: &str, flags: c_int) -> Option<String> {
    let base = path.rsplit('/').next().unwrap_or(path);
    if !NAMES.contains(&base) {
        return None;
    }
    let c = std::ffi::CString::new(path).ok()?;
    let nofollow = flags & libc::O_NOFOLLOW;
    // SAFETY: a NUL-terminated path; O_PATH opens nothing for reading or writing.
    let fd = unsafe {
        real::openat()(
            dirfd,
            c.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC | nofollow,
            0,
        )
    };
    let full = if fd >= 0 {
        let p = readlink_fd(fd).map(|p| on_other_procfs(fd, p));
        // SAFETY: the descriptor just opened.
        unsafe { real::close()(fd) };
        p?
    } else if path.starts_with('/') {
        normalise(path)
    } else {
        let dir = if dirfd == libc::AT_FDCWD {
            std::env::current_dir().ok()?.to_str()?.to_owned()
        } else {
            readlink_fd(dirfd)?
        };
        normalise(&format!("{dir}/{path}"))
    };
    ProcNode::lookup(&full).map(|_| full)
}

/// `PROC_SUPER_MAGIC`.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// The `/proc/...` name of `path` when the file open at `fd` is one of
/// these files on a procfs mounted elsewhere (`mount -t proc proc /mnt`):
/// its path below that mount is the same. `path` unchanged otherwise.
fn on_other_procfs(fd: c_int, path: String) -> String {
    if ProcNode::lookup(&path).is_some() {
        return path;
    }
    // SAFETY: an all-zero statfs is a valid value to be overwritten.
    let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid statfs buffer.
    if unsafe { libc::fstatfs(fd, &mut sf) } != 0 || sf.f_type as i64 != PROC_SUPER_MAGIC {
        return path;
    }
    for tail in ["/sys/kernel/keys/", "/sys/fs/", "/sys/kernel/"] {
        if let Some(i) = path.rfind(tail) {
            let name = format!("/proc{}", &path[i..]);
            if ProcNode::lookup(&name).is_some() {
                return name;
            }
        }
    }
    // /proc/keys and /proc/key-users: the same proc entry (inode) on every
    // procfs mount.
    for name in ["/proc/keys", "/proc/key-users"] {
        if path.ends_with(&name[5..]) {
            let same = std::fs::metadata(name)
                .ok()
                .zip(ident(fd))
                .is_some_and(|(m, (_, ino))| {
                    use std::os::unix::fs::MetadataExt;
                    m.ino() == ino
                });
            if same {
                return name.to_string();
            }
        }
    }
    path
}

fn ident(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid stat buffer.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// `open()` of `path` (as [`resolve`] gave it) with `flags`.
pub(crate) fn open(path: &str, flags: c_int) -> Result<c_int> {
    let (text, pipe) = with(false, |k| k.proc_open(path, flags as u32))?;
    let cloexec = flags & libc::O_CLOEXEC != 0;
    let (fd, memfd) = match pipe {
        Some(w) => (w.into_raw_fd(), false),
        None => (memfd_with(&text)?, true),
    };
    if !cloexec {
        // SAFETY: our new descriptor; clears close-on-exec.
        unsafe { real::fcntl()(fd, libc::F_SETFD, 0) };
    }
    if flags & libc::O_NONBLOCK != 0 {
        // SAFETY: as above.
        unsafe { real::fcntl()(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    }
    if let Some(id) = ident(fd) {
        // Not kept in a handler that interrupted this thread at the table
        // (the open then reads as the real file it is).
        let Some(mut opens) = OPENS.lock() else {
            return Ok(fd);
        };
        opens.get_or_insert_with(HashMap::new).insert(
            id,
            ProcOpen {
                path: path.to_owned(),
                flags,
                pos: 0,
                memfd,
            },
        );
        ANY.store(true, Ordering::Relaxed);
        client::hint(fd);
        if !memfd {
            static AT_EXIT: std::sync::Once = std::sync::Once::new();
            // SAFETY: registers a handler that flushes stdio and makes
            // emulated calls, as the program itself could at exit.
            AT_EXIT.call_once(|| unsafe {
                libc::atexit(sync_at_exit);
            });
        }
    }
    Ok(fd)
}

/// Have any of these files been opened in this process? (One atomic
/// load: what stdio's interposers check before anything else.)
pub(crate) fn any() -> bool {
    ANY.load(Ordering::Relaxed)
}

/// `fflush`/`fclose` of a stream on `fd`: the bytes stdio wrote into a
/// writable open's pipe are taken now, as this process's write, and the
/// handler's result is returned (None when `fd` is not such an open).
pub(crate) fn sync(fd: c_int) -> Option<Result<()>> {
    let (id, o) = lookup(fd)?;
    if o.memfd {
        return None;
    }
    Some(with(false, |k| k.proc_sync(id.1)))
}

/// The table of opens' lock, for the fork handlers.
pub(crate) fn table_lock() -> &'static dyn ForkLock {
    &OPENS
}

/// Is `fd` a writable (pipe-backed) open of these files?
pub(crate) fn is_piped(fd: c_int) -> bool {
    lookup(fd).is_some_and(|(_, o)| !o.memfd)
}

/// [`sync`] of every writable open this process made (`fflush(NULL)`,
/// exit); the first error.
pub(crate) fn sync_all() -> Result<()> {
    if !any() {
        return Ok(());
    }
    let inos: Vec<u64> = OPENS
        .lock()
        .and_then(|g| {
            g.as_ref().map(|m| {
                m.iter()
                    .filter(|(_, o)| !o.memfd)
                    .map(|(id, _)| id.1)
                    .collect()
            })
        })
        .unwrap_or_default();
    let mut first = Ok(());
    for ino in inos {
        if let Err(e) = with(false, |k| k.proc_sync(ino)) {
            first = first.and(Err(e));
        }
    }
    first
}

/// At exit (before glibc's own final flush): stdio's buffers written out
/// and taken, so the value is in force before the process is gone.
extern "C" fn sync_at_exit() {
    // SAFETY: fflush(NULL) flushes every stream; the real one, so this
    // does not come back through the interposer.
    unsafe { real::fflush()(std::ptr::null_mut()) };
    let _ = sync_all();
}

/// A read-only descriptor of a memfd holding `text`.
fn memfd_with(text: &[u8]) -> Result<c_int> {
    let mfd = rustix::fs::memfd_create("watchq-proc", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| Errno::from_raw(e.raw_os_error()).unwrap_or(Errno::ENOMEM))?;
    rustix::io::write(&mfd, text).map_err(|_| Errno::ENOMEM)?;
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd;
        mfd.as_raw_fd()
    }))
    .expect("no NUL");
    // SAFETY: a NUL-terminated path: a new read-only open of the memfd.
    let fd = unsafe {
        real::openat()(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(crate::entry::last_errno());
    }
    Ok(fd)
}

/// The open `fd` is, if it is one of these files.
fn lookup(fd: c_int) -> Option<((u64, u64), ProcOpen)> {
    if !ANY.load(Ordering::Relaxed) || !client::may_be_ours(fd) {
        return None;
    }
    let id = ident(fd)?;
    OPENS
        .lock()?
        .as_ref()
        .and_then(|m| m.get(&id).cloned())
        .map(|o| (id, o))
}

fn is_sysctl(o: &ProcOpen) -> bool {
    ProcNode::lookup(&o.path).is_some_and(ProcNode::is_sysctl)
}

/// `read()`, `pread()` (`at`) of `fd` when it is one of these files and
/// reading it takes the kernel (a sysctl, or a pipe-backed open); None
/// otherwise (the real descriptor answers).
pub(crate) fn read(fd: c_int, buf: usize, count: usize, at: Option<u64>) -> Option<Result<usize>> {
    let (id, o) = lookup(fd)?;
    if o.memfd && !is_sysctl(&o) {
        return None;
    }
    Some((|| {
        if o.flags & libc::O_ACCMODE == libc::O_WRONLY {
            return Err(Errno::EBADF);
        }
        let pos = match (at, o.memfd) {
            (Some(p), _) => p,
            // SAFETY: lseek on our memfd.
            (None, true) => unsafe { real::lseek()(fd, 0, libc::SEEK_CUR) }.max(0) as u64,
            (None, false) => o.pos,
        };
        let count32 = u32::try_from(count).unwrap_or(u32::MAX);
        let data = with(false, |k| k.proc_read(&o.path, pos, count32))?;
        copy_out(buf, &data)?;
        if at.is_none() && !data.is_empty() {
            advance(fd, id, &o, pos + data.len() as u64);
        }
        Ok(data.len())
    })())
}

fn advance(fd: c_int, id: (u64, u64), o: &ProcOpen, to: u64) {
    if o.memfd {
        // SAFETY: lseek on our memfd.
        unsafe { real::lseek()(fd, to as libc::off_t, libc::SEEK_SET) };
    } else if let Some(mut opens) = OPENS.lock() {
        if let Some(e) = opens.as_mut().and_then(|m| m.get_mut(&id)) {
            e.pos = to;
        }
    }
}

/// `write()`, `pwrite()` (`at`) of `data` to `fd` when it is one of these
/// files; None otherwise.
pub(crate) fn write(fd: c_int, data: &[u8], at: Option<u64>) -> Option<Result<usize>> {
    let (id, o) = lookup(fd)?;
    Some((|| {
        if o.flags & libc::O_ACCMODE == libc::O_RDONLY {
            return Err(Errno::EBADF);
        }
        let pos = at.unwrap_or(o.pos);
        let n = with(false, |k| k.proc_write(&o.path, pos, data))?;
        if at.is_none() {
            advance(fd, id, &o, pos + n as u64);
        }
        Ok(n)
    })())
}

/// Is `fd` one of these files?
pub(crate) fn is_proc(fd: c_int) -> bool {
    lookup(fd).is_some()
}

/// `lseek()` of a pipe-backed open of these files: the position the
/// library keeps (`default_llseek()`, the file's size 0). None for other
/// descriptors (the real `lseek` answers, a memfd's own offset included).
pub(crate) fn lseek(fd: c_int, off: i64, whence: c_int) -> Option<Result<i64>> {
    let (id, o) = lookup(fd)?;
    if o.memfd {
        return None;
    }
    let to = match whence {
        libc::SEEK_SET | libc::SEEK_END => off,
        libc::SEEK_CUR => (o.pos as i64).checked_add(off).unwrap_or(-1),
        _ => return Some(Err(Errno::EINVAL)),
    };
    if to < 0 {
        return Some(Err(Errno::EINVAL));
    }
    advance(fd, id, &o, to as u64);
    Some(Ok(to))
}

//! The thin client: this process on a shared kernel (`WATCHQ_KERNEL`).
//!
//! When `WATCHQ_KERNEL` names a kernel's socket (`watchq exec --shared`,
//! `--join`, `watchq kernel`), the library keeps no kernel of its own:
//! every emulated call goes to that kernel over a connection of this
//! process's ([`watchq_kernel::remote::Remote`]; more than one when calls
//! overlap, see [`CONNS`]), and the descriptors of
//! emulated pipe ends are real pipe ends the kernel made, so fork, exec,
//! dup, `SCM_RIGHTS` and close are the real kernel's and need no
//! bookkeeping here.
//!
//! **Which descriptors are watchq's.** A lock-free bitmap ([`may_be_ours`])
//! holds the fd numbers that may be emulated: set for the ends a reply
//! brings, for the results of the dup family on such a number, for
//! descriptors received with `SCM_RIGHTS` (`recvmsg`) or reopened through
//! `/proc/self/fd`, and at load for every FIFO inherited across exec. A
//! call on any other number takes no lock and allocates nothing (one
//! atomic load), so a signal handler writing to its self-pipe can never
//! deadlock here. A hit is verified: `fstat` (a FIFO), then the
//! `(st_dev, st_ino)` cache, asking the kernel on a miss; a number found
//! not to be an emulated end loses its hint, so an inherited ordinary pipe
//! (asked about at load) or a reused number is on the fast path after. A number that
//! became a watchq end by a path this library does not see (a raw
//! `dup2` syscall, `recvmmsg`, a number at or above 65536) is a miss: its
//! calls go to the real kernel, which reads the pipe's readiness bytes
//! instead of records; the kernel's own state stays right.
//!
//! **Fork and vfork.** The connection belongs to the process that made
//! it: a call from another pid (a forked child) connects anew, leaving the
//! inherited socket alone (a vfork child shares this memory, so closing
//! "its" socket could close an unrelated descriptor of the parent's); the
//! inherited copy is close-on-exec. The locks are new in a forked child
//! (`pthread_atfork`), in case another thread held one at the fork.
//!
//! **A program that closes every descriptor** (`close_range`, a daemon's
//! loop) or puts a file at the connection's number closes or hides the
//! connection; each call checks the socket is still the one it connected
//! (`fstat`) and otherwise connects anew, leaving the number to the
//! program.
//!
//! **A kernel that died.** Every call then fails with EIO, and the first
//! failure says so on stderr; a sleeper is woken at once, since the
//! kernel's end of each real pipe is closed with it.

use crate::real;
use crate::short::{self, ForkLock, ShortLock};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::OnceLock;
use watchq_core::{Errno, Result};
use watchq_kernel::remote::{CallError, Remote};

/// fd numbers the bitmap covers.
const HINT_FDS: usize = 65536;

/// One bit per fd number that may be an emulated end.
static HINT: [AtomicU64; HINT_FDS / 64] = [const { AtomicU64::new(0) }; HINT_FDS / 64];

/// The kernel's socket, when this process runs on a shared kernel.
static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();

struct State {
    pid: u32,
    remote: Option<Remote>,
}

type Known = Option<HashMap<(u64, u64), bool>>;

/// The most connections one process keeps to the kernel.
///
/// A call takes a connection no other call is using, connecting one more
/// (lazily, up to this many) when every one it has is busy: so a call that
/// sleeps in the kernel (a key call waiting for a key under construction,
/// which may wait until a helper instantiates it) never holds up the
/// process's other threads, and a signal handler that makes an emulated
/// call while its own thread is inside one takes another connection
/// instead of waiting for itself (`preload.rs`
/// `preload_threads_and_handlers_call_while_a_call_sleeps`). Every
/// connection introduces the same process (the kernel attaches each by
/// its pid), so they share its descriptors and keyrings; the server keeps
/// per connection only what lives within one call (the thread a key call
/// comes from, the last read for an unread, the mirrors it has mapped),
/// and each such sequence runs on one connection (see
/// [`with`]). Past this many calls at once, a call waits for one to end.
const CONNS: usize = 8;

/// The connections, each behind its lock; slot 0 is the one a program
/// with one thread uses for ever.
type Slots = [Mutex<State>; CONNS];

static SLOTS_0: Slots = [const {
    parking_lot::const_mutex(State {
        pid: 0,
        remote: None,
    })
}; CONNS];

/// `(st_dev, st_ino)` → is it an emulated end.
static KNOWN: ShortLock<Known> = ShortLock::new(&KNOWN_0, short::KNOWN);
static KNOWN_0: Mutex<Known> = parking_lot::const_mutex(None);

/// The connections' locks in use: the statics above until a fork, then a
/// forked child's own (its connections are its own: it starts with none). A child cannot go on with its parent's: another thread of
/// the parent may have held one at the fork, and unlocking it in the child
/// is not enough, since parking_lot's unlock may hand the lock straight to
/// a thread parked on it (a thread the child does not have: the lock stays
/// held for ever; `preload.rs` `preload_fork_while_threads_hold_emulation_locks`
/// hung so), or take its parking table's bucket lock, which a parent
/// thread may have held too. So the child starts on new, never-contended
/// locks (one small allocation per fork; the parent's copies are never
/// touched again).
static SLOTS: AtomicPtr<Slots> = AtomicPtr::new(&SLOTS_0 as *const _ as *mut _);

std::thread_local! {
    /// The slots this thread holds (bit per slot): a signal handler that
    /// interrupted the thread inside a call must not wait for the
    /// thread's own connection. Const-initialised, no destructor: a plain
    /// TLS word, safe to touch in a handler.
    static HELD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The connections' locks.
fn slots() -> &'static Slots {
    // SAFETY: the pointer is SLOTS_0's or a leaked Box's: valid for ever.
    // ORDERING: Relaxed. The only store is the forked child's, made while
    // it is the child's one thread: every later load is that thread's
    // (program order) or a thread it created afterwards (creating a
    // thread orders everything before it), so no load can see the new
    // pointer without the Box's initialisation.
    unsafe { &*SLOTS.load(Ordering::Relaxed) }
}

/// A connection slot taken by this thread; given back on drop.
struct Taken {
    slot: usize,
    guard: parking_lot::MutexGuard<'static, State>,
}

impl Taken {
    fn new(slot: usize, guard: parking_lot::MutexGuard<'static, State>) -> Taken {
        HELD.with(|h| h.set(h.get() | 1 << slot));
        Taken { slot, guard }
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        // Cleared while the lock is still held (the guard drops after):
        // a handler running between the two finds the slot busy and the
        // bit clear, and takes another.
        HELD.with(|h| h.set(h.get() & !(1 << self.slot)));
    }
}

/// Takes a free connection slot: the first one free, else (every slot
/// busy) waits for one for at most `patience` (for ever when None),
/// never for a slot this thread holds itself. None: none came free in
/// time, or this thread holds every slot (handlers nested that deep).
fn take(patience: Option<std::time::Duration>) -> Option<Taken> {
    let slots = slots();
    let held = HELD.with(std::cell::Cell::get);
    let free = |i: &usize| held & (1 << i) == 0;
    for i in (0..CONNS).filter(free) {
        if let Some(g) = slots[i].try_lock() {
            return Some(Taken::new(i, g));
        }
    }
    // Every slot is busy: more than CONNS calls at once. Wait a moment on
    // each in turn (the first to end may be any of them).
    let start = std::time::Instant::now();
    let step = std::time::Duration::from_millis(2);
    loop {
        let mut any = false;
        for i in (0..CONNS).filter(free) {
            any = true;
            if let Some(g) = slots[i].try_lock_for(step) {
                return Some(Taken::new(i, g));
            }
            if patience.is_some_and(|p| start.elapsed() >= p) {
                return None;
            }
        }
        if !any {
            return None;
        }
    }
}

static REPORTED: AtomicBool = AtomicBool::new(false);

/// Does this process run on a shared kernel?
pub(crate) fn active() -> bool {
    PATH.get().is_some_and(Option::is_some)
}

/// Reads `WATCHQ_KERNEL` (at load). True when set.
pub(crate) fn init() -> bool {
    let path = std::env::var_os("WATCHQ_KERNEL")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let on = path.is_some();
    if !on {
        // Left unset: a process that hosts the kernel calls this again once
        // its server listens, and must then become its client (a `None`
        // set here would keep its own calls on the real kernel for good).
        return false;
    }
    if PATH.set(path).is_err() {
        return true;
    }
    if on {
        static KEY_SIGNALS: crate::signals::KeySignals = crate::signals::KeySignals;
        watchq_kernel::remote::set_key_signals(&KEY_SIGNALS);
        crate::user::note_pid();
        /// The short locks (`short`), taken across a fork.
        fn short_locks() -> [&'static dyn ForkLock; 3] {
            [
                &KNOWN,
                crate::shared::mirrors_lock(),
                crate::procfs::table_lock(),
            ]
        }
        extern "C" fn prepare() {
            for l in short_locks() {
                l.before_fork();
            }
        }
        extern "C" fn parent() {
            for l in short_locks() {
                l.after_fork_parent();
            }
        }
        extern "C" fn child() {
            crate::user::note_pid();
            for l in short_locks() {
                l.after_fork_child();
            }
            // Only this thread exists in a forked child: fresh locks (see
            // `STATE`), the parent's connection forgotten by its pid.
            let st: &'static mut Slots = Box::leak(Box::new(std::array::from_fn(|_| {
                Mutex::new(State {
                    pid: 0,
                    remote: None,
                })
            })));
            // The forking thread's slots are the parent's, not the child's.
            HELD.with(|h| h.set(0));
            // ORDERING: Relaxed: see `slots` (the child's only thread
            // stores; the threads that load come after it).
            SLOTS.store(st, Ordering::Relaxed);
        }
        // SAFETY: registers handlers that only touch our statics.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        extern "C" {
            fn watchq_exec_env_init();
        }
        // SAFETY: reads the environment and this library's path once.
        unsafe { watchq_exec_env_init() };
        crate::shared::report_at_exit();
        // Introduce this new image now (its thread and process keyrings go).
        let _ = with(true, |_| Ok(()));
        // Inherited FIFOs: ask the kernel now which are its, so an ordinary
        // inherited pipe (a shell's `|`) takes the fast path from the start.
        for fd in scan_inherited() {
            emulated(fd);
        }
    }
    on
}

/// Marks every FIFO this image inherited (across exec) as maybe ours;
/// returns them.
fn scan_inherited() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|&fd| is_fifo(fd))
        .collect();
    for &fd in &fds {
        hint(fd);
    }
    fds
}

/// Set once any descriptor was hinted: until then no set can hold an
/// emulated end, and poll()/select() go straight to the real kernel.
static ANY_HINTED: AtomicBool = AtomicBool::new(false);

/// Was any descriptor ever hinted in this process?
pub(crate) fn any_hinted() -> bool {
    // Relaxed: a hint, as the bitmap's.
    ANY_HINTED.load(Ordering::Relaxed)
}

/// Remembers that `fd` may be an emulated end.
pub(crate) fn hint(fd: i32) {
    // Relaxed: as `HINT`.
    ANY_HINTED.store(true, Ordering::Relaxed);
    if let Ok(i) = usize::try_from(fd) {
        if i < HINT_FDS {
            // Relaxed: a hint, verified by fstat before use.
            HINT[i / 64].fetch_or(1 << (i % 64), Ordering::Relaxed);
        }
    }
}

/// Forgets the hint for `fd` (it is known not to be an emulated end now).
fn unhint(fd: i32) {
    if let Ok(i) = usize::try_from(fd) {
        if i < HINT_FDS {
            // Relaxed: as `hint`.
            HINT[i / 64].fetch_and(!(1 << (i % 64)), Ordering::Relaxed);
        }
    }
}

/// May `fd` be an emulated end? One atomic load; no lock, no allocation.
pub(crate) fn may_be_ours(fd: i32) -> bool {
    match usize::try_from(fd) {
        // Relaxed: as `hint`.
        Ok(i) if i < HINT_FDS => HINT[i / 64].load(Ordering::Relaxed) & (1 << (i % 64)) != 0,
        _ => false,
    }
}

fn ident(fd: i32) -> Option<(u64, u64)> {
    if fd < 0 {
        return None;
    }
    // SAFETY: fstat only reads the descriptor number.
    let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
    let st = rustix::fs::fstat(bfd).ok()?;
    (rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo)
        .then_some((st.st_dev, st.st_ino))
}

fn is_fifo(fd: i32) -> bool {
    ident(fd).is_some()
}

/// Is `fd` an emulated end (on a shared kernel)? The fast path for
/// descriptors never hinted is one atomic load.
pub(crate) fn emulated(fd: i32) -> bool {
    emulated_ident(fd).is_some()
}

/// As [`emulated`], with the end's `(st_dev, st_ino)` when it is one (the
/// key of its mirror).
pub(crate) fn emulated_ident(fd: i32) -> Option<(u64, u64)> {
    if !active() || !may_be_ours(fd) {
        return None;
    }
    let Some(id) = ident(fd) else {
        // Not a FIFO (any more): the number's next calls take the fast path.
        unhint(fd);
        return None;
    };
    // No cache in a handler that interrupted this thread at it: ask.
    let cached = KNOWN
        .lock()
        .and_then(|k| k.as_ref().and_then(|m| m.get(&id).copied()));
    if let Some(known) = cached {
        if !known {
            unhint(fd);
        }
        return known.then_some(id);
    }
    // SAFETY: a descriptor open in this process (fstat just succeeded).
    let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
    let ours = match with(false, |r| r.poll(bfd, 0)) {
        Ok(_) => true,
        Err(Errno::EBADF) => false,
        // No kernel: the call will fail there with the message.
        Err(_) => return Some(id),
    };
    remember(id, ours);
    if !ours {
        unhint(fd);
    }
    ours.then_some(id)
}

/// Records what the kernel said of the pipe behind `fd`.
pub(crate) fn remember_fd(fd: i32, ours: bool) {
    if let Some(id) = ident(fd) {
        remember(id, ours);
    }
}

fn remember(id: (u64, u64), ours: bool) {
    if let Some(mut k) = KNOWN.lock() {
        k.get_or_insert_with(HashMap::new).insert(id, ours);
    }
}

fn getpid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Runs `f` on one of this process's connections (connecting first if
/// the slot taken has none, or one another process made). Whatever must
/// follow on the same connection (an unread after its read) goes in the
/// same `f`.
///
/// # Errors
/// The call's errno; EIO when the kernel is gone (said once on stderr).
pub(crate) fn with<R>(
    exec: bool,
    f: impl FnOnce(&Remote) -> std::result::Result<R, CallError>,
) -> Result<R> {
    let Some(Some(path)) = PATH.get() else {
        return Err(Errno::ENOSYS);
    };
    // None only when this thread holds every slot itself (handlers nested
    // CONNS deep): the kernel is then out of this thread's reach.
    let Some(t) = take(None) else {
        return Err(Errno::EAGAIN);
    };
    with_locked(path, t, exec, f)
}

/// As [`with`], but gives up (EAGAIN) rather than wait more than a moment
/// for the connection: for calls made where the program did not ask for
/// an emulated call (a fork), which may come from a signal handler that
/// interrupted this very thread inside one.
pub(crate) fn try_with<R>(
    f: impl FnOnce(&Remote) -> std::result::Result<R, CallError>,
) -> Result<R> {
    let Some(Some(path)) = PATH.get() else {
        return Err(Errno::ENOSYS);
    };
    let Some(t) = take(Some(std::time::Duration::from_millis(100))) else {
        return Err(Errno::EAGAIN);
    };
    with_locked(path, t, false, f)
}

/// Introduces this process to the kernel on a connection of its own that
/// is closed again at once, touching no state of this library: for a
/// vfork child about to exec, which shares its parent's memory (so the
/// parent's connection, and the record of it, must be left as they are).
/// Its parent is alive, stopped until the exec, so the kernel enters the
/// child as its fork now, and the new program finds itself known even if
/// the parent exits before the program's first call.
pub(crate) fn introduce_vfork_child() {
    if let Some(Some(path)) = PATH.get() {
        // A kernel that is gone is said by the new program's first call.
        drop(Remote::connect(path, false));
    }
}

/// Is this a vfork child (or a raw `clone()`'s), sharing its parent's
/// memory? No fork handler ran in it, so the pid noted is its parent's;
/// the process that loaded the library and a `fork()` child noted their
/// own.
pub(crate) fn is_vfork_child() -> bool {
    active() && crate::user::noted_pid() != getpid() as i32
}

fn with_locked<R>(
    path: &std::path::Path,
    mut t: Taken,
    exec: bool,
    f: impl FnOnce(&Remote) -> std::result::Result<R, CallError>,
) -> Result<R> {
    let st = &mut *t.guard;
    let pid = getpid();
    if st.pid != pid {
        // Another process's connection (fork, vfork): leave it be.
        if let Some(old) = st.remote.take() {
            std::mem::forget(old);
        }
        st.pid = pid;
    }
    // The program may have closed our socket, or put a file of its own at
    // its number: then the descriptor is not ours to close.
    if st.remote.as_ref().is_some_and(|r| !r.is_intact()) {
        std::mem::forget(st.remote.take());
    }
    if st.remote.is_none() {
        match Remote::connect(path, exec) {
            Ok(r) => st.remote = Some(r),
            Err(g) => return Err(gone(path, &g.to_string())),
        }
    }
    let r = st.remote.as_ref().expect("connected above");
    match f(r) {
        Ok(v) => Ok(v),
        Err(CallError::Errno(e)) => Err(e),
        Err(CallError::Gone(g)) => {
            if let Some(r) = st.remote.take() {
                if r.is_intact() {
                    drop(r);
                } else {
                    std::mem::forget(r);
                }
            }
            Err(gone(path, &g.to_string()))
        }
    }
}

/// The kernel is unreachable: say it once, fail with EIO.
fn gone(path: &std::path::Path, why: &str) -> Errno {
    if !REPORTED.swap(true, Ordering::Relaxed) {
        let msg = format!(
            "watchq: the emulated kernel at {} is gone ({why}); its calls fail with EIO\n",
            path.display()
        );
        // SAFETY: a valid buffer; the real write, never the interposer.
        unsafe { real::write()(2, msg.as_ptr().cast(), msg.len()) };
    }
    Errno::EIO
}

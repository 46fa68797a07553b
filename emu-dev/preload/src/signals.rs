//! Signals that arrive while an emulated call is working, before it
//! sleeps.
//!
//! A real blocking call cannot lose a signal: the kernel checks for one
//! after it has queued the caller to sleep, so a signal that comes while
//! `poll()` or `pipe_read()` is still looking at the descriptors makes the
//! call return EINTR (or restart, for a read, after a handler with
//! `SA_RESTART`). An emulated call looks in user space (a round trip to
//! the kernel process, a look at the shared-memory mirror) and only then
//! sleeps in a real system call; a handler that ran during the look would
//! set its flag (keyutils' `watch_session` consumer sets `consumer_stop`
//! on SIGTERM) and the call would then sleep for ever. So a call that may
//! sleep holds the asynchronous signals blocked while it looks
//! ([`Deferred`]), and either sleeps with the caller's mask put back
//! atomically (`ppoll`'s mask argument: a signal that came meanwhile is
//! pending, so the sleep ends at once with EINTR), or, where the sleep has
//! no mask argument, asks which signals came ([`Deferred::settle`]) before
//! it unblocks them.
//!
//! A key call holds them from its entry to its return ([`KeyHold`]),
//! and only when the kernel's process says the call waits for a key
//! under construction are they settled and the sleep made
//! ([`KeySignals`]). A sleeper counts only the signals it claimed
//! (dequeued and queued again for itself, `claim`): a process-wide one
//! that another thread took meanwhile ran no handler here and ends
//! nothing.
//!
//! The synchronous signals (a fault in the library itself) are never
//! blocked: a blocked SIGSEGV raised by a fault kills the process without
//! its handler, which would hide the program's own handler from it.

use std::mem::MaybeUninit;

/// Signals a fault raises in the faulting thread: never blocked.
const SYNCHRONOUS: [libc::c_int; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// The calling thread's asynchronous signals, blocked until drop, which
/// puts the thread's mask back as it was.
pub(crate) struct Deferred {
    old: libc::sigset_t,
    /// False for a call that never sleeps ([`Deferred::unless`]): nothing
    /// was blocked, nothing to settle or restore.
    held: bool,
    /// False for a view of another's hold ([`Deferred::view`]): the mask
    /// is its owner's to put back.
    owns: bool,
}

/// What came while a [`Deferred`] held the signals back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Came {
    /// Nothing the caller's mask lets through.
    Nothing,
    /// Only signals that run no handler (ignored, by default ignored, a
    /// stop): a read looks again, a key call's wait goes on.
    Unhandled,
    /// Handlers ran, each with `SA_RESTART` (and perhaps signals that
    /// run none): a read goes on.
    Restart,
    /// A handler without `SA_RESTART`: EINTR.
    Interrupt,
    /// The thread was stopped and continued (a stop signal, a tracer's
    /// stop) while it slept: only from a sleep that asked to hear of it
    /// ([`Deferred::sleep_until_stopped`]).
    Stopped,
}

impl Deferred {
    /// Blocks every asynchronous signal in the calling thread.
    pub(crate) fn new() -> Deferred {
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset and sigdelset initialise and edit a sigset_t
        // we own; pthread_sigmask reads `all` and writes `old`.
        unsafe {
            libc::sigfillset(all.as_mut_ptr());
            for s in SYNCHRONOUS {
                libc::sigdelset(all.as_mut_ptr(), s);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), old.as_mut_ptr()) != 0 {
                // Cannot fail with valid arguments; an empty old mask
                // would only unblock on drop what was blocked before.
                libc::sigemptyset(old.as_mut_ptr());
                libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), old.as_mut_ptr());
            }
            Deferred {
                old: old.assume_init(),
                held: true,
                owns: true,
            }
        }
    }

    /// As [`Deferred::new`], but holds nothing when `never_sleeps` (a
    /// poll with a zero timeout: a signal that comes during it is handled
    /// after it returns, as after the kernel's, and the two system calls
    /// stay off that path).
    pub(crate) fn unless(never_sleeps: bool) -> Deferred {
        if !never_sleeps {
            return Deferred::new();
        }
        let mut none = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises a set we own.
        unsafe { libc::sigemptyset(none.as_mut_ptr()) };
        Deferred {
            // SAFETY: initialised just above.
            old: unsafe { none.assume_init() },
            held: false,
            owns: false,
        }
    }

    /// A view of a hold made further up this thread's call (`old`: the
    /// caller's mask it saved): it settles and sleeps as the owner
    /// would, and puts nothing back when it drops.
    fn view(old: libc::sigset_t) -> Deferred {
        Deferred {
            old,
            held: true,
            owns: false,
        }
    }

    /// The mask the caller had: the one to sleep with.
    pub(crate) fn caller_mask(&self) -> *const libc::sigset_t {
        &self.old
    }

    /// Which signals came while blocked that the caller's mask lets
    /// through; when any did, they are let in now (their handlers run)
    /// and blocked again after.
    pub(crate) fn settle(&self) -> Came {
        if !self.held {
            return Came::Nothing;
        }
        let mut pending = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigpending writes the set we own.
        if unsafe { libc::sigpending(pending.as_mut_ptr()) } != 0 {
            return Came::Nothing;
        }
        // SAFETY: initialised by sigpending.
        let pending = unsafe { pending.assume_init() };
        let mut came = Came::Nothing;
        for s in 1..=libc::SIGRTMAX() {
            // SAFETY: sigismember reads valid sets.
            let through = unsafe {
                libc::sigismember(&pending, s) == 1 && libc::sigismember(&self.old, s) != 1
            };
            // A process-wide signal another thread takes before this one
            // claims it is no wake here: it never runs a handler in this
            // thread, so it must not end this thread's call.
            if !through || !claim(s) {
                continue;
            }
            // The strongest: Interrupt, then Restart, then Unhandled.
            let verdict = restarts(s);
            let rank = |c: &Came| match c {
                Came::Nothing => 0,
                Came::Unhandled => 1,
                // Never a pending signal's verdict; ranked as the wake it
                // stands for.
                Came::Restart | Came::Stopped => 2,
                Came::Interrupt => 3,
            };
            if rank(&verdict) > rank(&came) {
                came = verdict;
            }
        }
        if came != Came::Nothing {
            // Let them in: their handlers run as the mask opens.
            drop(self.open());
        }
        came
    }
}

impl Deferred {
    /// Sleeps until `fd` is readable (or hung up), or until a signal the
    /// caller's mask lets through is pending, with the signals held back
    /// all the while: a signal can never run its handler between a look
    /// and the sleep, however late in the look it comes. The sleep wakes
    /// on a signal through a signalfd of those signals (readable while
    /// one is pending, for the thread or the process), and then settles
    /// it ([`Deferred::settle`]): `Ok(Came::Interrupt)` for a handler
    /// without `SA_RESTART`, `Ok(Came::Restart)` when only restarting
    /// ones ran, `Ok(Came::Unhandled)` when only signals that run no
    /// handler came (the caller looks again), `Ok(Came::Nothing)` when `fd`
    /// became readable. A signal another thread took before this one
    /// could is no wake at all: the sleep goes on. `Err(errno)` when the
    /// poll fails; None when nothing is held or no signalfd can be made
    /// (EMFILE), when the caller sleeps as it can ([`Deferred::open`]).
    pub(crate) fn sleep_readable(&self, fd: libc::c_int) -> Option<Result<Came, libc::c_int>> {
        self.sleep_until(fd, libc::POLLIN)
    }

    /// As [`Deferred::sleep_readable`], until `fd` has one of `events`
    /// (or an error or hang-up): `POLLOUT` for room in a pipe. A stop
    /// and continue is no wake: the sleep goes on, as `pipe_read()`'s
    /// and `pipe_write()`'s waits are restarted after one.
    pub(crate) fn sleep_until(
        &self,
        fd: libc::c_int,
        events: libc::c_short,
    ) -> Option<Result<Came, libc::c_int>> {
        self.sleep(fd, events, false)
    }

    /// As [`Deferred::sleep_readable`], and `Ok(Came::Stopped)` when the
    /// thread was stopped and continued meanwhile: a key call's wait for
    /// a key under construction, which a stop wakes as any signal does
    /// (`KEYCTL_READ` then fails). No handler runs for a stop, so the
    /// signalfd never hears of it; the sleep is an epoll_wait(2), which
    /// Linux ends with EINTR after a stop (signal(7): "Interruption of
    /// system calls ... by stop signals"), where ppoll(2) would be
    /// restarted unseen. A lone SIGCONT (the process was not stopped) is
    /// held, so it only reads in the signalfd and settles as a signal
    /// that runs no handler: the sleep goes on.
    pub(crate) fn sleep_until_stopped(&self, fd: libc::c_int) -> Option<Result<Came, libc::c_int>> {
        self.sleep(fd, libc::POLLIN, true)
    }

    fn sleep(
        &self,
        fd: libc::c_int,
        events: libc::c_short,
        stops: bool,
    ) -> Option<Result<Came, libc::c_int>> {
        if !self.held {
            return None;
        }
        let mut wake = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises a set we own, sigaddset edits
        // it, sigismember reads the caller's mask.
        let wake = unsafe {
            libc::sigemptyset(wake.as_mut_ptr());
            for s in 1..=libc::SIGRTMAX() {
                if !SYNCHRONOUS.contains(&s) && libc::sigismember(&self.old, s) != 1 {
                    // glibc's own signals (SIGCANCEL, SIGSETXID) are refused:
                    // they are never blocked, so they need no wake.
                    libc::sigaddset(wake.as_mut_ptr(), s);
                }
            }
            wake.assume_init()
        };
        // SAFETY: the raw signalfd4 system call, reading the kernel's
        // 8-byte mask at the front of `wake`; SIGKILL and SIGSTOP are
        // left out by the kernel (one ends the process, the other stops
        // it and the poll goes on after SIGCONT).
        let sfd = unsafe {
            libc::syscall(
                libc::SYS_signalfd4,
                -1,
                &wake as *const libc::sigset_t,
                8usize,
                libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
            )
        };
        if sfd < 0 {
            return None;
        }
        let sfd = sfd as libc::c_int;
        // SAFETY: the raw epoll_create1 system call.
        let ep = unsafe { libc::syscall(libc::SYS_epoll_create1, libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            // SAFETY: our own signalfd, closed once.
            unsafe { libc::syscall(libc::SYS_close, sfd) };
            return None;
        }
        let ep = ep as libc::c_int;
        // The poll bits asked for are epoll's of the same values (POLLIN
        // is EPOLLIN, POLLOUT EPOLLOUT); errors and hang-ups always wake.
        let watched = [(fd, events as u32, 0u64), (sfd, libc::EPOLLIN as u32, 1u64)];
        for (f, ev, tag) in watched {
            let mut e = libc::epoll_event {
                events: ev,
                u64: tag,
            };
            // SAFETY: the raw epoll_ctl system call on our epoll
            // descriptor with one valid event.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_epoll_ctl,
                    ep,
                    libc::EPOLL_CTL_ADD,
                    f,
                    &mut e as *mut libc::epoll_event,
                )
            };
            if r < 0 {
                let e = std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO);
                // SAFETY: our own descriptors, closed once.
                unsafe {
                    libc::syscall(libc::SYS_close, ep);
                    libc::syscall(libc::SYS_close, sfd);
                }
                return Some(Err(e));
            }
        }
        let came = loop {
            let mut got = [libc::epoll_event { events: 0, u64: 0 }; 2];
            // SAFETY: the raw epoll_pwait system call (never an
            // interposer) into two events we own, no timeout, the mask
            // left as it is.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait,
                    ep,
                    got.as_mut_ptr(),
                    2usize,
                    -1,
                    std::ptr::null::<libc::sigset_t>(),
                    8usize,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                if e == libc::EINTR {
                    // Nothing of the caller's can have run (all held): a
                    // stop and continue, or a tracer's stop.
                    if stops {
                        break Ok(Came::Stopped);
                    }
                    continue;
                }
                break Err(e);
            }
            let got = &got[..n as usize];
            if got.iter().any(|e| e.u64 == 0) {
                break Ok(Came::Nothing);
            }
            match self.settle() {
                Came::Nothing => continue,
                c => break Ok(c),
            }
        };
        // SAFETY: our own epoll descriptor, closed once (the raw call:
        // the interposer never saw it).
        unsafe { libc::syscall(libc::SYS_close, ep) };
        // SAFETY: our own signalfd, closed once (the raw call: the
        // interposer never saw it).
        unsafe { libc::syscall(libc::SYS_close, sfd) };
        Some(came)
    }
}

impl Deferred {
    /// The caller's mask, in force until the guard drops (which blocks
    /// the asynchronous signals again): a sleep with no mask argument of
    /// its own sleeps under it.
    pub(crate) fn open(&self) -> Open {
        if !self.held {
            return Open { blocking: None };
        }
        let mut now = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sets the caller's mask, saving the blocking one.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, now.as_mut_ptr()) };
        Open {
            // SAFETY: written by pthread_sigmask (it cannot fail with
            // valid arguments).
            blocking: Some(unsafe { now.assume_init() }),
        }
    }
}

/// See [`Deferred::open`].
pub(crate) struct Open {
    blocking: Option<libc::sigset_t>,
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(b) = &self.blocking {
            // SAFETY: blocks again what `Deferred::new` blocked.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, b, std::ptr::null_mut()) };
        }
    }
}

/// Takes pending signal `s` (blocked here) for this thread alone: it is
/// dequeued from the thread's or the process's pending set
/// (`rt_sigtimedwait` with no wait) and queued again for this thread with
/// its siginfo (`rt_tgsigqueueinfo`, which a thread may send itself with
/// any code), so that no other thread can take it between the look at
/// the pending set and the mask's opening, where this thread would
/// otherwise end its call for a handler that ran in another. False when
/// another thread took it first.
fn claim(s: libc::c_int) -> bool {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: sigemptyset and sigaddset initialise a set we own; the raw
    // rt_sigtimedwait reads the kernel's 8-byte set at its front and
    // writes the siginfo we own; the raw rt_tgsigqueueinfo and tgkill
    // address this very thread and read that siginfo.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), s);
        let got = libc::syscall(
            libc::SYS_rt_sigtimedwait,
            set.as_ptr(),
            info.as_mut_ptr(),
            &zero as *const libc::timespec,
            8usize,
        );
        if got != libc::c_long::from(s) {
            return false;
        }
        let pid = libc::getpid();
        let tid = libc::syscall(libc::SYS_gettid);
        if libc::syscall(libc::SYS_rt_tgsigqueueinfo, pid, tid, s, info.as_ptr()) != 0 {
            // The signal itself still comes, without its siginfo.
            libc::syscall(libc::SYS_tgkill, pid, tid, s);
        }
    }
    true
}

/// What signal `s`'s disposition makes of an interrupted read.
fn restarts(s: libc::c_int) -> Came {
    let mut act = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: queries the disposition into a struct we own.
    if unsafe { libc::sigaction(s, std::ptr::null(), act.as_mut_ptr()) } != 0 {
        return Came::Unhandled;
    }
    // SAFETY: initialised by sigaction (or zeroed).
    let act = unsafe { act.assume_init() };
    if act.sa_sigaction == libc::SIG_IGN || act.sa_sigaction == libc::SIG_DFL {
        // Ignored, or the default action: nothing returns to the call
        // (a fatal default ends the process when it is let in).
        Came::Unhandled
    } else if act.sa_flags & libc::SA_RESTART != 0 {
        Came::Restart
    } else {
        Came::Interrupt
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if !self.held || !self.owns {
            return;
        }
        // SAFETY: restores the mask `new` saved.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

thread_local! {
    /// The mask saved by this thread's key call in progress ([`KeyHold`]).
    static KEY_HOLD: std::cell::Cell<Option<libc::sigset_t>> =
        const { std::cell::Cell::new(None) };
}

/// A key call's hold on the asynchronous signals, from its entry (before
/// it looks at anything or connects to the kernel) to its return: a
/// signal that comes before the call's wait for a key under construction
/// begins stays pending, and is settled when the server says the wait
/// began ([`watchq_kernel::remote::KeySignals`]), as the kernel's wait
/// ends at once on a pending signal. One for a call that does not wait
/// costs the two mask changes and nothing else: the handler runs as the
/// call returns, as after the kernel's.
pub(crate) struct KeyHold {
    /// Puts the caller's mask back as it drops.
    _held: Deferred,
    /// The hold of a key call this one runs inside (a handler's).
    outer: Option<libc::sigset_t>,
}

impl KeyHold {
    pub(crate) fn new() -> KeyHold {
        let held = Deferred::new();
        let outer = KEY_HOLD.with(|c| c.replace(Some(held.old)));
        KeyHold { _held: held, outer }
    }
}

impl Drop for KeyHold {
    fn drop(&mut self) {
        // `_held` puts the caller's mask back as it drops, after this.
        KEY_HOLD.with(|c| c.set(self.outer));
    }
}

/// The preload's [`watchq_kernel::remote::KeySignals`]: the calling
/// thread's [`KeyHold`].
pub(crate) struct KeySignals;

impl watchq_kernel::remote::KeySignals for KeySignals {
    fn held(&self) -> bool {
        KEY_HOLD.with(|c| c.get().is_some())
    }

    fn sleep(
        &self,
        sock: std::os::fd::BorrowedFd<'_>,
    ) -> std::io::Result<watchq_kernel::remote::KeyWake> {
        use std::os::fd::AsRawFd;
        use watchq_kernel::remote::KeyWake;
        let Some(old) = KEY_HOLD.with(|c| c.get()) else {
            return Ok(KeyWake::Reply);
        };
        let held = Deferred::view(old);
        let wake = |c: Came| match c {
            Came::Interrupt => Some(KeyWake::Interrupt),
            // A stop wakes the kernel's wait as a restarting handler
            // does: KEYCTL_READ fails, the other key calls wait again.
            Came::Restart | Came::Stopped => Some(KeyWake::Restart),
            Came::Nothing | Came::Unhandled => None,
        };
        // What came while the call looked and the server worked.
        if let Some(w) = wake(held.settle()) {
            return Ok(w);
        }
        loop {
            match held.sleep_until_stopped(sock.as_raw_fd()) {
                Some(Ok(Came::Nothing)) => return Ok(KeyWake::Reply),
                Some(Ok(c)) => match wake(c) {
                    Some(w) => return Ok(w),
                    None => continue,
                },
                Some(Err(e)) => return Err(std::io::Error::from_raw_os_error(e)),
                None => return sleep_open(&held, sock),
            }
        }
    }
}

/// The key sleep where no signalfd can be made (EMFILE): with the
/// caller's mask in force, in a recvmsg(2) that peeks (it waits as the
/// reply's own would, restarted after a handler with `SA_RESTART`, EINTR
/// after one without); a signal in the instructions between the settle
/// and the sleep's entry is left unaccounted.
fn sleep_open(
    held: &Deferred,
    sock: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<watchq_kernel::remote::KeyWake> {
    use std::os::fd::AsRawFd;
    use watchq_kernel::remote::KeyWake;
    let _open = held.open();
    let mut byte = 0u8;
    // SAFETY: the raw recvfrom system call (never an interposer) into one
    // byte we own; MSG_PEEK leaves the message queued.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            sock.as_raw_fd(),
            &mut byte as *mut u8,
            1usize,
            libc::MSG_PEEK,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    if n >= 0 {
        return Ok(KeyWake::Reply);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINTR) {
        Ok(KeyWake::Interrupt)
    } else {
        Err(e)
    }
}

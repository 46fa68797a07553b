//! The emulated kernel as this process sees it, behind one interface.
//!
//! Owns [`Host`]: the watchq [`Kernel`] and the [`Process`] standing for
//! the real program, the map from the program's real descriptor numbers to
//! emulated ones, the eventfds that make those numbers pollable, the log,
//! and the threads that play the kernel's key garbage collector and the
//! `WATCHQ_SCRIPT` world. The interposers in `entry` only ever talk to a
//! `Host`, so serving several processes from one daemon later means giving
//! `Host` a client to that daemon, not touching the interposers.
//!
//! Every emulated notification-pipe end is backed by a real eventfd whose
//! number is the one the program sees: `select`, `poll` and `epoll` accept
//! it and numbers never collide with the program's own files. The eventfd
//! of a read end is readable exactly while the emulated queue has records
//! (or has lost its last writer, so a sleeper wakes to read end of file);
//! [`Host::sync`] keeps that true after every emulated call.

use crate::real;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use watchq_core::uapi::{O_CLOEXEC, O_NONBLOCK, POLLHUP, POLLIN};
use watchq_core::{Errno, Result};
use watchq_kernel::keys::KeyConfig;
use watchq_kernel::prelude::*;
use watchq_kernel::script::{parse_script, Actor, Command};
use watchq_kernel::{Kernel, KernelConfig, PollFd, Process};

/// One real descriptor that stands for an emulated pipe end.
#[derive(Clone, Debug)]
pub(crate) struct Mapped {
    /// The emulated process's descriptor.
    pub(crate) emu: i32,
    /// Open for reading (its eventfd tracks readiness).
    pub(crate) read_end: bool,
    /// The eventfd's counter is non-zero; shared by descriptors that share
    /// the eventfd (dup), as they share one open file.
    signalled: Arc<AtomicBool>,
}

/// Settings read from the environment at load time.
#[derive(Debug)]
struct Settings {
    config: KernelConfig,
    policy: Option<String>,
    /// The `WATCHQ_LOG` file, open for appending.
    log_fd: Option<i32>,
    script: Vec<(String, Command)>,
}

impl Settings {
    fn from_env() -> std::result::Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut config = KernelConfig::default();
        if let Some(v) = var("WATCHQ_NOTIFICATIONS") {
            config.watch_queue = match v.as_str() {
                "1" | "on" | "yes" | "true" => true,
                "0" | "off" | "no" | "false" => false,
                _ => return Err(format!("WATCHQ_NOTIFICATIONS={v:?}: use on or off")),
            };
        }
        let mut keys = KeyConfig::default();
        if let Some(v) = var("WATCHQ_KEY_GC_DELAY") {
            keys.gc_delay = v
                .parse()
                .map_err(|_| format!("WATCHQ_KEY_GC_DELAY={v:?}: not a number of seconds"))?;
        }
        config.keys = keys;
        let script = match var("WATCHQ_SCRIPT") {
            None => Vec::new(),
            Some(path) => {
                let bytes =
                    std::fs::read(&path).map_err(|e| format!("WATCHQ_SCRIPT={path}: {e}"))?;
                watchq_core::text::from_utf8(&bytes)
                    .and_then(parse_script)
                    .map_err(|e| format!("WATCHQ_SCRIPT={path}: {e}"))?
            }
        };
        let policy = match var("WATCHQ_POLICY") {
            None => None,
            Some(path) => {
                let bytes =
                    std::fs::read(&path).map_err(|e| format!("WATCHQ_POLICY={path}: {e}"))?;
                let text = watchq_core::text::from_utf8(&bytes)
                    .and_then(|t| watchq_core::lsm::parse_policy(t).map(|_| t))
                    .map_err(|e| format!("WATCHQ_POLICY={path}: {e}"))?;
                Some(text.to_string())
            }
        };
        let log_fd = match var("WATCHQ_LOG") {
            None => None,
            Some(path) => Some(open_log(&path).map_err(|e| format!("WATCHQ_LOG={path}: {e}"))?),
        };
        Ok(Settings {
            config,
            policy,
            log_fd,
            script,
        })
    }
}

/// Opens (creating, appending) the log file with the real `openat`.
fn open_log(path: &str) -> std::io::Result<i32> {
    let path = std::ffi::CString::new(path)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC;
    // SAFETY: a NUL-terminated path; mode is passed for O_CREAT.
    let fd = unsafe { real::openat()(libc::AT_FDCWD, path.as_ptr(), flags, 0o644) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// The emulation serving this process.
pub(crate) struct Host {
    kernel: Arc<Kernel>,
    proc_: Arc<Process>,
    fds: Mutex<HashMap<i32, Mapped>>,
    log_fd: Option<i32>,
    start: Instant,
}

static HOST: OnceLock<Host> = OnceLock::new();

/// Runs when the library is loaded, before the program's `main`: reads
/// the settings (a bad setting stops the program with status 2, as a
/// wrong command line would) and starts the helper threads.
extern "C" fn load() {
    // On a shared kernel the kernel has the settings; this process only
    // connects to it.
    if crate::client::init() {
        return;
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("watchq: {e}\n");
            // SAFETY: a valid buffer; exiting is the point.
            unsafe {
                real::write()(2, msg.as_ptr().cast(), msg.len());
                libc::_exit(2);
            }
        }
    };
    let script = settings.script.clone();
    let host = HOST.get_or_init(|| Host::new(&settings));
    host.start_threads(script);
}

// The ELF constructor that runs `load` (what `__attribute__((constructor))` emits).
#[used]
#[link_section = ".init_array"]
static LOAD: extern "C" fn() = load;

impl Host {
    fn new(s: &Settings) -> Host {
        let kernel = Kernel::new(s.config);
        if let Some(text) = &s.policy {
            // Checked in `from_env`.
            let _ = kernel.load_policy(text);
        }
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let proc_ = kernel.spawn(uid, gid);
        let log_fd = s.log_fd;
        Host {
            kernel,
            proc_,
            fds: Mutex::new(HashMap::new()),
            log_fd,
            start: Instant::now(),
        }
    }

    /// The emulation, once the library is loaded.
    pub(crate) fn get() -> Option<&'static Host> {
        HOST.get()
    }

    fn start_threads(&'static self, script: Vec<(String, Command)>) {
        // The kernel's key collector runs on its own: here the key clock
        // follows real time and the collector runs as it advances.
        let _ = std::thread::Builder::new()
            .name("watchq-keygc".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                let elapsed = self.start.elapsed().as_secs();
                let now = self.kernel.keys().now();
                if elapsed > now {
                    self.kernel.advance_clock(elapsed - now);
                    self.sync();
                }
            });
        if !script.is_empty() {
            let _ = std::thread::Builder::new()
                .name("watchq-script".into())
                .spawn(move || {
                    let mut actor = Actor::new(self.kernel.clone(), self.proc_.clone(), None);
                    for (text, cmd) in script {
                        let r = actor.exec(&cmd);
                        self.sync();
                        self.log(format_args!("script: {text} = {}", shown(&r.map(|()| 0))));
                    }
                });
        }
    }

    /// The emulated process standing for this one.
    pub(crate) fn process(&self) -> &Arc<Process> {
        &self.proc_
    }

    /// The emulated kernel's configuration.
    pub(crate) fn config(&self) -> KernelConfig {
        self.kernel.config()
    }

    /// The mapping of real descriptor `fd`, if it is an emulated pipe end.
    pub(crate) fn lookup(&self, fd: i32) -> Option<Mapped> {
        self.fds.lock().get(&fd).cloned()
    }

    /// Is any of these descriptors emulated?
    pub(crate) fn any_mapped(&self, fds: impl IntoIterator<Item = i32>) -> bool {
        let map = self.fds.lock();
        !map.is_empty() && fds.into_iter().any(|fd| map.contains_key(&fd))
    }

    /// A new eventfd for an emulated end.
    ///
    /// # Errors
    /// The real eventfd's (`EMFILE`, `ENFILE`, `ENOMEM`).
    pub(crate) fn new_eventfd(&self, flags: u32) -> Result<i32> {
        let mut f = libc::EFD_NONBLOCK;
        if flags & O_CLOEXEC != 0 {
            f |= libc::EFD_CLOEXEC;
        }
        // SAFETY: eventfd has no memory arguments.
        let fd = unsafe { libc::eventfd(0, f) };
        if fd < 0 {
            return Err(last_errno());
        }
        Ok(fd)
    }

    /// Records that real `fd` stands for emulated `emu`; `like` shares the
    /// readiness of an existing mapping (a dup of it).
    pub(crate) fn register(&self, fd: i32, emu: i32, read_end: bool, like: Option<&Mapped>) {
        let signalled =
            like.map_or_else(|| Arc::new(AtomicBool::new(false)), |m| m.signalled.clone());
        self.fds.lock().insert(
            fd,
            Mapped {
                emu,
                read_end,
                signalled,
            },
        );
    }

    /// Forgets real `fd`.
    pub(crate) fn unregister(&self, fd: i32) -> Option<Mapped> {
        self.fds.lock().remove(&fd)
    }

    /// Makes every read end's eventfd readable exactly when its queue has
    /// records or no writer left.
    pub(crate) fn sync(&self) {
        let map = self.fds.lock();
        for (&fd, m) in map.iter().filter(|(_, m)| m.read_end) {
            let mut p = [PollFd::new(m.emu, POLLIN)];
            let ready =
                self.proc_.poll(&mut p, 0).is_ok() && p[0].revents & (POLLIN | POLLHUP) != 0;
            // Relaxed: only changed under the map lock.
            if ready == m.signalled.load(Ordering::Relaxed) {
                continue;
            }
            let mut v = 1u64;
            let buf = (&mut v as *mut u64).cast();
            // SAFETY: an 8-byte buffer, as eventfd reads and writes take.
            let n = unsafe {
                if ready {
                    real::write()(fd, buf, 8)
                } else {
                    real::read()(fd, buf, 8)
                }
            };
            if n == 8 || (!ready && n < 0) {
                m.signalled.store(ready, Ordering::Relaxed);
            }
        }
    }

    /// Is the emulated file behind `m` in non-blocking mode?
    pub(crate) fn nonblocking(&self, m: &Mapped) -> bool {
        self.proc_
            .fcntl(m.emu, libc::F_GETFL, 0)
            .is_ok_and(|fl| fl as u32 & O_NONBLOCK != 0)
    }

    /// Appends a line to the `WATCHQ_LOG` file, if any.
    pub(crate) fn log(&self, args: fmt::Arguments<'_>) {
        let Some(fd) = self.log_fd else { return };
        // SAFETY: getpid has no preconditions.
        let line = format!("watchq[{}]: {args}\n", unsafe { libc::getpid() });
        // SAFETY: a valid buffer; the real write, never the interposer.
        unsafe { real::write()(fd, line.as_ptr().cast(), line.len()) };
    }
}

/// The calling thread's errno as an [`Errno`] (EIO for numbers watchq has no name for).
pub(crate) fn last_errno() -> Errno {
    let raw = std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
    Errno::from_raw(raw).unwrap_or(Errno::EIO)
}

/// A result as the log shows it: the value, or `-1 ENAME`.
pub(crate) fn shown<T: fmt::Debug>(r: &Result<T>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("-1 {}", e.name()),
    }
}

//! Where this process's kernel is, decided when the library is loaded.
//!
//! Under `watchq exec` (or `watchq kernel` and `WATCHQ_KERNEL`), the
//! environment names a running kernel's socket and this process joins it
//! ([`crate::client`]). A process given the library by hand
//! (`LD_PRELOAD=libwatchq_preload.so PROGRAM`, no `WATCHQ_KERNEL`) hosts
//! the kernel itself: a [`Server`] in this process, configured from the
//! `WATCHQ_*` settings below, whose socket it then puts in its own
//! `WATCHQ_KERNEL`, so its descendants join the same kernel. That kernel
//! lives as long as this process does (its children's calls fail with EIO
//! after it exits; `watchq exec`'s kernel has no such limit).
//!
//! | variable | meaning |
//! |---|---|
//! | `WATCHQ_KERNEL` | a running kernel's socket: join it (the settings are that kernel's) |
//! | `WATCHQ_NOTIFICATIONS` | `off` builds the kernel without notification support: `pipe2(O_NOTIFICATION_PIPE)` fails with ENOPKG |
//! | `WATCHQ_KEY_GC_DELAY` | seconds before a revoked or expired key is collected (the kernel's `gc_delay`, 300) |
//! | `WATCHQ_LOG` | a file that gets a line per emulated call |
//! | `WATCHQ_POLICY` | a policy file (docs/policy.md) put in force for the whole run |
//! | `WATCHQ_SCRIPT` | a key script (docs/monitor.md's commands, with `sleep <ms>`) run in the background while the program runs |
//!
//! A bad setting stops the program with status 2 before its `main`, as a
//! wrong command line would.

use crate::real;
use std::sync::OnceLock;
use watchq_kernel::keys::KeyConfig;
use watchq_kernel::script::{parse_script, Actor, Command};
use watchq_kernel::server::{Server, ServerOptions};
use watchq_kernel::{Kernel, KernelConfig};

/// Settings read from the environment at load time.
struct Settings {
    config: KernelConfig,
    policy: Option<String>,
    log: Option<std::fs::File>,
    script: Vec<(String, Command)>,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
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
        let log = match var("WATCHQ_LOG") {
            None => None,
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("WATCHQ_LOG={path}: {e}"))?,
            ),
        };
        Ok(Settings {
            config,
            policy,
            log,
            script,
        })
    }
}

/// The kernel this process hosts, if it hosts one.
static HOSTED: OnceLock<Server> = OnceLock::new();

/// The pid of the process that hosts it.
static HOST_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn refuse(e: &str) -> ! {
    let msg = format!("watchq: {e}\n");
    // SAFETY: a valid buffer; exiting is the point.
    unsafe {
        real::write()(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(2);
    }
}

/// Runs when the library is loaded, before the program's `main`.
extern "C" fn load() {
    if crate::client::init() {
        return;
    }
    let s = Settings::from_env().unwrap_or_else(|e| refuse(&e));
    let kernel = Kernel::new(s.config);
    if let Some(text) = &s.policy {
        // Checked in `from_env`.
        let _ = kernel.load_policy(text);
    }
    let server = Server::start(
        kernel,
        ServerOptions {
            log: s.log,
            ..ServerOptions::default()
        },
    )
    .unwrap_or_else(|e| refuse(&format!("cannot start the emulated kernel: {e}")));
    // Descendants (and this process, below) join it.
    std::env::set_var("WATCHQ_KERNEL", server.path());
    let server = HOSTED.get_or_init(|| server);
    HOST_PID.store(std::process::id(), std::sync::atomic::Ordering::Relaxed);
    extern "C" fn remove_socket() {
        // A forked child's exit() runs this too: only the host removes it.
        // Relaxed: written once before this handler is registered.
        if HOST_PID.load(std::sync::atomic::Ordering::Relaxed) == std::process::id() {
            if let Some(s) = HOSTED.get() {
                s.remove_socket();
            }
        }
    }
    // SAFETY: registers a handler that only removes two files.
    unsafe { libc::atexit(remove_socket) };
    if !crate::client::init() {
        refuse("cannot join the emulated kernel");
    }
    if !s.script.is_empty() {
        let script = s.script;
        let _ = std::thread::Builder::new()
            .name("watchq-script".into())
            .spawn(move || {
                let Some(p) = server.process(std::process::id()) else {
                    return;
                };
                let mut actor = Actor::new(server.kernel().clone(), p, None);
                for (_, cmd) in script {
                    let _ = actor.exec(&cmd);
                    server.sync();
                }
            });
    }
}

// The ELF constructor that runs `load` (what `__attribute__((constructor))` emits).
#[used]
#[link_section = ".init_array"]
static LOAD: extern "C" fn() = load;

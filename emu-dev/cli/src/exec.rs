//! `watchq exec -- PROGRAM ARGS`: run an unmodified program on watchq.
//!
//! Puts the preload library (`libwatchq_preload.so`, built with the
//! workspace) in front of the program's libc with `LD_PRELOAD`, passes the
//! settings as `WATCHQ_*` variables, and executes the program in place of
//! `watchq` (as `env` and `fakeroot` do), so its exit status, its signals
//! and its process id are the program's own.
//!
//! The settings configure one kernel started for the program and all its
//! descendants (`watchq kernel --for-tree`, in the background, not a child
//! of the program), and the program gets `WATCHQ_KERNEL`, the kernel's
//! socket, which the library in it and in every descendant connects to.
//! With `--join SOCKET`, or `WATCHQ_KERNEL` already in the environment,
//! the program joins that kernel instead.
//!
//! Unless `--allow-io-uring` is given, the program runs under a seccomp
//! filter that refuses io_uring ([`crate::seal`]): its submissions would
//! reach the real kernel past the preload.

use std::convert::Infallible;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The library's file name.
pub const PRELOAD_NAME: &str = "libwatchq_preload.so";

/// Settings for one run.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// Join the kernel listening at this socket.
    pub join: Option<PathBuf>,
    /// Build the emulated kernel without notification support (ENOPKG).
    pub no_notifications: bool,
    /// Log every emulated call to this file.
    pub log: Option<PathBuf>,
    /// A key script to run in the background (see docs/monitor.md).
    pub script: Option<PathBuf>,
    /// The key garbage collector's delay, in seconds.
    pub gc_delay: Option<u64>,
    /// A policy file to put in force.
    pub policy: Option<PathBuf>,
    /// The key construction helper, in place of `/sbin/request-key`.
    pub request_key: Option<PathBuf>,
    /// Leave io_uring to the program (no seccomp filter: [`crate::seal`]).
    pub allow_io_uring: bool,
}

/// Where the preload library is: `$WATCHQ_PRELOAD` (if it names a file;
/// otherwise ld.so would only warn and run the program unemulated), else
/// beside the running `watchq` (cargo puts both in `target/<profile>/`),
/// else one directory up (for test binaries in `target/<profile>/deps/`).
pub fn preload_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WATCHQ_PRELOAD").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join(PRELOAD_NAME), dir.parent()?.join(PRELOAD_NAME)]
        .into_iter()
        .find(|p| p.is_file())
}

/// The command that runs `program` with `args` under the preload `lib`,
/// on the kernel listening at `kernel`.
fn command(lib: &Path, kernel: &Path, program: &OsString, args: &[OsString]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    let mut preload = lib.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    c.env("LD_PRELOAD", preload);
    c.env("WATCHQ_KERNEL", kernel);
    c
}

/// Is a kernel listening at `sock`? (A stale `WATCHQ_KERNEL` would make
/// every call of the program fail; better said before it runs.)
fn reachable(sock: &Path) -> std::io::Result<()> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let s = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::connect(&s, &SocketAddrUnix::new(sock)?)?;
    Ok(())
}

/// Executes the program in place of this process.
///
/// # Errors
/// A message when the library cannot be found or the program cannot be
/// executed (on success this does not return).
pub fn run(
    opts: &ExecOptions,
    program: &OsString,
    args: &[OsString],
) -> Result<Infallible, String> {
    let lib = preload_path().ok_or_else(|| {
        format!(
            "cannot find {PRELOAD_NAME} (WATCHQ_PRELOAD, or next to this program); \
             build it with `cargo build --workspace` or set WATCHQ_PRELOAD to its path"
        )
    })?;
    let settings = opts.no_notifications
        || opts.log.is_some()
        || opts.script.is_some()
        || opts.gc_delay.is_some()
        || opts.policy.is_some()
        || opts.request_key.is_some();
    let kernel = if let Some(j) = &opts.join {
        if settings {
            return Err(
                "--join: the joined kernel's settings apply (give them to `watchq kernel`)".into(),
            );
        }
        j.clone()
    } else if let Some(k) = std::env::var_os("WATCHQ_KERNEL").filter(|k| !settings && !k.is_empty())
    {
        PathBuf::from(k)
    } else {
        let kopts = crate::kernel::KernelOptions {
            no_notifications: opts.no_notifications,
            gc_delay: opts.gc_delay,
            policy: opts.policy.clone(),
            log: opts.log.clone(),
            script: opts.script.clone(),
            for_tree: Some(std::process::id()),
            request_key: opts.request_key.clone(),
        };
        crate::kernel::start_detached(&kopts)?
    };
    if let Err(e) = reachable(&kernel) {
        return Err(format!(
            "cannot join the emulated kernel at {}: {e}",
            kernel.display()
        ));
    }
    // Last, so that nothing of watchq's runs under it (the kernel started
    // above is not filtered).
    if !opts.allow_io_uring {
        crate::seal::refuse_io_uring()?;
    }
    let err = command(&lib, &kernel, program, args).exec();
    Err(format!("{}: {err}", program.to_string_lossy()))
}

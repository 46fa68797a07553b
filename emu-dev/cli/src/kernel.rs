//! `watchq kernel`: one emulated kernel that separate processes join.
//!
//! Starts a [`Server`] for a fresh [`Kernel`] and prints how to join it,
//! fakeroot-style, as environment assignments:
//!
//! ```text
//! WATCHQ_KERNEL=/run/user/1000/watchq-1a2b3c4d/sock
//! WATCHQ_KERNEL_PID=4242
//! ```
//!
//! (`export $(watchq kernel)` in a shell). Without `--foreground` the
//! command returns once the kernel listens, and the kernel goes on in the
//! background, in a process group of its own; with it, the kernel runs in
//! this process. Either way SIGTERM (or SIGINT) stops it cleanly: its
//! processes exit, its socket and directory are removed. `watchq exec
//! --shared` starts one with `--for-tree`, which also stops it once the
//! program it was started for and every process it served have exited.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use watchq_kernel::keys::KeyConfig;
use watchq_kernel::script::{parse_script, Actor, Command as ScriptCommand};
use watchq_kernel::server::{Server, ServerOptions};
use watchq_kernel::{Kernel, KernelConfig};

/// How the kernel is built and run.
#[derive(Clone, Debug, Default)]
pub struct KernelOptions {
    /// A kernel without CONFIG_WATCH_QUEUE.
    pub no_notifications: bool,
    /// The key collector's delay, in seconds.
    pub gc_delay: Option<u64>,
    /// A policy file to put in force.
    pub policy: Option<PathBuf>,
    /// A file that gets a line per call.
    pub log: Option<PathBuf>,
    /// A key script run as the tree's first process once it joins.
    pub script: Option<PathBuf>,
    /// Stop once this process and every process served have exited.
    pub for_tree: Option<u32>,
    /// The key construction helper, in place of `/sbin/request-key`.
    pub request_key: Option<PathBuf>,
}

fn read_text(what: &str, path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    watchq_core::text::from_utf8(&bytes)
        .map(str::to_owned)
        .map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// A parsed key script: each line's text and command.
pub type Script = Vec<(String, ScriptCommand)>;

/// The kernel these options describe, and its script.
///
/// # Errors
/// A policy or script file that cannot be read or has a bad line.
pub fn build(opts: &KernelOptions) -> Result<(Arc<Kernel>, Script), String> {
    let mut config = KernelConfig {
        watch_queue: !opts.no_notifications,
        ..KernelConfig::default()
    };
    let mut keys = KeyConfig::default();
    if let Some(d) = opts.gc_delay {
        keys.gc_delay = d;
    }
    config.keys = keys;
    let kernel = Kernel::new(config);
    if let Some(p) = &opts.policy {
        let text = read_text("--policy", p)?;
        kernel
            .load_policy(&text)
            .map_err(|e| format!("--policy {}: {e}", p.display()))?;
    }
    if let Some(p) = &opts.request_key {
        use std::os::unix::fs::PermissionsExt;
        let ok =
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if !ok {
            return Err(format!(
                "--request-key {}: not an executable file",
                p.display()
            ));
        }
    }
    let script = match &opts.script {
        None => Vec::new(),
        Some(p) => parse_script(&read_text("--script", p)?)
            .map_err(|e| format!("--script {}: {e}", p.display()))?,
    };
    Ok((kernel, script))
}

/// Runs the kernel in this process until SIGTERM or SIGINT (or, with
/// `for_tree`, until the tree is gone), writing the join line to `out`
/// once it listens. `detach`: then point stdout at /dev/null, so a
/// parent reading it sees its end.
///
/// # Errors
/// The options' errors, or the socket's.
pub fn serve(opts: &KernelOptions, out: &mut dyn Write, detach: bool) -> Result<(), String> {
    let (kernel, script) = build(opts)?;
    let log = match &opts.log {
        None => None,
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("--log {}: {e}", p.display()))?,
        ),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let server = Server::start(
        kernel,
        ServerOptions {
            log,
            audit_to_stderr: true,
            // For the /sbin/request-key helpers the kernel runs.
            preload: crate::exec::preload_path(),
            request_key: opts.request_key.clone(),
            ..ServerOptions::default()
        },
    )
    .map_err(|e| format!("cannot start the kernel: {e}"))?;
    let _ = writeln!(
        out,
        "WATCHQ_KERNEL={}\nWATCHQ_KERNEL_PID={}",
        server.path().display(),
        std::process::id()
    );
    let _ = out.flush();
    if detach {
        // A parent reading our stdout sees its end; a standalone kernel
        // also lets go of the terminal's (or a caller's) stderr, which it
        // would otherwise hold open for good (its audit lines go to --log).
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            let _ = rustix::stdio::dup2_stdout(&null);
            if opts.for_tree.is_none() {
                let _ = rustix::stdio::dup2_stderr(&null);
            }
        }
    }
    let server = Arc::new(server);
    if !script.is_empty() {
        if let Some(root) = opts.for_tree {
            let s = server.clone();
            std::thread::spawn(move || run_script(&s, root, script));
        }
    }
    let mut served = false;
    // Relaxed: signal-hook's latch; nothing is read through it, and the
    // loop polls it every 50 ms.
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(root) = opts.for_tree {
            let pids = server.pids();
            served |= !pids.is_empty();
            let root_alive = Path::new(&format!("/proc/{root}")).exists();
            if pids.is_empty() && (!root_alive || served) {
                break;
            }
        }
    }
    if let Ok(s) = Arc::try_unwrap(server) {
        s.shutdown();
    }
    Ok(())
}

/// Runs `script` as the tree's first process, once it has joined.
fn run_script(server: &Server, root: u32, script: Script) {
    let proc_ = loop {
        if let Some(p) = server.process(root) {
            break p;
        }
        if !Path::new(&format!("/proc/{root}")).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut actor = Actor::new(server.kernel().clone(), proc_, None);
    for (_, cmd) in script {
        let _ = actor.exec(&cmd);
        server.sync();
    }
}

/// The command line of a `watchq kernel` that runs `opts` (`foreground`:
/// in the process it starts, detached; else one that starts that and
/// returns).
fn kernel_command(opts: &KernelOptions, foreground: bool) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut c = Command::new(exe);
    c.arg("kernel");
    if foreground {
        c.args(["--foreground", "--detach"]);
    }
    if opts.no_notifications {
        c.arg("--no-notifications");
    }
    if let Some(d) = opts.gc_delay {
        c.arg("--gc-delay").arg(d.to_string());
    }
    for (flag, v) in [
        ("--policy", &opts.policy),
        ("--log", &opts.log),
        ("--script", &opts.script),
        ("--request-key", &opts.request_key),
    ] {
        if let Some(p) = v {
            c.arg(flag)
                .arg(std::path::absolute(p).map_err(|e| e.to_string())?);
        }
    }
    if let Some(t) = opts.for_tree {
        c.arg("--for-tree").arg(t.to_string());
    }
    Ok(c)
}

/// Starts a kernel in the background (its own process group, so a
/// terminal's Ctrl-C to the program does not reach it) and returns its
/// socket's path once it listens, and the join lines it printed.
///
/// # Errors
/// The options' errors (checked here first), or the kernel's failure.
pub fn start_background(opts: &KernelOptions) -> Result<(PathBuf, String), String> {
    build(opts)?;
    use std::os::unix::process::CommandExt;
    let mut child = kernel_command(opts, true)?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the kernel: {e}"))?;
    let mut lines = String::new();
    let mut path = None;
    for l in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let Ok(l) = l else { break };
        if let Some(p) = l.strip_prefix("WATCHQ_KERNEL=") {
            path = Some(PathBuf::from(p));
        }
        lines.push_str(&l);
        lines.push('\n');
    }
    match path {
        Some(p) => Ok((p, lines)),
        None => {
            let st = child.wait().map_err(|e| e.to_string())?;
            Err(format!("the kernel did not start ({st})"))
        }
    }
}

/// Starts a kernel that is nobody's child here: a `watchq kernel` that
/// starts it in the background and exits (reaped here), so the program
/// that this process becomes never sees the kernel among its children
/// (a `wait()` loop would otherwise wait for it). Returns its socket.
///
/// # Errors
/// As [`start_background`].
pub fn start_detached(opts: &KernelOptions) -> Result<PathBuf, String> {
    build(opts)?;
    let out = kernel_command(opts, false)?
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start the kernel: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("WATCHQ_KERNEL=").map(PathBuf::from))
        .ok_or_else(|| format!("the kernel did not start ({})", out.status))
}

//! `watchq monitor`: watch a key on an emulated notification pipe and print
//! its records while key commands, read from a script or stdin, change the
//! world.
//!
//! Two processes share one session keyring: the monitor (like `keyctl
//! watch`: a pipe sized to 256 notes, an optional keyctl-style subtype
//! filter, a watch with tag 1 on the watched key) and an actor that runs
//! each command. After every command the monitor drains its pipe and prints
//! what it read in the chosen [`Format`]; a failed command prints
//! `# <command> = -1 ENAME`.
//!
//! The commands are [`watchq_kernel::script`]'s; `watch`/`unwatch` act on the
//! monitor's pipe.

use crate::format::{render_read, Format};
use std::fmt;
use std::io::{BufRead, Write};
use std::sync::Arc;
use watchq_client::Filter;
use watchq_core::uapi::*;
use watchq_core::{Errno, Result};
use watchq_kernel::script::{parse_script, Actor};
use watchq_kernel::{Kernel, KernelConfig, Process};

/// Options of a monitor run.
#[derive(Clone, Debug)]
pub struct MonitorOptions {
    /// Output format.
    pub format: Format,
    /// `SET_SIZE` of the pipe, in notes.
    pub size: u64,
    /// keyctl-style subtype letters (`iplncrvs`); `None`: no filter.
    pub filter: Option<String>,
    /// The key to watch (with tag 1).
    pub key: String,
    /// Also watch the global device list (with tag 2).
    pub devices: bool,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            format: Format::Keyctl,
            size: 256,
            filter: None,
            key: "@s".into(),
            devices: false,
        }
    }
}

/// Why a monitor run stopped.
#[derive(Debug)]
pub enum MonitorError {
    /// A script line could not be understood.
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// Setting up the watch failed.
    Setup(&'static str, Errno),
    /// Bad options.
    Options(String),
    /// Reading the script or writing the output failed.
    Io(std::io::Error),
}

impl fmt::Display for MonitorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorError::Parse { line, msg } => write!(f, "line {line}: {msg}"),
            MonitorError::Setup(what, e) => write!(f, "{what}: {e} ({})", e.name()),
            MonitorError::Options(m) => f.write_str(m),
            MonitorError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for MonitorError {}

impl From<std::io::Error> for MonitorError {
    fn from(e: std::io::Error) -> Self {
        MonitorError::Io(e)
    }
}

/// keyutils' filter letters (`keyctl watch -f`), in subtype order.
const FILTER_LETTERS: &[(char, u8)] = &[
    ('i', NOTIFY_KEY_INSTANTIATED),
    ('p', NOTIFY_KEY_UPDATED),
    ('l', NOTIFY_KEY_LINKED),
    ('n', NOTIFY_KEY_UNLINKED),
    ('c', NOTIFY_KEY_CLEARED),
    ('r', NOTIFY_KEY_REVOKED),
    ('v', NOTIFY_KEY_INVALIDATED),
    ('s', NOTIFY_KEY_SETATTR),
];

/// The key subtypes `keyctl watch -f<letters>` lets through.
///
/// # Errors
/// The first letter that names no subtype.
pub fn keyctl_subtypes(letters: &str) -> std::result::Result<Vec<u8>, char> {
    letters
        .chars()
        .map(|c| {
            FILTER_LETTERS
                .iter()
                .find(|(l, _)| *l == c)
                .map(|&(_, st)| st)
                .ok_or(c)
        })
        .collect()
}

/// The filter blob `keyctl watch -f<letters>` installs.
///
/// # Errors
/// The first letter that names no subtype.
pub fn keyctl_filter(letters: &str) -> std::result::Result<Vec<u8>, char> {
    let subtypes = keyctl_subtypes(letters)?;
    Ok(Filter::new()
        .allow(WATCH_TYPE_KEY_NOTIFY, Some(&subtypes))
        .to_blob())
}

struct World {
    monitor: Arc<Process>,
    fd: i32,
    actor: Actor,
}

impl World {
    fn drain(&self, fmt: Format, out: &mut impl Write) -> std::result::Result<(), MonitorError> {
        let mut buf = [0u8; 433];
        loop {
            match self.monitor.read(self.fd, &mut buf) {
                Ok(n) => {
                    let lines =
                        render_read(&buf[..n], fmt).map_err(|e| MonitorError::Setup("read", e))?;
                    for l in lines {
                        writeln!(out, "{l}")?;
                    }
                }
                Err(Errno::EAGAIN) => return Ok(()),
                Err(e) => return Err(MonitorError::Setup("read", e)),
            }
        }
    }
}

/// Runs the monitor over the commands of `script`, printing to `out`.
///
/// # Errors
/// A line that does not parse (nothing after it runs), bad options, a
/// failing watch set-up, or I/O errors. Commands that fail in the kernel
/// are not errors: their errno is printed.
pub fn run(
    opts: &MonitorOptions,
    script: impl BufRead,
    out: &mut impl Write,
) -> std::result::Result<(), MonitorError> {
    let mut text = String::new();
    let mut script = script;
    script.read_to_string(&mut text)?;
    let cmds = parse_script(&text).map_err(|(line, msg)| MonitorError::Parse { line, msg })?;
    let filter = match &opts.filter {
        None => None,
        Some(f) => Some(keyctl_filter(f).map_err(|c| {
            MonitorError::Options(format!("unknown filter letter {c:?} (use iplncrvs)"))
        })?),
    };
    let kernel = Kernel::new(KernelConfig::default());
    let monitor = kernel.spawn(0, 0);
    let setup = |what, r: Result<()>| r.map_err(|e| MonitorError::Setup(what, e));
    setup(
        "join session keyring",
        monitor.keyctl_join_session_keyring(None).map(drop),
    )?;
    let [fd, _w] = monitor
        .pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK)
        .map_err(|e| MonitorError::Setup("pipe2", e))?;
    setup(
        "IOC_WATCH_QUEUE_SET_SIZE",
        monitor.set_queue_size(fd, opts.size),
    )?;
    if let Some(f) = &filter {
        setup(
            "IOC_WATCH_QUEUE_SET_FILTER",
            monitor.set_queue_filter(fd, Some(f)),
        )?;
    }
    let actor = monitor.fork();
    let mut w = World {
        monitor: monitor.clone(),
        fd,
        actor: Actor::new(kernel, actor, Some((monitor, fd))),
    };
    let key = w
        .actor
        .key(&opts.key)
        .map_err(|e| MonitorError::Setup("key", e))?;
    setup("KEYCTL_WATCH_KEY", w.monitor.keyctl_watch_key(key, fd, 1))?;
    if opts.devices {
        setup("watch_devices", w.monitor.watch_devices(fd, 2, 0))?;
    }
    for (text, c) in cmds {
        if let Err(e) = w.actor.exec(&c) {
            writeln!(out, "# {text} = -1 {}", e.name())?;
        }
        w.drain(opts.format, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mon(opts: MonitorOptions, script: &str) -> String {
        let mut out = Vec::new();
        run(&opts, script.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn monitor_keyctl_format_session_watch() {
        let out = mon(
            MonitorOptions::default(),
            "add user k1 hello\nwatch k1 2\nupdate k1 again\nlink k1 @u\nunlink k1 @u\n\
             revoke k1 # comment\nadvance 300\nupdate nosuch x\n",
        );
        assert_eq!(
            out,
            "268435457 link 268435458\n268435458 upd\n268435458 rev\n268435458 gc\n\
             # update nosuch x = -1 ENOKEY\n"
        );
        // A key reachable only through @u is not possessed from an
        // anonymous session: its owner has view permission only (kernel rule).
        let out = mon(
            MonitorOptions::default(),
            "add user k1 v\nlink k1 @u\nunlink k1 @s\nrevoke k1\n",
        );
        assert_eq!(
            out,
            "268435457 link 268435458\n268435457 unlk 268435458\n# revoke k1 = -1 EACCES\n"
        );
    }

    #[test]
    fn monitor_filter_letters_and_errors() {
        let out = mon(
            MonitorOptions {
                filter: Some("n".into()),
                ..Default::default()
            },
            "add user a x\nadd user b y\nunlink a @s\n",
        );
        assert_eq!(out, "268435457 unlk 268435458\n");
        let mut sink = Vec::new();
        let e = run(
            &MonitorOptions::default(),
            "add user a\nbogus\n".as_bytes(),
            &mut sink,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: usage: add <type> <desc> <payload|-> [<ring>]"
        );
        let e = run(
            &MonitorOptions {
                filter: Some("z".into()),
                ..Default::default()
            },
            "".as_bytes(),
            &mut sink,
        )
        .unwrap_err();
        assert!(e.to_string().contains("'z'"));
    }

    #[test]
    fn monitor_overflow_prints_loss_in_every_format() {
        let burst = "add user k v\nwatch k 2\nrepeat 40 update k w\n";
        for (fmt, needle) in [
            (Format::Keyctl, "-- LOSS --"),
            (Format::Sample, "-- LOSS --"),
            (Format::Hex, "00 00 00 01 08 00 00 00"),
            (Format::Json, "\"meta\":\"loss\""),
        ] {
            let out = mon(
                MonitorOptions {
                    format: fmt,
                    size: 1,
                    ..Default::default()
                },
                burst,
            );
            assert!(out.contains(needle), "{fmt:?}:\n{out}");
        }
    }
}

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
//! Commands, one per line (`#` starts a comment):
//!
//! | command | does |
//! |---|---|
//! | `add <type> <desc> <payload> [<ring>]` | add_key (payload `-` = none; ring defaults to `@s`) |
//! | `update <key> <payload>` | KEYCTL_UPDATE |
//! | `link <key> <ring>` / `unlink <key> <ring>` | KEYCTL_LINK / KEYCTL_UNLINK |
//! | `move <key> <from> <to>` | KEYCTL_MOVE |
//! | `revoke <key>` / `invalidate <key>` / `clear <ring>` | KEYCTL_REVOKE / INVALIDATE / CLEAR |
//! | `setperm <key> <hex>` / `chown <key> <uid> <gid>` / `timeout <key> <secs>` | KEYCTL_SETPERM / CHOWN / SET_TIMEOUT |
//! | `restrict <ring>` | KEYCTL_RESTRICT_KEYRING (no type: refuse links) |
//! | `watch <key> <tag>` / `unwatch <key>` | KEYCTL_WATCH_KEY on the monitor's pipe |
//! | `advance <secs>` | move the key clock (expiry, gc delay) and collect |
//! | `repeat <n> <command>` | run a command n times before the monitor reads (to overflow the queue) |
//!
//! A key is `@s`, `@u`, `@us`, `@p`, `@t`, a serial (decimal or `0x…`), or
//! the description of a key added earlier by `add`.

use crate::format::{render_read, Format};
use crate::{Kernel, KernelConfig, Process};
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, Write};
use std::sync::Arc;
use watchq_core::uapi::*;
use watchq_core::{Errno, Result};
use watchq_sources::keys::*;

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
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            format: Format::Keyctl,
            size: 256,
            filter: None,
            key: "@s".into(),
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

/// The filter blob `keyctl watch -f<letters>` installs.
///
/// # Errors
/// The first letter that names no subtype.
pub fn keyctl_filter(letters: &str) -> std::result::Result<Vec<u8>, char> {
    let mut bits = 0u32;
    for c in letters.chars() {
        let (_, st) = FILTER_LETTERS.iter().find(|(l, _)| *l == c).ok_or(c)?;
        bits |= 1 << st;
    }
    let mut e = RawWatchNotificationTypeFilter {
        type_: WATCH_TYPE_KEY_NOTIFY,
        ..Default::default()
    };
    e.subtype_filter[0] = bits;
    Ok(filter_blob(&[e]))
}

/// A parsed script command.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cmd {
    Add(String, String, Vec<u8>, String),
    Update(String, Vec<u8>),
    Link(String, String),
    Unlink(String, String),
    Move(String, String, String),
    Revoke(String),
    Invalidate(String),
    Clear(String),
    SetPerm(String, u32),
    Chown(String, u32, u32),
    Timeout(String, u32),
    Restrict(String),
    Watch(String, i32),
    Unwatch(String),
    Advance(u64),
    Repeat(u32, Box<Cmd>),
}

fn num<T: TryFrom<i64>>(s: &str, what: &str) -> std::result::Result<T, String> {
    let v = if let Some(h) = s.strip_prefix("0x") {
        i64::from_str_radix(h, 16)
    } else {
        s.parse::<i64>()
    };
    v.ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("{what} {s:?} is not a number in range"))
}

fn parse(line: &str) -> std::result::Result<Option<Cmd>, String> {
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(None);
    }
    let w: Vec<&str> = line.split_whitespace().collect();
    let arity = |n: usize, usage: &str| {
        if w.len() == n {
            Ok(())
        } else {
            Err(format!("usage: {usage}"))
        }
    };
    let s = |i: usize| w[i].to_string();
    let payload = |p: &str| {
        if p == "-" {
            Vec::new()
        } else {
            p.as_bytes().to_vec()
        }
    };
    Ok(Some(match w[0] {
        "add" => {
            if !(4..=5).contains(&w.len()) {
                return Err("usage: add <type> <desc> <payload|-> [<ring>]".into());
            }
            let ring = w.get(4).map_or("@s".to_string(), |r| r.to_string());
            Cmd::Add(s(1), s(2), payload(w[3]), ring)
        }
        "update" => {
            arity(3, "update <key> <payload>")?;
            Cmd::Update(s(1), payload(w[2]))
        }
        "link" => {
            arity(3, "link <key> <ring>")?;
            Cmd::Link(s(1), s(2))
        }
        "unlink" => {
            arity(3, "unlink <key> <ring>")?;
            Cmd::Unlink(s(1), s(2))
        }
        "move" => {
            arity(4, "move <key> <from> <to>")?;
            Cmd::Move(s(1), s(2), s(3))
        }
        "revoke" => {
            arity(2, "revoke <key>")?;
            Cmd::Revoke(s(1))
        }
        "invalidate" => {
            arity(2, "invalidate <key>")?;
            Cmd::Invalidate(s(1))
        }
        "clear" => {
            arity(2, "clear <ring>")?;
            Cmd::Clear(s(1))
        }
        "setperm" => {
            arity(3, "setperm <key> <hex-perm>")?;
            let p = u32::from_str_radix(w[2].trim_start_matches("0x"), 16)
                .map_err(|_| format!("permission {:?} is not hex", w[2]))?;
            Cmd::SetPerm(s(1), p)
        }
        "chown" => {
            arity(4, "chown <key> <uid|-1> <gid|-1>")?;
            let id = |x: &str| -> std::result::Result<u32, String> {
                if x == "-1" {
                    Ok(u32::MAX)
                } else {
                    num(x, "id")
                }
            };
            Cmd::Chown(s(1), id(w[2])?, id(w[3])?)
        }
        "timeout" => {
            arity(3, "timeout <key> <secs>")?;
            Cmd::Timeout(s(1), num(w[2], "timeout")?)
        }
        "restrict" => {
            arity(2, "restrict <ring>")?;
            Cmd::Restrict(s(1))
        }
        "watch" => {
            arity(3, "watch <key> <tag>")?;
            Cmd::Watch(s(1), num(w[2], "tag")?)
        }
        "unwatch" => {
            arity(2, "unwatch <key>")?;
            Cmd::Unwatch(s(1))
        }
        "repeat" => {
            if w.len() < 3 {
                return Err("usage: repeat <n> <command>".into());
            }
            let n = num(w[1], "count")?;
            let rest = w[2..].join(" ");
            let inner = parse(&rest)?.ok_or("repeat needs a command")?;
            Cmd::Repeat(n, Box::new(inner))
        }
        "advance" => {
            arity(2, "advance <secs>")?;
            Cmd::Advance(num(w[1], "seconds")?)
        }
        other => return Err(format!("unknown command {other:?}")),
    }))
}

struct World {
    kernel: Arc<Kernel>,
    monitor: Arc<Process>,
    actor: Arc<Process>,
    fd: i32,
    names: HashMap<String, Serial>,
}

impl World {
    fn key(&self, r: &str) -> Result<Serial> {
        Ok(match r {
            "@t" => KEY_SPEC_THREAD_KEYRING,
            "@p" => KEY_SPEC_PROCESS_KEYRING,
            "@s" => KEY_SPEC_SESSION_KEYRING,
            "@u" => KEY_SPEC_USER_KEYRING,
            "@us" => KEY_SPEC_USER_SESSION_KEYRING,
            _ => match self.names.get(r) {
                Some(&s) => s,
                None => num::<Serial>(r, "key").map_err(|_| Errno::ENOKEY)?,
            },
        })
    }

    fn exec(&mut self, c: &Cmd) -> Result<()> {
        let a = &self.actor;
        match c {
            Cmd::Add(t, d, p, ring) => {
                let s = a.add_key(t, Some(d), p, self.key(ring)?)?;
                self.names.insert(d.clone(), s);
                Ok(())
            }
            Cmd::Update(k, p) => a.keyctl_update(self.key(k)?, p),
            Cmd::Link(k, r) => a.keyctl_link(self.key(k)?, self.key(r)?),
            Cmd::Unlink(k, r) => a.keyctl_unlink(self.key(k)?, self.key(r)?),
            Cmd::Move(k, f, t) => a.keyctl_move(self.key(k)?, self.key(f)?, self.key(t)?, 0),
            Cmd::Revoke(k) => a.keyctl_revoke(self.key(k)?),
            Cmd::Invalidate(k) => a.keyctl_invalidate(self.key(k)?),
            Cmd::Clear(k) => a.keyctl_clear(self.key(k)?),
            Cmd::SetPerm(k, p) => a.keyctl_setperm(self.key(k)?, *p),
            Cmd::Chown(k, u, g) => a.keyctl_chown(self.key(k)?, *u, *g),
            Cmd::Timeout(k, s) => a.keyctl_set_timeout(self.key(k)?, *s),
            Cmd::Restrict(k) => a.keyctl_restrict_keyring(self.key(k)?, None, None),
            Cmd::Watch(k, tag) => self.monitor.keyctl_watch_key(self.key(k)?, self.fd, *tag),
            Cmd::Unwatch(k) => self.monitor.keyctl_watch_key(self.key(k)?, self.fd, -1),
            Cmd::Advance(s) => {
                self.kernel.advance_clock(*s);
                Ok(())
            }
            Cmd::Repeat(n, c) => (0..*n).try_for_each(|_| self.exec(c)),
        }
    }

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
    let cmds = script
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = l?;
            let c = parse(&l).map_err(|msg| MonitorError::Parse { line: i + 1, msg })?;
            let text = l.split('#').next().unwrap_or("").trim().to_string();
            Ok(c.map(|c| (text, c)))
        })
        .collect::<std::result::Result<Vec<_>, MonitorError>>()?;
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
        kernel,
        monitor,
        actor,
        fd,
        names: HashMap::new(),
    };
    let key = w
        .key(&opts.key)
        .map_err(|e| MonitorError::Setup("key", e))?;
    setup("KEYCTL_WATCH_KEY", w.monitor.keyctl_watch_key(key, fd, 1))?;
    for (text, c) in cmds.into_iter().flatten() {
        if let Err(e) = w.exec(&c) {
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

//! Scenario scripts (`watchq run FILE`): a simulated world of processes,
//! keys, mounts, devices, queues and policies, the reads a consumer makes,
//! and `expect` lines that fail the run when the kernel would have said
//! something else. The format is documented in `docs/scenarios.md`.
//!
//! A script is parsed whole before anything runs, so a bad line is reported
//! (with its number) without half a run behind it. Every step then yields
//! a *result*: the decoded records of a read, `ok`, or `error ENAME`; a
//! block of `expect` lines right after a step must equal that result, line
//! for line, or the run fails with a diff. Runs are deterministic: serials,
//! pids and records are the same every time.
//!
//! Lines, comments, words and numbers are [`watchq_core::text`]'s, as in the
//! key scripts and policy files; a bad line is its [`ParseError`].

use crate::format::{json_record_2019, render_note, render_read, Format};
use crate::monitor::keyctl_subtypes;
use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use watchq_client::{Filter, FilterEntry};
use watchq_core::lsm::{Hook, Inheritance, LandlockRule};
use watchq_core::ring::mmap::Consumer;
use watchq_core::text::{self, number as num, ParseError};
use watchq_core::uapi::*;
use watchq_core::{Errno, Notification};
use watchq_kernel::prelude::*;
use watchq_kernel::script::{parse_command, Actor, Command};
use watchq_kernel::{Kernel, KernelConfig, PollFd, Process};

/// The kind of a scenario queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// The merged design: `pipe2(O_NOTIFICATION_PIPE)`; `size` in notes.
    Pipe,
    /// The 2019 design: `/dev/watch_queue` and its mapped ring; `size` in pages.
    Device,
}

/// What a queue watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A key or keyring (`@s`, a serial, or a name given to `add`).
    Key(String),
    /// A mount and its subtree.
    Mount(String),
    /// The superblock of the mount at a path.
    Sb(String),
    /// The global device list.
    Devices,
}

/// One step of a scenario.
#[derive(Clone, Debug)]
pub enum Step {
    /// `kernel [no-notifications] [no-devices]` (first step only).
    Kernel(KernelConfig),
    /// `policy FILE` or an inline `policy` … `end` block: the policy text.
    Policy(String),
    /// `process NAME [uid N] [gid N] [label L]`.
    Process {
        /// Its name in the script.
        name: String,
        /// Real and effective uid.
        uid: u32,
        /// Real and effective gid.
        gid: u32,
        /// Its security label.
        label: Option<String>,
    },
    /// `fork CHILD [of PARENT]`.
    Fork {
        /// The child's name.
        child: String,
        /// The parent (the current process if absent).
        parent: Option<String>,
    },
    /// `as NAME`: later steps run as this process.
    As(String),
    /// `label LABEL|-`: the current process's label.
    Label(Option<String>),
    /// `setuid UID [GID]`: the current process's ids (`setresuid` and
    /// `setresgid` to one value each): EPERM without CAP_SETUID/CAP_SETGID
    /// unless they are its own; leaving uid 0 drops every capability.
    SetUid(u32, Option<u32>),
    /// `restrict deny HOOK | own-keys | deliver TYPE… [live|snapshot]`.
    Restrict(LandlockRule, Inheritance),
    /// `session [NAME]`: join a new (or named) session keyring.
    Session(Option<String>),
    /// `queue NAME pipe|device [size N] [filter TYPE[:SUBTYPE,…]]… [keyfilter LETTERS]`.
    Queue {
        /// Its name in the script.
        name: String,
        /// Which design.
        kind: QueueKind,
        /// Notes (pipe) or pages (device); None: leave unsized.
        size: Option<u64>,
        /// The filter blob, if any.
        filter: Option<Vec<u8>>,
    },
    /// `watch QUEUE key KEY TAG` / `mount PATH TAG` / `sb PATH TAG` / `devices TAG`.
    Watch {
        /// The queue.
        queue: String,
        /// What it watches.
        target: Target,
        /// The watch's tag (-1 removes a key watch).
        tag: i32,
    },
    /// `read QUEUE [BUFSIZE]`: one non-blocking read() (a pipe), or every
    /// record the ring holds (a device).
    Read {
        /// The queue.
        queue: String,
        /// The read's buffer size.
        size: usize,
    },
    /// `close QUEUE`.
    Close(String),
    /// `stats QUEUE`: watchq's counters for the queue.
    Stats(String),
    /// A key, mount or device command of [`watchq_kernel::script`], run as the
    /// current process.
    World(String, Command),
}

/// A step with where it came from and what is expected of it.
#[derive(Clone, Debug)]
pub struct Line {
    /// 1-based line number.
    pub line: usize,
    /// The step's text.
    pub text: String,
    /// The step.
    pub step: Step,
    /// The `expect` lines that follow it: (line number, expected result line).
    pub expect: Vec<(usize, String)>,
}

/// Why a scenario failed.
#[derive(Debug)]
pub enum ScenarioError {
    /// A line is not a valid step (or is in the wrong place).
    Parse(ParseError),
    /// A step's result differs from its `expect` lines.
    Expect {
        /// The step's line.
        line: usize,
        /// The step's text.
        step: String,
        /// The diff, one line per difference.
        diff: Vec<String>,
    },
    /// A step could not run at all (a policy file that cannot be read).
    Setup {
        /// 1-based line number.
        line: usize,
        /// What went wrong.
        msg: String,
    },
    /// Writing the output failed.
    Io(std::io::Error),
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::Parse(e) => write!(f, "{e}"),
            ScenarioError::Setup { line, msg } => write!(f, "line {line}: {msg}"),
            ScenarioError::Expect { line, step, diff } => {
                write!(
                    f,
                    "line {line}: `{step}`: the result differs from the expect lines"
                )?;
                for d in diff {
                    write!(f, "\n  {d}")?;
                }
                Ok(())
            }
            ScenarioError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ScenarioError {}

impl From<std::io::Error> for ScenarioError {
    fn from(e: std::io::Error) -> Self {
        ScenarioError::Io(e)
    }
}

/// A record type by name or number, with its merged and 2019 ids.
fn record_type(s: &str) -> Result<(u32, u32), String> {
    Ok(match s {
        "meta" => (WATCH_TYPE_META, v2::WATCH_TYPE_META),
        "key" => (WATCH_TYPE_KEY_NOTIFY, v2::WATCH_TYPE_KEY_NOTIFY),
        "block" => (WATCH_TYPE_BLOCK_NOTIFY, v2::WATCH_TYPE_BLOCK_NOTIFY),
        "usb" => (WATCH_TYPE_USB_NOTIFY, v2::WATCH_TYPE_USB_NOTIFY),
        "mount" => (WATCH_TYPE_MOUNT_NOTIFY, v2::WATCH_TYPE_MOUNT_NOTIFY),
        "sb" => (WATCH_TYPE_SB_NOTIFY, v2::WATCH_TYPE_SB_NOTIFY),
        n => {
            let t = num(
                n,
                "record type (key, block, usb, mount, sb, meta or a number)",
            )?;
            (t, t)
        }
    })
}

/// The type id of record type `ty` (a name or number) for a queue of `kind`.
fn type_for(ty: &str, kind: QueueKind) -> Result<u32, String> {
    let (merged, v2id) = record_type(ty)?;
    Ok(if kind == QueueKind::Pipe {
        merged
    } else {
        v2id
    })
}

/// One `filter TYPE[:SUBTYPE,…]` entry (all subtypes when none are named).
fn filter_entry(spec: &str, kind: QueueKind) -> Result<FilterEntry, String> {
    let (ty, subs) = match spec.split_once(':') {
        Some((t, s)) => (t, Some(s)),
        None => (spec, None),
    };
    let subtypes = subs
        .map(|list| {
            list.split(',')
                .map(|st| num(st, "subtype (0..255)"))
                .collect()
        })
        .transpose()?;
    Ok(FilterEntry {
        type_: type_for(ty, kind)?,
        subtypes,
    })
}

fn restrict(w: &[&str]) -> Result<(LandlockRule, Inheritance), String> {
    const USAGE: &str = "usage: restrict deny HOOK | own-keys | deliver TYPE… [live|snapshot]";
    let (mode, w) = match w.last() {
        Some(&"live") => (Inheritance::Live, &w[..w.len() - 1]),
        Some(&"snapshot") => (Inheritance::Snapshot, &w[..w.len() - 1]),
        _ => (Inheritance::Live, w),
    };
    let rule = match w {
        ["deny", hook] => LandlockRule::DenyHook(
            Hook::parse(hook).ok_or_else(|| format!("unknown hook {hook:?}"))?,
        ),
        ["own-keys"] => LandlockRule::OwnKeysOnly,
        ["deliver", types @ ..] if !types.is_empty() => LandlockRule::DeliverOnly(
            types
                .iter()
                .map(|t| record_type(t).map(|(m, _)| m))
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(USAGE.into()),
    };
    Ok((rule, mode))
}

/// Names the parser has seen declared, to catch a reference to nothing
/// before the run starts.
#[derive(Default)]
struct Declared {
    processes: Vec<String>,
    queues: Vec<String>,
}

impl Declared {
    fn process(&self, n: &str) -> Result<(), String> {
        // `init` (uid 0) exists unless the script declares its own.
        if n == "init" || self.processes.iter().any(|p| p == n) {
            Ok(())
        } else {
            Err(format!(
                "no process named {n:?} (declare it with `process {n}` first)"
            ))
        }
    }

    fn queue(&self, n: &str) -> Result<(), String> {
        if self.queues.iter().any(|q| q == n) {
            Ok(())
        } else {
            Err(format!(
                "no queue named {n:?} (create it with `queue {n} pipe` first)"
            ))
        }
    }

    fn fresh(&self, n: &str) -> Result<(), String> {
        if self.processes.iter().chain(&self.queues).any(|x| x == n) {
            Err(format!("{n:?} is already the name of a process or queue"))
        } else {
            Ok(())
        }
    }
}

/// Parses one step line (not `expect`, `policy` blocks or `kernel`).
fn parse_step(w: &[&str], text: &str, d: &mut Declared, base: &Path) -> Result<Step, String> {
    let usage = |u: &str| format!("usage: {u}");
    Ok(match w[0] {
        "policy" => match w {
            [_, file] => {
                let path = base.join(file);
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("policy file {}: {e}", path.display()))?;
                let text = text::from_utf8(&bytes)
                    .and_then(|t| watchq_core::lsm::parse_policy(t).map(|_| t))
                    .map_err(|e| format!("policy file {}, {e}", path.display()))?;
                Step::Policy(text.to_string())
            }
            _ => return Err(usage("policy FILE, or `policy` alone to start an inline block ended by `end`")),
        },
        "process" => {
            let name = w.get(1).ok_or_else(|| usage("process NAME [uid N] [gid N] [label L]"))?;
            d.fresh(name)?;
            let (mut uid, mut gid, mut label) = (0, 0, None);
            let mut rest = w[2..].chunks(2);
            for kv in rest.by_ref() {
                match kv {
                    ["uid", v] => uid = num(v, "uid")?,
                    ["gid", v] => gid = num(v, "gid")?,
                    ["label", v] => label = Some(v.to_string()),
                    _ => return Err(usage("process NAME [uid N] [gid N] [label L]")),
                }
            }
            d.processes.push(name.to_string());
            Step::Process {
                name: name.to_string(),
                uid,
                gid,
                label,
            }
        }
        "fork" => match w {
            [_, child] | [_, child, "of", _] => {
                d.fresh(child)?;
                let parent = match w {
                    [_, _, _, p] => {
                        d.process(p)?;
                        Some(p.to_string())
                    }
                    _ => None,
                };
                d.processes.push(child.to_string());
                Step::Fork {
                    child: child.to_string(),
                    parent,
                }
            }
            _ => return Err(usage("fork CHILD [of PARENT]")),
        },
        "as" => match w {
            [_, n] => {
                d.process(n)?;
                Step::As(n.to_string())
            }
            _ => return Err(usage("as PROCESS")),
        },
        "label" => match w {
            [_, "-"] => Step::Label(None),
            [_, l] => Step::Label(Some(l.to_string())),
            _ => return Err(usage("label LABEL|-")),
        },
        "setuid" => match w {
            [_, u] => Step::SetUid(num(u, "uid")?, None),
            [_, u, g] => Step::SetUid(num(u, "uid")?, Some(num(g, "gid")?)),
            _ => return Err(usage("setuid UID [GID]")),
        },
        "restrict" => {
            let (rule, mode) = restrict(&w[1..])?;
            Step::Restrict(rule, mode)
        }
        "session" => match w {
            [_] => Step::Session(None),
            [_, n] => Step::Session(Some(n.to_string())),
            _ => return Err(usage("session [NAME]")),
        },
        "queue" => {
            const U: &str = "queue NAME pipe|device [size N] [filter TYPE[:SUBTYPE,…]]… [keyfilter LETTERS]";
            let (name, kind) = match w.get(1..3) {
                Some([n, "pipe"]) => (n, QueueKind::Pipe),
                Some([n, "device"]) => (n, QueueKind::Device),
                _ => return Err(usage(U)),
            };
            d.fresh(name)?;
            let (mut size, mut entries, mut letters) = (None, Vec::new(), None);
            for kv in w[3..].chunks(2) {
                match kv {
                    ["size", v] => size = Some(num(v, "size")?),
                    ["filter", spec] => entries.push(filter_entry(spec, kind)?),
                    ["keyfilter", l] => letters = Some(l.to_string()),
                    _ => return Err(usage(U)),
                }
            }
            if let Some(l) = letters {
                if !entries.is_empty() {
                    return Err("give either filter or keyfilter, not both".into());
                }
                let subtypes = keyctl_subtypes(&l).map_err(|c| {
                    format!("keyfilter letter {c:?} is not one of keyctl's (iplncrvs)")
                })?;
                entries.push(FilterEntry {
                    type_: type_for("key", kind)?,
                    subtypes: Some(subtypes),
                });
            }
            let filter = (!entries.is_empty()).then(|| Filter { entries }.to_blob());
            d.queues.push(name.to_string());
            Step::Queue {
                name: name.to_string(),
                kind,
                size,
                filter,
            }
        }
        "watch" => {
            const U: &str = "watch QUEUE key KEY TAG | mount PATH TAG | sb PATH TAG | devices TAG";
            let (queue, target, tag) = match w {
                [_, q, "key", k, t] => (q, Target::Key(k.to_string()), t),
                [_, q, "mount", p, t] => (q, Target::Mount(p.to_string()), t),
                [_, q, "sb", p, t] => (q, Target::Sb(p.to_string()), t),
                [_, q, "devices", t] => (q, Target::Devices, t),
                _ => return Err(usage(U)),
            };
            d.queue(queue)?;
            Step::Watch {
                queue: queue.to_string(),
                target,
                tag: num(tag, "tag")?,
            }
        }
        "read" => match w {
            [_, q] | [_, q, _] => {
                d.queue(q)?;
                let size = match w.get(2) {
                    Some(s) => num(s, "buffer size")?,
                    None => 4096,
                };
                Step::Read {
                    queue: q.to_string(),
                    size,
                }
            }
            _ => return Err(usage("read QUEUE [BUFSIZE]")),
        },
        "close" | "stats" => match w {
            [c, q] => {
                d.queue(q)?;
                if *c == "close" {
                    Step::Close(q.to_string())
                } else {
                    Step::Stats(q.to_string())
                }
            }
            _ => return Err(usage(&format!("{} QUEUE", w[0]))),
        },
        "unwatch" | "watch-mount" | "watch-sb" | "watch-devices" => {
            return Err(format!(
                "{:?} is for `watchq monitor`; in a scenario write `watch QUEUE …` (tag -1 removes a key watch)",
                w[0]
            ))
        }
        _ => match parse_command(w) {
            Ok(c) => Step::World(text.to_string(), c),
            // The command that is unknown may be nested (`repeat 2 frob`):
            // name the word the script parser could not place.
            Err(m) if m.starts_with("unknown command ") => {
                let word = &m["unknown command ".len()..];
                return Err(format!("unknown step {word} (see docs/scenarios.md)"));
            }
            Err(m) => return Err(m),
        },
    })
}

/// Parses a scenario; `base` is the directory policy files are relative to.
///
/// # Errors
/// The first bad line: its number and what is wrong.
pub fn parse(text: &str, base: &Path) -> Result<Vec<Line>, ScenarioError> {
    let mut out: Vec<Line> = Vec::new();
    let mut d = Declared::default();
    let mut policy_block: Option<(usize, String)> = None;
    for l in text::lines(text) {
        let line = l.number;
        let err = |msg: String| ScenarioError::Parse(l.error(msg));
        if let Some((start, body)) = policy_block.as_mut() {
            // `end` closes the block, a comment after it too; every other
            // line is the policy file's, comments and blank lines included,
            // so its line numbers count from the `policy` line.
            if l.words == ["end"] {
                let start = *start;
                let body = std::mem::take(body);
                policy_block = None;
                if let Err(e) = watchq_core::lsm::parse_policy(&body) {
                    return Err(ScenarioError::Parse(ParseError::new(
                        start + e.line,
                        format!("in the policy block: {}", e.msg),
                    )));
                }
                out.push(Line {
                    line: start,
                    text: "policy".into(),
                    step: Step::Policy(body),
                    expect: Vec::new(),
                });
            } else {
                body.push_str(l.raw);
                body.push('\n');
            }
            continue;
        }
        if l.is_blank() {
            continue;
        }
        let (text, w) = (l.text, &l.words[..]);
        match w[0] {
            "expect" => {
                let prev = out.last_mut().ok_or_else(|| {
                    err("an expect line must follow the step whose result it checks".into())
                })?;
                // The rest of the line as written: its spacing is compared.
                let want = l.rest(1);
                if want.is_empty() {
                    return Err(err(
                        "usage: expect RESULT-LINE (see docs/scenarios.md)".into()
                    ));
                }
                prev.expect.push((line, want.to_string()));
            }
            "kernel" => {
                if !out.is_empty() {
                    return Err(err("`kernel` must come before every other step".into()));
                }
                let mut c = KernelConfig::default();
                for opt in &w[1..] {
                    match *opt {
                        "no-notifications" => c.watch_queue = false,
                        "no-devices" => c.device_notifications = false,
                        o => {
                            return Err(err(format!(
                                "unknown kernel option {o:?} (no-notifications, no-devices)"
                            )))
                        }
                    }
                }
                out.push(Line {
                    line,
                    text: text.into(),
                    step: Step::Kernel(c),
                    expect: Vec::new(),
                });
            }
            "policy" if w.len() == 1 => policy_block = Some((line, String::new())),
            _ => {
                let step = parse_step(w, text, &mut d, base).map_err(err)?;
                out.push(Line {
                    line,
                    text: text.into(),
                    step,
                    expect: Vec::new(),
                });
            }
        }
    }
    if let Some((start, _)) = policy_block {
        return Err(ScenarioError::Parse(ParseError::new(
            start,
            "the policy block starting here has no `end` line",
        )));
    }
    Ok(out)
}

/// A queue of the running scenario.
struct Queue {
    owner: Arc<Process>,
    fd: i32,
    kind: QueueKind,
}

/// The running world.
struct World {
    kernel: Arc<Kernel>,
    processes: HashMap<String, Arc<Process>>,
    current: Option<Arc<Process>>,
    queues: HashMap<String, Queue>,
    actor: Option<Actor>,
}

/// A step's result: the lines `expect` compares with, and what to print:
/// a `# …` note on the step, then the records it read in the chosen format.
struct Outcome {
    result: Vec<String>,
    note: Option<String>,
    records: Vec<String>,
}

fn errno_result(e: Errno) -> Vec<String> {
    vec![format!("error {}", e.name())]
}

impl World {
    fn new(config: KernelConfig) -> World {
        World {
            kernel: Kernel::new(config),
            processes: HashMap::new(),
            current: None,
            queues: HashMap::new(),
            actor: None,
        }
    }

    /// The current process: `init` (uid 0) if the script named none yet.
    fn current(&mut self) -> Arc<Process> {
        match &self.current {
            Some(p) => p.clone(),
            None => {
                let p = self.named("init");
                self.current = Some(p.clone());
                p
            }
        }
    }

    /// The process called `n` (the parser checked it), `init` made on
    /// first use.
    fn named(&mut self, n: &str) -> Arc<Process> {
        if let Some(p) = self.processes.get(n) {
            return p.clone();
        }
        let p = self.kernel.spawn(0, 0);
        self.processes.insert(n.to_string(), p.clone());
        p
    }

    fn actor(&mut self) -> &mut Actor {
        let p = self.current();
        let kernel = self.kernel.clone();
        let a = self
            .actor
            .get_or_insert_with(|| Actor::new(kernel, p.clone(), None));
        a.set_actor(p);
        a
    }

    fn queue(&self, n: &str) -> &Queue {
        self.queues
            .get(n)
            .expect("the parser checked every queue name")
    }

    fn step(&mut self, step: &Step, fmt: Format) -> Outcome {
        let done = |r: Result<(), Errno>| Outcome {
            result: r.map_or_else(errno_result, |()| vec!["ok".into()]),
            note: None,
            records: Vec::new(),
        };
        match step {
            Step::Kernel(_) => done(Ok(())),
            // Checked when parsed, so loading cannot fail here.
            Step::Policy(text) => done(self.kernel.load_policy(text).map_err(|_| Errno::EINVAL)),
            Step::Process {
                name,
                uid,
                gid,
                label,
            } => {
                let p = self.kernel.spawn(*uid, *gid);
                p.set_label(label.as_deref());
                self.processes.insert(name.clone(), p.clone());
                self.current = Some(p);
                done(Ok(()))
            }
            Step::Fork { child, parent } => {
                let parent = match parent {
                    Some(n) => self.named(n),
                    None => self.current(),
                };
                let c = parent.fork();
                self.processes.insert(child.clone(), c);
                done(Ok(()))
            }
            Step::As(n) => {
                self.current = Some(self.named(n));
                done(Ok(()))
            }
            Step::Label(l) => {
                self.current().set_label(l.as_deref());
                done(Ok(()))
            }
            Step::SetUid(uid, gid) => {
                let p = self.current();
                let old = p.cred();
                let gid = gid.unwrap_or(old.gid);
                use watchq_core::lsm::caps::{CAP_SETGID, CAP_SETUID};
                if (*uid != old.uid && !old.capable(CAP_SETUID))
                    || (gid != old.gid && !old.capable(CAP_SETGID))
                {
                    return done(Err(Errno::EPERM));
                }
                let mut c = self.kernel.cred(*uid, gid);
                c.set_label(old.label().map(str::to_string));
                c.domain = old.domain.clone();
                c.groups = old.groups.clone();
                p.set_cred(c);
                done(Ok(()))
            }
            Step::Restrict(rule, mode) => {
                self.current().landlock_restrict(rule.clone(), *mode);
                done(Ok(()))
            }
            Step::Session(name) => done(
                self.current()
                    .keyctl_join_session_keyring(name.as_deref())
                    .map(drop),
            ),
            Step::Queue {
                name,
                kind,
                size,
                filter,
            } => {
                let p = self.current();
                let made = (|| {
                    let (fd, size_cmd, filter_cmd) = match kind {
                        QueueKind::Pipe => (
                            p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK)?[0],
                            IOC_WATCH_QUEUE_SET_SIZE,
                            IOC_WATCH_QUEUE_SET_FILTER,
                        ),
                        QueueKind::Device => (
                            p.open("/dev/watch_queue", O_RDWR)?,
                            v2::IOC_WATCH_QUEUE_SET_SIZE,
                            v2::IOC_WATCH_QUEUE_SET_FILTER,
                        ),
                    };
                    self.queues.insert(
                        name.clone(),
                        Queue {
                            owner: p.clone(),
                            fd,
                            kind: *kind,
                        },
                    );
                    if let Some(n) = size {
                        p.ioctl(fd, size_cmd, *n, None)?;
                    }
                    if let Some(f) = filter {
                        let mut blob = f.clone();
                        p.ioctl(fd, filter_cmd, 1, Some(&mut blob))?;
                    }
                    Ok(())
                })();
                if made.is_err() && !self.queues.contains_key(name) {
                    // A queue that could not be made is remembered as fd -1,
                    // so later steps on it fail with EBADF, as they would.
                    self.queues.insert(
                        name.clone(),
                        Queue {
                            owner: p,
                            fd: -1,
                            kind: *kind,
                        },
                    );
                }
                done(made)
            }
            Step::Watch { queue, target, tag } => {
                // The watcher is the queue's owner: its fd, its credentials.
                let (watcher, fd) = {
                    let q = self.queue(queue);
                    (q.owner.clone(), q.fd)
                };
                let a = self.actor();
                let r = match target {
                    Target::Key(k) => a.key(k).and_then(|s| watcher.keyctl_watch_key(s, fd, *tag)),
                    Target::Mount(path) => watcher.watch_mount(
                        watchq_kernel::process_consts::AT_FDCWD,
                        path,
                        0,
                        fd,
                        *tag,
                    ),
                    Target::Sb(path) => {
                        watcher.watch_sb(watchq_kernel::process_consts::AT_FDCWD, path, 0, fd, *tag)
                    }
                    Target::Devices => watcher.watch_devices(fd, *tag, 0),
                };
                done(r)
            }
            Step::Read { queue, size } => self.read(queue, *size, fmt),
            Step::Close(queue) => {
                let q = self.queue(queue);
                done(q.owner.close(q.fd))
            }
            Step::Stats(queue) => {
                let q = self.queue(queue);
                match q.owner.queue_stats(q.fd) {
                    Ok(s) => {
                        let line = format!(
                            "posted={} read={} lost={} loss_records={} queued={} filtered={} denied={}",
                            s.posted, s.read, s.lost, s.loss_records, s.queued, s.filtered, s.denied
                        );
                        Outcome {
                            result: vec![line.clone()],
                            note: Some(format!("# stats {queue}: {line}")),
                            records: Vec::new(),
                        }
                    }
                    Err(e) => done(Err(e)),
                }
            }
            Step::World(_, c) => {
                let r = self.actor().exec(c);
                done(r)
            }
        }
    }

    fn read(&mut self, queue: &str, size: usize, fmt: Format) -> Outcome {
        let q = self.queue(queue);
        let (owner, fd) = (q.owner.clone(), q.fd);
        match q.kind {
            QueueKind::Pipe => {
                // A read returns at most what the queue holds (512 notes of
                // 128 bytes), so a larger buffer needs no more memory than
                // that: a script asking for terabytes gets the same answer.
                let mut buf = vec![0u8; size.min(1 << 20)];
                match owner.read(fd, &mut buf) {
                    Ok(n) => {
                        // A notification pipe's read() returns whole records.
                        let recs = Notification::decode_all(&buf[..n]).unwrap_or_default();
                        Outcome {
                            result: recs.iter().map(|r| r.to_string()).collect(),
                            note: Some(format!("# read({queue}, {size}) = {n}")),
                            records: render_read(&buf[..n], fmt).unwrap_or_default(),
                        }
                    }
                    Err(e) => Outcome {
                        result: errno_result(e),
                        note: Some(format!("# read({queue}, {size}) = -1 {}", e.name())),
                        records: Vec::new(),
                    },
                }
            }
            QueueKind::Device => {
                let q = match owner.mmap_watch_queue(fd, 4096, true, 0) {
                    Ok(q) => q,
                    Err(e) => {
                        return Outcome {
                            result: errno_result(e),
                            note: Some(format!("# mmap({queue}) = -1 {}", e.name())),
                            records: Vec::new(),
                        }
                    }
                };
                let mut result = Vec::new();
                let mut records = Vec::new();
                if let Some(r) = q.ring_2019() {
                    if let Ok(mut c) = Consumer::of(r.storage()) {
                        let mut first = c.pop();
                        if matches!(first, Ok(None)) {
                            // A consumer that finds its ring empty polls the
                            // device, which lets a queued key collector run.
                            let _ = owner.poll(&mut [PollFd::new(fd, POLLIN)], 0);
                            first = c.pop();
                        }
                        let mut next = Some(first);
                        while let Ok(Some(rec)) = next.take().unwrap_or_else(|| c.pop()) {
                            let line = v2_line(&rec);
                            let hex = watchq_core::record::hex(&rec.bytes);
                            records.push(match fmt {
                                Format::Hex => hex,
                                Format::Json => json_record_2019(&rec),
                                Format::Sample => format!("{line}\n  hex: {hex}"),
                                Format::Keyctl => line.clone(),
                            });
                            result.push(line);
                        }
                    }
                }
                Outcome {
                    note: Some(format!("# ring({queue}): {} records", result.len())),
                    result,
                    records,
                }
            }
        }
    }
}

/// A 2019 record in one line: key records and removals decoded, the rest
/// by their header; `overrun` when a loss preceded it.
fn v2_line(rec: &watchq_core::ring::mmap::RingRecord) -> String {
    let b = &rec.bytes;
    let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let (ty, st, tag) = (rec.type_(), rec.subtype(), rec.tag());
    let mut line = match ty {
        v2::WATCH_TYPE_KEY_NOTIFY if b.len() == 16 => format!(
            "V2 KEY {:08x} change={st}[{}] aux={} tag={tag}",
            word(8),
            watchq_core::record::key_subtype_name(st).unwrap_or("unknown"),
            word(12)
        ),
        v2::WATCH_TYPE_META if st == v2::WATCH_META_REMOVAL_NOTIFICATION => {
            format!("V2 REMOVAL of watchpoint {tag:08x}")
        }
        _ => format!("V2 type={ty} subtype={st} tag={tag} len={}", b.len()),
    };
    if rec.overrun() {
        line.push_str(" overrun");
    }
    line
}

/// Runs a parsed scenario, printing each step's output in `fmt`.
///
/// # Errors
/// The first step whose result differs from its `expect` lines, or an
/// output error. Steps that fail without `expect` lines are printed
/// (`# STEP = -1 ENAME`) and the run goes on.
pub fn run(lines: &[Line], fmt: Format, out: &mut dyn Write) -> Result<(), ScenarioError> {
    run_following(lines, fmt, None, out)
}

/// Runs a parsed scenario as [`run`] does, but if `follow` names a queue,
/// prints only that queue's records, read after every step as they arrive
/// (`watchq monitor --queue`): a consumer attached to the queue. Reads the
/// script itself makes of that queue find it already drained, so `expect`
/// lines are not checked in this mode (`watchq run` checks them).
///
/// # Errors
/// As [`run`]; `Parse` if `follow` names no queue of the scenario.
pub fn run_following(
    lines: &[Line],
    fmt: Format,
    follow: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), ScenarioError> {
    if let Some(f) = follow {
        let known = lines
            .iter()
            .any(|l| matches!(&l.step, Step::Queue { name, .. } if name == f));
        if !known {
            return Err(ScenarioError::Parse(ParseError::new(
                lines.last().map_or(1, |l| l.line),
                format!("no queue named {f:?} in the scenario"),
            )));
        }
    }
    let config = match lines.first() {
        Some(Line {
            step: Step::Kernel(c),
            ..
        }) => *c,
        _ => KernelConfig::default(),
    };
    let mut w = World::new(config);
    for l in lines {
        let mut o = w.step(&l.step, fmt);
        if follow.is_none() {
            if o.note.is_none() && l.expect.is_empty() {
                if let [e] = &o.result[..] {
                    o.note = e
                        .strip_prefix("error ")
                        .map(|name| format!("# {} = -1 {name}", l.text));
                }
            }
            if let Some(n) = &o.note {
                writeln!(out, "{}", render_note(n, fmt))?;
            }
            for r in &o.records {
                writeln!(out, "{r}")?;
            }
        }
        // A follower takes the queue's records as they come, so the script's
        // own reads of it find nothing: expect lines are `watchq run`'s job.
        if !l.expect.is_empty() && follow.is_none() {
            let want: Vec<&str> = l.expect.iter().map(|(_, s)| s.as_str()).collect();
            if want != o.result {
                return Err(ScenarioError::Expect {
                    line: l.line,
                    step: l.text.clone(),
                    diff: diff(&l.expect, &o.result),
                });
            }
        }
        if let Some(f) = follow {
            w.follow(f, fmt, out)?;
        }
    }
    Ok(())
}

impl World {
    /// Prints every record `queue` holds now (records only, no headers).
    fn follow(&mut self, queue: &str, fmt: Format, out: &mut dyn Write) -> std::io::Result<()> {
        // Not made yet: nothing to follow.
        let Some(kind) = self.queues.get(queue).map(|q| q.kind) else {
            return Ok(());
        };
        loop {
            let o = self.read(queue, 4096, fmt);
            for r in &o.records {
                writeln!(out, "{r}")?;
            }
            // A device read drains the whole ring at once.
            if o.records.is_empty() || kind == QueueKind::Device {
                return Ok(());
            }
        }
    }
}

/// Expected against got, line by line.
//
// Position by position, kept rather than a diff crate (similar): an
// expect block is a few lines, and this names each `expect` line that
// failed by its number, the form docs/scenarios.md shows. An LCS diff
// would align a missing record better, for a dependency and a new output.
fn diff(want: &[(usize, String)], got: &[String]) -> Vec<String> {
    let mut d = Vec::new();
    for i in 0..want.len().max(got.len()) {
        match (want.get(i), got.get(i)) {
            (Some((l, w)), Some(g)) if w != g => {
                let at = format!("line {l}: ");
                d.push(format!("{at}expected `{w}`"));
                d.push(format!("{:n$}got      `{g}`", "", n = at.len()));
            }
            (Some((l, w)), None) => d.push(format!(
                "line {l}: expected `{w}`, but there is no such line"
            )),
            (None, Some(g)) => d.push(format!("unexpected `{g}` (no expect line for it)")),
            _ => {}
        }
    }
    d
}

/// Parses and runs the scenario in `text`; policy files are relative to `base`.
///
/// # Errors
/// As [`parse`] and [`run`].
pub fn run_text(
    text: &str,
    base: &Path,
    fmt: Format,
    out: &mut dyn Write,
) -> Result<(), ScenarioError> {
    let lines = parse(text, base)?;
    run(&lines, fmt, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> ParseError {
        match parse(text, Path::new("/nonexistent")) {
            Err(ScenarioError::Parse(e)) => e,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn runs(text: &str) -> Result<(), ScenarioError> {
        run_text(
            text,
            Path::new("/nonexistent"),
            Format::Sample,
            &mut Vec::new(),
        )
    }

    /// Tabs and CRLF separate words and end lines as spaces and `\n` do; a
    /// comment may follow the `end` of a policy block.
    #[test]
    fn scenario_lines_take_tabs_crlf_and_a_commented_end() {
        runs(
            "policy\r\n[smack]\t# rules\r\n\r\nend   # of the policy\r\n\
             queue\tq  pipe\tsize 1\r\nread q\r\nexpect error EAGAIN\r\n",
        )
        .unwrap();
        // Inside the block, comment and blank lines count for the policy's
        // line numbers, which count from the `policy` line.
        let e = parse_err("process a\npolicy\n# c\n[smack]\n\nonly-two words\nend\n");
        assert_eq!(e.line, 6);
        assert_eq!(
            e.msg,
            "in the policy block: a Smack rule is `subject object access`"
        );
        // `end` with more words is a policy line, so the block never ends.
        let e = parse_err("policy\n[permissive]\nend now\n");
        assert_eq!(e.line, 1);
        assert_eq!(e.msg, "the policy block starting here has no `end` line");
    }

    /// An `expect` line is the rest of the line as written (comment
    /// removed): its spacing is compared with the result's.
    #[test]
    fn scenario_expect_keeps_its_spacing() {
        runs("queue q pipe\nread q\nexpect   error EAGAIN  # after\n").unwrap();
        match runs("queue q pipe\nread q\nexpect error  EAGAIN\n") {
            Err(ScenarioError::Expect { line: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    /// Scenario numbers are the key scripts' numbers.
    #[test]
    fn scenario_numbers_are_the_scripts() {
        runs("queue q pipe size 0x1\nread q 0x10\nexpect error EAGAIN\n").unwrap();
        runs("process a uid 0xffffffff gid +7\n").unwrap();
        let e = parse_err("queue q pipe\nwatch q key @s 0x-1\n");
        assert_eq!(
            (e.line, e.msg.as_str()),
            (2, "tag \"0x-1\" is not a number in range")
        );
        let e = parse_err("process a uid 4294967296\n");
        assert_eq!(e.msg, "uid \"4294967296\" is not a number in range");
        assert_eq!(
            e.to_string(),
            "line 1: uid \"4294967296\" is not a number in range"
        );
    }
}

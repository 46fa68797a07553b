//! Which emulated process a real one is.
//!
//! Owns [`Procs`], the table from real pids to emulated [`Process`]es. A
//! real process is known by its pid and its start time (field 22 of
//! `/proc/PID/stat`, so a reused pid is a new process); its parent is field
//! 4. A process joining whose real parent is known is forked from the
//! parent's emulated process (keyrings inherited as `fork()` inherits
//! them); a parent the server has not met yet (a shell's subshell that
//! never made a call) is forked from its own nearest known ancestor first,
//! so its later children find it. A process with no known ancestor starts
//! afresh, in a new session keyring (as a login's first process does). Each known process has a pidfd in the server's epoll set: when
//! the real process exits, the emulated one exits (its keyrings released).
//!
//! Everything here comes from the real kernel (`SO_PEERCRED`,
//! `SCM_CREDENTIALS`, `/proc`, pidfds), never from what a client says.

use crate::kernel::Kernel;
use crate::process::Process;
use crate::syscalls::keys::KeyCalls;
use parking_lot::Mutex;
use rustix::process::{Pid, PidfdFlags};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use watchq_core::Errno;

/// One real process the server knows.
pub(crate) struct Proc {
    pub(crate) pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub(crate) start: u64,
    pub(crate) process: Arc<Process>,
}

/// What `/proc/PID/stat` says of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) ppid: u32,
    pub(crate) start: u64,
}

/// Parses `/proc/PID/stat`: `pid (comm) state ppid ...`; the command may
/// hold spaces and parentheses, so fields are counted after the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, ppid 4, starttime 22.
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

/// The stat of real process `pid`, if it exists.
pub(crate) fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The supplementary groups of real process `pid` (`Groups:` in
/// `/proc/PID/status`), empty if it cannot be read.
pub(crate) fn groups(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|st| {
            st.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The table of known processes.
#[derive(Default)]
pub(crate) struct Procs {
    by_pid: Mutex<HashMap<u32, Arc<Proc>>>,
    /// request-key helpers the server started (pid → their session
    /// keyring), until they join, and how many are being started.
    helpers: Mutex<(HashMap<u32, watchq_sources::keys::Serial>, usize)>,
    helper_known: parking_lot::Condvar,
}

/// A new process to watch for exit, with its pidfd.
pub(crate) struct Joined {
    pub(crate) proc_: Arc<Proc>,
    pub(crate) pidfd: Option<OwnedFd>,
}

impl Procs {
    /// The known process `pid`, if its start time is still `start`.
    pub(crate) fn get(&self, pid: u32, start: u64) -> Option<Arc<Proc>> {
        self.by_pid
            .lock()
            .get(&pid)
            .filter(|p| p.start == start)
            .cloned()
    }

    /// Real pids known, ascending.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.by_pid.lock().keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// The emulated process of real process `pid` running as `uid`/`gid`,
    /// creating it (and any unknown ancestors) as described in the header.
    /// Returns it and the processes newly entered (to watch for exit).
    pub(crate) fn attach(
        &self,
        kernel: &Arc<Kernel>,
        pid: u32,
        uid: u32,
        gid: u32,
    ) -> Option<(Arc<Proc>, Vec<Joined>)> {
        let me = stat(pid)?;
        if let Some(p) = self.get(pid, me.start) {
            return Some((p, Vec::new()));
        }
        if me.ppid == std::process::id() {
            if let Some(r) = self.attach_helper(kernel, pid, me, uid, gid) {
                return Some(r);
            }
        }
        // Walk up to the nearest known ancestor (bounded: pid 1 or a cycle
        // through a reused pid ends it).
        let mut chain = vec![(pid, me)];
        let mut base = None;
        let mut at = me.ppid;
        while at > 1 && chain.len() < 64 {
            let Some(s) = stat(at) else { break };
            if let Some(p) = self.get(at, s.start) {
                base = Some(p.process.clone());
                break;
            }
            chain.push((at, s));
            at = s.ppid;
        }
        if base.is_none() {
            // No known ancestor: this process starts afresh, and the
            // unknown ones above it stay unknown.
            chain.truncate(1);
        }
        let mut joined = Vec::new();
        let mut parent = base;
        for &(p, s) in chain.iter().rev() {
            let process = match &parent {
                Some(par) => par.fork(),
                None => {
                    // A process with no known ancestor starts as a login
                    // does (pam_keyinit): in a session keyring of its own,
                    // which its descendants inherit.
                    let p = kernel.spawn(uid, gid);
                    // The user's keyrings exist before the session (a
                    // login's look-up makes them first).
                    let _ = p.keyctl_get_keyring_id(watchq_core::uapi::KEY_SPEC_USER_KEYRING, true);
                    let _ = p.keyctl_join_session_keyring(None);
                    p
                }
            };
            let (entry, pidfd) = self.enter(p, s.start, process);
            parent = Some(entry.process.clone());
            joined.push(Joined {
                proc_: entry,
                pidfd,
            });
        }
        let me_entry = joined.last().map(|j| j.proc_.clone())?;
        Some((me_entry, joined))
    }

    /// Enters real process `pid` (started at `start`) as `process`, unless
    /// another thread entered it meanwhile (its parent's
    /// [`Procs::adopt`] racing its own first call): then that entry is
    /// the one, and no pidfd comes back (it is watched already). A
    /// process gone already (its pidfd failed) still serves as the link to
    /// its children, but is not entered.
    fn enter(&self, pid: u32, start: u64, process: Arc<Process>) -> (Arc<Proc>, Option<OwnedFd>) {
        let pidfd = Pid::from_raw(pid as i32)
            .and_then(|p| rustix::process::pidfd_open(p, PidfdFlags::empty()).ok());
        let entry = Arc::new(Proc {
            pid,
            start,
            process,
        });
        if pidfd.is_none() {
            return (entry, None);
        }
        let mut m = self.by_pid.lock();
        match m.get(&pid) {
            Some(known) if known.start == start => (known.clone(), None),
            _ => {
                m.insert(pid, entry.clone());
                (entry, pidfd)
            }
        }
    }

    /// Real process `child`, which `parent` (the caller, alive: it is
    /// making this call) says it has just forked or spawned, is entered as
    /// a fork of it now, so that it keeps the keyrings it inherited even if
    /// the parent exits before the child's first call (`Request::Forked`).
    /// The claim is the real kernel's to confirm: `child`'s real parent
    /// must be the caller (ESRCH when there is no such process, EPERM when
    /// it is not the caller's child). Nothing is entered for a child known
    /// already (it made its first call first).
    pub(crate) fn adopt(&self, parent: &Proc, child: u32) -> Result<Option<Joined>, Errno> {
        let st = stat(child).ok_or(Errno::ESRCH)?;
        if st.ppid != parent.pid || st.start < parent.start {
            return Err(Errno::EPERM);
        }
        if st.ppid == std::process::id() {
            // A process hosting the kernel: a request-key helper being
            // started is entered as one when it joins (`attach_helper`).
            let h = self.helpers.lock();
            if h.1 > 0 || h.0.contains_key(&child) {
                return Ok(None);
            }
        }
        if self.get(child, st.start).is_some() {
            return Ok(None);
        }
        let (proc_, pidfd) = self.enter(child, st.start, parent.process.fork());
        Ok(pidfd.map(|pidfd| Joined {
            proc_,
            pidfd: Some(pidfd),
        }))
    }

    /// Enters request-key helper `pid` (started by [`Procs::helper_started`])
    /// with its own session keyring, as `call_usermodehelper_keys()` runs
    /// it; a child of the server that is no helper is refused.
    fn attach_helper(
        &self,
        kernel: &Arc<Kernel>,
        pid: u32,
        me: Stat,
        uid: u32,
        gid: u32,
    ) -> Option<(Arc<Proc>, Vec<Joined>)> {
        let mut h = self.helpers.lock();
        // The server enters the pid right after spawning it: while a
        // helper is being started, wait for that.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !h.0.contains_key(&pid) && h.1 > 0 {
            if self.helper_known.wait_until(&mut h, until).timed_out() {
                return None;
            }
        }
        let session = h.0.remove(&pid)?;
        drop(h);
        let process = kernel.spawn(uid, gid);
        process.anchors().session = Some(session);
        let entry = Arc::new(Proc {
            pid,
            start: me.start,
            process,
        });
        let pidfd = Pid::from_raw(pid as i32)
            .and_then(|p| rustix::process::pidfd_open(p, PidfdFlags::empty()).ok());
        if pidfd.is_some() {
            self.by_pid.lock().insert(pid, entry.clone());
        }
        Some((
            entry.clone(),
            vec![Joined {
                proc_: entry,
                pidfd,
            }],
        ))
    }

    /// The server is about to start a request-key helper.
    pub(crate) fn helper_starting(&self) {
        self.helpers.lock().1 += 1;
    }

    /// The server started request-key helper `pid` (None: it could not)
    /// for a construction whose helper session keyring is `session`.
    pub(crate) fn helper_started(&self, pid: Option<u32>, session: watchq_sources::keys::Serial) {
        let mut h = self.helpers.lock();
        h.1 -= 1;
        if let Some(pid) = pid {
            h.0.insert(pid, session);
        }
        drop(h);
        self.helper_known.notify_all();
    }

    /// Is `pid` itself, or one of its real ancestors, known?
    pub(crate) fn has_known_ancestor(&self, pid: u32) -> bool {
        let mut at = pid;
        for _ in 0..64 {
            let Some(s) = stat(at) else { return false };
            if self.get(at, s.start).is_some() {
                return true;
            }
            if s.ppid <= 1 {
                return false;
            }
            at = s.ppid;
        }
        false
    }

    /// Real process `pid` (started at `start`) exited: its emulated process
    /// exits too, if it is still the one known.
    pub(crate) fn exited(&self, pid: u32, start: u64) -> Option<Arc<Proc>> {
        let mut m = self.by_pid.lock();
        if m.get(&pid).is_some_and(|p| p.start == start) {
            let p = m.remove(&pid)?;
            drop(m);
            p.process.exit();
            return Some(p);
        }
        None
    }

    /// Every known process exits (the server stops).
    pub(crate) fn clear(&self) {
        let all: Vec<Arc<Proc>> = self.by_pid.lock().drain().map(|(_, p)| p).collect();
        for p in all {
            p.process.exit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_stat_parses_commands_with_spaces_and_parentheses() {
        let line =
            "1234 (a b) (c)) S 77 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 100";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 77,
                start: 98765
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S"), None);
        let me = stat(std::process::id()).unwrap();
        assert_eq!(
            me.ppid,
            stat(std::process::id()).map(|s| s.ppid).unwrap(),
            "stable"
        );
    }
}

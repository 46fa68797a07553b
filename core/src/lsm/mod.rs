//! Credentials, the security-policy hooks, and the policy engine.
//!
//! Owns [`Cred`] (who set a watch, who caused an event), [`UserStruct`] (the
//! per-user watch count the kernel keeps in `struct user_struct`) and the
//! [`Policy`] trait whose methods mirror the LSM hooks. Only
//! `post_notification` is consulted by the core post path; [`Permissive`]
//! allows everything, as a kernel without an LSM does.

use crate::errno::Errno;
use crate::record::Notification;
use crate::sync::{Arc, AtomicU64, Ordering};
use std::fmt;

/// Capability numbers (`include/uapi/linux/capability.h`) the emulation checks.
pub mod caps {
    /// `CAP_SETGID`: may change group ids at will.
    pub const CAP_SETGID: u32 = 6;
    /// `CAP_SETUID`: may change user ids at will.
    pub const CAP_SETUID: u32 = 7;
    /// `CAP_SYS_ADMIN`.
    pub const CAP_SYS_ADMIN: u32 = 21;
    /// `CAP_SYS_RESOURCE`: may exceed resource limits (pipe sizes).
    pub const CAP_SYS_RESOURCE: u32 = 24;
    /// `CAP_MAC_OVERRIDE`: bypasses mandatory access control (Smack).
    pub const CAP_MAC_OVERRIDE: u32 = 32;
    /// Every capability up to `CAP_LAST_CAP` (40): what uid 0 starts with.
    pub const ALL: u64 = (1 << 41) - 1;
}

/// Per-user accounting. Mirrors the `nr_watches` and `pipe_bufs` counters
/// of `struct user_struct`.
#[derive(Debug)]
pub struct UserStruct {
    uid: u32,
    nr_watches: AtomicU64,
    pipe_bufs: AtomicU64,
}

impl UserStruct {
    /// A fresh account for `uid` with no watches.
    pub fn new(uid: u32) -> Arc<Self> {
        Arc::new(UserStruct {
            uid,
            nr_watches: AtomicU64::new(0),
            pipe_bufs: AtomicU64::new(0),
        })
    }

    /// The user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Watches this user holds now (freed watches are no longer counted).
    pub fn nr_watches(&self) -> u64 {
        // Relaxed: a statistic; nothing is published through it.
        self.nr_watches.load(Ordering::Relaxed)
    }

    /// Counts one more watch unless that exceeds `limit`.
    pub(crate) fn try_charge_watch(&self, limit: u64) -> bool {
        // Relaxed: the counter only bounds a count; no data hangs off it.
        let n = self.nr_watches.fetch_add(1, Ordering::Relaxed) + 1;
        if n > limit {
            self.nr_watches.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// `account_pipe_buffers()`: a pipe charged `old` pages now is charged
    /// `new`; the user's total after.
    pub fn account_pipe_buffers(&self, old: u64, new: u64) -> u64 {
        // Relaxed: a counter the limits are checked against; no data hangs off it.
        if new >= old {
            self.pipe_bufs.fetch_add(new - old, Ordering::Relaxed) + (new - old)
        } else {
            self.pipe_bufs.fetch_sub(old - new, Ordering::Relaxed) - (old - new)
        }
    }

    /// Pipe pages charged to this user (`user->pipe_bufs`).
    pub fn pipe_bufs(&self) -> u64 {
        // Relaxed: as `account_pipe_buffers`.
        self.pipe_bufs.load(Ordering::Relaxed)
    }

    pub(crate) fn uncharge_watch(&self) {
        // Relaxed: see try_charge_watch.
        self.nr_watches.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Credentials of a task. Mirrors the parts of `struct cred` the
/// notification code and its LSM hooks look at.
#[derive(Clone)]
pub struct Cred {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Effective capabilities, one bit per `CAP_*` number (see [`caps`]).
    pub caps: u64,
    /// LSM label or context (`None`: unlabelled). Private so that the
    /// key below always belongs to it: set with [`Cred::set_label`].
    label: Option<String>,
    /// [`label_key`] of `label`, made when the label is set (once per
    /// task, not per event: the post path's verdict caches compare it).
    label_key: Option<[u64; 2]>,
    /// The Landlock-like domain the task is confined by, if any.
    pub domain: Option<std::sync::Arc<Domain>>,
    /// The user's accounting.
    pub user: Arc<UserStruct>,
}

impl Cred {
    /// Credentials of `uid`/`gid` charged to `user`.
    pub fn new(uid: u32, gid: u32, user: Arc<UserStruct>) -> Self {
        Cred {
            uid,
            gid,
            groups: Vec::new(),
            caps: if uid == 0 { caps::ALL } else { 0 },
            label: None,
            label_key: label_key(None),
            domain: None,
            user,
        }
    }

    /// The task's LSM label or context (`None`: unlabelled).
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// Relabels the task (`None`: unlabelled).
    pub fn set_label(&mut self, label: Option<String>) {
        self.label_key = label_key(label.as_deref());
        self.label = label;
    }

    /// The label's key for the post path's verdict caches (None: too long
    /// to have one), made by [`Cred::set_label`].
    #[inline(always)]
    pub(crate) fn label_key(&self) -> Option<[u64; 2]> {
        self.label_key
    }

    /// Does the task hold capability `cap` (a `CAP_*` number)? Mirrors `capable()`.
    pub fn capable(&self, cap: u32) -> bool {
        cap < 64 && self.caps & (1 << cap) != 0
    }

    /// Is `gid` the task's group or one of its supplementary groups?
    /// Mirrors `in_group_p()`.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// Root with an account of its own (handy in tests).
    pub fn root() -> Self {
        Self::new(0, 0, UserStruct::new(0))
    }
}

impl fmt::Debug for Cred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cred")
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("groups", &self.groups)
            .field("caps", &format_args!("{:#x}", self.caps))
            .field("label", &self.label)
            .finish()
    }
}

/// The policy in force, swappable at run time without blocking posts.
///
/// A post takes one snapshot with [`PolicySlot::load`] and asks it about
/// every watch it reaches, so a swap never gives one post a mix of old and
/// new policy (loom model `loom_policy_swap_races_post`). Read-copy-update
/// (`crate::rcu`), like the watch lists.
pub struct PolicySlot(crate::sync::RcuCell<std::sync::Arc<dyn Policy>>);

impl PolicySlot {
    /// A slot holding `policy`.
    pub fn new(policy: std::sync::Arc<dyn Policy>) -> Self {
        PolicySlot(crate::sync::RcuCell::new(policy))
    }

    /// The policy in force now.
    pub fn load(&self) -> std::sync::Arc<dyn Policy> {
        (*self.0.load()).clone()
    }

    /// Puts `policy` in force; posts already under way keep the old one.
    pub fn store(&self, policy: std::sync::Arc<dyn Policy>) {
        self.0.store(Arc::new(policy));
    }
}

impl fmt::Debug for PolicySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PolicySlot")
            .field(&self.load().name())
            .finish()
    }
}

mod audit;
mod config;
mod landlock;
mod selinux;
mod smack;

pub use audit::{AuditLog, AuditRecord, Audited};
pub use config::parse_policy;
pub use landlock::{Domain, Inheritance, Landlock, LandlockRule};
pub use selinux::{type_of, SeLinux};
pub use smack::Smack;

/// A policy's refusal: the errno the caller gets and why (for the audit log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// What the system call returns (EACCES, EPERM).
    pub errno: Errno,
    /// Why, in the policy's words.
    pub reason: String,
}

impl Denial {
    /// A refusal with `errno` because of `reason`.
    pub fn new(errno: Errno, reason: impl Into<String>) -> Self {
        Denial {
            errno,
            reason: reason.into(),
        }
    }
}

impl From<Denial> for Errno {
    fn from(d: Denial) -> Errno {
        d.errno
    }
}

/// What a hook says: allow, or a [`Denial`].
pub type Verdict = std::result::Result<(), Denial>;

/// The hooks, by name (audit records and rules name them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// `security_watch_key`.
    WatchKey,
    /// `security_watch_mount`.
    WatchMount,
    /// `security_watch_sb`.
    WatchSb,
    /// `security_watch_devices`.
    WatchDevices,
    /// `security_post_notification`.
    PostNotification,
}

impl Hook {
    /// The hook's name as rules and the audit log write it.
    pub fn name(self) -> &'static str {
        match self {
            Hook::WatchKey => "watch_key",
            Hook::WatchMount => "watch_mount",
            Hook::WatchSb => "watch_sb",
            Hook::WatchDevices => "watch_devices",
            Hook::PostNotification => "post_notification",
        }
    }

    /// Parses a hook name.
    pub fn parse(s: &str) -> Option<Hook> {
        [
            Hook::WatchKey,
            Hook::WatchMount,
            Hook::WatchSb,
            Hook::WatchDevices,
            Hook::PostNotification,
        ]
        .into_iter()
        .find(|h| h.name() == s)
    }
}

/// The object a watch is being set on, as the watch hooks see it.
#[derive(Clone, Copy, Debug)]
pub struct WatchedObject<'a> {
    /// The object's id (for keys, the serial).
    pub id: u64,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Security label (`None`: unlabelled).
    pub label: Option<&'a str>,
}

/// A security policy: one method per LSM hook the notification code calls.
///
/// Every method defaults to allowing, as a kernel without an LSM does.
pub trait Policy: Send + Sync {
    /// A short name for logs and audit records.
    fn name(&self) -> &str;

    /// May `watcher` set a watch on this key? Mirrors
    /// `security_watch_key()`, called by KEYCTL_WATCH_KEY after the key and
    /// the queue are found and before the watch is added.
    ///
    /// # Errors
    /// The errno the LSM would return (`EACCES`, `EPERM`); the keyctl fails with it.
    fn watch_key(&self, watcher: &Cred, key: &WatchedObject<'_>) -> Verdict {
        let _ = (watcher, key);
        Ok(())
    }

    /// May `watcher` watch the global device list? Mirrors
    /// `security_watch_devices()` of the pipe-era device series (which
    /// passed no object: "not obvious what the object should be").
    ///
    /// # Errors
    /// The errno the LSM would return; `watch_devices` fails with it.
    fn watch_devices(&self, watcher: &Cred) -> Verdict {
        let _ = watcher;
        Ok(())
    }

    /// May `watcher` watch mount `mount` and its subtree? Mirrors
    /// `security_watch_mount()` of the 2020 mount notification patches.
    ///
    /// # Errors
    /// The errno the LSM would return; `watch_mount` fails with it.
    fn watch_mount(&self, watcher: &Cred, mount: &WatchedObject<'_>) -> Verdict {
        let _ = (watcher, mount);
        Ok(())
    }

    /// May `watcher` watch superblock `sb`? Mirrors `security_watch_sb()`.
    ///
    /// # Errors
    /// The errno the LSM would return; `watch_sb` fails with it.
    fn watch_sb(&self, watcher: &Cred, sb: &WatchedObject<'_>) -> Verdict {
        let _ = (watcher, sb);
        Ok(())
    }

    /// May a record caused by `source` be delivered to a watch set by
    /// `watcher`? Mirrors `security_post_notification()`; an error makes the
    /// watch silently get nothing. Never called for META records.
    ///
    /// # Errors
    /// The errno the LSM would return (`EACCES`, `EPERM`); the post path
    /// counts it and drops the copy.
    fn post_notification(&self, watcher: &Cred, source: &Cred, n: &Notification) -> Verdict {
        let _ = (watcher, source, n);
        Ok(())
    }

    /// This policy's generation for the post path's verdict cache: a
    /// number no other policy instance (or this one after any change of
    /// its rules) returns, or 0 for "never cache my answers" (the
    /// default). See [`Policy::post_allowed_by_label`].
    fn generation(&self) -> u64 {
        0
    }

    /// Does [`Policy::post_notification`] allow every non-META record to
    /// `watcher` from *any* source whose label is `source_label`, whatever
    /// else the source's credentials hold, for as long as
    /// [`Policy::generation`] stays the same? True lets the post path
    /// remember the answer on the watch and skip the hook for the next
    /// such source (the kernel's LSMs resolve labels to SIDs once for the
    /// same reason). The default, false, caches nothing.
    fn post_allowed_by_label(&self, watcher: &Cred, source_label: Option<&str>) -> bool {
        let _ = (watcher, source_label);
        false
    }
}

/// A fresh [`Policy::generation`]: even, never 0, unique in the process.
pub(crate) fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(2);
    // Relaxed: only uniqueness is needed; the policy carrying the number is
    // published to posters by its own means (a PolicySlot, an Arc).
    NEXT.fetch_add(2, std::sync::atomic::Ordering::Relaxed)
}

/// A verdict-cache key no label has ([`label_key`]'s top byte is the
/// length + 1, at most 16, or 0 for an unlabelled task): what a post
/// compares when its source's allow is not to be remembered (a label too
/// long for a key, a policy of generation 0), so no remembered allow
/// matches it and the hook is asked.
pub(crate) const NO_KEY: [u64; 2] = [0, u64::MAX];

/// A source label packed for a watch's verdict cache, or None for a label
/// too long to cache (over 15 bytes): the label's first 8 bytes, then its
/// next 7 with the length + 1 in the top byte (0 0 for an unlabelled task).
/// Built from word loads of the label itself (bytes stored one by one and
/// loaded as words would stall on store forwarding), once per label set
/// ([`Cred::set_label`]): a post reads the key its source's `Cred` keeps.
#[inline]
pub(crate) fn label_key(label: Option<&str>) -> Option<[u64; 2]> {
    let Some(l) = label else { return Some([0, 0]) };
    let b = l.as_bytes();
    let n = b.len();
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let (w0, rest) = match n {
        16.. => return None,
        8.. => (
            word(0),
            if n > 8 {
                word(n - 8) >> (8 * (16 - n))
            } else {
                0
            },
        ),
        // Overlapping loads, not a byte loop (a chain of shifts and ors
        // was a fifth of a post's fixed cost): the bytes two loads share
        // land on the same bits.
        4.. => {
            let half = |at: usize| {
                u64::from(u32::from_le_bytes(
                    b[at..at + 4].try_into().expect("4 bytes"),
                ))
            };
            (half(0) | half(n - 4) << (8 * (n - 4)), 0)
        }
        1.. => (
            u64::from(b[0])
                | u64::from(b[n / 2]) << (8 * (n / 2))
                | u64::from(b[n - 1]) << (8 * (n - 1)),
            0,
        ),
        0 => (0, 0),
    };
    Some([w0, rest | (n as u64 + 1) << 56])
}

/// [`Permissive`]'s generation: its answers never change.
const PERMISSIVE_GENERATION: u64 = 1;

/// The policy of a kernel without an LSM: everything is allowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Permissive;

impl Policy for Permissive {
    fn name(&self) -> &str {
        "permissive"
    }

    fn generation(&self) -> u64 {
        PERMISSIVE_GENERATION
    }

    fn post_allowed_by_label(&self, _: &Cred, _: Option<&str>) -> bool {
        true
    }
}

/// Several policies at once: every one must allow (the kernel's LSM
/// stacking); the first denial is the answer.
pub struct Stack {
    policies: Vec<std::sync::Arc<dyn Policy>>,
    name: String,
}

impl Stack {
    /// A stack of `policies`, consulted in order.
    pub fn new(policies: Vec<std::sync::Arc<dyn Policy>>) -> Self {
        let name = policies
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join("+");
        Stack { policies, name }
    }

    fn all(&self, f: impl Fn(&dyn Policy) -> Verdict) -> Verdict {
        self.policies.iter().try_for_each(|p| f(&**p))
    }
}

impl Policy for Stack {
    fn name(&self) -> &str {
        &self.name
    }

    fn watch_key(&self, watcher: &Cred, key: &WatchedObject<'_>) -> Verdict {
        self.all(|p| p.watch_key(watcher, key))
    }

    fn watch_devices(&self, watcher: &Cred) -> Verdict {
        self.all(|p| p.watch_devices(watcher))
    }

    fn watch_mount(&self, watcher: &Cred, mount: &WatchedObject<'_>) -> Verdict {
        self.all(|p| p.watch_mount(watcher, mount))
    }

    fn watch_sb(&self, watcher: &Cred, sb: &WatchedObject<'_>) -> Verdict {
        self.all(|p| p.watch_sb(watcher, sb))
    }

    fn post_notification(&self, watcher: &Cred, source: &Cred, n: &Notification) -> Verdict {
        self.all(|p| p.post_notification(watcher, source, n))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::label_key;

    /// Two labels have the same key only if they are the same label (or
    /// both too long to have one), and unlabelled differs from every label.
    #[test]
    fn lsm_label_key_tells_labels_apart() {
        let labels = [
            None,
            Some(""),
            Some("a"),
            Some("a\0"),
            Some("poster"),
            Some("poster\0"),
            Some("watcher"),
            Some("12345678"),
            Some("123456789"),
            Some("12345678\0"),
            Some("123456789abcdef"),
            Some("123456789abcdeF"),
        ];
        for (i, a) in labels.iter().enumerate() {
            for (j, b) in labels.iter().enumerate() {
                assert_eq!(label_key(*a) == label_key(*b), i == j, "{a:?} {b:?}");
            }
        }
        assert_eq!(label_key(Some("123456789abcdef0")), None);
    }

    /// The key a `Cred` keeps is always its label's: set, reset, cleared,
    /// and carried by a clone (the verdict caches trust it).
    #[test]
    fn lsm_cred_label_key_follows_set_label() {
        let mut c = super::Cred::root();
        assert_eq!(c.label_key(), label_key(None));
        for l in [
            Some("poster"),
            Some("watcher"),
            Some("123456789abcdef0"),
            None,
            Some(""),
        ] {
            c.set_label(l.map(str::to_string));
            assert_eq!(c.label(), l);
            assert_eq!(c.label_key(), label_key(l), "{l:?}");
            let d = c.clone();
            assert_eq!(d.label_key(), label_key(l), "a clone's, {l:?}");
        }
    }

    proptest::proptest! {
        /// The key is the label's bytes packed little-endian into two
        /// words, its length + 1 in the top byte, whatever loads build it.
        #[test]
        fn lsm_label_key_packs_the_bytes(label in "[a-z0-9_\\-]{0,15}") {
            let packed = label
                .bytes()
                .enumerate()
                .fold(0u128, |k, (i, c)| k | u128::from(c) << (8 * i))
                | (label.len() as u128 + 1) << 120;
            let want = [packed as u64, (packed >> 64) as u64];
            proptest::prop_assert_eq!(label_key(Some(&label)), Some(want));
        }
    }
}

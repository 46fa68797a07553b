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
    /// [`label_id`] of `label`, made when the label is set (once per
    /// task, not per event: the post path's verdict caches compare it).
    label_id: u64,
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
            label_id: label_id(None),
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
        self.label_id = label_id(label.as_deref());
        self.label = label;
    }

    /// The label's id for the post path's verdict caches ([`NO_LABEL_ID`]:
    /// none could be given), made by [`Cred::set_label`].
    #[inline(always)]
    pub(crate) fn label_id(&self) -> u64 {
        self.label_id
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

/// A verdict-cache key no remembered allow holds: what a post compares
/// when its source's allow is not to be remembered (a policy generation
/// too big for [`verdict_key`], a label with no id), so the hook is
/// asked. A remembered key has a label id below [`NO_LABEL_ID`] in its
/// low half, so it is never this.
pub(crate) const NO_KEY: u64 = u64::MAX;

/// What a watch's verdict cache holds before it remembers an allow: a
/// word no [`verdict_key`] is (its low half is all ones, as only
/// [`NO_LABEL_ID`]'s is, and its high half is not).
pub(crate) const NO_VERDICT: u64 = u32::MAX as u64;

/// The label id of no label: [`label_id`] ran out of ids (or could not
/// take the table's lock), so the label's allows are never remembered.
/// All ones, so that [`verdict_key`] of it is [`NO_KEY`] without a test.
pub(crate) const NO_LABEL_ID: u64 = u64::MAX;

/// The word a post compares with a watch's verdict cache: the policy's
/// generation (below 2^32) in the high half, the source label's id (below
/// 2^32 − 1) in the low half; [`NO_KEY`] when the generation does not fit
/// or the label has no id. One test per event: a key of generation 0
/// (the policy remembers nothing) is made as any other, and
/// [`remembered`] keeps it out of the caches, so it never matches one.
#[inline(always)]
pub(crate) fn verdict_key(generation: u64, label_id: u64) -> u64 {
    if generation >> 32 != 0 {
        return NO_KEY;
    }
    // NO_LABEL_ID is all ones: the key is then NO_KEY.
    generation << 32 | label_id
}

/// May a watch's cache remember an allow under `key` (a [`verdict_key`])?
/// Not for generation 0, nor for [`NO_KEY`]: so a cache holds only keys
/// with a generation in 1..2^32 and a label id, and a key made for
/// anything else never matches one.
#[inline]
pub(crate) fn remembered(key: u64) -> bool {
    key >> 32 != 0 && key != NO_KEY
}

/// Gives up on the label table's lock after this many tries (each after
/// a yield): a lock held that long is one a forked child inherited from
/// a thread that no longer exists.
const LABEL_TABLE_TRIES: usize = 1 << 16;

/// The id of `label` for the post path's verdict caches: 0 for an
/// unlabelled task, otherwise the label's place in a process-wide table
/// (two labels get the same id only if they are the same string), or
/// [`NO_LABEL_ID`] when the table is full or its lock cannot be had.
/// Made once per label set ([`Cred::set_label`]), never on the post
/// path. The table is never emptied, as Smack's own list of the labels
/// it has seen (`smack_known_list`, security/smack/smack_access.c) is
/// never freed: each label the process ever set costs its bytes once.
pub(crate) fn label_id(label: Option<&str>) -> u64 {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static TABLE: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
    let Some(l) = label else { return 0 };
    for _ in 0..LABEL_TABLE_TRIES {
        let mut t = match TABLE.try_lock() {
            Ok(t) => t,
            // A panic under the lock left the table as it was (an insert
            // is the only write): still whole.
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                std::thread::yield_now();
                continue;
            }
        };
        let t = t.get_or_insert_with(HashMap::new);
        if let Some(&id) = t.get(l) {
            return id;
        }
        // Ids 1.. in the order labels are first set; NO_LABEL_ID once
        // they run out.
        let id = t.len() as u64 + 1;
        if id >= u64::from(u32::MAX) {
            return NO_LABEL_ID;
        }
        t.insert(l.to_string(), id);
        return id;
    }
    NO_LABEL_ID
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
    use super::{label_id, remembered, verdict_key, NO_KEY, NO_LABEL_ID, NO_VERDICT};

    /// Two labels have the same id only if they are the same label (long
    /// ones included), unlabelled differs from every label, and asking
    /// again gives the same id.
    #[test]
    fn lsm_label_id_tells_labels_apart() {
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
            Some("123456789abcdef0"),
            Some("123456789abcdef0 and a good deal longer than sixteen bytes"),
        ];
        let ids: Vec<u64> = labels.iter().map(|l| label_id(*l)).collect();
        for (i, a) in ids.iter().enumerate() {
            assert_ne!(*a, NO_LABEL_ID, "{:?}", labels[i]);
            assert_eq!(label_id(labels[i]), *a, "asked again: {:?}", labels[i]);
            for (j, b) in ids.iter().enumerate() {
                assert_eq!(a == b, i == j, "{:?} {:?}", labels[i], labels[j]);
            }
        }
    }

    /// The key a `Cred` keeps is always its label's: set, reset, cleared,
    /// and carried by a clone (the verdict caches trust it).
    #[test]
    fn lsm_cred_label_id_follows_set_label() {
        let mut c = super::Cred::root();
        assert_eq!(c.label_id(), label_id(None));
        for l in [
            Some("poster"),
            Some("watcher"),
            Some("123456789abcdef0"),
            None,
            Some(""),
        ] {
            c.set_label(l.map(str::to_string));
            assert_eq!(c.label(), l);
            assert_eq!(c.label_id(), label_id(l), "{l:?}");
            let d = c.clone();
            assert_eq!(d.label_id(), label_id(l), "a clone's, {l:?}");
        }
    }

    /// A remembered key is never NO_KEY nor a new cache's NO_VERDICT,
    /// tells generations and labels apart, and what must not be
    /// remembered (generation 0 or too big, a label without an id) is
    /// never a remembered key.
    #[test]
    fn lsm_verdict_key_is_exact() {
        let top = u64::from(u32::MAX);
        for (g, id) in [(1, 0), (2, 0), (2, 1), (4, 1), (top, top - 1)] {
            let k = verdict_key(g, id);
            assert!(remembered(k), "{g} {id}");
            assert!(k != NO_KEY && k != NO_VERDICT, "{g} {id}");
            assert_eq!((k >> 32, k & top), (g, id));
        }
        assert_eq!(verdict_key(top + 1, 1), NO_KEY);
        assert_eq!(verdict_key(1 << 32, 1), NO_KEY);
        assert_eq!(verdict_key(2, NO_LABEL_ID), NO_KEY);
        assert_eq!(verdict_key(top, NO_LABEL_ID), NO_KEY);
        for id in [0, 1, top - 1, NO_LABEL_ID] {
            assert!(!remembered(verdict_key(0, id)), "{id}");
            assert_ne!(verdict_key(0, id), NO_VERDICT, "{id}");
        }
        assert!(!remembered(NO_KEY) && !remembered(NO_VERDICT));
    }
}

//! Mounts and superblocks: the topology a mount watch sees.
//!
//! Owns [`MountNamespace`] (mounts with ids, a parent each, a mount point,
//! a superblock, read-only and attribute flags, a change counter, and the
//! directories and files paths resolve through) and its superblocks (unique
//! 64-bit ids, shared by bind mounts). Actions mirror the VFS: mount, bind
//! mount, unmount (lazy detach of a subtree), move, remount read-only or
//! read-write, set attributes, expiry, and superblock events (read-only,
//! writeback error, quota, network).
//!
//! A mount watch (`watch_mount` of the 2020 proposals) is on one mount and
//! sees its whole subtree: an event is posted to the watches of the mount
//! it happened on and then of each ancestor, with `NOTIFY_MOUNT_IN_SUBTREE`
//! set above the first level. Each event bumps the change counter of the
//! mounts it names, and [`MountNamespace::snapshot`] returns {id, counter}
//! for a whole subtree in one call (the fsinfo idea of seed 001), so a
//! consumer that saw a loss record can find exactly what changed.

use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use watchq_core::uapi::{WATCH_INFO_FLAG_0, WATCH_INFO_FLAG_1, WATCH_INFO_FLAG_2};
use watchq_core::{
    post_watch_notification, remove_watch_list, watch_or_unwatch, Cred, Errno, Notification,
    Policy, Result, WatchList, WatchQueue, WatchedObject,
};

/// A mount's id (`mnt_id`).
pub type MountId = u64;

/// Mount notification subtypes (`enum mount_notification_subtype`).
pub use watchq_core::uapi::mount as subtype;
/// Superblock notification subtypes.
pub use watchq_core::uapi::sb as sb_subtype;

/// `NOTIFY_MOUNT_IN_SUBTREE`: the event was below the watched mount.
pub const MOUNT_IN_SUBTREE: u32 = WATCH_INFO_FLAG_0;
/// `NOTIFY_MOUNT_IS_NOW_RO`.
pub const MOUNT_IS_NOW_RO: u32 = WATCH_INFO_FLAG_1;
/// `NOTIFY_MOUNT_IS_SUBMOUNT`.
pub const MOUNT_IS_SUBMOUNT: u32 = WATCH_INFO_FLAG_2;
/// `NOTIFY_SUPERBLOCK_IS_NOW_RO`.
pub const SB_IS_NOW_RO: u32 = WATCH_INFO_FLAG_0;

/// `AT_NO_AUTOMOUNT`.
pub const AT_NO_AUTOMOUNT: u32 = 0x800;
/// `AT_EMPTY_PATH`.
pub const AT_EMPTY_PATH: u32 = 0x1000;

/// One mount.
#[derive(Debug)]
struct Mount {
    parent: Option<MountId>,
    mountpoint: String,
    sb: u64,
    readonly: bool,
    attrs: u64,
    changes: u64,
    watchers: Arc<WatchList>,
}

/// One superblock.
#[derive(Debug)]
struct Superblock {
    fstype: String,
    readonly: bool,
    label: Option<String>,
    watchers: Arc<WatchList>,
}

/// What a consumer can learn about a mount (`fsinfo` in spirit).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MountInfo {
    /// The mount.
    pub id: MountId,
    /// Its parent (None for the root).
    pub parent: Option<MountId>,
    /// Where it is mounted.
    pub mountpoint: String,
    /// Its superblock.
    pub sb: u64,
    /// Mounted read-only.
    pub readonly: bool,
    /// Mount attributes.
    pub attrs: u64,
    /// Change counter.
    pub changes: u64,
}

#[derive(Debug)]
struct Ns {
    mounts: BTreeMap<MountId, Mount>,
    sbs: BTreeMap<u64, Superblock>,
    dirs: BTreeSet<String>,
    files: BTreeSet<String>,
    next_mount: MountId,
    next_sb: u64,
}

/// A mount namespace (shared by a process and its forked children).
#[derive(Debug)]
pub struct MountNamespace {
    ns: Mutex<Ns>,
    system: Arc<Cred>,
}

/// The root mount's id.
pub const ROOT_MOUNT: MountId = 1;

fn normalize(path: &str) -> Result<String> {
    if !path.starts_with('/') {
        return Err(Errno::ENOENT);
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(Errno::EINVAL);
    }
    Ok(format!("/{}", parts.join("/")))
}

fn parent_dir(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl MountNamespace {
    /// A namespace with a root mount of a `rootfs` superblock and the
    /// directories `/`, `/mnt`, `/tmp`; events are posted as `system`.
    pub fn new(system: Cred) -> Arc<Self> {
        let mut ns = Ns {
            mounts: BTreeMap::new(),
            sbs: BTreeMap::new(),
            dirs: ["/", "/mnt", "/tmp"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            files: BTreeSet::new(),
            next_mount: ROOT_MOUNT + 1,
            next_sb: 0x1000,
        };
        ns.sbs.insert(
            0x1000,
            Superblock {
                fstype: "rootfs".into(),
                readonly: false,
                label: None,
                watchers: WatchList::new(),
            },
        );
        ns.next_sb += 1;
        ns.mounts.insert(
            ROOT_MOUNT,
            Mount {
                parent: None,
                mountpoint: "/".into(),
                sb: 0x1000,
                readonly: false,
                attrs: 0,
                changes: 0,
                watchers: WatchList::new(),
            },
        );
        Arc::new(MountNamespace {
            ns: Mutex::new(ns),
            system: Arc::new(system),
        })
    }

    /// Makes a directory.
    ///
    /// # Errors
    /// `ENOENT` (no parent), `ENOTDIR` (parent is a file), `EEXIST`.
    pub fn mkdir(&self, path: &str) -> Result<()> {
        let p = normalize(path)?;
        let mut ns = self.ns.lock();
        ns.check_parent(&p)?;
        if ns.dirs.contains(&p) || ns.files.contains(&p) {
            return Err(Errno::EEXIST);
        }
        ns.dirs.insert(p);
        Ok(())
    }

    /// Makes a regular file.
    ///
    /// # Errors
    /// As [`MountNamespace::mkdir`].
    pub fn touch(&self, path: &str) -> Result<()> {
        let p = normalize(path)?;
        let mut ns = self.ns.lock();
        ns.check_parent(&p)?;
        if ns.dirs.contains(&p) || ns.files.contains(&p) {
            return Err(Errno::EEXIST);
        }
        ns.files.insert(p);
        Ok(())
    }

    /// The mount a directory path is on (path resolution with its errors).
    ///
    /// # Errors
    /// `ENOENT` (missing or relative), `ENOTDIR` (a file on the way, or the
    /// path itself is not a directory), `EINVAL` (`..`).
    pub fn resolve(&self, path: &str) -> Result<MountId> {
        let p = normalize(path)?;
        let ns = self.ns.lock();
        ns.check_parent(&p)?;
        if ns.files.contains(&p) {
            return Err(Errno::ENOTDIR);
        }
        if !ns.dirs.contains(&p) {
            return Err(Errno::ENOENT);
        }
        Ok(ns.covering(&p))
    }

    /// Information about mount `id`.
    pub fn info(&self, id: MountId) -> Option<MountInfo> {
        let ns = self.ns.lock();
        ns.mounts.get(&id).map(|m| ns.info_of(id, m))
    }

    /// {id, change counter} of mount `top` and every mount below it.
    ///
    /// # Errors
    /// `ENOENT`: no such mount.
    pub fn snapshot(&self, top: MountId) -> Result<Vec<(MountId, u64)>> {
        let ns = self.ns.lock();
        if !ns.mounts.contains_key(&top) {
            return Err(Errno::ENOENT);
        }
        Ok(ns
            .subtree(top)
            .into_iter()
            .map(|id| (id, ns.mounts[&id].changes))
            .collect())
    }

    /// Every mount now.
    pub fn mounts(&self) -> Vec<MountInfo> {
        let ns = self.ns.lock();
        ns.mounts.iter().map(|(&id, m)| ns.info_of(id, m)).collect()
    }

    /// The superblock of the mount a path is on.
    ///
    /// # Errors
    /// As [`MountNamespace::resolve`].
    pub fn sb_of(&self, path: &str) -> Result<u64> {
        let id = self.resolve(path)?;
        Ok(self.ns.lock().mounts[&id].sb)
    }

    /// `watch_mount` once the arguments are checked: watch the mount `path`
    /// is on (and its subtree) by `queue`; tag −1 removes the watch.
    ///
    /// # Errors
    /// Path errors, the policy's `watch_mount`, `EBUSY`, `EAGAIN`, `EBADSLT`.
    pub fn watch_mount(
        &self,
        path: &str,
        queue: &Arc<WatchQueue>,
        tag: i32,
        cred: &Cred,
        policy: &dyn Policy,
        limit: u64,
    ) -> Result<()> {
        let id = self.resolve(path)?;
        let list = self.ns.lock().mounts[&id].watchers.clone();
        let object = WatchedObject {
            id,
            uid: 0,
            gid: 0,
            label: None,
        };
        watch_or_unwatch(&list, queue, id, tag, cred, limit, || {
            policy.watch_mount(cred, &object)
        })
    }

    /// `watch_sb`: watch the superblock `path` is on; tag −1 removes it.
    ///
    /// # Errors
    /// Path errors, the policy's `watch_sb`, `EBUSY`, `EAGAIN`, `EBADSLT`.
    pub fn watch_sb(
        &self,
        path: &str,
        queue: &Arc<WatchQueue>,
        tag: i32,
        cred: &Cred,
        policy: &dyn Policy,
        limit: u64,
    ) -> Result<()> {
        let sb = self.sb_of(path)?;
        let list = self.ns.lock().sbs[&sb].watchers.clone();
        let label = self.ns.lock().sbs[&sb].label.clone();
        let object = WatchedObject {
            id: sb,
            uid: 0,
            gid: 0,
            label: label.as_deref(),
        };
        watch_or_unwatch(&list, queue, sb, tag, cred, limit, || {
            policy.watch_sb(cred, &object)
        })
    }

    /// Mounts a new `fstype` superblock at directory `target`.
    ///
    /// # Errors
    /// Path errors of `target`.
    pub fn mount(
        &self,
        fstype: &str,
        target: &str,
        readonly: bool,
        policy: &dyn Policy,
    ) -> Result<MountId> {
        self.attach(target, None, fstype, readonly, policy)
    }

    /// Bind-mounts the mount `source` is on at `target` (the superblock is shared).
    ///
    /// # Errors
    /// Path errors of either path.
    pub fn bind(&self, source: &str, target: &str, policy: &dyn Policy) -> Result<MountId> {
        let sb = self.sb_of(source)?;
        self.attach(target, Some(sb), "", false, policy)
    }

    fn attach(
        &self,
        target: &str,
        sb: Option<u64>,
        fstype: &str,
        readonly: bool,
        policy: &dyn Policy,
    ) -> Result<MountId> {
        let parent = self.resolve(target)?;
        let t = normalize(target)?;
        let mut ns = self.ns.lock();
        let sb = match sb {
            Some(sb) => sb,
            None => {
                let id = ns.next_sb;
                ns.next_sb += 1;
                ns.sbs.insert(
                    id,
                    Superblock {
                        fstype: fstype.to_string(),
                        readonly,
                        label: None,
                        watchers: WatchList::new(),
                    },
                );
                id
            }
        };
        let id = ns.next_mount;
        ns.next_mount += 1;
        ns.mounts.insert(
            id,
            Mount {
                parent: Some(parent),
                mountpoint: t,
                sb,
                readonly,
                attrs: 0,
                changes: 0,
                watchers: WatchList::new(),
            },
        );
        self.event(&mut ns, parent, subtype::NEW_MOUNT, id, 0, policy);
        Ok(id)
    }

    /// Unmounts the mount at `target` (the mount whose mount point it is);
    /// `lazy` detaches its whole subtree, else it must have no children.
    /// Watches on the unmounted mounts are removed (removal records), and a
    /// superblock no mount uses any more is deactivated, removing its watches.
    ///
    /// # Errors
    /// `EINVAL` (not a mount point, or the root), `EBUSY` (children, not lazy), path errors.
    pub fn unmount(&self, target: &str, lazy: bool, policy: &dyn Policy) -> Result<()> {
        self.detach(target, lazy, subtype::UNMOUNT, policy)
    }

    /// The mount at `target` expires (automount expiry): EXPIRY, then it is gone.
    ///
    /// # Errors
    /// As [`MountNamespace::unmount`] without `lazy`.
    pub fn expire(&self, target: &str, policy: &dyn Policy) -> Result<()> {
        self.detach(target, false, subtype::EXPIRY, policy)
    }

    fn mount_at(&self, ns: &Ns, target: &str) -> Result<MountId> {
        let t = normalize(target)?;
        ns.mounts
            .iter()
            .filter(|(_, m)| m.mountpoint == t && m.parent.is_some())
            .map(|(&id, _)| id)
            .max()
            .ok_or(Errno::EINVAL)
    }

    fn detach(&self, target: &str, lazy: bool, st: u8, policy: &dyn Policy) -> Result<()> {
        self.resolve(target)?;
        let mut ns = self.ns.lock();
        let id = self.mount_at(&ns, target)?;
        let below = ns.subtree(id);
        if below.len() > 1 && !lazy {
            return Err(Errno::EBUSY);
        }
        // As umount_tree(): each mount of the detached subtree is reported
        // on its parent, the top one first.
        for &m in &below {
            let parent = ns.mounts[&m].parent.expect("not the root");
            let kind = if m == id { st } else { subtype::UNMOUNT };
            self.event(&mut ns, parent, kind, m, 0, policy);
        }
        for m in below.into_iter().rev() {
            let gone = ns.mounts.remove(&m).expect("in the subtree");
            remove_watch_list(&gone.watchers, m);
            if !ns.mounts.values().any(|x| x.sb == gone.sb) {
                if let Some(sb) = ns.sbs.remove(&gone.sb) {
                    remove_watch_list(&sb.watchers, gone.sb);
                }
            }
        }
        Ok(())
    }

    /// Moves the mount at `from` to directory `to`: MOVE_FROM on the old
    /// parent, MOVE_TO on the new one.
    ///
    /// # Errors
    /// `EINVAL` (not a mount point, or into its own subtree), path errors.
    pub fn move_mount(&self, from: &str, to: &str, policy: &dyn Policy) -> Result<()> {
        let new_parent = self.resolve(to)?;
        let t = normalize(to)?;
        let mut ns = self.ns.lock();
        let id = self.mount_at(&ns, from)?;
        if ns.subtree(id).contains(&new_parent) {
            return Err(Errno::EINVAL);
        }
        let old_parent = ns.mounts[&id].parent.expect("not the root");
        self.event(&mut ns, old_parent, subtype::MOVE_FROM, id, 0, policy);
        let m = ns.mounts.get_mut(&id).expect("exists");
        m.parent = Some(new_parent);
        m.mountpoint = t;
        self.event(&mut ns, new_parent, subtype::MOVE_TO, id, 0, policy);
        Ok(())
    }

    /// Remounts the mount `path` is on read-only or read-write: READONLY
    /// with IS_NOW_RO when it became read-only.
    ///
    /// # Errors
    /// Path errors.
    pub fn remount(&self, path: &str, readonly: bool, policy: &dyn Policy) -> Result<()> {
        let id = self.resolve(path)?;
        let mut ns = self.ns.lock();
        ns.mounts.get_mut(&id).expect("resolved").readonly = readonly;
        let flags = if readonly { MOUNT_IS_NOW_RO } else { 0 };
        self.event(&mut ns, id, subtype::READONLY, 0, flags, policy);
        Ok(())
    }

    /// Sets the attributes of the mount `path` is on: SETATTR.
    ///
    /// # Errors
    /// Path errors.
    pub fn setattr(&self, path: &str, attrs: u64, policy: &dyn Policy) -> Result<()> {
        let id = self.resolve(path)?;
        let mut ns = self.ns.lock();
        ns.mounts.get_mut(&id).expect("resolved").attrs = attrs;
        self.event(&mut ns, id, subtype::SETATTR, 0, 0, policy);
        Ok(())
    }

    /// Posts a mount event on `on` and its ancestors, bumping the counters
    /// of `on` and `aux`. Mirrors `notify_mount()`.
    fn event(
        &self,
        ns: &mut Ns,
        on: MountId,
        st: u8,
        aux: MountId,
        flags: u32,
        policy: &dyn Policy,
    ) {
        for id in [on, aux] {
            if let Some(m) = ns.mounts.get_mut(&id) {
                m.changes += 1;
            }
        }
        let mut at = Some(on);
        let mut level = 0;
        while let Some(id) = at {
            let Some(m) = ns.mounts.get(&id) else { break };
            let f = flags | if level > 0 { MOUNT_IN_SUBTREE } else { 0 };
            let n = Notification::mount(st, on, aux, f);
            post_watch_notification(Some(&m.watchers), &n, &self.system, id, policy);
            at = m.parent;
            level += 1;
        }
    }

    /// A superblock event on the superblock `path` is on: READONLY (flag),
    /// ERROR (`error`, `cookie`), EDQUOT, NETWORK. READONLY also changes
    /// the superblock's state.
    ///
    /// # Errors
    /// Path errors; `EINVAL` for an unknown subtype.
    pub fn sb_event(
        &self,
        path: &str,
        st: u8,
        error: u32,
        cookie: u32,
        policy: &dyn Policy,
    ) -> Result<()> {
        let sb = self.sb_of(path)?;
        let mut ns = self.ns.lock();
        let s = ns.sbs.get_mut(&sb).expect("resolved");
        let n = match st {
            sb_subtype::READONLY => {
                s.readonly = error != 0;
                Notification::superblock(st, sb, if s.readonly { SB_IS_NOW_RO } else { 0 }, None)
            }
            sb_subtype::ERROR => Notification::superblock(st, sb, 0, Some((error, cookie))),
            sb_subtype::EDQUOT | sb_subtype::NETWORK => Notification::superblock(st, sb, 0, None),
            _ => return Err(Errno::EINVAL),
        };
        post_watch_notification(Some(&s.watchers), &n, &self.system, sb, policy);
        Ok(())
    }

    /// Sets the security label of the superblock `path` is on.
    ///
    /// # Errors
    /// Path errors.
    pub fn set_sb_label(&self, path: &str, label: Option<String>) -> Result<()> {
        let sb = self.sb_of(path)?;
        self.ns.lock().sbs.get_mut(&sb).expect("resolved").label = label;
        Ok(())
    }

    /// The fstype of superblock `sb`.
    pub fn fstype(&self, sb: u64) -> Option<String> {
        self.ns.lock().sbs.get(&sb).map(|s| s.fstype.clone())
    }
}

impl Ns {
    fn check_parent(&self, p: &str) -> Result<()> {
        if p == "/" {
            return Ok(());
        }
        let mut at = String::new();
        let parts: Vec<&str> = p[1..].split('/').collect();
        for c in &parts[..parts.len() - 1] {
            at.push('/');
            at.push_str(c);
            if self.files.contains(&at) {
                return Err(Errno::ENOTDIR);
            }
            if !self.dirs.contains(&at) {
                return Err(Errno::ENOENT);
            }
        }
        let _ = parent_dir(p);
        Ok(())
    }

    /// The mount whose mount point is the longest prefix of `p` (the
    /// newest one when mounts are stacked).
    fn covering(&self, p: &str) -> MountId {
        self.mounts
            .iter()
            .filter(|(_, m)| {
                m.mountpoint == "/"
                    || p == m.mountpoint
                    || p.starts_with(&format!("{}/", m.mountpoint))
            })
            .max_by_key(|(&id, m)| (m.mountpoint.len(), id))
            .map(|(&id, _)| id)
            .unwrap_or(ROOT_MOUNT)
    }

    fn subtree(&self, top: MountId) -> Vec<MountId> {
        let mut out = vec![top];
        let mut i = 0;
        while i < out.len() {
            let cur = out[i];
            out.extend(
                self.mounts
                    .iter()
                    .filter(|(_, m)| m.parent == Some(cur))
                    .map(|(&id, _)| id),
            );
            i += 1;
        }
        out
    }

    fn info_of(&self, id: MountId, m: &Mount) -> MountInfo {
        MountInfo {
            id,
            parent: m.parent,
            mountpoint: m.mountpoint.clone(),
            sb: m.sb,
            readonly: m.readonly,
            attrs: m.attrs,
            changes: m.changes,
        }
    }
}

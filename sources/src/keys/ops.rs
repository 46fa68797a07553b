//! The key operations: add_key(2), request_key(2) and keyctl(2)'s
//! commands, each in the kernel's order of checks, each posting what the
//! kernel's `notify_key()` call sites post.

use super::perm::{
    need, sys_admin, KEY_GRP_ALL, KEY_OTH_ALL, KEY_POS_ALL, KEY_POS_LINK, KEY_POS_READ,
    KEY_POS_SEARCH, KEY_POS_SETATTR, KEY_POS_VIEW, KEY_POS_WRITE, KEY_USR_ALL, KEY_USR_VIEW,
    LOOKUP_CREATE, LOOKUP_PARTIAL,
};
use super::{Inner, Key, KeyCtx, KeyState, KeyStore, KeyType, Serial, KEY_MAX_DESC_SIZE};
use parking_lot::MutexGuard;
use std::sync::Arc;
use watchq_core::uapi::*;
use watchq_core::{watch_or_unwatch, Errno, Result, WatchList, WatchQueue, WatchedObject};

/// `KEYCTL_MOVE_EXCL`: fail if the destination has a key of the same type
/// and description.
pub const KEYCTL_MOVE_EXCL: u32 = 1;

/// Flags of [`KeyStore::move_key`].
pub type KeyctlMove = u32;

/// Largest payload add_key(2) copies in.
const ADD_KEY_PAYLOAD_MAX: usize = 1024 * 1024 - 1;
/// `KEYRING_SEARCH_MAX_DEPTH`.
const MAX_DEPTH: usize = 6;
/// Root's key quota (`root_maxkeys`, `root_maxbytes`).
const ROOT_QUOTA: (usize, usize) = (1_000_000, 25_000_000);

/// The permission mask the kernel gives a key it creates for a user.
fn default_perm(t: KeyType) -> u32 {
    let mut p = KEY_POS_VIEW | KEY_POS_SEARCH | KEY_POS_LINK | KEY_POS_SETATTR | KEY_USR_VIEW;
    if t.readable() {
        p |= KEY_POS_READ;
    }
    if t == KeyType::Keyring || t.updatable() {
        p |= KEY_POS_WRITE;
    }
    p
}

/// A user-supplied description: `None` or empty means none; too long is
/// EINVAL; a `.`-prefixed keyring name is EPERM.
fn check_desc(type_name: &str, desc: Option<&str>) -> Result<Option<String>> {
    match desc {
        None | Some("") => Ok(None),
        Some(d) if d.len() > KEY_MAX_DESC_SIZE => Err(Errno::EINVAL),
        Some(d) if d.starts_with('.') && type_name.starts_with("keyring") => Err(Errno::EPERM),
        Some(d) => Ok(Some(d.to_string())),
    }
}

/// `reject_error` values keyctl REJECT refuses (`ERESTART*`, out of range).
fn bad_reject_error(e: i32) -> bool {
    e <= 0 || e >= 4095 || matches!(e, 512 | 513 | 514 | 516)
}

impl Inner {
    /// Does keyring `ring` reach `target` through links (cycle check)?
    /// Err(ELOOP) when the nesting gets deeper than the kernel allows.
    fn reaches(&self, from: Serial, target: Serial, depth: usize) -> Result<bool> {
        if from == target {
            return Ok(true);
        }
        let Some(k) = self.keys.get(&from) else {
            return Ok(false);
        };
        if !k.is_keyring() {
            return Ok(false);
        }
        if depth >= MAX_DEPTH {
            return Err(Errno::ELOOP);
        }
        for &l in &k.links {
            if self.reaches(l, target, depth + 1)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `__key_link_begin()` and the checks before `__key_link()`:
    /// ENOTDIR, EKEYREVOKED, EPERM (restriction), EDEADLK/ELOOP (cycle).
    fn check_link(&self, ring: Serial, key: Serial) -> Result<()> {
        let r = self.key(ring)?;
        if !r.is_keyring() {
            return Err(Errno::ENOTDIR);
        }
        if r.revoked_at.is_some() {
            return Err(Errno::EKEYREVOKED);
        }
        if r.restricted {
            return Err(Errno::EPERM);
        }
        if self.key(key)?.is_keyring() && self.reaches(key, ring, 0)? {
            return Err(Errno::EDEADLK);
        }
        Ok(())
    }

    /// `__key_link()`: links `key` into `ring`, replacing a link to a key
    /// of the same type and description. Posts LINKED.
    fn do_link(&mut self, ctx: &KeyCtx<'_>, ring: Serial, key: Serial) {
        let (t, d) = {
            let k = &self.keys[&key];
            (k.ktype, k.desc.clone())
        };
        let keys = &self.keys;
        let same: Option<usize> = keys[&ring]
            .links
            .iter()
            .position(|&l| l == key || keys.get(&l).is_some_and(|o| o.ktype == t && o.desc == d));
        let r = self.keys.get_mut(&ring).expect("checked");
        match same {
            Some(i) => r.links[i] = key,
            None => r.links.push(key),
        }
        KeyStore::notify(r, ctx, NOTIFY_KEY_LINKED, key as u32);
    }

    /// Creates a key owned by the caller with the default permissions and
    /// links it into `ring` (LINKED); nothing is left behind on failure.
    #[allow(clippy::too_many_arguments)]
    fn create_and_link(
        &mut self,
        ctx: &KeyCtx<'_>,
        ring: Serial,
        t: KeyType,
        desc: String,
        payload: Vec<u8>,
        state: KeyState,
        quota: (usize, usize),
    ) -> Result<Serial> {
        let (uid, gid) = (ctx.cred.uid, ctx.cred.gid);
        let s = self.create_key(t, desc, payload, uid, gid, default_perm(t), state, quota)?;
        if let Err(e) = self.check_link(ring, s) {
            self.remove_key(s);
            return Err(e);
        }
        self.do_link(ctx, ring, s);
        Ok(s)
    }

    /// Quota check and charge for `uid` (`key_alloc()`'s).
    fn charge(&mut self, uid: u32, bytes: usize, cfg: (usize, usize)) -> Result<()> {
        let lim = if uid == 0 { ROOT_QUOTA } else { cfg };
        let q = self.quota.entry(uid).or_default();
        if q.0 + 1 > lim.0 || q.1 + bytes > lim.1 {
            return Err(Errno::EDQUOT);
        }
        q.0 += 1;
        q.1 += bytes;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn create_key(
        &mut self,
        t: KeyType,
        desc: String,
        payload: Vec<u8>,
        uid: u32,
        gid: u32,
        perm: u32,
        state: KeyState,
        quota: (usize, usize),
    ) -> Result<Serial> {
        let charged = desc.len() + 1 + payload.len();
        self.charge(uid, charged, quota)?;
        let serial = self.insert_key(t, desc, payload, (uid, gid, perm), state, charged);
        Ok(serial)
    }

    /// Keys of `t`/`desc` found by searching `roots` recursively through
    /// keyrings the caller may search, with the search's verdict on each.
    fn search(&self, ctx: &KeyCtx<'_>, roots: &[Serial], t: KeyType, desc: &str) -> Result<Serial> {
        let mut stack: Vec<(Serial, usize)> = roots.iter().map(|&r| (r, 0)).collect();
        let mut seen = std::collections::HashSet::new();
        let mut err = Errno::ENOKEY;
        while let Some((r, depth)) = stack.pop() {
            if !seen.insert(r) {
                continue;
            }
            let Ok(ring) = self.key(r) else { continue };
            if !ring.is_keyring() || !self.permitted(ctx, ring, need::SEARCH) {
                continue;
            }
            for &l in &ring.links {
                let Some(k) = self.keys.get(&l) else { continue };
                if k.ktype == t && k.desc == desc {
                    if !self.permitted(ctx, k, need::SEARCH) {
                        err = Errno::EACCES;
                        continue;
                    }
                    if let KeyState::Negative(e) = k.state {
                        return Err(e);
                    }
                    match k.validate(self.now) {
                        Ok(()) => return Ok(l),
                        Err(e) => err = e,
                    }
                } else if k.is_keyring() && depth < MAX_DEPTH {
                    stack.push((l, depth + 1));
                }
            }
        }
        Err(err)
    }
}

/// What a key change posts: a subtype and aux, or nothing.
type Posts = Option<(u8, u32)>;

impl KeyStore {
    /// The common shape of keyctl's attribute changes: look `id` up with
    /// `flags` and `need`, let `change` check and alter the key (given the
    /// clock), and post what it says.
    fn modify(
        &self,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        flags: u32,
        need: u32,
        change: impl FnOnce(&mut Key, &KeyCtx<'_>, u64) -> Result<Posts>,
    ) -> Result<()> {
        let mut g = self.inner.lock();
        let s = self.lookup(&mut g, ctx, id, flags, need)?;
        let now = g.now;
        let k = g.key_mut(s)?;
        if let Some((subtype, aux)) = change(k, ctx, now)? {
            Self::notify(k, ctx, subtype, aux);
        }
        Ok(())
    }

    /// An optional destination keyring argument (0: none), looked up as
    /// the kernel does: created on demand, write permission needed.
    fn optional_ring(
        &self,
        g: &mut MutexGuard<'_, Inner>,
        ctx: &mut KeyCtx<'_>,
        ring: Serial,
    ) -> Result<Option<Serial>> {
        match ring {
            0 => Ok(None),
            r => self.lookup(g, ctx, r, LOOKUP_CREATE, need::WRITE).map(Some),
        }
    }

    fn quota(&self) -> (usize, usize) {
        (self.config.maxkeys, self.config.maxbytes)
    }

    /// add_key(2): creates a key in `ring`, or updates the key of the same
    /// type and description there. Returns the serial.
    ///
    /// # Errors
    /// In the kernel's order: `EINVAL` (payload over 1 MiB), `EINVAL`/`EPERM`
    /// (type name), `EINVAL`/`EPERM` (description), the keyring lookup's
    /// errors (`ENOKEY`, `EACCES`, `EKEYREVOKED`, ...), `ENODEV` (unknown
    /// type), `EINVAL` (no description), `ENOTDIR` (not a keyring),
    /// `EINVAL` (payload rejected by the type), `EPERM` (restricted
    /// keyring), `EACCES` (update without write permission), `EDQUOT`,
    /// `EDEADLK` (a keyring cycle).
    pub fn add_key(
        &self,
        ctx: &mut KeyCtx<'_>,
        type_name: &str,
        desc: Option<&str>,
        payload: &[u8],
        ring: Serial,
    ) -> Result<Serial> {
        if payload.len() > ADD_KEY_PAYLOAD_MAX {
            return Err(Errno::EINVAL);
        }
        if type_name.is_empty() {
            return Err(Errno::EINVAL);
        }
        if type_name.starts_with('.') {
            return Err(Errno::EPERM);
        }
        let desc = check_desc(type_name, desc)?;
        let mut g = self.inner.lock();
        let ring = self.lookup(&mut g, ctx, ring, LOOKUP_CREATE, need::WRITE)?;
        let t = KeyType::lookup(type_name)?;
        let desc = desc.ok_or(Errno::EINVAL)?;
        let r = g.key(ring)?;
        if !r.is_keyring() {
            return Err(Errno::ENOTDIR);
        }
        t.vet(&desc, payload)?;
        if r.restricted {
            return Err(Errno::EPERM);
        }
        if t.updatable() {
            let existing = r.links.iter().copied().find(|l| {
                g.keys.get(l).is_some_and(|k| {
                    k.ktype == t && k.desc == desc && k.revoked_at.is_none() && !k.invalidated
                })
            });
            if let Some(k) = existing {
                g.check_perm(ctx, k, need::WRITE)?;
                let key = g.key_mut(k)?;
                key.payload = payload.to_vec();
                key.state = KeyState::Positive;
                Self::notify(key, ctx, NOTIFY_KEY_UPDATED, 0);
                return Ok(k);
            }
        }
        g.create_and_link(
            ctx,
            ring,
            t,
            desc,
            payload.to_vec(),
            KeyState::Positive,
            self.quota(),
        )
    }

    /// request_key(2) without the upcall: finds a key of `type_name` and
    /// `desc` in the caller's keyrings and links it into `dest` (0: none).
    ///
    /// # Errors
    /// `EINVAL`/`EPERM` (type name), the `dest` lookup's errors, `ENODEV`
    /// (unknown type), a negative key's error, `EKEYREVOKED`/`EKEYEXPIRED`,
    /// `ENOKEY` (not found: watchq runs no `/sbin/request-key`; see
    /// [`KeyStore::construct`]), the link's errors.
    pub fn request_key(
        &self,
        ctx: &mut KeyCtx<'_>,
        type_name: &str,
        desc: &str,
        dest: Serial,
    ) -> Result<Serial> {
        KeyType::lookup(type_name)
            .map_err(|e| if e == Errno::ENODEV { Errno::ENOKEY } else { e })?;
        let mut g = self.inner.lock();
        let dest = self.optional_ring(&mut g, ctx, dest)?;
        let t = KeyType::lookup(type_name)?;
        let (_, user_session) = g.user_keyrings(ctx);
        let roots = {
            let a = &*ctx.anchors;
            let mut v: Vec<Serial> = [a.thread, a.process].into_iter().flatten().collect();
            v.push(a.session.unwrap_or(user_session));
            v
        };
        let k = g.search(ctx, &roots, t, desc)?;
        if let Some(d) = dest {
            g.check_link(d, k)?;
            g.do_link(ctx, d, k);
        }
        Ok(k)
    }

    /// The request-key helper's half of a construction: creates key
    /// `type_name`/`desc` uninstantiated, linked into `dest`, and gives the
    /// caller the authority to instantiate, negate or reject it. A watcher
    /// of `dest` sees LINKED now; lookups of the key wait until it is done.
    ///
    /// # Errors
    /// As [`KeyStore::add_key`]'s checks.
    pub fn construct(
        &self,
        ctx: &mut KeyCtx<'_>,
        type_name: &str,
        desc: &str,
        dest: Serial,
    ) -> Result<Serial> {
        let t = KeyType::lookup(type_name)?;
        let mut g = self.inner.lock();
        let dest = self.lookup(&mut g, ctx, dest, LOOKUP_CREATE, need::WRITE)?;
        let quota = self.quota();
        let s = g.create_and_link(
            ctx,
            dest,
            t,
            desc.to_string(),
            Vec::new(),
            KeyState::Uninstantiated,
            quota,
        )?;
        ctx.anchors.auth = Some(s);
        Ok(s)
    }

    /// KEYCTL_GET_KEYRING_ID.
    ///
    /// # Errors
    /// The lookup's: `EINVAL` (0 or unknown special id), `ENOKEY`, `EACCES`, ...
    pub fn get_keyring_id(&self, ctx: &mut KeyCtx<'_>, id: Serial, create: bool) -> Result<Serial> {
        let mut g = self.inner.lock();
        let flags = if create { LOOKUP_CREATE } else { 0 };
        self.lookup(&mut g, ctx, id, flags, need::SEARCH)
    }

    /// KEYCTL_JOIN_SESSION_KEYRING: a new anonymous session keyring
    /// (`None`), or the named one (created if no keyring of that name the
    /// caller may search exists).
    ///
    /// # Errors
    /// `EINVAL` (an empty name), `EDQUOT` when a new keyring is over quota.
    pub fn join_session_keyring(&self, ctx: &mut KeyCtx<'_>, name: Option<&str>) -> Result<Serial> {
        // An empty name is no name a keyring can be found or made by.
        if name == Some("") {
            return Err(Errno::EINVAL);
        }
        let mut g = self.inner.lock();
        let (uid, gid) = (ctx.cred.uid, ctx.cred.gid);
        let quota = self.quota();
        let make = |g: &mut Inner, n: &str| {
            g.create_key(
                KeyType::Keyring,
                n.to_string(),
                Vec::new(),
                uid,
                gid,
                super::perm::SESSION_PERM,
                KeyState::Positive,
                quota,
            )
        };
        let s = match name {
            None => make(&mut g, "_ses")?,
            Some(n) => {
                let found = g
                    .keys
                    .values()
                    .find(|k| {
                        k.is_keyring()
                            && k.desc == n
                            && k.validate(g.now).is_ok()
                            && g.permitted(ctx, k, need::SEARCH)
                    })
                    .map(|k| k.serial);
                match found {
                    Some(s) => s,
                    None => make(&mut g, n)?,
                }
            }
        };
        ctx.anchors.session = Some(s);
        Ok(s)
    }

    /// KEYCTL_UPDATE: replaces the payload; posts UPDATED.
    ///
    /// # Errors
    /// `EINVAL` (over 1 MiB), the lookup's (`EACCES` without write),
    /// `EOPNOTSUPP` (a keyring), `EINVAL` (payload rejected).
    pub fn update(&self, ctx: &mut KeyCtx<'_>, id: Serial, payload: &[u8]) -> Result<()> {
        if payload.len() > ADD_KEY_PAYLOAD_MAX + 1 {
            return Err(Errno::EINVAL);
        }
        self.modify(ctx, id, 0, need::WRITE, |k, _, _| {
            if !k.ktype.updatable() {
                return Err(Errno::EOPNOTSUPP);
            }
            k.ktype.vet(&k.desc, payload)?;
            k.payload = payload.to_vec();
            k.state = KeyState::Positive;
            Ok(Some((NOTIFY_KEY_UPDATED, 0)))
        })
    }

    /// KEYCTL_REVOKE: posts REVOKED the first time; the collector removes
    /// the key `gc_delay` seconds later.
    ///
    /// # Errors
    /// The lookup's with write, then setattr, permission (`EKEYREVOKED` the second time).
    pub fn revoke(&self, ctx: &mut KeyCtx<'_>, id: Serial) -> Result<()> {
        let mut g = self.inner.lock();
        let s = match self.lookup(&mut g, ctx, id, 0, need::WRITE) {
            Err(Errno::EACCES) => self.lookup(&mut g, ctx, id, 0, need::SETATTR)?,
            r => r?,
        };
        drop(g);
        // The key was found with write or setattr permission; revoke it.
        self.modify(ctx, s, LOOKUP_PARTIAL, 0, |k, _, now| {
            let first = k.revoked_at.is_none();
            k.revoked_at.get_or_insert(now);
            Ok(first.then_some((NOTIFY_KEY_REVOKED, 0)))
        })
    }

    /// KEYCTL_CHOWN: `None` leaves that id; both `None` is a no-op that
    /// posts nothing. Otherwise posts SETATTR even when nothing changes.
    ///
    /// # Errors
    /// The lookup's (setattr permission), `EACCES` (giving away or taking a
    /// group one is not in, without CAP_SYS_ADMIN), `EDQUOT`.
    pub fn chown(
        &self,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<()> {
        if uid.is_none() && gid.is_none() {
            return Ok(());
        }
        let mut g = self.inner.lock();
        let s = self.lookup(
            &mut g,
            ctx,
            id,
            LOOKUP_CREATE | LOOKUP_PARTIAL,
            need::SETATTR,
        )?;
        let k = g.key(s)?;
        if !sys_admin(ctx) {
            if uid.is_some_and(|u| u != k.uid) {
                return Err(Errno::EACCES);
            }
            if gid.is_some_and(|x| x != k.gid && !ctx.cred.in_group(x)) {
                return Err(Errno::EACCES);
            }
        }
        let (old_uid, charged) = (k.uid, k.charged);
        if let Some(u) = uid.filter(|&u| u != old_uid) {
            let quota = self.quota();
            g.charge(u, charged, quota)?;
            let q = g.quota.entry(old_uid).or_default();
            q.0 = q.0.saturating_sub(1);
            q.1 = q.1.saturating_sub(charged);
        }
        let k = g.key_mut(s)?;
        if let Some(u) = uid {
            k.uid = u;
        }
        if let Some(x) = gid {
            k.gid = x;
        }
        Self::notify(k, ctx, NOTIFY_KEY_SETATTR, 0);
        Ok(())
    }

    /// KEYCTL_SETPERM: posts SETATTR.
    ///
    /// # Errors
    /// `EINVAL` (unknown bits), the lookup's (setattr permission), `EACCES`
    /// (not the owner, without CAP_SYS_ADMIN).
    pub fn setperm(&self, ctx: &mut KeyCtx<'_>, id: Serial, perm: u32) -> Result<()> {
        if perm & !(KEY_POS_ALL | KEY_USR_ALL | KEY_GRP_ALL | KEY_OTH_ALL) != 0 {
            return Err(Errno::EINVAL);
        }
        let flags = LOOKUP_CREATE | LOOKUP_PARTIAL;
        self.modify(ctx, id, flags, need::SETATTR, |k, ctx, _| {
            if !sys_admin(ctx) && k.uid != ctx.cred.uid {
                return Err(Errno::EACCES);
            }
            k.perm = perm;
            Ok(Some((NOTIFY_KEY_SETATTR, 0)))
        })
    }

    /// KEYCTL_DESCRIBE: `type;uid;gid;perm;description`.
    ///
    /// # Errors
    /// The lookup's (view permission).
    pub fn describe(&self, ctx: &mut KeyCtx<'_>, id: Serial) -> Result<String> {
        let mut g = self.inner.lock();
        let s = self.lookup(&mut g, ctx, id, LOOKUP_PARTIAL, need::VIEW)?;
        let k = g.key(s)?;
        Ok(format!(
            "{};{};{};{:08x};{}",
            k.ktype.name(),
            k.uid as i32,
            k.gid as i32,
            k.perm,
            k.desc
        ))
    }

    /// KEYCTL_CLEAR: empties a keyring; posts CLEARED (also when empty),
    /// and no UNLINKED per key.
    ///
    /// # Errors
    /// The lookup's (write permission), `ENOTDIR` (not a keyring), `EPERM`
    /// (restricted keyring).
    pub fn clear(&self, ctx: &mut KeyCtx<'_>, id: Serial) -> Result<()> {
        self.modify(ctx, id, LOOKUP_CREATE, need::WRITE, |k, _, _| {
            if !k.is_keyring() {
                return Err(Errno::ENOTDIR);
            }
            if k.restricted {
                return Err(Errno::EPERM);
            }
            k.links.clear();
            Ok(Some((NOTIFY_KEY_CLEARED, 0)))
        })
    }

    /// KEYCTL_LINK: posts LINKED on the keyring, also when already linked.
    ///
    /// # Errors
    /// The keyring lookup's (write), the key lookup's (link), `ENOTDIR`,
    /// `EPERM` (restricted), `EDEADLK` (cycle), `ELOOP` (too deep).
    pub fn link(&self, ctx: &mut KeyCtx<'_>, id: Serial, ring: Serial) -> Result<()> {
        let mut g = self.inner.lock();
        let r = self.lookup(&mut g, ctx, ring, LOOKUP_CREATE, need::WRITE)?;
        let k = self.lookup(&mut g, ctx, id, LOOKUP_CREATE, need::LINK)?;
        g.check_link(r, k)?;
        g.do_link(ctx, r, k);
        Ok(())
    }

    /// KEYCTL_UNLINK: posts UNLINKED on the keyring.
    ///
    /// # Errors
    /// The keyring lookup's (write), the key lookup's, `ENOTDIR`, `ENOENT`
    /// (not linked there).
    pub fn unlink(&self, ctx: &mut KeyCtx<'_>, id: Serial, ring: Serial) -> Result<()> {
        let mut g = self.inner.lock();
        let r = self.lookup(&mut g, ctx, ring, 0, need::WRITE)?;
        let k = self.lookup(&mut g, ctx, id, LOOKUP_PARTIAL, 0)?;
        Self::unlink_locked(&mut g, ctx, r, k)
    }

    fn unlink_locked(
        g: &mut MutexGuard<'_, Inner>,
        ctx: &KeyCtx<'_>,
        r: Serial,
        k: Serial,
    ) -> Result<()> {
        let ring = g.key_mut(r)?;
        if !ring.is_keyring() {
            return Err(Errno::ENOTDIR);
        }
        let i = ring
            .links
            .iter()
            .position(|&l| l == k)
            .ok_or(Errno::ENOENT)?;
        ring.links.remove(i);
        Self::notify(ring, ctx, NOTIFY_KEY_UNLINKED, k as u32);
        Ok(())
    }

    /// KEYCTL_SEARCH: finds `type_name`/`desc` under `ring` (recursively)
    /// and links it into `dest` (0: none).
    ///
    /// # Errors
    /// Type name errors, the keyring lookup's (search), the `dest` lookup's
    /// (write), `ENODEV`, `ENOTDIR`, `ENOKEY` (or the error of the best
    /// match: `EKEYREVOKED`, `EKEYEXPIRED`, a negative key's), `EACCES`
    /// (link permission for `dest`), the link's errors.
    pub fn search(
        &self,
        ctx: &mut KeyCtx<'_>,
        ring: Serial,
        type_name: &str,
        desc: &str,
        dest: Serial,
    ) -> Result<Serial> {
        if type_name.is_empty() {
            return Err(Errno::EINVAL);
        }
        if type_name.starts_with('.') {
            return Err(Errno::EPERM);
        }
        let mut g = self.inner.lock();
        let r = self.lookup(&mut g, ctx, ring, 0, need::SEARCH)?;
        let dest = self.optional_ring(&mut g, ctx, dest)?;
        let t = KeyType::lookup(type_name)?;
        if !g.key(r)?.is_keyring() {
            return Err(Errno::ENOTDIR);
        }
        let k = g.search(ctx, &[r], t, desc)?;
        if let Some(d) = dest {
            g.check_perm(ctx, k, need::LINK)?;
            g.check_link(d, k)?;
            g.do_link(ctx, d, k);
        }
        Ok(k)
    }

    /// KEYCTL_READ: the payload, or a keyring's serials (4 bytes each,
    /// little-endian). The caller copies what fits its buffer; the full
    /// length is the syscall's return value.
    ///
    /// # Errors
    /// The lookup's (a negative key's error, `EKEYREVOKED`, ...; an id the
    /// lookup refuses as invalid, 0 or an unknown special id, is ENOKEY, as
    /// `keyctl_read_key()` reports a failed lookup), `EACCES` (no read
    /// permission and not possessed), `EOPNOTSUPP` (logon keys).
    pub fn read(&self, ctx: &mut KeyCtx<'_>, id: Serial) -> Result<Vec<u8>> {
        let mut g = self.inner.lock();
        let s = self.lookup(&mut g, ctx, id, 0, need::DEFER).map_err(|e| {
            if e == Errno::EINVAL {
                Errno::ENOKEY
            } else {
                e
            }
        })?;
        let k = g.key(s)?;
        if !g.permitted(ctx, k, need::READ) && !g.possessed(ctx, s) {
            return Err(Errno::EACCES);
        }
        if !k.ktype.readable() {
            return Err(Errno::EOPNOTSUPP);
        }
        k.validate(g.now)?;
        Ok(if k.is_keyring() {
            k.links.iter().flat_map(|l| l.to_le_bytes()).collect()
        } else {
            k.payload.clone()
        })
    }

    fn check_auth(ctx: &KeyCtx<'_>, id: Serial) -> Result<()> {
        match ctx.anchors.auth {
            Some(a) if a == id => Ok(()),
            _ => Err(Errno::EPERM),
        }
    }

    /// Finishes a construction: INSTANTIATED (aux as given), then LINKED
    /// into `ring` if given; the caller's authority ends; waiters wake.
    fn finish_construction(
        &self,
        g: &mut MutexGuard<'_, Inner>,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        ring: Option<Serial>,
        (state, payload, expiry): (KeyState, Vec<u8>, Option<u64>),
    ) -> Result<()> {
        if let Some(r) = ring {
            let rk = g.key(r)?;
            if !rk.is_keyring() {
                return Err(Errno::ENOTDIR);
            }
        }
        let k = g.key_mut(id)?;
        if k.state != KeyState::Uninstantiated {
            return Err(Errno::EBUSY);
        }
        k.state = state;
        k.payload = payload;
        k.expiry = expiry;
        let aux = match state {
            KeyState::Negative(e) => (-e.as_raw()) as u32,
            _ => 0,
        };
        Self::notify(k, ctx, NOTIFY_KEY_INSTANTIATED, aux);
        if let Some(r) = ring {
            g.check_link(r, id)?;
            g.do_link(ctx, r, id);
        }
        ctx.anchors.auth = None;
        self.wake_constructed();
        Ok(())
    }

    /// KEYCTL_INSTANTIATE: gives the key under construction its payload.
    ///
    /// # Errors
    /// `EINVAL` (over 1 MiB), `EPERM` (no authority over `id`), the `ring`
    /// lookup's, `EINVAL` (payload rejected), `ENOTDIR`, `EBUSY` (already
    /// instantiated).
    pub fn instantiate(
        &self,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        payload: &[u8],
        ring: Serial,
    ) -> Result<()> {
        if payload.len() > ADD_KEY_PAYLOAD_MAX {
            return Err(Errno::EINVAL);
        }
        Self::check_auth(ctx, id)?;
        let mut g = self.inner.lock();
        let ring = self.optional_ring(&mut g, ctx, ring)?;
        let k = g.key(id)?;
        k.ktype.vet(&k.desc, payload)?;
        self.finish_construction(
            &mut g,
            ctx,
            id,
            ring,
            (KeyState::Positive, payload.to_vec(), None),
        )
    }

    /// KEYCTL_REJECT (KEYCTL_NEGATE is `error` ENOKEY): negatively
    /// instantiates the key for `timeout` seconds; later lookups get `error`.
    ///
    /// # Errors
    /// `EINVAL` (an error number userspace may not use), `EPERM` (no
    /// authority), the `ring` lookup's, `ENOTDIR`, `EBUSY`.
    pub fn reject(
        &self,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        timeout: u32,
        error: i32,
        ring: Serial,
    ) -> Result<()> {
        if bad_reject_error(error) {
            return Err(Errno::EINVAL);
        }
        Self::check_auth(ctx, id)?;
        let mut g = self.inner.lock();
        let ring = self.optional_ring(&mut g, ctx, ring)?;
        // Error numbers watchq has no name for are reported as ENOKEY.
        let e = Errno::from_raw(error).unwrap_or(Errno::ENOKEY);
        let expiry = Some(g.now.saturating_add(u64::from(timeout)));
        self.finish_construction(
            &mut g,
            ctx,
            id,
            ring,
            (KeyState::Negative(e), Vec::new(), expiry),
        )
    }

    /// KEYCTL_SET_TIMEOUT: expiry `secs` from now (0: never); posts SETATTR.
    ///
    /// # Errors
    /// The lookup's (setattr permission).
    pub fn set_timeout(&self, ctx: &mut KeyCtx<'_>, id: Serial, secs: u32) -> Result<()> {
        let flags = LOOKUP_CREATE | LOOKUP_PARTIAL;
        self.modify(ctx, id, flags, need::SETATTR, |k, _, now| {
            k.expiry = (secs != 0).then(|| now.saturating_add(u64::from(secs)));
            Ok(Some((NOTIFY_KEY_SETATTR, 0)))
        })
    }

    /// KEYCTL_INVALIDATE: posts INVALIDATED; the collector removes the key
    /// at once (REMOVAL to its watchers), without UNLINKED on its keyrings.
    ///
    /// # Errors
    /// The lookup's (search permission; `ENOKEY` once invalidated).
    pub fn invalidate(&self, ctx: &mut KeyCtx<'_>, id: Serial) -> Result<()> {
        self.modify(ctx, id, 0, need::SEARCH, |k, _, _| {
            let first = !std::mem::replace(&mut k.invalidated, true);
            Ok(first.then_some((NOTIFY_KEY_INVALIDATED, 0)))
        })
    }

    /// KEYCTL_MOVE: UNLINKED on `from`, then LINKED on `to`.
    ///
    /// # Errors
    /// `EINVAL` (flags), the lookups' (link on the key, write on both
    /// keyrings), `ENOTDIR`, `ENOENT` (not in `from`), `EEXIST`
    /// (KEYCTL_MOVE_EXCL and `to` has a key of that type and description),
    /// `EPERM`, `EDEADLK`.
    pub fn move_key(
        &self,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        from: Serial,
        to: Serial,
        flags: KeyctlMove,
    ) -> Result<()> {
        if flags & !KEYCTL_MOVE_EXCL != 0 {
            return Err(Errno::EINVAL);
        }
        let mut g = self.inner.lock();
        let k = self.lookup(&mut g, ctx, id, LOOKUP_CREATE | LOOKUP_PARTIAL, need::LINK)?;
        let f = self.lookup(&mut g, ctx, from, 0, need::WRITE)?;
        let t = self.lookup(&mut g, ctx, to, LOOKUP_CREATE, need::WRITE)?;
        if f == t {
            return Ok(());
        }
        if !g.key(t)?.is_keyring() || !g.key(f)?.is_keyring() {
            return Err(Errno::ENOTDIR);
        }
        if !g.key(f)?.links.contains(&k) {
            return Err(Errno::ENOENT);
        }
        let (kt, kd) = {
            let key = g.key(k)?;
            (key.ktype, key.desc.clone())
        };
        let clash = g
            .key(t)?
            .links
            .iter()
            .any(|l| *l != k && g.keys.get(l).is_some_and(|o| o.ktype == kt && o.desc == kd));
        if clash && flags & KEYCTL_MOVE_EXCL != 0 {
            return Err(Errno::EEXIST);
        }
        g.check_link(t, k)?;
        Self::unlink_locked(&mut g, ctx, f, k)?;
        g.do_link(ctx, t, k);
        Ok(())
    }

    /// KEYCTL_RESTRICT_KEYRING with no type: refuse every further link;
    /// posts SETATTR.
    ///
    /// # Errors
    /// `EINVAL` (a restriction without a type), the lookup's (setattr),
    /// `ENOTDIR`, `ENOENT` (any key type: watchq's types have no
    /// restriction schemes), `EEXIST` (already restricted).
    pub fn restrict_keyring(
        &self,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        type_name: Option<&str>,
        restriction: Option<&str>,
    ) -> Result<()> {
        if restriction.is_some() && type_name.is_none() {
            return Err(Errno::EINVAL);
        }
        self.modify(ctx, id, 0, need::SETATTR, |k, _, _| {
            if !k.is_keyring() {
                return Err(Errno::ENOTDIR);
            }
            if type_name.is_some() {
                return Err(Errno::ENOENT);
            }
            if k.restricted {
                return Err(Errno::EEXIST);
            }
            k.restricted = true;
            Ok(Some((NOTIFY_KEY_SETATTR, 0)))
        })
    }

    /// KEYCTL_CAPABILITIES: the two capability bytes (watchq supports
    /// invalidate, restrict and move; the notifications bit follows
    /// `notifications`).
    pub fn capabilities(&self) -> [u8; 2] {
        let caps0 = 0x01 | 0x20 | 0x40 | 0x80;
        let caps1 = if self.config.notifications {
            KEYCTL_CAPS1_NOTIFICATIONS
        } else {
            0
        };
        [caps0, caps1]
    }

    /// KEYCTL_WATCH_KEY: `tag` 0..=255 adds a watch by the queue `queue()`
    /// resolves; −1 removes it (posting a removal record). `limit` is the
    /// caller's soft RLIMIT_NOFILE.
    ///
    /// # Errors
    /// In the kernel's order: `EOPNOTSUPP` (no CONFIG_KEY_NOTIFICATIONS),
    /// `EINVAL` (tag out of range), the key lookup's (view permission;
    /// `EINVAL` for 0, `ENOKEY`, `EACCES`, a negative key's error, ...),
    /// `EINVAL` (not a notification pipe), `EBUSY`/`EAGAIN`/`ENOENT`
    /// (adding), `EBADSLT` (removing a watch that is not there).
    pub fn watch_key(
        &self,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        tag: i32,
        queue: impl FnOnce() -> Result<Arc<WatchQueue>>,
        limit: u64,
    ) -> Result<()> {
        if !self.config.notifications {
            return Err(Errno::EOPNOTSUPP);
        }
        if !(-1..=255).contains(&tag) {
            return Err(Errno::EINVAL);
        }
        let mut g = self.inner.lock();
        let s = self.lookup(&mut g, ctx, id, LOOKUP_CREATE, need::VIEW)?;
        let q = queue()?;
        let k = g.key_mut(s)?;
        let oid = s as u32 as u64;
        // A key gets its watch list on its first watch (kept until it is
        // destroyed); removing from a key never watched is EBADSLT.
        let wl = if tag >= 0 {
            k.watchers.get_or_insert_with(WatchList::new).clone()
        } else {
            k.watchers.clone().ok_or(Errno::EBADSLT)?
        };
        let object = WatchedObject {
            id: oid,
            uid: k.uid,
            gid: k.gid,
            label: k.label.as_deref(),
        };
        watch_or_unwatch(&wl, &q, oid, tag, ctx.cred, limit, || {
            ctx.policy.watch_key(ctx.cred, &object)
        })
    }
}

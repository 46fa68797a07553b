//! Key permissions, possession and `lookup_user_key()`.
//!
//! Mirrors security/keys/permission.c (`key_task_permission()`) and
//! process_keys.c (`lookup_user_key()`, the special keyring ids and their
//! on-demand creation, `join_session_keyring()`'s anonymous keyring).

use super::{Inner, Key, KeyCtx, KeyState, KeyStore, KeyType, Links, Serial};
use super::{
    KEY_SPEC_GROUP_KEYRING, KEY_SPEC_PROCESS_KEYRING, KEY_SPEC_REQKEY_AUTH_KEY,
    KEY_SPEC_REQUESTOR_KEYRING, KEY_SPEC_SESSION_KEYRING, KEY_SPEC_THREAD_KEYRING,
    KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING,
};
use parking_lot::MutexGuard;
use watchq_core::lsm::caps::CAP_SYS_ADMIN;
use watchq_core::{Errno, Result};

/// `KEYRING_SEARCH_MAX_DEPTH`.
const SEARCH_MAX_DEPTH: usize = 6;

/// `KEY_POS_VIEW` and friends: the possessor byte.
pub const KEY_POS_VIEW: u32 = 0x0100_0000;
/// Possessor may read.
pub const KEY_POS_READ: u32 = 0x0200_0000;
/// Possessor may write (update, link into a keyring).
pub const KEY_POS_WRITE: u32 = 0x0400_0000;
/// Possessor may search.
pub const KEY_POS_SEARCH: u32 = 0x0800_0000;
/// Possessor may link.
pub const KEY_POS_LINK: u32 = 0x1000_0000;
/// Possessor may change attributes.
pub const KEY_POS_SETATTR: u32 = 0x2000_0000;
/// Every possessor permission.
pub const KEY_POS_ALL: u32 = 0x3f00_0000;
/// The owner may view.
pub const KEY_USR_VIEW: u32 = 0x0001_0000;
/// The owner may read.
pub const KEY_USR_READ: u32 = 0x0002_0000;
/// The owner may write.
pub const KEY_USR_WRITE: u32 = 0x0004_0000;
/// The owner may search.
pub const KEY_USR_SEARCH: u32 = 0x0008_0000;
/// The owner may link.
pub const KEY_USR_LINK: u32 = 0x0010_0000;
/// The owner may change attributes.
pub const KEY_USR_SETATTR: u32 = 0x0020_0000;
/// Every owner permission.
pub const KEY_USR_ALL: u32 = 0x003f_0000;
/// Every group permission.
pub const KEY_GRP_ALL: u32 = 0x0000_3f00;
/// Every other permission.
pub const KEY_OTH_ALL: u32 = 0x0000_003f;

/// Needed permissions, one bit per kind (the low byte's layout).
pub mod need {
    /// View the key's attributes.
    pub const VIEW: u32 = 0x01;
    /// Read the payload or the keyring's contents.
    pub const READ: u32 = 0x02;
    /// Update the payload, add or remove links.
    pub const WRITE: u32 = 0x04;
    /// Find the key in a search.
    pub const SEARCH: u32 = 0x08;
    /// Link the key into a keyring.
    pub const LINK: u32 = 0x10;
    /// Change attributes.
    pub const SETATTR: u32 = 0x20;
    /// Validate the key but leave the permission check to the caller
    /// (`KEY_DEFER_PERM_CHECK`).
    pub const DEFER: u32 = 0x80;
}

/// Lookup flag: create special keyrings that do not exist yet.
pub(crate) const LOOKUP_CREATE: u32 = 1;
/// Lookup flag: accept a key that is not (positively) instantiated.
pub(crate) const LOOKUP_PARTIAL: u32 = 2;

impl Inner {
    pub(crate) fn key(&self, s: Serial) -> Result<&Key> {
        self.keys.get(&s).ok_or(Errno::ENOKEY)
    }

    pub(crate) fn key_mut(&mut self, s: Serial) -> Result<&mut Key> {
        self.keys.get_mut(&s).ok_or(Errno::ENOKEY)
    }

    /// The keyrings a search of the caller's keyrings starts from
    /// (`search_process_keyrings()`).
    fn search_roots(&self, ctx: &KeyCtx<'_>) -> Vec<Serial> {
        let mut v = self.own_roots(ctx);
        v.extend(self.requestor_roots(ctx));
        v
    }

    /// The requestor's keyrings, for a caller that assumed the authority
    /// to instantiate a key (`search_process_keyrings_rcu()` searches them
    /// with the requestor's credentials).
    pub(crate) fn requestor_roots(&self, ctx: &KeyCtx<'_>) -> Vec<Serial> {
        ctx.anchors
            .auth
            .and_then(|a| self.constructions.get(&a))
            .map(|c| c.requestor.iter().flatten().copied().collect())
            .unwrap_or_default()
    }

    fn own_roots(&self, ctx: &KeyCtx<'_>) -> Vec<Serial> {
        let a = &*ctx.anchors;
        let mut v: Vec<Serial> = [a.thread, a.process].into_iter().flatten().collect();
        match a.session {
            Some(s) => v.push(s),
            None => {
                if let Some(&(_, us)) = self.user_rings.get(&ctx.cred.uid) {
                    v.push(us);
                }
            }
        }
        v
    }

    /// Is key `s` possessed by the caller: found by a search of its
    /// keyrings for `s` itself (`lookup_user_key()`'s possession check,
    /// `search_process_keyrings_rcu()` without state checks)? A keyring
    /// the search starts from is possessed; below it the search is
    /// `search_nested_keyrings()`'s: each keyring's own links, then its
    /// nested keyrings that grant the possessor search, never into a
    /// revoked or invalidated one, and no deeper than
    /// `KEYRING_SEARCH_MAX_DEPTH` (the links of a keyring six levels down
    /// are looked at, its nested keyrings are not). A key found through a
    /// keyring must grant the possessor search permission itself.
    pub(crate) fn possessed(&self, ctx: &KeyCtx<'_>, s: Serial) -> bool {
        let roots = self.search_roots(ctx);
        if roots.contains(&s) {
            return true;
        }
        let found = roots.iter().any(|&r| self.possessed_in(ctx, r, s, 0));
        found
            && self
                .keys
                .get(&s)
                .is_some_and(|k| perm_mask(k, ctx, true) & need::SEARCH != 0)
    }

    fn possessed_in(&self, ctx: &KeyCtx<'_>, ring: Serial, s: Serial, sp: usize) -> bool {
        let Some(r) = self.keys.get(&ring) else {
            return false;
        };
        if !r.is_keyring() || r.invalidated || r.revoked_at.is_some() {
            return false;
        }
        if r.links.contains(s) {
            return true;
        }
        for l in r.links.iter() {
            let Some(k) = self.keys.get(&l) else { continue };
            if !k.is_keyring() {
                continue;
            }
            if sp >= SEARCH_MAX_DEPTH {
                return false;
            }
            if perm_mask(k, ctx, true) & need::SEARCH != 0 && self.possessed_in(ctx, l, s, sp + 1) {
                return true;
            }
        }
        false
    }

    /// `key_task_permission()`: may the caller do `need` to `k`?
    pub(crate) fn permitted(&self, ctx: &KeyCtx<'_>, k: &Key, need: u32) -> bool {
        let possessed = self.possessed(ctx, k.serial);
        perm_mask(k, ctx, possessed) & need == need
    }

    /// `key_task_permission()` on a reference: may the caller do `need`
    /// to key `s`, possessed or not as the reference says?
    ///
    /// # Errors
    /// `EACCES`; the key's absence.
    pub(crate) fn check_ref(
        &self,
        ctx: &KeyCtx<'_>,
        s: Serial,
        possessed: bool,
        need: u32,
    ) -> Result<()> {
        if perm_mask(self.key(s)?, ctx, possessed) & need == need {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }

    pub(crate) fn alloc_serial(&mut self) -> Serial {
        loop {
            let s = self.next_serial;
            self.next_serial = if s == i32::MAX { 3 } else { s + 1 };
            if !self.keys.contains_key(&s) {
                return s;
            }
        }
    }

    /// Creates a positively instantiated keyring owned by `uid`/`gid`,
    /// charged to the owner's quota even beyond it (the kernel's
    /// `KEY_ALLOC_QUOTA_OVERRUN` for the keyrings it makes on demand).
    pub(crate) fn new_keyring(&mut self, desc: &str, uid: u32, gid: u32, perm: u32) -> Serial {
        let charged = desc.len() + 1;
        let q = self.quota.entry(uid).or_default();
        q.0 += 1;
        q.1 += charged;
        let owner = (uid, gid, perm);
        self.insert_key(
            KeyType::Keyring,
            desc.to_string(),
            Vec::new(),
            owner,
            KeyState::Positive,
            charged,
        )
    }

    /// Adds a key with a fresh serial (quota already charged).
    pub(crate) fn insert_key(
        &mut self,
        ktype: KeyType,
        desc: String,
        payload: Vec<u8>,
        (uid, gid, perm): (u32, u32, u32),
        state: KeyState,
        charged: usize,
    ) -> Serial {
        let serial = self.alloc_serial();
        self.keys.insert(
            serial,
            Key {
                serial,
                ktype,
                desc,
                payload,
                uid,
                gid,
                perm,
                state,
                revoked_at: None,
                invalidated: false,
                expiry: None,
                links: Links::default(),
                restriction: None,
                asym: None,
                enc: None,
                label: None,
                keep: false,
                not_in_quota: false,
                watchers: None,
                charged,
                made_by: super::current_call(),
            },
        );
        serial
    }

    /// Takes a key out of the store and gives its owner the quota back.
    pub(crate) fn remove_key(&mut self, s: Serial) -> Option<Key> {
        let k = self.keys.remove(&s)?;
        if k.not_in_quota {
            return Some(k);
        }
        let q = self.quota.entry(k.uid).or_default();
        q.0 = q.0.saturating_sub(1);
        q.1 = q.1.saturating_sub(k.charged);
        Some(k)
    }

    /// The caller's user and user-session keyrings, created on first use
    /// (`look_up_user_keyrings()`): `_uid.N` linked from `_uid_ses.N`.
    pub(crate) fn user_keyrings(&mut self, ctx: &KeyCtx<'_>) -> (Serial, Serial) {
        let uid = ctx.cred.uid;
        if let Some(&r) = self.user_rings.get(&uid) {
            return r;
        }
        // `user_keyring_perm`: the possessor may not change attributes.
        let all = (KEY_POS_ALL & !KEY_POS_SETATTR) | KEY_USR_ALL;
        let u = self.new_keyring(&format!("_uid.{uid}"), uid, u32::MAX, all);
        let us = self.new_keyring(&format!("_uid_ses.{uid}"), uid, u32::MAX, all);
        self.key_mut(us).expect("just made").links.insert(u);
        // The link's 4 bytes, charged beyond the quota as the keyrings were.
        let bytes = self.keys[&us].charged + 4;
        self.keys.get_mut(&us).expect("just made").charged = bytes;
        self.quota.entry(uid).or_default().1 += 4;
        self.user_rings.insert(uid, (u, us));
        self.register_user_keyrings([u, us]);
        (u, us)
    }
}

/// The permission bits that apply to the caller, possessor bits included:
/// the owner's, else the group's for a member of the key's group if the
/// key grants its group any (`key_task_permission()` looks at the group
/// only when `key->perm & KEY_GRP_ALL`), else the others'.
pub(crate) fn perm_mask(k: &Key, ctx: &KeyCtx<'_>, possessed: bool) -> u32 {
    let p = k.perm;
    let mut m = if k.uid == ctx.cred.uid {
        p >> 16
    } else if k.gid != u32::MAX && p & KEY_GRP_ALL != 0 && ctx.cred.in_group(k.gid) {
        p >> 8
    } else {
        p
    } & 0x3f;
    if possessed {
        m |= (p >> 24) & 0x3f;
    }
    m
}

/// A named session keyring `join_session_keyring(name)` makes.
pub(crate) const SESSION_PERM: u32 = KEY_POS_ALL | KEY_USR_VIEW | KEY_USR_READ | KEY_USR_LINK;
/// The anonymous `_ses` keyring (`install_session_keyring_to_cred()`, for
/// `join_session_keyring(NULL)` and a session keyring made on demand).
pub(crate) const ANON_SESSION_PERM: u32 = KEY_POS_ALL | KEY_USR_VIEW | KEY_USR_READ;
/// Thread and process keyrings.
pub(crate) const PROC_RING_PERM: u32 = KEY_POS_ALL | KEY_USR_VIEW;

impl KeyStore {
    /// `lookup_user_key()`: resolves `id` (special ids included, creating
    /// keyrings as the flags allow), waits for a key under construction
    /// unless `LOOKUP_PARTIAL`, validates it, and checks `need`.
    pub(crate) fn lookup(
        &self,
        g: &mut MutexGuard<'_, Inner>,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        flags: u32,
        need: u32,
    ) -> Result<Serial> {
        self.lookup_ref(g, ctx, id, flags, need).map(|(s, _)| s)
    }

    /// [`KeyStore::lookup`] with the reference's possession, as the
    /// kernel's `key_ref_t` carries it: a special id is possessed
    /// (`make_key_ref(key, 1)`), even the user keyrings, which the
    /// caller's keyrings need not reach; a key's number is possessed when
    /// they reach it. `need` is checked with that possession, and so is
    /// whatever a search from the reference meets (`ctx->possessed`).
    pub(crate) fn lookup_ref(
        &self,
        g: &mut MutexGuard<'_, Inner>,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        flags: u32,
        need: u32,
    ) -> Result<(Serial, bool)> {
        let uid = ctx.cred.uid;
        let gid = ctx.cred.gid;
        let s = match id {
            KEY_SPEC_THREAD_KEYRING | KEY_SPEC_PROCESS_KEYRING => {
                let slot_thread = id == KEY_SPEC_THREAD_KEYRING;
                let cur = if slot_thread {
                    ctx.anchors.thread
                } else {
                    ctx.anchors.process
                };
                match cur {
                    Some(s) => s,
                    None if flags & LOOKUP_CREATE != 0 => {
                        let name = if slot_thread { "_tid" } else { "_pid" };
                        let s = g.new_keyring(name, uid, gid, PROC_RING_PERM);
                        if slot_thread {
                            ctx.anchors.thread = Some(s);
                        } else {
                            ctx.anchors.process = Some(s);
                        }
                        s
                    }
                    None => return Err(Errno::ENOKEY),
                }
            }
            KEY_SPEC_SESSION_KEYRING => match ctx.anchors.session {
                Some(s) => s,
                None => {
                    let (_, us) = g.user_keyrings(ctx);
                    let s = if flags & LOOKUP_CREATE != 0 {
                        g.new_keyring("_ses", uid, gid, ANON_SESSION_PERM)
                    } else {
                        us
                    };
                    ctx.anchors.session = Some(s);
                    s
                }
            },
            KEY_SPEC_USER_KEYRING => g.user_keyrings(ctx).0,
            KEY_SPEC_USER_SESSION_KEYRING => g.user_keyrings(ctx).1,
            KEY_SPEC_GROUP_KEYRING => return Err(Errno::EINVAL),
            // The cred's `request_key_auth`.
            KEY_SPEC_REQKEY_AUTH_KEY => Self::auth_key(g, ctx).ok_or(Errno::ENOKEY)?,
            KEY_SPEC_REQUESTOR_KEYRING => return Err(Errno::ENOKEY),
            i if i <= 0 => return Err(Errno::EINVAL),
            i => {
                g.key(i)?;
                i
            }
        };
        if flags & LOOKUP_PARTIAL == 0 {
            // wait_for_key_construction()
            while g.key(s)?.state == KeyState::Uninstantiated {
                if ctx.anchors.auth == Some(s) && ctx.deadline.is_none() {
                    // The kernel sleeps for ever here (the oracle's helper
                    // deadlocked without its alarm); watchq says EDEADLK
                    // rather than hang. With an alarm it waits as the kernel.
                    return Err(Errno::EDEADLK);
                }
                super::sleep_constructed(&self.constructed, g, ctx)?;
            }
            if need != 0 {
                let k = g.key(s)?;
                if let KeyState::Negative(e) = k.state {
                    return Err(e);
                }
                k.validate(g.now)?;
            }
        } else if need != 0 {
            g.key(s)?.validate(g.now)?;
        }
        let possessed = id < 0 || g.possessed(ctx, s);
        if need & 0x3f != 0 {
            g.check_ref(ctx, s, possessed, need & 0x3f)?;
        }
        Ok((s, possessed))
    }

    pub(crate) fn wake_constructed(&self) {
        self.constructed.notify_all();
    }
}

/// May the caller change ownership (`CAP_SYS_ADMIN`)?
pub(crate) fn sys_admin(ctx: &KeyCtx<'_>) -> bool {
    ctx.cred.capable(CAP_SYS_ADMIN)
}

//! The key operations: add_key(2), request_key(2) and keyctl(2)'s
//! commands, each in the kernel's order of checks, each posting what the
//! kernel's `notify_key()` call sites post.

use super::asym::{self, AsymKey, IdMatch, Restriction};
use super::encrypted::{self, EncKey};
use super::perm::{
    need, perm_mask, sys_admin, KEY_GRP_ALL, KEY_OTH_ALL, KEY_POS_ALL, KEY_POS_LINK, KEY_POS_READ,
    KEY_POS_SEARCH, KEY_POS_SETATTR, KEY_POS_VIEW, KEY_POS_WRITE, KEY_USR_ALL, KEY_USR_VIEW,
    LOOKUP_CREATE, LOOKUP_PARTIAL,
};
use super::{
    perm, CallOut, Construction, Inner, Key, KeyCtx, KeyState, KeyStore, KeyType, Requested,
    Serial, KEY_MAX_DESC_SIZE,
};
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
/// Largest payload KEYCTL_UPDATE copies in (`PAGE_SIZE`).
const UPDATE_PAYLOAD_MAX: usize = 4096;
/// `KEYRING_SEARCH_MAX_DEPTH`.
const MAX_DEPTH: usize = 6;
/// What a link costs its keyring's owner (`KEYQUOTA_LINK_BYTES`).
const KEYQUOTA_LINK_BYTES: usize = 4;
/// Root's key quota at boot (`root_maxkeys`, `root_maxbytes`).
pub(crate) const ROOT_QUOTA: (usize, usize) = (1_000_000, 25_000_000);

/// What a key of type `t` with `len` bytes of payload charges its owner
/// beyond its description and NUL: the type's `quotalen` (the payload's
/// length; big_key 16 bytes whatever its size, `big_key_preparse()`; an
/// asymmetric key 100, `x509_key_preparse()`).
fn quotalen(t: KeyType, len: usize) -> usize {
    match t {
        KeyType::BigKey => 16,
        KeyType::Asymmetric => 100,
        _ => len,
    }
}

/// A `.request_key_auth` key's permissions (`request_key_auth_new()`):
/// the possessor views, reads, searches and links it, the owner views it.
const AUTH_KEY_PERM: u32 = 0x1b01_0000;

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
    /// `keyring_detect_cycle()`: would linking keyring `key` into `ring`
    /// make a cycle? A search from `key` for `ring` itself, as
    /// `search_nested_keyrings()` makes it with `DETECT_TOO_DEEP` and no
    /// permission or state checks: `key` is `ring` (EDEADLK); each keyring
    /// looks among its own links first (EDEADLK when `ring` is there), then
    /// descends into its nested keyrings in slot order, skipping revoked
    /// and invalidated ones; meeting a nested keyring at the sixth level of
    /// nesting ends the search with ELOOP.
    fn detect_cycle(&self, ring: Serial, key: Serial) -> Result<()> {
        if key == ring {
            return Err(Errno::EDEADLK);
        }
        self.detect_cycle_in(ring, key, 0)
    }

    fn detect_cycle_in(&self, ring: Serial, keyring: Serial, sp: usize) -> Result<()> {
        let Some(k) = self.keys.get(&keyring) else {
            return Ok(());
        };
        if k.invalidated || k.revoked_at.is_some() {
            return Ok(());
        }
        if k.links.contains(ring) {
            return Err(Errno::EDEADLK);
        }
        for l in k.links.iter() {
            if !self.keys.get(&l).is_some_and(Key::is_keyring) {
                continue;
            }
            if sp >= MAX_DEPTH {
                return Err(Errno::ELOOP);
            }
            self.detect_cycle_in(ring, l, sp + 1)?;
        }
        Ok(())
    }

    /// `__key_link_begin()` and the checks before `__key_link()`:
    /// ENOTDIR, EKEYREVOKED, EDQUOT (no room for a new link's 4 bytes),
    /// the keyring's restriction (see [`Inner::check_restriction`]),
    /// EDEADLK/ELOOP (cycle).
    pub(crate) fn check_link(&self, ctx: &KeyCtx<'_>, ring: Serial, key: Serial) -> Result<()> {
        let r = self.key(ring)?;
        if !r.is_keyring() {
            return Err(Errno::ENOTDIR);
        }
        if r.revoked_at.is_some() {
            return Err(Errno::EKEYREVOKED);
        }
        // `__key_link_begin()` reserves a new link's 4 bytes.
        if self.index_of(ring, key).is_none() {
            let lim = if r.uid == 0 {
                self.root_limits
            } else {
                self.limits
            };
            let used = self.quota.get(&r.uid).map_or(0, |q| q.1);
            if used + KEYQUOTA_LINK_BYTES > lim.1 {
                return Err(Errno::EDQUOT);
            }
        }
        let k = self.key(key)?;
        self.check_restriction(ctx, ring, k.ktype, k.asym.as_deref())?;
        if k.is_keyring() {
            self.detect_cycle(ring, key)?;
        }
        Ok(())
    }

    /// The keyring's restriction check (`restrict_link->check`) on a key
    /// of type `t` with asymmetric payload `asym`: `EPERM` for a keyring
    /// restricted without a type; for an asymmetric restriction, in
    /// `key_or_keyring_common()`'s and `restrict_link_by_signature()`'s
    /// order, `EOPNOTSUPP` (not an asymmetric key, or a trusted key that
    /// is neither asymmetric nor a keyring), `ENOPKG` (a signature the
    /// parser could not use), `ENOKEY` (no signer found), the signer's
    /// state (`key_validate()`: `EKEYREVOKED`, ...), then the
    /// verification's errno (`EKEYREJECTED`, `EBADMSG`, `EINVAL`).
    pub(crate) fn check_restriction(
        &self,
        ctx: &KeyCtx<'_>,
        ring: Serial,
        t: KeyType,
        asym: Option<&AsymKey>,
    ) -> Result<()> {
        let Some(res) = self.key(ring)?.restriction else {
            return Ok(());
        };
        let (trusted, check_dest) = match res {
            Restriction::Reject => return Err(Errno::EPERM),
            Restriction::BuiltinTrusted => {
                // restrict_link_by_signature() on .builtin_trusted_keys.
                let cand = match (t, asym) {
                    (KeyType::Asymmetric, Some(a)) => a,
                    _ => return Err(Errno::EOPNOTSUPP),
                };
                asym::candidate_sig(cand)?;
                let builtin = self
                    .system_roots()
                    .find(|s| {
                        self.keys
                            .get(s)
                            .is_some_and(|k| k.desc == ".builtin_trusted_keys")
                    })
                    .ok_or(Errno::ENOKEY)?;
                let signer = self.find_signer(ctx, builtin, cand).ok_or(Errno::ENOKEY)?;
                let sa = self.keys[&signer].asym.as_deref().ok_or(Errno::EINVAL)?;
                return asym::verify_signed(cand, sa);
            }
            Restriction::KeyOrKeyring { key, chain } => (key, chain),
        };
        let cand = match (t, asym) {
            (KeyType::Asymmetric, Some(a)) => a,
            _ => return Err(Errno::EOPNOTSUPP),
        };
        asym::candidate_sig(cand)?;
        let mut signer = None;
        if let Some(tk) = trusted {
            let k = self.key(tk)?;
            match k.ktype {
                KeyType::Keyring => signer = self.find_signer(ctx, tk, cand),
                KeyType::Asymmetric => {
                    let ka = k.asym.as_deref().ok_or(Errno::ENOKEY)?;
                    if asym::signed_by_ids(cand, ka) {
                        signer = Some(tk);
                    }
                }
                _ => return Err(Errno::EOPNOTSUPP),
            }
        }
        if check_dest && signer.is_none() {
            signer = self.find_signer(ctx, ring, cand);
        }
        let signer = self.key(signer.ok_or(Errno::ENOKEY)?)?;
        signer.validate(self.now)?;
        let sa = signer.asym.as_deref().ok_or(Errno::EINVAL)?;
        asym::verify_signed(cand, sa)
    }

    /// `find_asymmetric_key()`: the key in the tree under `ring` that
    /// `cand`'s AKID (or issuer) names, as `keyring_search()` finds it
    /// (own links first in slot order, then nested keyrings, passing over
    /// keys and keyrings that are revoked, invalidated or expired); every
    /// failure is "none".
    fn find_signer(&self, ctx: &KeyCtx<'_>, ring: Serial, cand: &AsymKey) -> Option<Serial> {
        let (m, second) = asym::signer_match(cand)?;
        let found = self.find_asym_in(ctx, ring, &m, 0)?;
        let fa = self.keys.get(&found)?.asym.as_deref()?;
        asym::second_id_ok(fa, &second).then_some(found)
    }

    fn find_asym_in(
        &self,
        ctx: &KeyCtx<'_>,
        ring: Serial,
        m: &IdMatch,
        sp: usize,
    ) -> Option<Serial> {
        let r = self.keys.get(&ring)?;
        // `search_nested_keyrings()` gives up only an invalidated or a
        // revoked keyring (its `descend_to_keyring` test); an expired one
        // is searched. The keys in it pass the state check (below).
        if !r.is_keyring() || r.invalidated || r.revoked_at.is_some() {
            return None;
        }
        // The search permission of the keyring searched (the starting
        // one: `keyring_search_rcu()`'s EACCES, which
        // `find_asymmetric_key()` makes "none"; a nested one: passed
        // over), and of the key found (passed over, the search goes on).
        // Possessor bits count whoever the caller is: the search starts
        // from `make_key_ref(keyring, 1)`, and every nested keyring and
        // key is judged with that possession.
        let searchable = |k: &Key| perm_mask(k, ctx, true) & need::SEARCH != 0;
        if !searchable(r) {
            return None;
        }
        let hit = r.links.iter().find(|l| {
            self.keys.get(l).is_some_and(|k| {
                k.validate(self.now).is_ok()
                    && k.asym.as_deref().is_some_and(|a| m.hits(a))
                    && searchable(k)
            })
        });
        if hit.is_some() {
            return hit;
        }
        if sp >= MAX_DEPTH {
            return None;
        }
        r.links
            .iter()
            .filter(|l| self.keys.get(l).is_some_and(Key::is_keyring))
            .find_map(|l| self.find_asym_in(ctx, l, m, sp + 1))
    }

    /// Where keyring `ring` holds the key of `key`'s index key, its
    /// (type, description): a keyring is an associative array on that
    /// index (security/keys/keyring.c's `keyring_assoc_array_ops`), so it
    /// holds at most one key of each, which may be `key` or another.
    fn index_of(&self, ring: Serial, key: Serial) -> Option<usize> {
        let k = self.keys.get(&key)?;
        self.keys.get(&ring)?.links.position(|l| {
            l == key
                || self
                    .keys
                    .get(&l)
                    .is_some_and(|o| o.ktype == k.ktype && o.desc == k.desc)
        })
    }

    /// `__key_link()`: links `key` into `ring`, replacing (silently) the
    /// key of the same index there, which may be `key` itself. Posts
    /// LINKED. A replaced key that loses its last link is the collector's.
    pub(crate) fn do_link(&mut self, ctx: &KeyCtx<'_>, ring: Serial, key: Serial) {
        let same = self.index_of(ring, key);
        let r = self.keys.get_mut(&ring).expect("checked");
        match same {
            Some(i) => {
                if r.links.replace(i, key) != Some(key) {
                    self.gc_pending = true;
                }
            }
            None => {
                r.links.insert(key);
                let bytes = r.charged + KEYQUOTA_LINK_BYTES;
                // check_link made room.
                let _ = self.reserve(ring, bytes);
            }
        }
        let r = &self.keys[&ring];
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
        asym: Option<Arc<AsymKey>>,
        enc: Option<Box<EncKey>>,
    ) -> Result<Serial> {
        let (uid, gid) = (ctx.cred.uid, ctx.cred.gid);
        let s = self.create_key(t, desc, payload, uid, gid, default_perm(t), state, quota)?;
        let k = self.keys.get_mut(&s).expect("just made");
        k.asym = asym;
        if let Some(e) = enc {
            // encrypted_key_alloc()'s key_payload_reserve().
            let bytes = Inner::cost(k, e.payload_len());
            k.enc = Some(e);
            if let Err(e) = self.reserve(s, bytes) {
                self.remove_key(s);
                return Err(e);
            }
        }
        if let Err(e) = self.check_link(ctx, ring, s) {
            self.remove_key(s);
            return Err(e);
        }
        self.do_link(ctx, ring, s);
        Ok(s)
    }

    /// Changes what key `s` is charged to its owner to `bytes`
    /// (`key_payload_reserve()`): `EDQUOT` when growing past the owner's
    /// `maxbytes` (root's `root_maxbytes`), and then nothing changes.
    pub(crate) fn reserve(&mut self, s: Serial, bytes: usize) -> Result<()> {
        let limits = if self.keys.get(&s).is_some_and(|k| k.uid == 0) {
            self.root_limits
        } else {
            self.limits
        };
        let k = self.keys.get(&s).ok_or(Errno::ENOKEY)?;
        let (uid, old) = (k.uid, k.charged);
        if k.not_in_quota {
            return Ok(());
        }
        let lim = limits;
        let q = self.quota.entry(uid).or_default();
        if bytes > old && q.1 + (bytes - old) > lim.1 {
            return Err(Errno::EDQUOT);
        }
        q.1 = (q.1 + bytes).saturating_sub(old);
        self.keys.get_mut(&s).expect("looked up").charged = bytes;
        Ok(())
    }

    /// What key `k` costs with `payload`: its description, a NUL, the
    /// payload (or, for a keyring, 4 bytes a link).
    fn cost(k: &Key, payload: usize) -> usize {
        k.desc.len() + 1 + payload
    }

    /// Quota check and charge for `uid` (`key_alloc()`'s).
    fn charge(&mut self, uid: u32, bytes: usize, cfg: (usize, usize)) -> Result<()> {
        let lim = if uid == 0 { self.root_limits } else { cfg };
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
        let charged = desc.len() + 1 + quotalen(t, payload.len());
        self.charge(uid, charged, quota)?;
        let serial = self.insert_key(t, desc, payload, (uid, gid, perm), state, charged);
        Ok(serial)
    }

    /// `search_cred_keyrings_rcu()`: searches `roots` (the thread,
    /// process and session keyrings) in turn; the first key found wins.
    /// Otherwise a negative key's ENOKEY or "nothing" (EAGAIN, which the
    /// callers turn into ENOKEY) from any searchable root outranks any
    /// other error (EACCES, EKEYREVOKED, …), the later root's winning.
    ///
    /// With `skip_expired` (request_key's `KEYRING_SEARCH_SKIP_EXPIRED`)
    /// an expired key is passed over as if absent; a revoked one is not.
    ///
    /// `possessed`: the roots' possession (the caller's own keyrings are
    /// possessed; KEYCTL_SEARCH's keyring as its look-up found it), with
    /// which every keyring and key the search meets is judged
    /// (`ctx->possessed`), whether or not the caller's keyrings reach it
    /// another way.
    fn search(
        &self,
        ctx: &KeyCtx<'_>,
        roots: &[Serial],
        possessed: bool,
        want: &Want<'_>,
        skip_expired: bool,
    ) -> Result<Serial> {
        let mut ret = None;
        let mut err = Errno::EAGAIN;
        let search = Search {
            possessed,
            want,
            skip_expired,
        };
        for &r in roots {
            let Ok(ring) = self.key(r) else { continue };
            let e = if !ring.is_keyring() {
                Errno::ENOTDIR
            } else if perm_mask(ring, ctx, possessed) & need::SEARCH == 0 {
                Errno::EACCES
            } else {
                match self.search_tree(ctx, r, &search) {
                    Ok(k) => return Ok(k),
                    Err(e) => e,
                }
            };
            match e {
                Errno::EAGAIN if ret.is_some() => {}
                Errno::EAGAIN | Errno::ENOKEY => ret = Some(e),
                e => err = e,
            }
        }
        Err(ret.unwrap_or(err))
    }

    /// `search_nested_keyrings()` with `KEYRING_SEARCH_DO_STATE_CHECK`:
    /// the key of `t`/`desc` in the tree under keyring `root`. The root
    /// itself is checked first (a match there ends the search either way);
    /// then each keyring looks among its own links, and then descends into
    /// its nested keyrings in slot order (those it may search, not revoked
    /// or invalidated, at most `KEYRING_SEARCH_MAX_DEPTH` deep). A match
    /// that cannot be used (revoked or invalidated: EKEYREVOKED; expired:
    /// EKEYEXPIRED unless `skip_expired`; no search permission: EACCES;
    /// negative: its error) is remembered, the last one winning, and the
    /// search goes on. Nothing at all is EAGAIN.
    fn search_tree(
        &self,
        ctx: &KeyCtx<'_>,
        root: Serial,
        search: &Search<'_, '_>,
    ) -> Result<Serial> {
        let mut result = Errno::EAGAIN;
        let top = self.key(root)?;
        if search.want.hits(top) {
            return match self.search_verdict(ctx, top, search) {
                Some(Ok(())) => Ok(root),
                Some(Err(e)) => Err(e),
                None => Err(result),
            };
        }
        match self.search_in(ctx, root, search, 0, &mut result) {
            Some(k) => Ok(k),
            None => Err(result),
        }
    }

    fn search_in(
        &self,
        ctx: &KeyCtx<'_>,
        keyring: Serial,
        search: &Search<'_, '_>,
        sp: usize,
        result: &mut Errno,
    ) -> Option<Serial> {
        let want = search.want;
        let ring = self.keys.get(&keyring)?;
        if ring.invalidated || ring.revoked_at.is_some() {
            return None;
        }
        // search_keyring(): the direct look-up by index key finds one key
        // at most; an iterating match (an asymmetric key id) tries each
        // key of the type in slot order, the state check before the match
        // (`search_verdict`).
        let found = ring.links.iter().filter(|l| {
            self.keys.get(l).is_some_and(|k| match want.id {
                Some(_) => k.ktype == want.t,
                None => want.hits(k),
            })
        });
        for l in found {
            match self.search_verdict(ctx, &self.keys[&l], search) {
                Some(Ok(())) => return Some(l),
                Some(Err(e)) => *result = e,
                None => {}
            }
        }
        for l in ring.links.iter() {
            let Some(k) = self.keys.get(&l) else { continue };
            if !k.is_keyring() {
                continue;
            }
            if sp >= MAX_DEPTH {
                return None;
            }
            if perm_mask(k, ctx, search.possessed) & need::SEARCH == 0 {
                continue;
            }
            if let Some(f) = self.search_in(ctx, l, search, sp + 1, result) {
                return Some(f);
            }
        }
        None
    }

    /// `keyring_search_iterator()` on a key of the wanted type: Some(Ok)
    /// found; Some(Err) skipped with that error; None skipped silently
    /// (expired, with `skip_expired`; not a match). The state is checked
    /// before the match, so an iterating search (an asymmetric key id)
    /// that meets a revoked or expired key of the type which is not the
    /// one it wants still remembers that key's error.
    fn search_verdict(
        &self,
        ctx: &KeyCtx<'_>,
        k: &Key,
        search: &Search<'_, '_>,
    ) -> Option<Result<()>> {
        if k.invalidated || k.revoked_at.is_some() {
            return Some(Err(Errno::EKEYREVOKED));
        }
        if k.expired(self.now) {
            return (!search.skip_expired).then_some(Err(Errno::EKEYEXPIRED));
        }
        if !search.want.hits(k) {
            return None;
        }
        if perm_mask(k, ctx, search.possessed) & need::SEARCH == 0 {
            return Some(Err(Errno::EACCES));
        }
        if let KeyState::Negative(e) = k.state {
            return Some(Err(e));
        }
        Some(Ok(()))
    }
}

impl Inner {
    /// Where request_key(2) searches (`search_process_keyrings_rcu()`):
    /// the thread, process and session keyrings (the user session
    /// keyring without one), then a request-key helper's requestor's.
    fn request_roots(&mut self, ctx: &KeyCtx<'_>) -> Vec<Serial> {
        let (_, user_session) = self.user_keyrings(ctx);
        let a = &*ctx.anchors;
        let mut v: Vec<Serial> = [a.thread, a.process].into_iter().flatten().collect();
        v.push(a.session.unwrap_or(user_session));
        v.extend(self.requestor_roots(ctx));
        v
    }
}

/// One search's terms (`struct keyring_search_context`): what it wants,
/// the possession every key it meets is judged with, whether an expired
/// key is passed over.
struct Search<'w, 'a> {
    possessed: bool,
    want: &'w Want<'a>,
    skip_expired: bool,
}

/// What a search looks for: a type and a description, or (asymmetric
/// keys, `id:`/`ex:`/`dn:` descriptions) a key id.
pub(crate) struct Want<'a> {
    t: KeyType,
    desc: &'a str,
    id: Option<IdMatch>,
}

impl<'a> Want<'a> {
    /// The type's `match_preparse`: `EINVAL` for a bad asymmetric key id.
    fn new(t: KeyType, desc: &'a str) -> Result<Self> {
        let id = match t {
            KeyType::Asymmetric => IdMatch::preparse(desc)?,
            _ => None,
        };
        Ok(Want { t, desc, id })
    }

    fn hits(&self, k: &Key) -> bool {
        k.ktype == self.t
            && match &self.id {
                None => k.desc == self.desc,
                Some(m) => k.asym.as_deref().is_some_and(|a| m.hits(a)),
            }
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
        let s = self.sysctl();
        (s.maxkeys, s.maxbytes)
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
        let (ring, possessed) = self.lookup_ref(&mut g, ctx, ring, LOOKUP_CREATE, need::WRITE)?;
        let t = KeyType::lookup(type_name)?;
        let r = g.key(ring)?;
        if !r.is_keyring() {
            return Err(Errno::ENOTDIR);
        }
        // key_create_or_update(): the type's preparse sees the payload
        // before a missing description is refused; the asymmetric type's
        // proposes one.
        let mut asym = None;
        let mut desc = desc;
        if t == KeyType::Asymmetric {
            let (proposed, a) = asym::preparse(payload)?;
            desc.get_or_insert(proposed);
            asym = Some(Arc::new(a));
        } else {
            t.vet(desc.as_deref().unwrap_or_default(), payload)?;
        }
        let desc = desc.ok_or(Errno::EINVAL)?;
        g.check_restriction(ctx, ring, t, asym.as_deref())?;
        if t.updatable() {
            let existing = r.links.iter().find(|l| {
                g.keys.get(l).is_some_and(|k| {
                    k.ktype == t && k.desc == desc && k.revoked_at.is_none() && !k.invalidated
                })
            });
            if let Some(k) = existing {
                // `find_key_to_update()`: the key comes with the keyring
                // reference's possession.
                g.check_ref(ctx, k, possessed, need::WRITE)?;
                Self::update_payload(&mut g, ctx, k, payload)?;
                return Ok(k);
            }
        }
        let enc = if t == KeyType::Encrypted {
            // encrypted_instantiate(): the blob, then (for `load`) the
            // master key, searched for as request_key(2) would.
            let pending = encrypted::instantiate(&desc, payload)?;
            let master = match pending.master() {
                Some((user, name)) => Some(Self::master_key(&mut g, ctx, user, &name)?),
                None => None,
            };
            Some(Box::new(pending.finish(master.as_deref())?))
        } else {
            None
        };
        // An asymmetric key keeps its parsed certificate, an encrypted
        // key its secret, not the bytes.
        let bytes = if asym.is_some() || enc.is_some() {
            Vec::new()
        } else {
            payload.to_vec()
        };
        g.create_and_link(
            ctx,
            ring,
            t,
            desc,
            bytes,
            KeyState::Positive,
            self.quota(),
            asym,
            enc,
        )
    }

    /// `request_master_key()`: the payload of the `user` key `name`,
    /// found in the caller's keyrings as request_key(2) finds one (a
    /// `trusted` master key: none exists here, as on the recording's
    /// kernel without a TPM).
    ///
    /// # Errors
    /// `ENOKEY` (none), the match's (`EKEYREVOKED`, a negative key's).
    fn master_key(
        g: &mut MutexGuard<'_, Inner>,
        ctx: &mut KeyCtx<'_>,
        user: bool,
        name: &str,
    ) -> Result<Vec<u8>> {
        if !user {
            return Err(Errno::ENOKEY);
        }
        let roots = g.request_roots(ctx);
        let want = Want::new(KeyType::User, name)?;
        let k = g
            .search(ctx, &roots, true, &want, true)
            .map_err(|e| match e {
                Errno::EAGAIN => Errno::ENOKEY,
                e => e,
            })?;
        Ok(g.key(k)?.payload.clone())
    }

    /// request_key(2) without the upcall: finds a key of `type_name` and
    /// `desc` in the caller's keyrings and links it into `dest` (0: none).
    ///
    /// # Errors
    /// `EINVAL`/`EPERM` (type name), the `dest` lookup's errors, `ENOKEY`
    /// (unknown type), a negative key's error (`ENOKEY` for a negated one,
    /// `EKEYREJECTED`, ...), `EKEYREVOKED`, `ENOKEY` (not found, or found
    /// expired: the kernel passes over expired keys and would construct a
    /// new one; watchq runs no `/sbin/request-key`, see
    /// [`KeyStore::construct`]), the link's errors.
    pub fn request_key(
        &self,
        ctx: &mut KeyCtx<'_>,
        type_name: &str,
        desc: &str,
        callout: Option<&[u8]>,
        dest: Serial,
    ) -> Result<Requested> {
        KeyType::lookup(type_name)
            .map_err(|e| if e == Errno::ENODEV { Errno::ENOKEY } else { e })?;
        let mut g = self.inner.lock();
        let dest = self.optional_ring(&mut g, ctx, dest)?;
        let t = KeyType::lookup(type_name)?;
        let (_, user_session) = g.user_keyrings(ctx);
        let roots = g.request_roots(ctx);
        let want = Want::new(t, desc)?;
        let k = match g.search(ctx, &roots, true, &want, true) {
            Ok(k) => k,
            Err(Errno::EAGAIN) => match callout {
                Some(info) => {
                    return self
                        .construct_alloc(&mut g, ctx, (t, desc), info, dest, user_session)
                        .map(Requested::Construct)
                }
                None => return Err(Errno::ENOKEY),
            },
            Err(e) => return Err(e),
        };
        if let Some(d) = dest {
            g.check_link(ctx, d, k)?;
            g.do_link(ctx, d, k);
        }
        // request_key(2) waits for a key under construction.
        Self::wait_constructed(&self.constructed, &mut g, ctx, k)?;
        Ok(Requested::Found(k))
    }

    /// `wait_for_key_construction()`, then the key's state: its error if
    /// negative.
    fn wait_constructed(
        cv: &parking_lot::Condvar,
        g: &mut MutexGuard<'_, Inner>,
        ctx: &KeyCtx<'_>,
        k: Serial,
    ) -> Result<()> {
        loop {
            match g.key(k)?.state {
                // As `lookup`: waiting for one's own construction would
                // never end.
                KeyState::Uninstantiated
                    if ctx.anchors.auth == Some(k) && ctx.deadline.is_none() =>
                {
                    return Err(Errno::EDEADLK)
                }
                KeyState::Uninstantiated => super::sleep_constructed(cv, g, ctx)?,
                KeyState::Negative(e) => return Err(e),
                _ => return Ok(()),
            }
        }
    }

    /// `construct_alloc_key()` and `call_sbin_request_key()`'s preparation:
    /// the key, uninstantiated, linked into `dest` or the default keyring
    /// (`construct_get_dest_keyring()`: thread, process, session, user
    /// session keyring, the first there is; the requestor's own when the
    /// caller is a helper), which must grant the possessor write; the
    /// helper's session keyring `_req.KEY` owned by the requestor, and the
    /// construction's record.
    fn construct_alloc(
        &self,
        g: &mut MutexGuard<'_, Inner>,
        ctx: &mut KeyCtx<'_>,
        (t, desc): (KeyType, &str),
        callout: &[u8],
        dest: Option<Serial>,
        user_session: Serial,
    ) -> Result<CallOut> {
        let a = ctx.anchors.clone();
        let dest = match dest {
            Some(d) => d,
            None => {
                let d = a.thread.or(a.process).or(a.session).unwrap_or(user_session);
                if perm::perm_mask(g.key(d)?, ctx, true) & need::WRITE == 0 {
                    return Err(Errno::EACCES);
                }
                d
            }
        };
        let quota = self.quota();
        let key = g.create_and_link(
            ctx,
            dest,
            t,
            desc.to_string(),
            Vec::new(),
            KeyState::Uninstantiated,
            quota,
            None,
            None,
        )?;
        let (uid, gid) = (ctx.cred.uid, ctx.cred.gid);
        let helper_session = g.new_keyring(
            &format!("_req.{key}"),
            uid,
            gid,
            KEY_POS_ALL | KEY_USR_VIEW | perm::KEY_USR_READ,
        );
        // request_key_auth_new(): the authority, a key of the
        // requestor's, in no quota, that call_sbin_request_key() links
        // into the helper's session keyring.
        let auth_key = g.insert_key(
            KeyType::RequestKeyAuth,
            format!("{key:x}"),
            callout.to_vec(),
            (uid, gid, AUTH_KEY_PERM),
            KeyState::Positive,
            0,
        );
        g.key_mut(auth_key)?.not_in_quota = true;
        g.do_link(ctx, helper_session, auth_key);
        let session = a.session.unwrap_or(user_session);
        g.constructions.insert(
            key,
            Construction {
                callout: callout.to_vec(),
                requestor: [a.thread, a.process, Some(session)],
                helper_session,
                auth_key,
                pid: a.tid,
            },
        );
        Ok(CallOut {
            key,
            helper_session,
            uid,
            gid,
            rings: [a.thread.unwrap_or(0), a.process.unwrap_or(0), session],
        })
    }

    /// The helper of `call` exited (`call_sbin_request_key()`'s end and
    /// `complete_request_key()`): a key it left uninstantiated is negated
    /// for 60 s (`key_negative_timeout`) and the request fails with
    /// ENOKEY; otherwise the request gets the key, or its error if the
    /// helper negated or rejected it. The helper's session keyring and the
    /// authority go (the session keyring with the helper's exit).
    ///
    /// # Errors
    /// `ENOKEY` (not instantiated), a negative key's error.
    pub fn construction_ended(&self, ctx: &mut KeyCtx<'_>, call: &CallOut) -> Result<Serial> {
        let mut g = self.inner.lock();
        let state = g.key(call.key)?.state;
        if state != KeyState::Uninstantiated {
            // complete_request_key(): the authority is revoked.
            Self::end_authority(&mut g, ctx, call.key, true);
        }
        g.gc_pending = true;
        let r = match state {
            KeyState::Uninstantiated => {
                let expiry = Some(g.now.saturating_add(60));
                let saved = ctx.anchors.auth.replace(call.key);
                let r = self.finish_construction(
                    &mut g,
                    ctx,
                    call.key,
                    None,
                    (KeyState::Negative(Errno::ENOKEY), Vec::new(), expiry),
                );
                ctx.anchors.auth = saved;
                r.and(Err(Errno::ENOKEY))
            }
            KeyState::Negative(e) => Err(e),
            _ => Ok(call.key),
        };
        g.constructions.remove(&call.key);
        self.wake_constructed();
        r
    }

    /// The authority for `target` ends: its `.request_key_auth` key is
    /// invalidated (the target instantiated, negated or rejected:
    /// `__key_instantiate_and_link()`) or revoked (the helper gone:
    /// `complete_request_key()`); the collector takes it once nothing
    /// links it.
    fn end_authority(g: &mut Inner, ctx: &KeyCtx<'_>, target: Serial, revoke: bool) {
        let Some(a) = g.constructions.get(&target).map(|c| c.auth_key) else {
            return;
        };
        let now = g.now;
        let Some(k) = g.keys.get_mut(&a) else { return };
        if revoke {
            if k.revoked_at.is_none() {
                k.revoked_at = Some(now);
                Self::notify(k, ctx, NOTIFY_KEY_REVOKED, 0);
            }
        } else if !k.invalidated {
            k.invalidated = true;
            Self::notify(k, ctx, NOTIFY_KEY_INVALIDATED, 0);
        }
        g.gc_pending = true;
    }

    /// KEYCTL_ASSUME_AUTHORITY: `id` 0 gives the authority up; a key under
    /// construction whose authorisation the caller holds (its session
    /// keyring is the construction's helper session keyring, or it has the
    /// authority already) becomes the one it may instantiate. Returns `id`.
    ///
    /// # Errors
    /// `EINVAL` (negative id), `ENOKEY` (no such construction in reach).
    pub fn assume_authority(&self, ctx: &mut KeyCtx<'_>, id: Serial) -> Result<Serial> {
        if id < 0 {
            return Err(Errno::EINVAL);
        }
        if id == 0 {
            ctx.anchors.auth = None;
            return Ok(0);
        }
        let g = self.inner.lock();
        let c = g.constructions.get(&id).ok_or(Errno::ENOKEY)?;
        if ctx.anchors.session != Some(c.helper_session) && ctx.anchors.auth != Some(id) {
            return Err(Errno::ENOKEY);
        }
        // key_get_instantiation_authkey(): a revoked authority is refused.
        let auth = g.key(c.auth_key)?;
        if auth.invalidated {
            return Err(Errno::ENOKEY);
        }
        if auth.revoked_at.is_some() {
            return Err(Errno::EKEYREVOKED);
        }
        ctx.anchors.auth = Some(id);
        Ok(c.auth_key)
    }

    /// The `.request_key_auth` key of the authority the caller holds
    /// (`KEY_SPEC_REQKEY_AUTH_KEY`), if any.
    pub(crate) fn auth_key(g: &Inner, ctx: &KeyCtx<'_>) -> Option<Serial> {
        ctx.anchors
            .auth
            .and_then(|a| g.constructions.get(&a))
            .map(|c| c.auth_key)
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
            None,
            None,
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
        let make = |g: &mut Inner, n: &str, perm: u32| {
            g.create_key(
                KeyType::Keyring,
                n.to_string(),
                Vec::new(),
                uid,
                gid,
                perm,
                KeyState::Positive,
                quota,
            )
        };
        let s = match name {
            None => make(&mut g, "_ses", super::perm::ANON_SESSION_PERM)?,
            Some(n) => {
                let found = g
                    .keys
                    .values()
                    .find(|k| {
                        // `find_keyring_by_name()` judges each keyring
                        // unpossessed (`make_key_ref(keyring, 0)`): one
                        // only its possessor may search is never joined,
                        // a new one of the name is made.
                        k.is_keyring()
                            && k.desc == n
                            && k.validate(g.now).is_ok()
                            && perm_mask(k, ctx, false) & need::SEARCH != 0
                    })
                    .map(|k| k.serial);
                match found {
                    Some(s) => s,
                    None => make(&mut g, n, super::perm::SESSION_PERM)?,
                }
            }
        };
        // The old session keyring loses this process's reference.
        if ctx.anchors.session.replace(s).is_some_and(|old| old != s) {
            g.gc_pending = true;
        }
        Ok(s)
    }

    /// KEYCTL_UPDATE: replaces the payload and clears the key's timeout
    /// (the type's update sets the expiry its preparse gave: none); posts
    /// UPDATED.
    ///
    /// # Errors
    /// `EINVAL` (over a page, 4096 bytes, as `keyctl_update_key()`
    /// copies at most that), the lookup's (`EACCES` without write),
    /// `EOPNOTSUPP` (a keyring), `EINVAL` (payload rejected), `EDQUOT`
    /// (the new payload does not fit the owner's quota).
    pub fn update(&self, ctx: &mut KeyCtx<'_>, id: Serial, payload: &[u8]) -> Result<()> {
        if payload.len() > UPDATE_PAYLOAD_MAX {
            return Err(Errno::EINVAL);
        }
        let mut g = self.inner.lock();
        let s = self.lookup(&mut g, ctx, id, 0, need::WRITE)?;
        let k = g.key(s)?;
        if !k.ktype.updatable() {
            return Err(Errno::EOPNOTSUPP);
        }
        k.ktype.vet(&k.desc, payload)?;
        Self::update_payload(&mut g, ctx, s, payload)
    }

    /// The type's update (`user_update()`): the payload's bytes reserved
    /// (`EDQUOT`), the payload replaced, the key positive and without a
    /// timeout; posts UPDATED.
    fn update_payload(
        g: &mut MutexGuard<'_, Inner>,
        ctx: &KeyCtx<'_>,
        s: Serial,
        payload: &[u8],
    ) -> Result<()> {
        let k = g.key(s)?;
        if k.ktype == KeyType::Encrypted {
            // encrypted_update(): a negative key has nothing to re-key.
            let old = k.enc.as_deref().ok_or(Errno::ENOKEY)?;
            let new = encrypted::update(old, payload)?;
            let bytes = Inner::cost(k, new.payload_len());
            g.reserve(s, bytes)?;
            let key = g.key_mut(s)?;
            key.enc = Some(Box::new(new));
            key.state = KeyState::Positive;
            key.expiry = None;
            Self::notify(key, ctx, NOTIFY_KEY_UPDATED, 0);
            return Ok(());
        }
        let bytes = Inner::cost(k, payload.len());
        g.reserve(s, bytes)?;
        let key = g.key_mut(s)?;
        key.payload = payload.to_vec();
        key.state = KeyState::Positive;
        key.expiry = None;
        Self::notify(key, ctx, NOTIFY_KEY_UPDATED, 0);
        Ok(())
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
        })?;
        // The type's revoke method: user_revoke() (user, logon) and
        // big_key_revoke() reserve 0 bytes of payload; keyring_revoke()
        // clears the keyring (no CLEARED record: the revocation's is the
        // only one) and reserves 0 bytes of links whatever it held, so the
        // bytes of links the collector took come back too; a key whose
        // last link that was is the collector's. The asymmetric and
        // encrypted types have no revoke method: their charge stays.
        {
            let mut g = self.inner.lock();
            let cleared = match g.keys.get_mut(&s) {
                Some(k) if k.is_keyring() => {
                    let unlinked = !k.links.is_empty();
                    k.links.clear();
                    Some((Inner::cost(k, 0), unlinked))
                }
                Some(k) if matches!(k.ktype, KeyType::User | KeyType::Logon | KeyType::BigKey) => {
                    Some((Inner::cost(k, 0), false))
                }
                _ => None,
            };
            if let Some((bytes, unlinked)) = cleared {
                let _ = g.reserve(s, bytes);
                if unlinked {
                    g.gc_pending = true;
                }
            }
        }
        // key_schedule_gc(now + gc_delay): due at once when the delay is 0.
        if self.sysctl().gc_delay == 0 {
            self.schedule_gc();
        }
        Ok(())
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
            // from_kgid_munged(): no group shows as the overflow gid.
            if k.gid == super::INVALID_GID {
                65534
            } else {
                k.gid as i32
            },
            k.perm,
            k.desc
        ))
    }

    /// KEYCTL_CLEAR: empties a keyring, restricted or not; posts CLEARED
    /// (also when empty), and no UNLINKED per key. Keys that lost their
    /// last link stay until the collector runs.
    ///
    /// # Errors
    /// The lookup's (write permission), `ENOTDIR` (not a keyring).
    pub fn clear(&self, ctx: &mut KeyCtx<'_>, id: Serial) -> Result<()> {
        let mut g = self.inner.lock();
        let s = self.lookup(&mut g, ctx, id, LOOKUP_CREATE, need::WRITE)?;
        let k = g.key_mut(s)?;
        if !k.is_keyring() {
            return Err(Errno::ENOTDIR);
        }
        k.links.clear();
        // key_payload_reserve(keyring, 0): the links' bytes come back.
        let bytes = Inner::cost(k, 0);
        let _ = g.reserve(s, bytes);
        Self::notify(g.key(s)?, ctx, NOTIFY_KEY_CLEARED, 0);
        g.gc_pending = true;
        Ok(())
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
        g.check_link(ctx, r, k)?;
        g.do_link(ctx, r, k);
        Ok(())
    }

    /// KEYCTL_UNLINK: removes the key of `id`'s type and description from
    /// the keyring (`id` itself or another key of that index) and posts
    /// UNLINKED naming `id`. A key that lost its last link stays until the
    /// collector runs (see [`KeyStore::gc`]).
    ///
    /// # Errors
    /// The keyring lookup's (write), the key lookup's, `ENOTDIR`, `ENOENT`
    /// (the keyring holds no key of that type and description).
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
        if !g.key(r)?.is_keyring() {
            return Err(Errno::ENOTDIR);
        }
        // `__key_unlink_begin()` deletes by index: the key of `k`'s type
        // and description, which need not be `k` (UNLINKED still names k).
        let i = g.index_of(r, k).ok_or(Errno::ENOENT)?;
        let ring = g.key_mut(r)?;
        if let Some(s) = ring.links.at(i) {
            ring.links.remove(s);
        }
        let bytes = ring.charged.saturating_sub(KEYQUOTA_LINK_BYTES);
        let _ = g.reserve(r, bytes);
        let ring = g.key(r)?;
        Self::notify(ring, ctx, NOTIFY_KEY_UNLINKED, k as u32);
        g.gc_pending = true;
        Ok(())
    }

    /// KEYCTL_SEARCH: finds `type_name`/`desc` under `ring` (recursively)
    /// and links it into `dest` (0: none).
    ///
    /// # Errors
    /// Type name errors, the keyring lookup's (search), the `dest` lookup's
    /// (write), `ENOKEY` (unknown type), `ENOTDIR`, `ENOKEY` (or the error of the best
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
        let (r, possessed) = self.lookup_ref(&mut g, ctx, ring, 0, need::SEARCH)?;
        let dest = self.optional_ring(&mut g, ctx, dest)?;
        // `key_type_lookup()` answers ENOKEY for a type it does not know
        // (add_key alone turns that into ENODEV).
        let t = KeyType::lookup(type_name).map_err(|e| match e {
            Errno::ENODEV => Errno::ENOKEY,
            e => e,
        })?;
        let want = Want::new(t, desc)?;
        if !g.key(r)?.is_keyring() {
            return Err(Errno::ENOTDIR);
        }
        let k = g.search(ctx, &[r], possessed, &want, false).map_err(|e| {
            if e == Errno::EAGAIN {
                Errno::ENOKEY
            } else {
                e
            }
        })?;
        if let Some(d) = dest {
            // The key found comes with the search's possession.
            g.check_ref(ctx, k, possessed, need::LINK)?;
            g.check_link(ctx, d, k)?;
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
        self.read_sized(ctx, id, usize::MAX)
    }

    /// [`KeyStore::read`] into a buffer of `buflen` bytes: an encrypted
    /// key's read method makes its blob (with the master key) only when
    /// the buffer holds it, else says how long it is (zeros of that
    /// length, which the caller does not copy).
    pub(crate) fn read_sized(
        &self,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        buflen: usize,
    ) -> Result<Vec<u8>> {
        let mut g = self.inner.lock();
        // keyctl_read_key(): a failed lookup is ENOKEY, a wait for a
        // construction that a signal ended too (with or without
        // SA_RESTART: ERESTARTSYS does not reach the caller;
        // tests/data/conformance/waits.txt).
        let (s, possessed) = self
            .lookup_ref(&mut g, ctx, id, 0, need::DEFER)
            .map_err(|e| {
                if matches!(e, Errno::EINVAL | Errno::EINTR) {
                    Errno::ENOKEY
                } else {
                    e
                }
            })?;
        let k = g.key(s)?;
        // Readable, or possessed (the look-up's possession).
        if perm_mask(k, ctx, possessed) & need::READ == 0 && !possessed {
            return Err(Errno::EACCES);
        }
        if !k.ktype.readable() {
            return Err(Errno::EOPNOTSUPP);
        }
        k.validate(g.now)?;
        if let Some(e) = k.enc.as_deref().filter(|_| k.ktype == KeyType::Encrypted) {
            if buflen < e.blob_len() {
                return Ok(vec![0; e.blob_len()]);
            }
            let e = e.clone();
            let (user, name) = e.master();
            let master = Self::master_key(&mut g, ctx, user, &name)?;
            return Ok(e.blob(&master));
        }
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
            g.check_link(ctx, r, id)?;
            g.do_link(ctx, r, id);
        }
        Self::end_authority(g, ctx, id, false);
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
        // The type's preparse or instantiate: an asymmetric key keeps its
        // certificate, an encrypted one its secret (a `load` decrypted
        // with the master key the helper finds).
        let (t, desc) = (k.ktype, k.desc.clone());
        let (mut asym, mut enc) = (None, None);
        match t {
            KeyType::Asymmetric => asym = Some(Arc::new(asym::preparse(payload)?.1)),
            KeyType::Encrypted => {
                let pending = encrypted::instantiate(&desc, payload)?;
                let master = match pending.master() {
                    Some((user, name)) => Some(Self::master_key(&mut g, ctx, user, &name)?),
                    None => None,
                };
                enc = Some(Box::new(pending.finish(master.as_deref())?));
            }
            _ => t.vet(&desc, payload)?,
        }
        let bytes = if asym.is_some() || enc.is_some() {
            Vec::new()
        } else {
            payload.to_vec()
        };
        if g.key(id)?.state == KeyState::Uninstantiated {
            // The type's instantiate charges the payload
            // (`generic_key_instantiate()`'s, or `encrypted_key_alloc()`'s,
            // `key_payload_reserve()`): until now the key under
            // construction cost its description alone (`key_alloc()`).
            // EDQUOT leaves it under construction, as the kernel's failed
            // instantiate does.
            let k = g.key(id)?;
            let bytes = match &enc {
                Some(e) => Inner::cost(k, e.payload_len()),
                None => Inner::cost(k, quotalen(t, payload.len())),
            };
            g.reserve(id, bytes)?;
            let k = g.key_mut(id)?;
            k.asym = asym;
            k.enc = enc;
        }
        self.finish_construction(&mut g, ctx, id, ring, (KeyState::Positive, bytes, None))
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

    /// KEYCTL_INVALIDATE: posts INVALIDATED and schedules the collector,
    /// which removes the key (REMOVAL to its watchers) without UNLINKED on
    /// its keyrings.
    ///
    /// # Errors
    /// The lookup's (search permission; `ENOKEY` once invalidated).
    pub fn invalidate(&self, ctx: &mut KeyCtx<'_>, id: Serial) -> Result<()> {
        self.modify(ctx, id, 0, need::SEARCH, |k, _, _| {
            if k.keep {
                return Err(Errno::EPERM);
            }
            let first = !std::mem::replace(&mut k.invalidated, true);
            Ok(first.then_some((NOTIFY_KEY_INVALIDATED, 0)))
        })?;
        // key_schedule_gc_links()
        self.schedule_gc();
        Ok(())
    }

    /// KEYCTL_MOVE: UNLINKED on `from`, then LINKED on `to`; both keyrings
    /// find the key by its index, so `from` loses its key of that type and
    /// description and `to`'s is replaced. Moving within one keyring does
    /// nothing.
    ///
    /// # Errors
    /// `EINVAL` (flags), the lookups' (link on the key, write on both
    /// keyrings), `ENOTDIR`, `ENOENT` (`from` holds no key of that type and
    /// description), `EEXIST` (KEYCTL_MOVE_EXCL and `to` holds one, the key
    /// itself included), `EKEYREVOKED`, `EPERM`, `EDEADLK`.
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
        // `__key_unlink_begin()` on `from` (by index: ENOENT), then
        // `__key_link_begin()` on `to`, whose key of that index (`k`
        // itself included) is EEXIST under KEYCTL_MOVE_EXCL.
        if g.index_of(f, k).is_none() {
            return Err(Errno::ENOENT);
        }
        if g.index_of(t, k).is_some() && flags & KEYCTL_MOVE_EXCL != 0 {
            return Err(Errno::EEXIST);
        }
        g.check_link(ctx, t, k)?;
        Self::unlink_locked(&mut g, ctx, f, k)?;
        g.do_link(ctx, t, k);
        Ok(())
    }

    /// KEYCTL_RESTRICT_KEYRING (`keyring_restrict()`): with no type,
    /// refuse every further link; with the `asymmetric` type, accept only
    /// keys signed as the restriction says (`builtin_trusted`,
    /// `builtin_and_secondary_trusted`, `key_or_keyring:ID[:chain]`, see
    /// [`Restriction`]). Posts SETATTR.
    ///
    /// # Errors
    /// In the kernel's order (the corpus's `attr` and `asym-restrict`
    /// sections): the lookup's (setattr permission; `ENOKEY` before any
    /// argument check), `EINVAL`/`EPERM` (type name: empty, or
    /// `.`-prefixed), `EINVAL` (a restriction without a type, or a type
    /// without a restriction), `ENOTDIR`, `ENOKEY` (unknown type),
    /// `ENOENT` (a type without a restriction scheme), `EINVAL` (a
    /// restriction the asymmetric type cannot parse), `ENOKEY` (no key of
    /// the serial it names), `EEXIST` (already restricted), `EDEADLK`
    /// (the restrictions' keyrings would lead back to this one).
    pub fn restrict_keyring(
        &self,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        type_name: Option<&str>,
        restriction: Option<&str>,
    ) -> Result<()> {
        let mut g = self.inner.lock();
        let s = self.lookup(&mut g, ctx, id, 0, need::SETATTR)?;
        if let Some(t) = type_name {
            if t.is_empty() {
                return Err(Errno::EINVAL);
            }
            if t.starts_with('.') {
                return Err(Errno::EPERM);
            }
        }
        if type_name.is_some() != restriction.is_some() {
            return Err(Errno::EINVAL);
        }
        if !g.key(s)?.is_keyring() {
            return Err(Errno::ENOTDIR);
        }
        let res = match (type_name, restriction) {
            (Some(t), Some(text)) => {
                match KeyType::lookup(t) {
                    Err(Errno::ENODEV) => return Err(Errno::ENOKEY),
                    Ok(KeyType::Asymmetric) => {}
                    _ => return Err(Errno::ENOENT),
                }
                let (mut res, serial) = asym::parse_restriction(text)?;
                if let Some(serial) = serial {
                    // key_lookup(): any key of that serial, no permission.
                    if !g.keys.contains_key(&serial) {
                        return Err(Errno::ENOKEY);
                    }
                    if let Restriction::KeyOrKeyring { key, .. } = &mut res {
                        *key = Some(serial);
                    }
                }
                res
            }
            _ => Restriction::Reject,
        };
        if g.key(s)?.restriction.is_some() {
            return Err(Errno::EEXIST);
        }
        // keyring_detect_restriction_cycle(): follow the restrictions'
        // keyrings from this one's.
        let mut next = res.key();
        while let Some(k) = next.and_then(|n| g.keys.get(&n)).filter(|k| k.is_keyring()) {
            if k.serial == s {
                return Err(Errno::EDEADLK);
            }
            next = k.restriction.and_then(|r| r.key());
        }
        let k = g.key_mut(s)?;
        k.restriction = Some(res);
        Self::notify(g.key(s)?, ctx, NOTIFY_KEY_SETATTR, 0);
        Ok(())
    }

    /// KEYCTL_SET_REQKEY_KEYRING: sets where request_key links what it
    /// constructs when given no keyring, and returns the previous setting
    /// (`-1`, `KEY_REQKEY_DEFL_NO_CHANGE`, only returns it). The thread
    /// and process keyrings are made when chosen.
    ///
    /// # Errors
    /// `EINVAL`: a value other than -1, 0..=5 and 7 (6, the group keyring,
    /// is refused as the kernel refuses it; tests/data/conformance/types.txt).
    pub fn set_reqkey_keyring(&self, ctx: &mut KeyCtx<'_>, value: i32) -> Result<i32> {
        let old = ctx.anchors.reqkey_default;
        match value {
            -1 => return Ok(old),
            0 | 3..=5 | 7 => {}
            1 | 2 => {
                let mut g = self.inner.lock();
                let special = if value == 1 {
                    KEY_SPEC_THREAD_KEYRING
                } else {
                    KEY_SPEC_PROCESS_KEYRING
                };
                self.lookup(&mut g, ctx, special, LOOKUP_CREATE, 0)?;
            }
            _ => return Err(Errno::EINVAL),
        }
        ctx.anchors.reqkey_default = value;
        Ok(old)
    }

    /// KEYCTL_GET_SECURITY: the key's security label (empty without one:
    /// no LSM, as on the oracle's kernel, where the call returned 1, the
    /// NUL alone).
    ///
    /// # Errors
    /// The lookup's (view permission).
    pub fn get_security(&self, ctx: &mut KeyCtx<'_>, id: Serial) -> Result<String> {
        let mut g = self.inner.lock();
        let s = self.lookup(&mut g, ctx, id, LOOKUP_PARTIAL, need::VIEW)?;
        Ok(g.key(s)?.label.clone().unwrap_or_default())
    }

    /// KEYCTL_CAPABILITIES: the two capability bytes (watchq supports
    /// persistent keyrings, the public-key commands, big_key, invalidate,
    /// restrict, move and Diffie-Hellman; the
    /// notifications bit follows `notifications`).
    pub fn capabilities(&self) -> [u8; 2] {
        // CAPABILITIES, PERSISTENT_KEYRINGS, PUBLIC_KEY (the commands, with
        // the kernel's errnos for keys that are not asymmetric), BIG_KEY,
        // INVALIDATE, RESTRICT_KEYRING, MOVE, DIFFIE_HELLMAN (0x04).
        let caps0 = 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x20 | 0x40 | 0x80;
        // NS_KEYRING_NAME and NS_KEY_TAG (0x01, 0x02): every kernel since
        // 5.3 sets them; watchq has one namespace of each kind.
        let caps1 = 0x01
            | 0x02
            | if self.config.notifications {
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

//! The keyrings the kernel makes for itself: the system keyrings
//! (`.builtin_trusted_keys`, `.blacklist`), the register of user keyrings
//! (`.user_reg`), and persistent keyrings with their register
//! (`.persistent_register`, `KEYCTL_GET_PERSISTENT`); and the public-key
//! commands' look-up, for which no emulated type has the operations.
//!
//! Mirrors certs/system_keyring.c and certs/blacklist.c (which keyrings a
//! kernel configured as the recording's has: no secondary, platform or
//! IMA keyring), security/keys/process_keys.c (`look_up_user_keyrings()`'s
//! register), security/keys/persistent.c and security/keys/keyctl_pkey.c.
//!
//! These keyrings are the kernel's own: never charged to a quota, kept
//! alive by the kernel (collector roots), and given serials below the
//! sequential ones ([`SYSTEM_SERIAL_TOP`] downwards) so the serials of
//! everything else stay as they were.

use super::perm::{need, KEY_POS_ALL, KEY_POS_SETATTR, KEY_USR_READ, KEY_USR_VIEW, LOOKUP_CREATE};
use super::{Inner, KeyCtx, KeyState, KeyStore, KeyType, PkeyOp, Serial, KEY_SPEC_SESSION_KEYRING};
use watchq_core::lsm::caps::CAP_SETUID;
use watchq_core::{Errno, Result};

/// The first serial the kernel's own keyrings take (downwards from here).
pub const SYSTEM_SERIAL_TOP: Serial = 0x0fff_ff00;

/// `persistent_keyring_expiry`'s default: a persistent keyring expires
/// this many seconds after it was last fetched (three days; see
/// [`KeyStore::set_persistent_keyring_expiry`]).
pub const PERSISTENT_KEYRING_EXPIRY: u64 = 3 * 24 * 3600;

/// No group (`INVALID_GID`; KEYCTL_DESCRIBE shows it as 65534).
pub const INVALID_GID: u32 = u32::MAX;

/// `.builtin_trusted_keys`: possessor all but setattr, owner view, read
/// and search.
const BUILTIN_TRUSTED_PERM: u32 = 0x1f0b_0000;
/// `.blacklist`: possessor view, read, write, search; owner view, read,
/// search.
const BLACKLIST_PERM: u32 = 0x0f0b_0000;
/// `.user_reg`: possessor write and search, owner view and read.
const USER_REG_PERM: u32 = 0x0c03_0000;
/// A persistent keyring and their register: possessor all but setattr,
/// owner view and read.
const PERSISTENT_PERM: u32 = (KEY_POS_ALL & !KEY_POS_SETATTR) | KEY_USR_VIEW | KEY_USR_READ;

impl Inner {
    /// A keyring of the kernel's own: not in any quota, a collector root.
    fn system_keyring(&mut self, desc: &str, uid: u32, gid: u32, perm: u32) -> Serial {
        let mut s = SYSTEM_SERIAL_TOP - self.system.len() as Serial;
        while self.keys.contains_key(&s) {
            s -= 1;
        }
        let serial = self.alloc_serial_at(s);
        let k = self.keys.get_mut(&serial).expect("just inserted");
        k.ktype = KeyType::Keyring;
        k.desc = desc.to_string();
        (k.uid, k.gid, k.perm) = (uid, gid, perm);
        self.system.push(serial);
        serial
    }

    /// Makes the keyrings a booted kernel has (`system_trusted_keyring_init()`,
    /// `blacklist_init()`).
    pub(crate) fn boot_keyrings(&mut self) {
        self.system_keyring(".builtin_trusted_keys", 0, 0, BUILTIN_TRUSTED_PERM);
        let b = self.system_keyring(".blacklist", 0, 0, BLACKLIST_PERM);
        // KEY_ALLOC_SET_KEEP: it cannot be invalidated or unlinked.
        self.keys.get_mut(&b).expect("just made").keep = true;
    }

    /// Records user keyrings just made in `.user_reg`, the register
    /// `look_up_user_keyrings()` keeps them in (made with the first).
    pub(crate) fn register_user_keyrings(&mut self, rings: [Serial; 2]) {
        let reg = match self.user_reg {
            Some(r) => r,
            None => {
                let r = self.system_keyring(".user_reg", 0, INVALID_GID, USER_REG_PERM);
                self.user_reg = Some(r);
                r
            }
        };
        let links = &mut self.keys.get_mut(&reg).expect("the register").links;
        for r in rings {
            links.insert(r);
        }
    }

    /// A keyring with serial `s` (free), positive, outside every quota,
    /// with no description or owner yet: the caller fills them in.
    fn alloc_serial_at(&mut self, s: Serial) -> Serial {
        let saved = self.next_serial;
        self.next_serial = s;
        let serial = self.insert_key(
            KeyType::Keyring,
            String::new(),
            Vec::new(),
            (0, 0, 0),
            KeyState::Positive,
            0,
        );
        self.next_serial = saved;
        self.keys
            .get_mut(&serial)
            .expect("just inserted")
            .not_in_quota = true;
        serial
    }

    /// The kernel's own keyrings, for the collector and for listings.
    pub(crate) fn system_roots(&self) -> impl Iterator<Item = Serial> + '_ {
        self.system.iter().copied()
    }
}

impl KeyStore {
    /// `/proc/sys/kernel/keys/persistent_keyring_expiry`: how long a
    /// persistent keyring lives after its last fetch, in seconds
    /// ([`PERSISTENT_KEYRING_EXPIRY`] until set).
    pub fn persistent_keyring_expiry(&self) -> u64 {
        self.inner.lock().persistent_expiry
    }

    /// Sets `persistent_keyring_expiry` (the sysctl's write; fetches from
    /// now on use it, keyrings fetched before keep their expiry).
    pub fn set_persistent_keyring_expiry(&self, secs: u64) {
        self.set_sysctl(|s| s.persistent_keyring_expiry = secs);
    }

    /// The kernel's own keyrings that exist now (the system keyrings and
    /// the registers made so far), by description, as a root process sees
    /// them in `/proc/keys`.
    pub fn system_keyrings(&self) -> Vec<(String, Serial)> {
        let g = self.inner.lock();
        g.system_roots()
            .filter_map(|s| g.keys.get(&s).map(|k| (k.desc.clone(), s)))
            .collect()
    }

    /// When key `serial` expires, in seconds from now on the virtual clock
    /// (`None`: never, or no such key), as `/proc/keys` counts it.
    pub fn expires_in(&self, serial: Serial) -> Option<u64> {
        let g = self.inner.lock();
        let e = g.keys.get(&serial)?.expiry?;
        Some(e.saturating_sub(g.now))
    }

    /// KEYCTL_GET_PERSISTENT: `uid`'s persistent keyring (`u32::MAX`, −1:
    /// the caller's), made in `.persistent_register` on first use (the
    /// register too), linked into `dest` (LINKED, also when already
    /// there), its expiry set to [`PERSISTENT_KEYRING_EXPIRY`] from now.
    /// Mirrors `keyctl_get_persistent()`.
    ///
    /// # Errors
    /// In the kernel's order: `EPERM` (another uid without `CAP_SETUID`),
    /// the destination lookup's (write permission; `EINVAL` for 0),
    /// `ENOTDIR` (the destination is not a keyring), the link's.
    pub fn get_persistent(&self, ctx: &mut KeyCtx<'_>, uid: u32, dest: Serial) -> Result<Serial> {
        let uid = if uid == u32::MAX {
            ctx.cred.uid
        } else {
            if uid != ctx.cred.uid && !ctx.cred.capable(CAP_SETUID) {
                return Err(Errno::EPERM);
            }
            uid
        };
        let mut g = self.inner.lock();
        let d = self.lookup(&mut g, ctx, dest, LOOKUP_CREATE, need::WRITE)?;
        if g.key(d)?.ktype != KeyType::Keyring {
            return Err(Errno::ENOTDIR);
        }
        let reg = match g.persistent_register {
            Some(r) => r,
            None => {
                let r = g.system_keyring(".persistent_register", 0, 0, PERSISTENT_PERM);
                g.persistent_register = Some(r);
                r
            }
        };
        let desc = format!("_persistent.{uid}");
        let found = g.key(reg)?.links.iter().find(|&s| {
            g.keys
                .get(&s)
                .is_some_and(|k| k.ktype == KeyType::Keyring && k.desc == desc)
        });
        let (p, created) = match found {
            Some(p) => (p, false),
            None => {
                let s = g.alloc_serial();
                let p = g.alloc_serial_at(s);
                let k = g.keys.get_mut(&p).expect("just made");
                k.desc = desc;
                (k.uid, k.gid, k.perm) = (uid, INVALID_GID, PERSISTENT_PERM);
                g.key_mut(reg)?.links.insert(p);
                (p, true)
            }
        };
        // The keyring is possessed through the register: link permission
        // is the possessor's.
        let linked = g.check_link(ctx, d, p);
        if linked.is_ok() {
            g.do_link(ctx, d, p);
        }
        if linked.is_ok() || created {
            let at = g.now + g.persistent_expiry;
            g.key_mut(p)?.expiry = Some(at);
        }
        linked.map(|()| p)
    }

    /// KEYCTL_PKEY_ENCRYPT, DECRYPT, SIGN and VERIFY
    /// (`keyctl_pkey_e_d_s()`, `keyctl_pkey_verify()`): the look-up and
    /// query of [`KeyStore::pkey_query`], the lengths checked against the
    /// query's sizes (`in_len` and `out_len`, VERIFY's second length in
    /// its place), then the input (`None`: it could not be copied in,
    /// `EFAULT`), then the operation (see [`PkeyOp`]). Returns the
    /// output (as many bytes as the key: the kernel copies all of them,
    /// whatever `out_len` said), empty for VERIFY.
    ///
    /// # Errors
    /// The query's, `EINVAL` (a length over its size), `EFAULT`, the
    /// operation's.
    #[allow(clippy::too_many_arguments)]
    pub fn pkey_op(
        &self,
        ctx: &mut KeyCtx<'_>,
        op: PkeyOp,
        id: Serial,
        (encoding, hash): (&str, Option<&str>),
        in_len: u32,
        out_len: u32,
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let q: [u8; 56] = self
            .pkey_query(ctx, id, encoding, hash)?
            .try_into()
            .map_err(|_| Errno::EINVAL)?;
        let [data, sig, enc, dec] = super::asym::query_sizes(&q);
        let (max_in, max_out) = match op {
            PkeyOp::Encrypt => (dec, enc),
            PkeyOp::Decrypt => (enc, dec),
            PkeyOp::Sign | PkeyOp::Verify => (data, sig),
        };
        if in_len > max_in || out_len > max_out {
            return Err(Errno::EINVAL);
        }
        let input = input.ok_or(Errno::EFAULT)?;
        let a = {
            let mut g = self.inner.lock();
            let s = self.lookup(&mut g, ctx, id, 0, need::SEARCH)?;
            g.key(s)?.asym.clone().ok_or(Errno::EOPNOTSUPP)?
        };
        super::asym::pkey_op(&a, op, encoding, input)
    }

    /// KEYCTL_PKEY_QUERY (`keyctl_pkey_query()`): what key `id` can do
    /// with `encoding` (the info string's `enc=`, `raw` without one) and
    /// `hash`, as the 56 bytes of `struct keyctl_pkey_query`.
    ///
    /// # Errors
    /// The lookup's (search permission), `EOPNOTSUPP` (a key that is not
    /// asymmetric), then `software_key_query()`'s (`EINVAL`, `ENOENT`).
    pub fn pkey_query(
        &self,
        ctx: &mut KeyCtx<'_>,
        id: Serial,
        encoding: &str,
        hash: Option<&str>,
    ) -> Result<Vec<u8>> {
        let mut g = self.inner.lock();
        let s = self.lookup(&mut g, ctx, id, 0, need::SEARCH)?;
        let k = g.key(s)?;
        if k.ktype != KeyType::Asymmetric {
            return Err(Errno::EOPNOTSUPP);
        }
        let a = k.asym.as_deref().ok_or(Errno::EOPNOTSUPP)?;
        super::asym::query(a, encoding, hash).map(|q| q.to_vec())
    }

    /// KEYCTL_SESSION_TO_PARENT's look-up of the caller's session keyring
    /// (the user session keyring without one), with link permission.
    ///
    /// # Errors
    /// The lookup's (`EACCES` without link permission).
    pub fn session_for_parent(&self, ctx: &mut KeyCtx<'_>) -> Result<Serial> {
        let mut g = self.inner.lock();
        self.lookup(&mut g, ctx, KEY_SPEC_SESSION_KEYRING, 0, need::LINK)
    }

    /// `lookup_user_key(id, 0, need)` alone: the checks a command makes on
    /// its key before anything else.
    ///
    /// # Errors
    /// The lookup's.
    pub fn access(&self, ctx: &mut KeyCtx<'_>, id: Serial, need: u32) -> Result<()> {
        let mut g = self.inner.lock();
        self.lookup(&mut g, ctx, id, 0, need).map(|_| ())
    }

    /// KEYCTL_READ into a buffer of `buflen` bytes (0: none): the payload,
    /// which the caller copies only when it fits. Mirrors
    /// `keyctl_read_key()`: the read method sees the buffer's length
    /// when it is at most a page, and a keyring's refuses one that is not
    /// a whole number of serials.
    ///
    /// # Errors
    /// As [`KeyStore::read`]; `EINVAL` (a keyring and such a length).
    pub fn read_into(&self, ctx: &mut KeyCtx<'_>, id: Serial, buflen: usize) -> Result<Vec<u8>> {
        let data = self.read_sized(ctx, id, buflen)?;
        if buflen > 0 && buflen <= 4096 && !buflen.is_multiple_of(4) {
            let mut g = self.inner.lock();
            let s = self.lookup(&mut g, ctx, id, 0, 0)?;
            if g.key(s)?.ktype == KeyType::Keyring {
                return Err(Errno::EINVAL);
            }
        }
        Ok(data)
    }

    /// The owner of key `serial`, if it exists.
    pub fn owner_of(&self, serial: Serial) -> Option<u32> {
        self.inner.lock().keys.get(&serial).map(|k| k.uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyConfig;

    /// The emulator's serial scheme, not the kernel's (whose serials are
    /// random, so no recording can judge this): the kernel's own keyrings
    /// take serials from [`SYSTEM_SERIAL_TOP`] downwards in the order they
    /// are made, passing over serials already taken, so that making one
    /// on demand (`.user_reg` here) never takes a sequential serial and a
    /// run's other serials stay reproducible ([`KeyConfig::first_serial`]).
    /// A first serial just below the top makes the sequential keys run
    /// into the system keyrings' serials and past them.
    #[test]
    fn system_keyrings_take_serials_downwards_past_taken_ones() {
        let top = SYSTEM_SERIAL_TOP;
        let store = KeyStore::new(KeyConfig {
            first_serial: top - 3,
            ..KeyConfig::default()
        });
        let mut g = store.inner.lock();
        assert_eq!(g.system, [top, top - 1], "the boot keyrings");
        let key = |g: &mut Inner| {
            let owner = (0, 0, 0);
            g.insert_key(
                KeyType::User,
                "k".into(),
                vec![1],
                owner,
                KeyState::Positive,
                0,
            )
        };
        let made = [key(&mut g), key(&mut g), key(&mut g)];
        assert_eq!(
            made,
            [top - 3, top - 2, top + 1],
            "sequential, past the system ones"
        );
        g.register_user_keyrings([made[0], made[1]]);
        assert_eq!(g.user_reg, Some(top - 4), "below the serials taken");
        assert_eq!(key(&mut g), top + 2, "the sequence goes on as before");
    }
}

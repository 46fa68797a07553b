//! Keys and keyrings: the kernel's key management facility as far as a
//! notification consumer can observe it.
//!
//! Owns [`KeyStore`] (every key, the per-user keyrings, quotas and a
//! virtual clock), [`Anchors`] (a process's thread, process and session
//! keyrings and its instantiation authority) and [`KeyCtx`] (who is asking).
//! Each keyctl operation checks in the kernel's order (security/keys/
//! keyctl.c, key.c, keyring.c, process_keys.c) and posts the key
//! notifications the kernel posts, with the same subtype, key id and aux.
//!
//! Keys live while a keyring links them, a process anchors them, or someone
//! constructs them; [`KeyStore::gc`] destroys the rest (posting each watcher
//! a removal record), and dead keys (invalidated, or revoked or expired
//! longer than the gc delay ago) are unlinked from every keyring first,
//! silently, as the kernel's garbage collector does. An operation that may
//! leave garbage only queues the collector ([`KeyStore::schedule_gc`]), as
//! the kernel's queues its work item; the emulated kernel runs it later,
//! when a consumer waits (docs/delivery.md §1). Until then an unreferenced
//! key is still there, as in the kernel until its last reference drops.
//!
//! Serial numbers are sequential from [`KeyConfig::first_serial`], so runs
//! are reproducible (the kernel's are random).

mod assoc;
mod asym;
mod dh;
mod encrypted;
mod ops;
mod perm;
mod proc;
mod system;

pub use assoc::{Links, ASSOC_ARRAY_FAN_OUT};
pub use asym::{AsymKey, PkeyOp, Restriction};
pub use dh::{DhKdf, CRYPTO_MAX_ALG_NAME, KEYCTL_KDF_MAX_OI_LEN, KEYCTL_KDF_MAX_OUTPUT_LEN};
pub use encrypted::EncKey;
use ops::ROOT_QUOTA;

pub use ops::{KeyctlMove, KEYCTL_MOVE_EXCL};
pub use perm::*;
pub use system::{INVALID_GID, PERSISTENT_KEYRING_EXPIRY, SYSTEM_SERIAL_TOP};

use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;
use watchq_core::{post_watch_notification, Cred, Errno, Notification, Policy, Result, WatchList};

/// A key serial number (`key_serial_t`).
pub type Serial = i32;

pub use watchq_core::uapi::{
    KEY_SPEC_GROUP_KEYRING, KEY_SPEC_PROCESS_KEYRING, KEY_SPEC_REQKEY_AUTH_KEY,
    KEY_SPEC_REQUESTOR_KEYRING, KEY_SPEC_SESSION_KEYRING, KEY_SPEC_THREAD_KEYRING,
    KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING,
};

/// The key types watchq models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `user`: a readable, updatable blob of 1..=32767 bytes.
    User,
    /// `logon`: like `user`, but unreadable from userspace, and its
    /// description must be `service:name`.
    Logon,
    /// `keyring`: a set of links to keys.
    Keyring,
    /// `big_key`: like `user`, for payloads up to 1 MiB (the kernel keeps
    /// large ones encrypted in shmem; the payload rules are the same).
    BigKey,
    /// `asymmetric`: a DER X.509 certificate's public key, as the
    /// kernel's X.509 parser makes it (no read, no update); anything
    /// else is refused as unrecognised (`EBADMSG`).
    Asymmetric,
    /// `encrypted` (security/keys/encrypted-keys): a secret userspace sees
    /// only encrypted with a master `user` key (see [`EncKey`]).
    Encrypted,
    /// `blacklist` (certs/blacklist.c): hashes the kernel refuses, named
    /// `tbs:HEX` or `bin:HEX`. Userspace cannot make one: a kernel built
    /// without `CONFIG_SYSTEM_BLACKLIST_AUTH_UPDATE` (the recording's)
    /// refuses the instantiation, after the description's check.
    Blacklist,
    /// `.request_key_auth` (security/keys/request_key_auth.c): the
    /// authority a request-key helper assumes to instantiate a key under
    /// construction, made by the kernel alone (its description the target
    /// key's serial in hex, its payload, as read, the call-out
    /// information).
    RequestKeyAuth,
}

impl KeyType {
    /// The type's name as add_key(2) takes it.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::User => "user",
            KeyType::Logon => "logon",
            KeyType::Keyring => "keyring",
            KeyType::BigKey => "big_key",
            KeyType::Asymmetric => "asymmetric",
            KeyType::Encrypted => "encrypted",
            KeyType::Blacklist => "blacklist",
            KeyType::RequestKeyAuth => ".request_key_auth",
        }
    }

    /// Looks a type up by name, with `key_get_type_from_user()`'s and
    /// `key_type_lookup()`'s errors.
    ///
    /// # Errors
    /// - `EINVAL`: empty name.
    /// - `EPERM`: a name starting with `.` (internal types).
    /// - `ENODEV`: no such type.
    pub fn lookup(name: &str) -> Result<Self> {
        if name.is_empty() {
            return Err(Errno::EINVAL);
        }
        if name.starts_with('.') {
            return Err(Errno::EPERM);
        }
        match name {
            "user" => Ok(KeyType::User),
            "logon" => Ok(KeyType::Logon),
            "keyring" => Ok(KeyType::Keyring),
            "big_key" => Ok(KeyType::BigKey),
            "asymmetric" => Ok(KeyType::Asymmetric),
            "encrypted" => Ok(KeyType::Encrypted),
            "blacklist" => Ok(KeyType::Blacklist),
            _ => Err(Errno::ENODEV),
        }
    }

    /// Has a `read` method (keyctl READ works).
    fn readable(self) -> bool {
        !matches!(self, KeyType::Logon | KeyType::Asymmetric)
    }

    /// Has an `update` method.
    fn updatable(self) -> bool {
        !matches!(self, KeyType::Keyring | KeyType::Asymmetric)
    }

    /// `preparse`/`vet_description`: checks a payload and description.
    fn vet(self, desc: &str, payload: &[u8]) -> Result<()> {
        match self {
            KeyType::User | KeyType::Logon => {
                if self == KeyType::Logon && desc.find(':').is_none_or(|i| i == 0) {
                    return Err(Errno::EINVAL);
                }
                if payload.is_empty() || payload.len() > USER_PAYLOAD_MAX {
                    return Err(Errno::EINVAL);
                }
            }
            KeyType::BigKey => {
                if payload.is_empty() || payload.len() > BIG_KEY_PAYLOAD_MAX {
                    return Err(Errno::EINVAL);
                }
            }
            KeyType::Keyring => {
                if !payload.is_empty() {
                    return Err(Errno::EINVAL);
                }
            }
            // No preparse: the blob is the instantiation's and update's
            // (`encrypted_instantiate()`, `encrypted_update()`).
            KeyType::Encrypted => {}
            // blacklist_vet_description(), then blacklist_key_instantiate().
            KeyType::Blacklist => {
                let hex = desc
                    .strip_prefix("tbs:")
                    .or_else(|| desc.strip_prefix("bin:"))
                    .ok_or(Errno::EINVAL)?;
                let digits = hex.bytes().take(BLACKLIST_MAX_HASH_LEN);
                if digits
                    .clone()
                    .any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                {
                    return Err(Errno::EINVAL);
                }
                if hex.len() > BLACKLIST_MAX_HASH_LEN {
                    return Err(Errno::ENOPKG);
                }
                if hex.is_empty() || hex.len() % 2 == 1 {
                    return Err(Errno::EINVAL);
                }
                return Err(Errno::EPERM);
            }
            // asymmetric_key_preparse(): EINVAL for no data, then the
            // X.509 parser's verdict.
            KeyType::Asymmetric => {
                asym::preparse(payload)?;
            }
            // Only the kernel makes one (its name starts with a dot).
            KeyType::RequestKeyAuth => return Err(Errno::EPERM),
        }
        Ok(())
    }
}

/// The longest hash a `blacklist` key's description holds, in hex digits
/// (certs/blacklist.c's `MAX_HASH_LEN`).
const BLACKLIST_MAX_HASH_LEN: usize = 128;

/// Largest `user`/`logon` payload (`32767`).
pub const USER_PAYLOAD_MAX: usize = 32767;
/// Largest `big_key` payload (1 MiB; add_key copies one byte less).
pub const BIG_KEY_PAYLOAD_MAX: usize = 1024 * 1024;
/// Largest description, `KEY_MAX_DESC_SIZE` (4096 with the NUL).
pub const KEY_MAX_DESC_SIZE: usize = 4095;

/// Instantiation state of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Under construction (request_key's callout has not finished).
    Uninstantiated,
    /// Has a payload.
    Positive,
    /// Negatively instantiated with this error (`KEYCTL_NEGATE`/`REJECT`).
    Negative(Errno),
}

/// One key. Mirrors `struct key`.
#[derive(Debug)]
pub struct Key {
    /// Serial number.
    pub serial: Serial,
    /// Type.
    pub ktype: KeyType,
    /// Description.
    pub desc: String,
    /// Payload (empty for keyrings).
    pub payload: Vec<u8>,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission mask (possessor, user, group, other bytes).
    pub perm: u32,
    /// Instantiation state.
    pub state: KeyState,
    /// Revoked (and when, on the virtual clock).
    pub revoked_at: Option<u64>,
    /// Invalidated.
    pub invalidated: bool,
    /// Expires at this virtual time.
    pub expiry: Option<u64>,
    /// Linked keys, for a keyring, in the kernel's slot order.
    pub links: Links,
    /// What links into this keyring must pass (`KEYCTL_RESTRICT_KEYRING`).
    pub restriction: Option<Restriction>,
    /// An asymmetric key's payload (its certificate's ids, public key and
    /// signature).
    pub asym: Option<Arc<AsymKey>>,
    /// An encrypted key's payload (its secret, IV and master key's name).
    pub enc: Option<Box<EncKey>>,
    /// Security label, for the policy engine.
    pub label: Option<String>,
    /// `KEY_FLAG_KEEP`: may not be invalidated (the kernel's `.blacklist`).
    pub keep: bool,
    /// Not charged to its owner's quota (`KEY_ALLOC_NOT_IN_QUOTA`: the
    /// keyrings the kernel makes for itself).
    pub not_in_quota: bool,
    watchers: Option<Arc<WatchList>>,
    /// Bytes charged to the owner's quota.
    charged: usize,
    /// The key call that made it ([`KeyStore::begin_call`]), if one did:
    /// the collector spares it while that call is in flight.
    made_by: Option<u64>,
}

impl Key {
    fn is_keyring(&self) -> bool {
        self.ktype == KeyType::Keyring
    }

    fn expired(&self, now: u64) -> bool {
        self.expiry.is_some_and(|e| now >= e)
    }

    /// `key_validate()`: the error a use of this key meets, if any.
    fn validate(&self, now: u64) -> Result<()> {
        if self.invalidated {
            return Err(Errno::ENOKEY);
        }
        if self.revoked_at.is_some() {
            return Err(Errno::EKEYREVOKED);
        }
        if self.expired(now) {
            return Err(Errno::EKEYEXPIRED);
        }
        Ok(())
    }
}

/// Tunables of the key store.
#[derive(Clone, Copy, Debug)]
pub struct KeyConfig {
    /// The first serial handed out; the rest follow sequentially.
    pub first_serial: Serial,
    /// `/proc/sys/kernel/keys/gc_delay`: seconds a revoked or expired key
    /// stays before the collector removes it.
    pub gc_delay: u64,
    /// `maxkeys` for users other than root.
    pub maxkeys: usize,
    /// `maxbytes` for users other than root.
    pub maxbytes: usize,
    /// `CONFIG_KEY_NOTIFICATIONS`: KEYCTL_WATCH_KEY works.
    pub notifications: bool,
}

impl Default for KeyConfig {
    fn default() -> Self {
        KeyConfig {
            first_serial: 0x1000_0001,
            gc_delay: 300,
            maxkeys: 200,
            maxbytes: 20000,
            notifications: true,
        }
    }
}

/// The keys' sysctls, `/proc/sys/kernel/keys/*` (security/keys/sysctl.c):
/// what a root write there changes while the kernel runs. Each is an
/// `int` the kernel's `proc_dointvec_minmax` bounds (see
/// [`KeySysctl::RANGES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySysctl {
    /// `gc_delay`: seconds a revoked or expired key stays before the
    /// collector removes it (`key_gc_delay`).
    pub gc_delay: u64,
    /// `maxkeys`: keys a user other than root may own (`key_quota_maxkeys`).
    pub maxkeys: usize,
    /// `maxbytes`: bytes a user other than root may be charged.
    pub maxbytes: usize,
    /// `root_maxkeys`: keys root may own.
    pub root_maxkeys: usize,
    /// `root_maxbytes`: bytes root may be charged.
    pub root_maxbytes: usize,
    /// `persistent_keyring_expiry`: seconds a persistent keyring lives
    /// unused (3 days).
    pub persistent_keyring_expiry: u64,
}

impl KeySysctl {
    /// The files of `/proc/sys/kernel/keys`, in the kernel's table order,
    /// each with the `extra1`..`extra2` range its handler enforces.
    pub const RANGES: [(&'static str, i64, i64); 6] = [
        ("maxkeys", 1, i32::MAX as i64),
        ("maxbytes", 1, i32::MAX as i64),
        ("root_maxkeys", 1, i32::MAX as i64),
        ("root_maxbytes", 1, i32::MAX as i64),
        ("gc_delay", 0, i32::MAX as i64),
        ("persistent_keyring_expiry", 0, i32::MAX as i64),
    ];

    /// The value of the file `name` (one of [`KeySysctl::RANGES`]).
    pub fn get(&self, name: &str) -> Option<i64> {
        let v = match name {
            "maxkeys" => self.maxkeys as i64,
            "maxbytes" => self.maxbytes as i64,
            "root_maxkeys" => self.root_maxkeys as i64,
            "root_maxbytes" => self.root_maxbytes as i64,
            "gc_delay" => self.gc_delay as i64,
            "persistent_keyring_expiry" => self.persistent_keyring_expiry as i64,
            _ => return None,
        };
        Some(v)
    }

    /// Sets the file `name` to `v` (already range-checked); false for an
    /// unknown name.
    pub fn set(&mut self, name: &str, v: i64) -> bool {
        let u = v.max(0) as u64;
        match name {
            "maxkeys" => self.maxkeys = u as usize,
            "maxbytes" => self.maxbytes = u as usize,
            "root_maxkeys" => self.root_maxkeys = u as usize,
            "root_maxbytes" => self.root_maxbytes = u as usize,
            "gc_delay" => self.gc_delay = u,
            "persistent_keyring_expiry" => self.persistent_keyring_expiry = u,
            _ => return false,
        }
        true
    }
}

/// A process's keyrings and instantiation authority. Mirrors the keyring
/// pointers of `struct cred` and `request_key_auth`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Anchors {
    /// Thread keyring.
    pub thread: Option<Serial>,
    /// Process keyring.
    pub process: Option<Serial>,
    /// Session keyring.
    pub session: Option<Serial>,
    /// The key this process may instantiate (it holds the authorisation
    /// a request-key helper would assume).
    pub auth: Option<Serial>,
    /// Where request_key links a key it constructs when not told
    /// (`KEYCTL_SET_REQKEY_KEYRING`'s `KEY_REQKEY_DEFL_*`, the cred's
    /// `jit_keyring`; 0, the default, until set).
    pub reqkey_default: i32,
    /// The thread `thread` belongs to (0 until a key call says).
    pub tid: u32,
    /// The other threads' thread keyrings, by thread id (each task's cred
    /// has its own).
    pub threads: Vec<(u32, Serial)>,
}

impl Anchors {
    /// What `fork()` keeps: the session keyring and the instantiation
    /// authority (the cred's `request_key_auth`); thread and process
    /// keyrings are per-thread and per-process.
    pub fn for_child(&self) -> Anchors {
        Anchors {
            session: self.session,
            auth: self.auth,
            reqkey_default: self.reqkey_default,
            ..Anchors::default()
        }
    }

    /// Makes `thread` the thread keyring of thread `tid` (the caller of
    /// the key call about to run), keeping the previous thread's aside.
    /// A thread first seen has none (watchq does not see `clone()`: the
    /// kernel gives a new thread a thread keyring of its own at once when
    /// its creator had one).
    pub fn switch_thread(&mut self, tid: u32) {
        if self.tid == tid {
            return;
        }
        if self.tid == 0 {
            self.tid = tid;
            return;
        }
        if let Some(t) = self.thread.take() {
            self.threads.push((self.tid, t));
        }
        if let Some(i) = self.threads.iter().position(|&(t, _)| t == tid) {
            self.thread = Some(self.threads.swap_remove(i).1);
        }
        self.tid = tid;
    }

    /// The keys these anchors keep alive.
    pub fn roots(&self) -> impl Iterator<Item = Serial> + '_ {
        [self.thread, self.process, self.session, self.auth]
            .into_iter()
            .flatten()
            .chain(self.threads.iter().map(|&(_, t)| t))
    }
}

/// A key call in flight ([`KeyStore::begin_call`]); dropping it ends
/// the call.
#[must_use = "the call ends when this drops"]
pub struct KeyCall<'a> {
    store: &'a KeyStore,
    id: u64,
    /// The call this one is inside, on this thread (none in practice).
    outer: Option<u64>,
}

std::thread_local! {
    /// The key call this thread is in ([`KeyStore::begin_call`]): what
    /// the store makes is marked as that call's (`Key::made_by`).
    static CALL: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// The key call in flight on this thread, if any.
pub(crate) fn current_call() -> Option<u64> {
    CALL.get()
}

impl Drop for KeyCall<'_> {
    fn drop(&mut self) {
        CALL.set(self.outer);
        let mut g = self.store.inner.lock();
        if let Some(gc_starts) = g.calls.remove(&self.id) {
            // A collector that began meanwhile saw the caller's keyrings
            // as they were before the call: it runs again, for the ones
            // the call let go.
            if g.gc_starts != gc_starts {
                g.gc_pending = true;
            }
        }
    }
}

/// Who performs a key operation.
pub struct KeyCtx<'a> {
    /// The caller's credentials.
    pub cred: &'a Cred,
    /// The caller's keyrings; special-id lookups may create them.
    pub anchors: &'a mut Anchors,
    /// The security policy (its `post_notification` hook is consulted).
    pub policy: &'a dyn Policy,
    /// Give up waiting for a key under construction at this instant (EINTR).
    pub deadline: Option<Instant>,
    /// Where the caller can be interrupted: true once a signal is pending
    /// for it (a wait for a key under construction then ends with EINTR,
    /// as `wait_for_key_construction()`'s interruptible sleep does),
    /// asked every [`INTERRUPT_POLL`] while it waits.
    pub interrupted: Option<&'a dyn Fn() -> bool>,
    /// Told before each sleep of a wait for a key under construction
    /// (before [`KeyCtx::interrupted`] is asked): the shared kernel tells
    /// its client the call waits, so that the client settles the signals
    /// it has held back since the call began.
    pub waits: Option<&'a dyn Fn()>,
}

/// How often a wait for a key under construction asks
/// [`KeyCtx::interrupted`].
pub const INTERRUPT_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// One sleep of a wait for a key under construction on `cv`: until a
/// wake-up (Ok: the caller looks again), or EINTR at the deadline or once
/// the caller is interrupted.
pub(crate) fn sleep_constructed(
    cv: &Condvar,
    g: &mut parking_lot::MutexGuard<'_, Inner>,
    ctx: &KeyCtx<'_>,
) -> Result<()> {
    if let Some(waits) = ctx.waits {
        waits();
    }
    let Some(interrupted) = ctx.interrupted else {
        return match ctx.deadline {
            Some(d) if cv.wait_until(g, d).timed_out() => Err(Errno::EINTR),
            Some(_) => Ok(()),
            None => {
                cv.wait(g);
                Ok(())
            }
        };
    };
    if interrupted() {
        return Err(Errno::EINTR);
    }
    let slice = Instant::now() + INTERRUPT_POLL;
    let until = ctx.deadline.map_or(slice, |d| d.min(slice));
    if cv.wait_until(g, until).timed_out()
        && (ctx.deadline.is_some_and(|d| Instant::now() >= d) || interrupted())
    {
        return Err(Errno::EINTR);
    }
    Ok(())
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    keys: BTreeMap<Serial, Key>,
    next_serial: Serial,
    now: u64,
    /// uid → (user keyring, user session keyring).
    user_rings: HashMap<u32, (Serial, Serial)>,
    /// uid → (keys, bytes) charged.
    quota: HashMap<u32, (usize, usize)>,
    /// The collector has work: a key lost a link or was invalidated since
    /// it last ran (the kernel's `key_gc_work` is queued).
    gc_pending: bool,
    /// How many times the collector has run.
    gc_runs: u64,
    /// `maxkeys`/`maxbytes` for users other than root.
    limits: (usize, usize),
    /// The kernel's own keyrings (system_keyring.c's, the registers):
    /// collector roots.
    system: Vec<Serial>,
    /// `.user_reg`, once a user keyring was made.
    user_reg: Option<Serial>,
    /// `.persistent_register`, once a persistent keyring was asked for.
    persistent_register: Option<Serial>,
    /// `persistent_keyring_expiry`, in seconds.
    persistent_expiry: u64,
    /// `root_maxkeys`/`root_maxbytes`.
    root_limits: (usize, usize),
    /// Keys under construction by a request-key helper (their
    /// `request_key_auth`): key → what the helper may read and search.
    constructions: HashMap<Serial, Construction>,
    /// The key calls in flight ([`KeyStore::begin_call`]): call →
    /// `gc_starts` when it began.
    calls: HashMap<u64, u64>,
    /// The next call's number.
    next_call: u64,
    /// How many times the collector has begun ([`KeyStore::gc_with`]).
    gc_starts: u64,
}

/// A construction's `request_key_auth`: the call-out information, the
/// requestor's keyrings (searched, and so possessed, by the helper once it
/// assumes the authority) and the helper's session keyring.
#[derive(Clone, Debug)]
pub(crate) struct Construction {
    callout: Vec<u8>,
    requestor: [Option<Serial>; 3],
    helper_session: Serial,
    /// The `.request_key_auth` key standing for this authority.
    auth_key: Serial,
    /// The requestor's thread id (`rka->pid`; 0 when no call said).
    pid: u32,
}

/// A construction request_key(2) started: what `/sbin/request-key` is run
/// with (`call_sbin_request_key()`): `create KEY UID GID THREAD PROCESS
/// SESSION`, in a session keyring of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallOut {
    /// The key under construction.
    pub key: Serial,
    /// The helper's session keyring (`_req.KEY`).
    pub helper_session: Serial,
    /// The requestor's uid and gid.
    pub uid: u32,
    /// The requestor's gid.
    pub gid: u32,
    /// The requestor's thread, process and session keyrings (0: none; the
    /// session is the user session keyring when it has none).
    pub rings: [Serial; 3],
}

/// What request_key(2) comes to: a key, or a construction to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requested {
    /// The key found.
    Found(Serial),
    /// A new key under construction: run the helper, then
    /// [`KeyStore::construction_ended`].
    Construct(CallOut),
}

/// Every key of the emulated kernel.
pub struct KeyStore {
    inner: Mutex<Inner>,
    constructed: Condvar,
    config: KeyConfig,
    /// The sysctls in force (taken alone, never while `inner` is held by
    /// the same thread: `set_sysctl` takes it first and lets go).
    sysctl: Mutex<KeySysctl>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.inner.lock().keys.len())
            .field("config", &self.config)
            .finish()
    }
}

/// A snapshot of one key, for display and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Serial.
    pub serial: Serial,
    /// Type name.
    pub ktype: KeyType,
    /// Description.
    pub desc: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permissions.
    pub perm: u32,
    /// Links (keyrings).
    pub links: Vec<Serial>,
    /// Watches on it.
    pub watches: usize,
}

impl KeyStore {
    /// An empty store.
    pub fn new(config: KeyConfig) -> Self {
        let mut inner = Inner {
            next_serial: config.first_serial.max(3),
            limits: (config.maxkeys, config.maxbytes),
            persistent_expiry: PERSISTENT_KEYRING_EXPIRY,
            root_limits: ROOT_QUOTA,
            ..Inner::default()
        };
        inner.boot_keyrings();
        KeyStore {
            inner: Mutex::new(inner),
            constructed: Condvar::new(),
            config,
            sysctl: Mutex::new(KeySysctl {
                gc_delay: config.gc_delay,
                maxkeys: config.maxkeys,
                maxbytes: config.maxbytes,
                root_maxkeys: ROOT_QUOTA.0,
                root_maxbytes: ROOT_QUOTA.1,
                persistent_keyring_expiry: PERSISTENT_KEYRING_EXPIRY,
            }),
        }
    }

    /// The sysctls in force (`/proc/sys/kernel/keys/*`).
    pub fn sysctl(&self) -> KeySysctl {
        *self.sysctl.lock()
    }

    /// Changes the sysctls (a write to `/proc/sys/kernel/keys/*`): the
    /// quotas apply to the next charge, `gc_delay` to the next collection.
    pub fn set_sysctl(&self, f: impl FnOnce(&mut KeySysctl)) {
        let v = {
            let mut s = self.sysctl.lock();
            f(&mut s);
            *s
        };
        let mut g = self.inner.lock();
        g.limits = (v.maxkeys, v.maxbytes);
        g.root_limits = (v.root_maxkeys, v.root_maxbytes);
        g.persistent_expiry = v.persistent_keyring_expiry;
    }

    /// The configuration.
    pub fn config(&self) -> KeyConfig {
        self.config
    }

    /// The virtual clock, in seconds.
    pub fn now(&self) -> u64 {
        self.inner.lock().now
    }

    /// Moves the virtual clock forward. Run [`KeyStore::gc`] afterwards to
    /// collect what expired.
    pub fn advance_clock(&self, secs: u64) {
        let mut g = self.inner.lock();
        g.now = g.now.saturating_add(secs);
    }

    /// A snapshot of key `serial`, if it exists.
    pub fn info(&self, serial: Serial) -> Option<KeyInfo> {
        let g = self.inner.lock();
        g.keys.get(&serial).map(|k| KeyInfo {
            serial: k.serial,
            ktype: k.ktype,
            desc: k.desc.clone(),
            uid: k.uid,
            gid: k.gid,
            perm: k.perm,
            links: k.links.iter().collect(),
            watches: k.watchers.as_ref().map_or(0, |w| w.len()),
        })
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.inner.lock().keys.len()
    }

    /// True when no key exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the security label of a key (for label-based policies).
    ///
    /// # Errors
    /// `ENOKEY`: no such key.
    pub fn set_label(&self, serial: Serial, label: Option<String>) -> Result<()> {
        let mut g = self.inner.lock();
        g.keys.get_mut(&serial).ok_or(Errno::ENOKEY)?.label = label;
        Ok(())
    }

    /// Queues the collector (`schedule_work(&key_gc_work)`): something may
    /// have become garbage. The emulated kernel decides when it runs.
    pub fn schedule_gc(&self) {
        self.inner.lock().gc_pending = true;
    }

    /// What `uid`'s keys are charged: (keys, bytes), as `/proc/key-users`
    /// shows them (`qnkeys`, `qnbytes`). A key costs its description and
    /// a NUL plus its payload; a keyring, 4 bytes a link
    /// (`KEYQUOTA_LINK_BYTES`), charged to its owner.
    pub fn quota_of(&self, uid: u32) -> (usize, usize) {
        self.inner
            .lock()
            .quota
            .get(&uid)
            .copied()
            .unwrap_or_default()
    }

    /// Is the collector queued (see [`KeyStore::schedule_gc`])?
    pub fn gc_pending(&self) -> bool {
        self.inner.lock().gc_pending
    }

    /// How many times the collector has run: a host that runs the queued
    /// collector a while after it was queued tells one queuing from the
    /// next by it.
    pub fn gc_runs(&self) -> u64 {
        self.inner.lock().gc_runs
    }

    /// A key call begins on this thread: until the returned guard drops,
    /// the collector spares every key the call makes, as the kernel's
    /// collector never takes a key a syscall still holds a reference to
    /// (the keys other calls make meanwhile, a request-key helper's while
    /// its requestor waits, are not spared for it). A host whose calls
    /// work on a copy of the caller's keyrings (installing what the call
    /// made, a joined session keyring or a keyring a special id created,
    /// when it returns) drops the guard after installing them; a
    /// collector that ran meanwhile is queued again then, for what the
    /// call's keyrings let go and what it spared.
    pub fn begin_call(&self) -> KeyCall<'_> {
        let mut g = self.inner.lock();
        let id = g.next_call;
        g.next_call += 1;
        let at = g.gc_starts;
        g.calls.insert(id, at);
        let outer = CALL.replace(Some(id));
        KeyCall {
            store: self,
            id,
            outer,
        }
    }

    /// The collector: unlinks dead keys from every keyring (silently), then
    /// destroys every key not reachable from `roots` (process anchors), the
    /// per-user keyrings or a key under construction, posting a removal
    /// record to each watcher of a destroyed key. Mirrors `key_garbage_collector()`.
    pub fn gc(&self, roots: &[Serial]) {
        self.gc_with(|| roots.to_vec());
    }

    /// [`KeyStore::gc`], with the roots gathered by `roots` once the
    /// collector has begun: a key made by a call in flight then, or begun
    /// since, is spared (it may not be in the roots yet; the call holds
    /// it, [`KeyStore::begin_call`]), and the collector is queued again if
    /// it spared one that nothing reached.
    pub fn gc_with(&self, roots: impl FnOnce() -> Vec<Serial>) {
        let (in_flight, begun_after) = {
            let mut g = self.inner.lock();
            g.gc_starts += 1;
            let ids: std::collections::HashSet<u64> = g.calls.keys().copied().collect();
            (ids, g.next_call)
        };
        let held = |k: &Key| {
            k.made_by
                .is_some_and(|c| c >= begun_after || in_flight.contains(&c))
        };
        let roots = roots();
        let delay = self.sysctl().gc_delay;
        let mut g = self.inner.lock();
        g.gc_pending = false;
        g.gc_runs += 1;
        let now = g.now;
        let dead: Vec<Serial> = g
            .keys
            .values()
            .filter(|k| {
                k.invalidated
                    || k.revoked_at.is_some_and(|t| now >= t.saturating_add(delay))
                    || k.expiry.is_some_and(|t| now >= t.saturating_add(delay))
            })
            .map(|k| k.serial)
            .collect();
        if !dead.is_empty() {
            // keyring_gc(): dead links go, silently, and their bytes stay
            // charged to the keyring (assoc_array_gc() reserves nothing,
            // unlike an unlink; a clear or the keyring's own end gives them
            // back): procfs.txt's gc-link-bytes, recorded on 6.12.117.
            for k in g.keys.values_mut() {
                if k.links.iter().any(|s| dead.contains(&s)) {
                    k.links.retain(|s| !dead.contains(&s));
                }
            }
        }
        let mut reach: Vec<Serial> = roots.to_vec();
        reach.extend(g.user_rings.values().flat_map(|&(u, s)| [u, s]));
        reach.extend(g.system_roots().collect::<Vec<_>>());
        reach.extend(
            g.keys
                .values()
                .filter(|k| k.state == KeyState::Uninstantiated)
                .map(|k| k.serial),
        );
        // A construction's authority is held by the helper's cred.
        reach.extend(g.constructions.values().map(|c| c.auth_key));
        let mut seen = std::collections::HashSet::new();
        while let Some(s) = reach.pop() {
            if seen.insert(s) {
                if let Some(k) = g.keys.get(&s) {
                    reach.extend(k.links.iter());
                    // A restriction holds a reference to its key.
                    reach.extend(k.restriction.and_then(|r| r.key()));
                }
            }
        }
        let mut spared = false;
        let doomed: Vec<Serial> = g
            .keys
            .values()
            .filter(|k| !seen.contains(&k.serial))
            .filter(|k| {
                let spare = held(k);
                spared |= spare;
                !spare
            })
            .map(|k| k.serial)
            .collect();
        if spared {
            g.gc_pending = true;
        }
        for s in doomed {
            let k = g.remove_key(s).expect("listed above");
            if let Some(wl) = &k.watchers {
                watchq_core::remove_watch_list(wl, s as u32 as u64);
            }
        }
    }

    fn notify(k: &Key, ctx: &KeyCtx<'_>, subtype: u8, aux: u32) {
        if let Some(wl) = &k.watchers {
            let n = Notification::key(subtype, k.serial as u32, aux);
            post_watch_notification(Some(wl), &n, ctx.cred, k.serial as u32 as u64, ctx.policy);
        }
    }
}

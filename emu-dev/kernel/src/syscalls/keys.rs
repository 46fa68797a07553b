//! The key system calls: add_key(2), request_key(2) and keyctl(2)'s
//! commands, typed.
//!
//! Mirrors security/keys/keyctl.c. Each call runs the key store's
//! operation with the process's credentials, keyrings, the kernel's policy
//! and the alarm (a lookup that waits for a key under construction is
//! interrupted by it). A call that leaves garbage (an unlink, a clear, an
//! invalidation, a replaced link) only queues the collector, as the
//! kernel's `schedule_work(&key_gc_work)` does: the collector runs after
//! the call has returned, when a consumer waits (`Kernel::flush_key_gc`;
//! docs/delivery.md §1).

use super::watch_queue::WatchQueueCalls;
use crate::process::Process;
use crate::wire::Reply;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use watchq_core::{Errno, Result};
use watchq_sources::keys::{
    need, CallOut, DhKdf, KeyCtx, KeyStore, KeyctlMove, PkeyOp, Requested, Serial,
};

/// keyctl(2) command numbers (`include/uapi/linux/keyctl.h`).
pub mod cmd {
    /// KEYCTL_GET_KEYRING_ID.
    pub const GET_KEYRING_ID: u32 = 0;
    /// KEYCTL_JOIN_SESSION_KEYRING.
    pub const JOIN_SESSION_KEYRING: u32 = 1;
    /// KEYCTL_UPDATE.
    pub const UPDATE: u32 = 2;
    /// KEYCTL_REVOKE.
    pub const REVOKE: u32 = 3;
    /// KEYCTL_CHOWN.
    pub const CHOWN: u32 = 4;
    /// KEYCTL_SETPERM.
    pub const SETPERM: u32 = 5;
    /// KEYCTL_DESCRIBE.
    pub const DESCRIBE: u32 = 6;
    /// KEYCTL_CLEAR.
    pub const CLEAR: u32 = 7;
    /// KEYCTL_LINK.
    pub const LINK: u32 = 8;
    /// KEYCTL_UNLINK.
    pub const UNLINK: u32 = 9;
    /// KEYCTL_SEARCH.
    pub const SEARCH: u32 = 10;
    /// KEYCTL_READ.
    pub const READ: u32 = 11;
    /// KEYCTL_INSTANTIATE.
    pub const INSTANTIATE: u32 = 12;
    /// KEYCTL_NEGATE.
    pub const NEGATE: u32 = 13;
    /// KEYCTL_SET_REQKEY_KEYRING.
    pub const SET_REQKEY_KEYRING: u32 = 14;
    /// KEYCTL_SET_TIMEOUT.
    pub const SET_TIMEOUT: u32 = 15;
    /// KEYCTL_GET_SECURITY.
    pub const GET_SECURITY: u32 = 17;
    /// KEYCTL_SESSION_TO_PARENT.
    pub const SESSION_TO_PARENT: u32 = 18;
    /// KEYCTL_REJECT.
    pub const REJECT: u32 = 19;
    /// KEYCTL_INSTANTIATE_IOV.
    pub const INSTANTIATE_IOV: u32 = 20;
    /// KEYCTL_INVALIDATE.
    pub const INVALIDATE: u32 = 21;
    /// KEYCTL_GET_PERSISTENT.
    pub const GET_PERSISTENT: u32 = 22;
    /// KEYCTL_PKEY_QUERY.
    pub const PKEY_QUERY: u32 = 24;
    /// KEYCTL_PKEY_ENCRYPT.
    pub const PKEY_ENCRYPT: u32 = 25;
    /// KEYCTL_PKEY_DECRYPT.
    pub const PKEY_DECRYPT: u32 = 26;
    /// KEYCTL_PKEY_SIGN.
    pub const PKEY_SIGN: u32 = 27;
    /// KEYCTL_PKEY_VERIFY.
    pub const PKEY_VERIFY: u32 = 28;
    /// KEYCTL_RESTRICT_KEYRING.
    pub const RESTRICT_KEYRING: u32 = 29;
    /// KEYCTL_MOVE.
    pub const MOVE: u32 = 30;
    /// KEYCTL_DH_COMPUTE.
    pub const DH_COMPUTE: u32 = 23;
    /// KEYCTL_ASSUME_AUTHORITY.
    pub const ASSUME_AUTHORITY: u32 = 16;
    /// KEYCTL_CAPABILITIES.
    pub const CAPABILITIES: u32 = 31;
    /// KEYCTL_WATCH_KEY.
    pub const WATCH_KEY: u32 = 32;
    /// Not a kernel command: watchq's mark on a command whose user buffer
    /// could not be copied in (the preload's `copy_from_user` faulted).
    /// The kernel makes its checks that come before the copy, then says
    /// `EFAULT` (see [`super::KeyCalls::keyctl_checks_before_copy`]).
    pub const FAULTED: u32 = 0x8000_0000;
}

/// `keyctl_pkey_params_parse()`: the info string of the public-key
/// commands is words separated by spaces or tabs, each `enc=NAME` or
/// `hash=NAME` (NAME not empty), each at most once.
///
/// # Errors
/// `EINVAL`: any other word, an empty value, a repeated one.
pub fn pkey_params_parse(info: &str) -> Result<()> {
    pkey_params(info).map(|_| ())
}

/// [`pkey_params_parse`]'s values: the encoding (`raw` without `enc=`)
/// and the hash, if given.
///
/// # Errors
/// As [`pkey_params_parse`].
pub fn pkey_params(info: &str) -> Result<(&str, Option<&str>)> {
    let (mut enc, mut hash) = (None, None);
    for word in info.split([' ', '\t']).filter(|w| !w.is_empty()) {
        let (seen, value) = if let Some(v) = word.strip_prefix("enc=") {
            (&mut enc, v)
        } else if let Some(v) = word.strip_prefix("hash=") {
            (&mut hash, v)
        } else {
            return Err(Errno::EINVAL);
        };
        if seen.replace(value).is_some() || value.is_empty() {
            return Err(Errno::EINVAL);
        }
    }
    Ok((enc.unwrap_or("raw"), hash))
}

/// The key system calls. Mirrors security/keys/keyctl.c.
pub trait KeyCalls {
    /// add_key(2). See `KeyStore::add_key` for the errors.
    ///
    /// # Errors
    /// As `KeyStore::add_key`.
    fn add_key(
        &self,
        ktype: &str,
        desc: Option<&str>,
        payload: &[u8],
        ring: Serial,
    ) -> Result<Serial>;

    /// request_key(2) without call-out information: search only.
    ///
    /// # Errors
    /// As `KeyStore::request_key`.
    fn request_key(&self, ktype: &str, desc: &str, dest: Serial) -> Result<Serial> {
        match self.request_key_with(ktype, desc, None, dest)? {
            Requested::Found(k) => Ok(k),
            Requested::Construct(_) => Err(Errno::ENOKEY),
        }
    }

    /// request_key(2): the key found, or, with call-out information and
    /// nothing found, a construction for `/sbin/request-key` to finish
    /// (then [`KeyCalls::request_key_ended`]).
    ///
    /// # Errors
    /// As `KeyStore::request_key`.
    fn request_key_with(
        &self,
        ktype: &str,
        desc: &str,
        callout: Option<&[u8]>,
        dest: Serial,
    ) -> Result<Requested>;

    /// The helper of a construction this process asked for has exited.
    ///
    /// # Errors
    /// As `KeyStore::construction_ended`.
    fn request_key_ended(&self, call: &CallOut) -> Result<Serial>;

    /// KEYCTL_ASSUME_AUTHORITY.
    ///
    /// # Errors
    /// As `KeyStore::assume_authority`.
    fn keyctl_assume_authority(&self, id: Serial) -> Result<Serial>;

    /// Plays the request-key helper: creates `ktype`/`desc` under
    /// construction in `dest` and takes the authority to instantiate it.
    ///
    /// # Errors
    /// As `KeyStore::construct`.
    fn key_construct(&self, ktype: &str, desc: &str, dest: Serial) -> Result<Serial>;

    /// KEYCTL_GET_KEYRING_ID.
    ///
    /// # Errors
    /// As `KeyStore::get_keyring_id`.
    fn keyctl_get_keyring_id(&self, id: Serial, create: bool) -> Result<Serial>;

    /// KEYCTL_JOIN_SESSION_KEYRING.
    ///
    /// # Errors
    /// As `KeyStore::join_session_keyring`.
    fn keyctl_join_session_keyring(&self, name: Option<&str>) -> Result<Serial>;

    /// KEYCTL_UPDATE.
    ///
    /// # Errors
    /// As `KeyStore::update`.
    fn keyctl_update(&self, id: Serial, payload: &[u8]) -> Result<()>;

    /// KEYCTL_REVOKE.
    ///
    /// # Errors
    /// As `KeyStore::revoke`.
    fn keyctl_revoke(&self, id: Serial) -> Result<()>;

    /// KEYCTL_CHOWN; `u32::MAX` (−1) leaves that id alone.
    ///
    /// # Errors
    /// As `KeyStore::chown`.
    fn keyctl_chown(&self, id: Serial, uid: u32, gid: u32) -> Result<()>;

    /// KEYCTL_SETPERM.
    ///
    /// # Errors
    /// As `KeyStore::setperm`.
    fn keyctl_setperm(&self, id: Serial, perm: u32) -> Result<()>;

    /// KEYCTL_DESCRIBE: `type;uid;gid;perm;description`.
    ///
    /// # Errors
    /// As `KeyStore::describe`.
    fn keyctl_describe(&self, id: Serial) -> Result<String>;

    /// KEYCTL_CLEAR.
    ///
    /// # Errors
    /// As `KeyStore::clear`.
    fn keyctl_clear(&self, id: Serial) -> Result<()>;

    /// KEYCTL_LINK.
    ///
    /// # Errors
    /// As `KeyStore::link`.
    fn keyctl_link(&self, id: Serial, ring: Serial) -> Result<()>;

    /// KEYCTL_UNLINK.
    ///
    /// # Errors
    /// As `KeyStore::unlink`.
    fn keyctl_unlink(&self, id: Serial, ring: Serial) -> Result<()>;

    /// KEYCTL_SEARCH.
    ///
    /// # Errors
    /// As `KeyStore::search`.
    fn keyctl_search(&self, ring: Serial, ktype: &str, desc: &str, dest: Serial) -> Result<Serial>;

    /// KEYCTL_READ: the whole payload (the C call copies what fits and
    /// returns this length).
    ///
    /// # Errors
    /// As `KeyStore::read`.
    fn keyctl_read(&self, id: Serial) -> Result<Vec<u8>>;

    /// KEYCTL_INSTANTIATE.
    ///
    /// # Errors
    /// As `KeyStore::instantiate`.
    fn keyctl_instantiate(&self, id: Serial, payload: &[u8], ring: Serial) -> Result<()>;

    /// KEYCTL_NEGATE: KEYCTL_REJECT with ENOKEY.
    ///
    /// # Errors
    /// As `KeyStore::reject`.
    fn keyctl_negate(&self, id: Serial, timeout: u32, ring: Serial) -> Result<()>;

    /// KEYCTL_REJECT.
    ///
    /// # Errors
    /// As `KeyStore::reject`.
    fn keyctl_reject(&self, id: Serial, timeout: u32, error: i32, ring: Serial) -> Result<()>;

    /// KEYCTL_SET_TIMEOUT.
    ///
    /// # Errors
    /// As `KeyStore::set_timeout`.
    fn keyctl_set_timeout(&self, id: Serial, secs: u32) -> Result<()>;

    /// KEYCTL_INVALIDATE.
    ///
    /// # Errors
    /// As `KeyStore::invalidate`.
    fn keyctl_invalidate(&self, id: Serial) -> Result<()>;

    /// KEYCTL_MOVE.
    ///
    /// # Errors
    /// As `KeyStore::move_key`.
    fn keyctl_move(&self, id: Serial, from: Serial, to: Serial, flags: KeyctlMove) -> Result<()>;

    /// KEYCTL_RESTRICT_KEYRING.
    ///
    /// # Errors
    /// As `KeyStore::restrict_keyring`.
    fn keyctl_restrict_keyring(
        &self,
        id: Serial,
        ktype: Option<&str>,
        restriction: Option<&str>,
    ) -> Result<()>;

    /// KEYCTL_CAPABILITIES: the capability bytes.
    fn keyctl_capabilities(&self) -> [u8; 2];

    /// KEYCTL_DH_COMPUTE over (private, prime, base) for a buffer of
    /// `buflen` bytes: the call's value and the bytes for the buffer.
    ///
    /// # Errors
    /// As `KeyStore::dh_compute`.
    fn keyctl_dh_compute(
        &self,
        keys: (Serial, Serial, Serial),
        buflen: usize,
        kdf: Option<&DhKdf>,
    ) -> Result<(usize, Vec<u8>)>;

    /// KEYCTL_SET_REQKEY_KEYRING: the previous setting.
    ///
    /// # Errors
    /// As `KeyStore::set_reqkey_keyring`.
    fn keyctl_set_reqkey_keyring(&self, value: i32) -> Result<i32>;

    /// KEYCTL_GET_SECURITY: the key's security label (empty without one).
    ///
    /// # Errors
    /// As `KeyStore::get_security`.
    fn keyctl_get_security(&self, id: Serial) -> Result<String>;

    /// KEYCTL_GET_PERSISTENT: `uid`'s persistent keyring (`u32::MAX`: the
    /// caller's), linked into `dest`.
    ///
    /// # Errors
    /// As `KeyStore::get_persistent`.
    fn keyctl_get_persistent(&self, uid: u32, dest: Serial) -> Result<Serial>;

    /// KEYCTL_READ with a user buffer of `buflen` bytes (0: none): the
    /// whole payload, which the caller copies only when it fits.
    ///
    /// # Errors
    /// As `KeyStore::read_into`.
    fn keyctl_read_into(&self, id: Serial, buflen: usize) -> Result<Vec<u8>>;

    /// KEYCTL_PKEY_ENCRYPT/DECRYPT/SIGN/VERIFY (`op`, a `cmd` value) on
    /// key `id` with the info string `info` and the parameter block's
    /// lengths, after the block and the string were read: `input` is the
    /// input buffer's `in_len` bytes (`None` when it could not be read:
    /// `EFAULT` after the checks). Returns the output to copy out.
    /// Mirrors `keyctl_pkey_e_d_s()` and `keyctl_pkey_verify()`.
    ///
    /// # Errors
    /// `EINVAL` ([`pkey_params_parse`]), then as `KeyStore::pkey_op`.
    fn keyctl_pkey_op(
        &self,
        op: u32,
        id: Serial,
        info: &str,
        lens: (u32, u32),
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>>;

    /// KEYCTL_PKEY_QUERY on key `id` with the info string `info`: the 56
    /// bytes of `struct keyctl_pkey_query`. Mirrors `keyctl_pkey_query()`.
    ///
    /// # Errors
    /// `EINVAL` ([`pkey_params_parse`]), the lookup's (search
    /// permission), `EOPNOTSUPP` (not an asymmetric key), then
    /// `KeyStore::pkey_query`'s.
    fn keyctl_pkey_query(&self, id: Serial, info: &str) -> Result<Vec<u8>>;

    /// KEYCTL_SESSION_TO_PARENT's look-up: the caller's session keyring,
    /// which must grant link permission. The parent is the host's to find.
    ///
    /// # Errors
    /// As `KeyStore::session_for_parent`.
    fn keyctl_session_for_parent(&self) -> Result<Serial>;

    /// The checks command `op` makes before it copies its user buffer in
    /// (see [`cmd::FAULTED`]): `Ok` when they pass (the call then fails
    /// with `EFAULT`). KEYCTL_INSTANTIATE checks the caller's authority
    /// over `id`, KEYCTL_RESTRICT_KEYRING looks `id` up with setattr
    /// permission; the other commands copy first.
    ///
    /// # Errors
    /// `EPERM` (no authority), the lookup's.
    fn keyctl_checks_before_copy(&self, op: u32, id: Serial) -> Result<()>;

    /// KEYCTL_WATCH_KEY: `tag` 0..=255 watches key `id` through the
    /// notification pipe `fd`; −1 removes the watch.
    ///
    /// # Errors
    /// As `KeyStore::watch_key`; the fd is checked after the key.
    fn keyctl_watch_key(&self, id: Serial, fd: i32, tag: i32) -> Result<()>;
}

impl KeyCalls for Process {
    fn add_key(
        &self,
        ktype: &str,
        desc: Option<&str>,
        payload: &[u8],
        ring: Serial,
    ) -> Result<Serial> {
        with_keys(self, |k, c| k.add_key(c, ktype, desc, payload, ring))
    }

    fn request_key_with(
        &self,
        ktype: &str,
        desc: &str,
        callout: Option<&[u8]>,
        dest: Serial,
    ) -> Result<Requested> {
        with_keys(self, |k, c| k.request_key(c, ktype, desc, callout, dest))
    }

    fn request_key_ended(&self, call: &CallOut) -> Result<Serial> {
        with_keys(self, |k, c| k.construction_ended(c, call))
    }

    fn keyctl_assume_authority(&self, id: Serial) -> Result<Serial> {
        with_keys(self, |k, c| k.assume_authority(c, id))
    }

    fn key_construct(&self, ktype: &str, desc: &str, dest: Serial) -> Result<Serial> {
        with_keys(self, |k, c| k.construct(c, ktype, desc, dest))
    }

    fn keyctl_get_keyring_id(&self, id: Serial, create: bool) -> Result<Serial> {
        with_keys(self, |k, c| k.get_keyring_id(c, id, create))
    }

    fn keyctl_join_session_keyring(&self, name: Option<&str>) -> Result<Serial> {
        with_keys(self, |k, c| k.join_session_keyring(c, name))
    }

    fn keyctl_update(&self, id: Serial, payload: &[u8]) -> Result<()> {
        with_keys(self, |k, c| k.update(c, id, payload))
    }

    fn keyctl_revoke(&self, id: Serial) -> Result<()> {
        with_keys(self, |k, c| k.revoke(c, id))
    }

    fn keyctl_chown(&self, id: Serial, uid: u32, gid: u32) -> Result<()> {
        let opt = |v: u32| (v != u32::MAX).then_some(v);
        with_keys(self, |k, c| k.chown(c, id, opt(uid), opt(gid)))
    }

    fn keyctl_setperm(&self, id: Serial, perm: u32) -> Result<()> {
        with_keys(self, |k, c| k.setperm(c, id, perm))
    }

    fn keyctl_describe(&self, id: Serial) -> Result<String> {
        with_keys(self, |k, c| k.describe(c, id))
    }

    fn keyctl_clear(&self, id: Serial) -> Result<()> {
        with_keys(self, |k, c| k.clear(c, id))
    }

    fn keyctl_link(&self, id: Serial, ring: Serial) -> Result<()> {
        with_keys(self, |k, c| k.link(c, id, ring))
    }

    fn keyctl_unlink(&self, id: Serial, ring: Serial) -> Result<()> {
        with_keys(self, |k, c| k.unlink(c, id, ring))
    }

    fn keyctl_search(&self, ring: Serial, ktype: &str, desc: &str, dest: Serial) -> Result<Serial> {
        with_keys(self, |k, c| k.search(c, ring, ktype, desc, dest))
    }

    fn keyctl_read(&self, id: Serial) -> Result<Vec<u8>> {
        with_keys(self, |k, c| k.read(c, id))
    }

    fn keyctl_instantiate(&self, id: Serial, payload: &[u8], ring: Serial) -> Result<()> {
        with_keys(self, |k, c| k.instantiate(c, id, payload, ring))
    }

    fn keyctl_negate(&self, id: Serial, timeout: u32, ring: Serial) -> Result<()> {
        self.keyctl_reject(id, timeout, Errno::ENOKEY.as_raw(), ring)
    }

    fn keyctl_reject(&self, id: Serial, timeout: u32, error: i32, ring: Serial) -> Result<()> {
        with_keys(self, |k, c| k.reject(c, id, timeout, error, ring))
    }

    fn keyctl_set_timeout(&self, id: Serial, secs: u32) -> Result<()> {
        with_keys(self, |k, c| k.set_timeout(c, id, secs))
    }

    fn keyctl_invalidate(&self, id: Serial) -> Result<()> {
        with_keys(self, |k, c| k.invalidate(c, id))
    }

    fn keyctl_move(&self, id: Serial, from: Serial, to: Serial, flags: KeyctlMove) -> Result<()> {
        with_keys(self, |k, c| k.move_key(c, id, from, to, flags))
    }

    fn keyctl_restrict_keyring(
        &self,
        id: Serial,
        ktype: Option<&str>,
        restriction: Option<&str>,
    ) -> Result<()> {
        with_keys(self, |k, c| k.restrict_keyring(c, id, ktype, restriction))
    }

    fn keyctl_capabilities(&self) -> [u8; 2] {
        self.kernel().keys().capabilities()
    }

    fn keyctl_dh_compute(
        &self,
        keys: (Serial, Serial, Serial),
        buflen: usize,
        kdf: Option<&DhKdf>,
    ) -> Result<(usize, Vec<u8>)> {
        with_keys(self, |k, c| k.dh_compute(c, keys, buflen, kdf))
    }

    fn keyctl_set_reqkey_keyring(&self, value: i32) -> Result<i32> {
        with_keys(self, |k, c| k.set_reqkey_keyring(c, value))
    }

    fn keyctl_get_security(&self, id: Serial) -> Result<String> {
        with_keys(self, |k, c| k.get_security(c, id))
    }

    fn keyctl_get_persistent(&self, uid: u32, dest: Serial) -> Result<Serial> {
        with_keys(self, |k, c| k.get_persistent(c, uid, dest))
    }

    fn keyctl_read_into(&self, id: Serial, buflen: usize) -> Result<Vec<u8>> {
        with_keys(self, |k, c| k.read_into(c, id, buflen))
    }

    fn keyctl_pkey_op(
        &self,
        op: u32,
        id: Serial,
        info: &str,
        (in_len, out_len): (u32, u32),
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let params = pkey_params(info)?;
        let op = match op {
            cmd::PKEY_ENCRYPT => PkeyOp::Encrypt,
            cmd::PKEY_DECRYPT => PkeyOp::Decrypt,
            cmd::PKEY_SIGN => PkeyOp::Sign,
            cmd::PKEY_VERIFY => PkeyOp::Verify,
            _ => return Err(Errno::EOPNOTSUPP),
        };
        with_keys(self, |k, c| {
            k.pkey_op(c, op, id, params, in_len, out_len, input)
        })
    }

    fn keyctl_pkey_query(&self, id: Serial, info: &str) -> Result<Vec<u8>> {
        let (enc, hash) = pkey_params(info)?;
        with_keys(self, |k, c| k.pkey_query(c, id, enc, hash))
    }

    fn keyctl_session_for_parent(&self) -> Result<Serial> {
        with_keys(self, |k, c| k.session_for_parent(c))
    }

    fn keyctl_checks_before_copy(&self, op: u32, id: Serial) -> Result<()> {
        match op {
            cmd::INSTANTIATE | cmd::INSTANTIATE_IOV => {
                if self.anchors().auth == Some(id) {
                    Ok(())
                } else {
                    Err(Errno::EPERM)
                }
            }
            cmd::RESTRICT_KEYRING => with_keys(self, |k, c| k.access(c, id, need::SETATTR)),
            _ => Ok(()),
        }
    }

    fn keyctl_watch_key(&self, id: Serial, fd: i32, tag: i32) -> Result<()> {
        let limit = self.soft_nofile();
        with_keys(self, |k, c| {
            k.watch_key(c, id, tag, || self.watch_queue(fd), limit)
        })
    }
}

thread_local! {
    /// The connection this server thread serves a key call from, while
    /// it does ([`interruptible_by`]), and whether the client has been
    /// told the call waits ([`Reply::waiting_notice`], once per call).
    static INTERRUPT_SOCK: std::cell::RefCell<Option<(Arc<OwnedFd>, std::cell::Cell<bool>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f`, a key call from the client at the other end of `sock`, with
/// its key waits interruptible: when such a wait begins the client is
/// told (the [`Reply::waiting_notice`], once, before the reply), and it
/// sends `Request::Interrupt` while the call is in progress when a
/// signal handler ran in the calling thread (since the call began: it
/// holds its signals back until told), so a wait for a key under
/// construction ends (EINTR, as the kernel's interruptible
/// `wait_for_key_construction()`) once the socket is readable; a client
/// that hung up ends it too. The message stays in the socket for the
/// server's loop, which skips it.
pub(crate) fn interruptible_by<R>(sock: &Arc<OwnedFd>, f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            INTERRUPT_SOCK.with(|c| c.borrow_mut().take());
        }
    }
    INTERRUPT_SOCK.with(|c| *c.borrow_mut() = Some((sock.clone(), std::cell::Cell::new(false))));
    let _reset = Reset;
    f()
}

/// Is the socket readable (a message, or the peer gone)?
fn readable(sock: &OwnedFd) -> bool {
    let mut p = [rustix::event::PollFd::new(
        sock,
        rustix::event::PollFlags::IN,
    )];
    matches!(rustix::event::poll(&mut p, Some(&rustix::event::Timespec::default())), Ok(n) if n > 0)
}

/// The real task a key call served on this thread comes from
/// ([`as_task`]).
#[derive(Clone, Copy)]
struct CallTask {
    pid: u32,
    tid: u32,
    /// Does a stop of the task end the call's wait for a key under
    /// construction?
    stop_ends_wait: bool,
}

std::thread_local! {
    /// The task of the key call this server thread serves; None in a
    /// process that hosts its own kernel.
    static CALL_TASK: std::cell::Cell<Option<CallTask>> = const { std::cell::Cell::new(None) };
}

/// Until the guard drops, key calls on this server thread run as thread
/// `tid` of real process `pid`: its thread keyring is the one they see
/// and change. Two threads' calls may run at once (each connection of a
/// process has its server thread), so the process's anchors are switched
/// to the call's thread inside [`with_keys`], under the lock it copies
/// them with, never before it.
///
/// With `stop_ends_wait`, a wait for a key under construction also ends
/// (as interrupted) once the task is seen stopped (a stop signal, or a
/// tracer's stop): the kernel's interruptible wait is woken by a stop as
/// by any signal, and the call then fails or is restarted after the task
/// continues, as after a handler (`KEYCTL_READ` fails with ENOKEY). No
/// handler runs; the preload's held sleep sees a stop of any length (its
/// epoll_wait ends with EINTR after one) and says so as after a
/// restarting handler. Here the task's state is read every
/// [`watchq_sources::keys::INTERRUPT_POLL`] while the call waits, for a
/// client that sleeps otherwise (no signalfd, EMFILE), where a stop
/// shorter than that may pass unseen.
pub(crate) fn as_task(pid: u32, tid: u32, stop_ends_wait: bool) -> impl Drop {
    struct Reset(Option<CallTask>);
    impl Drop for Reset {
        fn drop(&mut self) {
            CALL_TASK.with(|c| c.set(self.0));
        }
    }
    let task = CallTask {
        pid,
        tid,
        stop_ends_wait,
    };
    Reset(CALL_TASK.with(|c| c.replace(Some(task))))
}

/// Is real task `tid` of `pid` stopped (state `T`, or `t` under a
/// tracer), as `/proc/PID/task/TID/stat` says now? A task gone is not.
fn task_stopped(pid: u32, tid: u32) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/task/{tid}/stat")) else {
        return false;
    };
    // The state follows the command name's closing parenthesis (the last
    // one: the name may hold parentheses itself).
    stat.iter()
        .rposition(|&b| b == b')')
        .and_then(|i| stat.get(i + 2))
        .is_some_and(|&s| s == b'T' || s == b't')
}

/// Runs `f` on the key store as process `p`.
///
/// The call works on a copy of the process's keyrings, as a kernel
/// syscall works on its `current_cred()`: the process's lock on them is
/// not held through the call, so a call that sleeps (waiting for a key
/// under construction) never blocks the key calls of the process's other
/// threads, one of which may be the helper that is to instantiate the key
/// (`keys.rs` `keys_construction_waiters_never_block_the_helper`). What
/// the call changed is written back after it, field by field; a field
/// another thread changed meanwhile keeps that thread's value (the first
/// keyring installed wins, as `install_process_keyring_to_cred()` finds
/// one already there).
fn with_keys<R>(p: &Process, f: impl FnOnce(&KeyStore, &mut KeyCtx<'_>) -> Result<R>) -> Result<R> {
    // Declared first, dropped last: the collector spares what the call
    // makes until it is written back below (`keys.rs`
    // `keys_collector_spares_what_a_call_in_flight_made`).
    let _call = p.kernel().keys().begin_call();
    let cred = p.cred();
    let policy = p.kernel().policy();
    let task = CALL_TASK.with(std::cell::Cell::get);
    let before = {
        let mut a = p.anchors();
        if let Some(t) = task {
            a.switch_thread(t.tid);
        }
        a.clone()
    };
    let mut anchors = before.clone();
    let mut ctx = KeyCtx {
        cred: &cred,
        anchors: &mut anchors,
        policy: &*policy,
        deadline: p.alarm_deadline(),
        interrupted: None,
        waits: None,
    };
    let sock = INTERRUPT_SOCK.with(|c| c.borrow().as_ref().map(|(s, _)| s.clone()));
    let stops = task.filter(|t| t.stop_ends_wait);
    let signalled = || {
        sock.as_deref().is_some_and(readable) || stops.is_some_and(|t| task_stopped(t.pid, t.tid))
    };
    let waits = || {
        let first = INTERRUPT_SOCK.with(|c| {
            c.borrow()
                .as_ref()
                .is_some_and(|(_, told)| !told.replace(true))
        });
        if let (true, Some(s)) = (first, sock.as_deref()) {
            // A client that is gone ends the wait through `signalled`.
            let _ = crate::sock::send(s.as_fd(), &Reply::waiting_notice(), &[]);
        }
    };
    if sock.is_some() {
        ctx.interrupted = Some(&signalled);
        ctx.waits = Some(&waits);
    }
    let r = f(p.kernel().keys(), &mut ctx);
    if anchors != before {
        let mut now = p.anchors();
        let now = &mut *now;
        // Another thread's call may have switched them to its thread
        // since: back to this call's, whose thread keyring no other
        // thread's call changes.
        if before.tid != 0 {
            now.switch_thread(before.tid);
        }
        macro_rules! write_back {
            ($($field:ident),*) => {$(
                if anchors.$field != before.$field && now.$field == before.$field {
                    now.$field = anchors.$field;
                }
            )*};
        }
        // Every field, named (a new one fails to compile here).
        let watchq_sources::keys::Anchors {
            thread: _,
            process: _,
            session: _,
            auth: _,
            reqkey_default: _,
            tid: _,
            threads: _,
        } = before;
        // `tid` and `threads` change only when the anchors are switched to
        // a call's thread (above, at the start of each call), never inside
        // one: as this call found them, they stay as they are now.
        write_back!(thread, process, session, auth, reqkey_default, tid, threads);
    }
    r
}

//! Key notifications (spec §1.14; oracle FINDINGS §B, §F): which keyctl
//! operation posts which record, byte for byte, and the watch errors in the
//! kernel's order.

use std::sync::Arc;
use watchq_core::uapi::*;
use watchq_core::{Errno, Notification};
use watchq_kernel::keys::{
    Serial, KEYCTL_MOVE_EXCL, KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING,
};
use watchq_kernel::prelude::*;
use watchq_kernel::{Kernel, KernelConfig, PollFd, Process};

struct K {
    kernel: Arc<Kernel>,
    p: Arc<Process>,
    fd: i32,
    s: Serial,
}

impl K {
    fn new() -> Self {
        K::on(Kernel::new(KernelConfig::default()), 0)
    }

    /// A process of `uid` (its gid the same) on `kernel`, in a new
    /// session keyring, with a notification pipe.
    fn on(kernel: Arc<Kernel>, uid: u32) -> Self {
        let p = kernel.spawn(uid, uid);
        let s = p.keyctl_join_session_keyring(None).unwrap();
        let [fd, _w] = p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
        p.set_queue_size(fd, 256).unwrap();
        K { kernel, p, fd, s }
    }

    /// Every record queued now, as (subtype or 0xff for META removal, key/id, aux, tag).
    fn drain(&self) -> Vec<Notification> {
        let mut buf = vec![0u8; 8192];
        match self.p.read(self.fd, &mut buf) {
            Ok(n) => Notification::decode_all(&buf[..n]).unwrap(),
            Err(Errno::EAGAIN) => Vec::new(),
            Err(e) => panic!("read: {e}"),
        }
    }
}

impl K {
    /// The consumer waits (a poll of its pipe): a key collector a call
    /// queued runs now (docs/delivery.md §1).
    fn wait(&self) {
        let mut p = [PollFd::new(self.fd, POLLIN)];
        self.p.poll(&mut p, 0).unwrap();
    }

    /// Reads until the pipe is empty and a wait brings nothing more: the
    /// records queued now and what the collector posts after them.
    fn drain_all(&self) -> Vec<Notification> {
        let mut all = Vec::new();
        loop {
            let got = self.drain();
            if got.is_empty() {
                self.wait();
                let more = self.drain();
                if more.is_empty() {
                    return all;
                }
                all.extend(more);
                continue;
            }
            all.extend(got);
        }
    }

    /// A keyring's links, sorted (the kernel's order follows its index's
    /// hashes; the corpus prints them sorted too).
    fn contents(&self, ring: Serial) -> Vec<Serial> {
        let mut v = self.kernel.keys().info(ring).unwrap().links;
        v.sort_unstable();
        v
    }
}

fn key(st: u8, id: Serial, aux: u32, tag: u8) -> Notification {
    let mut n = Notification::key(st, id as u32, aux);
    n.set_info_id(u32::from(tag) << 8);
    n
}

fn removal(id: Serial, tag: u8) -> Notification {
    let mut n = Notification::removal(id as u32 as u64);
    n.set_info_id(u32::from(tag) << 8);
    n
}

fn bytes(v: &[Notification]) -> Vec<Vec<u8>> {
    v.iter().map(|n| n.as_bytes().to_vec()).collect()
}

#[track_caller]
fn expect(k: &K, want: &[Notification]) {
    assert_eq!(bytes(&k.drain()), bytes(want));
}

#[test]
fn keys_oracle_table_b() {
    let k = K::new();
    let (p, fd, s) = (&k.p, k.fd, k.s);
    p.keyctl_watch_key(s, fd, 5).unwrap();
    expect(&k, &[]);
    let r = p.add_key("keyring", Some("ringR"), b"", s).unwrap();
    expect(&k, &[key(NOTIFY_KEY_LINKED, s, r as u32, 5)]);
    p.keyctl_watch_key(r, fd, 1).unwrap();
    let r2 = p.add_key("keyring", Some("ringR2"), b"", s).unwrap();
    p.keyctl_watch_key(r2, fd, 3).unwrap();
    k.drain();
    let k1 = p.add_key("user", Some("k1"), b"one", r).unwrap();
    expect(&k, &[key(NOTIFY_KEY_LINKED, r, k1 as u32, 1)]);
    p.keyctl_watch_key(k1, fd, 2).unwrap();
    let k2 = p.add_key("user", Some("k2"), b"two", r).unwrap();
    p.keyctl_watch_key(k2, fd, 4).unwrap();
    k.drain();

    // add_key of the same type and description updates: UPDATED, no LINKED.
    assert_eq!(p.add_key("user", Some("k1"), b"uno", r), Ok(k1));
    expect(&k, &[key(NOTIFY_KEY_UPDATED, k1, 0, 2)]);
    p.keyctl_update(k1, b"eins").unwrap();
    expect(&k, &[key(NOTIFY_KEY_UPDATED, k1, 0, 2)]);
    // LINK, and LINK again: two LINKED.
    p.keyctl_link(k1, r2).unwrap();
    p.keyctl_link(k1, r2).unwrap();
    expect(
        &k,
        &[
            key(NOTIFY_KEY_LINKED, r2, k1 as u32, 3),
            key(NOTIFY_KEY_LINKED, r2, k1 as u32, 3),
        ],
    );
    p.keyctl_unlink(k1, r2).unwrap();
    expect(&k, &[key(NOTIFY_KEY_UNLINKED, r2, k1 as u32, 3)]);
    assert_eq!(p.keyctl_unlink(k1, r2), Err(Errno::ENOENT));
    expect(&k, &[]);
    p.keyctl_setperm(k1, 0x3f3f_0000).unwrap();
    expect(&k, &[key(NOTIFY_KEY_SETATTR, k1, 0, 2)]);
    // CHOWN(-1,-1) posts nothing; any other chown posts SETATTR.
    p.keyctl_chown(k1, u32::MAX, u32::MAX).unwrap();
    expect(&k, &[]);
    p.keyctl_chown(k1, 0, 0).unwrap();
    p.keyctl_chown(k1, u32::MAX, 1234).unwrap();
    p.keyctl_set_timeout(k1, 3600).unwrap();
    p.keyctl_set_timeout(k1, 0).unwrap();
    expect(&k, &[key(NOTIFY_KEY_SETATTR, k1, 0, 2); 4]);
    // RESTRICT_KEYRING: SETATTR, then EEXIST, and links into it are EPERM.
    p.keyctl_restrict_keyring(r2, None, None).unwrap();
    expect(&k, &[key(NOTIFY_KEY_SETATTR, r2, 0, 3)]);
    assert_eq!(
        p.keyctl_restrict_keyring(r2, None, None),
        Err(Errno::EEXIST)
    );
    assert_eq!(p.keyctl_link(k1, r2), Err(Errno::EPERM));
    expect(&k, &[]);
    // REVOKE, twice.
    p.keyctl_revoke(k2).unwrap();
    expect(&k, &[key(NOTIFY_KEY_REVOKED, k2, 0, 4)]);
    assert_eq!(p.keyctl_revoke(k2), Err(Errno::EKEYREVOKED));
    expect(&k, &[]);
    // gc of the revoked key after gc_delay: REMOVAL, no UNLINKED on R.
    k.kernel.advance_clock(k.kernel.keys().config().gc_delay);
    expect(&k, &[removal(k2, 4)]);
    // INVALIDATE: INVALIDATED then REMOVAL, no UNLINKED on R. The
    // collector is a work item: its REMOVAL is not in the read right after
    // the call (the oracle's B1 read them in two reads, the corpus's
    // gc-order never saw them in one), it comes once the consumer waits.
    p.keyctl_invalidate(k1).unwrap();
    expect(&k, &[key(NOTIFY_KEY_INVALIDATED, k1, 0, 2)]);
    k.wait();
    expect(&k, &[removal(k1, 2)]);
    // CLEAR, also of an empty keyring; ENOTDIR on a non-keyring.
    let k3 = p.add_key("user", Some("k3"), b"x", r).unwrap();
    k.drain();
    p.keyctl_clear(r).unwrap();
    p.keyctl_clear(r).unwrap();
    expect(
        &k,
        &[
            key(NOTIFY_KEY_CLEARED, r, 0, 1),
            key(NOTIFY_KEY_CLEARED, r, 0, 1),
        ],
    );
    k.wait();
    assert!(
        k.kernel.keys().info(k3).is_none(),
        "the cleared key was collected once the consumer waited"
    );
    let k4 = p.add_key("user", Some("k4"), b"x", s).unwrap();
    assert_eq!(p.keyctl_clear(k4), Err(Errno::ENOTDIR));
    k.drain();
    // Unwatch R2: REMOVAL; again: EBADSLT.
    p.keyctl_watch_key(r2, fd, -1).unwrap();
    expect(&k, &[removal(r2, 3)]);
    assert_eq!(p.keyctl_watch_key(r2, fd, -1), Err(Errno::EBADSLT));
    // Unlinking R from S destroys it: UNLINKED on S, then (after a wait,
    // the collector being a work item) REMOVAL of R.
    p.keyctl_unlink(r, s).unwrap();
    expect(&k, &[key(NOTIFY_KEY_UNLINKED, s, r as u32, 5)]);
    k.wait();
    expect(&k, &[removal(r, 1)]);
}

#[test]
fn keys_watch_errors_in_kernel_order() {
    let k = K::new();
    let (p, fd, s) = (&k.p, k.fd, k.s);
    let key1 = p.add_key("user", Some("a"), b"x", s).unwrap();
    p.keyctl_watch_key(key1, fd, 1).unwrap();
    // Duplicate: EBUSY whatever the tag and the end.
    assert_eq!(p.keyctl_watch_key(key1, fd, 1), Err(Errno::EBUSY));
    assert_eq!(p.keyctl_watch_key(key1, fd, 9), Err(Errno::EBUSY));
    assert_eq!(p.keyctl_watch_key(key1, fd + 1, 9), Err(Errno::EBUSY));
    // Tag range first.
    assert_eq!(
        p.keyctl_watch_key(0x7fff_0000, 9999, 256),
        Err(Errno::EINVAL)
    );
    assert_eq!(p.keyctl_watch_key(key1, fd, -2), Err(Errno::EINVAL));
    // 255 is valid: info 0x0000ff10.
    let key2 = p.add_key("user", Some("b"), b"x", s).unwrap();
    p.keyctl_watch_key(key2, fd, 255).unwrap();
    k.drain();
    p.keyctl_update(key2, b"y").unwrap();
    assert_eq!(k.drain()[0].info(), 0x0000_ff10);
    // The key before the fd: bad key + bad fd is ENOKEY; serial 0 is EINVAL.
    assert_eq!(p.keyctl_watch_key(0x7fff_0000, 9999, 1), Err(Errno::ENOKEY));
    assert_eq!(p.keyctl_watch_key(0, fd, 1), Err(Errno::EINVAL));
    // No view permission: EACCES.
    let key3 = p.add_key("user", Some("c"), b"x", s).unwrap();
    p.keyctl_setperm(key3, 0).unwrap();
    assert_eq!(p.keyctl_watch_key(key3, fd, 1), Err(Errno::EACCES));
    // The fd must be a notification pipe: EINVAL for everything else.
    let [or, ow] = p.pipe().unwrap();
    let dir = p.open("/", O_RDONLY).unwrap();
    for bad in [or, ow, 9999, -1, 0, dir] {
        assert_eq!(
            p.keyctl_watch_key(key2, bad, 1),
            Err(Errno::EINVAL),
            "fd {bad}"
        );
        assert_eq!(
            p.keyctl_watch_key(key2, bad, -1),
            Err(Errno::EINVAL),
            "fd {bad}"
        );
    }
    // Unwatching a never-watched key, or one only another pipe watches.
    let key4 = p.add_key("user", Some("d"), b"x", s).unwrap();
    assert_eq!(p.keyctl_watch_key(key4, fd, -1), Err(Errno::EBADSLT));
    let [fd2, _] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    p.keyctl_watch_key(key4, fd2, 1).unwrap();
    assert_eq!(p.keyctl_watch_key(key4, fd, -1), Err(Errno::EBADSLT));
    // The per-user limit: the soft RLIMIT_NOFILE.
    p.set_rlimit_nofile(2, 1024).unwrap();
    let key5 = p.add_key("user", Some("e"), b"x", s).unwrap();
    assert_eq!(p.keyctl_watch_key(key5, fd, 1), Err(Errno::EAGAIN));
    p.set_rlimit_nofile(1024, 1024).unwrap();
    assert_eq!(p.keyctl_watch_key(key5, fd, 1), Ok(()));
}

#[test]
fn keys_two_pipes_ends_and_close() {
    let k = K::new();
    let (p, fd, s) = (&k.p, k.fd, k.s);
    let kf = p.add_key("user", Some("kf"), b"x", s).unwrap();
    let [r2, w2] = p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
    p.set_queue_size(r2, 1).unwrap();
    p.keyctl_watch_key(kf, fd, 1).unwrap();
    p.keyctl_watch_key(kf, w2, 8).unwrap();
    p.keyctl_update(kf, b"y").unwrap();
    expect(&k, &[key(NOTIFY_KEY_UPDATED, kf, 0, 1)]);
    let mut b = [0u8; 64];
    assert_eq!(p.read(r2, &mut b), Ok(16));
    assert_eq!(b[..16], *key(NOTIFY_KEY_UPDATED, kf, 0, 8).as_bytes());
    // A watch added through the write end is removed through the read end.
    p.keyctl_watch_key(kf, r2, -1).unwrap();
    assert_eq!(p.read(r2, &mut b), Ok(16));
    assert_eq!(b[..16], *removal(kf, 8).as_bytes());
    // Closing a pipe with watches posts nothing; the key stays usable and
    // can be watched again by a new pipe.
    p.keyctl_watch_key(kf, r2, 3).unwrap();
    p.close(r2).unwrap();
    p.close(w2).unwrap();
    p.keyctl_update(kf, b"z").unwrap();
    expect(&k, &[key(NOTIFY_KEY_UPDATED, kf, 0, 1)]);
    let [r3, _w3] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    assert_eq!(p.keyctl_watch_key(kf, r3, 3), Ok(()));
    assert_eq!(k.kernel.keys().info(kf).unwrap().watches, 2);
}

#[test]
fn keys_notifications_switched_off() {
    let kernel = Kernel::new(KernelConfig {
        watch_queue: false,
        ..Default::default()
    });
    let p = kernel.spawn(0, 0);
    assert_eq!(p.keyctl_capabilities()[1] & KEYCTL_CAPS1_NOTIFICATIONS, 0);
    assert_eq!(
        p.keyctl_watch_key(KEY_SPEC_SESSION_KEYRING, 3, 1),
        Err(Errno::EOPNOTSUPP)
    );
    let k = K::new();
    assert_eq!(
        k.p.keyctl_capabilities()[1] & KEYCTL_CAPS1_NOTIFICATIONS,
        KEYCTL_CAPS1_NOTIFICATIONS
    );
}

#[test]
fn keys_filter_drops_keys_but_not_removals() {
    let k = K::new();
    let (p, fd, s) = (&k.p, k.fd, k.s);
    let kf = p.add_key("user", Some("kf"), b"x", s).unwrap();
    p.keyctl_watch_key(kf, fd, 1).unwrap();
    let mut e = RawWatchNotificationTypeFilter {
        type_: 9,
        ..Default::default()
    };
    e.subtype_filter[0] = !0;
    p.set_queue_filter(fd, Some(&filter_blob(&[e]))).unwrap();
    p.keyctl_update(kf, b"y").unwrap();
    p.keyctl_invalidate(kf).unwrap();
    // The filter drops both key records; the collector's REMOVAL passes it,
    // once it has run: a non-blocking read that finds the pipe empty says
    // EAGAIN and lets it run before the next read.
    expect(&k, &[]);
    expect(&k, &[removal(kf, 1)]);
}

#[test]
fn keys_construction_negate_reject_and_instantiate() {
    let k = K::new();
    let (p, fd, s) = (&k.p, k.fd, k.s);
    p.keyctl_watch_key(s, fd, 5).unwrap();
    // The helper (a forked process sharing the session) constructs the key:
    // the watcher of S sees LINKED at once; INSTANTIATED is unobservable,
    // as nobody can watch the key while it is under construction.
    let helper = p.fork();
    let nk = helper
        .key_construct("user", "negated", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    expect(&k, &[key(NOTIFY_KEY_LINKED, s, nk as u32, 5)]);
    // Without authority: EPERM.
    assert_eq!(p.keyctl_negate(nk, 60, 0), Err(Errno::EPERM));
    // A watch on a key under construction waits; an alarm interrupts it.
    p.set_alarm(Some(std::time::Duration::from_millis(10)));
    assert_eq!(p.keyctl_watch_key(nk, fd, 7), Err(Errno::EINTR));
    p.set_alarm(None);
    helper.keyctl_negate(nk, 60, 0).unwrap();
    assert_eq!(p.keyctl_watch_key(nk, fd, 7), Err(Errno::ENOKEY));
    assert_eq!(p.request_key("user", "negated", 0), Err(Errno::ENOKEY));
    expect(&k, &[]);

    let rk = helper
        .key_construct("user", "rejected", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    assert_eq!(helper.keyctl_reject(rk, 60, 0, 0), Err(Errno::EINVAL));
    assert_eq!(helper.keyctl_reject(rk, 60, 512, 0), Err(Errno::EINVAL));
    helper
        .keyctl_reject(rk, 60, Errno::EKEYREJECTED.as_raw(), 0)
        .unwrap();
    assert_eq!(p.keyctl_watch_key(rk, fd, 7), Err(Errno::EKEYREJECTED));
    k.drain();

    let ik = helper
        .key_construct("user", "made", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    helper.keyctl_instantiate(ik, b"payload", 0).unwrap();
    assert_eq!(
        helper.keyctl_instantiate(ik, b"again", 0),
        Err(Errno::EPERM)
    );
    p.keyctl_watch_key(ik, fd, 7).unwrap();
    p.keyctl_update(ik, b"new").unwrap();
    k.drain();
    assert_eq!(p.request_key("user", "made", 0), Ok(ik));
    assert_eq!(p.keyctl_read(ik), Ok(b"new".to_vec()));
    p.keyctl_update(ik, b"newer").unwrap();
    expect(&k, &[key(NOTIFY_KEY_UPDATED, ik, 0, 7)]);
}

#[test]
fn keys_move_posts_unlinked_then_linked() {
    let k = K::new();
    let (p, fd, s) = (&k.p, k.fd, k.s);
    let a = p.add_key("keyring", Some("A"), b"", s).unwrap();
    let b = p.add_key("keyring", Some("B"), b"", s).unwrap();
    let x = p.add_key("user", Some("x"), b"1", a).unwrap();
    p.keyctl_watch_key(a, fd, 1).unwrap();
    p.keyctl_watch_key(b, fd, 2).unwrap();
    p.keyctl_move(x, a, b, 0).unwrap();
    expect(
        &k,
        &[
            key(NOTIFY_KEY_UNLINKED, a, x as u32, 1),
            key(NOTIFY_KEY_LINKED, b, x as u32, 2),
        ],
    );
    assert_eq!(p.keyctl_move(x, a, b, 0), Err(Errno::ENOENT));
    let y = p.add_key("user", Some("x"), b"2", a).unwrap();
    assert_eq!(p.keyctl_move(y, a, b, 1), Err(Errno::EEXIST));
    assert_eq!(p.keyctl_move(y, a, b, 2), Err(Errno::EINVAL));
    // Cycles are refused.
    p.keyctl_link(a, b).unwrap();
    assert_eq!(p.keyctl_link(b, a), Err(Errno::EDEADLK));
    assert_eq!(p.keyctl_link(a, a), Err(Errno::EDEADLK));
}

#[test]
fn keys_permissions_and_ownership() {
    let kernel = Kernel::new(KernelConfig::default());
    let root = kernel.spawn(0, 0);
    root.keyctl_join_session_keyring(None).unwrap();
    let user = root.fork();
    user.set_cred(kernel.cred(1000, 1000));
    let rk = root
        .add_key("user", Some("root-key"), b"x", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    // The user shares the session keyring but the key belongs to root.
    assert_eq!(user.keyctl_setperm(rk, 0x3f3f_0000), Err(Errno::EACCES));
    assert_eq!(user.keyctl_chown(rk, 1000, u32::MAX), Err(Errno::EACCES));
    assert_eq!(root.keyctl_chown(rk, 1000, u32::MAX), Ok(()));
    assert_eq!(
        root.keyctl_describe(rk).unwrap(),
        "user;1000;0;3f010000;root-key"
    );
    // Logon keys: description must be service:name; payload unreadable.
    assert_eq!(
        root.add_key("logon", Some("nocolon"), b"x", KEY_SPEC_SESSION_KEYRING),
        Err(Errno::EINVAL)
    );
    let lk = root
        .add_key("logon", Some("svc:name"), b"x", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    assert_eq!(root.keyctl_read(lk), Err(Errno::EOPNOTSUPP));
    // add_key argument checks.
    assert_eq!(
        root.add_key("", Some("a"), b"x", KEY_SPEC_SESSION_KEYRING),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        root.add_key(".secret", Some("a"), b"x", KEY_SPEC_SESSION_KEYRING),
        Err(Errno::EPERM)
    );
    assert_eq!(
        root.add_key("nosuch", Some("a"), b"x", KEY_SPEC_SESSION_KEYRING),
        Err(Errno::ENODEV)
    );
    assert_eq!(
        root.add_key("user", None, b"x", KEY_SPEC_SESSION_KEYRING),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        root.add_key("user", Some("a"), b"", KEY_SPEC_SESSION_KEYRING),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        root.add_key("keyring", Some(".a"), b"", KEY_SPEC_SESSION_KEYRING),
        Err(Errno::EPERM)
    );
    assert_eq!(
        root.add_key("keyring", Some("a"), b"x", KEY_SPEC_SESSION_KEYRING),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        root.add_key("user", Some("a"), b"x", rk),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(
        root.add_key("user", Some("a"), &vec![0; 32768], KEY_SPEC_SESSION_KEYRING),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        root.add_key("user", Some("a"), b"x", 0x7fff_0000),
        Err(Errno::ENOKEY)
    );
    // Keyrings read as their serials; update of a keyring is EOPNOTSUPP.
    let ring = root
        .add_key("keyring", Some("R"), b"", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    let m = root.add_key("user", Some("m"), b"x", ring).unwrap();
    assert_eq!(root.keyctl_read(ring), Ok(m.to_le_bytes().to_vec()));
    assert_eq!(root.keyctl_update(ring, b"x"), Err(Errno::EOPNOTSUPP));
    assert_eq!(
        root.keyctl_search(KEY_SPEC_SESSION_KEYRING, "user", "m", 0),
        Ok(m)
    );
    assert_eq!(
        root.keyctl_search(KEY_SPEC_SESSION_KEYRING, "user", "none", 0),
        Err(Errno::ENOKEY)
    );
    // Special ids: user keyring created on demand (user_keyring_perm: no
    // possessor setattr, as Linux 6.12 lists it); group keyring EINVAL.
    let u = root
        .keyctl_get_keyring_id(KEY_SPEC_USER_KEYRING, true)
        .unwrap();
    assert_eq!(
        root.keyctl_describe(u).unwrap(),
        "keyring;0;65534;1f3f0000;_uid.0"
    );
    assert_eq!(root.keyctl_get_keyring_id(-6, true), Err(Errno::EINVAL));
    assert_eq!(root.keyctl_get_keyring_id(-1, false), Err(Errno::ENOKEY));
    assert!(root.keyctl_get_keyring_id(-1, true).is_ok());
    // Expiry on the virtual clock.
    let e = root
        .add_key("user", Some("exp"), b"x", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    root.keyctl_set_timeout(e, 10).unwrap();
    kernel.advance_clock(10);
    assert_eq!(root.keyctl_read(e), Err(Errno::EKEYEXPIRED));
}

#[test]
fn keys_fork_keeps_session_and_exit_releases_process_keyring() {
    let k = K::new();
    let (p, fd) = (&k.p, k.fd);
    // The cred a child gets is a copy of its parent's, request_key's
    // default destination (`jit_keyring`) with it: SET_REQKEY_KEYRING's
    // -1 (no change) gives the value in force.
    assert_eq!(p.keyctl_set_reqkey_keyring(3), Ok(0));
    let child = p.fork();
    assert_eq!(child.keyctl_set_reqkey_keyring(-1), Ok(3));
    assert_eq!(
        child.keyctl_get_keyring_id(KEY_SPEC_SESSION_KEYRING, false),
        Ok(k.s)
    );
    let pk = child.keyctl_get_keyring_id(-2, true).unwrap();
    p.keyctl_watch_key(pk, fd, 9).unwrap();
    child.exit();
    // The exit queues the collector; it runs when the consumer waits.
    k.wait();
    expect(&k, &[removal(pk, 9)]);
}

#[test]
fn keys_permission_denials_leave_keys_unchanged_and_post_nothing() {
    let k = K::new();
    let (root, fd, s) = (&k.p, k.fd, k.s);
    let ring = root.add_key("keyring", Some("ring"), b"", s).unwrap();
    let key = root.add_key("user", Some("key"), b"v", ring).unwrap();
    root.keyctl_watch_key(ring, fd, 1).unwrap();
    root.keyctl_watch_key(key, fd, 2).unwrap();
    k.drain();
    let before = (
        root.keyctl_describe(key).unwrap(),
        root.keyctl_describe(ring).unwrap(),
    );
    // A user in a session of its own: "other" to root's keys, no possession.
    let user = k.kernel.spawn(1000, 1000);
    let own = user.keyctl_join_session_keyring(None).unwrap();
    let [ufd, _w] = user.pipe2(O_NOTIFICATION_PIPE).unwrap();
    let denied: Vec<(&str, Result<(), Errno>)> = vec![
        ("describe", user.keyctl_describe(key).map(drop)),
        ("update", user.keyctl_update(key, b"x")),
        ("revoke", user.keyctl_revoke(key)),
        ("setperm", user.keyctl_setperm(key, 0x3f3f_3f3f)),
        ("chown", user.keyctl_chown(key, 1000, u32::MAX)),
        ("set_timeout", user.keyctl_set_timeout(key, 5)),
        ("invalidate", user.keyctl_invalidate(key)),
        ("read", user.keyctl_read(key).map(drop)),
        ("clear", user.keyctl_clear(ring)),
        ("link", user.keyctl_link(key, ring)),
        ("link into own", user.keyctl_link(key, own)),
        ("unlink", user.keyctl_unlink(key, ring)),
        ("move", user.keyctl_move(key, ring, own, 0)),
        (
            "search",
            user.keyctl_search(ring, "user", "key", 0).map(drop),
        ),
        (
            "add into",
            user.add_key("user", Some("intruder"), b"x", ring).map(drop),
        ),
        ("watch", user.keyctl_watch_key(key, ufd, 1)),
        ("restrict", user.keyctl_restrict_keyring(ring, None, None)),
    ];
    for (what, r) in denied {
        assert_eq!(r, Err(Errno::EACCES), "{what}");
    }
    assert_eq!(k.drain().len(), 0, "a denied operation posts nothing");
    let after = (
        root.keyctl_describe(key).unwrap(),
        root.keyctl_describe(ring).unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(root.keyctl_read(key), Ok(b"v".to_vec()));
    assert_eq!(root.keyctl_read(ring), Ok(key.to_le_bytes().to_vec()));
}

#[test]
fn keys_watch_key_policy_hook() {
    use watchq_core::{Cred, Policy, WatchedObject};
    struct NoSecrets;
    impl Policy for NoSecrets {
        fn name(&self) -> &str {
            "no-secrets"
        }
        fn watch_key(&self, _: &Cred, key: &WatchedObject<'_>) -> watchq_core::lsm::Verdict {
            if key.label == Some("secret") {
                Err(watchq_core::lsm::Denial::new(Errno::EACCES, "secret"))
            } else {
                Ok(())
            }
        }
    }
    let k = K::new();
    let (p, fd, s) = (&k.p, k.fd, k.s);
    k.kernel.set_policy(Arc::new(NoSecrets));
    let key = p.add_key("user", Some("labelled"), b"v", s).unwrap();
    k.kernel
        .keys()
        .set_label(key, Some("secret".into()))
        .unwrap();
    // The hook runs after the key and the fd checks.
    assert_eq!(p.keyctl_watch_key(key, 9999, 1), Err(Errno::EINVAL));
    assert_eq!(p.keyctl_watch_key(key, fd, 1), Err(Errno::EACCES));
    assert_eq!(k.kernel.keys().info(key).unwrap().watches, 0);
    // Removal is not subject to it.
    assert_eq!(p.keyctl_watch_key(key, fd, -1), Err(Errno::EBADSLT));
    let plain = p.add_key("user", Some("plain"), b"v", s).unwrap();
    assert_eq!(p.keyctl_watch_key(plain, fd, 1), Ok(()));
}

#[test]
fn keys_errno_paths_of_each_call() {
    let k = K::new();
    let (p, fd, s) = (&k.p, k.fd, k.s);
    let user_key = p.add_key("user", Some("u"), b"v", s).unwrap();
    // Unknown serial: ENOKEY everywhere a key is looked up; 0 is EINVAL.
    let none = 0x7fff_fff0;
    assert_eq!(p.keyctl_update(none, b"x"), Err(Errno::ENOKEY));
    assert_eq!(p.keyctl_revoke(none), Err(Errno::ENOKEY));
    assert_eq!(p.keyctl_describe(none), Err(Errno::ENOKEY));
    assert_eq!(p.keyctl_invalidate(0), Err(Errno::EINVAL));
    assert_eq!(p.keyctl_setperm(user_key, 0x4000_0000), Err(Errno::EINVAL));
    // Payload checks.
    assert_eq!(p.keyctl_update(user_key, b""), Err(Errno::EINVAL));
    assert_eq!(
        p.keyctl_update(user_key, &vec![1; 32768]),
        Err(Errno::EINVAL)
    );
    // ENOTDIR for keyring operations on a plain key.
    assert_eq!(p.keyctl_link(user_key, user_key), Err(Errno::ENOTDIR));
    assert_eq!(p.keyctl_unlink(user_key, user_key), Err(Errno::ENOTDIR));
    assert_eq!(
        p.keyctl_restrict_keyring(user_key, None, None),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(
        p.keyctl_search(user_key, "user", "u", 0),
        Err(Errno::ENOTDIR)
    );
    // Restrict: a restriction without a type; a type (no scheme) is ENOENT.
    assert_eq!(
        p.keyctl_restrict_keyring(s, None, Some("x")),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        p.keyctl_restrict_keyring(s, Some("keyring"), Some("chain")),
        Err(Errno::ENOENT)
    );
    // Revoked keys: EKEYREVOKED for uses, not for unlink.
    p.keyctl_revoke(user_key).unwrap();
    assert_eq!(p.keyctl_update(user_key, b"x"), Err(Errno::EKEYREVOKED));
    assert_eq!(p.keyctl_read(user_key), Err(Errno::EKEYREVOKED));
    assert_eq!(p.keyctl_watch_key(user_key, fd, 1), Err(Errno::EKEYREVOKED));
    assert_eq!(p.keyctl_unlink(user_key, s), Ok(()));
    // Invalidated keys are gone at once.
    let gone = p.add_key("user", Some("g"), b"v", s).unwrap();
    p.keyctl_invalidate(gone).unwrap();
    assert_eq!(p.keyctl_describe(gone), Err(Errno::ENOKEY));
    // request_key of an unknown type or description.
    assert_eq!(p.request_key("nosuch", "x", 0), Err(Errno::ENOKEY));
    assert_eq!(p.request_key(".x", "x", 0), Err(Errno::EPERM));
    assert_eq!(p.request_key("user", "nothing", 0), Err(Errno::ENOKEY));
    // Quotas: a user may hold maxkeys keys.
    let user = k.kernel.spawn(1000, 1000);
    user.keyctl_join_session_keyring(None).unwrap();
    let max = k.kernel.keys().config().maxkeys;
    let mut made = 1; // the session keyring counts
    while made < max {
        user.add_key(
            "user",
            Some(&format!("q{made}")),
            b"v",
            KEY_SPEC_SESSION_KEYRING,
        )
        .unwrap();
        made += 1;
    }
    assert_eq!(
        user.add_key("user", Some("over"), b"v", KEY_SPEC_SESSION_KEYRING),
        Err(Errno::EDQUOT)
    );
}

#[test]
fn keys_monitor_example_script() {
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/monitor-keys.txt"
    ))
    .unwrap();
    let mut out = Vec::new();
    watchq::monitor::run(&Default::default(), script.as_bytes(), &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "268435457 link 268435458",
            "268435458 upd",
            "268435458 attr",
            "268435457 link 268435459",
            "268435457 unlk 268435458",
            "268435458 upd",
            "268435458 upd",
            "268435458 upd",
            "268435458 rev",
            "268435458 gc",
        ]
    );
}

/// Keyrings are indexes of (type, description), as the real kernel's
/// associative arrays (tests/data/conformance/keys.txt, sections `index`
/// and `move`): a link replaces the key of that index without a record for
/// the replaced one; unlink and move remove whatever key of that index the
/// keyring holds, naming the key they were given.
#[test]
fn keys_keyring_index_link_unlink_and_move() {
    let k = K::new();
    let (p, fd, s) = (&k.p, k.fd, k.s);
    let r = p.add_key("keyring", Some("R"), b"", s).unwrap();
    let q = p.add_key("keyring", Some("Q"), b"", s).unwrap();
    p.keyctl_watch_key(r, fd, 1).unwrap();
    p.keyctl_watch_key(q, fd, 2).unwrap();
    let a1 = p.add_key("user", Some("dup"), b"1", r).unwrap();
    let a2 = p.add_key("user", Some("dup"), b"2", q).unwrap();
    p.keyctl_watch_key(a1, fd, 3).unwrap();
    k.drain_all();
    // "link a key whose (type, description) R holds: it replaces a1":
    // LINKED R a2, then a1's removal; R holds a2 alone.
    p.keyctl_link(a2, r).unwrap();
    assert_eq!(
        bytes(&k.drain_all()),
        bytes(&[key(NOTIFY_KEY_LINKED, r, a2 as u32, 1), removal(a1, 3)])
    );
    assert_eq!(k.contents(r), [a2]);
    // "unlink a key R does not hold, while R holds its description":
    // 0, UNLINKED naming a3, and R is empty; a2 lives on in Q.
    let q2 = p.add_key("keyring", Some("Q2"), b"", s).unwrap();
    let a3 = p.add_key("user", Some("dup"), b"3", q2).unwrap();
    k.drain_all();
    assert_eq!(p.keyctl_unlink(a3, r), Ok(()));
    assert_eq!(
        bytes(&k.drain_all()),
        bytes(&[key(NOTIFY_KEY_UNLINKED, r, a3 as u32, 1)])
    );
    assert!(k.contents(r).is_empty());
    assert_eq!(k.contents(q), [a2]);
    assert_eq!(p.keyctl_unlink(a3, r), Err(Errno::ENOENT));

    // KEYCTL_MOVE finds the key to take from `from` by index too.
    let a = p.add_key("keyring", Some("A"), b"", s).unwrap();
    let b = p.add_key("keyring", Some("B"), b"", s).unwrap();
    let c = p.add_key("keyring", Some("C"), b"", s).unwrap();
    p.keyctl_watch_key(a, fd, 4).unwrap();
    p.keyctl_watch_key(b, fd, 5).unwrap();
    let w1 = p.add_key("user", Some("w"), b"1", a).unwrap();
    let w2 = p.add_key("user", Some("w"), b"2", c).unwrap();
    k.drain_all();
    assert_eq!(p.keyctl_move(w2, a, b, 0), Ok(()));
    assert_eq!(
        bytes(&k.drain_all()),
        bytes(&[
            key(NOTIFY_KEY_UNLINKED, a, w2 as u32, 4),
            key(NOTIFY_KEY_LINKED, b, w2 as u32, 5),
        ])
    );
    assert!(k.contents(a).is_empty());
    assert_eq!(k.contents(b), [w2]);
    assert_eq!(k.contents(c), [w2]);
    assert!(k.kernel.keys().info(w1).is_none(), "w1 lost its only link");
    // The key not in `from` while `to` holds its description: ENOENT
    // comes before KEYCTL_MOVE_EXCL's EEXIST.
    let z = p.add_key("user", Some("w"), b"3", c).unwrap();
    assert_eq!(p.keyctl_move(z, a, b, KEYCTL_MOVE_EXCL), Err(Errno::ENOENT));
    // `to` holding the key itself is EEXIST under EXCL; without, the key
    // moves onto itself: UNLINKED on from, LINKED on to.
    p.keyctl_link(z, a).unwrap();
    k.drain_all();
    p.keyctl_link(z, b).unwrap();
    k.drain_all();
    assert_eq!(p.keyctl_move(z, a, b, KEYCTL_MOVE_EXCL), Err(Errno::EEXIST));
    assert_eq!(p.keyctl_move(z, a, b, 0), Ok(()));
    assert_eq!(
        bytes(&k.drain_all()),
        bytes(&[
            key(NOTIFY_KEY_UNLINKED, a, z as u32, 4),
            key(NOTIFY_KEY_LINKED, b, z as u32, 5),
        ])
    );
    // Moving within one keyring does nothing, EXCL or not.
    assert_eq!(p.keyctl_move(z, b, b, KEYCTL_MOVE_EXCL), Ok(()));
    assert_eq!(k.drain_all().len(), 0);

    // add_key of a keyring whose description R holds makes a new keyring,
    // which replaces the old one (keyrings have no update).
    let old = p.add_key("keyring", Some("same"), b"", r).unwrap();
    p.keyctl_watch_key(old, fd, 6).unwrap();
    k.drain_all();
    let new = p.add_key("keyring", Some("same"), b"", r).unwrap();
    assert_ne!(new, old);
    assert_eq!(
        bytes(&k.drain_all()),
        bytes(&[key(NOTIFY_KEY_LINKED, r, new as u32, 1), removal(old, 6)])
    );
}

/// KEYCTL_CLEAR empties a restricted keyring too; KEYCTL_UPDATE takes at
/// most a page and clears a timeout; add_key over an expired key of its
/// description updates it in place, which makes it live again
/// (tests/data/conformance/keys.txt, sections `clear`, `update`, `expiry`).
#[test]
fn keys_clear_restricted_update_limits_and_timeouts() {
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let q = p.add_key("keyring", Some("Q"), b"", s).unwrap();
    p.add_key("user", Some("q"), b"v", q).unwrap();
    p.keyctl_restrict_keyring(q, None, None).unwrap();
    assert_eq!(p.keyctl_clear(q), Ok(()));
    assert!(k.contents(q).is_empty());

    let k1 = p.add_key("user", Some("k1"), b"v", s).unwrap();
    assert_eq!(p.keyctl_update(k1, &[b'b'; 4096]), Ok(()));
    assert_eq!(p.keyctl_update(k1, &[b'b'; 4097]), Err(Errno::EINVAL));
    assert_eq!(p.keyctl_update(k1, &[b'b'; 32767]), Err(Errno::EINVAL));
    assert_eq!(p.add_key("user", Some("k1"), &[b'c'; 32767], s), Ok(k1));
    assert_eq!(
        p.add_key("user", Some("k1"), &[b'c'; 32768], s),
        Err(Errno::EINVAL)
    );
    // "an update clears a timeout"
    p.keyctl_set_timeout(k1, 1).unwrap();
    p.keyctl_update(k1, b"v5").unwrap();
    k.kernel.advance_clock(2);
    assert_eq!(p.keyctl_read(k1), Ok(b"v5".to_vec()));
    // "add_key over an expired key of that description"
    let e = p.add_key("user", Some("e"), b"v", s).unwrap();
    p.keyctl_set_timeout(e, 1).unwrap();
    k.kernel.advance_clock(1);
    assert_eq!(p.keyctl_read(e), Err(Errno::EKEYEXPIRED));
    assert_eq!(p.keyctl_update(e, b"w"), Err(Errno::EKEYEXPIRED));
    assert_eq!(p.add_key("user", Some("e"), b"new", s), Ok(e));
    assert_eq!(p.keyctl_read(e), Ok(b"new".to_vec()));
}

/// Type names: KEYCTL_SEARCH of an unknown type is ENOKEY (add_key's is
/// ENODEV), and KEYCTL_RESTRICT_KEYRING's argument checks come in the
/// kernel's order (tests/data/conformance/keys.txt, sections `index`,
/// `attr`).
#[test]
fn keys_search_and_restrict_type_errnos() {
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let u = p.add_key("user", Some("u"), b"v", s).unwrap();
    assert_eq!(p.keyctl_search(s, "nosuchtype", "u", 0), Err(Errno::ENOKEY));
    assert_eq!(p.keyctl_search(s, "", "u", 0), Err(Errno::EINVAL));
    assert_eq!(p.keyctl_search(s, ".x", "u", 0), Err(Errno::EPERM));
    let cases: [(Serial, Option<&str>, Option<&str>, Errno); 9] = [
        (s, None, Some("chain"), Errno::EINVAL),
        (s, Some("keyring"), Some("chain"), Errno::ENOENT),
        (s, Some("nosuchtype"), None, Errno::EINVAL),
        (s, Some("nosuchtype"), Some("x"), Errno::ENOKEY),
        (s, Some("user"), Some("x"), Errno::ENOENT),
        (s, Some(""), Some("x"), Errno::EINVAL),
        (s, Some(".x"), Some("x"), Errno::EPERM),
        (u, None, None, Errno::ENOTDIR),
        (u, Some("user"), Some("x"), Errno::ENOTDIR),
    ];
    for (id, t, r, e) in cases {
        assert_eq!(p.keyctl_restrict_keyring(id, t, r), Err(e), "{t:?} {r:?}");
    }
}

/// The collector is a work item that runs after the call that made
/// garbage returned (tests/data/conformance/gc.txt): the call's own
/// records come alone in the read right after it, an immediate second
/// read is EAGAIN (keys.txt, `revoke`: the drain after add_key replaced
/// the revoked key), and the removal comes once the consumer waits; a key
/// whose last link went is still there for a lookup until then
/// (`gc-lookup`).
#[test]
fn keys_collector_runs_after_the_call_when_the_consumer_waits() {
    let k = K::new();
    let (p, fd, s) = (&k.p, k.fd, k.s);
    let a = p.add_key("user", Some("a"), b"v", s).unwrap();
    p.keyctl_watch_key(a, fd, 2).unwrap();
    p.keyctl_invalidate(a).unwrap();
    expect(&k, &[key(NOTIFY_KEY_INVALIDATED, a, 0, 2)]);
    // A non-blocking read of the empty pipe: EAGAIN; the collector runs.
    expect(&k, &[]);
    expect(&k, &[removal(a, 2)]);

    // The last link goes: the key is still found until the collector ran.
    let b = p.add_key("user", Some("b"), b"v", s).unwrap();
    p.keyctl_watch_key(b, fd, 3).unwrap();
    p.keyctl_unlink(b, s).unwrap();
    assert_eq!(p.keyctl_describe(b), Ok("user;0;0;3f010000;b".into()));
    assert!(k.kernel.keys().gc_pending());
    // A poll that finds nothing lets it run, and then reports the removal.
    let mut pfd = [PollFd::new(fd, POLLIN)];
    assert_eq!(p.poll(&mut pfd, 0), Ok(1));
    expect(&k, &[removal(b, 3)]);
    assert_eq!(p.keyctl_describe(b), Err(Errno::ENOKEY));

    // A blocking read of an empty pipe lets it run before sleeping.
    let c = p.add_key("user", Some("c"), b"v", s).unwrap();
    p.keyctl_watch_key(c, fd, 4).unwrap();
    p.keyctl_invalidate(c).unwrap();
    k.drain();
    let fl = p.fcntl(fd, F_GETFL, 0).unwrap() as u64;
    p.fcntl(fd, F_SETFL, fl & !u64::from(O_NONBLOCK)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(p.read(fd, &mut buf), Ok(16));
    assert_eq!(buf, *removal(c, 4).as_bytes());
    p.fcntl(fd, F_SETFL, fl).unwrap();

    // Several calls before a read: their own records first, then the
    // collector's, in one run (gc-order, "several calls before the first
    // read").
    let h = p.add_key("user", Some("h"), b"v", s).unwrap();
    let i = p.add_key("user", Some("i"), b"v", s).unwrap();
    p.keyctl_watch_key(h, fd, 5).unwrap();
    p.keyctl_watch_key(i, fd, 6).unwrap();
    p.keyctl_invalidate(h).unwrap();
    p.keyctl_invalidate(i).unwrap();
    expect(
        &k,
        &[
            key(NOTIFY_KEY_INVALIDATED, h, 0, 5),
            key(NOTIFY_KEY_INVALIDATED, i, 0, 6),
        ],
    );
    k.wait();
    expect(&k, &[removal(h, 5), removal(i, 6)]);
    assert!(!k.kernel.keys().gc_pending());
}

/// `gc_delay` (gc.txt, `gc-delay`, with gc_delay 2): a revoked key is not
/// collected before the delay, even when the consumer waits, and is at
/// it; an expiry posts nothing, and the expired key goes `gc_delay` later.
#[test]
fn keys_gc_delay_for_revoked_and_expired_keys() {
    let kernel = Kernel::new(KernelConfig {
        keys: watchq_kernel::keys::KeyConfig {
            gc_delay: 2,
            ..Default::default()
        },
        ..Default::default()
    });
    let k = K::on(kernel, 0);
    let (p, s, fd) = (&k.p, k.s, k.fd);
    let r = p.add_key("user", Some("rv"), b"v", s).unwrap();
    p.keyctl_watch_key(r, fd, 2).unwrap();
    p.keyctl_revoke(r).unwrap();
    expect(&k, &[key(NOTIFY_KEY_REVOKED, r, 0, 2)]);
    k.kernel.advance_clock(1);
    k.wait();
    expect(&k, &[]);
    assert_eq!(p.keyctl_describe(r), Err(Errno::EKEYREVOKED));
    k.kernel.advance_clock(1);
    expect(&k, &[removal(r, 2)]);

    let e = p.add_key("user", Some("ex"), b"v", s).unwrap();
    p.keyctl_watch_key(e, fd, 3).unwrap();
    p.keyctl_set_timeout(e, 1).unwrap();
    expect(&k, &[key(NOTIFY_KEY_SETATTR, e, 0, 3)]);
    k.kernel.advance_clock(1);
    k.wait();
    expect(&k, &[]);
    assert_eq!(p.keyctl_read(e), Err(Errno::EKEYEXPIRED));
    k.kernel.advance_clock(1);
    k.wait();
    expect(&k, &[]);
    k.kernel.advance_clock(1);
    expect(&k, &[removal(e, 3)]);
}

/// A persistent keyring's expiry comes from the kernel-side
/// `persistent_keyring_expiry` (three days until set), counted again from
/// each fetch; a keyring left unfetched past it (and `gc_delay`) is
/// collected out of the register.
#[test]
fn keys_persistent_keyring_expiry_setting() {
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let keys = k.kernel.keys();
    assert_eq!(keys.persistent_keyring_expiry(), 3 * 24 * 3600);
    let p0 = p.keyctl_get_persistent(u32::MAX, s).unwrap();
    assert_eq!(keys.expires_in(p0), Some(3 * 24 * 3600));
    keys.set_persistent_keyring_expiry(100);
    k.kernel.advance_clock(10);
    assert_eq!(p.keyctl_get_persistent(u32::MAX, s), Ok(p0));
    assert_eq!(keys.expires_in(p0), Some(100));
    p.keyctl_unlink(p0, s).unwrap();
    k.kernel.advance_clock(100 + keys.config().gc_delay);
    k.kernel.key_gc();
    assert!(keys.info(p0).is_none(), "expired and collected");
    let again = p.keyctl_get_persistent(u32::MAX, s).unwrap();
    assert_ne!(again, p0, "a new one is made");
}

/// The `asymmetric` type on what is not a certificate
/// (tests/data/conformance/types.txt `types`): no data is `EINVAL`, other
/// data `EBADMSG`, with a description or without (the type's preparse
/// runs before a missing description is refused); a keyring that is not
/// one is `ENOTDIR` first. Certificates: conformance_corpus.rs's asym.
#[test]
fn keys_asymmetric_type_refuses_what_is_not_a_certificate() {
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let t = "asymmetric";
    let blob = b"not a certificate";
    assert_eq!(p.add_key(t, Some("as"), blob, s), Err(Errno::EBADMSG));
    assert_eq!(p.add_key(t, None, blob, s), Err(Errno::EBADMSG));
    assert_eq!(p.add_key(t, Some("as"), b"", s), Err(Errno::EINVAL));
    let u = p.add_key("user", Some("u"), b"v", s).unwrap();
    assert_eq!(p.add_key(t, Some("as"), blob, u), Err(Errno::ENOTDIR));
    // A key the type does not know is not found, and the search runs.
    assert_eq!(p.keyctl_search(s, t, "as", 0), Err(Errno::ENOKEY));
    assert_eq!(p.keyctl_capabilities()[0] & 0x08, 0x08, "public key");
}

/// The key types watchq has and their payload rules, the other types as
/// a kernel built without them answers, and request_key of negative,
/// rejected, revoked and expired keys (tests/data/conformance/types.txt
/// `types`, keys.txt `construct`).
#[test]
fn keys_types_and_request_key_of_dead_keys() {
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    // big_key: a readable, updatable blob; no empty payload.
    let bk = p.add_key("big_key", Some("bk"), b"big", s).unwrap();
    assert_eq!(p.keyctl_read(bk), Ok(b"big".to_vec()));
    assert_eq!(p.keyctl_describe(bk), Ok("big_key;0;0;3f010000;bk".into()));
    assert_eq!(
        p.add_key("big_key", Some("bk0"), b"", s),
        Err(Errno::EINVAL)
    );
    assert_eq!(p.keyctl_update(bk, b"x"), Ok(()));
    assert!(p
        .add_key("big_key", Some("bk1"), &vec![1; 100_000], s)
        .is_ok());
    // Types the oracle's kernel lacked (trusted without a TPM,
    // dns_resolver) or that only the kernel may make: ENODEV, EPERM.
    for t in ["trusted", "dns_resolver", "request_key_auth", "nosuchtype"] {
        assert_eq!(p.add_key(t, Some("x"), b"v", s), Err(Errno::ENODEV), "{t}");
    }
    assert_eq!(
        p.add_key(".request_key_auth", Some("x"), b"v", s),
        Err(Errno::EPERM)
    );
    assert_eq!(p.keyctl_get_security(bk), Ok(String::new()));
    assert_eq!(p.keyctl_capabilities()[0] & 0x10, 0x10, "big_key");

    // request_key: a negated key ENOKEY, a rejected one its error, a
    // revoked one EKEYREVOKED, an expired one is passed over (the kernel
    // would construct anew; watchq, which has no upcall, says ENOKEY).
    let helper = p.fork();
    for (desc, e) in [("n", Errno::ENOKEY), ("r", Errno::EKEYREJECTED)] {
        let key = helper.key_construct("user", desc, s).unwrap();
        helper.keyctl_reject(key, 30, e.as_raw(), 0).unwrap();
        assert_eq!(p.request_key("user", desc, 0), Err(e), "{desc}");
    }
    let a = p.add_key("user", Some("a"), b"v", s).unwrap();
    p.keyctl_revoke(a).unwrap();
    assert_eq!(p.request_key("user", "a", 0), Err(Errno::EKEYREVOKED));
    let e = p.add_key("user", Some("e"), b"v", s).unwrap();
    p.keyctl_set_timeout(e, 1).unwrap();
    k.kernel.advance_clock(1);
    assert_eq!(p.request_key("user", "e", 0), Err(Errno::ENOKEY));
    assert_eq!(p.request_key("nosuchtype", "e", 0), Err(Errno::ENOKEY));
    assert_eq!(p.request_key(".user", "e", 0), Err(Errno::EPERM));
    // add_key over a negative key of its description makes it positive
    // in place (no LINKED).
    let n = p.request_key("user", "n", 0).unwrap_err();
    assert_eq!(n, Errno::ENOKEY);
    let made = p.add_key("user", Some("n"), b"now", s).unwrap();
    assert_eq!(p.keyctl_read(made), Ok(b"now".to_vec()));
}

/// Runs `f` on a thread and waits for it at most `secs`: a call that
/// blocks fails the test instead of hanging it.
fn within<R: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: still blocked after {secs} s"))
}

/// Key construction with waiters: while processes and threads wait for a
/// key under construction (a read, a request_key, from two processes and
/// from two threads of one process), the helper makes key calls of its
/// own before instantiating (describe the key, add, read, search and
/// update another, and a read of the key itself, which would wait on its
/// own construction: EDEADLK), and so does another thread of the
/// waiters' process. No waiter blocks any of them; every waiter gets the
/// key once it is instantiated. Each wait and each call is bounded, so a
/// blocked one fails the test instead of hanging it.
#[test]
fn keys_construction_waiters_never_block_the_helper() {
    let k = K::new();
    let p = k.p.clone();
    let helper = p.fork();
    let nk = helper
        .key_construct("user", "slow", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    // Each sleep is bounded by the alarm: EINTR fails the test.
    let waiter_proc = p.fork();
    for w in [&p, &waiter_proc] {
        w.set_alarm(Some(std::time::Duration::from_secs(20)));
    }
    let waiters: Vec<_> = [
        p.clone(),
        p.clone(),
        waiter_proc.clone(),
        waiter_proc.clone(),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, w)| {
        std::thread::spawn(move || {
            if i % 2 == 0 {
                w.keyctl_read(nk).map(|v| v == b"payload")
            } else {
                w.request_key("user", "slow", 0).map(|id| id == nk)
            }
        })
    })
    .collect();
    // Let them fall asleep.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let h = helper.clone();
    within(10, "the helper's key calls", move || {
        assert!(h.keyctl_describe(nk).unwrap().starts_with("user;"));
        let other = h
            .add_key("user", Some("other"), b"o", KEY_SPEC_SESSION_KEYRING)
            .unwrap();
        assert_eq!(h.keyctl_read(other).unwrap(), b"o");
        let s = h
            .keyctl_get_keyring_id(KEY_SPEC_SESSION_KEYRING, false)
            .unwrap();
        assert_eq!(h.keyctl_search(s, "user", "other", 0), Ok(other));
        h.keyctl_update(other, b"o2").unwrap();
        assert_eq!(h.keyctl_read(nk), Err(Errno::EDEADLK));
    });
    // Another thread of the waiters' process makes key calls too.
    let q = p.clone();
    within(10, "a key call beside the waiters", move || {
        q.add_key("user", Some("beside"), b"b", KEY_SPEC_SESSION_KEYRING)
            .unwrap();
    });
    let h = helper.clone();
    within(10, "the instantiation", move || {
        h.keyctl_instantiate(nk, b"payload", 0).unwrap();
    });
    for (i, w) in waiters.into_iter().enumerate() {
        let got = within(10, "a waiter", move || w.join().unwrap());
        assert_eq!(got, Ok(true), "waiter {i}");
    }
}

/// A certificate of tests/conformance/probes/asym-certs.h or
/// asym-certs2.h (the C array `cert_NAME`), as bytes.
fn cert(name: &str) -> Vec<u8> {
    c_array(&format!("cert_{name}"))
}

/// The C array `name` of asym-certs.h or asym-certs2.h, as bytes.
fn c_array(name: &str) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conformance/probes/");
    let mut h = String::new();
    for f in ["asym-certs.h", "asym-certs2.h"] {
        h += &std::fs::read_to_string(format!("{dir}{f}")).unwrap();
    }
    let start = h.find(&format!("{name}[] = {{")).unwrap();
    let body = &h[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find("};").unwrap()];
    body.split(',')
        .filter_map(|t| u8::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok())
        .collect()
}

/// Key `k`'s /proc/keys line from its description on (the type's
/// describe), as `p` reads it.
fn proc_keys_column(p: &Process, k: Serial) -> String {
    use watchq_kernel::syscalls::procfs::ProcNode;
    let node = ProcNode::lookup("/proc/keys").unwrap();
    let text = String::from_utf8(p.proc_read(node, 0, 1 << 16).unwrap()).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{k:08x} ")));
    line.unwrap()
        .split_whitespace()
        .skip(8)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A request-key helper's KEYCTL_INSTANTIATE of an asymmetric key parses
/// its certificate (a restriction by that key accepts what it signed) and
/// of an encrypted key runs the type's instantiation (`new`, and `load`
/// with the master key the helper finds), as add_key's does
/// (`key_instantiate_and_link()` calls the type's preparse and
/// instantiate either way).
#[test]
fn keys_helper_instantiates_asymmetric_and_encrypted_keys() {
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let helper = p.fork();
    let ca = helper
        .key_construct("asymmetric", "ca2", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    assert_eq!(
        helper.keyctl_instantiate(ca, b"not a certificate", 0),
        Err(Errno::EBADMSG)
    );
    helper.keyctl_instantiate(ca, &cert("ca2"), 0).unwrap();
    assert_eq!(p.keyctl_read(ca), Err(Errno::EOPNOTSUPP));
    let r = p.add_key("keyring", Some("r"), b"", s).unwrap();
    let spec = format!("key_or_keyring:{ca}");
    p.keyctl_restrict_keyring(r, Some("asymmetric"), Some(&spec))
        .unwrap();
    assert!(p.add_key("asymmetric", None, &cert("ee"), r).is_ok());
    assert_eq!(
        p.add_key("asymmetric", None, &cert("ee2"), r),
        Err(Errno::ENOKEY)
    );

    p.add_key("user", Some("mk"), b"0123456789abcdef", s)
        .unwrap();
    let helper = p.fork();
    let ek = helper
        .key_construct("encrypted", "ek", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    assert_eq!(
        helper.keyctl_instantiate(ek, b"new user:mk 19", 0),
        Err(Errno::EINVAL)
    );
    helper.keyctl_instantiate(ek, b"new user:mk 32", 0).unwrap();
    let blob = p.keyctl_read(ek).unwrap();
    assert!(blob.starts_with(b"default user:mk 32 "), "{blob:?}");
    let helper = p.fork();
    let lk = helper
        .key_construct("encrypted", "lk", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    let load = [b"load ".as_slice(), &blob].concat();
    helper.keyctl_instantiate(lk, &load, 0).unwrap();
    assert_eq!(p.keyctl_read(lk), Ok(blob));
}

/// The quota sysctls bound the next charge (key_alloc()'s check and
/// key_payload_reserve()'s, security/keys/key.c): root is held to
/// `root_maxkeys` and `root_maxbytes`, everyone else to `maxkeys` and
/// `maxbytes`; a key is charged its description plus its terminating
/// NUL, a `user` key its payload too, and linking it into a keyring
/// charges the keyring's owner 4 bytes (`KEYQUOTA_LINK_BYTES`). Each limit is set, through the
/// sysctl file, to exactly what one more key needs: that key is made, the
/// next one is EDQUOT.
#[test]
fn keys_quota_sysctls_bound_the_next_charge() {
    use watchq_kernel::syscalls::procfs::ProcNode;
    let kernel = Kernel::new(KernelConfig::default());
    let root = kernel.spawn(0, 0);
    let user = kernel.spawn(1000, 1000);
    let set = |f: &str, v: usize| {
        let n = ProcNode::lookup(&format!("/proc/sys/kernel/keys/{f}")).unwrap();
        let text = format!("{v}\n");
        assert_eq!(root.proc_write(n, 0, text.as_bytes()), Ok(text.len()));
    };
    for (p, uid, keys, bytes) in [
        (&root, 0, "root_maxkeys", "root_maxbytes"),
        (&user, 1000, "maxkeys", "maxbytes"),
    ] {
        let s = p.keyctl_join_session_keyring(None).unwrap();
        // One more key: "a" is 2 bytes, its payload 3, its link 4.
        let (k, b) = kernel.keys().quota_of(uid);
        set(bytes, b + 9);
        p.add_key("user", Some("a"), b"xyz", s).unwrap();
        assert_eq!(
            p.add_key("user", Some("b"), b"x", s),
            Err(Errno::EDQUOT),
            "{bytes}"
        );
        set(bytes, 25_000_000);
        set(keys, k + 2);
        p.add_key("user", Some("c"), b"x", s).unwrap();
        assert_eq!(
            p.add_key("user", Some("d"), b"x", s),
            Err(Errno::EDQUOT),
            "{keys}"
        );
        set(keys, 1_000_000);
    }
}

/// A kernel booted with other key tunables (`KernelConfig::keys`, as
/// `watchq exec`'s options set them) reports them (`KeyStore::config`, and
/// its debug line, which names the key count) and starts from them: the
/// sysctl files read them and the first key gets the configured serial.
#[test]
fn keys_boot_config_is_what_the_store_and_sysctls_report() {
    use watchq_kernel::keys::KeyConfig;
    use watchq_kernel::syscalls::procfs::ProcNode;
    let keys = KeyConfig {
        first_serial: 0x2000_0001,
        gc_delay: 7,
        maxkeys: 3,
        maxbytes: 99,
        notifications: false,
    };
    let kernel = Kernel::new(KernelConfig {
        keys,
        ..KernelConfig::default()
    });
    let c = kernel.keys().config();
    assert_eq!(
        (
            c.first_serial,
            c.gc_delay,
            c.maxkeys,
            c.maxbytes,
            c.notifications
        ),
        (0x2000_0001, 7, 3, 99, false)
    );
    let root = kernel.spawn(0, 0);
    let read = |f: &str| {
        let n = ProcNode::lookup(&format!("/proc/sys/kernel/keys/{f}")).unwrap();
        String::from_utf8(root.proc_read(n, 0, 64).unwrap()).unwrap()
    };
    assert_eq!(
        (read("gc_delay"), read("maxkeys"), read("maxbytes")),
        ("7\n".into(), "3\n".into(), "99\n".into())
    );
    let s = root.keyctl_join_session_keyring(None).unwrap();
    assert_eq!(s, 0x2000_0001);
    // The store counts its live keys: one more for a key, one less when
    // the collector destroys it; never empty (the system keyrings).
    let n = kernel.keys().len();
    let a = root.add_key("user", Some("a"), b"x", s).unwrap();
    assert_eq!(kernel.keys().len(), n + 1);
    root.keyctl_unlink(a, s).unwrap();
    kernel.key_gc();
    assert_eq!(kernel.keys().len(), n);
    assert!(!kernel.keys().is_empty());
    let debug = format!("{:?}", kernel.keys());
    assert!(
        debug.starts_with("KeyStore") && debug.contains(&format!("keys: {n}")),
        "{debug}"
    );
}

/// A request-key helper's forked child keeps the authority to instantiate
/// the key its parent was given: the authorisation key is held in the
/// task's credentials (`cred->request_key_auth`), which `copy_creds()`
/// copies into a child with `prepare_creds()` (a reference taken on the
/// same authorisation key), and `keyctl_instantiate_key_common()` looks
/// for it there alone (EPERM without it). Having instantiated the key, the
/// child drops the authority (the instantiation's own
/// `keyctl_change_reqkey_auth(NULL)`: its second try is EPERM), and a
/// search finds the key positive.
#[test]
fn keys_helper_child_inherits_instantiation_authority() {
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let helper = p.fork();
    let key = helper
        .key_construct("user", "by-child", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    let child = helper.fork();
    // A sibling forked from the requestor, not from the helper, has none.
    let sibling = p.fork();
    assert_eq!(sibling.keyctl_instantiate(key, b"no", 0), Err(Errno::EPERM));
    child.keyctl_instantiate(key, b"from the child", 0).unwrap();
    assert_eq!(
        child.keyctl_instantiate(key, b"again", 0),
        Err(Errno::EPERM)
    );
    assert_eq!(p.keyctl_search(s, "user", "by-child", 0), Ok(key));
    assert_eq!(p.keyctl_read(key), Ok(b"from the child".to_vec()));
}

/// A caller of the key store itself, below the system calls, with
/// anchors the test keeps (a requestor and its helper side by side): uid
/// and gid 1000 and the kernel's policy, no deadline, never interrupted.
struct Direct {
    kernel: Arc<Kernel>,
    cred: watchq_core::Cred,
    policy: Arc<dyn watchq_core::Policy>,
}

impl Direct {
    fn new() -> Self {
        let kernel = Kernel::new(KernelConfig::default());
        let (cred, policy) = (kernel.cred(1000, 1000), kernel.policy());
        Direct {
            kernel,
            cred,
            policy,
        }
    }

    fn ctx<'a>(
        &'a self,
        anchors: &'a mut watchq_sources::keys::Anchors,
    ) -> watchq_sources::keys::KeyCtx<'a> {
        watchq_sources::keys::KeyCtx {
            cred: &self.cred,
            anchors,
            policy: &*self.policy,
            deadline: None,
            interrupted: None,
            waits: None,
        }
    }
}

/// A request-key helper that assumed the authority for a key searches the
/// requestor's keyrings after its own, and possesses what it finds there
/// (`search_process_keyrings_rcu()`: with `cred->request_key_auth` set, the
/// requestor's thread, process and session keyrings are searched with the
/// requestor's credentials, and `lookup_user_key()` counts a key found so
/// as possessed). The helper runs in a session keyring of its own
/// (`_req.KEY`, as `call_sbin_request_key()` gives it), so without the
/// authority the requestor's keys are out of its reach: a search finds
/// nothing (ENOKEY), and a key it names by serial grants it only the
/// user's view (EACCES to read).
#[test]
fn keys_helper_searches_the_requestor_keyrings() {
    use watchq_sources::keys::{Anchors, Requested};
    let d = Direct::new();
    let store = d.kernel.keys();
    let mut req = Anchors::default();
    let session = store
        .join_session_keyring(&mut d.ctx(&mut req), None)
        .unwrap();
    req.session = Some(session);
    let secret = store
        .add_key(&mut d.ctx(&mut req), "user", Some("secret"), b"s3", session)
        .unwrap();
    let call = match store
        .request_key(&mut d.ctx(&mut req), "user", "wanted", Some(b"info"), 0)
        .unwrap()
    {
        Requested::Construct(call) => call,
        other => panic!("request_key: {other:?}"),
    };
    assert_eq!(call.rings[2], session);
    let mut helper = Anchors {
        session: Some(call.helper_session),
        ..Anchors::default()
    };
    macro_rules! search {
        ($a:expr) => {
            store.request_key(&mut d.ctx($a), "user", "secret", None, 0)
        };
    }
    // Before it assumes the authority: none of the requestor's keys.
    assert_eq!(search!(&mut helper), Err(Errno::ENOKEY));
    assert_eq!(
        store.read(&mut d.ctx(&mut helper), secret),
        Err(Errno::EACCES)
    );
    // It returns the serial of the `.request_key_auth` key standing for
    // the authority (keys.txt `authority`).
    let auth = store
        .assume_authority(&mut d.ctx(&mut helper), call.key)
        .unwrap();
    assert_ne!(auth, call.key);
    assert_eq!(
        store.describe(&mut d.ctx(&mut helper), auth),
        Ok(format!(
            ".request_key_auth;{};{};1b010000;{:x}",
            d.cred.uid, d.cred.gid, call.key
        ))
    );
    assert_eq!(search!(&mut helper), Ok(Requested::Found(secret)));
    assert_eq!(
        store.read(&mut d.ctx(&mut helper), secret),
        Ok(b"s3".to_vec())
    );
    // The helper's own session keyring is still searched first.
    let own = store
        .add_key(
            &mut d.ctx(&mut helper),
            "user",
            Some("secret"),
            b"own",
            call.helper_session,
        )
        .unwrap();
    assert_eq!(search!(&mut helper), Ok(Requested::Found(own)));
    store
        .instantiate(&mut d.ctx(&mut helper), call.key, b"made", 0)
        .unwrap();
    assert_eq!(
        store.construction_ended(&mut d.ctx(&mut req), &call),
        Ok(call.key)
    );
    // The construction over, its authority is gone with it.
    store
        .unlink(&mut d.ctx(&mut helper), own, call.helper_session)
        .unwrap();
    assert_eq!(search!(&mut helper), Err(Errno::ENOKEY));
}

/// Possession reaches six levels of nested keyrings below a keyring the
/// search starts from, no deeper: `search_nested_keyrings()` descends
/// into a nested keyring only while its stack holds fewer than
/// `KEYRING_SEARCH_MAX_DEPTH` (6) keyrings, so the links of a keyring six
/// levels down are looked at and its own nested keyrings are not. A chain
/// of keyrings each made in the last (add_key needs the destination
/// possessed: the default permissions give the user no write) grows to
/// the eighth, whose parent is found six levels down; the ninth is refused
/// (EACCES), its parent out of reach.
#[test]
fn keys_possession_reaches_six_levels_down() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(1000, 1000);
    let mut parent = p.keyctl_join_session_keyring(None).unwrap();
    for n in 1..=8 {
        let name = format!("d{n}");
        parent = p
            .add_key("keyring", Some(&name), b"", parent)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(
        p.add_key("keyring", Some("d9"), b"", parent),
        Err(Errno::EACCES)
    );
}

/// A key found below a keyring the search starts from is possessed only if
/// it grants the possessor search permission itself: the possession search
/// of `lookup_user_key()` is an ordinary keyring search, whose iterator
/// passes over a key the caller may not search (`key_task_permission()`
/// with `KEY_NEED_SEARCH`, as the search is not `NO_CHECK_PERM`). A key in
/// the session keyring whose permissions are the possessor's view and read
/// alone is then neither possessed nor readable by its owner (KEYCTL_READ
/// falls back to possession when the direct check fails: EACCES); with the
/// possessor's search bit too, it is read.
#[test]
fn keys_possession_needs_the_keys_own_search_permission() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(1000, 1000);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    let pos_view_read = 0x0300_0000;
    let pos_search = 0x0800_0000;
    let k = p.add_key("user", Some("k"), b"v", s).unwrap();
    p.keyctl_setperm(k, pos_view_read).unwrap();
    assert_eq!(p.keyctl_read(k), Err(Errno::EACCES));
    let k2 = p.add_key("user", Some("k2"), b"w", s).unwrap();
    p.keyctl_setperm(k2, pos_view_read | pos_search).unwrap();
    assert_eq!(p.keyctl_read(k2), Ok(b"w".to_vec()));
}

/// Possession is not found through a revoked or an invalidated keyring:
/// `search_nested_keyrings()` goes into no keyring flagged
/// `KEY_FLAG_REVOKED` or `KEY_FLAG_INVALIDATED` (its `descend_to_keyring`
/// check). A key in a nested keyring of the session is read through
/// possession (its owner is granted the view alone); once that keyring is
/// revoked, or invalidated (before the collector unlinks it), the key is
/// no longer possessed and its read is EACCES.
#[test]
fn keys_possession_skips_revoked_and_invalidated_keyrings() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(1000, 1000);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    for revoke in [true, false] {
        let ring = p.add_key("keyring", Some("ring"), b"", s).unwrap();
        let key = p.add_key("user", Some("key"), b"v", ring).unwrap();
        assert_eq!(p.keyctl_read(key), Ok(b"v".to_vec()), "revoke {revoke}");
        if revoke {
            p.keyctl_revoke(ring).unwrap();
        } else {
            p.keyctl_invalidate(ring).unwrap();
        }
        assert_eq!(p.keyctl_read(key), Err(Errno::EACCES), "revoke {revoke}");
    }
}

/// Possession goes down only into nested keyrings the possessor may
/// search, and only to what they link: `search_nested_keyrings()` skips a
/// nested keyring for which `key_task_permission(..., KEY_NEED_SEARCH)`
/// fails, and finds a key only in the links of a keyring it searched. A key
/// in a nested keyring without search permission is not possessed (its
/// read, granted to its owner only as a possessor, is EACCES); nor is a key
/// of the user keyring, which an anonymous session keyring does not link,
/// however many searchable keyrings that session holds.
#[test]
fn keys_possession_needs_searchable_nested_keyrings() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(1000, 1000);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    let shut = p.add_key("keyring", Some("shut"), b"", s).unwrap();
    let inside = p.add_key("user", Some("inside"), b"v", shut).unwrap();
    assert_eq!(p.keyctl_read(inside), Ok(b"v".to_vec()));
    // The possessor's view, read, write, link and setattr: no search.
    p.keyctl_setperm(shut, 0x3700_0000).unwrap();
    assert_eq!(p.keyctl_read(inside), Err(Errno::EACCES));
    p.add_key("keyring", Some("open"), b"", s).unwrap();
    let elsewhere = p
        .add_key("user", Some("elsewhere"), b"u", KEY_SPEC_USER_KEYRING)
        .unwrap();
    assert_eq!(p.keyctl_read(elsewhere), Err(Errno::EACCES));
}

/// The keyrings the kernel makes on demand are charged to their owner's
/// quota, each a key and its description's bytes with the NUL
/// (`key_alloc()`'s `desclen + 1`; a keyring has no payload of its own),
/// the process and thread keyrings (`_pid`, `_tid`) and an anonymous
/// session keyring (`_ses`) beyond the quota (`KEY_ALLOC_QUOTA_OVERRUN`),
/// the user keyrings within it (`KEY_ALLOC_IN_QUOTA`). The user session
/// keyring's link to the user keyring is 4 bytes more
/// (`KEYQUOTA_LINK_BYTES`, reserved by `key_link()`), given back when the
/// keyring is cleared (`keyring_clear()` reserves 0 bytes of links) and
/// charged again when the link is made again.
#[test]
fn keys_keyrings_made_on_demand_are_charged_to_their_owner() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(1000, 1000);
    let quota = || kernel.keys().quota_of(1000);
    assert_eq!(quota(), (0, 0));
    p.keyctl_get_keyring_id(KEY_SPEC_PROCESS_KEYRING, true)
        .unwrap();
    assert_eq!(quota(), (1, 5), "_pid");
    p.keyctl_get_keyring_id(KEY_SPEC_THREAD_KEYRING, true)
        .unwrap();
    assert_eq!(quota(), (2, 10), "_tid");
    // "_uid.1000" and "_uid_ses.1000": 10 and 14 bytes, and the link.
    let u = p
        .keyctl_get_keyring_id(KEY_SPEC_USER_KEYRING, true)
        .unwrap();
    assert_eq!(quota(), (4, 38), "user keyrings");
    p.keyctl_clear(KEY_SPEC_USER_SESSION_KEYRING).unwrap();
    assert_eq!(quota(), (4, 34), "user session keyring cleared");
    p.keyctl_link(u, KEY_SPEC_USER_SESSION_KEYRING).unwrap();
    assert_eq!(quota(), (4, 38), "user keyring linked again");
    // The session keyring on demand: "_ses", the user keyrings made.
    p.keyctl_get_keyring_id(KEY_SPEC_SESSION_KEYRING, true)
        .unwrap();
    assert_eq!(quota(), (5, 43), "_ses");
}

/// The group's permission bits apply to a caller that is not the key's
/// owner but is in its group, by its own group id or a supplementary
/// one, and only if the key grants its group anything at all: with no
/// group bit set the other bits apply to everyone but the owner
/// (`key_task_permission()`'s
/// `gid_valid(key->gid) && key->perm & KEY_GRP_ALL` before
/// `groups_search()`).
#[test]
fn keys_group_bits_apply_to_members_when_the_key_grants_the_group_any() {
    let kernel = Kernel::new(KernelConfig::default());
    let root = kernel.spawn(0, 0);
    let s = root.keyctl_join_session_keyring(None).unwrap();
    let k = root.add_key("user", Some("shared"), b"v", s).unwrap();
    root.keyctl_chown(k, u32::MAX, 100).unwrap();
    let member = kernel.spawn(1000, 100);
    let supplementary = kernel.spawn(1001, 1001);
    let mut cred = kernel.cred(1001, 1001);
    cred.groups = vec![100];
    supplementary.set_cred(cred);
    let outsider = kernel.spawn(1002, 1002);
    // (permissions, may the members read, may they view, may the outsider read)
    for (perm, members_read, members_view, outsider_read) in [
        // No group bit: the other bits, for the members too.
        (0x3f3f_0003, true, true, true),
        // The group may view alone: the members may not read.
        (0x3f3f_0103, false, true, true),
        // The group may read, not view; the others nothing.
        (0x3f3f_0200, true, false, false),
    ] {
        root.keyctl_setperm(k, perm).unwrap();
        for p in [&member, &supplementary] {
            let read = p.keyctl_read(k);
            assert_eq!(read.is_ok(), members_read, "{perm:#x}: {read:?}");
            let view = p.keyctl_describe(k);
            assert_eq!(view.is_ok(), members_view, "{perm:#x}: {view:?}");
            if members_view {
                assert_eq!(view, Ok(format!("user;0;100;{perm:08x};shared")));
            }
        }
        let read = outsider.keyctl_read(k);
        assert_eq!(read.is_ok(), outsider_read, "{perm:#x}: {read:?}");
        if !outsider_read {
            assert_eq!(read, Err(Errno::EACCES));
        }
    }
}

/// The keyrings a process gets on demand have the kernel's names, owners
/// and permissions: the thread and process keyrings `_tid` and `_pid`
/// (`install_thread_keyring_to_cred()`, `install_process_keyring_to_cred()`:
/// possessor all, owner view), an anonymous session keyring `_ses`
/// (`install_session_keyring_to_cred()`: possessor all, owner view and
/// read), a named one joined (`join_session_keyring()`: owner link too).
/// A process with no session keyring that asks for it without create gets
/// the user session keyring installed as its session
/// (`lookup_user_key()`'s `install_session_keyring(user_session)`), with
/// create a new anonymous one (`join_session_keyring(NULL)`).
#[test]
fn keys_keyrings_made_on_demand_have_the_kernels_names_and_permissions() {
    let kernel = Kernel::new(KernelConfig::default());
    let describe = |p: &Process, id: Serial| {
        let s = p.keyctl_get_keyring_id(id, true).unwrap();
        p.keyctl_describe(s).unwrap()
    };
    let p = kernel.spawn(1000, 1000);
    assert_eq!(
        describe(&p, KEY_SPEC_THREAD_KEYRING),
        "keyring;1000;1000;3f010000;_tid"
    );
    assert_eq!(
        describe(&p, KEY_SPEC_PROCESS_KEYRING),
        "keyring;1000;1000;3f010000;_pid"
    );
    let us = p
        .keyctl_get_keyring_id(KEY_SPEC_SESSION_KEYRING, false)
        .unwrap();
    assert_eq!(
        p.keyctl_get_keyring_id(KEY_SPEC_USER_SESSION_KEYRING, false),
        Ok(us)
    );
    assert_eq!(
        p.keyctl_describe(us).unwrap(),
        "keyring;1000;65534;1f3f0000;_uid_ses.1000"
    );
    let q = kernel.spawn(1000, 1000);
    let ses = q
        .keyctl_get_keyring_id(KEY_SPEC_SESSION_KEYRING, true)
        .unwrap();
    assert_ne!(ses, us);
    assert_eq!(
        q.keyctl_describe(ses).unwrap(),
        "keyring;1000;1000;3f030000;_ses"
    );
    // Asked again, without create: the session it has now.
    assert_eq!(
        q.keyctl_get_keyring_id(KEY_SPEC_SESSION_KEYRING, false),
        Ok(ses)
    );
    let r = kernel.spawn(1000, 1000);
    let named = r.keyctl_join_session_keyring(Some("named")).unwrap();
    assert_eq!(
        r.keyctl_describe(named).unwrap(),
        "keyring;1000;1000;3f130000;named"
    );
}

/// A process that waits for a key under construction with no alarm set
/// sleeps until the helper instantiates it (`wait_for_key_construction()`
/// sleeps for as long as it takes). Only the helper's wait for its own key
/// without an alarm is refused (EDEADLK), where the kernel would sleep for
/// ever. The helper instantiates 200 ms after the waiter started, time
/// enough for the waiter to reach its wait.
#[test]
fn keys_waiter_without_an_alarm_sleeps_until_the_key_is_instantiated() {
    let k = K::new();
    let helper = k.p.fork();
    let nk = helper
        .key_construct("user", "nap", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    let w = k.p.fork();
    let waiter = std::thread::spawn(move || w.keyctl_read(nk));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(helper.keyctl_read(nk), Err(Errno::EDEADLK));
    helper.keyctl_instantiate(nk, b"awake", 0).unwrap();
    let got = within(10, "the waiter", move || waiter.join().unwrap());
    assert_eq!(got, Ok(b"awake".to_vec()));
}

/// /proc/keys's timeout and usage columns (`proc_keys_show()`): the time
/// left, rounded down, in seconds under a minute, then minutes, hours,
/// days, and weeks from a week on; `expd` once it is over, `perm` with no
/// expiry. The user keyrings are each linked from the user namespace's
/// register (`look_up_user_keyrings()` makes them with the register as
/// their keyring), the user keyring from the user session keyring too:
/// usage 2 and 1, as no credentials hold them. A keyring's describe is
/// `: empty` or its link count. The clock is moved first,
/// so the time left is the expiry less the clock, not the expiry.
#[test]
fn keys_proc_keys_timeout_and_usage_columns() {
    use watchq_kernel::syscalls::procfs::ProcNode;
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(1000, 1000);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    kernel.advance_clock(1000);
    let u = p
        .keyctl_get_keyring_id(KEY_SPEC_USER_KEYRING, true)
        .unwrap();
    let us = p
        .keyctl_get_keyring_id(KEY_SPEC_USER_SESSION_KEYRING, true)
        .unwrap();
    // (timeout set, the column now, the column 30 s later)
    let cases = [
        (59, "59s", "29s"),
        (60, "1m", "30s"),
        (3599, "59m", "59m"),
        (3600, "1h", "59m"),
        (86399, "23h", "23h"),
        (86400, "1d", "23h"),
        (604799, "6d", "6d"),
        (604800, "1w", "6d"),
        (1_209_630, "2w", "2w"),
        (20, "20s", "expd"),
    ];
    let keys: Vec<Serial> = cases
        .iter()
        .enumerate()
        .map(|(i, &(secs, ..))| {
            let k = p.add_key("user", Some(&format!("k{i}")), b"x", s).unwrap();
            p.keyctl_set_timeout(k, secs).unwrap();
            k
        })
        .collect();
    // serial -> (usage, timeout)
    let columns = || -> std::collections::HashMap<Serial, (String, String)> {
        let node = ProcNode::lookup("/proc/keys").unwrap();
        let text = String::from_utf8(p.proc_read(node, 0, 1 << 16).unwrap()).unwrap();
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let serial = u32::from_str_radix(f[0], 16).unwrap() as Serial;
                (serial, (f[2].to_string(), f[3].to_string()))
            })
            .collect()
    };
    let now = columns();
    for (k, (secs, want, _)) in keys.iter().zip(cases) {
        assert_eq!(now[k].1, want, "timeout {secs}");
    }
    assert_eq!(now[&s], ("1".to_string(), "perm".to_string()));
    assert_eq!(now[&u], ("2".to_string(), "perm".to_string()));
    assert_eq!(now[&us], ("1".to_string(), "perm".to_string()));
    kernel.advance_clock(30);
    let later = columns();
    for (k, (secs, _, want)) in keys.iter().zip(cases) {
        assert_eq!(later[k].1, want, "timeout {secs}, 30 s later");
    }
    // A big_key's payload is kept in a buffer up to the file threshold
    // (760 bytes on the recording's kernel: procfs.txt `big-key`) and in a
    // file above it (`big_key_preparse()`'s `datalen >
    // BIG_KEY_FILE_THRESHOLD`; `big_key_describe()` says which).
    let node = ProcNode::lookup("/proc/keys").unwrap();
    // A keyring's description, then `: empty` or its link count
    // (`keyring_describe()`).
    let e = p.add_key("keyring", Some("E"), b"", s).unwrap();
    for (links, want) in [(0, "E: empty"), (1, "E: 1")] {
        if links == 1 {
            p.add_key("user", Some("in-e"), b"x", e).unwrap();
        }
        let text = String::from_utf8(p.proc_read(node, 0, 1 << 16).unwrap()).unwrap();
        let want = format!("keyring   {want}");
        assert!(text.lines().any(|l| l.ends_with(&want)), "{want}\n{text}");
    }
    for (n, at) in [(760, "buff"), (761, "file")] {
        p.add_key("big_key", Some(&format!("b{n}")), &vec![7; n], s)
            .unwrap();
        let text = String::from_utf8(p.proc_read(node, 0, 1 << 16).unwrap()).unwrap();
        let want = format!("big_key   b{n}: {n} [{at}]");
        assert!(text.lines().any(|l| l.ends_with(&want)), "{want}\n{text}");
    }
}

/// A key call works on a copy of the caller's keyrings and installs what
/// it made when it returns; the collector, run meanwhile from another
/// process's read, must not take the keyring the call just made for want
/// of a process holding it (the call holds it, as a syscall holds its
/// reference in the kernel). keyutils' watch_session saw ENOKEY watching
/// the session keyring it had just joined, its consumer's first read
/// having run the collector in between (bugzillas/bz1033467 in CI).
#[test]
fn keys_collector_spares_what_a_call_in_flight_made() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(0, 0);
    let [fd, _w] = p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
    p.set_queue_size(fd, 256).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    // Stops the collector's thread however the loop below ends.
    struct Done<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let lost = std::thread::scope(|sc| {
        sc.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                kernel.keys().schedule_gc();
                kernel.key_gc();
            }
        });
        let _done = Done(&done);
        let mut lost = Vec::new();
        for _ in 0..2_000 {
            let s = p.keyctl_join_session_keyring(None).unwrap();
            let r = p.keyctl_watch_key(s, fd, 1);
            let _ = p.keyctl_watch_key(s, fd, -1);
            if r.is_err() {
                lost.push(r);
            }
        }
        lost
    });
    assert!(
        lost.is_empty(),
        "of 2,000 session keyrings just joined, {} were gone: {lost:?}",
        lost.len()
    );
}

/// The store's side of the rule above, step by step: a keyring a call
/// made survives a collector that runs before the call installs it, the
/// collector is queued again when the call ends, and the keyring goes at
/// that run if nothing holds it by then (the call failed to install it).
#[test]
fn keys_store_spares_a_key_until_its_call_ends() {
    use watchq_sources::keys::{Anchors, KeyCtx};
    let kernel = Kernel::new(KernelConfig::default());
    let store = kernel.keys();
    let policy = kernel.policy();
    let cred = kernel.cred(1000, 1000);
    let mut anchors = Anchors::default();
    let call = store.begin_call();
    let made = store
        .join_session_keyring(
            &mut KeyCtx {
                cred: &cred,
                anchors: &mut anchors,
                policy: &*policy,
                deadline: None,
                interrupted: None,
                waits: None,
            },
            Some("in-flight"),
        )
        .unwrap();
    let exists = |s| store.info(s).is_some();
    store.gc(&[]);
    assert!(exists(made), "collected while its call was in flight");
    assert!(store.gc_pending(), "spared, so queued again");
    store.gc(&[]);
    assert!(exists(made));
    drop(call);
    assert!(store.gc_pending(), "a collector ran during the call");
    store.gc(&[]);
    assert!(!exists(made), "nothing holds it once its call ended");
    assert!(!store.gc_pending());
    // A call in flight holds what it made, not what another call made
    // meanwhile (a request-key helper's keys while its requestor waits).
    let _call = store.begin_call();
    let theirs = std::thread::scope(|sc| {
        sc.spawn(|| {
            let _theirs = store.begin_call();
            store
                .join_session_keyring(
                    &mut KeyCtx {
                        cred: &cred,
                        anchors: &mut Anchors::default(),
                        policy: &*policy,
                        deadline: None,
                        interrupted: None,
                        waits: None,
                    },
                    Some("theirs"),
                )
                .unwrap()
        })
        .join()
        .unwrap()
    });
    store.gc(&[]);
    assert!(!exists(theirs));
    assert!(!store.gc_pending());
}

/// KEYCTL_PKEY_QUERY in process, as Linux 6.12.117 answered it
/// (tests/data/conformance/asym.txt, section `asym-pkey`): the 56 bytes
/// of `struct keyctl_pkey_query` (the supported operations, the key's
/// bits, then the data, signature, encryption and decryption sizes as
/// 16-bit words, then ten spare words of zero) for an RSA key with and
/// without PKCS#1, and EOPNOTSUPP for a key that is not asymmetric
/// (`keyctl_pkey_query()` asks the key's type for `asym_query`).
#[test]
fn keys_pkey_query_reports_the_keys_sizes() {
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let ee = p.add_key("asymmetric", None, &cert("ee"), s).unwrap();
    let ee2 = p.add_key("asymmetric", None, &cert("ee2"), s).unwrap();
    let u = p.add_key("user", Some("u"), b"x", s).unwrap();
    let query = |ops: u32, bits: u32, size: u16| {
        let mut q = Vec::with_capacity(56);
        q.extend_from_slice(&ops.to_ne_bytes());
        q.extend_from_slice(&bits.to_ne_bytes());
        for _ in 0..4 {
            q.extend_from_slice(&size.to_ne_bytes());
        }
        q.resize(56, 0);
        q
    };
    assert_eq!(p.keyctl_pkey_query(ee, ""), Ok(query(0x1, 2048, 256)));
    assert_eq!(
        p.keyctl_pkey_query(ee, "enc=pkcs1 hash=sha256"),
        Ok(query(0x9, 2048, 256))
    );
    assert_eq!(
        p.keyctl_pkey_query(ee2, "enc=pkcs1 hash=sha512"),
        Ok(query(0x9, 3072, 384))
    );
    assert_eq!(p.keyctl_pkey_query(u, ""), Err(Errno::EOPNOTSUPP));
}

/// KEYCTL_PKEY_ENCRYPT in process, as Linux 6.12.117 answered it
/// (asym.txt, section `asym-pkey-ops`, the probe's input all zeros but
/// its last byte, 2): raw RSA of 256 or of 1 byte encrypts the same
/// number, and the kernel writes the key's 256 bytes whatever `out_len`
/// says (10 here); each length is checked against the query's sizes
/// before anything else (`keyctl_pkey_params_get_2()`: `in_len` against
/// the decryption size, `out_len` against the encryption size, both 256,
/// so 256 passes and 300 is EINVAL, even with no input to copy), then
/// the input's copy (EFAULT); a key that is not asymmetric is EOPNOTSUPP
/// first, from the query.
#[test]
fn keys_pkey_encrypt_checks_lengths_against_the_query() {
    use watchq_kernel::keyctl::cmd::PKEY_ENCRYPT;
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let ee = p.add_key("asymmetric", None, &cert("ee"), s).unwrap();
    let input = |len: usize| {
        let mut v = vec![0u8; len];
        v[len.max(1) - 1] = 2;
        v
    };
    let encrypt = |info: &str, in_len: u32, out_len: u32, input: Option<&[u8]>| {
        p.keyctl_pkey_op(PKEY_ENCRYPT, ee, info, (in_len, out_len), input)
    };
    for (in_len, out_len) in [(256, 256), (1, 256), (256, 10)] {
        let out = encrypt("enc=raw", in_len, out_len, Some(&input(in_len as usize))).unwrap();
        assert_eq!(out.len(), 256, "in {in_len}, out {out_len}");
        assert_eq!((&out[..4], out[255]), (&[0x44, 0x1f, 0x0d, 0x00][..], 0x9a));
    }
    assert_eq!(
        encrypt("enc=pkcs1", 32, 256, Some(&input(32))).map(|o| o.len()),
        Ok(256)
    );
    assert_eq!(
        encrypt("enc=pkcs1", 300, 256, Some(&input(300))),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        encrypt("enc=pkcs1", 32, 300, Some(&input(32))),
        Err(Errno::EINVAL)
    );
    assert_eq!(encrypt("enc=raw", 300, 256, None), Err(Errno::EINVAL));
    assert_eq!(encrypt("enc=raw", 32, 256, None), Err(Errno::EFAULT));
    let u = p.add_key("user", Some("u"), b"x", s).unwrap();
    assert_eq!(
        p.keyctl_pkey_op(PKEY_ENCRYPT, u, "enc=raw", (32, 256), None),
        Err(Errno::EOPNOTSUPP)
    );
}

/// Each length of KEYCTL_PKEY_ENCRYPT and VERIFY against its own size of
/// the query (asym.txt `asym-pkey-ops`, Linux 6.12.118): one byte over
/// the decrypted size (ENCRYPT's input) or the data size (VERIFY's) is
/// EINVAL before the operation (raw VERIFY's own ENOSYS); a 3072-bit
/// key's sizes are 384 each, so 384 in and out encrypts, 385 either way
/// is EINVAL.
#[test]
fn keys_pkey_lengths_meet_each_size_of_the_query() {
    use watchq_kernel::keyctl::cmd::{PKEY_ENCRYPT, PKEY_VERIFY};
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let ee = p.add_key("asymmetric", None, &cert("ee"), s).unwrap();
    let ee2 = p.add_key("asymmetric", None, &cert("ee2"), s).unwrap();
    let input = |len: usize| {
        let mut v = vec![0u8; len];
        v[len - 1] = 2;
        v
    };
    let op = |cmd, key, (i, o): (u32, u32)| {
        p.keyctl_pkey_op(cmd, key, "enc=raw", (i, o), Some(&input(i as usize)))
    };
    assert_eq!(op(PKEY_ENCRYPT, ee, (257, 256)), Err(Errno::EINVAL));
    assert_eq!(op(PKEY_VERIFY, ee, (257, 256)), Err(Errno::EINVAL));
    let out = op(PKEY_ENCRYPT, ee2, (384, 384)).unwrap();
    assert_eq!(out.len(), 384);
    assert_eq!((&out[..4], out[255]), (&[0x17, 0xa2, 0xca, 0xc8][..], 0x81));
    assert_eq!(op(PKEY_ENCRYPT, ee2, (385, 384)), Err(Errno::EINVAL));
    assert_eq!(op(PKEY_ENCRYPT, ee2, (384, 385)), Err(Errno::EINVAL));
    assert_eq!(op(PKEY_VERIFY, ee2, (384, 384)), Err(Errno::ENOSYS));
}

/// A restriction's signer found by the candidate's AKID serial and
/// issuer must also carry the AKID's key id as its SKID (asym.txt
/// `asym-restrict2`, Linux 6.12.118): int with its SKID changed (not
/// self-signed, so taken), trusted in a keyring (`find_asymmetric_key()`
/// rejects it) or as the key itself (`key_or_keyring_common()`: the key
/// id must match the SKID, the serial either id), does not let ee2 (its
/// AKID int's key id, serial and issuer) in: ENOKEY; int as made does.
#[test]
fn keys_asymmetric_signer_needs_the_akids_key_id_too() {
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let int = cert("int");
    let at = int
        .windows(7)
        .position(|w| w == [0x55, 0x1d, 0x0e, 0x04, 0x16, 0x04, 0x14])
        .unwrap();
    let mut edited = int.clone();
    edited[at + 7] ^= 1;
    for (what, c, want) in [
        ("edited", &edited, Err(Errno::ENOKEY)),
        ("as made", &int, Ok(())),
    ] {
        let t = p
            .add_key("keyring", Some(&format!("t-{what}")), b"", s)
            .unwrap();
        let key = p.add_key("asymmetric", None, c, t).unwrap();
        for (how, trusted) in [("keyring", t), ("key", key)] {
            let r = p
                .add_key("keyring", Some(&format!("r-{what}-{how}")), b"", s)
                .unwrap();
            let spec = format!("key_or_keyring:{trusted}");
            p.keyctl_restrict_keyring(r, Some("asymmetric"), Some(&spec))
                .unwrap();
            let got = p.add_key("asymmetric", None, &cert("ee2"), r).map(|_| ());
            assert_eq!(got, want, "int {what}, trusted as the {how}");
        }
    }
}

/// KEYCTL_READ's buffer length, as Linux 6.12.117 answered it
/// (surface.txt, section `readbuf`): a key's payload is returned
/// whatever the length (the caller copies it only when it fits), a
/// keyring's read method refuses a buffer that is not a whole number of
/// serials (`keyring_read()`: EINVAL for 13, not for 8). The method sees
/// the length only when it is at most a page (`keyctl_read_key()` reads
/// into a buffer of the payload's own size otherwise), so 4095 is EINVAL
/// and 4097 reads; 0 asks for the size alone. The request-key helper's
/// authorisation key (`.request_key_auth`, not a keyring) gives its
/// call-out information with any length (`request_key_auth_read()`).
#[test]
fn keys_read_buffer_length_rules() {
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let key = p.add_key("user", Some("k"), b"0123456789", s).unwrap();
    let r = p.add_key("keyring", Some("R"), b"", s).unwrap();
    let a = p.add_key("user", Some("a"), b"a", r).unwrap();
    let b = p.add_key("user", Some("b"), b"b", r).unwrap();
    let ids: Vec<u8> = [a, b].iter().flat_map(|i| i.to_ne_bytes()).collect();
    for len in [0, 1, 3, 4, 9, 10, 11, 4095, 4097] {
        assert_eq!(
            p.keyctl_read_into(key, len),
            Ok(b"0123456789".to_vec()),
            "{len}"
        );
    }
    for len in [0, 4, 8, 4096, 4097, 4098] {
        // The links in the index's order: compared as sets.
        let got = p.keyctl_read_into(r, len).unwrap();
        assert_eq!(got.len(), 8, "{len}");
        assert_eq!(
            got.chunks(4).collect::<std::collections::BTreeSet<_>>(),
            ids.chunks(4).collect(),
            "{len}"
        );
    }
    for len in [1, 3, 13, 4095] {
        assert_eq!(p.keyctl_read_into(r, len), Err(Errno::EINVAL), "{len}");
    }

    use watchq_sources::keys::{Anchors, Requested, KEY_SPEC_REQKEY_AUTH_KEY};
    let d = Direct::new();
    let store = d.kernel.keys();
    let mut req = Anchors::default();
    let call = match store
        .request_key(&mut d.ctx(&mut req), "user", "wanted", Some(b"info"), 0)
        .unwrap()
    {
        Requested::Construct(call) => call,
        other => panic!("request_key: {other:?}"),
    };
    let mut helper = Anchors {
        session: Some(call.helper_session),
        ..Anchors::default()
    };
    store
        .assume_authority(&mut d.ctx(&mut helper), call.key)
        .unwrap();
    for len in [0, 3, 4, 5] {
        assert_eq!(
            store.read_into(&mut d.ctx(&mut helper), KEY_SPEC_REQKEY_AUTH_KEY, len),
            Ok(b"info".to_vec()),
            "{len}"
        );
    }
}

/// KEYCTL_SESSION_TO_PARENT's look-up (`keyctl_session_to_parent()`:
/// `lookup_user_key(KEY_SPEC_SESSION_KEYRING, 0, KEY_NEED_LINK)`): the
/// caller's session keyring, EACCES once it no longer grants link
/// (surface.txt, section `s2p`: the child's KEYCTL_SETPERM, then
/// EACCES); a process with no session keyring offers its user session
/// keyring, which the look-up takes in the session's place when it may
/// not create.
#[test]
fn keys_session_to_parent_offers_the_session_keyring_with_link() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(1000, 1000);
    let us = p
        .keyctl_get_keyring_id(watchq_kernel::keys::KEY_SPEC_USER_SESSION_KEYRING, true)
        .unwrap();
    assert_eq!(p.keyctl_session_for_parent(), Ok(us));
    let s = p.keyctl_join_session_keyring(None).unwrap();
    assert_eq!(p.keyctl_session_for_parent(), Ok(s));
    // The possessor's view, read, write and search, without link.
    p.keyctl_setperm(s, 0x0f00_0000).unwrap();
    assert_eq!(p.keyctl_session_for_parent(), Err(Errno::EACCES));
}

/// KEYCTL_RESTRICT_KEYRING looks its key up (setattr permission) before
/// it copies its type and restriction in (`keyctl_restrict_keyring()`),
/// so with bad pointers a key that does not exist is ENOKEY, one the
/// caller may not set attributes of is EACCES (surface.txt, sections
/// `efault` and `sysrings`: root and `.blacklist`, whose owner bits and
/// possessor bits give no setattr and which root does not possess), and
/// only a key that passes the look-up gets to the copy's EFAULT.
#[test]
fn keys_restrict_looks_the_key_up_before_its_copy() {
    use watchq_kernel::keyctl::cmd::RESTRICT_KEYRING;
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let blacklist = k
        .kernel
        .keys()
        .system_keyrings()
        .into_iter()
        .find(|(d, _)| d == ".blacklist")
        .map(|(_, s)| s)
        .unwrap();
    assert_eq!(
        p.keyctl_checks_before_copy(RESTRICT_KEYRING, 0x7fff_ffff),
        Err(Errno::ENOKEY)
    );
    assert_eq!(
        p.keyctl_checks_before_copy(RESTRICT_KEYRING, blacklist),
        Err(Errno::EACCES)
    );
    assert_eq!(p.keyctl_checks_before_copy(RESTRICT_KEYRING, s), Ok(()));
}

/// A key's owner as the kernel keeps it (`key->uid`, which
/// KEYCTL_SESSION_TO_PARENT compares with the caller's uid, and
/// KEYCTL_DESCRIBE prints): its creator's, then the one KEYCTL_CHOWN
/// gave it; no owner for a serial no key has.
#[test]
fn keys_owner_is_the_creator_until_chown() {
    let kernel = Kernel::new(KernelConfig::default());
    let root = kernel.spawn(0, 0);
    let s = root.keyctl_join_session_keyring(None).unwrap();
    // The user shares (and possesses) root's session keyring.
    let user = root.fork();
    user.set_cred(kernel.cred(1000, 1000));
    let key = user.add_key("user", Some("k"), b"x", s).unwrap();
    let keys = kernel.keys();
    assert_eq!(keys.owner_of(s), Some(0));
    assert_eq!(keys.owner_of(key), Some(1000));
    root.keyctl_chown(key, 2000, u32::MAX).unwrap();
    assert_eq!(keys.owner_of(key), Some(2000));
    assert!(root.keyctl_describe(key).unwrap().starts_with("user;2000;"));
    assert_eq!(keys.owner_of(0x7fff_ffff), None);
}

/// KEYCTL_GET_PERSISTENT as Linux 6.12.117 answered it (surface.txt,
/// sections `persistent` and `persistent-user`): one keyring a uid,
/// `_persistent.UID`, owned by that uid with no group and permissions
/// 1f030000, the same keyring at each fetch, −1 (as `u32::MAX`) meaning
/// the caller's uid; another uid's only with CAP_SETUID
/// (`keyctl_get_persistent()`: EPERM, before the destination's look-up);
/// and the keyring the register holds for each uid is that uid's.
#[test]
fn keys_persistent_keyring_is_each_uids_own() {
    let kernel = Kernel::new(KernelConfig::default());
    let root = kernel.spawn(0, 0);
    let s = root.keyctl_join_session_keyring(None).unwrap();
    let p1000 = root.keyctl_get_persistent(1000, s).unwrap();
    assert_eq!(
        root.keyctl_describe(p1000).unwrap(),
        "keyring;1000;65534;1f030000;_persistent.1000"
    );
    let p0 = root.keyctl_get_persistent(u32::MAX, s).unwrap();
    assert_ne!(p0, p1000);
    assert_eq!(
        root.keyctl_describe(p0).unwrap(),
        "keyring;0;65534;1f030000;_persistent.0"
    );
    assert_eq!(root.keyctl_get_persistent(0, s), Ok(p0));
    assert_eq!(root.keyctl_get_persistent(1000, s), Ok(p1000));

    let user = root.fork();
    user.set_cred(kernel.cred(1000, 1000));
    let s1000 = user.keyctl_join_session_keyring(None).unwrap();
    assert_eq!(user.keyctl_get_persistent(u32::MAX, s1000), Ok(p1000));
    assert_eq!(user.keyctl_get_persistent(1000, s1000), Ok(p1000));
    assert_eq!(user.keyctl_get_persistent(0, s1000), Err(Errno::EPERM));
    assert_eq!(
        user.keyctl_get_persistent(0, 0x7fff_ffff),
        Err(Errno::EPERM)
    );
    assert_eq!(user.keyctl_get_persistent(1001, s1000), Err(Errno::EPERM));
}

/// The kernel's own keyrings as Linux 6.12.117 listed them (surface.txt,
/// section `sysrings`): a booted kernel has `.builtin_trusted_keys` and
/// `.blacklist` (certs/system_keyring.c, certs/blacklist.c); `.user_reg`
/// comes with the first user keyrings (`look_up_user_keyrings()`) and
/// holds them, `.persistent_register` with the first persistent keyring
/// and holds those. Each is root's, with the recorded permissions, and
/// neither their owner bits nor their possessor bits (root does not
/// possess them) let root link them.
#[test]
fn keys_system_keyrings_have_the_kernels_names_and_permissions() {
    let kernel = Kernel::new(KernelConfig::default());
    let root = kernel.spawn(0, 0);
    let s = root.keyctl_join_session_keyring(None).unwrap();
    let names = |k: &Kernel| {
        let mut v: Vec<String> = k
            .keys()
            .system_keyrings()
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&kernel), [".blacklist", ".builtin_trusted_keys"]);
    root.keyctl_get_keyring_id(KEY_SPEC_USER_KEYRING, true)
        .unwrap();
    root.keyctl_get_persistent(u32::MAX, s).unwrap();
    root.keyctl_get_persistent(1000, s).unwrap();
    let rings = kernel.keys().system_keyrings();
    let mut sorted: Vec<&str> = rings.iter().map(|(d, _)| d.as_str()).collect();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            ".blacklist",
            ".builtin_trusted_keys",
            ".persistent_register",
            ".user_reg"
        ]
    );
    for (desc, ring) in &rings {
        let (perm, gid, links) = match desc.as_str() {
            ".blacklist" => ("0f0b0000", 0, 0),
            ".builtin_trusted_keys" => ("1f0b0000", 0, 0),
            ".persistent_register" => ("1f030000", 0, 2),
            _ => ("0c030000", 65534, 2),
        };
        assert_eq!(
            root.keyctl_describe(*ring).unwrap(),
            format!("keyring;0;{gid};{perm};{desc}")
        );
        assert_eq!(
            root.keyctl_read(*ring).map(|v| v.len()),
            Ok(4 * links),
            "{desc}"
        );
        assert_eq!(root.keyctl_link(*ring, s), Err(Errno::EACCES), "{desc}");
    }
}

/// KEYCTL_DH_COMPUTE in process against Linux 6.12.117's answers
/// (tests/data/conformance/dh.txt, written by probes/dh.c): the same
/// `user` keys (a 1551-bit and a 1536-bit prime, bases 5 and 1, private
/// keys of 90 bytes and of 3, a 1528-bit prime, a zero prime, a revoked
/// key, a logon key), and each line whose call is the key store's (the
/// parameter block's and the buffers' copies are the system call's)
/// printed as the probe prints it: the value, then the bytes as hex in
/// groups of 32, then `next ee` when nothing was written past them.
#[test]
fn keys_dh_compute_as_linux_computed_it() {
    use watchq_kernel::keys::DhKdf;
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let num = |label: &str, len: usize, top: u8, fill: u8, low: u8| {
        let mut v = vec![fill; len];
        (v[0], v[len - 1]) = (top, low);
        p.add_key("user", Some(label), &v, s).unwrap()
    };
    let p1551 = num("p1551", 194, 0x40, 0x5a, 0xa7);
    let g5 = num("g5", 1, 0x05, 0x05, 0x05);
    let x = num("x", 90, 0x12, 0x34, 0x57);
    let p1536 = num("p1536", 192, 0x80, 0x00, 0x01);
    let g1 = num("g1", 1, 0x01, 0x01, 0x01);
    let x3 = num("x3", 1, 0x03, 0x03, 0x03);
    let p1528 = num("p1528", 191, 0x80, 0x11, 0x01);
    let zero = num("zero", 192, 0x00, 0x00, 0x00);
    let revoked = num("revoked", 1, 0x02, 0x02, 0x02);
    p.keyctl_revoke(revoked).unwrap();
    let logon = p.add_key("logon", Some("dh:logon"), b"\0", s).unwrap();

    let kdf = |hash: &str, otherinfo: &[u8]| {
        Some(DhKdf {
            hash: hash.into(),
            otherinfo: otherinfo.to_vec(),
        })
    };
    let line = |label: &str, keys, buflen: usize, kdf: Option<DhKdf>| {
        let shown = match p.keyctl_dh_compute(keys, buflen, kdf.as_ref()) {
            Err(e) => format!("-1 {}", e.name()),
            Ok((r, _)) if buflen == 0 => r.to_string(),
            Ok((r, v)) => {
                let hex: String = v
                    .iter()
                    .enumerate()
                    .map(|(i, b)| format!("{}{b:02x}", if i % 32 == 0 { " " } else { "" }))
                    .collect();
                let next = if v.len() == r { "ee" } else { "(more)" };
                format!("{r}:{hex} | next {next}")
            }
        };
        format!("{label} = {shown}")
    };
    let mut ours = vec![
        line("dh(x, p1551, g5, NULL, 0)", (x, p1551, g5), 0, None),
        line("dh(x, p1551, g5, out, 1100)", (x, p1551, g5), 1100, None),
        line("dh(x, p1551, g5, out, 199)", (x, p1551, g5), 199, None),
        line("dh(x3, p1536, g1, out, 192)", (x3, p1536, g1), 192, None),
    ];
    for (what, keys) in [
        ("x, p1528, g5", (x, p1528, g5)),
        ("p1551, p1536, g5", (p1551, p1536, g5)),
        ("x, p1536, p1551", (x, p1536, p1551)),
        ("x, zero, g5", (x, zero, g5)),
        ("x, p1551, revoked", (x, p1551, revoked)),
        ("x, p1551, logon", (x, p1551, logon)),
        ("x, p1551, @s", (x, p1551, KEY_SPEC_SESSION_KEYRING)),
        ("x, p1551, 0", (x, p1551, 0)),
        ("0, p1528, g5", (0, p1528, g5)),
        ("x, logon, 0", (x, logon, 0)),
    ] {
        ours.push(line(&format!("dh({what}, out, 1100)"), keys, 1100, None));
    }
    for hash in [
        "sha256",
        "sha224",
        "sha384",
        "sha512",
        "sha1",
        "sha3-256",
        "sha3-512",
        "sha256-generic",
        "sha1-generic",
        "hmac(sha256)",
        "md5",
        "nosuchhash",
        "",
    ] {
        let label = format!("kdf(x3, p1536, g1, out, 40, \"{hash}\", \"other\")");
        ours.push(line(&label, (x3, p1536, g1), 40, kdf(hash, b"other")));
    }
    let mut oi64 = b"sixty-four bytes of other information, zero-padded".to_vec();
    oi64.resize(64, 0);
    let sha = [
        (
            "kdf(x, p1551, g5, out, 70, sha256)",
            (x, p1551, g5),
            70,
            "sha256",
            b"other".as_slice(),
        ),
        (
            "kdf(x, p1551, g5, NULL, 0, sha256)",
            (x, p1551, g5),
            0,
            "sha256",
            b"other",
        ),
        (
            "kdf(x, p1551, g5, out, 1, sha256)",
            (x, p1551, g5),
            1,
            "sha256",
            b"other",
        ),
        (
            "kdf(x3, p1536, g1, out, 32, sha256, no otherinfo)",
            (x3, p1536, g1),
            32,
            "sha256",
            b"",
        ),
        ("kdf(otherinfolen 64)", (x, p1551, g5), 16, "sha256", &oi64),
        (
            "kdf(nosuchhash, no base key)",
            (x, p1551, 0),
            16,
            "nosuchhash",
            b"other",
        ),
    ];
    for (label, keys, buflen, hash, otherinfo) in sha {
        ours.push(line(label, keys, buflen, kdf(hash, otherinfo)));
    }
    let recorded = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/conformance/dh.txt"
    ))
    .unwrap();
    for ours in &ours {
        let label = &ours[..ours.find(" = ").unwrap()];
        let theirs = recorded
            .lines()
            .find(|l| l.starts_with(&format!("{label} = ")))
            .unwrap_or_else(|| panic!("no recorded line for {label}"));
        assert_eq!(ours, theirs);
    }
    // Not in the recording: a private key or a base as long as the prime
    // passes (`crypto_dh_decode_key()` refuses only one longer than the
    // prime). 1 to any power is 1, in the prime's 192 bytes.
    let one = num("one", 192, 0x00, 0x00, 0x01);
    let mut want = vec![0u8; 192];
    want[191] = 1;
    for keys in [(p1536, p1536, g1), (x3, p1536, one)] {
        assert_eq!(
            p.keyctl_dh_compute(keys, 192, None),
            Ok((192, want.clone()))
        );
    }
}

/// add_key(2)'s and KEYCTL_LINK's bounds, each at its edge: the payload
/// length (1 MiB - 1 at most, refused before anything else: the corpus's
/// `efault` section sees EINVAL for 1 MiB with every other argument bad;
/// big_key itself takes up to 1 MiB), the description (`strndup_user()`
/// with `KEY_MAX_DESC_SIZE`, 4096 bytes with the NUL), a link's 4 bytes
/// charged to the keyring's owner (`__key_link_begin()`'s
/// `key_payload_reserve()`: EDQUOT past `maxbytes` for a user), and the
/// cycle check (`keyring_detect_cycle()`): EDEADLK through nested keyrings,
/// ELOOP below the sixth level (the corpus's walks.c `cycle` section: two
/// stacks of five joined end to end), invalidated keyrings not descended
/// into.
#[test]
fn keys_add_key_and_link_bounds_at_their_edges() {
    use watchq_kernel::syscalls::procfs::ProcNode;
    let kernel = Kernel::new(KernelConfig::default());
    let root = kernel.spawn(0, 0);
    let s = root.keyctl_join_session_keyring(None).unwrap();
    assert_eq!(
        root.add_key("big_key", Some("b"), &vec![7; 1 << 20], s),
        Err(Errno::EINVAL)
    );
    root.add_key("big_key", Some("b"), &vec![7; (1 << 20) - 1], s)
        .unwrap();
    let long = "d".repeat(4095);
    root.add_key("user", Some(&long), b"x", s).unwrap();
    assert_eq!(
        root.add_key("user", Some(&format!("{long}d")), b"x", s),
        Err(Errno::EINVAL)
    );

    // Cycles: K1 in the session keyring, K(i) in K(i-1).
    let top = root.add_key("keyring", Some("K1"), b"", s).unwrap();
    assert_eq!(root.keyctl_link(top, top), Err(Errno::EDEADLK));
    let mut r = top;
    for i in 2..=6 {
        r = root
            .add_key("keyring", Some(&format!("K{i}")), b"", r)
            .unwrap();
        assert_eq!(root.keyctl_link(top, r), Err(Errno::EDEADLK), "depth {i}");
    }
    let stack = |name: &str| {
        let first = root
            .add_key("keyring", Some(&format!("{name}1")), b"", s)
            .unwrap();
        let mut last = first;
        for i in 2..=5 {
            last = root
                .add_key("keyring", Some(&format!("{name}{i}")), b"", last)
                .unwrap();
        }
        (first, last)
    };
    let (a1, a5) = stack("A");
    let (b1, b5) = stack("B");
    assert_eq!(root.keyctl_link(a1, b5), Ok(()));
    assert_eq!(root.keyctl_link(b1, a5), Err(Errno::ELOOP));
    // C1 holds C2, which holds C3; C3 also sits in the session keyring.
    // With C2 invalidated, linking C1 into C3 meets no cycle (a revoked
    // keyring would be emptied too, `keyring_revoke()`).
    let c1 = root.add_key("keyring", Some("C1"), b"", s).unwrap();
    let c2 = root.add_key("keyring", Some("C2"), b"", c1).unwrap();
    let c3 = root.add_key("keyring", Some("C3"), b"", c2).unwrap();
    root.keyctl_link(c3, s).unwrap();
    assert_eq!(root.keyctl_link(c1, c3), Err(Errno::EDEADLK));
    root.keyctl_invalidate(c2).unwrap();
    assert_eq!(root.keyctl_link(c1, c3), Ok(()));

    // A user's link fails when its 4 bytes would pass maxbytes.
    let user = kernel.spawn(1000, 1000);
    let us = user.keyctl_join_session_keyring(None).unwrap();
    let r2 = user.add_key("keyring", Some("R2"), b"", us).unwrap();
    let k = user.add_key("user", Some("k"), b"x", r2).unwrap();
    let (_, used) = kernel.keys().quota_of(1000);
    let n = ProcNode::lookup("/proc/sys/kernel/keys/maxbytes").unwrap();
    for (room, want) in [(3, Err(Errno::EDQUOT)), (4, Ok(()))] {
        let text = format!("{}\n", used + room);
        assert_eq!(root.proc_write(n, 0, text.as_bytes()), Ok(text.len()));
        assert_eq!(user.keyctl_link(k, us), want, "room {room}");
    }
    // KEYCTL_UPDATE charges the growth (`key_payload_reserve()`): up to
    // maxbytes exactly, not a byte past it. k costs 3 bytes ("k", its NUL
    // and "x").
    let (_, used) = kernel.keys().quota_of(1000);
    let text = format!("{}\n", used + 5);
    assert_eq!(root.proc_write(n, 0, text.as_bytes()), Ok(text.len()));
    assert_eq!(user.keyctl_update(k, &[b'y'; 7]), Err(Errno::EDQUOT));
    assert_eq!(user.keyctl_update(k, &[b'y'; 6]), Ok(()));
    assert_eq!(kernel.keys().quota_of(1000).1, used + 5);
    // With maxbytes lowered below what the user holds, an update that
    // does not grow the key is not refused (`delta > 0` is checked first).
    let text = format!("{}\n", used);
    assert_eq!(root.proc_write(n, 0, text.as_bytes()), Ok(text.len()));
    assert_eq!(user.keyctl_update(k, &[b'z'; 6]), Ok(()));
    assert_eq!(user.keyctl_update(k, &[b'z'; 2]), Ok(()));
    // key_alloc()'s charge, too, may reach maxbytes exactly: a key the
    // user makes in root's keyring (open to all) costs the user its
    // description, NUL and payload, and root the link.
    let shared = root.add_key("keyring", Some("shared"), b"", s).unwrap();
    root.keyctl_setperm(shared, 0x3f3f_3f3f).unwrap();
    let (_, used) = kernel.keys().quota_of(1000);
    let text = format!("{}\n", used + 5);
    assert_eq!(root.proc_write(n, 0, text.as_bytes()), Ok(text.len()));
    assert_eq!(
        user.add_key("user", Some("q"), b"xyz", shared).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        user.add_key("user", Some("r"), b"x", shared),
        Err(Errno::EDQUOT)
    );
}

/// Asymmetric restrictions find the signer as the corpus's `asym-restrict`
/// section recorded (Linux 6.12.117): `key_or_keyring:<ring>` takes a key
/// the keyring holds a signer of, refuses one it holds none of (ENOKEY)
/// and a key of another type (EOPNOTSUPP); `key_or_keyring:<key>` (no
/// chain) takes what that key signed, not looking in the destination;
/// `builtin_trusted` finds no signer of the test CA's certificates.
#[test]
fn keys_asymmetric_restrictions_find_the_recorded_signers() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(0, 0);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    let ca = p.add_key("keyring", Some("ca"), b"", s).unwrap();
    let rbkr = p.add_key("keyring", Some("rbkr"), b"", s).unwrap();
    p.keyctl_restrict_keyring(
        rbkr,
        Some("asymmetric"),
        Some(&format!("key_or_keyring:{ca}")),
    )
    .unwrap();
    let bt = p.add_key("keyring", Some("bt"), b"", s).unwrap();
    p.keyctl_restrict_keyring(bt, Some("asymmetric"), Some("builtin_trusted"))
        .unwrap();
    p.add_key("asymmetric", None, &cert("ca1"), ca).unwrap();
    assert_eq!(
        p.add_key("asymmetric", None, &cert("ee"), rbkr),
        Err(Errno::ENOKEY)
    );
    assert_eq!(
        p.add_key("asymmetric", None, &cert("ee"), bt),
        Err(Errno::ENOKEY)
    );
    p.add_key("asymmetric", None, &cert("ca2"), ca).unwrap();
    p.add_key("asymmetric", None, &cert("ee"), rbkr).unwrap();
    assert_eq!(
        p.add_key("asymmetric", None, &cert("ee2"), rbkr),
        Err(Errno::ENOKEY)
    );
    assert_eq!(
        p.add_key("user", Some("u"), b"x", rbkr),
        Err(Errno::EOPNOTSUPP)
    );
    // int signed ee2; a keyring restricted by int alone takes ee2, not ee.
    let ee = p.add_key("asymmetric", None, &cert("ee"), s).unwrap();
    let ee2 = p.add_key("asymmetric", None, &cert("ee2"), s).unwrap();
    let int = p.add_key("asymmetric", None, &cert("int"), s).unwrap();
    let rbik = p.add_key("keyring", Some("rbik"), b"", s).unwrap();
    p.keyctl_restrict_keyring(
        rbik,
        Some("asymmetric"),
        Some(&format!("key_or_keyring:{int}")),
    )
    .unwrap();
    assert_eq!(p.keyctl_link(ee2, rbik), Ok(()));
    assert_eq!(p.keyctl_link(ee, rbik), Err(Errno::ENOKEY));
    // With `:chain` the destination is searched too, but only when the
    // given keyring holds no signer: int (signed by ca2, in ca) goes in,
    // and then ee2, signed by int.
    let rbi = p.add_key("keyring", Some("rbi"), b"", s).unwrap();
    p.keyctl_restrict_keyring(
        rbi,
        Some("asymmetric"),
        Some(&format!("key_or_keyring:{ca}:chain")),
    )
    .unwrap();
    assert_eq!(p.keyctl_link(ee2, rbi), Err(Errno::ENOKEY));
    assert_eq!(p.keyctl_link(int, rbi), Ok(()));
    assert_eq!(p.keyctl_link(ee2, rbi), Ok(()));
}

/// What a new key costs its owner (`key_alloc()`'s `quotalen`): its
/// description, a NUL and the payload for most types; 16 bytes for any
/// big_key (`big_key_preparse()`) and 100 for an asymmetric key
/// (`x509_key_preparse()`); and the link into the keyring, 4 bytes to
/// the keyring's owner (the corpus's `quota` section: a user key "a" of
/// 10 bytes costs 16 with its link).
#[test]
fn keys_quota_cost_of_each_type() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(1000, 1000);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    for (t, desc, payload, cost) in [
        ("user", "a", vec![b'x'; 10], 1 + 1 + 10 + 4),
        ("big_key", "bk", vec![b'x'; 100], 2 + 1 + 16 + 4),
        ("asymmetric", "c", cert("ca1"), 1 + 1 + 100 + 4),
    ] {
        let before = kernel.keys().quota_of(1000).1;
        p.add_key(t, Some(desc), &payload, s).unwrap();
        assert_eq!(kernel.keys().quota_of(1000).1, before + cost, "{t}");
    }
}

/// request_key(2)'s search (`search_process_keyrings_rcu()`): a key
/// found in a nested keyring is linked into the destination keyring; a
/// revoked or invalidated keyring is not searched (the corpus's walks.c
/// `search` section: a revoked one); "nothing found" from a later keyring outranks EACCES from an
/// earlier one (`search_cred_keyrings_rcu()`), so the caller sees ENOKEY.
#[test]
fn keys_request_key_search_links_skips_and_ranks() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(0, 0);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    let w = p.add_key("keyring", Some("W"), b"", s).unwrap();
    let u = p.add_key("user", Some("u"), b"x", w).unwrap();
    let dest = p.add_key("keyring", Some("dest"), b"", s).unwrap();
    assert_eq!(p.request_key("user", "u", dest), Ok(u));
    assert!(kernel.keys().info(dest).unwrap().links.contains(&u));
    p.keyctl_unlink(u, dest).unwrap();
    // An invalidated keyring is not searched (a revoked one is emptied).
    p.keyctl_invalidate(w).unwrap();
    assert_eq!(p.request_key("user", "u", 0), Err(Errno::ENOKEY));
    // The process keyring, searched before the session keyring, denies
    // search; the session keyring has no "v".
    let pr = p
        .keyctl_get_keyring_id(watchq_kernel::keys::KEY_SPEC_PROCESS_KEYRING, true)
        .unwrap();
    p.keyctl_setperm(pr, 0x3700_0000).unwrap();
    assert_eq!(p.request_key("user", "v", 0), Err(Errno::ENOKEY));
}

/// add_key(2) of an encrypted key with `load` finds its master key as
/// request_key(2) would (`request_master_key()`) and decrypts the blob
/// with it: the loaded key reads back the same blob.
#[test]
fn keys_add_key_loads_an_encrypted_key_with_its_master_key() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(0, 0);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    let mk = p.add_key("user", Some("mk"), &[0x5a; 32], s).unwrap();
    let e1 = p
        .add_key("encrypted", Some("e1"), b"new user:mk 32", s)
        .unwrap();
    let blob = p.keyctl_read(e1).unwrap();
    let load = [b"load ".as_slice(), &blob].concat();
    let e2 = p.add_key("encrypted", Some("e2"), &load, s).unwrap();
    assert_eq!(p.keyctl_read(e2), Ok(blob));
    // Another master key of that name fails the blob's HMAC check.
    p.keyctl_update(mk, &[0xa5; 32]).unwrap();
    assert_eq!(
        p.add_key("encrypted", Some("e3"), &load, s),
        Err(Errno::EINVAL)
    );
}

/// request_key(2) that finds a key under construction waits for it
/// (`keyctl.c`'s request_key syscall calls `wait_for_key_construction()`
/// on what `request_key_and_link()` found), with no alarm as long as it
/// takes, then gives the key or, if the helper negated or rejected it,
/// that error (`key_read_state()`); the corpus's waits.c `key-wait-stop`
/// section recorded such a request_key returning the key after the wait
/// ended. The helper's own request_key for its key would wait for ever
/// on the kernel (docs/kernel-map.md: the oracle deadlocked); without an
/// alarm watchq answers EDEADLK instead of hanging, with one EINTR as the
/// kernel.
#[test]
fn keys_request_key_waits_for_a_key_under_construction() {
    let k = K::new();
    for (desc, end) in [("made", 0), ("negated", 1), ("rejected", 2)] {
        let helper = k.p.fork();
        let nk = helper
            .key_construct("user", desc, KEY_SPEC_SESSION_KEYRING)
            .unwrap();
        let w = k.p.fork();
        let waiter = std::thread::spawn(move || w.request_key("user", desc, 0));
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!waiter.is_finished(), "{desc}: no wait");
        if end == 0 {
            let h = helper.clone();
            let got = within(10, "the helper's request_key", move || {
                h.request_key("user", desc, 0)
            });
            assert_eq!(got, Err(Errno::EDEADLK), "{desc}");
            helper.set_alarm(Some(std::time::Duration::from_millis(100)));
            let h = helper.clone();
            let got = within(10, "the helper's request_key", move || {
                h.request_key("user", desc, 0)
            });
            assert_eq!(got, Err(Errno::EINTR), "{desc}");
            helper.set_alarm(None);
        }
        let want = match end {
            0 => {
                helper.keyctl_instantiate(nk, b"v", 0).unwrap();
                Ok(nk)
            }
            1 => {
                helper.keyctl_negate(nk, 60, 0).unwrap();
                Err(Errno::ENOKEY)
            }
            _ => {
                let e = Errno::EKEYREJECTED;
                helper.keyctl_reject(nk, 60, e.as_raw(), 0).unwrap();
                Err(e)
            }
        };
        let got = within(10, "the waiter", move || waiter.join().unwrap());
        assert_eq!(got, want, "{desc}");
    }
}

/// A negative key outranks "nothing found" in a later keyring
/// (`search_cred_keyrings_rcu()` keeps a negative key's ENOKEY over a
/// later keyring's EAGAIN), and request_key(2) constructs only on
/// "nothing found" (`request_key_and_link()` calls
/// `construct_key_and_link()` for EAGAIN alone): a key negated in the
/// process keyring, with nothing of its description in the session
/// keyring searched after it, fails a request with call-out information
/// with ENOKEY, as the corpus's keys.c `construct` section recorded for a
/// second request of a negated key.
#[test]
fn keys_request_key_of_a_negated_key_constructs_nothing() {
    use watchq_kernel::keys::KEY_SPEC_PROCESS_KEYRING;
    let k = K::new();
    let nk =
        k.p.key_construct("user", "neg", KEY_SPEC_PROCESS_KEYRING)
            .unwrap();
    k.p.keyctl_negate(nk, 60, 0).unwrap();
    assert_eq!(
        k.p.request_key_with("user", "neg", Some(b"info"), 0),
        Err(Errno::ENOKEY)
    );
    assert_eq!(k.p.request_key("user", "neg", 0), Err(Errno::ENOKEY));
}

/// `n` keyrings made in `s`, each granting its owner everything
/// (0x3f3f0000) so that no later step depends on possession (which ends
/// six levels down), for the caller to fill before [`nest`].
fn flat_keyrings(p: &Process, s: Serial, name: &str, n: usize) -> Vec<Serial> {
    (0..n)
        .map(|i| {
            let r = p
                .add_key("keyring", Some(&format!("{name}{i}")), b"", s)
                .unwrap();
            p.keyctl_setperm(r, 0x3f3f_0000).unwrap();
            r
        })
        .collect()
}

/// Moves each of `rings` but the first from `s` into the one before it:
/// `rings[i]` ends `i` levels below `rings[0]`.
fn nest(p: &Process, s: Serial, rings: &[Serial]) {
    for w in rings.windows(2) {
        p.keyctl_link(w[1], w[0]).unwrap();
        p.keyctl_unlink(w[1], s).unwrap();
    }
}

/// KEYCTL_SEARCH descends `KEYRING_SEARCH_MAX_DEPTH` (6) levels below the
/// keyring it starts from and no deeper: `search_nested_keyrings()` looks
/// at a nested keyring only while its stack holds fewer than six
/// keyrings, and gives the whole keyring up when it is full (`goto
/// not_this_keyring`, without `KEYRING_SEARCH_DETECT_TOO_DEEP`), so a key
/// six levels down is found and one seven levels down is not.
#[test]
fn keys_search_reaches_six_levels_below_its_keyring() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(0, 0);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    let rings = flat_keyrings(&p, s, "L", 8);
    let mut keys = Vec::new();
    for (i, &r) in rings.iter().enumerate() {
        let k = p.add_key("user", Some(&format!("at{i}")), b"v", r).unwrap();
        p.keyctl_setperm(k, 0x3f3f_0000).unwrap();
        keys.push(k);
    }
    nest(&p, s, &rings);
    for (i, &k) in keys.iter().enumerate() {
        let want = if i <= 6 { Ok(k) } else { Err(Errno::ENOKEY) };
        assert_eq!(
            p.keyctl_search(rings[0], "user", &format!("at{i}"), 0),
            want,
            "{i} levels down"
        );
    }
}

/// `find_asymmetric_key()` looks for a signer with `keyring_search(...,
/// recurse = true)`: in the restriction's keyring and the keyrings nested
/// in it, down to six levels below it (`KEYRING_SEARCH_MAX_DEPTH`), not
/// into an invalidated one (`search_nested_keyrings()`'s
/// `descend_to_keyring` check). ca2 signed ee (the corpus's
/// `asym-restrict` section); a keyring restricted by `key_or_keyring:`
/// a keyring holding ca2 that deep takes ee, and ENOKEY otherwise.
#[test]
fn keys_asymmetric_restriction_searches_nested_keyrings() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(0, 0);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    for (name, depth, invalidate, want) in [
        ("one", 1, false, Ok(())),
        ("six", 6, false, Ok(())),
        ("seven", 7, false, Err(Errno::ENOKEY)),
        ("dead", 1, true, Err(Errno::ENOKEY)),
    ] {
        let rings = flat_keyrings(&p, s, name, depth + 1);
        p.add_key("asymmetric", None, &cert("ca2"), rings[depth])
            .unwrap();
        nest(&p, s, &rings);
        if invalidate {
            p.keyctl_invalidate(rings[depth]).unwrap();
        }
        let r = p
            .add_key("keyring", Some(&format!("r-{name}")), b"", s)
            .unwrap();
        let how = format!("key_or_keyring:{}", rings[0]);
        p.keyctl_restrict_keyring(r, Some("asymmetric"), Some(&how))
            .unwrap();
        assert_eq!(
            p.add_key("asymmetric", None, &cert("ee"), r).map(|_| ()),
            want,
            "{name}"
        );
    }
}

/// add_key(2) charges an encrypted key what `encrypted_key_alloc()`
/// reserves (`key_payload_reserve()` of its payload's length, which
/// /proc/keys shows: 135 for a `default user:wqmk 32` key in the corpus's
/// enc.c section) after `key_alloc()` charged the description and its NUL
/// alone (the type has no preparse: `quotalen` is its `def_datalen`, 0),
/// never the add_key payload. A `load` of such a key's blob, 188 bytes of
/// payload, fits a user's `maxbytes` left 3 + 135 bytes for key "e9" and
/// 4 for its link, and not one byte less.
#[test]
fn keys_encrypted_key_is_charged_its_payload_not_the_add_key_text() {
    use watchq_kernel::syscalls::procfs::ProcNode;
    let kernel = Kernel::new(KernelConfig::default());
    let root = kernel.spawn(0, 0);
    let p = kernel.spawn(1000, 1000);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    p.add_key("user", Some("wqmk"), b"0123456789abcdef0123456789abcdef", s)
        .unwrap();
    let e1 = p
        .add_key("encrypted", Some("e1"), b"new user:wqmk 32", s)
        .unwrap();
    let load = [b"load ".as_slice(), &p.keyctl_read(e1).unwrap()].concat();
    assert_eq!(load.len(), 188);
    let n = ProcNode::lookup("/proc/sys/kernel/keys/maxbytes").unwrap();
    let (_, used) = kernel.keys().quota_of(1000);
    for (room, want) in [(141, Err(Errno::EDQUOT)), (142, Ok(()))] {
        let text = format!("{}\n", used + room);
        assert_eq!(root.proc_write(n, 0, text.as_bytes()), Ok(text.len()));
        assert_eq!(
            p.add_key("encrypted", Some("e9"), &load, s).map(|_| ()),
            want,
            "room {room}"
        );
    }
    assert_eq!(kernel.keys().quota_of(1000).1, used + 142);
}

/// The end of a construction, as the requestor's request_key(2) with
/// call-out information sees it (`call_sbin_request_key()`'s end and
/// `complete_request_key()`), in the order the corpus's keys.c
/// `construct` section recorded them: the key the helper instantiated;
/// EKEYREJECTED for one it rejected so; ENOKEY for one it left
/// uninstantiated, which is negated (`key_negate_and_link()` for
/// `key_negative_timeout`), so a later request for it fails with ENOKEY
/// too and starts no construction.
///
/// The authority to instantiate is the helper's: the authorisation key
/// sits in its session keyring (`_req.KEY`), which
/// `key_get_instantiation_authkey()` searches, so the requestor's
/// KEYCTL_ASSUME_AUTHORITY finds none (ENOKEY). `keyctl_assume_authority()`
/// refuses a negative id (EINVAL: no special ids) and gives the authority
/// up for 0 (then KEYCTL_INSTANTIATE is EPERM).
#[test]
fn keys_construction_ends_as_the_helper_left_the_key() {
    use watchq_sources::keys::{Anchors, Requested};
    let d = Direct::new();
    let store = d.kernel.keys();
    let mut req = Anchors::default();
    let session = store
        .join_session_keyring(&mut d.ctx(&mut req), None)
        .unwrap();
    req.session = Some(session);
    let request = |req: &mut Anchors, desc: &str| match store
        .request_key(&mut d.ctx(req), "user", desc, Some(b"info"), 0)
        .unwrap()
    {
        Requested::Construct(call) => call,
        other => panic!("request_key {desc}: {other:?}"),
    };
    let helper_of = |call: &watchq_sources::keys::CallOut| Anchors {
        session: Some(call.helper_session),
        ..Anchors::default()
    };

    let call = request(&mut req, "made");
    assert_eq!(
        store.assume_authority(&mut d.ctx(&mut req), call.key),
        Err(Errno::ENOKEY)
    );
    let mut h = helper_of(&call);
    for bad in [-1, -7] {
        assert_eq!(
            store.assume_authority(&mut d.ctx(&mut h), bad),
            Err(Errno::EINVAL),
            "id {bad}"
        );
    }
    assert!(store.assume_authority(&mut d.ctx(&mut h), call.key).is_ok());
    assert_eq!(store.assume_authority(&mut d.ctx(&mut h), 0), Ok(0));
    assert_eq!(
        store.instantiate(&mut d.ctx(&mut h), call.key, b"v", 0),
        Err(Errno::EPERM)
    );
    assert!(store.assume_authority(&mut d.ctx(&mut h), call.key).is_ok());
    store
        .instantiate(&mut d.ctx(&mut h), call.key, b"v", 0)
        .unwrap();
    assert_eq!(
        store.construction_ended(&mut d.ctx(&mut req), &call),
        Ok(call.key)
    );

    let call = request(&mut req, "rejected");
    let mut h = helper_of(&call);
    assert!(store.assume_authority(&mut d.ctx(&mut h), call.key).is_ok());
    let e = Errno::EKEYREJECTED;
    store
        .reject(&mut d.ctx(&mut h), call.key, 60, e.as_raw(), 0)
        .unwrap();
    assert_eq!(
        store.construction_ended(&mut d.ctx(&mut req), &call),
        Err(e)
    );

    let call = request(&mut req, "left");
    assert_eq!(
        store.construction_ended(&mut d.ctx(&mut req), &call),
        Err(Errno::ENOKEY)
    );
    assert_eq!(
        store.request_key(&mut d.ctx(&mut req), "user", "left", Some(b"info"), 0),
        Err(Errno::ENOKEY)
    );
}

/// What request_key(2) prepares for `/sbin/request-key`
/// (`construct_alloc_key()`, `construct_get_dest_keyring()`,
/// `call_sbin_request_key()`): the key goes into the default keyring,
/// here the session keyring, which must grant the possessor write
/// (`key_permission(..., KEY_NEED_WRITE)` on a keyring the kernel chose:
/// EACCES); the helper's session keyring is `_req.KEY`, the requestor's,
/// with `KEY_POS_ALL | KEY_USR_VIEW | KEY_USR_READ` (3f030000).
#[test]
fn keys_request_key_prepares_the_helpers_session_keyring() {
    use watchq_sources::keys::Requested;
    let k = K::new();
    let call = match k.p.request_key_with("user", "c", Some(b"info"), 0) {
        Ok(Requested::Construct(call)) => call,
        other => panic!("request_key: {other:?}"),
    };
    assert_eq!(k.contents(k.s), vec![call.key]);
    assert_eq!(
        k.p.keyctl_describe(call.helper_session),
        Ok(format!("keyring;0;0;3f030000;_req.{}", call.key))
    );
    // Everything but write, for the possessor and the owner.
    k.p.keyctl_setperm(k.s, 0x3b3b_0000).unwrap();
    assert_eq!(
        k.p.request_key_with("user", "d", Some(b"info"), 0),
        Err(Errno::EACCES)
    );
}

/// KEYCTL_REVOKE runs the type's revoke method, which may give back
/// what the key's payload was charged: the `user` type's reserves 0
/// bytes (`user_revoke()`), leaving its description and NUL charged; a
/// keyring's (`keyring_revoke()`) clears it and reserves 0 bytes, so its
/// links' 4 bytes each come back, those of links the collector took
/// since included (they stay charged until then: the corpus's procfs.c
/// `gc-link-bytes` section), and a key whose last link that was goes to
/// the collector (the corpus's keys.c `revoke-ring` section: k4, linked
/// only there, is removed; k5, linked from the session keyring too,
/// lives on). The asymmetric and encrypted types have no revoke method
/// (`key_type_asymmetric`, `key_type_encrypted`): their charge stays.
#[test]
fn keys_revoke_gives_back_the_payloads_charge() {
    let k = K::on(Kernel::new(KernelConfig::default()), 1000);
    let (p, s, fd) = (&k.p, k.s, k.fd);
    let used = |k: &K| k.kernel.keys().quota_of(1000).1;

    let u = p.add_key("user", Some("u"), b"0123456789", s).unwrap();
    let before = used(&k);
    p.keyctl_revoke(u).unwrap();
    assert_eq!(used(&k), before - 10);

    let r = p.add_key("keyring", Some("R"), b"", s).unwrap();
    let k4 = p.add_key("user", Some("k4"), b"v", r).unwrap();
    let k5 = p.add_key("user", Some("k5"), b"v", r).unwrap();
    p.keyctl_link(k5, s).unwrap();
    p.keyctl_watch_key(k4, fd, 2).unwrap();
    p.keyctl_watch_key(k5, fd, 3).unwrap();
    let before = used(&k);
    p.keyctl_revoke(r).unwrap();
    assert_eq!(used(&k), before - 8);
    assert_eq!(bytes(&k.drain_all()), bytes(&[removal(k4, 2)]));
    assert!(p.keyctl_describe(k5).is_ok());

    let r2 = p.add_key("keyring", Some("R2"), b"", s).unwrap();
    let gone = p.add_key("user", Some("g"), b"v", r2).unwrap();
    p.keyctl_invalidate(gone).unwrap();
    k.drain_all();
    assert!(k.contents(r2).is_empty());
    let before = used(&k);
    p.keyctl_revoke(r2).unwrap();
    assert_eq!(used(&k), before - 4);

    p.add_key("user", Some("wqmk"), b"0123456789abcdef0123456789abcdef", s)
        .unwrap();
    let e = p
        .add_key("encrypted", Some("e"), b"new user:wqmk 32", s)
        .unwrap();
    let a = p.add_key("asymmetric", None, &cert("ca1"), s).unwrap();
    for (name, key) in [("encrypted", e), ("asymmetric", a)] {
        let before = used(&k);
        p.keyctl_revoke(key).unwrap();
        assert_eq!(used(&k), before, "{name}");
    }
}

/// A session keyring that KEYCTL_JOIN_SESSION_KEYRING replaces loses the
/// process's reference (`install_session_keyring_to_cred()`, the old
/// credentials put); an anonymous one nothing else holds is then
/// destroyed by the collector, and its watchers get the removal
/// (`key_gc_unused_keys()`'s `remove_watch_list()`).
#[test]
fn keys_replaced_session_keyring_is_collected() {
    let k = K::new();
    k.p.keyctl_watch_key(k.s, k.fd, 9).unwrap();
    let s2 = k.p.keyctl_join_session_keyring(None).unwrap();
    assert_ne!(s2, k.s);
    assert_eq!(bytes(&k.drain_all()), bytes(&[removal(k.s, 9)]));
}

/// KEYCTL_REVOKE schedules the collector for the revocation time plus
/// `gc_delay` (`key_revoke()`'s `key_schedule_gc()`): with a delay of 0
/// the revoked key is removed at once, its watcher seeing REVOKED and
/// then the removal.
#[test]
fn keys_revoked_key_goes_at_once_without_a_gc_delay() {
    let kernel = Kernel::new(KernelConfig {
        keys: watchq_kernel::keys::KeyConfig {
            gc_delay: 0,
            ..Default::default()
        },
        ..Default::default()
    });
    let k = K::on(kernel, 0);
    let (s, fd) = (k.s, k.fd);
    let u = k.p.add_key("user", Some("u"), b"v", s).unwrap();
    k.p.keyctl_watch_key(u, fd, 4).unwrap();
    k.p.keyctl_revoke(u).unwrap();
    assert_eq!(
        bytes(&k.drain_all()),
        bytes(&[key(NOTIFY_KEY_REVOKED, u, 0, 4), removal(u, 4)])
    );
}

/// KEYCTL_CHOWN looks its key up as `keyctl_chown_key()` does, with
/// `KEY_LOOKUP_CREATE | KEY_LOOKUP_PARTIAL` (a negative key and a
/// process keyring not made yet are found); without CAP_SYS_ADMIN it
/// takes a group the key already has or one the caller is in
/// (`gid_eq(gid, key->gid) || in_group_p(gid)`), and no other (EACCES).
#[test]
fn keys_chown_group_rules_and_lookup() {
    use watchq_kernel::keys::KEY_SPEC_PROCESS_KEYRING;
    let kernel = Kernel::new(KernelConfig::default());
    let root = kernel.spawn(0, 0);
    let user = kernel.spawn(1000, 1000);
    let s = user.keyctl_join_session_keyring(None).unwrap();
    let k = user.add_key("user", Some("k"), b"v", s).unwrap();
    // Others may set its attributes, so that root may give it a group.
    user.keyctl_setperm(k, 0x3f01_0020).unwrap();
    root.keyctl_chown(k, u32::MAX, 1234).unwrap();
    assert_eq!(user.keyctl_chown(k, u32::MAX, 1234), Ok(()));
    assert_eq!(user.keyctl_chown(k, u32::MAX, 5555), Err(Errno::EACCES));
    assert_eq!(user.keyctl_chown(k, u32::MAX, 1000), Ok(()));
    assert_eq!(user.keyctl_chown(k, u32::MAX, 1234), Err(Errno::EACCES));

    let n = user
        .key_construct("user", "neg", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    user.keyctl_negate(n, 60, 0).unwrap();
    assert_eq!(user.keyctl_chown(n, u32::MAX, 1000), Ok(()));
    assert_eq!(
        root.keyctl_chown(KEY_SPEC_PROCESS_KEYRING, u32::MAX, 7),
        Ok(())
    );
    let pk = root
        .keyctl_get_keyring_id(KEY_SPEC_PROCESS_KEYRING, false)
        .unwrap();
    assert!(root
        .keyctl_describe(pk)
        .unwrap()
        .starts_with("keyring;0;7;"));
}

/// KEYCTL_CHOWN to another uid moves the key's charge
/// (`keyctl_chown_key()`: the new owner's `qnkeys` and `qnbytes` take the
/// key and its `quotalen`, checked against its quota, and the old
/// owner's give them back).
#[test]
fn keys_chown_moves_the_charge_to_the_new_owner() {
    let kernel = Kernel::new(KernelConfig::default());
    let root = kernel.spawn(0, 0);
    let s = root.keyctl_join_session_keyring(None).unwrap();
    let k = root.add_key("user", Some("q"), b"0123456789", s).unwrap();
    let (keys, bytes) = kernel.keys().quota_of(0);
    assert_eq!(kernel.keys().quota_of(2000), (0, 0));
    root.keyctl_chown(k, 2000, u32::MAX).unwrap();
    assert_eq!(kernel.keys().quota_of(2000), (1, 1 + 1 + 10));
    assert_eq!(kernel.keys().quota_of(0), (keys - 1, bytes - 12));
}

/// KEYCTL_SETPERM looks its key up as `keyctl_setperm_key()` does, with
/// `KEY_LOOKUP_CREATE | KEY_LOOKUP_PARTIAL`: a negative key's permissions
/// are set, and a process keyring not made yet is made.
#[test]
fn keys_setperm_finds_negative_keys_and_makes_keyrings() {
    use watchq_kernel::keys::KEY_SPEC_PROCESS_KEYRING;
    let k = K::new();
    let n =
        k.p.key_construct("user", "neg", KEY_SPEC_SESSION_KEYRING)
            .unwrap();
    k.p.keyctl_negate(n, 60, 0).unwrap();
    assert_eq!(k.p.keyctl_setperm(n, 0x3f3f_0000), Ok(()));
    assert_eq!(
        k.p.keyctl_setperm(KEY_SPEC_PROCESS_KEYRING, 0x3f3f_0000),
        Ok(())
    );
    let pk =
        k.p.keyctl_get_keyring_id(KEY_SPEC_PROCESS_KEYRING, false)
            .unwrap();
    assert!(k.p.keyctl_describe(pk).unwrap().contains(";3f3f0000;"));
}

/// An encrypted key's read method (`encrypted_read()`) makes its blob
/// only for a buffer that holds it, a buffer of exactly its length
/// included, and otherwise returns the length without looking for the
/// master key: the corpus's enc.c section recorded 185 for a key whose
/// master key does not exist read with no buffer, and ENOKEY with one.
#[test]
fn keys_encrypted_read_needs_a_buffer_that_holds_the_blob() {
    let k = K::new();
    let p = &k.p;
    p.add_key(
        "user",
        Some("wqmk"),
        b"0123456789abcdef0123456789abcdef",
        k.s,
    )
    .unwrap();
    let e1 = p
        .add_key("encrypted", Some("e1"), b"new user:wqmk 32", k.s)
        .unwrap();
    let blob = p.keyctl_read(e1).unwrap();
    assert_eq!(blob.len(), 183);
    assert_eq!(p.keyctl_read_into(e1, 183), Ok(blob));
    let e2 = p
        .add_key("encrypted", Some("e2"), b"new user:nosuch 20", k.s)
        .unwrap();
    assert_eq!(p.keyctl_read_into(e2, 0).map(|v| v.len()), Ok(185));
    assert_eq!(p.keyctl_read_into(e2, 8191), Err(Errno::ENOKEY));
}

/// KEYCTL_INSTANTIATE needs the authority for that very key
/// (`keyctl_instantiate_key_common()`: EPERM unless the caller's
/// `request_key_auth` names it as its target): a helper constructing
/// one key may not instantiate another one under construction.
#[test]
fn keys_instantiate_needs_the_authority_for_that_key() {
    let k = K::new();
    let a = k.p.fork();
    let b = k.p.fork();
    let ka = a
        .key_construct("user", "a", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    let kb = b
        .key_construct("user", "b", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    assert_eq!(a.keyctl_instantiate(kb, b"x", 0), Err(Errno::EPERM));
    assert_eq!(a.keyctl_reject(kb, 1, 126, 0), Err(Errno::EPERM));
    a.keyctl_instantiate(ka, b"x", 0).unwrap();
    b.keyctl_instantiate(kb, b"y", 0).unwrap();
}

/// KEYCTL_INSTANTIATE's bounds and destination (`keyctl_instantiate_key()`
/// refuses a payload over `1024 * 1024 - 1` bytes, EINVAL; the key is
/// linked into the keyring given, `__key_link_begin()` refusing a key
/// that is not a keyring with ENOTDIR): a big_key of 1 MiB less a byte
/// is instantiated and linked into the keyring named, LINKED posted on
/// it.
#[test]
fn keys_instantiate_bounds_and_destination() {
    let k = K::new();
    let r = k.p.add_key("keyring", Some("R"), b"", k.s).unwrap();
    let u = k.p.add_key("user", Some("u"), b"v", k.s).unwrap();
    k.p.keyctl_watch_key(r, k.fd, 3).unwrap();
    let helper = k.p.fork();
    let nk = helper
        .key_construct("big_key", "big", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    k.drain();
    assert_eq!(
        helper.keyctl_instantiate(nk, &vec![7; 1 << 20], r),
        Err(Errno::EINVAL)
    );
    assert_eq!(helper.keyctl_instantiate(nk, b"x", u), Err(Errno::ENOTDIR));
    helper
        .keyctl_instantiate(nk, &vec![7; (1 << 20) - 1], r)
        .unwrap();
    expect(&k, &[key(NOTIFY_KEY_LINKED, r, nk as u32, 3)]);
    assert_eq!(k.contents(r), vec![nk]);
}

/// KEYCTL_SET_TIMEOUT looks its key up as `keyctl_set_timeout()` does,
/// with `KEY_LOOKUP_CREATE | KEY_LOOKUP_PARTIAL`: a negative key's
/// timeout is set, and a process keyring not made yet is made.
#[test]
fn keys_set_timeout_finds_negative_keys_and_makes_keyrings() {
    use watchq_kernel::keys::KEY_SPEC_PROCESS_KEYRING;
    let k = K::new();
    let n =
        k.p.key_construct("user", "neg", KEY_SPEC_SESSION_KEYRING)
            .unwrap();
    k.p.keyctl_negate(n, 60, 0).unwrap();
    assert_eq!(k.p.keyctl_set_timeout(n, 100), Ok(()));
    assert_eq!(
        k.p.keyctl_set_timeout(KEY_SPEC_PROCESS_KEYRING, 100),
        Ok(())
    );
    assert!(k
        .p
        .keyctl_get_keyring_id(KEY_SPEC_PROCESS_KEYRING, false)
        .is_ok());
}

/// KEYCTL_MOVE looks its key up with `KEY_LOOKUP_CREATE |
/// KEY_LOOKUP_PARTIAL` (`keyctl_keyring_move()`: a negative key moves),
/// and `key_move()` refuses it when either end is not a keyring
/// (ENOTDIR).
#[test]
fn keys_move_takes_negative_keys_and_needs_two_keyrings() {
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let b = p.add_key("keyring", Some("B"), b"", s).unwrap();
    let u = p.add_key("user", Some("u"), b"v", s).unwrap();
    let x = p.add_key("user", Some("x"), b"v", s).unwrap();
    assert_eq!(p.keyctl_move(x, u, b, 0), Err(Errno::ENOTDIR));
    assert_eq!(p.keyctl_move(x, s, u, 0), Err(Errno::ENOTDIR));
    let n = p
        .key_construct("user", "neg", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    p.keyctl_negate(n, 60, 0).unwrap();
    assert_eq!(p.keyctl_move(n, s, b, 0), Ok(()));
    assert_eq!(k.contents(b), vec![n]);
}

/// KEYCTL_SET_REQKEY_KEYRING returns the setting it replaces, as the
/// corpus's types.c `reqkey` section recorded (1 after 0, then 2 after
/// 1), and for the thread and process keyring values makes that keyring
/// (`install_thread_keyring_to_cred()`, `install_process_keyring_to_cred()`).
#[test]
fn keys_set_reqkey_keyring_makes_the_keyring_it_names() {
    use watchq_kernel::keys::{KEY_SPEC_PROCESS_KEYRING, KEY_SPEC_THREAD_KEYRING};
    let k = K::new();
    let p = &k.p;
    assert_eq!(p.keyctl_set_reqkey_keyring(0), Ok(0));
    assert_eq!(p.keyctl_set_reqkey_keyring(1), Ok(0));
    assert!(p
        .keyctl_get_keyring_id(KEY_SPEC_THREAD_KEYRING, false)
        .is_ok());
    assert_eq!(
        p.keyctl_get_keyring_id(KEY_SPEC_PROCESS_KEYRING, false),
        Err(Errno::ENOKEY)
    );
    assert_eq!(p.keyctl_set_reqkey_keyring(2), Ok(1));
    assert!(p
        .keyctl_get_keyring_id(KEY_SPEC_PROCESS_KEYRING, false)
        .is_ok());
    assert_eq!(p.keyctl_set_reqkey_keyring(-1), Ok(2));
}

/// KEYCTL_GET_SECURITY gives the key's security label as the LSM reports
/// it (`security_key_getsecurity()`); without one (no LSM, as on the
/// oracle's kernel) the empty string, the NUL alone.
#[test]
fn keys_get_security_gives_the_keys_label() {
    let k = K::new();
    let u = k.p.add_key("user", Some("u"), b"v", k.s).unwrap();
    assert_eq!(k.p.keyctl_get_security(u), Ok(String::new()));
    k.kernel
        .keys()
        .set_label(u, Some("system_u:object_r:key_t".into()))
        .unwrap();
    assert_eq!(
        k.p.keyctl_get_security(u),
        Ok("system_u:object_r:key_t".to_string())
    );
}

/// KEYCTL_CAPABILITIES: ff 07 on the oracle's kernel (the corpus's
/// types.c and surface.c `caps` sections), every bit of the first byte
/// and, with key notifications, 0x04 of the second; without them 0x03.
#[test]
fn keys_capabilities_are_the_recorded_bytes() {
    let k = K::new();
    assert_eq!(k.p.keyctl_capabilities(), [0xff, 0x07]);
    let kernel = Kernel::new(KernelConfig {
        keys: watchq_kernel::keys::KeyConfig {
            notifications: false,
            ..Default::default()
        },
        ..Default::default()
    });
    assert_eq!(kernel.spawn(0, 0).keyctl_capabilities(), [0xff, 0x03]);
}

/// enc.c's master keys (tests/conformance/probes/enc.c `MK`, `MK2`).
const ENC_MK: &[u8] = b"0123456789abcdef0123456789abcdef";
const ENC_MK2: &[u8] = b"a second master key, 38 bytes long....";

/// An encrypted key's blob as the oracle kernel made or judged it: the C
/// string `NAME` of tests/conformance/probes/enc-blobs.h (`kernel_blob`,
/// `watchq_blob`), or, for `rekeyed:N`, the N-th `blob:` line of
/// tests/data/conformance/enc.txt (the kernel's read after re-keying it).
fn enc_blob(name: &str) -> Vec<u8> {
    let dir = env!("CARGO_MANIFEST_DIR");
    if let Some(n) = name.strip_prefix("rekeyed:") {
        let t = std::fs::read_to_string(format!("{dir}/data/conformance/enc.txt")).unwrap();
        let n: usize = n.parse().unwrap();
        let line = t.lines().filter_map(|l| l.strip_prefix("blob: ")).nth(n);
        return line.unwrap().as_bytes().to_vec();
    }
    let h = std::fs::read_to_string(format!("{dir}/conformance/probes/enc-blobs.h")).unwrap();
    let at = h.find(&format!("{name}[] =")).unwrap();
    let body = &h[at..];
    let body = &body[body.find('"').unwrap() + 1..];
    body.as_bytes()[..body.find('"').unwrap()].to_vec()
}

/// The encrypted key's lengths as the oracle kernel gives them
/// (tests/data/conformance/enc.txt, section `enc`): KEYCTL_READ's length
/// with no buffer (`encrypted_read()`: FORMAT MASTER DATALEN and the hex
/// of the IV, a zero byte, the secret rounded up to whole AES blocks and
/// the HMAC, 2 digits a byte), the blob's first words, and the /proc/keys
/// column (`payload_totallen`: the signed data, the secret or, for
/// `ecryptfs`, its 740-byte authentication token, the HMAC and a NUL).
/// An `ecryptfs` key's description is 16 hex digits, either case.
#[test]
fn keys_encrypted_lengths_as_recorded() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(0, 0);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    p.add_key("user", Some("wqmk"), ENC_MK, s).unwrap();
    p.add_key("user", Some("wqmk2"), ENC_MK2, s).unwrap();
    let proc_keys = |k: Serial| proc_keys_column(&p, k);
    // The read with a buffer: its length and first three words.
    let read = |k: Serial| -> (usize, String) {
        let b = p.keyctl_read_into(k, 8191).unwrap();
        let words: Vec<&[u8]> = b.splitn(4, |&c| c == b' ').take(3).collect();
        (b.len(), String::from_utf8(words.join(&b' ')).unwrap())
    };
    let add = |desc: &str, data: &str| p.add_key("encrypted", Some(desc), data.as_bytes(), s);

    let e1 = add("e1", "new user:wqmk 32").unwrap();
    assert_eq!(proc_keys(e1), "e1: 135");
    assert_eq!(p.keyctl_read_into(e1, 0).map(|b| b.len()), Ok(183));
    assert_eq!(p.keyctl_read_into(e1, 10).map(|b| b.len()), Ok(183));
    assert_eq!(read(e1), (183, "default user:wqmk 32".to_string()));
    // A 20-byte secret is encrypted as 32.
    let e2 = add("e2", "new user:nosuch 20").unwrap();
    assert_eq!(p.keyctl_read_into(e2, 0).map(|b| b.len()), Ok(185));
    assert_eq!(p.keyctl_read_into(e2, 8191), Err(Errno::ENOKEY));
    let e5 = add("e5", "new trusted:tk 4096").unwrap();
    assert_eq!(p.keyctl_read_into(e5, 0).map(|b| b.len()), Ok(8314));
    assert_eq!(p.keyctl_read_into(e5, 8191).map(|b| b.len()), Ok(8314));
    let e3 = add("e3", "new enc32 user:wqmk 32").unwrap();
    assert_eq!(read(e3), (181, "enc32 user:wqmk 32".to_string()));
    let ef = add("0123456789abcdef", "new ecryptfs user:wqmk 64").unwrap();
    assert_eq!(proc_keys(ef), "0123456789abcdef: 876");
    let blob = p.keyctl_read_into(ef, 8191).unwrap();
    assert_eq!(read(ef), (248, "ecryptfs user:wqmk 64".to_string()));
    let load = [b"load ".as_slice(), &blob].concat();
    let ef2 = p
        .add_key("encrypted", Some("fedcba9876543210"), &load, s)
        .unwrap();
    assert_eq!(proc_keys(ef2), "fedcba9876543210: 876");
    assert_eq!(
        p.add_key("encrypted", Some("not-hex-16-chars"), &load, s),
        Err(Errno::EINVAL)
    );
    for (desc, data) in [
        ("0123456789abcde", "new ecryptfs user:wqmk 64"),
        ("0123456789abcdeg", "new ecryptfs user:wqmk 64"),
        ("0123456789ABCDEF", "new ecryptfs user:wqmk 32"),
    ] {
        assert_eq!(add(desc, data), Err(Errno::EINVAL), "{desc} {data}");
    }
    assert!(add("0123456789ABCDEF", "new ecryptfs trusted:tk 64").is_ok());
    // The length is kept as written.
    let e6 = add("e6", "new default user:wqmk 020").unwrap();
    assert_eq!(read(e6), (184, "default user:wqmk 020".to_string()));
    assert!(add("bad", "new\tuser:wqmk\t21").is_ok());
    assert!(p
        .add_key("encrypted", Some("b1"), b"new user:wqmk 32\0x", s)
        .is_ok());

    // Re-keyed: the new master key's name is in the blob and the charge.
    p.keyctl_update(e1, b"update user:wqmk2").unwrap();
    assert_eq!(proc_keys(e1), "e1: 136");
    assert_eq!(read(e1), (184, "default user:wqmk2 32".to_string()));
    assert_eq!(
        p.keyctl_update(e1, b"update trusted:tk"),
        Err(Errno::EINVAL)
    );
    p.keyctl_update(e3, b"update enc32 user:wqmk2").unwrap();
    assert_eq!(read(e3), (182, "enc32 user:wqmk2 32".to_string()));
    assert_eq!(p.keyctl_update(e5, b"update user:wqmk"), Err(Errno::EINVAL));
    p.keyctl_update(e5, b"update trusted:tk2").unwrap();
}

/// Blobs the oracle kernel judged (tests/data/conformance/enc.txt,
/// section `enc-blobs`): one it made and one watchq made, each loads with
/// the master key user:wqmk, reads back as loaded, and re-keyed to
/// user:wqmk2 (the IV and secret kept) reads as the kernel's blob: the
/// key derivation, AES-256-CBC and HMAC-SHA256 match the kernel's byte
/// for byte.
#[test]
fn keys_encrypted_blobs_load_and_rekey_as_the_kernel_does() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(0, 0);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    p.add_key("user", Some("wqmk"), ENC_MK, s).unwrap();
    p.add_key("user", Some("wqmk2"), ENC_MK2, s).unwrap();
    for (i, name) in ["kernel_blob", "watchq_blob"].into_iter().enumerate() {
        let blob = enc_blob(name);
        assert_eq!(blob.len(), 215, "{name}");
        let load = [b"load ".as_slice(), &blob].concat();
        let k = p.add_key("encrypted", Some("blob"), &load, s).unwrap();
        assert_eq!(p.keyctl_read(k), Ok(blob), "{name}");
        p.keyctl_update(k, b"update user:wqmk2").unwrap();
        let rekeyed = enc_blob(&format!("rekeyed:{i}"));
        assert_eq!(rekeyed.len(), 216, "{name}");
        assert_eq!(p.keyctl_read(k), Ok(rekeyed), "{name}");
        p.keyctl_unlink(k, s).unwrap();
    }
}

/// add_key(2) of each certificate of asym-certs.h as the oracle kernel
/// parsed it (tests/data/conformance/asym.txt, section `asym-parse`,
/// `x509_key_preparse()`): the description it proposes (the name
/// `x509_fabricate_name()` makes of the subject's O, CN and mail, `: `,
/// the SKID or else the serial number in hex), the /proc/keys column
/// (`asymmetric_key_describe()`: `X509.ALGO` and the SKID's last 4
/// bytes), and the payloads refused: none (EINVAL), not DER, cut short
/// (EBADMSG), a self-signed one whose issuer no longer matches (then
/// not self-signed: taken) or whose signature's last byte is changed
/// (EINVAL, the PKCS#1 padding check), an EC self-signed one (ENOENT: the
/// kernel has no ECDSA).
#[test]
fn keys_asymmetric_certificates_parse_as_recorded() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(0, 0);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    let proc_keys = |k: Serial| proc_keys_column(&p, k);
    let desc = |k: Serial| -> String {
        let d = p.keyctl_describe(k).unwrap();
        d.splitn(5, ';').nth(4).unwrap().to_string()
    };
    // (certificate, description, /proc/keys column after it if recorded)
    let cases = [
        (
            "ca1",
            "Org1: Issuer1: fc67b270db8b1403de53315ce9412ef0da1ccf3a",
            Some("X509.rsa da1ccf3a []"),
        ),
        (
            "ee",
            "Org: EndEntity: 74029aa0d65d904ab61256f1788d11ceba316da6",
            Some("X509.rsa ba316da6 []"),
        ),
        (
            "noskid",
            "Org: NoSkid: 3c1f0fbde3fab298",
            Some("X509.rsa []"),
        ),
        (
            "noakid",
            "Org: NoAkid: df421a0d12fe9a93054c76f9d4e89edcc54448ce",
            None,
        ),
        (
            "prefix",
            "Acme signing key: 6f38981329706a7694a79effae0c61cd15f71153",
            None,
        ),
        (
            "orgcn",
            "Widgets Limited CA: 68220446e12b40dd81319e2c2e5a500bfe83a3dd",
            None,
        ),
        (
            "mailonly",
            "solo@example.com: 8794875984b9889ead25cf0ee95f973251364a2f",
            None,
        ),
        (
            "self",
            "Org: Self: 6caa11ceda83e90430144c53aa8aa64d6d6f5f1b",
            None,
        ),
        (
            "ee_sha1",
            "Org: EndEntitySha1: 4fbd6158072397c8a467ae33b095c8c527b33b8c",
            None,
        ),
        (
            "ec_ee",
            "Org: EcEntity: 26c3d67baf9f17eb1a4ad667aa8c8087d1994d7d",
            Some("X509.ecdsa-nist-p256 d1994d7d []"),
        ),
    ];
    for (name, want, column) in cases {
        let k = p.add_key("asymmetric", None, &cert(name), s).unwrap();
        assert_eq!(desc(k), want, "{name}");
        if let Some(c) = column {
            assert_eq!(proc_keys(k), format!("{want}: {c}"), "{name}");
        }
    }
    // `id:` matches a key id's tail, either case; `ex:` the whole id.
    let ee = p.keyctl_search(s, "asymmetric", "id:ba316da6", 0).unwrap();
    assert_eq!(desc(ee), cases[1].1);
    assert_eq!(p.keyctl_search(s, "asymmetric", "id:BA316DA6", 0), Ok(ee));
    assert_eq!(
        p.keyctl_search(s, "asymmetric", "ex:ba316da6", 0),
        Err(Errno::ENOKEY)
    );
    let mine = p
        .add_key("asymmetric", Some("mine"), &cert("ee2"), s)
        .unwrap();
    assert_eq!(proc_keys(mine), "mine: X509.rsa 19aa6e92 []");
    assert_eq!(
        p.add_key("asymmetric", None, &cert("ec_self"), s),
        Err(Errno::ENOENT)
    );

    let ca1 = cert("ca1");
    let selfc = cert("self");
    let tamper = |c: &[u8], from: &[u8], to: &[u8]| {
        let at = c.windows(from.len()).position(|w| w == from).unwrap();
        let mut c = c.to_vec();
        c[at..at + to.len()].copy_from_slice(to);
        c
    };
    let mut sig = selfc.clone();
    *sig.last_mut().unwrap() ^= 1;
    for (what, data, want) in [
        ("nothing", Vec::new(), Err(Errno::EINVAL)),
        ("garbage", b"garbage".to_vec(), Err(Errno::EBADMSG)),
        (
            "ca1 less 1 byte",
            ca1[..ca1.len() - 1].to_vec(),
            Err(Errno::EBADMSG),
        ),
        (
            "ca1 less its signature",
            ca1[..ca1.len() - 64].to_vec(),
            Err(Errno::EBADMSG),
        ),
        (
            "ca1, its issuer's mail changed",
            tamper(&ca1, b"ca1@", b"cb1@"),
            Ok(()),
        ),
        (
            "self, its issuer's mail changed",
            tamper(&selfc, b"self@", b"selg@"),
            Ok(()),
        ),
        (
            "self, its signature's last byte changed",
            sig,
            Err(Errno::EINVAL),
        ),
    ] {
        let r = p.add_key("asymmetric", None, &data, s).map(|_| ());
        assert_eq!(r, want, "{what}");
    }
}

/// The RSA signature algorithms the kernel's X.509 parser knows
/// (`x509_note_sig_algo()`: SHA-1, SHA-2 and SHA-3 with RSA): a
/// certificate that is not self-signed is taken whichever it names (its
/// signature is checked only against a signer, later), here ee's with
/// its two sha256WithRSAEncryption OIDs (the TBS's and the outer one)
/// made another of the same length. An OID the parser does not know is
/// ENOPKG.
#[test]
fn keys_asymmetric_certificates_name_any_rsa_signature_algorithm() {
    let k = K::new();
    let ee = cert("ee");
    let sha256_rsa = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    let with_oid = |oid: &[u8]| {
        let mut c = ee.clone();
        let mut n = 0;
        while let Some(at) = c.windows(9).position(|w| w == sha256_rsa) {
            c[at..at + 9].copy_from_slice(oid);
            n += 1;
        }
        assert_eq!(n, 2);
        c
    };
    let rsa = |last: u8| [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, last];
    let sha3_rsa = |last: u8| [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, last];
    // sha1, sha384, sha512, sha224 with RSA; sha3-256, -384, -512 with RSA.
    for oid in [rsa(0x05), rsa(0x0c), rsa(0x0d), rsa(0x0e)]
        .into_iter()
        .chain([sha3_rsa(0x0e), sha3_rsa(0x0f), sha3_rsa(0x10)])
    {
        let r = k.p.add_key("asymmetric", None, &with_oid(&oid), k.s);
        assert!(r.is_ok(), "{oid:02x?}: {r:?}");
    }
    // rsaEncryption (1.2.840.113549.1.1.1): a key's algorithm, no
    // signature's.
    assert_eq!(
        k.p.add_key("asymmetric", None, &with_oid(&rsa(0x01)), k.s),
        Err(Errno::ENOPKG)
    );
}

/// `x509_process_extension()`'s checks of the extensions it reads
/// (EBADMSG): the SKID must be an OCTET STRING filling the extension,
/// the key usage a BIT STRING of at least 2 content bytes with fewer than
/// 8 unused bits, the basic constraints a SEQUENCE; and the AKID is
/// decoded as x509_akid.asn1's SEQUENCE (`asn1_ber_decoder()`). Each
/// is ee's (not self-signed: its signature is not checked here) with
/// one byte of the extension's value changed.
#[test]
fn keys_asymmetric_certificate_extensions_are_checked() {
    let k = K::new();
    let ee = cert("ee");
    // (the extension's OID and value header as ee has them, the byte
    // at that offset in it, its new value)
    let cases: [(&[u8], usize, u8); 6] = [
        (
            &[0x06, 0x03, 0x55, 0x1d, 0x0e, 0x04, 0x16, 0x04, 0x14],
            7,
            0x05,
        ),
        (
            &[0x06, 0x03, 0x55, 0x1d, 0x0e, 0x04, 0x16, 0x04, 0x14],
            8,
            0x13,
        ),
        (
            &[0x06, 0x03, 0x55, 0x1d, 0x0f, 0x04, 0x04, 0x03, 0x02, 0x07],
            7,
            0x04,
        ),
        (
            &[0x06, 0x03, 0x55, 0x1d, 0x0f, 0x04, 0x04, 0x03, 0x02, 0x07],
            9,
            0x08,
        ),
        (
            &[0x06, 0x03, 0x55, 0x1d, 0x13, 0x04, 0x02, 0x30, 0x00],
            7,
            0x31,
        ),
        (
            &[0x06, 0x03, 0x55, 0x1d, 0x23, 0x04, 0x69, 0x30, 0x67],
            7,
            0x31,
        ),
    ];
    for (at, off, new) in cases {
        let i = ee.windows(at.len()).position(|w| w == at).unwrap();
        let mut c = ee.clone();
        c[i + off] = new;
        assert_eq!(
            k.p.add_key("asymmetric", None, &c, k.s),
            Err(Errno::EBADMSG),
            "{at:02x?} byte {off} made {new:02x}"
        );
    }
    assert!(k.p.add_key("asymmetric", None, &ee, k.s).is_ok());
}

/// `x509_process_extension()`'s basic constraints on the recording's
/// kernel (6.12 stable, with "X.509: Fix Basic Constraints CA flag
/// parsing"): an empty SEQUENCE (CA:FALSE left out, as ee has it) or
/// exactly CA:TRUE, anything else EBADMSG. int's (CA:TRUE, `30 03 01 01
/// ff`) made an explicit CA:FALSE, a path length alone and an OCTET
/// STRING are each refused (asym.txt `asym-parse`, "int with ..."; int is
/// not self-signed, so its signature is not checked here).
#[test]
fn keys_asymmetric_basic_constraints_are_empty_or_ca_true() {
    let k = K::new();
    let int = cert("int");
    let bc = [
        0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04, 0x05, 0x30, 0x03, 0x01, 0x01, 0xff,
    ];
    let at = int.windows(bc.len()).position(|w| w == bc).unwrap();
    for (what, tail) in [
        ("CA:FALSE", [0x01, 0x01, 0x00]),
        ("a path length alone", [0x02, 0x01, 0x00]),
        ("an OCTET STRING", [0x04, 0x01, 0xff]),
    ] {
        let mut c = int.clone();
        c[at + 10..at + 13].copy_from_slice(&tail);
        let r = k.p.add_key("asymmetric", None, &c, k.s).map(|_| ());
        assert_eq!(r, Err(Errno::EBADMSG), "{what}");
    }
    assert!(k.p.add_key("asymmetric", None, &int, k.s).is_ok());
}

/// The certificates asym.c edits in place, as the oracle kernel took
/// them (asym.txt `asym-parse`): ec-self's two ecdsa-with-SHA256 OIDs
/// made SHA-224, -384 and -512 (`x509_note_sig_algo()` knows each; the
/// self-signature is then checked and the kernel has no ECDSA: ENOENT,
/// where an unknown one would be ENOPKG); ec-ee's curve made prime192v1
/// (`X509.ecdsa-nist-p192`); and self's AKID made to name another key
/// id or another serial (`x509_check_for_self_signed()`: one of the two
/// names it, the other not, EKEYREJECTED) or both (not self-signed:
/// taken).
#[test]
fn keys_asymmetric_edited_certificates_as_recorded() {
    use watchq_kernel::syscalls::procfs::ProcNode;
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let each = |c: &[u8], pat: &[u8], off: usize, to: u8| {
        let mut c = c.to_vec();
        let mut from = 0;
        while let Some(i) = c[from..].windows(pat.len()).position(|w| w == pat) {
            c[from + i + off] = to;
            from += i + pat.len();
        }
        c
    };
    let ec_self = cert("ec_self");
    let ecdsa_sha256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    for last in [1, 3, 4] {
        assert_eq!(
            p.add_key(
                "asymmetric",
                None,
                &each(&ec_self, &ecdsa_sha256, 7, last),
                s
            ),
            Err(Errno::ENOENT),
            "ecdsa-with-SHA 4.3.{last}"
        );
    }
    let p256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let ec = p
        .add_key("asymmetric", None, &each(&cert("ec_ee"), &p256, 7, 1), s)
        .unwrap();
    let node = ProcNode::lookup("/proc/keys").unwrap();
    let text = String::from_utf8(p.proc_read(node, 0, 1 << 16).unwrap()).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{ec:08x} ")));
    assert!(
        line.unwrap().ends_with(
            "Org: EcEntity: 26c3d67baf9f17eb1a4ad667aa8c8087d1994d7d: X509.ecdsa-nist-p192 d1994d7d []"
        ),
        "{line:?}"
    );
    let selfc = cert("self");
    let at = selfc
        .windows(4)
        .position(|w| w == [0x55, 0x1d, 0x23, 0x04])
        .unwrap();
    let (keyid, serial_end) = (at + 9, at + 5 + usize::from(selfc[at + 4]) - 1);
    for (what, flip, want) in [
        ("key id", &[keyid][..], Err(Errno::EKEYREJECTED)),
        ("serial", &[serial_end][..], Err(Errno::EKEYREJECTED)),
        ("key id and serial", &[keyid, serial_end][..], Ok(())),
    ] {
        let mut c = selfc.clone();
        for &i in flip {
            c[i] ^= 1;
        }
        let r = p.add_key("asymmetric", None, &c, s).map(|_| ());
        assert_eq!(r, want, "self with its AKID's {what} changed");
    }
}

/// asym-certs2.h's certificates as the oracle kernel parsed them
/// (asym.txt `asym-parse2`, `x509_key_preparse()`): a name of an O alone
/// is the O, and a CN sharing the O's first 7 bytes is the CN alone
/// (`x509_fabricate_name()`); a 1-byte SKID is taken, a second SKID is
/// EBADMSG, a key usage of 2 content bytes is taken
/// (`x509_process_extension()`); a version-1 certificate (6 TBS fields,
/// no extensions) is named by its serial; P-384 and P-521 keys, and an
/// ECDSA-SHA-1 signature (`x509_note_sig_algo()`), are known; selfkid,
/// self-signed with an AKID of its key id alone, verifies, and with that
/// key id changed is not self-signed, so its signature (now wrong) is
/// not checked (`x509_check_for_self_signed()`); an AKID element of a
/// tag x509_akid.asn1 has not is EBADMSG.
#[test]
fn keys_asymmetric_second_certificates_parse_as_recorded() {
    let k = K::new();
    let (p, s) = (&k.p, k.s);
    let column = |key: Serial| proc_keys_column(p, key);
    // (certificate, its /proc/keys column: the description, then the
    // type's own part) or the add_key errno.
    let cases: [(&str, std::result::Result<&str, Errno>); 12] = [
        (
            "orgonly",
            Ok("OnlyOrg: ca273477053e54bb800ad4e2443e2b3503dcc4ef: X509.rsa 03dcc4ef []"),
        ),
        (
            "prefix7",
            Ok("Gadgets Limited: a94217ac25d1cf3b7bce42624657be686cc5159e: X509.rsa 6cc5159e []"),
        ),
        ("skid1", Ok("Org: OneByteSkid: ab: X509.rsa ab []")),
        ("skid2", Err(Errno::EBADMSG)),
        (
            "ku2",
            Ok("Org: KeyUsage2: 40aec18188305ed9736ec0cc408e099f02e1501e: X509.rsa 02e1501e []"),
        ),
        ("v1", Ok("Org: Version1: 00d8f7ba93ad0948c5: X509.rsa []")),
        (
            "ec384",
            Ok("Org: ec384: 774412948d6b75ba1bfca14f5134cca7dbbb5809: X509.ecdsa-nist-p384 dbbb5809 []"),
        ),
        (
            "ec521",
            Ok("Org: ec521: e8ae988beff9dd603fea6effed280105d79b40c8: X509.ecdsa-nist-p521 d79b40c8 []"),
        ),
        (
            "ecsha1",
            Ok("Org: EcSha1: e8a9eb0ffe4a55b131553f3ff1bf769a320287ee: X509.ecdsa-nist-p256 320287ee []"),
        ),
        (
            "selfkid",
            Ok("Org: SelfKid: 8f3cc3055ec023b16fb935b18c1fbc4d31832914: X509.rsa 31832914 []"),
        ),
        (
            "ca3",
            Ok("Org3: Issuer3: fa8a17d9ec929edbf0030f7fbe7202d707e5f7c1: X509.rsa 07e5f7c1 []"),
        ),
        (
            "pad",
            Ok("Org: Padding: eb2bf0115a48583396c2eb257b644f460b088342: X509.rsa 0b088342 []"),
        ),
    ];
    for (name, want) in cases {
        let got = p.add_key("asymmetric", None, &cert(name), s).map(&column);
        assert_eq!(got.as_deref(), want.as_deref(), "{name}");
    }
    let mut c = cert("selfkid");
    let at = c
        .windows(4)
        .position(|w| w == [0x55, 0x1d, 0x23, 0x04])
        .unwrap();
    c[at + 9] ^= 1;
    assert!(p.add_key("asymmetric", None, &c, s).is_ok());
    // ee's AKID (`30 67`: [0] key id, [1] issuer, [2] serial) with the
    // issuer's tag made [3] constructed and the serial's [3] primitive,
    // tags x509_akid.asn1 has not: EBADMSG.
    let ee = cert("ee");
    let names = ee
        .windows(4)
        .position(|w| w == [0x55, 0x1d, 0x23, 0x04])
        .unwrap()
        + 29;
    assert_eq!(ee[names], 0xa1);
    for (at, tag) in [
        (names, 0xa3),
        (names + 2 + usize::from(ee[names + 1]), 0x83),
    ] {
        let mut c = ee.clone();
        c[at] = tag;
        let r = p.add_key("asymmetric", None, &c, s).map(|_| ());
        assert_eq!(r, Err(Errno::EBADMSG), "AKID tag {tag:02x}");
    }
}

/// `public_key_verify_signature()` and pkcs1pad's checks of a
/// self-signature, as the oracle kernel made them (asym.txt
/// `asym-parse2`): pad (RSA 2048, SHA-256) with signatures over chosen
/// blocks `00 01 FF.. 00 DigestInfo digest`. The decrypted block needs 8
/// FFs at least (7: EBADMSG; 8 with the rest of the wrong length:
/// EKEYREJECTED), a 00 after them (EBADMSG; all FFs: EBADMSG), the whole
/// DigestInfo (cut short: EBADMSG; nothing after it: EKEYREJECTED) and
/// the digest (another: EKEYREJECTED). A signature one byte longer than
/// the key (a 0 put before it) is EINVAL, and an RSA key's certificate
/// whose signature algorithm says ECDSA is EKEYREJECTED, though the
/// signature, made over it with RSA, is good.
#[test]
fn keys_asymmetric_self_signatures_are_checked_as_pkcs1pad_checks_them() {
    let k = K::new();
    let pad = cert("pad");
    for (block, want) in [
        ("ok", Ok(())),
        ("ff8", Err(Errno::EKEYREJECTED)),
        ("ff7", Err(Errno::EBADMSG)),
        ("no00", Err(Errno::EBADMSG)),
        ("allff", Err(Errno::EBADMSG)),
        ("infoonly", Err(Errno::EKEYREJECTED)),
        ("short", Err(Errno::EBADMSG)),
        ("digest", Err(Errno::EKEYREJECTED)),
    ] {
        let mut c = pad.clone();
        let at = c.len() - 256;
        c[at..].copy_from_slice(&c_array(&format!("sig_pad_{block}")));
        let r = k.p.add_key("asymmetric", None, &c, k.s).map(|_| ());
        assert_eq!(r, want, "{block}");
    }
    for (name, want) in [
        ("pad_long", Errno::EINVAL),
        ("pad_ecsig", Errno::EKEYREJECTED),
    ] {
        let r = k.p.add_key("asymmetric", None, &cert(name), k.s);
        assert_eq!(r, Err(want), "{name}");
    }
}

/// KEYCTL_INSTANTIATE charges the payload: a key under construction costs
/// its description and NUL (`key_alloc()` with the type's `def_datalen`,
/// 0 for `user`), and the instantiate's `generic_key_instantiate()`
/// reserves the preparsed `quotalen` on top (`key_payload_reserve()`),
/// checked against `maxbytes`: over it the instantiate is EDQUOT and the
/// key stays under construction (the helper can still negate it).
#[test]
fn keys_instantiate_charges_the_payload() {
    use watchq_kernel::syscalls::procfs::ProcNode;
    let kernel = Kernel::new(KernelConfig::default());
    let root = kernel.spawn(0, 0);
    let p = kernel.spawn(1000, 1000);
    p.keyctl_join_session_keyring(None).unwrap();
    let (_, before) = kernel.keys().quota_of(1000);
    let k = p
        .key_construct("user", "made", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    let (_, made) = kernel.keys().quota_of(1000);
    p.keyctl_instantiate(k, b"0123456789", 0).unwrap();
    assert_eq!(kernel.keys().quota_of(1000).1, made + 10);
    // "made" and its NUL, its link into the session keyring, its payload.
    assert_eq!(made + 10 - before, 5 + 4 + 10);

    let n = p
        .key_construct("user", "big", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    let (_, b) = kernel.keys().quota_of(1000);
    let node = ProcNode::lookup("/proc/sys/kernel/keys/maxbytes").unwrap();
    let text = format!("{}\n", b + 9);
    assert_eq!(root.proc_write(node, 0, text.as_bytes()), Ok(text.len()));
    assert_eq!(
        p.keyctl_instantiate(n, b"0123456789", 0),
        Err(Errno::EDQUOT)
    );
    assert_eq!(kernel.keys().quota_of(1000).1, b);
    p.keyctl_negate(n, 60, 0).unwrap();
    assert_eq!(p.request_key("user", "big", 0), Err(Errno::ENOKEY));
}

/// `find_asymmetric_key()`'s `keyring_search()` descends into an expired
/// keyring, as into any keyring that is neither invalidated nor revoked
/// (`search_nested_keyrings()`'s `descend_to_keyring` test); the keys it
/// meets are state-checked, so an expired signer itself is passed over. A
/// keyring restricted by `key_or_keyring:` a keyring whose nested keyring
/// holds ca2 takes ee while that nested keyring is expired, not once it
/// is revoked, and not when ca2 itself is the one expired.
#[test]
fn keys_asymmetric_restriction_searches_expired_keyrings() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(0, 0);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    let mut cases = Vec::new();
    for (name, what) in [("exp", 0), ("rev", 1), ("signer", 2)] {
        let rings = flat_keyrings(&p, s, name, 2);
        let ca = p
            .add_key("asymmetric", None, &cert("ca2"), rings[1])
            .unwrap();
        nest(&p, s, &rings);
        match what {
            0 => p.keyctl_set_timeout(rings[1], 1).unwrap(),
            1 => p.keyctl_revoke(rings[1]).unwrap(),
            _ => p.keyctl_set_timeout(ca, 1).unwrap(),
        }
        cases.push((name, rings[0], what == 0));
    }
    kernel.advance_clock(2);
    restricted_by_each(&p, s, &cases);
}

/// For each case (name, trusted keyring, whether ee's signer is found
/// there), a keyring in `s` restricted by `key_or_keyring:` that keyring,
/// and ee added to it: taken, or ENOKEY.
fn restricted_by_each(p: &Process, s: Serial, cases: &[(&str, Serial, bool)]) {
    for &(name, top, found) in cases {
        let r = p
            .add_key("keyring", Some(&format!("r-{name}")), b"", s)
            .unwrap();
        let how = format!("key_or_keyring:{top}");
        p.keyctl_restrict_keyring(r, Some("asymmetric"), Some(&how))
            .unwrap();
        let want = if found { Ok(()) } else { Err(Errno::ENOKEY) };
        assert_eq!(
            p.add_key("asymmetric", None, &cert("ee"), r).map(|_| ()),
            want,
            "{name}"
        );
    }
}

/// A search by asymmetric key id (`id:`, an iterating match) checks each
/// asymmetric key's state before it asks whether the key is the one
/// wanted (`keyring_search_iterator()`): a revoked or expired key it
/// meets on the way, whatever its id, leaves its error (EKEYREVOKED,
/// EKEYEXPIRED) where the search finds nothing, and the wanted key found
/// later still wins. A search by description (a direct look-up) never
/// meets the other keys: ENOKEY.
#[test]
fn keys_asymmetric_id_searches_check_the_state_of_every_key_they_meet() {
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(0, 0);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    // ee's key id: the last word of its description (its SKID in hex).
    let probe = p.add_key("keyring", Some("probe"), b"", s).unwrap();
    let ee = p.add_key("asymmetric", None, &cert("ee"), probe).unwrap();
    let d = p.keyctl_describe(ee).unwrap();
    let skid = d.rsplit(' ').next().unwrap().to_string();
    let want = format!("id:{}", &skid[skid.len() - 8..]);
    p.keyctl_unlink(probe, s).unwrap();
    for (name, what) in [("revoked", 0), ("expired", 1), ("then-found", 2)] {
        let r = p.add_key("keyring", Some(name), b"", s).unwrap();
        let ca = p.add_key("asymmetric", None, &cert("ca1"), r).unwrap();
        match what {
            1 => p.keyctl_set_timeout(ca, 1).unwrap(),
            _ => p.keyctl_revoke(ca).unwrap(),
        }
        if what == 2 {
            p.add_key("asymmetric", None, &cert("ee"), r).unwrap();
        }
    }
    kernel.advance_clock(2);
    let find = |name: &str, desc: &str| {
        let r = p.keyctl_search(s, "keyring", name, 0).unwrap();
        p.keyctl_search(r, "asymmetric", desc, 0).map(|_| ())
    };
    assert_eq!(find("revoked", &want), Err(Errno::EKEYREVOKED));
    assert_eq!(find("expired", &want), Err(Errno::EKEYEXPIRED));
    assert_eq!(find("then-found", &want), Ok(()));
    assert_eq!(find("revoked", "no such description"), Err(Errno::ENOKEY));
}

/// An asymmetric restriction's signer search needs search permission, as
/// `keyring_search()` checks it: on the keyring it starts from (refused:
/// `find_asymmetric_key()` makes the EACCES "no key"), on each nested
/// keyring (passed over) and on the key found (passed over). The search
/// starts from `make_key_ref(keyring, 1)`, so the possessor's bits count
/// for every keyring and key of the tree, whoever the caller is: a tree
/// another user made, which grants its possessor search and nobody else,
/// still gives up its signer to a caller who does not possess it.
#[test]
fn keys_asymmetric_restriction_search_needs_search_permission() {
    const NO_SEARCH: u32 = 0x3737_0000; // possessor and owner: all but search
    const POS_ONLY: u32 = 0x3f01_0000; // possessor all, owner view, others none
    let kernel = Kernel::new(KernelConfig::default());
    let p = kernel.spawn(0, 0);
    let s = p.keyctl_join_session_keyring(None).unwrap();
    let other = kernel.spawn(1000, 1000);
    let os = other.keyctl_join_session_keyring(None).unwrap();
    let mut cases = Vec::new();
    for (name, what) in [
        ("top", 0),
        ("nested", 1),
        ("key", 2),
        ("pos", 3),
        ("other", 4),
    ] {
        let (who, sess) = if what == 4 { (&other, os) } else { (&p, s) };
        let rings = flat_keyrings(who, sess, name, 2);
        let ca = who
            .add_key("asymmetric", None, &cert("ca2"), rings[1])
            .unwrap();
        nest(who, sess, &rings);
        let (perm, at): (u32, &[Serial]) = match what {
            0 => (NO_SEARCH, &rings[..1]),
            1 => (NO_SEARCH, &rings[1..]),
            2 => (NO_SEARCH, &[ca]),
            _ => (POS_ONLY, &[rings[0], rings[1], ca]),
        };
        for &k in at {
            who.keyctl_setperm(k, perm).unwrap();
        }
        cases.push((name, rings[0], what >= 3));
    }
    restricted_by_each(&p, s, &cases);
}

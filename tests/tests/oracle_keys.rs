//! The real kernel's key traces (oracle sections B1 and B2), replayed on
//! watchq: the probe's steps in the probe's order, every call's result,
//! every record's bytes, compared line by line with the recording after
//! serial numbers are mapped to the probe's names. The probe ran as root
//! with `gc_delay` = 1 s and waited for the collector; watchq advances its
//! virtual clock by that second instead.

use watchq_core::uapi::{O_DIRECTORY, O_NONBLOCK, O_NOTIFICATION_PIPE, O_RDONLY};
use watchq_kernel::keys::{KeyConfig, KEY_SPEC_SESSION_KEYRING};
use watchq_kernel::prelude::*;
use watchq_kernel::{Kernel, KernelConfig};
use watchq_tests::oracle::{assert_matches_golden, golden_section, Trace};

/// A pipe-creating call: printed as the probe prints it (0 on success).
fn call_pipe(t: &mut Trace, label: &str, r: Result<[i32; 2], watchq_core::Errno>) -> [i32; 2] {
    t.t(label, r.map(|_| 0)).expect("pipe");
    r.unwrap()
}

#[test]
fn oracle_keys_b1_and_b2_replay_byte_for_byte() {
    let kernel = Kernel::new(KernelConfig {
        keys: KeyConfig {
            gc_delay: 1,
            ..KeyConfig::default()
        },
        ..KernelConfig::default()
    });
    let pr = kernel.spawn(0, 0);
    let p_ = &pr;
    let mut t = Trace::default();
    let npipe = |fl: u32| p_.pipe2(O_NOTIFICATION_PIPE | fl);

    // ---- B1 keyring/key event stream
    let s = t.t(
        "kctl(K_JOIN_SESSION, 0, 0, 0, 0)",
        pr.keyctl_join_session_keyring(None),
    );
    let s = t.nm(s, "S(session)");
    let _ = t.t(
        "kctl(K_GET_KEYRING_ID, SPEC_SESSION, 0, 0, 0)",
        pr.keyctl_get_keyring_id(KEY_SPEC_SESSION_KEYRING, false),
    );
    let p = call_pipe(&mut t, "npipe(p, O_NONBLOCK)", npipe(O_NONBLOCK));
    t.t0("setsz(p[0], 256)", pr.set_queue_size(p[0], 256));
    t.t0("watch_key(S, p[0], 5)", pr.keyctl_watch_key(s, p[0], 5));
    let r = t.addkey(&pr, ("keyring", "ringR", None), ("S", s), Some("R"));
    t.drain(&pr, p[0], "p");
    t.t0("watch_key(R, p[0], 1)", pr.keyctl_watch_key(r, p[0], 1));
    t.drain(&pr, p[0], "p");
    t.note("watch added: no record expected");
    let k1 = t.addkey(&pr, ("user", "k1", Some("hello")), ("R", r), Some("k1"));
    t.drain(&pr, p[0], "p");
    t.t0("watch_key(k1, p[0], 2)", pr.keyctl_watch_key(k1, p[0], 2));
    t.note("add_key with existing description (update path)");
    t.addkey(&pr, ("user", "k1", Some("world!")), ("R", r), None);
    t.drain(&pr, p[0], "p");
    t.t0(
        "kctl(K_UPDATE, k1, (long)\"again\", 5, 0)",
        pr.keyctl_update(k1, b"again"),
    );
    t.drain(&pr, p[0], "p");
    let k2 = t.addkey(&pr, ("user", "k2", Some("x")), ("R", r), Some("k2"));
    t.t0("watch_key(k2, p[0], 4)", pr.keyctl_watch_key(k2, p[0], 4));
    let r2 = t.addkey(&pr, ("keyring", "ringR2", None), ("S", s), Some("R2"));
    t.t0("watch_key(R2, p[0], 3)", pr.keyctl_watch_key(r2, p[0], 3));
    t.drain(&pr, p[0], "p");
    t.t0("kctl(K_LINK, k1, R2, 0, 0)", pr.keyctl_link(k1, r2));
    t.drain(&pr, p[0], "p");
    t.note("link again (already linked)");
    t.t0("kctl(K_LINK, k1, R2, 0, 0)", pr.keyctl_link(k1, r2));
    t.drain(&pr, p[0], "p");
    t.t0("kctl(K_UNLINK, k1, R2, 0, 0)", pr.keyctl_unlink(k1, r2));
    t.drain(&pr, p[0], "p");
    t.note("unlink again (not linked)");
    t.t0("kctl(K_UNLINK, k1, R2, 0, 0)", pr.keyctl_unlink(k1, r2));
    t.drain(&pr, p[0], "p");
    t.t0(
        "kctl(K_SETPERM, k1, 0x3f3f0000, 0, 0)",
        pr.keyctl_setperm(k1, 0x3f3f_0000),
    );
    t.drain(&pr, p[0], "p");
    t.t0(
        "kctl(K_CHOWN, k1, -1, -1, 0)",
        pr.keyctl_chown(k1, u32::MAX, u32::MAX),
    );
    t.drain(&pr, p[0], "p");
    t.t0("kctl(K_CHOWN, k1, 0, 0, 0)", pr.keyctl_chown(k1, 0, 0));
    t.drain(&pr, p[0], "p");
    t.t0(
        "kctl(K_CHOWN, k1, -1, 1234, 0)",
        pr.keyctl_chown(k1, u32::MAX, 1234),
    );
    t.drain(&pr, p[0], "p");
    t.t0(
        "kctl(K_SET_TIMEOUT, k1, 3600, 0, 0)",
        pr.keyctl_set_timeout(k1, 3600),
    );
    t.drain(&pr, p[0], "p");
    t.t0(
        "kctl(K_SET_TIMEOUT, k1, 0, 0, 0)",
        pr.keyctl_set_timeout(k1, 0),
    );
    t.drain(&pr, p[0], "p");
    for _ in 0..2 {
        t.t0(
            "kctl(K_RESTRICT, R2, 0, 0, 0)",
            pr.keyctl_restrict_keyring(r2, None, None),
        );
        t.drain(&pr, p[0], "p");
    }
    t.note("link into restricted keyring");
    t.t0("kctl(K_LINK, k2, R2, 0, 0)", pr.keyctl_link(k2, r2));
    t.drain(&pr, p[0], "p");
    t.note("revoke k2 (watched, tag 4); gc_delay=1 so gc follows ~1s later");
    t.t0("kctl(K_REVOKE, k2, 0, 0, 0)", pr.keyctl_revoke(k2));
    t.drain(&pr, p[0], "p");
    t.t0("kctl(K_REVOKE, k2, 0, 0, 0)", pr.keyctl_revoke(k2));
    t.note("waiting for key gc of revoked k2");
    kernel.advance_clock(1);
    t.drain(&pr, p[0], "p");
    t.note("invalidate k1 (watched, tag 2)");
    t.t0("kctl(K_INVALIDATE, k1, 0, 0, 0)", pr.keyctl_invalidate(k1));
    t.drain(&pr, p[0], "p");
    t.addkey(&pr, ("user", "k3", Some("zz")), ("R", r), Some("k3"));
    t.drain(&pr, p[0], "p");
    t.t0("kctl(K_CLEAR, R, 0, 0, 0)", pr.keyctl_clear(r));
    t.drain(&pr, p[0], "p");
    t.note("clear an already empty keyring");
    t.t0("kctl(K_CLEAR, R, 0, 0, 0)", pr.keyctl_clear(r));
    t.drain(&pr, p[0], "p");
    t.note("clear a non-keyring key");
    let k4 = t.addkey(&pr, ("user", "k4", Some("4")), ("R", r), Some("k4"));
    t.drain(&pr, p[0], "p");
    t.t0("kctl(K_CLEAR, k4, 0, 0, 0)", pr.keyctl_clear(k4));
    t.drain(&pr, p[0], "p");
    t.note("unwatch R2 (tag 3) with watch_id -1");
    t.t0("watch_key(R2, p[0], -1)", pr.keyctl_watch_key(r2, p[0], -1));
    t.drain(&pr, p[0], "p");
    t.t0("watch_key(R2, p[0], -1)", pr.keyctl_watch_key(r2, p[0], -1));
    t.note("destroy watched keyring R by unlinking it from S");
    t.t0("kctl(K_UNLINK, R, S, 0, 0)", pr.keyctl_unlink(r, s));
    t.drain(&pr, p[0], "p");
    t.note("destroy unwatched keyring R2");
    t.t0("kctl(K_UNLINK, R2, S, 0, 0)", pr.keyctl_unlink(r2, s));
    t.drain(&pr, p[0], "p");
    assert_matches_golden(
        &t.normalized(),
        &golden_section("B1 keyring/key event stream"),
    );

    // ---- B2 watch errors
    let mut t2 = Trace::default();
    let t = &mut t2;
    for (n, name) in [
        (s, "S(session)"),
        (r, "R"),
        (r2, "R2"),
        (k1, "k1"),
        (k2, "k2"),
        (k4, "k4"),
    ] {
        t.nm(Ok(n), name);
    }
    let names_prefix = 6;
    t.note("duplicate watch on same queue (same tag, other tag, via write end)");
    t.t0("watch_key(S, p[0], 5)", pr.keyctl_watch_key(s, p[0], 5));
    t.t0("watch_key(S, p[0], 9)", pr.keyctl_watch_key(s, p[0], 9));
    t.t0("watch_key(S, p[1], 6)", pr.keyctl_watch_key(s, p[1], 6));
    t.note("watch_id range");
    let k5 = t.addkey(&pr, ("user", "k5", Some("5")), ("S", s), Some("k5"));
    t.drain(&pr, p[0], "p");
    for tag in [256, -2, 255, 0] {
        t.t0(
            &format!("watch_key(k5, p[0], {tag})"),
            pr.keyctl_watch_key(k5, p[0], tag),
        );
    }
    t.t0(
        "kctl(K_UPDATE, k5, (long)\"55\", 2, 0)",
        pr.keyctl_update(k5, b"55"),
    );
    t.drain(&pr, p[0], "p");
    t.note("nonexistent key serial");
    t.t0(
        "watch_key(0x7ffffff0, p[0], 1)",
        pr.keyctl_watch_key(0x7fff_fff0, p[0], 1),
    );
    t.t0(
        "watch_key(0x7ffffff0, 9999, 1)",
        pr.keyctl_watch_key(0x7fff_fff0, 9999, 1),
    );
    t.t0("watch_key(0, p[0], 1)", pr.keyctl_watch_key(0, p[0], 1));
    t.note("bad queue fds");
    let q = call_pipe(t, "pipe2(q, 0)", pr.pipe());
    for (label, fd) in [
        ("q[0]", q[0]),
        ("q[1]", q[1]),
        ("9999", 9999),
        ("-1", -1),
        ("0", 0),
    ] {
        t.t0(
            &format!("watch_key(S, {label}, 1)"),
            pr.keyctl_watch_key(s, fd, 1),
        );
    }
    let dfd = pr.open("/", O_RDONLY | O_DIRECTORY).unwrap();
    t.t0("watch_key(S, dfd, 1)", pr.keyctl_watch_key(s, dfd, 1));
    pr.close(dfd).unwrap();
    t.note("unwatch: key never watched / watched by another queue / bad fd");
    let k6 = t.addkey(&pr, ("user", "k6", Some("6")), ("S", s), Some("k6"));
    t.drain(&pr, p[0], "p");
    t.t0("watch_key(k6, p[0], -1)", pr.keyctl_watch_key(k6, p[0], -1));
    let p2 = call_pipe(t, "npipe(p2, O_NONBLOCK)", npipe(O_NONBLOCK));
    t.t0("setsz(p2[1], 16)", pr.set_queue_size(p2[1], 16));
    t.t0("watch_key(k6, p2[1], 1)", pr.keyctl_watch_key(k6, p2[1], 1));
    t.t0("watch_key(k6, p[0], -1)", pr.keyctl_watch_key(k6, p[0], -1));
    t.t0("watch_key(k6, q[0], -1)", pr.keyctl_watch_key(k6, q[0], -1));
    t.t0("watch_key(k6, 9999, -1)", pr.keyctl_watch_key(k6, 9999, -1));
    t.note("same key watched by two queues (p tag 8, p2 tag 1 via write end)");
    t.t0("watch_key(k6, p[0], 8)", pr.keyctl_watch_key(k6, p[0], 8));
    t.t0(
        "kctl(K_UPDATE, k6, (long)\"66\", 2, 0)",
        pr.keyctl_update(k6, b"66"),
    );
    t.drain(&pr, p[0], "p");
    t.drain(&pr, p2[0], "p2");
    t.note("unwatch from p2 using its READ end (watch was added via write end)");
    t.t0(
        "watch_key(k6, p2[0], -1)",
        pr.keyctl_watch_key(k6, p2[0], -1),
    );
    t.drain(&pr, p2[0], "p2");
    t.drain(&pr, p[0], "p");
    t.note("no View permission");
    let k7 = t.addkey(&pr, ("user", "k7", Some("7")), ("S", s), Some("k7"));
    t.drain(&pr, p[0], "p");
    t.t0("kctl(K_SETPERM, k7, 0, 0, 0)", pr.keyctl_setperm(k7, 0));
    t.drain(&pr, p[0], "p");
    t.t0("watch_key(k7, p[0], 1)", pr.keyctl_watch_key(k7, p[0], 1));
    t.note("RLIMIT_NOFILE limits number of watches per user");
    let (soft, hard) = pr.rlimit_nofile();
    t.t0(
        "setrlimit(RLIMIT_NOFILE, &rl1)",
        pr.set_rlimit_nofile(2, hard),
    );
    let k8 = t.addkey(&pr, ("user", "k8", Some("8")), ("S", s), Some("k8"));
    t.t0("watch_key(k8, p[0], 1)", pr.keyctl_watch_key(k8, p[0], 1));
    t.t0(
        "setrlimit(RLIMIT_NOFILE, &rl)",
        pr.set_rlimit_nofile(soft, hard),
    );
    t.t0("watch_key(k8, p[0], 1)", pr.keyctl_watch_key(k8, p[0], 1));
    t.drain(&pr, p[0], "p");
    t.note("closing a queue with live watches, then events on watched keys");
    pr.close(p2[0]).unwrap();
    pr.close(p2[1]).unwrap();
    t.t0(
        "kctl(K_UPDATE, k6, (long)\"666\", 3, 0)",
        pr.keyctl_update(k6, b"666"),
    );
    t.drain(&pr, p[0], "p");
    pr.close(p[0]).unwrap();
    pr.close(p[1]).unwrap();
    t.t0(
        "kctl(K_UPDATE, k6, (long)\"6666\", 4, 0)",
        pr.keyctl_update(k6, b"6666"),
    );
    t.t0(
        "kctl(K_UPDATE, k8, (long)\"88\", 2, 0)",
        pr.keyctl_update(k8, b"88"),
    );
    t.note("re-watch same key on a new queue");
    let p = call_pipe(t, "npipe(p, O_NONBLOCK)", npipe(O_NONBLOCK));
    t.t0("setsz(p[0], 1)", pr.set_queue_size(p[0], 1));
    t.t0("watch_key(k8, p[0], 3)", pr.keyctl_watch_key(k8, p[0], 3));
    t.t0(
        "kctl(K_UPDATE, k8, (long)\"888\", 3, 0)",
        pr.keyctl_update(k8, b"888"),
    );
    t.drain(&pr, p[0], "p");
    let ours = t.normalized();
    assert_matches_golden(&ours[names_prefix..], &golden_section("B2 watch errors"));
}

//! The policy engine: Smack-like, SELinux-like and Landlock-like policies,
//! stacking, policy files, audit, and swapping a policy while posting.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use watchq_core::lsm::{
    caps, parse_policy, Hook, Inheritance, Landlock, LandlockRule, SeLinux, Smack, Stack,
};
use watchq_core::uapi::{self, O_NONBLOCK, O_NOTIFICATION_PIPE};
use watchq_core::{Errno, Notification, Permissive, Policy};
use watchq_kernel::keys::KEY_SPEC_SESSION_KEYRING;
use watchq_kernel::prelude::*;
use watchq_kernel::process_consts::AT_FDCWD;
use watchq_kernel::{Kernel, KernelConfig, Process};

fn kernel(policy: Arc<dyn Policy>) -> Arc<Kernel> {
    let k = Kernel::new(KernelConfig::default());
    k.set_policy(policy);
    k
}

fn queue(p: &Process) -> i32 {
    let [r, _w] = p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
    p.set_queue_size(r, 1).unwrap();
    r
}

fn read_all(p: &Process, fd: i32) -> Vec<Notification> {
    let mut b = vec![0u8; 4096];
    match p.read(fd, &mut b) {
        Ok(n) => Notification::decode_all(&b[..n]).unwrap(),
        Err(_) => Vec::new(),
    }
}

/// A user process in a session of its own, labelled `label`.
fn user(k: &Arc<Kernel>, uid: u32, label: &str) -> Arc<Process> {
    let p = k.spawn(uid, uid);
    p.set_label(Some(label));
    p.keyctl_join_session_keyring(None).unwrap();
    p
}

#[test]
fn smack_watch_key_and_post_rules() {
    let mut s = Smack::new();
    s.add_rule("watcher", "secret", "r").unwrap();
    s.add_rule("writer", "watcher", "w").unwrap();
    let k = kernel(Arc::new(s));
    let w = user(&k, 1000, "watcher");
    let fd = queue(&w);
    let key = w
        .add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    w.keyctl_setperm(key, 0x3f3f_3f3f).unwrap();
    // No label on the key yet: allowed.
    assert_eq!(w.keyctl_watch_key(key, fd, 1), Ok(()));
    w.keyctl_watch_key(key, fd, -1).unwrap();
    for (label, ok) in [("secret", true), ("other", false), ("_", true), ("*", true)] {
        k.keys().set_label(key, Some(label.into())).unwrap();
        let r = w.keyctl_watch_key(key, fd, 1);
        assert_eq!(r.is_ok(), ok, "key label {label}");
        if ok {
            w.keyctl_watch_key(key, fd, -1).unwrap();
        } else {
            assert_eq!(r, Err(Errno::EACCES));
        }
    }
    read_all(&w, fd);
    k.keys().set_label(key, Some("secret".into())).unwrap();
    w.keyctl_watch_key(key, fd, 1).unwrap();
    // post_notification: the source's label needs write on the watcher's.
    let writer = w.fork();
    writer.set_label(Some("writer"));
    writer.keyctl_update(key, b"a").unwrap();
    assert_eq!(read_all(&w, fd).len(), 1);
    let stranger = w.fork();
    stranger.set_label(Some("stranger"));
    stranger.keyctl_update(key, b"b").unwrap();
    assert_eq!(
        read_all(&w, fd).len(),
        0,
        "stranger may not write to watcher"
    );
    assert_eq!(w.queue_stats(fd).unwrap().denied, 1);
    // CAP_MAC_OVERRIDE bypasses.
    let r2 = w.fork();
    let mut c2 = (*r2.cred()).clone();
    c2.caps |= 1 << caps::CAP_MAC_OVERRIDE;
    c2.set_label(Some("stranger".into()));
    r2.set_cred(c2);
    r2.keyctl_update(key, b"c").unwrap();
    assert_eq!(read_all(&w, fd).len(), 1);
    // META passes: the removal record reaches the watcher even from "stranger".
    stranger.keyctl_invalidate(key).unwrap();
    // INVALIDATED is denied; the collector runs after the call, once the
    // consumer has found its pipe empty, and its removal comes next.
    assert!(read_all(&w, fd).is_empty());
    let got = read_all(&w, fd);
    assert!(got.iter().any(|n| n.is_meta()), "{got:?}");
    // Every denial is in the audit log with hook, subject, object and reason.
    let log = k.audit().records();
    assert!(log.iter().any(|r| r.hook == Hook::WatchKey
        && r.object.contains("label=other")
        && r.reason.contains("lacks r")));
    assert!(log
        .iter()
        .any(|r| r.hook == Hook::PostNotification && r.subject.contains("label=stranger")));
}

#[test]
fn selinux_watchkey_scenario_and_other_classes() {
    // The SELinux test suite's watchkey: a domain without key { view } on
    // the key gets EACCES from KEYCTL_WATCH_KEY.
    let mut s = SeLinux::new();
    s.parse_rule("allow test_watchkey_t test_key_t:key { view };")
        .unwrap();
    s.parse_rule("allow test_watchkey_t test_fs_t:filesystem watch;")
        .unwrap();
    s.parse_rule("allow test_watchkey_t self:devices { watch };")
        .unwrap();
    let k = kernel(Arc::new(s));
    let good = user(&k, 0, "unconfined_u:unconfined_r:test_watchkey_t:s0");
    let bad = user(&k, 0, "unconfined_u:unconfined_r:test_no_watchkey_t:s0");
    let key = good
        .add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    k.keys()
        .set_label(key, Some("system_u:object_r:test_key_t:s0".into()))
        .unwrap();
    let (gfd, bfd) = (queue(&good), queue(&bad));
    assert_eq!(good.keyctl_watch_key(key, gfd, 1), Ok(()));
    // bad can see the key (root), but SELinux says no.
    bad.keyctl_join_session_keyring(None).unwrap();
    assert_eq!(bad.keyctl_watch_key(key, bfd, 1), Err(Errno::EACCES));
    let rec = k.audit().records().pop().unwrap();
    assert_eq!(
        rec.reason,
        "selinux: denied { view } scontext=test_no_watchkey_t tcontext=test_key_t tclass=key"
    );
    // Other classes.
    let ns = good.mount_ns();
    ns.mkdir("/mnt/fs").unwrap();
    ns.mount("xfs", "/mnt/fs", false, &*k.policy()).unwrap();
    ns.set_sb_label("/mnt/fs", Some("test_fs_t".into()))
        .unwrap();
    assert_eq!(good.watch_sb(AT_FDCWD, "/mnt/fs", 0, gfd, 2), Ok(()));
    assert_eq!(
        bad.watch_sb(AT_FDCWD, "/mnt/fs", 0, bfd, 2),
        Err(Errno::EACCES)
    );
    assert_eq!(
        good.watch_mount(AT_FDCWD, "/mnt/fs", 0, gfd, 3),
        Err(Errno::EACCES),
        "no mount {{ watch }} rule"
    );
    assert_eq!(good.watch_devices(gfd, 4, 0), Ok(()));
    assert_eq!(bad.watch_devices(bfd, 4, 0), Err(Errno::EACCES));
    // SELinux has no post_notification: deliveries are not filtered.
    good.keyctl_update(key, b"x").unwrap();
    assert_eq!(read_all(&good, gfd).len(), 1);
}

fn rules(p: &Process) -> Vec<LandlockRule> {
    p.cred()
        .domain
        .as_ref()
        .map_or(Vec::new(), |d| d.effective_rules())
}

#[test]
fn landlock_three_generations_both_modes() {
    for mode in [Inheritance::Live, Inheritance::Snapshot] {
        let k = kernel(Arc::new(Landlock));
        let p = k.spawn(1000, 1000);
        let r1 = LandlockRule::DenyHook(Hook::WatchMount);
        let r2 = LandlockRule::DenyHook(Hook::WatchSb);
        let r3 = LandlockRule::OwnKeysOnly;
        let r4 = LandlockRule::DenyHook(Hook::WatchDevices);
        p.landlock_restrict(r1.clone(), mode);
        let c = p.fork();
        c.landlock_restrict(r3.clone(), mode);
        let g = c.fork();
        // Rules added after the forks.
        p.landlock_restrict(r2.clone(), mode);
        c.landlock_restrict(r4.clone(), mode);
        let set = |v: Vec<LandlockRule>| {
            v.into_iter()
                .map(|r| format!("{r:?}"))
                .collect::<BTreeSet<_>>()
        };
        let want =
            |v: &[&LandlockRule]| v.iter().map(|r| format!("{r:?}")).collect::<BTreeSet<_>>();
        assert_eq!(set(rules(&p)), want(&[&r1, &r2]), "{mode:?} parent");
        match mode {
            Inheritance::Live => {
                assert_eq!(set(rules(&c)), want(&[&r1, &r2, &r3, &r4]), "live child");
                assert_eq!(
                    set(rules(&g)),
                    want(&[&r1, &r2, &r3, &r4]),
                    "live grandchild"
                );
            }
            Inheritance::Snapshot => {
                assert_eq!(set(rules(&c)), want(&[&r1, &r3, &r4]), "snapshot child");
                assert_eq!(set(rules(&g)), want(&[&r1, &r3]), "snapshot grandchild");
            }
        }
        // A process can only add: nothing removes r1 from the child.
        assert!(rules(&c).contains(&r1));
        // Enforcement.
        let fd = queue(&g);
        assert_eq!(g.watch_mount(AT_FDCWD, "/", 0, fd, 1), Err(Errno::EPERM));
        let parent_fd = queue(&p);
        assert_eq!(
            p.watch_devices(parent_fd, 1, 0),
            Ok(()),
            "r4 binds only the child's line"
        );
        let cfd = queue(&c);
        assert_eq!(c.watch_devices(cfd, 1, 0), Err(Errno::EPERM));
    }
}

#[test]
fn landlock_own_keys_and_deliver_only() {
    let k = kernel(Arc::new(Landlock));
    let owner = user(&k, 1000, "x");
    let key = owner
        .add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    owner.keyctl_setperm(key, 0x3f3f_3f3f).unwrap();
    let other = owner.fork();
    other.set_cred(k.cred(2000, 2000));
    other.landlock_restrict(LandlockRule::OwnKeysOnly, Inheritance::Live);
    let ofd = queue(&other);
    assert_eq!(other.keyctl_watch_key(key, ofd, 1), Err(Errno::EPERM));
    // Deliver only KEY records: device records are dropped for this watcher.
    let w = k.spawn(0, 0);
    w.landlock_restrict(
        LandlockRule::DeliverOnly([uapi::WATCH_TYPE_KEY_NOTIFY].into_iter().collect()),
        Inheritance::Snapshot,
    );
    let wfd = queue(&w);
    w.watch_devices(wfd, 1, 0).unwrap();
    k.usb_add("1-1").unwrap();
    assert!(read_all(&w, wfd).is_empty());
    assert_eq!(w.queue_stats(wfd).unwrap().denied, 1);
}

#[test]
fn stack_needs_every_policy() {
    let mut sm = Smack::new();
    sm.add_rule("a", "b", "w").unwrap();
    let mut se = SeLinux::new();
    se.parse_rule("allow b unlabeled_t:key { view };").unwrap();
    let k = kernel(Arc::new(Stack::new(vec![
        Arc::new(Permissive),
        Arc::new(sm),
        Arc::new(se),
    ])));
    let b = user(&k, 0, "b");
    let key = b
        .add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    let fb = queue(&b);
    assert_eq!(b.keyctl_watch_key(key, fb, 1), Ok(()));
    // c has no SELinux rule: the stack denies although Smack and Permissive allow.
    let c = b.fork();
    c.set_label(Some("c"));
    let fc = queue(&c);
    assert_eq!(c.keyctl_watch_key(key, fc, 1), Err(Errno::EACCES));
    assert_eq!(k.audit().records().last().unwrap().hook, Hook::WatchKey);
}

#[test]
fn a_denied_post_spares_other_queues_and_is_counted_and_audited() {
    let mut sm = Smack::new();
    sm.add_rule("src", "a", "w").unwrap();
    let k = kernel(Arc::new(sm));
    let owner = k.spawn(0, 0);
    owner.keyctl_join_session_keyring(None).unwrap();
    let key = owner
        .add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    let (a, b) = (owner.fork(), owner.fork());
    a.set_label(Some("a"));
    b.set_label(Some("b"));
    let (fa, fb) = (queue(&a), queue(&b));
    a.keyctl_watch_key(key, fa, 1).unwrap();
    b.keyctl_watch_key(key, fb, 2).unwrap();
    // The source: label "src", without CAP_MAC_OVERRIDE.
    let src = owner.fork();
    let mut c = (*src.cred()).clone();
    c.caps = 0;
    c.set_label(Some("src".into()));
    src.set_cred(c);
    src.keyctl_update(key, b"x").unwrap();
    assert_eq!(read_all(&a, fa).len(), 1, "a's delivery is unaffected");
    assert!(read_all(&b, fb).is_empty(), "src may not write to b");
    assert_eq!(b.queue_stats(fb).unwrap().denied, 1);
    assert_eq!(a.queue_stats(fa).unwrap().denied, 0);
    let rec = k.audit().records().pop().unwrap();
    assert_eq!(rec.hook, Hook::PostNotification);
    assert!(
        rec.subject.contains("label=src") && rec.object.contains("label=b"),
        "{rec:?}"
    );
    assert_eq!(rec.errno, Errno::EACCES);
}

#[test]
fn policy_files_load_and_report_bad_lines() {
    let ok = "# a stack\n[smack]\na b rw\n\n[selinux]\nallow t u:key { view read };\n[landlock]\n";
    assert_eq!(parse_policy(ok).unwrap().name(), "smack+selinux+landlock");
    assert_eq!(parse_policy("[permissive]\n").unwrap().name(), "permissive");
    for (text, line, needle) in [
        ("a b r\n", 1, "before any [section]"),
        ("[smack]\na b\n", 2, "subject object access"),
        ("[smack]\na b q\n", 2, "bad Smack rule"),
        ("[apparmor]\n", 1, "unknown policy"),
        ("[selinux]\nallow t u key;\n", 2, "type:class"),
        ("[selinux]\nallow t u:key { view ;\n", 2, "missing `}`"),
        ("[landlock]\nrule\n", 2, "takes no rules"),
        ("# nothing\n", 1, "no [section]"),
    ] {
        let e = parse_policy(text).err().unwrap();
        assert_eq!(e.line, line, "{text:?}");
        assert!(e.msg.contains(needle), "{text:?}: {}", e.msg);
    }
    let k = Kernel::new(KernelConfig::default());
    assert!(k.load_policy("[smack]\nx\n").is_err());
    assert!(k.load_policy("[smack]\nx y r\n").is_ok());
    assert_eq!(k.policy().name(), "smack");
}

/// Swapping the policy while posting: every post sees one policy for all
/// its watches (all delivered or all denied), never a mix.
#[test]
fn policy_swap_while_posting_is_never_torn() {
    use watchq_tests::DenyAll;
    let k = Kernel::new(KernelConfig::default());
    let p = k.spawn(0, 0);
    p.keyctl_join_session_keyring(None).unwrap();
    let key = p
        .add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    for tag in 0..8 {
        let [r, _w] = p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
        p.set_queue_size(r, 512).unwrap();
        p.keyctl_watch_key(key, r, tag).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (k, stop) = (k.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut flip = false;
            while !stop.load(Ordering::Relaxed) {
                k.set_policy(if flip {
                    Arc::new(DenyAll::default())
                } else {
                    Arc::new(Permissive)
                });
                flip = !flip;
            }
        })
    };
    assert_eq!(k.keys().info(key).unwrap().watches, 8);
    let (mut delivered_posts, mut denied_posts) = (0, 0);
    // At least 2000 posts, and on until both policies were seen (a loaded
    // machine can deschedule the swapper for a whole batch of posts).
    let mut posts = 0;
    while posts < 2000 || delivered_posts == 0 || denied_posts == 0 {
        assert!(posts < 10_000_000, "the swapper never ran");
        if posts >= 2000 {
            std::thread::yield_now();
        }
        posts += 1;
        p.keyctl_update(key, b"x").unwrap();
        let now: Vec<(u64, u64)> = (3..11)
            .map(|fd| p.queue_stats(fd).map(|s| (s.posted, s.denied)).unwrap())
            .collect();
        // One post, one policy: every queue counted it the same way.
        assert!(now.iter().all(|&x| x == now[0]), "torn post: {now:?}");
        if now[0].1 > denied_posts {
            denied_posts = now[0].1;
        } else {
            delivered_posts += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    // (Denials depend on timing; counted by the queues and the audit log alike.)
    assert_eq!(k.audit().total(), 8 * denied_posts);
}

#[test]
fn every_hook_of_smack_and_landlock() {
    // Smack: mount and superblock watches need read on the object's label;
    // device watches are not ruled on.
    let mut sm = Smack::new();
    sm.add_rule("w", "fs", "r").unwrap();
    let k = kernel(Arc::new(sm));
    let w = user(&k, 0, "w");
    let mut c = (*w.cred()).clone();
    c.caps = 0;
    c.set_label(Some("w".into()));
    w.set_cred(c);
    let fd = queue(&w);
    let ns = w.mount_ns();
    ns.mkdir("/mnt/s").unwrap();
    ns.mount("ext4", "/mnt/s", false, &*k.policy()).unwrap();
    ns.set_sb_label("/mnt/s", Some("secret".into())).unwrap();
    assert_eq!(w.watch_sb(AT_FDCWD, "/mnt/s", 0, fd, 1), Err(Errno::EACCES));
    ns.set_sb_label("/mnt/s", Some("fs".into())).unwrap();
    assert_eq!(w.watch_sb(AT_FDCWD, "/mnt/s", 0, fd, 1), Ok(()));
    assert_eq!(
        w.watch_mount(AT_FDCWD, "/mnt/s", 0, fd, 2),
        Ok(()),
        "mounts are unlabelled"
    );
    assert_eq!(w.watch_devices(fd, 3, 0), Ok(()));

    // Landlock: each hook can be denied by its rule.
    let k = kernel(Arc::new(Landlock));
    let p = user(&k, 1000, "x");
    let key = p
        .add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    // One restriction first so the process owns a domain node; rules added
    // to it later bind watches set in between (the watch keeps the cred).
    p.landlock_restrict(LandlockRule::DenyHook(Hook::WatchMount), Inheritance::Live);
    let fd = queue(&p);
    p.keyctl_watch_key(key, fd, 1).unwrap();
    for hook in [
        Hook::WatchKey,
        Hook::WatchSb,
        Hook::WatchDevices,
        Hook::PostNotification,
    ] {
        p.landlock_restrict(LandlockRule::DenyHook(hook), Inheritance::Live);
    }
    let fd2 = queue(&p);
    assert_eq!(p.keyctl_watch_key(key, fd2, 1), Err(Errno::EPERM));
    assert_eq!(p.watch_sb(AT_FDCWD, "/", 0, fd2, 1), Err(Errno::EPERM));
    assert_eq!(p.watch_mount(AT_FDCWD, "/", 0, fd2, 1), Err(Errno::EPERM));
    assert_eq!(p.watch_devices(fd2, 1, 0), Err(Errno::EPERM));
    // The watch set before the restriction no longer gets records.
    p.keyctl_update(key, b"y").unwrap();
    assert!(read_all(&p, fd).is_empty());
    assert_eq!(p.queue_stats(fd).unwrap().denied, 1);
    // Removal records still arrive (META is never ruled on).
    p.keyctl_watch_key(key, fd, -1).unwrap();
    assert!(read_all(&p, fd)[0].is_meta());
}

/// The post path remembers a Smack allow on the watch (by the policy's
/// generation and the source's label), and the memory never outlives what
/// it stood for: a source of another label, a source whose allow came from
/// CAP_MAC_OVERRIDE and not its label, a changed rule set and a new policy
/// are each asked again, and a denial is still audited.
#[test]
fn policy_post_verdict_cache_follows_label_caps_and_policy() {
    let k = kernel(parse_policy("[smack]\nsrc w w\n").unwrap());
    let owner = k.spawn(0, 0);
    let key = owner
        .add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    let w = owner.fork();
    w.set_label(Some("w"));
    let fd = queue(&w);
    w.keyctl_watch_key(key, fd, 1).unwrap();
    let as_source = |label: &str, caps: u64| {
        let p = owner.fork();
        let mut c = (*p.cred()).clone();
        c.caps = caps;
        c.set_label(Some(label.into()));
        p.set_cred(c);
        p
    };
    let (src, other) = (as_source("src", 0), as_source("other", 0));
    let privileged_other = as_source("other", 1 << caps::CAP_MAC_OVERRIDE);
    let got = |p: &Process, n: usize| {
        p.keyctl_update(key, b"x").unwrap();
        assert_eq!(read_all(&w, fd).len(), n, "{:?}", p.cred().label());
    };
    got(&src, 1);
    got(&src, 1); // from the watch's memory
    got(&other, 0);
    got(&privileged_other, 1); // allowed by the capability, not remembered
    got(&other, 0);
    got(&src, 1);
    assert_eq!(w.queue_stats(fd).unwrap().denied, 2);
    assert_eq!(
        k.audit()
            .records()
            .iter()
            .filter(|r| r.hook == Hook::PostNotification)
            .count(),
        2,
        "every denial is audited"
    );
    // A new policy without the rule: the remembered allow is not its.
    k.set_policy(parse_policy("[smack]\nsrc x w\n").unwrap());
    got(&src, 0);
    // A Smack whose rules changed after a clone: a new generation too.
    let mut s = Smack::new();
    s.add_rule("src", "w", "w").unwrap();
    let before = s.clone();
    k.set_policy(Arc::new(before));
    got(&src, 1);
    s.add_rule("src", "w", "r").unwrap();
    k.set_policy(Arc::new(s));
    got(&src, 0);
}

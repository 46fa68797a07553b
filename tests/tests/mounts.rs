//! Mount and superblock notifications: every action and subtype, byte for
//! byte in both generations, subtree semantics, removal on unmount and
//! superblock deactivation, and resynchronisation after a loss.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use watchq_core::ring::mmap::Consumer;
use watchq_core::uapi::{self, v2};
use watchq_core::{Errno, Notification};
use watchq_kernel::prelude::*;
use watchq_kernel::process_consts::AT_FDCWD;
use watchq_kernel::{Kernel, KernelConfig, Process};
use watchq_sources::mount::{sb_subtype, subtype, MountInfo, AT_EMPTY_PATH, ROOT_MOUNT};

fn setup(notes: u64) -> (Arc<Kernel>, Arc<Process>, i32) {
    let k = Kernel::new(KernelConfig::default());
    let p = k.spawn(1000, 1000);
    let [r, _w] = p
        .pipe2(uapi::O_NOTIFICATION_PIPE | uapi::O_NONBLOCK)
        .unwrap();
    p.set_queue_size(r, notes).unwrap();
    (k, p, r)
}

fn records(p: &Process, fd: i32) -> Vec<Notification> {
    let mut out = Vec::new();
    let mut b = vec![0u8; 8192];
    while let Ok(n) = p.read(fd, &mut b) {
        if n == 0 {
            break;
        }
        out.extend(Notification::decode_all(&b[..n]).unwrap());
    }
    out
}

fn mount_rec(st: u8, on: u64, aux: u64, flags: u32, tag: u8) -> Vec<u8> {
    let mut n = Notification::mount(st, on, aux, flags);
    n.set_info_id(u32::from(tag) << 8);
    n.as_bytes().to_vec()
}

#[test]
fn mounts_every_subtype_exact_bytes() {
    let (k, p, fd) = setup(4);
    let ns = p.mount_ns().clone();
    let pol = k.policy();
    for d in ["/mnt/a", "/mnt/b", "/mnt/a/x"] {
        ns.mkdir(d).unwrap();
    }
    p.watch_mount(AT_FDCWD, "/mnt", 0, fd, 7).unwrap();
    // The same watch from a 2019 queue gets the 2019 encoding of each.
    let dfd = p.open("/dev/watch_queue", uapi::O_RDWR).unwrap();
    p.ioctl(dfd, v2::IOC_WATCH_QUEUE_SET_SIZE, 1, None).unwrap();
    p.watch_mount(AT_FDCWD, "/mnt", 0, dfd, 7).unwrap();
    let a = ns.mount("tmpfs", "/mnt/a", false, &*pol).unwrap();
    assert_eq!(a, 2);
    // The watch is on the root mount (what /mnt is on): NEW_MOUNT on it.
    let b = ns.bind("/mnt/a", "/mnt/b", &*pol).unwrap();
    assert_eq!(
        ns.info(a).unwrap().sb,
        ns.info(b).unwrap().sb,
        "bind mounts share the superblock"
    );
    ns.remount("/mnt/a", true, &*pol).unwrap();
    ns.setattr("/mnt/a", 0x10, &*pol).unwrap();
    ns.move_mount("/mnt/b", "/mnt/a/x", &*pol).unwrap();
    ns.expire("/mnt/a/x", &*pol).unwrap();
    ns.unmount("/mnt/a", false, &*pol).unwrap();
    let got: Vec<Vec<u8>> = records(&p, fd)
        .iter()
        .map(|n| n.as_bytes().to_vec())
        .collect();
    let sub = watchq_sources::mount::MOUNT_IN_SUBTREE;
    let ro = watchq_sources::mount::MOUNT_IS_NOW_RO;
    assert_eq!(
        got,
        [
            mount_rec(subtype::NEW_MOUNT, ROOT_MOUNT, a, 0, 7),
            mount_rec(subtype::NEW_MOUNT, ROOT_MOUNT, b, 0, 7),
            mount_rec(subtype::READONLY, a, 0, ro | sub, 7),
            mount_rec(subtype::SETATTR, a, 0, sub, 7),
            mount_rec(subtype::MOVE_FROM, ROOT_MOUNT, b, 0, 7),
            mount_rec(subtype::MOVE_TO, a, b, sub, 7),
            mount_rec(subtype::EXPIRY, a, b, sub, 7),
            mount_rec(subtype::UNMOUNT, ROOT_MOUNT, a, 0, 7),
        ]
    );
    // The wire form of one: type 4, 24 bytes, tag 7, flags in 16..23.
    assert_eq!(&got[2][..8], &[4, 0, 0, 3, 24, 7, 3, 0]);
    let q = p.mmap_watch_queue(dfd, 4096, true, 0).unwrap();
    let mut c = Consumer::new(q.ring_2019().unwrap().storage().words()).unwrap();
    let v2_got: Vec<Vec<u8>> = std::iter::from_fn(|| c.pop().unwrap())
        .map(|r| r.bytes)
        .collect();
    let v2_want: Vec<Vec<u8>> = got
        .iter()
        .map(|b| Notification::decode(b).unwrap().to_v2().unwrap())
        .collect();
    assert_eq!(v2_got, v2_want);
    // 2019 form of READONLY-in-subtree: type 1, 16 bytes, 0x200 | FLAG_0, tag on top.
    assert_eq!(&v2_got[2][..8], &[1, 0, 0, 3, 0x10, 0x02, 0x01, 7]);
    assert_eq!(
        &v2_got[2][8..],
        &[[a as u32].map(u32::to_le_bytes)[0], [0u8; 4]].concat()[..]
    );
}

#[test]
fn mounts_subtree_semantics() {
    let (k, p, fd) = setup(4);
    let ns = p.mount_ns().clone();
    let pol = k.policy();
    for d in ["/mnt/a", "/mnt/a/b", "/mnt/x", "/mnt/y"] {
        ns.mkdir(d).unwrap();
    }
    let x = ns.mount("tmpfs", "/mnt/x", false, &*pol).unwrap();
    ns.mount("tmpfs", "/mnt/a", false, &*pol).unwrap();
    let [r2, _w2] = p
        .pipe2(uapi::O_NOTIFICATION_PIPE | uapi::O_NONBLOCK)
        .unwrap();
    p.set_queue_size(r2, 1).unwrap();
    p.watch_mount(AT_FDCWD, "/", 0, fd, 1).unwrap();
    p.watch_mount(AT_FDCWD, "/mnt/x", 0, r2, 2).unwrap();
    let deep = ns.mount("ext4", "/mnt/a/b", false, &*pol).unwrap();
    let got = records(&p, fd);
    assert_eq!(got.len(), 1);
    assert_ne!(
        got[0].info() & watchq_sources::mount::MOUNT_IN_SUBTREE,
        0,
        "{:?}",
        got[0]
    );
    assert_eq!(&got[0].payload()[8..16], &deep.to_le_bytes());
    ns.mount("tmpfs", "/mnt/y", false, &*pol).unwrap();
    assert!(
        records(&p, r2).is_empty(),
        "a watch on /mnt/x does not see /mnt/y"
    );
    ns.remount("/mnt/x", true, &*pol).unwrap();
    assert_eq!(records(&p, r2).len(), 1);
    assert_eq!(x, 2);
}

#[test]
fn mounts_watch_errors_and_removal_on_unmount() {
    let (k, p, fd) = setup(4);
    let ns = p.mount_ns().clone();
    let pol = k.policy();
    ns.mkdir("/mnt/a").unwrap();
    ns.touch("/mnt/file").unwrap();
    assert_eq!(
        p.watch_mount(AT_FDCWD, "/", 0x100, fd, 1),
        Err(Errno::EINVAL)
    );
    assert_eq!(p.watch_mount(AT_FDCWD, "/", 0, fd, 256), Err(Errno::EINVAL));
    assert_eq!(
        p.watch_mount(AT_FDCWD, "/nope", 0, fd, 1),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        p.watch_mount(AT_FDCWD, "/mnt/file", 0, fd, 1),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(
        p.watch_mount(AT_FDCWD, "/mnt/file/x", 0, fd, 1),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(p.watch_mount(AT_FDCWD, "", 0, fd, 1), Err(Errno::ENOENT));
    assert_eq!(p.watch_mount(99, "rel", 0, fd, 1), Err(Errno::EBADF));
    assert_eq!(p.watch_mount(AT_FDCWD, "/", 0, 99, 1), Err(Errno::EINVAL));
    let dir = p.open("/", uapi::O_RDONLY).unwrap();
    assert_eq!(p.watch_mount(dir, "", AT_EMPTY_PATH, fd, 1), Ok(()));
    assert_eq!(
        p.watch_mount(AT_FDCWD, "/mnt", 0, fd, 2),
        Err(Errno::EBUSY),
        "the same mount"
    );
    let a = ns.mount("tmpfs", "/mnt/a", false, &*pol).unwrap();
    records(&p, fd);
    p.watch_mount(AT_FDCWD, "/mnt/a", 0, fd, 5).unwrap();
    p.watch_sb(AT_FDCWD, "/mnt/a", 0, fd, 6).unwrap();
    assert_eq!(p.cred().user.nr_watches(), 3);
    assert_eq!(ns.unmount("/mnt/a", false, &*pol), Ok(()));
    let got = records(&p, fd);
    // UNMOUNT on the root, then the removal of the watch on the unmounted
    // mount and of the watch on its deactivated superblock.
    assert_eq!(got[0].subtype(), subtype::UNMOUNT);
    assert_eq!(got[1].as_bytes()[..8], [0, 0, 0, 0, 16, 5, 0, 0]);
    assert_eq!(got[1].removal_id(), Some(a));
    assert_eq!(got[2].as_bytes()[5], 6);
    assert_eq!(
        p.cred().user.nr_watches(),
        1,
        "the per-user count went back down"
    );
    assert_eq!(ns.unmount("/mnt/a", false, &*pol), Err(Errno::EINVAL));
    assert_eq!(ns.unmount("/", false, &*pol), Err(Errno::EINVAL));
    // EBUSY with children unless lazy.
    ns.mount("tmpfs", "/mnt/a", false, &*pol).unwrap();
    ns.mkdir("/mnt/a/in").unwrap();
    ns.mount("tmpfs", "/mnt/a/in", false, &*pol).unwrap();
    assert_eq!(ns.unmount("/mnt/a", false, &*pol), Err(Errno::EBUSY));
    assert_eq!(ns.unmount("/mnt/a", true, &*pol), Ok(()));
    assert_eq!(ns.mounts().len(), 1);
}

#[test]
fn superblock_events_exact_bytes_and_2019_encoding() {
    let (k, p, fd) = setup(4);
    let ns = p.mount_ns().clone();
    let pol = k.policy();
    ns.mkdir("/mnt/db").unwrap();
    ns.mount("xfs", "/mnt/db", false, &*pol).unwrap();
    let sb = ns.sb_of("/mnt/db").unwrap();
    p.watch_sb(AT_FDCWD, "/mnt/db", 0, fd, 9).unwrap();
    ns.sb_event("/mnt/db", sb_subtype::ERROR, 5, 0xfeed, &*pol)
        .unwrap();
    ns.sb_event("/mnt/db", sb_subtype::READONLY, 1, 0, &*pol)
        .unwrap();
    ns.sb_event("/mnt/db", sb_subtype::EDQUOT, 0, 0, &*pol)
        .unwrap();
    ns.sb_event("/mnt/db", sb_subtype::NETWORK, 0, 0, &*pol)
        .unwrap();
    assert_eq!(ns.sb_event("/mnt/db", 9, 0, 0, &*pol), Err(Errno::EINVAL));
    let got = records(&p, fd);
    let sbb = sb.to_le_bytes();
    assert_eq!(
        got[0].as_bytes(),
        [
            &[5, 0, 0, 1, 24, 9, 0, 0][..],
            &sbb,
            &5u32.to_le_bytes(),
            &0xfeedu32.to_le_bytes()
        ]
        .concat()
    );
    assert_eq!(
        got[1].as_bytes(),
        [&[5, 0, 0, 0, 16, 9, 1, 0][..], &sbb].concat()
    );
    assert_eq!(got[2].subtype(), sb_subtype::EDQUOT);
    assert_eq!(got[3].subtype(), sb_subtype::NETWORK);
    // The 2019 generation: SB is type 2, mount type 1 with 32-bit ids,
    // IN_SUBTREE at 0x200 and "now read-only" at FLAG_0.
    let dfd = p.open("/dev/watch_queue", uapi::O_RDWR).unwrap();
    p.ioctl(dfd, v2::IOC_WATCH_QUEUE_SET_SIZE, 1, None).unwrap();
    p.watch_sb(AT_FDCWD, "/mnt/db", 0, dfd, 3).unwrap();
    p.watch_mount(AT_FDCWD, "/", 0, dfd, 4).unwrap();
    ns.sb_event("/mnt/db", sb_subtype::READONLY, 1, 0, &*pol)
        .unwrap();
    ns.remount("/mnt/db", true, &*pol).unwrap();
    let q = p.mmap_watch_queue(dfd, 4096, true, 0).unwrap();
    let mut c = Consumer::new(q.ring_2019().unwrap().storage().words()).unwrap();
    let s = c.pop().unwrap().unwrap();
    assert_eq!(s.bytes, [&[2, 0, 0, 0, 16, 0, 1, 3][..], &sbb].concat());
    let m = c.pop().unwrap().unwrap();
    let id = ns.resolve("/mnt/db").unwrap() as u32;
    assert_eq!(
        m.bytes,
        [
            &[1, 0, 0, 3][..],
            &(16u32 | 0x200 | 0x10000 | 4 << 24).to_le_bytes(),
            &id.to_le_bytes(),
            &[0; 4]
        ]
        .concat()
    );
}

/// What a consumer knows about the tree: mount id → (parent, ro, attrs).
type View = BTreeMap<u64, (Option<u64>, bool, u64)>;

fn truth(ns: &watchq_sources::mount::MountNamespace) -> View {
    ns.mounts()
        .into_iter()
        .map(|m: MountInfo| (m.id, (m.parent, m.readonly, m.attrs)))
        .collect()
}

/// A consumer that re-reads the mounts each record names, and after a loss
/// record compares the subtree's change counters with what it knew.
struct Watcher {
    view: View,
    counters: BTreeMap<u64, u64>,
    resyncs: usize,
}

impl Watcher {
    fn refresh(&mut self, ns: &watchq_sources::mount::MountNamespace, id: u64) {
        match ns.info(id) {
            Some(m) => {
                self.view.insert(id, (m.parent, m.readonly, m.attrs));
                self.counters.insert(id, m.changes);
            }
            None => {
                self.view.remove(&id);
                self.counters.remove(&id);
            }
        }
    }

    fn consume(&mut self, ns: &watchq_sources::mount::MountNamespace, recs: &[Notification]) {
        for r in recs {
            if r.is_meta() && r.subtype() == uapi::WATCH_META_LOSS_NOTIFICATION {
                self.resyncs += 1;
                let snap: BTreeMap<u64, u64> =
                    ns.snapshot(ROOT_MOUNT).unwrap().into_iter().collect();
                let known: Vec<u64> = self.counters.keys().copied().collect();
                for id in known {
                    if !snap.contains_key(&id) {
                        self.refresh(ns, id);
                    }
                }
                for (id, c) in snap {
                    if self.counters.get(&id) != Some(&c) {
                        self.refresh(ns, id);
                    }
                }
            } else if r.type_() == uapi::WATCH_TYPE_MOUNT_NOTIFY {
                let p = r.payload();
                for id in [
                    u64::from_le_bytes(p[..8].try_into().unwrap()),
                    u64::from_le_bytes(p[8..16].try_into().unwrap()),
                ] {
                    if id != 0 {
                        self.refresh(ns, id);
                    }
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Act {
    Mount(usize, bool),
    Umount(usize, bool),
    Remount(usize, bool),
    SetAttr(usize, u64),
    Move(usize, usize),
}

/// Runs `acts` with a lossless and a lossy consumer; returns (truth,
/// lossless view, lossy view, lossy resyncs).
fn run_resync(acts: &[Act]) -> (View, View, View, usize) {
    let (k, p, small) = setup(1);
    let ns = p.mount_ns().clone();
    let pol = k.policy();
    let dirs = ["/mnt/0", "/mnt/1", "/mnt/2", "/tmp/3", "/tmp/4", "/mnt/0/5"];
    for d in dirs {
        ns.mkdir(d).unwrap();
    }
    let [big, _w] = p
        .pipe2(uapi::O_NOTIFICATION_PIPE | uapi::O_NONBLOCK)
        .unwrap();
    p.set_queue_size(big, 512).unwrap();
    p.watch_mount(AT_FDCWD, "/", 0, small, 1).unwrap();
    p.watch_mount(AT_FDCWD, "/", 0, big, 1).unwrap();
    let start = truth(&ns);
    let mk = || Watcher {
        view: start.clone(),
        counters: ns.snapshot(ROOT_MOUNT).unwrap().into_iter().collect(),
        resyncs: 0,
    };
    let (mut lossy, mut full) = (mk(), mk());
    for (i, a) in acts.iter().enumerate() {
        let _ = match a {
            Act::Mount(d, ro) => ns.mount("tmpfs", dirs[*d], *ro, &*pol).map(drop),
            Act::Umount(d, lazy) => ns.unmount(dirs[*d], *lazy, &*pol),
            Act::Remount(d, ro) => ns.remount(dirs[*d], *ro, &*pol),
            Act::SetAttr(d, at) => ns.setattr(dirs[*d], *at, &*pol),
            Act::Move(x, y) => ns.move_mount(dirs[*x], dirs[*y], &*pol),
        };
        // The lossless consumer keeps up; the lossy one reads rarely.
        full.consume(&ns, &records(&p, big));
        if i % 40 == 39 {
            lossy.consume(&ns, &records(&p, small));
        }
    }
    full.consume(&ns, &records(&p, big));
    lossy.consume(&ns, &records(&p, small));
    (truth(&ns), full.view, lossy.view, lossy.resyncs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A consumer whose queue overflows and resynchronises from the change
    /// counters ends with the same view of the tree as one that lost nothing.
    #[test]
    fn mounts_resync_after_loss_matches_a_lossless_consumer(acts in proptest::collection::vec(prop_oneof![
        (0..6usize, any::<bool>()).prop_map(|(d, ro)| Act::Mount(d, ro)),
        (0..6usize, any::<bool>()).prop_map(|(d, l)| Act::Umount(d, l)),
        (0..6usize, any::<bool>()).prop_map(|(d, ro)| Act::Remount(d, ro)),
        (0..6usize, 0..4u64).prop_map(|(d, a)| Act::SetAttr(d, a)),
        (0..6usize, 0..6usize).prop_map(|(a, b)| Act::Move(a, b)),
    ], 1..120)) {
        let (t, full, lossy, _) = run_resync(&acts);
        prop_assert_eq!(&full, &t);
        prop_assert_eq!(&lossy, &t);
    }
}

#[test]
fn mounts_resync_after_a_certain_loss() {
    let mut acts = vec![
        Act::Mount(0, false),
        Act::Mount(5, false),
        Act::Mount(3, true),
    ];
    acts.extend((0..100).map(|i| Act::SetAttr(i % 3, i as u64)));
    acts.push(Act::Umount(0, true));
    acts.push(Act::Move(3, 1));
    let (t, full, lossy, resyncs) = run_resync(&acts);
    assert!(resyncs > 0, "the tiny queue overflowed");
    assert_eq!(full, t);
    assert_eq!(lossy, t);
}

#[test]
fn mounts_namespaces_are_shared_on_fork_and_separate_otherwise() {
    let (k, p, fd) = setup(4);
    let child = p.fork();
    assert!(
        Arc::ptr_eq(&p.mount_ns(), &child.mount_ns()),
        "fork shares the namespace"
    );
    p.watch_mount(AT_FDCWD, "/", 0, fd, 1).unwrap();
    // A process in a namespace of its own: its mounts are not seen.
    let other = k.spawn(0, 0);
    let ns2 = other.new_mount_ns();
    assert!(!Arc::ptr_eq(&ns2, &p.mount_ns()));
    ns2.mount("tmpfs", "/mnt", false, &*k.policy()).unwrap();
    assert!(records(&p, fd).is_empty());
    // The forked child's mounts are.
    child
        .mount_ns()
        .mount("tmpfs", "/tmp", false, &*k.policy())
        .unwrap();
    assert_eq!(records(&p, fd).len(), 1);
}

/// Bad arguments refused alike by watch_mount and watch_sb (flags beyond
/// AT_NO_AUTOMOUNT|AT_EMPTY_PATH, tag out of −1..255, path lookup errors,
/// bad dfd, a queue fd that is no notification pipe), with nothing
/// watched afterwards.
#[test]
fn mount_and_superblock_watch_bad_arguments() {
    let (_k, p, fd) = setup(4);
    let ns = p.mount_ns().clone();
    ns.touch("/file").unwrap();
    let [or, _ow] = p.pipe().unwrap();
    type Call = fn(&Process, i32, &str, u32, i32, i32) -> watchq_core::Result<()>;
    let calls: [(&str, Call); 2] = [
        ("watch_mount", |p, d, s, f, q, t| {
            p.watch_mount(d, s, f, q, t)
        }),
        ("watch_sb", |p, d, s, f, q, t| p.watch_sb(d, s, f, q, t)),
    ];
    for (name, call) in calls {
        for (dfd, path, flags, qfd, tag, want) in [
            (AT_FDCWD, "/", 0x100, fd, 1, Errno::EINVAL),
            (
                AT_FDCWD,
                "/",
                AT_EMPTY_PATH | 0x8000_0000,
                fd,
                1,
                Errno::EINVAL,
            ),
            (AT_FDCWD, "/", 0, fd, 256, Errno::EINVAL),
            (AT_FDCWD, "/", 0, fd, -2, Errno::EINVAL),
            (AT_FDCWD, "/nope", 0, fd, 1, Errno::ENOENT),
            (AT_FDCWD, "/file", 0, fd, 1, Errno::ENOTDIR),
            (AT_FDCWD, "", 0, fd, 1, Errno::ENOENT),
            (99, "rel", 0, fd, 1, Errno::EBADF),
            (AT_FDCWD, "/", 0, 99, 1, Errno::EINVAL),
            (AT_FDCWD, "/", 0, or, 1, Errno::EINVAL),
            (AT_FDCWD, "/", 0, fd, -1, Errno::EBADSLT),
        ] {
            assert_eq!(
                call(&p, dfd, path, flags, qfd, tag),
                Err(want),
                "{name}({dfd}, {path:?}, {flags:#x}, {qfd}, {tag})"
            );
        }
    }
    assert_eq!(p.cred().user.nr_watches(), 0);
}

//! Loss records, removal records, filters and watch rules (spec §1.8–§1.10,
//! §1.12, §6; oracle FINDINGS §B, §C and §D), byte for byte.

use watchq_core::uapi::*;
use watchq_core::{Errno, Notification};
use watchq_kernel::prelude::*;
use watchq_kernel::PollFd;
use watchq_tests::{entry, key_record, DenyAll, Fixture, LOSS, OBJ};

const UPD: u8 = NOTIFY_KEY_UPDATED;

fn records(n: usize, subtype: u8) -> Vec<u8> {
    (0..n).flat_map(|_| key_record(subtype, 0)).collect()
}

#[test]
fn spec_byte_example_key_update() {
    let f = Fixture::new(Some(1));
    f.post(UPD, 0);
    assert_eq!(
        f.read(16).unwrap(),
        [0x01, 0, 0, 0x01, 0x10, 0x01, 0, 0, 0xcd, 0xab, 0x34, 0x12, 0, 0, 0, 0]
    );
}

#[test]
fn overflow_40_events_then_loss_on_next_read() {
    let f = Fixture::new(Some(1));
    for _ in 0..40 {
        f.post(UPD, 0);
    }
    assert_eq!(f.proc_.fionread(f.rfd), Ok(512));
    let mut fds = [
        PollFd::new(f.rfd, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM),
        PollFd::new(f.wfd, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM),
    ];
    f.proc_.poll(&mut fds, 0).unwrap();
    assert_eq!((fds[0].revents, fds[1].revents), (0x41, 0));
    assert_eq!(f.read(4096).unwrap(), records(32, UPD));
    assert_eq!(f.read(4096).unwrap(), LOSS);
    assert_eq!(f.read(4096), Err(Errno::EAGAIN));
    let s = f.proc_.queue_stats(f.rfd).unwrap();
    assert_eq!((s.posted, s.read, s.lost, s.loss_records), (40, 32, 8, 1));
}

#[test]
fn loss_after_last_record_comes_on_the_next_read() {
    let f = Fixture::new(Some(1));
    for _ in 0..40 {
        f.post(UPD, 0);
    }
    for _ in 0..31 {
        assert_eq!(f.read(16).unwrap().len(), 16);
    }
    assert_eq!(f.read(24).unwrap().len(), 16);
    assert_eq!(f.read(24).unwrap(), LOSS);
    assert_eq!(f.read(24), Err(Errno::EAGAIN));
}

#[test]
fn loss_mid_stream_sits_right_after_the_record_before_it() {
    // D3: 40 events (32 queued, 8 dropped), read one, one more event.
    let f = Fixture::new(Some(1));
    for _ in 0..40 {
        f.post(UPD, 0);
    }
    f.read(16).unwrap();
    f.post(NOTIFY_KEY_REVOKED, 0);
    let got = f.read(4096).unwrap();
    assert_eq!(got.len(), 520);
    assert_eq!(&got[..496], &records(31, UPD)[..]);
    assert_eq!(&got[496..504], &LOSS);
    assert_eq!(&got[504..], &key_record(NOTIFY_KEY_REVOKED, 0)[..]);
}

#[test]
fn two_overflow_episodes_give_two_loss_records() {
    // D5
    let f = Fixture::new(Some(1));
    for _ in 0..40 {
        f.post(UPD, 0);
    }
    f.read(16).unwrap();
    f.post(UPD, 0); // fills the ring again
    f.post(UPD, 0); // lost: second episode, marked on the newest record
    let got = f.read(4096).unwrap();
    assert_eq!(got.len(), 520);
    assert_eq!(&got[496..504], &LOSS);
    assert_eq!(f.read(4096).unwrap(), LOSS);
    assert_eq!(f.read(4096), Err(Errno::EAGAIN));
}

#[test]
fn pending_loss_alone_is_not_readable_but_is_returned() {
    let f = Fixture::new(Some(1));
    for _ in 0..33 {
        f.post(UPD, 0);
    }
    f.read(4096).unwrap();
    assert_eq!(f.proc_.fionread(f.rfd), Ok(0));
    let mut fds = [PollFd::new(f.rfd, POLLIN | POLLRDNORM)];
    assert_eq!(f.proc_.poll(&mut fds, 0), Ok(0));
    assert_eq!(f.read(4), Err(Errno::ENOBUFS));
    assert_eq!(f.read(7), Err(Errno::ENOBUFS));
    assert_eq!(f.read(0).unwrap(), Vec::<u8>::new());
    assert_eq!(f.read(8).unwrap(), LOSS);
    assert_eq!(f.read(8), Err(Errno::EAGAIN));
}

#[test]
fn a_pending_loss_is_returned_even_with_no_writer() {
    let f = Fixture::new(Some(1));
    for _ in 0..33 {
        f.post(UPD, 0);
    }
    f.read(4096).unwrap();
    f.proc_.close(f.wfd).unwrap();
    assert_eq!(f.read(64).unwrap(), LOSS);
    assert_eq!(f.read(64).unwrap(), Vec::<u8>::new());
}

#[test]
fn posts_before_set_size_vanish_silently() {
    let f = Fixture::new(None);
    for _ in 0..5 {
        f.post(UPD, 0);
    }
    assert_eq!(f.proc_.fionread(f.rfd), Ok(0));
    assert_eq!(f.read(4096), Err(Errno::EAGAIN));
    f.proc_.set_queue_size(f.rfd, 1).unwrap();
    f.post(UPD, 0);
    assert_eq!(f.read(4096).unwrap(), key_record(UPD, 0));
    assert_eq!(f.read(4096), Err(Errno::EAGAIN));
    let s = f.proc_.queue_stats(f.rfd).unwrap();
    assert_eq!((s.posted, s.lost, s.lost_unsized, s.read), (6, 5, 5, 1));
}

#[test]
fn removal_record_bytes_and_lost_removal() {
    let f = Fixture::new(Some(1));
    f.watch(f.rfd, 0, 3).unwrap();
    f.unwatch(f.rfd, OBJ).unwrap();
    let mut want = Notification::removal(OBJ);
    want.set_info_id(1 << 8);
    assert_eq!(
        want.as_bytes(),
        [0, 0, 0, 0, 0x10, 1, 0, 0, 0xcd, 0xab, 0x34, 0x12, 0, 0, 0, 0]
    );
    assert_eq!(f.read(4096).unwrap(), want.as_bytes());
    // Object id 0: the bare 8-byte header.
    f.unwatch(f.rfd, 0).unwrap();
    assert_eq!(f.read(4096).unwrap(), [0, 0, 0, 0, 8, 3, 0, 0]);
    assert_eq!(f.unwatch(f.rfd, OBJ), Err(Errno::EBADSLT));
    assert_eq!(f.unwatch(f.rfd, 0), Err(Errno::EBADSLT));

    // A removal into a full queue is lost like any record: 32 records, then LOSS.
    let g = Fixture::new(Some(1));
    for _ in 0..32 {
        g.post(UPD, 0);
    }
    assert_eq!(g.unwatch(g.rfd, OBJ), Ok(()));
    assert_eq!(g.read(4096).unwrap().len(), 512);
    assert_eq!(g.read(4096).unwrap(), LOSS);
}

#[test]
fn watch_rules_ebusy_eagain_ends_and_two_pipes() {
    let f = Fixture::new(Some(1));
    let p = &f.proc_;
    // One watch per {queue, object}, whatever the tag, through either end.
    assert_eq!(f.watch(f.rfd, OBJ, 1), Err(Errno::EBUSY));
    assert_eq!(f.watch(f.wfd, OBJ, 9), Err(Errno::EBUSY));
    // A second pipe gets its own copy with its own tag.
    let [r2, _w2] = p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
    p.set_queue_size(r2, 1).unwrap();
    f.watch(r2, OBJ, 8).unwrap();
    let s = f.post(UPD, 0);
    assert_eq!((s.matched, s.delivered), (2, 2));
    assert_eq!(f.read(64).unwrap()[5], 1);
    let mut b = [0u8; 64];
    assert_eq!(p.read(r2, &mut b), Ok(16));
    assert_eq!(b[5], 8);
    // Watches on another object id in the same list do not match.
    f.watch(f.rfd, 42, 4).unwrap();
    assert_eq!(f.post(UPD, 0).matched, 2);
    assert_eq!(f.read(64).unwrap(), key_record(UPD, 0));
    // Removing through the other end works and posts the removal record.
    f.unwatch(f.wfd, OBJ).unwrap();
    assert_eq!(f.read(64).unwrap()[..8], [0, 0, 0, 0, 0x10, 1, 0, 0]);
    // The per-user limit is the soft RLIMIT_NOFILE: 3 watches held now.
    assert_eq!(p.cred().user.nr_watches(), 2);
    p.set_rlimit_nofile(2, 1024).unwrap();
    assert_eq!(f.watch(f.rfd, 43, 1), Err(Errno::EAGAIN));
    p.set_rlimit_nofile(1024, 1024).unwrap();
    assert_eq!(f.watch(f.rfd, 43, 1), Ok(()));
    // A bad fd is EINVAL (get_watch_queue()).
    for fd in [-1, 9999, 0] {
        assert_eq!(f.watch(fd, 44, 1), Err(Errno::EINVAL));
    }
    let [or, _ow] = p.pipe().unwrap();
    assert_eq!(f.watch(or, 44, 1), Err(Errno::EINVAL));
}

#[test]
fn watches_are_newest_first() {
    let f = Fixture::new(Some(1));
    let p = &f.proc_;
    let [r2, _w2] = p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
    p.set_queue_size(r2, 1).unwrap();
    f.watch(r2, OBJ, 2).unwrap();
    let tags: Vec<u8> = f.list.snapshot().iter().map(|w| w.tag()).collect();
    assert_eq!(tags, [2, 1]);
}

/// A post's summary (`PostSummary`, what the sources count) names each
/// watch's outcome: filtered out by its queue, delivered, or lost to a
/// full ring; a watch's debug line names its object and tag, a list's its
/// count. (Found by mutation testing: `filtered` and `lost` could stay 0,
/// the debug lines be empty and `is_empty` say true.)
#[test]
fn post_summary_counts_each_watch_outcome() {
    let f = Fixture::new(Some(1));
    set_filter(&f, &[entry(WATCH_TYPE_KEY_NOTIFY, 1 << UPD, 0, 0)]).unwrap();
    let s = f.post(NOTIFY_KEY_LINKED, 0);
    assert_eq!((s.matched, s.filtered, s.delivered, s.lost), (1, 1, 0, 0));
    for _ in 0..32 {
        let s = f.post(UPD, 0);
        assert_eq!((s.matched, s.filtered, s.delivered, s.lost), (1, 0, 1, 0));
    }
    let s = f.post(UPD, 0);
    assert_eq!((s.matched, s.filtered, s.delivered, s.lost), (1, 0, 0, 1));
    let line = format!("{:?}", f.list.snapshot()[0]);
    assert!(
        line.contains(&format!("id: {OBJ}")) && line.contains("tag: 1"),
        "{line}"
    );
    assert_eq!(format!("{:?}", f.list), "WatchList { watchers: 1 }");
    assert!(!f.list.is_empty());
}

fn set_filter(f: &Fixture, entries: &[RawWatchNotificationTypeFilter]) -> Result<(), Errno> {
    f.proc_.set_queue_filter(f.rfd, Some(&filter_blob(entries)))
}

#[test]
fn filter_validation_order_and_failure_keeps_old_filter() {
    let f = Fixture::new(Some(1));
    let p = &f.proc_;
    let ok = entry(WATCH_TYPE_KEY_NOTIFY, 1 << UPD, 0, 0);
    // Short header or short entries: EFAULT; but a bad count is EINVAL first.
    assert_eq!(
        p.set_queue_filter(f.rfd, Some(&[1, 0, 0, 0])),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        p.set_queue_filter(f.rfd, Some(&filter_blob_raw(1, 0, &[]))),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        p.set_queue_filter(f.rfd, Some(&filter_blob_raw(0, 0, &[]))),
        Err(Errno::EINVAL)
    );
    for (nr, res) in [
        (0u32, 0u32),
        (17, 0),
        (0xffff_ffff, 0),
        (1, 1),
        (1, 0x8000_0000),
    ] {
        let blob = filter_blob_raw(nr, res, &[ok]);
        assert_eq!(
            p.set_queue_filter(f.rfd, Some(&blob)),
            Err(Errno::EINVAL),
            "{nr} {res:#x}"
        );
    }
    assert_eq!(set_filter(&f, &[ok; 16]), Ok(()));
    for (mask, filt) in [
        (0, 0x100),
        (0xff00, 0x10100),
        (0x7f, 0),
        (0x01, 0),
        (0x40, 0),
    ] {
        let bad = entry(WATCH_TYPE_KEY_NOTIFY, !0, mask, filt);
        assert_eq!(
            set_filter(&f, &[bad]),
            Err(Errno::EINVAL),
            "{mask:#x} {filt:#x}"
        );
        assert_eq!(set_filter(&f, &[ok, bad]), Err(Errno::EINVAL));
        // An unknown type with a bad entry is still EINVAL.
        assert_eq!(
            set_filter(&f, &[RawWatchNotificationTypeFilter { type_: 9, ..bad }]),
            Err(Errno::EINVAL)
        );
    }
    for mask in [0x80, 0xffff_ff80] {
        assert_eq!(set_filter(&f, &[entry(1, !0, mask, 0)]), Ok(()));
    }
    // The last good filter (UPDATED only) is still in force after failures.
    set_filter(&f, &[ok]).unwrap();
    assert_eq!(set_filter(&f, &[entry(1, 0, 0x7f, 0)]), Err(Errno::EINVAL));
    f.post(NOTIFY_KEY_LINKED, 0);
    f.post(UPD, 0);
    assert_eq!(f.read(4096).unwrap(), key_record(UPD, 0));
}

#[test]
fn filter_matching_rules() {
    let f = Fixture::new(Some(4));
    let drain = |f: &Fixture| -> Vec<u8> {
        f.read(8192)
            .map(|b| b.chunks(16).map(|r| r[3]).collect())
            .unwrap_or_default()
    };
    // LINKED|UNLINKED only.
    set_filter(&f, &[entry(1, 0x0c, 0, 0)]).unwrap();
    for st in [
        UPD,
        NOTIFY_KEY_SETATTR,
        NOTIFY_KEY_UNLINKED,
        NOTIFY_KEY_LINKED,
    ] {
        f.post(st, 0);
    }
    assert_eq!(drain(&f), [NOTIFY_KEY_UNLINKED, NOTIFY_KEY_LINKED]);
    // Tag filter: mask 0xff00 / filter 0x0200 rejects tag 1.
    set_filter(&f, &[entry(1, !0, 0xff00, 0x0200)]).unwrap();
    f.post(UPD, 0);
    assert_eq!(drain(&f), Vec::<u8>::new());
    // Flag bit 0x10000, info bit 0x80: nothing passes; mask 0xffff0000 filter 0: everything.
    for (m, v, n) in [
        (0x1_0000, 0x1_0000, 0),
        (0x80, 0x80, 0),
        (0xffff_0000, 0, 1),
    ] {
        set_filter(&f, &[entry(1, !0, m, v)]).unwrap();
        f.post(UPD, 0);
        assert_eq!(drain(&f).len(), n, "{m:#x}");
    }
    // Only subtype word 0 counts.
    let mut e = entry(1, 0, 0, 0);
    e.subtype_filter[1..].fill(!0);
    set_filter(&f, &[e]).unwrap();
    f.post(UPD, 0);
    assert_eq!(drain(&f).len(), 0);
    // Unknown types only: accepted, and every key record is dropped.
    for t in [2, 255, 256, 0xffff_ffff] {
        set_filter(&f, &[entry(t, !0, 0, 0)]).unwrap();
        f.post(UPD, 0);
        assert_eq!(drain(&f).len(), 0, "type {t}");
    }
    // META type 0 is accepted; META records bypass filters anyway.
    set_filter(&f, &[entry(0, !0, 0, 0)]).unwrap();
    f.unwatch(f.rfd, OBJ).unwrap();
    assert_eq!(f.read(64).unwrap()[..4], [0, 0, 0, 0]);
    // NULL removes the filter.
    f.watch(f.rfd, OBJ, 1).unwrap();
    f.proc_.set_queue_filter(f.rfd, None).unwrap();
    f.post(UPD, 0);
    assert_eq!(drain(&f), [UPD]);
    let s = f.proc_.queue_stats(f.rfd).unwrap();
    assert_eq!(s.posted + s.filtered, 4 + 1 + 3 + 1 + 4 + 1 + 1);
}

#[test]
fn filter_three_entries_example() {
    // (UPDATED, any tag) + (type 77) + (SETATTR, tag 2)
    let f = Fixture::new(Some(1));
    f.watch(f.rfd, 2, 2).unwrap();
    set_filter(
        &f,
        &[
            entry(1, 1 << UPD, 0, 0),
            entry(77, !0, 0, 0),
            entry(1, 1 << NOTIFY_KEY_SETATTR, 0xff00, 0x0200),
        ],
    )
    .unwrap();
    f.post(UPD, 0);
    f.post(NOTIFY_KEY_SETATTR, 0); // tag 1: dropped
    f.post(NOTIFY_KEY_UNLINKED, 0);
    let n = Notification::key(NOTIFY_KEY_SETATTR, 2, 0);
    watchq_core::post_watch_notification(
        Some(&f.list),
        &n,
        &f.proc_.cred(),
        2,
        &watchq_core::Permissive,
    );
    let got = f.read(4096).unwrap();
    let subs: Vec<(u8, u8)> = got.chunks(16).map(|r| (r[3], r[5])).collect();
    assert_eq!(subs, [(UPD, 1), (NOTIFY_KEY_SETATTR, 2)]);
}

#[test]
fn filter_applies_at_post_time_only() {
    let f = Fixture::new(Some(1));
    f.post(UPD, 0);
    set_filter(&f, &[entry(9, !0, 0, 0)]).unwrap();
    f.post(UPD, 0);
    assert_eq!(f.read(4096).unwrap(), key_record(UPD, 0));
}

#[test]
fn a_denying_policy_counts_and_never_sees_meta() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    let f = Fixture::new(Some(1));
    let pol = Arc::new(DenyAll::default());
    f.kernel.set_policy(pol.clone());
    let s = f.post(UPD, 0);
    assert_eq!((s.matched, s.denied, s.delivered), (1, 1, 0));
    f.unwatch(f.rfd, OBJ).unwrap();
    assert_eq!(
        f.read(64).unwrap().len(),
        16,
        "the removal record bypasses the policy"
    );
    assert_eq!(pol.asked.load(Ordering::Relaxed), 1);
    assert_eq!(pol.meta.load(Ordering::Relaxed), 0);
    assert_eq!(f.proc_.queue_stats(f.rfd).unwrap().denied, 1);
}

/// The walk of a watch list (`post_watch_notification`, the kernel's
/// `__post_watch_notification()`) puts each watch's tag in the record's
/// ID byte whatever was there (`n->info &= ~WATCH_INFO_ID`), and delivers
/// a META record without asking the policy (the hook is never called for
/// one: `smack_post_notification()` lets maintenance records through, and
/// the trait says so), while a key record is refused by the same policy.
#[test]
fn the_walk_retags_every_record_and_never_asks_the_policy_about_meta() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use watchq_core::{post_watch_notification, Cred, ReadMode, UserStruct, Watch, WatchList};
    use watchq_core::{Permissive, WatchQueue};
    let cred = Cred::new(1000, 1000, UserStruct::new(1000));
    let list = WatchList::new();
    let q = WatchQueue::new();
    q.set_size(32).unwrap();
    let w = Watch::new(&q, &list, 7, 5, Arc::new(cred.clone()));
    watchq_core::add_watch_to_object(&w, u64::MAX).unwrap();
    let mode = ReadMode {
        nonblock: true,
        deadline: None,
    };
    let mut buf = [0u8; 64];

    let deny = DenyAll::default();
    let meta = Notification::removal(7);
    let s = post_watch_notification(Some(&list), &meta, &cred, 7, &deny);
    assert_eq!((s.matched, s.delivered, s.denied), (1, 1, 0));
    assert_eq!(
        deny.asked.load(Ordering::Relaxed),
        0,
        "the hook saw a META record"
    );
    let s = post_watch_notification(Some(&list), &Notification::key(3, 7, 0), &cred, 7, &deny);
    assert_eq!((s.matched, s.delivered, s.denied), (1, 0, 1));
    assert_eq!(deny.asked.load(Ordering::Relaxed), 1);
    let n = q.read(&mut buf, mode, &|| true).unwrap();
    assert_eq!(Notification::decode(&buf[..n]).unwrap().tag(), 5);
    assert!(Notification::decode(&buf[..n]).unwrap().is_meta());

    // A record that comes with another tag in its ID byte leaves with
    // the watch's.
    let mut tagged = Notification::key(3, 7, 0);
    tagged.set_info_id(0xab << WATCH_INFO_ID__SHIFT);
    assert_eq!(tagged.tag(), 0xab);
    let s = post_watch_notification(Some(&list), &tagged, &cred, 7, &Permissive);
    assert_eq!(s.delivered, 1);
    let n = q.read(&mut buf, mode, &|| true).unwrap();
    let got = Notification::decode(&buf[..n]).unwrap();
    assert_eq!(got.tag(), 5);
    assert_eq!(got.key_fields(), tagged.key_fields());
    q.clear();
}

/// A policy whose answers are never to be remembered (generation 0, the
/// default) is asked about every record, even when it says its label
/// alone allows: the watch's verdict cache keeps nothing for it. And an
/// unwatched watch gives its user's watch count back once, at the unwatch
/// (`put_watch()`'s `atomic_dec(&watch->cred->user->nr_watches)`), not
/// again when the last reference to it goes.
#[test]
fn an_uncached_policy_is_asked_every_time_and_an_unwatched_watch_uncharges() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use watchq_core::{post_watch_notification, Cred, UserStruct, Watch, WatchList, WatchQueue};
    struct Counting(AtomicUsize);
    impl watchq_core::Policy for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn post_notification(
            &self,
            _: &Cred,
            _: &Cred,
            _: &Notification,
        ) -> watchq_core::lsm::Verdict {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn post_allowed_by_label(&self, _: &Cred, _: Option<&str>) -> bool {
            true
        }
    }
    let user = UserStruct::new(1000);
    let cred = Cred::new(1000, 1000, user.clone());
    let list = WatchList::new();
    let q = WatchQueue::new();
    q.set_size(32).unwrap();
    let w = Watch::new(&q, &list, 7, 1, Arc::new(cred.clone()));
    watchq_core::add_watch_to_object(&w, u64::MAX).unwrap();
    assert_eq!(user.nr_watches(), 1);
    let pol = Counting(AtomicUsize::new(0));
    for i in 1..=3 {
        let s = post_watch_notification(Some(&list), &Notification::key(3, 7, 0), &cred, 7, &pol);
        assert_eq!(s.delivered, 1);
        assert_eq!(
            pol.0.load(Ordering::Relaxed),
            i,
            "post {i} was not asked about"
        );
    }
    // Unwatched: the charge goes back at once, while `w` still holds it.
    watchq_core::remove_watch_from_object(&list, Some(&q), 7, false).unwrap();
    assert_eq!(user.nr_watches(), 0);
    drop(w);
    assert_eq!(user.nr_watches(), 0, "given back twice");
    q.clear();
}

/// A blocking reader first watches the ring for a moment, then sleeps; a
/// lone record posted while it sleeps wakes it at once, with exactly one
/// wake-up, and it reads that record.
#[test]
fn a_lone_record_wakes_a_sleeping_reader_once() {
    use watchq_core::{ReadMode, WatchQueue};
    let q = WatchQueue::new();
    q.set_size(32).unwrap();
    let reader = {
        let q = q.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mode = ReadMode {
                nonblock: false,
                deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(30)),
            };
            q.read(&mut buf, mode, &|| true).map(|n| buf[..n].to_vec())
        })
    };
    while q.rd_wait().sleepers() == 0 {
        std::thread::yield_now();
    }
    // Registered is not yet asleep: after its count the reader still pays
    // the registration's barrier (a membarrier(2) system call where the
    // producers' fence is a compiler fence) and re-checks the ring. Give it
    // the time to park, so the record comes while it sleeps.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let before = q.rd_wait().wakeups();
    let n = watchq_core::Notification::key(NOTIFY_KEY_UPDATED, 7, 0);
    q.post(&n);
    assert_eq!(reader.join().unwrap(), Ok(n.as_bytes().to_vec()));
    assert_eq!(q.rd_wait().wakeups() - before, 1);
    q.clear();
}

/// A mirrored queue (the shared kernel's read-ahead, `WatchQueue::
/// mirror_pass`): what it hands out is what `read()` returns, records and
/// loss records in order, but the records stay queued, so the queue's
/// room, FIONREAD and statistics are unchanged until its readers are done
/// (`mirror_release`).
#[test]
fn mirror_read_ahead_keeps_records_queued_until_released() {
    let q = watchq_core::WatchQueue::new();
    q.set_size(1).unwrap();
    let cap = q.capacity();
    let n = Notification::key(UPD, 7, 0);
    for _ in 0..cap + 1 {
        q.post(&n);
    }
    let mut got: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut emit = |r: &[u8], ring: bool| got.push((r.to_vec(), ring));
    assert_eq!(q.mirror_pass(&mut emit), cap);
    assert_eq!(got.len(), cap + 1, "the records, then the loss record");
    assert!(got[..cap].iter().all(|(r, ring)| *ring && r.len() == 16));
    assert_eq!(got[cap], (LOSS.to_vec(), false));
    // Nothing released: still full, still queued.
    assert_eq!(q.fionread(), cap * 16);
    q.post(&n);
    let st = q.stats();
    assert_eq!(
        (st.posted, st.lost, st.read, st.queued),
        (cap as u64 + 2, 2, 0, cap as u64)
    );
    got.clear();
    let mut emit = |r: &[u8], ring: bool| got.push((r.to_vec(), ring));
    assert_eq!(q.mirror_pass(&mut emit), 0, "nothing new: nothing again");
    assert!(got.is_empty());
    // Readers took 3: three places free, three records read.
    q.mirror_release(3, 0);
    for _ in 0..3 {
        q.post(&n);
    }
    q.post(&n);
    let mut emit = |r: &[u8], ring: bool| got.push((r.to_vec(), ring));
    assert_eq!(q.mirror_pass(&mut emit), 3);
    // The first loss was handed out already (it is not repeated before the
    // record that came after it); the new one follows the newest record.
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got[..3].iter().all(|(_, ring)| *ring));
    assert_eq!(got[3], (LOSS.to_vec(), false));
    q.mirror_release(cap, 2);
    let st = q.stats();
    assert_eq!(st.posted, st.read + st.lost + st.queued, "{st:?}");
    assert_eq!(
        (st.read, st.queued, st.loss_records),
        (cap as u64 + 3, 0, 2)
    );
}

/// `SET_SIZE` of a 2019 `/dev/watch_queue` queue (spec §2.1, §2.2): a
/// page count of 1..16 and a power of two, else EINVAL; once only (EBUSY,
/// before the count is checked); the ring is `pages × PAGE_SIZE / 8`
/// slots. (Found by mutation testing: the group's tests sized 2019 queues
/// with one page only.)
#[test]
fn a_2019_queue_is_sized_once_in_whole_power_of_two_pages() {
    use watchq_core::WatchQueue;
    for bad in [0u64, 3, 6, 12, 17, 32, 64, u64::MAX] {
        let q = WatchQueue::new_2019();
        assert_eq!(q.set_size(bad), Err(Errno::EINVAL), "{bad} pages");
        assert!(q.ring_2019().is_none() && q.nr_pages().is_none(), "{bad}");
    }
    for pages in [1u64, 2, 4, 8, 16] {
        let q = WatchQueue::new_2019();
        assert!(q.is_2019());
        assert_eq!(q.set_size(pages), Ok(()), "{pages} pages");
        let slots = q.ring_2019().expect("sized").slots() as u64;
        assert_eq!(slots, pages * PAGE_SIZE as u64 / 8, "{pages} pages");
        assert_eq!(q.nr_pages(), Some(pages as usize));
        for again in [pages, 1, 0, 3] {
            assert_eq!(q.set_size(again), Err(Errno::EBUSY), "{pages} {again}");
        }
        assert_eq!(q.ring_2019().unwrap().slots() as u64, slots);
    }
}

/// A 2019 queue's filter is the 2019 uapi's (spec §2.1, §2.2): the length
/// bits a mask may not name are 0x1f8 (so 0x1, OVERRUN, is allowed and
/// 0x8 or 0x100 is not, the other way round from a pipe's 0x7f), and it
/// matches the 2019 type ids (KEY is 3; 1 is MOUNT) and the tag in the top
/// byte of the 2019 info word. (Found by mutation testing.)
#[test]
fn a_2019_queue_filters_by_the_2019_ids_and_info_layout() {
    use watchq_core::uapi::v2;
    use watchq_core::WatchQueue;
    let q = WatchQueue::new_2019();
    q.set_size(1).unwrap();
    let pipe = WatchQueue::new();
    let set = |q: &WatchQueue, e| q.set_filter(Some(&filter_blob(&[e])));
    let key = v2::WATCH_TYPE_KEY_NOTIFY;
    for (mask, on_2019, on_pipe) in [
        (0x1, Ok(()), Err(Errno::EINVAL)),
        (0x8, Err(Errno::EINVAL), Err(Errno::EINVAL)),
        (0x100, Err(Errno::EINVAL), Ok(())),
        (0x200, Ok(()), Ok(())),
    ] {
        assert_eq!(set(&q, entry(key, !0, mask, 0)), on_2019, "{mask:#x}");
        assert_eq!(set(&pipe, entry(key, !0, mask, 0)), on_pipe, "{mask:#x}");
    }
    let tagged = |subtype, tag: u32| {
        let mut n = Notification::key(subtype, 7, 0);
        n.set_info_id(tag << WATCH_INFO_ID__SHIFT);
        n
    };
    let upd = tagged(UPD, 1);
    let setattr = tagged(NOTIFY_KEY_SETATTR, 1);
    // Type 3, UPDATED only.
    set(&q, entry(key, 1 << UPD, 0, 0)).unwrap();
    assert!(q.filter_allows(&upd));
    assert!(!q.filter_allows(&setattr));
    // The merged KEY id names MOUNT here: key records are dropped.
    set(&q, entry(WATCH_TYPE_KEY_NOTIFY, !0, 0, 0)).unwrap();
    assert!(!q.filter_allows(&upd));
    // The tag is matched in the 2019 ID bits, 0xff000000.
    set(
        &q,
        entry(key, !0, v2::WATCH_INFO_ID, 4 << v2::WATCH_INFO_ID__SHIFT),
    )
    .unwrap();
    assert!(q.filter_allows(&tagged(UPD, 4)));
    assert!(!q.filter_allows(&tagged(UPD, 1)));
    // Posted through the filter, the record that passed is in the ring.
    assert_eq!(q.post(&tagged(UPD, 4)), watchq_core::PostOutcome::Posted);
    let st = q.stats();
    assert_eq!((st.posted, st.lost, st.filtered), (1, 0, 3), "{st:?}");
    let ring = q.ring_2019().unwrap();
    let mut c = watchq_core::ring::mmap::Consumer::of(ring.storage()).unwrap();
    let got = c.pop().unwrap().expect("the record");
    assert_eq!((got.type_(), got.subtype(), got.tag()), (key, UPD, 4));
    assert!(c.pop().unwrap().is_none());
    q.set_filter(None).unwrap();
    assert!(q.filter_allows(&setattr));
}

/// A filter drops every record of a type it does not name, whatever the
/// type's number: the type bitmap covers types below 64, and a record of a
/// higher type (a 24-bit field) is rejected without being looked up in it.
#[test]
fn a_filter_drops_types_above_its_bitmap() {
    let q = watchq_core::WatchQueue::new();
    q.set_size(1).unwrap();
    q.set_filter(Some(&filter_blob(&[entry(1, !0, 0, 0)])))
        .unwrap();
    // 0xfffffe: the filter's word for a record is found by its type alone
    // (subtype 0, so a header word with its type's bits flipped would land
    // on type 1's word and pass).
    for (type_, subtype) in [
        (2u32, 1),
        (63, 1),
        (64, 1),
        (65, 1),
        (100, 1),
        (0x00ff_fffe, 0),
        (0x00ff_ffff, 1),
    ] {
        let n = Notification::new(type_, subtype, &[0; 8]).unwrap();
        assert!(!q.filter_allows(&n), "type {type_}");
    }
    assert!(q.filter_allows(&Notification::key(UPD, 7, 0)));
    q.set_filter(None).unwrap();
    assert!(q.filter_allows(&Notification::new(100, 1, &[0; 8]).unwrap()));
    assert_eq!(q.stats().filtered, 7);
}

/// A blocking read() on an empty queue sleeps until a record comes or the
/// last write end closes; the close wakes it (pipe_release() wakes the
/// readers' wait queue) and it returns 0 (end of file) at once, long
/// before its deadline (pipe_read(): no writers and nothing queued reads 0).
#[test]
fn a_sleeping_reader_sees_eof_when_the_last_writer_closes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use watchq_core::{ReadMode, WatchQueue};
    let q = WatchQueue::new();
    q.set_size(1).unwrap();
    let writers = Arc::new(AtomicBool::new(true));
    let bound = Duration::from_secs(10);
    let reader = {
        let (q, writers) = (q.clone(), writers.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mode = ReadMode {
                nonblock: false,
                deadline: Some(start + bound),
            };
            let got = q.read(&mut [0u8; 64], mode, &|| writers.load(Ordering::SeqCst));
            (got, start.elapsed())
        })
    };
    while q.rd_wait().sleepers() == 0 {
        std::thread::yield_now();
    }
    // The count goes up before the reader's last look at the condition:
    // give it time to be asleep, so that only the wake-up can end its wait.
    std::thread::sleep(Duration::from_millis(200));
    writers.store(false, Ordering::SeqCst);
    q.wake_readers();
    let (got, took) = reader.join().unwrap();
    assert_eq!(got, Ok(0));
    assert!(
        took < bound / 2,
        "woken by the close, not its deadline: {took:?}"
    );
    q.clear();
}

/// `SET_SIZE` failing with ENOMEM leaves the queue unsized, so a later
/// `SET_SIZE` may try again (kernel bugs #10 and #16 were this path); each
/// armed failure is used up by one attempt.
#[test]
fn set_size_enomem_leaves_the_queue_unsized_for_a_retry() {
    use watchq_core::{AllocFaults, WatchQueue};
    let faults = AllocFaults::new();
    let q = WatchQueue::with_alloc_faults(faults.clone());
    faults.fail_next(2);
    assert_eq!(faults.pending(), 2);
    for left in [1, 0] {
        assert_eq!(q.set_size(1), Err(Errno::ENOMEM));
        assert_eq!(faults.pending(), left);
        assert_eq!((q.capacity(), q.nr_pages()), (0, None));
    }
    assert_eq!(q.set_size(1), Ok(()));
    assert_eq!((q.capacity(), q.nr_pages()), (32, Some(1)));
    assert_eq!(faults.pending(), 0);
}

/// A queue's debug line names its capacity, its closed state and its
/// statistics.
#[test]
fn a_queue_debug_line_shows_capacity_closed_and_stats() {
    let q = watchq_core::WatchQueue::new();
    q.set_size(1).unwrap();
    q.post(&Notification::key(UPD, 7, 0));
    let line = format!("{q:?}");
    for part in [
        "WatchQueue",
        "capacity: 32",
        "closed: false",
        "posted: 1",
        "queued: 1",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
    q.clear();
    assert!(format!("{q:?}").contains("closed: true"));
}

/// A loss record that comes mid-read but does not fit what is left of
/// the buffer ends the read there (pipe_read(): the records read so far
/// are returned, ENOBUFS only when nothing was); the next read starts with
/// it. (Found by mutation testing: the room left was never short of the
/// 8 bytes while a record followed the loss.)
#[test]
fn a_loss_record_that_does_not_fit_ends_the_read_before_it() {
    // 40 events: 32 queued, the loss after the 32nd; read one; one more.
    let f = Fixture::new(Some(1));
    for _ in 0..40 {
        f.post(UPD, 0);
    }
    f.read(16).unwrap();
    f.post(NOTIFY_KEY_REVOKED, 0);
    for short in [1, 4, 7] {
        let got = f.read(31 * 16 + short).unwrap();
        assert_eq!(got, records(31, UPD), "{short} bytes past the records");
        // Nothing was taken past them: the loss record, then the record.
        let got = f.read(16).unwrap();
        assert_eq!(got, LOSS);
        assert_eq!(f.read(16).unwrap(), key_record(NOTIFY_KEY_REVOKED, 0));
        // The same history again for the next size.
        for _ in 0..40 {
            f.post(UPD, 0);
        }
        f.read(16).unwrap();
        f.post(NOTIFY_KEY_REVOKED, 0);
    }
}

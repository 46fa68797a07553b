//! loom models of queue-level races: SET_SIZE against a post (kernel bug
//! #13 in the spec's catalogue: a resize that did not exclude posters), and
//! watch add/remove against a post walking the watch list; and [`model`],
//! which every model in the crate runs through.

use crate::lsm::{Cred, Permissive};
use crate::post::post_watch_notification;
use crate::queue::{ReadMode, WatchQueue};
use crate::record::Notification;
use crate::sync::{thread, Arc};
use crate::watch::{add_watch_to_object, remove_watch_from_object, Watch, WatchList};

/// Runs `f` under `loom::model` and prints how many interleavings loom
/// explored (`loom: <test>: <n> interleavings` on stderr, shown with
/// `--nocapture`; scripts/loom-times.sh collects them): a model that
/// explores a handful is not testing much.
pub(crate) fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    /// Prints the count when the model ends, also by a panic (a model
    /// that is meant to fail says how far it got).
    struct Report(std::sync::Arc<AtomicUsize>);
    impl Drop for Report {
        fn drop(&mut self) {
            let name = std::thread::current().name().unwrap_or("?").to_string();
            // Relaxed: a counter read after the model, on this thread.
            let n = self.0.load(Ordering::Relaxed);
            eprintln!("loom: {name}: {n} interleavings");
        }
    }
    let report = Report(std::sync::Arc::new(AtomicUsize::new(0)));
    let count = report.0.clone();
    loom::model(move || {
        // Relaxed: as above.
        count.fetch_add(1, Ordering::Relaxed);
        f()
    });
}

fn read_all(q: &WatchQueue) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    let mode = ReadMode {
        nonblock: true,
        deadline: None,
    };
    while let Ok(n) = q.read(&mut buf, mode, &|| true) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// A post racing SET_SIZE either finds no ring (silently lost, as before
/// sizing) or the whole ring; it never touches a half-built one.
#[test]
fn loom_queue_set_size_races_post() {
    model(|| {
        let q = WatchQueue::new();
        let n = Notification::key(1, 0x1234, 0);
        let p = {
            let q = q.clone();
            thread::spawn(move || q.post(&n))
        };
        q.set_size(1).unwrap();
        let out = p.join().unwrap();
        let bytes = read_all(&q);
        let s = q.stats();
        assert_eq!(s.posted, 1);
        match out {
            crate::PostOutcome::Posted => assert_eq!(bytes, n.as_bytes()),
            crate::PostOutcome::Lost => {
                assert!(bytes.is_empty());
                assert_eq!(s.lost_unsized, 1);
            }
        }
    });
}

/// A reader outside the pipe mutex (poll's `occupancy`, `capacity`)
/// racing SET_SIZE finds no ring or the whole ring: since posts learn
/// "sized" from `RingCell::for_post`, this is the model that needs
/// `RingCell::get`'s Acquire.
#[test]
fn loom_queue_set_size_races_poll() {
    model(|| {
        let q = WatchQueue::new();
        let p = {
            let q = q.clone();
            thread::spawn(move || (q.occupancy(), q.capacity()))
        };
        q.set_size(1).unwrap();
        let (occupancy, capacity) = p.join().unwrap();
        assert_eq!(occupancy, 0);
        assert!(capacity == 0 || capacity == q.capacity(), "{capacity}");
    });
}

/// Removing a watch while an event is posted: the removal record arrives
/// exactly once, the event at most once (a post that took its snapshot of
/// the list before the removal may land after the removal record, as in the
/// kernel, whose RCU walk has the same window), and the watch's charge is
/// returned once the post lets go of it.
#[test]
fn loom_watch_remove_races_post() {
    model(|| {
        let q = WatchQueue::new();
        q.set_size(4).unwrap();
        let list = WatchList::new();
        let cred = Arc::new(Cred::root());
        let w = Watch::new(&q, &list, 7, 3, cred.clone());
        add_watch_to_object(&w, 16).unwrap();
        drop(w);
        let p = {
            let list = list.clone();
            thread::spawn(move || {
                let n = Notification::key(1, 7, 0);
                post_watch_notification(Some(&list), &n, &Cred::root(), 7, &Permissive)
            })
        };
        remove_watch_from_object(&list, Some(&q), 7, false).unwrap();
        let sum = p.join().unwrap();
        let recs = Notification::decode_all(&read_all(&q)).unwrap();
        assert_eq!(recs.iter().filter(|r| r.is_meta()).count(), 1);
        assert_eq!(recs.len(), 1 + sum.delivered as usize);
        assert_eq!(cred.user.nr_watches(), 0);
    });
}

/// Closing the queue while a record is posted to it: whichever wins, the
/// record is accounted for exactly once (read, lost, queued, discarded at
/// close, or refused after close) and nothing is readable after the close.
#[test]
fn loom_queue_close_races_post() {
    model(|| {
        let q = WatchQueue::new();
        q.set_size(1).unwrap();
        let p = {
            let q = q.clone();
            thread::spawn(move || q.post(&Notification::key(1, 0x1234, 0)))
        };
        q.clear();
        p.join().unwrap();
        let s = q.stats();
        assert_eq!(s.posted + s.after_close, 1, "{s:?}");
        assert_eq!(s.posted, s.read + s.lost + s.queued + s.discarded, "{s:?}");
        assert_eq!(s.queued, 0);
    });
}

/// Swapping the policy while an event is posted to two watches: the post
/// takes one snapshot, so both queues got the record or both were denied.
#[test]
fn loom_policy_swap_races_post() {
    use crate::lsm::{Denial, PolicySlot, Verdict};
    struct DenyAll;
    impl crate::Policy for DenyAll {
        fn name(&self) -> &str {
            "deny-all"
        }
        fn post_notification(&self, _: &Cred, _: &Cred, _: &Notification) -> Verdict {
            Err(Denial::new(crate::Errno::EACCES, "deny all"))
        }
    }
    model(|| {
        let list = WatchList::new();
        let cred = Arc::new(Cred::root());
        let queues: Vec<_> = (0..2)
            .map(|_| {
                let q = WatchQueue::new();
                q.set_size(1).unwrap();
                let w = Watch::new(&q, &list, 7, 1, cred.clone());
                add_watch_to_object(&w, 16).unwrap();
                q
            })
            .collect();
        let slot = Arc::new(PolicySlot::new(std::sync::Arc::new(Permissive)));
        let p = {
            let (list, slot) = (list.clone(), slot.clone());
            thread::spawn(move || {
                let policy = slot.load();
                let n = Notification::key(1, 7, 0);
                post_watch_notification(Some(&list), &n, &Cred::root(), 7, &*policy)
            })
        };
        slot.store(std::sync::Arc::new(DenyAll));
        let sum = p.join().unwrap();
        let denied: Vec<u64> = queues.iter().map(|q| q.stats().denied).collect();
        assert_eq!(denied[0], denied[1], "a torn post: {denied:?}");
        assert_eq!(u64::from(sum.delivered) + denied[0] * 2, 2);
        for q in queues {
            q.clear();
        }
    });
}

/// Adding a watch while an event is posted on the same object: the post
/// walked the list before or after the add, so the new watch got the record
/// or nothing, and the queue's books balance either way.
#[test]
fn loom_watch_add_races_post() {
    model(|| {
        let q = WatchQueue::new();
        q.set_size(1).unwrap();
        let list = WatchList::new();
        let cred = Arc::new(Cred::root());
        let p = {
            let list = list.clone();
            thread::spawn(move || {
                let n = Notification::key(1, 7, 0);
                post_watch_notification(Some(&list), &n, &Cred::root(), 7, &Permissive)
            })
        };
        let w = Watch::new(&q, &list, 7, 3, cred.clone());
        add_watch_to_object(&w, 16).unwrap();
        let sum = p.join().unwrap();
        let got = read_all(&q);
        let s = q.stats();
        assert_eq!(got.len(), 16 * sum.delivered as usize);
        assert_eq!(s.posted, u64::from(sum.delivered));
        assert_eq!(s.posted, s.read + s.lost + s.queued + s.discarded);
        q.clear();
    });
}

/// A filter replaced while one poster filters a record of one type and
/// then one of another: the second is never judged by the old filter once
/// the first was judged by the new one (the kernel's posters see one
/// filter pointer, replaced at once). The old filter passes both types,
/// the new one neither; the only order forbidden is "rejected, then
/// passed".
#[test]
fn loom_queue_set_filter_is_one_step_for_a_poster() {
    use crate::uapi::{
        filter_blob, RawWatchNotificationTypeFilter, WATCH_TYPE_KEY_NOTIFY, WATCH_TYPE_MOUNT_NOTIFY,
    };
    let entry = |type_, sub| RawWatchNotificationTypeFilter {
        type_,
        info_filter: 0,
        info_mask: 0,
        subtype_filter: [sub, 0, 0, 0, 0, 0, 0, 0],
    };
    let old = filter_blob(&[
        entry(WATCH_TYPE_KEY_NOTIFY, 0b10),
        entry(WATCH_TYPE_MOUNT_NOTIFY, 0b10),
    ]);
    // Subtype 2 only: neither record below passes.
    let new = filter_blob(&[
        entry(WATCH_TYPE_KEY_NOTIFY, 0b100),
        entry(WATCH_TYPE_MOUNT_NOTIFY, 0b100),
    ]);
    model(move || {
        let q = WatchQueue::new();
        q.set_filter(Some(&old)).unwrap();
        let p = {
            let q = q.clone();
            thread::spawn(move || {
                let key = q.filter_allows(&Notification::key(1, 5, 0));
                let mount = q.filter_allows(&Notification::mount(1, 5, 0, 0));
                (key, mount)
            })
        };
        q.set_filter(Some(&new)).unwrap();
        let (key, mount) = p.join().unwrap();
        assert!(key || !mount, "the new filter, then the old one");
    });
}

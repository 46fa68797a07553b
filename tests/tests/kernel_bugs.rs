//! Regression tests for the kernel's watch_queue bug history (spec §4): one
//! test per entry that applies to an emulator, named after the entry, that
//! reproduces the trigger through watchq's public API and asserts what the
//! fixed kernel does. `docs/bugs.md` maps every entry to its test or says
//! why it has none, and records the revert demonstrations.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Weak};
use std::thread;
use watchq_core::lsm::SeLinux;
use watchq_core::uapi::*;
use watchq_core::{post_watch_notification, Errno, Notification, PostOutcome, Watch, WatchQueue};
use watchq_kernel::keys::{Serial, KEY_SPEC_SESSION_KEYRING};
use watchq_kernel::prelude::*;
use watchq_kernel::{Kernel, KernelConfig, Process};
use watchq_tests::{entry, key_record, Fixture, LOSS, OBJ};

const UPD: u8 = NOTIFY_KEY_UPDATED;

/// A process in its own session keyring holding user key `k`, and a
/// non-blocking notification pipe (sized to `notes`, or unsized) whose read
/// end watches `k` with tag 1.
struct KeyPipe {
    kernel: Arc<Kernel>,
    p: Arc<Process>,
    r: i32,
    w: i32,
    k: Serial,
}

impl KeyPipe {
    fn new(notes: Option<u64>) -> Self {
        let kernel = Kernel::new(KernelConfig::default());
        let p = kernel.spawn(0, 0);
        p.keyctl_join_session_keyring(None).unwrap();
        let k = p
            .add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)
            .unwrap();
        let [r, w] = p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
        if let Some(n) = notes {
            p.set_queue_size(r, n).unwrap();
        }
        p.keyctl_watch_key(k, r, 1).unwrap();
        KeyPipe { kernel, p, r, w, k }
    }

    fn queue(&self) -> Arc<WatchQueue> {
        self.p.watch_queue(self.r).unwrap()
    }

    /// The UPDATED record of `k` as the tag-1 watch receives it.
    fn updated(&self) -> Vec<u8> {
        let mut n = Notification::key(UPD, self.k as u32, 0);
        n.set_info_id(1 << 8);
        n.as_bytes().to_vec()
    }

    fn watches_on_key(&self) -> usize {
        self.kernel.keys().info(self.k).unwrap().watches
    }
}

/// Everything readable from `fd` now (records and loss records).
fn drain(p: &Process, fd: i32) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match p.read(fd, &mut buf) {
            Ok(0) | Err(Errno::EAGAIN) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Closes both ends of the pipe whose queue is `q` (the last close) and
/// checks that the queue, its ring and its watches are freed: nothing but
/// the caller's handle, dropped here, kept it alive.
#[track_caller]
fn close_and_assert_freed(p: &Process, r: i32, w: i32, q: Arc<WatchQueue>) {
    let weak: Weak<WatchQueue> = Arc::downgrade(&q);
    drop(q);
    p.close(r).unwrap();
    assert!(
        weak.upgrade().is_some(),
        "the write end still holds the pipe"
    );
    p.close(w).unwrap();
    assert!(
        weak.upgrade().is_none(),
        "queue state outlived the last close"
    );
}

/// Reads the fixture's queue once and checks it returns exactly the UPDATED
/// records with aux `seqs`, in order (short messages: counts, first mismatch).
#[track_caller]
fn expect_seqs(f: &Fixture, seqs: std::ops::Range<u32>, ctx: &str) {
    let got = f.read(1 << 16).unwrap_or_default();
    assert_eq!(got.len() / 16, seqs.len(), "{ctx}: records read back");
    for (rec, seq) in got.chunks(16).zip(seqs) {
        assert!(
            rec == key_record(UPD, seq),
            "{ctx}: record {seq} wrong: {rec:02x?}"
        );
    }
}

fn set_filter(f: &Fixture, entries: &[RawWatchNotificationTypeFilter]) -> Result<(), Errno> {
    f.proc_.set_queue_filter(f.rfd, Some(&filter_blob(entries)))
}

/// Posts a record of any type/subtype to the fixture's object; returns how
/// many queues it reached.
fn post_raw(f: &Fixture, type_: u32, subtype: u8) -> u32 {
    let n = Notification::new(type_, subtype, &[0; 8]).unwrap();
    let s = post_watch_notification(Some(&f.list), &n, &f.proc_.cred(), OBJ, &*f.kernel.policy());
    s.delivered
}

// ----- 1: CVE-2022-0995 / CVE-2022-48847 ----------------------------------

#[test]
fn cve_2022_0995_filter_types_64_to_511_ignored() {
    let f = Fixture::new(Some(1));
    // One real entry (key UPDATED) and 15 of types the kernel does not know,
    // most in 64..511: the range the buggy kernel stored without counting.
    let mut e = vec![entry(WATCH_TYPE_KEY_NOTIFY, 1 << UPD, 0, 0)];
    for t in [
        6, 63, 64, 65, 100, 127, 128, 255, 256, 300, 400, 500, 510, 511, 512,
    ] {
        e.push(entry(t, !0, 0, 0));
    }
    assert_eq!(e.len(), 16);
    assert_eq!(set_filter(&f, &e), Ok(()));
    // Records of those types are not let through, the known entry works.
    for t in [64, 100, 511] {
        assert_eq!(post_raw(&f, t, 0), 0, "type {t} passed the filter");
    }
    f.post(UPD, 7);
    f.post(NOTIFY_KEY_LINKED, 0);
    assert_eq!(f.read(4096).unwrap(), key_record(UPD, 7));
    // info_filter/info_mask are still validated on an unknown type; the
    // failed call keeps the old filter.
    let bad = [entry(300, !0, 0, 1 << 8)];
    assert_eq!(set_filter(&f, &bad), Err(Errno::EINVAL));
    f.post(UPD, 8);
    f.post(NOTIFY_KEY_LINKED, 0);
    assert_eq!(f.read(4096).unwrap(), key_record(UPD, 8));
    // Only unknown types: accepted, drops every key record; META passes.
    let only_unknown: Vec<_> = (0..16).map(|i| entry(64 + 28 * i, !0, 0, 0)).collect();
    assert_eq!(set_filter(&f, &only_unknown), Ok(()));
    f.post(UPD, 9);
    f.unwatch(f.rfd, OBJ).unwrap();
    let mut removal = Notification::removal(OBJ);
    removal.set_info_id(1 << 8);
    assert_eq!(f.read(4096).unwrap(), removal.as_bytes());
}

// ----- 2: state freed before the ring ---------------------------------------

#[test]
fn bug02_close_with_unread_records_discards_them() {
    let f = Fixture::new(Some(1));
    // A full ring, a loss pending, one record read.
    for seq in 0..40 {
        f.post(UPD, seq);
    }
    assert_eq!(f.read(16).unwrap(), key_record(UPD, 0));
    let q = f.proc_.watch_queue(f.rfd).unwrap();
    let stats = q.stats();
    f.proc_.close(f.rfd).unwrap();
    f.proc_.close(f.wfd).unwrap();
    assert!(q.is_closed());
    assert!(f.list.is_empty());
    let s = q.stats();
    assert_eq!((s.posted, s.read, s.lost), (40, 1, 8));
    assert_eq!((s.queued, s.discarded), (0, 31), "{s:?}");
    assert_eq!(s.loss_records, stats.loss_records);
    assert_eq!(s.posted, s.read + s.lost + s.discarded);
    // Posting to the object afterwards reaches nothing.
    assert_eq!(f.post(UPD, 99).matched, 0);
}

// ----- 3: a consumed record's note is released ------------------------------

#[test]
fn bug03_reading_a_record_frees_its_note_slot() {
    let f = Fixture::new(Some(1));
    let q = f.proc_.watch_queue(f.rfd).unwrap();
    // 20 laps through 32 notes: only possible if reads free them.
    for lap in 0..20u32 {
        for i in 0..32 {
            assert_eq!(f.post(UPD, lap * 32 + i).delivered, 1, "lap {lap}");
        }
        assert_eq!(q.occupancy(), 32);
        expect_seqs(&f, lap * 32..lap * 32 + 32, &format!("lap {lap}"));
        assert_eq!(q.occupancy(), 0, "lap {lap}: notes not released");
    }
    let s = q.stats();
    assert_eq!((s.posted, s.read, s.lost), (640, 640, 0));
    // One over capacity is lost; after reading, the queue takes 32 again.
    for i in 0..33 {
        f.post(UPD, i);
    }
    assert_eq!(f.read(1 << 12).unwrap().len(), 32 * 16);
    assert_eq!(f.read(1 << 12).unwrap(), LOSS);
    for i in 0..32 {
        assert_eq!(f.post(UPD, i).delivered, 1);
    }
}

// ----- 4: power-of-two ring --------------------------------------------------

#[test]
fn bug04_ring_size_is_power_of_two() {
    for n in [65u64, 100, 257, 511] {
        let f = Fixture::new(Some(n));
        let q = f.proc_.watch_queue(f.rfd).unwrap();
        let cap = n.div_ceil(32) as u32 * 32;
        // Three full laps, every record read back byte for byte in order: a
        // ring masked with a non-power-of-two size puts records in the
        // wrong slots.
        for lap in 0..3 {
            for i in 0..cap {
                assert_eq!(f.post(UPD, lap * cap + i).delivered, 1, "n={n}");
            }
            expect_seqs(&f, lap * cap..lap * cap + cap, &format!("n={n} lap {lap}"));
        }
        assert_eq!(q.ring_slots(), (cap as usize).next_power_of_two(), "n={n}");
    }
}

// ----- 5: capacity = whole pages of notes -----------------------------------

#[test]
fn bug05_capacity_is_whole_pages_of_notes_all_usable() {
    for n in [1u64, 2, 31, 32, 33, 65, 100, 257, 511, 512] {
        let f = Fixture::new(Some(n));
        let pages = n.div_ceil(32) as usize;
        let cap = pages * 32;
        for i in 0..cap as u32 + 8 {
            f.post(UPD, i);
        }
        let got = f.read(1 << 16).unwrap();
        assert_eq!(got.len(), cap * 16, "n={n}: records held");
        assert_eq!(f.read(1 << 16), Ok(LOSS.to_vec()), "n={n}");
        let q = f.proc_.watch_queue(f.rfd).unwrap();
        assert_eq!(q.capacity(), cap, "n={n}");
        let sz = f.proc_.fcntl(f.wfd, F_GETPIPE_SZ, 0);
        assert_eq!(sz, Ok((pages * PAGE_SIZE) as i64), "n={n}");
    }
}

// ----- 6 and 12: teardown frees everything ----------------------------------

#[test]
fn bug06_close_frees_the_queue_state() {
    // A sized queue holding records and a pending loss.
    let f = Fixture::new(Some(33));
    for seq in 0..70 {
        f.post(UPD, seq);
    }
    let q = f.proc_.watch_queue(f.rfd).unwrap();
    assert_eq!(q.stats().lost, 6);
    close_and_assert_freed(&f.proc_, f.rfd, f.wfd, q);
    assert!(f.list.is_empty());
    assert_eq!(f.proc_.cred().user.nr_watches(), 0);
}

#[test]
fn bug12_sized_queue_is_freed_on_close() {
    // The largest queue, watching a key, dismantled by the last close.
    let kp = KeyPipe::new(Some(512));
    kp.p.keyctl_update(kp.k, b"x").unwrap();
    let q = kp.queue();
    assert_eq!((q.capacity(), q.nr_pages()), (512, Some(16)));
    close_and_assert_freed(&kp.p, kp.r, kp.w, q);
    assert_eq!(kp.watches_on_key(), 0);
    assert_eq!(kp.p.cred().user.nr_watches(), 0);
    assert_eq!(kp.p.keyctl_update(kp.k, b"y"), Ok(()));
}

// ----- 7: post vs read ordering --------------------------------------------

#[test]
fn bug07_concurrent_post_and_read_records_complete() {
    const PER: u32 = 100_000;
    let f = Fixture::new(Some(64));
    let q = f.proc_.watch_queue(f.rfd).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    // Each record is 64 bytes whose 14 payload words are all derived from
    // (producer, seq): a reader that saw the head before the bytes would
    // find a torn or stale record.
    let payload = |id: u32, seq: u32| -> Vec<u8> {
        let mut p = seq.to_le_bytes().to_vec();
        for i in 1..14u32 {
            p.extend_from_slice(&(seq.wrapping_mul(2_654_435_761) ^ (id << 28) ^ i).to_le_bytes());
        }
        p
    };
    let producers: Vec<_> = (0..2u32)
        .map(|id| {
            let q = q.clone();
            thread::spawn(move || {
                let mut posted = 0u64;
                for seq in 0..PER {
                    let n = Notification::new(WATCH_TYPE_KEY_NOTIFY, id as u8, &payload(id, seq))
                        .unwrap();
                    posted += u64::from(q.post(&n) == PostOutcome::Posted);
                }
                posted
            })
        })
        .collect();
    let reader = {
        let (p, r, done) = (f.proc_.clone(), f.rfd, done.clone());
        thread::spawn(move || {
            let (mut last, mut got, mut losses) = ([None::<u32>; 2], 0u64, 0u64);
            let mut buf = vec![0u8; 4096];
            loop {
                let finished = done.load(Ordering::Acquire);
                let n = match p.read(r, &mut buf) {
                    Ok(n) => n,
                    Err(Errno::EAGAIN) if finished => return (got, losses),
                    Err(Errno::EAGAIN) => {
                        thread::yield_now();
                        continue;
                    }
                    Err(e) => panic!("read: {e}"),
                };
                for rec in Notification::decode_all(&buf[..n]).expect("whole records") {
                    if rec.is_meta() {
                        assert_eq!(rec.as_bytes(), LOSS);
                        losses += 1;
                        continue;
                    }
                    let id = u32::from(rec.subtype());
                    let seq = u32::from_le_bytes(rec.payload()[..4].try_into().unwrap());
                    assert_eq!(rec.payload(), payload(id, seq), "torn record");
                    assert!(last[id as usize].is_none_or(|l| l < seq), "out of order");
                    last[id as usize] = Some(seq);
                    got += 1;
                }
            }
        })
    };
    let posted: u64 = producers.into_iter().map(|h| h.join().unwrap()).sum();
    done.store(true, Ordering::Release);
    let (got, losses) = reader.join().unwrap();
    let s = q.stats();
    assert_eq!(got, posted);
    assert_eq!(s.posted, 2 * u64::from(PER));
    assert_eq!(s.read + s.lost, s.posted, "{s:?}");
    assert_eq!((s.read, s.loss_records), (got, losses));
    assert_eq!(losses > 0, s.lost > 0, "{s:?}");
}

// ----- 10 and 16: SET_SIZE under memory pressure ----------------------------

#[test]
fn bug10_set_size_allocation_failure_leaves_queue_unsized() {
    let f = Fixture::new(None);
    let p = &f.proc_;
    let q = p.watch_queue(f.rfd).unwrap();
    f.kernel.alloc_faults().fail_next(2);
    assert_eq!(p.set_queue_size(f.rfd, 100), Err(Errno::ENOMEM));
    assert_eq!(p.set_queue_size(f.wfd, 512), Err(Errno::ENOMEM));
    // Nothing half-installed: unsized, default pipe size, events lost silently.
    assert_eq!((q.capacity(), q.ring_slots(), q.nr_pages()), (0, 0, None));
    assert_eq!(p.fcntl(f.rfd, F_GETPIPE_SZ, 0), Ok(65536));
    f.post(UPD, 1);
    assert_eq!(f.read(4096), Err(Errno::EAGAIN));
    // The failure does not stick: a later SET_SIZE succeeds, not EBUSY.
    assert_eq!(f.kernel.alloc_faults().pending(), 0);
    assert_eq!(p.set_queue_size(f.rfd, 100), Ok(()));
    assert_eq!(q.capacity(), 128);
    f.post(UPD, 2);
    assert_eq!(f.read(4096).unwrap(), key_record(UPD, 2));
    let s = q.stats();
    assert_eq!((s.lost, s.lost_unsized, s.loss_records), (1, 1, 0));
}

#[test]
fn bug16_set_size_enomem_is_reported_not_swallowed() {
    // `keyctl watch`'s sequence: pipe, SET_SIZE, watch. A SET_SIZE that fails
    // must say so, or the watcher would wait for events that are all lost.
    let kp = KeyPipe::new(None);
    let (p, r) = (&kp.p, kp.r);
    kp.kernel.alloc_faults().fail_next(1);
    let ret = p.ioctl(r, IOC_WATCH_QUEUE_SET_SIZE, 256, None);
    assert_eq!(ret, Err(Errno::ENOMEM));
    assert_eq!(Errno::ENOMEM.as_raw(), 12);
    kp.p.keyctl_update(kp.k, b"lost").unwrap();
    assert_eq!(drain(p, r), b"");
    assert_eq!(p.ioctl(r, IOC_WATCH_QUEUE_SET_SIZE, 256, None), Ok(0));
    kp.p.keyctl_update(kp.k, b"seen").unwrap();
    assert_eq!(drain(p, r), kp.updated());
}

// ----- 11: removed watches are freed -----------------------------------------

#[test]
fn bug11_removed_watches_are_freed_and_uncharged() {
    // With RLIMIT_NOFILE 1 a user may hold one watch: 300 add/remove cycles
    // only work if every removed watch gives its charge back.
    let kp = KeyPipe::new(Some(1));
    let (p, r, k) = (&kp.p, kp.r, kp.k);
    let user = p.cred().user.clone();
    p.keyctl_watch_key(k, r, -1).unwrap();
    drain(p, r);
    p.set_rlimit_nofile(1, 1).unwrap();
    let other = p
        .add_key("user", Some("other"), b"v", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    for i in 0..300 {
        assert_eq!(p.keyctl_watch_key(k, r, i % 256), Ok(()), "cycle {i}");
        assert_eq!(user.nr_watches(), 1);
        assert_eq!(p.keyctl_watch_key(other, r, 1), Err(Errno::EAGAIN));
        assert_eq!(p.keyctl_watch_key(k, r, -1), Ok(()));
        assert_eq!(user.nr_watches(), 0, "cycle {i}");
        assert_eq!(drain(p, r).len(), 16, "one removal record");
    }
    // The watch object itself is released once removed.
    let f = Fixture::new(Some(1));
    let q = f.proc_.watch_queue(f.rfd).unwrap();
    let w = Watch::new(&q, &f.list, 7, 7, f.proc_.cred());
    watchq_core::add_watch_to_object(&w, 10).unwrap();
    let weak = Arc::downgrade(&w);
    drop(w);
    assert!(weak.upgrade().is_some());
    f.unwatch(f.rfd, 7).unwrap();
    assert!(weak.upgrade().is_none(), "removed watch still alive");
    assert_eq!(
        f.proc_.cred().user.nr_watches(),
        1,
        "the fixture's own watch"
    );
}

// ----- 13: sizing vs posting -------------------------------------------------

#[test]
fn bug13_set_size_while_keys_change() {
    for round in 0..100 {
        let kp = KeyPipe::new(None);
        let q = kp.queue();
        let updater = {
            let (p, k, q) = (kp.p.clone(), kp.k, q.clone());
            thread::spawn(move || {
                let (mut n, mut after) = (0u64, 0);
                while after < 64 {
                    // Checked before the update: at most this one update
                    // lands after sizing without being counted in `after`.
                    after += u32::from(q.capacity() > 0);
                    p.keyctl_update(k, b"x").unwrap();
                    n += 1;
                }
                n
            })
        };
        while q.stats().lost_unsized < 3 {
            thread::yield_now();
        }
        assert_eq!(kp.p.set_queue_size(kp.r, 100), Ok(()));
        let n = updater.join().unwrap();
        let s = q.stats();
        assert_eq!(s.posted, n, "round {round}");
        // Events before sizing were dropped silently, none after it.
        assert_eq!(s.lost, s.lost_unsized, "round {round}: {s:?}");
        assert!(s.lost_unsized >= 3);
        let got = drain(&kp.p, kp.r);
        assert_eq!(got.len() as u64, 16 * (n - s.lost), "round {round}");
        assert!(
            got.chunks(16).all(|r| r == kp.updated()),
            "round {round}: complete UPDATED records only, no loss record"
        );
        assert_eq!(q.stats().loss_records, 0);
    }
}

// ----- 14 and 17: close vs posting -------------------------------------------

#[test]
fn bug14_close_while_post_in_flight() {
    const UPDATERS: u64 = 2;
    for round in 0..100 {
        let kp = KeyPipe::new(Some(32));
        let q = kp.queue();
        let stop = Arc::new(AtomicBool::new(false));
        let updates = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..UPDATERS)
            .map(|_| {
                let (p, k) = (kp.p.clone(), kp.k);
                let (stop, updates) = (stop.clone(), updates.clone());
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        // The key operation is unaffected by the close.
                        assert_eq!(p.keyctl_update(k, b"x"), Ok(()));
                        updates.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        while q.stats().posted < 8 {
            thread::yield_now();
        }
        kp.p.close(kp.r).unwrap();
        kp.p.close(kp.w).unwrap();
        let at_close = q.stats();
        let seen = updates.load(Ordering::Relaxed);
        while updates.load(Ordering::Relaxed) < seen + 20 {
            thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
        threads.into_iter().for_each(|t| t.join().unwrap());
        let s = q.stats();
        // At most the posts already past the closed check (one per thread)
        // land after the close; none is readable, all are accounted for.
        assert!(
            s.posted <= at_close.posted + UPDATERS,
            "round {round}: records posted after the last close: {} then {}",
            at_close.posted,
            s.posted
        );
        assert!(q.is_closed());
        assert_eq!(kp.watches_on_key(), 0, "round {round}");
        assert_eq!((s.queued, s.read), (0, 0));
        assert_eq!(s.posted, s.lost + s.discarded, "round {round}: {s:?}");
        // Nothing at all reaches the queue any more.
        kp.p.keyctl_update(kp.k, b"y").unwrap();
        assert_eq!(q.stats(), s, "round {round}");
        let weak = Arc::downgrade(&q);
        drop(q);
        assert!(weak.upgrade().is_none(), "round {round}: queue leaked");
    }
}

#[test]
fn bug17_queue_lives_exactly_as_long_as_an_end_is_open() {
    // The queue follows the pipe, not a flag: with only the read end left
    // records are still posted and readable; after the last close no pointer
    // to it is left anywhere (key watch list included).
    let kp = KeyPipe::new(Some(1));
    let (p, k) = (&kp.p, kp.k);
    let q = kp.queue();
    p.close(kp.w).unwrap();
    p.keyctl_update(k, b"x").unwrap();
    assert_eq!(drain(p, kp.r), kp.updated());
    assert_eq!(p.read(kp.r, &mut [0u8; 64]), Ok(0), "EOF: no writer");
    let weak = Arc::downgrade(&q);
    drop(q);
    p.close(kp.r).unwrap();
    assert!(weak.upgrade().is_none());
    assert_eq!(kp.watches_on_key(), 0);
    assert_eq!(p.keyctl_update(k, b"y"), Ok(()));
    assert_eq!(p.keyctl_watch_key(k, kp.r, -1), Err(Errno::EINVAL));
}

// ----- 15: adding a watch vs another queue's close ---------------------------

#[test]
fn bug15_add_watch_while_other_queue_on_same_object_closes() {
    for round in 0..300 {
        let kp = KeyPipe::new(Some(1));
        let (p, k) = (kp.p.clone(), kp.k);
        let [r1, _w1] = p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
        p.set_queue_size(r1, 512).unwrap();
        let q2 = Arc::downgrade(&kp.queue());
        let go = Arc::new(Barrier::new(3));
        let stop = Arc::new(AtomicBool::new(false));
        let adder = {
            let (p, go) = (p.clone(), go.clone());
            thread::spawn(move || {
                go.wait();
                p.keyctl_watch_key(k, r1, 2)
            })
        };
        // Posting walks the list locklessly meanwhile.
        let poster = {
            let (p, go, stop) = (p.clone(), go.clone(), stop.clone());
            thread::spawn(move || {
                go.wait();
                // At least 10 updates, at most 300 (under Q1's 512 notes).
                let mut n = 0;
                while n < 10 || (n < 300 && !stop.load(Ordering::Relaxed)) {
                    p.keyctl_update(k, b"x").unwrap();
                    n += 1;
                }
            })
        };
        go.wait();
        p.close(kp.r).unwrap();
        p.close(kp.w).unwrap();
        assert_eq!(adder.join().unwrap(), Ok(()), "round {round}");
        stop.store(true, Ordering::Relaxed);
        poster.join().unwrap();
        // Exactly the new watch is left, charged once; the closed queue is gone.
        assert_eq!(kp.watches_on_key(), 1, "round {round}");
        assert_eq!(p.cred().user.nr_watches(), 1, "round {round}");
        assert!(q2.upgrade().is_none(), "round {round}");
        // Q1 got only whole UPDATED records carrying its own tag.
        let mut want = Notification::key(UPD, k as u32, 0);
        want.set_info_id(2 << 8);
        p.keyctl_update(k, b"y").unwrap();
        let got = drain(&p, r1);
        assert!(!got.is_empty() && got.len() <= 512 * 16);
        for rec in got.chunks(16) {
            assert_eq!(rec, want.as_bytes(), "round {round}");
        }
    }
}

#[test]
fn bug15_add_watch_while_its_own_queue_closes() {
    // The same race on one queue: a watch added while its queue is being
    // closed is either refused or detached by the close, never left on the
    // key pointing at a dead queue.
    for round in 0..300 {
        let kp = KeyPipe::new(Some(1));
        let p = kp.p.clone();
        let other = p
            .add_key("user", Some("other"), b"v", KEY_SPEC_SESSION_KEYRING)
            .unwrap();
        let q = Arc::downgrade(&kp.queue());
        let go = Arc::new(Barrier::new(2));
        let adder = {
            let (p, go) = (p.clone(), go.clone());
            thread::spawn(move || {
                go.wait();
                p.keyctl_watch_key(other, kp.w, 2)
            })
        };
        go.wait();
        p.close(kp.r).unwrap();
        p.close(kp.w).unwrap();
        let res = adder.join().unwrap();
        // Ok (added before the close), ENOENT (queue closed), EINVAL (fd gone).
        assert!(
            matches!(res, Ok(()) | Err(Errno::ENOENT | Errno::EINVAL)),
            "round {round}: {res:?}"
        );
        assert_eq!(
            kp.kernel.keys().info(other).unwrap().watches,
            0,
            "round {round}"
        );
        assert_eq!(kp.watches_on_key(), 0, "round {round}");
        assert_eq!(p.cred().user.nr_watches(), 0, "round {round}");
        assert!(q.upgrade().is_none(), "round {round}");
    }
}

// ----- 18: writes into a notification pipe -----------------------------------

#[test]
fn bug18_write_into_notification_pipe_is_exdev_even_empty() {
    let f = Fixture::new(Some(1));
    let p = &f.proc_;
    f.post(UPD, 5);
    // splice from a normal pipe holding data: EXDEV, nothing moved.
    let [or, ow] = p.pipe().unwrap();
    assert_eq!(p.write(ow, b"data"), Ok(4));
    assert_eq!(p.splice(or, None, f.wfd, None, 4, 0), Err(Errno::EXDEV));
    let mut left = [0u8; 8];
    assert_eq!(p.read(or, &mut left), Ok(4));
    // sendfile goes through the same write path.
    let m = p.memfd_create("src", 0).unwrap();
    assert_eq!(p.write(m, b"data"), Ok(4));
    let mut off = 0;
    assert_eq!(p.sendfile(f.wfd, m, Some(&mut off), 4), Err(Errno::EXDEV));
    assert_eq!(off, 0);
    // The write path refuses before looking at length or readers.
    assert_eq!(p.write(f.wfd, b""), Err(Errno::EXDEV));
    assert_eq!(p.writev(f.wfd, &[]), Err(Errno::EXDEV));
    let [r2, w2] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    p.close(r2).unwrap();
    assert_eq!(p.write(w2, b""), Err(Errno::EXDEV), "not EPIPE");
    assert_eq!(p.write(w2, b"x"), Err(Errno::EXDEV), "not EPIPE");
    assert_eq!(Errno::EXDEV.as_raw(), 18);
    // The queued record is untouched.
    assert_eq!(f.read(4096).unwrap(), key_record(UPD, 5));
}

// ----- 19: SELinux watch_key permission --------------------------------------

#[test]
fn bug19_selinux_watch_key_requires_key_view() {
    let mut s = SeLinux::new();
    s.parse_rule("allow viewer_t key_t:key { view };").unwrap();
    // Everything but view: the permission a wrong constant would have asked for.
    s.parse_rule("allow other_t key_t:key { read write search link setattr create };")
        .unwrap();
    let k = Kernel::new(KernelConfig::default());
    k.set_policy(Arc::new(s));
    let spawn = |label: &str| {
        let p = k.spawn(0, 0);
        p.set_label(Some(label));
        p.keyctl_join_session_keyring(None).unwrap();
        let [r, _w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
        (p, r)
    };
    let (viewer, vr) = spawn("u:r:viewer_t:s0");
    let (other, or) = spawn("u:r:other_t:s0");
    let key = viewer
        .add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    k.keys()
        .set_label(key, Some("u:object_r:key_t:s0".into()))
        .unwrap();
    assert_eq!(viewer.keyctl_watch_key(key, vr, 1), Ok(()));
    assert_eq!(other.keyctl_watch_key(key, or, 1), Err(Errno::EACCES));
    let rec = k.audit().records().pop().unwrap();
    assert!(rec.reason.contains("denied { view }"), "{}", rec.reason);
}

// ----- 20 and 21: latent defects ---------------------------------------------

#[test]
fn bug20_subtypes_from_32_never_match_a_filter() {
    let f = Fixture::new(Some(8));
    let mut all = entry(WATCH_TYPE_KEY_NOTIFY, !0, 0, 0);
    all.subtype_filter = [!0; 8];
    assert_eq!(set_filter(&f, &[all]), Ok(()));
    for st in 32..=255u8 {
        assert_eq!(post_raw(&f, WATCH_TYPE_KEY_NOTIFY, st), 0, "subtype {st}");
    }
    assert_eq!(post_raw(&f, WATCH_TYPE_KEY_NOTIFY, 31), 1);
    assert_eq!(f.read(4096).unwrap().len(), 16);
}

#[test]
fn bug21_events_before_sizing_lost_without_loss_record() {
    let kp = KeyPipe::new(None);
    let (p, r) = (&kp.p, kp.r);
    for _ in 0..5 {
        p.keyctl_update(kp.k, b"x").unwrap();
    }
    assert_eq!(p.fionread(r), Ok(0));
    p.set_queue_size(r, 1).unwrap();
    p.keyctl_update(kp.k, b"y").unwrap();
    // One plain record, and no loss record ever.
    assert_eq!(drain(p, r), kp.updated());
    assert_eq!(p.read(r, &mut [0u8; 64]), Err(Errno::EAGAIN));
    let s = kp.queue().stats();
    assert_eq!((s.lost_unsized, s.lost, s.loss_records), (5, 5, 0));
}

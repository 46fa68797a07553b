//! Memory use, measured by counting what the allocator hands out (not
//! estimated): a queue sized to 512 notes, an unsized queue, a watch.
//! Targets (issue 9): ≤ 80 KiB, ≤ 1 KiB, ≤ 128 bytes. docs/performance.md
//! reports these figures. And allocations counted (issue 19): none on the
//! post path or in a batch read.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use watchq_core::{add_watch_to_object, Cred, Watch, WatchList, WatchQueue};

/// The system allocator, counting the live bytes of the measuring thread.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    /// Counting allocation calls (`allocs_in`), apart from `MEASURING` so
    /// the two tests can run at once.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count(delta: isize) {
    if MEASURING.with(Cell::get) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize);
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new as isize - l.size() as isize);
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Live bytes `f` leaves allocated (what it returns is kept alive).
fn live_after<T>(f: impl FnOnce() -> T) -> (T, usize) {
    MEASURING.with(|m| m.set(true));
    let before = LIVE.load(Ordering::Relaxed);
    let v = f();
    let after = LIVE.load(Ordering::Relaxed);
    MEASURING.with(|m| m.set(false));
    (v, (after - before) as usize)
}

#[test]
fn memory_of_queues_and_watches() {
    let (q, unsized_q) = live_after(WatchQueue::new);
    let ((), notes) = live_after(|| q.set_size(512).unwrap());
    let sized = unsized_q + notes;

    // Watches: 1000 on one object from 1000 queues, and 1000 by one queue
    // on 1000 objects; the cost of each beyond the queues and lists.
    let cred = Arc::new(Cred::root());
    let list = WatchList::new();
    let queues: Vec<_> = (0..1000).map(|_| WatchQueue::new()).collect();
    let (_, many_queues) = live_after(|| {
        for q in &queues {
            let w = Watch::new(q, &list, 1, 1, cred.clone());
            add_watch_to_object(&w, u64::MAX).unwrap();
        }
    });
    let lists: Vec<_> = (0..1000).map(|_| WatchList::new()).collect();
    let (_, many_objects) = live_after(|| {
        for l in &lists {
            let w = Watch::new(&q, l, 1, 1, cred.clone());
            add_watch_to_object(&w, u64::MAX).unwrap();
        }
    });
    let per_watch = many_queues.max(many_objects) / 1000;

    println!("memory: unsized queue {unsized_q} B, sized 512-note queue {sized} B ({:.1} KiB), watch {per_watch} B (one object, many queues: {} B; one queue, many objects: {} B)",
        sized as f64 / 1024.0, many_queues / 1000, many_objects / 1000);
    assert!(unsized_q <= 1024, "unsized queue: {unsized_q} bytes");
    assert!(sized <= 80 * 1024, "512-note queue: {sized} bytes");
    assert!(per_watch <= 128, "a watch: {per_watch} bytes");
    for q in queues.iter().chain([&q]) {
        q.clear();
    }
}

/// Allocations (calls, not bytes) made by the measuring thread.
static ALLOCS: AtomicIsize = AtomicIsize::new(0);

/// Allocation calls `f` makes on this thread.
fn allocs_in<T>(f: impl FnOnce() -> T) -> (T, isize) {
    COUNTING.with(|m| m.set(true));
    let before = ALLOCS.load(Ordering::Relaxed);
    let v = f();
    let n = ALLOCS.load(Ordering::Relaxed) - before;
    COUNTING.with(|m| m.set(false));
    (v, n)
}

/// Nothing on the post path allocates: watch list walk, the queue's
/// filter, the Smack-like policy's hook, the record's tag, the ring (on
/// success and on loss), the wake-up check; nor does a read()-sized batch
/// read (with a loss record among the records), nor a 2019 ring's post and
/// batch read. Each is warmed up first (arc-swap's per-thread debt node is
/// allocated on a thread's first load).
#[test]
fn memory_post_path_and_batch_read_do_not_allocate() {
    use watchq_core::ring::mmap::{Consumer, HeapStorage, MmapRing};
    use watchq_core::{post_watch_notification, Notification, ReadMode};
    let mut poster = Cred::new(1000, 1000, watchq_core::UserStruct::new(1000));
    poster.set_label(Some("poster".into()));
    let mut watcher = Cred::new(2000, 2000, watchq_core::UserStruct::new(2000));
    watcher.set_label(Some("watcher".into()));
    let watcher = Arc::new(watcher);
    let policy = watchq_core::lsm::parse_policy("[smack]\nposter watcher w\n").unwrap();
    let list = WatchList::new();
    let queues: Vec<_> = (0..4).map(|_| WatchQueue::new()).collect();
    let mut filter = 1u32.to_le_bytes().to_vec();
    filter.extend_from_slice(&0u32.to_le_bytes());
    filter.extend_from_slice(&watchq_core::uapi::WATCH_TYPE_KEY_NOTIFY.to_le_bytes());
    filter.extend_from_slice(&[0; 8]);
    filter.extend_from_slice(&0xffu32.to_le_bytes());
    filter.extend_from_slice(&[0; 28]);
    for q in &queues {
        q.set_size(32).unwrap();
        q.set_filter(Some(&filter)).unwrap();
        let w = Watch::new(q, &list, 7, 1, watcher.clone());
        add_watch_to_object(&w, u64::MAX).unwrap();
    }
    let n = Notification::key(3, 7, 0);
    let mut buf = [0u8; 4096];
    let mode = ReadMode {
        nonblock: true,
        deadline: None,
    };
    let post = || post_watch_notification(Some(&list), &n, &poster, 7, &*policy);
    let read_all = |buf: &mut [u8]| {
        queues
            .iter()
            .map(|q| q.read(buf, mode, &|| true).unwrap_or(0))
            .sum::<usize>()
    };
    // Warm up: every path once, on this thread.
    for _ in 0..40 {
        post();
    }
    read_all(&mut buf);
    // 40 posts into rings of 32: the last 8 are lost (marked), so the reads
    // take 32 records and a loss record from each queue in one batch.
    let (sums, posting) = allocs_in(|| (0..40).map(|_| post().delivered).sum::<u32>());
    let (bytes, reading) = allocs_in(|| read_all(&mut buf));
    assert_eq!(sums, 4 * 32);
    assert_eq!(bytes, 4 * (32 * 16 + 8));
    assert_eq!(posting, 0, "the post path allocated {posting} times");
    assert_eq!(reading, 0, "the batch read allocated {reading} times");

    // The 2019 ring: posts and a read()-sized batch.
    let ring = MmapRing::new(HeapStorage::new(4096).unwrap()).unwrap();
    let mut c = Consumer::of(ring.storage()).unwrap();
    let rec = n.to_v2().unwrap();
    let ((), posting) = allocs_in(|| {
        for _ in 0..100 {
            ring.try_post(&rec);
        }
    });
    let (got, reading) = allocs_in(|| c.read(&mut buf));
    assert_eq!(got, Ok(100 * 16));
    assert_eq!((posting, reading), (0, 0), "the 2019 ring allocated");
    for q in queues {
        q.clear();
    }
}

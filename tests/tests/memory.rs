//! Memory use, measured by counting what the allocator hands out (not
//! estimated): a queue sized to 512 notes, an unsized queue, a watch.
//! Targets (issue 9): ≤ 80 KiB, ≤ 1 KiB, ≤ 128 bytes. docs/performance.md
//! reports these figures.

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

//! Sleeping readers and the producers that wake them.
//!
//! Owns [`WaitQueue`] (one per queue or pipe, like the kernel's
//! `pipe->rd_wait`) and [`Waiter`] (one sleeping thread, which `poll` may
//! register on several wait queues at once).
//!
//! A producer's wake is one SeqCst fence and one load when nobody sleeps
//! (a compiler fence and a load where membarrier(2) lets the sleeper pay
//! for both sides: `crate::rcu`), so
//! a streaming producer never touches the waiter list; only when a reader
//! actually sleeps does the producer take the list lock, held for the
//! constant time of walking the sleepers and unparking them (the kernel's
//! `wake_up` takes the wait-queue spinlock the same way). Lost wake-ups are
//! impossible: a reader registers (SeqCst) before re-checking readiness, a
//! producer publishes before its SeqCst fence and check, and an unpark that
//! comes before the park is remembered by the thread's token.
//!
//! Under loom the atomics and the list's mutex are loom's (`crate::sync`)
//! and a sleeper parks on a loom `Notify`, so the models in `loom_tests.rs` put a reader to sleep
//! against a racing post; a lost wake-up leaves the reader parked forever,
//! which loom reports as a deadlock. loom has no timed park: a deadline
//! reads there as already passed.
//!
//! # Synchronization
//!
//! | atomic | writers | readers | ordering | partner |
//! |---|---|---|---|---|
//! | `sleepers` | readers (register/unregister) | producers (`wake`) | Relaxed RMW + SeqCst fence / SeqCst fence + Relaxed load | the producer's publish before its fence vs the reader's readiness check after its fence (store buffering: both sides need the fence) |
//! | `Waiter::woken` | producers (swap) | the sleeping reader (swap) | Relaxed | none: a hint to stop parking; the woken reader's re-check after its next register fence sees the record (see `Waiter::wake`) |

use crate::sync::{fence, Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};
#[cfg(not(all(test, loom)))]
use std::thread::{self, Thread};
use std::time::Instant;

/// One thread that may sleep on several wait queues.
#[derive(Debug)]
pub struct Waiter {
    #[cfg(not(all(test, loom)))]
    thread: Thread,
    /// Under loom, the thread's park token: loom's unpark makes a thread
    /// blocked on a mutex runnable (and then fails its own check that the
    /// lock is free), so a sleeper parks on a `Notify` of its own there.
    #[cfg(all(test, loom))]
    notify: loom::sync::Notify,
    woken: AtomicBool,
}

impl Waiter {
    /// A waiter for the calling thread.
    pub fn current() -> Arc<Self> {
        Arc::new(Waiter {
            #[cfg(not(all(test, loom)))]
            thread: thread::current(),
            #[cfg(all(test, loom))]
            notify: loom::sync::Notify::new(),
            woken: AtomicBool::new(false),
        })
    }

    /// Parks until woken or `deadline`; true if woken.
    pub fn park(&self, deadline: Option<Instant>) -> bool {
        loop {
            // Relaxed: the flag only says a wake came, so stop parking; what
            // the waker published is seen by the caller's readiness check,
            // ordered by the fences (see `wake`).
            if self.woken.swap(false, Ordering::Relaxed) {
                return true;
            }
            match deadline {
                #[cfg(not(all(test, loom)))]
                None => thread::park(),
                #[cfg(all(test, loom))]
                None => self.notify.wait(),
                // loom has no timed park.
                #[cfg(all(test, loom))]
                Some(_) => return false,
                #[cfg(not(all(test, loom)))]
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    thread::park_timeout(d - now);
                }
            }
        }
    }

    fn wake(&self) {
        // Relaxed: nothing is handed over through the flag. A woken
        // reader that reads the record stale re-registers and checks
        // again after its register fence, and that fence comes after the
        // producer's in the fences' total order (the producer's fence is
        // sequenced before this swap, which the reader's swap read, which
        // is sequenced before its next fence), so the re-check sees the
        // record. A swap, not a store (the same cost on this path, taken
        // only when a reader sleeps): loom 0.7 leaves a plain store
        // unordered against the sleeper's earlier swap and lets its next
        // swap read around it, a false lost wake-up
        // (`loom_wait_blocking_read_races_post`).
        self.woken.swap(true, Ordering::Relaxed);
        #[cfg(not(all(test, loom)))]
        self.thread.unpark();
        #[cfg(all(test, loom))]
        self.notify.notify();
    }
}

/// The sleepers of one object.
// `repr(C)`: `sleepers`, which every post reads, comes first (the queue
// places it beside its other post-path fields).
#[derive(Debug, Default)]
#[repr(C)]
pub struct WaitQueue {
    pub(crate) sleepers: AtomicUsize,
    waiters: Mutex<Vec<Arc<Waiter>>>,
    /// Times a parked thread was woken (statistics: the context switches a
    /// consumer paid, not the posts that called `wake`).
    wakeups: AtomicU64,
}

impl WaitQueue {
    /// An empty wait queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `w`; the caller must re-check readiness afterwards, then park.
    pub fn register(&self, w: &Arc<Waiter>) {
        self.waiters.lock().push(w.clone());
        // Relaxed: ordered by the fence below. A producer that reads this
        // count then takes the list's lock after our push's unlock (its
        // load cannot read a store its lock would happen before).
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        // ORDERING: SeqCst fence, the reader's half of the Dekker pair with
        // the fence in `wake`: of the two fences one is first in the single
        // total order, so either the producer's load after its fence sees
        // our count, or our readiness check after this fence sees its
        // record. A SeqCst RMW alone is not enough: C++20 lets the plain
        // (Acquire/Relaxed) loads of the readiness check after it read
        // stale values (store buffering), and loom, which models SeqCst
        // accesses as AcqRel, finds the lost wake-up
        // (`loom_wait_post_wakes_sleeping_reader` without this fence).
        fence(Ordering::SeqCst);
        // Where producers fence with the compiler only (membarrier(2)
        // registered, `crate::rcu`), their half runs here instead: a full
        // barrier on every CPU running one of our threads, at an
        // instruction boundary of each producer, so the producer's publish
        // before it is seen by our re-check, or its load of the count
        // after it sees our count (liburcu's "memb" argument). Sleeping is
        // rare and costs a system call anyway.
        crate::rcu::heavy_barrier();
    }

    /// Removes `w` (once per `register`).
    pub fn unregister(&self, w: &Arc<Waiter>) {
        let mut v = self.waiters.lock();
        if let Some(i) = v.iter().position(|x| Arc::ptr_eq(x, w)) {
            v.swap_remove(i);
            // Relaxed: only lowers the count; a producer that still sees the
            // old value merely takes the lock and finds nobody.
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Wakes every sleeper. Costs a fence (a compiler fence where
    /// membarrier(2) is registered) and a load when nobody sleeps.
    #[inline]
    pub fn wake(&self) {
        self.wake_with(crate::rcu::asymmetric());
    }

    /// [`WaitQueue::wake`] with `asymmetric` the process's
    /// `crate::rcu::asymmetric()`, looked up once by a caller that wakes
    /// many queues (a post's fan-out).
    #[inline(always)]
    pub(crate) fn wake_with(&self, asymmetric: bool) {
        // ORDERING: SeqCst fence, the producer's half of the Dekker pair
        // with `register`: the record published before this is visible to
        // a reader that registered before our load below. Where
        // membarrier(2) is registered a compiler fence only: the sleeper's
        // membarrier in `register` stands for our fence, and the compiler
        // must only keep the publish before the load.
        crate::sync::light_fence(asymmetric, Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        if self.sleepers.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.wake_sleepers();
    }

    #[cold]
    fn wake_sleepers(&self) {
        let waiters = self.waiters.lock();
        for w in waiters.iter() {
            w.wake();
        }
    }

    /// Threads registered to sleep now.
    pub fn sleepers(&self) -> usize {
        // Relaxed: an instantaneous count for tests and statistics.
        self.sleepers.load(Ordering::Relaxed)
    }

    /// Times a sleeping thread has been woken so far (what a blocking
    /// consumer pays per batch of records; a streaming producer should
    /// cause few). Counted by the sleeper, so a post that finds it still
    /// registered but already woken does not count again.
    pub fn wakeups(&self) -> u64 {
        // Relaxed: statistics.
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Blocks the calling thread until `ready()` or `deadline`; returns the
    /// last `ready()`.
    pub fn wait_until(&self, deadline: Option<Instant>, mut ready: impl FnMut() -> bool) -> bool {
        if ready() {
            return true;
        }
        let w = Waiter::current();
        loop {
            self.register(&w);
            let r = ready();
            if r {
                self.unregister(&w);
                return true;
            }
            let woken = w.park(deadline);
            self.unregister(&w);
            if !woken {
                return ready();
            }
            // Relaxed: statistics.
            self.wakeups.fetch_add(1, Ordering::Relaxed);
            if ready() {
                return true;
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The sleeper is woken by `wake`, not by its deadline: a sleep
    /// bounded at 10 s (a broken wake-up fails here instead of hanging)
    /// that ends well before it, counted as a wake-up.
    #[test]
    fn wait_queue_wakes_sleeper() {
        let wq = Arc::new(WaitQueue::new());
        let flag = Arc::new(AtomicBool::new(false));
        let (wq2, f2) = (wq.clone(), flag.clone());
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            let bound = Some(start + Duration::from_secs(10));
            let ready = wq2.wait_until(bound, || f2.load(Ordering::Acquire));
            (ready, start.elapsed())
        });
        while wq.sleepers.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        // The count goes up before the sleeper's barrier and its last look
        // at the condition: give it time to be asleep, or it may find the
        // flag itself (then no wake-up is needed, and none is counted).
        std::thread::sleep(Duration::from_millis(50));
        flag.store(true, Ordering::Release);
        wq.wake();
        let (ready, took) = t.join().unwrap();
        assert!(ready);
        assert!(
            took < Duration::from_secs(5),
            "woken by the deadline: {took:?}"
        );
        assert!(wq.wakeups.load(Ordering::Relaxed) <= 1);
    }

    #[test]
    fn wait_queue_times_out() {
        let wq = WaitQueue::new();
        let d = Instant::now() + Duration::from_millis(10);
        assert!(!wq.wait_until(Some(d), || false));
        assert_eq!(wq.sleepers.load(Ordering::Relaxed), 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests;

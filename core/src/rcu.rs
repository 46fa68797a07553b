//! Read-copy-update whose readers do no atomic read-modify-write.
//!
//! Owns [`Domain`] (readers' slots, the grace-period epoch, retired objects
//! waiting to be freed) and [`RcuPtr`] (a pointer to an `Arc`'d value that
//! readers follow inside a read section and writers replace, retiring the
//! old value). `crate::sync::RcuCell`, which every watch list, queue filter
//! and policy slot uses, is an `RcuPtr` on the process's domain.
//!
//! The algorithm is the epoch-based reclamation of Keir Fraser's thesis
//! ("Practical lock-freedom", 2004) with the asymmetric fences of
//! liburcu's "memb" flavour (Desnoyers et al., "User-Level Implementations
//! of Read-Copy Update", IEEE TPDS 2012): a reader marks its slot with the
//! epoch it read and, where the kernel's `membarrier(2)` is available,
//! pays only a compiler fence for the store-to-load order the mark needs;
//! the rare writer pays for both sides with
//! `MEMBARRIER_CMD_PRIVATE_EXPEDITED`, which runs a full barrier on every
//! CPU running one of this process's threads. Without `membarrier` (other
//! kernels, Miri, loom) the reader's fence is a real `fence(SeqCst)`.
//!
//! Why not a crate: arc-swap's read guard (what the lists used) writes a
//! per-thread debt slot with a SeqCst swap and pays it back with a CAS,
//! two locked instructions per read, ~11 ns of a 24 ns post here;
//! crossbeam-epoch's `pin` has one (a locked cmpxchg standing for a
//! SeqCst fence) and seize's `leave` one (a swap). The post path's target
//! (issue 19: three bare `ArrayQueue` pushes, ~13 ns) leaves no room for
//! either; measured by `benches/workloads/examples/post_min.rs`.
//!
//! Readers never wait (a read section is two plain stores around the
//! reads). [`Domain::retire`] does not either: it frees what no reader
//! can still hold and leaves the rest to a later retire. Where what the
//! old value's drop does must be done when the writer returns (a closed
//! queue's watches, and through them the queue, leaving for good),
//! [`Domain::replace_sync`] waits for the readers that may hold it, a
//! bounded wait (`synchronize_rcu()` in spirit), and drops it itself.
//!
//! # Synchronization
//!
//! | atomic | writers | readers | ordering | partner |
//! |---|---|---|---|---|
//! | `Domain::epoch` | `bump` (fetch_add, after the writer's heavy fence) | a reader entering | Relaxed RMW / Relaxed load | none of its own: a reader that read a bump's epoch has its light fence synchronize with the heavy fence before the bump (or, with membarrier, ran the barrier before that load), so it sees the unlink (`bump`) |
//! | `Slot::active` | its reader: the epoch on entry, 0 on leaving | `collect`, `replace_sync`'s wait | Release store + light fence / Release store; Acquire load after the heavy fence | the light/heavy fence pair (Dekker: the collector sees the mark, or the reader sees the new pointer); the Releases vs the collector's Acquire (the reader's reads, and a previous owner's, happen before the free) |
//! | `Slot::taken` | a thread claiming (CAS) or giving back its slot | other claimers | Acquire CAS / Release store | one owner at a time; the last owner's writes to `active` happen before the next owner's |
//! | `Domain::slots` | a claimer pushing a new slot (CAS) | claimers, `collect` | Release CAS / Acquire load | the slot's fields are written before it is reachable |
//! | `RcuPtr::ptr` | `store` (swap, writers serialised by the caller's lock) | readers | Release swap / Acquire load | the new value is built before it is reachable; the old value is unlinked before its retire epoch |

use crate::sync::{fence, AtomicBool, AtomicPtr, AtomicU64, Mutex, Ordering};
use std::sync::Arc;

/// A retired object: dropped once no reader can hold it.
type Retired = Box<dyn Send>;

/// Extra collections a retire tries, yielding between them, before it
/// leaves what readers still hold to a later retire.
const RETIRE_TRIES: usize = if cfg!(all(test, loom)) { 1 } else { 16 };

/// How long [`Domain::replace_sync`] waits for the readers that may hold
/// the old value (a post's section is well under a microsecond; this
/// covers one preempted for a few scheduler slices).
#[cfg(not(all(test, loom)))]
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Tries at the retired list's lock before a retire gives up on it (each
/// after a yield: a second or more).
#[cfg(not(all(test, loom)))]
const LIMBO_TRIES: usize = 1 << 20;

/// One reader's mark. Owned by one thread at a time; never freed (a
/// domain keeps at most as many slots as threads ever read at once).
#[derive(Debug)]
pub(crate) struct Slot {
    /// 0: not in a read section; otherwise the epoch read on entry.
    active: AtomicU64,
    /// Owned by a thread.
    taken: AtomicBool,
    /// The next slot of the domain's list (fixed before the slot is pushed).
    next: *const Slot,
    /// The domain the slot belongs to (which outlives it: slots are freed
    /// with their domain), so a reader holding its slot reaches the epoch
    /// without looking the domain up.
    domain: *const Domain,
    /// The domain's `asymmetric`, fixed before any slot exists: beside
    /// the mark, one line for a reader's section.
    asymmetric: bool,
}

/// Readers' slots, the epoch, the retired objects.
pub(crate) struct Domain {
    /// The grace-period count; starts at 1 (0 marks a slot idle).
    epoch: AtomicU64,
    /// Every slot, newest first; push-only.
    slots: AtomicPtr<Slot>,
    /// Retired objects, each with the epoch it was retired in.
    limbo: Mutex<Vec<(u64, Retired)>>,
    /// The slot (its address) and mark of the last reader a
    /// [`Domain::replace_sync`] gave up waiting for: a later wait that
    /// meets the same mark there gives up at once.
    stuck: Mutex<(usize, u64)>,
    /// The writer's heavy fence is `membarrier(2)`, so readers' fences are
    /// compiler fences only.
    asymmetric: bool,
}

// SAFETY: the raw pointers are to slots that live as long as the domain
// and are only reached through their atomics.
unsafe impl Send for Domain {}
// SAFETY: as for Send; every shared field is an atomic or a mutex.
unsafe impl Sync for Domain {}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain")
            .field("asymmetric", &self.asymmetric)
            .finish_non_exhaustive()
    }
}

/// `membarrier(2)` commands (include/uapi/linux/membarrier.h).
#[cfg(all(target_os = "linux", not(miri), not(all(test, loom))))]
mod membarrier {
    const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    /// Registers the process for expedited private barriers; false when the
    /// kernel (or a seccomp filter) says no.
    pub(super) fn register() -> bool {
        // SAFETY: membarrier takes integers only and touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 }
    }

    /// A full barrier on every CPU running a thread of this process.
    pub(super) fn heavy() -> bool {
        // SAFETY: as in `register`.
        unsafe { libc::syscall(libc::SYS_membarrier, CMD_PRIVATE_EXPEDITED, 0, 0) == 0 }
    }
}

impl Domain {
    /// A domain; `asymmetric` asks for `membarrier(2)` (granted only where
    /// the kernel registers the process for it).
    pub(crate) fn new(asymmetric: bool) -> Domain {
        #[cfg(all(target_os = "linux", not(miri), not(all(test, loom))))]
        let asymmetric = asymmetric && membarrier::register();
        #[cfg(not(all(target_os = "linux", not(miri), not(all(test, loom)))))]
        let asymmetric = {
            let _ = asymmetric;
            false
        };
        Domain {
            epoch: AtomicU64::new(1),
            slots: AtomicPtr::new(std::ptr::null_mut()),
            limbo: Mutex::new(Vec::new()),
            stuck: Mutex::new((0, 0)),
            asymmetric,
        }
    }

    /// A slot for this thread's reads: a free one, or a new one (which
    /// allocates, once per thread that reads concurrently with others).
    pub(crate) fn claim(&self) -> &Slot {
        // ORDERING: Acquire pairs with the Release CAS that pushed a slot:
        // its `next` and atomics are initialised before we follow it.
        let mut p = self.slots.load(Ordering::Acquire).cast_const();
        while !p.is_null() {
            // SAFETY: slots are never freed while the domain lives.
            let s = unsafe { &*p };
            // ORDERING: Acquire pairs with the Release store of the slot's
            // last owner giving it back: its writes happen before ours.
            // Relaxed on failure: someone else's slot, nothing read.
            if s.taken
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return s;
            }
            p = s.next;
        }
        // Relaxed: the CAS below publishes the slot, and the loop reads the head it returns.
        let mut head = self.slots.load(Ordering::Relaxed);
        loop {
            let new = Box::into_raw(Box::new(Slot {
                active: AtomicU64::new(0),
                taken: AtomicBool::new(true),
                next: head,
                domain: self,
                asymmetric: self.asymmetric,
            }));
            // ORDERING: Release publishes the slot's fields to claimers
            // and collectors (their Acquire loads of `slots`). Relaxed on
            // failure: we retry with the head it returns.
            match self
                .slots
                .compare_exchange(head, new, Ordering::Release, Ordering::Relaxed)
            {
                // SAFETY: just pushed; slots are never freed while the
                // domain lives.
                Ok(_) => return unsafe { &*new },
                Err(h) => {
                    // SAFETY: `new` was never shared.
                    drop(unsafe { Box::from_raw(new) });
                    head = h;
                }
            }
        }
    }

    /// Gives `slot` (claimed by this thread, outside any read section)
    /// back for another thread.
    pub(crate) fn release(&self, slot: &Slot) {
        // ORDERING: Release pairs with the next claimer's Acquire CAS.
        slot.taken.store(false, Ordering::Release);
    }

    /// Runs `f` inside a read section on `slot` (this thread's claim): no
    /// value retired after the section began is freed before it ends.
    /// Nested sections on one slot are one section. Two plain stores and a
    /// load; never waits.
    #[inline(always)]
    #[cfg_attr(not(all(test, loom)), allow(dead_code))]
    pub(crate) fn read<R>(&self, slot: &Slot, f: impl FnOnce() -> R) -> R {
        let prev = self.enter_asym(slot, self.asymmetric);
        let r = f();
        Self::leave_to(slot, prev);
        r
    }

    /// Begins a read section on `slot` (this thread's claim); false when
    /// one is already open on it (this one is then part of that, and is
    /// not to be left).
    #[inline(always)]
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn enter(&self, slot: &Slot) -> bool {
        self.enter_asym(slot, self.asymmetric) == 0
    }

    /// [`Domain::enter`], with `asymmetric` the domain's (read by the
    /// caller, from `slot`, so it stays in a register for the section).
    /// Returns the slot's mark before (0: this section opened it), for
    /// [`Domain::leave_to`]: a section ends by putting it back, so a
    /// nested one needs no test to leave the outer one's mark alone.
    #[inline(always)]
    fn enter_asym(&self, slot: &Slot, asymmetric: bool) -> u64 {
        // Relaxed: only this thread writes its slot's mark.
        let prev = slot.active.load(Ordering::Relaxed);
        if prev != 0 {
            return prev;
        }
        // Relaxed: a reader that reads the epoch a retire's `bump` made
        // sees that retire's unlink through the fences (`bump` says how).
        let e = self.epoch.load(Ordering::Relaxed);
        // ORDERING: Release (a plain store on x86, as Relaxed): a collector
        // that reads this mark must also see what happened before it on
        // this slot, such as the reads of the thread that owned the slot
        // before us (its Release of 0 heads no release sequence our store
        // would continue; `loom_rcu_slot_handed_over` fails with Relaxed
        // here). The fence below orders it before our pointer loads.
        slot.active.store(e, Ordering::Release);
        Self::light_fence(asymmetric);
        0
    }

    /// Ends the outermost read section on `slot` (one `enter` opened).
    #[inline(always)]
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn leave(slot: &Slot) {
        Self::leave_to(slot, 0);
    }

    /// Ends a read section whose `enter_asym` found the mark `prev`: puts
    /// it back (0 for the outermost section; a nested one stores the
    /// outer one's mark again, which changes nothing a collector sees).
    #[inline(always)]
    fn leave_to(slot: &Slot, prev: u64) {
        // ORDERING: Release pairs with `collect`'s Acquire load: our reads
        // happen before the free of anything the collector then finds
        // no reader holding.
        slot.active.store(prev, Ordering::Release);
    }

    /// The reader's half of the Dekker pair with `heavy_fence`: the mark
    /// stored before it is seen by a collector, or our loads after it see
    /// what that collector's writer unlinked as unlinked. With membarrier
    /// (`asymmetric`) a compiler fence: the writer's membarrier runs a
    /// full barrier on our CPU at an instruction boundary, and all we need
    /// is the compiler keeping the mark before the loads
    /// (`crate::sync::light_fence`; loom checks it as the SeqCst fence
    /// the barrier stands for).
    #[inline(always)]
    fn light_fence(asymmetric: bool) {
        // ORDERING: SeqCst fence (or its membarrier form), partner of the
        // one in `heavy_fence`.
        crate::sync::light_fence(asymmetric, Ordering::SeqCst);
    }

    /// The writer's half: a full barrier here and on every CPU running one
    /// of our threads (membarrier), or a SeqCst fence partnering the
    /// readers' own. False: the barrier failed and nothing may be freed.
    fn heavy_fence(&self) -> bool {
        // ORDERING: SeqCst fence, partner of the readers' in `light_fence`
        // (and, with membarrier, of the barrier it runs on their CPUs).
        fence(Ordering::SeqCst);
        #[cfg(all(target_os = "linux", not(miri), not(all(test, loom))))]
        if self.asymmetric {
            return membarrier::heavy();
        }
        true
    }

    /// Ends a grace period: called after the writer's unlink and its
    /// heavy fence, returns the epoch the unlinked value is retired in
    /// (a reader marked later than it cannot hold the value).
    fn bump(&self) -> u64 {
        // Relaxed: the heavy fence just before is the release half. A
        // reader whose epoch load reads this value (or a later bump's: all
        // are RMWs, so this one's release sequence) has the SeqCst fence
        // after that load synchronize with ours, so its pointer loads see
        // the unlink. With membarrier, the barrier it ran on the reader's
        // CPU came before this RMW; the reader's load, reading the RMW,
        // came after that barrier, and so do its pointer loads. The
        // reader's epoch load is Relaxed for the same reason.
        self.epoch.fetch_add(1, Ordering::Relaxed)
    }

    /// Retires `item` (already unreachable to new readers): it is dropped
    /// when no reader can still hold it, now if no reader is in a section
    /// that began before the unlink, else at a later retire. Never waits.
    pub(crate) fn retire(&self, item: Retired) {
        let Some(mut limbo) = self.lock_limbo() else {
            // Only in a forked child whose parent had another thread in
            // here at the fork (that thread is gone, the lock held for
            // good): the value is leaked, never freed under a reader.
            std::mem::forget(item);
            return;
        };
        // The fence under the lock: it comes after every unlink whose
        // value is in `limbo` (each pushed under the lock after its own
        // unlink), so the walk below may free those too.
        if !self.heavy_fence() {
            drop(limbo);
            std::mem::forget(item);
            return;
        }
        let e = self.bump();
        limbo.push((e, item));
        let mut ready = Self::take_ready(&mut limbo, self.oldest_reader().0);
        drop(limbo);
        // A reader in a section older than the retire is usually a post a
        // few tens of nanoseconds from its end: look again a few times
        // (yielding the CPU, in case it is that reader's) so what the
        // value held goes now rather than at the next retire. Bounded: a
        // reader preempted mid-section leaves the rest to a later retire
        // (what must not wait for that uses `replace_sync`). Readers never
        // wait for this.
        for _ in 0..RETIRE_TRIES {
            let Some(limbo) = self.lock_limbo() else {
                break;
            };
            if limbo.iter().all(|(t, _)| *t != e) {
                break;
            }
            drop(limbo);
            crate::sync::hint::spin_loop();
            #[cfg(not(all(test, loom)))]
            std::thread::yield_now();
            let Some(mut limbo) = self.lock_limbo() else {
                break;
            };
            ready.extend(self.collect(&mut limbo));
        }
        // Dropped outside the lock: a drop may retire in turn.
        drop(ready);
    }

    /// The retired list's lock. Writers hold it for a collection (a
    /// membarrier and a walk of the slots, microseconds), so outside loom
    /// it is tried with yields in between, and after a million failures
    /// (a second or more) given up: a lock held that long is one a forked child
    /// inherited from a thread that no longer exists (the in-process
    /// kernel of the preload forks with threads running), where waiting
    /// would hang the child.
    fn lock_limbo(&self) -> Option<crate::sync::MutexGuard<'_, Vec<(u64, Retired)>>> {
        #[cfg(all(test, loom))]
        return Some(self.limbo.lock());
        #[cfg(not(all(test, loom)))]
        {
            for _ in 0..LIMBO_TRIES {
                if let Some(g) = self.limbo.try_lock() {
                    return Some(g);
                }
                std::thread::yield_now();
            }
            None
        }
    }

    /// Takes out of `limbo` (held) what no reader can hold, after a heavy
    /// fence of its own (which comes after every unlink in `limbo`).
    fn collect(&self, limbo: &mut Vec<(u64, Retired)>) -> Vec<Retired> {
        if !self.heavy_fence() {
            return Vec::new();
        }
        Self::take_ready(limbo, self.oldest_reader().0)
    }

    /// What of `limbo` no reader can hold, given `oldest`, the oldest mark
    /// of a reader in a section: an object retired in epoch `e` is free
    /// once every slot is idle or marked with a later epoch.
    fn take_ready(limbo: &mut Vec<(u64, Retired)>, oldest: u64) -> Vec<Retired> {
        let mut ready = Vec::new();
        let mut i = 0;
        while i < limbo.len() {
            if limbo[i].0 < oldest {
                ready.push(limbo.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        ready
    }

    /// The oldest epoch a reader in a section now marked its slot with
    /// (u64::MAX: none), and the slot that has it. Call after a heavy
    /// fence that follows the unlinks in question.
    fn oldest_reader(&self) -> (u64, *const Slot) {
        let mut oldest = (u64::MAX, std::ptr::null());
        // ORDERING: Acquire pairs with `claim`'s Release push.
        let mut p = self.slots.load(Ordering::Acquire).cast_const();
        while !p.is_null() {
            // SAFETY: slots are never freed while the domain lives.
            let s = unsafe { &*p };
            // ORDERING: Acquire pairs with a reader's Release store of 0:
            // its reads happen before our free.
            let a = s.active.load(Ordering::Acquire);
            if a != 0 && a < oldest.0 {
                oldest = (a, p);
            }
            p = s.next;
        }
        oldest
    }

    /// Publishes `v` in `ptr` and waits for the readers that may hold the
    /// old value to leave, then drops it here, before returning: what its
    /// drop does (a watch's queue reference, say) is done when the caller
    /// goes on. `own` is the caller's slot, which must not be in a read
    /// section (else nothing can be waited for and the old value is
    /// retired as by [`RcuPtr::store`]). The wait is bounded: a reader
    /// that stays in its section for `SYNC_WAIT` (preempted, or a thread
    /// a fork left behind with its mark set), or one that already kept a
    /// wait waiting that long with the same mark, makes this a retire.
    /// Returns whether the old value was dropped here.
    pub(crate) fn replace_sync<T: Send + Sync + 'static>(
        &self,
        ptr: &RcuPtr<T>,
        v: Arc<T>,
        own: Option<&Slot>,
    ) -> bool {
        let old = ptr.swap(v);
        // Relaxed: only this thread's slot, which only it writes.
        let own_idle = own.is_none_or(|s| s.active.load(Ordering::Relaxed) == 0);
        if own_idle && self.heavy_fence() {
            let e = self.bump();
            // The fence above is sequenced before every walk of the wait,
            // so each walk may trust what it finds.
            if self.wait_readers_older_than(e) {
                drop(old);
                return true;
            }
        }
        self.retire(Box::new(old));
        false
    }

    /// Waits until no reader is in a section marked `e` or earlier; false
    /// when that took too long (see [`Domain::replace_sync`]).
    fn wait_readers_older_than(&self, e: u64) -> bool {
        #[cfg(not(all(test, loom)))]
        let start = std::time::Instant::now();
        #[cfg(all(test, loom))]
        let mut tries = 0;
        loop {
            let (oldest, slot) = self.oldest_reader();
            if oldest > e {
                return true;
            }
            let Some(mut stuck) = self.stuck.try_lock() else {
                return false;
            };
            if *stuck == (slot as usize, oldest) {
                return false;
            }
            #[cfg(not(all(test, loom)))]
            let late = start.elapsed() > SYNC_WAIT;
            #[cfg(all(test, loom))]
            let late = {
                tries += 1;
                tries > 2
            };
            if late {
                *stuck = (slot as usize, oldest);
                return false;
            }
            drop(stuck);
            crate::sync::hint::spin_loop();
            #[cfg(all(test, loom))]
            loom::thread::yield_now();
            #[cfg(not(all(test, loom)))]
            std::thread::yield_now();
        }
    }

    /// Objects retired and not yet freed.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.limbo.lock().len()
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        // Relaxed: `&mut self`, no other thread can reach the domain.
        let mut p = self.slots.load(Ordering::Relaxed);
        while !p.is_null() {
            // SAFETY: every slot was made by `Box::into_raw` in `claim`, and
            // no reader outlives its domain.
            let s = unsafe { Box::from_raw(p) };
            p = s.next.cast_mut();
        }
    }
}

/// Are the process's light fences compiler fences (membarrier(2)
/// registered)? Then the other side of every Dekker pair built on them
/// must call [`heavy_barrier`]. Always false under loom, whose models
/// check the fence-based fallback.
#[inline(always)]
pub(crate) fn asymmetric() -> bool {
    #[cfg(not(all(test, loom)))]
    return global::domain().asymmetric;
    #[cfg(all(test, loom))]
    return false;
}

/// Where [`asymmetric`], a full barrier on every CPU running one of this
/// process's threads (the rare side of a Dekker pair whose frequent side
/// paid only a compiler fence); nothing otherwise. False if the barrier
/// failed (membarrier cannot fail once registered; see `Domain::new`).
pub(crate) fn heavy_barrier() -> bool {
    #[cfg(all(target_os = "linux", not(miri), not(all(test, loom))))]
    if asymmetric() {
        return membarrier::heavy();
    }
    true
}

/// A pointer to an `Arc`'d value, followed by readers inside a read
/// section and replaced by writers (serialised by the caller's lock, as
/// kernel RCU writers are), the old value retired on the domain.
pub(crate) struct RcuPtr<T> {
    ptr: AtomicPtr<T>,
}

impl<T: Send + Sync + 'static> RcuPtr<T> {
    pub(crate) fn new(v: Arc<T>) -> Self {
        RcuPtr {
            ptr: AtomicPtr::new(Arc::into_raw(v).cast_mut()),
        }
    }

    /// `f` on the value now. Call inside a read section of the domain
    /// the old values are retired on.
    ///
    /// # Safety
    /// The caller is in a read section of the domain `store` retires on.
    #[inline(always)]
    pub(crate) unsafe fn get<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let p = self.load();
        // SAFETY: published by `new` or `store` from an `Arc`; not freed
        // while we are in a read section that began before its retire.
        f(unsafe { &*p })
    }

    /// The value's pointer now, with the provenance `Arc::into_raw` gave
    /// it (the whole allocation, counts included: a pointer made from a
    /// `&T` may touch only the `T`, so it must not become an `Arc`).
    #[inline(always)]
    fn load(&self) -> *const T {
        // ORDERING: Acquire pairs with `store`'s AcqRel swap: the value it
        // published is built before we read it.
        self.ptr.load(Ordering::Acquire)
    }

    /// A counted reference to the value now.
    ///
    /// # Safety
    /// As [`RcuPtr::get`].
    #[cfg_attr(all(test, loom), allow(dead_code))]
    pub(crate) unsafe fn get_arc(&self) -> Arc<T> {
        let p = self.load();
        // SAFETY: the caller's read section keeps the value alive; the
        // count we add keeps it after; `p` came from `Arc::into_raw`.
        unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }

    /// Publishes `v`; readers that follow the pointer from now on see it,
    /// and the old value is retired on `domain`.
    pub(crate) fn store(&self, v: Arc<T>, domain: &Domain) {
        domain.retire(Box::new(self.swap(v)));
    }

    /// Publishes `v` and returns the old value, which readers in sections
    /// begun before may still hold: the caller retires it (or waits).
    fn swap(&self, v: Arc<T>) -> Arc<T> {
        // ORDERING: Release publishes `v` to readers' Acquire loads. No
        // Acquire half: the old value was published by the previous
        // `store` (or `new`), which the caller's writers' lock orders
        // before us.
        let old = self
            .ptr
            .swap(Arc::into_raw(v).cast_mut(), Ordering::Release);
        // SAFETY: `old` came from `Arc::into_raw` and is no longer
        // reachable through this pointer.
        unsafe { Arc::from_raw(old) }
    }
}

impl<T> Drop for RcuPtr<T> {
    fn drop(&mut self) {
        // SAFETY: no reader can hold a reference into a cell being dropped
        // (they borrow the cell for their whole section), and the pointer
        // came from `Arc::into_raw`.
        // (Relaxed: `&mut self`, no other thread can reach the cell.)
        drop(unsafe { Arc::from_raw(self.ptr.load(Ordering::Relaxed)) });
    }
}

/// The process's domain, and this thread's slot in it.
#[cfg(not(all(test, loom)))]
pub(crate) mod global {
    use super::{Domain, Slot};
    use std::cell::Cell;
    use std::sync::OnceLock;

    static DOMAIN: OnceLock<Domain> = OnceLock::new();

    /// The process's domain (membarrier registered on first use).
    pub(crate) fn domain() -> &'static Domain {
        DOMAIN.get_or_init(|| Domain::new(true))
    }

    /// Gives this thread's claim back when the thread exits. Apart from
    /// [`SLOT`] so that the post path's lookup is a plain thread-local
    /// load: a local with a destructor is checked for "registered yet?"
    /// and "destroyed already?" on every access; `SLOT` has none, and
    /// only a thread's first read (`claim_for`) touches this one.
    struct Local(Cell<Option<&'static Slot>>);

    impl Drop for Local {
        fn drop(&mut self) {
            if let Some(s) = self.0.get() {
                // Later reads on this thread (other locals' destructors)
                // claim slots of their own (`claim_for`).
                SLOT.with(|c| c.set(None));
                domain().release(s);
            }
        }
    }

    thread_local! {
        /// This thread's claim (None: not claimed, or given back at exit).
        static SLOT: Cell<Option<&'static Slot>> = const { Cell::new(None) };
        static LOCAL: Local = const { Local(Cell::new(None)) };
    }

    /// This thread's slot, if it has claimed one.
    pub(crate) fn own_slot() -> Option<&'static Slot> {
        SLOT.with(|c| c.get())
    }

    /// A read section of the process's domain, open until dropped.
    pub(crate) struct Section {
        slot: &'static Slot,
        /// The slot's mark before the section (0: it opened the mark),
        /// put back when it ends.
        prev: u64,
        /// The domain's `asymmetric`, read once when the section opened.
        asymmetric: bool,
    }

    impl Section {
        /// [`super::asymmetric`], as read when the section opened.
        #[inline(always)]
        pub(crate) fn asymmetric(&self) -> bool {
            self.asymmetric
        }
    }

    impl Drop for Section {
        #[inline(always)]
        fn drop(&mut self) {
            Domain::leave_to(self.slot, self.prev);
        }
    }

    /// Opens a read section of the process's domain (a guard, so the
    /// reads it protects inline into the caller: a post's summary stays
    /// in its frame).
    #[inline(always)]
    pub(crate) fn enter() -> Section {
        let slot = match SLOT.with(|c| c.get()) {
            Some(s) => s,
            None => claim_for(domain()),
        };
        // SAFETY: a slot's domain outlives it (slots are freed only by
        // the domain's drop), and this one is the process's, which is
        // never dropped. Through the slot, not `domain()`: no "made
        // yet?" test of the `OnceLock` per section.
        let d = unsafe { &*slot.domain };
        let asymmetric = slot.asymmetric;
        Section {
            slot,
            prev: d.enter_asym(slot, asymmetric),
            asymmetric,
        }
    }

    /// This thread's first read (or a read after its locals began to be
    /// destroyed): claims a slot, kept in [`SLOT`] and given back at the
    /// thread's exit by [`LOCAL`]. A thread whose `LOCAL` is gone already
    /// gets a slot of its own for this section, never given back (safe;
    /// such late reads are rare).
    #[cold]
    #[inline(never)]
    fn claim_for(d: &'static Domain) -> &'static Slot {
        let s = d.claim();
        if LOCAL.try_with(|l| l.0.set(Some(s))).is_ok() {
            SLOT.with(|c| c.set(Some(s)));
        }
        s
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Domain, RcuPtr};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    static DROPPED: AtomicUsize = AtomicUsize::new(0);

    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// With membarrier (where the kernel has it) and without: a value
    /// retired while a section that may hold it is open stays until a
    /// retire after the section ends; with no section open it goes at once.
    #[test]
    fn rcu_retire_waits_for_open_sections_only() {
        for asymmetric in [true, false] {
            DROPPED.store(0, Ordering::Relaxed);
            let d = Domain::new(asymmetric);
            let p = RcuPtr::new(Arc::new(Counted));
            let s = d.claim();
            assert!(d.enter(s));
            assert!(!d.enter(s), "a nested section is the same section");
            p.store(Arc::new(Counted), &d);
            assert_eq!((d.pending(), DROPPED.load(Ordering::Relaxed)), (1, 0));
            Domain::leave(s);
            p.store(Arc::new(Counted), &d);
            assert_eq!((d.pending(), DROPPED.load(Ordering::Relaxed)), (0, 2));
            d.release(s);
            assert!(std::ptr::eq(d.claim(), s), "a slot given back is reused");
            drop(p);
            assert_eq!(DROPPED.load(Ordering::Relaxed), 3);
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::{Domain, RcuPtr};
    use crate::sync::{thread, Arc as LArc};
    use loom::cell::UnsafeCell;
    use std::sync::Arc;

    /// A value whose reads and whose drop loom checks for races.
    struct Val(UnsafeCell<u64>);

    impl Val {
        fn new(v: u64) -> Arc<Val> {
            Arc::new(Val(UnsafeCell::new(v)))
        }
        fn get(&self) -> u64 {
            // SAFETY: loom checks this read against the drop's write.
            self.0.with(|p| unsafe { *p })
        }
    }

    impl Drop for Val {
        fn drop(&mut self) {
            // A write: racing a reader's read is what loom reports.
            // SAFETY: loom checks this write against every read.
            self.0.with_mut(|p| unsafe { *p = 0 });
        }
    }

    // SAFETY: the cell is only reached as the protocol allows, which is
    // what the models check.
    unsafe impl Sync for Val {}

    /// A reader racing a writer that replaces the value and retires the
    /// old one: the reader reads a whole value (1 or 2), never one being
    /// freed, and the old value is freed at the latest by a retire after
    /// the reader left.
    #[test]
    fn loom_rcu_reader_races_replace() {
        crate::loom_tests::model(|| {
            let d = LArc::new(Domain::new(false));
            let p = LArc::new(RcuPtr::new(Val::new(1)));
            let r = {
                let (d, p) = (d.clone(), p.clone());
                thread::spawn(move || {
                    let s = d.claim();
                    // SAFETY: inside a read section of `d`.
                    let v = d.read(s, || unsafe { p.get(|v| v.get()) });
                    d.release(s);
                    assert!(v == 1 || v == 2, "read {v}");
                })
            };
            p.store(Val::new(2), &d);
            r.join().unwrap();
            p.store(Val::new(3), &d);
            assert_eq!(d.pending(), 0, "a retired value outlived every reader");
        });
    }

    /// A reader racing a writer that replaces the value synchronously:
    /// the writer drops the old value itself once no reader that may hold
    /// it is in its section (or, the wait given up, retires it), never
    /// under the reader; nothing is left retired after a later store.
    #[test]
    fn loom_rcu_reader_races_replace_sync() {
        crate::loom_tests::model(|| {
            let d = LArc::new(Domain::new(false));
            let p = LArc::new(RcuPtr::new(Val::new(1)));
            let r = {
                let (d, p) = (d.clone(), p.clone());
                thread::spawn(move || {
                    let s = d.claim();
                    // SAFETY: inside a read section of `d`.
                    let v = d.read(s, || unsafe { p.get(|v| v.get()) });
                    d.release(s);
                    assert!(v == 1 || v == 2, "read {v}");
                })
            };
            let s = d.claim();
            d.replace_sync(&p, Val::new(2), Some(s));
            d.release(s);
            r.join().unwrap();
            p.store(Val::new(3), &d);
            assert_eq!(d.pending(), 0, "a retired value outlived every reader");
        });
    }

    /// A slot handed from one reader thread to the next while a writer
    /// retires: the second reader's mark is its own (its claim is ordered
    /// after the first reader's last store to the slot), so what it reads
    /// is not freed under it.
    #[test]
    fn loom_rcu_slot_handed_over() {
        crate::loom_tests::model(|| {
            let d = LArc::new(Domain::new(false));
            let p = LArc::new(RcuPtr::new(Val::new(1)));
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let (d, p) = (d.clone(), p.clone());
                    thread::spawn(move || {
                        let s = d.claim();
                        // SAFETY: inside a read section of `d`.
                        let v = d.read(s, || unsafe { p.get(|v| v.get()) });
                        d.release(s);
                        assert!(v == 1 || v == 2, "read {v}");
                    })
                })
                .collect();
            p.store(Val::new(2), &d);
            for r in readers {
                r.join().unwrap();
            }
        });
    }

    /// Two readers claiming slots at once get different ones, and a slot
    /// given back is claimed again rather than a new one made.
    #[test]
    fn loom_rcu_claims_are_exclusive() {
        crate::loom_tests::model(|| {
            let d = LArc::new(Domain::new(false));
            let p = LArc::new(RcuPtr::new(Val::new(1)));
            let t = {
                let (d, p) = (d.clone(), p.clone());
                thread::spawn(move || {
                    let s = d.claim();
                    // SAFETY: inside a read section of `d`.
                    let v = d.read(s, || unsafe { p.get(|v| v.get()) });
                    let a: *const _ = s;
                    d.release(s);
                    (v, a as usize)
                })
            };
            let s = d.claim();
            // SAFETY: inside a read section of `d`.
            let v = d.read(s, || {
                p.store(Val::new(2), &d);
                // SAFETY: as above.
                unsafe { p.get(|v| v.get()) }
            });
            let mine: *const _ = s;
            let (tv, theirs) = t.join().unwrap();
            assert!(tv == 1 || tv == 2);
            assert_eq!(v, 2);
            d.release(s);
            let again: *const _ = d.claim();
            assert!(again == mine || again as usize == theirs, "a slot was lost");
            // Our own section held the first value past its retire.
            p.store(Val::new(3), &d);
            assert_eq!(d.pending(), 0);
        });
    }
}

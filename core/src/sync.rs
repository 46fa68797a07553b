//! The loom shim: every synchronisation primitive core uses, in one place.
//!
//! Under `cfg(all(test, loom))` the atomics, `Arc`, `UnsafeCell`, `Mutex`
//! and `thread` are loom's, so the models in `*/loom_tests.rs` explore every
//! interleaving; otherwise they are std's, parking_lot's and core's own
//! read-copy-update (`crate::rcu`).
//! Core imports these names only from here (tokio's pattern).
//!
//! [`RcuCell`] is the read-copy-update cell that posting reads without a lock:
//! an `rcu::RcuPtr` on the process's domain normally (readers do no atomic
//! read-modify-write; `crate::rcu` says why not arc-swap, which it was), and
//! a loom mutex around an `Arc` under loom, so the other models stay small
//! (the domain has models of its own, `loom_rcu_*`). Writers of an `RcuCell`
//! are serialised by the caller's own lock, as kernel RCU writers are.

#[cfg(all(test, loom))]
#[allow(unused_imports)]
pub(crate) use loom::{
    hint,
    sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    sync::Arc,
    thread,
};
#[cfg(not(all(test, loom)))]
#[allow(unused_imports)]
pub(crate) use std::{
    hint,
    sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    sync::Arc,
};

#[cfg(all(test, not(loom)))]
#[allow(unused_imports)]
pub(crate) use std::thread;

/// A cell whose contents are only reached through `with`/`with_mut`, so the
/// same code runs on std's `UnsafeCell` and loom's (which checks accesses).
/// The rings keep their record memory in plain cells and use these as
/// loom's shadow of it, so outside loom nothing constructs one.
#[derive(Debug)]
#[cfg_attr(not(loom), allow(dead_code))]
pub(crate) struct UnsafeCell<T>(
    #[cfg(all(test, loom))] loom::cell::UnsafeCell<T>,
    #[cfg(not(all(test, loom)))] std::cell::UnsafeCell<T>,
);

#[cfg_attr(not(loom), allow(dead_code))]
impl<T> UnsafeCell<T> {
    pub(crate) fn new(v: T) -> Self {
        #[cfg(all(test, loom))]
        return UnsafeCell(loom::cell::UnsafeCell::new(v));
        #[cfg(not(all(test, loom)))]
        return UnsafeCell(std::cell::UnsafeCell::new(v));
    }

    /// Runs `f` with a shared raw pointer to the contents.
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(all(test, loom))]
        return self.0.with(f);
        #[cfg(not(all(test, loom)))]
        return f(self.0.get());
    }

    /// Runs `f` with a mutable raw pointer to the contents.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(all(test, loom))]
        return self.0.with_mut(f);
        #[cfg(not(all(test, loom)))]
        return f(self.0.get());
    }
}

/// A mutex with parking_lot's infallible `lock()`, loom's under loom.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(
    #[cfg(all(test, loom))] loom::sync::Mutex<T>,
    #[cfg(not(all(test, loom)))] parking_lot::Mutex<T>,
);

#[cfg(all(test, loom))]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
#[cfg(not(all(test, loom)))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(v: T) -> Self {
        #[cfg(all(test, loom))]
        return Mutex(loom::sync::Mutex::new(v));
        #[cfg(not(all(test, loom)))]
        return Mutex(parking_lot::Mutex::new(v));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(all(test, loom))]
        return self.0.lock().expect("loom mutex poisoned");
        #[cfg(not(all(test, loom)))]
        return self.0.lock();
    }

    /// The lock if it is free now.
    #[cfg_attr(all(test, loom), allow(dead_code))]
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(all(test, loom))]
        return self.0.try_lock().ok();
        #[cfg(not(all(test, loom)))]
        return self.0.try_lock();
    }
}

/// The frequent side of a Dekker pair whose rare side pays for both
/// (`rcu::Domain::heavy_fence`, `rcu::heavy_barrier`): with
/// `asymmetric` (membarrier(2) registered) a compiler fence, the barrier
/// the rare side runs on this CPU standing for the CPU fence; else
/// `fence(order)`. Under loom it is always the fence: the models check
/// the pair as the two SeqCst fences the membarrier stands for, one
/// ordering at one call site, so weakening it weakens both forms.
/// (`order` Relaxed: no fence, a weakening's.)
#[inline(always)]
pub(crate) fn light_fence(asymmetric: bool, order: Ordering) {
    if order == Ordering::Relaxed {
        return;
    }
    #[cfg(all(test, loom))]
    {
        let _ = asymmetric;
        fence(order);
    }
    #[cfg(not(all(test, loom)))]
    if asymmetric {
        std::sync::atomic::compiler_fence(order);
    } else {
        fence(order);
    }
}

/// `x`, unchanged, but opaque to the optimiser, and in a register: an
/// empty `asm!` block that takes and gives back the word. The post path
/// loads a record's header as one word with it, so that LLVM keeps the
/// word whole instead of splitting it into byte loads (`black_box`, the
/// fallback where inline assembly is not to be used, goes through the
/// stack: three instructions more per post, measured by callgrind). Only
/// the code generated depends on it, never what it computes.
#[inline(always)]
pub(crate) fn opaque_word(x: u64) -> u64 {
    #[cfg(all(not(miri), any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let mut x = x;
        // SAFETY: the block is empty: it reads and writes only its
        // register operand, touches no memory, stack or flags.
        unsafe {
            std::arch::asm!(
                "/* {0} */",
                inout(reg) x,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        x
    }
    #[cfg(not(all(not(miri), any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        std::hint::black_box(x)
    }
}

/// Read-copy-update cell: lock-free readers see either the old or the new
/// value, never a mix. Outside loom, an [`crate::rcu::RcuPtr`] on the
/// process's domain (readers do no atomic read-modify-write).
pub(crate) struct RcuCell<T>(
    #[cfg(all(test, loom))] loom::sync::Mutex<Arc<T>>,
    #[cfg(not(all(test, loom)))] crate::rcu::RcuPtr<T>,
);

impl<T: Send + Sync + 'static> RcuCell<T> {
    pub(crate) fn new(v: T) -> Self {
        #[cfg(all(test, loom))]
        return RcuCell(loom::sync::Mutex::new(Arc::new(v)));
        #[cfg(not(all(test, loom)))]
        return RcuCell(crate::rcu::RcuPtr::new(Arc::new(v)));
    }

    /// A snapshot of the current value.
    pub(crate) fn load(&self) -> Arc<T> {
        #[cfg(all(test, loom))]
        return self.0.lock().expect("loom mutex poisoned").clone();
        #[cfg(not(all(test, loom)))]
        return {
            let _section = crate::rcu::global::enter();
            // SAFETY: inside a read section of the domain `store` retires on.
            unsafe { self.0.get_arc() }
        };
    }

    /// Runs `f` on the current value without taking a reference count
    /// (a read section: two plain stores on this thread's slot, no
    /// read-modify-write, which every post would otherwise pay).
    #[inline(always)]
    pub(crate) fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        #[cfg(all(test, loom))]
        return f(&self.0.lock().expect("loom mutex poisoned"));
        #[cfg(not(all(test, loom)))]
        return {
            let _section = crate::rcu::global::enter();
            // SAFETY: inside a read section of the domain `store` retires on.
            unsafe { self.0.get(f) }
        };
    }

    /// [`RcuCell::read`], with `f` also told `crate::rcu::asymmetric()`
    /// (the domain the section was opened on says it: no second look-up
    /// of the process's domain for a post's wake-ups).
    #[inline(always)]
    pub(crate) fn read_asym<R>(&self, f: impl FnOnce(&T, bool) -> R) -> R {
        #[cfg(all(test, loom))]
        return f(&self.0.lock().expect("loom mutex poisoned"), false);
        #[cfg(not(all(test, loom)))]
        return {
            let section = crate::rcu::global::enter();
            let asymmetric = section.asymmetric();
            // SAFETY: inside a read section of the domain `store` retires on.
            unsafe { self.0.get(|v| f(v, asymmetric)) }
        };
    }

    /// Publishes a new value and, unless a reader that may hold the old
    /// one stays in its read section too long (or this thread is in one),
    /// drops the old value before returning (`rcu::Domain::replace_sync`).
    pub(crate) fn store_sync(&self, v: T) {
        #[cfg(all(test, loom))]
        self.store(Arc::new(v));
        #[cfg(not(all(test, loom)))]
        {
            let d = crate::rcu::global::domain();
            d.replace_sync(&self.0, Arc::new(v), crate::rcu::global::own_slot());
        }
    }

    /// Publishes a new value; readers that loaded the old one keep it.
    pub(crate) fn store(&self, v: Arc<T>) {
        #[cfg(all(test, loom))]
        {
            *self.0.lock().expect("loom mutex poisoned") = v;
        }
        #[cfg(not(all(test, loom)))]
        self.0.store(v, crate::rcu::global::domain());
    }
}

impl<T: std::fmt::Debug + Send + Sync + 'static> std::fmt::Debug for RcuCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RcuCell").field(&self.load()).finish()
    }
}

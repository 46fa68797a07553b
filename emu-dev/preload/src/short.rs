//! Short locks: the library's tables (the descriptor cache, the mirrors,
//! the `/proc` opens), each held for a lookup or an insert and never
//! across a call to the kernel.
//!
//! Two hazards a plain static mutex has here:
//!
//! - **fork()** while another thread holds one: the child has the lock
//!   word held by a thread it does not have, and its first emulated call
//!   waits for ever (`preload.rs`
//!   `preload_fork_while_threads_hold_emulation_locks`, whose third thread
//!   reads an empty notification pipe without pause: 6 of 6 runs of 200
//!   forks hung before). Unlocking in the child is no cure (parking_lot's
//!   unlock may hand the lock to a parked thread the child does not have).
//!   So the fork handlers take every short lock before the fork (each is
//!   held a moment only), give them back in the parent, and in the child
//!   move each table into a new lock of its own: the table as the parent
//!   had it, consistent, since the forking thread held the lock.
//! - **A signal handler** whose emulated call wants a lock the thread it
//!   interrupted holds: [`ShortLock::lock`] says None instead of waiting
//!   for itself, and the caller goes on without the table (asks the
//!   kernel, or keeps nothing).

use parking_lot::{Mutex, MutexGuard};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

std::thread_local! {
    /// The short locks this thread holds, a bit each. Const-initialised,
    /// no destructor: a plain TLS word, safe to touch in a handler.
    static HOLDING: Cell<u32> = const { Cell::new(0) };
}

/// The short locks' bits (see [`ShortLock::new`]).
pub(crate) const KNOWN: u32 = 1;
pub(crate) const MIRRORS: u32 = 2;
pub(crate) const OPENS: u32 = 4;

/// A short lock over a `T` (see the module's header).
pub(crate) struct ShortLock<T: Default + 'static> {
    /// This lock's bit in [`HOLDING`] (each lock its own).
    bit: u32,
    /// The lock in use: the static one it began with, then a forked
    /// child's own.
    cur: AtomicPtr<Mutex<T>>,
    /// Did the fork handler take it (this fork)?
    taken: AtomicBool,
}

/// A [`ShortLock`] held by this thread.
pub(crate) struct ShortGuard<T: 'static> {
    bit: u32,
    guard: MutexGuard<'static, T>,
}

impl<T> std::ops::Deref for ShortGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for ShortGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for ShortGuard<T> {
    fn drop(&mut self) {
        // Cleared while the lock is still held (the guard drops after): a
        // handler between the two finds the bit clear and waits a moment
        // for a lock about to be free, as any other thread would.
        HOLDING.with(|h| h.set(h.get() & !self.bit));
    }
}

impl<T: Default + 'static> ShortLock<T> {
    /// A lock that starts as `first` (a static of its own), with `bit`
    /// (one bit, distinct for each short lock).
    pub(crate) const fn new(first: &'static Mutex<T>, bit: u32) -> ShortLock<T> {
        ShortLock {
            bit,
            cur: AtomicPtr::new(first as *const Mutex<T> as *mut Mutex<T>),
            taken: AtomicBool::new(false),
        }
    }

    fn mutex(&self) -> &'static Mutex<T> {
        // SAFETY: the pointer is the static's or a leaked Box's: valid for
        // ever.
        // ORDERING: Relaxed. The only store after start-up is a forked
        // child's, made while it is the child's one thread: every later
        // load is that thread's (program order) or a thread it created
        // afterwards (creating a thread orders everything before it).
        unsafe { &*self.cur.load(Ordering::Relaxed) }
    }

    /// Takes the lock; None when this thread holds it already (a signal
    /// handler that interrupted it there).
    pub(crate) fn lock(&self) -> Option<ShortGuard<T>> {
        if HOLDING.with(Cell::get) & self.bit != 0 {
            return None;
        }
        let guard = self.mutex().lock();
        HOLDING.with(|h| h.set(h.get() | self.bit));
        Some(ShortGuard {
            bit: self.bit,
            guard,
        })
    }
}

/// What the fork handlers do with a short lock (see the module's header).
pub(crate) trait ForkLock: Sync {
    /// Before fork(): takes the lock (unless this thread holds it: a fork
    /// from a handler that interrupted it there), held across the fork.
    fn before_fork(&self);
    /// After fork(), in the parent: gives back what
    /// [`ForkLock::before_fork`] took.
    fn after_fork_parent(&self);
    /// After fork(), in the child (its only thread): the table moves to a
    /// new lock, never contended; the parent's copy is never touched
    /// again. A table the fork could not take (this thread held it) starts
    /// afresh, since it may be half changed.
    fn after_fork_child(&self);
}

impl<T: Default + Send + 'static> ForkLock for ShortLock<T> {
    fn before_fork(&self) {
        if HOLDING.with(Cell::get) & self.bit != 0 {
            return;
        }
        std::mem::forget(self.mutex().lock());
        // ORDERING: Relaxed: read by this same thread after the fork.
        self.taken.store(true, Ordering::Relaxed);
    }

    fn after_fork_parent(&self) {
        // ORDERING: Relaxed: this thread's own store, before the fork.
        if self.taken.swap(false, Ordering::Relaxed) {
            // SAFETY: this thread took it in `before_fork` and forgot the
            // guard.
            unsafe { self.mutex().force_unlock() };
        }
    }

    fn after_fork_child(&self) {
        // ORDERING: Relaxed: this thread's own store, before the fork.
        let table = if self.taken.swap(false, Ordering::Relaxed) {
            // SAFETY: held by this thread since `before_fork` (its guard
            // forgotten): no one else can touch the data, and no one will
            // (the old lock is never used again).
            std::mem::take(unsafe { &mut *self.mutex().data_ptr() })
        } else {
            T::default()
        };
        let fresh: &'static Mutex<T> = Box::leak(Box::new(Mutex::new(table)));
        // ORDERING: Relaxed: see `mutex`.
        self.cur
            .store(fresh as *const Mutex<T> as *mut Mutex<T>, Ordering::Relaxed);
        HOLDING.with(|h| h.set(h.get() & !self.bit));
    }
}

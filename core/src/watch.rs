//! Watches and the per-object lists that hold them.
//!
//! Owns [`Watch`] (one queue watching one object, with the watcher's tag
//! and credentials) and [`WatchList`] (all watches on one object), and the
//! kernel's operations on them: [`add_watch_to_object`] (EBUSY, EAGAIN,
//! ENOENT), [`remove_watch_from_object`] (EBADSLT; removal records) and
//! [`remove_watch_list`] (object destruction).
//!
//! Posting walks a list without taking its lock: the list is a
//! copy-on-write snapshot in an `RcuCell` (`crate::sync`, on `crate::rcu`),
//! replaced whole by writers under the list lock, so a post sees the list
//! as it was before or after an add or remove, never half-way. The
//! writer waits for the posts that may hold the replaced snapshot (they
//! are in a read section well under a microsecond) and drops it itself
//! (`RcuCell::store_sync`), so a queue's last close has let go of its
//! watches, and they of the queue, when it returns; only a post stuck in
//! its section for longer than the bounded wait leaves the snapshot's
//! memory to a later retire. The per-user watch count is given back at
//! the unlink itself, whoever still holds the watch.
//!
//! Lock order: queue lock, then list lock (only [`add_watch_to_object`]
//! nests them); removal and queue close take one at a time.

use crate::errno::{Errno, Result};
use crate::lsm::Cred;
use crate::queue::WatchQueue;
use crate::record::Notification;
use crate::sync::{Arc, AtomicBool, AtomicU64, Mutex, Ordering, RcuCell};
use crate::uapi::WATCH_INFO_ID__SHIFT;

/// Callback run when a watch leaves its object's list. Mirrors `release_watch`.
pub type ReleaseWatch = Box<dyn Fn(&Watch) + Send + Sync>;

/// One queue watching one object. Mirrors `struct watch`.
pub struct Watch {
    queue: Arc<WatchQueue>,
    list: Arc<WatchList>,
    id: u64,
    info_id: u32,
    cred: Arc<Cred>,
    charged: AtomicBool,
    /// The policy's last "allowed by label" for this watch, as one word
    /// (`lsm::verdict_key`: its generation and the source label's id), so
    /// the next post from a task of that label skips the hook. One word,
    /// so no seqlock: a load sees a whole key or the initial
    /// `lsm::NO_VERDICT`.
    verdict: AtomicU64,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("id", &self.id)
            .field("tag", &self.tag())
            .field("cred", &self.cred)
            .finish()
    }
}

impl Watch {
    /// A watch by `queue` on the object with id `id` (for keys, the serial)
    /// listed in `list`, tagged `tag`, set by `cred`. Not yet added.
    ///
    /// Mirrors `init_watch()` plus the caller's setting of `id` and `info_id`.
    pub fn new(
        queue: &Arc<WatchQueue>,
        list: &Arc<WatchList>,
        id: u64,
        tag: u8,
        cred: Arc<Cred>,
    ) -> Arc<Self> {
        Arc::new(Watch {
            queue: queue.clone(),
            list: list.clone(),
            id,
            info_id: (tag as u32) << WATCH_INFO_ID__SHIFT,
            cred,
            charged: AtomicBool::new(false),
            verdict: AtomicU64::new(crate::lsm::NO_VERDICT),
        })
    }

    /// The watched object's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The watcher's tag.
    pub fn tag(&self) -> u8 {
        (self.info_id >> WATCH_INFO_ID__SHIFT) as u8
    }

    /// The tag, shifted into the `WATCH_INFO_ID` field.
    pub fn info_id(&self) -> u32 {
        self.info_id
    }

    /// Credentials of the task that set the watch.
    pub fn cred(&self) -> &Cred {
        &self.cred
    }

    /// Does `policy` (of generation `generation`) let `n` (not META, not
    /// yet tagged) from `source` reach this watch? `key` is
    /// `lsm::verdict_key(generation, source's label id)`
    /// (not remembered unless `lsm::remembered(key)`). Asks the hook only
    /// when the watch does not remember an allow for this key, and
    /// remembers one the policy says holds for the label alone.
    #[inline(always)]
    pub(crate) fn policy_allows(
        &self,
        policy: &dyn crate::lsm::Policy,
        key: u64,
        source: &Cred,
        n: &Notification,
    ) -> bool {
        // Relaxed: the word is the whole fact (an allow for this
        // generation and label); nothing else is read through it, and a
        // stale word only costs a call to the hook.
        if self.verdict.load(Ordering::Relaxed) == key {
            return true;
        }
        self.ask_policy(policy, key, source, n)
    }

    /// [`Watch::policy_allows`] when the watch remembers no allow: the
    /// hook itself, out of line so the remembered case stays small.
    #[cold]
    #[inline(never)]
    fn ask_policy(
        &self,
        policy: &dyn crate::lsm::Policy,
        key: u64,
        source: &Cred,
        n: &Notification,
    ) -> bool {
        let mut tagged = *n;
        tagged.set_info_id(self.info_id);
        if policy
            .post_notification(&self.cred, source, &tagged)
            .is_err()
        {
            return false;
        }
        if crate::lsm::remembered(key) && policy.post_allowed_by_label(&self.cred, source.label()) {
            // Relaxed: see `policy_allows`. A post racing us remembers an
            // answer too, maybe of another generation or label: either
            // will do (the loser's next post asks the hook again).
            self.verdict.store(key, Ordering::Relaxed);
        }
        true
    }

    /// The queue fed by this watch.
    pub fn queue(&self) -> &Arc<WatchQueue> {
        &self.queue
    }

    /// Takes the watch off its object's list (queue close). No removal record.
    pub(crate) fn detach_from_object(this: &Arc<Self>) {
        if this.list.unlink(|w| Arc::ptr_eq(w, this)).is_empty() {
            return;
        }
        if let Some(release) = &this.list.release_watch {
            release(this);
        }
    }
}

impl Watch {
    /// Gives the user's watch count back, once (when the watch leaves its
    /// list, or at its drop if it never did).
    fn uncharge(&self) {
        // Relaxed: the flag only makes the give-back happen once; the
        // count itself is a Relaxed counter (`UserStruct::nr_watches`).
        if self.charged.swap(false, Ordering::Relaxed) {
            self.cred.user.uncharge_watch();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.uncharge();
    }
}

/// All watches on one object. Mirrors `struct watch_list`.
pub struct WatchList {
    watchers: RcuCell<Vec<Arc<Watch>>>,
    lock: Mutex<()>,
    release_watch: Option<ReleaseWatch>,
}

impl std::fmt::Debug for WatchList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchList")
            .field("watchers", &self.watchers.load().len())
            .finish()
    }
}

impl WatchList {
    /// An empty list.
    pub fn new() -> Arc<Self> {
        Self::with_release(None)
    }

    /// An empty list whose watches run `release` when they leave it.
    pub fn with_release(release: Option<ReleaseWatch>) -> Arc<Self> {
        Arc::new(WatchList {
            watchers: RcuCell::new(Vec::new()),
            lock: Mutex::new(()),
            release_watch: release,
        })
    }

    /// The watches now, newest first (what a post walks).
    pub fn snapshot(&self) -> Arc<Vec<Arc<Watch>>> {
        self.watchers.load()
    }

    /// Runs `f` on the watches now, newest first, without taking a
    /// reference to the list (what a post walks: no atomic read-modify-
    /// write for the snapshot itself).
    #[inline(always)]
    pub fn with_watches<R>(&self, f: impl FnOnce(&[Arc<Watch>]) -> R) -> R {
        self.watchers.read(|v| f(v))
    }

    /// [`WatchList::with_watches`], with `f` also told
    /// `crate::rcu::asymmetric()` (for the wake-ups of a post's fan-out).
    #[inline(always)]
    pub(crate) fn with_watches_asym<R>(&self, f: impl FnOnce(&[Arc<Watch>], bool) -> R) -> R {
        self.watchers.read_asym(|v, asymmetric| f(v, asymmetric))
    }

    /// Number of watches now.
    pub fn len(&self) -> usize {
        self.watchers.load().len()
    }

    /// True when no queue watches the object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes the watches `pick` selects; returns them. What leaving the
    /// list changes that anyone can see happens here, before the return,
    /// whatever posts still hold the old snapshot: the user's watch count
    /// drops at once, and the old snapshot (with its references to the
    /// watches and their queues) is dropped here too unless a post that
    /// may hold it stays in its read section too long
    /// (`RcuCell::store_sync`); only its memory may outlive the call.
    fn unlink(&self, pick: impl Fn(&Arc<Watch>) -> bool) -> Vec<Arc<Watch>> {
        let _l = self.lock.lock();
        let cur = self.watchers.load();
        let (gone, keep): (Vec<_>, Vec<_>) = cur.iter().cloned().partition(|w| pick(w));
        if !gone.is_empty() {
            drop(cur);
            for w in &gone {
                w.uncharge();
            }
            self.watchers.store_sync(keep);
        }
        gone
    }
}

/// Adds `watch` to its object's list and its queue's list. `limit` is the
/// caller's soft `RLIMIT_NOFILE`, which bounds the user's watch count.
///
/// Mirrors `add_watch_to_object()`.
///
/// # Errors
/// - `ENOENT`: the queue is already closed.
/// - `EBUSY`: this queue already watches this object (whatever the tag).
/// - `EAGAIN`: the user would hold more than `limit` watches.
pub fn add_watch_to_object(watch: &Arc<Watch>, limit: u64) -> Result<()> {
    let list = &watch.list;
    watch.queue.with_watches(|qwatches, closed| {
        if closed {
            return Err(Errno::ENOENT);
        }
        let _l = list.lock.lock();
        let cur = list.watchers.load();
        if cur
            .iter()
            .any(|w| w.id == watch.id && Arc::ptr_eq(&w.queue, &watch.queue))
        {
            return Err(Errno::EBUSY);
        }
        if !watch.cred.user.try_charge_watch(limit) {
            return Err(Errno::EAGAIN);
        }
        // Relaxed: published with the watch by the RcuCell store below.
        watch.charged.store(true, Ordering::Relaxed);
        let mut next = Vec::with_capacity(cur.len() + 1);
        next.push(watch.clone());
        next.extend(cur.iter().cloned());
        drop(cur);
        // Synchronously, as `unlink`: a snapshot left to a later retire
        // would keep every watch in it, and their queues, alive after a
        // close had detached them.
        list.watchers.store_sync(next);
        qwatches.push(watch.clone());
        Ok(())
    })
}

/// Removes the watch of `queue` on object `id` (or, with `all`, every watch
/// on the list) and posts each removed watch's queue a removal record for
/// `id`, bypassing filter and policy (lost like any record if the queue is
/// full; skipped if it is closed).
///
/// Mirrors `remove_watch_from_object()`.
///
/// # Errors
/// - `EBADSLT`: no such watch.
pub fn remove_watch_from_object(
    list: &WatchList,
    queue: Option<&Arc<WatchQueue>>,
    id: u64,
    all: bool,
) -> Result<()> {
    let gone =
        list.unlink(|w| all || (w.id == id && queue.is_some_and(|q| Arc::ptr_eq(&w.queue, q))));
    if gone.is_empty() {
        return Err(Errno::EBADSLT);
    }
    for w in gone {
        let mut n = Notification::removal(id);
        n.set_info_id(w.info_id);
        w.queue.post(&n);
        w.queue
            .with_watches(|qw, _| qw.retain(|x| !Arc::ptr_eq(x, &w)));
        if let Some(release) = &list.release_watch {
            release(&w);
        }
    }
    Ok(())
}

/// The watched object `id` is going away: every watch on it is removed with
/// a removal record to its queue. Mirrors `remove_watch_list()`.
pub fn remove_watch_list(list: &WatchList, id: u64) {
    let _ = remove_watch_from_object(list, None, id, true);
}

/// The common end of the watch system calls (`KEYCTL_WATCH_KEY`,
/// `watch_mount`, `watch_sb`, `watch_devices`): tag −1 removes the watch of
/// `queue` on object `id` of `list` (posting a removal record); any other
/// tag asks `allow` (the LSM hook) and adds a watch tagged `tag` for `cred`,
/// within `limit` (the soft RLIMIT_NOFILE).
///
/// # Errors
/// Removing: `EBADSLT`. Adding: `allow`'s error, then as
/// [`add_watch_to_object`] (`ENOENT`, `EBUSY`, `EAGAIN`).
pub fn watch_or_unwatch(
    list: &Arc<WatchList>,
    queue: &Arc<WatchQueue>,
    id: u64,
    tag: i32,
    cred: &Cred,
    limit: u64,
    allow: impl FnOnce() -> crate::lsm::Verdict,
) -> Result<()> {
    if tag < 0 {
        return remove_watch_from_object(list, Some(queue), id, false);
    }
    allow()?;
    let w = Watch::new(queue, list, id, tag as u8, Arc::new(cred.clone()));
    add_watch_to_object(&w, limit)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::lsm::UserStruct;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A queue watching object 7 on a fresh list, for a fresh user.
    fn watched() -> (Arc<WatchQueue>, Arc<WatchList>, Arc<UserStruct>) {
        let q = WatchQueue::new();
        let list = WatchList::new();
        let user = UserStruct::new(1000);
        let w = Watch::new(
            &q,
            &list,
            7,
            1,
            Arc::new(Cred::new(1000, 1000, user.clone())),
        );
        add_watch_to_object(&w, 10).unwrap();
        assert_eq!((list.len(), user.nr_watches()), (1, 1));
        (q, list, user)
    }

    /// A post holding the list's snapshot (in its read section) for as
    /// long as it is told to: the queue's last close still takes the watch
    /// off the object and gives back the user's watch count before it
    /// returns (kernel bug 15's race, made certain: the post never leaves
    /// while the close runs).
    ///
    /// One test with the next scenario, run after it: the domain is the
    /// process's, so this post's section, open across the close, would
    /// also hold up the other's close were they to run at once.
    #[test]
    fn watch_queue_close_detaches_at_once_and_frees_once_posts_leave() {
        close_detaches_at_once_under_a_holding_post();
        close_frees_the_snapshot_once_posts_leave();
    }

    fn close_detaches_at_once_under_a_holding_post() {
        let (q, list, user) = watched();
        let (held_tx, held_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let post = {
            let list = list.clone();
            std::thread::spawn(move || {
                list.with_watches(|ws| {
                    held_tx.send(ws.len()).unwrap();
                    done_rx.recv().unwrap();
                    // The snapshot is still whole: its watch is readable.
                    ws.iter().map(|w| w.id()).sum::<u64>()
                })
            })
        };
        assert_eq!(held_rx.recv().unwrap(), 1);
        q.clear();
        assert_eq!(
            list.len(),
            0,
            "the closed queue's watch is still on the object"
        );
        assert_eq!(
            user.nr_watches(),
            0,
            "the closed queue's watch is still charged"
        );
        done_tx.send(()).unwrap();
        assert_eq!(post.join().unwrap(), 7);
    }

    /// A post in its section when the close comes, leaving soon after:
    /// the close waits for it and drops the old snapshot itself, so the
    /// queue is freed when its last holder lets go, not at some later
    /// replacement anywhere in the process.
    fn close_frees_the_snapshot_once_posts_leave() {
        let (q, list, user) = watched();
        let (held_tx, held_rx) = mpsc::channel();
        let post = {
            let list = list.clone();
            std::thread::spawn(move || {
                list.with_watches(|ws| {
                    held_tx.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                    ws.len()
                })
            })
        };
        held_rx.recv().unwrap();
        let weak = Arc::downgrade(&q);
        q.clear();
        drop(q);
        assert!(
            weak.upgrade().is_none(),
            "the closed queue outlived its close"
        );
        assert_eq!(user.nr_watches(), 0);
        assert_eq!(post.join().unwrap(), 1);
    }
}

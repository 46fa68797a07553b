//! Delivering one event to every queue watching an object.
//!
//! Owns [`post_watch_notification`], mirroring
//! `__post_watch_notification()` in kernel/watch_queue.c: walk the object's
//! watch list (lock-free snapshot), skip watches on other object ids, put the
//! watch's tag into `info`, apply the queue's filter, ask the policy's
//! `post_notification` hook, and post one copy into the queue's ring.

use crate::lsm::{Cred, Policy};
use crate::record::Notification;
use crate::ring::PostOutcome;
use crate::watch::{Watch, WatchList};

/// What one post did, summed over the watches it reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PostSummary {
    /// Watches on this object id.
    pub matched: u32,
    /// Copies queued.
    pub delivered: u32,
    /// Copies lost (ring full, queue unsized or closed).
    pub lost: u32,
    /// Copies a queue filter rejected.
    pub filtered: u32,
    /// Copies the policy refused.
    pub denied: u32,
}

/// Posts `n` to every watch on `list` whose object id is `id`. `cred` is the
/// credentials of the task that caused the event. Never blocks.
///
/// Mirrors `post_watch_notification()`; with no list (`None`, the object was
/// never watched) it does nothing.
pub fn post_watch_notification(
    list: Option<&WatchList>,
    n: &Notification,
    cred: &Cred,
    id: u64,
    policy: &dyn Policy,
) -> PostSummary {
    let mut sum = PostSummary::default();
    let Some(list) = list else { return sum };
    list.with_watches(|watches| {
        for w in watches {
            post_one(w, n, cred, id, policy, &mut sum);
        }
    });
    sum
}

/// One watch's share of [`post_watch_notification`].
#[inline]
fn post_one(
    w: &Watch,
    n: &Notification,
    cred: &Cred,
    id: u64,
    policy: &dyn Policy,
    sum: &mut PostSummary,
) {
    {
        if w.id() != id {
            return;
        }
        sum.matched += 1;
        let mut copy = *n;
        copy.set_info_id(w.info_id());
        let q = w.queue();
        if !q.filter_allows(&copy) {
            sum.filtered += 1;
            return;
        }
        if !copy.is_meta() && policy.post_notification(w.cred(), cred, &copy).is_err() {
            q.count_denied();
            sum.denied += 1;
            return;
        }
        match q.post(&copy) {
            PostOutcome::Posted => sum.delivered += 1,
            PostOutcome::Lost => sum.lost += 1,
        }
    }
}

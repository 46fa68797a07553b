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
    // Once per event, not per watch: the policy's generation; the
    // source's label key for the watches' verdict caches was made once
    // per task, when its label was set (`Cred::set_label`).
    let generation = policy.generation();
    let key = if generation == 0 {
        None
    } else {
        cred.label_key()
    };
    let src = Source {
        cred,
        policy,
        generation,
        key,
    };
    list.with_watches(|watches| {
        for w in watches {
            post_one(w, n, id, &src, &mut sum);
        }
    });
    sum
}

/// What every watch of one post shares about its source and policy.
struct Source<'a> {
    cred: &'a Cred,
    policy: &'a dyn Policy,
    generation: u64,
    key: Option<[u64; 2]>,
}

/// One watch's share of [`post_watch_notification`].
#[inline]
fn post_one(w: &Watch, n: &Notification, id: u64, src: &Source<'_>, sum: &mut PostSummary) {
    {
        if w.id() != id {
            return;
        }
        sum.matched += 1;
        // The tag goes into the info word on the way, never by a copy of
        // the record (a 127-byte copy per watch was a tenth of a post).
        let info = n.info_with_id(w.info_id());
        let q = w.queue();
        if !q.filter_allows_info(n, info) {
            sum.filtered += 1;
            return;
        }
        if !n.is_meta() && !w.policy_allows(src.policy, src.generation, src.key, src.cred, n) {
            q.count_denied();
            sum.denied += 1;
            return;
        }
        match q.post_info(n, info) {
            PostOutcome::Posted => sum.delivered += 1,
            PostOutcome::Lost => sum.lost += 1,
        }
    }
}

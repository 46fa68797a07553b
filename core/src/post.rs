//! Delivering one event to every queue watching an object.
//!
//! Owns [`post_watch_notification`], mirroring
//! `__post_watch_notification()` in kernel/watch_queue.c: walk the object's
//! watch list (lock-free snapshot), skip watches on other object ids, put the
//! watch's tag into `info`, apply the queue's filter, ask the policy's
//! `post_notification` hook, and post one copy into the queue's ring.

use crate::lsm::{verdict_key, Cred, Policy};
use crate::record::Notification;
use crate::ring::PostOutcome;
use crate::uapi::{WATCH_INFO_ID, WATCH_TYPE_META};
use crate::watch::WatchList;

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
    let Some(list) = list else {
        return PostSummary::default();
    };
    // Once per event, not per watch: the key of the watches' verdict
    // caches, from the policy's generation and the source's label id
    // (made once per task, when its label was set: `Cred::set_label`), or
    // a key no remembered allow holds when the answer is not to be
    // remembered.
    let key = verdict_key(policy.generation(), cred.label_id());
    // The header as one word, worked on per watch: `black_box` keeps it
    // whole (without it LLVM splits the word back into byte loads, one
    // value per use, each kept on the stack across the walk: 14
    // instructions more per one-queue post, measured by callgrind). Only
    // the code generated depends on it, never what it computes.
    let untagged = std::hint::black_box(n.header()) & !(u64::from(WATCH_INFO_ID) << 32);
    let meta = untagged as u32 & 0x00ff_ffff == WATCH_TYPE_META;
    list.with_watches_asym(|watches, asymmetric| {
        // Only `matched` is counted on the way of a delivered copy; every
        // other outcome counts itself, and `delivered` is what is left.
        let (mut matched, mut filtered, mut denied, mut lost) = (0u32, 0u32, 0u32, 0u32);
        for w in watches {
            if w.id() != id {
                continue;
            }
            matched += 1;
            // The tag goes into the info word on the way, never by a copy
            // of the record (a 127-byte copy per watch was a tenth of a
            // post).
            let header = untagged | u64::from(w.info_id()) << 32;
            let q = w.queue();
            if !q.filter_allows_header(n, header) {
                filtered += 1;
                continue;
            }
            if !meta && !w.policy_allows(policy, key, cred, n) {
                q.count_denied();
                denied += 1;
                continue;
            }
            if q.post_header(n, header, asymmetric) == PostOutcome::Lost {
                lost += 1;
            }
        }
        PostSummary {
            matched,
            delivered: matched - filtered - denied - lost,
            lost,
            filtered,
            denied,
        }
    })
}

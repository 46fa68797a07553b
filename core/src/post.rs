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
use crate::sync::Arc;
use crate::uapi::{WATCH_INFO_ID, WATCH_TYPE_META};
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

/// What became of the copy for one watch on the object.
#[derive(Clone, Copy)]
enum Delivery {
    Delivered,
    Filtered,
    Denied,
    Lost,
}

impl Delivery {
    /// The summary of a post that reached one watch, which did this.
    #[inline(always)]
    fn summary(self) -> PostSummary {
        let one = |d| u32::from(self as u8 == d as u8);
        PostSummary {
            matched: 1,
            delivered: one(Delivery::Delivered),
            lost: one(Delivery::Lost),
            filtered: one(Delivery::Filtered),
            denied: one(Delivery::Denied),
        }
    }
}

/// One event's values, worked out once for every watch it reaches.
struct Event<'a> {
    n: &'a Notification,
    /// Bytes 0..8 as one word, the tag bits cleared.
    untagged: u64,
    meta: bool,
    policy: &'a dyn Policy,
    key: u64,
    cred: &'a Cred,
    id: u64,
}

impl Event<'_> {
    /// What became of the copy for `w` (None: it watches another id).
    #[inline(always)]
    fn deliver(&self, w: &Watch, asymmetric: bool) -> Option<Delivery> {
        if w.id() != self.id {
            return None;
        }
        // The tag goes into the info word on the way, never by a copy
        // of the record (a 127-byte copy per watch was a tenth of a
        // post).
        let header = self.untagged | u64::from(w.info_id()) << 32;
        let q = w.queue();
        Some(if !q.filter_allows_header(self.n, header) {
            Delivery::Filtered
        } else if !self.meta && !w.policy_allows(self.policy, self.key, self.cred, self.n) {
            q.count_denied();
            Delivery::Denied
        } else if q.post_header(self.n, header, asymmetric) == PostOutcome::Lost {
            Delivery::Lost
        } else {
            Delivery::Delivered
        })
    }
}

impl Event<'_> {
    /// Offers the event to every watch of `watches` (more than one, or
    /// none): out of line, so that the one-watch post keeps the
    /// registers, and this loop its own.
    #[inline(never)]
    fn walk(&self, watches: &[Arc<Watch>], asymmetric: bool) -> PostSummary {
        // Only `matched` is counted on the way of a delivered copy; every
        // other outcome counts itself, and `delivered` is what is left.
        let (mut matched, mut filtered, mut denied, mut lost) = (0u32, 0u32, 0u32, 0u32);
        for w in watches {
            let Some(d) = self.deliver(w, asymmetric) else {
                continue;
            };
            matched += 1;
            match d {
                Delivery::Delivered => {}
                Delivery::Filtered => filtered += 1,
                Delivery::Denied => denied += 1,
                Delivery::Lost => lost += 1,
            }
        }
        PostSummary {
            matched,
            delivered: matched - filtered - denied - lost,
            lost,
            filtered,
            denied,
        }
    }
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
    // The header as one word, worked on per watch: `opaque_word` keeps it
    // whole (without it LLVM splits the word back into byte loads, one
    // value per use, each kept on the stack across the walk: 14
    // instructions more per one-queue post, measured by callgrind).
    let untagged = crate::sync::opaque_word(n.header()) & !(u64::from(WATCH_INFO_ID) << 32);
    let meta = untagged as u32 & 0x00ff_ffff == WATCH_TYPE_META;
    let ev = Event {
        n,
        untagged,
        meta,
        policy,
        key,
        cred,
        id,
    };
    list.with_watches_asym(|watches, asymmetric| {
        // The common shape, one watch on the object, apart: no loop, and
        // no counts kept across one (callgrind: 28 instructions fewer per
        // one-queue post).
        if let [w] = watches {
            return ev
                .deliver(w, asymmetric)
                .map_or_else(PostSummary::default, Delivery::summary);
        }
        // A copy made here, on this way only: the walk takes it by
        // address, and the one-watch post's values stay in registers.
        Event { ..ev }.walk(watches, asymmetric)
    })
}

//! A few words published under a sequence count, read with loads only.
//!
//! Owns [`SeqWords`], the post path's read side for things that change
//! rarely and are read on every delivery: a queue's inline filter (a
//! watch's remembered policy allow used it too, until it became one word:
//! `Watch::policy_allows`). It is the seqlock of the kernel's `seqcount_t`
//! (Documentation/locking/seqlock.rst; in C11 terms, Hans Boehm, "Can
//! Seqlocks Get Along With Programming Language Memory Models?", 2012,
//! whose fence-based reader this follows): a reader loads the count, the
//! words and the count again, and trusts the words only if the count was
//! even and did not move. Unlike the kernel's, a reader here never retries:
//! a reader that meets a writer gets `None` and takes its slow path (the
//! policy hook itself, the filter behind its RCU cell), so reading stays
//! wait-free and no reader ever waits for a writer that was preempted
//! half-way. A writer that finds another writer at work gives up
//! ([`SeqWords::try_write`] is false) instead of waiting, for the same
//! reason.
//!
//! Why not the read-copy-update cell the watch lists use (`crate::rcu`):
//! words this small are cheaper copied inline than reached through a
//! pointer, and these loads are plain `mov`s on x86 (arc-swap's guard,
//! which the lists used before, was two locked instructions). The words are atomics so a torn read is never undefined
//! behaviour, only a detected miss.
//!
//! # Synchronization
//!
//! | atomic | writers | readers | ordering | partner |
//! |---|---|---|---|---|
//! | `seq` | a writer: odd (CAS), then even | readers, before and after the words; the next writer's CAS | CAS Acquire + fence(Release) / Release store; Acquire load, then fence(Acquire) + Relaxed load | the writer's fence vs the reader's fence (a reader that saw a new word sees the odd count); the even store vs the first load (a reader that saw the count sees the words) and vs the next writer's CAS (one write's words are ordered before the next one's) |
//! | `words[i]` | the writer holding the odd count | readers | Relaxed | ordered by `seq`'s fences and its Release/Acquire pair |

use crate::sync::{fence, AtomicU64, Ordering};

/// `N` words and their sequence count.
#[derive(Debug)]
pub(crate) struct SeqWords<const N: usize> {
    seq: AtomicU64,
    words: [AtomicU64; N],
}

impl<const N: usize> SeqWords<N> {
    /// All words zero, count 0 (a reader sees `[0; N]`).
    pub(crate) fn new() -> Self {
        SeqWords {
            seq: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The words as one writer left them, or None when a writer is at work
    /// (or finished one while we read). Loads only; never waits.
    #[inline]
    #[cfg_attr(not(all(test, loom)), allow(dead_code))]
    pub(crate) fn read(&self) -> Option<[u64; N]> {
        // Relaxed: a torn set of words is caught by the second count load.
        self.read_with(|w| std::array::from_fn(|i| w[i].load(Ordering::Relaxed)))
    }

    /// `f` of the words as one writer left them, or None when a writer is
    /// at work (or finished one while we read): `f` loads (Relaxed) only
    /// the words it needs, and its answer is thrown away if they may have
    /// been torn, so it must do nothing but compute from them. Loads only;
    /// never waits.
    #[inline(always)]
    pub(crate) fn read_with<R>(&self, f: impl FnOnce(&[AtomicU64; N]) -> R) -> Option<R> {
        // ORDERING: Acquire pairs with the Release store that ends a write:
        // the words that write stored are visible to the loads below
        // (Relaxed here let a reader trust that write's count with an older
        // word: loom_seqwords_reader_after_write_relaxed_channel).
        let s = self.seq.load(Ordering::Acquire);
        // Even when `s` is odd (a writer at work): `f` only computes from
        // atomics, so torn words are no harm, and the one test below
        // throws its answer away (one branch on the post path, not two).
        let out = f(&self.words);
        // ORDERING: Acquire fence, partner of the writer's Release fence: if
        // any load above read a word a later write stored, that write's odd
        // count happens before the load below, which then sees it moved.
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence above.
        ((self.seq.load(Ordering::Relaxed) ^ s) | (s & 1) == 0).then_some(out)
    }

    /// Replaces the words, unless another writer is at work (false: nothing
    /// written; the caller's readers keep their slow path). Never waits.
    pub(crate) fn try_write(&self, words: [u64; N]) -> bool {
        // Relaxed: the CAS below decides.
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 != 0 {
            return false;
        }
        // ORDERING: Acquire on success pairs with the Release store that
        // ended the previous write: its words are then ordered before ours
        // (Relaxed here let a later writer's words land under an earlier
        // one's: loom_seqwords_never_torn). The odd count is ordered before
        // our words by the fence below. Failure: Relaxed, we give up.
        if self
            .seq
            .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // ORDERING: Release fence, partner of the reader's Acquire fence:
        // the odd count is ordered before every word stored below.
        fence(Ordering::Release);
        for (w, v) in self.words.iter().zip(words) {
            // Relaxed: ordered by the fence above and the store below.
            w.store(v, Ordering::Relaxed);
        }
        // ORDERING: Release pairs with the reader's first (Acquire) load.
        // The count is 64 bits: it does not wrap.
        self.seq.store(s + 2, Ordering::Release);
        true
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::SeqWords;
    use crate::sync::{thread, Arc};

    /// Two writers and a reader: the reader gets one writer's words whole
    /// (or the initial ones), never a mix, and a write that returned true
    /// before the reader started is what it reads (unless a later one).
    #[test]
    fn loom_seqwords_never_torn() {
        crate::loom_tests::model(|| {
            let c = Arc::new(SeqWords::<2>::new());
            let w1 = {
                let c = c.clone();
                thread::spawn(move || c.try_write([1, 1]))
            };
            let w2 = {
                let c = c.clone();
                thread::spawn(move || c.try_write([2, 2]))
            };
            if let Some(v) = c.read() {
                assert!(v == [0, 0] || v == [1, 1] || v == [2, 2], "torn: {v:?}");
            }
            let (a, b) = (w1.join().unwrap(), w2.join().unwrap());
            let v = c.read().expect("no writer left");
            assert!(a || b || v == [0, 0]);
            assert!(
                (a && v == [1, 1]) || (b && v == [2, 2]) || (!a && !b),
                "{a} {b} {v:?}"
            );
        });
    }

    /// One writer writes twice; a reader racing it gets one write whole
    /// (the count it trusted is the count that write left), never the
    /// newer count with an older word.
    #[test]
    fn loom_seqwords_reader_races_two_writes() {
        crate::loom_tests::model(|| {
            let c = Arc::new(SeqWords::<2>::new());
            let w = {
                let c = c.clone();
                thread::spawn(move || {
                    assert!(c.try_write([1, 1]));
                    assert!(c.try_write([2, 2]));
                })
            };
            if let Some(v) = c.read() {
                assert!(v == [0, 0] || v == [1, 1] || v == [2, 2], "torn: {v:?}");
            }
            w.join().unwrap();
        });
    }

    /// A reader racing one writer of three words: whole or nothing.
    #[test]
    fn loom_seqwords_reader_races_writer() {
        crate::loom_tests::model(|| {
            let c = Arc::new(SeqWords::<3>::new());
            let w = {
                let c = c.clone();
                thread::spawn(move || assert!(c.try_write([7, 8, 9])))
            };
            if let Some(v) = c.read() {
                assert!(v == [0, 0, 0] || v == [7, 8, 9], "torn: {v:?}");
            }
            w.join().unwrap();
            assert_eq!(c.read(), Some([7, 8, 9]));
        });
    }

    /// A reader that starts after a write finished, told so only through a
    /// Relaxed flag (no synchronisation): the count it reads may be the
    /// finished write's, and then the words must be that write's too, not
    /// older ones. This is the model that needs the reader's first load to
    /// be Acquire. Without the flag loom never shows a reader the finished
    /// count: its DPOR remembers only an object's last access, and the
    /// writer's own first (Relaxed) load of the count hides the race between
    /// the reader's load and the writer's CAS, so the reader's load is never
    /// scheduled after the write.
    #[test]
    fn loom_seqwords_reader_after_write_relaxed_channel() {
        use crate::sync::{AtomicBool, Ordering};
        crate::loom_tests::model(|| {
            let c = Arc::new(SeqWords::<2>::new());
            let done = Arc::new(AtomicBool::new(false));
            let w = {
                let (c, done) = (c.clone(), done.clone());
                thread::spawn(move || {
                    assert!(c.try_write([7, 8]));
                    // Relaxed on purpose: the model is a reader that
                    // learned of the write without synchronising with it.
                    done.store(true, Ordering::Relaxed);
                })
            };
            if done.load(Ordering::Relaxed) {
                if let Some(v) = c.read() {
                    assert!(v == [0, 0] || v == [7, 8], "torn: {v:?}");
                }
            }
            w.join().unwrap();
        });
    }
}

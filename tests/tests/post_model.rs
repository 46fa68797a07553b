//! Model-based test of the whole post path: a sequential reference model
//! (written from spec §1.7–§1.12, not from the implementation) of watches,
//! queue filters, a policy's decisions, removal records, loss marking, the
//! pipe generation's read() and the 2019 ring's consumer, driven with the
//! same random operation sequences as the real `watchq_core`. Every step's
//! result, every byte read and the final statistics must agree.
//!
//! The 2019 queue's ring is one page here, more than a run can fill; its
//! overflow, skip and tail rules have their own model in `mmap_ring.rs`.

use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::Arc;
use watchq_core::lsm::{Denial, Verdict};
use watchq_core::ring::mmap::Consumer;
use watchq_core::uapi::*;
use watchq_core::{
    add_watch_to_object, post_watch_notification, remove_watch_from_object, remove_watch_list,
    Cred, Errno, Notification, Policy, ReadMode, Watch, WatchList, WatchQueue,
};

const QUEUES: usize = 3; // 0 and 1: pipe generation; 2: the 2019 ring
const OBJECTS: usize = 2;
const NOTES_PER_PAGE: usize = 32;

/// Refuses records to odd-tagged watches when the source is uid 1.
struct OddTagsFromUid1;

impl Policy for OddTagsFromUid1 {
    fn name(&self) -> &str {
        "odd-tags-from-uid-1"
    }
    fn post_notification(&self, _watcher: &Cred, source: &Cred, n: &Notification) -> Verdict {
        let tag = (n.info() >> WATCH_INFO_ID__SHIFT) & 0xff;
        if source.uid == 1 && tag % 2 == 1 {
            return Err(Denial::new(Errno::EACCES, "odd tag"));
        }
        Ok(())
    }
}

/// One filter entry: (type, subtype bits, info_filter, info_mask).
type Entry = (u32, u32, u32, u32);

#[derive(Clone, Debug)]
enum Op {
    SetSize(usize, u64),
    SetFilter(usize, Option<Vec<Entry>>),
    Watch(usize, usize, u8),
    Unwatch(usize, usize),
    Destroy(usize),
    Post(usize, u8, u32),
    /// `n` posts of cycling subtypes from uid 0 (fills rings quickly).
    Burst(usize, u8),
    Read(usize, usize),
    Close(usize),
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        prop_oneof![4 => Just(WATCH_TYPE_KEY_NOTIFY), 1 => Just(WATCH_TYPE_META), 1 => 6..64u32],
        prop_oneof![Just(u32::MAX), 0..256u32],
        prop_oneof![Just(0u32), Just(0xff00u32)],
        0..4u32,
    )
        .prop_map(|(t, sub, mask, tag)| (t, sub, (tag << 8) & mask, mask))
}

fn op() -> impl Strategy<Value = Op> {
    let q = 0..QUEUES;
    let o = 0..OBJECTS;
    prop_oneof![
        2 => (q.clone(), prop_oneof![1..70u64, Just(0), Just(1)]).prop_map(|(q, n)| Op::SetSize(q, n)),
        1 => (q.clone(), proptest::option::of(proptest::collection::vec(entry(), 1..4)))
            .prop_map(|(q, f)| Op::SetFilter(q, f)),
        3 => (q.clone(), o.clone(), 0..4u8).prop_map(|(q, o, t)| Op::Watch(q, o, t)),
        1 => (q.clone(), o.clone()).prop_map(|(q, o)| Op::Unwatch(q, o)),
        1 => o.clone().prop_map(Op::Destroy),
        8 => (o.clone(), 0..9u8, 0..3u32).prop_map(|(o, s, u)| Op::Post(o, s, u)),
        1 => (o, 10..40u8).prop_map(|(o, n)| Op::Burst(o, n)),
        3 => (q.clone(), prop_oneof![Just(4096usize), 1..40usize]).prop_map(|(q, n)| Op::Read(q, n)),
        1 => q.prop_map(Op::Close),
    ]
}

// ---- the model ------------------------------------------------------------

/// A record as spec §1.4 lays it out: `{type:24, subtype:8}`, `info`
/// (length | tag << 8), payload.
fn record(type_: u32, subtype: u8, tag: u8, payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len() as u32;
    let mut r = (type_ | u32::from(subtype) << 24).to_le_bytes().to_vec();
    r.extend_from_slice(&(len | u32::from(tag) << 8).to_le_bytes());
    r.extend_from_slice(payload);
    r
}

fn key_record(subtype: u8, tag: u8, key: u32) -> Vec<u8> {
    let mut p = key.to_le_bytes().to_vec();
    p.extend_from_slice(&0u32.to_le_bytes());
    record(WATCH_TYPE_KEY_NOTIFY, subtype, tag, &p)
}

/// The 16-byte form carries a non-zero object id; id 0 gets the header only.
fn removal_record(tag: u8, id: u64) -> Vec<u8> {
    let payload = if id == 0 {
        vec![]
    } else {
        id.to_le_bytes().to_vec()
    };
    record(
        WATCH_TYPE_META,
        WATCH_META_REMOVAL_NOTIFICATION,
        tag,
        &payload,
    )
}

fn loss_record() -> Vec<u8> {
    record(WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION, 0, &[])
}

#[derive(Default, Debug, PartialEq, Eq, Clone, Copy)]
struct Counts {
    posted: u64,
    lost: u64,
    lost_unsized: u64,
    read: u64,
    loss_records: u64,
    filtered: u64,
    denied: u64,
}

#[derive(Default)]
struct ModelQueue {
    v2019: bool,
    capacity: Option<usize>,
    filter: Option<Vec<Entry>>,
    /// Queued records, each with "a loss follows it".
    records: VecDeque<(Vec<u8>, bool)>,
    note_loss: bool,
    closed: bool,
    counts: Counts,
}

impl ModelQueue {
    /// `filter_watch_notification()`: with a filter, only an entry of the
    /// record's type whose subtype bit is set and whose info test passes.
    fn passes(&self, type_: u32, subtype: u8, info: u32) -> bool {
        let Some(f) = &self.filter else { return true };
        f.iter().any(|&(t, sub, filt, mask)| {
            t == type_ && subtype < 32 && sub & (1 << subtype) != 0 && info & mask == filt
        })
    }

    /// `post_one_notification()`.
    fn post(&mut self, rec: Vec<u8>) {
        if self.closed {
            return;
        }
        self.counts.posted += 1;
        match self.capacity {
            None => {
                self.counts.lost += 1;
                self.counts.lost_unsized += 1;
            }
            Some(cap) if self.records.len() == cap => {
                self.counts.lost += 1;
                self.records.back_mut().expect("full and empty").1 = true;
            }
            Some(_) => self.records.push_back((rec, false)),
        }
    }

    /// `pipe_read()` on a notification pipe, non-blocking, writer open.
    fn read(&mut self, len: usize) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        loop {
            if self.note_loss {
                if len - out.len() < 8 {
                    break;
                }
                out.extend(loss_record());
                self.note_loss = false;
                self.counts.loss_records += 1;
            }
            let Some((rec, _)) = self.records.front() else {
                break;
            };
            if rec.len() > len - out.len() {
                break;
            }
            let (rec, loss) = self.records.pop_front().unwrap();
            out.extend(rec);
            self.counts.read += 1;
            self.note_loss |= loss;
            if out.len() == len || self.records.is_empty() {
                break;
            }
        }
        match (out.is_empty(), self.note_loss || !self.records.is_empty()) {
            (false, _) => Ok(out),
            (true, true) => Err(Errno::ENOBUFS),
            (true, false) => Err(Errno::EAGAIN),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct ModelWatch {
    queue: usize,
    object: usize,
    tag: u8,
}

#[derive(Default)]
struct Model {
    queues: Vec<ModelQueue>,
    /// In the order they were added (the list's order does not matter to
    /// any one queue: a post reaches each queue through one watch).
    watches: Vec<ModelWatch>,
}

// ---- the real thing -------------------------------------------------------

struct Real {
    queues: Vec<Arc<WatchQueue>>,
    lists: Vec<Arc<WatchList>>,
    cred: Arc<Cred>,
}

/// Closing the pipes, as the last close of each file would: a queue and
/// its watches refer to each other until `clear()` (the kernel's release).
impl Drop for Real {
    fn drop(&mut self) {
        for q in &self.queues {
            q.clear();
        }
    }
}

fn filter_blob(entries: &[Entry]) -> Vec<u8> {
    let mut b = (entries.len() as u32).to_le_bytes().to_vec();
    b.extend_from_slice(&0u32.to_le_bytes());
    for &(t, sub, filt, mask) in entries {
        for w in [t, filt, mask, sub, 0, 0, 0, 0, 0, 0, 0] {
            b.extend_from_slice(&w.to_le_bytes());
        }
    }
    b
}

fn read_real(q: &WatchQueue, len: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; len];
    let mode = ReadMode {
        nonblock: true,
        deadline: None,
    };
    q.read(&mut buf, mode, &|| true).map(|n| buf[..n].to_vec())
}

fn drain_2019(q: &WatchQueue) -> Vec<Vec<u8>> {
    let Some(ring) = q.ring_2019() else {
        return Vec::new();
    };
    let mut c = Consumer::of(ring.storage()).unwrap();
    let mut out = Vec::new();
    while let Some(r) = c.pop().unwrap() {
        out.push(r.bytes);
    }
    out
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut m = Model::default();
    let mut real = Real {
        queues: Vec::new(),
        lists: (0..OBJECTS).map(|_| WatchList::new()).collect(),
        cred: Arc::new(Cred::root()),
    };
    for i in 0..QUEUES {
        let v2019 = i == QUEUES - 1;
        real.queues.push(if v2019 {
            WatchQueue::new_2019()
        } else {
            WatchQueue::new()
        });
        m.queues.push(ModelQueue {
            v2019,
            ..ModelQueue::default()
        });
    }
    let policy = OddTagsFromUid1;
    let ops = ops.into_iter().flat_map(|op| match op {
        Op::Burst(o, n) => (0..n).map(|i| Op::Post(o, i % 9, 0)).collect(),
        op => vec![op],
    });
    for op in ops {
        match op {
            Op::SetSize(q, n) => {
                let mq = &mut m.queues[q];
                let want = if mq.closed {
                    None // not reachable through a closed pipe; skip
                } else if mq.capacity.is_some() {
                    Some(Err(Errno::EBUSY))
                } else if mq.v2019 {
                    // Pages, a power of two; one page is plenty here.
                    (n == 1).then(|| {
                        mq.capacity = Some(usize::MAX);
                        Ok(())
                    })
                } else if n == 0 {
                    Some(Err(Errno::EINVAL))
                } else {
                    mq.capacity = Some((n as usize).div_ceil(NOTES_PER_PAGE) * NOTES_PER_PAGE);
                    Some(Ok(()))
                };
                if let Some(want) = want {
                    prop_assert_eq!(real.queues[q].set_size(n), want, "{:?}", op);
                }
            }
            Op::SetFilter(q, ref f) => {
                // The 2019 generation's filter has its own info layout
                // (tests/dev_watch_queue.rs covers it).
                if m.queues[q].closed || m.queues[q].v2019 {
                    continue;
                }
                let blob = f.as_ref().map(|e| filter_blob(e));
                prop_assert_eq!(real.queues[q].set_filter(blob.as_deref()), Ok(()));
                // Entries of types the kernel does not know are dropped.
                m.queues[q].filter = f.as_ref().map(|e| {
                    e.iter()
                        .copied()
                        .filter(|&(t, ..)| t < WATCH_TYPE__NR)
                        .collect()
                });
            }
            Op::Watch(q, o, tag) => {
                if m.queues[q].closed {
                    continue;
                }
                let dup = m.watches.iter().any(|w| w.queue == q && w.object == o);
                let w = Watch::new(
                    &real.queues[q],
                    &real.lists[o],
                    o as u64,
                    tag,
                    real.cred.clone(),
                );
                let got = add_watch_to_object(&w, 1 << 20);
                prop_assert_eq!(got, if dup { Err(Errno::EBUSY) } else { Ok(()) });
                if !dup {
                    m.watches.push(ModelWatch {
                        queue: q,
                        object: o,
                        tag,
                    });
                }
            }
            Op::Unwatch(q, o) => {
                let at = m.watches.iter().position(|w| w.queue == q && w.object == o);
                let got = remove_watch_from_object(
                    &real.lists[o],
                    Some(&real.queues[q]),
                    o as u64,
                    false,
                );
                match at {
                    None => prop_assert_eq!(got, Err(Errno::EBADSLT)),
                    Some(i) => {
                        prop_assert_eq!(got, Ok(()));
                        let w = m.watches.remove(i);
                        m.queues[q].post(removal_record(w.tag, o as u64));
                    }
                }
            }
            Op::Destroy(o) => {
                remove_watch_list(&real.lists[o], o as u64);
                let (gone, kept): (Vec<_>, Vec<_>) = m.watches.iter().partition(|w| w.object == o);
                m.watches = kept;
                for w in gone {
                    m.queues[w.queue].post(removal_record(w.tag, o as u64));
                }
            }
            Op::Post(o, subtype, uid) => {
                let mut src = Cred::root();
                src.uid = uid;
                let n = Notification::key(subtype, o as u32, 0);
                post_watch_notification(Some(&real.lists[o]), &n, &src, o as u64, &policy);
                for w in m.watches.iter().filter(|w| w.object == o) {
                    let mq = &mut m.queues[w.queue];
                    let rec = key_record(subtype, w.tag, o as u32);
                    let info = u32::from_le_bytes(rec[4..8].try_into().unwrap());
                    if !mq.passes(WATCH_TYPE_KEY_NOTIFY, subtype, info) {
                        mq.counts.filtered += 1;
                    } else if uid == 1 && w.tag % 2 == 1 {
                        mq.counts.denied += 1;
                    } else {
                        mq.post(rec);
                    }
                }
            }
            Op::Read(q, len) => {
                let mq = &mut m.queues[q];
                if mq.closed {
                    continue;
                }
                if mq.v2019 {
                    let got = drain_2019(&real.queues[q]);
                    let want: Vec<Vec<u8>> = mq
                        .records
                        .drain(..)
                        .map(|(r, _)| Notification::decode_all(&r).unwrap()[0].to_v2().unwrap())
                        .collect();
                    mq.counts.read += want.len() as u64;
                    prop_assert_eq!(got, want);
                } else {
                    prop_assert_eq!(read_real(&real.queues[q], len), mq.read(len), "{:?}", op);
                }
            }
            Op::Burst(..) => unreachable!("expanded above"),
            Op::Close(q) => {
                real.queues[q].clear();
                let mq = &mut m.queues[q];
                mq.closed = true;
                mq.records.clear();
                m.watches.retain(|w| w.queue != q);
            }
        }
        for (i, q) in real.queues.iter().enumerate() {
            let s = q.stats();
            let mq = &m.queues[i];
            let mut got = Counts {
                posted: s.posted,
                lost: s.lost,
                lost_unsized: s.lost_unsized,
                read: s.read,
                loss_records: s.loss_records,
                filtered: s.filtered,
                denied: s.denied,
            };
            if mq.v2019 {
                // The consumer reads the 2019 ring directly; the queue's
                // read() count does not see it.
                got.read = mq.counts.read;
            }
            prop_assert_eq!(got, mq.counts, "queue {}", i);
            if !mq.closed && !mq.v2019 {
                prop_assert_eq!(s.queued as usize, mq.records.len(), "queue {}", i);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn post_path_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}

/// A fixed history touching every rule once, so a failure names the rule.
#[test]
fn post_path_fixed_history() {
    use Op::*;
    run(vec![
        Post(0, 1, 0),  // no watch: nothing
        Watch(0, 0, 1), // unsized queue: lost
        Post(0, 1, 0),
        SetSize(0, 1), // 32 notes
        SetFilter(
            0,
            Some(vec![(WATCH_TYPE_KEY_NOTIFY, 1 << 2, 0x100, 0xff00)]),
        ),
        Post(0, 1, 0), // filtered: subtype 1
        Post(0, 2, 0), // passes
        Post(0, 2, 1), // denied: odd tag from uid 1
        SetFilter(0, None),
        Watch(1, 0, 2),
        SetSize(1, 33), // 64 notes
        Watch(2, 0, 3),
        SetSize(2, 1),
        Post(0, 3, 1), // q0 denied, q1 gets it, q2 denied
        Unwatch(0, 0), // removal record, not filtered nor denied
        Read(0, 4096),
        Read(0, 8), // EAGAIN
        Destroy(0),
        Read(1, 4096),
        Read(2, 4096),
        Close(1),
    ])
    .unwrap();
}

/// Overflow: the loss is marked on the newest record and read after it.
#[test]
fn post_path_fixed_overflow() {
    use Op::*;
    let mut ops = vec![Watch(0, 1, 0), SetSize(0, 1)];
    ops.extend((0..40).map(|i| Post(1, (i % 9) as u8, 0)));
    ops.extend([Read(0, 100), Read(0, 7), Read(0, 4096), Read(0, 4096)]);
    run(ops).unwrap();
}

//! The merged design's ring (`watchq_core::ring::pipe`): proptest against
//! a sequential model of the kernel's notification pipe ring
//! (`post_one_notification()` and the buffers `pipe_read()` takes: one
//! record per slot, whole records only, a failed post marking a loss on
//! the newest record, losses collapsing until it is read), driven with
//! single pops and read()-sized batches on rings of 1 to 40 records.

use proptest::prelude::*;
use std::collections::VecDeque;
use watchq_core::ring::pipe::{PipeRing, Pop};
use watchq_core::PostOutcome;

/// A record of `len` bytes (8..=127) whose payload is `id`'s bytes over
/// and over, so a record copied from the wrong slot or torn shows.
fn rec(id: u32, len: usize) -> Vec<u8> {
    let mut r = vec![0u8; len];
    r[0] = 1;
    r[4] = len as u8;
    for (i, b) in r[8..].iter_mut().enumerate() {
        *b = id.to_le_bytes()[i % 4];
    }
    r
}

/// The ring, sequentially.
struct Model {
    capacity: usize,
    /// Queued records, each with "a loss follows it".
    queued: VecDeque<(Vec<u8>, bool)>,
}

impl Model {
    fn post(&mut self, r: Vec<u8>) -> PostOutcome {
        if self.queued.len() == self.capacity {
            self.queued.back_mut().expect("full, so not empty").1 = true;
            return PostOutcome::Lost;
        }
        self.queued.push_back((r, false));
        PostOutcome::Posted
    }

    /// What taking the record at the tail into `room` bytes gives.
    fn pop(&mut self, room: usize) -> (Pop, Option<Vec<u8>>) {
        match self.queued.front() {
            None => (Pop::Empty, None),
            Some((r, _)) if r.len() > room => (Pop::TooBig(r.len()), None),
            Some(_) => {
                let (r, loss) = self.queued.pop_front().expect("just seen");
                (Pop::Record { len: r.len(), loss }, Some(r))
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Post a record of this many bytes.
    Post(usize),
    /// Pop one record into this many bytes.
    Pop(usize),
    /// One batch into this many bytes, records back to back, taking at
    /// most this many records.
    Batch(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop_oneof![Just(16usize), 8..=127usize].prop_map(Op::Post),
        2 => prop_oneof![Just(128usize), 0..140usize].prop_map(Op::Pop),
        2 => (prop_oneof![Just(4096usize), 0..400usize], 1..60usize).prop_map(|(r, n)| Op::Batch(r, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn pipe_ring_matches_sequential_model(capacity in 1usize..=40, ops in proptest::collection::vec(op(), 1..300)) {
        let ring = PipeRing::new(capacity).unwrap();
        let mut reader = ring.reader().unwrap();
        let mut model = Model { capacity, queued: VecDeque::new() };
        let mut posted = 0u64;
        let mut lost = 0u64;
        for (i, o) in ops.into_iter().enumerate() {
            match o {
                Op::Post(len) => {
                    let r = rec(i as u32, len);
                    let got = ring.try_post(&r);
                    prop_assert_eq!(got, model.post(r));
                    posted += 1;
                    lost += u64::from(got == PostOutcome::Lost);
                }
                Op::Pop(room) => {
                    let mut buf = vec![0u8; room];
                    let got = reader.pop(&mut buf);
                    let (want, bytes) = model.pop(room);
                    prop_assert_eq!(got, want);
                    if let Some(b) = bytes {
                        prop_assert_eq!(&buf[..b.len()], &b[..]);
                    }
                }
                Op::Batch(room, most) => {
                    let mut buf = vec![0u8; room];
                    let mut at = 0;
                    let mut b = reader.batch();
                    for _ in 0..most {
                        let got = b.take(&mut buf[at..]);
                        let (want, bytes) = model.pop(room - at);
                        prop_assert_eq!(got, want);
                        match bytes {
                            Some(r) => {
                                prop_assert_eq!(&buf[at..at + r.len()], &r[..]);
                                at += r.len();
                            }
                            None => break,
                        }
                        // The next record's length, as the reader peeks it.
                        prop_assert_eq!(b.peek_len(), model.queued.front().map(|(r, _)| r.len()));
                    }
                    drop(b);
                }
            }
            prop_assert_eq!(ring.occupancy(), model.queued.len());
            prop_assert_eq!(ring.has_published(), !model.queued.is_empty());
        }
        // Drain what is left: every record posted and not lost is read once.
        let mut buf = [0u8; 128];
        let mut rest = 0u64;
        while let Pop::Record { .. } = reader.pop(&mut buf) {
            rest += 1;
        }
        prop_assert_eq!(rest, model.queued.len() as u64);
        prop_assert!(posted >= lost);
    }
}

/// The ring's loss rules on one fixed history: losses collapse onto the
/// newest record, a batch publishes its progress once (the room it makes
/// appears after the batch ends), and the loss travels with its record
/// whether it is taken by a pop or by a batch.
#[test]
fn pipe_ring_batch_makes_room_when_it_ends() {
    let ring = PipeRing::new(4).unwrap();
    let mut reader = ring.reader().unwrap();
    for i in 0..4 {
        assert_eq!(ring.try_post(&rec(i, 16)), PostOutcome::Posted);
    }
    assert_eq!(ring.try_post(&rec(9, 16)), PostOutcome::Lost);
    assert_eq!(ring.try_post(&rec(9, 16)), PostOutcome::Lost);
    let mut buf = [0u8; 4096];
    let mut b = reader.batch();
    for _ in 0..3 {
        assert_eq!(
            b.take(&mut buf),
            Pop::Record {
                len: 16,
                loss: false
            }
        );
    }
    assert_eq!(b.taken(), 3);
    // Nothing is published yet: the ring is still full to producers.
    assert_eq!(ring.try_post(&rec(9, 16)), PostOutcome::Lost);
    assert_eq!(
        b.take(&mut buf),
        Pop::Record {
            len: 16,
            loss: true
        }
    );
    assert_eq!(b.take(&mut buf), Pop::Empty);
    drop(b);
    assert_eq!(ring.occupancy(), 0);
    for i in 10..14 {
        assert_eq!(ring.try_post(&rec(i, 16)), PostOutcome::Posted);
    }
    assert_eq!(
        reader.pop(&mut buf),
        Pop::Record {
            len: 16,
            loss: false
        }
    );
    assert_eq!(&buf[..16], &rec(10, 16)[..]);
}

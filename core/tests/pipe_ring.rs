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

/// What the consumer meets next: a record, or a loss after the record
/// before it (the kernel's `PIPE_BUF_FLAG_LOSS` on that buffer).
#[derive(Clone, Debug, PartialEq)]
enum Token {
    Record(Vec<u8>),
    Loss,
}

/// The ring, sequentially.
struct Model {
    capacity: usize,
    queued: VecDeque<Token>,
}

impl Model {
    fn records(&self) -> usize {
        self.queued.iter().filter(|t| **t != Token::Loss).count()
    }

    fn post(&mut self, r: Vec<u8>) -> PostOutcome {
        if self.records() == self.capacity {
            // Losses before the marked record is read collapse into one.
            if self.queued.back() != Some(&Token::Loss) {
                self.queued.push_back(Token::Loss);
            }
            return PostOutcome::Lost;
        }
        self.queued.push_back(Token::Record(r));
        PostOutcome::Posted
    }

    /// What taking the next thing into `room` bytes gives.
    fn pop(&mut self, room: usize) -> (Pop, Option<Vec<u8>>) {
        match self.queued.front() {
            None => (Pop::Empty, None),
            Some(Token::Loss) => {
                self.queued.pop_front();
                (Pop::Loss, None)
            }
            Some(Token::Record(r)) if r.len() > room => (Pop::TooBig(r.len()), None),
            Some(Token::Record(_)) => match self.queued.pop_front() {
                Some(Token::Record(r)) => (Pop::Record { len: r.len() }, Some(r)),
                _ => unreachable!("just seen"),
            },
        }
    }

    /// The length of the next record, as the reader peeks it (a loss
    /// before it does not hide it).
    fn peek_len(&self) -> Option<usize> {
        self.queued.iter().find_map(|t| match t {
            Token::Record(r) => Some(r.len()),
            Token::Loss => None,
        })
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

/// Cases and the longest operation sequence: few and short under Miri,
/// which interprets every step (scripts/test.sh's Miri step runs these at
/// three cases of at most 30 operations; one full-size case did not
/// finish in 8 minutes).
const CASES: u32 = if cfg!(miri) { 3 } else { 400 };
const OPS: usize = if cfg!(miri) { 30 } else { 300 };

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn pipe_ring_matches_sequential_model(capacity in 1usize..=40, ops in proptest::collection::vec(op(), 1..OPS)) {
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
                        match (got, bytes) {
                            (_, Some(r)) => {
                                prop_assert_eq!(&buf[at..at + r.len()], &r[..]);
                                at += r.len();
                            }
                            (Pop::Loss, None) => {}
                            _ => break,
                        }
                        // The next record's length, as the reader peeks it.
                        prop_assert_eq!(b.peek_len(), model.peek_len());
                    }
                    drop(b);
                }
            }
            prop_assert_eq!(ring.occupancy(), model.records());
            prop_assert_eq!(ring.has_published(), !model.queued.is_empty());
        }
        // Drain what is left: every record posted and not lost is read once.
        let mut buf = [0u8; 128];
        let mut rest = 0u64;
        loop {
            match reader.pop(&mut buf) {
                Pop::Record { .. } => rest += 1,
                Pop::Loss => {}
                _ => break,
            }
        }
        prop_assert_eq!(rest, model.records() as u64);
        prop_assert!(posted >= lost);
    }
}

/// The ring's loss rules on one fixed history: losses collapse into one
/// after the newest record, a batch publishes its progress once (the room
/// it makes appears after the batch ends), and the record that takes the
/// marked position does not report the loss again.
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
        assert_eq!(b.take(&mut buf), Pop::Record { len: 16 });
    }
    assert_eq!(b.taken(), 3);
    // Nothing is published yet: the ring is still full to producers.
    assert_eq!(ring.try_post(&rec(9, 16)), PostOutcome::Lost);
    assert_eq!(b.take(&mut buf), Pop::Record { len: 16 });
    assert_eq!(b.take(&mut buf), Pop::Loss);
    assert_eq!(b.take(&mut buf), Pop::Empty);
    drop(b);
    assert_eq!(ring.occupancy(), 0);
    for i in 10..14 {
        assert_eq!(ring.try_post(&rec(i, 16)), PostOutcome::Posted);
    }
    assert_eq!(reader.pop(&mut buf), Pop::Record { len: 16 });
    assert_eq!(&buf[..16], &rec(10, 16)[..]);
}

/// A malformed record (its length outside a note's 8..=127 bytes) is
/// dropped without marking a loss; a record's own length field is not
/// what the reader copies by.
#[test]
fn pipe_ring_takes_lengths_from_the_producer() {
    let ring = PipeRing::new(4).unwrap();
    let mut reader = ring.reader().unwrap();
    assert_eq!(ring.try_post(&[0u8; 7]), PostOutcome::Lost);
    assert_eq!(ring.try_post(&[0u8; 128]), PostOutcome::Lost);
    let mut liar = rec(1, 24);
    liar[4] = 127;
    assert_eq!(ring.try_post(&liar), PostOutcome::Posted);
    assert_eq!(ring.try_post(&rec(2, 16)), PostOutcome::Posted);
    let mut buf = [0u8; 4096];
    assert_eq!(reader.pop(&mut buf), Pop::Record { len: 24 });
    assert_eq!(&buf[..24], &liar[..]);
    assert_eq!(reader.pop(&mut buf), Pop::Record { len: 16 });
    assert_eq!(&buf[..16], &rec(2, 16)[..]);
    assert_eq!(reader.pop(&mut buf), Pop::Empty);
}

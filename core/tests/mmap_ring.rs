//! The 2019 ring (`watchq_core::ring::mmap`): proptest against a
//! sequential model of spec §2.3–§2.4, arbitrary consumer-written tails
//! never making the producer write outside the ring (a guarded buffer),
//! and a consumer in another process reading through a sealed memfd.

use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use watchq_core::ring::mmap::{Consumer, HeapStorage, MemfdStorage, MmapRing, RingStorage};
use watchq_core::uapi::v2::*;
use watchq_core::PostOutcome;

const CANARY: u32 = 0xdead_beef;
const GUARD: usize = 64;

/// Ring memory with canary words before and after it.
struct Guarded {
    all: Box<[AtomicU32]>,
    len: usize,
}

impl Guarded {
    fn new(bytes: usize) -> Self {
        let len = bytes / 4;
        Guarded {
            all: (0..len + 2 * GUARD)
                .map(|_| AtomicU32::new(CANARY))
                .collect(),
            len,
        }
    }

    fn guards_intact(&self) -> bool {
        let g = |r: std::ops::Range<usize>| {
            self.all[r]
                .iter()
                .all(|w| w.load(Ordering::Relaxed) == CANARY)
        };
        g(0..GUARD) && g(GUARD + self.len..2 * GUARD + self.len)
    }
}

// SAFETY: the slice is fixed for the value's life, a power of two of words,
// and reached only through atomics.
unsafe impl RingStorage for Guarded {
    fn words(&self) -> &[AtomicU32] {
        &self.all[GUARD..GUARD + self.len]
    }
}

/// A record of `slots` slots tagged `id`.
fn rec(id: u32, slots: u32) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&(WATCH_TYPE_KEY_NOTIFY | (id % 8) << 24).to_le_bytes());
    r.extend_from_slice(&((slots * 8) | ((id & 0xff) << 24)).to_le_bytes());
    for k in 1..slots {
        r.extend_from_slice(&id.to_le_bytes());
        r.extend_from_slice(&k.to_le_bytes());
    }
    r
}

/// The 2019 ring, sequentially: where a record goes, from spec §2.3
/// (with the empty-at-the-wrap case the June 2019 code lost).
struct Model {
    size: u32,
    head: u32,
    tail: u32,
    overrun: bool,
    queued: VecDeque<(Vec<u8>, bool, u32)>,
}

impl Model {
    const META: u32 = 3;

    fn place(&self, len: u32) -> Option<u32> {
        let (size, m) = (self.size, Self::META);
        let used = self.head.wrapping_sub(self.tail);
        let (h, t) = (self.head % size, self.tail % size);
        if used >= size || (t != 0 && t < m) {
            return None;
        }
        let before_tail = |from: u32| t >= from && len <= t - from;
        if used == 0 || h > t {
            if h == 0 {
                return (m + len <= size).then_some(m + len);
            }
            if len <= size - h {
                return Some(len);
            }
            return before_tail(m).then_some(size - h + m + len);
        }
        if h == 0 {
            return before_tail(m).then_some(m + len);
        }
        before_tail(h).then_some(len)
    }

    fn post(&mut self, r: &[u8]) -> PostOutcome {
        let len = (r.len() / 8) as u32;
        match self.place(len) {
            None => {
                self.overrun = true;
                PostOutcome::Lost
            }
            Some(total) => {
                self.head = self.head.wrapping_add(total);
                self.queued
                    .push_back((r.to_vec(), std::mem::take(&mut self.overrun), self.head));
                PostOutcome::Posted
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Post(u32),
    Pop,
    /// A read()-sized batch (`Consumer::read`) into this many bytes.
    Read(usize),
    Scribble(u32),
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1u32..=16).prop_map(Op::Post),
        4 => Just(Op::Pop),
        2 => prop_oneof![Just(4096usize), 0..200usize].prop_map(Op::Read),
        1 => any::<u32>().prop_map(Op::Scribble),
        1 => Just(Op::Restore),
    ]
}

/// Cases and the longest operation sequence: few and short under Miri,
/// which interprets every step (scripts/test.sh's Miri step runs these at
/// three cases of at most 30 operations; one full-size case did not
/// finish in 8 minutes).
const CASES: u32 = if cfg!(miri) { 3 } else { 300 };
const OPS: usize = if cfg!(miri) { 30 } else { 200 };

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn mmap_ring_matches_sequential_model(bytes in prop_oneof![Just(256usize), Just(512), Just(1024)], ops in proptest::collection::vec(op(), 1..OPS)) {
        let storage = Guarded::new(bytes);
        let ring = MmapRing::new(storage).unwrap();
        let mut model = Model { size: (bytes / 8) as u32, head: 3, tail: 3, overrun: false, queued: VecDeque::new() };
        let mut consumer = Consumer::new(ring.storage().words()).unwrap();
        let tail_word = &ring.storage().words()[TAIL_WORD];
        let mut sane = true;
        // Where the consumer really is (a scribbled tail is not it).
        let mut consumer_tail = 3u32;
        for (i, o) in ops.into_iter().enumerate() {
            match o {
                Op::Post(slots) => {
                    let r = rec(i as u32, slots);
                    let got = ring.try_post(&r);
                    prop_assert_eq!(got, model.post(&r));
                    prop_assert_eq!(ring.head(), model.head);
                }
                Op::Pop if sane => {
                    let got = consumer.pop().unwrap();
                    match model.queued.pop_front() {
                        None => {
                            prop_assert!(got.is_none());
                            model.tail = model.head;
                            consumer_tail = model.tail;
                        }
                        Some((bytes, overrun, end)) => {
                            let got = got.expect("a record was queued");
                            prop_assert_eq!(&got.bytes[8..], &bytes[8..]);
                            prop_assert_eq!(got.bytes[..4].to_vec(), bytes[..4].to_vec());
                            prop_assert_eq!(got.overrun(), overrun);
                            model.tail = end;
                            consumer_tail = end;
                        }
                    }
                    prop_assert_eq!(tail_word.load(Ordering::Relaxed), model.tail);
                }
                Op::Read(room) if sane => {
                    // Every whole record that fits, back to back; ENOBUFS
                    // when the first does not; 0 when empty.
                    let mut buf = vec![0u8; room];
                    let got = consumer.read(&mut buf);
                    let mut want = Vec::new();
                    while let Some((bytes, overrun, _)) = model.queued.front() {
                        if want.len() + bytes.len() > room {
                            break;
                        }
                        let mut b = bytes.clone();
                        if *overrun {
                            let info = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) | WATCH_INFO_OVERRUN;
                            b[4..8].copy_from_slice(&info.to_le_bytes());
                        }
                        want.extend(b);
                        model.queued.pop_front();
                    }
                    match model.queued.front() {
                        Some(_) if want.is_empty() => prop_assert_eq!(got, Err(watchq_core::Errno::ENOBUFS)),
                        _ => {
                            prop_assert_eq!(got, Ok(want.len()));
                            prop_assert_eq!(&buf[..want.len()], &want[..]);
                        }
                    }
                    // The walk stops at the start of the record that did not
                    // fit (past the SKIP padding before it), or at head.
                    model.tail = match model.queued.front() {
                        Some((bytes, _, end)) => end.wrapping_sub(bytes.len() as u32 / 8),
                        None => model.head,
                    };
                    consumer_tail = model.tail;
                    prop_assert_eq!(tail_word.load(Ordering::Relaxed), model.tail);
                }
                Op::Pop | Op::Read(_) => {}
                Op::Scribble(x) => {
                    tail_word.store(x, Ordering::Release);
                    model.tail = x;
                    sane = false;
                }
                Op::Restore => {
                    // The consumer comes to its senses: tail where it left off.
                    tail_word.store(consumer_tail, Ordering::Release);
                    model.tail = consumer_tail;
                    sane = true;
                }
            }
        }
        // Nothing outside the ring was written, and the header's reserved
        // word is still zero (the producer writes header, mask, head, records).
        prop_assert!(ring.storage().guards_intact());
        prop_assert_eq!(ring.storage().words()[5].load(Ordering::Relaxed), 0);
    }
}

/// A consumer in another process maps the sealed memfd, reads what the
/// parent posted and writes tail; the parent then has room again.
#[test]
fn mmap_ring_two_processes_through_a_sealed_memfd() {
    use std::os::fd::AsRawFd;
    const CHILD: &str = "WATCHQ_RING_CHILD_FD";
    if let Ok(path) = std::env::var(CHILD) {
        // The child: open the parent's memfd through /proc, map it, and
        // consume everything.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let storage = MemfdStorage::open(file).expect("sealed memfd");
        let mut c = Consumer::new(storage.words()).unwrap();
        let mut ids = Vec::new();
        while let Some(r) = c.pop().unwrap() {
            ids.push(u32::from_le_bytes(r.bytes[8..12].try_into().unwrap()));
        }
        println!("child-read {ids:?}");
        return;
    }
    let ring = MmapRing::new(MemfdStorage::new(4096, "watchq-ring-test").unwrap()).unwrap();
    let fd = ring.storage().file().as_raw_fd();
    // Seals: the buffer can neither shrink nor grow.
    for len in [2048, 8192] {
        let e = ring.storage().file().set_len(len).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(watchq_core::Errno::EPERM.as_raw()),
            "{len}"
        );
    }
    let mut posted = Vec::new();
    for id in 0.. {
        if ring.try_post(&rec(id, 4)) == PostOutcome::Lost {
            break;
        }
        posted.push(id);
    }
    assert_eq!(posted.len(), (512 - 3) / 4);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "mmap_ring_two_processes_through_a_sealed_memfd",
            "--nocapture",
        ])
        .env(CHILD, format!("/proc/{}/fd/{fd}", std::process::id()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("child-read {posted:?}")),
        "{stdout}"
    );
    // The child's tail freed the ring: posting works again, with OVERRUN.
    assert_eq!(ring.tail(), ring.head());
    assert_eq!(ring.try_post(&rec(999, 4)), PostOutcome::Posted);
    let mut c = Consumer::new(ring.storage().words()).unwrap();
    assert!(c.pop().unwrap().unwrap().overrun());
    // An unsealed file is refused by the consumer side.
    let path = std::env::temp_dir().join(format!("watchq-unsealed-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.set_len(4096).unwrap();
    assert_eq!(MemfdStorage::open(f).err(), Some(watchq_core::Errno::EPERM));
    let _ = std::fs::remove_file(&path);
    assert!(HeapStorage::new(100).is_err());
}

//! The workloads of watchq's benchmarks, with the peers people would
//! otherwise use, shared by the criterion benches (`cargo bench`) and
//! `watchq bench`, so both measure exactly the same work.
//!
//! Every workload takes a number of iterations and returns the time they
//! took (criterion's `iter_custom` shape); threads are started outside the
//! timed part where the workload allows it, and joined after.
//!
//! Peers move the same bytes: a record of `len` bytes for watchq, a
//! `[u8; N]` with `N` = `len` rounded up to 8 (16, 24, 128) for crossbeam's
//! `ArrayQueue` and rtrb, `len` bytes per `write(2)`/`read(2)` for a real
//! pipe. All are reached through the same `dyn` endpoints, so the call
//! overhead is the same for everyone. Every queue holds 512 records (the
//! most a notification pipe can be sized to); the 2019 ring gets the
//! power-of-two number of pages holding 512 such records.

use crossbeam_queue::ArrayQueue;
use std::hint::spin_loop;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};
use watchq_core::ring::mmap::{Consumer, HeapStorage, MmapRing};
use watchq_core::ring::pipe::{PipeReader, PipeRing, Pop};
use watchq_core::uapi::{O_NONBLOCK, O_NOTIFICATION_PIPE};
use watchq_core::{
    post_watch_notification, Cred, Notification, Policy, PostOutcome, ReadMode, UserStruct, Watch,
    WatchList, WatchQueue,
};

/// Record sizes benchmarked: a key record, a block record, the largest
/// record a note holds (127 bytes: the length field has 7 bits).
pub const SIZES: [usize; 3] = [16, 24, 127];

/// Records every queue holds.
pub const CAPACITY: usize = 512;

/// A queue implementation in a benchmark group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// watchq's merged-design ring (`PipeRing`).
    PipeRing,
    /// watchq's 2019 ring (`MmapRing` with its consumer protocol).
    MmapRing,
    /// crossbeam-queue's `ArrayQueue`.
    ArrayQueue,
    /// rtrb's single-producer, single-consumer ring.
    Rtrb,
    /// A real pipe(2): one write(2) and one read(2) per message.
    Pipe,
}

impl Peer {
    /// Every peer.
    pub const ALL: [Peer; 5] = [
        Peer::PipeRing,
        Peer::MmapRing,
        Peer::ArrayQueue,
        Peer::Rtrb,
        Peer::Pipe,
    ];

    /// The name used in benchmark ids and reports.
    pub fn name(self) -> &'static str {
        match self {
            Peer::PipeRing => "watchq_pipe_ring",
            Peer::MmapRing => "watchq_mmap_ring",
            Peer::ArrayQueue => "crossbeam_array_queue",
            Peer::Rtrb => "rtrb",
            Peer::Pipe => "pipe(2)",
        }
    }

    /// Is this one of watchq's rings?
    pub fn is_watchq(self) -> bool {
        matches!(self, Peer::PipeRing | Peer::MmapRing)
    }
}

/// A record of `len` bytes (8-byte header plus payload).
///
/// # Panics
/// If `len` is not a valid record length (8..=127); the benchmarks only
/// use [`SIZES`].
pub fn record(len: usize) -> Notification {
    let payload = vec![0xa5u8; len - 8];
    Notification::new(1, 1, &payload).expect("bench sizes are valid record sizes")
}

/// The sending end of a queue.
pub trait Tx: Send {
    /// Sends one record; false when the queue is full (or lost it).
    fn send(&mut self, rec: &[u8]) -> bool;
}

/// The receiving end of a queue.
pub trait Rx: Send {
    /// Receives one record into `buf`: its length, or None when empty.
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize>;

    /// Receives what is there now, `buf` holding one record at a time;
    /// the number received. A queue whose protocol reads in batches
    /// (the 2019 ring) does so here.
    fn recv_all(&mut self, buf: &mut [u8]) -> u64 {
        let mut n = 0;
        while self.recv(buf).is_some() {
            n += 1;
        }
        n
    }
}

/// A queue's ends: one receiver, `producers` senders.
pub struct Link<'a> {
    /// The consumer.
    pub rx: Box<dyn Rx + 'a>,
    /// The producers.
    pub tx: Vec<Box<dyn Tx + 'a>>,
}

struct PipeTx<'a>(&'a PipeRing);
impl Tx for PipeTx<'_> {
    fn send(&mut self, rec: &[u8]) -> bool {
        self.0.try_post(rec) == PostOutcome::Posted
    }
}
struct PipeRx<'a>(PipeReader<'a>);
impl Rx for PipeRx<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        loop {
            match self.0.pop(buf) {
                Pop::Record { len, .. } => return Some(len),
                // A post that met a full ring was retried by its producer.
                Pop::Loss => continue,
                Pop::Empty | Pop::TooBig(_) => return None,
            }
        }
    }
}

struct MmapTx<'a>(&'a MmapRing<HeapStorage>);
impl Tx for MmapTx<'_> {
    fn send(&mut self, rec: &[u8]) -> bool {
        self.0.try_post(rec) == PostOutcome::Posted
    }
}
struct MmapRx<'a>(Consumer<'a>);
impl Rx for MmapRx<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.0.pop_into(buf).ok().flatten()
    }

    fn recv_all(&mut self, buf: &mut [u8]) -> u64 {
        self.0
            .drain(buf, |r| {
                std::hint::black_box(r);
            })
            .unwrap_or(0) as u64
    }
}

struct AqTx<'a, const N: usize>(&'a ArrayQueue<[u8; N]>);
impl<const N: usize> Tx for AqTx<'_, N> {
    fn send(&mut self, rec: &[u8]) -> bool {
        let mut a = [0u8; N];
        a[..rec.len()].copy_from_slice(rec);
        self.0.push(a).is_ok()
    }
}
struct AqRx<'a, const N: usize>(&'a ArrayQueue<[u8; N]>);
impl<const N: usize> Rx for AqRx<'_, N> {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let a = self.0.pop()?;
        buf[..N].copy_from_slice(&a);
        Some(N)
    }
}

struct RtrbTx<const N: usize>(rtrb::Producer<[u8; N]>);
impl<const N: usize> Tx for RtrbTx<N> {
    fn send(&mut self, rec: &[u8]) -> bool {
        let mut a = [0u8; N];
        a[..rec.len()].copy_from_slice(rec);
        self.0.push(a).is_ok()
    }
}
struct RtrbRx<const N: usize>(rtrb::Consumer<[u8; N]>);
impl<const N: usize> Rx for RtrbRx<N> {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let a = self.0.pop().ok()?;
        buf[..N].copy_from_slice(&a);
        Some(N)
    }
}

struct FdTx(std::io::PipeWriter);
impl Tx for FdTx {
    fn send(&mut self, rec: &[u8]) -> bool {
        // One write(2) per message.
        self.0.write(rec).is_ok_and(|n| n == rec.len())
    }
}
struct FdRx(std::io::PipeReader, usize);
impl Rx for FdRx {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        // One read(2) per message, of exactly the record's bytes (a pipe
        // keeps writes of up to PIPE_BUF bytes whole).
        self.0.read(&mut buf[..self.1]).ok().filter(|&n| n > 0)
    }

    /// One message: the read end blocks, so asking again once the pipe is
    /// empty would wait for a message the producer may never send.
    fn recv_all(&mut self, buf: &mut [u8]) -> u64 {
        self.recv(buf).map_or(0, |_| 1)
    }
}

/// Calls `f` with the ends of a new queue of `peer` for `len`-byte records
/// with `producers` senders; None if the peer has no such queue (rtrb has
/// one producer).
pub fn with_link<R>(
    peer: Peer,
    len: usize,
    producers: usize,
    f: impl FnOnce(Link<'_>) -> R,
) -> Option<R> {
    match len.div_ceil(8) * 8 {
        16 => with_link_n::<16, R>(peer, len, producers, f),
        24 => with_link_n::<24, R>(peer, len, producers, f),
        _ => with_link_n::<128, R>(peer, len, producers, f),
    }
}

fn with_link_n<const N: usize, R>(
    peer: Peer,
    len: usize,
    producers: usize,
    f: impl FnOnce(Link<'_>) -> R,
) -> Option<R> {
    fn senders<'a>(n: usize, mut make: impl FnMut() -> Box<dyn Tx + 'a>) -> Vec<Box<dyn Tx + 'a>> {
        (0..n).map(|_| make()).collect()
    }
    Some(match peer {
        Peer::PipeRing => {
            let ring = PipeRing::new(CAPACITY).expect("512 notes");
            let rx = Box::new(PipeRx(ring.reader().expect("the only reader")));
            f(Link {
                rx,
                tx: senders(producers, || Box::new(PipeTx(&ring))),
            })
        }
        Peer::MmapRing => {
            let bytes = (CAPACITY * N).next_power_of_two().max(4096);
            let ring = MmapRing::new(HeapStorage::new(bytes).expect("pages")).expect("ring");
            let rx = Box::new(MmapRx(Consumer::of(ring.storage()).expect("ring")));
            f(Link {
                rx,
                tx: senders(producers, || Box::new(MmapTx(&ring))),
            })
        }
        Peer::ArrayQueue => {
            let q = ArrayQueue::<[u8; N]>::new(CAPACITY);
            f(Link {
                rx: Box::new(AqRx(&q)),
                tx: senders(producers, || Box::new(AqTx(&q))),
            })
        }
        Peer::Rtrb if producers == 1 => {
            let (tx, rx) = rtrb::RingBuffer::<[u8; N]>::new(CAPACITY);
            f(Link {
                rx: Box::new(RtrbRx(rx)),
                tx: vec![Box::new(RtrbTx(tx))],
            })
        }
        Peer::Rtrb => return None,
        Peer::Pipe => {
            let (r, w) = std::io::pipe().expect("pipe(2)");
            f(Link {
                rx: Box::new(FdRx(r, len)),
                tx: senders(producers, || {
                    Box::new(FdTx(w.try_clone().expect("dup(2) of the write end")))
                }),
            })
        }
    })
}

/// The bytes `peer` carries for a `len`-byte record: the record itself,
/// or for the 2019 ring its 2019 image (lengths in 8-byte units, so a
/// 127-byte record is 128 bytes there).
fn wire(peer: Peer, len: usize) -> Vec<u8> {
    let n = record(len);
    match peer {
        Peer::MmapRing => n.to_v2().expect("a key record has a 2019 id"),
        _ => n.as_bytes().to_vec(),
    }
}

/// `ring/st_pair`: one thread sends one record and receives it, `iters` times.
pub fn st_pair(peer: Peer, len: usize, iters: u64) -> Duration {
    let rec = wire(peer, len);
    let rec = &rec[..];
    with_link(peer, len, 1, |mut l| {
        let mut buf = [0u8; 128];
        let tx = &mut l.tx[0];
        let start = Instant::now();
        for _ in 0..iters {
            let sent = tx.send(std::hint::black_box(rec));
            let got = l.rx.recv(&mut buf);
            assert!(sent && got.is_some(), "{} lost a record", peer.name());
            std::hint::black_box(got);
        }
        start.elapsed()
    })
    .expect("every peer has one producer")
}

/// `ring/spsc` (`producers` = 1) and `ring/mpsc2` (2): producer threads
/// stream `iters` records in all (retrying when the queue is full) to a
/// consumer thread; the time from the start signal until the consumer has
/// them all. None if the peer has no queue with that many producers.
pub fn streaming(peer: Peer, len: usize, producers: usize, iters: u64) -> Option<Duration> {
    let rec = wire(peer, len);
    let rec = &rec[..];
    with_link(peer, len, producers, |l| {
        let Link { mut rx, tx } = l;
        let start = Barrier::new(producers + 1);
        let per = iters / producers as u64;
        let total = per * producers as u64;
        thread::scope(|s| {
            for mut t in tx {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    for _ in 0..per {
                        while !t.send(rec) {
                            spin_loop();
                        }
                    }
                });
            }
            let mut buf = [0u8; 128];
            start.wait();
            let t0 = Instant::now();
            let mut got = 0;
            while got < total {
                match rx.recv_all(&mut buf) {
                    0 => spin_loop(),
                    n => got += n,
                }
            }
            t0.elapsed()
        })
    })
}

/// Credentials of an unprivileged task labelled `label` (so a Smack-like
/// policy really evaluates its rules).
fn labelled(uid: u32, label: &str) -> Arc<Cred> {
    let mut c = Cred::new(uid, uid, UserStruct::new(uid));
    c.label = Some(label.to_string());
    Arc::new(c)
}

/// A filter admitting key records of subtypes 0..7 (all the ones posted).
fn key_filter() -> Vec<u8> {
    let mut b = 1u32.to_le_bytes().to_vec();
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&watchq_core::uapi::WATCH_TYPE_KEY_NOTIFY.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes()); // info_filter
    b.extend_from_slice(&0u32.to_le_bytes()); // info_mask
    b.extend_from_slice(&0xffu32.to_le_bytes()); // subtype_filter[0]
    b.extend_from_slice(&[0u8; 28]);
    b
}

/// An object's watch list with `queues` sized, filtered queues watching it
/// as object `id`, plus the posting credentials and a Smack-like policy
/// whose rule lets the poster's label write to the watchers'.
pub struct Fanout {
    /// The object's watches.
    pub list: Arc<WatchList>,
    /// The queues, each watching once.
    pub queues: Vec<Arc<WatchQueue>>,
    /// The poster.
    pub cred: Arc<Cred>,
    /// The policy consulted for every delivery.
    pub policy: Arc<dyn Policy>,
}

impl Fanout {
    /// `queues` watchers of object `id` on a new list.
    pub fn new(queues: usize, id: u64) -> Fanout {
        let list = WatchList::new();
        let f = Fanout {
            list: list.clone(),
            queues: Vec::new(),
            cred: labelled(1000, "poster"),
            policy: watchq_core::lsm::parse_policy("[smack]\nposter watcher w\n")
                .expect("a valid rule"),
        };
        f.add(queues, id)
    }

    /// Adds `n` more watchers of object `id`.
    pub fn add(mut self, n: usize, id: u64) -> Fanout {
        let watcher = labelled(2000, "watcher");
        let filter = key_filter();
        for _ in 0..n {
            let q = WatchQueue::new();
            q.set_size(CAPACITY as u64).expect("512 notes");
            q.set_filter(Some(&filter)).expect("a valid filter");
            let w = Watch::new(&q, &self.list, id, 1, watcher.clone());
            watchq_core::add_watch_to_object(&w, u64::MAX).expect("watch");
            self.queues.push(q);
        }
        self
    }

    /// Posts `n` to object `id`; the number of queues it reached.
    pub fn post(&self, n: &Notification, id: u64) -> u32 {
        post_watch_notification(Some(&self.list), n, &self.cred, id, &*self.policy).delivered
    }

    /// Reads every queue empty.
    pub fn drain(&self) {
        let mut buf = [0u8; 4096];
        let mode = ReadMode {
            nonblock: true,
            deadline: None,
        };
        for q in &self.queues {
            while q.read(&mut buf, mode, &|| true).is_ok() {}
        }
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        for q in &self.queues {
            q.clear();
        }
    }
}

/// Posts done between two drains: well under a queue's capacity, so no
/// post is lost and every post does the full delivery.
const DRAIN_EVERY: u64 = 256;

/// Times `iters` calls of `post`, draining outside the timed part every
/// [`DRAIN_EVERY`] posts.
fn timed_posts(iters: u64, mut post: impl FnMut(), mut drain: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(DRAIN_EVERY);
        let t0 = Instant::now();
        for _ in 0..n {
            post();
        }
        total += t0.elapsed();
        drain();
        left -= n;
    }
    total
}

/// `post/fanout`, watchq: one key event delivered to `queues` queues
/// through the filter and the policy.
pub fn fanout(queues: usize, iters: u64) -> Duration {
    let f = Fanout::new(queues, 7);
    let n = Notification::key(3, 7, 0);
    timed_posts(
        iters,
        || {
            let d = f.post(std::hint::black_box(&n), 7);
            debug_assert_eq!(d as usize, queues);
        },
        || f.drain(),
    )
}

/// `post/fanout`, the peer: the same 16 bytes pushed to `queues`
/// crossbeam `ArrayQueue`s by hand (a broadcast without filters, policy
/// or tags).
pub fn fanout_array_queues(queues: usize, iters: u64) -> Duration {
    let qs: Vec<ArrayQueue<[u8; 16]>> = (0..queues).map(|_| ArrayQueue::new(CAPACITY)).collect();
    let mut rec = [0u8; 16];
    rec.copy_from_slice(Notification::key(3, 7, 0).as_bytes());
    timed_posts(
        iters,
        || {
            for q in &qs {
                let _ = q.push(std::hint::black_box(rec));
            }
        },
        || {
            for q in &qs {
                while q.pop().is_some() {}
            }
        },
    )
}

/// `post/watchers`: object A (id 1) watched by `on_a` queues, and another
/// object B (id 2, with its own watch list, as every key, mount and
/// superblock has) watched by `on_b` queues. Built once per benchmark so
/// the timed posts are not preceded by building thousands of queues.
pub struct Watchers {
    a: Fanout,
    b: Fanout,
}

impl Watchers {
    /// The two objects and their watchers.
    pub fn new(on_a: usize, on_b: usize) -> Watchers {
        Watchers {
            a: Fanout::new(on_a, 1),
            b: Fanout::new(on_b, 2),
        }
    }

    /// Times `iters` events on object A.
    pub fn run(&self, iters: u64) -> Duration {
        let n = Notification::key(3, 1, 0);
        let t = timed_posts(
            iters,
            || {
                std::hint::black_box(self.a.post(&n, 1));
            },
            || self.a.drain(),
        );
        debug_assert!(self.b.queues.iter().all(|q| q.stats().posted == 0));
        t
    }
}

/// `syscall/read`, watchq: a record posted to an emulated notification
/// pipe and one emulated `read()` of it through `Kernel`, `iters` times.
pub fn emulated_read(iters: u64) -> Duration {
    let k = watchq_kernel::Kernel::new(watchq_kernel::KernelConfig::default());
    let p = k.spawn(1000, 1000);
    let [r, _w] = p
        .pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK)
        .expect("a notification pipe");
    p.set_queue_size(r, CAPACITY as u64).expect("512 notes");
    let q = p.watch_queue(r).expect("its queue");
    let n = Notification::key(3, 7, 0);
    let mut buf = [0u8; 16];
    let start = Instant::now();
    for _ in 0..iters {
        q.post(&n);
        let got = p.read(r, &mut buf);
        debug_assert_eq!(got, Ok(16));
        std::hint::black_box(got.ok());
    }
    start.elapsed()
}

/// `syscall/read`, the peer: a 16-byte `write(2)` and `read(2)` on a real pipe.
pub fn real_pipe_read(iters: u64) -> Duration {
    st_pair(Peer::Pipe, 16, iters)
}

/// What a blocking consumer under a streaming producer saw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Wakeups {
    /// Records the consumer read.
    pub records: u64,
    /// Times the sleeping consumer was woken.
    pub wakeups: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Wakeups {
    /// Records per wake-up (records if there was none).
    pub fn records_per_wakeup(&self) -> f64 {
        self.records as f64 / self.wakeups.max(1) as f64
    }

    /// The report's line for `block/wakeups` against its target (at least
    /// 64 records per wake-up).
    pub fn line(&self) -> String {
        let r = self.records_per_wakeup();
        format!(
            "block/wakeups: {} records read, {} wake-ups: {r:.0} records per wake-up (target ≥ 64: {})\n",
            self.records,
            self.wakeups,
            if r >= 64.0 { "met" } else { "not met" }
        )
    }
}

/// `block/wakeups`: a producer posts `iters` key records to a queue as
/// fast as it can (a full queue loses them, as in the kernel) while a
/// consumer reads with blocking `read()`s of 4 KiB.
pub fn wakeups(iters: u64) -> Wakeups {
    let q = WatchQueue::new();
    q.set_size(CAPACITY as u64).expect("512 notes");
    let done = AtomicBool::new(false);
    let n = Notification::key(3, 7, 0);
    let start = Barrier::new(2);
    let before = q.rd_wait().wakeups();
    let (records, elapsed) = thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            for _ in 0..iters {
                q.post(&n);
            }
            done.store(true, Ordering::Release);
            q.wake_readers();
        });
        let mut buf = [0u8; 4096];
        let mode = ReadMode {
            nonblock: false,
            deadline: None,
        };
        start.wait();
        let t0 = Instant::now();
        let writers = || !done.load(Ordering::Acquire);
        while let Ok(1..) = q.read(&mut buf, mode, &writers) {}
        (q.stats().read, t0.elapsed())
    });
    let w = Wakeups {
        records,
        wakeups: q.rd_wait().wakeups() - before,
        elapsed,
    };
    q.clear();
    w
}

/// One measured case of `watchq bench`.
#[derive(Clone, Debug)]
pub struct Case {
    /// Group, as in the criterion benches (`ring/spsc`).
    pub group: &'static str,
    /// The implementation measured.
    pub who: &'static str,
    /// Record size in bytes, or the parameter of the group.
    pub param: usize,
    /// Nanoseconds per record, one figure per round.
    pub rounds: Vec<f64>,
}

impl Case {
    /// The median over the rounds, in nanoseconds per record.
    pub fn median(&self) -> f64 {
        let mut v = self.rounds.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// A case's workload: records to run → time taken.
type Work = Box<dyn Fn(u64) -> Duration>;

/// The cases of `watchq bench`: the figures the targets of
/// docs/performance.md are about, each with `records` per round.
fn plan() -> Vec<(&'static str, &'static str, usize, u64, Work)> {
    let mut v: Vec<(&'static str, &'static str, usize, u64, Work)> = Vec::new();
    let rings = [Peer::PipeRing, Peer::MmapRing, Peer::ArrayQueue, Peer::Rtrb];
    for peer in rings {
        v.push((
            "ring/st_pair",
            peer.name(),
            16,
            1_000_000,
            Box::new(move |n| st_pair(peer, 16, n)),
        ));
    }
    for len in SIZES {
        for peer in rings {
            v.push((
                "ring/spsc",
                peer.name(),
                len,
                1_000_000,
                Box::new(move |n| streaming(peer, len, 1, n).unwrap_or_default()),
            ));
        }
    }
    for peer in [Peer::PipeRing, Peer::MmapRing, Peer::ArrayQueue] {
        v.push((
            "ring/mpsc2",
            peer.name(),
            16,
            1_000_000,
            Box::new(move |n| streaming(peer, 16, 2, n).unwrap_or_default()),
        ));
    }
    v.push((
        "syscall/read",
        "watchq_emulated",
        16,
        500_000,
        Box::new(emulated_read),
    ));
    v.push((
        "syscall/read",
        "pipe(2)",
        16,
        50_000,
        Box::new(real_pipe_read),
    ));
    for q in [1usize, 8, 64] {
        v.push((
            "post/fanout",
            "watchq",
            q,
            20_000,
            Box::new(move |n| fanout(q, n)),
        ));
        v.push((
            "post/fanout",
            "crossbeam_array_queues",
            q,
            20_000,
            Box::new(move |n| fanout_array_queues(q, n)),
        ));
    }
    v
}

/// Runs every case `rounds` times, alternating (round 1 of every case,
/// then round 2, …) so a slow minute on a shared machine hits all of them;
/// `progress` is told (done, total) after each measurement. `shrink`
/// divides every case's records (1: the real run; more: a smoke test
/// whose figures mean nothing).
pub fn run_suite(rounds: usize, shrink: u64, mut progress: impl FnMut(usize, usize)) -> Vec<Case> {
    let plan = plan();
    let mut cases: Vec<Case> = plan
        .iter()
        .map(|(group, who, param, _, _)| Case {
            group,
            who,
            param: *param,
            rounds: Vec::new(),
        })
        .collect();
    let total = rounds * plan.len();
    for r in 0..rounds {
        for (i, (_, _, _, records, work)) in plan.iter().enumerate() {
            let records = (*records / shrink.max(1)).max(2);
            let t = work(records);
            cases[i].rounds.push(t.as_nanos() as f64 / records as f64);
            progress(r * plan.len() + i + 1, total);
        }
    }
    cases
}

/// What a ratio is measured against, and its target (watchq ÷ peer ≤ target).
pub struct Target {
    /// Group.
    pub group: &'static str,
    /// watchq's implementation.
    pub who: &'static str,
    /// The peer.
    pub peer: &'static str,
    /// The record size or parameter.
    pub param: usize,
    /// The ratio to stay at or under.
    pub max: f64,
}

/// The targets of issue 9 that `watchq bench` measures.
pub const TARGETS: &[Target] = &[
    Target {
        group: "ring/st_pair",
        who: "watchq_pipe_ring",
        peer: "crossbeam_array_queue",
        param: 16,
        max: 1.0,
    },
    Target {
        group: "ring/st_pair",
        who: "watchq_mmap_ring",
        peer: "crossbeam_array_queue",
        param: 16,
        max: 1.0,
    },
    Target {
        group: "ring/spsc",
        who: "watchq_mmap_ring",
        peer: "crossbeam_array_queue",
        param: 16,
        max: 0.25,
    },
    Target {
        group: "ring/spsc",
        who: "watchq_mmap_ring",
        peer: "crossbeam_array_queue",
        param: 24,
        max: 0.25,
    },
    Target {
        group: "ring/spsc",
        who: "watchq_pipe_ring",
        peer: "crossbeam_array_queue",
        param: 16,
        max: 1.0,
    },
    Target {
        group: "ring/spsc",
        who: "watchq_pipe_ring",
        peer: "crossbeam_array_queue",
        param: 24,
        max: 1.0,
    },
    Target {
        group: "ring/mpsc2",
        who: "watchq_pipe_ring",
        peer: "crossbeam_array_queue",
        param: 16,
        max: 1.0,
    },
    Target {
        group: "ring/mpsc2",
        who: "watchq_mmap_ring",
        peer: "crossbeam_array_queue",
        param: 16,
        max: 1.0,
    },
    Target {
        group: "syscall/read",
        who: "watchq_emulated",
        peer: "pipe(2)",
        param: 16,
        max: 0.1,
    },
];

fn find<'a>(cases: &'a [Case], group: &str, who: &str, param: usize) -> Option<&'a Case> {
    cases
        .iter()
        .find(|c| c.group == group && c.who == who && c.param == param)
}

/// The ratio table: every target with its same-run ratio, then every case.
//
// Markdown written with `writeln!`, kept: a table crate (tabled has a
// markdown style) earns its place by measuring and padding columns, which
// markdown does not need, and these are two tables with fixed headers,
// one `writeln!` a row.
pub fn table(cases: &[Case]) -> String {
    use std::fmt::Write as _;
    let mut s = String::from(
        "| group | watchq | peer | size | ratio | target | met |\n|---|---|---|---|---|---|---|\n",
    );
    for t in TARGETS {
        let (Some(a), Some(b)) = (
            find(cases, t.group, t.who, t.param),
            find(cases, t.group, t.peer, t.param),
        ) else {
            continue;
        };
        let r = a.median() / b.median();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {r:.2}× | ≤ {:.2}× | {} |",
            t.group,
            t.who,
            t.peer,
            t.param,
            t.max,
            if r <= t.max { "yes" } else { "no" }
        );
    }
    s.push_str("\n| group | implementation | size/param | ns per record (median) | rounds |\n|---|---|---|---|---|\n");
    for c in cases {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {} |",
            c.group,
            c.who,
            c.param,
            c.median(),
            c.rounds.len()
        );
    }
    s
}

/// An SVG bar chart of throughput (million records per second, medians):
/// `ring/spsc` by record size, `ring/mpsc2` and `ring/st_pair` at 16 bytes,
/// one bar per implementation.
//
// Written by hand, measured against plotters 0.3.7 (default features
// off, `svg_backend` only: no font stack, its naive text layout). The
// same chart there, rustfmt'd and at parity (these colours, gaps between
// bars, values above them), was 81 lines of code against these 78, still
// without the per-bar `<title>` tooltips, and needed a way around a
// plotters panic (`x_labels(0)` overflows in its key-point search); it
// added four crates (plotters, plotters-backend, plotters-svg,
// num-traits) and about 6 s to a clean build on this 2-core machine. Not
// shorter, so not worth them.
pub fn svg(cases: &[Case]) -> String {
    use std::fmt::Write as _;
    let panels: Vec<(String, Vec<&Case>)> = [
        ("ring/st_pair", 16),
        ("ring/spsc", 16),
        ("ring/spsc", 24),
        ("ring/spsc", 127),
        ("ring/mpsc2", 16),
    ]
    .iter()
    .map(|&(g, p)| {
        (
            format!("{g} {p} B"),
            cases
                .iter()
                .filter(|c| c.group == g && c.param == p)
                .collect(),
        )
    })
    .collect();
    let colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
    let names = [
        "watchq_pipe_ring",
        "watchq_mmap_ring",
        "crossbeam_array_queue",
        "rtrb",
    ];
    let mrps = |c: &Case| 1000.0 / c.median();
    let top = cases
        .iter()
        .filter(|c| c.group.starts_with("ring/"))
        .map(mrps)
        .fold(1.0, f64::max);
    let (w, h, pw) = (900.0, 360.0, 170.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="16" font-size="14">Throughput, million records per second (medians of alternating rounds; higher is better)</text>"#
    );
    for (i, (title, cs)) in panels.iter().enumerate() {
        let x0 = 20.0 + i as f64 * pw;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" >{title}</text>"#,
            x0 + 10.0,
            h - 10.0
        );
        for (j, name) in names.iter().enumerate() {
            let Some(c) = cs.iter().find(|c| c.who == *name) else {
                continue;
            };
            let v = mrps(c);
            let bh = (h - 80.0) * v / top;
            let (x, y) = (x0 + 10.0 + j as f64 * 36.0, h - 30.0 - bh);
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="30" height="{bh:.1}" fill="{}"><title>{name}: {v:.1} M/s</title></rect><text x="{x:.1}" y="{:.1}">{v:.0}</text>"#,
                colours[j],
                y - 3.0
            );
        }
    }
    for (j, name) in names.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="28" width="10" height="10" fill="{}"/><text x="{}" y="37">{name}</text>"#,
            20 + j * 200,
            colours[j],
            34 + j * 200
        );
    }
    s.push_str("</svg>\n");
    s
}

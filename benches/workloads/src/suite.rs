//! `watchq bench`: what it measures, how, and what it reports.
//!
//! The plan is every case of the targets (docs/performance.md) and of the
//! cost curves, each a workload of this crate with a number of records
//! per round. A run measures every case `rounds` times, alternating (round
//! 1 of every case, then round 2, …) so a slow minute on a shared machine
//! hits all of them; a case's figure in a run is the median of its rounds,
//! and a ratio in a run is the median of one case divided by the median of
//! its peer in the same run. The suite makes several runs and reports, for
//! every ratio, the median over the runs and the range (lowest–highest):
//! that spread is the machine, not the code. A target that is not met says
//! by how much.

use crate::post::{fanout, fanout_array_queues, watchers_elsewhere};
use crate::syscall::{emulated_read, emulated_read_batch, real_pipe_read, real_pipe_read_batch};
use crate::{copy_floor, handoff_floor, st_pair, streaming, Mode, Peer, CAPACITY};
use std::fmt::Write as _;
use std::time::Duration;

/// One measured case of one run.
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
        median(self.rounds.clone())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A case's workload: records to run → time taken.
type Work = Box<dyn Fn(u64) -> Duration>;

/// One case of the plan.
struct Spec {
    group: &'static str,
    who: &'static str,
    param: usize,
    /// Records per round.
    records: u64,
    work: Work,
}

/// Record sizes of the targets (127: the largest record a note holds; the
/// peers and the 2019 ring move 128 bytes).
pub const TARGET_SIZES: [usize; 2] = [16, 127];
/// `curve/producers`: producer threads (4 and 8 oversubscribe 2 cores).
pub const CURVE_PRODUCERS: [usize; 4] = [1, 2, 4, 8];
/// `curve/size`: record sizes (a note holds 127 bytes; a 2019 record 504).
pub const CURVE_SIZES: [usize; 6] = [16, 32, 64, 127, 256, 504];
/// `curve/capacity`: records a queue holds (32 notes: one page of notes).
pub const CURVE_CAPACITIES: [usize; 5] = [32, 64, 128, 256, 512];
/// `curve/watches`: watches the posting queue holds on other objects.
pub const CURVE_WATCHES: [usize; 4] = [1, 64, 1024, 4096];
/// `curve/fanout`: queues watching the object posted to.
pub const CURVE_FANOUT: [usize; 5] = [1, 8, 64, 256, 1024];

const RINGS: [Peer; 4] = [Peer::PipeRing, Peer::MmapRing, Peer::ArrayQueue, Peer::Rtrb];

/// The ring groups of the targets: name, producers, consumer mode.
const RING_GROUPS: [(&str, usize, Mode); 6] = [
    ("ring/st_pair", 0, Mode::PerRecord),
    ("ring/st_pair_batch", 0, Mode::Batch),
    ("ring/spsc", 1, Mode::PerRecord),
    ("ring/spsc_batch", 1, Mode::Batch),
    ("ring/mpsc2", 2, Mode::PerRecord),
    ("ring/mpsc2_batch", 2, Mode::Batch),
];

fn plan() -> Vec<Spec> {
    let mut v = Vec::new();
    let mut add = |group, who, param, records, work: Work| {
        v.push(Spec {
            group,
            who,
            param,
            records,
            work,
        })
    };
    for (group, producers, mode) in RING_GROUPS {
        for len in TARGET_SIZES {
            // The floors beside the one-record-per-call pairs they bound.
            let floors = if producers <= 1 && mode == Mode::PerRecord {
                &Peer::FLOORS[..]
            } else {
                &[]
            };
            for &peer in RINGS.iter().chain(&Peer::PROTOS).chain(floors) {
                if !peer.carries(len, producers.max(1)) {
                    continue;
                }
                if producers == 0 {
                    add(
                        group,
                        peer.name(),
                        len,
                        1_000_000,
                        Box::new(move |n| st_pair(peer, len, mode, n)),
                    );
                } else {
                    add(
                        group,
                        peer.name(),
                        len,
                        300_000,
                        Box::new(move |n| {
                            streaming(peer, len, producers, mode, CAPACITY, n).unwrap_or_default()
                        }),
                    );
                }
            }
        }
    }
    add(
        "syscall/read",
        "watchq_emulated",
        16,
        200_000,
        Box::new(emulated_read),
    );
    add(
        "syscall/read",
        "pipe(2)",
        16,
        20_000,
        Box::new(real_pipe_read),
    );
    add(
        "syscall/read_batch",
        "watchq_emulated",
        16,
        500_000,
        Box::new(emulated_read_batch),
    );
    add(
        "syscall/read_batch",
        "pipe(2)",
        16,
        100_000,
        Box::new(real_pipe_read_batch),
    );
    for q in [1usize, 64] {
        let events = 100_000 / q as u64;
        add(
            "post/fanout",
            "watchq",
            q,
            events,
            Box::new(move |n| fanout(q, n)),
        );
        add(
            "post/fanout",
            "crossbeam_array_queues",
            q,
            events,
            Box::new(move |n| fanout_array_queues(q, n)),
        );
    }
    // The cost curves: read()-sized batches, 16-byte records, 512 records
    // unless the curve varies it; ratios against ArrayQueue.
    for producers in CURVE_PRODUCERS {
        for peer in [Peer::PipeRing, Peer::MmapRing, Peer::ArrayQueue] {
            add(
                "curve/producers",
                peer.name(),
                producers,
                200_000,
                Box::new(move |n| {
                    streaming(peer, 16, producers, Mode::Batch, CAPACITY, n).unwrap_or_default()
                }),
            );
        }
    }
    for len in CURVE_SIZES {
        for peer in RINGS {
            if peer.carries(len, 1) {
                add(
                    "curve/size",
                    peer.name(),
                    len,
                    200_000,
                    Box::new(move |n| {
                        streaming(peer, len, 1, Mode::Batch, CAPACITY, n).unwrap_or_default()
                    }),
                );
            }
        }
        add(
            "floor/copy",
            "memcpy",
            len,
            1_000_000,
            Box::new(move |n| copy_floor(len, n)),
        );
    }
    for cap in CURVE_CAPACITIES {
        for peer in RINGS {
            add(
                "curve/capacity",
                peer.name(),
                cap,
                200_000,
                Box::new(move |n| streaming(peer, 16, 1, Mode::Batch, cap, n).unwrap_or_default()),
            );
        }
    }
    for w in CURVE_WATCHES {
        add(
            "curve/watches",
            "watchq",
            w,
            50_000,
            Box::new(move |n| watchers_elsewhere(w, n)),
        );
        add(
            "curve/watches",
            "crossbeam_array_queues",
            w,
            50_000,
            Box::new(|n| fanout_array_queues(1, n)),
        );
    }
    for q in CURVE_FANOUT {
        let events = (100_000 / q as u64).max(500);
        add(
            "curve/fanout",
            "watchq",
            q,
            events,
            Box::new(move |n| fanout(q, n)),
        );
        add(
            "curve/fanout",
            "crossbeam_array_queues",
            q,
            events,
            Box::new(move |n| fanout_array_queues(q, n)),
        );
    }
    add(
        "floor/handoff",
        "cache_line",
        64,
        200_000,
        Box::new(handoff_floor),
    );
    v
}

/// Every run of a suite.
#[derive(Clone, Debug)]
pub struct Suite {
    /// Rounds per case in each run.
    pub rounds: usize,
    /// The runs, each with every case of the plan (in the plan's order).
    pub runs: Vec<Vec<Case>>,
}

/// Runs the plan `runs` times, each run alternating `rounds` rounds of
/// every case (round 1 of every case, then round 2, …); `progress` is told
/// (done, total) after each measurement. `shrink` divides every case's
/// records (1: the real run; more: a smoke test whose figures mean
/// nothing). `only`: the cases whose group starts with it, and the floors.
pub fn run_suite(
    rounds: usize,
    runs: usize,
    shrink: u64,
    only: Option<&str>,
    mut progress: impl FnMut(usize, usize),
) -> Suite {
    let plan: Vec<Spec> = plan()
        .into_iter()
        .filter(|s| only.is_none_or(|o| s.group.starts_with(o) || s.group.starts_with("floor/")))
        .collect();
    let total = runs * rounds * plan.len();
    let mut done = 0;
    let mut all = Vec::new();
    for _ in 0..runs {
        let mut cases: Vec<Case> = plan
            .iter()
            .map(|s| Case {
                group: s.group,
                who: s.who,
                param: s.param,
                rounds: Vec::new(),
            })
            .collect();
        for _ in 0..rounds {
            for (i, s) in plan.iter().enumerate() {
                let records = (s.records / shrink.max(1)).max(2);
                let t = (s.work)(records);
                cases[i].rounds.push(t.as_nanos() as f64 / records as f64);
                done += 1;
                progress(done, total);
            }
        }
        all.push(cases);
    }
    Suite { rounds, runs: all }
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

macro_rules! targets {
    ($($group:literal $who:literal $peer:literal $param:literal $max:literal;)*) => {
        &[$(Target { group: $group, who: $who, peer: $peer, param: $param, max: $max },)*]
    };
}

/// The targets (issue 19, and issue 9's syscall/read) that `watchq bench`
/// measures: both rings at or under ArrayQueue in every ring group and
/// mode at 16 and 127 bytes, at most 1.5× rtrb streaming single-producer,
/// the post path at most 3× bare pushes.
pub const TARGETS: &[Target] = targets! {
    "ring/st_pair" "watchq_pipe_ring" "crossbeam_array_queue" 16 1.0;
    "ring/st_pair" "watchq_mmap_ring" "crossbeam_array_queue" 16 1.0;
    "ring/st_pair" "watchq_pipe_ring" "crossbeam_array_queue" 127 1.0;
    "ring/st_pair" "watchq_mmap_ring" "crossbeam_array_queue" 127 1.0;
    "ring/st_pair_batch" "watchq_pipe_ring" "crossbeam_array_queue" 16 1.0;
    "ring/st_pair_batch" "watchq_mmap_ring" "crossbeam_array_queue" 16 1.0;
    "ring/st_pair_batch" "watchq_pipe_ring" "crossbeam_array_queue" 127 1.0;
    "ring/st_pair_batch" "watchq_mmap_ring" "crossbeam_array_queue" 127 1.0;
    "ring/spsc" "watchq_pipe_ring" "crossbeam_array_queue" 16 1.0;
    "ring/spsc" "watchq_mmap_ring" "crossbeam_array_queue" 16 1.0;
    "ring/spsc" "watchq_pipe_ring" "crossbeam_array_queue" 127 1.0;
    "ring/spsc" "watchq_mmap_ring" "crossbeam_array_queue" 127 1.0;
    "ring/spsc" "watchq_pipe_ring" "rtrb" 16 1.5;
    "ring/spsc" "watchq_mmap_ring" "rtrb" 16 1.5;
    "ring/spsc" "watchq_pipe_ring" "rtrb" 127 1.5;
    "ring/spsc" "watchq_mmap_ring" "rtrb" 127 1.5;
    "ring/spsc_batch" "watchq_pipe_ring" "crossbeam_array_queue" 16 1.0;
    "ring/spsc_batch" "watchq_mmap_ring" "crossbeam_array_queue" 16 1.0;
    "ring/spsc_batch" "watchq_pipe_ring" "crossbeam_array_queue" 127 1.0;
    "ring/spsc_batch" "watchq_mmap_ring" "crossbeam_array_queue" 127 1.0;
    "ring/spsc_batch" "watchq_pipe_ring" "rtrb" 16 1.5;
    "ring/spsc_batch" "watchq_mmap_ring" "rtrb" 16 1.5;
    "ring/spsc_batch" "watchq_pipe_ring" "rtrb" 127 1.5;
    "ring/spsc_batch" "watchq_mmap_ring" "rtrb" 127 1.5;
    "ring/mpsc2" "watchq_pipe_ring" "crossbeam_array_queue" 16 1.0;
    "ring/mpsc2" "watchq_mmap_ring" "crossbeam_array_queue" 16 1.0;
    "ring/mpsc2" "watchq_pipe_ring" "crossbeam_array_queue" 127 1.0;
    "ring/mpsc2" "watchq_mmap_ring" "crossbeam_array_queue" 127 1.0;
    "ring/mpsc2_batch" "watchq_pipe_ring" "crossbeam_array_queue" 16 1.0;
    "ring/mpsc2_batch" "watchq_mmap_ring" "crossbeam_array_queue" 16 1.0;
    "ring/mpsc2_batch" "watchq_pipe_ring" "crossbeam_array_queue" 127 1.0;
    "ring/mpsc2_batch" "watchq_mmap_ring" "crossbeam_array_queue" 127 1.0;
    "syscall/read" "watchq_emulated" "pipe(2)" 16 0.1;
    "post/fanout" "watchq" "crossbeam_array_queues" 1 3.0;
    "post/fanout" "watchq" "crossbeam_array_queues" 64 3.0;
};

/// The floors' ratios `watchq bench` reports (not targets): group, who,
/// peer. `floor_spsc` ÷ rtrb says the floor ring is rtrb's algorithm; a
/// ring with one locked read-modify-write per post cannot beat
/// `floor_spsc_1rmw`, one with two `floor_spsc_2rmw`; `_split` keeps
/// the stamps apart from the records, as the pipe ring does.
pub const FLOOR_RATIOS: [(&str, &str, &str); 27] = [
    ("ring/st_pair", "proto_pipe_inline", "watchq_pipe_ring"),
    ("ring/st_pair", "proto_pipe_inline_raw", "watchq_pipe_ring"),
    (
        "ring/st_pair",
        "proto_pipe_inline_raw",
        "crossbeam_array_queue",
    ),
    (
        "ring/st_pair_batch",
        "proto_pipe_inline",
        "watchq_pipe_ring",
    ),
    (
        "ring/st_pair_batch",
        "proto_pipe_inline_raw",
        "watchq_pipe_ring",
    ),
    (
        "ring/st_pair_batch",
        "proto_pipe_inline_raw",
        "crossbeam_array_queue",
    ),
    ("ring/spsc", "proto_pipe_inline", "watchq_pipe_ring"),
    ("ring/spsc", "proto_pipe_inline_raw", "watchq_pipe_ring"),
    (
        "ring/spsc",
        "proto_pipe_inline_raw",
        "crossbeam_array_queue",
    ),
    ("ring/spsc", "proto_pipe_inline_raw", "rtrb"),
    ("ring/spsc_batch", "proto_pipe_inline", "watchq_pipe_ring"),
    (
        "ring/spsc_batch",
        "proto_pipe_inline_raw",
        "watchq_pipe_ring",
    ),
    (
        "ring/spsc_batch",
        "proto_pipe_inline_raw",
        "crossbeam_array_queue",
    ),
    ("ring/spsc_batch", "proto_pipe_inline_raw", "rtrb"),
    ("ring/mpsc2", "proto_pipe_inline", "watchq_pipe_ring"),
    ("ring/mpsc2", "proto_pipe_inline_raw", "watchq_pipe_ring"),
    (
        "ring/mpsc2",
        "proto_pipe_inline_raw",
        "crossbeam_array_queue",
    ),
    (
        "ring/mpsc2_batch",
        "proto_pipe_inline_raw",
        "watchq_pipe_ring",
    ),
    ("ring/spsc", "floor_spsc", "rtrb"),
    ("ring/spsc", "floor_spsc_1rmw", "rtrb"),
    ("ring/spsc", "floor_spsc_2rmw", "rtrb"),
    ("ring/spsc", "floor_spsc_1rmw_split", "rtrb"),
    ("ring/spsc", "watchq_pipe_ring", "floor_spsc_1rmw_split"),
    ("ring/spsc", "watchq_pipe_ring", "floor_spsc_1rmw"),
    ("ring/spsc", "watchq_mmap_ring", "floor_spsc_2rmw"),
    ("ring/st_pair", "floor_spsc_2rmw", "crossbeam_array_queue"),
    ("ring/st_pair", "watchq_mmap_ring", "floor_spsc_2rmw"),
];

/// The curves `watchq bench` plots: group, parameter's name, the peer the
/// ratios are against, and which floors go beside it.
pub const CURVES: [(&str, &str, &str); 5] = [
    ("curve/producers", "producers", "crossbeam_array_queue"),
    ("curve/size", "record bytes", "crossbeam_array_queue"),
    (
        "curve/capacity",
        "records the queue holds",
        "crossbeam_array_queue",
    ),
    (
        "curve/watches",
        "watches on other objects",
        "crossbeam_array_queues",
    ),
    (
        "curve/fanout",
        "queues watching the object",
        "crossbeam_array_queues",
    ),
];

/// The median and range of a set of per-run figures.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    /// Median over the runs.
    pub median: f64,
    /// Lowest.
    pub lo: f64,
    /// Highest.
    pub hi: f64,
}

fn spread(v: Vec<f64>) -> Option<Spread> {
    let v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(Spread {
        median: median(v),
        lo,
        hi,
    })
}

impl Suite {
    fn find(run: &[Case], group: &str, who: &str, param: usize) -> Option<f64> {
        run.iter()
            .find(|c| c.group == group && c.who == who && c.param == param)
            .map(Case::median)
    }

    /// A case's ns per record over the runs.
    pub fn figure(&self, group: &str, who: &str, param: usize) -> Option<Spread> {
        spread(
            self.runs
                .iter()
                .filter_map(|r| Self::find(r, group, who, param))
                .collect(),
        )
    }

    /// `who` ÷ `peer` over the runs (each run's ratio of medians).
    pub fn ratio(&self, group: &str, who: &str, peer: &str, param: usize) -> Option<Spread> {
        spread(
            self.runs
                .iter()
                .filter_map(|r| {
                    Some(Self::find(r, group, who, param)? / Self::find(r, group, peer, param)?)
                })
                .collect(),
        )
    }

    /// The parameters of a group, in the plan's order.
    pub fn params(&self, group: &str) -> Vec<usize> {
        let mut v: Vec<usize> = Vec::new();
        for c in self.runs.first().into_iter().flatten() {
            if c.group == group && !v.contains(&c.param) {
                v.push(c.param);
            }
        }
        v
    }

    /// The implementations of a group, in the plan's order.
    pub fn whos(&self, group: &str) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = Vec::new();
        for c in self.runs.first().into_iter().flatten() {
            if c.group == group && !v.contains(&c.who) {
                v.push(c.who);
            }
        }
        v
    }

    /// The ratio table: every target with its ratio (median over the runs
    /// and range), the target and whether it is met, or by how much not.
    //
    // Markdown written with `writeln!`, kept: a table crate (tabled has a
    // markdown style) earns its place by measuring and padding columns,
    // which markdown does not need.
    pub fn table(&self) -> String {
        let mut s = format!(
            "| group | watchq | peer | size | ratio | range over {} runs | target | met |\n|---|---|---|---|---|---|---|---|\n",
            self.runs.len()
        );
        for t in TARGETS {
            let Some(r) = self.ratio(t.group, t.who, t.peer, t.param) else {
                continue;
            };
            let met = if r.hi <= t.max {
                "yes (every run)".to_string()
            } else if r.median <= t.max {
                format!("yes (median; {:.2}× in the worst run)", r.hi)
            } else {
                format!("no: {:.0}% over", (r.median / t.max - 1.0) * 100.0)
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.2}× | {:.2}–{:.2}× | ≤ {:.2}× | {met} |",
                t.group, t.who, t.peer, t.param, r.median, r.lo, r.hi, t.max
            );
        }
        s
    }

    /// The floors' ratios ([`FLOOR_RATIOS`]) at each target size.
    pub fn floor_table(&self) -> String {
        let mut s = format!(
            "| group | who | ÷ | size | ratio | range over {} runs |\n|---|---|---|---|---|---|\n",
            self.runs.len()
        );
        for (group, who, peer) in FLOOR_RATIOS {
            for len in TARGET_SIZES {
                if let Some(r) = self.ratio(group, who, peer, len) {
                    let _ = writeln!(
                        s,
                        "| {group} | {who} | {peer} | {len} | {:.2}× | {:.2}–{:.2}× |",
                        r.median, r.lo, r.hi
                    );
                }
            }
        }
        s
    }

    /// Every case's ns per record (median over runs, range).
    pub fn figures(&self) -> String {
        let mut s = String::from(
            "| group | implementation | size/param | ns per record | range |\n|---|---|---|---|---|\n",
        );
        for c in self.runs.first().into_iter().flatten() {
            if let Some(f) = self.figure(c.group, c.who, c.param) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.1} | {:.1}–{:.1} |",
                    c.group, c.who, c.param, f.median, f.lo, f.hi
                );
            }
        }
        s
    }

    /// One curve's table: per parameter, each implementation's ns per
    /// record and its ratio to the peer, with the floors.
    pub fn curve_table(&self, group: &str, what: &str, peer: &str) -> String {
        let whos = self.whos(group);
        let mut s = format!("| {what} |");
        for w in &whos {
            let _ = write!(s, " {w} ns |");
        }
        for w in whos.iter().filter(|w| **w != peer) {
            let _ = write!(s, " {w} ÷ {peer} |");
        }
        s.push_str(" floor: copy ns | floor: line handoff ns |\n|");
        for _ in 0..(2 * whos.len() + 2) {
            s.push_str("---|");
        }
        s.push('\n');
        let handoff = self.figure("floor/handoff", "cache_line", 64);
        for p in self.params(group) {
            let _ = write!(s, "| {p} |");
            for w in &whos {
                match self.figure(group, w, p) {
                    Some(f) => {
                        let _ = write!(s, " {:.1} |", f.median);
                    }
                    None => s.push_str(" — |"),
                }
            }
            for w in whos.iter().filter(|w| **w != peer) {
                match self.ratio(group, w, peer, p) {
                    Some(r) => {
                        let _ = write!(s, " {:.2}× ({:.2}–{:.2}) |", r.median, r.lo, r.hi);
                    }
                    None => s.push_str(" — |"),
                }
            }
            let copy_len = if group == "curve/size" { p } else { 16 };
            match self.figure("floor/copy", "memcpy", copy_len) {
                Some(f) => {
                    let _ = write!(s, " {:.1} |", f.median);
                }
                None => s.push_str(" — |"),
            }
            match handoff {
                Some(f) => {
                    let _ = writeln!(s, " {:.1} |", f.median);
                }
                None => s.push_str(" — |\n"),
            }
        }
        s
    }

    /// The whole report (report.md): how it was measured, the targets, the
    /// curves with their plots, every figure.
    pub fn report(&self, wakeups: &str) -> String {
        let mut s = format!(
            "# watchq bench\n\nRatios are watchq's time per record divided by the peer's in the same run: each run measures every case {} times in alternating rounds and takes medians; the ratio given is the median over {} runs, with the range (lowest–highest run). Curves use read()-sized batches (4096-byte buffer) and 16-byte records unless they vary it; 4 and 8 producers oversubscribe this machine's cores ({} available).\n\n![throughput](throughput.svg)\n\n## Targets\n\n{}\n{wakeups}\n\n## Floors\n\nrtrb's algorithm with 0, 1 or 2 locked read-modify-writes per push on a line of the producer's own (`floor_spsc*`), and the pipe ring's algorithm with each stamp beside its record (`proto_pipe_inline*`, a prototype: docs/performance.md \"Stamps beside the records\"), in the same alternating rounds.\n\n{}\n",
            self.rounds,
            self.runs.len(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.table(),
            self.floor_table()
        );
        for (group, what, peer) in CURVES {
            if self.params(group).is_empty() {
                continue;
            }
            let file = format!("{}.svg", group.replace('/', "-"));
            let _ = write!(
                s,
                "\n## {group}\n\n![{group}]({file})\n\n{}",
                self.curve_table(group, what, peer)
            );
        }
        let _ = write!(s, "\n## Every figure\n\n{}", self.figures());
        s
    }
}

//! The post path by hand, for profiling and A/B builds: alternating rounds
//! of `post/fanout` (watchq) and the bare `ArrayQueue` pushes, each round on
//! freshly built queues, printing every round's ns per event and the
//! minimum and median of each side.
//!
//! `cargo run --release -p watchq-bench --example post_min -- [QUEUES] [ROUNDS] [EVENTS]`
//! (defaults 1, 21, 200000). With `WQ_POST_ONLY=1` it runs watchq alone
//! (one Fanout reused; for `perf record`).

use std::time::Duration;
use watchq_bench::{fanout, fanout_array_queues};

fn per(d: Duration, n: u64) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn stats(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[0], v[v.len() / 2])
}

fn main() {
    let a: Vec<u64> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("a number"))
        .collect();
    let queues = a.first().copied().unwrap_or(1) as usize;
    let rounds = a.get(1).copied().unwrap_or(21);
    let events = a.get(2).copied().unwrap_or(200_000) / queues as u64;
    if std::env::var_os("WQ_MISS").is_some() {
        // A post to an object id no watch on the list is for: the fixed
        // part of a post (policy generation, label key, read section,
        // list walk).
        let f = watchq_bench::Fanout::new(queues, 7);
        let n = watchq_core::Notification::key(3, 8, 0);
        for _ in 0..rounds {
            let t = std::time::Instant::now();
            for _ in 0..events {
                std::hint::black_box(f.post(std::hint::black_box(&n), 8));
            }
            println!("miss {:.1}", per(t.elapsed(), events));
        }
        return;
    }
    if std::env::var_os("WQ_POST_ONLY").is_some() {
        for _ in 0..rounds {
            let d = fanout(queues, events);
            println!("watchq {:.1}", per(d, events));
        }
        return;
    }
    let (mut w, mut b) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        // What `watchq bench --only post` runs between two rounds, by
        // letters: c copy floor, f 64-queue post, b 64 bare pushes, h handoff.
        let suite = std::env::var("WQ_SUITE").unwrap_or_default();
        if suite.contains('c') {
            let _ = watchq_bench::copy_floor(16, 1_000_000);
        }
        if suite.contains('f') {
            let _ = fanout(64, 100_000 / 64);
        }
        if suite.contains('b') {
            let _ = fanout_array_queues(64, 100_000 / 64);
        }
        if suite.contains('h') {
            let _ = watchq_bench::handoff_floor(100_000);
        }
        let pre = run_queue_wait();
        let dw = if std::env::var_os("WQ_ADDR").is_some() {
            addr_round(queues, events)
        } else {
            per(fanout(queues, events), events)
        };
        let wq_wait = run_queue_wait() - pre;
        let db = per(fanout_array_queues(queues, events), events);
        println!(
            "round {r:2}: watchq {dw:8.1} ns  bare {db:8.1} ns  ratio {:.2}  runqueue wait {:.1} ns/event",
            dw / db,
            wq_wait as f64 / events as f64
        );
        w.push(dw);
        b.push(db);
    }
    let ratios: Vec<f64> = w.iter().zip(&b).map(|(x, y)| x / y).collect();
    let mut r = ratios.clone();
    let ((wmin, wmed), (bmin, bmed), (rmin, rmed)) = (stats(&mut w), stats(&mut b), stats(&mut r));
    println!(
        "queues {queues}: watchq min {wmin:.1} med {wmed:.1}; bare min {bmin:.1} med {bmed:.1}; \
         min/min {:.2}x, ratio min {rmin:.2}x med {rmed:.2}x",
        wmin / bmin
    );
}

/// One watchq round on a Fanout built here, printing where its parts live.
fn addr_round(queues: usize, events: u64) -> f64 {
    let f = watchq_bench::Fanout::new(queues, 7);
    let n = watchq_core::Notification::key(3, 7, 0);
    let snap = f.list.snapshot();
    let w = &snap[0];
    let q = &f.queues[0];
    let p = |x: *const u8| x as usize;
    print!(
        "list {:#x} vec {:#x} watch {:#x} queue {:#x} cred {:#x} | ",
        p(std::sync::Arc::as_ptr(&f.list).cast()) & 0xfff,
        p(snap.as_ptr().cast()) & 0xfff,
        p(std::sync::Arc::as_ptr(w).cast()) & 0xfff,
        p(std::sync::Arc::as_ptr(q).cast()) & 0xfff,
        p(std::sync::Arc::as_ptr(&f.cred).cast()) & 0xfff,
    );
    drop(snap);
    let mut total = Duration::ZERO;
    let mut left = events;
    while left > 0 {
        let k = left.min(256);
        let t0 = std::time::Instant::now();
        for _ in 0..k {
            std::hint::black_box(f.post(std::hint::black_box(&n), 7));
        }
        total += t0.elapsed();
        f.drain();
        left -= k;
    }
    per(total, events)
}

/// Nanoseconds this thread has waited on a run queue, runnable but not
/// running (Linux's schedstat: another task had the CPU).
fn run_queue_wait() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

//! Profiling aid: one ring workload of `watchq bench` in a loop, for
//! `perf record`, or every peer of one group in alternating rounds with
//! each one's minimum and median (ns per record).
//!
//! ringprof GROUP SIZE [PEER|all] [ROUNDS] [RECORDS]
//!   GROUP: st_pair st_pair_batch spsc spsc_batch mpsc2 mpsc2_batch
use std::time::Duration;
use watchq_bench::{st_pair, streaming, Mode, Peer, CAPACITY};

fn run(group: &str, peer: Peer, len: usize, n: u64) -> Option<Duration> {
    let mode = if group.ends_with("_batch") {
        Mode::Batch
    } else {
        Mode::PerRecord
    };
    match group.trim_end_matches("_batch") {
        "st_pair" => peer.carries(len, 1).then(|| st_pair(peer, len, mode, n)),
        "spsc" => streaming(peer, len, 1, mode, CAPACITY, n),
        "mpsc2" => streaming(peer, len, 2, mode, CAPACITY, n),
        g => panic!("no group {g}"),
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let group = a.get(1).map_or("st_pair", |s| s.as_str());
    let len: usize = a.get(2).map_or(16, |s| s.parse().unwrap());
    let who = a.get(3).map_or("all", |s| s.as_str());
    let rounds: usize = a.get(4).map_or(21, |s| s.parse().unwrap());
    let n: u64 = a.get(5).map_or(1_000_000, |s| s.parse().unwrap());
    let peers: Vec<Peer> = [
        Peer::PipeRing,
        Peer::PipeInline(false),
        Peer::PipeInline(true),
        Peer::MmapRing,
        Peer::ArrayQueue,
        Peer::Rtrb,
    ]
    .into_iter()
    .chain(Peer::FLOORS)
    .filter(|p| who == "all" || p.name().contains(who))
    .collect();
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); peers.len()];
    for _ in 0..rounds {
        for (i, p) in peers.iter().enumerate() {
            if let Some(d) = run(group, *p, len, n) {
                t[i].push(d.as_nanos() as f64 / n as f64);
            }
        }
    }
    for (p, mut v) in peers.iter().zip(t) {
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        println!(
            "{group} {len} {:24} min {:7.2}  med {:7.2}  max {:7.2}",
            p.name(),
            v[0],
            v[v.len() / 2],
            v[v.len() - 1]
        );
    }
}

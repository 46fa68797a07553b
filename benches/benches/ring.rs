//! `ring/*`: watchq's two rings beside crossbeam's `ArrayQueue`, rtrb and
//! a real pipe, in the same groups, moving the same bytes
//! (watchq-bench (`watchq_bench`) has the workloads, shared with `watchq bench`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use watchq_bench::{st_pair, streaming, Mode, Peer, CAPACITY, SIZES};

const MODES: [(Mode, &str); 2] = [(Mode::PerRecord, ""), (Mode::Batch, "_batch")];

/// `ring/st_pair` and `ring/st_pair_batch`: one thread posts records and
/// reads them back, one per call or a read()-sized batch per call.
fn ring_st_pair(c: &mut Criterion) {
    for (mode, suffix) in MODES {
        let mut g = c.benchmark_group(format!("ring/st_pair{suffix}"));
        g.throughput(Throughput::Elements(1));
        for len in SIZES {
            for peer in Peer::ALL {
                g.bench_with_input(BenchmarkId::new(peer.name(), len), &len, |b, &len| {
                    b.iter_custom(|iters| st_pair(peer, len, mode, iters))
                });
            }
        }
        g.finish();
    }
}

/// `ring/spsc` and `ring/mpsc2` (and their `_batch` forms): producer
/// threads stream to a consumer thread.
fn ring_streaming(c: &mut Criterion) {
    for ((group, producers, sizes), (mode, suffix)) in
        [("ring/spsc", 1, &SIZES[..]), ("ring/mpsc2", 2, &SIZES[..2])]
            .into_iter()
            .flat_map(|g| MODES.map(|m| (g, m)))
    {
        let mut g = c.benchmark_group(format!("{group}{suffix}"));
        g.throughput(Throughput::Elements(1));
        g.measurement_time(Duration::from_secs(3));
        for &len in sizes {
            for peer in Peer::ALL {
                if streaming(peer, len, producers, mode, CAPACITY, 2).is_none() {
                    continue; // rtrb has a single producer
                }
                g.bench_with_input(BenchmarkId::new(peer.name(), len), &len, |b, &len| {
                    b.iter_custom(|iters| {
                        streaming(peer, len, producers, mode, CAPACITY, iters.max(2))
                            .unwrap_or_default()
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, ring_st_pair, ring_streaming);
criterion_main!(benches);

//! `ring/*`: watchq's two rings beside crossbeam's `ArrayQueue`, rtrb and
//! a real pipe, in the same groups, moving the same bytes
//! (watchq-bench (`watchq_bench`) has the workloads, shared with `watchq bench`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use watchq_bench::{st_pair, streaming, Peer, SIZES};

/// `ring/st_pair`: one thread posts one record and reads it back.
fn ring_st_pair(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring/st_pair");
    g.throughput(Throughput::Elements(1));
    for len in SIZES {
        for peer in Peer::ALL {
            g.bench_with_input(BenchmarkId::new(peer.name(), len), &len, |b, &len| {
                b.iter_custom(|iters| st_pair(peer, len, iters))
            });
        }
    }
    g.finish();
}

/// `ring/spsc` and `ring/mpsc2`: producer threads stream to a consumer thread.
fn ring_streaming(c: &mut Criterion) {
    for (group, producers, sizes) in [("ring/spsc", 1, &SIZES[..]), ("ring/mpsc2", 2, &SIZES[..2])]
    {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(1));
        g.measurement_time(Duration::from_secs(3));
        for &len in sizes {
            for peer in Peer::ALL {
                if streaming(peer, len, producers, 2).is_none() {
                    continue; // rtrb has a single producer
                }
                g.bench_with_input(BenchmarkId::new(peer.name(), len), &len, |b, &len| {
                    b.iter_custom(|iters| {
                        streaming(peer, len, producers, iters.max(2)).unwrap_or_default()
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, ring_st_pair, ring_streaming);
criterion_main!(benches);

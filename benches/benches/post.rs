//! `post/*`: the whole post path (watch list, filter, policy, ring, wake)
//! against a hand-made broadcast into crossbeam `ArrayQueue`s, and how its
//! cost grows with the watches on the object and on other objects.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use watchq_bench::{fanout, fanout_array_queues, Watchers};

/// `post/fanout`: one event delivered to 1, 8 and 64 queues.
fn post_fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("post/fanout");
    for queues in [1usize, 8, 64] {
        g.throughput(Throughput::Elements(queues as u64));
        g.bench_with_input(BenchmarkId::new("watchq", queues), &queues, |b, &n| {
            b.iter_custom(|iters| fanout(n, iters))
        });
        g.bench_with_input(
            BenchmarkId::new("crossbeam_array_queues", queues),
            &queues,
            |b, &n| b.iter_custom(|iters| fanout_array_queues(n, iters)),
        );
    }
    g.finish();
}

/// `post/watchers`: an event on object A while object B has 0..4096
/// watches (flat), and while A itself has 1..1024 (linear).
fn post_watchers(c: &mut Criterion) {
    let mut g = c.benchmark_group("post/watchers");
    g.throughput(Throughput::Elements(1));
    for on_b in [0usize, 64, 4096] {
        let w = Watchers::new(1, on_b);
        g.bench_function(BenchmarkId::new("other_object", on_b), |b| {
            b.iter_custom(|iters| w.run(iters))
        });
    }
    for on_a in [1usize, 32, 1024] {
        let w = Watchers::new(on_a, 0);
        g.bench_function(BenchmarkId::new("same_object", on_a), |b| {
            b.iter_custom(|iters| w.run(iters))
        });
    }
    g.finish();
}

criterion_group!(benches, post_fanout, post_watchers);
criterion_main!(benches);

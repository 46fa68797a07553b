//! `syscall/read` and `block/wakeups`: an emulated read() through the
//! `Kernel` against a real pipe's write() + read(), and the wake-ups a
//! blocking consumer pays under a streaming producer.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use watchq_bench::{emulated_read, real_pipe_read, wakeups};

/// `syscall/read`: one 16-byte record per read.
fn syscall_read(c: &mut Criterion) {
    let mut g = c.benchmark_group("syscall/read");
    g.throughput(Throughput::Elements(1));
    g.bench_function("watchq_emulated", |b| b.iter_custom(emulated_read));
    g.bench_function("pipe(2)", |b| b.iter_custom(real_pipe_read));
    g.finish();
}

/// `block/wakeups`: time per record of a blocking consumer; the wake-ups
/// per record are printed once (criterion measures time only).
fn block_wakeups(c: &mut Criterion) {
    let w = wakeups(1 << 20);
    println!(
        "block/wakeups: {} records, {} wake-ups, {:.0} records per wake-up",
        w.records,
        w.wakeups,
        w.records_per_wakeup()
    );
    let mut g = c.benchmark_group("block/wakeups");
    g.throughput(Throughput::Elements(1));
    g.bench_function("watchq_blocking_read", |b| {
        b.iter_custom(|iters| wakeups(iters.max(1)).elapsed)
    });
    g.finish();
}

criterion_group!(benches, syscall_read, block_wakeups);
criterion_main!(benches);

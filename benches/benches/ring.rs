//! `ring/st_pair`: one thread posts one record and reads it back, watchq's
//! notification queue beside crossbeam's `ArrayQueue` and rtrb moving the
//! same bytes, so the figures are ratios from one run.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use watchq_benches::{record, SIZES};
use watchq_core::{ReadMode, WatchQueue};

fn st_pair(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring/st_pair");
    g.throughput(Throughput::Elements(1));
    for len in SIZES {
        let rec = record(len);
        let q = WatchQueue::new();
        q.set_size(32).unwrap();
        let mode = ReadMode {
            nonblock: true,
            deadline: None,
        };
        let mut buf = [0u8; 128];
        g.bench_with_input(BenchmarkId::new("watchq_pipe", len), &len, |b, _| {
            b.iter(|| {
                q.post(black_box(&rec));
                black_box(q.read(&mut buf, mode, &|| true).unwrap());
            })
        });
        let aq: ArrayQueue<[u8; 128]> = ArrayQueue::new(32);
        let mut note = [0u8; 128];
        note[..len].copy_from_slice(rec.as_bytes());
        g.bench_with_input(
            BenchmarkId::new("crossbeam_array_queue", len),
            &len,
            |b, _| {
                b.iter(|| {
                    aq.push(black_box(note)).unwrap();
                    black_box(aq.pop().unwrap());
                })
            },
        );
        let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; 128]>::new(32);
        g.bench_with_input(BenchmarkId::new("rtrb", len), &len, |b, _| {
            b.iter(|| {
                tx.push(black_box(note)).unwrap();
                black_box(rx.pop().unwrap());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, st_pair);
criterion_main!(benches);

//! The post path's instruction count, for callgrind (noise-immune where
//! wall-clock time is not): `post/fanout`'s watchq side and its bare
//! `ArrayQueue` pushes, each batch of 256 posts in its own never-inlined
//! function so `--toggle-collect` counts exactly the posts, not the
//! drains or the set-up.
//!
//! ```sh
//! cargo build --release -p watchq-bench --example post_icount
//! valgrind --tool=callgrind --toggle-collect='*post_icount::watchq_batch*' \
//!     target/release/examples/post_icount 1 100   # QUEUES BATCHES
//! valgrind --tool=callgrind --toggle-collect='*post_icount::bare_batch*' \
//!     target/release/examples/post_icount 1 100
//! ```
//!
//! The collected `Ir` divided by BATCHES × 256 is the instructions per
//! event (for 64 queues, per event of 64 copies).

use crossbeam_queue::ArrayQueue;
use std::hint::black_box;
use watchq_bench::{Fanout, CAPACITY};
use watchq_core::Notification;

/// Events per batch (as `post/fanout`'s drains: well under a queue's capacity).
const BATCH: usize = 256;

#[inline(never)]
fn watchq_batch(f: &Fanout, n: &Notification) {
    for _ in 0..BATCH {
        black_box(f.post(black_box(n), 7));
    }
}

#[inline(never)]
fn bare_batch(qs: &[ArrayQueue<[u8; 16]>], rec: [u8; 16]) {
    for _ in 0..BATCH {
        for q in qs {
            let _ = q.push(black_box(rec));
        }
    }
}

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("a number"))
        .collect();
    let queues = a.first().copied().unwrap_or(1);
    let batches = a.get(1).copied().unwrap_or(100);
    let f = Fanout::new(queues, 7);
    let n = Notification::key(3, 7, 0);
    let qs: Vec<ArrayQueue<[u8; 16]>> = (0..queues).map(|_| ArrayQueue::new(CAPACITY)).collect();
    let mut rec = [0u8; 16];
    rec.copy_from_slice(n.as_bytes());
    for _ in 0..batches {
        watchq_batch(&f, &n);
        f.drain();
        bare_batch(&qs, rec);
        for q in &qs {
            while q.pop().is_some() {}
        }
    }
    let posted: u64 = f.queues.iter().map(|q| q.stats().posted).sum();
    assert_eq!(
        posted,
        (queues * batches * BATCH) as u64,
        "every post delivered"
    );
    println!("{queues} queues, {} events", batches * BATCH);
}

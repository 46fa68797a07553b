//! The benchmark workloads themselves (watchq-bench (`watchq_bench`), shared by
//! `cargo bench` and `watchq bench`): every peer, every record size and
//! producer count finishes and moves every record. A workload that can
//! wait forever (a blocking pipe read after the last message) fails here
//! within seconds instead of hanging a benchmark run.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use watchq_bench::{st_pair, streaming, Peer, SIZES};

/// Runs `f` on its own thread; fails if it takes longer than 30 s.
fn within_30s<T: Send + 'static>(what: String, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what} did not finish within 30 s"))
}

#[test]
fn every_streaming_workload_finishes() {
    for producers in [1, 2] {
        for len in SIZES {
            for peer in Peer::ALL {
                let what = format!("streaming {} {len} B x{producers}", peer.name());
                let took = within_30s(what.clone(), move || streaming(peer, len, producers, 2000));
                // Only rtrb lacks a queue, and only for two producers.
                assert_eq!(
                    took.is_none(),
                    peer == Peer::Rtrb && producers == 2,
                    "{what}: {took:?}"
                );
            }
        }
    }
}

#[test]
fn every_single_thread_pair_finishes() {
    for len in SIZES {
        for peer in Peer::ALL {
            let what = format!("st_pair {} {len} B", peer.name());
            within_30s(what, move || st_pair(peer, len, 1000));
        }
    }
}

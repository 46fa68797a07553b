//! The benchmark workloads themselves (watchq-bench (`watchq_bench`), shared by
//! `cargo bench` and `watchq bench`): every peer, every record size and
//! producer count finishes and moves every record. A workload that can
//! wait forever (a blocking pipe read after the last message) fails here
//! within seconds instead of hanging a benchmark run.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use watchq_bench::{st_pair, streaming, Mode, Peer, CAPACITY, SIZES};

/// Runs `f` on its own thread; fails if it takes longer than 30 s.
fn within_30s<T: Send + 'static>(what: String, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what} did not finish within 30 s"))
}

/// Every record size any workload uses: the criterion sizes and the
/// size curve's (a note holds 127 bytes, a 2019 record 504).
const ALL_SIZES: [usize; 8] = [16, 24, 32, 64, 127, 128, 256, 504];

#[test]
fn every_streaming_workload_finishes() {
    for producers in [1, 2] {
        for len in SIZES {
            for peer in Peer::ALL {
                for mode in [Mode::PerRecord, Mode::Batch] {
                    let what = format!("streaming {} {len} B x{producers} {mode:?}", peer.name());
                    let took = within_30s(what.clone(), move || {
                        streaming(peer, len, producers, mode, CAPACITY, 2000)
                    });
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
}

/// The curves' streams: every size a peer carries, small queues, and more
/// producers than cores.
#[test]
fn every_curve_workload_finishes() {
    for len in ALL_SIZES {
        for peer in Peer::ALL {
            let what = format!("streaming {} {len} B batch", peer.name());
            let took = within_30s(what.clone(), move || {
                streaming(peer, len, 1, Mode::Batch, CAPACITY, 1000)
            });
            assert_eq!(took.is_some(), peer.carries(len, 1), "{what}");
        }
    }
    for (producers, capacity) in [(8, 512), (4, 32), (1, 32)] {
        for peer in [Peer::PipeRing, Peer::MmapRing, Peer::ArrayQueue] {
            let what = format!("streaming {} x{producers} capacity {capacity}", peer.name());
            within_30s(what.clone(), move || {
                streaming(peer, 16, producers, Mode::Batch, capacity, 1000)
            })
            .unwrap_or_else(|| panic!("{what}: no queue"));
        }
    }
}

#[test]
fn every_single_thread_pair_finishes() {
    for len in ALL_SIZES {
        for peer in Peer::ALL {
            if !peer.carries(len, 1) {
                continue;
            }
            for mode in [Mode::PerRecord, Mode::Batch] {
                let what = format!("st_pair {} {len} B {mode:?}", peer.name());
                within_30s(what, move || st_pair(peer, len, mode, 1000));
            }
        }
    }
}

/// The floors (`Peer::Floor`): one producer, every size, both modes, and
/// a small queue that fills; every record arrives whole.
#[test]
fn every_floor_workload_finishes() {
    for peer in Peer::FLOORS {
        for len in ALL_SIZES {
            for mode in [Mode::PerRecord, Mode::Batch] {
                let what = format!("floor {} {len} B {mode:?}", peer.name());
                within_30s(what.clone(), move || {
                    streaming(peer, len, 1, mode, 32, 2000)
                })
                .unwrap_or_else(|| panic!("{what}: no queue"));
                within_30s(what, move || st_pair(peer, len, mode, 1000));
            }
        }
        assert!(streaming(peer, 16, 2, Mode::Batch, CAPACITY, 10).is_none());
    }
}

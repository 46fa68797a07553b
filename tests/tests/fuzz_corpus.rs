//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the
//! harness bodies on stable, so every seed and every past crash stays a
//! regression test without nightly.

use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.unwrap().path();
        harness(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "empty corpus for {target}");
}

#[test]
fn fuzz_corpus_filter_blob() {
    replay("filter_blob", watchq_core::fuzz::filter_blob);
}

#[test]
fn fuzz_corpus_record_decode() {
    replay("record_decode", watchq_core::fuzz::record_decode);
}

#[test]
fn fuzz_corpus_pipe_ring_ops() {
    replay("pipe_ring_ops", watchq_core::fuzz::pipe_ring_ops);
}

#[test]
fn fuzz_corpus_mmap_ring_ops() {
    replay("mmap_ring_ops", watchq_core::fuzz::mmap_ring_ops);
}

#[test]
fn fuzz_corpus_kernel_syscalls() {
    replay("kernel_syscalls", watchq_kernel::fuzz::kernel_syscalls);
}

#[test]
fn fuzz_corpus_kernel_wire() {
    replay("kernel_wire", watchq_kernel::fuzz::kernel_wire);
}

#[test]
fn fuzz_corpus_text_formats() {
    replay("text_formats", watchq::fuzz::text_formats);
}

#![no_main]
//! cargo-fuzz target; the body is `watchq_core::fuzz::mmap_ring_ops`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| watchq_core::fuzz::mmap_ring_ops(data));

#![no_main]
//! cargo-fuzz target; the body is `watchq_core::fuzz::filter_blob`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| watchq_core::fuzz::filter_blob(data));

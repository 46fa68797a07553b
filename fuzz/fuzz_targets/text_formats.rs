#![no_main]
//! cargo-fuzz target; the body is `watchq::fuzz::text_formats`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| watchq::fuzz::text_formats(data));

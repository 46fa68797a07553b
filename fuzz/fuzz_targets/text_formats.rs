#![no_main]
//! cargo-fuzz target; the body is `watchq_emu::fuzz::text_formats`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| watchq_emu::fuzz::text_formats(data));

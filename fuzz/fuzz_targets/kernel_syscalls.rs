#![no_main]
//! cargo-fuzz target; the body is `watchq_emu::fuzz::kernel_syscalls`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| watchq_emu::fuzz::kernel_syscalls(data));

#![no_main]
//! cargo-fuzz target; the body is `watchq_kernel::fuzz::kernel_wire`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| watchq_kernel::fuzz::kernel_wire(data));

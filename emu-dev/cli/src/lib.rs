//! watchq: the `watchq` command's library — the scenario runner, the
//! monitor, the demo, `watchq exec` and the record formats they print.
//!
//! The emulated kernel they drive is [`watchq_kernel`]; the consumer API
//! is [`watchq_client`]; the benchmark workloads behind `watchq bench` are
//! [`watchq_bench`]. This is the only crate of the workspace that parses a
//! command line (clap, in the binary).
// Unsafe code: only `seal`, the seccomp system call.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod demo;
pub mod exec;
pub mod format;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod kernel;
pub mod monitor;
pub mod scenario;
pub mod seal;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// docs/testing-rust.md's examples, compiled and run as doctests.
#[doc = include_str!("../../../docs/testing-rust.md")]
#[cfg(doctest)]
pub struct TestingRustDoctests;

/// docs/getting-started.md's examples, compiled and run as doctests.
#[doc = include_str!("../../../docs/getting-started.md")]
#[cfg(doctest)]
pub struct GettingStartedDoctests;

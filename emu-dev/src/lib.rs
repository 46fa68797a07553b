//! watchq-emu: the emulated kernel as processes see it.
//!
//! [`Kernel`] holds the configuration, the security policy, the per-user
//! accounts and the processes; a [`Process`] has credentials, resource
//! limits and an fd table, and offers syscall-shaped methods that return
//! `Result<_, Errno>` with the errno a real kernel would give, in the real
//! kernel's order of checks: `pipe2`, `ioctl`, `read`, `readv`, `write`,
//! `writev`, `splice`, `tee`, `vmsplice`, `sendfile`, `fcntl`, `poll`,
//! `lseek`, `close`, `dup`, `dup2`, `dup3`, `open`, `memfd_create`.
//!
//! Notification pipes wrap a [`watchq_core::WatchQueue`]; ordinary pipes are
//! emulated too (page-sized buffers, merging, packet mode), so a test can
//! compare the two.
#![deny(unsafe_code)] // one exception: client::real makes the real system calls
#![warn(missing_docs)]

pub mod bench;
pub mod client;
pub mod demo;
pub mod exec;
mod fdtable;
mod file;
pub mod format;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod kernel;
pub mod keyctl;
pub mod monitor;
mod pipe;
mod process;
pub mod scenario;
pub mod script;

pub use file::OpenFile;
pub use kernel::{Kernel, KernelConfig};
pub use process::{PollFd, Process};

/// Constants of the syscall surface.
pub mod process_consts {
    pub use crate::process::AT_FDCWD;
}
pub use watchq_core::{Errno, Result};
pub use watchq_sources::keys;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// docs/testing-rust.md's examples, compiled and run as doctests.
#[doc = include_str!("../../docs/testing-rust.md")]
#[cfg(doctest)]
pub struct TestingRustDoctests;

/// docs/getting-started.md's examples, compiled and run as doctests.
#[doc = include_str!("../../docs/getting-started.md")]
#[cfg(doctest)]
pub struct GettingStartedDoctests;

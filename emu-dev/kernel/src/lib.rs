//! watchq-kernel: the emulated kernel as processes see it.
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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod fdtable;
mod file;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod kernel;
pub mod keyctl;
mod pipe;
mod process;
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

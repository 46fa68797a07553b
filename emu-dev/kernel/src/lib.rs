//! watchq-kernel: the emulated kernel as processes see it.
//!
//! [`Kernel`] holds the configuration, the security policy, the per-user
//! accounts and the process table; a [`Process`] has credentials, resource
//! limits, an alarm, an fd table, keyrings and a mount namespace, and can
//! fork. The system calls are in [`syscalls`], one trait per subsystem as
//! the kernel groups them (fs/pipe.c, fs/read_write.c, fs/splice.c,
//! kernel/watch_queue.c, security/keys/keyctl.c, ...), each implemented for
//! `Process` and returning `Result<_, Errno>` with the errno a real kernel
//! would give, in the real kernel's order of checks. [`prelude`] brings
//! them into scope:
//!
//! ```
//! use watchq_kernel::prelude::*;
//! use watchq_kernel::{Kernel, KernelConfig};
//!
//! let k = Kernel::new(KernelConfig::default());
//! let p = k.spawn(1000, 1000);
//! let [r, w] = p.pipe2(0).unwrap();
//! assert_eq!(p.write(w, b"hi"), Ok(2));
//! let mut buf = [0u8; 8];
//! assert_eq!(p.read(r, &mut buf), Ok(2));
//! ```
//!
//! Notification pipes wrap a [`watchq_core::WatchQueue`]; ordinary pipes are
//! emulated too (page-sized buffers, merging, packet mode), so a test can
//! compare the two.
//!
//! Modules depend one way: `syscalls` → `process` → `kernel` → `task` →
//! `fdtable` → `file` → `pipe`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod fdtable;
mod file;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod kernel;
mod pipe;
mod process;
pub mod remote;
pub mod script;
pub mod server;
mod sock;
pub mod syscalls;
mod task;
pub mod wire;

pub use file::OpenFile;
pub use kernel::{Kernel, KernelConfig};
pub use process::Process;
pub use syscalls::poll::PollFd;

/// Every system-call trait, for `use watchq_kernel::prelude::*;`.
pub mod prelude {
    pub use crate::syscalls::dev_watch_queue::DevWatchQueueCalls;
    pub use crate::syscalls::devices::DeviceCalls;
    pub use crate::syscalls::file::FileCalls;
    pub use crate::syscalls::keys::KeyCalls;
    pub use crate::syscalls::mount::MountCalls;
    pub use crate::syscalls::pipe::PipeCalls;
    pub use crate::syscalls::poll::PollCalls;
    pub use crate::syscalls::procfs::ProcCalls;
    pub use crate::syscalls::read_write::ReadWriteCalls;
    pub use crate::syscalls::splice::SpliceCalls;
    pub use crate::syscalls::watch_queue::WatchQueueCalls;
}

/// keyctl(2)'s command numbers (also at `syscalls::keys::cmd`).
pub mod keyctl {
    pub use crate::syscalls::keys::cmd;
}

/// Constants of the syscall surface.
pub mod process_consts {
    pub use crate::syscalls::mount::AT_FDCWD;
}
pub use watchq_core::{Errno, Result};
pub use watchq_sources::keys;

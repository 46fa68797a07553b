//! watchq-sources: the simulated kernel objects that emit notifications.
//!
//! Each source owns its objects and their [`watchq_core::WatchList`]s and
//! posts through [`watchq_core::post_watch_notification`]. Sources know no
//! file descriptor and no process: callers pass credentials, keyring anchors
//! and the security policy in.
//!
//! - [`keys`]: keys and keyrings, the one source the kernel merged.
//! - [`mount`]: mounts, mount namespaces and superblocks (the 2019/2020
//!   mount and superblock notification proposals, never merged).
//! - [`devices`]: the global device watch list, block devices and USB
//!   (the pipe-era device series, never merged).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod devices;
pub mod keys;
pub mod mount;

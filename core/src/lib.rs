//! watchq-core: the notification machinery of watchq, a userspace emulator of
//! Linux's general notification queue.
//!
//! Records ([`record`]), user filters ([`filter`]), watches and watch lists
//! ([`watch`]), the post path ([`post`]), queues ([`queue`]) and the
//! lock-free rings they post into ([`ring`]), with the kernel's constants and
//! layouts in [`uapi`] and its error numbers in [`errno`], and the tokenizer
//! of watchq's line languages in [`text`]. This crate knows no
//! event source and no file descriptor: sources own watch lists and call
//! [`post::post_watch_notification`]; the emulated kernel (watchq-kernel) wraps
//! queues in pipes.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod errno;
pub mod filter;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod lsm;
pub mod post;
pub mod queue;
pub mod record;
pub mod ring;
pub(crate) mod sync;
pub mod text;
pub mod uapi;
pub mod wait;
pub mod watch;

#[cfg(all(test, loom))]
mod loom_tests;

pub use errno::{Errno, Result};
pub use lsm::{Cred, Permissive, Policy, UserStruct, WatchedObject};
pub use post::{post_watch_notification, PostSummary};
pub use queue::{AllocFaults, QueueStats, ReadMode, WatchQueue};
pub use record::Notification;
pub use ring::PostOutcome;
pub use watch::{
    add_watch_to_object, remove_watch_from_object, remove_watch_list, watch_or_unwatch, Watch,
    WatchList,
};

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
//!
//! The wire layer — [`uapi`], [`record`], [`filter`] and [`errno`] — is
//! all a consumer of real notifications needs (watchq-client uses only
//! it); everything else is the feature `machinery` (on by default), so a
//! consumer built with `default-features = false` compiles none of the
//! emulator's rings, queues or policies and none of their dependencies.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod errno;
pub mod filter;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
#[cfg(feature = "machinery")]
pub mod lsm;
#[cfg(feature = "machinery")]
pub mod post;
#[cfg(feature = "machinery")]
pub mod queue;
#[cfg(feature = "machinery")]
pub(crate) mod rcu;
pub mod record;
#[cfg(feature = "machinery")]
pub mod ring;
#[cfg(feature = "machinery")]
#[cfg(feature = "machinery")]
pub(crate) mod sync;
pub mod text;
pub mod uapi;
#[cfg(feature = "machinery")]
pub mod wait;
#[cfg(feature = "machinery")]
pub mod watch;

#[cfg(all(test, loom))]
mod loom_tests;

pub use errno::{Errno, Result};
#[cfg(feature = "machinery")]
pub use lsm::{Cred, Permissive, Policy, UserStruct, WatchedObject};
#[cfg(feature = "machinery")]
pub use post::{post_watch_notification, PostSummary};
#[cfg(feature = "machinery")]
pub use queue::{AllocFaults, QueueStats, ReadMode, WatchQueue};
pub use record::Notification;
#[cfg(feature = "machinery")]
pub use ring::PostOutcome;
#[cfg(feature = "machinery")]
pub use watch::{
    add_watch_to_object, remove_watch_from_object, remove_watch_list, watch_or_unwatch, Watch,
    WatchList,
};

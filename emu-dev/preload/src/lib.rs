//! watchq-preload: run an unmodified program on watchq.
//!
//! Loaded with `LD_PRELOAD` (by `watchq exec`), this library interposes
//! the libc entry points a consumer of notification pipes and keys uses
//! (`entry`), resolving everything that is not watchq's to the real libc
//! (`real`). `pipe2(O_NOTIFICATION_PIPE)` makes an emulated notification
//! pipe whose descriptors are real eventfd numbers, so `poll`, `select`
//! and `epoll` loops work; the keyctl, add_key and request_key system calls
//! are served by watchq's key model; the emulation lives behind one
//! interface, [`host::Host`].
//!
//! Configuration, from the environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `WATCHQ_NOTIFICATIONS` | `off` builds the kernel without notification support: `pipe2(O_NOTIFICATION_PIPE)` fails with ENOPKG |
//! | `WATCHQ_KEY_GC_DELAY` | seconds before a revoked or expired key is collected (the kernel's `gc_delay`, 300) |
//! | `WATCHQ_LOG` | a file that gets a line per emulated call |
//! | `WATCHQ_POLICY` | a policy file (docs/policy.md) put in force for the whole run |
//! | `WATCHQ_SCRIPT` | a key script (docs/monitor.md's commands, with `sleep <ms>`) run in the background while the program runs |
//!
//! Scope: one process and its threads. A `fork()`ed child gets a copy of
//! the emulation (not shared with the parent); `exec` starts afresh.
#![allow(clippy::missing_safety_doc)] // each interposer's contract is libc's

mod client;
mod entry;
mod host;
mod real;
mod shared;
mod user;

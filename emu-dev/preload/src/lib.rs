//! watchq-preload: run an unmodified program on watchq.
//!
//! Loaded with `LD_PRELOAD` (by `watchq exec`), this library interposes
//! the libc entry points a consumer of notification pipes and keys uses
//! (`entry`), resolving everything that is not watchq's to the real libc
//! (`real`). It is a thin client of one emulated kernel shared by the
//! whole process tree (`client`, the calls in `shared`): the kernel runs
//! as its own process (`watchq exec`, `watchq kernel`), or in the first
//! process given the library by hand (`hosted`, which also lists the
//! settings). `pipe2(O_NOTIFICATION_PIPE)` makes an emulated notification
//! pipe whose descriptors are real pipe ends, so `poll`, `select` and
//! `epoll` loops work in any process, and fork, exec, dup and
//! `SCM_RIGHTS` are the real kernel's; the keyctl, add_key and request_key
//! system calls are served by the kernel's key model.
#![allow(clippy::missing_safety_doc)] // each interposer's contract is libc's

mod client;
mod entry;
mod entry_open;
mod hosted;
mod procfs;
mod real;
mod shared;
mod short;
mod signals;
mod tree;
mod user;

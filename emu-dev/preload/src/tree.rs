//! The process tree as the kernel must see it: children and threads.
//!
//! The kernel server learns of a process at its first call, and of a
//! thread at its first key call; the real kernel sets both up at
//! `clone()`, which no preload sees. Two things a process or thread is
//! given at its creation would be lost in between, so the entry points in
//! `shim.c` call here:
//!
//! - **A child keeps its parent's session keyring even if the parent exits
//!   first.** The kernel finds a new process's emulated parent through its
//!   real parent; once that has exited the child has been reparented, and
//!   would start in a session of its own. So the parent tells the kernel
//!   of each child it makes, while it is alive to vouch for it: `fork()`
//!   and `posix_spawn()` send `Request::Forked` after the real call, and
//!   the kernel enters the child as the parent's fork at once (it checks
//!   the child's real parent is the caller). A vfork child cannot be seen
//!   from the parent (`vfork` cannot be wrapped: the child returns through
//!   the wrapper's frame on the parent's stack), but it can only exec or
//!   exit, and its parent is stopped until it does: the exec wrappers
//!   introduce a vfork child on a connection of its own first.
//! - **A new thread gets a thread keyring of its own when its creator had
//!   one** (`copy_creds()` with `CLONE_THREAD`). `pthread_create` asks the
//!   kernel whether the creating thread has one, but only when this thread
//!   has ever made a key call (a thread that never did cannot have one:
//!   neither fork nor exec passes one on, and a thread created without one
//!   starts without one); if so the new thread makes its own before it
//!   runs the program's start routine.

use crate::client;
use libc::c_int;
use std::cell::Cell;
use watchq_core::uapi::KEY_SPEC_THREAD_KEYRING;
use watchq_kernel::keyctl::cmd;

thread_local! {
    /// Has this thread made a key call (or been given a thread keyring at
    /// its creation)? Until then it has no thread keyring.
    static KEY_CALLS: Cell<bool> = const { Cell::new(false) };
}

/// This thread is making a key call (it may get a thread keyring).
pub(crate) fn key_call() {
    KEY_CALLS.with(|k| k.set(true));
}

/// `fork()` or `posix_spawn()` just made real process `pid`: the kernel
/// enters it as this process's fork.
#[no_mangle]
pub extern "C" fn watchq_forked(pid: c_int) {
    // A process hosting the kernel: a server thread's child (a
    // request-key helper) is the server's to enter.
    if pid <= 0 || !client::active() || watchq_kernel::server::in_server_thread() {
        return;
    }
    // A child the kernel cannot enter (reaped already) falls back to its
    // own first call; fork's result is the program's either way.
    let _ = client::try_with(|r| r.forked(pid as u32));
}

/// An exec wrapper is about to exec: a vfork child is introduced first.
#[no_mangle]
pub extern "C" fn watchq_before_exec() {
    if client::is_vfork_child() {
        client::introduce_vfork_child();
    }
}

/// Does a thread created now by this thread get a thread keyring of its
/// own (has this thread one)? Asks the kernel only if this thread ever
/// made a key call.
#[no_mangle]
pub extern "C" fn watchq_thread_keyring_passes() -> c_int {
    if !client::active() || !KEY_CALLS.with(Cell::get) {
        return 0;
    }
    let id = client::with(false, |r| {
        r.keyctl(
            cmd::GET_KEYRING_ID,
            [KEY_SPEC_THREAD_KEYRING as i64 as u64, 0, 0, 0],
            (None, None),
            None,
            None,
        )
    });
    c_int::from(matches!(id, Ok((v, _)) if v > 0))
}

/// A thread whose creator had a thread keyring starts: it gets a new,
/// empty one of its own, as `install_thread_keyring_to_cred()` gives it.
#[no_mangle]
pub extern "C" fn watchq_thread_keyring_new() {
    KEY_CALLS.with(|k| k.set(true));
    let _ = client::with(false, |r| {
        r.keyctl(
            cmd::GET_KEYRING_ID,
            [KEY_SPEC_THREAD_KEYRING as i64 as u64, 1, 0, 0],
            (None, None),
            None,
            None,
        )
    });
}

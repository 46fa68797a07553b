//! The key subsystem's `/proc` files for a process tree.
//!
//! A program's `open()` of `/proc/keys`, `/proc/key-users` or
//! `/proc/sys/kernel/keys/*` never reaches the machine's own files: the
//! library asks the kernel here (`ProcOpen`), which checks the access as
//! the real kernel's open does and answers with the file's text (the
//! library puts it in a memfd, so every way of reading works: stdio's
//! internal reads, `pread`, `sendfile`, `copy_file_range`). A writable
//! open also gets the write end of a real pipe whose read end stays here:
//! writes the library does not see (stdio's internal writes: `fprintf`
//! then `fclose`, as procps' `sysctl -w` does, bash's `echo` then
//! `fflush`) arrive as bytes in that pipe. The library's `fflush` and
//! `fclose` of such a stream then send `ProcSync`: the bytes are taken
//! here as one write at the file's position, made by the caller, and the
//! handler's errno (EINVAL for a bad value, EPERM) is the `fflush`'s or
//! `fclose`'s, as the kernel's `write()` under them would have given it.
//! Bytes nobody synced (a program that ends in `_exit`, or is killed) are
//! taken when every write end is closed (the monitor's EPOLLHUP) or when
//! any process opens or reads one of these files, whichever comes first;
//! and the monitor takes them once half the pipe is full, so a program
//! that writes more than a pipe holds before it flushes never blocks (its
//! errno then goes unreported, its value is applied).
//! `write()` itself is seen by the library and comes as `ProcWrite`, with
//! the kernel's errno.

use super::{Shared, Watched};
use crate::process::Process;
use crate::syscalls::procfs::{ProcCalls, ProcNode};
use crate::wire::Reply;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use watchq_core::uapi::{O_ACCMODE_MASK, O_RDONLY};
use watchq_core::Errno;

/// A writable open's pipe: the bytes a program writes to it are writes to
/// `node`, made as `opener` at `pos`.
pub(crate) struct ProcWriter {
    node: ProcNode,
    opener: Arc<Process>,
    pos: u64,
    /// The read end (non-blocking).
    rd: OwnedFd,
    /// The pipe's inode: how `ProcSync` names it.
    ino: u64,
}

fn node(path: &str) -> Result<ProcNode, Errno> {
    ProcNode::lookup(path).ok_or(Errno::ENOENT)
}

/// `ProcOpen`.
pub(super) fn open(
    s: &Arc<Shared>,
    p: &Arc<Process>,
    path: &str,
    flags: u32,
) -> (Reply, Vec<OwnedFd>) {
    let n = match node(path) {
        Ok(n) => n,
        Err(e) => return (Reply::err(e), Vec::new()),
    };
    if let Err(e) = p.proc_open(n, flags) {
        return (Reply::err(e), Vec::new());
    }
    // The text a reader sees (sysctl reads are made again at each read()).
    let text = if flags & O_ACCMODE_MASK != watchq_core::uapi::O_WRONLY {
        p.proc_read(n, 0, usize::MAX).unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut give = Vec::new();
    if flags & O_ACCMODE_MASK != O_RDONLY {
        let (rd, wr) = match rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        ) {
            Ok(p) => p,
            Err(_) => return (Reply::err(Errno::ENFILE), Vec::new()),
        };
        // The program's end blocks as a file write does.
        let _ = rustix::fs::fcntl_setfl(&wr, rustix::fs::OFlags::empty());
        let id = s.next_id();
        let ino = rustix::fs::fstat(&rd).map(|st| st.st_ino).unwrap_or(0);
        s.watch(&rd, Watched::ProcWriter(id), None);
        s.proc_writers.lock().insert(
            id,
            ProcWriter {
                node: n,
                opener: p.clone(),
                pos: 0,
                rd,
                ino,
            },
        );
        give.push(wr);
    }
    (
        Reply {
            value: text.len() as i64,
            data: text,
            ..Reply::default()
        },
        give,
    )
}

/// `ProcRead`.
pub(super) fn read(p: &Process, path: &str, pos: u64, count: u32) -> Reply {
    match node(path).and_then(|n| p.proc_read(n, pos, count as usize)) {
        Ok(d) => Reply {
            value: d.len() as i64,
            data: d,
            ..Reply::default()
        },
        Err(e) => Reply::err(e),
    }
}

/// `ProcWrite`.
pub(super) fn write(p: &Process, path: &str, pos: u64, data: &[u8]) -> Reply {
    match node(path).and_then(|n| p.proc_write(n, pos, data)) {
        Ok(n) => Reply::ok(n as i64),
        Err(e) => Reply::err(e),
    }
}

/// `ProcSync`: the bytes waiting in the pipe `ino` taken now as a write
/// by `p`; the write's result (nothing waiting, or no such pipe: 0).
pub(super) fn sync(s: &Shared, p: &Process, ino: u64) -> Reply {
    let mut w = s.proc_writers.lock();
    let Some(pw) = w.values_mut().find(|pw| pw.ino == ino && ino != 0) else {
        return Reply::ok(0);
    };
    let (data, _) = take(pw);
    match apply(pw, p, &data) {
        Ok(()) => Reply::ok(0),
        Err(e) => Reply::err(e),
    }
}

/// What `pw`'s pipe holds now, and whether every write end is closed.
fn take(pw: &ProcWriter) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(&pw.rd, &mut buf) {
            Ok(0) => return (data, true),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return (data, false),
        }
    }
}

/// `data` written to `pw`'s file by `by` at its position.
fn apply(pw: &mut ProcWriter, by: &Process, data: &[u8]) -> Result<(), Errno> {
    if data.is_empty() {
        return Ok(());
    }
    by.proc_write(pw.node, pw.pos, data)?;
    // The program was told all of it was written: the next bytes come
    // after all of it, whatever the handler took. A failed write moves
    // nothing (`proc_sys_call_handler()` leaves the position on error).
    pw.pos += data.len() as u64;
    Ok(())
}

/// Bytes in a writer's pipe past which the monitor takes them without
/// waiting for a `ProcSync` (half of the pipe's 64 KiB).
const FILLING: u64 = 32 * 1024;

/// The monitor saw writer `w`'s pipe (epoll entry `ev`) written to or hung
/// up. Bytes a stream will flush are left for its `ProcSync` (which gives
/// their errno to the writer) unless the pipe is filling or every write
/// end is gone.
pub(super) fn event(s: &Shared, w: u64, ev: u64, flags: rustix::event::epoll::EventFlags) {
    use rustix::event::epoll::EventFlags;
    let filling = s
        .proc_writers
        .lock()
        .get(&w)
        .is_some_and(|pw| rustix::io::ioctl_fionread(&pw.rd).is_ok_and(|n| n >= FILLING));
    if filling || flags.intersects(EventFlags::HUP | EventFlags::ERR) {
        drain(s, Some((w, ev)));
    } else {
        s.watched.lock().insert(ev, (Watched::ProcWriter(w), None));
    }
}

/// Takes what the writers' pipes hold as writes by their openers; with
/// `id`, only that one (the monitor saw its epoll entry `ev` filling or
/// hung up, and took the entry out). A pipe whose every
/// write end is closed and that holds nothing more is forgotten.
pub(super) fn drain(s: &Shared, id: Option<(u64, u64)>) {
    let mut w = s.proc_writers.lock();
    if w.is_empty() {
        return;
    }
    let ids: Vec<u64> = match id {
        Some((i, _)) => vec![i],
        None => w.keys().copied().collect(),
    };
    for i in ids {
        let Some(pw) = w.get_mut(&i) else {
            continue;
        };
        let (data, closed) = take(pw);
        let opener = pw.opener.clone();
        let _ = apply(pw, &opener, &data);
        if closed {
            if let Some(pw) = w.remove(&i) {
                let _ = rustix::event::epoll::delete(&s.epoll, &pw.rd);
            }
        } else if let Some((_, ev)) = id {
            // Still registered (edge-triggered: the next write says so).
            s.watched.lock().insert(ev, (Watched::ProcWriter(i), None));
        }
    }
}

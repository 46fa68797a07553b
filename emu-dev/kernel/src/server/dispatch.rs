//! One request, served: decode what the client sent, run the emulated
//! system call as its process, encode the result.
//!
//! A call on an emulated end runs the ordinary syscall code of
//! [`crate::syscalls`] on the caller's emulated process: the end's open
//! file is installed in that process's fd table for the call and removed
//! after it (the server, not the table, holds the file between calls), so
//! credentials, limits and errno order are those of the emulated kernel's
//! own calls.

use super::files::{whole_records, End, RemotePipe};
use super::{Conn, Shared};
use crate::file::OpenFile;
use crate::process::Process;
use crate::syscalls::dev_watch_queue::DevWatchQueueCalls;
use crate::syscalls::devices::DeviceCalls;
use crate::syscalls::file::FileCalls;
use crate::syscalls::keys::{cmd, KeyCalls};
use crate::syscalls::mount::{MountCalls, AT_FDCWD};
use crate::syscalls::pipe::PipeCalls;
use crate::syscalls::poll::{PollCalls, PollFd};
use crate::syscalls::read_write::ReadWriteCalls;
use crate::syscalls::watch_queue::WatchQueueCalls;
use crate::wire::{Reply, Request, MAX_READ, READ_LOOK};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use watchq_core::ring::mmap::RingStorage;
use watchq_core::uapi::*;
use watchq_core::{Errno, Result};
use watchq_sources::keys::{Anchors, DhKdf};

/// Runs `f` with `file` installed in `p`'s fd table (past its
/// `RLIMIT_NOFILE`: the real descriptor exists already, the number is the
/// server's own).
fn with_fd<R>(p: &Process, file: &Arc<OpenFile>, f: impl FnOnce(i32) -> Result<R>) -> Result<R> {
    let fd = p.fd_table().alloc(file.clone(), false, 0, u64::MAX)?;
    let r = f(fd);
    let _ = p.fd_table().remove(fd);
    r
}

fn value(r: Result<i64>) -> Reply {
    match r {
        Ok(v) => Reply::ok(v),
        Err(e) => Reply::err(e),
    }
}

fn data(r: Result<Vec<u8>>) -> Reply {
    match r {
        Ok(d) => Reply {
            value: d.len() as i64,
            data: d,
            ..Reply::default()
        },
        Err(e) => Reply::err(e),
    }
}

/// Serves `req` for connection `c`; returns the reply and the descriptors
/// to send with it.
pub(super) fn handle(
    s: &Arc<Shared>,
    c: &mut Conn,
    req: Request,
    fds: Vec<OwnedFd>,
    uid: u32,
    gid: u32,
) -> (Reply, Vec<OwnedFd>) {
    let name = req.name();
    if let Request::Hello { exec } = req {
        return (hello(s, c, exec, uid, gid), Vec::new());
    }
    let Some(proc_) = c.proc_.clone() else {
        s.audit(format!("pid {}: {name} before hello", c.pid));
        return (Reply::err(Errno::EINVAL), Vec::new());
    };
    let p = &proc_.process;
    // Credentials as the real kernel says they are now (a setuid since).
    let cred = p.cred();
    if cred.uid != uid || cred.gid != gid {
        real_cred(s, p, c.pid, uid, gid);
    }
    // Thread keyrings are per thread: a key call runs as the thread it
    // came from (the main thread unless `Request::Thread` said otherwise,
    // and only a thread of this process), switched to in the call itself.
    // A stop ends KEYCTL_READ's wait for a key under construction (the
    // kernel's lookup fails, and the read says ENOKEY, never restarted).
    let _task = matches!(
        req,
        Request::AddKey { .. } | Request::RequestKey { .. } | Request::Keyctl { .. }
    )
    .then(|| {
        let tid = c.tid.take().unwrap_or(c.pid);
        let read = matches!(req, Request::Keyctl { op, .. } if op == cmd::READ);
        crate::syscalls::keys::as_task(c.pid, tid, read)
    });
    if let Request::Thread { tid } = req {
        let ours =
            tid == c.pid || std::path::Path::new(&format!("/proc/{}/task/{tid}", c.pid)).exists();
        c.tid = ours.then_some(tid);
        return (
            if ours {
                Reply::ok(0)
            } else {
                Reply::err(Errno::ESRCH)
            },
            Vec::new(),
        );
    }
    if let Request::Forked { pid } = req {
        let reply = match s.procs.adopt(&proc_, pid) {
            Ok(joined) => {
                s.watch_joined(joined.into_iter().collect());
                Reply::ok(0)
            }
            Err(e) => Reply::err(e),
        };
        return (reply, Vec::new());
    }
    let target = fds.first().and_then(|fd| s.lookup(fd));
    // What the mirrors' readers took leaves their queues first, so a call
    // that posts finds the room they made.
    s.reap_all(false);
    if matches!(req, Request::Pipe2 { .. } | Request::OpenDev { .. }) {
        // A pipe closed just before is released before a new one is
        // charged to its user (the pipe page accounting).
        s.take_hangups();
        // A hung-up pipe's last reader close has no event of its own.
        let pipes: Vec<_> = s.pipes.lock().values().cloned().collect();
        for p in &pipes {
            s.check_hung_up(p);
        }
    }
    if matches!(
        req,
        Request::Poll { .. } | Request::Read { .. } | Request::ReadValue { .. }
    ) {
        if let Some((pipe, _)) = &target {
            s.check_hangup(pipe);
        }
    }
    let unread_ok = matches!(req, Request::Unread { .. });
    let last_read = if unread_ok { c.last_read.take() } else { None };
    c.last_read = None;
    let mut give = Vec::new();
    let reply = match req {
        Request::Hello { .. } | Request::Thread { .. } | Request::Forked { .. } => {
            unreachable!("handled above")
        }
        // The server's loop skips it (no reply).
        Request::Interrupt => Reply::ok(0),
        Request::Pipe2 { flags } => match pipe2(s, p, flags) {
            Ok(ends) => {
                give = Vec::from(ends);
                Reply::ok(0)
            }
            Err(e) => Reply::err(e),
        },
        Request::Read { count } | Request::ReadValue { count } => match &target {
            Some((pipe, End::Read)) => match pipe.mirror() {
                Ok(files) => {
                    let by_value = matches!(req, Request::ReadValue { .. });
                    let count = (count as usize).min(MAX_READ);
                    mirror_read(s, c, pipe, files, count, by_value, &mut give)
                }
                Err(_) => read(c, p, pipe, count as usize),
            },
            Some((_, End::Write)) => Reply::err(Errno::EBADF),
            None => Reply::err(Errno::EBADF),
        },
        Request::Unread { len } => match (&target, last_read) {
            (Some((pipe, End::Read)), Some((id, bytes)))
                if id == pipe.id && (len as usize) <= bytes.len() =>
            {
                let back = &bytes[bytes.len() - len as usize..];
                if whole_records(&bytes[..bytes.len() - back.len()]) && whole_records(back) {
                    pipe.unread(back);
                    Reply::ok(0)
                } else {
                    Reply::err(Errno::EINVAL)
                }
            }
            _ => Reply::err(Errno::EINVAL),
        },
        Request::Ioctl { cmd, arg, mem } => {
            on_file(&target, |f, pipe| ioctl(p, f, pipe, cmd, arg, mem))
        }
        Request::Fcntl { cmd, arg } => on_file(&target, |f, _| {
            value(with_fd(p, &f, |fd| p.fcntl(fd, cmd, arg)))
        }),
        Request::Poll { events } => {
            // The consumer is waiting: a poll that finds nothing runs the
            // queued key collector first (PollCalls::poll), and one that
            // finds records lets it run once it is answered, as the
            // kernel's work item runs while its consumer goes on to sleep
            // or read (the oracle: never in the read right after the call,
            // always in the reads after a poll; docs/delivery.md §1).
            c.gc_after_reply = s.kernel.keys().gc_pending();
            on_file(&target, |f, pipe| {
                let r = with_fd(p, &f, |fd| {
                    let mut e = [PollFd::new(fd, events)];
                    p.poll(&mut e, 0)?;
                    Ok(e[0].revents)
                });
                let mut reply = value(r.map(|mut ev| {
                    if f.readable() && pipe.front_len() > 0 {
                        ev |= (POLLIN | POLLRDNORM) & events;
                    }
                    i64::from(ev)
                }));
                // Nothing to read: readiness bytes left over are the poller's
                // to drain (a 2019 ring emptied in its mapping, a reader gone).
                if reply.errno == 0
                    && events & POLLIN != 0
                    && reply.value as u16 & POLLIN == 0
                    && matches!(&target, Some((_, End::Read)))
                {
                    reply.drain = pipe.drain_for_poller() as u32;
                }
                reply
            })
        }
        Request::OpenDev { flags } => match open_dev(s, p, flags) {
            Ok(fd) => {
                give = vec![fd];
                Reply::ok(0)
            }
            Err(e) => Reply::err(e),
        },
        Request::Mmap {
            len,
            shared,
            offset,
        } => on_file(&target, |f, _| {
            let r = with_fd(p, &f, |fd| {
                let q = p.mmap_watch_queue(fd, len as usize, shared, offset)?;
                let ring = q.ring_2019().ok_or(Errno::EINVAL)?;
                let file = ring.storage().file().ok_or(Errno::ENODEV)?;
                file.try_clone().map_err(|_| Errno::ENFILE)
            });
            match r {
                Ok(file) => {
                    give = vec![OwnedFd::from(file)];
                    Reply::ok(0)
                }
                Err(e) => Reply::err(e),
            }
        }),
        Request::WatchDevices { tag, flags } => {
            let file = target.as_ref().and_then(|(pipe, end)| pipe.file(*end));
            value(
                match file {
                    Some(f) => with_fd(p, &f, |fd| p.watch_devices(fd, tag, flags)),
                    None => p.watch_devices(-1, tag, flags),
                }
                .map(|()| 0),
            )
        }
        Request::WatchPath {
            sb,
            path,
            at_flags,
            tag,
        } => {
            let file = target.as_ref().and_then(|(pipe, end)| pipe.file(*end));
            let call = |fd: i32| {
                if sb {
                    p.watch_sb(AT_FDCWD, &path, at_flags, fd, tag)
                } else {
                    p.watch_mount(AT_FDCWD, &path, at_flags, fd, tag)
                }
            };
            value(
                match file {
                    Some(f) => with_fd(p, &f, call),
                    None => call(-1),
                }
                .map(|()| 0),
            )
        }
        Request::AddKey {
            ktype,
            desc,
            payload,
            ring,
        } => value(
            p.add_key(&ktype, desc.as_deref(), &payload, ring)
                .map(i64::from),
        ),
        Request::RequestKey {
            ktype,
            desc,
            dest,
            callout,
        } => value(request_key(s, p, &ktype, &desc, callout.as_deref(), dest).map(i64::from)),
        Request::Keyctl { op, .. } if op == cmd::SESSION_TO_PARENT => session_to_parent(s, c, p),
        Request::Keyctl {
            op,
            args,
            s1,
            s2,
            data: d,
        } => keyctl(p, &target, op, args, s1, s2, d),
        Request::Rlimit { soft, hard } => {
            p.mirror_rlimit_nofile(soft, hard);
            Reply::ok(0)
        }
        Request::ProcOpen { path, flags } => {
            // Bytes a stdio stream left unsynced in a /proc pipe were
            // written before this open (procfs's header).
            super::procfs::drain(s, None);
            let (r, g) = super::procfs::open(s, p, &path, flags);
            give = g;
            r
        }
        Request::ProcRead { path, pos, count } => {
            super::procfs::drain(s, None);
            super::procfs::read(p, &path, pos, count)
        }
        Request::ProcSync { ino } => super::procfs::sync(s, p, ino),
        Request::ProcWrite { path, pos, data } => super::procfs::write(p, &path, pos, &data),
        Request::Stats => on_file(&target, |f, _| {
            match with_fd(p, &f, |fd| p.queue_stats(fd)) {
                Ok(st) => Reply {
                    data: [
                        st.posted,
                        st.lost,
                        st.read,
                        st.loss_records,
                        st.queued,
                        st.filtered,
                        st.denied,
                        st.discarded,
                    ]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                    ..Reply::default()
                },
                Err(e) => Reply::err(e),
            }
        }),
    };
    // A call may have posted (keys, a filter, a size): every reader's
    // tokens follow.
    if !matches!(name, "read" | "poll" | "stats") {
        s.sync_all(false);
    }
    if reply.errno == 0 || reply.drain > 0 {
        if let Some((pipe, _)) = &target {
            if reply.drain > 0 {
                c.promised.push((pipe.clone(), u64::from(reply.drain)));
            }
        }
    }
    if s.logging() {
        s.log(
            c.pid,
            format_args!(
                "{name} = {}",
                match reply.result() {
                    Ok(v) => v.to_string(),
                    Err(e) => format!("-1 {}", e.name()),
                }
            ),
        );
    }
    (reply, give)
}

/// Runs `f` on the emulated file the sent descriptor is (EBADF when none
/// was sent or it is not an emulated end).
fn on_file(
    target: &Option<(Arc<RemotePipe>, End)>,
    f: impl FnOnce(Arc<OpenFile>, &RemotePipe) -> Reply,
) -> Reply {
    match target {
        Some((pipe, end)) => match pipe.file(*end) {
            Some(file) => f(file, pipe),
            None => Reply::err(Errno::EBADF),
        },
        None => Reply::err(Errno::EBADF),
    }
}

/// request_key(2). With call-out information and no key, the kernel runs
/// `/sbin/request-key` (or `--request-key`'s program) as
/// `call_sbin_request_key()` does (`create KEY UID
/// GID THREAD PROCESS SESSION`, `HOME=/`, `TERM=linux`, the system PATH,
/// no standard streams) but as a process of this emulated kernel (the
/// preload and `WATCHQ_KERNEL` in its environment, its own `_req.KEY`
/// session keyring), and waits for it to exit; the caller's request
/// waits with it. Nothing reaches the host's keyrings: every call the
/// helper and its children make goes to this kernel.
fn request_key(
    s: &Arc<Shared>,
    p: &Process,
    ktype: &str,
    desc: &str,
    callout: Option<&[u8]>,
    dest: i32,
) -> Result<i32> {
    use watchq_sources::keys::Requested;
    let call = match p.request_key_with(ktype, desc, callout, dest)? {
        Requested::Found(k) => return Ok(k),
        Requested::Construct(call) => call,
    };
    if let Some(preload) = &s.preload {
        let [thread, process, session] = call.rings;
        s.procs.helper_starting();
        let child = std::process::Command::new(&s.request_key)
            .args(["create".to_string(), call.key.to_string()])
            .args([call.uid, call.gid].map(|v| v.to_string()))
            .args([thread, process, session].map(|v| v.to_string()))
            .env_clear()
            .env("HOME", "/")
            .env("TERM", "linux")
            .env("PATH", "/sbin:/bin:/usr/sbin:/usr/bin")
            .env("LD_PRELOAD", preload)
            .env("WATCHQ_KERNEL", &s.sock_path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        s.procs
            .helper_started(child.as_ref().ok().map(|c| c.id()), call.helper_session);
        if let Ok(mut child) = child {
            let _ = child.wait();
        }
    }
    p.request_key_ended(&call)
}

fn hello(s: &Arc<Shared>, c: &mut Conn, exec: bool, uid: u32, gid: u32) -> Reply {
    let Some((proc_, joined)) = s.procs.attach(&s.kernel, c.pid, uid, gid) else {
        return Reply::err(Errno::ESRCH);
    };
    let fresh = !joined.is_empty();
    s.watch_joined(joined);
    real_cred(s, &proc_.process, c.pid, uid, gid);
    if exec && !fresh {
        // execve(): thread and process keyrings go (prepare_exec_creds()),
        // the session keyring and the authority stay.
        let mut a = proc_.process.anchors();
        *a = Anchors {
            session: a.session,
            auth: a.auth,
            ..Anchors::default()
        };
        drop(a);
        proc_.process.exec();
        s.kernel.key_gc();
    }
    c.proc_ = Some(proc_);
    // Bit 0: a new emulated process; bit 1: notification support.
    Reply::ok(i64::from(fresh) | (i64::from(s.kernel.config().watch_queue) << 1))
}

/// Gives `p` the real process's uid, gid and supplementary groups, keeping
/// its LSM label and domain.
fn real_cred(s: &Arc<Shared>, p: &Process, pid: u32, uid: u32, gid: u32) {
    let old = p.cred();
    let mut cred = s.kernel.cred(uid, gid);
    cred.groups = super::procs::groups(pid);
    cred.set_label(old.label().map(str::to_string));
    cred.domain = old.domain.clone();
    p.set_cred(cred);
}

fn pipe2(s: &Arc<Shared>, p: &Process, flags: u32) -> Result<[OwnedFd; 2]> {
    if flags & O_NOTIFICATION_PIPE == 0 {
        // Ordinary pipes are the real kernel's.
        return Err(Errno::EINVAL);
    }
    let [r, w] = p.pipe2(flags & !O_CLOEXEC)?;
    let (rd, wr) = {
        let mut t = p.fd_table();
        let rd = t.remove(r).map(|e| e.file);
        let wr = t.remove(w).map(|e| e.file);
        (rd?, wr?)
    };
    let made = RemotePipe::make(s.next_pipe_id(), rd, wr, flags)?;
    s.add_pipe(&made.pipe);
    Ok(made.give)
}

/// KEYCTL_SESSION_TO_PARENT: the caller's real parent gets the caller's
/// session keyring (the kernel installs it when the parent next returns to
/// user space; here at once). Mirrors `keyctl_session_to_parent()`, in
/// its order of checks.
///
/// # Errors
/// The session keyring's look-up (`EACCES` without link permission);
/// `EPERM`: the parent is not a process of this kernel (init, another
/// tree), has more than one thread, is another user's or group's, or one
/// of the two session keyrings is not the caller's user's.
fn session_to_parent(s: &Arc<Shared>, c: &Conn, p: &Process) -> Reply {
    let session = match p.keyctl_session_for_parent() {
        Ok(k) => k,
        Err(e) => return Reply::err(e),
    };
    let Some((ppid, parent)) = super::procs::stat(c.pid)
        .and_then(|st| super::procs::stat(st.ppid).map(|ps| (st.ppid, ps)))
        .and_then(|(ppid, ps)| s.procs.get(ppid, ps.start).map(|pp| (ppid, pp)))
    else {
        return Reply::err(Errno::EPERM);
    };
    // thread_group_empty(parent): the host knows the parent's threads.
    let threads = std::fs::read_dir(format!("/proc/{ppid}/task")).map_or(1, |d| d.count());
    if ppid <= 1 || threads > 1 {
        return Reply::err(Errno::EPERM);
    }
    // The anchors' lock is let go before anything else takes it.
    let theirs = parent.process.anchors().session;
    if theirs == Some(session) {
        return Reply::ok(0);
    }
    let (me, them) = (p.cred(), parent.process.cred());
    let keys = s.kernel.keys();
    if them.uid != me.uid
        || them.gid != me.gid
        || theirs.is_some_and(|k| keys.owner_of(k) != Some(me.uid))
        || keys.owner_of(session) != Some(me.uid)
    {
        return Reply::err(Errno::EPERM);
    }
    parent.process.anchors().session = Some(session);
    s.kernel.key_gc();
    Reply::ok(0)
}

fn open_dev(s: &Arc<Shared>, p: &Process, flags: u32) -> Result<OwnedFd> {
    let fd = p.open("/dev/watch_queue", flags & !O_CLOEXEC)?;
    let file = p.fd_table().remove(fd)?.file;
    let queue = with_fd(p, &file, |fd| p.watch_queue(fd))?;
    let (pipe, give) = RemotePipe::make_device(s.next_pipe_id(), file, queue, flags)?;
    s.add_pipe(&pipe);
    Ok(give)
}

fn read(c: &mut Conn, p: &Process, pipe: &Arc<RemotePipe>, count: usize) -> Reply {
    let Some(file) = pipe.file(End::Read) else {
        return Reply::err(Errno::EBADF);
    };
    let count = count.min(MAX_READ);
    let (res, drain) = pipe.read(count, |buf| with_fd(p, &file, |fd| p.read_nowait(fd, buf)));
    read_reply(c, pipe, res, drain)
}

/// The reply to a read that took records by value: the bytes (kept as
/// the connection's last read, for an unread of what did not fit) or
/// the errno, with the caller's share of the readiness bytes.
fn read_reply(c: &mut Conn, pipe: &RemotePipe, res: Result<Vec<u8>>, drain: u64) -> Reply {
    let mut reply = match res {
        Ok(d) => {
            c.last_read = Some((pipe.id, d.clone()));
            Reply {
                value: d.len() as i64,
                data: d,
                ..Reply::default()
            }
        }
        Err(e) => Reply::err(e),
    };
    reply.drain = drain as u32;
    reply
}

/// A read of a mirrored pipe (one whose reader found its mirror empty,
/// has none mapped yet, or was told to ask first): records given back
/// first, by value; else the records are in the mirror now (the reply
/// says look there, with its memfds the first time on this connection),
/// or the end of file, or EAGAIN, after the queued key collector ran, as
/// an empty read lets it (docs/delivery.md §1). `by_value` (a reader
/// that cannot read the mirror itself): the records themselves, in at
/// most `count` bytes.
fn mirror_read(
    s: &Arc<Shared>,
    c: &mut Conn,
    pipe: &Arc<RemotePipe>,
    files: (std::fs::File, std::fs::File),
    count: usize,
    by_value: bool,
    give: &mut Vec<OwnedFd>,
) -> Reply {
    if by_value {
        if let (Some(res), drain) = pipe.mirror_take(count) {
            return read_reply(c, pipe, res, drain);
        }
    }
    let (pending, drain) = match pipe.mirror_read(count) {
        (Some(res), _, drain) => return read_reply(c, pipe, res, drain),
        (None, pending, drain) => (pending, drain),
    };
    if pending && by_value {
        // The mirror was empty when this read took from it, and a record
        // came since: EAGAIN is the answer of a read at that moment, as a
        // pipe_read() that found the pipe empty just before a post gives
        // it. A reader that sleeps wakes on the record's readiness byte.
        return Reply::err(Errno::EAGAIN);
    }
    if pending {
        if c.mapped.insert(pipe.id) {
            give.push(OwnedFd::from(files.0));
            give.push(OwnedFd::from(files.1));
        }
        return Reply::ok(READ_LOOK);
    }
    // Stale readiness bytes (a reader killed mid-read) go with this reply.
    let mut reply = if pipe.eof() {
        Reply::ok(0)
    } else {
        if s.kernel.keys().gc_pending() {
            s.kernel.flush_key_gc();
            s.sync_all(false);
        }
        Reply::err(Errno::EAGAIN)
    };
    reply.drain = drain as u32;
    reply
}

fn ioctl(
    p: &Process,
    f: Arc<OpenFile>,
    pipe: &RemotePipe,
    cmd_: u64,
    arg: u64,
    mem: Option<Vec<u8>>,
) -> Reply {
    match cmd_ {
        FIONREAD => {
            let mut m = [0u8; 4];
            let r = with_fd(p, &f, |fd| p.ioctl(fd, cmd_, arg, Some(&mut m)));
            value(r.map(|_| i64::from(i32::from_le_bytes(m)) + pipe.front_len() as i64))
        }
        _ => {
            let mut mem = mem;
            value(with_fd(p, &f, |fd| {
                p.ioctl(fd, cmd_, arg, mem.as_deref_mut())
            }))
        }
    }
}

fn keyctl(
    p: &Process,
    target: &Option<(Arc<RemotePipe>, End)>,
    op: u32,
    a: [u64; 4],
    s1: Option<String>,
    s2: Option<String>,
    d: Option<Vec<u8>>,
) -> Reply {
    let id = |v: u64| v as i32;
    let unit = |r: Result<()>| value(r.map(|()| 0));
    let need = |s: Option<String>| s.ok_or(Errno::EFAULT);
    let payload = d.unwrap_or_default();
    match op {
        cmd::GET_KEYRING_ID => value(p.keyctl_get_keyring_id(id(a[0]), a[1] != 0).map(i64::from)),
        cmd::JOIN_SESSION_KEYRING => {
            value(p.keyctl_join_session_keyring(s1.as_deref()).map(i64::from))
        }
        cmd::UPDATE => unit(p.keyctl_update(id(a[0]), &payload)),
        cmd::REVOKE => unit(p.keyctl_revoke(id(a[0]))),
        cmd::CHOWN => unit(p.keyctl_chown(id(a[0]), a[1] as u32, a[2] as u32)),
        cmd::SETPERM => unit(p.keyctl_setperm(id(a[0]), a[1] as u32)),
        cmd::DESCRIBE => data(p.keyctl_describe(id(a[0])).map(|s| {
            let mut b = s.into_bytes();
            b.push(0);
            b
        })),
        cmd::CLEAR => unit(p.keyctl_clear(id(a[0]))),
        cmd::LINK => unit(p.keyctl_link(id(a[0]), id(a[1]))),
        cmd::UNLINK => unit(p.keyctl_unlink(id(a[0]), id(a[1]))),
        cmd::SEARCH => value(
            need(s1)
                .and_then(|t| Ok((t, need(s2)?)))
                .and_then(|(t, d)| p.keyctl_search(id(a[0]), &t, &d, id(a[3])))
                .map(i64::from),
        ),
        cmd::READ => data(p.keyctl_read_into(id(a[0]), if a[1] == 0 { 0 } else { a[2] as usize })),
        cmd::INSTANTIATE => unit(p.keyctl_instantiate(id(a[0]), &payload, id(a[3]))),
        cmd::NEGATE => unit(p.keyctl_negate(id(a[0]), a[1] as u32, id(a[2]))),
        cmd::REJECT => unit(p.keyctl_reject(id(a[0]), a[1] as u32, a[2] as i32, id(a[3]))),
        cmd::SET_TIMEOUT => unit(p.keyctl_set_timeout(id(a[0]), a[1] as u32)),
        cmd::INVALIDATE => unit(p.keyctl_invalidate(id(a[0]))),
        cmd::RESTRICT_KEYRING => {
            unit(p.keyctl_restrict_keyring(id(a[0]), s1.as_deref(), s2.as_deref()))
        }
        cmd::MOVE => unit(p.keyctl_move(id(a[0]), id(a[1]), id(a[2]), a[3] as u32)),
        cmd::CAPABILITIES => data(Ok(p.keyctl_capabilities().to_vec())),
        cmd::GET_SECURITY => data(p.keyctl_get_security(id(a[0])).map(|s| {
            let mut b = s.into_bytes();
            b.push(0);
            b
        })),
        cmd::SET_REQKEY_KEYRING => value(p.keyctl_set_reqkey_keyring(a[0] as i32).map(i64::from)),
        cmd::GET_PERSISTENT => value(
            p.keyctl_get_persistent(a[0] as u32, id(a[1]))
                .map(i64::from),
        ),
        // The preload read the info string (s1) and, for the four that
        // take a parameter block, the key id from it (a[0]).
        cmd::PKEY_QUERY => data(need(s1).and_then(|info| p.keyctl_pkey_query(id(a[0]), &info))),
        // a: the key id, in_len and out_len (in2_len) from the parameter
        // block, and whether the input could not be read; the data, the
        // input.
        cmd::PKEY_ENCRYPT..=cmd::PKEY_VERIFY => data(need(s1).and_then(|info| {
            let input = (a[3] == 0).then_some(payload.as_slice());
            p.keyctl_pkey_op(op, id(a[0]), &info, (a[1] as u32, a[2] as u32), input)
        })),
        op if op & cmd::FAULTED != 0 => unit(
            p.keyctl_checks_before_copy(op & !cmd::FAULTED, id(a[0]))
                .and(Err(Errno::EFAULT)),
        ),
        cmd::ASSUME_AUTHORITY => value(p.keyctl_assume_authority(id(a[0])).map(i64::from)),
        cmd::DH_COMPUTE => {
            // a: private, prime, base, buflen; with the KDF, s1 is the
            // digest's name and the data its other information.
            let kdf = s1.map(|hash| DhKdf {
                hash,
                otherinfo: payload,
            });
            let keys = (id(a[0]), id(a[1]), id(a[2]));
            match p.keyctl_dh_compute(keys, a[3] as usize, kdf.as_ref()) {
                Ok((v, d)) => Reply {
                    value: v as i64,
                    data: d,
                    ..Reply::default()
                },
                Err(e) => Reply::err(e),
            }
        }
        cmd::WATCH_KEY => {
            // Either end of a notification pipe names its queue.
            let file = target.as_ref().and_then(|(pipe, end)| pipe.file(*end));
            unit(match file {
                Some(f) => with_fd(p, &f, |fd| p.keyctl_watch_key(id(a[0]), fd, a[2] as i32)),
                None => p.keyctl_watch_key(id(a[0]), -1, a[2] as i32),
            })
        }
        _ => Reply::err(Errno::EOPNOTSUPP),
    }
}

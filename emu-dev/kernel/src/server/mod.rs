//! One emulated kernel for a whole process tree: the server.
//!
//! Owns [`Server`]: a Unix `SOCK_SEQPACKET` listener in a private
//! directory (mode 0700, owned by the user who started it; the socket
//! 0600), one connection per client process, and the threads that serve
//! them. The protocol is [`crate::wire`]'s; the client end is
//! [`crate::remote`].
//!
//! - **Identity from the real kernel.** `SO_PEERCRED` at connect and the
//!   `SCM_CREDENTIALS` of every request (`SO_PASSCRED`) give pid, uid and
//!   gid; a connection, or a request, from another uid than the server's
//!   (a root server also serves the descendants of processes it serves
//!   that dropped their privileges) is refused with an audit line, and so is a request whose
//!   sender is not the process that connected (a forked child still using
//!   its parent's connection). The process tree is `procs`'s.
//! - **Descriptors are real pipe ends** (`files`): the program's
//!   descriptor for an emulated end is a real pipe end the server made; a
//!   call names it by sending it (`SCM_RIGHTS`), the server looks up its
//!   `(st_dev, st_ino)`. The monitor thread's epoll set holds each pipe's
//!   server-side ends (last close) and each process's pidfd (exit).
//! - **The keys' /proc files** (`procfs`): opens of `/proc/keys`,
//!   `/proc/key-users` and the sysctls are served here, and bytes written
//!   through a writable open's pipe are taken as writes.
//! - **Fault containment.** The server reads whole messages and trusts
//!   nothing in them but their grammar; a client killed mid-call leaves at
//!   most a promise to drain (see `files`); garbage gets an error reply,
//!   an audit line and the connection closed, never a panic.

mod dispatch;
pub(crate) mod files;
mod procfs;
mod procs;

use crate::kernel::Kernel;
use crate::sock;
use crate::wire::{Reply, Request};
pub use files::record_len;
use files::{End, Ident, RemotePipe};
use parking_lot::Mutex;
use procs::{Joined, Proc, Procs};
use rustix::event::epoll;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many audit lines a server keeps in memory ([`Server::audit`]): a
/// client sending garbage for as long as it likes must not grow the
/// server without bound.
pub const AUDIT_KEPT: usize = 256;

/// How a server starts.
#[derive(Debug, Default)]
pub struct ServerOptions {
    /// Where to make the private directory (default: `$XDG_RUNTIME_DIR`
    /// when it is a directory of ours, else `/tmp`).
    pub parent_dir: Option<PathBuf>,
    /// A file that gets a line per call (`watchq exec --log`).
    pub log: Option<std::fs::File>,
    /// Audit lines (refusals) also go to stderr.
    pub audit_to_stderr: bool,
    /// The preload library, for the `/sbin/request-key` helpers the
    /// kernel runs (without it a construction fails as without a helper).
    pub preload: Option<PathBuf>,
    /// The program run for a key construction, in place of
    /// `/sbin/request-key` (`watchq exec --request-key`).
    pub request_key: Option<PathBuf>,
}

/// What an epoll entry stands for.
#[derive(Clone, Copy, Debug)]
enum Watched {
    /// A process's pidfd.
    Exit { pid: u32, start: u64 },
    /// A's write end: every real read end closed.
    ReadEnd(u64),
    /// B's read end: every real write end closed.
    WriteEnd(u64),
    /// A `/proc` file's write pipe: bytes written, or its last writer gone.
    ProcWriter(u64),
}

pub(crate) struct Shared {
    pub(crate) kernel: Arc<Kernel>,
    uid: u32,
    procs: Procs,
    /// Pipe id → pipe.
    pipes: Mutex<HashMap<u64, Arc<RemotePipe>>>,
    /// Real identity → (pipe, end).
    idents: Mutex<HashMap<Ident, (Arc<RemotePipe>, End)>>,
    epoll: OwnedFd,
    /// epoll data → what it stands for (and the pidfds, kept open here).
    watched: Mutex<HashMap<u64, (Watched, Option<OwnedFd>)>>,
    /// Held while the epoll set's events are handled (the monitor's, or a
    /// call's `take_hangups`): a call that takes the hang-ups waits for
    /// one the monitor is releasing.
    events: Mutex<()>,
    next_id: AtomicU64,
    stop: AtomicBool,
    /// The last [`AUDIT_KEPT`] audit lines (the log file, when there is
    /// one, has them all).
    audit: Mutex<VecDeque<String>>,
    audit_to_stderr: bool,
    log: Mutex<Option<std::fs::File>>,
    /// `log` is set (it is for the server's life).
    logging: bool,
    /// Writable opens of the keys' `/proc` files, by id (`procfs`).
    proc_writers: Mutex<HashMap<u64, procfs::ProcWriter>>,
    /// Live connections (to shut down when the server stops).
    conns: Mutex<HashMap<u64, Arc<OwnedFd>>>,
    /// The connections' threads not yet joined (those that have ended
    /// are joined at the next accept or [`Server::connections`]).
    serving: Mutex<Vec<JoinHandle<()>>>,
    start: Instant,
    /// The socket's path and the preload, for request-key helpers.
    pub(crate) sock_path: PathBuf,
    pub(crate) preload: Option<PathBuf>,
    /// The key construction helper (`/sbin/request-key`).
    pub(crate) request_key: PathBuf,
}

/// A running kernel server. Dropping it stops it and removes its socket.
pub struct Server {
    shared: Arc<Shared>,
    listener: Arc<OwnedFd>,
    dir: PathBuf,
    path: PathBuf,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("path", &self.path).finish()
    }
}

/// The default parent of the private directory.
fn runtime_dir(uid: u32) -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if rustix::fs::stat(&d).is_ok_and(|st| {
            st.st_uid == uid
                && rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::Directory
        }) {
            return d;
        }
    }
    PathBuf::from("/tmp")
}

/// Makes a fresh private directory `watchq-XXXXXXXX` under `parent`.
fn private_dir(parent: &Path) -> io::Result<PathBuf> {
    let seed = std::process::id() as u64 ^ (Instant::now().elapsed().as_nanos() as u64);
    let mut x = seed
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    for _ in 0..64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let d = parent.join(format!("watchq-{:08x}", x as u32));
        match rustix::fs::mkdir(&d, rustix::fs::Mode::from_raw_mode(0o700)) {
            Ok(()) => {
                // mkdir obeys the umask, which may only remove bits.
                rustix::fs::chmod(&d, rustix::fs::Mode::from_raw_mode(0o700))?;
                return Ok(d);
            }
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::from_raw_os_error(libc::EEXIST))
}

/// Removes the directories of kernels that are gone: `watchq-*` under
/// `parent`, owned by `uid`, whose socket exists but nobody listens on
/// (a kernel killed with SIGKILL cannot remove its own). A directory
/// without a socket may be a kernel starting up, and is left alone.
fn sweep_stale(parent: &Path, uid: u32) {
    let Ok(dir) = std::fs::read_dir(parent) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with("watchq-")) {
            continue;
        }
        let d = e.path();
        let owned = rustix::fs::lstat(&d).is_ok_and(|st| {
            st.st_uid == uid
                && rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::Directory
        });
        let sock = d.join("sock");
        if !owned || !sock.exists() {
            continue;
        }
        let refused = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .ok()
        .zip(SocketAddrUnix::new(&sock).ok())
        .is_some_and(|(c, a)| rustix::net::connect(&c, &a) == Err(rustix::io::Errno::CONNREFUSED));
        if refused {
            let _ = std::fs::remove_file(&sock);
            let _ = std::fs::remove_dir(&d);
        }
    }
}

impl Server {
    /// Starts serving `kernel` on a new socket (first removing the
    /// directories of this user's kernels that died without removing them).
    ///
    /// # Errors
    /// Making the directory, the socket or the epoll set.
    pub fn start(kernel: Arc<Kernel>, opts: ServerOptions) -> io::Result<Server> {
        let uid = rustix::process::getuid().as_raw();
        let parent = opts.parent_dir.clone().unwrap_or_else(|| runtime_dir(uid));
        sweep_stale(&parent, uid);
        let dir = private_dir(&parent)?;
        let path = dir.join("sock");
        let listener = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        // The socket is made under another name and takes its own once it
        // listens: another kernel's start sweeps `sock`s that refuse a
        // connection, which a bound socket does until it listens.
        let fresh = dir.join("sock.new");
        rustix::net::bind(&listener, &SocketAddrUnix::new(&fresh)?)?;
        rustix::fs::chmod(&fresh, rustix::fs::Mode::from_raw_mode(0o600))?;
        if uid == 0 {
            // A root kernel serves the descendants of its processes that
            // dropped their privileges (`admits`): they must reach the
            // socket. Who may use it is still `admits`'s decision, made on
            // the credentials the real kernel attaches.
            rustix::fs::chmod(&dir, rustix::fs::Mode::from_raw_mode(0o711))?;
            rustix::fs::chmod(&fresh, rustix::fs::Mode::from_raw_mode(0o666))?;
        }
        rustix::net::sockopt::set_socket_passcred(&listener, true)?;
        rustix::net::listen(&listener, 128)?;
        std::fs::rename(&fresh, &path)?;
        let shared = Arc::new(Shared {
            kernel,
            uid,
            procs: Procs::default(),
            pipes: Mutex::new(HashMap::new()),
            idents: Mutex::new(HashMap::new()),
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            watched: Mutex::new(HashMap::new()),
            events: Mutex::new(()),
            next_id: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            audit: Mutex::new(VecDeque::new()),
            audit_to_stderr: opts.audit_to_stderr,
            logging: opts.log.is_some(),
            log: Mutex::new(opts.log),
            proc_writers: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            serving: Mutex::new(Vec::new()),
            start: Instant::now(),
            sock_path: path.clone(),
            preload: opts.preload.clone(),
            request_key: opts
                .request_key
                .clone()
                .unwrap_or_else(|| PathBuf::from("/sbin/request-key")),
        });
        let listener = Arc::new(listener);
        let mut threads = Vec::new();
        {
            let s = shared.clone();
            let l = listener.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("watchq-accept".into())
                    .spawn(move || accept_loop(&s, &l))?,
            );
        }
        {
            let s = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("watchq-monitor".into())
                    .spawn(move || monitor_loop(&s))?,
            );
        }
        Ok(Server {
            shared,
            listener,
            dir,
            path,
            threads,
        })
    }

    /// The socket's path (what `WATCHQ_KERNEL` names).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kernel served.
    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.shared.kernel
    }

    /// The last [`AUDIT_KEPT`] audit lines (refused connections and
    /// requests), oldest first.
    pub fn audit(&self) -> Vec<String> {
        self.shared.audit.lock().iter().cloned().collect()
    }

    /// Connections being served now: their threads, accepted and not yet
    /// ended (those that have ended are joined here). A client that has
    /// closed its connections can wait for this to fall to know the
    /// server has finished with them, its threads' memory freed too.
    pub fn connections(&self) -> usize {
        self.shared.join_ended()
    }

    /// Real pids of the processes the server knows, ascending.
    pub fn pids(&self) -> Vec<u32> {
        self.shared.procs.pids()
    }

    /// Emulated pipes with at least one end still open.
    pub fn live_pipes(&self) -> usize {
        self.shared.pipes.lock().len()
    }

    /// The emulated process of real process `pid`, if known.
    pub fn process(&self, pid: u32) -> Option<Arc<crate::Process>> {
        let st = procs::stat(pid)?;
        self.shared
            .procs
            .get(pid, st.start)
            .map(|p| p.process.clone())
    }

    /// Removes the socket and its directory now, leaving the server
    /// running for the connections it has (a process that hosts a kernel
    /// calls this as it exits).
    pub fn remove_socket(&self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }

    /// Brings every read end's readiness up to date (after posting from
    /// outside a call: a script acting on the kernel directly).
    pub fn sync(&self) {
        self.shared.sync_all(true);
    }

    /// Stops serving: no new connection, every connection closed, every
    /// emulated process exits, the socket and its directory are removed.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // Relaxed: a one-way latch. The swap's atomicity picks the one
        // stopper; nothing is handed over through the flag (the threads
        // that poll it are woken by the sockets' shutdown below or their
        // epoll tick, and joined, which orders everything they did).
        if self.shared.stop.swap(true, Ordering::Relaxed) {
            return;
        }
        // Sleepers first: dropping the server's pipe ends hangs up every
        // program's read end at once.
        self.shared.pipes.lock().clear();
        self.shared.idents.lock().clear();
        self.shared.watched.lock().clear();
        self.shared.proc_writers.lock().clear();
        let _ = rustix::net::shutdown(&*self.listener, rustix::net::Shutdown::Both);
        // A connection of our own wakes the accept thread.
        if let Ok(c) = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        ) {
            if let Ok(a) = SocketAddrUnix::new(&self.path) {
                let _ = rustix::net::connect(&c, &a);
            }
        }
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
        for c in self.shared.conns.lock().values() {
            let _ = rustix::net::shutdown(&**c, rustix::net::Shutdown::Both);
        }
        self.shared.procs.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Joins the connection threads that have ended; how many are left.
    fn join_ended(&self) -> usize {
        let mut serving = self.serving.lock();
        let (ended, live): (Vec<_>, Vec<_>) = serving.drain(..).partition(JoinHandle::is_finished);
        *serving = live;
        for t in ended {
            // A panic in a connection thread has been reported already.
            let _ = t.join();
        }
        serving.len()
    }

    pub(crate) fn audit(&self, line: String) {
        if self.audit_to_stderr {
            eprintln!("watchq kernel: {line}");
        }
        if let Some(f) = self.log.lock().as_mut() {
            let _ = writeln!(f, "watchq kernel: audit: {line}");
        }
        let mut audit = self.audit.lock();
        if audit.len() == AUDIT_KEPT {
            audit.pop_front();
        }
        audit.push_back(line);
    }

    /// Is there a log to write to (`watchq exec --log`)? Set at start.
    pub(crate) fn logging(&self) -> bool {
        self.logging
    }

    pub(crate) fn log(&self, pid: u32, line: std::fmt::Arguments<'_>) {
        if let Some(f) = self.log.lock().as_mut() {
            let _ = writeln!(f, "watchq[{pid}]: {line}");
        }
    }

    /// May real process `pid`, running as `uid`, use this kernel? The
    /// server's own user may; a root server also serves a descendant of a
    /// process it serves that dropped its privileges (runuser, setpriv).
    fn admits(&self, pid: u32, uid: u32) -> bool {
        uid == self.uid || (self.uid == 0 && self.procs.has_known_ancestor(pid))
    }

    fn next_id(&self) -> u64 {
        // Relaxed: a unique counter.
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds `fd` to the epoll set as `what`; `keep` (a pidfd) stays open
    /// as long as it is watched.
    fn watch(&self, fd: &impl AsFd, what: Watched, keep: Option<OwnedFd>) {
        let id = self.next_id();
        let flags = match what {
            // Readable when the process exits.
            Watched::Exit { .. } => epoll::EventFlags::IN,
            // EPOLLERR and EPOLLHUP are always reported.
            Watched::ReadEnd(_) | Watched::WriteEnd(_) => epoll::EventFlags::empty(),
            // An edge per write, and the hang-up: bytes are taken at
            // `ProcSync` (with the errno for the writer), by the monitor
            // only once the pipe is filling, at the last close, or when
            // the file is next opened or read (`procfs::event`).
            Watched::ProcWriter(_) => epoll::EventFlags::IN | epoll::EventFlags::ET,
        };
        let mut w = self.watched.lock();
        if epoll::add(
            &self.epoll,
            fd.as_fd(),
            epoll::EventData::new_u64(id),
            flags,
        )
        .is_ok()
        {
            w.insert(id, (what, keep));
        }
    }

    pub(crate) fn watch_joined(&self, joined: Vec<Joined>) {
        for j in joined {
            if let Some(pidfd) = j.pidfd {
                let what = Watched::Exit {
                    pid: j.proc_.pid,
                    start: j.proc_.start,
                };
                let fd = pidfd.try_clone();
                if let Ok(fd) = fd {
                    self.watch(&fd, what, Some(pidfd));
                }
            }
        }
    }

    /// Enters a new pipe: its identities and its server ends in epoll.
    pub(crate) fn add_pipe(&self, pipe: &Arc<RemotePipe>) {
        self.pipes.lock().insert(pipe.id, pipe.clone());
        {
            let mut m = self.idents.lock();
            m.insert(pipe.idents.0, (pipe.clone(), End::Read));
            if !pipe.device {
                m.insert(pipe.idents.1, (pipe.clone(), End::Write));
            }
        }
        pipe.with_server_ends(|a_w, b_r| {
            if let Some(a) = a_w {
                self.watch(a, Watched::ReadEnd(pipe.id), None);
            }
            if let Some(b) = b_r {
                self.watch(b, Watched::WriteEnd(pipe.id), None);
            }
        });
    }

    /// The emulated pipe end a received descriptor is.
    pub(crate) fn lookup(&self, fd: &OwnedFd) -> Option<(Arc<RemotePipe>, End)> {
        let id = files::ident(fd)?;
        self.idents.lock().get(&id).cloned()
    }

    pub(crate) fn next_pipe_id(&self) -> u64 {
        self.next_id()
    }

    /// Tokens of every pipe brought up to date (after a call that may have
    /// posted, and on each clock tick). Only the pipes whose queue moved
    /// since their last sync (or whose sync was forced) are synced: the
    /// others cost a few atomic loads each, no lock, no system call.
    /// `force`: every pipe (the tick, and a sync asked from outside).
    pub(crate) fn sync_all(&self, force: bool) {
        let gc = self.kernel.keys().gc_pending();
        if force {
            let pipes: Vec<Arc<RemotePipe>> = self.pipes.lock().values().cloned().collect();
            for p in pipes {
                p.sync_gc(gc, true);
            }
            return;
        }
        // The check runs under the map's lock; a pipe to sync is taken out
        // (nothing is allocated when none is) and synced after it.
        let moved: Vec<Arc<RemotePipe>> = self
            .pipes
            .lock()
            .values()
            .filter(|p| p.needs_sync(gc))
            .cloned()
            .collect();
        for p in moved {
            p.sync_gc(gc, false);
        }
    }

    /// The mirrors' readers' progress taken in (before a call that may
    /// post, so it finds the room they made): each mirror that holds
    /// published records not yet reaped (readers can only have taken
    /// those); `all`: every mirror (the tick, which also catches a
    /// scribble on the page of an empty one).
    pub(crate) fn reap_all(&self, all: bool) {
        let pipes: Vec<Arc<RemotePipe>> = self
            .pipes
            .lock()
            .values()
            .filter(|p| all || p.unreaped())
            .cloned()
            .collect();
        for p in pipes {
            if p.reap() {
                self.audit(format!(
                    "pipe {}: a reader scribbled on the mirror's progress page (repaired)",
                    p.id
                ));
            }
        }
    }

    /// Takes in now, rather than at the monitor's next look, every pipe
    /// whose real ends on one side are all closed (what the monitor's
    /// epoll set reports: one `epoll_wait` that does not sleep, whatever
    /// the number of pipes). A pipe closed just before a `pipe2` is
    /// released before the new one is charged to its user, as a close on
    /// the real kernel is synchronous. Other events (exits, `/proc`
    /// writes) are left to the monitor: they are level-triggered and stay
    /// ready for it.
    pub(crate) fn take_hangups(&self) {
        let _one = self.events.lock();
        let mut events = Vec::with_capacity(16);
        loop {
            events.clear();
            if epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                Some(&rustix::event::Timespec::default()),
            )
            .is_err()
            {
                return;
            }
            let mut took = false;
            for ev in &events {
                let id = ev.data.u64();
                let end = {
                    let mut w = self.watched.lock();
                    match w.get(&id) {
                        Some((Watched::ReadEnd(p), _)) => Some((*p, End::Read)),
                        Some((Watched::WriteEnd(p), _)) => Some((*p, End::Write)),
                        _ => None,
                    }
                    .inspect(|_| {
                        w.remove(&id);
                    })
                };
                if let Some((p, end)) = end {
                    self.released(p, end);
                    took = true;
                }
            }
            // A full batch may have left more behind.
            if !took || events.len() < events.capacity() {
                return;
            }
        }
    }

    /// Notices now, rather than at the monitor's next look, that every
    /// real end on one side of `pipe` is closed: a program that closed its
    /// write end and then polls its read end sees `POLLHUP` at once, as a
    /// close on the real kernel is synchronous.
    pub(crate) fn check_hangup(&self, pipe: &Arc<RemotePipe>) {
        use rustix::event::{PollFd, PollFlags};
        let hung = |fd: &OwnedFd, ev: PollFlags, want: PollFlags| {
            let mut p = [PollFd::new(fd, ev)];
            rustix::event::poll(&mut p, Some(&rustix::event::Timespec::default())).is_ok()
                && p[0].revents().intersects(want)
        };
        let (readers_gone, writers_gone) = pipe.with_server_ends(|a_w, b_r| {
            (
                a_w.is_some_and(|fd| hung(fd, PollFlags::OUT, PollFlags::ERR)),
                b_r.is_some_and(|fd| hung(fd, PollFlags::IN, PollFlags::HUP)),
            )
        });
        if readers_gone {
            self.released(pipe.id, End::Read);
        }
        if writers_gone {
            self.released(pipe.id, End::Write);
        }
    }

    /// For a pipe whose write end is released (A hung up), looks for the
    /// last read end's close (which no epoll event announces then): before
    /// a pipe is charged to its user. Not at a read or poll of the pipe:
    /// the read end the request brings is open in the server meanwhile.
    pub(crate) fn check_hung_up(&self, pipe: &Arc<RemotePipe>) {
        if pipe.hung_up_readers_gone() {
            self.released(pipe.id, End::Read);
        }
    }

    fn released(&self, pipe_id: u64, end: End) {
        let Some(p) = self.pipes.lock().get(&pipe_id).cloned() else {
            return;
        };
        if let Some(f) = self.log.lock().as_mut() {
            let what = if p.device { "/dev/watch_queue" } else { "pipe" };
            let _ = writeln!(
                f,
                "watchq kernel: {what} {pipe_id}: {} released (last close)",
                if end == End::Read {
                    "read end"
                } else {
                    "write end"
                }
            );
        }
        match end {
            End::Read => {
                // A hung-up pipe's A write end was closed without an event:
                // its watch entry goes here.
                self.watched
                    .lock()
                    .retain(|_, (w, _)| !matches!(w, Watched::ReadEnd(id) if *id == pipe_id));
                p.release_read();
                self.idents.lock().remove(&p.idents.0);
                // The device has no write end to wait for.
                if p.device {
                    self.pipes.lock().remove(&pipe_id);
                    return;
                }
            }
            End::Write => {
                p.release_write();
                self.idents.lock().remove(&p.idents.1);
            }
        }
        if p.is_gone() {
            self.pipes.lock().remove(&pipe_id);
        }
    }
}

fn accept_loop(s: &Arc<Shared>, listener: &OwnedFd) {
    loop {
        let conn = match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
            Ok(c) => c,
            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::CONNABORTED) => continue,
            Err(rustix::io::Errno::MFILE) | Err(rustix::io::Errno::NFILE) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(_) => return,
        };
        // Relaxed: see `Server::stop`.
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        let peer = match rustix::net::sockopt::socket_peercred(&conn) {
            Ok(c) => c,
            Err(_) => continue,
        };
        let (pid, uid) = (peer.pid.as_raw_pid() as u32, peer.uid.as_raw());
        if !s.admits(pid, uid) {
            s.audit(format!(
                "refused connection from pid {pid} uid {uid}: not uid {}",
                s.uid
            ));
            let _ = sock::send(
                conn.as_fd(),
                &Reply::err(watchq_core::Errno::EACCES).encode(),
                &[],
            );
            continue;
        }
        let _ = rustix::net::sockopt::set_socket_passcred(&conn, true);
        let id = s.next_id();
        let conn = Arc::new(conn);
        s.conns.lock().insert(id, conn.clone());
        let s2 = s.clone();
        s.join_ended();
        // The thread is in `serving` before anyone can see it: the list
        // stays locked from before the spawn until its handle is in, so a
        // client whose hello this thread answers (it may answer, be
        // closed and end before this line runs on) cannot find
        // `Server::connections` at 0 while the thread has still to be
        // joined (it would still be running its thread-local destructors).
        let mut serving = s.serving.lock();
        let spawned = std::thread::Builder::new()
            .name(format!("watchq-conn-{pid}"))
            .spawn(move || {
                serve(&s2, &conn, pid);
                drop(conn);
                s2.conns.lock().remove(&id);
            });
        match spawned {
            Ok(t) => serving.push(t),
            Err(_) => {
                drop(serving);
                s.conns.lock().remove(&id);
            }
        }
    }
}

/// What one connection remembers between requests.
pub(crate) struct Conn {
    pub(crate) pid: u32,
    pub(crate) proc_: Option<Arc<Proc>>,
    /// The last read's records, for an unread: (pipe id, bytes).
    pub(crate) last_read: Option<(u64, Vec<u8>)>,
    /// Drains this reader was told to do: (pipe, bytes).
    pub(crate) promised: Vec<(Arc<RemotePipe>, u64)>,
    /// A poll of an emulated end was answered while the key collector was
    /// queued: it runs once the reply is sent (see `dispatch`'s Poll).
    pub(crate) gc_after_reply: bool,
    /// Pipes whose mirror's memfds this connection was given.
    pub(crate) mapped: std::collections::HashSet<u64>,
    /// The thread the next key call comes from (`Request::Thread`).
    pub(crate) tid: Option<u32>,
}

impl Conn {
    fn settle(&mut self) {
        for (p, n) in self.promised.drain(..) {
            p.drained(n);
        }
    }
}

thread_local! {
    /// Is this thread serving a connection (see [`in_server_thread`])?
    static SERVING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Is the calling thread one of a server's, serving a connection? A
/// process that hosts the kernel (the preload given by hand) runs the
/// server's threads beside the program's: a process the server starts (a
/// request-key helper) is the server's, not one the program forked, and
/// the preload must not announce it as the program's child.
pub fn in_server_thread() -> bool {
    SERVING.with(std::cell::Cell::get)
}

fn serve(s: &Arc<Shared>, conn: &Arc<OwnedFd>, pid: u32) {
    SERVING.with(|v| v.set(true));
    let mut c = Conn {
        pid,
        proc_: None,
        last_read: None,
        promised: Vec::new(),
        gc_after_reply: false,
        mapped: std::collections::HashSet::new(),
        tid: None,
    };
    let mut buf = Vec::new();
    // Relaxed: see `Server::stop`.
    while !s.stop.load(Ordering::Relaxed) {
        let pkt = match sock::recv(conn.as_fd(), &mut buf) {
            Ok(Some(p)) => p,
            Ok(None) | Err(_) => break,
        };
        // A reader drains before it sends anything else.
        c.settle();
        let refuse = |why: String| {
            s.audit(format!("pid {pid}: {why}"));
            let _ = sock::send(
                conn.as_fd(),
                &Reply::err(watchq_core::Errno::EINVAL).encode(),
                &[],
            );
        };
        let Some(cred) = pkt.cred else {
            refuse("request without credentials".into());
            break;
        };
        let (cpid, uid, gid) = (
            cred.pid.as_raw_pid() as u32,
            cred.uid.as_raw(),
            cred.gid.as_raw(),
        );
        if cpid != pid {
            refuse(format!("request from pid {cpid} on its connection"));
            break;
        }
        if !s.admits(pid, uid) {
            refuse(format!("request as uid {uid}: not uid {}", s.uid));
            break;
        }
        if pkt.truncated {
            refuse("message too long".into());
            break;
        }
        let mut req = match Request::decode(&buf[..pkt.len]) {
            Ok(r) => r,
            Err(e) => {
                refuse(format!("bad message: {e}"));
                break;
            }
        };
        let mut fds = pkt.fds;
        if Request::blob_in_fd(&buf[..pkt.len]) {
            match fds.pop().and_then(|fd| sock::read_blob(&fd)) {
                Some(blob) if req.blob_mut().is_some() => {
                    if let Some(b) = req.blob_mut() {
                        *b = blob;
                    }
                }
                _ => {
                    refuse("a blob that is not a memfd of at most 1 MiB".into());
                    break;
                }
            }
        }
        if matches!(req, Request::Interrupt) {
            // A signal for a key call that has ended already (one still
            // waiting saw it in the socket: `interruptible_by`).
            continue;
        }
        // Key calls alone: their client expects the notice that a call
        // waits for a key under construction, and may interrupt it.
        let key_call = matches!(
            req,
            Request::Keyctl { .. } | Request::AddKey { .. } | Request::RequestKey { .. }
        );
        let (reply, give) = if key_call {
            crate::syscalls::keys::interruptible_by(conn, || {
                dispatch::handle(s, &mut c, req, fds, uid, gid)
            })
        } else {
            dispatch::handle(s, &mut c, req, fds, uid, gid)
        };
        let mut give = give;
        let mut msg = reply.encode();
        if msg.len() > crate::wire::MAX_MSG {
            // Data too big for one message (a 1 MiB payload read back).
            match sock::blob_memfd(&reply.data) {
                Ok(fd) => {
                    give.push(fd);
                    msg = reply.encode_blob_in_fd();
                }
                Err(_) => msg = Reply::err(watchq_core::Errno::ENOMEM).encode(),
            }
        }
        let give: Vec<_> = give.iter().map(|f| f.as_fd()).collect();
        if sock::send(conn.as_fd(), &msg, &give).is_err() {
            break;
        }
        if std::mem::take(&mut c.gc_after_reply) {
            s.kernel.flush_key_gc();
            s.sync_all(false);
        }
    }
    c.settle();
}

fn monitor_loop(s: &Arc<Shared>) {
    let mut events = Vec::with_capacity(64);
    let tick = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    // Since when a key call's collector has been waiting, and the
    // collector's run count then (a run meanwhile starts a new wait).
    let mut gc_queued: Option<(Instant, u64)> = None;
    // Relaxed: see `Server::stop`.
    while !s.stop.load(Ordering::Relaxed) {
        events.clear();
        let _ = epoll::wait(
            &s.epoll,
            rustix::buffer::spare_capacity(&mut events),
            Some(&tick),
        );
        let one = s.events.lock();
        for ev in &events {
            let id = ev.data.u64();
            let Some((what, keep)) = s.watched.lock().remove(&id) else {
                continue;
            };
            match what {
                Watched::Exit { pid, start } => {
                    if let Some(fd) = &keep {
                        let _ = epoll::delete(&s.epoll, fd);
                    }
                    s.procs.exited(pid, start);
                }
                Watched::ReadEnd(p) => s.released(p, End::Read),
                Watched::WriteEnd(p) => s.released(p, End::Write),
                Watched::ProcWriter(w) => procfs::event(s, w, id, ev.flags),
            }
        }
        drop(one);
        s.reap_all(true);
        let pipes: Vec<Arc<RemotePipe>> = s.pipes.lock().values().cloned().collect();
        for p in pipes {
            if p.tick() {
                s.released(p.id, End::Read);
            }
        }
        // The key clock follows real time; the collector runs as it moves,
        // unless a call has queued it and it waits for its moment (below):
        // a second that ticks just after an unlink must not collect the
        // key at once, as the kernel's collector never does (it waits for
        // its work item and an RCU grace period; gc.txt's `gc-between`),
        // and the queued run, a moment later, collects what expired too.
        let elapsed = s.start.elapsed().as_secs();
        let now = s.kernel.keys().now();
        if elapsed > now {
            if s.kernel.keys().gc_pending() {
                s.kernel.keys().advance_clock(elapsed - now);
            } else {
                s.kernel.advance_clock(elapsed - now);
            }
        }
        // The collector a key call queued runs a moment after the call, as
        // the kernel's work item does even while no consumer waits: the
        // oracle never saw its records 20 ms after the call and always
        // within 300 ms (tests/data/conformance/gc.txt). Here: once it has
        // been seen queued for 200 ms (200 to 300 ms after the call: late in
        // that window, so a reader slowed by a loaded machine still reads
        // the call's own records alone, as the oracle's always did). A
        // consumer that polls or reads an empty queue runs it sooner
        // (Kernel::flush_key_gc, docs/delivery.md §1).
        let keys = s.kernel.keys();
        if keys.gc_pending() {
            let runs = keys.gc_runs();
            match gc_queued {
                Some((t, r)) if r == runs && t.elapsed() >= Duration::from_millis(200) => {
                    s.kernel.flush_key_gc();
                    gc_queued = None;
                }
                Some((_, r)) if r == runs => {}
                _ => gc_queued = Some((Instant::now(), runs)),
            }
        } else {
            gc_queued = None;
        }
        s.sync_all(true);
    }
}

//! A process and its syscalls.
//!
//! Owns [`Process`]: credentials, the soft and hard `RLIMIT_NOFILE`, an fd
//! table, an emulated `alarm()` (a deadline that interrupts blocking calls
//! with EINTR, as SIGALRM without `SA_RESTART` does), and the syscall-shaped
//! methods. Each method returns the errno the kernel would, checking in the
//! kernel's order; the `# Errors` sections list them in that order.
//!
//! User memory is modelled by slices: a syscall that reads or writes user
//! memory takes the accessible bytes at the user pointer, and the raw
//! argument where the kernel uses the number itself (`ioctl`).

use crate::fdtable::{FdEntry, FdTable};
use crate::file::{FileKind, MemInode, OpenFile};
use crate::kernel::Kernel;
use crate::pipe::Pipe;
use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::time::{Duration, Instant};
use watchq_core::lsm::{Domain, Inheritance, LandlockRule};
use watchq_core::uapi::v2;
use watchq_core::uapi::*;
use watchq_core::wait::Waiter;
use watchq_core::{Cred, Errno, QueueStats, ReadMode, Result, WatchQueue};
use watchq_sources::keys::Anchors;
use watchq_sources::mount::{MountNamespace, AT_EMPTY_PATH, AT_NO_AUTOMOUNT};

/// Default soft `RLIMIT_NOFILE`.
const NOFILE_SOFT: u64 = 1024;
/// Default hard `RLIMIT_NOFILE` (`fs.nr_open`).
const NOFILE_HARD: u64 = 1 << 20;
/// `MAX_RW_COUNT`: the most one read or write moves.
const MAX_RW_COUNT: usize = (i32::MAX as usize) & !(PAGE_SIZE - 1);
/// `UIO_MAXIOV`.
const UIO_MAXIOV: usize = 1024;
/// `AT_FDCWD`.
pub const AT_FDCWD: i32 = -100;
/// How splice and friends move data once they have waited: without sleeping.
const AT_ONCE: ReadMode = ReadMode {
    nonblock: true,
    deadline: None,
};

/// One entry of a `poll()` set. Mirrors `struct pollfd`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollFd {
    /// The descriptor; negative entries are ignored.
    pub fd: i32,
    /// Requested events (`POLL*`).
    pub events: u16,
    /// Returned events.
    pub revents: u16,
}

impl PollFd {
    /// An entry asking for `events` on `fd`.
    pub fn new(fd: i32, events: u16) -> Self {
        PollFd {
            fd,
            events,
            revents: 0,
        }
    }
}

/// An emulated process.
pub struct Process {
    kernel: Arc<Kernel>,
    pid: u32,
    ppid: u32,
    cred: RwLock<Arc<Cred>>,
    fds: Mutex<FdTable>,
    nofile: Mutex<(u64, u64)>,
    alarm: Mutex<Option<Instant>>,
    pub(crate) anchors: Mutex<Anchors>,
    mount_ns: RwLock<Arc<MountNamespace>>,
}

/// The last handle gone is an exit: the descriptors close (their files'
/// own drops), the keyrings are released and the process leaves the table.
impl Drop for Process {
    fn drop(&mut self) {
        self.kernel.unregister(self.pid);
    }
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("cred", &self.cred())
            .finish()
    }
}

impl Process {
    pub(crate) fn new(kernel: &Arc<Kernel>, pid: u32, cred: Cred) -> Arc<Self> {
        let mut fds = FdTable::default();
        let console = OpenFile::new(FileKind::Console, O_RDWR);
        for fd in 0..3 {
            fds.install(
                fd,
                FdEntry {
                    file: console.clone(),
                    cloexec: false,
                },
            );
        }
        Arc::new(Process {
            kernel: kernel.clone(),
            pid,
            ppid: 0,
            cred: RwLock::new(Arc::new(cred)),
            fds: Mutex::new(fds),
            nofile: Mutex::new((NOFILE_SOFT, NOFILE_HARD)),
            alarm: Mutex::new(None),
            anchors: Mutex::new(Anchors::default()),
            mount_ns: RwLock::new(kernel.init_mount_ns().clone()),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The parent's pid (0 for a spawned process).
    pub fn ppid(&self) -> u32 {
        self.ppid
    }

    /// The kernel this process runs on.
    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// The current credentials.
    pub fn cred(&self) -> Arc<Cred> {
        self.cred.read().clone()
    }

    /// Replaces the credentials (setuid and friends, LSM transitions).
    pub fn set_cred(&self, cred: Cred) {
        *self.cred.write() = Arc::new(cred);
    }

    /// Sets the task's LSM label (as a `setexeccon` + exec, or a Smack
    /// label write to `/proc/self/attr/current`, would).
    pub fn set_label(&self, label: Option<&str>) {
        let mut c = (*self.cred()).clone();
        c.label = label.map(str::to_string);
        self.set_cred(c);
    }

    /// Adds a Landlock-like restriction to the process's domain (creating
    /// the domain, with inheritance `mode`, at the first one). Restrictions
    /// can only be added; children inherit them as the domain's mode says.
    pub fn landlock_restrict(&self, rule: LandlockRule, mode: Inheritance) {
        let mut c = (*self.cred()).clone();
        c.domain = Some(Domain::restrict(c.domain.as_ref(), self.pid, mode, rule));
        self.set_cred(c);
    }

    /// `fork()`: a child with a copy of the fd table (the open files are
    /// shared, so offsets, flags and pipe ends are too), the same
    /// credentials and limits, and no alarm.
    pub fn fork(self: &Arc<Self>) -> Arc<Process> {
        let child = Arc::new(Process {
            kernel: self.kernel.clone(),
            pid: self.kernel.alloc_pid(),
            ppid: self.pid,
            cred: RwLock::new(Arc::new({
                let mut c = (*self.cred()).clone();
                c.domain = c.domain.as_ref().map(Domain::fork);
                c
            })),
            fds: Mutex::new(self.fds.lock().clone()),
            nofile: Mutex::new(*self.nofile.lock()),
            alarm: Mutex::new(None),
            anchors: Mutex::new(self.anchors.lock().for_child()),
            mount_ns: RwLock::new(self.mount_ns()),
        });
        self.kernel.register(&child);
        child
    }

    /// `execve()` as far as files go: close-on-exec descriptors are closed.
    pub fn exec(&self) {
        let gone = self.fds.lock().close_on_exec();
        drop(gone);
    }

    /// `exit()`: every descriptor is closed, the process's keyrings are
    /// released (and collected if nothing else holds them), and the process
    /// leaves the table.
    pub fn exit(&self) {
        let gone = self.fds.lock().take_all();
        drop(gone);
        *self.anchors.lock() = Anchors::default();
        self.kernel.unregister(self.pid);
    }

    /// The process's keyrings (thread, process, session) and authority.
    pub fn key_anchors(&self) -> Anchors {
        self.anchors.lock().clone()
    }

    pub(crate) fn alarm_deadline(&self) -> Option<Instant> {
        self.alarm()
    }

    /// `getrlimit(RLIMIT_NOFILE)`: (soft, hard).
    pub fn rlimit_nofile(&self) -> (u64, u64) {
        *self.nofile.lock()
    }

    /// `setrlimit(RLIMIT_NOFILE)`.
    ///
    /// # Errors
    /// - `EINVAL`: soft above hard, or hard above `fs.nr_open`.
    /// - `EPERM`: raising the hard limit without CAP_SYS_RESOURCE.
    pub fn set_rlimit_nofile(&self, soft: u64, hard: u64) -> Result<()> {
        if soft > hard || hard > NOFILE_HARD {
            return Err(Errno::EINVAL);
        }
        let mut l = self.nofile.lock();
        if hard > l.1
            && !self
                .cred()
                .capable(watchq_core::lsm::caps::CAP_SYS_RESOURCE)
        {
            return Err(Errno::EPERM);
        }
        *l = (soft, hard);
        Ok(())
    }

    /// Mirrors a real process's `RLIMIT_NOFILE` into this one without the
    /// permission checks of `setrlimit()` (for hosts that run a real
    /// program on the emulation and follow its limits).
    pub fn mirror_rlimit_nofile(&self, soft: u64, hard: u64) {
        *self.nofile.lock() = (soft.min(hard), hard);
    }

    /// `alarm()`: blocking calls still sleeping after `after` fail with
    /// EINTR (as SIGALRM without `SA_RESTART`); `None` cancels.
    pub fn set_alarm(&self, after: Option<Duration>) {
        *self.alarm.lock() = after.map(|d| Instant::now() + d);
    }

    fn alarm(&self) -> Option<Instant> {
        *self.alarm.lock()
    }

    fn soft_nofile(&self) -> u64 {
        self.nofile.lock().0
    }

    /// The open file behind `fd`.
    ///
    /// # Errors
    /// EBADF: `fd` is not open.
    pub fn file(&self, fd: i32) -> Result<Arc<OpenFile>> {
        Ok(self.fds.lock().entry(fd)?.file.clone())
    }

    /// Open descriptors and what they refer to (like `ls -l /proc/PID/fd`).
    pub fn fds(&self) -> Vec<(i32, String)> {
        self.fds
            .lock()
            .iter()
            .map(|(fd, e)| (fd, e.file.describe()))
            .collect()
    }

    fn install(&self, file: Arc<OpenFile>, cloexec: bool) -> Result<i32> {
        let limit = self.soft_nofile();
        self.fds.lock().alloc(file, cloexec, 0, limit)
    }

    /// The notification queue behind `fd`. Mirrors `get_watch_queue()`: any
    /// failure is EINVAL, a bad fd included.
    ///
    /// # Errors
    /// EINVAL: `fd` is not an end of a notification pipe.
    pub fn watch_queue(&self, fd: i32) -> Result<Arc<WatchQueue>> {
        let f = self.file(fd).map_err(|_| Errno::EINVAL)?;
        if let FileKind::WatchQueueDev(q) = &f.kind {
            return Ok(q.clone());
        }
        f.pipe()
            .and_then(|p| p.queue())
            .cloned()
            .ok_or(Errno::EINVAL)
    }

    /// `watch_devices(fd, tag, flags)` (the pipe-era device series): `tag`
    /// 0..=255 makes the queue behind `fd` watch the global device list,
    /// −1 removes that watch.
    ///
    /// # Errors
    /// In the series' order: `ENOSYS` (no CONFIG_DEVICE_NOTIFICATIONS),
    /// `EINVAL` (flags, tag out of −1..=255, `fd` not a notification queue),
    /// the policy's `watch_devices` error, `EBUSY` (already watching),
    /// `EAGAIN` (watch limit), `EBADSLT` (removing a watch that is not there).
    pub fn watch_devices(&self, fd: i32, tag: i32, flags: u32) -> Result<()> {
        if !self.kernel.config().device_notifications {
            return Err(Errno::ENOSYS);
        }
        if flags != 0 || !(-1..=255).contains(&tag) {
            return Err(Errno::EINVAL);
        }
        let q = self.watch_queue(fd)?;
        let limit = self.soft_nofile();
        let policy = self.kernel.policy();
        self.kernel
            .devices()
            .watch(&q, tag, &self.cred(), &*policy, limit)
    }

    /// The process's mount namespace (shared with its forked children).
    pub fn mount_ns(&self) -> Arc<MountNamespace> {
        self.mount_ns.read().clone()
    }

    /// Moves the process into a new mount namespace of its own, with just
    /// a root mount (as a container would start); children forked after
    /// this share it. Watches on the old namespace's mounts stay there.
    pub fn new_mount_ns(&self) -> Arc<MountNamespace> {
        let ns = MountNamespace::new(Cred::root());
        *self.mount_ns.write() = ns.clone();
        ns
    }

    /// Resolves `dfd` + `path` as `user_path_at()` does, to an absolute path
    /// (the working directory is `/`).
    fn path_at(&self, dfd: i32, path: &str, at_flags: u32) -> Result<String> {
        let base = if dfd == AT_FDCWD {
            "/".to_string()
        } else {
            match &self.file(dfd)?.kind {
                FileKind::Directory => "/".to_string(),
                _ if path.starts_with('/') => "/".to_string(),
                _ => return Err(Errno::ENOTDIR),
            }
        };
        if path.is_empty() {
            return if at_flags & AT_EMPTY_PATH != 0 {
                Ok(base)
            } else {
                Err(Errno::ENOENT)
            };
        }
        Ok(if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{base}{path}")
        })
    }

    /// Checks the arguments `watch_mount`/`watch_sb` share, in the 2020
    /// patches' order, and returns the absolute path and the queue.
    fn watch_path_args(
        &self,
        dfd: i32,
        path: &str,
        at_flags: u32,
        fd: i32,
        tag: i32,
    ) -> Result<(String, Arc<WatchQueue>)> {
        if !(-1..=255).contains(&tag) || at_flags & !(AT_NO_AUTOMOUNT | AT_EMPTY_PATH) != 0 {
            return Err(Errno::EINVAL);
        }
        let p = self.path_at(dfd, path, at_flags)?;
        self.mount_ns().resolve(&p)?;
        let q = self.watch_queue(fd)?;
        Ok((p, q))
    }

    /// `watch_mount(dfd, path, at_flags, fd, tag)`: the queue behind `fd`
    /// watches the mount `path` is on and everything below it; tag −1
    /// removes the watch.
    ///
    /// # Errors
    /// In the 2020 patches' order: `EINVAL` (tag outside −1..=255, at_flags
    /// other than AT_NO_AUTOMOUNT|AT_EMPTY_PATH), path errors (`EBADF`,
    /// `ENOENT`, `ENOTDIR`), `EINVAL` (not a notification queue), the
    /// policy's `watch_mount`, `EBUSY`, `EAGAIN`, `EBADSLT`.
    pub fn watch_mount(
        &self,
        dfd: i32,
        path: &str,
        at_flags: u32,
        fd: i32,
        tag: i32,
    ) -> Result<()> {
        let (p, q) = self.watch_path_args(dfd, path, at_flags, fd, tag)?;
        let policy = self.kernel.policy();
        self.mount_ns()
            .watch_mount(&p, &q, tag, &self.cred(), &*policy, self.soft_nofile())
    }

    /// `watch_sb(dfd, path, at_flags, fd, tag)`: the queue behind `fd`
    /// watches the superblock `path` is on; tag −1 removes the watch.
    ///
    /// # Errors
    /// As [`Process::watch_mount`], with the policy's `watch_sb`.
    pub fn watch_sb(&self, dfd: i32, path: &str, at_flags: u32, fd: i32, tag: i32) -> Result<()> {
        let (p, q) = self.watch_path_args(dfd, path, at_flags, fd, tag)?;
        let policy = self.kernel.policy();
        self.mount_ns()
            .watch_sb(&p, &q, tag, &self.cred(), &*policy, self.soft_nofile())
    }

    /// `mmap()` of a `/dev/watch_queue` descriptor: the queue whose ring
    /// the mapping shows (`ring_2019()`; its storage's words, or its memfd
    /// for a real mapping).
    ///
    /// # Errors
    /// In the 2019 driver's order: `EBADF` (not open), `ENODEV` (not the
    /// device), `EINVAL` (not `MAP_SHARED`, an offset, an unsized queue, a
    /// length of 0 or over the ring's size).
    pub fn mmap_watch_queue(
        &self,
        fd: i32,
        len: usize,
        shared: bool,
        offset: u64,
    ) -> Result<Arc<WatchQueue>> {
        let f = self.file(fd)?;
        let FileKind::WatchQueueDev(q) = &f.kind else {
            return Err(Errno::ENODEV);
        };
        let size = q
            .ring_2019()
            .map_or(0, |r| r.slots() as usize * v2::WATCH_LENGTH_GRANULARITY);
        if !shared || offset != 0 || size == 0 || len == 0 || len > size {
            return Err(Errno::EINVAL);
        }
        Ok(q.clone())
    }

    /// Statistics of the notification queue behind `fd` (watchq's own view;
    /// the kernel has none).
    ///
    /// # Errors
    /// EINVAL: `fd` is not an end of a notification pipe.
    pub fn queue_stats(&self, fd: i32) -> Result<QueueStats> {
        Ok(self.watch_queue(fd)?.stats())
    }

    // ----- pipes -------------------------------------------------------

    /// `pipe()`: `pipe2(fds, 0)`.
    ///
    /// # Errors
    /// As [`Process::pipe2`].
    pub fn pipe(&self) -> Result<[i32; 2]> {
        self.pipe2(0)
    }

    /// `pipe2()`: `[read end, write end]`. With `O_NOTIFICATION_PIPE` the
    /// pipe carries a notification queue (unsized until `SET_SIZE`).
    ///
    /// # Errors
    /// In the kernel's order:
    /// - `EINVAL`: a flag other than O_CLOEXEC, O_NONBLOCK, O_DIRECT, O_NOTIFICATION_PIPE.
    /// - `ENOPKG`: O_NOTIFICATION_PIPE on a kernel without `CONFIG_WATCH_QUEUE`.
    /// - `EMFILE`: no two free descriptors below the soft `RLIMIT_NOFILE`.
    pub fn pipe2(&self, flags: u32) -> Result<[i32; 2]> {
        if flags & !(O_CLOEXEC | O_NONBLOCK | O_DIRECT | O_NOTIFICATION_PIPE) != 0 {
            return Err(Errno::EINVAL);
        }
        let ino = self.kernel.alloc_ino();
        let pipe = if flags & O_NOTIFICATION_PIPE != 0 {
            if !self.kernel.config().watch_queue {
                return Err(Errno::ENOPKG);
            }
            Pipe::new_notification(ino, self.kernel.alloc_faults().clone())
        } else {
            Pipe::new_bytes(ino)
        };
        // create_pipe_files(): O_DIRECT only shows on the write end.
        let rd = OpenFile::new(
            FileKind::Pipe(pipe.clone()),
            O_RDONLY | (flags & O_NONBLOCK),
        );
        let wr = OpenFile::new(
            FileKind::Pipe(pipe),
            O_WRONLY | (flags & (O_NONBLOCK | O_DIRECT)),
        );
        let cloexec = flags & O_CLOEXEC != 0;
        let limit = self.soft_nofile();
        let mut t = self.fds.lock();
        let r = t.alloc(rd, cloexec, 0, limit)?;
        match t.alloc(wr, cloexec, 0, limit) {
            Ok(w) => Ok([r, w]),
            Err(e) => {
                let _ = t.remove(r);
                Err(e)
            }
        }
    }

    // ----- read and write ----------------------------------------------

    fn read_mode(&self, f: &OpenFile) -> ReadMode {
        ReadMode {
            nonblock: f.nonblocking(),
            deadline: self.alarm(),
        }
    }

    /// `read()`. On a notification pipe: whole records only, a loss record
    /// after the record that preceded a loss (see `docs/delivery.md`).
    ///
    /// # Errors
    /// In the kernel's order:
    /// - `EBADF`: not open, or not open for reading.
    /// - `EISDIR`: a directory.
    /// - `ENOBUFS`: notification pipe, the first record does not fit.
    /// - `EAGAIN`: empty pipe with a writer, O_NONBLOCK.
    /// - `EINTR`: the alarm went off while sleeping.
    pub fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize> {
        self.read_as(fd, buf, false)
    }

    /// `read()` as if the file had O_NONBLOCK (`preadv2(RWF_NOWAIT)` in
    /// spirit): what a host that does its own waiting (the preload library,
    /// which sleeps in the real `poll()` so signals interrupt it) calls.
    ///
    /// # Errors
    /// As [`Process::read`], with EAGAIN instead of sleeping.
    pub fn read_nowait(&self, fd: i32, buf: &mut [u8]) -> Result<usize> {
        self.read_as(fd, buf, true)
    }

    fn read_as(&self, fd: i32, buf: &mut [u8], nowait: bool) -> Result<usize> {
        let f = self.file(fd)?;
        if !f.readable() {
            return Err(Errno::EBADF);
        }
        let len = buf.len().min(MAX_RW_COUNT);
        let buf = &mut buf[..len];
        let mut mode = self.read_mode(&f);
        mode.nonblock |= nowait;
        match &f.kind {
            FileKind::Pipe(p) => p.read(buf, mode),
            FileKind::Regular(m) => {
                let data = m.data.lock();
                let mut pos = f.pos.lock();
                let n = read_at(&data, *pos, buf);
                *pos += n as u64;
                Ok(n)
            }
            FileKind::Null | FileKind::Console => Ok(0),
            FileKind::Directory => Err(Errno::EISDIR),
            // The 2019 device has no read(): records are read from the mapping.
            FileKind::WatchQueueDev(_) => Err(Errno::EINVAL),
        }
    }

    /// `readv()`: one read into the concatenation of `iov`.
    ///
    /// # Errors
    /// `EINVAL` for more than 1024 vectors, then as [`Process::read`].
    pub fn readv(&self, fd: i32, iov: &mut [&mut [u8]]) -> Result<usize> {
        if iov.len() > UIO_MAXIOV {
            return Err(Errno::EINVAL);
        }
        let total: usize = iov.iter().map(|v| v.len()).sum();
        let mut tmp = vec![0u8; total];
        let n = self.read(fd, &mut tmp)?;
        scatter(&tmp[..n], iov);
        Ok(n)
    }

    /// `write()`.
    ///
    /// # Errors
    /// In the kernel's order:
    /// - `EBADF`: not open, or not open for writing.
    /// - `EXDEV`: a notification pipe (before anything else, even 0 bytes).
    /// - `EPIPE`: a pipe without readers (SIGPIPE is not emulated).
    /// - `EAGAIN`: a full pipe and O_NONBLOCK.
    /// - `EINTR`: the alarm went off while sleeping.
    pub fn write(&self, fd: i32, data: &[u8]) -> Result<usize> {
        let f = self.file(fd)?;
        if !f.writable() {
            return Err(Errno::EBADF);
        }
        let data = &data[..data.len().min(MAX_RW_COUNT)];
        self.write_file(&f, data)
    }

    fn write_file(&self, f: &OpenFile, data: &[u8]) -> Result<usize> {
        match &f.kind {
            FileKind::Pipe(p) => p.write(data, f.flags() & O_DIRECT != 0, self.read_mode(f)),
            FileKind::Regular(m) => {
                let mut pos = f.pos.lock();
                let mut d = m.data.lock();
                if f.flags() & O_APPEND != 0 {
                    *pos = d.len() as u64;
                }
                let n = write_at(&mut d, *pos, data)?;
                *pos += n as u64;
                Ok(n)
            }
            FileKind::Null | FileKind::Console => Ok(data.len()),
            FileKind::Directory => Err(Errno::EISDIR),
            FileKind::WatchQueueDev(_) => Err(Errno::EINVAL),
        }
    }

    /// `writev()`: one write of the concatenation of `iov`.
    ///
    /// # Errors
    /// `EINVAL` for more than 1024 vectors, then as [`Process::write`].
    pub fn writev(&self, fd: i32, iov: &[&[u8]]) -> Result<usize> {
        if iov.len() > UIO_MAXIOV {
            return Err(Errno::EINVAL);
        }
        self.write(fd, &iov.concat())
    }

    /// `lseek()` on a regular file; pipes and ttys cannot seek.
    ///
    /// # Errors
    /// - `EBADF`: not open.
    /// - `ESPIPE`: a pipe or the console.
    /// - `EINVAL`: unknown `whence`, or a negative resulting offset.
    pub fn lseek(&self, fd: i32, offset: i64, whence: i32) -> Result<u64> {
        let f = self.file(fd)?;
        let size = match &f.kind {
            FileKind::Pipe(_) | FileKind::Console | FileKind::WatchQueueDev(_) => {
                return Err(Errno::ESPIPE)
            }
            FileKind::Regular(m) => m.data.lock().len() as i64,
            FileKind::Null | FileKind::Directory => 0,
        };
        let mut pos = f.pos.lock();
        let base = match whence {
            SEEK_SET => 0,
            SEEK_CUR => *pos as i64,
            SEEK_END => size,
            _ => return Err(Errno::EINVAL),
        };
        let new = base.checked_add(offset).ok_or(Errno::EOVERFLOW)?;
        if new < 0 {
            return Err(Errno::EINVAL);
        }
        *pos = new as u64;
        Ok(new as u64)
    }

    // ----- descriptors -------------------------------------------------

    /// `close()`. The last close of a notification pipe's files clears its
    /// queue: every watch is detached, without removal records.
    ///
    /// # Errors
    /// EBADF: not open.
    pub fn close(&self, fd: i32) -> Result<()> {
        let e = self.fds.lock().remove(fd)?;
        drop(e);
        Ok(())
    }

    /// `dup()`: the lowest free descriptor, sharing the open file.
    ///
    /// # Errors
    /// - `EBADF`: `fd` is not open.
    /// - `EMFILE`: no free descriptor below the soft limit.
    pub fn dup(&self, fd: i32) -> Result<i32> {
        let limit = self.soft_nofile();
        let mut t = self.fds.lock();
        let file = t.entry(fd)?.file.clone();
        t.alloc(file, false, 0, limit)
    }

    /// `dup2()`: `new` refers to `old`'s open file (closing what it was).
    ///
    /// # Errors
    /// - `EBADF`: `old` not open, or `new` outside 0..soft limit.
    pub fn dup2(&self, old: i32, new: i32) -> Result<i32> {
        if old == new {
            self.file(old)?;
            return Ok(new);
        }
        self.dup3(old, new, 0)
    }

    /// `dup3()`: as `dup2` with O_CLOEXEC allowed, and `old == new` refused.
    ///
    /// # Errors
    /// In the kernel's order:
    /// - `EINVAL`: a flag other than O_CLOEXEC, or `old == new`.
    /// - `EBADF`: `new` outside 0..soft limit, or `old` not open.
    pub fn dup3(&self, old: i32, new: i32, flags: u32) -> Result<i32> {
        if flags & !O_CLOEXEC != 0 || old == new {
            return Err(Errno::EINVAL);
        }
        if new < 0 || new as u64 >= self.soft_nofile() {
            return Err(Errno::EBADF);
        }
        let mut t = self.fds.lock();
        let file = t.entry(old)?.file.clone();
        let prev = t.install(
            new,
            FdEntry {
                file,
                cloexec: flags & O_CLOEXEC != 0,
            },
        );
        drop(t);
        drop(prev);
        Ok(new)
    }

    /// `fcntl()`. Returns the command's value (0 for setters).
    ///
    /// # Errors
    /// - `EBADF`: `fd` not open; F_SETPIPE_SZ/F_GETPIPE_SZ on a non-pipe.
    /// - `EINVAL`: unknown command; F_DUPFD minimum at or above the soft
    ///   limit; F_SETFL asking for O_DIRECT on a file that cannot do it.
    /// - `EMFILE`: F_DUPFD with no free descriptor.
    /// - `EBUSY`: F_SETPIPE_SZ on a notification pipe, or below the queued amount.
    /// - `EPERM`: F_SETPIPE_SZ over `pipe-max-size` without CAP_SYS_RESOURCE.
    pub fn fcntl(&self, fd: i32, cmd: i32, arg: u64) -> Result<i64> {
        let f = self.file(fd)?;
        match cmd {
            F_DUPFD | F_DUPFD_CLOEXEC => {
                let limit = self.soft_nofile();
                if arg >= limit {
                    return Err(Errno::EINVAL);
                }
                let n = self
                    .fds
                    .lock()
                    .alloc(f, cmd == F_DUPFD_CLOEXEC, arg as usize, limit)?;
                Ok(n as i64)
            }
            F_GETFD => Ok(i64::from(self.fds.lock().entry(fd)?.cloexec)),
            F_SETFD => {
                self.fds.lock().entry_mut(fd)?.cloexec = arg as i32 & FD_CLOEXEC != 0;
                Ok(0)
            }
            F_GETFL => Ok(f.flags() as i64),
            F_SETFL => {
                let arg = arg as u32;
                if arg & O_DIRECT != 0 && !matches!(f.kind, FileKind::Regular(_)) {
                    return Err(Errno::EINVAL);
                }
                f.set_flags((f.flags() & !SETFL_MASK) | (arg & SETFL_MASK));
                Ok(0)
            }
            F_SETPIPE_SZ => {
                let p = f.pipe().ok_or(Errno::EBADF)?;
                Ok(p.set_pipe_size(arg, &self.cred())? as i64)
            }
            F_GETPIPE_SZ => {
                let p = f.pipe().ok_or(Errno::EBADF)?;
                Ok((p.max_usage() * PAGE_SIZE) as i64)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// `ioctl()`. `arg` is the raw argument; `mem` is the user memory it
    /// points at, as far as it is accessible (`None`: nothing mapped there).
    ///
    /// Generic commands first (FIOCLEX, FIONCLEX, FIONBIO, FIONREAD on a
    /// regular file), then the pipe's: FIONREAD, and with
    /// `CONFIG_WATCH_QUEUE` IOC_WATCH_QUEUE_SET_SIZE (`arg` notes, truncated
    /// to 32 bits) and IOC_WATCH_QUEUE_SET_FILTER (`arg` 0 removes the
    /// filter, else the filter blob is read from `mem`).
    ///
    /// # Errors
    /// In the kernel's order:
    /// - `EBADF`: `fd` not open.
    /// - `EFAULT`: `mem` too short for what the command reads or writes.
    /// - `ENOTTY`: not a pipe (for the pipe commands), or a command the file does not know.
    /// - `ENODEV`: a watch-queue command on an ordinary pipe.
    /// - `EBUSY`, `EINVAL`, `ENOMEM`: as `WatchQueue::set_size`;
    ///   `EFAULT`, `EINVAL`: as `WatchQueue::set_filter`.
    pub fn ioctl(&self, fd: i32, cmd: u64, arg: u64, mem: Option<&mut [u8]>) -> Result<i64> {
        let f = self.file(fd)?;
        match cmd {
            FIOCLEX | FIONCLEX => {
                self.fds.lock().entry_mut(fd)?.cloexec = cmd == FIOCLEX;
                return Ok(0);
            }
            FIONBIO => {
                let on = read_user_int(mem.as_deref())? != 0;
                let fl = f.flags();
                f.set_flags(if on {
                    fl | O_NONBLOCK
                } else {
                    fl & !O_NONBLOCK
                });
                return Ok(0);
            }
            FIONREAD => {
                if let FileKind::Regular(m) = &f.kind {
                    let left = (m.data.lock().len() as u64).saturating_sub(*f.pos.lock());
                    write_user_int(mem, left as i32)?;
                    return Ok(0);
                }
            }
            _ => {}
        }
        if let FileKind::WatchQueueDev(q) = &f.kind {
            return match cmd {
                v2::IOC_WATCH_QUEUE_SET_SIZE => q.set_size(arg).map(|()| 0),
                v2::IOC_WATCH_QUEUE_SET_FILTER if arg == 0 => q.set_filter(None).map(|()| 0),
                v2::IOC_WATCH_QUEUE_SET_FILTER => q
                    .set_filter(Some(mem.as_deref().ok_or(Errno::EFAULT)?))
                    .map(|()| 0),
                // The June 2019 driver's answer to an unknown command.
                _ => Err(Errno::EOPNOTSUPP),
            };
        }
        let FileKind::Pipe(p) = &f.kind else {
            return Err(Errno::ENOTTY);
        };
        match cmd {
            FIONREAD => {
                write_user_int(mem, p.fionread() as i32)?;
                Ok(0)
            }
            IOC_WATCH_QUEUE_SET_SIZE if self.kernel.config().watch_queue => {
                let q = p.queue().ok_or(Errno::ENODEV)?;
                q.set_size(arg)?;
                Ok(0)
            }
            IOC_WATCH_QUEUE_SET_FILTER if self.kernel.config().watch_queue => {
                let q = p.queue().ok_or(Errno::ENODEV)?;
                if arg == 0 {
                    q.set_filter(None)?;
                } else {
                    q.set_filter(Some(mem.as_deref().ok_or(Errno::EFAULT)?))?;
                }
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    /// `IOC_WATCH_QUEUE_SET_SIZE` through [`Process::ioctl`].
    ///
    /// # Errors
    /// As [`Process::ioctl`].
    pub fn set_queue_size(&self, fd: i32, nr_notes: u64) -> Result<()> {
        self.ioctl(fd, IOC_WATCH_QUEUE_SET_SIZE, nr_notes, None)
            .map(drop)
    }

    /// `IOC_WATCH_QUEUE_SET_FILTER` through [`Process::ioctl`]; `None`
    /// passes a NULL pointer.
    ///
    /// # Errors
    /// As [`Process::ioctl`].
    pub fn set_queue_filter(&self, fd: i32, blob: Option<&[u8]>) -> Result<()> {
        match blob {
            None => self.ioctl(fd, IOC_WATCH_QUEUE_SET_FILTER, 0, None),
            Some(b) => {
                let mut m = b.to_vec();
                self.ioctl(fd, IOC_WATCH_QUEUE_SET_FILTER, 1, Some(&mut m))
            }
        }
        .map(drop)
    }

    /// `FIONREAD` through [`Process::ioctl`].
    ///
    /// # Errors
    /// As [`Process::ioctl`].
    pub fn fionread(&self, fd: i32) -> Result<usize> {
        let mut m = [0u8; 4];
        self.ioctl(fd, FIONREAD, 1, Some(&mut m))?;
        Ok(i32::from_le_bytes(m) as usize)
    }

    // ----- poll --------------------------------------------------------

    fn poll_mask(f: &OpenFile) -> u16 {
        match &f.kind {
            FileKind::Pipe(p) => {
                let mut m = 0;
                if f.readable() {
                    m |= p.poll_read();
                }
                if f.writable() {
                    m |= p.poll_write();
                }
                m
            }
            FileKind::WatchQueueDev(q) => match q.ring_2019() {
                None => 0,
                Some(r) if r.inconsistent() => POLLERR,
                Some(r) if r.readable() => POLLIN | POLLRDNORM,
                Some(_) => 0,
            },
            _ => POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM,
        }
    }

    /// `poll()`: waits up to `timeout_ms` (negative: for ever, 0: not at all)
    /// for an event; returns how many entries have `revents` set.
    ///
    /// # Errors
    /// - `EINVAL`: more entries than the soft `RLIMIT_NOFILE`.
    /// - `EINTR`: the alarm went off while sleeping.
    pub fn poll(&self, fds: &mut [PollFd], timeout_ms: i32) -> Result<usize> {
        if fds.len() as u64 > self.soft_nofile() {
            return Err(Errno::EINVAL);
        }
        let timeout =
            (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        let files: Vec<Option<Arc<OpenFile>>> = fds
            .iter()
            .map(|p| if p.fd < 0 { None } else { self.file(p.fd).ok() })
            .collect();
        let scan = |fds: &mut [PollFd]| {
            let mut n = 0;
            for (p, f) in fds.iter_mut().zip(&files) {
                p.revents = if p.fd < 0 {
                    0
                } else {
                    match f {
                        None => POLLNVAL,
                        Some(f) => Self::poll_mask(f) & (p.events | POLLERR | POLLHUP),
                    }
                };
                n += usize::from(p.revents != 0);
            }
            n
        };
        loop {
            let n = scan(fds);
            if n > 0 || timeout_ms == 0 {
                return Ok(n);
            }
            let alarm = self.alarm();
            let now = Instant::now();
            if alarm.is_some_and(|a| a <= now) {
                return Err(Errno::EINTR);
            }
            if timeout.is_some_and(|t| t <= now) {
                return Ok(0);
            }
            let w = Waiter::current();
            let mut queues = Vec::new();
            for f in files.iter().flatten() {
                if let Some(p) = f.pipe() {
                    if f.readable() {
                        queues.push(p.rd_wait());
                    }
                    if f.writable() {
                        queues.push(p.wr_wait());
                    }
                }
            }
            for q in &queues {
                q.register(&w);
            }
            if scan(fds) == 0 {
                let deadline = match (alarm, timeout) {
                    (Some(a), Some(t)) => Some(a.min(t)),
                    (a, t) => a.or(t),
                };
                w.park(deadline);
            }
            for q in &queues {
                q.unregister(&w);
            }
        }
    }

    // ----- splice and friends ------------------------------------------

    /// `splice()`. A notification pipe is not a pipe to splice (the kernel's
    /// `get_pipe_info(file, true)` refuses it), so: notification pipe → pipe
    /// or file is EINVAL, pipe → notification pipe is EXDEV (the generic
    /// write path meets `pipe_write()`), file → notification pipe is EINVAL.
    ///
    /// # Errors
    /// In the kernel's order: `EINVAL` (flags), `EBADF` (bad fds or modes),
    /// `ESPIPE` (an offset on a pipe side), `EINVAL` (neither side a pipe,
    /// same pipe, an offset on a stream, O_APPEND output, a source that
    /// cannot be spliced from), `EPIPE`/`EAGAIN`/`EINTR` (waiting on a
    /// pipe), `EXDEV` (writing into a notification pipe).
    pub fn splice(
        &self,
        fd_in: i32,
        off_in: Option<&mut u64>,
        fd_out: i32,
        off_out: Option<&mut u64>,
        len: usize,
        flags: u32,
    ) -> Result<usize> {
        if len == 0 {
            return Ok(0);
        }
        if flags & !SPLICE_F_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        let fin = self.file(fd_in)?;
        let fout = self.file(fd_out)?;
        let ipipe = splice_pipe(&fin);
        let opipe = splice_pipe(&fout);
        if (ipipe.is_some() && off_in.is_some()) || (opipe.is_some() && off_out.is_some()) {
            return Err(Errno::ESPIPE);
        }
        if !fin.readable() || !fout.writable() {
            return Err(Errno::EBADF);
        }
        let len = len.min(MAX_RW_COUNT);
        let mut nonblock = flags & SPLICE_F_NONBLOCK != 0;
        let deadline = self.alarm();
        match (ipipe, opipe) {
            (Some(ip), Some(op)) => {
                if Arc::ptr_eq(ip, op) {
                    return Err(Errno::EINVAL);
                }
                nonblock |= fin.nonblocking() || fout.nonblocking();
                if !wait_readable(ip, nonblock, deadline)? {
                    return Ok(0);
                }
                wait_for_space(op, nonblock, deadline)?;
                let data = ip.peek_bytes(len.min(op_room(op)));
                let n = op.write(&data, false, AT_ONCE)?;
                discard(ip, n)?;
                Ok(n)
            }
            (Some(ip), None) => {
                let pos = file_offset(&fout, off_out.as_deref().copied(), true)?;
                if fout.flags() & O_APPEND != 0 {
                    return Err(Errno::EINVAL);
                }
                if matches!(fout.kind, FileKind::Directory) {
                    return Err(Errno::EINVAL);
                }
                if !wait_readable(ip, nonblock, deadline)? {
                    return Ok(0);
                }
                let data = ip.peek_bytes(len);
                let n = self.write_out(&fout, pos, off_out, &data)?;
                discard(ip, n)?;
                Ok(n)
            }
            (None, Some(op)) => {
                let pos = file_offset(&fin, off_in.as_deref().copied(), false)?;
                nonblock |= fout.nonblocking();
                wait_for_space(op, nonblock, deadline)?;
                let data = splice_read(&fin, pos, len.min(op_room(op)))?;
                let n = op.write(&data, false, AT_ONCE)?;
                advance(&fin, off_in, pos, n);
                Ok(n)
            }
            (None, None) => Err(Errno::EINVAL),
        }
    }

    /// Writes `data` to a non-pipe splice destination at `pos`.
    fn write_out(
        &self,
        out: &OpenFile,
        pos: u64,
        off: Option<&mut u64>,
        data: &[u8],
    ) -> Result<usize> {
        match &out.kind {
            FileKind::Regular(m) => {
                let n = write_at(&mut m.data.lock(), pos, data)?;
                advance(out, off, pos, n);
                Ok(n)
            }
            // Only a notification pipe is a pipe here: pipe_write() says EXDEV.
            FileKind::Pipe(p) => p.write(data, false, ReadMode::default()),
            FileKind::Null | FileKind::Console => Ok(data.len()),
            FileKind::Directory | FileKind::WatchQueueDev(_) => Err(Errno::EINVAL),
        }
    }

    /// `tee()`: duplicates queued bytes of one ordinary pipe into another.
    ///
    /// # Errors
    /// In the kernel's order: `EINVAL` (flags), `EBADF` (bad fds or modes),
    /// `EINVAL` (not two different ordinary pipes: a notification pipe on
    /// either side included), `EPIPE`/`EAGAIN`/`EINTR` (waiting).
    pub fn tee(&self, fd_in: i32, fd_out: i32, len: usize, flags: u32) -> Result<usize> {
        if flags & !SPLICE_F_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(0);
        }
        let fin = self.file(fd_in)?;
        let fout = self.file(fd_out)?;
        if !fin.readable() || !fout.writable() {
            return Err(Errno::EBADF);
        }
        let (Some(ip), Some(op)) = (splice_pipe(&fin), splice_pipe(&fout)) else {
            return Err(Errno::EINVAL);
        };
        if Arc::ptr_eq(ip, op) {
            return Err(Errno::EINVAL);
        }
        let nonblock = flags & SPLICE_F_NONBLOCK != 0 || fin.nonblocking() || fout.nonblocking();
        let deadline = self.alarm();
        if !wait_readable(ip, nonblock, deadline)? {
            return Ok(0);
        }
        wait_for_space(op, nonblock, deadline)?;
        let data = ip.peek_bytes(len.min(op_room(op)));
        op.write(&data, false, AT_ONCE)
    }

    /// `vmsplice()`: user memory into a pipe's write side (`iov` is read),
    /// or out of its read side (`iov` is filled), by the fd's open mode.
    ///
    /// # Errors
    /// In the kernel's order: `EINVAL` (flags), `EBADF` (bad fd or mode),
    /// `EINVAL` (more than 1024 vectors), `EBADF` (not an ordinary pipe: a
    /// notification pipe included; after the zero-length check),
    /// `EPIPE`/`EAGAIN`/`EINTR` (waiting).
    pub fn vmsplice(&self, fd: i32, iov: &mut [&mut [u8]], flags: u32) -> Result<usize> {
        if flags & !SPLICE_F_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        let f = self.file(fd)?;
        let to_pipe = if f.writable() {
            true
        } else if f.readable() {
            false
        } else {
            return Err(Errno::EBADF);
        };
        if iov.len() > UIO_MAXIOV {
            return Err(Errno::EINVAL);
        }
        let total: usize = iov.iter().map(|v| v.len()).sum();
        if total == 0 {
            return Ok(0);
        }
        let p = splice_pipe(&f).ok_or(Errno::EBADF)?;
        let nonblock = flags & SPLICE_F_NONBLOCK != 0 || f.nonblocking();
        let deadline = self.alarm();
        if to_pipe {
            wait_for_space(p, nonblock, deadline)?;
            let data: Vec<u8> = iov.iter().flat_map(|v| v.iter().copied()).collect();
            p.write(&data[..total.min(op_room(p))], false, AT_ONCE)
        } else {
            let mut tmp = vec![0u8; total];
            let n = p.read(&mut tmp, ReadMode { nonblock, deadline })?;
            scatter(&tmp[..n], iov);
            Ok(n)
        }
    }

    /// `sendfile()`: copies from a file into a file or pipe.
    ///
    /// # Errors
    /// In the kernel's order: `EBADF` (input not open for reading), `ESPIPE`
    /// (an offset on an unseekable input), `EBADF` (output not open for
    /// writing), `EINVAL` (an input that cannot be spliced from, O_APPEND
    /// output), `EXDEV` (a notification pipe as output, when there is data),
    /// `EPIPE`/`EAGAIN`/`EINTR` (waiting on an output pipe).
    pub fn sendfile(
        &self,
        out_fd: i32,
        in_fd: i32,
        offset: Option<&mut u64>,
        count: usize,
    ) -> Result<usize> {
        let fin = self.file(in_fd)?;
        if !fin.readable() {
            return Err(Errno::EBADF);
        }
        let pos = match offset.as_deref() {
            None => *fin.pos.lock(),
            Some(&o) => {
                if !seekable(&fin) {
                    return Err(Errno::ESPIPE);
                }
                o
            }
        };
        let fout = self.file(out_fd)?;
        if !fout.writable() {
            return Err(Errno::EBADF);
        }
        let count = count.min(MAX_RW_COUNT);
        let deadline = self.alarm();
        let (data, n) = match splice_pipe(&fout) {
            Some(op) => {
                wait_for_space(op, fout.nonblocking() || fin.nonblocking(), deadline)?;
                let data = splice_read(&fin, pos, count.min(op_room(op)))?;
                let n = op.write(&data, false, AT_ONCE)?;
                (data, n)
            }
            None => {
                if fout.flags() & O_APPEND != 0 {
                    return Err(Errno::EINVAL);
                }
                let data = splice_read(&fin, pos, count)?;
                if data.is_empty() {
                    return Ok(0);
                }
                let opos = *fout.pos.lock();
                let n = self.write_out(&fout, opos, None, &data)?;
                (data, n)
            }
        };
        debug_assert!(n <= data.len());
        match offset {
            Some(o) => *o = pos + n as u64,
            None => *fin.pos.lock() = pos + n as u64,
        }
        Ok(n)
    }

    // ----- files -------------------------------------------------------

    /// `open()` of the few paths the emulation has: `/`, `/dev/null`,
    /// `/dev/console` (or `/dev/tty`), and `/proc/self/fd/N` or
    /// `/proc/PID/fd/N`, which opens a new file on the same object (for a
    /// pipe, a new end with the requested mode, as the kernel's FIFO open).
    ///
    /// # Errors
    /// - `ENOENT`: no such path (or process, or descriptor).
    /// - `EISDIR`: a directory opened for writing.
    /// - `ENOTDIR`: O_DIRECTORY on something else.
    /// - `EMFILE`: no free descriptor.
    pub fn open(&self, path: &str, flags: u32) -> Result<i32> {
        let acc = flags & O_ACCMODE_MASK;
        let kind = if path == "/" {
            if acc != O_RDONLY {
                return Err(Errno::EISDIR);
            }
            FileKind::Directory
        } else if flags & O_DIRECTORY != 0 {
            return Err(if self.path_exists(path) {
                Errno::ENOTDIR
            } else {
                Errno::ENOENT
            });
        } else if path == "/dev/watch_queue" {
            // A kernel without CONFIG_WATCH_QUEUE has no such device.
            if !self.kernel.config().watch_queue {
                return Err(Errno::ENOENT);
            }
            FileKind::WatchQueueDev(WatchQueue::new_2019())
        } else if path == "/dev/null" {
            FileKind::Null
        } else if path == "/dev/console" || path == "/dev/tty" {
            FileKind::Console
        } else if let Some(f) = self.proc_fd(path) {
            let f = f?;
            match &f.kind {
                FileKind::Pipe(p) => FileKind::Pipe(p.clone()),
                FileKind::Regular(m) => FileKind::Regular(m.clone()),
                FileKind::Null => FileKind::Null,
                FileKind::Console => FileKind::Console,
                // Every open of the device is a new queue.
                FileKind::WatchQueueDev(_) => FileKind::WatchQueueDev(WatchQueue::new_2019()),
                FileKind::Directory => {
                    if acc != O_RDONLY {
                        return Err(Errno::EISDIR);
                    }
                    FileKind::Directory
                }
            }
        } else {
            return Err(Errno::ENOENT);
        };
        let mut fl = flags & (O_ACCMODE_MASK | O_NONBLOCK | O_APPEND | O_DIRECT | O_ASYNC);
        if !matches!(kind, FileKind::Pipe(_)) {
            fl |= O_LARGEFILE;
        }
        if let FileKind::Regular(m) = &kind {
            if flags & O_TRUNC != 0 && acc != O_RDONLY {
                m.data.lock().clear();
            }
        }
        self.install(OpenFile::new(kind, fl), flags & O_CLOEXEC != 0)
    }

    fn path_exists(&self, path: &str) -> bool {
        matches!(
            path,
            "/" | "/dev/null" | "/dev/console" | "/dev/tty" | "/dev/watch_queue"
        ) || self.proc_fd(path).is_some_and(|r| r.is_ok())
    }

    /// Resolves `/proc/self/fd/N` or `/proc/PID/fd/N`.
    fn proc_fd(&self, path: &str) -> Option<Result<Arc<OpenFile>>> {
        let rest = path.strip_prefix("/proc/")?;
        let (who, fd) = rest.split_once("/fd/")?;
        let fd: i32 = match fd.parse() {
            Ok(fd) => fd,
            Err(_) => return Some(Err(Errno::ENOENT)),
        };
        let proc_ = if who == "self" {
            None
        } else {
            match who
                .parse::<u32>()
                .ok()
                .and_then(|pid| self.kernel.process(pid))
            {
                Some(p) => Some(p),
                None => return Some(Err(Errno::ENOENT)),
            }
        };
        let r = match proc_ {
            None => self.file(fd),
            Some(p) => p.file(fd),
        };
        Some(r.map_err(|_| Errno::ENOENT))
    }

    /// `memfd_create()`: an anonymous regular file, open read-write.
    ///
    /// # Errors
    /// - `EINVAL`: unknown flags, or a name longer than 249 bytes.
    /// - `EMFILE`: no free descriptor.
    pub fn memfd_create(&self, name: &str, flags: u32) -> Result<i32> {
        if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING) != 0 || name.len() > 249 {
            return Err(Errno::EINVAL);
        }
        let inode = Arc::new(MemInode {
            ino: self.kernel.alloc_ino(),
            data: Mutex::new(Vec::new()),
        });
        self.install(
            OpenFile::new(FileKind::Regular(inode), O_RDWR | O_LARGEFILE),
            flags & MFD_CLOEXEC != 0,
        )
    }
}

/// The pipe splice may use: ordinary pipes only (`get_pipe_info(file, true)`).
fn splice_pipe(f: &OpenFile) -> Option<&Arc<Pipe>> {
    f.pipe().filter(|p| p.queue().is_none())
}

/// Can `f` be read or written at an explicit offset (FMODE_PREAD/PWRITE)?
fn seekable(f: &OpenFile) -> bool {
    matches!(f.kind, FileKind::Regular(_) | FileKind::Null)
}

/// The offset a splice uses on a non-pipe side: the explicit one (EINVAL
/// on a stream) or the file position.
fn file_offset(f: &OpenFile, off: Option<u64>, _write: bool) -> Result<u64> {
    match off {
        Some(o) if seekable(f) => Ok(o),
        Some(_) => Err(Errno::EINVAL),
        None => Ok(*f.pos.lock()),
    }
}

/// Moves the explicit offset, or the file position, past `n` bytes.
fn advance(f: &OpenFile, off: Option<&mut u64>, pos: u64, n: usize) {
    match off {
        Some(o) => *o = pos + n as u64,
        None => {
            if matches!(f.kind, FileKind::Regular(_)) {
                *f.pos.lock() = pos + n as u64;
            }
        }
    }
}

/// The `splice_read` of a non-pipe source: bytes of a regular file, end of
/// file for /dev/null and the console; anything else has none (EINVAL).
fn splice_read(f: &OpenFile, pos: u64, len: usize) -> Result<Vec<u8>> {
    match &f.kind {
        FileKind::Regular(m) => {
            let d = m.data.lock();
            let start = (pos.min(d.len() as u64)) as usize;
            Ok(d[start..(start + len).min(d.len())].to_vec())
        }
        FileKind::Null | FileKind::Console => Ok(Vec::new()),
        FileKind::Pipe(_) | FileKind::Directory | FileKind::WatchQueueDev(_) => Err(Errno::EINVAL),
    }
}

/// Bytes an ordinary pipe can take right now (whole free buffers).
fn op_room(p: &Pipe) -> usize {
    p.max_usage()
        .saturating_sub(p.fionread().div_ceil(PAGE_SIZE))
        * PAGE_SIZE
}

/// `ipipe_prep()`/`splice_from_pipe_next()`: Ok(false) when the pipe is
/// empty and has no writer (splice returns 0).
fn wait_readable(p: &Pipe, nonblock: bool, deadline: Option<Instant>) -> Result<bool> {
    loop {
        if !p.is_empty() {
            return Ok(true);
        }
        if p.writers() == 0 {
            return Ok(false);
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        p.wait(false, deadline, || !p.is_empty() || p.writers() == 0)?;
    }
}

/// `wait_for_space()`/`opipe_prep()`.
fn wait_for_space(p: &Pipe, nonblock: bool, deadline: Option<Instant>) -> Result<()> {
    loop {
        if p.readers() == 0 {
            return Err(Errno::EPIPE);
        }
        if p.has_room() {
            return Ok(());
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        p.wait(true, deadline, || p.has_room() || p.readers() == 0)?;
    }
}

/// Consumes `n` bytes of an ordinary pipe that were copied elsewhere.
fn discard(p: &Pipe, n: usize) -> Result<()> {
    let mut sink = vec![0u8; n];
    p.read(&mut sink, AT_ONCE).map(drop)
}

fn read_at(data: &[u8], pos: u64, buf: &mut [u8]) -> usize {
    let start = pos.min(data.len() as u64) as usize;
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

/// Largest regular file the emulation keeps (its "s_maxbytes").
const MAX_FILE: u64 = 1 << 30;

fn write_at(data: &mut Vec<u8>, pos: u64, src: &[u8]) -> Result<usize> {
    if pos >= MAX_FILE {
        return Err(Errno::EFBIG);
    }
    let n = src.len().min((MAX_FILE - pos) as usize);
    let end = pos as usize + n;
    if data.len() < end {
        data.resize(end, 0);
    }
    data[pos as usize..end].copy_from_slice(&src[..n]);
    Ok(n)
}

fn scatter(mut src: &[u8], iov: &mut [&mut [u8]]) {
    for v in iov.iter_mut() {
        let n = v.len().min(src.len());
        v[..n].copy_from_slice(&src[..n]);
        src = &src[n..];
    }
}

fn read_user_int(mem: Option<&[u8]>) -> Result<i32> {
    let b = mem.and_then(|m| m.get(..4)).ok_or(Errno::EFAULT)?;
    Ok(i32::from_le_bytes(b.try_into().expect("4 bytes")))
}

fn write_user_int(mem: Option<&mut [u8]>, v: i32) -> Result<()> {
    let b = mem.and_then(|m| m.get_mut(..4)).ok_or(Errno::EFAULT)?;
    b.copy_from_slice(&v.to_le_bytes());
    Ok(())
}

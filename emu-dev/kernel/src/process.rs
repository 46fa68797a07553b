//! A process: the task state.
//!
//! Owns [`Process`], mirroring `struct task_struct` as far as files,
//! credentials and keyrings go: pid and parent, credentials (with the LSM
//! label and Landlock-like domain), the soft and hard `RLIMIT_NOFILE`, an
//! emulated `alarm()` (a deadline that interrupts blocking calls with EINTR,
//! as SIGALRM without `SA_RESTART` does), the fd table and keyring anchors
//! (shared with the kernel's process table as a `TaskShared`), the mount
//! namespace, and `fork`/`exec`/`exit`. [`Kernel::spawn`] is here too: the
//! kernel's own module never names a process.
//!
//! The system calls a process makes are in the `syscalls` modules, above
//! this one: one trait per subsystem, implemented for `Process`;
//! `use watchq_kernel::prelude::*` brings them all into scope.

use crate::fdtable::{FdEntry, FdTable};
use crate::file::{FileKind, OpenFile};
use crate::kernel::Kernel;
use crate::task::TaskShared;
use parking_lot::{Mutex, MutexGuard, RwLock};
use std::sync::Arc;
use std::time::{Duration, Instant};
use watchq_core::lsm::{Domain, Inheritance, LandlockRule};
use watchq_core::uapi::O_RDWR;
use watchq_core::{Cred, Errno, Result};
use watchq_sources::keys::Anchors;
use watchq_sources::mount::MountNamespace;

/// Default soft `RLIMIT_NOFILE`.
const NOFILE_SOFT: u64 = 1024;
/// Default hard `RLIMIT_NOFILE` (`fs.nr_open`).
const NOFILE_HARD: u64 = 1 << 20;

/// An emulated process.
pub struct Process {
    kernel: Arc<Kernel>,
    pid: u32,
    ppid: u32,
    cred: RwLock<Arc<Cred>>,
    /// The fd table and keyrings; the kernel's table holds it weakly.
    task: Arc<TaskShared>,
    nofile: Mutex<(u64, u64)>,
    alarm: Mutex<Option<Instant>>,
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

impl Kernel {
    /// Starts a new process (no parent) running as `uid`/`gid`, with the
    /// console on fds 0, 1 and 2.
    pub fn spawn(self: &Arc<Self>, uid: u32, gid: u32) -> Arc<Process> {
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
        Process::start(
            self,
            0,
            self.cred(uid, gid),
            TaskShared {
                fds: Mutex::new(fds),
                anchors: Mutex::new(Anchors::default()),
            },
            (NOFILE_SOFT, NOFILE_HARD),
            self.init_mount_ns().clone(),
        )
    }
}

impl Process {
    /// A new process with a fresh pid, entered in the kernel's table.
    fn start(
        kernel: &Arc<Kernel>,
        ppid: u32,
        cred: Cred,
        task: TaskShared,
        nofile: (u64, u64),
        mount_ns: Arc<MountNamespace>,
    ) -> Arc<Self> {
        let p = Arc::new(Process {
            kernel: kernel.clone(),
            pid: kernel.alloc_pid(),
            ppid,
            cred: RwLock::new(Arc::new(cred)),
            task: Arc::new(task),
            nofile: Mutex::new(nofile),
            alarm: Mutex::new(None),
            mount_ns: RwLock::new(mount_ns),
        });
        kernel.register(p.pid, &p.task);
        p
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
        c.set_label(label.map(str::to_string));
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
        let mut cred = (*self.cred()).clone();
        cred.domain = cred.domain.as_ref().map(Domain::fork);
        // One lock at a time: a key call holds the anchors while it looks a
        // descriptor up (KEYCTL_WATCH_KEY), so holding the fd table while
        // taking the anchors here could deadlock against it (the kernel
        // server forks a parent that is in a key call at that moment).
        let fds = self.fd_table().clone();
        let anchors = self.anchors().for_child();
        Process::start(
            &self.kernel,
            self.pid,
            cred,
            TaskShared {
                fds: Mutex::new(fds),
                anchors: Mutex::new(anchors),
            },
            *self.nofile.lock(),
            self.mount_ns(),
        )
    }

    /// `execve()` as far as files go: close-on-exec descriptors are closed.
    pub fn exec(&self) {
        let gone = self.fd_table().close_on_exec();
        drop(gone);
    }

    /// `exit()`: every descriptor is closed, the process's keyrings are
    /// released (and collected if nothing else holds them), and the process
    /// leaves the table.
    pub fn exit(&self) {
        let gone = self.fd_table().take_all();
        drop(gone);
        *self.anchors() = Anchors::default();
        self.kernel.unregister(self.pid);
    }

    /// The process's keyrings (thread, process, session) and authority.
    pub fn key_anchors(&self) -> Anchors {
        self.anchors().clone()
    }

    /// The keyrings themselves, for a key call to use and update.
    pub(crate) fn anchors(&self) -> MutexGuard<'_, Anchors> {
        self.task.anchors.lock()
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

    /// The soft `RLIMIT_NOFILE`: the descriptor bound, and the per-user
    /// watch limit the watch calls pass on.
    pub(crate) fn soft_nofile(&self) -> u64 {
        self.nofile.lock().0
    }

    /// `alarm()`: blocking calls still sleeping after `after` fail with
    /// EINTR (as SIGALRM without `SA_RESTART`); `None` cancels.
    pub fn set_alarm(&self, after: Option<Duration>) {
        *self.alarm.lock() = after.map(|d| Instant::now() + d);
    }

    /// When the alarm goes off, if it is set: the deadline of every sleep.
    pub(crate) fn alarm_deadline(&self) -> Option<Instant> {
        *self.alarm.lock()
    }

    /// The fd table (`current->files`), locked.
    pub(crate) fn fd_table(&self) -> MutexGuard<'_, FdTable> {
        self.task.fds.lock()
    }

    /// The open file behind `fd`.
    ///
    /// # Errors
    /// EBADF: `fd` is not open.
    pub fn file(&self, fd: i32) -> Result<Arc<OpenFile>> {
        self.task.file(fd)
    }

    /// Open descriptors and what they refer to (like `ls -l /proc/PID/fd`).
    pub fn fds(&self) -> Vec<(i32, String)> {
        self.fd_table()
            .iter()
            .map(|(fd, e)| (fd, e.file.describe()))
            .collect()
    }

    /// Installs `file` at the lowest free descriptor below the soft limit
    /// (`get_unused_fd_flags()` + `fd_install()`).
    ///
    /// # Errors
    /// EMFILE: no free descriptor.
    pub(crate) fn install(&self, file: Arc<OpenFile>, cloexec: bool) -> Result<i32> {
        let limit = self.soft_nofile();
        self.fd_table().alloc(file, cloexec, 0, limit)
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
}

//! The emulated kernel: configuration, security policy, per-user accounts
//! and the process table.
//!
//! Owns [`Kernel`] and [`KernelConfig`]. The configuration mirrors the build
//! options a consumer can meet: with `watch_queue` off the kernel behaves as
//! one built without `CONFIG_WATCH_QUEUE` (`pipe2(O_NOTIFICATION_PIPE)` fails
//! with ENOPKG, the watch-queue ioctls are unknown to pipes).
//!
//! The process table maps a pid to the part of the task the kernel needs
//! (`TaskShared`: its fd table and keyring anchors), never to the process
//! itself; `Kernel::spawn`, which makes processes, lives in process.rs.

use crate::task::TaskShared;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use watchq_core::lsm::{parse_policy, AuditLog, Audited, PolicySlot};
use watchq_core::text::ParseError;
use watchq_core::{AllocFaults, Cred, Permissive, Policy, PostSummary, Result, UserStruct};
use watchq_sources::devices::{BlockDevices, DeviceList, UsbBus};
use watchq_sources::keys::{KeyConfig, KeyStore, Serial};
use watchq_sources::mount::MountNamespace;

/// Build-time options and tunables of the emulated kernel.
#[derive(Clone, Copy, Debug)]
pub struct KernelConfig {
    /// `CONFIG_WATCH_QUEUE`: notification pipes exist.
    pub watch_queue: bool,
    /// The key subsystem's tunables. `keys.notifications` is
    /// `CONFIG_KEY_NOTIFICATIONS`, which needs `watch_queue` too.
    pub keys: KeyConfig,
    /// `CONFIG_DEVICE_NOTIFICATIONS` (the pipe-era series): `watch_devices`
    /// exists (else ENOSYS) and block and USB events are posted.
    pub device_notifications: bool,
}

impl Default for KernelConfig {
    /// A kernel with notification support, like the oracle's.
    fn default() -> Self {
        KernelConfig {
            watch_queue: true,
            keys: KeyConfig::default(),
            device_notifications: true,
        }
    }
}

/// The emulated kernel.
pub struct Kernel {
    config: KernelConfig,
    audit: Arc<AuditLog>,
    keys: KeyStore,
    devices: DeviceList,
    init_ns: Arc<MountNamespace>,
    block: BlockDevices,
    usb: UsbBus,
    policy: PolicySlot,
    users: Mutex<HashMap<u32, Arc<UserStruct>>>,
    /// Weak: a process lives while something holds it (its handle, a
    /// script, the preload's host); the table only finds it by pid, and a
    /// process leaves it when its last handle goes (its exit).
    processes: Mutex<HashMap<u32, Weak<TaskShared>>>,
    next_pid: AtomicU64,
    next_ino: AtomicU64,
    alloc_faults: Arc<AllocFaults>,
    /// `/proc/sys/fs/pipe-user-pages-soft` and `-hard` (`pipe_user_pages_soft`,
    /// `pipe_user_pages_hard`): 16384 and 0 (none) at boot.
    pipe_user_pages: Mutex<(u64, u64)>,
    /// `/proc/sys/kernel/sysctl_writes_strict` (`sysctl_writes_strict`):
    /// 1 (`SYSCTL_WRITES_STRICT`) at boot; 0 and -1 let a write past the
    /// start of a number sysctl set it.
    writes_strict: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("config", &self.config)
            .field("policy", &self.policy)
            .field("processes", &self.processes.lock().len())
            .finish()
    }
}

impl Kernel {
    /// A kernel with `config`, the permissive policy and no processes.
    pub fn new(mut config: KernelConfig) -> Arc<Self> {
        config.keys.notifications &= config.watch_queue;
        config.device_notifications &= config.watch_queue;
        Arc::new(Kernel {
            config,
            audit: AuditLog::new(1024),
            keys: KeyStore::new(config.keys),
            devices: DeviceList::new(Cred::root()),
            init_ns: MountNamespace::new(Cred::root()),
            block: BlockDevices::new(),
            usb: UsbBus::new(),
            policy: PolicySlot::new(Arc::new(Permissive)),
            users: Mutex::new(HashMap::new()),
            processes: Mutex::new(HashMap::new()),
            next_pid: AtomicU64::new(1),
            next_ino: AtomicU64::new(1),
            alloc_faults: AllocFaults::new(),
            pipe_user_pages: Mutex::new((16384, 0)),
            writes_strict: std::sync::atomic::AtomicI64::new(1),
        })
    }

    /// Fault injection for tests (the real kernel has no such knob):
    /// `alloc_faults().fail_next(n)` makes the next `n` `SET_SIZE` note
    /// allocations of this kernel's notification pipes fail with ENOMEM,
    /// as under memory pressure.
    pub fn alloc_faults(&self) -> &Arc<AllocFaults> {
        &self.alloc_faults
    }

    /// The build options.
    pub fn config(&self) -> KernelConfig {
        self.config
    }

    /// Every key and keyring.
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// The initial mount namespace (every spawned process starts in it).
    pub fn init_mount_ns(&self) -> &Arc<MountNamespace> {
        &self.init_ns
    }

    /// The global device watch list.
    pub fn devices(&self) -> &DeviceList {
        &self.devices
    }

    /// Adds block device `name` as `major:minor`; returns its `dev_t`.
    ///
    /// # Errors
    /// As `BlockDevices::add`.
    pub fn block_add(&self, name: &str, major: u32, minor: u32) -> Result<u64> {
        self.block.add(name, major, minor)
    }

    /// Removes block device `dev`.
    ///
    /// # Errors
    /// `ENODEV`.
    pub fn block_remove(&self, dev: u64) -> Result<()> {
        self.block.remove(dev)
    }

    /// The `dev_t` of block device `name`.
    pub fn block_dev(&self, name: &str) -> Option<u64> {
        self.block.by_name(name)
    }

    /// A request on block device `dev` fails with error `kind` at `sector`.
    ///
    /// # Errors
    /// `ENODEV` (no such device), `EINVAL` (no such kind).
    pub fn block_error(&self, dev: u64, kind: u8, sector: u64) -> Result<PostSummary> {
        self.block
            .inject_error(&self.devices, &*self.policy(), dev, kind, sector)
    }

    /// A USB device is plugged in.
    ///
    /// # Errors
    /// `EINVAL` (empty name), `EEXIST`.
    pub fn usb_add(&self, name: &str) -> Result<PostSummary> {
        self.usb.add(&self.devices, &*self.policy(), name)
    }

    /// A USB device is unplugged.
    ///
    /// # Errors
    /// `ENODEV`.
    pub fn usb_remove(&self, name: &str) -> Result<PostSummary> {
        self.usb.remove(&self.devices, &*self.policy(), name)
    }

    /// A USB device is reset.
    ///
    /// # Errors
    /// `ENODEV`.
    pub fn usb_reset(&self, name: &str) -> Result<PostSummary> {
        self.usb.reset(&self.devices, &*self.policy(), name)
    }

    /// A USB device reports an error.
    ///
    /// # Errors
    /// `ENODEV`.
    pub fn usb_error(&self, name: &str, code: u32) -> Result<PostSummary> {
        self.usb.error(&self.devices, &*self.policy(), name, code)
    }

    /// Runs the key garbage collector now, with every process's keyrings
    /// as roots: dead keys (invalidated, or revoked or expired `gc_delay`
    /// ago) are unlinked silently, and every key nothing reaches any more
    /// is destroyed, its watchers getting their removal records. Mirrors
    /// one run of `key_garbage_collector()`, to its fixpoint.
    /// The roots are read once the collector has begun, so a key call
    /// that installs its keyrings before they are read is seen through
    /// them, and one that does after is seen through its in-flight mark
    /// ([`watchq_sources::keys::KeyStore::begin_call`]).
    pub fn key_gc(&self) {
        self.keys.gc_with(|| {
            self.tasks()
                .iter()
                .flat_map(|t| t.anchors.lock().roots().collect::<Vec<_>>())
                .collect()
        });
    }

    /// The live processes' shared state (taken out of the table's lock).
    fn tasks(&self) -> Vec<Arc<TaskShared>> {
        self.processes
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// `sysctl_writes_strict`: 1 strict, 0 warn, -1 legacy.
    pub fn writes_strict(&self) -> i64 {
        // Relaxed: a setting read on its own, nothing published with it.
        self.writes_strict
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets `sysctl_writes_strict` (-1, 0 or 1, checked by the caller).
    pub fn set_writes_strict(&self, v: i64) {
        // Relaxed: as in `writes_strict`.
        self.writes_strict
            .store(v, std::sync::atomic::Ordering::Relaxed);
    }

    /// `pipe-user-pages-soft` and `pipe-user-pages-hard`, in pages (0: no limit).
    pub fn pipe_user_pages(&self) -> (u64, u64) {
        *self.pipe_user_pages.lock()
    }

    /// Sets `pipe-user-pages-soft` and `pipe-user-pages-hard` (a write to
    /// their /proc/sys/fs files).
    pub fn set_pipe_user_pages(&self, soft: u64, hard: u64) {
        *self.pipe_user_pages.lock() = (soft, hard);
    }

    /// How many references processes' credentials hold to each key (their
    /// thread, process and session keyrings and authority): the part of a
    /// key's `usage` that `/proc/keys` shows beyond its links.
    pub(crate) fn anchor_refs(&self) -> std::collections::HashMap<Serial, usize> {
        let mut refs = std::collections::HashMap::new();
        for t in &self.tasks() {
            for s in t.anchors.lock().roots() {
                *refs.entry(s).or_insert(0) += 1;
            }
        }
        refs
    }

    /// Runs the collector if a key call queued it (`flush_work(&key_gc_work)`).
    /// The kernel's collector is a work item that runs a moment after the
    /// call that made garbage returned (after an RCU grace period: the
    /// oracle never saw it in the read right after the call, nor in an
    /// immediate second read, nor 20 ms later, but always by the time a
    /// poll or a blocking read had waited); the emulated one runs when a
    /// consumer waits: a blocking read or a poll that finds nothing lets
    /// it run first, a non-blocking read that finds nothing returns EAGAIN
    /// and lets it run before the next call; also the scenario step `gc`
    /// and the clock's `advance`.
    pub fn flush_key_gc(&self) {
        if self.keys.gc_pending() {
            self.key_gc();
        }
    }

    /// Moves the key subsystem's clock forward and collects what expired
    /// or was revoked long enough ago.
    pub fn advance_clock(&self, secs: u64) {
        self.keys.advance_clock(secs);
        self.key_gc();
    }

    /// The security policy in force, with denials going to the audit log.
    /// One call returns one policy: a post that took it keeps it even if
    /// the policy is swapped meanwhile.
    pub fn policy(&self) -> Arc<dyn Policy> {
        Arc::new(Audited {
            inner: self.policy.load(),
            log: self.audit.clone(),
        })
    }

    /// Replaces the security policy; posts already walking keep the old one.
    pub fn set_policy(&self, policy: Arc<dyn Policy>) {
        self.policy.store(policy);
    }

    /// Loads a policy file (see `watchq_core::lsm::parse_policy`) and puts it in force.
    ///
    /// # Errors
    /// The file's first bad line.
    pub fn load_policy(&self, text: &str) -> std::result::Result<(), ParseError> {
        self.set_policy(parse_policy(text)?);
        Ok(())
    }

    /// Every denial the policies made (hook, subject, object, reason).
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The accounting record of `uid`, shared by all its processes.
    /// Mirrors `find_user()`/`alloc_uid()`.
    pub fn user(&self, uid: u32) -> Arc<UserStruct> {
        self.users
            .lock()
            .entry(uid)
            .or_insert_with(|| UserStruct::new(uid))
            .clone()
    }

    /// Credentials for `uid`/`gid`, charged to that user's account; uid 0
    /// gets every capability.
    pub fn cred(&self, uid: u32, gid: u32) -> Cred {
        Cred::new(uid, gid, self.user(uid))
    }

    /// The pids of the live processes, ascending (as `ls /proc` lists them).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.processes.lock().keys().copied().collect();
        pids.sort_unstable();
        pids
    }

    /// The fd table and keyrings of process `pid`, while it lives (what
    /// `/proc/PID/fd` reaches).
    pub(crate) fn task(&self, pid: u32) -> Option<Arc<TaskShared>> {
        self.processes.lock().get(&pid).and_then(Weak::upgrade)
    }

    pub(crate) fn register(&self, pid: u32, task: &Arc<TaskShared>) {
        self.processes.lock().insert(pid, Arc::downgrade(task));
    }

    pub(crate) fn unregister(&self, pid: u32) {
        self.processes.lock().remove(&pid);
        // Its keyrings lose a reference: the collector's, later.
        self.keys.schedule_gc();
    }

    pub(crate) fn alloc_pid(&self) -> u32 {
        // Relaxed: a unique counter.
        self.next_pid.fetch_add(1, Ordering::Relaxed) as u32
    }

    /// A fresh inode number (pipes, memfds), for display and identity.
    pub(crate) fn alloc_ino(&self) -> u64 {
        // Relaxed: a unique counter.
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }
}

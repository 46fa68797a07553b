//! The system calls, grouped by subsystem as the kernel's own files are.
//!
//! Each module is one syscall family: a public trait with the calls,
//! implemented for [`Process`](crate::Process), whose handlers decode the
//! arguments, call the object they act on ([`OpenFile`](crate::OpenFile),
//! the pipe, the fd table, [`watchq_core::WatchQueue`], the key store, the
//! mount namespace, the device list) and return its errno. The objects
//! live in their own modules, beside this one. `use watchq_kernel::prelude::*`
//! brings every trait into scope, so a call reads as `process.pipe2(flags)`.
//!
//! | module | trait | kernel |
//! |---|---|---|
//! | [`pipe`] | [`PipeCalls`](pipe::PipeCalls): `pipe`, `pipe2` | fs/pipe.c |
//! | [`read_write`] | [`ReadWriteCalls`](read_write::ReadWriteCalls): `read`, `readv`, `write`, `writev`, `lseek` | fs/read_write.c |
//! | [`splice`] | [`SpliceCalls`](splice::SpliceCalls): `splice`, `tee`, `vmsplice`, `sendfile` | fs/splice.c |
//! | [`file`](mod@file) | [`FileCalls`](file::FileCalls): `open`, `close`, `dup*`, `fcntl`, `ioctl`, `memfd_create` | fs/open.c, fs/file.c, fs/fcntl.c, fs/ioctl.c, mm/memfd.c |
//! | [`poll`] | [`PollCalls`](poll::PollCalls): `poll` | fs/select.c |
//! | [`watch_queue`] | [`WatchQueueCalls`](watch_queue::WatchQueueCalls): the queue behind an fd, `SET_SIZE`/`SET_FILTER`/`FIONREAD` typed, statistics | kernel/watch_queue.c |
//! | [`keys`] | [`KeyCalls`](keys::KeyCalls): `add_key`, `request_key`, `keyctl_*` | security/keys/keyctl.c |
//! | [`procfs`] | [`ProcCalls`](procfs::ProcCalls): `open`, `read`, `write` of `/proc/keys`, `/proc/key-users`, `/proc/sys/kernel/keys/*` | fs/proc/proc_sysctl.c, kernel/sysctl.c, security/keys/proc.c |
//! | [`mount`] | [`MountCalls`](mount::MountCalls): `watch_mount`, `watch_sb` | fs/mount_notify.c (2020) |
//! | [`devices`] | [`DeviceCalls`](devices::DeviceCalls): `watch_devices` | drivers/base/watch.c (2020) |
//! | [`dev_watch_queue`] | [`DevWatchQueueCalls`](dev_watch_queue::DevWatchQueueCalls): `mmap` of `/dev/watch_queue` (its open, ioctl and poll go through the generic calls) | drivers/misc/watch_queue.c (2019) |

pub mod dev_watch_queue;
pub mod devices;
pub mod file;
pub mod keys;
pub mod mount;
pub mod pipe;
pub mod poll;
pub mod procfs;
pub mod read_write;
pub mod splice;
mod uaccess;
pub mod watch_queue;

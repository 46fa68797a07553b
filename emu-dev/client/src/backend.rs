//! The system calls a consumer makes, on the real kernel ([`RealKernel`]).

use watchq_core::Errno;

/// The system calls a [`NotificationQueue`](crate::NotificationQueue) needs.
pub trait Backend {
    /// `pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK)`: the read and write ends.
    fn notification_pipe(&self) -> Result<[i32; 2], Errno>;
    /// `ioctl(fd, IOC_WATCH_QUEUE_SET_SIZE, notes)`.
    fn set_size(&self, fd: i32, notes: u64) -> Result<(), Errno>;
    /// `ioctl(fd, IOC_WATCH_QUEUE_SET_FILTER, blob)` (None: remove the filter).
    fn set_filter(&self, fd: i32, blob: Option<&[u8]>) -> Result<(), Errno>;
    /// `keyctl(KEYCTL_WATCH_KEY, key, fd, tag)`.
    fn watch_key(&self, key: i32, fd: i32, tag: i32) -> Result<(), Errno>;
    /// `watch_mount(AT_FDCWD, path, 0, fd, tag)` (never merged: the real
    /// kernel has no such call, ENOSYS).
    fn watch_mount(&self, path: &str, fd: i32, tag: i32) -> Result<(), Errno>;
    /// `watch_sb(AT_FDCWD, path, 0, fd, tag)` (never merged: ENOSYS).
    fn watch_sb(&self, path: &str, fd: i32, tag: i32) -> Result<(), Errno>;
    /// `watch_devices(fd, tag, 0)` (never merged: ENOSYS).
    fn watch_devices(&self, fd: i32, tag: i32) -> Result<(), Errno>;
    /// `read(fd, buf)`.
    fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize, Errno>;
    /// `poll` for POLLIN: true if readable within `timeout_ms` (-1: forever).
    fn poll_in(&self, fd: i32, timeout_ms: i32) -> Result<bool, Errno>;
    /// `close(fd)`.
    fn close(&self, fd: i32);
}

/// The real kernel's system calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealKernel;

/// The real system calls. The only unsafe code of this crate: each call
/// passes pointers to live, correctly sized buffers owned by the caller.
#[allow(unsafe_code)]
mod real {
    use super::{Backend, RealKernel};
    use watchq_core::uapi::{
        IOC_WATCH_QUEUE_SET_FILTER, IOC_WATCH_QUEUE_SET_SIZE, O_NONBLOCK, O_NOTIFICATION_PIPE,
    };
    use watchq_core::Errno;

    /// `KEYCTL_WATCH_KEY`.
    const KEYCTL_WATCH_KEY: libc::c_long = 32;

    /// The calling thread's errno (EIO for a number watchq does not know,
    /// which none of these calls returns).
    fn errno() -> Errno {
        std::io::Error::last_os_error()
            .raw_os_error()
            .and_then(Errno::from_raw)
            .unwrap_or(Errno::EIO)
    }

    fn check(r: libc::c_long) -> Result<libc::c_long, Errno> {
        if r < 0 {
            Err(errno())
        } else {
            Ok(r)
        }
    }

    impl Backend for RealKernel {
        fn notification_pipe(&self) -> Result<[i32; 2], Errno> {
            let mut fds = [-1i32; 2];
            // SAFETY: `fds` is a live array of two ints, as pipe2 writes.
            let r =
                unsafe { libc::pipe2(fds.as_mut_ptr(), (O_NOTIFICATION_PIPE | O_NONBLOCK) as i32) };
            check(r.into()).map(|_| fds)
        }
        fn set_size(&self, fd: i32, notes: u64) -> Result<(), Errno> {
            // SAFETY: this ioctl takes its argument by value.
            let r =
                unsafe { libc::ioctl(fd, IOC_WATCH_QUEUE_SET_SIZE as _, notes as libc::c_ulong) };
            check(r.into()).map(drop)
        }
        fn set_filter(&self, fd: i32, blob: Option<&[u8]>) -> Result<(), Errno> {
            let p = blob.map_or(std::ptr::null(), <[u8]>::as_ptr);
            // SAFETY: `p` is null (remove the filter) or points at the
            // caller's whole filter blob, which the kernel only reads.
            let r = unsafe { libc::ioctl(fd, IOC_WATCH_QUEUE_SET_FILTER as _, p) };
            check(r.into()).map(drop)
        }
        fn watch_key(&self, key: i32, fd: i32, tag: i32) -> Result<(), Errno> {
            // SAFETY: keyctl(KEYCTL_WATCH_KEY) takes three integers.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_keyctl,
                    KEYCTL_WATCH_KEY,
                    libc::c_long::from(key),
                    libc::c_long::from(fd),
                    libc::c_long::from(tag),
                )
            };
            check(r).map(drop)
        }
        fn watch_mount(&self, _: &str, _: i32, _: i32) -> Result<(), Errno> {
            Err(Errno::ENOSYS)
        }
        fn watch_sb(&self, _: &str, _: i32, _: i32) -> Result<(), Errno> {
            Err(Errno::ENOSYS)
        }
        fn watch_devices(&self, _: i32, _: i32) -> Result<(), Errno> {
            Err(Errno::ENOSYS)
        }
        fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
            // SAFETY: `buf` is live and writable for its whole length.
            let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            check(r as libc::c_long).map(|n| n as usize)
        }
        fn poll_in(&self, fd: i32, timeout_ms: i32) -> Result<bool, Errno> {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
            check(r.into()).map(|n| n > 0)
        }
        fn close(&self, fd: i32) {
            // SAFETY: the fd is the queue's own, closed once (on drop).
            unsafe { libc::close(fd) };
        }
    }
}

//! watch_mount(2) and watch_sb(2), the mount and superblock watches of the
//! 2020 notification series (never merged).
//!
//! Mirrors fs/mount_notify.c (`watch_mount()`) and the superblock half of
//! the series (`watch_sb()`, fs/super.c): resolve the path as
//! `user_path_at()` does, find the queue, then watch or unwatch in the
//! process's mount namespace (`watchq_sources::mount`).

use super::watch_queue::WatchQueueCalls;
use crate::file::FileKind;
use crate::process::Process;
use std::sync::Arc;
use watchq_core::{Errno, Result, WatchQueue};
use watchq_sources::mount::{AT_EMPTY_PATH, AT_NO_AUTOMOUNT};

/// `AT_FDCWD`: a path relative to the working directory (always `/`).
pub const AT_FDCWD: i32 = -100;

/// The mount and superblock watch calls. Mirrors fs/mount_notify.c (and,
/// for `watch_sb`, fs/super.c) of the 2020 series.
pub trait MountCalls {
    /// `watch_mount(dfd, path, at_flags, fd, tag)`: the queue behind `fd`
    /// watches the mount `path` is on and everything below it; tag −1
    /// removes the watch.
    ///
    /// # Errors
    /// In the 2020 patches' order: `EINVAL` (tag outside −1..=255, at_flags
    /// other than AT_NO_AUTOMOUNT|AT_EMPTY_PATH), path errors (`EBADF`,
    /// `ENOENT`, `ENOTDIR`), `EINVAL` (not a notification queue), the
    /// policy's `watch_mount`, `EBUSY`, `EAGAIN`, `EBADSLT`.
    fn watch_mount(&self, dfd: i32, path: &str, at_flags: u32, fd: i32, tag: i32) -> Result<()>;

    /// `watch_sb(dfd, path, at_flags, fd, tag)`: the queue behind `fd`
    /// watches the superblock `path` is on; tag −1 removes the watch.
    ///
    /// # Errors
    /// As [`MountCalls::watch_mount`], with the policy's `watch_sb`.
    fn watch_sb(&self, dfd: i32, path: &str, at_flags: u32, fd: i32, tag: i32) -> Result<()>;
}

impl MountCalls for Process {
    fn watch_mount(&self, dfd: i32, path: &str, at_flags: u32, fd: i32, tag: i32) -> Result<()> {
        let (p, q) = watch_path_args(self, dfd, path, at_flags, fd, tag)?;
        let policy = self.kernel().policy();
        self.mount_ns()
            .watch_mount(&p, &q, tag, &self.cred(), &*policy, self.soft_nofile())
    }

    fn watch_sb(&self, dfd: i32, path: &str, at_flags: u32, fd: i32, tag: i32) -> Result<()> {
        let (p, q) = watch_path_args(self, dfd, path, at_flags, fd, tag)?;
        let policy = self.kernel().policy();
        self.mount_ns()
            .watch_sb(&p, &q, tag, &self.cred(), &*policy, self.soft_nofile())
    }
}

/// Resolves `dfd` + `path` as `user_path_at()` does, to an absolute path
/// (the working directory is `/`).
fn path_at(p: &Process, dfd: i32, path: &str, at_flags: u32) -> Result<String> {
    let base = if dfd == AT_FDCWD {
        "/".to_string()
    } else {
        match &p.file(dfd)?.kind {
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
    p: &Process,
    dfd: i32,
    path: &str,
    at_flags: u32,
    fd: i32,
    tag: i32,
) -> Result<(String, Arc<WatchQueue>)> {
    if !(-1..=255).contains(&tag) || at_flags & !(AT_NO_AUTOMOUNT | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let abs = path_at(p, dfd, path, at_flags)?;
    p.mount_ns().resolve(&abs)?;
    let q = p.watch_queue(fd)?;
    Ok((abs, q))
}

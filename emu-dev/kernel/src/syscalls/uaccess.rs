//! User memory as the system calls see it: the limits and copies several
//! call families share (`include/linux/uaccess.h`, lib/iov_iter.c).
//!
//! User memory is modelled by slices: a call that reads or writes user
//! memory takes the accessible bytes at the user pointer (`None`: nothing
//! mapped there), and the raw argument where the kernel uses the number
//! itself (`ioctl`).

use watchq_core::uapi::PAGE_SIZE;
use watchq_core::{Errno, Result};

/// `MAX_RW_COUNT`: the most one read or write moves.
pub(super) const MAX_RW_COUNT: usize = (i32::MAX as usize) & !(PAGE_SIZE - 1);

/// `UIO_MAXIOV`: the most vectors one call takes.
pub(super) const UIO_MAXIOV: usize = 1024;

/// Copies `src` across the vectors in order (`copy_to_iter()`).
pub(super) fn scatter(mut src: &[u8], iov: &mut [&mut [u8]]) {
    for v in iov.iter_mut() {
        let n = v.len().min(src.len());
        v[..n].copy_from_slice(&src[..n]);
        src = &src[n..];
    }
}

/// `get_user()` of an `int`.
///
/// # Errors
/// EFAULT: fewer than 4 accessible bytes.
pub(super) fn read_user_int(mem: Option<&[u8]>) -> Result<i32> {
    let b = mem.and_then(|m| m.get(..4)).ok_or(Errno::EFAULT)?;
    Ok(i32::from_le_bytes(b.try_into().expect("4 bytes")))
}

/// `put_user()` of an `int`.
///
/// # Errors
/// EFAULT: fewer than 4 accessible bytes.
pub(super) fn write_user_int(mem: Option<&mut [u8]>, v: i32) -> Result<()> {
    let b = mem.and_then(|m| m.get_mut(..4)).ok_or(Errno::EFAULT)?;
    b.copy_from_slice(&v.to_le_bytes());
    Ok(())
}

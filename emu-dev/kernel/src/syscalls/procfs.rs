//! The key subsystem's `/proc` files: `/proc/keys`, `/proc/key-users` and
//! the sysctls under `/proc/sys/kernel/keys/`.
//!
//! Mirrors fs/proc/proc_sysctl.c (`proc_sys_permission()`,
//! `proc_sys_call_handler()`, `test_perm()`), kernel/sysctl.c
//! (`proc_dointvec_minmax()`: `__do_proc_dointvec()`, `proc_get_long()`,
//! `do_proc_dointvec_minmax_conv()`, strict writes), security/keys/sysctl.c
//! (the table: names, modes, ranges) and security/keys/proc.c (the two
//! listings, in [`watchq_sources::keys`]); also fs/pipe.c's
//! `pipe-user-pages-soft` and `-hard` (`proc_doulongvec_minmax()`), which
//! bound the notification pipes' page accounting. A program under `watchq exec`
//! reaches these through the preload's `open`; nothing here touches the
//! machine's own files.

use crate::process::Process;
use watchq_core::uapi::{O_ACCMODE_MASK, O_RDWR, O_WRONLY};
use watchq_core::{Errno, Result};
use watchq_sources::keys::{KeyCtx, KeySysctl};

/// `O_CREAT`.
const O_CREAT: u32 = 0o100;
/// `O_EXCL`.
const O_EXCL: u32 = 0o200;
/// `O_DIRECTORY`.
const O_DIRECTORY: u32 = 0o200000;

/// `MAY_WRITE`, `MAY_READ` as `test_perm()` sees them.
const MAY_WRITE: u32 = 2;
const MAY_READ: u32 = 4;

/// A `/proc` file of the key subsystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcNode {
    /// `/proc/keys` (0444).
    Keys,
    /// `/proc/key-users` (0444).
    KeyUsers,
    /// `/proc/sys/kernel/keys/NAME` (0644, root's): one of
    /// [`KeySysctl::RANGES`], by index.
    Sysctl(usize),
    /// `/proc/sys/fs/pipe-user-pages-soft` (false) or `-hard` (true):
    /// 0644, `proc_doulongvec_minmax` without bounds. The notification
    /// pipes' page accounting (`SET_SIZE`'s EPERM) follows them.
    PipeUserPages(bool),
    /// `/proc/sys/kernel/sysctl_writes_strict` (0644, `proc_dointvec_minmax`
    /// in `-1..=1`): how a write past the start of these sysctls is taken.
    WritesStrict,
}

impl ProcNode {
    /// The node an absolute, normalised path names, if it is one of these.
    pub fn lookup(path: &str) -> Option<ProcNode> {
        match path {
            "/proc/keys" => Some(ProcNode::Keys),
            "/proc/key-users" => Some(ProcNode::KeyUsers),
            "/proc/sys/fs/pipe-user-pages-soft" => Some(ProcNode::PipeUserPages(false)),
            "/proc/sys/fs/pipe-user-pages-hard" => Some(ProcNode::PipeUserPages(true)),
            "/proc/sys/kernel/sysctl_writes_strict" => Some(ProcNode::WritesStrict),
            _ => {
                let name = path.strip_prefix("/proc/sys/kernel/keys/")?;
                KeySysctl::RANGES
                    .iter()
                    .position(|(n, _, _)| *n == name)
                    .map(ProcNode::Sysctl)
            }
        }
    }

    /// The file's mode bits.
    pub fn mode(self) -> u32 {
        if self.is_sysctl() {
            0o644
        } else {
            0o444
        }
    }

    /// Is it a sysctl (each read and write is one handler call)?
    pub fn is_sysctl(self) -> bool {
        matches!(
            self,
            ProcNode::Sysctl(_) | ProcNode::PipeUserPages(_) | ProcNode::WritesStrict
        )
    }
}

/// `test_perm()`: root gets the owner bits, the root group the group bits,
/// everyone else the other bits (CAP_DAC_OVERRIDE does not apply).
fn test_perm(p: &Process, mode: u32, op: u32) -> Result<()> {
    let cred = p.cred();
    let bits = if cred.uid == 0 {
        mode >> 6
    } else if cred.gid == 0 || cred.groups.contains(&0) {
        mode >> 3
    } else {
        mode
    };
    if op & !bits & (MAY_READ | MAY_WRITE) == 0 {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

fn may(flags: u32) -> u32 {
    match flags & O_ACCMODE_MASK {
        O_WRONLY => MAY_WRITE,
        O_RDWR => MAY_READ | MAY_WRITE,
        _ => MAY_READ,
    }
}

/// `TMPBUFLEN` of kernel/sysctl.c.
const TMPBUFLEN: usize = 22;

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `proc_get_long()` with `proc_wspace_sep` (and `strtoul_lenient()`, base
/// 0): the value, whether it was negative, and the bytes it took.
fn get_long(buf: &[u8]) -> Result<(u64, bool, usize)> {
    if buf.is_empty() {
        return Err(Errno::EINVAL);
    }
    let tmp = &buf[..buf.len().min(TMPBUFLEN - 1)];
    let mut i = 0;
    let neg = tmp[0] == b'-' && buf.len() > 1;
    if neg {
        i = 1;
    }
    if !tmp.get(i).is_some_and(u8::is_ascii_digit) {
        return Err(Errno::EINVAL);
    }
    // _parse_integer_fixup_radix(): 0x and a hex digit is hex, a leading 0 octal.
    let mut base = 10;
    if tmp[i] == b'0' {
        if tmp
            .get(i + 1)
            .is_some_and(|c| c.eq_ignore_ascii_case(&b'x'))
            && tmp.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            base = 16;
            i += 2;
        } else {
            base = 8;
        }
    }
    let mut v: u64 = 0;
    while let Some(d) = tmp.get(i).and_then(|&c| (c as char).to_digit(base)) {
        v = v
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or(Errno::EINVAL)?;
        i += 1;
    }
    if i == TMPBUFLEN - 1 {
        return Err(Errno::EINVAL);
    }
    if i < buf.len() && !matches!(tmp.get(i), Some(b' ' | b'\t' | b'\n')) {
        return Err(Errno::EINVAL);
    }
    Ok((v, neg, i))
}

/// The number one sysctl write holds (`__do_proc_dointvec()` and
/// `__do_proc_doulongvec_minmax()` alike): None when the write is ignored
/// (empty, or past the start with `sysctl_writes_strict` 1, `strict`:
/// then it is taken whole; at 0 or -1 a write anywhere is read as a
/// value, `proc_first_pos_non_zero_ignore()`), else the value, its sign
/// and how many bytes the handler takes (leading and trailing whitespace
/// included).
///
/// # Errors
/// EINVAL: no number, trailing garbage, overflow.
fn parse_write(
    data: &[u8],
    pos: u64,
    strict: bool,
) -> Result<std::result::Result<(u64, bool, usize), usize>> {
    if data.is_empty() {
        return Ok(Err(0));
    }
    if pos != 0 && strict {
        return Ok(Err(data.len()));
    }
    let mut left = &data[..data.len().min(4095)];
    let skip = |s: &[u8]| s.iter().take_while(|&&b| is_space(b)).count();
    left = &left[skip(left)..];
    if left.is_empty() {
        return Err(Errno::EINVAL);
    }
    let (v, neg, n) = get_long(left)?;
    left = &left[n..];
    left = &left[skip(left)..];
    Ok(Ok((v, neg, data.len() - left.len())))
}

/// One write to an `int` sysctl bounded by `min..=max` at position `pos`
/// (`__do_proc_dointvec()` with `do_proc_dointvec_minmax_conv()`; a write
/// past the start ignored when `strict`, `sysctl_writes_strict` 1): the
/// new value (None when it is left alone) and the bytes taken.
///
/// # Errors
/// EINVAL: no number, trailing garbage, out of range.
pub fn dointvec_minmax_write(
    data: &[u8],
    pos: u64,
    min: i64,
    max: i64,
    strict: bool,
) -> Result<(Option<i64>, usize)> {
    let (v, neg, taken) = match parse_write(data, pos, strict)? {
        Err(taken) => return Ok((None, taken)),
        Ok(p) => p,
    };
    let val = if neg {
        if v > i32::MAX as u64 + 1 {
            return Err(Errno::EINVAL);
        }
        -(v as i64)
    } else {
        if v > i32::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        v as i64
    };
    if val < min || val > max {
        return Err(Errno::EINVAL);
    }
    Ok((Some(val), taken))
}

/// One write to an `unsigned long` sysctl without bounds at `pos`
/// (`__do_proc_doulongvec_minmax()`): as [`dointvec_minmax_write`], but
/// any sign is EINVAL and the value may be any `unsigned long`.
///
/// # Errors
/// EINVAL: no number, a sign, trailing garbage, overflow.
pub fn doulongvec_write(data: &[u8], pos: u64, strict: bool) -> Result<(Option<u64>, usize)> {
    match parse_write(data, pos, strict)? {
        Err(taken) => Ok((None, taken)),
        Ok((_, true, _)) => Err(Errno::EINVAL),
        Ok((v, false, taken)) => Ok((Some(v), taken)),
    }
}

/// One read of an `int` sysctl holding `v` at position `pos`, `count`
/// bytes at most (`__do_proc_dointvec()`): the number and a newline if
/// they fit, nothing past the start.
pub fn dointvec_read(v: i64, pos: u64, count: usize) -> Vec<u8> {
    line_read(v.to_string(), pos, count)
}

/// [`dointvec_read`] of an `unsigned long`.
fn dointvec_read_u64(v: u64, pos: u64, count: usize) -> Vec<u8> {
    line_read(v.to_string(), pos, count)
}

fn line_read(text: String, pos: u64, count: usize) -> Vec<u8> {
    if pos != 0 || count == 0 {
        return Vec::new();
    }
    let mut s = text.into_bytes();
    s.truncate(count);
    if s.len() < count {
        s.push(b'\n');
    }
    s
}

/// The key subsystem's `/proc` files, as process calls.
pub trait ProcCalls {
    /// `open()` of `node` with `flags`: the permission check only
    /// (`proc_sys_permission()` for a sysctl, the DAC check otherwise).
    ///
    /// # Errors
    /// - `EEXIST`: O_CREAT|O_EXCL.
    /// - `ENOTDIR`: O_DIRECTORY.
    /// - `EACCES`: the mode does not grant the access (a sysctl write as
    ///   anyone but root; `/proc/keys` written as anyone but root).
    fn proc_open(&self, node: ProcNode, flags: u32) -> Result<()>;

    /// `read()` of `node` at `pos`, `count` bytes at most. A listing is
    /// generated whole (the caller keeps its position).
    ///
    /// # Errors
    /// EPERM: a sysctl the caller may no longer read (`proc_sys_call_handler()`).
    fn proc_read(&self, node: ProcNode, pos: u64, count: usize) -> Result<Vec<u8>>;

    /// `write()` of `data` to `node` at `pos`: the bytes taken.
    ///
    /// # Errors
    /// - `EPERM`: not root (checked again at each write).
    /// - `EINVAL`: not a number in the file's range.
    /// - `EIO`: `/proc/keys` and `/proc/key-users` have no write method.
    fn proc_write(&self, node: ProcNode, pos: u64, data: &[u8]) -> Result<usize>;
}

impl ProcCalls for Process {
    fn proc_open(&self, node: ProcNode, flags: u32) -> Result<()> {
        if flags & O_CREAT != 0 && flags & O_EXCL != 0 {
            return Err(Errno::EEXIST);
        }
        if flags & O_DIRECTORY != 0 {
            return Err(Errno::ENOTDIR);
        }
        let op = may(flags);
        match node {
            ProcNode::Sysctl(_) => test_perm(self, node.mode(), op),
            // generic_permission(): CAP_DAC_OVERRIDE lets root write.
            _ if self.cred().uid == 0 => Ok(()),
            _ => test_perm(self, node.mode(), op),
        }
    }

    fn proc_read(&self, node: ProcNode, pos: u64, count: usize) -> Result<Vec<u8>> {
        match node {
            ProcNode::Sysctl(i) => {
                test_perm(self, node.mode(), MAY_READ).map_err(|_| Errno::EPERM)?;
                let sys = self.kernel().keys().sysctl();
                let v = sys.get(KeySysctl::RANGES[i].0).unwrap_or(0);
                Ok(dointvec_read(v, pos, count))
            }
            ProcNode::PipeUserPages(hard) => {
                test_perm(self, node.mode(), MAY_READ).map_err(|_| Errno::EPERM)?;
                let (soft, h) = self.kernel().pipe_user_pages();
                let v = if hard { h } else { soft };
                Ok(dointvec_read_u64(v, pos, count))
            }
            ProcNode::WritesStrict => {
                test_perm(self, node.mode(), MAY_READ).map_err(|_| Errno::EPERM)?;
                Ok(dointvec_read(self.kernel().writes_strict(), pos, count))
            }
            ProcNode::Keys => {
                let refs = self.kernel().anchor_refs();
                let text = with_ctx(self, |ctx| {
                    self.kernel()
                        .keys()
                        .proc_keys(ctx, &|s| refs.get(&s).copied().unwrap_or(0))
                });
                Ok(window(text.into_bytes(), pos, count))
            }
            ProcNode::KeyUsers => Ok(window(
                self.kernel().keys().proc_key_users().into_bytes(),
                pos,
                count,
            )),
        }
    }

    fn proc_write(&self, node: ProcNode, pos: u64, data: &[u8]) -> Result<usize> {
        let strict = self.kernel().writes_strict() == 1;
        if node == ProcNode::WritesStrict {
            test_perm(self, node.mode(), MAY_WRITE).map_err(|_| Errno::EPERM)?;
            let (v, n) = dointvec_minmax_write(data, pos, -1, 1, strict)?;
            if let Some(v) = v {
                self.kernel().set_writes_strict(v);
            }
            return Ok(n);
        }
        if let ProcNode::PipeUserPages(hard) = node {
            test_perm(self, node.mode(), MAY_WRITE).map_err(|_| Errno::EPERM)?;
            let (v, n) = doulongvec_write(data, pos, strict)?;
            if let Some(v) = v {
                let (soft, h) = self.kernel().pipe_user_pages();
                let (soft, h) = if hard { (soft, v) } else { (v, h) };
                self.kernel().set_pipe_user_pages(soft, h);
            }
            return Ok(n);
        }
        let ProcNode::Sysctl(i) = node else {
            return Err(Errno::EIO);
        };
        test_perm(self, node.mode(), MAY_WRITE).map_err(|_| Errno::EPERM)?;
        let (name, min, max) = KeySysctl::RANGES[i];
        let (v, n) = dointvec_minmax_write(data, pos, min, max, strict)?;
        if let Some(v) = v {
            self.kernel().keys().set_sysctl(|s| {
                s.set(name, v);
            });
            // A shorter gc_delay may make dead keys due now.
            if name == "gc_delay" {
                self.kernel().keys().schedule_gc();
            }
        }
        Ok(n)
    }
}

/// `count` bytes of `text` from `pos` (a seq_file read).
fn window(text: Vec<u8>, pos: u64, count: usize) -> Vec<u8> {
    let start = (pos.min(text.len() as u64)) as usize;
    let end = start.saturating_add(count).min(text.len());
    text[start..end].to_vec()
}

fn with_ctx<R>(p: &Process, f: impl FnOnce(&KeyCtx<'_>) -> R) -> R {
    let cred = p.cred();
    let policy = p.kernel().policy();
    let mut anchors = p.anchors();
    let ctx = KeyCtx {
        cred: &cred,
        anchors: &mut anchors,
        policy: &*policy,
        deadline: None,
        interrupted: None,
        waits: None,
    };
    f(&ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procfs_dointvec_minmax_write_parses_as_the_kernel() {
        let w = |s: &str, pos| dointvec_minmax_write(s.as_bytes(), pos, 0, i32::MAX as i64, true);
        assert_eq!(w("1\n", 0), Ok((Some(1), 2)));
        assert_eq!(w("1", 0), Ok((Some(1), 1)));
        assert_eq!(w("  42  ", 0), Ok((Some(42), 6)));
        assert_eq!(w("0x1f", 0), Ok((Some(31), 4)));
        assert_eq!(w("010", 0), Ok((Some(8), 3)));
        assert_eq!(w("09", 0), Err(Errno::EINVAL));
        assert_eq!(w("1 2", 0), Ok((Some(1), 2)));
        assert_eq!(w("-1", 0), Err(Errno::EINVAL));
        assert_eq!(w("-0", 0), Ok((Some(0), 2)));
        assert_eq!(w("+1", 0), Err(Errno::EINVAL));
        assert_eq!(w("abc", 0), Err(Errno::EINVAL));
        assert_eq!(w("5x", 0), Err(Errno::EINVAL));
        assert_eq!(w(" \n", 0), Err(Errno::EINVAL));
        assert_eq!(w("2147483648", 0), Err(Errno::EINVAL));
        assert_eq!(w("2147483647", 0), Ok((Some(i32::MAX as i64), 10)));
        assert_eq!(w("123456789012345678901", 0), Err(Errno::EINVAL));
        assert_eq!(w("", 0), Ok((None, 0)));
        assert_eq!(w("7\n", 3), Ok((None, 2)));
        // sysctl_writes_strict 0 or -1: a write past the start is a value.
        let lax = dointvec_minmax_write(b"7\n", 3, 0, i32::MAX as i64, false);
        assert_eq!(lax, Ok((Some(7), 2)));
        let m = |s: &str| dointvec_minmax_write(s.as_bytes(), 0, 1, i32::MAX as i64, true);
        assert_eq!(m("0"), Err(Errno::EINVAL));
        assert_eq!(m("1"), Ok((Some(1), 1)));
    }

    #[test]
    fn procfs_doulongvec_write_refuses_any_sign() {
        let w = |s: &str| doulongvec_write(s.as_bytes(), 0, true);
        assert_eq!(w("20\n"), Ok((Some(20), 3)));
        assert_eq!(w("-0"), Err(Errno::EINVAL));
        assert_eq!(w("-1"), Err(Errno::EINVAL));
        assert_eq!(w("18446744073709551615"), Ok((Some(u64::MAX), 20)));
        assert_eq!(w("18446744073709551616"), Err(Errno::EINVAL));
        assert_eq!(doulongvec_write(b"5", 1, true), Ok((None, 1)));
        assert_eq!(doulongvec_write(b"5", 1, false), Ok((Some(5), 1)));
    }

    #[test]
    fn procfs_dointvec_read_is_one_line_then_eof() {
        assert_eq!(dointvec_read(300, 0, 100), b"300\n");
        assert_eq!(dointvec_read(300, 0, 3), b"300");
        assert_eq!(dointvec_read(300, 0, 1), b"3");
        assert_eq!(dointvec_read(300, 1, 100), b"");
    }
}

//! Fuzz harness body over the emulated kernel's system calls, shared by
//! the cargo-fuzz target `kernel_syscalls` in `fuzz/` and by the stable
//! corpus replay in watchq-tests (feature `fuzzing`).
//!
//! It takes arbitrary bytes, must never panic, and asserts what the crate
//! promises: errnos, whole records and statistics that add up.

use crate::prelude::*;
use crate::{Kernel, KernelConfig, Process};
use std::sync::Arc;
use watchq_core::uapi::*;
use watchq_core::{Errno, Notification};
use watchq_sources::keys::KEY_SPEC_SESSION_KEYRING;
use watchq_sources::mount::AT_EMPTY_PATH;

/// Reads the input a field at a time; past its end every field is zero.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    /// A descriptor: mostly small (the ones in use), sometimes anything.
    fn fd(&mut self) -> i32 {
        match self.u8() {
            b @ 0..=239 => i32::from(b % 16),
            _ => self.u32() as i32,
        }
    }

    /// One of `choices` or, for the last selector values, anything.
    fn pick(&mut self, choices: &[u64]) -> u64 {
        let i = usize::from(self.u8());
        choices
            .get(i % (choices.len() + 1))
            .copied()
            .unwrap_or_else(|| self.u64())
    }

    /// Up to `max` bytes.
    fn take(&mut self, max: usize) -> &[u8] {
        let n = usize::from(self.u8()).min(max).min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Errnos the emulated syscalls may return when fuzzed with arbitrary
/// arguments; anything else (EINTR from a call that must not block, EIO,
/// …) is a bug. Shared with the syscall-sequence proptest.
pub const SYSCALL_ERRNOS: &[Errno] = &[
    Errno::EINVAL,
    Errno::EBADF,
    Errno::EFAULT,
    Errno::ENOTTY,
    Errno::ENODEV,
    Errno::EBUSY,
    Errno::EAGAIN,
    Errno::ENOBUFS,
    Errno::EXDEV,
    Errno::EMFILE,
    Errno::ENFILE,
    Errno::EPIPE,
    Errno::ESPIPE,
    Errno::EPERM,
    Errno::EISDIR,
    Errno::EBADSLT,
    Errno::ENOENT,
    Errno::ENOTDIR,
    Errno::ENOKEY,
    Errno::EKEYREVOKED,
    Errno::EKEYEXPIRED,
    Errno::EACCES,
    Errno::EOPNOTSUPP,
    Errno::ENOMEM,
    Errno::EEXIST,
    Errno::EDQUOT,
    Errno::ENOSYS,
];

fn check<T>(what: &str, r: watchq_core::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(SYSCALL_ERRNOS.contains(&e), "{what}: unexpected {e:?}");
            None
        }
    }
}

/// A sequence of arbitrary syscalls with arbitrary arguments on one
/// emulated kernel: pipes, sizes, filters, any ioctl, reads of any size,
/// writes, closes, dups, forks, key operations that post, key, device,
/// mount and superblock watches, `/dev/watch_queue` and its mmap, device
/// events. Reads return whole well-formed records; afterwards every queue's
/// statistics add up (`posted == read + lost + queued + discarded`).
pub fn kernel_syscalls(data: &[u8]) {
    let k = Kernel::new(KernelConfig::default());
    let mut procs: Vec<Arc<Process>> = vec![k.spawn(1000, 1000)];
    let mut keys = vec![KEY_SPEC_SESSION_KEYRING];
    let mut queues = Vec::new();
    let mut b = Bytes(data);
    let mut buf = vec![0u8; 1024];
    while !b.is_empty() {
        let p = procs[usize::from(b.u8()) % procs.len()].clone();
        let key = keys[usize::from(b.u8()) % keys.len()];
        match b.u8() % 20 {
            0 => {
                let flags = b.pick(&[
                    u64::from(O_NOTIFICATION_PIPE),
                    u64::from(O_NOTIFICATION_PIPE | O_NONBLOCK),
                    u64::from(O_NONBLOCK),
                ]) as u32;
                if let Some([r, _]) = check("pipe2", p.pipe2(flags)) {
                    queues.extend(p.watch_queue(r).ok());
                }
            }
            1 => {
                let (fd, n) = (b.fd(), b.pick(&[1, 4, 32, 33, 512]));
                check("SET_SIZE", p.set_queue_size(fd, n));
            }
            2 => {
                let fd = b.fd();
                let blob = b.take(200).to_vec();
                check("SET_FILTER", p.set_queue_filter(fd, Some(&blob)));
            }
            3 => {
                let (fd, arg) = (b.fd(), b.u64());
                let cmd = b.pick(&[
                    IOC_WATCH_QUEUE_SET_SIZE,
                    IOC_WATCH_QUEUE_SET_FILTER,
                    FIONREAD,
                ]);
                let mut mem = b.take(64).to_vec();
                let mem = (!mem.is_empty()).then_some(&mut mem[..]);
                check("ioctl", p.ioctl(fd, cmd, arg, mem));
            }
            4 => {
                let (fd, len) = (b.fd(), usize::from(b.u8()) * 4);
                // Never block: only non-blocking files are read.
                let nonblock = p.file(fd).is_ok_and(|f| f.flags() & O_NONBLOCK != 0);
                if nonblock {
                    if let Some(n) = check("read", p.read(fd, &mut buf[..len])) {
                        if p.watch_queue(fd).is_ok() {
                            assert!(
                                Notification::decode_all(&buf[..n]).is_ok(),
                                "read returned a partial record"
                            );
                        }
                    }
                }
            }
            5 => {
                let fd = b.fd();
                let bytes = b.take(32).to_vec();
                if p.watch_queue(fd).is_ok() {
                    check("write", p.write(fd, &bytes));
                }
            }
            6 => {
                check("close", p.close(b.fd()));
            }
            7 => {
                check("dup", p.dup(b.fd()));
            }
            8 if procs.len() < 4 => procs.push(p.fork()),
            9 => {
                let desc = format!("k{}", b.u8());
                if let Some(s) = check("add_key", p.add_key("user", Some(&desc), b"x", key)) {
                    keys.push(s);
                }
            }
            10 => {
                check("update", p.keyctl_update(key, b.take(8)));
            }
            11 => {
                let r = match b.u8() % 6 {
                    0 => p.keyctl_revoke(key),
                    1 => p.keyctl_unlink(key, KEY_SPEC_SESSION_KEYRING),
                    2 => p.keyctl_invalidate(key),
                    3 => p.keyctl_clear(key),
                    // Expiry and the key clock, to their ends.
                    4 => p.keyctl_set_timeout(key, b.u32()),
                    _ => {
                        k.advance_clock(b.u64());
                        Ok(())
                    }
                };
                check("keyctl", r);
            }
            12 => {
                let (fd, tag) = (b.fd(), b.u32() as i32 % 300);
                check("watch_key", p.keyctl_watch_key(key, fd, tag));
            }
            13 => {
                let (fd, tag, flags) = (b.fd(), b.u32() as i32 % 300, u32::from(b.u8() % 3));
                let r = p.watch_devices(fd, tag, flags);
                check("watch_devices", r);
            }
            14 | 15 => {
                let (fd, tag) = (b.fd(), b.u32() as i32 % 300);
                let flags = b.pick(&[0, u64::from(AT_EMPTY_PATH)]) as u32;
                let path = ["/", "", "/nope", "rel"][usize::from(b.u8()) % 4];
                let r = if b.u8() % 2 == 0 {
                    p.watch_mount(-100, path, flags, fd, tag)
                } else {
                    p.watch_sb(-100, path, flags, fd, tag)
                };
                check("watch_mount/sb", r);
            }
            16 => {
                if let Some(fd) = check("open", p.open("/dev/watch_queue", O_RDWR)) {
                    queues.extend(p.watch_queue(fd).ok());
                }
            }
            17 => {
                let (fd, len, off) = (
                    b.fd(),
                    usize::from(b.u8()) * 64,
                    u64::from(b.u8() % 2) * 4096,
                );
                check("mmap", p.mmap_watch_queue(fd, len, true, off));
            }
            18 => {
                let name = format!("sd{}", b.u8() % 4);
                let _ = match b.u8() % 4 {
                    0 => k.usb_add(&name).map(drop),
                    1 => k.usb_error(&name, b.u32()).map(drop),
                    2 => k.block_add(&name, 8, u32::from(b.u8())).map(drop),
                    _ => match k.block_dev(&name) {
                        Some(dev) => k.block_error(dev, b.u8() % 12, b.u64()).map(drop),
                        None => Ok(()),
                    },
                };
            }
            _ => {
                let q = (!queues.is_empty())
                    .then(|| queues[usize::from(b.u8()) % queues.len()].clone());
                if let Some(q) = q {
                    q.post(&Notification::key(b.u8() % 8, b.u32(), 0));
                }
            }
        }
    }
    for q in &queues {
        let s = q.stats();
        assert_eq!(s.posted, s.read + s.lost + s.queued + s.discarded, "{s:?}");
    }
}

/// Arbitrary bytes as the kernel server's wire protocol sees them: every
/// request or reply that decodes encodes back to the same value (decode
/// after encode is the identity), and the bytes sent as they are to a
/// running server, after a hello, get an answer or a closed connection,
/// never a panic, while the server goes on serving everyone else.
pub fn kernel_wire(data: &[u8]) {
    use crate::remote::Remote;
    use crate::server::{Server, ServerOptions};
    use crate::wire::{Reply, Request};
    use std::sync::OnceLock;
    if let Ok(r) = Request::decode(data) {
        assert_eq!(Request::decode(&r.encode()), Ok(r));
    }
    if let Ok(r) = Reply::decode(data) {
        assert_eq!(Reply::decode(&r.encode()), Ok(r));
    }
    static SERVER: OnceLock<Server> = OnceLock::new();
    let s = SERVER.get_or_init(|| {
        Server::start(
            Kernel::new(KernelConfig::default()),
            ServerOptions::default(),
        )
        .expect("a server")
    });
    let c = Remote::connect(s.path(), false).expect("the server answers a hello");
    let _ = c.call_raw(data);
    let other = Remote::connect(s.path(), false).expect("and still serves");
    assert!(other.rlimit(1024, 4096).is_ok());
    drop((c, other));
    // The input is over when the server has finished with it: its threads'
    // work (and its coverage) belongs to this input, not the next, and
    // what they allocated for the connections is freed, so libFuzzer's
    // count of mallocs and frees balances and it scans for leaks only
    // after an input that left the kernel holding more.
    while s.connections() > 0 {
        std::thread::yield_now();
    }
}

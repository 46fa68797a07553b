//! The syscall surface of notification pipes (spec §1.6–§1.8, §1.11;
//! oracle FINDINGS §A and §E), each errno in the kernel's order, compared
//! with ordinary pipes where they differ.

use watchq_core::uapi::*;
use watchq_core::Errno;
use watchq_kernel::prelude::*;
use watchq_kernel::{Kernel, KernelConfig, PollFd};
use watchq_tests::{key_record, Fixture};

/// What the oracle's probe asks poll() for.
const ALL_EV: u16 = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;

fn kernel() -> std::sync::Arc<Kernel> {
    Kernel::new(KernelConfig::default())
}

#[test]
fn pipe2_flag_mask() {
    let p = kernel().spawn(0, 0);
    for ok in [
        O_NOTIFICATION_PIPE,
        O_NOTIFICATION_PIPE | O_NONBLOCK | O_CLOEXEC,
        O_NOTIFICATION_PIPE | O_DIRECT,
        0,
    ] {
        assert!(p.pipe2(ok).is_ok(), "{ok:#x}");
    }
    for bad in [
        O_NOTIFICATION_PIPE | O_APPEND,
        O_NOTIFICATION_PIPE | O_RDWR,
        O_ASYNC,
    ] {
        assert_eq!(p.pipe2(bad), Err(Errno::EINVAL), "{bad:#x}");
    }
}

#[test]
fn pipe2_without_config_watch_queue_is_enopkg() {
    let k = Kernel::new(KernelConfig {
        watch_queue: false,
        ..Default::default()
    });
    let p = k.spawn(0, 0);
    assert_eq!(p.pipe2(O_NOTIFICATION_PIPE), Err(Errno::ENOPKG));
    // The flag mask is checked first.
    assert_eq!(p.pipe2(O_NOTIFICATION_PIPE | O_APPEND), Err(Errno::EINVAL));
    // Ordinary pipes still work, and the queue ioctls are unknown to them.
    let [r, _w] = p.pipe().unwrap();
    assert_eq!(p.set_queue_size(r, 1), Err(Errno::ENOTTY));
    assert_eq!(p.set_queue_filter(r, None), Err(Errno::ENOTTY));
}

#[test]
fn pipe2_emfile_before_half_install() {
    let p = kernel().spawn(0, 0);
    p.set_rlimit_nofile(4, 4).unwrap();
    // fds 0..2 are the console; one free slot is not enough.
    assert_eq!(p.pipe2(O_NOTIFICATION_PIPE), Err(Errno::EMFILE));
    assert_eq!(p.fds().len(), 3);
}

#[test]
fn fresh_pipe_state() {
    let p = kernel().spawn(0, 0);
    let [r, w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    assert_eq!(p.fcntl(r, F_GETFL, 0), Ok(0));
    assert_eq!(p.fcntl(w, F_GETFL, 0), Ok(1));
    assert_eq!(p.fcntl(r, F_GETPIPE_SZ, 0), Ok(65536));
    assert_eq!(p.fionread(r), Ok(0));
    let mut fds = [PollFd::new(r, ALL_EV), PollFd::new(w, ALL_EV)];
    assert_eq!(p.poll(&mut fds, 0), Ok(1));
    assert_eq!(fds[0].revents, 0);
    assert_eq!(fds[1].revents, POLLOUT | POLLWRNORM);
    let [r2, w2] = p.pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK).unwrap();
    assert_eq!(p.fcntl(r2, F_GETFL, 0), Ok(0x800));
    assert_eq!(p.fcntl(w2, F_GETFL, 0), Ok(0x801));
    let [r3, w3] = p.pipe2(O_NOTIFICATION_PIPE | O_DIRECT).unwrap();
    assert_eq!(p.fcntl(r3, F_GETFL, 0), Ok(0));
    assert_eq!(p.fcntl(w3, F_GETFL, 0), Ok(0x4001));
    let [r4, _] = p.pipe2(O_NOTIFICATION_PIPE | O_CLOEXEC).unwrap();
    assert_eq!(p.fcntl(r4, F_GETFD, 0), Ok(1));
}

#[test]
fn set_size_range_truncation_and_ebusy_order() {
    let p = kernel().spawn(0, 0);
    for bad in [0u64, 513, 600, 1024, u64::MAX, 0x1_0000_0000] {
        let [r, _] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
        assert_eq!(p.set_queue_size(r, bad), Err(Errno::EINVAL), "{bad:#x}");
    }
    for ok in [1u64, 512, 0x1_0000_0001, 0x1_0000_0200] {
        let [r, _] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
        assert_eq!(p.set_queue_size(r, ok), Ok(()), "{ok:#x}");
    }
    // A failure does not stick; the second success is EBUSY, before the
    // range check, through either end.
    let [r, w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    assert_eq!(p.set_queue_size(w, 513), Err(Errno::EINVAL));
    assert_eq!(p.set_queue_size(w, 1), Ok(()));
    for n in [1, 0, 600] {
        assert_eq!(p.set_queue_size(r, n), Err(Errno::EBUSY));
        assert_eq!(p.set_queue_size(w, n), Err(Errno::EBUSY));
    }
}

#[test]
fn set_size_pipe_size_and_capacity() {
    let p = kernel().spawn(0, 0);
    for (n, sz, cap) in [
        (1u64, 4096, 32usize),
        (2, 4096, 32),
        (31, 4096, 32),
        (32, 4096, 32),
        (33, 8192, 64),
        (64, 8192, 64),
        (65, 12288, 96),
        (256, 32768, 256),
        (257, 36864, 288),
        (511, 65536, 512),
        (512, 65536, 512),
    ] {
        let [r, w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
        p.set_queue_size(r, n).unwrap();
        assert_eq!(p.fcntl(w, F_GETPIPE_SZ, 0), Ok(sz), "n={n}");
        let q = p.watch_queue(r).unwrap();
        assert_eq!(q.capacity(), cap, "n={n}");
        assert!(q.ring_slots().is_power_of_two() && q.ring_slots() >= cap);
    }
}

#[test]
fn capacity_measured_by_posting() {
    for (n, cap) in [(1u64, 32usize), (33, 64), (65, 96)] {
        let f = Fixture::new(Some(n));
        for _ in 0..200 {
            f.post(NOTIFY_KEY_UPDATED, 0);
        }
        let got = f.read(1 << 16).unwrap();
        assert_eq!(got.len(), cap * 16, "n={n}");
    }
}

#[test]
fn setpipe_sz_is_ebusy_on_notification_pipes_only() {
    let p = kernel().spawn(0, 0);
    let [r, w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    assert_eq!(p.fcntl(r, F_SETPIPE_SZ, 8192), Err(Errno::EBUSY));
    assert_eq!(p.fcntl(w, F_SETPIPE_SZ, 8192), Err(Errno::EBUSY));
    p.set_queue_size(r, 1).unwrap();
    assert_eq!(p.fcntl(w, F_SETPIPE_SZ, 8192), Err(Errno::EBUSY));
    let [or, _ow] = p.pipe().unwrap();
    assert_eq!(p.fcntl(or, F_SETPIPE_SZ, 5000), Ok(8192));
    assert_eq!(p.fcntl(or, F_GETPIPE_SZ, 0), Ok(8192));
    assert_eq!(p.fcntl(or, F_SETPIPE_SZ, 0), Ok(4096));
    assert_eq!(
        p.fcntl(or, F_SETPIPE_SZ, (1u64 << 31) + 1),
        Err(Errno::EINVAL)
    );
    // Not a pipe: EBADF, as pipe_fcntl() says.
    let m = p.memfd_create("x", 0).unwrap();
    assert_eq!(p.fcntl(m, F_GETPIPE_SZ, 0), Err(Errno::EBADF));
    // Over pipe-max-size without CAP_SYS_RESOURCE.
    let user = p.kernel().spawn(1000, 1000);
    let [ur, _uw] = user.pipe().unwrap();
    assert_eq!(user.fcntl(ur, F_SETPIPE_SZ, 2 << 20), Err(Errno::EPERM));
    assert_eq!(p.fcntl(or, F_SETPIPE_SZ, 2 << 20), Ok(2 << 20));
}

#[test]
fn ioctl_errnos_by_file_kind() {
    let p = kernel().spawn(0, 0);
    let [or, ow] = p.pipe().unwrap();
    for fd in [or, ow] {
        assert_eq!(p.set_queue_size(fd, 1), Err(Errno::ENODEV));
        assert_eq!(p.set_queue_filter(fd, None), Err(Errno::ENODEV));
    }
    let m = p.memfd_create("m", 0).unwrap();
    assert_eq!(p.set_queue_size(m, 1), Err(Errno::ENOTTY));
    assert_eq!(p.set_queue_size(0, 1), Err(Errno::ENOTTY));
    assert_eq!(p.set_queue_size(99, 1), Err(Errno::EBADF));
    let [r, _w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    // _IO('W',0x62) and _IOW('W',0x60,int) are unknown.
    assert_eq!(p.ioctl(r, 0x5762, 0, None), Err(Errno::ENOTTY));
    assert_eq!(p.ioctl(r, 0x4004_5760, 1, None), Err(Errno::ENOTTY));
    // FIONREAD needs somewhere to write.
    assert_eq!(p.ioctl(r, FIONREAD, 0, None), Err(Errno::EFAULT));
    let mut short = [0u8; 3];
    assert_eq!(
        p.ioctl(r, FIONREAD, 1, Some(&mut short)),
        Err(Errno::EFAULT)
    );
    // SET_FILTER may come before SET_SIZE; a non-NULL pointer to nothing is EFAULT.
    assert_eq!(p.set_queue_filter(r, None), Ok(()));
    assert_eq!(
        p.ioctl(r, IOC_WATCH_QUEUE_SET_FILTER, 1, None),
        Err(Errno::EFAULT)
    );
}

#[test]
fn generic_ioctls() {
    let p = kernel().spawn(0, 0);
    let [r, _w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    p.ioctl(r, FIOCLEX, 0, None).unwrap();
    assert_eq!(p.fcntl(r, F_GETFD, 0), Ok(1));
    p.ioctl(r, FIONCLEX, 0, None).unwrap();
    assert_eq!(p.fcntl(r, F_GETFD, 0), Ok(0));
    let mut one = 1i32.to_le_bytes();
    p.ioctl(r, FIONBIO, 1, Some(&mut one)).unwrap();
    assert_eq!(p.fcntl(r, F_GETFL, 0), Ok(0x800));
    let mut buf = [0u8; 64];
    assert_eq!(p.read(r, &mut buf), Err(Errno::EAGAIN));
}

#[test]
fn write_is_exdev_first_and_ebadf_on_read_end() {
    let f = Fixture::new(Some(1));
    let p = &f.proc_;
    f.post(NOTIFY_KEY_UPDATED, 0);
    assert_eq!(p.write(f.wfd, b"x"), Err(Errno::EXDEV));
    assert_eq!(p.write(f.wfd, b""), Err(Errno::EXDEV));
    assert_eq!(p.writev(f.wfd, &[b"a", b"b"]), Err(Errno::EXDEV));
    assert_eq!(p.write(f.rfd, b"x"), Err(Errno::EBADF));
    // With no reader left, still EXDEV (the 2023 order), not EPIPE.
    let dupw = p.dup(f.wfd).unwrap();
    let [r2, w2] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    p.close(r2).unwrap();
    assert_eq!(p.write(w2, b""), Err(Errno::EXDEV));
    // A /proc/self/fd reopen is the same pipe.
    let re = p
        .open(&format!("/proc/self/fd/{}", f.wfd), O_WRONLY)
        .unwrap();
    assert_eq!(p.write(re, b"x"), Err(Errno::EXDEV));
    assert_eq!(p.set_queue_size(re, 1), Err(Errno::EBUSY));
    let _ = dupw;
    // The queued record is intact.
    assert_eq!(f.read(4096).unwrap(), key_record(NOTIFY_KEY_UPDATED, 0));
}

#[test]
fn splice_tee_vmsplice_sendfile_table() {
    let f = Fixture::new(Some(1));
    let p = &f.proc_;
    f.post(NOTIFY_KEY_UPDATED, 0);
    let [or, ow] = p.pipe().unwrap();
    assert_eq!(p.write(ow, b"hello"), Ok(5));
    let m = p.memfd_create("file", 0).unwrap();
    assert_eq!(p.write(m, b"data"), Ok(4));
    assert_eq!(p.lseek(m, 0, SEEK_SET), Ok(0));

    assert_eq!(p.splice(f.rfd, None, ow, None, 16, 0), Err(Errno::EINVAL));
    assert_eq!(p.splice(or, None, f.wfd, None, 5, 0), Err(Errno::EXDEV));
    assert_eq!(p.splice(f.rfd, None, m, None, 16, 0), Err(Errno::EINVAL));
    assert_eq!(p.splice(m, None, f.wfd, None, 4, 0), Err(Errno::EINVAL));
    assert_eq!(p.tee(f.rfd, ow, 16, 0), Err(Errno::EINVAL));
    assert_eq!(p.tee(or, f.wfd, 16, 0), Err(Errno::EINVAL));
    let mut buf = [0u8; 16];
    assert_eq!(p.vmsplice(f.rfd, &mut [&mut buf[..]], 0), Err(Errno::EBADF));
    assert_eq!(p.vmsplice(f.wfd, &mut [&mut buf[..]], 0), Err(Errno::EBADF));
    assert_eq!(p.sendfile(f.wfd, m, None, 4), Err(Errno::EXDEV));
    assert_eq!(p.lseek(f.rfd, 0, SEEK_SET), Err(Errno::ESPIPE));
    // Nothing was consumed anywhere.
    assert_eq!(f.read(4096).unwrap(), key_record(NOTIFY_KEY_UPDATED, 0));
    assert_eq!(p.fionread(or), Ok(5));
    assert_eq!(p.lseek(m, 0, SEEK_CUR), Ok(0));
}

#[test]
fn splice_checks_come_in_kernel_order() {
    let f = Fixture::new(Some(1));
    let p = &f.proc_;
    let [or, ow] = p.pipe().unwrap();
    // len 0 wins over everything, then flags, then bad fds.
    assert_eq!(p.splice(99, None, 98, None, 0, 0xff), Ok(0));
    assert_eq!(p.splice(99, None, 98, None, 1, 0x10), Err(Errno::EINVAL));
    assert_eq!(p.splice(99, None, ow, None, 1, 0), Err(Errno::EBADF));
    // An offset on a pipe side is ESPIPE before the mode check.
    let mut off = 0u64;
    assert_eq!(
        p.splice(or, Some(&mut off), ow, None, 1, 0),
        Err(Errno::ESPIPE)
    );
    // Modes: reading from a write end.
    assert_eq!(p.splice(ow, None, or, None, 1, 0), Err(Errno::EBADF));
    // tee and vmsplice flags.
    assert_eq!(p.tee(or, ow, 1, 0x10), Err(Errno::EINVAL));
    assert_eq!(p.vmsplice(ow, &mut [], 0x10), Err(Errno::EINVAL));
    // vmsplice of nothing on a notification pipe succeeds before the pipe check.
    assert_eq!(p.vmsplice(f.wfd, &mut [], 0), Ok(0));
}

#[test]
fn ordinary_pipe_splice_tee_vmsplice_move_bytes() {
    let p = kernel().spawn(0, 0);
    let [a_r, a_w] = p.pipe().unwrap();
    let [b_r, b_w] = p.pipe().unwrap();
    let [c_r, c_w] = p.pipe().unwrap();
    p.write(a_w, b"abcdef").unwrap();
    assert_eq!(p.tee(a_r, c_w, 3, 0), Ok(3));
    assert_eq!(p.splice(a_r, None, b_w, None, 4, 0), Ok(4));
    let mut buf = [0u8; 16];
    assert_eq!(p.read(b_r, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"abcd");
    assert_eq!(p.read(c_r, &mut buf), Ok(3));
    assert_eq!(&buf[..3], b"abc");
    let mut src = *b"xyz";
    assert_eq!(p.vmsplice(a_w, &mut [&mut src[..]], 0), Ok(3));
    let mut out = [0u8; 8];
    assert_eq!(p.vmsplice(a_r, &mut [&mut out[..]], 0), Ok(5));
    assert_eq!(&out[..5], b"efxyz");
    // file -> pipe -> file
    let m = p.memfd_create("m", 0).unwrap();
    p.write(m, b"12345").unwrap();
    let mut off = 1u64;
    assert_eq!(p.splice(m, Some(&mut off), a_w, None, 3, 0), Ok(3));
    assert_eq!(off, 4);
    let m2 = p.memfd_create("m2", 0).unwrap();
    assert_eq!(p.splice(a_r, None, m2, None, 10, 0), Ok(3));
    p.lseek(m2, 0, SEEK_SET).unwrap();
    assert_eq!(p.read(m2, &mut buf), Ok(3));
    assert_eq!(&buf[..3], b"234");
    // sendfile into an ordinary pipe
    let mut off = 0u64;
    assert_eq!(p.sendfile(a_w, m, Some(&mut off), 5), Ok(5));
    assert_eq!(p.read(a_r, &mut buf), Ok(5));
    // same pipe
    assert_eq!(p.splice(a_r, None, a_w, None, 1, 0), Err(Errno::EINVAL));
}

#[test]
fn read_semantics_of_records() {
    let f = Fixture::new(Some(1));
    let p = &f.proc_;
    let mut empty = [];
    assert_eq!(p.read(f.rfd, &mut empty), Ok(0));
    assert_eq!(f.read(16), Err(Errno::EAGAIN));
    f.post(NOTIFY_KEY_UPDATED, 0);
    f.post(NOTIFY_KEY_LINKED, 7);
    assert_eq!(p.read(f.rfd, &mut empty), Ok(0));
    assert_eq!(p.fionread(f.rfd), Ok(32));
    for small in [1, 8, 15] {
        assert_eq!(f.read(small), Err(Errno::ENOBUFS));
    }
    assert_eq!(f.read(20).unwrap(), key_record(NOTIFY_KEY_UPDATED, 0));
    assert_eq!(f.read(31).unwrap(), key_record(NOTIFY_KEY_LINKED, 7));
    for _ in 0..3 {
        f.post(NOTIFY_KEY_UPDATED, 0);
    }
    assert_eq!(f.read(32).unwrap().len(), 32);
    assert_eq!(f.read(32).unwrap().len(), 16);
    // readv splits one record across two vectors.
    f.post(NOTIFY_KEY_UPDATED, 0);
    let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
    assert_eq!(p.readv(f.rfd, &mut [&mut a[..], &mut b[..]]), Ok(16));
    assert_eq!([a, b].concat(), key_record(NOTIFY_KEY_UPDATED, 0));
}

#[test]
fn poll_and_eof_after_write_end_closes() {
    let f = Fixture::new(Some(1));
    let p = &f.proc_;
    f.post(NOTIFY_KEY_UPDATED, 0);
    f.post(NOTIFY_KEY_UPDATED, 0);
    let mut fds = [PollFd::new(f.rfd, ALL_EV)];
    p.poll(&mut fds, 0).unwrap();
    assert_eq!(fds[0].revents, POLLIN | POLLRDNORM);
    // Only requested events come back (plus POLLERR and POLLHUP).
    let mut only_in = [PollFd::new(f.rfd, POLLIN)];
    p.poll(&mut only_in, 0).unwrap();
    assert_eq!(only_in[0].revents, POLLIN);
    p.close(f.wfd).unwrap();
    p.poll(&mut fds, 0).unwrap();
    assert_eq!(fds[0].revents, POLLIN | POLLRDNORM | POLLHUP);
    // Records are still posted after the write end is gone.
    f.post(NOTIFY_KEY_REVOKED, 0);
    assert_eq!(f.read(4096).unwrap().len(), 48);
    p.poll(&mut fds, 0).unwrap();
    assert_eq!(fds[0].revents, POLLHUP);
    assert_eq!(f.read(4096).unwrap(), Vec::<u8>::new());
    // New watches and filters still work through the read end.
    assert_eq!(f.watch(f.rfd, 77, 2), Ok(()));
    assert_eq!(p.set_queue_filter(f.rfd, None), Ok(()));
}

#[test]
fn poll_write_end_tracks_max_usage() {
    let f = Fixture::new(Some(1));
    let p = &f.proc_;
    let mut fds = [PollFd::new(f.wfd, ALL_EV)];
    p.poll(&mut fds, 0).unwrap();
    assert_eq!(fds[0].revents, POLLOUT | POLLWRNORM);
    f.post(NOTIFY_KEY_UPDATED, 0);
    assert_eq!(p.poll(&mut fds, 0), Ok(0));
    f.read(4096).unwrap();
    p.poll(&mut fds, 0).unwrap();
    assert_eq!(fds[0].revents, POLLOUT | POLLWRNORM);
    p.close(f.rfd).unwrap();
    p.poll(&mut fds, 0).unwrap();
    assert_eq!(fds[0].revents, POLLOUT | POLLWRNORM | POLLERR);
    let mut bad = [PollFd::new(99, POLLIN), PollFd::new(-1, POLLIN)];
    assert_eq!(p.poll(&mut bad, 0), Ok(1));
    assert_eq!((bad[0].revents, bad[1].revents), (POLLNVAL, 0));
}

#[test]
fn blocking_read_wakes_on_post_and_alarm_interrupts() {
    let k = kernel();
    let p = k.spawn(0, 0);
    let [r, _w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    p.set_queue_size(r, 1).unwrap();
    // Alarm: a blocking read of an empty pipe with a writer gets EINTR.
    p.set_alarm(Some(std::time::Duration::from_millis(20)));
    let mut buf = [0u8; 64];
    assert_eq!(p.read(r, &mut buf), Err(Errno::EINTR));
    p.set_alarm(None);
    // A post from another thread wakes the sleeping reader. The alarm
    // bounds the sleep: a broken wake-up fails (EINTR) instead of hanging.
    let q = p.watch_queue(r).unwrap();
    let poster = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        q.post(&watchq_core::Notification::key(1, 5, 0));
    });
    p.set_alarm(Some(std::time::Duration::from_secs(10)));
    assert_eq!(
        p.read(r, &mut buf),
        Ok(16),
        "woken by the post, not the alarm"
    );
    p.set_alarm(None);
    poster.join().unwrap();
    // A blocking poll wakes too.
    let q = p.watch_queue(r).unwrap();
    let poster = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        q.post(&watchq_core::Notification::key(1, 5, 0));
    });
    let mut fds = [PollFd::new(r, POLLIN)];
    assert_eq!(p.poll(&mut fds, 5000), Ok(1));
    poster.join().unwrap();
}

#[test]
fn dup_fork_and_close_share_open_files() {
    let f = Fixture::new(Some(1));
    let p = &f.proc_;
    let d = p.dup(f.rfd).unwrap();
    assert_eq!(p.dup2(f.rfd, 40), Ok(40));
    assert_eq!(p.dup2(f.rfd, f.rfd), Ok(f.rfd));
    assert_eq!(p.dup2(99, 41), Err(Errno::EBADF));
    assert_eq!(p.dup3(f.rfd, f.rfd, 0), Err(Errno::EINVAL));
    assert_eq!(p.dup3(f.rfd, 42, O_NONBLOCK), Err(Errno::EINVAL));
    assert_eq!(p.dup3(f.rfd, 42, O_CLOEXEC), Ok(42));
    assert_eq!(p.fcntl(42, F_GETFD, 0), Ok(1));
    assert_eq!(p.dup3(f.rfd, 5000, 0), Err(Errno::EBADF));
    let child = p.fork();
    // Closing every fd in the parent leaves the child's files open: the
    // queue survives and keeps its watch.
    for fd in [f.rfd, f.wfd, d, 40, 42] {
        p.close(fd).unwrap();
    }
    assert_eq!(p.close(f.rfd), Err(Errno::EBADF));
    f.post(NOTIFY_KEY_UPDATED, 0);
    let mut buf = [0u8; 64];
    assert_eq!(child.read(f.rfd, &mut buf), Ok(16));
    // exec closes the close-on-exec copy only.
    child.exec();
    assert_eq!(child.fcntl(42, F_GETFD, 0), Err(Errno::EBADF));
    assert_eq!(child.fcntl(40, F_GETFD, 0), Ok(0));
}

#[test]
fn closing_the_last_file_detaches_watches_without_removal_records() {
    let f = Fixture::new(Some(1));
    let p = &f.proc_;
    let q = p.watch_queue(f.rfd).unwrap();
    f.post(NOTIFY_KEY_UPDATED, 0);
    assert_eq!(f.list.len(), 1);
    assert_eq!(p.cred().user.nr_watches(), 1);
    p.close(f.rfd).unwrap();
    assert_eq!(f.list.len(), 1, "the write end still holds the pipe");
    p.close(f.wfd).unwrap();
    assert_eq!(f.list.len(), 0);
    assert!(q.is_closed());
    assert_eq!(p.cred().user.nr_watches(), 0);
    let s = f.post(NOTIFY_KEY_UPDATED, 0);
    assert_eq!(s.matched, 0);
    let st = q.stats();
    assert_eq!((st.posted, st.read, st.discarded), (1, 0, 1));
    // A new pipe can watch the same object.
    let [r2, _w2] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    assert_eq!(f.watch(r2, watchq_tests::OBJ, 1), Ok(()));
}

#[test]
fn ordinary_pipe_semantics() {
    let p = kernel().spawn(0, 0);
    let [r, w] = p.pipe2(O_NONBLOCK).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(p.read(r, &mut buf), Err(Errno::EAGAIN));
    assert_eq!(p.write(w, b""), Ok(0));
    assert_eq!(p.write(w, b"hello world"), Ok(11));
    assert_eq!(p.fionread(r), Ok(11));
    assert_eq!(p.read(r, &mut buf), Ok(8));
    assert_eq!(p.read(r, &mut buf), Ok(3));
    // Fill 16 pages: the 17th page is EAGAIN, POLLOUT goes away.
    let page = vec![7u8; 4096];
    for _ in 0..16 {
        assert_eq!(p.write(w, &page), Ok(4096));
    }
    assert_eq!(p.write(w, b"x"), Err(Errno::EAGAIN));
    let mut fds = [PollFd::new(w, POLLOUT)];
    assert_eq!(p.poll(&mut fds, 0), Ok(0));
    p.close(r).unwrap();
    assert_eq!(p.write(w, b"x"), Err(Errno::EPIPE));
    // Packet mode: one write, one read; the rest of a packet is discarded.
    let [r, w] = p.pipe2(O_DIRECT | O_NONBLOCK).unwrap();
    p.write(w, b"first").unwrap();
    p.write(w, b"second").unwrap();
    let mut b3 = [0u8; 3];
    assert_eq!(p.read(r, &mut b3), Ok(3));
    assert_eq!(&b3, b"fir");
    let mut b16 = [0u8; 16];
    assert_eq!(p.read(r, &mut b16), Ok(6));
    assert_eq!(&b16[..6], b"second");
    // EOF when the writer is gone.
    p.close(w).unwrap();
    assert_eq!(p.read(r, &mut b16), Ok(0));
    // F_SETFL cannot turn on O_DIRECT on a pipe, but O_NONBLOCK toggles.
    let [r, _w] = p.pipe().unwrap();
    assert_eq!(p.fcntl(r, F_SETFL, O_DIRECT as u64), Err(Errno::EINVAL));
    assert_eq!(p.fcntl(r, F_SETFL, O_NONBLOCK as u64), Ok(0));
    assert_eq!(p.read(r, &mut b16), Err(Errno::EAGAIN));
}

#[test]
fn fcntl_dupfd_and_limits() {
    let p = kernel().spawn(0, 0);
    let [r, _w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    assert_eq!(p.fcntl(r, F_DUPFD, 10), Ok(10));
    assert_eq!(p.fcntl(r, F_DUPFD_CLOEXEC, 10), Ok(11));
    assert_eq!(p.fcntl(11, F_GETFD, 0), Ok(1));
    assert_eq!(p.fcntl(r, F_DUPFD, 1024), Err(Errno::EINVAL));
    assert_eq!(p.fcntl(r, 9999, 0), Err(Errno::EINVAL));
    assert_eq!(p.fcntl(123, F_GETFL, 0), Err(Errno::EBADF));
    assert_eq!(p.set_rlimit_nofile(10, 5), Err(Errno::EINVAL));
    let user = p.kernel().spawn(1000, 1000);
    user.set_rlimit_nofile(8, 16).unwrap();
    assert_eq!(user.set_rlimit_nofile(8, 32), Err(Errno::EPERM));
}

#[test]
fn open_paths() {
    let p = kernel().spawn(0, 0);
    assert_eq!(p.open("/nope", O_RDONLY), Err(Errno::ENOENT));
    assert_eq!(p.open("/", O_WRONLY), Err(Errno::EISDIR));
    assert_eq!(
        p.open("/dev/null", O_RDONLY | O_DIRECTORY),
        Err(Errno::ENOTDIR)
    );
    let d = p.open("/", O_RDONLY | O_DIRECTORY).unwrap();
    let mut b = [0u8; 4];
    assert_eq!(p.read(d, &mut b), Err(Errno::EISDIR));
    assert_eq!(p.set_queue_size(d, 1), Err(Errno::ENOTTY));
    let n = p.open("/dev/null", O_RDWR).unwrap();
    assert_eq!(p.read(n, &mut b), Ok(0));
    assert_eq!(p.write(n, b"abc"), Ok(3));
    assert_eq!(p.open("/proc/self/fd/77", O_RDONLY), Err(Errno::ENOENT));
    let child = p.fork();
    let [r, _w] = child.pipe2(O_NOTIFICATION_PIPE).unwrap();
    let path = format!("/proc/{}/fd/{}", child.pid(), r);
    let mine = p.open(&path, O_RDONLY).unwrap();
    child.set_queue_size(r, 1).unwrap();
    assert_eq!(p.set_queue_size(mine, 1), Err(Errno::EBUSY));
}

/// Dropping every handle frees the whole world: the kernel, its processes
/// (a forked child included), their open notification pipes with unread
/// records, and the keys they watched. A process and its kernel refer to
/// each other, so the process table must not own its processes (it did,
/// and every kernel ever made leaked; LeakSanitizer found it).
#[test]
fn last_handle_gone_frees_kernel_processes_and_queues() {
    use watchq_sources::keys::KEY_SPEC_SESSION_KEYRING;
    let k = kernel();
    let p = k.spawn(1000, 1000);
    let [r, _w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    p.set_queue_size(r, 32).unwrap();
    let ring = p
        .keyctl_get_keyring_id(KEY_SPEC_SESSION_KEYRING, true)
        .unwrap();
    p.keyctl_watch_key(ring, r, 7).unwrap();
    let key = p.add_key("user", Some("a"), b"x", ring).unwrap();
    p.keyctl_update(key, b"y").unwrap();
    let child = p.fork();
    let q = std::sync::Arc::downgrade(&p.watch_queue(r).unwrap());
    assert!(q.upgrade().unwrap().stats().queued > 0);
    let (kernel, pid) = (std::sync::Arc::downgrade(&k), child.pid());
    drop(p);
    assert!(k.pids().contains(&pid), "the child still runs");
    drop(child);
    assert!(!k.pids().contains(&pid), "its last handle gone, it exited");
    assert!(
        q.upgrade().is_none(),
        "last file closed: the queue is freed"
    );
    drop(k);
    assert!(kernel.upgrade().is_none(), "nothing holds the kernel");
}

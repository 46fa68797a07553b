//! The 2019 design's device (spec §2.1–§2.4): `/dev/watch_queue` with its
//! ioctls, mmap, poll and key watches, read through the consumer protocol.

use std::sync::Arc;
use watchq_core::ring::mmap::{Consumer, RingRecord};
use watchq_core::uapi::{self, v2, POLLERR, POLLIN, POLLRDNORM};
use watchq_core::{Errno, WatchQueue};
use watchq_kernel::keys::KEY_SPEC_SESSION_KEYRING;
use watchq_kernel::prelude::*;
use watchq_kernel::{Kernel, KernelConfig, PollFd, Process};

fn setup() -> (Arc<Kernel>, Arc<Process>, i32) {
    let k = Kernel::new(KernelConfig::default());
    let p = k.spawn(0, 0);
    p.keyctl_join_session_keyring(None).unwrap();
    let fd = p.open("/dev/watch_queue", uapi::O_RDWR).unwrap();
    (k, p, fd)
}

fn set_size(p: &Process, fd: i32, pages: u64) -> Result<i64, Errno> {
    p.ioctl(fd, v2::IOC_WATCH_QUEUE_SET_SIZE, pages, None)
}

fn ring_of(p: &Process, fd: i32) -> Arc<WatchQueue> {
    p.mmap_watch_queue(fd, 4096, true, 0).unwrap()
}

fn drain(q: &WatchQueue) -> Vec<RingRecord> {
    let mut c = Consumer::new(q.ring_2019().unwrap().storage().words()).unwrap();
    std::iter::from_fn(|| c.pop().unwrap()).collect()
}

fn poll(p: &Process, fd: i32) -> u16 {
    let mut f = [PollFd::new(fd, POLLIN | POLLRDNORM)];
    p.poll(&mut f, 0).unwrap();
    f[0].revents
}

#[test]
fn dev_open_size_and_errors() {
    let (k, p, fd) = setup();
    for bad in [0u64, 3, 17, 32, u64::MAX] {
        assert_eq!(set_size(&p, fd, bad), Err(Errno::EINVAL), "{bad}");
    }
    // Nothing to map before SET_SIZE.
    assert_eq!(
        p.mmap_watch_queue(fd, 4096, true, 0).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(set_size(&p, fd, 2), Ok(0));
    assert_eq!(set_size(&p, fd, 2), Err(Errno::EBUSY));
    assert_eq!(set_size(&p, fd, 0), Err(Errno::EBUSY));
    assert_eq!(p.ioctl(fd, 0x7303, 0, None), Err(Errno::EOPNOTSUPP));
    assert_eq!(p.ioctl(fd, uapi::FIONREAD, 0, None), Err(Errno::EOPNOTSUPP));
    let mut b = [0u8; 16];
    assert_eq!(p.read(fd, &mut b), Err(Errno::EINVAL));
    assert_eq!(p.write(fd, &b), Err(Errno::EINVAL));
    assert_eq!(p.lseek(fd, 0, 0), Err(Errno::ESPIPE));
    // mmap: shared, offset 0, at most the ring.
    assert!(p.mmap_watch_queue(fd, 8192, true, 0).is_ok());
    assert_eq!(
        p.mmap_watch_queue(fd, 8193, true, 0).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        p.mmap_watch_queue(fd, 4096, false, 0).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        p.mmap_watch_queue(fd, 4096, true, 4096).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        p.mmap_watch_queue(fd, 0, true, 0).err(),
        Some(Errno::EINVAL)
    );
    let [r, _w] = p.pipe2(uapi::O_NOTIFICATION_PIPE).unwrap();
    assert_eq!(
        p.mmap_watch_queue(r, 4096, true, 0).err(),
        Some(Errno::ENODEV)
    );
    assert_eq!(
        p.mmap_watch_queue(99, 4096, true, 0).err(),
        Some(Errno::EBADF)
    );
    // The ring is memfd-backed, sealed.
    let q = ring_of(&p, fd);
    let file = q.ring_2019().unwrap().storage().file().expect("a memfd");
    assert!(file.set_len(4096).is_err(), "sealed against shrinking");
    // Each open is a queue of its own.
    let fd2 = p.open("/dev/watch_queue", uapi::O_RDWR).unwrap();
    assert_eq!(set_size(&p, fd2, 1), Ok(0));
    drop(k);
    // No device without CONFIG_WATCH_QUEUE.
    let off = Kernel::new(KernelConfig {
        watch_queue: false,
        ..Default::default()
    });
    assert_eq!(
        off.spawn(0, 0).open("/dev/watch_queue", uapi::O_RDWR),
        Err(Errno::ENOENT)
    );
}

#[test]
fn dev_filter_uses_the_2019_layout() {
    let (_k, p, fd) = setup();
    let blob = |t, mask| {
        let mut e = uapi::RawWatchNotificationTypeFilter {
            type_: t,
            info_mask: mask,
            ..Default::default()
        };
        e.subtype_filter[0] = 1 << uapi::NOTIFY_KEY_UPDATED;
        let mut b = uapi::filter_blob(&[e]);
        p.ioctl(fd, v2::IOC_WATCH_QUEUE_SET_FILTER, 1, Some(&mut b))
    };
    // 0x8 is a length bit in 2019 (0x1f8), 0x1 (OVERRUN) is not.
    assert_eq!(blob(v2::WATCH_TYPE_KEY_NOTIFY, 0x8), Err(Errno::EINVAL));
    assert_eq!(blob(v2::WATCH_TYPE_KEY_NOTIFY, 0x1), Ok(0));
    assert_eq!(
        p.ioctl(fd, v2::IOC_WATCH_QUEUE_SET_FILTER, 1, None),
        Err(Errno::EFAULT)
    );
    set_size(&p, fd, 1).unwrap();
    let key = p
        .add_key("user", Some("f"), b"x", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    p.keyctl_watch_key(key, fd, 4).unwrap();
    p.keyctl_setperm(key, 0x3f3f_0000).unwrap(); // SETATTR: filtered out
    p.keyctl_update(key, b"y").unwrap(); // UPDATED: passes (type 3)
    let q = ring_of(&p, fd);
    let got = drain(&q);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].type_(), got[0].subtype()),
        (v2::WATCH_TYPE_KEY_NOTIFY, uapi::NOTIFY_KEY_UPDATED)
    );
    // A filter naming the merged KEY id (1, MOUNT in 2019) drops key records.
    assert_eq!(blob(uapi::WATCH_TYPE_KEY_NOTIFY, 0), Ok(0));
    p.keyctl_update(key, b"z").unwrap();
    assert!(drain(&q).is_empty());
}

#[test]
fn dev_key_records_poll_removal_and_the_same_event_in_both_generations() {
    let (_k, p, fd) = setup();
    set_size(&p, fd, 1).unwrap();
    let [pr, _pw] = p
        .pipe2(uapi::O_NOTIFICATION_PIPE | uapi::O_NONBLOCK)
        .unwrap();
    p.set_queue_size(pr, 1).unwrap();
    let key = p
        .add_key("user", Some("k"), b"x", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    p.keyctl_watch_key(key, fd, 5).unwrap();
    p.keyctl_watch_key(key, pr, 5).unwrap();
    assert_eq!(poll(&p, fd), 0);
    p.keyctl_update(key, b"y").unwrap();
    assert_eq!(poll(&p, fd), POLLIN | POLLRDNORM);
    let q = ring_of(&p, fd);
    let got = drain(&q);
    let k = (key as u32).to_le_bytes();
    // 2019: type 3, tag in the top byte of info.
    assert_eq!(
        got[0].bytes,
        [&[3, 0, 0, 1, 16, 0, 0, 5][..], &k, &[0; 4]].concat()
    );
    // Merged: type 1, tag in bits 8..15.
    let mut b = [0u8; 64];
    assert_eq!(p.read(pr, &mut b), Ok(16));
    assert_eq!(
        b[..16],
        [&[1, 0, 0, 1, 16, 5, 0, 0][..], &k, &[0; 4]].concat()
    );
    assert_eq!(poll(&p, fd), 0, "the consumer's tail emptied it");
    // Unwatch: the 8-byte 2019 removal record.
    p.keyctl_watch_key(key, fd, -1).unwrap();
    assert_eq!(drain(&q)[0].bytes, [0, 0, 0, 1, 8, 0, 0, 5]);
    // A consumer that writes a tail beyond head makes poll say POLLERR.
    let words = q.ring_2019().unwrap().storage().words();
    words[v2::TAIL_WORD].store(1_000_000, std::sync::atomic::Ordering::Release);
    assert_eq!(poll(&p, fd), POLLERR);
}

#[test]
fn dev_overflow_marks_overrun_and_close_detaches() {
    let (k, p, fd) = setup();
    set_size(&p, fd, 1).unwrap();
    let key = p
        .add_key("user", Some("o"), b"x", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    p.keyctl_watch_key(key, fd, 1).unwrap();
    for _ in 0..300 {
        p.keyctl_update(key, b"y").unwrap();
    }
    let q = ring_of(&p, fd);
    // 512 slots, 3 for the header, 2 per key record.
    assert_eq!(drain(&q).len(), (512 - 3) / 2);
    p.keyctl_update(key, b"z").unwrap();
    let next = drain(&q);
    assert_eq!(next.len(), 1);
    assert!(
        next[0].overrun(),
        "the record after the losses carries WATCH_INFO_OVERRUN"
    );
    let s = q.stats();
    assert_eq!(s.posted, 301);
    assert_eq!(s.lost, 301 - 255);
    p.close(fd).unwrap();
    assert_eq!(
        k.keys().info(key).unwrap().watches,
        0,
        "closing detaches the watch"
    );
    assert!(q.is_closed());
}

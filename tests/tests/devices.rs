//! The pipe-era device series (spec §3): `watch_devices`, block request
//! errors and USB events, byte for byte in both queue generations.

use std::sync::Arc;
use watchq_core::ring::mmap::Consumer;
use watchq_core::uapi::{self, block, usb, v2};
use watchq_core::{Cred, Errno, Policy};
use watchq_kernel::prelude::*;
use watchq_kernel::{Kernel, KernelConfig, Process};

fn setup() -> (Arc<Kernel>, Arc<Process>, i32) {
    let k = Kernel::new(KernelConfig::default());
    let p = k.spawn(1000, 1000);
    let [r, _w] = p
        .pipe2(uapi::O_NOTIFICATION_PIPE | uapi::O_NONBLOCK)
        .unwrap();
    p.set_queue_size(r, 1).unwrap();
    (k, p, r)
}

fn read_all(p: &Process, fd: i32) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    match p.read(fd, &mut b) {
        Ok(n) => b[..n].to_vec(),
        Err(Errno::EAGAIN) => Vec::new(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn devices_watch_errors_and_removal() {
    let (k, p, fd) = setup();
    assert_eq!(p.watch_devices(fd, 1, 1), Err(Errno::EINVAL));
    assert_eq!(p.watch_devices(fd, 256, 0), Err(Errno::EINVAL));
    assert_eq!(p.watch_devices(fd, -2, 0), Err(Errno::EINVAL));
    assert_eq!(p.watch_devices(99, 1, 0), Err(Errno::EINVAL));
    let [or, _ow] = p.pipe().unwrap();
    assert_eq!(p.watch_devices(or, 1, 0), Err(Errno::EINVAL));
    assert_eq!(p.watch_devices(fd, -1, 0), Err(Errno::EBADSLT));
    assert_eq!(p.watch_devices(fd, 3, 0), Ok(()));
    assert_eq!(p.cred().user.nr_watches(), 1);
    assert_eq!(
        p.watch_devices(fd, 4, 0),
        Err(Errno::EBUSY),
        "one device watch per queue"
    );
    assert_eq!(k.devices().len(), 1);
    assert_eq!(p.watch_devices(fd, -1, 0), Ok(()));
    // Object id 0: the 8-byte removal record, with the tag.
    assert_eq!(read_all(&p, fd), [0, 0, 0, 0, 8, 3, 0, 0]);
    assert_eq!(p.cred().user.nr_watches(), 0);
    assert_eq!(p.watch_devices(fd, -1, 0), Err(Errno::EBADSLT));
    let off = Kernel::new(KernelConfig {
        device_notifications: false,
        ..Default::default()
    });
    assert_eq!(off.spawn(0, 0).watch_devices(fd, 1, 0), Err(Errno::ENOSYS));
}

#[test]
fn devices_block_error_records() {
    let (k, p, fd) = setup();
    p.watch_devices(fd, 3, 0).unwrap();
    let dev = k.block_add("sda", 8, 0).unwrap();
    assert_eq!(dev, 8 << 20);
    assert_eq!(k.block_add("sdb", 8, 0), Err(Errno::EEXIST));
    for kind in block::TIMEOUT..=block::IO {
        k.block_error(dev, kind, 0x1000 + u64::from(kind)).unwrap();
        let got = read_all(&p, fd);
        let mut want = vec![2, 0, 0, kind, 24, 3, 0, 0];
        want.extend_from_slice(&dev.to_le_bytes());
        want.extend_from_slice(&(0x1000 + u64::from(kind)).to_le_bytes());
        assert_eq!(got, want, "kind {kind}");
    }
    assert_eq!(k.block_error(dev, 0, 0).err(), Some(Errno::EINVAL));
    assert_eq!(k.block_error(dev, 11, 0).err(), Some(Errno::EINVAL));
    assert_eq!(k.block_error(dev + 1, 1, 0).err(), Some(Errno::ENODEV));
    k.block_remove(dev).unwrap();
    assert_eq!(k.block_error(dev, 1, 0).err(), Some(Errno::ENODEV));
}

#[test]
fn devices_usb_records() {
    let (k, p, fd) = setup();
    p.watch_devices(fd, 9, 0).unwrap();
    k.usb_add("1-1.2").unwrap();
    assert_eq!(
        read_all(&p, fd),
        [
            &[3, 0, 0, 0, 22, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5][..],
            b"1-1.2"
        ]
        .concat()
    );
    assert_eq!(k.usb_add("1-1.2").err(), Some(Errno::EEXIST));
    k.usb_reset("1-1.2").unwrap();
    k.usb_error("1-1.2", 71).unwrap();
    k.usb_remove("1-1.2").unwrap();
    let got = read_all(&p, fd);
    let subs: Vec<u8> = got.chunks(22).map(|r| r[3]).collect();
    assert_eq!(
        subs,
        [usb::DEVICE_RESET, usb::DEVICE_ERROR, usb::DEVICE_REMOVE]
    );
    assert_eq!(got[22 + 8], 71, "the error code");
    assert_eq!(k.usb_reset("1-1.2").err(), Some(Errno::ENODEV));
    // Names are truncated to 63 bytes: 17 + 63 = 80.
    let long = "9-".to_string() + &"1.".repeat(40);
    k.usb_add(&long).unwrap();
    let got = read_all(&p, fd);
    assert_eq!((got.len(), got[4], got[16]), (80, 80, 63));
    assert_eq!(&got[17..], &long.as_bytes()[..63]);
}

#[test]
fn devices_in_the_2019_generation() {
    let (k, p, _fd) = setup();
    let dfd = p.open("/dev/watch_queue", uapi::O_RDWR).unwrap();
    p.ioctl(dfd, v2::IOC_WATCH_QUEUE_SET_SIZE, 1, None).unwrap();
    p.watch_devices(dfd, 7, 0).unwrap();
    let dev = k.block_add("vda", 254, 1).unwrap();
    k.block_error(dev, block::CRITICAL_MEDIUM, 77).unwrap();
    k.usb_add("2-1").unwrap();
    let q = p.mmap_watch_queue(dfd, 4096, true, 0).unwrap();
    let mut c = Consumer::new(q.ring_2019().unwrap().storage().words()).unwrap();
    let b = c.pop().unwrap().unwrap();
    let mut want = vec![4, 0, 0, block::CRITICAL_MEDIUM, 24, 0, 0, 7];
    want.extend_from_slice(&dev.to_le_bytes());
    want.extend_from_slice(&77u64.to_le_bytes());
    assert_eq!(b.bytes, want);
    let u = c.pop().unwrap().unwrap();
    // 17 + 3 = 20 bytes, padded to 24 (whole 2019 slots).
    assert_eq!(
        u.bytes,
        [
            &[5, 0, 0, 0, 24, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 3][..],
            b"2-1",
            &[0; 4]
        ]
        .concat()
    );
}

#[test]
fn devices_policy_hook_and_system_credentials() {
    struct NoDevices;
    impl Policy for NoDevices {
        fn name(&self) -> &str {
            "no-devices"
        }
        fn watch_devices(&self, _: &Cred) -> watchq_core::lsm::Verdict {
            Err(watchq_core::lsm::Denial::new(Errno::EPERM, "no devices"))
        }
    }
    let (k, p, fd) = setup();
    k.set_policy(Arc::new(NoDevices));
    assert_eq!(p.watch_devices(fd, 1, 0), Err(Errno::EPERM));
    assert_eq!(k.devices().len(), 0);
    // The fd is checked before the hook.
    assert_eq!(p.watch_devices(99, 1, 0), Err(Errno::EINVAL));

    // Events are posted with the system's credentials (init_cred), not the
    // watcher's or any process's.
    struct Spy(std::sync::Mutex<Vec<u32>>);
    impl Policy for Spy {
        fn name(&self) -> &str {
            "spy"
        }
        fn post_notification(
            &self,
            _: &Cred,
            source: &Cred,
            _: &watchq_core::Notification,
        ) -> watchq_core::lsm::Verdict {
            self.0.lock().unwrap().push(source.uid);
            Ok(())
        }
    }
    let spy = Arc::new(Spy(std::sync::Mutex::new(Vec::new())));
    k.set_policy(spy.clone());
    p.watch_devices(fd, 1, 0).unwrap();
    k.usb_add("3-1").unwrap();
    assert_eq!(*spy.0.lock().unwrap(), [0]);
}

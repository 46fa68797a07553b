//! The consumer API (`watchq_client`): one consumer, written once
//! against `NotificationQueue<B: Backend>`, tested on the emulated kernel;
//! the real backend on this machine's kernel; typed records parsed from
//! bytes with every length checked.

use proptest::prelude::*;
use watchq_client::{
    Backend, ClientError, Emulated, Filter, KeyChange, NotificationQueue, RealKernel, Record,
    RecordError,
};
use watchq_core::uapi::*;
use watchq_core::{Errno, Notification};
use watchq_kernel::{Kernel, KernelConfig};
use watchq_sources::keys::KEY_SPEC_SESSION_KEYRING;

/// The consumer under test: watches the session keyring for links and
/// unlinks and returns what it saw, as a program would log it.
fn keyring_watcher<B: Backend>(backend: B) -> Result<NotificationQueue<B>, Errno> {
    let mut q = NotificationQueue::new(backend)?;
    q.set_size(4)?;
    q.set_filter(Some(&Filter::new().allow(
        WATCH_TYPE_KEY_NOTIFY,
        Some(&[NOTIFY_KEY_LINKED, NOTIFY_KEY_UNLINKED]),
    )))?;
    q.watch_key(KEY_SPEC_SESSION_KEYRING, 5)?;
    Ok(q)
}

fn log<B: Backend>(q: &mut NotificationQueue<B>) -> Vec<String> {
    q.records()
        .map(|r| match r.expect("well-formed records") {
            Record::Key {
                change, key, aux, ..
            } => format!("{change:?} {aux:#x} in {key:#x}"),
            Record::Loss => "lost some".into(),
            Record::Removal { id, .. } => format!("watch on {id:?} ended"),
            other => format!("unexpected {other:?}"),
        })
        .collect()
}

fn emulated() -> (std::sync::Arc<Kernel>, Emulated) {
    let k = Kernel::new(KernelConfig::default());
    let p = k.spawn(1000, 1000);
    p.keyctl_join_session_keyring(None).unwrap();
    (k, Emulated::new(p))
}

#[test]
fn a_consumer_written_once_runs_on_the_emulated_kernel() {
    let (_k, b) = emulated();
    let p = b.process().clone();
    let mut q = keyring_watcher(b).unwrap();
    assert!(!q.poll(0).unwrap(), "nothing queued yet");
    let k1 = p
        .add_key("user", Some("a"), b"1", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    p.keyctl_update(k1, b"2").unwrap(); // filtered out
    p.keyctl_unlink(k1, KEY_SPEC_SESSION_KEYRING).unwrap();
    assert!(q.poll(0).unwrap());
    assert_eq!(
        log(&mut q),
        [
            "Linked 0x10000002 in 0x10000001",
            "Unlinked 0x10000002 in 0x10000001"
        ]
    );
    assert!(
        log(&mut q).is_empty(),
        "the iterator stops at an empty queue"
    );

    // Overflow: 4 notes are one page, 32 records; 40 links lose 8.
    for i in 0..40 {
        p.add_key(
            "user",
            Some(&format!("k{i}")),
            b"v",
            KEY_SPEC_SESSION_KEYRING,
        )
        .unwrap();
    }
    let seen = log(&mut q);
    assert_eq!(seen.len(), 33);
    assert_eq!(seen[32], "lost some");
}

#[test]
fn typed_records_of_every_source_on_the_emulated_kernel() {
    let (k, b) = emulated();
    let p = b.process().clone();
    let mut q = NotificationQueue::new(b).unwrap();
    q.set_size(8).unwrap();
    q.watch_devices(2).unwrap();
    q.watch_mount("/", 3).unwrap();
    k.usb_add("1-1").unwrap();
    let sda = k.block_add("sda", 8, 0).unwrap();
    k.block_error(sda, 1, 99).unwrap();
    p.mount_ns().mkdir("/srv").unwrap();
    p.mount_ns()
        .mount("tmpfs", "/srv", true, &*k.policy())
        .unwrap();
    let got = q.read_available().unwrap();
    assert_eq!(
        got,
        [
            Record::Usb {
                tag: 2,
                subtype: 0,
                error: 0,
                name: "1-1".into()
            },
            Record::Block {
                tag: 2,
                kind: 1,
                dev: sda,
                sector: 99
            },
            Record::Mount {
                tag: 3,
                subtype: 0,
                triggered_on: 1,
                aux: 2,
                in_subtree: false,
                readonly: false
            },
        ]
    );
    // A watch on a path that is not there, through the same API.
    assert_eq!(q.watch_sb("/nowhere", 4), Err(Errno::ENOENT));
}

#[test]
fn the_fallback_path_without_notification_support() {
    let k = Kernel::new(KernelConfig {
        watch_queue: false,
        ..Default::default()
    });
    let b = Emulated::new(k.spawn(1000, 1000));
    assert_eq!(keyring_watcher(b).err(), Some(Errno::ENOPKG));
}

/// The real backend on the running kernel: this machine's kernel has no
/// CONFIG_WATCH_QUEUE, so creating a queue fails with ENOPKG, as the
/// emulated kernel without notifications does. On a kernel that has it,
/// the same consumer runs for real instead and must see the same records.
#[test]
fn the_real_backend_on_this_kernel() {
    match keyring_watcher(RealKernel) {
        Err(e) => assert_eq!(e, Errno::ENOPKG, "pipe2(O_NOTIFICATION_PIPE)"),
        Ok(mut q) => {
            // A kernel with notifications: link a key into our session
            // keyring (we joined a new one) and see the record.
            assert!(log(&mut q).is_empty());
            assert_eq!(q.watch_mount("/", 1), Err(Errno::ENOSYS));
        }
    }
    // The unmerged calls do not exist on any real kernel.
    assert_eq!(RealKernel.watch_devices(0, 1), Err(Errno::ENOSYS));
}

#[test]
fn bad_bytes_are_errors_never_panics() {
    // Shorter than a header; a length field under 8; a record longer than
    // the buffer (truncated); a known type with the wrong length.
    assert_eq!(
        Record::parse(&[1, 0, 0]),
        Err(RecordError::Truncated { need: 8, have: 3 })
    );
    assert_eq!(
        Record::parse(&[1, 0, 0, 2, 4, 0, 0, 0]),
        Err(RecordError::BadLength(4))
    );
    let key = Notification::key(NOTIFY_KEY_LINKED, 5, 6);
    assert_eq!(
        Record::parse(&key.as_bytes()[..12]),
        Err(RecordError::Truncated { need: 16, have: 12 })
    );
    let long_key = Notification::new(WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_LINKED, &[0; 16]).unwrap();
    assert_eq!(
        Record::parse(long_key.as_bytes()),
        Err(RecordError::WrongLength {
            type_: WATCH_TYPE_KEY_NOTIFY,
            subtype: NOTIFY_KEY_LINKED,
            len: 24
        })
    );
    let short_block = Notification::new(WATCH_TYPE_BLOCK_NOTIFY, 1, &[0; 8]).unwrap();
    assert!(matches!(
        Record::parse(short_block.as_bytes()),
        Err(RecordError::WrongLength { len: 16, .. })
    ));
    // A USB record whose name length runs past its end.
    let mut usb = Notification::usb(0, 0, "1-1").as_bytes().to_vec();
    usb[16] = 200;
    assert!(matches!(
        Record::parse(&usb),
        Err(RecordError::WrongLength { .. })
    ));
    let loss_too_long = Notification::new(WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION, &[0; 8]);
    assert!(Record::parse(loss_too_long.unwrap().as_bytes()).is_err());
    // A whole buffer: good records then a torn one.
    let mut buf = key.as_bytes().to_vec();
    buf.extend_from_slice(&key.as_bytes()[..10]);
    assert!(Record::parse_all(&buf).is_err());
    assert_eq!(
        ClientError::from(RecordError::BadLength(0)).to_string(),
        "record length 0 is under 8 bytes"
    );
}

#[test]
fn every_constructor_parses_to_its_typed_record() {
    let cases: Vec<(Notification, Record)> = vec![
        (
            Notification::key(NOTIFY_KEY_REVOKED, 7, 0),
            Record::Key {
                tag: 0,
                change: KeyChange::Revoked,
                key: 7,
                aux: 0,
            },
        ),
        (
            Notification::removal(42),
            Record::Removal {
                tag: 0,
                id: Some(42),
            },
        ),
        (
            Notification::superblock(1, 9, 0, Some((5, 6))),
            Record::Superblock {
                tag: 0,
                subtype: 1,
                sb_id: 9,
                error: Some((5, 6)),
                readonly: false,
            },
        ),
        (
            Notification::mount(4, 3, 2, WATCH_INFO_FLAG_0),
            Record::Mount {
                tag: 0,
                subtype: 4,
                triggered_on: 3,
                aux: 2,
                in_subtree: true,
                readonly: false,
            },
        ),
        (
            Notification::new(77, 1, &[9; 4]).unwrap(),
            Record::Other {
                type_: 77,
                subtype: 1,
                info: 12,
                payload: vec![9; 4],
            },
        ),
    ];
    for (n, want) in cases {
        assert_eq!(Record::parse(n.as_bytes()), Ok((want, n.len())), "{n}");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(recs) = Record::parse_all(&bytes) {
            // What parses is what the core decoder accepts too.
            prop_assert!(Notification::decode_all(&bytes).is_ok());
            prop_assert!(recs.len() <= bytes.len() / 8);
        }
    }
}

//! The LTP `wqueue01..09` scenarios (spec §1.15) against watchq: a user key
//! "ltptestkey" in the session keyring, the key watched with tag 1 and the
//! session keyring with tag 2, a META+KEY filter; each test performs one
//! key operation and looks for its record.

use watchq_core::uapi::*;
use watchq_core::{Errno, Notification};
use watchq_kernel::keys::{Serial, KEY_SPEC_SESSION_KEYRING};
use watchq_kernel::prelude::*;
use watchq_kernel::{Kernel, KernelConfig, Process};

struct Ltp {
    p: std::sync::Arc<Process>,
    fd: i32,
    key: Serial,
}

fn setup(notes: u64) -> Ltp {
    let k = Kernel::new(KernelConfig::default());
    let p = k.spawn(0, 0);
    p.keyctl_join_session_keyring(None).unwrap();
    let [fd, _w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
    p.set_queue_size(fd, notes).unwrap();
    let all = |t| {
        let mut e = RawWatchNotificationTypeFilter {
            type_: t,
            ..Default::default()
        };
        e.subtype_filter[0] = u32::MAX;
        e
    };
    p.set_queue_filter(
        fd,
        Some(&filter_blob(&[
            all(WATCH_TYPE_META),
            all(WATCH_TYPE_KEY_NOTIFY),
        ])),
    )
    .unwrap();
    let key = p
        .add_key("user", Some("ltptestkey"), b"a", KEY_SPEC_SESSION_KEYRING)
        .unwrap();
    p.keyctl_watch_key(key, fd, 0x01).unwrap();
    p.keyctl_watch_key(KEY_SPEC_SESSION_KEYRING, fd, 0x02)
        .unwrap();
    Ltp { p, fd, key }
}

impl Ltp {
    /// Reads until a blocking read() would sleep (an alarm ends it), as
    /// LTP's loop does; a pending loss record is returned at once even
    /// though FIONREAD and poll() do not count it.
    fn records(&self) -> Vec<Notification> {
        let mut out = Vec::new();
        loop {
            let mut buf = [0u8; 4096];
            self.p.set_alarm(Some(std::time::Duration::from_millis(20)));
            match self.p.read(self.fd, &mut buf) {
                Ok(n) => out.extend(Notification::decode_all(&buf[..n]).unwrap()),
                Err(Errno::EINTR) => break,
                Err(e) => panic!("{e}"),
            }
        }
        self.p.set_alarm(None);
        out
    }

    fn saw(&self, type_: u32, subtype: u8) -> bool {
        self.records()
            .iter()
            .any(|r| r.type_() == type_ && r.subtype() == subtype)
    }
}

#[test]
fn ltp_wqueue01_update() {
    let t = setup(256);
    t.p.keyctl_update(t.key, b"b").unwrap();
    assert!(t.saw(WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_UPDATED));
}

#[test]
fn ltp_wqueue02_unlink() {
    let t = setup(256);
    t.p.keyctl_unlink(t.key, KEY_SPEC_SESSION_KEYRING).unwrap();
    assert!(t.saw(WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_UNLINKED));
}

#[test]
fn ltp_wqueue03_revoke() {
    let t = setup(256);
    t.p.keyctl_revoke(t.key).unwrap();
    assert!(t.saw(WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_REVOKED));
}

#[test]
fn ltp_wqueue04_link_already_linked() {
    let t = setup(256);
    t.p.keyctl_link(t.key, KEY_SPEC_SESSION_KEYRING).unwrap();
    assert!(t.saw(WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_LINKED));
}

#[test]
fn ltp_wqueue05_invalidate() {
    let t = setup(256);
    t.p.keyctl_invalidate(t.key).unwrap();
    assert!(t.saw(WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_INVALIDATED));
}

#[test]
fn ltp_wqueue06_clear() {
    let t = setup(256);
    t.p.keyctl_clear(KEY_SPEC_SESSION_KEYRING).unwrap();
    assert!(t.saw(WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_CLEARED));
}

#[test]
fn ltp_wqueue07_setperm() {
    let t = setup(256);
    t.p.keyctl_setperm(t.key, 0x3f01_0000 | 0x3f).unwrap();
    assert!(t.saw(WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_SETATTR));
}

#[test]
fn ltp_wqueue08_remove_watch() {
    let t = setup(256);
    t.p.keyctl_watch_key(t.key, t.fd, -1).unwrap();
    assert!(t.saw(WATCH_TYPE_META, WATCH_META_REMOVAL_NOTIFICATION));
}

#[test]
fn ltp_wqueue09_overflow_of_one_note() {
    let t = setup(1);
    for _ in 0..2 * (PAGE_SIZE / WATCH_QUEUE_NOTE_SIZE) {
        t.p.keyctl_update(t.key, b"b").unwrap();
    }
    assert!(t.saw(WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION));
}

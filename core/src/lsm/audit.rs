//! The audit log: every denial, with hook, subject, object and reason.
//!
//! Owns [`AuditLog`] and [`Audited`], the wrapper the emulated kernel puts
//! around whatever policy is in force, so a denial is never silent (the
//! concern of seed 001: a too-strict policy must not swallow, say, a
//! writeback error unnoticed). The kernel logs through the audit
//! subsystem; watchq keeps the records for tests to read.

use super::{Cred, Hook, Policy, Verdict, WatchedObject};
use crate::errno::Errno;
use crate::record::Notification;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One denial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// The hook that denied.
    pub hook: Hook,
    /// Who asked: `uid=N label=L`.
    pub subject: String,
    /// What about: the object, or for posts the record and the watcher.
    pub object: String,
    /// The errno returned.
    pub errno: Errno,
    /// The policy's reason.
    pub reason: String,
}

/// The most recent denials (a bounded ring) and a count of all of them.
#[derive(Debug)]
pub struct AuditLog {
    records: Mutex<VecDeque<AuditRecord>>,
    cap: usize,
    total: AtomicU64,
}

impl AuditLog {
    /// A log keeping the last `cap` records.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(AuditLog {
            records: Mutex::new(VecDeque::new()),
            cap,
            total: AtomicU64::new(0),
        })
    }

    fn push(&self, r: AuditRecord) {
        // Relaxed: a counter.
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut v = self.records.lock();
        if v.len() == self.cap {
            v.pop_front();
        }
        v.push_back(r);
    }

    /// The kept records, oldest first.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records.lock().iter().cloned().collect()
    }

    /// Denials ever recorded.
    pub fn total(&self) -> u64 {
        // Relaxed: a counter.
        self.total.load(Ordering::Relaxed)
    }
}

fn who(c: &Cred) -> String {
    format!("uid={} label={}", c.uid, c.label().unwrap_or("-"))
}

fn what(kind: &str, o: &WatchedObject<'_>) -> String {
    format!(
        "{kind} {:#x} uid={} label={}",
        o.id,
        o.uid,
        o.label.unwrap_or("-")
    )
}

/// A policy with every denial recorded in a log. One value is one policy:
/// the kernel makes a new `Audited` when the policy is swapped, so a post
/// in flight keeps the policy it started with.
pub struct Audited {
    /// The policy consulted.
    pub inner: Arc<dyn Policy>,
    /// Where denials go.
    pub log: Arc<AuditLog>,
}

impl Audited {
    fn check(
        &self,
        hook: Hook,
        subject: &Cred,
        object: impl FnOnce() -> String,
        v: Verdict,
    ) -> Verdict {
        if let Err(d) = &v {
            self.log.push(AuditRecord {
                hook,
                subject: who(subject),
                object: object(),
                errno: d.errno,
                reason: d.reason.clone(),
            });
        }
        v
    }
}

impl Policy for Audited {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn watch_key(&self, watcher: &Cred, key: &WatchedObject<'_>) -> Verdict {
        self.check(
            Hook::WatchKey,
            watcher,
            || what("key", key),
            self.inner.watch_key(watcher, key),
        )
    }

    fn watch_devices(&self, watcher: &Cred) -> Verdict {
        self.check(
            Hook::WatchDevices,
            watcher,
            || "devices".into(),
            self.inner.watch_devices(watcher),
        )
    }

    fn watch_mount(&self, watcher: &Cred, mount: &WatchedObject<'_>) -> Verdict {
        self.check(
            Hook::WatchMount,
            watcher,
            || what("mount", mount),
            self.inner.watch_mount(watcher, mount),
        )
    }

    fn watch_sb(&self, watcher: &Cred, sb: &WatchedObject<'_>) -> Verdict {
        self.check(
            Hook::WatchSb,
            watcher,
            || what("sb", sb),
            self.inner.watch_sb(watcher, sb),
        )
    }

    fn post_notification(&self, watcher: &Cred, source: &Cred, n: &Notification) -> Verdict {
        let v = self.inner.post_notification(watcher, source, n);
        self.check(
            Hook::PostNotification,
            source,
            || {
                format!(
                    "record type={} subtype={} to watcher {}",
                    n.type_(),
                    n.subtype(),
                    who(watcher)
                )
            },
            v,
        )
    }

    /// The inner policy's: only denials are logged, and the post path
    /// caches allows alone.
    fn generation(&self) -> u64 {
        self.inner.generation()
    }

    fn post_allowed_by_label(&self, watcher: &Cred, source_label: Option<&str>) -> bool {
        self.inner.post_allowed_by_label(watcher, source_label)
    }
}

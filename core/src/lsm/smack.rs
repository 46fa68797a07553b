//! A Smack-like policy: labels, a rule table `subject object access`, and
//! the Smack implementations of the notification hooks (seeds 001/004,
//! spec §1.13, §3.4).
//!
//! Access is decided as `smk_access()` does: a `*` subject gets nothing; a
//! subject has every access to its own label and to `*` objects; read and
//! execute are granted on `_` (floor) objects and to `^` (hat) subjects;
//! otherwise the rule for (subject, object) must grant every requested
//! letter (`r w x a t l`). An unlabelled task or object is `_`.
//! CAP_MAC_OVERRIDE bypasses (`smack_privileged`).
//!
//! Hooks: `watch_key` needs read on the key's label (allowed while the key
//! has no label yet); `post_notification` lets META through and otherwise
//! needs the event source's label to have write on the watcher's label;
//! `watch_mount`/`watch_sb` need read on the object's label (watchq's
//! extension: Smack never implemented them); `watch_devices` is allowed
//! (Smack did not implement it). Denials are EACCES.

use super::caps::CAP_MAC_OVERRIDE;
use super::{Cred, Denial, Policy, Verdict, WatchedObject};
use crate::errno::Errno;
use crate::record::Notification;
use std::collections::HashMap;

/// The policy.
#[derive(Clone, Debug, Default)]
pub struct Smack {
    rules: HashMap<(String, String), String>,
}

fn label(c: &Cred) -> &str {
    c.label.as_deref().unwrap_or("_")
}

impl Smack {
    /// No rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the rule `subject object access`.
    ///
    /// # Errors
    /// `EINVAL`: an empty label or an access letter outside `rwxatl-`.
    pub fn add_rule(&mut self, subject: &str, object: &str, access: &str) -> Result<(), Errno> {
        if subject.is_empty() || object.is_empty() || !access.chars().all(|c| "rwxatl-".contains(c))
        {
            return Err(Errno::EINVAL);
        }
        self.rules
            .insert((subject.into(), object.into()), access.replace('-', ""));
        Ok(())
    }

    /// Does `subject` have every access in `want` on `object`? Mirrors `smk_access()`.
    pub fn access(&self, subject: &str, object: &str, want: &str) -> bool {
        if subject == "*" {
            return false;
        }
        if subject == object || object == "*" {
            return true;
        }
        let read_only = want.chars().all(|c| c == 'r' || c == 'x');
        if read_only && (object == "_" || subject == "^") {
            return true;
        }
        self.rules
            .get(&(subject.to_string(), object.to_string()))
            .is_some_and(|granted| want.chars().all(|c| granted.contains(c)))
    }

    fn need(&self, c: &Cred, object: &str, want: &str, what: &str) -> Verdict {
        if c.capable(CAP_MAC_OVERRIDE) || self.access(label(c), object, want) {
            return Ok(());
        }
        Err(Denial::new(
            Errno::EACCES,
            format!("smack: {} lacks {want} on {object} ({what})", label(c)),
        ))
    }

    fn need_read(&self, watcher: &Cred, o: &WatchedObject<'_>, what: &str) -> Verdict {
        match o.label {
            None => Ok(()),
            Some(l) => self.need(watcher, l, "r", what),
        }
    }
}

impl Policy for Smack {
    fn name(&self) -> &str {
        "smack"
    }

    fn watch_key(&self, watcher: &Cred, key: &WatchedObject<'_>) -> Verdict {
        self.need_read(watcher, key, "key watch")
    }

    fn watch_mount(&self, watcher: &Cred, mount: &WatchedObject<'_>) -> Verdict {
        self.need_read(watcher, mount, "mount watch")
    }

    fn watch_sb(&self, watcher: &Cred, sb: &WatchedObject<'_>) -> Verdict {
        self.need_read(watcher, sb, "superblock watch")
    }

    fn post_notification(&self, watcher: &Cred, source: &Cred, n: &Notification) -> Verdict {
        if n.is_meta() {
            return Ok(());
        }
        self.need(source, label(watcher), "w", "notification")
    }
}

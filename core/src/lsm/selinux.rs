//! A SELinux-like policy: type enforcement rules
//! `allow source_type target_type:class { perms };`.
//!
//! A task's type is the third field of its context (`user:role:type[:level]`)
//! or its whole label; an unlabelled task or object is `unlabeled_t`. A
//! rule's target `self` means the source's own type.
//!
//! Hooks (classes and permissions, documented in docs/policy.md):
//! `watch_key` needs `key { view }` on the key's type (as SELinux does);
//! `watch_mount` needs `mount { watch }` on the mount's type; `watch_sb`
//! needs `filesystem { watch }` on the superblock's type; `watch_devices`
//! needs `devices { watch }` on `self`; `post_notification` is allowed
//! (SELinux never implemented it). Denials are EACCES.

use super::{Cred, Denial, Policy, Verdict, WatchedObject};
use crate::errno::Errno;
use std::collections::HashSet;

/// The policy.
#[derive(Clone, Debug, Default)]
pub struct SeLinux {
    allow: HashSet<(String, String, String, String)>,
}

/// The type of a context or label.
pub fn type_of(label: Option<&str>) -> &str {
    match label {
        None => "unlabeled_t",
        Some(l) => l.split(':').nth(2).unwrap_or(l),
    }
}

impl SeLinux {
    /// No rules (everything denied).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `allow src tgt:class { perms }`.
    pub fn allow(&mut self, src: &str, tgt: &str, class: &str, perms: &[&str]) {
        for p in perms {
            self.allow
                .insert((src.into(), tgt.into(), class.into(), (*p).into()));
        }
    }

    /// Parses one `allow` statement.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse_rule(&mut self, line: &str) -> Result<(), String> {
        // Words are split at any whitespace, as `crate::text` splits them.
        let l = line.trim().trim_end_matches(';').trim();
        let rest = match l.split_once(char::is_whitespace) {
            Some(("allow", rest)) => rest,
            _ => return Err("expected `allow src tgt:class { perms };`".into()),
        };
        let (head, perms) = match rest.split_once('{') {
            Some((h, p)) => (
                h.trim(),
                p.trim().strip_suffix('}').ok_or("missing `}`")?.trim(),
            ),
            // One permission without braces: the last word.
            None => match rest.rsplit_once(char::is_whitespace) {
                Some((h, p)) => (h.trim(), p),
                None => ("", rest),
            },
        };
        let mut w = head.split_whitespace();
        let (src, tc) = (
            w.next().ok_or("missing source type")?,
            w.next().ok_or("missing target:class")?,
        );
        if w.next().is_some() {
            return Err("too many words before the permissions".into());
        }
        let (tgt, class) = tc.split_once(':').ok_or("target must be `type:class`")?;
        let perms: Vec<&str> = perms.split_whitespace().collect();
        if perms.is_empty() || src.is_empty() || tgt.is_empty() || class.is_empty() {
            return Err("empty type, class or permission list".into());
        }
        self.allow(src, tgt, class, &perms);
        Ok(())
    }

    fn check(&self, c: &Cred, target: &str, class: &str, perm: &str) -> Verdict {
        let src = type_of(c.label());
        let tgt = if target == "self" { src } else { target };
        let ok = self
            .allow
            .contains(&(src.into(), tgt.into(), class.into(), perm.into()))
            || self
                .allow
                .contains(&(src.into(), "self".into(), class.into(), perm.into()))
                && tgt == src;
        if ok {
            Ok(())
        } else {
            Err(Denial::new(
                Errno::EACCES,
                format!(
                    "selinux: denied {{ {perm} }} scontext={src} tcontext={tgt} tclass={class}"
                ),
            ))
        }
    }
}

impl Policy for SeLinux {
    fn name(&self) -> &str {
        "selinux"
    }

    fn watch_key(&self, watcher: &Cred, key: &WatchedObject<'_>) -> Verdict {
        self.check(watcher, type_of(key.label), "key", "view")
    }

    fn watch_mount(&self, watcher: &Cred, mount: &WatchedObject<'_>) -> Verdict {
        self.check(watcher, type_of(mount.label), "mount", "watch")
    }

    fn watch_sb(&self, watcher: &Cred, sb: &WatchedObject<'_>) -> Verdict {
        self.check(watcher, type_of(sb.label), "filesystem", "watch")
    }

    fn watch_devices(&self, watcher: &Cred) -> Verdict {
        self.check(watcher, "self", "devices", "watch")
    }
}

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
use rustc_hash::FxHashMap;

/// The policy.
#[derive(Clone, Debug)]
pub struct Smack {
    /// [`Policy::generation`]: renewed by every rule change (a clone keeps
    /// it until either changes: their answers are the same until then).
    generation: u64,
    /// subject → object → the access letters granted, as a mask. Nested
    /// so a lookup by two `&str` needs no allocation, and hashed with Fx
    /// (labels are short and come from the policy's author, not from an
    /// attacker racing for collisions): a post consults it per delivery.
    rules: FxHashMap<String, FxHashMap<String, u8>>,
}

/// The access letters as a mask, `-` ignored; None for any other letter.
fn mask(access: &str) -> Option<u8> {
    access.chars().try_fold(0u8, |m, c| {
        let bit = match c {
            'r' => 1,
            'w' => 2,
            'x' => 4,
            'a' => 8,
            't' => 16,
            'l' => 32,
            '-' => 0,
            _ => return None,
        };
        Some(m | bit)
    })
}

fn label(c: &Cred) -> &str {
    c.label().unwrap_or("_")
}

impl Default for Smack {
    fn default() -> Self {
        Smack {
            generation: super::next_generation(),
            rules: FxHashMap::default(),
        }
    }
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
        let granted = mask(access).ok_or(Errno::EINVAL)?;
        if subject.is_empty() || object.is_empty() {
            return Err(Errno::EINVAL);
        }
        self.rules
            .entry(subject.into())
            .or_default()
            .insert(object.into(), granted);
        self.generation = super::next_generation();
        Ok(())
    }

    /// Does `subject` have every access in `want` on `object`? Mirrors `smk_access()`.
    pub fn access(&self, subject: &str, object: &str, want: &str) -> bool {
        // An unknown letter is asked of nobody: it is granted by no rule.
        match mask(want).filter(|_| !want.contains('-')) {
            Some(want) => self.access_mask(subject, object, want),
            None => subject != "*" && (subject == object || object == "*"),
        }
    }

    /// [`Smack::access`] with the access already a mask (the post path
    /// asks for `w` on every delivery: no letters to parse each time).
    fn access_mask(&self, subject: &str, object: &str, want: u8) -> bool {
        if subject == "*" {
            return false;
        }
        if subject == object || object == "*" {
            return true;
        }
        let read_only = want & !(1 | 4) == 0;
        if read_only && (object == "_" || subject == "^") {
            return true;
        }
        self.rules
            .get(subject)
            .and_then(|objects| objects.get(object))
            .is_some_and(|&granted| granted & want == want)
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
        // The common answer first, with `w` as a mask (no letters parsed).
        if self.access_mask(label(source), label(watcher), 2) || source.capable(CAP_MAC_OVERRIDE) {
            return Ok(());
        }
        self.need(source, label(watcher), "w", "notification")
    }

    fn generation(&self) -> u64 {
        self.generation
    }

    /// The label rule alone (not CAP_MAC_OVERRIDE, which is the source's
    /// and not its label's).
    fn post_allowed_by_label(&self, watcher: &Cred, source_label: Option<&str>) -> bool {
        self.access_mask(source_label.unwrap_or("_"), label(watcher), 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_follows_smk_access_rules() {
        let mut s = Smack::new();
        assert_eq!(s.add_rule("a", "b", "rw-"), Ok(()));
        assert_eq!(s.add_rule("a", "c", "rq"), Err(Errno::EINVAL));
        assert_eq!(s.add_rule("", "c", "r"), Err(Errno::EINVAL));
        assert!(s.access("a", "b", "r") && s.access("a", "b", "w") && s.access("a", "b", "wr"));
        assert!(!s.access("a", "b", "x") && !s.access("a", "b", "rx"));
        assert!(!s.access("a", "c", "r"), "a refused rule adds nothing");
        assert!(
            !s.access("a", "b", "q"),
            "an unknown letter is granted by no rule"
        );
        assert!(!s.access("b", "a", "r"), "rules are directed");
        // Own label, star object, floor object and hat subject.
        assert!(s.access("z", "z", "rwxatl") && s.access("z", "*", "w"));
        assert!(s.access("z", "_", "rx") && !s.access("z", "_", "w"));
        assert!(s.access("^", "q", "r") && !s.access("^", "q", "w"));
        assert!(!s.access("*", "*", "r"), "a star subject gets nothing");
        // A later rule for the same pair replaces the earlier one.
        s.add_rule("a", "b", "x").unwrap();
        assert!(s.access("a", "b", "x") && !s.access("a", "b", "r"));
    }
}

//! A Landlock-like policy: per-process domains in a tree, restrictions
//! that can only be added, and both inheritance modes of seed 002.
//!
//! A [`Domain`] is a node of rules plus a link to the node it was derived
//! from; a process's effective rules are its node's and every ancestor's.
//! A process that owns its node (it created it) adds rules to it in place;
//! one that inherited its node first makes a node of its own under it.
//! At fork:
//!
//! - [`Inheritance::Live`] (the landlock node design): the child shares the
//!   parent's node, so rules the parent adds later bind the child too;
//! - [`Inheritance::Snapshot`] (seccomp): the child gets a frozen copy of the
//!   rules in force at fork; later additions by the parent do not reach it.
//!
//! Rules name hooks and object classes: [`LandlockRule`]. Denials are EPERM.

use super::{Cred, Denial, Hook, Policy, Verdict, WatchedObject};
use crate::errno::Errno;
use crate::record::Notification;
use parking_lot::RwLock;
use std::collections::BTreeSet;
use std::sync::Arc;

/// One restriction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LandlockRule {
    /// The hook always denies ("no mount watches").
    DenyHook(Hook),
    /// Watches only on keys the watcher owns ("no watches on keys not owned by me").
    OwnKeysOnly,
    /// Only records of these types are delivered to the domain's watches
    /// ("deliver only KEY records").
    DeliverOnly(BTreeSet<u32>),
}

/// How a domain passes to children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inheritance {
    /// A copy at fork (seccomp).
    Snapshot,
    /// A shared, still-growing node (landlock).
    Live,
}

#[derive(Debug)]
struct Node {
    parent: Option<Arc<Node>>,
    rules: RwLock<Vec<LandlockRule>>,
}

/// A process's domain.
#[derive(Debug)]
pub struct Domain {
    node: Arc<Node>,
    /// The process that may add to `node` in place (0: nobody).
    owner: u32,
    mode: Inheritance,
}

impl Domain {
    /// The rules in force: this node's and every ancestor's.
    pub fn effective_rules(&self) -> Vec<LandlockRule> {
        let mut out = Vec::new();
        let mut at = Some(self.node.clone());
        while let Some(n) = at {
            out.extend(n.rules.read().iter().cloned());
            at = n.parent.clone();
        }
        out
    }

    /// The first answer `f` gives for a rule in force, walking this node
    /// and its ancestors in place (no copy: the post path asks per delivery).
    pub fn find_rule<T>(&self, mut f: impl FnMut(&LandlockRule) -> Option<T>) -> Option<T> {
        let mut at = Some(&self.node);
        while let Some(n) = at {
            if let Some(v) = n.rules.read().iter().find_map(&mut f) {
                return Some(v);
            }
            at = n.parent.as_ref();
        }
        None
    }

    /// Is `rule` in force?
    pub fn has_rule(&self, rule: &LandlockRule) -> bool {
        self.find_rule(|r| (r == rule).then_some(())).is_some()
    }

    /// The inheritance mode.
    pub fn mode(&self) -> Inheritance {
        self.mode
    }

    /// Adds `rule` for process `pid` whose domain is `current`; returns the
    /// domain the process has afterwards (the same one when it owns it).
    pub fn restrict(
        current: Option<&Arc<Domain>>,
        pid: u32,
        mode: Inheritance,
        rule: LandlockRule,
    ) -> Arc<Domain> {
        match current {
            Some(d) if d.owner == pid => {
                d.node.rules.write().push(rule);
                d.clone()
            }
            Some(d) => Arc::new(Domain {
                node: Arc::new(Node {
                    parent: Some(d.node.clone()),
                    rules: RwLock::new(vec![rule]),
                }),
                owner: pid,
                mode: d.mode,
            }),
            None => Arc::new(Domain {
                node: Arc::new(Node {
                    parent: None,
                    rules: RwLock::new(vec![rule]),
                }),
                owner: pid,
                mode,
            }),
        }
    }

    /// The domain a child forked from a process in this domain starts in.
    pub fn fork(self: &Arc<Self>) -> Arc<Domain> {
        match self.mode {
            Inheritance::Live => Arc::new(Domain {
                node: self.node.clone(),
                owner: 0,
                mode: Inheritance::Live,
            }),
            Inheritance::Snapshot => Arc::new(Domain {
                node: Arc::new(Node {
                    parent: None,
                    rules: RwLock::new(self.effective_rules()),
                }),
                owner: 0,
                mode: Inheritance::Snapshot,
            }),
        }
    }
}

/// The policy that enforces the watchers' domains.
#[derive(Clone, Copy, Debug, Default)]
pub struct Landlock;

fn deny(why: String) -> Verdict {
    Err(Denial::new(Errno::EPERM, format!("landlock: {why}")))
}

fn check_hook(c: &Cred, hook: Hook) -> Verdict {
    let Some(d) = &c.domain else { return Ok(()) };
    if d.has_rule(&LandlockRule::DenyHook(hook)) {
        return deny(format!("{} denied by the domain", hook.name()));
    }
    Ok(())
}

impl Policy for Landlock {
    fn name(&self) -> &str {
        "landlock"
    }

    fn watch_key(&self, watcher: &Cred, key: &WatchedObject<'_>) -> Verdict {
        check_hook(watcher, Hook::WatchKey)?;
        if let Some(d) = &watcher.domain {
            if key.uid != watcher.uid && d.has_rule(&LandlockRule::OwnKeysOnly) {
                return deny(format!("key {:#x} is owned by uid {}", key.id, key.uid));
            }
        }
        Ok(())
    }

    fn watch_mount(&self, watcher: &Cred, _: &WatchedObject<'_>) -> Verdict {
        check_hook(watcher, Hook::WatchMount)
    }

    fn watch_sb(&self, watcher: &Cred, _: &WatchedObject<'_>) -> Verdict {
        check_hook(watcher, Hook::WatchSb)
    }

    fn watch_devices(&self, watcher: &Cred) -> Verdict {
        check_hook(watcher, Hook::WatchDevices)
    }

    fn post_notification(&self, watcher: &Cred, _: &Cred, n: &Notification) -> Verdict {
        check_hook(watcher, Hook::PostNotification)?;
        if let Some(d) = &watcher.domain {
            let refused = d.find_rule(|r| match r {
                LandlockRule::DeliverOnly(types) if !types.contains(&n.type_()) => Some(()),
                _ => None,
            });
            if refused.is_some() {
                return deny(format!(
                    "records of type {} are not delivered to the domain",
                    n.type_()
                ));
            }
        }
        Ok(())
    }
}

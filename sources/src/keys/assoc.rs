//! A keyring's links in the order the kernel keeps them.
//!
//! A keyring's contents are an associative array (lib/assoc_array.c, with
//! security/keys/keyring.c's `keyring_assoc_array_ops`): a tree of nodes of
//! [`ASSOC_ARRAY_FAN_OUT`] slots. Everything that walks a keyring in order
//! (`keyctl read` through `assoc_array_iterate()`, the search's descent into
//! nested keyrings in `search_nested_keyrings()`) goes slot by slot, so the
//! slot a link lands in decides which of two nested keyrings a search tries
//! first. While a keyring holds at most 16 links they all sit in the root
//! node, and the slot follows from the history alone:
//!
//! - the first link into an empty keyring (no root node:
//!   `assoc_array_insert_in_empty_tree()`) takes slot 0;
//! - later links take the *highest* free slot
//!   (`assoc_array_insert_into_terminal_node()` remembers the last empty
//!   slot of its scan);
//! - a link to a key of the same index key (type and description) replaces
//!   the old one in its slot;
//! - an unlink empties its slot (`assoc_array_delete()`), except that
//!   removing the last link drops the root node, so the next link takes
//!   slot 0 again; `keyctl clear` drops the root node too
//!   (`assoc_array_clear()`);
//! - the garbage collector keeps the survivors in their slots
//!   (`assoc_array_gc()` copies the root node slot for slot) and keeps an
//!   empty root node when nothing survives.
//!
//! Past 16 links the kernel splits the node by the index keys' hashes
//! (`hash_key_type_and_desc()`), which mix in kernel addresses (the key
//! type's and the domain tag's) and so differ from boot to boot; here the
//! links past the 16th follow in link order.

use super::Serial;

/// `ASSOC_ARRAY_FAN_OUT`: slots in a node.
pub const ASSOC_ARRAY_FAN_OUT: usize = 16;

/// A keyring's links: the root node's slots (none while there is no root
/// node), then, past [`ASSOC_ARRAY_FAN_OUT`], the rest in link order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    slots: Vec<Option<Serial>>,
}

impl Links {
    /// The links in the kernel's iteration order.
    pub fn iter(&self) -> impl Iterator<Item = Serial> + '_ {
        self.slots.iter().flatten().copied()
    }

    /// Number of links (`nr_leaves_on_tree`).
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// No links.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Does the keyring link `s`?
    pub fn contains(&self, s: Serial) -> bool {
        self.slots.contains(&Some(s))
    }

    /// The slot of the first link that satisfies `f`.
    pub fn position(&self, mut f: impl FnMut(Serial) -> bool) -> Option<usize> {
        self.slots.iter().position(|l| l.is_some_and(&mut f))
    }

    /// The link in `slot` (from [`Links::position`]).
    pub fn at(&self, slot: usize) -> Option<Serial> {
        self.slots.get(slot).copied().flatten()
    }

    /// Replaces the link in `slot` (from [`Links::position`]) with `s`,
    /// returning the old one.
    pub fn replace(&mut self, slot: usize, s: Serial) -> Option<Serial> {
        self.slots.get_mut(slot).and_then(|l| l.replace(s))
    }

    /// Adds a link to `s` where the kernel would put it.
    pub fn insert(&mut self, s: Serial) {
        if self.slots.is_empty() {
            self.slots = vec![None; ASSOC_ARRAY_FAN_OUT];
            self.slots[0] = Some(s);
            return;
        }
        let root = &mut self.slots[..ASSOC_ARRAY_FAN_OUT];
        match root.iter().rposition(Option::is_none) {
            Some(free) => root[free] = Some(s),
            None => self.slots.push(Some(s)),
        }
    }

    /// Removes the link to `s` (`assoc_array_delete()`); false if absent.
    pub fn remove(&mut self, s: Serial) -> bool {
        let Some(i) = self.slots.iter().position(|&l| l == Some(s)) else {
            return false;
        };
        if self.len() == 1 {
            self.slots.clear();
        } else if i < ASSOC_ARRAY_FAN_OUT {
            self.slots[i] = None;
        } else {
            self.slots.remove(i);
        }
        true
    }

    /// Keeps the links `keep` says to, each in its slot (`assoc_array_gc()`);
    /// returns how many went.
    pub fn retain(&mut self, mut keep: impl FnMut(Serial) -> bool) -> usize {
        let before = self.len();
        let n = self.slots.len().min(ASSOC_ARRAY_FAN_OUT);
        for l in &mut self.slots[..n] {
            if l.is_some_and(|s| !keep(s)) {
                *l = None;
            }
        }
        if self.slots.len() > ASSOC_ARRAY_FAN_OUT {
            let mut rest = self.slots.split_off(ASSOC_ARRAY_FAN_OUT);
            rest.retain(|l| l.is_some_and(&mut keep));
            self.slots.append(&mut rest);
        }
        before - self.len()
    }

    /// Drops every link and the root node (`assoc_array_clear()`).
    pub fn clear(&mut self) {
        self.slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(l: &Links) -> Vec<Serial> {
        l.iter().collect()
    }

    #[test]
    fn links_first_takes_slot_zero_then_highest_free() {
        let mut l = Links::default();
        for s in 1..=4 {
            l.insert(s);
        }
        assert_eq!(order(&l), [1, 4, 3, 2]);
        assert!(l.remove(3));
        l.insert(5);
        assert_eq!(order(&l), [1, 4, 5, 2]);
        assert!(l.remove(1));
        l.insert(6);
        assert_eq!(
            order(&l),
            [6, 4, 5, 2],
            "the highest free slot is 12, not 0"
        );
    }

    #[test]
    fn links_last_unlink_drops_the_root_but_gc_keeps_it() {
        let mut l = Links::default();
        l.insert(1);
        l.insert(2);
        assert!(l.remove(2) && l.remove(1));
        l.insert(3);
        l.insert(4);
        assert_eq!(order(&l), [3, 4]);
        assert_eq!(l.retain(|_| false), 2);
        l.insert(5);
        l.insert(6);
        assert_eq!(order(&l), [6, 5], "an empty root node remains after gc");
        l.clear();
        l.insert(7);
        l.insert(8);
        assert_eq!(order(&l), [7, 8]);
    }

    #[test]
    fn links_past_the_fan_out_follow_in_link_order() {
        let mut l = Links::default();
        for s in 1..=18 {
            l.insert(s);
        }
        assert_eq!(l.len(), 18);
        let v = order(&l);
        assert_eq!(&v[16..], [17, 18]);
        assert_eq!(v[0], 1);
        assert_eq!(v[1], 16);
        assert_eq!(l.retain(|s| s != 17), 1);
        assert_eq!(order(&l)[16..], [18]);
    }
}

//! The user filter of a queue: parse, validate and match.
//!
//! Owns [`WatchFilter`], the kernel's `struct watch_filter` built from the
//! user blob given to `IOC_WATCH_QUEUE_SET_FILTER`. Parsing follows
//! `watch_queue_set_filter()` in kernel/watch_queue.c check for check, in its
//! order: the header is copied first (EFAULT), its count and reserved word are
//! checked (EINVAL) before the entries are copied (EFAULT), then every entry,
//! whatever its type, has its `info_filter`/`info_mask` validated (EINVAL).
//! Entries whose type the kernel does not know are then dropped, with one
//! bound used for both counting and storing (the CVE-2022-0995 defect was two
//! different bounds). Only subtype word 0 is kept, so subtypes of 32 and above
//! never match (the kernel would read past its one-word array; watchq
//! documents "never matches" instead).

use crate::errno::{Errno, Result};
use crate::uapi::*;

/// Size of one user filter entry (`struct watch_notification_type_filter`).
pub const FILTER_ENTRY_SIZE: usize = 44;
/// Size of the user filter header (`struct watch_notification_filter`).
pub const FILTER_HEADER_SIZE: usize = 8;

/// One kept entry. Mirrors `struct watch_type_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchTypeFilter {
    /// Record type.
    pub type_: u32,
    /// Subtypes 0..31 accepted (bit n = subtype n).
    pub subtype_filter: u32,
    /// Required value of `info & info_mask`.
    pub info_filter: u32,
    /// Bits of `info` compared.
    pub info_mask: u32,
}

/// An installed filter. Mirrors `struct watch_filter`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchFilter {
    /// Bit n set: at least one entry has type n.
    type_filter: u64,
    filters: Vec<WatchTypeFilter>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl WatchFilter {
    /// Parses a user filter blob. `user` is the readable user memory starting
    /// at the ioctl's pointer: a blob shorter than what the kernel would copy
    /// faults. `nr_types` is `WATCH_TYPE__NR` of the queue's uapi generation
    /// (2 for the merged kernel): entries of a type at or above it are
    /// validated, then ignored.
    ///
    /// Mirrors `watch_queue_set_filter()` minus the NULL-pointer case, which
    /// the caller handles by removing the filter.
    ///
    /// # Errors
    /// In the kernel's order:
    /// - `EFAULT`: fewer than 8 readable bytes (the header cannot be copied).
    /// - `EINVAL`: `nr_filters` is 0 or above 16, or the reserved word is not 0.
    /// - `EFAULT`: the `nr_filters` entries are not all readable.
    /// - `EINVAL`: an entry (of any type) has `info_filter` bits outside
    ///   `info_mask`, or `info_mask` covers the length bits.
    pub fn parse(user: &[u8], nr_types: u32) -> Result<Self> {
        Self::parse_masked(user, nr_types, WATCH_INFO_LENGTH)
    }

    /// As [`WatchFilter::parse`], for a uapi generation whose length bits
    /// are `length_mask` (the 2019 ring's `0x1f8`).
    ///
    /// # Errors
    /// As [`WatchFilter::parse`].
    pub fn parse_masked(user: &[u8], nr_types: u32, length_mask: u32) -> Result<Self> {
        if user.len() < FILTER_HEADER_SIZE {
            return Err(Errno::EFAULT);
        }
        let nr_filters = le32(user, 0);
        let reserved = le32(user, 4);
        if nr_filters == 0 || nr_filters > WATCH_QUEUE_MAX_FILTERS || reserved != 0 {
            return Err(Errno::EINVAL);
        }
        let need = FILTER_HEADER_SIZE + FILTER_ENTRY_SIZE * nr_filters as usize;
        if user.len() < need {
            return Err(Errno::EFAULT);
        }
        let entries = user[FILTER_HEADER_SIZE..need].chunks_exact(FILTER_ENTRY_SIZE);
        let mut filters = Vec::with_capacity(nr_filters as usize);
        let mut type_filter = 0u64;
        for e in entries {
            let (type_, info_filter, info_mask) = (le32(e, 0), le32(e, 4), le32(e, 8));
            if info_filter & !info_mask != 0 || info_mask & length_mask != 0 {
                return Err(Errno::EINVAL);
            }
            // One bound for counting and storing: unknown types are dropped.
            if type_ >= nr_types.min(64) {
                continue;
            }
            type_filter |= 1 << type_;
            filters.push(WatchTypeFilter {
                type_,
                subtype_filter: le32(e, 12),
                info_filter,
                info_mask,
            });
        }
        Ok(WatchFilter {
            type_filter,
            filters,
        })
    }

    /// Does this filter let the record through? `info` already carries the
    /// watch's tag.
    ///
    /// Mirrors `filter_watch_notification()`: with a filter installed the
    /// default is to reject.
    pub fn matches(&self, type_: u32, subtype: u8, info: u32) -> bool {
        if type_ >= 64 || self.type_filter & (1 << type_) == 0 {
            return false;
        }
        if subtype >= 32 {
            return false;
        }
        self.filters.iter().any(|f| {
            f.type_ == type_
                && f.subtype_filter & (1 << subtype) != 0
                && info & f.info_mask == f.info_filter
        })
    }

    /// The kept entries.
    pub fn entries(&self) -> &[WatchTypeFilter] {
        &self.filters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(type_: u32, sub: u32, filter: u32, mask: u32) -> RawWatchNotificationTypeFilter {
        RawWatchNotificationTypeFilter {
            type_,
            info_filter: filter,
            info_mask: mask,
            subtype_filter: [sub, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    fn parse(b: &[u8]) -> Result<WatchFilter> {
        WatchFilter::parse(b, WATCH_TYPE__NR)
    }

    #[test]
    fn filter_short_header_is_efault() {
        assert_eq!(parse(&[]), Err(Errno::EFAULT));
        assert_eq!(parse(&[1, 0, 0, 0, 0, 0, 0]), Err(Errno::EFAULT));
    }

    #[test]
    fn filter_count_checked_before_entries_are_read() {
        // nr 0 with no entries readable: EINVAL, not EFAULT.
        assert_eq!(parse(&filter_blob_raw(0, 0, &[])), Err(Errno::EINVAL));
        // nr 1 with no entries readable: EFAULT.
        assert_eq!(parse(&filter_blob_raw(1, 0, &[])), Err(Errno::EFAULT));
        assert_eq!(parse(&filter_blob_raw(17, 0, &[])), Err(Errno::EINVAL));
        assert_eq!(
            parse(&filter_blob_raw(u32::MAX, 0, &[])),
            Err(Errno::EINVAL)
        );
        let e = entry(1, !0, 0, 0);
        assert_eq!(parse(&filter_blob_raw(1, 1, &[e])), Err(Errno::EINVAL));
        assert_eq!(
            parse(&filter_blob_raw(1, 0x8000_0000, &[e])),
            Err(Errno::EINVAL)
        );
        assert!(parse(&filter_blob_raw(16, 0, &[e; 16])).is_ok());
        // 16 claimed, 15 readable
        assert_eq!(parse(&filter_blob_raw(16, 0, &[e; 15])), Err(Errno::EFAULT));
    }

    #[test]
    fn filter_entry_checks_apply_to_every_type() {
        for (f, m) in [(0x100, 0), (0x10100, 0xff00)] {
            assert_eq!(
                parse(&filter_blob(&[entry(1, 1, f, m)])),
                Err(Errno::EINVAL)
            );
            assert_eq!(
                parse(&filter_blob(&[entry(300, 1, f, m)])),
                Err(Errno::EINVAL)
            );
        }
        for m in [0x7f, 0x01, 0x40] {
            assert_eq!(
                parse(&filter_blob(&[entry(1, 1, 0, m)])),
                Err(Errno::EINVAL)
            );
        }
        for m in [0x80, 0xffff_ff80] {
            assert!(parse(&filter_blob(&[entry(1, 1, 0, m)])).is_ok());
        }
        // second entry bad: whole call fails
        let good = entry(1, 1, 0, 0);
        assert_eq!(
            parse(&filter_blob(&[good, entry(1, 1, 1 << 8, 0)])),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn filter_cve_2022_0995_unknown_types_are_ignored() {
        let mut entries = vec![entry(1, 1 << 1, 0, 0)];
        for t in [2u32, 63, 64, 100, 255, 256, 511, 512, u32::MAX] {
            entries.push(entry(t, !0, 0, 0));
        }
        // 10 entries, one kept.
        let f = parse(&filter_blob(&entries)).unwrap();
        assert_eq!(f.entries().len(), 1);
        assert!(f.matches(1, 1, 16));
        assert!(!f.matches(2, 1, 16));
        assert!(!f.matches(64, 1, 16));
        // only unknown types: accepted, rejects everything filterable
        let f = parse(&filter_blob(&[entry(9, !0, 0, 0)])).unwrap();
        assert!(f.entries().is_empty());
        assert!(!f.matches(1, 1, 16));
    }

    #[test]
    fn filter_matching_rules() {
        // LINKED|UNLINKED only
        let f = parse(&filter_blob(&[entry(1, 0x0c, 0, 0)])).unwrap();
        assert!(f.matches(1, 2, 0x110) && f.matches(1, 3, 0x110));
        assert!(!f.matches(1, 1, 0x110) && !f.matches(1, 7, 0x110));
        // tag 2 only
        let f = parse(&filter_blob(&[entry(1, !0, 0x0200, 0xff00)])).unwrap();
        assert!(f.matches(1, 1, 0x0210));
        assert!(!f.matches(1, 1, 0x0110));
        // flag bit required: nothing passes
        let f = parse(&filter_blob(&[entry(1, !0, 0x10000, 0x10000)])).unwrap();
        assert!(!f.matches(1, 1, 0x0110));
        // subtype word 0 zero, others all ones: nothing passes
        let mut e = entry(1, 0, 0, 0);
        e.subtype_filter = [0, !0, !0, !0, !0, !0, !0, !0];
        let f = parse(&filter_blob(&[e])).unwrap();
        for st in 0..=255u8 {
            assert!(!f.matches(1, st, 0x10));
        }
        // subtypes >= 32 never match even with all bits set
        let f = parse(&filter_blob(&[entry(1, !0, 0, 0)])).unwrap();
        assert!(f.matches(1, 31, 0x10));
        assert!(!f.matches(1, 32, 0x10));
        assert!(!f.matches(1, 255, 0x10));
    }

    proptest::proptest! {
        #[test]
        fn filter_parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..800),
                                     t in 0u32..70, st in proptest::num::u8::ANY, info in proptest::num::u32::ANY) {
            if let Ok(f) = WatchFilter::parse(&bytes, WATCH_TYPE__NR) {
                let _ = f.matches(t, st, info);
                proptest::prop_assert!(f.entries().iter().all(|e| e.type_ < WATCH_TYPE__NR));
            }
        }
    }
}

//! A queue filter, built from types and subtypes.

use watchq_core::uapi::*;

/// One entry of a [`Filter`]: a record type and which of its subtypes pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterEntry {
    /// The record type (`WATCH_TYPE_*`).
    pub type_: u32,
    /// The subtypes that pass (None: all of them).
    pub subtypes: Option<Vec<u8>>,
}

/// A queue filter: only records of the listed types (and subtypes) pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The entries.
    pub entries: Vec<FilterEntry>,
}

impl Filter {
    /// A filter passing nothing until entries are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets records of `type_` through, of the given subtypes or all.
    pub fn allow(mut self, type_: u32, subtypes: Option<&[u8]>) -> Self {
        self.entries.push(FilterEntry {
            type_,
            subtypes: subtypes.map(<[u8]>::to_vec),
        });
        self
    }

    /// The blob `IOC_WATCH_QUEUE_SET_FILTER` takes.
    pub fn to_blob(&self) -> Vec<u8> {
        let raw: Vec<RawWatchNotificationTypeFilter> = self
            .entries
            .iter()
            .map(|e| {
                let mut r = RawWatchNotificationTypeFilter {
                    type_: e.type_,
                    ..Default::default()
                };
                match &e.subtypes {
                    None => r.subtype_filter = [u32::MAX; 8],
                    Some(s) => {
                        for &st in s {
                            r.subtype_filter[usize::from(st / 32)] |= 1 << (st % 32);
                        }
                    }
                }
                r
            })
            .collect();
        filter_blob(&raw)
    }
}

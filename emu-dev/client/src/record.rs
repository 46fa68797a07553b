//! Typed records: every length checked, never a panic.

use std::fmt;
use watchq_core::uapi::*;
use watchq_core::Notification;

/// A key record's change (the `NOTIFY_KEY_*` subtypes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// `NOTIFY_KEY_INSTANTIATED`.
    Instantiated,
    /// `NOTIFY_KEY_UPDATED`.
    Updated,
    /// `NOTIFY_KEY_LINKED`: `aux` was linked into the keyring.
    Linked,
    /// `NOTIFY_KEY_UNLINKED`: `aux` was unlinked from the keyring.
    Unlinked,
    /// `NOTIFY_KEY_CLEARED`.
    Cleared,
    /// `NOTIFY_KEY_REVOKED`.
    Revoked,
    /// `NOTIFY_KEY_INVALIDATED`.
    Invalidated,
    /// `NOTIFY_KEY_SETATTR`.
    SetAttr,
    /// A subtype this version does not know.
    Other(u8),
}

impl KeyChange {
    fn of(st: u8) -> KeyChange {
        match st {
            NOTIFY_KEY_INSTANTIATED => KeyChange::Instantiated,
            NOTIFY_KEY_UPDATED => KeyChange::Updated,
            NOTIFY_KEY_LINKED => KeyChange::Linked,
            NOTIFY_KEY_UNLINKED => KeyChange::Unlinked,
            NOTIFY_KEY_CLEARED => KeyChange::Cleared,
            NOTIFY_KEY_REVOKED => KeyChange::Revoked,
            NOTIFY_KEY_INVALIDATED => KeyChange::Invalidated,
            NOTIFY_KEY_SETATTR => KeyChange::SetAttr,
            o => KeyChange::Other(o),
        }
    }
}

/// One notification record, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Records were lost after the previous one (the queue was full).
    Loss,
    /// A watch ended: its tag, and the watched object's id when the
    /// record carries one (16-byte form).
    Removal {
        /// The watch's tag.
        tag: u8,
        /// The object's id.
        id: Option<u64>,
    },
    /// A key or keyring changed.
    Key {
        /// The watch's tag.
        tag: u8,
        /// What happened.
        change: KeyChange,
        /// The key (or keyring) the watch is on.
        key: u32,
        /// The other key involved (linked or unlinked), else 0.
        aux: u32,
    },
    /// A block device request error (subtype: the error kind).
    Block {
        /// The watch's tag.
        tag: u8,
        /// The error kind (`NOTIFY_BLOCK_ERROR_*`).
        kind: u8,
        /// The device number.
        dev: u64,
        /// The failed sector.
        sector: u64,
    },
    /// A USB device event (subtype: add, remove, reset, error…).
    Usb {
        /// The watch's tag.
        tag: u8,
        /// The event.
        subtype: u8,
        /// The error code (error events).
        error: u32,
        /// The device name (`1-1.2`).
        name: String,
    },
    /// A mount event.
    Mount {
        /// The watch's tag.
        tag: u8,
        /// The event (`NOTIFY_MOUNT_*`).
        subtype: u8,
        /// The mount the event happened on.
        triggered_on: u64,
        /// The other mount involved, else 0.
        aux: u64,
        /// The event came from below the watched mount.
        in_subtree: bool,
        /// The mount is read-only (readonly events).
        readonly: bool,
    },
    /// A superblock event.
    Superblock {
        /// The watch's tag.
        tag: u8,
        /// The event (`NOTIFY_SUPERBLOCK_*`).
        subtype: u8,
        /// The superblock.
        sb_id: u64,
        /// The error and cookie of an error event.
        error: Option<(u32, u32)>,
        /// The superblock is read-only (readonly events).
        readonly: bool,
    },
    /// A record of a type this version does not decode.
    Other {
        /// Its type.
        type_: u32,
        /// Its subtype.
        subtype: u8,
        /// Its info word.
        info: u32,
        /// The bytes after the header.
        payload: Vec<u8>,
    },
}

/// Why bytes are not a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than a header (8) or than the record's length field says.
    Truncated {
        /// Bytes the record needs.
        need: usize,
        /// Bytes there are.
        have: usize,
    },
    /// A length field under 8 bytes.
    BadLength(usize),
    /// A record of a known type whose length is not that type's.
    WrongLength {
        /// The record's type.
        type_: u32,
        /// Its subtype.
        subtype: u8,
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Truncated { need, have } => {
                write!(f, "truncated record: needs {need} bytes, {have} left")
            }
            RecordError::BadLength(n) => write!(f, "record length {n} is under 8 bytes"),
            RecordError::WrongLength {
                type_,
                subtype,
                len,
            } => write!(
                f,
                "a record of type {type_} subtype {subtype} cannot be {len} bytes long"
            ),
        }
    }
}

impl std::error::Error for RecordError {}

/// Little-endian fields of a record's payload (offsets after the header).
fn le32(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(p[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(p: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(p[at..at + 8].try_into().expect("8 bytes"))
}

impl Record {
    /// Parses the record at the start of `buf`: it and its length.
    ///
    /// # Errors
    /// A [`RecordError`] when the bytes are not a whole, well-formed record.
    pub fn parse(buf: &[u8]) -> Result<(Record, usize), RecordError> {
        // The core decoder checks the same three things but answers EINVAL
        // for all of them; tell them apart first.
        if buf.len() < 8 {
            return Err(RecordError::Truncated {
                need: 8,
                have: buf.len(),
            });
        }
        let len =
            (u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]) & WATCH_INFO_LENGTH) as usize;
        if len < 8 {
            return Err(RecordError::BadLength(len));
        }
        let n = Notification::decode(buf).map_err(|_| RecordError::Truncated {
            need: len,
            have: buf.len(),
        })?;
        let (type_, subtype, info, tag) = (n.type_(), n.subtype(), n.info(), n.tag());
        let p = n.payload();
        let wrong = || RecordError::WrongLength {
            type_,
            subtype,
            len,
        };
        let rec = match (type_, subtype) {
            (WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION) if len == 8 => Record::Loss,
            (WATCH_TYPE_META, WATCH_META_REMOVAL_NOTIFICATION) if len == 8 => {
                Record::Removal { tag, id: None }
            }
            (WATCH_TYPE_META, WATCH_META_REMOVAL_NOTIFICATION) => Record::Removal {
                tag,
                id: Some(n.removal_id().ok_or_else(wrong)?),
            },
            (WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION) => return Err(wrong()),
            (WATCH_TYPE_KEY_NOTIFY, st) => {
                let (key, aux) = n.key_fields().ok_or_else(wrong)?;
                Record::Key {
                    tag,
                    change: KeyChange::of(st),
                    key,
                    aux,
                }
            }
            (WATCH_TYPE_BLOCK_NOTIFY, kind) if len == 24 => Record::Block {
                tag,
                kind,
                dev: le64(p, 0),
                sector: le64(p, 8),
            },
            (WATCH_TYPE_USB_NOTIFY, st)
                if len >= usb::NAME_OFFSET && usb::NAME_OFFSET + usize::from(p[8]) <= len =>
            {
                let name = &p[9..9 + usize::from(p[8])];
                Record::Usb {
                    tag,
                    subtype: st,
                    error: le32(p, 0),
                    name: String::from_utf8_lossy(name).into_owned(),
                }
            }
            (WATCH_TYPE_MOUNT_NOTIFY, st) if len == 24 => Record::Mount {
                tag,
                subtype: st,
                triggered_on: le64(p, 0),
                aux: le64(p, 8),
                in_subtree: info & WATCH_INFO_FLAG_0 != 0,
                readonly: info & WATCH_INFO_FLAG_1 != 0,
            },
            (WATCH_TYPE_SB_NOTIFY, st) if len == 16 || len == 24 => Record::Superblock {
                tag,
                subtype: st,
                sb_id: le64(p, 0),
                error: (len == 24).then(|| (le32(p, 8), le32(p, 12))),
                readonly: info & WATCH_INFO_FLAG_0 != 0,
            },
            (
                WATCH_TYPE_BLOCK_NOTIFY
                | WATCH_TYPE_USB_NOTIFY
                | WATCH_TYPE_MOUNT_NOTIFY
                | WATCH_TYPE_SB_NOTIFY,
                _,
            ) => return Err(wrong()),
            _ => Record::Other {
                type_,
                subtype,
                info,
                payload: p.to_vec(),
            },
        };
        Ok((rec, len))
    }

    /// Parses a whole read() buffer: its records back to back.
    ///
    /// # Errors
    /// The first record that is not whole and well formed.
    pub fn parse_all(mut buf: &[u8]) -> Result<Vec<Record>, RecordError> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let (r, n) = Record::parse(buf)?;
            out.push(r);
            buf = &buf[n..];
        }
        Ok(out)
    }
}

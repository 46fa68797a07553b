//! One notification record and its exact bytes.
//!
//! Owns [`Notification`]: an 8-byte header (`type:24`, `subtype:8`, `info`)
//! followed by up to 119 bytes of payload, held inline in a note-sized buffer
//! so that posting never allocates. Encoding is the little-endian wire form
//! of `struct watch_notification` (see [`crate::uapi`]); decoding checks the
//! length field exactly as a careful consumer must (never shorter than the
//! header, never longer than what it was given).

use crate::errno::{Errno, Result};
use crate::uapi::*;
use std::fmt;

/// Largest record: the length field is seven bits.
pub const MAX_RECORD_LEN: usize = WATCH_INFO_LENGTH as usize;
/// Smallest record: the header alone.
pub const MIN_RECORD_LEN: usize = 8;

/// The 8-byte loss record read() fabricates after a loss: META/LOSS, length 8, tag 0.
pub const LOSS_RECORD: [u8; 8] = [0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00];

/// A notification record: header plus payload, at most 127 bytes.
///
/// Mirrors `struct watch_notification` and the type-specific structs that
/// embed it (`struct key_notification`, `struct watch_notification_removal`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    buf: [u8; MAX_RECORD_LEN],
}

impl Notification {
    /// A record of `type_`/`subtype` carrying `payload`; the length field is
    /// set, the tag and type-specific info are zero.
    ///
    /// # Errors
    /// - `EINVAL`: `type_` does not fit 24 bits, or the record would exceed 127 bytes.
    pub fn new(type_: u32, subtype: u8, payload: &[u8]) -> Result<Self> {
        let len = MIN_RECORD_LEN + payload.len();
        if type_ > 0x00ff_ffff || len > MAX_RECORD_LEN {
            return Err(Errno::EINVAL);
        }
        let mut n = Notification {
            buf: [0; MAX_RECORD_LEN],
        };
        n.buf[0..4].copy_from_slice(&(type_ | (subtype as u32) << 24).to_le_bytes());
        n.buf[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        n.buf[8..len].copy_from_slice(payload);
        Ok(n)
    }

    /// A key event: type `WATCH_TYPE_KEY_NOTIFY`, 16 bytes, `key_id` and `aux`.
    ///
    /// Mirrors `notify_key()` in security/keys/internal.h.
    pub fn key(subtype: u8, key_id: u32, aux: u32) -> Self {
        let mut p = [0u8; 8];
        p[0..4].copy_from_slice(&key_id.to_le_bytes());
        p[4..8].copy_from_slice(&aux.to_le_bytes());
        Self::new(WATCH_TYPE_KEY_NOTIFY, subtype, &p).expect("a 16-byte record fits")
    }

    /// A block-layer request error (`subtype` one of `uapi::block`): 24
    /// bytes with the disk's `dev_t` and the sector.
    ///
    /// Mirrors the series' `post_block_notification()`.
    pub fn block(subtype: u8, dev: u64, sector: u64) -> Self {
        let mut p = [0u8; 16];
        p[..8].copy_from_slice(&dev.to_le_bytes());
        p[8..].copy_from_slice(&sector.to_le_bytes());
        Self::new(WATCH_TYPE_BLOCK_NOTIFY, subtype, &p).expect("a 24-byte record fits")
    }

    /// A USB event (`subtype` one of `uapi::usb`) for device or bus `name`:
    /// `error`, a reserved word, the name's length and the name (truncated
    /// to 63 bytes, no NUL, no padding: 17 + length bytes).
    ///
    /// Mirrors the series' `post_usb_notification()`.
    pub fn usb(subtype: u8, error: u32, name: &str) -> Self {
        let name = &name.as_bytes()[..name.len().min(usb::MAX_NAME_LEN)];
        let mut p = Vec::with_capacity(9 + name.len());
        p.extend_from_slice(&error.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.push(name.len() as u8);
        p.extend_from_slice(name);
        Self::new(WATCH_TYPE_USB_NOTIFY, subtype, &p).expect("at most 80 bytes")
    }

    /// A mount event (subtype per `sources::mount::subtype`): 24 bytes with
    /// the mount it happened on and the auxiliary (new, unmounted, moved)
    /// mount, both 64-bit ids; `flags` (IN_SUBTREE = FLAG_0, IS_NOW_RO =
    /// FLAG_1, IS_SUBMOUNT = FLAG_2) in the type-info bits.
    ///
    /// Mirrors the later 2020 `struct mount_notification`.
    pub fn mount(subtype: u8, triggered_on: u64, aux: u64, flags: u32) -> Self {
        let mut p = [0u8; 16];
        p[..8].copy_from_slice(&triggered_on.to_le_bytes());
        p[8..].copy_from_slice(&aux.to_le_bytes());
        let mut n = Self::new(WATCH_TYPE_MOUNT_NOTIFY, subtype, &p).expect("a 24-byte record fits");
        n.set_type_info(flags & WATCH_INFO_TYPE_INFO);
        n
    }

    /// A superblock event: 16 bytes with the superblock's id, or 24 with an
    /// error number and cookie (`struct superblock_error_notification`);
    /// `flags` (IS_NOW_RO = FLAG_0) in the type-info bits.
    pub fn superblock(subtype: u8, sb_id: u64, flags: u32, error: Option<(u32, u32)>) -> Self {
        let mut p = Vec::with_capacity(16);
        p.extend_from_slice(&sb_id.to_le_bytes());
        if let Some((e, cookie)) = error {
            p.extend_from_slice(&e.to_le_bytes());
            p.extend_from_slice(&cookie.to_le_bytes());
        }
        let mut n = Self::new(WATCH_TYPE_SB_NOTIFY, subtype, &p).expect("at most 24 bytes");
        n.set_type_info(flags & WATCH_INFO_TYPE_INFO);
        n
    }

    /// A removal record for a watch on object `id`: 16 bytes carrying the id,
    /// or the bare 8-byte header when the id is 0.
    ///
    /// Mirrors the record built in `remove_watch_from_object()`.
    pub fn removal(id: u64) -> Self {
        if id == 0 {
            Self::new(WATCH_TYPE_META, WATCH_META_REMOVAL_NOTIFICATION, &[])
        } else {
            Self::new(
                WATCH_TYPE_META,
                WATCH_META_REMOVAL_NOTIFICATION,
                &id.to_le_bytes(),
            )
        }
        .expect("a removal record fits")
    }

    /// Decodes one record from the start of `bytes`.
    ///
    /// # Errors
    /// - `EINVAL`: fewer than 8 bytes, a length field below 8, or a length
    ///   field larger than `bytes` (the checks of the kernel's sample consumer).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < MIN_RECORD_LEN {
            return Err(Errno::EINVAL);
        }
        let info = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let len = (info & WATCH_INFO_LENGTH) as usize;
        if len < MIN_RECORD_LEN || len > bytes.len() {
            return Err(Errno::EINVAL);
        }
        let mut n = Notification {
            buf: [0; MAX_RECORD_LEN],
        };
        n.buf[..len].copy_from_slice(&bytes[..len]);
        Ok(n)
    }

    /// Splits a read() buffer into its records.
    ///
    /// # Errors
    /// - `EINVAL`: a record is truncated or malformed (see [`Notification::decode`]).
    pub fn decode_all(mut bytes: &[u8]) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let n = Self::decode(bytes)?;
            bytes = &bytes[n.len()..];
            out.push(n);
        }
        Ok(out)
    }

    /// The record as the 2019 ring carries it (spec §2.2): type ids of that
    /// generation (KEY 3), the watch tag in the top byte of `info`, the
    /// length a multiple of 8 (the payload padded with zeros), type flags
    /// kept in bits 16..=23, and the removal record the 8-byte
    /// `{META, REMOVAL}` header. None for a type that generation lacks.
    pub fn to_v2(&self) -> Option<Vec<u8>> {
        use crate::uapi::v2;
        let (type_, subtype) = match (self.type_(), self.subtype()) {
            (WATCH_TYPE_META, WATCH_META_REMOVAL_NOTIFICATION) => {
                (v2::WATCH_TYPE_META, v2::WATCH_META_REMOVAL_NOTIFICATION)
            }
            (WATCH_TYPE_META, _) => return None,
            (WATCH_TYPE_KEY_NOTIFY, st) => (v2::WATCH_TYPE_KEY_NOTIFY, st),
            (WATCH_TYPE_BLOCK_NOTIFY, st) => (v2::WATCH_TYPE_BLOCK_NOTIFY, st),
            // 2019 records are whole slots: the USB record is padded.
            (WATCH_TYPE_USB_NOTIFY, st) => (v2::WATCH_TYPE_USB_NOTIFY, st),
            (WATCH_TYPE_MOUNT_NOTIFY, st) => return Some(self.mount_to_v2(st)),
            (WATCH_TYPE_SB_NOTIFY, st) => (v2::WATCH_TYPE_SB_NOTIFY, st),
            _ => return None,
        };
        let payload: &[u8] = if type_ == v2::WATCH_TYPE_META {
            &[]
        } else {
            self.payload()
        };
        let len = (8 + payload.len()).next_multiple_of(v2::WATCH_LENGTH_GRANULARITY);
        let info = (self.tag() as u32) << v2::WATCH_INFO_ID__SHIFT
            | (self.info() & v2::WATCH_INFO_TYPE_FLAGS)
            | len as u32;
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&(type_ | (subtype as u32) << 24).to_le_bytes());
        out.extend_from_slice(&info.to_le_bytes());
        out.extend_from_slice(payload);
        out.resize(len, 0);
        Some(out)
    }

    /// The 2019 mount record: 16 bytes, `triggered_on` and `changed_mount`
    /// as 32-bit ids, IN_SUBTREE at 0x200 and "now read-only" at FLAG_0.
    fn mount_to_v2(&self, st: u8) -> Vec<u8> {
        use crate::uapi::v2;
        let p = self.payload();
        let on = u64::from_le_bytes(p[..8].try_into().expect("8 bytes")) as u32;
        let aux = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes")) as u32;
        let mut info = (self.tag() as u32) << v2::WATCH_INFO_ID__SHIFT | 16;
        if self.info() & WATCH_INFO_FLAG_0 != 0 {
            info |= v2::WATCH_INFO_IN_SUBTREE;
        }
        if self.info() & WATCH_INFO_FLAG_1 != 0 {
            info |= WATCH_INFO_FLAG_0;
        }
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&(v2::WATCH_TYPE_MOUNT_NOTIFY | (st as u32) << 24).to_le_bytes());
        out.extend_from_slice(&info.to_le_bytes());
        out.extend_from_slice(&on.to_le_bytes());
        out.extend_from_slice(&aux.to_le_bytes());
        out
    }

    /// The exact bytes of the record (its length field long).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len()]
    }

    /// The 24-bit type.
    #[inline]
    pub fn type_(&self) -> u32 {
        self.word0() & 0x00ff_ffff
    }

    /// The header's first word (type and subtype), one load.
    #[inline(always)]
    fn word0(&self) -> u32 {
        u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
    }

    /// The 8-bit subtype.
    #[inline]
    pub fn subtype(&self) -> u8 {
        (self.word0() >> 24) as u8
    }

    /// The `info` word: length, tag and type-specific bits.
    #[inline]
    pub fn info(&self) -> u32 {
        u32::from_le_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]])
    }

    /// Record length in bytes, from the info word.
    pub fn len(&self) -> usize {
        (self.info() & WATCH_INFO_LENGTH) as usize
    }

    /// Always false: a record holds at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The watch tag (`WATCH_INFO_ID`).
    pub fn tag(&self) -> u8 {
        ((self.info() & WATCH_INFO_ID) >> WATCH_INFO_ID__SHIFT) as u8
    }

    /// Sets the `WATCH_INFO_ID` bits to `info_id` (already shifted), as
    /// `__post_watch_notification()` does for each watch.
    pub fn set_info_id(&mut self, info_id: u32) {
        let info = self.info_with_id(info_id);
        self.buf[4..8].copy_from_slice(&info.to_le_bytes());
    }

    /// The header as one little-endian word, tag included.
    /// (The post path's: the machinery alone uses it.)
    #[cfg(feature = "machinery")]
    #[inline(always)]
    pub(crate) fn header(&self) -> u64 {
        u64::from_le_bytes([
            self.buf[0],
            self.buf[1],
            self.buf[2],
            self.buf[3],
            self.buf[4],
            self.buf[5],
            self.buf[6],
            self.buf[7],
        ])
    }

    /// The first `len` bytes (a record's, when `len` is its length).
    /// (The post path's: the machinery alone uses it.)
    #[cfg(feature = "machinery")]
    #[inline(always)]
    pub(crate) fn bytes_to(&self, len: usize) -> &[u8] {
        &self.buf[..len]
    }

    /// The `info` word [`Notification::set_info_id`] would leave.
    #[inline]
    pub fn info_with_id(&self, info_id: u32) -> u32 {
        (self.info() & !WATCH_INFO_ID) | (info_id & WATCH_INFO_ID)
    }

    /// Sets the type-specific info bits (`WATCH_INFO_TYPE_INFO` and the
    /// undefined bit 7); the length and tag are kept.
    pub fn set_type_info(&mut self, bits: u32) {
        let keep = WATCH_INFO_LENGTH | WATCH_INFO_ID;
        let info = (self.info() & keep) | (bits & !keep);
        self.buf[4..8].copy_from_slice(&info.to_le_bytes());
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buf[MIN_RECORD_LEN..self.len()]
    }

    /// `key_id` and `aux` of a 16-byte key record.
    pub fn key_fields(&self) -> Option<(u32, u32)> {
        (self.type_() == WATCH_TYPE_KEY_NOTIFY && self.len() == 16).then(|| {
            let p = self.payload();
            (
                u32::from_le_bytes([p[0], p[1], p[2], p[3]]),
                u32::from_le_bytes([p[4], p[5], p[6], p[7]]),
            )
        })
    }

    /// The object id of a 16-byte removal record.
    pub fn removal_id(&self) -> Option<u64> {
        (self.type_() == WATCH_TYPE_META
            && self.subtype() == WATCH_META_REMOVAL_NOTIFICATION
            && self.len() == 16)
            .then(|| u64::from_le_bytes(self.payload().try_into().expect("8 bytes")))
    }

    /// True for META records (removal, loss): they bypass filters and policy.
    #[inline]
    pub fn is_meta(&self) -> bool {
        self.type_() == WATCH_TYPE_META
    }

    /// The record as lowercase hex, bytes separated by spaces.
    pub fn hex(&self) -> String {
        hex(self.as_bytes())
    }
}

/// Lowercase hex of `bytes`, separated by spaces (`"01 00 00 01"`).
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The names `samples/watch_queue/watch_test.c` prints for key subtypes.
pub fn key_subtype_name(subtype: u8) -> Option<&'static str> {
    Some(match subtype {
        NOTIFY_KEY_INSTANTIATED => "instantiated",
        NOTIFY_KEY_UPDATED => "updated",
        NOTIFY_KEY_LINKED => "linked",
        NOTIFY_KEY_UNLINKED => "unlinked",
        NOTIFY_KEY_CLEARED => "cleared",
        NOTIFY_KEY_REVOKED => "revoked",
        NOTIFY_KEY_INVALIDATED => "invalidated",
        NOTIFY_KEY_SETATTR => "setattr",
        _ => return None,
    })
}

impl fmt::Debug for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Notification {{ type: {}, subtype: {}, info: {:#010x}, bytes: [{}] }}",
            self.type_(),
            self.subtype(),
            self.info(),
            self.hex()
        )
    }
}

impl fmt::Display for Notification {
    /// One line in the style of the kernel's sample consumer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.type_(), self.subtype()) {
            (WATCH_TYPE_META, WATCH_META_REMOVAL_NOTIFICATION) => {
                write!(f, "REMOVAL of watchpoint {:08x}", self.tag())?;
                if let Some(id) = self.removal_id() {
                    write!(f, " id={id}")?;
                }
                Ok(())
            }
            (WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION) => f.write_str("-- LOSS --"),
            (WATCH_TYPE_KEY_NOTIFY, st) if self.len() == 16 => {
                let (key, aux) = self.key_fields().expect("checked above");
                write!(
                    f,
                    "KEY {key:08x} change={st}[{}] aux={aux}",
                    key_subtype_name(st).unwrap_or("unknown")
                )
            }
            (WATCH_TYPE_BLOCK_NOTIFY, st) if self.len() == 24 => {
                let p = self.payload();
                let dev = u64::from_le_bytes(p[..8].try_into().expect("8 bytes"));
                let sector = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
                let name = block::NAMES.get(st as usize).copied().unwrap_or("unknown");
                write!(f, "BLOCK {dev:08x} e={st}[{name}] s={sector:x}")
            }
            (WATCH_TYPE_USB_NOTIFY, st) if self.len() >= usb::NAME_OFFSET => {
                let p = self.payload();
                let error = u32::from_le_bytes(p[..4].try_into().expect("4 bytes"));
                let reserved = u32::from_le_bytes(p[4..8].try_into().expect("4 bytes"));
                let n = (p[8] as usize).min(p.len() - 9);
                let name = String::from_utf8_lossy(&p[9..9 + n]);
                let what = usb::NAMES.get(st as usize).copied().unwrap_or("unknown");
                write!(f, "USB {name} {what} e={error:x} r={reserved:x}")
            }
            (WATCH_TYPE_MOUNT_NOTIFY, st) if self.len() == 24 => {
                let p = self.payload();
                let on = u64::from_le_bytes(p[..8].try_into().expect("8 bytes"));
                let aux = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
                const NAMES: [&str; 7] = [
                    "new-mount",
                    "unmount",
                    "expiry",
                    "readonly",
                    "setattr",
                    "move-from",
                    "move-to",
                ];
                let name = NAMES.get(st as usize).copied().unwrap_or("unknown");
                write!(f, "MOUNT {on:08x} change={st}[{name}] aux={aux:x}")?;
                if self.info() & WATCH_INFO_FLAG_0 != 0 {
                    f.write_str(" subtree")?;
                }
                if self.info() & WATCH_INFO_FLAG_1 != 0 {
                    f.write_str(" ro")?;
                }
                Ok(())
            }
            (WATCH_TYPE_SB_NOTIFY, st) if self.len() >= 16 => {
                let p = self.payload();
                let sb = u64::from_le_bytes(p[..8].try_into().expect("8 bytes"));
                let name = sb::NAMES.get(st as usize).copied().unwrap_or("unknown");
                write!(f, "SB {sb:08x} change={st}[{name}]")?;
                if self.len() == 24 {
                    let e = u32::from_le_bytes(p[8..12].try_into().expect("4 bytes"));
                    let c = u32::from_le_bytes(p[12..16].try_into().expect("4 bytes"));
                    write!(f, " error={e} cookie={c}")?;
                }
                if self.info() & WATCH_INFO_FLAG_0 != 0 {
                    f.write_str(" ro")?;
                }
                Ok(())
            }
            (ty, st) => write!(f, "type={ty} subtype={st} info={:08x}", self.info()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_key_update_bytes_match_spec_example() {
        // Tag 1 watching key 0x1234abcd, KEYCTL_UPDATE (spec §1.14).
        let mut n = Notification::key(NOTIFY_KEY_UPDATED, 0x1234abcd, 0);
        n.set_info_id(1 << WATCH_INFO_ID__SHIFT);
        assert_eq!(
            n.as_bytes(),
            &[0x01, 0x00, 0x00, 0x01, 0x10, 0x01, 0x00, 0x00, 0xcd, 0xab, 0x34, 0x12, 0, 0, 0, 0]
        );
        assert_eq!(n.hex(), "01 00 00 01 10 01 00 00 cd ab 34 12 00 00 00 00");
    }

    #[test]
    fn record_key_update_in_the_2019_generation() {
        let mut n = Notification::key(NOTIFY_KEY_UPDATED, 0x1234abcd, 7);
        n.set_info_id(1 << WATCH_INFO_ID__SHIFT);
        assert_eq!(
            n.to_v2().unwrap(),
            [0x03, 0, 0, 0x01, 0x10, 0, 0, 0x01, 0xcd, 0xab, 0x34, 0x12, 7, 0, 0, 0]
        );
        let mut r = Notification::removal(0x1234abcd);
        r.set_info_id(2 << WATCH_INFO_ID__SHIFT);
        assert_eq!(r.to_v2().unwrap(), [0, 0, 0, 0x01, 0x08, 0, 0, 0x02]);
    }

    #[test]
    fn record_block_and_usb_layouts() {
        let b = Notification::block(block::IO, 0x0800_0010, 0x1234);
        assert_eq!(b.len(), 24);
        assert_eq!(b.to_string(), "BLOCK 08000010 e=10[io] s=1234");
        let u = Notification::usb(usb::DEVICE_ADD, 0, "1-1.2");
        assert_eq!(u.len(), 17 + 5);
        assert_eq!(u.to_string(), "USB 1-1.2 dev-add e=0 r=0");
        assert_eq!(u.as_bytes()[16], 5);
        let long = "x".repeat(100);
        assert_eq!(
            Notification::usb(usb::DEVICE_ERROR, 5, &long).len(),
            17 + 63
        );
        // 2019 generation: BLOCK 4, USB 5 padded to whole slots.
        let v = u.to_v2().unwrap();
        assert_eq!((v[0], v.len()), (5, 24));
        assert_eq!(b.to_v2().unwrap()[0], 4);
    }

    #[test]
    fn record_loss_bytes() {
        let n = Notification::new(WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION, &[]).unwrap();
        assert_eq!(n.as_bytes(), &LOSS_RECORD);
        assert_eq!(n.to_string(), "-- LOSS --");
    }

    #[test]
    fn record_removal_is_16_bytes_or_8_for_id_zero() {
        let mut r = Notification::removal(0x1122334455667788);
        r.set_info_id(3 << 8);
        assert_eq!(r.hex(), "00 00 00 00 10 03 00 00 88 77 66 55 44 33 22 11");
        assert_eq!(r.removal_id(), Some(0x1122334455667788));
        let r0 = Notification::removal(0);
        assert_eq!(r0.as_bytes(), &[0, 0, 0, 0, 8, 0, 0, 0]);
        assert_eq!(r0.removal_id(), None);
    }

    #[test]
    fn record_tag_255_gives_info_ff10() {
        let mut n = Notification::key(NOTIFY_KEY_UPDATED, 1, 0);
        n.set_info_id(255 << 8);
        assert_eq!(n.info(), 0x0000ff10);
        assert_eq!(n.tag(), 255);
    }

    #[test]
    fn record_decode_rejects_bad_lengths() {
        assert_eq!(Notification::decode(&[0; 7]), Err(Errno::EINVAL));
        // length 4 < 8
        assert_eq!(
            Notification::decode(&[0, 0, 0, 0, 4, 0, 0, 0]),
            Err(Errno::EINVAL)
        );
        // length 16 > 8 available
        assert_eq!(
            Notification::decode(&[0, 0, 0, 0, 16, 0, 0, 0]),
            Err(Errno::EINVAL)
        );
        let two = [LOSS_RECORD, LOSS_RECORD].concat();
        assert_eq!(Notification::decode_all(&two).unwrap().len(), 2);
    }

    #[test]
    fn record_new_rejects_oversize_and_wide_type() {
        assert_eq!(
            Notification::new(1, 0, &[0; 120]).unwrap_err(),
            Errno::EINVAL
        );
        assert!(Notification::new(1, 0, &[0; 119]).is_ok());
        assert_eq!(
            Notification::new(1 << 24, 0, &[]).unwrap_err(),
            Errno::EINVAL
        );
    }

    #[test]
    fn record_type_info_keeps_length_and_tag() {
        let mut n = Notification::key(NOTIFY_KEY_LINKED, 5, 6);
        n.set_info_id(7 << 8);
        n.set_type_info(WATCH_INFO_FLAG_0 | 0xff);
        assert_eq!(n.info(), 0x0001_0790);
        assert_eq!(n.len(), 16);
    }

    /// The accessors a consumer decodes with: a key record's fields only
    /// for a 16-byte key record, META-ness by type alone, the subtype
    /// names of the kernel's sample consumer.
    #[test]
    fn record_accessors_decode_only_what_they_name() {
        let k = Notification::key(NOTIFY_KEY_LINKED, 0x0102_0304, 0x0a0b_0c0d);
        assert_eq!(k.key_fields(), Some((0x0102_0304, 0x0a0b_0c0d)));
        assert!(!k.is_meta());
        assert_eq!(k.removal_id(), None);
        // Not a key record, or not 16 bytes long: no key fields.
        let m = Notification::mount(1, 2, 3, 0);
        assert_eq!((m.key_fields(), m.is_meta()), (None, false));
        let long = Notification::new(WATCH_TYPE_KEY_NOTIFY, 0, &[1; 16]).unwrap();
        assert_eq!(long.key_fields(), None);
        let r = Notification::removal(9);
        assert!(r.is_meta());
        assert_eq!((r.key_fields(), r.removal_id()), (None, Some(9)));
        let loss =
            Notification::new(WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION, &[0; 8]).unwrap();
        assert_eq!(loss.removal_id(), None);
        assert_eq!(key_subtype_name(NOTIFY_KEY_SETATTR), Some("setattr"));
        assert_eq!(
            key_subtype_name(NOTIFY_KEY_INSTANTIATED),
            Some("instantiated")
        );
        assert_eq!(key_subtype_name(99), None);
        assert_eq!(hex(&[0, 0xab, 7]), "00 ab 07");
    }

    /// The one-line form of each kind of record, and what a record of an
    /// unexpected length falls back to (the generic line, never a panic).
    #[test]
    fn record_display_lines_and_their_length_guards() {
        let names = [
            "instantiated",
            "updated",
            "linked",
            "unlinked",
            "cleared",
            "revoked",
            "invalidated",
            "setattr",
        ];
        for (st, name) in names.iter().enumerate() {
            assert_eq!(key_subtype_name(st as u8), Some(*name));
            let k = Notification::key(st as u8, 0xab, 9);
            assert_eq!(
                k.to_string(),
                format!("KEY 000000ab change={st}[{name}] aux=9")
            );
        }
        let long_key = Notification::new(WATCH_TYPE_KEY_NOTIFY, 1, &[0; 16]).unwrap();
        assert_eq!(long_key.to_string(), "type=1 subtype=1 info=00000018");
        let short_block = Notification::new(WATCH_TYPE_BLOCK_NOTIFY, 1, &[0; 8]).unwrap();
        assert_eq!(short_block.to_string(), "type=2 subtype=1 info=00000010");
        // A USB name length byte past the record: the name is cut there.
        let mut usb_p = vec![0u8; 12];
        usb_p[8] = 200;
        usb_p[9..12].copy_from_slice(b"abc");
        let u = Notification::new(WATCH_TYPE_USB_NOTIFY, usb::DEVICE_ADD, &usb_p).unwrap();
        assert_eq!(u.to_string(), "USB abc dev-add e=0 r=0");
        let short_usb = Notification::new(WATCH_TYPE_USB_NOTIFY, 0, &[]).unwrap();
        assert_eq!(short_usb.to_string(), "type=3 subtype=0 info=00000008");
        let m = Notification::mount(3, 0x10, 0x20, WATCH_INFO_FLAG_0 | WATCH_INFO_FLAG_1);
        assert_eq!(
            m.to_string(),
            "MOUNT 00000010 change=3[readonly] aux=20 subtree ro"
        );
        let m1 = Notification::mount(0, 0x10, 0x20, WATCH_INFO_FLAG_1);
        assert_eq!(
            m1.to_string(),
            "MOUNT 00000010 change=0[new-mount] aux=20 ro"
        );
        let m0 = Notification::mount(9, 0x10, 0x20, 0);
        assert_eq!(m0.to_string(), "MOUNT 00000010 change=9[unknown] aux=20");
        let short_mount = Notification::new(WATCH_TYPE_MOUNT_NOTIFY, 0, &[0; 8]).unwrap();
        assert_eq!(short_mount.to_string(), "type=4 subtype=0 info=00000010");
        let sb0 = sb::NAMES[0];
        let s = Notification::superblock(0, 0x42, WATCH_INFO_FLAG_0, None);
        assert_eq!(s.to_string(), format!("SB 00000042 change=0[{sb0}] ro"));
        let e = Notification::superblock(0, 0x42, 0, Some((5, 6)));
        assert_eq!(
            e.to_string(),
            format!("SB 00000042 change=0[{sb0}] error=5 cookie=6")
        );
        let short_sb = Notification::new(WATCH_TYPE_SB_NOTIFY, 0, &[]).unwrap();
        assert_eq!(short_sb.to_string(), "type=5 subtype=0 info=00000008");
        assert_eq!(
            format!("{:?}", Notification::removal(0)),
            "Notification { type: 0, subtype: 0, info: 0x00000008, bytes: [00 00 00 00 08 00 00 00] }"
        );
    }

    /// Mount and superblock records: their flags in the type-info bits
    /// (nothing else), and both in the 2019 generation byte for byte
    /// (spec §2.2: MOUNT 1, SB 2, the tag in the top byte of `info`, the
    /// mount ids as 32 bits, "in subtree" at 0x200 and "now read-only"
    /// at FLAG_0); a META record other than the removal has no 2019 form.
    #[test]
    fn record_mount_and_superblock_flags_and_2019_layouts() {
        let mut m = Notification::mount(2, 0x1_0000_0005, 7, WATCH_INFO_FLAG_0 | WATCH_INFO_FLAG_1);
        assert_eq!(m.info(), 24 | WATCH_INFO_FLAG_0 | WATCH_INFO_FLAG_1);
        assert!(!m.is_empty());
        m.set_info_id(3 << WATCH_INFO_ID__SHIFT);
        assert_eq!(
            m.to_v2().unwrap(),
            [1, 0, 0, 2, 0x10, 0x02, 0x01, 0x03, 5, 0, 0, 0, 7, 0, 0, 0]
        );
        let mut plain = Notification::mount(2, 5, 7, 0);
        plain.set_info_id(3 << WATCH_INFO_ID__SHIFT);
        assert_eq!(plain.info(), 0x0000_0318);
        assert_eq!(
            plain.to_v2().unwrap(),
            [1, 0, 0, 2, 0x10, 0, 0, 0x03, 5, 0, 0, 0, 7, 0, 0, 0]
        );
        let mut sb = Notification::superblock(1, 0x99, WATCH_INFO_FLAG_0, None);
        assert_eq!(sb.info(), 16 | WATCH_INFO_FLAG_0);
        sb.set_info_id(4 << WATCH_INFO_ID__SHIFT);
        assert_eq!(
            sb.to_v2().unwrap(),
            [2, 0, 0, 1, 0x10, 0, 0x01, 0x04, 0x99, 0, 0, 0, 0, 0, 0, 0]
        );
        let err = Notification::superblock(3, 1, 0, Some((5, 6)));
        assert_eq!((err.len(), err.info() & WATCH_INFO_TYPE_INFO), (24, 0));
        let loss = Notification::new(WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION, &[]).unwrap();
        assert_eq!(loss.to_v2(), None);
    }

    proptest::proptest! {
        #[test]
        fn record_decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(all) = Notification::decode_all(&bytes) {
                let total: usize = all.iter().map(|n| n.len()).sum();
                proptest::prop_assert_eq!(total, bytes.len());
            }
        }
    }
}

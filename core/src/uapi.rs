//! The kernel's user-visible constants and wire layouts.
//!
//! Owns every number and `#[repr(C)]` struct of the merged
//! `include/uapi/linux/watch_queue.h` (Linux 5.8 and later) plus the few
//! pipe, fcntl and keyctl numbers a notification consumer meets. Sizes and
//! field offsets are checked at compile time, so a layout that drifts from the
//! kernel's fails the build rather than a consumer.
//!
//! All multi-byte fields are little-endian on the wire (watchq emulates the
//! generic little-endian ABI whatever the host).

use std::mem::{align_of, offset_of, size_of};

/// `O_NOTIFICATION_PIPE`: `pipe2()` flag asking for a notification pipe. Defined as `O_EXCL` (0x80).
pub const O_NOTIFICATION_PIPE: u32 = 0x80;
/// `O_NONBLOCK` (generic value).
pub const O_NONBLOCK: u32 = 0o4000;
/// `O_CLOEXEC` (generic value).
pub const O_CLOEXEC: u32 = 0o2000000;
/// `O_DIRECT` (x86 value): packet-mode pipe.
pub const O_DIRECT: u32 = 0o40000;
/// `O_RDONLY`.
pub const O_RDONLY: u32 = 0;
/// `O_WRONLY`.
pub const O_WRONLY: u32 = 1;
/// `O_RDWR`.
pub const O_RDWR: u32 = 2;
/// `O_APPEND`.
pub const O_APPEND: u32 = 0o2000;
/// `O_ACCMODE`: the access-mode bits.
pub const O_ACCMODE_MASK: u32 = 0o3;
/// `O_CREAT`.
pub const O_CREAT: u32 = 0o100;
/// `O_EXCL` (the same bit as [`O_NOTIFICATION_PIPE`]).
pub const O_EXCL: u32 = 0o200;
/// `O_TRUNC`.
pub const O_TRUNC: u32 = 0o1000;
/// `O_ASYNC` (`FASYNC`).
pub const O_ASYNC: u32 = 0o20000;
/// `O_DIRECTORY` (x86 value).
pub const O_DIRECTORY: u32 = 0o200000;
/// `O_NOFOLLOW` (x86 value).
pub const O_NOFOLLOW: u32 = 0o400000;
/// `O_NOATIME`.
pub const O_NOATIME: u32 = 0o1000000;
/// `O_LARGEFILE` (x86-64 value; open() adds it on 64-bit).
pub const O_LARGEFILE: u32 = 0o100000;
/// Status flags `F_SETFL` may change (`SETFL_MASK`).
pub const SETFL_MASK: u32 = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_ASYNC;

/// `FIONBIO`: set or clear O_NONBLOCK from an int.
pub const FIONBIO: u64 = 0x5421;
/// `FIOCLEX`: set close-on-exec.
pub const FIOCLEX: u64 = 0x5451;
/// `FIONCLEX`: clear close-on-exec.
pub const FIONCLEX: u64 = 0x5450;

/// `SEEK_SET`.
pub const SEEK_SET: i32 = 0;
/// `SEEK_CUR`.
pub const SEEK_CUR: i32 = 1;
/// `SEEK_END`.
pub const SEEK_END: i32 = 2;

/// `MFD_CLOEXEC`.
pub const MFD_CLOEXEC: u32 = 1;
/// `MFD_ALLOW_SEALING`.
pub const MFD_ALLOW_SEALING: u32 = 2;

/// `IOC_WATCH_QUEUE_SET_SIZE` = `_IO('W', 0x60)`: argument is a number of notes.
pub const IOC_WATCH_QUEUE_SET_SIZE: u64 = 0x5760;
/// `IOC_WATCH_QUEUE_SET_FILTER` = `_IO('W', 0x61)`: argument points at a [`RawWatchNotificationFilter`].
pub const IOC_WATCH_QUEUE_SET_FILTER: u64 = 0x5761;
/// `FIONREAD`: bytes of queued records.
pub const FIONREAD: u64 = 0x541B;

/// `F_GETFD`.
pub const F_GETFD: i32 = 1;
/// `F_SETFD`.
pub const F_SETFD: i32 = 2;
/// `F_GETFL`.
pub const F_GETFL: i32 = 3;
/// `F_SETFL`.
pub const F_SETFL: i32 = 4;
/// `F_DUPFD`.
pub const F_DUPFD: i32 = 0;
/// `F_DUPFD_CLOEXEC`.
pub const F_DUPFD_CLOEXEC: i32 = 1030;
/// `F_SETPIPE_SZ`.
pub const F_SETPIPE_SZ: i32 = 1031;
/// `F_GETPIPE_SZ`.
pub const F_GETPIPE_SZ: i32 = 1032;
/// `FD_CLOEXEC`.
pub const FD_CLOEXEC: i32 = 1;

/// `POLLIN`.
pub const POLLIN: u16 = 0x001;
/// `POLLPRI`.
pub const POLLPRI: u16 = 0x002;
/// `POLLOUT`.
pub const POLLOUT: u16 = 0x004;
/// `POLLERR`.
pub const POLLERR: u16 = 0x008;
/// `POLLHUP`.
pub const POLLHUP: u16 = 0x010;
/// `POLLNVAL`.
pub const POLLNVAL: u16 = 0x020;
/// `POLLRDNORM`.
pub const POLLRDNORM: u16 = 0x040;
/// `POLLWRNORM`.
pub const POLLWRNORM: u16 = 0x100;

/// `SPLICE_F_MOVE`.
pub const SPLICE_F_MOVE: u32 = 1;
/// `SPLICE_F_NONBLOCK`.
pub const SPLICE_F_NONBLOCK: u32 = 2;
/// `SPLICE_F_MORE`.
pub const SPLICE_F_MORE: u32 = 4;
/// `SPLICE_F_GIFT`.
pub const SPLICE_F_GIFT: u32 = 8;
/// Every splice flag the kernel accepts.
pub const SPLICE_F_ALL: u32 = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT;

/// Page size of the emulated machine (4 KiB, as on x86-64).
pub const PAGE_SIZE: usize = 4096;
/// Default pipe capacity in pages (`PIPE_DEF_BUFFERS`).
pub const PIPE_DEF_BUFFERS: usize = 16;
/// `/proc/sys/fs/pipe-max-size` default.
pub const PIPE_MAX_SIZE: usize = 1 << 20;

/// `WATCH_QUEUE_NOTE_SIZE`: bytes of one preallocated note.
pub const WATCH_QUEUE_NOTE_SIZE: usize = 128;
/// `WATCH_QUEUE_NOTES_PER_PAGE` with 4 KiB pages.
pub const WATCH_QUEUE_NOTES_PER_PAGE: usize = PAGE_SIZE / WATCH_QUEUE_NOTE_SIZE;
/// Largest `nr_notes` `IOC_WATCH_QUEUE_SET_SIZE` accepts.
pub const WATCH_QUEUE_MAX_NOTES: u32 = 512;
/// Largest `nr_filters` `IOC_WATCH_QUEUE_SET_FILTER` accepts.
pub const WATCH_QUEUE_MAX_FILTERS: u32 = 16;

/// `WATCH_TYPE_META`: removal and loss records.
pub const WATCH_TYPE_META: u32 = 0;
/// `WATCH_TYPE_KEY_NOTIFY`: key and keyring events.
pub const WATCH_TYPE_KEY_NOTIFY: u32 = 1;
/// `WATCH_TYPE__NR`: number of types the merged kernel knows.
pub const WATCH_TYPE__NR: u32 = 2;

/// `WATCH_META_REMOVAL_NOTIFICATION`.
pub const WATCH_META_REMOVAL_NOTIFICATION: u8 = 0;
/// `WATCH_META_LOSS_NOTIFICATION`.
pub const WATCH_META_LOSS_NOTIFICATION: u8 = 1;

/// `WATCH_INFO_LENGTH`: record length in bytes, header included.
pub const WATCH_INFO_LENGTH: u32 = 0x0000_007f;
/// `WATCH_INFO_LENGTH__SHIFT`.
pub const WATCH_INFO_LENGTH__SHIFT: u32 = 0;
/// `WATCH_INFO_ID`: the watch's tag.
pub const WATCH_INFO_ID: u32 = 0x0000_ff00;
/// `WATCH_INFO_ID__SHIFT`.
pub const WATCH_INFO_ID__SHIFT: u32 = 8;
/// `WATCH_INFO_TYPE_INFO`: type-specific information.
pub const WATCH_INFO_TYPE_INFO: u32 = 0xffff_0000;
/// `WATCH_INFO_TYPE_INFO__SHIFT`.
pub const WATCH_INFO_TYPE_INFO__SHIFT: u32 = 16;
/// `WATCH_INFO_FLAG_0` (flags 1..7 follow at the next bits).
pub const WATCH_INFO_FLAG_0: u32 = 0x0001_0000;
/// `WATCH_INFO_FLAG_1`.
pub const WATCH_INFO_FLAG_1: u32 = 0x0002_0000;
/// `WATCH_INFO_FLAG_2`.
pub const WATCH_INFO_FLAG_2: u32 = 0x0004_0000;
/// `WATCH_INFO_FLAG_3`.
pub const WATCH_INFO_FLAG_3: u32 = 0x0008_0000;
/// `WATCH_INFO_FLAG_4`.
pub const WATCH_INFO_FLAG_4: u32 = 0x0010_0000;
/// `WATCH_INFO_FLAG_5`.
pub const WATCH_INFO_FLAG_5: u32 = 0x0020_0000;
/// `WATCH_INFO_FLAG_6`.
pub const WATCH_INFO_FLAG_6: u32 = 0x0040_0000;
/// `WATCH_INFO_FLAG_7`.
pub const WATCH_INFO_FLAG_7: u32 = 0x0080_0000;

/// `enum key_notification_subtype`: `NOTIFY_KEY_INSTANTIATED` (aux = error).
pub const NOTIFY_KEY_INSTANTIATED: u8 = 0;
/// `NOTIFY_KEY_UPDATED`.
pub const NOTIFY_KEY_UPDATED: u8 = 1;
/// `NOTIFY_KEY_LINKED` (aux = linked key).
pub const NOTIFY_KEY_LINKED: u8 = 2;
/// `NOTIFY_KEY_UNLINKED` (aux = unlinked key).
pub const NOTIFY_KEY_UNLINKED: u8 = 3;
/// `NOTIFY_KEY_CLEARED`.
pub const NOTIFY_KEY_CLEARED: u8 = 4;
/// `NOTIFY_KEY_REVOKED`.
pub const NOTIFY_KEY_REVOKED: u8 = 5;
/// `NOTIFY_KEY_INVALIDATED`.
pub const NOTIFY_KEY_INVALIDATED: u8 = 6;
/// `NOTIFY_KEY_SETATTR`.
pub const NOTIFY_KEY_SETATTR: u8 = 7;

/// `WATCH_TYPE_BLOCK_NOTIFY` of the pipe-era device series (Jan 2020; never merged).
pub const WATCH_TYPE_BLOCK_NOTIFY: u32 = 2;
/// `WATCH_TYPE_USB_NOTIFY` of the pipe-era device series.
pub const WATCH_TYPE_USB_NOTIFY: u32 = 3;
/// Mount records in the pipe generation: watchq's id, after the device
/// series' (the 2020 mount patches numbered it inconsistently; docs/uapi.md).
pub const WATCH_TYPE_MOUNT_NOTIFY: u32 = 4;
/// Superblock records in the pipe generation: watchq's id (docs/uapi.md).
pub const WATCH_TYPE_SB_NOTIFY: u32 = 5;
/// Types a pipe queue's filter stores: every source watchq emulates.
/// (The merged kernel's bound is 2; types it would ignore are never
/// posted by its sources, so key records filter the same either way.)
pub const WATCH_TYPE_ALL_NR: u32 = 6;

/// The system-call numbers watchq serves the unmerged notification calls
/// under (`syscall(nr, …)` under `watchq exec`). No Linux release assigns
/// them on any architecture (every table ends below 1024; x32's bit is
/// 0x4000_0000), so a real system call is never taken for one of these: the
/// proposals' own numbers (436, 440, 441) belong to `close_range`,
/// `process_madvise` and `epoll_pwait2` on every kernel since 5.9/5.10,
/// and always reach the real kernel. On a real kernel these numbers are
/// `ENOSYS`.
pub mod sys {
    /// `watch_mount(dfd, path, at_flags, watch_fd, tag)` (2020 proposal; its number there: 440).
    pub const WATCH_MOUNT: i64 = 0x7771_0001;
    /// `watch_sb(dfd, path, at_flags, watch_fd, tag)` (2020 proposal; 441 there).
    pub const WATCH_SB: i64 = 0x7771_0002;
    /// `watch_devices(watch_fd, tag, flags)` (the device series; 436 there).
    pub const WATCH_DEVICES: i64 = 0x7771_0003;
}

/// `enum block_notification_type`: a request error of this kind.
pub mod block {
    /// `NOTIFY_BLOCK_ERROR_TIMEOUT`.
    pub const TIMEOUT: u8 = 1;
    /// `NOTIFY_BLOCK_ERROR_NO_SPACE`.
    pub const NO_SPACE: u8 = 2;
    /// `NOTIFY_BLOCK_ERROR_RECOVERABLE_TRANSPORT`.
    pub const RECOVERABLE_TRANSPORT: u8 = 3;
    /// `NOTIFY_BLOCK_ERROR_CRITICAL_TARGET`.
    pub const CRITICAL_TARGET: u8 = 4;
    /// `NOTIFY_BLOCK_ERROR_CRITICAL_NEXUS`.
    pub const CRITICAL_NEXUS: u8 = 5;
    /// `NOTIFY_BLOCK_ERROR_CRITICAL_MEDIUM`.
    pub const CRITICAL_MEDIUM: u8 = 6;
    /// `NOTIFY_BLOCK_ERROR_PROTECTION`.
    pub const PROTECTION: u8 = 7;
    /// `NOTIFY_BLOCK_ERROR_KERNEL_RESOURCE`.
    pub const KERNEL_RESOURCE: u8 = 8;
    /// `NOTIFY_BLOCK_ERROR_DEVICE_RESOURCE`.
    pub const DEVICE_RESOURCE: u8 = 9;
    /// `NOTIFY_BLOCK_ERROR_IO`.
    pub const IO: u8 = 10;
    /// Names, by subtype (index 0 unused), as the series' sample prints them.
    pub const NAMES: [&str; 11] = [
        "",
        "timeout",
        "no-space",
        "recoverable-transport",
        "critical-target",
        "critical-nexus",
        "critical-medium",
        "protection",
        "kernel-resource",
        "device-resource",
        "io",
    ];
}

/// `enum usb_notification_type` (Jan 2020).
pub mod usb {
    /// `NOTIFY_USB_DEVICE_ADD`.
    pub const DEVICE_ADD: u8 = 0;
    /// `NOTIFY_USB_DEVICE_REMOVE`.
    pub const DEVICE_REMOVE: u8 = 1;
    /// `NOTIFY_USB_DEVICE_RESET`.
    pub const DEVICE_RESET: u8 = 2;
    /// `NOTIFY_USB_DEVICE_ERROR`.
    pub const DEVICE_ERROR: u8 = 3;
    /// `USB_NOTIFICATION_MAX_NAME_LEN`.
    pub const MAX_NAME_LEN: usize = 63;
    /// Offset of the name in the record (after `error`, `reserved`, `name_len`).
    pub const NAME_OFFSET: usize = 17;
    /// Names, by subtype, as the series' sample prints them.
    pub const NAMES: [&str; 4] = ["dev-add", "dev-remove", "dev-reset", "dev-error"];
}

/// Mount notification subtypes (`enum mount_notification_subtype`).
pub mod mount {
    /// A mount was made under the mount.
    pub const NEW_MOUNT: u8 = 0;
    /// A mount under it was unmounted.
    pub const UNMOUNT: u8 = 1;
    /// A mount under it expired.
    pub const EXPIRY: u8 = 2;
    /// It became read-only (flag IS_NOW_RO) or read-write.
    pub const READONLY: u8 = 3;
    /// Its attributes changed.
    pub const SETATTR: u8 = 4;
    /// A mount was moved away from under it.
    pub const MOVE_FROM: u8 = 5;
    /// A mount was moved to under it.
    pub const MOVE_TO: u8 = 6;
    /// Names, by subtype.
    pub const NAMES: [&str; 7] = [
        "new-mount",
        "unmount",
        "expiry",
        "readonly",
        "setattr",
        "move-from",
        "move-to",
    ];
}

/// Superblock notification subtypes.
pub mod sb {
    /// It became read-only (flag) or read-write.
    pub const READONLY: u8 = 0;
    /// A writeback (or other) error: the 24-byte record with error and cookie.
    pub const ERROR: u8 = 1;
    /// A quota was exceeded.
    pub const EDQUOT: u8 = 2;
    /// A network filesystem's server went away or came back.
    pub const NETWORK: u8 = 3;
    /// Names, by subtype.
    pub const NAMES: [&str; 4] = ["readonly", "error", "edquot", "network"];
}

/// `struct block_notification`: a request error on a block device.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawBlockNotification {
    /// Header.
    pub watch: RawWatchNotification,
    /// The disk's `dev_t` (kernel encoding), or 0.
    pub dev: u64,
    /// The sector of the failed request.
    pub sector: u64,
}

const _: () = {
    assert!(size_of::<RawBlockNotification>() == 24);
    assert!(offset_of!(RawBlockNotification, dev) == 8);
    assert!(offset_of!(RawBlockNotification, sector) == 16);
};

// The special key ids of keyctl.h (`key_serial_t`).
/// `KEY_SPEC_THREAD_KEYRING`.
pub const KEY_SPEC_THREAD_KEYRING: i32 = -1;
/// `KEY_SPEC_PROCESS_KEYRING`.
pub const KEY_SPEC_PROCESS_KEYRING: i32 = -2;
/// `KEY_SPEC_SESSION_KEYRING`.
pub const KEY_SPEC_SESSION_KEYRING: i32 = -3;
/// `KEY_SPEC_USER_KEYRING`.
pub const KEY_SPEC_USER_KEYRING: i32 = -4;
/// `KEY_SPEC_USER_SESSION_KEYRING`.
pub const KEY_SPEC_USER_SESSION_KEYRING: i32 = -5;
/// `KEY_SPEC_GROUP_KEYRING` (never implemented by the kernel: EINVAL).
pub const KEY_SPEC_GROUP_KEYRING: i32 = -6;
/// `KEY_SPEC_REQKEY_AUTH_KEY`.
pub const KEY_SPEC_REQKEY_AUTH_KEY: i32 = -7;
/// `KEY_SPEC_REQUESTOR_KEYRING`.
pub const KEY_SPEC_REQUESTOR_KEYRING: i32 = -8;

/// `KEYCTL_WATCH_KEY`.
pub const KEYCTL_WATCH_KEY: u32 = 32;
/// `KEYCTL_CAPS1_NOTIFICATIONS`: bit in byte 1 of `KEYCTL_CAPABILITIES`.
pub const KEYCTL_CAPS1_NOTIFICATIONS: u8 = 0x04;

/// `struct watch_notification`: the 8-byte header of every record.
///
/// `type:24` and `subtype:8` share the first word: on the little-endian ABI
/// that word is `type | subtype << 24`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawWatchNotification {
    /// `type | subtype << 24`.
    pub type_subtype: u32,
    /// Length, watch tag and type-specific information.
    pub info: u32,
}

/// `struct watch_notification_removal`: a removal record that names the object.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawWatchNotificationRemoval {
    /// The header: type META, subtype REMOVAL, length 16.
    pub watch: RawWatchNotification,
    /// The watched object's id (for keys, the serial).
    pub id: u64,
}

/// `struct watch_notification_type_filter`: one entry of a filter.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawWatchNotificationTypeFilter {
    /// The record type this entry applies to.
    pub type_: u32,
    /// Required value of `info & info_mask`.
    pub info_filter: u32,
    /// Which bits of `info` to compare.
    pub info_mask: u32,
    /// Bitmap of accepted subtypes (only word 0 is used by the kernel).
    pub subtype_filter: [u32; 8],
}

/// `struct watch_notification_filter` without its flexible `filters[]` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawWatchNotificationFilter {
    /// Number of entries following the header.
    pub nr_filters: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// `struct key_notification`: a key event record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawKeyNotification {
    /// The header: type KEY_NOTIFY, length 16.
    pub watch: RawWatchNotification,
    /// The key the event happened on.
    pub key_id: u32,
    /// Per-subtype extra (the linked key, or an error).
    pub aux: u32,
}

const _: () = {
    assert!(size_of::<RawWatchNotification>() == 8);
    assert!(align_of::<RawWatchNotification>() == 4);
    assert!(offset_of!(RawWatchNotification, info) == 4);
    assert!(size_of::<RawWatchNotificationRemoval>() == 16);
    assert!(offset_of!(RawWatchNotificationRemoval, id) == 8);
    assert!(size_of::<RawWatchNotificationTypeFilter>() == 44);
    assert!(align_of::<RawWatchNotificationTypeFilter>() == 4);
    assert!(offset_of!(RawWatchNotificationTypeFilter, info_filter) == 4);
    assert!(offset_of!(RawWatchNotificationTypeFilter, info_mask) == 8);
    assert!(offset_of!(RawWatchNotificationTypeFilter, subtype_filter) == 12);
    assert!(size_of::<RawWatchNotificationFilter>() == 8);
    assert!(size_of::<RawKeyNotification>() == 16);
    assert!(offset_of!(RawKeyNotification, key_id) == 8);
    assert!(offset_of!(RawKeyNotification, aux) == 12);
    assert!(WATCH_QUEUE_NOTES_PER_PAGE == 32);
    // A record's length must fit the length field and a note.
    assert!(WATCH_INFO_LENGTH as usize <= WATCH_QUEUE_NOTE_SIZE);
};

impl RawWatchNotificationTypeFilter {
    /// The entry as the 44 little-endian bytes a user passes to `SET_FILTER`.
    pub fn to_bytes(&self) -> [u8; 44] {
        let mut b = [0u8; 44];
        b[0..4].copy_from_slice(&self.type_.to_le_bytes());
        b[4..8].copy_from_slice(&self.info_filter.to_le_bytes());
        b[8..12].copy_from_slice(&self.info_mask.to_le_bytes());
        for (i, w) in self.subtype_filter.iter().enumerate() {
            b[12 + 4 * i..16 + 4 * i].copy_from_slice(&w.to_le_bytes());
        }
        b
    }
}

/// Builds the user-memory image of a `struct watch_notification_filter` with these entries.
///
/// The result is what a C consumer would pass to `IOC_WATCH_QUEUE_SET_FILTER`.
pub fn filter_blob(entries: &[RawWatchNotificationTypeFilter]) -> Vec<u8> {
    filter_blob_raw(entries.len() as u32, 0, entries)
}

/// Like [`filter_blob`] but with an explicit (possibly bogus) header.
pub fn filter_blob_raw(
    nr_filters: u32,
    reserved: u32,
    entries: &[RawWatchNotificationTypeFilter],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + 44 * entries.len());
    v.extend_from_slice(&nr_filters.to_le_bytes());
    v.extend_from_slice(&reserved.to_le_bytes());
    for e in entries {
        v.extend_from_slice(&e.to_bytes());
    }
    v
}

/// The 2019 design's uapi (the seed's "ver #2", June 2019): a
/// `/dev/watch_queue` device with a user-mmapped ring of 8-byte slots.
///
/// Type ids, the `info` layout (length in bytes, a multiple of 8, in bits
/// 3..=8; the watch tag in the top byte; OVERRUN on the record after a
/// loss) and the ioctl numbers differ from the merged design's.
pub mod v2 {
    use super::RawWatchNotification;
    use std::mem::{offset_of, size_of};

    /// `WATCH_TYPE_META`.
    pub const WATCH_TYPE_META: u32 = 0;
    /// `WATCH_TYPE_MOUNT_NOTIFY`.
    pub const WATCH_TYPE_MOUNT_NOTIFY: u32 = 1;
    /// `WATCH_TYPE_SB_NOTIFY`.
    pub const WATCH_TYPE_SB_NOTIFY: u32 = 2;
    /// `WATCH_TYPE_KEY_NOTIFY`.
    pub const WATCH_TYPE_KEY_NOTIFY: u32 = 3;
    /// `WATCH_TYPE_BLOCK_NOTIFY`.
    pub const WATCH_TYPE_BLOCK_NOTIFY: u32 = 4;
    /// `WATCH_TYPE_USB_NOTIFY` (added by the June 2019 USB patch).
    pub const WATCH_TYPE_USB_NOTIFY: u32 = 5;
    /// `WATCH_TYPE___NR`: types a filter may name.
    pub const WATCH_TYPE__NR: u32 = 6;

    /// `WATCH_META_SKIP_NOTIFICATION`: padding to the end of the ring, and the meta header.
    pub const WATCH_META_SKIP_NOTIFICATION: u8 = 0;
    /// `WATCH_META_REMOVAL_NOTIFICATION`.
    pub const WATCH_META_REMOVAL_NOTIFICATION: u8 = 1;

    /// `WATCH_INFO_OVERRUN`: records were lost before this one.
    pub const WATCH_INFO_OVERRUN: u32 = 0x0000_0001;
    /// `WATCH_INFO_ENOMEM`.
    pub const WATCH_INFO_ENOMEM: u32 = 0x0000_0002;
    /// `WATCH_INFO_RECURSIVE`.
    pub const WATCH_INFO_RECURSIVE: u32 = 0x0000_0004;
    /// `WATCH_INFO_LENGTH`: the record's length in bytes, a multiple of 8 (8..=504).
    pub const WATCH_INFO_LENGTH: u32 = 0x0000_01f8;
    /// `WATCH_LENGTH_SHIFT`: `(info & WATCH_INFO_LENGTH) >> 3` is the length in slots.
    pub const WATCH_LENGTH_SHIFT: u32 = 3;
    /// `WATCH_INFO_IN_SUBTREE`: a mount event from below the watched mount.
    pub const WATCH_INFO_IN_SUBTREE: u32 = 0x0000_0200;
    /// `WATCH_INFO_TYPE_FLAGS`.
    pub const WATCH_INFO_TYPE_FLAGS: u32 = 0x00ff_0000;
    /// `WATCH_INFO_ID`: the watch tag.
    pub const WATCH_INFO_ID: u32 = 0xff00_0000;
    /// `WATCH_INFO_ID__SHIFT`.
    pub const WATCH_INFO_ID__SHIFT: u32 = 24;

    /// `WATCH_LENGTH_GRANULARITY`: bytes per slot.
    pub const WATCH_LENGTH_GRANULARITY: usize = 8;
    /// The largest record, in bytes.
    pub const MAX_RECORD_LEN: usize = 504;

    /// `IOC_WATCH_QUEUE_SET_SIZE` = `_IO('s', 0x01)`: the argument is a number of pages.
    pub const IOC_WATCH_QUEUE_SET_SIZE: u64 = 0x7301;
    /// `IOC_WATCH_QUEUE_SET_FILTER` = `_IO('s', 0x02)`.
    pub const IOC_WATCH_QUEUE_SET_FILTER: u64 = 0x7302;
    /// Most pages a ring may have.
    pub const MAX_PAGES: u64 = 16;

    /// The meta header in slot 0: a SKIP record over itself, then the
    /// free-running `head` (the producer's) and `tail` (the consumer's)
    /// slot indices, and `mask` (slots − 1).
    ///
    /// watchq keeps the header 8-aligned with a reserved word, so it fills
    /// three whole slots and records start at slot 3 (the later 2019
    /// layout). The June 2019 header was 20 bytes counted as two slots, so
    /// its `mask` word lay in the first record slot and the first record
    /// overwrote it; see docs/mmap-ring.md.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct RawWatchQueueMeta {
        /// META/SKIP header covering the meta slots.
        pub watch: RawWatchNotification,
        /// Producer index (slots, free-running).
        pub head: u32,
        /// Consumer index (slots, free-running).
        pub tail: u32,
        /// Slots − 1.
        pub mask: u32,
        /// Zero.
        pub reserved: u32,
    }

    /// Slots the meta header occupies (`metalen`).
    pub const META_SLOTS: usize = size_of::<RawWatchQueueMeta>() / WATCH_LENGTH_GRANULARITY;

    /// 32-bit word index of `head` in the ring.
    pub const HEAD_WORD: usize = offset_of!(RawWatchQueueMeta, head) / 4;
    /// 32-bit word index of `tail`.
    pub const TAIL_WORD: usize = offset_of!(RawWatchQueueMeta, tail) / 4;
    /// 32-bit word index of `mask`.
    pub const MASK_WORD: usize = offset_of!(RawWatchQueueMeta, mask) / 4;

    const _: () = {
        assert!(size_of::<RawWatchQueueMeta>() == 24);
        assert!(META_SLOTS == 3);
        assert!(HEAD_WORD == 2 && TAIL_WORD == 3 && MASK_WORD == 4);
        assert!(MAX_RECORD_LEN == WATCH_INFO_LENGTH as usize);
    };
}

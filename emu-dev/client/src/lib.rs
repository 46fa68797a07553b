//! A consumer API for notification queues, written once and run on either
//! the real kernel or watchq.
//!
//! [`NotificationQueue`] is what a consumer holds: it creates a
//! notification pipe, sizes it, sets a filter, adds watches and reads typed
//! [`Record`]s. Underneath is a [`Backend`]: [`RealKernel`] makes the real
//! system calls (`pipe2(O_NOTIFICATION_PIPE)`, the `IOC_WATCH_QUEUE_*`
//! ioctls, `keyctl(KEYCTL_WATCH_KEY)`, `read`, `poll`); [`Emulated`] makes
//! the same calls on a watchq process (feature `emulated`). On a kernel built without
//! `CONFIG_WATCH_QUEUE` the real backend fails to create a queue with
//! `ENOPKG`, exactly as the kernel does, so a consumer's fallback path can
//! be tested on both.
//!
//! Reading real notifications: the session keyring's changes, on the
//! machine's own kernel. Where the kernel lacks `CONFIG_WATCH_QUEUE`
//! (Debian's, and most CI machines') the queue cannot be made and the
//! consumer says so; where it has it, the key added here is read back as a
//! `Linked` record.
//!
//! ```
//! use watchq_client::{Errno, KeyChange, NotificationQueue, RealKernel, Record};
//! use watchq_core::uapi::KEY_SPEC_SESSION_KEYRING;
//!
//! let mut q = match NotificationQueue::new(RealKernel) {
//!     Ok(q) => q,
//!     Err(Errno::ENOPKG) => {
//!         eprintln!("this kernel has no notification queues (CONFIG_WATCH_QUEUE)");
//!         return Ok(());
//!     }
//!     Err(e) => return Err(e.into()),
//! };
//! q.set_size(16)?;
//! q.watch_key(KEY_SPEC_SESSION_KEYRING, 1)?;
//! // ... another program (or this one) changes the session keyring ...
//! for record in q.read_available()? {
//!     if let Record::Key { change: KeyChange::Linked, aux, .. } = record {
//!         println!("key {aux} linked into the session keyring");
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same consumer on watchq's emulated kernel (feature `emulated`),
//! as a unit test runs it:
//!
//! ```
//! # #[cfg(feature = "emulated")] {
//! use watchq_client::{Emulated, KeyChange, NotificationQueue, Record};
//! use watchq_core::uapi::KEY_SPEC_SESSION_KEYRING;
//! use watchq_kernel::prelude::*;
//! use watchq_kernel::{Kernel, KernelConfig};
//!
//! let kernel = Kernel::new(KernelConfig::default());
//! let p = kernel.spawn(1000, 1000);
//! p.keyctl_join_session_keyring(None)?;
//! let mut q = NotificationQueue::new(Emulated::new(p.clone()))?;
//! q.set_size(16)?;
//! q.watch_key(KEY_SPEC_SESSION_KEYRING, 1)?;
//! let key = p.add_key("user", Some("k"), b"v", KEY_SPEC_SESSION_KEYRING)?;
//! let records = q.read_available()?;
//! assert_eq!(
//!     records,
//!     [Record::Key { tag: 1, change: KeyChange::Linked, key: 0x1000_0001, aux: key as u32 }]
//! );
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Records are parsed with every length checked: a truncated buffer, a
//! length field under 8 bytes, or a record of a known type with the wrong
//! length is a [`RecordError`], never a panic.
#![deny(unsafe_code)] // one exception: backend::real makes the real system calls
#![warn(missing_docs)]

mod backend;
#[cfg(feature = "emulated")]
mod emulated;
mod filter;
mod queue;
mod record;

pub use backend::{Backend, RealKernel};
#[cfg(feature = "emulated")]
pub use emulated::Emulated;
pub use filter::{Filter, FilterEntry};
pub use queue::{ClientError, NotificationQueue, Records};
pub use record::{KeyChange, Record, RecordError};
pub use watchq_core::Errno;

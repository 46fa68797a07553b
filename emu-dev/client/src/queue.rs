//! [`NotificationQueue`]: the read end of a notification pipe.

use crate::{Backend, Filter, Record, RecordError};
use std::fmt;
use watchq_core::Errno;

/// Why a queue operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The system call failed with this errno.
    Sys(Errno),
    /// The kernel returned bytes that are not records.
    Record(RecordError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Sys(e) => write!(f, "{e} ({})", e.name()),
            ClientError::Record(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<Errno> for ClientError {
    fn from(e: Errno) -> Self {
        ClientError::Sys(e)
    }
}

impl From<RecordError> for ClientError {
    fn from(e: RecordError) -> Self {
        ClientError::Record(e)
    }
}

/// A notification queue: the read end of a notification pipe.
pub struct NotificationQueue<B: Backend> {
    backend: B,
    fds: [i32; 2],
    buf: Vec<u8>,
}

impl<B: Backend> NotificationQueue<B> {
    /// Creates the queue (`pipe2(O_NOTIFICATION_PIPE | O_NONBLOCK)`).
    ///
    /// # Errors
    /// `ENOPKG` on a kernel without notification support; the errno of
    /// `pipe2` otherwise (EMFILE, ENFILE…).
    pub fn new(backend: B) -> Result<Self, Errno> {
        let fds = backend.notification_pipe()?;
        Ok(NotificationQueue {
            backend,
            fds,
            buf: vec![0; 4096],
        })
    }

    /// The read end's fd (to add to an event loop).
    pub fn fd(&self) -> i32 {
        self.fds[0]
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// `IOC_WATCH_QUEUE_SET_SIZE`: room for `notes` records (1..512).
    ///
    /// # Errors
    /// As the ioctl: EINVAL out of range, EBUSY once sized, ENOMEM, EPERM.
    pub fn set_size(&mut self, notes: u64) -> Result<(), Errno> {
        self.backend.set_size(self.fds[0], notes)
    }

    /// `IOC_WATCH_QUEUE_SET_FILTER`; None removes the filter.
    ///
    /// # Errors
    /// As the ioctl (EINVAL for a filter it refuses).
    pub fn set_filter(&mut self, filter: Option<&Filter>) -> Result<(), Errno> {
        let blob = filter.map(Filter::to_blob);
        self.backend.set_filter(self.fds[0], blob.as_deref())
    }

    /// `KEYCTL_WATCH_KEY` with `tag` (-1 removes the watch).
    ///
    /// # Errors
    /// As keyctl: ENOKEY, EACCES, EBUSY (already watched), EBADSLT…
    pub fn watch_key(&mut self, key: i32, tag: i32) -> Result<(), Errno> {
        self.backend.watch_key(key, self.fds[0], tag)
    }

    /// `watch_mount` on `path` and its subtree.
    ///
    /// # Errors
    /// ENOSYS on a real kernel (never merged); as watchq's `watch_mount`.
    pub fn watch_mount(&mut self, path: &str, tag: i32) -> Result<(), Errno> {
        self.backend.watch_mount(path, self.fds[0], tag)
    }

    /// `watch_sb` on the superblock of `path`.
    ///
    /// # Errors
    /// ENOSYS on a real kernel (never merged); as watchq's `watch_sb`.
    pub fn watch_sb(&mut self, path: &str, tag: i32) -> Result<(), Errno> {
        self.backend.watch_sb(path, self.fds[0], tag)
    }

    /// `watch_devices` on the global device list.
    ///
    /// # Errors
    /// ENOSYS on a real kernel (never merged); as watchq's `watch_devices`.
    pub fn watch_devices(&mut self, tag: i32) -> Result<(), Errno> {
        self.backend.watch_devices(self.fds[0], tag)
    }

    /// Is a record waiting? Waits up to `timeout_ms` (-1: forever).
    ///
    /// # Errors
    /// As poll (EINTR).
    pub fn poll(&self, timeout_ms: i32) -> Result<bool, Errno> {
        self.backend.poll_in(self.fds[0], timeout_ms)
    }

    /// One read() of up to 4096 bytes: the records it returned (empty when
    /// nothing is queued).
    ///
    /// # Errors
    /// The read's errno (other than EAGAIN), or a [`RecordError`] for bytes
    /// that are not records.
    pub fn read_once(&mut self) -> Result<Vec<Record>, ClientError> {
        match self.backend.read(self.fds[0], &mut self.buf) {
            Ok(n) => Ok(Record::parse_all(&self.buf[..n])?),
            Err(Errno::EAGAIN) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every record queued now, in order.
    ///
    /// # Errors
    /// As [`Self::read_once`].
    pub fn read_available(&mut self) -> Result<Vec<Record>, ClientError> {
        let mut all = Vec::new();
        loop {
            let got = self.read_once()?;
            if got.is_empty() {
                return Ok(all);
            }
            all.extend(got);
        }
    }

    /// The queued records as an iterator (stops when the queue is empty or
    /// at the first error, which it yields).
    pub fn records(&mut self) -> Records<'_, B> {
        Records {
            q: self,
            pending: std::collections::VecDeque::new(),
            done: false,
        }
    }
}

impl<B: Backend> Drop for NotificationQueue<B> {
    fn drop(&mut self) {
        for fd in self.fds {
            self.backend.close(fd);
        }
    }
}

/// The iterator of [`NotificationQueue::records`].
pub struct Records<'a, B: Backend> {
    q: &'a mut NotificationQueue<B>,
    pending: std::collections::VecDeque<Record>,
    done: bool,
}

impl<B: Backend> Iterator for Records<'_, B> {
    type Item = Result<Record, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(r) = self.pending.pop_front() {
            return Some(Ok(r));
        }
        if self.done {
            return None;
        }
        match self.q.read_once() {
            Ok(v) if v.is_empty() => {
                self.done = true;
                None
            }
            Ok(v) => {
                self.pending.extend(v);
                self.pending.pop_front().map(Ok)
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

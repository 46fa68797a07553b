//! Linux error numbers as watchq returns them.
//!
//! Owns [`Errno`], the one error type of every fallible watchq call. The numeric
//! values are the generic Linux ones (x86, arm, arm64, riscv, s390); the
//! `Display` text is glibc's `strerror` wording, which is what a C consumer
//! prints with `perror`.

use std::fmt;

macro_rules! errnos {
    ($($name:ident = $val:expr, $text:expr;)*) => {
        /// A Linux error number.
        ///
        /// Mirrors the `-E*` values the kernel returns from system calls.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Errno {
            $(
                #[doc = $text]
                $name,
            )*
        }

        impl Errno {
            /// Every errno watchq knows, in numeric order.
            pub const ALL: &'static [Errno] = &[$(Errno::$name),*];

            /// The raw, positive error number (`EBUSY` is 16).
            pub const fn as_raw(self) -> i32 {
                match self { $(Errno::$name => $val),* }
            }

            /// The symbolic name, e.g. `"EBUSY"`.
            pub const fn name(self) -> &'static str {
                match self { $(Errno::$name => stringify!($name)),* }
            }

            /// The C library's description, e.g. `"Device or resource busy"`.
            pub const fn description(self) -> &'static str {
                match self { $(Errno::$name => $text),* }
            }

            /// The errno with this raw number, if watchq knows it.
            pub fn from_raw(raw: i32) -> Option<Errno> {
                match raw { $($val => Some(Errno::$name),)* _ => None }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted";
    ENOENT = 2, "No such file or directory";
    ESRCH = 3, "No such process";
    EINTR = 4, "Interrupted system call";
    EIO = 5, "Input/output error";
    EBADF = 9, "Bad file descriptor";
    EAGAIN = 11, "Resource temporarily unavailable";
    ENOMEM = 12, "Cannot allocate memory";
    EACCES = 13, "Permission denied";
    EFAULT = 14, "Bad address";
    EBUSY = 16, "Device or resource busy";
    EEXIST = 17, "File exists";
    EXDEV = 18, "Invalid cross-device link";
    ENODEV = 19, "No such device";
    ENOTDIR = 20, "Not a directory";
    EISDIR = 21, "Is a directory";
    EINVAL = 22, "Invalid argument";
    ENFILE = 23, "Too many open files in system";
    EMFILE = 24, "Too many open files";
    ENOTTY = 25, "Inappropriate ioctl for device";
    EFBIG = 27, "File too large";
    ENOSPC = 28, "No space left on device";
    ESPIPE = 29, "Illegal seek";
    EPIPE = 32, "Broken pipe";
    ERANGE = 34, "Numerical result out of range";
    EDEADLK = 35, "Resource deadlock avoided";
    ENAMETOOLONG = 36, "File name too long";
    ENOSYS = 38, "Function not implemented";
    ELOOP = 40, "Too many levels of symbolic links";
    ENODATA = 61, "No data available";
    ENOPKG = 65, "Package not installed";
    EBADSLT = 57, "Invalid slot";
    EBADMSG = 74, "Bad message";
    EOVERFLOW = 75, "Value too large for defined data type";
    EMSGSIZE = 90, "Message too long";
    EDQUOT = 122, "Disk quota exceeded";
    EOPNOTSUPP = 95, "Operation not supported";
    ENOBUFS = 105, "No buffer space available";
    ETIMEDOUT = 110, "Connection timed out";
    ENOMEDIUM = 123, "No medium found";
    ENOKEY = 126, "Required key not available";
    EKEYEXPIRED = 127, "Key has expired";
    EKEYREVOKED = 128, "Key has been revoked";
    EKEYREJECTED = 129, "Key was rejected by service";
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for Errno {}

/// The `Result` of every fallible watchq call.
pub type Result<T> = std::result::Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_values_match_linux() {
        assert_eq!(Errno::ENOPKG.as_raw(), 65);
        assert_eq!(Errno::EBADSLT.as_raw(), 57);
        assert_eq!(Errno::ENOBUFS.as_raw(), 105);
        assert_eq!(Errno::EXDEV.as_raw(), 18);
        assert_eq!(Errno::ENOKEY.as_raw(), 126);
        for e in Errno::ALL {
            assert_eq!(Errno::from_raw(e.as_raw()), Some(*e), "{}", e.name());
        }
        assert_eq!(Errno::from_raw(0), None);
    }

    #[test]
    fn errno_display_is_strerror() {
        assert_eq!(Errno::ENOPKG.to_string(), "Package not installed");
        assert_eq!(Errno::EBUSY.name(), "EBUSY");
    }
}

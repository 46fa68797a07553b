//! The real libc functions behind the ones this library interposes,
//! resolved once with `dlsym(RTLD_NEXT, name)`.
//!
//! Every call the emulation does not take (an fd that is not watchq's, a
//! syscall number it does not emulate) goes to these, and so does the
//! library's own I/O (the readiness bytes it drains, its messages), which must never come
//! back through the interposers.

use libc::{
    c_char, c_int, c_long, c_uint, c_ulong, c_void, iovec, nfds_t, pollfd, size_t, ssize_t,
};
use std::sync::atomic::{AtomicUsize, Ordering};

macro_rules! real_fns {
    ($($name:ident: $ty:ty;)*) => {
        $(
            /// The real libc function of this name.
            pub(crate) fn $name() -> $ty {
                static ADDR: AtomicUsize = AtomicUsize::new(0);
                // Relaxed: every thread resolves the same address; a race
                // only resolves it twice.
                let mut a = ADDR.load(Ordering::Relaxed);
                if a == 0 {
                    let name = concat!(stringify!($name), "\0");
                    // SAFETY: a NUL-terminated name; RTLD_NEXT is valid in a
                    // shared object.
                    a = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) } as usize;
                    if a == 0 {
                        fatal(concat!("watchq: no real ", stringify!($name), " in libc\n"));
                    }
                    ADDR.store(a, Ordering::Relaxed);
                }
                // SAFETY: dlsym returned libc's definition of this symbol,
                // whose C type is $ty.
                unsafe { std::mem::transmute::<usize, $ty>(a) }
            }
        )*
    };
}

real_fns! {
    read: unsafe extern "C" fn(c_int, *mut c_void, size_t) -> ssize_t;
    write: unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t;
    readv: unsafe extern "C" fn(c_int, *const iovec, c_int) -> ssize_t;
    writev: unsafe extern "C" fn(c_int, *const iovec, c_int) -> ssize_t;
    close: unsafe extern "C" fn(c_int) -> c_int;
    pipe2: unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
    dup: unsafe extern "C" fn(c_int) -> c_int;
    dup2: unsafe extern "C" fn(c_int, c_int) -> c_int;
    dup3: unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
    poll: unsafe extern "C" fn(*mut pollfd, nfds_t, c_int) -> c_int;
    ppoll: unsafe extern "C" fn(*mut pollfd, nfds_t, *const libc::timespec, *const libc::sigset_t) -> c_int;
    select: unsafe extern "C" fn(c_int, *mut libc::fd_set, *mut libc::fd_set, *mut libc::fd_set, *mut libc::timeval) -> c_int;
    pselect: unsafe extern "C" fn(c_int, *mut libc::fd_set, *mut libc::fd_set, *mut libc::fd_set, *const libc::timespec, *const libc::sigset_t) -> c_int;
    splice: unsafe extern "C" fn(c_int, *mut libc::loff_t, c_int, *mut libc::loff_t, size_t, c_uint) -> ssize_t;
    tee: unsafe extern "C" fn(c_int, c_int, size_t, c_uint) -> ssize_t;
    vmsplice: unsafe extern "C" fn(c_int, *const iovec, size_t, c_uint) -> ssize_t;
    sendfile: unsafe extern "C" fn(c_int, c_int, *mut libc::off_t, size_t) -> ssize_t;
    lseek: unsafe extern "C" fn(c_int, libc::off_t, c_int) -> libc::off_t;
    mmap: unsafe extern "C" fn(*mut c_void, size_t, c_int, c_int, c_int, libc::off_t) -> *mut c_void;
    ioctl: unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int;
    fcntl: unsafe extern "C" fn(c_int, c_int, ...) -> c_int;
    openat: unsafe extern "C" fn(c_int, *const c_char, c_int, ...) -> c_int;
    syscall: unsafe extern "C" fn(c_long, ...) -> c_long;
    recvmsg: unsafe extern "C" fn(c_int, *mut libc::msghdr, c_int) -> ssize_t;
    fopen: unsafe extern "C" fn(*const c_char, *const c_char) -> *mut libc::FILE;
    fflush: unsafe extern "C" fn(*mut libc::FILE) -> c_int;
    fclose: unsafe extern "C" fn(*mut libc::FILE) -> c_int;
    fopen64: unsafe extern "C" fn(*const c_char, *const c_char) -> *mut libc::FILE;
    freopen: unsafe extern "C" fn(*const c_char, *const c_char, *mut libc::FILE) -> *mut libc::FILE;
    freopen64: unsafe extern "C" fn(*const c_char, *const c_char, *mut libc::FILE) -> *mut libc::FILE;
    pread: unsafe extern "C" fn(c_int, *mut c_void, size_t, libc::off_t) -> ssize_t;
    pread64: unsafe extern "C" fn(c_int, *mut c_void, size_t, libc::off_t) -> ssize_t;
    pwrite: unsafe extern "C" fn(c_int, *const c_void, size_t, libc::off_t) -> ssize_t;
    pwrite64: unsafe extern "C" fn(c_int, *const c_void, size_t, libc::off_t) -> ssize_t;
    preadv: unsafe extern "C" fn(c_int, *const iovec, c_int, libc::off_t) -> ssize_t;
    preadv64: unsafe extern "C" fn(c_int, *const iovec, c_int, libc::off_t) -> ssize_t;
    preadv2: unsafe extern "C" fn(c_int, *const iovec, c_int, libc::off_t, c_int) -> ssize_t;
    preadv64v2: unsafe extern "C" fn(c_int, *const iovec, c_int, libc::off_t, c_int) -> ssize_t;
}

/// Writes `msg` to stderr with the real write and exits with status 127.
pub(crate) fn fatal(msg: &str) -> ! {
    // SAFETY: a valid buffer; _exit never returns.
    unsafe {
        libc::syscall(libc::SYS_write, 2, msg.as_ptr(), msg.len());
        libc::_exit(127)
    }
}

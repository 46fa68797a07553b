//! Forked children for the tests that play several processes of one tree
//! from the test binary itself.

/// Forks; the child runs `f` and exits with its status (101 if it
/// panicked). Returns the child's pid.
pub fn fork(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child only makes system calls and allocates (glibc's
    // malloc is fork-safe), then _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for child `pid`: its exit status, or minus the signal that
/// killed it.
pub fn wait(pid: libc::pid_t) -> i32 {
    let mut st = 0;
    // SAFETY: our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else {
        -libc::WTERMSIG(st)
    }
}

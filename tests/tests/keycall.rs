//! Key calls whose payload goes from the program's memory straight into
//! the request under `watchq exec` (`sendmsg` reads it; no copy and no
//! `process_vm_readv` first): an unreadable payload is EFAULT and changes
//! nothing, a payload up to the last readable byte is taken whole, one too
//! big for a message still travels, and a thread's faulted call leaves the
//! next call of the main thread its own (tests/c/keycall.c).

use watchq_tests::programs::{cc, exec, repo, text};

#[test]
fn keycall_payload_from_user_memory() {
    let prog = cc(&repo("tests/c/keycall.c"), "keycall");
    let out = exec(&[], &prog, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // What this machine's own kernel prints for the program.
    assert_eq!(
        text(&out.stdout),
        "add_key: ok\n\
         update across into the unreadable page: EFAULT\n\
         payload still: first\n\
         update ending at the page's end: ok\n\
         payload now: tail!\n\
         add_key across into the unreadable page: EFAULT\n\
         kc2 made: no\n\
         add_key ending at the page's end: ok, payload tail!\n\
         add_key of 204800 bytes: EINVAL\n\
         add_key of 32767 bytes: ok\n\
         thread: own @t made\n\
         thread: update from an unreadable page: EFAULT\n\
         main: key in its @t: ok\n\
         main: @t still its own: yes\n\
         main: its key in its @t: found\n\
         thread: main's key in the thread's @t: not found\n"
    );
}

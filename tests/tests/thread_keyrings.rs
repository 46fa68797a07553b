//! Thread keyrings are per thread under `watchq exec` (each task's cred
//! has its own; `KEY_SPEC_THREAD_KEYRING` names the calling thread's).

use watchq_tests::programs::{cc, exec, repo, text};

#[test]
fn thread_keyrings_are_per_thread() {
    let prog = cc(&repo("tests/c/thread-keyrings.c"), "thread-keyrings");
    let out = exec(&[], &prog, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // What this machine's own kernel prints for the program.
    assert_eq!(
        text(&out.stdout),
        "main: @t made\n\
         thread: @t before = none\n\
         thread: its own @t is not main's\n\
         thread: key in its @t added\n\
         main: @t still its own: yes\n\
         main: the thread's key in main's @t: not found\n"
    );
}

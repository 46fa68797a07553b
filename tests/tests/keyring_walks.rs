//! How the kernel walks a keyring tree, seen through Debian's `keyctl`
//! under `watchq exec`: the order of a keyring's links (the associative
//! array's slots: security/keys/keyring.c over lib/assoc_array.c), the
//! search that follows it (`search_nested_keyrings()`) and the cycle check
//! of a link (`keyring_detect_cycle()`).

use std::path::PathBuf;
use watchq_tests::programs::{exec, require, text};

fn keyctl() -> PathBuf {
    require("keyctl")
}

/// Runs `script` in bash under `watchq exec` (keyctl on PATH) and returns
/// its standard output, asserting it succeeded.
fn run(script: &str) -> String {
    let _ = keyctl();
    let out = exec(&[], &require("bash"), &["-c", script]);
    assert!(
        out.status.success(),
        "script failed: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn keyring_walks_read_follows_the_slots() {
    // The first link takes slot 0, each later one the highest free slot;
    // an unlink frees its slot, which the next link takes if it is the
    // highest free one.
    let out = run(r#"
        set -e
        r=$(keyctl newring r @s)
        a=$(keyctl add user a 1 $r); b=$(keyctl add user b 1 $r)
        c=$(keyctl add user c 1 $r); d=$(keyctl add user d 1 $r)
        [ "$(keyctl rlist $r)" = "$a $d $c $b" ] || { echo "4: $(keyctl rlist $r) vs $a $d $c $b"; exit 1; }
        keyctl unlink $c $r >/dev/null
        e=$(keyctl add user e 1 $r)
        [ "$(keyctl rlist $r)" = "$a $d $e $b" ] || { echo "5: $(keyctl rlist $r)"; exit 1; }
        keyctl clear $r
        f=$(keyctl add user f 1 $r); g=$(keyctl add user g 1 $r)
        [ "$(keyctl rlist $r)" = "$f $g" ] || { echo "clear: $(keyctl rlist $r)"; exit 1; }
        echo ok
    "#);
    assert_eq!(out.trim(), "ok", "{out}");
}

#[test]
fn keyring_walks_search_tries_nested_keyrings_in_slot_order() {
    // Two keyrings in one, each with a key "lizard": the first keyring
    // linked is in slot 0, the second in slot 15, so a search finds the
    // first one's; with three, the third (slot 14) comes before the second.
    let out = run(r#"
        set -e
        top=$(keyctl newring top @s)
        w1=$(keyctl newring w1 $top); w2=$(keyctl newring w2 $top)
        k1=$(keyctl add user lizard 1 $w1); k2=$(keyctl add user lizard 2 $w2)
        [ "$(keyctl search $top user lizard)" = "$k1" ] || { echo "two: $(keyctl search $top user lizard)"; exit 1; }
        keyctl unlink $k1 $w1 >/dev/null
        w3=$(keyctl newring w3 $top); k3=$(keyctl add user lizard 3 $w3)
        [ "$(keyctl search $top user lizard)" = "$k3" ] || { echo "three: $(keyctl search $top user lizard)"; exit 1; }
        # A key of the keyring itself comes before any nested keyring's.
        k0=$(keyctl add user lizard 0 $top)
        [ "$(keyctl search $top user lizard)" = "$k0" ] || { echo "own: $(keyctl search $top user lizard)"; exit 1; }
        # ... but a revoked one is passed over for a nested one.
        keyctl revoke $k0
        [ "$(keyctl search $top user lizard)" = "$k3" ] || { echo "revoked: $(keyctl search $top user lizard)"; exit 1; }
        echo ok
    "#);
    assert_eq!(out.trim(), "ok", "{out}");
}

#[test]
fn keyring_walks_cycle_check_is_the_kernels() {
    // keyring_detect_cycle(): a keyring nested 7 deep under the one being
    // linked is still found (EDEADLK); 8 deep, the search meets a keyring
    // below the sixth level first (ELOOP). With the default permissions a
    // keyring that deep is not possessed, so not writable (EACCES). Two stacks of five keyrings
    // joined end to end are refused with ELOOP, not EDEADLK.
    let out = run(r#"
        try() { keyctl link "$@" 2>&1 >/dev/null | sed 's/.*: //'; }
        # The user gets every permission (as keyutils' own test does):
        # below six levels the keyrings are no longer possessed.
        top=$(keyctl newring first @s); keyctl setperm $top 0x3f3f0000
        [ "$(try $top $top)" = "Resource deadlock avoided" ] || { echo self; exit 1; }
        # Each made in the session, opened up, then moved into the last.
        nest() { local k; k=$(keyctl newring $1 @s); keyctl setperm $k 0x3f3f0000
            keyctl link $k $2; keyctl unlink $k @s >/dev/null; echo $k; }
        r=$top
        for n in 2 3 4 5 6 7 8; do r=$(nest k$n $r); done
        [ "$(try $top $r)" = "Resource deadlock avoided" ] || { echo "8: $(try $top $r)"; exit 1; }
        r=$(nest k9 $r)
        [ "$(try $top $r)" = "Too many levels of symbolic links" ] || { echo "9: $(try $top $r)"; exit 1; }
        a=$(keyctl newring A1 @s); b=$(keyctl newring B1 @s); ar=$a br=$b
        for i in 2 3 4 5; do a=$(keyctl newring A$i $a); b=$(keyctl newring B$i $b); done
        keyctl link $ar $b
        [ "$(try $br $a)" = "Too many levels of symbolic links" ] || { echo "stacks: $(try $br $a)"; exit 1; }
        deep=$(keyctl newring d1 @s)
        for n in 2 3 4 5 6 7 8 9; do deep=$(keyctl newring d$n $deep 2>&1) || break; done
        [ "$deep" = "add_key: Permission denied" ] || { echo "possession: $deep"; exit 1; }
        echo ok
    "#);
    assert_eq!(out.trim(), "ok", "{out}");
}

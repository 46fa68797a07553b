//! request_key(2) under `watchq exec`, through Debian's `keyctl`.

use watchq_tests::programs::{exec, require, text};

#[test]
fn request_key_callout_longer_than_a_page_is_einval() {
    // sys_request_key() copies the call-out information with
    // strndup_user(PAGE_SIZE): 4095 bytes and a NUL fit (the request then
    // fails for want of a key, ENOKEY), 4096 bytes are EINVAL.
    let _ = require("keyctl");
    let out = exec(
        &[],
        &require("bash"),
        &[
            "-c",
            r#"
            a=$(printf 'a%.0s' $(seq 4095))
            keyctl request2 user wibble "$a" 2>&1 | sed 's/.*: //'
            keyctl request2 user wibble "a$a" 2>&1 | sed 's/.*: //'
            "#,
        ],
    );
    assert_eq!(
        text(&out.stdout),
        "Required key not available\nInvalid argument\n",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn request_key_runs_sbin_request_key_in_the_emulated_kernel() {
    // call_sbin_request_key(): with call-out information and no key, the
    // kernel runs /sbin/request-key, which follows /etc/request-key.conf
    // (Debian's keyutils ships the `debug:` lines: an instantiating script,
    // `neg` negating, `debug:loop:` piping the call-out through cat). Here
    // it runs as a process of the emulated kernel, so the key, the
    // helper's calls and their notifications stay in it.
    let _ = require("keyctl");
    let conf = std::fs::read_to_string("/etc/request-key.conf").unwrap_or_default();
    assert!(
        conf.contains("debug:*") && std::path::Path::new("/sbin/request-key").is_file(),
        "this test needs Debian's keyutils (/sbin/request-key, /etc/request-key.conf)"
    );
    let out = exec(
        &[],
        &require("bash"),
        &[
            "-c",
            r#"
            keyctl new_session >/dev/null
            k=$(keyctl request2 user debug:lizard gizzard) || { echo "no key"; exit 1; }
            echo "payload: $(keyctl print $k)"
            [ "$(keyctl rlist @s)" = "$k" ] && echo "linked into the session"
            [ "$(keyctl request2 user debug:lizard other)" = "$k" ] && echo "found again"
            r=$(keyctl newring r @s)
            k2=$(keyctl request2 user debug:gecko scales $r)
            [ "$(keyctl rlist $r)" = "$k2" ] && echo "linked into the given keyring"
            keyctl request2 user debug:mole neg 2>&1 | sed 's/.*: /negated: /'
            keyctl request user debug:mole 2>&1 | sed 's/.*: /then: /'
            keyctl request2 user nomatch:x info 2>&1 | sed 's/.*: /no rule: /'
            p=$(echo -n piped | keyctl prequest2 user debug:loop:newt)
            echo "piped: $(keyctl print $p)"
            "#,
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout,
        "payload: Debug gizzard\nlinked into the session\nfound again\n\
         linked into the given keyring\nnegated: Required key not available\n\
         then: Required key not available\nno rule: Required key not available\n\
         piped: piped\n",
        "{}",
        text(&out.stderr)
    );
    // Nothing reached the host's keyrings.
    let host = std::process::Command::new(require("keyctl"))
        .args(["search", "@s", "user", "debug:lizard"])
        .output()
        .unwrap();
    assert!(!host.status.success(), "{}", text(&host.stdout));
}

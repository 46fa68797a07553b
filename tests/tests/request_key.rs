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

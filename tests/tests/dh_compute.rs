//! KEYCTL_DH_COMPUTE under `watchq exec`, through Debian's `keyctl`
//! (`dh_compute`, `dh_compute_kdf`, `dh_compute_kdf_oi`), checked against
//! python3's own big-integer arithmetic and hashlib (security/keys/dh.c:
//! the result as long as the prime in whole 64-bit limbs, zero-padded in
//! front; the KDF's blocks the digest of a big-endian counter from 1, the
//! padded secret and the other information).

use std::path::PathBuf;
use watchq_tests::programs::{exec, require, text};

fn bash() -> PathBuf {
    let _ = require("keyctl");
    let _ = require("python3");
    require("bash")
}

/// The shell functions the scripts share: `hexkey NAME INT` adds a user
/// key holding INT big-endian (python's digits), `expect` compares.
const PRELUDE: &str = r#"
set -u
hexkey() { keyctl add -x user "$1" "$(python3 -c "n=$2; print(n.to_bytes(max(1,(n.bit_length()+7)//8),'big').hex())")" @s; }
fail() { echo "FAIL: $*"; exit 1; }
# keyctl's hex dump: "N bytes of data in result:" then words of 4 bytes,
# 32 bytes a line.
dump() { python3 -c "
import sys
b=bytes.fromhex(sys.argv[1])
print(f'{len(b)} bytes of data in result:')
h=b.hex()
lines=[h[i:i+64] for i in range(0,len(h),64)]
print('\n'.join(' '.join(l[j:j+8] for j in range(0,len(l),8)) for l in lines))
" "$1"; }
err() { "$@" 2>&1 >/dev/null | sed 's/.*: //'; }
"#;

fn run(script: &str) -> String {
    let out = exec(&[], &bash(), &["-c", &format!("{PRELUDE}\n{script}")]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn dh_compute_public_value_padded_to_the_primes_limbs() {
    // A 1551-bit modulus: 194 bytes, so the result takes 25 limbs (200
    // bytes), the first 6 of them zero.
    let out = run(r#"
        P='(1<<1550) + 0x1234567'
        p=$(hexkey dh:p "$P"); g=$(hexkey dh:g 5); x=$(hexkey dh:x '(1<<700) + 99')
        want=$(python3 -c "p=$P; v=pow(5,(1<<700)+99,p); print(v.to_bytes(200,'big').hex())")
        [ "$(keyctl dh_compute $x $p $g)" = "$(dump $want)" ] || fail "public value: $(keyctl dh_compute $x $p $g)"
        echo ok
    "#);
    assert_eq!(out.trim(), "ok", "{out}");
}

#[test]
fn dh_compute_kdf_is_the_counter_kdf_over_the_padded_secret() {
    let out = run(r#"
        P='(1<<1535) + 0xabcdef'
        p=$(hexkey dh:p "$P"); g=$(hexkey dh:g 1); x=$(hexkey dh:x 3)
        for h in sha256 sha224 sha512; do
            want=$(python3 -c "
import hashlib
z=(1).to_bytes(192,'big')+b'other'
out=b''
c=1
while len(out)<80:
    out+=hashlib.new('$h',c.to_bytes(4,'big')+z).digest(); c+=1
print(out[:80].hex())")
            got=$(printf other | keyctl dh_compute_kdf_oi $x $p $g 80 $h)
            [ "$got" = "$(dump $want)" ] || fail "$h: $got"
        done
        echo ok
    "#);
    assert_eq!(out.trim(), "ok", "{out}");
}

#[test]
fn dh_compute_errors_in_the_kernels_order() {
    let out = run(r#"
        p=$(hexkey dh:p '(1<<1535) + 1'); g=$(hexkey dh:g 2); x=$(hexkey dh:x 7)
        small=$(hexkey dh:small '(1<<1527) + 1')
        logon=$(keyctl add logon dh:logon 00 @s)
        [ "$(err keyctl dh_compute $x $p $logon)" = "Required key not available" ] || fail logon
        [ "$(err keyctl dh_compute $x $p @s)" = "Operation not supported" ] || fail keyring
        [ "$(err keyctl dh_compute $x $p 0)" = "Required key not available" ] || fail none
        [ "$(err keyctl dh_compute $x $small $g)" = "Invalid argument" ] || fail "1528-bit prime"
        [ "$(err keyctl dh_compute $p $small $g)" = "Invalid argument" ] || fail "private longer than the prime"
        [ "$(err keyctl dh_compute_kdf $x $p $g 16 nosuchhash)" = "No such file or directory" ] || fail hash
        [ "$(err keyctl dh_compute_kdf $x $p $g 1025 sha256)" = "Message too long" ] || fail buflen
        # The digest is looked up before the keys.
        [ "$(err keyctl dh_compute_kdf $x $p 0 16 nosuchhash)" = "No such file or directory" ] || fail order
        keyctl supports dh_compute || fail "have_dh_compute"
        echo ok
    "#);
    assert_eq!(out.trim(), "ok", "{out}");
}

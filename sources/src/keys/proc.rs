//! The key database as `/proc/keys` and `/proc/key-users` show it.
//!
//! Mirrors security/keys/proc.c: `proc_keys_show()` (one line per key
//! the reader may view, possession counted, in serial order) and
//! `proc_key_users_show()` (one line per user that owns keys, in uid
//! order), with the types' `describe` methods (`user_describe()`,
//! `keyring_describe()`, `big_key_describe()`).

use super::{need, KeyCtx, KeyState, KeyStore, KeyType, Serial};
use std::fmt::Write;

/// `BIG_KEY_FILE_THRESHOLD`: above it the kernel keeps a big_key's payload
/// in a shmem file. The kernel derives it from its own structures' sizes
/// (`sizeof(struct inode) - sizeof(struct dentry)`), so it follows the
/// configuration: 760 on the recording's 6.12.118 (procfs.txt `big-key`:
/// 760 bytes in a buffer, 761 in a file).
const BIG_KEY_FILE_THRESHOLD: usize = 760;

/// The timeout column: `perm`, `expd`, or the time left in the largest
/// unit it reaches (s, m, h, d, w), rounded down.
fn timeout(expiry: Option<u64>, now: u64) -> String {
    let Some(e) = expiry else {
        return "perm".into();
    };
    if now >= e {
        return "expd".into();
    }
    let t = e - now;
    match t {
        0..60 => format!("{t}s"),
        60..3600 => format!("{}m", t / 60),
        3600..86400 => format!("{}h", t / 3600),
        86400..604800 => format!("{}d", t / 86400),
        _ => format!("{}w", t / 604800),
    }
}

impl KeyStore {
    /// The text of `/proc/keys` for the caller `ctx`: every key it may
    /// view (with the possessor's bits when it possesses the key). `refs`
    /// counts the references to a key held outside the key store (the
    /// processes' credentials); each link to it from a keyring is one more
    /// (the kernel's `usage`). Mirrors `proc_keys_show()`.
    pub fn proc_keys(&self, ctx: &KeyCtx<'_>, refs: &dyn Fn(Serial) -> usize) -> String {
        let g = self.inner.lock();
        let now = g.now;
        let mut out = String::new();
        for k in g.keys.values() {
            if !g.permitted(ctx, k, need::VIEW) {
                continue;
            }
            // Every keyring's links, the user namespace's keyring register
            // (`.user_reg`, which links each user keyring) among them.
            let links_in = g
                .keys
                .values()
                .filter(|r| r.is_keyring())
                .map(|r| r.links.iter().filter(|&s| s == k.serial).count())
                .sum::<usize>();
            let usage = links_in + refs(k.serial);
            // from_kgid_munged(): no group is the overflow gid.
            let munged = |id: u32| if id == u32::MAX { 65534 } else { id };
            let flag = |on: bool, c: char| if on { c } else { '-' };
            let uninst = k.state == KeyState::Uninstantiated;
            let _ = write!(
                out,
                // D (dead: being destroyed) is never seen; every key is in
                // its owner's quota (Q).
                "{:08x} {}{}-Q{}{}{} {:5} {:>4} {:08x} {:5} {:5} {:<9.9} ",
                k.serial as u32,
                flag(!uninst, 'I'),
                flag(k.revoked_at.is_some(), 'R'),
                flag(uninst, 'U'),
                flag(matches!(k.state, KeyState::Negative(_)), 'N'),
                flag(k.invalidated, 'i'),
                usage,
                // key_revoke() sets the expiry to the revocation's time.
                timeout(k.revoked_at.or(k.expiry), now),
                k.perm,
                munged(k.uid),
                munged(k.gid),
                k.ktype.name(),
            );
            let positive = k.state == KeyState::Positive;
            match k.ktype {
                KeyType::Keyring => {
                    out.push_str(if k.desc.is_empty() { "[anon]" } else { &k.desc });
                    if positive {
                        if k.links.is_empty() {
                            out.push_str(": empty");
                        } else {
                            let _ = write!(out, ": {}", k.links.len());
                        }
                    }
                }
                KeyType::BigKey => {
                    out.push_str(&k.desc);
                    if positive {
                        let n = k.payload.len();
                        let at = if n > BIG_KEY_FILE_THRESHOLD {
                            "file"
                        } else {
                            "buff"
                        };
                        let _ = write!(out, ": {n} [{at}]");
                    }
                }
                // request_key_auth_describe(): nothing once the authority
                // is revoked (its record freed, at the construction's
                // end), else the target in hex and, positive, the
                // requestor's pid and the call-out's length.
                KeyType::RequestKeyAuth => {
                    if let Some(c) = g.constructions.values().find(|c| c.auth_key == k.serial) {
                        let _ = write!(out, "key:{}", k.desc);
                        if positive {
                            let _ = write!(out, " pid:{} ci:{}", c.pid, c.callout.len());
                        }
                    }
                }
                // asymmetric_key_describe(): the description, then the
                // public key's kind and the SKID's tail.
                KeyType::Asymmetric => {
                    out.push_str(&k.desc);
                    if let Some(a) = &k.asym {
                        out.push_str(&a.describe());
                    }
                }
                // Blacklist keys are refused as this kernel configuration
                // does: the description alone.
                KeyType::Blacklist => out.push_str(&k.desc),
                // user_describe(), with the datalen key_payload_reserve() set.
                KeyType::Encrypted => {
                    out.push_str(&k.desc);
                    if let Some(e) = k.enc.as_ref().filter(|_| positive) {
                        let _ = write!(out, ": {}", e.payload_len());
                    }
                }
                KeyType::User | KeyType::Logon => {
                    out.push_str(&k.desc);
                    if positive {
                        // user_revoke() reserved 0 bytes: datalen is 0.
                        let n = if k.revoked_at.is_some() {
                            0
                        } else {
                            k.payload.len()
                        };
                        let _ = write!(out, ": {n}");
                    }
                }
            }
            out.push('\n');
        }
        out
    }

    /// The text of `/proc/key-users`: per user owning keys, in uid order,
    /// `uid: usage nkeys/nikeys qnkeys/maxkeys qnbytes/maxbytes` (root's
    /// limits for uid 0). A user's `usage` is taken as its key count (each
    /// key holds its user). Mirrors `proc_key_users_show()`.
    pub fn proc_key_users(&self) -> String {
        let sys = self.sysctl();
        let g = self.inner.lock();
        let mut users: std::collections::BTreeMap<u32, (usize, usize)> = Default::default();
        for k in g.keys.values() {
            let e = users.entry(k.uid).or_default();
            e.0 += 1;
            if k.state != KeyState::Uninstantiated {
                e.1 += 1;
            }
        }
        let mut out = String::new();
        for (uid, (n, ni)) in users {
            let (qk, qb) = g.quota.get(&uid).copied().unwrap_or_default();
            let (mk, mb) = if uid == 0 {
                (sys.root_maxkeys, sys.root_maxbytes)
            } else {
                (sys.maxkeys, sys.maxbytes)
            };
            let _ = writeln!(out, "{uid:5}: {n:5} {n}/{ni} {qk}/{mk} {qb}/{mb}");
        }
        out
    }
}

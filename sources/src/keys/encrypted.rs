//! The `encrypted` key type (security/keys/encrypted-keys/encrypted.c):
//! a random secret (or one loaded from a blob) that userspace only ever
//! sees encrypted with a master key, a `user` (or `trusted`) key named
//! `user:DESC` (`trusted:DESC`).
//!
//! The blob, as KEYCTL_READ gives it and `load` takes it:
//! `FORMAT MASTER DATALEN HEX`, where HEX is the IV (16 bytes), one zero
//! byte, the secret encrypted with AES-256-CBC (zero-padded to whole
//! blocks) and an HMAC-SHA256 of `FORMAT\0MASTER\0DATALEN\0IV\0DATA`. The
//! two keys come from the master key: SHA-256 of `ENC_KEY\0` or
//! `AUTH_KEY\0` followed by the master key's bytes, zero-padded to at
//! least 32 bytes (`get_derived_key()`). The ciphers are the `aes`,
//! `cbc` and `hmac` crates'.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::Mac;
use sha2::Digest;
use watchq_core::{Errno, Result};

/// The smallest and largest secret, in bytes (`MIN_DATA_SIZE`, `MAX_DATA_SIZE`).
const DATA_SIZE: std::ops::RangeInclusive<i64> = 20..=4096;
/// `ivsize` and `blksize` of `cbc(aes)`.
const IV: usize = 16;
/// SHA-256's digest size (`HASH_SIZE`).
const HASH: usize = 32;
/// The secret's length the `enc32` format requires.
const ENC32_LEN: i64 = 32;
/// The `ecryptfs` format's secret length (`ECRYPTFS_MAX_KEY_BYTES`).
const ECRYPTFS_LEN: i64 = 64;
/// What an `ecryptfs` key's payload holds instead of the bare secret:
/// `sizeof(struct ecryptfs_auth_tok)` (include/linux/ecryptfs.h, packed:
/// 8 bytes of header, the 588-byte session key, 32 reserved, the
/// 112-byte token union).
const ECRYPTFS_AUTH_TOK: usize = 740;
/// An `ecryptfs` key's description: 16 hex digits (`KEY_ECRYPTFS_DESC_LEN`).
const ECRYPTFS_DESC_LEN: usize = 16;
/// Largest payload the type takes (instantiate and update).
const MAX_BLOB: usize = 32767;

/// An encrypted key's payload (`struct encrypted_key_payload`).
#[derive(Clone, Debug)]
pub struct EncKey {
    format: Vec<u8>,
    master_desc: Vec<u8>,
    /// The length as the caller wrote it (the blob repeats it as is).
    datalen: Vec<u8>,
    iv: [u8; IV],
    decrypted: Vec<u8>,
    /// `payload_datalen`: the secret's length, or the `ecryptfs` format's
    /// authentication token's.
    payload_datalen: usize,
}

fn round_up(n: usize) -> usize {
    n.div_ceil(IV) * IV
}

impl EncKey {
    fn encrypted_len(&self) -> usize {
        round_up(self.decrypted.len())
    }

    /// `datablob_len`: FORMAT\0MASTER\0DATALEN\0IV\0DATA.
    fn datablob_len(&self) -> usize {
        self.format.len()
            + 1
            + self.master_desc.len()
            + 1
            + self.datalen.len()
            + 1
            + IV
            + 1
            + self.encrypted_len()
    }

    /// What the key's payload is charged and `/proc/keys` shows
    /// (`payload_totallen`).
    pub(crate) fn payload_len(&self) -> usize {
        self.datablob_len() + self.payload_datalen + HASH + 1
    }

    /// The blob's length (`encrypted_read()` without a buffer).
    pub(crate) fn blob_len(&self) -> usize {
        self.datablob_len() + IV + 1 + self.encrypted_len() + HASH * 2
    }

    /// The description of the master key (`user:NAME`): the type to look
    /// for (true: `user`, false: `trusted`) and the name.
    pub(crate) fn master(&self) -> (bool, String) {
        let user = self.master_desc.starts_with(b"user:");
        let skip = if user { 5 } else { 8 };
        let name = String::from_utf8_lossy(&self.master_desc[skip..]).into_owned();
        (user, name)
    }

    /// The signed part: FORMAT\0MASTER\0DATALEN\0IV\0ENCRYPTED.
    fn datablob(&self, encrypted: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.datablob_len());
        for part in [&self.format, &self.master_desc, &self.datalen] {
            v.extend_from_slice(part);
            v.push(0);
        }
        v.extend_from_slice(&self.iv);
        v.push(0);
        v.extend_from_slice(encrypted);
        v
    }

    /// `encrypted_read()` with a buffer: the blob, encrypted under
    /// `master` (the master key's payload).
    pub(crate) fn blob(&self, master: &[u8]) -> Vec<u8> {
        let mut data = self.decrypted.clone();
        data.resize(self.encrypted_len(), 0);
        let enc_key = derived_key(b"ENC_KEY", master);
        let n = data.len();
        cbc::Encryptor::<aes::Aes256>::new(&enc_key.into(), &self.iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut data, n)
            .expect("whole blocks");
        let signed = self.datablob(&data);
        let mac = hmac(&derived_key(b"AUTH_KEY", master), &signed);
        let mut out = Vec::with_capacity(self.blob_len());
        for part in [&self.format, &self.master_desc, &self.datalen] {
            out.extend_from_slice(part);
            out.push(b' ');
        }
        let tail = signed[self.datablob_len() - IV - 1 - n..]
            .iter()
            .chain(mac.iter());
        for b in tail {
            out.extend_from_slice(format!("{b:02x}").as_bytes());
        }
        out
    }
}

/// `get_derived_key()`: SHA-256 of `NAME\0MASTER`, the buffer as long as
/// `AUTH_KEY\0` and the master key (at least 32 bytes), zero-filled.
fn derived_key(name: &[u8], master: &[u8]) -> [u8; HASH] {
    let mut buf = vec![0u8; (9 + master.len()).max(HASH)];
    buf[..name.len()].copy_from_slice(name);
    buf[name.len() + 1..name.len() + 1 + master.len()].copy_from_slice(master);
    sha2::Sha256::digest(&buf).into()
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; HASH] {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// What a blob asks for (`datablob_parse()`).
enum Cmd<'a> {
    New {
        format: Option<&'a [u8]>,
        master: &'a [u8],
        datalen: &'a [u8],
        data: Option<&'a [u8]>,
    },
    Load {
        format: Option<&'a [u8]>,
        master: &'a [u8],
        datalen: &'a [u8],
        hex: &'a [u8],
    },
    Update {
        master: &'a [u8],
    },
}

/// `valid_master_desc()`: `user:` or `trusted:` and a name; on update,
/// the same prefix as before.
fn valid_master(new: &[u8], orig: Option<&[u8]>) -> Result<()> {
    let prefix: &[u8] = if new.starts_with(b"trusted:") {
        b"trusted:"
    } else if new.starts_with(b"user:") {
        b"user:"
    } else {
        return Err(Errno::EINVAL);
    };
    if new.len() == prefix.len() || orig.is_some_and(|o| !o.starts_with(prefix)) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `datablob_parse()`: the words of the blob, split as strsep(" \t")
/// splits them (two separators in a row make an empty word).
fn parse(blob: &[u8], instantiate: bool) -> Result<Cmd<'_>> {
    let mut words = blob.split(|&c| c == b' ' || c == b'\t');
    let keyword = words.next().ok_or(Errno::EINVAL)?;
    let p = words.next().ok_or(Errno::EINVAL)?;
    let (format, master) = match p {
        b"default" | b"ecryptfs" | b"enc32" => (Some(p), words.next().ok_or(Errno::EINVAL)?),
        _ => (None, p),
    };
    valid_master(master, None)?;
    let datalen = if instantiate {
        Some(words.next().ok_or(Errno::EINVAL)?)
    } else {
        None
    };
    match (keyword, datalen) {
        (b"new", Some(datalen)) => Ok(Cmd::New {
            format,
            master,
            datalen,
            data: words.next(),
        }),
        (b"load", Some(datalen)) => Ok(Cmd::Load {
            format,
            master,
            datalen,
            hex: words.next().ok_or(Errno::EINVAL)?,
        }),
        (b"update", None) => Ok(Cmd::Update { master }),
        _ => Err(Errno::EINVAL),
    }
}

/// `kstrtol(s, 10)`: an optional sign, decimal digits, one trailing
/// newline at most.
fn kstrtol(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?;
    let s = s.strip_suffix('\n').unwrap_or(s);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// The C string the type sees: the payload up to its first NUL.
fn c_str(payload: &[u8]) -> &[u8] {
    let n = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    &payload[..n]
}

fn unhex(h: &[u8], out: &mut [u8]) -> Result<()> {
    if h.len() < out.len() * 2 {
        return Err(Errno::EINVAL);
    }
    let d = |c: u8| (c as char).to_digit(16).ok_or(Errno::EINVAL);
    for (i, o) in out.iter_mut().enumerate() {
        *o = (d(h[2 * i])? << 4 | d(h[2 * i + 1])?) as u8;
    }
    Ok(())
}

/// An instantiation's result before the master key is needed: the new
/// payload, and for `load` the blob's parts to check and decrypt with it.
pub(crate) struct Pending {
    key: EncKey,
    load: Option<Load>,
}

struct Load {
    encrypted: Vec<u8>,
    mac: [u8; HASH],
    /// The HMAC covers the format too (`load FORMAT ...`).
    with_format: bool,
}

impl Pending {
    /// The master key this instantiation needs, if any: (user type?, name).
    pub(crate) fn master(&self) -> Option<(bool, String)> {
        self.load.as_ref().map(|_| self.key.master())
    }

    /// Finishes: a `load` verifies the HMAC (`EINVAL`) and decrypts with
    /// `master`; a `new` key has its random secret already.
    pub(crate) fn finish(self, master: Option<&[u8]>) -> Result<EncKey> {
        let mut key = self.key;
        let Some(l) = self.load else { return Ok(key) };
        let master = master.ok_or(Errno::ENOKEY)?;
        let signed = key.datablob(&l.encrypted);
        let from = if l.with_format {
            0
        } else {
            key.format.len() + 1
        };
        if hmac(&derived_key(b"AUTH_KEY", master), &signed[from..]) != l.mac {
            return Err(Errno::EINVAL);
        }
        let mut data = l.encrypted;
        cbc::Decryptor::<aes::Aes256>::new(&derived_key(b"ENC_KEY", master).into(), &key.iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .map_err(|_| Errno::EINVAL)?;
        data.truncate(key.decrypted.len());
        key.decrypted = data;
        Ok(key)
    }
}

/// `encrypted_instantiate()` up to the master key: parses `new [FORMAT]
/// MASTER LEN` or `load [FORMAT] MASTER LEN HEX` for the key described
/// `desc`.
///
/// # Errors
/// `EINVAL`: an empty or too long payload, a malformed blob, a bad
/// master key name, a length outside 20..=4096 (32 for `enc32`), given
/// secret bytes (the recording's kernel has no
/// `CONFIG_USER_DECRYPTED_DATA`), a `load` blob of the wrong length or
/// not hex; an `ecryptfs` key of another length than 64 or whose
/// description is not 16 hex digits.
pub(crate) fn instantiate(desc: &str, payload: &[u8]) -> Result<Pending> {
    if payload.is_empty() || payload.len() > MAX_BLOB {
        return Err(Errno::EINVAL);
    }
    let (format, master, datalen, data, hex) = match parse(c_str(payload), true)? {
        Cmd::New {
            format,
            master,
            datalen,
            data,
        } => (format, master, datalen, data, None),
        Cmd::Load {
            format,
            master,
            datalen,
            hex,
        } => (format, master, datalen, None, Some(hex)),
        Cmd::Update { .. } => return Err(Errno::EINVAL),
    };
    // encrypted_key_alloc()
    let dlen = kstrtol(datalen)
        .filter(|d| DATA_SIZE.contains(d))
        .ok_or(Errno::EINVAL)?;
    if data.is_some() {
        return Err(Errno::EINVAL);
    }
    let ecryptfs = format == Some(b"ecryptfs");
    match format {
        Some(b"ecryptfs") if dlen != ECRYPTFS_LEN => return Err(Errno::EINVAL),
        Some(b"enc32") if dlen != ENC32_LEN => return Err(Errno::EINVAL),
        _ => {}
    }
    let mut key = EncKey {
        format: format.unwrap_or(b"default").to_vec(),
        master_desc: master.to_vec(),
        datalen: datalen.to_vec(),
        iv: [0; IV],
        decrypted: vec![0; dlen as usize],
        payload_datalen: if ecryptfs {
            ECRYPTFS_AUTH_TOK
        } else {
            dlen as usize
        },
    };
    // The lengths are unsigned shorts.
    if key.datablob_len() > u16::MAX as usize || key.payload_len() > u16::MAX as usize {
        return Err(Errno::EINVAL);
    }
    // encrypted_init(): valid_ecryptfs_desc().
    if ecryptfs && (desc.len() != ECRYPTFS_DESC_LEN || !desc.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Errno::EINVAL);
    }
    let Some(hex) = hex else {
        getrandom::getrandom(&mut key.iv).map_err(|_| Errno::EIO)?;
        getrandom::getrandom(&mut key.decrypted).map_err(|_| Errno::EIO)?;
        return Ok(Pending { key, load: None });
    };
    // encrypted_key_decrypt(), before the master key.
    let e = key.encrypted_len();
    if hex.len() != (IV + 1 + e + HASH) * 2 {
        return Err(Errno::EINVAL);
    }
    unhex(hex, &mut key.iv)?;
    let mut encrypted = vec![0; e];
    unhex(&hex[2 * IV + 2..], &mut encrypted)?;
    let mut mac = [0; HASH];
    unhex(&hex[2 * (IV + 1 + e)..], &mut mac)?;
    Ok(Pending {
        key,
        load: Some(Load {
            encrypted,
            mac,
            with_format: format.is_some(),
        }),
    })
}

/// `encrypted_update()`: `update [FORMAT] MASTER` re-keys the secret to
/// another master key of the same kind; format, length, IV and secret
/// stay.
///
/// # Errors
/// `EINVAL`: an empty or too long payload, a blob that is not `update`,
/// a bad master key name or one of the other kind.
pub(crate) fn update(old: &EncKey, payload: &[u8]) -> Result<EncKey> {
    if payload.is_empty() || payload.len() > MAX_BLOB {
        return Err(Errno::EINVAL);
    }
    let Cmd::Update { master } = parse(c_str(payload), false)? else {
        return Err(Errno::EINVAL);
    };
    valid_master(master, Some(&old.master_desc))?;
    let new = EncKey {
        master_desc: master.to_vec(),
        ..old.clone()
    };
    if new.datablob_len() > u16::MAX as usize || new.payload_len() > u16::MAX as usize {
        return Err(Errno::EINVAL);
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_loads_back_with_its_master_key() {
        let p = instantiate("k", b"new user:mk 32").unwrap();
        assert_eq!(p.master(), None);
        let k = p.finish(None).unwrap();
        let blob = k.blob(b"master");
        assert_eq!(blob.len(), k.blob_len());
        assert!(blob.starts_with(b"default user:mk 32 "));
        let load = [b"load ".as_slice(), &blob].concat();
        let p = instantiate("k", &load).unwrap();
        assert_eq!(p.master(), Some((true, "mk".to_string())));
        let back = p.finish(Some(b"master")).unwrap();
        assert_eq!(back.decrypted, k.decrypted);
        let again = instantiate("k", &load).unwrap();
        assert_eq!(again.finish(Some(b"other")).map(|_| ()), Err(Errno::EINVAL));
    }

    #[test]
    fn blob_checks() {
        let bad: &[&[u8]] = &[
            b"",
            b"new",
            b"new user:mk",
            b"new user: 32",
            b"new key:mk 32",
            b"new user:mk 19",
            b"new user:mk 4097",
            b"new user:mk x",
            b"new user:mk 32 00",
            b"new enc32 user:mk 31",
            b"new  user:mk 32",
            b"load user:mk 32",
            b"load user:mk 32 00",
            b"update user:mk",
            b"bogus user:mk 32",
        ];
        for b in bad {
            assert_eq!(
                instantiate("k", b).map(|_| ()),
                Err(Errno::EINVAL),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
        assert!(instantiate("k", b"new enc32 user:mk 32").is_ok());
        assert!(instantiate("k", b"new default trusted:tk 4096").is_ok());
    }

    #[test]
    fn update_keeps_the_prefix() {
        let k = instantiate("k", b"new user:mk 20")
            .unwrap()
            .finish(None)
            .unwrap();
        // The new master key is the key's from now on (`encrypted_update()`
        // copies the new master description into the new payload): its
        // blob names it, with the same format, length and secret.
        let u = update(&k, b"update user:mk2").unwrap();
        assert_eq!(u.master(), (true, "mk2".to_string()));
        assert!(u.blob(b"m2").starts_with(b"default user:mk2 20 "));
        assert_eq!(u.decrypted, k.decrypted);
        assert!(update(&k, b"update default user:mk2").is_ok());
        assert_eq!(
            update(&k, b"update trusted:t").map(|_| ()),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            update(&k, b"new user:mk 20").map(|_| ()),
            Err(Errno::EINVAL)
        );
    }

    /// enc.c's master key (tests/conformance/probes/enc.c `MK`).
    const MK: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// The blob the oracle kernel made under `MK` (`kernel_blob` of
    /// tests/conformance/probes/enc-blobs.h).
    fn kernel_blob() -> String {
        let h = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/conformance/probes/enc-blobs.h"
        ))
        .unwrap();
        let body = &h[h.find("kernel_blob[] =").unwrap()..];
        let body = &body[body.find('"').unwrap() + 1..];
        body[..body.find('"').unwrap()].to_string()
    }

    /// A `load` blob without a format word is one from before formats:
    /// its HMAC covers MASTER\0DATALEN\0IV\0DATA, not the `default\0` the
    /// key is given (`datablob_hmac_verify()` starts at the master key's
    /// name when the blob names no format), and the key reads back as a
    /// `default` one, signed whole. The kernel's blob with its format word
    /// taken away fails that check.
    #[test]
    fn a_blob_without_a_format_is_signed_from_the_master_name() {
        let blob = kernel_blob();
        let hex = blob.strip_prefix("default user:wqmk 40 ").unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        // IV, a zero byte and the encrypted secret; the HMAC after them.
        let data = &bytes[..bytes.len() - HASH];
        let auth = sha2::Sha256::digest([b"AUTH_KEY\0".as_slice(), MK].concat());
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&auth).unwrap();
        m.update(&[b"user:wqmk\x0040\x00".as_slice(), data].concat());
        let mac = m.finalize().into_bytes();
        let old: String = data
            .iter()
            .chain(mac.iter())
            .map(|b| format!("{b:02x}"))
            .collect();
        let old = format!("load user:wqmk 40 {old}");
        let k = instantiate("k", old.as_bytes())
            .unwrap()
            .finish(Some(MK))
            .unwrap();
        assert_eq!(k.blob(MK), blob.as_bytes());
        let bare = format!("load user:wqmk 40 {hex}");
        let p = instantiate("k", bare.as_bytes()).unwrap();
        assert_eq!(p.finish(Some(MK)).map(|_| ()), Err(Errno::EINVAL));
    }

    /// The length is read as `kstrtol(s, 10)` reads it (lib/kstrtox.c):
    /// one sign, `-` or `+`, decimal digits and at most one newline; a
    /// negative length is out of range.
    #[test]
    fn the_length_is_read_as_kstrtol_reads_it() {
        for ok in ["+32", "32\n", "0032"] {
            let b = format!("new user:mk {ok}");
            assert!(instantiate("k", b.as_bytes()).is_ok(), "{ok:?}");
        }
        for bad in ["-32", "++32", "+-32", "-+32", "32\n\n", "0x20", "-"] {
            let b = format!("new user:mk {bad}");
            let r = instantiate("k", b.as_bytes()).map(|_| ());
            assert_eq!(r, Err(Errno::EINVAL), "{bad:?}");
        }
    }

    /// `encrypted_instantiate()` and `encrypted_update()` take up to 32767
    /// bytes; the type reads them as a C string, up to the first NUL.
    #[test]
    fn payloads_of_up_to_32767_bytes() {
        let pad = |s: &[u8], n: usize| {
            let mut v = s.to_vec();
            v.resize(n, 0);
            v
        };
        let k = instantiate("k", &pad(b"new user:mk 32", 32767))
            .unwrap()
            .finish(None)
            .unwrap();
        assert_eq!(
            instantiate("k", &pad(b"new user:mk 32", 32768)).map(|_| ()),
            Err(Errno::EINVAL)
        );
        assert!(update(&k, &pad(b"update user:mk2", 32767)).is_ok());
        assert_eq!(
            update(&k, &pad(b"update user:mk2", 32768)).map(|_| ()),
            Err(Errno::EINVAL)
        );
        assert_eq!(update(&k, b"").map(|_| ()), Err(Errno::EINVAL));
    }
}

//! KEYCTL_DH_COMPUTE: Diffie-Hellman over three `user` keys, with the
//! optional SP800-56A key derivation. Mirrors security/keys/dh.c
//! (`__keyctl_dh_compute()`, `dh_data_from_key()`,
//! `keyctl_dh_compute_kdf()`) and what it asks of the crypto API: the
//! `dh` kpp's parameter checks (crypto/dh.c, crypto/dh_helper.c), its
//! output size (`mpi_get_size()`: whole 64-bit limbs) and the counter KDF
//! (crypto/kdf_sp800108.c: each block the digest of a 32-bit big-endian
//! counter from 1, the shared secret and the other information).
//!
//! The arithmetic is num-bigint's and the digests RustCrypto's: well kept,
//! and big-integer and hash code is the kind not to write by hand.

use super::perm::need;
use super::{KeyCtx, KeyStore, KeyType, Serial};
use num_bigint::BigUint;
use sha2::digest::DynDigest;
use watchq_core::{Errno, Result};

/// `KEYCTL_KDF_MAX_OUTPUT_LEN`.
pub const KEYCTL_KDF_MAX_OUTPUT_LEN: usize = 1024;
/// `KEYCTL_KDF_MAX_OI_LEN`.
pub const KEYCTL_KDF_MAX_OI_LEN: usize = 64;
/// `CRYPTO_MAX_ALG_NAME`: a hash name's room, its NUL included.
pub const CRYPTO_MAX_ALG_NAME: usize = 128;
/// Smallest prime the kernel's `dh` accepts outside FIPS mode, in bits
/// (`dh_check_params_length()`, counted from the prime's raw length).
const DH_MIN_PRIME_BITS: usize = 1536;
/// `BYTES_PER_MPI_LIMB` on a 64-bit kernel.
const MPI_LIMB_BYTES: usize = 8;

/// The KDF half of `struct keyctl_kdf_params`, as copied in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhKdf {
    /// The digest's crypto API name (`sha256`, …).
    pub hash: String,
    /// SP800-56A OtherInfo, appended to the shared secret.
    pub otherinfo: Vec<u8>,
}

/// What `crypto_alloc_shash()` finds by that name: a digest, or (an HMAC,
/// which has no key here) a hash whose first use fails with `ENOKEY`.
enum Shash {
    Digest(Box<dyn DynDigest>),
    NeedsKey,
}

/// The digests of the oracle's kernel (SHA-1, SHA-2 and SHA-3, by
/// algorithm and generic driver name).
fn digest(name: &str) -> Option<Box<dyn DynDigest>> {
    let base = name.strip_suffix("-generic").unwrap_or(name);
    Some(match base {
        "sha1" => Box::new(sha1::Sha1::default()),
        "sha224" => Box::new(sha2::Sha224::default()),
        "sha256" => Box::new(sha2::Sha256::default()),
        "sha384" => Box::new(sha2::Sha384::default()),
        "sha512" => Box::new(sha2::Sha512::default()),
        "sha3-224" => Box::new(sha3::Sha3_224::default()),
        "sha3-256" => Box::new(sha3::Sha3_256::default()),
        "sha3-384" => Box::new(sha3::Sha3_384::default()),
        "sha3-512" => Box::new(sha3::Sha3_512::default()),
        _ => return None,
    })
}

/// `kdf_alloc()`: ENOENT when the crypto API knows no such hash.
fn shash(name: &str) -> Result<Shash> {
    if let Some(inner) = name.strip_prefix("hmac(").and_then(|n| n.strip_suffix(')')) {
        return digest(inner).map(|_| Shash::NeedsKey).ok_or(Errno::ENOENT);
    }
    digest(name).map(Shash::Digest).ok_or(Errno::ENOENT)
}

/// The counter KDF: `len` bytes of H(counter ‖ input) blocks.
fn kdf_ctr(mut h: Box<dyn DynDigest>, input: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + h.output_size());
    let mut counter: u32 = 1;
    while out.len() < len {
        h.update(&counter.to_be_bytes());
        h.update(input);
        out.extend_from_slice(&h.finalize_reset());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

impl KeyStore {
    /// `dh_data_from_key()`: a `user` key's payload, read as the caller.
    fn dh_data(&self, ctx: &mut KeyCtx<'_>, id: Serial) -> Result<Vec<u8>> {
        let mut g = self.inner.lock();
        // Any failure to look the key up (none, no read permission,
        // negative) is ENOKEY.
        let s = self
            .lookup(&mut g, ctx, id, 0, need::READ)
            .map_err(|_| Errno::ENOKEY)?;
        let now = g.now;
        let k = g.key(s)?;
        if k.ktype != KeyType::User || k.validate(now).is_err() {
            return Err(Errno::EOPNOTSUPP);
        }
        Ok(k.payload.clone())
    }

    /// KEYCTL_DH_COMPUTE with the caller's buffer length `buflen` and, for
    /// the KDF variant, `kdf` (its pointers already copied in, its spare
    /// words and sizes checked). Returns the call's value and the bytes
    /// for the buffer: without a KDF, the public value or shared secret
    /// `base ^ private mod prime`, as long as the prime (in whole 64-bit
    /// limbs) and zero-padded in front, or, for `buflen` 0, only that
    /// length; with one, `buflen` bytes derived from it.
    ///
    /// # Errors
    /// In the kernel's order: `ENOENT` (no digest of that name), then for
    /// the prime, the base and the private key in turn `ENOKEY` (cannot be
    /// looked up and read) or `EOPNOTSUPP` (not a valid `user` key); then
    /// `EINVAL` (the `dh` parameters: a prime shorter than 1536 bits, a
    /// private key or base longer than the prime, a zero prime), and
    /// without a KDF `EOVERFLOW` (`buflen` shorter than the result).
    pub fn dh_compute(
        &self,
        ctx: &mut KeyCtx<'_>,
        (private, prime, base): (Serial, Serial, Serial),
        buflen: usize,
        kdf: Option<&DhKdf>,
    ) -> Result<(usize, Vec<u8>)> {
        let hash = kdf.map(|k| shash(&k.hash)).transpose()?;
        let p = self.dh_data(ctx, prime)?;
        let g = self.dh_data(ctx, base)?;
        let x = self.dh_data(ctx, private)?;
        // crypto_dh_decode_key() and dh_set_params().
        if x.len() > p.len() || g.len() > p.len() || p.iter().all(|&b| b == 0) {
            return Err(Errno::EINVAL);
        }
        if p.len() * 8 < DH_MIN_PRIME_BITS {
            return Err(Errno::EINVAL);
        }
        let p = BigUint::from_bytes_be(&p);
        let outlen = p.to_bytes_be().len().div_ceil(MPI_LIMB_BYTES) * MPI_LIMB_BYTES;
        if kdf.is_none() {
            if buflen == 0 {
                return Ok((outlen, Vec::new()));
            }
            if outlen > buflen {
                return Err(Errno::EOVERFLOW);
            }
        }
        let v = BigUint::from_bytes_be(&g).modpow(&BigUint::from_bytes_be(&x), &p);
        let v = v.to_bytes_be();
        let mut z = vec![0u8; outlen - v.len().min(outlen)];
        z.extend_from_slice(&v[v.len().saturating_sub(outlen)..]);
        match (kdf, hash) {
            (Some(k), Some(Shash::Digest(h))) => {
                z.extend_from_slice(&k.otherinfo);
                Ok((buflen, kdf_ctr(h, &z, buflen)))
            }
            // crypto_shash_init() of a keyed hash without its key.
            (Some(_), Some(Shash::NeedsKey)) => Err(Errno::ENOKEY),
            _ => Ok((outlen, z)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dh_kdf_counter_blocks() {
        // Two SHA-256 blocks, cut to 40 bytes: H(1 ‖ in) ‖ H(2 ‖ in)[..8].
        let out = kdf_ctr(digest("sha256").unwrap(), b"in", 40);
        let mut h = sha2::Sha256::default();
        DynDigest::update(&mut h, &[0, 0, 0, 1]);
        DynDigest::update(&mut h, b"in");
        let b1 = DynDigest::finalize_reset(&mut h);
        DynDigest::update(&mut h, &[0, 0, 0, 2]);
        DynDigest::update(&mut h, b"in");
        let b2 = DynDigest::finalize_reset(&mut h);
        assert_eq!(&out[..32], &b1[..]);
        assert_eq!(&out[32..], &b2[..8]);
        assert!(matches!(shash("md4"), Err(Errno::ENOENT)));
        assert!(matches!(shash("hmac(sha1)"), Ok(Shash::NeedsKey)));
        assert!(matches!(shash("hmac(md4)"), Err(Errno::ENOENT)));
    }

    /// The digests the KDF finds by name are the oracle kernel's generic
    /// drivers (crypto/sha1_generic.c, sha256_generic.c and
    /// sha512_generic.c register SHA-224 and SHA-384 beside SHA-256 and
    /// SHA-512; sha3_generic.c all four SHA-3 sizes), by algorithm and by
    /// driver name, each the algorithm it names: its size, and the first
    /// 8 bytes of its digest of "abc" (FIPS 180-4's and FIPS 202's
    /// example). The recording (dh.txt) tries only some of them.
    #[test]
    fn dh_kdf_digests_are_the_kernels_sha_family() {
        for (name, size, abc) in [
            ("sha1", 20, "a9993e364706816a"),
            ("sha224", 28, "23097d223405d822"),
            ("sha256", 32, "ba7816bf8f01cfea"),
            ("sha384", 48, "cb00753f45a35e8b"),
            ("sha512", 64, "ddaf35a193617aba"),
            ("sha3-224", 28, "e642824c3f8cf24a"),
            ("sha3-256", 32, "3a985da74fe225b2"),
            ("sha3-384", 48, "ec01498288516fc9"),
            ("sha3-512", 64, "b751850b1a57168a"),
        ] {
            for n in [name.to_string(), format!("{name}-generic")] {
                let mut h = digest(&n).unwrap_or_else(|| panic!("{n}"));
                assert_eq!(h.output_size(), size, "{n}");
                DynDigest::update(&mut *h, b"abc");
                let d = h.finalize_reset();
                let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(hex, abc, "{n}");
            }
            // The hmac template over it: found, but keyed.
            let hmac = shash(&format!("hmac({name})"));
            assert!(matches!(hmac, Ok(Shash::NeedsKey)), "hmac({name})");
        }
        assert!(digest("md5").is_none() && digest("sha256-").is_none());
    }
}

//! The `asymmetric` key type with the kernel's X.509 parser
//! (crypto/asymmetric_keys/: asymmetric_type.c, x509_cert_parser.c,
//! x509_public_key.c, public_key.c, restrict.c) and the keyring
//! restrictions it offers.
//!
//! A certificate is decoded with the `x509-cert` crate; the byte spans the
//! kernel derives its key ids from (the serial number's and the names'
//! contents, the TBS certificate the signature covers) are taken from the
//! input itself with the `der` crate's reader, so they are the bytes the
//! kernel's BER decoder sees. RSA PKCS#1 v1.5 signatures are checked with
//! the `rsa` crate's RSA primitive and the kernel's padding checks, whose
//! errnos tell a malformed signature (`EINVAL`, `EBADMSG`) from a wrong
//! one (`EKEYREJECTED`) where the crate's verifier reports one error.

use super::Serial;
use watchq_core::{Errno, Result};
use x509_cert::der::asn1::{AnyRef, ObjectIdentifier};
use x509_cert::der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};

/// A key id (`struct asymmetric_key_id`): bytes compared whole or by
/// their tail.
pub(crate) type KeyId = Vec<u8>;

/// The public key of a certificate (`struct public_key`).
#[derive(Debug)]
struct PublicKey {
    /// `pkey_algo`: `rsa` or `ecdsa-nist-pNNN`.
    algo: &'static str,
    /// The subjectPublicKey BIT STRING's bytes.
    key: Vec<u8>,
}

/// A digest the kernel's X.509 parser names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl Hash {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
            Hash::Sha3_256 => sha3::Sha3_256::digest(data).to_vec(),
            Hash::Sha3_384 => sha3::Sha3_384::digest(data).to_vec(),
            Hash::Sha3_512 => sha3::Sha3_512::digest(data).to_vec(),
        }
    }

    /// The DER DigestInfo prefix EMSA-PKCS1-v1_5 puts before the digest
    /// (RFC 8017 §9.2, note 1; the SHA-3 ones from their NIST OIDs).
    fn digest_info(self) -> &'static [u8] {
        match self {
            Hash::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            Hash::Sha224 => {
                const I: [u8; 19] = digest_info_nist::<0x04, 0x2d, 0x1c>();
                &I
            }
            Hash::Sha256 => {
                const I: [u8; 19] = digest_info_nist::<0x01, 0x31, 0x20>();
                &I
            }
            Hash::Sha384 => {
                const I: [u8; 19] = digest_info_nist::<0x02, 0x41, 0x30>();
                &I
            }
            Hash::Sha512 => {
                const I: [u8; 19] = digest_info_nist::<0x03, 0x51, 0x40>();
                &I
            }
            Hash::Sha3_256 => {
                const I: [u8; 19] = digest_info_nist::<0x08, 0x31, 0x20>();
                &I
            }
            Hash::Sha3_384 => {
                const I: [u8; 19] = digest_info_nist::<0x09, 0x41, 0x30>();
                &I
            }
            Hash::Sha3_512 => {
                const I: [u8; 19] = digest_info_nist::<0x0a, 0x51, 0x40>();
                &I
            }
        }
    }
}

/// DigestInfo for a hash under 2.16.840.1.101.3.4.2.`ARC`: SEQUENCE of
/// length `LEN` holding the AlgorithmIdentifier (with NULL parameters)
/// and the header of a `DLEN`-byte OCTET STRING.
const fn digest_info_nist<const ARC: u8, const LEN: u8, const DLEN: u8>() -> [u8; 19] {
    [
        0x30, LEN, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, ARC,
        0x05, 0x00, 0x04, DLEN,
    ]
}

/// A certificate's signature (`struct public_key_signature`).
#[derive(Debug)]
struct Signature {
    /// Who signed it: [0] the AKID's serial and issuer, [1] its key id,
    /// [2] the certificate's issuer name.
    auth_ids: [Option<KeyId>; 3],
    /// `rsa` or `ecdsa`.
    pkey_algo: &'static str,
    hash: Hash,
    /// The TBS certificate's digest.
    digest: Vec<u8>,
    /// The signature's bytes.
    s: Vec<u8>,
}

/// The payload of an asymmetric key made from an X.509 certificate.
#[derive(Debug)]
pub struct AsymKey {
    /// `asymmetric_key_ids`: [0] serial and issuer, [1] the SKID, [2] the
    /// subject name.
    ids: [Option<KeyId>; 3],
    pkey: PublicKey,
    /// None when the kernel could not use it (`unsupported_sig`).
    sig: Option<Signature>,
}

impl AsymKey {
    /// What `/proc/keys` shows after the description
    /// (`asymmetric_key_describe()`): `: X509.ALGO`, the SKID's last 4
    /// bytes in hex if it has one, then ` []`.
    pub(crate) fn describe(&self) -> String {
        let mut s = format!(": X509.{}", self.pkey.algo);
        if let Some(skid) = &self.ids[1] {
            s.push(' ');
            s.push_str(&hex(&skid[skid.len().saturating_sub(4)..]));
        }
        s.push_str(" []");
        s
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn cat(a: &[u8], b: &[u8]) -> KeyId {
    let mut v = a.to_vec();
    v.extend_from_slice(b);
    v
}

const BAD: Errno = Errno::EBADMSG;

/// One DER element read from `r`: the element and its whole encoding.
fn next<'a>(r: &mut SliceReader<'a>, input: &'a [u8]) -> Result<(AnyRef<'a>, &'a [u8])> {
    let start: usize = r.position().try_into().map_err(|_| BAD)?;
    let any: AnyRef<'a> = r.decode().map_err(|_| BAD)?;
    let end: usize = r.position().try_into().map_err(|_| BAD)?;
    Ok((any, &input[start..end]))
}

fn reader(content: &[u8]) -> Result<SliceReader<'_>> {
    SliceReader::new(content).map_err(|_| BAD)
}

mod oid {
    use super::ObjectIdentifier as O;
    pub const CN: O = O::new_unwrap("2.5.4.3");
    pub const O_NAME: O = O::new_unwrap("2.5.4.10");
    pub const EMAIL: O = O::new_unwrap("1.2.840.113549.1.9.1");
    pub const RSA: O = O::new_unwrap("1.2.840.113549.1.1.1");
    pub const EC: O = O::new_unwrap("1.2.840.10045.2.1");
    pub const SKID: O = O::new_unwrap("2.5.29.14");
    pub const KEY_USAGE: O = O::new_unwrap("2.5.29.15");
    pub const BASIC: O = O::new_unwrap("2.5.29.19");
    pub const AKID: O = O::new_unwrap("2.5.29.35");
}

/// `x509_note_sig_algo()`: the signature's key algorithm and digest.
fn sig_algo(o: &ObjectIdentifier) -> Result<(&'static str, Hash)> {
    let rsa = |h| Ok(("rsa", h));
    let ec = |h| Ok(("ecdsa", h));
    match o.to_string().as_str() {
        "1.2.840.113549.1.1.5" => rsa(Hash::Sha1),
        "1.2.840.113549.1.1.11" => rsa(Hash::Sha256),
        "1.2.840.113549.1.1.12" => rsa(Hash::Sha384),
        "1.2.840.113549.1.1.13" => rsa(Hash::Sha512),
        "1.2.840.113549.1.1.14" => rsa(Hash::Sha224),
        "2.16.840.1.101.3.4.3.14" => rsa(Hash::Sha3_256),
        "2.16.840.1.101.3.4.3.15" => rsa(Hash::Sha3_384),
        "2.16.840.1.101.3.4.3.16" => rsa(Hash::Sha3_512),
        "1.2.840.10045.4.1" => ec(Hash::Sha1),
        "1.2.840.10045.4.3.1" => ec(Hash::Sha224),
        "1.2.840.10045.4.3.2" => ec(Hash::Sha256),
        "1.2.840.10045.4.3.3" => ec(Hash::Sha384),
        "1.2.840.10045.4.3.4" => ec(Hash::Sha512),
        // Unsupported combination.
        _ => Err(Errno::ENOPKG),
    }
}

/// `x509_fabricate_name()`: the name the kernel makes of a Name's CN, O
/// and emailAddress (the last of each): "O: CN", or CN alone when it
/// starts with the O (or with its first 7 bytes), else whichever exists.
fn fabricate_name(name: &x509_cert::name::Name) -> Vec<u8> {
    let (mut cn, mut o, mut email): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            let v = atv.value.value();
            if atv.oid == oid::CN {
                cn = v;
            } else if atv.oid == oid::O_NAME {
                o = v;
            } else if atv.oid == oid::EMAIL {
                email = v;
            }
        }
    }
    if !cn.is_empty() && !o.is_empty() {
        if cn.starts_with(o) || (cn.len() >= 7 && o.len() >= 7 && cn[..7] == o[..7]) {
            return cn.to_vec();
        }
        return [o, b": ", cn].concat();
    }
    [cn, o, email]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default()
        .to_vec()
}

/// `x509_process_extension()`'s checks and the SKID and AKID it keeps.
fn extension(
    id: &ObjectIdentifier,
    v: &[u8],
    skid: &mut Option<KeyId>,
    akid: &mut Option<Vec<u8>>,
) -> Result<()> {
    if *id == oid::SKID {
        if skid.is_some() || v.len() < 3 || v[0] != 0x04 || v[1] as usize != v.len() - 2 {
            return Err(BAD);
        }
        *skid = Some(v[2..].to_vec());
    } else if *id == oid::KEY_USAGE {
        if v.len() < 4 || v[0] != 0x03 || v[2] >= 8 {
            return Err(BAD);
        }
    } else if *id == oid::AKID {
        *akid = Some(v.to_vec());
    } else if *id == oid::BASIC {
        if v.len() < 2 || v[0] != 0x30 || v[1] as usize != v.len() - 2 {
            return Err(BAD);
        }
        // Since "X.509: Fix Basic Constraints CA flag parsing" (in the
        // recording's 6.12 stable kernel) a non-empty SEQUENCE must be
        // exactly CA:TRUE: an explicit CA:FALSE or a path length alone is
        // refused.
        if v[1] != 0 && !(v.len() >= 5 && v[2] == 0x01 && v[3] == 1 && v[4] == 0xff) {
            return Err(BAD);
        }
    }
    Ok(())
}

/// The x509_akid.asn1 decoder's notes: ([0] serial and directoryName,
/// [1] key id).
fn parse_akid(raw: &[u8]) -> Result<(Option<KeyId>, Option<KeyId>)> {
    let seq = AnyRef::from_der(raw).map_err(|_| BAD)?;
    if seq.tag() != Tag::Sequence {
        return Err(BAD);
    }
    let (mut by_serial, mut keyid, mut dir_name) = (None, None, None::<&[u8]>);
    let content = seq.value();
    let mut r = reader(content)?;
    while !r.is_finished() {
        let (e, _) = next(&mut r, content)?;
        let Tag::ContextSpecific {
            number,
            constructed,
        } = e.tag()
        else {
            return Err(BAD);
        };
        match (number, constructed) {
            (n, false) if n == TagNumber::N0 => {
                keyid.get_or_insert_with(|| e.value().to_vec());
            }
            (n, true) if n == TagNumber::N1 => {
                let names = e.value();
                let mut g = reader(names)?;
                while !g.is_finished() {
                    let (gn, _) = next(&mut g, names)?;
                    if gn.tag()
                        == (Tag::ContextSpecific {
                            number: TagNumber::N4,
                            constructed: true,
                        })
                    {
                        let name = AnyRef::from_der(gn.value()).map_err(|_| BAD)?;
                        dir_name = Some(name.value());
                    }
                }
            }
            (n, false) if n == TagNumber::N2 => {
                if let Some(d) = dir_name {
                    by_serial.get_or_insert_with(|| cat(e.value(), d));
                }
            }
            _ => return Err(BAD),
        }
    }
    Ok((by_serial, keyid))
}

/// `x509_key_preparse()`: parses a DER X.509 certificate into the key's
/// payload and the description the kernel proposes (the subject's name,
/// `: `, then the SKID, or the serial number, in hex).
///
/// # Errors
/// `EINVAL` for no data (`asymmetric_key_preparse()`), `EBADMSG` for what
/// is not a certificate, `ENOPKG` for a key or signature algorithm the
/// kernel's parser does not know, `EINVAL` when the two signature
/// algorithms differ, and a self-signed certificate's verification error
/// (`EKEYREJECTED`, `EINVAL`, `EBADMSG`, ...).
pub(crate) fn preparse(data: &[u8]) -> Result<(String, AsymKey)> {
    if data.is_empty() {
        return Err(Errno::EINVAL);
    }
    let cert = x509_cert::Certificate::from_der(data).map_err(|_| BAD)?;
    let tbs = &cert.tbs_certificate;
    // The raw spans: the TBS (with its header) and, inside it, the
    // serial number's, the issuer's and the subject's contents.
    let outer = AnyRef::from_der(data).map_err(|_| BAD)?;
    let mut r = reader(outer.value())?;
    let (tbs_any, tbs_raw) = next(&mut r, outer.value())?;
    let mut t = reader(tbs_any.value())?;
    let mut fields = Vec::new();
    while !t.is_finished() && fields.len() < 7 {
        fields.push(next(&mut t, tbs_any.value())?.0);
    }
    let skip = usize::from(fields.first().is_some_and(|f| f.tag() != Tag::Integer));
    let field = |i: usize| fields.get(i + skip).map(|f| f.value()).ok_or(BAD);
    let (raw_serial, raw_issuer, raw_subject) = (field(0)?, field(2)?, field(4)?);

    let (sig_pkey, hash) = sig_algo(&tbs.signature.oid)?;
    let spki = &tbs.subject_public_key_info;
    let algo = if spki.algorithm.oid == oid::RSA {
        "rsa"
    } else if spki.algorithm.oid == oid::EC {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            .ok_or(BAD)?;
        match curve.to_string().as_str() {
            "1.2.840.10045.3.1.1" => "ecdsa-nist-p192",
            "1.2.840.10045.3.1.7" => "ecdsa-nist-p256",
            "1.3.132.0.34" => "ecdsa-nist-p384",
            "1.3.132.0.35" => "ecdsa-nist-p521",
            _ => return Err(Errno::ENOPKG),
        }
    } else {
        return Err(Errno::ENOPKG);
    };
    if spki.subject_public_key.unused_bits() != 0 {
        return Err(BAD);
    }
    let key = spki.subject_public_key.raw_bytes().to_vec();

    let (mut skid, mut akid) = (None, None);
    for e in tbs.extensions.iter().flatten() {
        extension(&e.extn_id, e.extn_value.as_bytes(), &mut skid, &mut akid)?;
    }
    if cert.signature_algorithm.oid != tbs.signature.oid {
        return Err(Errno::EINVAL);
    }
    if cert.signature.unused_bits() != 0 {
        return Err(BAD);
    }
    let (akid_serial, akid_keyid) = match &akid {
        Some(raw) => parse_akid(raw)?,
        None => (None, None),
    };
    let sig = Signature {
        auth_ids: [akid_serial, akid_keyid, Some(raw_issuer.to_vec())],
        pkey_algo: sig_pkey,
        hash,
        digest: hash.digest(tbs_raw),
        s: cert.signature.raw_bytes().to_vec(),
    };
    let id = cat(raw_serial, raw_issuer);
    let mut k = AsymKey {
        ids: [Some(id), skid, Some(raw_subject.to_vec())],
        pkey: PublicKey { algo, key },
        sig: Some(sig),
    };
    check_self_signed(&mut k, raw_subject == raw_issuer)?;

    let mut name = fabricate_name(&tbs.subject);
    if let Some(nul) = name.iter().position(|&b| b == 0) {
        name.truncate(nul);
    }
    let mut desc = String::from_utf8_lossy(&name).into_owned();
    desc.push_str(": ");
    desc.push_str(&hex(k.ids[1].as_deref().unwrap_or(raw_serial)));
    Ok((desc, k))
}

/// `x509_check_for_self_signed()`: a certificate whose subject is its
/// issuer, and whose AKID (if any) names its own ids, must verify with
/// its own key.
fn check_self_signed(k: &mut AsymKey, same_name: bool) -> Result<()> {
    let Some(sig) = &k.sig else { return Ok(()) };
    if !same_name {
        return Ok(());
    }
    if sig.auth_ids[0].is_some() || sig.auth_ids[1].is_some() {
        let a = same(&k.ids[1], &sig.auth_ids[1]);
        let b = same(&k.ids[0], &sig.auth_ids[0]);
        if !a && !b {
            return Ok(());
        }
        if a != b && sig.auth_ids[0].is_some() && sig.auth_ids[1].is_some() {
            return Err(Errno::EKEYREJECTED);
        }
    }
    match verify(&k.pkey, sig) {
        Ok(()) => Ok(()),
        Err(Errno::ENOPKG) => {
            k.sig = None;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// `asymmetric_key_id_same()`.
fn same(a: &Option<KeyId>, b: &Option<KeyId>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a == b)
}

/// `asymmetric_key_id_partial()`: `b` is the tail of `a`.
fn partial(a: &Option<KeyId>, b: &[u8]) -> bool {
    a.as_ref().is_some_and(|a| a.ends_with(b))
}

/// The key lengths the kernel's RSA accepts (`rsa_check_key_length()`,
/// outside FIPS mode), in bits.
const RSA_KEY_BITS: [usize; 6] = [512, 1024, 1536, 2048, 3072, 4096];

/// `public_key_verify_signature()` with the kernel's RSA PKCS#1 v1.5
/// verifier (crypto/rsa-pkcs1pad.c's checks, in its order).
fn verify(pkey: &PublicKey, sig: &Signature) -> Result<()> {
    if pkey.algo != sig.pkey_algo && !(pkey.algo.starts_with("ecdsa-") && sig.pkey_algo == "ecdsa")
    {
        return Err(Errno::EKEYREJECTED);
    }
    if pkey.algo != "rsa" {
        // The recording's kernel has no ECDSA (`crypto_alloc_sig()` finds
        // no algorithm).
        return Err(Errno::ENOENT);
    }
    use rsa::pkcs1::der::Decode as _;
    use rsa::traits::PublicKeyParts;
    use rsa::BigUint;
    let parsed = rsa::pkcs1::RsaPublicKey::from_der(&pkey.key).map_err(|_| BAD)?;
    let n = BigUint::from_bytes_be(parsed.modulus.as_bytes());
    let e = BigUint::from_bytes_be(parsed.public_exponent.as_bytes());
    let key = rsa::RsaPublicKey::new_unchecked(n, e);
    let k = key.n().to_bytes_be().len();
    if !RSA_KEY_BITS.contains(&(k * 8)) || sig.s.len() != k {
        return Err(Errno::EINVAL);
    }
    let s = BigUint::from_bytes_be(&sig.s);
    if &s >= key.n() {
        return Err(Errno::EINVAL);
    }
    let m = rsa::hazmat::rsa_encrypt(&key, &s).map_err(|_| Errno::EINVAL)?;
    // The encryption's output has no leading zeros: it must be the key's
    // length less the leading 0x00 of the encoding.
    let out = m.to_bytes_be();
    if out.len() != k - 1 {
        return Err(Errno::EINVAL);
    }
    if out[0] != 0x01 {
        return Err(BAD);
    }
    let pos = 1 + out[1..].iter().take_while(|&&b| b == 0xff).count();
    if pos < 9 || pos == out.len() || out[pos] != 0x00 {
        return Err(BAD);
    }
    let rest = &out[pos + 1..];
    let info = sig.hash.digest_info();
    if info.len() > rest.len() || rest[..info.len()] != *info {
        return Err(BAD);
    }
    let digest = &rest[info.len()..];
    if digest.len() != sig.digest.len() || digest != sig.digest.as_slice() {
        return Err(Errno::EKEYREJECTED);
    }
    Ok(())
}

/// The digests `pkcs1pad()` has a DigestInfo for (crypto/rsa-pkcs1pad.c's
/// `rsa_asn1_templates`), by the names the kernel's crypto API gives them.
const PKCS1_HASHES: [&str; 10] = [
    "md5", "sha1", "rmd160", "sha224", "sha256", "sha384", "sha512", "sha3-256", "sha3-384",
    "sha3-512",
];

/// `KEYCTL_SUPPORTS_ENCRYPT` and `KEYCTL_SUPPORTS_VERIFY`.
const SUPPORTS_ENCRYPT: u32 = 0x01;
const SUPPORTS_VERIFY: u32 = 0x08;

/// `software_key_query()` for `KEYCTL_PKEY_QUERY` with the info string's
/// `encoding` (`raw` when not given) and `hash`: `struct
/// keyctl_pkey_query` as the kernel copies it out (the spare words
/// cleared), 56 bytes.
///
/// # Errors
/// `EINVAL` (an encoding the key's algorithm has not, a hash with `raw`,
/// a digest `pkcs1pad` has no DigestInfo for, no hash or another than
/// SHA-1/2/3 with `x962`, a key length RSA does not take), `ENOENT` (an
/// ECDSA key: the recording's kernel has no ECDSA), `EBADMSG` (a key
/// that is not an RSAPublicKey).
pub(crate) fn query(k: &AsymKey, encoding: &str, hash: Option<&str>) -> Result<[u8; 56]> {
    // software_key_determine_akcipher(..., kernel_pkey_sign)
    let ops = if k.pkey.algo == "rsa" {
        match (encoding, hash) {
            // pkcs1pad_create() finds no DigestInfo for it.
            ("pkcs1", Some(h)) if !PKCS1_HASHES.contains(&h) => return Err(Errno::EINVAL),
            ("pkcs1", _) => SUPPORTS_VERIFY | SUPPORTS_ENCRYPT,
            ("raw", None) => SUPPORTS_ENCRYPT,
            _ => return Err(Errno::EINVAL),
        }
    } else {
        const SHAS: [&str; 8] = [
            "sha1", "sha224", "sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512",
        ];
        if encoding != "x962" || !hash.is_some_and(|h| SHAS.contains(&h)) {
            return Err(Errno::EINVAL);
        }
        return Err(Errno::ENOENT);
    };
    use rsa::pkcs1::der::Decode as _;
    let parsed = rsa::pkcs1::RsaPublicKey::from_der(&k.pkey.key).map_err(|_| BAD)?;
    let n = parsed.modulus.as_bytes();
    let len = n.len() - n.iter().take_while(|&&b| b == 0).count();
    if !RSA_KEY_BITS.contains(&(len * 8)) {
        return Err(Errno::EINVAL);
    }
    let mut out = [0u8; 56];
    out[0..4].copy_from_slice(&ops.to_ne_bytes());
    out[4..8].copy_from_slice(&((len * 8) as u32).to_ne_bytes());
    for i in 0..4 {
        out[8 + 2 * i..10 + 2 * i].copy_from_slice(&(len as u16).to_ne_bytes());
    }
    Ok(out)
}

/// A public-key operation of KEYCTL_PKEY_ENCRYPT..VERIFY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PkeyOp {
    /// KEYCTL_PKEY_ENCRYPT.
    Encrypt,
    /// KEYCTL_PKEY_DECRYPT.
    Decrypt,
    /// KEYCTL_PKEY_SIGN.
    Sign,
    /// KEYCTL_PKEY_VERIFY.
    Verify,
}

/// `software_key_eds_op()` and `asymmetric_key_verify_signature()` with
/// a public RSA key, after the query and its size checks: ENCRYPT with
/// `raw` is the RSA primitive (`1 < m < n - 1`, else `EINVAL`), with
/// `pkcs1` EME-PKCS1-v1_5 (at most the key's length less 11 bytes, else
/// `EOVERFLOW`), each as many bytes as the key, leading zeros kept;
/// DECRYPT and SIGN need the private key (`EINVAL`); VERIFY gets no
/// signature from 6.12's `keyctl_pkey_params_get_2()` (it never copies
/// `in2_len`): `EINVAL` with `pkcs1`, `ENOSYS` with `raw` (an akcipher
/// has no verify).
///
/// # Errors
/// As above.
pub(crate) fn pkey_op(k: &AsymKey, op: PkeyOp, encoding: &str, input: &[u8]) -> Result<Vec<u8>> {
    use rsa::pkcs1::der::Decode as _;
    use rsa::BigUint;
    let pkcs1 = encoding == "pkcs1";
    match op {
        PkeyOp::Decrypt | PkeyOp::Sign => return Err(Errno::EINVAL),
        PkeyOp::Verify if pkcs1 => return Err(Errno::EINVAL),
        PkeyOp::Verify => return Err(Errno::ENOSYS),
        PkeyOp::Encrypt => {}
    }
    let parsed = rsa::pkcs1::RsaPublicKey::from_der(&k.pkey.key).map_err(|_| BAD)?;
    let n = BigUint::from_bytes_be(parsed.modulus.as_bytes());
    let e = BigUint::from_bytes_be(parsed.public_exponent.as_bytes());
    let key = rsa::RsaPublicKey::new_unchecked(n, e);
    use rsa::traits::PublicKeyParts;
    let len = key.n().to_bytes_be().len();
    let m = if pkcs1 {
        // pkcs1pad_encrypt(): 0x02, non-zero random bytes, 0x00, the data.
        if input.len() > len - 11 {
            return Err(Errno::EOVERFLOW);
        }
        let mut em = vec![0u8; len - 1 - input.len()];
        em[0] = 0x02;
        let ps = em.len() - 1;
        getrandom::getrandom(&mut em[1..ps]).map_err(|_| Errno::EIO)?;
        for b in &mut em[1..ps] {
            while *b == 0 {
                let mut one = [0u8];
                getrandom::getrandom(&mut one).map_err(|_| Errno::EIO)?;
                *b = one[0];
            }
        }
        em.extend_from_slice(input);
        BigUint::from_bytes_be(&em)
    } else {
        // rsa_check_payload()
        let m = BigUint::from_bytes_be(input);
        if m <= BigUint::from(1u8) || m >= key.n() - BigUint::from(1u8) {
            return Err(Errno::EINVAL);
        }
        m
    };
    let c = rsa::hazmat::rsa_encrypt(&key, &m).map_err(|_| Errno::EINVAL)?;
    let c = c.to_bytes_be();
    let mut out = vec![0u8; len - c.len()];
    out.extend_from_slice(&c);
    Ok(out)
}

/// The sizes `keyctl_pkey_params_get_2()` checks an operation's lengths
/// against, from a query's result: (data, signature, encrypted,
/// decrypted) bytes.
pub(crate) fn query_sizes(q: &[u8; 56]) -> [u32; 4] {
    let at = |i: usize| u32::from(u16::from_ne_bytes([q[8 + 2 * i], q[9 + 2 * i]]));
    [at(0), at(1), at(2), at(3)]
}

/// How `KEYCTL_SEARCH` and request_key match an asymmetric key
/// (`asymmetric_key_match_preparse()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IdMatch {
    /// `id:HEX`: the tail of the key's first or second id.
    Partial(KeyId),
    /// `ex:HEX`: the key's first or second id, whole.
    Exact(KeyId),
    /// `dn:HEX`: the key's subject name.
    Name(KeyId),
}

impl IdMatch {
    /// The match a description asks for: None for a plain description.
    ///
    /// # Errors
    /// `EINVAL`: an empty description, or an `id:`/`ex:`/`dn:` one whose
    /// rest is not an even number (at least 2) of hex digits.
    pub(crate) fn preparse(spec: &str) -> Result<Option<IdMatch>> {
        if spec.is_empty() {
            return Err(Errno::EINVAL);
        }
        let make: fn(KeyId) -> IdMatch = match spec.get(..3) {
            Some("id:") => IdMatch::Partial,
            Some("ex:") => IdMatch::Exact,
            Some("dn:") => IdMatch::Name,
            _ => return Ok(None),
        };
        let h = &spec.as_bytes()[3..];
        if h.is_empty() || h.len() % 2 == 1 {
            return Err(Errno::EINVAL);
        }
        let digit = |c: u8| (c as char).to_digit(16).ok_or(Errno::EINVAL);
        let bytes = h
            .chunks(2)
            .map(|p| Ok((digit(p[0])? << 4 | digit(p[1])?) as u8))
            .collect::<Result<KeyId>>()?;
        Ok(Some(make(bytes)))
    }

    /// Does key `k` match (`asymmetric_key_cmp*()`)?
    pub(crate) fn hits(&self, k: &AsymKey) -> bool {
        match self {
            IdMatch::Partial(id) => k.ids[..2].iter().any(|i| partial(i, id)),
            IdMatch::Exact(id) => k.ids[..2].iter().any(|i| i.as_ref() == Some(id)),
            IdMatch::Name(id) => k.ids[2].as_ref() == Some(id),
        }
    }
}

/// A keyring's restriction (`struct key_restriction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restriction {
    /// `KEYCTL_RESTRICT_KEYRING` with no type: every link is refused.
    Reject,
    /// `asymmetric` `builtin_trusted` (and, on a kernel without a
    /// secondary keyring, `builtin_and_secondary_trusted`): a key signed
    /// by a key in `.builtin_trusted_keys`.
    BuiltinTrusted,
    /// `asymmetric` `key_or_keyring:ID[:chain]`: a key signed by key ID,
    /// or by a key in keyring ID, or (`chain`) by a key in the restricted
    /// keyring itself; ID may be 0 with `chain`.
    KeyOrKeyring {
        /// The trusted key or keyring (held by the restriction).
        key: Option<Serial>,
        /// Also look in the restricted keyring.
        chain: bool,
    },
}

impl Restriction {
    /// The key the restriction holds.
    pub fn key(&self) -> Option<Serial> {
        match *self {
            Restriction::KeyOrKeyring { key, .. } => key,
            _ => None,
        }
    }
}

/// `asymmetric_lookup_restriction()`'s parse: the restriction and the
/// serial it names (to be looked up), or `EINVAL`.
pub(crate) fn parse_restriction(text: &str) -> Result<(Restriction, Option<Serial>)> {
    if text == "builtin_trusted" || text == "builtin_and_secondary_trusted" {
        return Ok((Restriction::BuiltinTrusted, None));
    }
    let mut parts = text.splitn(3, ':');
    let (Some("key_or_keyring"), Some(serial)) = (parts.next(), parts.next()) else {
        return Err(Errno::EINVAL);
    };
    let chain = match parts.next() {
        None => false,
        Some("chain") => true,
        Some(_) => return Err(Errno::EINVAL),
    };
    let serial = kstrtos32(serial).ok_or(Errno::EINVAL)?;
    let r = Restriction::KeyOrKeyring { key: None, chain };
    Ok((r, (serial != 0 || !chain).then_some(serial)))
}

/// `kstrtos32(s, 0)`: an optional sign, then decimal, `0x` hex or
/// `0`-prefixed octal, and one trailing newline at most.
fn kstrtos32(s: &str) -> Option<i32> {
    let s = s.strip_suffix('\n').unwrap_or(s);
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, h)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    i32::try_from(if neg { -v } else { v }).ok()
}

/// The signer a restriction looks for in a keyring
/// (`find_asymmetric_key()`'s search): `ex:` of the AKID's serial and
/// issuer, else of its key id, else `dn:` of the issuer's name.
pub(crate) fn signer_match(k: &AsymKey) -> Option<(IdMatch, Option<KeyId>)> {
    let sig = k.sig.as_ref()?;
    let [a0, a1, a2] = &sig.auth_ids;
    let m = match (a0, a1, a2) {
        (Some(a), _, _) => IdMatch::Exact(a.clone()),
        (None, Some(a), _) => IdMatch::Exact(a.clone()),
        (None, None, Some(a)) => IdMatch::Name(a.clone()),
        _ => return None,
    };
    // With both AKID parts, the key found must have the key id too.
    let second = a0.as_ref().and(a1.clone());
    Some((m, second))
}

/// Does the found key carry the AKID's key id as its SKID (`find_asymmetric_key()`'s
/// last check when the AKID had both parts)?
pub(crate) fn second_id_ok(found: &AsymKey, second: &Option<KeyId>) -> bool {
    match second {
        None => true,
        Some(id) => found.ids[1].as_ref() == Some(id),
    }
}

/// The checks of a candidate before a signer is looked for
/// (`key_or_keyring_common()`, `restrict_link_by_signature()`):
/// `ENOPKG` for a certificate whose signature the kernel could not use.
pub(crate) fn candidate_sig(k: &AsymKey) -> Result<()> {
    match &k.sig {
        None => Err(Errno::ENOPKG),
        Some(_) => Ok(()),
    }
}

/// `key_or_keyring_common()` with an asymmetric trusted key: do the
/// candidate's AKID parts name the trusted key?
pub(crate) fn signed_by_ids(candidate: &AsymKey, trusted: &AsymKey) -> bool {
    let Some(sig) = &candidate.sig else {
        return false;
    };
    let ids = &trusted.ids;
    let either = |a: &Option<KeyId>| same(&ids[0], a) || same(&ids[1], a);
    match (&sig.auth_ids[0], &sig.auth_ids[1]) {
        (None, None) => same(&ids[2], &sig.auth_ids[2]),
        (Some(_), None) => either(&sig.auth_ids[0]),
        (None, Some(_)) => either(&sig.auth_ids[1]),
        (Some(_), Some(_)) => same(&ids[1], &sig.auth_ids[1]) && either(&sig.auth_ids[0]),
    }
}

/// `verify_signature()`: does `signer`'s key verify `candidate`'s signature?
pub(crate) fn verify_signed(candidate: &AsymKey, signer: &AsymKey) -> Result<()> {
    let sig = candidate.sig.as_ref().ok_or(Errno::ENOPKG)?;
    verify(&signer.pkey, sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kstrtos32_bases() {
        assert_eq!(kstrtos32("12"), Some(12));
        assert_eq!(kstrtos32("0x1f"), Some(31));
        assert_eq!(kstrtos32("010"), Some(8));
        assert_eq!(kstrtos32("-5"), Some(-5));
        // kstrtoull() skips one leading `+` (lib/kstrtox.c).
        assert_eq!(kstrtos32("+5"), Some(5));
        assert_eq!(kstrtos32("0"), Some(0));
        assert_eq!(kstrtos32("7\n"), Some(7));
        assert_eq!(kstrtos32(""), None);
        assert_eq!(kstrtos32("x"), None);
        assert_eq!(kstrtos32("09"), None);
        assert_eq!(kstrtos32("2147483648"), None);
        // One sign at most: the digits after it are digits alone
        // (`from_str_radix` would take a second sign).
        assert_eq!(kstrtos32("--5"), None);
        assert_eq!(kstrtos32("+-5"), None);
        assert_eq!(kstrtos32("-+5"), None);
    }

    /// A 512-bit RSA key made for these tests alone (openssl genrsa):
    /// its modulus and private exponent, e = 65537.
    const TEST_N: &str = "ef86bfd55e6545318692d8b226b394ebfcf563927dd271abac5fe6fce4e4b60c\
                          866131b922829b970e786fab5c57ef01e896a2b9af59a3c5b25af3772b076509";
    const TEST_D: &str = "698d27dc0eccf1c0f15ca4c15ceca62398454aabb3669950dd9525652c38dd3f\
                          ad6f2b3906bb616846ed3f50991cf4214cfe9130eb630d713a0e46c8e3df0901";

    /// The test key's public half as an asymmetric key (its
    /// RSAPublicKey DER, no ids, no signature), and (n, d).
    fn test_key() -> (AsymKey, rsa::BigUint, rsa::BigUint) {
        use rsa::BigUint;
        let n = BigUint::parse_bytes(TEST_N.as_bytes(), 16).unwrap();
        let d = BigUint::parse_bytes(TEST_D.as_bytes(), 16).unwrap();
        // SEQUENCE { INTEGER n (a 0 before its top bit), INTEGER 65537 }
        let mut der = vec![0x30, 0x48, 0x02, 0x41, 0x00];
        der.extend(n.to_bytes_be());
        der.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        let k = AsymKey {
            ids: [None, None, None],
            pkey: PublicKey {
                algo: "rsa",
                key: der,
            },
            sig: None,
        };
        (k, n, d)
    }

    /// `pkcs1pad_encrypt()` makes EME-PKCS1-v1_5's block (RFC 8017
    /// §7.2.1): as many bytes as the key, `00 02`, random non-zero bytes
    /// (at least 8), `00`, the data, each encryption a new padding; more
    /// than the key's length less 11 bytes is EOVERFLOW. Decrypted here
    /// with the test key's private exponent.
    #[test]
    fn pkcs1_encryption_is_eme_pkcs1_v1_5() {
        use rsa::BigUint;
        let (k, n, d) = test_key();
        for len in [0, 1, 20, 53] {
            let data: Vec<u8> = (1..=len as u8).collect();
            let c = pkey_op(&k, PkeyOp::Encrypt, "pkcs1", &data).unwrap();
            assert_eq!(c.len(), 64);
            let m = BigUint::from_bytes_be(&c).modpow(&d, &n).to_bytes_be();
            // The leading 00 is not in the number.
            assert_eq!(m.len(), 63, "{len}");
            assert_eq!(m[0], 0x02);
            let ps = &m[1..63 - len - 1];
            assert_eq!(ps.len(), 61 - len);
            assert!(ps.iter().all(|&b| b != 0), "{len}: {ps:02x?}");
            assert_eq!(m[62 - len], 0);
            assert_eq!(&m[63 - len..], &data[..]);
            let again = pkey_op(&k, PkeyOp::Encrypt, "pkcs1", &data).unwrap();
            assert_ne!(again, c, "{len}: the padding is random");
        }
        assert_eq!(
            pkey_op(&k, PkeyOp::Encrypt, "pkcs1", &[1; 54]),
            Err(Errno::EOVERFLOW)
        );
    }

    /// Raw encryption is the RSA primitive on `1 < m < n - 1`
    /// (`rsa_check_payload()`, asym.txt `asym-pkey-ops`), its output as
    /// many bytes as the key.
    #[test]
    fn raw_encryption_takes_1_lt_m_lt_n_minus_1() {
        use rsa::BigUint;
        let (k, n, _) = test_key();
        let e = BigUint::from(65537u32);
        let one = BigUint::from(1u8);
        for (m, ok) in [
            (BigUint::from(0u8), false),
            (one.clone(), false),
            (BigUint::from(2u8), true),
            (&n - 2u8, true),
            (&n - &one, false),
            (n.clone(), false),
        ] {
            let r = pkey_op(&k, PkeyOp::Encrypt, "raw", &m.to_bytes_be());
            if ok {
                let want = m.modpow(&e, &n).to_bytes_be();
                let c = r.unwrap();
                assert_eq!(c.len(), 64);
                assert_eq!(BigUint::from_bytes_be(&c).to_bytes_be(), want);
            } else {
                assert_eq!(r, Err(Errno::EINVAL), "{m:x}");
            }
        }
    }

    #[test]
    fn restriction_texts() {
        use Restriction::*;
        assert_eq!(
            parse_restriction("builtin_trusted"),
            Ok((BuiltinTrusted, None))
        );
        assert_eq!(
            parse_restriction("key_or_keyring:0:chain"),
            Ok((
                KeyOrKeyring {
                    key: None,
                    chain: true
                },
                None
            ))
        );
        assert_eq!(
            parse_restriction("key_or_keyring:0"),
            Ok((
                KeyOrKeyring {
                    key: None,
                    chain: false
                },
                Some(0)
            ))
        );
        for bad in [
            "",
            "bogus",
            "key_or_keyring",
            "key_or_keyring:",
            "key_or_keyring:5:",
            "key_or_keyring:5:chain:",
        ] {
            assert_eq!(parse_restriction(bad), Err(Errno::EINVAL), "{bad}");
        }
    }

    #[test]
    fn id_specs() {
        assert_eq!(IdMatch::preparse("plain"), Ok(None));
        assert_eq!(
            IdMatch::preparse("id:0aFF"),
            Ok(Some(IdMatch::Partial(vec![10, 255])))
        );
        assert_eq!(IdMatch::preparse("ex:"), Err(Errno::EINVAL));
        assert_eq!(IdMatch::preparse("dn:abc"), Err(Errno::EINVAL));
        assert_eq!(IdMatch::preparse("ex:zz"), Err(Errno::EINVAL));
        assert_eq!(IdMatch::preparse(""), Err(Errno::EINVAL));
    }

    #[test]
    fn garbage_is_ebadmsg() {
        assert_eq!(preparse(b"").map(|_| ()), Err(Errno::EINVAL));
        assert_eq!(preparse(b"garbage").map(|_| ()), Err(Errno::EBADMSG));
        assert_eq!(
            preparse(&[0x30, 0x03, 0x02, 0x01, 0x00]).map(|_| ()),
            Err(Errno::EBADMSG)
        );
    }
}

#!/usr/bin/env bash
# Makes the X.509 certificates tests/conformance/probes/asym.c adds as
# asymmetric keys, and writes them as C arrays to
# tests/conformance/probes/asym-certs.h (committed: the recording in
# tests/data/conformance/asym.txt holds their key ids, so re-running this
# script means re-recording asym with scripts/record-conformance.sh).
#
# The chain: two self-signed roots (ca1, ca2), an intermediate (int,
# signed by ca2), end certificates signed by ca2 (ee, ee-sha1, noskid,
# noakid, prefix, orgcn, mailonly) and by int (ee2), and a self-signed end
# certificate (self), and two with P-256 keys (ec-ee signed by ca2,
# ec-self self-signed). RSA 2048 unless said; SHA-256 signatures unless
# said.
#
# `--more` makes the second set instead, asym-certs2.h (asym.c's
# asym-parse2 section), and leaves asym-certs.h and its key ids alone:
# the shapes the first set has not (a version-1 certificate, a name of
# an O alone or of a CN sharing the O's first 7 bytes, a 1-byte SKID,
# two SKIDs, a 2-byte key usage, P-384 and P-521 keys, an ECDSA-SHA-1
# signature, a self-signed certificate whose AKID has its key id alone)
# and, for the kernel's PKCS#1 v1.5 padding checks, a self-signed RSA
# certificate `pad` with signatures over chosen encoded blocks (its
# private key signs them raw, as a decryption with
# `rsa_padding_mode:none` (m^d mod n either way), before it is
# thrown away).
# Needs openssl and xxd.
set -euo pipefail
cd "$(dirname "$0")/.."
more=false
[[ ${1:-} == --more ]] && more=true
out=$PWD/tests/conformance/probes/asym-certs.h
$more && out=$PWD/tests/conformance/probes/asym-certs2.h
tmp=$(mktemp -d /tmp/wq-asym-certs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
days=9000

cat > ext.cnf <<'CNF'
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always, issuer:always
[ee]
basicConstraints = CA:false
keyUsage = digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always, issuer:always
[noskid]
basicConstraints = CA:false
subjectKeyIdentifier = none
authorityKeyIdentifier = keyid:always
[noakid]
basicConstraints = CA:false
subjectKeyIdentifier = hash
authorityKeyIdentifier = none
CNF

key() { openssl genrsa -out "$1.key" "${2:-2048}" 2>/dev/null; }
root() { # name subject
    key "$1"
    openssl req -new -x509 -key "$1.key" -subj "$2" -days $days -sha256 \
        -config ext.cnf -extensions ca -set_serial "0x$(openssl rand -hex 8)" \
        -outform DER -out "$1.der" 2>/dev/null ||
    openssl req -new -x509 -key "$1.key" -subj "$2" -days $days -sha256 \
        -extensions ca -extfile ext.cnf -set_serial "0x$(openssl rand -hex 8)" \
        -outform DER -out "$1.der"
}
signed() { # name subject issuer section digest [bits]
    key "$1" "${6:-2048}"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days $days "-$5" \
        -extfile ext.cnf -extensions "$4" -outform DER -out "$1.der" 2>/dev/null
}
pem() { openssl x509 -inform DER -in "$1.der" -out "$1.pem"; }
# A file's bytes as one line of hex, and back.
hx() { xxd -p "$1" | tr -d '\n'; }
unhx() { xxd -r -p >"$1"; }
# C arrays of the named files (each NAME.der or NAME.bin as PREFIX_NAME).
arrays() { # prefix name...
    local p=$1 c v
    shift
    for c in "$@"; do
        v=${p}_${c//-/_}
        if [[ -f $c.der ]]; then cp "$c.der" "$v"; else cp "$c.bin" "$v"; fi
        xxd -i "$v" | sed 's/^unsigned/static const unsigned/'
    done
}

if $more; then
    cat >>ext.cnf <<'CNF'
[kid]
basicConstraints = CA:false
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[skid1]
basicConstraints = CA:false
subjectKeyIdentifier = none
authorityKeyIdentifier = keyid:always
2.5.29.14 = DER:04:01:ab
[skid2]
basicConstraints = CA:false
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
1.2.3.4 = DER:04:02:ab:cd
[ku2]
basicConstraints = CA:false
keyUsage = digitalSignature, decipherOnly
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[pad]
basicConstraints = CA:false
subjectKeyIdentifier = hash
authorityKeyIdentifier = none
CNF
    root ca3 "/O=Org3/CN=Issuer3"; pem ca3
    signed orgonly "/O=OnlyOrg" ca3 kid sha256
    signed prefix7 "/O=Gadgets Inc/CN=Gadgets Limited" ca3 kid sha256
    signed skid1 "/O=Org/CN=OneByteSkid" ca3 skid1 sha256
    signed skid2 "/O=Org/CN=TwoSkids" ca3 skid2 sha256
    signed ku2 "/O=Org/CN=KeyUsage2" ca3 ku2 sha256
    # skid2's extension 1.2.3.4 (06 03 2a 03 04) made a second SKID
    # (2.5.29.14): its signature is not checked on add.
    hx skid2.der | sed 's/06032a0304/0603551d0e/' | unhx skid2.tmp && mv skid2.tmp skid2.der
    # Version 1: no extensions (x509 -req without -extfile).
    key v1
    openssl req -new -key v1.key -subj "/O=Org/CN=Version1" -out v1.csr
    openssl x509 -req -in v1.csr -CA ca3.pem -CAkey ca3.key -set_serial "0x$(openssl rand -hex 8)" \
        -days $days -sha256 -outform DER -out v1.der 2>/dev/null
    for curve in secp384r1:ec384 secp521r1:ec521; do
        openssl ecparam -name "${curve%%:*}" -genkey -noout -out "${curve#*:}.key"
        openssl req -new -key "${curve#*:}.key" -subj "/O=Org/CN=${curve#*:}" -out "${curve#*:}.csr"
        openssl x509 -req -in "${curve#*:}.csr" -CA ca3.pem -CAkey ca3.key -set_serial \
            "0x$(openssl rand -hex 8)" -days $days -sha256 -extfile ext.cnf -extensions kid \
            -outform DER -out "${curve#*:}.der" 2>/dev/null
    done
    # ECDSA-SHA-1: a P-256 certificate signed so by an EC issuer (the
    # issuer's own certificate is not kept).
    openssl ecparam -name prime256v1 -genkey -noout -out ecca.key
    openssl req -new -x509 -key ecca.key -subj "/O=Org3/CN=EcIssuer" -days $days -out ecca.pem
    openssl ecparam -name prime256v1 -genkey -noout -out ecsha1.key
    openssl req -new -key ecsha1.key -subj "/O=Org/CN=EcSha1" -out ecsha1.csr
    openssl x509 -req -in ecsha1.csr -CA ecca.pem -CAkey ecca.key -set_serial "0x$(openssl rand -hex 8)" \
        -days $days -sha1 -extfile ext.cnf -extensions kid -outform DER -out ecsha1.der 2>/dev/null
    key selfkid
    openssl req -new -x509 -key selfkid.key -subj "/O=Org/CN=SelfKid" -days $days -sha256 \
        -extensions kid -config ext.cnf -set_serial "0x$(openssl rand -hex 8)" -outform DER \
        -out selfkid.der 2>/dev/null

    # pad: self-signed, RSA 2048, SHA-256; its signature is the last 256
    # bytes. Each sig_pad_NAME is a signature over an encoded block
    # 00 01 FF.. 00 DigestInfo digest changed as the name says.
    key pad
    openssl req -new -x509 -key pad.key -subj "/O=Org/CN=Padding" -days $days -sha256 \
        -extensions pad -config ext.cnf -set_serial "0x$(openssl rand -hex 8)" -outform DER \
        -out pad.der 2>/dev/null
    di=3031300d060960864801650304020105000420 # SHA-256's DigestInfo
    ff() { printf 'ff%.0s' $(seq "$1"); }
    zeros() { printf '00%.0s' $(seq "$1"); }
    raw_sign() { # name hex-block (256 bytes)
        unhx "$1.em" <<<"$2"
        openssl pkeyutl -decrypt -inkey pad.key -pkeyopt rsa_padding_mode:none -in "$1.em" -out "$1.bin"
    }
    # The TBS of a certificate in hex (after the outer 4-byte header).
    tbs_of() { local h=$1; echo "${h:8:$((8 + 2 * 0x${h:12:4}))}"; }
    h=$(hx pad.der)
    d=$(tbs_of "$h" | unhx tbs.der; openssl dgst -sha256 -binary tbs.der | xxd -p | tr -d '\n')
    raw_sign ok "0001$(ff 202)00$di$d"
    # 8 FFs (the fewest taken) and 7, each with the rest zero-filled.
    raw_sign ff8 "0001$(ff 8)00$di$d$(zeros 194)"
    raw_sign ff7 "0001$(ff 7)00$di$d$(zeros 195)"
    raw_sign no00 "0001$(ff 202)02$di$d"
    raw_sign allff "0001$(ff 254)"
    raw_sign infoonly "0001$(ff 234)00$di"
    raw_sign short "0001$(ff 243)00${di:0:20}"
    raw_sign digest "0001$(ff 202)00$di${d:0:62}$(printf %02x $((0x${d:62:2} ^ 1)))"
    # pad_long: pad with a 0 byte before its signature (257 bytes: the
    # outer and the BIT STRING lengths one more).
    printf '%s%04x%s0382010200%s' 3082 $((0x${h:4:4} + 1)) "${h:8:$((${#h} - 8 - 522))}" \
        "00${h: -512}" | unhx pad_long.der
    # pad_ecsig: pad's TBS and outer signature algorithms made
    # ecdsa-with-SHA256 (the NULL parameters made a 1-byte OCTET STRING,
    # same length), signed with pad's RSA key over the new TBS.
    e=$(sed 's/300d06092a864886f70d01010b0500/300d06082a8648ce3d040302040100/g' <<<"$h")
    d=$(tbs_of "$e" | unhx tbs.der; openssl dgst -sha256 -binary tbs.der | xxd -p | tr -d '\n')
    raw_sign ecsig "0001$(ff 202)00$di$d"
    unhx pad_ecsig.der <<<"${e:0:$((${#e} - 512))}$(hx ecsig.bin)"
    {
        echo "/* asym-certs2.h - more X.509 certificates for asym.c, made by"
        echo " * scripts/make-asym-certs.sh --more (openssl; private keys thrown"
        echo " * away). sig_pad_NAME: a signature to put in place of pad's last"
        echo " * 256 bytes. */"
        arrays cert ca3 orgonly prefix7 skid1 skid2 ku2 v1 ec384 ec521 ecsha1 selfkid pad \
            pad_long pad_ecsig
        arrays sig_pad ok ff8 ff7 no00 allff infoonly short digest
    } >"$out"
    echo "make-asym-certs: $out"
    exit 0
fi

root ca1 "/O=Org1/CN=Issuer1/emailAddress=ca1@example.com"; pem ca1
root ca2 "/O=Org2/CN=Issuer2/emailAddress=ca2@example.com"; pem ca2
signed int "/O=Org2/CN=Intermediate2/emailAddress=int@example.com" ca2 ca sha256; pem int
signed ee "/O=Org/CN=EndEntity/emailAddress=ee@example.com" ca2 ee sha256
signed ee-sha1 "/O=Org/CN=EndEntitySha1" ca2 ee sha1
signed ee2 "/O=Org/CN=EndEntity2/emailAddress=ee2@example.com" int ee sha512 3072
signed noskid "/O=Org/CN=NoSkid" ca2 noskid sha256
signed noakid "/O=Org/CN=NoAkid" ca2 noakid sha256
signed prefix "/O=Acme/CN=Acme signing key" ca2 ee sha256
signed orgcn "/O=Widgets Limited/CN=Widgets Limited CA" ca2 ee sha256
signed mailonly "/emailAddress=solo@example.com" ca2 ee sha256
# EC keys: one signed by ca2 (an RSA signature), one self-signed (ECDSA).
openssl ecparam -name prime256v1 -genkey -noout -out ec-ee.key
openssl req -new -key ec-ee.key -subj "/O=Org/CN=EcEntity" -out ec-ee.csr
openssl x509 -req -in ec-ee.csr -CA ca2.pem -CAkey ca2.key -set_serial "0x$(openssl rand -hex 8)" \
    -days $days -sha256 -extfile ext.cnf -extensions ee -outform DER -out ec-ee.der 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out ec-self.key
openssl req -new -key ec-self.key -subj "/O=Org/CN=EcSelf" -out ec-self.csr
openssl x509 -req -in ec-self.csr -key ec-self.key -set_serial "0x$(openssl rand -hex 8)" \
    -days $days -sha256 -extfile ext.cnf -extensions ee -outform DER -out ec-self.der 2>/dev/null
key self
openssl req -new -x509 -key self.key -subj "/O=Org/CN=Self/emailAddress=self@example.com" \
    -days $days -sha256 -extensions ee -config ext.cnf \
    -set_serial "0x$(openssl rand -hex 8)" -outform DER -out self.der 2>/dev/null ||
openssl req -new -x509 -key self.key -subj "/O=Org/CN=Self/emailAddress=self@example.com" \
    -days $days -sha256 -extensions ee -extfile ext.cnf \
    -set_serial "0x$(openssl rand -hex 8)" -outform DER -out self.der

{
    echo "/* asym-certs.h - X.509 certificates for asym.c, made by"
    echo " * scripts/make-asym-certs.sh (openssl; private keys thrown away). */"
    for c in ca1 ca2 int ee ee-sha1 ee2 noskid noakid prefix orgcn mailonly self ec-ee ec-self; do
        v=cert_${c//-/_}
        cp "$c.der" "$v"
        xxd -i "$v" | sed 's/^unsigned/static const unsigned/'
    done
} > "$out"
echo "make-asym-certs: $out"

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
# Needs openssl and xxd.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$PWD/tests/conformance/probes/asym-certs.h
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

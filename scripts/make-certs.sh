#!/usr/bin/env bash
# make-certs.sh DIR [NAME...]: a small test PKI for gatehouse's TLS (openssl CLI; EC P-256; valid 3
# days). Used by tests/tls.rs and netns-tests/t23-tls.sh; good for trying `bind … ssl` by hand.
#
#   DIR/ca.crt, ca.key              the test CA ("gatehouse test CA")
#   DIR/crt/NAME.pem                a server bundle (certificate, then key, HAProxy style) per NAME,
#                                   CN and DNS SAN NAME; `*.example.test` gives
#                                   crt/wildcard.example.test.pem. `crt DIR/crt` loads them all, in
#                                   name order (the first is the default certificate).
#   DIR/client.pem, client2.pem     client bundles (CN=client, CN=client2) signed by the test CA
#   DIR/other-ca.crt, other-ca.key  an unrelated CA ("gatehouse other CA") ...
#   DIR/other-client.pem            ... and a client bundle it signed (CN=client), for "wrong CA" cases
#   DIR/origin.pem                  an origin server bundle, SANs DNS:origin.example.test and
#                                   IP:$ORIGIN_IP (default 127.0.0.1), signed by the test CA
#
# NAMEs default to a.example.test b.example.test *.example.test. Idempotent and quiet: a file that
# exists, verifies against its CA, has the SANs asked for and is valid for another day is kept;
# anything else is made (again). A CA made again remakes everything it signed.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 DIR [NAME...]" >&2; exit 2; }
dir=$1
shift
[ $# -gt 0 ] || set -- a.example.test b.example.test '*.example.test'
origin_ip=${ORIGIN_IP:-127.0.0.1}
mkdir -p "$dir/crt"
cd "$dir"

# run CMD...: runs it silently; on failure prints its output and stops.
run() {
    local out
    out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; echo "make-certs: failed: $*" >&2; exit 1; }
}

# fresh FILE CA [SAN]: FILE verifies against CA, stays valid for a day, and names every SAN entry.
fresh() {
    local f=$1 ca=$2 want=$3 have e
    [ -s "$f" ] && openssl verify -CAfile "$ca" "$f" >/dev/null 2>&1 &&
        openssl x509 -in "$f" -noout -checkend 86400 >/dev/null 2>&1 || return 1
    have=$(openssl x509 -in "$f" -noout -ext subjectAltName 2>/dev/null || true)
    for e in ${want//,/ }; do
        case $e in
        IP:*) [[ $have == *"IP Address:${e#IP:}"* ]] || return 1 ;;
        *) [[ $have == *"$e"* ]] || return 1 ;;
        esac
    done
}

# ca NAME CN: a self-signed CA in NAME.crt / NAME.key.
ca() {
    fresh "$1.crt" "$1.crt" "" && return 0
    run openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3 \
        -subj "/O=gatehouse tests/CN=$2" -keyout "$1.key" -out "$1.crt" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    # Everything the old CA signed must be made again.
    [ "$1" = ca ] && rm -f crt/*.pem client.pem client2.pem origin.pem
    [ "$1" = other-ca ] && rm -f other-client.pem
    return 0
}

# leaf FILE CA CN EKU [SAN]: a bundle (certificate, then key) for CN, signed by CA.
leaf() {
    local f=$1 ca=$2 cn=$3 eku=$4 san=${5:-} ext
    fresh "$f" "$ca.crt" "$san" && return 0
    ext=$(mktemp)
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature"
        echo "extendedKeyUsage=$eku"
        [ -z "$san" ] || echo "subjectAltName=$san"
    } >"$ext"
    run openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/O=gatehouse tests/CN=$cn" -keyout "$f.key.tmp" -out "$f.csr.tmp"
    run openssl x509 -req -in "$f.csr.tmp" -CA "$ca.crt" -CAkey "$ca.key" \
        -set_serial "0x$(openssl rand -hex 12)" -days 3 -extfile "$ext" -out "$f.crt.tmp"
    cat "$f.crt.tmp" "$f.key.tmp" >"$f"
    rm -f "$ext" "$f.key.tmp" "$f.csr.tmp" "$f.crt.tmp"
}

ca ca "gatehouse test CA"
ca other-ca "gatehouse other CA"
for name in "$@"; do
    leaf "crt/${name/#\*./wildcard.}.pem" ca "$name" serverAuth "DNS:$name"
done
leaf client.pem ca client clientAuth
leaf client2.pem ca client2 clientAuth
leaf other-client.pem other-ca client clientAuth
leaf origin.pem ca origin.example.test serverAuth "DNS:origin.example.test,IP:$origin_ip"

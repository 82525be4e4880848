#!/usr/bin/env bash
# tunnel-certs.sh DIR EXIT_NAME [ENTRY_NAME...]: the certificates of a gatehouse TLS tunnel
# (docs/tunnel.md), made with the openssl CLI (EC P-256):
#
#   DIR/ca.crt, DIR/ca.key      the tunnel's own CA. It signs nothing else: trust in it means "a peer
#                               of this tunnel". Keep ca.key off the gateways once the certificates
#                               are made.
#   DIR/exit.pem                the exit's bundle (certificate, then key): CN and DNS SAN EXIT_NAME,
#                               serverAuth; the entry checks it with `verifyhost EXIT_NAME`.
#   DIR/ENTRY_NAME.pem          one client bundle per entry (default: one named "entry"): CN
#                               ENTRY_NAME, clientAuth; the exit sees the CN as ssl_c_s_dn.
#
# Validity: 825 days (DAYS to change). An existing CA is reused, so entries can be added later:
# `tunnel-certs.sh DIR EXIT_NAME entry2` makes entry2.pem only (and exit.pem if missing).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR EXIT_NAME [ENTRY_NAME...]" >&2; exit 2; }
dir=$1 exit_name=$2
shift 2
[ $# -gt 0 ] || set -- entry
days=${DAYS:-825}
mkdir -p "$dir"
cd "$dir"
umask 077

quiet() { local out; out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }; }

if [ ! -s ca.crt ] || [ ! -s ca.key ]; then
    quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$days" \
        -subj "/CN=gatehouse tunnel CA" -keyout ca.key -out ca.crt \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
fi

# issue NAME FILE USAGE [SAN]: a bundle signed by the CA.
issue() {
    local name=$1 file=$2 usage=$3 san=${4:-}
    local tmp
    tmp=$(mktemp -d)
    quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
        -keyout "$tmp/key" -out "$tmp/csr"
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature"
        echo "extendedKeyUsage=$usage"
        [ -z "$san" ] || echo "subjectAltName=$san"
    } >"$tmp/ext"
    quiet openssl x509 -req -in "$tmp/csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
        -extfile "$tmp/ext" -out "$tmp/crt"
    cat "$tmp/crt" "$tmp/key" >"$file"
    rm -rf "$tmp"
    echo "made $dir/$file"
}

[ -s exit.pem ] || issue "$exit_name" exit.pem serverAuth "DNS:$exit_name"
for e in "$@"; do
    [ -s "$e.pem" ] || issue "$e" "$e.pem" clientAuth
done

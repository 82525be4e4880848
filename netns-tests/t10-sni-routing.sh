#!/usr/bin/env bash
# Issue #3: SNI routing in a transparent gateway. Two names resolve (dnsmasq) to two server addresses;
# the client dials a made-up address that only the gateway's interception can answer, and gatehouse
# dials the address of the name in the ClientHello. curl verifies the certificate end to end. Also:
# a 20 KiB ClientHello, one in 1-byte segments with pauses, and SNI in the second and third record.
#
#   +--------------+        +-------------------------------+        +-----------------------+
#   | gh40c        |  veth  | gh40g   ip_forward=0          |  veth  | gh40s                 |
#   | curl, openssl|--------| gatehouse: intercept 443,     |--------| nginx :443 ssl        |
#   | tls_hello.py |        | server %[req.ssl_sni]:443     |        | 10.40.2.2 a.example.. |
#   | 10.40.1.2    |        | 10.40.1.1 | 10.40.2.1         |        | 10.40.2.3 b.example.. |
#   +--------------+        +-------------------------------+        +-----------------------+
#                                   | 10.40.4.1
#                           +----------------+
#                           | gh40d dnsmasq  |  a.example.test -> 10.40.2.2
#                           | 10.40.4.2      |  b.example.test -> 10.40.2.3
#                           +----------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t10 40
gh_topology
gh_dns_topology
gh_two_servers
printf '%s a.example.test\n%s b.example.test\n' "$SRV4" "$SRV4B" >"$GH_TMP/honest.hosts"
gh_dnsmasq honest "$DNSG4"
FAKE=10.40.9.9 # routed to the gateway by the client's default route; nothing has this address

cat >"$GH_TMP/gw.cfg" <<CFG
resolvers dns
    nameserver honest $DNSG4:53
frontend sni
    bind :15443 transparent
    intercept dport 443
    tcp-request inspect-delay 5s
    default_backend by-name
backend by-name
    server sni %[req.ssl_sni]:443 resolvers dns
    allow-name .example.test
    allow-net 10.40.0.0/16
    source 0.0.0.0 usesrc clientip
CFG
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"

fetch() { # fetch NAME: curl https://NAME/ through the interception, the certificate checked
    gh_x "$C" curl -sS --max-time 5 --cacert "$GH_TMP/pki/ca.crt" --resolve "$1:443:$FAKE" "https://$1/"
}
[ "$(fetch a.example.test)" = "hello from the server" ] || gh_fail "a.example.test through the gateway"
[ "$(fetch b.example.test)" = "hello from the server" ] || gh_fail "b.example.test through the gateway"
# Each name reached its own address, and the server saw the client's own address.
gh_wait_grep "^$CLI4 443 \"GET / HTTP/1.1\" 200 [0-9]+ $SRV4\$" "$GH_TMP/web-access.log" "a.example.test on $SRV4"
gh_wait_grep "^$CLI4 443 \"GET / HTTP/1.1\" 200 [0-9]+ $SRV4B\$" "$GH_TMP/web-access.log" "b.example.test on $SRV4B"
gh_wait_grep "^$CLI4:[0-9]+ .* sni by-name/sni [0-9]+/[0-9]+/[0-9]+ [0-9]{3,} -- .* \{a\.example\.test\}\$" "$GH_TMP/gw.log" "log line with the name"
gh_wait_grep "\{b\.example\.test\}\$" "$GH_TMP/gw.log" "log line with the second name"
# openssl s_client too: the certificate chain verifies against the test CA for the name it sent.
echo | gh_x "$C" timeout 10 openssl s_client -connect "$FAKE:443" -servername b.example.test \
    -CAfile "$GH_TMP/pki/ca.crt" -verify_hostname b.example.test -verify_return_error >"$GH_TMP/s_client.out" 2>&1 ||
    gh_fail "openssl s_client: $(tail -n 5 "$GH_TMP/s_client.out")"
grep -q "Verify return code: 0 (ok)" "$GH_TMP/s_client.out" || gh_fail "s_client did not verify: $(grep -i verify "$GH_TMP/s_client.out")"

# Awkward hellos: each must reach nginx, which answers with a handshake record.
for split in record-2 record-3 big; do
    gh_x "$C" timeout 10 python3 "$GH_ROOT/netns-tests/tls_hello.py" "$FAKE" 443 --sni b.example.test --split "$split" \
        >"$GH_TMP/hello-$split.out" 2>&1 || gh_fail "hello ($split): $(cat "$GH_TMP/hello-$split.out")"
done
grep -q "20337-byte hello" "$GH_TMP/hello-big.out" || gh_fail "the big hello was not 20 KiB: $(cat "$GH_TMP/hello-big.out")"
# One byte per TCP segment, 5 ms apart: about 2 s of dribble, well inside inspect-delay.
gh_x "$C" timeout 20 python3 "$GH_ROOT/netns-tests/tls_hello.py" "$FAKE" 443 --sni a.example.test --split bytes --pause 0.005 \
    >"$GH_TMP/hello-bytes.out" 2>&1 || gh_fail "hello in 1-byte segments: $(cat "$GH_TMP/hello-bytes.out")"
# Log lines are written in batches (up to 100 ms late): wait for the five.
for _ in $(seq 50); do [ "$(grep -c '{b.example.test}$' "$GH_TMP/gw.log")" -ge 5 ] && break; sleep 0.1; done
[ "$(grep -c '{b.example.test}$' "$GH_TMP/gw.log")" -ge 5 ] || gh_fail "split hellos were not all routed by name: $(cat "$GH_TMP/gw.log")"
# Every line is the tcplog layout with the name appended.
bad=$(grep -vE -- "$GH_TCPLOG_NAMED" "$GH_TMP/gw.log") && gh_fail "log lines not in tcplog layout with {NAME}: $bad"
gh_pass

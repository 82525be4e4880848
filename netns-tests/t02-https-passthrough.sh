#!/usr/bin/env bash
# Test 2: HTTPS on 443 passes through untouched: curl verifies the server's certificate against the
# test CA, so the bytes gatehouse carried are the server's own TLS session, end to end.
#
#   +-----------+         +--------------------------+         +-------------------+
#   | gh12c     |  veth   | gh12g  ip_forward=0      |  veth   | gh12s             |
#   | curl      |---------| gatehouse (no -f)        |---------| nginx :443 ssl    |
#   | --cacert  |         |                          |         | cert IP:10.12.2.2 |
#   | 10.12.1.2 |         | 10.12.1.1 | 10.12.2.1    |         | 10.12.2.2         |
#   +-----------+         +--------------------------+         +-------------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t02 12
gh_topology
gh_pki "IP:$SRV4"
gh_nginx "$S" web "listen 443 ssl; listen [::]:443 ssl;
        ssl_certificate $GH_TMP/pki/server.crt; ssl_certificate_key $GH_TMP/pki/server.key;"
gh_gatehouse "$G" gw

# --cacert alone (no system CAs, no -k): only a certificate signed by the test CA for $SRV4 passes.
body=$(gh_x "$C" curl -sS --max-time 5 --cacert "$GH_TMP/pki/ca.crt" "https://$SRV4/") \
    || gh_fail "curl https through the gateway failed"
[ "$body" = "hello from the server" ] || gh_fail "unexpected body: $body"
gh_wait_grep "^$CLI4 443 \"GET / HTTP/1.1\" 200" "$GH_TMP/web-access.log" "nginx saw the client's IP over TLS"
gh_assert_no_grep "^$GWS4 " "$GH_TMP/web-access.log" "nginx saw the gateway's IP"
# The server's half of the handshake (certificate chain) alone is well over 1000 bytes.
gh_wait_grep "^$CLI4:[0-9]+ .* gateway original-destination/original [0-9]+/[0-9]+/[0-9]+ [0-9]{4,} -- " \
    "$GH_TMP/gw.log" "gatehouse logged the TLS session"
grep -E "$GH_TCPLOG" "$GH_TMP/gw.log" >/dev/null || gh_fail "log line is not in tcplog layout: $(cat "$GH_TMP/gw.log")"

# And the check is real: without the test CA, the same certificate is refused (curl exit 60).
gh_x "$C" curl -sS --max-time 5 -o /dev/null "https://$SRV4/" 2>/dev/null
rc=$?
[ "$rc" = 60 ] || gh_fail "curl without the test CA exited $rc, expected 60 (certificate not verified)"
gh_pass

#!/usr/bin/env bash
# Test 2: HTTPS on 443 passes through untouched: curl verifies the server's certificate against the
# test CA, so the bytes gatehouse carried are the server's own TLS session.
#
#   +-----------+         +--------------------------+         +-------------------+
#   | gh12c     |  veth   | gh12g  ip_forward=0      |  veth   | gh12s             |
#   | curl      |---------| gatehouse (no -f)        |---------| nginx :443 ssl    |
#   | 10.12.1.2 |         | 10.12.1.1 | 10.12.2.1    |         | 10.12.2.2         |
#   +-----------+         +--------------------------+         +-------------------+
. "$(dirname "$0")/lib.sh"
gh_init t02 12
gh_topology
gh_pki "IP:$SRV4"
gh_nginx "$S" web "listen 443 ssl; ssl_certificate $GH_TMP/pki/server.crt; ssl_certificate_key $GH_TMP/pki/server.key;"
gh_gatehouse "$G" gw

body=$(gh_x "$C" curl -sS --max-time 5 --cacert "$GH_TMP/pki/ca.crt" "https://$SRV4/") \
    || gh_fail "curl https through the gateway failed"
[ "$body" = "hello from the server" ] || gh_fail "unexpected body: $body"
gh_assert_grep "^$CLI4 443 \"GET / HTTP/1.1\" 200" "$GH_TMP/web-access.log" "nginx saw the client's IP over TLS"
sleep 0.2
gh_assert_grep "^$CLI4:[0-9]+ .* gateway original-destination/original .* -- " "$GH_TMP/gw.log" "gatehouse logged the TLS session"
gh_pass

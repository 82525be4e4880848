#!/usr/bin/env bash
# Test 1: HTTP through the gateway on the embedded default config (no -f); nginx logs the client's IP.
#
#   +-----------+         +--------------------------+         +-----------+
#   | gh11c     |  veth   | gh11g  ip_forward=0      |  veth   | gh11s     |
#   | client    |---------| gatehouse (no -f)        |---------| nginx :80 |
#   | 10.11.1.2 |         | 10.11.1.1 | 10.11.2.1    |         | 10.11.2.2 |
#   +-----------+         +--------------------------+         +-----------+
#
# With forwarding off, only gatehouse can carry the request; its tcplog line proves it did.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t01 11
gh_topology
gh_nginx "$S" web
gh_gatehouse "$G" gw

body=$(gh_x "$C" curl -sS --max-time 5 "http://$SRV4/") || gh_fail "curl through the gateway failed"
[ "$body" = "hello from the server" ] || gh_fail "unexpected body: $body"
gh_wait_grep "^$CLI4 80 \"GET / HTTP/1.1\" 200" "$GH_TMP/web-access.log" "nginx saw the client's IP"
gh_assert_no_grep "^$GWS4 " "$GH_TMP/web-access.log" "nginx saw the gateway's IP"
gh_wait_grep "^$CLI4:[0-9]+ \[.*\] gateway original-destination/original 0/[0-9]+/[0-9]+ [0-9]+ -- " "$GH_TMP/gw.log" "gatehouse logged the session"
grep -E "$GH_TCPLOG" "$GH_TMP/gw.log" >/dev/null || gh_fail "log line is not in tcplog layout: $(cat "$GH_TMP/gw.log")"
gh_pass

#!/usr/bin/env bash
# Test 5: test 1 over IPv6: nginx logs the client's IPv6 address, gatehouse logs the session.
#
#   +----------------+         +-------------------------------+         +----------------+
#   | gh15c          |  veth   | gh15g  forwarding off         |  veth   | gh15s          |
#   | curl -g [..]   |---------| gatehouse (no -f)             |---------| nginx [::]:80  |
#   | fd00:15:1::2   |         | fd00:15:1::1 | fd00:15:2::1   |         | fd00:15:2::2   |
#   +----------------+         +-------------------------------+         +----------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t05 15
gh_topology
gh_nginx "$S" web
gh_gatehouse "$G" gw

body=$(gh_x "$C" curl -sS -g --max-time 5 "http://[$SRV6]/") || gh_fail "curl over IPv6 failed"
[ "$body" = "hello from the server" ] || gh_fail "unexpected body: $body"
gh_wait_grep "^$CLI6 80 \"GET / HTTP/1.1\" 200" "$GH_TMP/web-access.log" "nginx saw the client's IPv6 address"
gh_assert_no_grep "^$GWS6 " "$GH_TMP/web-access.log" "nginx saw the gateway's IPv6 address"
gh_wait_grep "^$CLI6:[0-9]+ \[.*\] gateway original-destination/original 0/[0-9]+/[0-9]+ [0-9]+ -- " \
    "$GH_TMP/gw.log" "gatehouse logged the session"
grep -E "$GH_TCPLOG" "$GH_TMP/gw.log" >/dev/null || gh_fail "log line is not in tcplog layout: $(cat "$GH_TMP/gw.log")"
gh_pass

#!/usr/bin/env bash
# Test 5: test 1 over IPv6: nginx logs the client's IPv6 address.
#
#   +----------------+         +---------------------------+         +----------------+
#   | gh15c          |  veth   | gh15g  forwarding off     |  veth   | gh15s          |
#   | fd00:15:1::2   |---------| fd00:15:1::1|fd00:15:2::1 |---------| fd00:15:2::2   |
#   +----------------+         +---------------------------+         +----------------+
. "$(dirname "$0")/lib.sh"
gh_init t05 15
gh_topology
gh_nginx "$S" web
gh_gatehouse "$G" gw
body=$(gh_x "$C" curl -sS -g --max-time 5 "http://[$SRV6]/") || gh_fail "curl over IPv6 failed"
[ "$body" = "hello from the server" ] || gh_fail "unexpected body: $body"
gh_assert_grep "^$CLI6 80 \"GET / HTTP/1.1\" 200" "$GH_TMP/web-access.log" "nginx saw the client's IPv6 address"
sleep 0.2
gh_assert_grep "^$CLI6:[0-9]+ .* gateway original-destination/original " "$GH_TMP/gw.log" "gatehouse logged it"
gh_pass

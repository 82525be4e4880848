#!/usr/bin/env bash
# Test 6: traffic outside the interception declaration (port 8080) is routed untouched by the kernel:
# forwarding is ON here, nginx sees the client and gatehouse logs nothing for it; port 80 in the same
# run is still carried (and logged) by gatehouse.
#
#   +-----------+         +------------------------------+         +-----------------+
#   | gh16c     |  veth   | gh16g  ip_forward=1          |  veth   | gh16s           |
#   | curl      |---------| gatehouse (no -f): 80, 443   |---------| nginx :80 :8080 |
#   | 10.16.1.2 |         | 8080: plain kernel routing   |         | 10.16.2.2       |
#   +-----------+         +------------------------------+         +-----------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t06 16
gh_topology
gh_forwarding 1
gh_nginx "$S" web "listen 80; listen 8080;"
gh_gatehouse "$G" gw

# Port 8080: routed by the kernel, not gatehouse.
gh_x "$C" curl -sS --max-time 5 "http://$SRV4:8080/" >/dev/null || gh_fail "port 8080 not routed"
gh_wait_grep "^$CLI4 8080 \"GET / HTTP/1.1\" 200" "$GH_TMP/web-access.log" "8080 reached nginx from the client"
gh_settle
[ -s "$GH_TMP/gw.log" ] && gh_fail "gatehouse logged the port-8080 session: $(cat "$GH_TMP/gw.log")"

# Port 80 in the same run: carried by gatehouse.
gh_x "$C" curl -sS --max-time 5 "http://$SRV4/" >/dev/null || gh_fail "port 80 failed"
gh_wait_grep "^$CLI4 80 \"GET / HTTP/1.1\" 200" "$GH_TMP/web-access.log" "80 reached nginx from the client"
gh_wait_grep "^$CLI4:[0-9]+ .* gateway original-destination/original .* -- " "$GH_TMP/gw.log" "gatehouse logged port 80"
gh_settle
[ "$(wc -l <"$GH_TMP/gw.log")" = 1 ] || gh_fail "gatehouse should have logged exactly the port-80 session: $(cat "$GH_TMP/gw.log")"
gh_pass

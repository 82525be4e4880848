#!/usr/bin/env bash
# Test 7: a service on the gateway's own address is reachable and not intercepted; a client calling
# gatehouse's transparent listener port directly is refused (P code) instead of looping, and gatehouse
# stays alive and keeps working.
#
#   +-----------+         +------------------------------------+         +-----------+
#   | gh17c     |  veth   | gh17g  nginx on 10.17.1.1:80       |  veth   | gh17s     |
#   | curl      |---------|        gatehouse [::]:15080        |---------| nginx :80 |
#   | 10.17.1.2 |         | 10.17.1.1 | 10.17.2.1              |         | 10.17.2.2 |
#   +-----------+         +------------------------------------+         +-----------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t07 17
gh_topology
gh_nginx "$G" gwweb "listen $GWC4:80;"
gh_nginx "$S" web
gh_gatehouse "$G" gw

# Port 80 on the gateway's own address: the local nginx answers, gatehouse stays out of it.
gh_x "$C" curl -sS --max-time 5 "http://$GWC4/" >/dev/null || gh_fail "gateway's own service unreachable"
gh_wait_grep "^$CLI4 80 \"GET / HTTP/1.1\" 200" "$GH_TMP/gwweb-access.log" "the gateway's nginx served the client"
gh_settle
[ -s "$GH_TMP/gw.log" ] && gh_fail "gatehouse intercepted traffic to the gateway itself: $(cat "$GH_TMP/gw.log")"
[ -s "$GH_TMP/web-access.log" ] && gh_fail "the request for the gateway reached the server: $(cat "$GH_TMP/web-access.log")"

# The listener port itself, called directly: its "original destination" is gatehouse. It must refuse
# with a P (proxy) termination code, once, rather than connect to itself over and over.
gh_x "$C" curl -sS --max-time 5 "http://$GWC4:15080/" >/dev/null 2>&1 && gh_fail "direct call to the listener got an answer"
gh_wait_grep "^$CLI4:[0-9]+ .* P[A-Z] " "$GH_TMP/gw.log" "direct call refused with a P code"
gh_settle
[ "$(wc -l <"$GH_TMP/gw.log")" = 1 ] || gh_fail "the refusal looped: $(head -5 "$GH_TMP/gw.log")"
kill -0 "${GH_PID[gw]}" 2>/dev/null || gh_fail "gatehouse died"
# Still alive and still working: a real intercepted request goes through afterwards.
gh_x "$C" curl -sS --max-time 5 "http://$SRV4/" >/dev/null || gh_fail "interception broken after the refusal"
gh_wait_grep "^$CLI4:[0-9]+ .* -- " "$GH_TMP/gw.log" "gatehouse carried a request after the refusal"
gh_pass

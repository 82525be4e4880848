#!/usr/bin/env bash
# Test 7: a service on the gateway's own address is reachable and not intercepted; a client calling
# gatehouse's transparent listener port directly is refused (P) instead of looping, and gatehouse lives.
#
#   +-----------+         +------------------------------------+         +-----------+
#   | gh17c     |---------| gh17g  nginx on 10.17.1.1:80       |---------| gh17s     |
#   | curl      |         |        gatehouse [::]:15080        |         |           |
#   +-----------+         +------------------------------------+         +-----------+
. "$(dirname "$0")/lib.sh"
gh_init t07 17
gh_topology
gh_nginx "$G" gwweb "listen $GWC4:80;"
gh_gatehouse "$G" gw
gh_x "$C" curl -sS --max-time 5 "http://$GWC4/" >/dev/null || gh_fail "gateway's own service unreachable"
gh_assert_grep "^$CLI4 80 " "$GH_TMP/gwweb-access.log" "the gateway's nginx served the client"
sleep 0.2
[ -s "$GH_TMP/gw.log" ] && gh_fail "gatehouse intercepted traffic to the gateway itself: $(cat "$GH_TMP/gw.log")"
gh_x "$C" curl -sS --max-time 5 "http://$GWC4:15080/" >/dev/null 2>&1 && gh_fail "direct call to the listener got an answer"
sleep 0.2
gh_assert_grep "^$CLI4:[0-9]+ .* P[RC] " "$GH_TMP/gw.log" "direct call refused with a P code"
[ "$(wc -l <"$GH_TMP/gw.log")" = 1 ] || gh_fail "the refusal looped: $(head -5 "$GH_TMP/gw.log")"
kill -0 "$GH_PID_gw" || gh_fail "gatehouse died"
gh_pass

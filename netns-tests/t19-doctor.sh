#!/usr/bin/env bash
# Test 19: `gatehouse doctor` names a strict rp_filter and a missing return route, and is satisfied
# once its printed fixes are applied.
#
#   +---------------------+         +------------------------------+         +-----------+
#   | gh49c               |  veth   | gh49g  ip_forward=0          |  veth   | gh49s     |
#   | client router       |---------| gatehouse                    |---------| nginx :80 |
#   | 10.49.1.2 (gh49c0)  |         | 10.49.1.1 (gh49g0) 10.49.2.1 |         | 10.49.2.2 |
#   | 10.49.3.2/24 on lo: |         | rp_filter=1 on gh49g0,       |         |           |
#   |  the client network |         | no route to 10.49.3.0/24     |         |           |
#   +---------------------+         +------------------------------+         +-----------+
#
# The config intercepts port 80 from 10.49.3.0/24 arriving on gh49g0. The gateway has no route back to
# that network, and strict reverse-path filtering on gh49g0: intercepted clients get nothing. doctor
# must FAIL both (exit non-zero), first with gatehouse stopped (the unit and listener checks then WARN
# that it is not running), then with it running; after the printed fixes (ROUTER replaced by the client
# router's address) it must exit 0 with the plumbing unit and the listener OK, and a client of
# 10.49.3.0/24 must reach the server through gatehouse with its own address.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t19 49
gh_topology
CNET=10.$GH_N.3
ip -n "$C" addr add "$CNET.2/24" dev lo
gh_x "$G" sysctl -qw "net.ipv4.conf.${GH_P}g0.rp_filter=1"
gh_nginx "$S" web

cat >"$GH_TMP/doctor.cfg" <<CFG
frontend lan
    bind [::]:15080 transparent v4v6
    intercept dport 80 iif ${GH_P}g0 src $CNET.0/24
    default_backend passthrough

backend passthrough
    timeout connect 2s
    source 0.0.0.0 usesrc clientip
    server origin 0.0.0.0
CFG

# doctor N: runs doctor in the gateway; output in doctorN.out, exit status in DOCTOR_RC.
doctor() {
    gh_x "$G" "$GATEHOUSE" doctor -f "$GH_TMP/doctor.cfg" >"$GH_TMP/doctor$1.out" 2>"$GH_TMP/doctor$1.err"
    DOCTOR_RC=$?
    sed "s/^/[doctor $1] /" "$GH_TMP/doctor$1.out" >&2
}

# 1. gatehouse not running: both problems FAIL, the unit and the listeners are skipped with a WARN.
doctor 1
[ "$DOCTOR_RC" != 0 ] || gh_fail "doctor exited 0 with rp_filter=1 and no return route"
gh_assert_grep "^FAIL rp_filter ${GH_P}g0: .*effective 1" "$GH_TMP/doctor1.out" "strict rp_filter named"
gh_assert_grep "^ +fix: sysctl -w net\.ipv4\.conf\.${GH_P}g0\.rp_filter=2" "$GH_TMP/doctor1.out" "rp_filter fix"
gh_assert_grep "^FAIL route to $CNET\.0/24: no route" "$GH_TMP/doctor1.out" "missing return route named"
gh_assert_grep "^ +fix: ip route add $CNET\.0/24 via ROUTER dev ${GH_P}g0" "$GH_TMP/doctor1.out" "route fix"
gh_assert_grep "^WARN plumbing unit: gatehouse is not running" "$GH_TMP/doctor1.out" "unit skipped"
gh_assert_grep "^WARN listeners: gatehouse is not running" "$GH_TMP/doctor1.out" "listeners skipped"
gh_assert_grep "^OK   kernel tproxy" "$GH_TMP/doctor1.out" "kernel support"
gh_assert_no_grep "gatehouse_doctor_probe" <(gh_x "$G" nft list tables) "probe table left behind"

# 2. gatehouse running: the problems are real (the client gets nothing) and still reported.
gh_gatehouse "$G" gw -f "$GH_TMP/doctor.cfg"
gh_x "$C" curl -sS --max-time 3 --interface "$CNET.2" "http://$SRV4/" >/dev/null 2>&1 &&
    gh_fail "a client of $CNET.0/24 got through before the fixes"
doctor 2
[ "$DOCTOR_RC" != 0 ] || gh_fail "doctor exited 0 with gatehouse running, rp_filter=1 and no return route"
gh_assert_grep "^FAIL rp_filter ${GH_P}g0" "$GH_TMP/doctor2.out" "strict rp_filter named (running)"
gh_assert_grep "^FAIL route to $CNET\.0/24" "$GH_TMP/doctor2.out" "missing route named (running)"
gh_assert_grep "^OK   plumbing unit: nft table inet gatehouse" "$GH_TMP/doctor2.out" "unit found"
gh_assert_grep "^OK   listener \[::\]:15080: transparent bind" "$GH_TMP/doctor2.out" "listener found"

# 3. Apply every fix printed under a FAIL, as printed (ROUTER: the client router's address).
fixes=$(awk '/^FAIL / { want = 1; next } want && /^ +fix: / { sub(/^ +fix: /, ""); print } { want = 0 }' \
    "$GH_TMP/doctor2.out")
[ "$(printf '%s\n' "$fixes" | grep -c .)" = 2 ] || gh_fail "expected two fixes, got: $fixes"
while IFS= read -r cmd; do
    cmd=${cmd//ROUTER/$CLI4}
    gh_log "applying: $cmd"
    gh_x "$G" sh -c "$cmd" || gh_fail "fix failed: $cmd"
done <<<"$fixes"

doctor 3
[ "$DOCTOR_RC" = 0 ] || gh_fail "doctor still exits $DOCTOR_RC after the fixes"
gh_assert_no_grep "^FAIL" "$GH_TMP/doctor3.out" "no FAIL after the fixes"
gh_assert_grep "^OK   rp_filter ${GH_P}g0: .*effective 2" "$GH_TMP/doctor3.out" "rp_filter loose"
gh_assert_grep "^OK   route to $CNET\.0/24: via $CLI4 dev ${GH_P}g0" "$GH_TMP/doctor3.out" "route found"
gh_assert_grep "^OK   plumbing unit" "$GH_TMP/doctor3.out" "unit still found"

# 4. And the client network now gets through gatehouse, with its own address.
body=$(gh_x "$C" curl -sS --max-time 5 --interface "$CNET.2" "http://$SRV4/") ||
    gh_fail "a client of $CNET.0/24 still gets nothing after the fixes"
[ "$body" = "hello from the server" ] || gh_fail "unexpected body: $body"
gh_wait_grep "^$CNET\.2 80 " "$GH_TMP/web-access.log" "nginx saw the client network's address"
gh_wait_grep "^$CNET\.2:[0-9]+ .* lan passthrough/origin " "$GH_TMP/gw.log" "gatehouse logged the session"
gh_pass

#!/usr/bin/env bash
# Issue #5 (privileges): with `user gatehouse-test`, gatehouse binds, installs its plumbing, then runs
# as that user and group keeping only CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE, in every
# thread. Dropped, it still carries the client's own IP (usesrc clientip), runs health checks, answers on its stats socket, takes a SIGHUP reload that changes the plumbing (a new
# intercept port: nft runs again, as a child that must inherit CAP_NET_ADMIN) and adds a bind on a
# port below 1024, and removes its plumbing at SIGTERM. With iptables plumbing it refuses to start.
#
#   +-----------+         +---------------------------------+         +------------------+
#   | gh51c     |  veth   | gh51g  ip_forward=0             |  veth   | gh51s            |
#   | client    |---------| gatehouse as gatehouse-test     |---------| nginx :80, :8080 |
#   | 10.51.1.2 |         | 10.51.1.1   |   10.51.2.1       |         | 10.51.2.2        |
#   +-----------+         | tproxy :15080; after the reload |         +------------------+
#                         | also 10.51.1.1:21 → 10.51.2.2   |
#                         +---------------------------------+
#
# The port-21 listener connects from 10.51.9.9, an address no host has (usesrc ADDR): only a
# transparent socket can do that.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t21 51
gh_topology
gh_system_user gatehouse-test
RUN_UID=$(id -u gatehouse-test)
RUN_GID=$(getent group gatehouse-test | cut -d: -f3)
[ "$RUN_UID" != 0 ] || gh_fail "gatehouse-test is uid 0"
mkdir -p "$GH_TMP/www"
echo ok >"$GH_TMP/www/check"
gh_nginx "$S" web "listen 80; listen 8080;"

# config [EXTRA_INTERCEPT] [EXTRA_SECTION]: the configuration, to $GH_TMP/gw.cfg.
config() {
    cat >"$GH_TMP/gw.cfg" <<EOF
global
    user gatehouse-test
    nbthread 2
    stats socket $GH_TMP/admin.sock level admin
defaults
    mode tcp
    timeout connect 3s
    timeout client 30s
    timeout server 30s
frontend gateway
    bind 0.0.0.0:15080 transparent name intercepted
    intercept tcp dport 80 iif ${GH_P}g0
$1
    default_backend original-destination
backend original-destination
    source 0.0.0.0 usesrc clientip
    server original 0.0.0.0
backend checked
    option httpchk GET /check
    server web $SRV4:80 check inter 300ms
$2
EOF
}
config "" ""
# The pidfile's folder is root's: after the drop gatehouse cannot remove it, and must not mind.
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg" -p "$GH_TMP/gw.pid"
PID=${GH_PID[gw]}
grep -q "privileges dropped" "$GH_TMP/gw.err" || gh_fail "no 'privileges dropped' line: $(cat "$GH_TMP/gw.err")"

# Every thread: the user and group in all four id fields, and exactly the three capabilities (bits
# 10, 12, 13: 0x3400) in the effective, permitted, ambient and bounding sets; no new privileges.
KEEP=0000000000003400
threads=0
for st in /proc/"$PID"/task/*/status; do
    threads=$((threads + 1))
    tid=${st%/status}
    tid=${tid##*/}
    f() { awk -v k="$1:" '$1 == k { $1 = ""; sub(/^ +/, ""); print }' "$st"; }
    for id in $(f Uid); do [ "$id" = "$RUN_UID" ] || gh_fail "thread $tid: Uid $(f Uid), want $RUN_UID"; done
    for id in $(f Gid); do [ "$id" = "$RUN_GID" ] || gh_fail "thread $tid: Gid $(f Gid), want $RUN_GID"; done
    [ "$(f Groups)" = "$RUN_GID" ] || gh_fail "thread $tid: supplementary groups '$(f Groups)', want $RUN_GID"
    for set in CapEff CapPrm CapAmb CapBnd; do
        [ "$(f $set)" = "$KEEP" ] || gh_fail "thread $tid ($(cat /proc/"$PID"/task/"$tid"/comm)): $set $(f $set), want $KEEP"
    done
    [ "$(f NoNewPrivs)" = 1 ] || gh_fail "thread $tid: NoNewPrivs $(f NoNewPrivs)"
done
# The control thread and two workers at least.
[ "$threads" -ge 3 ] || gh_fail "only $threads threads"

# Transparent: nginx sees the client's own address.
body=$(gh_x "$C" curl -sS --max-time 5 "http://$SRV4/") || gh_fail "curl through the gateway failed"
[ "$body" = "hello from the server" ] || gh_fail "unexpected body: $body"
gh_wait_grep "^$CLI4 80 \"GET / HTTP/1.1\" 200" "$GH_TMP/web-access.log" "nginx saw the client's IP"
gh_assert_no_grep "^$GWS4 80 \"GET / " "$GH_TMP/web-access.log" "nginx saw the gateway's IP"
# Health checks go on after the drop (from the gateway's own address: checks do not use `source`).
gh_wait_grep "^$GWS4 80 \"GET /check HTTP/1.0\" 200" "$GH_TMP/web-access.log" "health checks"
# The stats socket (made by root before the drop) still answers.
echo "show stat" | socat - "UNIX-CONNECT:$GH_TMP/admin.sock" | grep -q '^checked,web,.*,UP,' ||
    gh_fail "show stat: $(echo "show stat" | socat - "UNIX-CONNECT:$GH_TMP/admin.sock")"

# Reload: a new intercept port (the plumbing unit changes, so nft runs again) and a new bind on
# port 21 (CAP_NET_BIND_SERVICE).
config "    intercept tcp dport 8080 iif ${GH_P}g0" "listen low
    bind $GWC4:21
    source 0.0.0.0 usesrc 10.$GH_N.9.9
    server web $SRV4:80"
kill -HUP "$PID"
gh_wait_grep "configuration reloaded" "$GH_TMP/gw.err" "the reload"
gh_assert_no_grep "refused" "$GH_TMP/gw.err" "the reload"
gh_x "$G" nft list table inet gatehouse >"$GH_TMP/nft.txt" 2>&1 || gh_fail "no nft table after the reload"
grep -q 'dport 8080' "$GH_TMP/nft.txt" || gh_fail "no rule for port 8080 after the reload: $(cat "$GH_TMP/nft.txt")"
body=$(gh_x "$C" curl -sS --max-time 5 "http://$SRV4:8080/") || gh_fail "curl to :8080 after the reload failed"
[ "$body" = "hello from the server" ] || gh_fail "unexpected body on :8080: $body"
gh_wait_grep "^$CLI4 8080 \"GET / HTTP/1.1\" 200" "$GH_TMP/web-access.log" "nginx saw the client's IP on 8080"
body=$(gh_x "$C" curl -sS --max-time 5 "http://$GWC4:21/low") || gh_fail "curl to the new port-21 bind failed"
gh_wait_grep "^10\.$GH_N\.9\.9 80 \"GET /low HTTP/1.1\" 404" "$GH_TMP/web-access.log" "the port-21 listener"
# Still dropped after the reload.
grep -q "^Uid:[[:space:]]*$RUN_UID[[:space:]]" "/proc/$PID/status" || gh_fail "not $RUN_UID after the reload"

gh_stop gw TERM
[ "$GH_RC" = 0 ] || gh_fail "gatehouse exited $GH_RC after SIGTERM: $(tail -5 "$GH_TMP/gw.err")"
grep -q "plumbing removed" "$GH_TMP/gw.err" || gh_fail "no 'plumbing removed' in the log"
gh_x "$G" nft list tables | grep -q 'inet gatehouse' && gh_fail "nft table left behind: $(gh_x "$G" nft list tables)"
for fam in 4 6; do
    gh_x "$G" ip -"$fam" rule | grep -q 'proto 103' && gh_fail "IPv$fam rule left behind: $(gh_x "$G" ip -"$fam" rule)"
    [ -z "$(gh_x "$G" ip -"$fam" route show table 100)" ] || gh_fail "IPv$fam route left in table 100"
done

# iptables-legacy needs /run/xtables.lock, which the dropped user cannot open: with `user`, iptables
# plumbing is refused at start, and what was installed for a moment is removed again.
config "" ""
sed -i 's/^global$/global\n    plumbing iptables/' "$GH_TMP/gw.cfg"
rc=0
gh_x "$G" timeout 10 "$GATEHOUSE" -f "$GH_TMP/gw.cfg" >"$GH_TMP/ipt.log" 2>"$GH_TMP/ipt.err" || rc=$?
[ "$rc" = 1 ] || gh_fail "gatehouse with iptables plumbing and a user exited $rc"
gh_assert_grep "'user' needs nftables plumbing" "$GH_TMP/ipt.err" "the refusal"
gh_x "$G" iptables-legacy-save -t mangle | grep -q GATEHOUSE && gh_fail "iptables chains left behind"
gh_x "$G" ip -4 rule | grep -q 'proto 103' && gh_fail "ip rule left behind after the refusal"
gh_pass

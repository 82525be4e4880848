#!/usr/bin/env bash
# Issue #5 (reload): wrk keeps requests flowing through the gateway while gatehouse is reloaded ten
# times with SIGHUP (the backend moves between two servers, a frontend comes and goes, one file in
# the middle is broken): no request fails, both servers take requests, and a long-lived TCP session
# opened before the first reload still carries bytes after the last one.
#
#   +-------------+        +------------------------------------+        +---------------------------+
#   | gh52c       |  veth  | gh52g   ip_forward=0               |  veth  | gh52s                     |
#   | wrk, curl,  |--------| gatehouse: http 10.52.1.1:8080     |--------| nginx a :80 on 10.52.2.2  |
#   | python      |        |            tcp  10.52.1.1:7000     |        | nginx b :80 on 10.52.2.3  |
#   | 10.52.1.2   |        | 10.52.1.1 | 10.52.2.1              |        | echo :7000 on 10.52.2.2   |
#   +-------------+        +------------------------------------+        +---------------------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t22 52
gh_topology
SRV4B=10.52.2.3
ip -n "$S" addr add "$SRV4B/24" dev "${GH_P}s0"
gh_nginx "$S" a "listen $SRV4:80;"
gh_nginx "$S" b "listen $SRV4B:80;"
# An echo server for the long-lived session.
ip netns exec "$S" socat TCP-LISTEN:7000,bind="$SRV4",fork,reuseaddr EXEC:cat {GH_LOCK_FD}>&- &
GH_PIDS+=("$!")

# config TO [EXTRA]: the gateway's configuration, with the http backend's server at TO.
config() {
    cat <<CFG
defaults
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend web
    mode http
    bind $GWC4:8080
    default_backend pool
frontend tunnel
    mode tcp
    bind $GWC4:7000
    default_backend echo
backend pool
    mode http
    server s $1:80
backend echo
    mode tcp
    server e $SRV4:7000
${2:-}
CFG
}
config "$SRV4" >"$GH_TMP/gw.cfg"
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"

# The long-lived session: a client that sends a line every 0.3 s for 20 s and writes what comes back.
cat >"$GH_TMP/long.py" <<'PY'
import socket, sys, time
s = socket.create_connection((sys.argv[1], 7000), timeout=5)
out = open(sys.argv[2], "w")
for i in range(60):
    s.sendall(b"ping %d\n" % i)
    out.write(s.recv(100).decode()); out.flush()
    time.sleep(0.3)
PY
gh_x "$C" python3 "$GH_TMP/long.py" "$GWC4" "$GH_TMP/long.out" &
LONG=$!
GH_PIDS+=("$LONG")
gh_wait_grep '^ping 0$' "$GH_TMP/long.out" "the long-lived session"

gh_x "$C" timeout 40 wrk -t1 -c8 -d14s --timeout 5s "http://$GWC4:8080/" >"$GH_TMP/wrk.out" 2>&1 &
WRK=$!
GH_PIDS+=("$WRK")
sleep 1
for i in $(seq 10); do
    if [ "$i" = 5 ]; then
        # A broken file: refused, the running configuration stays.
        config "$SRV4B" "backend broken
    server x" >"$GH_TMP/gw.cfg"
    elif [ $((i % 2)) = 0 ]; then
        config "$SRV4B" "frontend extra
    mode http
    bind $GWC4:8081
    default_backend pool" >"$GH_TMP/gw.cfg"
    else
        config "$SRV4" >"$GH_TMP/gw.cfg"
    fi
    kill -HUP "${GH_PID[gw]}"
    sleep 1
done
wait "$WRK" || gh_fail "wrk failed: $(cat "$GH_TMP/wrk.out")"
grep -q 'Requests/sec' "$GH_TMP/wrk.out" || gh_fail "wrk: $(cat "$GH_TMP/wrk.out")"
if grep -qE 'Socket errors|Non-2xx' "$GH_TMP/wrk.out"; then gh_fail "requests failed during the reloads: $(cat "$GH_TMP/wrk.out")"; fi
n=$(grep -c 'configuration reloaded' "$GH_TMP/gw.err")
[ "$n" = 9 ] || gh_fail "9 reloads should have happened, saw $n: $(grep -i reload "$GH_TMP/gw.err")"
grep -q 'reload refused: the configuration has errors' "$GH_TMP/gw.err" || gh_fail "the broken file was not refused"
na=$(grep -c 'GET / ' "$GH_TMP/a-access.log")
nb=$(grep -c 'GET / ' "$GH_TMP/b-access.log")
[ "$na" -gt 100 ] && [ "$nb" -gt 100 ] || gh_fail "both servers should have taken requests: a=$na b=$nb"
# The last reload (10, even) added the extra frontend: it answers.
[ "$(gh_x "$C" curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://$GWC4:8081/")" = 200 ] ||
    gh_fail "the frontend added by the last reload does not answer"

# The long-lived session went through all ten reloads.
gh_wait_grep '^ping 40$' "$GH_TMP/long.out" "the long-lived session after the reloads"
kill -0 "$LONG" 2>/dev/null || wait "$LONG" || gh_fail "the long-lived session failed"
gh_pass

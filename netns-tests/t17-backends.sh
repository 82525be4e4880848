#!/usr/bin/env bash
# Issue #4 (backends): weighted round robin over two real servers, an HTTP health check that marks a
# stopped server DOWN (logged as HAProxy logs it) and moves its traffic, a backup that takes over only
# when every active server is down, and a stick table that keeps a client on its server.
#
#   +-----------+        +---------------------------------+        +-----------------------------+
#   | gh47c     |  veth  | gh47g   ip_forward=0            |  veth  | gh47s                       |
#   | curl      |--------| gatehouse on 10.47.1.1:80/:81   |--------| nginx a :80 on 10.47.2.2    |
#   | 10.47.1.2 |        | 10.47.1.1 | 10.47.2.1           |        | nginx b :80 on 10.47.2.3    |
#   +-----------+        +---------------------------------+        | nginx c :8080 (backup)      |
#                                                                    +-----------------------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t17 47
gh_topology
SRV4B=10.47.2.3
ip -n "$S" addr add "$SRV4B/24" dev "${GH_P}s0"
gh_nginx "$S" a "listen $SRV4:80;"
A_PID=${GH_PIDS[-1]}
gh_nginx "$S" b "listen $SRV4B:80;"
gh_nginx "$S" c "listen $SRV4:8080;"
C_PID=${GH_PIDS[-1]}

cat >"$GH_TMP/gw.cfg" <<CFG
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend web
    bind $GWC4:80
    default_backend pool
frontend sticky
    bind $GWC4:81
    default_backend sticky
backend pool
    option httpchk GET /
    default-server check inter 200ms fall 2 rise 2
    server a $SRV4:80 weight 2
    server b $SRV4B:80
    server spare $SRV4:8080 backup
# No checks here: a stuck client whose server dies finds out by connecting; redispatch sends its
# last retry elsewhere, and the table then sticks it there.
backend sticky
    stick-table type ip size 1k expire 1m
    stick on src
    retries 1
    option redispatch
    server a $SRV4:80
    server b $SRV4B:80
CFG
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"

# get PORT TAG: fetches /?TAG (the index page; the tag marks the request in the access logs).
get() { gh_x "$C" curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://$GWC4:$1/?$2"; }
for i in 1 2 3 4 5 6; do [ "$(get 80 "rr$i")" = 200 ] || gh_fail "request $i"; done
na=$(grep -cF '"GET /?rr' "$GH_TMP/a-access.log")
nb=$(grep -cF '"GET /?rr' "$GH_TMP/b-access.log")
if [ "$na" != 4 ] || [ "$nb" != 2 ]; then gh_fail "weights 2:1 gave a=$na b=$nb"; fi

# Stick on src: every request from this client goes to one server.
for i in 1 2 3 4; do [ "$(get 81 "st$i")" = 200 ] || gh_fail "sticky request $i"; done
sa=$(grep -cF '"GET /?st' "$GH_TMP/a-access.log")
sb=$(grep -cF '"GET /?st' "$GH_TMP/b-access.log")
[ "$sa" = 4 ] || [ "$sb" = 4 ] || gh_fail "stick on src split the client: a=$sa b=$sb"

# Stop a: the HTTP check marks it DOWN within fall x inter, and b takes everything.
kill "$A_PID"
gh_wait_grep "^Server pool/a is DOWN, reason: Layer4 connection problem, info: \"Connection refused\".* 1 active and 1 backup servers left\." \
    "$GH_TMP/gw.log" "a marked down"
for i in 1 2 3; do [ "$(get 80 "after$i")" = 200 ] || gh_fail "request after a went down"; done
[ "$(grep -cF '"GET /?after' "$GH_TMP/b-access.log")" = 3 ] || gh_fail "b did not take a's traffic"
# The stuck client moves to a live server (one retry, redispatched: %rc is 1), and stays there.
[ "$(get 81 moved)" = 200 ] || gh_fail "the stuck client after its server went down"
gh_wait_grep "sticky sticky/b [0-9]+/[0-9]+/[0-9]+ [0-9]+ -- [0-9]+/[0-9]+/[0-9]+/[0-9]+/1 " "$GH_TMP/gw.log" "redispatched once"
[ "$(get 81 again)" = 200 ] || gh_fail "the moved client"
gh_wait_grep "sticky sticky/b [0-9]+/[0-9]+/[0-9]+ [0-9]+ -- [0-9]+/[0-9]+/[0-9]+/[0-9]+/0 " "$GH_TMP/gw.log" "stuck to b now"

# Stop b as well: the backup takes over, and no request is lost.
B_PID=$(cat "$GH_TMP/nginx-b/nginx.pid")
kill "$B_PID"
gh_wait_grep "^Server pool/b is DOWN" "$GH_TMP/gw.log" "b marked down"
[ "$(get 80 spare)" = 200 ] || gh_fail "request with only the backup"
gh_wait_grep '"GET /\?spare HTTP/1.1" 200' "$GH_TMP/c-access.log" "the backup served"
# The backup goes too: the backend has no server left, said as HAProxy says it.
kill "$C_PID"
gh_wait_grep "^backend pool has no server available!" "$GH_TMP/gw.log" "no server left"
gh_pass

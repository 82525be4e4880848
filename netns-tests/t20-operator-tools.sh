#!/usr/bin/env bash
# Issue #5 (runtime API): the tools operators point at HAProxy's stats socket work on gatehouse's.
# hatop (Debian's, in a detached tmux) shows the backend, its servers and their status, and its CLI
# mode changes a server; prometheus-haproxy-exporter (Debian's) reports haproxy_up 1 and per-server
# metrics; and socat drives every runtime API command, with the refusals a lower level gets.
#
#   +----------------------------------------------+        +-----------------------------+
#   | gh50g                                        |  veth  | gh50s                       |
#   | gatehouse: web 127.0.0.1:8080 (http)         |--------| nginx alpha :80 10.50.2.2   |
#   |            bulk 127.0.0.1:8081 (tcp)         | g1  s0 | nginx bravo :80 10.50.2.3   |
#   |   admin.sock (admin), user.sock (user),      |        +-----------------------------+
#   |   127.0.0.1:9999 (operator)                  |
#   | hatop in tmux, exporter on 127.0.0.1:9101,   |
#   | curl, socat                  10.50.2.1       |
#   +----------------------------------------------+
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
gh_init t20 50
for tool in hatop tmux socat prometheus-haproxy-exporter curl; do
    command -v "$tool" >/dev/null || gh_fail "$tool is not installed (scripts/install-deps.sh installs it)"
done

G=${GH_P}g S=${GH_P}s
GWS4=10.$GH_N.2.1 SRV4=10.$GH_N.2.2 SRV4B=10.$GH_N.2.3
gh_ns "$G"
gh_ns "$S"
gh_link "$G" "${GH_P}g1" "$GWS4/24" "$S" "${GH_P}s0" "$SRV4/24 $SRV4B/24"
gh_nginx "$S" alpha "listen $SRV4:80;"
gh_nginx "$S" bravo "listen $SRV4B:80;"
head -c 4M /dev/urandom >"$GH_TMP/www/big.bin"

ADMIN=$GH_TMP/admin.sock USER=$GH_TMP/user.sock
cat >"$GH_TMP/gw.cfg" <<CFG
global
    plumbing none
    stats socket $ADMIN level admin
    stats socket $USER level user
    stats socket ipv4@127.0.0.1:9999 level operator
    # Shorter than hatop's 3 s refresh: hatop keeps its connection only by 'set timeout cli'.
    stats timeout 2s
    # The bulk frontend's tcplog lines go to a real syslog listener (socat, below).
    log 127.0.0.1:514 local0 info
defaults
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend web
    mode http
    bind 127.0.0.1:8080
    stick-table type ip size 100 expire 1m store conn_cnt,gpc0
    tcp-request connection track-sc0 src
    default_backend pool
frontend bulk
    mode tcp
    log global
    bind 127.0.0.1:8081
    default_backend files
backend pool
    mode http
    server alpha $SRV4:80 weight 10 check inter 200ms
    server bravo $SRV4B:80 weight 10
backend files
    mode tcp
    server alpha $SRV4:80
CFG
ip netns exec "$G" socat -u UDP-RECV:514,bind=127.0.0.1 OPEN:"$GH_TMP/syslog.log",creat,append {GH_LOCK_FD}>&- &
GH_PIDS+=("$!")
gh_gatehouse "$G" gw -f "$GH_TMP/gw.cfg"

# ask SOCKET LINE: one runtime API connection (socat, as operators use it); prints the answer.
ask() {
    local addr=UNIX-CONNECT:$1
    [ "$1" = tcp ] && addr=TCP4:127.0.0.1:9999
    printf '%s\n' "$2" | gh_x "$G" timeout 5 socat -t 2 - "$addr"
}
# expect SOCKET LINE PATTERN WHAT: the answer to LINE has a line matching PATTERN (ERE).
expect() {
    local out
    out=$(ask "$1" "$2") || gh_fail "$4: socat failed"
    grep -qE -- "$3" <<<"$out" || gh_fail "$4: no /$3/ in the answer to '$2':
$out"
}
# refuse SOCKET LINE PATTERN WHAT: the answer to LINE has no line matching PATTERN.
refuse() {
    local out
    out=$(ask "$1" "$2") || gh_fail "$4: socat failed"
    ! grep -qE -- "$3" <<<"$out" || gh_fail "$4: /$3/ in the answer to '$2':
$out"
}

# Traffic: four HTTP requests (round robin over alpha and bravo), one 4 MiB download over tcp.
for i in 1 2 3 4; do
    code=$(gh_x "$G" curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:8080/?r$i")
    [ "$code" = 200 ] || gh_fail "request $i through web: $code"
done
gh_x "$G" curl -sS --max-time 10 -o "$GH_TMP/big.out" http://127.0.0.1:8081/big.bin ||
    gh_fail "download through bulk"
cmp -s "$GH_TMP/www/big.bin" "$GH_TMP/big.out" || gh_fail "the download through bulk differs"
# Its tcplog line, HAProxy's layout behind an RFC 3164 header (local0.info = <134>), by syslog.
gh_wait_grep "^<134>[A-Z][a-z]{2} [ 1-3][0-9] [0-9:]{8} gatehouse\[${GH_PID[gw]}\]: ${GH_TCPLOG#^}" \
    "$GH_TMP/syslog.log" "the bulk download's tcplog line by syslog"
grep -qE ' bulk files/alpha .* 4194[0-9]{3} -- ' "$GH_TMP/syslog.log" || gh_fail "tcplog by syslog: $(cat "$GH_TMP/syslog.log")"

# --- (a) hatop, in a detached tmux on its own server socket -------------------------------------
TMUX_SOCK=$GH_TMP/tmux.sock
tm() { gh_x "$G" tmux -S "$TMUX_SOCK" "$@"; }
screen() { tm capture-pane -p -t hatop; }
# wait_screen PATTERN WHAT: waits up to 10 s for a screen line matching PATTERN (ERE).
wait_screen() {
    local _
    for _ in $(seq 50); do
        screen 2>/dev/null | grep -qE -- "$1" && return 0
        sleep 0.2
    done
    screen >"$GH_TMP/hatop-screen.err" 2>&1
    gh_fail "hatop: $2: no /$1/ on the screen (in $GH_TMP/hatop-screen.err)"
}
tm new-session -d -s hatop -x 200 -y 50 "hatop -s $ADMIN; echo hatop-exit-\$?; sleep 60" ||
    gh_fail "tmux did not start"
wait_screen "gatehouse Version: [0-9.]+ +\(released: [^ )]+\) +PID: ${GH_PID[gw]} \(proc 1\)" "the header"
wait_screen "Connections: \[ *[0-9]+/50000\]" "the connection bar"
wait_screen "Proxies: +4 +Services: +7" "the proxy and service counts"
wait_screen "^>>> pool" "the backend"
wait_screen "^alpha +10 UP +L[467]OK " "alpha, checked, up, its last check in the CHECK column"
wait_screen "^bravo +10 - +none " "bravo, not checked"
wait_screen "^BACKEND +20 UP " "the backend row"
# Its CLI mode (5) sends a command through the same socket; ESC 1 goes back to the status view.
tm send-keys -t hatop 5
wait_screen "^> ?$" "the CLI prompt"
tm send-keys -t hatop "disable server pool/bravo" Enter
sleep 0.5
tm send-keys -t hatop Escape 1
wait_screen "^bravo +10 MAINT " "bravo in maintenance, set from hatop's CLI"
wait_screen "^BACKEND +10 UP " "the backend row without bravo"
expect "$ADMIN" "show servers state pool" "^1 pool 2 bravo $SRV4B 2 1 " "bravo's admin state after hatop"
ask "$ADMIN" "enable server pool/bravo" >/dev/null
wait_screen "^bravo +10 - " "bravo back"
tm send-keys -t hatop q
wait_screen "^hatop-exit-0$" "hatop quits cleanly"
tm kill-session -t hatop
tm kill-server 2>/dev/null

# --- (b) prometheus-haproxy-exporter, on loopback inside the gateway namespace; level user is enough
ip netns exec "$G" timeout 60 prometheus-haproxy-exporter --web.listen-address=127.0.0.1:9101 \
    --haproxy.scrape-uri="unix:$USER" >"$GH_TMP/exporter.log" 2>&1 {GH_LOCK_FD}>&- &
EXPORTER=$!
GH_PIDS+=("$EXPORTER")
scrape() {
    local _
    for _ in $(seq 50); do
        gh_x "$G" curl -sS --max-time 5 -o "$GH_TMP/metrics.txt" http://127.0.0.1:9101/metrics 2>/dev/null &&
            return 0
        sleep 0.1
    done
    gh_fail "the exporter did not answer"
}
scrape
M=$GH_TMP/metrics.txt
gh_assert_grep '^haproxy_up 1$' "$M" "exporter: gatehouse is up"
gh_assert_grep '^haproxy_exporter_csv_parse_failures_total 0$' "$M" "exporter: the CSV parses"
gh_assert_grep '^haproxy_version_info\{release_date="[^"]+",version="[0-9]+\.[0-9]+\.[0-9]+"\} 1$' "$M" \
    "exporter: show info's version"
for s in alpha bravo; do
    gh_assert_grep "^haproxy_server_up\{backend=\"pool\",server=\"$s\"\} 1$" "$M" "exporter: $s up"
    gh_assert_grep "^haproxy_server_weight\{backend=\"pool\",server=\"$s\"\} 10$" "$M" "exporter: $s weight"
    gh_assert_grep "^haproxy_server_sessions_total\{backend=\"pool\",server=\"$s\"\} [1-9]" "$M" \
        "exporter: $s sessions"
    gh_assert_grep "^haproxy_server_bytes_out_total\{backend=\"pool\",server=\"$s\"\} [1-9]" "$M" \
        "exporter: $s bytes out"
done
# Counts this large come as floats (4.19455e+06): compare numerically.
big=$(awk '$1 == "haproxy_server_bytes_out_total{backend=\"files\",server=\"alpha\"}" { print ($2 >= 4194304) }' "$M")
[ "$big" = 1 ] || gh_fail "exporter: the download's bytes are not counted on files/alpha"
gh_assert_grep '^haproxy_backend_up\{backend="pool"\} 1$' "$M" "exporter: the backend"
gh_assert_grep '^haproxy_frontend_current_sessions\{frontend="web"\} 0$' "$M" "exporter: the frontend"
ask "$ADMIN" "disable server pool/bravo" >/dev/null
scrape
gh_assert_grep '^haproxy_server_up\{backend="pool",server="bravo"\} 0$' "$M" "exporter: bravo in maintenance"
ask "$ADMIN" "enable server pool/bravo" >/dev/null
kill "$EXPORTER"
wait "$EXPORTER" 2>/dev/null

# --- (c) every runtime API command, with socat ----------------------------------------------------
# help, at each level: what the level may run, and only that.
for c in "show info" "show stat" "show servers state" "show table" "clear table" "enable server" \
    "disable server" "set server" "set table" "prompt" "quit" "set timeout cli"; do
    expect "$ADMIN" help "^  $c " "admin help lists '$c'"
done
expect "$USER" help "^  show stat " "user help lists show stat"
refuse "$USER" help "disable server|show table" "user help lists no operator or admin command"
expect tcp help "^  clear table " "operator help lists clear table"
refuse tcp help "set table|disable server" "operator help lists no admin command"

# show info, plain and typed; the fields hatop needs.
for f in "Name: gatehouse" "Release_date: [^ ]+" "Nbproc: 1" "Process_num: 1" "Pid: ${GH_PID[gw]}" \
    "Uptime: [0-9]+d [0-9]+h[0-9]{2}m[0-9]{2}s" "Maxconn: 50000" "CurrConns: [0-9]+" "Maxpipes: 100000" "PipesUsed: 0" \
    "PipesFree: [1-9][0-9]*" "Tasks: [1-9][0-9]*" "Run_queue: [0-9]+" "node: [^ ]+" "CumConns: [1-9][0-9]*" "Listeners: 2"; do
    expect "$USER" "show info" "^$f\$" "show info $f"
done
expect "$USER" "show info typed" '^0\.Name\.1:POS:str:gatehouse$' "show info typed"
expect "$USER" "show info typed" '^47\.Tasks\.1:MGP:u64:[0-9]+$' "show info typed, HAProxy's positions"

# show stat, CSV and typed.
expect "$USER" "show stat" '^# pxname,svname,qcur,qmax,scur,smax,' "show stat header"
expect "$USER" "show stat" '^pool,alpha,0,,0,[1-9][0-9]*,,[1-9][0-9]*,' "show stat alpha's row (scur, smax, slim, stot)"
expect "$USER" "show stat" '^pool,BACKEND,' "show stat pool's row"
expect "$USER" "show stat typed" '^S\.3\.1\.1\.svname\.1:MGP:str:alpha$' "show stat typed"

# Server states and weights (admin), read back with show servers state and show stat.
expect "$ADMIN" "show servers state" "^1 pool 1 alpha $SRV4 2 0 10 10 " "show servers state"
expect tcp "show servers state files" "^2 files 1 alpha $SRV4 2 0 1 1 " "show servers state BACKEND"
refuse tcp "show servers state files" " pool " "show servers state BACKEND: that backend only"
expect "$ADMIN" "set server pool/alpha weight 50%; show stat" '^pool,alpha,([^,]*,){15}UP,5,' \
    "set server weight W%"
expect "$ADMIN" "set server pool/alpha weight 10; show stat" '^pool,alpha,([^,]*,){15}UP,10,' \
    "set server weight W"
expect "$ADMIN" "set server pool/bravo state drain; show stat" '^pool,bravo,([^,]*,){15}DRAIN,' "state drain"
expect "$ADMIN" "set server pool/bravo state maint; show stat" '^pool,bravo,([^,]*,){15}MAINT,' "state maint"
expect "$ADMIN" "set server pool/bravo state ready; show stat" '^pool,bravo,([^,]*,){15}no check,' "state ready"
expect "$ADMIN" "disable server pool/bravo; show servers state pool" "^1 pool 2 bravo $SRV4B 2 1 " "disable server"
expect "$ADMIN" "enable server pool/bravo; show servers state pool" "^1 pool 2 bravo $SRV4B 2 0 " "enable server"
gh_wait_grep "Server pool/bravo is going DOWN for maintenance" "$GH_TMP/gw.err" "disable server logged"
expect "$ADMIN" "disable server pool/nosuch" "^No such server\.$" "an unknown server"
expect "$ADMIN" "set server pool/alpha state sleepy" "expects 'ready', 'drain' and 'maint'" "a bad state"

# Stick tables: the web frontend tracks its clients (127.0.0.1 here).
expect tcp "show table" "^# table: web, type: ip, size:100, used:1$" "show table"
expect tcp "show table web" "^0x1: key=127\.0\.0\.1 use=0 exp=[0-9]+ conn_cnt=4 gpc0=0$" "show table TABLE"
expect tcp "show table web key 127.0.0.1" "key=127\.0\.0\.1 " "show table TABLE key K"
expect "$ADMIN" "set table web key 127.0.0.1 data.gpc0 7; set table web key 192.0.2.9 data.gpc0 1" "^$" "set table"
expect tcp "show table web data.gpc0 gt 5" "key=127\.0\.0\.1 .* gpc0=7$" "show table TABLE data.gpc0 gt 5"
refuse tcp "show table web data.gpc0 gt 5" "192\.0\.2\.9" "show table TABLE data filter leaves others out"
expect tcp "clear table web data.gpc0 eq 1; show table web" "^# table: web, type: ip, size:100, used:1$" \
    "clear table TABLE data.gpc0 eq 1"
expect tcp "clear table web key 127.0.0.1; show table" "^# table: web, type: ip, size:100, used:0$" \
    "clear table TABLE key K"

# Sessions: several commands on one line, prompt mode, unknown commands.
expect "$USER" "show info; show stat" "^pool,alpha," "two commands on one line"
out=$(printf 'prompt\nshow info\nshow stat\nquit\n' | gh_x "$G" timeout 5 socat -t 2 - "UNIX-CONNECT:$USER") ||
    gh_fail "prompt session: socat failed"
grep -q '^> Name: gatehouse$' <<<"$out" || gh_fail "prompt session: no '> Name: gatehouse': $out"
grep -q '^> # pxname,svname,' <<<"$out" || gh_fail "prompt session: no second answer: $out"
expect "$USER" "show nothing" "^Unknown command: 'show nothing'$" "an unknown command"
# set timeout cli, at any level: a session that waits longer than stats timeout (2 s) between lines.
out=$( (printf 'prompt\nset timeout cli 10\n'; sleep 3; printf 'show info\nquit\n') |
    gh_x "$G" timeout 8 socat -t 5 - "UNIX-CONNECT:$USER") || gh_fail "set timeout cli: socat failed"
grep -q '^> Name: gatehouse$' <<<"$out" || gh_fail "set timeout cli: the session did not last: $out"
out=$( (printf 'prompt\n'; sleep 3; printf 'show info\nquit\n') |
    gh_x "$G" timeout 8 socat -t 5 - "UNIX-CONNECT:$USER") || true
! grep -q 'Name: gatehouse' <<<"$out" || gh_fail "stats timeout 2s did not close a silent session: $out"
expect "$USER" "set timeout cli 0" "is not a timeout" "set timeout cli 0"

# Levels: a user socket reads counters and nothing else; an operator socket changes no server.
for c in "disable server pool/alpha" "enable server pool/alpha" "set server pool/alpha state maint" \
    "set server pool/alpha weight 1" "show servers state" "show table" "clear table web" \
    "set table web key 127.0.0.1 data.gpc0 1"; do
    expect "$USER" "$c" "^Permission denied$" "user level: $c"
done
for c in "disable server pool/alpha" "set server pool/alpha weight 1" "set table web key 127.0.0.1 data.gpc0 1"; do
    expect tcp "$c" "^Permission denied$" "operator level: $c"
done
expect "$ADMIN" "show stat" '^pool,alpha,([^,]*,){15}UP,10,' "alpha untouched by the refused commands"

# The rest of the commands: json forms, weights, addresses, sessions, resolvers, maps, ACLs.
expect "$USER" "show info json" '^\[\{"field":\{"pos":0,"name":"Name"\},"processNum":1,"value":\{"type":"str","value":"gatehouse"\}\}' "show info json"
expect "$USER" "show stat json" '"objType":"Server","proxyId":3,"id":1,' "show stat json"
expect tcp "get weight pool/alpha" "^10 \(initial 10\)$" "get weight"
expect "$ADMIN" "set weight pool/alpha 20; get weight pool/alpha" "^20 \(initial 10\)$" "set weight"
expect "$ADMIN" "set server pool/bravo addr $SRV4B port 80; show servers state pool" "^1 pool 2 bravo $SRV4B 2 0 " "set server addr"
expect tcp "show sess" "^$|^0x[0-9a-f]+: proto=tcpv4 " "show sess"
expect tcp "show resolvers" "^$" "show resolvers (no section)"
expect tcp "show map" "^# id \(file\) entries$" "show map"
expect tcp "show acl" "^# id \(file\) description$" "show acl"
expect "$ADMIN" "shutdown session 0xfffff" "^No such session" "shutdown session of an unknown id"
expect "$ADMIN" "disable frontend bulk; show stat" '^bulk,FRONTEND,([^,]*,){15}STOP,' "disable frontend"
expect "$ADMIN" "enable frontend bulk; show stat" '^bulk,FRONTEND,([^,]*,){15}OPEN,' "enable frontend"
expect tcp "clear counters" "^$" "clear counters"
expect tcp "clear counters all" "^Permission denied$" "clear counters all at operator level"
expect "$ADMIN" "shutdown sessions server pool/alpha" "^$" "shutdown sessions server"
for c in "shutdown session 0x1" "shutdown sessions server pool/alpha" "set weight pool/alpha 1" \
    "add map #0 k v" "add acl #0 p" "set server pool/alpha addr 10.0.0.1"; do
    expect tcp "$c" "^Permission denied$" "operator level: $c"
done
gh_pass

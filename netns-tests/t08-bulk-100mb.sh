#!/usr/bin/env bash
# Test 8: 100 MB each way through the gateway arrive intact (sha256).
#
#   +-----------+         +--------------------------+         +------------------------+
#   | gh18c     |---------| gh18g  ip_forward=0      |---------| gh18s                  |
#   | curl /big |         | gatehouse (no -f)        |         | nginx :80 (download)   |
#   | socat up  |         |                          |         | socat :443 (upload)    |
#   +-----------+         +--------------------------+         +------------------------+
. "$(dirname "$0")/lib.sh"
gh_init t08 18
gh_topology
mkdir -p "$GH_TMP/www"
head -c 100M /dev/urandom >"$GH_TMP/www/big"
want=$(sha256sum <"$GH_TMP/www/big" | cut -d' ' -f1)
gh_nginx "$S" web
gh_x "$S" timeout 60 socat -u TCP-LISTEN:443,reuseaddr OPEN:"$GH_TMP/up.bin",creat,trunc &
GH_PIDS+=($!)
gh_gatehouse "$G" gw

got=$(gh_x "$C" timeout 60 curl -sS --max-time 60 "http://$SRV4/big" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || gh_fail "download checksum differs"
sleep 0.2
gh_x "$C" timeout 60 socat -u OPEN:"$GH_TMP/www/big" TCP:"$SRV4":443 || gh_fail "upload failed"
for _ in $(seq 50); do [ "$(stat -c %s "$GH_TMP/up.bin" 2>/dev/null)" = 104857600 ] && break; sleep 0.1; done
[ "$(sha256sum <"$GH_TMP/up.bin" | cut -d' ' -f1)" = "$want" ] || gh_fail "upload checksum differs ($(stat -c %s "$GH_TMP/up.bin") bytes)"
sleep 0.3
gh_assert_grep " 104857[0-9]{3} -- " "$GH_TMP/gw.log" "gatehouse logged the 100 MB download"
[ "$(grep -c ' -- ' "$GH_TMP/gw.log")" = 2 ] || gh_fail "expected two clean sessions: $(cat "$GH_TMP/gw.log")"
gh_pass

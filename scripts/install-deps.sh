#!/usr/bin/env bash
# Installs what gatehouse's demo, tests and bench need on a fresh Debian machine, only if something is
# missing (apt-get update once, then one non-interactive apt-get install), and the rustfmt and clippy
# components. Sourced by scripts/test.sh and scripts/demo.sh (so the PATH fix below reaches them), run
# by scripts/bench.sh.
set -euo pipefail

# command:package, for every tool the scripts call (ip6tables-legacy comes with iptables, etc.).
tools="ip:iproute2 nft:nftables iptables-legacy:iptables curl:curl openssl:openssl dnsmasq:dnsmasq
    nginx:nginx-light wrk:wrk haproxy:haproxy socat:socat pkill:procps killall:psmisc python3:python3
    hatop:hatop tmux:tmux prometheus-haproxy-exporter:prometheus-haproxy-exporter stunnel4:stunnel4"
need=()
for pair in $tools; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "missing packages (${need[*]}); run as root to install them" >&2; exit 1; }
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
    # Debian starts the daemons it just installed (and dnsmasq may take over the host's DNS; the
    # exporter would scrape a socket that is not there, on port 9101); the tests run their own
    # instances inside namespaces, so stop those (only those we installed).
    for svc in nginx haproxy dnsmasq prometheus-haproxy-exporter; do
        case " ${need[*]} " in *" $svc "* | *" $svc-light "*) ;; *) continue ;; esac
        systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
    done
fi

# cargo from rustup lives in ~/.cargo/bin, which a CI shell's PATH may lack.
[ -d "$HOME/.cargo/bin" ] && case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) PATH=$HOME/.cargo/bin:$PATH ;; esac
command -v cargo >/dev/null || { echo "cargo is needed (https://rustup.rs)" >&2; exit 1; }
if command -v rustup >/dev/null; then
    for c in rustfmt clippy; do
        # Installed component names carry the target: rustfmt-x86_64-unknown-linux-gnu.
        rustup component list --installed 2>/dev/null | grep -q "^$c-" || rustup component add "$c" || true
    done
fi

//! Host-wide checks: kernel support for TPROXY, this process's capabilities, the conntrack table.

use super::{Expect, Finding, Kernel, Module, System};

/// Capability bit numbers (linux/capability.h).
pub const CAP_NET_BIND_SERVICE: u32 = 10;
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;

/// Conntrack fill above which we warn (percent).
const CONNTRACK_WARN_PERCENT: i64 = 80;

fn module_word(m: Module) -> &'static str {
    match m {
        Module::Loaded => "loaded",
        Module::Builtin => "built in",
        Module::Available => "available (loaded on first use)",
        Module::Missing => "missing",
    }
}

pub fn kernel(sys: &System) -> Finding {
    const CHECK: &str = "kernel tproxy";
    match &sys.kernel {
        Kernel::Nft(Ok(())) => Finding::ok(
            CHECK,
            "nft accepted the tproxy statement and the socket transparent match (probe table gatehouse_doctor_probe, deleted)",
        ),
        Kernel::Nft(Err(e)) => Finding::fail(
            CHECK,
            format!("nft refused tproxy or socket transparent: {e}"),
            "modprobe nft_tproxy nft_socket  # if the modules do not exist, boot a kernel built with CONFIG_NFT_TPROXY and CONFIG_NFT_SOCKET",
        ),
        Kernel::Iptables { tproxy, socket } => {
            let found = format!(
                "iptables-legacy backend: xt_TPROXY {}, xt_socket {}",
                module_word(*tproxy),
                module_word(*socket)
            );
            if *tproxy == Module::Missing || *socket == Module::Missing {
                Finding::fail(
                    CHECK,
                    found,
                    "modprobe xt_TPROXY xt_socket  # if the modules do not exist, boot a kernel built with CONFIG_NETFILTER_XT_TARGET_TPROXY and CONFIG_NETFILTER_XT_MATCH_SOCKET",
                )
            } else {
                Finding::ok(CHECK, found)
            }
        }
        Kernel::NoBackend => Finding::fail(
            CHECK,
            "neither 'nft list tables' nor 'iptables-legacy -t mangle -S' works here",
            "apt-get install nftables",
        ),
    }
}

fn has(caps: u64, bit: u32) -> bool {
    caps & (1u64 << bit) != 0
}

/// CAP_NET_ADMIN is needed for the rules, the routes, SO_MARK and transparent sockets; CAP_NET_RAW
/// is the kernel's other way to allow transparent sockets (so its absence alone blocks nothing);
/// CAP_NET_BIND_SERVICE only matters for a bind below `ip_unprivileged_port_start`.
pub fn capabilities(expect: &Expect, sys: &System) -> Finding {
    const CHECK: &str = "capabilities";
    let Some(caps) = sys.cap_eff else {
        return Finding::warn(
            CHECK,
            "CapEff not found in /proc/self/status",
            "run gatehouse as root",
        );
    };
    let unprivileged = sys
        .sysctl("net/ipv4/ip_unprivileged_port_start")
        .unwrap_or(1024);
    let low_port = expect
        .binds
        .iter()
        .any(|b| i64::from(b.addr.port()) < unprivileged);
    let mut missing = Vec::new();
    let mut blocking = false;
    for (bit, name, needed) in [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN", true),
        (CAP_NET_RAW, "CAP_NET_RAW", false),
        (CAP_NET_BIND_SERVICE, "CAP_NET_BIND_SERVICE", low_port),
    ] {
        if !has(caps, bit) {
            missing.push(name);
            blocking |= needed;
        }
    }
    if missing.is_empty() {
        return Finding::ok(
            CHECK,
            "CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE in the effective set",
        );
    }
    let found = format!(
        "this process lacks {} (CapEff {caps:016x})",
        missing.join(", ")
    );
    let fix = format!(
        "setcap cap_net_admin,cap_net_raw,cap_net_bind_service=ep {}  # or run gatehouse as root",
        sys.exe
    );
    if blocking {
        Finding::fail(CHECK, found, fix)
    } else {
        Finding::warn(CHECK, found, fix)
    }
}

pub fn conntrack(sys: &System) -> Finding {
    const CHECK: &str = "conntrack";
    let (Some(count), Some(max)) = (
        sys.sysctl("net/netfilter/nf_conntrack_count"),
        sys.sysctl("net/netfilter/nf_conntrack_max"),
    ) else {
        return Finding::ok(CHECK, "nf_conntrack is not loaded: no table to fill");
    };
    if max <= 0 {
        return Finding::ok(CHECK, format!("{count} entries, no limit"));
    }
    let percent = count * 100 / max;
    let found = format!("{count} of {max} entries ({percent}%)");
    let fix = format!("sysctl -w net.netfilter.nf_conntrack_max={}", max * 2);
    if count >= max {
        Finding::fail(
            CHECK,
            format!("{found}: the table is full, new connections are dropped"),
            fix,
        )
    } else if percent > CONNTRACK_WARN_PERCENT {
        Finding::warn(
            CHECK,
            format!(
                "{found}: above {CONNTRACK_WARN_PERCENT}%, new connections are dropped once it is full"
            ),
            fix,
        )
    } else {
        Finding::ok(CHECK, found)
    }
}

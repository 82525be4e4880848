//! Checks of a running gatehouse: its plumbing unit is installed whole, and its binds listen.
//! Both are skipped with a WARN when no gatehouse runs in this network namespace.

use std::net::{IpAddr, SocketAddr};

use super::{Expect, Finding, PolicyRule, System};
use crate::plumbing::{Family, Firewall, iproute, iptables};

fn family_word(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

fn not_running(check: &str, expect: &Expect, what: &str) -> Finding {
    Finding::warn(
        check,
        format!("gatehouse is not running in this network namespace, so {what} is not checked"),
        format!("gatehouse{}", expect.config_args),
    )
}

/// Compares the unit on the host with the [`crate::plumbing::Plan`] `gatehouse rules` prints.
pub fn plumbing(expect: &Expect, sys: &System) -> Finding {
    const CHECK: &str = "plumbing unit";
    let plan = &expect.plan;
    if plan.is_empty() {
        return Finding::ok(
            CHECK,
            "nothing to install: no 'intercept' line and no 'usesrc'",
        );
    }
    let Some(pid) = sys.running else {
        return not_running(CHECK, expect, "the plumbing unit");
    };
    let s = &plan.settings;
    let mut missing = Vec::new();
    let mut firewall_missing = false;
    match sys.firewall {
        Some(Firewall::Nft) => match &sys.unit.nft {
            None => missing.push("nft table inet gatehouse".to_string()),
            Some(listing) => {
                if !listing.contains("socket transparent 1") {
                    missing.push("the socket transparent rule".to_string());
                }
                for d in &plan.diverts {
                    let tproxy = match d.family {
                        Family::V4 => "tproxy ip to",
                        Family::V6 => "tproxy ip6 to",
                    };
                    let comment = format!("comment \"{}\"", d.origin.replace('"', "'"));
                    if !listing
                        .lines()
                        .any(|l| l.contains(tproxy) && l.contains(&comment))
                    {
                        missing.push(format!(
                            "the {} divert of {}",
                            family_word(d.family),
                            d.origin
                        ));
                    }
                }
            }
        },
        Some(Firewall::Iptables) => {
            for f in &plan.families {
                let (tool, _) = iptables::tools(*f);
                let listing = match f {
                    Family::V4 => &sys.unit.iptables_v4,
                    Family::V6 => &sys.unit.iptables_v6,
                };
                let listing = listing.as_deref().unwrap_or("");
                let jump = format!("-A PREROUTING -j {}", iptables::CHAIN);
                if !listing.lines().any(|l| l.trim() == jump) {
                    missing.push(format!("{tool}: {jump}"));
                }
                for (i, d) in plan.diverts.iter().filter(|d| d.family == *f).enumerate() {
                    let chain = format!("-A {}_{} ", iptables::CHAIN, i + 1);
                    if !listing
                        .lines()
                        .any(|l| l.starts_with(&chain) && l.contains("TPROXY"))
                    {
                        missing.push(format!("{tool}: the TPROXY rule of {}", d.origin));
                    }
                }
            }
        }
        // 'plumbing none': the operator installs the firewall part; neither tool: see the kernel check.
        Some(Firewall::None) | None => {}
    }
    if !missing.is_empty() {
        firewall_missing = true;
    }
    // The `ip` commands for the missing routing pieces, picked from what `gatehouse rules` prints.
    let rendered = iproute::render(plan);
    let mut ip_fixes: Vec<&str> = Vec::new();
    for f in &plan.families {
        let flag = match f {
            Family::V4 => "ip -4",
            Family::V6 => "ip -6",
        };
        let rule = PolicyRule {
            family: *f,
            fwmark: s.mark,
            table: s.table,
        };
        if !sys.unit.rules.contains(&rule) {
            missing.push(format!(
                "{} ip rule fwmark {:#x} lookup {}",
                family_word(*f),
                s.mark,
                s.table
            ));
            let prefix = format!("{flag} rule ");
            ip_fixes.extend(rendered.lines().filter(|l| l.starts_with(&prefix)));
        }
        if !sys.unit.local_default.contains(&(*f, s.table)) {
            missing.push(format!(
                "{} local default route in table {}",
                family_word(*f),
                s.table
            ));
            let prefix = format!("{flag} route ");
            ip_fixes.extend(rendered.lines().filter(|l| l.starts_with(&prefix)));
        }
    }
    if missing.is_empty() {
        let families: Vec<&str> = plan.families.iter().map(|f| family_word(*f)).collect();
        let firewall = match sys.firewall {
            Some(Firewall::Nft) => "nft table inet gatehouse, ",
            Some(Firewall::Iptables) => "GATEHOUSE chains, ",
            _ => "",
        };
        return Finding::ok(
            CHECK,
            format!(
                "{firewall}{} divert(s), ip rule fwmark {:#x} lookup {} and its local route ({}), as 'gatehouse rules' prints",
                plan.diverts.len(),
                s.mark,
                s.table,
                families.join(", ")
            ),
        );
    }
    let found = format!(
        "gatehouse (pid {pid}) runs but {} missing",
        missing.join(", ")
    );
    let fix = if firewall_missing {
        format!(
            "kill -TERM {pid}; gatehouse{}  # it installs the whole unit at start; 'gatehouse rules{}' shows it",
            expect.config_args, expect.config_args
        )
    } else {
        ip_fixes.join("; ")
    };
    Finding::fail(CHECK, found, fix)
}

/// Same address, an IPv4 address also matching its IPv4-mapped IPv6 form.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

pub fn listeners(expect: &Expect, sys: &System) -> Vec<Finding> {
    if expect.binds.is_empty() {
        return vec![];
    }
    if sys.running.is_none() {
        return vec![not_running("listeners", expect, "whether the binds listen")];
    }
    expect
        .binds
        .iter()
        .map(|b| {
            let check = format!("listener {}", b.addr);
            let kind = if b.transparent { "transparent " } else { "" };
            let bound = sys.listeners.iter().any(|l: &SocketAddr| {
                l.port() == b.addr.port() && same_ip(l.ip(), b.addr.ip())
            });
            if bound {
                Finding::ok(check, format!("{kind}bind of {} is listening", b.origin))
            } else {
                Finding::fail(
                    check,
                    format!("nothing listens on the {kind}bind of {}", b.origin),
                    format!(
                        "ss -Hltnp 'sport = :{}'  # who holds the port; then restart gatehouse and read its bind error",
                        b.addr.port()
                    ),
                )
            }
        })
        .collect()
}

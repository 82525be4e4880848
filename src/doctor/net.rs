//! Routing checks: forwarding (informational), reverse-path filtering on the intercept interfaces,
//! and a route back to each client network.

use ipnet::IpNet;

use super::{Expect, Finding, Interface, System};

/// A config interface pattern (`eth0`, or `eth*` for a prefix) against a real name.
pub fn iface_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(stem) => name.starts_with(stem),
        None => pattern == name,
    }
}

/// The `sysctl -w` spelling of a per-interface key: a dot in the name becomes a slash.
fn sysctl_name(family: &str, iface: &str, key: &str) -> String {
    format!("net.{family}.conf.{}.{key}", iface.replace('.', "/"))
}

/// The interfaces where intercepted traffic arrives: those named by `intercept … iif` that exist,
/// or every interface but `lo`. The second list holds the named patterns that match nothing.
pub fn intake<'a>(expect: &Expect, ifaces: &'a [Interface]) -> (Vec<&'a Interface>, Vec<String>) {
    if expect.iifs.is_empty() {
        return (ifaces.iter().filter(|i| i.name != "lo").collect(), vec![]);
    }
    let mut found = Vec::new();
    let mut absent = Vec::new();
    for p in &expect.iifs {
        let mut any = false;
        for i in ifaces.iter().filter(|i| iface_matches(p, &i.name)) {
            any = true;
            if !found.iter().any(|f: &&Interface| f.name == i.name) {
                found.push(i);
            }
        }
        if !any {
            absent.push(p.clone());
        }
    }
    (found, absent)
}

/// The client networks to find a route to: the `intercept … src` networks, or, when no line names
/// one, the networks of the addresses on the intake interfaces (link-local ones aside).
pub fn client_nets(expect: &Expect, ifaces: &[Interface]) -> Vec<IpNet> {
    if !expect.client_nets.is_empty() {
        return expect.client_nets.clone();
    }
    let mut nets = Vec::new();
    for i in intake(expect, ifaces).0 {
        for a in &i.addrs {
            let link_local = match a.addr() {
                std::net::IpAddr::V4(v4) => v4.is_link_local(),
                std::net::IpAddr::V6(v6) => v6.is_unicast_link_local(),
            };
            let net = a.trunc();
            if !link_local && !a.addr().is_loopback() && !nets.contains(&net) {
                nets.push(net);
            }
        }
    }
    nets
}

/// Informational: gatehouse needs no forwarding for what it intercepts.
pub fn forwarding(sys: &System) -> Finding {
    let v4 = sys.sysctl("net/ipv4/ip_forward");
    let v6 = sys.sysctl("net/ipv6/conf/all/forwarding");
    let show = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
    let values = format!(
        "net.ipv4.ip_forward={}, net.ipv6.conf.all.forwarding={}",
        show(v4),
        show(v6)
    );
    let on = v4 == Some(1) || v6 == Some(1);
    let meaning = if on {
        "traffic that is not intercepted is routed through this host as usual"
    } else {
        "traffic that is not intercepted is dropped; intercepted traffic needs no forwarding"
    };
    Finding::ok("forwarding", format!("{values}: {meaning}"))
}

/// Strict reverse-path filtering (1) drops intercepted packets on the interface where they arrive;
/// the kernel applies the larger of `all` and the interface's own value.
pub fn rp_filter(expect: &Expect, sys: &System) -> Vec<Finding> {
    let (ifaces, absent) = intake(expect, &sys.interfaces);
    let mut out: Vec<Finding> = absent
        .iter()
        .map(|p| {
            Finding::warn(
                format!("rp_filter {p}"),
                "named by 'intercept … iif' but no such interface exists here",
                "ip -br link  # check the interface name in the intercept line",
            )
        })
        .collect();
    let all = sys.sysctl("net/ipv4/conf/all/rp_filter").unwrap_or(0);
    for i in ifaces {
        let own = sys
            .sysctl(&format!("net/ipv4/conf/{}/rp_filter", i.name))
            .unwrap_or(0);
        let effective = all.max(own);
        let check = format!("rp_filter {}", i.name);
        let values = format!("all={all}, {}={own}, effective {effective}", i.name);
        out.push(if effective == 1 {
            Finding::fail(
                check,
                format!("{values} (strict): intercepted packets arriving here are dropped"),
                format!(
                    "sysctl -w {}=2  # loose; 0 turns the check off",
                    sysctl_name("ipv4", &i.name, "rp_filter")
                ),
            )
        } else {
            let mode = if effective == 0 { "off" } else { "loose" };
            Finding::ok(check, format!("{values} ({mode})"))
        });
    }
    out
}

/// Each client network must be reachable from here, through an intake interface when the config
/// names some: replies to intercepted connections go to the client's own address.
pub fn routes(expect: &Expect, sys: &System) -> Vec<Finding> {
    let (ifaces, _) = intake(expect, &sys.interfaces);
    // The interface to name in a suggested route: the intake interface, when there is exactly one.
    let dev = match ifaces.as_slice() {
        [one] => one.name.clone(),
        _ => "IFACE".to_string(),
    };
    let mut out = Vec::new();
    for net in client_nets(expect, &sys.interfaces) {
        let check = format!("route to {net}");
        let fix = format!(
            "ip route add {net} via ROUTER dev {dev}  # ROUTER: the next hop towards these clients"
        );
        let Some(lookup) = sys.routes.iter().find(|r| r.net == net) else {
            out.push(Finding::warn(check, "not looked up", fix));
            continue;
        };
        out.push(match &lookup.result {
            Err(e) => Finding::fail(
                check,
                format!("no route ({e}): replies to intercepted clients cannot leave"),
                fix,
            ),
            Ok(hop) => {
                let via = hop.via.map(|v| format!(" via {v}")).unwrap_or_default();
                let found = format!("{via} dev {}", hop.dev);
                let found = found.trim_start();
                let arrives_elsewhere = !expect.iifs.is_empty()
                    && hop.dev != "lo"
                    && !expect.iifs.iter().any(|p| iface_matches(p, &hop.dev));
                if arrives_elsewhere {
                    Finding::warn(
                        check,
                        format!(
                            "{found}, not through {}: replies leave by another interface than the clients' traffic arrives on",
                            expect.iifs.join(", ")
                        ),
                        fix,
                    )
                } else {
                    Finding::ok(check, found.to_string())
                }
            }
        });
    }
    out
}

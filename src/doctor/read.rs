//! The real reader: fills a [`System`] from /proc, /sys, rtnetlink and the firewall tools.
//! It changes nothing on the host but one thing: the nft probe table, created and deleted in the
//! same `nft -f` transaction, so it is never visible and never sees a packet.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use rtnetlink::packet_route::rule::RuleAttribute;
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder};

use super::{
    DoctorError, Expect, Hop, Interface, Kernel, Module, PolicyRule, RouteLookup, System, UnitView,
    net,
};
use crate::config::model::FirewallBackend;
use crate::plumbing::{self, Family, Firewall, UNIT_NAME, run};

/// The throwaway table of the kernel probe.
pub const PROBE_TABLE: &str = "gatehouse_doctor_probe";

/// The probe: a regular chain (no hook, so no packet ever reaches it) whose rules make the kernel
/// load the tproxy and socket expressions; the same transaction deletes the table again.
fn probe_batch() -> String {
    format!(
        "table inet {PROBE_TABLE} {{}}\n\
         delete table inet {PROBE_TABLE}\n\
         table inet {PROBE_TABLE} {{\n\
         \tchain probe {{\n\
         \t\tmeta l4proto tcp socket transparent 1 accept\n\
         \t\tmeta nfproto ipv4 meta l4proto tcp tproxy ip to 127.0.0.1:9 accept\n\
         \t\tmeta nfproto ipv6 meta l4proto tcp tproxy ip6 to [::1]:9 accept\n\
         \t}}\n\
         }}\n\
         delete table inet {PROBE_TABLE}\n"
    )
}

fn nl(e: impl std::fmt::Display) -> DoctorError {
    DoctorError::Netlink(e.to_string())
}

/// Reads everything the checks look at.
pub async fn system(expect: &Expect) -> Result<System, DoctorError> {
    let firewall = plumbing::choose(expect.plan.settings.backend).await.ok();
    // With 'plumbing none' the operator's own rules still need the kernel's support: probe with
    // whichever tool works.
    let probe_with = match firewall {
        Some(Firewall::None) => plumbing::choose(FirewallBackend::Auto).await.ok(),
        other => other,
    };
    let kernel = match probe_with {
        Some(Firewall::Nft) => Kernel::Nft(
            run("nft", &["-f", "-"], Some(&probe_batch()), "nftables")
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        ),
        Some(Firewall::Iptables) => iptables_modules(),
        Some(Firewall::None) | None => Kernel::NoBackend,
    };

    let (conn, h, _) = rtnetlink::new_connection().map_err(nl)?;
    tokio::spawn(conn);
    let (interfaces, names) = interfaces(&h).await?;

    let mut keys: Vec<String> = [
        "net/ipv4/ip_forward",
        "net/ipv6/conf/all/forwarding",
        "net/ipv4/conf/all/rp_filter",
        "net/ipv4/ip_unprivileged_port_start",
        "net/netfilter/nf_conntrack_count",
        "net/netfilter/nf_conntrack_max",
    ]
    .map(String::from)
    .to_vec();
    keys.extend(
        interfaces
            .iter()
            .map(|i| format!("net/ipv4/conf/{}/rp_filter", i.name)),
    );
    let sysctls: BTreeMap<String, String> = keys
        .into_iter()
        .filter_map(|k| {
            let v = std::fs::read_to_string(format!("/proc/sys/{k}")).ok()?;
            Some((k, v.trim().to_string()))
        })
        .collect();

    let local: Vec<IpAddr> = interfaces
        .iter()
        .flat_map(|i| i.addrs.iter().map(|a| a.addr()))
        .collect();
    let mut routes = Vec::new();
    for n in net::client_nets(expect, &interfaces) {
        routes.push(RouteLookup {
            net: n,
            result: lookup(&h, n, &names, &local).await,
        });
    }

    Ok(System {
        kernel,
        cap_eff: cap_eff(&read("/proc/self/status")?),
        exe: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "/usr/sbin/gatehouse".to_string()),
        sysctls,
        interfaces,
        routes,
        running: running(),
        firewall,
        unit: unit(&h).await?,
        listeners: listeners(),
    })
}

fn read(path: &str) -> Result<String, DoctorError> {
    std::fs::read_to_string(path).map_err(|source| DoctorError::Read {
        path: path.to_string(),
        source,
    })
}

/// CapEff from the text of /proc/PID/status.
pub fn cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn iptables_modules() -> Kernel {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let loaded = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    let builtin = std::fs::read_to_string(format!("/lib/modules/{release}/modules.builtin"))
        .unwrap_or_default();
    let dir = format!("/lib/modules/{release}/kernel/net/netfilter");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    let state = |name: &str| module_state(name, &loaded, &builtin, &files);
    Kernel::Iptables {
        tproxy: state("xt_TPROXY"),
        socket: state("xt_socket"),
    }
}

/// A module's state from /proc/modules, modules.builtin and the module directory's file names.
pub fn module_state(name: &str, loaded: &str, builtin: &str, files: &[String]) -> Module {
    let ko = format!("{name}.ko");
    if loaded
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
    {
        Module::Loaded
    } else if builtin.lines().any(|l| l.rsplit('/').next() == Some(&ko)) {
        Module::Builtin
    } else if files
        .iter()
        .any(|f| f == &ko || f.starts_with(&format!("{ko}.")))
    {
        Module::Available
    } else {
        Module::Missing
    }
}

/// Every interface with its addresses, and the index → name map for route lookups.
async fn interfaces(h: &Handle) -> Result<(Vec<Interface>, HashMap<u32, String>), DoctorError> {
    let links: Vec<_> = h.link().get().execute().try_collect().await.map_err(nl)?;
    let mut names = HashMap::new();
    let mut out = Vec::new();
    for l in links {
        if let Some(name) = l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        }) {
            names.insert(l.header.index, name.clone());
            out.push(Interface {
                name,
                addrs: Vec::new(),
            });
        }
    }
    let addrs: Vec<_> = h
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(nl)?;
    for a in addrs {
        let Some(name) = names.get(&a.header.index) else {
            continue;
        };
        let Some(ip) = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        }) else {
            continue;
        };
        if let (Ok(net), Some(i)) = (
            IpNet::new(ip, a.header.prefix_len),
            out.iter_mut().find(|i| &i.name == name),
        ) {
            i.addrs.push(net);
        }
    }
    Ok((out, names))
}

/// The kernel's route towards a network: the lookup of one of its hosts that is not an address of
/// this host (for a network on one of our own interfaces, the first host is often ourselves).
async fn lookup(
    h: &Handle,
    n: IpNet,
    names: &HashMap<u32, String>,
    local: &[IpAddr],
) -> Result<Hop, String> {
    let host = n
        .hosts()
        .take(8)
        .find(|a| !local.contains(a))
        .unwrap_or(n.network());
    let msg = match host {
        IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(a, 32)
            .build(),
        IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(a, 128)
            .build(),
    };
    let r: Option<RouteMessage> = h
        .route()
        .get(msg)
        .execute()
        .try_next()
        .await
        .map_err(|e| short_netlink_error(&e.to_string()))?;
    let r = r.ok_or_else(|| "no answer".to_string())?;
    if !matches!(r.header.kind, RouteType::Unicast | RouteType::Local) {
        return Err(format!("{:?} route", r.header.kind).to_lowercase());
    }
    let mut hop = Hop {
        dev: "?".to_string(),
        via: None,
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Oif(i) => {
                hop.dev = names.get(i).cloned().unwrap_or_else(|| i.to_string())
            }
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => hop.via = Some(IpAddr::V4(*ip)),
            RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => hop.via = Some(IpAddr::V6(*ip)),
            _ => {}
        }
    }
    Ok(hop)
}

/// netlink errors read "Received a netlink error message Network is unreachable (os error 101)".
fn short_netlink_error(e: &str) -> String {
    e.rsplit("error message ").next().unwrap_or(e).to_string()
}

/// A gatehouse process in this network namespace, other than this one.
fn running() -> Option<u32> {
    let own_ns = std::fs::read_link("/proc/self/ns/net").ok()?;
    let me = std::process::id();
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        if pid == me {
            return None;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
        (comm.trim() == "gatehouse" && ns == own_ns).then_some(pid)
    })
}

fn table_of_route(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

/// The unit's pieces as they stand: nft table or iptables chains, ip rules, local default routes.
async fn unit(h: &Handle) -> Result<UnitView, DoctorError> {
    let nft = run(
        "nft",
        &["list", "table", "inet", UNIT_NAME],
        None,
        "nftables",
    )
    .await
    .ok();
    let ipt = |f| async move {
        let (tool, _) = plumbing::iptables::tools(f);
        run(tool, &["-w", "5", "-t", "mangle", "-S"], None, "iptables")
            .await
            .ok()
    };
    let mut view = UnitView {
        nft,
        iptables_v4: ipt(Family::V4).await,
        iptables_v6: ipt(Family::V6).await,
        ..UnitView::default()
    };
    for (v, family) in [(IpVersion::V4, Family::V4), (IpVersion::V6, Family::V6)] {
        let rules: Vec<_> = h.rule().get(v).execute().try_collect().await.map_err(nl)?;
        for r in rules {
            let mut fwmark = None;
            let mut table = u32::from(r.header.table);
            for a in &r.attributes {
                match a {
                    RuleAttribute::FwMark(m) => fwmark = Some(*m),
                    RuleAttribute::Table(t) => table = *t,
                    _ => {}
                }
            }
            if let Some(fwmark) = fwmark {
                view.rules.push(PolicyRule {
                    family,
                    fwmark,
                    table,
                });
            }
        }
    }
    for family in [Family::V4, Family::V6] {
        let routes = plumbing::iproute::all_routes(h, family).await.map_err(nl)?;
        for r in routes {
            let family_ok = match family {
                Family::V4 => r.header.address_family == AddressFamily::Inet,
                Family::V6 => r.header.address_family == AddressFamily::Inet6,
            };
            if family_ok
                && r.header.kind == RouteType::Local
                && r.header.destination_prefix_length == 0
            {
                view.local_default.push((family, table_of_route(&r)));
            }
        }
    }
    Ok(view)
}

fn listeners() -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(text) = std::fs::read_to_string(path) {
            out.extend(parse_proc_net_tcp(&text, v6));
        }
    }
    out
}

/// The listening sockets (state 0A) of /proc/net/tcp or tcp6. Addresses are the kernel's bytes in
/// network order printed as native-endian 32-bit words, so each word is turned back into its bytes.
pub fn parse_proc_net_tcp(text: &str, v6: bool) -> Vec<SocketAddr> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let local = f.nth(1)?;
            let state = f.nth(1)?;
            if state != "0A" {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let mut bytes = Vec::with_capacity(16);
            for i in (0..ip.len()).step_by(8) {
                let word = u32::from_str_radix(ip.get(i..i + 8)?, 16).ok()?;
                bytes.extend_from_slice(&word.to_ne_bytes());
            }
            let ip = if v6 {
                IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?))
            } else {
                IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?))
            };
            Some(SocketAddr::new(ip, port))
        })
        .collect()
}

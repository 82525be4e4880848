//! Verdict tables over hand-written host views: no root, no kernel.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::read::{cap_eff, module_state, parse_proc_net_tcp};
use super::*;
use crate::plumbing::{Family, Firewall, nft};

/// A LAN gateway: clients in 10.9.0.0/16 behind a router on br-lan, replies through br-lan.
const LAN: &str = "\
frontend lan
    bind [::]:15080 transparent v4v6
    intercept dport 80,443 iif br-lan src 10.9.0.0/16
    default_backend passthrough

backend passthrough
    source 0.0.0.0 usesrc clientip
    server origin 0.0.0.0
";

fn expect(text: &str) -> Expect {
    let loaded = crate::config::from_str("t.cfg", text).expect("test config loads");
    Expect::from_config(&loaded.config, &[PathBuf::from("t.cfg")])
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

const ALL_CAPS: u64 = 0x1ff_ffff_ffff;

/// A host where everything the LAN config needs is in place, gatehouse included.
fn healthy(e: &Expect) -> System {
    let sysctls: BTreeMap<String, String> = [
        ("net/ipv4/ip_forward", "0"),
        ("net/ipv6/conf/all/forwarding", "0"),
        ("net/ipv4/conf/all/rp_filter", "0"),
        ("net/ipv4/conf/br-lan/rp_filter", "2"),
        ("net/ipv4/conf/eth0/rp_filter", "1"),
        ("net/ipv4/ip_unprivileged_port_start", "1024"),
        ("net/netfilter/nf_conntrack_count", "10"),
        ("net/netfilter/nf_conntrack_max", "1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    System {
        kernel: Kernel::Nft(Ok(())),
        cap_eff: Some(ALL_CAPS),
        exe: "/usr/sbin/gatehouse".into(),
        sysctls,
        interfaces: vec![
            Interface {
                name: "lo".into(),
                addrs: vec![net("127.0.0.1/8")],
            },
            Interface {
                name: "eth0".into(),
                addrs: vec![net("203.0.113.2/24")],
            },
            Interface {
                name: "br-lan".into(),
                addrs: vec![net("192.168.1.1/24"), net("fe80::1/64")],
            },
        ],
        routes: vec![RouteLookup {
            net: net("10.9.0.0/16"),
            result: Ok(Hop {
                dev: "br-lan".into(),
                via: Some("192.168.1.254".parse().unwrap()),
            }),
        }],
        running: Some(42),
        firewall: Some(Firewall::Nft),
        unit: UnitView {
            nft: Some(nft::render(&e.plan)),
            iptables_v4: None,
            iptables_v6: None,
            rules: vec![
                PolicyRule {
                    family: Family::V4,
                    fwmark: 1,
                    table: 100,
                },
                PolicyRule {
                    family: Family::V6,
                    fwmark: 1,
                    table: 100,
                },
            ],
            local_default: vec![(Family::V4, 100), (Family::V6, 100)],
        },
        listeners: vec!["[::]:15080".parse().unwrap()],
    }
}

#[test]
fn healthy_host_is_all_ok() {
    let e = expect(LAN);
    let f = diagnose(&e, &healthy(&e));
    assert!(
        f.iter().all(|f| f.verdict == Verdict::Ok),
        "{}",
        f.iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(worst(&f), Verdict::Ok);
    // Only the intercept interface is judged: eth0's strict rp_filter is none of our business.
    assert!(!f.iter().any(|f| f.check == "rp_filter eth0"));
}

#[test]
fn rp_filter_effective_value_is_the_max_of_all_and_the_interface() {
    let e = expect(LAN);
    for all in 0..=2 {
        for own in 0..=2 {
            let mut sys = healthy(&e);
            sys.sysctls
                .insert("net/ipv4/conf/all/rp_filter".into(), all.to_string());
            sys.sysctls
                .insert("net/ipv4/conf/br-lan/rp_filter".into(), own.to_string());
            let f = net::rp_filter(&e, &sys);
            assert_eq!(f.len(), 1);
            let want = if all.max(own) == 1 {
                Verdict::Fail
            } else {
                Verdict::Ok
            };
            assert_eq!(f[0].verdict, want, "all={all} br-lan={own}: {}", f[0]);
            assert!(f[0].found.contains(&format!("effective {}", all.max(own))));
            if want == Verdict::Fail {
                // Setting the interface to 2 is enough even when `all` is 1: max(1, 2) = 2.
                assert_eq!(
                    f[0].fix.as_deref(),
                    Some(
                        "sysctl -w net.ipv4.conf.br-lan.rp_filter=2  # loose; 0 turns the check off"
                    )
                );
            }
        }
    }
}

#[test]
fn rp_filter_without_iif_judges_every_interface_but_lo() {
    let e = expect(
        "frontend f\n    bind :15080 transparent\n    intercept dport 80\n    default_backend b\nbackend b\n    server o 0.0.0.0\n",
    );
    let mut sys = healthy(&e);
    sys.sysctls
        .insert("net/ipv4/conf/lo/rp_filter".into(), "1".into());
    let f = net::rp_filter(&e, &sys);
    let checks: Vec<&str> = f.iter().map(|f| f.check.as_str()).collect();
    assert_eq!(checks, ["rp_filter eth0", "rp_filter br-lan"]);
    assert_eq!(f[0].verdict, Verdict::Fail);
    assert_eq!(f[1].verdict, Verdict::Ok);
}

#[test]
fn rp_filter_fix_spells_a_vlan_interface_with_a_slash() {
    let e = expect(&LAN.replace("br-lan", "eth0.10"));
    let mut sys = healthy(&e);
    sys.interfaces[2].name = "eth0.10".into();
    sys.sysctls
        .insert("net/ipv4/conf/eth0.10/rp_filter".into(), "1".into());
    let f = net::rp_filter(&e, &sys);
    assert_eq!(
        f[0].fix.as_deref(),
        Some("sysctl -w net.ipv4.conf.eth0/10.rp_filter=2  # loose; 0 turns the check off")
    );
}

#[test]
fn an_iif_that_does_not_exist_is_a_warning() {
    let e = expect(&LAN.replace("br-lan", "wlan*"));
    let f = net::rp_filter(&e, &healthy(&e));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].check, "rp_filter wlan*");
    assert_eq!(f[0].verdict, Verdict::Warn);
}

#[test]
fn route_verdicts() {
    let e = expect(LAN);
    let hop = |dev: &str| {
        Ok(Hop {
            dev: dev.into(),
            via: Some("192.168.1.254".parse().unwrap()),
        })
    };
    for (result, want) in [
        (hop("br-lan"), Verdict::Ok),
        (hop("eth0"), Verdict::Warn),
        (Err("Network is unreachable".to_string()), Verdict::Fail),
    ] {
        let mut sys = healthy(&e);
        sys.routes[0].result = result;
        let f = net::routes(&e, &sys);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].check, "route to 10.9.0.0/16");
        assert_eq!(f[0].verdict, want, "{}", f[0]);
        if want != Verdict::Ok {
            assert!(
                f[0].fix
                    .as_deref()
                    .unwrap()
                    .starts_with("ip route add 10.9.0.0/16 via ROUTER dev br-lan"),
                "{}",
                f[0]
            );
        }
    }
}

#[test]
fn without_src_the_client_networks_are_those_on_the_intercept_interfaces() {
    let e = expect(&LAN.replace(" src 10.9.0.0/16", ""));
    let nets = net::client_nets(&e, &healthy(&e).interfaces);
    // br-lan's own network; its link-local address is no client network.
    assert_eq!(nets, vec![net("192.168.1.0/24")]);
}

#[test]
fn conntrack_verdicts() {
    let e = expect(LAN);
    for (count, max, want) in [
        (Some("500"), Some("1000"), Verdict::Ok),
        (Some("800"), Some("1000"), Verdict::Ok),
        (Some("900"), Some("1000"), Verdict::Warn),
        (Some("1000"), Some("1000"), Verdict::Fail),
        (None, None, Verdict::Ok),
    ] {
        let mut sys = healthy(&e);
        for (k, v) in [
            ("net/netfilter/nf_conntrack_count", count),
            ("net/netfilter/nf_conntrack_max", max),
        ] {
            match v {
                Some(v) => sys.sysctls.insert(k.into(), v.into()),
                None => sys.sysctls.remove(k),
            };
        }
        let f = host::conntrack(&sys);
        assert_eq!(f.verdict, want, "{count:?}/{max:?}: {f}");
        if want != Verdict::Ok {
            assert_eq!(
                f.fix.as_deref(),
                Some("sysctl -w net.netfilter.nf_conntrack_max=2000")
            );
        }
    }
}

#[test]
fn capability_verdicts() {
    let bit = |b: u32| 1u64 << b;
    let e15080 = expect(LAN);
    let e80 = expect(&LAN.replace("15080", "80"));
    for (caps, e, want) in [
        (Some(ALL_CAPS), &e15080, Verdict::Ok),
        (Some(0), &e15080, Verdict::Fail),
        (
            Some(ALL_CAPS & !bit(host::CAP_NET_ADMIN)),
            &e15080,
            Verdict::Fail,
        ),
        // Transparent sockets are allowed by CAP_NET_ADMIN alone.
        (
            Some(ALL_CAPS & !bit(host::CAP_NET_RAW)),
            &e15080,
            Verdict::Warn,
        ),
        // Binding below 1024 needs CAP_NET_BIND_SERVICE; a high port does not.
        (
            Some(ALL_CAPS & !bit(host::CAP_NET_BIND_SERVICE)),
            &e15080,
            Verdict::Warn,
        ),
        (
            Some(ALL_CAPS & !bit(host::CAP_NET_BIND_SERVICE)),
            &e80,
            Verdict::Fail,
        ),
        (None, &e15080, Verdict::Warn),
    ] {
        let mut sys = healthy(e);
        sys.cap_eff = caps;
        let f = host::capabilities(e, &sys);
        assert_eq!(f.verdict, want, "{caps:?}: {f}");
        if caps.is_some() && want != Verdict::Ok {
            assert_eq!(
                f.fix.as_deref(),
                Some(
                    "setcap cap_net_admin,cap_net_raw,cap_net_bind_service=ep /usr/sbin/gatehouse  # or run gatehouse as root"
                )
            );
        }
    }
}

#[test]
fn kernel_verdicts() {
    let e = expect(LAN);
    for (kernel, want) in [
        (Kernel::Nft(Ok(())), Verdict::Ok),
        (
            Kernel::Nft(Err("Could not process rule".into())),
            Verdict::Fail,
        ),
        (
            Kernel::Iptables {
                tproxy: Module::Available,
                socket: Module::Builtin,
            },
            Verdict::Ok,
        ),
        (
            Kernel::Iptables {
                tproxy: Module::Loaded,
                socket: Module::Missing,
            },
            Verdict::Fail,
        ),
        (Kernel::NoBackend, Verdict::Fail),
    ] {
        let mut sys = healthy(&e);
        sys.kernel = kernel;
        let f = host::kernel(&sys);
        assert_eq!(f.verdict, want, "{f}");
    }
}

#[test]
fn forwarding_is_information_only() {
    let e = expect(LAN);
    let mut sys = healthy(&e);
    assert_eq!(net::forwarding(&sys).verdict, Verdict::Ok);
    sys.sysctls.insert("net/ipv4/ip_forward".into(), "1".into());
    let f = net::forwarding(&sys);
    assert_eq!(f.verdict, Verdict::Ok);
    assert!(f.found.contains("not intercepted is routed"), "{f}");
}

#[test]
fn listener_verdicts() {
    let e = expect(LAN);
    let mut sys = healthy(&e);
    assert_eq!(unit::listeners(&e, &sys)[0].verdict, Verdict::Ok);

    sys.listeners = vec![
        "[::]:15081".parse().unwrap(),
        "0.0.0.0:15080".parse().unwrap(),
    ];
    let f = unit::listeners(&e, &sys);
    assert_eq!(f[0].check, "listener [::]:15080");
    assert_eq!(f[0].verdict, Verdict::Fail, "{}", f[0]);

    sys.running = None;
    let f = unit::listeners(&e, &sys);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].verdict, Verdict::Warn);
    assert_eq!(f[0].fix.as_deref(), Some("gatehouse -f t.cfg"));
}

#[test]
fn an_ipv4_bind_matches_its_listener() {
    let e = expect(&LAN.replace(
        "[::]:15080 transparent v4v6",
        "192.168.1.1:15080 transparent",
    ));
    let mut sys = healthy(&e);
    sys.listeners = vec!["192.168.1.1:15080".parse().unwrap()];
    assert_eq!(unit::listeners(&e, &sys)[0].verdict, Verdict::Ok);
}

#[test]
fn plumbing_verdicts() {
    let e = expect(LAN);
    let sys = healthy(&e);
    assert_eq!(unit::plumbing(&e, &sys).verdict, Verdict::Ok);

    // Not running: skipped with a warning that says how to start it.
    let mut s = sys.clone();
    s.running = None;
    let f = unit::plumbing(&e, &s);
    assert_eq!(f.verdict, Verdict::Warn);

    // No nft table: gatehouse must be restarted to reinstall it.
    let mut s = sys.clone();
    s.unit.nft = None;
    let f = unit::plumbing(&e, &s);
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(f.found.contains("nft table inet gatehouse"), "{f}");
    assert!(
        f.fix
            .as_deref()
            .unwrap()
            .starts_with("kill -TERM 42; gatehouse -f t.cfg")
    );

    // The divert gone from the table (the LAN config's src is IPv4, so it has only that one).
    let mut s = sys.clone();
    s.unit.nft = Some(
        nft::render(&e.plan)
            .lines()
            .filter(|l| !l.contains("tproxy ip to"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let f = unit::plumbing(&e, &s);
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(f.found.contains("IPv4 divert of t.cfg:3"), "{f}");

    // Only the IPv4 rule missing: the fix is exactly its `ip` command.
    let mut s = sys.clone();
    s.unit.rules.retain(|r| r.family != Family::V4);
    let f = unit::plumbing(&e, &s);
    assert_eq!(f.verdict, Verdict::Fail);
    assert_eq!(
        f.fix.as_deref(),
        Some("ip -4 rule add fwmark 0x1 lookup 100 pref 100 proto 103")
    );

    // The iptables backend: the PREROUTING jump and each TPROXY sub-chain.
    let mut s = sys.clone();
    s.firewall = Some(Firewall::Iptables);
    let chains = "-N GATEHOUSE\n-A PREROUTING -j GATEHOUSE\n-A GATEHOUSE_1 -p tcp -j TPROXY --on-port 15080\n";
    s.unit.iptables_v4 = Some(chains.into());
    s.unit.iptables_v6 = Some(chains.into());
    assert_eq!(unit::plumbing(&e, &s).verdict, Verdict::Ok);
    s.unit.iptables_v6 = Some("-N GATEHOUSE\n".into());
    let f = unit::plumbing(&e, &s);
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(
        f.found
            .contains("ip6tables-legacy: -A PREROUTING -j GATEHOUSE"),
        "{f}"
    );
}

#[test]
fn a_config_without_plumbing_needs_no_unit() {
    let e = expect(
        "frontend f\n    bind :8080\n    default_backend b\nbackend b\n    server s 192.0.2.1:80\n",
    );
    let mut sys = healthy(&e);
    sys.unit = UnitView::default();
    assert_eq!(unit::plumbing(&e, &sys).verdict, Verdict::Ok);
}

#[test]
fn any_fail_is_the_worst() {
    let e = expect(LAN);
    let mut sys = healthy(&e);
    sys.sysctls
        .insert("net/netfilter/nf_conntrack_count".into(), "900".into());
    assert_eq!(worst(&diagnose(&e, &sys)), Verdict::Warn);
    sys.sysctls
        .insert("net/ipv4/conf/br-lan/rp_filter".into(), "1".into());
    assert_eq!(worst(&diagnose(&e, &sys)), Verdict::Fail);
}

#[test]
fn a_finding_prints_as_one_line_and_an_indented_fix() {
    let f = Finding::fail("rp_filter br-lan", "strict", "sysctl -w x=2");
    assert_eq!(
        f.to_string(),
        "FAIL rp_filter br-lan: strict\n     fix: sysctl -w x=2"
    );
    assert_eq!(
        Finding::ok("conntrack", "fine").to_string(),
        "OK   conntrack: fine"
    );
}

#[test]
fn proc_net_tcp_listeners() {
    let hex4 = |b: [u8; 4]| format!("{:08X}", u32::from_ne_bytes(b));
    let v4 = format!(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
         \x20  0: {}:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
         \x20  1: {}:3AE8 0A000002:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n",
        hex4([127, 0, 0, 1]),
        hex4([10, 0, 0, 1]),
    );
    assert_eq!(
        parse_proc_net_tcp(&v4, false),
        vec!["127.0.0.1:631".parse::<SocketAddr>().unwrap()]
    );
    let v6 = format!(
        "  sl  local_address ...\n\
         \x20  0: 00000000000000000000000000000000:3AE8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1\n\
         \x20  1: 000000000000000000000000{}:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1\n",
        hex4([0, 0, 0, 1]),
    );
    assert_eq!(
        parse_proc_net_tcp(&v6, true),
        vec![
            "[::]:15080".parse::<SocketAddr>().unwrap(),
            "[::1]:22".parse().unwrap()
        ]
    );
}

#[test]
fn cap_eff_and_modules() {
    assert_eq!(
        cap_eff("Name:\tx\nCapPrm:\t0000000000000000\nCapEff:\t0000000000003000\n"),
        Some(0x3000)
    );
    assert_eq!(cap_eff("Name:\tx\n"), None);
    let loaded = "xt_socket 16384 1 - Live 0x0\nnf_tables 1 0 - Live 0x0\n";
    let builtin = "kernel/net/netfilter/xt_mark.ko\n";
    let files = vec![
        "xt_TPROXY.ko.xz".to_string(),
        "xt_TPROXY_extra.ko".to_string(),
    ];
    assert_eq!(
        module_state("xt_socket", loaded, builtin, &files),
        Module::Loaded
    );
    assert_eq!(
        module_state("xt_mark", loaded, builtin, &files),
        Module::Builtin
    );
    assert_eq!(
        module_state("xt_TPROXY", loaded, builtin, &files),
        Module::Available
    );
    assert_eq!(
        module_state("xt_nat", loaded, builtin, &files),
        Module::Missing
    );
}

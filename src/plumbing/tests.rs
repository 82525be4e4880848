//! Golden tests: the exact text `gatehouse rules` prints for two configs, both backends. The golden
//! files were checked with `nft -c -f` and `iptables-legacy-restore --test` in a scratch namespace;
//! a change to the rendering must update them on purpose.

use super::*;
use crate::config;

fn plan(name: &str, text: &str) -> Plan {
    Plan::from_config(&config::from_str(name, text).unwrap().config)
}

fn check(got: &str, golden: &str, file: &str) {
    assert!(
        got == golden,
        "rendering differs from src/plumbing/golden/{file}:\n--- got ---\n{got}\n--- want ---\n{golden}"
    );
}

#[test]
fn default_config_renders_as_golden() {
    let p = plan(config::DEFAULT_CONFIG_NAME, config::DEFAULT_CONFIG);
    check(
        &render(&p, Firewall::Nft),
        include_str!("golden/default.nft.txt"),
        "default.nft.txt",
    );
    check(
        &render(&p, Firewall::Iptables),
        include_str!("golden/default.iptables.txt"),
        "default.iptables.txt",
    );
}

#[test]
fn rich_config_renders_as_golden() {
    let p = plan("rich.cfg", include_str!("golden/rich.cfg"));
    check(
        &render(&p, Firewall::Nft),
        include_str!("golden/rich.nft.txt"),
        "rich.nft.txt",
    );
    check(
        &render(&p, Firewall::Iptables),
        include_str!("golden/rich.iptables.txt"),
        "rich.iptables.txt",
    );
}

#[test]
fn plan_covers_usesrc_without_intercepts() {
    // Spoofing the client's IP needs the socket-match rule and routing even with no interception.
    let p = plan(
        "u.cfg",
        "frontend f\n    bind :80\n    default_backend b\nbackend b\n    source 0.0.0.0 usesrc clientip\n    server s 10.0.0.1:80\n",
    );
    assert!(p.diverts.is_empty());
    assert_eq!(p.families, [Family::V4, Family::V6]);
    let none = plan(
        "n.cfg",
        "frontend f\n    bind :80\n    default_backend b\nbackend b\n    server s 10.0.0.1:80\n",
    );
    assert!(none.is_empty());
    assert!(render(&none, Firewall::Nft).contains("nothing to install"));
}

#[test]
fn many_ports_split_into_multiport_chunks() {
    let ports: Vec<String> = (1..=20).map(|p| (1000 + p).to_string()).collect();
    let p = plan(
        "m.cfg",
        &format!(
            "frontend f\n    bind 0.0.0.0:1 transparent\n    intercept dport {}\n    default_backend b\nbackend b\n    server s 0.0.0.0\n",
            ports.join(",")
        ),
    );
    let text = iptables::render(&p, Family::V4);
    let jumps: Vec<&str> = text.lines().filter(|l| l.contains("--dports")).collect();
    assert_eq!(jumps.len(), 2, "{text}");
    assert!(jumps[0].contains("1001,1002") && jumps[1].contains("1016"));
}

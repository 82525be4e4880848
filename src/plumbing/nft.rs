//! The nftables backend: one `table inet gatehouse`, replaced in a single atomic `nft -f -` batch.
//!
//! Why text through the nft binary: none of the netlink crates has the tproxy expression without C
//! libraries or GPL code (docs/plumbing.md), and `nft -f` applies a batch atomically: a batch with an
//! error changes nothing.

use std::fmt::Write;

use super::{Divert, Family, Plan, PlumbingError, UNIT_NAME, run};

/// The batch: create-if-missing, delete, create. Applying it twice, or over a killed run's table,
/// leaves exactly one table.
pub fn render(plan: &Plan) -> String {
    let s = &plan.settings;
    let mut o = String::new();
    let _ = writeln!(o, "table inet {UNIT_NAME} {{}}");
    let _ = writeln!(o, "delete table inet {UNIT_NAME}");
    let _ = writeln!(o, "table inet {UNIT_NAME} {{");
    let _ = writeln!(o, "\tchain prerouting {{");
    let _ = writeln!(
        o,
        "\t\ttype filter hook prerouting priority mangle; policy accept;"
    );
    if s.outbound_mark != 0 {
        let _ = writeln!(
            o,
            "\t\tmeta mark {:#x} return comment \"our own outbound packets\"",
            s.outbound_mark
        );
    }
    let _ = writeln!(
        o,
        "\t\tmeta l4proto tcp socket transparent 1 meta mark set {:#x} accept comment \"packets of established transparent sockets\"",
        s.mark
    );
    let _ = writeln!(
        o,
        "\t\tfib daddr type local return comment \"the gateway's own addresses are never intercepted\""
    );
    for d in &plan.diverts {
        let _ = writeln!(o, "\t\t{}", rule(d, s.mark));
    }
    let _ = writeln!(o, "\t}}");
    let _ = writeln!(o, "}}");
    o
}

fn set<T: ToString>(items: &[T], quote: bool) -> String {
    let f = |i: &T| {
        if quote {
            format!("\"{}\"", i.to_string())
        } else {
            i.to_string()
        }
    };
    match items {
        [one] => f(one),
        many => format!(
            "{{ {} }}",
            many.iter().map(f).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn rule(d: &Divert, mark: u32) -> String {
    let (nfproto, ip) = match d.family {
        Family::V4 => ("ipv4", "ip"),
        Family::V6 => ("ipv6", "ip6"),
    };
    let mut r = format!("meta nfproto {nfproto}");
    if !d.iif_in.is_empty() {
        let _ = write!(r, " iifname {}", set(&d.iif_in, true));
    }
    if !d.iif_out.is_empty() {
        let _ = write!(r, " iifname != {}", set(&d.iif_out, true));
    }
    for (dir, inc, exc) in [
        ("saddr", &d.src_in, &d.src_out),
        ("daddr", &d.dst_in, &d.dst_out),
    ] {
        if !inc.is_empty() {
            let _ = write!(r, " {ip} {dir} {}", set(inc, false));
        }
        if !exc.is_empty() {
            let _ = write!(r, " {ip} {dir} != {}", set(exc, false));
        }
    }
    let ports: Vec<String> = d
        .dports
        .iter()
        .map(|p| {
            if p.first == p.last {
                p.first.to_string()
            } else {
                format!("{}-{}", p.first, p.last)
            }
        })
        .collect();
    let _ = write!(r, " tcp dport {}", set(&ports, false));
    let to = if d.to.ip().is_unspecified() {
        format!(":{}", d.to.port())
    } else {
        match d.to {
            std::net::SocketAddr::V4(a) => a.to_string(),
            std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        }
    };
    let _ = write!(
        r,
        " tproxy {ip} to {to} meta mark set {mark:#x} accept comment \"{}\"",
        d.origin.replace('"', "'")
    );
    r
}

pub async fn apply(plan: &Plan) -> Result<(), PlumbingError> {
    run("nft", &["-f", "-"], Some(&render(plan)), "nftables").await?;
    Ok(())
}

/// Deletes our table if it exists. A host without nft has nothing of ours in nft.
pub async fn remove() -> Result<(), PlumbingError> {
    match run(
        "nft",
        &["list", "table", "inet", UNIT_NAME],
        None,
        "nftables",
    )
    .await
    {
        Ok(_) => {
            run(
                "nft",
                &["delete", "table", "inet", UNIT_NAME],
                None,
                "nftables",
            )
            .await?;
            Ok(())
        }
        // No such table, or no nft at all: nothing to remove.
        Err(PlumbingError::Command { .. } | PlumbingError::Spawn { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

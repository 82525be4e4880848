//! The fallback backend for hosts without nftables: legacy iptables through `iptables-legacy-restore
//! --noflush`, whose COMMIT is atomic per table. Our rules live in private `mangle` chains named
//! `GATEHOUSE*`; the only thing added to a built-in chain is one jump from PREROUTING, checked with `-C`
//! first so it is never doubled.

use std::fmt::Write;

use super::{Divert, Family, Plan, PlumbingError, run};

/// The entry chain, jumped to from PREROUTING.
pub const CHAIN: &str = "GATEHOUSE";
/// Marks and accepts packets of established transparent sockets.
const DIVERT: &str = "GATEHOUSE_DIVERT";

pub fn tools(f: Family) -> (&'static str, &'static str) {
    match f {
        Family::V4 => ("iptables-legacy", "iptables-legacy-save"),
        Family::V6 => ("ip6tables-legacy", "ip6tables-legacy-save"),
    }
}

/// `multiport` takes at most 15 ports, a range counting as two.
fn port_chunks(d: &Divert) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut weight = 0;
    for p in &d.dports {
        let (item, w) = if p.first == p.last {
            (p.first.to_string(), 1)
        } else {
            (format!("{}:{}", p.first, p.last), 2)
        };
        if weight + w > 15 {
            chunks.push(cur.join(","));
            cur.clear();
            weight = 0;
        }
        cur.push(item);
        weight += w;
    }
    if !cur.is_empty() {
        chunks.push(cur.join(","));
    }
    chunks
}

/// Interface names: the config's (and nft's) `eth*` prefix wildcard is iptables' `eth+`.
fn iface(name: &str) -> String {
    match name.strip_suffix('*') {
        Some(stem) => format!("{stem}+"),
        None => name.to_string(),
    }
}

/// The restore file for one family.
pub fn render(plan: &Plan, family: Family) -> String {
    let s = &plan.settings;
    let diverts: Vec<&Divert> = plan.diverts.iter().filter(|d| d.family == family).collect();
    let mut o = String::from("*mangle\n");
    let _ = writeln!(o, ":{CHAIN} - [0:0]");
    let _ = writeln!(o, ":{DIVERT} - [0:0]");
    for i in 0..diverts.len() {
        let _ = writeln!(o, ":{CHAIN}_{} - [0:0]", i + 1);
    }
    // Declared chains are flushed by --noflush restore; say it anyway so the file reads whole.
    for c in std::iter::once(CHAIN.to_string())
        .chain(std::iter::once(DIVERT.to_string()))
        .chain((0..diverts.len()).map(|i| format!("{CHAIN}_{}", i + 1)))
    {
        let _ = writeln!(o, "-F {c}");
    }
    if s.outbound_mark != 0 {
        let _ = writeln!(
            o,
            "-A {CHAIN} -m mark --mark {:#x} -j RETURN",
            s.outbound_mark
        );
    }
    let _ = writeln!(o, "-A {CHAIN} -p tcp -m socket --transparent -j {DIVERT}");
    let _ = writeln!(
        o,
        "-A {DIVERT} -j MARK --set-xmark {:#x}/0xffffffff",
        s.mark
    );
    let _ = writeln!(o, "-A {DIVERT} -j ACCEPT");
    let _ = writeln!(o, "-A {CHAIN} -m addrtype --dst-type LOCAL -j RETURN");
    for (i, d) in diverts.iter().enumerate() {
        let sub = format!("{CHAIN}_{}", i + 1);
        // Includes are expanded into one jump per combination; excludes RETURN inside the sub-chain.
        let any = [String::new()];
        let iifs: Vec<String> = d
            .iif_in
            .iter()
            .map(|i| format!(" -i {}", iface(i)))
            .collect();
        let srcs: Vec<String> = d.src_in.iter().map(|n| format!(" -s {n}")).collect();
        let dsts: Vec<String> = d.dst_in.iter().map(|n| format!(" -d {n}")).collect();
        let or_any = |v: &[String]| {
            if v.is_empty() {
                any.to_vec()
            } else {
                v.to_vec()
            }
        };
        for ports in port_chunks(d) {
            for iif in or_any(&iifs) {
                for src in or_any(&srcs) {
                    for dst in or_any(&dsts) {
                        let _ = writeln!(
                            o,
                            "-A {CHAIN}{iif}{src}{dst} -p tcp -m multiport --dports {ports} -j {sub}"
                        );
                    }
                }
            }
        }
        for iif in &d.iif_out {
            let _ = writeln!(o, "-A {sub} -i {} -j RETURN", iface(iif));
        }
        for n in &d.src_out {
            let _ = writeln!(o, "-A {sub} -s {n} -j RETURN");
        }
        for n in &d.dst_out {
            let _ = writeln!(o, "-A {sub} -d {n} -j RETURN");
        }
        let on_ip = if d.to.ip().is_unspecified() {
            String::new()
        } else {
            format!(" --on-ip {}", d.to.ip())
        };
        let _ = writeln!(
            o,
            "-A {sub} -p tcp -j TPROXY --on-port {}{on_ip} --tproxy-mark {:#x}/0xffffffff",
            d.to.port(),
            s.mark
        );
    }
    o.push_str("COMMIT\n");
    o
}

pub async fn apply(plan: &Plan) -> Result<(), PlumbingError> {
    // A killed run may have left more sub-chains than this plan declares; start clean.
    remove().await?;
    for fam in &plan.families {
        let (tool, _) = tools(*fam);
        let restore = format!("{tool}-restore");
        run(
            &restore,
            &["-w", "5", "--noflush"],
            Some(&render(plan, *fam)),
            "iptables",
        )
        .await?;
        let jump = ["-w", "5", "-t", "mangle", "-C", "PREROUTING", "-j", CHAIN];
        if run(tool, &jump, None, "iptables").await.is_err() {
            let add = ["-w", "5", "-t", "mangle", "-A", "PREROUTING", "-j", CHAIN];
            run(tool, &add, None, "iptables").await?;
        }
    }
    Ok(())
}

/// Removes our jump and chains in both families, if the legacy tools exist at all.
pub async fn remove() -> Result<(), PlumbingError> {
    for fam in [Family::V4, Family::V6] {
        let (tool, save) = tools(fam);
        let Ok(dump) = run(save, &["-t", "mangle"], None, "iptables").await else {
            // No legacy tools, or no mangle table loaded: nothing of ours can be there.
            continue;
        };
        let chains: Vec<&str> = dump
            .lines()
            .filter_map(|l| l.strip_prefix(':'))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c == CHAIN || c.starts_with("GATEHOUSE_"))
            .collect();
        if chains.is_empty() {
            continue;
        }
        let jumps = dump
            .lines()
            .filter(|l| l.starts_with("-A PREROUTING") && l.ends_with(&format!("-j {CHAIN}")))
            .count();
        let mut file = String::from("*mangle\n");
        for _ in 0..jumps {
            let _ = writeln!(file, "-D PREROUTING -j {CHAIN}");
        }
        for c in &chains {
            let _ = writeln!(file, "-F {c}");
        }
        for c in &chains {
            let _ = writeln!(file, "-X {c}");
        }
        file.push_str("COMMIT\n");
        let restore = format!("{tool}-restore");
        run(&restore, &["-w", "5", "--noflush"], Some(&file), "iptables").await?;
    }
    Ok(())
}

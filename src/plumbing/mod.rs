//! The plumbing unit: everything gatehouse installs in the kernel so intercepted packets reach its
//! transparent listeners, planned from the config, rendered as text, applied as one unit, removed on exit.
//!
//! plan ([`Plan::from_config`]) → render ([`nft`], [`iptables`], [`iproute::render`]) → apply / remove.
//! See docs/plumbing.md for what is installed and why.

pub mod iproute;
pub mod iptables;
pub mod nft;

use std::net::SocketAddr;
use std::process::Stdio;

use ipnet::IpNet;
use tokio::io::AsyncWriteExt;

use crate::config::Config;
use crate::config::model::{FirewallBackend, PlumbingSettings, PortRange, UseSrc};

/// Name of our nft table and prefix of our iptables chains.
pub const UNIT_NAME: &str = "gatehouse";
/// Routing protocol number stamped on our `ip rule` and route, so removal touches only what we made
/// (unassigned in iproute2's rt_protos; shows as `proto 103`).
pub const RTPROT_GATEHOUSE: u8 = 103;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
}

/// One TPROXY rule for one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divert {
    pub family: Family,
    /// The transparent listener; an unspecified IP leaves the choice to TPROXY (the listener matches any).
    pub to: SocketAddr,
    pub dports: Vec<PortRange>,
    pub iif_in: Vec<String>,
    pub iif_out: Vec<String>,
    pub src_in: Vec<IpNet>,
    pub src_out: Vec<IpNet>,
    pub dst_in: Vec<IpNet>,
    pub dst_out: Vec<IpNet>,
    /// The config line it comes from, for comments in the rendered rules.
    pub origin: String,
}

/// What the unit consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub settings: PlumbingSettings,
    pub diverts: Vec<Divert>,
    /// Families that need the socket-match rule and the `ip rule` + local route: those with diverts,
    /// plus those of transparent outbound connections (`usesrc`), whose return packets must come to us.
    pub families: Vec<Family>,
}

impl Plan {
    pub fn from_config(cfg: &Config) -> Plan {
        let mut diverts = Vec::new();
        for (_, i, bind) in cfg.intercepts() {
            for family in [Family::V4, Family::V6] {
                let wanted = match family {
                    Family::V4 => i.families.has_v4(),
                    Family::V6 => i.families.has_v6(),
                };
                let of = |v: &[IpNet]| -> Vec<IpNet> {
                    v.iter()
                        .filter(|n| Family::of(n) == family)
                        .copied()
                        .collect()
                };
                // A family with includes only in the other family matches nothing.
                let (src_in, dst_in) = (of(&i.src.include), of(&i.dst.include));
                if !wanted
                    || (!i.src.include.is_empty() && src_in.is_empty())
                    || (!i.dst.include.is_empty() && dst_in.is_empty())
                {
                    continue;
                }
                let mut iif_out = i.iif.exclude.clone();
                if i.iif.include.is_empty() && !iif_out.iter().any(|x| x == "lo") {
                    // Never divert the gateway's own loopback traffic.
                    iif_out.insert(0, "lo".to_string());
                }
                let mut to = bind.addr;
                if family == Family::V4 {
                    // A dual-stack [::] listener takes IPv4 via TPROXY to an IPv4 wildcard.
                    if let std::net::IpAddr::V6(v6) = to.ip()
                        && v6.is_unspecified()
                    {
                        to.set_ip(std::net::Ipv4Addr::UNSPECIFIED.into());
                    }
                }
                diverts.push(Divert {
                    family,
                    to,
                    dports: i.dports.clone(),
                    iif_in: i.iif.include.clone(),
                    iif_out,
                    src_in,
                    src_out: of(&i.src.exclude),
                    dst_in,
                    dst_out: of(&i.dst.exclude),
                    origin: i.pos.to_string(),
                });
            }
        }
        let mut families: Vec<Family> = diverts.iter().map(|d| d.family).collect();
        // usesrc with a transparent source: return packets are addressed to a foreign IP.
        for be in &cfg.backends {
            let sources = be
                .source
                .iter()
                .chain(be.servers.iter().filter_map(|s| s.source.as_ref()));
            for s in sources {
                match s.usesrc {
                    Some(UseSrc::ClientIp | UseSrc::Client) => {
                        families.extend([Family::V4, Family::V6])
                    }
                    Some(UseSrc::Addr(a)) => {
                        families.push(if a.is_ipv4() { Family::V4 } else { Family::V6 })
                    }
                    None => {}
                }
            }
        }
        families.sort();
        families.dedup();
        Plan {
            settings: cfg.global.plumbing.clone(),
            diverts,
            families,
        }
    }

    /// True when there is nothing to install.
    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlumbingError {
    #[error(
        "cannot run {cmd}: {source}; install it (apt-get install {pkg}) or set 'plumbing none'"
    )]
    Spawn {
        cmd: String,
        pkg: &'static str,
        source: std::io::Error,
    },
    #[error("{cmd} failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("netlink: {0}")]
    Netlink(String),
    #[error(
        "neither nft nor iptables-legacy works here; install nftables, or set 'plumbing none' and install the rules yourself"
    )]
    NoBackend,
}

/// A firewall backend chosen for this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firewall {
    Nft,
    Iptables,
    None,
}

/// Resolves `plumbing auto` by asking nft whether it works.
pub async fn choose(setting: FirewallBackend) -> Result<Firewall, PlumbingError> {
    Ok(match setting {
        FirewallBackend::Nft => Firewall::Nft,
        FirewallBackend::Iptables => Firewall::Iptables,
        FirewallBackend::None => Firewall::None,
        FirewallBackend::Auto => {
            if run("nft", &["list", "tables"], None, "nftables")
                .await
                .is_ok()
            {
                Firewall::Nft
            } else if run(
                "iptables-legacy",
                &["-w", "5", "-t", "mangle", "-S", "PREROUTING"],
                None,
                "iptables",
            )
            .await
            .is_ok()
            {
                Firewall::Iptables
            } else {
                return Err(PlumbingError::NoBackend);
            }
        }
    })
}

/// The unit as installed; `remove` takes it down.
#[derive(Debug)]
pub struct Installed {
    pub firewall: Firewall,
    pub plan: Plan,
}

/// Installs the unit, replacing any leftover of an earlier run. On a failure part-way, what was
/// installed is removed again.
pub async fn install(plan: &Plan) -> Result<Installed, PlumbingError> {
    let firewall = choose(plan.settings.backend).await?;
    if plan.is_empty() || firewall == Firewall::None {
        return Ok(Installed {
            firewall,
            plan: plan.clone(),
        });
    }
    let result = async {
        // Routing first: diverted packets need the local route the moment the rules exist.
        iproute::apply(plan).await?;
        // A killed run may have used the other backend: its leftovers go too, never doubled.
        match firewall {
            Firewall::Nft => {
                iptables::remove().await?;
                nft::apply(plan).await
            }
            Firewall::Iptables => {
                nft::remove().await?;
                iptables::apply(plan).await
            }
            Firewall::None => Ok(()),
        }
    }
    .await;
    if let Err(e) = result {
        let _ = remove_all().await;
        return Err(e);
    }
    Ok(Installed {
        firewall,
        plan: plan.clone(),
    })
}

impl Installed {
    pub async fn remove(self) -> Result<(), PlumbingError> {
        if self.plan.is_empty() || self.firewall == Firewall::None {
            return Ok(());
        }
        remove_all().await
    }
}

/// Removes every trace of a gatehouse unit (ours or a killed run's), whichever backend made it.
/// Missing pieces are not errors; the first real failure is returned after trying everything.
pub async fn remove_all() -> Result<(), PlumbingError> {
    let mut first_err = None;
    if let Err(e) = nft::remove().await {
        first_err.get_or_insert(e);
    }
    if let Err(e) = iptables::remove().await {
        first_err.get_or_insert(e);
    }
    if let Err(e) = iproute::remove().await {
        first_err.get_or_insert(e);
    }
    first_err.map_or(Ok(()), Err)
}

/// Runs a command, feeding `stdin`, and returns its stdout; a non-zero exit is an error with stderr.
pub(crate) async fn run(
    cmd: &str,
    args: &[&str],
    stdin: Option<&str>,
    pkg: &'static str,
) -> Result<String, PlumbingError> {
    let spawn_err = |source| PlumbingError::Spawn {
        cmd: cmd.to_string(),
        pkg,
        source,
    };
    let mut child = tokio::process::Command::new(cmd)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await.map_err(spawn_err)?;
    }
    let out = child.wait_with_output().await.map_err(spawn_err)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(PlumbingError::Command {
            cmd: format!("{cmd} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// `gatehouse rules`: the whole unit as text, touching nothing.
pub fn render(plan: &Plan, firewall: Firewall) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("# nothing to install: no 'intercept' line and no 'usesrc'\n");
        return out;
    }
    match firewall {
        Firewall::Nft => {
            out.push_str("# nftables (applied with: nft -f -)\n");
            out.push_str(&nft::render(plan));
        }
        Firewall::Iptables => {
            for fam in &plan.families {
                let (tool, _) = iptables::tools(*fam);
                out.push_str(&format!("# {tool}-restore -w 5 --noflush\n"));
                out.push_str(&iptables::render(plan, *fam));
                out.push_str(&format!(
                    "# then, unless present: {tool} -w 5 -t mangle -A PREROUTING -j {}\n",
                    iptables::CHAIN
                ));
            }
        }
        Firewall::None => {
            out.push_str("# 'plumbing none': gatehouse installs nothing. What it would need, to install yourself:\n");
            out.push_str(&nft::render(plan));
            out.push_str("\n# routing\n");
            out.push_str(&iproute::render(plan));
            return out;
        }
    }
    out.push_str("\n# routing (applied over rtnetlink)\n");
    out.push_str(&iproute::render(plan));
    out
}

#[cfg(test)]
mod tests;

//! `gatehouse doctor`: what makes transparent proxying fail on this host, and what to run to fix it.
//!
//! Three steps, kept apart so that the verdicts can be table-tested without root:
//! 1. [`Expect::from_config`]: what the configuration needs (the plumbing [`Plan`], the intercept
//!    interfaces and client networks, the binds);
//! 2. [`read::system`]: the real reader fills a [`System`], a plain view of the host (sysctl values,
//!    capabilities, route lookups, listeners, the installed unit…);
//! 3. [`diagnose`]: pure functions over both give one [`Finding`] per checked thing, grouped in
//!    [`host`] (kernel support, capabilities, conntrack), [`net`] (forwarding, rp_filter, return
//!    routes) and [`unit`] (the plumbing unit, the listeners).
//!
//! A FAIL blocks traffic (the command exits 1); a WARN deserves a look but traffic can flow.

pub mod host;
pub mod net;
pub mod read;
pub mod unit;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::config::Config;
use crate::plumbing::{Family, Firewall, Plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    /// Worth a look; traffic can still flow.
    Warn,
    /// Blocks intercepted traffic.
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Verdict::Ok => "OK",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        })
    }
}

/// One checked thing: a verdict, what was found, and for WARN/FAIL the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was checked, e.g. `rp_filter br-lan`.
    pub check: String,
    pub verdict: Verdict,
    pub found: String,
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: impl Into<String>, found: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            verdict: Verdict::Ok,
            found: found.into(),
            fix: None,
        }
    }

    fn warn(check: impl Into<String>, found: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            verdict: Verdict::Warn,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(check: impl Into<String>, found: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            verdict: Verdict::Fail,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<4} {}: {}", self.verdict, self.check, self.found)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n     fix: {fix}")?;
        }
        Ok(())
    }
}

/// A listening address the configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedBind {
    pub addr: SocketAddr,
    pub transparent: bool,
    /// `file:line` of the `bind`.
    pub origin: String,
}

/// What the configuration needs from the host.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The plumbing unit `gatehouse rules` prints and gatehouse installs.
    pub plan: Plan,
    /// The `-f FILE` arguments, to repeat in the commands we suggest (empty for the embedded default).
    pub config_args: String,
    /// Interfaces named by `intercept … iif` (patterns, `eth*` included); empty: every interface.
    pub iifs: Vec<String>,
    /// Networks named by `intercept … src`; empty: the networks on the intercept interfaces.
    pub client_nets: Vec<IpNet>,
    pub binds: Vec<ExpectedBind>,
}

impl Expect {
    pub fn from_config(cfg: &Config, files: &[PathBuf]) -> Expect {
        let mut iifs = Vec::new();
        let mut client_nets = Vec::new();
        for (_, i, _) in cfg.intercepts() {
            for name in &i.iif.include {
                if !iifs.contains(name) {
                    iifs.push(name.clone());
                }
            }
            for net in &i.src.include {
                if !client_nets.contains(net) {
                    client_nets.push(*net);
                }
            }
        }
        let binds = cfg
            .frontends
            .iter()
            .flat_map(|f| &f.binds)
            .map(|b| ExpectedBind {
                addr: b.addr,
                transparent: b.transparent,
                origin: b.pos.to_string(),
            })
            .collect();
        let config_args = files
            .iter()
            .map(|f| format!(" -f {}", f.display()))
            .collect();
        Expect {
            plan: Plan::from_config(cfg),
            config_args,
            iifs,
            client_nets,
            binds,
        }
    }
}

/// Whether the kernel has a module, for the iptables-legacy backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// Listed in /proc/modules.
    Loaded,
    /// Built into the kernel (modules.builtin).
    Builtin,
    /// A module file under /lib/modules/RELEASE: the kernel loads it on first use.
    Available,
    Missing,
}

/// Kernel support for TPROXY and socket matching, tested with the backend gatehouse would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kernel {
    /// nft loaded (and deleted) a probe table using `tproxy` and `socket transparent`: `Err` holds
    /// nft's complaint.
    Nft(Result<(), String>),
    /// iptables-legacy: the TPROXY target's and the socket match's modules.
    Iptables { tproxy: Module, socket: Module },
    /// Neither `nft` nor `iptables-legacy` works.
    NoBackend,
}

/// An interface and its addresses (with their prefix lengths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub addrs: Vec<IpNet>,
}

/// Where the kernel sends packets for a client network (a lookup of one address inside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLookup {
    pub net: IpNet,
    /// The outgoing interface and next hop, or why there is no route (`Network is unreachable`).
    pub result: Result<Hop, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub dev: String,
    pub via: Option<std::net::IpAddr>,
}

/// An `ip rule` as seen on the host (only the parts gatehouse's rule sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRule {
    pub family: Family,
    pub fwmark: u32,
    pub table: u32,
}

/// The plumbing unit as it stands on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitView {
    /// `nft list table inet gatehouse`, or `None` when there is no such table (or no nft).
    pub nft: Option<String>,
    /// `iptables-legacy -t mangle -S` (IPv4) and `ip6tables-legacy -t mangle -S`, when they run.
    pub iptables_v4: Option<String>,
    pub iptables_v6: Option<String>,
    pub rules: Vec<PolicyRule>,
    /// Tables holding a `local default dev lo` route, per family.
    pub local_default: Vec<(Family, u32)>,
}

/// A view of the host, filled by [`read::system`] or written by hand in tests.
#[derive(Debug, Clone)]
pub struct System {
    pub kernel: Kernel,
    /// CapEff of this process (from /proc/self/status); `None` if unreadable.
    pub cap_eff: Option<u64>,
    /// The gatehouse binary, for the `setcap` fix.
    pub exe: String,
    /// sysctl values by path under /proc/sys (`net/ipv4/conf/eth0/rp_filter`); absent when the file is.
    pub sysctls: BTreeMap<String, String>,
    pub interfaces: Vec<Interface>,
    /// One lookup per client network ([`net::client_nets`]).
    pub routes: Vec<RouteLookup>,
    /// The pid of a gatehouse running in this network namespace (other than this process).
    pub running: Option<u32>,
    /// The firewall backend gatehouse uses here (`plumbing::choose`); `None` when neither works.
    pub firewall: Option<Firewall>,
    pub unit: UnitView,
    /// Listening TCP sockets.
    pub listeners: Vec<SocketAddr>,
}

impl System {
    /// An integer sysctl, by its path under /proc/sys.
    pub fn sysctl(&self, path: &str) -> Option<i64> {
        self.sysctls.get(path)?.trim().parse().ok()
    }
}

/// Every check, in the order they are printed.
pub fn diagnose(expect: &Expect, sys: &System) -> Vec<Finding> {
    let mut out = vec![host::kernel(sys), host::capabilities(expect, sys)];
    out.push(net::forwarding(sys));
    out.extend(net::rp_filter(expect, sys));
    out.extend(net::routes(expect, sys));
    out.push(host::conntrack(sys));
    out.push(unit::plumbing(expect, sys));
    out.extend(unit::listeners(expect, sys));
    out
}

/// The worst verdict; FAIL means traffic is blocked.
pub fn worst(findings: &[Finding]) -> Verdict {
    findings
        .iter()
        .map(|f| f.verdict)
        .max()
        .unwrap_or(Verdict::Ok)
}

#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests;

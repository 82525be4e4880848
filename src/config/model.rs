//! Step 3 of 3: the immutable configuration model.
//!
//! Everything here is checked: names are resolved to indices, defaults are applied, and every value is
//! in range. Runtime state (counters, connections, plumbing handles) lives elsewhere, so a model can be
//! swapped whole on reload.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use super::lexer::Pos;

#[derive(Debug, Clone)]
pub struct Config {
    pub global: Global,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
}

impl Config {
    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// Every transparent bind with the intercept rules that feed it, for the plumbing planner.
    pub fn intercepts(&self) -> impl Iterator<Item = (&Frontend, &Intercept, &Bind)> {
        self.frontends
            .iter()
            .flat_map(|f| f.intercepts.iter().map(move |i| (f, i, &f.binds[i.bind])))
    }
}

#[derive(Debug, Clone)]
pub struct Global {
    /// Process-wide connection limit; accepting pauses while it is reached, as in HAProxy.
    pub maxconn: u32,
    pub pidfile: Option<std::path::PathBuf>,
    /// Worker threads; `None` lets tokio use one per core.
    pub nbthread: Option<usize>,
    pub plumbing: PlumbingSettings,
}

/// How gatehouse installs its interception unit (a gatehouse extension; see docs/plumbing.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlumbingSettings {
    pub backend: FirewallBackend,
    /// Mark given to intercepted packets (and to return packets of transparent sockets); the `ip rule`
    /// sends this mark to `table`.
    pub mark: u32,
    pub table: u32,
    /// Preference of the `ip rule`, so it is found before the main table.
    pub rule_pref: u32,
    /// SO_MARK of outbound sockets; packets carrying it are never intercepted. 0 disables it.
    pub outbound_mark: u32,
}

impl Default for PlumbingSettings {
    fn default() -> Self {
        PlumbingSettings {
            backend: FirewallBackend::Auto,
            mark: 0x1,
            table: 100,
            rule_pref: 100,
            outbound_mark: 0x2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirewallBackend {
    /// nft if `nft` works, else iptables-legacy.
    Auto,
    Nft,
    Iptables,
    /// Install nothing: the operator provides the rules.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tcp,
}

#[derive(Debug, Clone)]
pub struct Frontend {
    pub name: String,
    pub pos: Pos,
    pub mode: Mode,
    pub binds: Vec<Bind>,
    pub intercepts: Vec<Intercept>,
    pub maxconn: u32,
    pub timeout_client: Option<Duration>,
    /// Index into `Config::backends`.
    pub default_backend: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Bind {
    pub addr: SocketAddr,
    pub pos: Pos,
    pub name: Option<String>,
    /// IP_TRANSPARENT / IPV6_TRANSPARENT: accept connections addressed to any IP (TPROXY targets).
    pub transparent: bool,
    /// `v6only` / `v4v6`; `None` keeps the system's `bindv6only` default.
    pub v6only: Option<bool>,
    pub backlog: Option<u32>,
}

impl Bind {
    /// The address families this bind receives.
    pub fn families(&self) -> Families {
        match self.addr.ip() {
            IpAddr::V4(_) => Families::V4,
            IpAddr::V6(ip) if ip.is_unspecified() && self.v6only != Some(true) => Families::Both,
            IpAddr::V6(_) => Families::V6,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Families {
    V4,
    V6,
    Both,
}

impl Families {
    pub fn has_v4(self) -> bool {
        self != Families::V6
    }
    pub fn has_v6(self) -> bool {
        self != Families::V4
    }
}

/// One `intercept` line: which packets the plumbing steers to a transparent bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intercept {
    pub pos: Pos,
    /// Index into the frontend's `binds`.
    pub bind: usize,
    pub families: Families,
    pub dports: Vec<PortRange>,
    pub iif: Selector<String>,
    pub src: Selector<IpNet>,
    pub dst: Selector<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// An include list and an exclude list; an empty include list means "any".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector<T> {
    pub include: Vec<T>,
    pub exclude: Vec<T>,
}

impl<T> Default for Selector<T> {
    fn default() -> Self {
        Selector {
            include: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub name: String,
    pub pos: Pos,
    pub mode: Mode,
    pub servers: Vec<Server>,
    pub source: Option<Source>,
    pub timeout_connect: Option<Duration>,
    pub timeout_server: Option<Duration>,
    /// Once connected, one idle timeout for both sides together, replacing client and server's.
    pub timeout_tunnel: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    pub pos: Pos,
    pub target: ServerTarget,
    /// A per-server `source` overrides the backend's.
    pub source: Option<Source>,
}

/// Where a server connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerTarget {
    Fixed(SocketAddr),
    /// `0.0.0.0`, `*` or `::`: the connection's original destination address.
    OrigDst(PortSpec),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSpec {
    /// No port (or port 0): the client's destination port.
    Same,
    Fixed(u16),
    /// `+N` / `-N`: the destination port shifted.
    Offset(i32),
}

/// `source ADDR[:PORT] [usesrc ...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Local address to bind; unspecified = the kernel's choice.
    pub addr: SocketAddr,
    pub usesrc: Option<UseSrc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseSrc {
    /// The client's IP with an ephemeral port.
    ClientIp,
    /// The client's IP and port.
    Client,
    /// A fixed foreign address.
    Addr(SocketAddr),
}

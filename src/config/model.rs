//! Step 3 of 3: the immutable configuration model.
//!
//! Everything here is checked: names are resolved to indices, defaults are applied, and every value is
//! in range. Runtime state (counters, connections, plumbing handles) lives elsewhere, so a model can be
//! swapped whole on reload.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use super::lexer::Pos;
use crate::guard::NamePolicy;
use crate::rules::sample::Template;
use crate::rules::{Acl, Cond};

#[derive(Debug, Clone)]
pub struct Config {
    pub global: Global,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
    pub resolvers: Vec<ResolversSection>,
    /// Every `stick-table`, by index.
    pub tables: Vec<StickTableDef>,
    /// Backend indices by name, for `use_backend` names computed per connection.
    pub backend_names: std::collections::HashMap<String, usize>,
    /// Every map file the rules use (one per file and match method), for the runtime API.
    pub maps: Vec<std::sync::Arc<crate::rules::pattern::Map>>,
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

/// `tune.idle-park` unless the configuration says otherwise.
/// Long enough that a connection talking every few seconds stays in its task (a park and a wake-up
/// cost about 60 µs of CPU together on loopback, mostly epoll registrations and context switches),
/// short enough that connections left open and silent (keep-alive pools, tunnels, push channels)
/// soon cost only their parked state.
pub const DEFAULT_IDLE_PARK: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Global {
    /// Process-wide connection limit; accepting pauses while it is reached, as in HAProxy.
    pub maxconn: u32,
    pub pidfile: Option<std::path::PathBuf>,
    /// Worker threads; `None` lets tokio use one per core.
    pub nbthread: Option<usize>,
    pub plumbing: PlumbingSettings,
    /// `stats socket` lines: the runtime API's listeners.
    pub stats_sockets: Vec<StatsSocket>,
    /// `stats timeout`: how long a runtime API connection may stay idle.
    pub stats_timeout: std::time::Duration,
    /// `hard-stop-after`: how long a graceful stop may wait for sessions to end.
    pub hard_stop_after: Option<std::time::Duration>,
    /// `tune.idle-park`: how long a spliced tcp session may be quiet in both directions before it
    /// parks (gives back its task and its sockets' reactor registrations until a byte arrives);
    /// `None` (`tune.idle-park 0`) keeps every session in its task.
    pub idle_park: Option<std::time::Duration>,
    /// Where process-level lines go (server state changes): the global `log` lines, or standard
    /// output when the configuration has no `log` line at all.
    pub logs: Vec<LogTarget>,
    /// `user`/`group` (or `uid`/`gid`): whom gatehouse runs as once its sockets are bound and its
    /// plumbing is installed; `None` keeps the user it was started as.
    pub run_as: Option<RunAs>,
}

/// The user and group gatehouse drops to, as numbers (names are looked up when the file is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    /// Also the only supplementary group: the ones root had are cleared.
    pub gid: u32,
}

/// One `log` destination, as HAProxy's `log <target> [len N] [format F] <facility> [<level>
/// [<minlevel>]]` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    pub dest: LogDest,
    /// Longest line sent, header included.
    pub len: usize,
    pub format: LogFormat,
    /// Syslog facility number (local0 = 16).
    pub facility: u8,
    /// Lines more severe than or as severe as this are sent (syslog severities: 0 emerg … 7 debug).
    pub max_level: u8,
    /// … and no more severe than this.
    pub min_level: u8,
}

impl LogTarget {
    /// Standard output, raw lines: where gatehouse logs when the configuration says nothing.
    pub fn stdout() -> LogTarget {
        LogTarget {
            dest: LogDest::Stdout,
            len: 1024,
            format: LogFormat::Raw,
            facility: 16,
            max_level: 7,
            min_level: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogDest {
    Stdout,
    Stderr,
    /// Syslog over UDP.
    Udp(std::net::SocketAddr),
    /// Syslog over a unix datagram socket (`/dev/log`).
    Unix(std::path::PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `<PRI>Mmm dd hh:mm:ss tag[pid]: line`
    Rfc3164,
    /// `<PRI>1 timestamp host tag pid - - line`
    Rfc5424,
    /// `<PRI>line`
    Short,
    /// The line alone.
    Raw,
}

/// The runtime API's access levels, lowest first (HAProxy's `level user|operator|admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CliLevel {
    /// Reads counters, no sensitive data, changes nothing.
    User,
    /// Reads everything, makes harmless changes (clears counters and tables).
    Operator,
    /// Everything, including taking servers in and out.
    Admin,
}

/// Where a `stats socket` listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliAddr {
    Unix(std::path::PathBuf),
    Tcp(std::net::SocketAddr),
}

/// One `stats socket` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSocket {
    pub addr: CliAddr,
    /// `mode`: the socket file's permissions (unix sockets).
    pub mode: Option<u32>,
    /// `uid`/`user`, `gid`/`group`: the socket file's owner (unix sockets).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub level: CliLevel,
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
    Http,
}

/// A `resolvers` section.
#[derive(Debug, Clone)]
pub struct ResolversSection {
    pub name: String,
    pub pos: Pos,
    pub nameservers: Vec<SocketAddr>,
    pub parse_resolv_conf: bool,
    /// Attempts per query.
    pub resolve_retries: u32,
    /// Time to wait for one answer.
    pub timeout_resolve: Duration,
    /// How long a failed query is remembered before the name is asked again.
    pub timeout_retry: Duration,
    pub hold: Hold,
    pub accepted_payload_size: u16,
}

/// `hold STATUS PERIOD`: how answers and failures are kept (see src/resolve.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// Upper bound on a valid answer's life (below it the record TTL rules).
    pub valid: Duration,
    /// After NXDOMAIN: the previous answer is still served this long past its expiry; with none,
    /// the negative answer is remembered this long.
    pub nx: Duration,
    pub refused: Duration,
    pub timeout: Duration,
    pub other: Duration,
    /// Accepted for compatibility; gatehouse always uses the newest answer's addresses.
    pub obsolete: Duration,
}

impl Default for Hold {
    fn default() -> Self {
        let s30 = Duration::from_secs(30);
        Hold {
            valid: Duration::from_secs(10),
            nx: s30,
            refused: s30,
            timeout: s30,
            other: s30,
            obsolete: Duration::ZERO,
        }
    }
}

/// What a frontend does with a name it read, for dynamic destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dial {
    /// Connect to the name's address (the sniproxy job).
    #[default]
    Resolved,
    /// Route and log by name, connect to the original destination.
    Original,
    /// Connect to the original destination only if it is among the name's addresses.
    RequireMatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EchPolicy {
    #[default]
    Allow,
    Reject,
}

/// What happens to a connection whose first bytes give no name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Go on without a name: rules run, and a dynamic server dials the original destination.
    #[default]
    Original,
    Reject,
    /// Index into `Config::backends`.
    Backend(usize),
}

/// The `unclassified` settings, one per way of not finding a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unclassified {
    /// `tcp-request inspect-delay` ran out first.
    pub timeout: Fallback,
    /// A ClientHello without SNI (SSLv2-style included), or an HTTP request without Host.
    pub no_sni: Fallback,
    /// Neither TLS nor HTTP.
    pub not_tls: Fallback,
    /// A broken or oversized ClientHello or request head.
    pub malformed: Fallback,
}

/// `tcp-request connection|session|content accept|reject [if|unless COND]`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub action: RuleAction,
    pub cond: Option<Cond>,
}

#[derive(Debug, Clone)]
pub enum RuleAction {
    Accept,
    Reject,
    /// `track-scN KEY [table T]`: count this session under KEY in table T (the section's own by
    /// default), readable as `scN_*`. The table's index is filled in by the validator.
    Track {
        n: usize,
        key: Template,
        table: (Option<String>, usize),
    },
    /// `sc-inc-gpc0(N)`: add one to the tracked entry's gpc0.
    IncGpc0(usize),
}

impl RuleAction {
    /// Accept and reject end the rule list; the others run and go on.
    pub fn verdict(&self) -> Option<bool> {
        match self {
            RuleAction::Accept => Some(true),
            RuleAction::Reject => Some(false),
            _ => None,
        }
    }
}

/// `stick match|on|store-request KEY [table T] [if|unless COND]`.
#[derive(Debug, Clone)]
pub struct StickRule {
    /// Look the key up to choose the server.
    pub matches: bool,
    /// Remember the server the session went to.
    pub stores: bool,
    /// `store-response`: stored from the response (its key reads `res.*` fetches).
    pub response: bool,
    pub key: Template,
    pub table: (Option<String>, usize),
    pub cond: Option<Cond>,
}

/// `use_backend NAME|TEMPLATE [if|unless COND]`.
#[derive(Debug, Clone)]
pub struct UseBackend {
    pub target: BackendChoice,
    pub cond: Option<Cond>,
}

#[derive(Debug, Clone)]
pub enum BackendChoice {
    Static(usize),
    /// A name computed per connection; one that names no backend falls to `default_backend`.
    Dynamic(Template),
}

#[derive(Debug, Clone)]
pub struct Frontend {
    pub name: String,
    pub pos: Pos,
    pub mode: Mode,
    /// Where this frontend's traffic log lines go (its `log` lines, `log global` expanded).
    pub logs: Vec<LogTarget>,
    /// `log-format`: the layout of its log lines instead of tcplog/httplog.
    pub log_format: Option<std::sync::Arc<crate::log::format::LineFormat>>,
    pub binds: Vec<Bind>,
    pub intercepts: Vec<Intercept>,
    pub maxconn: u32,
    pub timeout_client: Option<Duration>,
    /// Index into `Config::backends`.
    pub default_backend: Option<usize>,
    /// Named and anonymous ACLs; conditions refer to them by index.
    pub acls: Vec<Acl>,
    /// `tcp-request connection`: at accept, on the socket's addresses (with `accept-proxy`, those of
    /// the proxy that sends the header).
    pub connection_rules: Vec<Rule>,
    /// `tcp-request session`: after the PROXY header and the TLS handshake, as in HAProxy, on the
    /// client's addresses; with neither, right after the connection rules.
    pub session_rules: Vec<Rule>,
    pub content_rules: Vec<Rule>,
    pub use_backends: Vec<UseBackend>,
    /// Whether connections are peeked at (TLS ClientHello / HTTP head) before routing.
    pub peek: bool,
    /// The longest wait for the first bytes (`tcp-request inspect-delay`).
    pub inspect_delay: Duration,
    pub dial: Dial,
    pub ech: EchPolicy,
    pub unclassified: Unclassified,
    pub http: HttpSettings,
    /// Its own `stick-table`, if it has one (index into `Config::tables`).
    pub table: Option<usize>,
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
    /// `ssl crt …`: TLS is terminated on this bind (the configuration built, certificates loaded).
    pub tls: Option<std::sync::Arc<crate::tls::BindTls>>,
    /// `accept-proxy`: every connection starts with a PROXY protocol header (v1 or v2), whose
    /// addresses become the session's client and original destination.
    pub accept_proxy: bool,
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
    pub balance: Balance,
    pub hash_type: HashType,
    /// `retries`: further connect attempts after the first fails (HAProxy's default: 3).
    pub retries: u32,
    /// `option redispatch`: the last retry goes to another server.
    pub redispatch: bool,
    /// `option allbackups`: use every backup server at once, not only the first.
    pub allbackups: bool,
    /// `timeout check`: how long a health check may take (default: `inter`).
    pub timeout_check: Option<Duration>,
    /// `timeout queue`: how long a session may wait for a server slot (default: `timeout connect`).
    pub timeout_queue: Option<Duration>,
    /// What the health checks of its servers do.
    pub check_kind: CheckKind,
    pub stick_rules: Vec<StickRule>,
    /// The section's ACLs, for its `stick` rules' conditions.
    pub acls: Vec<Acl>,
    /// Open-proxy guard for dynamic servers: the names they may dial.
    pub allow_names: NamePolicy,
    /// Private networks dynamic servers may dial.
    pub allow_nets: Vec<IpNet>,
    pub http: HttpSettings,
}

impl Backend {
    /// Whether the balance algorithm needs the client's first bytes (a request or a hello).
    pub fn balance_reads_content(&self) -> bool {
        match &self.balance {
            Balance::Hash(t) => t.needs_content(),
            Balance::Uri { .. }
            | Balance::UrlParam(_)
            | Balance::Hdr { .. }
            | Balance::RdpCookie(_) => true,
            _ => false,
        }
    }

    pub fn has_dynamic_server(&self) -> bool {
        self.servers
            .iter()
            .any(|s| matches!(s.target, ServerTarget::Dynamic { .. }))
    }

    /// Whether a server's `sni EXPR` reads the client's first bytes (`req.hdr(host)`,
    /// `req.ssl_sni`).
    pub fn sni_reads_content(&self) -> bool {
        self.servers
            .iter()
            .any(|s| s.sni.as_ref().is_some_and(|e| e.fetch.needs_content()))
    }
}

#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    pub pos: Pos,
    pub target: ServerTarget,
    /// A per-server `source` overrides the backend's.
    pub source: Option<Source>,
    /// `resolvers NAME`: the section's name and index in `Config::resolvers`.
    pub resolvers: Option<(String, usize)>,
    /// `resolve-prefer`: the family tried first (happy eyeballs otherwise starts with IPv6).
    pub prefer: Option<Family>,
    /// `init-addr`: what to use while a name server has no address yet.
    pub init_addr: Vec<InitAddr>,
    /// Share of the traffic relative to the backend's other servers (0 to 256; 0 = none unless alone).
    pub weight: u32,
    /// Sessions at once on this server; more wait in the backend's queue. `None`: no limit.
    pub maxconn: Option<u32>,
    /// How many sessions may wait for this server. `None`: no limit.
    pub maxqueue: Option<u32>,
    /// Used only when no active server is up.
    pub backup: bool,
    /// Administratively down (maintenance) from the start.
    pub disabled: bool,
    pub check: Option<Check>,
    /// After coming up, the weight grows from nothing to full over this long.
    pub slowstart: Option<Duration>,
    /// `on-marked-down shutdown-sessions`: close its sessions when a check marks it down.
    pub shutdown_on_down: bool,
    /// `cookie VALUE`: the persistence cookie value naming this server.
    pub cookie: Option<String>,
    /// `ssl …`: TLS to this server.
    pub tls: Option<std::sync::Arc<crate::tls::ServerTls>>,
    /// `sni EXPR`: the name sent in the server handshake, computed per session.
    pub sni: Option<crate::rules::sample::Expr>,
    /// Health checks over TLS with these settings (`check-ssl`, or `ssl` with no check `port`/`addr`).
    pub check_tls: Option<std::sync::Arc<crate::tls::ServerTls>>,
    /// `check-sni NAME`: the name health checks send in their handshake.
    pub check_sni: Option<String>,
    /// The PROXY header health checks open with (`send-proxy*` with no check `port`/`addr`, or
    /// `check-send-proxy`): v1 `UNKNOWN` or v2 `LOCAL`.
    pub check_proxy: Option<SendProxy>,
    /// `send-proxy` / `send-proxy-v2`: a PROXY header opens every connection to this server.
    pub send_proxy: Option<SendProxy>,
}

/// Which PROXY header a server gets (`send-proxy`, `send-proxy-v2`, `proxy-v2-options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendProxy {
    /// The binary version 2 rather than the text line of version 1.
    pub v2: bool,
    /// v2 only: the authority TLV (the client's SNI, or the authority a PROXY header brought).
    pub authority: bool,
    /// v2 only: a CRC32C checksum TLV.
    pub crc32c: bool,
    /// `proxy-in-tls` (gatehouse): written inside the TLS session, after the handshake, where TLS
    /// authenticates it (HAProxy writes it before the handshake, in clear).
    pub in_tls: bool,
}

/// Health checking of one server (`check` and its settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Where to check, if not the server's own address and port.
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    /// Interval between checks while the state is stable.
    pub inter: Duration,
    /// Interval while the state is changing (after a failure on an up server, or a success on a
    /// down one).
    pub fastinter: Duration,
    /// Interval while down.
    pub downinter: Duration,
    /// Consecutive successes to be marked up.
    pub rise: u32,
    /// Consecutive failures to be marked down.
    pub fall: u32,
}

/// What a health check does (the backend's `option httpchk` / `ssl-hello-chk` / `tcp-check`).
#[derive(Debug, Clone, Default)]
pub enum CheckKind {
    /// A TCP connect.
    #[default]
    Tcp,
    Http(HttpCheck),
    /// Send an SSLv3-compatible ClientHello, expect a handshake record back.
    SslHello,
    Script(Vec<TcpStep>),
}

#[derive(Debug, Clone)]
pub struct HttpCheck {
    pub method: String,
    pub uri: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// `None`: a 2xx or 3xx status.
    pub expect: Option<Expect>,
}

impl Default for HttpCheck {
    fn default() -> Self {
        HttpCheck {
            method: "OPTIONS".into(),
            uri: "/".into(),
            version: "HTTP/1.0".into(),
            headers: Vec::new(),
            body: String::new(),
            expect: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Expect {
    pub negate: bool,
    pub what: ExpectWhat,
}

#[derive(Debug, Clone)]
pub enum ExpectWhat {
    /// Status codes or ranges.
    Status(Vec<(u16, u16)>),
    RStatus(regex::Regex),
    /// Text in the response.
    String(String),
    RString(regex::Regex),
}

#[derive(Debug, Clone)]
pub enum TcpStep {
    /// (Re)connect, optionally to another port.
    Connect(Option<u16>),
    Send(Vec<u8>),
    Expect(Expect),
}

/// A `stick-table` line (the table is named after its section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickTableDef {
    pub name: String,
    pub key_type: KeyType,
    /// Most entries.
    pub size: usize,
    /// Entries unused this long are dropped.
    pub expire: Option<Duration>,
    pub store: Vec<DataType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ip,
    Ipv6,
    Integer,
    /// Strings, cut to this many bytes.
    String(usize),
    Binary(usize),
}

/// A data type a stick table stores; rates carry their period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    ServerId,
    ConnCnt,
    ConnCur,
    ConnRate(Duration),
    SessCnt,
    SessRate(Duration),
    HttpReqCnt,
    HttpReqRate(Duration),
    HttpErrCnt,
    HttpErrRate(Duration),
    BytesInCnt,
    BytesOutCnt,
    BytesInRate(Duration),
    BytesOutRate(Duration),
    Gpc0,
    Gpc0Rate(Duration),
    Gpt0,
}

/// `balance`: how a backend picks a server. See docs/balancing.md.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Balance {
    /// Smooth weighted round robin; weights can change at run time.
    #[default]
    RoundRobin,
    /// Weighted round robin from a fixed sequence.
    StaticRr,
    /// The server with the fewest sessions for its weight.
    LeastConn,
    /// The first server (in order) with a free slot.
    First,
    /// A hash of the client's address.
    Source,
    /// Random, or the least loaded of N random draws (`random(N)`).
    Random(u32),
    /// A hash of a sample (`hash req.ssl_sni`).
    Hash(crate::rules::sample::Template),
    /// A hash of the request URI (`whole`: with the query; `len`, `depth`: only part of the path).
    Uri {
        whole: bool,
        len: usize,
        depth: usize,
    },
    /// A hash of a query-string parameter.
    UrlParam(String),
    /// A hash of a request header (`use_domain_only`: the registered domain part of a Host).
    Hdr { name: String, domain_only: bool },
    /// A hash of the RDP cookie (`mstshash` unless named) in the client's first bytes.
    RdpCookie(String),
}

/// `hash-type`: how hash-based algorithms map keys to servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashType {
    /// Modulo the total weight: even, but most keys move when a server comes or goes.
    #[default]
    MapBased,
    /// A hash ring: when a server leaves, only its keys move.
    Consistent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitAddr {
    /// HAProxy's server-state file; gatehouse has none, so this is skipped.
    Last,
    /// The system resolver (getaddrinfo) at start-up.
    Libc,
    /// Start without an address.
    None,
    Ip(IpAddr),
}

/// Where a server connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTarget {
    /// An address; without a port (or with `+N`/`-N`) the port follows the client's, as in HAProxy.
    Fixed(IpAddr, PortSpec),
    /// `0.0.0.0`, `*` or `::`: the connection's original destination address.
    OrigDst(PortSpec),
    /// A host name, resolved at start and again as its TTL runs out.
    Name { host: String, port: PortSpec },
    /// A name computed per connection (`%[req.ssl_sni]`), resolved per connection.
    Dynamic { name: Template, port: PortSpec },
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

/// How an HTTP connection is kept between requests (`option http-keep-alive|http-server-close|httpclose`).
/// When the frontend and the backend say different things, the stronger closing wins, as in HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum HttpConnMode {
    /// Both sides stay open between requests (HAProxy's default since 1.7).
    #[default]
    KeepAlive,
    /// The client side stays open; the server connection closes after each response.
    ServerClose,
    /// Both sides close after each response.
    Close,
}

/// `option forwardfor [except CIDR] [header NAME] [if-none]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardFor {
    pub except: Vec<IpNet>,
    pub header: Option<String>,
    /// `if-none`: add the header only when the request has none.
    pub if_none: bool,
}

/// One `http-request` / `http-response` rule (and the older `redirect` and `block` spellings).
#[derive(Debug, Clone)]
pub struct HttpRule {
    pub action: HttpAction,
    pub cond: Option<Cond>,
    /// Which keyword wrote it: HAProxy runs `block` lines, then `http-request`, then `redirect`.
    pub phase: RulePhase,
}

/// The order in which HAProxy runs a section's request rules, whatever order they are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RulePhase {
    Block,
    HttpRequest,
    Redirect,
}

#[derive(Debug, Clone)]
pub enum HttpAction {
    /// Stops evaluating this section's rules; the request goes on.
    Allow,
    /// Answers with this status (the errorfile for it if any) and closes.
    Deny {
        status: u16,
    },
    /// `http-request reject`: closes without answering.
    Reject,
    Redirect(Redirect),
    /// Replaces every header of that name with one line (`http-request set-header`).
    SetHeader(String, Template),
    AddHeader(String, Template),
    DelHeader(String),
    /// `http-request set-path FMT`: the path changes, the query stays.
    SetPath(Template),
    /// `http-request use-service prometheus-exporter`: gatehouse answers with its metrics.
    Prometheus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    /// `Location: PREFIX` + the original path and query.
    Prefix,
    /// `Location: TEXT` as written.
    Location,
    /// `Location: SCHEME://` + the request's Host + path and query.
    Scheme,
}

#[derive(Debug, Clone)]
pub struct Redirect {
    pub kind: RedirectKind,
    pub to: Template,
    /// 301, 302 (the default), 303, 307 or 308.
    pub code: u16,
    /// `drop-query`: the query string is not carried over (prefix and scheme).
    pub drop_query: bool,
    /// `append-slash`: with drop-query, a `/` is added when the path has none at its end.
    pub append_slash: bool,
}

/// `cookie NAME insert|rewrite|prefix …` in a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    pub name: String,
    pub mode: CookieMode,
    /// With insert: the cookie is not sent on to the server, and not set again when the client
    /// already has the right one.
    pub indirect: bool,
    /// With insert: responses that set the cookie are marked uncacheable.
    pub nocache: bool,
    pub httponly: bool,
    pub secure: bool,
    /// With insert: only responses to POST requests set it.
    pub postonly: bool,
    /// `preserve`: a cookie the server sets itself is left alone.
    pub preserve: bool,
    /// With insert: a cookie idle (not seen) for longer is ignored.
    pub maxidle: Option<Duration>,
    /// With insert: a cookie older than this is ignored.
    pub maxlife: Option<Duration>,
    /// `domain D` (several allowed): the Domain attribute of the inserted cookie.
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieMode {
    /// gatehouse adds a `Set-Cookie: NAME=server` to responses.
    Insert,
    /// The server sets NAME itself; its value is replaced by the server's cookie value.
    Rewrite,
    /// The server sets NAME; the server's cookie value is put in front of its value (`srv~value`).
    Prefix,
}

/// `stats enable|uri|auth|realm|hide-version|refresh` in a frontend, listen or backend. The page
/// itself is the operations issue's (#5); here the URI is intercepted and its authentication enforced.
#[derive(Debug, Clone)]
pub struct StatsSettings {
    pub uri: String,
    /// `stats auth USER:PASS` (several); empty = no authentication.
    pub auth: Vec<(String, String)>,
    pub realm: String,
    pub hide_version: bool,
    pub refresh: Option<Duration>,
    /// `stats admin if COND`: who may enable, disable and drain servers from the page.
    pub admin: Option<crate::rules::Cond>,
}

/// What a section says about `mode http`. Frontend and backend each have one; per request the two
/// are combined (connection mode: the stronger close; forwardfor: the backend's, else the frontend's;
/// error files: the backend's, else the frontend's).
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    pub conn_mode: Option<HttpConnMode>,
    pub forwardfor: Option<ForwardFor>,
    /// `timeout http-request`: the whole request head must arrive within this.
    pub timeout_request: Option<Duration>,
    /// `timeout http-keep-alive`: the next request must start within this.
    pub timeout_keep_alive: Option<Duration>,
    pub request_rules: Vec<HttpRule>,
    pub response_rules: Vec<HttpRule>,
    /// `errorfile CODE FILE`: the complete HTTP response sent for that status.
    pub errorfiles: Vec<(u16, std::sync::Arc<[u8]>)>,
    pub cookie: Option<CookieSettings>,
    /// `option httplog`: one httplog line per request.
    pub httplog: bool,
    /// `option dontlognull`: no log line for a connection that sent nothing.
    pub dontlognull: bool,
    pub stats: Option<StatsSettings>,
}

impl HttpSettings {
    pub fn errorfile(&self, status: u16) -> Option<&std::sync::Arc<[u8]>> {
        self.errorfiles
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, b)| b)
    }
}

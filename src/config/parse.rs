//! Step 2 of 3: lines → section drafts, through one keyword table per section kind.
//!
//! Each keyword is either handled (its arguments parsed into the draft), ignored with a warning (HAProxy
//! directives that make no sense for gatehouse), or refused as "not supported yet" naming the issue that
//! brings it. Unknown keywords get the nearest known spelling. Parsing goes on after an error so that one
//! `-c` run reports every problem, as `haproxy -c` does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use super::Diagnostic;
use super::lexer::{Line, Pos};
use super::model::{
    Balance, Bind, Check, Dial, EchPolicy, Families, Family, FirewallBackend, HashType, Hold,
    HttpConnMode, InitAddr, LogTarget, Mode, PlumbingSettings, PortRange, PortSpec,
    ResolversSection, Rule, Selector, Server, ServerTarget, Source, StatsSocket, UseSrc,
};
use crate::guard::NamePolicy;
use crate::rules::sample::Template;
use crate::rules::{Acl, Cond, MapCache};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    Global,
    Defaults,
    Frontend,
    Backend,
    Listen,
}

impl SectionKind {
    fn bit(self) -> u8 {
        match self {
            SectionKind::Global => G,
            SectionKind::Defaults => D,
            SectionKind::Frontend => F,
            SectionKind::Backend => B,
            SectionKind::Listen => L,
        }
    }
    fn name(self) -> &'static str {
        match self {
            SectionKind::Global => "global",
            SectionKind::Defaults => "defaults",
            SectionKind::Frontend => "frontend",
            SectionKind::Backend => "backend",
            SectionKind::Listen => "listen",
        }
    }
    pub fn is_frontend(self) -> bool {
        matches!(self, SectionKind::Frontend | SectionKind::Listen)
    }
    pub fn is_backend(self) -> bool {
        matches!(self, SectionKind::Backend | SectionKind::Listen)
    }
}

const G: u8 = 1;
const D: u8 = 2;
const F: u8 = 4;
const B: u8 = 8;
const L: u8 = 16;
const FE: u8 = D | F | L;
const BE: u8 = D | B | L;
const PX: u8 = D | F | B | L;

/// What the global section says, before validation.
#[derive(Debug, Clone, Default)]
pub struct GlobalDraft {
    pub maxconn: Option<u32>,
    pub pidfile: Option<std::path::PathBuf>,
    pub nbthread: Option<usize>,
    pub plumbing: PlumbingSettings,
    pub stats_sockets: Vec<StatsSocket>,
    pub stats_timeout: Option<Duration>,
    pub hard_stop_after: Option<Duration>,
    /// `tune.idle-park`: quiet time after which a spliced session parks (0: never).
    pub idle_park: Option<Duration>,
    pub logs: Vec<LogTarget>,
    /// Some `log` line was seen anywhere (else traffic logs go to standard output).
    pub log_seen: bool,
    /// Where the marks were set, for the check that they differ.
    pub marks_pos: Option<Pos>,
    /// Map files read so far, shared by every line that names one.
    pub maps: MapCache,
    /// `user`/`uid`: whom to run as once bound and plumbed.
    pub user: Option<UserDraft>,
    /// A `user`/`uid` line was written, even one in error (so a missing user is not also reported
    /// as a group without a user).
    pub user_seen: bool,
    /// `group`/`gid`, with where it was written.
    pub group: Option<(u32, Pos)>,
    /// `crt-base` / `ca-base`: where relative certificate and CA paths are.
    pub crt_base: Option<std::path::PathBuf>,
    pub ca_base: Option<std::path::PathBuf>,
}

/// A `user NAME` or `uid N` line.
#[derive(Debug, Clone)]
pub struct UserDraft {
    pub uid: u32,
    /// The user's login group from the user database, used when no `group`/`gid` line says.
    pub login_gid: Option<u32>,
    pub pos: Pos,
}

/// What a defaults/frontend/backend/listen section says. Sections start as a copy of the defaults
/// section before them, which is how HAProxy's inheritance works.
#[derive(Debug, Clone)]
pub struct ProxyDraft {
    pub kind: SectionKind,
    pub name: String,
    pub pos: Pos,
    pub mode: Option<Mode>,
    pub maxconn: Option<u32>,
    pub timeout_connect: Option<Duration>,
    pub timeout_client: Option<Duration>,
    pub timeout_server: Option<Duration>,
    pub timeout_tunnel: Option<Duration>,
    pub binds: Vec<Bind>,
    pub intercepts: Vec<InterceptDraft>,
    pub default_backend: Option<(String, Pos)>,
    pub servers: Vec<Server>,
    pub source: Option<Source>,
    pub acls: Vec<Acl>,
    pub connection_rules: Vec<Rule>,
    pub session_rules: Vec<Rule>,
    pub content_rules: Vec<Rule>,
    pub use_backends: Vec<UseBackendDraft>,
    pub inspect_delay: Option<Duration>,
    pub dial: Option<(Dial, Pos)>,
    pub ech: Option<EchPolicy>,
    /// timeout, no-sni, not-tls, malformed.
    pub unclassified: [Option<(FallbackDraft, Pos)>; 4],
    pub allow_names: NamePolicy,
    pub allow_names_pos: Option<Pos>,
    pub allow_nets: Vec<IpNet>,
    /// `default-server` options, for the servers that follow.
    pub default_server: servers::ServerOpts,
    pub balance: Option<Balance>,
    pub hash_type: Option<HashType>,
    pub retries: Option<u32>,
    pub redispatch: Option<bool>,
    pub allbackups: Option<bool>,
    pub timeout_check: Option<Duration>,
    pub timeout_queue: Option<Duration>,
    pub check_kind: Option<super::model::CheckKind>,
    pub table: Option<super::model::StickTableDef>,
    pub stick_rules: Vec<super::model::StickRule>,
    pub http: super::model::HttpSettings,
    /// `log` lines (inherited from defaults, added to by the section's own; `no log` empties).
    pub logs: Vec<log::LogLine>,
    /// `no log` was the last word on logging here: silent even where gatehouse's default (standard
    /// output when no `log` line exists anywhere) would apply.
    pub no_log: bool,
    pub log_format: Option<std::sync::Arc<crate::log::format::LineFormat>>,
}

#[derive(Debug, Clone)]
pub enum FallbackDraft {
    Original,
    Reject,
    Backend(String),
}

#[derive(Debug, Clone)]
pub struct UseBackendDraft {
    pub pos: Pos,
    pub target: Result<Template, String>,
    pub cond: Option<Cond>,
}

#[derive(Debug, Clone)]
pub struct InterceptDraft {
    pub pos: Pos,
    pub to: Option<String>,
    pub family: Option<Families>,
    pub dports: Vec<PortRange>,
    pub iif: Selector<String>,
    pub src: Selector<IpNet>,
    pub dst: Selector<IpNet>,
}

#[derive(Debug, Default)]
pub struct Drafts {
    pub global: GlobalDraft,
    pub proxies: Vec<ProxyDraft>,
    pub resolvers: Vec<ResolversSection>,
}

mod checks;
mod content;
pub mod http;
pub mod log;
mod resolvers;
mod servers;

type Handler = fn(&mut Section<'_>, &[String]) -> Result<(), String>;

enum Act {
    Handle(Handler),
    /// An option that `no` can turn off (`option redispatch` / `no option redispatch`).
    Flag(fn(&mut ProxyDraft, bool)),
    /// Accepted and ignored, with a warning saying why.
    Ignore(&'static str),
    /// Recognised and refused, with the message given.
    Refuse(&'static str),
}

struct Kw {
    name: &'static str,
    sections: u8,
    act: Act,
}

const fn kw(name: &'static str, sections: u8, act: Act) -> Kw {
    Kw {
        name,
        sections,
        act,
    }
}

const MODERN_CIPHERS: &str = "rustls offers only modern cipher suites and groups";

/// Every keyword gatehouse knows, in any section. Two-word entries (`timeout connect`) are matched first.
static KEYWORDS: &[Kw] = &[
    // global
    kw("maxconn", G | FE, Act::Handle(h_maxconn)),
    kw("pidfile", G, Act::Handle(h_pidfile)),
    kw("nbthread", G, Act::Handle(h_nbthread)),
    kw("plumbing", G, Act::Handle(h_plumbing)),
    kw("tproxy-mark", G, Act::Handle(h_tproxy_mark)),
    kw("tproxy-table", G, Act::Handle(h_tproxy_table)),
    kw("tproxy-rule-pref", G, Act::Handle(h_tproxy_rule_pref)),
    kw("outbound-mark", G, Act::Handle(h_outbound_mark)),
    kw(
        "daemon",
        G,
        Act::Ignore("gatehouse runs in the foreground; let systemd supervise it"),
    ),
    kw(
        "chroot",
        G,
        Act::Ignore("gatehouse needs no chroot: it opens no files after start-up"),
    ),
    kw(
        "nbproc",
        G,
        Act::Ignore("gatehouse is one process; threads follow nbthread"),
    ),
    kw(
        "spread-checks",
        G,
        Act::Ignore("gatehouse runs each server's checks on its own timer, without extra spread"),
    ),
    kw("user", G, Act::Handle(h_user)),
    kw("group", G, Act::Handle(h_group)),
    kw("uid", G, Act::Handle(h_uid)),
    kw("gid", G, Act::Handle(h_gid)),
    kw(
        "quiet",
        G,
        Act::Ignore("gatehouse prints only warnings and errors at start-up"),
    ),
    kw(
        "master-worker",
        G,
        Act::Ignore("gatehouse has no master process; SIGHUP reloads the configuration in place"),
    ),
    kw(
        "description",
        G | PX,
        Act::Ignore("descriptions are not shown yet"),
    ),
    kw("node", G, Act::Ignore("node names are not shown yet")),
    kw("log", G | PX, Act::Handle(log::h_log)),
    kw("log-format", D | F | L, Act::Handle(log::h_log_format)),
    kw("stats", G | PX, Act::Handle(http::h_stats)),
    kw("hard-stop-after", G, Act::Handle(h_hard_stop_after)),
    kw("tune.idle-park", G, Act::Handle(h_idle_park)),
    kw(
        "localpeer",
        G,
        Act::Refuse("peers (stick-table replication) are not supported yet; remove the line"),
    ),
    kw("ca-base", G, Act::Handle(h_ca_base)),
    kw("crt-base", G, Act::Handle(h_crt_base)),
    kw("ssl-default-bind-ciphers", G, Act::Ignore(MODERN_CIPHERS)),
    kw(
        "ssl-default-bind-ciphersuites",
        G,
        Act::Ignore(MODERN_CIPHERS),
    ),
    kw("ssl-default-server-ciphers", G, Act::Ignore(MODERN_CIPHERS)),
    kw(
        "ssl-default-server-ciphersuites",
        G,
        Act::Ignore(MODERN_CIPHERS),
    ),
    kw(
        "ssl-default-bind-options",
        G,
        Act::Handle(h_ssl_default_options),
    ),
    kw(
        "ssl-default-server-options",
        G,
        Act::Handle(h_ssl_default_options),
    ),
    // proxies
    kw("mode", PX, Act::Handle(h_mode)),
    kw("bind", F | L, Act::Handle(h_bind)),
    kw("intercept", F | L, Act::Handle(h_intercept)),
    kw("default_backend", FE, Act::Handle(h_default_backend)),
    kw("server", B | L, Act::Handle(h_server)),
    kw("source", BE, Act::Handle(h_source)),
    kw("timeout connect", BE, Act::Handle(h_timeout_connect)),
    kw("timeout client", FE, Act::Handle(h_timeout_client)),
    kw("timeout server", BE, Act::Handle(h_timeout_server)),
    kw("timeout queue", BE, Act::Handle(h_timeout_queue)),
    kw("timeout check", BE, Act::Handle(h_timeout_check)),
    kw("timeout tunnel", BE, Act::Handle(h_timeout_tunnel)),
    kw(
        "timeout http-request",
        FE,
        Act::Handle(http::h_timeout_http_request),
    ),
    kw(
        "timeout http-keep-alive",
        PX,
        Act::Handle(http::h_timeout_http_keep_alive),
    ),
    kw(
        "timeout client-fin",
        FE,
        Act::Ignore("a half-closed client side ends with timeout client"),
    ),
    kw(
        "timeout server-fin",
        BE,
        Act::Ignore("a half-closed server side ends with timeout server"),
    ),
    kw("balance", BE, Act::Handle(h_balance)),
    kw("option tcplog", FE, Act::Handle(h_noop)),
    kw(
        "option splice-auto",
        PX,
        Act::Ignore("gatehouse splices plain TCP automatically"),
    ),
    kw(
        "option splice-request",
        PX,
        Act::Ignore("gatehouse splices plain TCP automatically"),
    ),
    kw(
        "option splice-response",
        PX,
        Act::Ignore("gatehouse splices plain TCP automatically"),
    ),
    kw(
        "option transparent",
        BE,
        Act::Refuse(
            "HAProxy removed 'option transparent' in 3.5; write 'server NAME 0.0.0.0' to reach the original destination",
        ),
    ),
    kw("option httplog", FE, Act::Handle(http::h_httplog)),
    kw(
        "option dontlognull",
        FE,
        Act::Flag(|p, on| p.http.dontlognull = on),
    ),
    kw(
        "option log-health-checks",
        BE,
        Act::Ignore("gatehouse logs every server state change its checks make already"),
    ),
    kw(
        "option http-server-close",
        PX,
        Act::Flag(|p, on| http::set_conn_mode(p, HttpConnMode::ServerClose, on)),
    ),
    kw(
        "option httpclose",
        PX,
        Act::Flag(|p, on| http::set_conn_mode(p, HttpConnMode::Close, on)),
    ),
    kw(
        "option http-keep-alive",
        PX,
        Act::Flag(|p, on| http::set_conn_mode(p, HttpConnMode::KeepAlive, on)),
    ),
    kw("option forwardfor", PX, Act::Handle(http::h_forwardfor)),
    kw(
        "option redispatch",
        BE,
        Act::Flag(|p, on| p.redispatch = Some(on)),
    ),
    kw(
        "option allbackups",
        BE,
        Act::Flag(|p, on| p.allbackups = Some(on)),
    ),
    kw("option httpchk", BE, Act::Handle(checks::h_option_httpchk)),
    kw(
        "option ssl-hello-chk",
        BE,
        Act::Handle(checks::h_option_ssl_hello_chk),
    ),
    kw(
        "option tcp-check",
        BE,
        Act::Handle(checks::h_option_tcp_check),
    ),
    kw(
        "option tcpka",
        PX,
        Act::Ignore(
            "gatehouse sets no TCP keep-alive probes; idle connections end by their timeouts",
        ),
    ),
    kw(
        "option clitcpka",
        FE,
        Act::Ignore(
            "gatehouse sets no TCP keep-alive probes; idle connections end by their timeouts",
        ),
    ),
    kw(
        "option srvtcpka",
        BE,
        Act::Ignore(
            "gatehouse sets no TCP keep-alive probes; idle connections end by their timeouts",
        ),
    ),
    kw(
        "option abortonclose",
        BE,
        Act::Refuse("'option abortonclose' is not supported; remove the line"),
    ),
    kw("retries", BE, Act::Handle(h_retries)),
    kw("default-server", BE, Act::Handle(h_default_server)),
    kw("hash-type", BE, Act::Handle(h_hash_type)),
    kw("cookie", BE, Act::Handle(http::h_cookie)),
    kw(
        "stick-table",
        F | B | L,
        Act::Handle(content::h_stick_table),
    ),
    kw("stick", B | L, Act::Handle(content::h_stick)),
    kw(
        "fullconn",
        BE,
        Act::Ignore("it only scales minconn, which gatehouse does not have"),
    ),
    kw("http-check", BE, Act::Handle(checks::h_http_check)),
    kw("tcp-check", BE, Act::Handle(checks::h_tcp_check)),
    kw("http-request", F | B | L, Act::Handle(http::h_http_request)),
    kw(
        "http-response",
        F | B | L,
        Act::Handle(http::h_http_response),
    ),
    kw("redirect", F | B | L, Act::Handle(http::h_redirect)),
    kw("block", F | B | L, Act::Handle(http::h_block)),
    kw("errorfile", PX, Act::Handle(http::h_errorfile)),
    kw(
        "capture",
        F | L,
        Act::Refuse(
            "header captures are not supported; remove the line (the httplog line shows '-' for the captured headers, and log-format's %hr/%hs print '-')",
        ),
    ),
    kw("acl", F | B | L, Act::Handle(content::h_acl)),
    kw("use_backend", F | L, Act::Handle(content::h_use_backend)),
    kw("tcp-request", FE, Act::Handle(content::h_tcp_request)),
    kw(
        "tcp-response",
        BE,
        Act::Refuse("'tcp-response' rules are not supported; remove the line"),
    ),
    kw("dial-resolved", FE, Act::Handle(content::h_dial_resolved)),
    kw("dial-original", FE, Act::Handle(content::h_dial_original)),
    kw("require-match", FE, Act::Handle(content::h_require_match)),
    kw("ech", FE, Act::Handle(content::h_ech)),
    kw("unclassified", FE, Act::Handle(content::h_unclassified)),
    kw("allow-name", BE, Act::Handle(content::h_allow_name)),
    kw("allow-net", BE, Act::Handle(content::h_allow_net)),
];

/// Sections gatehouse recognises but does not parse yet.
const LATER_SECTIONS: &[(&str, &str)] = &[
    (
        "peers",
        "stick-table replication is not planned in an issue yet (tables are local to one gatehouse)",
    ),
    ("userlist", "they arrive with the stats page (issue #5)"),
    (
        "http-errors",
        "write 'errorfile CODE FILE' in the proxy sections instead",
    ),
    ("cache", "gatehouse does not cache responses"),
    ("mailers", "email alerts are not planned; use the log"),
    ("ring", "they arrive with logging (issue #5)"),
    ("log-forward", "they arrive with logging (issue #5)"),
];

/// Per-directive state handed to handlers.
struct Section<'a> {
    global: &'a mut GlobalDraft,
    proxy: Option<&'a mut ProxyDraft>,
    pos: &'a Pos,
    /// Warnings a handler wants reported (rare; errors are its return value).
    warnings: Vec<String>,
}

impl Section<'_> {
    fn px(&mut self) -> &mut ProxyDraft {
        self.proxy
            .as_deref_mut()
            .expect("keyword tables only route proxy keywords to proxy sections")
    }
    fn kind(&self) -> SectionKind {
        self.proxy
            .as_deref()
            .map_or(SectionKind::Global, |p| p.kind)
    }
}

pub fn parse(lines: &[Line], diags: &mut Vec<Diagnostic>) -> Drafts {
    let mut drafts = Drafts::default();
    // The defaults in force, as a template for the next proxy section.
    let mut defaults: Option<ProxyDraft> = None;
    // Index of the current section in `drafts.proxies`, or Global, or a skipped section.
    enum Cur {
        None,
        Global,
        Defaults,
        Proxy(usize),
        Resolvers(usize),
        Skipped,
    }
    let mut cur = Cur::None;
    fn err(diags: &mut Vec<Diagnostic>, pos: &Pos, msg: String) {
        diags.push(Diagnostic::error(pos.clone(), msg));
    }

    let mut file: Option<&str> = None;
    for line in lines {
        // A section never runs on into the next -f file (defaults still apply there).
        if file != Some(&*line.pos.file) {
            file = Some(&line.pos.file);
            cur = Cur::None;
        }
        let w = &line.words;
        let head = w[0].as_str();
        let kind = match head {
            "global" => Some(SectionKind::Global),
            "defaults" => Some(SectionKind::Defaults),
            "frontend" => Some(SectionKind::Frontend),
            "backend" => Some(SectionKind::Backend),
            "listen" => Some(SectionKind::Listen),
            _ => None,
        };
        if let Some(kind) = kind {
            match kind {
                SectionKind::Global => cur = Cur::Global,
                SectionKind::Defaults => {
                    let name = w.get(1).cloned().unwrap_or_default();
                    defaults = Some(new_proxy(None, kind, name, &line.pos));
                    cur = Cur::Defaults;
                }
                _ => {
                    let Some(name) = w.get(1) else {
                        err(
                            diags,
                            &line.pos,
                            format!("'{head}' needs a name; write '{head} NAME'"),
                        );
                        cur = Cur::Skipped;
                        continue;
                    };
                    let mut px = new_proxy(defaults.as_ref(), kind, name.clone(), &line.pos);
                    // `listen NAME ADDR:PORT`, the old inline bind.
                    if kind == SectionKind::Listen && w.len() > 2 {
                        let mut sec = Section {
                            global: &mut drafts.global,
                            proxy: Some(&mut px),
                            pos: &line.pos,
                            warnings: Vec::new(),
                        };
                        if let Err(e) = h_bind(&mut sec, &w[2..]) {
                            err(diags, &line.pos, e);
                        }
                    } else if w.len() > 2 {
                        err(
                            diags,
                            &line.pos,
                            format!(
                                "unexpected '{}' after the {} name; remove it",
                                w[2],
                                kind.name()
                            ),
                        );
                    }
                    drafts.proxies.push(px);
                    cur = Cur::Proxy(drafts.proxies.len() - 1);
                }
            }
            continue;
        }
        if head == "resolvers" {
            match w.get(1) {
                Some(name) if w.len() == 2 => {
                    if let Some(prev) = drafts.resolvers.iter().find(|r| &r.name == name) {
                        err(
                            diags,
                            &line.pos,
                            format!(
                                "resolvers '{name}' is already defined at {}; rename one of them",
                                prev.pos
                            ),
                        );
                        cur = Cur::Skipped;
                    } else {
                        drafts
                            .resolvers
                            .push(resolvers::new_section(name, &line.pos));
                        cur = Cur::Resolvers(drafts.resolvers.len() - 1);
                    }
                }
                _ => {
                    err(diags, &line.pos, "write 'resolvers NAME'".into());
                    cur = Cur::Skipped;
                }
            }
            continue;
        }
        if let Cur::Resolvers(i) = cur {
            match resolvers::directive(&mut drafts.resolvers[i], w) {
                Ok(None) => {}
                Ok(Some(warning)) => diags.push(Diagnostic::warning(line.pos.clone(), warning)),
                Err(e) => err(diags, &line.pos, e),
            }
            continue;
        }
        if let Some((_, what)) = LATER_SECTIONS.iter().find(|(n, _)| *n == head) {
            err(
                diags,
                &line.pos,
                format!("'{head}' sections are not supported yet; {what}"),
            );
            cur = Cur::Skipped;
            continue;
        }
        let (proxy, kind) = match &mut cur {
            Cur::None => {
                err(
                    diags,
                    &line.pos,
                    format!(
                        "'{head}' is outside any section; start one with 'global', 'defaults', 'frontend', 'backend' or 'listen'"
                    ),
                );
                continue;
            }
            Cur::Skipped | Cur::Resolvers(_) => continue,
            Cur::Global => (None, SectionKind::Global),
            Cur::Defaults => (defaults.as_mut(), SectionKind::Defaults),
            Cur::Proxy(i) => {
                let p = &mut drafts.proxies[*i];
                let k = p.kind;
                (Some(p), k)
            }
        };
        let mut sec = Section {
            global: &mut drafts.global,
            proxy,
            pos: &line.pos,
            warnings: Vec::new(),
        };
        let result = directive(&mut sec, kind, w);
        for wmsg in sec.warnings.drain(..) {
            diags.push(Diagnostic::warning(line.pos.clone(), wmsg));
        }
        match result {
            Ok(None) => {}
            Ok(Some(warning)) => diags.push(Diagnostic::warning(line.pos.clone(), warning)),
            Err(e) => diags.push(Diagnostic::error(line.pos.clone(), e)),
        }
    }
    drafts
}

fn new_proxy(
    template: Option<&ProxyDraft>,
    kind: SectionKind,
    name: String,
    pos: &Pos,
) -> ProxyDraft {
    match template {
        Some(t) => ProxyDraft {
            kind,
            name,
            pos: pos.clone(),
            binds: Vec::new(),
            intercepts: Vec::new(),
            servers: Vec::new(),
            acls: Vec::new(),
            connection_rules: Vec::new(),
            session_rules: Vec::new(),
            content_rules: Vec::new(),
            use_backends: Vec::new(),
            table: None,
            stick_rules: Vec::new(),
            http: super::model::HttpSettings {
                request_rules: Vec::new(),
                response_rules: Vec::new(),
                ..t.http.clone()
            },
            ..t.clone()
        },
        None => ProxyDraft {
            kind,
            name,
            pos: pos.clone(),
            mode: None,
            maxconn: None,
            timeout_connect: None,
            timeout_client: None,
            timeout_server: None,
            timeout_tunnel: None,
            binds: Vec::new(),
            intercepts: Vec::new(),
            default_backend: None,
            servers: Vec::new(),
            source: None,
            acls: Vec::new(),
            connection_rules: Vec::new(),
            session_rules: Vec::new(),
            content_rules: Vec::new(),
            use_backends: Vec::new(),
            inspect_delay: None,
            dial: None,
            ech: None,
            unclassified: [None, None, None, None],
            allow_names: NamePolicy::default(),
            allow_names_pos: None,
            allow_nets: Vec::new(),
            default_server: servers::ServerOpts::default(),
            balance: None,
            hash_type: None,
            retries: None,
            redispatch: None,
            allbackups: None,
            timeout_check: None,
            timeout_queue: None,
            check_kind: None,
            table: None,
            stick_rules: Vec::new(),
            http: super::model::HttpSettings::default(),
            logs: Vec::new(),
            no_log: false,
            log_format: None,
        },
    }
}

/// Runs one directive. `Ok(Some(w))` is a warning.
fn directive(
    sec: &mut Section<'_>,
    kind: SectionKind,
    w: &[String],
) -> Result<Option<String>, String> {
    // `no option X` negates an option; the options gatehouse handles have nothing to negate yet.
    let (negated, w) = if w[0] == "no" && w.len() > 1 {
        (true, &w[1..])
    } else {
        (false, w)
    };
    let two = w.get(1).map(|s| format!("{} {}", w[0], s));
    let found = two
        .as_deref()
        .and_then(|t| KEYWORDS.iter().find(|k| k.name == t).map(|k| (k, 2)))
        .or_else(|| KEYWORDS.iter().find(|k| k.name == w[0]).map(|k| (k, 1)))
        .or_else(|| {
            // tune.* is a family of performance knobs, all meaningless here.
            w[0].starts_with("tune.").then_some((&TUNE, 1))
        });
    let Some((k, used)) = found else {
        return Err(unknown(kind, w));
    };
    let spelled = w[..used].join(" ");
    let said = if negated {
        format!("no {spelled}")
    } else {
        spelled.clone()
    };
    if k.sections & kind.bit() == 0 {
        let allowed: Vec<&str> = [
            SectionKind::Global,
            SectionKind::Defaults,
            SectionKind::Frontend,
            SectionKind::Backend,
            SectionKind::Listen,
        ]
        .into_iter()
        .filter(|s| k.sections & s.bit() != 0)
        .map(SectionKind::name)
        .collect();
        let msg = format!(
            "'{spelled}' is not allowed in a {} section; it belongs in {}",
            kind.name(),
            allowed.join(", ")
        );
        // HAProxy warns (and ignores) for proxy keywords in a section without that capability.
        return if kind != SectionKind::Global && k.sections & PX != 0 {
            Ok(Some(format!("{msg}; ignored")))
        } else {
            Err(msg)
        };
    }
    let args = &w[used..];
    if negated && spelled == "log" {
        return log::h_no_log(sec, args).map(|()| None);
    }
    match &k.act {
        Act::Handle(h) if negated => {
            let _ = h;
            Err(format!("'no {spelled}' is not supported; remove the line"))
        }
        Act::Handle(h) => h(sec, args).map(|()| None),
        Act::Flag(set) => match args.first() {
            Some(extra) => Err(format!(
                "'{said}' takes no argument, but '{extra}' was given"
            )),
            None => {
                set(sec.px(), !negated);
                Ok(None)
            }
        },
        Act::Ignore(why) => Ok(Some(format!("'{said}' is ignored: {why}"))),
        Act::Refuse(msg) => Err((*msg).to_string()),
    }
}

static TUNE: Kw = kw(
    "tune.*",
    G,
    Act::Ignore("gatehouse sizes its buffers and pipes itself"),
);

fn unknown(kind: SectionKind, w: &[String]) -> String {
    let typed = if w[0] == "option" || w[0] == "timeout" {
        w.iter().take(2).cloned().collect::<Vec<_>>().join(" ")
    } else {
        w[0].clone()
    };
    let best = KEYWORDS
        .iter()
        .filter(|k| k.sections & kind.bit() != 0)
        .map(|k| (edit_distance(&typed, k.name), k.name))
        .min();
    match best {
        Some((d, name)) if d <= 2.max(typed.len() / 3) => format!(
            "unknown keyword '{typed}' in {} section; did you mean '{name}'?",
            kind.name()
        ),
        _ => format!(
            "unknown keyword '{typed}' in {} section; see docs/configuration.md for the keywords it takes",
            kind.name()
        ),
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---- value parsers ----

/// HAProxy durations: a number with an optional unit (us, ms, s, m, h, d); no unit means milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("'{s}' is not a duration; write a number with a unit, like 5s or 500ms")
    })?;
    let d = match unit {
        "us" => Duration::from_micros(n),
        "" | "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "d" => Duration::from_secs(n * 86400),
        _ => {
            return Err(format!(
                "'{s}' has an unknown time unit '{unit}'; use us, ms, s, m, h or d"
            ));
        }
    };
    Ok(d)
}

/// A decimal or 0x-hexadecimal unsigned number.
pub fn parse_u32(s: &str, what: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("'{s}' is not a valid {what}; write a whole number such as 100 or 0x64"))
}

fn one<'a>(args: &'a [String], usage: &str) -> Result<&'a str, String> {
    match args {
        [a] => Ok(a),
        [] => Err(format!("missing argument; write '{usage}'")),
        [_, extra, ..] => Err(format!("unexpected '{extra}'; write '{usage}'")),
    }
}

/// The host part of an address, with HAProxy's spellings of "any".
fn parse_host(h: &str) -> Result<IpAddr, String> {
    match h {
        "" | "*" => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        _ => h.parse().map_err(|_| format!("'{h}' is not an IP address")),
    }
}

/// Splits `host:port`, `[v6]:port`, `v6:port` (HAProxy takes the last colon) and `ipv4@`/`ipv6@` forms.
/// The port is returned as text, since its meaning differs between bind and server.
fn split_addr(s: &str) -> Result<(IpAddr, Option<&str>), String> {
    let (s, forced) = if let Some(r) = s.strip_prefix("ipv4@") {
        (r, Some(false))
    } else if let Some(r) = s.strip_prefix("ipv6@") {
        (r, Some(true))
    } else {
        (s, None)
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("'{s}' has '[' without ']'; write [ADDR]:PORT"))?;
        let port = match tail {
            "" => None,
            t => Some(
                t.strip_prefix(':')
                    .ok_or_else(|| format!("'{s}': expected ':PORT' after ']'"))?,
            ),
        };
        (h, port)
    } else if s == "::" {
        ("::", None)
    } else if s.parse::<Ipv6Addr>().is_ok()
        && s.contains("::")
        && !s.ends_with(':')
        && s.matches(':').count() > 2
    {
        // A bare IPv6 address with no port (e.g. `2001:db8::1` as a server address).
        (s, None)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let mut ip = parse_host(host)?;
    match (forced, ip) {
        (Some(true), IpAddr::V4(v4)) if v4.is_unspecified() => {
            ip = IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        }
        (Some(true), IpAddr::V4(_)) => return Err(format!("'{s}' is IPv4 but marked ipv6@")),
        (Some(false), IpAddr::V6(_)) => return Err(format!("'{s}' is IPv6 but marked ipv4@")),
        _ => {}
    }
    Ok((ip, port))
}

fn parse_port(p: &str) -> Result<u16, String> {
    p.parse()
        .map_err(|_| format!("'{p}' is not a port; write a number from 1 to 65535"))
}

// ---- handlers ----

fn h_noop(_: &mut Section<'_>, _: &[String]) -> Result<(), String> {
    Ok(())
}

fn h_maxconn(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let n = parse_u32(one(args, "maxconn NUMBER")?, "maxconn")?;
    if n == 0 {
        return Err("maxconn must be at least 1".into());
    }
    match sec.kind() {
        SectionKind::Global => sec.global.maxconn = Some(n),
        _ => sec.px().maxconn = Some(n),
    }
    Ok(())
}

fn h_hard_stop_after(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.global.hard_stop_after = Some(parse_duration(one(args, "hard-stop-after TIME")?)?);
    Ok(())
}

fn h_idle_park(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.global.idle_park = Some(parse_duration(one(args, "tune.idle-park TIME")?)?);
    Ok(())
}

fn h_crt_base(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.global.crt_base = Some(one(args, "crt-base DIR")?.into());
    Ok(())
}

fn h_ca_base(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.global.ca_base = Some(one(args, "ca-base DIR")?.into());
    Ok(())
}

/// `ssl-default-bind-options` / `ssl-default-server-options`: gatehouse takes the options that change
/// nothing under rustls (the ones generated configurations write), each with a warning, and refuses
/// the rest rather than apply them differently from HAProxy.
fn h_ssl_default_options(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let mut words = args.iter();
    while let Some(w) = words.next() {
        let why = match w.as_str() {
            "no-sslv3" | "no-tlsv10" | "no-tlsv11" => "rustls never speaks SSLv3, TLS 1.0 or 1.1",
            "no-tls-tickets" => "gatehouse issues no stateless session tickets",
            "prefer-client-ciphers" => "rustls follows the client's cipher suite order already",
            "ssl-min-ver" => match words.next().map(String::as_str) {
                Some("TLSv1.2") => "TLSv1.2 is the oldest version gatehouse speaks anyway",
                _ => {
                    return Err(
                        "only 'ssl-min-ver TLSv1.2' (gatehouse's floor anyway) is taken here; write ssl-min-ver on the bind lines".into(),
                    );
                }
            },
            other => {
                return Err(format!(
                    "'{other}' is not supported in a default; write it on each bind or server line that needs it"
                ));
            }
        };
        sec.warnings.push(format!("'{w}' is ignored: {why}"));
    }
    Ok(())
}

fn h_pidfile(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.global.pidfile = Some(one(args, "pidfile PATH")?.into());
    Ok(())
}

fn h_user(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.global.user_seen = true;
    let name = one(args, "user NAME")?;
    let u = match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => u,
        Ok(None) => {
            return Err(format!(
                "no user '{name}' on this host; create it (useradd --system --no-create-home --shell /usr/sbin/nologin {name}) or write a number with 'uid N'"
            ));
        }
        Err(e) => return Err(format!("looking up user '{name}': {e}")),
    };
    sec.global.user = Some(UserDraft {
        uid: u.uid.as_raw(),
        login_gid: Some(u.gid.as_raw()),
        pos: sec.pos.clone(),
    });
    Ok(())
}

fn h_uid(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.global.user_seen = true;
    let uid = parse_u32(one(args, "uid NUMBER")?, "user id")?;
    // A number need not be in the user database; when it is, its login group is the default group.
    let login_gid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.gid.as_raw());
    sec.global.user = Some(UserDraft {
        uid,
        login_gid,
        pos: sec.pos.clone(),
    });
    Ok(())
}

fn h_group(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let name = one(args, "group NAME")?;
    let g = match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => g,
        Ok(None) => {
            return Err(format!(
                "no group '{name}' on this host; create it (groupadd --system {name}) or write a number with 'gid N'"
            ));
        }
        Err(e) => return Err(format!("looking up group '{name}': {e}")),
    };
    sec.global.group = Some((g.gid.as_raw(), sec.pos.clone()));
    Ok(())
}

fn h_gid(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let gid = parse_u32(one(args, "gid NUMBER")?, "group id")?;
    sec.global.group = Some((gid, sec.pos.clone()));
    Ok(())
}

fn h_nbthread(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let n = parse_u32(one(args, "nbthread NUMBER")?, "thread count")?;
    if n == 0 {
        return Err("nbthread must be at least 1".into());
    }
    sec.global.nbthread = Some(n as usize);
    Ok(())
}

fn h_plumbing(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.global.plumbing.backend = match one(args, "plumbing auto|nft|iptables|none")? {
        "auto" => FirewallBackend::Auto,
        "nft" | "nftables" => FirewallBackend::Nft,
        "iptables" | "iptables-legacy" => FirewallBackend::Iptables,
        "none" => FirewallBackend::None,
        other => {
            return Err(format!(
                "unknown plumbing backend '{other}'; use auto, nft, iptables or none"
            ));
        }
    };
    Ok(())
}

fn nonzero(n: u32, what: &str) -> Result<u32, String> {
    if n == 0 {
        Err(format!("{what} must not be 0"))
    } else {
        Ok(n)
    }
}

fn h_tproxy_mark(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let n = parse_u32(one(args, "tproxy-mark MARK")?, "mark")?;
    sec.global.plumbing.mark = nonzero(n, "tproxy-mark")?;
    sec.global.marks_pos = Some(sec.pos.clone());
    Ok(())
}

fn h_tproxy_table(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let n = parse_u32(one(args, "tproxy-table NUMBER")?, "routing table")?;
    if matches!(n, 0 | 253..=255) {
        return Err(format!(
            "table {n} is reserved (unspec/default/main/local); pick another, such as 100"
        ));
    }
    sec.global.plumbing.table = n;
    Ok(())
}

fn h_tproxy_rule_pref(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let n = parse_u32(one(args, "tproxy-rule-pref NUMBER")?, "rule preference")?;
    if n == 0 || n >= 32766 {
        return Err(
            "tproxy-rule-pref must be between 1 and 32765, before the main table's rule".into(),
        );
    }
    sec.global.plumbing.rule_pref = n;
    Ok(())
}

fn h_outbound_mark(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.global.plumbing.outbound_mark = parse_u32(one(args, "outbound-mark MARK")?, "mark")?;
    sec.global.marks_pos = Some(sec.pos.clone());
    Ok(())
}

fn h_mode(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    match one(args, "mode tcp")? {
        "tcp" => sec.px().mode = Some(Mode::Tcp),
        "http" => sec.px().mode = Some(Mode::Http),
        "health" => return Err("'mode health' was removed from HAProxy; remove the line".into()),
        other => {
            return Err(format!(
                "unknown mode '{other}'; use 'mode tcp' or 'mode http'"
            ));
        }
    }
    Ok(())
}

fn h_bind(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let Some(first) = args.first() else {
        return Err("missing address; write 'bind ADDR:PORT [transparent]'".into());
    };
    let pos = sec.pos.clone();
    let mut binds = Vec::new();
    // HAProxy allows several comma-separated addresses on one bind line.
    for a in first.split(',') {
        if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "'{a}' has no port; write ':{a}' (any address) or ADDR:{a}"
            ));
        }
        let (ip, port) = split_addr(a)?;
        let port = port.ok_or_else(|| format!("'{a}' has no port; write ADDR:PORT, e.g. :80"))?;
        if port.contains('-') {
            return Err(format!(
                "port ranges ('{port}') are not supported in bind; bind each port"
            ));
        }
        let port = parse_port(port)?;
        binds.push(Bind {
            addr: SocketAddr::new(ip, port),
            pos: pos.clone(),
            name: None,
            transparent: false,
            v6only: None,
            backlog: None,
            tls: None,
            accept_proxy: false,
        });
    }
    let mut ssl = false;
    let mut proxy_in_tls = false;
    let mut tls = crate::tls::BindTlsOpts::default();
    let (crt_base, ca_base) = (sec.global.crt_base.clone(), sec.global.ca_base.clone());
    let mut it = args[1..].iter();
    while let Some(opt) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("'{opt}' needs a value; write '{opt} {what}'"))
        };
        if tls.take(opt, &mut value, crt_base.as_deref(), ca_base.as_deref())? {
            continue;
        }
        match opt.as_str() {
            "ssl" => ssl = true,
            "transparent" => binds.iter_mut().for_each(|b| b.transparent = true),
            "name" => {
                let n = value("NAME")?;
                binds.iter_mut().for_each(|b| b.name = Some(n.clone()));
            }
            "v6only" => binds.iter_mut().for_each(|b| b.v6only = Some(true)),
            "v4v6" => binds.iter_mut().for_each(|b| b.v6only = Some(false)),
            "backlog" => {
                let n = parse_u32(&value("NUMBER")?, "backlog")?;
                binds.iter_mut().for_each(|b| b.backlog = Some(n));
            }
            "process" | "thread" => {
                value("SET")?;
                sec.warnings.push(format!(
                    "bind option '{opt}' is ignored: every bind gets one socket per worker thread (SO_REUSEPORT)"
                ));
            }
            "accept-proxy" => binds.iter_mut().for_each(|b| b.accept_proxy = true),
            "proxy-in-tls" => proxy_in_tls = true,
            "ciphers" | "ciphersuites" | "curves" | "ecdhe" => {
                value("LIST")?;
                sec.warnings.push(format!(
                    "bind option '{opt}' is ignored: rustls offers only modern cipher suites and groups"
                ));
            }
            "no-sslv3" | "no-tlsv10" | "no-tlsv11" => {
                sec.warnings.push(format!(
                    "bind option '{opt}' is ignored: rustls never speaks SSLv3, TLS 1.0 or 1.1"
                ));
            }
            "no-tls-tickets" => sec.warnings.push(
                "bind option 'no-tls-tickets' is ignored: gatehouse issues no stateless session tickets (sessions resume from a small in-memory cache)".into(),
            ),
            "prefer-client-ciphers" => sec.warnings.push(
                "bind option 'prefer-client-ciphers' is ignored: rustls follows the client's cipher suite order already".into(),
            ),
            "tfo" | "defer-accept" | "interface" | "mss" | "maxconn" | "nice" => {
                return Err(format!("bind option '{opt}' is not supported yet"));
            }
            other => {
                return Err(format!(
                    "unknown bind option '{other}'; gatehouse knows transparent, name, v4v6, v6only, backlog, ssl, crt, crt-list, alpn, ca-file, verify, ssl-min-ver, strict-sni, accept-proxy, proxy-in-tls"
                ));
            }
        }
    }
    if proxy_in_tls && !(ssl && binds.iter().all(|b| b.accept_proxy)) {
        return Err(
            "'proxy-in-tls' reads the PROXY header inside the TLS session: it needs 'ssl' and 'accept-proxy' on the same bind".into(),
        );
    }
    if ssl {
        let built =
            crate::tls::BindTls::build(&tls, crt_base.as_deref()).map_err(|e| e.to_string())?;
        let mut built = built;
        built.proxy_in_tls = proxy_in_tls;
        let built = std::sync::Arc::new(built);
        binds.iter_mut().for_each(|b| b.tls = Some(built.clone()));
    } else if tls != crate::tls::BindTlsOpts::default() {
        return Err(
            "TLS options without 'ssl': add 'ssl' to terminate TLS on this bind (or remove crt, alpn, verify…)".into(),
        );
    }
    sec.px().binds.extend(binds);
    Ok(())
}

/// Splits a comma list into includes and `!`-excludes.
fn selector<T>(
    list: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Selector<T>, String> {
    let mut s = Selector::default();
    for item in list.split(',').filter(|i| !i.is_empty()) {
        match item.strip_prefix('!') {
            Some(x) => s.exclude.push(parse(x)?),
            None => s.include.push(parse(item)?),
        }
    }
    Ok(s)
}

fn merge<T>(into: &mut Selector<T>, more: Selector<T>) {
    into.include.extend(more.include);
    into.exclude.extend(more.exclude);
}

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| {
            format!("'{s}' is not an address or CIDR; write e.g. 10.0.0.0/8 or 2001:db8::/32")
        })
}

fn parse_port_range(s: &str) -> Result<PortRange, String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (first, last) = (parse_port(a)?, parse_port(b)?);
    if first == 0 || first > last {
        return Err(format!(
            "'{s}' is not a port range; write FIRST-LAST with 1 <= FIRST <= LAST"
        ));
    }
    Ok(PortRange { first, last })
}

fn h_intercept(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const USAGE: &str = "intercept [tcp] dport PORTS [iif IFACES] [src CIDRS] [dst CIDRS] [family ipv4|ipv6|any] [to BINDNAME]";
    let mut d = InterceptDraft {
        pos: sec.pos.clone(),
        to: None,
        family: None,
        dports: Vec::new(),
        iif: Selector::default(),
        src: Selector::default(),
        dst: Selector::default(),
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        if k == "tcp" {
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| format!("'{k}' needs a value; write '{USAGE}'"))?;
        match k.as_str() {
            "dport" | "port" | "ports" => {
                for p in v.split(',').filter(|p| !p.is_empty()) {
                    d.dports.push(parse_port_range(p)?);
                }
            }
            "iif" => merge(
                &mut d.iif,
                selector(v, |s| {
                    let stem = s.strip_suffix('*').unwrap_or(s);
                    if s.is_empty() || s.len() > 15 || stem.contains(['/', ' ', '*', '+']) {
                        Err(format!(
                            "'{s}' is not an interface name; write a name (eth0) or a prefix ending in '*' (eth*)"
                        ))
                    } else {
                        Ok(s.to_string())
                    }
                })?,
            ),
            "src" => merge(&mut d.src, selector(v, parse_cidr)?),
            "dst" => merge(&mut d.dst, selector(v, parse_cidr)?),
            "family" => {
                d.family = Some(match v.as_str() {
                    "ipv4" => Families::V4,
                    "ipv6" => Families::V6,
                    "any" => Families::Both,
                    _ => return Err(format!("unknown family '{v}'; use ipv4, ipv6 or any")),
                })
            }
            "to" => d.to = Some(v.clone()),
            "udp" => return Err("UDP interception is not supported yet; intercept tcp only".into()),
            other => {
                return Err(format!(
                    "unknown intercept option '{other}'; write '{USAGE}'"
                ));
            }
        }
    }
    if d.dports.is_empty() {
        return Err(format!(
            "intercept needs destination ports (intercepting every port is rarely wanted); write '{USAGE}'"
        ));
    }
    if d.iif.include.iter().any(|i| i == "lo") {
        return Err(
            "intercepting on 'lo' would loop the gateway's own traffic back into it; remove lo"
                .into(),
        );
    }
    sec.px().intercepts.push(d);
    Ok(())
}

fn h_default_backend(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let n = one(args, "default_backend NAME")?.to_string();
    let pos = sec.pos.clone();
    sec.px().default_backend = Some((n, pos));
    Ok(())
}

fn h_server(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let (name, addr) = match args {
        [n, a, ..] => (n.clone(), a.as_str()),
        _ => return Err("write 'server NAME ADDR[:PORT] [options]'".into()),
    };
    let target = server_target(&name, addr, &mut sec.global.maps)?;
    // default-server first, then the server's own options over it.
    let mut o = sec.px().default_server.clone();
    let bases = (sec.global.crt_base.clone(), sec.global.ca_base.clone());
    servers::parse(&args[2..], &mut o, (bases.0.as_deref(), bases.1.as_deref()))?;
    let (tls, sni) = if o.tls.ssl == Some(true) {
        let built = crate::tls::ServerTls::build(&o.tls).map_err(|e| e.to_string())?;
        let sni = match &o.tls.sni {
            None => None,
            Some(e) => Some(
                crate::rules::sample::Expr::parse(e, &mut |f: &str, m| sec.global.maps.load(f, m))
                    .map_err(|err| format!("'sni {e}': {err}"))?,
            ),
        };
        (Some(std::sync::Arc::new(built)), sni)
    } else {
        (None, None)
    };
    // Health checks over TLS: `check-ssl` says so whatever `ssl` says; otherwise they follow `ssl`
    // unless they go to another port or address (HAProxy's rule).
    let check_tls = match o.tls.check_ssl {
        Some(false) => None,
        Some(true) => match &tls {
            Some(t) => Some(t.clone()),
            None => Some(std::sync::Arc::new(
                crate::tls::ServerTls::build(&o.tls).map_err(|e| format!("check-ssl: {e}"))?,
            )),
        },
        None if o.check_port.is_none() && o.check_addr.is_none() => tls.clone(),
        None => None,
    };
    if o.tls.check_sni.is_some() && check_tls.is_none() && o.check == Some(true) {
        sec.warnings.push(format!(
            "server '{name}': check-sni is only sent in TLS health checks; add check-ssl (checks to another port or addr are in clear unless it says so)"
        ));
    }
    let check = o.check.unwrap_or(false).then(|| {
        let inter = o.inter.unwrap_or(DEFAULT_INTER);
        Check {
            addr: o.check_addr,
            port: o.check_port,
            inter,
            fastinter: o.fastinter.unwrap_or(inter),
            downinter: o.downinter.unwrap_or(inter),
            rise: o.rise.unwrap_or(2),
            fall: o.fall.unwrap_or(3),
        }
    });
    if o.send_proxy_v2 != Some(true) && args[2..].iter().any(|w| w == "proxy-v2-options") {
        sec.warnings.push(format!(
            "server '{name}': proxy-v2-options only applies to a PROXY v2 header; add send-proxy-v2"
        ));
    }
    let send_proxy = servers::send_proxy(&o);
    if o.proxy_in_tls == Some(true) && (send_proxy.is_none() || o.tls.ssl != Some(true)) {
        return Err(format!(
            "server '{name}': 'proxy-in-tls' writes the PROXY header inside the TLS session: it needs 'ssl' and 'send-proxy-v2' (or 'send-proxy')"
        ));
    }
    // Health checks open with the server's PROXY header (v1 UNKNOWN or v2 LOCAL: a check has no
    // client) unless they go to another port or address; `check-send-proxy` sends one regardless
    // (v1 when the server has none).
    let check_proxy = if o.check_send_proxy == Some(true) {
        Some(send_proxy.unwrap_or_default())
    } else if o.check_port.is_none() && o.check_addr.is_none() {
        send_proxy
    } else {
        None
    };
    let pos = sec.pos.clone();
    sec.px().servers.push(Server {
        name,
        pos,
        target,
        source: o.source,
        resolvers: o.resolvers.map(|r| (r, usize::MAX)),
        prefer: o.prefer,
        init_addr: o.init_addr.unwrap_or_default(),
        weight: o.weight.unwrap_or(1),
        maxconn: o.maxconn.filter(|n| *n > 0),
        maxqueue: o.maxqueue.filter(|n| *n > 0),
        backup: o.backup.unwrap_or(false),
        disabled: o.disabled.unwrap_or(false),
        check,
        slowstart: o.slowstart.filter(|d| !d.is_zero()),
        shutdown_on_down: o.shutdown_on_down.unwrap_or(false),
        cookie: o.cookie,
        check_sni: o.tls.check_sni.clone(),
        check_tls,
        check_proxy,
        tls,
        sni,
        send_proxy,
    });
    Ok(())
}

/// HAProxy's default interval between health checks.
const DEFAULT_INTER: Duration = Duration::from_secs(2);

fn h_default_server(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let mut o = sec.px().default_server.clone();
    let bases = (sec.global.crt_base.clone(), sec.global.ca_base.clone());
    servers::parse(args, &mut o, (bases.0.as_deref(), bases.1.as_deref()))?;
    sec.px().default_server = o;
    Ok(())
}

fn h_retries(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let v = one(args, "retries NUMBER")?;
    let n: u32 = v
        .parse()
        .ok()
        .filter(|n| *n <= 100)
        .ok_or_else(|| format!("'retries {v}': write a whole number from 0 to 100"))?;
    sec.px().retries = Some(n);
    Ok(())
}

fn h_hash_type(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const USAGE: &str = "hash-type map-based|consistent [sdbm|djb2|wt6|crc32|none] [avalanche]";
    let kind = match args.first().map(String::as_str) {
        Some("map-based") => HashType::MapBased,
        Some("consistent") => HashType::Consistent,
        Some(other) => return Err(format!("unknown hash type '{other}'; write '{USAGE}'")),
        None => return Err(format!("missing hash type; write '{USAGE}'")),
    };
    // The hash function is gatehouse's own (well mixed); HAProxy's names are accepted.
    for w in &args[1..] {
        if !matches!(
            w.as_str(),
            "sdbm" | "djb2" | "wt6" | "crc32" | "none" | "avalanche"
        ) {
            return Err(format!("unexpected '{w}'; write '{USAGE}'"));
        }
    }
    sec.px().hash_type = Some(kind);
    Ok(())
}

fn h_timeout_check(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.px().timeout_check = Some(timeout(args, "check")?);
    Ok(())
}

fn h_timeout_queue(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.px().timeout_queue = Some(timeout(args, "queue")?);
    Ok(())
}

/// A server's address: an IP (`0.0.0.0` meaning the original destination), a host name, or a
/// `%[…]` expression computed per connection; each with an optional port.
fn server_target(name: &str, addr: &str, maps: &mut MapCache) -> Result<ServerTarget, String> {
    let port_spec = |p: Option<&str>| -> Result<PortSpec, String> {
        Ok(match p {
            None | Some("") | Some("0") => PortSpec::Same,
            Some(p) if p.starts_with('+') || p.starts_with('-') => PortSpec::Offset(
                p.parse()
                    .map_err(|_| format!("'{p}' is not a port offset; write +N or -N"))?,
            ),
            Some(p) => PortSpec::Fixed(parse_port(p)?),
        })
    };
    if addr.starts_with("%[") {
        let close = addr
            .rfind(']')
            .ok_or_else(|| format!("'{addr}': '%[' without ']'"))?;
        let (expr, tail) = addr.split_at(close + 1);
        let port = match tail {
            "" => None,
            t => Some(
                t.strip_prefix(':')
                    .ok_or_else(|| format!("'{addr}': expected ':PORT' after the expression"))?,
            ),
        };
        let t = Template::parse(expr, &mut |f: &str, m| maps.load(f, m))
            .map_err(|e| format!("server '{name}': {e}"))?;
        if !t.needs_content() {
            return Err(format!(
                "server '{name}': '{expr}' does not depend on what the client sent; use an address or a name"
            ));
        }
        return Ok(ServerTarget::Dynamic {
            name: t,
            port: port_spec(port)?,
        });
    }
    let (ip, port) = match split_addr(addr) {
        Ok(x) => x,
        Err(e) => {
            // Not an address: a host name, if it looks like one.
            let (host, port) = match addr.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (addr, None),
            };
            // An operator's name (localhost included), unlike a client's: it only has to be a name.
            let numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            let name_chars = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            if numeric || !name_chars {
                return Err(e);
            }
            let port = port_spec(port)?;
            return Ok(ServerTarget::Name {
                host: host.trim_end_matches('.').to_ascii_lowercase(),
                port,
            });
        }
    };
    if ip.is_unspecified() {
        return Ok(ServerTarget::OrigDst(port_spec(port)?));
    }
    Ok(ServerTarget::Fixed(ip, port_spec(port)?))
}

/// HAProxy's server TLS options gatehouse does not have (the ones it has are in `tls::ServerTlsOpts`).
const SERVER_LATER_TLS: &[&str] = &[
    "ciphers",
    "ciphersuites",
    "ssl-min-ver",
    "ssl-max-ver",
    "ssl-reuse",
    "no-ssl-reuse",
    "crl-file",
    "npn",
];
const SERVER_DNS: &[&str] = &[
    "resolvers",
    "resolve-prefer",
    "init-addr",
    "resolve-net",
    "resolve-opts",
];

fn source_of(args: &[String]) -> Result<Source, String> {
    const USAGE: &str = "source ADDR[:PORT] [usesrc clientip|client|ADDR[:PORT]]";
    let Some(addr) = args.first() else {
        return Err(format!("missing address; write '{USAGE}'"));
    };
    let (ip, port) = split_addr(addr)?;
    let port = match port {
        None | Some("") => 0,
        Some(p) if p.contains('-') => {
            return Err(format!(
                "source port ranges ('{p}') are not supported; give one port or none"
            ));
        }
        Some(p) => p.parse().map_err(|_| format!("'{p}' is not a port"))?,
    };
    let mut rest = &args[1..];
    if let Some(i) = rest.iter().position(|w| w == "interface") {
        return Err(format!(
            "'source ... interface {}' is not supported yet; route by the source address instead",
            rest.get(i + 1).map_or("", String::as_str)
        ));
    }
    if rest.first().is_some_and(|w| w == "usesrc") && rest.len() > 2 {
        return Err(format!(
            "unexpected '{}' after usesrc's value; write '{USAGE}'",
            rest[2]
        ));
    }
    rest = &rest[..rest.len().min(2)];
    let usesrc = match rest {
        [] => None,
        [u, v] if u == "usesrc" => Some(match v.as_str() {
            "clientip" => UseSrc::ClientIp,
            "client" => UseSrc::Client,
            v if v.starts_with("hdr_ip") => {
                return Err("'usesrc hdr_ip(...)' is not supported; use 'usesrc clientip'".into());
            }
            v => {
                let (ip, port) = split_addr(v)?;
                let port = port.map(parse_port).transpose()?.unwrap_or(0);
                UseSrc::Addr(SocketAddr::new(ip, port))
            }
        }),
        [u] if u == "usesrc" => return Err(format!("'usesrc' needs a value; write '{USAGE}'")),
        [other, ..] => return Err(format!("unexpected '{other}'; write '{USAGE}'")),
    };
    Ok(Source {
        addr: SocketAddr::new(ip, port),
        usesrc,
    })
}

fn h_source(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.px().source = Some(source_of(args)?);
    Ok(())
}

fn timeout(args: &[String], which: &str) -> Result<Duration, String> {
    parse_duration(one(args, &format!("timeout {which} DURATION"))?)
}

fn h_timeout_connect(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.px().timeout_connect = Some(timeout(args, "connect")?);
    Ok(())
}

fn h_timeout_client(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.px().timeout_client = Some(timeout(args, "client")?);
    Ok(())
}

fn h_timeout_server(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.px().timeout_server = Some(timeout(args, "server")?);
    Ok(())
}

fn h_timeout_tunnel(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.px().timeout_tunnel = Some(timeout(args, "tunnel")?);
    Ok(())
}

fn h_balance(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const KNOWN: &str = "roundrobin, static-rr, leastconn, first, source, random[(N)], hash EXPR, uri, url_param NAME, hdr(NAME), rdp-cookie[(NAME)]";
    let Some(algo) = args.first() else {
        return Err(format!("missing algorithm; gatehouse knows {KNOWN}"));
    };
    let rest = &args[1..];
    let none = |b: Balance| -> Result<Balance, String> {
        match rest.first() {
            Some(w) => Err(format!("unexpected '{w}' after 'balance {algo}'")),
            None => Ok(b),
        }
    };
    let b = match algo.as_str() {
        "roundrobin" => none(Balance::RoundRobin)?,
        "static-rr" => none(Balance::StaticRr)?,
        "leastconn" => none(Balance::LeastConn)?,
        "first" => none(Balance::First)?,
        "source" => none(Balance::Source)?,
        "random" => none(Balance::Random(2))?,
        a if a.starts_with("random(") => {
            let n = a
                .strip_prefix("random(")
                .and_then(|x| x.strip_suffix(')'))
                .and_then(|x| x.parse::<u32>().ok())
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| format!("'{a}': write random or random(N) with N from 1 to 100"))?;
            none(Balance::Random(n))?
        }
        "hash" => {
            let expr = match rest {
                [e] => e,
                [] => {
                    return Err(
                        "'balance hash' needs an expression; write e.g. 'balance hash req.ssl_sni'"
                            .into(),
                    );
                }
                [_, w, ..] => return Err(format!("unexpected '{w}' after the hash expression")),
            };
            let maps = &mut sec.global.maps;
            Balance::Hash(Template::parse(
                &format!("%[{expr}]"),
                &mut |f: &str, m| maps.load(f, m),
            )?)
        }
        "uri" => {
            let (mut whole, mut len, mut depth) = (false, 0, 0);
            let mut it = rest.iter();
            while let Some(w) = it.next() {
                let mut num = |what: &str| -> Result<usize, String> {
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| format!("'balance uri {what}' needs a number"))
                };
                match w.as_str() {
                    "whole" => whole = true,
                    "len" => len = num("len")?,
                    "depth" => depth = num("depth")?,
                    other => {
                        return Err(format!(
                            "unknown 'balance uri' option '{other}'; use whole, len N, depth N"
                        ));
                    }
                }
            }
            Balance::Uri { whole, len, depth }
        }
        "url_param" => match rest {
            [p] => Balance::UrlParam(p.clone()),
            [p, w, ..] if w == "check_post" => {
                return Err(format!(
                    "'balance url_param {p} check_post' is not supported; remove check_post"
                ));
            }
            _ => return Err("write 'balance url_param NAME'".into()),
        },
        a if a.starts_with("hdr(") && a.ends_with(')') => {
            let name = a[4..a.len() - 1].to_ascii_lowercase();
            if name.is_empty() {
                return Err("'balance hdr()' needs a header name: hdr(host)".into());
            }
            let domain_only = match rest {
                [] => false,
                [w] if w == "use_domain_only" => true,
                [w, ..] => {
                    return Err(format!(
                        "unexpected '{w}'; write 'balance hdr(NAME) [use_domain_only]'"
                    ));
                }
            };
            Balance::Hdr { name, domain_only }
        }
        "rdp-cookie" => none(Balance::RdpCookie("mstshash".into()))?,
        a if a.starts_with("rdp-cookie(") && a.ends_with(')') => {
            let name = &a["rdp-cookie(".len()..a.len() - 1];
            if name.is_empty() {
                return Err(
                    "'balance rdp-cookie()' needs a cookie name, or none at all for mstshash"
                        .into(),
                );
            }
            none(Balance::RdpCookie(name.to_string()))?
        }
        other => {
            return Err(format!(
                "unknown balance algorithm '{other}'; gatehouse knows {KNOWN}"
            ));
        }
    };
    sec.px().balance = Some(b);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, ms) in [
            ("5s", 5000),
            ("500", 500),
            ("250ms", 250),
            ("1m", 60000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
        ] {
            assert_eq!(parse_duration(s).unwrap(), Duration::from_millis(ms), "{s}");
        }
        assert_eq!(parse_duration("10us").unwrap(), Duration::from_micros(10));
        for bad in ["", "s", "5x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        let v4 = |s: &str| split_addr(s).map(|(ip, p)| (ip.to_string(), p.map(str::to_string)));
        assert_eq!(v4(":80").unwrap(), ("0.0.0.0".into(), Some("80".into())));
        assert_eq!(v4("*:80").unwrap(), ("0.0.0.0".into(), Some("80".into())));
        assert_eq!(
            v4("10.0.0.1:443").unwrap(),
            ("10.0.0.1".into(), Some("443".into()))
        );
        assert_eq!(v4("[::]:80").unwrap(), ("::".into(), Some("80".into())));
        assert_eq!(v4(":::80").unwrap(), ("::".into(), Some("80".into())));
        assert_eq!(v4("ipv6@:80").unwrap(), ("::".into(), Some("80".into())));
        assert_eq!(v4("0.0.0.0").unwrap(), ("0.0.0.0".into(), None));
        assert_eq!(v4("*").unwrap(), ("0.0.0.0".into(), None));
        assert_eq!(v4("2001:db8::1").unwrap(), ("2001:db8::1".into(), None));
        assert_eq!(
            v4("[2001:db8::1]:8080").unwrap(),
            ("2001:db8::1".into(), Some("8080".into()))
        );
        assert!(
            v4("www.example.com:80")
                .unwrap_err()
                .contains("not an IP address")
        );
        assert!(v4("[::1:80").is_err());
    }

    #[test]
    fn nearest_spelling() {
        assert_eq!(edit_distance("defualt_backend", "default_backend"), 2);
        let w: Vec<String> = ["defualt_backend", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(unknown(SectionKind::Frontend, &w).contains("did you mean 'default_backend'"));
        let w: Vec<String> = ["timeout", "conect", "5s"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(unknown(SectionKind::Backend, &w).contains("'timeout connect'"));
        let w: Vec<String> = ["zzzzzzzz"].iter().map(|s| s.to_string()).collect();
        assert!(!unknown(SectionKind::Backend, &w).contains("did you mean"));
    }
}

//! Validation: drafts → model. Resolves names to indices, applies defaults, and checks what only the
//! whole file can tell (a `default_backend` that names nothing, an `intercept` with no transparent bind).

use std::collections::HashMap;
use std::time::Duration;

use super::model::{
    Backend, BackendChoice, Bind, Config, Fallback, Families, Frontend, Global, Intercept, Mode,
    PortSpec, ServerTarget, Unclassified, UseBackend,
};
use super::parse::{Drafts, FallbackDraft, InterceptDraft, ProxyDraft};
use super::{Diagnostic, lexer::Pos};

/// Process maxconn when the global section does not say.
pub const DEFAULT_MAXCONN: u32 = 50_000;

/// How long a peeking frontend waits for the first bytes when `tcp-request inspect-delay` is not set.
pub const DEFAULT_INSPECT_DELAY: Duration = Duration::from_secs(5);

pub fn validate(drafts: Drafts, diags: &mut Vec<Diagnostic>) -> Option<Config> {
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    let mut warnings: Vec<Diagnostic> = Vec::new();
    let mut err = |pos: &Pos, msg: String| diags.push(Diagnostic::error(pos.clone(), msg));

    let resolvers = drafts.resolvers;
    let res_index: HashMap<&str, usize> = resolvers
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    for r in &resolvers {
        if r.nameservers.is_empty() && !r.parse_resolv_conf {
            err(
                &r.pos,
                format!(
                    "resolvers '{}' has no nameserver; add 'nameserver NAME ADDR:53' or 'parse-resolv-conf'",
                    r.name
                ),
            );
        }
    }

    let g = drafts.global;
    let maps = g.maps.all();
    // With no `log` line anywhere, traffic and process lines go to standard output (gatehouse's
    // default); once the configuration says where logs go, it says it for every proxy, as in
    // HAProxy (a proxy without `log` lines logs nothing).
    let log_seen = g.log_seen;
    let global_logs = g.logs.clone();
    let proxy_logs =
        |lines: &[super::parse::log::LogLine], no_log: bool| -> Vec<super::model::LogTarget> {
            if no_log {
                return Vec::new();
            }
            if !log_seen {
                return vec![super::model::LogTarget::stdout()];
            }
            let mut out = Vec::new();
            for l in lines {
                match l {
                    super::parse::log::LogLine::Global => out.extend(global_logs.iter().cloned()),
                    super::parse::log::LogLine::Target(t) => out.push(t.clone()),
                }
            }
            out
        };
    let run_as = match (&g.user, &g.group) {
        (None, None) => None,
        // The user line has its own error already.
        (None, Some(_)) if g.user_seen => None,
        (None, Some((_, pos))) => {
            err(
                pos,
                "a group without a user would leave gatehouse running as root; add 'user NAME' (or 'uid N') too".into(),
            );
            None
        }
        (Some(u), Some((gid, _))) => Some(super::model::RunAs {
            uid: u.uid,
            gid: *gid,
        }),
        (Some(u), None) => match u.login_gid {
            Some(gid) => Some(super::model::RunAs { uid: u.uid, gid }),
            None => {
                err(
                    &u.pos,
                    format!(
                        "uid {} is not in the user database, so it has no login group to run with; add 'gid N' or 'group NAME'",
                        u.uid
                    ),
                );
                None
            }
        },
    };
    let global = Global {
        maxconn: g.maxconn.unwrap_or(DEFAULT_MAXCONN),
        pidfile: g.pidfile,
        nbthread: g.nbthread,
        plumbing: g.plumbing,
        stats_sockets: g.stats_sockets,
        // HAProxy's default.
        stats_timeout: g
            .stats_timeout
            .unwrap_or(std::time::Duration::from_secs(10)),
        hard_stop_after: g.hard_stop_after,
        idle_park: match g.idle_park {
            None => Some(super::model::DEFAULT_IDLE_PARK),
            Some(t) if t.is_zero() => None,
            Some(t) => Some(t),
        },
        logs: if g.logs.is_empty() {
            vec![super::model::LogTarget::stdout()]
        } else {
            g.logs.clone()
        },
        run_as,
    };
    if global.plumbing.outbound_mark != 0 && global.plumbing.outbound_mark == global.plumbing.mark {
        // Outbound packets with the tproxy mark would be routed to the local table: a loop.
        let pos = g.marks_pos.clone().unwrap_or_else(|| Pos {
            file: "config".into(),
            line: 0,
        });
        err(
            &pos,
            "outbound-mark equals tproxy-mark, which would route the gateway's own connections back to itself; choose different marks".into(),
        );
    }

    // Stick tables, named after their sections.
    let mut tables = Vec::new();
    let mut table_index: HashMap<String, usize> = HashMap::new();
    for p in &drafts.proxies {
        if let Some(t) = &p.table {
            table_index.insert(p.name.clone(), tables.len());
            tables.push(t.clone());
        }
    }
    // A rule's table: the one it names, or its own section's.
    let resolve_table = |own: &str, named: &Option<String>, what: &str| -> Result<usize, String> {
        match named {
            Some(n) => table_index.get(n).copied().ok_or_else(|| {
                format!("{what}: 'table {n}' names no section with a stick-table")
            }),
            None => table_index.get(own).copied().ok_or_else(|| {
                format!("{what}: this section has no stick-table; add one ('stick-table type ip size 100k expire 30s store conn_rate(10s)') or write 'table NAME'")
            }),
        }
    };

    // Backends first, so frontends can refer to them by index.
    let mut backends = Vec::new();
    let mut be_index: HashMap<&str, usize> = HashMap::new();
    let mut fe_names: HashMap<&str, &Pos> = HashMap::new();
    for p in drafts.proxies.iter() {
        if p.kind.is_backend() {
            if let Some(prev) = be_index.get(p.name.as_str()) {
                err(
                    &p.pos,
                    format!(
                        "backend '{}' is already defined at {}; rename one of them",
                        p.name,
                        backends_pos(&backends, *prev)
                    ),
                );
                continue;
            }
            be_index.insert(&p.name, backends.len());
            let mut b = backend_of(p, &res_index, &mut err, &mut warnings);
            for r in &mut b.stick_rules {
                match resolve_table(&p.name, &r.table.0, "stick") {
                    Ok(i) => r.table.1 = i,
                    Err(e) => err(&p.pos, e),
                }
            }
            backends.push(b);
        }
        if p.kind.is_frontend()
            && let Some(prev) = fe_names.insert(&p.name, &p.pos)
        {
            err(
                &p.pos,
                format!(
                    "frontend '{}' is already defined at {prev}; rename one of them",
                    p.name
                ),
            );
        }
    }

    for p in &drafts.proxies {
        http_warnings(p, &mut warnings);
    }
    let mut frontends = Vec::new();
    let mut bound: HashMap<std::net::SocketAddr, Pos> = HashMap::new();
    let mut all_binds: Vec<&Bind> = Vec::new();
    for p in drafts.proxies.iter().filter(|p| p.kind.is_frontend()) {
        // A bind line that failed to parse already has its error; don't add "no bind" to it.
        if p.binds.is_empty() && errors_before == 0 {
            err(
                &p.pos,
                format!(
                    "{} '{}' has no 'bind' line; add one such as 'bind :80' (or 'bind :15001 transparent' with 'intercept')",
                    kind_name(p),
                    p.name
                ),
            );
        }
        for b in &p.binds {
            if let Some(prev) = bound.insert(b.addr, b.pos.clone()) {
                err(
                    &b.pos,
                    format!(
                        "{} is already bound at {prev}; bind each address once",
                        b.addr
                    ),
                );
            }
        }
        all_binds.extend(p.binds.iter());
        // A listen section is its own backend unless it names another with default_backend.
        let default_backend = match &p.default_backend {
            Some((name, pos)) => match be_index.get(name.as_str()) {
                Some(i) => Some(*i),
                None => {
                    let known: Vec<&str> = be_index.keys().copied().collect();
                    err(
                        pos,
                        format!(
                            "default_backend '{name}' names no backend or listen section; {}",
                            if known.is_empty() {
                                "add 'backend NAME' with a server".to_string()
                            } else {
                                format!("known backends: {}", sorted(known).join(", "))
                            }
                        ),
                    );
                    None
                }
            },
            None if p.kind.is_backend() => be_index.get(p.name.as_str()).copied(),
            None => None,
        };
        if let Some(i) = default_backend {
            let be: &Backend = &backends[i];
            if be.mode != mode_of(p) {
                err(
                    &p.pos,
                    format!(
                        "frontend '{}' and backend '{}' have different modes; make them equal",
                        p.name, be.name
                    ),
                );
            }
        }
        let mut intercepts = Vec::new();
        for d in &p.intercepts {
            match intercept_of(d, &p.binds) {
                Ok(i) => intercepts.push(i),
                Err(e) => err(&d.pos, e),
            }
        }
        let mut use_backends = Vec::new();
        // Backends this frontend may reach, for the peek decision; None = any (a computed name).
        let mut reachable: Option<Vec<usize>> = Some(default_backend.into_iter().collect());
        for u in &p.use_backends {
            let target = match &u.target {
                Ok(t) => {
                    reachable = None;
                    for m in t.maps() {
                        for v in m.values() {
                            if !be_index.contains_key(&*v) {
                                warnings.push(Diagnostic::warning(
                                    u.pos.clone(),
                                    format!(
                                        "map file '{}' names '{v}', which is no backend; those connections go to default_backend",
                                        m.path
                                    ),
                                ));
                            }
                        }
                    }
                    BackendChoice::Dynamic(t.clone())
                }
                Err(name) => match be_index.get(name.as_str()) {
                    Some(&i) => {
                        if let Some(r) = reachable.as_mut() {
                            r.push(i);
                        }
                        if backends[i].mode != mode_of(p) {
                            err(
                                &u.pos,
                                format!(
                                    "frontend '{}' and backend '{}' have different modes; make them equal",
                                    p.name, name
                                ),
                            );
                        }
                        BackendChoice::Static(i)
                    }
                    None => {
                        err(
                            &u.pos,
                            format!(
                                "use_backend '{name}' names no backend or listen section; define it or fix the name"
                            ),
                        );
                        continue;
                    }
                },
            };
            use_backends.push(UseBackend {
                target,
                cond: u.cond.clone(),
            });
        }
        let mut fallbacks = [Fallback::Original; 4];
        for (slot, d) in fallbacks.iter_mut().zip(&p.unclassified) {
            let Some((d, pos)) = d else { continue };
            *slot = match d {
                FallbackDraft::Original => Fallback::Original,
                FallbackDraft::Reject => Fallback::Reject,
                FallbackDraft::Backend(name) => match be_index.get(name.as_str()) {
                    Some(&i) => {
                        if let Some(r) = reachable.as_mut() {
                            r.push(i);
                        }
                        Fallback::Backend(i)
                    }
                    None => {
                        err(
                            pos,
                            format!("'unclassified ... backend {name}' names no backend"),
                        );
                        Fallback::Original
                    }
                },
            };
        }
        let rules_need = p
            .content_rules
            .iter()
            .chain(&p.connection_rules)
            .chain(&p.session_rules)
            .filter_map(|r| r.cond.as_ref())
            .chain(p.use_backends.iter().filter_map(|u| u.cond.as_ref()))
            .any(|c| c.needs_content(&p.acls))
            || !p.content_rules.is_empty()
            || p.use_backends
                .iter()
                .any(|u| u.target.as_ref().is_ok_and(|t| t.needs_content()));
        let reads = |b: &Backend| {
            b.has_dynamic_server() || b.balance_reads_content() || b.sni_reads_content()
        };
        let dynamic = match &reachable {
            Some(list) => list.iter().any(|&i| reads(&backends[i])),
            None => backends.iter().any(reads),
        };
        let peek = rules_need || dynamic || p.inspect_delay.is_some();
        // `proxy-v2-options authority` sends the SNI read from the client's hello: without reading
        // it, the TLV is never sent. Said, not forced: reading first makes a server-speaks-first
        // protocol (SMTP, FTP) wait for the inspect delay.
        let sends_authority = |b: &Backend| {
            b.servers
                .iter()
                .any(|s| s.send_proxy.as_ref().is_some_and(|h| h.authority))
        };
        let authority = match &reachable {
            Some(list) => list.iter().any(|&i| sends_authority(&backends[i])),
            None => backends.iter().any(sends_authority),
        };
        if authority && !peek && !p.binds.iter().any(|b| b.tls.is_some() || b.accept_proxy) {
            warnings.push(Diagnostic::warning(
                p.pos.clone(),
                format!(
                    "{} '{}' reaches a server with 'proxy-v2-options authority' but does not read the client's first bytes, so no SNI is known to send; add 'tcp-request inspect-delay 2s'",
                    kind_name(p),
                    p.name
                ),
            ));
        }
        // With accept-proxy the connection rules run before the header is read, before the
        // session (and its record, which releases what was tracked) exists.
        if p.binds.iter().any(|b| b.accept_proxy)
            && p.connection_rules.iter().any(|r| {
                matches!(
                    r.action,
                    super::model::RuleAction::Track { .. } | super::model::RuleAction::IncGpc0(_)
                )
            })
        {
            err(
                &p.pos,
                format!(
                    "{} '{}' has an accept-proxy bind, where 'tcp-request connection' rules run on the sending proxy's address before the PROXY header and may only accept or reject; track with 'tcp-request session track-sc…', which runs on the client's address from the header",
                    kind_name(p),
                    p.name
                ),
            );
        }
        let mut rules = [
            p.connection_rules.clone(),
            p.session_rules.clone(),
            p.content_rules.clone(),
        ];
        for r in rules.iter_mut().flatten() {
            if let super::model::RuleAction::Track { table, .. } = &mut r.action {
                match resolve_table(&p.name, &table.0, "track-sc") {
                    Ok(i) => table.1 = i,
                    Err(e) => err(&p.pos, e),
                }
            }
        }
        let [connection_rules, session_rules, content_rules] = rules;
        frontends.push(Frontend {
            name: p.name.clone(),
            pos: p.pos.clone(),
            mode: mode_of(p),
            logs: proxy_logs(&p.logs, p.no_log),
            log_format: p.log_format.clone(),
            binds: p.binds.clone(),
            intercepts,
            maxconn: p.maxconn.unwrap_or(global.maxconn).min(global.maxconn),
            timeout_client: p.timeout_client,
            default_backend,
            acls: p.acls.clone(),
            connection_rules,
            session_rules,
            content_rules,
            table: table_index.get(&p.name).copied(),
            use_backends,
            peek,
            inspect_delay: p.inspect_delay.unwrap_or(DEFAULT_INSPECT_DELAY),
            dial: p.dial.as_ref().map(|d| d.0).unwrap_or_default(),
            ech: p.ech.unwrap_or_default(),
            unclassified: Unclassified {
                timeout: fallbacks[0],
                no_sni: fallbacks[1],
                not_tls: fallbacks[2],
                malformed: fallbacks[3],
            },
            http: p.http.clone(),
        });
    }
    // A dual-stack [::]:P also takes IPv4 port P: any IPv4 bind on P would fail at start-up.
    for d in all_binds.iter().filter(|b| b.families() == Families::Both) {
        for b in all_binds
            .iter()
            .filter(|b| b.addr.is_ipv4() && b.addr.port() == d.addr.port())
        {
            diags.push(Diagnostic::error(
                b.pos.clone(),
                format!(
                    "{} clashes with the dual-stack bind {} at {}, which takes IPv4 too; remove one or add 'v6only' to the [::] bind",
                    b.addr, d.addr, d.pos
                ),
            ));
        }
    }
    if frontends.is_empty() && !diags.iter().any(|d| d.is_error()) {
        let pos = Pos {
            file: drafts
                .proxies
                .first()
                .map_or_else(|| "config".into(), |p| p.pos.file.clone()),
            line: 0,
        };
        diags.push(Diagnostic::warning(
            pos,
            "no frontend or listen section: gatehouse will accept nothing".into(),
        ));
    }
    diags.append(&mut warnings);
    if diags.iter().any(|d| d.is_error()) {
        // Warnings about what is missing would only echo lines that failed to parse.
        return None;
    }
    for p in drafts
        .proxies
        .iter()
        .filter(|p| p.kind == super::parse::SectionKind::Frontend)
    {
        if p.default_backend.is_none() && p.use_backends.is_empty() {
            diags.push(Diagnostic::warning(
                p.pos.clone(),
                format!(
                    "frontend '{}' has no default_backend; its connections will be closed",
                    p.name
                ),
            ));
        }
    }
    for (be, p) in backends
        .iter()
        .zip(drafts.proxies.iter().filter(|p| p.kind.is_backend()))
    {
        if be.servers.is_empty() {
            diags.push(Diagnostic::warning(
                p.pos.clone(),
                format!(
                    "{} '{}' has no server; its connections will be closed",
                    kind_name(p),
                    be.name
                ),
            ));
        }
    }
    if diags.iter().filter(|d| d.is_error()).count() > errors_before {
        return None;
    }
    let backend_names = backends
        .iter()
        .enumerate()
        .map(|(i, b)| (b.name.clone(), i))
        .collect();
    Some(Config {
        global,
        frontends,
        backends,
        resolvers,
        tables,
        backend_names,
        maps,
    })
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

fn backends_pos(backends: &[Backend], i: usize) -> String {
    backends[i].pos.to_string()
}

fn kind_name(p: &ProxyDraft) -> &'static str {
    match p.kind {
        super::parse::SectionKind::Listen => "listen",
        super::parse::SectionKind::Backend => "backend",
        _ => "frontend",
    }
}

fn mode_of(p: &ProxyDraft) -> Mode {
    p.mode.unwrap_or(Mode::Tcp)
}

fn backend_of(
    p: &ProxyDraft,
    res_index: &HashMap<&str, usize>,
    err: &mut impl FnMut(&Pos, String),
    warnings: &mut Vec<Diagnostic>,
) -> Backend {
    let mut servers = p.servers.clone();
    for s in &mut servers {
        if let Some((name, idx)) = &mut s.resolvers {
            match res_index.get(name.as_str()) {
                Some(&i) => *idx = i,
                None => err(
                    &s.pos,
                    format!(
                        "server '{}': 'resolvers {name}' names no resolvers section; add 'resolvers {name}' with a nameserver",
                        s.name
                    ),
                ),
            }
        }
        if let Some(c) = &s.check {
            let has_port = c.port.is_some()
                || matches!(
                    s.target,
                    ServerTarget::Fixed(_, PortSpec::Fixed(_))
                        | ServerTarget::Name {
                            port: PortSpec::Fixed(_),
                            ..
                        }
                );
            match &s.target {
                ServerTarget::OrigDst(_) | ServerTarget::Dynamic { .. } if c.addr.is_none() => err(
                    &s.pos,
                    format!(
                        "server '{}': 'check' needs an address to check, and this server's changes per connection; add 'addr ADDR port PORT' or remove 'check'",
                        s.name
                    ),
                ),
                _ if !has_port => err(
                    &s.pos,
                    format!(
                        "server '{}': 'check' needs a port; give the server one or add 'port PORT'",
                        s.name
                    ),
                ),
                _ => {}
            }
        }
        match &s.target {
            ServerTarget::Dynamic { .. } if s.resolvers.is_none() => err(
                &s.pos,
                format!(
                    "server '{}' dials a name computed per connection, so it needs 'resolvers NAME'",
                    s.name
                ),
            ),
            ServerTarget::Dynamic { .. } if !s.init_addr.is_empty() => {
                warnings.push(Diagnostic::warning(
                    s.pos.clone(),
                    format!(
                        "server '{}' is resolved per connection: 'init-addr' does nothing here",
                        s.name
                    ),
                ))
            }
            ServerTarget::Fixed(..) | ServerTarget::OrigDst(_) if s.resolvers.is_some() => warnings
                .push(Diagnostic::warning(
                    s.pos.clone(),
                    format!(
                        "server '{}' has an address, not a name: 'resolvers' does nothing here",
                        s.name
                    ),
                )),
            _ => {}
        }
    }
    let dynamic: Vec<&str> = servers
        .iter()
        .filter(|s| matches!(s.target, ServerTarget::Dynamic { .. }))
        .map(|s| s.name.as_str())
        .collect();
    if !dynamic.is_empty() && p.allow_names.is_empty() {
        err(
            &p.pos,
            format!(
                "{} '{}' dials names that clients send (server '{}'): add 'allow-name' with the names it may reach (e.g. 'allow-name .example.com'), or 'allow-name *' to run an open proxy on purpose",
                kind_name(p),
                p.name,
                dynamic[0]
            ),
        );
    }
    if p.allow_names.any
        && let Some(pos) = &p.allow_names_pos
    {
        warnings.push(Diagnostic::warning(
            pos.clone(),
            format!(
                "{} '{}' may dial any name a client sends ('allow-name *'): addresses are still checked, but this is an open proxy",
                kind_name(p),
                p.name
            ),
        ));
    }
    let mut names: HashMap<&str, &Pos> = HashMap::new();
    for s in &p.servers {
        if let Some(prev) = names.insert(&s.name, &s.pos) {
            err(
                &s.pos,
                format!(
                    "server '{}' is already defined at {prev}; server names must be unique in a backend",
                    s.name
                ),
            );
        }
    }
    Backend {
        name: p.name.clone(),
        pos: p.pos.clone(),
        mode: mode_of(p),
        servers,
        source: p.source,
        timeout_connect: p.timeout_connect,
        timeout_server: p.timeout_server,
        timeout_tunnel: p.timeout_tunnel,
        balance: p.balance.clone().unwrap_or_default(),
        hash_type: p.hash_type.unwrap_or_default(),
        retries: p.retries.unwrap_or(DEFAULT_RETRIES),
        redispatch: p.redispatch.unwrap_or(false),
        allbackups: p.allbackups.unwrap_or(false),
        timeout_check: p.timeout_check,
        timeout_queue: p.timeout_queue,
        check_kind: p.check_kind.clone().unwrap_or_default(),
        stick_rules: p.stick_rules.clone(),
        acls: p.acls.clone(),
        allow_names: p.allow_names.clone(),
        allow_nets: p.allow_nets.clone(),
        http: p.http.clone(),
    }
}

/// Warnings for `mode http` settings in a tcp section, and for a persistence cookie no server
/// answers to.
fn http_warnings(p: &ProxyDraft, warnings: &mut Vec<Diagnostic>) {
    let h = &p.http;
    if p.kind == super::parse::SectionKind::Defaults {
        return;
    }
    if mode_of(p) == Mode::Tcp {
        let mut said = Vec::new();
        if h.forwardfor.is_some() {
            said.push("option forwardfor");
        }
        if !h.request_rules.is_empty() {
            said.push("http-request/redirect/block");
        }
        if !h.response_rules.is_empty() {
            said.push("http-response");
        }
        if h.cookie.is_some() && p.kind.is_backend() {
            said.push("cookie");
        }
        if h.stats.is_some() {
            said.push("stats");
        }
        if !said.is_empty() {
            warnings.push(Diagnostic::warning(
                p.pos.clone(),
                format!(
                    "{} '{}' is in mode tcp, so {} do nothing; add 'mode http'",
                    kind_name(p),
                    p.name,
                    said.join(", ")
                ),
            ));
        }
    }
    if let Some(c) = &h.cookie
        && p.kind.is_backend()
        && !p.servers.is_empty()
        && p.servers.iter().all(|s| s.cookie.is_none())
    {
        warnings.push(Diagnostic::warning(
            p.pos.clone(),
            format!(
                "cookie '{}' is set but no server has 'cookie VALUE', so nothing sticks; add 'cookie VALUE' to the servers",
                c.name
            ),
        ));
    }
}

/// Resolves an intercept line's target bind and its address families.
fn intercept_of(d: &InterceptDraft, binds: &[Bind]) -> Result<Intercept, String> {
    let bind = match &d.to {
        Some(name) => {
            let i = binds
                .iter()
                .position(|b| b.name.as_deref() == Some(name))
                .ok_or_else(|| format!("'to {name}' names no bind of this section; add 'name {name}' to a bind line"))?;
            if !binds[i].transparent {
                return Err(format!(
                    "bind '{name}' is not transparent; add 'transparent' to its bind line"
                ));
            }
            i
        }
        None => {
            let mut transparent = (0..binds.len()).filter(|&i| binds[i].transparent);
            match (transparent.next(), transparent.next()) {
                (None, _) => return Err("intercept needs a transparent bind in the same section; add 'bind :15001 transparent'".into()),
                (Some(i), None) => i,
                (Some(_), Some(_)) => {
                    return Err("several transparent binds could take these packets; name them ('bind ... name N') and say which with 'to N'".into());
                }
            }
        }
    };
    let bind_fams = binds[bind].families();
    // A family is possible when each include list is empty or has a network of that family.
    let cidr_has = |v4: bool| {
        [&d.src.include, &d.dst.include]
            .iter()
            .all(|l| l.is_empty() || l.iter().any(|n| matches!(n, ipnet::IpNet::V4(_)) == v4))
    };
    let wanted = d.family.unwrap_or(Families::Both);
    let v4 = wanted.has_v4() && bind_fams.has_v4() && cidr_has(true);
    let v6 = wanted.has_v6() && bind_fams.has_v6() && cidr_has(false);
    let families = match (v4, v6) {
        (true, true) => Families::Both,
        (true, false) => Families::V4,
        (false, true) => Families::V6,
        (false, false) => {
            return Err("this intercept matches no address family its bind receives; check 'family', the CIDRs and the bind address".into());
        }
    };
    Ok(Intercept {
        pos: d.pos.clone(),
        bind,
        families,
        dports: d.dports.clone(),
        iif: d.iif.clone(),
        src: d.src.clone(),
        dst: d.dst.clone(),
    })
}

/// Connect retries when `retries` is not set (HAProxy's default).
pub const DEFAULT_RETRIES: u32 = 3;

/// The connect timeout when none is configured. HAProxy warns and waits forever; we pick a bound.
pub const DEFAULT_TIMEOUT_CONNECT: Duration = Duration::from_secs(5);

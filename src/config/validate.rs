//! Validation: drafts → model. Resolves names to indices, applies defaults, and checks what only the
//! whole file can tell (a `default_backend` that names nothing, an `intercept` with no transparent bind).

use std::collections::HashMap;
use std::time::Duration;

use super::model::{Backend, Bind, Config, Families, Frontend, Global, Intercept, Mode};
use super::parse::{Drafts, InterceptDraft, ProxyDraft};
use super::{Diagnostic, lexer::Pos};

/// Process maxconn when the global section does not say.
pub const DEFAULT_MAXCONN: u32 = 50_000;

pub fn validate(drafts: Drafts, diags: &mut Vec<Diagnostic>) -> Option<Config> {
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    let mut err = |pos: &Pos, msg: String| diags.push(Diagnostic::error(pos.clone(), msg));

    let g = drafts.global;
    let global = Global {
        maxconn: g.maxconn.unwrap_or(DEFAULT_MAXCONN),
        pidfile: g.pidfile,
        nbthread: g.nbthread,
        plumbing: g.plumbing,
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
            backends.push(backend_of(p, &mut err));
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
        frontends.push(Frontend {
            name: p.name.clone(),
            pos: p.pos.clone(),
            mode: mode_of(p),
            binds: p.binds.clone(),
            intercepts,
            maxconn: p.maxconn.unwrap_or(global.maxconn).min(global.maxconn),
            timeout_client: p.timeout_client,
            default_backend,
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
    if diags.iter().any(|d| d.is_error()) {
        // Warnings about what is missing would only echo lines that failed to parse.
        return None;
    }
    for p in drafts
        .proxies
        .iter()
        .filter(|p| p.kind == super::parse::SectionKind::Frontend)
    {
        if p.default_backend.is_none() {
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
    Some(Config {
        global,
        frontends,
        backends,
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

fn backend_of(p: &ProxyDraft, err: &mut impl FnMut(&Pos, String)) -> Backend {
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
        servers: p.servers.clone(),
        source: p.source,
        timeout_connect: p.timeout_connect,
        timeout_server: p.timeout_server,
        timeout_tunnel: p.timeout_tunnel,
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

/// The connect timeout when none is configured. HAProxy warns and waits forever; we pick a bound.
pub const DEFAULT_TIMEOUT_CONNECT: Duration = Duration::from_secs(5);

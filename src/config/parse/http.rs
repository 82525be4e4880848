//! Keywords of `mode http`: `option forwardfor|httplog|dontlognull|http-keep-alive|http-server-close|
//! httpclose`, `timeout http-request|http-keep-alive`, `http-request`, `http-response`, `redirect`,
//! `block`, `errorfile`, `cookie`, and the proxy side of `stats`.

use super::content::{cond_of, split_cond};
use super::{Section, SectionKind, parse_duration, parse_u32};
use crate::config::model::{
    CliAddr, CliLevel, CookieMode, CookieSettings, ForwardFor, HttpAction, HttpConnMode, HttpRule,
    Redirect, RedirectKind, RulePhase, StatsSettings, StatsSocket,
};
use crate::rules::pattern::Method;
use crate::rules::sample::Template;

/// The statuses HAProxy lets `errorfile` and `deny_status` name.
const ERROR_CODES: &[u16] = &[
    200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504,
];

pub(super) fn set_conn_mode(p: &mut super::ProxyDraft, mode: HttpConnMode, on: bool) {
    if on {
        p.http.conn_mode = Some(mode);
    } else if p.http.conn_mode == Some(mode) {
        p.http.conn_mode = None;
    }
}

fn template(sec: &mut Section<'_>, s: &str) -> Result<Template, String> {
    let maps = &mut sec.global.maps;
    Template::parse(s, &mut |f: &str, m: Method| maps.load(f, m))
}

fn header_name(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' is not a header name"))
    }
}

pub(super) fn h_forwardfor(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const USAGE: &str = "option forwardfor [except CIDR] [header NAME] [if-none]";
    let mut ff = ForwardFor::default();
    let mut rest = args;
    while let Some(w) = rest.first() {
        match w.as_str() {
            "except" => {
                let v = rest
                    .get(1)
                    .ok_or_else(|| format!("'except' needs a network; write '{USAGE}'"))?;
                let net = match v.parse::<ipnet::IpNet>() {
                    Ok(n) => n,
                    Err(_) => v
                        .parse::<std::net::IpAddr>()
                        .map(ipnet::IpNet::from)
                        .map_err(|_| format!("'{v}' is not a network; write 127.0.0.0/8"))?,
                };
                ff.except.push(net);
                rest = &rest[2..];
            }
            "header" => {
                let v = rest
                    .get(1)
                    .ok_or_else(|| format!("'header' needs a name; write '{USAGE}'"))?;
                ff.header = Some(header_name(v)?);
                rest = &rest[2..];
            }
            "if-none" => {
                ff.if_none = true;
                rest = &rest[1..];
            }
            other => return Err(format!("unexpected '{other}'; write '{USAGE}'")),
        }
    }
    sec.px().http.forwardfor = Some(ff);
    Ok(())
}

pub(super) fn h_httplog(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        None => {
            sec.px().http.httplog = true;
            Ok(())
        }
        Some("clf") => Err(
            "'option httplog clf' is not supported; write 'option httplog' (HAProxy's layout)"
                .into(),
        ),
        Some(o) => Err(format!("unexpected '{o}'; write 'option httplog'")),
    }
}

pub(super) fn h_timeout_http_request(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let d = parse_duration(super::one(args, "timeout http-request DURATION")?)?;
    sec.px().http.timeout_request = Some(d);
    Ok(())
}

pub(super) fn h_timeout_http_keep_alive(
    sec: &mut Section<'_>,
    args: &[String],
) -> Result<(), String> {
    let d = parse_duration(super::one(args, "timeout http-keep-alive DURATION")?)?;
    sec.px().http.timeout_keep_alive = Some(d);
    Ok(())
}

fn status_code(v: &str, what: &str) -> Result<u16, String> {
    v.parse::<u16>()
        .ok()
        .filter(|c| ERROR_CODES.contains(c))
        .ok_or_else(|| {
            format!(
                "{what} '{v}' is not a status gatehouse answers with; use one of {}",
                ERROR_CODES
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// `prefix|location|scheme TEXT [code N] [drop-query] [append-slash]` (what follows `redirect`).
fn redirect(sec: &mut Section<'_>, words: &[String]) -> Result<Redirect, String> {
    const USAGE: &str = "redirect prefix|location|scheme TEXT [code 301|302|303|307|308] [drop-query] [append-slash] [if|unless CONDITION]";
    let kind = match words.first().map(String::as_str) {
        Some("prefix") => RedirectKind::Prefix,
        Some("location") => RedirectKind::Location,
        Some("scheme") => RedirectKind::Scheme,
        Some(o) => return Err(format!("unknown redirect type '{o}'; write '{USAGE}'")),
        None => return Err(format!("missing redirect type; write '{USAGE}'")),
    };
    let to = words
        .get(1)
        .ok_or_else(|| format!("missing redirect target; write '{USAGE}'"))?;
    let mut r = Redirect {
        kind,
        to: template(sec, to)?,
        code: 302,
        drop_query: false,
        append_slash: false,
    };
    let mut rest = &words[2..];
    while let Some(w) = rest.first() {
        match w.as_str() {
            "code" => {
                let v = rest
                    .get(1)
                    .ok_or_else(|| format!("'code' needs a status; write '{USAGE}'"))?;
                r.code = v
                    .parse::<u16>()
                    .ok()
                    .filter(|c| [301, 302, 303, 307, 308].contains(c))
                    .ok_or_else(|| {
                        format!("redirect code '{v}' must be 301, 302, 303, 307 or 308")
                    })?;
                rest = &rest[2..];
            }
            "drop-query" => {
                r.drop_query = true;
                rest = &rest[1..];
            }
            "append-slash" => {
                r.append_slash = true;
                rest = &rest[1..];
            }
            "set-cookie" | "clear-cookie" => {
                return Err(format!(
                    "redirect option '{w}' is not supported; set cookies from the server"
                ));
            }
            other => return Err(format!("unexpected '{other}'; write '{USAGE}'")),
        }
    }
    Ok(r)
}

/// Adds a request rule where HAProxy runs it: after the section's rules of its own phase and
/// before those of later phases (block, then http-request, then redirect). A line that lands
/// before one written above it draws a warning saying so.
fn push_request_rule(sec: &mut Section<'_>, rule: HttpRule, word: &str) {
    let rules = &mut sec.px().http.request_rules;
    let at = rules
        .iter()
        .position(|r| r.phase > rule.phase)
        .unwrap_or(rules.len());
    let over = rules.get(at).map(|r| match r.phase {
        RulePhase::Block => "block",
        RulePhase::HttpRequest => "http-request",
        RulePhase::Redirect => "redirect",
    });
    rules.insert(at, rule);
    if let Some(over) = over {
        sec.warnings.push(format!(
            "this '{word}' line runs before the '{over}' lines above it (HAProxy runs block, then http-request, then redirect rules); move it up to make the order visible"
        ));
    }
}

pub(super) fn h_redirect(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let (words, cond) = split_cond(args);
    let r = redirect(sec, words)?;
    let cond = cond_of(sec, cond)?;
    push_request_rule(
        sec,
        HttpRule {
            action: HttpAction::Redirect(r),
            cond,
            phase: RulePhase::Redirect,
        },
        "redirect",
    );
    Ok(())
}

pub(super) fn h_block(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let (words, cond) = split_cond(args);
    if let Some(w) = words.first() {
        return Err(format!(
            "unexpected '{w}'; write 'block if|unless CONDITION'"
        ));
    }
    if cond.is_empty() {
        return Err("'block' needs a condition; write 'block if|unless CONDITION'".into());
    }
    let cond = cond_of(sec, cond)?;
    sec.warnings.push(
        "'block' is HAProxy's old spelling; 'http-request deny if CONDITION' says the same".into(),
    );
    push_request_rule(
        sec,
        HttpRule {
            action: HttpAction::Deny { status: 403 },
            cond,
            phase: RulePhase::Block,
        },
        "block",
    );
    Ok(())
}

fn header_action(
    sec: &mut Section<'_>,
    verb: &str,
    words: &[String],
) -> Result<HttpAction, String> {
    match (verb, words) {
        ("set-header" | "add-header", [name, fmt]) => {
            let name = header_name(name)?;
            let fmt = template(sec, fmt)?;
            Ok(if verb == "set-header" {
                HttpAction::SetHeader(name, fmt)
            } else {
                HttpAction::AddHeader(name, fmt)
            })
        }
        ("set-header" | "add-header", _) => Err(format!(
            "write '{verb} NAME VALUE' (quote a value with spaces)"
        )),
        ("del-header", [name]) => Ok(HttpAction::DelHeader(header_name(name)?)),
        ("del-header", _) => Err("write 'del-header NAME'".into()),
        _ => unreachable!("only header verbs come here"),
    }
}

pub(super) fn h_http_request(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const KNOWN: &str = "allow, deny [deny_status N], reject, redirect, set-header, add-header, del-header, set-path and use-service prometheus-exporter";
    let (words, cond) = split_cond(args);
    let Some(verb) = words.first() else {
        return Err(format!(
            "missing action; gatehouse takes http-request {KNOWN}"
        ));
    };
    let action = match verb.as_str() {
        "allow" if words.len() == 1 => HttpAction::Allow,
        "reject" if words.len() == 1 => HttpAction::Reject,
        "deny" => {
            let status = match &words[1..] {
                [] => 403,
                [k, v] if k == "deny_status" || k == "status" => status_code(v, "deny_status")?,
                _ => {
                    return Err(
                        "write 'http-request deny [deny_status N] [if|unless CONDITION]'".into(),
                    );
                }
            };
            HttpAction::Deny { status }
        }
        "redirect" => HttpAction::Redirect(redirect(sec, &words[1..])?),
        "set-header" | "add-header" | "del-header" => header_action(sec, verb, &words[1..])?,
        "set-path" => match &words[1..] {
            [fmt] => HttpAction::SetPath(template(sec, fmt)?),
            _ => return Err("write 'http-request set-path FORMAT'".into()),
        },
        "use-service" => match &words[1..] {
            [s] if s == "prometheus-exporter" => HttpAction::Prometheus,
            _ => {
                return Err(
                    "gatehouse's only service is prometheus-exporter: write 'http-request use-service prometheus-exporter if { path /metrics }'"
                        .into(),
                );
            }
        },
        other => {
            return Err(format!(
                "'http-request {other}' is not supported; gatehouse takes http-request {KNOWN}"
            ));
        }
    };
    let cond = cond_of(sec, cond)?;
    push_request_rule(
        sec,
        HttpRule {
            action,
            cond,
            phase: RulePhase::HttpRequest,
        },
        "http-request",
    );
    Ok(())
}

pub(super) fn h_http_response(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const KNOWN: &str = "allow, set-header, add-header and del-header";
    let (words, cond) = split_cond(args);
    let action = match words.first().map(String::as_str) {
        Some("allow") if words.len() == 1 => HttpAction::Allow,
        Some(v @ ("set-header" | "add-header" | "del-header")) => {
            header_action(sec, v, &words[1..])?
        }
        Some(other) => {
            return Err(format!(
                "'http-response {other}' is not supported; gatehouse takes http-response {KNOWN}"
            ));
        }
        None => {
            return Err(format!(
                "missing action; gatehouse takes http-response {KNOWN}"
            ));
        }
    };
    let cond = cond_of(sec, cond)?;
    sec.px().http.response_rules.push(HttpRule {
        action,
        cond,
        phase: RulePhase::HttpRequest,
    });
    Ok(())
}

/// Checks that `bytes` is a complete HTTP response head (what HAProxy sends as is).
pub fn check_error_response(bytes: &[u8]) -> Result<(), String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => Ok(()),
        Ok(httparse::Status::Partial) => Err("its HTTP head has no end (an empty line)".into()),
        Err(e) => Err(format!("it is not an HTTP response ({e})")),
    }
}

pub(super) fn h_errorfile(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const USAGE: &str = "errorfile CODE FILE";
    let [code, file] = args else {
        return Err(format!("write '{USAGE}'"));
    };
    let code = status_code(code, "errorfile status")?;
    let bytes = std::fs::read(file).map_err(|e| {
        format!(
            "errorfile {code} '{file}': cannot read it ({e}); give the path of a complete HTTP response, relative to where gatehouse starts"
        )
    })?;
    check_error_response(&bytes).map_err(|e| {
        format!(
            "errorfile {code} '{file}': {e}; the file must hold a whole response such as 'HTTP/1.1 503 Service Unavailable', headers, an empty line and a body"
        )
    })?;
    let list = &mut sec.px().http.errorfiles;
    list.retain(|(c, _)| *c != code);
    list.push((code, bytes.into()));
    Ok(())
}

pub(super) fn h_cookie(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const USAGE: &str = "cookie NAME insert|rewrite|prefix [indirect] [nocache] [postonly] [preserve] [httponly] [secure] [domain D] [maxidle T] [maxlife T]";
    let Some(name) = args.first() else {
        return Err(format!("missing cookie name; write '{USAGE}'"));
    };
    header_name(name).map_err(|_| format!("'{name}' is not a cookie name"))?;
    let mut c = CookieSettings {
        name: name.clone(),
        mode: CookieMode::Insert,
        indirect: false,
        nocache: false,
        httponly: false,
        secure: false,
        postonly: false,
        preserve: false,
        maxidle: None,
        maxlife: None,
        domains: Vec::new(),
    };
    let mut mode = None;
    let mut rest = &args[1..];
    while let Some(w) = rest.first() {
        let mut take = 1;
        match w.as_str() {
            "insert" | "rewrite" | "prefix" => {
                let m = match w.as_str() {
                    "insert" => CookieMode::Insert,
                    "rewrite" => CookieMode::Rewrite,
                    _ => CookieMode::Prefix,
                };
                if mode.is_some_and(|p| p != m) {
                    return Err("choose one of insert, rewrite and prefix".into());
                }
                mode = Some(m);
            }
            "indirect" => c.indirect = true,
            "nocache" => c.nocache = true,
            "httponly" => c.httponly = true,
            "secure" => c.secure = true,
            "postonly" => c.postonly = true,
            "preserve" => c.preserve = true,
            "domain" | "maxidle" | "maxlife" => {
                let v = rest
                    .get(1)
                    .ok_or_else(|| format!("'{w}' needs a value; write '{USAGE}'"))?;
                match w.as_str() {
                    "domain" => c.domains.push(v.clone()),
                    "maxidle" => c.maxidle = Some(parse_duration(v)?),
                    _ => c.maxlife = Some(parse_duration(v)?),
                }
                take = 2;
            }
            "attr" | "dynamic" => {
                return Err(format!("cookie option '{w}' is not supported"));
            }
            other => return Err(format!("unexpected '{other}'; write '{USAGE}'")),
        }
        rest = &rest[take..];
    }
    c.mode = mode.unwrap_or(CookieMode::Rewrite);
    if c.mode != CookieMode::Insert
        && (c.indirect || c.nocache || c.postonly || c.maxidle.is_some() || c.maxlife.is_some())
    {
        return Err(
            "indirect, nocache, postonly, maxidle and maxlife go with 'insert'; add 'insert' or remove them"
                .into(),
        );
    }
    sec.px().http.cookie = Some(c);
    Ok(())
}

/// `stats …`: in global the runtime API's lines (issue #5) draw a warning; in a proxy the page's
/// settings are kept (its URI is intercepted and its authentication enforced).
/// `stats socket ADDR [options]`, `stats timeout T` and the other global `stats` lines.
fn global_stats(sec: &mut Section<'_>, what: &str, args: &[String]) -> Result<(), String> {
    match what {
        "socket" => {
            let s = stats_socket(args)?;
            if sec.global.stats_sockets.iter().any(|o| o.addr == s.addr) {
                return Err(
                    "this stats socket address is already used by another 'stats socket' line"
                        .into(),
                );
            }
            sec.global.stats_sockets.push(s);
        }
        "timeout" => {
            let [t] = args else {
                return Err("write 'stats timeout TIME', e.g. 'stats timeout 2m'".into());
            };
            sec.global.stats_timeout = Some(parse_duration(t)?);
        }
        "maxconn" | "bind-process" => sec
            .warnings
            .push(format!("'stats {what}' is ignored by gatehouse")),
        w => {
            return Err(format!(
                "'stats {w}' is not a global keyword; gatehouse takes 'stats socket' and 'stats timeout' here (stats enable/uri/auth belong in a frontend or listen section)"
            ));
        }
    }
    Ok(())
}

/// A `stats socket` line's address and options.
fn stats_socket(args: &[String]) -> Result<StatsSocket, String> {
    let Some(addr) = args.first() else {
        return Err("write 'stats socket /run/gatehouse.sock mode 600 level admin' or 'stats socket ipv4@127.0.0.1:9999 level operator'".into());
    };
    let tcp = |a: &str| {
        a.parse::<std::net::SocketAddr>()
            .map_err(|_| format!("'{a}' is not ADDRESS:PORT (IPv6 in brackets: [::1]:9999)"))
    };
    let addr = if let Some(a) = addr.strip_prefix("ipv4@").or(addr.strip_prefix("ipv6@")) {
        CliAddr::Tcp(tcp(a)?)
    } else if let Some(p) = addr.strip_prefix("unix@") {
        CliAddr::Unix(p.into())
    } else if addr.starts_with('/') || addr.starts_with('.') {
        CliAddr::Unix(addr.into())
    } else if addr.contains('@') {
        return Err(format!(
            "'{addr}': gatehouse's stats socket is a unix path, unix@PATH, ipv4@ADDR:PORT or ipv6@[ADDR]:PORT"
        ));
    } else {
        CliAddr::Tcp(tcp(addr)?)
    };
    let mut s = StatsSocket {
        addr,
        mode: None,
        uid: None,
        gid: None,
        level: CliLevel::Operator,
    };
    let mut rest = args[1..].iter();
    while let Some(opt) = rest.next() {
        let mut val = || {
            rest.next()
                .map(String::as_str)
                .ok_or_else(|| format!("'{opt}' needs a value"))
        };
        match opt.as_str() {
            "level" => {
                s.level = match val()? {
                    "user" => CliLevel::User,
                    "operator" => CliLevel::Operator,
                    "admin" => CliLevel::Admin,
                    l => return Err(format!("unknown level '{l}'; use user, operator or admin")),
                }
            }
            "mode" => {
                let m = val()?;
                s.mode = Some(
                    u32::from_str_radix(m, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| format!("mode '{m}' is not an octal file mode like 600"))?,
                );
            }
            "uid" => s.uid = Some(parse_u32(val()?, "uid")?),
            "gid" => s.gid = Some(parse_u32(val()?, "gid")?),
            "user" => {
                let u = val()?;
                s.uid = Some(
                    nix::unistd::User::from_name(u)
                        .ok()
                        .flatten()
                        .ok_or_else(|| format!("no user '{u}' on this system"))?
                        .uid
                        .as_raw(),
                );
            }
            "group" => {
                let g = val()?;
                s.gid = Some(
                    nix::unistd::Group::from_name(g)
                        .ok()
                        .flatten()
                        .ok_or_else(|| format!("no group '{g}' on this system"))?
                        .gid
                        .as_raw(),
                );
            }
            "expose-fd" => {
                val()?;
            }
            o => {
                return Err(format!(
                    "unknown stats socket option '{o}'; gatehouse takes mode, uid, gid, user, group and level"
                ));
            }
        }
    }
    if matches!(s.addr, CliAddr::Tcp(_)) && (s.mode.is_some() || s.uid.is_some() || s.gid.is_some())
    {
        return Err("mode, uid, gid, user and group apply to unix sockets only".into());
    }
    Ok(s)
}

pub(super) fn h_stats(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let Some(what) = args.first() else {
        return Err("missing stats keyword; write 'stats enable', 'stats uri PATH', …".into());
    };
    if sec.kind() == SectionKind::Global {
        return global_stats(sec, what, &args[1..]);
    }
    let st = sec.px().http.stats.get_or_insert_with(|| StatsSettings {
        uri: "/haproxy?stats".into(),
        auth: Vec::new(),
        realm: "HAProxy Statistics".into(),
        hide_version: false,
        refresh: None,
        admin: None,
    });
    match (what.as_str(), &args[1..]) {
        ("enable", []) => {}
        ("uri", [u]) if u.starts_with('/') => st.uri = u.clone(),
        ("uri", _) => return Err("write 'stats uri /PATH'".into()),
        ("auth", [ua]) => match ua.split_once(':') {
            Some((u, p)) if !u.is_empty() => st.auth.push((u.to_string(), p.to_string())),
            _ => return Err("write 'stats auth USER:PASSWORD'".into()),
        },
        ("realm", [r]) => st.realm = r.clone(),
        ("hide-version", []) => st.hide_version = true,
        ("refresh", [t]) => st.refresh = Some(parse_duration(t)?),
        ("admin", cond) if !cond.is_empty() && (cond[0] == "if" || cond[0] == "unless") => {
            let cond = cond_of(sec, cond)?;
            let st = sec.px().http.stats.as_mut().expect("created above");
            st.admin = cond;
        }
        ("admin", _) => {
            return Err(
                "write 'stats admin if CONDITION' (e.g. 'stats admin if { src 10.0.0.0/8 }' or 'stats admin if TRUE')"
                    .into(),
            );
        }
        ("show-legends" | "show-node" | "show-desc" | "scope", _) => {
            sec.warnings.push(format!(
                "'stats {what}' is ignored by gatehouse's stats page"
            ));
        }
        ("socket" | "timeout" | "maxconn" | "bind-process", _) => {
            return Err(format!("'stats {what}' belongs in the global section"));
        }
        (w, _) => {
            return Err(format!(
                "'stats {w}' is not understood here; gatehouse takes stats enable, uri, auth, realm, hide-version, refresh and admin"
            ));
        }
    }
    Ok(())
}

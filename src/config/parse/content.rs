//! Keywords for content inspection and routing: `acl`, `use_backend`, `tcp-request`, and gatehouse's
//! `dial-*`, `require-match`, `ech`, `unclassified`, `allow-name`, `allow-net`.

use super::{FallbackDraft, Section, UseBackendDraft, one, parse_duration};
use crate::config::model::{
    DataType, Dial, EchPolicy, KeyType, Rule, RuleAction, StickRule, StickTableDef,
};
use crate::rules::pattern::{Method, read_pattern_file};
use crate::rules::sample::Template;
use crate::rules::{self, Cond};

fn read_file(path: &str) -> Result<Vec<String>, String> {
    read_pattern_file(path)
}

/// Splits `ACTION… [if|unless COND…]` at the condition.
pub(super) fn split_cond(args: &[String]) -> (&[String], &[String]) {
    match args.iter().position(|w| w == "if" || w == "unless") {
        Some(i) => (&args[..i], &args[i..]),
        None => (args, &[]),
    }
}

pub(super) fn cond_of(sec: &mut Section<'_>, words: &[String]) -> Result<Option<Cond>, String> {
    if words.is_empty() {
        return Ok(None);
    }
    let acls = &mut sec.px().acls;
    rules::parse_cond(words, acls, &mut read_file).map(Some)
}

pub(super) fn h_acl(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const USAGE: &str = "acl NAME CRITERION [-i] [-m METHOD] [-f FILE] PATTERN...";
    let Some(name) = args.first() else {
        return Err(format!("missing ACL name; write '{USAGE}'"));
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        return Err(format!(
            "'{name}' is not an ACL name; use letters, digits, '-', '_', '.' and ':'"
        ));
    }
    if rules::predefined(name).is_some() {
        return Err(format!("'{name}' is a predefined ACL; choose another name"));
    }
    if args.len() < 2 {
        return Err(format!("ACL '{name}' has no criterion; write '{USAGE}'"));
    }
    let test =
        rules::parse_test(&args[1..], &mut read_file).map_err(|e| format!("acl '{name}': {e}"))?;
    if test.matcher.is_empty() {
        sec.warnings.push(format!(
            "acl '{name}' has no pattern, so it never matches; add patterns, or '-m found' to test that a value is there"
        ));
    }
    rules::define(&mut sec.px().acls, name, test);
    Ok(())
}

pub(super) fn h_use_backend(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const USAGE: &str = "use_backend NAME|%[EXPR] [if|unless CONDITION]";
    let (target, cond) = split_cond(args);
    let name = match target {
        [n] => n.clone(),
        [] => return Err(format!("missing backend; write '{USAGE}'")),
        [_, extra, ..] => return Err(format!("unexpected '{extra}'; write '{USAGE}'")),
    };
    let parsed = if Template::is_template(&name) {
        let maps = &mut sec.global.maps;
        Ok(Template::parse(&name, &mut |f: &str, m: Method| {
            maps.load(f, m)
        })?)
    } else {
        // A plain name; the validator looks it up.
        Err(name)
    };
    let cond = cond_of(sec, cond)?;
    let pos = sec.pos.clone();
    sec.px().use_backends.push(UseBackendDraft {
        pos,
        target: parsed,
        cond,
    });
    Ok(())
}

pub(super) fn h_tcp_request(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const USAGE: &str = "tcp-request inspect-delay TIME | tcp-request connection|session|content accept|reject [if|unless CONDITION]";
    let Some(kind) = args.first() else {
        return Err(format!("missing argument; write '{USAGE}'"));
    };
    match kind.as_str() {
        "inspect-delay" => {
            let d = parse_duration(one(&args[1..], "tcp-request inspect-delay TIME")?)?;
            sec.px().inspect_delay = Some(d);
            Ok(())
        }
        "connection" | "content" | "session" => {
            let (action, cond) = split_cond(&args[1..]);
            let act = match action {
                [a] if a == "accept" => RuleAction::Accept,
                [a] if a == "reject" => RuleAction::Reject,
                [a, rest @ ..] if a.starts_with("track-sc") => {
                    let n = sc_number(a.strip_prefix("track-sc").unwrap_or(""))
                        .ok_or_else(|| format!("'{a}': write track-sc0, track-sc1 or track-sc2"))?;
                    let (key, table) = match rest {
                        [k] => (k, None),
                        [k, t, name] if t == "table" => (k, Some(name.clone())),
                        _ => {
                            return Err(format!(
                                "write 'tcp-request {kind} {a} KEY [table TABLE]'"
                            ));
                        }
                    };
                    let maps = &mut sec.global.maps;
                    let key =
                        Template::parse(&format!("%[{key}]"), &mut |f: &str, m| maps.load(f, m))?;
                    RuleAction::Track {
                        n,
                        key,
                        table: (table, usize::MAX),
                    }
                }
                [a] if a.starts_with("sc-inc-gpc0") => {
                    let n = a
                        .strip_prefix("sc-inc-gpc0(")
                        .and_then(|x| x.strip_suffix(')'))
                        .map_or(Some(0), sc_number)
                        .ok_or_else(|| format!("'{a}': write sc-inc-gpc0(0), (1) or (2)"))?;
                    RuleAction::IncGpc0(n)
                }
                [a, ..] if a.starts_with("do-resolve") || a.starts_with("set-dst") => {
                    return Err(format!(
                        "'tcp-request {kind} {a}' is not needed in gatehouse: a server written 'server NAME %[req.ssl_sni]:443 resolvers R' resolves and dials the name itself (docs/sni-proxy.md)"
                    ));
                }
                [a, ..] => {
                    return Err(format!(
                        "'tcp-request {kind} {a}' is not supported; gatehouse takes accept, reject, track-sc0|1|2 and sc-inc-gpc0"
                    ));
                }
                [] => return Err(format!("missing action; write '{USAGE}'")),
            };
            if sec.kind() == super::SectionKind::Defaults {
                return Err(format!(
                    "'tcp-request {kind}' rules belong in a frontend or listen section, not in defaults"
                ));
            }
            let cond = cond_of(sec, cond)?;
            if kind == "connection"
                && (matches!(&act, RuleAction::Track { key, .. } if key.needs_handshake())
                    || cond
                        .as_ref()
                        .is_some_and(|c| c.needs_handshake(&sec.px().acls)))
            {
                return Err(
                    "'tcp-request connection' runs before the TLS handshake, so ssl_fc* and ssl_c_* have no value yet; use 'tcp-request session' or 'tcp-request content', which run after it".into(),
                );
            }
            if kind != "content"
                && let RuleAction::Track { key, .. } = &act
                && key.needs_content()
            {
                return Err(format!(
                    "'tcp-request {kind}' runs before any data arrives, so it can only track src, dst, src_port or dst_port; use 'tcp-request content track-sc…' for the rest"
                ));
            }
            let rule = Rule { action: act, cond };
            if kind == "content" {
                sec.px().content_rules.push(rule);
            } else {
                if let Some(c) = &rule.cond
                    && c.needs_content(&sec.px().acls)
                {
                    return Err(format!(
                        "'tcp-request {kind}' runs before any data arrives, so its condition can only use src, dst, src_port and dst_port; use 'tcp-request content' for the rest"
                    ));
                }
                match kind.as_str() {
                    "session" => sec.px().session_rules.push(rule),
                    _ => sec.px().connection_rules.push(rule),
                }
            }
            Ok(())
        }
        other => Err(format!("unknown 'tcp-request {other}'; write '{USAGE}'")),
    }
}

fn set_dial(sec: &mut Section<'_>, args: &[String], dial: Dial, word: &str) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!(
            "'{word}' takes no argument, but '{extra}' was given"
        ));
    }
    let pos = sec.pos.clone();
    let px = sec.px();
    if let Some((prev, at)) = &px.dial
        && *prev != dial
        && px.kind != super::SectionKind::Defaults
        && at.file == pos.file
        && at.line > px.pos.line
    {
        return Err(format!(
            "this section already chose another dial mode at {at}; keep one of dial-resolved, dial-original, require-match"
        ));
    }
    px.dial = Some((dial, pos));
    Ok(())
}

pub(super) fn h_dial_resolved(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    set_dial(sec, args, Dial::Resolved, "dial-resolved")
}

pub(super) fn h_dial_original(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    set_dial(sec, args, Dial::Original, "dial-original")
}

pub(super) fn h_require_match(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    set_dial(sec, args, Dial::RequireMatch, "require-match")
}

pub(super) fn h_ech(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.px().ech = Some(match one(args, "ech allow|reject")? {
        "allow" => EchPolicy::Allow,
        "reject" => EchPolicy::Reject,
        other => {
            return Err(format!(
                "unknown ECH policy '{other}'; write 'ech allow' or 'ech reject'"
            ));
        }
    });
    Ok(())
}

pub(super) fn h_unclassified(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const USAGE: &str =
        "unclassified timeout|no-sni|not-tls|malformed|all original|reject|backend NAME";
    let (event, action) = match args {
        [e, a @ ..] if !a.is_empty() => (e.as_str(), a),
        _ => return Err(format!("write '{USAGE}'")),
    };
    let slots: &[usize] = match event {
        "timeout" => &[0],
        "no-sni" | "no-name" => &[1],
        "not-tls" | "unknown" => &[2],
        "malformed" => &[3],
        "all" => &[0, 1, 2, 3],
        other => return Err(format!("unknown event '{other}'; write '{USAGE}'")),
    };
    let fb = match action {
        [a] if a == "original" => FallbackDraft::Original,
        [a] if a == "reject" => FallbackDraft::Reject,
        [a, name] if a == "backend" || a == "use_backend" => FallbackDraft::Backend(name.clone()),
        _ => {
            return Err(format!(
                "unknown action '{}'; write '{USAGE}'",
                action.join(" ")
            ));
        }
    };
    let pos = sec.pos.clone();
    for &i in slots {
        sec.px().unclassified[i] = Some((fb.clone(), pos.clone()));
    }
    Ok(())
}

pub(super) fn h_allow_name(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const USAGE: &str = "allow-name PATTERN... | allow-name -f FILE";
    if args.is_empty() {
        return Err(format!("missing patterns; write '{USAGE}'"));
    }
    let mut it = args.iter();
    let mut patterns = Vec::new();
    while let Some(a) = it.next() {
        if a == "-f" {
            let f = it
                .next()
                .ok_or_else(|| format!("'-f' needs a file; write '{USAGE}'"))?;
            // A map file works too: its first column is the name.
            for line in read_pattern_file(f)? {
                let first = line.split_whitespace().next().unwrap_or("").to_string();
                patterns.push((first, Some(f.clone())));
            }
        } else {
            patterns.push((a.clone(), None));
        }
    }
    let pos = sec.pos.clone();
    let px = sec.px();
    for (p, file) in patterns {
        px.allow_names.add(&p).map_err(|e| match file {
            Some(f) => format!("{f}: {e}"),
            None => e,
        })?;
    }
    px.allow_names_pos.get_or_insert(pos);
    Ok(())
}

pub(super) fn h_allow_net(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err(
            "missing networks; write 'allow-net CIDR...' (e.g. allow-net 10.0.0.0/8)".into(),
        );
    }
    for a in args {
        let net = super::parse_cidr(a)?;
        sec.px().allow_nets.push(net);
    }
    Ok(())
}

fn sc_number(s: &str) -> Option<usize> {
    s.parse::<usize>().ok().filter(|n| *n < 3)
}

/// `stick-table type ip|ipv6|integer|string [len N]|binary [len N] size N [expire T] [store LIST]`.
pub(super) fn h_stick_table(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const USAGE: &str = "stick-table type ip|ipv6|integer|string [len N]|binary [len N] size N [expire TIME] [store DATA,...]";
    let mut key_type = None;
    let mut size = None;
    let mut expire = None;
    let mut store = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(w) = it.next() {
        let mut val = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("'{what}' needs a value; write '{USAGE}'"))
        };
        match w.as_str() {
            "type" => {
                let t = val("type")?;
                key_type = Some(match t.as_str() {
                    "ip" => KeyType::Ip,
                    "ipv6" => KeyType::Ipv6,
                    "integer" => KeyType::Integer,
                    "string" | "binary" => {
                        let len = if it.peek().is_some_and(|w| *w == "len") {
                            it.next();
                            it.next()
                                .and_then(|n| n.parse().ok())
                                .filter(|n| (1..=4096).contains(n))
                                .ok_or("'len' takes a number from 1 to 4096")?
                        } else {
                            32
                        };
                        if t == "string" {
                            KeyType::String(len)
                        } else {
                            KeyType::Binary(len)
                        }
                    }
                    other => return Err(format!("unknown table type '{other}'; write '{USAGE}'")),
                });
            }
            "size" => {
                let v = val("size")?;
                let (num, mult) = match v.chars().last() {
                    Some('k') => (&v[..v.len() - 1], 1000),
                    Some('m') => (&v[..v.len() - 1], 1_000_000),
                    _ => (v.as_str(), 1),
                };
                size = Some(
                    num.parse::<usize>()
                        .ok()
                        .map(|n| n * mult)
                        .filter(|n| (1..=50_000_000).contains(n))
                        .ok_or_else(|| {
                            format!("'size {v}': write a number of entries such as 100k")
                        })?,
                );
            }
            "expire" => expire = Some(super::parse_duration(&val("expire")?)?),
            "store" => {
                for d in val("store")?.split(',') {
                    store.push(data_type(d)?);
                }
            }
            "peers" | "nopurge" | "srvkey" | "write-to" | "recv-only" => {
                return Err(format!("stick-table option '{w}' is not supported yet"));
            }
            other => {
                return Err(format!(
                    "unknown stick-table option '{other}'; write '{USAGE}'"
                ));
            }
        }
    }
    let key_type =
        key_type.ok_or_else(|| format!("a stick-table needs a type; write '{USAGE}'"))?;
    let size = size.ok_or_else(|| format!("a stick-table needs a size; write '{USAGE}'"))?;
    let name = sec.px().name.clone();
    if sec.px().table.is_some() {
        return Err("this section already has a stick-table; a section has at most one".into());
    }
    sec.px().table = Some(StickTableDef {
        name,
        key_type,
        size,
        expire,
        store,
    });
    Ok(())
}

fn data_type(d: &str) -> Result<DataType, String> {
    let (name, period) = match d.split_once('(') {
        Some((n, rest)) => {
            let p = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("'{d}': expected ')'"))?;
            (n, Some(super::parse_duration(p)?))
        }
        None => (d, None),
    };
    let rate = |f: fn(std::time::Duration) -> DataType| -> Result<DataType, String> {
        period
            .filter(|p| !p.is_zero())
            .map(f)
            .ok_or_else(|| format!("'{name}' needs a period; write {name}(10s)"))
    };
    Ok(match name {
        "server_id" => DataType::ServerId,
        "conn_cnt" => DataType::ConnCnt,
        "conn_cur" => DataType::ConnCur,
        "conn_rate" => rate(DataType::ConnRate)?,
        "sess_cnt" => DataType::SessCnt,
        "sess_rate" => rate(DataType::SessRate)?,
        "http_req_cnt" => DataType::HttpReqCnt,
        "http_req_rate" => rate(DataType::HttpReqRate)?,
        "http_err_cnt" => DataType::HttpErrCnt,
        "http_err_rate" => rate(DataType::HttpErrRate)?,
        "bytes_in_cnt" => DataType::BytesInCnt,
        "bytes_out_cnt" => DataType::BytesOutCnt,
        "bytes_in_rate" => rate(DataType::BytesInRate)?,
        "bytes_out_rate" => rate(DataType::BytesOutRate)?,
        "gpc0" => DataType::Gpc0,
        "gpc0_rate" => rate(DataType::Gpc0Rate)?,
        "gpt0" => DataType::Gpt0,
        other => return Err(format!("unknown stick-table data type '{other}'")),
    })
}

/// `stick match|on|store-request KEY [table T] [if|unless COND]`.
pub(super) fn h_stick(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    const USAGE: &str =
        "stick match|on|store-request|store-response KEY [table TABLE] [if|unless CONDITION]";
    let (what, cond) = split_cond(args);
    let (verb, key, table) = match what {
        [v, k] => (v.as_str(), k, None),
        [v, k, t, name] if t == "table" => (v.as_str(), k, Some(name.clone())),
        _ => return Err(format!("write '{USAGE}'")),
    };
    let (matches, stores, response) = match verb {
        "match" => (true, false, false),
        "on" => (true, true, false),
        "store-request" => (false, true, false),
        "store-response" => (false, true, true),
        other => return Err(format!("unknown 'stick {other}'; write '{USAGE}'")),
    };
    let maps = &mut sec.global.maps;
    let key = Template::parse(&format!("%[{key}]"), &mut |f: &str, m| maps.load(f, m))?;
    let cond = cond_of(sec, cond)?;
    sec.px().stick_rules.push(StickRule {
        matches,
        stores,
        response,
        key,
        table: (table, usize::MAX),
        cond,
    });
    Ok(())
}

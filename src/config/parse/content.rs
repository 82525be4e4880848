//! Keywords for content inspection and routing: `acl`, `use_backend`, `tcp-request`, and gatehouse's
//! `dial-*`, `require-match`, `ech`, `unclassified`, `allow-name`, `allow-net`.

use super::{FallbackDraft, Section, UseBackendDraft, one, parse_duration};
use crate::config::model::{Dial, EchPolicy, Rule};
use crate::rules::pattern::{Method, read_pattern_file};
use crate::rules::sample::Template;
use crate::rules::{self, Cond};

fn read_file(path: &str) -> Result<Vec<String>, String> {
    read_pattern_file(path)
}

/// Splits `ACTION… [if|unless COND…]` at the condition.
fn split_cond(args: &[String]) -> (&[String], &[String]) {
    match args.iter().position(|w| w == "if" || w == "unless") {
        Some(i) => (&args[..i], &args[i..]),
        None => (args, &[]),
    }
}

fn cond_of(sec: &mut Section<'_>, words: &[String]) -> Result<Option<Cond>, String> {
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
    const USAGE: &str = "tcp-request inspect-delay TIME | tcp-request connection|content accept|reject [if|unless CONDITION]";
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
            let accept = match action {
                [a] if a == "accept" => true,
                [a] if a == "reject" => false,
                [a, ..] if a.starts_with("track-sc") || a == "sc-inc-gpc0" => {
                    return Err(format!(
                        "'tcp-request {kind} {a}' is not supported yet; it arrives with stick tables (issue #4)"
                    ));
                }
                [a, ..] if a.starts_with("do-resolve") || a.starts_with("set-dst") => {
                    return Err(format!(
                        "'tcp-request {kind} {a}' is not needed in gatehouse: a server written 'server NAME %[req.ssl_sni]:443 resolvers R' resolves and dials the name itself (docs/sni-proxy.md)"
                    ));
                }
                [a, ..] => {
                    return Err(format!(
                        "'tcp-request {kind} {a}' is not supported; gatehouse takes accept and reject"
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
            let rule = Rule { accept, cond };
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
                sec.px().connection_rules.push(rule);
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

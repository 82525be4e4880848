//! Health-check kinds: `option httpchk`, `http-check send|expect`, `option ssl-hello-chk`,
//! `option tcp-check` with `tcp-check connect|send|expect`.

use super::{Section, parse_port};
use crate::config::model::{CheckKind, Expect, ExpectWhat, HttpCheck, TcpStep};

fn kind<'s>(sec: &'s mut Section<'_>) -> &'s mut Option<CheckKind> {
    &mut sec.px().check_kind
}

fn http<'s>(sec: &'s mut Section<'_>) -> &'s mut HttpCheck {
    let k = kind(sec);
    if !matches!(k, Some(CheckKind::Http(_))) {
        *k = Some(CheckKind::Http(HttpCheck::default()));
    }
    match k {
        Some(CheckKind::Http(h)) => h,
        _ => unreachable!("just set"),
    }
}

/// `option httpchk [METHOD URI [VERSION [HEADERS]]]`, HAProxy's one-line form (`\r\n` inside the
/// version word adds headers), or `option httpchk URI`.
pub(super) fn h_option_httpchk(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let h = http(sec);
    match args {
        [] => {}
        [uri] => h.uri = uri.clone(),
        [m, uri] => {
            h.method = m.clone();
            h.uri = uri.clone();
        }
        [m, uri, ver, rest @ ..] => {
            h.method = m.clone();
            h.uri = uri.clone();
            // "HTTP/1.1\r\nHost:\ www" is one word; further words join it with spaces.
            let mut v = ver.clone();
            for w in rest {
                v.push(' ');
                v.push_str(w);
            }
            match v.split_once("\r\n") {
                Some((ver, hdrs)) => {
                    h.version = ver.to_string();
                    for line in hdrs.split("\r\n").filter(|l| !l.is_empty()) {
                        let (n, val) = line.split_once(':').ok_or_else(|| {
                            format!(
                                "'{line}' in option httpchk is not a header; write Name:\\ value"
                            )
                        })?;
                        h.headers
                            .push((n.trim().to_string(), val.trim().to_string()));
                    }
                }
                None => h.version = v,
            }
        }
    }
    Ok(())
}

fn expect(args: &[String], what_for: &str) -> Result<Expect, String> {
    let usage = format!("{what_for} expect [!] status|rstatus|string|rstring PATTERN");
    let (negate, args) = match args.first().map(String::as_str) {
        Some("!") => (true, &args[1..]),
        _ => (false, args),
    };
    let (kind, pat) = match args {
        [k, p] => (k.as_str(), p.clone()),
        _ => return Err(format!("write '{usage}'")),
    };
    let what = match kind {
        "status" => ExpectWhat::Status(
            pat.split(',')
                .map(|r| {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    match (a.parse::<u16>(), b.parse::<u16>()) {
                        (Ok(a), Ok(b)) if a <= b => Ok((a, b)),
                        _ => Err(format!("'{r}' is not a status or a range like 200-399")),
                    }
                })
                .collect::<Result<_, _>>()?,
        ),
        "rstatus" | "rstring" => {
            let re = regex::Regex::new(&pat).map_err(|e| format!("bad regular expression: {e}"))?;
            if kind == "rstatus" {
                ExpectWhat::RStatus(re)
            } else {
                ExpectWhat::RString(re)
            }
        }
        "string" => ExpectWhat::String(pat),
        other => return Err(format!("unknown expect '{other}'; write '{usage}'")),
    };
    Ok(Expect { negate, what })
}

/// `http-check send [meth M] [uri U] [ver V] [hdr NAME VALUE]…` and `http-check expect …`.
pub(super) fn h_http_check(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("send") => {
            let h = http(sec);
            let mut it = args[1..].iter();
            while let Some(k) = it.next() {
                let mut v = || {
                    it.next()
                        .cloned()
                        .ok_or_else(|| format!("'http-check send {k}' needs a value"))
                };
                match k.as_str() {
                    "meth" => h.method = v()?,
                    "uri" => h.uri = v()?,
                    "ver" => h.version = v()?,
                    "hdr" => {
                        let n = v()?;
                        let val = v()?;
                        h.headers.push((n, val));
                    }
                    "body" => h.body = v()?,
                    other => {
                        return Err(format!(
                            "unknown 'http-check send' option '{other}'; use meth, uri, ver, hdr, body"
                        ));
                    }
                }
            }
            Ok(())
        }
        Some("expect") => {
            let e = expect(&args[1..], "http-check")?;
            http(sec).expect = Some(e);
            Ok(())
        }
        Some("disable-on-404")
        | Some("send-state")
        | Some("connect")
        | Some("set-var")
        | Some("unset-var")
        | Some("comment") => Err(format!(
            "'http-check {}' is not supported; gatehouse takes 'http-check send' and 'http-check expect'",
            args[0]
        )),
        _ => Err("write 'http-check send …' or 'http-check expect …'".into()),
    }
}

pub(super) fn h_option_ssl_hello_chk(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    if let Some(w) = args.first() {
        return Err(format!(
            "'option ssl-hello-chk' takes no argument, but '{w}' was given"
        ));
    }
    *kind(sec) = Some(CheckKind::SslHello);
    Ok(())
}

pub(super) fn h_option_tcp_check(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    if let Some(w) = args.first() {
        return Err(format!(
            "'option tcp-check' takes no argument, but '{w}' was given"
        ));
    }
    if !matches!(kind(sec), Some(CheckKind::Script(_))) {
        *kind(sec) = Some(CheckKind::Script(Vec::new()));
    }
    Ok(())
}

/// `tcp-check connect [port N]`, `tcp-check send STRING`, `tcp-check expect [!] string|rstring P`.
pub(super) fn h_tcp_check(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    let step = match args.first().map(String::as_str) {
        Some("connect") => match &args[1..] {
            [] => TcpStep::Connect(None),
            [p, n] if p == "port" => TcpStep::Connect(Some(parse_port(n)?)),
            _ => return Err("write 'tcp-check connect [port PORT]'".into()),
        },
        Some("send") => match &args[1..] {
            [s] => TcpStep::Send(s.clone().into_bytes()),
            _ => return Err("write 'tcp-check send STRING' (quote a string with spaces)".into()),
        },
        Some("expect") => {
            let e = expect(&args[1..], "tcp-check")?;
            if matches!(e.what, ExpectWhat::Status(_) | ExpectWhat::RStatus(_)) {
                return Err("'tcp-check expect' takes string or rstring".into());
            }
            TcpStep::Expect(e)
        }
        _ => {
            return Err(
                "write 'tcp-check connect [port PORT]', 'tcp-check send STRING' or 'tcp-check expect [!] string|rstring PATTERN'"
                    .into(),
            );
        }
    };
    match kind(sec) {
        Some(CheckKind::Script(steps)) => steps.push(step),
        k => *k = Some(CheckKind::Script(vec![step])),
    }
    Ok(())
}

//! `log-format`: a log line written from HAProxy's `%` variables instead of the fixed tcplog or
//! httplog layout. The string is compiled once when the configuration is read (an unknown variable
//! is a configuration error) and rendered per session or request.

use std::fmt::Write as _;
use std::io::Write as _;

use super::{Date, names};
use crate::account::{Runtime, Tally};
use crate::session::Record;

/// A compiled `log-format` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFormat {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A variable; `true` when `%{+Q}` asks for double quotes around it.
    Var(Var, bool),
}

/// The variables gatehouse fills (HAProxy's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    ClientIp,
    ClientPort,
    FrontendIp,
    FrontendPort,
    /// `%bi %bp %si %sp`: not recorded; written as `-`.
    Unknown,
    Date,
    DateGmt,
    Timestamp,
    FrontendName,
    BackendName,
    ServerName,
    Tw,
    Tc,
    Tt,
    Ta,
    TR,
    Tr,
    BytesRead,
    BytesUploaded,
    Termination,
    TerminationCookie,
    Ac,
    Fc,
    Bc,
    Sc,
    Rc,
    Sq,
    Bq,
    Status,
    RequestLine,
    Method,
    Uri,
    Path,
    Version,
    Cookie,
    Pid,
    Hostname,
}

fn var(name: &str) -> Option<Var> {
    Some(match name {
        "ci" => Var::ClientIp,
        "cp" => Var::ClientPort,
        "fi" => Var::FrontendIp,
        "fp" => Var::FrontendPort,
        "bi" | "bp" | "si" | "sp" => Var::Unknown,
        "t" | "tr" | "Tl" => Var::Date,
        "T" => Var::DateGmt,
        "Ts" => Var::Timestamp,
        "ft" | "f" => Var::FrontendName,
        "b" => Var::BackendName,
        "s" => Var::ServerName,
        "Tw" => Var::Tw,
        "Tc" => Var::Tc,
        "Tt" => Var::Tt,
        "Ta" => Var::Ta,
        "TR" => Var::TR,
        "Tr" => Var::Tr,
        "B" => Var::BytesRead,
        "U" => Var::BytesUploaded,
        "ts" => Var::Termination,
        "tsc" => Var::TerminationCookie,
        "ac" => Var::Ac,
        "fc" => Var::Fc,
        "bc" => Var::Bc,
        "sc" => Var::Sc,
        "rc" => Var::Rc,
        "sq" => Var::Sq,
        "bq" => Var::Bq,
        "ST" => Var::Status,
        "r" => Var::RequestLine,
        "HM" => Var::Method,
        "HU" => Var::Uri,
        "HP" => Var::Path,
        "HV" => Var::Version,
        "CC" | "CS" | "hr" | "hs" => Var::Cookie,
        "pid" => Var::Pid,
        "H" => Var::Hostname,
        _ => return None,
    })
}

impl LineFormat {
    /// Compiles a `log-format` string.
    pub fn parse(s: &str) -> Result<LineFormat, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        text.push(n);
                    }
                }
                '%' => {
                    if chars.peek() == Some(&'%') {
                        chars.next();
                        text.push('%');
                        continue;
                    }
                    let mut quote = false;
                    if chars.peek() == Some(&'{') {
                        chars.next();
                        let mut flags = String::new();
                        for f in chars.by_ref() {
                            if f == '}' {
                                break;
                            }
                            flags.push(f);
                        }
                        quote = flags.split(',').any(|f| f == "+Q");
                    }
                    if chars.peek() == Some(&'[') {
                        return Err(
                            "log-format: sample expressions (%[…]) are not supported; use the % variables"
                                .into(),
                        );
                    }
                    let mut name = String::new();
                    while let Some(&n) = chars.peek() {
                        if n.is_ascii_alphabetic() {
                            name.push(n);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    let v = var(&name).ok_or_else(|| {
                        format!(
                            "log-format: unknown variable '%{name}'; gatehouse knows ci cp fi fp bi bp si sp t tr Tl T Ts ft f b s Tw Tc Tt Ta TR Tr B U ts tsc ac fc bc sc rc sq bq ST r HM HU HP HV CC CS hr hs pid H"
                        )
                    })?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Var(v, quote));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(LineFormat { parts })
    }

    /// Writes the line for `r` into `out` (without its newline).
    pub fn render(&self, out: &mut Vec<u8>, rt: &Runtime, r: &Record, t: &Tally) {
        let (fe, be, srv) = names(rt, r);
        let h = r.http.as_deref();
        let ms = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
        let line = h.map_or("", |h| h.request_line.as_str());
        let mut words = line.split(' ');
        let (method, uri) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let version = words.next().unwrap_or("");
        let mut s = String::new();
        for p in &self.parts {
            let (v, quote) = match p {
                Part::Text(text) => {
                    out.extend_from_slice(text.as_bytes());
                    continue;
                }
                Part::Var(v, q) => (*v, *q),
            };
            s.clear();
            match v {
                Var::ClientIp => {
                    let _ = write!(s, "{}", r.client.ip());
                }
                Var::ClientPort => {
                    let _ = write!(s, "{}", r.client.port());
                }
                Var::FrontendIp => {
                    let _ = write!(s, "{}", r.orig_dst.ip());
                }
                Var::FrontendPort => {
                    let _ = write!(s, "{}", r.orig_dst.port());
                }
                Var::Unknown | Var::Cookie => s.push('-'),
                Var::Date => {
                    let _ = write!(s, "{}", Date(r.accepted_at));
                }
                Var::DateGmt => {
                    let d: chrono::DateTime<chrono::Utc> = r.accepted_at.into();
                    let _ = write!(s, "{}", d.format("%d/%b/%Y:%H:%M:%S +0000"));
                }
                Var::Timestamp => {
                    let secs = r
                        .accepted_at
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let _ = write!(s, "{secs:X}");
                }
                Var::FrontendName => s.push_str(fe),
                Var::BackendName => s.push_str(be),
                Var::ServerName => s.push_str(srv),
                Var::Tw => s.push_str(&ms(h.map_or(Some(0), |h| h.t_queue))),
                Var::Tc => s.push_str(&ms(r.connect_ms)),
                Var::Tt | Var::Ta => s.push_str(&r.total_ms.to_string()),
                Var::TR => s.push_str(&ms(h.and_then(|h| h.t_request))),
                Var::Tr => s.push_str(&ms(h.and_then(|h| h.t_response))),
                Var::BytesRead => s.push_str(&r.traffic.bytes_out.to_string()),
                Var::BytesUploaded => s.push_str(&r.traffic.bytes_in.to_string()),
                Var::Termination => {
                    let _ = write!(s, "{}", r.termination);
                    s.truncate(2);
                }
                Var::TerminationCookie => {
                    let c = h.map_or(['-', '-'], |h| h.cookie);
                    let _ = write!(s, "{}{}{}", r.termination, c[0], c[1]);
                }
                Var::Ac => s.push_str(&t.process.to_string()),
                Var::Fc => s.push_str(&t.frontend.to_string()),
                Var::Bc => s.push_str(&t.backend.to_string()),
                Var::Sc => s.push_str(&t.server.to_string()),
                Var::Rc => s.push_str(&t.retries.to_string()),
                Var::Sq | Var::Bq => s.push('0'),
                Var::Status => s.push_str(&ms(h.and_then(|h| h.status.map(u64::from)))),
                Var::RequestLine => s.push_str(line),
                Var::Method => s.push_str(method),
                Var::Uri => s.push_str(uri),
                Var::Path => s.push_str(uri.split('?').next().unwrap_or("")),
                Var::Version => s.push_str(version),
                Var::Pid => s.push_str(&std::process::id().to_string()),
                Var::Hostname => s.push_str(super::sockets::hostname()),
            }
            if quote {
                out.push(b'"');
            }
            if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"') {
                out.extend_from_slice(s.as_bytes());
            } else {
                let _ = write!(out, "{}", s.escape_debug());
            }
            if quote {
                out.push(b'"');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_haproxy_strings() {
        let f = LineFormat::parse("%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %{+Q}r").unwrap();
        assert!(f.parts.contains(&Part::Var(Var::RequestLine, true)));
        assert_eq!(
            LineFormat::parse("100%% %pid\\ x").unwrap().parts,
            [
                Part::Text("100% ".into()),
                Part::Var(Var::Pid, false),
                Part::Text(" x".into())
            ]
        );
        assert!(
            LineFormat::parse("%zz")
                .unwrap_err()
                .contains("unknown variable '%zz'")
        );
        assert!(
            LineFormat::parse("%[src]")
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn renders_a_record() {
        let cfg = crate::config::from_str(
            "t.cfg",
            "frontend web\n bind 127.0.0.1:1\n default_backend app\nbackend app\n server s1 10.0.0.1:80\n",
        )
        .unwrap()
        .config;
        let rt = Runtime::new(std::sync::Arc::new(cfg));
        let mut r = Record::new(
            "10.1.2.3:4567".parse().unwrap(),
            "10.9.9.9:80".parse().unwrap(),
            std::time::UNIX_EPOCH,
            0,
        );
        r.backend = Some(0);
        r.server = Some(0);
        r.connect_ms = Some(2);
        r.total_ms = 40;
        r.termination = crate::session::Termination::NORMAL;
        let f = LineFormat::parse("%ci:%cp -> %fi:%fp %f %b/%s %Tc/%Tt %ts %{+Q}r %si").unwrap();
        let mut out = Vec::new();
        f.render(&mut out, &rt, &r, &Tally::default());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "10.1.2.3:4567 -> 10.9.9.9:80 web app/s1 2/40 -- \"\" -"
        );
    }
}

//! Persistence cookies (`cookie NAME insert|rewrite|prefix …`): reading the client's `Cookie`
//! headers, removing ours before the server sees it (`indirect`), and the `Set-Cookie` lines.
//!
//! With `maxidle`/`maxlife` the inserted value carries two dates, `SERVER|LASTSEEN|FIRSTSEEN` in
//! seconds since the epoch (HAProxy encodes them differently; the format is only ours to read).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::classify::http::Headers;
use crate::config::model::{CookieMode, CookieSettings};

/// The value of cookie `name` in the request's `Cookie` headers, if any.
pub fn request_cookie<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .get("cookie")
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim())
}

/// The value of cookie `name` set by a response's `Set-Cookie` headers, if any.
pub fn response_cookie<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .get("set-cookie")
        .filter_map(|v| v.split(';').next()?.trim().split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim())
}

/// What the client's cookie said (HAProxy's client-side cookie code in `%tsc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// `N`: no cookie.
    None,
    /// `I`: a value naming no server.
    Invalid,
    /// `D`: a server that is down.
    Down(usize),
    /// `V`: a usable server.
    Valid(usize),
    /// `E`: idle longer than maxidle.
    Expired,
    /// `O`: older than maxlife.
    Old,
}

impl Seen {
    pub fn code(self) -> char {
        match self {
            Seen::None => 'N',
            Seen::Invalid => 'I',
            Seen::Down(_) => 'D',
            Seen::Valid(_) => 'V',
            Seen::Expired => 'E',
            Seen::Old => 'O',
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads the persistence cookie: which server it names (by the servers' `cookie` values), and
/// when it was first seen (for re-inserting with maxlife). `usable(i)` says whether server i can
/// take requests.
pub fn lookup(
    c: &CookieSettings,
    headers: &Headers,
    servers: &[Option<&str>],
    usable: impl Fn(usize) -> bool,
) -> (Seen, Option<u64>) {
    let Some(value) = request_cookie(headers, &c.name) else {
        return (Seen::None, None);
    };
    let value = match c.mode {
        CookieMode::Prefix => value.split_once('~').map_or(value, |(p, _)| p),
        _ => value,
    };
    let mut parts = value.split('|');
    let id = parts.next().unwrap_or("");
    let last: Option<u64> = parts.next().and_then(|v| v.parse().ok());
    let first: Option<u64> = parts.next().and_then(|v| v.parse().ok());
    let now = now_secs();
    if let (Some(max), Some(last)) = (c.maxidle, last)
        && now.saturating_sub(last) > max.as_secs()
    {
        return (Seen::Expired, None);
    }
    if let (Some(max), Some(first)) = (c.maxlife, first)
        && now.saturating_sub(first) > max.as_secs()
    {
        return (Seen::Old, None);
    }
    match servers.iter().position(|s| *s == Some(id)) {
        Some(i) if usable(i) => (Seen::Valid(i), first),
        Some(i) => (Seen::Down(i), first),
        None => (Seen::Invalid, None),
    }
}

/// The `Cookie` header values without cookie `name` (for `indirect`, and for `prefix`, where the
/// server's own value is given back without our prefix). `None` when nothing changes.
pub fn strip_request_cookie(headers: &Headers, c: &CookieSettings) -> Option<Vec<String>> {
    let mut changed = false;
    let mut out = Vec::new();
    for v in headers.get("cookie") {
        let mut kept = Vec::new();
        for pair in v.split(';') {
            let p = pair.trim();
            match p.split_once('=') {
                Some((n, val)) if n.trim() == c.name => {
                    changed = true;
                    if c.mode == CookieMode::Prefix
                        && let Some((_, own)) = val.split_once('~')
                    {
                        kept.push(format!("{}={own}", c.name));
                    }
                }
                _ if p.is_empty() => {}
                _ => kept.push(p.to_string()),
            }
        }
        if !kept.is_empty() {
            out.push(kept.join("; "));
        }
    }
    changed.then_some(out)
}

/// The `Set-Cookie` value that sends the client to server `value` (insert mode).
pub fn set_cookie(c: &CookieSettings, value: &str, first_seen: Option<u64>) -> String {
    let mut v = format!("{}={value}", c.name);
    if c.maxidle.is_some() || c.maxlife.is_some() {
        let now = now_secs();
        v.push_str(&format!("|{now}|{}", first_seen.unwrap_or(now)));
    }
    v.push_str("; path=/");
    for d in &c.domains {
        v.push_str("; domain=");
        v.push_str(d);
    }
    if let Some(life) = c.maxlife.or(c.maxidle) {
        v.push_str(&format!(
            "; Max-Age={}",
            life.max(Duration::from_secs(1)).as_secs()
        ));
    }
    if c.httponly {
        v.push_str("; HttpOnly");
    }
    if c.secure {
        v.push_str("; Secure");
    }
    v
}

/// A server's `Set-Cookie: NAME=…` value rewritten for `rewrite` (value replaced) or `prefix`
/// (value prefixed with `server~`). `None` when the header is not our cookie.
pub fn rewrite_set_cookie(c: &CookieSettings, header: &str, server: &str) -> Option<String> {
    let (first, attrs) = match header.split_once(';') {
        Some((f, a)) => (f, Some(a)),
        None => (header, None),
    };
    let (n, v) = first.split_once('=')?;
    if n.trim() != c.name {
        return None;
    }
    let value = match c.mode {
        CookieMode::Rewrite => server.to_string(),
        CookieMode::Prefix => format!("{server}~{}", v.trim()),
        CookieMode::Insert => return None,
    };
    let mut out = format!("{}={value}", c.name);
    if let Some(a) = attrs {
        out.push(';');
        out.push_str(a);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: CookieMode) -> CookieSettings {
        CookieSettings {
            name: "SRV".into(),
            mode,
            indirect: true,
            nocache: true,
            httponly: false,
            secure: false,
            postonly: false,
            preserve: false,
            maxidle: None,
            maxlife: None,
            domains: Vec::new(),
        }
    }

    fn h(v: &str) -> Headers {
        [("Cookie", v)].into_iter().collect()
    }

    #[test]
    fn lookup_codes() {
        let c = settings(CookieMode::Insert);
        let servers = [Some("app1"), Some("app2"), None];
        let up = |i: usize| i != 1;
        assert_eq!(lookup(&c, &Headers::default(), &servers, up).0, Seen::None);
        assert_eq!(
            lookup(&c, &h("a=1; SRV=app1"), &servers, up).0,
            Seen::Valid(0)
        );
        assert_eq!(lookup(&c, &h("SRV=app2"), &servers, up).0, Seen::Down(1));
        assert_eq!(lookup(&c, &h("SRV=zzz"), &servers, up).0, Seen::Invalid);
        let mut idle = c.clone();
        idle.maxidle = Some(Duration::from_secs(60));
        assert_eq!(
            lookup(&idle, &h("SRV=app1|1000|1000"), &servers, up).0,
            Seen::Expired
        );
        let set = set_cookie(&idle, "app1", None);
        let pair = set.split(';').next().unwrap();
        assert_eq!(lookup(&idle, &h(pair), &servers, up).0, Seen::Valid(0));
        let p = settings(CookieMode::Prefix);
        assert_eq!(
            lookup(&p, &h("SRV=app1~abc"), &servers, up).0,
            Seen::Valid(0)
        );
    }

    #[test]
    fn strip_and_rewrite() {
        let c = settings(CookieMode::Insert);
        assert_eq!(
            strip_request_cookie(&h("a=1; SRV=app1; b=2"), &c),
            Some(vec!["a=1; b=2".to_string()])
        );
        assert_eq!(strip_request_cookie(&h("SRV=app1"), &c), Some(vec![]));
        assert_eq!(strip_request_cookie(&h("a=1"), &c), None);
        let p = settings(CookieMode::Prefix);
        assert_eq!(
            strip_request_cookie(&h("SRV=app1~xyz"), &p),
            Some(vec!["SRV=xyz".to_string()])
        );
        assert_eq!(
            rewrite_set_cookie(&p, "SRV=xyz; Path=/", "app1").as_deref(),
            Some("SRV=app1~xyz; Path=/")
        );
        let r = settings(CookieMode::Rewrite);
        assert_eq!(
            rewrite_set_cookie(&r, "SRV=anything", "app2").as_deref(),
            Some("SRV=app2")
        );
        assert_eq!(rewrite_set_cookie(&r, "OTHER=1", "app2"), None);
        assert_eq!(set_cookie(&c, "app1", None), "SRV=app1; path=/");
    }
}

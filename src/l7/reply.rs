//! Responses gatehouse writes itself in `mode http`: error pages (or the `errorfile` for the
//! status), redirects, and the stats URI's authentication challenge.

use std::borrow::Cow;

use crate::config::model::{HttpSettings, Redirect, RedirectKind};

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Payload Too Large",
        425 => "Too Early",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// What a short error page says, by status.
fn message(status: u16) -> &'static str {
    match status {
        400 => "Your browser sent an invalid request.",
        401 => "You need a valid user and password to access this content.",
        403 => "Request forbidden by administrative rules.",
        408 => "Your browser didn't send a complete request in time.",
        431 => "The request's header fields are too large.",
        502 => "The server returned an invalid or incomplete response.",
        503 => "No server is available to handle this request.",
        504 => "The server didn't respond in time.",
        _ => "An error occurred.",
    }
}

/// The response for an error status: the errorfile's bytes as they are (backend's first, then
/// the frontend's), else a small HTML page. Every error response closes the connection.
pub fn error(status: u16, settings: &[&HttpSettings]) -> Cow<'static, [u8]> {
    if let Some(file) = settings.iter().find_map(|s| s.errorfile(status)) {
        return Cow::Owned(file.to_vec());
    }
    let body = format!(
        "<html><body><h1>{status} {}</h1>\n{}\n</body></html>\n",
        reason(status),
        message(status)
    );
    Cow::Owned(
        format!(
            "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n{body}",
            reason(status),
            body.len()
        )
        .into_bytes(),
    )
}

/// `401` asking for the stats page's credentials.
pub fn unauthorized(realm: &str) -> Vec<u8> {
    let body = format!(
        "<html><body><h1>401 Unauthorized</h1>\n{}\n</body></html>\n",
        message(401)
    );
    let realm = realm.replace('"', "'");
    format!(
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nContent-Type: text/html\r\nWWW-Authenticate: Basic realm=\"{realm}\"\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The Location a redirect rule gives for a request with `target` (path and query) and `host`.
pub fn location(r: &Redirect, rendered: &str, target: &str, host: Option<&str>) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut path = path.to_string();
    if r.drop_query && r.append_slash && !path.ends_with('/') {
        path.push('/');
    }
    let tail = match (query, r.drop_query) {
        (Some(q), false) => format!("{path}?{q}"),
        _ => path,
    };
    match r.kind {
        RedirectKind::Location => rendered.to_string(),
        RedirectKind::Prefix => {
            // A prefix of "/" means "the same path" (HAProxy's way to drop the query only).
            let prefix = rendered.trim_end_matches('/');
            format!("{prefix}{tail}")
        }
        RedirectKind::Scheme => format!("{rendered}://{}{tail}", host.unwrap_or("")),
    }
}

pub fn redirect(code: u16, location: &str, close: bool) -> Vec<u8> {
    format!(
        "HTTP/1.1 {code} {}\r\nContent-Length: 0\r\nLocation: {location}\r\nCache-Control: no-cache\r\n{}\r\n",
        reason(code),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes()
}

/// A 200 answer of ours with `body`; the connection closes after it.
pub fn ok(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The status line's code of a response we send (for the log).
pub fn status_of(bytes: &[u8]) -> u16 {
    bytes
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Checks `Authorization: Basic …` against the `stats auth` pairs.
pub fn authorized(auth: &[(String, String)], header: Option<&str>) -> bool {
    use base64::Engine;
    let Some(h) = header else { return false };
    let Some(b64) = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&raw) else {
        return false;
    };
    let Some((u, p)) = text.split_once(':') else {
        return false;
    };
    auth.iter().any(|(au, ap)| au == u && ap == p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::sample::Template;

    fn redirect_rule(kind: RedirectKind, drop_query: bool) -> Redirect {
        Redirect {
            kind,
            to: Template::parse("x", &mut |_, _| Err("no maps".into())).unwrap(),
            code: 302,
            drop_query,
            append_slash: drop_query,
        }
    }

    #[test]
    fn locations() {
        let p = redirect_rule(RedirectKind::Prefix, false);
        assert_eq!(
            location(&p, "http://3g.test.com", "/a/b?x=1", Some("www.test.com")),
            "http://3g.test.com/a/b?x=1"
        );
        let d = redirect_rule(RedirectKind::Prefix, true);
        assert_eq!(location(&d, "/", "/a/b?x=1", None), "/a/b/");
        let s = redirect_rule(RedirectKind::Scheme, false);
        assert_eq!(
            location(&s, "https", "/p?q", Some("h.test")),
            "https://h.test/p?q"
        );
        let l = redirect_rule(RedirectKind::Location, false);
        assert_eq!(location(&l, "/elsewhere", "/p?q", None), "/elsewhere");
    }

    #[test]
    fn error_pages_and_auth() {
        let page = error(503, &[]);
        assert!(page.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert_eq!(status_of(&page), 503);
        let mut s = HttpSettings::default();
        s.errorfiles
            .push((503, b"HTTP/1.0 503 x\r\n\r\nsorry"[..].into()));
        assert_eq!(&*error(503, &[&s]), b"HTTP/1.0 503 x\r\n\r\nsorry");
        let auth = vec![("admin".to_string(), "admin".to_string())];
        assert!(authorized(&auth, Some("Basic YWRtaW46YWRtaW4=")));
        assert!(!authorized(&auth, Some("Basic YWRtaW46eA==")));
        assert!(!authorized(&auth, None));
        assert!(unauthorized("r").starts_with(b"HTTP/1.1 401 "));
    }
}

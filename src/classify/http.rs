//! The head of an HTTP/1.x request, for routing: method, target, path, Host and headers, read with
//! httparse from the bytes a client sent, without answering them.
//!
//! The host is taken from an absolute-form target (`GET http://h:8080/p HTTP/1.1`) if there is one,
//! as RFC 9112 §3.2.2 says, else from the Host header; it is lower-cased and loses its port. Two Host
//! headers with different values are refused (they are how request smuggling starts). "Not HTTP" is
//! decided from the first bytes, so binary protocols are not kept waiting for a head that never comes.

/// The largest request head read by default.
pub const DEFAULT_MAX_HEAD: usize = 16 * 1024;

/// Headers a request head may have.
const MAX_HEADERS: usize = 100;

/// A message head's header fields, names as sent and values trimmed, kept in one string: two
/// allocations for a head instead of two per field (this runs for every request and response).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    text: String,
    /// Each field's name start, name end (= value start) and value end in `text`.
    fields: Vec<[u32; 3]>,
}

/// A piece of `Headers::text` that is no header field (a request's method, target, path, host).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span(u32, u32);

impl Headers {
    /// Room for `bytes` of text and `fields` fields.
    pub fn with_capacity(bytes: usize, fields: usize) -> Headers {
        Headers {
            text: String::with_capacity(bytes),
            fields: Vec::with_capacity(fields),
        }
    }

    pub fn push(&mut self, name: &str, value: &str) {
        let a = self.text.len() as u32;
        self.text.push_str(name);
        let b = self.text.len() as u32;
        self.text.push_str(value);
        self.fields.push([a, b, self.text.len() as u32]);
    }

    /// Every field, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.fields.iter().map(|&[a, b, c]| {
            (
                &self.text[a as usize..b as usize],
                &self.text[b as usize..c as usize],
            )
        })
    }

    /// The values of the fields named `name` (any case).
    pub fn get<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether a field is named `name` (any case).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).next().is_some()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn stash(&mut self, s: &str) -> Span {
        let a = self.text.len() as u32;
        self.text.push_str(s);
        Span(a, self.text.len() as u32)
    }

    fn at(&self, s: Span) -> &str {
        &self.text[s.0 as usize..s.1 as usize]
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Headers {
        let mut h = Headers::default();
        for (n, v) in iter {
            h.push(n.as_ref(), v.as_ref());
        }
        h
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The header fields; the method, target, path and host live in the same text.
    pub headers: Headers,
    method: Span,
    target: Span,
    path: Span,
    host: Option<Span>,
    /// Bytes of the head, the final empty line included.
    pub head_len: usize,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("incomplete")]
    Incomplete,
    #[error("not HTTP")]
    NotHttp,
    #[error("request head larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("two different Host headers")]
    ConflictingHost,
}

impl Request {
    pub fn method(&self) -> &str {
        self.headers.at(self.method)
    }
    /// The request target as sent.
    pub fn target(&self) -> &str {
        self.headers.at(self.target)
    }
    /// The path without the query; from an absolute-form target too; `*` stays `*`.
    pub fn path(&self) -> &str {
        self.headers.at(self.path)
    }
    /// Lower-case, without port; an IPv6 literal keeps its brackets.
    pub fn host(&self) -> Option<&str> {
        self.host.map(|s| self.headers.at(s))
    }
    /// The values of header `name` (any case).
    pub fn header<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.get(name)
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether the first bytes can begin a request line: a method token, then a space, soon.
fn looks_like_http(buf: &[u8]) -> bool {
    for (i, &b) in buf.iter().enumerate().take(17) {
        if b == b' ' {
            return i > 0;
        }
        if !is_tchar(b) {
            return false;
        }
    }
    buf.len() < 17
}

/// Reads the request head at the start of `buf`.
pub fn parse(buf: &[u8], max_head: usize) -> Result<Request, HttpError> {
    if !looks_like_http(buf) {
        return Err(HttpError::NotHttp);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(if buf.len() >= max_head {
                HttpError::TooLarge(max_head)
            } else {
                HttpError::Incomplete
            });
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::Malformed(format!(
                "more than {MAX_HEADERS} headers"
            )));
        }
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    if head_len > max_head {
        return Err(HttpError::TooLarge(max_head));
    }
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    let (authority, path) = split_target(target);
    let text_len = head_len + path.len() + authority.map_or(0, str::len) + 8;
    let mut list = Headers::with_capacity(text_len, req.headers.len());
    let mut host_header: Option<&str> = None;
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HttpError::Malformed(format!("header {} is not text", h.name)))?
            .trim_matches([' ', '\t']);
        if h.name.eq_ignore_ascii_case("host") {
            match host_header {
                Some(prev) if !prev.eq_ignore_ascii_case(value) => {
                    return Err(HttpError::ConflictingHost);
                }
                _ => host_header = Some(value),
            }
        }
        list.push(h.name, value);
    }
    let method = list.stash(method);
    let target = list.stash(target);
    let path = list.stash(path);
    let host = match authority.or(host_header) {
        Some(a) => {
            let start = list.text.len() as u32;
            host_of(a, &mut list.text)?;
            Some(Span(start, list.text.len() as u32))
        }
        None => None,
    }
    .filter(|s| s.1 > s.0);
    Ok(Request {
        headers: list,
        method,
        target,
        path,
        host,
        head_len,
        minor: req.version.unwrap_or(1),
    })
}

/// An absolute-form target's authority, and the path without the query.
pub(crate) fn split_target(target: &str) -> (Option<&str>, &str) {
    let scheme = |s: &str| {
        target
            .get(..s.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(s))
    };
    let rest = if scheme("http://") {
        Some(&target[7..])
    } else if scheme("https://") {
        Some(&target[8..])
    } else {
        None
    };
    let (authority, path) = match rest {
        Some(r) => match r.find(['/', '?']) {
            Some(i) => (Some(&r[..i]), &r[i..]),
            None => (Some(r), "/"),
        },
        None => (None, target),
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = if path.is_empty() { "/" } else { path };
    // Userinfo (`user@host`) is no part of the host.
    let authority = authority.map(|a| a.rsplit_once('@').map_or(a, |(_, h)| h));
    (authority, path)
}

/// `Host` (or authority) → lower-case host without port, appended to `out`.
fn host_of(v: &str, out: &mut String) -> Result<(), HttpError> {
    let bad = || HttpError::Malformed(format!("'{v}' is not a host"));
    let host = if let Some(rest) = v.strip_prefix('[') {
        let (inner, tail) = rest.split_once(']').ok_or_else(bad)?;
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        if !(tail.is_empty()
            || tail
                .strip_prefix(':')
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())))
        {
            return Err(bad());
        }
        out.push('[');
        out.extend(inner.chars().map(|c| c.to_ascii_lowercase()));
        out.push(']');
        return Ok(());
    } else {
        match v.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return Err(bad()),
            None => v,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(bad());
    }
    out.extend(host.chars().map(|c| c.to_ascii_lowercase()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Request, HttpError> {
        parse(s.as_bytes(), DEFAULT_MAX_HEAD)
    }

    #[test]
    fn host_edge_cases() {
        for (req, host, path) in [
            (
                "GET / HTTP/1.1\r\nHost: Example.TEST\r\n\r\n",
                Some("example.test"),
                "/",
            ),
            (
                "GET /a?b=c HTTP/1.1\r\nhost: a.test:8080\r\n\r\n",
                Some("a.test"),
                "/a",
            ),
            (
                "GET http://Abs.test:81/p?q HTTP/1.1\r\nHost: other.test\r\n\r\n",
                Some("abs.test"),
                "/p",
            ),
            (
                "GET HTTP://u@abs.test HTTP/1.1\r\n\r\n",
                Some("abs.test"),
                "/",
            ),
            (
                "GET / HTTP/1.1\r\nHost: [2001:DB8::1]:443\r\n\r\n",
                Some("[2001:db8::1]"),
                "/",
            ),
            (
                "GET / HTTP/1.1\r\nHost: a.test\r\nHOST: A.test\r\n\r\n",
                Some("a.test"),
                "/",
            ),
            ("GET / HTTP/1.0\r\n\r\n", None, "/"),
            ("GET / HTTP/1.1\r\nHost:\r\n\r\n", None, "/"),
            (
                "OPTIONS * HTTP/1.1\r\nHost: a.test.\r\n\r\n",
                Some("a.test"),
                "*",
            ),
        ] {
            let r = p(req).unwrap_or_else(|e| panic!("{req:?}: {e}"));
            assert_eq!(r.host(), host, "{req:?}");
            assert_eq!(r.path(), path, "{req:?}");
            assert_eq!(r.head_len, req.len());
        }
        assert_eq!(
            p("GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"),
            Err(HttpError::ConflictingHost)
        );
        for bad in [
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a.test:x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n",
            // A non-ASCII byte after the bracket used to panic (slicing inside a character).
            "GET / HTTP/1.1\r\nHost: [::1]\u{e9}\r\n\r\n",
            "GET http://[::1]\u{e9}/ HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: evil\0.test\r\n\r\n",
        ] {
            assert!(matches!(p(bad), Err(HttpError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn every_prefix_waits_and_the_head_is_bounded() {
        let req = "POST /upload HTTP/1.1\r\nHost: up.test\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nContent-Length: 3\r\n\r\nabc";
        let head = req.len() - 3;
        for i in 0..head {
            assert_eq!(p(&req[..i]), Err(HttpError::Incomplete), "prefix {i}");
        }
        let r = p(req).unwrap();
        assert_eq!((r.method(), r.head_len), ("POST", head));
        assert_eq!(r.header("user-agent").collect::<Vec<_>>(), ["curl/7.88.1"]);
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(200));
        assert_eq!(parse(long.as_bytes(), 100), Err(HttpError::TooLarge(100)));
    }

    #[test]
    fn real_captures() {
        for (wire, host, path) in [
            (
                &include_bytes!("../../tests/captures/curl-http.bin")[..],
                "web.example.test",
                "/path/x",
            ),
            (
                &include_bytes!("../../tests/captures/python-http.bin")[..],
                "py.example.test",
                "/p",
            ),
        ] {
            for i in 0..wire.len() {
                assert_eq!(
                    parse(&wire[..i], DEFAULT_MAX_HEAD),
                    Err(HttpError::Incomplete),
                    "prefix {i}"
                );
            }
            let r = parse(wire, DEFAULT_MAX_HEAD).unwrap();
            assert_eq!((r.host(), r.path()), (Some(host), path));
            assert_eq!(r.head_len, wire.len());
        }
    }

    #[test]
    fn other_protocols_are_not_http() {
        for input in [
            &b"\x16\x03\x01"[..],
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"\x00\x00\x00",
            b" GET / HTTP/1.1",
            b"AVERYLONGMETHODNAMEXX / HTTP/1.1",
        ] {
            assert_eq!(
                parse(input, DEFAULT_MAX_HEAD),
                Err(HttpError::NotHttp),
                "{input:?}"
            );
        }
        assert_eq!(p("GET"), Err(HttpError::Incomplete));
    }
}

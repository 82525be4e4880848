//! Response heads read with httparse, and the head edits of `mode http` that are not plain header
//! additions: replacing a header, replacing the request target, reading Connection tokens.

use super::rewrite::{add_header, remove_header};
use crate::classify::http::Headers;

/// The largest response head read.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

const MAX_HEADERS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor: u8,
    /// Names as sent, values trimmed.
    pub headers: Headers,
    /// Bytes of the head, the final empty line included.
    pub head_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("incomplete")]
    Incomplete,
    #[error("response head larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// The response headers gatehouse itself reads (framing, connection, cookies).
const FRAMING: [&str; 4] = [
    "connection",
    "content-length",
    "transfer-encoding",
    "set-cookie",
];

/// Reads the response head at the start of `buf`. `all`: keep every header in `headers`, not
/// only those gatehouse reads itself (rules with `res.hdr` need them; the plain path saves the
/// copies).
pub fn parse_response(buf: &[u8], all: bool) -> Result<Response, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_RESPONSE_HEAD => {
            return Err(ResponseError::TooLarge(MAX_RESPONSE_HEAD));
        }
        Ok(httparse::Status::Partial) => return Err(ResponseError::Incomplete),
        Err(e) => return Err(ResponseError::Malformed(e.to_string())),
    };
    let kept =
        |h: &httparse::Header<'_>| all || FRAMING.iter().any(|n| h.name.eq_ignore_ascii_case(n));
    let (mut bytes, mut fields) = (0, 0);
    for h in res.headers.iter().filter(|h| kept(h)) {
        bytes += h.name.len() + h.value.len();
        fields += 1;
    }
    let mut list = Headers::with_capacity(bytes, fields);
    for h in res.headers.iter().filter(|h| kept(h)) {
        let v = String::from_utf8_lossy(h.value);
        list.push(h.name, v.trim_matches([' ', '\t']));
    }
    Ok(Response {
        status: res.code.unwrap_or(0),
        minor: res.version.unwrap_or(1),
        headers: list,
        head_len,
    })
}

/// Whether header `name` lists `token` (any case), as `Connection: keep-alive, Upgrade` does.
pub fn has_token(headers: &Headers, name: &str, token: &str) -> bool {
    headers
        .get(name)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// `head` with every `name` header replaced by one `name: value` line at the end.
pub fn set_header(head: &[u8], name: &str, value: &str) -> Vec<u8> {
    add_header(&remove_header(head, name), name, value)
}

/// A request head with its target replaced; the method, version and headers stay as they were.
pub fn set_target(head: &[u8], target: &str) -> Vec<u8> {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let line = &head[..line_end];
    let (Some(a), Some(b)) = (
        line.iter().position(|b| *b == b' '),
        line.iter().rposition(|b| *b == b' '),
    ) else {
        return head.to_vec();
    };
    if a >= b {
        return head.to_vec();
    }
    let mut out = Vec::with_capacity(head.len() + target.len());
    out.extend_from_slice(&head[..=a]);
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(&head[b..]);
    out
}

/// The request line as HAProxy's `%r` shows it: method, target and version.
pub fn request_line(head: &[u8]) -> String {
    let end = head
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(head.len());
    String::from_utf8_lossy(&head[..end.min(1024)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_over_every_prefix() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=b\r\n\r\nhello";
        let full = parse_response(r, true).unwrap();
        assert_eq!(full.status, 200);
        assert_eq!(full.head_len, r.len() - 5);
        for i in 0..full.head_len {
            assert_eq!(
                parse_response(&r[..i], true),
                Err(ResponseError::Incomplete),
                "prefix {i}"
            );
        }
        assert!(matches!(
            parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n", true),
            Err(ResponseError::Malformed(_))
        ));
    }

    #[test]
    fn head_edits() {
        let h = b"GET /a?q=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
        assert_eq!(
            set_header(h, "X-A", "3"),
            b"GET /a?q=1 HTTP/1.1\r\nHost: x\r\nX-A: 3\r\n\r\n"
        );
        assert_eq!(
            set_target(h, "/b?q=1"),
            b"GET /b?q=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
        );
        assert_eq!(request_line(h), "GET /a?q=1 HTTP/1.1");
        let hs: Headers = [("Connection", "keep-alive, Upgrade")]
            .into_iter()
            .collect();
        assert!(has_token(&hs, "connection", "upgrade"));
        assert!(!has_token(&hs, "connection", "close"));
    }
}

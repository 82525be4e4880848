//! Edits of an HTTP/1.x message head that keep every other byte as it came: headers are added before
//! the blank line and removed line by line, never re-serialised.

/// `head` (a complete head, ending with CRLF CRLF) with `name: value` added as its last header.
pub fn add_header(head: &[u8], name: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + name.len() + value.len() + 6);
    out.extend_from_slice(head);
    append_header(&mut out, name, value.as_bytes());
    out
}

/// `head` without the header lines named `name` (any case). The start line is kept.
pub fn remove_header(head: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    let mut first = true;
    for line in head.split_inclusive(|b| *b == b'\n') {
        let named = !first
            && line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && line[name.len()] == b':';
        if !named {
            out.extend_from_slice(line);
        }
        first = false;
    }
    out
}

/// Adds `name: value` to a complete head as its last header, in place.
pub fn append_header(head: &mut Vec<u8>, name: &str, value: &[u8]) {
    let end = if head.ends_with(b"\n\r\n") {
        head.len() - 2
    } else if head.ends_with(b"\n\n") {
        head.len() - 1
    } else {
        head.len()
    };
    head.truncate(end);
    head.reserve(name.len() + value.len() + 6);
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n\r\n");
}

/// Adds `X-Forwarded-For` (or `header`) for `client` to a complete head, in place, with no
/// allocation when the head has room (the per-request path of `option forwardfor`).
pub fn append_forwarded_for(head: &mut Vec<u8>, client: std::net::IpAddr, header: Option<&str>) {
    use std::io::Write;
    let mut ip = [0u8; 48];
    let mut w = &mut ip[..];
    let _ = write!(w, "{client}");
    let n = 48 - w.len();
    append_header(head, header.unwrap_or("X-Forwarded-For"), &ip[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] =
        b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nX-Weird:  spaced  \r\n\r\n";

    #[test]
    fn edits_keep_the_other_bytes() {
        let added = add_header(HEAD, "X-Forwarded-For", "10.0.0.2");
        assert_eq!(
            added,
            b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nX-Weird:  spaced  \r\nX-Forwarded-For: 10.0.0.2\r\n\r\n"
        );
        // A head with bare LF line ends keeps its last header whole.
        assert_eq!(
            add_header(b"GET / HTTP/1.1\nHost: x\n\n", "A", "1"),
            b"GET / HTTP/1.1\nHost: x\nA: 1\r\n\r\n"
        );
        let removed = remove_header(HEAD, "connection");
        assert_eq!(
            removed,
            b"GET /a HTTP/1.1\r\nHost: x\r\nX-Weird:  spaced  \r\n\r\n"
        );
        // A header whose name only starts like the one removed stays.
        assert_eq!(remove_header(HEAD, "Conn"), HEAD);
        assert_eq!(remove_header(HEAD, "GET /a HTTP/1.1"), HEAD);
    }

    #[test]
    fn forwardfor() {
        let mut h = HEAD.to_vec();
        append_forwarded_for(&mut h, "10.0.0.2".parse().unwrap(), Some("X-Client"));
        assert!(h.ends_with(b"X-Client: 10.0.0.2\r\n\r\n"));
        let mut h = HEAD.to_vec();
        let v6: std::net::IpAddr = "2001:db8::ffff:1".parse().unwrap();
        append_forwarded_for(&mut h, v6, None);
        assert_eq!(h, add_header(HEAD, "X-Forwarded-For", "2001:db8::ffff:1"));
    }
}

//! Edits of an HTTP/1.x message head that keep every other byte as it came: headers are added before
//! the blank line and removed line by line, never re-serialised.

/// `head` (a complete head, ending with CRLF CRLF) with `name: value` added as its last header.
pub fn add_header(head: &[u8], name: &str, value: &str) -> Vec<u8> {
    // Before the final empty line, which is CRLF or (as httparse also accepts) a bare LF.
    let end = if head.ends_with(b"\n\r\n") {
        head.len() - 2
    } else if head.ends_with(b"\n\n") {
        head.len() - 1
    } else {
        head.len()
    };
    let mut out = Vec::with_capacity(head.len() + name.len() + value.len() + 4);
    out.extend_from_slice(&head[..end]);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
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

/// `head` with `X-Forwarded-For` (or `header`) added for `client`, unless the client is in `except`,
/// as HAProxy's `option forwardfor [except CIDR] [header NAME]` does: a new header line is added, any
/// existing one is kept.
pub fn forwarded_for(
    head: &[u8],
    client: std::net::IpAddr,
    except: &[ipnet::IpNet],
    header: Option<&str>,
) -> Vec<u8> {
    if except.iter().any(|n| n.contains(&client)) {
        return head.to_vec();
    }
    add_header(
        head,
        header.unwrap_or("X-Forwarded-For"),
        &client.to_string(),
    )
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
    fn forwardfor_except() {
        let c: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let local = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(forwarded_for(HEAD, c, &local, None), HEAD);
        let out = forwarded_for(HEAD, c, &[], Some("X-Client"));
        assert!(out.ends_with(b"X-Client: 10.0.0.2\r\n\r\n"));
    }
}

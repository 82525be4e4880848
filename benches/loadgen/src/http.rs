//! Just enough HTTP/1.1 to know where a response ends: the status line, `Content-Length`, the blank
//! line. The bench's object is small and nginx sends it with a length; anything else (chunked,
//! no length, a malformed head) is an error, counted, never guessed at.

/// The largest response head we accept.
pub const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Head plus body: how many bytes of the buffer this response takes.
    pub len: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// Not `HTTP/1.x NNN ...`.
    StatusLine,
    /// No usable Content-Length (absent on a response that has a body, or unreadable).
    Length,
    /// `Transfer-Encoding`: not supported here.
    Chunked,
    HeadTooLarge,
}

/// Parses the response at the start of `buf`: `Ok(None)` means "need more bytes".
pub fn parse_response(buf: &[u8]) -> Result<Option<Response>, Error> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(Error::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    let head = &buf[..end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status(status_line).ok_or(Error::StatusLine)?;
    let mut length = None;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let v = std::str::from_utf8(value).map_err(|_| Error::Length)?;
            let n: usize = v.parse().map_err(|_| Error::Length)?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::Length);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(Error::Chunked);
        }
    }
    let body = match (status, length) {
        (100..=199 | 204 | 304, _) => 0,
        (_, Some(n)) => n,
        (_, None) => return Err(Error::Length),
    };
    let len = end + 4 + body;
    Ok((buf.len() >= len).then_some(Response { status, len }))
}

fn parse_status(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (&minor, rest) = rest.split_first()?;
    if !minor.is_ascii_digit() {
        return None;
    }
    let code = rest.strip_prefix(b" ")?.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nsmall object\n";

    #[test]
    fn whole_response() {
        let r = parse_response(OK).unwrap().unwrap();
        assert_eq!(
            r,
            Response {
                status: 200,
                len: OK.len()
            }
        );
    }

    #[test]
    fn every_prefix_needs_more() {
        for n in 0..OK.len() {
            assert_eq!(parse_response(&OK[..n]), Ok(None), "prefix of {n} bytes");
        }
    }

    #[test]
    fn a_second_response_is_left_alone() {
        let mut two = OK.to_vec();
        two.extend_from_slice(OK);
        assert_eq!(parse_response(&two).unwrap().unwrap().len, OK.len());
    }

    #[test]
    fn no_body_statuses() {
        let r = parse_response(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            r,
            Response {
                status: 204,
                len: 27
            }
        );
        let r = parse_response(b"HTTP/1.0 304 Not Modified\r\nETag: x\r\n\r\n");
        assert_eq!(r.unwrap().unwrap().status, 304);
    }

    #[test]
    fn header_names_any_case() {
        let resp = b"HTTP/1.1 404 Not Found\r\ncontent-LENGTH:  3 \r\n\r\nabc";
        let r = parse_response(resp).unwrap().unwrap();
        assert_eq!((r.status, r.len), (404, resp.len()));
        assert_eq!(parse_response(&resp[..resp.len() - 1]), Ok(None));
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_response(b"HTTP/2 200\r\n\r\n"),
            Err(Error::StatusLine)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            Err(Error::StatusLine)
        );
        assert_eq!(parse_response(b"SSH-2.0\r\n\r\n"), Err(Error::StatusLine));
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\n"),
            Err(Error::Length)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(Error::Length)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(Error::Length)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Error::Chunked)
        );
        let big = vec![b'x'; MAX_HEAD + 1];
        assert_eq!(parse_response(&big), Err(Error::HeadTooLarge));
    }
}

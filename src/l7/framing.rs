//! HTTP/1.x message framing (RFC 9112 §6): where a request's or response's body ends, and an
//! incremental scanner that finds the end of a chunked body in bytes relayed as they are.
//!
//! The rules that matter for a proxy's safety are here: a request with both `Transfer-Encoding` and
//! `Content-Length`, or with differing `Content-Length`s, or a transfer coding that does not end in
//! `chunked`, is refused, since two hops could disagree on where it ends (request smuggling).

use crate::classify::http::Headers;

/// How a message body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding: ends with the last chunk and trailers.
    Chunked,
    /// Until the server closes (responses only).
    UntilClose,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("Transfer-Encoding and Content-Length together")]
    Ambiguous,
    #[error("Content-Length values differ or are not numbers")]
    BadLength,
    #[error("a request's transfer coding must end with chunked")]
    BadCoding,
    #[error("malformed chunked body: {0}")]
    BadChunk(&'static str),
}

fn values<'a>(headers: &'a Headers, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get(name)
        .flat_map(|v| v.split(','))
        .map(|v| v.trim_matches([' ', '\t']))
        .filter(|v| !v.is_empty())
}

fn content_length(headers: &Headers) -> Result<Option<u64>, FramingError> {
    let mut found: Option<u64> = None;
    for v in values(headers, "content-length") {
        if !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FramingError::BadLength);
        }
        let n: u64 = v.parse().map_err(|_| FramingError::BadLength)?;
        match found {
            Some(m) if m != n => return Err(FramingError::BadLength),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

/// The last transfer coding, if any.
fn last_coding(headers: &Headers) -> Option<&str> {
    values(headers, "transfer-encoding").last()
}

/// A request's body framing.
pub fn request_body(headers: &Headers) -> Result<BodyLen, FramingError> {
    let cl = content_length(headers)?;
    let has_te = headers.has("transfer-encoding");
    if has_te && cl.is_some() {
        return Err(FramingError::Ambiguous);
    }
    let codings: Vec<&str> = values(headers, "transfer-encoding").collect();
    if codings.iter().any(|c| !c.bytes().all(is_tchar))
        || codings
            .iter()
            .filter(|c| c.eq_ignore_ascii_case("chunked"))
            .count()
            > 1
    {
        return Err(FramingError::BadCoding);
    }
    match (last_coding(headers), cl) {
        (Some(_), Some(_)) => Err(FramingError::Ambiguous),
        (Some(c), None) if c.eq_ignore_ascii_case("chunked") => Ok(BodyLen::Chunked),
        (Some(_), None) => Err(FramingError::BadCoding),
        (None, Some(0)) | (None, None) => Ok(BodyLen::None),
        (None, Some(n)) => Ok(BodyLen::Length(n)),
    }
}

/// A response's body framing, given the request's method.
pub fn response_body(
    status: u16,
    method: &str,
    headers: &Headers,
) -> Result<BodyLen, FramingError> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Ok(BodyLen::None);
    }
    if method.eq_ignore_ascii_case("CONNECT") && (200..300).contains(&status) {
        return Ok(BodyLen::UntilClose);
    }
    match last_coding(headers) {
        Some(c) if c.eq_ignore_ascii_case("chunked") => return Ok(BodyLen::Chunked),
        Some(_) => return Ok(BodyLen::UntilClose),
        None => {}
    }
    Ok(match content_length(headers)? {
        Some(0) => BodyLen::None,
        Some(n) => BodyLen::Length(n),
        None => BodyLen::UntilClose,
    })
}

/// Where a chunked body ends, found while its bytes are relayed unchanged.
#[derive(Debug, Clone, Default)]
pub struct Chunked {
    state: State,
    /// Bytes of the current size or trailer line (bounded).
    line: usize,
    /// The chunk size read so far.
    size: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Reading the hex size.
    #[default]
    Size,
    /// After the size: extensions until CR.
    Ext,
    /// Expecting LF after the size line.
    SizeLf,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (an empty one ends the body).
    TrailerStart,
    Trailer,
    TrailerLf,
    /// The final CRLF's LF.
    EndLf,
    Done,
}

/// A control character other than horizontal tab (CR is handled before this is asked).
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Longest size or trailer line accepted.
const MAX_LINE: usize = 4096;

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans `buf`; returns how many of its bytes belong to the body (all of them until the end is
    /// found; what follows is the next message).
    pub fn feed(&mut self, buf: &[u8]) -> Result<usize, FramingError> {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            match self.state {
                State::Done => return Ok(i),
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        self.line += 1;
                        if self.line > 15 {
                            return Err(FramingError::BadChunk("chunk size too large"));
                        }
                        let digit = (b as char).to_digit(16).unwrap_or(0);
                        self.size = self.size * 16 + u64::from(digit);
                    }
                    b';' | b' ' | b'\t' if self.line > 0 => self.state = State::Ext,
                    b'\r' if self.line > 0 => self.state = State::SizeLf,
                    _ => return Err(FramingError::BadChunk("bad chunk size")),
                },
                State::Ext => {
                    self.line += 1;
                    if self.line > MAX_LINE {
                        return Err(FramingError::BadChunk("chunk extension too long"));
                    }
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if is_ctl(b) {
                        // A bare LF here would end the line for a lenient server but not for us.
                        return Err(FramingError::BadChunk(
                            "control character in a chunk extension",
                        ));
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(FramingError::BadChunk("no LF after the chunk size"));
                    }
                    let size = std::mem::take(&mut self.size);
                    self.line = 0;
                    self.state = if size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    let take = (buf.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(FramingError::BadChunk("no CRLF after chunk data"));
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(FramingError::BadChunk("no CRLF after chunk data"));
                    }
                    self.state = State::Size;
                }
                State::TrailerStart => {
                    if b == b'\r' {
                        self.state = State::EndLf;
                    } else if is_tchar(b) {
                        self.line = 1;
                        self.state = State::Trailer;
                    } else {
                        return Err(FramingError::BadChunk(
                            "a trailer line must start with a name",
                        ));
                    }
                }
                State::Trailer => {
                    self.line += 1;
                    if self.line > MAX_LINE {
                        return Err(FramingError::BadChunk("trailer line too long"));
                    }
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    } else if is_ctl(b) {
                        return Err(FramingError::BadChunk("control character in a trailer"));
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(FramingError::BadChunk("no LF after a trailer"));
                    }
                    self.line = 0;
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(FramingError::BadChunk("no LF at the end"));
                    }
                    self.state = State::Done;
                    return Ok(i + 1);
                }
            }
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(list: &[(&str, &str)]) -> Headers {
        list.iter().copied().collect()
    }

    #[test]
    fn request_framing() {
        assert_eq!(request_body(&h(&[])), Ok(BodyLen::None));
        assert_eq!(
            request_body(&h(&[("Content-Length", "12")])),
            Ok(BodyLen::Length(12))
        );
        assert_eq!(
            request_body(&h(&[("content-length", "12"), ("Content-Length", "12")])),
            Ok(BodyLen::Length(12))
        );
        assert_eq!(
            request_body(&h(&[("Transfer-Encoding", "gzip, chunked")])),
            Ok(BodyLen::Chunked)
        );
        for bad in [
            h(&[("Content-Length", "12"), ("Content-Length", "13")]),
            h(&[("Content-Length", "+12")]),
            h(&[("Content-Length", "1 2")]),
            h(&[("Transfer-Encoding", "chunked"), ("Content-Length", "3")]),
            h(&[("Transfer-Encoding", "chunked, gzip")]),
        ] {
            assert!(request_body(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn response_framing() {
        let cl = h(&[("Content-Length", "5")]);
        assert_eq!(response_body(200, "GET", &cl), Ok(BodyLen::Length(5)));
        assert_eq!(response_body(200, "HEAD", &cl), Ok(BodyLen::None));
        assert_eq!(response_body(304, "GET", &cl), Ok(BodyLen::None));
        assert_eq!(response_body(200, "GET", &h(&[])), Ok(BodyLen::UntilClose));
        assert_eq!(
            response_body(200, "GET", &h(&[("Transfer-Encoding", "chunked")])),
            Ok(BodyLen::Chunked)
        );
        assert_eq!(response_body(200, "CONNECT", &cl), Ok(BodyLen::UntilClose));
    }

    #[test]
    fn chunked_ends_exactly_in_any_split() {
        let body =
            b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n";
        let next = b"GET /next HTTP/1.1\r\n\r\n";
        let mut all = body.to_vec();
        all.extend(next);
        for split in 1..all.len() {
            let mut c = Chunked::default();
            let mut used = 0;
            for piece in all.chunks(split) {
                let n = c.feed(piece).unwrap();
                used += n;
                if c.is_done() {
                    break;
                }
            }
            assert!(c.is_done(), "split {split}");
            assert_eq!(used, body.len(), "split {split}");
        }
        for bad in [
            &b"g\r\n"[..],
            b"\r\n",
            b"4\r\nWikiXX",
            b"4\nWiki",
            b"11111111111111111\r\n",
        ] {
            assert!(Chunked::default().feed(bad).is_err(), "{bad:?}");
        }
    }
}

//! Classify: reads a connection's first bytes, without answering them, to learn the name the client
//! asked for: the SNI of a TLS ClientHello ([`tls`]) or the Host of an HTTP/1.x request ([`http`]).
//!
//! The bytes are read into a buffer that goes to the server first, unchanged, before forwarding takes
//! over (peek → buffer → replay). Reading stops as soon as the bytes can be judged, at
//! `tcp-request inspect-delay`, or at [`MAX_PEEK`]. The two parsers are pure functions over the buffer,
//! so they are tested over every prefix of real captures and fuzzed (docs/FUZZING.md).

pub mod http;
pub mod tls;

use std::io;
use std::time::Duration;

use tokio::time::Instant;

/// The most bytes read while classifying: a 64 KiB hello in small records, with room to spare.
pub const MAX_PEEK: usize = 256 * 1024;

/// Why a connection has no name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// `tcp-request inspect-delay` ran out before the bytes could be judged.
    Timeout,
    /// A ClientHello without SNI (or SSLv2-style), or an HTTP request without Host.
    NoName,
    /// Neither TLS nor HTTP.
    NotTls,
    /// A broken or oversized hello or request head.
    Malformed(String),
    /// An HTTP request with two different Host headers: always refused, whatever `unclassified`
    /// says, since the two ends could disagree on where it goes (request smuggling).
    Ambiguous,
}

/// What the first bytes said.
#[derive(Debug, Default)]
pub struct Peeked {
    /// Every byte read, to be sent to the server first.
    pub buf: Vec<u8>,
    pub hello: Option<tls::ClientHello>,
    pub http: Option<http::Request>,
    pub miss: Option<Miss>,
}

impl Peeked {
    /// The name the client asked for: the SNI or the Host (lower-case, without port).
    pub fn name(&self) -> Option<&str> {
        self.hello
            .as_ref()
            .and_then(|h| h.sni.as_deref())
            .or_else(|| self.http.as_ref().and_then(|r| r.host()))
    }

    /// Whether the client speaks TLS (a refusal is then sent as a TLS alert).
    pub fn is_tls(&self) -> bool {
        self.hello.is_some() || self.buf.first() == Some(&0x16)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeekError {
    #[error("the client closed the connection before sending anything")]
    Closed,
    #[error("reading from the client: {0}")]
    Io(#[from] io::Error),
}

enum Judgement {
    More,
    Done,
}

/// Judges the bytes so far, filling `p`.
fn judge(p: &mut Peeked, max_head: usize) -> Judgement {
    let b = &p.buf;
    if b[0] == 0x16 || b[0] & 0x80 != 0 {
        match tls::parse(b) {
            Ok(h) => {
                if h.sni.is_none() {
                    p.miss = Some(Miss::NoName);
                }
                p.hello = Some(h);
            }
            Err(tls::TlsError::Incomplete) => return Judgement::More,
            Err(tls::TlsError::NotTls) => p.miss = Some(Miss::NotTls),
            Err(e) => p.miss = Some(Miss::Malformed(e.to_string())),
        }
        return Judgement::Done;
    }
    match http::parse(b, max_head) {
        Ok(r) => {
            if r.host().is_none() {
                p.miss = Some(Miss::NoName);
            }
            p.http = Some(r);
        }
        Err(http::HttpError::Incomplete) => return Judgement::More,
        Err(http::HttpError::NotHttp) => p.miss = Some(Miss::NotTls),
        Err(http::HttpError::ConflictingHost) => p.miss = Some(Miss::Ambiguous),
        Err(e) => p.miss = Some(Miss::Malformed(e.to_string())),
    }
    Judgement::Done
}

/// Reads until the first bytes can be judged, `delay` passes, or the client stops sending.
pub async fn peek(client: &crate::tls::Sock, delay: Duration) -> Result<Peeked, PeekError> {
    let deadline = Instant::now() + delay;
    let mut p = Peeked::default();
    loop {
        if !p.buf.is_empty() && matches!(judge(&mut p, http::DEFAULT_MAX_HEAD), Judgement::Done) {
            return Ok(p);
        }
        if p.buf.len() >= MAX_PEEK {
            p.miss = Some(Miss::Malformed(format!(
                "no decision after {MAX_PEEK} bytes"
            )));
            return Ok(p);
        }
        match tokio::time::timeout_at(deadline, client.readable()).await {
            Err(_) => {
                p.miss = Some(Miss::Timeout);
                return Ok(p);
            }
            Ok(r) => r?,
        }
        let have = p.buf.len();
        let want = (have.max(2048)).min(MAX_PEEK - have);
        p.buf.resize(have + want, 0);
        match client.try_read(&mut p.buf[have..]) {
            Ok(0) => {
                p.buf.truncate(have);
                if have == 0 {
                    return Err(PeekError::Closed);
                }
                // The client half-closed with an undecided prefix.
                p.miss = Some(Miss::Malformed(
                    "the client stopped sending in the middle".into(),
                ));
                return Ok(p);
            }
            Ok(n) => p.buf.truncate(have + n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => p.buf.truncate(have),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A TLS alert record (fatal), sent when a TLS client is refused after its hello was read.
pub fn tls_alert(description: u8) -> [u8; 7] {
    [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]
}

/// TLS alert descriptions used.
pub const ALERT_ACCESS_DENIED: u8 = 49;
pub const ALERT_INTERNAL_ERROR: u8 = 80;
pub const ALERT_UNRECOGNIZED_NAME: u8 = 112;

//! The PROXY protocol (versions 1 and 2, HAProxy's doc/proxy-protocol.txt): a header in front of a
//! TCP connection that says which client it carries and where that client connected to.
//!
//! Two uses:
//! - **accept** (`bind … accept-proxy`): a proxy in front of gatehouse sends the header; [`accept`]
//!   reads it before anything else, and the session takes its source as the client's address and
//!   its destination as the original destination (so `usesrc clientip`, `server 0.0.0.0`, rules and
//!   logs see the real client). The bytes after the header are the client's own, left in the socket
//!   for classify to peek at.
//! - **send** (`server … send-proxy` / `send-proxy-v2`): [`send`] writes a header on each new
//!   server connection before any other byte, carrying the session's client address and original
//!   destination, so a server or a further gateway learns both.
//!
//! [`parse`] is a pure function over the bytes received so far: "need more" for every strict prefix
//! of a header, the header and its length once complete, an error as soon as the bytes cannot be a
//! header. It is strict: a v1 line must be exactly `PROXY TCP4|TCP6|UNKNOWN …\r\n` within 107
//! bytes, with addresses of the announced family and plain decimal ports; a v2 header must have
//! version 2, a known command and one of the address/protocol bytes the specification lists, an
//! address block as long as its family needs, well-formed TLVs, a matching CRC32C when it carries
//! one, and at most [`V2_MAX`] bytes in all. The readers ([`read_from_tcp`], [`read_from`]) never
//! consume a byte past the header: what follows belongs to the client (a TLS ClientHello, an HTTP
//! request).
//!
//! Why hand-written. Crates exist: `ppp` and `proxy-protocol` read and write headers,
//! `proxy-protocol-rs` (a tokio listener wrapper) also exposes a parser, `proxy-header`'s last
//! release is from 2024. Any of them could replace [`parse`], which is the small part: about 300
//! lines with the encoder, tested over every prefix of real headers and fuzzed
//! (`fuzz/fuzz_targets/proxy_header.rs`). What gatehouse needs around it is its own either way:
//! reading from the accepted `&TcpStream` by peeking, so that exactly the header is consumed and
//! the ClientHello after it stays for classify; a reader for streams that cannot peek that never
//! reads past the header; errors that map onto termination codes; the strictness above, and "need
//! more" for every strict prefix, which the readers rely on. A dependency that would have to be
//! checked against all of that is no saving over 300 lines.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use crate::account::Runtime;
use crate::addr::canonical;
use crate::config::model::SendProxy;
use crate::session::{Cause, Stage, Termination};

/// The 12 bytes every v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included (`PROXY UNKNOWN` with two full IPv6 addresses and ports).
pub const V1_MAX: usize = 107;
/// The longest v2 header accepted, the 16 fixed bytes included. The format allows 64 KiB; addresses
/// and the TLVs anyone sends fit in a few hundred bytes, and the bound keeps a peer from holding a
/// large buffer per connection.
pub const V2_MAX: usize = 4096;
/// The shortest header of either version (`PROXY UNKNOWN\r\n`); a v2 header has at least 16 bytes.
const MIN_HEADER: usize = 15;

const TLV_ALPN: u8 = 0x01;
const TLV_AUTHORITY: u8 = 0x02;
const TLV_CRC32C: u8 = 0x03;

/// The longest authority sent in a TLV: a DNS name never exceeds 255 bytes.
const MAX_AUTHORITY: usize = 255;

/// What a PROXY header said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// 1 (text) or 2 (binary).
    pub version: u8,
    /// v2 `LOCAL`: the sender opened the connection for itself (a health check); the socket's own
    /// addresses stand.
    pub local: bool,
    /// The client's address and the address it connected to (source, destination); `None` for
    /// `LOCAL`, v1 `UNKNOWN`, and v2 families that carry no IP addresses (unspecified, UNIX, UDP).
    pub addrs: Option<(SocketAddr, SocketAddr)>,
    /// `PP2_TYPE_AUTHORITY`: the name the client asked for (its SNI, for a TLS client).
    pub authority: Option<String>,
    /// `PP2_TYPE_ALPN`: the application protocol of the client's connection.
    pub alpn: Option<Vec<u8>>,
}

/// Why there is no header.
#[derive(Debug, thiserror::Error)]
pub enum PpError {
    #[error(
        "not a PROXY protocol header (it starts neither with 'PROXY ' nor with the v2 signature)"
    )]
    NotProxy,
    #[error("PROXY v1 line without CRLF in its first {V1_MAX} bytes")]
    V1TooLong,
    #[error("malformed PROXY v1 line: {0}")]
    V1(&'static str),
    #[error("PROXY v2 header of version {0}; only 2 exists")]
    V2Version(u8),
    #[error("PROXY v2 header with command {0:#x}; only LOCAL (0) and PROXY (1) exist")]
    V2Command(u8),
    #[error(
        "PROXY v2 header with address family and protocol byte {0:#04x}; known: 0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32"
    )]
    V2Family(u8),
    #[error("PROXY v2 header with {len} address bytes, fewer than the {need} its family takes")]
    V2Short { len: usize, need: usize },
    #[error("PROXY v2 header of {0} bytes; gatehouse accepts up to {V2_MAX}")]
    V2TooLong(usize),
    #[error("malformed PROXY v2 TLV: {0}")]
    Tlv(&'static str),
    #[error("PROXY v2 header whose CRC32C is {got:#010x}, but its bytes give {want:#010x}")]
    Crc32c { got: u32, want: u32 },
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    #[error("the peer closed the connection before a complete PROXY header")]
    Closed,
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

impl PpError {
    /// The termination code of a session whose header could not be read: `cR` for a timeout, `CR`
    /// for a read error (reset), `PR` for anything else (no header, a broken one, a peer that left
    /// before finishing it).
    pub fn termination(&self) -> Termination {
        let cause = match self {
            PpError::Timeout(_) => Cause::ClientTimeout,
            PpError::Io(_) => Cause::ClientAbort,
            _ => Cause::Proxy,
        };
        Termination::new(cause, Stage::Request)
    }
}

/// Reads the header at the start of `buf`: `Ok(None)` while `buf` could still become one,
/// `Ok(Some((header, length)))` once it is complete (bytes after `length` are not looked at).
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, PpError> {
    match buf.first() {
        None => Ok(None),
        Some(b'\r') => parse_v2(buf),
        Some(b'P') => parse_v1(buf),
        Some(_) => Err(PpError::NotProxy),
    }
}

/// `buf` must equal `want` as far as both go.
fn starts_like(buf: &[u8], want: &[u8]) -> bool {
    let n = buf.len().min(want.len());
    buf[..n] == want[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, PpError> {
    if !starts_like(buf, b"PROXY ") {
        return Err(PpError::NotProxy);
    }
    let window = &buf[..buf.len().min(V1_MAX)];
    // The line ends at the first CR, which must be followed by LF; a lone LF or CR is an error.
    let end = match window.iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(i) if window[i] == b'\n' => {
            return Err(PpError::V1("a line feed without carriage return"));
        }
        Some(i) if i + 1 == window.len() => None,
        Some(i) if window[i + 1] == b'\n' => Some(i),
        Some(_) => return Err(PpError::V1("a carriage return without line feed")),
        None => None,
    };
    let Some(end) = end else {
        if buf.len() >= V1_MAX {
            return Err(PpError::V1TooLong);
        }
        // (Without the CR that may end it: its LF is still to come.)
        let text = window.strip_suffix(b"\r").unwrap_or(window);
        v1_prefix_ok(&text[text.len().min(6)..])?;
        return Ok(None);
    };
    if end < 6 {
        return Err(PpError::NotProxy);
    }
    let line = &buf[6..end];
    let header = v1_line(line)?;
    Ok(Some((header, end + 2)))
}

/// Fails early on an incomplete line that can no longer become a header (garbage is refused at once
/// instead of at the timeout).
fn v1_prefix_ok(rest: &[u8]) -> Result<(), PpError> {
    let proto_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let proto = &rest[..proto_end];
    let known = [&b"TCP4"[..], b"TCP6", b"UNKNOWN"];
    let complete = proto_end < rest.len();
    let fits = known.iter().any(|k| {
        if complete {
            proto == *k
        } else {
            k.starts_with(proto)
        }
    });
    if !fits {
        return Err(PpError::V1(
            "unknown protocol; expected TCP4, TCP6 or UNKNOWN",
        ));
    }
    if proto != b"UNKNOWN"
        && !rest[proto_end..]
            .iter()
            .all(|b| b.is_ascii_hexdigit() || b".: ".contains(b))
    {
        return Err(PpError::V1(
            "unexpected character in the addresses or ports",
        ));
    }
    Ok(())
}

/// The part of a complete line after `PROXY `, before CRLF.
fn v1_line(line: &[u8]) -> Result<Header, PpError> {
    let v1 = |addrs| Header {
        version: 1,
        addrs,
        ..Header::default()
    };
    // UNKNOWN: whatever follows on the line is to be ignored.
    if let Some(rest) = line.strip_prefix(b"UNKNOWN") {
        if rest.is_empty() || rest[0] == b' ' {
            return Ok(v1(None));
        }
        return Err(PpError::V1(
            "unknown protocol; expected TCP4, TCP6 or UNKNOWN",
        ));
    }
    let text =
        std::str::from_utf8(line).map_err(|_| PpError::V1("unexpected character in the line"))?;
    let fields: Vec<&str> = text.split(' ').collect();
    let v4 = match fields[0] {
        "TCP4" => true,
        "TCP6" => false,
        _ => {
            return Err(PpError::V1(
                "unknown protocol; expected TCP4, TCP6 or UNKNOWN",
            ));
        }
    };
    let [_, src, dst, sport, dport] = fields[..] else {
        return Err(PpError::V1(
            "expected 'PROXY TCP4|TCP6 SRC DST SRCPORT DSTPORT', one space apart",
        ));
    };
    let ip = |s: &str, which: &'static str| -> Result<IpAddr, PpError> {
        let ip = if v4 {
            s.parse::<Ipv4Addr>().map(IpAddr::V4)
        } else {
            s.parse::<Ipv6Addr>().map(IpAddr::V6)
        };
        ip.map_err(|_| PpError::V1(which))
    };
    let src = ip(src, "the source is not an address of the announced family")?;
    let dst = ip(
        dst,
        "the destination is not an address of the announced family",
    )?;
    let (sport, dport) = (v1_port(sport)?, v1_port(dport)?);
    Ok(v1(Some((
        SocketAddr::new(src, sport),
        SocketAddr::new(dst, dport),
    ))))
}

/// A decimal port: 1 to 5 digits, no leading zero, at most 65535.
fn v1_port(s: &str) -> Result<u16, PpError> {
    let plain = !s.is_empty()
        && s.len() <= 5
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    plain
        .then(|| s.parse::<u16>().ok())
        .flatten()
        .ok_or(PpError::V1(
            "a port is not a decimal number from 0 to 65535",
        ))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, PpError> {
    if !starts_like(buf, &V2_SIGNATURE) {
        return Err(PpError::NotProxy);
    }
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 {
        return Err(PpError::V2Version(ver_cmd >> 4));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        c => return Err(PpError::V2Command(c)),
    };
    let Some(&fam) = buf.get(13) else {
        return Ok(None);
    };
    // The address block's size by family and protocol; LOCAL ignores the family altogether.
    let need = match fam {
        _ if local => 0,
        0x00 => 0,
        0x11 | 0x12 => 12,
        0x21 | 0x22 => 36,
        0x31 | 0x32 => 216,
        f => return Err(PpError::V2Family(f)),
    };
    if buf.len() < 16 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + len;
    if total > V2_MAX {
        return Err(PpError::V2TooLong(total));
    }
    if len < need {
        return Err(PpError::V2Short { len, need });
    }
    if buf.len() < total {
        return Ok(None);
    }
    let mut h = Header {
        version: 2,
        local,
        ..Header::default()
    };
    if local {
        // The sender's own connection: nothing in the block applies.
        return Ok(Some((h, total)));
    }
    let a = &buf[16..16 + need];
    h.addrs = match fam {
        0x11 => {
            let ip = |i: usize| IpAddr::from([a[i], a[i + 1], a[i + 2], a[i + 3]]);
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Some((
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            ))
        }
        0x21 => {
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[i..i + 16]);
                IpAddr::from(o)
            };
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Some((
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            ))
        }
        // Unspecified, UDP or UNIX: valid, but no TCP addresses to use; the socket's stand.
        _ => None,
    };
    tlvs(&buf[..total], 16 + need, &mut h)?;
    Ok(Some((h, total)))
}

/// Reads the TLVs of a complete v2 header from `start`; checks the CRC32C if one is present.
fn tlvs(header: &[u8], start: usize, h: &mut Header) -> Result<(), PpError> {
    let mut at = start;
    let mut crc_at = None;
    while at < header.len() {
        if header.len() - at < 3 {
            return Err(PpError::Tlv("a TLV cut short in its type and length"));
        }
        let kind = header[at];
        let len = usize::from(u16::from_be_bytes([header[at + 1], header[at + 2]]));
        let value_at = at + 3;
        let Some(value) = header.get(value_at..value_at + len) else {
            return Err(PpError::Tlv("a TLV longer than the header"));
        };
        match kind {
            TLV_ALPN if h.alpn.is_some() => return Err(PpError::Tlv("two ALPN TLVs")),
            TLV_ALPN => h.alpn = Some(value.to_vec()),
            TLV_AUTHORITY if h.authority.is_some() => {
                return Err(PpError::Tlv("two authority TLVs"));
            }
            TLV_AUTHORITY => {
                let name = std::str::from_utf8(value)
                    .map_err(|_| PpError::Tlv("an authority that is not UTF-8"))?;
                h.authority = Some(name.to_owned());
            }
            TLV_CRC32C if len != 4 => {
                return Err(PpError::Tlv("a CRC32C TLV whose value is not 4 bytes"));
            }
            TLV_CRC32C if crc_at.is_some() => return Err(PpError::Tlv("two CRC32C TLVs")),
            TLV_CRC32C => crc_at = Some(value_at),
            // NOOP, UNIQUE_ID, SSL, NETNS, custom ones: not used.
            _ => {}
        }
        at = value_at + len;
    }
    if let Some(i) = crc_at {
        let got = u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let want = crc32c_with_zeros(header, i..i + 4);
        if got != want {
            return Err(PpError::Crc32c { got, want });
        }
    }
    Ok(())
}

/// CRC32C (Castagnoli, as in RFC 4960 appendix B), bytewise from a table built at compile time.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// The CRC32C of `bytes` with the bytes in `zeros` counted as 0 (the checksum's own field).
fn crc32c_with_zeros(bytes: &[u8], zeros: std::ops::Range<usize>) -> u32 {
    let mut c = !0u32;
    for (i, &b) in bytes.iter().enumerate() {
        let b = if zeros.contains(&i) { 0 } else { b };
        c = CRC32C_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// A v1 line for a connection from `src` to `dst`; `UNKNOWN` when their families differ (v1 has no
/// way to say that). IPv4-mapped IPv6 addresses are written as IPv4.
pub fn encode_v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = (canonical(src), canonical(dst));
    let proto = match (src, dst) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => "TCP4",
        (SocketAddr::V6(_), SocketAddr::V6(_)) => "TCP6",
        _ => return b"PROXY UNKNOWN\r\n".to_vec(),
    };
    format!(
        "PROXY {proto} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// The header of a connection the sender opened for itself, a health check: v1 `UNKNOWN`, or v2
/// `LOCAL` with no addresses (and the checksum TLV if asked for). The receiver keeps the socket's own
/// addresses.
pub fn encode_local(v2: bool, crc32c: bool) -> Vec<u8> {
    if !v2 {
        return b"PROXY UNKNOWN\r\n".to_vec();
    }
    let mut out = Vec::with_capacity(23);
    out.extend_from_slice(&V2_SIGNATURE);
    out.extend_from_slice(&[0x20, 0x00, 0, 0]); // version 2, LOCAL; unspecified family
    finish_v2(&mut out, crc32c);
    out
}

/// What a v2 header carries besides the addresses (`proxy-v2-options`).
#[derive(Debug, Clone, Copy, Default)]
pub struct V2Options<'a> {
    /// Sent as `PP2_TYPE_AUTHORITY` (left out if longer than a DNS name can be).
    pub authority: Option<&'a str>,
    /// Add a `PP2_TYPE_CRC32C` checksum of the whole header.
    pub crc32c: bool,
}

/// A v2 `PROXY` header for a TCP connection from `src` to `dst`. Two IPv4 addresses (IPv4-mapped ones
/// included) go as TCP over IPv4; otherwise both go as IPv6, an IPv4 one in its mapped form.
pub fn encode_v2(src: SocketAddr, dst: SocketAddr, opts: &V2Options<'_>) -> Vec<u8> {
    let (src, dst) = (canonical(src), canonical(dst));
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21); // version 2, PROXY
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&[0x11, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.extend_from_slice(&[0x21, 0, 0]);
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    if let Some(name) = opts
        .authority
        .filter(|n| !n.is_empty() && n.len() <= MAX_AUTHORITY)
    {
        out.push(TLV_AUTHORITY);
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    finish_v2(&mut out, opts.crc32c);
    out
}

/// Ends a v2 header whose fixed part and TLVs are in `out`: the checksum TLV if asked for, then the
/// length field, then the checksum over the whole header.
fn finish_v2(out: &mut Vec<u8>, crc32c: bool) {
    let crc_at = crc32c.then(|| {
        out.extend_from_slice(&[TLV_CRC32C, 0, 4, 0, 0, 0, 0]);
        out.len() - 4
    });
    let len = (out.len() - 16) as u16;
    out[14..16].copy_from_slice(&len.to_be_bytes());
    if let Some(i) = crc_at {
        let crc = crc32c_with_zeros(out, i..i + 4);
        out[i..i + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Reads a header from an accepted socket within `limit`, consuming exactly its bytes: each round
/// peeks at what arrived, and reads either up to the header's end (when it is in the peeked bytes)
/// or every peeked byte (all of them are header while it is incomplete).
pub async fn read_from_tcp(s: &TcpStream, limit: Duration) -> Result<Header, PpError> {
    tokio::time::timeout(limit, read_tcp(s))
        .await
        .map_err(|_| PpError::Timeout(limit))?
}

async fn read_tcp(s: &TcpStream) -> Result<Header, PpError> {
    let mut buf = vec![0u8; V2_MAX];
    let mut have = 0;
    loop {
        let n = s.peek(&mut buf[have..]).await?;
        if n == 0 {
            return Err(PpError::Closed);
        }
        let seen = have + n;
        match parse(&buf[..seen])? {
            Some((h, used)) => {
                take_exact(s, &mut buf[have..used]).await?;
                return Ok(h);
            }
            None => {
                take_exact(s, &mut buf[have..seen]).await?;
                have = seen;
            }
        }
    }
}

/// Reads exactly `buf.len()` bytes that a peek has shown to be there.
async fn take_exact(s: &TcpStream, buf: &mut [u8]) -> Result<(), PpError> {
    let mut at = 0;
    while at < buf.len() {
        s.readable().await?;
        match s.try_read(&mut buf[at..]) {
            Ok(0) => return Err(PpError::Closed),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads a header from any byte stream within `limit` without reading past it: only byte counts the
/// header is sure to have (its first 15 or 16 bytes, then the announced length of a v2 header, a
/// v1 line a byte or two at a time). For streams that cannot peek (inside TLS).
pub async fn read_from<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: Duration,
) -> Result<Header, PpError> {
    let read = async {
        let mut buf = Vec::with_capacity(128);
        loop {
            if let Some((h, _)) = parse(&buf)? {
                return Ok(h);
            }
            let have = buf.len();
            buf.resize(have + still_needed(&buf), 0);
            r.read_exact(&mut buf[have..]).await.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    PpError::Closed
                } else {
                    PpError::Io(e)
                }
            })?;
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| PpError::Timeout(limit))?
}

/// How many more bytes an incomplete header (one [`parse`] said "need more" of) has at least.
fn still_needed(buf: &[u8]) -> usize {
    match buf.first() {
        None => MIN_HEADER,
        Some(b'\r') if buf.len() < 16 => 16 - buf.len(),
        Some(b'\r') => 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]])) - buf.len(),
        Some(_) if buf.len() < MIN_HEADER => MIN_HEADER - buf.len(),
        // A v1 line: CRLF at least, or its LF after a CR.
        Some(_) if buf.last() == Some(&b'\r') => 1,
        Some(_) => 2,
    }
}

/// What a session keeps from the PROXY header it accepted, beyond the two addresses.
#[derive(Debug, Default)]
pub struct Proxied {
    /// The authority TLV the sending proxy passed on: what `send-proxy-v2` with
    /// `proxy-v2-options authority` forwards when the session has no SNI of its own.
    pub authority: Option<Box<str>>,
}

/// Accept side of `bind … accept-proxy`, run before anything else of the session: the frontend's
/// `tcp-request connection` rules on the socket's addresses `peer` and `local` (the sending proxy's,
/// as in HAProxy), then the header, read within the frontend's `timeout client` (5 s when unset).
/// Returns the session's client address and original destination (the header's; the socket's for
/// `LOCAL`, `UNKNOWN`, and a connection to close) and what else the header brought, or the
/// termination code to close the connection with.
pub async fn accept(
    rt: &Runtime,
    frontend: usize,
    client: &TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
) -> (SocketAddr, SocketAddr, Result<Proxied, Termination>) {
    let fe = &rt.cfg.frontends[frontend];
    if !fe.connection_rules.is_empty() {
        let stick = crate::stick::StickCtx {
            tables: &rt.tables,
            own: fe.table,
            tracked: Default::default(),
        };
        let facts = crate::rules::sample::Facts::addresses(
            canonical(peer),
            canonical(local),
            (!rt.tables.is_empty()).then_some(&stick),
        );
        if crate::route::run_rules(&fe.connection_rules, &fe.acls, &facts) == Some(false) {
            rt.policy
                .rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return (
                peer,
                local,
                Err(Termination::new(Cause::Proxy, Stage::Request)),
            );
        }
    }
    let limit = fe.timeout_client.unwrap_or(ACCEPT_TIMEOUT);
    match read_from_tcp(client, limit).await {
        Ok(h) => {
            let (client_addr, dst) = h.addrs.unwrap_or((peer, local));
            tracing::debug!(peer = %peer, client = %client_addr, dst = %dst, version = h.version, local = h.local, authority = ?h.authority, "PROXY header");
            let proxied = Proxied {
                authority: h.authority.map(Into::into),
            };
            (client_addr, dst, Ok(proxied))
        }
        Err(e) => {
            match &e {
                PpError::Closed | PpError::Io(_) => {
                    tracing::debug!(peer = %peer, frontend = %fe.name, "accept-proxy: {e}")
                }
                _ => {
                    tracing::info!(peer = %peer, frontend = %fe.name, "accept-proxy: {e}; closing")
                }
            }
            (peer, local, Err(e.termination()))
        }
    }
}

/// Accept side of `accept-proxy proxy-in-tls`: the header read inside a TLS session whose handshake
/// just ended. Returns the header's client address and original destination (`None`: keep the
/// socket's) and what else it brought, or the termination code to close with.
pub async fn accept_in_tls(
    rt: &Runtime,
    frontend: usize,
    sock: &mut crate::tls::Sock,
    peer: SocketAddr,
) -> Result<(Option<(SocketAddr, SocketAddr)>, Proxied), Termination> {
    let fe = &rt.cfg.frontends[frontend];
    let limit = fe.timeout_client.unwrap_or(ACCEPT_TIMEOUT);
    match read_from(sock, limit).await {
        Ok(h) => {
            tracing::debug!(peer = %peer, addrs = ?h.addrs, version = h.version, authority = ?h.authority, "PROXY header inside TLS");
            let addrs = h.addrs.map(|(c, d)| (canonical(c), canonical(d)));
            Ok((
                addrs,
                Proxied {
                    authority: h.authority.map(Into::into),
                },
            ))
        }
        Err(e) => {
            tracing::info!(peer = %peer, frontend = %fe.name, "accept-proxy (inside TLS): {e}; closing");
            Err(e.termination())
        }
    }
}

/// The header bytes `send-proxy[-v2]` writes (see [`send`]).
pub fn header(
    how: &SendProxy,
    client: SocketAddr,
    dst: SocketAddr,
    authority: Option<&str>,
) -> Vec<u8> {
    if how.v2 {
        let opts = V2Options {
            authority: authority.filter(|_| how.authority),
            crc32c: how.crc32c,
        };
        encode_v2(client, dst, &opts)
    } else {
        encode_v1(client, dst)
    }
}

/// How long `accept-proxy` waits for the header when the frontend has no `timeout client`.
pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Send side of `send-proxy` / `send-proxy-v2`: writes the header on a server connection that has
/// just been made, before any other byte. It carries the client's address and the original
/// destination; with `proxy-v2-options authority`, `authority` (the client's SNI, or the authority a
/// PROXY header brought) when there is one.
pub async fn send(
    server: &TcpStream,
    how: &SendProxy,
    client: SocketAddr,
    dst: SocketAddr,
    authority: Option<&str>,
    limit: Duration,
) -> io::Result<()> {
    let bytes = header(how, client, dst, authority);
    // A new connection's send buffer is empty: this is one write.
    match tokio::time::timeout(limit, crate::forward::write_all(server, &bytes)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the server took no PROXY header",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A health check's header reads back as LOCAL (v2) or UNKNOWN (v1), checksum included.
    #[test]
    fn local_headers_read_back() {
        for (v2, crc) in [(false, false), (true, false), (true, true)] {
            let bytes = encode_local(v2, crc);
            let (h, used) = parse(&bytes).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(h.version, if v2 { 2 } else { 1 });
            assert_eq!((h.local, h.addrs), (v2, None));
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Every strict prefix says "need more"; the whole says `want` and its length; trailing bytes
    /// are not taken.
    fn complete(wire: &[u8], want: &Header) {
        for n in 0..wire.len() {
            match parse(&wire[..n]) {
                Ok(None) => {}
                other => panic!("prefix of {n} bytes of {wire:?}: {other:?}"),
            }
        }
        let (h, used) = parse(wire).unwrap().unwrap();
        assert_eq!((&h, used), (want, wire.len()), "{wire:?}");
        let mut more = wire.to_vec();
        more.extend_from_slice(b"\x16\x03\x01 and the rest");
        let (h2, used2) = parse(&more).unwrap().unwrap();
        assert_eq!((h2, used2), (h, wire.len()));
    }

    fn v1(src: &str, dst: &str) -> Header {
        Header {
            version: 1,
            addrs: Some((sa(src), sa(dst))),
            ..Header::default()
        }
    }

    /// A v2 header from its family byte, address block and TLVs.
    fn v2_wire(cmd: u8, fam: u8, block: &[u8], tlvs: &[(u8, &[u8])]) -> Vec<u8> {
        let mut w = V2_SIGNATURE.to_vec();
        w.push(0x20 | cmd);
        w.push(fam);
        let mut body = block.to_vec();
        for (t, v) in tlvs {
            body.push(*t);
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
        }
        w.extend_from_slice(&(body.len() as u16).to_be_bytes());
        w.extend(body);
        w
    }

    #[test]
    fn v1_headers_complete_only_at_crlf() {
        complete(
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            &v1("192.168.0.1:56324", "192.168.0.11:443"),
        );
        complete(
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
            &v1("255.255.255.255:65535", "255.255.255.255:65535"),
        );
        complete(
            b"PROXY TCP6 2001:db8::1 2001:db8::2:1 0 8443\r\n",
            &v1("[2001:db8::1]:0", "[2001:db8::2:1]:8443"),
        );
        let unknown = Header {
            version: 1,
            ..Header::default()
        };
        complete(b"PROXY UNKNOWN\r\n", &unknown);
        complete(
            b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
            &unknown,
        );
        // The longest line the specification allows is exactly V1_MAX.
        let longest = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(longest.len(), V1_MAX);
    }

    #[test]
    fn v1_malformed() {
        let cases: &[(&[u8], &str)] = &[
            (b"GET / HTTP/1.1\r\n", "not a PROXY"),
            (b"\x16\x03\x01\x00", "not a PROXY"),
            (b"PROXY", ""), // (a prefix: checked below as Ok(None))
            (b"PROXX TCP4", "not a PROXY"),
            (b"PROXY TCP5 ", "unknown protocol"),
            (b"PROXY UDP4 1.1.1.1 1.1.1.1 1 1\r\n", "unknown protocol"),
            (b"PROXY UNKNOWNX\r\n", "unknown protocol"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "line feed without"),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
                "carriage return without",
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "one space apart"),
            (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "one space apart"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "one space apart"),
            (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "source is not"),
            (b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n", "destination is not"),
            (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "source is not"),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n",
                "destination is not",
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "port"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "port"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n", "port"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "port"),
            (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "source is not"),
            (b"PROXY TCP6 fe80::1%eth0 ", "unexpected character"),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 GET",
                "unexpected character",
            ),
            (b"PROXY \r\n", "unknown protocol"),
        ];
        for (wire, want) in cases {
            match parse(wire) {
                Ok(None) if want.is_empty() => {}
                Err(e) if !want.is_empty() && e.to_string().contains(want) => {}
                other => panic!(
                    "{:?}: {other:?}, expected {want:?}",
                    String::from_utf8_lossy(wire)
                ),
            }
        }
        // No CRLF in the first 107 bytes.
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX, b'a');
        assert!(matches!(parse(&long[..V1_MAX - 1]), Ok(None)));
        assert!(matches!(parse(&long), Err(PpError::V1TooLong)));
    }

    #[test]
    fn v2_headers_with_tlvs_complete_at_their_length() {
        let v4 = [127, 0, 0, 1, 10, 0, 0, 9, 0xdb, 0x38, 0x01, 0xbb];
        complete(
            &v2_wire(1, 0x11, &v4, &[]),
            &Header {
                version: 2,
                addrs: Some((sa("127.0.0.1:56120"), sa("10.0.0.9:443"))),
                ..Header::default()
            },
        );
        let mut v6 = Vec::new();
        v6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"2001:db8::1:2".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb]);
        complete(
            &v2_wire(
                1,
                0x21,
                &v6,
                &[
                    (0x04, b""),
                    (TLV_ALPN, b"h2"),
                    (TLV_AUTHORITY, b"www.example.test"),
                    (0x20, &[1, 0, 0, 0, 0, 0x21, 0, 3, b'1', b'.', b'3']),
                    (0xe0, b"custom"),
                ],
            ),
            &Header {
                version: 2,
                addrs: Some((sa("[2001:db8::7]:12345"), sa("[2001:db8::1:2]:443"))),
                authority: Some("www.example.test".into()),
                alpn: Some(b"h2".to_vec()),
                ..Header::default()
            },
        );
        // LOCAL: whatever the family and block, the socket's addresses stand.
        let local = Header {
            version: 2,
            local: true,
            ..Header::default()
        };
        complete(&v2_wire(0, 0x00, &[], &[]), &local);
        complete(&v2_wire(0, 0x11, &v4, &[]), &local);
        complete(&v2_wire(0, 0x99, &[1, 2, 3], &[]), &local);
        // Families without TCP addresses fall back to the socket's, TLVs still read.
        complete(
            &v2_wire(1, 0x12, &v4, &[(TLV_AUTHORITY, b"a.test")]),
            &Header {
                version: 2,
                authority: Some("a.test".into()),
                ..Header::default()
            },
        );
        complete(
            &v2_wire(1, 0x31, &[0; 216], &[]),
            &Header {
                version: 2,
                ..Header::default()
            },
        );
        complete(
            &v2_wire(1, 0x00, &[], &[(TLV_AUTHORITY, b"b.test")]),
            &Header {
                version: 2,
                authority: Some("b.test".into()),
                ..Header::default()
            },
        );
    }

    #[test]
    fn v2_malformed() {
        let v4 = [127, 0, 0, 1, 10, 0, 0, 9, 0, 80, 0, 80];
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut w = v2_wire(1, 0x11, &v4, &[(TLV_AUTHORITY, b"x.test")]);
            f(&mut w);
            w
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"\r\n\r\n\0\r\nQUIX\n".to_vec(), "not a PROXY"),
            (with(&|w| w[12] = 0x11), "version 1"),
            (with(&|w| w[12] = 0x22), "command 0x2"),
            (with(&|w| w[12] = 0x2f), "command 0xf"),
            (with(&|w| w[13] = 0x41), "byte 0x41"),
            (with(&|w| w[13] = 0x13), "byte 0x13"),
            (with(&|w| w[13] = 0x10), "byte 0x10"),
            (
                v2_wire(1, 0x21, &v4, &[]),
                "12 address bytes, fewer than the 36",
            ),
            (
                with(&|w| w[14..16].copy_from_slice(&5000u16.to_be_bytes())),
                "5016 bytes",
            ),
            // The authority TLV says 7 bytes, 6 follow.
            (with(&|w| w[30] = 7), "longer than the header"),
            (with(&|w| w.truncate(w.len() - 1)), ""), // a prefix: need more
            (
                v2_wire(1, 0x11, &v4, &[(TLV_AUTHORITY, &[0xff, 0xfe])]),
                "not UTF-8",
            ),
            (
                v2_wire(
                    1,
                    0x11,
                    &v4,
                    &[(TLV_AUTHORITY, b"a"), (TLV_AUTHORITY, b"b")],
                ),
                "two authority",
            ),
            (
                v2_wire(1, 0x11, &v4, &[(TLV_CRC32C, &[1, 2, 3])]),
                "not 4 bytes",
            ),
            (
                v2_wire(1, 0x11, &v4, &[(TLV_CRC32C, &[0, 0, 0, 0])]),
                "CRC32C is 0x00000000",
            ),
        ];
        for (wire, want) in &cases {
            match parse(wire) {
                Ok(None) if want.is_empty() => {}
                Err(e) if !want.is_empty() && e.to_string().contains(want) => {}
                other => panic!("{wire:?}: {other:?}, expected {want:?}"),
            }
        }
        // Two bytes of TLV left: cut short. Built by hand since v2_wire writes whole TLVs.
        let mut w = v2_wire(1, 0x11, &v4, &[]);
        w.extend_from_slice(&[0x04, 0x00]);
        let len = (w.len() - 16) as u16;
        w[14..16].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(parse(&w), Err(PpError::Tlv(m)) if m.contains("cut short")));
        // The length is judged as soon as it is known: an oversized header is refused at 16 bytes.
        let big = with(&|w| w[14..16].copy_from_slice(&u16::MAX.to_be_bytes()));
        assert!(matches!(parse(&big[..16]), Err(PpError::V2TooLong(_))));
    }

    #[test]
    fn crc32c_known_values() {
        assert_eq!(crc32c_with_zeros(b"123456789", 0..0), 0xE306_9283);
        assert_eq!(crc32c_with_zeros(&[0u8; 32], 0..0), 0x8A91_36AA);
        // A checksum made by the encoder verifies; flipping any byte breaks it.
        let w = encode_v2(
            sa("10.1.2.3:4000"),
            sa("10.9.9.9:443"),
            &V2Options {
                authority: Some("x.test"),
                crc32c: true,
            },
        );
        assert!(parse(&w).unwrap().is_some());
        // (Except the CRC32C TLV's type byte: without it, there is no checksum to verify.)
        let crc_type = w.len() - 7;
        for i in (16..w.len()).filter(|&i| i != crc_type) {
            let mut bad = w.clone();
            bad[i] ^= 0x40;
            assert!(parse(&bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let pairs = [
            ("192.0.2.1:51000", "198.51.100.7:443"),
            ("[2001:db8::1]:51000", "[2001:db8::abcd]:8443"),
            ("[::ffff:192.0.2.1]:1", "[::ffff:198.51.100.7]:2"),
            ("[::ffff:192.0.2.1]:1", "198.51.100.7:2"),
        ];
        for (s, d) in pairs {
            let (s, d) = (sa(s), sa(d));
            let canon = Some((canonical(s), canonical(d)));
            let (h, _) = parse(&encode_v1(s, d)).unwrap().unwrap();
            assert_eq!(h.addrs, canon, "v1 {s} {d}");
            for crc32c in [false, true] {
                let opts = V2Options {
                    authority: Some("www.example.test"),
                    crc32c,
                };
                let wire = encode_v2(s, d, &opts);
                complete(
                    &wire,
                    &Header {
                        version: 2,
                        addrs: canon,
                        authority: Some("www.example.test".into()),
                        ..Header::default()
                    },
                );
            }
        }
        assert_eq!(
            encode_v1(sa("192.0.2.1:51000"), sa("198.51.100.7:443")),
            b"PROXY TCP4 192.0.2.1 198.51.100.7 51000 443\r\n"
        );
        // Mixed families: v1 cannot say it; v2 sends both as IPv6.
        assert_eq!(
            encode_v1(sa("192.0.2.1:1"), sa("[2001:db8::1]:2")),
            b"PROXY UNKNOWN\r\n"
        );
        let (h, _) = parse(&encode_v2(
            sa("192.0.2.1:1"),
            sa("[2001:db8::1]:2"),
            &V2Options::default(),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            h.addrs,
            Some((sa("[::ffff:192.0.2.1]:1"), sa("[2001:db8::1]:2")))
        );
        // An authority no DNS name could be is left out.
        let long = "a".repeat(300);
        let w = encode_v2(
            sa("192.0.2.1:1"),
            sa("192.0.2.2:2"),
            &V2Options {
                authority: Some(&long),
                crc32c: false,
            },
        );
        assert_eq!(w.len(), 16 + 12);
    }

    #[test]
    fn still_needed_never_reaches_past_the_header() {
        let headers = [
            encode_v1(sa("192.0.2.1:51000"), sa("198.51.100.7:443")),
            encode_v1(sa("[2001:db8::1]:1"), sa("[2001:db8::2]:2")),
            b"PROXY UNKNOWN\r\n".to_vec(),
            encode_v2(
                sa("192.0.2.1:1"),
                sa("192.0.2.2:2"),
                &V2Options {
                    authority: Some("a.test"),
                    crc32c: true,
                },
            ),
            v2_wire(0, 0, &[], &[]),
        ];
        for h in &headers {
            let mut have = 0;
            loop {
                match parse(&h[..have]).unwrap() {
                    Some((_, used)) => {
                        assert_eq!(used, h.len());
                        break;
                    }
                    None => {
                        have += still_needed(&h[..have]);
                        assert!(have <= h.len(), "{h:?}: asked for {have}");
                    }
                }
            }
        }
    }

    /// A header followed by the client's first bytes, sent in `pieces`.
    async fn reader_case(pieces: &[&[u8]]) -> (Result<Header, PpError>, Vec<u8>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
        let client = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.set_nodelay(true).unwrap();
            for p in pieces {
                c.write_all(&p).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            c.shutdown().await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        let (mut s, _) = l.accept().await.unwrap();
        let got = read_from_tcp(&s, Duration::from_secs(2)).await;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        client.await.unwrap();
        (got, rest)
    }

    #[tokio::test]
    async fn the_tcp_reader_takes_the_header_and_nothing_more() {
        let v1 = b"PROXY TCP4 192.0.2.1 198.51.100.7 51000 443\r\n";
        let v2 = encode_v2(
            sa("192.0.2.1:51000"),
            sa("198.51.100.7:443"),
            &V2Options {
                authority: Some("a.test"),
                crc32c: true,
            },
        );
        let after = b"\x16\x03\x01\x00\x05hello";
        for header in [&v1[..], &v2[..]] {
            // At once; split inside the header; byte by byte; header alone then data.
            let mut whole = header.to_vec();
            whole.extend_from_slice(after);
            let splits: Vec<Vec<&[u8]>> = vec![
                vec![&whole],
                vec![&whole[..7], &whole[7..20], &whole[20..]],
                whole.chunks(1).collect(),
                vec![header, &after[..]],
            ];
            for pieces in splits {
                let (h, rest) = reader_case(&pieces).await;
                let h = h.unwrap();
                assert_eq!(
                    h.addrs,
                    Some((sa("192.0.2.1:51000"), sa("198.51.100.7:443")))
                );
                assert_eq!(rest, after, "{} pieces", pieces.len());
            }
        }
        let (h, _) = reader_case(&[&b"GET / HTTP/1.1\r\n\r\n"[..]]).await;
        assert!(matches!(h, Err(PpError::NotProxy)), "{h:?}");
        let (h, _) = reader_case(&[&b"PROXY TCP4 1.2.3.4"[..]]).await;
        assert!(matches!(h, Err(PpError::Closed)), "{h:?}");
    }

    #[tokio::test]
    async fn the_tcp_reader_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _c = TcpStream::connect(addr).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        let got = read_from_tcp(&s, Duration::from_millis(100)).await;
        assert!(matches!(got, Err(PpError::Timeout(_))), "{got:?}");
        assert_eq!(got.unwrap_err().termination().to_string(), "cR");
    }

    #[tokio::test]
    async fn the_stream_reader_takes_the_header_and_nothing_more() {
        let after = b"GET / HTTP/1.1\r\n\r\n";
        for header in [
            b"PROXY UNKNOWN\r\n".to_vec(),
            encode_v1(sa("[2001:db8::1]:1"), sa("[2001:db8::2]:2")),
            encode_v2(sa("192.0.2.1:1"), sa("192.0.2.2:2"), &V2Options::default()),
            v2_wire(0, 0, &[], &[]),
        ] {
            let mut whole = header.clone();
            whole.extend_from_slice(after);
            let mut r = &whole[..];
            let h = read_from(&mut r, Duration::from_secs(1)).await.unwrap();
            assert_eq!(h, parse(&header).unwrap().unwrap().0);
            assert_eq!(r, after);
        }
        let mut r = &b"PROXY TCP4 1.2.3.4 5.6"[..];
        let got = read_from(&mut r, Duration::from_secs(1)).await;
        assert!(matches!(got, Err(PpError::Closed)), "{got:?}");
    }
}

//! A lenient TLS ClientHello reader for routing: the server name (SNI), ALPN, versions and whether
//! encrypted_client_hello is offered, from bytes a client sent, without answering them.
//!
//! Written here rather than taken from tls-parser (see docs/ARCHITECTURE.md): a hello may span several
//! records (post-quantum key shares make hellos over 16 KiB, and a client may split anywhere; SNI in
//! the second or third record must work), so the records are reassembled first and the hello read from
//! the joined handshake bytes; every length is checked against what is there; nothing is allocated but
//! the joined hello (bounded by [`MAX_HELLO`]) and the few strings returned.
//!
//! [`parse`] is pure: given the bytes so far it says "need more" ([`TlsError::Incomplete`]), "not TLS"
//! as early as the first bytes show it, or what the hello says.

/// Largest handshake message accepted (post-quantum hellos exceed one 16 KiB record).
pub const MAX_HELLO: usize = 64 * 1024;

/// Largest TLS record payload (2^14) plus the expansion TLS allows for compressed records.
const MAX_RECORD: usize = 16384 + 2048;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The first host_name of server_name, lower-case, without a trailing dot.
    pub sni: Option<String>,
    /// The protocols offered (ALPN), as sent.
    pub alpn: Vec<String>,
    /// The version field of the first record header.
    pub record_version: u16,
    /// client_version in the hello body.
    pub legacy_version: u16,
    /// supported_versions (extension 43), GREASE values removed.
    pub supported_versions: Vec<u16>,
    /// encrypted_client_hello (extension 0xfe0d) is present: SNI is then the outer, public name.
    pub ech: bool,
    /// An SSLv2-compatible hello: it has no extensions, so no SNI.
    pub sslv2: bool,
    /// Bytes of the input the hello occupies (every record that carries it).
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("incomplete")]
    Incomplete,
    #[error("not TLS")]
    NotTls,
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    #[error("ClientHello larger than 64 KiB")]
    TooLarge,
}

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const EXT_ECH: u16 = 0xfe0d;

/// Wraps a ClientHello body (what follows the handshake header) into a handshake message and one TLS
/// record: what a client sends. For health checks and tests.
pub fn client_hello_record(body: &[u8]) -> Vec<u8> {
    let mut rec = vec![0x16, 3, 1];
    rec.extend(((body.len() + 4) as u16).to_be_bytes());
    rec.push(1);
    rec.extend(&(body.len() as u32).to_be_bytes()[1..]);
    rec.extend(body);
    rec
}

/// Reads the ClientHello at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<ClientHello, TlsError> {
    let Some(&first) = buf.first() else {
        return Err(TlsError::Incomplete);
    };
    if first != 0x16 {
        if first & 0x80 != 0 {
            return sslv2(buf);
        }
        return Err(TlsError::NotTls);
    }
    if let Some(&major) = buf.get(1)
        && major != 3
    {
        return Err(TlsError::NotTls);
    }
    let (hello, len, record_version) = reassemble(buf)?;
    let mut h = read_hello(&hello)?;
    h.len = len;
    h.record_version = record_version;
    Ok(h)
}

/// Joins the payloads of the handshake records at the start of `buf` until they hold the whole first
/// handshake message; returns its body, the bytes consumed and the first record's version.
fn reassemble(buf: &[u8]) -> Result<(Vec<u8>, usize, u16), TlsError> {
    let mut joined: Vec<u8> = Vec::new();
    let mut pos = 0;
    let mut first_version = None;
    // The handshake message's total size (4-byte header + body), once its header is known.
    let mut need: Option<usize> = None;
    loop {
        if let Some(n) = need
            && joined.len() >= n
        {
            joined.truncate(n);
            joined.drain(..4);
            return Ok((joined, pos, first_version.unwrap_or(0)));
        }
        let header = &buf[pos.min(buf.len())..];
        if header.len() < 5 {
            // Judge what is there: a later record must be a handshake record too.
            if let Some(&t) = header.first()
                && t != 0x16
            {
                return Err(TlsError::Malformed(
                    "a non-handshake record inside the hello",
                ));
            }
            if let Some(&major) = header.get(1)
                && major != 3
            {
                return Err(TlsError::Malformed("bad record version"));
            }
            return Err(TlsError::Incomplete);
        }
        if header[0] != 0x16 {
            return Err(TlsError::Malformed(
                "a non-handshake record inside the hello",
            ));
        }
        if header[1] != 3 {
            return Err(if pos == 0 {
                TlsError::NotTls
            } else {
                TlsError::Malformed("bad record version")
            });
        }
        let version = u16::from_be_bytes([header[1], header[2]]);
        first_version.get_or_insert(version);
        let rec_len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if rec_len == 0 {
            return Err(TlsError::Malformed("empty handshake record"));
        }
        if rec_len > MAX_RECORD {
            return Err(TlsError::Malformed("record longer than TLS allows"));
        }
        let body = &header[5..];
        let take = body.len().min(rec_len);
        joined.extend_from_slice(&body[..take]);
        if need.is_none() && joined.len() >= 4 {
            if joined[0] != 1 {
                return Err(TlsError::Malformed(
                    "first handshake message is not a ClientHello",
                ));
            }
            let n =
                usize::from(joined[1]) << 16 | usize::from(joined[2]) << 8 | usize::from(joined[3]);
            if n > MAX_HELLO {
                return Err(TlsError::TooLarge);
            }
            need = Some(n + 4);
        }
        if take < rec_len {
            // This record is not all here yet; it may already hold the whole hello.
            if let Some(n) = need
                && joined.len() >= n
            {
                pos += 5 + rec_len;
                continue;
            }
            return Err(TlsError::Incomplete);
        }
        pos += 5 + rec_len;
        if joined.len() > MAX_HELLO + 4 {
            return Err(TlsError::TooLarge);
        }
    }
}

/// A cursor over the hello body; every read is bounds-checked.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TlsError> {
        if self.b.len() < n {
            return Err(TlsError::Malformed(what));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, TlsError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, TlsError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    /// A vector with a 1- or 2-byte length prefix.
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], TlsError> {
        let n = usize::from(self.u8(what)?);
        self.take(n, what)
    }
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], TlsError> {
        let n = usize::from(self.u16(what)?);
        self.take(n, what)
    }
}

fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// Reads the ClientHello body (after the 4-byte handshake header).
fn read_hello(body: &[u8]) -> Result<ClientHello, TlsError> {
    let mut r = Reader { b: body };
    let mut h = ClientHello {
        legacy_version: r.u16("truncated version")?,
        ..ClientHello::default()
    };
    r.take(32, "truncated random")?;
    let sid = r.vec8("truncated session id")?;
    if sid.len() > 32 {
        return Err(TlsError::Malformed("session id longer than 32 bytes"));
    }
    let suites = r.vec16("truncated cipher suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(TlsError::Malformed("bad cipher suite list"));
    }
    if r.vec8("truncated compression methods")?.is_empty() {
        return Err(TlsError::Malformed("no compression method"));
    }
    if r.b.is_empty() {
        // A hello without extensions (TLS 1.0 era): valid, and nameless.
        return Ok(h);
    }
    let mut exts = Reader {
        b: r.vec16("truncated extensions")?,
    };
    while !exts.b.is_empty() {
        let kind = exts.u16("truncated extension")?;
        let data = exts.vec16("truncated extension")?;
        match kind {
            EXT_SERVER_NAME if h.sni.is_none() => h.sni = server_name(data)?,
            EXT_ALPN => {
                let mut list = Reader {
                    b: Reader { b: data }.vec16("truncated ALPN list")?,
                };
                while !list.b.is_empty() {
                    let p = list.vec8("truncated ALPN protocol")?;
                    if p.is_empty() {
                        return Err(TlsError::Malformed("empty ALPN protocol"));
                    }
                    h.alpn.push(String::from_utf8_lossy(p).into_owned());
                }
            }
            EXT_SUPPORTED_VERSIONS => {
                let list = Reader { b: data }.vec8("truncated supported_versions")?;
                if list.len() % 2 != 0 {
                    return Err(TlsError::Malformed("bad supported_versions"));
                }
                h.supported_versions = list
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .filter(|v| !is_grease(*v))
                    .collect();
            }
            EXT_ECH => h.ech = true,
            _ => {}
        }
    }
    Ok(h)
}

/// The first host_name of a server_name extension, checked to be a DNS name.
fn server_name(data: &[u8]) -> Result<Option<String>, TlsError> {
    let mut list = Reader {
        b: Reader { b: data }.vec16("truncated server_name list")?,
    };
    while !list.b.is_empty() {
        let kind = list.u8("truncated server_name entry")?;
        let name = list.vec16("truncated server_name entry")?;
        if kind != 0 {
            continue;
        }
        let name = name.strip_suffix(b".").unwrap_or(name);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            && !name.starts_with(b".")
            && !name.windows(2).any(|w| w == b"..");
        if !valid {
            return Err(TlsError::Malformed("server name is not a DNS name"));
        }
        return Ok(Some(String::from_utf8_lossy(name).to_ascii_lowercase()));
    }
    Ok(None)
}

/// An SSLv2-compatible ClientHello: a 2-byte length with the top bit set, message type 1.
fn sslv2(buf: &[u8]) -> Result<ClientHello, TlsError> {
    if buf.len() < 3 {
        return Err(TlsError::Incomplete);
    }
    if buf[2] != 1 {
        return Err(TlsError::NotTls);
    }
    let len = usize::from(u16::from_be_bytes([buf[0] & 0x7f, buf[1]]));
    if len < 9 {
        return Err(TlsError::Malformed("SSLv2 hello too short"));
    }
    if buf.len() < 2 + len {
        return Err(TlsError::Incomplete);
    }
    Ok(ClientHello {
        legacy_version: u16::from_be_bytes([buf[3], buf[4]]),
        sslv2: true,
        len: 2 + len,
        ..ClientHello::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a ClientHello handshake message (header included) with the given extensions.
    pub(crate) fn hello_msg(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([0x11; 32]);
        body.push(32);
        body.extend([0x22; 32]);
        body.extend([0, 4, 0x13, 0x01, 0x13, 0x02, 1, 0]);
        let mut e = Vec::new();
        for (kind, data) in exts {
            e.extend(kind.to_be_bytes());
            e.extend((data.len() as u16).to_be_bytes());
            e.extend(data);
        }
        body.extend((e.len() as u16).to_be_bytes());
        body.extend(e);
        let mut m = vec![1];
        m.extend(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend(body);
        m
    }

    pub(crate) fn sni_ext(name: &str) -> (u16, Vec<u8>) {
        let n = name.as_bytes();
        let mut d = ((n.len() + 3) as u16).to_be_bytes().to_vec();
        d.push(0);
        d.extend((n.len() as u16).to_be_bytes());
        d.extend(n);
        (EXT_SERVER_NAME, d)
    }

    fn alpn_ext(protos: &[&str]) -> (u16, Vec<u8>) {
        let mut l = Vec::new();
        for p in protos {
            l.push(p.len() as u8);
            l.extend(p.as_bytes());
        }
        let mut d = (l.len() as u16).to_be_bytes().to_vec();
        d.extend(l);
        (EXT_ALPN, d)
    }

    /// Wraps a handshake message in records of at most `size` bytes.
    pub(crate) fn records(msg: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for c in msg.chunks(size) {
            out.extend([0x16, 3, 1]);
            out.extend((c.len() as u16).to_be_bytes());
            out.extend(c);
        }
        out
    }

    fn every_prefix_incomplete(wire: &[u8]) {
        for i in 0..wire.len() {
            assert_eq!(
                parse(&wire[..i]),
                Err(TlsError::Incomplete),
                "prefix of {i} of {} bytes",
                wire.len()
            );
        }
    }

    /// Real hellos captured on loopback (tests/captures/README.md): file, SNI, ALPN.
    const CAPTURES: &[(&[u8], &str, &[&str])] = &[
        (
            include_bytes!("../../tests/captures/curl.bin"),
            "a.example.test",
            &["h2", "http/1.1"],
        ),
        (
            include_bytes!("../../tests/captures/openssl.bin"),
            "b.example.test",
            &["h2", "http/1.1"],
        ),
        (
            include_bytes!("../../tests/captures/python.bin"),
            "c.example.test",
            &[],
        ),
    ];

    /// The handshake message inside a one-record capture.
    fn message_of(wire: &[u8]) -> Vec<u8> {
        let n = usize::from(u16::from_be_bytes([wire[3], wire[4]]));
        wire[5..5 + n].to_vec()
    }

    /// The message with a padding extension of `n` bytes put first, lengths fixed.
    fn padded(msg: &[u8], n: usize) -> Vec<u8> {
        let mut at = 4 + 2 + 32;
        at += 1 + usize::from(msg[at]);
        at += 2 + usize::from(u16::from_be_bytes([msg[at], msg[at + 1]]));
        at += 1 + usize::from(msg[at]);
        let ext_len = usize::from(u16::from_be_bytes([msg[at], msg[at + 1]]));
        let mut out = msg[..at].to_vec();
        out.extend(((ext_len + 4 + n) as u16).to_be_bytes());
        out.extend(21u16.to_be_bytes());
        out.extend((n as u16).to_be_bytes());
        out.extend(std::iter::repeat_n(0u8, n));
        out.extend(&msg[at + 2..]);
        let body = out.len() - 4;
        out[1..4].copy_from_slice(&(body as u32).to_be_bytes()[1..]);
        out
    }

    #[test]
    fn real_captures_every_prefix_and_every_split() {
        for &(wire, sni, alpn) in CAPTURES {
            every_prefix_incomplete(wire);
            let h = parse(wire).unwrap();
            assert_eq!(h.sni.as_deref(), Some(sni));
            assert_eq!(h.alpn, alpn, "{sni}");
            assert_eq!(h.len, wire.len());
            assert!(
                h.supported_versions.contains(&0x0304),
                "{sni}: TLS 1.3 offered"
            );
            let msg = message_of(wire);
            // One record per byte; the SNI in the second and in the third record.
            let h1 = parse(&records(&msg, 1)).unwrap();
            assert_eq!(h1.sni, h.sni);
            let third = msg.len() / 3 + 1;
            for size in [msg.len() - 10, third] {
                let w = records(&msg, size);
                every_prefix_incomplete(&w);
                assert_eq!(parse(&w).unwrap().sni, h.sni, "{sni} in records of {size}");
            }
            // Post-quantum-sized: over 16 KiB, so over one record.
            let big = padded(&msg, 20_000);
            let w = records(&big, 16384);
            assert!(w.len() > 20_000);
            let hb = parse(&w).unwrap();
            assert_eq!((hb.sni.as_deref(), hb.len), (Some(sni), w.len()));
            every_prefix_incomplete(&w[..w.len() - 1]);
            // Largest allowed, and one byte more.
            let max = padded(&msg, MAX_HELLO - msg.len());
            assert_eq!(max.len(), MAX_HELLO + 4);
            assert_eq!(
                parse(&records(&max, 16384)).unwrap().sni.as_deref(),
                Some(sni)
            );
            let over = padded(&msg, MAX_HELLO - msg.len() + 1);
            assert_eq!(parse(&records(&over, 16384)), Err(TlsError::TooLarge));
        }
    }

    #[test]
    fn a_hello_in_one_record() {
        let msg = hello_msg(&[
            (0x0a0a, vec![]),
            sni_ext("WWW.Example.Test."),
            alpn_ext(&["h2", "http/1.1"]),
            (EXT_SUPPORTED_VERSIONS, vec![6, 0x3a, 0x3a, 3, 4, 3, 3]),
        ]);
        let mut wire = records(&msg, 16384);
        assert_eq!(client_hello_record(&msg[4..]), wire);
        every_prefix_incomplete(&wire);
        let n = wire.len();
        wire.extend(b"trailing application bytes");
        let h = parse(&wire).unwrap();
        assert_eq!(h.sni.as_deref(), Some("www.example.test"));
        assert_eq!(h.alpn, ["h2", "http/1.1"]);
        assert_eq!(h.supported_versions, [0x0304, 0x0303]);
        assert_eq!((h.legacy_version, h.record_version), (0x0303, 0x0301));
        assert!(!h.ech && !h.sslv2);
        assert_eq!(h.len, n);
    }

    #[test]
    fn a_hello_across_records_and_over_16k() {
        let pad = (21u16, vec![0u8; 20_000]);
        let msg = hello_msg(&[pad, sni_ext("late.example.test")]);
        assert!(msg.len() > 16384);
        for size in [16384, 1000, 7, 1] {
            let wire = records(&msg, size);
            let h = parse(&wire).unwrap();
            assert_eq!(
                h.sni.as_deref(),
                Some("late.example.test"),
                "records of {size}"
            );
            assert_eq!(h.len, wire.len());
        }
        every_prefix_incomplete(&records(&msg, 4000));
        // The SNI begins in the third record.
        let msg = hello_msg(&[sni_ext("third.example.test")]);
        let sni_at = msg.len() - 25;
        let mut wire = records(&msg[..sni_at / 2], 16384);
        wire.extend(records(&msg[sni_at / 2..sni_at], 16384));
        wire.extend(records(&msg[sni_at..], 16384));
        every_prefix_incomplete(&wire);
        assert_eq!(
            parse(&wire).unwrap().sni.as_deref(),
            Some("third.example.test")
        );
    }

    #[test]
    fn odd_hellos() {
        // No SNI, and no extensions at all.
        let msg = hello_msg(&[alpn_ext(&["h2"])]);
        assert_eq!(parse(&records(&msg, 100)).unwrap().sni, None);
        let mut bare = hello_msg(&[]);
        bare.truncate(bare.len() - 2);
        let l = bare.len() - 4;
        bare[1..4].copy_from_slice(&(l as u32).to_be_bytes()[1..]);
        assert_eq!(
            parse(&records(&bare, 100)).unwrap(),
            ClientHello {
                legacy_version: 0x0303,
                record_version: 0x0301,
                len: bare.len() + 5,
                ..Default::default()
            }
        );
        // ECH: the outer name routes.
        let msg = hello_msg(&[sni_ext("public.example.test"), (EXT_ECH, vec![0; 40])]);
        let h = parse(&records(&msg, 16384)).unwrap();
        assert!(h.ech);
        assert_eq!(h.sni.as_deref(), Some("public.example.test"));
        // SSLv2-compatible hello.
        let v2 = [0x80, 0x0b, 1, 3, 1, 0, 3, 0, 0, 0, 0x10, 0, 0, 0x04];
        let h = parse(&v2[..13]).unwrap();
        assert!(h.sslv2 && h.sni.is_none());
        assert_eq!(parse(&v2[..2]), Err(TlsError::Incomplete));
    }

    #[test]
    fn not_tls_is_said_early() {
        for (input, want) in [
            (&b"GET / HTTP/1.1\r\n"[..], TlsError::NotTls),
            (b"SSH-2.0-OpenSSH", TlsError::NotTls),
            (b"\x16\x01", TlsError::NotTls),
            (
                b"\x16\x03\x01\x00\x00",
                TlsError::Malformed("empty handshake record"),
            ),
            (
                b"\x16\x03\x01\x50\x00",
                TlsError::Malformed("record longer than TLS allows"),
            ),
            (
                b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",
                TlsError::Malformed("first handshake message is not a ClientHello"),
            ),
            (b"\x16\x03\x01\x00\x04\x01\x01\x00\x01", TlsError::TooLarge),
            (
                b"\x16\x03\x01\x00\x01\x01\x17",
                TlsError::Malformed("a non-handshake record inside the hello"),
            ),
        ] {
            assert_eq!(parse(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn broken_lengths_never_panic() {
        let msg = hello_msg(&[sni_ext("a.test"), alpn_ext(&["h2"])]);
        let wire = records(&msg, 16384);
        // Every single-byte corruption of every position: an answer, never a panic.
        for i in 0..wire.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut w = wire.clone();
                w[i] = v;
                let _ = parse(&w);
            }
        }
        let mut bad = msg.clone();
        let at = bad.len() - 8;
        bad[at] = b' ';
        assert!(matches!(
            parse(&records(&bad, 16384)),
            Err(TlsError::Malformed(_)) | Ok(_)
        ));
    }
}

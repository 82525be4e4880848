//! Inputs shared by the benches: ClientHellos of a chosen size, a realistic request head, a config
//! whose frontend has one ACL of 1000 patterns, a 100 000-entry map. Everything is built
//! deterministically here (benches cannot import tests/), so two runs measure the same bytes.
#![allow(dead_code)]

use std::net::SocketAddr;

use gatehouse::classify::http::Request;
use gatehouse::rules::sample::Facts;

/// Largest TLS record payload a client sends.
const RECORD: usize = 16384;

/// A ClientHello as a browser sends it, `total` bytes on the wire (record headers included), naming
/// `sni`: TLS 1.3 with the usual extensions, an X25519MLKEM768 key share (1216 bytes) when `pq`, and
/// a padding extension (21) that makes up the size. Over 16 KiB it is split into several records, as
/// post-quantum and large hellos are.
pub fn client_hello(sni: &str, total: usize, pq: bool) -> Vec<u8> {
    let mut exts: Vec<(u16, Vec<u8>)> = Vec::new();
    // server_name
    let mut sn = Vec::new();
    sn.extend(((sni.len() + 3) as u16).to_be_bytes());
    sn.push(0);
    sn.extend((sni.len() as u16).to_be_bytes());
    sn.extend(sni.as_bytes());
    exts.push((0, sn));
    exts.push((23, Vec::new())); // extended_master_secret
    exts.push((0xff01, vec![0])); // renegotiation_info
    // supported_groups: X25519MLKEM768, x25519, secp256r1, secp384r1
    exts.push((10, vec![0, 8, 0x11, 0xec, 0, 0x1d, 0, 0x17, 0, 0x18]));
    exts.push((11, vec![1, 0])); // ec_point_formats
    exts.push((35, Vec::new())); // session_ticket
    // ALPN: h2, http/1.1
    exts.push((16, [&[0, 12, 2][..], b"h2", &[8], b"http/1.1"].concat()));
    exts.push((5, vec![1, 0, 0, 0, 0])); // status_request
    // signature_algorithms
    let sigs: [u16; 8] = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    let mut sa = ((sigs.len() * 2) as u16).to_be_bytes().to_vec();
    sigs.iter().for_each(|s| sa.extend(s.to_be_bytes()));
    exts.push((13, sa));
    // key_share: (X25519MLKEM768 and) x25519, deterministic bytes
    let mut ks = Vec::new();
    if pq {
        ks.extend([0x11, 0xec]);
        ks.extend(1216u16.to_be_bytes());
        ks.extend((0..1216u32).map(|i| (i * 7 + 3) as u8));
    }
    ks.extend([0, 0x1d, 0, 32]);
    ks.extend((0..32u8).map(|i| i.wrapping_mul(13)));
    let mut key_share = (ks.len() as u16).to_be_bytes().to_vec();
    key_share.extend(ks);
    exts.push((51, key_share));
    exts.push((45, vec![1, 1])); // psk_key_exchange_modes
    exts.push((43, vec![4, 3, 4, 3, 3])); // supported_versions: 1.3, 1.2

    let mut body = vec![3, 3];
    body.extend((0..32u8).map(|i| i.wrapping_mul(31))); // random
    body.push(32);
    body.extend((0..32u8).map(|i| i ^ 0x5a)); // session id
    let suites: [u16; 15] = [
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
        0x009c, 0x009d, 0x002f, 0x0035,
    ];
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    suites.iter().for_each(|s| body.extend(s.to_be_bytes()));
    body.extend([1, 0]); // compression: null

    let ext_len: usize = exts.iter().map(|(_, d)| 4 + d.len()).sum();
    // The handshake message (4-byte header + body) that fills `total` with its record headers.
    let records = total.saturating_sub(5).div_ceil(RECORD + 5).max(1);
    let msg_len = total - 5 * records;
    let unpadded = 4 + body.len() + 2 + ext_len;
    let pad = msg_len
        .checked_sub(unpadded + 4)
        .unwrap_or_else(|| panic!("a {total}-byte hello cannot hold its {unpadded} bytes"));
    exts.push((21, vec![0; pad]));

    let ext_len = ext_len + 4 + pad;
    body.extend((ext_len as u16).to_be_bytes());
    for (kind, data) in &exts {
        body.extend(kind.to_be_bytes());
        body.extend((data.len() as u16).to_be_bytes());
        body.extend(data);
    }
    let mut msg = vec![1];
    msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend(body);
    assert_eq!(msg.len(), msg_len);
    let mut wire = Vec::with_capacity(total);
    for chunk in msg.chunks(RECORD) {
        wire.extend([0x16, 3, 1]);
        wire.extend((chunk.len() as u16).to_be_bytes());
        wire.extend(chunk);
    }
    assert_eq!(wire.len(), total, "records: {records}");
    wire
}

/// A browser's GET with a query, cookies and the usual Accept headers: 439 bytes, eight header fields.
pub const REQUEST: &[u8] = b"GET /api/v2/items?page=3&sort=desc HTTP/1.1\r\n\
Host: www.shop.example.test\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.shop.example.test/catalogue\r\n\
Cookie: session=6f1c0e2a9b7d4c5e; theme=dark; consent=1\r\n\
Connection: keep-alive\r\n\
\r\n";

/// A request head like [`REQUEST`] for `host`.
pub fn request_for(host: &str) -> Request {
    let text = String::from_utf8_lossy(REQUEST).replace("www.shop.example.test", host);
    gatehouse::classify::http::parse(text.as_bytes(), 64 * 1024).expect("a valid request")
}

/// What the rules see of a plain HTTP connection from `client` carrying `req`.
pub fn facts<'a>(client: SocketAddr, req: Option<&'a Request>) -> Facts<'a> {
    Facts {
        http: req,
        peeked: req.map_or(0, |r| r.head_len),
        ..Facts::addresses(client, "192.0.2.80:80".parse().unwrap(), None)
    }
}

/// The i-th host name of the 1000-pattern ACLs and the map.
pub fn host(i: usize) -> String {
    format!("h{i}.site{}.example.test", i % 97)
}

/// The i-th network of the 1000-network ACL: /24s in 10.0.0.0/8, then 10.3.231.0/24 last.
pub fn net(i: usize) -> String {
    format!("10.{}.{}.0/24", i / 256, i % 256)
}

/// A config whose frontend sends to `b1` the requests matching one ACL line (`criterion`
/// followed by 1000 patterns made by `pattern`), the others to `b0`.
pub fn config_with_acl(
    criterion: &str,
    pattern: impl Fn(usize) -> String,
) -> gatehouse::config::Config {
    let pats: Vec<String> = (0..1000).map(pattern).collect();
    let text = format!(
        "frontend fe\n    mode http\n    bind 127.0.0.1:0\n    acl big {criterion} {}\n    \
         use_backend b1 if big\n    default_backend b0\n\
         backend b0\n    mode http\n    server s0 127.0.0.1:9\n\
         backend b1\n    mode http\n    server s1 127.0.0.1:9\n",
        pats.join(" ")
    );
    gatehouse::config::from_str("bench.cfg", &text)
        .unwrap_or_else(|e| panic!("bench config: {e}"))
        .config
}

/// The text of a map file of `n` lines `host(i) be_i`, for `map_dom`.
pub fn map_text(n: usize) -> String {
    let mut text = String::with_capacity(n * 40);
    for i in 0..n {
        text.push_str(&host(i));
        text.push(' ');
        text.push_str(&format!("be_{}\n", i % 50));
    }
    text
}

//! The PROXY protocol through the real binary: `accept-proxy` takes the client's address from a v1
//! or v2 header (logs show it, the server gets the bytes after it unchanged, `server 0.0.0.0` dials
//! its destination); a connection without a valid header is closed and logged `PR` (`cR` when
//! nothing came in time); `tcp-request connection` rules judge the sender before the header and
//! `tcp-request session` rules the client it names; `send-proxy` / `send-proxy-v2` put a header in
//! front of every server connection, in tcp mode before the replayed ClientHello (with its SNI as
//! the authority) and in http mode once per server connection, however many requests follow.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::process::{Gatehouse, Keep, echo_server, free_port};
use gatehouse::proxy_protocol::{Header, V2Options, encode_v2, parse};
use nix::sys::signal::Signal;

const HEAD: &str = "global\n plumbing none\ndefaults\n mode tcp\n timeout connect 2s\n timeout client 30s\n timeout server 30s\n";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends `bytes`, half-closes, and returns everything that comes back until the close.
fn exchange(port: u16, bytes: &[u8]) -> (SocketAddr, Vec<u8>) {
    let mut s = connect(port);
    let me = s.local_addr().unwrap();
    // A refused connection may be closed (even reset) before all is written: what came back and the
    // log say what happened, so a failed write is not the test's failure.
    if s.write_all(bytes).is_ok() {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    (me, back)
}

/// Stops gatehouse and returns its log (standard output).
fn log_of(mut g: Gatehouse) -> String {
    g.signal(Signal::SIGTERM);
    let (code, out) = g.exit_within(Duration::from_secs(10));
    assert_eq!(code, 0, "{out}");
    out
}

/// The log line of the session from `client` (the tcplog starts with `ip:port `).
fn line_of<'a>(log: &'a str, client: &str) -> &'a str {
    log.lines()
        .find(|l| l.starts_with(&format!("{client} ")))
        .unwrap_or_else(|| panic!("no log line for {client} in:\n{log}"))
}

/// Reads a PROXY header from `s`, returning it and the bytes read after it.
fn read_header(s: &mut TcpStream) -> (Header, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((h, used)) = parse(&buf).unwrap() {
            return (h, buf[used..].to_vec());
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a whole header: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A server that reads a PROXY header and then everything until the peer half-closes, reports both,
/// and answers `ok`.
fn pp_server() -> (u16, mpsc::Receiver<(Header, Vec<u8>)>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let (h, mut rest) = read_header(&mut s);
                let _ = s.read_to_end(&mut rest);
                let _ = s.write_all(b"ok");
                let _ = tx.send((h, rest));
            });
        }
    });
    (port, rx)
}

#[test]
fn accept_proxy_takes_the_client_from_the_header() {
    let echo = echo_server("");
    let (p, p_dial) = (free_port(), free_port());
    let cfg = format!(
        "{HEAD}frontend f\n bind 127.0.0.1:{p} accept-proxy\n default_backend b\nbackend b\n server s 127.0.0.1:{echo}\n\
         frontend far\n bind 127.0.0.1:{p_dial} accept-proxy\n default_backend orig\nbackend orig\n server any 0.0.0.0\n"
    );
    let g = Gatehouse::start("pp-accept", &cfg, p, Keep::Stdout);

    // v1: the bytes after the header reach the server unchanged, and only they come back.
    let (_, back) = exchange(
        p,
        b"PROXY TCP4 192.0.2.7 198.51.100.9 40000 443\r\nhello over v1",
    );
    assert_eq!(back, b"hello over v1");
    // v2 with TLVs and a checksum, IPv6 addresses.
    let mut v2 = encode_v2(
        sa("[2001:db8::7]:40001"),
        sa("[2001:db8::1]:8443"),
        &V2Options {
            authority: Some("up.test"),
            crc32c: true,
        },
    );
    v2.extend_from_slice(b"\x16\x03\x01 hello over v2");
    let (_, back) = exchange(p, &v2);
    assert_eq!(back, b"\x16\x03\x01 hello over v2");
    // LOCAL (a health check of the proxy in front): the socket's own addresses stand.
    let mut local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
    local.extend_from_slice(b"checking");
    let (me_local, back) = exchange(p, &local);
    assert_eq!(back, b"checking");
    // `server 0.0.0.0` dials the header's destination: a far gateway reaching where the client
    // meant to go.
    let (_, back) = exchange(
        p_dial,
        format!("PROXY TCP4 192.0.2.8 127.0.0.1 40002 {echo}\r\nto the original destination")
            .as_bytes(),
    );
    assert_eq!(back, b"to the original destination");

    let log = log_of(g);
    assert!(
        line_of(&log, "192.0.2.7:40000").contains(" f b/s "),
        "{log}"
    );
    assert!(line_of(&log, "2001:db8::7:40001").contains(" -- "), "{log}");
    assert!(
        line_of(&log, &me_local.to_string()).contains(" -- "),
        "{log}"
    );
    assert!(
        line_of(&log, "192.0.2.8:40002").contains(" far orig/any "),
        "{log}"
    );
}

#[test]
fn a_missing_or_broken_header_closes_the_connection() {
    let echo = echo_server("");
    let (p, p_slow) = (free_port(), free_port());
    let cfg = format!(
        "{HEAD}frontend f\n bind 127.0.0.1:{p} accept-proxy\n default_backend b\n\
         frontend slow\n bind 127.0.0.1:{p_slow} accept-proxy\n timeout client 500ms\n default_backend b\n\
         backend b\n server s 127.0.0.1:{echo}\n"
    );
    let g = Gatehouse::start("pp-broken", &cfg, p, Keep::Stdout);

    // No header: nothing reaches the server, nothing comes back.
    let (plain, back) = exchange(p, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(back.is_empty(), "{back:?}");
    // A header with a bad address, and one cut short by the client.
    let (bad, back) = exchange(p, b"PROXY TCP4 192.0.2.300 198.51.100.9 1 2\r\nhello");
    assert!(back.is_empty(), "{back:?}");
    let (short, back) = exchange(p, b"PROXY TCP4 192.0.2");
    assert!(back.is_empty(), "{back:?}");
    // A v2 header whose checksum is wrong.
    let mut v2 = encode_v2(
        sa("192.0.2.1:1"),
        sa("192.0.2.2:2"),
        &V2Options {
            authority: None,
            crc32c: true,
        },
    );
    let last = v2.len() - 1;
    v2[last] ^= 1;
    let (crc, back) = exchange(p, &v2);
    assert!(back.is_empty(), "{back:?}");
    // Nothing at all within `timeout client`: closed by gatehouse, not by the client.
    let mut quiet = connect(p_slow);
    let me_quiet = quiet.local_addr().unwrap();
    let t0 = std::time::Instant::now();
    let mut b = [0u8; 1];
    assert_eq!(quiet.read(&mut b).unwrap(), 0);
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );

    let log = log_of(g);
    for c in [plain, bad, short, crc] {
        let l = line_of(&log, &c.to_string());
        assert!(l.contains(" PR "), "{l}");
    }
    assert!(
        line_of(&log, &me_quiet.to_string()).contains(" cR "),
        "{log}"
    );
}

#[test]
fn send_proxy_carries_the_client_the_destination_and_the_sni() {
    let (mock, got) = pp_server();
    let (p2, p1, p_up) = (free_port(), free_port(), free_port());
    let cfg = format!(
        "{HEAD}frontend tls\n bind 127.0.0.1:{p2}\n tcp-request inspect-delay 5s\n tcp-request content accept if {{ req.ssl_hello_type 1 }}\n default_backend pp2\n\
         backend pp2\n server m 127.0.0.1:{mock} send-proxy-v2 proxy-v2-options authority,crc32c\n\
         frontend text\n bind 127.0.0.1:{p1}\n default_backend pp1\n\
         backend pp1\n server m 127.0.0.1:{mock} send-proxy\n\
         frontend chained\n bind 127.0.0.1:{p_up} accept-proxy\n default_backend pp2\n"
    );
    let g = Gatehouse::start("pp-send", &cfg, p2, Keep::Stdout);

    // v2 behind an SNI peek: the header, then the hello exactly as sent.
    let h = common::hello("www.pp.test");
    let (me, back) = exchange(p2, &h);
    assert_eq!(back, b"ok");
    let (header, rest) = got.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(header.version, 2);
    assert_eq!(header.addrs, Some((me, sa(&format!("127.0.0.1:{p2}")))));
    assert_eq!(header.authority.as_deref(), Some("www.pp.test"));
    assert_eq!(rest, h);

    // v1.
    let (me, back) = exchange(p1, b"plain bytes");
    assert_eq!(back, b"ok");
    let (header, rest) = got.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(header.version, 1);
    assert_eq!(header.addrs, Some((me, sa(&format!("127.0.0.1:{p1}")))));
    assert_eq!(rest, b"plain bytes");

    // A header accepted is passed on: its client, its destination, and its authority when the
    // session has no SNI of its own.
    let mut up = encode_v2(
        sa("192.0.2.7:40000"),
        sa("198.51.100.9:443"),
        &V2Options {
            authority: Some("up.test"),
            crc32c: false,
        },
    );
    up.extend_from_slice(b"ping");
    let (_, back) = exchange(p_up, &up);
    assert_eq!(back, b"ok");
    let (header, rest) = got.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        header.addrs,
        Some((sa("192.0.2.7:40000"), sa("198.51.100.9:443")))
    );
    assert_eq!(header.authority.as_deref(), Some("up.test"));
    assert_eq!(rest, b"ping");

    let log = log_of(g);
    assert!(
        line_of(&log, "192.0.2.7:40000").contains(" chained pp2/m "),
        "{log}"
    );
}

#[test]
fn http_mode_sends_one_header_per_server_connection() {
    // An HTTP server that reads the PROXY header, then answers each request on the connection;
    // reports the header and the request lines of each connection.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = l.local_addr().unwrap().port();
    let (tx, got) = mpsc::channel();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let (h, mut buf) = read_header(&mut s);
                let mut lines = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        lines.push(head.lines().next().unwrap_or("").to_string());
                        buf.drain(..end + 4);
                        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .unwrap();
                        continue;
                    }
                    match s.read(&mut chunk) {
                        Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => break,
                    }
                }
                let _ = tx.send((h, lines));
            });
        }
    });
    let port = free_port();
    let cfg = format!(
        "global\n plumbing none\ndefaults\n mode http\n timeout connect 2s\n timeout client 30s\n timeout server 30s\nfrontend h\n bind 127.0.0.1:{port}\n default_backend hb\nbackend hb\n server m 127.0.0.1:{server} send-proxy\n"
    );
    let g = Gatehouse::start("pp-http", &cfg, port, Keep::Stdout);

    let mut c = connect(port);
    let me = c.local_addr().unwrap();
    for i in 0..3 {
        c.write_all(format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut resp = Vec::new();
        let mut b = [0u8; 1];
        while !resp.ends_with(b"\r\n\r\nok") {
            assert_eq!(c.read(&mut b).unwrap(), 1, "{resp:?}");
            resp.push(b[0]);
        }
    }
    drop(c);
    let (header, lines) = got.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(header.version, 1);
    assert_eq!(header.addrs, Some((me, sa(&format!("127.0.0.1:{port}")))));
    // Three requests after one header on one connection; no other connection was made.
    assert_eq!(
        lines,
        ["GET /0 HTTP/1.1", "GET /1 HTTP/1.1", "GET /2 HTTP/1.1"]
    );
    assert!(got.recv_timeout(Duration::from_millis(200)).is_err());
    drop(g);
}

#[test]
fn connection_rules_see_the_sender_and_session_rules_the_client() {
    let echo = echo_server("");
    let (p, p_closed) = (free_port(), free_port());
    let cfg = format!(
        "{HEAD}frontend f\n bind 127.0.0.1:{p} accept-proxy\n tcp-request connection reject unless {{ src 127.0.0.1 }}\n tcp-request session reject if {{ src 192.0.2.66 }}\n default_backend b\n\
         frontend closed\n bind 127.0.0.1:{p_closed} accept-proxy\n tcp-request connection reject if {{ src 127.0.0.1 }}\n tcp-request session accept if {{ src 192.0.2.7 }}\n default_backend b\n\
         backend b\n server s 127.0.0.1:{echo}\n"
    );
    let g = Gatehouse::start("pp-rules", &cfg, p, Keep::Stdout);

    // The sender (127.0.0.1) may send headers; the client it names is judged by the session rules.
    let (_, back) = exchange(p, b"PROXY TCP4 192.0.2.7 198.51.100.9 40000 443\r\nwelcome");
    assert_eq!(back, b"welcome");
    let (_, back) = exchange(
        p,
        b"PROXY TCP4 192.0.2.66 198.51.100.9 40001 443\r\nblocked",
    );
    assert!(back.is_empty(), "{back:?}");
    // A sender the connection rules refuse is closed before its header is read, whatever the
    // header says: the session rule that would accept 192.0.2.7 never runs.
    let (sender, back) = exchange(
        p_closed,
        b"PROXY TCP4 192.0.2.7 198.51.100.9 40002 443\r\nspoofed",
    );
    assert!(back.is_empty(), "{back:?}");

    let log = log_of(g);
    assert!(line_of(&log, "192.0.2.7:40000").contains(" -- "), "{log}");
    assert!(line_of(&log, "192.0.2.66:40001").contains(" PR "), "{log}");
    let l = line_of(&log, &sender.to_string());
    assert!(l.contains(" closed ") && l.contains(" PR "), "{l}");
    assert!(!log.contains("192.0.2.7:40002"), "{log}");
}

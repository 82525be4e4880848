//! Loopback tests of `mode http`: keep-alive and the connection options, forwardfor, request and
//! response rules, redirects, errorfiles, persistence cookies, bad requests, bodies, routing of
//! every request of a keep-alive connection, and the stats URI's authentication.
//!
//! The origin here is a small HTTP/1.1 server: it answers each request with its tag and the
//! request head it received (so a test sees exactly what the gateway sent), honours keep-alive,
//! and counts its connections and requests.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use common::gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Counts {
    conns: AtomicUsize,
    requests: AtomicUsize,
}

/// Extra response headers the origin adds (`Set-Cookie: …`).
async fn origin_with(tag: &'static str, extra: &'static str) -> (SocketAddr, Arc<Counts>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            c.conns.fetch_add(1, Relaxed);
            let c = c.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request head (and a Content-Length or chunked body).
                    let (head_len, body_len, chunked, close) = loop {
                        let mut hs = [httparse::EMPTY_HEADER; 64];
                        let mut r = httparse::Request::new(&mut hs);
                        if let Ok(httparse::Status::Complete(n)) = r.parse(&buf) {
                            let get = |name: &str| {
                                r.headers
                                    .iter()
                                    .find(|h| h.name.eq_ignore_ascii_case(name))
                                    .map(|h| String::from_utf8_lossy(h.value).to_string())
                            };
                            let len = get("content-length")
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(0usize);
                            let chunked = get("transfer-encoding").is_some();
                            let close =
                                get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                            if get("expect").is_some() {
                                let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
                            }
                            break (n, len, chunked, close);
                        }
                        let mut tmp = [0u8; 8192];
                        match s.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_len]).to_string();
                    buf.drain(..head_len);
                    let body: Vec<u8> = if chunked {
                        // Until the last chunk's empty line.
                        while !buf.windows(5).any(|w| w == b"0\r\n\r\n") {
                            let mut tmp = [0u8; 8192];
                            match s.read(&mut tmp).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                            }
                        }
                        let end = buf.windows(5).position(|w| w == b"0\r\n\r\n").unwrap() + 5;
                        buf.drain(..end).collect()
                    } else {
                        while buf.len() < body_len {
                            let mut tmp = [0u8; 8192];
                            match s.read(&mut tmp).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                            }
                        }
                        buf.drain(..body_len).collect()
                    };
                    c.requests.fetch_add(1, Relaxed);
                    let text = format!(
                        "{tag}\n{head}body={}\n",
                        String::from_utf8_lossy(&body).len()
                    );
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra}{}\r\n{text}",
                        text.len(),
                        if close { "Connection: close\r\n" } else { "" }
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, counts)
}

async fn origin(tag: &'static str) -> (SocketAddr, Arc<Counts>) {
    origin_with(tag, "").await
}

struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Sends `req` on `s` and reads one response (Content-Length framed, or until close).
async fn roundtrip(s: &mut TcpStream, req: &str) -> Resp {
    s.write_all(req.as_bytes()).await.unwrap();
    read_response(s).await
}

async fn read_response(s: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hs);
        if let Ok(httparse::Status::Complete(n)) = r.parse(&buf) {
            let status = r.code.unwrap();
            let len = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok());
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let mut body = buf[n..].to_vec();
            // An interim response has no body (the test sends nothing that would follow it).
            let len = if (100..200).contains(&status) {
                Some(0)
            } else {
                len
            };
            match len {
                Some(len) => {
                    while body.len() < len {
                        let mut tmp = [0u8; 8192];
                        let k = s.read(&mut tmp).await.unwrap();
                        assert!(k > 0, "closed inside a body");
                        body.extend_from_slice(&tmp[..k]);
                    }
                }
                None => {
                    let _ = s.read_to_end(&mut body).await;
                }
            }
            return Resp {
                status,
                head,
                body: String::from_utf8_lossy(&body).to_string(),
            };
        }
        let mut tmp = [0u8; 8192];
        let k = tokio::time::timeout(Duration::from_secs(5), s.read(&mut tmp))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(
            k > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&tmp[..k]);
    }
}

/// Whether the gateway closed `s` (reads EOF within a second).
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

const GET: &str = "GET / HTTP/1.1\r\nHost: www.test\r\n\r\n";

#[tokio::test]
async fn keep_alive_balances_each_request_and_reuses_server_connections() {
    let (a, ca) = origin("A").await;
    let (b, cb) = origin("B").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    balance roundrobin\n    server a {a}\n    server b {b}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let mut tags = String::new();
    for _ in 0..6 {
        let r = roundtrip(&mut c, GET).await;
        assert_eq!(r.status, 200);
        tags.push_str(&r.body[..1]);
    }
    assert_eq!(tags, "ABABAB");
    // One connection to each server, kept between requests.
    assert_eq!((ca.conns.load(Relaxed), cb.conns.load(Relaxed)), (1, 1));
    assert_eq!(ca.requests.load(Relaxed) + cb.requests.load(Relaxed), 6);
}

#[tokio::test]
async fn server_close_and_httpclose() {
    let (a, ca) = origin("A").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\n    option http-server-close\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    server a {a}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    for _ in 0..3 {
        let r = roundtrip(&mut c, GET).await;
        assert!(r.body.contains("Connection: close"), "{}", r.body);
        assert_eq!(r.header("connection"), None);
    }
    // The client connection stayed; each request had its own server connection.
    assert_eq!(ca.conns.load(Relaxed), 3);

    let (b, _) = origin("B").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    option httpclose\n    server b {b}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, GET).await;
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(closed(&mut c).await);
}

#[tokio::test]
async fn forwardfor_with_except_and_header() {
    let (a, _) = origin("A").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    option forwardfor\n    default_backend be\nbackend be\n    server a {a}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(
        &mut c,
        "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n",
    )
    .await;
    // The client's own header stays; ours follows it.
    assert!(
        r.body
            .contains("X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 127.0.0.1\r\n"),
        "{}",
        r.body
    );

    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\n    option forwardfor except 127.0.0.0/8\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    server a {a}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, GET).await;
    assert!(!r.body.contains("X-Forwarded-For"), "{}", r.body);

    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    option forwardfor header X-Client\n    server a {a}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, GET).await;
    assert!(r.body.contains("X-Client: 127.0.0.1\r\n"), "{}", r.body);
}

#[tokio::test]
async fn deny_with_errorfile_and_status() {
    let dir = std::env::temp_dir().join(format!("gh-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("403.http");
    std::fs::write(
        &file,
        "HTTP/1.0 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\ngo away!\n",
    )
    .unwrap();
    let (a, ca) = origin("A").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    acl admin path_beg /admin\n    acl busy path_beg /busy\n    http-request deny if admin\n    http-request deny deny_status 429 if busy\n    block if {{ path_beg /old }}\n    errorfile 403 {}\n    default_backend be\nbackend be\n    server a {a}\n",
        file.display()
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, "GET /admin/x HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((r.status, r.body.as_str()), (403, "go away!\n"));
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, "GET /busy HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 429);
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, "GET /old HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 403);
    assert_eq!(ca.requests.load(Relaxed), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn redirects() {
    let (a, _) = origin("A").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    acl iphone hdr_sub(user-agent) -i iphone\n    redirect prefix http://3g-iphone.test.com if iphone\n    http-request redirect location /moved code 301 if {{ path /old }}\n    http-request redirect scheme https if {{ path_beg /secure }}\n    default_backend be\nbackend be\n    server a {a}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(
        &mut c,
        "GET /a/b?x=1 HTTP/1.1\r\nHost: www.test.com\r\nUser-Agent: Mozilla (iPhone)\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://3g-iphone.test.com/a/b?x=1")
    );
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, "GET /old HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (301, Some("/moved"))
    );
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, "GET /secure/p?q HTTP/1.1\r\nHost: h.test\r\n\r\n").await;
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://h.test/secure/p?q")
    );
    // Others go through.
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(
        &mut c,
        "GET /x HTTP/1.1\r\nHost: h\r\nUser-Agent: curl\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn header_rules_on_both_sides() {
    let (a, _) = origin("A").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    http-request set-header X-Set one\n    http-request add-header X-Add %[src]\n    http-request del-header X-Secret\n    http-response set-header X-Served-By gatehouse\n    default_backend be\nbackend be\n    http-request set-path /rewritten\n    http-response del-header X-Powered-By\n    server a {a}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(
        &mut c,
        "GET /orig?q=1 HTTP/1.1\r\nHost: h\r\nX-Set: zero\r\nX-Secret: s\r\n\r\n",
    )
    .await;
    assert!(
        r.body.contains("GET /rewritten?q=1 HTTP/1.1\r\n"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("X-Set: one\r\n") && !r.body.contains("zero"),
        "{}",
        r.body
    );
    assert!(r.body.contains("X-Add: 127.0.0.1\r\n"), "{}", r.body);
    assert!(!r.body.contains("X-Secret"), "{}", r.body);
    assert_eq!(r.header("x-served-by").as_deref(), Some("gatehouse"));
}

#[tokio::test]
async fn cookie_insert_indirect_nocache() {
    let (a, _) = origin("A").await;
    let (b, _) = origin("B").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    balance roundrobin\n    cookie SERVERID insert indirect nocache\n    server a {a} cookie app1\n    server b {b} cookie app2\n"
    ))
    .await;
    // No cookie: balanced, and told where it went.
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, GET).await;
    let set = r.header("set-cookie").expect("a Set-Cookie");
    let (value, tag) = if r.body.starts_with('A') {
        ("app1", "A")
    } else {
        ("app2", "B")
    };
    assert!(set.starts_with(&format!("SERVERID={value}")), "{set}");
    assert_eq!(r.header("cache-control").as_deref(), Some("private"));
    // With the cookie: always that server, which never sees the cookie; no new Set-Cookie.
    for _ in 0..4 {
        let mut c = TcpStream::connect(gw).await.unwrap();
        let r = roundtrip(
            &mut c,
            &format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; SERVERID={value}; b=2\r\n\r\n"),
        )
        .await;
        assert!(r.body.starts_with(tag), "{}", r.body);
        assert!(r.body.contains("Cookie: a=1; b=2\r\n"), "{}", r.body);
        assert!(!r.body.contains("SERVERID"), "{}", r.body);
        assert_eq!(r.header("set-cookie"), None);
    }
    // A cookie naming no server is balanced and replaced.
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(
        &mut c,
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: SERVERID=nope\r\n\r\n",
    )
    .await;
    assert!(r.header("set-cookie").is_some());
}

#[tokio::test]
async fn cookie_rewrite_and_prefix() {
    let (a, _) = origin_with("A", "Set-Cookie: JSESSIONID=abc; Path=/\r\n").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    cookie JSESSIONID prefix\n    server a {a} cookie s1\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, GET).await;
    assert_eq!(
        r.header("set-cookie").as_deref(),
        Some("JSESSIONID=s1~abc; Path=/")
    );
    let r = roundtrip(
        &mut c,
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: JSESSIONID=s1~abc\r\n\r\n",
    )
    .await;
    // The server gets its own value back.
    assert!(r.body.contains("Cookie: JSESSIONID=abc\r\n"), "{}", r.body);

    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    cookie JSESSIONID rewrite\n    server a {a} cookie s1\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, GET).await;
    assert_eq!(
        r.header("set-cookie").as_deref(),
        Some("JSESSIONID=s1; Path=/")
    );
}

#[tokio::test]
async fn bad_requests_get_their_status() {
    let (a, ca) = origin("A").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\n    timeout http-request 300ms\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    server a {a}\n"
    ))
    .await;
    // Malformed.
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, "GET / HTTP/1.1\r\nBad Header\r\n\r\n").await;
    assert_eq!(r.status, 400);
    // Too large.
    let mut c = TcpStream::connect(gw).await.unwrap();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = c.write_all(big.as_bytes()).await;
    let r = read_response(&mut c).await;
    assert_eq!(r.status, 431);
    // Slow.
    let mut c = TcpStream::connect(gw).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let r = read_response(&mut c).await;
    assert_eq!(r.status, 408);
    // Ambiguous framing (request smuggling).
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(
        &mut c,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(ca.requests.load(Relaxed), 0);
}

#[tokio::test]
async fn bodies_pass_in_both_framings() {
    let (a, _) = origin("A").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    server a {a}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let body = "x".repeat(100_000);
    let r = roundtrip(
        &mut c,
        &format!(
            "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(r.body.contains("body=100000"), "{}", r.body);
    // Chunked, then a second request on the same connection.
    let r = roundtrip(
        &mut c,
        "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(r.body.contains("body=15"), "{}", r.body);
    // Expect: 100-continue: the interim response reaches the client before it sends the body.
    c.write_all(
        b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let interim = read_response(&mut c).await;
    assert_eq!(interim.status, 100);
    let r = roundtrip(&mut c, "abcd").await;
    assert!(r.body.contains("body=4"), "{}", r.body);
}

#[tokio::test]
async fn every_request_of_a_connection_is_routed() {
    let (a, _) = origin("A").await;
    let (b, _) = origin("B").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    acl blog hdr(host) -i blog.test.com\n    acl php path_beg /php/\n    use_backend blog if blog or php\n    default_backend www\nbackend www\n    server a {a}\nbackend blog\n    server b {b}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let mut tags = String::new();
    for req in [
        "GET / HTTP/1.1\r\nHost: www.test.com\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: blog.test.com\r\n\r\n",
        "GET /php/x HTTP/1.1\r\nHost: www.test.com\r\n\r\n",
        "GET /img.png HTTP/1.1\r\nHost: www.test.com\r\n\r\n",
    ] {
        tags.push_str(&roundtrip(&mut c, req).await.body[..1]);
    }
    assert_eq!(tags, "ABBA");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (a, _) = origin("A").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    server a {a}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    c.write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let r1 = read_response(&mut c).await;
    let r2 = read_response(&mut c).await;
    assert!(r1.body.contains("GET /1 "), "{}", r1.body);
    assert!(r2.body.contains("GET /2 "), "{}", r2.body);
}

#[tokio::test]
async fn stats_uri_asks_for_credentials() {
    let (a, ca) = origin("A").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "listen test\n    bind 127.0.0.1:0\n    mode http\n    stats enable\n    stats uri /admin?stats\n    stats auth admin:admin\n    server a {a}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, "GET /admin?stats HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .starts_with("Basic realm=")
    );
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(
        &mut c,
        "GET /admin?stats HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46YWRtaW4=\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<td class=n>a</td>"), "{}", r.body);
    // No `stats admin`: no form.
    assert!(!r.body.contains("<form"), "{}", r.body);
    assert_eq!(ca.requests.load(Relaxed), 0);
    let mut c = TcpStream::connect(gw).await.unwrap();
    assert_eq!(roundtrip(&mut c, GET).await.status, 200);
}

#[tokio::test]
async fn no_server_gives_503_with_its_errorfile() {
    let dir = std::env::temp_dir().join(format!("gh-http503-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("503.http");
    std::fs::write(
        &file,
        "HTTP/1.0 503 Sorry\r\nContent-Length: 6\r\n\r\nsorry\n",
    )
    .unwrap();
    let dead = common::dead_addr();
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\n    retries 0\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    errorfile 503 {}\n    server a {dead}\n",
        file.display()
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, GET).await;
    assert_eq!((r.status, r.body.as_str()), (503, "sorry\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn stick_store_response_and_match_on_a_cookie() {
    let (a, _) = origin_with("A", "Set-Cookie: JSESSIONID=from-a; Path=/\r\n").await;
    let (b, _) = origin_with("B", "Set-Cookie: JSESSIONID=from-b; Path=/\r\n").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    balance roundrobin\n    stick-table type string len 32 size 1k expire 1m\n    stick store-response res.cook(JSESSIONID)\n    stick match req.cook(JSESSIONID)\n    server a {a}\n    server b {b}\n"
    ))
    .await;
    // Two fresh clients: one lands on each server, which sets its session cookie.
    let mut c = TcpStream::connect(gw).await.unwrap();
    let first = roundtrip(&mut c, GET).await;
    let (tag, cookie) = if first.body.starts_with('A') {
        ("A", "from-a")
    } else {
        ("B", "from-b")
    };
    let mut c = TcpStream::connect(gw).await.unwrap();
    roundtrip(&mut c, GET).await;
    // Every request carrying the cookie goes back to the server that set it.
    for _ in 0..4 {
        let mut c = TcpStream::connect(gw).await.unwrap();
        let r = roundtrip(
            &mut c,
            &format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: JSESSIONID={cookie}\r\n\r\n"),
        )
        .await;
        assert!(r.body.starts_with(tag), "{}", r.body);
    }
}

#[tokio::test]
async fn review_fixes_host_lf_heads_h2c_reject_and_bad_chunks() {
    let (a, ca) = origin("A").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    option forwardfor\n    http-request reject if {{ path_beg /reject }}\n    default_backend be\nbackend be\n    server a {a}\n"
    ))
    .await;
    // An absolute-form target names the host the server gets.
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(
        &mut c,
        "GET http://public.test/p HTTP/1.1\r\nHost: admin.internal\r\n\r\n",
    )
    .await;
    assert!(r.body.contains("Host: public.test\r\n"), "{}", r.body);
    assert!(!r.body.contains("admin.internal"), "{}", r.body);
    // A head with bare LF line ends: our header is a line of its own.
    let r = roundtrip(&mut c, "GET / HTTP/1.1\nHost: x\nX-Pad: a\n\n").await;
    assert!(
        r.body.contains("X-Pad: a\nX-Forwarded-For: 127.0.0.1\r\n"),
        "{}",
        r.body
    );
    // h2c upgrades are not passed on.
    let r = roundtrip(
        &mut c,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        !r.body.to_ascii_lowercase().contains("upgrade"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("HTTP2-Settings"), "{}", r.body);
    // reject: closed without an answer.
    let mut c = TcpStream::connect(gw).await.unwrap();
    c.write_all(b"GET /reject HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), c.read_to_end(&mut got)).await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    // A chunked body whose trailer starts with a bare LF (a request smuggled behind it for a
    // lenient server) never reaches the server whole.
    let before = ca.requests.load(Relaxed);
    let mut c = TcpStream::connect(gw).await.unwrap();
    c.write_all(
        b"POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(closed(&mut c).await);
    assert_eq!(ca.requests.load(Relaxed), before);
}

#[tokio::test]
async fn request_rules_run_in_haproxys_phase_order() {
    let (a, _) = origin("A").await;
    // Written redirect first, then deny: HAProxy runs http-request rules before redirect rules.
    let (gw, _rt, _stop) = gateway(&format!(
        "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:0\n    redirect location /elsewhere if {{ path /a }}\n    http-request deny if {{ path /a }}\n    default_backend be\nbackend be\n    server a {a}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn prometheus_exporter_answers_on_its_path() {
    let (a, ca) = origin("A").await;
    let (gw, _rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    mode http\n    http-request use-service prometheus-exporter if {{ path /metrics }}\n    default_backend be\nbackend be\n    mode http\n    server a {a}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    assert_eq!(roundtrip(&mut c, GET).await.status, 200);
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    // The request before counts; the scrape itself went to no server.
    assert!(
        r.body
            .contains("haproxy_server_sessions_total{proxy=\"be\",server=\"a\"} 1\n"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("haproxy_frontend_http_requests_total{proxy=\"f\"} ")
    );
    assert!(
        r.body.contains(
            "haproxy_server_http_responses_total{proxy=\"be\",server=\"a\",code=\"2xx\"} 1\n"
        ),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("haproxy_server_max_sessions{proxy=\"be\",server=\"a\"} 1\n")
    );
    assert_eq!(ca.requests.load(Relaxed), 1);
}

#[tokio::test]
async fn stats_admin_changes_server_states() {
    let (a, _) = origin("A").await;
    let (b, _) = origin("B").await;
    let (gw, rt, _stop) = gateway(&format!(
        "listen test\n    bind 127.0.0.1:0\n    mode http\n    stats enable\n    stats uri /st\n    stats admin if {{ src 127.0.0.1 }}\n    server a {a}\n    server b {b}\n"
    ))
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, "GET /st HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("<form method=\"post\" action=\"/st\">"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<input type=\"checkbox\" name=\"s\" value=\"a\">")
    );
    // The CSV form is show stat's.
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, "GET /st;csv HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        r.body.starts_with("# pxname,svname,qcur,qmax,"),
        "{}",
        r.body
    );

    let form = "b=test&s=a&s=b&action=maint";
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(
        &mut c,
        &format!("POST /st HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}", form.len()),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/st;st=DONE"));
    for s in 0..2 {
        assert!(rt.backends[0].health[s].maint.load(Relaxed));
    }
    let mut c = TcpStream::connect(gw).await.unwrap();
    let r = roundtrip(&mut c, "GET /st;st=DONE HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(r.body.contains("Action processed successfully."));
    assert!(
        r.body.contains("background:#c0c0ff"),
        "MAINT rows are coloured"
    );
}

//! Loopback tests of classify → route → resolve: SNI and Host routing with the peeked bytes replayed
//! exactly, map files, the open-proxy guard and DNS failures answered with TLS alerts. Servers are
//! mock echo servers on 127.0.0.1; DNS is tests/common's server on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use common::FakeDns;
use gatehouse::account::Runtime;
use gatehouse::{config, listener, resolve, server};

/// A gateway on 127.0.0.1:random running `text` (whose first frontend binds 127.0.0.1:0).
async fn gateway(text: &str) -> (std::net::SocketAddr, Arc<Runtime>, oneshot::Sender<()>) {
    let cfg = Arc::new(config::from_str("test.cfg", text).unwrap().config);
    let bound = listener::bind_all(&cfg).unwrap();
    let addr = bound[0].listener.local_addr().unwrap();
    let mut rt = Runtime::new(cfg.clone());
    rt.dns = resolve::Dns::new(&cfg.resolvers, tokio::runtime::Handle::current()).unwrap();
    let rt = Arc::new(rt);
    let (tx, rx) = oneshot::channel();
    tokio::spawn(server::run(rt.clone(), bound, async {
        let _ = rx.await;
    }));
    (addr, rt, tx)
}

/// An echo server that answers `TAG:` and then every byte it receives, until the client's end.
async fn echo(tag: &'static str) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got).await;
                let mut out = format!("{tag}:").into_bytes();
                out.extend(got);
                let _ = s.write_all(&out).await;
            });
        }
    });
    addr
}

/// Sends `data` (in pieces of `step` bytes, pausing between them), half-closes, reads the answer.
async fn exchange(gw: std::net::SocketAddr, data: &[u8], step: usize) -> Vec<u8> {
    let mut c = TcpStream::connect(gw).await.unwrap();
    c.set_nodelay(true).unwrap();
    for chunk in data.chunks(step) {
        c.write_all(chunk).await.unwrap();
        if step < data.len() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    c.shutdown().await.unwrap();
    let mut back = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut back)).await;
    back
}

fn reply(tag: &str, data: &[u8]) -> Vec<u8> {
    let mut v = format!("{tag}:").into_bytes();
    v.extend(data);
    v
}

#[tokio::test]
async fn sni_routes_and_the_hello_is_replayed_exactly() {
    let (a, b) = (echo("A").await, echo("B").await);
    let text = format!(
        "frontend f\n    bind 127.0.0.1:0\n    tcp-request inspect-delay 5s\n    acl is_b req.ssl_sni -i B.test\n    use_backend bb if is_b\n    default_backend aa\nbackend aa\n    server a {a}\nbackend bb\n    server b {b}\n"
    );
    let (gw, _rt, _stop) = gateway(&text).await;
    let h = common::hello("b.test");
    assert_eq!(exchange(gw, &h, h.len()).await, reply("B", &h));
    let h = common::hello("a.test");
    assert_eq!(exchange(gw, &h, h.len()).await, reply("A", &h));
    // One byte per write: the hello still arrives whole, in order, at the right server.
    let h = common::hello("b.test");
    assert_eq!(exchange(gw, &h, 1).await, reply("B", &h));
}

#[tokio::test]
async fn host_routing_through_a_map_file() {
    let (a, b) = (echo("A").await, echo("B").await);
    let dir = std::env::temp_dir().join(format!("gh-classify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("hosts.map");
    std::fs::write(&map, "# host backend\nb.test bb\n").unwrap();
    let text = format!(
        "frontend f\n    bind 127.0.0.1:0\n    use_backend %[req.hdr(host),lower,map_dom({},aa)]\nbackend aa\n    server a {a}\nbackend bb\n    server b {b}\n",
        map.display()
    );
    let (gw, _rt, _stop) = gateway(&text).await;
    let req = b"GET /x HTTP/1.1\r\nHost: WWW.B.test:8080\r\nUser-Agent: t\r\n\r\n";
    assert_eq!(exchange(gw, req, req.len()).await, reply("B", req));
    let req = b"GET /x HTTP/1.1\r\nHost: c.test\r\n\r\n";
    assert_eq!(exchange(gw, req, req.len()).await, reply("A", req));
    // Two different Hosts: refused, whatever the map says, and never forwarded.
    let req = b"GET /x HTTP/1.1\r\nHost: b.test\r\nHost: c.test\r\n\r\n";
    let back = exchange(gw, req, req.len()).await;
    assert!(
        back.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&back)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_guard_and_dns_failures_refuse_with_tls_alerts() {
    let dns = FakeDns::start().await;
    dns.set("loop.test", [127, 0, 0, 1], 60);
    let text = format!(
        "resolvers dns\n    nameserver d {}\nfrontend f\n    bind 127.0.0.1:0\n    default_backend dyn\nbackend dyn\n    server any %[req.ssl_sni]:443 resolvers dns\n    allow-name .test\n",
        dns.addr
    );
    let (gw, rt, _stop) = gateway(&text).await;
    let alert = |d: u8| vec![0x15, 3, 3, 0, 2, 2, d];
    // A name resolving to loopback: refused just before dialling.
    assert_eq!(
        exchange(gw, &common::hello("loop.test"), 9999).await,
        alert(49)
    );
    // Names the allow-list does not cover, and localhost: refused before any DNS query.
    let asked = dns.total.load(Relaxed);
    assert_eq!(
        exchange(gw, &common::hello("evil.example"), 9999).await,
        alert(112)
    );
    assert_eq!(
        exchange(gw, &common::hello("localhost"), 9999).await,
        alert(112)
    );
    assert_eq!(dns.total.load(Relaxed), asked);
    assert_eq!(rt.policy.guard_refused.load(Relaxed), 3);
    // NXDOMAIN.
    assert_eq!(
        exchange(gw, &common::hello("nx.test"), 9999).await,
        alert(112)
    );
    assert_eq!(rt.policy.dns_failed.load(Relaxed), 1);
}

#[tokio::test]
async fn unclassified_bytes_follow_the_frontend_policy() {
    let a = echo("A").await;
    let text = format!(
        "frontend f\n    bind 127.0.0.1:0\n    tcp-request inspect-delay 300ms\n    unclassified not-tls reject\n    default_backend aa\nbackend aa\n    server a {a}\n"
    );
    let (gw, rt, _stop) = gateway(&text).await;
    // Neither TLS nor HTTP: rejected, nothing sent back.
    assert_eq!(exchange(gw, b"SSH-2.0-OpenSSH_9.2\r\n", 100).await, b"");
    assert_eq!(rt.policy.rejected.load(Relaxed), 1);
    // Silence: the inspect delay runs out and the default ('original': go on) applies.
    let mut c = TcpStream::connect(gw).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.write_all(b"late").await.unwrap();
    c.shutdown().await.unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"A:late");
}

//! Loopback tests of health checks: a server that stops answering is marked down after `fall`
//! failed checks and its traffic moves; when it answers again it comes back after `rise` checks.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{fetch, gateway, make_pki, tagged, tls_server_config};

async fn wait_until(what: &str, limit: Duration, f: impl Fn() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t0.elapsed()
}

#[tokio::test]
async fn fall_and_rise() {
    // The flaky server's port: bound but not listening, so connections to it are refused and no
    // other test of this binary can take it meanwhile (a port merely freed could be handed to
    // another test's listener); released just before the server comes back on it.
    let held = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    held.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let flaky = held.local_addr().unwrap().as_socket().unwrap();
    let (stable, _) = tagged("S", Duration::ZERO).await;
    let (gw, rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    balance first\n    server flaky {flaky} check inter 100ms fall 3 rise 2\n    server stable {stable}\n"
    ))
    .await;
    let health = &rt.backends[0].health[0];
    // Nothing listens on `flaky`: three failed checks (about 300 ms) mark it down.
    let took = wait_until("marked down", Duration::from_secs(3), || {
        !health.up.load(Relaxed)
    })
    .await;
    assert!(
        took >= Duration::from_millis(180),
        "down after only {took:?}"
    );
    assert_eq!(fetch(gw).await, "S");
    // show stat tells what the checks found: the failure, the counts, the health counter at 0.
    let stat = stat_row(&rt, "be,flaky,");
    let col = |name: &str| column(&stat, name);
    assert_eq!(
        (col("status"), col("check_status")),
        ("DOWN".into(), "L4CON".into()),
        "{stat:?}"
    );
    assert_eq!(
        (col("chkdown"), col("check_health"), col("check_desc")),
        ("1".into(), "0".into(), "Layer4 connection problem".into())
    );
    assert!(col("chkfail").parse::<u64>().unwrap() >= 3);
    // It comes back: two good checks mark it up, and `balance first` sends traffic to it again.
    drop(held);
    let back = tokio::net::TcpListener::bind(flaky).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = back.accept().await else {
                return;
            };
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"F").await;
        }
    });
    wait_until("marked up", Duration::from_secs(3), || {
        health.up.load(Relaxed)
    })
    .await;
    assert_eq!(fetch(gw).await, "F");
    let stat = stat_row(&rt, "be,flaky,");
    let col = |name: &str| column(&stat, name);
    assert_eq!(
        (col("status"), col("check_status"), col("check_health")),
        ("UP".into(), "L4OK".into(), "4".into())
    );
}

/// Column `name` of a `show stat` row.
fn column(row: &[String], name: &str) -> String {
    let i = gatehouse::account::cli::CSV_COLUMNS
        .split(',')
        .position(|c| c == name)
        .unwrap();
    row[i].clone()
}

/// The `show stat` row that starts with `prefix`, split into its columns.
fn stat_row(rt: &gatehouse::account::Runtime, prefix: &str) -> Vec<String> {
    let mut interactive = false;
    let (out, _) = gatehouse::cli::run_line(
        rt,
        "show stat",
        gatehouse::config::model::CliLevel::User,
        &mut interactive,
        &mut Duration::from_secs(10),
    );
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} row in {out}"))
        .split(',')
        .map(String::from)
        .collect()
}

/// A server answering every connection with `reply()` (read once the request arrived).
async fn replying(reply: impl Fn() -> Vec<u8> + Send + Sync + 'static) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let reply = std::sync::Arc::new(reply);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(&reply()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http_ssl_hello_and_scripted_checks() {
    let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(503));
    let st = status.clone();
    let web = replying(move || {
        format!(
            "HTTP/1.1 {} X\r\nContent-Length: 2\r\n\r\nok",
            st.load(Relaxed)
        )
        .into_bytes()
    })
    .await;
    let tls = replying(|| vec![0x16, 3, 3, 0, 0]).await;
    let not_tls = replying(|| b"SSH-2.0-x\r\n".to_vec()).await;
    let redis = replying(|| b"+PONG\r\n".to_vec()).await;
    let (_gw, rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    default_backend web\n\
         backend web\n    option httpchk GET /health\n    http-check expect status 200\n    server w {web} check inter 100ms fall 2 rise 1\n\
         backend tls\n    option ssl-hello-chk\n    server t {tls} check inter 100ms fall 1\n    server n {not_tls} check inter 100ms fall 1\n\
         backend redis\n    option tcp-check\n    tcp-check send PING\\r\\n\n    tcp-check expect string +PONG\n    server r {redis} check inter 100ms fall 1\n    server t {tls} check inter 100ms fall 1\n"
    ))
    .await;
    let up = |b: usize, s: usize| rt.backends[b].health[s].up.load(Relaxed);
    wait_until(
        "503 marks the web server down",
        Duration::from_secs(3),
        || !up(0, 0),
    )
    .await;
    status.store(200, Relaxed);
    wait_until("200 brings it back", Duration::from_secs(3), || up(0, 0)).await;
    wait_until(
        "a non-TLS reply fails ssl-hello-chk",
        Duration::from_secs(3),
        || !up(1, 1),
    )
    .await;
    assert!(up(1, 0), "the TLS server passes ssl-hello-chk");
    wait_until(
        "a server that does not PONG fails the script",
        Duration::from_secs(3),
        || !up(2, 1),
    )
    .await;
    assert!(up(2, 0), "PONG passes");
}

#[tokio::test]
async fn shutdown_sessions_when_marked_down() {
    use tokio::io::AsyncReadExt;
    // The data server holds connections open; its health is a separate port we can close.
    let (data, _) = tagged("D", Duration::from_secs(30)).await;
    let health = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hport = health.local_addr().unwrap().port();
    let (gw, rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    server s {data} check port {hport} inter 100ms fall 2 on-marked-down shutdown-sessions\n"
    ))
    .await;
    let mut c = tokio::net::TcpStream::connect(gw).await.unwrap();
    wait_until(
        "the session reached the server",
        Duration::from_secs(3),
        || rt.backends[0].servers[0].cur.load(Relaxed) == 1,
    )
    .await;
    drop(health);
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "the session outlived its server: {:?}",
        t0.elapsed()
    );
    assert!(!rt.backends[0].health[0].up.load(Relaxed));
}

/// A TLS server (the test PKI's a.example.test) answering each request with `200 OK`; it keeps the
/// name each handshake sent. The PKI comes from scripts/make-certs.sh (openssl).
fn https_origin(dir: &std::path::Path) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let config = tls_server_config(&make_pki(dir).join("crt/a.example.test.pem"));
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = names.clone();
    std::thread::spawn(move || {
        for tcp in l.incoming().flatten() {
            let (config, seen) = (config.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut tcp = tcp;
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut conn = rustls::ServerConnection::new(config).unwrap();
                while conn.is_handshaking() {
                    if conn.complete_io(&mut tcp).is_err() {
                        return;
                    }
                }
                let name = conn.server_name().unwrap_or("-").to_string();
                seen.lock().unwrap().push(name);
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                s.conn.send_close_notify();
                let _ = s.flush();
            });
        }
    });
    (addr, names)
}

/// As in HAProxy: checks of an `ssl` server speak TLS (with `check-sni`), unless `no-check-ssl` or
/// a check `port` sends them elsewhere in clear; `check-ssl` makes them TLS on a server without
/// `ssl`. A plain check of a TLS port fails; a TLS TCP check passes at layer 6.
#[tokio::test]
async fn checks_of_tls_servers_speak_tls() {
    let dir = std::env::temp_dir().join(format!("gh-checks-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (o, names) = https_origin(&dir);
    let port = o.port();
    let (_gw, rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    default_backend web\n\
         backend web\n    option httpchk GET /health\n    http-check expect status 200\n    \
         default-server check inter 100ms fall 2 rise 1\n    \
         server tls {o} ssl verify none check-sni health.example.test\n    \
         server clear {o} ssl verify none no-check-ssl\n    \
         server elsewhere {o} ssl verify none port {port}\n    \
         server forced {o} check-ssl verify none\n\
         backend l4\n    server t {o} ssl verify none check inter 100ms fall 2 rise 1\n"
    ))
    .await;
    let up = |b: usize, s: usize| rt.backends[b].health[s].up.load(Relaxed);
    wait_until(
        "a clear-text check of a TLS port fails",
        Duration::from_secs(3),
        || !up(0, 1) && !up(0, 2),
    )
    .await;
    // By now every server had several checks; the TLS ones passed each time.
    assert!(up(0, 0), "the TLS http check passes");
    assert!(up(0, 3), "check-ssl makes the check TLS without 'ssl'");
    assert!(up(1, 0), "a TLS TCP check passes");
    let col = |prefix: &str, name: &str| column(&stat_row(&rt, prefix), name);
    assert_eq!(col("web,tls,", "check_status"), "L7OK");
    assert_eq!(col("l4,t,", "check_status"), "L6OK");
    assert_eq!(col("web,clear,", "check_status"), "L7RSP");
    let names = names.lock().unwrap().clone();
    assert!(
        names.iter().any(|n| n == "health.example.test"),
        "check-sni is sent: {names:?}"
    );
    assert!(names.iter().any(|n| n == "-"), "no SNI without check-sni");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server behind a strict `accept-proxy`: it answers a request only after a PROXY header that says
/// "health check" (v1 UNKNOWN, v2 LOCAL), and closes on anything else. Counts the headers by version.
async fn proxy_protocol_origin() -> (std::net::SocketAddr, Arc<Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let versions = Arc::new(Mutex::new(Vec::new()));
    let seen = versions.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 512];
                let used = loop {
                    match gatehouse::proxy_protocol::parse(&buf) {
                        Ok(Some((h, used))) if h.addrs.is_none() => {
                            seen.lock().unwrap().push(h.version);
                            break used;
                        }
                        Ok(None) => {}
                        _ => return,
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                buf.drain(..used);
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, versions)
}

/// As in HAProxy: checks of a `send-proxy`/`send-proxy-v2` server open with a PROXY header that says
/// "health check" (v1 UNKNOWN, v2 LOCAL), unless a check `port` sends them elsewhere;
/// `check-send-proxy` sends one regardless. A server that insists on the header stays up.
#[tokio::test]
async fn checks_of_proxy_protocol_servers_send_the_header() {
    let (o, versions) = proxy_protocol_origin().await;
    let port = o.port();
    let (_gw, rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    default_backend pp\n\
         backend pp\n    option httpchk GET /health\n    \
         default-server check inter 100ms fall 2 rise 1\n    \
         server v1 {o} send-proxy\n    \
         server v2 {o} send-proxy-v2 proxy-v2-options crc32c\n    \
         server none {o}\n    \
         server elsewhere {o} send-proxy port {port}\n    \
         server forced {o} port {port} check-send-proxy\n"
    ))
    .await;
    let up = |s: usize| rt.backends[0].health[s].up.load(Relaxed);
    wait_until(
        "checks without a header fail",
        Duration::from_secs(3),
        || !up(2) && !up(3),
    )
    .await;
    assert!(up(0) && up(1) && up(4), "checks with the header pass");
    let versions = versions.lock().unwrap().clone();
    assert!(
        versions.contains(&1) && versions.contains(&2),
        "{versions:?}"
    );
}

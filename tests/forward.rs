//! Loopback integration tests of the data path: accept → route → balance → connect → forward →
//! account, on 127.0.0.1 with mock servers, each test with its config inline.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use gatehouse::account::Runtime;
use gatehouse::{config, listener, server};

/// A running gateway on 127.0.0.1:random with the given backend lines; returns its address, the
/// runtime (for counters) and the shutdown trigger.
async fn gateway(
    frontend_extra: &str,
    backend: &str,
) -> (std::net::SocketAddr, Arc<Runtime>, oneshot::Sender<()>) {
    let text = format!(
        "frontend f\n    bind 127.0.0.1:0\n{frontend_extra}    default_backend b\nbackend b\n{backend}"
    );
    let cfg = Arc::new(config::from_str("test.cfg", &text).unwrap().config);
    let bound = listener::bind_all(&cfg).unwrap();
    let addr = bound[0].listener.local_addr().unwrap();
    let rt = Arc::new(Runtime::new(cfg));
    let (tx, rx) = oneshot::channel();
    tokio::spawn(server::run(rt.clone(), bound, async {
        let _ = rx.await;
    }));
    (addr, rt, tx)
}

/// Waits until the frontend has no open session (the session task finished its accounting).
async fn settled(rt: &Runtime) {
    for _ in 0..200 {
        if rt.frontends[0].counters.cur.load(Relaxed) == 0
            && rt.frontends[0].counters.total.load(Relaxed) > 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("session did not finish");
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn bytes_both_ways_with_half_close() {
    // The mock server reads until the client's end of stream, then answers with what it got, reversed.
    let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_addr = origin.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = origin.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        got.reverse();
        s.write_all(&got).await.unwrap();
    });
    let (gw, rt, _stop) = gateway("", &format!("    server s1 {origin_addr}\n")).await;

    let sent = pattern(3 * 1024 * 1024 + 17);
    let mut c = TcpStream::connect(gw).await.unwrap();
    c.write_all(&sent).await.unwrap();
    // Half-close: the server only answers after seeing our end of stream through the proxy.
    c.shutdown().await.unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).await.unwrap();
    let mut want = sent.clone();
    want.reverse();
    assert!(back == want, "payload mangled: {} bytes back", back.len());

    settled(&rt).await;
    let fe = &rt.frontends[0].counters;
    assert_eq!(fe.bytes_in.load(Relaxed), sent.len() as u64);
    assert_eq!(fe.bytes_out.load(Relaxed), sent.len() as u64);
    assert_eq!(rt.backends[0].servers[0].total.load(Relaxed), 1);
    assert_eq!(
        fe.client_aborts.load(Relaxed) + fe.server_aborts.load(Relaxed),
        0
    );
}

#[tokio::test]
async fn refused_connect_closes_the_client_and_counts() {
    // A port with nobody listening: bind then drop.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (gw, rt, _stop) = gateway("", &format!("    server s1 {dead}\n")).await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the client must see the connection close");
    settled(&rt).await;
    assert_eq!(rt.backends[0].counters.connect_errors.load(Relaxed), 1);
}

#[tokio::test]
async fn server_idle_timeout_ends_the_session() {
    let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_addr = origin.local_addr().unwrap();
    tokio::spawn(async move {
        // Accept and say nothing, holding the socket open.
        let (s, _) = origin.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let (gw, rt, _stop) = gateway(
        "    timeout client 10s\n",
        &format!("    timeout server 300ms\n    server s1 {origin_addr}\n"),
    )
    .await;
    let t0 = Instant::now();
    let mut c = TcpStream::connect(gw).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "closed too early: {took:?}"
    );
    settled(&rt).await;
    assert_eq!(rt.frontends[0].counters.server_aborts.load(Relaxed), 1);
}

#[tokio::test]
async fn activity_keeps_an_idle_timeout_away() {
    // The server talks every 100 ms for 600 ms, twice the server timeout: the session must live.
    let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_addr = origin.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = origin.accept().await.unwrap();
        for _ in 0..6 {
            s.write_all(b"tick").await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (gw, rt, _stop) = gateway(
        "    timeout client 300ms\n",
        &format!("    timeout server 300ms\n    server s1 {origin_addr}\n"),
    )
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"ticktickticktickticktick");
    // The server has closed; a client that closes too ends the session normally.
    drop(c);
    settled(&rt).await;
    let fe = &rt.frontends[0].counters;
    assert_eq!(
        fe.client_aborts.load(Relaxed) + fe.server_aborts.load(Relaxed),
        0
    );
}

#[tokio::test]
async fn frontend_maxconn_holds_the_next_client_until_one_leaves() {
    let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_addr = origin.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = origin.accept().await.unwrap();
            tokio::spawn(async move {
                let mut b = [0u8; 64];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 || s.write_all(&b[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let (gw, rt, _stop) =
        gateway("    maxconn 1\n", &format!("    server s1 {origin_addr}\n")).await;
    let mut first = TcpStream::connect(gw).await.unwrap();
    first.write_all(b"one").await.unwrap();
    let mut b = [0u8; 3];
    first.read_exact(&mut b).await.unwrap();
    // The second connection completes in the kernel backlog but is not served while the first lives.
    let mut second = TcpStream::connect(gw).await.unwrap();
    second.write_all(b"two").await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), second.read_exact(&mut b)).await;
    assert!(early.is_err(), "second client served beyond maxconn 1");
    assert_eq!(rt.frontends[0].counters.cur.load(Relaxed), 1);
    drop(first);
    tokio::time::timeout(Duration::from_secs(5), second.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"two");
}

#[tokio::test]
async fn a_server_at_the_original_destination_never_loops_to_the_listener() {
    // With a plain bind, the "original destination" is the listener itself.
    let (gw, rt, _stop) = gateway("", "    server back 0.0.0.0\n").await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    settled(&rt).await;
    // Exactly one session: it did not connect to itself.
    assert_eq!(rt.frontends[0].counters.total.load(Relaxed), 1);
}

/// A session killed midway (here: its runtime shut down, as on SIGTERM) still ends in the counters and
/// the log, with the bytes it moved.
#[test]
fn killed_sessions_are_accounted_with_their_bytes() {
    let rt_tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let rt = rt_tokio.block_on(async {
        let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin_addr = origin.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = origin.accept().await.unwrap();
            s.write_all(b"hello").await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let (gw, rt, stop) = gateway("", &format!("    server s1 {origin_addr}\n")).await;
        let mut c = TcpStream::connect(gw).await.unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).await.unwrap();
        // Keep the client connection and the stop trigger alive past the runtime.
        std::mem::forget(c);
        std::mem::forget(stop);
        rt
    });
    assert_eq!(rt.frontends[0].counters.cur.load(Relaxed), 1);
    drop(rt_tokio);
    let fe = &rt.frontends[0].counters;
    assert_eq!(
        fe.cur.load(Relaxed),
        0,
        "the killed session left the frontend"
    );
    assert_eq!(fe.bytes_out.load(Relaxed), 5, "its bytes were accounted");
}

/// An idle session's task is one future held for the connection's whole life: what is only needed
/// before forwarding (peek buffer, rules, DNS, connect) must not be part of it. Not a speed target
/// (those are benchmarked); a guard against a change that quietly doubles idle memory.
#[tokio::test]
async fn the_session_future_stays_small() {
    let (gw, rt, _stop) = gateway("", "    server s 0.0.0.0\n").await;
    let c = TcpStream::connect(gw).await.unwrap();
    let peer = c.local_addr().unwrap();
    let f = gatehouse::session::run(rt, (0, 0), (c, peer), 1);
    let size = std::mem::size_of_val(&f);
    assert!(size <= 1024, "the session future is {size} bytes");
}

/// A parked session (quiet for `tune.idle-park`) is its `Flow` on the shelf and nothing else: what
/// an idle connection costs. Guards against a change that quietly grows it.
#[test]
fn a_parked_session_stays_small() {
    let size = std::mem::size_of::<gatehouse::session::Flow>();
    assert!(size <= 320, "a parked flow is {size} bytes");
}

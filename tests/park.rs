//! Parking: a spliced tcp session quiet for `tune.idle-park` leaves its task and waits on the
//! thread's shelf; a byte from either side carries it on, its timeouts still end it, and it is
//! logged and accounted once, as any session.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use gatehouse::account::Runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An origin that echoes every chunk it reads, until its client leaves.
async fn echo() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn gateway(
    global: &str,
    timeouts: &str,
    origin: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    Arc<Runtime>,
    tokio::sync::oneshot::Sender<()>,
) {
    common::gateway(&format!(
        "global\n{global}defaults\n mode tcp\n{timeouts}frontend f\n bind 127.0.0.1:0\n default_backend b\nbackend b\n server s {origin}\n"
    ))
    .await
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..300 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn round_trip(c: &mut TcpStream, msg: &[u8]) {
    c.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(back, msg);
}

/// A client through a gateway (`tune.idle-park` `park`, the given timeouts) to an echo origin, after
/// one exchange, once its session has parked.
async fn parked_client(
    park: &str,
    timeouts: &str,
) -> (TcpStream, Arc<Runtime>, tokio::sync::oneshot::Sender<()>) {
    let origin = echo().await;
    let (gw, rt, stop) = gateway(&format!(" tune.idle-park {park}\n"), timeouts, origin).await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    round_trip(&mut c, b"one").await;
    wait_for("the session to park", || rt.parked.load(Relaxed) == 1).await;
    (c, rt, stop)
}

#[tokio::test]
async fn a_quiet_session_parks_and_carries_on() {
    let (mut c, rt, _stop) =
        parked_client("50ms", " timeout client 30s\n timeout server 30s\n").await;
    assert_eq!(
        rt.frontends[0].counters.cur.load(Relaxed),
        1,
        "parked, still open"
    );
    assert_eq!(
        rt.backends[0].servers[0].cur.load(Relaxed),
        1,
        "still on its server"
    );
    // A byte from the client carries it on; then it parks again.
    round_trip(&mut c, b"second").await;
    wait_for("the session to park again", || rt.parked.load(Relaxed) == 1).await;
    // Woken by the server's side this time: the client closes, the origin sees the end and closes.
    c.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .unwrap();
    wait_for("the session to end", || {
        rt.frontends[0].counters.cur.load(Relaxed) == 0
    })
    .await;
    assert_eq!(rt.parked.load(Relaxed), 0);
    assert_eq!(rt.backends[0].servers[0].cur.load(Relaxed), 0);
    let fe = &rt.frontends[0].counters;
    assert_eq!(fe.bytes_in.load(Relaxed), 9, "every byte counted once");
    assert_eq!(fe.bytes_out.load(Relaxed), 9);
    assert_eq!(fe.total.load(Relaxed), 1);
    assert_eq!(
        fe.client_aborts.load(Relaxed) + fe.server_aborts.load(Relaxed),
        0
    );
}

#[tokio::test]
async fn bulk_after_parking_still_splices_every_byte() {
    let (c, _rt, _stop) = parked_client("20ms", " timeout client 30s\n timeout server 30s\n").await;
    let (mut r, mut w) = c.into_split();
    let sent: Vec<u8> = (0..2_000_000).map(|i| (i % 251) as u8).collect();
    let want = sent.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w
    });
    let mut back = vec![0u8; want.len()];
    tokio::time::timeout(Duration::from_secs(10), r.read_exact(&mut back))
        .await
        .expect("echoed in time")
        .unwrap();
    assert!(back == want, "payload mangled");
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn a_parked_session_still_times_out() {
    let (mut c, rt, _stop) =
        parked_client("30ms", " timeout client 400ms\n timeout server 30s\n").await;
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
        .await
        .expect("closed by the client timeout")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    wait_for("the session to end", || {
        rt.frontends[0].counters.cur.load(Relaxed) == 0
    })
    .await;
    assert_eq!(rt.parked.load(Relaxed), 0);
}

#[tokio::test]
async fn tune_idle_park_zero_keeps_sessions_in_their_tasks() {
    let origin = echo().await;
    let (gw, rt, _stop) = gateway(
        " tune.idle-park 0\n",
        " timeout client 30s\n timeout server 30s\n",
        origin,
    )
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    round_trip(&mut c, b"hi").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rt.parked.load(Relaxed), 0);
    round_trip(&mut c, b"again").await;
}

#[tokio::test]
async fn a_half_closed_session_parks_and_its_answer_still_comes() {
    // The origin answers only some time after the client's end of stream.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.write_all(b"late answer").await.unwrap();
    });
    let (gw, rt, _stop) = gateway(
        " tune.idle-park 30ms\n",
        " timeout client 30s\n timeout server 30s\n",
        origin,
    )
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    c.write_all(b"question").await.unwrap();
    c.shutdown().await.unwrap();
    wait_for("the half-closed session to park", || {
        rt.parked.load(Relaxed) == 1
    })
    .await;
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut back))
        .await
        .expect("answered in time")
        .unwrap();
    assert_eq!(back, b"late answer");
    wait_for("the session to end", || {
        rt.frontends[0].counters.cur.load(Relaxed) == 0
    })
    .await;
    assert_eq!(rt.frontends[0].counters.bytes_in.load(Relaxed), 8);
    assert_eq!(rt.frontends[0].counters.bytes_out.load(Relaxed), 11);
}

#[tokio::test]
async fn a_session_backed_up_by_a_slow_reader_parks_once_drained() {
    // The origin sends 4 MB at once; the client reads nothing for a while (bytes wait in the
    // proxy: no parking then), then everything; quiet afterwards, the session parks.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _ = s.write_all(&vec![7u8; 4 << 20]).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let (gw, rt, _stop) = gateway(
        " tune.idle-park 30ms\n",
        " timeout client 30s\n timeout server 30s\n",
        origin,
    )
    .await;
    let mut c = TcpStream::connect(gw).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rt.parked.load(Relaxed), 0, "bytes in flight: not parked");
    let mut got = vec![0u8; 4 << 20];
    tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut got))
        .await
        .expect("all bytes in time")
        .unwrap();
    wait_for("the drained session to park", || {
        rt.parked.load(Relaxed) == 1
    })
    .await;
}

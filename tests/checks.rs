//! Loopback tests of health checks: a server that stops answering is marked down after `fall`
//! failed checks and its traffic moves; when it answers again it comes back after `rise` checks.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::{fetch, gateway, tagged};

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
    // The flaky server: a listener we can close and reopen on the same port.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let flaky = l.local_addr().unwrap();
    drop(l);
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
    // It comes back: two good checks mark it up, and `balance first` sends traffic to it again.
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
}

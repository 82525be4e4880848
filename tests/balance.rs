//! Loopback tests of balancing over real connections: weights, backups, retries and redispatch.

mod common;

use std::time::Duration;

use common::{dead_addr, fetch, gateway, tagged};

#[tokio::test]
async fn weights_split_connections() {
    let (a, _) = tagged("A", Duration::ZERO).await;
    let (b, _) = tagged("B", Duration::ZERO).await;
    let (gw, _rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    server a {a} weight 3\n    server b {b}\n"
    ))
    .await;
    let mut got = String::new();
    for _ in 0..8 {
        got.push_str(&fetch(gw).await);
    }
    assert_eq!(got.matches('A').count(), 6, "{got}");
    assert_eq!(got.matches('B').count(), 2, "{got}");
}

#[tokio::test]
async fn retries_then_redispatch_to_a_live_server() {
    let dead = dead_addr();
    let (live, _) = tagged("L", Duration::ZERO).await;
    // Round robin starts at the dead server: two retries on it, then the last goes elsewhere.
    let (gw, rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    retries 2\n    option redispatch\n    server dead {dead}\n    server live {live}\n"
    ))
    .await;
    assert_eq!(fetch(gw).await, "L");
    let s = &rt.backends[0].servers;
    assert_eq!(s[1].total.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Without redispatch, the retries stay on the dead server and the session fails.
    let (gw2, _rt2, _stop2) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    retries 1\n    server dead {dead}\n    server live {live}\n"
    ))
    .await;
    assert_eq!(fetch(gw2).await, "");
}

#[tokio::test]
async fn backups_only_when_actives_are_down() {
    let (a, _) = tagged("A", Duration::ZERO).await;
    let (b1, _) = tagged("1", Duration::ZERO).await;
    let (b2, _) = tagged("2", Duration::ZERO).await;
    let (gw, rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    server a {a}\n    server b1 {b1} backup\n    server b2 {b2} backup\n"
    ))
    .await;
    assert_eq!(fetch(gw).await, "A");
    rt.backends[0].health[0]
        .up
        .store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(fetch(gw).await + &fetch(gw).await, "11");
}

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

#[tokio::test]
async fn rdp_cookie_keeps_a_user_on_one_host() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (a, _) = tagged("A", Duration::ZERO).await;
    let (b, _) = tagged("B", Duration::ZERO).await;
    let (gw, _rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    tcp-request inspect-delay 2s\n    default_backend rdp\nbackend rdp\n    balance rdp-cookie\n    server a {a}\n    server b {b}\n"
    ))
    .await;
    // An X.224 connection request with the routing cookie, as a Remote Desktop client sends it.
    let connect = |user: &str| {
        let mut cr = vec![3, 0, 0, 0, 0, 0xe0, 0, 0, 0, 0, 0];
        cr.extend(format!("Cookie: mstshash={user}\r\n").as_bytes());
        cr.extend([1, 0, 8, 0, 3, 0, 0, 0]);
        let len = cr.len() as u16;
        cr[2..4].copy_from_slice(&len.to_be_bytes());
        cr[4] = (cr.len() - 5) as u8;
        cr
    };
    let mut seen = std::collections::HashMap::new();
    for user in [
        "alice", "bob", "carol", "dave", "alice", "bob", "carol", "dave",
    ] {
        let mut c = tokio::net::TcpStream::connect(gw).await.unwrap();
        c.write_all(&connect(user)).await.unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).await.unwrap();
        let first = seen.entry(user).or_insert_with(|| got.clone());
        assert_eq!(*first, got, "{user} changed host");
    }
}

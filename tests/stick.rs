//! Loopback tests of stick tables: a connection-rate limit written as HAProxy users write it, and
//! persistence of a client to the server it first went to.

mod common;

use std::time::Duration;

use common::{fetch, gateway, tagged};

#[tokio::test]
async fn rate_limit_by_source() {
    let (web, n) = tagged("W", Duration::ZERO).await;
    let (gw, rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    stick-table type ip size 100 expire 30s store conn_rate(10s),conn_cnt,gpc0\n    tcp-request connection track-sc0 src\n    tcp-request connection sc-inc-gpc0(0) if {{ sc0_conn_rate gt 3 }}\n    tcp-request connection reject if {{ sc0_conn_rate gt 3 }}\n    default_backend be\nbackend be\n    server w {web}\n"
    ))
    .await;
    let mut got = String::new();
    for _ in 0..6 {
        got.push_str(&fetch(gw).await);
    }
    // Three connections in the window pass; the next ones are refused before reaching the server.
    assert_eq!(got, "WWW");
    assert_eq!(n.load(std::sync::atomic::Ordering::Relaxed), 3);
    let t = &rt.tables[0];
    let key =
        gatehouse::stick::Key::of(gatehouse::config::model::KeyType::Ip, "127.0.0.1").unwrap();
    assert_eq!(t.read(&key, gatehouse::stick::Read::ConnCnt), 6);
    assert_eq!(t.read(&key, gatehouse::stick::Read::Gpc0), 3);
    // Every session ended: none is current.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(t.read(&key, gatehouse::stick::Read::ConnCur), 0);
}

#[tokio::test]
async fn a_client_sticks_to_its_server() {
    let (a, _) = tagged("A", Duration::ZERO).await;
    let (b, _) = tagged("B", Duration::ZERO).await;
    let (gw, rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    stick-table type ip size 100 expire 30s\n    stick on src\n    server a {a}\n    server b {b}\n"
    ))
    .await;
    let first = fetch(gw).await;
    for _ in 0..4 {
        assert_eq!(
            fetch(gw).await,
            first,
            "round robin would alternate; the table keeps the client"
        );
    }
    // Its server goes down: the client moves, and sticks to the new one.
    let i = if first == "A" { 0 } else { 1 };
    rt.backends[0].health[i]
        .up
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let second = fetch(gw).await;
    assert_ne!(second, first);
    rt.backends[0].health[i]
        .up
        .store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(fetch(gw).await, second);
}

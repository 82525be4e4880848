//! Loopback tests of the backend queue: with `maxconn 1`, a second session waits for the first to
//! finish; one that waits longer than `timeout queue` is closed (logged sQ).

mod common;

use std::time::{Duration, Instant};

use common::{fetch, gateway, tagged};

#[tokio::test]
async fn sessions_wait_for_a_free_slot() {
    let (slow, n) = tagged("S", Duration::from_millis(300)).await;
    let (gw, rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    timeout queue 5s\n    server s {slow} maxconn 1\n"
    ))
    .await;
    let t0 = Instant::now();
    let (a, b) = tokio::join!(fetch(gw), fetch(gw));
    assert_eq!(a + &b, "SS");
    // The second waited for the first: two 300 ms sessions one after the other.
    assert!(
        t0.elapsed() >= Duration::from_millis(550),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(n.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(
        rt.backends[0]
            .queued
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn the_queue_times_out() {
    let (slow, n) = tagged("S", Duration::from_millis(800)).await;
    let (gw, _rt, _stop) = gateway(&format!(
        "frontend f\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    timeout queue 200ms\n    server s {slow} maxconn 1\n"
    ))
    .await;
    let (a, b) = tokio::join!(fetch(gw), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        fetch(gw).await
    });
    assert_eq!((a.as_str(), b.as_str()), ("S", ""));
    assert_eq!(n.load(std::sync::atomic::Ordering::Relaxed), 1);
}

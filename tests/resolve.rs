//! The resolver cache against a small DNS server of our own on loopback: TTLs honoured, one query for
//! many lookups, NXDOMAIN remembered per `hold nx`, the previous answer served while the server is
//! dead, and new names failing fast then. Nothing leaves 127.0.0.1.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::{FakeDns, Mode};

use gatehouse::config::Pos;
use gatehouse::config::model::{Hold, ResolversSection};
use gatehouse::resolve::{DnsError, Resolver};

fn section(ns: SocketAddr) -> ResolversSection {
    ResolversSection {
        name: "test".into(),
        pos: Pos {
            file: "t.cfg".into(),
            line: 1,
        },
        nameservers: vec![ns],
        parse_resolv_conf: false,
        resolve_retries: 1,
        timeout_resolve: Duration::from_millis(300),
        timeout_retry: Duration::from_secs(1),
        hold: Hold {
            nx: Duration::from_secs(5),
            ..Hold::default()
        },
        accepted_payload_size: 1232,
    }
}

fn ips(a: &gatehouse::resolve::Answer) -> Vec<IpAddr> {
    a.addrs.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttls_are_honoured_and_lookups_share_one_query() {
    let dns = FakeDns::start().await;
    dns.set("a.test", [192, 0, 2, 1], 2);
    let r = Resolver::new(&section(dns.addr), tokio::runtime::Handle::current()).unwrap();

    // Ten lookups at once: one query.
    let all = futures_util::future::join_all((0..10).map(|_| r.lookup("a.test"))).await;
    for a in all {
        assert_eq!(ips(&a.unwrap()), vec![IpAddr::from([192, 0, 2, 1])]);
    }
    assert_eq!(dns.a_queries("a.test"), 1);

    // The record changes; the cached answer stands until its TTL (2 s) runs out.
    dns.set("a.test", [192, 0, 2, 2], 2);
    let a = r.lookup("a.test").await.unwrap();
    assert_eq!(ips(&a), vec![IpAddr::from([192, 0, 2, 1])]);
    assert_eq!(dns.a_queries("a.test"), 1);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let a = r.lookup("a.test").await.unwrap();
    assert_eq!(ips(&a), vec![IpAddr::from([192, 0, 2, 2])]);
    assert_eq!(dns.a_queries("a.test"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_is_remembered_for_hold_nx() {
    let dns = FakeDns::start().await;
    let r = Resolver::new(&section(dns.addr), tokio::runtime::Handle::current()).unwrap();
    assert_eq!(r.lookup("nope.test").await, Err(DnsError::NotFound));
    let asked = dns.total.load(Relaxed);
    assert_eq!(r.lookup("nope.test").await, Err(DnsError::NotFound));
    assert_eq!(
        dns.total.load(Relaxed),
        asked,
        "the negative answer is cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_costs_cached_names_nothing_and_new_names_fail_fast() {
    let dns = FakeDns::start().await;
    dns.set("up.test", [192, 0, 2, 7], 1);
    let r = Resolver::new(&section(dns.addr), tokio::runtime::Handle::current()).unwrap();
    r.lookup("up.test").await.unwrap();
    *dns.mode.lock().unwrap() = Mode::Silent;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Expired, and the server is silent: the previous answer comes back within the short grace.
    let t = Instant::now();
    let a = r.lookup("up.test").await.unwrap();
    assert_eq!(ips(&a), vec![IpAddr::from([192, 0, 2, 7])]);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    // A new name fails after one resolve timeout, and then at once while the failure is remembered.
    let t = Instant::now();
    let e = r.lookup("new.test").await.unwrap_err();
    assert!(
        matches!(e, DnsError::Timeout | DnsError::Failed(_)),
        "{e:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let t = Instant::now();
    assert!(r.lookup("new.test").await.is_err());
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());

    // Once the query that timed out has been recorded, the old name is served without waiting.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let t = Instant::now();
    assert!(r.lookup("up.test").await.is_ok());
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
}

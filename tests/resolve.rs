//! The resolver cache against a small DNS server of our own on loopback: TTLs honoured, one query for
//! many lookups, NXDOMAIN remembered per `hold nx`, the previous answer served while the server is
//! dead, and new names failing fast then. Nothing leaves 127.0.0.1.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse::config::Pos;
use gatehouse::config::model::{Hold, ResolversSection};
use gatehouse::resolve::{DnsError, Resolver};
use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::{RData, Record, RecordType, rdata::A};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Answer,
    Silent,
}

struct FakeDns {
    addr: SocketAddr,
    records: Mutex<HashMap<String, (Ipv4Addr, u32)>>,
    mode: Mutex<Mode>,
    /// A queries seen, per name.
    queries: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
}

impl FakeDns {
    async fn start() -> Arc<FakeDns> {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dns = Arc::new(FakeDns {
            addr: sock.local_addr().unwrap(),
            records: Mutex::new(HashMap::new()),
            mode: Mutex::new(Mode::Answer),
            queries: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
        });
        let me = dns.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                me.total.fetch_add(1, Relaxed);
                if *me.mode.lock().unwrap() == Mode::Silent {
                    continue;
                }
                let Some(query) = q.queries.first().cloned() else {
                    continue;
                };
                let name = query.name().to_ascii().trim_end_matches('.').to_string();
                let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
                r.add_query(query.clone());
                match me.records.lock().unwrap().get(&name) {
                    None => r.metadata.response_code = ResponseCode::NXDomain,
                    Some((ip, ttl)) if query.query_type() == RecordType::A => {
                        *me.queries.lock().unwrap().entry(name).or_default() += 1;
                        r.add_answer(Record::from_rdata(
                            query.name().clone(),
                            *ttl,
                            RData::A(A(*ip)),
                        ));
                    }
                    // AAAA: the name exists, with no IPv6 address.
                    Some(_) => {}
                }
                let _ = sock.send_to(&r.to_vec().unwrap(), from).await;
            }
        });
        dns
    }

    fn set(&self, name: &str, ip: [u8; 4], ttl: u32) {
        self.records
            .lock()
            .unwrap()
            .insert(name.into(), (Ipv4Addr::from(ip), ttl));
    }

    fn a_queries(&self, name: &str) -> usize {
        self.queries.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

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

//! A small DNS server of our own on 127.0.0.1 for tests: A records with chosen TTLs, NXDOMAIN for
//! other names, and a silent mode that plays a dead server.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::{RData, Record, RecordType, rdata::A};

#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    Answer,
    Silent,
}

pub struct FakeDns {
    pub addr: SocketAddr,
    records: Mutex<HashMap<String, (Ipv4Addr, u32)>>,
    pub mode: Mutex<Mode>,
    /// A queries seen, per name.
    queries: Mutex<HashMap<String, usize>>,
    pub total: AtomicUsize,
}

impl FakeDns {
    pub async fn start() -> Arc<FakeDns> {
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

    pub fn set(&self, name: &str, ip: [u8; 4], ttl: u32) {
        self.records
            .lock()
            .unwrap()
            .insert(name.into(), (Ipv4Addr::from(ip), ttl));
    }

    pub fn a_queries(&self, name: &str) -> usize {
        self.queries.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

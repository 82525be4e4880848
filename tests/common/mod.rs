//! Shared by the loopback tests: a small DNS server of our own on 127.0.0.1 (A records with chosen
//! TTLs, NXDOMAIN otherwise, a silent mode that plays a dead server), a gateway builder and mock servers.
#![allow(dead_code)]

pub mod process;

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

/// A gateway running `text` (its first frontend binding 127.0.0.1:0), with health checks and its
/// resolvers on the test's runtime; returns its address, the runtime and the shutdown trigger.
pub async fn gateway(
    text: &str,
) -> (
    std::net::SocketAddr,
    Arc<gatehouse::account::Runtime>,
    tokio::sync::oneshot::Sender<()>,
) {
    let cfg = Arc::new(
        gatehouse::config::from_str("test.cfg", text)
            .unwrap()
            .config,
    );
    let bound = gatehouse::listener::bind_all(&cfg).unwrap();
    let addr = bound[0].listener.local_addr().unwrap();
    let mut rt = gatehouse::account::Runtime::new(cfg.clone());
    rt.dns =
        gatehouse::resolve::Dns::new(&cfg.resolvers, tokio::runtime::Handle::current()).unwrap();
    let rt = Arc::new(rt);
    tokio::spawn(gatehouse::checks::run(rt.clone()));
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(gatehouse::server::run(rt.clone(), bound, async {
        let _ = rx.await;
    }));
    (addr, rt, tx)
}

/// A server that answers every connection with its tag and closes; `hold` keeps each connection
/// open that long first. Returns its address and a count of connections it took.
pub async fn tagged(
    tag: &'static str,
    hold: std::time::Duration,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            count.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                let _ = s.write_all(tag.as_bytes()).await;
            });
        }
    });
    (addr, n)
}

/// Connects through the gateway and reads the whole answer.
pub async fn fetch(gw: std::net::SocketAddr) -> String {
    use tokio::io::AsyncReadExt;
    let mut c = tokio::net::TcpStream::connect(gw).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        c.read_to_string(&mut out),
    )
    .await;
    out
}

/// An address nothing listens on (a port that was just free).
pub fn dead_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A minimal ClientHello (TLS 1.2 record, one cipher) carrying `sni`.
pub fn hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut ext = vec![0, 0];
    ext.extend(((name.len() + 5) as u16).to_be_bytes());
    ext.extend(((name.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend((name.len() as u16).to_be_bytes());
    ext.extend(name);
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    gatehouse::classify::tls::client_hello_record(&body)
}

/// scripts/make-certs.sh into `dir`/pki (openssl comes with scripts/install-deps.sh): ca.crt,
/// crt/{a,b,wildcard}.example.test.pem, client.pem, client2.pem, other-ca.crt, other-client.pem,
/// origin.pem.
pub fn make_pki(dir: &std::path::Path) -> std::path::PathBuf {
    let pki = dir.join("pki");
    let out = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/make-certs.sh"
        ))
        .arg(&pki)
        .output()
        .expect("running scripts/make-certs.sh");
    assert!(
        out.status.success(),
        "make-certs.sh (openssl comes with scripts/install-deps.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pki
}

/// A rustls server configuration serving the certificate chain and key of a PEM bundle.
pub fn tls_server_config(bundle: &std::path::Path) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(bundle)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(bundle).unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap(),
    )
}

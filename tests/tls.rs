//! TLS in tcp mode, through the real binary on loopback, with the test PKI of scripts/make-certs.sh
//! (openssl). Terminating (`bind … ssl`): the certificate served follows the SNI (exact name, then a
//! wildcard one level up, else the first; `strict-sni` refuses), from `crt FILE`, `crt DIR` and
//! `crt-list` with SNI filters; ALPN; client certificates (`verify required|optional`) refused and
//! logged, or routed by `ssl_c_*` and `ssl_fc_sni` (in `tcp-request session` rules too). Originating (`server … ssl`): verified against the
//! CA and the name (SNI before `verifyhost`, as in HAProxy), refused with the wrong CA (`SC`), or not
//! verified (`verify none`). Config errors name file:line and the fix; a reload serves a replaced
//! certificate.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{Gatehouse, Keep, echo_server, free_port};
use common::{make_pki, tls_server_config};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

const IO_LIMIT: Duration = Duration::from_secs(5);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The PKI of the run tagged `tag` (in the folder its Gatehouse removes when dropped).
fn pki_for(tag: &str) -> PathBuf {
    let dir = Gatehouse::dir_for(tag);
    std::fs::create_dir_all(&dir).unwrap();
    make_pki(&dir)
}

/// The start of every configuration: relative certificate paths under the PKI (`crt-base`,
/// `ca-base`), connection log lines on standard error with the diagnostics.
fn head(pki: &Path) -> String {
    format!(
        "global\n plumbing none\n crt-base {p}\n ca-base {p}\n log stderr format raw local0\ndefaults\n mode tcp\n log global\n timeout connect 2s\n timeout client 10s\n timeout server 10s\n",
        p = pki.display()
    )
}

/// What gatehouse writes on standard error (diagnostics and, here, the connection log lines),
/// gathered by a thread as it comes.
#[derive(Clone)]
struct Log(Arc<Mutex<String>>);

impl Log {
    fn of(g: &mut Gatehouse) -> Log {
        let log = Log(Arc::new(Mutex::new(String::new())));
        let out = g.child.stderr.take().expect("started with Keep::Stderr");
        let sink = log.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        log
    }

    /// Waits (5 s at most) for a line holding every one of `parts`; returns it.
    fn wait(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + IO_LIMIT;
        loop {
            if let Some(l) = self
                .0
                .lock()
                .unwrap()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?} in:\n{}",
                self.0.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts gatehouse on `cfg` (which binds `port`), its standard error gathered.
fn start(tag: &str, cfg: &str, port: u16) -> (Gatehouse, Log) {
    let mut g = Gatehouse::start(tag, cfg, port, Keep::Stderr);
    let log = Log::of(&mut g);
    (g, log)
}

/// Accepts any server certificate and keeps the end-entity one, to look at it afterwards; checks
/// the chain and name against `ca` when there is one.
#[derive(Debug)]
struct Seen {
    leaf: Mutex<Option<CertificateDer<'static>>>,
    ca: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Seen {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.leaf.lock().unwrap() = Some(end_entity.clone().into_owned());
        match &self.ca {
            Some(v) => v.verify_server_cert(end_entity, intermediates, name, ocsp, now),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn roots(ca: &Path) -> rustls::RootCertStore {
    let mut store = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        store.add(c.unwrap()).unwrap();
    }
    store
}

/// How the test client says hello.
#[derive(Default, Clone, Copy)]
struct Hello<'a> {
    /// The SNI; none without.
    sni: Option<&'a str>,
    /// A client bundle (certificate and key) to present when asked.
    cert: Option<&'a Path>,
    alpn: &'a [&'a str],
    /// Verify the server's certificate against this CA (and the SNI); otherwise anything goes.
    ca: Option<&'a Path>,
    /// Offer TLS 1.2 only.
    tls12: bool,
}

/// A TLS connection of the test client, and what its handshake showed.
struct Client {
    s: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    /// The subject CN of the certificate the server sent.
    served: String,
}

impl Client {
    fn alpn(&self) -> Option<String> {
        self.s
            .conn
            .alpn_protocol()
            .map(|a| String::from_utf8_lossy(a).into_owned())
    }
}

fn common_name(cert: &CertificateDer<'_>) -> String {
    let (_, c) = x509_parser::parse_x509_certificate(cert).unwrap();
    c.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Connects to 127.0.0.1:`port` and completes a TLS handshake.
fn tls(port: u16, h: Hello<'_>) -> Result<Client, String> {
    let p = provider();
    let seen = Arc::new(Seen {
        leaf: Mutex::new(None),
        ca: h.ca.map(|ca| {
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(ca)),
                p.clone(),
            )
            .build()
            .unwrap()
        }),
        provider: p.clone(),
    });
    let versions: &[&rustls::SupportedProtocolVersion] = if h.tls12 {
        &[&rustls::version::TLS12]
    } else {
        rustls::ALL_VERSIONS
    };
    let b = rustls::ClientConfig::builder_with_provider(p)
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(seen.clone());
    let mut config = match h.cert {
        None => b.with_no_client_auth(),
        Some(bundle) => {
            let chain = CertificateDer::pem_file_iter(bundle)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(bundle).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = h.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    let name = match h.sni {
        Some(n) => ServerName::try_from(n.to_string()).unwrap(),
        None => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(IO_LIMIT)).unwrap();
    tcp.set_write_timeout(Some(IO_LIMIT)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    let served = seen
        .leaf
        .lock()
        .unwrap()
        .as_ref()
        .map(common_name)
        .unwrap_or_default();
    Ok(Client {
        s: rustls::StreamOwned::new(conn, tcp),
        served,
    })
}

/// Reads the server's greeting line, then checks that the server echoes; returns the greeting.
/// (In TLS 1.3 a server refuses a client certificate after the client's handshake is over: the
/// refusal shows here, as an alert or the end of the stream.)
fn greeting(s: &mut impl ReadWrite) -> Result<String, String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while b[0] != b'\n' {
        match s.read(&mut b) {
            Ok(0) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&line))),
            Ok(_) => line.push(b[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    line.pop();
    s.write_all(b"ping").map_err(|e| e.to_string())?;
    let mut back = [0u8; 4];
    s.read_exact(&mut back).map_err(|e| e.to_string())?;
    assert_eq!(&back, b"ping");
    Ok(String::from_utf8_lossy(&line).into_owned())
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Through a TLS-terminating port: the handshake, then the greeting of the server reached.
fn reach(port: u16, h: Hello<'_>) -> Result<(String, Client), String> {
    let mut c = tls(port, h)?;
    let g = greeting(&mut c.s)?;
    Ok((g, c))
}

/// Through a plain port: the greeting of the server reached.
fn reach_plain(port: u16, first: &[u8]) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_LIMIT)).unwrap();
    s.write_all(first).map_err(|e| e.to_string())?;
    greeting(&mut s)
}

/// A TLS echo server with `bundle`'s certificate (rustls): it tells each client the SNI it got
/// (`sni=NAME` or `sni=-`), then echoes. Returns its port.
fn tls_origin(bundle: &Path) -> u16 {
    let config = tls_server_config(bundle);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in l.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let mut tcp = tcp;
                tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut conn = rustls::ServerConnection::new(config).unwrap();
                while conn.is_handshaking() {
                    if conn.complete_io(&mut tcp).is_err() {
                        return;
                    }
                }
                let sni = conn.server_name().unwrap_or("-").to_string();
                let mut s = rustls::StreamOwned::new(conn, tcp);
                if s.write_all(format!("sni={sni}\n").as_bytes()).is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// `gatehouse -c -f FILE`: its exit status and standard error.
fn check(file: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("-c")
        .arg("-f")
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_certificate_follows_the_sni() {
    let tag = "tls-sni";
    let pki = pki_for(tag);
    let (p, strict) = (free_port(), free_port());
    let cfg = format!(
        "{}frontend f\n bind 127.0.0.1:{p} ssl crt crt/a.example.test.pem crt crt/wildcard.example.test.pem crt {}/crt/b.example.test.pem\n bind 127.0.0.1:{strict} ssl strict-sni crt crt/b.example.test.pem crt crt/wildcard.example.test.pem\n default_backend b\nbackend b\n server s 127.0.0.1:{}\n",
        head(&pki),
        pki.display(),
        echo_server("echo\n")
    );
    let (_g, log) = start(tag, &cfg, p);
    let served = |port, sni| {
        let (greet, c) = reach(
            port,
            Hello {
                sni,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{sni:?}: {e}"));
        assert_eq!(greet, "echo");
        c.served
    };
    // An exact name; a wildcard one level up (an exact name wins over it); no match or no SNI:
    // the first certificate of the line.
    assert_eq!(served(p, Some("a.example.test")), "a.example.test");
    assert_eq!(served(p, Some("b.example.test")), "b.example.test");
    assert_eq!(served(p, Some("B.Example.Test")), "b.example.test");
    assert_eq!(served(p, Some("c.example.test")), "*.example.test");
    assert_eq!(served(p, Some("x.c.example.test")), "a.example.test");
    assert_eq!(served(p, Some("other.test")), "a.example.test");
    assert_eq!(served(p, None), "a.example.test");
    // The chain is the test CA's, valid for the name asked.
    let ca = pki.join("ca.crt");
    for name in ["a.example.test", "b.example.test", "c.example.test"] {
        reach(
            p,
            Hello {
                sni: Some(name),
                ca: Some(&ca),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{name} against the test CA: {e}"));
    }
    // The name read is logged with the session.
    log.wait(&[" f b/s ", " -- ", "{c.example.test}"]);

    // strict-sni: only names a certificate has.
    assert_eq!(served(strict, Some("b.example.test")), "b.example.test");
    assert_eq!(served(strict, Some("z.example.test")), "*.example.test");
    for sni in [Some("a.test"), Some("x.c.example.test"), None] {
        assert!(
            tls(
                strict,
                Hello {
                    sni,
                    ..Default::default()
                }
            )
            .is_err(),
            "strict-sni let {sni:?} in"
        );
    }
    // A refusal of gatehouse's own, logged PR with the reason.
    log.wait(&["TLS handshake refused: no certificate for 'a.test' (strict-sni)"]);
    log.wait(&["TLS handshake refused: no SNI (strict-sni)"]);
    log.wait(&[" f f/<NOSRV> ", " PR "]);
}

#[test]
fn crt_dir_and_crt_list_with_sni_filters() {
    let tag = "tls-dir";
    let pki = pki_for(tag);
    let dir = Gatehouse::dir_for(tag);
    // A list with comments, relative paths (under crt-base) and SNI filters (exact and wildcard),
    // which replace the certificate's own names.
    let list = dir.join("certs.list");
    std::fs::write(
        &list,
        "# default first\ncrt/a.example.test.pem\n\n  crt/b.example.test.pem www.filtered.test *.wild.test   \n",
    )
    .unwrap();
    // A directory holding an editor's leftover that is no certificate: files starting with a dot
    // are not loaded (as in HAProxy), nor are .key files.
    std::fs::write(pki.join("crt/.a.example.test.pem.swp"), "not PEM").unwrap();
    std::fs::write(pki.join("crt/zz.key"), "not PEM").unwrap();
    let (by_dir, by_list) = (free_port(), free_port());
    let cfg = format!(
        "{}frontend f\n bind 127.0.0.1:{by_dir} ssl crt crt\n bind 127.0.0.1:{by_list} ssl crt-list {}\n default_backend b\nbackend b\n server s 127.0.0.1:{}\n",
        head(&pki),
        list.display(),
        echo_server("echo\n")
    );
    let (_g, _log) = start(tag, &cfg, by_dir);
    let served = |port, sni: Option<&str>| {
        reach(
            port,
            Hello {
                sni,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{sni:?}: {e}"))
        .1
        .served
    };
    // crt DIR: every bundle in name order, the first (a.example.test.pem) is the default.
    assert_eq!(served(by_dir, Some("a.example.test")), "a.example.test");
    assert_eq!(served(by_dir, Some("b.example.test")), "b.example.test");
    assert_eq!(served(by_dir, Some("q.example.test")), "*.example.test");
    assert_eq!(served(by_dir, None), "a.example.test");
    // crt-list: b's certificate answers its filters only.
    assert_eq!(served(by_list, Some("www.filtered.test")), "b.example.test");
    assert_eq!(served(by_list, Some("x.wild.test")), "b.example.test");
    assert_eq!(served(by_list, Some("b.example.test")), "a.example.test");
    assert_eq!(served(by_list, Some("a.example.test")), "a.example.test");
}

#[test]
fn alpn_version_and_routing_on_the_handshake() {
    let tag = "tls-alpn";
    let pki = pki_for(tag);
    let (p, v13) = (free_port(), free_port());
    let cfg = format!(
        "{}frontend f\n bind 127.0.0.1:{p} ssl crt crt/a.example.test.pem alpn h2,http/1.1\n bind 127.0.0.1:{v13} ssl crt crt/a.example.test.pem ssl-min-ver TLSv1.3 ciphers HIGH no-tlsv11\n use_backend h2 if {{ ssl_fc_alpn h2 }}\n use_backend tls12 if {{ ssl_fc_protocol TLSv1.2 }}\n default_backend other\nbackend h2\n server s 127.0.0.1:{}\nbackend tls12\n server s 127.0.0.1:{}\nbackend other\n server s 127.0.0.1:{}\n",
        head(&pki),
        echo_server("h2\n"),
        echo_server("tls12\n"),
        echo_server("other\n"),
    );
    let (_g, _log) = start(tag, &cfg, p);
    let hello = |alpn, tls12| Hello {
        sni: Some("a.example.test"),
        alpn,
        tls12,
        ..Default::default()
    };
    let (to, c) = reach(p, hello(&["h2", "http/1.1"], false)).unwrap();
    assert_eq!((to.as_str(), c.alpn().as_deref()), ("h2", Some("h2")));
    let (to, c) = reach(p, hello(&["http/1.1"], false)).unwrap();
    assert_eq!(
        (to.as_str(), c.alpn().as_deref()),
        ("other", Some("http/1.1"))
    );
    let (to, c) = reach(p, hello(&[], false)).unwrap();
    assert_eq!((to.as_str(), c.alpn()), ("other", None));
    // A protocol the bind does not offer: no agreement, no connection (RFC 7301).
    assert!(tls(p, hello(&["spdy/3"], false)).is_err());
    let (to, _) = reach(p, hello(&[], true)).unwrap();
    assert_eq!(to, "tls12");
    // ssl-min-ver TLSv1.3 refuses a TLS 1.2 client; the cipher options are ignored.
    assert!(tls(v13, hello(&[], true)).is_err());
    assert_eq!(reach(v13, hello(&[], false)).unwrap().0, "other");
}

#[test]
fn client_certificates_are_verified_and_routed() {
    let tag = "tls-client-cert";
    let pki = pki_for(tag);
    let (req, opt, sess) = (free_port(), free_port(), free_port());
    let cfg = format!(
        "{}frontend f\n bind 127.0.0.1:{req} ssl crt crt ca-file ca.crt verify required\n use_backend two if {{ ssl_c_s_dn -m end /CN=client2 }}\n use_backend by-sni if {{ ssl_fc_sni b.example.test }} {{ ssl_c_used }}\n default_backend one\nfrontend g\n bind 127.0.0.1:{opt} ssl crt crt ca-file ca.crt verify optional\n use_backend one if {{ ssl_c_used }}\n default_backend anonymous\nfrontend h\n bind 127.0.0.1:{sess} ssl crt crt ca-file ca.crt verify optional\n tcp-request session reject unless {{ ssl_c_used }}\n default_backend one\nbackend one\n server s 127.0.0.1:{}\nbackend two\n server s 127.0.0.1:{}\nbackend by-sni\n server s 127.0.0.1:{}\nbackend anonymous\n server s 127.0.0.1:{}\n",
        head(&pki),
        echo_server("one\n"),
        echo_server("two\n"),
        echo_server("by-sni\n"),
        echo_server("anonymous\n"),
    );
    let (_g, log) = start(tag, &cfg, req);
    let (client, client2, other) = (
        pki.join("client.pem"),
        pki.join("client2.pem"),
        pki.join("other-client.pem"),
    );
    let hello = |sni, cert| Hello {
        sni: Some(sni),
        cert,
        ..Default::default()
    };
    // verify required: no certificate, or one from another CA, is refused and logged PR with the
    // reason on an info line.
    assert!(reach(req, hello("a.example.test", None)).is_err());
    log.wait(&[" f f/<NOSRV> ", " PR "]);
    log.wait(&["TLS handshake refused", "client=127.0.0.1:", "frontend=f"]);
    assert!(reach(req, hello("a.example.test", Some(&other))).is_err());
    log.wait(&["TLS handshake refused", "UnknownIssuer"]);
    // The right ones go through, routed by the certificate's subject and by the SNI.
    let to = |sni, cert| reach(req, hello(sni, Some(cert))).unwrap().0;
    assert_eq!(to("a.example.test", &client), "one");
    assert_eq!(to("a.example.test", &client2), "two");
    assert_eq!(to("b.example.test", &client), "by-sni");
    assert_eq!(to("b.example.test", &client2), "two");
    log.wait(&[" f by-sni/s ", " -- ", "{b.example.test}"]);

    // verify optional: without a certificate is fine; a certificate is still verified.
    let to = |cert| reach(opt, hello("a.example.test", cert)).map(|r| r.0);
    assert_eq!(to(None).unwrap(), "anonymous");
    assert_eq!(to(Some(&client)).unwrap(), "one");
    assert!(to(Some(&other)).is_err());
    log.wait(&[" g g/<NOSRV> ", " PR "]);
    // tcp-request session rules run after the handshake and see its facts.
    assert!(reach(sess, hello("a.example.test", None)).is_err());
    log.wait(&[" h h/<NOSRV> ", " PR ", "{a.example.test}"]);
    assert_eq!(
        reach(sess, hello("a.example.test", Some(&client)))
            .unwrap()
            .0,
        "one"
    );
}

#[test]
fn handshake_timeout_and_garbage_are_logged() {
    let tag = "tls-hs-fail";
    let pki = pki_for(tag);
    let p = free_port();
    let cfg = format!(
        "{}frontend f\n bind 127.0.0.1:{p} ssl crt crt\n timeout client 1s\n default_backend b\nbackend b\n server s 127.0.0.1:{}\n",
        head(&pki),
        echo_server("echo\n")
    );
    let (_g, log) = start(tag, &cfg, p);
    // Silence: the handshake is bounded by timeout client (cR).
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(IO_LIMIT)).unwrap();
    let t0 = Instant::now();
    let mut b = [0u8; 16];
    assert!(matches!(s.read(&mut b), Ok(0) | Err(_)));
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    log.wait(&[" f f/<NOSRV> ", " cR "]);
    log.wait(&["TLS handshake timed out"]);
    // Not TLS at all (CR).
    assert!(reach_plain(p, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_err());
    log.wait(&[" f f/<NOSRV> ", " CR "]);
}

#[test]
fn tls_to_the_server_is_verified() {
    let tag = "tls-origin";
    let pki = pki_for(tag);
    let origin = tls_origin(&pki.join("origin.pem"));
    // Takes connections and never answers: a TLS handshake with it runs out of time.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<TcpStream> = silent.incoming().flatten().collect();
        drop(held);
    });
    let ports: Vec<u16> = (0..9).map(|_| free_port()).collect();
    let o = format!("127.0.0.1:{origin}");
    let cfg = format!(
        "{head}\
frontend term\n bind 127.0.0.1:{p0} ssl crt crt\n default_backend fwd-sni\n\
frontend term-vh\n bind 127.0.0.1:{p1} ssl crt crt\n default_backend sni-over-verifyhost\n\
frontend chain\n bind 127.0.0.1:{p2}\n default_backend chain\n\
frontend vh\n bind 127.0.0.1:{p3}\n default_backend verifyhost\n\
frontend bad-vh\n bind 127.0.0.1:{p4}\n default_backend bad-verifyhost\n\
frontend wrong-ca\n bind 127.0.0.1:{p5}\n default_backend wrong-ca\n\
frontend unverified\n bind 127.0.0.1:{p6}\n default_backend unverified\n\
frontend host\n bind 127.0.0.1:{p7}\n default_backend sni-from-host\n\
frontend silent\n bind 127.0.0.1:{p8}\n default_backend silent\n\
backend fwd-sni\n server o {o} ssl ca-file ca.crt sni ssl_fc_sni\n\
backend sni-over-verifyhost\n server o {o} ssl ca-file ca.crt sni ssl_fc_sni verifyhost nothing.example.test\n\
backend chain\n server o {o} ssl ca-file ca.crt\n\
backend verifyhost\n server o {o} ssl ca-file ca.crt verifyhost origin.example.test\n\
backend bad-verifyhost\n server o {o} ssl ca-file ca.crt verifyhost nothing.example.test\n\
backend wrong-ca\n server o {o} ssl ca-file other-ca.crt verifyhost origin.example.test\n\
backend unverified\n default-server ssl verify none\n server o {o}\n\
backend sni-from-host\n server o {o} ssl ca-file ca.crt sni req.hdr(host)\n\
backend silent\n timeout connect 1s\n server o 127.0.0.1:{silent_port} ssl ca-file ca.crt\n",
        head = head(&pki),
        p0 = ports[0],
        p1 = ports[1],
        p2 = ports[2],
        p3 = ports[3],
        p4 = ports[4],
        p5 = ports[5],
        p6 = ports[6],
        p7 = ports[7],
        p8 = ports[8],
    );
    let (_g, log) = start(tag, &cfg, ports[0]);
    let sni = |port, name| {
        reach(
            port,
            Hello {
                sni: Some(name),
                ..Default::default()
            },
        )
        .map(|r| r.0)
    };
    // Terminated, then TLS again with the client's SNI, checked against the origin's certificate.
    assert_eq!(
        sni(ports[0], "origin.example.test").unwrap(),
        "sni=origin.example.test"
    );
    // A name the origin's certificate does not have fails the check: SC, the client is closed.
    assert!(sni(ports[0], "a.example.test").is_err());
    log.wait(&[" term fwd-sni/o ", " SC ", "{a.example.test}"]);
    log.wait(&[
        "TLS to the server failed",
        "backend=fwd-sni",
        "not valid for name",
    ]);
    // With an SNI sent, that is the name checked, not verifyhost (as in HAProxy).
    assert_eq!(
        sni(ports[1], "origin.example.test").unwrap(),
        "sni=origin.example.test"
    );
    // No SNI: the chain alone; or the chain and the verifyhost name.
    assert_eq!(reach_plain(ports[2], b"").unwrap(), "sni=-");
    assert_eq!(reach_plain(ports[3], b"").unwrap(), "sni=-");
    assert!(reach_plain(ports[4], b"").is_err());
    log.wait(&[" bad-vh bad-verifyhost/o ", " SC "]);
    // The wrong CA: SC, and the reason on an info line.
    assert!(reach_plain(ports[5], b"").is_err());
    log.wait(&[" wrong-ca wrong-ca/o ", " SC "]);
    log.wait(&[
        "TLS to the server failed",
        "backend=wrong-ca",
        "UnknownIssuer",
    ]);
    // verify none (from default-server): anything goes.
    assert_eq!(reach_plain(ports[6], b"").unwrap(), "sni=-");
    // A server that never answers the handshake: timeout connect (sC).
    assert!(reach_plain(ports[8], b"").is_err());
    log.wait(&[" silent silent/o ", " sC "]);
    log.wait(&["TLS handshake with the server timed out", "backend=silent"]);
    // A plain client's Host header as the SNI: the frontend reads the request head for it, and the
    // head reaches the origin unchanged, after the handshake.
    let req = b"GET / HTTP/1.1\r\nHost: origin.example.test\r\n\r\n";
    let mut s = TcpStream::connect(("127.0.0.1", ports[7])).unwrap();
    s.set_read_timeout(Some(IO_LIMIT)).unwrap();
    s.write_all(req).unwrap();
    let mut got = vec![0u8; "sni=origin.example.test\n".len() + req.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("sni=origin.example.test\n{}", String::from_utf8_lossy(req))
    );
}

#[test]
fn tls_config_errors_name_file_line_and_fix() {
    let dir = std::env::temp_dir().join(format!("gh-tls-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pki = make_pki(&dir);
    let read = |p: &str| std::fs::read_to_string(pki.join(p)).unwrap();
    // A certificate without its key; a's certificate with b's key.
    let a = read("crt/a.example.test.pem");
    let b = read("crt/b.example.test.pem");
    let key_of = |pem: &str| pem[pem.find("-----BEGIN PRIVATE KEY").unwrap()..].to_string();
    let cert_of = |pem: &str| pem[..pem.find("-----BEGIN PRIVATE KEY").unwrap()].to_string();
    std::fs::write(dir.join("nokey.pem"), cert_of(&a)).unwrap();
    std::fs::write(dir.join("mismatch.pem"), cert_of(&a) + &key_of(&b)).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    // A certificate with its key beside it, as FILE.key (HAProxy's other layout).
    std::fs::write(dir.join("side.pem"), cert_of(&b)).unwrap();
    std::fs::write(dir.join("side.pem.key"), key_of(&b)).unwrap();
    // A key alone: no certificate in it.
    std::fs::write(dir.join("keyonly.pem"), key_of(&b)).unwrap();
    std::fs::write(
        dir.join("opts.list"),
        "crt/a.example.test.pem [alpn h2] a.test\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("neg.list"),
        "# x\ncrt/a.example.test.pem *.test !b.test\n",
    )
    .unwrap();
    let d = dir.display();
    let srv = |opts: &str| format!(" default_backend b\nbackend b\n server s 127.0.0.1:1 {opts}");
    // (what follows `frontend f`, the line of the error, what the message must say)
    let cases: Vec<(String, usize, Vec<String>)> = [
        (
            " bind 127.0.0.1:1 ssl crt /nonexistent/site.pem".to_string(),
            5,
            vec!["cannot read '/nonexistent/site.pem'"],
        ),
        (
            format!(" bind 127.0.0.1:1 ssl crt {d}/nokey.pem"),
            5,
            vec![
                "holds no private key",
                "put the key in the bundle or beside it",
            ],
        ),
        (
            format!(" bind 127.0.0.1:1 ssl crt {d}/mismatch.pem"),
            5,
            vec!["the private key for", "does not match its certificate"],
        ),
        (
            format!(" bind 127.0.0.1:1 ssl crt {d}/empty"),
            5,
            vec!["holds no certificate bundle"],
        ),
        (" bind 127.0.0.1:1 ssl".into(), 5, vec!["add 'crt FILE'"]),
        (
            " bind 127.0.0.1:1 ssl crt crt verify required".into(),
            5,
            vec![
                "'verify optional|required' needs the CA",
                "add 'ca-file FILE'",
            ],
        ),
        (
            format!(" bind 127.0.0.1:1 ssl crt crt ca-file {d}/keyonly.pem verify required"),
            5,
            vec!["holds no CA certificate"],
        ),
        (
            " bind 127.0.0.1:1 ssl crt crt ssl-min-ver TLSv1.1".into(),
            5,
            vec!["TLS 1.2 and 1.3 only", "write ssl-min-ver TLSv1.2"],
        ),
        (
            " bind 127.0.0.1:1 crt crt alpn h2".into(),
            5,
            vec!["TLS options without 'ssl'", "add 'ssl'"],
        ),
        (
            format!(" bind 127.0.0.1:1 ssl crt-list {d}/opts.list"),
            5,
            vec![
                format!("{d}/opts.list:1:").as_str(),
                "put alpn, verify and ca-file on the bind line",
            ],
        ),
        (
            format!(" bind 127.0.0.1:1 ssl crt-list {d}/neg.list"),
            5,
            vec![format!("{d}/neg.list:2:").as_str(), "negative SNI filters"],
        ),
        (
            srv("ssl"),
            7,
            vec![
                "verifies the server's certificate by default",
                "add 'ca-file FILE'",
                "verify none",
            ],
        ),
        (
            srv("ssl ca-file ca.crt verifyhost 10.0.0.1"),
            7,
            vec!["'verifyhost 10.0.0.1' is not a host name"],
        ),
        (
            srv("ssl ca-file ca.crt verify optional"),
            7,
            vec!["write verify none or verify required"],
        ),
        (
            " tcp-request connection reject if { ssl_c_used }".into(),
            5,
            vec!["use 'tcp-request session' or 'tcp-request content'"],
        ),
    ]
    .into_iter()
    .map(|(body, line, want)| (body, line, want.into_iter().map(str::to_string).collect()))
    .collect();
    for (i, (body, line, want)) in cases.iter().enumerate() {
        let file = dir.join(format!("case{i}.cfg"));
        std::fs::write(
            &file,
            format!(
                "global\n crt-base {p}\n ca-base {p}\nfrontend f\n{body}\n",
                p = pki.display()
            ),
        )
        .unwrap();
        let (code, err) = check(&file);
        let at = format!("{}:{line}: error: ", file.display());
        assert!(
            code == 1 && err.contains(&at) && want.iter().all(|w| err.contains(w)),
            "{body}: exit {code}, want {at} {want:?}:\n{err}"
        );
    }
    // And a good one checks, the ignored options drawing warnings.
    let good = dir.join("good.cfg");
    std::fs::write(
        &good,
        format!(
            "global\n crt-base {p}\n ca-base {p}\nfrontend f\n bind 127.0.0.1:1 ssl crt crt/a.example.test.pem crt crt crt {d}/side.pem ca-file ca.crt verify optional alpn h2,http/1.1 ssl-min-ver TLSv1.2 ciphers HIGH curves X25519 no-sslv3 no-tls-tickets prefer-client-ciphers\n default_backend b\nbackend b\n server s 127.0.0.1:1 ssl ca-file @system-ca sni ssl_fc_sni verifyhost x.test crt client.pem alpn http/1.1\n server t 127.0.0.1:2 ssl verify none no-ssl\n",
            p = pki.display(),
        ),
    )
    .unwrap();
    let (code, err) = check(&good);
    assert_eq!(code, 0, "{err}");
    for warning in [
        "'ciphers' is ignored: rustls offers only modern cipher suites",
        "'no-sslv3' is ignored: rustls never speaks SSLv3",
        "'no-tls-tickets' is ignored: gatehouse issues no stateless session tickets",
        "'prefer-client-ciphers' is ignored: rustls follows the client's cipher suite order",
    ] {
        assert!(
            err.contains(&format!(
                "{}:5: warning: bind option {warning}",
                good.display()
            )),
            "{warning}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reload_serves_the_replaced_certificate() {
    let tag = "tls-reload";
    let pki = pki_for(tag);
    let site = Gatehouse::dir_for(tag).join("site.pem");
    std::fs::copy(pki.join("crt/a.example.test.pem"), &site).unwrap();
    let p = free_port();
    let cfg = format!(
        "{}frontend f\n bind 127.0.0.1:{p} ssl crt {}\n default_backend b\nbackend b\n server s 127.0.0.1:{}\n",
        head(&pki),
        site.display(),
        echo_server("echo\n")
    );
    let (g, log) = start(tag, &cfg, p);
    let served = || {
        reach(p, Hello::default())
            .map(|(_, c)| c.served)
            .unwrap_or_else(|e| e)
    };
    assert_eq!(served(), "a.example.test");
    // A session opened before the reload keeps going.
    let (_, mut before) = reach(p, Hello::default()).unwrap();
    std::fs::copy(pki.join("crt/b.example.test.pem"), &site).unwrap();
    // Nothing changes until the reload.
    assert_eq!(served(), "a.example.test");
    g.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + IO_LIMIT;
    while served() != "b.example.test" {
        assert!(Instant::now() < deadline, "still serving {}", served());
        std::thread::sleep(Duration::from_millis(50));
    }
    before.s.write_all(b"after").unwrap();
    let mut back = [0u8; 5];
    before.s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"after");
    // A broken certificate makes the reload fail, and the last good one stays.
    std::fs::write(&site, "broken").unwrap();
    g.signal(nix::sys::signal::Signal::SIGHUP);
    log.wait(&["holds no certificate"]);
    assert_eq!(served(), "b.example.test");
}

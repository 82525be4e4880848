//! Health checks: one task per checked server, on the control thread, never on the data path.
//!
//! A check connects to the server's address (or `addr`/`port`) and, per the backend's check kind, is
//! done there (TCP), or sends an HTTP request and judges the status or body (`option httpchk`,
//! `http-check`), or sends a TLS ClientHello and expects a handshake record (`option ssl-hello-chk`), or
//! runs a `tcp-check` script; all within `timeout check` (default: `inter`). As in HAProxy, `fall` consecutive failures mark an up server down and `rise` consecutive
//! successes mark a down server up; checks run every `inter` while the state is steady, every
//! `fastinter` while it is changing, and every `downinter` while down. Servers start up. Changes are
//! logged in HAProxy's words on the log stream (standard output) and on standard error.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;

use crate::account::Runtime;
use crate::tls::ServerTls;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::model::{
    Check, CheckKind, Expect, ExpectWhat, HttpCheck, PortSpec, SendProxy, ServerTarget, TcpStep,
};

/// Runs every server's checks until the runtime it is spawned on stops.
pub async fn run(rt: Arc<Runtime>) {
    let mut tasks = tokio::task::JoinSet::new();
    for (bi, b) in rt.cfg.backends.iter().enumerate() {
        let checked = b
            .servers
            .iter()
            .filter(|s| s.check.is_some())
            .count()
            .max(1);
        for (si, s) in b.servers.iter().enumerate() {
            if let Some(c) = s.check {
                // Spread the first checks over one interval, as HAProxy does.
                let offset = c.inter.mul_f64(si as f64 / checked as f64);
                tasks.spawn(check_loop(rt.clone(), bi, si, c, offset));
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Where a server is checked; `None` when it has no address to check (yet).
async fn check_target(rt: &Runtime, bi: usize, si: usize, c: &Check) -> Option<SocketAddr> {
    let s = &rt.cfg.backends[bi].servers[si];
    if let Some((ip, port)) = rt.backends[bi].health[si].addr_override() {
        let configured = match &s.target {
            ServerTarget::Fixed(_, PortSpec::Fixed(p))
            | ServerTarget::Name {
                port: PortSpec::Fixed(p),
                ..
            } => Some(*p),
            _ => None,
        };
        return Some(SocketAddr::new(
            c.addr.unwrap_or(ip),
            c.port.or(port).or(configured)?,
        ));
    }
    let (ip, port): (Option<IpAddr>, Option<u16>) = match &s.target {
        ServerTarget::Fixed(ip, PortSpec::Fixed(p)) => (Some(*ip), Some(*p)),
        ServerTarget::Fixed(ip, _) => (Some(*ip), None),
        ServerTarget::Name { host, port } => {
            let p = match port {
                PortSpec::Fixed(p) => Some(*p),
                _ => None,
            };
            let ip = match &s.resolvers {
                Some((_, i)) => match rt.dns.sections.get(*i) {
                    Some(r) => r
                        .lookup(host)
                        .await
                        .ok()
                        .and_then(|a| a.addrs.first().copied()),
                    None => None,
                },
                None => rt
                    .start_addrs
                    .get(&(bi, si))
                    .and_then(|v| v.first().copied()),
            };
            (ip, p)
        }
        // The validator refuses checks on these.
        ServerTarget::OrigDst(_) | ServerTarget::Dynamic { .. } => (None, None),
    };
    Some(SocketAddr::new(c.addr.or(ip)?, c.port.or(port)?))
}

/// Why a check failed, in HAProxy's words: the layer and the detail.
struct Failed(&'static str, String);

/// A check's connection: plain TCP, or TLS over it (`check-ssl`).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Conn = Box<dyn Io>;

/// How a server's checks open their connections: TLS (its settings and the name to send) and a
/// PROXY header, as the server line says.
#[derive(Clone, Copy, Default)]
struct Wire<'a> {
    tls: Option<(&'a ServerTls, Option<&'a str>)>,
    proxy: Option<SendProxy>,
}

/// Connects, sends the PROXY header (before the TLS handshake, or inside TLS with `proxy-in-tls`),
/// and completes a TLS check's handshake (within `limit`, the check's own).
async fn open(to: SocketAddr, mark: u32, wire: Wire<'_>, limit: Duration) -> Result<Conn, Failed> {
    let mut tcp = connect(to, mark).await?;
    let header = wire
        .proxy
        .map(|p| crate::proxy_protocol::encode_local(p.v2, p.crc32c));
    // Inside TLS only when the server says so and the check speaks TLS; otherwise before anything.
    let inside = wire.proxy.is_some_and(|p| p.in_tls) && wire.tls.is_some();
    let sent =
        |e: std::io::Error| Failed("Layer4 connection problem", format!("PROXY header: {e}"));
    if let Some(h) = header.as_ref().filter(|_| !inside) {
        tcp.write_all(h).await.map_err(sent)?;
    }
    let Some((tls, sni)) = wire.tls else {
        return Ok(Box::new(tcp));
    };
    let mut s = crate::tls::handshake(tcp, tls, sni, to.ip(), limit)
        .await
        .map_err(|e| {
            Failed(
                "Layer6 invalid response",
                format!("SSL handshake failure: {e}"),
            )
        })?;
    if let Some(h) = header.as_ref().filter(|_| inside) {
        s.write_all(h).await.map_err(sent)?;
    }
    Ok(Box::new(s))
}

async fn connect(to: SocketAddr, mark: u32) -> Result<TcpStream, Failed> {
    let l4 = |e: String| Failed("Layer4 connection problem", e);
    let sock = if to.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| l4(format!("socket: {e}")))?;
    if mark != 0 {
        let _ = socket2::SockRef::from(&sock).set_mark(mark);
    }
    sock.connect(to).await.map_err(|e| {
        l4(match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
            _ => e.to_string(),
        })
    })
}

/// Reads until `done` says the bytes suffice, the peer closes, or 16 KiB.
async fn read_until(s: &mut Conn, buf: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    let mut chunk = [0u8; 4096];
    while !done(buf) && buf.len() < 16 * 1024 {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn matches(e: &Expect, status: Option<u16>, text: &str) -> bool {
    let hit = match &e.what {
        ExpectWhat::Status(ranges) => {
            status.is_some_and(|c| ranges.iter().any(|(a, b)| (*a..=*b).contains(&c)))
        }
        ExpectWhat::RStatus(re) => status.is_some_and(|c| re.is_match(&c.to_string())),
        ExpectWhat::String(sub) => text.contains(sub.as_str()),
        ExpectWhat::RString(re) => re.is_match(text),
    };
    hit != e.negate
}

async fn http_check(mut s: Conn, h: &HttpCheck) -> Result<(), Failed> {
    let mut req = format!("{} {} {}\r\n", h.method, h.uri, h.version);
    for (n, v) in &h.headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !h
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
    {
        req.push_str("Connection: close\r\n");
    }
    if !h.body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", h.body.len()));
    }
    req.push_str("\r\n");
    req.push_str(&h.body);
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| Failed("Layer4 connection problem", e.to_string()))?;
    let mut buf = Vec::new();
    let wants_body = matches!(
        h.expect.as_ref().map(|e| &e.what),
        Some(ExpectWhat::String(_) | ExpectWhat::RString(_))
    );
    read_until(&mut s, &mut buf, |b| {
        !wants_body && b.windows(2).any(|w| w == b"\r\n")
    })
    .await;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .strip_prefix("HTTP/")
        .and_then(|r| r.split(' ').nth(1))
        .and_then(|c| c.get(..3))
        .and_then(|c| c.parse::<u16>().ok());
    let Some(code) = status else {
        return Err(Failed(
            "Layer7 invalid response",
            "no HTTP status line".into(),
        ));
    };
    let ok = match &h.expect {
        None => (200..400).contains(&code),
        Some(e) => matches(e, Some(code), &text),
    };
    if ok {
        Ok(())
    } else {
        Err(Failed(
            "Layer7 wrong status",
            format!("HTTP status check returned code <{code}>"),
        ))
    }
}

/// A TLS 1.2-compatible ClientHello any current server answers with its ServerHello.
fn probe_hello() -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend([0x5a; 32]);
    body.push(0);
    // TLS 1.3 and common TLS 1.2 suites.
    let suites: [u16; 8] = [
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0x009c,
    ];
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for c in suites {
        body.extend(c.to_be_bytes());
    }
    body.extend([1, 0]);
    let mut ext = Vec::new();
    // supported_groups: x25519, secp256r1; signature_algorithms: rsa_pss, ecdsa, rsa_pkcs1.
    ext.extend([0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    ext.extend([
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x08, 0x04, 0x04, 0x03, 0x04, 0x01,
    ]);
    ext.extend([0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    crate::classify::tls::client_hello_record(&body)
}

async fn script(
    first: Conn,
    to: SocketAddr,
    steps: &[TcpStep],
    mark: u32,
    wire: Wire<'_>,
    limit: Duration,
) -> Result<(), Failed> {
    let mut s = first;
    let mut buf = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        match step {
            TcpStep::Connect(port) => {
                if i > 0 {
                    let at = SocketAddr::new(to.ip(), port.unwrap_or(to.port()));
                    s = open(at, mark, wire, limit).await?;
                    buf.clear();
                }
            }
            TcpStep::Send(bytes) => s
                .write_all(bytes)
                .await
                .map_err(|e| Failed("Layer4 connection problem", e.to_string()))?,
            TcpStep::Expect(e) => {
                read_until(&mut s, &mut buf, |b| {
                    matches(e, None, &String::from_utf8_lossy(b)) != e.negate
                })
                .await;
                if !matches(e, None, &String::from_utf8_lossy(&buf)) {
                    return Err(Failed(
                        "Layer7 invalid response",
                        format!("TCPCHK did not match content at step {}", i + 1),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// One check of the backend's kind, its connections opened as `wire` says; over TLS, a TCP check is
/// the handshake, and `option ssl-hello-chk`'s hello is the handshake too (`check-ssl` replaces it in
/// HAProxy).
async fn probe(
    kind: &CheckKind,
    to: SocketAddr,
    limit: Duration,
    mark: u32,
    wire: Wire<'_>,
) -> Result<(), Failed> {
    let work = async {
        let first_port = match kind {
            CheckKind::Script(steps) => match steps.first() {
                Some(TcpStep::Connect(Some(p))) => *p,
                _ => to.port(),
            },
            _ => to.port(),
        };
        let s = open(SocketAddr::new(to.ip(), first_port), mark, wire, limit).await?;
        match kind {
            CheckKind::Tcp => Ok(()),
            CheckKind::Http(h) => http_check(s, h).await,
            CheckKind::SslHello if wire.tls.is_some() => Ok(()),
            CheckKind::SslHello => {
                let mut s = s;
                s.write_all(&probe_hello())
                    .await
                    .map_err(|e| Failed("Layer4 connection problem", e.to_string()))?;
                let mut b = [0u8; 1];
                match s.read(&mut b).await {
                    Ok(1) if b[0] == 0x16 => Ok(()),
                    _ => Err(Failed(
                        "Layer6 invalid response",
                        "no TLS handshake in reply".into(),
                    )),
                }
            }
            CheckKind::Script(steps) => script(s, to, steps, mark, wire, limit).await,
        }
    };
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => Err(Failed("Layer4 timeout", "check timed out".into())),
    }
}

async fn check_loop(rt: Arc<Runtime>, bi: usize, si: usize, c: Check, offset: Duration) {
    let backend = &rt.cfg.backends[bi];
    let server = &backend.servers[si];
    let health = &rt.backends[bi].health[si];
    let limit = backend.timeout_check.unwrap_or(c.inter);
    let mark = rt.cfg.global.plumbing.outbound_mark;
    let wire = Wire {
        tls: (server.check_tls.as_deref()).map(|t| (t, server.check_sni.as_deref())),
        proxy: server.check_proxy,
    };
    let (mut oks, mut fails) = (0u32, 0u32);
    tokio::time::sleep(offset).await;
    loop {
        let up = health.up.load(Relaxed);
        let t0 = Instant::now();
        let result = match check_target(&rt, bi, si, &c).await {
            Some(to) => probe(&backend.check_kind, to, limit, mark, wire).await,
            None => Err(Failed(
                "Layer4 connection problem",
                "no address to check".into(),
            )),
        };
        let took = t0.elapsed().as_millis();
        match &result {
            Ok(_) => {
                oks += 1;
                fails = 0;
                if !up && oks >= c.rise {
                    health.up.store(true, Relaxed);
                    let now_ms = rt.started.elapsed().as_millis() as u64;
                    health.up_since_ms.store(now_ms.max(1), Relaxed);
                    let (a, b) = servers_up(&rt, bi);
                    let (_, layer) = passed(&backend.check_kind, wire.tls.is_some());
                    event(
                        &rt,
                        crate::log::NOTICE,
                        &format!(
                            "Server {}/{} is UP, reason: {layer}, check duration: {took}ms. {a} active and {b} backup servers online.",
                            backend.name, server.name
                        ),
                    );
                }
            }
            Err(Failed(reason, info)) => {
                fails += 1;
                oks = 0;
                if up && fails >= c.fall {
                    health.up.store(false, Relaxed);
                    health.went_down.fetch_add(1, Relaxed);
                    health.marked_down.send_modify(|n| *n += 1);
                    let (a, b) = servers_up(&rt, bi);
                    event(
                        &rt,
                        crate::log::ALERT,
                        &format!(
                            "Server {}/{} is DOWN, reason: {reason}, info: \"{info}\", check duration: {took}ms. {a} active and {b} backup servers left.",
                            backend.name, server.name
                        ),
                    );
                    if a + b == 0 {
                        event(
                            &rt,
                            crate::log::ALERT,
                            &format!("backend {} has no server available!", backend.name),
                        );
                    }
                }
            }
        }
        // What show stat and the stats page tell: the last check, and HAProxy's health counter
        // (rise + fall - 1 when fully up, one less per failure; while down, the successes so far).
        {
            let (status, desc, info) = match &result {
                Ok(_) => {
                    let (code, desc) = passed(&backend.check_kind, wire.tls.is_some());
                    (code, desc, String::new())
                }
                Err(Failed(reason, info)) => (
                    match *reason {
                        "Layer4 timeout" => "L4TOUT",
                        "Layer6 invalid response" => "L6RSP",
                        "Layer7 wrong status" => "L7STS",
                        "Layer7 invalid response" => "L7RSP",
                        _ => "L4CON",
                    },
                    *reason,
                    info.clone(),
                ),
            };
            if result.is_err() {
                health.checks_failed.fetch_add(1, Relaxed);
            }
            let now_up = health.up.load(Relaxed);
            let value = if now_up {
                (c.rise + c.fall - 1).saturating_sub(fails)
            } else {
                oks
            };
            let mut last = health.last_check.lock().unwrap_or_else(|e| e.into_inner());
            let changed = if now_up != up {
                Some(std::time::Instant::now())
            } else {
                last.as_ref().and_then(|l| l.changed)
            };
            *last = Some(crate::account::LastCheck {
                status,
                desc,
                info,
                duration_ms: took as u64,
                health: value,
                changed,
            });
        }
        let up = health.up.load(Relaxed);
        let changing = (up && fails > 0) || (!up && oks > 0);
        let pause = if changing {
            c.fastinter
        } else if up {
            c.inter
        } else {
            c.downinter
        };
        tokio::time::sleep(pause).await;
    }
}

/// A passed check in HAProxy's words: its `check_status` code and description. A TCP check over TLS
/// passed the handshake, at layer 6.
fn passed(kind: &CheckKind, tls: bool) -> (&'static str, &'static str) {
    match kind {
        CheckKind::Tcp if tls => ("L6OK", "Layer6 check passed"),
        CheckKind::Tcp => ("L4OK", "Layer4 check passed"),
        CheckKind::SslHello => ("L6OK", "Layer6 check passed"),
        CheckKind::Http(_) | CheckKind::Script(_) => ("L7OK", "Layer7 check passed"),
    }
}

/// Active and backup servers of a backend that are up and not in maintenance.
fn servers_up(rt: &Runtime, bi: usize) -> (usize, usize) {
    let b = &rt.cfg.backends[bi];
    let st = &rt.backends[bi];
    let mut n = (0, 0);
    for (i, s) in b.servers.iter().enumerate() {
        let h = &st.health[i];
        if h.up.load(Relaxed) && !h.maint.load(Relaxed) {
            if s.backup {
                n.1 += 1;
            } else {
                n.0 += 1;
            }
        }
    }
    n
}

/// A server state change: on the log stream, as HAProxy logs it, and on standard error.
fn event(rt: &Runtime, level: u8, msg: &str) {
    tracing::warn!("{msg}");
    crate::log::line(rt, level, msg);
}

//! Health checks: one task per checked server, on the control thread, never on the data path.
//!
//! A check is a TCP connect to the server's address (or `addr`/`port`) within `timeout check` (default:
//! `inter`). As in HAProxy, `fall` consecutive failures mark an up server down and `rise` consecutive
//! successes mark a down server up; checks run every `inter` while the state is steady, every
//! `fastinter` while it is changing, and every `downinter` while down. Servers start up. Changes are
//! logged in HAProxy's words on the log stream (standard output) and on standard error.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;

use crate::account::Runtime;
use crate::config::model::{Check, PortSpec, ServerTarget};

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

/// Outcome of one check: `Ok(duration)` or the reason it failed.
async fn probe(to: SocketAddr, limit: Duration, mark: u32) -> Result<Duration, String> {
    let t0 = Instant::now();
    let sock = if to.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if mark != 0 {
        let _ = socket2::SockRef::from(&sock).set_mark(mark);
    }
    match tokio::time::timeout(limit, sock.connect(to)).await {
        Ok(Ok(_)) => Ok(t0.elapsed()),
        Ok(Err(e)) => Err(match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
            _ => e.to_string(),
        }),
        Err(_) => Err("Connection timeout".into()),
    }
}

async fn check_loop(rt: Arc<Runtime>, bi: usize, si: usize, c: Check, offset: Duration) {
    let backend = &rt.cfg.backends[bi];
    let server = &backend.servers[si];
    let health = &rt.backends[bi].health[si];
    let limit = backend.timeout_check.unwrap_or(c.inter);
    let mark = rt.cfg.global.plumbing.outbound_mark;
    let (mut oks, mut fails) = (0u32, 0u32);
    tokio::time::sleep(offset).await;
    loop {
        let up = health.up.load(Relaxed);
        let t0 = Instant::now();
        let result = match check_target(&rt, bi, si, &c).await {
            Some(to) => probe(to, limit, mark).await,
            None => Err("no address to check".into()),
        };
        let took = t0.elapsed().as_millis();
        match result {
            Ok(_) => {
                oks += 1;
                fails = 0;
                if !up && oks >= c.rise {
                    health.up.store(true, Relaxed);
                    let now_ms = rt.started.elapsed().as_millis() as u64;
                    health.up_since_ms.store(now_ms.max(1), Relaxed);
                    let (a, b) = servers_up(&rt, bi);
                    event(&format!(
                        "Server {}/{} is UP, reason: Layer4 check passed, check duration: {took}ms. {a} active and {b} backup servers online.",
                        backend.name, server.name
                    ));
                }
            }
            Err(info) => {
                fails += 1;
                oks = 0;
                if up && fails >= c.fall {
                    health.up.store(false, Relaxed);
                    let (a, b) = servers_up(&rt, bi);
                    event(&format!(
                        "Server {}/{} is DOWN, reason: Layer4 connection problem, info: \"{info}\", check duration: {took}ms. {a} active and {b} backup servers left.",
                        backend.name, server.name
                    ));
                    if a + b == 0 {
                        event(&format!(
                            "backend {} has no server available!",
                            backend.name
                        ));
                    }
                }
            }
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
fn event(msg: &str) {
    tracing::warn!("{msg}");
    crate::log::line(msg);
}

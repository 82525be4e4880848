//! Resolve (the pipeline step after balance): the addresses a chosen server sends this connection to.
//!
//! A server is a fixed address, the original destination (`0.0.0.0`), a host name (resolved through
//! its `resolvers`, or once at start-up by the system resolver), or a name computed per connection
//! (`%[req.ssl_sni]`). Dynamic names pass the open-proxy guard ([`crate::guard`]) twice: the name
//! before it is resolved, and every address just before dialling. The frontend's dial mode decides
//! whether the name's addresses or the original destination is dialled.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;

use crate::account::Runtime;
use crate::addr::OrigDstAddr;
use crate::config::model::{
    Backend, Dial, Family, Frontend, PortSpec, Server, ServerTarget, UseSrc,
};
use crate::guard;
use crate::resolve::DnsError;
use crate::rules::sample::Facts;
use crate::session::{Cause, Stage, Termination};

/// Why a session gets no address, with what to tell the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A rule or policy said no (`PR`).
    #[error("{0}")]
    Policy(String),
    /// The server gives no usable address for this connection (`PC`).
    #[error("{0}")]
    Target(String),
    #[error("open-proxy guard: name '{name}': {why}")]
    GuardName { name: String, why: &'static str },
    #[error("open-proxy guard: {addr}: {why}")]
    GuardAddr { addr: IpAddr, why: &'static str },
    #[error("DNS: '{name}': {err}")]
    Dns { name: String, err: DnsError },
}

impl Refusal {
    pub fn termination(&self) -> Termination {
        match self {
            Refusal::Policy(_) => Termination::new(Cause::Proxy, Stage::Request),
            Refusal::Target(_) => Termination::new(Cause::Proxy, Stage::Connect),
            Refusal::GuardName { .. } => Termination::new(Cause::Guard, Stage::Request),
            Refusal::GuardAddr { .. } => Termination::new(Cause::Guard, Stage::Connect),
            Refusal::Dns { .. } => Termination::new(Cause::Dns, Stage::Connect),
        }
    }
}

/// The port a server's spec gives for this connection.
fn port_of(spec: PortSpec, orig: OrigDstAddr, server: &Server) -> Result<u16, Refusal> {
    match spec {
        PortSpec::Same => Ok(orig.port()),
        PortSpec::Fixed(p) => Ok(p),
        PortSpec::Offset(off) => u16::try_from(i32::from(orig.port()) + off)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                Refusal::Target(format!(
                    "server {}: port {} shifted by {off} is out of range",
                    server.name,
                    orig.port()
                ))
            }),
    }
}

/// The addresses to try, in order, for `server` of `backend`.
pub async fn addresses(
    rt: &Runtime,
    fe: &Frontend,
    (be, srv): (usize, usize),
    facts: &Facts<'_>,
) -> Result<Vec<SocketAddr>, Refusal> {
    let backend = &rt.cfg.backends[be];
    let server = &backend.servers[srv];
    let orig = OrigDstAddr::new(facts.dst);
    // An address set through the runtime API (`set server … addr`) wins over the configured one.
    if let Some((ip, port)) = rt.backends[be].health[srv].addr_override() {
        let spec = match &server.target {
            ServerTarget::Fixed(_, s) | ServerTarget::Name { port: s, .. } => *s,
            _ => crate::config::model::PortSpec::Same,
        };
        let port = match port {
            Some(p) => p,
            None => port_of(spec, orig, server)?,
        };
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (ips, port, dynamic): (Vec<IpAddr>, u16, bool) = match &server.target {
        ServerTarget::Fixed(ip, spec) => {
            return Ok(vec![SocketAddr::new(*ip, port_of(*spec, orig, server)?)]);
        }
        ServerTarget::OrigDst(spec) => {
            return Ok(vec![SocketAddr::new(
                orig.ip(),
                port_of(*spec, orig, server)?,
            )]);
        }
        ServerTarget::Name { host, port } => {
            let port = port_of(*port, orig, server)?;
            let ips = match &server.resolvers {
                Some((_, i)) => match rt.dns.sections.get(*i) {
                    Some(r) => match r.lookup(host).await {
                        Ok(a) => a.addrs.clone(),
                        Err(err) => match rt.start_addrs.get(&(be, srv)) {
                            Some(ips) => ips.clone(),
                            None => {
                                rt.policy.dns_failed.fetch_add(1, Relaxed);
                                return Err(Refusal::Dns {
                                    name: host.clone(),
                                    err,
                                });
                            }
                        },
                    },
                    None => Vec::new(),
                },
                None => rt.start_addrs.get(&(be, srv)).cloned().unwrap_or_default(),
            };
            if ips.is_empty() {
                rt.policy.dns_failed.fetch_add(1, Relaxed);
                return Err(Refusal::Dns {
                    name: host.clone(),
                    err: DnsError::NotFound,
                });
            }
            (ips, port, false)
        }
        ServerTarget::Dynamic { name, port } => {
            let port = port_of(*port, orig, server)?;
            let ips = match name.render(facts) {
                // No name (a fallback let the connection through): the original destination.
                None => vec![orig.ip()],
                Some(n) => dynamic_ips(rt, fe, backend, server, &n, orig).await?,
            };
            (ips, port, true)
        }
    };
    let mut addrs = Vec::with_capacity(ips.len());
    let mut refused = None;
    for ip in order(
        ips,
        server.prefer,
        family_bound(server, backend, facts.client),
    ) {
        if dynamic
            && let Some(why) =
                guard::bad_address(ip, &backend.allow_nets, crate::sys::is_local_address)
        {
            refused.get_or_insert(Refusal::GuardAddr { addr: ip, why });
            continue;
        }
        addrs.push(SocketAddr::new(ip, port));
    }
    match (addrs.is_empty(), refused) {
        (true, Some(r)) => {
            rt.policy.guard_refused.fetch_add(1, Relaxed);
            Err(r)
        }
        (true, None) => Err(Refusal::Target(format!(
            "server {}: no address of the client's family ({}) to connect from it",
            server.name,
            if facts.client.is_ipv4() {
                "IPv4"
            } else {
                "IPv6"
            }
        ))),
        (false, _) => Ok(addrs),
    }
}

/// The addresses of a name a client sent, after the name check and the frontend's dial mode.
async fn dynamic_ips(
    rt: &Runtime,
    fe: &Frontend,
    backend: &Backend,
    server: &Server,
    name: &str,
    orig: OrigDstAddr,
) -> Result<Vec<IpAddr>, Refusal> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let why = guard::bad_name(&name).or_else(|| {
        (!backend.allow_names.allows(&name)).then_some("not on the backend's allow-name list")
    });
    if let Some(why) = why {
        rt.policy.guard_refused.fetch_add(1, Relaxed);
        return Err(Refusal::GuardName { name, why });
    }
    if fe.dial == Dial::Original {
        return Ok(vec![orig.ip()]);
    }
    let resolver = server
        .resolvers
        .as_ref()
        .and_then(|(_, i)| rt.dns.sections.get(*i))
        .ok_or_else(|| Refusal::Target(format!("server {}: no resolvers", server.name)))?;
    let answer = match resolver.lookup(&name).await {
        Ok(a) => a,
        Err(err) => {
            rt.policy.dns_failed.fetch_add(1, Relaxed);
            return Err(Refusal::Dns { name, err });
        }
    };
    if fe.dial == Dial::RequireMatch {
        if answer.addrs.contains(&orig.ip()) {
            return Ok(vec![orig.ip()]);
        }
        rt.policy.mismatch.fetch_add(1, Relaxed);
        return Err(Refusal::Policy(format!(
            "require-match: the client connected to {} but '{name}' is {:?}",
            orig.ip(),
            answer.addrs
        )));
    }
    Ok(answer.addrs.clone())
}

/// The one family outbound connections must use when they take the client's address as source.
fn family_bound(server: &Server, backend: &Backend, client: SocketAddr) -> Option<Family> {
    let source = server.source.as_ref().or(backend.source.as_ref())?;
    match source.usesrc {
        Some(UseSrc::ClientIp | UseSrc::Client) => Some(if client.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }),
        Some(UseSrc::Addr(a)) => Some(if a.is_ipv4() { Family::V4 } else { Family::V6 }),
        None if !source.addr.ip().is_unspecified() => Some(if source.addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }),
        None => None,
    }
}

/// Orders addresses for happy eyeballs (RFC 8305): the preferred family first (IPv6 unless
/// `resolve-prefer ipv4`), then alternating; only `only`'s family when the source forces one.
pub fn order(ips: Vec<IpAddr>, prefer: Option<Family>, only: Option<Family>) -> Vec<IpAddr> {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let ips: Vec<IpAddr> = ips.into_iter().map(canon).collect();
    let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = ips.into_iter().partition(IpAddr::is_ipv4);
    let (first, second) = match only.or(prefer).unwrap_or(Family::V6) {
        Family::V4 => (v4, v6),
        Family::V6 => (v6, v4),
    };
    if only.is_some() {
        return first;
    }
    let mut out = Vec::with_capacity(first.len() + second.len());
    let (mut a, mut b) = (first.into_iter(), second.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
    out
}

/// A server name that cannot be resolved at start-up.
#[derive(Debug, thiserror::Error)]
#[error(
    "backend '{backend}', server '{server}': cannot resolve '{host}' at start-up ({err}); fix the name or its DNS, or add 'init-addr none' (or 'init-addr ADDR') to start without it"
)]
pub struct StartError {
    pub backend: String,
    pub server: String,
    pub host: String,
    pub err: String,
}

/// Resolves every server given by name before the first connection: through its `resolvers`
/// first, then its `init-addr` methods in order (`libc`: the system resolver; `none`: start
/// without an address; an IP: use it until the name resolves). Without `resolvers` the name is
/// resolved here only, as HAProxy does with `init-addr libc`.
pub async fn resolve_at_start(rt: &mut Runtime) -> Result<(), StartError> {
    let cfg = rt.cfg.clone();
    for (bi, b) in cfg.backends.iter().enumerate() {
        for (si, s) in b.servers.iter().enumerate() {
            let ServerTarget::Name { host, .. } = &s.target else {
                continue;
            };
            let mut last_err = String::from("no method left");
            if let Some((_, i)) = &s.resolvers
                && let Some(r) = rt.dns.sections.get(*i)
            {
                match r.lookup(host).await {
                    Ok(a) => {
                        tracing::info!(backend = %b.name, server = %s.name, host, addrs = ?a.addrs, "resolved");
                        continue;
                    }
                    Err(e) => last_err = e.to_string(),
                }
            }
            let methods = if s.init_addr.is_empty() && s.resolvers.is_none() {
                vec![crate::config::model::InitAddr::Libc]
            } else {
                s.init_addr.clone()
            };
            let mut done = false;
            for m in methods {
                use crate::config::model::InitAddr;
                match m {
                    InitAddr::Last => {}
                    InitAddr::None => {
                        tracing::warn!(backend = %b.name, server = %s.name, host, error = %last_err, "starting without an address (init-addr none)");
                        done = true;
                    }
                    InitAddr::Ip(ip) => {
                        rt.start_addrs.insert((bi, si), vec![ip]);
                        done = true;
                    }
                    InitAddr::Libc => match tokio::net::lookup_host((host.as_str(), 0)).await {
                        Ok(it) => {
                            let mut ips: Vec<IpAddr> = it.map(|a| a.ip()).collect();
                            ips.dedup();
                            if !ips.is_empty() {
                                tracing::info!(backend = %b.name, server = %s.name, host, addrs = ?ips, "resolved by the system resolver");
                                rt.start_addrs.insert((bi, si), ips);
                                done = true;
                            }
                        }
                        Err(e) => last_err = e.to_string(),
                    },
                }
                if done {
                    break;
                }
            }
            if !done {
                return Err(StartError {
                    backend: b.name.clone(),
                    server: s.name.clone(),
                    host: host.clone(),
                    err: last_err,
                });
            }
        }
    }
    Ok(())
}

/// Keeps every server name with `resolvers` fresh: re-resolves it when its answer expires and logs
/// when its addresses change. Runs until the runtime it was spawned on stops.
pub async fn watch_names(rt: std::sync::Arc<Runtime>) {
    let mut tasks = tokio::task::JoinSet::new();
    for b in &rt.cfg.backends {
        for s in &b.servers {
            let (ServerTarget::Name { host, .. }, Some((_, i))) = (&s.target, &s.resolvers) else {
                continue;
            };
            let Some(r) = rt.dns.sections.get(*i).cloned() else {
                continue;
            };
            let (backend, server, host) = (b.name.clone(), s.name.clone(), host.clone());
            tasks.spawn(async move {
                let mut last: Option<Vec<IpAddr>> = None;
                let mut failing = false;
                loop {
                    let wait = match r.lookup(&host).await {
                        Ok(a) => {
                            if std::mem::take(&mut failing) {
                                tracing::info!(backend, server, host, "resolves again");
                            }
                            if last.as_ref() != Some(&a.addrs) {
                                if let Some(prev) = &last {
                                    tracing::info!(backend, server, host, was = ?prev, now = ?a.addrs, "server address changed");
                                }
                                last = Some(a.addrs.clone());
                            }
                            a.fresh_until.saturating_duration_since(std::time::Instant::now())
                        }
                        Err(e) => {
                            // Once per failing streak, not every second.
                            if !std::mem::replace(&mut failing, true) {
                                tracing::warn!(backend, server, host, error = %e, "cannot resolve");
                            }
                            std::time::Duration::ZERO
                        }
                    };
                    tokio::time::sleep(wait.max(std::time::Duration::from_secs(1))).await;
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happy_eyeballs_order() {
        let ips: Vec<IpAddr> = [
            "192.0.2.1",
            "2001:db8::1",
            "192.0.2.2",
            "2001:db8::2",
            "::ffff:192.0.2.3",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let s = |v: Vec<IpAddr>| {
            v.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            s(order(ips.clone(), None, None)),
            "2001:db8::1 192.0.2.1 2001:db8::2 192.0.2.2 192.0.2.3"
        );
        assert_eq!(
            s(order(ips.clone(), Some(Family::V4), None)),
            "192.0.2.1 2001:db8::1 192.0.2.2 2001:db8::2 192.0.2.3"
        );
        assert_eq!(
            s(order(ips, None, Some(Family::V4))),
            "192.0.2.1 192.0.2.2 192.0.2.3"
        );
    }
}

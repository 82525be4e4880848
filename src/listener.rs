//! Accept: binds every `bind` line (IP_TRANSPARENT where asked) and runs the accept loops, holding a
//! global and a frontend `maxconn` permit per session, as HAProxy pauses accepting at its limits.
//!
//! Binding happens before the plumbing is installed, so no diverted packet ever finds no listener.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::TcpListener;

use crate::account::Runtime;
use crate::addr::ListenAddr;
use crate::config::Config;
use crate::config::model::Bind;

#[derive(Debug, thiserror::Error)]
#[error("{pos}: cannot bind {addr}: {err}{hint}")]
pub struct BindError {
    pub pos: String,
    pub addr: SocketAddr,
    pub err: io::Error,
    pub hint: &'static str,
}

/// A bound listener and the frontend it feeds.
#[derive(Debug)]
pub struct Bound {
    pub frontend: usize,
    /// The bind line's index in its frontend.
    pub bind: usize,
    pub addr: ListenAddr,
    pub listener: TcpListener,
}

fn bind_one(b: &Bind, addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // Explicit either way, so the socket matches the model (and the plumbing planned from it)
        // whatever the host's net.ipv6.bindv6only says: [::] is dual-stack unless `v6only`.
        s.set_only_v6(b.v6only.unwrap_or(false))?;
    }
    if b.transparent {
        crate::sys::set_transparent(SockRef::from(&s), addr.is_ipv6())?;
    }
    s.bind(&addr.into())?;
    s.listen(b.backlog.map_or(1024, |n| n as i32))?;
    Ok(s.into())
}

/// One bind line's sockets: `copies` of them sharing the address with SO_REUSEPORT, one per worker
/// thread, so the kernel spreads connections over the threads without any hand-off between them.
#[derive(Debug)]
pub struct StdBound {
    pub frontend: usize,
    /// The bind line's index in its frontend.
    pub bind: usize,
    /// The address as the `bind` line wrote it (port 0 stays 0): what a reload matches on.
    pub key: SocketAddr,
    pub addr: ListenAddr,
    pub sockets: Vec<std::net::TcpListener>,
}

/// Binds every listener of the config, `copies` sockets each. Needs no runtime.
pub fn bind_all_std(cfg: &Config, copies: usize) -> Result<Vec<StdBound>, BindError> {
    bind_std_except(cfg, copies, |_| false)
}

/// Binds the `bind` lines of `cfg` whose configured address `held` says is not bound already (a
/// reload keeps the sockets it has).
pub fn bind_std_except(
    cfg: &Config,
    copies: usize,
    held: impl Fn(SocketAddr) -> bool,
) -> Result<Vec<StdBound>, BindError> {
    let mut out = Vec::new();
    for (fi, fe) in cfg.frontends.iter().enumerate() {
        for (bi, b) in fe.binds.iter().enumerate().filter(|(_, b)| !held(b.addr)) {
            let err = |err: io::Error| {
                let hint = match err.raw_os_error() {
                    Some(libc::EPERM) | Some(libc::EACCES) => {
                        "; transparent and low-port binds need root or CAP_NET_ADMIN + CAP_NET_BIND_SERVICE"
                    }
                    Some(libc::EADDRINUSE) => "; another process (or another bind line) holds it",
                    Some(libc::EADDRNOTAVAIL) => {
                        "; the address is not on this host (add 'transparent' to bind a foreign one)"
                    }
                    _ => "",
                };
                BindError {
                    pos: b.pos.to_string(),
                    addr: b.addr,
                    err,
                    hint,
                }
            };
            let reuse = copies > 1;
            let first = bind_one(b, b.addr, reuse).map_err(err)?;
            // The bound address, with the real port when the config said 0: the copies join it.
            let addr = first.local_addr().map_err(err)?;
            let mut sockets = vec![first];
            for _ in 1..copies {
                sockets.push(bind_one(b, addr, reuse).map_err(err)?);
            }
            out.push(StdBound {
                frontend: fi,
                bind: bi,
                key: b.addr,
                addr: ListenAddr::new(addr),
                sockets,
            });
        }
    }
    Ok(out)
}

/// Binds every listener of the config once; must run inside the tokio runtime (tests use it).
pub fn bind_all(cfg: &Config) -> Result<Vec<Bound>, BindError> {
    let mut out = Vec::new();
    for sb in bind_all_std(cfg, 1)? {
        for s in sb.sockets {
            out.push(Bound::from_std(sb.frontend, sb.bind, sb.addr, s)?);
        }
    }
    Ok(out)
}

impl Bound {
    /// Registers a bound socket with the current runtime.
    pub fn from_std(
        frontend: usize,
        bind: usize,
        addr: ListenAddr,
        s: std::net::TcpListener,
    ) -> Result<Bound, BindError> {
        let listener = TcpListener::from_std(s).map_err(|err| BindError {
            pos: String::from("listener"),
            addr: addr.get(),
            err,
            hint: "",
        })?;
        Ok(Bound {
            frontend,
            bind,
            addr,
            listener,
        })
    }
}

/// Accepts on one listener until the task is aborted.
pub async fn accept_loop(rt: Arc<Runtime>, bound: Bound) {
    accept_on(
        rt,
        (bound.frontend, bound.bind),
        bound.addr,
        Arc::new(bound.listener),
    )
    .await;
}

/// The runtime API's frontend commands: pausing and resuming a frontend's listeners.
pub const COMMANDS: &[crate::cli::Command] = &[
    crate::cli::Command {
        words: &["disable", "frontend"],
        level: crate::config::model::CliLevel::Admin,
        help: "<frontend> : stop taking connections (they wait in the listen backlog)",
        run: disable_frontend,
    },
    crate::cli::Command {
        words: &["enable", "frontend"],
        level: crate::config::model::CliLevel::Admin,
        help: "<frontend> : take connections again",
        run: enable_frontend,
    },
];

fn frontend_ref(rt: &Runtime, args: &[&str]) -> Result<usize, String> {
    let [name] = args else {
        return Err("A frontend name is expected.".into());
    };
    rt.cfg
        .frontends
        .iter()
        .position(|f| f.name == *name)
        .ok_or_else(|| "No such frontend.".into())
}

fn disable_frontend(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let fe = frontend_ref(rt, args)?;
    rt.frontends[fe].paused.send_replace(true);
    tracing::warn!(
        "Proxy {} paused by 'disable frontend'.",
        rt.cfg.frontends[fe].name
    );
    Ok(String::new())
}

fn enable_frontend(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let fe = frontend_ref(rt, args)?;
    rt.frontends[fe].paused.send_replace(false);
    tracing::warn!(
        "Proxy {} resumed by 'enable frontend'.",
        rt.cfg.frontends[fe].name
    );
    Ok(String::new())
}

/// Accepts on a listener shared with the next configuration's loop (a reload stops this loop and
/// starts another on the same socket: nothing is refused meanwhile, connections wait in the
/// backlog).
pub async fn accept_on(
    rt: Arc<Runtime>,
    (fe, bind): (usize, usize),
    addr: ListenAddr,
    listener: Arc<TcpListener>,
) {
    let port = addr.port();
    let global = rt.limit.clone();
    let local = rt.frontends[fe].limit.clone();
    let mut paused = rt.frontends[fe].paused.subscribe();
    loop {
        // `disable frontend`: take nothing until `enable frontend`.
        let is_paused = *paused.borrow_and_update();
        if is_paused && paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        // While a limit is reached, stop accepting: connections wait in the kernel's backlog. An idle
        // listener holds no slot, so several listeners of one frontend share its maxconn.
        if global.available_permits() == 0 || local.available_permits() == 0 {
            let (Ok(g), Ok(l)) = (global.acquire().await, local.acquire().await) else {
                return;
            };
            drop((g, l));
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = paused.changed() => continue,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Normally immediate; another listener may have taken the last slot since the
                // check, and then this one connection waits for a slot (and this listener with it).
                let (Ok(g), Ok(l)) = (
                    global.clone().acquire_owned().await,
                    local.clone().acquire_owned().await,
                ) else {
                    return;
                };
                let session_rt = rt.clone();
                crate::sessions::spawn(&rt, fe, peer, async move {
                    let run = crate::session::run(session_rt, (fe, bind), (stream, peer), port);
                    if let Some(quiet) = run.await {
                        crate::forward::park::park(quiet, Some((g, l)));
                    }
                });
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning; the process lives on.
                tracing::warn!(listener = %addr, "accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

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
    pub addr: ListenAddr,
    pub listener: TcpListener,
}

fn bind_one(b: &Bind) -> io::Result<std::net::TcpListener> {
    let domain = if b.addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if b.addr.is_ipv6()
        && let Some(only) = b.v6only
    {
        s.set_only_v6(only)?;
    }
    if b.transparent {
        crate::sys::set_transparent(SockRef::from(&s), b.addr.is_ipv6())?;
    }
    s.bind(&b.addr.into())?;
    s.listen(b.backlog.map_or(1024, |n| n as i32))?;
    Ok(s.into())
}

/// Binds every listener of the config; must run inside the tokio runtime.
pub fn bind_all(cfg: &Config) -> Result<Vec<Bound>, BindError> {
    let mut out = Vec::new();
    for (fi, fe) in cfg.frontends.iter().enumerate() {
        for b in &fe.binds {
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
            let std_listener = bind_one(b).map_err(err)?;
            let listener = TcpListener::from_std(std_listener).map_err(err)?;
            // The bound address, with the real port when the config said 0.
            let addr = listener.local_addr().map_err(err)?;
            out.push(Bound {
                frontend: fi,
                addr: ListenAddr::new(addr),
                listener,
            });
        }
    }
    Ok(out)
}

/// Accepts on one listener until the task is aborted.
pub async fn accept_loop(rt: Arc<Runtime>, bound: Bound) {
    let fe = bound.frontend;
    let port = bound.addr.port();
    loop {
        // Limits first: while a limit is reached, connections wait in the kernel's backlog.
        let Ok(global) = rt.limit.clone().acquire_owned().await else {
            return;
        };
        let Ok(local) = rt.frontends[fe].limit.clone().acquire_owned().await else {
            return;
        };
        match bound.listener.accept().await {
            Ok((stream, _)) => {
                let rt = rt.clone();
                tokio::spawn(async move {
                    crate::session::run(rt, fe, stream, port).await;
                    drop((global, local));
                });
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning; the process lives on.
                tracing::warn!(listener = %bound.addr, "accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

//! Connect: the outbound socket. Resolves where a server points (a fixed address or the original
//! destination), applies `source … usesrc` (binding the client's IP with IP_TRANSPARENT), marks the
//! socket so the plumbing never diverts its packets, and connects within `timeout connect`.

use std::io;
use std::net::SocketAddr;

use socket2::SockRef;
use tokio::net::{TcpSocket, TcpStream};

use crate::account::Runtime;
use crate::addr::{ClientAddr, OrigDstAddr, ServerAddr};
use crate::config::model::{Backend, PortSpec, Server, ServerTarget, Source, UseSrc};
use crate::config::validate::DEFAULT_TIMEOUT_CONNECT;
use crate::session::{Cause, Stage, Termination};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("server {server}: port {port} shifted by {offset} is out of range")]
    BadPort {
        server: String,
        port: u16,
        offset: i32,
    },
    #[error(
        "server {server}: cannot use source {source_addr} to reach {target}: address families differ"
    )]
    FamilyMismatch {
        server: String,
        source_addr: SocketAddr,
        target: ServerAddr,
    },
    #[error("server {server}: cannot create or bind the outbound socket: {err}")]
    Socket { server: String, err: io::Error },
    #[error("server {server} ({target}): connect: {err}")]
    Refused {
        server: String,
        target: ServerAddr,
        err: io::Error,
    },
    #[error("server {server} ({target}): connect timed out")]
    Timeout { server: String, target: ServerAddr },
}

impl ConnectError {
    /// The termination code HAProxy would log for this failure.
    pub fn termination(&self) -> Termination {
        let cause = match self {
            ConnectError::BadPort { .. } | ConnectError::FamilyMismatch { .. } => Cause::Proxy,
            ConnectError::Socket { .. } => Cause::Resource,
            ConnectError::Refused { .. } => Cause::ServerAbort,
            ConnectError::Timeout { .. } => Cause::ServerTimeout,
        };
        Termination::new(cause, Stage::Connect)
    }
}

/// Where a server sends this connection.
pub fn target(server: &Server, orig_dst: OrigDstAddr) -> Result<ServerAddr, ConnectError> {
    let addr = match server.target {
        ServerTarget::Fixed(a) => a,
        ServerTarget::OrigDst(spec) => {
            let port = match spec {
                PortSpec::Same => orig_dst.port(),
                PortSpec::Fixed(p) => p,
                PortSpec::Offset(off) => u16::try_from(i32::from(orig_dst.port()) + off)
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| ConnectError::BadPort {
                        server: server.name.clone(),
                        port: orig_dst.port(),
                        offset: off,
                    })?,
            };
            SocketAddr::new(orig_dst.ip(), port)
        }
    };
    Ok(ServerAddr::new(addr))
}

/// The local address to bind, and whether it is foreign (needs IP_TRANSPARENT).
fn local_bind(source: &Source, client: ClientAddr) -> Option<(SocketAddr, bool)> {
    match source.usesrc {
        Some(UseSrc::ClientIp) => Some((SocketAddr::new(client.ip(), 0), true)),
        Some(UseSrc::Client) => Some((client.get(), true)),
        Some(UseSrc::Addr(a)) => Some((a, true)),
        None if source.addr.ip().is_unspecified() && source.addr.port() == 0 => None,
        None => Some((source.addr, false)),
    }
}

pub async fn connect(
    rt: &Runtime,
    backend: &Backend,
    server: &Server,
    client: ClientAddr,
    target: ServerAddr,
) -> Result<TcpStream, ConnectError> {
    let sock_err = |err| ConnectError::Socket {
        server: server.name.clone(),
        err,
    };
    let sock = if target.get().is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(sock_err)?;
    let sref = SockRef::from(&sock);
    let mark = rt.cfg.global.plumbing.outbound_mark;
    if mark != 0 {
        sref.set_mark(mark).map_err(sock_err)?;
    }
    let _ = sref.set_tcp_nodelay(true);
    if let Some(source) = server.source.as_ref().or(backend.source.as_ref())
        && let Some((local, foreign)) = local_bind(source, client)
    {
        if local.is_ipv4() != target.get().is_ipv4() {
            return Err(ConnectError::FamilyMismatch {
                server: server.name.clone(),
                source_addr: local,
                target,
            });
        }
        if foreign {
            crate::sys::set_transparent(sref, local.is_ipv6()).map_err(sock_err)?;
        }
        if local.port() == 0 && local.is_ipv4() {
            let _ = crate::sys::set_bind_address_no_port(&sock);
        }
        sock.bind(local).map_err(sock_err)?;
    }
    let timeout = backend.timeout_connect.unwrap_or(DEFAULT_TIMEOUT_CONNECT);
    match tokio::time::timeout(timeout, sock.connect(target.get())).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(err)) => Err(ConnectError::Refused {
            server: server.name.clone(),
            target,
            err,
        }),
        Err(_) => Err(ConnectError::Timeout {
            server: server.name.clone(),
            target,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pos;

    fn server(target: ServerTarget) -> Server {
        Server {
            name: "s".into(),
            pos: Pos {
                file: "t".into(),
                line: 1,
            },
            target,
            source: None,
        }
    }

    #[test]
    fn targets_follow_haproxy_port_rules() {
        let dst = OrigDstAddr::new("192.0.2.9:443".parse().unwrap());
        let t = |spec| target(&server(ServerTarget::OrigDst(spec)), dst).map(|a| a.to_string());
        assert_eq!(t(PortSpec::Same).unwrap(), "192.0.2.9:443");
        assert_eq!(t(PortSpec::Fixed(8443)).unwrap(), "192.0.2.9:8443");
        assert_eq!(t(PortSpec::Offset(1000)).unwrap(), "192.0.2.9:1443");
        assert!(t(PortSpec::Offset(-443)).is_err());
        assert!(t(PortSpec::Offset(70000)).is_err());
        let fixed = server(ServerTarget::Fixed("10.1.1.1:80".parse().unwrap()));
        assert_eq!(target(&fixed, dst).unwrap().to_string(), "10.1.1.1:80");
    }

    #[test]
    fn usesrc_binds() {
        let client = ClientAddr::new("198.51.100.4:5555".parse().unwrap());
        let src = |usesrc, addr: &str| Source {
            addr: addr.parse().unwrap(),
            usesrc,
        };
        assert_eq!(
            local_bind(&src(Some(UseSrc::ClientIp), "0.0.0.0:0"), client),
            Some(("198.51.100.4:0".parse().unwrap(), true))
        );
        assert_eq!(
            local_bind(&src(Some(UseSrc::Client), "0.0.0.0:0"), client),
            Some(("198.51.100.4:5555".parse().unwrap(), true))
        );
        assert_eq!(local_bind(&src(None, "0.0.0.0:0"), client), None);
        assert_eq!(
            local_bind(&src(None, "10.0.0.1:0"), client),
            Some(("10.0.0.1:0".parse().unwrap(), false))
        );
    }
}

//! Connect: the outbound socket. Applies `source … usesrc` (binding the client's IP with
//! IP_TRANSPARENT), marks the socket so the plumbing never diverts its packets, and connects within
//! `timeout connect`. With several addresses (a name with A and AAAA records), attempts start
//! [`HAPPY_EYEBALLS_DELAY`] apart and the first to connect wins (RFC 8305).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::account::Runtime;
use crate::addr::{ClientAddr, ServerAddr};
use crate::config::model::{Backend, Server, Source, UseSrc};
use crate::config::validate::DEFAULT_TIMEOUT_CONNECT;
use crate::session::{Cause, Stage, Termination};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
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
    /// Whether another attempt could go differently (the server refused or did not answer), as
    /// opposed to a local problem.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ConnectError::Refused { .. } | ConnectError::Timeout { .. }
        )
    }

    /// The termination code HAProxy would log for this failure.
    pub fn termination(&self) -> Termination {
        let cause = match self {
            ConnectError::FamilyMismatch { .. } => Cause::Proxy,
            ConnectError::Socket { .. } => Cause::Resource,
            ConnectError::Refused { .. } => Cause::ServerAbort,
            ConnectError::Timeout { .. } => Cause::ServerTimeout,
        };
        Termination::new(cause, Stage::Connect)
    }
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
    let sock = outbound_socket(target.get()).map_err(sock_err)?;
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
        sock.bind(&local.into()).map_err(sock_err)?;
    }
    let timeout = backend.timeout_connect.unwrap_or(DEFAULT_TIMEOUT_CONNECT);
    match tokio::time::timeout(timeout, connect_socket(sock, target.get())).await {
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

/// A non-blocking TCP socket of `to`'s family.
fn outbound_socket(to: SocketAddr) -> io::Result<Socket> {
    Socket::new(
        Domain::for_address(to),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )
}

/// Connects a non-blocking socket and waits until the connection is made or has failed.
///
/// tokio's own `TcpSocket::connect` asks the socket for its error (`getsockopt(SO_ERROR)`) after
/// every connect; here that system call is made only when epoll reported an error or a hang-up with
/// the writability, which is how a failed connect shows (ECONNREFUSED, EHOSTUNREACH, …). A made
/// connection reports plain writability, and costs nothing more.
async fn connect_socket(sock: Socket, to: SocketAddr) -> io::Result<TcpStream> {
    match sock.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(sock))?;
    let ready = stream.ready(Interest::WRITABLE | Interest::ERROR).await?;
    // An error flag with no error left to read: whatever it was, the first read or write will tell.
    if (ready.is_error() || ready.is_write_closed())
        && let Some(e) = stream.take_error()?
    {
        return Err(e);
    }
    Ok(stream)
}

/// How long an attempt may go unanswered before the next address is tried alongside it (RFC 8305's
/// recommended Connection Attempt Delay).
pub const HAPPY_EYEBALLS_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

/// Connects to the first of `addrs` that answers, starting attempts [`HAPPY_EYEBALLS_DELAY`] apart
/// (at once after a failure). The error is the last attempt's.
pub async fn connect_any(
    rt: &Runtime,
    backend: &Backend,
    server: &Server,
    client: ClientAddr,
    addrs: &[SocketAddr],
) -> Result<(TcpStream, ServerAddr), ConnectError> {
    use futures_util::StreamExt;
    use futures_util::stream::FuturesUnordered;

    let attempt = |a: SocketAddr| async move {
        let target = ServerAddr::new(a);
        connect(rt, backend, server, client, target)
            .await
            .map(|s| (s, target))
    };
    if let [only] = addrs {
        return attempt(*only).await;
    }
    let mut pending = FuturesUnordered::new();
    let mut next = addrs.iter().copied();
    let mut last_err = None;
    loop {
        if pending.is_empty() {
            match next.next() {
                Some(a) => pending.push(attempt(a)),
                None => {
                    return Err(last_err.unwrap_or_else(|| ConnectError::Socket {
                        server: server.name.clone(),
                        err: io::Error::other("no address to connect to"),
                    }));
                }
            }
        }
        tokio::select! {
            Some(done) = pending.next() => match done {
                Ok(ok) => return Ok(ok),
                Err(e) => {
                    last_err = Some(e);
                    // A failed attempt hands over at once (RFC 8305 §5), not after the delay.
                    if let Some(a) = next.next() {
                        pending.push(attempt(a));
                    }
                }
            },
            _ = tokio::time::sleep(HAPPY_EYEBALLS_DELAY) => {
                if let Some(a) = next.next() {
                    pending.push(attempt(a));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made connection and a refused one, told apart without tokio's SO_ERROR after every connect.
    #[tokio::test]
    async fn connect_socket_tells_made_from_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let s = connect_socket(outbound_socket(open).unwrap(), open)
            .await
            .unwrap();
        let (accepted, from) = listener.accept().await.unwrap();
        assert_eq!(from, s.local_addr().unwrap());
        drop(accepted);

        // A port nobody listens on: bind one, note it, close it.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = connect_socket(outbound_socket(closed).unwrap(), closed)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
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

//! A session is one accepted connection's life: it runs the stages in order and ends with an
//! HAProxy-style termination code, which goes to the log line and the counters.
//!
//! accept (listener.rs) → route → balance → connect → forward → account.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::account::{Runtime, Tally};
use crate::addr::{ClientAddr, OrigDstAddr};
use crate::{balance, connect, forward, log, route};

/// What ended a session: the first character of HAProxy's termination state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// `-`: ended normally.
    Normal,
    /// `C`: the client aborted (reset, or went away while we wrote to it).
    ClientAbort,
    /// `S`: the server aborted or refused the connection.
    ServerAbort,
    /// `P`: the proxy refused the session (a loop, no backend, no server).
    Proxy,
    /// `R`: a local resource ran out (sockets, ports).
    Resource,
    /// `I`: an internal error.
    Internal,
    /// `K`: an administrator (or the shutdown) killed it.
    Killed,
    /// `c`: the client-side idle timeout.
    ClientTimeout,
    /// `s`: the server-side timeout (connect or idle).
    ServerTimeout,
}

/// Where the session was when it ended: the second character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `-`: it ended normally.
    Normal,
    /// `R`: waiting for or reading the request (in tcp mode: before a server was chosen).
    Request,
    /// `C`: connecting to the server.
    Connect,
    /// `D`: forwarding data.
    Data,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Termination {
    pub cause: Cause,
    pub stage: Stage,
}

impl Termination {
    pub const NORMAL: Termination = Termination {
        cause: Cause::Normal,
        stage: Stage::Normal,
    };
    pub fn new(cause: Cause, stage: Stage) -> Self {
        Termination { cause, stage }
    }
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self.cause {
            Cause::Normal => '-',
            Cause::ClientAbort => 'C',
            Cause::ServerAbort => 'S',
            Cause::Proxy => 'P',
            Cause::Resource => 'R',
            Cause::Internal => 'I',
            Cause::Killed => 'K',
            Cause::ClientTimeout => 'c',
            Cause::ServerTimeout => 's',
        };
        let s = match self.stage {
            Stage::Normal => '-',
            Stage::Request => 'R',
            Stage::Connect => 'C',
            Stage::Data => 'D',
        };
        write!(f, "{c}{s}")
    }
}

/// Everything known about a session when it ends, for the log line and the counters.
#[derive(Debug)]
pub struct Record {
    pub client: ClientAddr,
    pub orig_dst: OrigDstAddr,
    pub accepted_at: SystemTime,
    pub frontend: usize,
    pub backend: Option<usize>,
    pub server: Option<usize>,
    /// Milliseconds spent connecting, if a connect was tried.
    pub connect_ms: Option<u64>,
    pub total_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub termination: Termination,
    /// Counters at the moment the session was set up, as HAProxy logs them.
    pub tally: Tally,
}

/// Runs one accepted connection to its end.
pub async fn run(rt: Arc<Runtime>, frontend: usize, client: TcpStream, listen_port: u16) {
    let started = Instant::now();
    let accepted_at = SystemTime::now();
    let (Ok(peer), Ok(local)) = (client.peer_addr(), client.local_addr()) else {
        // The client left between accept and here; there is nobody to log about.
        return;
    };
    let client_addr = ClientAddr::new(peer);
    let orig_dst = OrigDstAddr::new(local);
    let _ = client.set_nodelay(true);
    let fe = &rt.cfg.frontends[frontend];
    let mut rec = Record {
        client: client_addr,
        orig_dst,
        accepted_at,
        frontend,
        backend: None,
        server: None,
        connect_ms: None,
        total_ms: 0,
        bytes_in: 0,
        bytes_out: 0,
        termination: Termination::NORMAL,
        tally: Tally::default(),
    };

    let guard = rt.enter_frontend(frontend);
    rec.termination = 'stages: {
        let Some(be) = route::select_backend(fe) else {
            break 'stages Termination::new(Cause::Proxy, Stage::Request);
        };
        rec.backend = Some(be);
        let backend = &rt.cfg.backends[be];
        let Some(srv) = balance::pick(&rt.backends[be], backend) else {
            break 'stages Termination::new(Cause::Proxy, Stage::Connect);
        };
        rec.server = Some(srv);
        let _srv_guard = rt.enter_server(be, srv);
        rec.tally = rt.tally(frontend, be, srv);
        let target = match connect::target(&backend.servers[srv], orig_dst) {
            Ok(t) => t,
            Err(e) => break 'stages e.termination(),
        };
        // A client that called a listener directly, with a server pointing at the original
        // destination, would have us connect to ourselves, again and again.
        if target.port() == listen_port && crate::sys::is_local_address(target.ip()) {
            tracing::debug!(client = %client_addr, %target, "refused: the destination is this listener");
            break 'stages Termination::new(Cause::Proxy, Stage::Connect);
        }
        let t0 = Instant::now();
        let server = match connect::connect(
            &rt,
            backend,
            &backend.servers[srv],
            client_addr,
            target,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                rec.connect_ms = Some(t0.elapsed().as_millis() as u64);
                tracing::debug!(client = %client_addr, dst = %orig_dst, "{e}");
                break 'stages e.termination();
            }
        };
        rec.connect_ms = Some(t0.elapsed().as_millis() as u64);
        let out =
            forward::forward(&client, &server, fe.timeout_client, backend.timeout_server).await;
        rec.bytes_in = out.bytes_in;
        rec.bytes_out = out.bytes_out;
        out.termination
    };
    if rec.tally == Tally::default() {
        rec.tally = rt.tally_frontend(frontend);
    }
    drop(guard);
    rec.total_ms = started.elapsed().as_millis() as u64;
    rt.account(&rec);
    log::session(&rt, &rec);
}

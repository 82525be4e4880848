//! A session is one accepted connection's life: it runs the stages in order and ends with an
//! HAProxy-style termination code, which goes to the log line and the counters.
//!
//! accept (listener.rs) → route → balance → connect → forward → account.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::account::{Presence, Runtime};
use crate::addr::{ClientAddr, OrigDstAddr};
use crate::forward::{Timeouts, Traffic};
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
    pub traffic: Traffic,
    pub termination: Termination,
}

/// Runs one accepted connection to its end.
pub async fn run(rt: Arc<Runtime>, frontend: usize, client: TcpStream, listen_port: u16) {
    let started = Instant::now();
    let (Ok(peer), Ok(local)) = (client.peer_addr(), client.local_addr()) else {
        // The client left between accept and here; there is nobody to log about.
        return;
    };
    let _ = client.set_nodelay(true);
    let _in_frontend = rt.enter_frontend(frontend);
    let mut in_server = None;
    // Everything kept across the session's awaits lives in `rec`, so an idle session's task stays
    // small; what is only needed to set up (target, connect timer) is gone before forwarding.
    // Declared after the presence guards, so that if the session is killed (dropped) it logs while
    // it still counts itself.
    let mut live = Live {
        rt: &rt,
        started,
        finished: false,
        rec: Record {
            client: ClientAddr::new(peer),
            orig_dst: OrigDstAddr::new(local),
            accepted_at: SystemTime::now(),
            frontend,
            backend: None,
            server: None,
            connect_ms: None,
            total_ms: 0,
            traffic: Traffic::default(),
            // Until a stage says otherwise: what a kill at this point would be logged as.
            termination: Termination::new(Cause::Killed, Stage::Request),
        },
    };
    let end = stages(&rt, &client, &mut live.rec, listen_port, &mut in_server).await;
    live.rec.termination = end;
    live.finish();
}

/// A session's record on its way to the log: logged once, by [`Live::finish`] or, if the session is
/// dropped before (shutdown, abort), by `Drop` with a `K` termination code at the stage reached.
struct Live<'a> {
    rt: &'a Runtime,
    started: Instant,
    finished: bool,
    rec: Record,
}

impl Live<'_> {
    fn finish(&mut self) {
        self.finished = true;
        self.rec.total_ms = self.started.elapsed().as_millis() as u64;
        let tally = self.rt.tally(&self.rec);
        self.rt.account(&self.rec);
        log::session(self.rt, &self.rec, &tally);
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.rec.termination.cause = Cause::Killed;
            self.finish();
        }
    }
}

/// route → balance → connect → forward; returns how the session ended. Keeps `rec.termination`'s
/// stage current, for the log line of a session killed midway.
async fn stages<'rt>(
    rt: &'rt Runtime,
    client: &TcpStream,
    rec: &mut Record,
    listen_port: u16,
    in_server: &mut Option<Presence<'rt>>,
) -> Termination {
    let fe = &rt.cfg.frontends[rec.frontend];
    let Some(be) = route::select_backend(fe) else {
        return Termination::new(Cause::Proxy, Stage::Request);
    };
    rec.backend = Some(be);
    let backend = &rt.cfg.backends[be];
    let Some(srv) = balance::pick(&rt.backends[be], backend) else {
        return Termination::new(Cause::Proxy, Stage::Connect);
    };
    rec.server = Some(srv);
    *in_server = Some(rt.enter_server(be, srv));
    rec.termination.stage = Stage::Connect;
    let target = match connect::target(&backend.servers[srv], rec.orig_dst) {
        Ok(t) => t,
        Err(e) => return e.termination(),
    };
    // A client that called a listener directly, with a server pointing at the original
    // destination, would have us connect to ourselves, again and again.
    if target.port() == listen_port && crate::sys::is_local_address(target.ip()) {
        tracing::debug!(client = %rec.client, %target, "refused: the destination is this listener");
        return Termination::new(Cause::Proxy, Stage::Connect);
    }
    let t0 = Instant::now();
    // Boxed: the connect step (with its timer) is short-lived, and inline it would size every
    // session's task for its whole life, idle ones included.
    let connecting = Box::pin(connect::connect(
        rt,
        backend,
        &backend.servers[srv],
        rec.client,
        target,
    ));
    let server = connecting.await;
    rec.connect_ms = Some(t0.elapsed().as_millis() as u64);
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(client = %rec.client, dst = %rec.orig_dst, "{e}");
            return e.termination();
        }
    };
    rec.termination.stage = Stage::Data;
    let timeouts = match backend.timeout_tunnel {
        Some(t) => Timeouts::Tunnel(t),
        None => Timeouts::Sides {
            client: fe.timeout_client,
            server: backend.timeout_server,
        },
    };
    forward::forward(client, &server, timeouts, &mut rec.traffic).await
}

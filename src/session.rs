//! A session is one accepted connection's life: it runs the stages in order and ends with an
//! HAProxy-style termination code, which goes to the log line and the counters.
//!
//! accept (listener.rs) → classify → route → balance → resolve (target.rs) → connect → forward →
//! account.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use std::sync::atomic::Ordering::Relaxed;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::account::{Place, Presence, Runtime};
use crate::addr::{ClientAddr, OrigDstAddr};
use crate::classify::{self, Miss, Peeked};
use crate::config::model::{EchPolicy, Fallback};
use crate::forward::{Timeouts, Traffic};
use crate::proxy_protocol::{self, Proxied};
use crate::rules::sample::Facts;
use crate::stick::{Key, StickCtx, Tracked};
use crate::target::Refusal;
use crate::tls::Sock;
use crate::{balance, connect, forward, log, route, target};

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
    /// `G` (gatehouse): the open-proxy guard refused the name or the address.
    Guard,
    /// `N` (gatehouse): the destination's name has no address (NXDOMAIN, SERVFAIL, DNS timeout).
    Dns,
    /// `L`: gatehouse answered the request itself (a redirect, the stats URI).
    Local,
}

/// Where the session was when it ended: the second character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `-`: it ended normally.
    Normal,
    /// `R`: waiting for or reading the request (in tcp mode: before a server was chosen).
    Request,
    /// `Q`: waiting in the backend's queue for a free server slot.
    Queue,
    /// `C`: connecting to the server.
    Connect,
    /// `H`: waiting for the response head from the server (http mode).
    Headers,
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
            Cause::Guard => 'G',
            Cause::Dns => 'N',
            Cause::Local => 'L',
        };
        let s = match self.stage {
            Stage::Normal => '-',
            Stage::Request => 'R',
            Stage::Queue => 'Q',
            Stage::Connect => 'C',
            Stage::Headers => 'H',
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
    /// The name the client asked for (SNI or Host), when one was read.
    pub name: Option<Box<str>>,
    /// Connect attempts after the first (HAProxy's `%rc`).
    pub retries: u32,
    /// The stick-table entries this session tracks (`track-sc*`), released when it ends.
    pub tracked: Option<Box<Tracked>>,
    /// In http mode this record is one request's, and this is what its httplog line adds.
    pub http: Option<Box<crate::l7::stream::HttpLog>>,
}

impl Record {
    /// A session (or, in http mode, a request) that has just begun: nothing chosen, nothing moved.
    pub fn new(
        client: std::net::SocketAddr,
        orig_dst: std::net::SocketAddr,
        accepted_at: SystemTime,
        frontend: usize,
    ) -> Record {
        Record {
            client: ClientAddr::new(client),
            orig_dst: OrigDstAddr::new(orig_dst),
            accepted_at,
            frontend,
            backend: None,
            server: None,
            connect_ms: None,
            total_ms: 0,
            traffic: Traffic::default(),
            // Until a stage says otherwise: what a kill at this point would be logged as.
            termination: Termination::new(Cause::Killed, Stage::Request),
            name: None,
            retries: 0,
            tracked: None,
            http: None,
        }
    }
}

/// Runs one accepted connection (on bind line `bind` of `frontend`, from `peer`) to its end, or until it goes
/// quiet while spliced: then it returns the session to be parked ([`forward::park`]), which goes on
/// without this task.
pub async fn run(
    rt: Arc<Runtime>,
    (frontend, bind): (usize, usize),
    (client, mut peer): (TcpStream, std::net::SocketAddr),
    listen_port: u16,
) -> Option<Parking> {
    let started = Instant::now();
    // The peer's address came with accept(); the local one is where the client meant to go.
    let Ok(mut local) = client.local_addr() else {
        // The client left between accept and here; there is nobody to log about.
        return None;
    };
    let _ = client.set_nodelay(true);
    let _in_frontend = rt.enter_frontend(frontend);
    let tls = rt.cfg.frontends[frontend]
        .binds
        .get(bind)
        .and_then(|b| b.tls.clone());
    // `accept-proxy`: the PROXY header says who the client is and where it connected to.
    let mut proxied = None;
    let accept_proxy = rt.cfg.frontends[frontend]
        .binds
        .get(bind)
        .is_some_and(|b| b.accept_proxy);
    // `proxy-in-tls`: the header comes after the handshake, inside the TLS session.
    let in_tls = accept_proxy && tls.as_ref().is_some_and(|t| t.proxy_in_tls);
    if accept_proxy && !in_tls {
        // Boxed: only these sessions pay for reading the header.
        let accept = Box::pin(proxy_protocol::accept(&rt, frontend, &client, peer, local));
        let got;
        (peer, local, got) = accept.await;
        match got {
            Ok(p) => proxied = Some(Box::new(p)),
            Err(end) => {
                closed_at_accept(&rt, started, frontend, peer, local, end);
                return None;
            }
        }
    }
    if rt.cfg.frontends[frontend].mode == crate::config::model::Mode::Http {
        // Boxed: the request loop's state must not size every tcp-mode session's task.
        Box::pin(crate::l7::stream::run(
            &rt,
            frontend,
            client,
            tls.as_deref(),
            peer,
            local,
            listen_port,
            proxied,
        ))
        .await;
        return None;
    }
    let mut in_server = None;
    // Everything kept across the session's awaits lives in `rec`, so an idle session's task stays
    // small; what is only needed to set up (target, connect timer) is gone before forwarding.
    // Declared after the presence guards, so that if the session is killed (dropped) it logs while
    // it still counts itself.
    let mut live = Live {
        rt: &rt,
        started,
        finished: false,
        rec: Record::new(peer, local, SystemTime::now(), frontend),
    };
    let end = 'end: {
        // `tcp-request connection` rules see the connection before any handshake, as in HAProxy.
        if let Err(end) = connection_rules(&rt, &mut live.rec, proxied.is_some()) {
            break 'end end;
        }
        let (client, info) = match tls.as_deref() {
            None => (Sock::Plain(client), None),
            // Boxed: a handshake in progress is large and over before forwarding starts.
            Some(t) => match Box::pin(handshake(&rt, client, t, &mut live.rec, in_tls)).await {
                Ok((c, info, header)) => {
                    if header.is_some() {
                        proxied = header;
                    }
                    (c, Some(info))
                }
                Err(end) => break 'end end,
            },
        };
        let staged = stages(
            &rt,
            &client,
            info,
            &mut live.rec,
            listen_port,
            &mut in_server,
            proxied.as_deref(),
        )
        .await;
        match staged {
            Staged::Ended(end) => end,
            Staged::Quiet(server, rest) => {
                let held = (_in_frontend, in_server);
                return Flow::leave_task(rt.clone(), live, held, client, server, rest);
            }
        }
    };
    live.rec.termination = end;
    live.finish();
    None
}

/// How the stages ended: the session's end, or quiet forwarding ready to park (the server socket
/// and the forwarding state).
enum Staged {
    Ended(Termination),
    Quiet(Sock, forward::Rest),
}

/// A session parked between bursts: the state without its task, and the two sockets without their
/// registrations in the runtime's reactor. [`forward::park::park`] shelves it.
pub struct Parking {
    pub flow: Box<Flow>,
    pub client: std::net::TcpStream,
    pub server: std::net::TcpStream,
}

/// The semaphore permits a session holds for `maxconn` (the process's and its frontend's).
pub type Permits = (
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::OwnedSemaphorePermit,
);

/// A tcp session's state once it forwards between two plain sockets: everything needed to carry on
/// after parking, or to log its end. It counts itself in its frontend and server (kept
/// presences) and in `maxconn` (permits given up and handed back at its end); dropped before its
/// end (a stop, `shutdown session`), it logs itself as killed, as a session in a task does. Kept
/// small: parked, this is all an idle connection costs.
pub struct Flow {
    rt: Arc<Runtime>,
    /// Its id in the session registry (`show sess`), 0 if unregistered.
    pub(crate) id: u64,
    started: Instant,
    rec: Record,
    rest: Option<forward::Rest>,
    on_server: bool,
    /// Holds a `maxconn` slot of the process and of its frontend (the permits were forgotten).
    holds_slots: bool,
    finished: bool,
}

impl Flow {
    /// Moves a session that went quiet out of its task (which then ends): its record, its counts,
    /// its sockets. `None` when a socket cannot leave the reactor; the session then ends here.
    fn leave_task(
        rt: Arc<Runtime>,
        mut live: Live<'_>,
        (in_frontend, in_server): (Presence<'_>, Option<Presence<'_>>),
        client: Sock,
        server: Sock,
        rest: forward::Rest,
    ) -> Option<Parking> {
        let (Sock::Plain(c), Sock::Plain(s)) = (client, server) else {
            unreachable!("only spliced sessions park");
        };
        let (c, s) = match (c.into_std(), s.into_std()) {
            (Ok(c), Ok(s)) => (c, s),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("parking an idle session: {e}");
                live.rec.termination = Termination::new(Cause::Resource, Stage::Data);
                live.finish();
                return None;
            }
        };
        let on_server = in_server.is_some();
        in_frontend.keep();
        if let Some(p) = in_server {
            p.keep();
        }
        live.finished = true;
        let blank = Record::new(
            live.rec.client.get(),
            live.rec.orig_dst.get(),
            live.rec.accepted_at,
            live.rec.frontend,
        );
        let rec = std::mem::replace(&mut live.rec, blank);
        let flow = Flow {
            rt,
            id: 0,
            started: live.started,
            rec,
            rest: Some(rest),
            on_server,
            holds_slots: false,
            finished: false,
        };
        Some(Parking {
            flow: Box::new(flow),
            client: c,
            server: s,
        })
    }

    /// The configuration's runtime state this session counts in.
    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.rt
    }

    /// Keeps the session's `maxconn` slots taken until its end, without holding the permits.
    pub(crate) fn take_slots(&mut self, permits: Permits) {
        permits.0.forget();
        permits.1.forget();
        self.holds_slots = true;
    }

    /// What `show sess` shows of it.
    pub(crate) fn listing(&self) -> crate::sessions::Listing {
        crate::sessions::Listing {
            id: self.id,
            rt: Arc::downgrade(&self.rt),
            frontend: self.rec.frontend,
            client: self.rec.client.get(),
            started: self.started.into_std(),
            server: self.rec.backend.zip(self.rec.server),
        }
    }

    /// Its idle timeouts, as forwarding set them.
    fn timeouts(&self) -> Timeouts {
        let fe = &self.rt.cfg.frontends[self.rec.frontend];
        match self.rec.backend {
            Some(be) => timeouts(fe, &self.rt.cfg.backends[be]),
            None => Timeouts::Sides {
                client: fe.timeout_client,
                server: None,
            },
        }
    }

    /// Which of its sockets a parked session reads from (client, server).
    pub(crate) fn reading(&self) -> (bool, bool) {
        self.rest
            .as_ref()
            .map_or((false, false), forward::Rest::reading)
    }

    /// When a side's idle timeout passes while parked, if one is set.
    pub(crate) fn deadline(&self) -> Option<std::time::Instant> {
        self.rest
            .as_ref()?
            .deadline(self.timeouts())
            .map(Instant::into_std)
    }

    /// The timeout passed at `now` while parked, if any.
    pub(crate) fn expired(&self, now: std::time::Instant) -> Option<Termination> {
        self.rest
            .as_ref()?
            .expired(self.timeouts(), Instant::from_std(now))
    }

    /// Ends the session: logs it, then lets its counts down.
    pub(crate) fn finish(mut self, end: Termination) {
        self.rec.termination = end;
        self.end();
    }

    fn end(&mut self) {
        self.finished = true;
        finish_record(&self.rt, self.started, &mut self.rec);
        if self.on_server
            && let (Some(be), Some(srv)) = (self.rec.backend, self.rec.server)
        {
            self.rt.leave(Place::Server(be, srv));
        }
        self.rt.leave(Place::Frontend(self.rec.frontend));
        if self.holds_slots {
            self.rt.limit.add_permits(1);
            self.rt.frontends[self.rec.frontend].limit.add_permits(1);
        }
    }

    /// Carries a parked session on in a task of its own (the park's caller spawns it) until it
    /// ends, or goes quiet again (then returned for parking); `park_again` false keeps it in this
    /// task however quiet it gets (no shelf to go back to).
    pub(crate) async fn carry_on(
        mut self: Box<Self>,
        client: std::net::TcpStream,
        server: std::net::TcpStream,
        park_again: bool,
    ) -> Option<Parking> {
        let (c, s) = match (TcpStream::from_std(client), TcpStream::from_std(server)) {
            (Ok(c), Ok(s)) => (c, s),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("resuming a parked session: {e}");
                (*self).finish(Termination::new(Cause::Resource, Stage::Data));
                return None;
            }
        };
        let rest = self.rest.take().expect("a parked flow has its state");
        let timeouts = self.timeouts();
        let park_after = self.rt.cfg.global.idle_park.filter(|_| park_again);
        let mut fwd =
            forward::Forward::resume(&c, &s, rest, timeouts, park_after, &mut self.rec.traffic);
        match (&mut fwd).await {
            forward::Ending::End(end) => {
                drop(fwd);
                (*self).finish(end);
                None
            }
            forward::Ending::Park => {
                self.rest = Some(fwd.into_rest());
                match (c.into_std(), s.into_std()) {
                    (Ok(client), Ok(server)) => Some(Parking {
                        flow: self,
                        client,
                        server,
                    }),
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::warn!("parking an idle session: {e}");
                        (*self).finish(Termination::new(Cause::Resource, Stage::Data));
                        None
                    }
                }
            }
        }
    }
}

/// A session's idle timeouts while forwarding: `timeout tunnel` if the backend has one, else the
/// frontend's `timeout client` and the backend's `timeout server`.
fn timeouts(
    fe: &crate::config::model::Frontend,
    backend: &crate::config::model::Backend,
) -> Timeouts {
    match backend.timeout_tunnel {
        Some(t) => Timeouts::Tunnel(t),
        None => Timeouts::Sides {
            client: fe.timeout_client,
            server: backend.timeout_server,
        },
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        if !self.finished {
            self.rec.termination.cause = Cause::Killed;
            self.end();
        }
    }
}

/// Logs a connection that ended before its session began (`accept-proxy` without a valid header, or
/// refused by a `tcp-request connection` rule before it), with the socket's addresses.
fn closed_at_accept(
    rt: &Runtime,
    started: Instant,
    frontend: usize,
    peer: std::net::SocketAddr,
    local: std::net::SocketAddr,
    end: Termination,
) {
    let accepted_at = SystemTime::now()
        .checked_sub(started.elapsed())
        .unwrap_or_else(SystemTime::now);
    let mut live = Live {
        rt,
        started,
        finished: false,
        rec: Record::new(peer, local, accepted_at, frontend),
    };
    live.rec.termination = end;
    live.finish();
}

/// A session's record on its way to the log: logged once, by [`Live::finish`] or, if the session is
/// dropped before (shutdown, abort), by `Drop` with a `K` termination code at the stage reached.
pub(crate) struct Live<'a> {
    pub rt: &'a Runtime,
    pub started: Instant,
    pub finished: bool,
    pub rec: Record,
}

impl Live<'_> {
    pub fn finish(&mut self) {
        self.finished = true;
        finish_record(self.rt, self.started, &mut self.rec);
    }
}

/// A session's end: its tracked stick entries released, its counters and its log line written
/// (while it still counts itself, as HAProxy logs).
fn finish_record(rt: &Runtime, started: Instant, rec: &mut Record) {
    // Tracked entries no longer count this session as current; its bytes count.
    if let Some(tracked) = rec.tracked.take() {
        for (t, k) in tracked.iter().flatten() {
            rt.tables[*t].untrack(k, rec.traffic.bytes_in, rec.traffic.bytes_out);
        }
    }
    rec.total_ms = started.elapsed().as_millis() as u64;
    let tally = rt.tally(rec);
    rt.account(rec);
    log::session(rt, rec, &tally);
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.rec.termination.cause = Cause::Killed;
            self.finish();
        }
    }
}

/// [TLS handshake →] classify → route → balance → resolve → connect → forward; returns how the
/// session ended. Keeps `rec.termination`'s stage current, for the log line of a session killed
/// midway.
async fn stages<'rt>(
    rt: &'rt Runtime,
    client: &Sock,
    info: Option<Box<crate::tls::Info>>,
    rec: &mut Record,
    listen_port: u16,
    in_server: &mut Option<Presence<'rt>>,
    proxied: Option<&Proxied>,
) -> Staged {
    // Boxed: everything before forwarding (the peek buffer, rules, DNS, connect timers) lives only
    // until the connection is set up; inline it would size every session's task for its whole life,
    // idle ones included.
    let setup = Box::pin(setup(
        rt,
        client,
        info.as_deref(),
        rec,
        listen_port,
        in_server,
        proxied,
    ));
    let (server, timeouts) = match setup.await {
        Ok(s) => s,
        Err(end) => return Staged::Ended(end),
    };
    drop(info);
    // `on-marked-down shutdown-sessions`: end with the server when a check marks it down.
    let watch_down = match (rec.backend, rec.server) {
        (Some(be), Some(srv)) if rt.cfg.backends[be].servers[srv].shutdown_on_down => {
            Some(rt.backends[be].health[srv].marked_down.subscribe())
        }
        _ => None,
    };
    // Spliced sessions park when quiet (`tune.idle-park`); one that must watch its server's health
    // stays in its task.
    let park_after = match (&watch_down, client, &server) {
        (None, Sock::Plain(_), Sock::Plain(_)) => rt.cfg.global.idle_park,
        _ => None,
    };
    let mut forwarding = forward::start(client, &server, timeouts, park_after, &mut rec.traffic);
    let ending = match watch_down {
        None => (&mut forwarding).await,
        Some(mut down) => tokio::select! {
            end = &mut forwarding => end,
            _ = down.changed() => forward::Ending::End(Termination::new(Cause::Killed, Stage::Data)),
        },
    };
    match (ending, forwarding) {
        (forward::Ending::Park, forward::Forwarding::Splice(f)) => {
            let rest = f.into_rest();
            Staged::Quiet(server, rest)
        }
        (forward::Ending::End(end), _) => Staged::Ended(end),
        (forward::Ending::Park, forward::Forwarding::Relay(_)) => {
            unreachable!("the relay never parks")
        }
    }
}

/// `tcp-request connection` rules; `Err` when they reject the connection. With `accept-proxy` they
/// ran before the header was read, on the sending proxy's address ([`proxy_protocol::accept`]).
fn connection_rules(rt: &Runtime, rec: &mut Record, proxied: bool) -> Result<(), Termination> {
    let fe = &rt.cfg.frontends[rec.frontend];
    if proxied || fe.connection_rules.is_empty() {
        return Ok(());
    }
    let stick = StickCtx {
        tables: &rt.tables,
        own: fe.table,
        tracked: Default::default(),
    };
    let stick_ctx = (!rt.tables.is_empty()).then_some(&stick);
    let facts = Facts::addresses(rec.client.get(), rec.orig_dst.get(), stick_ctx);
    let verdict = route::run_rules(&fe.connection_rules, &fe.acls, &facts);
    keep_tracked(&stick, rec);
    if verdict == Some(false) {
        rt.policy.rejected.fetch_add(1, Relaxed);
        return Err(Termination::new(Cause::Proxy, Stage::Request));
    }
    Ok(())
}

/// The TLS handshake on a `bind … ssl` connection, within `timeout client` (5 s when unset); with
/// `in_tls` (`accept-proxy proxy-in-tls`), then the PROXY header inside the session, whose addresses
/// become the record's client and original destination.
async fn handshake(
    rt: &Runtime,
    tcp: TcpStream,
    tls: &crate::tls::BindTls,
    rec: &mut Record,
    in_tls: bool,
) -> Result<(Sock, Box<crate::tls::Info>, Option<Box<Proxied>>), Termination> {
    let (mut sock, info) = tls_accept(rt, tcp, tls, rec).await?;
    if !in_tls {
        return Ok((sock, info, None));
    }
    let peer = rec.client.get();
    let (addrs, p) = proxy_protocol::accept_in_tls(rt, rec.frontend, &mut sock, peer).await?;
    if let Some((src, dst)) = addrs {
        rec.client = crate::addr::ClientAddr::new(src);
        rec.orig_dst = crate::addr::OrigDstAddr::new(dst);
    }
    Ok((sock, info, Some(Box::new(p))))
}

async fn tls_accept(
    rt: &Runtime,
    tcp: TcpStream,
    tls: &crate::tls::BindTls,
    rec: &mut Record,
) -> Result<(Sock, Box<crate::tls::Info>), Termination> {
    use crate::tls::Handshake;
    let limit = rt.cfg.frontends[rec.frontend]
        .timeout_client
        .unwrap_or(std::time::Duration::from_secs(5));
    match crate::tls::accept(tcp, tls, limit).await {
        Ok((stream, info)) => {
            rec.name = info.sni.as_deref().map(Box::from);
            Ok((stream, Box::new(info)))
        }
        Err(e) => {
            tracing::info!(client = %rec.client, frontend = %rt.cfg.frontends[rec.frontend].name, "{e}");
            rt.policy.tls_failed.fetch_add(1, Relaxed);
            Err(match e {
                Handshake::Timeout => Termination::new(Cause::ClientTimeout, Stage::Request),
                Handshake::Refused(_) => Termination::new(Cause::Proxy, Stage::Request),
                Handshake::Failed(_) => Termination::new(Cause::ClientAbort, Stage::Request),
            })
        }
    }
}

/// How a failed TLS handshake with a server ends the session: `sC` when it ran out of `timeout
/// connect`, else `SC` (refused certificate, not TLS, reset).
pub(crate) fn server_tls_failed(e: &std::io::Error) -> Termination {
    let cause = if e.kind() == std::io::ErrorKind::TimedOut {
        Cause::ServerTimeout
    } else {
        Cause::ServerAbort
    };
    Termination::new(cause, Stage::Connect)
}

/// Everything up to a connected server (TLS to it done, if any) with the peeked bytes replayed to
/// it. `tls` is what the client's handshake told, on a bind that terminates TLS.
async fn setup<'rt>(
    rt: &'rt Runtime,
    conn: &Sock,
    tls: Option<&crate::tls::Info>,
    rec: &mut Record,
    listen_port: u16,
    in_server: &mut Option<Presence<'rt>>,
    proxied: Option<&Proxied>,
) -> Result<(Sock, Timeouts), Termination> {
    let fe = &rt.cfg.frontends[rec.frontend];
    // What the connection rules tracked stays tracked for the content rules.
    let stick = StickCtx {
        tables: &rt.tables,
        own: fe.table,
        tracked: std::sync::Mutex::new(rec.tracked.as_deref().cloned().unwrap_or_default()),
    };
    let mut facts = Facts {
        client: rec.client.get(),
        dst: rec.orig_dst.get(),
        hello: None,
        http: None,
        peeked: 0,
        raw: &[],
        stick: (!rt.tables.is_empty()).then_some(&stick),
        res: None,
        tls,
    };
    // On a TLS bind, what is peeked (and what a refused client is told) is inside the TLS session:
    // a tunnel's exit reads the SNI of the client's own TLS, or its HTTP Host.
    let client = conn;
    // `tcp-request session` rules: after the PROXY header and the TLS handshake, on the client's
    // address, as in HAProxy.
    if !fe.session_rules.is_empty() {
        let verdict = route::run_rules(&fe.session_rules, &fe.acls, &facts);
        keep_tracked(&stick, rec);
        if verdict == Some(false) {
            rt.policy.rejected.fetch_add(1, Relaxed);
            return Err(Termination::new(Cause::Proxy, Stage::Request));
        }
    }

    // classify
    let peeked = if fe.peek {
        match classify::peek(client, fe.inspect_delay).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(client = %rec.client, "{e}");
                return Err(Termination::new(Cause::ClientAbort, Stage::Request));
            }
        }
    } else {
        Peeked::default()
    };
    if let Some(name) = peeked.name() {
        rec.name = Some(name.into());
    }
    facts.hello = peeked.hello.as_ref();
    facts.http = peeked.http.as_ref();
    facts.peeked = peeked.buf.len();
    facts.raw = &peeked.buf;
    let mut forced = None;
    if let Some(miss) = &peeked.miss {
        rt.policy.unclassified.fetch_add(1, Relaxed);
        let u = &fe.unclassified;
        let fallback = match miss {
            Miss::Timeout => u.timeout,
            Miss::NoName => u.no_sni,
            Miss::NotTls => u.not_tls,
            Miss::Malformed(_) => u.malformed,
            Miss::Ambiguous => Fallback::Reject,
        };
        tracing::debug!(client = %rec.client, ?miss, ?fallback, "no name");
        match fallback {
            Fallback::Original => {}
            Fallback::Backend(i) => forced = Some(i),
            Fallback::Reject => {
                rt.policy.rejected.fetch_add(1, Relaxed);
                refuse(client, &peeked, &Refusal::Policy(String::new()));
                let cause = if *miss == Miss::Timeout {
                    Cause::ClientTimeout
                } else {
                    Cause::Proxy
                };
                return Err(Termination::new(cause, Stage::Request));
            }
        }
    }
    if peeked.hello.as_ref().is_some_and(|h| h.ech) {
        rt.policy.ech.fetch_add(1, Relaxed);
        if fe.ech == EchPolicy::Reject {
            rt.policy.rejected.fetch_add(1, Relaxed);
            refuse(client, &peeked, &Refusal::Policy("ech".into()));
            return Err(Termination::new(Cause::Proxy, Stage::Request));
        }
    }
    let verdict = if forced.is_none() {
        route::run_rules(&fe.content_rules, &fe.acls, &facts)
    } else {
        None
    };
    keep_tracked(&stick, rec);
    if verdict == Some(false) {
        rt.policy.rejected.fetch_add(1, Relaxed);
        refuse(client, &peeked, &Refusal::Policy(String::new()));
        return Err(Termination::new(Cause::Proxy, Stage::Request));
    }

    // route, balance
    let Some(be) = forced.or_else(|| route::select_backend(&rt.cfg, fe, &facts)) else {
        return Err(Termination::new(Cause::Proxy, Stage::Request));
    };
    rec.backend = Some(be);
    let backend = &rt.cfg.backends[be];
    let srv = choose_server(rt, be, &facts, rec).await?;
    let (server, to) = match connect_server(
        rt,
        fe,
        be,
        srv,
        &facts,
        rec,
        in_server,
        listen_port,
        proxied,
    )
    .await
    {
        Ok(ok) => ok,
        Err(Failure { end, refusal }) => {
            if let Some(r) = refusal {
                refuse(client, &peeked, &r);
            }
            return Err(end);
        }
    };
    store_sticks(rt, be, &facts, rec.server.unwrap_or(srv));
    tracing::debug!(client = %rec.client, name = ?rec.name, server = %to, "connected");
    rec.termination.stage = Stage::Data;
    let timeouts = timeouts(fe, backend);
    let limit = backend
        .timeout_server
        .or(backend.timeout_tunnel)
        .unwrap_or(std::time::Duration::from_secs(30));
    let srv = rec.server.unwrap_or(srv);
    let mut server = match &backend.servers[srv].tls {
        None => Sock::Plain(server),
        Some(t) => {
            rec.termination.stage = Stage::Connect;
            let sni = backend.servers[srv]
                .sni
                .as_ref()
                .and_then(|e| e.eval(&facts));
            let connect_limit = backend
                .timeout_connect
                .unwrap_or(crate::config::validate::DEFAULT_TIMEOUT_CONNECT);
            match crate::tls::connect(server, t, sni.as_deref(), to.get().ip(), connect_limit).await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(client = %rec.client, server = %to, backend = %backend.name, "TLS to the server failed: {e}");
                    rt.policy.tls_failed.fetch_add(1, Relaxed);
                    return Err(server_tls_failed(&e));
                }
            }
        }
    };
    send_proxy_in_tls(rt, be, srv, &server, rec, &facts, proxied).await?;
    rec.termination.stage = Stage::Data;
    // replay: the peeked bytes go first, as received.
    if !peeked.buf.is_empty() {
        let written = match &mut server {
            Sock::Plain(s) => tokio::time::timeout(limit, forward::write_all(s, &peeked.buf)).await,
            tls => tokio::time::timeout(limit, tls.write_all(&peeked.buf)).await,
        };
        match written {
            Ok(Ok(())) => rec.traffic.bytes_in += peeked.buf.len() as u64,
            Ok(Err(_)) => return Err(Termination::new(Cause::ServerAbort, Stage::Data)),
            Err(_) => return Err(Termination::new(Cause::ServerTimeout, Stage::Data)),
        }
    }
    Ok((server, timeouts))
}

/// `send-proxy[-v2] proxy-in-tls`: the PROXY header, written inside the TLS session with the server
/// once its handshake is over (where TLS authenticates it), before any other byte.
pub(crate) async fn send_proxy_in_tls(
    rt: &Runtime,
    be: usize,
    srv: usize,
    server: &Sock,
    rec: &Record,
    facts: &Facts<'_>,
    proxied: Option<&Proxied>,
) -> Result<(), Termination> {
    let backend = &rt.cfg.backends[be];
    let Some(how) = backend.servers[srv]
        .send_proxy
        .as_ref()
        .filter(|h| h.in_tls)
    else {
        return Ok(());
    };
    let authority = facts
        .tls
        .and_then(|t| t.sni.as_deref())
        .or_else(|| facts.hello.and_then(|h| h.sni.as_deref()))
        .or_else(|| proxied.and_then(|p| p.authority.as_deref()));
    let bytes = proxy_protocol::header(how, rec.client.get(), rec.orig_dst.get(), authority);
    let limit = backend
        .timeout_connect
        .unwrap_or(crate::config::validate::DEFAULT_TIMEOUT_CONNECT);
    match tokio::time::timeout(limit, server.write_all(&bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(client = %rec.client, "PROXY header not sent: {e}");
            Err(Termination::new(Cause::ServerAbort, Stage::Connect))
        }
        Err(_) => Err(Termination::new(Cause::ServerTimeout, Stage::Connect)),
    }
}

/// Why a session could not reach a server: its termination code, and the refusal to tell the client
/// about, if any (a policy or DNS refusal; a failed connect is told by closing).
pub struct Failure {
    pub end: Termination,
    pub refusal: Option<Refusal>,
}

impl From<Termination> for Failure {
    fn from(end: Termination) -> Self {
        Failure { end, refusal: None }
    }
}

/// The server for a session: the one its key stuck to (`stick match|on`) if that server can take
/// it, else the balancing algorithm's choice, after queueing if every server is full.
pub(crate) async fn choose_server(
    rt: &Runtime,
    be: usize,
    facts: &Facts<'_>,
    rec: &mut Record,
) -> Result<usize, Termination> {
    let backend = &rt.cfg.backends[be];
    rec.termination.stage = Stage::Connect;
    let stuck = backend
        .stick_rules
        .iter()
        .filter(|r| r.matches && r.cond.as_ref().is_none_or(|c| c.eval(&backend.acls, facts)))
        .find_map(|r| {
            let t = &rt.tables[r.table.1];
            let key = Key::of(t.def.key_type, &r.key.render(facts)?)?;
            let s = t.server(&key)?;
            balance::candidates(rt, be, &[])
                .ok()?
                .iter()
                .any(|c| c.index == s)
                .then_some(s)
        });
    match stuck {
        Some(s) => Ok(s),
        None => queue_for_server(rt, be, facts, rec).await,
    }
}

/// resolve → connect to server `srv` of backend `be`, retried `retries` times; with `option
/// redispatch` the last retry goes to another server (the next in the algorithm's order).
/// `rec.server` ends as the server connected to, `in_server` holds its slot. A server with
/// `send-proxy[-v2]` has its PROXY header before this returns (`proxied`: what an accepted header
/// brought).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn connect_server<'rt>(
    rt: &'rt Runtime,
    fe: &crate::config::model::Frontend,
    be: usize,
    mut srv: usize,
    facts: &Facts<'_>,
    rec: &mut Record,
    in_server: &mut Option<Presence<'rt>>,
    listen_port: u16,
    proxied: Option<&Proxied>,
) -> Result<(TcpStream, crate::addr::ServerAddr), Failure> {
    let backend = &rt.cfg.backends[be];
    rec.termination.stage = Stage::Connect;
    let mut tried: Vec<usize> = Vec::new();
    let mut retries_left = backend.retries;
    let t0 = Instant::now();
    loop {
        rec.server = Some(srv);
        crate::sessions::on_server(be, srv);
        // Re-assigning drops the previous server's presence (and frees its slot).
        *in_server = Some(rt.enter_server(be, srv));

        // resolve
        let addrs = match target::addresses(rt, fe, (be, srv), facts).await {
            Ok(a) => a,
            Err(r) => {
                tracing::info!(client = %rec.client, dst = %rec.orig_dst, backend = %backend.name, "refused: {r}");
                return Err(Failure {
                    end: r.termination(),
                    refusal: Some(r),
                });
            }
        };
        // A client that called a listener directly, with a server pointing at the original
        // destination, would have us connect to ourselves, again and again.
        let addrs: Vec<_> = addrs
            .into_iter()
            .filter(|t| !(t.port() == listen_port && crate::sys::is_local_address(t.ip())))
            .collect();
        if addrs.is_empty() {
            tracing::debug!(client = %rec.client, "refused: the destination is this listener");
            return Err(Termination::new(Cause::Proxy, Stage::Connect).into());
        }

        let attempt =
            connect::connect_any(rt, backend, &backend.servers[srv], rec.client, &addrs).await;
        match attempt {
            Ok(ok) => {
                rec.connect_ms = Some(t0.elapsed().as_millis() as u64);
                // With `proxy-in-tls` the header waits for the TLS handshake (`send_proxy_in_tls`).
                if let Some(how) = backend.servers[srv]
                    .send_proxy
                    .as_ref()
                    .filter(|h| !h.in_tls)
                {
                    // The authority: the client's SNI (from the handshake on a bind that
                    // terminates TLS, else peeked), else what an accepted PROXY header carried.
                    let authority = facts
                        .tls
                        .and_then(|t| t.sni.as_deref())
                        .or_else(|| facts.hello.and_then(|h| h.sni.as_deref()))
                        .or_else(|| proxied.and_then(|p| p.authority.as_deref()));
                    let limit = backend
                        .timeout_connect
                        .unwrap_or(crate::config::validate::DEFAULT_TIMEOUT_CONNECT);
                    let sent = proxy_protocol::send(
                        &ok.0,
                        how,
                        rec.client.get(),
                        rec.orig_dst.get(),
                        authority,
                        limit,
                    )
                    .await;
                    if let Err(e) = sent {
                        tracing::debug!(client = %rec.client, server = %ok.1, "PROXY header not sent: {e}");
                        return Err(Termination::new(Cause::ServerAbort, Stage::Connect).into());
                    }
                }
                return Ok(ok);
            }
            Err(e) => {
                tracing::debug!(client = %rec.client, dst = %rec.orig_dst, retries_left, "{e}");
                if retries_left == 0 || !e.retryable() {
                    rec.connect_ms = Some(t0.elapsed().as_millis() as u64);
                    return Err(e.termination().into());
                }
                retries_left -= 1;
                rec.retries += 1;
                if backend.redispatch && retries_left == 0 {
                    tried.push(srv);
                    if let Ok(other) = balance::pick(rt, be, facts, &tried) {
                        srv = other;
                    }
                }
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}

/// `stick on|store-request`: remembers where this session's keys went.
pub(crate) fn store_sticks(rt: &Runtime, be: usize, facts: &Facts<'_>, srv: usize) {
    let backend = &rt.cfg.backends[be];
    for r in backend.stick_rules.iter().filter(|r| {
        r.stores
            && r.response == facts.res.is_some()
            && r.cond.as_ref().is_none_or(|c| c.eval(&backend.acls, facts))
    }) {
        let t = &rt.tables[r.table.1];
        if let Some(key) = r
            .key
            .render(facts)
            .and_then(|k| Key::of(t.def.key_type, &k))
        {
            t.stick(&key, srv);
        }
    }
}

/// Copies what the rules tracked into the record, which releases it when the session ends.
fn keep_tracked(stick: &StickCtx<'_>, rec: &mut Record) {
    if stick.tables.is_empty() {
        return;
    }
    let tracked = stick.tracked.lock().unwrap_or_else(|e| e.into_inner());
    if tracked.iter().any(Option::is_some) {
        rec.tracked = Some(Box::new(tracked.clone()));
    }
}

/// The pause before retrying a failed connect.
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// A server for this session: at once if one has a free slot, else after waiting in the backend's
/// queue (`maxconn`, `maxqueue`, `timeout queue`).
async fn queue_for_server(
    rt: &Runtime,
    be: usize,
    facts: &Facts<'_>,
    rec: &mut Record,
) -> Result<usize, Termination> {
    let backend = &rt.cfg.backends[be];
    let state = &rt.backends[be];
    match balance::pick(rt, be, facts, &[]) {
        Ok(s) => return Ok(s),
        Err(balance::NoServer::Down) => return Err(Termination::new(Cause::Proxy, Stage::Connect)),
        Err(balance::NoServer::Full) => {}
    }
    // The queue's room: the servers' maxqueue added up, unlimited if any server has none.
    let room = backend
        .servers
        .iter()
        .filter(|s| s.maxconn.is_some())
        .try_fold(0u64, |sum, s| s.maxqueue.map(|q| sum + u64::from(q)));
    if room.is_some_and(|r| state.queued.load(Relaxed) >= r) {
        return Err(Termination::new(Cause::ServerTimeout, Stage::Queue));
    }
    rec.termination.stage = Stage::Queue;
    state.queued.fetch_add(1, Relaxed);
    let wait = backend
        .timeout_queue
        .or(backend.timeout_connect)
        .unwrap_or(crate::config::validate::DEFAULT_TIMEOUT_CONNECT);
    let deadline = Instant::now() + wait;
    let got = loop {
        let freed = state.slot_freed.notified();
        match balance::pick(rt, be, facts, &[]) {
            Ok(s) => break Ok(s),
            Err(balance::NoServer::Down) => {
                break Err(Termination::new(Cause::Proxy, Stage::Connect));
            }
            Err(balance::NoServer::Full) => {}
        }
        if tokio::time::timeout_at(deadline, freed).await.is_err() {
            break Err(Termination::new(Cause::ServerTimeout, Stage::Queue));
        }
    };
    state.queued.fetch_sub(1, Relaxed);
    rec.termination.stage = Stage::Connect;
    got
}

/// Tells a refused client why, in its own protocol: a TLS alert after a ClientHello, an HTTP status
/// after a request; nothing otherwise. Best effort: one non-blocking write.
fn refuse(client: &Sock, peeked: &Peeked, why: &Refusal) {
    use crate::resolve::DnsError;
    let msg: Vec<u8> = if peeked.is_tls() {
        let d = match why {
            Refusal::GuardName { .. }
            | Refusal::Dns {
                err: DnsError::NotFound,
                ..
            } => classify::ALERT_UNRECOGNIZED_NAME,
            Refusal::Dns { .. } => classify::ALERT_INTERNAL_ERROR,
            _ => classify::ALERT_ACCESS_DENIED,
        };
        classify::tls_alert(d).to_vec()
    } else if peeked.http.is_some() || peeked.miss == Some(Miss::Ambiguous) {
        let status = match why {
            Refusal::Dns { .. } => "502 Bad Gateway",
            _ if peeked.miss == Some(Miss::Ambiguous) => "400 Bad Request",
            _ => "403 Forbidden",
        };
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes()
    } else {
        return;
    };
    let _ = client.try_write(&msg);
}

//! `mode http`: one client connection's requests, one after another.
//!
//! Per request: read the head (httparse, under `timeout http-request`) → the frontend's
//! `http-request` rules → route (`use_backend`) → the backend's rules → persistence cookie or
//! balance → a server connection (an idle one kept from this client's earlier request to the same
//! server, else a new one) → the head with our edits (forwardfor, cookie, Connection) → the body
//! and the response relayed at once (so `Expect: 100-continue` and early answers work) → the
//! response rules and cookie → one httplog line. Bytes we do not edit pass as they came.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use tokio::net::TcpStream;

use crate::tls::Sock;
use tokio::time::Instant;

use super::cookie::{self, Seen};
use super::framing::{self, BodyLen, Chunked};
use super::message::{self, Response, ResponseError};
use super::reply;
use super::rewrite;
use crate::account::{Presence, Runtime};
use crate::classify::http::{self as req_parse, HttpError, Request};
use crate::config::model::{
    Backend, CookieMode, Frontend, HttpAction, HttpConnMode, HttpRule, HttpSettings,
};
use crate::forward::{Timeouts, Traffic};
use crate::rules::sample::Facts;
use crate::session::{self, Cause, Failure, Live, Record, Stage, Termination};
use crate::stick::{StickCtx, Tracked};
use crate::{route, target::Refusal};

/// What an httplog line adds to a request's record.
#[derive(Debug, Default)]
pub struct HttpLog {
    /// `%r`: the request line, or `<BADREQ>`.
    pub request_line: String,
    /// `%ST`: the status sent to the client, if any.
    pub status: Option<u16>,
    /// `%TR`: milliseconds from the request's first byte to its complete head.
    pub t_request: Option<u64>,
    /// `%Tw`: milliseconds queued.
    pub t_queue: Option<u64>,
    /// `%Tr`: milliseconds from the request sent to the response head.
    pub t_response: Option<u64>,
    /// Characters 3 and 4 of `%tsc`: the persistence cookie's client and server side.
    pub cookie: [char; 2],
    /// Not logged (`option dontlognull` on a connection that sent nothing).
    pub silent: bool,
}

/// Bytes read from a socket and not yet used.
#[derive(Default)]
struct Buf {
    data: Vec<u8>,
    pos: usize,
}

const READ: usize = 16 * 1024;

/// Buffers a thread keeps for its connections' next reads.
const SPARE_BUFS: usize = 64;

thread_local! {
    /// Emptied read buffers, lent again: an idle connection holds none, and a busy one does not
    /// pay an allocation and a free of 16 KiB per request.
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Drop for Buf {
    fn drop(&mut self) {
        self.pos = self.data.len();
        self.release();
    }
}

impl Buf {
    fn avail(&self) -> &[u8] {
        &self.data[self.pos..]
    }
    fn is_empty(&self) -> bool {
        self.pos == self.data.len()
    }
    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.data.len() {
            self.data.clear();
            self.pos = 0;
        }
    }
    /// Gives the memory back while nothing is buffered (an idle keep-alive connection holds none).
    fn release(&mut self) {
        if self.is_empty() && self.data.capacity() > 0 {
            let mut data = std::mem::take(&mut self.data);
            self.pos = 0;
            // A buffer that grew for a big head is not kept.
            if data.capacity() <= 2 * READ {
                data.clear();
                SPARE.with(|s| {
                    let mut s = s.borrow_mut();
                    if s.len() < SPARE_BUFS {
                        s.push(data);
                    }
                });
            }
        }
    }
    /// Reads what the socket has (waiting for it); `Ok(0)` at its end.
    async fn fill(&mut self, s: &Sock) -> std::io::Result<usize> {
        if self.pos > 0 {
            self.data.drain(..self.pos);
            self.pos = 0;
        }
        loop {
            s.readable().await?;
            if self.data.capacity() == 0 {
                self.data = SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_default();
            }
            if self.data.capacity() - self.data.len() < READ / 4 {
                self.data.reserve(READ);
            }
            match s.try_read_buf(&mut self.data) {
                Ok(n) => {
                    if n > 0 && self.data.len() < self.data.capacity() {
                        // A short read drained the socket: forget its readiness now, so that the
                        // next wait goes to epoll instead of a read that would say EAGAIN (tokio
                        // keeps the readiness if an event came in meanwhile).
                        s.drained();
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

async fn within<T>(limit: Option<Duration>, f: impl std::future::Future<Output = T>) -> Option<T> {
    match limit {
        Some(d) => tokio::time::timeout(d, f).await.ok(),
        None => Some(f.await),
    }
}

/// `write_all` under a time limit. The bytes are offered to the socket first: a write that goes
/// through at once (the usual case) reads no clock and arms no timer.
async fn write_within(
    limit: Option<Duration>,
    s: &Sock,
    mut bytes: &[u8],
) -> Option<std::io::Result<()>> {
    match s.try_write(bytes) {
        Ok(n) if n == bytes.len() && !s.pending() => return Some(Ok(())),
        Ok(n) => bytes = &bytes[n..],
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => return Some(Err(e)),
    }
    within(limit, write_all(s, bytes)).await
}

/// Writes all of `buf` and waits until it is on the wire.
async fn write_all(s: &Sock, buf: &[u8]) -> std::io::Result<()> {
    s.write_all(buf).await
}

/// A server connection kept open after a response, for this client's next request to that server.
struct Idle {
    backend: usize,
    server: usize,
    stream: Sock,
    buf: Buf,
}

const CLIENT_TIMEOUT: Termination = Termination {
    cause: Cause::ClientTimeout,
    stage: Stage::Request,
};
const CLIENT_ABORT: Termination = Termination {
    cause: Cause::ClientAbort,
    stage: Stage::Request,
};

/// How long, and how many bytes, a closing client connection is drained (see `Conn::linger`).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// Idle server connections one client connection keeps at most.
const MAX_IDLE: usize = 4;

/// Which side failed while bodies moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

#[derive(Debug, Clone, Copy)]
enum Fail {
    Abort(Side),
    Timeout(Side),
    /// A body whose framing broke (bad chunk): the side that sent it.
    Framing(Side),
    /// The server's response head is not valid HTTP (HAProxy's `PH`).
    Invalid,
}

impl Fail {
    fn cause(self) -> Cause {
        match self {
            Fail::Abort(Side::Client) | Fail::Framing(Side::Client) => Cause::ClientAbort,
            Fail::Abort(Side::Server) | Fail::Framing(Side::Server) => Cause::ServerAbort,
            Fail::Timeout(Side::Client) => Cause::ClientTimeout,
            Fail::Timeout(Side::Server) => Cause::ServerTimeout,
            Fail::Invalid => Cause::Proxy,
        }
    }
}

/// Relays a body framed by `len` from `from` (its buffered bytes first) to `to`, after the message
/// head, which goes out in the same write as the body bytes already buffered: one system call for
/// a small response instead of two. The head is `first` if we edited it, else the `lead` bytes at
/// the front of `buf` (not copied at all). `moved` counts the body bytes.
#[allow(clippy::too_many_arguments)]
async fn relay_body(
    len: BodyLen,
    mut first: Vec<u8>,
    mut lead: usize,
    buf: &mut Buf,
    from: &Sock,
    from_side: Side,
    to: &Sock,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    moved: &mut u64,
) -> Result<(), Fail> {
    let to_side = match from_side {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    };
    let send_first = async |first: &mut Vec<u8>| -> Result<(), Fail> {
        match write_within(write_timeout, to, first).await {
            None => Err(Fail::Timeout(to_side)),
            Some(Err(_)) => Err(Fail::Abort(to_side)),
            Some(Ok(())) => {
                first.clear();
                Ok(())
            }
        }
    };
    let send = async |bytes: &[u8]| -> Result<(), Fail> {
        match write_within(write_timeout, to, bytes).await {
            None => Err(Fail::Timeout(to_side)),
            Some(Err(_)) => Err(Fail::Abort(to_side)),
            Some(Ok(())) => Ok(()),
        }
    };
    let mut left = match len {
        BodyLen::None => {
            if !first.is_empty() {
                send_first(&mut first).await?;
            }
            if lead > 0 {
                send(&buf.avail()[..lead]).await?;
                buf.consume(lead);
            }
            return Ok(());
        }
        BodyLen::Length(n) => n,
        BodyLen::Chunked | BodyLen::UntilClose => u64::MAX,
    };
    let mut chunked = (len == BodyLen::Chunked).then(Chunked::default);
    loop {
        if buf.avail().len() == lead && (lead > 0 || !first.is_empty()) {
            // Nothing of the body here yet: the head goes alone, at once.
            if lead > 0 {
                send(&buf.avail()[..lead]).await?;
                buf.consume(lead);
                lead = 0;
            } else {
                send_first(&mut first).await?;
            }
        }
        if buf.is_empty() {
            match within(read_timeout, buf.fill(from)).await {
                None => return Err(Fail::Timeout(from_side)),
                Some(Err(_)) => return Err(Fail::Abort(from_side)),
                Some(Ok(0)) if len == BodyLen::UntilClose => return Ok(()),
                Some(Ok(0)) => return Err(Fail::Abort(from_side)),
                Some(Ok(_)) => {}
            }
        }
        let avail = buf.avail();
        let body = &avail[lead..];
        let n = match &mut chunked {
            Some(c) => c.feed(body).map_err(|_| Fail::Framing(from_side))?,
            None => body.len().min(usize::try_from(left).unwrap_or(usize::MAX)),
        };
        if first.is_empty() {
            send(&avail[..lead + n]).await?;
        } else {
            first.extend_from_slice(&body[..n]);
            send_first(&mut first).await?;
        }
        buf.consume(lead + n);
        lead = 0;
        *moved += n as u64;
        if len != BodyLen::UntilClose {
            left = left.saturating_sub(n as u64);
        }
        let done = match &chunked {
            Some(c) => c.is_done(),
            None => left == 0,
        };
        if done {
            return Ok(());
        }
    }
}

/// The request-side state of one client connection.
struct Conn<'rt> {
    rt: &'rt Runtime,
    fe_idx: usize,
    client: Sock,
    /// What the TLS handshake told, on a bind that terminates TLS.
    tls: Option<Box<crate::tls::Info>>,
    cbuf: Buf,
    peer: SocketAddr,
    local: SocketAddr,
    listen_port: u16,
    /// Set when the connection came with an `accept-proxy` header.
    proxied: Option<Box<crate::proxy_protocol::Proxied>>,
    idle: Vec<Idle>,
    stick: Option<StickCtx<'rt>>,
    /// Requests served.
    served: u64,
    /// Bytes of every request, for the tracked entries when the connection ends.
    traffic: Traffic,
}

/// How a request rule ends a request.
enum Stop {
    Deny(u16),
    Reject,
    Reply(Vec<u8>),
}

/// What the connection does after a request.
enum Next<'rt> {
    Again,
    Close,
    /// The protocol changed (101): the rest is a tunnel.
    Tunnel(Box<Tunnel<'rt>>),
}

struct Tunnel<'rt> {
    server: Sock,
    sbuf: Buf,
    timeouts: Timeouts,
    /// The server's slot (maxconn, leastconn) stays taken while the tunnel lasts.
    _slot: Option<Presence<'rt>>,
}

/// Runs one `mode http` client connection to its end (`tls`: the bind terminates TLS). `peer` and
/// `local` are the client's address and its original destination: the socket's, or an
/// `accept-proxy` header's (`proxied`).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    rt: &Runtime,
    fe_idx: usize,
    client: TcpStream,
    tls: Option<&crate::tls::BindTls>,
    peer: SocketAddr,
    local: SocketAddr,
    listen_port: u16,
    proxied: Option<Box<crate::proxy_protocol::Proxied>>,
) {
    let fe = &rt.cfg.frontends[fe_idx];
    // An IPv4 client on a dual-stack socket is seen as ::ffff:a.b.c.d; rules, tables, logs and
    // X-Forwarded-For want a.b.c.d.
    let (peer, local) = (crate::addr::canonical(peer), crate::addr::canonical(local));
    let stick = (!rt.tables.is_empty()).then(|| StickCtx {
        tables: &rt.tables,
        own: fe.table,
        tracked: Default::default(),
    });
    // tcp-request connection rules, once per connection, before any handshake (with accept-proxy,
    // before the header: `proxy_protocol::accept` ran them on the sending proxy's address).
    let facts = Facts::addresses(peer, local, stick.as_ref());
    let verdict = match proxied {
        Some(_) => None,
        None => route::run_rules(&fe.connection_rules, &fe.acls, &facts),
    };
    let refused = |end: Termination| {
        let mut live = new_live(rt, peer, local, fe_idx, SystemTime::now(), Instant::now());
        live.rec.termination = end;
        live.rec.http.as_mut().expect("http record").request_line = "<BADREQ>".into();
        live.finish();
    };
    let (client, info, header) = match tls {
        _ if verdict == Some(false) => (Sock::Plain(client), None, None),
        None => (Sock::Plain(client), None, None),
        Some(t) => {
            let limit = fe.timeout_client.unwrap_or(Duration::from_secs(5));
            match crate::tls::accept(client, t, limit).await {
                // `accept-proxy proxy-in-tls`: the PROXY header comes first inside the session.
                Ok((mut s, info)) if t.proxy_in_tls => {
                    let read = crate::proxy_protocol::accept_in_tls(rt, fe_idx, &mut s, peer);
                    match Box::pin(read).await {
                        Ok(h) => (s, Some(Box::new(info)), Some(h)),
                        Err(end) => {
                            refused(end);
                            return;
                        }
                    }
                }
                Ok((s, info)) => (s, Some(Box::new(info)), None),
                Err(e) => {
                    use crate::tls::Handshake;
                    tracing::info!(client = %peer, frontend = %fe.name, "{e}");
                    rt.policy.tls_failed.fetch_add(1, Relaxed);
                    let cause = match e {
                        Handshake::Timeout => Cause::ClientTimeout,
                        Handshake::Refused(_) => Cause::Proxy,
                        Handshake::Failed(_) => Cause::ClientAbort,
                    };
                    refused(Termination::new(cause, Stage::Request));
                    return;
                }
            }
        }
    };
    let (peer, local, proxied) = match header {
        Some((addrs, p)) => {
            let (peer, local) = addrs.unwrap_or((peer, local));
            (peer, local, Some(Box::new(p)))
        }
        None => (peer, local, proxied),
    };
    let mut conn = Conn {
        rt,
        fe_idx,
        client,
        tls: info,
        cbuf: Buf::default(),
        peer,
        local,
        listen_port,
        proxied,
        idle: Vec::new(),
        stick,
        served: 0,
        traffic: Traffic::default(),
    };
    // tcp-request session rules, once per connection: after the PROXY header and the handshake, on
    // the client's address (as in HAProxy).
    let verdict = match verdict {
        Some(false) => verdict,
        _ => route::run_rules(&fe.session_rules, &fe.acls, &conn.facts(None, &[])),
    };
    if verdict == Some(false) {
        rt.policy.rejected.fetch_add(1, Relaxed);
        refused(Termination::new(Cause::Proxy, Stage::Request));
    }
    if verdict != Some(false) {
        loop {
            match conn.exchange().await {
                Next::Again => continue,
                Next::Close => break,
                Next::Tunnel(t) => {
                    conn.tunnel(*t).await;
                    break;
                }
            }
        }
    }
    conn.linger().await;
    // The entries this connection tracked stop counting it; its bytes count.
    if let Some(stick) = &conn.stick {
        let tracked: Tracked = stick
            .tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (t, k) in tracked.iter().flatten() {
            rt.tables[*t].untrack(k, conn.traffic.bytes_in, conn.traffic.bytes_out);
        }
    }
}

/// A request's record on its way to the log.
fn new_live(
    rt: &Runtime,
    peer: SocketAddr,
    local: SocketAddr,
    fe_idx: usize,
    at: SystemTime,
    started: Instant,
) -> Live<'_> {
    Live {
        rt,
        started,
        finished: false,
        rec: Record {
            http: Some(Box::new(HttpLog {
                cookie: ['-', '-'],
                ..HttpLog::default()
            })),
            ..Record::new(peer, local, at, fe_idx)
        },
    }
}

/// Whether a backend is its frontend's own section (a `listen`): its rules are not run twice.
fn same_section(fe: &Frontend, be: &Backend) -> bool {
    fe.pos == be.pos
}

impl<'rt> Conn<'rt> {
    fn facts<'a>(&'a self, http: Option<&'a Request>, raw: &'a [u8]) -> Facts<'a> {
        Facts {
            client: self.peer,
            dst: self.local,
            hello: None,
            http,
            peeked: raw.len(),
            raw,
            stick: self.stick.as_ref(),
            res: None,
            tls: self.tls.as_deref(),
        }
    }

    fn live(&self, at: SystemTime, started: Instant) -> Live<'rt> {
        new_live(self.rt, self.peer, self.local, self.fe_idx, at, started)
    }

    /// Sends a response we made and ends the request (and the connection).
    async fn answer(&self, live: &mut Live<'_>, bytes: &[u8], end: Termination) -> Next<'rt> {
        let _ = within(Some(Duration::from_secs(5)), write_all(&self.client, bytes)).await;
        live.rec.traffic.bytes_out += bytes.len() as u64;
        let h = live.rec.http.as_mut().expect("http record");
        h.status = Some(reply::status_of(bytes));
        live.rec.termination = end;
        Next::Close
    }

    async fn error(
        &self,
        live: &mut Live<'_>,
        status: u16,
        be: Option<&Backend>,
        end: Termination,
    ) -> Next<'rt> {
        let fe = &self.rt.cfg.frontends[self.fe_idx];
        let mut settings: Vec<&HttpSettings> = Vec::with_capacity(2);
        if let Some(b) = be {
            settings.push(&b.http);
        }
        settings.push(&fe.http);
        let page = reply::error(status, &settings);
        self.answer(live, &page, end).await
    }

    /// One request and its response.
    async fn exchange(&mut self) -> Next<'rt> {
        let rt = self.rt;
        let fe = &rt.cfg.frontends[self.fe_idx];
        let first = self.served == 0;
        // Only a connection's first request counts from here (the accept); the clock is read
        // once less for the others.
        let conn_start = first.then(Instant::now);
        // Wait for the request's first byte.
        let wait = if first {
            fe.http.timeout_request.or(fe.timeout_client)
        } else {
            fe.http
                .timeout_keep_alive
                .or(fe.http.timeout_request)
                .or(fe.timeout_client)
        };
        if self.cbuf.is_empty() {
            self.cbuf.release();
            // Between requests a keep-alive connection also listens for a graceful stop: it is
            // woken then and closes (registered before the flag is read, so no wake is missed).
            // Between requests a keep-alive connection is idle: a graceful stop closes it then
            // (`sessions::close_idle`); marked before the flag is read, so none is missed.
            if !first {
                crate::sessions::set_idle(true);
                if rt.stopping.load(Relaxed) {
                    return Next::Close;
                }
            }
            let read = within(wait, self.cbuf.fill(&self.client)).await;
            if !first {
                crate::sessions::set_idle(false);
            }
            match read {
                Some(Ok(n)) if n > 0 => {}
                res => {
                    // Nothing came: an idle keep-alive connection ends without a log line; a new
                    // connection that sent nothing logs one (unless dontlognull).
                    if let Some(conn_start) = conn_start {
                        let mut live = self.live(SystemTime::now(), conn_start);
                        live.rec.http.as_mut().expect("http record").silent = fe.http.dontlognull;
                        return match res {
                            None => self.bad_request(live, Some(408), CLIENT_TIMEOUT).await,
                            Some(_) => self.bad_request(live, None, CLIENT_ABORT).await,
                        };
                    }
                    return Next::Close;
                }
            }
        }
        let started = Instant::now();
        let mut live = self.live(SystemTime::now(), started);
        // The head, within `timeout http-request` of its first byte.
        let head_limit = fe.http.timeout_request.or(fe.timeout_client);
        // For a connection's first request HAProxy counts from the accept, so a client that waits and
        // then trickles gets no more than the timeout in all.
        let deadline = head_limit.map(|d| conn_start.unwrap_or(started) + d);
        // Bytes already seen without a line end: a head trickled byte by byte is parsed once per
        // line, not once per byte.
        let mut seen_len = 0usize;
        let req = loop {
            let avail = self.cbuf.avail();
            let parse = avail[seen_len.min(avail.len())..].contains(&b'\n')
                || avail.len() >= req_parse::DEFAULT_MAX_HEAD
                || seen_len == 0;
            seen_len = avail.len();
            let parsed = if parse {
                req_parse::parse(avail, req_parse::DEFAULT_MAX_HEAD)
            } else {
                Err(HttpError::Incomplete)
            };
            match parsed {
                Ok(r) => break r,
                Err(HttpError::Incomplete) => {}
                Err(e) => {
                    let status = if matches!(e, HttpError::TooLarge(_)) {
                        431
                    } else {
                        400
                    };
                    tracing::debug!(client = %self.peer, "bad request: {e}");
                    live.rec.traffic.bytes_in += self.cbuf.avail().len() as u64;
                    let end = Termination::new(Cause::Proxy, Stage::Request);
                    return self.bad_request(live, Some(status), end).await;
                }
            }
            let read = match deadline {
                Some(d) => tokio::time::timeout_at(d, self.cbuf.fill(&self.client))
                    .await
                    .ok(),
                None => Some(self.cbuf.fill(&self.client).await),
            };
            match read {
                Some(Ok(n)) if n > 0 => {}
                Some(_) => return self.bad_request(live, None, CLIENT_ABORT).await,
                None => return self.bad_request(live, Some(408), CLIENT_TIMEOUT).await,
            }
        };
        self.served += 1;
        // Room for the usual edits (X-Forwarded-For, Connection) without growing.
        let mut head: Vec<u8> = Vec::with_capacity(req.head_len + 96);
        head.extend_from_slice(&self.cbuf.avail()[..req.head_len]);
        self.cbuf.consume(req.head_len);
        live.rec.traffic.bytes_in += head.len() as u64;
        {
            // The request line and the host are only for the log line: not made without one.
            let logged = !rt.cfg.frontends[live.rec.frontend].logs.is_empty();
            let h = live.rec.http.as_mut().expect("http record");
            if logged {
                h.request_line = message::request_line(&head);
            }
            h.t_request = Some(started.elapsed().as_millis() as u64);
            if logged {
                live.rec.name = req.host().map(Box::from);
            }
        }
        let next = self.serve(&mut live, req, &mut head).await;
        self.traffic.bytes_in += live.rec.traffic.bytes_in;
        self.traffic.bytes_out += live.rec.traffic.bytes_out;
        if let Some(stick) = &self.stick {
            let status = live.rec.http.as_ref().and_then(|h| h.status).unwrap_or(0);
            let tracked = stick.tracked.lock().unwrap_or_else(|e| e.into_inner());
            for (t, k) in tracked.iter().flatten() {
                rt.tables[*t].http_request(k, (400..500).contains(&status));
            }
        }
        live.finish();
        next
    }

    /// Ends a request whose head could not be read: `<BADREQ>` in the log, the error page for
    /// `status` if there is one, and the connection closes.
    async fn bad_request(
        &self,
        mut live: Live<'rt>,
        status: Option<u16>,
        end: Termination,
    ) -> Next<'rt> {
        live.rec.http.as_mut().expect("http record").request_line = "<BADREQ>".into();
        match status {
            Some(s) => {
                self.error(&mut live, s, None, end).await;
            }
            None => live.rec.termination = end,
        }
        live.finish();
        Next::Close
    }

    /// Applies a section's http-request rules. `Err` carries the response that ends the request.
    fn request_rules(
        &self,
        rules: &[HttpRule],
        acls: &[crate::rules::Acl],
        req: &mut Request,
        head: &mut Vec<u8>,
    ) -> Result<(), Stop> {
        for rule in rules {
            let facts = self.facts(Some(req), head);
            if let Some(c) = &rule.cond
                && !c.eval(acls, &facts)
            {
                continue;
            }
            let edited = match &rule.action {
                HttpAction::Allow => return Ok(()),
                HttpAction::Deny { status } => {
                    self.rt.policy.rejected.fetch_add(1, Relaxed);
                    return Err(Stop::Deny(*status));
                }
                HttpAction::Reject => {
                    self.rt.policy.rejected.fetch_add(1, Relaxed);
                    return Err(Stop::Reject);
                }
                HttpAction::Prometheus => {
                    let body = crate::account::prometheus::render(self.rt);
                    return Err(Stop::Reply(reply::ok(
                        "text/plain; version=0.0.4; charset=utf-8",
                        body.as_bytes(),
                    )));
                }
                HttpAction::Redirect(r) => {
                    let rendered = r.to.render(&facts).unwrap_or_default();
                    let loc = reply::location(r, &rendered, req.target(), req.host());
                    return Err(Stop::Reply(reply::redirect(r.code, &loc, true)));
                }
                HttpAction::SetHeader(name, t) => {
                    let v = t.render(&facts).unwrap_or_default();
                    message::set_header(head, name, &v)
                }
                HttpAction::AddHeader(name, t) => {
                    let v = t.render(&facts).unwrap_or_default();
                    rewrite::add_header(head, name, &v)
                }
                HttpAction::DelHeader(name) => rewrite::remove_header(head, name),
                HttpAction::SetPath(t) => {
                    let path = t.render(&facts).unwrap_or_default();
                    let target = match req.target().split_once('?') {
                        Some((_, q)) => format!("{path}?{q}"),
                        None => path,
                    };
                    message::set_target(head, &target)
                }
            };
            // Later rules and routing see the edited request.
            if let Ok(r) = req_parse::parse(&edited, edited.len().max(req_parse::DEFAULT_MAX_HEAD))
            {
                *req = r;
                *head = edited;
            }
        }
        Ok(())
    }

    /// From a parsed request head to the end of its response.
    async fn serve(
        &mut self,
        live: &mut Live<'rt>,
        mut req: Request,
        head: &mut Vec<u8>,
    ) -> Next<'rt> {
        let rt = self.rt;
        let fe = &rt.cfg.frontends[self.fe_idx];
        live.rec.termination = Termination::new(Cause::Killed, Stage::Request);

        // tcp-request content rules see every request.
        {
            let facts = self.facts(Some(&req), head);
            if route::run_rules(&fe.content_rules, &fe.acls, &facts) == Some(false) {
                rt.policy.rejected.fetch_add(1, Relaxed);
                live.rec.termination = Termination::new(Cause::Proxy, Stage::Request);
                return Next::Close;
            }
        }
        if let Err(stop) = self.request_rules(&fe.http.request_rules, &fe.acls, &mut req, head) {
            return self.refused(live, stop, None).await;
        }
        if let Some(next) = self.stats(live, &fe.http, &fe.acls, &req, head).await {
            return next;
        }
        // route
        let be_idx = {
            let facts = self.facts(Some(&req), head);
            route::select_backend(&rt.cfg, fe, &facts)
        };
        let Some(be_idx) = be_idx else {
            return self
                .error(
                    live,
                    503,
                    None,
                    Termination::new(Cause::Proxy, Stage::Request),
                )
                .await;
        };
        live.rec.backend = Some(be_idx);
        let be = &rt.cfg.backends[be_idx];
        if !same_section(fe, be) {
            if let Err(stop) = self.request_rules(&be.http.request_rules, &be.acls, &mut req, head)
            {
                return self.refused(live, stop, Some(be)).await;
            }
            if let Some(next) = self.stats(live, &be.http, &be.acls, &req, head).await {
                return next;
            }
        }
        let body = match framing::request_body(&req.headers) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(client = %self.peer, "bad request: {e}");
                return self
                    .error(
                        live,
                        400,
                        Some(be),
                        Termination::new(Cause::Proxy, Stage::Request),
                    )
                    .await;
            }
        };

        // persistence cookie, else stick rules and balancing
        let health = &rt.backends[be_idx].health;
        let usable = |i: usize| health[i].up.load(Relaxed) && !health[i].maint.load(Relaxed);
        let (seen, first_seen) = match &be.http.cookie {
            Some(c) => {
                let server_cookies: Vec<Option<&str>> =
                    be.servers.iter().map(|s| s.cookie.as_deref()).collect();
                cookie::lookup(c, &req.headers, &server_cookies, usable)
            }
            None => (Seen::None, None),
        };
        let queued_at = Instant::now();
        let srv = match seen {
            Seen::Valid(i) => i,
            _ => {
                let facts = self.facts(Some(&req), head);
                match session::choose_server(rt, be_idx, &facts, &mut live.rec).await {
                    Ok(s) => s,
                    Err(end) => {
                        live.rec.http.as_mut().expect("http record").t_queue =
                            Some(queued_at.elapsed().as_millis() as u64);
                        return self.error(live, 503, Some(be), end).await;
                    }
                }
            }
        };
        live.rec.http.as_mut().expect("http record").t_queue =
            Some(queued_at.elapsed().as_millis() as u64);

        // The head the server gets (kept: a retry on a fresh connection sends it again).
        let mode = fe
            .http
            .conn_mode
            .unwrap_or_default()
            .max(be.http.conn_mode.unwrap_or_default());
        let client_wants_keep = if req.minor >= 1 {
            !message::has_token(&req.headers, "connection", "close")
        } else {
            message::has_token(&req.headers, "connection", "keep-alive")
        };
        // h2c upgrades are not followed: HTTP/2 inside the tunnel would pass every rule by.
        let h2c = req
            .header("upgrade")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("h2c"));
        let upgrade = !h2c
            && req.minor >= 1
            && message::has_token(&req.headers, "connection", "upgrade")
            && req.header("upgrade").next().is_some();
        let mut out = std::mem::take(head);
        // An absolute-form target names the host: the server gets it as Host (RFC 9112 §3.2.2),
        // so that it serves the host the rules saw.
        if let (Some(authority), _) = req_parse::split_target(req.target()) {
            out = message::set_header(&out, "Host", authority);
        }
        if h2c {
            out = rewrite::remove_header(&out, "upgrade");
            out = rewrite::remove_header(&out, "http2-settings");
            out = message::set_header(
                &out,
                "Connection",
                if client_wants_keep {
                    "keep-alive"
                } else {
                    "close"
                },
            );
        }
        if let Some(c) = &be.http.cookie
            && (c.indirect || c.mode == CookieMode::Prefix)
            && let Some(kept) = cookie::strip_request_cookie(&req.headers, c)
        {
            out = rewrite::remove_header(&out, "cookie");
            for v in kept {
                out = rewrite::add_header(&out, "Cookie", &v);
            }
        }
        if let Some(ff) = be.http.forwardfor.as_ref().or(fe.http.forwardfor.as_ref()) {
            let name = ff.header.as_deref().unwrap_or("X-Forwarded-For");
            // Either section's `except` keeps the header off, as in HAProxy.
            let excepted = [&be.http.forwardfor, &fe.http.forwardfor]
                .into_iter()
                .flatten()
                .any(|f| f.except.iter().any(|n| n.contains(&self.peer.ip())));
            let client_sent_one = ff.if_none && req.header(name).next().is_some();
            if !(excepted || client_sent_one) {
                rewrite::append_forwarded_for(&mut out, self.peer.ip(), ff.header.as_deref());
            }
        }
        let server_close = mode >= HttpConnMode::ServerClose && !upgrade;
        if server_close {
            out = message::set_header(&out, "Connection", "close");
        }
        // A connection to a name computed per request is not kept: the next request may name
        // another host, which must pass the guard and be resolved again.
        let poolable = !matches!(
            be.servers[srv].target,
            crate::config::model::ServerTarget::Dynamic { .. }
        );
        let to_server = be.timeout_server;
        let to_client = fe.timeout_client;
        let fe_rules: &[HttpRule] = if same_section(fe, be) {
            &[]
        } else {
            &fe.http.response_rules
        };

        let all_headers = !fe_rules.is_empty()
            || !be.http.response_rules.is_empty()
            || be.stick_rules.iter().any(|r| r.response);
        let mut in_server: Option<Presence<'rt>> = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A server connection: this client's idle one to that server (first attempt only),
            // else a new one.
            let reused = if attempt == 1 {
                self.idle
                    .iter()
                    .position(|i| i.backend == be_idx && i.server == srv)
                    .map(|p| self.idle.remove(p))
                    // A request without a body is retried if the connection turns out closed, so
                    // the probe (a system call per request) is only for those with one.
                    .filter(|i| {
                        i.buf.is_empty() && (body == BodyLen::None || still_open(&i.stream))
                    })
            } else {
                None
            };
            let (server, mut sbuf, was_reused) = match reused {
                Some(i) => {
                    live.rec.server = Some(srv);
                    crate::sessions::on_server(be_idx, srv);
                    in_server = Some(rt.enter_server(be_idx, srv));
                    live.rec.connect_ms = Some(0);
                    (i.stream, i.buf, true)
                }
                None => {
                    let facts = self.facts(Some(&req), &out);
                    match session::connect_server(
                        rt,
                        fe,
                        be_idx,
                        srv,
                        &facts,
                        &mut live.rec,
                        &mut in_server,
                        self.listen_port,
                        self.proxied.as_deref(),
                    )
                    .await
                    {
                        Ok((s, to)) => {
                            // (TCP_NODELAY: set by connect, before connecting.)
                            let srv = live.rec.server.unwrap_or(srv);
                            let s = match &be.servers[srv].tls {
                                None => Sock::Plain(s),
                                Some(t) => {
                                    let facts = self.facts(Some(&req), &out);
                                    let sni =
                                        be.servers[srv].sni.as_ref().and_then(|e| e.eval(&facts));
                                    let limit = be.timeout_connect.unwrap_or(
                                        crate::config::validate::DEFAULT_TIMEOUT_CONNECT,
                                    );
                                    match crate::tls::connect(
                                        s,
                                        t,
                                        sni.as_deref(),
                                        to.get().ip(),
                                        limit,
                                    )
                                    .await
                                    {
                                        Ok(s) => {
                                            let sent = session::send_proxy_in_tls(
                                                rt,
                                                be_idx,
                                                srv,
                                                &s,
                                                &live.rec,
                                                &facts,
                                                self.proxied.as_deref(),
                                            )
                                            .await;
                                            if let Err(end) = sent {
                                                return self.error(live, 503, Some(be), end).await;
                                            }
                                            s
                                        }
                                        Err(e) => {
                                            tracing::info!(client = %self.peer, server = %to, backend = %be.name, "TLS to the server failed: {e}");
                                            rt.policy.tls_failed.fetch_add(1, Relaxed);
                                            let end = crate::session::server_tls_failed(&e);
                                            return self.error(live, 503, Some(be), end).await;
                                        }
                                    }
                                }
                            };
                            (s, Buf::default(), false)
                        }
                        Err(Failure { end, refusal }) => {
                            let status = match refusal {
                                Some(Refusal::Policy(_) | Refusal::GuardName { .. })
                                | Some(Refusal::GuardAddr { .. }) => 403,
                                _ => 503,
                            };
                            return self.error(live, status, Some(be), end).await;
                        }
                    }
                }
            };
            let srv = live.rec.server.unwrap_or(srv);
            if attempt == 1 {
                let facts = self.facts(Some(&req), &out);
                session::store_sticks(rt, be_idx, &facts, srv);
            }

            // Send the head, then the body and the response at once.
            live.rec.termination = Termination::new(Cause::Killed, Stage::Data);
            let sent_at = Instant::now();
            if !matches!(write_within(to_server, &server, &out).await, Some(Ok(()))) {
                if was_reused {
                    // The server had closed its idle connection: a fresh one.
                    continue;
                }
                let end = Termination::new(Cause::ServerAbort, Stage::Connect);
                return self.error(live, 503, Some(be), end).await;
            }
            let mut up_bytes = 0u64;
            let mut down_bytes = 0u64;
            let uploading = AtomicBool::new(body != BodyLen::None);
            // The client's buffer moves out while `exchange` reads the connection.
            let mut cbuf = std::mem::take(&mut self.cbuf);
            let exchange = Exchange {
                conn: self,
                be_idx,
                be,
                srv,
                req: &req,
                seen,
                first_seen,
                client_keep: mode < HttpConnMode::Close && client_wants_keep,
                upgrade,
                may_retry: was_reused && body == BodyLen::None,
                uploading: &uploading,
                fe_rules,
                all_headers,
            };
            let (up_res, down_res) = {
                let client = &self.client;
                let upload = async {
                    let r = relay_body(
                        body,
                        Vec::new(),
                        0,
                        &mut cbuf,
                        client,
                        Side::Client,
                        &server,
                        to_client,
                        to_server,
                        &mut up_bytes,
                    )
                    .await;
                    uploading.store(false, Relaxed);
                    r
                };
                let download = exchange.response(&server, &mut sbuf, sent_at, &mut down_bytes);
                tokio::pin!(upload, download);
                let mut up_res: Option<Result<(), Fail>> = None;
                let down_res = loop {
                    tokio::select! {
                        r = &mut upload, if up_res.is_none() => {
                            if let Err(f) = r
                                && f.cause() != Cause::ServerAbort
                            {
                                // The client went away (or stalled) while sending.
                                break Err(Early::Fail(f, Stage::Data, None));
                            }
                            up_res = Some(r);
                        }
                        r = &mut download => break r,
                    }
                };
                (up_res, down_res)
            };
            self.cbuf = cbuf;
            live.rec.traffic.bytes_in += up_bytes;
            live.rec.traffic.bytes_out += down_bytes;
            let h = live.rec.http.as_mut().expect("http record");
            return match down_res {
                Err(Early::Retry) => continue,
                Ok(done) => {
                    h.status = Some(done.status);
                    h.t_response = Some(done.t_response);
                    h.cookie = done.cookie;
                    live.rec.termination = Termination::NORMAL;
                    if done.status == 101 {
                        let timeouts = match be.timeout_tunnel {
                            Some(t) => Timeouts::Tunnel(t),
                            None => Timeouts::Sides {
                                client: to_client,
                                server: to_server,
                            },
                        };
                        return Next::Tunnel(Box::new(Tunnel {
                            server,
                            sbuf,
                            timeouts,
                            _slot: in_server,
                        }));
                    }
                    drop(in_server);
                    let body_sent = up_res.is_some_and(|r| r.is_ok()) || body == BodyLen::None;
                    if done.server_keep && body_sent && !server_close && poolable && sbuf.is_empty()
                    {
                        self.idle.push(Idle {
                            backend: be_idx,
                            server: srv,
                            stream: server,
                            buf: sbuf,
                        });
                        if let Some(last) = self.idle.last_mut() {
                            last.buf.release();
                        }
                        if self.idle.len() > MAX_IDLE {
                            self.idle.remove(0);
                        }
                    }
                    if done.client_keep && body_sent {
                        Next::Again
                    } else {
                        Next::Close
                    }
                }
                Err(Early::Fail(f, stage, status)) => {
                    if let Some(s) = status {
                        h.status = Some(s);
                    }
                    let end = Termination::new(f.cause(), stage);
                    live.rec.termination = end;
                    if let (Some(status), Stage::Headers) = (status, stage) {
                        // Nothing reached the client yet: it gets an error page.
                        h.status = None;
                        return self.error(live, status, Some(be), end).await;
                    }
                    Next::Close
                }
            };
        }
    }

    /// A request rule ended the request: a deny (`PR`) or a redirect (`LR`).
    async fn refused(&self, live: &mut Live<'_>, stop: Stop, be: Option<&Backend>) -> Next<'rt> {
        match stop {
            Stop::Deny(status) => {
                let end = Termination::new(Cause::Proxy, Stage::Request);
                self.error(live, status, be, end).await
            }
            Stop::Reject => {
                live.rec.termination = Termination::new(Cause::Proxy, Stage::Request);
                Next::Close
            }
            Stop::Reply(msg) => {
                let end = Termination::new(Cause::Local, Stage::Request);
                self.answer(live, &msg, end).await
            }
        }
    }

    /// The stats URI: answered here (401 without valid credentials). The page itself comes with
    /// the operations issue; this one lists the backends and servers with their state.
    async fn stats(
        &mut self,
        live: &mut Live<'_>,
        http: &HttpSettings,
        acls: &[crate::rules::Acl],
        req: &Request,
        head: &[u8],
    ) -> Option<Next<'rt>> {
        let st = http.stats.as_ref()?;
        if !req.target().starts_with(&st.uri) {
            return None;
        }
        let end = Termination::new(Cause::Local, Stage::Request);
        if !st.auth.is_empty() && !reply::authorized(&st.auth, req.header("authorization").next()) {
            return Some(
                self.answer(live, &reply::unauthorized(&st.realm), end)
                    .await,
            );
        }
        let admin = st
            .admin
            .as_ref()
            .is_some_and(|c| c.eval(acls, &self.facts(Some(req), head)));
        if req.method().eq_ignore_ascii_case("POST") {
            // The admin form: read its (small) body, apply it, and send the browser back to the
            // page (so that reloading the page does not post again).
            let notice = match self.form_body(req).await {
                Some(body) if admin => {
                    super::stats::apply(self.rt, &super::stats::form_fields(&body))
                }
                Some(_) => "Permission denied: 'stats admin' does not allow this client.".into(),
                None => "The form could not be read.".into(),
            };
            tracing::info!(client = %self.peer, "stats page: {notice}");
            let to = format!(
                "{};st={}",
                st.uri,
                if notice.starts_with("Action") {
                    "DONE"
                } else {
                    "DENY"
                }
            );
            return Some(
                self.answer(live, &reply::redirect(303, &to, true), end)
                    .await,
            );
        }
        let notice = if req.target().ends_with(";st=DONE") {
            "Action processed successfully."
        } else if req.target().ends_with(";st=DENY") {
            "Action not processed (not allowed, or nothing selected)."
        } else {
            ""
        };
        let page = super::stats::page(self.rt, st, req.target().ends_with(";csv"), admin, notice);
        Some(self.answer(live, &page, end).await)
    }

    /// A POSTed form's body (Content-Length, at most 16 KiB, within 5 s).
    async fn form_body(&mut self, req: &Request) -> Option<Vec<u8>> {
        let len: usize = req.header("content-length").next()?.trim().parse().ok()?;
        if len > 16 * 1024 {
            return None;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.cbuf.avail().len() < len {
            match tokio::time::timeout_at(deadline, self.cbuf.fill(&self.client)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
        let body = self.cbuf.avail()[..len].to_vec();
        self.cbuf.consume(len);
        Some(body)
    }

    /// Closes the client side gently: our response may be followed by request bytes we never
    /// read (a denied upload, pipelined requests); closing over them would reset the connection and
    /// the client could lose the response. So: FIN, then read and drop for a moment.
    async fn linger(&mut self) {
        self.client.shutdown_write();
        let mut dropped = 0usize;
        let deadline = Instant::now() + LINGER;
        let mut scratch = Buf::default();
        while dropped < LINGER_BYTES {
            match tokio::time::timeout_at(deadline, scratch.fill(&self.client)).await {
                Ok(Ok(n)) if n > 0 => {
                    dropped += n;
                    scratch.consume(n);
                }
                _ => return,
            }
        }
    }

    /// After a 101: both ways as a tunnel.
    async fn tunnel(&mut self, t: Tunnel<'rt>) {
        let Tunnel {
            server,
            sbuf,
            timeouts,
            _slot,
        } = t;
        if !sbuf.is_empty() && write_all(&self.client, sbuf.avail()).await.is_err() {
            return;
        }
        if !self.cbuf.is_empty() && write_all(&server, self.cbuf.avail()).await.is_err() {
            return;
        }
        let mut traffic = Traffic::default();
        match (&self.client, &server) {
            (Sock::Plain(c), Sock::Plain(s)) => {
                let _ = crate::forward::forward(c, s, timeouts, &mut traffic).await;
            }
            (c, s) => {
                let _ = crate::forward::relay::relay(c, s, timeouts, &mut traffic).await;
            }
        }
        self.traffic.bytes_in += traffic.bytes_in;
        self.traffic.bytes_out += traffic.bytes_out;
    }
}

/// Whether an idle server connection is still usable: nothing to read, not closed.
fn still_open(s: &Sock) -> bool {
    s.still_open()
}

/// How a response went.
struct Done {
    status: u16,
    t_response: u64,
    cookie: [char; 2],
    client_keep: bool,
    server_keep: bool,
}

/// How a response failed: the failure, the stage, and the status to send if nothing was sent yet.
enum Early {
    Fail(Fail, Stage, Option<u16>),
    /// A reused connection closed before answering: the request goes again on a new one.
    Retry,
}

/// The response half of one request.
struct Exchange<'c, 'rt> {
    conn: &'c Conn<'rt>,
    be_idx: usize,
    be: &'c Backend,
    srv: usize,
    req: &'c Request,
    seen: Seen,
    first_seen: Option<u64>,
    client_keep: bool,
    /// The request asked to switch protocols (a 101 is only accepted then).
    upgrade: bool,
    /// A reused connection and a request without body: a close before any answer is retried.
    may_retry: bool,
    /// The request body is still moving (the wait for the response head does not time out).
    uploading: &'c AtomicBool,
    fe_rules: &'c [HttpRule],
    /// Response rules or `stick store-response` read the response's headers: keep them all.
    all_headers: bool,
}

impl Exchange<'_, '_> {
    async fn response(
        &self,
        server: &Sock,
        sbuf: &mut Buf,
        sent_at: Instant,
        moved: &mut u64,
    ) -> Result<Done, Early> {
        let client = &self.conn.client;
        let to_server = self.be.timeout_server;
        let to_client = self.conn.rt.cfg.frontends[self.conn.fe_idx].timeout_client;
        let head_fail = |f: Fail| {
            let status = match f {
                Fail::Timeout(Side::Server) => 504,
                _ => 502,
            };
            Early::Fail(f, Stage::Headers, Some(status))
        };
        let mut interim = false;
        // Read heads until a final one; interim (1xx) heads go to the client as they are.
        let res = loop {
            let res = loop {
                match message::parse_response(sbuf.avail(), self.all_headers) {
                    Ok(r) => break r,
                    Err(ResponseError::Incomplete) => {}
                    Err(e) => {
                        tracing::debug!(server = self.srv, "bad response: {e}");
                        return Err(head_fail(Fail::Invalid));
                    }
                }
                match within(to_server, sbuf.fill(server)).await {
                    // `timeout server` counts once the request is sent, not while it uploads.
                    None if self.uploading.load(Relaxed) => {}
                    None => return Err(head_fail(Fail::Timeout(Side::Server))),
                    Some(Ok(n)) if n > 0 => {}
                    Some(_) if self.may_retry && !interim && sbuf.is_empty() => {
                        return Err(Early::Retry);
                    }
                    Some(_) => return Err(head_fail(Fail::Abort(Side::Server))),
                }
            };
            if (100..200).contains(&res.status) && res.status != 101 {
                let head = &sbuf.avail()[..res.head_len];
                if !matches!(write_within(to_client, client, head).await, Some(Ok(()))) {
                    return Err(Early::Fail(Fail::Abort(Side::Client), Stage::Data, None));
                }
                sbuf.consume(res.head_len);
                *moved += res.head_len as u64;
                interim = true;
                continue;
            }
            if res.status == 101 && !self.upgrade {
                tracing::debug!(
                    server = self.srv,
                    "101 to a request that asked for no upgrade"
                );
                return Err(head_fail(Fail::Invalid));
            }
            break res;
        };
        let t_response = sent_at.elapsed().as_millis() as u64;
        let body = framing::response_body(res.status, self.req.method(), &res.headers)
            .map_err(|_| head_fail(Fail::Invalid))?;
        // The head stays in `sbuf` unless an edit makes a new one.
        let (mut head, cookie) = self.edit_response(&sbuf.avail()[..res.head_len], &res);
        // Chunked with a Content-Length too: the length goes (RFC 9112 §6.3), so nobody after us
        // reads the body differently, and the server connection is not trusted again.
        let both = body == BodyLen::Chunked
            && res
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
        if both {
            head = Cow::Owned(rewrite::remove_header(&head, "content-length"));
        }
        let server_keep = res.minor >= 1
            && !both
            && !message::has_token(&res.headers, "connection", "close")
            && body != BodyLen::UntilClose;
        // A graceful stop, or a reload, that came while the request was served closes the
        // connection after this response.
        let rt = self.conn.rt;
        let client_keep = self.client_keep
            && body != BodyLen::UntilClose
            && res.status != 101
            && !rt.stopping.load(Relaxed)
            && !rt.retired.load(Relaxed);
        let head = if client_keep {
            if self.req.minor == 0 {
                Cow::Owned(message::set_header(&head, "Connection", "keep-alive"))
            } else if message::has_token(&res.headers, "connection", "close") {
                Cow::Owned(rewrite::remove_header(&head, "connection"))
            } else {
                head
            }
        } else if res.status == 101 {
            head
        } else {
            Cow::Owned(message::set_header(&head, "Connection", "close"))
        };
        *moved += head.len() as u64;
        // An edited head goes from its own buffer, an unedited one from `sbuf`.
        let (head, lead) = match head {
            Cow::Owned(h) => {
                sbuf.consume(res.head_len);
                (h, 0)
            }
            Cow::Borrowed(_) => (Vec::new(), res.head_len),
        };
        if res.status == 101 {
            let bytes = if lead > 0 {
                &sbuf.avail()[..lead]
            } else {
                &head
            };
            if !matches!(write_within(to_client, client, bytes).await, Some(Ok(()))) {
                return Err(Early::Fail(Fail::Abort(Side::Client), Stage::Data, None));
            }
            sbuf.consume(lead);
        } else {
            relay_body(
                body,
                head,
                lead,
                sbuf,
                server,
                Side::Server,
                client,
                to_server,
                to_client,
                moved,
            )
            .await
            .map_err(|f| Early::Fail(f, Stage::Data, None))?;
        }
        Ok(Done {
            status: res.status,
            t_response,
            cookie,
            client_keep,
            server_keep,
        })
    }

    /// The response head with the http-response rules and the persistence cookie applied.
    fn edit_response<'h>(&self, head: &'h [u8], res: &Response) -> (Cow<'h, [u8]>, [char; 2]) {
        let mut head = Cow::Borrowed(head);
        let conn = self.conn;
        let mut facts = conn.facts(Some(self.req), &[]);
        facts.res = Some(&res.headers);
        // `stick store-response`: keys the response gives (res.cook, res.hdr).
        if self.be.stick_rules.iter().any(|r| r.response) {
            session::store_sticks(conn.rt, self.be_idx, &facts, self.srv);
        }
        for (rules, acls) in [
            (&self.be.http.response_rules[..], &self.be.acls[..]),
            (self.fe_rules, &conn.rt.cfg.frontends[conn.fe_idx].acls[..]),
        ] {
            for rule in rules {
                if let Some(c) = &rule.cond
                    && !c.eval(acls, &facts)
                {
                    continue;
                }
                head = Cow::Owned(match &rule.action {
                    HttpAction::Allow => break,
                    HttpAction::SetHeader(n, t) => {
                        message::set_header(&head, n, &t.render(&facts).unwrap_or_default())
                    }
                    HttpAction::AddHeader(n, t) => {
                        rewrite::add_header(&head, n, &t.render(&facts).unwrap_or_default())
                    }
                    HttpAction::DelHeader(n) => rewrite::remove_header(&head, n),
                    _ => continue,
                });
            }
        }
        let Some(c) = &self.be.http.cookie else {
            return (head, ['-', '-']);
        };
        let client_code = self.seen.code();
        let Some(value) = self.be.servers[self.srv].cookie.as_deref() else {
            return (head, [client_code, 'N']);
        };
        let server_sets = cookie::response_cookie(&res.headers, &c.name).is_some();
        let server_code = match c.mode {
            CookieMode::Insert => {
                if server_sets && c.preserve {
                    'P'
                } else {
                    if server_sets {
                        head = Cow::Owned(remove_set_cookie(&head, &c.name));
                    }
                    let has_right_one = self.seen == Seen::Valid(self.srv);
                    let refresh = c.maxidle.is_some() || c.maxlife.is_some();
                    let post_ok = !c.postonly || self.req.method().eq_ignore_ascii_case("POST");
                    if post_ok && (!has_right_one || refresh) {
                        head = Cow::Owned(rewrite::add_header(
                            &head,
                            "Set-Cookie",
                            &cookie::set_cookie(c, value, self.first_seen),
                        ));
                        if c.nocache {
                            head =
                                Cow::Owned(rewrite::add_header(&head, "Cache-Control", "private"));
                        }
                        if has_right_one { 'U' } else { 'I' }
                    } else if server_sets {
                        'D'
                    } else {
                        'N'
                    }
                }
            }
            CookieMode::Rewrite | CookieMode::Prefix => {
                if server_sets {
                    let lines: Vec<String> = res
                        .headers
                        .iter()
                        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
                        .map(|(_, v)| {
                            cookie::rewrite_set_cookie(c, v, value).unwrap_or_else(|| v.to_string())
                        })
                        .collect();
                    let mut h = rewrite::remove_header(&head, "set-cookie");
                    for l in lines {
                        h = rewrite::add_header(&h, "Set-Cookie", &l);
                    }
                    head = Cow::Owned(h);
                    'R'
                } else {
                    'N'
                }
            }
        };
        (head, [client_code, server_code])
    }
}

/// `head` without the `Set-Cookie` lines that set cookie `name`.
fn remove_set_cookie(head: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    for (i, line) in head.split_inclusive(|b| *b == b'\n').enumerate() {
        let text = String::from_utf8_lossy(line);
        let ours = i > 0
            && text
                .split_once(':')
                .filter(|(n, _)| n.trim().eq_ignore_ascii_case("set-cookie"))
                .and_then(|(_, v)| v.trim().split_once('='))
                .is_some_and(|(n, _)| n.trim() == name);
        if !ours {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_lines_are_removed_by_name() {
        let h = b"HTTP/1.1 200 OK\r\nSet-Cookie: SRV=x; path=/\r\nSet-Cookie: other=1\r\n\r\n";
        assert_eq!(
            remove_set_cookie(h, "SRV"),
            b"HTTP/1.1 200 OK\r\nSet-Cookie: other=1\r\n\r\n"
        );
    }
}

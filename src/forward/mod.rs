//! Forward: moves bytes both ways between client and server until both sides are done, with
//! half-close, idle timeouts and byte counts.
//!
//! Small exchanges are copied through one per-thread buffer (one `recv`, one `send`); once a direction
//! moves bulk data it goes through splice(2): socket → pipe → socket, the bytes never entering user
//! space. The pipe is borrowed from a per-thread pool only while bytes are in flight ([`Pipe::take`]),
//! so an idle connection holds no pipe and no buffer.
//!
//! [`Forward`] is a hand-written future rather than two `async` pumps: waiting on a socket then costs
//! nothing beyond the socket's own reader/writer waker slots (`poll_read_ready`/`poll_write_ready`),
//! so an idle session is small, and one poll serves both directions.

pub mod park;
pub mod relay;

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::session::{Cause, Stage, Termination};
use crate::sys::pipe::{PIPE_SIZE, Pipe};

/// Bytes moved so far, kept in the session's record so a killed session still logs them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    /// Client → server bytes.
    pub bytes_in: u64,
    /// Server → client bytes (HAProxy's `%B`).
    pub bytes_out: u64,
}

/// The idle timeouts while forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeouts {
    /// `timeout client` / `timeout server`: each side's own inactivity (reads from it or writes to
    /// it), as HAProxy counts them.
    Sides {
        client: Option<Duration>,
        server: Option<Duration>,
    },
    /// `timeout tunnel`: inactivity in both directions at once.
    Tunnel(Duration),
}

/// How one direction stopped moving bytes.
enum Stop {
    /// Waiting for a socket; the waker is registered.
    Pending,
    /// The source ended its stream (the caller passes the end on).
    Eof,
    /// Reading the source failed (it reset).
    Read(io::Error),
    /// Writing the destination failed (it reset or went away).
    Write(io::Error),
    /// No pipe could be made (out of file descriptors): a local resource, not the peer.
    Resource(io::Error),
}

/// Moves one direction may make in one poll before yielding to other tasks.
const ROUNDS_PER_POLL: usize = 64;

/// Size of the per-thread copy buffer; a read that fills it marks the direction as bulk.
const COPY_SIZE: usize = 16 * 1024;

thread_local! {
    /// One copy buffer per worker thread, lent for one read-then-write inside a poll, never across
    /// an await: small exchanges cost no per-connection memory.
    static COPY_BUF: std::cell::RefCell<Box<[u8; COPY_SIZE]>> =
        std::cell::RefCell::new(Box::new([0; COPY_SIZE]));
}

/// Forgets a socket's read readiness after a short `recv` emptied it (a TCP receive returns less
/// than asked only when nothing more is queued), so that the next wait goes to epoll instead of a
/// `recv` that would only say EAGAIN: two system calls fewer per request and response on a
/// keep-alive connection. tokio keeps the readiness if an event came in meanwhile, and never
/// forgets an end of stream it was told of, so nothing that arrived is missed. (Not after a short
/// splice: that can be short because the pipe is full.)
fn drained(src: &TcpStream) {
    let _ = src.try_io(Interest::READABLE, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
}

/// Registers for the destination's writability: `Ok` when it is writable again (try again now), or
/// the `Stop` to return.
fn writable(dst: &TcpStream, cx: &mut Context<'_>) -> Result<(), Stop> {
    match dst.poll_write_ready(cx) {
        Poll::Pending => Err(Stop::Pending),
        Poll::Ready(Ok(())) => Ok(()),
        Poll::Ready(Err(e)) => Err(Stop::Write(e)),
    }
}

/// One direction's state: the pipe (or leftover bytes) it holds only while bytes are in flight.
///
/// Small exchanges (requests, responses of a few KiB) are copied through the thread's buffer with one
/// `recv` and one `send`, fewer system calls than socket → pipe → socket. Once a read fills that
/// buffer the direction is bulk and switches to splice(2) for good, as HAProxy's `splice-auto` does.
#[derive(Default)]
struct Dir {
    pipe: Option<Pipe>,
    /// Bytes read by copy that the destination did not take yet (it would block). Rare.
    leftover: Option<Box<[u8]>>,
    bulk: bool,
    done: bool,
}

/// What one copy attempt did.
enum Copied {
    Eof,
    /// Nothing to read now.
    Empty,
    /// Bytes read and all written.
    Moved,
    /// Bytes read, some left over because the destination would block.
    Stuck,
}

impl Dir {
    /// Moves what can be moved now from `src` to `dst`. `moved` is set when a byte crossed.
    fn pump(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
        bytes: &mut u64,
        read_from_src: &mut bool,
        wrote_to_dst: &mut bool,
    ) -> Stop {
        // A bounded number of moves per poll, so one busy connection cannot hold its thread.
        for _ in 0..ROUNDS_PER_POLL {
            // Leftover copied bytes go out before anything else.
            if let Some(left) = self.leftover.as_mut() {
                match dst.try_write(left) {
                    Ok(n) => {
                        *bytes += n as u64;
                        *wrote_to_dst = true;
                        if n == left.len() {
                            self.leftover = None;
                        } else {
                            *left = left[n..].into();
                        }
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Err(stop) = writable(dst, cx) {
                            return stop;
                        }
                        continue;
                    }
                    Err(e) => return Stop::Write(e),
                }
            }
            if !self.bulk {
                match self.copy(src, dst, bytes, read_from_src, wrote_to_dst) {
                    Ok(Copied::Moved | Copied::Stuck) => continue,
                    Ok(Copied::Eof) => return Stop::Eof,
                    Ok(Copied::Empty) => match src.poll_read_ready(cx) {
                        Poll::Pending => return Stop::Pending,
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(e)) => return Stop::Read(e),
                    },
                    Err(stop) => return stop,
                }
            }
            // Drain first: bytes already in the pipe go out before more come in.
            if let Some(pipe) = self.pipe.as_mut().filter(|p| p.len > 0) {
                match dst.try_io(Interest::WRITABLE, || pipe.drain_to(dst)) {
                    Ok(n) => {
                        *bytes += n as u64;
                        *wrote_to_dst = true;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Err(stop) = writable(dst, cx) {
                            return stop;
                        }
                        continue;
                    }
                    Err(e) => return Stop::Write(e),
                }
            }
            let pipe = match self.pipe.as_mut() {
                Some(p) => p,
                None => match Pipe::take() {
                    Ok(p) => self.pipe.insert(p),
                    // Out of file descriptors: this connection cannot go on; the process can.
                    Err(e) => return Stop::Resource(e),
                },
            };
            match src.try_io(Interest::READABLE, || pipe.fill_from(src, PIPE_SIZE)) {
                Ok(0) => {
                    self.release();
                    return Stop::Eof;
                }
                Ok(_) => *read_from_src = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Nothing in flight: the pipe goes back to the pool while we wait.
                    self.release();
                    match src.poll_read_ready(cx) {
                        Poll::Pending => return Stop::Pending,
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(e)) => return Stop::Read(e),
                    }
                }
                Err(e) => return Stop::Read(e),
            }
        }
        cx.waker().wake_by_ref();
        Stop::Pending
    }

    /// One read into the thread's buffer and as much of a write as the destination takes.
    fn copy(
        &mut self,
        src: &TcpStream,
        dst: &TcpStream,
        bytes: &mut u64,
        read_from_src: &mut bool,
        wrote_to_dst: &mut bool,
    ) -> Result<Copied, Stop> {
        COPY_BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            let n = match src.try_read(&mut buf[..]) {
                Ok(0) => return Ok(Copied::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Copied::Empty),
                Err(e) => return Err(Stop::Read(e)),
            };
            *read_from_src = true;
            if n == COPY_SIZE {
                self.bulk = true;
            } else {
                drained(src);
            }
            let mut off = 0;
            while off < n {
                match dst.try_write(&buf[off..n]) {
                    Ok(w) => {
                        off += w;
                        *bytes += w as u64;
                        *wrote_to_dst = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.leftover = Some(buf[off..n].into());
                        return Ok(Copied::Stuck);
                    }
                    Err(e) => return Err(Stop::Write(e)),
                }
            }
            Ok(Copied::Moved)
        })
    }

    fn release(&mut self) {
        if let Some(p) = self.pipe.take() {
            p.give_back();
        }
    }
}

/// The forwarding future of one session.
pub struct Forward<'a> {
    client: &'a TcpStream,
    server: &'a TcpStream,
    traffic: &'a mut Traffic,
    st: State,
}

/// What forwarding keeps between polls.
struct State {
    up: Dir,
    down: Dir,
    idle: IdleClock,
}

/// What a parked session keeps of its forwarding: which directions ended or went bulk, and when
/// each side last moved a byte. Nothing else survives parking: no pipe, no buffer, no timer (the
/// timeouts and the park delay are the configuration's, looked up again on waking).
#[derive(Debug, Clone, Copy)]
pub struct Rest {
    client_seen: Instant,
    server_seen: Instant,
    up: (bool, bool),
    down: (bool, bool),
}

impl Rest {
    fn clock(&self, timeouts: Timeouts) -> IdleClock {
        let mut clock = IdleClock::new(timeouts);
        clock.client_seen = self.client_seen;
        clock.server_seen = self.server_seen;
        clock
    }

    /// The timeout a side has passed at `now`, if any.
    pub(crate) fn expired(&self, timeouts: Timeouts, now: Instant) -> Option<Termination> {
        self.clock(timeouts).expired(now)
    }

    /// When a side's idle timeout passes, if one is set.
    pub(crate) fn deadline(&self, timeouts: Timeouts) -> Option<Instant> {
        self.clock(timeouts).timeout_deadline()
    }

    /// Which sockets still have a direction to read: the client's (client → server not ended) and
    /// the server's. A parked session watches only those, so that an end already passed on does
    /// not wake it again and again.
    pub(crate) fn reading(&self) -> (bool, bool) {
        (!self.up.1, !self.down.1)
    }
}

impl Dir {
    /// Bytes are in flight in this direction (a pipe or copied bytes waiting for the destination).
    fn busy(&self) -> bool {
        self.pipe.is_some() || self.leftover.is_some()
    }
}

impl<'a> Forward<'a> {
    /// Forwarding that may end with [`Ending::Park`] after `park_after` of quiet in both directions.
    pub fn parking(
        client: &'a TcpStream,
        server: &'a TcpStream,
        timeouts: Timeouts,
        park_after: Duration,
        traffic: &'a mut Traffic,
    ) -> Forward<'a> {
        let mut f = forward(client, server, timeouts, traffic);
        f.st.idle.park_after = Some(Millis::from(park_after));
        f
    }

    /// Forwarding that carries on from a parked session's state, woken now: it does not park again
    /// before the byte that woke it has been read.
    pub fn resume(
        client: &'a TcpStream,
        server: &'a TcpStream,
        rest: Rest,
        timeouts: Timeouts,
        park_after: Option<Duration>,
        traffic: &'a mut Traffic,
    ) -> Forward<'a> {
        let mut idle = rest.clock(timeouts);
        idle.park_after = park_after.map(Millis::from);
        idle.woken = true;
        let dir = |(bulk, done)| Dir {
            bulk,
            done,
            ..Dir::default()
        };
        Forward {
            client,
            server,
            traffic,
            st: State {
                up: dir(rest.up),
                down: dir(rest.down),
                idle,
            },
        }
    }

    /// The state to park with, once this has ended with [`Ending::Park`] (nothing in flight then).
    pub fn into_rest(self) -> Rest {
        let st = self.st;
        debug_assert!(!st.up.busy() && !st.down.busy());
        Rest {
            client_seen: st.idle.client_seen,
            server_seen: st.idle.server_seen,
            up: (st.up.bulk, st.up.done),
            down: (st.down.bulk, st.down.done),
        }
    }
}

/// A duration in whole milliseconds (HAProxy's timeout unit), in four bytes: a forwarding
/// session keeps three. Longer than 49 days counts as 49 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Millis(u32);

impl Millis {
    fn get(self) -> Duration {
        Duration::from_millis(u64::from(self.0))
    }
}

impl From<Duration> for Millis {
    fn from(d: Duration) -> Millis {
        Millis(u32::try_from(d.as_millis()).unwrap_or(u32::MAX))
    }
}

/// The idle timeouts of a session being forwarded (the splicing forwarder's and the relay's):
/// each side's last activity and one timer for both.
pub(crate) struct IdleClock {
    timeout_client: Option<Millis>,
    timeout_server: Option<Millis>,
    /// `timeout tunnel`: any activity counts for both sides.
    joint: bool,
    /// Last read from or write to each side.
    client_seen: Instant,
    server_seen: Instant,
    /// Quiet this long in both directions, a spliced session is parked ([`park`]).
    park_after: Option<Millis>,
    /// Nothing in flight: parking is possible (bytes waiting for a blocked destination are not).
    parkable: bool,
    /// Back from parking and nothing moved since: no parking again until the byte (or end) that
    /// woke it has been read, whatever the clock says.
    woken: bool,
    /// One timer for both idle timeouts (and parking), made only if one is set, re-armed lazily:
    /// activity moves the deadlines but the timer is only reset when it fires early.
    timer: Option<Pin<Box<Sleep>>>,
}

/// How forwarding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The session is over, for this reason.
    End(Termination),
    /// Both directions have been quiet for the park delay with nothing in flight: the session can
    /// give up its task and its sockets' registrations until a byte arrives ([`park`]).
    Park,
}

impl IdleClock {
    pub(crate) fn new(timeouts: Timeouts) -> IdleClock {
        let now = Instant::now();
        let (timeout_client, timeout_server, joint) = match timeouts {
            Timeouts::Sides { client, server } => (client, server, false),
            Timeouts::Tunnel(t) => (Some(t), Some(t), true),
        };
        IdleClock {
            timeout_client: timeout_client.map(Millis::from),
            timeout_server: timeout_server.map(Millis::from),
            joint,
            client_seen: now,
            server_seen: now,
            park_after: None,
            parkable: false,
            woken: false,
            timer: None,
        }
    }

    /// The earliest idle deadline, if any timeout is set: a side's timeout, or the time to park.
    fn deadline(&self) -> Option<Instant> {
        self.timeout_deadline()
            .into_iter()
            .chain(self.park_deadline())
            .min()
    }

    /// When the session may park: both sides quiet for the park delay, nothing in flight, and not
    /// just woken with its first byte unread.
    fn park_deadline(&self) -> Option<Instant> {
        self.park_after
            .filter(|_| self.parkable && !self.woken)
            .map(|t| self.client_seen.max(self.server_seen) + t.get())
    }

    /// The timeout a side has passed at `now`, if any (the client's first, as HAProxy reports).
    pub(crate) fn expired(&self, now: Instant) -> Option<Termination> {
        if self
            .timeout_client
            .is_some_and(|t| self.client_seen + t.get() <= now)
        {
            return Some(Termination::new(Cause::ClientTimeout, Stage::Data));
        }
        if self
            .timeout_server
            .is_some_and(|t| self.server_seen + t.get() <= now)
        {
            return Some(Termination::new(Cause::ServerTimeout, Stage::Data));
        }
        None
    }

    /// When a side's timeout would pass (parking aside), if a timeout is set.
    pub(crate) fn timeout_deadline(&self) -> Option<Instant> {
        let c = self.timeout_client.map(|t| self.client_seen + t.get());
        let s = self.timeout_server.map(|t| self.server_seen + t.get());
        c.into_iter().chain(s).min()
    }

    /// Notes which sides moved bytes in this poll, then: `Ready` with the timeout's termination when
    /// a side has been idle too long, or `Ready(Park)` when both have been quiet for the park delay,
    /// else `Pending` with the timer armed (no clock read when nothing moved and the timer has not
    /// fired).
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        mut cli_active: bool,
        mut srv_active: bool,
    ) -> Poll<Ending> {
        let Some(deadline) = self.deadline() else {
            return Poll::Pending;
        };
        if self.joint {
            cli_active |= srv_active;
            srv_active = cli_active;
        }
        if cli_active || srv_active {
            self.woken = false;
            let now = Instant::now();
            if cli_active {
                self.client_seen = now;
            }
            if srv_active {
                self.server_seen = now;
            }
        }
        let deadline = self.deadline().unwrap_or(deadline);
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        // Activity only moves deadlines later (the timer then fires early and is re-armed), except
        // the park deadline appearing (nothing in flight any more, or the first byte after a
        // wake-up): then the timer is brought forward.
        if deadline < timer.deadline() {
            timer.as_mut().reset(deadline);
        }
        let mut fired = timer.as_mut().poll(cx).is_ready();
        while fired {
            let now = Instant::now();
            if let Some(end) = self.expired(now) {
                return Poll::Ready(Ending::End(end));
            }
            if self.park_deadline().is_some_and(|d| d <= now) {
                self.timer = None;
                return Poll::Ready(Ending::Park);
            }
            // Fired early: activity moved the deadline since the timer was set.
            let timer = self.timer.as_mut().expect("armed above");
            timer.as_mut().reset(deadline);
            fired = timer.as_mut().poll(cx).is_ready();
        }
        Poll::Pending
    }
}

/// Forwards until both directions end, one side fails, or a side stays idle past its timeout.
pub fn forward<'a>(
    client: &'a TcpStream,
    server: &'a TcpStream,
    timeouts: Timeouts,
    traffic: &'a mut Traffic,
) -> Forward<'a> {
    Forward {
        client,
        server,
        traffic,
        st: State {
            up: Dir::default(),
            down: Dir::default(),
            idle: IdleClock::new(timeouts),
        },
    }
}

/// Passes a source's end of stream on to its destination (half-close: the other direction keeps
/// going), unless the other direction has ended too: then the session is over and closing the
/// socket sends the FIN (its receive queue is empty: its own end was read), one system call fewer.
fn pass_end(dst: &TcpStream, other_done: bool) {
    if !other_done {
        let _ = SockRef::from(dst).shutdown(Shutdown::Write);
    }
}

fn aborted(cause: Cause, doing: &str, e: &io::Error) -> Termination {
    tracing::debug!("{doing}: {e}");
    Termination::new(cause, Stage::Data)
}

impl Future for Forward<'_> {
    type Output = Ending;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ending> {
        let this = self.get_mut();
        let (client, server) = (this.client, this.server);
        let st = &mut this.st;
        let (mut cli_read, mut srv_wrote, mut srv_read, mut cli_wrote) =
            (false, false, false, false);
        let mut end = None;
        if !st.up.done {
            let bytes = &mut this.traffic.bytes_in;
            match st
                .up
                .pump(cx, client, server, bytes, &mut cli_read, &mut srv_wrote)
            {
                Stop::Pending => {}
                Stop::Eof => {
                    st.up.done = true;
                    pass_end(server, st.down.done);
                }
                Stop::Read(e) => end = Some(aborted(Cause::ClientAbort, "reading the client", &e)),
                Stop::Write(e) => end = Some(aborted(Cause::ServerAbort, "writing the server", &e)),
                Stop::Resource(e) => end = Some(aborted(Cause::Resource, "making a pipe", &e)),
            }
        }
        if end.is_none() && !st.down.done {
            let bytes = &mut this.traffic.bytes_out;
            match st
                .down
                .pump(cx, server, client, bytes, &mut srv_read, &mut cli_wrote)
            {
                Stop::Pending => {}
                Stop::Eof => {
                    st.down.done = true;
                    pass_end(client, st.up.done);
                }
                Stop::Read(e) => end = Some(aborted(Cause::ServerAbort, "reading the server", &e)),
                Stop::Write(e) => end = Some(aborted(Cause::ClientAbort, "writing the client", &e)),
                Stop::Resource(e) => end = Some(aborted(Cause::Resource, "making a pipe", &e)),
            }
        }
        if let Some(t) = end {
            st.up.release();
            st.down.release();
            return Poll::Ready(Ending::End(t));
        }
        if st.up.done && st.down.done {
            return Poll::Ready(Ending::End(Termination::NORMAL));
        }
        st.idle.parkable = !st.up.busy() && !st.down.busy();
        st.idle
            .poll(cx, cli_read || cli_wrote, srv_read || srv_wrote)
    }
}

/// A session's forwarding: splice between two plain sockets, else the copying relay.
pub enum Forwarding<'a> {
    Splice(Forward<'a>),
    /// Boxed: only sessions with TLS on a side pay for it.
    Relay(Pin<Box<relay::Relay<'a>>>),
}

/// Forwards between `client` and `server`, spliced when both are plain; spliced forwarding parks
/// after `park_after` of quiet when that is given.
pub fn start<'a>(
    client: &'a crate::tls::Sock,
    server: &'a crate::tls::Sock,
    timeouts: Timeouts,
    park_after: Option<Duration>,
    traffic: &'a mut Traffic,
) -> Forwarding<'a> {
    use crate::tls::Sock;
    match (client, server) {
        (Sock::Plain(c), Sock::Plain(s)) => Forwarding::Splice(match park_after {
            Some(p) => Forward::parking(c, s, timeouts, p, traffic),
            None => forward(c, s, timeouts, traffic),
        }),
        (c, s) => Forwarding::Relay(Box::pin(relay::relay(c, s, timeouts, traffic))),
    }
}

impl Future for Forwarding<'_> {
    type Output = Ending;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ending> {
        match self.get_mut() {
            Forwarding::Splice(f) => Pin::new(f).poll(cx),
            Forwarding::Relay(r) => r.as_mut().poll(cx).map(Ending::End),
        }
    }
}

/// Writes all of `buf` to a shared stream.
pub async fn write_all(s: &TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        s.writable().await?;
        match s.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

//! The engine: keep-alive connections, a timetable that releases requests at a fixed rate, and the
//! bookkeeping. Everything runs on one current-thread runtime, so the shared state is plain
//! `Rc<RefCell>`.
//!
//! How a request finds a connection: when a request falls due, the timetable hands it to the
//! connection that has been idle longest; if every connection is busy, the request waits in a FIFO
//! backlog and the next connection to finish takes it at once. Its latency is counted from the time
//! it was *due*, so the wait for a connection (queuing that a closed-loop tool such as wrk hides:
//! "coordinated omission") is part of the figure. The idle-longest choice also spreads a hold run's
//! requests over all of its connections.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::{JoinHandle, LocalSet};

use crate::hist::Histogram;
use crate::http;
use crate::timer::PreciseTimer;
use crate::timetable::Timetable;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// C connections, all opened first; requests at the rate for the duration.
    Rate,
    /// N connections opened (bounded concurrency) with one request each, reported, held; then the
    /// rate spread over them; reported again; held a moment; closed.
    Hold,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
    pub conns: usize,
    pub rate: u64,
    pub secs: Duration,
    /// Rate mode: the timetable runs this long before requests are counted.
    pub warmup: Duration,
    /// Per connect, per request.
    pub timeout: Duration,
    /// Hold mode: connections being opened at once.
    pub connect_concurrency: usize,
    /// Hold mode: all open, before the rate phase (the bench reads the proxy's memory then).
    pub pause: Duration,
    /// Hold mode: after the rate phase, before closing (the bench reads the proxy's CPU then).
    pub linger: Duration,
    /// After the last request is due: how long answers may still take.
    pub drain: Duration,
}

#[derive(Default)]
pub struct Report {
    pub opened: u64,
    pub connect_failed: u64,
    /// Hold mode: the request sent on each connection as it opens.
    pub first_ok: u64,
    pub first_failed: u64,
    /// Counted requests answered 200 (their latencies are in `lat`).
    pub done: u64,
    pub err_io: u64,
    pub err_timeout: u64,
    /// A response other than 200, or one we could not parse.
    pub err_http: u64,
    /// Counted requests that were due but never sent (still in the backlog when the run ended).
    pub unsent: u64,
    /// Counted requests that found no idle connection and waited in the backlog.
    pub queued: u64,
    /// Largest backlog seen.
    pub backlog_max: u64,
    pub lat: Histogram,
    /// How late the timetable released requests (the client's own timer and CPU; included in `lat`).
    pub lag: Histogram,
    /// The counted window: secs (the rate phase without warm-up).
    pub window: Duration,
}

impl Report {
    pub fn errors(&self) -> u64 {
        self.err_io + self.err_timeout + self.err_http
    }
}

#[derive(Clone, Copy)]
struct Slot {
    due: Instant,
    /// False during warm-up: sent, not counted.
    counted: bool,
}

struct Conn {
    slot: Cell<Option<Slot>>,
    wake: Notify,
}

struct Shared {
    cfg: Config,
    request: Vec<u8>,
    conns: Vec<Conn>,
    idle: RefCell<VecDeque<usize>>,
    backlog: RefCell<VecDeque<Slot>>,
    in_flight: Cell<usize>,
    stop: Cell<bool>,
    /// Hold mode's connect phase: connections whose first request is done (either way).
    settled: Cell<usize>,
    report: RefCell<Report>,
}

enum Failure {
    Io,
    Timeout,
    Http,
}

/// Runs the whole thing on a current-thread runtime; prints hold mode's phase lines as it goes.
pub fn run(cfg: Config) -> std::io::Result<Report> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = LocalSet::new();
    local.block_on(&rt, drive(cfg))
}

async fn drive(cfg: Config) -> std::io::Result<Report> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: gatehouse-loadgen\r\n\r\n",
        cfg.path, cfg.host
    )
    .into_bytes();
    let conns = (0..cfg.conns)
        .map(|_| Conn {
            slot: Cell::new(None),
            wake: Notify::new(),
        })
        .collect();
    let sh = Rc::new(Shared {
        request,
        conns,
        idle: RefCell::new(VecDeque::with_capacity(cfg.conns)),
        backlog: RefCell::new(VecDeque::new()),
        in_flight: Cell::new(0),
        stop: Cell::new(false),
        settled: Cell::new(0),
        report: RefCell::new(Report::default()),
        cfg,
    });
    let cfg = &sh.cfg;
    let timer = PreciseTimer::new()?;

    // Open the connections. Rate mode opens them all at once (a few dozen); hold mode through a
    // semaphore, and sends a first request on each so the proxy has done the whole setup.
    let limit = Rc::new(Semaphore::new(match cfg.mode {
        Mode::Rate => cfg.conns.max(1),
        Mode::Hold => cfg.connect_concurrency.max(1),
    }));
    let t_open = Instant::now();
    let tasks: Vec<JoinHandle<()>> = (0..cfg.conns)
        .map(|id| tokio::task::spawn_local(conn_task(sh.clone(), id, limit.clone())))
        .collect();
    // Every connection settles within its connect timeout plus its first request's, in waves of
    // `limit`; the bound covers that with room, and the loop polls every 10 ms.
    let waves = cfg.conns.div_ceil(cfg.connect_concurrency.max(1)) as u32;
    let open_limit = (cfg.timeout * 2) * waves.max(1) + Duration::from_secs(5);
    while sh.settled.get() < cfg.conns && t_open.elapsed() < open_limit {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let open_secs = t_open.elapsed().as_secs_f64();
    let (opened, open_line) = {
        let r = sh.report.borrow();
        let line = format!(
            "open conns={} opened={} connect_failed={} first_ok={} first_failed={} secs={open_secs:.2}",
            cfg.conns, r.opened, r.connect_failed, r.first_ok, r.first_failed
        );
        (r.opened, line)
    };
    if cfg.mode == Mode::Hold {
        phase(&open_line);
    }
    if opened == 0 {
        stop_all(&sh, tasks).await;
        return Err(std::io::Error::other(format!(
            "no connection to {} could be opened",
            cfg.addr
        )));
    }
    if cfg.mode == Mode::Hold {
        tokio::time::sleep(cfg.pause).await;
        phase("rate-start");
    }

    // The timetable. Bounded: `total` requests, each due at a fixed time within warm-up + secs.
    let warmup = if cfg.mode == Mode::Rate {
        cfg.warmup
    } else {
        Duration::ZERO
    };
    let tt = Timetable::new(Instant::now(), cfg.rate);
    let uncounted = tt.count_within(warmup);
    let total = tt.count_within(warmup + cfg.secs);
    for i in 0..total {
        let due = tt.due(i);
        timer.sleep_until(due).await?;
        let counted = i >= uncounted;
        if counted {
            sh.report.borrow_mut().lag.record(due.elapsed());
        }
        dispatch(&sh, Slot { due, counted });
    }
    // Answers still on their way: wait for them, bounded.
    let t_end = Instant::now();
    while (sh.in_flight.get() > 0 || !sh.backlog.borrow().is_empty()) && t_end.elapsed() < cfg.drain
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if cfg.mode == Mode::Hold {
        phase("rate-end");
        tokio::time::sleep(cfg.linger).await;
    }
    stop_all(&sh, tasks).await;
    let mut report = sh.report.replace(Report::default());
    report.window = cfg.secs;
    Ok(report)
}

fn phase(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Gives a due request to the connection idle longest, or to the backlog.
fn dispatch(sh: &Shared, slot: Slot) {
    let id = sh.idle.borrow_mut().pop_front();
    match id {
        Some(id) => {
            sh.conns[id].slot.set(Some(slot));
            sh.conns[id].wake.notify_one();
        }
        None => {
            let mut backlog = sh.backlog.borrow_mut();
            backlog.push_back(slot);
            if slot.counted {
                let mut r = sh.report.borrow_mut();
                r.queued += 1;
                r.backlog_max = r.backlog_max.max(backlog.len() as u64);
            }
        }
    }
}

/// Ends every connection: requests still in the backlog are counted unsent, idle connections are
/// woken with nothing to do, and whatever has not ended within a second is aborted.
async fn stop_all(sh: &Shared, tasks: Vec<JoinHandle<()>>) {
    sh.stop.set(true);
    let left: Vec<Slot> = sh.backlog.borrow_mut().drain(..).collect();
    sh.report.borrow_mut().unsent += left.iter().filter(|s| s.counted).count() as u64;
    let idle: Vec<usize> = sh.idle.borrow_mut().drain(..).collect();
    for id in idle {
        sh.conns[id].wake.notify_one();
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    for t in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        let abort = t.abort_handle();
        if tokio::time::timeout(left, t).await.is_err() {
            abort.abort();
        }
    }
}

async fn conn_task(sh: Rc<Shared>, id: usize, limit: Rc<Semaphore>) {
    let cfg = &sh.cfg;
    let mut buf = Vec::with_capacity(4096);
    let mut stream = {
        let Ok(_permit) = limit.acquire().await else {
            sh.settled.set(sh.settled.get() + 1);
            return;
        };
        let s = connect(cfg).await;
        let Some(mut s) = s else {
            sh.report.borrow_mut().connect_failed += 1;
            sh.settled.set(sh.settled.get() + 1);
            return;
        };
        sh.report.borrow_mut().opened += 1;
        if cfg.mode == Mode::Hold {
            let ok = exchange_timed(&mut s, &sh.request, &mut buf, cfg.timeout)
                .await
                .is_ok();
            if ok {
                sh.report.borrow_mut().first_ok += 1;
            } else {
                sh.report.borrow_mut().first_failed += 1;
                sh.settled.set(sh.settled.get() + 1);
                return;
            }
        }
        sh.settled.set(sh.settled.get() + 1);
        Some(s)
    };
    // Each turn takes one request (from the backlog or from the timetable) or ends the task; the
    // timetable is finite and `stop` ends the rest.
    loop {
        let queued = sh.backlog.borrow_mut().pop_front();
        let slot = match queued {
            Some(s) => s,
            None => {
                if sh.stop.get() {
                    return;
                }
                sh.idle.borrow_mut().push_back(id);
                sh.conns[id].wake.notified().await;
                match sh.conns[id].slot.take() {
                    Some(s) => s,
                    None => return, // woken by stop_all
                }
            }
        };
        if stream.is_none() {
            // The previous request failed and closed the connection: open another.
            stream = connect(cfg).await;
        }
        let Some(s) = stream.as_mut() else {
            if slot.counted {
                sh.report.borrow_mut().err_io += 1;
            }
            // Not at once again: a refused connect would otherwise spin through the timetable.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        sh.in_flight.set(sh.in_flight.get() + 1);
        let res = exchange_timed(s, &sh.request, &mut buf, cfg.timeout).await;
        let end = Instant::now();
        sh.in_flight.set(sh.in_flight.get() - 1);
        if !slot.counted {
            if res.is_err() {
                stream = None;
            }
            continue;
        }
        let mut r = sh.report.borrow_mut();
        match res {
            Ok(()) => {
                r.done += 1;
                r.lat.record(end - slot.due);
            }
            Err(f) => {
                match f {
                    Failure::Io => r.err_io += 1,
                    Failure::Timeout => r.err_timeout += 1,
                    Failure::Http => r.err_http += 1,
                }
                stream = None;
            }
        }
    }
}

async fn connect(cfg: &Config) -> Option<TcpStream> {
    let s = tokio::time::timeout(cfg.timeout, TcpStream::connect(cfg.addr))
        .await
        .ok()?
        .ok()?;
    let _ = s.set_nodelay(true);
    Some(s)
}

async fn exchange_timed(
    s: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> Result<(), Failure> {
    tokio::time::timeout(timeout, exchange(s, request, buf))
        .await
        .unwrap_or(Err(Failure::Timeout))
}

/// The body sizes we accept: the bench's object is 13 bytes.
const MAX_BODY: usize = 1 << 20;

/// One request, one 200 response read to its end.
async fn exchange(s: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> Result<(), Failure> {
    s.write_all(request).await.map_err(|_| Failure::Io)?;
    buf.clear();
    // Each turn reads at least one byte, and the response is bounded (head and body), so this ends.
    loop {
        match http::parse_response(buf) {
            Ok(Some(r)) => {
                // Bytes past the response would be an answer to nothing we asked.
                if r.status != 200 || r.len != buf.len() {
                    return Err(Failure::Http);
                }
                return Ok(());
            }
            Ok(None) => {}
            Err(_) => return Err(Failure::Http),
        }
        if buf.len() > http::MAX_HEAD + MAX_BODY {
            return Err(Failure::Http);
        }
        buf.reserve(4096);
        match s.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(Failure::Io),
            Ok(_) => {}
        }
    }
}

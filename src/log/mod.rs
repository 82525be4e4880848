//! Connection log lines in HAProxy's `option tcplog` layout:
//!
//! `%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq`
//!
//! (or, in `mode http`, the httplog layout, one line per request), sent where the frontend's `log`
//! lines say: syslog over UDP or a unix socket, standard output or standard error. With no `log` line
//! in the configuration, standard output, as HAProxy's `log stdout format raw` would. Diagnostics go
//! through `tracing` to standard error instead.
//!
//! Lines for standard output are gathered and written in batches (at 16 KiB, or 100 ms after the oldest waiting line,
//! by the next line or by a flusher thread): a write per request would cost http mode a system
//! call per request. Lines keep their order; [`flush`] writes what waits (gatehouse calls it on
//! exit).

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

pub mod format;

use crate::account::{Runtime, Tally};
use crate::config::model::{LogDest, LogFormat, LogTarget};
use crate::session::Record;

/// `%t` as it is written: `dd/Mon/yyyy:HH:MM:SS.mmm` in local time, without an allocation.
struct Date(SystemTime);

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        thread_local! {
            static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
        }
        let since = self
            .0
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let (secs, ms) = (since.as_secs(), since.subsec_millis());
        SECOND.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != secs {
                let dt: chrono::DateTime<chrono::Local> = self.0.into();
                c.1 = dt.format("%d/%b/%Y:%H:%M:%S").to_string();
                c.0 = secs;
            }
            write!(f, "{}.{ms:03}", c.1)
        })
    }
}

/// `%ft`, `%b` and `%s`: the frontend's name, the backend's (the frontend's own when there is
/// none) and the server's (`<NOSRV>` when none was chosen).
fn names<'a>(rt: &'a Runtime, r: &Record) -> (&'a str, &'a str, &'a str) {
    let fe = &rt.cfg.frontends[r.frontend];
    let be = r.backend.map(|b| &rt.cfg.backends[b]);
    let backend = be.map_or(fe.name.as_str(), |b| b.name.as_str());
    let server = match (be, r.server) {
        (Some(b), Some(s)) => b.servers[s].name.as_str(),
        _ => "<NOSRV>",
    };
    (fe.name.as_str(), backend, server)
}

/// The tcplog line for a finished session.
pub fn tcplog(rt: &Runtime, r: &Record, t: &Tally) -> String {
    let (frontend, backend, server) = names(rt, r);
    let tc = r.connect_ms.map_or(-1, |ms| ms as i64);
    format!(
        "{}:{} [{}] {} {}/{} 0/{}/{} {} {} {}/{}/{}/{}/{} 0/0",
        r.client.ip(),
        r.client.port(),
        Date(r.accepted_at),
        frontend,
        backend,
        server,
        tc,
        r.total_ms,
        r.traffic.bytes_out,
        r.termination,
        t.process,
        t.frontend,
        t.backend,
        t.server,
        t.retries,
    )
}

/// The httplog line for one request of a `mode http` connection:
///
/// `%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %{+Q}r`
pub fn httplog(rt: &Runtime, r: &Record, t: &Tally, h: &crate::l7::stream::HttpLog) -> String {
    let mut out = Vec::new();
    write_httplog(&mut out, rt, r, t, h);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the httplog line (without its newline) into `out`.
fn write_httplog(
    out: &mut Vec<u8>,
    rt: &Runtime,
    r: &Record,
    t: &Tally,
    h: &crate::l7::stream::HttpLog,
) {
    // Written field by field (itoa, no formatting machinery): this runs once per request.
    let (frontend, backend, server) = names(rt, r);
    let mut num = itoa::Buffer::new();
    let mut n = |out: &mut Vec<u8>, v: u64| out.extend_from_slice(num.format(v).as_bytes());
    match r.client.ip() {
        std::net::IpAddr::V4(ip) => {
            for (k, o) in ip.octets().into_iter().enumerate() {
                if k > 0 {
                    out.push(b'.');
                }
                n(out, u64::from(o));
            }
        }
        ip => {
            let _ = write!(out, "{ip}");
        }
    }
    out.push(b':');
    n(out, u64::from(r.client.port()));
    let _ = write!(out, " [{}] ", Date(r.accepted_at));
    out.extend_from_slice(frontend.as_bytes());
    out.push(b' ');
    out.extend_from_slice(backend.as_bytes());
    out.push(b'/');
    out.extend_from_slice(server.as_bytes());
    for (k, v) in [
        h.t_request,
        h.t_queue,
        r.connect_ms,
        h.t_response,
        Some(r.total_ms),
    ]
    .into_iter()
    .enumerate()
    {
        out.push(if k == 0 { b' ' } else { b'/' });
        match v {
            Some(v) => n(out, v),
            None => out.extend_from_slice(b"-1"),
        }
    }
    out.push(b' ');
    match h.status {
        Some(s) => n(out, u64::from(s)),
        None => out.extend_from_slice(b"-1"),
    }
    out.push(b' ');
    n(out, r.traffic.bytes_out);
    let _ = write!(out, " - - {}{}{} ", r.termination, h.cookie[0], h.cookie[1]);
    for (k, v) in [t.process, t.frontend, t.backend, t.server, t.retries]
        .into_iter()
        .enumerate()
    {
        if k > 0 {
            out.push(b'/');
        }
        n(out, v);
    }
    out.extend_from_slice(b" 0/0 \"");
    let line = &h.request_line;
    if line
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.extend_from_slice(line.as_bytes());
    } else {
        let _ = write!(out, "{}", line.escape_debug());
    }
    out.push(b'"');
}

struct Pending {
    data: Vec<u8>,
    /// When the oldest waiting line came.
    since: Option<Instant>,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    data: Vec::new(),
    since: None,
});

const FLUSH_BYTES: usize = 16 * 1024;
const FLUSH_AFTER: Duration = Duration::from_millis(100);

/// Queues the line `write` puts into the batch (without its newline).
fn emit_with(write: impl FnOnce(&mut Vec<u8>)) {
    static FLUSHER: std::sync::Once = std::sync::Once::new();
    FLUSHER.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("gatehouse-log".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(FLUSH_AFTER);
                    flush();
                }
            });
    });
    let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    write(&mut p.data);
    p.data.push(b'\n');
    let now = Instant::now();
    let since = *p.since.get_or_insert(now);
    if p.data.len() >= FLUSH_BYTES || now - since >= FLUSH_AFTER {
        write_out(&mut p);
    }
}

fn write_out(p: &mut Pending) {
    if !p.data.is_empty() {
        let _ = std::io::stdout().lock().write_all(&p.data);
        p.data.clear();
    }
    p.since = None;
}

/// Writes every waiting line now.
pub fn flush() {
    let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    write_out(&mut p);
}

/// Writes a session's line (its frontend's `log-format`, else httplog or tcplog) into `out`,
/// without its newline.
fn write_session(out: &mut Vec<u8>, rt: &Runtime, r: &Record, t: &Tally) {
    if let Some(f) = &rt.cfg.frontends[r.frontend].log_format {
        f.render(out, rt, r, t);
        return;
    }
    if let Some(h) = &r.http {
        write_httplog(out, rt, r, t, h);
        return;
    }
    out.extend_from_slice(tcplog(rt, r, t).as_bytes());
    // The name read from the first bytes, in braces as HAProxy shows captures.
    if let Some(name) = &r.name {
        out.extend_from_slice(b" {");
        out.extend_from_slice(name.as_bytes());
        out.push(b'}');
    }
}

/// Logs a finished session (or http request) where its frontend's `log` lines say.
pub fn session(rt: &Runtime, r: &Record, t: &Tally) {
    if r.http.as_ref().is_some_and(|h| h.silent) {
        return;
    }
    let targets = &rt.cfg.frontends[r.frontend].logs;
    match targets.as_slice() {
        [] => {}
        // The default, and the common case: raw lines on standard output, written straight into
        // the batch.
        [only] if only.dest == LogDest::Stdout && only.format == LogFormat::Raw => {
            emit_with(|out| write_session(out, rt, r, t));
        }
        _ => {
            let mut line = Vec::with_capacity(256);
            write_session(&mut line, rt, r, t);
            send(targets, INFO, &line);
        }
    }
}

/// A process-level line (server state changes) at syslog severity `level`, to the global `log`
/// lines (standard output when there are none).
pub fn line(rt: &Runtime, level: u8, msg: &str) {
    send(&rt.cfg.global.logs, level, msg.as_bytes());
}

/// Syslog severities gatehouse logs at.
pub const INFO: u8 = 6;
pub const NOTICE: u8 = 5;
pub const ALERT: u8 = 1;

/// Lines that could not be sent (a full socket buffer, an unreachable log server): `show info`'s
/// `DroppedLogs`.
pub static DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn send(targets: &[LogTarget], level: u8, line: &[u8]) {
    for t in targets {
        if level > t.max_level || level < t.min_level {
            continue;
        }
        if t.dest == LogDest::Stdout && t.format == LogFormat::Raw {
            emit_with(|out| out.extend_from_slice(line));
            continue;
        }
        let mut msg = header(t, level);
        msg.extend_from_slice(line);
        msg.truncate(t.len.saturating_sub(1));
        msg.push(b'\n');
        let sent = match &t.dest {
            LogDest::Stdout => {
                msg.pop();
                emit_with(|out| out.extend_from_slice(&msg));
                true
            }
            LogDest::Stderr => std::io::stderr().lock().write_all(&msg).is_ok(),
            LogDest::Udp(addr) => sockets::udp(addr).is_some_and(|s| s.send_to(&msg, addr).is_ok()),
            LogDest::Unix(path) => sockets::unix().is_some_and(|s| s.send_to(&msg, path).is_ok()),
        };
        if !sent {
            DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The syslog header of a line for `t` (empty for raw lines).
fn header(t: &LogTarget, level: u8) -> Vec<u8> {
    let pri = u16::from(t.facility) * 8 + u16::from(level);
    let now = chrono::Local::now();
    let mut h = Vec::with_capacity(96);
    match t.format {
        LogFormat::Raw => {}
        LogFormat::Short => {
            let _ = write!(h, "<{pri}>");
        }
        LogFormat::Rfc3164 => {
            let _ = write!(
                h,
                "<{pri}>{} gatehouse[{}]: ",
                now.format("%b %e %H:%M:%S"),
                std::process::id()
            );
        }
        LogFormat::Rfc5424 => {
            let _ = write!(
                h,
                "<{pri}>1 {} {} gatehouse {} - - ",
                now.format("%Y-%m-%dT%H:%M:%S%.6f%:z"),
                sockets::hostname(),
                std::process::id()
            );
        }
    }
    h
}

/// The sockets syslog lines leave by: one per family for UDP, one unbound unix datagram socket,
/// all non-blocking (a line that cannot be sent at once is dropped and counted, never waited for).
pub(crate) mod sockets {
    use std::net::{SocketAddr, UdpSocket};
    use std::os::unix::net::UnixDatagram;
    use std::sync::OnceLock;

    pub fn udp(to: &SocketAddr) -> Option<&'static UdpSocket> {
        static V4: OnceLock<Option<UdpSocket>> = OnceLock::new();
        static V6: OnceLock<Option<UdpSocket>> = OnceLock::new();
        let (cell, bind) = if to.is_ipv4() {
            (&V4, "0.0.0.0:0")
        } else {
            (&V6, "[::]:0")
        };
        cell.get_or_init(|| {
            let s = UdpSocket::bind(bind).ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        })
        .as_ref()
    }

    pub fn unix() -> Option<&'static UnixDatagram> {
        static S: OnceLock<Option<UnixDatagram>> = OnceLock::new();
        S.get_or_init(|| {
            let s = UnixDatagram::unbound().ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        })
        .as_ref()
    }

    pub fn hostname() -> &'static str {
        static H: OnceLock<String> = OnceLock::new();
        H.get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "-".into())
        })
    }
}

//! Connection log lines in HAProxy's `option tcplog` layout:
//!
//! `%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq`
//!
//! written to standard output, one line per session, as HAProxy's `log stdout format raw` would.
//! Diagnostics go through `tracing` to standard error instead.

use std::io::Write;
use std::time::SystemTime;

use crate::account::{Runtime, Tally};
use crate::session::Record;

/// `%t`: the accept date, `dd/Mon/yyyy:HH:MM:SS.mmm` in local time.
pub fn accept_date(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Local> = t.into();
    dt.format("%d/%b/%Y:%H:%M:%S%.3f").to_string()
}

/// The tcplog line for a finished session.
pub fn tcplog(rt: &Runtime, r: &Record, t: &Tally) -> String {
    let fe = &rt.cfg.frontends[r.frontend];
    let be = r.backend.map(|b| &rt.cfg.backends[b]);
    let backend = be.map_or(fe.name.as_str(), |b| b.name.as_str());
    let server = match (be, r.server) {
        (Some(b), Some(s)) => b.servers[s].name.as_str(),
        _ => "<NOSRV>",
    };
    let tc = r.connect_ms.map_or(-1, |ms| ms as i64);
    format!(
        "{}:{} [{}] {} {}/{} 0/{}/{} {} {} {}/{}/{}/{}/{} 0/0",
        r.client.ip(),
        r.client.port(),
        accept_date(r.accepted_at),
        fe.name,
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
    let fe = &rt.cfg.frontends[r.frontend];
    let be = r.backend.map(|b| &rt.cfg.backends[b]);
    let backend = be.map_or(fe.name.as_str(), |b| b.name.as_str());
    let server = match (be, r.server) {
        (Some(b), Some(s)) => b.servers[s].name.as_str(),
        _ => "<NOSRV>",
    };
    let ms = |v: Option<u64>| v.map_or(-1, |v| v as i64);
    let status = h.status.map_or(-1, i64::from);
    format!(
        "{}:{} [{}] {} {}/{} {}/{}/{}/{}/{} {} {} - - {}{}{} {}/{}/{}/{}/{} 0/0 \"{}\"",
        r.client.ip(),
        r.client.port(),
        accept_date(r.accepted_at),
        fe.name,
        backend,
        server,
        ms(h.t_request),
        ms(h.t_queue),
        ms(r.connect_ms),
        ms(h.t_response),
        r.total_ms,
        status,
        r.traffic.bytes_out,
        r.termination,
        h.cookie[0],
        h.cookie[1],
        t.process,
        t.frontend,
        t.backend,
        t.server,
        t.retries,
        h.request_line.escape_debug(),
    )
}

pub fn session(rt: &Runtime, r: &Record, t: &Tally) {
    if let Some(h) = &r.http {
        if h.silent {
            return;
        }
        let mut line = httplog(rt, r, t, h);
        line.push('\n');
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
        return;
    }
    let mut line = tcplog(rt, r, t);
    // The name read from the first bytes, in braces as HAProxy shows captures.
    if let Some(name) = &r.name {
        line.push_str(" {");
        line.push_str(name);
        line.push('}');
    }
    line.push('\n');
    // One write per line, so lines from different threads never interleave.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// Any other line for the log stream (server state changes), one write per line.
pub fn line(msg: &str) {
    let mut l = String::with_capacity(msg.len() + 1);
    l.push_str(msg);
    l.push('\n');
    let _ = std::io::stdout().lock().write_all(l.as_bytes());
}

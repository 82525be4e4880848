//! The stats URI's answer (`stats uri`), after `stats auth` passed. Until the operations issue (#5)
//! brings HAProxy's full page and CSV, this is a small page: one row per frontend, backend and
//! server with its state and counters (`;csv` gives the same rows as CSV).

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use crate::account::{Counters, Runtime};
use crate::config::model::StatsSettings;

struct Row {
    proxy: String,
    name: String,
    status: String,
    cur: u64,
    total: u64,
    requests: u64,
    bytes_in: u64,
    bytes_out: u64,
}

fn row(proxy: &str, name: &str, status: &str, c: &Counters) -> Row {
    Row {
        proxy: proxy.to_string(),
        name: name.to_string(),
        status: status.to_string(),
        cur: c.cur.load(Relaxed),
        total: c.total.load(Relaxed),
        requests: c.http_requests.load(Relaxed),
        bytes_in: c.bytes_in.load(Relaxed),
        bytes_out: c.bytes_out.load(Relaxed),
    }
}

fn rows(rt: &Runtime) -> Vec<Row> {
    let mut out = Vec::new();
    for (i, fe) in rt.cfg.frontends.iter().enumerate() {
        out.push(row(&fe.name, "FRONTEND", "OPEN", &rt.frontends[i].counters));
    }
    for (i, be) in rt.cfg.backends.iter().enumerate() {
        let st = &rt.backends[i];
        let mut any_up = false;
        for (j, s) in be.servers.iter().enumerate() {
            let h = &st.health[j];
            let status = if h.maint.load(Relaxed) {
                "MAINT"
            } else if h.up.load(Relaxed) {
                any_up = true;
                "UP"
            } else {
                "DOWN"
            };
            out.push(row(&be.name, &s.name, status, &st.servers[j]));
        }
        let status = if any_up { "UP" } else { "DOWN" };
        out.push(row(&be.name, "BACKEND", status, &st.counters));
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The whole HTTP response for the stats URI.
pub fn page(rt: &Runtime, st: &StatsSettings, csv: bool) -> Vec<u8> {
    let rows = rows(rt);
    let mut body = String::new();
    let kind = if csv {
        body.push_str("# pxname,svname,status,scur,stot,req_tot,bin,bout\n");
        for r in &rows {
            let _ = writeln!(
                body,
                "{},{},{},{},{},{},{},{}",
                r.proxy, r.name, r.status, r.cur, r.total, r.requests, r.bytes_in, r.bytes_out
            );
        }
        "text/plain"
    } else {
        body.push_str("<html><head><title>Statistics Report</title>");
        if let Some(t) = st.refresh {
            let _ = write!(
                body,
                "<meta http-equiv=\"refresh\" content=\"{}\">",
                t.as_secs().max(1)
            );
        }
        body.push_str("</head><body><h1>Statistics Report</h1>");
        if !st.hide_version {
            let _ = write!(body, "<p>gatehouse {}</p>", env!("CARGO_PKG_VERSION"));
        }
        body.push_str("<table border=1><tr><th>proxy</th><th>name</th><th>status</th><th>cur</th><th>total</th><th>requests</th><th>bytes in</th><th>bytes out</th></tr>\n");
        for r in &rows {
            let colour = match r.status.as_str() {
                "UP" | "OPEN" => "#c0ffc0",
                "MAINT" => "#c0c0ff",
                _ => "#ffc0c0",
            };
            let _ = writeln!(
                body,
                "<tr style=\"background:{colour}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.proxy),
                escape(&r.name),
                r.status,
                r.cur,
                r.total,
                r.requests,
                r.bytes_in,
                r.bytes_out
            );
        }
        body.push_str("</table></body></html>\n");
        "text/html"
    };
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

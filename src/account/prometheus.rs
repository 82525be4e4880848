//! Metrics in Prometheus' text exposition format, answered by `http-request use-service
//! prometheus-exporter`: HAProxy's metric names (`haproxy_process_*`, `haproxy_frontend_*`,
//! `haproxy_backend_*`, `haproxy_server_*`) for what both have, so existing dashboards and alerts
//! work, and `gatehouse_*` for what only gatehouse counts (SNI classification, DNS, the open-proxy
//! guard).

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::cli::server_status;
use super::{Counters, Runtime};

/// Label values escaped as the exposition format wants (backslash, quote, newline).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one metric family: HELP, TYPE and its samples (label set, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

/// The per-proxy counter families every level shares (frontend, backend, server).
fn counters(out: &mut String, level: &str, rows: &[(String, &Counters)], http: bool) {
    let pick = |f: fn(&Counters) -> u64| -> Vec<(String, u64)> {
        rows.iter().map(|(l, c)| (l.clone(), f(c))).collect()
    };
    let name = |n: &str| format!("haproxy_{level}_{n}");
    family(
        out,
        &name("current_sessions"),
        "gauge",
        "Number of current sessions.",
        &pick(|c| c.cur.load(Relaxed)),
    );
    family(
        out,
        &name("max_sessions"),
        "gauge",
        "Maximum observed number of active sessions.",
        &pick(|c| c.max.load(Relaxed)),
    );
    family(
        out,
        &name("sessions_total"),
        "counter",
        "Total number of sessions.",
        &pick(|c| c.total.load(Relaxed)),
    );
    family(
        out,
        &name("bytes_in_total"),
        "counter",
        "Current total of incoming bytes.",
        &pick(|c| c.bytes_in.load(Relaxed)),
    );
    family(
        out,
        &name("bytes_out_total"),
        "counter",
        "Current total of outgoing bytes.",
        &pick(|c| c.bytes_out.load(Relaxed)),
    );
    if level != "frontend" {
        family(
            out,
            &name("connection_errors_total"),
            "counter",
            "Total number of connection errors.",
            &pick(|c| c.connect_errors.load(Relaxed)),
        );
        family(
            out,
            &name("client_aborts_total"),
            "counter",
            "Total number of data transfers aborted by the client.",
            &pick(|c| c.client_aborts.load(Relaxed)),
        );
        family(
            out,
            &name("server_aborts_total"),
            "counter",
            "Total number of data transfers aborted by the server.",
            &pick(|c| c.server_aborts.load(Relaxed)),
        );
    }
    if http {
        family(
            out,
            &name("http_requests_total"),
            "counter",
            "Total number of HTTP requests received.",
            &pick(|c| c.http_requests.load(Relaxed)),
        );
    }
    if http || level == "server" {
        let codes = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];
        let samples: Vec<(String, u64)> = rows
            .iter()
            .flat_map(|(l, c)| {
                codes.iter().enumerate().map(move |(i, code)| {
                    (format!("{l},code=\"{code}\""), c.responses[i].load(Relaxed))
                })
            })
            .collect();
        family(
            out,
            &name("http_responses_total"),
            "counter",
            "Total number of HTTP responses, by class.",
            &samples,
        );
    }
}

/// The whole exposition.
pub fn render(rt: &Runtime) -> String {
    let mut out = String::with_capacity(8192);
    let one = |v: u64| vec![(String::new(), v)];
    family(
        &mut out,
        "haproxy_process_uptime_seconds",
        "gauge",
        "How long the process has been running, in seconds.",
        &one(rt.started.elapsed().as_secs()),
    );
    family(
        &mut out,
        "haproxy_process_max_connections",
        "gauge",
        "Maximum number of concurrent connections.",
        &one(u64::from(rt.cfg.global.maxconn)),
    );
    family(
        &mut out,
        "haproxy_process_current_connections",
        "gauge",
        "Number of active sessions.",
        &one(rt.active.load(Relaxed)),
    );
    family(
        &mut out,
        "haproxy_process_connections_total",
        "counter",
        "Total number of created sessions.",
        &one(rt.total.load(Relaxed)),
    );
    family(
        &mut out,
        "haproxy_process_requests_total",
        "counter",
        "Total number of requests (TCP or HTTP).",
        &one(rt
            .frontends
            .iter()
            .map(|f| f.counters.http_requests.load(Relaxed))
            .sum()),
    );
    family(
        &mut out,
        "haproxy_process_dropped_logs_total",
        "counter",
        "Total number of dropped log lines.",
        &one(crate::log::DROPPED.load(Relaxed)),
    );
    family(
        &mut out,
        "haproxy_process_stopping",
        "gauge",
        "Non zero means stopping in progress.",
        &one(u64::from(rt.stopping.load(Relaxed))),
    );

    let fe_rows: Vec<(String, &Counters)> = rt
        .cfg
        .frontends
        .iter()
        .zip(&rt.frontends)
        .map(|(f, s)| (format!("proxy=\"{}\"", esc(&f.name)), &s.counters))
        .collect();
    let fe_http = rt
        .cfg
        .frontends
        .iter()
        .any(|f| f.mode == crate::config::model::Mode::Http);
    family(
        &mut out,
        "haproxy_frontend_status",
        "gauge",
        "Current status of the service (1 when open).",
        &fe_rows
            .iter()
            .map(|(l, _)| (l.clone(), u64::from(!rt.stopping.load(Relaxed))))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "haproxy_frontend_limit_sessions",
        "gauge",
        "Configured session limit.",
        &rt.cfg
            .frontends
            .iter()
            .zip(&fe_rows)
            .map(|(f, (l, _))| (l.clone(), u64::from(f.maxconn)))
            .collect::<Vec<_>>(),
    );
    counters(&mut out, "frontend", &fe_rows, fe_http);

    let mut be_rows = Vec::new();
    let mut sv_rows = Vec::new();
    let mut be_status = Vec::new();
    let mut sv_status = Vec::new();
    let (mut be_weight, mut be_act, mut be_bck, mut be_queue) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sv_weight = Vec::new();
    for (bi, (b, st)) in rt.cfg.backends.iter().zip(&rt.backends).enumerate() {
        let bl = format!("proxy=\"{}\"", esc(&b.name));
        let (mut w, mut act, mut bck) = (0u64, 0u64, 0u64);
        for (si, s) in b.servers.iter().enumerate() {
            let sl = format!("{bl},server=\"{}\"", esc(&s.name));
            let status = server_status(rt, bi, si);
            let usable = matches!(status, "UP" | "no check");
            let weight = u64::from(st.health[si].weight.load(Relaxed));
            if usable {
                w += weight;
                if s.backup { bck += 1 } else { act += 1 }
            }
            for state in ["UP", "DOWN", "MAINT", "DRAIN"] {
                let on = status == state || (state == "UP" && status == "no check");
                sv_status.push((format!("{sl},state=\"{state}\""), u64::from(on)));
            }
            sv_weight.push((sl.clone(), weight));
            sv_rows.push((sl, &st.servers[si]));
        }
        for state in ["UP", "DOWN"] {
            let up = act + bck > 0;
            be_status.push((
                format!("{bl},state=\"{state}\""),
                u64::from(up == (state == "UP")),
            ));
        }
        be_weight.push((bl.clone(), w));
        be_act.push((bl.clone(), act));
        be_bck.push((bl.clone(), bck));
        be_queue.push((bl.clone(), st.queued.load(Relaxed)));
        be_rows.push((bl, &st.counters));
    }
    let be_http = rt
        .cfg
        .backends
        .iter()
        .any(|b| b.mode == crate::config::model::Mode::Http);
    family(
        &mut out,
        "haproxy_backend_status",
        "gauge",
        "Current status of the service, per state label value.",
        &be_status,
    );
    family(
        &mut out,
        "haproxy_backend_current_queue",
        "gauge",
        "Number of current queued connections.",
        &be_queue,
    );
    family(
        &mut out,
        "haproxy_backend_weight",
        "gauge",
        "Service weight.",
        &be_weight,
    );
    family(
        &mut out,
        "haproxy_backend_active_servers",
        "gauge",
        "Current number of active servers.",
        &be_act,
    );
    family(
        &mut out,
        "haproxy_backend_backup_servers",
        "gauge",
        "Current number of backup servers.",
        &be_bck,
    );
    counters(&mut out, "backend", &be_rows, be_http);
    family(
        &mut out,
        "haproxy_server_status",
        "gauge",
        "Current status of the service, per state label value.",
        &sv_status,
    );
    family(
        &mut out,
        "haproxy_server_weight",
        "gauge",
        "Service weight.",
        &sv_weight,
    );
    counters(&mut out, "server", &sv_rows, false);

    if let Some((firewall, diverts)) = rt.plumbing.get() {
        family(
            &mut out,
            "gatehouse_plumbing_installed",
            "gauge",
            "The interception unit installed, by firewall (1 for the one in use).",
            &["nft", "iptables", "none"]
                .iter()
                .map(|f| (format!("firewall=\"{f}\""), u64::from(f == firewall)))
                .collect::<Vec<_>>(),
        );
        family(
            &mut out,
            "gatehouse_plumbing_diverts",
            "gauge",
            "Diverts (intercept rules) in the installed unit.",
            &one(*diverts as u64),
        );
    }
    family(
        &mut out,
        "gatehouse_sessions_parked",
        "gauge",
        "Open sessions parked while quiet (tune.idle-park): no task, no buffer.",
        &one(rt.parked.load(Relaxed)),
    );
    let p = &rt.policy;
    family(
        &mut out,
        "gatehouse_guard_refused_total",
        "counter",
        "Names or addresses refused by the open-proxy guard.",
        &one(p.guard_refused.load(Relaxed)),
    );
    family(
        &mut out,
        "gatehouse_policy_rejected_total",
        "counter",
        "Connections and requests rejected by rules.",
        &one(p.rejected.load(Relaxed)),
    );
    family(
        &mut out,
        "gatehouse_resolve_failures_total",
        "counter",
        "Destinations whose name had no address (NXDOMAIN, SERVFAIL, timeout).",
        &one(p.dns_failed.load(Relaxed)),
    );
    family(
        &mut out,
        "gatehouse_sni_mismatch_total",
        "counter",
        "Connections whose original destination was not among their name's addresses (require-match).",
        &one(p.mismatch.load(Relaxed)),
    );
    family(
        &mut out,
        "gatehouse_sni_ech_total",
        "counter",
        "ClientHellos carrying encrypted_client_hello.",
        &one(p.ech.load(Relaxed)),
    );
    family(
        &mut out,
        "gatehouse_sni_unclassified_total",
        "counter",
        "Connections whose first bytes gave no name.",
        &one(p.unclassified.load(Relaxed)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let cfg = crate::config::from_str(
            "t.cfg",
            "frontend f\n mode http\n bind 127.0.0.1:1\n default_backend b\nbackend b\n mode http\n server s1 10.0.0.1:80\n server \"s2\" 10.0.0.2:80 backup\n",
        )
        .unwrap()
        .config;
        let rt = Runtime::new(std::sync::Arc::new(cfg));
        rt.backends[0].servers[0].bytes_out.fetch_add(42, Relaxed);
        rt.backends[0].health[1].maint.store(true, Relaxed);
        let _ = rt.plumbing.set(("nft", 2));
        let text = render(&rt);
        for want in [
            "# TYPE haproxy_process_current_connections gauge\nhaproxy_process_current_connections 0\n",
            "haproxy_frontend_http_requests_total{proxy=\"f\"} 0\n",
            "haproxy_server_bytes_out_total{proxy=\"b\",server=\"s1\"} 42\n",
            "haproxy_server_status{proxy=\"b\",server=\"s1\",state=\"UP\"} 1\n",
            "haproxy_server_status{proxy=\"b\",server=\"s2\",state=\"MAINT\"} 1\n",
            "haproxy_backend_active_servers{proxy=\"b\"} 1\n",
            "haproxy_backend_backup_servers{proxy=\"b\"} 0\n",
            "gatehouse_guard_refused_total 0\n",
            "gatehouse_plumbing_installed{firewall=\"nft\"} 1\n",
            "gatehouse_plumbing_installed{firewall=\"iptables\"} 0\n",
            "gatehouse_plumbing_diverts 2\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        // Every sample line is NAME[{labels}] VALUE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            v.parse::<u64>().unwrap_or_else(|_| panic!("{line}"));
        }
    }
}

//! The runtime API's reports of the counters: `show info` and `show stat` (HAProxy's CSV, with its
//! header and column order, so tools written for HAProxy read it; the columns gatehouse has no
//! figure for stay empty, as HAProxy leaves columns empty that do not apply).

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::{Counters, Runtime};
use crate::cli::Command;
use crate::config::model::{Backend, Balance, CliLevel, Mode, PortSpec, ServerTarget};

pub const COMMANDS: &[Command] = &[
    Command {
        words: &["clear", "counters"],
        level: CliLevel::Operator,
        help: "the maxima start again from what is open now",
        run: clear_counters,
    },
    Command {
        words: &["clear", "counters", "all"],
        level: CliLevel::Admin,
        help: "every total and error count starts again from zero",
        run: clear_counters_all,
    },
    Command {
        words: &["show", "info"],
        level: CliLevel::User,
        help: "[typed|json] : report information about the running process",
        run: show_info,
    },
    Command {
        words: &["show", "stat"],
        level: CliLevel::User,
        help: "[typed|json] : report counters for each proxy and server (CSV)",
        run: show_stat,
    },
];

/// `clear counters` resets the maxima (`smax`) to what is open now; `clear counters all` (admin) zeroes every total (sessions, bytes, errors, aborts, requests, check
/// failures, policy counts); what is open now stays counted.
fn clear_counters(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    if !args.is_empty() {
        return Err("'clear counters' takes nothing or 'all'".into());
    }
    // The maxima start again from what is open now.
    let reset = |c: &Counters| c.max.store(c.cur.load(Relaxed), Relaxed);
    rt.frontends.iter().for_each(|f| reset(&f.counters));
    for b in &rt.backends {
        reset(&b.counters);
        b.servers.iter().for_each(reset);
    }
    Ok(String::new())
}

fn clear_counters_all(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    if !args.is_empty() {
        return Err("'clear counters all' takes nothing more".into());
    }
    let zero = |c: &Counters| {
        for a in [
            &c.total,
            &c.bytes_in,
            &c.bytes_out,
            &c.client_aborts,
            &c.server_aborts,
            &c.connect_errors,
            &c.http_requests,
            &c.max,
        ] {
            a.store(0, Relaxed);
        }
        for a in &c.responses {
            a.store(0, Relaxed);
        }
    };
    rt.total.store(0, Relaxed);
    for f in &rt.frontends {
        zero(&f.counters);
    }
    for b in &rt.backends {
        zero(&b.counters);
        b.servers.iter().for_each(zero);
        for h in &b.health {
            h.checks_failed.store(0, Relaxed);
            h.went_down.store(0, Relaxed);
        }
    }
    let p = &rt.policy;
    for a in [
        &p.rejected,
        &p.guard_refused,
        &p.dns_failed,
        &p.mismatch,
        &p.ech,
        &p.unclassified,
    ] {
        a.store(0, Relaxed);
    }
    Ok(String::new())
}

/// HAProxy 2.6's static `show stat` columns, in order, then its end-of-static-fields marker.
pub const CSV_COLUMNS: &str = "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-";

fn uptime(secs: u64) -> String {
    format!(
        "{}d {}h{:02}m{:02}s",
        secs / 86400,
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// The tokio runtimes whose tasks `show info` counts: the control runtime and each worker thread's.
/// [`crate::server::serve`] registers them as it builds them; each leaves when its guard drops.
static RUNTIMES: std::sync::Mutex<Vec<(u64, tokio::runtime::Handle)>> =
    std::sync::Mutex::new(Vec::new());

/// Keeps a runtime counted in `show info`'s Tasks and Run_queue while it lives.
pub struct CountedRuntime(u64);

impl CountedRuntime {
    pub fn new(h: tokio::runtime::Handle) -> CountedRuntime {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Relaxed);
        RUNTIMES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((id, h));
        CountedRuntime(id)
    }
}

impl Drop for CountedRuntime {
    fn drop(&mut self) {
        RUNTIMES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(id, _)| *id != self.0);
    }
}

/// Tasks alive in the counted runtimes, and those woken and waiting in their shared queues (a
/// thread's own queue is not visible from another thread, so a busy worker's is not counted).
fn tasks() -> (usize, usize) {
    let runtimes = RUNTIMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    runtimes.iter().fold((0, 0), |(t, q), (_, h)| {
        let m = h.metrics();
        (t + m.num_alive_tasks(), q + m.global_queue_depth())
    })
}

/// gatehouse's release date as HAProxy writes its own (`2022/05/31`), given at build time by
/// `GATEHOUSE_RELEASE_DATE`; a build without it is no release.
const RELEASE_DATE: &str = match option_env!("GATEHOUSE_RELEASE_DATE") {
    Some(d) => d,
    None => "unreleased",
};

/// `show info`'s fields, each with its position in HAProxy 2.6's list (the number `show info
/// typed` gives it), in that order. Fields for what gatehouse does not have (SSL, compression,
/// memory pools, peers) are left out, as HAProxy leaves out those it does not fill.
fn info(rt: &Runtime) -> Vec<(u8, &'static str, String)> {
    let up = rt.started.elapsed().as_secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(0, |(soft, _)| soft);
    let sum = |f: fn(&Counters) -> u64| rt.frontends.iter().map(|x| f(&x.counters)).sum::<u64>();
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let threads = rt
        .cfg
        .global
        .nbthread
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let maxconn = rt.cfg.global.maxconn;
    let pipes = crate::sys::pipe::OPEN.load(Relaxed);
    let pooled = crate::sys::pipe::POOLED.load(Relaxed);
    let (tasks, run_queue) = tasks();
    let requests = sum(|c| c.http_requests.load(Relaxed));
    let bytes_out = sum(|c| c.bytes_out.load(Relaxed));
    let listeners: usize = rt.cfg.frontends.iter().map(|f| f.binds.len()).sum();
    let stopping = u8::from(rt.stopping.load(Relaxed));
    let dropped_logs = crate::log::DROPPED.load(Relaxed);
    let failed_resolutions = rt.policy.dns_failed.load(Relaxed);
    vec![
        (0, "Name", "gatehouse".into()),
        (1, "Version", env!("CARGO_PKG_VERSION").into()),
        (2, "Release_date", RELEASE_DATE.into()),
        (3, "Nbthread", threads.to_string()),
        (4, "Nbproc", "1".into()),
        (5, "Process_num", "1".into()),
        (6, "Pid", std::process::id().to_string()),
        (7, "Uptime", uptime(up)),
        (8, "Uptime_sec", up.to_string()),
        (13, "Ulimit-n", nofile.to_string()),
        (14, "Maxsock", nofile.to_string()),
        (15, "Maxconn", maxconn.to_string()),
        (16, "Hard_maxconn", maxconn.to_string()),
        (17, "CurrConns", rt.active.load(Relaxed).to_string()),
        (18, "CumConns", rt.total.load(Relaxed).to_string()),
        (19, "CumReq", requests.to_string()),
        // No pipe limit of its own (`maxpipes` is ignored): a connection splices through at most
        // one pipe each way, so twice maxconn bounds them.
        (23, "Maxpipes", (2 * u64::from(maxconn)).to_string()),
        (24, "PipesUsed", pipes.saturating_sub(pooled).to_string()),
        (25, "PipesFree", pooled.to_string()),
        (47, "Tasks", tasks.to_string()),
        (48, "Run_queue", run_queue.to_string()),
        (50, "node", node),
        (52, "Stopping", stopping.to_string()),
        (55, "Listeners", listeners.to_string()),
        (58, "DroppedLogs", dropped_logs.to_string()),
        (60, "FailedResolutions", failed_resolutions.to_string()),
        (61, "TotalBytesOut", bytes_out.to_string()),
        (70, "Start_time_sec", now.saturating_sub(up).to_string()),
    ]
}

fn show_info(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let fields = info(rt);
    let mut out = String::new();
    match args {
        [] => {
            for (_, k, v) in fields {
                let _ = writeln!(out, "{k}: {v}");
            }
        }
        ["typed"] => {
            // HAProxy's typed form: position.name.process:tags:type:value.
            for (i, k, v) in fields {
                let ty = if v.parse::<u64>().is_ok() {
                    "u64"
                } else {
                    "str"
                };
                let _ = writeln!(
                    out,
                    "{i}.{k}.1:{}:{ty}:{v}",
                    if ty == "str" { "POS" } else { "MGP" }
                );
            }
        }
        ["json"] => {
            let items: Vec<String> = fields
                .into_iter()
                .map(|(i, k, v)| json_field(&format!("\"pos\":{i},\"name\":{}", json_str(k)), &v))
                .collect();
            out = format!("[{}]\n", items.join(","));
        }
        _ => return Err("'show info' takes no argument, 'typed' or 'json'".into()),
    }
    Ok(out)
}

/// A JSON string.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One field of HAProxy's JSON forms: `{"field":{…},"processNum":1,"value":{"type":…,"value":…}}`.
fn json_field(field: &str, v: &str) -> String {
    let value = match v.parse::<u64>() {
        Ok(n) => format!("{{\"type\":\"u64\",\"value\":{n}}}"),
        Err(_) => format!("{{\"type\":\"str\",\"value\":{}}}", json_str(v)),
    };
    format!("{{\"field\":{{{field}}},\"processNum\":1,\"value\":{value}}}")
}

/// One CSV row, filled column by column.
struct Row(Vec<String>);

impl Row {
    fn new() -> Row {
        Row(vec![String::new(); CSV_COLUMNS.split(',').count() - 1])
    }
    fn set(&mut self, col: &str, v: impl ToString) -> &mut Row {
        if let Some(i) = CSV_COLUMNS.split(',').position(|c| c == col) {
            self.0[i] = v.to_string();
        }
        self
    }
    fn counters(&mut self, c: &Counters) -> &mut Row {
        self.set("scur", c.cur.load(Relaxed))
            .set("smax", c.max.load(Relaxed))
            .set("stot", c.total.load(Relaxed))
            .set("bin", c.bytes_in.load(Relaxed))
            .set("bout", c.bytes_out.load(Relaxed))
    }
}

/// The `hrsp_*` columns, for rows in http mode.
fn responses(r: &mut Row, c: &Counters) {
    for (i, col) in [
        "hrsp_1xx",
        "hrsp_2xx",
        "hrsp_3xx",
        "hrsp_4xx",
        "hrsp_5xx",
        "hrsp_other",
    ]
    .into_iter()
    .enumerate()
    {
        r.set(col, c.responses[i].load(Relaxed));
    }
}

/// A CSV field, quoted when it holds a comma or a quote.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn algo(b: &Backend) -> &'static str {
    match &b.balance {
        Balance::RoundRobin => "roundrobin",
        Balance::StaticRr => "static-rr",
        Balance::LeastConn => "leastconn",
        Balance::First => "first",
        Balance::Source => "source",
        Balance::Uri { .. } => "uri",
        Balance::UrlParam(_) => "url_param",
        Balance::Hdr { .. } => "hdr",
        Balance::Random(_) => "random",
        Balance::Hash(_) => "hash",
        Balance::RdpCookie(_) => "rdp-cookie",
    }
}

/// A server's address as `show stat` and `show servers state` give it, with its port.
pub fn server_addr(t: &ServerTarget) -> (String, Option<u16>) {
    let port = |p: &PortSpec| match p {
        PortSpec::Fixed(p) => Some(*p),
        _ => None,
    };
    match t {
        ServerTarget::Fixed(ip, p) => (ip.to_string(), port(p)),
        ServerTarget::OrigDst(p) => ("0.0.0.0".into(), port(p)),
        ServerTarget::Name { host, port: p } => (host.clone(), port(p)),
        ServerTarget::Dynamic { port: p, .. } => ("0.0.0.0".into(), port(p)),
    }
}

/// A server's `status` column.
pub fn server_status(rt: &Runtime, be: usize, srv: usize) -> &'static str {
    let h = &rt.backends[be].health[srv];
    if h.maint.load(Relaxed) {
        "MAINT"
    } else if !h.up.load(Relaxed) {
        "DOWN"
    } else if h.drain.load(Relaxed) {
        "DRAIN"
    } else if rt.cfg.backends[be].servers[srv].check.is_none() {
        "no check"
    } else {
        "UP"
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Http => "http",
        _ => "tcp",
    }
}

/// The rows of `show stat`: each section in config order, a frontend's row, then a backend's
/// servers and the backend's own row (a `listen` gives all three).
pub fn stat_rows(rt: &Runtime) -> Vec<Vec<String>> {
    enum Part {
        Fe(usize),
        Be(usize),
    }
    let mut parts: Vec<(&crate::config::lexer::Pos, u8, Part)> = Vec::new();
    for (i, f) in rt.cfg.frontends.iter().enumerate() {
        parts.push((&f.pos, 0, Part::Fe(i)));
    }
    for (i, b) in rt.cfg.backends.iter().enumerate() {
        parts.push((&b.pos, 1, Part::Be(i)));
    }
    parts.sort_by(|a, b| (&a.0.file, a.0.line, a.1).cmp(&(&b.0.file, b.0.line, b.1)));
    // Proxy ids: one per section, in order (a listen's frontend and backend share it).
    let mut ids: Vec<(&crate::config::lexer::Pos, usize)> = Vec::new();
    let mut rows = Vec::new();
    for (pos, _, part) in parts {
        let iid = match ids.iter().find(|(p, _)| *p == pos) {
            Some((_, id)) => *id,
            None => {
                ids.push((pos, ids.len() + 1));
                ids.len()
            }
        };
        match part {
            Part::Fe(i) => {
                let f = &rt.cfg.frontends[i];
                let c = &rt.frontends[i].counters;
                let mut r = Row::new();
                r.set("pxname", &f.name)
                    .set("svname", "FRONTEND")
                    .counters(c)
                    .set("slim", f.maxconn)
                    .set(
                        "status",
                        if *rt.frontends[i].paused.borrow() {
                            "STOP"
                        } else {
                            "OPEN"
                        },
                    )
                    .set("pid", 1)
                    .set("iid", iid)
                    .set("sid", 0)
                    .set("type", 0)
                    .set("mode", mode_name(f.mode));
                if f.mode == Mode::Http {
                    r.set("req_tot", c.http_requests.load(Relaxed));
                    responses(&mut r, c);
                }
                rows.push(r.0);
            }
            Part::Be(i) => {
                let b = &rt.cfg.backends[i];
                let st = &rt.backends[i];
                let (mut weight, mut act, mut bck) = (0u64, 0u32, 0u32);
                for (j, s) in b.servers.iter().enumerate() {
                    let h = &st.health[j];
                    let c = &st.servers[j];
                    let status = server_status(rt, i, j);
                    let usable = matches!(status, "UP" | "no check");
                    let w = h.weight.load(Relaxed);
                    if usable {
                        weight += u64::from(w);
                        if s.backup {
                            bck += 1;
                        } else {
                            act += 1;
                        }
                    }
                    let (mut addr, mut port) = server_addr(&s.target);
                    if let Some((ip, p)) = h.addr_override() {
                        addr = ip.to_string();
                        port = p.or(port);
                    }
                    let addr = match (addr.contains(':'), port) {
                        (true, Some(p)) => format!("[{addr}]:{p}"),
                        (false, Some(p)) => format!("{addr}:{p}"),
                        (_, None) => addr,
                    };
                    let mut r = Row::new();
                    r.set("pxname", &b.name)
                        .set("svname", &s.name)
                        .set("qcur", 0)
                        .counters(c)
                        .set("slim", s.maxconn.map(|m| m.to_string()).unwrap_or_default())
                        .set("econ", c.connect_errors.load(Relaxed))
                        .set("cli_abrt", c.client_aborts.load(Relaxed))
                        .set("srv_abrt", c.server_aborts.load(Relaxed))
                        .set("status", status)
                        .set("weight", w)
                        .set("act", u8::from(!s.backup))
                        .set("bck", u8::from(s.backup))
                        .set(
                            "qlimit",
                            s.maxqueue.map(|m| m.to_string()).unwrap_or_default(),
                        )
                        .set("pid", 1)
                        .set("iid", iid)
                        .set("sid", j + 1)
                        .set("type", 2)
                        .set("addr", addr)
                        .set("cookie", s.cookie.as_deref().unwrap_or(""))
                        .set("mode", mode_name(b.mode))
                        .set("uweight", s.weight);
                    if b.mode == Mode::Http {
                        responses(&mut r, c);
                    }
                    if let Some(ck) = &s.check {
                        r.set("check_rise", ck.rise)
                            .set("check_fall", ck.fall)
                            .set("chkfail", h.checks_failed.load(Relaxed))
                            .set("chkdown", h.went_down.load(Relaxed));
                        let last = h.last_check.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(l) = last.as_ref() {
                            r.set("check_status", l.status)
                                .set("check_duration", l.duration_ms)
                                .set("check_desc", l.desc)
                                .set("last_chk", &l.info)
                                .set("check_health", l.health);
                            if let Some(t) = l.changed {
                                r.set("lastchg", t.elapsed().as_secs());
                            }
                        }
                    }
                    rows.push(r.0);
                }
                let c = &st.counters;
                let mut r = Row::new();
                r.set("pxname", &b.name)
                    .set("svname", "BACKEND")
                    .set("qcur", st.queued.load(Relaxed))
                    .counters(c)
                    .set("econ", c.connect_errors.load(Relaxed))
                    .set("cli_abrt", c.client_aborts.load(Relaxed))
                    .set("srv_abrt", c.server_aborts.load(Relaxed))
                    .set("status", if act + bck > 0 { "UP" } else { "DOWN" })
                    .set("weight", weight)
                    .set("act", act)
                    .set("bck", bck)
                    .set("pid", 1)
                    .set("iid", iid)
                    .set("sid", 0)
                    .set("type", 1)
                    .set("mode", mode_name(b.mode))
                    .set("algo", algo(b))
                    .set(
                        "uweight",
                        b.servers.iter().map(|s| u64::from(s.weight)).sum::<u64>(),
                    );
                if b.mode == Mode::Http {
                    r.set("req_tot", c.http_requests.load(Relaxed));
                    responses(&mut r, c);
                }
                rows.push(r.0);
            }
        }
    }
    rows
}

/// `show stat` as CSV: the header line, then one line per row, each ending with a comma.
pub fn csv(rt: &Runtime) -> String {
    let mut out = format!("# {CSV_COLUMNS},\n");
    for row in stat_rows(rt) {
        for f in row {
            out.push_str(&field(&f));
            out.push(',');
        }
        // The end-of-static-fields column.
        out.push_str("-,\n");
    }
    out
}

/// A `show stat` row's object: `Frontend`, `Backend` or `Server` (its `type` column).
fn object_kind(row: &[String]) -> &'static str {
    match row[32].as_str() {
        "0" => "Frontend",
        "1" => "Backend",
        _ => "Server",
    }
}

/// Calls `f(row, column, name, value)` for every non-empty field of every `show stat` row, in order,
/// then `f(row, usize::MAX, "", "")` at the end of each row (the typed and JSON forms).
fn each_field(rt: &Runtime, mut f: impl FnMut(&[String], usize, &str, &str)) {
    let names: Vec<&str> = CSV_COLUMNS.split(',').collect();
    for row in stat_rows(rt) {
        for (i, v) in row.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            f(&row, i, names[i], v);
        }
        f(&row, usize::MAX, "", "");
    }
}

fn show_stat(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    match args {
        [] => Ok(csv(rt)),
        ["typed"] => {
            // HAProxy's typed form: F|B|S.proxy-id.server-id.column.name.process:tags:type:value
            // (empty fields left out). Our tags say only "from the config or a counter".
            let mut out = String::new();
            each_field(rt, |row, i, name, v| {
                if i == usize::MAX {
                    out.push('\n');
                    return;
                }
                let ty = if v.parse::<u64>().is_ok() {
                    "u64"
                } else {
                    "str"
                };
                let kind = &object_kind(row)[..1];
                let _ = writeln!(
                    out,
                    "{kind}.{}.{}.{i}.{name}.1:MGP:{ty}:{v}",
                    row[27], row[28]
                );
            });
            Ok(out)
        }
        ["json"] => {
            // HAProxy's JSON form: one array of every non-empty field of every row, each saying
            // which object (F/B/S, proxy id, server id) it belongs to.
            let mut items = Vec::new();
            each_field(rt, |row, i, name, v| {
                if i == usize::MAX {
                    return;
                }
                let f = format!("\"pos\":{i},\"name\":{}", json_str(name));
                let item = json_field(&f, v);
                // The object this field belongs to goes before the value.
                items.push(item.replacen(
                    ",\"processNum\"",
                    &format!(
                        ",\"objType\":\"{}\",\"proxyId\":{},\"id\":{},\"processNum\"",
                        object_kind(row),
                        row[27],
                        row[28]
                    ),
                    1,
                ));
            });
            Ok(format!("[{}]\n", items.join(",")))
        }
        _ => Err("'show stat' takes no argument, 'typed' or 'json'".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(text: &str) -> Runtime {
        let cfg = crate::config::from_str("t.cfg", text).unwrap().config;
        Runtime::new(std::sync::Arc::new(cfg))
    }

    /// hatop refuses a `show info` without these fields (the numeric ones as digits), and
    /// prometheus-haproxy-exporter labels its version metric with Version and Release_date.
    #[test]
    fn info_has_what_hatop_reads() {
        let rt = runtime("frontend f\n bind 127.0.0.1:1\n");
        let text = show_info(&rt, &[]).unwrap();
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(": "))
                .unwrap_or_else(|| panic!("no {k} in {text}"))
        };
        assert_eq!(get("Name"), "gatehouse");
        for k in ["Version", "Release_date", "Uptime", "node"] {
            assert!(!get(k).trim().is_empty(), "{k} is empty");
        }
        for k in [
            "Nbproc",
            "Process_num",
            "Pid",
            "Maxconn",
            "CurrConns",
            "Maxpipes",
            "PipesUsed",
            "PipesFree",
            "Tasks",
            "Run_queue",
        ] {
            assert!(get(k).parse::<u64>().is_ok(), "{k}: {:?}", get(k));
        }
        assert_eq!(
            get("Maxpipes"),
            (2 * u64::from(rt.cfg.global.maxconn)).to_string()
        );
    }

    /// `show info typed` numbers each field as HAProxy 2.6 does, so a reader that goes by
    /// position finds the same field in both.
    #[test]
    fn info_typed_uses_haproxys_positions() {
        let rt = runtime("frontend f\n bind 127.0.0.1:1\n");
        let text = show_info(&rt, &["typed"]).unwrap();
        let pos: Vec<(u8, &str)> = text
            .lines()
            .map(|l| {
                let (p, rest) = l.split_once('.').unwrap();
                (p.parse().unwrap(), rest.split_once('.').unwrap().0)
            })
            .collect();
        assert!(pos.windows(2).all(|w| w[0].0 < w[1].0), "{pos:?}");
        for want in [
            (0, "Name"),
            (2, "Release_date"),
            (8, "Uptime_sec"),
            (17, "CurrConns"),
            (23, "Maxpipes"),
            (24, "PipesUsed"),
            (25, "PipesFree"),
            (47, "Tasks"),
            (48, "Run_queue"),
            (50, "node"),
            (52, "Stopping"),
            (55, "Listeners"),
            (61, "TotalBytesOut"),
            (70, "Start_time_sec"),
        ] {
            assert!(pos.contains(&want), "{want:?} not in {pos:?}");
        }
        assert!(text.contains("\n2.Release_date.1:POS:str:"));
        assert!(text.contains("\n47.Tasks.1:MGP:u64:"));
    }

    /// Tasks and Run_queue count the tasks of the runtimes registered, for as long as they are.
    /// (Only `server::serve` registers runtimes otherwise, and no unit test runs it.)
    #[test]
    fn tasks_counts_registered_runtimes() {
        let local = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let counted = CountedRuntime::new(local.handle().clone());
        assert_eq!(tasks(), (0, 0));
        // Spawned from outside its thread, a task waits in the runtime's shared queue until the
        // runtime runs.
        for _ in 0..3 {
            local.spawn(std::future::pending::<()>());
        }
        assert_eq!(tasks(), (3, 3));
        // Run once: the tasks are polled (and stay alive, pending), the queue is empty.
        local.block_on(tokio::task::yield_now());
        assert_eq!(tasks(), (3, 0));
        drop(counted);
        assert_eq!(tasks(), (0, 0));
    }

    #[test]
    fn json_forms_are_json() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        let rt = runtime(
            "frontend f\n bind 127.0.0.1:1\n default_backend b\nbackend b\n server s1 10.0.0.1:80\n",
        );
        let info = show_info(&rt, &["json"]).unwrap();
        assert!(info.starts_with("[{\"field\":{\"pos\":0,\"name\":\"Name\"},\"processNum\":1,\"value\":{\"type\":\"str\",\"value\":\"gatehouse\"}},"), "{info}");
        let stat = show_stat(&rt, &["json"]).unwrap();
        assert!(stat.contains("{\"field\":{\"pos\":1,\"name\":\"svname\"},\"objType\":\"Server\",\"proxyId\":2,\"id\":1,\"processNum\":1,\"value\":{\"type\":\"str\",\"value\":\"s1\"}}"), "{stat}");
        // Brackets and braces balance (a cheap well-formedness check; no JSON crate here).
        for text in [&info, &stat] {
            let depth = text.chars().fold(0i64, |d, c| match c {
                '[' | '{' => d + 1,
                ']' | '}' => d - 1,
                _ => d,
            });
            assert_eq!(depth, 0);
        }
    }

    #[test]
    fn csv_has_haproxys_columns() {
        let rt = runtime(
            "frontend f\n bind 127.0.0.1:1\n default_backend b\nbackend b\n server s1 10.0.0.1:80 weight 3\n server s2 10.0.0.2:80 backup\n",
        );
        let text = csv(&rt);
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        assert_eq!(&header[..4], ["pxname", "svname", "qcur", "qmax"]);
        assert_eq!(header[32], "type");
        assert_eq!(header[73], "addr");
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 4);
        for r in &rows {
            assert_eq!(r.len(), header.len(), "{r:?}");
        }
        assert_eq!(
            (rows[0][0], rows[0][1], rows[0][17]),
            ("f", "FRONTEND", "OPEN")
        );
        assert_eq!(
            (rows[1][1], rows[1][17], rows[1][18]),
            ("s1", "no check", "3")
        );
        assert_eq!((rows[1][73], rows[2][20]), ("10.0.0.1:80", "1"));
        assert_eq!(
            (rows[3][1], rows[3][18], rows[3][19], rows[3][20]),
            ("BACKEND", "4", "1", "1")
        );
    }
}

//! Account: live counters per process, frontend, backend and server, kept apart from the immutable
//! config so a reload can swap one without the other. Counters are relaxed atomics: each is read
//! alone, and a log line's snapshot only needs to be roughly simultaneous, as in HAProxy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use tokio::sync::Semaphore;

pub mod cli;
pub mod prometheus;

use crate::config::Config;
use crate::session::{Cause, Record};

/// Counters of one frontend, backend or server.
#[derive(Debug, Default)]
pub struct Counters {
    /// Sessions now open.
    pub cur: AtomicU64,
    /// Sessions ever opened.
    pub total: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Sessions that ended other than normally, by who ended them.
    pub client_aborts: AtomicU64,
    pub server_aborts: AtomicU64,
    /// Failed connects (to servers).
    pub connect_errors: AtomicU64,
    /// HTTP requests (http mode).
    pub http_requests: AtomicU64,
    /// The most sessions open at once (`smax`).
    pub max: AtomicU64,
    /// HTTP responses by class: 1xx, 2xx, 3xx, 4xx, 5xx, other (`hrsp_*`).
    pub responses: [AtomicU64; 6],
}

impl Counters {
    /// Raises `max` to `cur` if it is higher (a plain read first: no write in the usual case).
    fn note_max(&self) {
        let cur = self.cur.load(Relaxed);
        if cur > self.max.load(Relaxed) {
            self.max.fetch_max(cur, Relaxed);
        }
    }
}

#[derive(Debug)]
pub struct FrontendState {
    pub counters: Counters,
    /// Frontend maxconn: accepting waits for a permit.
    pub limit: Arc<Semaphore>,
    /// `disable frontend`: its listeners take no connection (they wait in the kernel's backlog)
    /// until `enable frontend`.
    pub paused: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default)]
pub struct BackendState {
    pub counters: Counters,
    /// Round-robin position (static-rr, and tie-breaking in the others).
    pub rr: AtomicUsize,
    /// Smooth weighted round robin: each server's current weight.
    pub swrr: std::sync::Mutex<Vec<i64>>,
    /// The consistent-hash ring of the servers up now (`hash-type consistent`).
    pub ring: std::sync::Mutex<Option<std::sync::Arc<crate::balance::Ring>>>,
    pub servers: Vec<Counters>,
    /// Health and weight of each server.
    pub health: Vec<ServerHealth>,
    /// Sessions waiting for a free server slot (`maxconn`), and the signal that one freed.
    pub queued: AtomicU64,
    pub slot_freed: tokio::sync::Notify,
}

/// What the balancer knows of a server besides its config: checks and the administrator change it.
#[derive(Debug)]
pub struct ServerHealth {
    /// Up as far as its health checks say (servers without checks are always up).
    pub up: std::sync::atomic::AtomicBool,
    /// In maintenance (`disabled`): takes no new sessions.
    pub maint: std::sync::atomic::AtomicBool,
    /// Draining (`set server … state drain`): keeps its sessions and persistent clients, takes no
    /// new balanced ones.
    pub drain: std::sync::atomic::AtomicBool,
    /// The last health check, for `show stat` and the stats page (none before the first).
    pub last_check: std::sync::Mutex<Option<LastCheck>>,
    /// Checks that failed, and UP → DOWN transitions (`chkfail`, `chkdown`).
    pub checks_failed: AtomicU64,
    pub went_down: AtomicU64,
    /// `set server … addr IP [port P]`: the address (and port) used instead of the configured one.
    pub addr: std::sync::Mutex<Option<(std::net::IpAddr, Option<u16>)>>,
    /// Whether `addr` holds an address (read without the lock on every connection).
    pub addr_set: std::sync::atomic::AtomicBool,
    /// The weight in use (the configured one unless changed at run time).
    pub weight: std::sync::atomic::AtomicU32,
    /// When it last came up, in milliseconds since the runtime started (for `slowstart`); 0: at start.
    pub up_since_ms: AtomicU64,
    /// Bumped each time a check marks it down: sessions of a server with `on-marked-down
    /// shutdown-sessions` watch it and end.
    pub marked_down: tokio::sync::watch::Sender<u64>,
}

/// What the last health check of a server found.
#[derive(Debug, Clone)]
pub struct LastCheck {
    /// HAProxy's `check_status` code: `L4OK`, `L4CON`, `L4TOUT`, `L6OK`, `L6RSP`, `L7OK`, `L7STS`,
    /// `L7RSP`.
    pub status: &'static str,
    /// Its words (`Layer4 connection problem`), and the detail of a failure.
    pub desc: &'static str,
    pub info: String,
    pub duration_ms: u64,
    /// HAProxy's `check_health`: 0 … rise+fall-1, where fall and above is up.
    pub health: u32,
    /// When the server last went up or down (`lastchg`).
    pub changed: Option<std::time::Instant>,
}

impl ServerHealth {
    /// The address set through the runtime API, if any.
    pub fn addr_override(&self) -> Option<(std::net::IpAddr, Option<u16>)> {
        if !self.addr_set.load(Relaxed) {
            return None;
        }
        *self.addr.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_addr(&self, a: Option<(std::net::IpAddr, Option<u16>)>) {
        *self.addr.lock().unwrap_or_else(|e| e.into_inner()) = a;
        self.addr_set.store(a.is_some(), Relaxed);
    }

    pub fn new(weight: u32, disabled: bool) -> ServerHealth {
        ServerHealth {
            up: std::sync::atomic::AtomicBool::new(true),
            maint: std::sync::atomic::AtomicBool::new(disabled),
            drain: std::sync::atomic::AtomicBool::new(false),
            last_check: std::sync::Mutex::new(None),
            checks_failed: AtomicU64::new(0),
            went_down: AtomicU64::new(0),
            addr: std::sync::Mutex::new(None),
            addr_set: std::sync::atomic::AtomicBool::new(false),
            weight: std::sync::atomic::AtomicU32::new(weight),
            up_since_ms: AtomicU64::new(0),
            marked_down: tokio::sync::watch::channel(0).0,
        }
    }
}

/// Counts of policy decisions across all frontends (logged at shutdown; the stats socket arrives with
/// issue #5).
#[derive(Debug, Default)]
pub struct PolicyCounters {
    /// `tcp-request … reject`, `unclassified … reject`, `ech reject`.
    pub rejected: AtomicU64,
    /// Names or addresses refused by the open-proxy guard.
    pub guard_refused: AtomicU64,
    /// Destinations whose name had no address (NXDOMAIN, SERVFAIL, timeout).
    pub dns_failed: AtomicU64,
    /// `require-match`: the original destination was not among the name's addresses.
    pub mismatch: AtomicU64,
    /// Hellos carrying encrypted_client_hello.
    pub ech: AtomicU64,
    /// Connections whose first bytes gave no name (timeout, no SNI/Host, not TLS, malformed).
    pub unclassified: AtomicU64,
    /// TLS handshakes that failed, with clients (`bind … ssl`) or servers (`server … ssl`).
    pub tls_failed: AtomicU64,
}

impl PolicyCounters {
    pub fn summary(&self) -> String {
        let g = |c: &AtomicU64| c.load(Relaxed);
        format!(
            "rejected={} guard_refused={} dns_failed={} mismatch={} ech={} unclassified={} tls_failed={}",
            g(&self.rejected),
            g(&self.guard_refused),
            g(&self.dns_failed),
            g(&self.mismatch),
            g(&self.ech),
            g(&self.unclassified),
            g(&self.tls_failed)
        )
    }
}

/// All runtime state of one configuration.
#[derive(Debug)]
pub struct Runtime {
    pub cfg: Arc<Config>,
    /// Process-wide sessions now open (HAProxy's `%ac`) and ever opened.
    pub active: AtomicU64,
    pub total: AtomicU64,
    /// Of the open sessions, those parked while quiet (`tune.idle-park`): no task, no buffer.
    pub parked: AtomicU64,
    /// Global maxconn.
    pub limit: Arc<Semaphore>,
    pub frontends: Vec<FrontendState>,
    pub backends: Vec<BackendState>,
    pub policy: PolicyCounters,
    /// The resolvers sections.
    pub dns: crate::resolve::Dns,
    /// Addresses fixed at start-up for servers given by name: resolved by the system resolver (no
    /// `resolvers`), or `init-addr IP` while the name does not resolve. By (backend, server).
    pub start_addrs: std::collections::HashMap<(usize, usize), Vec<std::net::IpAddr>>,
    /// When this runtime started (slowstart and check timings count from it).
    pub started: std::time::Instant,
    /// The stick tables, by index in `Config::tables`; shared with the runtime before a reload
    /// when a table keeps its name and definition.
    pub tables: Vec<Arc<crate::stick::Table>>,
    /// A graceful stop is under way: no new connections; keep-alive connections close after
    /// their current request.
    pub stopping: std::sync::atomic::AtomicBool,
    /// A reload replaced this configuration: its keep-alive connections close after the response
    /// in progress (with `Connection: close`), so that their next requests meet the new one.
    pub retired: std::sync::atomic::AtomicBool,
    /// The plumbing unit as installed for this configuration: its firewall (`nft`, `iptables`, or
    /// `none` when nothing is diverted) and how many diverts it has (for the metrics).
    pub plumbing: std::sync::OnceLock<(&'static str, usize)>,
}

/// The five connection counts of an HAProxy log line: `%ac/%fc/%bc/%sc/%rc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub process: u64,
    pub frontend: u64,
    pub backend: u64,
    pub server: u64,
    pub retries: u64,
}

/// Holds two `cur` counters up while a session is in a frontend (process + frontend) or on a server
/// (backend + server), and lets them down when dropped; leaving a server also wakes one session
/// waiting in the backend's queue for a free slot.
pub struct Presence<'a> {
    counters: [&'a AtomicU64; 2],
    freed: Option<&'a tokio::sync::Notify>,
}

impl Presence<'_> {
    /// Keeps the counts up past this borrow: the session now counts itself by [`Place`] and lets
    /// go with [`Runtime::leave`] (a parked session, which holds the runtime by `Arc`).
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

/// Where a session is counted, by index, once its [`Presence`] has been [kept](Presence::keep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Frontend(usize),
    Server(usize, usize),
}

impl Drop for Presence<'_> {
    fn drop(&mut self) {
        for c in self.counters {
            c.fetch_sub(1, Relaxed);
        }
        if let Some(n) = self.freed {
            n.notify_one();
        }
    }
}

fn enter<'a>(
    counters: [&'a AtomicU64; 2],
    totals: [&AtomicU64; 2],
    freed: Option<&'a tokio::sync::Notify>,
) -> Presence<'a> {
    for c in counters.iter().chain(totals.iter()) {
        c.fetch_add(1, Relaxed);
    }
    Presence { counters, freed }
}

impl Runtime {
    pub fn new(cfg: Arc<Config>) -> Runtime {
        let tables = cfg
            .tables
            .iter()
            .cloned()
            .map(|d| Arc::new(crate::stick::Table::new(d)))
            .collect();
        let frontends = cfg
            .frontends
            .iter()
            .map(|f| FrontendState {
                counters: Counters::default(),
                limit: Arc::new(Semaphore::new(f.maxconn as usize)),
                paused: tokio::sync::watch::channel(false).0,
            })
            .collect();
        let backends = cfg
            .backends
            .iter()
            .map(|b| BackendState {
                counters: Counters::default(),
                rr: AtomicUsize::new(0),
                swrr: std::sync::Mutex::new(vec![0; b.servers.len()]),
                ring: std::sync::Mutex::new(None),
                servers: b.servers.iter().map(|_| Counters::default()).collect(),
                health: b
                    .servers
                    .iter()
                    .map(|s| ServerHealth::new(s.weight, s.disabled))
                    .collect(),
                queued: AtomicU64::new(0),
                slot_freed: tokio::sync::Notify::new(),
            })
            .collect();
        Runtime {
            limit: Arc::new(Semaphore::new(cfg.global.maxconn as usize)),
            cfg,
            active: AtomicU64::new(0),
            total: AtomicU64::new(0),
            parked: AtomicU64::new(0),
            frontends,
            backends,
            policy: PolicyCounters::default(),
            dns: crate::resolve::Dns::default(),
            start_addrs: std::collections::HashMap::new(),
            started: std::time::Instant::now(),
            tables,
            stopping: std::sync::atomic::AtomicBool::new(false),
            retired: std::sync::atomic::AtomicBool::new(false),
            plumbing: std::sync::OnceLock::new(),
        }
    }

    /// After a reload: takes over from `old` what must survive it. Stick tables whose name and
    /// definition did not change are the same tables (sessions of both generations update them);
    /// a server that keeps its backend and name keeps its health, maintenance, drain state and
    /// (if its configured weight did not change) the weight set at run time.
    pub fn carry_over(&mut self, old: &Runtime) {
        // The process started then, whatever configuration it runs now (`show info`'s uptime).
        self.started = old.started;
        for t in self.tables.iter_mut() {
            if let Some(o) = old.tables.iter().find(|o| o.def == t.def) {
                *t = o.clone();
            }
        }
        for (bi, b) in self.cfg.backends.iter().enumerate() {
            let Some(obi) = old.cfg.backends.iter().position(|o| o.name == b.name) else {
                continue;
            };
            let ob = &old.cfg.backends[obi];
            for (si, s) in b.servers.iter().enumerate() {
                let Some(osi) = ob.servers.iter().position(|o| o.name == s.name) else {
                    continue;
                };
                let (h, oh) = (
                    &self.backends[bi].health[si],
                    &old.backends[obi].health[osi],
                );
                h.up.store(oh.up.load(Relaxed), Relaxed);
                h.maint.store(
                    oh.maint.load(Relaxed) && s.disabled == ob.servers[osi].disabled || s.disabled,
                    Relaxed,
                );
                h.drain.store(oh.drain.load(Relaxed), Relaxed);
                h.up_since_ms.store(0, Relaxed);
                if s.weight == ob.servers[osi].weight {
                    h.weight.store(oh.weight.load(Relaxed), Relaxed);
                }
                if s.target == ob.servers[osi].target {
                    h.set_addr(oh.addr_override());
                }
            }
        }
    }

    pub fn enter_frontend(&self, fe: usize) -> Presence<'_> {
        let c = &self.frontends[fe].counters;
        let p = enter([&self.active, &c.cur], [&self.total, &c.total], None);
        c.note_max();
        p
    }

    /// Lets down what a kept [`Presence`] held up, as dropping it would have.
    pub fn leave(&self, place: Place) {
        let (counters, freed) = match place {
            Place::Frontend(fe) => ([&self.active, &self.frontends[fe].counters.cur], None),
            Place::Server(be, srv) => {
                let b = &self.backends[be];
                ([&b.counters.cur, &b.servers[srv].cur], Some(&b.slot_freed))
            }
        };
        drop(Presence { counters, freed });
    }

    pub fn enter_server(&self, be: usize, srv: usize) -> Presence<'_> {
        let b = &self.backends[be];
        let s = &b.servers[srv];
        let p = enter(
            [&b.counters.cur, &s.cur],
            [&b.counters.total, &s.total],
            Some(&b.slot_freed),
        );
        b.counters.note_max();
        s.note_max();
        p
    }

    /// The counts for a session's log line, taken when it is logged (as HAProxy does), while the
    /// session still counts itself.
    pub fn tally(&self, r: &Record) -> Tally {
        let (backend, server) = match r.backend {
            Some(be) => {
                let b = &self.backends[be];
                let s = r.server.map_or(0, |s| b.servers[s].cur.load(Relaxed));
                (b.counters.cur.load(Relaxed), s)
            }
            None => (0, 0),
        };
        Tally {
            process: self.active.load(Relaxed),
            frontend: self.frontends[r.frontend].counters.cur.load(Relaxed),
            backend,
            server,
            retries: u64::from(r.retries),
        }
    }

    /// Adds a finished session to the counters.
    pub fn account(&self, r: &Record) {
        let fe = Some(&self.frontends[r.frontend].counters);
        let be = r.backend.map(|b| &self.backends[b]);
        let srv = be.zip(r.server).map(|(b, s)| &b.servers[s]);
        for c in [fe, be.map(|b| &b.counters), srv].into_iter().flatten() {
            if let Some(h) = &r.http {
                c.http_requests.fetch_add(1, Relaxed);
                if let Some(status) = h.status {
                    let class = match status / 100 {
                        n @ 1..=5 => usize::from(n - 1),
                        _ => 5,
                    };
                    c.responses[class].fetch_add(1, Relaxed);
                }
            }
            c.bytes_in.fetch_add(r.traffic.bytes_in, Relaxed);
            c.bytes_out.fetch_add(r.traffic.bytes_out, Relaxed);
            match (r.termination.cause, r.termination.stage) {
                (Cause::ServerAbort | Cause::ServerTimeout, crate::session::Stage::Connect) => {
                    c.connect_errors.fetch_add(1, Relaxed);
                }
                (Cause::ClientAbort | Cause::ClientTimeout, _) => {
                    c.client_aborts.fetch_add(1, Relaxed);
                }
                (Cause::ServerAbort | Cause::ServerTimeout, _) => {
                    c.server_aborts.fetch_add(1, Relaxed);
                }
                _ => {}
            }
        }
    }
}

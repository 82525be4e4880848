//! Resolve: DNS for servers given by name and for dynamic destinations, on hickory-resolver, with our
//! own cache in front of it.
//!
//! The cache honours each answer's TTL (hickory reports when the shortest record TTL runs out), capped
//! by `hold valid`, floored at one second. When an answer has expired and the DNS server fails (or is
//! slow to answer), the previous answer is still served for `hold nx|refused|timeout|other` past its
//! expiry, the failure kind choosing which, as HAProxy keeps a server's last address. A name with no
//! valid answer fails at once while its failure is remembered: `hold nx` for NXDOMAIN or no address,
//! `timeout retry` for the other failures. Concurrent lookups of one name share one query.
//!
//! Queries run on a runtime handle given at start (the control thread's), so every worker thread
//! shares one resolver and one cache; a session awaits the spawned query from its own thread.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::config::model::ResolversSection;

/// Why a name has no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("no such name, or no address for it")]
    NotFound,
    #[error("the DNS server refused the query")]
    Refused,
    #[error("no DNS answer in time")]
    Timeout,
    #[error("DNS failure: {0}")]
    Failed(Arc<str>),
}

#[derive(Debug, thiserror::Error)]
pub enum ResolverSetupError {
    #[error("resolvers '{name}': cannot read the system's resolv.conf: {err}")]
    ResolvConf { name: String, err: String },
    #[error(
        "resolvers '{name}': no nameserver; add 'nameserver NAME ADDR:PORT' or 'parse-resolv-conf'"
    )]
    NoNameserver { name: String },
    #[error("resolvers '{name}': {err}")]
    Build { name: String, err: String },
}

/// A valid answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub addrs: Vec<IpAddr>,
    /// When the answer expires (TTL, capped by `hold valid`).
    pub fresh_until: Instant,
}

pub type Outcome = Result<Arc<Answer>, DnsError>;

#[derive(Debug, Default)]
pub struct DnsStats {
    pub queries: AtomicU64,
    pub failures: AtomicU64,
    /// Lookups answered from an expired answer because the DNS server failed or was slow.
    pub stale: AtomicU64,
}

#[derive(Debug, Clone)]
struct Entry {
    answer: Option<Arc<Answer>>,
    /// The last query failed: what, and until when that is remembered.
    failure: Option<(DnsError, Instant)>,
}

/// How long a lookup with an expired answer in hand waits for the fresh one before using the old.
const STALE_GRACE: Duration = Duration::from_millis(100);
const MIN_TTL: Duration = Duration::from_secs(1);

/// One `resolvers` section at run time.
pub struct Resolver {
    pub name: String,
    inner: TokioResolver,
    settings: ResolversSection,
    handle: tokio::runtime::Handle,
    cache: Mutex<HashMap<String, Entry>>,
    inflight: Mutex<HashMap<String, Shared<BoxFuture<'static, Outcome>>>>,
    pub stats: DnsStats,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("name", &self.name)
            .finish()
    }
}

impl Resolver {
    pub fn new(
        s: &ResolversSection,
        handle: tokio::runtime::Handle,
    ) -> Result<Arc<Resolver>, ResolverSetupError> {
        let mut servers: Vec<NameServerConfig> = Vec::new();
        let mut add = |ip: IpAddr, port: u16| {
            let mut udp = ConnectionConfig::udp();
            udp.port = port;
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = port;
            servers.push(NameServerConfig::new(ip, true, vec![udp, tcp]));
        };
        for ns in &s.nameservers {
            add(ns.ip(), ns.port());
        }
        if s.parse_resolv_conf {
            let (conf, _) = hickory_resolver::system_conf::read_system_conf().map_err(|e| {
                ResolverSetupError::ResolvConf {
                    name: s.name.clone(),
                    err: e.to_string(),
                }
            })?;
            for ns in conf.name_servers() {
                if !s.nameservers.iter().any(|a| a.ip() == ns.ip) {
                    add(ns.ip, 53);
                }
            }
        }
        if servers.is_empty() {
            return Err(ResolverSetupError::NoNameserver {
                name: s.name.clone(),
            });
        }
        let config = ResolverConfig::from_parts(None, vec![], servers);
        let mut b = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        let o = b.options_mut();
        o.timeout = s.timeout_resolve;
        // hickory's `attempts` counts the queries after the first; HAProxy's resolve_retries counts them all.
        o.attempts = s.resolve_retries.saturating_sub(1) as usize;
        o.ip_strategy = LookupIpStrategy::Ipv6AndIpv4;
        // Our cache decides lifetimes; hickory's would hide TTLs from it.
        o.cache_size = 0;
        o.use_hosts_file = ResolveHosts::Never;
        o.edns_payload_len = s.accepted_payload_size;
        o.ndots = 0;
        let inner = b.build().map_err(|e| ResolverSetupError::Build {
            name: s.name.clone(),
            err: e.to_string(),
        })?;
        Ok(Arc::new(Resolver {
            name: s.name.clone(),
            inner,
            settings: s.clone(),
            handle,
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            stats: DnsStats::default(),
        }))
    }

    /// The addresses of `name` (lower-case, no trailing dot).
    pub async fn lookup(self: &Arc<Self>, name: &str) -> Outcome {
        let now = Instant::now();
        let stale = {
            let cache = self.cache.lock().expect("cache lock");
            match cache.get(name) {
                Some(Entry {
                    answer: Some(a), ..
                }) if now < a.fresh_until => return Ok(a.clone()),
                Some(Entry {
                    answer: None,
                    failure: Some((e, until)),
                }) if now < *until => return Err(e.clone()),
                Some(Entry {
                    answer: Some(a),
                    failure,
                }) if now < a.fresh_until + self.longest_hold() => Some((
                    a.clone(),
                    failure.as_ref().is_some_and(|(_, until)| now < *until),
                )),
                _ => None,
            }
        };
        match stale {
            None => self.query(name).await,
            // The DNS server failed lately: don't make this connection wait for it again (the
            // next query goes out once the failure is forgotten, after `timeout retry`).
            Some((old, true)) => {
                self.stats.stale.fetch_add(1, Relaxed);
                Ok(old)
            }
            Some((old, false)) => match tokio::time::timeout(STALE_GRACE, self.query(name)).await {
                Ok(fresh) => fresh,
                Err(_) => {
                    self.stats.stale.fetch_add(1, Relaxed);
                    Ok(old)
                }
            },
        }
    }

    fn longest_hold(&self) -> Duration {
        let h = &self.settings.hold;
        h.nx.max(h.refused).max(h.timeout).max(h.other)
    }

    /// The one query for `name` in flight, started if there is none. It runs as its own task, so it
    /// completes (and fills the cache) even if every session waiting on it goes away.
    fn query(self: &Arc<Self>, name: &str) -> Shared<BoxFuture<'static, Outcome>> {
        let mut inflight = self.inflight.lock().expect("inflight lock");
        if let Some(q) = inflight.get(name) {
            return q.clone();
        }
        let me = self.clone();
        let key = name.to_string();
        let task = self.handle.spawn(async move {
            let outcome = me.ask(&key).await;
            me.inflight.lock().expect("inflight lock").remove(&key);
            outcome
        });
        let q = async move {
            task.await
                .unwrap_or_else(|e| Err(DnsError::Failed(Arc::from(e.to_string()))))
        }
        .boxed()
        .shared();
        inflight.insert(name.to_string(), q.clone());
        q
    }

    /// Asks the DNS server and records the outcome.
    async fn ask(&self, name: &str) -> Outcome {
        self.stats.queries.fetch_add(1, Relaxed);
        let fqdn = format!("{name}.");
        let got = self.inner.lookup_ip(fqdn.as_str()).await;
        let now = Instant::now();
        let h = &self.settings.hold;
        let mut cache = self.cache.lock().expect("cache lock");
        match got {
            Ok(l) => {
                let mut addrs: Vec<IpAddr> = l.iter().collect();
                addrs.dedup();
                if addrs.is_empty() {
                    drop(cache);
                    return self.failed(name, DnsError::NotFound, now);
                }
                let ttl = l
                    .valid_until()
                    .saturating_duration_since(now)
                    .clamp(MIN_TTL, h.valid.max(MIN_TTL));
                let answer = Arc::new(Answer {
                    addrs,
                    fresh_until: now + ttl,
                });
                cache.insert(
                    name.to_string(),
                    Entry {
                        answer: Some(answer.clone()),
                        failure: None,
                    },
                );
                Ok(answer)
            }
            Err(e) => {
                drop(cache);
                self.failed(name, classify(&e), now)
            }
        }
    }

    /// Records a failed query: keeps serving the previous answer within the failure's hold, else
    /// remembers the failure.
    fn failed(&self, name: &str, err: DnsError, now: Instant) -> Outcome {
        self.stats.failures.fetch_add(1, Relaxed);
        let h = &self.settings.hold;
        let hold = match err {
            DnsError::NotFound => h.nx,
            DnsError::Refused => h.refused,
            DnsError::Timeout => h.timeout,
            DnsError::Failed(_) => h.other,
        };
        let remember = match err {
            DnsError::NotFound => h.nx,
            _ => self.settings.timeout_retry,
        };
        let mut cache = self.cache.lock().expect("cache lock");
        let prev = cache.get(name).and_then(|e| e.answer.clone());
        match prev {
            Some(a) if now < a.fresh_until + hold => {
                tracing::warn!(resolvers = %self.name, name, error = %err, "DNS failed; serving the previous answer");
                cache.insert(
                    name.to_string(),
                    Entry {
                        answer: Some(a.clone()),
                        failure: Some((err, now + remember)),
                    },
                );
                self.stats.stale.fetch_add(1, Relaxed);
                Ok(a)
            }
            _ => {
                cache.insert(
                    name.to_string(),
                    Entry {
                        answer: None,
                        failure: Some((err.clone(), now + remember)),
                    },
                );
                Err(err)
            }
        }
    }
}

fn classify(e: &NetError) -> DnsError {
    if e.is_no_records_found() {
        // NXDOMAIN, or the name exists with no A/AAAA record: either way no address.
        return DnsError::NotFound;
    }
    match e {
        NetError::Timeout => DnsError::Timeout,
        other => {
            let text = other.to_string();
            if text.contains("Refused") || text.contains("REFUSED") {
                DnsError::Refused
            } else if text.contains("timed out") || text.contains("timeout") {
                DnsError::Timeout
            } else {
                DnsError::Failed(Arc::from(text))
            }
        }
    }
}

/// The runtime API's `show resolvers [SECTION]`.
pub const COMMANDS: &[crate::cli::Command] = &[crate::cli::Command {
    words: &["show", "resolvers"],
    level: crate::config::model::CliLevel::Operator,
    help: "[<section>] : the resolvers sections, their name servers and counters",
    run: show_resolvers,
}];

fn show_resolvers(rt: &crate::account::Runtime, args: &[&str]) -> Result<String, String> {
    use std::fmt::Write;
    let only = match args {
        [] => None,
        [name] => {
            if !rt.dns.sections.iter().any(|r| r.name == *name) {
                return Err(format!("Can't find resolvers section '{name}'."));
            }
            Some(*name)
        }
        _ => return Err("'show resolvers' takes at most a section name".into()),
    };
    let mut out = String::new();
    for r in rt
        .dns
        .sections
        .iter()
        .filter(|r| only.is_none_or(|o| o == r.name))
    {
        let _ = writeln!(out, "Resolvers section {}", r.name);
        for ns in &r.settings.nameservers {
            let _ = writeln!(out, " nameserver {ns}");
        }
        if r.settings.parse_resolv_conf {
            let _ = writeln!(out, " parse-resolv-conf");
        }
        let g = |c: &AtomicU64| c.load(Relaxed);
        let cached = r.cache.lock().map_or(0, |c| c.len());
        let _ = writeln!(out, "  sent:        {}", g(&r.stats.queries));
        let _ = writeln!(out, "  failed:      {}", g(&r.stats.failures));
        let _ = writeln!(out, "  stale_used:  {}", g(&r.stats.stale));
        let _ = writeln!(out, "  cached:      {cached}");
    }
    Ok(out)
}

/// Every `resolvers` section at run time, by index in the config.
#[derive(Debug, Default)]
pub struct Dns {
    pub sections: Vec<Arc<Resolver>>,
}

impl Dns {
    pub fn new(
        sections: &[ResolversSection],
        handle: tokio::runtime::Handle,
    ) -> Result<Dns, ResolverSetupError> {
        let sections = sections
            .iter()
            .map(|s| Resolver::new(s, handle.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Dns { sections })
    }
}

//! Balance: picks a server of the chosen backend (docs/balancing.md).
//!
//! First the candidates: the active servers that are up, not in maintenance, with weight above 0 and a
//! free slot (`maxconn`); when no active server is up, the first backup (or every backup, with
//! `option allbackups`). Then the backend's algorithm, one per file behind [`Algorithm`], chooses among
//! them. Retries and redispatch call [`pick`] again with the servers already tried excluded, so the
//! sequence of picks is the algorithm's fallback order.
//!
//! A hash algorithm whose key is missing (no SNI, no such header) falls back to round robin, as in
//! HAProxy.

pub mod admin;
mod hash;
mod leastconn;

pub use hash::Ring;
mod random;
mod roundrobin;

use std::sync::atomic::Ordering::Relaxed;

use crate::account::{BackendState, Runtime};
use crate::config::model::{Backend, Balance};
use crate::rules::sample::Facts;

/// A server the algorithm may choose, with its weight now (slowstart applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub index: usize,
    pub weight: u32,
    /// Sessions on it now.
    pub load: u64,
}

/// Everything an algorithm may look at.
pub struct Ctx<'a> {
    pub backend: &'a Backend,
    pub state: &'a BackendState,
    pub facts: &'a Facts<'a>,
}

/// One balancing algorithm: chooses one of `cands` (never empty).
pub trait Algorithm {
    fn choose(&self, ctx: &Ctx<'_>, cands: &[Candidate]) -> usize;
}

/// Why no server was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoServer {
    /// Every usable server is at its `maxconn`: the session may wait in the queue.
    Full,
    /// No server is up (or the backend has none).
    Down,
}

/// The servers that may take a session now, excluding `exclude` (servers already tried).
pub fn candidates(rt: &Runtime, be: usize, exclude: &[usize]) -> Result<Vec<Candidate>, NoServer> {
    let backend = &rt.cfg.backends[be];
    let state = &rt.backends[be];
    // The clock is read only for a server in slow start.
    let now_ms = std::cell::OnceCell::new();
    let pick_from = |backup: bool, first_only: bool| {
        let mut out = Vec::with_capacity(backend.servers.len());
        let mut full = false;
        for (i, s) in backend.servers.iter().enumerate() {
            if s.backup != backup || exclude.contains(&i) {
                continue;
            }
            let h = &state.health[i];
            if h.maint.load(Relaxed) || !h.up.load(Relaxed) || h.drain.load(Relaxed) {
                continue;
            }
            let mut weight = h.weight.load(Relaxed);
            if let Some(ss) = s.slowstart {
                let since = h.up_since_ms.load(Relaxed);
                let ramp = ss.as_millis() as u64;
                let now = *now_ms.get_or_init(|| rt.started.elapsed().as_millis() as u64);
                let up_for = now.saturating_sub(since);
                if since > 0 && up_for < ramp {
                    weight = ((u64::from(weight) * up_for / ramp) as u32).max(1);
                }
            }
            if weight == 0 {
                continue;
            }
            let load = state.servers[i].cur.load(Relaxed);
            if s.maxconn.is_some_and(|m| load >= u64::from(m)) {
                full = true;
                continue;
            }
            out.push(Candidate {
                index: i,
                weight,
                load,
            });
            if first_only {
                break;
            }
        }
        (out, full)
    };
    let (active, full) = pick_from(false, false);
    if !active.is_empty() {
        return Ok(active);
    }
    // Backups only when no active server is up at all (a full one is still up).
    if full {
        return Err(NoServer::Full);
    }
    let (backups, full) = pick_from(true, !backend.allbackups);
    if !backups.is_empty() {
        return Ok(backups);
    }
    Err(if full { NoServer::Full } else { NoServer::Down })
}

/// The server for this session, or why there is none.
pub fn pick(
    rt: &Runtime,
    be: usize,
    facts: &Facts<'_>,
    exclude: &[usize],
) -> Result<usize, NoServer> {
    let cands = candidates(rt, be, exclude)?;
    if let [only] = cands[..] {
        // One candidate (a passthrough backend's only server): nothing to choose, no shared state.
        return Ok(only.index);
    }
    let backend = &rt.cfg.backends[be];
    let ctx = Ctx {
        backend,
        state: &rt.backends[be],
        facts,
    };
    let i = match &backend.balance {
        Balance::RoundRobin => roundrobin::Smooth.choose(&ctx, &cands),
        Balance::StaticRr => roundrobin::Static.choose(&ctx, &cands),
        Balance::LeastConn => leastconn::LeastConn.choose(&ctx, &cands),
        Balance::First => leastconn::First.choose(&ctx, &cands),
        Balance::Random(draws) => random::Random(*draws).choose(&ctx, &cands),
        Balance::Source
        | Balance::Hash(_)
        | Balance::Uri { .. }
        | Balance::UrlParam(_)
        | Balance::Hdr { .. }
        | Balance::RdpCookie(_) => match hash::key(&backend.balance, facts) {
            Some(key) => hash::Hashed(key).choose(&ctx, &cands),
            None => roundrobin::Smooth.choose(&ctx, &cands),
        },
    };
    Ok(cands[i].index)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A runtime with one backend built from config text, for the algorithms' tests.
    use std::sync::Arc;

    use crate::account::Runtime;
    use crate::rules::sample::Facts;

    pub fn runtime(backend: &str) -> Runtime {
        let text = format!(
            "frontend f\n    bind 127.0.0.1:1\n    default_backend b\nbackend b\n{backend}"
        );
        let cfg = crate::config::from_str("t.cfg", &text).unwrap().config;
        Runtime::new(Arc::new(cfg))
    }

    pub fn facts() -> Facts<'static> {
        Facts {
            client: "10.0.0.2:40000".parse().unwrap(),
            dst: "192.0.2.9:443".parse().unwrap(),
            hello: None,
            http: None,
            peeked: 0,
            raw: &[],
            stick: None,
            res: None,
            tls: None,
        }
    }

    /// How many of `n` picks went to each server.
    pub fn spread(rt: &Runtime, n: usize, facts: &Facts<'_>) -> Vec<usize> {
        let mut count = vec![0; rt.cfg.backends[0].servers.len()];
        for _ in 0..n {
            count[super::pick(rt, 0, facts, &[]).unwrap()] += 1;
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn backups_maintenance_and_full_servers() {
        let rt = runtime(
            "    server a 10.0.0.1:80 maxconn 1\n    server b 10.0.0.2:80 disabled\n    server c 10.0.0.3:80 backup\n    server d 10.0.0.4:80 backup\n",
        );
        let f = facts();
        assert_eq!(pick(&rt, 0, &f, &[]), Ok(0));
        // a is full: the session must wait, not spill onto a backup.
        rt.backends[0].servers[0].cur.store(1, Relaxed);
        assert_eq!(pick(&rt, 0, &f, &[]), Err(NoServer::Full));
        // a is down: the first backup only.
        rt.backends[0].health[0].up.store(false, Relaxed);
        assert_eq!(spread(&rt, 10, &f), [0, 0, 10, 0]);
        // The first backup already tried (a retry): the next one.
        assert_eq!(pick(&rt, 0, &f, &[2]), Ok(3));
        // b out of maintenance takes over from the backups.
        rt.backends[0].health[1].maint.store(false, Relaxed);
        assert_eq!(spread(&rt, 10, &f), [0, 10, 0, 0]);
    }

    #[test]
    fn allbackups_share_the_load() {
        let rt = runtime(
            "    option allbackups\n    server a 10.0.0.1:80\n    server c 10.0.0.3:80 backup\n    server d 10.0.0.4:80 backup\n",
        );
        rt.backends[0].health[0].up.store(false, Relaxed);
        assert_eq!(spread(&rt, 10, &facts()), [0, 5, 5]);
    }
}

//! The live sessions, for the runtime API: `show sess`, `shutdown session`, `shutdown sessions
//! server`. Every accepted connection's task is registered here with its frontend, client, start
//! time and abort handle; the server it is on is set from inside the task (a task-local slot, so the
//! session code carries nothing extra). Aborting a task ends its session as a shutdown does: the
//! session's record is logged with a `K` termination code.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use crate::account::Runtime;
use crate::cli::{Command, server_ref};
use crate::config::model::CliLevel;

pub const COMMANDS: &[Command] = &[
    Command {
        words: &["show", "sess"],
        level: CliLevel::Operator,
        help: "[<id>] : list the live sessions",
        run: show_sess,
    },
    Command {
        words: &["shutdown", "session"],
        level: CliLevel::Admin,
        help: "<id> : end a session (its log line gets a K code)",
        run: shutdown_session,
    },
    Command {
        words: &["shutdown", "sessions", "server"],
        level: CliLevel::Admin,
        help: "<bk>/<srv> : end every session on a server",
        run: shutdown_server,
    },
];

/// Where a session is: 0 before a server is chosen, else `(backend + 1) << 32 | (server + 1)`; and
/// whether it is a keep-alive connection waiting for its next request.
#[derive(Default)]
struct Slot(AtomicU64, std::sync::atomic::AtomicBool);

tokio::task_local! {
    static SLOT: Arc<Slot>;
}

/// Records, from inside a session's task, the server it now uses.
pub fn on_server(backend: usize, server: usize) {
    let _ = SLOT.try_with(|s| {
        s.0.store(((backend as u64 + 1) << 32) | (server as u64 + 1), Relaxed)
    });
}

/// Marks, from inside a session's task, whether it is idle between requests (a graceful stop
/// closes idle connections at once).
pub fn set_idle(idle: bool) {
    let _ = SLOT.try_with(|s| s.1.store(idle, Relaxed));
}

/// Ends every session idle between requests (graceful stop). One that became busy a moment ago may
/// be caught too: its client sees the connection close, as with any server ending keep-alive.
pub fn close_idle() {
    let idle: Vec<tokio::task::AbortHandle> = with(|r| {
        r.live
            .values()
            .filter(|e| e.slot.1.load(Relaxed))
            .filter_map(|e| e.abort.clone())
            .collect()
    });
    for a in idle {
        a.abort();
    }
}

struct Entry {
    rt: Weak<Runtime>,
    frontend: usize,
    client: SocketAddr,
    started: Instant,
    slot: Arc<Slot>,
    abort: Option<tokio::task::AbortHandle>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    live: HashMap<u64, Entry>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut g = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Registry::default))
}

/// Takes the session out of the registry when its task ends, however it ends.
struct Deregister(u64);

impl Drop for Deregister {
    fn drop(&mut self) {
        with(|r| r.live.remove(&self.0));
    }
}

/// Spawns a session's task on the current runtime, registered until it ends.
pub fn spawn<F>(rt: &Arc<Runtime>, frontend: usize, client: SocketAddr, session: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let slot = Arc::new(Slot::default());
    let id = with(|r| {
        r.next += 1;
        r.live.insert(
            r.next,
            Entry {
                rt: Arc::downgrade(rt),
                frontend,
                client,
                started: Instant::now(),
                slot: slot.clone(),
                abort: None,
            },
        );
        r.next
    });
    let task = tokio::spawn(SLOT.scope(slot, async move {
        let _registered = Deregister(id);
        session.await;
    }));
    with(|r| {
        if let Some(e) = r.live.get_mut(&id) {
            e.abort = Some(task.abort_handle());
        }
    });
}

/// Sessions now open (all configurations).
pub fn count() -> usize {
    with(|r| r.live.len())
}

fn parse_id(s: &str) -> Result<u64, String> {
    let n = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    n.map_err(|_| "Session pointer/id expected (use 'show sess').".to_string())
}

fn show_sess(_: &Runtime, args: &[&str]) -> Result<String, String> {
    let only = match args {
        [] | ["all"] => None,
        [id] => Some(parse_id(id)?),
        _ => return Err("'show sess' takes at most a session id".into()),
    };
    let mut lines: Vec<(u64, String)> = with(|r| {
        r.live
            .iter()
            .filter(|(id, _)| only.is_none_or(|o| o == **id))
            .map(|(id, e)| (*id, line(*id, e)))
            .collect()
    });
    lines.sort_by_key(|(id, _)| *id);
    Ok(lines.into_iter().map(|(_, l)| l).collect())
}

fn line(id: u64, e: &Entry) -> String {
    let proto = if e.client.is_ipv4() { "tcpv4" } else { "tcpv6" };
    let (fe, be, srv) = match e.rt.upgrade() {
        Some(rt) => {
            let fe = rt.cfg.frontends[e.frontend].name.clone();
            let at = e.slot.0.load(Relaxed);
            if at == 0 {
                (fe, "<NONE>".to_string(), "<none>".to_string())
            } else {
                let (b, s) = ((at >> 32) as usize - 1, (at & 0xffff_ffff) as usize - 1);
                let be = &rt.cfg.backends[b];
                (fe, be.name.clone(), be.servers[s].name.clone())
            }
        }
        None => ("?".into(), "?".into(), "?".into()),
    };
    format!(
        "0x{id:x}: proto={proto} src={} fe={fe} be={be} srv={srv} age={}s\n",
        e.client,
        e.started.elapsed().as_secs()
    )
}

fn shutdown_session(_: &Runtime, args: &[&str]) -> Result<String, String> {
    let [id] = args else {
        return Err("Session pointer/id expected (use 'show sess').".into());
    };
    let id = parse_id(id)?;
    let abort = with(|r| r.live.get(&id).map(|e| e.abort.clone()));
    match abort {
        Some(Some(a)) => {
            a.abort();
            Ok(String::new())
        }
        Some(None) => Err("The session is starting; try again.".into()),
        None => Err("No such session (use 'show sess').".into()),
    }
}

fn shutdown_server(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let (be, srv) = server_ref(rt, args.first())?;
    let (be_name, srv_name) = (
        rt.cfg.backends[be].name.clone(),
        rt.cfg.backends[be].servers[srv].name.clone(),
    );
    // By names: the server is the same one in every configuration that still has sessions.
    let aborts: Vec<tokio::task::AbortHandle> = with(|r| {
        r.live
            .values()
            .filter(|e| {
                let at = e.slot.0.load(Relaxed);
                at != 0
                    && e.rt.upgrade().is_some_and(|g| {
                        let (b, s) = ((at >> 32) as usize - 1, (at & 0xffff_ffff) as usize - 1);
                        g.cfg.backends[b].name == be_name
                            && g.cfg.backends[b].servers[s].name == srv_name
                    })
            })
            .filter_map(|e| e.abort.clone())
            .collect()
    });
    for a in aborts {
        a.abort();
    }
    Ok(String::new())
}

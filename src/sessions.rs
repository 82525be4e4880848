//! The live sessions, for the runtime API: `show sess`, `shutdown session`, `shutdown sessions
//! server`. Every session running in a task is registered here with its frontend, client, start
//! time and abort handle; the server it is on is set from inside the task (a task-local slot, so the
//! session code carries nothing extra). Aborting a task ends its session as a shutdown does: the
//! session's record is logged with a `K` termination code. A session that parks (quiet, spliced:
//! `forward::park`) leaves the registry with its task and is found on its shelf instead; it comes
//! back under the same id when it wakes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
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
struct Slot {
    at: AtomicU64,
    idle: AtomicBool,
    id: u64,
    /// The session has left its task to be parked ([`hand_over`]): the task's end does not
    /// deregister it.
    handed: AtomicBool,
}

/// The `at` value for a server.
fn at(backend: usize, server: usize) -> u64 {
    ((backend as u64 + 1) << 32) | (server as u64 + 1)
}

tokio::task_local! {
    static SLOT: Arc<Slot>;
}

/// Records, from inside a session's task, the server it now uses.
pub fn on_server(backend: usize, server: usize) {
    let _ = SLOT.try_with(|s| s.at.store(at(backend, server), Relaxed));
}

/// Marks, from inside a session's task, whether it is idle between requests (a graceful stop
/// closes idle connections at once).
pub fn set_idle(idle: bool) {
    let _ = SLOT.try_with(|s| s.idle.store(idle, Relaxed));
}

/// Ends every session idle between requests (graceful stop). One that became busy a moment ago may
/// be caught too: its client sees the connection close, as with any server ending keep-alive.
pub fn close_idle() {
    let idle: Vec<tokio::task::AbortHandle> = with(|r| {
        r.live
            .values()
            .filter(|e| e.slot.idle.load(Relaxed))
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

/// What `show sess` shows of a session, in a task or parked.
pub struct Listing {
    pub id: u64,
    pub rt: Weak<Runtime>,
    pub frontend: usize,
    pub client: SocketAddr,
    pub started: Instant,
    /// The server, as `(backend, server)`, once chosen.
    pub server: Option<(usize, usize)>,
}

impl Entry {
    fn listing(&self, id: u64) -> Listing {
        let at = self.slot.at.load(Relaxed);
        Listing {
            id,
            rt: self.rt.clone(),
            frontend: self.frontend,
            client: self.client,
            started: self.started,
            server: (at != 0).then(|| ((at >> 32) as usize - 1, (at & 0xffff_ffff) as usize - 1)),
        }
    }
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

impl Registry {
    fn remove(&mut self, id: u64) {
        self.live.remove(&id);
        // After a crowd has gone (parked, or ended), the table gives its memory back.
        if self.live.capacity() > 1024 && self.live.len() < self.live.capacity() / 8 {
            self.live.shrink_to_fit();
        }
    }
}

/// Takes the session out of the registry when its task ends, however it ends, unless the session
/// was handed over to be parked.
struct Deregister(Arc<Slot>);

impl Drop for Deregister {
    fn drop(&mut self) {
        if !self.0.handed.load(Relaxed) {
            with(|r| r.remove(self.0.id));
        }
    }
}

/// Spawns a session's task on the current runtime, registered until it ends.
pub fn spawn<F>(rt: &Arc<Runtime>, frontend: usize, client: SocketAddr, session: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    register(None, rt, frontend, client, Instant::now(), None, session);
}

/// Registers a session (a new one when `id` is `None`) and spawns its task.
fn register<F>(
    id: Option<u64>,
    rt: &Arc<Runtime>,
    frontend: usize,
    client: SocketAddr,
    started: Instant,
    server: Option<(usize, usize)>,
    session: F,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let slot = with(|r| {
        let id = id.unwrap_or_else(|| {
            r.next += 1;
            r.next
        });
        let slot = Arc::new(Slot {
            id,
            at: AtomicU64::new(server.map_or(0, |(b, s)| at(b, s))),
            ..Slot::default()
        });
        r.live.insert(
            id,
            Entry {
                rt: Arc::downgrade(rt),
                frontend,
                client,
                started,
                slot: slot.clone(),
                abort: None,
            },
        );
        slot
    });
    let id = slot.id;
    let task = tokio::spawn(SLOT.scope(slot.clone(), async move {
        let _registered = Deregister(slot);
        session.await;
    }));
    with(|r| {
        if let Some(e) = r.live.get_mut(&id) {
            e.abort = Some(task.abort_handle());
        }
    });
}

/// From inside a session's task: takes the session out of the registry (the task is about to end
/// while the session lives on, parked, where `show sess` still finds it). Its id, or 0 outside a
/// registered task (tests).
pub fn hand_over() -> u64 {
    let Ok(id) = SLOT.try_with(|s| {
        s.handed.store(true, Relaxed);
        s.id
    }) else {
        return 0;
    };
    with(|r| r.remove(id));
    id
}

/// Spawns the task that carries a parked session on, registered again under its id (0: not
/// registered, as it was not before).
pub fn resume<F>(listing: Listing, rt: &Arc<Runtime>, session: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    if listing.id == 0 {
        tokio::spawn(session);
        return;
    }
    register(
        Some(listing.id),
        rt,
        listing.frontend,
        listing.client,
        listing.started,
        listing.server,
        session,
    );
}

/// Sessions now open (all configurations), parked ones included.
pub fn count() -> usize {
    with(|r| r.live.len()) + crate::forward::park::listings().len()
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
    let mut all = listings();
    all.retain(|l| only.is_none_or(|o| o == l.id));
    all.sort_by_key(|l| l.id);
    Ok(all.iter().map(line).collect())
}

/// Every live session: those in tasks (the registry) and those parked.
fn listings() -> Vec<Listing> {
    let mut all: Vec<Listing> = with(|r| r.live.iter().map(|(id, e)| e.listing(*id)).collect());
    all.extend(crate::forward::park::listings());
    all
}

fn line(l: &Listing) -> String {
    let proto = if l.client.is_ipv4() { "tcpv4" } else { "tcpv6" };
    let (fe, be, srv) = match l.rt.upgrade() {
        Some(rt) => {
            let fe = rt.cfg.frontends[l.frontend].name.clone();
            match l.server {
                None => (fe, "<NONE>".to_string(), "<none>".to_string()),
                Some((b, s)) => {
                    let be = &rt.cfg.backends[b];
                    (fe, be.name.clone(), be.servers[s].name.clone())
                }
            }
        }
        None => ("?".into(), "?".into(), "?".into()),
    };
    format!(
        "0x{:x}: proto={proto} src={} fe={fe} be={be} srv={srv} age={}s\n",
        l.id,
        l.client,
        l.started.elapsed().as_secs()
    )
}

/// Ends the sessions `which` picks, in tasks (aborted) and parked (dropped from their shelf); each
/// logs itself as killed. Returns how many; `Err` if one picked is still starting.
fn end_where(which: impl Fn(&Listing) -> bool) -> Result<usize, ()> {
    let picked: Vec<Option<tokio::task::AbortHandle>> = with(|r| {
        r.live
            .iter()
            .filter(|(id, e)| which(&e.listing(**id)))
            .map(|(_, e)| e.abort.clone())
            .collect()
    });
    // Outside the registry's lock: an ended session deregisters itself.
    let starting = picked.iter().any(Option::is_none);
    let mut n = 0;
    for a in picked.into_iter().flatten() {
        a.abort();
        n += 1;
    }
    n += crate::forward::park::end_where(&which);
    if starting && n == 0 { Err(()) } else { Ok(n) }
}

fn shutdown_session(_: &Runtime, args: &[&str]) -> Result<String, String> {
    let [id] = args else {
        return Err("Session pointer/id expected (use 'show sess').".into());
    };
    let id = parse_id(id)?;
    match end_where(|l| l.id == id) {
        Ok(0) => Err("No such session (use 'show sess').".into()),
        Ok(_) => Ok(String::new()),
        Err(()) => Err("The session is starting; try again.".into()),
    }
}

fn shutdown_server(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let (be, srv) = server_ref(rt, args.first())?;
    let (be_name, srv_name) = (
        rt.cfg.backends[be].name.clone(),
        rt.cfg.backends[be].servers[srv].name.clone(),
    );
    // By names: the server is the same one in every configuration that still has sessions.
    let _ = end_where(|l| {
        l.server.is_some_and(|(b, s)| {
            l.rt.upgrade().is_some_and(|g| {
                g.cfg.backends[b].name == be_name && g.cfg.backends[b].servers[s].name == srv_name
            })
        })
    });
    Ok(String::new())
}

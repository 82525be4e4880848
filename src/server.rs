//! The running gateway: bind → install plumbing → accept until shutdown → remove plumbing.
//!
//! [`run`] takes already-bound listeners and a shutdown future, so tests can bind port 0 and stop it
//! when they like; [`serve`] adds binding and the plumbing unit around it.

use std::future::Future;
use std::sync::Arc;

use crate::account::Runtime;
use crate::config::Config;
use crate::listener::{self, BindError, Bound};
use crate::plumbing::{self, Plan, PlumbingError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("installing the plumbing unit: {0}")]
    Plumbing(#[from] PlumbingError),
    #[error("starting a runtime thread: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Resolvers(#[from] crate::resolve::ResolverSetupError),
    #[error(transparent)]
    Names(#[from] crate::target::StartError),
    #[error(transparent)]
    Cli(#[from] crate::cli::CliError),
    #[error("dropping privileges: {0}; gatehouse does not run as root when 'user' is set")]
    Privileges(crate::sys::privs::PrivError),
    #[error(
        "'user' needs nftables plumbing: iptables-legacy opens /run/xtables.lock, which only root may, so the dropped gatehouse could neither replace its plumbing on reload nor remove it at exit; install nftables and set 'plumbing nft' (or 'plumbing none' and install the rules yourself)"
    )]
    PrivilegesIptables,
}

/// How to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// At once: open sessions are killed (and logged as such).
    Now,
    /// Stop accepting, let open sessions finish (keep-alive connections close after their current
    /// request), then stop; `hard-stop-after` bounds the wait.
    Graceful,
}

/// Worker phases, sent to every worker thread.
const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const STOPPED: u8 = 2;

/// Tells systemd (Type=notify) how we are, when it started us: `READY=1`, `STOPPING=1`.
fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let msg = format!("{state}\nMAINPID={}", std::process::id());
    let _ = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
        }
        None => sock.send_to(msg.as_bytes(), &path),
    };
}

/// Accepts on `bound` until `shutdown` completes; sessions still open are dropped with the runtime.
pub async fn run(rt: Arc<Runtime>, bound: Vec<Bound>, shutdown: impl Future<Output = ()>) {
    let mut tasks = tokio::task::JoinSet::new();
    for b in bound {
        tasks.spawn(listener::accept_loop(rt.clone(), b));
    }
    shutdown.await;
    tasks.abort_all();
}

/// Waits for the open sessions (`open()`, every configuration's) to end, for `hard-stop-after`,
/// or for SIGTERM/SIGINT.
async fn drain(rt: &Runtime, open: impl Fn() -> u64) {
    use tokio::signal::unix::{SignalKind, signal};
    let sessions = open();
    tracing::info!(
        sessions,
        hard_stop_after = ?rt.cfg.global.hard_stop_after,
        "stopping gracefully: no new connections; waiting for open sessions to end"
    );
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    let limit = async {
        match rt.cfg.global.hard_stop_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(limit);
    while open() > 0 {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            _ = &mut limit => {
                tracing::warn!(sessions = open(), "hard-stop-after reached: killing the sessions left");
                return;
            }
            _ = term.recv() => {
                tracing::info!("SIGTERM while draining: stopping now");
                return;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT while draining: stopping now");
                return;
            }
        }
    }
    tracing::info!("every session ended");
}

/// Files removed when dropped (the stats sockets' files).
struct RemoveOnDrop(Vec<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Binds, installs the plumbing unit, runs until `shutdown`, then removes the unit. The unit is
/// removed on every way out after it was installed.
///
/// One worker thread per core (or `nbthread`), each with its own single-threaded runtime and its own
/// SO_REUSEPORT copy of every listener: a connection lives on the thread whose socket the kernel gave
/// it to, with no work stealing or cross-thread wake-ups. `shutdown` runs on a small control runtime
/// that also installs and removes the plumbing.
pub fn serve<F: Future<Output = ()> + Send + 'static>(
    cfg: Arc<Config>,
    threads: Option<usize>,
    events: impl FnOnce(tokio::sync::mpsc::UnboundedSender<Event>) -> F,
) -> Result<(), ServeError> {
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let _counted = crate::account::cli::CountedRuntime::new(control.handle().clone());
    // Signals first, so that one arriving while we start is ours, not the default action (a
    // SIGHUP would kill the process). The task installs its handlers on its first poll.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    control.spawn(events(tx));
    control.block_on(tokio::task::yield_now());
    // DNS first: a name that cannot be resolved stops the start before anything is bound.
    let runtime = control.block_on(prepare(&control, cfg.clone(), None))?;
    let bound = listener::bind_all_std(&cfg, threads)?;
    let cli = crate::cli::bind(&cfg.global.stats_sockets)?;
    let cli_files: Vec<std::path::PathBuf> = cli
        .iter()
        .filter_map(|l| l.path().map(Into::into))
        .collect();
    // The socket files go on every way out, as the plumbing does.
    let _cli_files = RemoveOnDrop(cli_files);
    for b in &bound {
        tracing::info!(frontend = %cfg.frontends[b.frontend].name, addr = %b.addr, threads, "listening");
    }
    let plan = Plan::from_config(&cfg);
    let mut installed = control.block_on(plumbing::install(&plan))?;
    if !plan.is_empty() {
        tracing::info!(firewall = ?installed.firewall, families = ?plan.families, diverts = plan.diverts.len(), "plumbing installed");
    }
    // Before any worker thread exists: they inherit the dropped credentials (see sys::privs).
    if let Err(e) = drop_privileges(&cfg, installed.firewall) {
        let _ = control.block_on(installed.remove());
        return Err(e);
    }
    let mut rt = Arc::new(runtime);
    record_plumbing(&rt, &installed);
    let (current_tx, current_rx) = tokio::sync::watch::channel(rt.clone());
    // Re-resolves server names as their TTLs run out, and checks servers' health, on the control
    // thread; a reload starts them again for the new configuration.
    let mut background = background_tasks(&control, &rt);
    control.spawn(crate::cli::serve(current_rx, cli));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(RUNNING);
    let (gen_tx, gen_rx) = tokio::sync::watch::channel(generation(&rt, bound, threads));
    let mut workers = Vec::new();
    for i in 0..threads {
        let mut stop = stop_rx.clone();
        let mut gens = gen_rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("gatehouse-{i}"))
            .spawn(move || -> Result<(), ServeError> {
                let local = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(ServeError::Runtime)?;
                let _counted = crate::account::cli::CountedRuntime::new(local.handle().clone());
                local.block_on(worker(i, &mut gens, &mut stop))?;
                // Dropping the runtime drops the sessions still open: each logs itself as killed.
                drop(local);
                Ok(())
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(e) => {
                let _ = stop_tx.send(STOPPED);
                let _ = control.block_on(installed.remove());
                return Err(ServeError::Runtime(e));
            }
        }
    }
    // Listeners are bound and the unit is in place: connections are taken from here on.
    tracing::info!(pid = std::process::id(), threads, "ready");
    sd_notify("READY=1");
    // Runtimes of earlier configurations, alive while their sessions last.
    let mut older: Vec<std::sync::Weak<Runtime>> = Vec::new();
    let how = control.block_on(async {
        loop {
            match rx.recv().await {
                None => return Stop::Now,
                Some(Event::Stop(how)) => return how,
                Some(Event::Reload(new_cfg)) => {
                    sd_notify("RELOADING=1");
                    match reload(&control, &rt, &installed.plan, new_cfg, threads).await {
                        Ok((new_rt, generation, new_installed)) => {
                            older.retain(|w| w.strong_count() > 0);
                            older.push(Arc::downgrade(&rt));
                            rt.retired.store(true, std::sync::atomic::Ordering::Relaxed);
                            rt = new_rt;
                            if let Some(i) = new_installed {
                                installed = i;
                            }
                            record_plumbing(&rt, &installed);
                            for t in background.drain(..) {
                                t.abort();
                            }
                            background = background_tasks(&control, &rt);
                            let _ = current_tx.send(rt.clone());
                            let _ = gen_tx.send(generation);
                            tracing::info!(
                                frontends = rt.cfg.frontends.len(),
                                backends = rt.cfg.backends.len(),
                                "configuration reloaded"
                            );
                        }
                        Err(e) => {
                            tracing::error!("reload refused, the running configuration stays: {e}")
                        }
                    }
                    sd_notify("READY=1");
                }
            }
        }
    });
    sd_notify("STOPPING=1");
    if how == Stop::Graceful {
        let live: Vec<Arc<Runtime>> = older
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .chain(std::iter::once(rt.clone()))
            .collect();
        for r in &live {
            r.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = stop_tx.send(DRAINING);
        // Keep-alive connections waiting between requests close now rather than at their timeout.
        crate::sessions::close_idle();
        control.block_on(drain(&rt, || {
            live.iter()
                .map(|r| r.active.load(std::sync::atomic::Ordering::Relaxed))
                .sum()
        }));
    }
    let _ = stop_tx.send(STOPPED);
    let mut first_err = None;
    for w in workers {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => tracing::error!("a worker thread panicked"),
        }
    }
    tracing::info!("counters: {}", rt.policy.summary());
    let plumbed = !installed.plan.is_empty();
    let removed = control.block_on(installed.remove());
    if plumbed {
        tracing::info!("plumbing removed");
    }
    removed?;
    first_err.map_or(Ok(()), Err)
}

/// Becomes `user`/`group` when the configuration names them, keeping the capabilities that
/// transparent connects, marks, low-port binds and re-plumbing need.
fn drop_privileges(cfg: &Config, firewall: plumbing::Firewall) -> Result<(), ServeError> {
    if let Some(to) = cfg.global.run_as {
        if firewall == plumbing::Firewall::Iptables {
            return Err(ServeError::PrivilegesIptables);
        }
        let done = crate::sys::privs::drop_to(to.uid, to.gid).map_err(ServeError::Privileges)?;
        tracing::info!(
            uid = to.uid,
            gid = to.gid,
            threads = done.threads,
            "privileges dropped: keeping CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE"
        );
    }
    Ok(())
}

/// Notes in the runtime which unit is installed (for the metrics).
fn record_plumbing(rt: &Runtime, installed: &plumbing::Installed) {
    let firewall = match installed.firewall {
        _ if installed.plan.is_empty() => "none",
        plumbing::Firewall::Nft => "nft",
        plumbing::Firewall::Iptables => "iptables",
        plumbing::Firewall::None => "none",
    };
    let _ = rt.plumbing.set((firewall, installed.plan.diverts.len()));
}

/// What the control thread hears: stop, or a new configuration (already read and validated).
pub enum Event {
    Stop(Stop),
    Reload(Arc<Config>),
}

/// A runtime for `cfg` with its resolvers and the addresses of its named servers; after a reload,
/// with what it takes over from `old`.
async fn prepare(
    control: &tokio::runtime::Runtime,
    cfg: Arc<Config>,
    old: Option<&Runtime>,
) -> Result<Runtime, ServeError> {
    let mut runtime = Runtime::new(cfg.clone());
    {
        let _in = control.enter();
        runtime.dns = crate::resolve::Dns::new(&cfg.resolvers, control.handle().clone())?;
    }
    crate::target::resolve_at_start(&mut runtime).await?;
    if let Some(old) = old {
        runtime.carry_over(old);
    }
    Ok(runtime)
}

fn background_tasks(
    control: &tokio::runtime::Runtime,
    rt: &Arc<Runtime>,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        control.spawn(crate::target::watch_names(rt.clone())),
        control.spawn(crate::checks::run(rt.clone())),
    ]
}

/// What the workers accept with: the runtime, every bind line (by its written address) with its
/// frontend, and the sockets bound for this configuration, one list per worker.
pub struct Generation {
    rt: Arc<Runtime>,
    /// (written address, frontend, bind index)
    binds: Vec<(std::net::SocketAddr, usize, usize)>,
    fresh: Vec<std::sync::Mutex<Vec<listener::StdBound>>>,
}

fn generation(
    rt: &Arc<Runtime>,
    bound: Vec<listener::StdBound>,
    threads: usize,
) -> Arc<Generation> {
    let binds = rt
        .cfg
        .frontends
        .iter()
        .enumerate()
        .flat_map(|(fi, f)| {
            f.binds
                .iter()
                .enumerate()
                .map(move |(bi, b)| (b.addr, fi, bi))
        })
        .collect();
    // Deal the copies out: worker i takes the i-th socket of every bind line.
    let mut fresh: Vec<Vec<listener::StdBound>> = (0..threads).map(|_| Vec::new()).collect();
    for b in bound {
        for (i, s) in b.sockets.into_iter().enumerate() {
            fresh[i].push(listener::StdBound {
                frontend: b.frontend,
                bind: b.bind,
                key: b.key,
                addr: b.addr,
                sockets: vec![s],
            });
        }
    }
    Arc::new(Generation {
        rt: rt.clone(),
        binds,
        fresh: fresh.into_iter().map(std::sync::Mutex::new).collect(),
    })
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One worker thread: accepts for the newest configuration on the sockets it holds, until stopped.
async fn worker(
    i: usize,
    gens: &mut tokio::sync::watch::Receiver<Arc<Generation>>,
    stop: &mut tokio::sync::watch::Receiver<u8>,
) -> Result<(), ServeError> {
    type Held = (crate::addr::ListenAddr, Arc<tokio::net::TcpListener>);
    let mut held: std::collections::HashMap<std::net::SocketAddr, Held> =
        std::collections::HashMap::new();
    let mut accepting = tokio::task::JoinSet::new();
    // tokio's timer wakes its thread through the I/O driver (an eventfd write, then one more
    // epoll_wait) whenever a timer is set to fire before every timer it already had, even from that
    // same thread; with none pending, each connection's connect timeout and idle timer did so, four
    // system calls per connection. A timer always due within 250 ms keeps sessions' timers (seconds
    // away) from ever being the earliest, for four wake-ups a second.
    let pacer = tokio::spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
        }
    });
    let _pacer = AbortOnDrop(pacer);
    loop {
        let gen_now = gens.borrow_and_update().clone();
        // The old loops stop; their sockets stay (connections wait in the backlog meanwhile).
        accepting.abort_all();
        while accepting.join_next().await.is_some() {}
        let fresh =
            std::mem::take(&mut *gen_now.fresh[i].lock().unwrap_or_else(|e| e.into_inner()));
        for b in fresh {
            for s in b.sockets {
                let l = Bound::from_std(b.frontend, b.bind, b.addr, s)?;
                held.insert(b.key, (b.addr, Arc::new(l.listener)));
            }
        }
        // Bind lines that went away close their sockets.
        held.retain(|k, _| gen_now.binds.iter().any(|(b, _, _)| b == k));
        for (key, fe, bind) in &gen_now.binds {
            if let Some((addr, l)) = held.get(key) {
                accepting.spawn(listener::accept_on(
                    gen_now.rt.clone(),
                    (*fe, *bind),
                    *addr,
                    l.clone(),
                ));
            }
        }
        drop(gen_now);
        tokio::select! {
            changed = gens.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = stop.wait_for(|p| *p >= DRAINING) => break,
        }
    }
    // Draining or stopping: the listening sockets close; sessions go on.
    accepting.abort_all();
    while accepting.join_next().await.is_some() {}
    drop(held);
    let _ = stop.wait_for(|p| *p >= STOPPED).await;
    Ok(())
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Start(#[from] ServeError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("installing the new plumbing unit: {0} (the previous unit was put back)")]
    Plumbing(PlumbingError),
}

type Reloaded = (Arc<Runtime>, Arc<Generation>, Option<plumbing::Installed>);

/// Builds everything the new configuration needs before anything changes: its runtime (tables and
/// server states carried over), sockets for its new bind lines, and its plumbing unit if that
/// differs. Any failure leaves the running configuration as it was.
async fn reload(
    control: &tokio::runtime::Runtime,
    old: &Arc<Runtime>,
    old_plan: &Plan,
    cfg: Arc<Config>,
    threads: usize,
) -> Result<Reloaded, ReloadError> {
    let runtime = prepare(control, cfg.clone(), Some(old)).await?;
    let held: Vec<std::net::SocketAddr> = old
        .cfg
        .frontends
        .iter()
        .flat_map(|f| f.binds.iter().map(|b| b.addr))
        .collect();
    let bound = listener::bind_std_except(&cfg, threads, |a| held.contains(&a))?;
    for b in &bound {
        tracing::info!(frontend = %cfg.frontends[b.frontend].name, addr = %b.addr, "listening (new bind line)");
    }
    let plan = Plan::from_config(&cfg);
    let installed = if plan == *old_plan {
        None
    } else {
        tracing::info!("the plumbing unit changed: installing the new one");
        match plumbing::install(&plan).await {
            Ok(i) => {
                if plan.is_empty() {
                    plumbing::remove_all()
                        .await
                        .map_err(ReloadError::Plumbing)?;
                }
                Some(i)
            }
            Err(e) => {
                // install() removed what it had started; the previous unit goes back.
                if let Err(again) = plumbing::install(old_plan).await {
                    tracing::error!("putting the previous plumbing unit back failed too: {again}");
                }
                return Err(ReloadError::Plumbing(e));
            }
        }
    };
    let rt = Arc::new(runtime);
    let generation = generation(&rt, bound, threads);
    Ok((rt, generation, installed))
}

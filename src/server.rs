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

/// Waits for the open sessions to end, for `hard-stop-after`, or for SIGTERM/SIGINT.
async fn drain(rt: &Runtime) {
    use std::sync::atomic::Ordering::Relaxed;
    use tokio::signal::unix::{SignalKind, signal};
    let open = rt.active.load(Relaxed);
    tracing::info!(
        sessions = open,
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
    while rt.active.load(Relaxed) > 0 {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            _ = &mut limit => {
                tracing::warn!(sessions = rt.active.load(Relaxed), "hard-stop-after reached: killing the sessions left");
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
pub fn serve(
    cfg: Arc<Config>,
    threads: Option<usize>,
    shutdown: impl Future<Output = Stop>,
) -> Result<(), ServeError> {
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    // DNS first: a name that cannot be resolved stops the start before anything is bound.
    let mut runtime = Runtime::new(cfg.clone());
    {
        let _in = control.enter();
        runtime.dns = crate::resolve::Dns::new(&cfg.resolvers, control.handle().clone())?;
    }
    control.block_on(crate::target::resolve_at_start(&mut runtime))?;
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
    let installed = control.block_on(plumbing::install(&plan))?;
    if !plan.is_empty() {
        tracing::info!(firewall = ?installed.firewall, families = ?plan.families, diverts = plan.diverts.len(), "plumbing installed");
    }
    let rt = Arc::new(runtime);
    // Re-resolves server names as their TTLs run out, and checks servers' health, on the control
    // thread.
    control.spawn(crate::target::watch_names(rt.clone()));
    control.spawn(crate::checks::run(rt.clone()));
    control.spawn(crate::cli::serve(rt.clone(), cli));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(RUNNING);
    // Deal the copies out: worker i takes the i-th socket of every bind line.
    let mut per_worker: Vec<Vec<(usize, crate::addr::ListenAddr, std::net::TcpListener)>> =
        (0..threads).map(|_| Vec::new()).collect();
    for b in bound {
        for (i, s) in b.sockets.into_iter().enumerate() {
            per_worker[i].push((b.frontend, b.addr, s));
        }
    }
    let mut workers = Vec::new();
    for (i, sockets) in per_worker.into_iter().enumerate() {
        let rt = rt.clone();
        let mut stop = stop_rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("gatehouse-{i}"))
            .spawn(move || -> Result<(), ServeError> {
                let local = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(ServeError::Runtime)?;
                local.block_on(async {
                    let mut accepting = tokio::task::JoinSet::new();
                    for (fe, addr, s) in sockets {
                        accepting.spawn(listener::accept_loop(
                            rt.clone(),
                            Bound::from_std(fe, addr, s)?,
                        ));
                    }
                    let _ = stop.wait_for(|p| *p >= DRAINING).await;
                    // Draining or stopping: the listening sockets close; sessions go on.
                    accepting.abort_all();
                    while accepting.join_next().await.is_some() {}
                    let _ = stop.wait_for(|p| *p >= STOPPED).await;
                    Ok::<(), ServeError>(())
                })?;
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
    let how = control.block_on(shutdown);
    sd_notify("STOPPING=1");
    if how == Stop::Graceful {
        rt.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = stop_tx.send(DRAINING);
        control.block_on(drain(&rt));
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
    let removed = control.block_on(installed.remove());
    if !plan.is_empty() {
        tracing::info!("plumbing removed");
    }
    removed?;
    first_err.map_or(Ok(()), Err)
}

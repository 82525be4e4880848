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

/// Binds, installs the plumbing unit, runs until `shutdown`, then removes the unit. The unit is
/// removed on every way out after it was installed.
pub async fn serve(cfg: Arc<Config>, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let bound = listener::bind_all(&cfg)?;
    for b in &bound {
        tracing::info!(frontend = %cfg.frontends[b.frontend].name, addr = %b.addr, "listening");
    }
    let plan = Plan::from_config(&cfg);
    let installed = plumbing::install(&plan).await?;
    if !plan.is_empty() {
        tracing::info!(firewall = ?installed.firewall, families = ?plan.families, diverts = plan.diverts.len(), "plumbing installed");
    }
    let rt = Arc::new(Runtime::new(cfg));
    // Listeners are bound and the unit is in place: connections are taken from here on.
    tracing::info!(pid = std::process::id(), "ready");
    run(rt, bound, shutdown).await;
    let removed = installed.remove().await;
    if !plan.is_empty() {
        tracing::info!("plumbing removed");
    }
    removed?;
    Ok(())
}

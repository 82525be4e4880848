//! The `gatehouse` command: HAProxy-like flags (`-f`, `-c`, `-p`, `-L`) plus `gatehouse rules` and `gatehouse doctor`.
//! The only place `anyhow` is used; every layer below has its own typed errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use gatehouse::config::{self, ConfigError};
use gatehouse::doctor;
use gatehouse::plumbing::{self, Firewall, Plan};
use gatehouse::server::{Event, Stop};

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse",
    version,
    about = "A Linux transparent gateway and SNI proxy, configured like HAProxy",
    long_about = "A Linux transparent gateway and SNI proxy, configured like HAProxy.\n\n\
        With no -f, gatehouse runs its embedded default configuration: it intercepts TCP ports 80 \
        and 443 arriving on every interface except lo and passes each connection to its original \
        destination with the client's IP as source. `gatehouse -c` prints that default.\n\n\
        gatehouse installs its own plumbing (an nftables table, or iptables-legacy chains, plus an \
        `ip rule` and a local route) after binding, and removes it when it stops. SIGTERM/SIGINT \
        stop at once, SIGUSR1 stops gracefully, SIGHUP reloads the configuration files.\n\n\
        Connection logs (HAProxy tcplog/httplog layout) go where the `log` lines say, to standard \
        output without any; diagnostics go to standard error, filtered by GATEHOUSE_LOG \
        (e.g. GATEHOUSE_LOG=debug).",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Configuration file; repeat to read several, in order. Without it, the embedded default.
    #[arg(short = 'f', value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Check the configuration and exit: 0 if valid, 1 if not, printing `file:line:` messages.
    #[arg(short = 'c')]
    check: bool,
    /// Write the process id to this file (overrides the global `pidfile`).
    #[arg(short = 'p', value_name = "PIDFILE")]
    pidfile: Option<PathBuf>,
    /// Local peer name (kept for stick-table replication; currently only recorded).
    #[arg(short = 'L', value_name = "NAME")]
    local_peer: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the plumbing gatehouse would install (nft ruleset and ip rule/route), touching nothing;
    /// or, with --remove, remove a killed run's leftovers.
    Rules {
        /// Configuration file(s), as for the main command (not needed with --remove).
        #[arg(short = 'f', value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Remove every gatehouse nft table, iptables chain, ip rule and route, then exit.
        #[arg(long)]
        remove: bool,
        /// Render for this backend instead of the configured one.
        #[arg(long, value_name = "nft|iptables")]
        backend: Option<String>,
    },
    /// Check what transparent proxying needs on this host (kernel support, capabilities, rp_filter,
    /// return routes, conntrack, the plumbing unit, the listeners) and print the fix for each
    /// problem. Exits 1 if anything blocks traffic.
    Doctor {
        /// Configuration file(s), as for the main command.
        #[arg(short = 'f', value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Before any thread: one allocator heap for all (see sys::single_heap).
    gatehouse::sys::single_heap();
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn print_diagnostics(d: &[config::Diagnostic]) {
    for d in d {
        eprintln!("{d}");
    }
}

/// Loads the config, printing warnings; a config error prints every message and gives exit 1.
fn load(files: &[PathBuf]) -> Result<Option<config::Loaded>, anyhow::Error> {
    match config::load(files) {
        Ok(l) => {
            print_diagnostics(&l.warnings);
            Ok(Some(l))
        }
        Err(ConfigError::Invalid(d)) => {
            print_diagnostics(&d);
            let n = d.iter().filter(|d| d.is_error()).count();
            eprintln!("gatehouse: configuration has {n} error(s)");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n);
    }
    b.enable_all().build().context("starting the runtime")
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    if let Some(Command::Rules {
        files,
        remove,
        backend,
    }) = cli.command
    {
        return rules(&files, remove, backend.as_deref());
    }
    if let Some(Command::Doctor { files }) = cli.command {
        return doctor(&files);
    }

    if cli.check {
        if cli.files.is_empty() {
            print!("{}", config::DEFAULT_CONFIG);
        }
        return Ok(match load(&cli.files)? {
            Some(_) => {
                println!("Configuration file is valid");
                ExitCode::SUCCESS
            }
            None => ExitCode::from(1),
        });
    }

    let Some(loaded) = load(&cli.files)? else {
        return Ok(ExitCode::from(1));
    };
    let cfg = Arc::new(loaded.config);
    if let Some(name) = &cli.local_peer {
        tracing::debug!(local_peer = %name, "local peer name recorded");
    }
    raise_fd_limit(cfg.global.maxconn);
    let pidfile = cli.pidfile.or_else(|| cfg.global.pidfile.clone());
    if let Some(p) = &pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing pidfile {}", p.display()))?;
    }
    let threads = cfg.global.nbthread;
    let files = cli.files.clone();
    let result = gatehouse::server::serve(cfg, threads, move |tx| signals(files, tx));
    gatehouse::log::flush();
    if let Some(p) = &pidfile {
        let _ = std::fs::remove_file(p);
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM: stop now; SIGUSR1: stop gracefully; SIGHUP: read the configuration files
/// again and, if they are valid, reload (a broken file is reported and changes nothing).
async fn signals(files: Vec<PathBuf>, tx: tokio::sync::mpsc::UnboundedSender<Event>) {
    let stop = shutdown_signal(&files, &tx).await;
    let _ = tx.send(Event::Stop(stop));
}

async fn shutdown_signal(
    files: &[PathBuf],
    tx: &tokio::sync::mpsc::UnboundedSender<Event>,
) -> Stop {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing SIGINT handler");
    let mut usr1 = signal(SignalKind::user_defined1()).expect("installing SIGUSR1 handler");
    let mut hup = signal(SignalKind::hangup()).expect("installing SIGHUP handler");
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping");
                return Stop::Now;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping");
                return Stop::Now;
            }
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: stopping gracefully");
                return Stop::Graceful;
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                match config::load(files) {
                    Ok(l) => {
                        for w in &l.warnings {
                            tracing::warn!("{w}");
                        }
                        let _ = tx.send(Event::Reload(Arc::new(l.config)));
                    }
                    Err(ConfigError::Invalid(d)) => {
                        for d in &d {
                            tracing::error!("{d}");
                        }
                        tracing::error!("reload refused: the configuration has errors; the running one stays");
                    }
                    Err(e) => tracing::error!("reload refused: {e}; the running configuration stays"),
                }
            }
        }
    }
}

/// Each session needs two sockets (and a pipe while bytes move); raise the soft limit to fit.
fn raise_fd_limit(maxconn: u32) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = (u64::from(maxconn) * 2 + 1024).min(hard);
        if want > soft {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
        }
    }
}

fn rules(files: &[PathBuf], remove: bool, backend: Option<&str>) -> anyhow::Result<ExitCode> {
    if remove {
        // Removal finds our pieces by name and tag, not from a config: a broken or changed config
        // must never stand in the way of cleaning up.
        runtime(Some(1))?
            .block_on(plumbing::remove_all())
            .context("removing the plumbing unit")?;
        println!("removed every gatehouse nft table, iptables chain, ip rule and route");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(loaded) = load(files)? else {
        return Ok(ExitCode::from(1));
    };
    let plan = Plan::from_config(&loaded.config);
    let firewall = match backend {
        Some("nft") => Firewall::Nft,
        Some("iptables") => Firewall::Iptables,
        Some(other) => anyhow::bail!("unknown backend '{other}'; use nft or iptables"),
        None => match plan.settings.backend {
            config::model::FirewallBackend::Nft => Firewall::Nft,
            config::model::FirewallBackend::Iptables => Firewall::Iptables,
            config::model::FirewallBackend::None => Firewall::None,
            // Rendering touches nothing, so `auto` is shown as nft, the preferred backend.
            config::model::FirewallBackend::Auto => Firewall::Nft,
        },
    };
    print!("{}", plumbing::render(&plan, firewall));
    Ok(ExitCode::SUCCESS)
}

/// `gatehouse doctor`: one line per check; exit 1 when a check FAILs (warnings alone exit 0).
fn doctor(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load(files)? else {
        return Ok(ExitCode::from(1));
    };
    let expect = doctor::Expect::from_config(&loaded.config, files);
    let sys = runtime(Some(1))?
        .block_on(doctor::read::system(&expect))
        .context("reading the host")?;
    let findings = doctor::diagnose(&expect, &sys);
    for f in &findings {
        println!("{f}");
    }
    Ok(match doctor::worst(&findings) {
        doctor::Verdict::Fail => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

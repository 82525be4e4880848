//! The runtime API on `stats socket` listeners, spoken as HAProxy's management guide describes it:
//! one line of commands separated by `;`, each answer ending with an empty line; the connection
//! closes after the line unless `prompt` made it interactive (a `> ` prompt before each line, until
//! `quit` or `stats timeout` of silence; `set timeout cli` changes that for the connection, as hatop
//! does for its refresh interval).
//!
//! This module only listens, reads lines, checks levels and dispatches: the commands belong to the
//! modules whose state they read or change ([`crate::account::cli`], [`crate::balance::admin`],
//! [`crate::stick::cli`]), each listing its own in a [`Command`] table.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::account::Runtime;
use crate::config::model::{CliAddr, CliLevel, StatsSocket};

/// One runtime API command.
pub struct Command {
    /// The words that name it (`["show", "stat"]`); the rest of the line are its arguments.
    pub words: &'static [&'static str],
    /// The lowest socket level that may run it.
    pub level: CliLevel,
    /// Its arguments and what it does, for `help`.
    pub help: &'static str,
    /// Runs it with the words after its name. `Ok` is the answer (without the final empty line),
    /// `Err` a message saying what was wrong.
    pub run: fn(&Runtime, &[&str]) -> Result<String, String>,
}

/// Every command, in the order `help` lists them.
fn commands() -> impl Iterator<Item = &'static Command> {
    crate::account::cli::COMMANDS
        .iter()
        .chain(crate::balance::admin::COMMANDS)
        .chain(crate::stick::cli::COMMANDS)
        .chain(crate::sessions::COMMANDS)
        .chain(crate::resolve::COMMANDS)
        .chain(crate::rules::cli::COMMANDS)
        .chain(crate::listener::COMMANDS)
}

/// Longest lines read (a `set map` payload is far shorter).
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("stats socket {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A bound `stats socket`.
pub struct Listener {
    kind: Kind,
    level: CliLevel,
}

enum Kind {
    Unix(std::os::unix::net::UnixListener, std::path::PathBuf),
    Tcp(std::net::TcpListener),
}

impl Listener {
    /// The socket file to remove at exit, for a unix socket.
    pub fn path(&self) -> Option<&std::path::Path> {
        match &self.kind {
            Kind::Unix(_, p) => Some(p),
            Kind::Tcp(_) => None,
        }
    }
}

/// Binds every `stats socket` line. A socket file left by a killed run is replaced; any other file
/// at that path is an error, not something we delete.
pub fn bind(sockets: &[StatsSocket]) -> Result<Vec<Listener>, CliError> {
    sockets.iter().map(bind_one).collect()
}

fn bind_one(s: &StatsSocket) -> Result<Listener, CliError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let err = |source: std::io::Error| CliError::Bind {
        addr: match &s.addr {
            CliAddr::Unix(p) => p.display().to_string(),
            CliAddr::Tcp(a) => a.to_string(),
        },
        source,
    };
    let kind = match &s.addr {
        CliAddr::Unix(path) => {
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if !m.file_type().is_socket() {
                    return Err(err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "a file that is not a socket is in the way",
                    )));
                }
                std::fs::remove_file(path).map_err(err)?;
            }
            let l = std::os::unix::net::UnixListener::bind(path).map_err(err)?;
            if let Some(mode) = s.mode {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .map_err(err)?;
            }
            if s.uid.is_some() || s.gid.is_some() {
                std::os::unix::fs::chown(path, s.uid, s.gid).map_err(err)?;
            }
            l.set_nonblocking(true).map_err(err)?;
            Kind::Unix(l, path.clone())
        }
        CliAddr::Tcp(a) => {
            let l = std::net::TcpListener::bind(a).map_err(err)?;
            l.set_nonblocking(true).map_err(err)?;
            Kind::Tcp(l)
        }
    };
    Ok(Listener {
        kind,
        level: s.level,
    })
}

/// Serves the runtime API on `listeners` until the task is dropped; each connection talks to the
/// newest configuration's runtime (`current` changes on a reload).
pub async fn serve(current: tokio::sync::watch::Receiver<Arc<Runtime>>, listeners: Vec<Listener>) {
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        let current = current.clone();
        tasks.spawn(async move {
            let level = l.level;
            let now = || {
                let rt = current.borrow().clone();
                let timeout = rt.cfg.global.stats_timeout;
                (rt, timeout)
            };
            match l.kind {
                Kind::Unix(std_l, path) => {
                    let Ok(l) = tokio::net::UnixListener::from_std(std_l) else {
                        tracing::error!(path = %path.display(), "stats socket: cannot register");
                        return;
                    };
                    loop {
                        if let Ok((s, _)) = l.accept().await {
                            let (rt, timeout) = now();
                            tokio::spawn(session(rt, s, level, timeout));
                        }
                    }
                }
                Kind::Tcp(std_l) => {
                    let Ok(l) = tokio::net::TcpListener::from_std(std_l) else {
                        tracing::error!("stats socket: cannot register");
                        return;
                    };
                    loop {
                        if let Ok((s, _)) = l.accept().await {
                            let (rt, timeout) = now();
                            tokio::spawn(session(rt, s, level, timeout));
                        }
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// One runtime API connection.
pub async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    rt: Arc<Runtime>,
    stream: S,
    level: CliLevel,
    mut timeout: Duration,
) {
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let mut interactive = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = tokio::time::timeout(
            timeout,
            (&mut r).take(MAX_LINE as u64).read_until(b'\n', &mut line),
        )
        .await;
        let Ok(Ok(n)) = read else { return };
        if n == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let (out, quit) = run_line(&rt, &text, level, &mut interactive, &mut timeout);
        if w.write_all(out.as_bytes()).await.is_err() {
            return;
        }
        if quit || !interactive {
            let _ = w.shutdown().await;
            return;
        }
        if w.write_all(b"> ").await.is_err() {
            return;
        }
    }
}

/// Runs one line's commands; the answers, and whether the connection should close (`quit`).
/// `prompt` and `set timeout cli` change the connection's mode and idle timeout.
pub fn run_line(
    rt: &Runtime,
    line: &str,
    level: CliLevel,
    interactive: &mut bool,
    timeout: &mut Duration,
) -> (String, bool) {
    let mut out = String::new();
    for cmd in line.trim_end_matches(['\r', '\n']).split(';') {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        match words.as_slice() {
            [] => continue,
            ["quit"] => return (out, true),
            ["prompt"] => {
                *interactive = !*interactive;
                out.push('\n');
                continue;
            }
            ["help"] => out.push_str(&help(level)),
            ["set", "timeout", "cli", delay] => match cli_timeout(delay) {
                Ok(d) => *timeout = d,
                Err(e) => out.push_str(&e),
            },
            ["set", "timeout", ..] => out.push_str("'set timeout' takes 'cli <delay>'.\n"),
            _ => {
                let answer = dispatch(rt, &words, level);
                out.push_str(&answer);
                if !answer.is_empty() && !answer.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        // Every answer ends with an empty line.
        out.push('\n');
    }
    (out, false)
}

/// `set timeout cli`'s delay: seconds, or a duration with its unit (`90`, `2m`); at least 1 second,
/// at most a day.
fn cli_timeout(delay: &str) -> Result<Duration, String> {
    let d = if delay.bytes().all(|b| b.is_ascii_digit()) {
        delay
            .parse()
            .map(Duration::from_secs)
            .map_err(|e| e.to_string())
    } else {
        crate::config::parse::parse_duration(delay)
    };
    match d {
        Ok(d) if (Duration::from_secs(1)..=Duration::from_secs(86400)).contains(&d) => Ok(d),
        _ => Err(format!(
            "'{delay}' is not a timeout; write seconds (60) or a duration (2m), from 1s to 1d.\n"
        )),
    }
}

/// The command named by the first words of `words`, run if the level allows it.
fn dispatch(rt: &Runtime, words: &[&str], level: CliLevel) -> String {
    let found = commands()
        .filter(|c| c.words.len() <= words.len() && c.words.iter().zip(words).all(|(a, b)| a == b))
        .max_by_key(|c| c.words.len());
    let Some(c) = found else {
        return format!("Unknown command: '{}'\n{}", words.join(" "), help(level));
    };
    if c.level > level {
        return "Permission denied\n".into();
    }
    match (c.run)(rt, &words[c.words.len()..]) {
        Ok(s) => s,
        Err(e) => format!("{e}\n"),
    }
}

/// The commands this level may run, one per line.
fn help(level: CliLevel) -> String {
    let mut out = String::from("The following commands are valid at this level:\n");
    for (name, what) in [
        ("help", "this list"),
        ("prompt", "toggle interactive mode with prompt"),
        ("quit", "disconnect"),
        (
            "set timeout cli <delay>",
            "change this connection's idle timeout",
        ),
    ] {
        out.push_str(&format!("  {name:<39} : {what}\n"));
    }
    for c in commands().filter(|c| c.level <= level) {
        let name = c.words.join(" ");
        let (args, what) = c.help.split_once(" : ").unwrap_or(("", c.help));
        let left = if args.is_empty() {
            name
        } else {
            format!("{name} {args}")
        };
        out.push_str(&format!("  {left:<39} : {what}\n"));
    }
    out
}

/// Finds backend/server for `B/S`, by name.
pub fn server_ref(rt: &Runtime, arg: Option<&&str>) -> Result<(usize, usize), String> {
    let arg = arg.ok_or("Require 'backend/server'.")?;
    let (b, s) = arg.split_once('/').ok_or("Require 'backend/server'.")?;
    let be = rt
        .cfg
        .backends
        .iter()
        .position(|x| x.name == b)
        .ok_or("No such backend.")?;
    let srv = rt.cfg.backends[be]
        .servers
        .iter()
        .position(|x| x.name == s)
        .ok_or("No such server.")?;
    Ok((be, srv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn runtime() -> Arc<Runtime> {
        let cfg = crate::config::from_str("t.cfg", "frontend f\n bind 127.0.0.1:1\n")
            .unwrap()
            .config;
        Arc::new(Runtime::new(Arc::new(cfg)))
    }

    #[test]
    fn set_timeout_cli_changes_the_connections_timeout() {
        let rt = runtime();
        let (mut interactive, mut timeout) = (false, Duration::from_secs(10));
        let mut run = |line: &str, t: &mut Duration| {
            run_line(&rt, line, CliLevel::User, &mut interactive, t).0
        };
        assert_eq!(run("set timeout cli 60\n", &mut timeout), "\n");
        assert_eq!(timeout, Duration::from_secs(60));
        assert_eq!(run("set timeout cli 2m\n", &mut timeout), "\n");
        assert_eq!(timeout, Duration::from_secs(120));
        for bad in ["0", "2d", "x", "500ms"] {
            let out = run(&format!("set timeout cli {bad}\n"), &mut timeout);
            assert!(out.contains("is not a timeout"), "{bad}: {out}");
        }
        assert!(run("set timeout client 5\n", &mut timeout).contains("takes 'cli <delay>'"));
        assert_eq!(timeout, Duration::from_secs(120));
        assert!(help(CliLevel::User).contains("\n  set timeout cli <delay> "));
    }

    /// Read what the session wrote until the prompt, or until it closed (`None`).
    async fn until_prompt(r: &mut (impl AsyncRead + Unpin)) -> Option<String> {
        let mut out = Vec::new();
        let mut b = [0u8; 4096];
        while !out.ends_with(b"> ") {
            let n = r.read(&mut b).await.ok()?;
            if n == 0 {
                return None;
            }
            out.extend_from_slice(&b[..n]);
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    /// A client that polls less often than `stats timeout` keeps its connection once it has set a
    /// longer one (what hatop does), and loses it otherwise.
    #[tokio::test]
    async fn a_longer_cli_timeout_keeps_a_slow_client() {
        for (set, kept) in [(true, true), (false, false)] {
            let (mut ours, theirs) = tokio::io::duplex(1 << 16);
            let task = tokio::spawn(session(
                runtime(),
                theirs,
                CliLevel::User,
                Duration::from_millis(300),
            ));
            ours.write_all(b"prompt\n").await.unwrap();
            until_prompt(&mut ours).await.unwrap();
            if set {
                ours.write_all(b"set timeout cli 5\n").await.unwrap();
                until_prompt(&mut ours).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
            let _ = ours.write_all(b"show info\n").await;
            let answer = until_prompt(&mut ours).await;
            assert_eq!(
                answer.is_some_and(|a| a.starts_with("Name: gatehouse\n")),
                kept,
                "set: {set}"
            );
            drop(ours);
            task.await.unwrap();
        }
    }
}

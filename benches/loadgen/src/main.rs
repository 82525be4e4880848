//! loadgen: open-loop HTTP/1.1 load for `scripts/bench.sh`.
//!
//! ```text
//! loadgen rate ADDR [--conns 64] [--rate 20000] [--secs 5] [--warmup 1] [options]
//! loadgen hold ADDR [--conns 1000] [--rate 5000] [--secs 5] [--connect-concurrency 256]
//!                   [--pause 2] [--linger 1] [options]
//! options: --host NAME (default: ADDR's address) --path / --timeout 5 (seconds, per connect and
//!          per request) --drain 2 (seconds to wait for answers after the last request is due)
//! ```
//!
//! `rate` measures latency at a fixed request rate: requests fall due on a fixed timetable over C
//! keep-alive connections and each one's latency runs from the moment it was due to the end of its
//! response, so time spent waiting for a free connection counts (no coordinated omission; see
//! `run.rs` for how requests find connections). `hold` keeps N connections open and spreads a small
//! rate over them, printing a line as each phase starts (`open ...`, `rate-start`, `rate-end`) so
//! that a script can read the proxy's memory and CPU at those moments.
//!
//! Output: hold mode's phase lines, then a `result key=value ...` line for scripts and a sentence
//! for people. Exit status 0 when the run happened (errors are counted in the result, not fatal), 2
//! for bad arguments, 1 when nothing could be measured (no connection opened, no timer).
//!
//! Layout: `main.rs` (arguments, output) → `run.rs` (connections, timetable, counting) using
//! `timetable.rs`, `timer.rs` (microsecond wake-ups), `http.rs` (where a response ends) and
//! `hist.rs` (percentiles).

mod hist;
mod http;
mod run;
mod timer;
mod timetable;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use run::{Config, Mode, Report};

const USAGE: &str = "usage: loadgen rate|hold ADDR [--conns N] [--rate R] [--secs T] [--warmup T] \
[--host NAME] [--path P] [--timeout T] [--drain T] [--connect-concurrency N] [--pause T] [--linger T]";

fn main() -> ExitCode {
    let cfg = match parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Timer slack delays a sleeping thread's wake-up by up to 50 µs by default, on purpose: the
    // timetable wants its wake-ups on time.
    let _ = nix::sys::prctl::set_timerslack(1);
    let t0 = std::time::Instant::now();
    match run::run(cfg.clone()) {
        Ok(r) => {
            let cpu = own_cpu().map(|c| 100.0 * c.as_secs_f64() / t0.elapsed().as_secs_f64());
            print_report(&cfg, &r, cpu.unwrap_or(0.0));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mode = match args.next().as_deref() {
        Some("rate") => Mode::Rate,
        Some("hold") => Mode::Hold,
        Some(m) => return Err(format!("unknown mode {m:?}")),
        None => return Err("no mode".into()),
    };
    let addr: SocketAddr = args
        .next()
        .ok_or("no ADDR")?
        .parse()
        .map_err(|e| format!("ADDR: {e} (an IP:port, no names)"))?;
    let hold = mode == Mode::Hold;
    let mut cfg = Config {
        mode,
        addr,
        host: addr.ip().to_string(),
        path: "/".into(),
        conns: if hold { 1000 } else { 64 },
        rate: if hold { 5000 } else { 20_000 },
        secs: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        connect_concurrency: 256,
        pause: Duration::from_secs(2),
        linger: Duration::from_secs(1),
        drain: Duration::from_secs(2),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--conns" => cfg.conns = number(&flag, &value, 1, 1_000_000)? as usize,
            "--rate" => cfg.rate = number(&flag, &value, 1, 10_000_000)?,
            "--secs" => cfg.secs = seconds(&flag, &value, 3600.0)?,
            "--warmup" => cfg.warmup = seconds(&flag, &value, 600.0)?,
            "--timeout" => cfg.timeout = seconds(&flag, &value, 600.0)?,
            "--drain" => cfg.drain = seconds(&flag, &value, 600.0)?,
            "--pause" => cfg.pause = seconds(&flag, &value, 600.0)?,
            "--linger" => cfg.linger = seconds(&flag, &value, 600.0)?,
            "--connect-concurrency" => {
                cfg.connect_concurrency = number(&flag, &value, 1, 100_000)? as usize
            }
            "--host" => cfg.host = value,
            "--path" if value.starts_with('/') => cfg.path = value,
            "--path" => return Err("--path must start with /".into()),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if cfg.host.is_empty() || cfg.host.contains(['\r', '\n', ' ']) {
        return Err("--host: not a host name".into());
    }
    if cfg.path.contains(['\r', '\n', ' ']) {
        return Err("--path: no spaces or line breaks".into());
    }
    if cfg.timeout.is_zero() {
        return Err("--timeout must be above 0".into());
    }
    Ok(cfg)
}

fn number(flag: &str, v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{flag}: {v:?} is not a number from {min} to {max}")),
    }
}

fn seconds(flag: &str, v: &str, max: f64) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if (0.0..=max).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{flag}: {v:?} is not a number of seconds from 0 to {max}"
        )),
    }
}

/// CPU time (user + system) this process has used.
fn own_cpu() -> Option<Duration> {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let d = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    Some(d(u.user_time()) + d(u.system_time()))
}

/// `cpu`: loadgen's own CPU use over the whole run, % of one core.
fn print_report(cfg: &Config, r: &Report, cpu: f64) {
    let secs = r.window.as_secs_f64().max(1e-9);
    let achieved = r.done as f64 / secs;
    let mode = match cfg.mode {
        Mode::Rate => "rate",
        Mode::Hold => "hold",
    };
    let (p50, p90, p99, p999) = (
        r.lat.percentile(50.0),
        r.lat.percentile(90.0),
        r.lat.percentile(99.0),
        r.lat.percentile(99.9),
    );
    println!(
        "result mode={mode} conns={} opened={} connect_failed={} first_failed={} target_rate={} secs={secs} \
done={} errors={} err_io={} err_timeout={} err_http={} unsent={} queued={} backlog_max={} rate={achieved:.0} \
p50_us={p50} p90_us={p90} p99_us={p99} p999_us={p999} max_us={} lag_p50_us={} lag_p99_us={} lag_max_us={} \
client_cpu_pct={cpu:.0}",
        cfg.conns,
        r.opened,
        r.connect_failed,
        r.first_failed,
        cfg.rate,
        r.done,
        r.errors(),
        r.err_io,
        r.err_timeout,
        r.err_http,
        r.unsent,
        r.queued,
        r.backlog_max,
        r.lat.max(),
        r.lag.percentile(50.0),
        r.lag.percentile(99.0),
        r.lag.max(),
    );
    println!(
        "{mode}: {} requests answered in {secs} s ({achieved:.0}/s against {}/s asked) over {} of {} connections; \
{} errors, {} never sent; latency from the due time, µs: p50 {p50}, p90 {p90}, p99 {p99}, p99.9 {p999}, max {}; \
{} requests ({:.1} %) waited for a free connection; the timetable itself ran late by p99 {} µs, max {} µs; \
loadgen used {cpu:.0} % of a core",
        r.done,
        cfg.rate,
        r.opened,
        cfg.conns,
        r.errors(),
        r.unsent,
        r.lat.max(),
        r.queued,
        100.0 * r.queued as f64 / (r.done + r.errors() + r.unsent).max(1) as f64,
        r.lag.percentile(99.0),
        r.lag.max(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> impl Iterator<Item = String> {
        s.split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn defaults_per_mode() {
        let c = parse_args(args("rate 10.0.0.1:80")).unwrap();
        assert_eq!((c.conns, c.rate, c.host.as_str()), (64, 20_000, "10.0.0.1"));
        let c = parse_args(args("hold [::1]:8080 --conns 9000 --secs 2.5")).unwrap();
        assert_eq!((c.conns, c.rate), (9000, 5000));
        assert_eq!(c.secs, Duration::from_millis(2500));
        assert_eq!(c.host, "::1");
    }

    #[test]
    fn bad_arguments() {
        for a in [
            "",
            "walk 1.2.3.4:80",
            "rate example.test:80",
            "rate 1.2.3.4:80 --conns 0",
            "rate 1.2.3.4:80 --rate",
            "rate 1.2.3.4:80 --secs -1",
            "rate 1.2.3.4:80 --path x",
            "rate 1.2.3.4:80 --timeout 0",
            "rate 1.2.3.4:80 --bogus 1",
        ] {
            assert!(parse_args(args(a)).is_err(), "{a:?} accepted");
        }
    }
}

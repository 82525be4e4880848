//! `log` lines: `log <target> [len N] [format F] <facility> [<level> [<minlevel>]]` in global and
//! proxy sections, `log global` in proxies (the global lines), `no log` (none, not even inherited).

use super::{Section, SectionKind};
use crate::config::model::{LogDest, LogFormat, LogTarget};

/// A proxy's `log` line before the global ones are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLine {
    Global,
    Target(LogTarget),
}

/// Syslog facility names, by number.
pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// Syslog severity names, by number.
pub const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

pub(super) fn h_log(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    sec.global.log_seen = true;
    if sec.kind() == SectionKind::Global {
        if args.first().map(String::as_str) == Some("global") {
            return Err("'log global' belongs in a defaults, frontend or listen section".into());
        }
        let t = target(args)?;
        sec.global.logs.push(t);
        return Ok(());
    }
    let line = match args {
        [g] if g == "global" => LogLine::Global,
        _ => LogLine::Target(target(args)?),
    };
    let px = sec.px();
    px.logs.push(line);
    px.no_log = false;
    Ok(())
}

/// `log-format STRING`: the layout of the section's log lines (HAProxy's `%` variables).
pub(super) fn h_log_format(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("write 'log-format \"%ci:%cp [%tr] %ft %b/%s %Tw/%Tc/%Tt %B %ts\"'".into());
    }
    // Unquoted words arrive split: HAProxy joins them with single spaces.
    let f = crate::log::format::LineFormat::parse(&args.join(" "))?;
    sec.px().log_format = Some(std::sync::Arc::new(f));
    Ok(())
}

/// `no log`: this section logs nothing, whatever its defaults said.
pub(super) fn h_no_log(sec: &mut Section<'_>, args: &[String]) -> Result<(), String> {
    if sec.kind() == SectionKind::Global || !args.is_empty() {
        return Err("'no log' takes no argument and belongs in a proxy section".into());
    }
    // Only this section: the other proxies keep their logs (standard output by default).
    let px = sec.px();
    px.logs.clear();
    px.no_log = true;
    Ok(())
}

const USAGE: &str = "write 'log ADDRESS[:PORT] [len N] [format rfc3164|rfc5424|short|raw] FACILITY [LEVEL [MINLEVEL]]', e.g. 'log 127.0.0.1:514 local0 info', 'log /dev/log local0' or 'log stdout format raw local0'";

fn target(args: &[String]) -> Result<LogTarget, String> {
    let Some(addr) = args.first() else {
        return Err(USAGE.into());
    };
    let dest = dest(addr)?;
    let mut t = LogTarget {
        format: LogFormat::Rfc3164,
        ..LogTarget::stdout()
    };
    t.dest = dest;
    let mut rest = &args[1..];
    loop {
        match rest {
            [k, v, tail @ ..] if k == "len" => {
                t.len = v
                    .parse()
                    .ok()
                    .filter(|n| (80..=65535).contains(n))
                    .ok_or_else(|| format!("len '{v}' must be a number from 80 to 65535"))?;
                rest = tail;
            }
            [k, v, tail @ ..] if k == "format" => {
                t.format = match v.as_str() {
                    "rfc3164" | "legacy" => LogFormat::Rfc3164,
                    "rfc5424" => LogFormat::Rfc5424,
                    "short" => LogFormat::Short,
                    "raw" => LogFormat::Raw,
                    f => {
                        return Err(format!(
                            "unknown log format '{f}'; gatehouse writes rfc3164, rfc5424, short and raw"
                        ));
                    }
                };
                rest = tail;
            }
            [k, ..] if k == "sample" => {
                return Err("'log … sample' is not supported; every line is logged".into());
            }
            _ => break,
        }
    }
    let level = |name: &str| {
        LEVELS
            .iter()
            .position(|l| *l == name)
            .map(|n| n as u8)
            .ok_or_else(|| {
                format!(
                    "unknown log level '{name}'; use one of {}",
                    LEVELS.join(", ")
                )
            })
    };
    match rest {
        [] => return Err(format!("the log line needs a facility; {USAGE}")),
        [fac, tail @ ..] => {
            t.facility = FACILITIES
                .iter()
                .position(|f| f == fac)
                .map(|n| n as u8)
                .ok_or_else(|| {
                    format!(
                        "unknown syslog facility '{fac}'; use one of {}",
                        FACILITIES.join(", ")
                    )
                })?;
            match tail {
                [] => {}
                [max] => t.max_level = level(max)?,
                [max, min] => {
                    t.max_level = level(max)?;
                    t.min_level = level(min)?;
                    if t.min_level > t.max_level {
                        return Err(format!(
                            "the minimum level '{min}' is less severe than the maximum '{max}'; swap them"
                        ));
                    }
                }
                [_, _, extra, ..] => return Err(format!("unexpected '{extra}'; {USAGE}")),
            }
        }
    }
    Ok(t)
}

fn dest(addr: &str) -> Result<LogDest, String> {
    let udp = |a: &str| -> Result<LogDest, String> {
        if let Ok(sa) = a.parse::<std::net::SocketAddr>() {
            return Ok(LogDest::Udp(sa));
        }
        let ip: std::net::IpAddr = a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("'{a}' is not a log address; {USAGE}"))?;
        Ok(LogDest::Udp(std::net::SocketAddr::new(ip, 514)))
    };
    Ok(match addr {
        "stdout" => LogDest::Stdout,
        "stderr" => LogDest::Stderr,
        a if a.starts_with('/') => LogDest::Unix(a.into()),
        a => {
            if let Some(p) = a.strip_prefix("unix@") {
                LogDest::Unix(p.into())
            } else if let Some(rest) = a
                .strip_prefix("udp@")
                .or(a.strip_prefix("udp4@"))
                .or(a.strip_prefix("udp6@"))
                .or(a.strip_prefix("ipv4@"))
                .or(a.strip_prefix("ipv6@"))
            {
                udp(rest)?
            } else if a.contains('@') {
                return Err(format!(
                    "'{a}': gatehouse logs to stdout, stderr, a unix socket path or a UDP address"
                ));
            } else {
                udp(a)?
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(line: &str) -> Result<LogTarget, String> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        target(&args)
    }

    #[test]
    fn log_lines() {
        let l = t("127.0.0.1:514 local0 info").unwrap();
        assert_eq!(l.dest, LogDest::Udp("127.0.0.1:514".parse().unwrap()));
        assert_eq!(
            (l.facility, l.max_level, l.format),
            (16, 6, LogFormat::Rfc3164)
        );
        let l = t("10.0.0.1 len 4096 format rfc5424 local3 notice err").unwrap();
        assert_eq!(l.dest, LogDest::Udp("10.0.0.1:514".parse().unwrap()));
        assert_eq!(
            (l.len, l.facility, l.max_level, l.min_level),
            (4096, 19, 5, 3)
        );
        assert_eq!(l.format, LogFormat::Rfc5424);
        assert_eq!(
            t("/dev/log local0").unwrap().dest,
            LogDest::Unix("/dev/log".into())
        );
        let l = t("stdout format raw daemon").unwrap();
        assert_eq!(
            (l.dest, l.format, l.facility),
            (LogDest::Stdout, LogFormat::Raw, 3)
        );
        assert_eq!(
            t("ipv6@[::1]:5514 user").unwrap().dest,
            LogDest::Udp("[::1]:5514".parse().unwrap())
        );
        for (bad, why) in [
            ("127.0.0.1", "needs a facility"),
            ("127.0.0.1 local9", "unknown syslog facility 'local9'"),
            ("127.0.0.1 local0 loud", "unknown log level 'loud'"),
            ("127.0.0.1 local0 err info", "swap them"),
            ("tcp@1.2.3.4:514 local0", "gatehouse logs to stdout"),
            ("127.0.0.1 format json local0", "unknown log format 'json'"),
            ("127.0.0.1 len 10 local0", "from 80 to 65535"),
        ] {
            let e = t(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}

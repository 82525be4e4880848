//! The runtime API's server commands: taking servers in and out of the balance (`enable|disable
//! server`, `set server … state`), changing weights (`set server … weight`), and `show servers
//! state` in HAProxy's format (the one `server-state-file` saves).

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use crate::account::Runtime;
use crate::account::cli::server_addr;
use crate::cli::{Command, server_ref};
use crate::config::model::CliLevel;

pub const COMMANDS: &[Command] = &[
    Command {
        words: &["show", "servers", "state"],
        level: CliLevel::Operator,
        help: "[<backend>] : dump the servers' state (HAProxy's server-state format)",
        run: show_servers_state,
    },
    Command {
        words: &["get", "weight"],
        level: CliLevel::Operator,
        help: "<bk>/<srv> : a server's weight now and as configured",
        run: get_weight,
    },
    Command {
        words: &["set", "weight"],
        level: CliLevel::Admin,
        help: "<bk>/<srv> <w>[%] : change a server's weight (as set server … weight)",
        run: set_weight,
    },
    Command {
        words: &["enable", "server"],
        level: CliLevel::Admin,
        help: "<bk>/<srv> : take a server out of maintenance",
        run: enable_server,
    },
    Command {
        words: &["disable", "server"],
        level: CliLevel::Admin,
        help: "<bk>/<srv> : put a server into maintenance",
        run: disable_server,
    },
    Command {
        words: &["set", "server"],
        level: CliLevel::Admin,
        help: "<bk>/<srv> state ready|drain|maint | weight <w>[%] | addr <ip> [port <p>] : change a server's state, weight or address",
        run: set_server,
    },
];

fn enable_server(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let (be, srv) = server_ref(rt, args.first())?;
    rt.backends[be].health[srv].maint.store(false, Relaxed);
    event(
        rt,
        format!(
            "Server {}/{} is UP (leaving forced maintenance).",
            rt.cfg.backends[be].name, rt.cfg.backends[be].servers[srv].name
        ),
    );
    Ok(String::new())
}

fn disable_server(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let (be, srv) = server_ref(rt, args.first())?;
    rt.backends[be].health[srv].maint.store(true, Relaxed);
    event(
        rt,
        format!(
            "Server {}/{} is going DOWN for maintenance.",
            rt.cfg.backends[be].name, rt.cfg.backends[be].servers[srv].name
        ),
    );
    Ok(String::new())
}

/// An administrative state change: on standard error and the log targets, as a check's is.
fn event(rt: &Runtime, msg: String) {
    tracing::warn!("{msg}");
    crate::log::line(rt, crate::log::NOTICE, &msg);
}

/// Parses `W` (absolute, 0..=256) or `W%` (of the configured weight).
fn weight(configured: u32, arg: &str) -> Result<u32, String> {
    let bad = || format!("'{arg}' is not a weight: write 0 to 256, or a percentage like 50%");
    let w = match arg.strip_suffix('%') {
        Some(p) => {
            let p: u64 = p.parse().map_err(|_| bad())?;
            u32::try_from(u64::from(configured) * p / 100).map_err(|_| bad())?
        }
        None => arg.parse().map_err(|_| bad())?,
    };
    if w > 256 {
        return Err("Weight is limited to 256.".into());
    }
    Ok(w)
}

fn get_weight(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let (be, srv) = server_ref(rt, args.first())?;
    Ok(format!(
        "{} (initial {})\n",
        rt.backends[be].health[srv].weight.load(Relaxed),
        rt.cfg.backends[be].servers[srv].weight
    ))
}

fn set_weight(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let [s, w] = args else {
        return Err("Require 'backend/server' and 'weight' or 'weight%'.".into());
    };
    set_server(rt, &[s, "weight", w])
}

/// `set server B/S state STATE` for callers other than the socket (the stats page's admin form).
pub fn set_state(rt: &Runtime, server: &str, state: &str) -> Result<String, String> {
    set_server(rt, &[server, "state", state])
}

fn set_server(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let (be, srv) = server_ref(rt, args.first())?;
    let h = &rt.backends[be].health[srv];
    match &args[1..] {
        ["state", "ready"] => {
            h.maint.store(false, Relaxed);
            h.drain.store(false, Relaxed);
        }
        ["state", "drain"] => {
            h.maint.store(false, Relaxed);
            h.drain.store(true, Relaxed);
        }
        ["state", "maint"] => h.maint.store(true, Relaxed),
        ["state", ..] => {
            return Err("'set server <srv> state' expects 'ready', 'drain' and 'maint'.".into());
        }
        ["weight", w] => {
            let w = weight(rt.cfg.backends[be].servers[srv].weight, w)?;
            h.weight.store(w, Relaxed);
        }
        ["addr", ip, rest @ ..] => {
            let ip: std::net::IpAddr = ip
                .parse()
                .map_err(|_| format!("'{ip}' is not an IP address"))?;
            let port = match rest {
                [] => None,
                ["port", p] => Some(
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| format!("'{p}' is not a port"))?,
                ),
                _ => return Err("write 'set server <bk>/<srv> addr <ip> [port <port>]'".into()),
            };
            let s = &rt.cfg.backends[be].servers[srv];
            if matches!(
                s.target,
                crate::config::model::ServerTarget::OrigDst(_)
                    | crate::config::model::ServerTarget::Dynamic { .. }
            ) {
                return Err(
                    "this server's address comes from each connection (0.0.0.0 or %[…]); it cannot be set"
                        .into(),
                );
            }
            h.set_addr(Some((ip, port)));
            event(
                rt,
                format!(
                    "{}/{} changed its IP to {ip}{} by 'stats socket command'",
                    rt.cfg.backends[be].name,
                    s.name,
                    port.map(|p| format!(", port to {p}")).unwrap_or_default()
                ),
            );
        }
        ["health" | "agent" | "check-port" | "fqdn" | "ssl", ..] => {
            return Err(format!(
                "'set server {}' is not supported by gatehouse yet; it takes state, weight and addr",
                args[1]
            ));
        }
        _ => {
            return Err("'set server <srv>' only supports 'state', 'weight' and 'addr'.".into());
        }
    }
    Ok(String::new())
}

/// HAProxy's admin-state flags: forced maintenance and forced drain.
const ADMF_FMAINT: u8 = 0x01;
const ADMF_FDRAIN: u8 = 0x08;

fn show_servers_state(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let only = match args {
        [] => None,
        [b] => Some(
            rt.cfg
                .backends
                .iter()
                .position(|x| x.name == *b)
                .ok_or("Can't find backend.")?,
        ),
        _ => return Err("'show servers state' takes at most a backend name".into()),
    };
    let mut out = String::from(
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n",
    );
    for (i, b) in rt.cfg.backends.iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        for (j, s) in b.servers.iter().enumerate() {
            let h = &rt.backends[i].health[j];
            // Operational state: 0 stopped, 2 running.
            let op = if h.up.load(Relaxed) { 2 } else { 0 };
            let mut admin = 0u8;
            if h.maint.load(Relaxed) {
                admin |= ADMF_FMAINT;
            }
            if h.drain.load(Relaxed) {
                admin |= ADMF_FDRAIN;
            }
            let (mut addr, mut port) = server_addr(&s.target);
            if let Some((ip, p)) = h.addr_override() {
                addr = ip.to_string();
                port = p.or(port);
            }
            let check_port = s.check.as_ref().and_then(|c| c.port).unwrap_or(0);
            let _ = writeln!(
                out,
                "{} {} {} {} {} {op} {admin} {} {} 0 0 0 0 0 0 0 0 - {} - 0 {check_port} - - 0",
                i + 1,
                b.name,
                j + 1,
                s.name,
                addr,
                h.weight.load(Relaxed),
                s.weight,
                port.unwrap_or(0),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights() {
        assert_eq!(weight(10, "50%"), Ok(5));
        assert_eq!(weight(10, "7"), Ok(7));
        assert!(weight(10, "300").is_err());
        assert!(weight(10, "x%").is_err());
    }
}

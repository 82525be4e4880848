//! The `resolvers` section, with HAProxy's keywords.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Hold, Pos, ResolversSection, one, parse_duration, parse_port, split_addr};

pub(super) fn new_section(name: &str, pos: &Pos) -> ResolversSection {
    ResolversSection {
        name: name.to_string(),
        pos: pos.clone(),
        nameservers: Vec::new(),
        parse_resolv_conf: false,
        resolve_retries: 3,
        timeout_resolve: Duration::from_secs(1),
        timeout_retry: Duration::from_secs(1),
        hold: Hold::default(),
        accepted_payload_size: 1232,
    }
}

const KEYWORDS: &str = "nameserver, parse-resolv-conf, resolve_retries, timeout resolve|retry, hold STATUS, accepted_payload_size";

/// Runs one line of a resolvers section; `Ok(Some(w))` is a warning.
pub(super) fn directive(r: &mut ResolversSection, w: &[String]) -> Result<Option<String>, String> {
    let args = &w[1..];
    match w[0].as_str() {
        "nameserver" => {
            let addr = match args {
                [_, a] => a,
                _ => return Err("write 'nameserver NAME ADDR[:PORT]'".into()),
            };
            if addr.starts_with("tcp@") {
                return Err(format!(
                    "'{addr}': TCP-only nameservers are not supported; write the address alone (gatehouse asks over UDP and retries over TCP when an answer is truncated)"
                ));
            }
            let a = addr.strip_prefix("udp@").unwrap_or(addr);
            let (ip, port) = split_addr(a)?;
            if ip.is_unspecified() {
                return Err(format!("'{addr}' is not a nameserver address"));
            }
            let port = match port {
                None | Some("") => 53,
                Some(p) => parse_port(p)?,
            };
            r.nameservers.push(SocketAddr::new(ip, port));
        }
        "parse-resolv-conf" => {
            if !args.is_empty() {
                return Err("'parse-resolv-conf' takes no argument".into());
            }
            r.parse_resolv_conf = true;
        }
        "resolve_retries" => {
            let n: u32 = one(args, "resolve_retries NUMBER")?
                .parse()
                .map_err(|_| "resolve_retries takes a whole number from 1 to 10".to_string())?;
            if !(1..=10).contains(&n) {
                return Err("resolve_retries takes a whole number from 1 to 10".into());
            }
            r.resolve_retries = n;
        }
        "timeout" => match args {
            [k, v] if k == "resolve" => r.timeout_resolve = nonzero(parse_duration(v)?)?,
            [k, v] if k == "retry" => r.timeout_retry = parse_duration(v)?,
            _ => return Err("write 'timeout resolve TIME' or 'timeout retry TIME'".into()),
        },
        "hold" => {
            let (status, v) = match args {
                [s, v] => (s.as_str(), parse_duration(v)?),
                _ => {
                    return Err("write 'hold valid|nx|other|refused|timeout|obsolete TIME'".into());
                }
            };
            let h = &mut r.hold;
            match status {
                "valid" => h.valid = v,
                "nx" => h.nx = v,
                "other" => h.other = v,
                "refused" => h.refused = v,
                "timeout" => h.timeout = v,
                "obsolete" => h.obsolete = v,
                _ => {
                    return Err(format!(
                        "unknown hold status '{status}'; use valid, nx, other, refused, timeout or obsolete"
                    ));
                }
            }
        }
        "accepted_payload_size" => {
            let n: u16 = one(args, "accepted_payload_size BYTES")?
                .parse()
                .ok()
                .filter(|n| (512..=65535).contains(n))
                .ok_or("accepted_payload_size takes a number of bytes from 512 to 65535")?;
            r.accepted_payload_size = n;
        }
        "resolution_pool_size" => {
            return Ok(Some(
                "'resolution_pool_size' is ignored: gatehouse sizes its resolver itself (HAProxy ignores it too since 1.8)".into(),
            ));
        }
        other => {
            return Err(format!(
                "unknown keyword '{other}' in resolvers section; it takes {KEYWORDS}"
            ));
        }
    }
    Ok(None)
}

fn nonzero(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err("the timeout must be more than 0".into())
    } else {
        Ok(d)
    }
}

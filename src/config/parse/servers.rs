//! `server` and `default-server` options. `default-server` sets options for the servers that follow it
//! in the section (and, from a defaults section, in every backend after it); a server's own options
//! override them, as in HAProxy.

use std::net::IpAddr;
use std::time::Duration;

use super::{
    Family, InitAddr, SERVER_DNS, SERVER_LATER_TLS, Source, edit_distance, parse_duration,
    parse_port, source_of,
};
use crate::config::model::SendProxy;

/// Options written on a `server` or `default-server` line; `None` = not said.
#[derive(Debug, Clone, Default)]
pub struct ServerOpts {
    pub source: Option<Source>,
    pub resolvers: Option<String>,
    pub prefer: Option<Family>,
    pub init_addr: Option<Vec<InitAddr>>,
    pub weight: Option<u32>,
    pub maxconn: Option<u32>,
    pub maxqueue: Option<u32>,
    pub backup: Option<bool>,
    pub disabled: Option<bool>,
    pub check: Option<bool>,
    pub check_port: Option<u16>,
    pub check_addr: Option<IpAddr>,
    pub inter: Option<Duration>,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub slowstart: Option<Duration>,
    pub shutdown_on_down: Option<bool>,
    pub cookie: Option<String>,
    pub tls: crate::tls::ServerTlsOpts,
    /// `send-proxy` / `no-send-proxy`.
    pub send_proxy_v1: Option<bool>,
    /// `send-proxy-v2` / `no-send-proxy-v2`.
    pub send_proxy_v2: Option<bool>,
    /// `proxy-in-tls` (gatehouse): the header goes inside the TLS session, after the handshake.
    pub proxy_in_tls: Option<bool>,
    /// `check-send-proxy`: health checks open with a PROXY header even where the rule would not send one.
    pub check_send_proxy: Option<bool>,
    /// `proxy-v2-options authority`.
    pub pp_authority: Option<bool>,
    /// `proxy-v2-options crc32c`.
    pub pp_crc32c: Option<bool>,
}

/// HAProxy server options gatehouse does not have.
const LATER: &[&str] = &[
    "track",
    "observe",
    "error-limit",
    "on-error",
    "agent-check",
    "agent-port",
    "agent-inter",
    "redir",
    "non-stick",
    "minconn",
    "on-marked-up",
];

/// Options taking a value.
const WITH_VALUE: &[&str] = &[
    "weight",
    "maxconn",
    "maxqueue",
    "port",
    "addr",
    "inter",
    "fastinter",
    "downinter",
    "rise",
    "fall",
    "slowstart",
    "on-marked-down",
    "id",
    "resolvers",
    "resolve-prefer",
    "init-addr",
    "cookie",
    "proxy-v2-options",
];

/// Options without a value.
const FLAGS: &[&str] = &[
    "backup",
    "no-backup",
    "disabled",
    "enabled",
    "check",
    "no-check",
    "send-proxy",
    "no-send-proxy",
    "send-proxy-v2",
    "no-send-proxy-v2",
    "proxy-in-tls",
    "no-proxy-in-tls",
    "check-send-proxy",
];

fn number(opt: &str, v: &str, range: std::ops::RangeInclusive<u32>) -> Result<u32, String> {
    v.parse::<u32>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!(
                "server option '{opt}' takes a whole number from {} to {}, not '{v}'",
                range.start(),
                range.end()
            )
        })
}

/// Reads options into `o`, over whatever it already holds.
pub fn parse(
    words: &[String],
    o: &mut ServerOpts,
    (crt_base, ca_base): (Option<&std::path::Path>, Option<&std::path::Path>),
) -> Result<(), String> {
    let mut rest = words;
    while let Some(opt) = rest.first() {
        let opt = opt.as_str();
        let mut used = 1;
        let mut value = || {
            used = 2;
            rest.get(1)
                .cloned()
                .ok_or_else(|| format!("server option '{opt}' needs a value"))
        };
        if o.tls.take(opt, &mut value, crt_base, ca_base)? {
            rest = &rest[used..];
            continue;
        }
        if opt == "source" {
            // `source` takes words up to the next option.
            let end = rest
                .iter()
                .skip(1)
                .position(|w| {
                    WITH_VALUE.contains(&w.as_str()) || FLAGS.contains(&w.as_str()) || w == "source"
                })
                .map_or(rest.len(), |p| p + 1);
            o.source = Some(source_of(&rest[1..end])?);
            rest = &rest[end..];
            continue;
        }
        if FLAGS.contains(&opt) {
            match opt {
                "backup" => o.backup = Some(true),
                "no-backup" => o.backup = Some(false),
                "disabled" => o.disabled = Some(true),
                "enabled" => o.disabled = Some(false),
                "check" => o.check = Some(true),
                "no-check" => o.check = Some(false),
                "proxy-in-tls" => o.proxy_in_tls = Some(true),
                "no-proxy-in-tls" => o.proxy_in_tls = Some(false),
                "send-proxy" => o.send_proxy_v1 = Some(true),
                "no-send-proxy" => o.send_proxy_v1 = Some(false),
                "send-proxy-v2" => o.send_proxy_v2 = Some(true),
                "check-send-proxy" => o.check_send_proxy = Some(true),
                _ => o.send_proxy_v2 = Some(false),
            }
            rest = &rest[1..];
            continue;
        }
        if WITH_VALUE.contains(&opt) {
            let v = rest
                .get(1)
                .ok_or_else(|| format!("server option '{opt}' needs a value"))?
                .as_str();
            match opt {
                "cookie" => {
                    if v.is_empty()
                        || v.bytes()
                            .any(|b| !b.is_ascii_graphic() || b";,|=\"\\".contains(&b))
                    {
                        return Err(format!(
                            "server option 'cookie' takes a plain token (no spaces, ';', ',', '|', '=' or quotes), not '{v}'"
                        ));
                    }
                    o.cookie = Some(v.to_string())
                }
                "weight" => o.weight = Some(number(opt, v, 0..=256)?),
                "maxconn" => o.maxconn = Some(number(opt, v, 0..=1_000_000)?),
                "maxqueue" => o.maxqueue = Some(number(opt, v, 0..=1_000_000)?),
                "port" => o.check_port = Some(parse_port(v)?),
                "addr" => {
                    o.check_addr = Some(v.parse().map_err(|_| {
                        format!("server option 'addr' takes an IP address, not '{v}'")
                    })?)
                }
                "inter" => o.inter = Some(positive(opt, v)?),
                "fastinter" => o.fastinter = Some(positive(opt, v)?),
                "downinter" => o.downinter = Some(positive(opt, v)?),
                "rise" => o.rise = Some(number(opt, v, 1..=1000)?),
                "fall" => o.fall = Some(number(opt, v, 1..=1000)?),
                "slowstart" => o.slowstart = Some(parse_duration(v)?),
                "on-marked-down" => match v {
                    "shutdown-sessions" => o.shutdown_on_down = Some(true),
                    _ => {
                        return Err(format!(
                            "'on-marked-down {v}' is not supported; gatehouse takes 'on-marked-down shutdown-sessions'"
                        ));
                    }
                },
                // Numeric ids matter for the stats socket (issue #5); accepted and unused until then.
                "id" => {
                    number(opt, v, 1..=i32::MAX as u32)?;
                }
                "resolvers" => o.resolvers = Some(v.to_string()),
                "proxy-v2-options" => proxy_v2_options(v, o)?,
                "resolve-prefer" => {
                    o.prefer = Some(match v {
                        "ipv4" => Family::V4,
                        "ipv6" => Family::V6,
                        _ => {
                            return Err(format!(
                                "unknown family '{v}'; write 'resolve-prefer ipv4' or 'resolve-prefer ipv6'"
                            ));
                        }
                    })
                }
                _ => {
                    let mut list = Vec::new();
                    for m in v.split(',') {
                        list.push(match m {
                            "last" => InitAddr::Last,
                            "libc" => InitAddr::Libc,
                            "none" => InitAddr::None,
                            ip => InitAddr::Ip(ip.parse().map_err(|_| {
                                format!(
                                    "'{ip}' is not an init-addr method; use last, libc, none or an IP address"
                                )
                            })?),
                        });
                    }
                    o.init_addr = Some(list);
                }
            }
            rest = &rest[2..];
            continue;
        }
        return Err(match opt {
            "resolve-net" | "resolve-opts" => format!(
                "server option '{opt}' is not supported; gatehouse uses every address the name has, tried with happy eyeballs"
            ),
            o if SERVER_LATER_TLS.contains(&o) => format!(
                "server option '{o}' is not supported; gatehouse's TLS options are ssl, no-ssl, verify, ca-file, sni, crt, alpn, verifyhost, check-ssl, no-check-ssl, check-sni"
            ),
            o if LATER.contains(&o) => format!("server option '{o}' is not supported; remove it"),
            o => {
                let best = WITH_VALUE
                    .iter()
                    .chain(FLAGS)
                    .chain(LATER)
                    .chain(SERVER_LATER_TLS)
                    .chain(SERVER_DNS)
                    .map(|k| (edit_distance(o, k), *k))
                    .min()
                    .filter(|(d, _)| *d <= 2);
                match best {
                    Some((_, k)) => format!("unknown server option '{o}'; did you mean '{k}'?"),
                    None => format!("unknown server option '{o}'"),
                }
            }
        });
    }
    Ok(())
}

fn positive(opt: &str, v: &str) -> Result<Duration, String> {
    let d = parse_duration(v)?;
    if d.is_zero() {
        return Err(format!("server option '{opt}' must be more than 0"));
    }
    Ok(d)
}

/// The `proxy-v2-options` gatehouse sends; HAProxy's others need TLS termination.
const PROXY_V2_OPTIONS: &str = "authority, crc32c";

/// `proxy-v2-options LIST`: adds to what the v2 header carries (as in HAProxy, the options add up
/// over `default-server` and the server line, and only matter with `send-proxy-v2`).
fn proxy_v2_options(list: &str, o: &mut ServerOpts) -> Result<(), String> {
    for opt in list.split(',') {
        match opt {
            "authority" => o.pp_authority = Some(true),
            "crc32c" => o.pp_crc32c = Some(true),
            "ssl" | "cert-cn" | "ssl-cipher" | "cert-sig" | "cert-key" => {
                return Err(format!(
                    "proxy-v2-options '{opt}' describes a TLS connection gatehouse terminated, and gatehouse terminates none; it sends {PROXY_V2_OPTIONS}"
                ));
            }
            "unique-id" => {
                return Err(format!(
                    "proxy-v2-options 'unique-id' is not supported (gatehouse has no unique-id-format); it sends {PROXY_V2_OPTIONS}"
                ));
            }
            "" => {
                return Err(format!(
                    "proxy-v2-options takes a comma-separated list without empty items, such as '{}'",
                    PROXY_V2_OPTIONS.replace(", ", ",")
                ));
            }
            other => {
                return Err(format!(
                    "unknown proxy-v2-options '{other}'; gatehouse sends {PROXY_V2_OPTIONS}"
                ));
            }
        }
    }
    Ok(())
}

/// The header a server gets: v2 when `send-proxy-v2` is on (it wins over `send-proxy`, as in
/// HAProxy), v1 with `send-proxy`, none otherwise.
pub fn send_proxy(o: &ServerOpts) -> Option<SendProxy> {
    if o.send_proxy_v2 == Some(true) {
        Some(SendProxy {
            v2: true,
            authority: o.pp_authority == Some(true),
            crc32c: o.pp_crc32c == Some(true),
            in_tls: o.proxy_in_tls == Some(true),
        })
    } else if o.send_proxy_v1 == Some(true) {
        Some(SendProxy {
            in_tls: o.proxy_in_tls == Some(true),
            ..SendProxy::default()
        })
    } else {
        None
    }
}

//! The open-proxy guard: a server that dials the name the client asked for must not become a way into
//! the gateway, its network, or anywhere the operator did not mean.
//!
//! Two checks, both on by default for every dynamic destination:
//! - the **name** must be on the backend's allow-list (`allow-name`), and is never `localhost`,
//!   a `.localhost` name or an IP literal;
//! - every **address** is checked just before dialling (so a DNS answer that changes between lookup
//!   and connect, "rebinding", cannot slip past): loopback, link-local (cloud metadata included),
//!   unspecified, multicast, broadcast and the gateway's own addresses are refused; private ranges only
//!   when an `allow-net` covers them.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Which names a dynamic server may dial.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamePolicy {
    exact: HashSet<String>,
    /// `.example.test`: names under it (the name itself is in `exact`).
    suffixes: Vec<String>,
    /// `*`: anything (an explicit open proxy).
    pub any: bool,
}

impl NamePolicy {
    /// Adds a pattern: `example.test`, `.example.test` or `*.example.test` (the name and everything
    /// under it), or `*`.
    pub fn add(&mut self, pattern: &str) -> Result<(), String> {
        let p = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
        if p == "*" {
            self.any = true;
            return Ok(());
        }
        let base = p
            .strip_prefix("*.")
            .or_else(|| p.strip_prefix('.'))
            .map(str::to_string);
        let name = base.as_deref().unwrap_or(&p);
        if name.is_empty()
            || name.contains('*')
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(format!(
                "'{pattern}' is not a name pattern; write example.test, .example.test (and all names under it) or *"
            ));
        }
        if let Some(b) = base {
            self.suffixes.push(format!(".{b}"));
            self.exact.insert(b);
        } else {
            self.exact.insert(p);
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        !self.any && self.exact.is_empty() && self.suffixes.is_empty()
    }

    /// Whether `name` (lower-case, no trailing dot) may be dialled.
    pub fn allows(&self, name: &str) -> bool {
        self.any || self.exact.contains(name) || self.suffixes.iter().any(|s| name.ends_with(s))
    }
}

/// Why a name is refused whatever the allow-list says.
pub fn bad_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty name");
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return Some("localhost names are never dialled");
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return Some("an IP address is not a name");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Some("not a DNS name");
    }
    None
}

/// Why an address is refused for a dynamic destination, given the operator's `allow-net` list and
/// whether it is one of the gateway's own (`is_own`, asked only when the cheaper checks pass).
pub fn bad_address(
    ip: IpAddr,
    allow: &[IpNet],
    is_own: impl Fn(IpAddr) -> bool,
) -> Option<&'static str> {
    let ip = embedded_v4(ip);
    let always = match ip {
        IpAddr::V4(a) => v4_always(a),
        IpAddr::V6(a) => v6_always(a),
    };
    if always.is_some() {
        return always;
    }
    if is_own(ip) {
        return Some("one of the gateway's own addresses");
    }
    let private = match ip {
        IpAddr::V4(a) => a.is_private() || cgnat().contains(&a),
        IpAddr::V6(a) => (a.segments()[0] & 0xfe00) == 0xfc00,
    };
    if private && !allow.iter().any(|n| n.contains(&ip)) {
        return Some("a private address (allow it with 'allow-net')");
    }
    None
}

/// The IPv4 address an IPv6 address stands for, if it is one of the forms that reach IPv4 hosts:
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4
/// (`2002:aabb:ccdd::`); otherwise the address itself.
fn embedded_v4(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    let s = v6.segments();
    let low = |a: u16, b: u16| {
        IpAddr::V4(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        ))
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        IpAddr::V4(v4)
    } else if (s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified())
        || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        low(s[6], s[7])
    } else if s[0] == 0x2002 {
        low(s[1], s[2])
    } else {
        ip
    }
}

fn cgnat() -> ipnet::Ipv4Net {
    ipnet::Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 10).expect("valid prefix")
}

fn v4_always(a: Ipv4Addr) -> Option<&'static str> {
    if a.is_loopback() {
        Some("loopback")
    } else if a.is_link_local() {
        Some("link-local (cloud metadata lives here)")
    } else if a.is_unspecified() || a.octets()[0] == 0 {
        Some("unspecified")
    } else if a.is_multicast() {
        Some("multicast")
    } else if a.is_broadcast() || a.octets()[0] >= 240 {
        Some("broadcast or reserved")
    } else {
        None
    }
}

fn v6_always(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    if a.is_loopback() {
        Some("loopback")
    } else if a.is_unspecified() {
        Some("unspecified")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if a.is_multicast() {
        Some("multicast")
    } else if a == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some("cloud metadata")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let mut p = NamePolicy::default();
        assert!(p.is_empty());
        for pat in [".example.test", "*.other.test", "one.test"] {
            p.add(pat).unwrap();
        }
        for (n, want) in [
            ("example.test", true),
            ("www.example.test", true),
            ("a.b.other.test", true),
            ("one.test", true),
            ("www.one.test", false),
            ("notexample.test", false),
            ("example.test.evil", false),
        ] {
            assert_eq!(p.allows(n), want, "{n}");
        }
        for bad in ["", "a b", "*x.test", "ex*ample.test"] {
            assert!(NamePolicy::default().add(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            bad_name("localhost"),
            Some("localhost names are never dialled")
        );
        assert!(bad_name("x.localhost").is_some());
        assert!(bad_name("127.0.0.1").is_some());
        assert!(bad_name("[::1]").is_some());
        assert!(bad_name("evil\0.test").is_some());
        assert_eq!(bad_name("www.example.test"), None);
    }

    #[test]
    fn addresses() {
        let allow: Vec<IpNet> = vec!["10.20.0.0/16".parse().unwrap()];
        let own = |ip: IpAddr| ip == "10.20.1.1".parse::<IpAddr>().unwrap();
        let check = |s: &str| bad_address(s.parse().unwrap(), &allow, own);
        for refused in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.20.1.1",
            "2002:7f00:1::",
            "169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "10.20.1.1",
            "10.9.0.1",
            "192.168.1.1",
            "172.16.0.1",
            "100.64.0.1",
            "fd12::1",
        ] {
            assert!(check(refused).is_some(), "{refused} should be refused");
        }
        for allowed in [
            "10.20.2.2",
            "192.0.2.10",
            "2001:db8::10",
            "::ffff:192.0.2.1",
        ] {
            assert_eq!(check(allowed), None, "{allowed}");
        }
    }
}

//! The four addresses of a transparent connection, kept apart by type so that "the client's address"
//! is never used as "where to connect".
//!
//! All of them are canonical: an IPv4 peer seen on a dual-stack `[::]` socket as `::ffff:a.b.c.d` is
//! stored as plain IPv4, so that logs, routing and the outbound socket family agree.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Turns `::ffff:a.b.c.d` into `a.b.c.d`.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        SocketAddr::V4(_) => a,
    }
}

macro_rules! addr_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(SocketAddr);

        impl $name {
            pub fn new(a: SocketAddr) -> Self {
                $name(canonical(a))
            }
            pub fn get(self) -> SocketAddr {
                self.0
            }
            pub fn ip(self) -> IpAddr {
                self.0.ip()
            }
            pub fn port(self) -> u16 {
                self.0.port()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

addr_newtype!(
    /// Who called: the accepted socket's peer.
    ClientAddr
);
addr_newtype!(
    /// Where the client meant to go: the accepted socket's local address under TPROXY, or the
    /// gateway's own address for a plain bind.
    OrigDstAddr
);
addr_newtype!(
    /// Where gatehouse connects.
    ServerAddr
);
addr_newtype!(
    /// A listener's bound address.
    ListenAddr
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_become_ipv4() {
        let a: SocketAddr = "[::ffff:192.0.2.7]:443".parse().unwrap();
        assert_eq!(ClientAddr::new(a).to_string(), "192.0.2.7:443");
        let b: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        assert_eq!(OrigDstAddr::new(b).get(), b);
    }
}

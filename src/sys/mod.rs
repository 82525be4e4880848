//! The one room where the crate talks to the kernel below the level of std and tokio: transparent
//! socket options, marks, and splice(2) through pipes.
//!
//! Everything here goes through nix and socket2's safe wrappers today, so the room holds no `unsafe`
//! yet; it is still the only module allowed to (`#![deny(unsafe_code)]` is set for the crate in
//! Cargo.toml's lints), for the socket options neither crate wraps (TCP_FASTOPEN on listeners).

pub mod pipe;

use std::io;
use std::net::SocketAddr;

use socket2::SockRef;

/// IP_TRANSPARENT (and IPV6_TRANSPARENT on IPv6 sockets): accept or bind addresses that are not ours.
pub fn set_transparent(sock: SockRef<'_>, v6: bool) -> io::Result<()> {
    if v6 {
        sock.set_ip_transparent_v6(true)?;
        // A dual-stack socket also carries IPv4; the IPv4 option is accepted on it and needed for
        // IPv4-mapped traffic.
        let _ = sock.set_ip_transparent_v4(true);
        Ok(())
    } else {
        sock.set_ip_transparent_v4(true)
    }
}

/// IP_BIND_ADDRESS_NO_PORT: bind an address now, pick the port at connect time, so that many outbound
/// connections from one spoofed client IP share ports by 4-tuple instead of exhausting them.
pub fn set_bind_address_no_port(sock: &impl std::os::fd::AsFd) -> io::Result<()> {
    nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::IpBindAddressNoPort, &true)
        .map_err(io::Error::from)
}

/// Whether `ip` is one of this host's addresses: binding to it without IP_TRANSPARENT only works then.
pub fn is_local_address(ip: std::net::IpAddr) -> bool {
    let domain = if ip.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let Ok(s) = socket2::Socket::new(domain, socket2::Type::STREAM, None) else {
        return false;
    };
    s.bind(&SocketAddr::new(ip, 0).into()).is_ok()
}

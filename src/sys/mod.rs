//! The one room where the crate talks to the kernel below the level of std and tokio: transparent
//! socket options, marks, splice(2) through pipes, and dropping root ([`privs`]).
//!
//! Almost everything here goes through nix, socket2 and caps's safe wrappers. Three calls are
//! `unsafe`: [`watch_in_reactor`] registers a file descriptor of our own (the idle shelf's epoll
//! set) in tokio's reactor, which tokio leaves to the caller to prove stays open; [`trim_heap`]
//! and [`single_heap`] call glibc's `malloc_trim` and `mallopt`, which no safe crate wraps. This is the only module allowed `unsafe`
//! (`#![deny(unsafe_code)]` is set for the crate in Cargo.toml's lints).

pub mod pipe;
pub mod privs;

use std::io;

use socket2::SockRef;

/// A value that owns the file descriptor it shows: the descriptor is open for as long as the value
/// lives (an `OwnedFd` inside it, never closed through another path).
pub trait OwnsFd: std::os::fd::AsRawFd {}

/// Registers `inner`'s descriptor in the current runtime's reactor for readiness `interest`.
pub fn watch_in_reactor<T: OwnsFd>(
    inner: T,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: tokio needs the descriptor to stay open while registered; `OwnsFd` says `inner`
    // owns it, and the returned `AsyncFd` owns `inner`, so the descriptor outlives the
    // registration.
    #[allow(unsafe_code)]
    let registered = unsafe { tokio::io::unix::AsyncFd::register_with_interest(inner, interest) };
    registered.map_err(io::Error::from)
}

/// Asks the C allocator to give free memory back to the system: whole free pages anywhere in its
/// heaps, not only at their tops (glibc's `malloc_trim`). Rust's global allocator is the system
/// one, so the memory of freed tasks and buffers is there. Costs a walk of the free lists: call it
/// rarely (after many sessions parked, at most once a second).
pub fn trim_heap() {
    // SAFETY: malloc_trim takes no pointers and only touches the allocator's own state, under
    // its own locks; any thread may call it at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes every thread allocate from one glibc heap (arena) instead of one per thread. gatehouse's
/// worker threads allocate little per request (glibc's per-thread cache takes most of it without
/// the heap's lock), and with one heap the memory that parked sessions' tasks leave goes back to
/// the system far better (on loopback with 2000 idle connections: 0.41–0.54 KiB each against
/// 0.75–0.78 with a heap per thread, whose trims leave pages that a few live allocations pin).
/// Call before any thread starts.
pub fn single_heap() {
    // SAFETY: mallopt only sets a parameter of the allocator, under its own lock; called from
    // main before other threads exist.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

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

/// Whether `ip` is one of this host's addresses (or loopback): the interface addresses, read with
/// getifaddrs and kept for a second. (Asking whether `bind()` works would answer yes for every address
/// on hosts with `net.ipv4.ip_nonlocal_bind=1`, common with keepalived.)
pub fn is_local_address(ip: std::net::IpAddr) -> bool {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    type Cache = Option<(Instant, Arc<Vec<std::net::IpAddr>>)>;
    static CACHE: Mutex<Cache> = Mutex::new(None);
    if ip.is_loopback() {
        return true;
    }
    let ip = match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    };
    let addrs = {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        match &*cache {
            Some((at, list)) if at.elapsed() < Duration::from_secs(1) => list.clone(),
            _ => {
                let list = Arc::new(interface_addresses());
                *cache = Some((Instant::now(), list.clone()));
                list
            }
        }
    };
    addrs.contains(&ip)
}

fn interface_addresses() -> Vec<std::net::IpAddr> {
    let Ok(ifs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    ifs.filter_map(|i| i.address)
        .filter_map(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(std::net::IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_addresses() {
        assert!(super::is_local_address("127.0.0.1".parse().unwrap()));
        assert!(super::is_local_address("127.3.2.1".parse().unwrap()));
        assert!(super::is_local_address("::1".parse().unwrap()));
        assert!(!super::is_local_address("192.0.2.77".parse().unwrap()));
    }
}

//! gatehouse: a Linux transparent gateway and SNI proxy, configured in HAProxy's language.
//!
//! # Layout
//!
//! A connection meets the modules in this order:
//!
//! 1. [`listener`] — **accept**: transparent binds, accept loops, `maxconn`.
//! 2. [`session`] — one connection's life: runs the stages below, ends with a termination code.
//!    With `accept-proxy`, [`proxy_protocol`] first reads the PROXY header that says who the client
//!    is; with `send-proxy[-v2]` it writes one on each server connection. On a `bind … ssl` line
//!    the [`tls`] handshake comes next (certificate by SNI, client certificates).
//! 3. [`classify`] — **classify**: the TLS SNI or HTTP Host, read without answering (peek → replay).
//! 4. [`route`] — **route**: `tcp-request` rules and `use_backend` over [`rules`] (ACLs, samples, maps).
//! 5. [`balance`] — **balance**: which server of the backend.
//! 6. [`target`] — **resolve**: the server's addresses: fixed, original destination, or a name
//!    through [`resolve`] (DNS with a TTL-honouring cache), checked by the open-proxy [`guard`].
//! 7. [`connect`] — **connect**: the outbound socket, `source … usesrc`, SO_MARK, `timeout connect`,
//!    happy eyeballs across addresses.
//! 8. [`forward`] — **forward**: splice both ways (a copying relay when [`tls`] is on a side),
//!    half-close, idle timeouts.
//! 9. [`account`] and [`log`] — **account**: counters and the tcplog line.
//!
//! Around them: [`checks`] (health checks, on the control thread), [`config`] (lexer → parse →
//! validate → model), [`plumbing`] (the nft/iptables rules and policy routing installed as one
//! unit), [`server`] (start, reload, stop), [`cli`] (the runtime API on `stats socket`), [`sessions`]
//! (the live sessions, for `show sess`), [`doctor`]
//! (`gatehouse doctor`: what on the host stands in the way), [`addr`] (the four address types) and
//! [`sys`] (the one module that may hold `unsafe`).

pub mod account;
pub mod addr;
pub mod balance;
pub mod checks;
pub mod classify;
pub mod cli;
pub mod config;
pub mod connect;
pub mod doctor;
pub mod forward;
pub mod guard;
pub mod l7;
pub mod listener;
pub mod log;
pub mod plumbing;
pub mod proxy_protocol;
pub mod resolve;
pub mod route;
pub mod rules;
pub mod server;
pub mod session;
pub mod sessions;
pub mod stick;
pub mod sys;
pub mod target;
pub mod tls;

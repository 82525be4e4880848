//! gatehouse: a Linux transparent gateway and SNI proxy, configured in HAProxy's language.
//!
//! # Layout
//!
//! A connection meets the modules in this order:
//!
//! 1. [`listener`] — **accept**: transparent binds, accept loops, `maxconn`.
//! 2. [`session`] — one connection's life: runs the stages below, ends with a termination code.
//! 3. classify — reading the TLS SNI or HTTP Host (arrives with issue #3).
//! 4. [`route`] — **route**: which backend.
//! 5. resolve — DNS for dynamic upstreams (arrives with issue #3).
//! 6. [`balance`] — **balance**: which server of the backend.
//! 7. [`connect`] — **connect**: the outbound socket, `source … usesrc`, SO_MARK, `timeout connect`.
//! 8. [`forward`] — **forward**: splice both ways, half-close, idle timeouts.
//! 9. [`account`] and [`log`] — **account**: counters and the tcplog line.
//!
//! Around them: [`config`] (lexer → parse → validate → model), [`plumbing`] (the nft/iptables rules and
//! policy routing installed as one unit), [`server`] (start, run, stop), [`addr`] (the four address
//! types) and [`sys`] (the one module that may hold `unsafe`).

pub mod account;
pub mod addr;
pub mod balance;
pub mod config;
pub mod connect;
pub mod forward;
pub mod listener;
pub mod log;
pub mod plumbing;
pub mod route;
pub mod server;
pub mod session;
pub mod sys;

//! `mode http`: the per-request loop ([`stream`]) and what it is made of: message framing, head
//! edits, response heads, persistence cookies, the responses gatehouse writes itself, and the
//! stats URI.

pub mod cookie;
pub mod framing;
pub mod message;
pub mod reply;
pub mod rewrite;
pub mod stats;
pub mod stream;

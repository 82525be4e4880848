//! L7 groundwork for `mode http` (issue #4, not wired yet: `mode http` is still refused): message
//! framing and head rewriting, pure functions over bytes, tested on their own.

pub mod framing;
pub mod rewrite;

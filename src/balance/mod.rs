//! Balance: picks a server of the chosen backend. One algorithm per file; today only round robin,
//! the others arrive with the backends issue behind one trait whose iterator yields the fallback order.

mod roundrobin;

use crate::account::BackendState;
use crate::config::model::Backend;

/// The server index for the next session, or `None` for a backend with no server.
pub fn pick(state: &BackendState, backend: &Backend) -> Option<usize> {
    roundrobin::pick(state, backend.servers.len())
}

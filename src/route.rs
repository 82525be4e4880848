//! Route: the frontend's rules decide a session's fate and its backend, as HAProxy's do.
//!
//! `tcp-request connection|content` rules run in order and the first whose condition holds decides
//! (accept or reject; none matching accepts). `use_backend` rules run in order and the first whose
//! condition holds names the backend; a name computed per connection that names no backend (or has no
//! value) sends the session to `default_backend`, as in HAProxy.

use crate::config::Config;
use crate::config::model::{BackendChoice, Frontend, Rule};
use crate::rules::Acl;
use crate::rules::sample::Facts;

/// The decision of the first rule whose condition holds: `Some(true)` accept, `Some(false)` reject.
pub fn first_rule(rules: &[Rule], acls: &[Acl], f: &Facts<'_>) -> Option<bool> {
    rules
        .iter()
        .find(|r| r.cond.as_ref().is_none_or(|c| c.eval(acls, f)))
        .map(|r| r.accept)
}

/// The backend index for a session of `fe`, or `None` when the frontend has nowhere to send it.
pub fn select_backend(cfg: &Config, fe: &Frontend, f: &Facts<'_>) -> Option<usize> {
    for u in &fe.use_backends {
        if !u.cond.as_ref().is_none_or(|c| c.eval(&fe.acls, f)) {
            continue;
        }
        return match &u.target {
            BackendChoice::Static(i) => Some(*i),
            BackendChoice::Dynamic(t) => t
                .render(f)
                .and_then(|name| cfg.backend_names.get(&name).copied())
                .or(fe.default_backend),
        };
    }
    fe.default_backend
}

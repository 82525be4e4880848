//! Route: the frontend's rules decide a session's fate and its backend, as HAProxy's do.
//!
//! `tcp-request connection|session|content` rules run in order and the first whose condition holds
//! decides (accept or reject; none matching accepts). `use_backend` rules run in order and the first
//! whose condition holds names the backend; a name computed per connection that names no backend (or
//! has no value) sends the session to `default_backend`, as in HAProxy.

use crate::config::Config;
use crate::config::model::{BackendChoice, Frontend, Rule, RuleAction};
use crate::rules::Acl;
use crate::rules::sample::Facts;
use crate::stick::Key;

/// Runs `tcp-request` rules in order: `track-sc*` and `sc-inc-gpc0` act and go on; the first accept or
/// reject whose condition holds decides (`Some(true)` / `Some(false)`); none: `None` (accepted).
pub fn run_rules(rules: &[Rule], acls: &[Acl], f: &Facts<'_>) -> Option<bool> {
    for r in rules {
        if !r.cond.as_ref().is_none_or(|c| c.eval(acls, f)) {
            continue;
        }
        match &r.action {
            RuleAction::Track { n, key, table } => track(f, *n, key, table.1),
            RuleAction::IncGpc0(n) => {
                if let Some(ctx) = f.stick {
                    let tracked = ctx.tracked.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((t, k)) = &tracked[*n] {
                        ctx.tables[*t].inc_gpc0(k);
                    }
                }
            }
            a => return a.verdict(),
        }
    }
    None
}

/// `track-scN KEY`: the first rule to track counter N wins (HAProxy's rule), later ones are skipped.
fn track(f: &Facts<'_>, n: usize, key: &crate::rules::sample::Template, table: usize) {
    let Some(ctx) = f.stick else { return };
    let mut tracked = ctx.tracked.lock().unwrap_or_else(|e| e.into_inner());
    if tracked[n].is_some() {
        return;
    }
    let t = &ctx.tables[table];
    let Some(k) = key
        .render(f)
        .and_then(|text| Key::of(t.def.key_type, &text))
    else {
        return;
    };
    if t.track(&k) {
        tracked[n] = Some((table, k));
    }
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

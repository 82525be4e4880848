//! Route: chooses the backend for a session. Today that is the frontend's `default_backend` (a listen
//! section is its own); content rules (`use_backend … if …`) join here with the classify issue.

use crate::config::model::Frontend;

/// The backend index for a session of `fe`, or `None` when the frontend has nowhere to send it.
pub fn select_backend(fe: &Frontend) -> Option<usize> {
    fe.default_backend
}

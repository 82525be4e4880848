//! `balance roundrobin` with equal weights: each server in turn.

use std::sync::atomic::Ordering::Relaxed;

use crate::account::BackendState;

pub fn pick(state: &BackendState, servers: usize) -> Option<usize> {
    if servers == 0 {
        return None;
    }
    Some(state.rr.fetch_add(1, Relaxed) % servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_turns() {
        let st = BackendState::default();
        let got: Vec<_> = (0..5).map(|_| pick(&st, 3).unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 0, 1]);
        assert_eq!(pick(&st, 0), None);
    }
}

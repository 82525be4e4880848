//! `balance roundrobin` (smooth weighted: each server in proportion to its weight, interleaved, and
//! weights may change between picks) and `balance static-rr` (the same proportions from a plain
//! counter over the total weight).

use std::sync::atomic::Ordering::Relaxed;

use super::{Algorithm, Candidate, Ctx};

/// Smooth weighted round robin: every candidate's current weight grows by its weight; the largest
/// wins and gives back the total. Over any window, servers get their share, spread out evenly.
pub struct Smooth;

impl Algorithm for Smooth {
    fn choose(&self, ctx: &Ctx<'_>, cands: &[Candidate]) -> usize {
        let mut cur = ctx.state.swrr.lock().unwrap_or_else(|e| e.into_inner());
        let total: i64 = cands.iter().map(|c| i64::from(c.weight)).sum();
        let mut best = 0;
        for (k, c) in cands.iter().enumerate() {
            cur[c.index] += i64::from(c.weight);
            if cur[c.index] > cur[cands[best].index] {
                best = k;
            }
        }
        cur[cands[best].index] -= total;
        best
    }
}

/// Static weighted round robin: position `n % total weight` in the sequence of servers, each taking
/// as many consecutive slots as its weight.
pub struct Static;

impl Algorithm for Static {
    fn choose(&self, ctx: &Ctx<'_>, cands: &[Candidate]) -> usize {
        let total: u64 = cands.iter().map(|c| u64::from(c.weight)).sum();
        let mut n = ctx.state.rr.fetch_add(1, Relaxed) as u64 % total.max(1);
        for (k, c) in cands.iter().enumerate() {
            if n < u64::from(c.weight) {
                return k;
            }
            n -= u64::from(c.weight);
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn weights_are_honoured_and_interleaved() {
        let rt = runtime(
            "    server a 10.0.0.1:80 weight 5\n    server b 10.0.0.2:80 weight 1\n    server c 10.0.0.3:80 weight 1\n",
        );
        let f = facts();
        let seq: Vec<usize> = (0..7)
            .map(|_| super::super::pick(&rt, 0, &f, &[]).unwrap())
            .collect();
        // a a b a c a a: five a's spread out, never five in a row.
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(spread(&rt, 700, &f), [500, 100, 100]);
        // A weight changed at run time applies from the next picks.
        rt.backends[0].health[1]
            .weight
            .store(5, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(spread(&rt, 1100, &f), [500, 500, 100]);
    }

    #[test]
    fn static_rr() {
        let rt = runtime(
            "    balance static-rr\n    server a 10.0.0.1:80 weight 2\n    server b 10.0.0.2:80\n",
        );
        assert_eq!(spread(&rt, 300, &facts()), [200, 100]);
    }
}

//! `balance leastconn` (the server with the fewest sessions for its weight; ties in turn) and
//! `balance first` (the first server, in configuration order, with a free slot: fills servers one by
//! one, so the others can sleep).

use std::sync::atomic::Ordering::Relaxed;

use super::{Algorithm, Candidate, Ctx};

pub struct LeastConn;

impl Algorithm for LeastConn {
    fn choose(&self, ctx: &Ctx<'_>, cands: &[Candidate]) -> usize {
        // Rotate the starting point so that equal loads take turns.
        let start = ctx.state.rr.fetch_add(1, Relaxed) % cands.len();
        let mut best = start;
        for k in (0..cands.len()).map(|j| (start + j) % cands.len()) {
            let (c, b) = (&cands[k], &cands[best]);
            // load / weight, compared without division.
            if u128::from(c.load) * u128::from(b.weight) < u128::from(b.load) * u128::from(c.weight)
            {
                best = k;
            }
        }
        best
    }
}

/// Candidates are in configuration order and full servers are already left out.
pub struct First;

impl Algorithm for First {
    fn choose(&self, _: &Ctx<'_>, _: &[Candidate]) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::super::testing::*;

    #[test]
    fn least_loaded_for_its_weight() {
        let rt = runtime(
            "    balance leastconn\n    server a 10.0.0.1:80 weight 2\n    server b 10.0.0.2:80\n    server c 10.0.0.3:80\n",
        );
        let s = &rt.backends[0].servers;
        s[0].cur.store(3, Relaxed);
        s[1].cur.store(2, Relaxed);
        s[2].cur.store(1, Relaxed);
        // 3/2 = 1.5, 2/1, 1/1: c.
        assert_eq!(super::super::pick(&rt, 0, &facts(), &[]), Ok(2));
        s[2].cur.store(5, Relaxed);
        assert_eq!(super::super::pick(&rt, 0, &facts(), &[]), Ok(0));
        // Equal loads take turns.
        for c in s {
            c.cur.store(0, Relaxed);
        }
        rt.backends[0].health[0].weight.store(1, Relaxed);
        assert_eq!(spread(&rt, 30, &facts()), [10, 10, 10]);
    }

    #[test]
    fn first_fills_in_order() {
        let rt = runtime(
            "    balance first\n    server a 10.0.0.1:80 maxconn 2\n    server b 10.0.0.2:80 maxconn 2\n",
        );
        assert_eq!(super::super::pick(&rt, 0, &facts(), &[]), Ok(0));
        rt.backends[0].servers[0].cur.store(2, Relaxed);
        assert_eq!(super::super::pick(&rt, 0, &facts(), &[]), Ok(1));
    }
}

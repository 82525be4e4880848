//! `balance random[(N)]`: N weighted random draws, the least loaded of them wins ("power of N
//! choices"; HAProxy's default N is 2). `random(1)` is plain weighted random.

use std::cell::Cell;

use super::{Algorithm, Candidate, Ctx};

pub struct Random(pub u32);

thread_local! {
    /// xorshift state per thread: fast, and good enough to spread load.
    static SEED: Cell<u64> = Cell::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
            | 1,
    );
}

fn next() -> u64 {
    SEED.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

/// A weighted random candidate.
fn draw(cands: &[Candidate]) -> usize {
    let total: u64 = cands.iter().map(|c| u64::from(c.weight)).sum();
    let mut n = next() % total.max(1);
    for (k, c) in cands.iter().enumerate() {
        if n < u64::from(c.weight) {
            return k;
        }
        n -= u64::from(c.weight);
    }
    0
}

impl Algorithm for Random {
    fn choose(&self, _: &Ctx<'_>, cands: &[Candidate]) -> usize {
        let mut best = draw(cands);
        for _ in 1..self.0 {
            let k = draw(cands);
            if cands[k].load < cands[best].load {
                best = k;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn weighted_within_tolerance() {
        let rt = runtime(
            "    balance random(1)\n    server a 10.0.0.1:80 weight 3\n    server b 10.0.0.2:80\n",
        );
        let c = spread(&rt, 4000, &facts());
        assert!((2800..3200).contains(&c[0]), "{c:?}");
    }
}

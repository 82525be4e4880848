//! A latency histogram in microseconds: exact below 1024 µs, then 512 buckets per power of two
//! (a bucket is at most 0.2 % wide), so percentiles stay accurate at any rate and run length without
//! keeping every sample.

use std::time::Duration;

/// Values below this are counted exactly, one bucket per microsecond.
const LINEAR: u64 = 1024;
/// Sub-buckets per power of two above `LINEAR` (2^SUB_BITS).
const SUB_BITS: u32 = 9;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two above LINEAR that have buckets: up to 2^40 µs (12 days), far above any timeout.
const OCTAVES: u64 = 30;
const BUCKETS: usize = (LINEAR + OCTAVES * SUB) as usize;
const MAX_VALUE: u64 = (1 << (10 + OCTAVES)) - 1;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    /// The largest value recorded, exactly (the buckets round it).
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            n: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    let v = v.min(MAX_VALUE);
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - u64::from(v.leading_zeros()); // v is in [2^e, 2^(e+1)), e >= 10
    let shift = e - u64::from(SUB_BITS);
    let sub = (v >> shift) - SUB;
    (LINEAR + (e - 10) * SUB + sub) as usize
}

/// The largest value that falls in bucket `i` (percentiles report the top of a bucket: never
/// better than what was measured).
fn top(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let e = (i - LINEAR) / SUB + 10;
    let sub = (i - LINEAR) % SUB;
    let shift = e - u64::from(SUB_BITS);
    ((SUB + sub + 1) << shift) - 1
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn record_us(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.n += 1;
        self.max = self.max.max(v);
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The p-th percentile (0 < p <= 100): the smallest recorded value (to its bucket's top) such
    /// that at least p % of the samples are at or below it. 0 when nothing was recorded.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        // p * n / 100 is often meant to be a whole number (99.9 % of 1000): a hair of slack keeps
        // floating-point error from rounding it up to the next sample.
        let rank = ((p * self.n as f64 / 100.0 - 1e-9).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return top(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_below_1024() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record_us(v);
        }
        assert_eq!(h.n, 1000);
        assert_eq!(h.percentile(50.0), 500);
        assert_eq!(h.percentile(90.0), 900);
        assert_eq!(h.percentile(99.0), 990);
        assert_eq!(h.percentile(99.9), 999);
        assert_eq!(h.percentile(100.0), 1000);
        assert_eq!(h.max(), 1000);
    }

    #[test]
    fn rank_rounds_up() {
        // Two samples: the median is the first (at least 50 % at or below it), p51 the second.
        let mut h = Histogram::default();
        h.record_us(10);
        h.record_us(20);
        assert_eq!(h.percentile(50.0), 10);
        assert_eq!(h.percentile(51.0), 20);
        // One outlier in a thousand shows at p99.9 and not at p99.
        let mut h = Histogram::default();
        for _ in 0..999 {
            h.record_us(100);
        }
        h.record_us(5000);
        assert_eq!(h.percentile(99.0), 100);
        assert_eq!(h.percentile(99.9), 100);
        assert!(h.percentile(99.95) >= 5000);
        assert_eq!(h.max(), 5000);
    }

    #[test]
    fn empty_is_zero() {
        let h = Histogram::default();
        assert_eq!(h.percentile(99.0), 0);
        assert_eq!(h.max(), 0);
    }

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        // Every value lands in a bucket whose top is at or above it and within 0.2 % of it.
        let mut prev = 0;
        for v in (0..5_000_000u64)
            .step_by(7)
            .chain([MAX_VALUE - 1, MAX_VALUE])
        {
            let i = index(v);
            assert!(i >= prev, "index goes backwards at {v}");
            prev = i;
            let t = top(i);
            assert!(t >= v, "top {t} below {v}");
            assert!(
                (t - v) as f64 <= v as f64 * 0.002 + 1.0,
                "bucket of {v} too wide: {t}"
            );
            if i > 0 {
                assert!(top(i - 1) < v, "{v} also fits the bucket before");
            }
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(index(MAX_VALUE), BUCKETS - 1);
    }

    #[test]
    fn large_values_report_within_a_bucket() {
        let mut h = Histogram::default();
        h.record(Duration::from_millis(250));
        let p = h.percentile(50.0);
        assert!((250_000..=250_500).contains(&p), "{p}");
        // The exact max caps the bucket's top.
        assert_eq!(p, 250_000);
    }
}

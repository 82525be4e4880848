//! The open-loop timetable: request `i` is due at `start + i / rate`, computed from `i` each time
//! (never by adding intervals), so rounding does not drift over a long run and a late client
//! catches up instead of shifting the whole schedule.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Timetable {
    start: Instant,
    /// Requests per second, > 0.
    rate: u64,
}

impl Timetable {
    pub fn new(start: Instant, rate: u64) -> Self {
        Self {
            start,
            rate: rate.max(1),
        }
    }

    /// Offset of request `i` from the start.
    pub fn offset(&self, i: u64) -> Duration {
        let ns = u128::from(i) * 1_000_000_000 / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// When request `i` is due.
    pub fn due(&self, i: u64) -> Instant {
        self.start + self.offset(i)
    }

    /// How many requests fall in the first `d` (those due at offsets in `[0, d)`).
    pub fn count_within(&self, d: Duration) -> u64 {
        // The smallest i with i / rate >= d, i.e. ceil(d * rate).
        let n = (d.as_nanos() * u128::from(self.rate)).div_ceil(1_000_000_000);
        u64::try_from(n).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_spacing() {
        let t0 = Instant::now();
        let t = Timetable::new(t0, 20_000);
        assert_eq!(t.due(0), t0);
        assert_eq!(t.offset(1), Duration::from_micros(50));
        assert_eq!(t.offset(20_000), Duration::from_secs(1));
        assert_eq!(t.count_within(Duration::from_secs(5)), 100_000);
    }

    #[test]
    fn no_drift_with_uneven_intervals() {
        // 3 per second: 333.33 ms apart; after a million requests the offset is still exact.
        let t = Timetable::new(Instant::now(), 3);
        assert_eq!(t.offset(3), Duration::from_secs(1));
        assert_eq!(t.offset(3_000_000), Duration::from_secs(1_000_000));
        assert_eq!(t.offset(1), Duration::from_nanos(333_333_333));
        assert_eq!(t.offset(2), Duration::from_nanos(666_666_666));
    }

    #[test]
    fn count_within_matches_offsets() {
        for rate in [1, 3, 7, 1000, 20_000, 33_333] {
            let t = Timetable::new(Instant::now(), rate);
            for d in [
                Duration::ZERO,
                Duration::from_millis(1),
                Duration::from_millis(333),
                Duration::from_secs(1),
                Duration::from_millis(5_500),
            ] {
                let n = t.count_within(d);
                // Every request counted is due before d; the next one is not.
                if n > 0 {
                    assert!(t.offset(n - 1) < d, "rate {rate}, {d:?}: {n}");
                }
                assert!(t.offset(n) >= d, "rate {rate}, {d:?}: {n}");
            }
        }
    }

    #[test]
    fn monotonic() {
        let t = Timetable::new(Instant::now(), 33_333);
        let mut prev = t.due(0);
        for i in 1..100_000 {
            let d = t.due(i);
            assert!(d > prev);
            prev = d;
        }
    }

    #[test]
    fn zero_rate_is_one() {
        let t = Timetable::new(Instant::now(), 0);
        assert_eq!(t.offset(1), Duration::from_secs(1));
    }
}

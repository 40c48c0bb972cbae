//! Units finished in the last minute, for `wasmhive worker status`: one counter per second
//! of the minute, so the count takes the same memory at ten units a minute and at 60,000
//! a second (a completion time per unit took 16 bytes each, 58 MB at 60,000 units/s).
//!
//! Invariant: a unit counts while fewer than 60 whole seconds (of the worker's uptime)
//! separate the second it finished in from the second asked about.

const SECONDS: usize = 60;

#[derive(Debug)]
pub struct RecentUnits {
    /// Units finished in each second of the minute, by uptime second modulo 60.
    counts: [u64; SECONDS],
    /// The uptime second each counter belongs to.
    seconds: [u64; SECONDS],
}

impl Default for RecentUnits {
    fn default() -> RecentUnits {
        RecentUnits { counts: [0; SECONDS], seconds: [0; SECONDS] }
    }
}

impl RecentUnits {
    /// A unit finished in uptime second `second`.
    pub fn record(&mut self, second: u64) {
        let slot = (second % SECONDS as u64) as usize;
        if self.seconds[slot] != second {
            self.seconds[slot] = second;
            self.counts[slot] = 0;
        }
        self.counts[slot] += 1;
    }

    /// Units finished in the minute up to uptime second `now`.
    pub fn last_minute(&self, now: u64) -> u64 {
        let in_window = |second: u64| second <= now && now - second < SECONDS as u64;
        self.seconds
            .iter()
            .zip(&self.counts)
            .filter(|(second, _)| in_window(**second))
            .map(|(_, count)| count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_count_for_a_minute_then_drop_out() {
        let mut recent = RecentUnits::default();
        for _ in 0..1_000_000 {
            recent.record(3);
        }
        recent.record(10);
        recent.record(62);
        assert_eq!(recent.last_minute(62), 1_000_002, "seconds 3, 10 and 62 are within a minute of 62");
        assert_eq!(recent.last_minute(63), 2, "second 3 is a minute old at 63");
        recent.record(123); // the slot of second 3 (and 63) again
        assert_eq!(recent.last_minute(123), 1, "seconds 10 and 62 are a minute old at 123");
    }

    #[test]
    fn a_second_ago_or_now_counts_and_an_empty_minute_is_zero() {
        let mut recent = RecentUnits::default();
        assert_eq!(recent.last_minute(500), 0);
        recent.record(0);
        assert_eq!(recent.last_minute(0), 1, "a unit of this second counts");
        assert_eq!(recent.last_minute(59), 1);
        assert_eq!(recent.last_minute(60), 0);
    }
}

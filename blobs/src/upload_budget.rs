//! `--upload-rate`: how many bytes per second a peer sends to the swarm (and, as an owner,
//! to its workers). A schedule, not a bucket of tokens: each send reserves its bytes on a
//! timeline that advances at the rate, and waits until its turn. Sends never overlap their
//! reservations, so over any window the bytes sent are at most `rate × window` plus one
//! send (a burst is never saved up: an idle minute does not buy a burst later).

use std::time::{Duration, Instant};

/// The upload schedule of one peer; `None` rate: no limit.
#[derive(Debug)]
pub struct UploadBudget {
    bytes_per_second: Option<u64>,
    /// When the bytes reserved so far have all gone out at the rate.
    free_at: Option<Instant>,
}

impl UploadBudget {
    pub fn new(bytes_per_second: Option<u64>) -> UploadBudget {
        UploadBudget { bytes_per_second: bytes_per_second.filter(|rate| *rate > 0), free_at: None }
    }

    pub fn bytes_per_second(&self) -> Option<u64> {
        self.bytes_per_second
    }

    /// How long the bytes reserved so far take to go out, from `now`.
    pub fn backlog(&self, now: Instant) -> Duration {
        self.free_at.map_or(Duration::ZERO, |free_at| free_at.saturating_duration_since(now))
    }

    /// Reserves `bytes` at `now`; returns how long to wait before sending them.
    pub fn reserve(&mut self, bytes: u64, now: Instant) -> Duration {
        let Some(rate) = self.bytes_per_second else { return Duration::ZERO };
        let start = self.free_at.filter(|free_at| *free_at > now).unwrap_or(now);
        let takes = Duration::from_secs_f64(bytes as f64 / rate as f64);
        self.free_at = Some(start + takes);
        start - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_wait_their_turn_at_the_rate_and_idle_time_buys_no_burst() {
        let start = Instant::now();
        let mut budget = UploadBudget::new(Some(1_000_000));
        assert_eq!(budget.reserve(500_000, start), Duration::ZERO);
        assert_eq!(budget.reserve(500_000, start), Duration::from_millis(500));
        assert_eq!(budget.reserve(1_000_000, start), Duration::from_secs(1));
        assert_eq!(budget.backlog(start), Duration::from_secs(2));
        // Two seconds later the schedule is free again; an idle ten seconds saves nothing up.
        let later = start + Duration::from_secs(12);
        assert_eq!(budget.reserve(1_000_000, later), Duration::ZERO);
        assert_eq!(budget.reserve(1, later), Duration::from_secs(1));
    }

    #[test]
    fn no_rate_means_no_wait() {
        let mut budget = UploadBudget::new(None);
        assert_eq!(budget.reserve(u64::MAX, Instant::now()), Duration::ZERO);
        assert_eq!(UploadBudget::new(Some(0)).bytes_per_second(), None);
    }
}

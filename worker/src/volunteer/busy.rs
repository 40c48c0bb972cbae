//! Spare-CPU detection: how much CPU other programs use, and when that counts as busy.
//!
//! Other programs' use is the machine's non-niced busy time (`/proc/stat`: user, system,
//! irq, softirq, steal; not `nice`, not idle or iowait) minus this process's own non-niced
//! time (its total from `/proc/self/stat` less its unit threads, which run at nice 19 and
//! are counted under `nice`). Other niced background work (and other volunteers) therefore
//! never makes the machine look busy; its owner's programs do.
//!
//! [`BusyDetector`] is sans-IO: the machine is busy once the share stayed above the
//! threshold for the grace period, and idle again once it stayed at or below it as long.

use std::time::{Duration, Instant};

/// CPU counters at one moment, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuCounters {
    pub machine_total: u64,
    pub machine_busy_not_niced: u64,
    pub own_not_niced: u64,
}

impl CpuCounters {
    /// Reads `/proc/stat` and `/proc/self`; `None` where they do not exist (not Linux).
    pub fn read() -> Option<CpuCounters> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> =
            stat.lines().next()?.split_whitespace().skip(1).filter_map(|field| field.parse().ok()).collect();
        let field = |index: usize| fields.get(index).copied().unwrap_or(0);
        let (user, system, irq, softirq, steal) = (field(0), field(2), field(5), field(6), field(7));
        let own_total = thread_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        let own_units: u64 = std::fs::read_dir("/proc/self/task")
            .ok()?
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
            .filter(|stat| stat.contains("(wasmhive-unit"))
            .filter_map(|stat| thread_ticks(&stat))
            .sum();
        Some(CpuCounters {
            machine_total: fields.iter().sum(),
            machine_busy_not_niced: user + system + irq + softirq + steal,
            own_not_niced: own_total.saturating_sub(own_units),
        })
    }

    /// Other programs' share of the whole machine between `earlier` and `self` (0 to 1).
    pub fn others_share_since(&self, earlier: &CpuCounters) -> f64 {
        let total = self.machine_total.saturating_sub(earlier.machine_total);
        if total == 0 {
            return 0.0;
        }
        let busy = self.machine_busy_not_niced.saturating_sub(earlier.machine_busy_not_niced);
        let own = self.own_not_niced.saturating_sub(earlier.own_not_niced);
        (busy.saturating_sub(own) as f64 / total as f64).clamp(0.0, 1.0)
    }
}

/// utime + stime of one `/proc/.../stat` line (fields 14 and 15, after the `(comm)`).
fn thread_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Decides busy/idle from observed shares, with a grace period both ways.
#[derive(Debug)]
pub struct BusyDetector {
    threshold: f64,
    grace: Duration,
    busy: bool,
    /// Since when the observations disagree with `busy`.
    changing_since: Option<Instant>,
}

impl BusyDetector {
    pub fn new(threshold_percent: u32, grace: Duration) -> BusyDetector {
        BusyDetector {
            threshold: f64::from(threshold_percent) / 100.0,
            grace,
            busy: false,
            changing_since: None,
        }
    }

    /// Takes one observation; returns whether the machine counts as busy now.
    pub fn observe(&mut self, others_share: f64, now: Instant) -> bool {
        let looks_busy = others_share > self.threshold;
        if looks_busy == self.busy {
            self.changing_since = None;
            return self.busy;
        }
        let since = *self.changing_since.get_or_insert(now);
        if now.duration_since(since) >= self.grace {
            self.busy = looks_busy;
            self.changing_since = None;
        }
        self.busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_only_after_the_grace_period_and_idle_only_after_it_again() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut detector = BusyDetector::new(50, Duration::from_secs(5));
        assert!(!detector.observe(0.9, at(0)));
        assert!(!detector.observe(0.9, at(4)));
        assert!(!detector.observe(0.1, at(5)), "a dip restarts the grace period");
        assert!(!detector.observe(0.9, at(6)));
        assert!(detector.observe(0.9, at(11)));
        assert!(detector.observe(0.2, at(12)));
        assert!(detector.observe(0.2, at(16)));
        assert!(!detector.observe(0.2, at(17)));
    }

    #[test]
    fn own_non_niced_time_is_not_counted_as_others() {
        let earlier = CpuCounters { machine_total: 1000, machine_busy_not_niced: 100, own_not_niced: 50 };
        let later = CpuCounters { machine_total: 1200, machine_busy_not_niced: 200, own_not_niced: 90 };
        assert!((later.others_share_since(&earlier) - 0.3).abs() < 1e-9);
        assert_eq!(later.others_share_since(&later), 0.0);
    }

    #[test]
    fn the_counters_of_this_machine_can_be_read() {
        let counters = CpuCounters::read().expect("/proc is there on Linux");
        assert!(counters.machine_total > 0);
        assert!(thread_ticks("12 (a (weird) name) R 1 2 3 4 5 6 7 8 9 10 11 20 22 0").is_some());
    }
}

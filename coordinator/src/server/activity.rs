//! What an owner did lately: units decided per second (the dashboard's chart, job ETAs)
//! and the last quorum disagreements. Sampled once a second; bounded memory.

use std::collections::{HashMap, VecDeque};
use wasmhive_protocol::api::{Disagreement, ThroughputPoint};

/// Samples kept: ten minutes at one per second.
const SAMPLES_MAX: usize = 600;
/// The window job ETAs are computed over.
const ETA_WINDOW_S: u64 = 30;
const DISAGREEMENTS_MAX: usize = 50;

#[derive(Default)]
pub struct Activity {
    /// (unix seconds, units decided over all jobs so far).
    samples: VecDeque<(u64, u64)>,
    decided_total: u64,
    /// Per job: (unix seconds, units decided) over the ETA window.
    per_job: HashMap<String, VecDeque<(u64, u64)>>,
    disagreements: VecDeque<Disagreement>,
}

impl Activity {
    pub fn units_decided(&mut self, count: u64) {
        self.decided_total += count;
    }

    pub fn disagreement(&mut self, disagreement: Disagreement) {
        if self.disagreements.len() >= DISAGREEMENTS_MAX {
            self.disagreements.pop_front();
        }
        self.disagreements.push_back(disagreement);
    }

    /// One sample: the time and each running job's decided units.
    pub fn sample(&mut self, now_s: u64, jobs: &[(String, u64)]) {
        if self.samples.len() >= SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back((now_s, self.decided_total));
        self.per_job.retain(|job_id, _| jobs.iter().any(|(running, _)| running == job_id));
        for (job_id, decided) in jobs {
            let samples = self.per_job.entry(job_id.clone()).or_default();
            samples.push_back((now_s, *decided));
            while samples.front().is_some_and(|(at, _)| now_s.saturating_sub(*at) > ETA_WINDOW_S) {
                samples.pop_front();
            }
        }
    }

    /// Units decided per second between consecutive samples, oldest first.
    pub fn throughput(&self) -> Vec<ThroughputPoint> {
        let samples: Vec<&(u64, u64)> = self.samples.iter().collect();
        samples
            .windows(2)
            .map(|pair| {
                let ((earlier_s, earlier), (at_s, decided)) = (pair[0], pair[1]);
                let seconds = at_s.saturating_sub(*earlier_s).max(1) as f64;
                ThroughputPoint {
                    at_s: *at_s,
                    units_per_s: decided.saturating_sub(*earlier) as f64 / seconds,
                }
            })
            .collect()
    }

    /// Seconds until a job's `units_left` are decided at its recent rate.
    pub fn eta_s(&self, job_id: &str, units_left: u64) -> Option<u64> {
        let samples = self.per_job.get(job_id)?;
        let ((first_s, first), (last_s, last)) = (samples.front()?, samples.back()?);
        let rate = last.saturating_sub(*first) as f64 / last_s.saturating_sub(*first_s).max(1) as f64;
        (rate > 0.0).then(|| (units_left as f64 / rate).ceil() as u64)
    }

    pub fn disagreements(&self) -> Vec<Disagreement> {
        self.disagreements.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_and_eta_follow_the_samples() {
        let mut activity = Activity::default();
        activity.sample(100, &[("job".into(), 0)]);
        activity.units_decided(50);
        activity.sample(101, &[("job".into(), 50)]);
        activity.units_decided(30);
        activity.sample(103, &[("job".into(), 80)]);
        let points = activity.throughput();
        assert_eq!(points.len(), 2);
        assert_eq!((points[0].at_s, points[0].units_per_s), (101, 50.0));
        assert_eq!((points[1].at_s, points[1].units_per_s), (103, 15.0));
        assert_eq!(activity.eta_s("job", 80), Some(3), "80 units/3 s · 80 left");
        assert_eq!(activity.eta_s("other", 10), None);
        activity.sample(104, &[]);
        assert_eq!(activity.eta_s("job", 10), None, "finished jobs are forgotten");
    }
}

//! `/metrics` in the Prometheus text format: what an owner leased, accepted and failed,
//! how many replicas accepted units took, quorum disagreements, connected workers, spare
//! slots, how long units ran on the workers (as they reported it), and how many outcome
//! batches each store transaction held.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::{Metric, Registry};

pub struct GridMetrics {
    registry: Registry,
    pub units_leased: Counter,
    pub units_accepted: Counter,
    pub units_failed: Counter,
    pub quorum_disagreements: Counter,
    pub replicas_per_accepted_unit: Histogram,
    pub unit_run_seconds: Histogram,
    pub connected_workers: Gauge,
    pub spare_slots: Gauge,
    pub jobs_running: Gauge,
    /// Transactions the store writer committed outcome batches in (one fsync each).
    pub outcome_commits: Counter,
    pub outcome_batches_committed: Counter,
}

impl GridMetrics {
    pub fn new() -> GridMetrics {
        let mut registry = Registry::with_prefix("wasmhive");
        let metrics = GridMetrics {
            units_leased: Counter::default(),
            units_accepted: Counter::default(),
            units_failed: Counter::default(),
            quorum_disagreements: Counter::default(),
            replicas_per_accepted_unit: Histogram::new(linear_buckets(1.0, 1.0, 8)),
            unit_run_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 18)),
            connected_workers: Gauge::default(),
            spare_slots: Gauge::default(),
            jobs_running: Gauge::default(),
            outcome_commits: Counter::default(),
            outcome_batches_committed: Counter::default(),
            registry: Registry::default(),
        };
        let counters = [
            ("units_leased", "Replicas of units handed to workers", &metrics.units_leased),
            ("units_accepted", "Units accepted by quorum (or alone, adaptive)", &metrics.units_accepted),
            ("units_failed", "Units that failed (an agreed failure or no quorum)", &metrics.units_failed),
            (
                "quorum_disagreements",
                "Replicas whose output differed from the accepted one",
                &metrics.quorum_disagreements,
            ),
            (
                "outcome_commits",
                "Store transactions holding workers' outcome batches (group commit: one fsync each)",
                &metrics.outcome_commits,
            ),
            (
                "outcome_batches_committed",
                "Workers' outcome batches committed",
                &metrics.outcome_batches_committed,
            ),
        ];
        register_all(&mut registry, counters);
        let histograms = [
            (
                "replicas_per_accepted_unit",
                "Replicas an accepted unit took",
                &metrics.replicas_per_accepted_unit,
            ),
            (
                "unit_run_seconds",
                "Sandbox run time of a replica, as its worker reported it",
                &metrics.unit_run_seconds,
            ),
        ];
        register_all(&mut registry, histograms);
        let gauges = [
            ("connected_workers", "Worker connections open to this owner", &metrics.connected_workers),
            ("spare_slots", "Cores of connected workers not holding a lease", &metrics.spare_slots),
            ("jobs_running", "Jobs with undecided units", &metrics.jobs_running),
        ];
        register_all(&mut registry, gauges);
        GridMetrics { registry, ..metrics }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Registers each (name, help, metric); the registry keeps a handle to the same metric.
fn register_all<'a, M: Metric + Clone>(
    registry: &mut Registry,
    metrics: impl IntoIterator<Item = (&'a str, &'a str, &'a M)>,
) {
    for (name, help, metric) in metrics {
        registry.register(name, help, metric.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_appear_in_the_text_format() {
        let metrics = GridMetrics::new();
        metrics.units_leased.inc_by(3);
        metrics.replicas_per_accepted_unit.observe(2.0);
        metrics.spare_slots.set(5);
        let text = metrics.encode();
        assert!(text.contains("wasmhive_units_leased_total 3"), "{text}");
        assert!(text.contains("wasmhive_replicas_per_accepted_unit_count 1"), "{text}");
        assert!(text.contains("wasmhive_spare_slots 5"), "{text}");
        assert!(text.contains("# TYPE wasmhive_unit_run_seconds histogram"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

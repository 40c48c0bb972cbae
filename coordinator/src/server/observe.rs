//! What an owner shows about itself: Prometheus metrics, the dashboard snapshot, the
//! activity samples, and why a job or a worker waits.

use super::explain::{JobFacts, WorkerStanding, why_job_waits, why_no_work};
use super::job_runtime::JobRuntime;
use super::state::Coordinator;
use crate::core::{ActiveUnitView, OutcomeEffect, UnitDecision};
use std::time::{SystemTime, UNIX_EPOCH};
use wasmhive_protocol::OutcomeReport;
use wasmhive_protocol::api::{ConnectedWorker, DashboardSnapshot, Disagreement};

impl Coordinator {
    /// Counts a committed batch in the metrics and the activity record.
    pub(super) fn observe_outcomes(&self, reports: &[OutcomeReport], effects: &[(usize, OutcomeEffect)]) {
        let mut activity = self.activity.lock().expect("activity lock");
        for (position, effect) in effects {
            if effect.replica.is_some() {
                self.metrics.unit_run_seconds.observe(reports[*position].wall_time_ms as f64 / 1000.0);
            }
            match &effect.decision {
                Some(UnitDecision::Accepted { replicas, .. }) => {
                    self.metrics.units_accepted.inc();
                    self.metrics.replicas_per_accepted_unit.observe(f64::from(*replicas));
                    activity.units_decided(1);
                }
                Some(UnitDecision::Failed { .. }) => {
                    self.metrics.units_failed.inc();
                    activity.units_decided(1);
                }
                None => {}
            }
            for judgement in effect.judgements.iter().filter(|judgement| !judgement.agreed) {
                self.metrics.quorum_disagreements.inc();
                activity.disagreement(Disagreement {
                    job_id: effect.job_id.to_string(),
                    unit: effect.unit_index,
                    worker_id: judgement.worker_id.to_string(),
                    at_s: unix_s(),
                });
            }
        }
    }

    /// Takes the once-a-second activity sample.
    pub fn sample_activity(&self) {
        let jobs: Vec<(String, u64)> = {
            let core = self.core.lock().expect("core lock");
            let job_ids: Vec<String> = core.job_ids().map(|job_id| job_id.to_string()).collect();
            job_ids
                .into_iter()
                .filter_map(|job_id| core.progress(&job_id).map(|progress| (job_id, progress.decided())))
                .collect()
        };
        self.activity.lock().expect("activity lock").sample(unix_s(), &jobs);
    }

    /// The Prometheus text exposition, with the gauges read now.
    pub fn metrics_text(&self) -> String {
        let workers = self.connected_workers();
        self.metrics.connected_workers.set(self.connection_count() as i64);
        self.metrics.spare_slots.set(workers.iter().map(|worker| worker.spare_slots as i64).sum());
        self.metrics.jobs_running.set(self.core.lock().expect("core lock").job_ids().count() as i64);
        self.metrics.encode()
    }

    /// Everything the dashboard shows.
    pub fn dashboard_snapshot(&self) -> DashboardSnapshot {
        let (throughput, disagreements) = {
            let activity = self.activity.lock().expect("activity lock");
            (activity.throughput(), activity.disagreements())
        };
        DashboardSnapshot {
            jobs: self.statuses(),
            throughput,
            workers: self.connected_workers(),
            reputation: self.reputations(),
            credit: self.credits(None).unwrap_or_default(),
            disagreements,
        }
    }

    /// Workers connected now, with their leases and spare slots.
    pub fn connected_workers(&self) -> Vec<ConnectedWorker> {
        let workers = self.connections.lock().expect("connections lock").workers();
        let now_ms = self.now_ms();
        let core = self.core.lock().expect("core lock");
        let leases = core.leases_per_worker();
        workers
            .into_iter()
            .map(|(worker_id, (cores, network))| {
                let leased = leases.get(&worker_id).copied().unwrap_or(0) as u64;
                let quarantined = core.is_quarantined(&worker_id, now_ms);
                ConnectedWorker {
                    trust: core.reputation(&worker_id).map(|reputation| reputation.trust()),
                    spare_slots: if quarantined { 0 } else { u64::from(cores).saturating_sub(leased) },
                    worker_id,
                    network: network.to_string(),
                    cores,
                    leased,
                    quarantined,
                }
            })
            .collect()
    }

    /// A job's started, undecided units.
    pub fn active_units(&self, job_id: &str, limit: usize) -> Vec<ActiveUnitView> {
        self.core.lock().expect("core lock").active_units(job_id, limit)
    }

    /// Why a running job is not moving (`None` when it is).
    pub(super) fn why_job_waits(&self, job: &JobRuntime, workers: &[ConnectedWorker]) -> Option<String> {
        let job_id = &job.stored.job_id;
        let core = self.core.lock().expect("core lock");
        let progress = core.progress(job_id)?;
        let facts = JobFacts {
            quorum: job.stored.quorum,
            units_left: progress.units - progress.decided(),
            fresh_units_left: progress.units - core.next_fresh_unit(job_id).unwrap_or(progress.units),
            leased: progress.leased,
            waiting_for_replica: core.units_waiting_for_replica(job_id) as u64,
            workers_connected: workers.len() as u64,
            networks_connected: workers
                .iter()
                .map(|worker| &worker.network)
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u64,
            workers_quarantined: workers.iter().filter(|worker| worker.quarantined).count() as u64,
            spare_slots: workers.iter().map(|worker| worker.spare_slots).sum(),
            disputed: progress.disputed,
        };
        why_job_waits(&facts)
    }

    /// Why a worker's request for work got no lease.
    pub fn why_no_work(&self, worker_id: &str) -> String {
        let now_ms = self.now_ms();
        let core = self.core.lock().expect("core lock");
        let reputation = core.reputation(worker_id).unwrap_or_default();
        let standing = if reputation.is_banned() {
            WorkerStanding::Banned
        } else {
            super::state::quarantined_for_s(&reputation, now_ms)
                .map_or(WorkerStanding::Good, WorkerStanding::Quarantined)
        };
        let engine_needed = core.engine_every_job_needs(worker_id);
        why_no_work(standing, core.job_ids().count(), engine_needed.as_deref())
    }
}

fn unix_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

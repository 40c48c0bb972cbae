//! Taking outcomes: check each against its job, record the batch in the core, commit it,
//! acknowledge it, and finish the jobs it completed.

use super::state::Coordinator;
use crate::core::{LeaseId, OutcomeEffect, Reputation};
use crate::store::OutcomeToCommit;
use wasmhive_protocol::api::JobState;
use wasmhive_protocol::{Hash, OutcomeReport, outcome_digest};

impl Coordinator {
    /// Records a batch of outcomes and commits it; returns the lease ids to acknowledge
    /// (all of them: those the core no longer knows are acknowledged so the worker forgets
    /// them). Err is a protocol violation: close the connection with it.
    pub fn commit_outcomes(
        &self,
        worker_id: &str,
        reports: &[OutcomeReport],
    ) -> Result<Vec<LeaseId>, String> {
        for report in reports {
            if outcome_digest(&report.status, &report.output) != report.digest {
                return Err(format!(
                    "outcome of lease {} has a digest that does not match its output",
                    report.lease_id
                ));
            }
        }
        self.check_output_limits(reports)?;
        let with_validator =
            |report: &OutcomeReport| self.job(&report.job_id).filter(|job| job.validator.is_some());
        let _validating = reports
            .iter()
            .any(|report| with_validator(report).is_some())
            .then(|| self.validation.lock().expect("validation lock"));
        let class_digests: Vec<Hash> = reports
            .iter()
            .map(|report| match with_validator(report) {
                Some(job) if report.status.is_success() && self.holds_lease(worker_id, report) => {
                    self.class_digest(&job, report.unit_index, report.digest, &report.output)
                }
                _ => report.digest,
            })
            .collect();
        let mut effects: Vec<(usize, OutcomeEffect)> = Vec::new();
        let disputes_waiting: bool;
        let now_ms = self.now_ms();
        {
            let mut core = self.core.lock().expect("core lock");
            for (position, report) in reports.iter().enumerate() {
                let target = core.lease_target(report.lease_id);
                if target.is_some_and(|target| target != (report.job_id.as_str(), report.unit_index)) {
                    tracing::warn!(worker = %worker_id, lease = report.lease_id, "outcome names another unit than its lease; ignored");
                    continue;
                }
                let digest = class_digests[position];
                match core.report_outcome(worker_id, report.lease_id, &report.status, digest, now_ms) {
                    Ok(effect) => effects.push((position, effect)),
                    Err(rejection) => tracing::debug!(worker = %worker_id, %rejection, "outcome ignored"),
                }
            }
            disputes_waiting = core.has_arbitrations();
        }
        let next_fresh: Vec<(String, u64)> = {
            let core = self.core.lock().expect("core lock");
            let mut job_ids: Vec<&String> = effects.iter().map(|(_, effect)| &effect.job_id).collect();
            job_ids.dedup();
            job_ids
                .into_iter()
                .filter_map(|job_id| core.next_fresh_unit(job_id).map(|next| (job_id.clone(), next)))
                .collect()
        };
        let to_commit: Vec<OutcomeToCommit<'_>> = effects
            .iter()
            .map(|(position, effect)| OutcomeToCommit {
                effect,
                lease_id: reports[*position].lease_id,
                output: &reports[*position].output,
                fuel_used: self
                    .job(&effect.job_id)
                    .and_then(|job| job.credible_fuel(reports[*position].fuel_used)),
                engine_class: &reports[*position].engine_class,
                keep_output: with_validator(&reports[*position]).is_some(),
                metered: self.job(&effect.job_id).is_some_and(|job| job.stored.limits.fuel.is_some()),
            })
            .collect();
        let reputations: Vec<(String, Reputation)> = effects
            .iter()
            .flat_map(|(_, effect)| effect.judgements.iter().chain(&effect.unfinished))
            .map(|judgement| {
                (judgement.worker_id.clone(), judgement.reputation.in_clock(self.started_unix_ms, true))
            })
            .collect();
        let mut store = self.store.lock().expect("store lock");
        if let Err(error) = store.commit_outcomes(&to_commit, &next_fresh, &reputations) {
            drop(store);
            self.commit_failed(&error, effects.iter().map(|(_, effect)| effect.job_id.as_str()));
            return Ok(Vec::new());
        }
        drop(store);
        if disputes_waiting {
            // After the commit: the arbitration reads who decided the unit from the store.
            self.arbitrations_waiting.notify_one();
        }
        // Each replica that did not decide its unit leaves it waiting for another.
        self.wake_waiting_workers(
            effects
                .iter()
                .filter(|(_, effect)| effect.replica.is_some() && effect.decision.is_none())
                .count(),
        );
        self.observe_outcomes(reports, &effects);
        self.finish_completed_jobs(effects.iter().map(|(_, effect)| effect.job_id.as_str()));
        Ok(reports.iter().map(|report| report.lease_id).collect())
    }

    /// Every outcome's output fits its job's output limit (checked before anything runs
    /// on it).
    fn check_output_limits(&self, reports: &[OutcomeReport]) -> Result<(), String> {
        for report in reports {
            let Some(job) = self.job(&report.job_id) else { continue };
            if report.output.len() as u64 > job.stored.limits.output_bytes {
                return Err(format!(
                    "outcome of lease {} is larger than the job's output limit",
                    report.lease_id
                ));
            }
        }
        Ok(())
    }

    pub(super) fn finish_completed_jobs<'a>(&self, job_ids: impl Iterator<Item = &'a str>) {
        let mut finished = Vec::new();
        {
            let mut core = self.core.lock().expect("core lock");
            for job_id in job_ids {
                if core.progress(job_id).is_some_and(|progress| progress.is_complete()) {
                    core.remove_job(job_id);
                    finished.push(job_id.to_string());
                }
            }
        }
        for job_id in finished {
            if let Err(error) =
                self.store.lock().expect("store lock").set_job_state(&job_id, JobState::Completed)
            {
                tracing::error!(%error, job = %job_id, "could not mark the job completed");
            }
            tracing::info!(job = %job_id, "job completed");
            self.start_reduction(&job_id);
        }
    }
}

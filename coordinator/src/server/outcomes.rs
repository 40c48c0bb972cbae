//! Taking outcomes: check each against its job, record the batch in the core, commit it,
//! acknowledge it, and finish the jobs it completed.

use super::job_runtime::JobRuntime;
use super::state::Coordinator;
use crate::core::{LeaseId, OutcomeEffect};
use crate::store::{OutcomeBatch, OutcomeToCommit};
use std::sync::Arc;
use wasmhive_protocol::api::JobState;
use wasmhive_protocol::{
    BlobRef, Hash, OUTPUT_INLINE_BYTES_MAX, OutcomeReport, blob_outcome_digest, outcome_digest,
};

impl Coordinator {
    /// Records a batch of outcomes and commits it (through the store writer); returns the
    /// lease ids to acknowledge (all of them: those the core no longer knows are
    /// acknowledged so the worker forgets them), or none when the batch was not committed.
    /// Err is a protocol violation: close the connection with it. Blocks on the commit (and
    /// on validators): call it off the async runtime.
    pub fn commit_outcomes(
        &self,
        worker: &WorkerSeen,
        reports: Vec<OutcomeReport>,
    ) -> Result<Vec<LeaseId>, OutputRefused> {
        let received = self.receive_outcomes(&worker.worker_id, reports);
        self.commit_received_outcomes(worker, received)
    }

    /// [`Coordinator::commit_outcomes`] of a batch already received.
    pub fn commit_received_outcomes(
        &self,
        worker: &WorkerSeen,
        received: ReceivedOutcomes,
    ) -> Result<Vec<LeaseId>, OutputRefused> {
        let with_validator = received.targets.iter().flatten().any(|target| target.job.validator.is_some());
        // Classes and commits of validated jobs go one batch at a time: a replica's class
        // is found among the stored outputs of its unit.
        let _validating = with_validator.then(|| self.validation.lock().expect("validation lock"));
        let recorded = self.record_outcome_batch(worker, received)?;
        Ok(self.store_recorded_batch(&worker.worker_id, recorded))
    }

    /// A batch as it arrived, with the job and unit of each lease the worker holds (a
    /// report names only its lease; the owner knows what the lease is for).
    pub fn receive_outcomes(&self, worker_id: &str, reports: Vec<OutcomeReport>) -> ReceivedOutcomes {
        let core = self.core.lock().expect("core lock");
        let jobs = self.jobs.read().expect("jobs lock");
        let targets = reports
            .iter()
            .map(|report| {
                let (job_id, unit_index) = core.held_lease_target(worker_id, report.lease_id)?;
                Some(LeaseTarget { job: jobs.get(job_id)?.clone(), unit_index })
            })
            .collect();
        ReceivedOutcomes { reports, targets }
    }

    /// Whether a batch can be recorded on the async runtime: no job of it has a validator
    /// (whose classification runs a module) and its outputs are small to hash.
    pub fn records_quickly(&self, received: &ReceivedOutcomes) -> bool {
        let output_bytes: usize = received.reports.iter().map(|report| report.output.len()).sum();
        output_bytes <= QUICK_RECORD_OUTPUT_BYTES_MAX
            && received.targets.iter().flatten().all(|target| target.job.validator.is_none())
    }

    /// Checks a batch and records it in the core; the store has not seen it yet (see
    /// [`Coordinator::store_recorded_batch`]). Recording before the commit lets a request
    /// for work that follows the batch see the leases it returned.
    pub fn record_outcome_batch(
        &self,
        worker: &WorkerSeen,
        received: ReceivedOutcomes,
    ) -> Result<RecordedOutcomes, OutputRefused> {
        let ReceivedOutcomes { mut reports, targets } = received;
        check_outputs(&reports, &targets)?;
        self.read_outputs_for_validators(&mut reports, &targets);
        let class_digests: Vec<Hash> = reports
            .iter()
            .zip(&targets)
            .map(|(report, target)| {
                // Digests are the owner's own: workers send bytes (or blobs the owner fetched
                // and verified), never a digest to trust.
                let digest = match &report.output_blob {
                    Some(blob) => blob_outcome_digest(&report.status, blob),
                    None => outcome_digest(&report.status, &report.output),
                };
                match target {
                    Some(LeaseTarget { job, unit_index })
                        if job.validator.is_some() && report.status.is_success() =>
                    {
                        self.class_digest(job, *unit_index, digest, &report.output)
                    }
                    _ => digest,
                }
            })
            .collect();
        Ok(self.record_outcomes(worker, reports, &class_digests))
    }

    /// Validators compare outputs in memory, and the outputs of their jobs stay in the
    /// store's rows: an output blob of such a job (fetched already) is read here. Its
    /// digest is unchanged (`outcome_digest` of bytes above the inline limit is their
    /// blob's). A blob that cannot be read leaves the report a host failure.
    fn read_outputs_for_validators(&self, reports: &mut [OutcomeReport], targets: &[Option<LeaseTarget>]) {
        for (report, target) in reports.iter_mut().zip(targets) {
            let Some(target) = target.as_ref().filter(|target| target.job.validator.is_some()) else {
                continue;
            };
            let Some(blob) = report.output_blob.take() else { continue };
            let mut bytes = Vec::with_capacity(blob.size as usize);
            match self.blobs.read_into(&blob.hash, blob.size, &mut bytes) {
                Ok(_) => report.output = bytes,
                Err(reason) => {
                    tracing::error!(job = %target.job.stored.job_id, blob = %blob.hash.short(), %reason, "an output blob cannot be read; the replica counts as a host failure");
                    report.status = wasmhive_protocol::Status::HostTimeout;
                }
            }
        }
    }

    /// Commits a recorded batch (blocks on the store writer), then acknowledges, wakes,
    /// counts and finishes what it completed. Returns the lease ids to acknowledge.
    pub fn store_recorded_batch(&self, worker_id: &str, recorded: RecordedOutcomes) -> Vec<LeaseId> {
        let (batch, after) = recorded.split();
        let committed = self.store_writer.commit(batch, after.generations.clone());
        let acknowledged = self.batch_stored(worker_id, &after, committed);
        // Every job the batch touched: the batch that decided a job's last unit may have
        // been stored before this one.
        self.finish_completed_jobs(after.generations.iter().map(|(job_id, _)| job_id.as_str()));
        acknowledged
    }

    /// Hands a recorded batch to the store writer without blocking and returns its
    /// commit's end (the lease ids to acknowledge). Only the rare store work after a commit
    /// (a job completed) goes to the blocking pool: a small batch costs no thread hand-off
    /// but the writer's own.
    pub async fn store_recorded_batch_async(
        self: &Arc<Self>,
        worker_id: &str,
        recorded: RecordedOutcomes,
    ) -> Vec<LeaseId> {
        let (batch, after) = recorded.split();
        let committed = match self.store_writer.commit_later(batch, after.generations.clone()) {
            Ok(answer) => answer.await.unwrap_or(Err(super::store_writer::CommitRefused::ShuttingDown)),
            Err((batch, generations)) => {
                // The writer's queue is full: wait for room off the runtime.
                let coordinator = self.clone();
                let waited =
                    tokio::task::spawn_blocking(move || coordinator.store_writer.commit(batch, generations));
                waited.await.unwrap_or(Err(super::store_writer::CommitRefused::ShuttingDown))
            }
        };
        let acknowledged = self.batch_stored(worker_id, &after, committed);
        let job_ids: Vec<String> = after.generations.into_iter().map(|(job_id, _)| job_id).collect();
        if self.any_job_complete(&job_ids) {
            let coordinator = self.clone();
            let finishing = move || coordinator.finish_completed_jobs(job_ids.iter().map(String::as_str));
            let _ = tokio::task::spawn_blocking(finishing).await;
        }
        acknowledged
    }

    /// After a batch's commit ended: the core learns it is stored; when it was committed,
    /// the arbitration and waiting workers are woken and its outcomes counted. Returns the
    /// lease ids to acknowledge (none when it was not committed).
    fn batch_stored(
        &self,
        worker_id: &str,
        after: &AfterCommit,
        committed: super::store_writer::CommitAnswer,
    ) -> Vec<LeaseId> {
        let AfterCommit { generations, disputes_waiting, reports, effects } = after;
        let disputes_waiting = *disputes_waiting;
        {
            let mut core = self.core.lock().expect("core lock");
            for (job_id, generation) in generations {
                core.outcomes_stored(job_id, *generation);
            }
        }
        if let Err(refused) = committed {
            tracing::warn!(worker = %worker_id, %refused, "outcomes not acknowledged");
            return Vec::new();
        }
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
        self.observe_outcomes(reports, effects);
        reports.iter().map(|report| report.lease_id).collect()
    }

    /// Whether one of these jobs has every unit decided (and may be finished).
    fn any_job_complete(&self, job_ids: &[String]) -> bool {
        let core = self.core.lock().expect("core lock");
        job_ids.iter().any(|job_id| core.progress(job_id).is_some_and(|progress| progress.is_complete()))
    }

    /// Records each report in the core (under its lock, once) and builds the batch to commit.
    fn record_outcomes(
        &self,
        worker: &WorkerSeen,
        mut reports: Vec<OutcomeReport>,
        class_digests: &[Hash],
    ) -> RecordedOutcomes {
        let worker_id = &*worker.worker_id;
        let now_ms = self.now_ms();
        let mut core = self.core.lock().expect("core lock");
        let mut batch = OutcomeBatch::default();
        for (position, report) in reports.iter_mut().enumerate() {
            match core.report_replica(
                worker_id,
                report.lease_id,
                &report.status,
                class_digests[position],
                report.fuel_used,
                now_ms,
            ) {
                Ok(effect) => {
                    batch.outcomes.push(self.outcome_to_commit(position, report, &worker.engine, effect))
                }
                Err(rejection) => tracing::debug!(worker = %worker_id, %rejection, "outcome ignored"),
            }
        }
        let mut job_ids: Vec<&str> = batch.outcomes.iter().map(|outcome| &*outcome.effect.job_id).collect();
        job_ids.sort_unstable();
        job_ids.dedup();
        batch.next_fresh = job_ids
            .iter()
            .filter_map(|job_id| core.next_fresh_unit(job_id).map(|next| (job_id.to_string(), next)))
            .collect();
        let generations: Vec<(String, u64)> = job_ids
            .iter()
            .filter_map(|job_id| {
                core.job_generation(job_id).map(|generation| (job_id.to_string(), generation))
            })
            .collect();
        for (job_id, _) in &generations {
            core.outcomes_recorded(job_id); // the job is not complete before this batch is stored
        }
        batch.reputations = batch
            .outcomes
            .iter()
            .flat_map(|outcome| outcome.effect.judgements.iter().chain(&outcome.effect.unfinished))
            .map(|judgement| {
                (judgement.worker_id.clone(), judgement.reputation.in_clock(self.started_unix_ms, true))
            })
            .collect();
        let disputes_waiting = core.has_arbitrations();
        drop(core);
        RecordedOutcomes { batch, generations, disputes_waiting, reports }
    }

    fn outcome_to_commit(
        &self,
        position: usize,
        report: &mut OutcomeReport,
        engine: &Arc<str>,
        effect: OutcomeEffect,
    ) -> OutcomeToCommit {
        let job = self.job(&effect.job_id);
        let keep_output = job.as_ref().is_some_and(|job| job.validator.is_some());
        OutcomeToCommit {
            position,
            lease_id: report.lease_id,
            // Only outputs that may become a result, or that a validator compares, are kept.
            output: if effect.decision.is_some() || keep_output {
                std::mem::take(&mut report.output)
            } else {
                Vec::new()
            },
            output_blob: report.output_blob.filter(|_| effect.decision.is_some()),
            engine_class: engine.clone(),
            keep_output,
            effect,
        }
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
            self.jobs_ended.notify_waiters();
            tracing::info!(job = %job_id, "job completed");
            self.start_reduction(&job_id);
            // Its blobs are needed no more (kept within the budget while others fit).
            self.evict_blobs(None);
        }
    }
}

/// What is left to do once a batch's commit ended.
struct AfterCommit {
    generations: Vec<(String, u64)>,
    disputes_waiting: bool,
    reports: Vec<OutcomeReport>,
    effects: Vec<(usize, OutcomeEffect)>,
}

impl RecordedOutcomes {
    fn split(self) -> (OutcomeBatch, AfterCommit) {
        let RecordedOutcomes { batch, generations, disputes_waiting, reports } = self;
        let effects =
            batch.outcomes.iter().map(|outcome| (outcome.position, outcome.effect.clone())).collect();
        (batch, AfterCommit { generations, disputes_waiting, reports, effects })
    }
}

/// A batch recorded in the core, ready for the store writer.
pub struct RecordedOutcomes {
    batch: OutcomeBatch,
    /// Each touched job's generation when the core recorded the batch.
    generations: Vec<(String, u64)>,
    disputes_waiting: bool,
    /// The worker's reports (outputs moved into `batch` where they are stored).
    reports: Vec<OutcomeReport>,
}

/// The most output bytes a batch may carry to be recorded on the async runtime (hashing
/// them takes microseconds); larger batches are recorded on the blocking pool.
const QUICK_RECORD_OUTPUT_BYTES_MAX: usize = 64 << 10;

/// Longest engine name kept (a real one is about 25 characters).
pub const ENGINE_CHARS_MAX: usize = 64;

/// Who sent a batch: the identity its session proved and the engine its `hello` named
/// (recorded with each replica).
#[derive(Clone, Debug)]
pub struct WorkerSeen {
    /// Shared with the owner's record of the connection.
    pub worker_id: std::sync::Arc<str>,
    pub engine: std::sync::Arc<str>,
}

impl WorkerSeen {
    /// The proven `worker_id` and the engine its `hello` named, kept short and printable
    /// (it is stored with every replica the worker returns).
    pub fn new(worker_id: &str, engine: &str) -> WorkerSeen {
        WorkerSeen { worker_id: std::sync::Arc::from(worker_id), engine: engine_name(engine) }
    }
}

/// An engine name as sessions keep it: this release's classes are shared by every session
/// (an idle connection holds no copy of its own); other names are kept as sent, printable
/// and short.
fn engine_name(engine: &str) -> std::sync::Arc<str> {
    static KNOWN: std::sync::OnceLock<Vec<std::sync::Arc<str>>> = std::sync::OnceLock::new();
    let known =
        KNOWN.get_or_init(|| wasmhive_sandbox::known_engine_classes().map(std::sync::Arc::from).collect());
    match known.iter().find(|class| ***class == *engine) {
        Some(class) => class.clone(),
        None => std::sync::Arc::from(wasmhive_protocol::printable(engine, ENGINE_CHARS_MAX)),
    }
}

/// The job and unit of a lease the reporting worker holds.
pub struct LeaseTarget {
    job: std::sync::Arc<JobRuntime>,
    unit_index: u64,
}

/// An outcome batch as it arrived, each report with its lease's target (`None`: a lease
/// the worker does not hold, which the core ignores).
pub struct ReceivedOutcomes {
    reports: Vec<OutcomeReport>,
    targets: Vec<Option<LeaseTarget>>,
}

/// A batch refused whole: one of its outputs is larger than its job allows, or travels in
/// the wrong form (a worker checks both before it reports, so only a broken or hostile one
/// sends this).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutputRefused {
    #[error("the outcome of lease {lease_id} is {bytes} bytes, over the job's output limit of {limit} bytes")]
    OverLimit { lease_id: LeaseId, bytes: u64, limit: u64 },
    #[error(
        "the outcome of lease {lease_id} carries {bytes} bytes inline; outputs above {} bytes travel as blobs",
        OUTPUT_INLINE_BYTES_MAX
    )]
    InlineTooLarge { lease_id: LeaseId, bytes: u64 },
    #[error(
        "the outcome of lease {lease_id} names an output blob of {bytes} bytes (with {inline} bytes inline); \
         outputs of at most {} bytes travel inline, and a blob output has no inline bytes",
        OUTPUT_INLINE_BYTES_MAX
    )]
    NeedlessBlob { lease_id: LeaseId, bytes: u64, inline: usize },
}

/// Every outcome's output is in its form (inline up to the inline limit, a blob above it)
/// and fits its job's output limit: checked before anything is fetched or run on it.
pub fn check_outputs(
    reports: &[OutcomeReport],
    targets: &[Option<LeaseTarget>],
) -> Result<(), OutputRefused> {
    for (report, target) in reports.iter().zip(targets) {
        let lease_id = report.lease_id;
        let bytes = match report.output_blob {
            Some(blob) if blob.size <= OUTPUT_INLINE_BYTES_MAX || !report.output.is_empty() => {
                return Err(OutputRefused::NeedlessBlob {
                    lease_id,
                    bytes: blob.size,
                    inline: report.output.len(),
                });
            }
            Some(blob) => blob.size,
            None if report.output.len() as u64 > OUTPUT_INLINE_BYTES_MAX => {
                return Err(OutputRefused::InlineTooLarge { lease_id, bytes: report.output.len() as u64 });
            }
            None => report.output.len() as u64,
        };
        let Some(target) = target else { continue };
        let limit = target.job.stored.limits.output_bytes;
        if bytes > limit {
            return Err(OutputRefused::OverLimit { lease_id, bytes, limit });
        }
    }
    Ok(())
}

impl ReceivedOutcomes {
    /// Checks the batch's outputs ([`check_outputs`]).
    pub fn check_outputs(&self) -> Result<(), OutputRefused> {
        check_outputs(&self.reports, &self.targets)
    }

    /// Takes out the reports of leases the worker holds whose output blob is not in
    /// `blobs`: they are recorded once it is fetched. Reports of leases it does not hold
    /// stay (the core ignores them; nothing is fetched for them).
    pub fn take_outputs_to_fetch(
        &mut self,
        blobs: &wasmhive_blobs::BlobStore,
    ) -> Vec<(BlobRef, OutcomeReport)> {
        let mut to_fetch = Vec::new();
        let mut position = 0;
        while position < self.reports.len() {
            let missing = self.reports[position].output_blob.filter(|blob| !blobs.has(&blob.hash));
            match missing {
                Some(blob) if self.targets[position].is_some() => {
                    self.targets.remove(position);
                    to_fetch.push((blob, self.reports.remove(position)));
                }
                _ => position += 1,
            }
        }
        to_fetch
    }

    /// Whether no report is left.
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerSeen;

    #[test]
    fn the_engine_a_stranger_names_is_stored_short_and_printable() {
        // A hello may be 4 KiB: the engine is stored with every replica the worker returns.
        let forged = format!("wasmtime\n2026-12-02 INFO forged log line\u{1b}[31m{}", "x".repeat(3_000));
        let seen = WorkerSeen::new("worker", &forged);
        assert!(seen.engine.chars().count() <= super::ENGINE_CHARS_MAX, "{} characters", seen.engine.len());
        assert!(!seen.engine.chars().any(char::is_control), "{:?}", seen.engine);
        let known = wasmhive_sandbox::engine_class_name("x86_64");
        let [one, other] = [WorkerSeen::new("one", &known), WorkerSeen::new("other", &known)];
        assert_eq!(&*one.engine, known);
        assert!(std::sync::Arc::ptr_eq(&one.engine, &other.engine), "sessions share a known class's name");
    }
}

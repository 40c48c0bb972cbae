//! When a batch of outcomes cannot be committed (a full disk, an I/O error), the core has
//! already decided its units: the core's state of those jobs is rebuilt from the store, so
//! the units of the lost batch are leased and decided again and nothing acknowledged is
//! lost (the workers were not acknowledged; their later outcomes for the old leases are
//! ignored as unknown leases). Rebuilding happens on the store writer's thread, between two
//! of its commits (`store_writer.rs`), and gives the jobs a new generation: batches recorded
//! before it are refused.

use super::state::{Coordinator, policy_of};
use crate::store::{Store, StoreError, StoreFault, StoreResult};

impl Coordinator {
    /// A batch touching `job_ids` was not committed: nothing is acknowledged, and those
    /// jobs' core state goes back to what `store` (the writer's connection) holds.
    pub(super) fn commit_failed<'a>(
        &self,
        error: &StoreError,
        store: &Store,
        job_ids: impl Iterator<Item = &'a str>,
    ) {
        tracing::error!(%error, "committing outcomes failed; they are not acknowledged");
        let mut job_ids: Vec<String> = job_ids.map(str::to_string).collect();
        job_ids.dedup();
        if let Err(error) = self.rebuild_jobs_from_store(store, &job_ids) {
            tracing::error!(%error, "the store cannot be read either; the jobs resume at the next start");
        }
    }

    /// Replaces the core's state of `job_ids` with what the store holds.
    fn rebuild_jobs_from_store(&self, store: &Store, job_ids: &[String]) -> StoreResult<()> {
        for job_id in job_ids {
            let Some(job) = self.job(job_id) else { continue };
            let resume = store.resume_state(job_id)?;
            let mut core = self.core.lock().expect("core lock");
            if core.job_generation(job_id).is_none() {
                continue; // completed or cancelled meanwhile
            }
            core.remove_job(job_id);
            core.add_job(job_id, job.stored.unit_count, policy_of(&job.stored), resume);
            tracing::warn!(job = %job_id, "rebuilt the job's state from the store after a failed commit");
        }
        Ok(())
    }

    /// Whether every job a batch touched is still in the generation the batch was recorded
    /// in (a job the core no longer holds, completed or cancelled, counts as current).
    pub(super) fn recorded_in_current_generation(&self, generations: &[(String, u64)]) -> bool {
        let core = self.core.lock().expect("core lock");
        generations.iter().all(|(job_id, generation)| {
            core.job_generation(job_id).is_none_or(|current| current == *generation)
        })
    }

    /// Makes the store fail (see [`StoreFault`]), or work again (fault-injection tests):
    /// both the readers' connection and the writer's.
    pub fn inject_store_fault(&self, fault: Option<StoreFault>) -> StoreResult<()> {
        self.store.lock().expect("store lock").inject_fault(fault)?;
        self.store_writer.inject_fault(fault)
    }
}

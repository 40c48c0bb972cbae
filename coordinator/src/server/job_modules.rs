//! The job's own wasm modules, run by the owner in its own sandbox: the *validator* (do two
//! outputs agree?), the *reducer* (fold the accepted outputs into one final result,
//! BOINC's assimilator), and the task itself when a dispute needs the owner's own answer
//! (`arbitration.rs`).
//!
//! Both run under the job's limits (fuel, memory, output, wall time) with the same
//! deterministic ABI as units. A validator exits 0 when the two outputs agree and 1 when
//! they differ; anything else (a trap, another exit code) counts as "differ", so a broken
//! validator can only make a unit need more replicas, never accept a wrong one. Its stdin
//! is the first output's length in decimal, a newline, the first output, the second.
//! A reducer's stdin is every accepted successful output concatenated in unit order, at
//! most [`REDUCER_INPUT_BYTES_MAX`]; its stdout is the job's reduced result.
//!
//! Invariants: validation is serialised per owner (a replica is compared with the classes
//! already stored before it is stored itself); which class a replica joins is the core's
//! rule (`core/validator_classes.rs`), so the core's quorum by digest counts agreeing
//! replicas.

use super::job_runtime::JobRuntime;
use super::state::{ApiProblem, Coordinator};
use crate::core::class_of;
use crate::store::{Store, StoredReduction};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;
use wasmhive_protocol::Hash;
use wasmhive_protocol::Status;
use wasmhive_protocol::api::JobLimits;
use wasmhive_protocol::api::JobState;
use wasmhive_sandbox::{
    FileSource, Limits, ModuleBytes, Outcome, Sandbox, SandboxConfig, SharedFile, UnitRequest,
};

/// Most bytes a reducer reads (the accepted outputs of the whole job).
pub const REDUCER_INPUT_BYTES_MAX: usize = 256 << 20;

/// Unit index given to validator and reducer runs (outside any job's units).
const OWNER_RUN_UNIT: u64 = u64::MAX;

/// The owner's sandbox, created on first use: jobs without modules of their own never
/// start an engine on the owner.
pub struct OwnerSandbox {
    sandbox: OnceLock<Sandbox>,
}

/// What a job's module run needs from the job.
pub struct JobContext<'a> {
    pub job_id: &'a str,
    pub limits: &'a JobLimits,
    pub job_time_s: u64,
    pub nan_canonicalization: bool,
}

impl OwnerSandbox {
    pub fn new() -> OwnerSandbox {
        OwnerSandbox { sandbox: OnceLock::new() }
    }

    /// Runs the validator on two outputs: `true` only when it exits 0.
    pub fn outputs_agree(
        &self,
        job: &JobContext<'_>,
        validator: &ModuleBytes,
        first: &[u8],
        second: &[u8],
    ) -> bool {
        let mut input = format!("{}\n", first.len()).into_bytes();
        input.extend_from_slice(first);
        input.extend_from_slice(second);
        match self.run(
            job,
            validator,
            ("validator", &[], OWNER_RUN_UNIT),
            (FileSource::Memory(input.into()), &[]),
        ) {
            Ok(outcome) => outcome.status.is_success(),
            Err(error) => {
                tracing::warn!(job = %job.job_id, %error, "the validator could not run; the outputs count as different");
                false
            }
        }
    }

    /// Runs the reducer over the accepted outputs.
    pub fn reduce(
        &self,
        job: &JobContext<'_>,
        reducer: &ModuleBytes,
        outputs: &[u8],
    ) -> Result<Outcome, String> {
        self.run(job, reducer, ("reducer", &[], OWNER_RUN_UNIT), (FileSource::Memory(outputs.into()), &[]))
    }

    /// Runs `module` under the job's limits: a validator or reducer (named so, at no unit),
    /// or one of the job's units as a worker would run it (same module, input, task name,
    /// arguments and unit index), for the owner's own answer to a dispute.
    pub fn run(
        &self,
        job: &JobContext<'_>,
        module: &ModuleBytes,
        (task_name, args, unit_index): (&str, &[String], u64),
        (input, shared): (FileSource, &[SharedFile]),
    ) -> Result<Outcome, String> {
        let sandbox = self.sandbox.get_or_init(|| Sandbox::new(SandboxConfig::default()));
        let limits = Limits::for_job(job.limits);
        let request = UnitRequest {
            module,
            input,
            shared,
            task_name,
            args,
            job_id: job.job_id,
            unit_index,
            job_time: Duration::from_secs(job.job_time_s),
            limits: &limits,
            nan_canonicalization: job.nan_canonicalization,
        };
        sandbox.run(&request).map_err(|error| error.to_string())
    }
}

/// Runs a completed job's reducer over its accepted outputs and stores the reduced result
/// (on its own thread with its own store connection: a reduction can take a while).
pub fn reduce_job(
    store_path: &Path,
    blobs: &wasmhive_blobs::BlobStore,
    job: &JobRuntime,
    sandbox: &OwnerSandbox,
) {
    let Some(reducer) = &job.reducer else { return };
    let job_id = &job.stored.job_id;
    let saved = Store::open(store_path).and_then(|mut store| {
        let reduction = match store.accepted_outputs(job_id, REDUCER_INPUT_BYTES_MAX, blobs)? {
            Ok(outputs) => match sandbox.reduce(&job.context(), reducer, &outputs) {
                Ok(outcome) => StoredReduction {
                    message: String::from_utf8_lossy(&outcome.stderr).trim().to_string(),
                    status: outcome.status,
                    output: outcome.stdout,
                },
                Err(error) => failed_reduction(error),
            },
            Err(too_large) => failed_reduction(too_large),
        };
        tracing::info!(job = %job_id, status = %reduction.status, "job reduced");
        store.save_reduction(job_id, &reduction)
    });
    if let Err(error) = saved {
        tracing::error!(job = %job_id, %error, "the reduction could not be stored; it runs again on restart");
    }
}

fn failed_reduction(message: String) -> StoredReduction {
    StoredReduction { status: Status::InvalidModule { reason: message.clone() }, output: Vec::new(), message }
}

/// How a reduction ended, for status pages.
pub fn reduction_summary(status: &Status, message: &str) -> String {
    if status.is_success() { "done".to_string() } else { format!("failed: {status}; {message}") }
}

/// The owner's side of validators and reducers.
impl Coordinator {
    /// The digest a successful replica counts under for a job with a validator: its class,
    /// by the core's rule (`core/validator_classes.rs`), the validator run here against each
    /// class's first stored output.
    pub(super) fn class_digest(
        &self,
        job: &JobRuntime,
        unit_index: u64,
        digest: Hash,
        output: &[u8],
    ) -> Hash {
        let validator = job.validator.as_ref().expect("only jobs with a validator are classified");
        let job_id = &job.stored.job_id;
        let classes = self.core.lock().expect("core lock").replica_classes(job_id, unit_index);
        class_of(digest, &classes, |class| {
            let stored = self.store.lock().expect("store lock").class_output(job_id, unit_index, class);
            match stored {
                Ok(Some(stored)) => {
                    self.owner_sandbox.outputs_agree(&job.context(), validator, &stored, output)
                }
                Ok(None) => false,
                Err(error) => {
                    tracing::error!(%error, "reading a class's output failed; the replica does not join it");
                    false
                }
            }
        })
    }

    /// Runs the job's reducer on its own thread, when it has one.
    pub(super) fn start_reduction(&self, job_id: &str) {
        let Some(job) = self.job(job_id).filter(|job| job.reducer.is_some()) else { return };
        let (store_path, sandbox, blobs) =
            (self.store_path.clone(), self.owner_sandbox.clone(), self.blobs.clone());
        std::thread::Builder::new()
            .name(format!("reduce {job_id}"))
            .spawn(move || reduce_job(&store_path, &blobs, &job, &sandbox))
            .map_or_else(|error| tracing::error!(%error, "cannot start a reduction thread"), drop);
    }

    /// A crash between a job's completion and its reduction: reduce it now.
    pub(super) fn reduce_completed_jobs_without_reduction(&self) {
        let job_ids: Vec<String> = self.jobs.read().expect("jobs lock").keys().cloned().collect();
        for job_id in job_ids {
            let completed = self.stored_state(&job_id) == Some(JobState::Completed);
            let reduced = self.store.lock().expect("store lock").reduction(&job_id).ok().flatten().is_some();
            if completed && !reduced {
                self.start_reduction(&job_id);
            }
        }
    }

    /// The job's reduced result: `Ok(None)` while it has none (yet).
    pub fn reduction(&self, job_id: &str) -> Result<Option<StoredReduction>, ApiProblem> {
        self.job(job_id).ok_or_else(|| ApiProblem::not_found(job_id))?;
        self.store.lock().expect("store lock").reduction(job_id).map_err(ApiProblem::internal)
    }

    /// `running`, `done` or `failed: ...` for a job with a reducer, else `None`.
    pub(super) fn reduction_state(&self, job: &JobRuntime, state: JobState) -> Option<String> {
        job.reducer.as_ref()?;
        match self.store.lock().expect("store lock").reduction(&job.stored.job_id) {
            Ok(Some(reduction)) => Some(reduction_summary(&reduction.status, &reduction.message)),
            _ if state == JobState::Completed => Some("running".to_string()),
            _ => Some("waiting for the job".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(limits: &JobLimits) -> JobContext<'_> {
        JobContext { job_id: "job", limits, job_time_s: 0, nan_canonicalization: true }
    }

    fn limits() -> JobLimits {
        JobLimits {
            fuel: None,
            memory_bytes: 64 << 20,
            output_bytes: 1 << 20,
            lease_ms: 60_000,
            timeout_ms: 5_000,
        }
    }

    #[test]
    fn the_validator_decides_agreement_and_a_broken_one_never_agrees() {
        let sandbox = OwnerSandbox::new();
        let limits = limits();
        let tolerant = ModuleBytes::new(task_modules::TOLERANT_COMPARE.to_vec());
        assert!(sandbox.outputs_agree(
            &context(&limits),
            &tolerant,
            b"pi 3.141592653589793\n",
            b"pi   3.1415926535897931"
        ));
        assert!(!sandbox.outputs_agree(&context(&limits), &tolerant, b"pi 3.14", b"pi 3.15"));
        let broken = ModuleBytes::new(task_modules::PROBE.to_vec());
        assert!(
            !sandbox.outputs_agree(&context(&limits), &broken, b"same", b"same"),
            "an unknown probe mode exits 2"
        );
        let garbage = ModuleBytes::new(b"not wasm".to_vec());
        assert!(!sandbox.outputs_agree(&context(&limits), &garbage, b"same", b"same"));
    }

    #[test]
    fn the_reducer_folds_outputs() {
        let sandbox = OwnerSandbox::new();
        let limits = limits();
        let reducer = ModuleBytes::new(task_modules::SUM_COLUMNS.to_vec());
        let outcome = sandbox.reduce(&context(&limits), &reducer, b"4\n21\n").unwrap();
        assert_eq!((outcome.status, outcome.stdout), (Status::Success, b"25\n".to_vec()));
    }
}

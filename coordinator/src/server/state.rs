//! The coordinator's state: the core, the store, the jobs' runtime data and the token.

use super::activity::Activity;
use super::connections::Connections;
use super::job_modules::OwnerSandbox;
use super::job_runtime::{GrantedLease, JobRuntime, LeaseInput};
use super::metrics::GridMetrics;
use super::store_writer::StoreWriter;
use super::submission::{check_blob_inputs, new_job_id, validate_submission};
use super::token::read_or_create_token;
use crate::core::{AdaptivePolicy, Core, EngineClass, JobPolicy, LeaseId, Network, Reputation};
use crate::job_spec::unit_count;
use crate::store::{Store, StoreError, StoredResult};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use wasmhive_protocol::api::JobState;
use wasmhive_protocol::api::{
    ConnectedWorker, CreditRow, JobStatus, JobSubmission, SubmitAnswer, VerifyPolicy, WorkerReputation,
};
use wasmhive_protocol::{CreditSoFar, Hash, Message};
use wasmhive_transport::{TlsIdentity, load_or_create_peer_key};

/// A problem opening the coordinator.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("cannot use the data directory {path}: {source}")]
    DataDirectory { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    PeerKey(#[from] wasmhive_transport::KeyFileError),
    #[error(transparent)]
    Blobs(#[from] wasmhive_blobs::BlobError),
}

/// A request the API refuses, with the HTTP status to answer.
#[derive(Debug)]
pub struct ApiProblem {
    pub status: u16,
    pub message: String,
}

impl ApiProblem {
    pub fn bad_request(message: impl Into<String>) -> ApiProblem {
        ApiProblem { status: 400, message: message.into() }
    }

    pub fn not_found(job_id: &str) -> ApiProblem {
        ApiProblem { status: 404, message: format!("no job {job_id:?}; `wasmhive status` lists the jobs") }
    }

    pub fn internal(error: impl std::fmt::Display) -> ApiProblem {
        ApiProblem { status: 500, message: error.to_string() }
    }
}

/// Bytes of uploaded blobs the owner keeps by default (`--blob-cache`): beyond it, the
/// least recently used blobs no running job reads are evicted when a job ends and after
/// each upload.
const BLOB_STORE_BYTES_MAX: u64 = 256 << 30;

/// Most leases one `request_work` may ask for.
pub const SLOTS_PER_REQUEST_MAX: u32 = 1024;
/// Input bytes of one `leases` message at most (base64 makes it 4/3 larger on the wire,
/// still under the 64 MiB frame limit).
pub const LEASE_BATCH_INPUT_BYTES_MAX: usize = 24 << 20;

pub struct Coordinator {
    pub(super) core: Mutex<Core>,
    /// Blobs uploaded to this owner (`api_blobs.rs`), on disk under `blobs/`.
    pub(super) blobs: Arc<wasmhive_blobs::BlobStore>,
    pub(super) store: Mutex<Store>,
    pub(super) jobs: RwLock<HashMap<String, Arc<JobRuntime>>>,
    pub(super) connections: Mutex<Connections>,
    pub(super) token: String,
    pub(super) token_path: PathBuf,
    /// The owner's peer key as TLS wants it; its id is what workers are told in `welcome`.
    pub(super) tls_identity: TlsIdentity,
    pub(super) started: Instant,
    /// Unix milliseconds at `started`: converts the core's clock for the store.
    pub(super) started_unix_ms: u64,
    /// Where blobs that are not our jobs' modules come from (a peer's module cache).
    pub(super) blob_source: RwLock<Option<BlobSource>>,
    /// Runs jobs' validators and reducers.
    pub(super) owner_sandbox: Arc<OwnerSandbox>,
    /// Held while outcomes of jobs with a validator are classified and committed.
    pub(super) validation: Mutex<()>,
    /// The store's file (a reduction opens its own connection on its own thread).
    pub(super) store_path: PathBuf,
    pub(super) metrics: GridMetrics,
    pub(super) activity: Mutex<Activity>,
    /// Woken when the core has disputes for the owner's own run (`arbitration.rs`).
    pub(super) arbitrations_waiting: tokio::sync::Notify,
    /// Commits outcome batches on a connection and thread of its own (`store_writer.rs`).
    pub(super) store_writer: StoreWriter,
    /// Woken whenever a job ends (completed or cancelled): see [`Coordinator::job_ended`].
    pub(super) jobs_ended: tokio::sync::Notify,
    /// `--upload-rate`: pieces sent to workers wait their turn on it (none: no limit).
    pub(super) upload_budget: std::sync::OnceLock<Arc<Mutex<wasmhive_blobs::UploadBudget>>>,
    /// Output blobs a worker session is fetching (one fetch per blob at a time).
    pub(super) output_fetches: super::output_fetches::FetchesUnderWay,
}

/// Looks up cached blobs by hash.
pub type BlobSource = Box<dyn Fn(&Hash) -> Option<Vec<u8>> + Send + Sync>;

impl Coordinator {
    /// Opens (or creates) the coordinator's data directory and resumes every running job.
    pub fn open(data_dir: &Path) -> Result<Arc<Coordinator>, CoordinatorError> {
        let directory_error =
            |source| CoordinatorError::DataDirectory { path: data_dir.to_path_buf(), source };
        wasmhive_transport::create_private_dir(data_dir).map_err(directory_error)?;
        let token_path = data_dir.join("token");
        let token = read_or_create_token(&token_path).map_err(directory_error)?;
        let tls_identity = TlsIdentity::new(&load_or_create_peer_key(data_dir)?);
        let store_path = data_dir.join("coordinator.sqlite");
        let store = Store::open_for_readers(&store_path)?;
        let started_unix_ms = unix_ms();
        let secret_seed = getrandom::u64().map_err(|error| CoordinatorError::DataDirectory {
            path: data_dir.to_path_buf(),
            source: std::io::Error::other(format!("no OS randomness for the owner's draws: {error}")),
        })?;
        let mut core = Core::with_first_lease_id(started_unix_ms.max(1) << 12, secret_seed);
        for (worker_id, reputation) in store.reputations()? {
            core.restore_reputation(&worker_id, reputation.in_clock(started_unix_ms, false));
        }
        let mut jobs = HashMap::new();
        for stored in store.jobs()? {
            if stored.state == JobState::Running {
                let resume = store.resume_state(&stored.job_id)?;
                core.add_job(&stored.job_id, stored.unit_count, policy_of(&stored), resume);
            }
            jobs.insert(stored.job_id.clone(), Arc::new(JobRuntime::load(stored, &store)?));
        }
        let running: Vec<String> = core.job_ids().map(|job_id| job_id.to_string()).collect();
        let writer_store = Store::open(&store_path)?;
        let blobs = Arc::new(wasmhive_blobs::BlobStore::open(&data_dir.join("blobs"), BLOB_STORE_BYTES_MAX)?);
        let mut writer_failed = None;
        let coordinator = Arc::new_cyclic(|weak| {
            let store_writer = StoreWriter::start(writer_store, weak.clone()).unwrap_or_else(|error| {
                writer_failed = Some(error);
                StoreWriter::stopped()
            });
            Coordinator {
                core: Mutex::new(core),
                blobs,
                store: Mutex::new(store),
                jobs: RwLock::new(jobs),
                connections: Mutex::new(Connections::default()),
                token,
                token_path,
                tls_identity,
                started: Instant::now(),
                started_unix_ms,
                blob_source: RwLock::new(None),
                owner_sandbox: Arc::new(OwnerSandbox::new()),
                validation: Mutex::new(()),
                store_path,
                metrics: GridMetrics::new(),
                activity: Mutex::new(Activity::default()),
                arbitrations_waiting: tokio::sync::Notify::new(),
                store_writer,
                jobs_ended: tokio::sync::Notify::new(),
                upload_budget: std::sync::OnceLock::new(),
                output_fetches: Default::default(),
            }
        });
        if let Some(source) = writer_failed {
            return Err(CoordinatorError::DataDirectory { path: data_dir.to_path_buf(), source });
        }
        // A crash between a job's last commit and marking it completed leaves it running
        // with nothing left to decide: finish it now, as the next commit would have.
        coordinator.finish_completed_jobs(running.iter().map(String::as_str));
        coordinator.reduce_completed_jobs_without_reduction();
        Ok(coordinator)
    }

    pub fn token_path(&self) -> &Path {
        &self.token_path
    }

    /// The owner's proven identity: its peer key's certificate.
    pub fn tls_identity(&self) -> &TlsIdentity {
        &self.tls_identity
    }

    pub fn owner_id(&self) -> &str {
        &self.tls_identity.peer_id
    }

    /// True when `presented` is this coordinator's token.
    pub fn token_matches(&self, presented: &str) -> bool {
        let expected = self.token.as_bytes();
        let presented = presented.as_bytes();
        expected.len() == presented.len()
            && expected.iter().zip(presented).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(super) fn job(&self, job_id: &str) -> Option<Arc<JobRuntime>> {
        self.jobs.read().expect("jobs lock").get(job_id).cloned()
    }

    /// Validates and stores a job, then starts handing out its units.
    pub fn submit(&self, submission: JobSubmission) -> Result<SubmitAnswer, ApiProblem> {
        validate_submission(&submission)?;
        if let wasmhive_protocol::api::JobInputs::Blobs { blobs } = &submission.inputs {
            check_blob_inputs(&self.blobs, blobs)?;
        }
        check_blob_inputs(&self.blobs, &submission.shared)?;
        let units = unit_count(&submission.inputs);
        let job_id = new_job_id(&submission.name);
        let created_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
        self.store
            .lock()
            .expect("store lock")
            .insert_job(&job_id, &submission, units, created_s)
            .map_err(ApiProblem::internal)?;
        let stored = self
            .store
            .lock()
            .expect("store lock")
            .job(&job_id)
            .map_err(ApiProblem::internal)?
            .ok_or_else(|| ApiProblem::internal("the job vanished after it was stored"))?;
        let policy = policy_of(&stored);
        let runtime = Arc::new(
            JobRuntime::load(stored, &self.store.lock().expect("store lock"))
                .map_err(ApiProblem::internal)?,
        );
        self.jobs.write().expect("jobs lock").insert(job_id.clone(), runtime);
        self.core.lock().expect("core lock").add_job(&job_id, units, policy, Default::default());
        tracing::info!(job = %job_id, units, "job submitted");
        self.wake_waiting_workers(usize::try_from(units).unwrap_or(usize::MAX));
        Ok(SubmitAnswer { job_id, units })
    }

    /// When the job's first lease was built in this run of the owner (benchmarks measure
    /// submit-to-first-lease with it).
    pub fn first_lease_at(&self, job_id: &str) -> Option<Instant> {
        self.job(job_id)?.first_lease.get().copied()
    }

    /// Returns once the job is no longer running (completed or cancelled; at once for an
    /// unknown job), without polling: woken by the job's end.
    pub async fn job_ended(&self, job_id: &str) {
        loop {
            let ended = self.jobs_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable(); // registered before the check: no end slips between
            let running = self.core.lock().expect("core lock").job_generation(job_id).is_some();
            if !running {
                return;
            }
            ended.await;
        }
    }

    /// (store transactions, outcome batches) committed so far: with group commit, many
    /// batches share one transaction and its fsync (benchmarks report both).
    pub fn outcome_commits(&self) -> (u64, u64) {
        (self.metrics.outcome_commits.get(), self.metrics.outcome_batches_committed.get())
    }

    /// Credit per (job, worker), for one job or all.
    pub fn credits(&self, job_id: Option<&str>) -> Result<Vec<CreditRow>, ApiProblem> {
        let credits = self.store.lock().expect("store lock").credits(job_id).map_err(ApiProblem::internal)?;
        Ok(credits
            .into_iter()
            .map(|credit| {
                let metered = self.job(&credit.job_id).is_some_and(|job| job.stored.limits.fuel.is_some());
                CreditRow {
                    job_id: credit.job_id,
                    worker_id: credit.worker_id,
                    replicas: credit.replicas,
                    credit: credit.amount,
                    measure: if metered { "fuel" } else { "units" }.to_string(),
                }
            })
            .collect())
    }

    /// What this owner has credited one worker so far, over all its jobs.
    pub fn credit_of_worker(&self, worker_id: &str) -> Option<CreditSoFar> {
        let store = self.store.lock().expect("store lock");
        store.credit_of_worker(worker_id).ok().map(|(replicas, amount)| CreditSoFar { replicas, amount })
    }

    /// Accepted replicas per worker id over all of this owner's jobs (for reciprocity).
    pub fn replicas_per_worker(&self) -> HashMap<String, u64> {
        self.store.lock().expect("store lock").replicas_per_worker().unwrap_or_else(|error| {
            tracing::error!(%error, "reading credit failed");
            HashMap::new()
        })
    }

    /// Every worker this owner has judged, with its reputation (quarantine in seconds left).
    pub fn reputations(&self) -> Vec<WorkerReputation> {
        let now_ms = self.now_ms();
        self.core
            .lock()
            .expect("core lock")
            .reputations()
            .into_iter()
            .map(|(worker_id, reputation)| worker_reputation(worker_id, &reputation, now_ms))
            .collect()
    }

    /// One worker's reputation, if this owner has judged it.
    pub fn reputation(&self, worker_id: &str) -> Option<WorkerReputation> {
        let reputation = self.core.lock().expect("core lock").reputation(worker_id)?;
        Some(worker_reputation(worker_id.to_string(), &reputation, self.now_ms()))
    }

    /// Running jobs with undecided units, and how many (from the core alone: cheap).
    pub fn jobs_with_undecided_units(&self) -> Vec<(String, u64)> {
        let core = self.core.lock().expect("core lock");
        let ids: Vec<String> = core.job_ids().map(|job_id| job_id.to_string()).collect();
        ids.into_iter()
            .filter_map(|job_id| {
                let progress = core.progress(&job_id)?;
                let undecided = progress.units - progress.decided();
                (undecided > 0).then_some((job_id, undecided))
            })
            .collect()
    }

    pub fn statuses(&self) -> Vec<JobStatus> {
        let mut ids: Vec<String> = self.jobs.read().expect("jobs lock").keys().cloned().collect();
        ids.sort();
        let workers = self.connected_workers();
        let mut statuses: Vec<JobStatus> =
            ids.iter().filter_map(|id| self.status_given(id, &workers)).collect();
        statuses.sort_by_key(|status| status.created_s);
        statuses
    }

    pub fn status(&self, job_id: &str) -> Option<JobStatus> {
        self.status_given(job_id, &self.connected_workers())
    }

    /// A job's status, explained against the workers connected now (read once for a list).
    fn status_given(&self, job_id: &str, workers: &[ConnectedWorker]) -> Option<JobStatus> {
        let job = self.job(job_id)?;
        let stored = &job.stored;
        let progress = self.core.lock().expect("core lock").progress(job_id);
        let (verified, failed, leased, state) = match progress {
            Some(progress) => (progress.succeeded, progress.failed, progress.leased, JobState::Running),
            None => {
                let counts = self.store.lock().expect("store lock").result_counts(job_id).unwrap_or((0, 0));
                (counts.0, counts.1, 0, self.stored_state(job_id).unwrap_or(stored.state))
            }
        };
        let reduced = self.reduction_state(&job, state);
        let units_left = stored.unit_count.saturating_sub(verified + failed);
        let (eta_s, waiting_for) = match progress {
            Some(_) => {
                let eta_s = self.activity.lock().expect("activity lock").eta_s(job_id, units_left);
                (eta_s, self.why_job_waits(&job, workers))
            }
            None => (None, None),
        };
        Some(JobStatus {
            job_id: job_id.to_string(),
            name: stored.name.clone(),
            state,
            units: stored.unit_count,
            verified,
            failed,
            leased,
            quorum: stored.quorum,
            module: stored.module_hash,
            created_s: stored.created_s,
            reduced,
            eta_s,
            waiting_for,
        })
    }

    pub(super) fn stored_state(&self, job_id: &str) -> Option<JobState> {
        self.store.lock().expect("store lock").job(job_id).ok()?.map(|job| job.state)
    }

    /// Stops a job: no more leases; open leases are cancelled on their workers.
    pub fn cancel(&self, job_id: &str) -> Result<JobStatus, ApiProblem> {
        if self.job(job_id).is_none() {
            return Err(ApiProblem::not_found(job_id));
        }
        let cancelled = self.core.lock().expect("core lock").remove_job(job_id);
        self.store
            .lock()
            .expect("store lock")
            .set_job_state(job_id, JobState::Cancelled)
            .map_err(ApiProblem::internal)?;
        let mut by_worker: HashMap<crate::core::WorkerId, Vec<LeaseId>> = HashMap::new();
        for (worker_id, lease_id) in cancelled {
            by_worker.entry(worker_id).or_default().push(lease_id);
        }
        let connections = self.connections.lock().expect("connections lock");
        for (worker_id, lease_ids) in by_worker {
            connections.push_to(&worker_id, &Message::Cancel { lease_ids });
        }
        drop(connections);
        self.jobs_ended.notify_waiters();
        tracing::info!(job = %job_id, "job cancelled");
        self.evict_blobs(None);
        self.status(job_id).ok_or_else(|| ApiProblem::not_found(job_id))
    }

    /// Leases for a worker asking for `slots` more. The batch's inputs stay under
    /// [`LEASE_BATCH_INPUT_BYTES_MAX`] so it fits one message; the rest go back to the queue.
    pub fn request_work(
        &self,
        worker_id: &str,
        network: &Network,
        slots: u32,
    ) -> Result<Vec<GrantedLease>, StoreError> {
        let slots = slots.min(SLOTS_PER_REQUEST_MAX);
        let now_ms = self.now_ms();
        let grants = self.core.lock().expect("core lock").request_work(worker_id, network, slots, now_ms);
        // The store only for stored inputs: a range job's leases never wait for a commit.
        let mut store = None;
        let mut leases = Vec::with_capacity(grants.len());
        let mut input_bytes = 0;
        let mut unsent = Vec::new();
        for grant in grants {
            let Some(job) = self.job(&grant.job_id) else { continue };
            let input = match job.range_input(grant.unit_index) {
                Some(text) => LeaseInput::Bytes(text.into_bytes()),
                None => {
                    let store = store.get_or_insert_with(|| self.store.lock().expect("store lock"));
                    job.lease_input(store, &self.blobs, grant.unit_index)?
                }
            };
            if !leases.is_empty() && input_bytes + input.inline_bytes() > LEASE_BATCH_INPUT_BYTES_MAX {
                unsent.push(grant.lease_id);
                continue;
            }
            input_bytes += input.inline_bytes();
            job.first_lease.get_or_init(Instant::now);
            leases.push(GrantedLease::new(job, grant.lease_id, grant.unit_index, input));
        }
        drop(store);
        if !unsent.is_empty() {
            self.core.lock().expect("core lock").return_leases(worker_id, &unsent);
        }
        self.metrics.units_leased.inc_by(leases.len() as u64);
        Ok(leases)
    }

    pub fn return_leases(&self, worker_id: &str, lease_ids: &[LeaseId]) {
        self.core.lock().expect("core lock").return_leases(worker_id, lease_ids);
        self.wake_waiting_workers(lease_ids.len());
    }

    pub fn expire_leases(&self) {
        let now_ms = self.now_ms();
        let expired = self.core.lock().expect("core lock").expire_leases(now_ms);
        if !expired.is_empty() {
            tracing::info!(count = expired.len(), "leases expired and were re-queued");
            self.wake_waiting_workers(expired.len());
        }
    }

    /// A blob by hash: one of our jobs' modules, else one the blob source has cached, so any
    /// peer that holds a module can serve it.
    pub fn module(&self, hash: &Hash) -> Option<Arc<Vec<u8>>> {
        let jobs = self.jobs.read().expect("jobs lock");
        if let Some(job) = jobs.values().find(|job| job.stored.module_hash == *hash) {
            return Some(job.module.clone());
        }
        drop(jobs);
        let source = self.blob_source.read().expect("blob source lock");
        source.as_ref().and_then(|source| source(hash)).map(Arc::new)
    }

    /// Serves blobs from `source` too (a peer passes its module cache).
    pub fn set_blob_source(&self, source: BlobSource) {
        *self.blob_source.write().expect("blob source lock") = Some(source);
    }

    /// A page of a job's results with each unit's input label.
    pub fn results_page(
        &self,
        job_id: &str,
        from_unit: u64,
        limit: u32,
    ) -> Result<Vec<(String, StoredResult)>, ApiProblem> {
        let job = self.job(job_id).ok_or_else(|| ApiProblem::not_found(job_id))?;
        let store = self.store.lock().expect("store lock");
        let page = store.results_page(job_id, from_unit, limit).map_err(ApiProblem::internal)?;
        page.into_iter()
            .map(|result| {
                let label = job.unit_label(&store, result.unit_index).map_err(ApiProblem::internal)?;
                Ok((label, result))
            })
            .collect()
    }
}

fn worker_reputation(worker_id: String, reputation: &Reputation, now_ms: u64) -> WorkerReputation {
    WorkerReputation {
        worker_id,
        trust: reputation.trust(),
        valid: reputation.valid,
        invalid: reputation.invalid,
        consecutive_valid: reputation.consecutive_valid,
        unfinished: reputation.unfinished,
        quarantined_for_s: quarantined_for_s(reputation, now_ms),
        banned: reputation.is_banned(),
    }
}

/// Seconds of quarantine left, when quarantined for a while (not banned).
pub(super) fn quarantined_for_s(reputation: &Reputation, now_ms: u64) -> Option<u64> {
    reputation
        .quarantined_until_ms
        .filter(|until| *until > now_ms && !reputation.is_banned())
        .map(|until| (until - now_ms) / 1000)
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

pub(super) fn policy_of(stored: &crate::store::StoredJob) -> JobPolicy {
    let adaptive = (stored.verify.policy == VerifyPolicy::Adaptive).then(|| AdaptivePolicy {
        spot_check_per_mille: (stored.verify.spot_check.clamp(0.0, 1.0) * 1000.0).round() as u32,
    });
    JobPolicy {
        quorum: stored.quorum,
        max_replicas: stored.max_replicas,
        lease_ms: stored.limits.lease_ms,
        adaptive,
        known_answer_probes: stored.verify.known_answers,
        decoy_per_mille: (stored.verify.decoys.clamp(0.0, 0.5) * 1000.0).round() as u32,
        // Without NaN canonicalisation every replica runs on the owner's engine class, so
        // the owner's own run (arbitration) judges every dispute as for any other job.
        engine: (!stored.nan_canonicalization)
            .then(|| EngineClass::from(wasmhive_sandbox::engine_class_name(std::env::consts::ARCH))),
        fuel_budget: stored.limits.fuel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_without_nan_canonicalisation_runs_on_the_owners_engine_class_only() {
        let job = |nan_canonicalization| crate::store::StoredJob {
            job_id: "job".into(),
            name: "job".into(),
            task_name: "mandelbrot".into(),
            module_hash: wasmhive_protocol::Hash::of(b"module"),
            args: Vec::new(),
            quorum: 2,
            max_replicas: 5,
            verify: Default::default(),
            limits: Default::default(),
            nan_canonicalization,
            validator: None,
            reducer: None,
            shared: Vec::new(),
            range: Some((0, 10, 1)),
            unit_count: 10,
            created_s: 0,
            state: wasmhive_protocol::api::JobState::Running,
        };
        let owner_class = wasmhive_sandbox::engine_class_name(std::env::consts::ARCH);
        assert_eq!(policy_of(&job(false)).engine.as_deref(), Some(owner_class.as_str()));
        assert_eq!(policy_of(&job(true)).engine, None, "a canonicalising job runs on any class");
    }
}

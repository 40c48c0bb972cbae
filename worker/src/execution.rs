//! What every owner session shares (`Execution`: identity, compute pool, sandbox, module
//! store, volunteer controls), and running leases on the pool into reports.

use crate::module_store::ModuleStore;
use crate::volunteer::{VolunteerControls, priority};
use crate::{WorkerConfig, WorkerError};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmhive_protocol::api::WorkerControlStatus;
use wasmhive_protocol::identity::PeerKey;
use wasmhive_protocol::{Hash, JobTerms, Lease, OutcomeReport, Status};
use wasmhive_sandbox::{
    FileSource, Limits, ModuleBytes, Outcome, RunGate, Sandbox, SandboxConfig, SandboxError, SharedFile,
    SharedRunGate, UnitRequest,
};
use wasmhive_transport::{Dialer, KnownHosts, TlsIdentity};

/// What every owner session of one worker (or peer) shares: identity, compute pool,
/// sandbox and modules. Create it once; run one session per owner.
pub struct Execution {
    pub(crate) config: WorkerConfig,
    pub(crate) key: PeerKey,
    /// Dials owners over TLS as this peer, with pinned and known-host ids.
    pub(crate) dialer: Dialer,
    pub(crate) pool: rayon::ThreadPool,
    pub(crate) sandbox: Arc<Sandbox>,
    pub(crate) modules: Mutex<ModuleStore>,
    /// Lease inputs that are blobs, on disk under `blobs/` (`input_blobs.rs`).
    pub(crate) blobs: Arc<wasmhive_blobs::BlobStore>,
    /// Other peers that hold blobs, and this host serving its own (`swarm/`).
    pub(crate) swarm: Arc<crate::swarm::Swarm>,
    /// Units running right now (for the spare slots a peer advertises).
    pub(crate) running: Arc<AtomicUsize>,
    /// Owner sessions open right now: each gets an equal share of the prefetch queue
    /// unless `slot_shares` names its owner.
    pub(crate) sessions: AtomicUsize,
    /// Share of the prefetch queue per proven owner id (a peer sets it for reciprocity).
    pub(crate) slot_shares: Mutex<HashMap<String, f64>>,
    /// Fetches a module from other peers before asking its owner (a peer sets this).
    pub(crate) blob_fetcher: std::sync::OnceLock<BlobFetcher>,
    /// Pauses, duty cycle, memory cap, and what the worker did.
    pub(crate) controls: Arc<VolunteerControls>,
    /// Blobs that must stay though no lease here holds them (a peer's running jobs'),
    /// `None` from it: do not evict now.
    pub(crate) blobs_needed: std::sync::OnceLock<BlobsNeeded>,
}

/// What else needs the blobs of a store an [`Execution`] shares (see
/// [`Execution::set_blobs_needed`]).
pub type BlobsNeeded = Arc<dyn Fn() -> Option<HashSet<Hash>> + Send + Sync>;

/// Fetches a blob by hash from somewhere other than the owner (given by its peer id); the
/// bytes must already be checked against the hash. `None`: ask the owner.
pub type BlobFetcher =
    Arc<dyn Fn(Hash, String) -> Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>> + Send + Sync>;

fn open_blob_store(folder: &std::path::Path) -> Result<wasmhive_blobs::BlobStore, WorkerError> {
    let store =
        wasmhive_blobs::BlobStore::open(folder, u64::MAX).map_err(|error| WorkerError::DataDirectory {
            path: folder.to_path_buf(),
            source: std::io::Error::other(error.to_string()),
        })?;
    let removed = store.removed_after_unclean_stop();
    if removed > 0 {
        tracing::warn!(
            removed,
            "blobs cut short by the last unclean stop were removed; they are fetched again"
        );
    }
    Ok(store)
}

/// wasmtime compiles a module's functions on rayon's global pool. In a worker (and a peer)
/// those threads run at the lowest priority like unit threads, so a compilation never
/// takes CPU from the machine's owner. Built once per process, before anything compiles.
fn lower_compilation_threads() {
    let built = rayon::ThreadPoolBuilder::new()
        .thread_name(|index| format!("wasmhive-compile-{index}"))
        .start_handler(|_| {
            if let Err(problem) = priority::lower_this_thread() {
                tracing::warn!(%problem, "a compilation thread keeps its normal priority");
            }
        })
        .build_global();
    if built.is_err() {
        tracing::debug!("rayon's global pool already exists; compilation threads keep their priority");
    }
}

impl Execution {
    pub fn new(config: WorkerConfig) -> Result<Arc<Execution>, WorkerError> {
        Execution::sharing_blobs(config, None)
    }

    /// An execution whose blobs are `blobs` when given (a peer passes its owner side's
    /// store: one store per data directory), else a store under `DATA/blobs/`.
    pub fn sharing_blobs(
        config: WorkerConfig,
        blobs: Option<Arc<wasmhive_blobs::BlobStore>>,
    ) -> Result<Arc<Execution>, WorkerError> {
        let key = wasmhive_transport::load_or_create_peer_key(&config.data_dir)?;
        let dialer =
            Dialer::new(Some(TlsIdentity::new(&key)), Some(KnownHosts::in_data_dir(&config.data_dir)))
                .with_local_address(config.local_address);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.cpus.max(1))
            .thread_name(|index| format!("wasmhive-unit-{index}"))
            .stack_size(8 << 20)
            .start_handler(|_| {
                if let Err(problem) = priority::lower_this_thread() {
                    tracing::warn!(%problem, "a unit thread keeps its normal priority");
                }
            })
            .build()
            .map_err(|error| WorkerError::Pool(error.to_string()))?;
        lower_compilation_threads();
        let controls = VolunteerControls::start(config.volunteer.clone());
        let sandbox = Arc::new(Sandbox::new(SandboxConfig {
            artifact_dir: Some(config.data_dir.join("artifacts")),
            run_gate: Some(SharedRunGate(controls.gate.clone())),
            ..SandboxConfig::default()
        }));
        let blobs = match blobs {
            Some(blobs) => blobs,
            None => Arc::new(open_blob_store(&config.data_dir.join("blobs"))?),
        };
        blobs.set_budget_bytes(config.blob_cache_bytes_max);
        Ok(Arc::new(Execution {
            swarm: Arc::new(crate::swarm::Swarm::new(blobs.clone(), config.upload_bytes_per_second)),
            blobs,
            modules: Mutex::new(ModuleStore::new(
                config.data_dir.join("modules"),
                config.module_cache_bytes_max,
            )),
            config,
            key,
            dialer,
            pool,
            sandbox,
            running: Arc::new(AtomicUsize::new(0)),
            sessions: AtomicUsize::new(0),
            slot_shares: Mutex::new(HashMap::new()),
            blob_fetcher: std::sync::OnceLock::new(),
            controls,
            blobs_needed: std::sync::OnceLock::new(),
        }))
    }

    pub fn peer_id(&self) -> String {
        self.key.peer_id()
    }

    /// This peer's key (a peer signs its gossip records with it).
    pub fn key(&self) -> &PeerKey {
        &self.key
    }

    /// The swarm this host fetches blob pieces from and serves them to.
    pub fn swarm(&self) -> &Arc<crate::swarm::Swarm> {
        &self.swarm
    }

    /// Dials other peers over TLS as this peer.
    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    pub fn cores(&self) -> usize {
        self.config.cpus.max(1)
    }

    /// Lets sessions fetch modules from other peers first; `fetcher` gets the hash and the
    /// owner's peer id (to try others before it).
    pub fn set_blob_fetcher(&self, fetcher: BlobFetcher) {
        let _ = self.blob_fetcher.set(fetcher);
    }

    /// Blobs eviction must spare besides those leases hold (a peer passes its owner
    /// side's running jobs' blobs: they share one store).
    pub fn set_blobs_needed(&self, needed: BlobsNeeded) {
        let _ = self.blobs_needed.set(needed);
    }

    /// A module this peer has cached (so it can serve it to others), by hash.
    pub fn cached_module(&self, hash: &Hash) -> Option<Vec<u8>> {
        self.modules.lock().expect("module store lock").get(hash).map(|module| module.bytes.to_vec())
    }

    /// Sets each owner's share (0 to 1) of the prefetch queue, by proven owner id; sessions
    /// of owners not named get an equal share.
    pub fn set_slot_shares(&self, shares: HashMap<String, f64>) {
        *self.slot_shares.lock().expect("slot shares lock") = shares;
    }

    /// How many leases the session for `owner_id` keeps queued, out of `target`.
    pub(crate) fn session_target(&self, owner_id: &str, target: usize) -> usize {
        let share = self.slot_shares.lock().expect("slot shares lock").get(owner_id).copied();
        let share = share.unwrap_or_else(|| 1.0 / self.sessions.load(Ordering::Relaxed).max(1) as f64);
        ((target as f64 * share).round() as usize).max(1)
    }

    /// Cores not running a unit right now (none while paused).
    pub fn spare_slots(&self) -> usize {
        if self.controls.is_paused() {
            return 0;
        }
        self.cores().saturating_sub(self.running.load(Ordering::Relaxed))
    }

    pub fn controls(&self) -> &Arc<VolunteerControls> {
        &self.controls
    }

    /// What `wasmhive worker status` shows.
    pub fn control_status(&self) -> WorkerControlStatus {
        let owners = self.sessions.load(Ordering::Relaxed);
        self.controls.status(self.peer_id(), self.cores(), self.running.load(Ordering::Relaxed), owners)
    }
}

/// Counts an open owner session for as long as it lives.
pub(crate) struct SessionCount(Arc<Execution>);

impl SessionCount {
    pub(crate) fn enter(execution: &Arc<Execution>) -> SessionCount {
        execution.sessions.fetch_add(1, Ordering::Relaxed);
        SessionCount(execution.clone())
    }
}

impl Drop for SessionCount {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Leases queued on the pool that have not started: the shared list lets the session take
/// them back (cancel, shutdown, lost connection) before a thread picks them up.
#[derive(Clone, Default)]
pub struct NotStarted {
    lease_ids: Arc<Mutex<HashSet<u64>>>,
}

impl NotStarted {
    pub fn add(&self, lease_id: u64) {
        self.lease_ids.lock().expect("not-started lock").insert(lease_id);
    }

    /// True if the lease was still waiting (and is now claimed to run).
    pub fn claim(&self, lease_id: u64) -> bool {
        self.lease_ids.lock().expect("not-started lock").remove(&lease_id)
    }

    /// Takes back the given leases that have not started; returns those it took.
    pub fn take_back(&self, lease_ids: &[u64]) -> Vec<u64> {
        let mut waiting = self.lease_ids.lock().expect("not-started lock");
        lease_ids.iter().copied().filter(|lease_id| waiting.remove(lease_id)).collect()
    }

    /// Takes back every lease that has not started.
    pub fn take_back_all(&self) -> Vec<u64> {
        self.lease_ids.lock().expect("not-started lock").drain().collect()
    }
}

/// A lease with the terms of its job, ready to run.
#[derive(Clone, Debug)]
pub struct LeaseToRun {
    pub lease: Lease,
    pub terms: Arc<JobTerms>,
    /// The unit's wall-clock guard here: the job's, or this worker's ceiling if lower.
    pub wall_time_ms_max: u64,
    /// Keeps the blobs the unit reads (its input, the job's shared files) from eviction
    /// for as long as the lease exists here (only dropped, never read).
    #[allow(dead_code)]
    pub blobs_held: wasmhive_blobs::BlobHold,
}

/// Reports of finished leases on their way from unit threads to their session, and how
/// many of the session's leases are on the pool. A unit thread wakes the session only when
/// the queue was empty or the pool just fell to the level at which the session asks for
/// more leases, and the session collects reports [`FINISHED_COLLECT_DELAY`] after the first,
/// all at once: with tens of thousands of tiny units a second, waking the session's runtime
/// once per unit (a futex and an eventfd write each time) cost more CPU than the session's
/// own work. The pool count is exact at every moment, so requests and the prefetch growth
/// never act on a stale count.
#[derive(Clone, Default)]
pub struct FinishedQueue {
    shared: Arc<FinishedShared>,
}

#[derive(Default)]
struct FinishedShared {
    reports: Mutex<Vec<Finished>>,
    pushed: tokio::sync::Notify,
    /// Leases on the pool (queued or running) that have not finished.
    in_pool: AtomicUsize,
    /// The pool level at which the session wants to be woken (to ask for more).
    wake_at: AtomicUsize,
}

/// How long finished reports wait to be collected after the first of them.
pub const FINISHED_COLLECT_DELAY: Duration = Duration::from_millis(1);

impl FinishedQueue {
    /// A lease went onto the pool.
    pub fn dispatched(&self) {
        self.shared.in_pool.fetch_add(1, Ordering::SeqCst);
    }

    pub fn in_pool(&self) -> usize {
        self.shared.in_pool.load(Ordering::SeqCst)
    }

    /// Wake the session when the pool falls to `level`.
    pub fn wake_at(&self, level: usize) {
        self.shared.wake_at.store(level, Ordering::SeqCst);
    }

    pub fn push(&self, finished: Finished) {
        let shared = &*self.shared;
        let was_empty = {
            let mut reports = shared.reports.lock().expect("finished queue lock");
            reports.push(finished);
            reports.len() == 1
        };
        let in_pool = shared.in_pool.fetch_sub(1, Ordering::SeqCst) - 1;
        if was_empty || in_pool == 0 || in_pool == shared.wake_at.load(Ordering::SeqCst) {
            shared.pushed.notify_one();
        }
    }

    /// Resolves when something was pushed since the last [`FinishedQueue::take`] (or
    /// soon after it: a wake may be left over).
    pub async fn pushed(&self) {
        self.shared.pushed.notified().await
    }

    pub fn take(&self) -> Vec<Finished> {
        std::mem::take(&mut *self.shared.reports.lock().expect("finished queue lock"))
    }
}

/// A report, or word that a queued lease was skipped.
pub enum Finished {
    /// The report, and the hold on its output when the output is a blob.
    Ran(OutcomeReport, Option<wasmhive_blobs::BlobHold>),
    Skipped,
}

/// Queues `lease` on the pool; its result arrives on `finished`. On its thread it first
/// reserves its memory limit under the worker's cap (waiting for room), then runs.
pub fn spawn_lease(
    execution: Arc<Execution>,
    module: ModuleBytes,
    lease: LeaseToRun,
    not_started: NotStarted,
    finished: FinishedQueue,
) {
    not_started.add(lease.lease.lease_id);
    let pool_execution = execution.clone();
    pool_execution.pool.spawn(move || {
        let controls = execution.controls();
        controls.gate.checkpoint(Duration::ZERO);
        let _memory = controls.memory.reserve(lease.terms.limits.memory_bytes);
        if !not_started.claim(lease.lease.lease_id) {
            finished.push(Finished::Skipped);
            return;
        }
        execution.running.fetch_add(1, Ordering::Relaxed);
        controls.gate.unit_starting();
        let report = run_lease(&execution, &module, &lease);
        // Its replicas run on distinct peers: this host will not read the input again.
        if let Some(input) = lease.lease.input_blob {
            execution.blobs.mark_spent(&input.hash);
        }
        controls.gate.unit_finished();
        execution.running.fetch_sub(1, Ordering::Relaxed);
        controls.unit_finished(report.fuel_used);
        let (report, output_hold) = crate::session_outputs::output_as_blob(&execution.blobs, report);
        finished.push(Finished::Ran(report, output_hold));
    });
}

fn run_lease(execution: &Execution, module: &ModuleBytes, lease: &LeaseToRun) -> OutcomeReport {
    let input = match lease.lease.input_blob {
        None => FileSource::Memory(lease.lease.input.as_slice().into()),
        // Read by the unit as it runs, from the blob verified when it arrived: neither
        // queued leases nor running units hold a blob input in memory.
        Some(blob) => match execution.blobs.open_blob(&blob.hash).map_err(|error| error.to_string()) {
            Ok(file) => FileSource::Disk { file: file.into(), size: blob.size },
            Err(reason) => return report_of(lease, Ok(Err(SandboxError::Engine(reason)))),
        },
    };
    let terms = &lease.terms;
    let shared = match open_shared_files(&execution.blobs, terms) {
        Ok(shared) => shared,
        Err(reason) => return report_of(lease, Ok(Err(SandboxError::Engine(reason)))),
    };
    let limits = Limits {
        wall_time_max: Duration::from_millis(lease.wall_time_ms_max),
        ..Limits::for_job(&terms.limits)
    };
    let request = UnitRequest {
        module,
        input,
        shared: &shared,
        task_name: &terms.task_name,
        args: &terms.args,
        job_id: &terms.job_id,
        unit_index: lease.lease.unit_index,
        job_time: Duration::from_secs(terms.job_time_s),
        limits: &limits,
        nan_canonicalization: terms.nan_canonicalization,
    };
    // A panic on a unit thread would abort the whole process (rayon): it is this unit's
    // host failure instead, and the worker lives.
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execution.sandbox.run(&request)));
    report_of(lease, ran)
}

/// The job's shared files, opened (verified when they arrived).
fn open_shared_files(blobs: &wasmhive_blobs::BlobStore, terms: &JobTerms) -> Result<Vec<SharedFile>, String> {
    let open = |file: &wasmhive_protocol::api::BlobInput| {
        let blob =
            blobs.open_blob(&file.hash).map_err(|error| format!("shared file {}: {error}", file.name))?;
        Ok(SharedFile {
            name: file.name.clone(),
            source: FileSource::Disk { file: blob.into(), size: file.size },
        })
    };
    terms.shared.iter().map(open).collect()
}

/// The report of one run. Only the guest's behaviour and the lease's own limits give a
/// status replicas can agree on; a failure of this host (no engine, a panic) is reported
/// as a host timeout: retried elsewhere, never a result.
fn report_of(lease: &LeaseToRun, ran: std::thread::Result<Result<Outcome, SandboxError>>) -> OutcomeReport {
    let report = |status: Status, output: Vec<u8>, fuel_used, wall_time_ms| OutcomeReport {
        lease_id: lease.lease.lease_id,
        status,
        output,
        output_blob: None,
        fuel_used,
        wall_time_ms,
    };
    let failed = |status: Status| report(status, Vec::new(), None, 0);
    let (job_id, unit_index) = (&lease.terms.job_id, lease.lease.unit_index);
    match ran {
        Ok(Ok(outcome)) => {
            report(outcome.status, outcome.stdout, outcome.fuel_used, outcome.wall_time.as_millis() as u64)
        }
        Ok(Err(SandboxError::InvalidLimits(reason))) => failed(Status::InvalidModule { reason }),
        Ok(Err(SandboxError::Engine(reason))) => {
            tracing::warn!(job = %job_id, unit = unit_index, %reason, "this host cannot run the unit; handed back as a host failure");
            failed(Status::HostTimeout)
        }
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(job = %job_id, unit = unit_index, %reason, "a unit thread panicked; reported as a host failure");
            failed(Status::HostTimeout)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> LeaseToRun {
        let terms = JobTerms {
            terms_id: 1,
            job_id: "job".into(),
            task_name: "task".into(),
            module: wasmhive_protocol::Hash::of(b"m"),
            args: Vec::new(),
            limits: wasmhive_protocol::api::JobLimits {
                memory_bytes: 1 << 20,
                output_bytes: 1 << 10,
                timeout_ms: 1000,
                ..Default::default()
            },
            job_time_s: 0,
            nan_canonicalization: true,
            shared: Vec::new(),
        };
        let lease = Lease { lease_id: 7, terms_id: 1, unit_index: 3, input: Vec::new(), input_blob: None };
        static STORE: std::sync::OnceLock<Arc<wasmhive_blobs::BlobStore>> = std::sync::OnceLock::new();
        let store = STORE.get_or_init(|| {
            let folder = std::env::temp_dir().join(format!("wasmhive-lease-holds-{}", std::process::id()));
            Arc::new(wasmhive_blobs::BlobStore::open(&folder, 0).unwrap())
        });
        LeaseToRun { lease, terms: Arc::new(terms), wall_time_ms_max: 1000, blobs_held: store.hold([]) }
    }

    #[test]
    fn host_failures_and_panics_are_retried_elsewhere_never_agreed_on() {
        let panicked = std::panic::catch_unwind(|| -> Result<Outcome, SandboxError> { panic!("boom") });
        let report = report_of(&lease(), panicked);
        assert_eq!(report.status, Status::HostTimeout);
        assert!(!report.status.is_deterministic());
        assert_eq!(report.lease_id, 7);
        let no_engine = report_of(&lease(), Ok(Err(SandboxError::Engine("out of address space".into()))));
        assert_eq!(no_engine.status, Status::HostTimeout);
        let bad_limits = report_of(&lease(), Ok(Err(SandboxError::InvalidLimits("memory".into()))));
        assert!(
            matches!(bad_limits.status, Status::InvalidModule { .. }),
            "the lease's own limits are the same everywhere"
        );
    }

    /// Whether the session would be woken now (a wake left for it), without waiting.
    fn woken(queue: &FinishedQueue) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime
            .block_on(async { tokio::time::timeout(Duration::from_millis(1), queue.pushed()).await.is_ok() })
    }

    #[test]
    fn unit_threads_wake_the_session_once_per_batch_and_when_the_pool_runs_low() {
        let queue = FinishedQueue::default();
        for _ in 0..10 {
            queue.dispatched();
        }
        queue.wake_at(4);
        assert_eq!(queue.in_pool(), 10);
        queue.push(Finished::Skipped);
        assert!(woken(&queue), "the first report of a batch wakes the session");
        queue.push(Finished::Skipped);
        queue.push(Finished::Skipped);
        assert!(!woken(&queue), "later ones wait to be collected with it");
        assert_eq!(queue.in_pool(), 7, "the pool count is exact before collection");
        queue.push(Finished::Skipped);
        queue.push(Finished::Skipped);
        queue.push(Finished::Skipped);
        assert!(woken(&queue), "the pool fell to where the session asks for more");
        assert_eq!(queue.take().len(), 6);
        for _ in 0..3 {
            queue.push(Finished::Skipped);
            let _ = woken(&queue);
        }
        queue.push(Finished::Skipped);
        assert_eq!(queue.in_pool(), 0);
        assert!(woken(&queue), "an empty pool wakes the session");
        assert_eq!(queue.take().len(), 4);
    }
}

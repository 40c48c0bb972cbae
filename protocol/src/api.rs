//! The JSON bodies of the owner's HTTP API (`/api/...`).

use crate::{Hash, Status};
use serde::{Deserialize, Serialize};

/// `POST /api/jobs`: a job, with its module and inputs inline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSubmission {
    pub name: String,
    /// argv\[0\] of every unit.
    pub task_name: String,
    #[serde(with = "crate::base64_bytes")]
    pub module: Vec<u8>,
    pub args: Vec<String>,
    pub inputs: JobInputs,
    /// Read-only files every unit sees as `/shared/NAME` (Task ABI v2): blobs uploaded
    /// before the job, like `Blobs` inputs. At most [`crate::SHARED_FILES_MAX`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<BlobInput>,
    pub quorum: u32,
    pub max_replicas: u32,
    /// Adaptive replication and known-answer units (absent: fixed quorum, none).
    #[serde(default)]
    pub verify: VerifySettings,
    pub limits: JobLimits,
    pub nan_canonicalization: bool,
    /// A wasm module that says whether two outputs agree (exit 0) or not (exit 1); stdin
    /// is the first output's length in decimal, a newline, the first output, the second.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::base64_bytes::optional")]
    pub validator: Option<Vec<u8>>,
    /// A wasm module that folds the accepted outputs (concatenated in unit order on stdin)
    /// into the job's final result (its stdout).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::base64_bytes::optional")]
    pub reducer: Option<Vec<u8>>,
}

/// How a job verifies results beyond its quorum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyPolicy {
    /// Every unit needs `quorum` matching replicas.
    #[default]
    Quorum,
    /// A trusted worker's result may be accepted alone; the rest need `quorum`.
    Adaptive,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySettings {
    pub policy: VerifyPolicy,
    /// Adaptive: the fraction of trusted results checked by a replica anyway (0 to 1).
    pub spot_check: f64,
    /// Known-answer units given to a worker with fewer judged results than this.
    pub known_answers: u32,
    /// Fraction (0 to 1) of fresh units replaced by decoys: an already-decided unit, sent
    /// out and replicated like a new one, whose every replica is judged at once.
    #[serde(default = "default_decoys")]
    pub decoys: f64,
}

fn default_decoys() -> f64 {
    VerifySettings::default().decoys
}

impl Default for VerifySettings {
    fn default() -> VerifySettings {
        VerifySettings { policy: VerifyPolicy::Quorum, spot_check: 0.05, known_answers: 0, decoys: 0.02 }
    }
}

/// Where a job's units come from: one unit per range step, per line, or per file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum JobInputs {
    /// Unit k gets the text `A B` with A = start + k·step and B = min(A + step, end).
    Range { start: u64, end: u64, step: u64 },
    /// Unit k gets line k (without its newline).
    Lines { lines: Vec<String> },
    /// Unit k gets the bytes of file k.
    Files { files: Vec<NamedInput> },
    /// Unit k gets the bytes of blob k, uploaded to the owner before the job
    /// (`PUT /api/blobs/{hash}`): the submission stays small however large the inputs.
    Blobs { blobs: Vec<BlobInput> },
}

/// One input uploaded as a blob: its name for people, its hash and size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobInput {
    pub name: String,
    pub hash: crate::Hash,
    pub size: u64,
}

/// One input file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedInput {
    pub name: String,
    #[serde(with = "crate::base64_bytes")]
    pub bytes: Vec<u8>,
}

/// A job's limits: the one limits type from the job spec through the API, the store and
/// the wire (in each session's job terms) to the sandbox, which turns it into its own
/// (`sandbox::Limits::for_job`). Defaults in [`JobLimits::default`], ceilings checked in
/// [`JobLimits::check`] only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobLimits {
    /// Fuel budget per unit (about one per wasm instruction); `None`: not metered.
    pub fuel: Option<u64>,
    /// Largest linear memory of a unit.
    pub memory_bytes: u64,
    /// Largest stdout of a unit.
    pub output_bytes: u64,
    /// How long a worker has to return a replica before it is leased again.
    pub lease_ms: u64,
    /// A unit's wall-clock guard (workers clamp it to their own ceiling).
    pub timeout_ms: u64,
}

/// Largest memory a job may give a unit: all that wasm32 addresses.
pub const MEMORY_BYTES_CEILING: u64 = 4 << 30;
/// Largest output of one unit.
pub const OUTPUT_BYTES_CEILING: u64 = 64 << 20;
/// Shortest and longest lease: a replica not back within 7 days is re-issued.
pub const LEASE_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=7 * 24 * 3_600_000;
/// Shortest and longest wall-clock guard.
pub const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=24 * 3_600_000;

impl Default for JobLimits {
    /// Not metered, 256 MiB of memory, 1 MiB of output, 10-minute leases and guard.
    fn default() -> JobLimits {
        JobLimits {
            fuel: None,
            memory_bytes: 256 << 20,
            output_bytes: 1 << 20,
            lease_ms: 600_000,
            timeout_ms: 600_000,
        }
    }
}

/// Which limit is out of bounds, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("limits.{key} {problem}; {fix}")]
pub struct LimitsError {
    /// The job-spec key (`fuel`, `memory`, `output`, `lease`, `timeout`).
    pub key: &'static str,
    pub problem: &'static str,
    pub fix: &'static str,
}

impl JobLimits {
    /// The one check of a job's limits (job spec and API alike).
    pub fn check(&self) -> Result<(), LimitsError> {
        let error = |key, problem, fix| Err(LimitsError { key, problem, fix });
        if self.fuel == Some(0) {
            return error("fuel", "is 0", "give a budget above 0, or leave it out to turn metering off");
        }
        if self.memory_bytes > MEMORY_BYTES_CEILING {
            return error("memory", "is above 4 GiB, all that wasm32 can address", "use at most \"4 GiB\"");
        }
        if self.output_bytes > OUTPUT_BYTES_CEILING {
            return error("output", "is above 64 MiB per unit", "use at most \"64 MiB\"");
        }
        if !LEASE_MS_RANGE.contains(&self.lease_ms) {
            return error("lease", "is out of range", "give a lease from 100 ms to 7 days");
        }
        if !TIMEOUT_MS_RANGE.contains(&self.timeout_ms) {
            return error("timeout", "is out of range", "give a timeout from 1 ms to 1 day");
        }
        Ok(())
    }
}

/// `POST /api/jobs` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitAnswer {
    pub job_id: String,
    pub units: u64,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Its units are being handed out.
    Running,
    /// Every unit is decided.
    Completed,
    /// Stopped by its owner; the units decided so far are kept.
    Cancelled,
}

impl JobState {
    /// The word stored and shown: `running`, `completed`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state a stored word names.
    pub fn from_word(word: &str) -> Option<JobState> {
        [JobState::Running, JobState::Completed, JobState::Cancelled]
            .into_iter()
            .find(|state| state.as_str() == word)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// `GET /api/jobs/{id}` answer, and one entry of `GET /api/jobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub job_id: String,
    pub name: String,
    pub state: JobState,
    pub units: u64,
    /// Units accepted with a successful canonical result.
    pub verified: u64,
    /// Units that failed (an agreed failure status, or no quorum).
    pub failed: u64,
    /// Units with a replica leased right now.
    pub leased: u64,
    pub quorum: u32,
    pub module: Hash,
    pub created_s: u64,
    /// For a job with a reducer: `waiting for the job`, `running`, `done` or `failed: ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduced: Option<String>,
    /// Seconds left at the job's rate over the last 30 s, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<u64>,
    /// Why a running job makes no progress (no workers, no spare slots, waiting for quorum...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
}

/// Units decided per second at one moment (the dashboard's chart).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThroughputPoint {
    pub at_s: u64,
    pub units_per_s: f64,
}

/// A replica whose output differed from the accepted result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disagreement {
    pub job_id: String,
    pub unit: u64,
    pub worker_id: String,
    pub at_s: u64,
}

/// One worker connected to this owner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectedWorker {
    pub worker_id: String,
    /// The network it connects from (two replicas of a unit never share one).
    #[serde(default)]
    pub network: String,
    pub cores: u32,
    pub leased: u64,
    pub spare_slots: u64,
    /// This owner's trust in it, once judged.
    pub trust: Option<f64>,
    pub quarantined: bool,
}

/// `GET /api/dashboard` and each event of `GET /api/events`: everything the dashboard shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DashboardSnapshot {
    pub jobs: Vec<JobStatus>,
    pub throughput: Vec<ThroughputPoint>,
    pub workers: Vec<ConnectedWorker>,
    pub reputation: Vec<WorkerReputation>,
    pub credit: Vec<CreditRow>,
    pub disagreements: Vec<Disagreement>,
}

/// `GET /api/jobs/{id}/reduced`: the reducer's result over the accepted outputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReducedResult {
    pub job_id: String,
    pub status: Status,
    /// The reduced output, when it is UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output: Option<String>,
    /// The reduced output, base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_base64: Option<String>,
    /// The reducer's stderr, or why it could not run.
    pub message: String,
}

/// One line of `GET /api/jobs/{id}/results` (JSON Lines).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitResult {
    pub unit: u64,
    /// The unit's input as text (UTF-8, lossy) or its file name.
    pub input: String,
    /// `success`, `failed`.
    pub state: String,
    pub status: Status,
    /// The canonical output, when it is UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output: Option<String>,
    /// The canonical output, base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_base64: Option<String>,
    /// The canonical output, when it was larger than `OUTPUT_INLINE_BYTES_MAX`: a blob on
    /// the owner (`GET /api/blobs/{hash}`; `wasmhive results --out DIR` writes it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_blob: Option<crate::BlobRef>,
    pub digest: Option<Hash>,
    pub replicas: u32,
    /// The peers (worker ids) whose replicas matched the canonical result.
    #[serde(default)]
    pub replica_peers: Vec<String>,
    /// Why the unit failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failure: Option<String>,
}

/// The body of every API error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// One row of `GET /api/reputation`: what this owner knows of a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerReputation {
    pub worker_id: String,
    /// 1 − the estimated error rate: 0.9 for a stranger, towards 1 with a clean record.
    pub trust: f64,
    pub valid: u64,
    pub invalid: u64,
    pub consecutive_valid: u64,
    /// Units it timed out on that other workers finished.
    #[serde(default)]
    pub unfinished: u64,
    /// Seconds of quarantine left (no leases), when quarantined (not banned).
    pub quarantined_for_s: Option<u64>,
    /// The owner's own run of a unit proved one of its results wrong: no leases ever again.
    #[serde(default)]
    pub banned: bool,
}

/// One row of `GET /api/credit`: the validated work a worker did for one job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditRow {
    pub job_id: String,
    pub worker_id: String,
    /// Replicas of this worker that matched an accepted result (each credited once).
    pub replicas: u64,
    pub credit: u64,
    /// `fuel` (the canonical fuel of each credited replica) when the job metered fuel, else
    /// `units` (one per credited replica).
    pub measure: String,
}

/// `GET /status` of a worker's local control endpoint (`wasmhive worker status`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerControlStatus {
    pub peer_id: String,
    pub uptime_s: u64,
    pub cpus: u32,
    pub cpu_percent: u32,
    pub running_units: u32,
    /// Units this worker ran since it started.
    pub units_done: u64,
    /// Units finished in the last minute (or per minute since start, if shorter).
    pub units_per_minute: f64,
    /// Fuel its units used (jobs that meter fuel).
    pub fuel_used: u64,
    pub paused: bool,
    /// Why it is paused (empty when running).
    pub pause_reasons: Vec<String>,
    /// Other programs' CPU use, percent of the whole machine, at the last check.
    pub others_cpu_percent: f64,
    pub pause_when_busy_percent: Option<u32>,
    pub schedule: String,
    pub memory_reserved_bytes: u64,
    pub memory_bytes_max: u64,
    /// Why it runs nothing (paused, no owner with work, what the owners answered).
    #[serde(default)]
    pub why_no_work: Option<String>,
    /// Credit as each owner last reported it.
    pub credit: Vec<OwnerCredit>,
}

/// The credit one owner granted this worker so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerCredit {
    pub owner: String,
    pub replicas: u64,
    pub credit: u64,
}

/// What a job's shared files may be (Task ABI v2's `/shared/NAME`): at most
/// [`crate::SHARED_FILES_MAX`], each at most [`crate::INPUT_BLOB_BYTES_MAX`] bytes, with
/// plain, distinct names. The job-spec parser, the owner, the worker and `wasmhive run`
/// all check with this. `files` are (name, size) pairs.
pub fn check_shared_files<'a>(files: impl IntoIterator<Item = (&'a str, u64)>) -> Result<(), String> {
    let files: Vec<(&str, u64)> = files.into_iter().collect();
    if files.len() > crate::SHARED_FILES_MAX {
        return Err(format!(
            "{} shared files, above the {} a job may have; pack them into fewer",
            files.len(),
            crate::SHARED_FILES_MAX
        ));
    }
    for (index, &(name, size)) in files.iter().enumerate() {
        check_shared_name(name)?;
        if size > crate::INPUT_BLOB_BYTES_MAX {
            return Err(format!(
                "shared file {name:?} is {size} bytes, above the {} a file may have",
                crate::INPUT_BLOB_BYTES_MAX
            ));
        }
        if files[..index].iter().any(|&(earlier, _)| earlier == name) {
            return Err(format!("two shared files are named {name:?}; give each its own name"));
        }
    }
    Ok(())
}

/// What a shared file's name may be: a plain file name (no `/`, not `.` or `..`, no control
/// characters), at most 255 bytes.
pub fn check_shared_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control);
    if plain {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a shared file name: use a plain file name of at most 255 bytes (no `/`, not `.` or `..`)"
        ))
    }
}

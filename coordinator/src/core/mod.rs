//! The sans-IO scheduling core: leases, deadlines, re-issue, quorum by digest.
//!
//! Plain data and functions over an explicit `now` (milliseconds); no IO, no clock, no
//! async. The server feeds it events and carries out what it returns; the simulation and
//! the unit tests drive it directly.
//!
//! Invariants (checked by `tests.rs` and `attack_tests.rs`):
//! - two replicas of one unit never go to the same worker identity, nor to one network;
//!   in a job pinned to an engine class (NaN canonicalisation off), every replica runs on
//!   that class;
//! - a unit's second and later replicas go to a worker drawn at random, not to the asker;
//! - an identity and a network hold at most their lease allowance (`lease_allowance.rs`);
//! - a unit is decided (accepted or failed) exactly once, and only when `quorum` completed
//!   replicas have the same digest, or when `max_replicas` replicas produced no quorum;
//! - a unit's replicas (completed + leased) never exceed `max_replicas`;
//! - a `HostTimeout` outcome is never a result: the replica is re-issued to another worker
//!   (the worker that timed out gets the unit again only after `TIMED_OUT_WORKER_WAIT_MS`),
//!   and a unit fails on timeouts only from several networks of established identities;
//! - every unit of a job is eventually decided once workers keep asking for work (leases
//!   that expire, are returned or whose worker disconnects go back to the queue);
//! - memory is bounded by the units in flight (at most `ACTIVE_UNITS_MAX` per job), not by
//!   the size of the job.

mod adaptive;
mod arbitration;
#[cfg(test)]
mod arbitration_tests;
#[cfg(test)]
mod attack_tests;
mod connected_workers;
mod credit;
mod deciding_sets;
mod job;
mod lease_allowance;
mod leasing;
mod network;
mod recent_workers;
mod reputation;
#[cfg(test)]
mod tests;
mod unit;
mod validator_classes;

pub use adaptive::{chance_alone, is_trusted};
pub use arbitration::{ARBITRATIONS_WAITING_MAX, Answer, Arbitration, ReopenedUnit, Verdict};
pub use credit::{CreditGrant, ValidatedCredit, credible_fuel};
pub use job::{ActiveUnitRecord, ActiveUnitView, AdaptivePolicy, JobPolicy, JobProgress, ReplicaRecord};
pub use lease_allowance::LeaseLimits;
pub use network::{Network, NetworkPrefixes};
pub use reputation::{BANNED_UNTIL_MS, QUARANTINE_MS, Reputation, ReputationBook};
pub use validator_classes::class_of;

use connected_workers::ConnectedWorkers;
use job::CoreJob;
use lease_allowance::LeaseAllowances;
use leasing::{LeaseEnding, ReplicaDraw};
use recent_workers::RecentWorkers;
use std::collections::{BTreeMap, HashMap, HashSet};
use unit::ReporterStanding;
use wasmhive_protocol::{Hash, Status};

/// A worker's engine class as its `hello` named it (wasmtime version and ISA, e.g.
/// `wasmtime-48.0.8-x86_64`): a job may pin its replicas to one (`JobPolicy::engine`).
pub type EngineClass = std::sync::Arc<str>;

/// Units of one job in flight at once (leased or waiting for more replicas).
pub const ACTIVE_UNITS_MAX: usize = 4096;

/// How long a worker whose host timed out on a unit is kept from taking it again (so
/// another worker gets the chance; a slow compilation meanwhile finishes in the background).
pub const TIMED_OUT_WORKER_WAIT_MS: u64 = 10_000;

/// The longest a unit's next replica waits for the worker drawn for it to ask, before it
/// is drawn again (a quarter of the job's lease time when that is shorter).
pub const DRAWN_WORKER_WAIT_MS: u64 = 5_000;

/// Requests (per thousand) that bring a known-answer unit to a worker whose record is
/// already long enough, in jobs that use known answers.
pub const PROBE_PER_MILLE: u32 = 20;

pub type LeaseId = u64;

/// Valid results an identity needs before its host timeouts count towards failing a unit.
pub const VALID_RESULTS_BEFORE_TIMEOUTS_COUNT: u64 = 5;

/// Whether a host timeout from this worker counts towards failing its unit: not from a
/// stranger (a griefer's fresh identities), nor from one with more than one timeout on
/// units others finished per four valid results.
fn timeout_counts(reputation: Option<&Reputation>) -> bool {
    reputation.is_some_and(|reputation| {
        reputation.valid >= VALID_RESULTS_BEFORE_TIMEOUTS_COUNT
            && reputation.unfinished * 4 <= reputation.valid
    })
}

/// The core's hash maps: keyed by lease ids and peer ids, looked up several times per
/// replica. foldhash is seeded at random per process like std's SipHash, and several
/// times faster on these short keys.
type FastHashMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A worker's identity (its peer id) as the core keeps it: shared, never copied per lease,
/// replica or judgement.
pub type WorkerId = std::sync::Arc<str>;

/// A job's id as the core keeps it: shared by the job, its leases and its outcomes.
pub type JobId = std::sync::Arc<str>;

/// A lease the server must send to a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseGrant {
    pub lease_id: LeaseId,
    pub job_id: JobId,
    pub unit_index: u64,
    pub deadline_ms: u64,
}

/// A lease the core remembers until its outcome arrives or it ends.
#[derive(Clone, Debug)]
struct OpenLease {
    job_id: JobId,
    unit_index: u64,
    worker_id: WorkerId,
    /// The network the worker asked from (a replica counts for it).
    network: Network,
    deadline_ms: u64,
    /// `Some` for a known-answer unit: the digest its outcome must have.
    known_answer: Option<Hash>,
}

/// What the server must persist after an outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeEffect {
    pub job_id: JobId,
    pub unit_index: u64,
    /// The replica to record (absent for a host timeout, which is not a result).
    pub replica: Option<ReplicaRecord>,
    pub decision: Option<UnitDecision>,
    /// An accepted unit judges every replica against the canonical result: these are the
    /// judgements, each with the worker's new reputation.
    pub judgements: Vec<Judgement>,
    /// Workers that timed out on a unit accepted now (others finished it), each with its
    /// new, lower reputation (`agreed` false).
    pub unfinished: Vec<Judgement>,
    /// Credit a unit accepted now granted (`credit.rs`).
    pub credit: Vec<CreditGrant>,
}

/// One replica of an accepted unit, judged.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub worker_id: WorkerId,
    /// The replica matched the canonical result (and earns credit).
    pub agreed: bool,
    pub reputation: Reputation,
}

/// How a unit ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnitDecision {
    /// `quorum` replicas agree; the outcome being reported carries the canonical bytes.
    /// `status` may be a failure that replicas agree on (e.g. exit code 2).
    Accepted { digest: Hash, status: Status, replicas: u32 },
    /// No quorum was reached; the unit failed with this reason.
    Failed { reason: String, replicas: u32 },
}

/// Why an outcome was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutcomeRejection {
    /// Expired, returned, cancelled or never issued; the worker may forget it.
    #[error("lease {0} is not open (expired, returned or cancelled)")]
    UnknownLease(LeaseId),
    /// The lease belongs to another worker.
    #[error("lease {0} was issued to another worker")]
    NotYourLease(LeaseId),
    /// The worker was proven to return wrong results; nothing it reports counts.
    #[error("this identity returned results the owner proved wrong; it gets no more work")]
    Banned,
}

/// The scheduling state of one owner.
pub struct Core {
    jobs: BTreeMap<JobId, CoreJob>,
    leases: FastHashMap<LeaseId, OpenLease>,
    next_lease_id: LeaseId,
    /// Job to start the next round-robin pass at.
    job_cursor: Option<JobId>,
    reputations: ReputationBook,
    /// Workers holding a known-answer lease (at most one each).
    probe_holders: HashSet<WorkerId, foldhash::fast::RandomState>,
    /// The owner's secret draws (adaptive replication): seeded from the OS by the
    /// server, from a fixed seed by tests and simulations.
    random: fastrand::Rng,
    /// The workers that asked for work lately: replicas after the first are drawn among them.
    recent_workers: RecentWorkers,
    /// How many leases each identity and network may hold open.
    allowances: LeaseAllowances,
    /// Disputes waiting for the owner's own run (`arbitration.rs`).
    arbitrations: Vec<arbitration::Arbitration>,
    arbitrations_dropped: u64,
    /// Jobs added so far: each added job's generation (see [`Core::job_generation`]).
    jobs_added: u64,
    /// How many units each set of identities decided together (`deciding_sets.rs`).
    deciding_sets: deciding_sets::DecidingSets,
    /// Each connected worker's cores and engine class.
    connected: ConnectedWorkers,
}

impl Default for Core {
    fn default() -> Core {
        Core::new()
    }
}

impl Core {
    /// A core with lease ids from 1, a fixed random seed and no lease allowances (unit
    /// tests of the other rules; simulations set [`LeaseLimits::OWNER`]).
    pub fn new() -> Core {
        let mut core = Core::with_first_lease_id(1, 1);
        core.set_lease_limits(None);
        core
    }

    /// A core whose lease ids start at `first`. An owner starts each run at a new range
    /// (its start time in milliseconds << 12: below 2^53, 4096 ids per millisecond between
    /// restarts), so a worker's outcome for a lease of an
    /// earlier run can never be taken for a lease of this one. `seed` seeds the draws of
    /// adaptive replication; a server passes a secret one. Allowances follow
    /// [`LeaseLimits::OWNER`].
    pub fn with_first_lease_id(first: LeaseId, seed: u64) -> Core {
        assert!(first > 0, "lease ids start above 0");
        Core {
            jobs: BTreeMap::new(),
            leases: FastHashMap::default(),
            next_lease_id: first,
            job_cursor: None,
            reputations: ReputationBook::default(),
            probe_holders: HashSet::default(),
            recent_workers: RecentWorkers::default(),
            random: fastrand::Rng::with_seed(seed),
            allowances: LeaseAllowances::new(Some(LeaseLimits::OWNER)),
            arbitrations: Vec::new(),
            arbitrations_dropped: 0,
            jobs_added: 0,
            deciding_sets: deciding_sets::DecidingSets::default(),
            connected: ConnectedWorkers::default(),
        }
    }

    /// Lease allowances from now on (`None`: only the slots asked for limit a request).
    pub fn set_lease_limits(&mut self, limits: Option<LeaseLimits>) {
        self.allowances = LeaseAllowances::new(limits);
    }

    /// The cores `worker_id` advertised: its lease allowance grows up to `per_core` × them.
    pub fn set_worker_cores(&mut self, worker_id: &str, cores: u32) {
        self.connected.set_cores(worker_id, cores);
    }

    /// The engine class `worker_id` runs units on (forgotten when it disconnects); `None` for
    /// a class the server does not recognise, which takes no unit of a job pinned to a class.
    pub fn set_worker_engine(&mut self, worker_id: &str, engine: Option<EngineClass>) {
        self.connected.set_engine(worker_id, engine);
    }

    /// Adds a job, fresh (`resume` empty) or as the store left it.
    pub fn add_job(&mut self, job_id: &str, unit_count: u64, policy: JobPolicy, resume: ResumeState) {
        assert!(policy.quorum >= 1, "quorum is validated before it reaches the core");
        assert!(policy.max_replicas >= policy.quorum, "max_replicas is validated to be at least quorum");
        self.jobs_added += 1;
        let job = CoreJob::resumed(unit_count, policy, resume, self.jobs_added);
        self.jobs.insert(JobId::from(job_id), job);
    }

    /// A batch of outcomes touching this job was recorded and is on its way to the store:
    /// the job is not complete before it is stored ([`Core::outcomes_stored`]).
    pub fn outcomes_recorded(&mut self, job_id: &str) {
        if let Some(job) = self.jobs.get_mut(job_id) {
            job.batches_unstored += 1;
        }
    }

    /// A batch recorded in `generation` of the job was stored (or refused: either way it
    /// is no longer on its way). A batch of an earlier generation counts for nothing here.
    pub fn outcomes_stored(&mut self, job_id: &str, generation: u64) {
        if let Some(job) = self.jobs.get_mut(job_id).filter(|job| job.generation == generation) {
            job.batches_unstored = job.batches_unstored.saturating_sub(1);
        }
    }

    /// Which adding of the job the core holds now: a job removed and added again (its
    /// state rebuilt from the store) has a new generation, so what was recorded in its
    /// earlier one can be told apart. `None` for a job the core does not hold.
    pub fn job_generation(&self, job_id: &str) -> Option<u64> {
        self.jobs.get(job_id).map(|job| job.generation)
    }

    /// Stops handing out a job's units; returns the open leases to cancel, per worker.
    pub fn remove_job(&mut self, job_id: &str) -> Vec<(WorkerId, LeaseId)> {
        self.jobs.remove(job_id);
        let cancelled: Vec<(WorkerId, LeaseId)> = self
            .leases
            .iter()
            .filter(|(_, lease)| *lease.job_id == *job_id)
            .map(|(lease_id, lease)| (lease.worker_id.clone(), *lease_id))
            .collect();
        for (_, lease_id) in &cancelled {
            self.close_lease(*lease_id, LeaseEnding::Cancelled);
        }
        cancelled
    }

    pub fn progress(&self, job_id: &str) -> Option<JobProgress> {
        self.jobs.get(job_id).map(CoreJob::progress)
    }

    /// Units of the job below this index have been started at some point.
    pub fn next_fresh_unit(&self, job_id: &str) -> Option<u64> {
        self.jobs.get(job_id).map(CoreJob::next_fresh_unit)
    }

    pub fn job_ids(&self) -> impl Iterator<Item = &JobId> {
        self.jobs.keys()
    }

    /// When every running job is pinned to an engine class `worker_id` does not have: that
    /// class (so the worker can be told why it gets nothing).
    pub fn engine_every_job_needs(&self, worker_id: &str) -> Option<EngineClass> {
        let worker_engine = self.connected.engine_of(worker_id);
        let mut needed = None;
        for job in self.jobs.values() {
            match &job.policy.engine {
                Some(class) if **class != *worker_engine => needed = Some(class.clone()),
                _ => return None,
            }
        }
        needed
    }

    /// Records a replica's outcome that claims no fuel (see [`Core::report_replica`]).
    pub fn report_outcome(
        &mut self,
        worker_id: &str,
        lease_id: LeaseId,
        status: &Status,
        digest: Hash,
        now_ms: u64,
    ) -> Result<OutcomeEffect, OutcomeRejection> {
        self.report_replica(worker_id, lease_id, status, digest, None, now_ms)
    }

    /// Records a replica's outcome. `digest` must be recomputed by the caller from the
    /// reported bytes, never taken from the worker; `fuel_claimed` is the worker's word,
    /// counted at most to the job's fuel budget.
    pub fn report_replica(
        &mut self,
        worker_id: &str,
        lease_id: LeaseId,
        status: &Status,
        digest: Hash,
        fuel_claimed: Option<u64>,
        now_ms: u64,
    ) -> Result<OutcomeEffect, OutcomeRejection> {
        let lease = self.leases.get(&lease_id).ok_or(OutcomeRejection::UnknownLease(lease_id))?;
        if *lease.worker_id != *worker_id {
            return Err(OutcomeRejection::NotYourLease(lease_id));
        }
        let lease = self.leases.remove(&lease_id).expect("checked above");
        self.allowances.outcome_returned(worker_id, &lease.network, now_ms);
        if self.reputations.get(worker_id).is_some_and(|reputation| reputation.is_banned()) {
            // Proven wrong while it ran this lease: its replica counts for nothing.
            self.probe_holders.remove(worker_id);
            if let Some(job) = self.jobs.get_mut(&lease.job_id) {
                job.lease_closed_without_outcome(lease.unit_index, lease_id);
            }
            return Err(OutcomeRejection::Banned);
        }
        if let Some(known) = lease.known_answer {
            // Agreement with a known answer is judged at once; a disagreement goes to the
            // owner's own run (the known answer may be a colluders' accepted lie).
            self.probe_holders.remove(worker_id);
            let replica = ReplicaRecord {
                worker_id: lease.worker_id.clone(),
                network: lease.network.clone(),
                status: status.clone(),
                digest,
                fuel_used: None, // a probe earns nothing
            };
            let judgements = if status.is_success() && digest == known {
                let reputation = self.reputations.record(worker_id, true, now_ms);
                vec![Judgement { worker_id: lease.worker_id.clone(), agreed: true, reputation }]
            } else {
                self.queue_arbitration(&lease.job_id, lease.unit_index, known, vec![replica.into()]);
                Vec::new()
            };
            return Ok(OutcomeEffect {
                job_id: lease.job_id,
                unit_index: lease.unit_index,
                replica: None,
                decision: None,
                judgements,
                unfinished: Vec::new(),
                credit: Vec::new(),
            });
        }
        let job = self.jobs.get_mut(&lease.job_id).ok_or(OutcomeRejection::UnknownLease(lease_id))?;
        let accept_alone = job.policy.adaptive.is_some_and(|adaptive| {
            let chance =
                chance_alone(self.reputations.get(worker_id).as_ref(), adaptive.spot_check_per_mille);
            chance > 0.0 && self.random.f64() < chance
        });
        let (replica, decision) = {
            let replica = ReplicaRecord {
                worker_id: lease.worker_id.clone(),
                network: lease.network.clone(),
                status: status.clone(),
                digest,
                fuel_used: credible_fuel(fuel_claimed, job.policy.fuel_budget),
            };
            let standing = ReporterStanding {
                accept_alone,
                timeout_counts: timeout_counts(self.reputations.get(worker_id).as_ref()),
            };
            job.record_outcome(lease.unit_index, lease_id, replica, standing, now_ms)
        };
        let judged = job.take_judged();
        let credit = job.take_credited();
        if let Some(UnitDecision::Accepted { status, replicas, .. }) = &decision
            && status.is_success()
            && *replicas >= 2
            && job.policy.decoy_per_mille > 0
        {
            let deciders: Vec<&str> =
                judged.iter().filter(|(_, agreed)| *agreed).map(|(worker_id, _)| &**worker_id).collect();
            if let Some(set) = self.deciding_sets.needs_audit(&deciders)
                && job.queue_audit(lease.unit_index)
            {
                self.deciding_sets.audited(set);
            }
        }
        let mut judgements: Vec<Judgement> = judged
            .into_iter()
            .map(|(worker_id, agreed)| {
                let reputation = self.reputations.record(&worker_id, agreed, now_ms);
                Judgement { worker_id, agreed, reputation }
            })
            .collect();
        for (worker_id, agreed) in job.take_judged_by_known_answer() {
            let reputation = self.reputations.record(&worker_id, agreed, now_ms);
            judgements.push(Judgement { worker_id, agreed, reputation });
        }
        let unfinished = job
            .take_unfinished()
            .into_iter()
            .map(|worker_id| {
                let reputation = self.reputations.record_unfinished(&worker_id);
                Judgement { worker_id, agreed: false, reputation }
            })
            .collect();
        judgements.extend(self.queue_disputes(&lease.job_id, now_ms));
        Ok(OutcomeEffect {
            job_id: lease.job_id,
            unit_index: lease.unit_index,
            replica,
            decision,
            judgements,
            unfinished,
            credit,
        })
    }

    /// True when `lease_id` is open, held by `worker_id` and for this (job, unit).
    /// The (job, unit) of an open lease `worker_id` holds.
    pub fn held_lease_target(&self, worker_id: &str, lease_id: LeaseId) -> Option<(&str, u64)> {
        let lease = self.leases.get(&lease_id).filter(|lease| *lease.worker_id == *worker_id)?;
        Some((&lease.job_id, lease.unit_index))
    }

    /// Reputations as the store kept them (on start).
    pub fn restore_reputation(&mut self, worker_id: &str, reputation: Reputation) {
        self.reputations.restore(worker_id, reputation);
    }

    pub fn reputation(&self, worker_id: &str) -> Option<Reputation> {
        self.reputations.get(worker_id)
    }

    pub fn reputations(&self) -> Vec<(String, Reputation)> {
        self.reputations.all()
    }

    /// Open leases, for status pages.
    pub fn open_lease_count(&self) -> usize {
        self.leases.len()
    }

    /// Open leases per worker (for spare slots and status pages).
    pub fn leases_per_worker(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for lease in self.leases.values() {
            *counts.entry(lease.worker_id.to_string()).or_insert(0) += 1;
        }
        counts
    }

    /// A job's started, undecided units (at most `limit`).
    pub fn active_units(&self, job_id: &str, limit: usize) -> Vec<ActiveUnitView> {
        self.jobs.get(job_id).map_or_else(Vec::new, |job| job.active_units(limit))
    }

    /// Started units of a job that wait for another replica no open lease covers.
    pub fn units_waiting_for_replica(&self, job_id: &str) -> usize {
        self.jobs.get(job_id).map_or(0, CoreJob::units_waiting_for_replica)
    }

    pub fn is_quarantined(&self, worker_id: &str, now_ms: u64) -> bool {
        self.reputations.is_quarantined(worker_id, now_ms)
    }
}

/// Where a job stood when the store last saw it.
#[derive(Clone, Debug, Default)]
pub struct ResumeState {
    /// Units below this index were started at some point.
    pub next_fresh_unit: u64,
    /// Units decided with a successful canonical result.
    pub succeeded_units: u64,
    /// Units decided as failed (an agreed failure status, or no quorum).
    pub failed_units: u64,
    /// Started, undecided units with the replicas recorded so far.
    pub active_units: Vec<ActiveUnitRecord>,
    /// The job's validated credit so far (`credit.rs`).
    pub validated_credit: ValidatedCredit,
}

//! One job's units in the core: which are in flight, which need another replica, and the
//! quorum decision.

mod decoy;
mod unit_choice;
pub(super) use unit_choice::WaitingScan;

/// Answers that disagreed with a unit's accepted success: a decoy's replicas (`decoy.rs`),
/// the losers of a quorum, or the deciders of a reopened unit's earlier acceptance. Settled
/// by the owner's own run (`arbitration.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispute {
    pub unit_index: u64,
    pub accepted_digest: Hash,
    pub answers: Vec<super::Answer>,
    /// When the owner cannot arbitrate (too many disputes waiting), the replicas take an
    /// ordinary strike: true for the losers of a quorum, false for a decoy's replicas (a
    /// known answer may be a colluders' lie, and must not punish those who contradict it).
    pub strike_if_unsettled: bool,
}

use super::credit::{CreditGrant, ValidatedCredit, grants_for_accepted_unit};
use super::unit::{
    ActiveUnit, Asker, OpenReplica, ReporterStanding, TIMED_OUT_KEPT, decide, timed_out_networks,
    timeouts_fail,
};
use super::{EngineClass, LeaseId, Network, ReopenedUnit, ResumeState, UnitDecision};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use wasmhive_protocol::{Hash, Status};

/// A job's verification and lease settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobPolicy {
    /// Matching replicas needed to accept a unit (under `adaptive`: a unit whose first
    /// replica was not accepted alone).
    pub quorum: u32,
    /// Replicas after which a unit without quorum fails.
    pub max_replicas: u32,
    /// How long a worker has before its replica is re-issued.
    pub lease_ms: u64,
    /// `Some`: adaptive replication (see `adaptive.rs`); `None`: fixed quorum.
    pub adaptive: Option<AdaptivePolicy>,
    /// Known-answer units given to a worker with fewer judged results than this.
    pub known_answer_probes: u32,
    /// Fresh units (per thousand) replaced by a decoy (see `decoy.rs`).
    pub decoy_per_mille: u32,
    /// `Some`: every replica runs on this engine class, the owner's (BOINC's homogeneous
    /// redundancy, for jobs that turn NaN canonicalisation off, whose float results may
    /// differ between ISAs); the owner's own run then judges every dispute.
    pub engine: Option<EngineClass>,
    /// `Some`: the job meters fuel, and credit is fuel up to this budget per replica
    /// (`credit.rs`); `None`: credit counts replicas.
    pub fuel_budget: Option<u64>,
}

/// Adaptive replication's one setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptivePolicy {
    /// Results of trusted workers checked by a replica anyway, per thousand.
    pub spot_check_per_mille: u32,
}

impl JobPolicy {
    /// Fixed replication: every unit needs `quorum` matching replicas.
    pub const fn fixed(quorum: u32, max_replicas: u32, lease_ms: u64) -> JobPolicy {
        JobPolicy {
            quorum,
            max_replicas,
            lease_ms,
            adaptive: None,
            known_answer_probes: 0,
            decoy_per_mille: 0,
            engine: None,
            fuel_budget: None,
        }
    }
}

/// How many recently accepted units a job keeps as known answers.
const KNOWN_ANSWERS_KEPT: usize = 32;

/// A unit accepted by a quorum of at least two, whose digest tests strangers.
#[derive(Clone, Debug)]
pub(super) struct KnownAnswer {
    pub(super) unit_index: u64,
    pub(super) digest: Hash,
    /// Networks whose replicas decided it (a worker there would only repeat itself, or its
    /// neighbour's answer).
    pub(super) networks: Vec<Network>,
}

/// A completed replica: who ran it, from which network, and what it produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaRecord {
    pub worker_id: super::WorkerId,
    pub network: Network,
    pub status: Status,
    pub digest: Hash,
    /// The fuel it reported, counted at most to the job's budget (`credit.rs`).
    pub fuel_used: Option<u64>,
}

/// A started, undecided unit as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveUnitRecord {
    pub unit_index: u64,
    pub replicas: Vec<ReplicaRecord>,
}

/// A started, undecided unit, for status pages.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ActiveUnitView {
    pub unit_index: u64,
    /// Completed replicas.
    pub replicas: u32,
    /// Replicas running now.
    pub leased: u32,
    /// Matching replicas the unit needs.
    pub matching_needed: u32,
    /// The largest group of matching replicas so far.
    pub matching_best: u32,
}

/// Counts for status pages and progress bars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobProgress {
    pub units: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub active: u64,
    pub leased: u64,
    /// Disputes about the job's units waiting for, or in, the owner's own run.
    pub disputed: u64,
    /// Outcome batches recorded and not yet stored.
    pub unstored_batches: u64,
}

impl JobProgress {
    pub fn decided(&self) -> u64 {
        self.succeeded + self.failed
    }

    /// Every unit decided and stored, and no dispute open that could reopen one.
    pub fn is_complete(&self) -> bool {
        self.decided() == self.units && self.disputed == 0 && self.unstored_batches == 0
    }
}

pub(super) struct CoreJob {
    pub(super) policy: JobPolicy,
    unit_count: u64,
    next_fresh_unit: u64,
    active: BTreeMap<u64, ActiveUnit>,
    needs_replica: BTreeSet<u64>,
    /// Units whose next replica is reserved for a worker, by worker (entries may be stale:
    /// checked when taken).
    reserved: super::FastHashMap<super::WorkerId, BTreeSet<u64>>,
    /// Where the next scan of waiting units starts (it goes round, so none waits long).
    scan_cursor: u64,
    succeeded: u64,
    failed: u64,
    /// Leases open on this job's units (kept, not summed, so `progress` is O(1)).
    open_leases: u64,
    /// Replicas judged by the last acceptance, until the core takes them.
    judged: Vec<(super::WorkerId, bool)>,
    /// Replicas of a decoy judged against its known answer, until the core takes them.
    judged_by_known_answer: Vec<(super::WorkerId, bool)>,
    /// Disputes (decoys and quorums with losers), until the core takes them.
    disputes: Vec<Dispute>,
    /// Accepted units reopened because an identity that helped decide them was proven
    /// wrong, with their earlier acceptance; they are run again before fresh units.
    reopened: BTreeMap<u64, ReopenedUnit>,
    /// Arbitrations of this job's units queued or running (see `arbitration.rs`).
    pub(super) arbitrations_open: u64,
    /// See [`super::Core::job_generation`].
    pub(super) generation: u64,
    /// See [`super::Core::outcomes_recorded`].
    pub(super) batches_unstored: u64,
    /// Identities that timed out on the unit accepted last, until the core takes them.
    unfinished: Vec<super::WorkerId>,
    /// Recently accepted units with their canonical digests, newest last.
    known_answers: VecDeque<KnownAnswer>,
    /// Accepted units to send out again as decoys before fresh units (`deciding_sets.rs`).
    audits: VecDeque<KnownAnswer>,
    audits_started: u64,
    /// Credit granted by the last acceptance, until the core takes it.
    credited: Vec<CreditGrant>,
    validated_credit: ValidatedCredit,
}

impl CoreJob {
    pub(super) fn resumed(
        unit_count: u64,
        policy: JobPolicy,
        resume: ResumeState,
        generation: u64,
    ) -> CoreJob {
        let quorum = policy.quorum;
        let mut job = CoreJob {
            generation,
            batches_unstored: 0,
            policy,
            unit_count,
            next_fresh_unit: resume.next_fresh_unit.min(unit_count),
            active: BTreeMap::new(),
            needs_replica: BTreeSet::new(),
            reserved: super::FastHashMap::default(),
            scan_cursor: 0,
            succeeded: resume.succeeded_units,
            failed: resume.failed_units,
            open_leases: 0,
            judged: Vec::new(),
            judged_by_known_answer: Vec::new(),
            disputes: Vec::new(),
            reopened: BTreeMap::new(),
            arbitrations_open: 0,
            unfinished: Vec::new(),
            known_answers: VecDeque::new(),
            audits: VecDeque::new(),
            audits_started: 0,
            credited: Vec::new(),
            validated_credit: resume.validated_credit,
        };
        for record in resume.active_units {
            assert!(record.unit_index < unit_count, "stored unit index beyond the job");
            let unit = ActiveUnit { replicas: record.replicas, ..ActiveUnit::new(quorum) };
            job.active.insert(record.unit_index, unit);
            job.refresh_needs(record.unit_index);
        }
        job
    }

    pub(super) fn progress(&self) -> JobProgress {
        debug_assert_eq!(
            self.open_leases,
            self.active.values().map(|unit| unit.leases.len() as u64).sum::<u64>(),
            "the open-lease count drifted"
        );
        JobProgress {
            units: self.unit_count,
            succeeded: self.succeeded,
            failed: self.failed,
            active: self.active.len() as u64,
            leased: self.open_leases,
            disputed: self.arbitrations_open,
            unstored_batches: self.batches_unstored,
        }
    }

    /// Started, undecided units (at most `limit`, lowest index first).
    pub(super) fn active_units(&self, limit: usize) -> Vec<ActiveUnitView> {
        self.active
            .iter()
            .take(limit)
            .map(|(unit_index, unit)| ActiveUnitView {
                unit_index: *unit_index,
                replicas: unit.replicas.len() as u32,
                leased: unit.leases.len() as u32,
                matching_needed: unit.quorum,
                matching_best: unit.largest_agreement().0,
            })
            .collect()
    }

    /// The replicas of an active unit so far.
    pub(super) fn active_replicas(&self, unit_index: u64) -> Option<&[ReplicaRecord]> {
        self.active.get(&unit_index).map(|unit| unit.replicas.as_slice())
    }

    pub(super) fn units_waiting_for_replica(&self) -> usize {
        self.needs_replica.len()
    }

    pub(super) fn next_fresh_unit(&self) -> u64 {
        self.next_fresh_unit
    }

    /// Records a lease; a worker that is not `trusted` raises the unit to the full quorum.
    pub(super) fn lease_opened(
        &mut self,
        unit_index: u64,
        asker: &Asker<'_>,
        lease_id: LeaseId,
        trusted: bool,
        now_ms: u64,
    ) {
        let unit = self.active.get_mut(&unit_index).expect("leases are opened on active units");
        assert!(
            unit.worker_can_take(asker, now_ms),
            "two replicas of a unit went to one worker or one network"
        );
        if !trusted {
            unit.quorum = self.policy.quorum;
        }
        unit.leases.push(OpenReplica {
            lease_id,
            worker_id: asker.worker_id.clone(),
            network: asker.network.clone(),
        });
        unit.timed_out_worker = None;
        unit.drawn_worker = None;
        self.open_leases += 1;
        self.refresh_needs(unit_index);
    }

    pub(super) fn lease_closed_without_outcome(&mut self, unit_index: u64, lease_id: LeaseId) {
        if let Some(unit) = self.active.get_mut(&unit_index) {
            let before = unit.leases.len();
            unit.leases.retain(|open| open.lease_id != lease_id);
            self.open_leases -= (before - unit.leases.len()) as u64;
            self.refresh_needs(unit_index);
        }
    }

    /// Records a replica. `accept_alone`: the core's draw for adaptive replication; a
    /// unit whose single replica is not accepted alone (draw lost, or not a success) now
    /// needs the full quorum.
    pub(super) fn record_outcome(
        &mut self,
        unit_index: u64,
        lease_id: LeaseId,
        replica: ReplicaRecord,
        standing: ReporterStanding,
        now_ms: u64,
    ) -> (Option<super::ReplicaRecord>, Option<UnitDecision>) {
        let policy = self.policy.clone();
        let accept_alone = standing.accept_alone;
        let Some(unit) = self.active.get_mut(&unit_index) else {
            return (None, None); // decided while this replica was running
        };
        let before = unit.leases.len();
        unit.leases.retain(|open| open.lease_id != lease_id);
        if unit.leases.len() == before {
            // A lease of an earlier run of this unit (a decoy that ended, a unit since
            // reopened): its outcome belongs to no replica of the current run.
            return (None, None);
        }
        self.open_leases -= 1;
        if let Some(known) = unit.known_digest {
            self.record_decoy_replica(unit_index, replica, known);
            return (None, None);
        }
        if !replica.status.is_deterministic() {
            // Only the last worker to time out is kept out, and only for a while: when it is
            // the only worker left that can give the unit a replica (a quorum-2 unit on a
            // 2-worker grid), it takes the unit again afterwards, so the unit is not stranded.
            unit.host_timeouts += 1;
            let already = unit.timed_out.iter().any(|(worker_id, _, _)| *worker_id == replica.worker_id);
            if !already && unit.timed_out.len() < TIMED_OUT_KEPT {
                unit.timed_out.push((
                    replica.worker_id.clone(),
                    replica.network.clone(),
                    standing.timeout_counts,
                ));
            }
            unit.timed_out_worker =
                Some((replica.worker_id, now_ms.saturating_add(super::TIMED_OUT_WORKER_WAIT_MS)));
            let decision = timeouts_fail(unit, &policy).then(|| UnitDecision::Failed {
                reason: format!(
                    "host timeout {} times, on {} networks: the unit runs longer than the wall-clock guard; raise [limits] timeout",
                    unit.host_timeouts,
                    timed_out_networks(unit)
                ),
                replicas: unit.replicas.len() as u32,
            });
            return (None, self.finish_or_refresh(unit_index, decision));
        }
        unit.replicas.push(replica.clone());
        if unit.quorum < policy.quorum && !(accept_alone && replica.status.is_success()) {
            unit.quorum = policy.quorum;
        }
        let decision = decide(unit, &policy);
        if let Some(UnitDecision::Accepted { digest: canonical, .. }) = &decision {
            let metered = policy.fuel_budget.is_some();
            self.credited =
                grants_for_accepted_unit(&unit.replicas, canonical, metered, &mut self.validated_credit);
        }
        if let Some(UnitDecision::Accepted { status, .. }) = &decision
            && status.is_success()
        {
            self.unfinished = unit.timed_out.iter().map(|(worker_id, _, _)| worker_id.clone()).collect();
        }
        if let Some(UnitDecision::Accepted { digest: canonical, status, .. }) = &decision
            && status.is_success()
            && let Some(earlier) = unit.earlier.take()
            && earlier.accepted_digest != *canonical
        {
            let answers = earlier
                .deciders
                .into_iter()
                .map(|worker_id| super::Answer {
                    worker_id,
                    status: Status::Success,
                    digest: earlier.accepted_digest,
                })
                .collect();
            self.disputes.push(Dispute {
                unit_index,
                accepted_digest: *canonical,
                answers,
                strike_if_unsettled: false,
            });
        }
        if let Some(UnitDecision::Accepted { digest: canonical, status, replicas }) = &decision
            && *replicas >= 2
        {
            let (agreed, disagreed): (Vec<&ReplicaRecord>, Vec<&ReplicaRecord>) =
                unit.replicas.iter().partition(|replica| replica.digest == *canonical);
            if status.is_success() && !disagreed.is_empty() {
                // Who is right is for the owner's own run to say (`arbitration.rs`).
                self.disputes.push(Dispute {
                    unit_index,
                    accepted_digest: *canonical,
                    answers: disagreed.into_iter().map(|replica| replica.clone().into()).collect(),
                    strike_if_unsettled: true,
                });
                self.judged = agreed.iter().map(|replica| (replica.worker_id.clone(), true)).collect();
            } else {
                self.judged = unit
                    .replicas
                    .iter()
                    .map(|replica| (replica.worker_id.clone(), replica.digest == *canonical))
                    .collect();
                if status.is_success() {
                    self.remember_known_answer(unit_index, *canonical);
                }
            }
        }
        (Some(replica), self.finish_or_refresh(unit_index, decision))
    }

    /// Takes back the acceptance of these units (they were accepted with a success, and an
    /// identity that helped decide them was proven wrong): each runs again from no replicas,
    /// to the full quorum. Returns how many were reopened (units not decided, or reopened
    /// already, are left alone).
    pub(super) fn reopen(&mut self, units: Vec<ReopenedUnit>) -> u64 {
        let mut reopened = 0;
        let indexes: BTreeSet<u64> = units.iter().map(|unit| unit.unit_index).collect();
        for unit in units {
            let unit_index = unit.unit_index;
            if self.active.get(&unit_index).is_some_and(|active| active.known_digest.is_some()) {
                self.end_decoy(unit_index); // its known answer is in doubt now
            }
            let decided = unit_index < self.next_fresh_unit && !self.active.contains_key(&unit_index);
            if decided && self.succeeded > 0 && !self.reopened.contains_key(&unit_index) {
                self.reopened.insert(unit_index, unit);
                self.succeeded -= 1;
                reopened += 1;
            }
        }
        self.known_answers.retain(|known| !indexes.contains(&known.unit_index));
        self.audits.retain(|audit| !indexes.contains(&audit.unit_index));
        reopened
    }

    fn remember_known_answer(&mut self, unit_index: u64, digest: Hash) {
        if self.known_answers.len() >= KNOWN_ANSWERS_KEPT {
            self.known_answers.pop_front();
        }
        let networks = self.active.get(&unit_index).map_or_else(Vec::new, |unit| {
            unit.replicas.iter().map(|replica| replica.network.clone()).collect()
        });
        self.known_answers.push_back(KnownAnswer { unit_index, digest, networks });
    }

    /// A known answer no replica from `network` helped decide, newest first.
    pub(super) fn known_answer_for(&self, network: &Network) -> Option<&KnownAnswer> {
        self.known_answers.iter().rev().find(|known| !known.networks.contains(network))
    }

    /// The credit the unit accepted last granted; taken once by the core.
    pub(super) fn take_credited(&mut self) -> Vec<CreditGrant> {
        std::mem::take(&mut self.credited)
    }

    /// The (worker, agreed with the canonical result) pairs of the unit accepted last;
    /// taken once by the core for reputation.
    pub(super) fn take_judged(&mut self) -> Vec<(super::WorkerId, bool)> {
        std::mem::take(&mut self.judged)
    }

    /// Disputes since the core last asked.
    pub(super) fn take_disputes(&mut self) -> Vec<Dispute> {
        std::mem::take(&mut self.disputes)
    }

    /// The identities that timed out on the unit accepted last, which others finished;
    /// taken once by the core for reputation.
    pub(super) fn take_unfinished(&mut self) -> Vec<super::WorkerId> {
        std::mem::take(&mut self.unfinished)
    }

    fn finish_or_refresh(&mut self, unit_index: u64, decision: Option<UnitDecision>) -> Option<UnitDecision> {
        match &decision {
            Some(UnitDecision::Accepted { status, .. }) if status.is_success() => self.succeeded += 1,
            Some(_) => self.failed += 1,
            None => {
                self.refresh_needs(unit_index);
                return None;
            }
        }
        if let Some(unit) = self.active.remove(&unit_index) {
            self.open_leases -= unit.leases.len() as u64;
        }
        self.needs_replica.remove(&unit_index);
        assert!(self.succeeded + self.failed <= self.unit_count, "more units decided than exist");
        decision
    }

    fn refresh_needs(&mut self, unit_index: u64) {
        let needed = self.active.get(&unit_index).map_or(0, |unit| unit.replicas_needed(&self.policy));
        if needed > 0 {
            self.needs_replica.insert(unit_index);
        } else {
            self.needs_replica.remove(&unit_index);
        }
    }
}

/// Units waiting for a replica one request passes over at most, per job (the next request
/// goes on from there: scanning every waiting unit per request cost 4× the owner's time
/// with 1,000 workers, measured with `simulate trust --peers 1000 --units 20000`).
pub(super) const WAITING_UNITS_SCANNED_MAX: usize = 64;

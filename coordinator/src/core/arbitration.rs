//! Arbitration: the owner's own run of a unit settles who lied, and a proven liar's
//! accepted work is taken back.
//!
//! A dispute (a decoy some replica disagreed on, `job/decoy.rs`, or replicas that lost a
//! quorum that accepted a success) cannot tell by itself who is wrong: the disagreeing
//! replicas, or the quorum that accepted the unit (colluders can win a quorum). The owner is the one party
//! it trusts, so it runs the unit itself (the server in its own sandbox, with the job's
//! module and limits; the simulation knows the truth). Then:
//! - identities whose replica differs from the owner's answer (the decoy's replicas, and the
//!   unit's deciders when the accepted digest differs) are proven wrong and banned for good
//!   (until then a disagreement is no strike);
//! - every unit a banned identity helped accept in a running job is reopened
//!   ([`Core::reopen_units`]): it runs again, at the full quorum, without it;
//! - when the owner's answer matches no replica at all, or its own run failed on its host,
//!   nobody is proven anything (the module may not be deterministic there): no verdict.
//!
//! Limits: at most [`ARBITRATIONS_WAITING_MAX`] wait at once; further disputes are counted
//! and dropped, and the losers of a quorum then take an ordinary strike instead (each
//! verdict bans an identity, so a flood costs its senders theirs). An arbitration costs the
//! owner one unit's run; an honest grid needs none.

use super::{Core, Judgement, ReplicaRecord};
use wasmhive_protocol::{Hash, Status};

/// Disputes waiting for the owner's run, at most.
pub const ARBITRATIONS_WAITING_MAX: usize = 64;

/// What one identity answered for a unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub worker_id: super::WorkerId,
    pub status: Status,
    pub digest: Hash,
}

impl From<ReplicaRecord> for Answer {
    fn from(replica: ReplicaRecord) -> Answer {
        Answer { worker_id: replica.worker_id, status: replica.status, digest: replica.digest }
    }
}

/// A unit the owner must run itself to settle a dispute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arbitration {
    pub job_id: super::JobId,
    pub unit_index: u64,
    /// The digest the unit was accepted with.
    pub accepted_digest: Hash,
    /// The answers that disagreed with it (a decoy's replicas, a quorum's losers, or the
    /// deciders of its earlier acceptance).
    pub answers: Vec<Answer>,
}

/// A unit taken back, with what it was accepted with and who decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReopenedUnit {
    pub unit_index: u64,
    pub accepted_digest: Hash,
    pub deciders: Vec<super::WorkerId>,
}

/// What the owner's run proved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Identities proven wrong, each with its new (banned) reputation. The server reopens
    /// the units each helped accept.
    pub banned: Vec<Judgement>,
    /// The unit's accepted result was wrong.
    pub accepted_was_wrong: bool,
    /// Why nobody was judged, when nobody was.
    pub no_verdict: Option<String>,
}

impl Core {
    /// Disputes waiting for the owner's run; each is handed out once.
    pub fn take_arbitrations(&mut self) -> Vec<Arbitration> {
        std::mem::take(&mut self.arbitrations)
    }

    pub fn has_arbitrations(&self) -> bool {
        !self.arbitrations.is_empty()
    }

    /// Disputes dropped because [`ARBITRATIONS_WAITING_MAX`] were waiting.
    pub fn arbitrations_dropped(&self) -> u64 {
        self.arbitrations_dropped
    }

    /// Settles a dispute with the owner's own answer (`status`, `digest` of its output).
    /// `deciders`: the identities whose replicas made up the unit's accepted result (the
    /// store knows them). Bans whoever the answer proves wrong.
    pub fn settle_arbitration(
        &mut self,
        arbitration: &Arbitration,
        status: &Status,
        digest: Hash,
        deciders: &[super::WorkerId],
    ) -> Verdict {
        if !status.is_deterministic() {
            let reason = format!("the owner's own run failed on its host: {status:?}");
            return Verdict { no_verdict: Some(reason), ..Verdict::default() };
        }
        let answer_of = |answer: &Answer| (answer.status.clone(), answer.digest);
        let owner_answer = (status.clone(), digest);
        let accepted_answer = (Status::Success, arbitration.accepted_digest);
        let anyone_agrees = owner_answer == accepted_answer
            || arbitration.answers.iter().any(|answer| answer_of(answer) == owner_answer);
        if !anyone_agrees {
            return Verdict {
                no_verdict: Some(
                    "the owner's own run matched no replica: is the module deterministic?".into(),
                ),
                ..Verdict::default()
            };
        }
        let accepted_was_wrong = owner_answer != accepted_answer;
        let mut proven_wrong: Vec<super::WorkerId> = arbitration
            .answers
            .iter()
            .filter(|answer| answer_of(answer) != owner_answer)
            .map(|answer| answer.worker_id.clone())
            .collect();
        if accepted_was_wrong {
            proven_wrong.extend(deciders.iter().cloned());
        }
        proven_wrong.sort();
        proven_wrong.dedup();
        // One ban each: what a banned identity helped accept was taken back at its ban.
        proven_wrong
            .retain(|worker_id| !self.reputations.get(worker_id).is_some_and(|known| known.is_banned()));
        let banned = proven_wrong
            .into_iter()
            .map(|worker_id| {
                let reputation = self.reputations.ban(&worker_id);
                Judgement { worker_id, agreed: false, reputation }
            })
            .collect();
        Verdict { banned, accepted_was_wrong, no_verdict: None }
    }

    /// Marks a taken arbitration as over, after the units it proved wrong were reopened
    /// (settled or not: call it once for each one taken). A job completes only when none
    /// of its arbitrations is open, so a lie a dispute has found is never left in a
    /// completed job's results.
    pub fn arbitration_ended(&mut self, arbitration: &Arbitration) {
        if let Some(job) = self.jobs.get_mut(&arbitration.job_id) {
            job.arbitrations_open = job.arbitrations_open.saturating_sub(1);
        }
    }

    /// Takes back the acceptance of these units of a job (each accepted with a success, by
    /// a quorum an identity proven wrong was part of): they run again, at the full quorum,
    /// before fresh units. When one is accepted again with another digest, the deciders of
    /// its earlier acceptance are disputed in turn (so a liar's accomplice does not keep the
    /// trust it earned agreeing with it). Returns how many were reopened.
    pub fn reopen_units(&mut self, job_id: &str, units: Vec<ReopenedUnit>) -> u64 {
        self.jobs.get_mut(job_id).map_or(0, |job| job.reopen(units))
    }

    /// Queues the disputes a job has; returns the strikes of those that could not be queued
    /// and strike when unsettled.
    pub(super) fn queue_disputes(&mut self, job_id: &str, now_ms: u64) -> Vec<Judgement> {
        let Some(job) = self.jobs.get_mut(job_id) else { return Vec::new() };
        let mut strikes = Vec::new();
        for mut dispute in job.take_disputes() {
            // A banned identity has nothing left to prove wrong.
            dispute.answers.retain(|answer| {
                !self.reputations.get(&answer.worker_id).is_some_and(|known| known.is_banned())
            });
            if dispute.answers.is_empty() {
                continue;
            }
            let unqueued =
                self.queue_arbitration(job_id, dispute.unit_index, dispute.accepted_digest, dispute.answers);
            if let Some(answers) = unqueued.filter(|_| dispute.strike_if_unsettled) {
                for answer in answers {
                    let reputation = self.reputations.record(&answer.worker_id, false, now_ms);
                    strikes.push(Judgement { worker_id: answer.worker_id, agreed: false, reputation });
                }
            }
        }
        strikes
    }

    /// Queues one dispute; when [`ARBITRATIONS_WAITING_MAX`] wait it is dropped, counted, and
    /// its answers handed back.
    pub(super) fn queue_arbitration(
        &mut self,
        job_id: &str,
        unit_index: u64,
        accepted_digest: Hash,
        answers: Vec<Answer>,
    ) -> Option<Vec<Answer>> {
        if self.arbitrations.len() >= ARBITRATIONS_WAITING_MAX {
            self.arbitrations_dropped += 1;
            return Some(answers);
        }
        if let Some(job) = self.jobs.get_mut(job_id) {
            job.arbitrations_open += 1;
        }
        self.arbitrations.push(Arbitration { job_id: job_id.into(), unit_index, accepted_digest, answers });
        None
    }
}

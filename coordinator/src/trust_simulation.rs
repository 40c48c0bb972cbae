//! A seeded simulation of verification against attackers, driving the real core (no
//! sockets): `wasmhive simulate trust` prints what a policy costs and what it lets through.
//!
//! Each round (one second of the owner's clock), the workers in random order answer the
//! leases they hold and ask for one more. Honest workers answer at once with the true
//! digest. A fraction of the peers are attackers, each on a network of its own unless the
//! attack says otherwise, playing one [`Attack`]. Every job leases for 60 rounds; expired
//! leases go back to the queue.
//!
//! The simulation plays the owner's store too: it remembers who decided each accepted unit,
//! settles the core's arbitrations with the true answer (the owner's own run) and reopens
//! the units a banned identity helped accept. Wrong results are counted when the job ends:
//! an accepted lie later taken back is not one.

use crate::core::{
    AdaptivePolicy, Core, JobPolicy, LeaseGrant, LeaseLimits, Network, ReopenedUnit, ResumeState,
    UnitDecision,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use wasmhive_protocol::{Hash, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// Lie on every unit, each attacker its own lie.
    Saboteurs,
    /// Lie on every unit with one shared wrong answer (two can form a quorum).
    Colluders,
    /// Hold each lease for a round, and lie (one shared answer) only when the attackers
    /// hold exactly the replicas a quorum needs of a unit none of them has seen before;
    /// otherwise answer honestly, so honest replicas, probes (leased alone) and decoys of
    /// units they saw never catch them.
    CarefulColluders,
    /// One careful attacker plus `sybil` more identities, all on one network.
    SybilGroup,
    /// Take every lease they may and never answer.
    Hoarders,
    /// Answer `host_timeout` to every lease.
    Griefers,
}

impl Attack {
    pub const ALL: [Attack; 6] = [
        Attack::Saboteurs,
        Attack::Colluders,
        Attack::CarefulColluders,
        Attack::SybilGroup,
        Attack::Hoarders,
        Attack::Griefers,
    ];

    /// The name `wasmhive simulate trust --attack` takes.
    pub fn flag(self) -> &'static str {
        match self {
            Attack::Saboteurs => "saboteurs",
            Attack::Colluders => "colluders",
            Attack::CarefulColluders => "careful-colluders",
            Attack::SybilGroup => "sybil-group",
            Attack::Hoarders => "hoarders",
            Attack::Griefers => "griefers",
        }
    }

    /// The attack named `flag`; the error lists the names.
    pub fn from_flag(flag: &str) -> Result<Attack, String> {
        Attack::ALL.into_iter().find(|attack| attack.flag() == flag).ok_or_else(|| {
            let names: Vec<&str> = Attack::ALL.iter().map(|attack| attack.flag()).collect();
            format!("\"{flag}\" is not an attack: use one of {}", names.join(", "))
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Attack::Saboteurs => "saboteurs",
            Attack::Colluders => "colluders",
            Attack::CarefulColluders => "careful colluders",
            Attack::SybilGroup => "Sybil group on one network",
            Attack::Hoarders => "hoarders",
            Attack::Griefers => "host-timeout griefers",
        }
    }
}

#[derive(Clone, Debug)]
pub struct TrustScenario {
    pub peers: usize,
    pub units: u64,
    /// Fraction of the peers that attack (at least one when above 0).
    pub attackers: f64,
    pub attack: Attack,
    /// Extra identities of the Sybil group.
    pub sybil: usize,
    pub quorum: u32,
    pub adaptive: bool,
    /// Fraction of fresh units replaced by decoys.
    pub decoys: f64,
    pub seed: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrustFigures {
    /// Acceptances (a unit reopened and accepted again counts twice).
    pub units_accepted: u64,
    /// Wrong results among the job's accepted units when it ended.
    pub wrong_accepted: u64,
    /// Units reopened because an identity that helped accept them was banned.
    pub units_reopened: u64,
    /// Identities the owner's own runs proved wrong.
    pub identities_banned: u64,
    /// Of those, honest ones (must be 0).
    pub honest_banned: u64,
    pub units_failed: u64,
    pub replicas_per_accepted_unit: f64,
    /// Over the second half of the accepted units (after reputations had time to form).
    pub replicas_per_unit_after_warm_up: f64,
    /// Results that counted towards no unit's decision: known-answer probes, decoys, and
    /// replicas that arrived after their unit was decided (verification cost on top of the
    /// replicas of accepted units).
    pub known_answer_replicas: u64,
    /// Every result reported (replicas of accepted units, probes, decoys, replicas of units
    /// reopened or decided meanwhile) per unit of the job: the whole cost.
    pub replicas_per_unit_all_in: f64,
    /// Per attacker identity: results it reported before it was quarantined (None: never).
    pub results_until_quarantine: Vec<Option<u64>>,
    /// Rounds until every unit was decided (the job's time).
    pub rounds: u64,
}

const ROUNDS_MAX: u64 = 100_000;
const ROUND_MS: u64 = 1000;
const LEASE_MS: u64 = 60 * ROUND_MS;

fn truth(unit_index: u64) -> Hash {
    Hash::of(format!("true output of unit {unit_index}").as_bytes())
}

fn shared_lie(unit_index: u64) -> Hash {
    Hash::of(format!("colluding lie {unit_index}").as_bytes())
}

/// Who plays what: worker ids, networks, and which are attackers.
struct Cast {
    workers: Vec<String>,
    networks: Vec<Network>,
    attacking: Vec<bool>,
}

fn cast(scenario: &TrustScenario) -> Cast {
    let mut attackers = (scenario.peers as f64 * scenario.attackers).round() as usize;
    if scenario.attackers > 0.0 {
        attackers = attackers.max(1);
    }
    let sybil = if scenario.attack == Attack::SybilGroup && attackers > 0 { scenario.sybil } else { 0 };
    let workers: Vec<String> =
        (0..scenario.peers + sybil).map(|index| format!("worker-{index:04}")).collect();
    let attacking = (0..workers.len()).map(|index| index < attackers || index >= scenario.peers).collect();
    let networks = (0..workers.len())
        .map(|index| {
            let one_network =
                scenario.attack == Attack::SybilGroup && (index < attackers || index >= scenario.peers);
            Network::of_identity(&workers[if one_network { 0 } else { index }])
        })
        .collect();
    Cast { workers, networks, attacking }
}

/// What the careful attackers share: leases they hold unanswered, lies told per unit, and
/// every unit any of them has answered (a unit seen again is a re-issue, perhaps a test).
#[derive(Default)]
struct Conspiracy {
    held: Vec<(usize, LeaseGrant)>,
    lies_told: HashMap<u64, u32>,
    answered: HashSet<u64>,
}

impl Conspiracy {
    /// Lie when a partner already lied on the unit; otherwise only on a unit none of them has
    /// seen before, of which they hold exactly the replicas a quorum needs.
    fn should_lie(&self, unit_index: u64, quorum: u32) -> bool {
        if self.lies_told.contains_key(&unit_index) {
            return true;
        }
        let holding = self.held.iter().filter(|(_, grant)| grant.unit_index == unit_index).count() as u32;
        !self.answered.contains(&unit_index) && holding == quorum
    }
}

/// What the owner's store knows: replicas of undecided units and who decided each
/// accepted one.
#[derive(Default)]
struct OwnerRecord {
    replicas: HashMap<u64, Vec<(crate::core::WorkerId, Hash)>>,
    accepted: BTreeMap<u64, (Hash, Vec<crate::core::WorkerId>)>,
}

impl OwnerRecord {
    fn accept(&mut self, unit_index: u64, digest: Hash) {
        let replicas = self.replicas.remove(&unit_index).unwrap_or_default();
        let deciders = replicas
            .into_iter()
            .filter(|(_, replica)| *replica == digest)
            .map(|(worker, _)| worker)
            .collect();
        self.accepted.insert(unit_index, (digest, deciders));
    }

    /// Settles every waiting arbitration with the true answer; reopens what the banned
    /// helped accept. Returns the identities banned.
    fn settle(
        &mut self,
        core: &mut Core,
        conspiracy: &mut Conspiracy,
        figures: &mut TrustFigures,
    ) -> Vec<crate::core::WorkerId> {
        let mut banned = Vec::new();
        for arbitration in core.take_arbitrations() {
            let deciders = self
                .accepted
                .get(&arbitration.unit_index)
                .map_or_else(Vec::new, |(_, deciders)| deciders.clone());
            let verdict = core.settle_arbitration(
                &arbitration,
                &Status::Success,
                truth(arbitration.unit_index),
                &deciders,
            );
            if verdict.accepted_was_wrong
                && self
                    .accepted
                    .get(&arbitration.unit_index)
                    .is_some_and(|(digest, _)| *digest == arbitration.accepted_digest)
            {
                figures.units_reopened += self.take_back(core, conspiracy, &[arbitration.unit_index]);
            }
            for judgement in verdict.banned {
                let helped: Vec<u64> = self
                    .accepted
                    .iter()
                    .filter(|(_, (_, deciders))| deciders.contains(&judgement.worker_id))
                    .map(|(unit_index, _)| *unit_index)
                    .collect();
                figures.units_reopened += self.take_back(core, conspiracy, &helped);
                figures.identities_banned += 1;
                banned.push(judgement.worker_id);
            }
            core.arbitration_ended(&arbitration);
        }
        banned
    }

    /// Forgets these accepted units and has the core run them again.
    fn take_back(&mut self, core: &mut Core, conspiracy: &mut Conspiracy, unit_indexes: &[u64]) -> u64 {
        let units = unit_indexes
            .iter()
            .filter_map(|unit_index| {
                let (accepted_digest, deciders) = self.accepted.remove(unit_index)?;
                conspiracy.lies_told.remove(unit_index);
                Some(ReopenedUnit { unit_index: *unit_index, accepted_digest, deciders })
            })
            .collect();
        core.reopen_units("job", units)
    }
}

pub fn simulate_trust(scenario: &TrustScenario) -> TrustFigures {
    let mut random = fastrand::Rng::with_seed(scenario.seed);
    let Cast { workers, networks, attacking } = cast(scenario);
    let mut core = Core::new();
    core.set_lease_limits(Some(LeaseLimits::OWNER));
    let mut policy = JobPolicy::fixed(scenario.quorum, scenario.quorum + 3, LEASE_MS);
    policy.decoy_per_mille = (scenario.decoys.clamp(0.0, 0.5) * 1000.0).round() as u32;
    if scenario.adaptive {
        policy.adaptive = Some(AdaptivePolicy { spot_check_per_mille: 50 });
        policy.known_answer_probes = 2;
    }
    core.add_job("job", scenario.units, policy, ResumeState::default());
    let mut figures = TrustFigures::default();
    let mut reported: BTreeMap<usize, u64> = BTreeMap::new();
    let mut quarantined_after: BTreeMap<usize, u64> = BTreeMap::new();
    let mut replicas_per_accepted = Vec::new();
    let mut conspiracy = Conspiracy::default();
    let mut owner = OwnerRecord::default();
    let mut results_reported = 0u64;
    let mut order: Vec<usize> = (0..workers.len()).collect();
    for round in 0..ROUNDS_MAX {
        figures.rounds = round + 1;
        let now_ms = round * ROUND_MS;
        core.expire_leases(now_ms);
        random.shuffle(&mut order);
        for &index in &order {
            let mut answers = Vec::new();
            let careful =
                attacking[index] && matches!(scenario.attack, Attack::CarefulColluders | Attack::SybilGroup);
            if careful {
                let mine: Vec<LeaseGrant> = conspiracy
                    .held
                    .iter()
                    .filter(|(holder, _)| *holder == index)
                    .map(|(_, grant)| grant.clone())
                    .collect();
                let lies: Vec<bool> = mine
                    .iter()
                    .map(|grant| conspiracy.should_lie(grant.unit_index, scenario.quorum))
                    .collect();
                conspiracy.held.retain(|(holder, _)| *holder != index);
                for (grant, lie) in mine.into_iter().zip(lies) {
                    if lie {
                        *conspiracy.lies_told.entry(grant.unit_index).or_default() += 1;
                    }
                    conspiracy.answered.insert(grant.unit_index);
                    let digest = if lie { shared_lie(grant.unit_index) } else { truth(grant.unit_index) };
                    answers.push((grant, Status::Success, digest));
                }
            }
            let slots = if attacking[index] && scenario.attack == Attack::Hoarders { 64 } else { 1 };
            for grant in core.request_work(&workers[index], &networks[index], slots, now_ms) {
                let unit_index = grant.unit_index;
                match (attacking[index], scenario.attack) {
                    (false, _) => answers.push((grant, Status::Success, truth(unit_index))),
                    (true, Attack::Saboteurs) => {
                        let lie = Hash::of(format!("lie {index} {unit_index}").as_bytes());
                        answers.push((grant, Status::Success, lie));
                    }
                    (true, Attack::Colluders) => {
                        answers.push((grant, Status::Success, shared_lie(unit_index)))
                    }
                    (true, Attack::CarefulColluders | Attack::SybilGroup) => {
                        conspiracy.held.push((index, grant))
                    }
                    (true, Attack::Hoarders) => {}
                    (true, Attack::Griefers) => answers.push((grant, Status::HostTimeout, Hash::of(b"-"))),
                }
            }
            for (grant, status, digest) in answers {
                let Ok(effect) =
                    core.report_outcome(&workers[index], grant.lease_id, &status, digest, now_ms)
                else {
                    continue; // the lease expired or its unit was decided meanwhile
                };
                *reported.entry(index).or_default() += 1;
                if status.is_deterministic() {
                    results_reported += 1;
                }
                if effect.replica.is_none() && status.is_deterministic() {
                    figures.known_answer_replicas += 1;
                }
                for judgement in &effect.judgements {
                    let judged = workers
                        .iter()
                        .position(|candidate| **candidate == *judgement.worker_id)
                        .expect("a known worker");
                    if attacking[judged] && judgement.reputation.quarantined_until_ms.is_some() {
                        quarantined_after
                            .entry(judged)
                            .or_insert(reported.get(&judged).copied().unwrap_or(0));
                    }
                }
                if let Some(replica) = &effect.replica {
                    let replicas = owner.replicas.entry(effect.unit_index).or_default();
                    replicas.push((replica.worker_id.clone(), replica.digest));
                }
                match effect.decision {
                    Some(UnitDecision::Accepted { digest, replicas, .. }) => {
                        figures.units_accepted += 1;
                        replicas_per_accepted.push(u64::from(replicas));
                        owner.accept(effect.unit_index, digest);
                    }
                    Some(UnitDecision::Failed { .. }) => figures.units_failed += 1,
                    None => {}
                }
            }
            for banned in owner.settle(&mut core, &mut conspiracy, &mut figures) {
                let judged =
                    workers.iter().position(|candidate| **candidate == *banned).expect("a known worker");
                if attacking[judged] {
                    quarantined_after.entry(judged).or_insert(reported.get(&judged).copied().unwrap_or(0));
                } else {
                    figures.honest_banned += 1;
                }
            }
        }
        if core.progress("job").is_some_and(|progress| progress.is_complete()) {
            break;
        }
    }
    figures.wrong_accepted =
        owner.accepted.iter().filter(|(unit_index, (digest, _))| *digest != truth(**unit_index)).count()
            as u64;
    figures.replicas_per_accepted_unit = mean(&replicas_per_accepted);
    figures.replicas_per_unit_all_in = results_reported as f64 / scenario.units.max(1) as f64;
    figures.replicas_per_unit_after_warm_up = mean(&replicas_per_accepted[replicas_per_accepted.len() / 2..]);
    figures.results_until_quarantine = (0..workers.len())
        .filter(|index| attacking[*index])
        .map(|index| quarantined_after.get(&index).copied())
        .collect();
    figures
}

fn mean(values: &[u64]) -> f64 {
    values.iter().sum::<u64>() as f64 / values.len().max(1) as f64
}

#[cfg(test)]
mod tests;

//! A seeded simulation of verification with dishonest workers, driving the real core (no
//! sockets): `wasmhive simulate trust` prints what a policy costs and what it lets through.
//!
//! Workers take one lease per round in random order and answer at once. Honest workers
//! return the true digest. Saboteurs lie on every unit: alone (`colluding = false`) each lie
//! is different; colluding, all saboteurs return the same wrong digest for a unit, so two
//! of them can form a quorum. A Sybil attacker adds `sybil` more colluding identities, all
//! on the network of the first saboteur (an identity costs a key, an address block more);
//! every other worker is on a network of its own.
//! With `adaptive`, the job uses adaptive replication (5% spot checks) and two known-answer
//! units per stranger.

use crate::core::{AdaptivePolicy, Core, JobPolicy, LeaseLimits, Network, ResumeState, UnitDecision};
use std::collections::BTreeMap;
use wasmhive_protocol::{Hash, Status};

#[derive(Clone, Debug)]
pub struct TrustScenario {
    pub peers: usize,
    pub units: u64,
    pub saboteur_fraction: f64,
    pub colluding: bool,
    pub sybil: usize,
    pub quorum: u32,
    pub adaptive: bool,
    pub seed: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrustFigures {
    pub units_accepted: u64,
    pub wrong_accepted: u64,
    pub units_failed: u64,
    pub replicas_per_accepted_unit: f64,
    /// Over the second half of the accepted units (after reputations had time to form).
    pub replicas_per_unit_after_warm_up: f64,
    /// Replicas run for known-answer units (verification cost on top of the replicas).
    pub known_answer_replicas: u64,
    /// Per saboteur identity: results it reported before it was quarantined (None: never).
    pub results_until_quarantine: Vec<Option<u64>>,
    pub rounds: u64,
}

const ROUNDS_MAX: u64 = 100_000;

fn truth(unit_index: u64) -> Hash {
    Hash::of(format!("true output of unit {unit_index}").as_bytes())
}

pub fn simulate_trust(scenario: &TrustScenario) -> TrustFigures {
    let mut random = fastrand::Rng::with_seed(scenario.seed);
    let saboteurs = (scenario.peers as f64 * scenario.saboteur_fraction).round() as usize;
    let sybil = if saboteurs > 0 { scenario.sybil } else { 0 };
    let workers: Vec<String> =
        (0..scenario.peers + sybil).map(|index| format!("worker-{index:04}")).collect();
    let is_saboteur = |index: usize| index < saboteurs || index >= scenario.peers;
    let networks: Vec<Network> = (0..workers.len())
        .map(|index| Network::of_identity(&workers[if index >= scenario.peers { 0 } else { index }]))
        .collect();
    let mut core = Core::new();
    core.set_lease_limits(Some(LeaseLimits::OWNER));
    let mut policy = JobPolicy::fixed(scenario.quorum, scenario.quorum + 4, 1_000_000);
    if scenario.adaptive {
        policy.adaptive = Some(AdaptivePolicy { spot_check_per_mille: 50 });
        policy.known_answer_probes = 2;
    }
    core.add_job("job", scenario.units, policy, ResumeState::default());
    let mut figures = TrustFigures::default();
    let mut reported: BTreeMap<usize, u64> = BTreeMap::new();
    let mut quarantined_after: BTreeMap<usize, u64> = BTreeMap::new();
    let mut replicas_per_accepted = Vec::new();
    let mut order: Vec<usize> = (0..workers.len()).collect();
    for round in 0..ROUNDS_MAX {
        figures.rounds = round + 1;
        let now_ms = round * 1000;
        random.shuffle(&mut order);
        for &index in &order {
            for grant in core.request_work(&workers[index], &networks[index], 1, now_ms) {
                let digest = match (is_saboteur(index), scenario.colluding) {
                    (false, _) => truth(grant.unit_index),
                    (true, true) => Hash::of(format!("colluding lie {}", grant.unit_index).as_bytes()),
                    (true, false) => Hash::of(format!("lie {index} {}", grant.unit_index).as_bytes()),
                };
                let effect = core
                    .report_outcome(&workers[index], grant.lease_id, &Status::Success, digest, now_ms)
                    .expect("the lease was just granted");
                *reported.entry(index).or_default() += 1;
                if effect.replica.is_none() && !effect.judgements.is_empty() {
                    figures.known_answer_replicas += 1;
                }
                for judgement in &effect.judgements {
                    let judged = workers
                        .iter()
                        .position(|candidate| *candidate == judgement.worker_id)
                        .expect("a known worker");
                    if is_saboteur(judged) && judgement.reputation.quarantined_until_ms.is_some() {
                        quarantined_after.entry(judged).or_insert(reported[&judged]);
                    }
                }
                match effect.decision {
                    Some(UnitDecision::Accepted { digest, replicas, .. }) => {
                        figures.units_accepted += 1;
                        replicas_per_accepted.push(u64::from(replicas));
                        if digest != truth(effect.unit_index) {
                            figures.wrong_accepted += 1;
                        }
                    }
                    Some(UnitDecision::Failed { .. }) => figures.units_failed += 1,
                    None => {}
                }
            }
        }
        if core.progress("job").is_some_and(|progress| progress.is_complete()) {
            break;
        }
    }
    figures.replicas_per_accepted_unit = mean(&replicas_per_accepted);
    figures.replicas_per_unit_after_warm_up = mean(&replicas_per_accepted[replicas_per_accepted.len() / 2..]);
    figures.results_until_quarantine = (0..workers.len())
        .filter(|index| is_saboteur(*index))
        .map(|index| quarantined_after.get(&index).copied())
        .collect();
    figures
}

fn mean(values: &[u64]) -> f64 {
    values.iter().sum::<u64>() as f64 / values.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(saboteur_fraction: f64, colluding: bool, sybil: usize, seed: u64) -> TrustScenario {
        TrustScenario {
            peers: 20,
            units: 2000,
            saboteur_fraction,
            colluding,
            sybil,
            quorum: 2,
            adaptive: false,
            seed,
        }
    }

    /// Adaptive replication on an honest network: once peers have a record (about 60 valid
    /// results each: 600 units of 20 peers at quorum 2), almost every unit runs once; spot
    /// checks (5%) and the remaining doubt of newer records keep it above 1.
    #[test]
    fn an_honest_network_with_adaptive_replication_needs_at_most_1_2_replicas_per_unit_after_warm_up() {
        for seed in 0..3 {
            let figures = simulate_trust(&TrustScenario {
                units: 6000,
                adaptive: true,
                ..scenario(0.0, false, 0, seed)
            });
            println!("seed {seed}: {figures:?}");
            assert_eq!(figures.units_accepted, 6000, "seed {seed}");
            assert!(figures.replicas_per_unit_after_warm_up <= 1.2, "seed {seed}: {figures:?}");
        }
    }

    /// Adaptive replication does not let random saboteurs through: they never earn trust,
    /// so their every result needs a matching replica, and known-answer units judge them
    /// before they hold any unit.
    #[test]
    fn random_saboteurs_under_adaptive_replication_get_nothing_accepted() {
        for seed in 0..3 {
            let figures = simulate_trust(&TrustScenario { adaptive: true, ..scenario(0.3, false, 0, seed) });
            println!("seed {seed}: {figures:?}");
            assert_eq!(figures.wrong_accepted, 0, "seed {seed}");
            assert_eq!(figures.units_accepted + figures.units_failed, 2000, "seed {seed}");
        }
    }

    #[test]
    fn thirty_percent_random_saboteurs_never_get_a_wrong_result_accepted_at_quorum_two() {
        for seed in 0..5 {
            let figures = simulate_trust(&scenario(0.3, false, 0, seed));
            println!("seed {seed}: {figures:?}");
            assert_eq!(figures.wrong_accepted, 0, "seed {seed}");
            assert_eq!(figures.units_accepted + figures.units_failed, 2000, "seed {seed}");
            assert!(
                figures.results_until_quarantine.iter().all(Option::is_some),
                "every saboteur is caught: seed {seed}"
            );
        }
    }
}

#[cfg(test)]
mod attacks {
    use super::*;

    /// Colluders that answer alike can form a quorum when two of them draw the same unit
    /// before either is caught. The measured rates stay under the bounds asserted here:
    /// 30% colluders among 20 peers: at most 5% of units wrong (measured 0.25–1.1% over
    /// these seeds), because a colluder is quarantined after 3 disagreements with honest
    /// replicas; one saboteur with 10 more Sybil identities (11 of 30): at most 10%
    /// (measured 1.2–3.7%). Quorum 2 alone cannot do better against
    /// collusion; adaptive replication and known-answer units (step 4) are the remedy.
    /// The same bounds hold under adaptive replication (measured over these seeds: 30%
    /// colluders 0.05–0.4% wrong; 1+10 Sybil 0.85–4.2%): colluders rarely become trusted,
    /// because they disagree with honest replicas before they reach 10 clean results, so
    /// their units stay replicated and the attack is the one fixed quorum faces.
    #[test]
    fn colluding_saboteurs_and_a_sybil_stay_within_the_bounds() {
        for adaptive in [false, true] {
            for seed in 0..5 {
                let colluding = simulate_trust(&TrustScenario {
                    peers: 20,
                    units: 2000,
                    saboteur_fraction: 0.3,
                    colluding: true,
                    sybil: 0,
                    quorum: 2,
                    adaptive,
                    seed,
                });
                println!("colluding, adaptive {adaptive}, seed {seed}: {colluding:?}");
                assert!(
                    colluding.wrong_accepted * 20 <= colluding.units_accepted,
                    "seed {seed}: {colluding:?}"
                );
                let sybil = simulate_trust(&TrustScenario {
                    peers: 20,
                    units: 2000,
                    saboteur_fraction: 0.05,
                    colluding: true,
                    sybil: 10,
                    quorum: 2,
                    adaptive,
                    seed,
                });
                println!("sybil, adaptive {adaptive}, seed {seed}: {sybil:?}");
                assert!(sybil.wrong_accepted * 10 <= sybil.units_accepted, "seed {seed}: {sybil:?}");
            }
        }
    }
}

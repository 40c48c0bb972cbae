//! The issue-14 targets, over seeds (each test prints its figures per seed).

use super::*;

fn scenario(attackers: f64, attack: Attack, adaptive: bool, seed: u64) -> TrustScenario {
    TrustScenario {
        peers: 20,
        units: 2000,
        attackers,
        attack,
        sybil: 0,
        quorum: 2,
        adaptive,
        decoys: 0.02,
        seed,
    }
}

fn run(label: &str, scenario: &TrustScenario) -> TrustFigures {
    let figures = simulate_trust(scenario);
    println!("{label}, seed {}: {figures:?}", scenario.seed);
    assert_eq!(
        figures.units_accepted - figures.units_reopened + figures.units_failed,
        scenario.units,
        "{label}, seed {}: every unit decided",
        scenario.seed
    );
    assert_eq!(figures.honest_banned, 0, "{label}, seed {}: an honest worker was banned", scenario.seed);
    figures
}

/// Adaptive replication on an honest network: once peers are past probation, almost every
/// unit runs once; spot checks (5%) and probes keep it above 1.
#[test]
fn an_honest_network_with_adaptive_replication_needs_at_most_1_2_replicas_per_unit_after_warm_up() {
    for seed in 0..3 {
        let figures =
            run("honest", &TrustScenario { units: 6000, ..scenario(0.0, Attack::Saboteurs, true, seed) });
        assert!(figures.replicas_per_unit_after_warm_up <= 1.2, "seed {seed}: {figures:?}");
    }
}

#[test]
fn random_saboteurs_never_get_a_wrong_result_accepted_and_are_caught() {
    for adaptive in [false, true] {
        for seed in 0..3 {
            let figures = run("saboteurs", &scenario(0.3, Attack::Saboteurs, adaptive, seed));
            assert_eq!(figures.wrong_accepted, 0, "seed {seed}");
            assert!(
                figures.results_until_quarantine.iter().all(Option::is_some),
                "seed {seed}: every saboteur is caught"
            );
        }
    }
}

/// The attack: one person, 11 identities, one network. Replicas of a unit never
/// share a network, so the group never holds two replicas of one unit and never lies.
#[test]
fn a_sybil_group_on_one_network_gets_nothing_wrong_accepted() {
    for adaptive in [false, true] {
        for seed in 0..20 {
            let figures = run(
                "sybil group",
                &TrustScenario { sybil: 10, ..scenario(0.05, Attack::SybilGroup, adaptive, seed) },
            );
            assert_eq!(figures.wrong_accepted, 0, "seed {seed}: {figures:?}");
        }
    }
}

/// Hoarders take what their allowance lets them and never answer; griefers answer every
/// lease with a host timeout. Neither may fail a unit or more than double the job's time.
#[test]
fn hoarders_and_griefers_at_most_double_the_job_time_and_fail_nothing() {
    for attack in [Attack::Hoarders, Attack::Griefers] {
        for seed in 0..5 {
            let honest = run("baseline", &scenario(0.0, attack, true, seed));
            let attacked = run(attack.name(), &scenario(0.2, attack, true, seed));
            assert_eq!((attacked.wrong_accepted, attacked.units_failed), (0, 0), "{attack:?} seed {seed}");
            assert!(
                attacked.rounds <= 2 * honest.rounds,
                "{attack:?} seed {seed}: {} vs {} rounds",
                attacked.rounds,
                honest.rounds
            );
        }
    }
}

/// Careful colluders lie only on units none of them has seen, of which they hold exactly
/// the replicas a quorum needs, so neither probes nor honest replicas catch them. Audits
/// of the first units each set of identities decides together do, and decoys, and the
/// owner's own run of the disputed unit bans them and reopens what they decided. The
/// issue's target: 20% of them, adaptive, quorum 2, ≤ 0.1% wrong over 20 seeds, here in
/// the simulation's default 2,000-unit job (before the audits, the race between lies and
/// decoys alone let the worst seed keep 0.35%). Under the quorum policy the same holds in
/// 6,000-unit jobs (in 2,000-unit ones the worst seed keeps 0.35%, was 2%).
#[test]
fn careful_colluders_at_quorum_two_get_at_most_a_thousandth_wrong() {
    for (adaptive, units) in [(true, 2000), (false, 6000)] {
        for seed in 0..20 {
            let scenario = TrustScenario { units, ..scenario(0.2, Attack::CarefulColluders, adaptive, seed) };
            let figures = run("careful colluders", &scenario);
            assert!(
                figures.wrong_accepted * 1000 <= scenario.units,
                "adaptive {adaptive}, seed {seed}: {figures:?}"
            );
        }
    }
}

/// What gets careful colluders to ≤ 0.01%: quorum 3 under adaptive (none wrong in 20 seeds).
#[test]
fn careful_colluders_at_quorum_three_get_nothing_wrong() {
    for seed in 0..20 {
        let scenario = TrustScenario { quorum: 3, ..scenario(0.2, Attack::CarefulColluders, true, seed) };
        let figures = run("careful colluders, quorum 3", &scenario);
        assert_eq!(figures.wrong_accepted, 0, "seed {seed}: {figures:?}");
    }
}

/// Colluders that lie on everything with one shared answer are caught the same way.
#[test]
fn colluders_sharing_one_lie_get_at_most_a_thousandth_wrong() {
    for adaptive in [false, true] {
        for seed in 0..5 {
            let figures = run("colluders", &scenario(0.3, Attack::Colluders, adaptive, seed));
            assert!(figures.wrong_accepted * 1000 <= 2000, "seed {seed}: {figures:?}");
        }
    }
}

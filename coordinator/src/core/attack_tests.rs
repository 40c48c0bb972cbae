//! Attacks on the core from issue 14 (each seen passing before its defence existed, and
//! failing then): identities on one network, the next identity to ask, a hoarder, griefers
//! answering host timeouts, colluders who lie only on units they hold every replica of.

use super::LeaseLimits;
use super::tests::{finish_leases, honest_digest};
use super::*;
use std::collections::HashSet;

#[test]
fn identities_on_one_network_never_hold_two_replicas_of_a_unit() {
    // The attack: identity A asks for many leases, identity B (same /24) asks
    // right after for the second replicas, and both report the same forgery.
    let network = |address: &str| Network::of_address(address.parse().unwrap(), NetworkPrefixes::default());
    let mut core = Core::new();
    core.add_job("job", 64, JobPolicy::fixed(2, 4, 60_000), ResumeState::default());
    let first = core.request_work("a", &network("203.0.113.5"), 64, 0);
    let second = core.request_work("b", &network("203.0.113.77"), 64, 0);
    let units_of_a: HashSet<u64> = first.iter().map(|grant| grant.unit_index).collect();
    assert!(
        second.iter().all(|grant| !units_of_a.contains(&grant.unit_index)),
        "B got a replica of A's unit"
    );
    let forged = |grant: &LeaseGrant| Hash::of(format!("forged {}", grant.unit_index).as_bytes());
    for (worker, grants) in [("a", &first), ("b", &second)] {
        for grant in grants.iter() {
            let effect =
                core.report_outcome(worker, grant.lease_id, &Status::Success, forged(grant), 0).unwrap();
            assert_eq!(effect.decision, None, "a forgery from one network was accepted");
        }
    }
    // A worker on another network gets the second replicas, and disagrees.
    let honest = core.request_work("c", &network("198.51.100.9"), 64, 0);
    assert!(!honest.is_empty());
    for grant in &honest {
        let digest = honest_digest("job", grant.unit_index);
        let effect = core.report_outcome("c", grant.lease_id, &Status::Success, digest, 0).unwrap();
        assert_eq!(effect.decision, None, "no quorum between a forgery and the truth");
    }
}

#[test]
fn second_replicas_go_to_a_worker_drawn_at_random_not_to_the_next_to_ask() {
    // Colluders on two networks: A asks for 64 leases, B asks right after for the second
    // replicas. Eight honest workers have asked lately too.
    let mut core = Core::new();
    core.add_job("job", 64, JobPolicy::fixed(2, 4, 60_000), ResumeState::default());
    let honest: Vec<String> = (0..8).map(|index| format!("honest-{index}")).collect();
    core.add_job("other", 1_000, JobPolicy::fixed(1, 1, 60_000), ResumeState::default());
    for worker in &honest {
        core.request_work(worker, &Network::of_identity(worker), 1, 0);
    }
    let first = core.request_work("a", &Network::of_identity("a"), 64, 1);
    let units_of_a: HashSet<u64> =
        first.iter().filter(|grant| &*grant.job_id == "job").map(|grant| grant.unit_index).collect();
    for grant in &first {
        core.report_outcome("a", grant.lease_id, &Status::Success, Hash::of(b"forged"), 1).unwrap();
    }
    let second = core.request_work("b", &Network::of_identity("b"), 64, 2);
    let shared = second
        .iter()
        .filter(|grant| &*grant.job_id == "job" && units_of_a.contains(&grant.unit_index))
        .count();
    println!("B got {shared} of the {} second replicas of A's units", units_of_a.len());
    assert!(units_of_a.len() > 20 && shared * 4 < units_of_a.len(), "B got {shared} of {}", units_of_a.len());
    // The drawn workers get those replicas when they ask.
    let mut second_replicas = shared;
    for worker in &honest {
        let grants = core.request_work(worker, &Network::of_identity(worker), 64, 3);
        second_replicas += grants
            .iter()
            .filter(|grant| units_of_a.contains(&grant.unit_index) && &*grant.job_id == "job")
            .count();
    }
    assert_eq!(second_replicas, units_of_a.len(), "every unit of A got its second replica");
}

#[test]
fn a_batch_comes_in_random_order() {
    let mut core = Core::new();
    core.add_job("job", 64, JobPolicy::fixed(1, 1, 60_000), ResumeState::default());
    let units: Vec<u64> = core
        .request_work("a", &Network::of_identity("a"), 32, 0)
        .iter()
        .map(|grant| grant.unit_index)
        .collect();
    let mut sorted = units.clone();
    sorted.sort();
    assert_ne!(units, sorted, "the batch is in unit order");
}

#[test]
fn a_hoarder_holds_few_leases_and_fewer_after_they_expire_while_a_worker_that_returns_work_grows() {
    let mut core = Core::new();
    core.set_lease_limits(Some(LeaseLimits::OWNER));
    core.add_job("job", 100_000, JobPolicy::fixed(1, 2, 1_000), ResumeState::default());
    let home = Network::of_identity("home");
    let hoarded = core.request_work("hoarder", &home, 1_000, 0).len();
    assert_eq!(hoarded, 8, "a new identity starts with 8 leases");
    let sybils: usize =
        (0..20).map(|index| core.request_work(&format!("sybil-{index}"), &home, 1_000, 0).len()).sum();
    assert_eq!(hoarded + sybils, 32, "a network holds at most 32 leases to start with");
    assert_eq!(core.expire_leases(1_000).len(), 32);
    let mut allowed = Vec::new();
    for now in [1_000, 2_000, 3_000, 4_000] {
        allowed.push(core.request_work("hoarder", &home, 1_000, now).len());
        core.expire_leases(now + 1_000);
    }
    assert_eq!(allowed, [4, 2, 1, 0], "each expiry halves the allowance, down to nothing");
    // A worker that returns work earns more leases, up to the per-core ceiling for each
    // advertised core (2 cores: below the network's own ceiling).
    core.set_worker_cores("honest", 2);
    let away = Network::of_identity("away");
    let mut batch = core.request_work("honest", &away, 4_000, 0);
    assert_eq!(batch.len(), 8);
    for round in 0..12 {
        finish_leases(&mut core, "honest", &batch, false);
        batch = core.request_work("honest", &away, 4_000, round);
    }
    let ceiling = 2 * LeaseLimits::OWNER.per_core as usize;
    assert!(ceiling < LeaseLimits::OWNER.network_max as usize);
    assert_eq!(batch.len(), ceiling, "2 cores × the per-core ceiling, earned by returned work");
}

#[test]
fn two_griefers_alternating_host_timeouts_do_not_fail_a_unit_and_lose_trust() {
    let mut core = Core::new();
    core.add_job("job", 1, JobPolicy::fixed(1, 3, 60_000), ResumeState::default());
    let mut now = 0;
    for round in 0..10 {
        for griefer in ["g1", "g2"] {
            now += TIMED_OUT_WORKER_WAIT_MS;
            for grant in core.request_work(griefer, &Network::of_identity(griefer), 1, now) {
                let effect = core
                    .report_outcome(griefer, grant.lease_id, &Status::HostTimeout, Hash::of(b"-"), now)
                    .unwrap();
                assert_eq!(effect.decision, None, "round {round}: two griefing networks failed the unit");
            }
        }
    }
    // Later an honest worker (the griefers no longer ask) finishes it.
    let now = now + recent_workers::RECENT_WORKER_MS + 1;
    core.expire_leases(now);
    let grant = core.request_work("honest", &Network::of_identity("honest"), 1, now).remove(0);
    let effect = core
        .report_outcome("honest", grant.lease_id, &Status::Success, honest_digest("job", 0), now)
        .unwrap();
    assert!(matches!(effect.decision, Some(UnitDecision::Accepted { .. })));
    let mut penalised: Vec<&str> = effect.unfinished.iter().map(|judged| &*judged.worker_id).collect();
    penalised.sort();
    assert_eq!(penalised, ["g1", "g2"]);
    for judged in &effect.unfinished {
        assert!(judged.reputation.error_rate > reputation::ERROR_RATE_START, "{judged:?}");
        assert_eq!(judged.reputation.strikes, 0, "a timeout is not a lie");
    }
}

#[test]
fn timeouts_from_three_networks_fail_a_unit_that_is_too_long_for_everyone() {
    let mut core = Core::new();
    let record = Reputation { valid: 10, consecutive_valid: 10, ..Reputation::default() };
    for worker in ["a", "b", "c"] {
        core.restore_reputation(worker, record);
    }
    core.add_job("job", 1, JobPolicy::fixed(1, 5, 60_000), ResumeState::default());
    let mut decision = None;
    for (round, worker) in ["a", "b", "c"].into_iter().enumerate() {
        let now = round as u64;
        let grant = core.request_work(worker, &Network::of_identity(worker), 1, now).remove(0);
        decision = core
            .report_outcome(worker, grant.lease_id, &Status::HostTimeout, Hash::of(b"-"), now)
            .unwrap()
            .decision;
    }
    assert!(
        matches!(decision, Some(UnitDecision::Failed { ref reason, .. }) if reason.contains("3 networks")),
        "{decision:?}"
    );
}

#[test]
fn a_decoy_is_a_decided_unit_replicated_like_a_new_one_and_decides_nothing() {
    let mut core = Core::new();
    let policy = JobPolicy { decoy_per_mille: 1000, ..JobPolicy::fixed(2, 4, 60_000) };
    core.add_job("job", 100, policy, ResumeState::default());
    // Units decided by a and b become known answers.
    let first = core.request_work("a", &Network::of_identity("a"), 1, 0);
    finish_leases(&mut core, "a", &first, false);
    let second = core.request_work("b", &Network::of_identity("b"), 1, 0);
    finish_leases(&mut core, "b", &second, false);
    assert_eq!(core.progress("job").unwrap().succeeded, 1);
    // c and d are sent the decided unit again, as if it were fresh; both lie alike.
    let decoy = core.request_work("c", &Network::of_identity("c"), 1, 1).remove(0);
    assert_eq!(decoy.unit_index, first[0].unit_index, "every fresh unit is a decoy at 1000 per mille");
    let partner = core.request_work("d", &Network::of_identity("d"), 1, 1).remove(0);
    assert_eq!(partner.unit_index, decoy.unit_index, "a decoy's second replica is drawn like any other");
    for (worker, grant) in [("c", &decoy), ("d", &partner)] {
        let effect =
            core.report_outcome(worker, grant.lease_id, &Status::Success, Hash::of(b"lie"), 1).unwrap();
        assert_eq!((effect.replica, effect.decision), (None, None), "a decoy decides nothing");
        assert!(effect.judgements.is_empty(), "{worker}: a disagreement is no strike by itself");
    }
    let arbitrations = core.take_arbitrations();
    assert_eq!(arbitrations.len(), 1, "the decoy ends in one arbitration");
    let workers: Vec<&str> = arbitrations[0].answers.iter().map(|answer| &*answer.worker_id).collect();
    assert_eq!(workers, ["c", "d"], "with both its replicas");
    assert_eq!(core.progress("job").unwrap().succeeded, 1, "no count changed");
}

#[test]
fn the_first_units_two_identities_decide_together_are_audited_before_fresh_units() {
    // Careful colluders c and d lie on the one unit they hold together; at a decoy rate of
    // 1 per thousand, the decoy race would almost never send it out again.
    let mut core = Core::new();
    let policy = JobPolicy { decoy_per_mille: 1, ..JobPolicy::fixed(2, 4, 600_000) };
    core.add_job("job", 1_000, policy, ResumeState::default());
    for worker in ["c", "d"] {
        let grant = core.request_work(worker, &Network::of_identity(worker), 1, 0).remove(0);
        core.report_outcome(worker, grant.lease_id, &Status::Success, Hash::of(b"lie"), 0).unwrap();
    }
    assert_eq!(core.progress("job").unwrap().succeeded, 1, "their lie was accepted");
    // The next worker of another network to ask gets that unit again, as a decoy.
    let later_ms = recent_workers::RECENT_WORKER_MS + 1_000;
    let audit = core.request_work("e", &Network::of_identity("e"), 1, later_ms).remove(0);
    assert_eq!(audit.unit_index, 0, "the audit comes before fresh units");
    let partner = core.request_work("f", &Network::of_identity("f"), 1, later_ms).remove(0);
    assert_eq!(partner.unit_index, 0, "and is replicated like a fresh unit");
    for (worker, grant) in [("e", &audit), ("f", &partner)] {
        let effect = core
            .report_outcome(worker, grant.lease_id, &Status::Success, honest_digest("job", 0), later_ms)
            .unwrap();
        assert_eq!(effect.decision, None, "an audit decides nothing");
    }
    let arbitrations = core.take_arbitrations();
    assert_eq!(arbitrations.len(), 1, "the disagreement goes to the owner's own run");
    // A job without decoys has no audits either.
    let mut core = Core::new();
    core.add_job("plain", 1_000, JobPolicy::fixed(2, 4, 600_000), ResumeState::default());
    for worker in ["c", "d"] {
        let grant = core.request_work(worker, &Network::of_identity(worker), 1, 0).remove(0);
        core.report_outcome(worker, grant.lease_id, &Status::Success, Hash::of(b"x"), 0).unwrap();
    }
    let next = core.request_work("e", &Network::of_identity("e"), 1, later_ms).remove(0);
    assert_eq!(next.unit_index, 1, "decoys = 0 turns audits off");
}

#[test]
fn every_replica_of_a_job_pinned_to_the_owners_engine_class_runs_on_that_class() {
    // A job without NaN canonicalisation: an x86 and an aarch64 host may give honest float
    // results that differ in a NaN's bits, so all its replicas run on the owner's class and
    // the owner's own run can judge every dispute. Claims of another class, of a class
    // nobody honest has ("wasmtime-0-evil", recorded by the server as "") or of none get
    // no unit of it, not even a drawn later replica.
    let owner_class = "wasmtime-48.0.8-x86_64";
    let later_ms = recent_workers::RECENT_WORKER_MS + 1_000;
    for pinned in [true, false] {
        let mut core = Core::new();
        let engine = pinned.then(|| EngineClass::from(owner_class));
        core.add_job(
            "job",
            4,
            JobPolicy { engine, ..JobPolicy::fixed(2, 4, 60_000) },
            ResumeState::default(),
        );
        for (worker, class) in [
            ("arm", "wasmtime-48.0.8-aarch64"),
            ("colluder", ""),
            ("x86", owner_class),
            ("x86-b", owner_class),
        ] {
            core.set_worker_engine(worker, Some(class.into()));
        }
        for other in ["arm", "colluder"] {
            let leases = core.request_work(other, &Network::of_identity(other), 4, 0);
            assert_eq!(
                leases.is_empty(),
                pinned,
                "{other} (pinned job: {pinned}) got {} units",
                leases.len()
            );
        }
        let first = core.request_work("x86", &Network::of_identity("x86"), 1, later_ms);
        if !pinned {
            continue;
        }
        // Eight recent askers of another class: were they eligible, the draw for the
        // second replica would almost surely reserve it for one of them.
        for index in 0..8 {
            let arm = format!("arm-{index}");
            core.set_worker_engine(&arm, Some("wasmtime-48.0.8-aarch64".into()));
            let leases = core.request_work(&arm, &Network::of_identity(&arm), 4, later_ms);
            assert!(leases.is_empty(), "a replica went to another engine class");
        }
        let second = core.request_work("x86-b", &Network::of_identity("x86-b"), 1, later_ms + 1);
        assert_eq!(second[0].unit_index, first[0].unit_index, "the owner's class takes the second replica");
        assert_eq!(
            core.engine_every_job_needs("arm").as_deref(),
            Some(owner_class),
            "told why it gets nothing"
        );
        assert_eq!(core.engine_every_job_needs("x86"), None);
    }
}

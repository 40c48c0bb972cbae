//! Tests of the sans-IO core, including a seeded fault simulation. Every randomized test
//! prints its seed so a failure replays.

use super::*;
use std::collections::{HashMap, HashSet};

const POLICY: JobPolicy = JobPolicy::fixed(2, 5, 1_000);

pub(super) fn honest_digest(job_id: &str, unit_index: u64) -> Hash {
    Hash::of(format!("{job_id}/{unit_index}").as_bytes())
}

/// Runs every open lease of `worker` to completion, honestly or not.
pub(super) fn finish_leases(
    core: &mut Core,
    worker: &str,
    grants: &[LeaseGrant],
    liar: bool,
) -> Vec<OutcomeEffect> {
    grants
        .iter()
        .map(|grant| {
            let digest = if liar {
                Hash::of(format!("lie {}", grant.lease_id).as_bytes())
            } else {
                honest_digest(&grant.job_id, grant.unit_index)
            };
            core.report_outcome(worker, grant.lease_id, &Status::Success, digest, 0).expect("lease is open")
        })
        .collect()
}

#[test]
fn three_honest_workers_decide_every_unit_once_with_distinct_replicas() {
    let mut core = Core::new();
    core.add_job("job", 100, POLICY, ResumeState::default());
    let mut decided = HashMap::new();
    let mut runners: HashMap<u64, HashSet<String>> = HashMap::new();
    for round in 0..1000 {
        let worker = format!("worker-{}", round % 3);
        let grants = core.request_work(&worker, &Network::of_identity(&worker), 4, round);
        for grant in &grants {
            assert!(runners.entry(grant.unit_index).or_default().insert(worker.clone()), "same worker twice");
        }
        for effect in finish_leases(&mut core, &worker, &grants, false) {
            if let Some(decision) = effect.decision {
                assert!(decided.insert(effect.unit_index, decision).is_none(), "unit decided twice");
            }
        }
    }
    assert_eq!(decided.len(), 100);
    assert!(core.progress("job").unwrap().is_complete());
    for (unit_index, decision) in decided {
        assert_eq!(
            decision,
            UnitDecision::Accepted {
                digest: honest_digest("job", unit_index),
                status: Status::Success,
                replicas: 2
            }
        );
    }
}

#[test]
fn a_single_worker_never_gets_two_replicas_of_a_unit_and_in_flight_units_stay_bounded() {
    let mut core = Core::new();
    core.add_job("job", 1_000_000, POLICY, ResumeState::default());
    let mut seen = HashSet::new();
    for round in 0..200 {
        let grants = core.request_work("alone", &Network::of_identity("alone"), 64, round);
        for grant in &grants {
            assert!(seen.insert(grant.unit_index), "unit {} leased twice to one worker", grant.unit_index);
        }
        finish_leases(&mut core, "alone", &grants, false);
    }
    let progress = core.progress("job").unwrap();
    assert_eq!(progress.decided(), 0, "quorum 2 needs a second worker");
    assert_eq!(progress.active, ACTIVE_UNITS_MAX as u64);
}

#[test]
fn disagreeing_replicas_fail_the_unit_after_max_replicas() {
    let mut core = Core::new();
    core.add_job("job", 1, JobPolicy::fixed(2, 3, 1_000), ResumeState::default());
    let mut decisions = Vec::new();
    for worker in ["a", "b", "c", "d"] {
        let grants = core.request_work(worker, &Network::of_identity(worker), 1, 0);
        decisions
            .extend(finish_leases(&mut core, worker, &grants, true).into_iter().filter_map(|e| e.decision));
    }
    assert_eq!(decisions.len(), 1);
    let UnitDecision::Failed { reason, replicas } = &decisions[0] else { panic!("{decisions:?}") };
    assert_eq!(*replicas, 3);
    assert!(reason.contains("no quorum"), "{reason}");
}

#[test]
fn a_host_timeout_is_never_a_result_and_the_replica_goes_elsewhere() {
    let mut core = Core::new();
    core.add_job("job", 1, JobPolicy::fixed(1, 3, 1_000), ResumeState::default());
    let grant = core.request_work("slow", &Network::of_identity("slow"), 1, 0).remove(0);
    let effect =
        core.report_outcome("slow", grant.lease_id, &Status::HostTimeout, Hash::of(b"x"), 0).unwrap();
    assert_eq!((effect.replica, effect.decision), (None, None));
    assert!(
        core.request_work("slow", &Network::of_identity("slow"), 1, 1).is_empty(),
        "the timed-out worker gets the unit again"
    );
    let grant = core.request_work("fast", &Network::of_identity("fast"), 1, 1).remove(0);
    let effect =
        core.report_outcome("fast", grant.lease_id, &Status::Success, honest_digest("job", 0), 0).unwrap();
    assert!(matches!(effect.decision, Some(UnitDecision::Accepted { .. })));
}

#[test]
fn expired_returned_and_disconnected_leases_go_back_to_the_queue() {
    let mut core = Core::new();
    core.add_job("job", 3, JobPolicy::fixed(1, 2, 100), ResumeState::default());
    let expiring = core.request_work("a", &Network::of_identity("a"), 1, 0);
    let returned = core.request_work("b", &Network::of_identity("b"), 1, 0);
    assert_eq!(core.request_work("c", &Network::of_identity("c"), 1, 0).len(), 1);
    assert!(core.request_work("d", &Network::of_identity("d"), 3, 0).is_empty());
    core.return_leases("b", &[returned[0].lease_id]);
    core.worker_disconnected("c");
    assert_eq!(core.expire_leases(100), vec![expiring[0].lease_id]);
    let again = core.request_work("d", &Network::of_identity("d"), 3, 100);
    assert_eq!(again.len(), 3);
    assert_eq!(
        core.report_outcome("a", expiring[0].lease_id, &Status::Success, honest_digest("job", 0), 0),
        Err(OutcomeRejection::UnknownLease(expiring[0].lease_id))
    );
    assert_eq!(
        core.report_outcome("e", again[0].lease_id, &Status::Success, honest_digest("job", 0), 0),
        Err(OutcomeRejection::NotYourLease(again[0].lease_id))
    );
}

#[test]
fn a_resumed_job_keeps_its_replicas_and_counts() {
    let mut core = Core::new();
    let replica = ReplicaRecord {
        worker_id: "a".into(),
        network: Network::of_identity("a"),
        status: Status::Success,
        digest: honest_digest("job", 1),
        fuel_used: None,
    };
    let resume = ResumeState {
        next_fresh_unit: 2,
        succeeded_units: 1,
        failed_units: 0,
        active_units: vec![ActiveUnitRecord { unit_index: 1, replicas: vec![replica] }],
        validated_credit: ValidatedCredit::default(),
    };
    core.add_job("job", 3, POLICY, resume);
    assert!(
        core.request_work("a", &Network::of_identity("a"), 1, 0).iter().all(|grant| grant.unit_index != 1),
        "a already ran unit 1"
    );
    // Unit 1 (resumed) and unit 2 (a's) wait for a replica: they come before fresh unit 3.
    let grants = core.request_work("b", &Network::of_identity("b"), 2, 0);
    let mut units: Vec<u64> = grants.iter().map(|grant| grant.unit_index).collect();
    units.sort();
    assert_eq!(units, [1, 2], "units waiting for a replica come first");
    let effects = finish_leases(&mut core, "b", &grants, false);
    let effect = effects.iter().find(|effect| effect.unit_index == 1).unwrap();
    assert!(matches!(effect.decision, Some(UnitDecision::Accepted { replicas: 2, .. })));
    assert_eq!(core.progress("job").unwrap().succeeded, 2);
}

#[test]
fn simulation_with_faults_decides_every_unit_exactly_once_and_never_accepts_a_lie() {
    for seed in 0..40u64 {
        simulate(seed);
    }
}

/// 6 workers (one liar), 2 jobs; random disconnects, returns, expiries and host timeouts
/// for 300 steps, then a fault-free drain. Checks the core's invariants throughout.
fn simulate(seed: u64) {
    println!("simulation seed {seed}");
    let mut random = fastrand::Rng::with_seed(seed);
    let mut core = Core::new();
    for job in ["job-a", "job-b"] {
        core.add_job(job, 60, JobPolicy::fixed(2, 6, 50), ResumeState::default());
    }
    let workers: Vec<String> = (0..6).map(|index| format!("worker-{index}")).collect();
    let mut open: Vec<(String, LeaseGrant)> = Vec::new();
    let mut decided: HashSet<(JobId, u64)> = HashSet::new();
    let mut runners: HashSet<(JobId, u64, WorkerId)> = HashSet::new();
    for now in 0..3000u64 {
        let faults = now < 300;
        let worker = &workers[random.usize(..workers.len())];
        for grant in core.request_work(worker, &Network::of_identity(worker), random.u32(1..4), now) {
            open.push((worker.clone(), grant));
        }
        if open.is_empty() {
            continue;
        }
        let (worker, grant) = open.swap_remove(random.usize(..open.len()));
        let liar = worker == "worker-0";
        let roll = random.u32(0..10);
        if faults && roll == 0 {
            core.worker_disconnected(&worker);
            open.retain(|(owner, _)| *owner != worker);
            continue;
        }
        if faults && roll == 1 {
            core.return_leases(&worker, &[grant.lease_id]);
            continue;
        }
        if faults && roll == 2 {
            core.expire_leases(grant.deadline_ms);
            open.retain(|(_, other)| other.deadline_ms > grant.deadline_ms);
            continue;
        }
        let status = if faults && roll == 3 { Status::HostTimeout } else { Status::Success };
        let digest = if liar {
            Hash::of(format!("lie {seed}").as_bytes())
        } else {
            honest_digest(&grant.job_id, grant.unit_index)
        };
        let Ok(effect) = core.report_outcome(&worker, grant.lease_id, &status, digest, now) else { continue };
        let _checks_lease_count = core.progress(&effect.job_id);
        if let Some(replica) = &effect.replica {
            let key = (effect.job_id.clone(), effect.unit_index, replica.worker_id.clone());
            assert!(runners.insert(key), "seed {seed}: two replicas of a unit from {worker}");
        }
        if let Some(decision) = effect.decision {
            assert!(decided.insert((effect.job_id.clone(), effect.unit_index)), "seed {seed}: decided twice");
            if let UnitDecision::Accepted { digest, .. } = decision {
                assert_eq!(
                    digest,
                    honest_digest(&effect.job_id, effect.unit_index),
                    "seed {seed}: a lie accepted"
                );
            }
        }
    }
    // This owner cannot run units itself: its disputes end unsettled.
    for arbitration in core.take_arbitrations() {
        core.arbitration_ended(&arbitration);
    }
    for job in ["job-a", "job-b"] {
        assert!(
            core.progress(job).unwrap().is_complete(),
            "seed {seed}: {job} {:?} {:?}",
            core.progress(job),
            core.active_units(job, 5)
        );
    }
    assert_eq!(decided.len(), 120, "seed {seed}");
}

/// Strikes are what is left when the owner cannot run disputed units itself (its queue of
/// arbitrations is full).
#[test]
fn without_arbitration_a_worker_that_disagrees_with_canonical_results_is_quarantined_then_forgiven() {
    let mut core = Core::new();
    core.add_job("job", 1000, JobPolicy::fixed(2, 5, 60_000), ResumeState::default());
    for _ in 0..ARBITRATIONS_WAITING_MAX {
        core.queue_arbitration("job", 999, Hash::of(b"-"), Vec::new());
    }
    let mut lies_judged = 0;
    for round in 0..20 {
        if core.reputation("liar").is_some_and(|reputation| reputation.quarantined_until_ms.is_some()) {
            break;
        }
        let lies = core.request_work("liar", &Network::of_identity("liar"), 1, round);
        finish_leases(&mut core, "liar", &lies, true);
        for worker in ["honest-a", "honest-b"] {
            let grants = core.request_work(worker, &Network::of_identity(worker), 1, round);
            lies_judged += finish_leases(&mut core, worker, &grants, false)
                .iter()
                .flat_map(|effect| effect.judgements.iter())
                .filter(|judgement| &*judgement.worker_id == "liar")
                .count();
        }
    }
    let liar = core.reputation("liar").expect("the liar was judged");
    assert!(lies_judged >= 3, "{lies_judged} judgements");
    assert_eq!(liar.valid, 0);
    assert!(liar.error_rate > 0.8, "quick to lose: {liar:?}");
    let until = liar.quarantined_until_ms.expect("three strikes quarantine");
    assert!(
        core.request_work("liar", &Network::of_identity("liar"), 4, until - 1).is_empty(),
        "no leases while quarantined"
    );
    assert!(
        !core.request_work("liar", &Network::of_identity("liar"), 1, until).is_empty(),
        "leases again after the period"
    );
    let honest = core.reputation("honest-a").unwrap();
    assert!(honest.error_rate < 0.1 && honest.invalid == 0, "slow to earn: {honest:?}");
}

#[test]
fn an_owner_restarted_later_never_reuses_a_lease_id_of_an_earlier_run() {
    let policy = JobPolicy::fixed(1, 2, 1_000);
    let mut first_run = Core::with_first_lease_id(1_000 << 20, 1);
    first_run.add_job("job", 10, policy.clone(), ResumeState::default());
    let old = first_run.request_work("worker", &Network::of_identity("worker"), 4, 0);
    let mut second_run = Core::with_first_lease_id(1_001 << 20, 1);
    second_run.add_job("job", 10, policy, ResumeState::default());
    let new = second_run.request_work("worker", &Network::of_identity("worker"), 4, 0);
    for grant in &old {
        assert!(new.iter().all(|fresh| fresh.lease_id != grant.lease_id));
        assert_eq!(
            second_run.report_outcome("worker", grant.lease_id, &Status::Success, honest_digest("job", 0), 0),
            Err(OutcomeRejection::UnknownLease(grant.lease_id)),
            "an outcome of the earlier run is not taken for a lease of this one"
        );
    }
}

fn adaptive_policy(spot_check_per_mille: u32, known_answer_probes: u32) -> JobPolicy {
    JobPolicy {
        adaptive: Some(AdaptivePolicy { spot_check_per_mille }),
        known_answer_probes,
        ..JobPolicy::fixed(2, 5, 1_000)
    }
}

/// Gives `worker` a clean record of `count` valid results.
fn build_record(core: &mut Core, worker: &str, count: u64) {
    for _ in 0..count {
        core.reputations.record(worker, true, 0);
    }
}

#[test]
fn adaptive_never_accepts_a_strangers_result_alone() {
    let mut core = Core::new();
    core.add_job("job", 50, adaptive_policy(0, 0), ResumeState::default());
    let grants = core.request_work("stranger", &Network::of_identity("stranger"), 50, 0);
    assert_eq!(grants.len(), 50);
    let effects = finish_leases(&mut core, "stranger", &grants, false);
    assert!(effects.iter().all(|effect| effect.decision.is_none()), "a stranger's result stood alone");
    let second = core.request_work("other", &Network::of_identity("other"), 50, 0);
    assert_eq!(second.len(), 50, "every unit wants a second replica");
}

#[test]
fn adaptive_accepts_most_of_a_trusted_workers_results_alone_but_never_a_failure() {
    let mut core = Core::new();
    core.add_job("job", 200, adaptive_policy(100, 0), ResumeState::default());
    build_record(&mut core, "trusted", 300);
    let grants = core.request_work("trusted", &Network::of_identity("trusted"), 200, 0);
    let effects = finish_leases(&mut core, "trusted", &grants, false);
    let alone = effects.iter().filter(|effect| effect.decision.is_some()).count();
    // The chance is (1 − error rate/0.05)·(1 − 0.1) ≈ 0.9 after 300 clean results.
    assert!((160..=195).contains(&alone), "{alone} of 200 accepted alone");
    assert!(effects.iter().all(|effect| effect.judgements.is_empty()), "results alone judge nobody");

    let mut core = Core::new();
    core.add_job("job", 20, adaptive_policy(0, 0), ResumeState::default());
    build_record(&mut core, "trusted", 300);
    for grant in core.request_work("trusted", &Network::of_identity("trusted"), 20, 0) {
        let effect = core
            .report_outcome("trusted", grant.lease_id, &Status::ExitCode { code: 2 }, Hash::of(b"failed"), 0)
            .unwrap();
        assert_eq!(effect.decision, None, "a failure status is never accepted alone");
    }
}

#[test]
fn a_stranger_first_runs_a_known_answer_unit_and_a_wrong_answer_is_settled_by_the_owner() {
    let mut core = Core::new();
    core.add_job("job", 100, adaptive_policy(50, 2), ResumeState::default());
    for worker in ["a", "b"] {
        let grants = core.request_work(worker, &Network::of_identity(worker), 4, 0);
        finish_leases(&mut core, worker, &grants, false);
    }
    assert_eq!(core.progress("job").unwrap().succeeded, 4);
    let grants = core.request_work("liar", &Network::of_identity("liar"), 3, 0);
    assert_eq!(grants.len(), 3);
    let probes: Vec<&LeaseGrant> = grants.iter().filter(|grant| grant.unit_index < 4).collect();
    assert_eq!(probes.len(), 1, "one lease (anywhere in the batch) is a decided unit: {grants:?}");
    let probe = probes[0];
    let effect = core.report_outcome("liar", probe.lease_id, &Status::Success, Hash::of(b"lie"), 0).unwrap();
    assert_eq!((effect.replica, effect.decision), (None, None));
    assert!(effect.judgements.is_empty(), "a disagreement with a known answer is no strike by itself");
    let arbitrations = core.take_arbitrations();
    assert_eq!(arbitrations.len(), 1, "the owner is asked to run the unit itself");
    let truth = honest_digest("job", probe.unit_index);
    let verdict =
        core.settle_arbitration(&arbitrations[0], &Status::Success, truth, &["a".into(), "b".into()]);
    assert_eq!(verdict.banned.len(), 1);
    assert_eq!(&*verdict.banned[0].worker_id, "liar");
    assert!(core.reputation("liar").unwrap().is_banned());
    assert_eq!(core.progress("job").unwrap().succeeded, 4, "a known-answer unit decides nothing");
}

#[test]
fn a_unit_whose_replicas_all_timed_out_is_not_stranded() {
    let mut core = Core::new();
    core.add_job("job", 1, JobPolicy::fixed(2, 6, 1_000), ResumeState::default());
    let first = core.request_work("a", &Network::of_identity("a"), 1, 0).remove(0);
    let second = core.request_work("b", &Network::of_identity("b"), 1, 0).remove(0);
    for (worker, grant) in [("a", &first), ("b", &second)] {
        core.report_outcome(worker, grant.lease_id, &Status::HostTimeout, Hash::of(b"-"), 0).unwrap();
    }
    assert!(
        core.request_work("b", &Network::of_identity("b"), 1, 1).is_empty(),
        "the last to time out waits its turn"
    );
    assert_eq!(
        core.request_work("a", &Network::of_identity("a"), 1, 1).len(),
        1,
        "the other worker takes the unit again"
    );
}

#[test]
fn a_unit_one_worker_timed_out_on_while_the_other_holds_its_replica_is_not_stranded() {
    // Quorum 2 on two workers: `b` succeeded, `a` timed out (say, compiling on a loaded
    // host). Only `a` can give the second replica, so it must get the unit again.
    let mut core = Core::new();
    core.add_job("job", 1, JobPolicy::fixed(2, 6, 60_000), ResumeState::default());
    let first = core.request_work("a", &Network::of_identity("a"), 1, 0).remove(0);
    let second = core.request_work("b", &Network::of_identity("b"), 1, 0).remove(0);
    core.report_outcome("a", first.lease_id, &Status::HostTimeout, Hash::of(b"-"), 0).unwrap();
    core.report_outcome("b", second.lease_id, &Status::Success, honest_digest("job", 0), 0).unwrap();
    assert!(
        core.request_work("a", &Network::of_identity("a"), 1, 1).is_empty(),
        "the timed-out worker waits a while first"
    );
    let again = core.request_work("a", &Network::of_identity("a"), 1, TIMED_OUT_WORKER_WAIT_MS).remove(0);
    let effect =
        core.report_outcome("a", again.lease_id, &Status::Success, honest_digest("job", 0), 0).unwrap();
    assert!(matches!(effect.decision, Some(UnitDecision::Accepted { .. })));
}

/// Seen in the grid benchmark: batch A decided some units and was still on its way to the
/// store when batch B decided the last one, was committed first and completed the job, so
/// the completed job showed (and, after a crash, kept) fewer results than units. A job is
/// complete only when every batch the core recorded for it has been stored.
#[test]
fn a_job_is_not_complete_while_a_recorded_batch_waits_for_the_store() {
    let mut core = Core::new();
    core.add_job("job", 2, JobPolicy::fixed(1, 2, 60_000), ResumeState::default());
    let generation = core.job_generation("job").unwrap();
    let grants = core.request_work("w", &Network::of_identity("w"), 2, 0);
    for grant in &grants {
        core.outcomes_recorded("job");
        core.report_outcome("w", grant.lease_id, &Status::Success, honest_digest("job", grant.unit_index), 0)
            .unwrap();
    }
    assert_eq!(core.progress("job").unwrap().decided(), 2);
    core.outcomes_stored("job", generation); // the second batch, first
    assert!(!core.progress("job").unwrap().is_complete(), "complete with a batch still uncommitted");
    core.outcomes_stored("job", generation + 1); // a batch of an earlier generation changes nothing
    assert!(!core.progress("job").unwrap().is_complete());
    core.outcomes_stored("job", generation);
    assert!(core.progress("job").unwrap().is_complete());
}

#[test]
fn a_request_passes_over_at_most_64_units_waiting_for_a_replica() {
    // A worker holding the first replica of many quorum-2 units asks for more: none of them
    // is for it, so each lease it gets is a fresh unit, and the request must not look at
    // the waiting units again for every lease (that was 64 looks per lease).
    let mut core = Core::new();
    core.add_job("job", 100_000, POLICY, ResumeState::default());
    let network = Network::of_identity("first");
    assert_eq!(core.request_work("first", &network, 200, 0).len(), 200);
    let job = core.jobs.get_mut("job").unwrap();
    let mut draw = ReplicaDraw {
        recent: &core.recent_workers,
        reputations: &core.reputations,
        random: &mut core.random,
        connected: &core.connected,
    };
    let first: WorkerId = "first".into();
    let asker = unit::Asker { worker_id: &first, network: &network, engine: "" };
    let mut scan = job::WaitingScan::default();
    for _ in 0..100 {
        let unit_index = job.take_unit_for(&asker, 1, &mut scan, &mut draw).expect("a fresh unit");
        assert!(unit_index >= 200, "unit {unit_index} already has this worker's replica");
    }
    assert_eq!(scan.passed_over, job::WAITING_UNITS_SCANNED_MAX, "200 units waiting, 100 leases");
}

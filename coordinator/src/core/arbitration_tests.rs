//! Attacks on arbitration (`arbitration.rs`), each written before its defence: colluders
//! whose accepted lie becomes a decoy, a liar that keeps reporting once proven wrong, an
//! owner run that matches nobody, and a flood of disputes.

use super::tests::honest_digest;
use super::*;

const LATER_MS: u64 = recent_workers::RECENT_WORKER_MS + 1_000;

/// Colluders c and d decide unit 0 with one shared lie (as 20% colluders do on 4% of units).
fn core_with_an_accepted_lie() -> Core {
    let mut core = Core::new();
    let policy = JobPolicy { decoy_per_mille: 1000, ..JobPolicy::fixed(2, 4, 600_000) };
    core.add_job("job", 10, policy, ResumeState::default());
    for worker in ["c", "d"] {
        let grant = core.request_work(worker, &Network::of_identity(worker), 1, 0).remove(0);
        assert_eq!(grant.unit_index, 0);
        core.report_outcome(worker, grant.lease_id, &Status::Success, Hash::of(b"shared lie"), 0).unwrap();
    }
    assert_eq!(core.progress("job").unwrap().succeeded, 1, "the lie was accepted");
    core
}

fn unit_zero_as_the_colluders_decided_it() -> Vec<ReopenedUnit> {
    let deciders: Vec<crate::core::WorkerId> = vec!["c".into(), "d".into()];
    vec![ReopenedUnit { unit_index: 0, accepted_digest: Hash::of(b"shared lie"), deciders }]
}

/// Honest e and f (asking a minute later, so the draw is between them) get unit 0 again, as
/// a decoy.
fn decoy_to_honest_workers(core: &mut Core) -> Vec<(&'static str, LeaseGrant)> {
    ["e", "f"]
        .into_iter()
        .map(|worker| {
            let grant = core.request_work(worker, &Network::of_identity(worker), 1, LATER_MS).remove(0);
            assert_eq!(grant.unit_index, 0, "{worker} gets the decoy of unit 0");
            (worker, grant)
        })
        .collect()
}

/// The honest workers report the truth on the decoy; returns the arbitration that follows.
fn honest_workers_report(core: &mut Core, decoy: Vec<(&'static str, LeaseGrant)>) -> Arbitration {
    for (worker, grant) in decoy {
        let effect = core
            .report_outcome(worker, grant.lease_id, &Status::Success, honest_digest("job", 0), LATER_MS)
            .unwrap();
        assert!(effect.judgements.is_empty(), "{worker} takes no strike for disagreeing with a lie");
    }
    let mut arbitrations = core.take_arbitrations();
    assert_eq!(arbitrations.len(), 1);
    arbitrations.remove(0)
}

fn honest_workers_disagree_with_the_lie(core: &mut Core) -> Arbitration {
    let decoy = decoy_to_honest_workers(core);
    honest_workers_report(core, decoy)
}

#[test]
fn a_poisoned_known_answer_bans_its_deciders_and_never_the_honest_workers_who_disagree() {
    let mut core = core_with_an_accepted_lie();
    let arbitration = honest_workers_disagree_with_the_lie(&mut core);
    let deciders: Vec<crate::core::WorkerId> = vec!["c".into(), "d".into()];
    let verdict = core.settle_arbitration(&arbitration, &Status::Success, honest_digest("job", 0), &deciders);
    assert!(verdict.accepted_was_wrong);
    let banned: Vec<&str> = verdict.banned.iter().map(|judged| &*judged.worker_id).collect();
    assert_eq!(banned, ["c", "d"]);
    for worker in ["e", "f"] {
        assert!(!core.reputation(worker).is_some_and(|reputation| reputation.is_banned()), "{worker} banned");
    }
    assert!(
        core.request_work("c", &Network::of_identity("c"), 4, LATER_MS).is_empty(),
        "a banned identity gets no work"
    );
}

#[test]
fn a_unit_accepted_by_a_proven_liar_runs_again_to_the_full_quorum_and_ends_right() {
    let mut core = core_with_an_accepted_lie();
    let arbitration = honest_workers_disagree_with_the_lie(&mut core);
    let deciders: Vec<crate::core::WorkerId> = vec!["c".into(), "d".into()];
    core.settle_arbitration(&arbitration, &Status::Success, honest_digest("job", 0), &deciders);
    assert_eq!(core.reopen_units("job", unit_zero_as_the_colluders_decided_it()), 1);
    assert_eq!(core.reopen_units("job", unit_zero_as_the_colluders_decided_it()), 0, "reopened once");
    assert_eq!(core.progress("job").unwrap().succeeded, 0);
    let mut accepted = None;
    for worker in ["e", "f"] {
        let grant = core.request_work(worker, &Network::of_identity(worker), 1, LATER_MS).remove(0);
        assert_eq!(grant.unit_index, 0, "the reopened unit comes before fresh ones");
        let effect = core
            .report_outcome(worker, grant.lease_id, &Status::Success, honest_digest("job", 0), LATER_MS)
            .unwrap();
        accepted = accepted.or(effect.decision);
    }
    assert!(
        matches!(accepted, Some(UnitDecision::Accepted { digest, replicas: 2, .. }) if digest == honest_digest("job", 0))
    );
    assert_eq!(core.progress("job").unwrap().succeeded, 1);
}

/// Seen in CI: an honest worker held a lease of unit 0's decoy when the unit was reopened,
/// then got the reopened unit too; its late decoy outcome must not count as a second
/// replica of the new run, or the unit is accepted on one identity's word.
#[test]
fn a_lease_of_an_ended_decoy_does_not_count_towards_the_reopened_unit() {
    let mut core = core_with_an_accepted_lie();
    let decoy_lease = decoy_to_honest_workers(&mut core).remove(0).1;
    assert_eq!(core.reopen_units("job", unit_zero_as_the_colluders_decided_it()), 1);
    let rerun_lease = core.request_work("e", &Network::of_identity("e"), 1, LATER_MS).remove(0);
    assert_eq!(rerun_lease.unit_index, 0, "e runs the reopened unit");
    let mut decisions = Vec::new();
    for lease in [decoy_lease, rerun_lease] {
        let reported =
            core.report_outcome("e", lease.lease_id, &Status::Success, honest_digest("job", 0), LATER_MS);
        decisions.extend(reported.ok().and_then(|effect| effect.decision));
    }
    assert_eq!(decisions, [], "one identity decided the reopened unit alone");
    assert_eq!(core.units_waiting_for_replica("job"), 1, "the unit waits for a replica from another worker");
}

/// Seen in CI: honest workers decided the job's last units while a dispute about an
/// earlier one waited for the owner's run, so the job completed with the lie in it. A job
/// is complete only when none of its disputes is open.
#[test]
fn a_job_with_an_open_dispute_is_not_complete_until_the_owner_settles_it() {
    let mut core = core_with_an_accepted_lie();
    let arbitration = honest_workers_disagree_with_the_lie(&mut core);
    let now_ms = honest_workers_decide_every_unit(&mut core, LATER_MS);
    assert!(!core.progress("job").unwrap().is_complete(), "complete while a dispute about unit 0 is open");
    core.settle_arbitration(
        &arbitration,
        &Status::Success,
        honest_digest("job", 0),
        &["c".into(), "d".into()] as &[crate::core::WorkerId],
    );
    core.reopen_units("job", unit_zero_as_the_colluders_decided_it());
    core.arbitration_ended(&arbitration);
    assert!(!core.progress("job").unwrap().is_complete(), "unit 0 runs again");
    honest_workers_decide_every_unit(&mut core, now_ms);
    assert!(core.progress("job").unwrap().is_complete());
}

/// e and f ask for work, a second apart, until every unit of the job is decided; returns
/// the time then.
fn honest_workers_decide_every_unit(core: &mut Core, mut now_ms: u64) -> u64 {
    while core.progress("job").unwrap().decided() < 10 {
        now_ms += 1_000; // so reservations for the other worker expire
        for worker in ["e", "f"] {
            for grant in core.request_work(worker, &Network::of_identity(worker), 1, now_ms) {
                let digest = honest_digest("job", grant.unit_index);
                core.report_outcome(worker, grant.lease_id, &Status::Success, digest, now_ms).unwrap();
            }
        }
    }
    now_ms
}

#[test]
fn a_proven_liar_that_keeps_reporting_counts_for_nothing() {
    let mut core = core_with_an_accepted_lie();
    let decoy = decoy_to_honest_workers(&mut core);
    let held = core.request_work("c", &Network::of_identity("c"), 1, LATER_MS).remove(0);
    let arbitration = honest_workers_report(&mut core, decoy);
    core.settle_arbitration(
        &arbitration,
        &Status::Success,
        honest_digest("job", 0),
        &["c".into(), "d".into()] as &[crate::core::WorkerId],
    );
    let rejection = core.report_outcome("c", held.lease_id, &Status::Success, Hash::of(b"lie"), LATER_MS);
    assert_eq!(rejection, Err(OutcomeRejection::Banned));
    assert_eq!(core.units_waiting_for_replica("job"), 1, "its unit needs its replica from someone else");
}

#[test]
fn an_owner_run_that_matches_no_replica_bans_nobody() {
    let mut core = core_with_an_accepted_lie();
    let arbitration = honest_workers_disagree_with_the_lie(&mut core);
    let deciders: Vec<crate::core::WorkerId> = vec!["c".into(), "d".into()];
    let verdict =
        core.settle_arbitration(&arbitration, &Status::Success, Hash::of(b"third answer"), &deciders);
    assert!(verdict.banned.is_empty() && verdict.no_verdict.is_some(), "{verdict:?}");
    let verdict = core.settle_arbitration(&arbitration, &Status::HostTimeout, Hash::of(b"-"), &deciders);
    assert!(verdict.banned.is_empty() && verdict.no_verdict.is_some(), "{verdict:?}");
    assert!(core.reputations().iter().all(|(_, reputation)| !reputation.is_banned()));
}

#[test]
fn disputes_beyond_the_waiting_limit_are_dropped_and_counted() {
    let mut core = core_with_an_accepted_lie();
    for index in 0..ARBITRATIONS_WAITING_MAX + 5 {
        core.queue_arbitration("job", 0, Hash::of(b"shared lie"), Vec::new());
        assert!(core.arbitrations.len() <= ARBITRATIONS_WAITING_MAX, "{index}");
    }
    assert_eq!(core.arbitrations_dropped(), 5);
}

/// Three replicas: colluders c and d win the quorum with a shared lie over honest e. The
/// loser is not struck; the owner's run bans the winners and the unit runs again.
#[test]
fn colluders_who_outvote_an_honest_worker_are_banned_and_the_unit_runs_again() {
    let mut core = Core::new();
    core.add_job("job", 10, JobPolicy::fixed(2, 4, 600_000), ResumeState::default());
    let honest = core.request_work("e", &Network::of_identity("e"), 1, 0).remove(0);
    let effect =
        core.report_outcome("e", honest.lease_id, &Status::Success, honest_digest("job", 0), 0).unwrap();
    assert_eq!(effect.decision, None);
    let mut decision = None;
    for worker in ["c", "d"] {
        let grant = core.request_work(worker, &Network::of_identity(worker), 1, LATER_MS).remove(0);
        assert_eq!(grant.unit_index, 0);
        let effect = core
            .report_outcome(worker, grant.lease_id, &Status::Success, Hash::of(b"shared lie"), LATER_MS)
            .unwrap();
        assert!(
            effect.judgements.iter().all(|judged| judged.agreed),
            "the loser takes no strike: {effect:?}"
        );
        decision = decision.or(effect.decision);
    }
    let lie = Hash::of(b"shared lie");
    assert!(
        matches!(decision, Some(UnitDecision::Accepted { digest, .. }) if digest == lie),
        "the lie won: {decision:?}"
    );
    let arbitrations = core.take_arbitrations();
    assert_eq!(arbitrations.len(), 1, "the quorum's loser is a dispute");
    let deciders: Vec<crate::core::WorkerId> = vec!["c".into(), "d".into()];
    let verdict =
        core.settle_arbitration(&arbitrations[0], &Status::Success, honest_digest("job", 0), &deciders);
    let banned: Vec<&str> = verdict.banned.iter().map(|judged| &*judged.worker_id).collect();
    assert_eq!(banned, ["c", "d"]);
    assert!(verdict.accepted_was_wrong);
    assert_eq!(core.reopen_units("job", unit_zero_as_the_colluders_decided_it()), 1);
}

/// A liar that loses a quorum is banned by the owner's run at its first lie.
#[test]
fn a_liar_outvoted_by_honest_workers_is_banned_at_its_first_lie() {
    let mut core = Core::new();
    core.add_job("job", 10, JobPolicy::fixed(2, 4, 600_000), ResumeState::default());
    let lie = core.request_work("liar", &Network::of_identity("liar"), 1, 0).remove(0);
    core.report_outcome("liar", lie.lease_id, &Status::Success, Hash::of(b"lie"), 0).unwrap();
    for worker in ["e", "f"] {
        let grant = core.request_work(worker, &Network::of_identity(worker), 1, LATER_MS).remove(0);
        core.report_outcome(worker, grant.lease_id, &Status::Success, honest_digest("job", 0), LATER_MS)
            .unwrap();
    }
    let arbitrations = core.take_arbitrations();
    assert_eq!(arbitrations.len(), 1);
    let deciders: Vec<crate::core::WorkerId> = vec!["e".into(), "f".into()];
    let verdict =
        core.settle_arbitration(&arbitrations[0], &Status::Success, honest_digest("job", 0), &deciders);
    let banned: Vec<&str> = verdict.banned.iter().map(|judged| &*judged.worker_id).collect();
    assert_eq!(banned, ["liar"]);
    assert!(!verdict.accepted_was_wrong);
}

/// c alone is proven wrong (say, it lost a quorum elsewhere); unit 0, which c and d decided
/// together, is reopened. When honest workers decide it anew with another digest, d's
/// earlier answer is disputed in turn, and the owner's run bans d too.
#[test]
fn an_accomplice_that_agreed_with_a_proven_liar_is_banned_when_the_unit_is_decided_anew() {
    let mut core = core_with_an_accepted_lie();
    let proven = Arbitration {
        job_id: "job".into(),
        unit_index: 0,
        accepted_digest: honest_digest("job", 0),
        answers: vec![Answer {
            worker_id: "c".into(),
            status: Status::Success,
            digest: Hash::of(b"shared lie"),
        }],
    };
    let verdict = core.settle_arbitration(
        &proven,
        &Status::Success,
        honest_digest("job", 0),
        &[] as &[crate::core::WorkerId],
    );
    assert_eq!(verdict.banned.len(), 1, "only c is proven wrong so far");
    assert_eq!(core.reopen_units("job", unit_zero_as_the_colluders_decided_it()), 1);
    for worker in ["e", "f"] {
        let grant = core.request_work(worker, &Network::of_identity(worker), 1, LATER_MS).remove(0);
        assert_eq!(grant.unit_index, 0);
        core.report_outcome(worker, grant.lease_id, &Status::Success, honest_digest("job", 0), LATER_MS)
            .unwrap();
    }
    let arbitrations = core.take_arbitrations();
    assert_eq!(arbitrations.len(), 1, "the earlier deciders are disputed: {arbitrations:?}");
    let verdict = core.settle_arbitration(
        &arbitrations[0],
        &Status::Success,
        honest_digest("job", 0),
        &["e".into(), "f".into()] as &[crate::core::WorkerId],
    );
    let banned: Vec<&str> = verdict.banned.iter().map(|judged| &*judged.worker_id).collect();
    assert_eq!(banned, ["d"], "c was banned already; d now");
    assert!(!verdict.accepted_was_wrong);
}

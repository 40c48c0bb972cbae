//! The session core's rules, one by one, then a seeded simulation against a scripted owner
//! that over-sends leases, answers `no_work`, acknowledges late or never, and drops the
//! connection.

use super::*;
use std::collections::BTreeSet;
use wasmhive_protocol::Status;

fn lease(lease_id: u64) -> Lease {
    Lease { lease_id, terms_id: 1, unit_index: lease_id, input: Vec::new(), input_blob: None }
}

fn report(lease_id: u64) -> OutcomeReport {
    OutcomeReport {
        lease_id,
        status: Status::Success,
        output: Vec::new(),
        output_blob: None,
        fuel_used: None,
        wall_time_ms: 1,
    }
}

fn queue(in_pool: usize, target: usize) -> QueueState {
    QueueState { in_pool, queued: in_pool, target, paused: false }
}

fn requests(messages: &[Message]) -> Vec<u32> {
    messages
        .iter()
        .filter_map(|message| match message {
            Message::RequestWork { slots } => Some(*slots),
            _ => None,
        })
        .collect()
}

fn outcome_ids(messages: &[Message]) -> Vec<u64> {
    messages
        .iter()
        .flat_map(|message| match message {
            Message::Outcomes { outcomes } => outcomes.iter().map(|outcome| outcome.lease_id).collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn one_request_is_outstanding_and_unasked_leases_go_back_unrun() {
    let now = Instant::now();
    let mut core = SessionCore::new(4);
    assert_eq!(requests(&core.due(now, queue(0, 4))), [4]);
    assert_eq!(requests(&core.due(now, queue(0, 4))), [0u32; 0], "asked already");
    let (to_run, hand_back) = core.leases_arrived((1..=6).map(lease).collect(), 0);
    assert_eq!(to_run.iter().map(|lease| lease.lease_id).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(hand_back, Some(Message::ReturnLeases { lease_ids: vec![5, 6] }));
    assert_eq!(core.prefetch_target(), 8, "the pool had run dry: the target doubles");
}

#[test]
fn a_request_waits_for_half_the_queue_and_for_no_work_and_pause() {
    let now = Instant::now();
    let mut core = SessionCore::new(8);
    assert_eq!(requests(&core.due(now, queue(5, 8))), [0u32; 0], "more than half queued");
    assert_eq!(requests(&core.due(now, QueueState { paused: true, ..queue(0, 8) })), [0u32; 0]);
    assert_eq!(requests(&core.due(now, queue(4, 8))), [4]);
    core.no_work(2_000, now);
    assert_eq!(requests(&core.due(now + Duration::from_millis(1_999), queue(0, 8))), [0u32; 0]);
    core.work_ready();
    assert_eq!(
        requests(&core.due(now + Duration::from_millis(1), queue(0, 8))),
        [8],
        "work_ready: ask at once"
    );
    core.no_work(u64::MAX, now);
    assert_eq!(
        requests(&core.due(now + RETRY_AFTER_MAX, queue(0, 8))),
        [8],
        "an owner cannot silence us for long"
    );
}

#[test]
fn outcomes_wait_for_company_unless_nothing_else_runs() {
    let now = Instant::now();
    let mut core = SessionCore::new(1_000);
    core.finished(report(1), now);
    let busy = QueueState { in_pool: 3, queued: 900, target: 1_000, paused: false };
    assert_eq!(outcome_ids(&core.due(now, busy)), [0u64; 0], "within the flush delay");
    core.finished(report(2), now + Duration::from_millis(1));
    assert_eq!(outcome_ids(&core.due(now + FLUSH_DELAY, busy)), [1, 2]);
    core.finished(report(3), now);
    assert_eq!(outcome_ids(&core.due(now, QueueState { in_pool: 0, ..busy })), [3], "nothing else runs");
    for lease_id in 10..10 + OUTCOMES_PER_MESSAGE_MAX as u64 {
        core.finished(report(lease_id), now);
    }
    let messages = core.due(now, busy);
    assert_eq!(outcome_ids(&messages).len(), OUTCOMES_PER_MESSAGE_MAX, "a full message goes at once");
}

#[test]
fn unacknowledged_outcomes_are_sent_again_after_every_reconnect() {
    let now = Instant::now();
    let mut core = SessionCore::new(4);
    for lease_id in 1..=300 {
        core.finished(report(lease_id), now);
    }
    let sent = core.flush_all();
    assert_eq!(sent.len(), 2, "at most {OUTCOMES_PER_MESSAGE_MAX} per message");
    core.acknowledged(&[1, 2, 3]);
    core.connection_lost();
    let resent = core.connected();
    assert_eq!(outcome_ids(&resent), (4..=300).collect::<Vec<_>>());
    core.acknowledged(&(4..=300).collect::<Vec<_>>());
    assert_eq!(core.unacknowledged(), 0);
    assert!(core.connected().is_empty());
}

/// A scripted owner and a pool that runs leases in random order; the connection drops at
/// random. Checks that no second request is sent before the first is answered, that no
/// lease is run unasked, and that every outcome is acknowledged in the end, once.
#[test]
fn seeded_sessions_lose_no_outcome_and_never_hoard() {
    for seed in 0..200u64 {
        simulate(seed);
    }
}

fn simulate(seed: u64) {
    let mut random = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let mut core = SessionCore::new(random.usize(1..16));
    let mut pool: Vec<u64> = Vec::new();
    let mut connected = true;
    let mut outstanding: Option<u32> = None;
    let mut next_lease_id = 1u64;
    let mut ran: BTreeSet<u64> = BTreeSet::new();
    let mut received: BTreeSet<u64> = BTreeSet::new();
    let mut in_owner_inbox: Vec<u64> = Vec::new();
    for step in 0..2_000u64 {
        let now = started + Duration::from_millis(step);
        let draining = step >= 1_500; // the last steps: a stable connection, no new work
        match random.u32(0..10) {
            0 if !draining && connected => {
                connected = false;
                outstanding = None;
                in_owner_inbox.clear(); // lost with the connection
                core.connection_lost();
            }
            1 if !connected => {
                connected = true;
                deliver(&mut core.connected(), &mut outstanding, &mut in_owner_inbox, seed);
            }
            2 | 3 if connected && outstanding.is_some() => {
                let asked = outstanding.take().unwrap();
                if draining || random.bool() && asked > 0 {
                    core.no_work(random.u64(0..50), now);
                } else {
                    let extra = random.u32(0..3); // a greedy owner over-sends
                    let leases: Vec<Lease> = (0..asked + extra)
                        .map(|_| {
                            next_lease_id += 1;
                            lease(next_lease_id)
                        })
                        .collect();
                    let (to_run, hand_back) = core.leases_arrived(leases, pool.len());
                    assert!(to_run.len() <= asked as usize, "seed {seed}: ran more than asked");
                    assert_eq!(hand_back.is_some(), extra > 0, "seed {seed}");
                    pool.extend(to_run.iter().map(|lease| lease.lease_id));
                }
            }
            4 | 5 if !pool.is_empty() => {
                let lease_id = pool.swap_remove(random.usize(..pool.len()));
                assert!(ran.insert(lease_id), "seed {seed}: lease {lease_id} ran twice");
                core.finished(report(lease_id), now);
            }
            6 if connected && !in_owner_inbox.is_empty() => {
                let acknowledged: Vec<u64> = std::mem::take(&mut in_owner_inbox);
                received.extend(&acknowledged);
                core.acknowledged(&acknowledged);
            }
            _ => {}
        }
        if connected {
            let state = QueueState {
                in_pool: pool.len(),
                queued: pool.len(),
                target: core.prefetch_target(),
                paused: false,
            };
            let mut messages = core.due(now, state);
            deliver(&mut messages, &mut outstanding, &mut in_owner_inbox, seed);
        }
    }
    // Drain: the connection stays up; whatever ran is sent and acknowledged.
    assert!(pool.len() <= PREFETCH_MAX);
    for lease_id in std::mem::take(&mut pool) {
        ran.insert(lease_id);
        core.finished(report(lease_id), started);
    }
    if !connected {
        deliver(&mut core.connected(), &mut outstanding, &mut in_owner_inbox, seed);
    }
    deliver(&mut core.flush_all(), &mut outstanding, &mut in_owner_inbox, seed);
    received.extend(&in_owner_inbox);
    core.acknowledged(&in_owner_inbox);
    assert_eq!(core.unacknowledged(), 0, "seed {seed}");
    assert_eq!(received, ran, "seed {seed}: every outcome that ran reached the owner");
}

/// The owner receives the worker's messages: one request at a time, outcomes into its inbox.
fn deliver(messages: &mut Vec<Message>, outstanding: &mut Option<u32>, inbox: &mut Vec<u64>, seed: u64) {
    for message in messages.drain(..) {
        match message {
            Message::RequestWork { slots } => {
                assert!(outstanding.is_none(), "seed {seed}: a second request before the first was answered");
                *outstanding = Some(slots);
            }
            Message::Outcomes { outcomes } => inbox.extend(outcomes.iter().map(|outcome| outcome.lease_id)),
            Message::ReturnLeases { .. } => {}
            other => panic!("seed {seed}: unexpected {}", other.kind()),
        }
    }
}

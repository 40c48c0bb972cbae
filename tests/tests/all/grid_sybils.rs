//! Issue 14 end to end, on real processes: Sybils on one address, griefers answering host
//! timeouts, a hoarder, colluders caught by a decoy and the owner's own run. Honest workers are `wasmhive worker` processes, each on a loopback
//! address of its own; attackers are scripted identities.

use crate::grid_support::{TestGrid, check_primes_results};
use futures_util::SinkExt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmhive_protocol::{Message, OutcomeReport, Status};
use wasmhive_tests::grid::wait_until;
use wasmhive_tests::wire::{connect_as_from, key, next_reply, success_report};
use wasmhive_transport::frame_of;

#[derive(Clone, Copy)]
enum Play {
    /// Answers every lease with the same wrong output as every other liar.
    SharedLie,
    /// Answers every lease with a host timeout.
    HostTimeout,
    /// Takes leases and never answers (the connection stays open).
    Hoard,
}

fn report(lease: &wasmhive_protocol::Lease, play: Play) -> OutcomeReport {
    match play {
        Play::HostTimeout => OutcomeReport {
            status: Status::HostTimeout,
            output: Vec::new(),
            ..success_report(lease.lease_id, Vec::new())
        },
        _ => success_report(lease.lease_id, b"4242\n".to_vec()),
    }
}

/// A scripted identity connecting from `from` and playing `play` until `stop`, or until it
/// has answered `answers_max` leases (then it disconnects).
async fn attacker(
    address: SocketAddr,
    seed: u8,
    from: IpAddr,
    play: Play,
    stop: Arc<AtomicBool>,
    answers_max: usize,
) {
    let mut socket = connect_as_from(address, &key(seed), Some(from)).await;
    let mut answered = 0;
    while !stop.load(Ordering::Relaxed) && answered < answers_max {
        if socket.send(frame_of(&Message::RequestWork { slots: 4 })).await.is_err() {
            return;
        }
        let answer = tokio::time::timeout(Duration::from_secs(2), next_reply(&mut socket)).await;
        let Ok(Some(Message::Leases { leases })) = answer else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if matches!(play, Play::Hoard) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        answered += leases.len();
        let outcomes = leases.iter().map(|lease| report(lease, play)).collect();
        if socket.send(frame_of(&Message::Outcomes { outcomes })).await.is_err() {
            return;
        }
    }
}

/// Starts `plays` attackers (seed, source address, play) on a runtime of their own.
fn start_attackers(
    grid: &TestGrid,
    plays: &[(u8, IpAddr, Play)],
) -> (tokio::runtime::Runtime, Arc<AtomicBool>) {
    start_attackers_answering(grid, plays, usize::MAX)
}

fn start_attackers_answering(
    grid: &TestGrid,
    plays: &[(u8, IpAddr, Play)],
    answers_max: usize,
) -> (tokio::runtime::Runtime, Arc<AtomicBool>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    for (seed, from, play) in plays {
        runtime.spawn(attacker(grid.address, *seed, *from, *play, stop.clone(), answers_max));
    }
    (runtime, stop)
}

fn quorum_two_job(grid: &TestGrid, name: &str, lease: &str) -> (String, u64, u64) {
    job_with(grid, name, lease, 40, "")
}

/// A primes job of `units` units at quorum 2, with more `[verify]` lines.
fn job_with(grid: &TestGrid, name: &str, lease: &str, units: u64, verify: &str) -> (String, u64, u64) {
    let step = 10_000u64;
    let end = units * step;
    let spec = grid.directory.path().join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\nmodule = \"primes\"\n[inputs]\nrange = {{ start = 0, end = {end}, step = {step} }}\n\
         [verify]\nquorum = 2\n{verify}\n[limits]\nlease = \"{lease}\"\n"
    );
    std::fs::write(&spec, text).unwrap();
    (grid.submit(spec.to_str().unwrap(), false), end, step)
}

#[test]
fn ten_identities_from_one_address_never_get_a_shared_lie_accepted() {
    let grid = TestGrid::start("sybils", 2);
    let one_address: IpAddr = "127.3.0.2".parse().unwrap();
    let sybils: Vec<(u8, IpAddr, Play)> =
        (0..10).map(|seed| (90 + seed, one_address, Play::SharedLie)).collect();
    let (_runtime, stop) = start_attackers(&grid, &sybils);
    let (job_id, end, step) = quorum_two_job(&grid, "sybils", "60s");
    grid.wait_for_completion(&job_id);
    stop.store(true, Ordering::Relaxed);
    // Every result is the true count: the ten identities are one network, so they never
    // hold two replicas of a unit, and their lie never meets an agreeing replica.
    check_primes_results(&grid.results(&job_id), end, step, 2);
    assert!(grid.results(&job_id).iter().all(|result| result.output.as_deref() != Some("4242\n")));
}

#[test]
fn two_griefers_answering_host_timeouts_do_not_fail_a_unit() {
    let grid = TestGrid::start("griefers", 1);
    let griefers = [
        (110, "127.3.1.2".parse().unwrap(), Play::HostTimeout),
        (111, "127.3.2.2".parse().unwrap(), Play::HostTimeout),
    ];
    let (_runtime, stop) = start_attackers(&grid, &griefers);
    let _second_honest = grid.start_worker("honest-2");
    let (job_id, end, step) = quorum_two_job(&grid, "griefed", "60s");
    grid.wait_for_completion(&job_id);
    stop.store(true, Ordering::Relaxed);
    check_primes_results(&grid.results(&job_id), end, step, 2);
}

#[test]
fn a_hoarder_does_not_stall_a_job() {
    let grid = TestGrid::start("hoarder", 2);
    let hoarder = [(120, "127.3.3.2".parse().unwrap(), Play::Hoard)];
    let (_runtime, stop) = start_attackers(&grid, &hoarder);
    let started = Instant::now();
    let (job_id, end, step) = quorum_two_job(&grid, "hoarded", "3s");
    grid.wait_for_completion(&job_id);
    stop.store(true, Ordering::Relaxed);
    println!("the job completed in {:?} beside a hoarder", started.elapsed());
    check_primes_results(&grid.results(&job_id), end, step, 2);
}

/// Two colluders on two networks are the only workers for a while, so their shared lie is
/// accepted on the units they decide. Then honest workers arrive; a decoy of one of those
/// units reaches them, they disagree, the owner runs the unit itself, and the colluders are
/// banned and every unit they decided runs again: the job ends with every result right.
#[test]
fn colluders_whose_lies_were_accepted_are_banned_and_their_units_run_again() {
    let grid = TestGrid::start("arbitration", 0);
    let colluders = [
        (130, "127.3.6.2".parse().unwrap(), Play::SharedLie),
        (131, "127.3.7.2".parse().unwrap(), Play::SharedLie),
    ];
    let (job_id, end, step) = job_with(&grid, "colluded", "60s", 200, "decoys = 0.5");
    let (_runtime, _stop) = start_attackers_answering(&grid, &colluders, 24);
    grid.wait_for_verified(&job_id, 4);
    wait_until(Duration::from_secs(30), "the colluders to leave", || grid.status(&job_id).leased == 0);
    let lies_accepted = grid.status(&job_id).verified;
    let _honest = [grid.start_worker("honest-0"), grid.start_worker("honest-1")];
    grid.wait_for_completion(&job_id);
    println!("the colluders got {lies_accepted} lies accepted before honest workers came");
    check_primes_results(&grid.results(&job_id), end, step, 2);
    let reputations = grid.reputations();
    for (seed, _, _) in colluders {
        let colluder = reputations.iter().find(|row| row.worker_id == key(seed).peer_id());
        assert!(colluder.is_some_and(|row| row.banned), "colluder {seed}: {colluder:?}");
    }
    assert_eq!(
        reputations.iter().filter(|row| row.banned).count(),
        2,
        "nobody else is banned: {reputations:?}"
    );
}

//! End-to-end jobs with real coordinator and worker processes on loopback.

use crate::grid_support::{TestGrid, check_primes_results};
use std::time::Duration;
use wasmhive_coordinator::core::Network;
use wasmhive_protocol::api::JobState;
use wasmhive_tests::grid::wasmhive;
use wasmhive_tests::wire::worker_seen;

#[test]
fn a_job_with_three_workers_and_quorum_two_gives_the_right_answer() {
    let grid = TestGrid::start("three-workers", 3);
    let job_id = grid.submit(&grid.primes_spec(2_000_000, 50_000, 2), true);
    assert_eq!(grid.status(&job_id).state, JobState::Completed);
    let results = grid.results(&job_id);
    check_primes_results(&results, 2_000_000, 50_000, 2);
    // Credit: one unit per replica that matched an accepted result, granted once each.
    let credit = grid.credit(&job_id);
    let matching_replicas: usize = results.iter().map(|unit| unit.replica_peers.len()).sum();
    assert_eq!(credit.iter().map(|row| row.replicas).sum::<u64>() as usize, matching_replicas);
    assert!(credit.iter().all(|row| row.measure == "units" && row.credit == row.replicas), "{credit:?}");
}

#[test]
fn metered_jobs_credit_the_canonical_fuel_of_each_matching_replica() {
    let grid = TestGrid::start("fuel-credit", 2);
    let spec = grid.directory.path().join("metered.toml");
    std::fs::write(
        &spec,
        "module = \"primes\"\n[inputs]\nrange = { start = 0, end = 400_000, step = 100_000 }\n\
         [verify]\nquorum = 2\n[limits]\nfuel = 100_000_000_000\n",
    )
    .unwrap();
    let job_id = grid.submit(spec.to_str().unwrap(), true);
    let credit = grid.credit(&job_id);
    assert_eq!(credit.len(), 2, "both workers ran every unit: {credit:?}");
    assert!(credit.iter().all(|row| row.measure == "fuel" && row.replicas == 4), "{credit:?}");
    assert_eq!(credit[0].credit, credit[1].credit, "the same units cost the same canonical fuel: {credit:?}");
    assert!(credit[0].credit > 1_000_000, "fuel, not a count: {credit:?}");
}

#[test]
fn killing_a_worker_mid_job_loses_no_unit_and_accepts_none_twice() {
    let mut grid = TestGrid::start("kill-worker", 3);
    let (end, step) = (6_000_000, 100_000);
    let job_id = grid.submit(&grid.primes_spec(end, step, 2), false);
    grid.wait_for_verified(&job_id, 5);
    grid.workers[0].kill();
    grid.wait_for_completion(&job_id);
    check_primes_results(&grid.results(&job_id), end, step, 2);
}

#[test]
fn killing_the_coordinator_mid_job_keeps_every_acknowledged_result() {
    let mut grid = TestGrid::start("kill-coordinator", 2);
    let (end, step) = (6_000_000, 100_000);
    let job_id = grid.submit(&grid.primes_spec(end, step, 2), false);
    grid.wait_for_verified(&job_id, 10);
    let before_kill = grid.results(&job_id);
    grid.restart_coordinator();
    grid.wait_for_completion(&job_id);
    let after = grid.results(&job_id);
    check_primes_results(&after, end, step, 2);
    for earlier in &before_kill {
        assert_eq!(
            after[earlier.unit as usize].digest, earlier.digest,
            "unit {} changed across the restart",
            earlier.unit
        );
    }
}

#[test]
fn a_worker_drains_on_sigterm_and_the_job_still_completes() {
    let mut grid = TestGrid::start("sigterm-worker", 3);
    let (end, step) = (4_000_000, 100_000);
    let job_id = grid.submit(&grid.primes_spec(end, step, 2), false);
    grid.wait_for_verified(&job_id, 3);
    let leaving = &mut grid.workers[0];
    let exit = leaving.terminate(Duration::from_secs(20)).expect("the worker stops within its grace period");
    assert!(exit.success(), "{}", leaving.log_text());
    assert!(leaving.log_text().contains("handing back unstarted leases"), "{}", leaving.log_text());
    grid.wait_for_completion(&job_id);
    check_primes_results(&grid.results(&job_id), end, step, 2);
}

#[test]
fn the_api_needs_the_token_and_says_where_it_is() {
    let grid = TestGrid::start("token", 0);
    let spec = grid.primes_spec(1000, 100, 1);
    let output = wasmhive(&["submit", &spec, "--to", &grid.address.to_string(), "--token", "wrong"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains(&grid.coordinator_data.join("token").display().to_string()), "{stderr}");
}

#[test]
fn cancelling_a_job_stops_it() {
    let grid = TestGrid::start("cancel", 0);
    let job_id = grid.submit(&grid.primes_spec(1_000_000, 1000, 2), false);
    let mut args = vec!["cancel".to_string(), job_id.clone()];
    args.extend(grid.connection_args());
    let output = wasmhive(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(grid.status(&job_id).state, JobState::Cancelled);
}

#[test]
fn a_job_whose_last_result_was_committed_just_before_a_crash_is_completed_on_restart() {
    use wasmhive_coordinator::server::Coordinator;
    use wasmhive_coordinator::store::Store;
    use wasmhive_protocol::api::{JobInputs, JobLimits, JobSubmission};
    use wasmhive_protocol::{OutcomeReport, Status};
    let directory = wasmhive_tests::grid::TempDir::new("restart-completed");
    let coordinator = Coordinator::open(directory.path()).unwrap();
    let submission = JobSubmission {
        shared: Vec::new(),
        name: "sum".into(),
        task_name: "sum".into(),
        module: task_modules::SUM.to_vec(),
        args: Vec::new(),
        inputs: JobInputs::Range { start: 0, end: 10, step: 10 },
        quorum: 1,
        max_replicas: 2,
        limits: JobLimits {
            fuel: None,
            memory_bytes: 1 << 20,
            output_bytes: 1 << 10,
            lease_ms: 60_000,
            timeout_ms: 1000,
        },
        nan_canonicalization: true,
        verify: Default::default(),
        validator: None,
        reducer: None,
    };
    let job_id = coordinator.submit(submission).map_err(|problem| problem.message).unwrap().job_id;
    let lease = coordinator.request_work("worker", &Network::of_identity("worker"), 1).unwrap().remove(0);
    let report = OutcomeReport {
        lease_id: lease.lease_id,
        status: Status::Success,
        output: b"45\n".to_vec(),
        output_blob: None,
        fuel_used: None,
        wall_time_ms: 1,
    };
    coordinator.commit_outcomes(&worker_seen("worker"), vec![report]).unwrap();
    assert_eq!(coordinator.status(&job_id).unwrap().state, JobState::Completed);
    drop(coordinator);
    // The crash: the result is committed but the job was not yet marked completed.
    Store::open(&directory.path().join("coordinator.sqlite"))
        .unwrap()
        .set_job_state(&job_id, JobState::Running)
        .unwrap();
    let restarted = Coordinator::open(directory.path()).unwrap();
    let status = restarted.status(&job_id).unwrap();
    assert_eq!((status.state.as_str(), status.verified), ("completed", 1));
}

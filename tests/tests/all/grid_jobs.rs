//! End-to-end jobs with real coordinator and worker processes on loopback.

use crate::grid_support::{check_primes_results, primes_spec, results, status, submit};
use std::time::Duration;
use wasmhive_tests::grid::{TempDir, start_coordinator, start_worker, wait_until, wasmhive};

#[test]
fn a_job_with_three_workers_and_quorum_two_gives_the_right_answer() {
    let directory = TempDir::new("three-workers");
    let coordinator_data = directory.path().join("coordinator");
    let (_coordinator, address) = start_coordinator(&coordinator_data, "127.0.0.1:0");
    let _workers: Vec<_> = (0..3)
        .map(|index| start_worker(address, &directory.path().join(format!("worker-{index}")), 1))
        .collect();
    let spec = primes_spec(directory.path(), 2_000_000, 50_000, 2);
    let job_id = submit(address, &coordinator_data, &spec, true);
    assert_eq!(status(address, &coordinator_data, &job_id).state, "completed");
    check_primes_results(&results(address, &coordinator_data, &job_id), 2_000_000, 50_000, 2);
}

#[test]
fn killing_a_worker_mid_job_loses_no_unit_and_accepts_none_twice() {
    let directory = TempDir::new("kill-worker");
    let coordinator_data = directory.path().join("coordinator");
    let (_coordinator, address) = start_coordinator(&coordinator_data, "127.0.0.1:0");
    let mut doomed = start_worker(address, &directory.path().join("doomed"), 1);
    let _survivors: Vec<_> = (0..2)
        .map(|index| start_worker(address, &directory.path().join(format!("worker-{index}")), 1))
        .collect();
    let (end, step) = (6_000_000, 100_000);
    let job_id = submit(address, &coordinator_data, &primes_spec(directory.path(), end, step, 2), false);
    wait_until(Duration::from_secs(60), "some verified units", || {
        status(address, &coordinator_data, &job_id).verified >= 5
    });
    doomed.kill();
    wait_until(Duration::from_secs(120), "the job to complete", || {
        status(address, &coordinator_data, &job_id).state == "completed"
    });
    check_primes_results(&results(address, &coordinator_data, &job_id), end, step, 2);
}

#[test]
fn killing_the_coordinator_mid_job_keeps_every_acknowledged_result() {
    let directory = TempDir::new("kill-coordinator");
    let coordinator_data = directory.path().join("coordinator");
    let (mut coordinator, address) = start_coordinator(&coordinator_data, "127.0.0.1:0");
    let _workers: Vec<_> = (0..2)
        .map(|index| start_worker(address, &directory.path().join(format!("worker-{index}")), 1))
        .collect();
    let (end, step) = (6_000_000, 100_000);
    let job_id = submit(address, &coordinator_data, &primes_spec(directory.path(), end, step, 2), false);
    wait_until(Duration::from_secs(60), "some verified units", || {
        status(address, &coordinator_data, &job_id).verified >= 10
    });
    let before_kill = results(address, &coordinator_data, &job_id);
    coordinator.kill();
    let (_restarted, restarted_address) = start_coordinator(&coordinator_data, &address.to_string());
    assert_eq!(restarted_address, address);
    wait_until(Duration::from_secs(120), "the job to complete after the restart", || {
        status(address, &coordinator_data, &job_id).state == "completed"
    });
    let after = results(address, &coordinator_data, &job_id);
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
    let directory = TempDir::new("sigterm-worker");
    let coordinator_data = directory.path().join("coordinator");
    let (_coordinator, address) = start_coordinator(&coordinator_data, "127.0.0.1:0");
    let mut leaving = start_worker(address, &directory.path().join("leaving"), 1);
    let _staying: Vec<_> = (0..2)
        .map(|index| start_worker(address, &directory.path().join(format!("worker-{index}")), 1))
        .collect();
    let (end, step) = (4_000_000, 100_000);
    let job_id = submit(address, &coordinator_data, &primes_spec(directory.path(), end, step, 2), false);
    wait_until(Duration::from_secs(60), "some verified units", || {
        status(address, &coordinator_data, &job_id).verified >= 3
    });
    let exit = leaving.terminate(Duration::from_secs(20)).expect("the worker stops within its grace period");
    assert!(exit.success(), "{}", leaving.log_text());
    assert!(leaving.log_text().contains("handing back unstarted leases"), "{}", leaving.log_text());
    wait_until(Duration::from_secs(120), "the job to complete", || {
        status(address, &coordinator_data, &job_id).state == "completed"
    });
    check_primes_results(&results(address, &coordinator_data, &job_id), end, step, 2);
}

#[test]
fn the_api_needs_the_token_and_says_where_it_is() {
    let directory = TempDir::new("token");
    let coordinator_data = directory.path().join("coordinator");
    let (_coordinator, address) = start_coordinator(&coordinator_data, "127.0.0.1:0");
    let spec = primes_spec(directory.path(), 1000, 100, 1);
    let output = wasmhive(&["submit", &spec, "--to", &address.to_string(), "--token", "wrong"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains(&coordinator_data.join("token").display().to_string()), "{stderr}");
}

#[test]
fn cancelling_a_job_stops_it() {
    let directory = TempDir::new("cancel");
    let coordinator_data = directory.path().join("coordinator");
    let (_coordinator, address) = start_coordinator(&coordinator_data, "127.0.0.1:0");
    let job_id =
        submit(address, &coordinator_data, &primes_spec(directory.path(), 1_000_000, 1000, 2), false);
    let data = coordinator_data.to_str().unwrap();
    let output = wasmhive(&["cancel", &job_id, "--to", &address.to_string(), "--data", data]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(status(address, &coordinator_data, &job_id).state, "cancelled");
}

//! Verification beyond a fixed quorum over the real network: adaptive replication,
//! validators and reducers.

use crate::grid_support::{TestGrid, check_primes_results};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use wasmhive_tests::grid::{wait_until, wasmhive};
use wasmhive_tests::wire::{key, run_scripted_worker};

fn write_spec(grid: &TestGrid, name: &str, text: &str) -> String {
    let path = grid.directory.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The primes answer with extra whitespace: a different digest, the same tokens.
fn padded_primes_answer(input: &[u8]) -> Vec<u8> {
    let count = task_kernels::primes::run(std::str::from_utf8(input).unwrap()).unwrap();
    let mut padded = b"  ".to_vec();
    padded.extend_from_slice(&count);
    padded.extend_from_slice(b" \n");
    padded
}

#[test]
fn a_validator_lets_differently_formatted_replicas_agree_and_a_reducer_folds_the_job() {
    let grid = TestGrid::start("validator", 0);
    let (end, step) = (1_000_000u64, 100_000u64);
    let spec = write_spec(
        &grid,
        "validated.toml",
        &format!(
            "module = \"primes\"\nreducer = \"sum-columns\"\n[inputs]\nrange = {{ start = 0, end = {end}, step = {step} }}\n\
             [verify]\nquorum = 2\nmax_replicas = 2\nvalidator = \"tolerant-compare\"\n"
        ),
    );
    let job_id = grid.submit(&spec, false);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let padded = runtime.spawn(run_scripted_worker(
        grid.address,
        key(77),
        stop.clone(),
        sent.clone(),
        padded_primes_answer,
    ));
    wait_until(Duration::from_secs(30), "the padding worker to report", || {
        sent.load(Ordering::Relaxed) >= 10
    });
    // Only two workers and max_replicas 2: without the validator no unit could reach quorum.
    let _honest = grid.start_worker("honest");
    grid.wait_for_completion(&job_id);
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), padded).await }).ok();
    let results = grid.results(&job_id);
    assert_eq!(results.len(), 10);
    for result in &results {
        assert_eq!((result.state.as_str(), result.replicas), ("success", 2), "{result:?}");
        assert_eq!(result.replica_peers.len(), 2, "both replicas agreed: {result:?}");
        let start = result.unit * step;
        let expected = task_kernels::primes::count_primes(start, start + step).to_string();
        assert_eq!(result.output.as_deref().map(str::trim), Some(expected.as_str()), "{result:?}");
        // The result is the first agreeing replica's bytes (the padding worker reported
        // first), not whichever replica happened to complete the quorum.
        let first =
            String::from_utf8(padded_primes_answer(format!("{start} {}", start + step).as_bytes())).unwrap();
        assert_eq!(result.output.as_deref(), Some(first.as_str()), "{result:?}");
    }
    wait_until(Duration::from_secs(30), "the reduction", || {
        grid.status(&job_id).reduced.as_deref() == Some("done")
    });
    let mut args = vec!["results".to_string(), job_id.clone()];
    args.extend(grid.connection_args());
    let output = wasmhive(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "78498\n", "π(10^6) = 78498");
}

#[test]
fn adaptive_replication_over_the_network_accepts_trusted_results_alone_and_stays_correct() {
    let grid = TestGrid::start("adaptive", 3);
    let (end, step) = (3_000_000u64, 10_000u64);
    let spec = write_spec(
        &grid,
        "adaptive.toml",
        &format!(
            "module = \"primes\"\n[inputs]\nrange = {{ start = 0, end = {end}, step = {step} }}\n\
             [verify]\nquorum = 2\npolicy = \"adaptive\"\nspot_check = 0.1\n[limits]\nlease = \"60s\"\n"
        ),
    );
    let job_id = grid.submit(&spec, true);
    let results = grid.results(&job_id);
    check_primes_results(&results, end, step, 1);
    let alone = results.iter().filter(|result| result.replicas == 1).count();
    let replicas: u32 = results.iter().map(|result| result.replicas).sum();
    println!("{alone} of {} units accepted alone; {replicas} replicas", results.len());
    // 300 units over 3 workers: each ends its probation (50 valid results) within the first
    // ~80 units, and trusted results then stand alone most of the time.
    assert!(alone >= 30, "adaptive replication did not take effect: {alone} units alone");
    let credit = grid.credit(&job_id);
    let credited: u64 = credit.iter().map(|row| row.replicas).sum();
    assert_eq!(credited, u64::from(replicas), "every accepted replica earns credit once: {credit:?}");
}

#[test]
fn a_failing_reducer_is_reported_and_the_unit_results_stay_available() {
    let grid = TestGrid::start("bad-reducer", 1);
    let spec = write_spec(
        &grid,
        "bad-reducer.toml",
        "module = \"sum\"\nreducer = \"probe\"\n[inputs]\nrange = { start = 0, end = 100, step = 10 }\n[verify]\nquorum = 1\n",
    );
    let job_id = grid.submit(&spec, true);
    wait_until(Duration::from_secs(30), "the reduction", || {
        grid.status(&job_id).reduced.is_some_and(|state| state.starts_with("failed"))
    });
    let mut args = vec!["results".to_string(), job_id.clone()];
    args.extend(grid.connection_args());
    let output = wasmhive(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("the reducer failed"), "{output:?}");
    assert_eq!(grid.results(&job_id).len(), 10, "per-unit results are still there");
}

#[test]
fn workers_claiming_absurd_fuel_earn_at_most_the_jobs_budget_and_the_job_completes() {
    use wasmhive_tests::wire::run_scripted_worker_claiming_fuel;
    let grid = TestGrid::start("absurd-fuel", 0);
    let spec = grid.directory.path().join("metered.toml");
    let budget: u64 = 1_000_000_000;
    std::fs::write(
        &spec,
        format!("module = \"primes\"\n[inputs]\nrange = {{ start = 0, end = 20, step = 1 }}\n[verify]\nquorum = 2\n[limits]\nfuel = {budget}\n"),
    )
    .unwrap();
    let job_id = grid.submit(spec.to_str().unwrap(), false);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = [70u8, 71]
        .into_iter()
        .map(|seed| {
            let sent = Arc::new(AtomicU64::new(0));
            let claim = Some(i64::MAX as u64);
            runtime.spawn(run_scripted_worker_claiming_fuel(
                grid.address,
                key(seed),
                stop.clone(),
                sent,
                |_| b"0\n".to_vec(),
                claim,
            ))
        })
        .collect();
    grid.wait_for_completion(&job_id);
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), worker).await }).ok();
    }
    let credit = grid.credit(&job_id);
    assert_eq!(credit.len(), 2, "{credit:?}");
    for row in &credit {
        assert!(row.credit <= row.replicas * budget, "credit is bounded by the job's fuel budget: {row:?}");
    }
}

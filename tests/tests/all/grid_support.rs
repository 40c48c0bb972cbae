//! Shared steps of the grid tests: specs, submitting, status and results through the CLI.

use std::net::SocketAddr;
use std::path::Path;
use wasmhive_protocol::api::{JobStatus, UnitResult};
use wasmhive_tests::grid::wasmhive;

/// Writes a primes job spec counting primes in [0, end) in units of `step`.
pub fn primes_spec(directory: &Path, end: u64, step: u64, quorum: u32) -> String {
    let path = directory.join(format!("primes-{end}-{quorum}.toml"));
    let text = format!(
        "name = \"primes\"\nmodule = \"primes\"\n[inputs]\nrange = {{ start = 0, end = {end}, step = {step} }}\n\
         [verify]\nquorum = {quorum}\nmax_replicas = 6\n[limits]\nlease = \"60s\"\ntimeout = \"60s\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn connection(address: SocketAddr, coordinator_data: &Path) -> Vec<String> {
    vec!["--to".into(), address.to_string(), "--data".into(), coordinator_data.to_str().unwrap().into()]
}

/// `wasmhive submit SPEC [--wait]`; returns the job id from the last stdout line.
pub fn submit(address: SocketAddr, coordinator_data: &Path, spec: &str, wait: bool) -> String {
    let mut args = vec!["submit".to_string(), spec.to_string()];
    args.extend(connection(address, coordinator_data));
    if wait {
        args.push("--wait".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = wasmhive(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "submit failed: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().last().expect("the job id line").trim().to_string()
}

pub fn status(address: SocketAddr, coordinator_data: &Path, job_id: &str) -> JobStatus {
    let mut args = vec!["status".to_string(), job_id.to_string(), "--json".to_string()];
    args.extend(connection(address, coordinator_data));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = wasmhive(&args);
    assert!(output.status.success(), "status failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut statuses: Vec<JobStatus> = serde_json::from_slice(&output.stdout).expect("status JSON");
    statuses.remove(0)
}

/// `wasmhive results JOB --jsonl`, parsed.
pub fn results(address: SocketAddr, coordinator_data: &Path, job_id: &str) -> Vec<UnitResult> {
    let mut args = vec!["results".to_string(), job_id.to_string(), "--jsonl".to_string()];
    args.extend(connection(address, coordinator_data));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = wasmhive(&args);
    assert!(output.status.success(), "results failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a result line"))
        .collect()
}

/// Checks that every unit has exactly one result and that they add up to the native count.
pub fn check_primes_results(results: &[UnitResult], end: u64, step: u64, quorum: u32) {
    let units = end.div_ceil(step);
    assert_eq!(results.len() as u64, units, "one result per unit");
    for (index, result) in results.iter().enumerate() {
        assert_eq!(result.unit, index as u64, "units in order, none twice, none missing");
        assert_eq!(result.state, "success", "unit {}: {:?}", result.unit, result.failure);
        assert!(result.replicas >= quorum, "unit {} accepted with {} replicas", result.unit, result.replicas);
        let start = index as u64 * step;
        let expected = task_kernels::primes::count_primes(start, (start + step).min(end));
        assert_eq!(result.output.as_deref(), Some(format!("{expected}\n").as_str()), "unit {}", result.unit);
    }
}

//! Shared steps of the grid tests: specs, submitting, status and results through the CLI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmhive_protocol::api::JobState;
use wasmhive_protocol::api::{JobStatus, UnitResult};
use wasmhive_tests::grid::{Running, TempDir, start_coordinator, start_worker, wasmhive};

/// A coordinator process and worker processes (one core each) in a temp directory.
pub struct TestGrid {
    pub directory: TempDir,
    pub coordinator_data: PathBuf,
    pub coordinator: Running,
    pub address: SocketAddr,
    pub workers: Vec<Running>,
}

impl TestGrid {
    pub fn start(name: &str, workers: usize) -> TestGrid {
        let directory = TempDir::new(name);
        let coordinator_data = directory.path().join("coordinator");
        let (coordinator, address) = start_coordinator(&coordinator_data, "127.0.0.1:0");
        let mut grid = TestGrid { directory, coordinator_data, coordinator, address, workers: Vec::new() };
        for index in 0..workers {
            let worker = grid.start_worker(&format!("worker-{index}"));
            grid.workers.push(worker);
        }
        grid
    }

    /// Starts one more worker, with its own data directory (so its own identity).
    pub fn start_worker(&self, name: &str) -> Running {
        start_worker(self.address, &self.directory.path().join(name), 1)
    }

    /// Kills the coordinator (SIGKILL) and starts it again on the same address and data.
    pub fn restart_coordinator(&mut self) {
        self.coordinator.kill();
        let (coordinator, address) = start_coordinator(&self.coordinator_data, &self.address.to_string());
        assert_eq!(address, self.address);
        self.coordinator = coordinator;
    }

    pub fn primes_spec(&self, end: u64, step: u64, quorum: u32) -> String {
        primes_spec(self.directory.path(), end, step, quorum)
    }

    pub fn submit(&self, spec: &str, wait: bool) -> String {
        submit(self.address, &self.coordinator_data, spec, wait)
    }

    pub fn status(&self, job_id: &str) -> JobStatus {
        status(self.address, &self.coordinator_data, job_id)
    }

    pub fn results(&self, job_id: &str) -> Vec<UnitResult> {
        results(self.address, &self.coordinator_data, job_id)
    }

    pub fn wait_for_verified(&self, job_id: &str, units: u64) {
        self.wait(Duration::from_secs(60), "some verified units", || self.status(job_id).verified >= units);
    }

    pub fn wait_for_completion(&self, job_id: &str) {
        self.wait(Duration::from_secs(120), "the job to complete", || {
            self.status(job_id).state == JobState::Completed
        });
    }

    /// Like `wait_until`, but a timeout shows the end of every process's log.
    fn wait(&self, timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + timeout;
        while !condition() {
            if std::time::Instant::now() >= deadline {
                let mut logs = format!("coordinator:\n{}", tail(&self.coordinator.log_text()));
                for (index, worker) in self.workers.iter().enumerate() {
                    logs.push_str(&format!("\nworker {index}:\n{}", tail(&worker.log_text())));
                }
                panic!("timed out waiting for {what}\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `wasmhive credit --job JOB --json`, parsed.
    pub fn credit(&self, job_id: &str) -> Vec<wasmhive_protocol::api::CreditRow> {
        let mut args =
            vec!["credit".to_string(), "--job".to_string(), job_id.to_string(), "--json".to_string()];
        args.extend(self.connection_args());
        let output = wasmhive(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(output.status.success(), "credit failed: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("credit JSON")
    }

    /// `wasmhive reputation --json`, parsed.
    pub fn reputations(&self) -> Vec<wasmhive_protocol::api::WorkerReputation> {
        let mut args = vec!["reputation".to_string(), "--json".to_string()];
        args.extend(self.connection_args());
        let output = wasmhive(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(output.status.success(), "reputation failed: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("reputation JSON")
    }

    /// `--to ADDR --data DIR` for CLI calls against this grid.
    pub fn connection_args(&self) -> Vec<String> {
        connection(self.address, &self.coordinator_data)
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

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
        let distinct: std::collections::HashSet<&String> = result.replica_peers.iter().collect();
        assert!(
            distinct.len() as u32 >= quorum && distinct.len() == result.replica_peers.len(),
            "unit {}: matching replicas must come from {quorum} distinct peers: {:?}",
            result.unit,
            result.replica_peers
        );
        let start = index as u64 * step;
        let expected = task_kernels::primes::count_primes(start, (start + step).min(end));
        assert_eq!(result.output.as_deref(), Some(format!("{expected}\n").as_str()), "unit {}", result.unit);
    }
}

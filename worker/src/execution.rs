//! Running leases on the rayon pool and turning outcomes into reports.

use crate::Execution;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use wasmhive_protocol::{Lease, OutcomeReport, Status};
use wasmhive_sandbox::{Limits, ModuleBytes, RunGate, Sandbox, UnitRequest};

/// Leases queued on the pool that have not started: the shared list lets the session take
/// them back (cancel, shutdown, lost connection) before a thread picks them up.
#[derive(Clone, Default)]
pub struct NotStarted {
    lease_ids: Arc<Mutex<HashSet<u64>>>,
}

impl NotStarted {
    pub fn add(&self, lease_id: u64) {
        self.lease_ids.lock().expect("not-started lock").insert(lease_id);
    }

    /// True if the lease was still waiting (and is now claimed to run).
    pub fn claim(&self, lease_id: u64) -> bool {
        self.lease_ids.lock().expect("not-started lock").remove(&lease_id)
    }

    /// Takes back the given leases that have not started; returns those it took.
    pub fn take_back(&self, lease_ids: &[u64]) -> Vec<u64> {
        let mut waiting = self.lease_ids.lock().expect("not-started lock");
        lease_ids.iter().copied().filter(|lease_id| waiting.remove(lease_id)).collect()
    }

    /// Takes back every lease that has not started.
    pub fn take_back_all(&self) -> Vec<u64> {
        self.lease_ids.lock().expect("not-started lock").drain().collect()
    }
}

/// A report, or word that a queued lease was skipped.
pub enum Finished {
    Ran(Box<OutcomeReport>),
    Skipped,
}

/// Queues `lease` on the pool; its result arrives on `finished`. On its thread it first
/// reserves its memory limit under the worker's cap (waiting for room), then runs.
pub fn spawn_lease(
    execution: Arc<Execution>,
    module: ModuleBytes,
    lease: Lease,
    not_started: NotStarted,
    finished: mpsc::UnboundedSender<Finished>,
) {
    not_started.add(lease.lease_id);
    let pool_execution = execution.clone();
    pool_execution.pool.spawn(move || {
        let controls = execution.controls();
        controls.gate.checkpoint(Duration::ZERO);
        let _memory = controls.memory.reserve(lease.limits.memory_bytes_max);
        if !not_started.claim(lease.lease_id) {
            let _ = finished.send(Finished::Skipped);
            return;
        }
        execution.running.fetch_add(1, Ordering::Relaxed);
        controls.gate.unit_starting();
        let report = run_lease(&execution.sandbox, &module, &lease);
        controls.gate.unit_finished();
        execution.running.fetch_sub(1, Ordering::Relaxed);
        controls.unit_finished(report.fuel_used);
        let _ = finished.send(Finished::Ran(Box::new(report)));
    });
}

fn run_lease(sandbox: &Sandbox, module: &ModuleBytes, lease: &Lease) -> OutcomeReport {
    let limits = Limits {
        fuel: lease.limits.fuel,
        memory_bytes_max: lease.limits.memory_bytes_max,
        stdout_bytes_max: usize::try_from(lease.limits.stdout_bytes_max).unwrap_or(usize::MAX),
        wall_time_max: Duration::from_millis(lease.limits.wall_time_ms_max),
        ..Limits::default()
    };
    let request = UnitRequest {
        module,
        input: &lease.input,
        task_name: &lease.task_name,
        args: &lease.args,
        job_id: &lease.job_id,
        unit_index: lease.unit_index,
        job_time: Duration::from_secs(lease.job_time_s),
        limits: &limits,
        nan_canonicalization: lease.nan_canonicalization,
    };
    match sandbox.run(&request) {
        Ok(outcome) => OutcomeReport {
            lease_id: lease.lease_id,
            job_id: lease.job_id.clone(),
            unit_index: lease.unit_index,
            status: outcome.status,
            output: outcome.stdout,
            digest: outcome.digest,
            fuel_used: outcome.fuel_used,
            wall_time_ms: outcome.wall_time.as_millis() as u64,
            engine_class: outcome.engine_class,
        },
        Err(error) => {
            let status = Status::InvalidModule { reason: error.to_string() };
            OutcomeReport {
                lease_id: lease.lease_id,
                job_id: lease.job_id.clone(),
                unit_index: lease.unit_index,
                digest: wasmhive_protocol::outcome_digest(&status, &[]),
                status,
                output: Vec::new(),
                fuel_used: None,
                wall_time_ms: 0,
                engine_class: String::new(),
            }
        }
    }
}

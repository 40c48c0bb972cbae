//! What one execution of a unit produced.

use std::time::Duration;
use wasmhive_protocol::{Hash, Status};

/// The result of running one unit once.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: Status,
    /// Everything the task wrote to stdout (at most the output limit).
    pub stdout: Vec<u8>,
    /// The first bytes the task wrote to stderr (at most the stderr limit); not compared.
    pub stderr: Vec<u8>,
    /// Fuel consumed, when the job metered fuel.
    pub fuel_used: Option<u64>,
    /// blake3 over the status's canonical text and stdout: what replicas compare.
    pub digest: Hash,
    /// Host wall time of compile (if not cached) + instantiate + run.
    pub wall_time: Duration,
    /// Engine version, host ISA and determinism settings this outcome was produced with.
    pub engine_class: std::sync::Arc<str>,
    /// A readable account of how the run ended, for people.
    pub message: String,
}

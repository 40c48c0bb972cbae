//! The sandbox: runs one work unit of a wasm task module under Task ABI v1 and v2 (v2 adds
//! read-only files: `/input` and the job's `/shared/NAME`, see `read_only_files.rs`).
//!
//! This is the only crate that uses wasmtime. [`Sandbox::run`] takes a module, an input and
//! limits and returns an [`Outcome`]. It never panics on guest behaviour: every way a guest
//! can end is a [`Status`].
//!
//! Invariants:
//! - Determinism: the same module, input, args, job id, unit index and limits give the same
//!   status, stdout, fuel and digest on every run, thread and host of the same engine class
//!   (and, with NaN canonicalisation on, across ISAs). Clocks are virtual, `random_get` is
//!   seeded from (job id, unit index), relaxed SIMD is deterministic, there are no threads.
//! - Isolation: no host directory, no sockets, no inherited env or args; the one preopen
//!   (`/`) is a read-only tree built from the request; linear memory, tables, stack, fuel,
//!   stdout and stderr are capped. Every WASI function is the sandbox's own
//!   (`environment_wasi.rs`, `read_only_files_wasi.rs`): nothing reaches the host's files,
//!   clocks, randomness or network.
//! - The wall-clock guard (epoch interruption) is always on; it yields `HostTimeout`,
//!   which is never a result.
//! - Safe to call from many threads at once; compiled modules are shared.

mod deterministic_wasi;
mod engine;
mod environment_wasi;
mod function_bodies;
mod guest_memory;
pub mod integer_fast_paths;
#[cfg(test)]
mod integer_fast_paths_tests;
mod limits;
pub mod loop_unrolling;
mod module_cache;
mod outcome;
mod read_only_files;
#[cfg(test)]
mod read_only_files_tests;
mod read_only_files_wasi;
mod run;
mod run_gate;
mod unit_state;
mod virtual_sleep;

pub use deterministic_wasi::{MONOTONIC_STEP, random_get_stream};
pub use engine::{
    EPOCH_TICK, engine_class_name, is_known_engine_class, known_engine_classes, wasmtime_version,
};
pub use limits::{
    Limits, MEMORY_BYTES_MAX_CEILING, TABLE_ELEMENTS_MAX_CEILING, WALL_TIME_MAX_DEFAULT,
    WASM_STACK_BYTES_MAX_CEILING,
};
pub use module_cache::compilations_in_flight_max;
pub use outcome::Outcome;
pub use read_only_files::{FileSource, SharedFile};
pub use run_gate::{CHECKPOINT_INTERVAL, RunGate, SharedRunGate};
pub use wasmhive_protocol::{Hash, Status, TrapKind, outcome_digest};

use engine::{EngineKey, EngineWithLinker, build_engine};
use module_cache::ModuleCache;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings of one sandbox (one per host process).
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Bytes of compiled code kept in memory.
    pub module_cache_bytes_max: usize,
    /// Where this host keeps the modules it compiled, or `None` for memory only.
    pub artifact_dir: Option<PathBuf>,
    /// Pauses and throttles running units (a volunteer's controls), if set.
    pub run_gate: Option<SharedRunGate>,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig { module_cache_bytes_max: 512 << 20, artifact_dir: None, run_gate: None }
    }
}

/// A task module's bytes and their blake3 hash.
#[derive(Clone, Debug)]
pub struct ModuleBytes {
    pub hash: Hash,
    pub bytes: Arc<[u8]>,
}

impl ModuleBytes {
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> ModuleBytes {
        let bytes = bytes.into();
        ModuleBytes { hash: Hash::of(&bytes), bytes }
    }
}

/// One unit to run.
#[derive(Clone, Debug)]
pub struct UnitRequest<'a> {
    pub module: &'a ModuleBytes,
    /// Stdin, and the file `/input`.
    pub input: FileSource,
    /// The job's shared data: `/shared/NAME`.
    pub shared: &'a [SharedFile],
    /// argv\[0\]; the job's args follow it.
    pub task_name: &'a str,
    pub args: &'a [String],
    /// `WASMHIVE_JOB`, and half the `random_get` seed.
    pub job_id: &'a str,
    /// `WASMHIVE_UNIT`, and the other half of the seed.
    pub unit_index: u64,
    /// What the guest's wall clock reads (fixed for the whole job).
    pub job_time: Duration,
    pub limits: &'a Limits,
    /// Canonicalise NaN bit patterns so float results agree across ISAs.
    pub nan_canonicalization: bool,
}

/// A problem of the host, not of the module: the unit was not run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The limits are outside what the sandbox supports.
    #[error("invalid limits: {0}")]
    InvalidLimits(String),
    /// wasmtime could not create an engine (e.g. out of virtual memory for the pool).
    #[error("could not create the wasm engine: {0}")]
    Engine(String),
}

/// Runs units. Cheap to share: wrap it in an `Arc` and call [`Sandbox::run`] from any thread.
pub struct Sandbox {
    engines: Mutex<HashMap<EngineKey, Arc<EngineWithLinker>>>,
    modules: ModuleCache,
    run_gate: Option<SharedRunGate>,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Sandbox {
        Sandbox {
            engines: Mutex::new(HashMap::new()),
            modules: ModuleCache::new(config.module_cache_bytes_max, config.artifact_dir),
            run_gate: config.run_gate,
        }
    }

    /// Runs one unit to its end. Guest misbehaviour is a status in the outcome; only host
    /// problems are errors.
    pub fn run(&self, request: &UnitRequest<'_>) -> Result<Outcome, SandboxError> {
        request.limits.validate().map_err(SandboxError::InvalidLimits)?;
        let engine_key = EngineKey {
            fuel_metering: request.limits.fuel.is_some(),
            nan_canonicalization: request.nan_canonicalization,
            wasm_stack_bytes_max: request.limits.wasm_stack_bytes_max,
        };
        let engine = self.engine_for(engine_key)?;
        Ok(run::run_unit(&self.modules, engine_key, &engine, request, self.run_gate.as_ref()))
    }

    /// Compiled modules held in memory.
    pub fn cached_module_count(&self) -> usize {
        self.modules.module_count()
    }

    fn engine_for(&self, key: EngineKey) -> Result<Arc<EngineWithLinker>, SandboxError> {
        let mut engines = self.engines.lock().expect("engine map poisoned");
        if let Some(engine) = engines.get(&key) {
            return Ok(engine.clone());
        }
        let engine = Arc::new(build_engine(key).map_err(|error| SandboxError::Engine(format!("{error:#}")))?);
        engines.insert(key, engine.clone());
        Ok(engine)
    }
}

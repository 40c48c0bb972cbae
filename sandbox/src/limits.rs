//! Per-unit limits and their safe defaults.

use std::time::Duration;

/// What one unit may use. Every field has a safe default; a job may raise or lower them.
///
/// `fuel`, `memory_bytes_max`, `table_elements_max`, `wasm_stack_bytes_max` and
/// `stdout_bytes_max` are deterministic: every honest host stops the task at the same point.
/// `wall_time_max` and `compile_time_max` protect the host and are not: hitting them is
/// a host timeout (retried elsewhere) or an invalid module respectively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel budget (about one unit per wasm instruction). `None` turns metering off.
    pub fuel: Option<u64>,
    /// Largest linear memory, in bytes.
    pub memory_bytes_max: u64,
    /// Largest table, in elements.
    pub table_elements_max: u64,
    /// Deepest wasm call stack, in bytes of native stack.
    pub wasm_stack_bytes_max: usize,
    /// Largest stdout; writing more ends the task with `output limit`.
    pub stdout_bytes_max: usize,
    /// Largest stderr kept; the rest is dropped silently (stderr is diagnostics only).
    pub stderr_bytes_max: usize,
    /// Largest module accepted for compilation, in bytes.
    pub module_bytes_max: usize,
    /// Longest compilation before the module is declared invalid.
    pub compile_time_max: Duration,
    /// Wall-clock guard: the task is stopped with `host timeout` after this long.
    pub wall_time_max: Duration,
}

/// The wall-clock guard when a job sets none: 10 seconds.
pub const WALL_TIME_MAX_DEFAULT: Duration = Duration::from_secs(10);

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            fuel: None,
            memory_bytes_max: 256 << 20,
            table_elements_max: 100_000,
            wasm_stack_bytes_max: 512 << 10,
            stdout_bytes_max: 1 << 20,
            stderr_bytes_max: 64 << 10,
            module_bytes_max: 32 << 20,
            compile_time_max: Duration::from_secs(10),
            wall_time_max: WALL_TIME_MAX_DEFAULT,
        }
    }
}

/// Largest linear memory any job may ask for: all of wasm32's 4 GiB.
pub const MEMORY_BYTES_MAX_CEILING: u64 = 4 << 30;
/// Largest table any job may ask for, in elements.
pub const TABLE_ELEMENTS_MAX_CEILING: usize = 1_000_000;
/// Deepest wasm stack any job may ask for.
pub const WASM_STACK_BYTES_MAX_CEILING: usize = 1 << 20;

impl Limits {
    /// A job's limits as the sandbox applies them (what a job does not set keeps its
    /// default). The one conversion, for workers and for the owner's own runs alike.
    pub fn for_job(job: &wasmhive_protocol::api::JobLimits) -> Limits {
        Limits {
            fuel: job.fuel,
            memory_bytes_max: job.memory_bytes,
            stdout_bytes_max: usize::try_from(job.output_bytes).unwrap_or(usize::MAX),
            wall_time_max: Duration::from_millis(job.timeout_ms),
            ..Limits::default()
        }
    }

    /// Checks the limits against the sandbox's ceilings; the error says which key to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.memory_bytes_max > MEMORY_BYTES_MAX_CEILING {
            return Err(format!(
                "memory limit {} bytes is above the 4 GiB that wasm32 can address; use at most 4 GiB",
                self.memory_bytes_max
            ));
        }
        if self.table_elements_max > TABLE_ELEMENTS_MAX_CEILING as u64 {
            return Err(format!(
                "table limit {} elements is above the ceiling of {TABLE_ELEMENTS_MAX_CEILING}",
                self.table_elements_max
            ));
        }
        if self.wasm_stack_bytes_max == 0 || self.wasm_stack_bytes_max > WASM_STACK_BYTES_MAX_CEILING {
            return Err(format!(
                "wasm stack limit {} bytes must be between 1 byte and 1 MiB (wasm runs on the calling thread's stack, 2 MiB for spawned threads)",
                self.wasm_stack_bytes_max
            ));
        }
        if self.wall_time_max.is_zero() {
            return Err("wall-time limit must be above zero".to_string());
        }
        if self.fuel == Some(0) {
            return Err("fuel budget must be above zero; leave it unset to turn metering off".to_string());
        }
        Ok(())
    }
}

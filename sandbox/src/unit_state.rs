//! The per-unit store data: what the unit's WASI functions answer from, and the resource
//! limiter.

use crate::deterministic_wasi::{SeededRandom, SteppingMonotonicClock};
use crate::read_only_files::UnitFiles;
use crate::read_only_files_wasi::Stdio;
use std::time::Duration;
use wasmtime::ResourceLimiter;

/// Everything a running unit's `Store` holds.
pub struct UnitState {
    /// argv: the task name, then the job's args.
    pub arguments: Vec<String>,
    /// `KEY=VALUE` strings: `WASMHIVE_JOB` and `WASMHIVE_UNIT`.
    pub environment: Vec<String>,
    /// What the wall clock reads, since the Unix epoch: the job's time.
    pub wall_clock: Duration,
    /// The unit's `random_get` stream.
    pub random: SeededRandom,
    /// The unit's virtual monotonic clock, which reads and sleeps advance.
    pub monotonic_clock: SteppingMonotonicClock,
    pub limiter: UnitLimiter,
    /// The unit's read-only files and stdin (Task ABI v2, see `read_only_files`).
    pub files: UnitFiles,
    pub stdio: Stdio,
}

/// Refuses linear memory and table growth past the unit's limits, and remembers that it
/// did so, so the outcome says `memory limit` rather than whatever trap the guest's
/// allocator turns a failed `memory.grow` into.
pub struct UnitLimiter {
    pub memory_bytes_max: u64,
    pub table_elements_max: u64,
    pub limit_hit: bool,
}

impl ResourceLimiter for UnitLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_bytes_max {
            self.limit_hit = true;
            wasmtime::bail!("memory limit of {} bytes reached", self.memory_bytes_max);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.table_elements_max {
            self.limit_hit = true;
            wasmtime::bail!("table limit of {} elements reached", self.table_elements_max);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

//! What the shell keeps in memory per job: its stored description and module bytes, and
//! how to build a unit's input and lease.

use crate::store::{Store, StoreResult, StoredJob};
use std::sync::Arc;
use wasmhive_protocol::{Lease, WireLimits};

pub struct JobRuntime {
    pub stored: StoredJob,
    pub module: Arc<Vec<u8>>,
}

impl JobRuntime {
    /// The unit's input bytes and a label for people (the range text, line or file name).
    pub fn unit_input(&self, store: &Store, unit_index: u64) -> StoreResult<(String, Vec<u8>)> {
        if let Some((start, end, step)) = self.stored.range {
            let from = start + unit_index * step;
            let text = format!("{from} {}", (from + step).min(end));
            return Ok((text.clone(), text.into_bytes()));
        }
        store.unit_input(&self.stored.job_id, unit_index).map(|found| found.unwrap_or_default())
    }

    pub fn lease(&self, lease_id: u64, unit_index: u64, input: Vec<u8>) -> Lease {
        let limits = &self.stored.limits;
        Lease {
            lease_id,
            job_id: self.stored.job_id.clone(),
            unit_index,
            task_name: self.stored.task_name.clone(),
            module: self.stored.module_hash,
            input,
            args: self.stored.args.clone(),
            limits: WireLimits {
                fuel: limits.fuel,
                memory_bytes_max: limits.memory_bytes,
                stdout_bytes_max: limits.output_bytes,
                wall_time_ms_max: limits.timeout_ms,
            },
            job_time_s: self.stored.created_s,
            nan_canonicalization: self.stored.nan_canonicalization,
            lease_ms: limits.lease_ms,
        }
    }
}

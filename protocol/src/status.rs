//! How one replica's execution ended.
//!
//! Every status except [`Status::HostTimeout`] is deterministic: two honest hosts running the
//! same unit with the same limits reach the same status, so statuses take part in quorum.
//! A host timeout says only that this host's wall-clock guard fired; it is retried
//! elsewhere and never accepted as a result.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The end of one execution of a unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Status {
    /// `_start` returned or the task called `proc_exit(0)`.
    Success,
    /// The task called `proc_exit` with a non-zero code.
    ExitCode { code: i32 },
    /// The task trapped.
    Trap { trap: TrapKind },
    /// The job's fuel budget ran out (deterministic: same point on every host).
    FuelExhausted,
    /// The task tried to grow linear memory or a table past the job's limit.
    MemoryLimit,
    /// The task wrote more to stdout than the job's output limit.
    OutputLimit,
    /// This host's wall-clock guard stopped the task; not a result, retry elsewhere.
    HostTimeout,
    /// The module could not be compiled or instantiated under Task ABI v1.
    InvalidModule { reason: String },
}

/// Why a task trapped, as wasm defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrapKind {
    Unreachable,
    StackOverflow,
    MemoryOutOfBounds,
    HeapMisaligned,
    TableOutOfBounds,
    IndirectCallToNull,
    BadSignature,
    IntegerOverflow,
    IntegerDivisionByZero,
    BadConversionToInteger,
    NullReference,
    /// A trap this version of wasmhive has no name for.
    Other,
}

impl Status {
    /// True when replicas may agree on this status (everything but a host timeout).
    pub fn is_deterministic(&self) -> bool {
        !matches!(self, Status::HostTimeout)
    }

    /// True for a clean exit.
    pub fn is_success(&self) -> bool {
        matches!(self, Status::Success)
    }

    /// The canonical text that goes into an outcome digest. Stable across versions of
    /// Task ABI v1: changing it changes every digest.
    pub fn canonical_text(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Status::Success => "success".into(),
            Status::ExitCode { code } => format!("exit:{code}").into(),
            Status::Trap { trap } => format!("trap:{}", trap.name()).into(),
            Status::FuelExhausted => "fuel_exhausted".into(),
            Status::MemoryLimit => "memory_limit".into(),
            Status::OutputLimit => "output_limit".into(),
            Status::HostTimeout => "host_timeout".into(),
            Status::InvalidModule { reason } => format!("invalid_module:{reason}").into(),
        }
    }

    /// The process exit code `wasmhive run` uses for this status.
    pub fn process_exit_code(&self) -> i32 {
        match self {
            Status::Success => 0,
            Status::ExitCode { code } => (*code).clamp(1, 255),
            Status::Trap { .. } => 134,
            Status::FuelExhausted => 135,
            Status::MemoryLimit => 136,
            Status::OutputLimit => 137,
            Status::HostTimeout => 124,
            Status::InvalidModule { .. } => 65,
        }
    }
}

/// The digest replicas compare: blake3(canonical status text, 0, stdout), or for stdout
/// larger than [`crate::OUTPUT_INLINE_BYTES_MAX`] (which travels as a blob) the
/// [`blob_outcome_digest`] of its blob. Either way a function of the bytes alone. Owners
/// recompute it from the reported bytes (or the blob they fetched); a worker's own digest
/// is never trusted.
pub fn outcome_digest(status: &Status, stdout: &[u8]) -> crate::Hash {
    if stdout.len() as u64 > crate::OUTPUT_INLINE_BYTES_MAX {
        let blob = crate::BlobRef { hash: blake3::hash(stdout).into(), size: stdout.len() as u64 };
        return blob_outcome_digest(status, &blob);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(status.canonical_text().as_bytes());
    hasher.update(&[0]);
    hasher.update(stdout);
    hasher.finalize().into()
}

/// The digest of an outcome whose stdout is the blob `output`: blake3(canonical status
/// text, 1, blob hash, size as 8 bytes little-endian). The status text is printable, so
/// the byte after it tells the two forms apart.
pub fn blob_outcome_digest(status: &Status, output: &crate::BlobRef) -> crate::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(status.canonical_text().as_bytes());
    hasher.update(&[1]);
    hasher.update(&output.hash.0);
    hasher.update(&output.size.to_le_bytes());
    hasher.finalize().into()
}

impl TrapKind {
    /// The snake_case name used in digests, JSON and messages.
    pub fn name(&self) -> &'static str {
        match self {
            TrapKind::Unreachable => "unreachable",
            TrapKind::StackOverflow => "stack_overflow",
            TrapKind::MemoryOutOfBounds => "memory_out_of_bounds",
            TrapKind::HeapMisaligned => "heap_misaligned",
            TrapKind::TableOutOfBounds => "table_out_of_bounds",
            TrapKind::IndirectCallToNull => "indirect_call_to_null",
            TrapKind::BadSignature => "bad_signature",
            TrapKind::IntegerOverflow => "integer_overflow",
            TrapKind::IntegerDivisionByZero => "integer_division_by_zero",
            TrapKind::BadConversionToInteger => "bad_conversion_to_integer",
            TrapKind::NullReference => "null_reference",
            TrapKind::Other => "other",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Success => write!(formatter, "success"),
            Status::ExitCode { code } => write!(formatter, "exited with code {code}"),
            Status::Trap { trap } => write!(formatter, "trapped: {}", trap.name()),
            Status::FuelExhausted => write!(formatter, "fuel exhausted (raise [limits] fuel)"),
            Status::MemoryLimit => write!(formatter, "memory limit reached (raise [limits] memory)"),
            Status::OutputLimit => write!(formatter, "output limit reached (raise [limits] output)"),
            Status::HostTimeout => write!(formatter, "host timeout (wall-clock guard fired)"),
            Status::InvalidModule { reason } => write!(formatter, "invalid module: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_above_the_inline_limit_has_the_digest_of_its_blob() {
        let limit = crate::OUTPUT_INLINE_BYTES_MAX as usize;
        let large = vec![7u8; limit + 1];
        let blob = crate::BlobRef { hash: blake3::hash(&large).into(), size: large.len() as u64 };
        assert_eq!(outcome_digest(&Status::Success, &large), blob_outcome_digest(&Status::Success, &blob));
        assert_ne!(
            outcome_digest(&Status::ExitCode { code: 1 }, &large),
            blob_outcome_digest(&Status::Success, &blob)
        );
        // At the limit the bytes themselves are hashed: the two forms never meet.
        let at_limit = vec![7u8; limit];
        let as_blob = crate::BlobRef { hash: blake3::hash(&at_limit).into(), size: limit as u64 };
        assert_ne!(
            outcome_digest(&Status::Success, &at_limit),
            blob_outcome_digest(&Status::Success, &as_blob)
        );
    }

    #[test]
    fn canonical_texts_are_distinct_and_json_round_trips() {
        let statuses = [
            Status::Success,
            Status::ExitCode { code: 3 },
            Status::Trap { trap: TrapKind::Unreachable },
            Status::FuelExhausted,
            Status::MemoryLimit,
            Status::OutputLimit,
            Status::HostTimeout,
            Status::InvalidModule { reason: "no _start".into() },
        ];
        let texts: std::collections::HashSet<String> =
            statuses.iter().map(|status| status.canonical_text().into_owned()).collect();
        assert_eq!(texts.len(), statuses.len());
        for status in statuses {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
        }
    }
}

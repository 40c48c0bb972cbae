//! The deterministic WASI environment of Task ABI v1: virtual clocks, a seeded random
//! stream and capped in-memory stdout/stderr.
//!
//! Invariants: nothing a guest can observe depends on the host, the time of day or
//! another unit. Clocks depend only on the number of clock calls; random bytes only on
//! (job id, unit index); stdio only on what the guest wrote.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every monotonic clock read advances the virtual clock by this much.
pub const MONOTONIC_STEP: Duration = Duration::from_millis(1);

/// The monotonic clock: starts at zero and advances by [`MONOTONIC_STEP`] per read, and
/// by exactly the time a guest sleeps (`poll_oneoff`, see `virtual_sleep`), at once.
#[derive(Default)]
pub struct SteppingMonotonicClock {
    elapsed_ns: u64,
}

impl SteppingMonotonicClock {
    /// The clock's reading without advancing it.
    pub fn peek(&self) -> u64 {
        self.elapsed_ns
    }

    /// A guest's read: the reading, then the clock moves on by one step.
    pub fn read(&mut self) -> u64 {
        let now = self.elapsed_ns;
        self.elapsed_ns = now.saturating_add(self.resolution_ns());
        now
    }

    pub fn resolution_ns(&self) -> u64 {
        MONOTONIC_STEP.as_nanos() as u64
    }

    /// Moves the clock forward to `deadline_ns` (never backward): a sleep that returns
    /// at once, having "slept" exactly as long as asked.
    pub fn advance_to(&mut self, deadline_ns: u64) {
        self.elapsed_ns = self.elapsed_ns.max(deadline_ns);
    }
}

/// `random_get`: the blake3 extendable output of (job id, unit index), so every replica
/// of a unit sees the same bytes and different units see unrelated ones.
pub struct SeededRandom {
    stream: blake3::OutputReader,
}

impl SeededRandom {
    pub fn new(job_id: &str, unit_index: u64, purpose: &str) -> SeededRandom {
        let mut hasher = blake3::Hasher::new_derive_key("wasmhive task abi v1 random_get");
        hasher.update(purpose.as_bytes());
        hasher.update(&[0]);
        hasher.update(&(job_id.len() as u64).to_le_bytes());
        hasher.update(job_id.as_bytes());
        hasher.update(&unit_index.to_le_bytes());
        SeededRandom { stream: hasher.finalize_xof() }
    }

    /// Fills `destination` with the next bytes of the stream.
    pub fn fill(&mut self, destination: &mut [u8]) {
        self.stream.fill(destination);
    }
}

/// The bytes a unit's `random_get` calls return, in order, as a fill function: lets native
/// code (benchmarks, tests) consume exactly the stream the guest sees.
pub fn random_get_stream(job_id: &str, unit_index: u64) -> impl FnMut(&mut [u8]) {
    let mut random = SeededRandom::new(job_id, unit_index, "random_get");
    move |destination: &mut [u8]| random.fill(destination)
}

/// What a [`CappedPipe`] does with bytes past its cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Trap the guest and remember it (stdout: the output limit is part of the result).
    TrapGuest,
    /// Keep the first bytes and drop the rest silently (stderr: diagnostics only).
    DropExcess,
}

/// An in-memory stdout or stderr with a byte cap.
#[derive(Clone)]
pub struct CappedPipe {
    buffer: Arc<Mutex<Vec<u8>>>,
    overflowed: Arc<AtomicBool>,
    bytes_max: usize,
    policy: OverflowPolicy,
}

impl CappedPipe {
    pub fn new(bytes_max: usize, policy: OverflowPolicy) -> CappedPipe {
        CappedPipe {
            buffer: Arc::new(Mutex::new(Vec::new())),
            overflowed: Arc::new(AtomicBool::new(false)),
            bytes_max,
            policy,
        }
    }

    /// True once a write went past the cap.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// The bytes written so far (at most the cap).
    pub fn take_contents(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buffer.lock().expect("pipe buffer poisoned"))
    }

    /// Appends what fits; returns false when some bytes did not fit.
    /// Appends what fits. Err (with `TrapGuest`): the limit was reached, and the run ends.
    pub fn write(&self, bytes: &[u8]) -> Result<(), String> {
        if self.append(bytes) || self.policy == OverflowPolicy::DropExcess {
            return Ok(());
        }
        Err(format!("output limit of {} bytes reached", self.bytes_max))
    }

    fn append(&self, bytes: &[u8]) -> bool {
        let mut buffer = self.buffer.lock().expect("pipe buffer poisoned");
        let room = self.bytes_max.saturating_sub(buffer.len());
        let fitting = bytes.len().min(room);
        buffer.extend_from_slice(&bytes[..fitting]);
        if fitting < bytes.len() {
            self.overflowed.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

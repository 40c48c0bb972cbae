//! The run gate: lets the host pause and throttle running units without changing what
//! they compute.
//!
//! With a gate, the wall-clock guard checks in about every [`CHECKPOINT_INTERVAL`] of a
//! unit's run (an epoch deadline callback): it counts the unit's running time, traps it as
//! a host timeout when that passes `wall_time_max`, and otherwise calls
//! [`RunGate::checkpoint`], which may block (paused, or over a CPU duty cycle). Time spent
//! blocked is not running time, so a pause never turns into a host timeout. Without a gate
//! the guard is a single deadline at `wall_time_max`.
//!
//! Determinism is untouched: checkpoints happen at epoch boundaries, which the guest
//! cannot observe (its clocks are virtual), and never change fuel or memory.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How often a gated unit checks in.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(50);

/// The host's say over running units.
pub trait RunGate: Send + Sync {
    /// Called on the unit's thread about every [`CHECKPOINT_INTERVAL`] of running time;
    /// `ran` is how long it ran since its previous checkpoint. Blocks while the unit must
    /// not run.
    fn checkpoint(&self, ran: Duration);
}

/// A gate shared by every unit of a sandbox.
#[derive(Clone)]
pub struct SharedRunGate(pub Arc<dyn RunGate>);

impl fmt::Debug for SharedRunGate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SharedRunGate")
    }
}

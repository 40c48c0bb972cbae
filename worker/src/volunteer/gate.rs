//! The volunteer gate: pauses running units and holds them to a CPU duty cycle.
//!
//! Units check in about every 50 ms of running (see `wasmhive_sandbox::RunGate`). While any
//! pause reason holds, a checkpoint blocks; a paused unit keeps its lease and resumes where
//! it stopped. With `cpu_percent` P below 100, a unit that ran for `t` sleeps
//! `t·(100 − P)/P` afterwards, so each unit thread uses about P% of a core: at every
//! checkpoint for the time since the previous one, and at the unit's end
//! ([`VolunteerGate::unit_finished`]) for the rest, so short units are held to it too.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use wasmhive_sandbox::RunGate;

thread_local! {
    /// When this unit thread last rested (or started its unit).
    static LAST_REST: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Why the worker does not run units right now.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PauseReason {
    /// `wasmhive worker pause`.
    ByUser,
    /// Other programs used more CPU than the threshold for the grace period.
    MachineBusy,
    /// Outside the configured schedule.
    OutsideSchedule,
    /// Running on battery.
    OnBattery,
}

impl fmt::Display for PauseReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            PauseReason::ByUser => "paused by the user (`wasmhive worker resume` resumes)",
            PauseReason::MachineBusy => "the machine is busy with other programs",
            PauseReason::OutsideSchedule => "outside the schedule",
            PauseReason::OnBattery => "running on battery",
        })
    }
}

pub struct VolunteerGate {
    reasons: Mutex<BTreeSet<PauseReason>>,
    resumed: Condvar,
    cpu_percent: u32,
}

impl VolunteerGate {
    pub fn new(cpu_percent: u32) -> VolunteerGate {
        VolunteerGate {
            reasons: Mutex::new(BTreeSet::new()),
            resumed: Condvar::new(),
            cpu_percent: cpu_percent.clamp(1, 100),
        }
    }

    /// Adds or removes one reason; returns true when that changed anything.
    pub fn set(&self, reason: PauseReason, holds: bool) -> bool {
        let mut reasons = self.reasons.lock().expect("pause reasons lock");
        let changed = if holds { reasons.insert(reason) } else { reasons.remove(&reason) };
        if reasons.is_empty() {
            self.resumed.notify_all();
        }
        changed
    }

    pub fn reasons(&self) -> Vec<PauseReason> {
        self.reasons.lock().expect("pause reasons lock").iter().cloned().collect()
    }

    pub fn is_paused(&self) -> bool {
        !self.reasons.lock().expect("pause reasons lock").is_empty()
    }

    pub fn cpu_percent(&self) -> u32 {
        self.cpu_percent
    }

    fn duty_cycle_rest(&self, ran: Duration) -> Duration {
        ran * (100 - self.cpu_percent) / self.cpu_percent
    }

    /// Whether units rest at all (below 100%): at 100% no clock is read for the cycle.
    fn holds_a_duty_cycle(&self) -> bool {
        self.cpu_percent < 100
    }

    fn rest(&self, ran: Duration) {
        if self.holds_a_duty_cycle() {
            std::thread::sleep(self.duty_cycle_rest(ran));
            LAST_REST.set(Some(Instant::now()));
        }
    }

    /// Called on the unit's thread before it runs.
    pub fn unit_starting(&self) {
        if self.holds_a_duty_cycle() {
            LAST_REST.set(Some(Instant::now()));
        }
    }

    /// Called on the unit's thread after it ran: rests for the running time since the last
    /// checkpoint.
    pub fn unit_finished(&self) {
        if let Some(last) = LAST_REST.take() {
            self.rest(last.elapsed());
        }
    }
}

impl RunGate for VolunteerGate {
    fn checkpoint(&self, ran: Duration) {
        self.rest(ran);
        let mut reasons = self.reasons.lock().expect("pause reasons lock");
        while !reasons.is_empty() {
            reasons = self.resumed.wait(reasons).expect("pause reasons lock");
        }
        drop(reasons);
        if self.holds_a_duty_cycle() {
            LAST_REST.set(Some(Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_checkpoint_blocks_while_paused_and_continues_on_resume() {
        let gate = Arc::new(VolunteerGate::new(100));
        assert!(gate.set(PauseReason::ByUser, true));
        assert!(gate.set(PauseReason::OnBattery, true));
        // Timed from before the thread exists: the thread may start late, the pauses below
        // hold it for 200 ms from here in any case.
        let started = Instant::now();
        let waiting = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.checkpoint(Duration::ZERO);
                started.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        gate.set(PauseReason::ByUser, false);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiting.is_finished(), "one reason still holds");
        gate.set(PauseReason::OnBattery, false);
        assert!(waiting.join().unwrap() >= Duration::from_millis(200));
        assert!(!gate.is_paused());
    }

    #[test]
    fn the_duty_cycle_rest_keeps_a_unit_at_its_share() {
        assert_eq!(
            VolunteerGate::new(25).duty_cycle_rest(Duration::from_millis(50)),
            Duration::from_millis(150)
        );
        assert_eq!(VolunteerGate::new(100).duty_cycle_rest(Duration::from_millis(50)), Duration::ZERO);
        assert_eq!(VolunteerGate::new(0).cpu_percent(), 1, "at least 1%");
    }
}

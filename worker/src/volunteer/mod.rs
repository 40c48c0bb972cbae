//! Volunteer controls: the worker uses only spare CPU and never gets in the owner's way.
//!
//! - Unit threads and compilation threads run at nice 19 and `SCHED_IDLE` (`priority.rs`):
//!   the owner's programs always win the CPU.
//! - A unit asks the gate before compiling its module (no compilation starts while paused)
//!   and offers the compilation's time to the duty cycle before it runs.
//! - `cpu_percent` holds each unit thread to a duty cycle; pauses suspend running units in
//!   place (they keep their lease) and stop new leases (`gate.rs`).
//! - A watcher thread re-evaluates the pause reasons every [`WATCH_INTERVAL`]: other
//!   programs' CPU share above `pause_when_busy_percent` for `busy_grace` (`busy.rs`), the
//!   schedule (`schedule.rs`), the battery (`battery.rs`); `wasmhive worker pause` adds its
//!   own reason.
//! - Running units together reserve at most `memory_bytes_max` of linear memory
//!   (`memory_budget.rs`).
//!
//! Invariants: a paused worker starts no unit and asks for no lease; a pause never changes
//! a unit's outcome (only when it runs); time paused does not count against the wall-clock
//! guard.

mod battery;
mod busy;
mod gate;
mod memory_budget;
pub mod priority;
mod recent_units;
mod schedule;

pub use battery::{POWER_SUPPLY_DIR, on_battery};
pub use busy::{BusyDetector, CpuCounters};
pub use gate::{PauseReason, VolunteerGate};
pub use memory_budget::{MemoryBudget, MemoryReservation};
pub use schedule::{LocalMoment, Schedule};

use recent_units::RecentUnits;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use wasmhive_protocol::api::{OwnerCredit, WorkerControlStatus};

/// How often the pause reasons are re-evaluated.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The volunteer's settings (flags and the config file fill them).
#[derive(Clone, Debug, PartialEq)]
pub struct VolunteerSettings {
    /// Share of each core a unit thread may use (1 to 100).
    pub cpu_percent: u32,
    /// Pause when other programs use more than this share of the machine (percent).
    pub pause_when_busy_percent: Option<u32>,
    /// How long the machine must be busy before pausing, and idle before resuming.
    pub busy_grace: Duration,
    /// When units may run (empty: always).
    pub schedule: Schedule,
    pub pause_on_battery: bool,
    /// Linear memory all running units may reserve together.
    pub memory_bytes_max: u64,
    /// Longest a unit may run here, whatever its lease says (the lease's wall time is
    /// clamped to it; running over is a host timeout, retried elsewhere).
    pub unit_time_max: Duration,
    /// Largest stdout a unit may produce here: a lease that allows more is handed back.
    pub unit_output_bytes_max: u64,
    /// Where power supplies are described (tests point it elsewhere).
    pub power_supply_dir: PathBuf,
}

/// The longest a unit runs on a volunteer's machine unless the volunteer says otherwise.
pub const UNIT_TIME_MAX_DEFAULT: Duration = Duration::from_secs(600);
/// The largest stdout a unit may produce on a volunteer's machine by default.
pub const UNIT_OUTPUT_BYTES_MAX_DEFAULT: u64 = 64 << 20;

impl Default for VolunteerSettings {
    fn default() -> VolunteerSettings {
        VolunteerSettings {
            cpu_percent: 100,
            pause_when_busy_percent: None,
            busy_grace: Duration::from_secs(10),
            schedule: Schedule::default(),
            pause_on_battery: true,
            memory_bytes_max: half_of_physical_memory(),
            unit_time_max: UNIT_TIME_MAX_DEFAULT,
            unit_output_bytes_max: UNIT_OUTPUT_BYTES_MAX_DEFAULT,
            power_supply_dir: PathBuf::from(POWER_SUPPLY_DIR),
        }
    }
}

/// Half the machine's RAM (`/proc/meminfo`), or 4 GiB where that cannot be read.
pub fn half_of_physical_memory() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    });
    total_kib.map_or(4 << 30, |kib| kib * 1024 / 2)
}

/// What the worker did, for `wasmhive worker status`.
#[derive(Default)]
struct WorkStats {
    units_done: u64,
    fuel_used: u64,
    /// Units finished in the last minute (for the rate).
    recent: RecentUnits,
    /// Credit as each owner last reported it, by owner address.
    credit: BTreeMap<String, (u64, u64)>,
    /// Owners whose last answer was `no_work`, with their reason.
    no_work: BTreeMap<String, String>,
}

pub struct VolunteerControls {
    pub settings: VolunteerSettings,
    pub gate: Arc<VolunteerGate>,
    pub memory: MemoryBudget,
    started: Instant,
    stats: Mutex<WorkStats>,
    /// Other programs' share of the machine at the last watch (0 to 1).
    others_share: Mutex<f64>,
}

impl VolunteerControls {
    /// Starts the watcher thread (it ends when the controls are dropped).
    pub fn start(settings: VolunteerSettings) -> Arc<VolunteerControls> {
        let controls = Arc::new(VolunteerControls {
            gate: Arc::new(VolunteerGate::new(settings.cpu_percent)),
            memory: MemoryBudget::new(settings.memory_bytes_max),
            settings,
            started: Instant::now(),
            stats: Mutex::new(WorkStats::default()),
            others_share: Mutex::new(0.0),
        });
        let weak = Arc::downgrade(&controls);
        std::thread::Builder::new()
            .name("wasmhive-volunteer".into())
            .spawn(move || watch(weak))
            .expect("spawning the volunteer watcher thread");
        controls
    }

    pub fn is_paused(&self) -> bool {
        self.gate.is_paused()
    }

    /// `wasmhive worker pause` / `resume`.
    pub fn set_paused_by_user(&self, paused: bool) {
        if self.gate.set(PauseReason::ByUser, paused) {
            tracing::info!(paused, "paused or resumed by the user");
        }
    }

    pub fn unit_finished(&self, fuel_used: Option<u64>) {
        let mut stats = self.stats.lock().expect("work stats lock");
        stats.units_done += 1;
        stats.fuel_used += fuel_used.unwrap_or(0);
        stats.recent.record(self.started.elapsed().as_secs());
    }

    /// `owner_id` (proven by the session's handshake) has no work, for `reason` (the
    /// owner's words: printable characters only, at most 200).
    pub fn owner_has_no_work(&self, owner_id: &str, reason: Option<String>) {
        let reason = reason
            .map_or_else(|| "no reason given".into(), |reason| wasmhive_protocol::printable(&reason, 200));
        self.stats.lock().expect("work stats lock").no_work.insert(owner_id.to_string(), reason);
    }

    pub fn owner_has_work(&self, owner_id: &str) {
        self.stats.lock().expect("work stats lock").no_work.remove(owner_id);
    }

    /// What `owner_id` (proven by the session's handshake) says it credited us.
    pub fn owner_reported_credit(&self, owner_id: &str, replicas: u64, amount: u64) {
        self.stats.lock().expect("work stats lock").credit.insert(owner_id.to_string(), (replicas, amount));
    }

    pub fn status(
        &self,
        peer_id: String,
        cpus: usize,
        running_units: usize,
        owners: usize,
    ) -> WorkerControlStatus {
        let stats = self.stats.lock().expect("work stats lock");
        let last_minute = stats.recent.last_minute(self.started.elapsed().as_secs());
        let minutes = self.started.elapsed().as_secs_f64().clamp(1.0, 60.0) / 60.0;
        WorkerControlStatus {
            peer_id,
            uptime_s: self.started.elapsed().as_secs(),
            cpus: cpus as u32,
            cpu_percent: self.settings.cpu_percent,
            running_units: running_units as u32,
            units_done: stats.units_done,
            units_per_minute: last_minute as f64 / minutes,
            fuel_used: stats.fuel_used,
            paused: self.gate.is_paused(),
            pause_reasons: self.gate.reasons().iter().map(ToString::to_string).collect(),
            others_cpu_percent: *self.others_share.lock().expect("others share lock") * 100.0,
            pause_when_busy_percent: self.settings.pause_when_busy_percent,
            schedule: self.settings.schedule.to_string(),
            memory_reserved_bytes: self.memory.reserved(),
            memory_bytes_max: self.memory.bytes_max(),
            why_no_work: why_no_work(&self.gate.reasons(), owners, running_units, &stats.no_work),
            credit: stats
                .credit
                .iter()
                .map(|(owner, (replicas, credit))| OwnerCredit {
                    owner: owner.clone(),
                    replicas: *replicas,
                    credit: *credit,
                })
                .collect(),
        }
    }
}

/// Why this worker runs nothing, or `None` while it runs units.
fn why_no_work(
    pauses: &[PauseReason],
    owners: usize,
    running_units: usize,
    no_work: &BTreeMap<String, String>,
) -> Option<String> {
    if !pauses.is_empty() {
        let reasons: Vec<String> = pauses.iter().map(ToString::to_string).collect();
        return Some(format!("paused: {}", reasons.join("; ")));
    }
    if running_units > 0 {
        return None;
    }
    if owners == 0 {
        return Some(
            "no owner to work for: no peer has announced pending work (or the owner is unreachable)".into(),
        );
    }
    if no_work.is_empty() {
        return None;
    }
    let answers: Vec<String> = no_work.iter().map(|(owner, reason)| format!("{owner}: {reason}")).collect();
    Some(format!("owners have no work for it: {}", answers.join("; ")))
}

/// Re-evaluates the pause reasons until the controls are dropped.
fn watch(controls: Weak<VolunteerControls>) {
    let mut detector = None;
    let mut previous = CpuCounters::read();
    loop {
        let Some(controls) = controls.upgrade() else { return };
        let settings = &controls.settings;
        let counters = CpuCounters::read();
        if let (Some(now), Some(before)) = (counters, previous) {
            let share = now.others_share_since(&before);
            *controls.others_share.lock().expect("others share lock") = share;
            if let Some(threshold) = settings.pause_when_busy_percent {
                let detector =
                    detector.get_or_insert_with(|| BusyDetector::new(threshold, settings.busy_grace));
                let busy = detector.observe(share, Instant::now());
                log_change(controls.gate.set(PauseReason::MachineBusy, busy), "machine busy", busy);
            }
        }
        previous = counters;
        let outside = !settings.schedule.allows(LocalMoment::now());
        log_change(controls.gate.set(PauseReason::OutsideSchedule, outside), "outside the schedule", outside);
        let battery = settings.pause_on_battery && on_battery(&settings.power_supply_dir);
        log_change(controls.gate.set(PauseReason::OnBattery, battery), "on battery", battery);
        drop(controls);
        std::thread::sleep(WATCH_INTERVAL);
    }
}

fn log_change(changed: bool, reason: &str, holds: bool) {
    if changed {
        if holds {
            tracing::info!(reason, "pausing: units are suspended and no new leases are taken");
        } else {
            tracing::info!(reason, "no longer a reason to pause");
        }
    }
}

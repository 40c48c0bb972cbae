//! The owner's side of arbitration (`core/arbitration.rs`): it runs a disputed unit itself,
//! lets the core judge, stores the bans, and takes back what the banned helped accept.
//!
//! Runs on a blocking thread, one arbitration at a time, woken when the core has disputes
//! waiting, and rests three times as long as each run took: disputes (which strangers can
//! cause, one banned identity each) get at most a quarter of one of the owner's cores. Lock order: the core, then the
//! store (held together only while units are taken back, so no unit is decided between the
//! store forgetting it and the core reopening it).

use super::job_runtime::JobRuntime;
use super::state::Coordinator;
use wasmhive_protocol::{Hash, Status};
use wasmhive_sandbox::ModuleBytes;

/// Rest after an arbitration, as a multiple of its run: a quarter of a core at most.
const ARBITRATION_REST_FACTOR: u32 = 3;

impl Coordinator {
    /// Settles every dispute the core has waiting; returns when none is left.
    pub fn run_arbitrations(&self) {
        loop {
            let waiting = self.core.lock().expect("core lock").take_arbitrations();
            if waiting.is_empty() {
                self.wake_waiting_workers(usize::MAX); // units may have been reopened
                return;
            }
            for arbitration in waiting {
                let started = std::time::Instant::now();
                self.arbitrate(&arbitration);
                self.core.lock().expect("core lock").arbitration_ended(&arbitration);
                // Its job may have decided its last unit while the dispute was open.
                self.finish_completed_jobs(std::iter::once(&*arbitration.job_id));
                std::thread::sleep(started.elapsed() * ARBITRATION_REST_FACTOR);
            }
        }
    }

    fn arbitrate(&self, arbitration: &crate::core::Arbitration) {
        let Some(job) = self.job(&arbitration.job_id) else { return };
        // A job without NaN canonicalisation runs every replica on the owner's engine class
        // (`job_policy`), so the owner's own run is as good a judge there as anywhere.
        let (status, digest) = self.owner_answer(&job, arbitration.unit_index);
        let deciders = self
            .store
            .lock()
            .expect("store lock")
            .replica_workers(&arbitration.job_id, arbitration.unit_index, &arbitration.accepted_digest)
            .unwrap_or_else(|error| {
                tracing::error!(%error, "cannot read who decided a disputed unit; only the decoy's replicas are judged");
                Vec::new()
            });
        let mut core = self.core.lock().expect("core lock");
        let verdict = core.settle_arbitration(arbitration, &status, digest, &deciders);
        if let Some(reason) = &verdict.no_verdict {
            tracing::warn!(job = %arbitration.job_id, unit = arbitration.unit_index, %reason, "dispute left unsettled");
            return;
        }
        if verdict.accepted_was_wrong {
            let unit_index = arbitration.unit_index;
            let taken_back = self.store.lock().expect("store lock").take_back_unit(
                &arbitration.job_id,
                unit_index,
                &arbitration.accepted_digest,
            );
            match taken_back {
                Ok(Some(unit)) => {
                    core.reopen_units(&arbitration.job_id, vec![unit]);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(%error, unit = unit_index, "a unit proven wrong could not be taken back")
                }
            }
        }
        for banned in &verdict.banned {
            let reputation = banned.reputation.in_clock(self.started_unix_ms, true);
            let taken_back =
                self.store.lock().expect("store lock").take_back_accepted_by(&banned.worker_id, &reputation);
            match taken_back {
                Ok(units) => {
                    let reopened: u64 =
                        units.into_iter().map(|(job_id, units)| core.reopen_units(&job_id, units)).sum();
                    tracing::warn!(worker = %banned.worker_id, reopened, "banned: the owner's own run proved its result wrong; the units it helped accept run again");
                }
                Err(error) => {
                    tracing::error!(worker = %banned.worker_id, %error, "banned, but its accepted units could not be taken back");
                }
            }
        }
    }

    /// The owner's own run of a unit: its status and outcome digest (the class digest under
    /// a validator, as the unit's replicas were counted). A run that could not happen is a
    /// host failure, which settles nothing.
    fn owner_answer(&self, job: &JobRuntime, unit_index: u64) -> (Status, Hash) {
        let unit_files = job
            .unit_input(&self.store.lock().expect("store lock"), &self.blobs, unit_index)
            .and_then(|(_, input)| Ok((input, job.shared_files(&self.blobs)?)));
        let (input, shared) = match unit_files {
            Ok(files) => files,
            Err(error) => {
                tracing::error!(%error, "cannot read a disputed unit's input");
                return (Status::HostTimeout, Hash::of(b""));
            }
        };
        let module = ModuleBytes::new(job.module.to_vec());
        let name = (job.stored.task_name.as_str(), job.stored.args.as_slice(), unit_index);
        match self.owner_sandbox.run(&job.context(), &module, name, (input, &shared)) {
            Ok(outcome) if outcome.status.is_success() && job.validator.is_some() => {
                let class = self.class_digest(job, unit_index, outcome.digest, &outcome.stdout);
                (outcome.status, class)
            }
            Ok(outcome) => (outcome.status, outcome.digest),
            Err(error) => {
                tracing::warn!(%error, "the owner could not run a disputed unit");
                (Status::HostTimeout, Hash::of(b""))
            }
        }
    }
}

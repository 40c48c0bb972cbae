//! Handing out leases and taking them back: which units a worker gets, who gets a unit's
//! next replica (a random draw, not the next to ask), known-answer probes, and leases
//! that are returned, expire or lose their worker.

use super::connected_workers::ConnectedWorkers;
use super::job::WaitingScan;
use super::recent_workers::RecentWorkers;
use super::unit::Asker;

/// How a lease ended without an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LeaseEnding {
    /// Handed back, or its worker left: no credit, no penalty.
    Returned,
    /// Its job was cancelled or removed.
    Cancelled,
    /// Its deadline passed at this time: the allowance of its worker and network halves.
    Expired(u64),
}
use super::{Core, LeaseGrant, LeaseId, Network, OpenLease, PROBE_PER_MILLE, ReputationBook, is_trusted};

/// Candidates a draw looks at before it lets the asking worker take the replica.
const DRAW_TRIES: usize = 16;

/// Draws the worker for a unit's next replica: uniformly among the recent workers that may
/// take it (not on a network that ran or runs it, not quarantined), with the owner's
/// secret stream, so no worker chooses which replicas it gets.
pub(super) struct ReplicaDraw<'a> {
    pub(super) recent: &'a RecentWorkers,
    pub(super) reputations: &'a ReputationBook,
    pub(super) random: &'a mut fastrand::Rng,
    pub(super) connected: &'a ConnectedWorkers,
}

impl ReplicaDraw<'_> {
    /// True with probability `per_mille`/1000, from the owner's secret stream.
    pub(super) fn chance_per_mille(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && self.random.u32(0..1000) < per_mille
    }

    /// A worker `can_take` allows, drawn at random (a few tries; `None`: none found).
    pub(super) fn eligible_worker(
        &mut self,
        now_ms: u64,
        can_take: impl Fn(&super::WorkerId, &Network, &str) -> bool,
    ) -> Option<super::WorkerId> {
        for _ in 0..DRAW_TRIES {
            let candidate = self.recent.draw(self.random)?;
            let engine = self.connected.engine_of(&candidate.worker_id);
            if can_take(&candidate.worker_id, &candidate.network, engine)
                && !self.reputations.is_quarantined(&candidate.worker_id, now_ms)
            {
                return Some(candidate.worker_id.clone());
            }
        }
        None
    }
}

impl Core {
    /// Hands `worker_id` up to `slots` leases, spread over jobs round-robin, in random
    /// order; none while the worker is quarantined. A unit's second and later replicas go
    /// only to the worker drawn for them (see [`ReplicaDraw`]). A worker with too short a
    /// record for a job's `known_answer_probes` gets one known-answer unit (one at a time),
    /// and every worker now and then ([`PROBE_PER_MILLE`]).
    pub fn request_work(
        &mut self,
        worker_id: &str,
        network: &Network,
        slots: u32,
        now_ms: u64,
    ) -> Vec<LeaseGrant> {
        let mut grants = Vec::new();
        if self.reputations.is_quarantined(worker_id, now_ms) || slots == 0 {
            return grants;
        }
        let worker = self.recent_workers.asked(worker_id, network, now_ms);
        let cores = self.connected.cores_of(worker_id);
        let slots = slots.min(self.allowances.room(worker_id, network, cores, now_ms));
        if slots == 0 {
            return grants;
        }
        grants.extend(self.known_answer_probe(&worker, network, now_ms));
        let engine = self.connected.engine_class_of(worker_id);
        let trusted = is_trusted(self.reputations.get(worker_id).as_ref());
        let job_ids = self.jobs_in_round_robin_order();
        let mut exhausted = vec![false; job_ids.len()];
        let mut scans = vec![WaitingScan::default(); job_ids.len()];
        while grants.len() < slots as usize && exhausted.iter().any(|done| !done) {
            for (position, job_id) in job_ids.iter().enumerate() {
                if grants.len() >= slots as usize || exhausted[position] {
                    continue;
                }
                let job = self.jobs.get_mut(job_id).expect("job ids come from the map");
                let mut draw = ReplicaDraw {
                    recent: &self.recent_workers,
                    reputations: &self.reputations,
                    random: &mut self.random,
                    connected: &self.connected,
                };
                let asker = Asker { worker_id: &worker, network, engine: &engine };
                match job.take_unit_for(&asker, now_ms, &mut scans[position], &mut draw) {
                    Some(unit_index) => {
                        let lease_id = self.next_lease_id;
                        self.next_lease_id += 1;
                        let deadline_ms = now_ms.saturating_add(job.policy.lease_ms);
                        job.lease_opened(unit_index, &asker, lease_id, trusted, now_ms);
                        let lease = OpenLease {
                            job_id: job_id.clone(),
                            unit_index,
                            worker_id: worker.clone(),
                            network: network.clone(),
                            deadline_ms,
                            known_answer: None,
                        };
                        self.leases.insert(lease_id, lease);
                        grants.push(LeaseGrant { lease_id, job_id: job_id.clone(), unit_index, deadline_ms });
                    }
                    None => exhausted[position] = true,
                }
            }
        }
        if let Some(last) = grants.last() {
            self.job_cursor = Some(last.job_id.clone());
        }
        self.allowances.leases_opened(worker_id, network, grants.len() as u32, now_ms);
        self.random.shuffle(&mut grants);
        grants
    }

    /// A known-answer lease, unless the worker holds one: for a worker with fewer judged
    /// results than some job's `known_answer_probes`, and for any worker of a job that uses
    /// known answers once in [`PROBE_PER_MILLE`] requests (so trust, once earned, is still
    /// tested).
    fn known_answer_probe(
        &mut self,
        worker_id: &super::WorkerId,
        network: &Network,
        now_ms: u64,
    ) -> Option<LeaseGrant> {
        if self.probe_holders.contains(worker_id) {
            return None;
        }
        let judged =
            self.reputations.get(worker_id).map_or(0, |reputation| reputation.valid + reputation.invalid);
        let now_and_then = self.random.u32(0..1000) < PROBE_PER_MILLE;
        let (job_id, job) = self.jobs.iter().find(|(_, job)| {
            let probes = u64::from(job.policy.known_answer_probes);
            probes > 0 && (judged < probes || now_and_then) && job.known_answer_for(network).is_some()
        })?;
        let known = job.known_answer_for(network).expect("found above");
        let lease_id = self.next_lease_id;
        self.next_lease_id += 1;
        let deadline_ms = now_ms.saturating_add(job.policy.lease_ms);
        let grant =
            LeaseGrant { lease_id, job_id: job_id.clone(), unit_index: known.unit_index, deadline_ms };
        let lease = OpenLease {
            job_id: job_id.clone(),
            unit_index: known.unit_index,
            worker_id: worker_id.clone(),
            network: network.clone(),
            deadline_ms,
            known_answer: Some(known.digest),
        };
        self.leases.insert(lease_id, lease);
        self.probe_holders.insert(worker_id.clone());
        Some(grant)
    }

    /// A worker gives leases back unrun; their units go back to the queue.
    pub fn return_leases(&mut self, worker_id: &str, lease_ids: &[LeaseId]) {
        for lease_id in lease_ids {
            if self.leases.get(lease_id).is_some_and(|lease| *lease.worker_id == *worker_id) {
                self.close_lease(*lease_id, LeaseEnding::Returned);
            }
        }
    }

    /// A worker went away: its open leases go back to the queue at once.
    pub fn worker_disconnected(&mut self, worker_id: &str) -> usize {
        let lease_ids: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, lease)| *lease.worker_id == *worker_id)
            .map(|(lease_id, _)| *lease_id)
            .collect();
        for lease_id in &lease_ids {
            self.close_lease(*lease_id, LeaseEnding::Returned);
        }
        self.recent_workers.forget(worker_id);
        self.connected.forget(worker_id);
        lease_ids.len()
    }

    /// Leases past their deadline go back to the queue; returns them.
    pub fn expire_leases(&mut self, now_ms: u64) -> Vec<LeaseId> {
        let expired: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, lease)| lease.deadline_ms <= now_ms)
            .map(|(lease_id, _)| *lease_id)
            .collect();
        for lease_id in &expired {
            self.close_lease(*lease_id, LeaseEnding::Expired(now_ms));
        }
        self.recent_workers.forget_idle(now_ms);
        self.allowances.forget_idle(now_ms);
        let recent = &self.recent_workers;
        for job in self.jobs.values_mut() {
            job.forget_reservations(|worker_id| recent.contains(worker_id));
        }
        expired
    }

    pub(super) fn close_lease(&mut self, lease_id: LeaseId, ending: LeaseEnding) {
        let Some(lease) = self.leases.remove(&lease_id) else { return };
        match ending {
            LeaseEnding::Expired(now_ms) => {
                self.allowances.lease_expired(&lease.worker_id, &lease.network, now_ms)
            }
            LeaseEnding::Returned | LeaseEnding::Cancelled => {
                self.allowances.lease_closed(&lease.worker_id, &lease.network)
            }
        }
        if lease.known_answer.is_some() {
            self.probe_holders.remove(&lease.worker_id);
            return;
        }
        if let Some(job) = self.jobs.get_mut(&lease.job_id) {
            job.lease_closed_without_outcome(lease.unit_index, lease_id);
        }
    }

    fn jobs_in_round_robin_order(&self) -> Vec<super::JobId> {
        let mut ids: Vec<super::JobId> = self.jobs.keys().cloned().collect();
        if let Some(cursor) = &self.job_cursor
            && let Some(position) = ids.iter().position(|id| id == cursor)
        {
            ids.rotate_left(position + 1);
        }
        ids
    }
}

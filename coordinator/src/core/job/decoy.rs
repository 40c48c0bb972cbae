//! Decoys: a unit the job already decided, sent out again as if it were new and replicated
//! like any other unit, whose every replica is judged at once against the known answer.
//!
//! Known-answer probes are leased alone, so an attacker that lies only when it holds every
//! replica of a unit (careful colluders, a Sybil group) answers them honestly and is never
//! caught by them. A decoy looks like a fresh unit: its replicas are drawn the same way, so
//! colluders who find they hold all of them lie, and are caught together.
//!
//! A replica that agrees with the known answer is judged valid at once. One that does not
//! proves nothing yet: the known answer was itself decided by a quorum, which colluders can
//! win, so a strike here would let their accepted lies punish honest workers. A decoy with
//! any disagreement therefore ends in an arbitration (`arbitration.rs`): the owner runs the
//! unit itself, and whoever its answer proves wrong, the decoy's replicas or the unit's
//! deciders, is banned.
//!
//! Invariants: a decoy decides nothing (no result, no count, no credit); it goes to no
//! network that decided it; it ends when its quorum of replicas has reported; a known
//! answer a decoy disagreed with is never sent out again (one dispute per doubt).

use super::super::unit::ActiveUnit;
use super::{CoreJob, Dispute, ReplicaRecord};
use crate::core::Network;
use crate::core::deciding_sets::{AUDITS_FREE, DECIDED_UNITS_PER_AUDIT};

/// Audits a job keeps queued (older ones are not dropped: new ones are not queued).
const AUDITS_WAITING_MAX: usize = 256;
use wasmhive_protocol::Hash;

impl CoreJob {
    /// Activates a decoy for a worker on `network`: a known answer no replica from that
    /// network decided, not active now. `None` when there is none.
    pub(super) fn start_decoy(&mut self, network: &Network) -> Option<u64> {
        let (unit_index, digest) = self
            .known_answers
            .iter()
            .rev()
            .filter(|known| !known.networks.contains(network))
            .map(|known| (known.unit_index, known.digest))
            .find(|(unit_index, _)| !self.active.contains_key(unit_index))?;
        Some(self.activate_decoy(unit_index, digest))
    }

    fn activate_decoy(&mut self, unit_index: u64, digest: Hash) -> u64 {
        let decoy = ActiveUnit { known_digest: Some(digest), ..ActiveUnit::new(self.policy.quorum) };
        self.active.insert(unit_index, decoy);
        unit_index
    }

    /// Queues an audit of the unit accepted last (see `deciding_sets.rs`), within the
    /// job's audit budget; false when it did not.
    pub(in crate::core) fn queue_audit(&mut self, unit_index: u64) -> bool {
        let budget = AUDITS_FREE + self.succeeded / DECIDED_UNITS_PER_AUDIT;
        let Some(known) = self.known_answers.back().filter(|known| known.unit_index == unit_index) else {
            return false;
        };
        let queued = self.audits_started + (self.audits.len() as u64) < budget
            && self.audits.len() < AUDITS_WAITING_MAX;
        if queued {
            self.audits.push_back(known.clone());
        }
        queued
    }

    /// Activates the oldest queued audit a worker on `network` may run (no replica from
    /// its network decided the unit), as a decoy.
    pub(super) fn start_audit(&mut self, network: &Network) -> Option<u64> {
        let position = self.audits.iter().position(|audit| {
            !audit.networks.contains(network) && !self.active.contains_key(&audit.unit_index)
        })?;
        let audit = self.audits.remove(position).expect("position found above");
        self.audits_started += 1;
        Some(self.activate_decoy(audit.unit_index, audit.digest))
    }

    /// Judges one replica of a decoy (its lease already closed); the decoy ends at its
    /// quorum of judged replicas. A host timeout judges nobody.
    pub(super) fn record_decoy_replica(&mut self, unit_index: u64, replica: ReplicaRecord, known: Hash) {
        let Some(unit) = self.active.get_mut(&unit_index) else { return };
        if !replica.status.is_deterministic() {
            self.refresh_needs(unit_index);
            return;
        }
        let agreed = replica.status.is_success() && replica.digest == known;
        if agreed {
            self.judged_by_known_answer.push((replica.worker_id.clone(), true));
        }
        unit.replicas.push(replica);
        if unit.replicas.len() as u32 >= self.policy.quorum {
            let replicas = self.end_decoy(unit_index);
            if replicas.iter().any(|replica| !(replica.status.is_success() && replica.digest == known)) {
                // Its known answer is in doubt until the owner's run: no more decoys of it.
                self.known_answers.retain(|answer| answer.unit_index != unit_index);
                let answers = replicas.into_iter().map(Into::into).collect();
                let strike_if_unsettled = false;
                self.disputes.push(Dispute {
                    unit_index,
                    accepted_digest: known,
                    answers,
                    strike_if_unsettled,
                });
            }
        } else {
            self.refresh_needs(unit_index);
        }
    }

    /// The replicas of decoys that agreed with the known answer since the core last asked.
    pub(in crate::core) fn take_judged_by_known_answer(&mut self) -> Vec<(crate::core::WorkerId, bool)> {
        std::mem::take(&mut self.judged_by_known_answer)
    }

    /// Ends a decoy; returns its replicas.
    pub(super) fn end_decoy(&mut self, unit_index: u64) -> Vec<ReplicaRecord> {
        self.needs_replica.remove(&unit_index);
        let Some(unit) = self.active.remove(&unit_index) else { return Vec::new() };
        self.open_leases -= unit.leases.len() as u64;
        unit.replicas
    }
}

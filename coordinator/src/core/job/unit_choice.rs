//! Which unit a worker that asks gets next: one whose next replica is reserved for it,
//! one waiting for another replica that the draw gives it, a reopened unit, an audit, a
//! decoy, else a fresh unit.

use super::super::unit::{ActiveUnit, Asker, Drawn};
use super::super::{ACTIVE_UNITS_MAX, ReplicaDraw};
use super::{CoreJob, WAITING_UNITS_SCANNED_MAX};

/// Where one request's scans of a job's units waiting for a replica are. A request passes
/// over at most [`WAITING_UNITS_SCANNED_MAX`] of them in all, each at most once (it took
/// that many per lease, going round: a worker holding the first replicas of the waiting
/// units looked at 64 of them per fresh lease it got).
#[derive(Clone, Copy, Debug, Default)]
pub(in crate::core) struct WaitingScan {
    /// The last unit looked at.
    last: Option<u64>,
    /// Units looked at and passed over (they still wait for a replica).
    pub(in crate::core) passed_over: usize,
}

impl CoreJob {
    /// A unit this worker may run next: one waiting for another replica (going on from where
    /// the previous call of the same request stopped, `scan`), else a fresh one.
    pub(in crate::core) fn take_unit_for(
        &mut self,
        asker: &Asker<'_>,
        now_ms: u64,
        scan: &mut WaitingScan,
        draw: &mut ReplicaDraw<'_>,
    ) -> Option<u64> {
        let network = asker.network;
        if self.policy.engine.as_ref().is_some_and(|class| **class != *asker.engine) {
            return None; // a worker of another engine class runs none of this job's replicas
        }
        if let Some(reserved) = self.take_reserved_unit(asker, now_ms) {
            return Some(reserved);
        }
        if let Some(waiting) = self.scan_waiting_units(asker, now_ms, scan, draw) {
            return Some(waiting);
        }
        if self.active.len() >= ACTIVE_UNITS_MAX {
            return None;
        }
        if let Some((unit_index, earlier)) = self.reopened.pop_first() {
            // A reopened unit trusts no single replica: it needs the full quorum.
            let unit = ActiveUnit { earlier: Some(earlier), ..ActiveUnit::new(self.policy.quorum) };
            self.active.insert(unit_index, unit);
            return Some(unit_index);
        }
        if let Some(audit) = self.start_audit(network) {
            return Some(audit);
        }
        if self.next_fresh_unit >= self.unit_count {
            return None;
        }
        if draw.chance_per_mille(self.policy.decoy_per_mille)
            && let Some(decoy) = self.start_decoy(network)
        {
            return Some(decoy);
        }
        let unit_index = self.next_fresh_unit;
        self.next_fresh_unit += 1;
        let quorum = if self.policy.adaptive.is_some() { 1 } else { self.policy.quorum };
        self.active.insert(unit_index, ActiveUnit::new(quorum));
        Some(unit_index)
    }

    /// Forgets the reservations of workers `keep` says no longer ask for work.
    pub(in crate::core) fn forget_reservations(&mut self, keep: impl Fn(&str) -> bool) {
        self.reserved.retain(|worker_id, _| keep(worker_id));
    }

    /// A unit whose next replica is reserved for this worker (stale entries are dropped).
    fn take_reserved_unit(&mut self, asker: &Asker<'_>, now_ms: u64) -> Option<u64> {
        let worker_id = asker.worker_id;
        let reserved = self.reserved.get_mut(worker_id)?;
        let mut found = None;
        while let Some(unit_index) = reserved.pop_first() {
            let unit = self.active.get(&unit_index).filter(|_| self.needs_replica.contains(&unit_index));
            if unit.is_some_and(|unit| {
                unit.is_reserved_for(worker_id, now_ms) && unit.worker_can_take(asker, now_ms)
            }) {
                found = Some(unit_index);
                break;
            }
        }
        if reserved.is_empty() {
            self.reserved.remove(worker_id);
        }
        found
    }

    /// Looks at units waiting for a replica, from where the last scan of this job stopped
    /// (within one request, where its previous call stopped), going round: the first one
    /// whose replica is drawn for this worker. Units drawn for others are reserved for
    /// them. A request passes over at most [`WAITING_UNITS_SCANNED_MAX`] in all.
    fn scan_waiting_units(
        &mut self,
        asker: &Asker<'_>,
        now_ms: u64,
        scan: &mut WaitingScan,
        draw: &mut ReplicaDraw<'_>,
    ) -> Option<u64> {
        // The drawn worker has a quarter of the lease time to ask, at most DRAWN_WORKER_WAIT_MS.
        let wait_ms = (self.policy.lease_ms / 4).clamp(1, super::super::DRAWN_WORKER_WAIT_MS);
        // A request passes over at most WAITING_UNITS_SCANNED_MAX units (and never one twice:
        // its clock stands still, so a second round would find nothing the first did not).
        let unseen = self.needs_replica.len().min(WAITING_UNITS_SCANNED_MAX).saturating_sub(scan.passed_over);
        if unseen == 0 {
            return None;
        }
        let start = scan.last.map_or(self.scan_cursor, |unit_index| unit_index + 1);
        // Field by field (no copy of the candidates): the scan reads `needs_replica` while
        // it changes `active`, `reserved` and the cursor.
        let candidates =
            self.needs_replica.range(start..).chain(self.needs_replica.range(..start)).take(unseen);
        for &unit_index in candidates {
            scan.last = Some(unit_index);
            self.scan_cursor = unit_index + 1;
            if let Some(unit) = self.active.get_mut(&unit_index)
                && unit.worker_can_take(asker, now_ms)
            {
                match unit.drawn_worker_for(
                    asker.worker_id,
                    now_ms,
                    wait_ms,
                    self.policy.engine.as_ref(),
                    draw,
                ) {
                    Drawn::Asker => return Some(unit_index),
                    Drawn::NewlyOther(drawn) => {
                        self.reserved.entry(drawn).or_default().insert(unit_index);
                    }
                    Drawn::AlreadyOther => {}
                }
            }
            scan.passed_over += 1;
        }
        None
    }
}

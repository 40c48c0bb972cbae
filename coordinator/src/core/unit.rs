//! One active unit in the core: its replicas, open leases, who may take its next replica,
//! its host timeouts, and the quorum decision.

use super::job::{JobPolicy, ReplicaRecord};
use super::{EngineClass, LeaseId, Network, ReplicaDraw, UnitDecision};
use std::collections::BTreeSet;
use wasmhive_protocol::Hash;

#[derive(Default)]
pub(super) struct ActiveUnit {
    pub(super) replicas: Vec<ReplicaRecord>,
    pub(super) leases: Vec<OpenReplica>,
    /// The worker whose host timed out on this unit last, and until when (Unix ms) it is
    /// kept out: the next replica goes elsewhere if another worker can take it in that time.
    pub(super) timed_out_worker: Option<(super::WorkerId, u64)>,
    /// The worker drawn for the next replica, and until when (Unix ms) it is reserved for it.
    pub(super) drawn_worker: Option<(super::WorkerId, u64)>,
    pub(super) host_timeouts: u32,
    /// Identities whose hosts timed out on this unit (each once), their networks, and
    /// whether their timeouts count towards failing it.
    pub(super) timed_out: Vec<(super::WorkerId, Network, bool)>,
    /// Matching replicas this unit needs: `policy.quorum`, or 1 while an adaptive unit's
    /// only replica belongs to a trusted worker.
    pub(super) quorum: u32,
    /// `Some` for a decoy: the unit was decided with this digest (see `decoy.rs`).
    pub(super) known_digest: Option<Hash>,
    /// `Some` for a reopened unit: its earlier acceptance (see `arbitration.rs`).
    pub(super) earlier: Option<super::ReopenedUnit>,
}

/// The worker asking for work: its proven identity, its network and its engine class.
pub(super) struct Asker<'a> {
    pub(super) worker_id: &'a super::WorkerId,
    pub(super) network: &'a Network,
    pub(super) engine: &'a str,
}

/// A replica being run: its lease, and the worker and network running it.
pub(super) struct OpenReplica {
    pub(super) lease_id: LeaseId,
    pub(super) worker_id: super::WorkerId,
    pub(super) network: Network,
}

impl ActiveUnit {
    /// Two replicas of a unit never come from one identity or from one network.
    pub(super) fn worker_can_take(&self, asker: &Asker<'_>, now_ms: u64) -> bool {
        let (worker_id, network) = (asker.worker_id, asker.network);
        !self.replicas.iter().any(|replica| replica.worker_id == *worker_id || replica.network == *network)
            && !self.leases.iter().any(|open| open.worker_id == *worker_id || open.network == *network)
            && !self
                .timed_out_worker
                .as_ref()
                .is_some_and(|(timed_out, until_ms)| *timed_out == *worker_id && now_ms < *until_ms)
    }

    /// Whether this replica is reserved for `worker_id` now.
    pub(super) fn is_reserved_for(&self, worker_id: &str, now_ms: u64) -> bool {
        self.drawn_worker
            .as_ref()
            .is_some_and(|(drawn, until_ms)| **drawn == *worker_id && *until_ms > now_ms)
    }

    /// Who gets this replica, asked by `worker_id` (which can take the unit): the worker it
    /// is reserved for, else one drawn at random among the eligible recent workers and
    /// reserved for it for `wait_ms`; when the draw finds nobody else, the asker. In a job
    /// pinned to an engine class (`job_engine`), only workers of that class are eligible.
    pub(super) fn drawn_worker_for(
        &mut self,
        worker_id: &str,
        now_ms: u64,
        wait_ms: u64,
        job_engine: Option<&EngineClass>,
        draw: &mut ReplicaDraw<'_>,
    ) -> Drawn {
        if let Some((drawn, until_ms)) = &self.drawn_worker
            && *until_ms > now_ms
        {
            return if **drawn == *worker_id { Drawn::Asker } else { Drawn::AlreadyOther };
        }
        let drawn = draw.eligible_worker(now_ms, |worker_id, network, engine| {
            job_engine.is_none_or(|class| **class == *engine)
                && self.worker_can_take(&Asker { worker_id, network, engine }, now_ms)
        });
        match drawn {
            Some(drawn) if *drawn != *worker_id => {
                self.drawn_worker = Some((drawn.clone(), now_ms.saturating_add(wait_ms)));
                Drawn::NewlyOther(drawn)
            }
            _ => Drawn::Asker,
        }
    }

    pub(super) fn new(quorum: u32) -> ActiveUnit {
        ActiveUnit { quorum, ..ActiveUnit::default() }
    }

    pub(super) fn largest_agreement(&self) -> (u32, Option<&ReplicaRecord>) {
        let mut best: (u32, Option<&ReplicaRecord>) = (0, None);
        for replica in &self.replicas {
            let agreeing = self.replicas.iter().filter(|other| other.digest == replica.digest).count() as u32;
            if agreeing > best.0 {
                best = (agreeing, Some(replica));
            }
        }
        best
    }

    pub(super) fn replicas_needed(&self, policy: &JobPolicy) -> u32 {
        let missing = self.quorum.saturating_sub(self.largest_agreement().0);
        let in_flight = self.leases.len() as u32;
        let room = policy.max_replicas.saturating_sub(self.replicas.len() as u32 + in_flight);
        missing.saturating_sub(in_flight).min(room)
    }
}

/// Who a replica went to in a draw.
pub(super) enum Drawn {
    Asker,
    AlreadyOther,
    NewlyOther(super::WorkerId),
}

/// What the core knows of the worker reporting an outcome, for the unit's decision.
#[derive(Clone, Copy, Debug)]
pub(super) struct ReporterStanding {
    /// The core's draw for adaptive replication: this result may stand alone.
    pub(super) accept_alone: bool,
    /// A host timeout from this worker counts towards failing the unit (its record shows
    /// work done, and not many more timeouts than valid results).
    pub(super) timeout_counts: bool,
}

/// Timed-out identities a unit remembers (each may time out on it again; it counts once).
pub(super) const TIMED_OUT_KEPT: usize = 16;

/// Distinct networks whose hosts timed out on a unit before it fails for it (fewer when
/// `max_replicas` is smaller): one or two griefing networks cannot fail a unit.
const TIMED_OUT_NETWORKS_TO_FAIL: u32 = 3;

pub(super) fn timed_out_networks(unit: &ActiveUnit) -> u32 {
    let mut networks: Vec<&Network> =
        unit.timed_out.iter().filter(|(_, _, counts)| *counts).map(|(_, network, _)| network).collect();
    networks.sort();
    networks.dedup();
    networks.len() as u32
}

/// A unit fails for host timeouts when they came from several distinct networks, or (a
/// grid too small to tell a griefer from a unit too long for everyone) after four times
/// `max_replicas` timeouts in all.
pub(super) fn timeouts_fail(unit: &ActiveUnit, policy: &JobPolicy) -> bool {
    timed_out_networks(unit) >= TIMED_OUT_NETWORKS_TO_FAIL.min(policy.max_replicas)
        || unit.host_timeouts >= policy.max_replicas.saturating_mul(4)
}

pub(super) fn decide(unit: &ActiveUnit, policy: &JobPolicy) -> Option<UnitDecision> {
    let replicas = unit.replicas.len() as u32;
    let (agreeing, canonical) = unit.largest_agreement();
    if agreeing >= unit.quorum {
        let canonical = canonical.expect("an agreement has a replica");
        return Some(UnitDecision::Accepted {
            digest: canonical.digest,
            status: canonical.status.clone(),
            replicas,
        });
    }
    if replicas >= policy.max_replicas && unit.leases.is_empty() {
        let distinct: BTreeSet<Hash> = unit.replicas.iter().map(|replica| replica.digest).collect();
        return Some(UnitDecision::Failed {
            reason: format!(
                "no quorum of {} after {replicas} replicas ({} different outputs)",
                policy.quorum,
                distinct.len()
            ),
            replicas,
        });
    }
    None
}

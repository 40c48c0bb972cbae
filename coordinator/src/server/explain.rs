//! Why a job makes no progress, or why a worker gets no lease: plain sentences for
//! `wasmhive status`, the dashboard and `no_work` answers. Pure functions over facts.

/// What the owner knows about one running job and its workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFacts {
    pub quorum: u32,
    pub units_left: u64,
    /// Units never started yet.
    pub fresh_units_left: u64,
    pub leased: u64,
    /// Started units waiting for a replica that no open lease covers.
    pub waiting_for_replica: u64,
    pub workers_connected: u64,
    /// Distinct networks those workers connect from.
    pub networks_connected: u64,
    pub workers_quarantined: u64,
    /// Cores of connected, unquarantined workers not holding a lease.
    pub spare_slots: u64,
    /// Disputes about the job's units waiting for, or in, the owner's own run.
    pub disputed: u64,
}

/// Why the job is not moving, or `None` when it is (or is done).
pub fn why_job_waits(facts: &JobFacts) -> Option<String> {
    if facts.units_left == 0 && facts.disputed > 0 {
        return Some(format!(
            "every unit is decided; the job completes once the owner has run {} disputed unit(s) itself (a replica disagreed with an accepted result)",
            facts.disputed
        ));
    }
    if facts.units_left == 0 {
        return None;
    }
    if facts.workers_connected == 0 {
        return Some(
            "no workers or peers are connected to this owner; start `wasmhive worker --join ADDR` or a peer"
                .into(),
        );
    }
    if facts.workers_quarantined >= facts.workers_connected {
        return Some(format!(
            "every connected worker ({}) is quarantined after invalid results; wait or add workers",
            facts.workers_connected
        ));
    }
    let eligible = facts.workers_connected - facts.workers_quarantined;
    let stalled_on_replicas =
        facts.waiting_for_replica > 0 && facts.leased == 0 && facts.fresh_units_left == 0;
    if stalled_on_replicas && facts.networks_connected < u64::from(facts.quorum) {
        return Some(format!(
            "waiting for a replica from another network: {} units need one, and the {} connected workers are on {} network(s) (quorum {} needs replicas from {} distinct networks); add a worker on another network",
            facts.waiting_for_replica,
            facts.workers_connected,
            facts.networks_connected,
            facts.quorum,
            facts.quorum
        ));
    }
    if stalled_on_replicas {
        return Some(format!(
            "waiting for quorum: {} units need a replica from a worker on a network that has not run them, and the {eligible} connected workers all are (quorum {})",
            facts.waiting_for_replica, facts.quorum
        ));
    }
    if facts.spare_slots == 0 && facts.leased == 0 {
        return Some("no spare slots: the connected workers are busy with other work or paused".into());
    }
    if facts.fresh_units_left == 0 && facts.waiting_for_replica == 0 && facts.leased > 0 {
        return Some(format!("all remaining units are leased; waiting for {} outcomes", facts.leased));
    }
    None
}

/// Whether a worker may have leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerStanding {
    Good,
    /// Seconds left.
    Quarantined(u64),
    Banned,
}

/// Why an owner answered a worker's request with no lease. `engine_needed`: the engine
/// class every running job is pinned to, when the worker's is another.
pub fn why_no_work(standing: WorkerStanding, running_jobs: usize, engine_needed: Option<&str>) -> String {
    if let (WorkerStanding::Good, Some(class)) = (standing, engine_needed) {
        return format!(
            "every running job turns NaN canonicalisation off and runs only on the owner's engine class \
             {class}, which this worker's wasmhive release and CPU are not; run the owner's release on its \
             CPU architecture, or ask the owner for jobs with nan_canonicalization = true"
        );
    }
    match (standing, running_jobs) {
        (WorkerStanding::Banned, _) => {
            "banned: the owner ran a unit itself and it proved a result of this identity wrong".into()
        }
        (WorkerStanding::Quarantined(seconds), _) => {
            format!("quarantined for {seconds} s more after invalid results")
        }
        (WorkerStanding::Good, 0) => "this owner has no running job".into(),
        (WorkerStanding::Good, _) => {
            "every pending unit is leased or already has a replica from this worker or its network".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> JobFacts {
        JobFacts {
            quorum: 2,
            units_left: 10,
            fresh_units_left: 5,
            leased: 0,
            waiting_for_replica: 0,
            workers_connected: 2,
            networks_connected: 2,
            workers_quarantined: 0,
            spare_slots: 4,
            disputed: 0,
        }
    }

    #[test]
    fn each_reason_is_named() {
        assert_eq!(why_job_waits(&facts()), None, "work is available: not waiting");
        assert!(why_job_waits(&JobFacts { workers_connected: 0, ..facts() }).unwrap().contains("no workers"));
        assert!(
            why_job_waits(&JobFacts { workers_quarantined: 2, ..facts() }).unwrap().contains("quarantined")
        );
        let quorum =
            JobFacts { fresh_units_left: 0, waiting_for_replica: 3, workers_connected: 1, ..facts() };
        assert!(why_job_waits(&quorum).unwrap().contains("waiting for quorum"));
        let one_network =
            JobFacts { fresh_units_left: 0, waiting_for_replica: 3, networks_connected: 1, ..facts() };
        assert!(why_job_waits(&one_network).unwrap().contains("waiting for a replica from another network"));
        assert!(why_job_waits(&JobFacts { spare_slots: 0, ..facts() }).unwrap().contains("no spare slots"));
        let leased = JobFacts { fresh_units_left: 0, leased: 4, ..facts() };
        assert!(why_job_waits(&leased).unwrap().contains("all remaining units are leased"));
        assert_eq!(why_job_waits(&JobFacts { units_left: 0, workers_connected: 0, ..facts() }), None);
        let disputed = JobFacts { units_left: 0, disputed: 2, ..facts() };
        assert!(why_job_waits(&disputed).unwrap().contains("owner has run 2 disputed unit(s)"));
        assert!(why_no_work(WorkerStanding::Quarantined(30), 1, None).contains("quarantined for 30 s"));
        assert!(why_no_work(WorkerStanding::Banned, 1, None).contains("banned"));
        assert!(why_no_work(WorkerStanding::Good, 0, None).contains("no running job"));
        let other_class = why_no_work(WorkerStanding::Good, 2, Some("wasmtime-48.0.8-x86_64"));
        assert!(
            other_class.contains("wasmtime-48.0.8-x86_64")
                && other_class.contains("nan_canonicalization = true")
        );
    }
}

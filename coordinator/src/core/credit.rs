//! Credit: what each replica of an accepted unit earns, decided here, in the core; the
//! store only adds up the grants an outcome's effect carries.
//!
//! Rules (BOINC's credit, on validated work only, never on a worker's claim):
//! - replicas that agree with the canonical result of a unit accepted by two or more
//!   replicas earn the *canonical fuel* when the job meters fuel (the least fuel any
//!   agreeing replica reported: honest metering is deterministic, so honest twins report
//!   the same and one replica cannot raise it alone), else one unit each;
//! - a unit accepted from a single replica (adaptive replication, or quorum 1) earns the
//!   job's mean validated credit per replica so far, never the fuel its worker claims (0
//!   while no unit of the job was replicated);
//! - a fuel claim counts at most the job's fuel budget, and every sum saturates;
//! - decoys, known-answer probes and losing replicas earn nothing.

use super::job::ReplicaRecord;
use wasmhive_protocol::Hash;

/// Credit granted to one worker for one replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditGrant {
    pub worker_id: super::WorkerId,
    pub amount: u64,
    /// Confirmed by another replica (counts towards the job's mean).
    pub validated: bool,
}

/// A job's validated credit so far: what a unit accepted alone earns is its mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValidatedCredit {
    pub replicas: u64,
    pub amount: u64,
}

impl ValidatedCredit {
    fn mean(&self) -> u64 {
        self.amount.checked_div(self.replicas).unwrap_or(0)
    }
}

/// The fuel a worker's claim counts for: at most the job's budget, and at most what the
/// store's signed integers hold (`None` when the job does not meter fuel, or the worker
/// claimed none).
pub fn credible_fuel(claimed: Option<u64>, fuel_budget: Option<u64>) -> Option<u64> {
    Some(claimed?.min(fuel_budget?).min(i64::MAX as u64))
}

/// The grants for a unit accepted with `canonical` from `replicas` (every completed
/// replica of it), updating the job's validated credit.
pub(super) fn grants_for_accepted_unit(
    replicas: &[ReplicaRecord],
    canonical: &Hash,
    metered: bool,
    validated: &mut ValidatedCredit,
) -> Vec<CreditGrant> {
    let agreeing: Vec<&ReplicaRecord> =
        replicas.iter().filter(|replica| replica.digest == *canonical).collect();
    if replicas.len() < 2 {
        let amount = if metered { validated.mean() } else { 1 };
        return agreeing
            .iter()
            .map(|replica| CreditGrant { worker_id: replica.worker_id.clone(), amount, validated: false })
            .collect();
    }
    let amount = if metered {
        agreeing.iter().map(|replica| replica.fuel_used.unwrap_or(0)).min().unwrap_or(0)
    } else {
        1
    };
    validated.replicas = validated.replicas.saturating_add(agreeing.len() as u64);
    validated.amount = validated.amount.saturating_add(amount.saturating_mul(agreeing.len() as u64));
    agreeing
        .iter()
        .map(|replica| CreditGrant { worker_id: replica.worker_id.clone(), amount, validated: true })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Network;
    use wasmhive_protocol::Status;

    fn replica(worker_id: &str, output: &[u8], fuel_used: Option<u64>) -> ReplicaRecord {
        ReplicaRecord {
            worker_id: worker_id.into(),
            network: Network::of_identity(worker_id),
            status: Status::Success,
            digest: Hash::of(output),
            fuel_used,
        }
    }

    #[test]
    fn agreeing_replicas_earn_the_least_fuel_any_of_them_reported_and_losers_nothing() {
        let mut validated = ValidatedCredit::default();
        let replicas =
            [replica("a", b"ok", Some(900)), replica("b", b"ok", Some(1_000)), replica("c", b"lie", Some(5))];
        let grants = grants_for_accepted_unit(&replicas, &Hash::of(b"ok"), true, &mut validated);
        let earned: Vec<(&str, u64, bool)> =
            grants.iter().map(|grant| (&*grant.worker_id, grant.amount, grant.validated)).collect();
        assert_eq!(earned, [("a", 900, true), ("b", 900, true)]);
        assert_eq!(validated, ValidatedCredit { replicas: 2, amount: 1_800 });
    }

    #[test]
    fn a_unit_accepted_alone_earns_the_jobs_mean_never_its_claim() {
        let mut validated = ValidatedCredit::default();
        let alone = [replica("a", b"ok", Some(u64::MAX))];
        let first = grants_for_accepted_unit(&alone, &Hash::of(b"ok"), true, &mut validated);
        assert_eq!(first[0].amount, 0, "nothing replicated yet: the mean is 0");
        let pair = [replica("b", b"x", Some(300)), replica("c", b"x", Some(300))];
        grants_for_accepted_unit(&pair, &Hash::of(b"x"), true, &mut validated);
        let later = grants_for_accepted_unit(&alone, &Hash::of(b"ok"), true, &mut validated);
        assert_eq!((later[0].amount, later[0].validated), (300, false));
        assert_eq!(validated.replicas, 2, "an unconfirmed result does not move the mean");
    }

    #[test]
    fn without_fuel_metering_every_replica_earns_one_unit() {
        let mut validated = ValidatedCredit::default();
        let pair = [replica("a", b"x", Some(7)), replica("b", b"x", None)];
        let grants = grants_for_accepted_unit(&pair, &Hash::of(b"x"), false, &mut validated);
        assert!(grants.iter().all(|grant| grant.amount == 1 && grant.validated));
        let alone = grants_for_accepted_unit(&pair[..1], &Hash::of(b"x"), false, &mut validated);
        assert_eq!(alone[0].amount, 1);
    }

    #[test]
    fn claims_count_at_most_the_budget_and_sums_saturate() {
        assert_eq!(credible_fuel(Some(u64::MAX), Some(1_000)), Some(1_000));
        assert_eq!(credible_fuel(Some(5), None), None, "a job without metering counts no fuel");
        let mut validated = ValidatedCredit { replicas: 1, amount: u64::MAX - 1 };
        let pair = [replica("a", b"x", Some(u64::MAX)), replica("b", b"x", Some(u64::MAX))];
        grants_for_accepted_unit(&pair, &Hash::of(b"x"), true, &mut validated);
        assert_eq!(validated.amount, u64::MAX);
    }
}

//! Reciprocity (BitTorrent's tit-for-tat, for compute): how a peer splits its prefetch
//! slots between the owners it can pull work from.
//!
//! An owner's *history* is the number of replicas it ran for this peer's own jobs that
//! were accepted (this peer's credit table). The split:
//! - [`OPTIMISTIC_SHARE`] of the slots goes, in equal parts, to owners with no history
//!   (newcomers, and free-riders that never gave work back): newcomers are always served;
//! - the rest goes to owners with history, in proportion to it; this peer's own jobs count
//!   as much as the best reciprocating owner;
//! - when one of the two groups is empty, the other gets everything.
//!
//! Invariants: shares are positive for every owner and sum to 1; an owner with no history
//! never gets more than `OPTIMISTIC_SHARE` split among its group while some owner has one;
//! more history never means a smaller share.

use std::collections::BTreeMap;

/// The part of the slots kept for owners this peer has no history with.
pub const OPTIMISTIC_SHARE: f64 = 0.2;

/// One owner this peer can pull from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRecord {
    pub owner_id: String,
    /// Accepted replicas this owner ran for this peer's jobs.
    pub replicas_done_for_us: u64,
    /// This peer's own coordinator.
    pub is_self: bool,
}

/// The share of prefetch slots per owner id.
pub fn slot_shares(owners: &[OwnerRecord]) -> BTreeMap<String, f64> {
    let best = owners.iter().map(|owner| owner.replicas_done_for_us).max().unwrap_or(0).max(1);
    let weight = |owner: &OwnerRecord| if owner.is_self { best } else { owner.replicas_done_for_us };
    let (reciprocating, strangers): (Vec<&OwnerRecord>, Vec<&OwnerRecord>) =
        owners.iter().partition(|owner| weight(owner) > 0);
    let optimistic = match (reciprocating.is_empty(), strangers.is_empty()) {
        (_, true) => 0.0,
        (true, false) => 1.0,
        (false, false) => OPTIMISTIC_SHARE,
    };
    let total_weight: u64 = reciprocating.iter().map(|owner| weight(owner)).sum();
    let mut shares = BTreeMap::new();
    for owner in &strangers {
        shares.insert(owner.owner_id.clone(), optimistic / strangers.len() as f64);
    }
    for owner in &reciprocating {
        let share = (1.0 - optimistic) * weight(owner) as f64 / total_weight as f64;
        shares.insert(owner.owner_id.clone(), share);
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(owner_id: &str, replicas_done_for_us: u64) -> OwnerRecord {
        OwnerRecord { owner_id: owner_id.into(), replicas_done_for_us, is_self: false }
    }

    fn sum(shares: &BTreeMap<String, f64>) -> f64 {
        shares.values().sum()
    }

    #[test]
    fn owners_that_gave_work_back_get_more_and_newcomers_keep_an_optimistic_share() {
        let shares = slot_shares(&[
            owner("generous", 300),
            owner("some", 100),
            owner("newcomer", 0),
            owner("free-rider", 0),
        ]);
        assert!((sum(&shares) - 1.0).abs() < 1e-9, "{shares:?}");
        assert!((shares["generous"] - 0.6).abs() < 1e-9, "{shares:?}");
        assert!((shares["some"] - 0.2).abs() < 1e-9, "{shares:?}");
        assert!((shares["newcomer"] - 0.1).abs() < 1e-9, "{shares:?}");
        assert_eq!(shares["newcomer"], shares["free-rider"], "no history is no history");
        assert!(shares["free-rider"] < shares["some"]);
    }

    #[test]
    fn own_jobs_count_as_much_as_the_best_partner_and_nobody_is_left_at_zero() {
        let shares = slot_shares(&[
            OwnerRecord { owner_id: "me".into(), replicas_done_for_us: 0, is_self: true },
            owner("partner", 40),
            owner("stranger", 0),
        ]);
        assert!((shares["me"] - 0.4).abs() < 1e-9, "{shares:?}");
        assert!((shares["partner"] - 0.4).abs() < 1e-9, "{shares:?}");
        assert!((shares["stranger"] - 0.2).abs() < 1e-9, "{shares:?}");
        assert!(shares.values().all(|share| *share > 0.0));
    }

    #[test]
    fn with_no_history_at_all_every_owner_gets_an_equal_share() {
        let shares = slot_shares(&[owner("a", 0), owner("b", 0), owner("c", 0), owner("d", 0)]);
        assert!(shares.values().all(|share| (*share - 0.25).abs() < 1e-9), "{shares:?}");
        assert!(slot_shares(&[]).is_empty());
    }
}

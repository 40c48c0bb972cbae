//! Adaptive replication: how likely a worker's result is accepted without a replica.
//!
//! BOINC's adaptive replication, on our reputation: a worker is *trusted* once its
//! probation is over ([`PROBATION_VALID_RESULTS`] valid results in all: identities are
//! free, so each must first do that much work that others' replicas confirmed), it has
//! [`CONSECUTIVE_VALID_TRUSTED`] valid results in a row and an error-rate estimate below
//! [`ERROR_RATE_TRUSTED`]. A trusted worker's successful result is accepted alone with
//! probability `(1 − error_rate / ERROR_RATE_TRUSTED) · (1 − spot_check)`: it grows with the
//! record (about 0.6 after 30 clean results, 0.9 after 60, from a stranger's 0.1 error
//! rate) and never exceeds `1 − spot_check`, so a set fraction of trusted results is still
//! compared with a replica. The draw happens when the outcome arrives, from the owner's
//! secret random stream, so a worker cannot know whether its result will be checked.
//!
//! Invariants:
//! - a worker that is not trusted never has a result accepted alone;
//! - one invalid result makes a worker untrusted at once (its error rate jumps at least
//!   halfway to 1, see `reputation.rs`), and a result accepted alone never improves a
//!   reputation: only comparisons with other replicas do;
//! - only successful outcomes are accepted alone (a failure status always needs a quorum).

use super::Reputation;

pub const CONSECUTIVE_VALID_TRUSTED: u64 = 10;
/// Valid results (each confirmed by another replica) before any result of an identity
/// may stand alone. With 5% spot checks a trusted liar expects about 0.8/0.2 = 4 lies
/// accepted before one is checked and its trust ends; probation makes each such identity
/// cost 50 units of honest work first (and 45 more after each lie is caught).
pub const PROBATION_VALID_RESULTS: u64 = 50;
pub const ERROR_RATE_TRUSTED: f64 = 0.05;

/// Whether a worker may hold an adaptive unit's only lease.
pub fn is_trusted(reputation: Option<&Reputation>) -> bool {
    reputation.is_some_and(|reputation| {
        reputation.valid >= PROBATION_VALID_RESULTS
            && reputation.consecutive_valid >= CONSECUTIVE_VALID_TRUSTED
            && reputation.error_rate < ERROR_RATE_TRUSTED
    })
}

/// The probability that this worker's successful result is accepted without a replica.
pub fn chance_alone(reputation: Option<&Reputation>, spot_check_per_mille: u32) -> f64 {
    let Some(reputation) = reputation.filter(|reputation| is_trusted(Some(reputation))) else {
        return 0.0;
    };
    let record = 1.0 - reputation.error_rate / ERROR_RATE_TRUSTED;
    let unchecked = 1.0 - f64::from(spot_check_per_mille.min(1000)) / 1000.0;
    (record * unchecked).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ReputationBook;

    fn after_valid_results(count: u64) -> Reputation {
        let mut book = ReputationBook::default();
        let mut reputation = Reputation::default();
        for _ in 0..count {
            reputation = book.record("w", true, 0);
        }
        reputation
    }

    #[test]
    fn strangers_and_short_records_are_never_accepted_alone() {
        assert_eq!(chance_alone(None, 50), 0.0);
        assert_eq!(chance_alone(Some(&after_valid_results(9)), 50), 0.0);
        assert_eq!(chance_alone(Some(&after_valid_results(13)), 50), 0.0, "error rate still above 0.05");
        assert_eq!(chance_alone(Some(&after_valid_results(49)), 50), 0.0, "still on probation");
        assert!(chance_alone(Some(&after_valid_results(50)), 50) > 0.5, "probation over");
    }

    #[test]
    fn the_chance_grows_with_the_record_and_stays_under_the_spot_check() {
        let chances: Vec<f64> = [50, 60, 100, 200]
            .iter()
            .map(|count| chance_alone(Some(&after_valid_results(*count)), 50))
            .collect();
        assert!(chances.windows(2).all(|pair| pair[0] < pair[1]), "{chances:?}");
        assert!(chances.iter().all(|chance| *chance <= 0.95), "{chances:?}");
        assert!(chances[3] > 0.94, "{chances:?}");
    }

    #[test]
    fn one_invalid_result_ends_trust() {
        let mut book = ReputationBook::default();
        for _ in 0..200 {
            book.record("w", true, 0);
        }
        let reputation = book.record("w", false, 0);
        assert!(!is_trusted(Some(&reputation)));
        assert_eq!(chance_alone(Some(&reputation), 0), 0.0);
    }
}

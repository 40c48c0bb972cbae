//! Audits of the first units each set of identities decides together.
//!
//! A group that lies only when it holds every replica of a unit (careful colluders, a
//! Sybil group on several networks) answers probes and honest company truthfully; its lies
//! are exactly the units it decided alone, and a group that lies like that lies on every
//! unit it decides alone. Decoys drawn uniformly from a job's decided units catch such a
//! group only by a race it wins in short jobs (20% careful colluders kept up to 0.35% of a
//! 2,000-unit job's results under `adaptive`, 2% under `quorum`, over 20 simulated seeds).
//! So the first [`AUDITED_UNITS_PER_SET`] units each set of identities decides together
//! are audited: sent out again as decoys (`job/decoy.rs`) to workers of other networks,
//! before fresh units. A group's first joint lie is then checked by a replica that is
//! honest with the probability that a drawn worker is honest, and a disagreement goes to
//! the owner's own run, which bans the group and reopens what it decided.
//!
//! Limits: what a set decided is remembered per owner in two generations of at most
//! [`SETS_PER_GENERATION`] entries each (a hash of the sorted identities, 12 bytes an
//! entry); a set forgotten is audited again. A job audits at most [`AUDITS_FREE`] units plus
//! one per [`DECIDED_UNITS_PER_AUDIT`] decided (on a grid of many identities most sets are
//! new, and the audits would otherwise double the work). A group patient enough to answer
//! truthfully on its first joint units is then limited by decoys alone (README, Trust).

use std::collections::HashMap;
use std::hash::BuildHasher;

/// Joint units of one set of identities audited.
pub const AUDITED_UNITS_PER_SET: u32 = 2;

/// Audits a job may start beyond one per [`DECIDED_UNITS_PER_AUDIT`] decided units.
pub const AUDITS_FREE: u64 = 16;

/// A job's audits grow by one per this many decided units.
pub const DECIDED_UNITS_PER_AUDIT: u64 = 8;

/// Sets remembered per generation (two generations: the older is dropped when the newer fills).
pub const SETS_PER_GENERATION: usize = 65_536;

/// How many units each set of identities decided together (bounded, see the module).
pub(super) struct DecidingSets {
    hasher: std::collections::hash_map::RandomState,
    newer: HashMap<u64, u32>,
    older: HashMap<u64, u32>,
}

impl Default for DecidingSets {
    fn default() -> DecidingSets {
        DecidingSets {
            hasher: std::collections::hash_map::RandomState::new(),
            newer: HashMap::new(),
            older: HashMap::new(),
        }
    }
}

impl DecidingSets {
    /// Whether a unit these identities decided together should be audited: fewer than
    /// [`AUDITED_UNITS_PER_SET`] of their joint units were. `Some(set)` to pass to
    /// [`DecidingSets::audited`] once the audit is queued (a job over its audit budget
    /// queues none, and the set stays unaudited for a later unit).
    pub(super) fn needs_audit(&mut self, deciders: &[&str]) -> Option<DecidingSet> {
        let mut sorted = deciders.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let set = DecidingSet(self.hasher.hash_one(&sorted));
        let audited = self.newer.get(&set.0).or_else(|| self.older.get(&set.0)).copied().unwrap_or(0);
        (audited < AUDITED_UNITS_PER_SET).then_some(set)
    }

    /// Counts one queued audit of a set's joint units.
    pub(super) fn audited(&mut self, set: DecidingSet) {
        let earlier = self.older.remove(&set.0).unwrap_or(0);
        if self.newer.len() >= SETS_PER_GENERATION && !self.newer.contains_key(&set.0) {
            self.older = std::mem::take(&mut self.newer);
        }
        let count = self.newer.entry(set.0).or_insert(earlier);
        *count = count.saturating_add(1);
    }
}

/// A set of identities (a keyed hash of their sorted ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct DecidingSet(u64);

#[cfg(test)]
mod tests {
    use super::*;

    fn audit_if_needed(sets: &mut DecidingSets, deciders: &[&str]) -> bool {
        let set = sets.needs_audit(deciders);
        set.inspect(|set| sets.audited(*set)).is_some()
    }

    #[test]
    fn a_set_is_audited_on_its_first_joint_units_in_any_order_of_its_members() {
        let mut sets = DecidingSets::default();
        assert!(audit_if_needed(&mut sets, &["a", "b"]));
        assert!(audit_if_needed(&mut sets, &["b", "a"]));
        assert!(!audit_if_needed(&mut sets, &["a", "b"]), "third joint unit");
        assert!(audit_if_needed(&mut sets, &["a", "c"]), "another set");
    }

    #[test]
    fn a_set_whose_audit_was_not_queued_is_still_audited_later() {
        let mut sets = DecidingSets::default();
        assert!(sets.needs_audit(&["a", "b"]).is_some());
        assert!(sets.needs_audit(&["a", "b"]).is_some(), "nothing was queued: still unaudited");
    }

    #[test]
    fn memory_stays_within_two_generations_and_recent_sets_are_remembered() {
        let mut sets = DecidingSets::default();
        audit_if_needed(&mut sets, &["a", "b"]);
        audit_if_needed(&mut sets, &["a", "b"]);
        for index in 0..SETS_PER_GENERATION * 3 {
            audit_if_needed(&mut sets, &[&index.to_string(), "x"]);
            if index == SETS_PER_GENERATION {
                assert!(sets.needs_audit(&["a", "b"]).is_none(), "forgotten after one generation");
            }
        }
        assert!(sets.newer.len() <= SETS_PER_GENERATION && sets.older.len() <= SETS_PER_GENERATION);
        assert!(sets.needs_audit(&["a", "b"]).is_some(), "a set unseen for two generations is new");
    }
}

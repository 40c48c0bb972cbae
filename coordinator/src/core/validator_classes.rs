//! Validator classes: for a job with a validator (a module that says whether two outputs
//! agree), a successful replica counts under the digest of its *class*: the first class of
//! its unit (in the order replicas arrived) whose output the validator says it agrees
//! with, else a class of its own. Quorum is then reached by equal class digests, as for
//! any job.
//!
//! The core keeps each active unit's classes (its successful replicas' digests); the shell
//! runs the validator, off the core's lock, against each class's stored output, one batch
//! at a time per owner (so a replica is compared with every class stored before it).
//! Invariants: a replica whose own digest is a class joins it without running the
//! validator; a validator that never agrees only makes a unit need more replicas.

use super::Core;
use wasmhive_protocol::Hash;

/// The class a successful replica with `digest` counts under, given its unit's `classes`
/// so far (first arrived first) and whether the validator says it agrees with a class.
pub fn class_of(digest: Hash, classes: &[Hash], mut agrees_with: impl FnMut(&Hash) -> bool) -> Hash {
    if classes.contains(&digest) {
        return digest;
    }
    classes.iter().copied().find(|class| agrees_with(class)).unwrap_or(digest)
}

impl Core {
    /// The classes of a unit's successful replicas so far, first arrived first (none when
    /// the unit is not active).
    pub fn replica_classes(&self, job_id: &str, unit_index: u64) -> Vec<Hash> {
        let Some(replicas) = self.jobs.get(job_id).and_then(|job| job.active_replicas(unit_index)) else {
            return Vec::new();
        };
        let mut classes: Vec<Hash> = Vec::new();
        for replica in replicas.iter().filter(|replica| replica.status.is_success()) {
            if !classes.contains(&replica.digest) {
                classes.push(replica.digest);
            }
        }
        classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{JobPolicy, Network, ResumeState};
    use wasmhive_protocol::Status;

    #[test]
    fn a_replica_joins_the_first_class_it_agrees_with_else_its_own() {
        let (first, second, mine) = (Hash::of(b"1.0"), Hash::of(b"1.00"), Hash::of(b"1.000"));
        let mut asked = Vec::new();
        let class = class_of(mine, &[first, second], |class| {
            asked.push(*class);
            true
        });
        assert_eq!((class, asked), (first, vec![first]), "the first class that agrees");
        assert_eq!(class_of(mine, &[first, second], |class| *class == second), second);
        assert_eq!(class_of(mine, &[first], |_| false), mine, "no agreement: a class of its own");
        let never_asked = class_of(first, &[second, first], |_| panic!("the validator ran"));
        assert_eq!(never_asked, first, "an equal digest joins its class without the validator");
    }

    #[test]
    fn a_units_classes_are_its_successful_replicas_digests_first_arrived_first() {
        let mut core = Core::new();
        core.add_job("job", 1, JobPolicy::fixed(3, 6, 60_000), ResumeState::default());
        let outputs: [(&str, Status, &[u8]); 4] = [
            ("a", Status::Success, b"x"),
            ("b", Status::ExitCode { code: 2 }, b""),
            ("c", Status::Success, b"y"),
            ("d", Status::Success, b"x"),
        ];
        for (turn, (worker, status, output)) in outputs.into_iter().enumerate() {
            // Each asks after the last one's draw has lapsed, so the unit's next replica is its.
            let now_ms = turn as u64 * (crate::core::DRAWN_WORKER_WAIT_MS + 1_000);
            let grant = core.request_work(worker, &Network::of_identity(worker), 1, now_ms).remove(0);
            core.report_outcome(worker, grant.lease_id, &status, Hash::of(output), now_ms).unwrap();
        }
        assert_eq!(core.replica_classes("job", 0), [Hash::of(b"x"), Hash::of(b"y")]);
        assert!(core.replica_classes("job", 7).is_empty() && core.replica_classes("other", 0).is_empty());
    }
}

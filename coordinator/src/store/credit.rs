//! Credit: what each worker's accepted replicas earned, per job, as the core granted it
//! (`core/credit.rs` decides; this adds up and reads).

use super::{Store, StoreResult};
use crate::core::{CreditGrant, JobId, ValidatedCredit, WorkerId};
use rusqlite::params;
use std::collections::HashMap;

/// Credit granted while a transaction commits, summed per (job, worker) and written once
/// per pair ([`CreditGrants::write`]): a batch of tiny units used to cost one upsert per
/// accepted replica.
#[derive(Default)]
pub(super) struct CreditGrants {
    /// (job, worker) → (replicas, amount, validated replicas, their amount). The ids are
    /// the core's shared ones: adding a grant copies no text.
    sums: HashMap<(JobId, WorkerId), [i64; 4]>,
}

impl CreditGrants {
    /// Adds what the core granted (`core/credit.rs`).
    pub(super) fn add(&mut self, job_id: &JobId, grant: &CreditGrant) {
        let (worker_id, validated) = (&grant.worker_id, grant.validated);
        let amount = i64::try_from(grant.amount).unwrap_or(i64::MAX);
        let sums = self.sums.entry((job_id.clone(), worker_id.clone())).or_default();
        let validated = i64::from(validated);
        for (sum, added) in sums.iter_mut().zip([1, amount, validated, validated * amount]) {
            *sum = sum.saturating_add(added);
        }
    }

    /// Writes and forgets the sums.
    pub(super) fn write(&mut self, transaction: &rusqlite::Transaction<'_>) -> StoreResult<()> {
        // Sums saturate at i64::MAX: SQLite would turn an overflowing sum into a REAL, which
        // every later read of the row refuses.
        let mut add = transaction.prepare_cached(
            "INSERT INTO credit (job_id, worker_id, replicas, amount, validated, validated_amount)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (job_id, worker_id) DO UPDATE SET replicas = replicas + ?3,
             amount = CASE WHEN amount > 9223372036854775807 - ?4 THEN 9223372036854775807 ELSE amount + ?4 END,
             validated = validated + ?5,
             validated_amount = CASE WHEN validated_amount > 9223372036854775807 - ?6
                 THEN 9223372036854775807 ELSE validated_amount + ?6 END",
        )?;
        for ((job_id, worker_id), [replicas, amount, validated, validated_amount]) in self.sums.drain() {
            add.execute(params![&*job_id, &*worker_id, replicas, amount, validated, validated_amount])?;
        }
        Ok(())
    }
}

/// Credit a worker earned on one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCredit {
    pub job_id: String,
    pub worker_id: String,
    pub replicas: u64,
    pub amount: u64,
}

impl Store {
    /// A job's validated credit so far (for the core after a restart).
    pub fn validated_credit(&self, job_id: &str) -> StoreResult<ValidatedCredit> {
        let mut select = self.connection.prepare_cached(
            "SELECT TOTAL(validated), TOTAL(validated_amount) FROM credit WHERE job_id = ?1",
        )?;
        // TOTAL is a float sum: it cannot overflow; the conversion saturates.
        Ok(select.query_row(params![job_id], |row| {
            Ok(ValidatedCredit {
                replicas: row.get::<_, f64>(0)? as u64,
                amount: row.get::<_, f64>(1)? as u64,
            })
        })?)
    }

    /// (replicas, amount) credited to one worker over all jobs.
    pub fn credit_of_worker(&self, worker_id: &str) -> StoreResult<(u64, u64)> {
        let mut select = self
            .connection
            .prepare_cached("SELECT TOTAL(replicas), TOTAL(amount) FROM credit WHERE worker_id = ?1")?;
        // TOTAL is a float sum: it cannot overflow; the conversion saturates.
        Ok(select.query_row(params![worker_id], |row| {
            Ok((row.get::<_, f64>(0)? as u64, row.get::<_, f64>(1)? as u64))
        })?)
    }

    /// Accepted replicas per worker over all jobs (the work each did for this owner).
    pub fn replicas_per_worker(&self) -> StoreResult<HashMap<String, u64>> {
        let mut select = self
            .connection
            .prepare_cached("SELECT worker_id, SUM(replicas) FROM credit GROUP BY worker_id")?;
        let rows =
            select.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Credit per (job, worker), optionally for one job.
    pub fn credits(&self, job_id: Option<&str>) -> StoreResult<Vec<StoredCredit>> {
        let mut select = self.connection.prepare(
            "SELECT job_id, worker_id, replicas, amount FROM credit WHERE ?1 IS NULL OR job_id = ?1 ORDER BY job_id, amount DESC",
        )?;
        let rows = select.query_map(params![job_id], |row| {
            Ok(StoredCredit {
                job_id: row.get(0)?,
                worker_id: row.get(1)?,
                replicas: row.get::<_, i64>(2)? as u64,
                amount: row.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{OutcomeEffect, UnitDecision};
    use crate::store::{OutcomeBatch, OutcomeToCommit};
    use wasmhive_protocol::{Hash, Status};

    fn grant(worker_id: &str, amount: u64, validated: bool) -> CreditGrant {
        CreditGrant { worker_id: worker_id.into(), amount, validated }
    }

    #[test]
    fn a_jobs_validated_credit_is_read_back_for_the_core_after_a_restart() {
        let store = crate::store::TemporaryStore::new("credit-test");
        let path = &store.path;
        let effect = OutcomeEffect {
            job_id: "job".into(),
            unit_index: 0,
            replica: None,
            decision: Some(UnitDecision::Accepted {
                digest: Hash::of(b"x"),
                status: Status::Success,
                replicas: 2,
            }),
            judgements: Vec::new(),
            unfinished: Vec::new(),
            credit: vec![grant("a", 300, true), grant("b", 300, true), grant("c", u64::MAX, false)],
        };
        let outcome = OutcomeToCommit {
            position: 0,
            effect,
            lease_id: 1,
            output: Vec::new(),
            output_blob: None,
            engine_class: "".into(),
            keep_output: false,
        };
        let batch = OutcomeBatch { outcomes: vec![outcome], ..OutcomeBatch::default() };
        Store::open(path).unwrap().commit_outcome_batches(&[&batch]).unwrap();
        let reopened = Store::open(path).unwrap();
        assert_eq!(reopened.validated_credit("job").unwrap(), ValidatedCredit { replicas: 2, amount: 600 });
        let credit_of_c =
            reopened.credits(Some("job")).unwrap().into_iter().find(|credit| credit.worker_id == "c");
        assert_eq!(credit_of_c.unwrap().amount, i64::MAX as u64, "an amount beyond i64 saturates");
    }
}

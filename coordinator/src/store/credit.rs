//! Credit: what each worker's accepted replicas earned, per job (see `grant_credit`).

use super::{Store, StoreResult};
use crate::core::OutcomeEffect;
use rusqlite::params;
use std::collections::HashMap;
use wasmhive_protocol::Hash;

/// Credit granted while a transaction commits, summed per (job, worker) and written once
/// per pair ([`CreditGrants::write`]): a batch of tiny units used to cost one upsert per
/// accepted replica.
#[derive(Default)]
pub(super) struct CreditGrants {
    /// (job, worker) → (replicas, amount, validated replicas, their amount).
    sums: HashMap<(String, String), [i64; 4]>,
}

impl CreditGrants {
    fn add(&mut self, job_id: &str, worker_id: &str, amount: i64, validated: bool) {
        let sums = self.sums.entry((job_id.to_string(), worker_id.to_string())).or_default();
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
            add.execute(params![job_id, worker_id, replicas, amount, validated, validated_amount])?;
        }
        Ok(())
    }
}

/// Credits the replicas of an accepted unit, once each. Replicas that agreed with the
/// canonical result of a replicated unit earn the canonical fuel (the least fuel any
/// agreeing replica reported: honest metering is deterministic, so agreeing honest replicas
/// report the same, and one replica cannot raise it alone) when the job meters fuel, else
/// one unit. A unit accepted from a single replica (adaptive replication, or quorum 1)
/// earns the job's mean credit per validated replica so far, never the fuel its one
/// worker claims: 0 while no unit of the job has been replicated.
pub(super) fn grant_credit(
    transaction: &rusqlite::Transaction<'_>,
    grants: &mut CreditGrants,
    effect: &OutcomeEffect,
    canonical: &Hash,
    metered: bool,
) -> StoreResult<()> {
    if effect.judgements.is_empty() {
        let Some(replica) = &effect.replica else { return Ok(()) };
        let amount: i64 = if metered {
            grants.write(transaction)?; // the mean counts every grant before this one
            transaction.query_row(
                "SELECT CAST(COALESCE(TOTAL(validated_amount) / NULLIF(TOTAL(validated), 0), 0) AS INTEGER) FROM credit
                 WHERE job_id = ?1 AND validated > 0",
                params![effect.job_id],
                |row| row.get(0),
            )?
        } else {
            1
        };
        grants.add(&effect.job_id, &replica.worker_id, amount, false);
        return Ok(());
    }
    let amount = if metered {
        let fuel: Option<i64> = transaction.query_row(
            "SELECT MIN(fuel_used) FROM replicas WHERE job_id = ?1 AND unit_index = ?2 AND digest = ?3",
            params![effect.job_id, effect.unit_index as i64, canonical.to_hex()],
            |row| row.get(0),
        )?;
        fuel.unwrap_or(0).max(0)
    } else {
        1
    };
    for judgement in effect.judgements.iter().filter(|judgement| judgement.agreed) {
        grants.add(&effect.job_id, &judgement.worker_id, amount, true);
    }
    Ok(())
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

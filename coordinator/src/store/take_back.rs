//! Taking back what a banned identity helped accept (see `core/arbitration.rs`).

use super::{Store, StoreResult, save_reputation};
use crate::core::{ReopenedUnit, Reputation};
use rusqlite::params;
use std::collections::BTreeMap;
use wasmhive_protocol::Hash;

impl Store {
    /// In one transaction: stores the banned worker's reputation, drops its credit, and
    /// deletes the results (and every replica) of the units of running jobs it helped
    /// accept with a success, so they run again. Returns those units per job.
    pub fn take_back_accepted_by(
        &mut self,
        worker_id: &str,
        reputation: &Reputation,
    ) -> StoreResult<BTreeMap<String, Vec<ReopenedUnit>>> {
        let transaction = self.write_transaction()?;
        save_reputation(&transaction, worker_id, reputation)?;
        let mut accepted: Vec<(String, u64, String)> = Vec::new();
        {
            let mut select = transaction.prepare_cached(
                "SELECT replica.job_id, replica.unit_index, result.digest FROM replicas AS replica
                 JOIN results AS result ON result.job_id = replica.job_id AND result.unit_index = replica.unit_index
                 JOIN jobs AS job ON job.job_id = replica.job_id
                 WHERE replica.worker_id = ?1 AND job.state = 'running'
                   AND result.failure IS NULL AND result.digest = replica.digest",
            )?;
            let mut rows = select.query(params![worker_id])?;
            while let Some(row) = rows.next()? {
                accepted.push((row.get(0)?, row.get::<_, i64>(1)? as u64, row.get(2)?));
            }
        }
        let mut units: BTreeMap<String, Vec<ReopenedUnit>> = BTreeMap::new();
        for (job_id, unit_index, digest) in accepted {
            let unit = forget_unit(&transaction, &job_id, unit_index, &digest)?;
            units.entry(job_id).or_default().push(unit);
        }
        transaction.execute("DELETE FROM credit WHERE worker_id = ?1", params![worker_id])?;
        transaction.commit()?;
        Ok(units)
    }

    /// Deletes a unit's result and replicas when its result is still the one proven wrong
    /// (`accepted_digest`), so it runs again; `None` when it was not (a unit already taken
    /// back, running again or decided anew, is left alone).
    pub fn take_back_unit(
        &mut self,
        job_id: &str,
        unit_index: u64,
        accepted_digest: &Hash,
    ) -> StoreResult<Option<ReopenedUnit>> {
        let transaction = self.write_transaction()?;
        let digest = accepted_digest.to_hex();
        let still_wrong: bool = transaction.query_row(
            "SELECT COUNT(*) > 0 FROM results WHERE job_id = ?1 AND unit_index = ?2 AND failure IS NULL AND digest = ?3",
            params![job_id, unit_index as i64, digest],
            |row| row.get(0),
        )?;
        let unit = still_wrong.then(|| forget_unit(&transaction, job_id, unit_index, &digest)).transpose()?;
        transaction.commit()?;
        Ok(unit)
    }
}

/// Deletes a unit's result and replicas; returns it with its accepted digest (hex) and the
/// identities whose replicas had it.
fn forget_unit(
    transaction: &rusqlite::Transaction<'_>,
    job_id: &str,
    unit_index: u64,
    digest: &str,
) -> StoreResult<ReopenedUnit> {
    let unit = params![job_id, unit_index as i64];
    let deciders = transaction
        .prepare_cached(
            "SELECT worker_id FROM replicas WHERE job_id = ?1 AND unit_index = ?2 AND digest = ?3",
        )?
        .query_map(params![job_id, unit_index as i64, digest], |row| row.get(0))?
        .map(|worker| worker.map(|worker: String| crate::core::WorkerId::from(worker)))
        .collect::<Result<Vec<_>, _>>()?;
    transaction.prepare_cached("DELETE FROM results WHERE job_id = ?1 AND unit_index = ?2")?.execute(unit)?;
    transaction
        .prepare_cached("DELETE FROM replicas WHERE job_id = ?1 AND unit_index = ?2")?
        .execute(unit)?;
    let accepted_digest = super::schema::hash_from_hex(digest)?;
    Ok(ReopenedUnit { unit_index, accepted_digest, deciders })
}

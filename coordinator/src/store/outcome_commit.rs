//! Committing workers' outcome batches: replicas, decisions, credit, the jobs' fresh-unit
//! marks and the reputations they changed. Many batches may share one transaction (group
//! commit: one fsync for all of them, see `server/store_writer.rs`).

use super::credit::CreditGrants;
use super::outcome_rows::{Failure, OutcomeRows, ReplicaRow, ResultRow};
use super::{Store, StoreResult, first_output_of_class, save_reputation};
use crate::core::{OutcomeEffect, Reputation, UnitDecision};
use rusqlite::{Transaction, params};
use std::collections::HashMap;
use wasmhive_protocol::Status;

/// One worker's `outcomes` message as the store commits it. Owned: it crosses to the store
/// writer's thread.
#[derive(Debug, Default)]
pub struct OutcomeBatch {
    pub outcomes: Vec<OutcomeToCommit>,
    /// Each job's fresh-unit mark when the batch was recorded (stored as a maximum).
    pub next_fresh: Vec<(String, u64)>,
    /// Reputations the batch changed (`quarantined_until_ms` in Unix milliseconds).
    pub reputations: Vec<(crate::core::WorkerId, Reputation)>,
}

/// One outcome of a batch, as the server hands it to the store.
#[derive(Debug)]
pub struct OutcomeToCommit {
    /// Where the outcome was in its worker's message.
    pub position: usize,
    pub effect: OutcomeEffect,
    pub lease_id: u64,
    /// The replica's output when it is kept or becomes the result, else empty.
    pub output: Vec<u8>,
    /// The output's blob (in the owner's store) when it became the result and is a blob.
    pub output_blob: Option<wasmhive_protocol::BlobRef>,
    /// The engine class the worker named (shared by its session's outcomes).
    pub engine_class: std::sync::Arc<str>,
    /// Keep the replica's output (jobs with a validator compare later replicas with it).
    pub keep_output: bool,
}

impl Store {
    /// Commits these batches in one transaction. Only after this returns may their outcomes
    /// be acknowledged; on `Err` none of them is stored.
    pub fn commit_outcome_batches(&mut self, batches: &[&OutcomeBatch]) -> StoreResult<()> {
        let transaction = self.write_transaction()?;
        let mut grants = CreditGrants::default();
        let mut rows = OutcomeRows::default();
        for batch in batches {
            commit_batch(&transaction, &mut rows, &mut grants, batch)?;
        }
        rows.insert_all(&transaction)?;
        save_latest_reputations(&transaction, batches)?;
        grants.write(&transaction)?;
        transaction.commit()?;
        Ok(())
    }
}

/// Each worker's reputation as the last batch that changed it left it: one row write per
/// worker and transaction (at quorum 2 every replica of an accepted unit is judged, and
/// a transaction holds hundreds of them, mostly of the same few workers).
fn save_latest_reputations(transaction: &Transaction<'_>, batches: &[&OutcomeBatch]) -> StoreResult<()> {
    let mut latest: HashMap<&str, &Reputation> = HashMap::new();
    for (worker_id, reputation) in batches.iter().flat_map(|batch| &batch.reputations) {
        latest.insert(worker_id, reputation);
    }
    for (worker_id, reputation) in latest {
        save_reputation(transaction, worker_id, reputation)?;
    }
    Ok(())
}

/// The status a failed unit's result keeps when no replica ran it to an end.
static NO_REPLICA_STATUS: Status = Status::HostTimeout;

fn commit_batch<'batch>(
    transaction: &Transaction<'_>,
    rows: &mut OutcomeRows<'batch>,
    grants: &mut CreditGrants,
    batch: &'batch OutcomeBatch,
) -> StoreResult<()> {
    for outcome in &batch.outcomes {
        add_replica(rows, outcome);
        let effect = &outcome.effect;
        match &effect.decision {
            Some(UnitDecision::Accepted { digest, status, replicas }) => {
                for grant in &effect.credit {
                    grants.add(&effect.job_id, grant);
                }
                add_accepted_result(transaction, rows, outcome, digest, status, *replicas)?;
            }
            Some(UnitDecision::Failed { reason, replicas }) => {
                let status = effect.replica.as_ref().map_or(&NO_REPLICA_STATUS, |replica| &replica.status);
                rows.add_result(ResultRow {
                    job_id: &effect.job_id,
                    unit_index: effect.unit_index,
                    status,
                    digest: None,
                    output: &[],
                    replicas: *replicas,
                    failure: Some(Failure::Reason(reason)),
                    output_blob: None,
                });
            }
            None => {}
        }
    }
    let mut update_next = transaction
        .prepare_cached("UPDATE jobs SET next_fresh_unit = MAX(next_fresh_unit, ?2) WHERE job_id = ?1")?;
    for (job_id, next) in &batch.next_fresh {
        update_next.execute(params![job_id, *next as i64])?;
    }
    Ok(())
}

fn add_replica<'batch>(rows: &mut OutcomeRows<'batch>, outcome: &'batch OutcomeToCommit) {
    let effect = &outcome.effect;
    let Some(replica) = &effect.replica else { return };
    rows.add_replica(ReplicaRow {
        job_id: &effect.job_id,
        unit_index: effect.unit_index,
        worker_id: &replica.worker_id,
        lease_id: outcome.lease_id,
        status: &replica.status,
        digest: &replica.digest,
        fuel_used: replica.fuel_used,
        engine_class: &outcome.engine_class,
        output: outcome.keep_output.then_some(outcome.output.as_slice()),
        network: &replica.network,
    });
}

fn add_accepted_result<'batch>(
    transaction: &Transaction<'_>,
    rows: &mut OutcomeRows<'batch>,
    outcome: &'batch OutcomeToCommit,
    digest: &'batch wasmhive_protocol::Hash,
    status: &'batch Status,
    replicas: u32,
) -> StoreResult<()> {
    let effect = &outcome.effect;
    let result = |output: &'batch [u8]| ResultRow {
        job_id: &effect.job_id,
        unit_index: effect.unit_index,
        status,
        digest: Some(digest),
        output,
        replicas,
        failure: (!status.is_success()).then_some(Failure::Status(status)),
        output_blob: None,
    };
    if outcome.keep_output {
        // Under a validator the replicas of a class differ in their bytes: the result is
        // the class's first replica (the lowest rowid), not the one that completed the
        // quorum. The rows so far go in first, so the query sees this batch's replicas.
        rows.insert_all(transaction)?;
        if let Some(first) = first_output_of_class(transaction, &effect.job_id, effect.unit_index, digest)? {
            let mut first_of_class = OutcomeRows::default();
            first_of_class.add_result(ResultRow { output: &first, ..result(&[]) });
            return first_of_class.insert_all(transaction);
        }
    }
    match outcome.output_blob {
        Some(blob) => rows.add_result(ResultRow { output_blob: Some(blob), ..result(&[]) }),
        None => rows.add_result(result(&outcome.output)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_stores_each_workers_reputation_as_its_last_batch_left_it() {
        let store = crate::store::TemporaryStore::new("reputation-test");
        let path = &store.path;
        let reputation = |valid| Reputation { valid, ..Reputation::default() };
        let first = OutcomeBatch {
            reputations: vec![
                ("a".into(), reputation(1)),
                ("b".into(), reputation(7)),
                ("a".into(), reputation(2)),
            ],
            ..OutcomeBatch::default()
        };
        let second =
            OutcomeBatch { reputations: vec![("a".into(), reputation(3))], ..OutcomeBatch::default() };
        Store::open(path).unwrap().commit_outcome_batches(&[&first, &second]).unwrap();
        let mut stored = Store::open(path).unwrap().reputations().unwrap();
        stored.sort_by(|left, right| left.0.cmp(&right.0));
        let valid: Vec<(&str, u64)> =
            stored.iter().map(|(worker, kept)| (worker.as_str(), kept.valid)).collect();
        assert_eq!(valid, [("a", 3), ("b", 7)], "the later batch's reputation wins, every worker kept");
    }
}

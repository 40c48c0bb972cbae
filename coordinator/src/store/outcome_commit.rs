//! Committing workers' outcome batches: replicas, decisions, credit, the jobs' fresh-unit
//! marks and the reputations they changed. Many batches may share one transaction (group
//! commit: one fsync for all of them, see `server/store_writer.rs`).

use super::credit::CreditGrants;
use super::{Store, StoreResult, first_output_of_class, save_reputation};
use crate::core::{OutcomeEffect, Reputation, UnitDecision};
use rusqlite::{CachedStatement, Transaction, params};
use std::collections::HashMap;
use std::fmt::Write as _;
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
        {
            let mut inserts = Inserts::prepare(&transaction)?;
            for batch in batches {
                commit_batch(&transaction, &mut inserts, &mut grants, batch)?;
            }
        }
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

/// The statements a transaction runs once per outcome, looked up once per transaction,
/// and the text their rows bind, written into buffers kept for the transaction (a row
/// costs no allocation for its status, digest or network).
struct Inserts<'transaction> {
    replica: CachedStatement<'transaction>,
    result: CachedStatement<'transaction>,
    status_json: Vec<u8>,
    network_text: String,
}

/// `status` as its stored JSON text, written into `buffer`.
fn status_json<'buffer>(buffer: &'buffer mut Vec<u8>, status: &Status) -> &'buffer str {
    buffer.clear();
    serde_json::to_writer(&mut *buffer, status).expect("status serialises");
    std::str::from_utf8(buffer).expect("JSON is UTF-8")
}

impl<'transaction> Inserts<'transaction> {
    fn prepare(transaction: &'transaction Transaction<'_>) -> StoreResult<Inserts<'transaction>> {
        Ok(Inserts {
            replica: transaction.prepare_cached(
                "INSERT INTO replicas (job_id, unit_index, worker_id, lease_id, status, digest, fuel_used, engine_class, output, network)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?,
            result: transaction.prepare_cached(
                "INSERT OR REPLACE INTO results
                 (job_id, unit_index, status, digest, output, replicas, failure, output_blob, output_blob_size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?,
            status_json: Vec::new(),
            network_text: String::new(),
        })
    }
}

fn commit_batch(
    transaction: &Transaction<'_>,
    inserts: &mut Inserts<'_>,
    grants: &mut CreditGrants,
    batch: &OutcomeBatch,
) -> StoreResult<()> {
    for outcome in &batch.outcomes {
        insert_replica(inserts, outcome)?;
        match &outcome.effect.decision {
            Some(UnitDecision::Accepted { digest, status, replicas }) => {
                for grant in &outcome.effect.credit {
                    grants.add(&outcome.effect.job_id, grant);
                }
                insert_accepted_result(transaction, inserts, outcome, digest, status, *replicas)?;
            }
            Some(UnitDecision::Failed { reason, replicas }) => {
                insert_failed_result(inserts, &outcome.effect, reason, *replicas)?;
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

fn insert_replica(inserts: &mut Inserts<'_>, outcome: &OutcomeToCommit) -> StoreResult<()> {
    let effect = &outcome.effect;
    let Some(replica) = &effect.replica else { return Ok(()) };
    inserts.network_text.clear();
    write!(inserts.network_text, "{}", replica.network).expect("writing to a String cannot fail");
    let digest = replica.digest.hex();
    let status = status_json(&mut inserts.status_json, &replica.status);
    inserts.replica.execute(params![
        &*effect.job_id,
        effect.unit_index as i64,
        &*replica.worker_id,
        outcome.lease_id as i64,
        status,
        &*digest,
        replica.fuel_used.map(|fuel| i64::try_from(fuel).unwrap_or(i64::MAX)),
        &*outcome.engine_class,
        outcome.keep_output.then_some(outcome.output.as_slice()),
        inserts.network_text.as_str(),
    ])?;
    Ok(())
}

fn insert_accepted_result(
    transaction: &Transaction<'_>,
    inserts: &mut Inserts<'_>,
    outcome: &OutcomeToCommit,
    digest: &wasmhive_protocol::Hash,
    status: &Status,
    replicas: u32,
) -> StoreResult<()> {
    let effect = &outcome.effect;
    let failure = (!status.is_success()).then(|| status.to_string());
    // Under a validator the replicas of a class differ in their bytes: the result is the
    // class's first replica, not the one that happened to complete the quorum.
    let first_of_class: Option<Vec<u8>> = if outcome.keep_output {
        first_output_of_class(transaction, &effect.job_id, effect.unit_index, digest)?
    } else {
        None
    };
    let output = match &first_of_class {
        Some(bytes) => ResultOutput::Bytes(bytes),
        None => outcome.output_blob.map_or(ResultOutput::Bytes(&outcome.output), ResultOutput::Blob),
    };
    insert_result(inserts, effect, status, Some(digest), output, replicas, failure.as_deref())
}

fn insert_failed_result(
    inserts: &mut Inserts<'_>,
    effect: &OutcomeEffect,
    reason: &str,
    replicas: u32,
) -> StoreResult<()> {
    let status = effect.replica.as_ref().map_or(Status::HostTimeout, |replica| replica.status.clone());
    insert_result(inserts, effect, &status, None, ResultOutput::Bytes(&[]), replicas, Some(reason))
}

/// A result's output: its bytes in the row, or its blob in the owner's blob store.
enum ResultOutput<'a> {
    Bytes(&'a [u8]),
    Blob(wasmhive_protocol::BlobRef),
}

fn insert_result(
    inserts: &mut Inserts<'_>,
    effect: &OutcomeEffect,
    status: &Status,
    digest: Option<&wasmhive_protocol::Hash>,
    output: ResultOutput<'_>,
    replicas: u32,
    failure: Option<&str>,
) -> StoreResult<()> {
    let (bytes, blob) = match output {
        ResultOutput::Bytes(bytes) => (bytes, None),
        ResultOutput::Blob(blob) => (&[][..], Some(blob)),
    };
    let digest = digest.map(wasmhive_protocol::Hash::hex);
    inserts.result.execute(params![
        &*effect.job_id,
        effect.unit_index as i64,
        status_json(&mut inserts.status_json, status),
        digest.as_deref(),
        bytes,
        replicas,
        failure,
        blob.map(|blob| blob.hash.to_hex()),
        blob.map(|blob| blob.size as i64),
    ])?;
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

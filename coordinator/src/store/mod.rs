//! The owner's store: jobs, their modules and inputs, replicas and accepted results, in
//! SQLite (WAL, `synchronous=FULL`).
//!
//! Invariants:
//! - an outcome batch is committed in one transaction before it is acknowledged;
//! - a result row exists once per decided unit (primary key), never twice;
//! - `jobs.next_fresh_unit` may lag behind the units actually started (it is saved with
//!   outcome batches); on load it is raised past every unit with a stored replica, so a
//!   restart re-issues at worst units that were leased but never reported: none is lost.

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod checkpoint_tests;
mod credit;
mod faults;
mod outcome_commit;
mod outcome_rows;
mod schema;
mod take_back;
#[cfg(test)]
mod temporary_store;
#[cfg(test)]
pub(crate) use temporary_store::TemporaryStore;

pub use credit::StoredCredit;
pub use faults::StoreFault;
pub use outcome_commit::{OutcomeBatch, OutcomeToCommit};
use wasmhive_protocol::api::JobState;

use crate::core::{ActiveUnitRecord, Network, ReplicaRecord, Reputation, ResumeState};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use wasmhive_protocol::api::{JobInputs, JobSubmission, VerifySettings};
use wasmhive_protocol::{Hash, Status};

/// A store problem (disk, corruption); the operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: corrupt row: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A unit's input as the store keeps it: its bytes, or the blob that holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredInput {
    Bytes(Vec<u8>),
    Blob(Hash),
}

/// A job as stored, without its inputs.
#[derive(Clone, Debug)]
pub struct StoredJob {
    pub job_id: String,
    pub name: String,
    pub task_name: String,
    pub module_hash: Hash,
    pub args: Vec<String>,
    pub quorum: u32,
    pub max_replicas: u32,
    pub verify: VerifySettings,
    pub limits: wasmhive_protocol::api::JobLimits,
    pub nan_canonicalization: bool,
    /// The validator and reducer modules (blobs), when the job has them.
    pub validator: Option<Hash>,
    pub reducer: Option<Hash>,
    /// The job's shared files (blobs), `/shared/NAME` to its units.
    pub shared: Vec<wasmhive_protocol::api::BlobInput>,
    /// `Some` for range jobs: the input of unit k is computed, not stored.
    pub range: Option<(u64, u64, u64)>,
    pub unit_count: u64,
    pub created_s: u64,
    pub state: JobState,
}

/// A job's reduced result (the reducer's run over the accepted outputs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredReduction {
    pub status: Status,
    pub output: Vec<u8>,
    pub message: String,
}

/// A decided unit as stored.
#[derive(Clone, Debug)]
pub struct StoredResult {
    pub unit_index: u64,
    /// Workers whose replicas matched the canonical digest.
    pub replica_workers: Vec<String>,
    pub status: Status,
    pub digest: Option<Hash>,
    pub output: Vec<u8>,
    /// `Some`: the output is this blob in the owner's blob store (`output` is empty).
    pub output_blob: Option<wasmhive_protocol::BlobRef>,
    pub replicas: u32,
    pub failure: Option<String>,
}

pub struct Store {
    connection: Connection,
}

/// Write-ahead log pages past which the readers' connection checkpoints: only when it
/// wrote most of them itself (a large submission while the writer is idle).
const READERS_CHECKPOINT_PAGES: u32 = 10_000;

impl Store {
    pub fn open(path: &Path) -> StoreResult<Store> {
        let connection = Connection::open(path)?;
        schema::prepare(&connection)?;
        Ok(Store { connection })
    }

    /// The owner's readers' connection, which also stores submissions. Its commits
    /// checkpoint (copy the write-ahead log into the database) only past
    /// `READERS_CHECKPOINT_PAGES`, so the store writer, which commits every few
    /// milliseconds under load and checkpoints past SQLite's 1,000, does that work: a
    /// submission arriving when the writer's log is near 1,000 pages does not copy them.
    pub fn open_for_readers(path: &Path) -> StoreResult<Store> {
        let store = Store::open(path)?;
        store.connection.pragma_update(None, "wal_autocheckpoint", READERS_CHECKPOINT_PAGES)?;
        Ok(store)
    }

    /// A transaction that takes the write lock at once (`BEGIN IMMEDIATE`), waiting for
    /// the other connection's (the store writer's) if need be: one that read first and
    /// wrote later could find its snapshot outdated by the other, which no wait resolves.
    fn write_transaction(&mut self) -> StoreResult<rusqlite::Transaction<'_>> {
        Ok(self.connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }

    /// Saves a new job with its module and inputs in one transaction.
    pub fn insert_job(
        &mut self,
        job_id: &str,
        submission: &JobSubmission,
        unit_count: u64,
        created_s: u64,
    ) -> StoreResult<()> {
        let transaction = self.write_transaction()?;
        let module_hash = Hash::of(&submission.module);
        let mut insert_blob = |bytes: &[u8]| -> StoreResult<Hash> {
            let hash = Hash::of(bytes);
            transaction.execute(
                "INSERT OR IGNORE INTO blobs (hash, bytes) VALUES (?1, ?2)",
                params![hash.to_hex(), bytes],
            )?;
            Ok(hash)
        };
        insert_blob(&submission.module)?;
        let validator = submission.validator.as_deref().map(&mut insert_blob).transpose()?;
        let reducer = submission.reducer.as_deref().map(&mut insert_blob).transpose()?;
        let range = match submission.inputs {
            JobInputs::Range { start, end, step } => Some(serde_json::json!([start, end, step]).to_string()),
            _ => None,
        };
        let settings = serde_json::json!({
            "task_name": submission.task_name,
            "args": submission.args,
            "quorum": submission.quorum,
            "max_replicas": submission.max_replicas,
            "verify": submission.verify,
            "validator": validator,
            "reducer": reducer,
            "limits": submission.limits,
            "nan_canonicalization": submission.nan_canonicalization,
            "shared": submission.shared,
        });
        transaction.execute(
            "INSERT INTO jobs (job_id, name, module_hash, settings, range, unit_count, created_s, state, next_fresh_unit)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', 0)",
            params![job_id, submission.name, module_hash.to_hex(), settings.to_string(), range, unit_count as i64, created_s as i64],
        )?;
        {
            let mut insert = transaction.prepare(
                "INSERT INTO unit_inputs (job_id, unit_index, label, input) VALUES (?1, ?2, ?3, ?4)",
            )?;
            match &submission.inputs {
                JobInputs::Range { .. } => {}
                JobInputs::Lines { lines } => {
                    for (index, line) in lines.iter().enumerate() {
                        insert.execute(params![job_id, index as i64, line, line.as_bytes()])?;
                    }
                }
                JobInputs::Files { files } => {
                    for (index, file) in files.iter().enumerate() {
                        insert.execute(params![job_id, index as i64, file.name, file.bytes])?;
                    }
                }
                JobInputs::Blobs { blobs } => {
                    let mut insert_reference = transaction.prepare(
                        "INSERT INTO unit_inputs (job_id, unit_index, label, input, blob) VALUES (?1, ?2, ?3, x'', ?4)",
                    )?;
                    for (index, blob) in blobs.iter().enumerate() {
                        insert_reference.execute(params![
                            job_id,
                            index as i64,
                            blob.name,
                            blob.hash.to_hex()
                        ])?;
                    }
                }
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> StoreResult<Vec<StoredJob>> {
        self.select_jobs("ORDER BY created_s, job_id", &[])
    }

    pub fn job(&self, job_id: &str) -> StoreResult<Option<StoredJob>> {
        Ok(self.select_jobs("WHERE job_id = ?1", &[&job_id])?.pop())
    }

    fn select_jobs(&self, clause: &str, arguments: &[&dyn rusqlite::ToSql]) -> StoreResult<Vec<StoredJob>> {
        let mut select = self.connection.prepare(&format!(
            "SELECT job_id, name, module_hash, settings, range, unit_count, created_s, state FROM jobs {clause}"
        ))?;
        let rows = select.query_map(arguments, |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, i64>(6)?,
                row.get::<_, String>(7)?,
            ))
        })?;
        let mut jobs = Vec::new();
        for row in rows {
            let (job_id, name, module_hash, settings, range, unit_count, created_s, state) = row?;
            jobs.push(schema::stored_job(
                job_id,
                name,
                &module_hash,
                &settings,
                range,
                unit_count,
                created_s,
                state,
            )?);
        }
        Ok(jobs)
    }

    pub fn blob(&self, hash: &Hash) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .connection
            .query_row("SELECT bytes FROM blobs WHERE hash = ?1", params![hash.to_hex()], |row| row.get(0))
            .optional()?)
    }

    /// Every blob the owner must keep: a running job's input blobs and shared files, and
    /// every result's output blob.
    pub fn blobs_of_running_jobs(&self) -> StoreResult<std::collections::HashSet<Hash>> {
        let mut select = self.connection.prepare_cached(
            "SELECT DISTINCT unit_inputs.blob FROM unit_inputs JOIN jobs ON jobs.job_id = unit_inputs.job_id
             WHERE jobs.state = ?1 AND unit_inputs.blob IS NOT NULL",
        )?;
        let mut needed = std::collections::HashSet::new();
        for hash in select.query_map(params![JobState::Running.as_str()], |row| row.get::<_, String>(0))? {
            needed.insert(schema::hash_from_hex(&hash?)?);
        }
        for job in self.jobs()? {
            if job.state == JobState::Running {
                needed.extend(job.shared.iter().map(|file| file.hash));
            }
        }
        // Results are kept as long as their jobs: so are their output blobs.
        let mut outputs = self
            .connection
            .prepare_cached("SELECT DISTINCT output_blob FROM results WHERE output_blob IS NOT NULL")?;
        for hash in outputs.query_map([], |row| row.get::<_, String>(0))? {
            needed.insert(schema::hash_from_hex(&hash?)?);
        }
        Ok(needed)
    }

    /// The stored input and label of a lines, files or blobs unit.
    pub fn unit_input(&self, job_id: &str, unit_index: u64) -> StoreResult<Option<(String, StoredInput)>> {
        let row = self
            .connection
            .query_row(
                "SELECT label, input, blob FROM unit_inputs WHERE job_id = ?1 AND unit_index = ?2",
                params![job_id, unit_index as i64],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        let Some((label, bytes, blob)) = row else { return Ok(None) };
        let input = match blob {
            Some(hash) => StoredInput::Blob(schema::hash_from_hex(&hash)?),
            None => StoredInput::Bytes(bytes),
        };
        Ok(Some((label, input)))
    }

    /// Where a job stood: for the core after a restart.
    pub fn resume_state(&self, job_id: &str) -> StoreResult<ResumeState> {
        let stored_next: i64 = self.connection.query_row(
            "SELECT next_fresh_unit FROM jobs WHERE job_id = ?1",
            params![job_id],
            |row| row.get(0),
        )?;
        let decided = self.decided_units(job_id)?;
        let mut replicas: BTreeMap<u64, Vec<ReplicaRecord>> = BTreeMap::new();
        let mut select = self.connection.prepare(
            "SELECT unit_index, worker_id, status, digest, network, fuel_used FROM replicas WHERE job_id = ?1 ORDER BY unit_index, rowid",
        )?;
        let mut rows = select.query(params![job_id])?;
        let mut highest_started = None;
        while let Some(row) = rows.next()? {
            let unit_index = row.get::<_, i64>(0)? as u64;
            highest_started = highest_started.max(Some(unit_index));
            if decided.0.contains(&unit_index) {
                continue;
            }
            let worker_id: String = row.get(1)?;
            let network = Network::stored(&row.get::<_, String>(4)?, &worker_id);
            let replica = ReplicaRecord {
                worker_id: worker_id.into(),
                network,
                status: schema::status_from_json(&row.get::<_, String>(2)?)?,
                digest: schema::hash_from_hex(&row.get::<_, String>(3)?)?,
                fuel_used: row.get::<_, Option<i64>>(5)?.map(|fuel| fuel.max(0) as u64),
            };
            replicas.entry(unit_index).or_default().push(replica);
        }
        let next_fresh_unit = (stored_next as u64).max(highest_started.map_or(0, |unit| unit + 1));
        let active_units = (0..next_fresh_unit)
            .filter(|unit_index| !decided.0.contains(unit_index))
            .map(|unit_index| ActiveUnitRecord {
                unit_index,
                replicas: replicas.remove(&unit_index).unwrap_or_default(),
            })
            .collect();
        Ok(ResumeState {
            next_fresh_unit,
            succeeded_units: decided.1,
            failed_units: decided.2,
            active_units,
            validated_credit: self.validated_credit(job_id)?,
        })
    }

    /// (succeeded, failed) units of a job.
    pub fn result_counts(&self, job_id: &str) -> StoreResult<(u64, u64)> {
        Ok(self.connection.query_row(
            "SELECT COUNT(*) FILTER (WHERE failure IS NULL), COUNT(*) FILTER (WHERE failure IS NOT NULL)
             FROM results WHERE job_id = ?1",
            params![job_id],
            |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
        )?)
    }

    /// (decided unit indexes, succeeded count, failed count)
    fn decided_units(&self, job_id: &str) -> StoreResult<(HashSet<u64>, u64, u64)> {
        let mut select =
            self.connection.prepare("SELECT unit_index, failure IS NULL FROM results WHERE job_id = ?1")?;
        let mut rows = select.query(params![job_id])?;
        let (mut units, mut succeeded, mut failed) = (HashSet::new(), 0, 0);
        while let Some(row) = rows.next()? {
            units.insert(row.get::<_, i64>(0)? as u64);
            if row.get::<_, bool>(1)? {
                succeeded += 1;
            } else {
                failed += 1;
            }
        }
        Ok((units, succeeded, failed))
    }

    /// The first stored output of a unit's replicas with this (class) digest.
    pub fn class_output(&self, job_id: &str, unit_index: u64, class: &Hash) -> StoreResult<Option<Vec<u8>>> {
        first_output_of_class(&self.connection, job_id, unit_index, class)
    }

    /// The successful canonical outputs of a job in unit order, concatenated; `Err` text
    /// when they exceed `bytes_max`.
    pub fn accepted_outputs(
        &self,
        job_id: &str,
        bytes_max: usize,
        blobs: &wasmhive_blobs::BlobStore,
    ) -> StoreResult<Result<Vec<u8>, String>> {
        let mut select = self.connection.prepare(
            "SELECT output, output_blob, output_blob_size FROM results WHERE job_id = ?1 AND failure IS NULL
             ORDER BY unit_index",
        )?;
        let mut rows = select.query(params![job_id])?;
        let mut outputs = Vec::new();
        let too_large = || format!("the accepted outputs exceed {bytes_max} bytes, the most a reducer reads");
        while let Some(row) = rows.next()? {
            if let Some(blob) = output_blob(row.get(1)?, row.get(2)?)? {
                if outputs.len() as u64 + blob.size > bytes_max as u64 {
                    return Ok(Err(too_large()));
                }
                if let Err(reason) = blobs.read_into(&blob.hash, blob.size, &mut outputs) {
                    return Ok(Err(format!("output blob {} cannot be read: {reason}", blob.hash.short())));
                }
                continue;
            }
            let output = row.get_ref(0)?.as_blob().map_err(|error| StoreError::Corrupt(error.to_string()))?;
            if outputs.len() + output.len() > bytes_max {
                return Ok(Err(too_large()));
            }
            outputs.extend_from_slice(output);
        }
        Ok(Ok(outputs))
    }

    pub fn save_reduction(&mut self, job_id: &str, reduction: &StoredReduction) -> StoreResult<()> {
        self.connection.execute(
            "INSERT OR REPLACE INTO reductions (job_id, status, output, message) VALUES (?1, ?2, ?3, ?4)",
            params![
                job_id,
                serde_json::to_string(&reduction.status).expect("status serialises"),
                reduction.output,
                reduction.message
            ],
        )?;
        Ok(())
    }

    pub fn reduction(&self, job_id: &str) -> StoreResult<Option<StoredReduction>> {
        let row = self
            .connection
            .query_row(
                "SELECT status, output, message FROM reductions WHERE job_id = ?1",
                params![job_id],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?, row.get::<_, String>(2)?)),
            )
            .optional()?;
        row.map(|(status, output, message)| {
            Ok(StoredReduction { status: schema::status_from_json(&status)?, output, message })
        })
        .transpose()
    }

    /// Every stored reputation (`quarantined_until_ms` in Unix milliseconds).
    pub fn reputations(&self) -> StoreResult<Vec<(String, Reputation)>> {
        let mut select = self.connection.prepare(
            "SELECT worker_id, valid, invalid, consecutive_valid, strikes, error_rate, quarantined_until_unix_ms, unfinished FROM reputation",
        )?;
        let rows = select.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                Reputation {
                    valid: row.get::<_, i64>(1)? as u64,
                    invalid: row.get::<_, i64>(2)? as u64,
                    consecutive_valid: row.get::<_, i64>(3)? as u64,
                    strikes: row.get(4)?,
                    error_rate: row.get(5)?,
                    quarantined_until_ms: row.get::<_, Option<i64>>(6)?.map(|until| until as u64),
                    unfinished: row.get::<_, i64>(7)? as u64,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn set_job_state(&mut self, job_id: &str, state: JobState) -> StoreResult<()> {
        self.connection
            .execute("UPDATE jobs SET state = ?2 WHERE job_id = ?1", params![job_id, state.as_str()])?;
        Ok(())
    }

    /// Up to `limit` results of a job with unit index ≥ `from_unit`, in unit order.
    pub fn results_page(&self, job_id: &str, from_unit: u64, limit: u32) -> StoreResult<Vec<StoredResult>> {
        let mut select = self.connection.prepare_cached(
            "SELECT unit_index, status, digest, output, replicas, failure, output_blob, output_blob_size
             FROM results WHERE job_id = ?1 AND unit_index >= ?2 ORDER BY unit_index LIMIT ?3",
        )?;
        let mut rows = select.query(params![job_id, from_unit as i64, limit])?;
        let mut results = Vec::new();
        while let Some(row) = rows.next()? {
            let digest: Option<String> = row.get(2)?;
            results.push(StoredResult {
                replica_workers: Vec::new(),
                unit_index: row.get::<_, i64>(0)? as u64,
                status: schema::status_from_json(&row.get::<_, String>(1)?)?,
                digest: digest.as_deref().map(schema::hash_from_hex).transpose()?,
                output: row.get(3)?,
                output_blob: output_blob(row.get(6)?, row.get(7)?)?,
                replicas: row.get(4)?,
                failure: row.get(5)?,
            });
        }
        drop(rows);
        for result in &mut results {
            if let Some(digest) = &result.digest {
                result.replica_workers = self
                    .replica_workers(job_id, result.unit_index, digest)?
                    .iter()
                    .map(|worker| worker.to_string())
                    .collect();
            }
        }
        Ok(results)
    }

    /// Workers whose replicas of `unit_index` produced `digest`.
    pub fn replica_workers(
        &self,
        job_id: &str,
        unit_index: u64,
        digest: &Hash,
    ) -> StoreResult<Vec<crate::core::WorkerId>> {
        let mut select = self.connection.prepare_cached(
            "SELECT worker_id FROM replicas WHERE job_id = ?1 AND unit_index = ?2 AND digest = ?3 ORDER BY rowid",
        )?;
        let workers = select
            .query_map(params![job_id, unit_index as i64, digest.to_hex()], |row| row.get::<_, String>(0))?;
        Ok(workers.map(|worker| worker.map(Into::into)).collect::<Result<_, _>>()?)
    }
}

/// Stores one worker's reputation (`quarantined_until_ms` in Unix milliseconds).
fn save_reputation(
    transaction: &rusqlite::Transaction<'_>,
    worker_id: &str,
    reputation: &Reputation,
) -> StoreResult<()> {
    transaction
        .prepare_cached(
            "INSERT OR REPLACE INTO reputation
             (worker_id, valid, invalid, consecutive_valid, strikes, error_rate, quarantined_until_unix_ms, unfinished)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            worker_id,
            reputation.valid as i64,
            reputation.invalid as i64,
            reputation.consecutive_valid as i64,
            reputation.strikes,
            reputation.error_rate,
            reputation.quarantined_until_ms.map(|until| until as i64),
            reputation.unfinished as i64,
        ])?;
    Ok(())
}

/// The first stored output of a unit's replicas with this (class) digest: a validated
/// unit's result, and what later replicas are compared with.
pub(super) fn first_output_of_class(
    connection: &rusqlite::Connection,
    job_id: &str,
    unit_index: u64,
    class: &Hash,
) -> StoreResult<Option<Vec<u8>>> {
    let mut select = connection.prepare_cached(
        "SELECT output FROM replicas WHERE job_id = ?1 AND unit_index = ?2 AND digest = ?3
         AND output IS NOT NULL ORDER BY rowid LIMIT 1",
    )?;
    Ok(select.query_row(params![job_id, unit_index as i64, class.to_hex()], |row| row.get(0)).optional()?)
}

/// The blob a result row names, if any.
fn output_blob(hash: Option<String>, size: Option<i64>) -> StoreResult<Option<wasmhive_protocol::BlobRef>> {
    match (hash, size) {
        (Some(hash), Some(size)) => {
            Ok(Some(wasmhive_protocol::BlobRef { hash: schema::hash_from_hex(&hash)?, size: size as u64 }))
        }
        _ => Ok(None),
    }
}

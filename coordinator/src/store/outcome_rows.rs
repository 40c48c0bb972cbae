//! The replica and result rows of one store transaction, inserted many per statement.
//!
//! Each INSERT statement SQLite runs opens a cursor on the table and on each of its
//! indexes, and rusqlite resets and binds it; one statement for [`ROWS_PER_INSERT`] rows
//! pays that once for all of them (see the store bench in `tests/benches/store_commits.rs`).
//!
//! Invariants:
//! - rows are inserted in the order they were added, so replicas keep their rowid order
//!   (the first replica of a class is the one with the lowest rowid);
//! - every row added is inserted by [`OutcomeRows::insert_all`], which a reader of the
//!   replicas table in the same transaction calls first;
//! - the texts rows bind (status JSON, digests, networks, failures) are written into one
//!   buffer kept for the transaction: a row costs no allocation of its own.

use super::StoreResult;
use rusqlite::Transaction;
use rusqlite::types::{ToSqlOutput, ValueRef};
use std::io::Write as _;
use std::ops::Range;
use wasmhive_protocol::{BlobRef, Hash, Status};

/// Rows per multi-row INSERT statement (a transaction's last few go one per statement).
const ROWS_PER_INSERT: usize = 32;

const REPLICA_INSERT: &str = "INSERT INTO replicas (job_id, unit_index, worker_id, lease_id, status, digest, fuel_used, engine_class, output, network) VALUES";
const REPLICA_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const RESULT_INSERT: &str = "INSERT OR REPLACE INTO results (job_id, unit_index, status, digest, output, replicas, failure, output_blob, output_blob_size) VALUES";
const RESULT_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// A replica of a unit, as stored.
pub struct ReplicaRow<'batch> {
    pub job_id: &'batch str,
    pub unit_index: u64,
    pub worker_id: &'batch str,
    pub lease_id: u64,
    pub status: &'batch Status,
    pub digest: &'batch Hash,
    pub fuel_used: Option<u64>,
    pub engine_class: &'batch str,
    pub output: Option<&'batch [u8]>,
    pub network: &'batch crate::core::Network,
}

/// A decided unit's result, as stored.
pub struct ResultRow<'batch> {
    pub job_id: &'batch str,
    pub unit_index: u64,
    pub status: &'batch Status,
    pub digest: Option<&'batch Hash>,
    pub output: &'batch [u8],
    pub replicas: u32,
    pub failure: Option<Failure<'batch>>,
    pub output_blob: Option<BlobRef>,
}

/// Why a unit failed, or the status of a unit accepted with a failing status.
pub enum Failure<'batch> {
    Reason(&'batch str),
    Status(&'batch Status),
}

/// A row and where its texts are in the transaction's buffer (unused ones are empty).
struct Written<Row> {
    row: Row,
    texts: [Range<usize>; 4],
}

/// The rows a transaction has yet to insert, and the buffer their texts are in.
#[derive(Default)]
pub struct OutcomeRows<'batch> {
    replicas: Vec<Written<ReplicaRow<'batch>>>,
    results: Vec<Written<ResultRow<'batch>>>,
    texts: Vec<u8>,
}

impl<'batch> OutcomeRows<'batch> {
    pub fn add_replica(&mut self, row: ReplicaRow<'batch>) {
        let status = self.write(|texts| serde_json::to_writer(texts, row.status).expect("status serialises"));
        let digest = self.write(|texts| texts.extend_from_slice(row.digest.hex().as_bytes()));
        let network =
            self.write(|texts| write!(texts, "{}", row.network).expect("writing to a Vec cannot fail"));
        self.replicas.push(Written { row, texts: [status, digest, network, 0..0] });
    }

    pub fn add_result(&mut self, row: ResultRow<'batch>) {
        let status = self.write(|texts| serde_json::to_writer(texts, row.status).expect("status serialises"));
        let digest = self.write(|texts| {
            if let Some(digest) = row.digest {
                texts.extend_from_slice(digest.hex().as_bytes());
            }
        });
        let failure = self.write(|texts| match &row.failure {
            Some(Failure::Reason(reason)) => texts.extend_from_slice(reason.as_bytes()),
            Some(Failure::Status(status)) => write!(texts, "{status}").expect("writing to a Vec cannot fail"),
            None => {}
        });
        let blob_hash = self.write(|texts| {
            if let Some(blob) = row.output_blob {
                texts.extend_from_slice(blob.hash.hex().as_bytes());
            }
        });
        self.results.push(Written { row, texts: [status, digest, failure, blob_hash] });
    }

    /// Inserts every row added so far, in order, and forgets them.
    pub fn insert_all(&mut self, transaction: &Transaction<'_>) -> StoreResult<()> {
        let texts = self.texts.as_slice();
        let mut values = Vec::with_capacity(ROWS_PER_INSERT * 10);
        insert_in_chunks(
            transaction,
            (REPLICA_INSERT, REPLICA_VALUES),
            &self.replicas,
            &mut values,
            |row, values| replica_values(row, texts, values),
        )?;
        insert_in_chunks(
            transaction,
            (RESULT_INSERT, RESULT_VALUES),
            &self.results,
            &mut values,
            |row, values| result_values(row, texts, values),
        )?;
        drop(values);
        self.replicas.clear();
        self.results.clear();
        self.texts.clear();
        Ok(())
    }

    fn write(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Range<usize> {
        let start = self.texts.len();
        write(&mut self.texts);
        start..self.texts.len()
    }
}

/// Inserts `rows` with one statement per [`ROWS_PER_INSERT`] of them, the rest one each.
fn insert_in_chunks<'texts, Row>(
    transaction: &Transaction<'_>,
    (insert, row_values): (&str, &str),
    rows: &'texts [Row],
    values: &mut Vec<ToSqlOutput<'texts>>,
    row_to_values: impl Fn(&'texts Row, &mut Vec<ToSqlOutput<'texts>>),
) -> StoreResult<()> {
    let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
    if rows.len() >= ROWS_PER_INSERT {
        let many = transaction.prepare_cached(&insert_sql(insert, row_values, ROWS_PER_INSERT))?;
        execute_chunks(many, chunks.by_ref(), values, &row_to_values)?;
    }
    if !chunks.remainder().is_empty() {
        let one = transaction.prepare_cached(&insert_sql(insert, row_values, 1))?;
        execute_chunks(one, chunks.remainder().chunks(1), values, &row_to_values)?;
    }
    Ok(())
}

fn execute_chunks<'texts, Row: 'texts>(
    mut statement: rusqlite::CachedStatement<'_>,
    chunks: impl Iterator<Item = &'texts [Row]>,
    values: &mut Vec<ToSqlOutput<'texts>>,
    row_to_values: &impl Fn(&'texts Row, &mut Vec<ToSqlOutput<'texts>>),
) -> StoreResult<()> {
    for chunk in chunks {
        values.clear();
        chunk.iter().for_each(|row| row_to_values(row, values));
        statement.execute(rusqlite::params_from_iter(values.iter()))?;
    }
    Ok(())
}

/// `insert` (up to VALUES) with `rows` rows of placeholders.
fn insert_sql(insert: &str, row_values: &str, rows: usize) -> String {
    format!("{insert} {}", vec![row_values; rows].join(", "))
}

fn replica_values<'texts>(
    written: &'texts Written<ReplicaRow<'_>>,
    texts: &'texts [u8],
    values: &mut Vec<ToSqlOutput<'texts>>,
) {
    let (row, [status, digest, network, _]) = (&written.row, &written.texts);
    values.extend([
        text(row.job_id.as_bytes()),
        integer(row.unit_index),
        text(row.worker_id.as_bytes()),
        integer(row.lease_id),
        text(&texts[status.clone()]),
        text(&texts[digest.clone()]),
        row.fuel_used.map_or(null(), integer),
        text(row.engine_class.as_bytes()),
        row.output.map_or(null(), blob),
        text(&texts[network.clone()]),
    ]);
}

fn result_values<'texts>(
    written: &'texts Written<ResultRow<'_>>,
    texts: &'texts [u8],
    values: &mut Vec<ToSqlOutput<'texts>>,
) {
    let (row, [status, digest, failure, blob_hash]) = (&written.row, &written.texts);
    values.extend([
        text(row.job_id.as_bytes()),
        integer(row.unit_index),
        text(&texts[status.clone()]),
        row.digest.map_or(null(), |_| text(&texts[digest.clone()])),
        blob(row.output),
        integer(u64::from(row.replicas)),
        row.failure.as_ref().map_or(null(), |_| text(&texts[failure.clone()])),
        row.output_blob.map_or(null(), |_| text(&texts[blob_hash.clone()])),
        row.output_blob.map_or(null(), |blob| integer(blob.size)),
    ]);
}

fn text(utf8: &[u8]) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(ValueRef::Text(utf8))
}

fn blob(bytes: &[u8]) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(ValueRef::Blob(bytes))
}

fn integer<'a>(value: u64) -> ToSqlOutput<'a> {
    ToSqlOutput::Borrowed(ValueRef::Integer(i64::try_from(value).unwrap_or(i64::MAX)))
}

fn null<'a>() -> ToSqlOutput<'a> {
    ToSqlOutput::Borrowed(ValueRef::Null)
}

#[cfg(test)]
#[path = "outcome_rows_tests.rs"]
mod tests;

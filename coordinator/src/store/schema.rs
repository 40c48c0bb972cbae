//! The SQLite schema and row conversions.

use super::{StoreError, StoreResult, StoredJob};
use rusqlite::Connection;
use wasmhive_protocol::api::JobState;
use wasmhive_protocol::{Hash, Status};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    module_hash TEXT NOT NULL,
    settings TEXT NOT NULL,
    range TEXT,
    unit_count INTEGER NOT NULL,
    created_s INTEGER NOT NULL,
    state TEXT NOT NULL,
    next_fresh_unit INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, bytes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS unit_inputs (
    job_id TEXT NOT NULL,
    unit_index INTEGER NOT NULL,
    label TEXT NOT NULL,
    input BLOB NOT NULL,
    PRIMARY KEY (job_id, unit_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replicas (
    job_id TEXT NOT NULL,
    unit_index INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    lease_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    digest TEXT NOT NULL,
    fuel_used INTEGER,
    engine_class TEXT NOT NULL,
    output BLOB,
    network TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS replicas_by_unit ON replicas (job_id, unit_index);
CREATE INDEX IF NOT EXISTS replicas_by_worker ON replicas (worker_id);
CREATE TABLE IF NOT EXISTS reputation (
    worker_id TEXT PRIMARY KEY,
    valid INTEGER NOT NULL,
    invalid INTEGER NOT NULL,
    consecutive_valid INTEGER NOT NULL,
    strikes INTEGER NOT NULL,
    error_rate REAL NOT NULL,
    quarantined_until_unix_ms INTEGER,
    unfinished INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS credit (
    job_id TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    replicas INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    validated INTEGER NOT NULL DEFAULT 0,
    validated_amount INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, worker_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reductions (
    job_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    output BLOB NOT NULL,
    message TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS credit_by_worker ON credit (worker_id);
CREATE TABLE IF NOT EXISTS results (
    job_id TEXT NOT NULL,
    unit_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    digest TEXT,
    output BLOB NOT NULL,
    replicas INTEGER NOT NULL,
    failure TEXT,
    PRIMARY KEY (job_id, unit_index)
) WITHOUT ROWID;
";

pub fn prepare(connection: &Connection) -> StoreResult<()> {
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    connection.execute_batch(SCHEMA)?;
    add_columns_of_newer_versions(connection)
}

/// Stores written by earlier versions get the columns added since.
fn add_columns_of_newer_versions(connection: &Connection) -> StoreResult<()> {
    let has_column = |table: &str, column: &str| -> StoreResult<bool> {
        Ok(connection.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |row| row.get(0),
        )?)
    };
    if !has_column("credit", "validated")? {
        connection.execute_batch(
            "ALTER TABLE credit ADD COLUMN validated INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE credit ADD COLUMN validated_amount INTEGER NOT NULL DEFAULT 0;",
        )?;
    }
    if !has_column("replicas", "output")? {
        connection.execute_batch("ALTER TABLE replicas ADD COLUMN output BLOB;")?;
    }
    if !has_column("reputation", "unfinished")? {
        connection
            .execute_batch("ALTER TABLE reputation ADD COLUMN unfinished INTEGER NOT NULL DEFAULT 0;")?;
    }
    if !has_column("unit_inputs", "blob")? {
        connection.execute_batch("ALTER TABLE unit_inputs ADD COLUMN blob TEXT;")?;
    }
    if !has_column("results", "output_blob")? {
        // An output above the inline limit: its blob's hash (hex) and size; `output` is empty.
        connection.execute_batch(
            "ALTER TABLE results ADD COLUMN output_blob TEXT;
             ALTER TABLE results ADD COLUMN output_blob_size INTEGER;",
        )?;
    }
    connection.execute_batch(
        "CREATE INDEX IF NOT EXISTS results_output_blobs ON results (output_blob) WHERE output_blob IS NOT NULL;",
    )?;
    if !has_column("replicas", "network")? {
        connection.execute_batch("ALTER TABLE replicas ADD COLUMN network TEXT NOT NULL DEFAULT '';")?;
    }
    Ok(())
}

pub fn status_from_json(text: &str) -> StoreResult<Status> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("status {text:?}: {error}")))
}

pub fn hash_from_hex(text: &str) -> StoreResult<Hash> {
    text.parse().map_err(|error| StoreError::Corrupt(format!("{error}")))
}

#[derive(serde::Deserialize)]
struct JobSettings {
    task_name: String,
    args: Vec<String>,
    quorum: u32,
    max_replicas: u32,
    #[serde(default)]
    verify: wasmhive_protocol::api::VerifySettings,
    #[serde(default)]
    validator: Option<Hash>,
    #[serde(default)]
    reducer: Option<Hash>,
    #[serde(default)]
    shared: Vec<wasmhive_protocol::api::BlobInput>,
    limits: wasmhive_protocol::api::JobLimits,
    nan_canonicalization: bool,
}

#[allow(clippy::too_many_arguments, reason = "one argument per column of the jobs row")]
pub fn stored_job(
    job_id: String,
    name: String,
    module_hash: &str,
    settings: &str,
    range: Option<String>,
    unit_count: i64,
    created_s: i64,
    state: String,
) -> StoreResult<StoredJob> {
    let state = JobState::from_word(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("job {job_id} has the unknown state {state:?}")))?;
    let settings: JobSettings = serde_json::from_str(settings)
        .map_err(|error| StoreError::Corrupt(format!("job {job_id} settings: {error}")))?;
    let range = range
        .map(|text| serde_json::from_str::<(u64, u64, u64)>(&text))
        .transpose()
        .map_err(|error| StoreError::Corrupt(format!("job {job_id} range: {error}")))?;
    Ok(StoredJob {
        module_hash: hash_from_hex(module_hash)?,
        job_id,
        name,
        task_name: settings.task_name,
        args: settings.args,
        quorum: settings.quorum,
        max_replicas: settings.max_replicas,
        verify: settings.verify,
        limits: settings.limits,
        nan_canonicalization: settings.nan_canonicalization,
        validator: settings.validator,
        reducer: settings.reducer,
        shared: settings.shared,
        range,
        unit_count: unit_count as u64,
        created_s: created_s as u64,
        state,
    })
}

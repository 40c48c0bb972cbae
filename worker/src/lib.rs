//! The worker: donates cores to an owner. It connects over a WebSocket, keeps a prefetch
//! queue of leases, runs them on a rayon pool through the sandbox, and returns outcomes in
//! batches.
//!
//! Invariants:
//! - a lease runs at most once here; a lease that was cancelled, returned or whose
//!   connection dropped before it started is skipped;
//! - an outcome is kept until the owner acknowledges it, and re-sent after a reconnect;
//! - each module is fetched once by hash, checked against the hash, and kept on disk;
//! - on shutdown, units already running finish within the grace period; the rest are
//!   handed back with `return_leases`.

mod connection;
pub mod control;
mod execution;
mod input_blobs;
#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // a list of one range of pieces
mod input_blobs_tests;
mod module_store;
mod session;
mod session_blobs;
mod session_core;
mod session_lost;
mod session_outputs;
pub mod swarm;
pub mod volunteer;

pub use wasmhive_transport::load_or_create_peer_key as peer_key;

use std::path::PathBuf;
use std::time::Duration;

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The owner's address: `HOST:PORT`, or `HOST:PORT#PEERID` to pin its key (a scheme
    /// prefix is allowed). Without an id the first key that answers is trusted and recorded
    /// in `DATA/known_hosts`.
    pub join: String,
    /// Threads that run units.
    pub cpus: usize,
    /// Keeps the identity, modules and compiled artifacts.
    pub data_dir: PathBuf,
    /// How long running units may take to finish on shutdown.
    pub grace: Duration,
    /// Leases kept queued per core so no core waits on the network.
    pub prefetch_per_core: usize,
    /// Bytes of modules kept in the on-disk cache (least recently used go first).
    pub module_cache_bytes_max: u64,
    /// Only spare CPU: duty cycle, pauses, schedule, battery, memory cap.
    pub volunteer: volunteer::VolunteerSettings,
    /// The local address connections leave from (`None`: the system chooses).
    pub local_address: Option<std::net::IpAddr>,
    /// Bytes per second this host sends to the swarm (`--upload-rate`; `None`: no limit).
    pub upload_bytes_per_second: Option<u64>,
    /// Bytes of blobs (unit inputs, shared files) kept on disk (`--blob-cache`); the least
    /// recently used that no queued or running lease reads are evicted beyond it, the
    /// inputs of units already run here and acknowledged outputs first (they keep at most
    /// a quarter of it).
    pub blob_cache_bytes_max: u64,
}

/// The default `--blob-cache`.
pub const BLOB_CACHE_BYTES_MAX: u64 = 16 << 30;

impl WorkerConfig {
    pub fn new(join: impl Into<String>, data_dir: impl Into<PathBuf>) -> WorkerConfig {
        WorkerConfig {
            join: join.into(),
            cpus: std::thread::available_parallelism().map_or(1, |cores| cores.get()),
            data_dir: data_dir.into(),
            grace: Duration::from_secs(30),
            prefetch_per_core: 4,
            module_cache_bytes_max: module_store::MODULE_CACHE_BYTES_MAX,
            volunteer: volunteer::VolunteerSettings::default(),
            local_address: None,
            upload_bytes_per_second: None,
            blob_cache_bytes_max: BLOB_CACHE_BYTES_MAX,
        }
    }
}

/// A problem that stops the worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot use the data directory {path}: {source}")]
    DataDirectory { path: PathBuf, source: std::io::Error },
    #[error("bad --join address: {0}")]
    BadAddress(#[from] wasmhive_transport::AddressError),
    #[error("could not start the compute pool: {0}")]
    Pool(String),
    #[error(transparent)]
    PeerKey(#[from] wasmhive_transport::KeyFileError),
}

pub use execution::{BlobFetcher, Execution};
pub use session::{run_owner_session, run_worker};

//! The messages peers exchange over a WebSocket (DESIGN.md section 6).
//!
//! Control messages are JSON text frames tagged by `type`. Blob bytes (modules) travel in
//! binary frames: 32 bytes of blake3 hash followed by the bytes. Every connection is TLS
//! with both ends proven by their peer keys (`transport` crate), so no message carries an
//! identity proof: the first frame is `hello` from the side that connected, carrying
//! [`PROTOCOL_VERSION`], answered by `welcome` with the owner's proven peer id.

use crate::{Hash, Status};
use serde::{Deserialize, Serialize};

/// The version of this protocol; a peer speaking another version is refused in `welcome`.
pub const PROTOCOL_VERSION: u32 = 4;

/// A control message: `{"type": KIND, "body": {...}}`. The tag comes first and the body
/// is separate so a decoder reads the body straight into its type (an internally tagged
/// enum would buffer every message first; that cost 1.4% of a tiny-unit job's CPU).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "snake_case", deny_unknown_fields)]
pub enum Message {
    /// First frame from a connecting worker.
    Hello(Hello),
    /// The owner accepted the worker. `owner_id` is the peer id the TLS handshake proved
    /// (the worker checks that it is).
    Welcome { protocol_version: u32, owner_id: String },
    /// A worker asks for up to `slots` more leases.
    RequestWork { slots: u32 },
    /// The owner hands out leases.
    Leases { leases: Vec<Lease> },
    /// Nothing to do now; ask again after this long.
    NoWork {
        retry_after_ms: u64,
        /// Why (quarantined, nothing pending, every pending unit already has your replica).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Owner → worker, after a `no_work`: units are waiting now; ask (sent once per
    /// `no_work`, so a waiting worker is not polled and does not poll).
    WorkReady {},
    /// A worker reports finished replicas.
    Outcomes { outcomes: Vec<OutcomeReport> },
    /// The owner committed these outcomes; the worker may forget them. `credit`: what the
    /// owner has credited this worker so far, over all its jobs.
    Acknowledged {
        lease_ids: Vec<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credit: Option<CreditSoFar>,
    },
    /// A worker gives leases back unrun (e.g. on shutdown).
    ReturnLeases { lease_ids: Vec<u64> },
    /// These leases are void (job cancelled or finished); do not run them.
    Cancel { lease_ids: Vec<u64> },
    /// Ask for the blob with this hash; answered by a binary frame.
    Want { hash: Hash },
    /// The sender is closing the connection for this reason.
    Goodbye { reason: String },
}

/// Who a worker is and what it offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub protocol_version: u32,
    /// Cores the worker runs units on.
    pub cores: u32,
    /// wasmhive version and engine class, for logs.
    pub agent: String,
}

/// Credit one owner granted one worker, over all the owner's jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditSoFar {
    /// Accepted replicas credited.
    pub replicas: u64,
    /// Their credit (fuel or units, per job).
    pub amount: u64,
}

/// One replica of one unit handed to one worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    pub lease_id: u64,
    pub job_id: String,
    pub unit_index: u64,
    pub task_name: String,
    pub module: Hash,
    /// The unit's input bytes, base64.
    #[serde(with = "crate::base64_bytes")]
    pub input: Vec<u8>,
    pub args: Vec<String>,
    pub limits: WireLimits,
    /// Seconds since 1970 that the unit's wall clock reads.
    pub job_time_s: u64,
    pub nan_canonicalization: bool,
    /// Milliseconds the worker has before the owner re-issues the replica.
    pub lease_ms: u64,
}

/// Unit limits as sent on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireLimits {
    pub fuel: Option<u64>,
    pub memory_bytes_max: u64,
    pub stdout_bytes_max: u64,
    pub wall_time_ms_max: u64,
}

/// What one replica produced. It carries no digest: the owner computes every digest from
/// the status and output it received (protocol 4; a worker's digest was never trusted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeReport {
    pub lease_id: u64,
    /// The lease's job and unit, repeated so the owner can check they match the lease.
    pub job_id: String,
    pub unit_index: u64,
    pub status: Status,
    /// stdout bytes, base64.
    #[serde(with = "crate::base64_bytes")]
    pub output: Vec<u8>,
    pub fuel_used: Option<u64>,
    pub wall_time_ms: u64,
    pub engine_class: String,
}

impl Message {
    /// The message's `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Welcome { .. } => "welcome",
            Message::RequestWork { .. } => "request_work",
            Message::Leases { .. } => "leases",
            Message::NoWork { .. } => "no_work",
            Message::WorkReady { .. } => "work_ready",
            Message::Outcomes { .. } => "outcomes",
            Message::Acknowledged { .. } => "acknowledged",
            Message::ReturnLeases { .. } => "return_leases",
            Message::Cancel { .. } => "cancel",
            Message::Want { .. } => "want",
            Message::Goodbye { .. } => "goodbye",
        }
    }

    /// Largest encoded size accepted for this kind of message.
    pub fn encoded_bytes_max(&self) -> usize {
        match self {
            Message::Hello(_) | Message::Welcome { .. } | Message::Want { .. } => 4 << 10,
            Message::RequestWork { .. }
            | Message::NoWork { .. }
            | Message::WorkReady { .. }
            | Message::Goodbye { .. } => 4 << 10,
            Message::Acknowledged { .. } | Message::ReturnLeases { .. } | Message::Cancel { .. } => 1 << 20,
            Message::Leases { .. } | Message::Outcomes { .. } => TEXT_FRAME_BYTES_MAX,
        }
    }
}

/// Largest text frame of any kind (a batch of leases or outcomes).
pub const TEXT_FRAME_BYTES_MAX: usize = 64 << 20;
/// Largest binary frame (a blob: 32-byte hash + bytes).
pub const BLOB_FRAME_BYTES_MAX: usize = 64 << 20;

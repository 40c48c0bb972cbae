//! The messages peers exchange over a WebSocket (DESIGN.md section 6).
//!
//! Control messages are JSON text frames tagged by `type`. What every unit costs (leases,
//! outcomes, acknowledgements) and blob bytes travel in binary frames (`codec.rs`): a kind
//! byte, then postcard (or, for a blob, its 32-byte blake3 hash and its bytes). What is the
//! same for every unit of a job travels once per session, in a [`JobTerms`] message that
//! the job's leases refer to by number. Every connection is TLS with both ends proven by
//! their peer keys (`transport` crate), so no message carries an identity proof: the first
//! frame is `hello` from the side that connected, carrying [`PROTOCOL_VERSION`], answered by
//! `welcome` with the owner's proven peer id.

use crate::api::JobLimits;
use crate::{Hash, Status};
use serde::{Deserialize, Serialize};

/// The version of this protocol; a peer speaking another version is refused in `welcome`.
pub const PROTOCOL_VERSION: u32 = 9;

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
    /// What every lease of one job shares, sent before the first lease that refers to it.
    /// (Boxed: the largest message, it would make every message as large.)
    JobTerms(Box<JobTerms>),
    /// The owner hands out leases (a binary frame).
    #[serde(skip)]
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
    /// A worker reports finished replicas (a binary frame).
    #[serde(skip)]
    Outcomes { outcomes: Vec<OutcomeReport> },
    /// The owner committed these outcomes; the worker may forget them. `credit`: what the
    /// owner has credited this worker so far, over all its jobs (a binary frame).
    #[serde(skip)]
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
    /// Ask for piece `index` of a blob a lease names; answered by a binary piece frame.
    WantPiece { hash: Hash, index: u64 },
    /// Swarm (`/blobs`): which pieces of this blob do you hold? Answered by `holding`.
    WhichPieces { hash: Hash },
    /// Swarm: the pieces of `hash` (a blob of `size` bytes) the sender holds, as half-open
    /// ranges of piece indexes, ascending, at most 1,024 (a subset of what it holds).
    Holding { hash: Hash, size: u64, ranges: Vec<(u64, u64)> },
    /// Swarm: the answer to `want_piece` (or `want`: `index` absent) when the sender does
    /// not hold it, or will not send it now (its upload budget is spent).
    NotHeld {
        hash: Hash,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<u64>,
    },
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
    /// The engine that runs units here (wasmtime version and CPU architecture), recorded
    /// with each replica this worker returns. (Optional so that an older worker's hello
    /// still decodes and is told to upgrade.)
    #[serde(default)]
    pub engine: String,
}

/// Credit one owner granted one worker, over all the owner's jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditSoFar {
    /// Accepted replicas credited.
    pub replicas: u64,
    /// Their credit (fuel or units, per job).
    pub amount: u64,
}

/// What every lease of one job shares, sent once per session (not once per unit). The
/// owner numbers a session's terms 1, 2, 3, ...; a lease names its job's terms by that
/// number, which stays valid while it is among the last [`TERMS_KEPT`] terms sent (the
/// owner sends a job's terms again, under a new number, when it is not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobTerms {
    pub terms_id: u32,
    pub job_id: String,
    pub task_name: String,
    pub module: Hash,
    pub args: Vec<String>,
    /// The job's limits as submitted (a worker applies its own ceilings on top).
    pub limits: JobLimits,
    /// Seconds since 1970 that the unit's wall clock reads.
    pub job_time_s: u64,
    pub nan_canonicalization: bool,
    /// The job's shared files (`/shared/NAME`): a worker fetches each blob, in verified
    /// pieces, before it runs a unit of the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<crate::api::BlobInput>,
}

/// Most shared files one job may have.
pub const SHARED_FILES_MAX: usize = 64;

/// A session's terms a lease may refer to: the last this many sent.
pub const TERMS_KEPT: u32 = 256;

/// One replica of one unit handed to one worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub lease_id: u64,
    /// The [`JobTerms`] of the unit's job, by number.
    pub terms_id: u32,
    pub unit_index: u64,
    #[serde(with = "serde_bytes")]
    pub input: Vec<u8>,
    /// `Some`: the input is this blob (and `input` is empty); the worker fetches it in
    /// verified pieces (`want_piece`) unless it has it already.
    pub input_blob: Option<BlobRef>,
}

/// A blob a lease names: its hash and size (the size is proven by its last piece).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub hash: Hash,
    pub size: u64,
}

/// Largest input of one unit when it is a blob: owners refuse larger ones at submission,
/// workers hand back leases that name one (a unit reads it from disk as it runs).
pub const INPUT_BLOB_BYTES_MAX: u64 = 1 << 30;

/// Largest output that travels inside its outcome report; a larger one is a blob (one
/// piece: below it the blob's round trips cost more than the bytes).
pub const OUTPUT_INLINE_BYTES_MAX: u64 = 256 << 10;

/// Largest piece frame: a 256 KiB piece, its proof (at most 2 × 32 bytes per tree level)
/// and the frame's header.
pub const PIECE_FRAME_BYTES_MAX: usize = (256 << 10) + (8 << 10);

/// What one replica produced. It names only its lease: the owner knows the lease's job
/// and unit, and computes every digest from the status and output it received (a
/// worker's digest was never trusted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutcomeReport {
    pub lease_id: u64,
    #[serde(with = "crate::compact_status")]
    pub status: Status,
    /// stdout bytes, when at most [`OUTPUT_INLINE_BYTES_MAX`].
    #[serde(with = "serde_bytes")]
    pub output: Vec<u8>,
    /// `Some`: stdout was larger than [`OUTPUT_INLINE_BYTES_MAX`] and is this blob in the
    /// worker's store (`output` is empty); the owner asks it for the pieces it lacks
    /// (`want_piece`) before it records the outcome.
    pub output_blob: Option<BlobRef>,
    pub fuel_used: Option<u64>,
    pub wall_time_ms: u64,
}

impl Message {
    /// The message's `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Welcome { .. } => "welcome",
            Message::RequestWork { .. } => "request_work",
            Message::JobTerms(_) => "job_terms",
            Message::Leases { .. } => "leases",
            Message::NoWork { .. } => "no_work",
            Message::WorkReady { .. } => "work_ready",
            Message::Outcomes { .. } => "outcomes",
            Message::Acknowledged { .. } => "acknowledged",
            Message::ReturnLeases { .. } => "return_leases",
            Message::Cancel { .. } => "cancel",
            Message::Want { .. } => "want",
            Message::WantPiece { .. } => "want_piece",
            Message::WhichPieces { .. } => "which_pieces",
            Message::Holding { .. } => "holding",
            Message::NotHeld { .. } => "not_held",
            Message::Goodbye { .. } => "goodbye",
        }
    }

    /// Largest encoded size accepted for this kind of message.
    pub fn encoded_bytes_max(&self) -> usize {
        match self {
            Message::Hello(_)
            | Message::Welcome { .. }
            | Message::Want { .. }
            | Message::WantPiece { .. }
            | Message::WhichPieces { .. }
            | Message::NotHeld { .. } => 4 << 10,
            Message::Holding { .. } => 64 << 10,
            Message::JobTerms(_) => 64 << 10,
            Message::RequestWork { .. }
            | Message::NoWork { .. }
            | Message::WorkReady { .. }
            | Message::Goodbye { .. } => 4 << 10,
            Message::Acknowledged { .. } | Message::ReturnLeases { .. } | Message::Cancel { .. } => 1 << 20,
            Message::Leases { .. } | Message::Outcomes { .. } => FRAME_BYTES_MAX,
        }
    }
}

/// Largest frame of any kind (a batch of leases or outcomes).
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// Largest binary frame (a blob: 32-byte hash + bytes).
pub const BLOB_FRAME_BYTES_MAX: usize = 64 << 20;

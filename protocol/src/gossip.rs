//! Membership gossip between peers: a push-pull exchange (`POST /mesh/gossip`) of peer
//! lists and work announcements (`have`).

use serde::{Deserialize, Serialize};

/// What a peer says about itself or another peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerInfo {
    pub peer_id: String,
    /// `HOST:PORT` it listens on; `None` behind NAT (outbound only).
    pub address: Option<String>,
    pub cores: u32,
    /// Cores not busy with units right now.
    pub spare_slots: u32,
}

/// "This owner has units waiting": forwarded `ttl` more hops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Have {
    pub job_id: String,
    pub owner_id: String,
    pub owner_address: String,
    pub pending: u64,
    pub ttl: u8,
}

/// Both the request and the answer of a gossip exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gossip {
    pub from: PeerInfo,
    pub peers: Vec<PeerInfo>,
    pub haves: Vec<Have>,
}

/// Most peers and haves one gossip message carries.
pub const GOSSIP_ENTRIES_MAX: usize = 64;

/// One row of `GET /api/peers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerRow {
    pub peer_id: String,
    pub address: Option<String>,
    pub cores: u32,
    pub spare_slots: u32,
    pub neighbour: bool,
    /// Milliseconds since this peer was last heard from directly (None: only by gossip).
    pub heard_ms_ago: Option<u64>,
    /// This peer's trust in it as an owner (1 − estimated error rate), once it has judged
    /// some of its results.
    pub reputation: Option<f64>,
    /// Accepted replicas this peer ran for our jobs: what reciprocity rewards.
    #[serde(default)]
    pub replicas_done_for_us: u64,
}

//! Membership gossip between peers: a push-pull exchange (`/mesh`) of peer records and
//! work announcements (`have`).
//!
//! Every record is signed by its subject (a [`PeerInfo`] by that peer, a [`Have`] by its
//! owner) over its fields and a `sequence` (the signer's Unix time in ms), so nobody can
//! forge a record for another key, and a receiver keeps only the newest record of each
//! subject (replays and stale copies are dropped). Decoding is tolerant: unknown fields
//! are ignored and [`Gossip::version`] says which release wrote it, so peers of the next
//! release and this one stay in one mesh.

use crate::identity::{IdentityError, PeerKey, verify_record};
use serde::{Deserialize, Serialize};

/// The gossip format this release writes.
pub const GOSSIP_VERSION: u32 = 2;
/// Most peers and haves one gossip message carries.
pub const GOSSIP_ENTRIES_MAX: usize = 64;

const PEER_RECORD_CONTEXT: &[u8] = b"wasmhive peer record v2\0";
const HAVE_RECORD_CONTEXT: &[u8] = b"wasmhive have record v2\0";

/// What a peer says about itself, signed by itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub peer_id: String,
    /// The peer's ed25519 public key (hex); `peer_id` derives from it.
    pub public_key: String,
    /// `IP:PORT` it can be dialled at; `None` behind NAT (outbound only).
    pub address: Option<String>,
    pub cores: u32,
    /// Cores not busy with units right now.
    pub spare_slots: u32,
    /// The signer's Unix time in ms when it signed: a newer record replaces an older one.
    pub sequence: u64,
    /// ed25519 signature (hex) by `public_key` of the fields above.
    pub signature: String,
}

/// "This owner has units waiting", signed by the owner; forwarded `ttl` more hops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Have {
    pub job_id: String,
    pub owner_id: String,
    pub owner_public_key: String,
    pub owner_address: String,
    pub pending: u64,
    pub sequence: u64,
    pub signature: String,
    /// Hops left; not signed (each forwarder lowers it), capped by receivers.
    pub ttl: u8,
}

/// Both the request and the answer of a gossip exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gossip {
    /// The writer's [`GOSSIP_VERSION`] (1 for releases before it was sent).
    #[serde(default = "version_one")]
    pub version: u32,
    pub from: PeerInfo,
    #[serde(default)]
    pub peers: Vec<PeerInfo>,
    #[serde(default)]
    pub haves: Vec<Have>,
}

fn version_one() -> u32 {
    1
}

impl PeerInfo {
    /// A record of `key`'s peer, signed now (`sequence`).
    pub fn signed(
        key: &PeerKey,
        address: Option<String>,
        cores: u32,
        spare_slots: u32,
        sequence: u64,
    ) -> PeerInfo {
        let mut info = PeerInfo {
            peer_id: key.peer_id(),
            public_key: key.public_key_hex(),
            address,
            cores,
            spare_slots,
            sequence,
            signature: String::new(),
        };
        info.signature = key.sign_record(PEER_RECORD_CONTEXT, &info.signed_bytes());
        info
    }

    /// Checks the signature of the record by the key its `peer_id` derives from.
    pub fn verify(&self) -> Result<(), IdentityError> {
        verify_record(
            &self.peer_id,
            &self.public_key,
            PEER_RECORD_CONTEXT,
            &self.signed_bytes(),
            &self.signature,
        )
    }

    fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&(&self.peer_id, &self.address, self.cores, self.spare_slots, self.sequence))
            .expect("a tuple serialises")
    }
}

impl Have {
    /// An announcement of `key`'s job, signed now (`sequence`).
    pub fn signed(
        key: &PeerKey,
        job_id: String,
        owner_address: String,
        pending: u64,
        sequence: u64,
        ttl: u8,
    ) -> Have {
        let mut have = Have {
            job_id,
            owner_id: key.peer_id(),
            owner_public_key: key.public_key_hex(),
            owner_address,
            pending,
            sequence,
            signature: String::new(),
            ttl,
        };
        have.signature = key.sign_record(HAVE_RECORD_CONTEXT, &have.signed_bytes());
        have
    }

    /// Checks the signature of the announcement by its owner's key.
    pub fn verify(&self) -> Result<(), IdentityError> {
        verify_record(
            &self.owner_id,
            &self.owner_public_key,
            HAVE_RECORD_CONTEXT,
            &self.signed_bytes(),
            &self.signature,
        )
    }

    fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&(&self.job_id, &self.owner_id, &self.owner_address, self.pending, self.sequence))
            .expect("a tuple serialises")
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_verify_and_any_change_breaks_them() {
        let key = PeerKey::from_secret([1; 32]);
        let info = PeerInfo::signed(&key, Some("127.0.0.1:1".into()), 2, 1, 5);
        assert_eq!(info.verify(), Ok(()));
        let moved = PeerInfo { address: Some("127.0.0.1:2".into()), ..info.clone() };
        assert!(moved.verify().is_err(), "an address cannot be changed by a forwarder");
        let have = Have::signed(&key, "job".into(), "127.0.0.1:1".into(), 9, 5, 3);
        assert_eq!(have.verify(), Ok(()));
        assert_eq!(Have { ttl: 1, ..have.clone() }.verify(), Ok(()), "forwarders lower the ttl");
        assert!(Have { pending: u64::MAX, ..have.clone() }.verify().is_err());
        let other = PeerKey::from_secret([2; 32]);
        let forged = Have { owner_public_key: other.public_key_hex(), ..have };
        assert!(forged.verify().is_err(), "another key cannot sign for this owner");
    }

    #[test]
    fn gossip_from_a_newer_release_with_extra_fields_still_decodes() {
        let key = PeerKey::from_secret([1; 32]);
        let gossip = Gossip {
            version: GOSSIP_VERSION,
            from: PeerInfo::signed(&key, None, 1, 1, 1),
            peers: vec![],
            haves: vec![],
        };
        let mut value = serde_json::to_value(&gossip).unwrap();
        value["shiny_new_field"] = serde_json::json!({"x": 1});
        value["from"]["region"] = serde_json::json!("eu");
        value["version"] = serde_json::json!(3);
        let decoded: Gossip = serde_json::from_value(value).unwrap();
        assert_eq!(decoded.from, gossip.from);
        assert_eq!(decoded.from.verify(), Ok(()));
        assert_eq!(decoded.version, 3);
    }
}

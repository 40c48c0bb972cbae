//! The peer list saved in `DATA/peers.json` (signed records, each dialled only pinned to
//! its key), so a restarted peer rejoins without `--join`.

use crate::PeerState;
use wasmhive_protocol::gossip::PeerInfo;

const FILE: &str = "peers.json";

pub fn load_into(state: &PeerState) {
    let Ok(text) = std::fs::read_to_string(state.data_dir.join(FILE)) else { return };
    let Ok(peers) = serde_json::from_str::<Vec<PeerInfo>>(&text) else {
        tracing::warn!("ignoring an unreadable {FILE}");
        return;
    };
    let now_ms = state.now_ms();
    let mut membership = state.membership.lock().expect("membership lock");
    for peer in peers {
        if let Err(refused) = membership.learn_saved(peer, now_ms) {
            tracing::debug!(%refused, "a saved peer record was not taken");
        }
    }
}

/// Writes the known peers, unless they are what was written last.
pub fn save(state: &PeerState) {
    let peers = state.membership.lock().expect("membership lock").known_peers();
    let text = serde_json::to_string_pretty(&peers).expect("peer lists serialise");
    let mut last_saved = state.peers_last_saved.lock().expect("last saved lock");
    if *last_saved == text {
        return;
    }
    if wasmhive_transport::write_private_file(&state.data_dir.join(FILE), &text).is_ok() {
        *last_saved = text;
    }
}

//! The gossip task: every [`GOSSIP_INTERVAL`] (with jitter) it announces our own pending
//! work, expires what went silent, and does one push-pull exchange with a random
//! neighbour, or with a `--join` address while we know nobody. A failed exchange counts
//! as a missed heartbeat for that neighbour.

use crate::membership::HAVE_TTL;
use crate::{PeerState, known_peers};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_protocol::gossip::{Gossip, Have};

pub const GOSSIP_INTERVAL: Duration = Duration::from_secs(1);
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(state: Arc<PeerState>, join: Vec<String>, shutdown: impl Future<Output = ()>) {
    let mut random = fastrand::Rng::new();
    let mut interval = tokio::time::interval(GOSSIP_INTERVAL);
    let mut shutdown = std::pin::pin!(shutdown);
    for round in 0u64.. {
        tokio::select! {
            () = shutdown.as_mut() => return,
            _ = interval.tick() => {}
        }
        tokio::time::sleep(Duration::from_millis(random.u64(0..200))).await;
        announce_own_work(&state);
        let (target, gossip) = {
            let mut membership = state.membership.lock().expect("membership lock");
            membership.set_spare_slots(state.execution.spare_slots() as u32);
            membership.expire(state.now_ms());
            let target = membership.next_exchange(&mut random);
            (target, membership.gossip(&mut random))
        };
        let (address, peer_id) = match target {
            Some(peer) => (peer.address.unwrap_or_default(), Some(peer.peer_id)),
            None if !join.is_empty() => (join[round as usize % join.len()].clone(), None),
            None => continue,
        };
        match exchange(&address, &gossip).await {
            Ok(answer) => state.membership.lock().expect("membership lock").receive(answer, state.now_ms()),
            Err(error) => {
                tracing::debug!(%address, %error, "gossip exchange failed");
                if let Some(peer_id) = peer_id {
                    state.membership.lock().expect("membership lock").exchange_failed(&peer_id);
                }
            }
        }
        // Saved as soon as it changes, so a peer that is killed still rejoins on its next start.
        known_peers::save(&state);
    }
}

/// Announces every running job of ours that has undecided units.
fn announce_own_work(state: &PeerState) {
    let me = state.membership.lock().expect("membership lock").me().clone();
    let Some(address) = me.address else { return };
    let now_ms = state.now_ms();
    for (job_id, undecided) in state.coordinator.jobs_with_undecided_units() {
        let have = Have {
            job_id,
            owner_id: me.peer_id.clone(),
            owner_address: address.clone(),
            pending: undecided,
            ttl: HAVE_TTL,
        };
        state.membership.lock().expect("membership lock").announce(have, now_ms);
    }
}

async fn exchange(address: &str, gossip: &Gossip) -> Result<Gossip, String> {
    let url = format!("ws://{address}/mesh");
    let exchange = async {
        let (mut socket, _) =
            tokio_tungstenite::connect_async(&url).await.map_err(|error| error.to_string())?;
        let text = serde_json::to_string(gossip).expect("gossip serialises");
        socket.send(Frame::Text(text.into())).await.map_err(|error| error.to_string())?;
        let answer = match socket.next().await {
            Some(Ok(Frame::Text(text))) => serde_json::from_str(&text).map_err(|error| error.to_string()),
            _ => Err("no answer".to_string()),
        };
        let _ = socket.close(None).await;
        answer
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await.map_err(|_| "timed out".to_string())?
}

//! The gossip task: every [`GOSSIP_INTERVAL`] (with jitter) it signs our own record and
//! pending work afresh, expires what went silent, and does one push-pull exchange with a
//! random neighbour, or with a `--join` address while we know nobody. Every exchange is a
//! TLS connection pinned to the id that signed the address (a `--join` address: its pinned
//! id, or the one recorded on first use); a failed exchange counts as a missed heartbeat.

use crate::membership::HAVE_TTL;
use crate::{PeerState, known_peers};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_protocol::gossip::{Gossip, Have, PeerInfo};
use wasmhive_transport::{DialError, PeerAddress};

pub const GOSSIP_INTERVAL: Duration = Duration::from_secs(1);
/// Largest gossip message accepted.
pub const GOSSIP_BYTES_MAX: usize = 256 << 10;
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(state: Arc<PeerState>, join: Vec<PeerAddress>, shutdown: impl Future<Output = ()>) {
    let mut random = fastrand::Rng::new();
    let mut interval = tokio::time::interval(GOSSIP_INTERVAL);
    let mut shutdown = std::pin::pin!(shutdown);
    for round in 0u64.. {
        tokio::select! {
            () = shutdown.as_mut() => return,
            _ = interval.tick() => {}
        }
        tokio::time::sleep(Duration::from_millis(random.u64(0..200))).await;
        sign_own_records(&state);
        let (target, gossip) = {
            let mut membership = state.membership.lock().expect("membership lock");
            membership.expire(state.now_ms());
            let target = membership.next_exchange(&mut random);
            (target, membership.gossip(&mut random))
        };
        let (address, peer_id) = match target {
            Some(peer) => (
                PeerAddress::pinned(peer.address.as_deref().unwrap_or_default(), &peer.peer_id),
                Some(peer.peer_id),
            ),
            None if !join.is_empty() => (join[round as usize % join.len()].clone(), None),
            None => continue,
        };
        match exchange(&state, &address, &gossip).await {
            Ok((answer, proven)) => {
                let received = state.membership.lock().expect("membership lock").receive(
                    answer,
                    &proven,
                    state.now_ms(),
                );
                if let Err(refused) = received {
                    tracing::warn!(%address, %refused, "gossip answer refused");
                }
            }
            Err(failure) => {
                let error = failure.to_string();
                tracing::debug!(%address, %error, "gossip exchange failed");
                if peer_id.is_none() && round % 10 == 0 {
                    tracing::warn!(%address, %error, "cannot reach the --join address; retrying");
                }
                if let Some(peer_id) = peer_id {
                    let mut membership = state.membership.lock().expect("membership lock");
                    match failure {
                        // Whoever is at that address is not the peer that signed it.
                        ExchangeFailure::Dial(DialError::WrongPeer { .. }) => membership.forget(&peer_id),
                        _ => membership.exchange_failed(&peer_id),
                    }
                }
            }
        }
        // Saved as soon as it changes, so a peer that is killed still rejoins on its next start.
        known_peers::save(&state);
    }
}

/// Signs our own record (spare slots change) and a have for every running job of ours
/// that has undecided units.
fn sign_own_records(state: &PeerState) {
    let now_ms = state.now_ms();
    let key = state.execution.key();
    let me = PeerInfo::signed(
        key,
        state.advertised.clone(),
        state.execution.cores() as u32,
        state.execution.spare_slots() as u32,
        now_ms,
    );
    let haves: Vec<Have> = match &state.advertised {
        Some(address) => state
            .coordinator
            .jobs_with_undecided_units()
            .into_iter()
            .map(|(job_id, undecided)| {
                Have::signed(key, job_id, address.clone(), undecided, now_ms, HAVE_TTL)
            })
            .collect(),
        None => Vec::new(),
    };
    let mut membership = state.membership.lock().expect("membership lock");
    membership.set_me(me);
    for have in haves {
        membership.announce(have, now_ms);
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
enum ExchangeFailure {
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("{0}")]
    Exchange(String),
}

/// One exchange over TLS: our gossip out, theirs back, and the id their handshake proved.
async fn exchange(
    state: &PeerState,
    address: &PeerAddress,
    gossip: &Gossip,
) -> Result<(Gossip, String), ExchangeFailure> {
    let failed = |error: String| ExchangeFailure::Exchange(error);
    let exchange = async {
        let (mut socket, proven) =
            state.execution.dialer().dial_websocket(address, "/mesh", GOSSIP_BYTES_MAX).await?;
        let text = serde_json::to_string(gossip).expect("gossip serialises");
        socket.send(Frame::Text(text.into())).await.map_err(|error| failed(error.to_string()))?;
        let answer = match socket.next().await {
            Some(Ok(Frame::Text(text))) => {
                serde_json::from_str(&text).map_err(|error| failed(error.to_string()))
            }
            _ => Err(failed("no answer".to_string())),
        };
        let _ = socket.close(None).await;
        answer.map(|answer| (answer, proven))
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await.map_err(|_| failed("timed out".to_string()))?
}

//! The mesh endpoints on the peer's port: `/mesh` (one gossip exchange per WebSocket: the
//! caller sends its gossip, we answer with ours and close) and `/api/peers`.
//!
//! `/mesh` needs a proven peer key (the TLS handshake), takes gossip only from that peer
//! (`Membership::receive`), and admits at most [`EXCHANGES_PER_ADDRESS_PER_SECOND`]
//! exchanges per remote IP address.

use crate::PeerState;
use crate::gossip::GOSSIP_BYTES_MAX;
use axum::Router;
use axum::extract::ws::{Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use wasmhive_coordinator::server::{ApiProblem, ExtraRoutes, authorize};
use wasmhive_protocol::gossip::{Gossip, PeerRow};
use wasmhive_protocol::printable;
use wasmhive_transport::Remote;

const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
pub const EXCHANGES_PER_ADDRESS_PER_SECOND: u32 = 20;
/// Remote addresses tracked by the rate limit at most (the table is cleared when full).
const RATE_LIMITED_ADDRESSES_MAX: usize = 4096;

/// Exchanges per remote IP in the current one-second window.
#[derive(Default)]
pub struct MeshRateLimit {
    window_s: u64,
    exchanges: HashMap<IpAddr, u32>,
}

impl MeshRateLimit {
    /// Counts one exchange from `address` at `now_ms`; false when over the limit.
    pub fn admit(&mut self, address: IpAddr, now_ms: u64) -> bool {
        let window_s = now_ms / 1000;
        if window_s != self.window_s || self.exchanges.len() >= RATE_LIMITED_ADDRESSES_MAX {
            self.window_s = window_s;
            self.exchanges.clear();
        }
        let count = self.exchanges.entry(address).or_default();
        *count += 1;
        *count <= EXCHANGES_PER_ADDRESS_PER_SECOND
    }
}

pub fn routes(state: Arc<PeerState>) -> ExtraRoutes {
    ExtraRoutes {
        api: Router::new().route("/api/peers", get(peers)).with_state(state.clone()),
        peer: Router::new()
            .route("/mesh", get(upgrade))
            .route("/blobs", get(crate::blobs::upgrade))
            .with_state(state),
    }
}

async fn upgrade(
    State(state): State<Arc<PeerState>>,
    ConnectInfo(remote): ConnectInfo<Remote>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(sender_id) = remote.peer_id else {
        return (StatusCode::FORBIDDEN, "gossip needs a proven peer key (TLS client certificate)")
            .into_response();
    };
    let admitted =
        state.mesh_rate_limit.lock().expect("rate limit lock").admit(remote.address.ip(), state.now_ms());
    if !admitted {
        return (StatusCode::TOO_MANY_REQUESTS, "too many gossip exchanges from this address; slow down")
            .into_response();
    }
    upgrade
        .read_buffer_size(4 << 10)
        .max_message_size(GOSSIP_BYTES_MAX)
        .on_upgrade(move |socket| answer_gossip(socket, state, sender_id))
}

async fn answer_gossip(mut socket: WebSocket, state: Arc<PeerState>, sender_id: String) {
    let Ok(Some(Ok(Frame::Text(text)))) = tokio::time::timeout(EXCHANGE_TIMEOUT, socket.recv()).await else {
        return;
    };
    let gossip = match serde_json::from_str::<Gossip>(&text) {
        Ok(gossip) => gossip,
        Err(error) => {
            tracing::debug!(peer = %sender_id, %error, "malformed gossip");
            let _ = socket.send(Frame::Close(None)).await;
            return;
        }
    };
    let answer = {
        let mut membership = state.membership.lock().expect("membership lock");
        let answer = membership.gossip(&mut fastrand::Rng::new());
        if let Err(refused) = membership.receive(gossip, &sender_id, state.now_ms()) {
            tracing::warn!(peer = %sender_id, %refused, "gossip refused");
        }
        answer
    };
    let text = serde_json::to_string(&answer).expect("gossip serialises");
    let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, socket.send(Frame::Text(text.into()))).await;
}

async fn peers(State(state): State<Arc<PeerState>>, headers: HeaderMap) -> Result<Response, ApiProblem> {
    authorize(&state.coordinator, &headers)?;
    let coordinator = state.coordinator.clone();
    let done_for_us = coordinator.replicas_per_worker();
    let rows: Vec<PeerRow> = state
        .membership
        .lock()
        .expect("membership lock")
        .view(state.now_ms())
        .into_iter()
        .map(|view| PeerRow {
            replicas_done_for_us: done_for_us.get(&view.info.peer_id).copied().unwrap_or(0),
            reputation: coordinator.reputation(&view.info.peer_id).map(|reputation| reputation.trust),
            peer_id: view.info.peer_id,
            address: view.info.address.map(|address| printable(&address, 64)),
            cores: view.info.cores,
            spare_slots: view.info.spare_slots,
            neighbour: view.neighbour,
            heard_ms_ago: view.heard_ms_ago,
        })
        .collect();
    Ok(axum::Json(rows).into_response())
}

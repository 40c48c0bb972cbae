//! The mesh endpoints on the peer's port: `/mesh` (one gossip exchange per WebSocket: the
//! caller sends its gossip, we answer with ours and close) and `/api/peers`.

use crate::PeerState;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message as Frame, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;
use wasmhive_coordinator::server::{ApiProblem, authorize};
use wasmhive_protocol::gossip::{Gossip, PeerRow};

/// Largest gossip message accepted.
pub const GOSSIP_BYTES_MAX: usize = 256 << 10;
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn routes(state: Arc<PeerState>) -> Router {
    Router::new()
        .route("/mesh", get(upgrade))
        .route("/blobs", get(crate::blobs::upgrade))
        .route("/api/peers", get(peers))
        .with_state(state)
}

async fn upgrade(State(state): State<Arc<PeerState>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .read_buffer_size(4 << 10)
        .max_message_size(GOSSIP_BYTES_MAX)
        .on_upgrade(move |socket| answer_gossip(socket, state))
}

async fn answer_gossip(mut socket: WebSocket, state: Arc<PeerState>) {
    let Ok(Some(Ok(Frame::Text(text)))) = tokio::time::timeout(EXCHANGE_TIMEOUT, socket.recv()).await else {
        return;
    };
    let Ok(gossip) = serde_json::from_str::<Gossip>(&text) else {
        let _ = socket.send(Frame::Close(None)).await;
        return;
    };
    let answer = {
        let mut membership = state.membership.lock().expect("membership lock");
        membership.set_spare_slots(state.execution.spare_slots() as u32);
        let answer = membership.gossip(&mut fastrand::Rng::new());
        membership.receive(gossip, state.now_ms());
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
            address: view.info.address,
            cores: view.info.cores,
            spare_slots: view.info.spare_slots,
            neighbour: view.neighbour,
            heard_ms_ago: view.heard_ms_ago,
        })
        .collect();
    Ok(axum::Json(rows).into_response())
}

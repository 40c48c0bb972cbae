//! Blobs (modules) by hash from any peer: `/blobs` answers one `want` with the blob if this
//! peer has it (its own jobs' modules or its module cache); the fetcher asks up to
//! [`PEERS_ASKED_MAX`] neighbours other than the owner first, so owners are not the only
//! source. Every fetch is TLS pinned to the neighbour's signed id; `/blobs` serves only
//! proven peers. Bytes are checked against the hash before use; on failure the worker asks
//! the owner.

use crate::PeerState;
use axum::extract::ws::{Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Weak};
use std::time::Duration;
use wasmhive_protocol::{BLOB_FRAME_BYTES_MAX, Hash, Message, decode_blob, decode_message, encode_blob};
use wasmhive_transport::{PeerAddress, Remote};

const PEERS_ASKED_MAX: usize = 3;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn upgrade(
    State(state): State<Arc<PeerState>>,
    ConnectInfo(remote): ConnectInfo<Remote>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if remote.peer_id.is_none() {
        return (StatusCode::FORBIDDEN, "blobs are served to proven peers only (TLS client certificate)")
            .into_response();
    }
    upgrade
        .read_buffer_size(4 << 10)
        .max_message_size(4 << 10)
        .on_upgrade(move |socket| serve_blob(socket, state))
}

async fn serve_blob(mut socket: WebSocket, state: Arc<PeerState>) {
    let Ok(Some(Ok(Frame::Text(text)))) = tokio::time::timeout(FETCH_TIMEOUT, socket.recv()).await else {
        return;
    };
    let Ok(Message::Want { hash }) = decode_message(&text) else { return };
    if let Some(bytes) = state.coordinator.module(&hash) {
        let _ =
            tokio::time::timeout(FETCH_TIMEOUT, socket.send(Frame::Binary(encode_blob(&bytes).into()))).await;
    }
    let _ = socket.send(Frame::Close(None)).await;
}

/// Asks neighbours (not the owner `owner_id`) for `hash`, in random order.
pub async fn fetch_from_peers(state: Weak<PeerState>, hash: Hash, owner_id: String) -> Option<Vec<u8>> {
    let candidates: Vec<PeerAddress> = {
        let state = state.upgrade()?;
        let membership = state.membership.lock().expect("membership lock");
        let mut addresses: Vec<PeerAddress> = membership
            .view(state.now_ms())
            .into_iter()
            .filter(|view| view.neighbour && view.info.peer_id != owner_id)
            .filter_map(|view| Some(PeerAddress::pinned(&view.info.address?, &view.info.peer_id)))
            .collect();
        fastrand::shuffle(&mut addresses);
        addresses.truncate(PEERS_ASKED_MAX);
        addresses
    };
    for address in candidates {
        let state = state.upgrade()?;
        if let Ok(Some(bytes)) = tokio::time::timeout(FETCH_TIMEOUT, fetch_from(&state, &address, hash)).await
        {
            tracing::info!(module = %hash.short(), %address, "module fetched from a peer");
            return Some(bytes);
        }
    }
    None
}

async fn fetch_from(state: &PeerState, address: &PeerAddress, hash: Hash) -> Option<Vec<u8>> {
    let dialer = state.execution.dialer();
    let (mut socket, _) = dialer.dial_websocket(address, "/blobs", BLOB_FRAME_BYTES_MAX).await.ok()?;
    socket.send(wasmhive_transport::frame_of(&Message::Want { hash })).await.ok()?;
    let tokio_tungstenite::tungstenite::Message::Binary(frame) = socket.next().await?.ok()? else {
        return None;
    };
    if frame.len() > BLOB_FRAME_BYTES_MAX {
        return None;
    }
    let (received, bytes) = decode_blob(&frame).ok()?;
    (received == hash).then(|| bytes.to_vec())
}

//! Blobs (modules) by hash from any peer: `/blobs` answers one `want` with the blob if this
//! peer has it (its own jobs' modules or its module cache); the fetcher asks up to
//! [`PEERS_ASKED_MAX`] neighbours other than the owner first, so owners are not the only
//! source. Bytes are checked against the hash before use; on failure the worker asks
//! the owner.

use crate::PeerState;
use axum::extract::State;
use axum::extract::ws::{Message as Frame, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Weak};
use std::time::Duration;
use wasmhive_protocol::{
    BLOB_FRAME_BYTES_MAX, Hash, Message, decode_blob, decode_message, encode_blob, encode_message,
};

const PEERS_ASKED_MAX: usize = 3;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn upgrade(State(state): State<Arc<PeerState>>, upgrade: WebSocketUpgrade) -> Response {
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

/// Asks neighbours (not `owner_address`) for `hash`, in random order.
pub async fn fetch_from_peers(state: Weak<PeerState>, hash: Hash, owner_address: String) -> Option<Vec<u8>> {
    let candidates: Vec<String> = {
        let state = state.upgrade()?;
        let membership = state.membership.lock().expect("membership lock");
        let mut addresses: Vec<String> = membership
            .view(state.now_ms())
            .into_iter()
            .filter(|view| view.neighbour)
            .filter_map(|view| view.info.address)
            .filter(|address| {
                !owner_address.ends_with(address.as_str()) && !address.ends_with(&owner_address)
            })
            .collect();
        fastrand::shuffle(&mut addresses);
        addresses.truncate(PEERS_ASKED_MAX);
        addresses
    };
    for address in candidates {
        if let Ok(Some(bytes)) = tokio::time::timeout(FETCH_TIMEOUT, fetch_from(&address, hash)).await {
            tracing::info!(module = %hash.short(), %address, "module fetched from a peer");
            return Some(bytes);
        }
    }
    None
}

async fn fetch_from(address: &str, hash: Hash) -> Option<Vec<u8>> {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/blobs")).await.ok()?;
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(encode_message(&Message::Want { hash }).into()))
        .await
        .ok()?;
    let tokio_tungstenite::tungstenite::Message::Binary(frame) = socket.next().await?.ok()? else {
        return None;
    };
    if frame.len() > BLOB_FRAME_BYTES_MAX {
        return None;
    }
    let (received, bytes) = decode_blob(&frame).ok()?;
    (received == hash).then(|| bytes.to_vec())
}

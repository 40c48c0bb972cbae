//! `/blobs`: a proven peer's swarm connection (`wasmhive_worker::swarm`: pieces of blobs
//! both ways, and modules this peer has: its own jobs' or its module cache). Modules by
//! hash from any peer: the fetcher asks up to
//! [`PEERS_ASKED_MAX`] neighbours other than the owner first, so owners are not the only
//! source. Every fetch is TLS pinned to the neighbour's signed id; `/blobs` serves only
//! proven peers. Bytes are checked against the hash before use; on failure the worker asks
//! the owner.

use crate::PeerState;
use axum::extract::ws::{Message as AxumFrame, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::sync::{Arc, Weak};
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_protocol::{Hash, PIECE_FRAME_BYTES_MAX};
use wasmhive_transport::{PeerAddress, Remote};
use wasmhive_worker::swarm::{Answer, Question};

const PEERS_ASKED_MAX: usize = 3;

pub async fn upgrade(
    State(state): State<Arc<PeerState>>,
    ConnectInfo(remote): ConnectInfo<Remote>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(peer_id) = remote.peer_id else {
        return (StatusCode::FORBIDDEN, "blobs are served to proven peers only (TLS client certificate)")
            .into_response();
    };
    upgrade.max_message_size(PIECE_FRAME_BYTES_MAX).on_upgrade(move |socket| async move {
        state.execution.swarm().accept(peer_id, as_tungstenite(socket))
    })
}

/// An axum WebSocket seen as the frames the swarm speaks (tungstenite's; pieces are not copied).
fn as_tungstenite(
    socket: WebSocket,
) -> impl Stream<Item = Result<Frame, axum::Error>> + Sink<Frame, Error = axum::Error> + Send + Unpin + 'static
{
    socket
        .map(|frame| {
            frame.map(|frame| match frame {
                AxumFrame::Text(text) => Frame::Text(text.as_str().into()),
                AxumFrame::Binary(bytes) => Frame::Binary(bytes),
                AxumFrame::Ping(bytes) => Frame::Ping(bytes),
                AxumFrame::Pong(bytes) => Frame::Pong(bytes),
                AxumFrame::Close(_) => Frame::Close(None),
            })
        })
        .with(|frame: Frame| {
            std::future::ready(Ok::<_, axum::Error>(match frame {
                Frame::Text(text) => AxumFrame::Text(text.as_str().into()),
                Frame::Binary(bytes) => AxumFrame::Binary(bytes),
                Frame::Ping(bytes) => AxumFrame::Ping(bytes),
                Frame::Pong(bytes) => AxumFrame::Pong(bytes),
                Frame::Close(_) | Frame::Frame(_) => AxumFrame::Close(None),
            }))
        })
}

/// Neighbours with an address, pinned to their signed ids: where the swarm looks for sources.
pub fn neighbour_addresses(state: &PeerState) -> Vec<PeerAddress> {
    let membership = state.membership.lock().expect("membership lock");
    membership
        .view(state.now_ms())
        .into_iter()
        .filter(|view| view.neighbour)
        .filter_map(|view| Some(PeerAddress::pinned(&view.info.address?, &view.info.peer_id)))
        .collect()
}

/// Asks swarm peers (not the owner `owner_id`) for module `hash`, one after another.
pub async fn fetch_from_peers(state: Weak<PeerState>, hash: Hash, owner_id: String) -> Option<Vec<u8>> {
    let sources = {
        let state = state.upgrade()?;
        let swarm = state.execution.swarm().clone();
        swarm.sources(state.execution.dialer(), &owner_id).await
    };
    for peer in sources.into_iter().take(PEERS_ASKED_MAX) {
        if let Ok(Answer::Module(bytes)) = peer.ask(Question::Module(hash)).await {
            tracing::info!(module = %hash.short(), peer = %peer.peer_id, "module fetched from a peer");
            return Some(bytes);
        }
    }
    None
}

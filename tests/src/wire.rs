//! Speaking the wire protocol from tests: connect, prove an identity, exchange messages.

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_protocol::identity::PeerKey;
use wasmhive_protocol::{Hello, Message, PROTOCOL_VERSION, encode_message};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn key(seed: u8) -> PeerKey {
    PeerKey::from_secret([seed; 32])
}

pub fn hello(key: &PeerKey) -> Frame {
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        worker_id: key.peer_id(),
        public_key: key.public_key_hex(),
        cores: 1,
        agent: "test".into(),
    };
    Frame::Text(encode_message(&Message::Hello(hello)).into())
}

pub async fn connect(address: SocketAddr) -> Socket {
    tokio_tungstenite::connect_async(format!("ws://{address}/ws")).await.expect("connecting").0
}

pub async fn next_message(socket: &mut Socket) -> Message {
    let Some(Ok(Frame::Text(text))) = socket.next().await else { panic!("expected a text frame") };
    wasmhive_protocol::decode_message(&text).expect("a message")
}

/// Connects and completes hello, challenge and proof as `key`.
pub async fn connect_as(address: SocketAddr, key: &PeerKey) -> Socket {
    let mut socket = connect(address).await;
    socket.send(hello(key)).await.unwrap();
    let Message::Challenge { nonce } = next_message(&mut socket).await else {
        panic!("expected a challenge")
    };
    let proof = Message::Proof { signature: key.sign_challenge(&nonce) };
    socket.send(Frame::Text(encode_message(&proof).into())).await.unwrap();
    assert!(matches!(next_message(&mut socket).await, Message::Welcome { .. }));
    socket
}

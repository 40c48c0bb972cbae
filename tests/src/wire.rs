//! Speaking the wire protocol from tests: connect, prove an identity, exchange messages.

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_protocol::identity::PeerKey;
use wasmhive_protocol::{BinaryFrame, Hello, Message, OutcomeReport, PROTOCOL_VERSION, Status};
use wasmhive_transport::{Dialer, PeerAddress, PeerSocket, TlsIdentity, frame_of};

pub type Socket = PeerSocket;

pub fn key(seed: u8) -> PeerKey {
    PeerKey::from_secret([seed; 32])
}

pub fn hello() -> Frame {
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        cores: 1,
        agent: "test".into(),
        engine: this_engine_class(),
    };
    frame_of(&Message::Hello(hello))
}

/// The message a frame carries (`None`: a blob, a piece, a ping, a close, or undecodable).
pub fn decode_frame(frame: &Frame) -> Option<Message> {
    match frame {
        Frame::Text(text) => wasmhive_protocol::decode_message(text).ok(),
        Frame::Binary(bytes) => match wasmhive_protocol::decode_binary(bytes).ok()? {
            BinaryFrame::Message(message) => Some(message),
            BinaryFrame::Blob(..) | BinaryFrame::Piece { .. } => None,
        },
        _ => None,
    }
}

/// A TLS WebSocket to `/ws` as `key` (the TLS handshake proves it), before `hello`.
pub async fn connect(address: SocketAddr, key: &PeerKey) -> Socket {
    try_connect(address, Some(key), "/ws").await.expect("connecting")
}

/// A TLS WebSocket to `path`, as `key` or anonymously; the error says why it failed.
pub async fn try_connect(address: SocketAddr, key: Option<&PeerKey>, path: &str) -> Result<Socket, String> {
    try_connect_from(address, key, path, None).await
}

/// [`try_connect`] from the local address `from` (tests stand for several networks with
/// 127.0.0.2, 127.0.0.3, ...).
pub async fn try_connect_from(
    address: SocketAddr,
    key: Option<&PeerKey>,
    path: &str,
    from: Option<std::net::IpAddr>,
) -> Result<Socket, String> {
    let dialer = Dialer::new(key.map(TlsIdentity::new), None).with_local_address(from);
    let address = PeerAddress::parse(&address.to_string()).expect("a socket address");
    let frame_bytes_max = 64 << 20;
    dialer
        .dial_websocket(&address, path, frame_bytes_max)
        .await
        .map(|(socket, _)| socket)
        .map_err(|error| error.to_string())
}

/// The owner's next answer, past any `work_ready` and job terms (a scripted worker asks
/// in its own rhythm and reads leases by their unit); `None` when the connection ended or
/// sent something undecodable.
pub async fn next_reply(socket: &mut Socket) -> Option<Message> {
    loop {
        let Some(Ok(frame)) = socket.next().await else { return None };
        match decode_frame(&frame)? {
            Message::WorkReady {} | Message::JobTerms(_) => continue,
            message => return Some(message),
        }
    }
}

pub async fn next_message(socket: &mut Socket) -> Message {
    let Some(Ok(frame)) = socket.next().await else { panic!("expected a frame") };
    decode_frame(&frame).expect("a message")
}

/// Connects as `key` and completes hello and welcome, from a loopback address of its own
/// (so each scripted identity is a network of its own, as owners count them).
pub async fn connect_as(address: SocketAddr, key: &PeerKey) -> Socket {
    connect_as_from(address, key, Some(loopback_address_of(key))).await
}

/// A loopback address derived from `key`'s peer id: 127.2.X.Y.
pub fn loopback_address_of(key: &PeerKey) -> std::net::IpAddr {
    let bytes = wasmhive_protocol::Hash::of(key.peer_id().as_bytes()).0;
    std::net::IpAddr::from([127, 2, bytes[0], 2 + bytes[1] % 250])
}

/// [`connect_as`] from the local address `from`.
pub async fn connect_as_from(address: SocketAddr, key: &PeerKey, from: Option<std::net::IpAddr>) -> Socket {
    let mut socket = try_connect_from(address, Some(key), "/ws", from).await.expect("connecting");
    socket.send(hello()).await.unwrap();
    assert!(matches!(next_message(&mut socket).await, Message::Welcome { .. }));
    socket
}

/// A worker that speaks the protocol correctly and answers every lease with
/// `answer(input)` (status success, a digest that matches), counting the outcomes it sent,
/// until `stop` is set.
pub async fn run_scripted_worker(
    address: SocketAddr,
    identity: PeerKey,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    answer: fn(&[u8]) -> Vec<u8>,
) {
    run_scripted_worker_claiming_fuel(address, identity, stop, sent, answer, None).await
}

/// [`run_scripted_worker`] that reports `fuel_used` with every outcome.
pub async fn run_scripted_worker_claiming_fuel(
    address: SocketAddr,
    identity: PeerKey,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    answer: fn(&[u8]) -> Vec<u8>,
    fuel_used: Option<u64>,
) {
    let mut socket = connect_as(address, &identity).await;
    while !stop.load(Ordering::Relaxed) {
        socket.send(frame_of(&Message::RequestWork { slots: 4 })).await.unwrap();
        let Some(reply) = next_reply(&mut socket).await else { return };
        match reply {
            Message::Leases { leases } => {
                let outcomes = leases
                    .iter()
                    .map(|lease| OutcomeReport {
                        fuel_used,
                        ..success_report(lease.lease_id, answer(&lease.input))
                    })
                    .collect();
                sent.fetch_add(leases.len() as u64, Ordering::Relaxed);
                socket.send(frame_of(&Message::Outcomes { outcomes })).await.unwrap();
                let _acknowledged = next_reply(&mut socket).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A successful outcome of lease `lease_id` with `output`, as a worker reports it.
pub fn success_report(lease_id: u64, output: Vec<u8>) -> OutcomeReport {
    OutcomeReport {
        lease_id,
        status: Status::Success,
        output,
        output_blob: None,
        fuel_used: None,
        wall_time_ms: 1,
    }
}

/// A worker as an in-process owner test names it (its id, this host's engine class).
pub fn worker_seen(worker_id: &str) -> wasmhive_coordinator::server::WorkerSeen {
    wasmhive_coordinator::server::WorkerSeen::new(worker_id, &this_engine_class())
}

/// The engine class a scripted worker claims: this host's, as a real worker's `hello`
/// would (a job without NaN canonicalisation leases only to the owner's class).
pub fn this_engine_class() -> String {
    wasmhive_sandbox::engine_class_name(std::env::consts::ARCH)
}

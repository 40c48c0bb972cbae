//! A scripted owner for attack tests: a TLS server with its own peer key that real
//! `wasmhive worker` processes join, and each session is driven by the test line by line.

use axum::serve::Listener as _;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_protocol::identity::PeerKey;
use wasmhive_protocol::{Lease, Message, PROTOCOL_VERSION, WireLimits, decode_message, encode_message};
use wasmhive_transport::{PeerStream, TlsIdentity, TlsListener};

pub struct ScriptedOwner {
    listener: TlsListener,
    pub address: SocketAddr,
    pub owner_id: String,
}

/// One worker's session with the scripted owner.
pub struct OwnerSession {
    socket: WebSocketStream<PeerStream>,
    pub worker_id: String,
}

impl ScriptedOwner {
    pub async fn start(key: &PeerKey) -> ScriptedOwner {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = tcp.local_addr().unwrap();
        let listener = TlsListener::new(tcp, &TlsIdentity::new(key)).unwrap();
        ScriptedOwner { listener, address, owner_id: key.peer_id() }
    }

    /// `ADDR#PEERID`, what a worker joins.
    pub fn join_address(&self) -> String {
        format!("{}#{}", self.address, self.owner_id)
    }

    /// The next worker's session, after its `hello` was answered with `welcome`.
    pub async fn next_session(&mut self) -> OwnerSession {
        let (stream, remote) = self.listener.accept().await;
        let socket = tokio_tungstenite::accept_async(stream).await.expect("a WebSocket upgrade");
        let mut session = OwnerSession { socket, worker_id: remote.peer_id.expect("a proven worker") };
        assert!(matches!(session.receive().await, Some(Message::Hello(_))));
        session
            .send(&Message::Welcome { protocol_version: PROTOCOL_VERSION, owner_id: self.owner_id.clone() })
            .await;
        session
    }
}

impl OwnerSession {
    pub async fn send(&mut self, message: &Message) {
        let _ = self.socket.send(Frame::Text(encode_message(message).into())).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        let _ = self.socket.send(Frame::Binary(bytes.into())).await;
    }

    /// The next message, `None` when the worker closed the connection or 30 s passed.
    pub async fn receive(&mut self) -> Option<Message> {
        loop {
            let frame =
                tokio::time::timeout(Duration::from_secs(30), self.socket.next()).await.ok()??.ok()?;
            match frame {
                Frame::Text(text) => {
                    return Some(decode_message(&text).expect("workers send valid messages"));
                }
                Frame::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// The next message that is not a `request_work` (workers ask again on their own).
    pub async fn receive_other_than_requests(&mut self) -> Option<Message> {
        loop {
            match self.receive().await? {
                Message::RequestWork { .. } => {}
                other => return Some(other),
            }
        }
    }
}

/// A lease of `module` with the given limits (everything else ordinary).
pub fn lease(lease_id: u64, module: &[u8], args: &[&str], limits: WireLimits) -> Lease {
    Lease {
        lease_id,
        job_id: "scripted-job".into(),
        unit_index: lease_id,
        task_name: "probe".into(),
        module: wasmhive_protocol::Hash::of(module),
        input: Vec::new(),
        args: args.iter().map(|arg| arg.to_string()).collect(),
        limits,
        job_time_s: 0,
        nan_canonicalization: true,
        lease_ms: 60_000,
    }
}

//! A scripted owner for attack tests: a TLS server with its own peer key that real
//! `wasmhive worker` processes join, and each session is driven by the test line by line.

use axum::serve::Listener as _;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_protocol::api::JobLimits;
use wasmhive_protocol::identity::PeerKey;
use wasmhive_protocol::{JobTerms, Lease, Message, PROTOCOL_VERSION};
use wasmhive_transport::{PeerStream, TlsIdentity, TlsListener, frame_of};

pub struct ScriptedOwner {
    listener: TlsListener,
    pub address: SocketAddr,
    pub owner_id: String,
}

/// One worker's session with the scripted owner.
pub struct OwnerSession {
    socket: WebSocketStream<PeerStream>,
    pub worker_id: String,
    terms_sent: u32,
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
        let mut session =
            OwnerSession { socket, worker_id: remote.peer_id.expect("a proven worker"), terms_sent: 0 };
        assert!(matches!(session.receive().await, Some(Message::Hello(_))));
        session
            .send(&Message::Welcome { protocol_version: PROTOCOL_VERSION, owner_id: self.owner_id.clone() })
            .await;
        session
    }
}

impl OwnerSession {
    pub async fn send(&mut self, message: &Message) {
        let _ = self.socket.send(frame_of(message)).await;
    }

    /// Sends each lease's job terms (numbered in order), then the leases in one message.
    pub async fn send_leases(&mut self, leases: Vec<ScriptedLease>) {
        let mut wire_leases = Vec::new();
        for ScriptedLease { mut terms, mut lease } in leases {
            self.terms_sent += 1;
            (terms.terms_id, lease.terms_id) = (self.terms_sent, self.terms_sent);
            self.send(&Message::JobTerms(Box::new(terms))).await;
            wire_leases.push(lease);
        }
        self.send(&Message::Leases { leases: wire_leases }).await;
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
                Frame::Close(_) => return None,
                frame => {
                    if let Some(message) = crate::wire::decode_frame(&frame) {
                        return Some(message);
                    }
                }
            }
        }
    }

    /// The next piece the worker sends (hash, index, bao-encoded bytes), past any message;
    /// `None` when the worker closed the connection or 30 s passed.
    pub async fn receive_piece(&mut self) -> Option<(wasmhive_protocol::Hash, u64, Vec<u8>)> {
        loop {
            let frame =
                tokio::time::timeout(Duration::from_secs(30), self.socket.next()).await.ok()??.ok()?;
            match frame {
                Frame::Close(_) => return None,
                Frame::Binary(bytes) => {
                    if let Ok(wasmhive_protocol::BinaryFrame::Piece { hash, index, encoded }) =
                        wasmhive_protocol::decode_binary(&bytes)
                    {
                        return Some((hash, index, encoded.to_vec()));
                    }
                }
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

/// A lease with its own job terms, as a scripted owner sends it.
pub struct ScriptedLease {
    pub terms: JobTerms,
    pub lease: Lease,
}

/// A lease of `module` with the given limits (everything else ordinary).
pub fn lease(lease_id: u64, module: &[u8], args: &[&str], limits: JobLimits) -> ScriptedLease {
    let terms = JobTerms {
        terms_id: 0,
        job_id: "scripted-job".into(),
        task_name: "probe".into(),
        module: wasmhive_protocol::Hash::of(module),
        args: args.iter().map(|arg| arg.to_string()).collect(),
        limits,
        job_time_s: 0,
        nan_canonicalization: true,
        shared: Vec::new(),
    };
    ScriptedLease {
        terms,
        lease: Lease { lease_id, terms_id: 0, unit_index: lease_id, input: Vec::new(), input_blob: None },
    }
}

//! The swarm: peers trade the pieces of blobs they hold (issue 16's BitTorrent model).
//!
//! - `connection.rs`: one `/blobs` connection, the same protocol both ways (so peers
//!   behind NAT serve over connections they opened);
//! - `piece_picker.rs`: which source to ask for which piece (rarest first, owner last);
//! - this file: the connections this peer holds, by proven peer id, the peers it dropped
//!   (for a bad piece, a wrong size, a stall), and its upload budget.
//!
//! A blob's hash is what lets a peer ask for it: any proven peer may ask for any piece a
//! peer holds (units' inputs are already sent to whoever runs them). Fetching peers verify
//! every piece (`wasmhive-blobs`), so a peer cannot pass off bad bytes, only waste a piece.
//!
//! Limits: at most [`SOURCES_PER_FETCH`] peers serve one fetch; at most
//! [`CONNECTIONS_MAX`] swarm connections; a dropped peer is not asked again for
//! [`DROPPED_FOR`] (at most [`DROPPED_REMEMBERED_MAX`] remembered).

mod connection;
#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // a list of one range of pieces
mod connection_tests;
pub mod piece_picker;
pub mod reciprocity;

pub use connection::{Answer, Question, SERVES_IN_FLIGHT};

use connection::Asking;
use futures_util::{Sink, Stream};
use std::collections::HashMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_blobs::{BlobStore, UploadBudget};
use wasmhive_protocol::{BLOB_FRAME_BYTES_MAX, Hash};
use wasmhive_transport::{Dialer, PeerAddress};

/// Peers asked for the pieces of one blob at once, at most.
pub const SOURCES_PER_FETCH: usize = 4;
/// Swarm connections (dialled and accepted) held at once, at most.
pub const CONNECTIONS_MAX: usize = 64;
pub const DROPPED_FOR: Duration = Duration::from_secs(600);
pub const DROPPED_REMEMBERED_MAX: usize = 4096;
/// How long an asker waits for an answer before it calls the peer stalled.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Addresses of peers that may hold blobs (a peer gives its neighbours).
pub type Candidates = Arc<dyn Fn() -> Vec<PeerAddress> + Send + Sync>;
/// A module by hash, to serve (a peer gives its jobs' modules and its module cache).
pub type ModuleLookup = Arc<dyn Fn(&Hash) -> Option<Arc<Vec<u8>>> + Send + Sync>;

pub struct Swarm {
    store: Arc<BlobStore>,
    budget: Arc<Mutex<UploadBudget>>,
    connections: Mutex<HashMap<String, Connected>>,
    next_serial: AtomicU64,
    dropped: Mutex<HashMap<String, Instant>>,
    candidates: OnceLock<Candidates>,
    modules: OnceLock<ModuleLookup>,
    /// Pieces each peer sent us (`reciprocity.rs`).
    served_us: Mutex<reciprocity::ServedUs>,
}

struct Connected {
    serial: u64,
    asking: mpsc::Sender<Asking>,
}

/// A peer this one is connected to, to ask questions of.
#[derive(Clone)]
pub struct SwarmPeer {
    pub peer_id: String,
    asking: mpsc::Sender<Asking>,
}

impl SwarmPeer {
    /// A peer nobody answers for (tests feed its answers to a fetch as events).
    #[cfg(test)]
    pub(crate) fn scripted(peer_id: &str) -> SwarmPeer {
        SwarmPeer { peer_id: peer_id.into(), asking: mpsc::channel(1).0 }
    }

    /// Asks and waits for the answer; `Err` when the peer stalls or the connection ends.
    pub async fn ask(&self, question: Question) -> Result<Answer, String> {
        let (answer, answered) = oneshot::channel();
        let asked = self.asking.send(Asking { question, answer });
        if asked.await.is_err() {
            return Err("its swarm connection closed".into());
        }
        match tokio::time::timeout(ANSWER_TIMEOUT, answered).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err("its swarm connection closed".into()),
            Err(_) => Err(format!("stalled: no answer in {} s", ANSWER_TIMEOUT.as_secs())),
        }
    }
}

impl Swarm {
    pub fn new(store: Arc<BlobStore>, upload_bytes_per_second: Option<u64>) -> Swarm {
        Swarm {
            store,
            budget: Arc::new(Mutex::new(UploadBudget::new(upload_bytes_per_second))),
            connections: Mutex::new(HashMap::new()),
            next_serial: AtomicU64::new(0),
            dropped: Mutex::new(HashMap::new()),
            candidates: OnceLock::new(),
            modules: OnceLock::new(),
            served_us: Mutex::new(reciprocity::ServedUs::default()),
        }
    }

    /// This host's upload schedule (a peer shares it with its owner side, so one
    /// `--upload-rate` bounds everything it sends of blobs).
    pub fn upload_budget(&self) -> Arc<Mutex<UploadBudget>> {
        self.budget.clone()
    }

    /// Where to look for sources (a peer's neighbours); without it this host asks owners only.
    pub fn set_candidates(&self, candidates: Candidates) {
        let _ = self.candidates.set(candidates);
    }

    pub fn set_module_lookup(&self, modules: ModuleLookup) {
        let _ = self.modules.set(modules);
    }

    /// Whether this host looks for other sources than the owner.
    pub fn finds_sources(&self) -> bool {
        self.candidates.get().is_some()
    }

    /// Answers `peer_id` may have in preparation at once (`reciprocity.rs`).
    pub(crate) fn serves_allowed(&self, peer_id: &str) -> usize {
        let pieces = self.served_us.lock().expect("swarm reciprocity lock").pieces_from(peer_id);
        let backlog = self.budget.lock().expect("upload budget lock").backlog(Instant::now());
        reciprocity::serves_allowed(pieces, backlog)
    }

    /// `peer_id` sent a piece we asked for.
    pub(crate) fn piece_from(&self, peer_id: &str) {
        self.served_us.lock().expect("swarm reciprocity lock").piece_from(peer_id);
    }

    /// How long to wait before sending `bytes` within the upload rate (and reserves them).
    pub fn reserve_upload(&self, bytes: u64) -> Duration {
        self.budget.lock().expect("upload budget lock").reserve(bytes, Instant::now())
    }

    /// Takes a connection a proven peer opened to `/blobs` (the caller checked its id).
    pub fn accept<S, E>(self: &Arc<Self>, peer_id: String, socket: S)
    where
        S: Stream<Item = Result<Frame, E>> + Sink<Frame> + Send + Unpin + 'static,
        E: Display,
        <S as Sink<Frame>>::Error: Display,
    {
        let Some((serial, asking)) = self.register(&peer_id) else {
            tracing::debug!(peer = %peer_id, "swarm connection refused: at the limit");
            return;
        };
        let swarm = self.clone();
        tokio::spawn(async move {
            let reason = connection::run(socket, swarm.clone(), &peer_id, asking).await;
            swarm.forget(&peer_id, serial, &reason);
        });
    }

    /// Up to [`SOURCES_PER_FETCH`] peers other than `owner_id` to fetch from: those
    /// connected already, then candidates dialled now.
    pub async fn sources(self: &Arc<Self>, dialer: &Dialer, owner_id: &str) -> Vec<SwarmPeer> {
        let mut sources = self.connected_peers(owner_id);
        let Some(candidates) = self.candidates.get() else { return sources };
        let mut addresses = candidates();
        fastrand::shuffle(&mut addresses);
        for address in addresses {
            if sources.len() >= SOURCES_PER_FETCH {
                break;
            }
            let Some(pinned) = address.peer_id.clone() else { continue };
            if pinned == owner_id
                || self.is_dropped(&pinned)
                || sources.iter().any(|peer| peer.peer_id == pinned)
            {
                continue;
            }
            match dialer.dial_websocket(&address, "/blobs", BLOB_FRAME_BYTES_MAX).await {
                Ok((socket, proven)) if proven == pinned => {
                    self.accept(proven, socket);
                    sources.extend(self.peer(&pinned));
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%address, %error, "swarm source unreachable"),
            }
        }
        sources.truncate(SOURCES_PER_FETCH);
        sources
    }

    /// The connection to `peer_id`, if one is open.
    pub fn peer(&self, peer_id: &str) -> Option<SwarmPeer> {
        let connections = self.connections.lock().expect("swarm connections lock");
        let connected = connections.get(peer_id)?;
        Some(SwarmPeer { peer_id: peer_id.to_string(), asking: connected.asking.clone() })
    }

    /// Stops asking `peer_id` anything for [`DROPPED_FOR`] and closes its connection.
    pub fn drop_peer(&self, peer_id: &str, reason: &str) {
        tracing::warn!(peer = %wasmhive_protocol::printable(peer_id, 64), %reason, "dropped from the swarm");
        let mut dropped = self.dropped.lock().expect("swarm dropped lock");
        if dropped.len() >= DROPPED_REMEMBERED_MAX {
            let now = Instant::now();
            dropped.retain(|_, until| *until > now);
        }
        if dropped.len() < DROPPED_REMEMBERED_MAX {
            dropped.insert(peer_id.to_string(), Instant::now() + DROPPED_FOR);
        }
        drop(dropped);
        self.served_us.lock().expect("swarm reciprocity lock").forget(peer_id);
        self.connections.lock().expect("swarm connections lock").remove(peer_id);
    }

    pub fn is_dropped(&self, peer_id: &str) -> bool {
        self.dropped
            .lock()
            .expect("swarm dropped lock")
            .get(peer_id)
            .is_some_and(|until| *until > Instant::now())
    }

    fn connected_peers(&self, owner_id: &str) -> Vec<SwarmPeer> {
        let connections = self.connections.lock().expect("swarm connections lock");
        let mut peers: Vec<SwarmPeer> = connections
            .iter()
            .filter(|(peer_id, _)| peer_id.as_str() != owner_id && !self.is_dropped(peer_id))
            .map(|(peer_id, connected)| SwarmPeer {
                peer_id: peer_id.clone(),
                asking: connected.asking.clone(),
            })
            .collect();
        fastrand::shuffle(&mut peers);
        peers.truncate(SOURCES_PER_FETCH);
        peers
    }

    /// Adds a connection to `peer_id` unless one is open or the table is full.
    fn register(&self, peer_id: &str) -> Option<(u64, mpsc::Receiver<Asking>)> {
        let mut connections = self.connections.lock().expect("swarm connections lock");
        if connections.contains_key(peer_id) || connections.len() >= CONNECTIONS_MAX {
            return None;
        }
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        let (asking, asked) = mpsc::channel(SERVES_IN_FLIGHT * 4);
        connections.insert(peer_id.to_string(), Connected { serial, asking });
        Some((serial, asked))
    }

    fn forget(&self, peer_id: &str, serial: u64, reason: &str) {
        tracing::debug!(peer = %wasmhive_protocol::printable(peer_id, 64), %reason, "swarm connection ended");
        let mut connections = self.connections.lock().expect("swarm connections lock");
        if connections.get(peer_id).is_some_and(|connected| connected.serial == serial) {
            connections.remove(peer_id);
        }
    }
}

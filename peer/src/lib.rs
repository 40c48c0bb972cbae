//! A peer: owner (coordinator) and worker in one process, on one port, finding other peers
//! by gossip and pulling work from whichever owners announce it.
//!
//! - `membership.rs`: the sans-IO membership state (known peers, neighbours, haves).
//! - `mesh.rs`: the `/mesh` endpoint (one push-pull gossip exchange per WebSocket) and
//!   `/api/peers`; `gossip.rs` the task that starts exchanges every second.
//! - `puller.rs`: one worker session per owner with pending work (our own included), all
//!   on one shared compute pool.
//! - `known_peers.rs`: the peer list saved in the data directory for the next start.

mod blobs;
mod gossip;
mod known_peers;
pub mod membership;
mod mesh;
pub mod mesh_simulation;
mod puller;
pub mod reciprocity;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;
use wasmhive_coordinator::server::{Coordinator, serve_with};
use wasmhive_protocol::gossip::PeerInfo;
use wasmhive_worker::control::serve_control;
use wasmhive_worker::volunteer::VolunteerSettings;
use wasmhive_worker::{Execution, WorkerConfig};

/// How often a peer starts a gossip exchange.
pub fn gossip_interval() -> std::time::Duration {
    gossip::GOSSIP_INTERVAL
}

/// How a peer runs.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// `HOST:PORT` to listen on; `None` behind NAT: outbound connections only (it still runs
    /// units for others, but cannot own jobs others can reach).
    pub listen: Option<String>,
    /// Addresses (`HOST:PORT`) to introduce us to the mesh.
    pub join: Vec<String>,
    pub cpus: usize,
    pub data_dir: PathBuf,
    /// Bytes of modules kept in the on-disk cache.
    pub module_cache_bytes_max: u64,
    /// Only spare CPU: duty cycle, pauses, schedule, battery, memory cap.
    pub volunteer: VolunteerSettings,
}

impl PeerConfig {
    /// A peer with the default volunteer settings and cache size.
    pub fn new(listen: Option<String>, join: Vec<String>, cpus: usize, data_dir: PathBuf) -> PeerConfig {
        let defaults = WorkerConfig::new(String::new(), data_dir.clone());
        PeerConfig {
            listen,
            join,
            cpus,
            data_dir,
            module_cache_bytes_max: defaults.module_cache_bytes_max,
            volunteer: defaults.volunteer,
        }
    }
}

/// A problem that stops the peer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Coordinator(#[from] wasmhive_coordinator::server::CoordinatorError),
    #[error(transparent)]
    Worker(#[from] wasmhive_worker::WorkerError),
    #[error("cannot listen on {address}: {source}; pick another --listen address")]
    Listen { address: String, source: std::io::Error },
}

/// State the peer's tasks share.
pub struct PeerState {
    pub coordinator: Arc<Coordinator>,
    pub execution: Arc<Execution>,
    pub membership: Mutex<membership::Membership>,
    pub started: Instant,
    pub data_dir: PathBuf,
    /// The peer list as last written to `peers.json` (it is rewritten only on change).
    pub peers_last_saved: Mutex<String>,
}

impl PeerState {
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// A started peer: its coordinator (to submit jobs in-process), its address, and the
/// handles to stop it.
pub struct RunningPeer {
    pub coordinator: Arc<Coordinator>,
    pub address: Option<std::net::SocketAddr>,
    state: Arc<PeerState>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningPeer {
    /// Stops the peer's tasks (workers drain within their grace period) and saves its peers.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        known_peers::save(&self.state);
    }
}

/// Starts a peer: binds, opens its store and identity, and spawns the server, gossip and
/// puller tasks.
pub async fn start_peer(config: PeerConfig) -> Result<RunningPeer, PeerError> {
    let coordinator = Coordinator::open(&config.data_dir)?;
    let mut worker_config = WorkerConfig::new(String::new(), config.data_dir.clone());
    worker_config.cpus = config.cpus.max(1);
    worker_config.module_cache_bytes_max = config.module_cache_bytes_max;
    worker_config.volunteer = config.volunteer.clone();
    let execution = Execution::new(worker_config)?;
    let cache = execution.clone();
    coordinator.set_blob_source(Box::new(move |hash| cache.cached_module(hash)));
    let listener = match &config.listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(|source| PeerError::Listen { address: address.clone(), source })?,
        ),
        None => None,
    };
    let address = listener.as_ref().and_then(|listener| listener.local_addr().ok());
    let me = PeerInfo {
        peer_id: execution.peer_id(),
        address: address.map(|address| address.to_string()),
        cores: execution.cores() as u32,
        spare_slots: execution.spare_slots() as u32,
    };
    let state = Arc::new(PeerState {
        coordinator: coordinator.clone(),
        execution,
        membership: Mutex::new(membership::Membership::new(me)),
        started: Instant::now(),
        data_dir: config.data_dir.clone(),
        peers_last_saved: Mutex::new(String::new()),
    });
    known_peers::load_into(&state);
    let weak_state = Arc::downgrade(&state);
    state.execution.set_blob_fetcher(Arc::new(move |hash, owner_address| {
        Box::pin(blobs::fetch_from_peers(weak_state.clone(), hash, owner_address))
    }));
    let (stop, stopped) = watch::channel(false);
    let control = serve_control(state.execution.clone(), config.data_dir.clone(), wait_for(stopped.clone()));
    let mut tasks = vec![
        tokio::spawn(control),
        tokio::spawn(puller::run(state.clone(), wait_for(stopped.clone()))),
        tokio::spawn(gossip::run(state.clone(), config.join.clone(), wait_for(stopped.clone()))),
    ];
    if let Some(listener) = listener {
        let routes = mesh::routes(state.clone());
        let server = serve_with(listener, coordinator.clone(), routes, wait_for(stopped.clone()));
        tasks.push(tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "the peer's server stopped");
            }
        }));
    }
    Ok(RunningPeer { coordinator, address, state, stop, tasks })
}

/// Runs a peer until `shutdown` resolves. `on_listening` gets the bound address.
pub async fn run_peer(
    config: PeerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(Option<std::net::SocketAddr>),
) -> Result<(), PeerError> {
    let peer = start_peer(config).await?;
    on_listening(peer.address);
    shutdown.await;
    peer.stop().await;
    Ok(())
}

pub async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

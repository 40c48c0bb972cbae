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

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use wasmhive_coordinator::core::NetworkPrefixes;
use wasmhive_coordinator::server::{Coordinator, Listeners, serve_with};
use wasmhive_protocol::gossip::PeerInfo;
use wasmhive_transport::{LoopbackListener, PeerAddress, TlsIdentity, check_gossip_address};
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
    /// `HOST:PORT` to listen on (TLS); `None` behind NAT: outbound connections only (it
    /// still runs units for others, but cannot own jobs others can reach).
    pub listen: Option<String>,
    /// `IP:PORT` other peers are told to dial; needed when `listen` is `0.0.0.0` or `[::]`.
    /// `None`: the bound listen address.
    pub advertise: Option<String>,
    /// Plain-HTTP loopback address for the dashboard and API on this machine (`None`: none).
    pub dashboard_listen: Option<String>,
    /// Addresses to introduce us to the mesh (`HOST:PORT`, or `HOST:PORT#PEERID` pinned).
    pub join: Vec<String>,
    pub cpus: usize,
    pub data_dir: PathBuf,
    /// Bytes of modules kept in the on-disk cache.
    pub module_cache_bytes_max: u64,
    /// Only spare CPU: duty cycle, pauses, schedule, battery, memory cap.
    pub volunteer: VolunteerSettings,
    /// The local address outbound connections leave from; `None`: the listen address's IP
    /// when it names one (not `0.0.0.0` or `[::]`), else the system's choice.
    pub local_address: Option<IpAddr>,
    /// How the jobs this peer owns group worker addresses into networks.
    pub network_prefixes: NetworkPrefixes,
    /// Connections the public port holds open at once.
    pub connections_max: usize,
    /// Bytes per second this peer sends of blobs, to workers and to the swarm (`None`: no limit).
    pub upload_bytes_per_second: Option<u64>,
    /// Bytes of blobs kept on disk (`--blob-cache`): beyond it, those no running job of
    /// ours needs and no queued or running unit reads are evicted.
    pub blob_cache_bytes_max: u64,
}

impl PeerConfig {
    /// A peer with the default volunteer settings and cache size.
    pub fn new(listen: Option<String>, join: Vec<String>, cpus: usize, data_dir: PathBuf) -> PeerConfig {
        let defaults = WorkerConfig::new(String::new(), data_dir.clone());
        PeerConfig {
            listen,
            advertise: None,
            dashboard_listen: Some("127.0.0.1:0".into()),
            join,
            cpus,
            data_dir,
            module_cache_bytes_max: defaults.module_cache_bytes_max,
            volunteer: defaults.volunteer,
            local_address: None,
            network_prefixes: NetworkPrefixes::default(),
            connections_max: wasmhive_transport::ConnectionLimits::default().total_max,
            upload_bytes_per_second: None,
            blob_cache_bytes_max: defaults.blob_cache_bytes_max,
        }
    }

    /// Where outbound connections leave from: `local_address`, else a specific listen IP.
    fn outbound_address(&self) -> Option<IpAddr> {
        let listen_ip = self.listen.as_deref().and_then(|listen| listen.parse::<std::net::SocketAddr>().ok());
        self.local_address.or(listen_ip.map(|address| address.ip()).filter(|ip| !ip.is_unspecified()))
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
    #[error(transparent)]
    Address(#[from] wasmhive_transport::AddressError),
    #[error(
        "listening on {listen} (every interface) needs --advertise IP:PORT: the address other peers can dial"
    )]
    AdvertiseNeeded { listen: String },
}

/// State the peer's tasks share.
pub struct PeerState {
    pub coordinator: Arc<Coordinator>,
    pub execution: Arc<Execution>,
    pub membership: Mutex<membership::Membership>,
    /// The address other peers are told (signed into our record and haves).
    pub advertised: Option<String>,
    pub mesh_rate_limit: Mutex<mesh::MeshRateLimit>,
    pub data_dir: PathBuf,
    /// The peer list as last written to `peers.json` (it is rewritten only on change).
    pub peers_last_saved: Mutex<String>,
}

impl PeerState {
    /// Unix time in ms: the clock gossip records are signed and judged with.
    pub fn now_ms(&self) -> u64 {
        unix_ms()
    }
}

/// A started peer: its coordinator (to submit jobs in-process), its address, and the
/// handles to stop it.
pub struct RunningPeer {
    pub coordinator: Arc<Coordinator>,
    /// The public TLS address (peers, workers, remote API clients).
    pub address: Option<std::net::SocketAddr>,
    /// The plain loopback address of the dashboard and API.
    pub dashboard_address: Option<std::net::SocketAddr>,
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
    coordinator.set_network_prefixes(config.network_prefixes);
    let mut worker_config = WorkerConfig::new(String::new(), config.data_dir.clone());
    worker_config.local_address = config.outbound_address();
    worker_config.cpus = config.cpus.max(1);
    worker_config.module_cache_bytes_max = config.module_cache_bytes_max;
    worker_config.volunteer = config.volunteer.clone();
    worker_config.upload_bytes_per_second = config.upload_bytes_per_second;
    worker_config.blob_cache_bytes_max = config.blob_cache_bytes_max;
    let execution = Execution::sharing_blobs(worker_config, Some(coordinator.blob_store()))?;
    let owner = coordinator.clone();
    execution.set_blobs_needed(Arc::new(move || owner.blobs_needed()));
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
    let advertised = advertised_address(&config, address)?;
    let loopback = match (&listener, &config.dashboard_listen) {
        (Some(_), Some(dashboard)) => Some(
            LoopbackListener::bind(dashboard)
                .await
                .map_err(|source| PeerError::Listen { address: dashboard.clone(), source })?,
        ),
        _ => None,
    };
    let dashboard_address = loopback.as_ref().and_then(|listener| listener.0.local_addr().ok());
    let now_ms = unix_ms();
    let me = PeerInfo::signed(
        execution.key(),
        advertised.clone(),
        execution.cores() as u32,
        execution.spare_slots() as u32,
        now_ms,
    );
    let join: Vec<PeerAddress> =
        config.join.iter().map(|join| PeerAddress::parse(join)).collect::<Result<_, _>>()?;
    let state = Arc::new(PeerState {
        coordinator: coordinator.clone(),
        execution,
        membership: Mutex::new(membership::Membership::new(me)),
        advertised,
        mesh_rate_limit: Mutex::new(mesh::MeshRateLimit::default()),
        data_dir: config.data_dir.clone(),
        peers_last_saved: Mutex::new(String::new()),
    });
    known_peers::load_into(&state);
    let weak_state = Arc::downgrade(&state);
    state.execution.set_blob_fetcher(Arc::new(move |hash, owner_id| {
        Box::pin(blobs::fetch_from_peers(weak_state.clone(), hash, owner_id))
    }));
    let neighbours = Arc::downgrade(&state);
    state.execution.swarm().set_candidates(Arc::new(move || {
        neighbours.upgrade().map_or_else(Vec::new, |state| blobs::neighbour_addresses(&state))
    }));
    state.coordinator.share_upload_budget(state.execution.swarm().upload_budget());
    let modules = Arc::downgrade(&state);
    state
        .execution
        .swarm()
        .set_module_lookup(Arc::new(move |hash| modules.upgrade()?.coordinator.module(hash)));
    let (stop, stopped) = watch::channel(false);
    let control = serve_control(state.execution.clone(), config.data_dir.clone(), wait_for(stopped.clone()));
    let mut tasks = vec![
        tokio::spawn(control),
        tokio::spawn(puller::run(state.clone(), wait_for(stopped.clone()))),
        tokio::spawn(gossip::run(state.clone(), join, wait_for(stopped.clone()))),
    ];
    if let Some(listener) = listener {
        let routes = mesh::routes(state.clone());
        let mut listeners = Listeners::new(listener, loopback);
        listeners.limits.total_max = config.connections_max;
        let server = serve_with(listeners, coordinator.clone(), routes, wait_for(stopped.clone()));
        tasks.push(tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "the peer's server stopped");
            }
        }));
    }
    Ok(RunningPeer { coordinator, address, dashboard_address, state, stop, tasks })
}

/// The address signed into our records: `--advertise`, else the bound address (which must
/// then be one a peer can dial).
fn advertised_address(
    config: &PeerConfig,
    bound: Option<std::net::SocketAddr>,
) -> Result<Option<String>, PeerError> {
    let Some(bound) = bound else { return Ok(None) };
    if let Some(advertise) = &config.advertise {
        return Ok(Some(check_gossip_address(advertise)?.to_string()));
    }
    if bound.ip().is_unspecified() {
        return Err(PeerError::AdvertiseNeeded { listen: bound.to_string() });
    }
    Ok(Some(check_gossip_address(&bound.to_string())?.to_string()))
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl RunningPeer {
    /// This peer's id (what `--join HOST:PORT#PEERID` pins).
    pub fn peer_id(&self) -> String {
        self.state.execution.peer_id()
    }

    /// curl's `--pinnedpubkey` value for this peer's TLS port.
    pub fn curl_pin(&self) -> String {
        TlsIdentity::new(self.state.execution.key()).curl_pin()
    }
}

/// Runs a peer until `shutdown` resolves. `on_listening` gets the bound address.
pub async fn run_peer(
    config: PeerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(&RunningPeer),
) -> Result<(), PeerError> {
    let peer = start_peer(config).await?;
    on_listening(&peer);
    shutdown.await;
    peer.stop().await;
    Ok(())
}

pub async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

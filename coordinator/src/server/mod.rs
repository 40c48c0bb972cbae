//! The coordinator's shell: one public TLS port (`transport::TlsListener`) with the
//! WebSocket endpoint for workers (`/ws`, which needs a proven peer key) and the JSON HTTP
//! API (`/api/...`, which needs the token), plus an optional plain loopback port with the
//! API and dashboard only; around the sans-IO core and the store.
//!
//! Invariants:
//! - the core's mutex is never held across an `.await` or a store call;
//! - an outcome is acknowledged only after the store committed it;
//! - a bad frame, a bad request or a slow client affects only its own connection;
//! - every connection's buffers are bounded (see `worker_connection`).

mod activity;
mod api;
mod api_blobs;
mod arbitration;
mod connections;
mod dashboard;
mod explain;
mod job_modules;
mod job_runtime;
mod lazy_join_set;
mod metrics;
mod observe;
mod outcomes;
mod output_fetches;
mod owner_blobs;
mod recovery;
mod state;
mod store_writer;
mod submission;
mod token;
mod worker_connection;

pub use api::authorize;
pub use job_runtime::GrantedLease;
pub use outcomes::WorkerSeen;
pub use state::{ApiProblem, Coordinator, CoordinatorError};
pub use submission::validate_submission;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use wasmhive_transport::{ConnectionLimits, LoopbackListener, TlsListener};

/// Largest HTTP request body (a job with its module and inputs inline).
pub const SUBMISSION_BYTES_MAX: usize = 512 << 20;

/// How often expired leases are re-queued.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(500);

/// Where an owner listens: its public TLS port (peers, workers, remote API clients) and,
/// optionally, a plain loopback port for the dashboard and API on its own machine.
pub struct Listeners {
    pub public: TcpListener,
    pub loopback: Option<LoopbackListener>,
    /// Caps on the public port's open connections, in total and per remote address.
    pub limits: ConnectionLimits,
}

impl Listeners {
    /// The public port (and the loopback one, if any) with the default connection caps.
    pub fn new(public: TcpListener, loopback: Option<LoopbackListener>) -> Listeners {
        Listeners { public, loopback, limits: ConnectionLimits::default() }
    }
}

/// Routes a peer adds: `api` on both listeners (token-checked), `peer` on the TLS one only.
#[derive(Default)]
pub struct ExtraRoutes {
    pub api: Router,
    pub peer: Router,
}

/// Serves `coordinator` until `shutdown` resolves.
pub async fn serve(
    listeners: Listeners,
    coordinator: Arc<Coordinator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listeners, coordinator, ExtraRoutes::default(), shutdown).await
}

/// [`serve`] with more routes on the same ports (a peer adds its mesh endpoints).
pub async fn serve_with(
    listeners: Listeners,
    coordinator: Arc<Coordinator>,
    extra: ExtraRoutes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = TlsListener::with_limits(listeners.public, coordinator.tls_identity(), listeners.limits)?;
    let expiry = tokio::spawn(expire_leases_forever(coordinator.clone()));
    let sampling = tokio::spawn(sample_activity_forever(coordinator.clone()));
    let arbitration = tokio::spawn(arbitrate_forever(coordinator.clone()));
    let api = api_routes(coordinator.clone()).merge(extra.api);
    let peer = Router::new()
        .route("/ws", get(worker_connection::upgrade))
        .with_state(coordinator.clone())
        .merge(extra.peer)
        .merge(api.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let loopback = listeners
        .loopback
        .map(|listener| tokio::spawn(wasmhive_transport::serve_connections(listener, api, stopped.clone())));
    let public = tokio::spawn(wasmhive_transport::serve_connections(tls, peer, stopped));
    shutdown.await;
    let _ = stop.send(true);
    let result = public.await.map_err(std::io::Error::other);
    if let Some(loopback) = loopback {
        let _ = loopback.await;
    }
    expiry.abort();
    sampling.abort();
    arbitration.abort();
    result
}

/// The dashboard, metrics and JSON API: served on both listeners.
fn api_routes(coordinator: Arc<Coordinator>) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/metrics", get(dashboard::metrics))
        .route("/api/dashboard", get(dashboard::snapshot))
        .route("/api/events", get(dashboard::events))
        .route("/api/jobs/{job_id}/units", get(dashboard::active_units))
        .route("/api/jobs", post(api::submit_job).get(api::list_jobs))
        .route("/api/jobs/{job_id}", get(api::job_status))
        .route("/api/reputation", get(api::reputation))
        .route("/api/credit", get(api::credit))
        .route("/api/jobs/{job_id}/results", get(api::job_results))
        .route("/api/jobs/{job_id}/progress", get(api::job_progress))
        .route("/api/jobs/{job_id}/reduced", get(api::job_reduced))
        .route("/api/jobs/{job_id}/cancel", post(api::cancel_job))
        .route(
            "/api/blobs/{hash}",
            put(api_blobs::upload_blob).head(api_blobs::has_blob).get(api_blobs::download_blob),
        )
        .layer(DefaultBodyLimit::max(SUBMISSION_BYTES_MAX))
        .with_state(coordinator)
}

async fn sample_activity_forever(coordinator: Arc<Coordinator>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        coordinator.sample_activity();
    }
}

/// Runs the owner's arbitrations whenever the core has disputes waiting.
async fn arbitrate_forever(coordinator: Arc<Coordinator>) {
    loop {
        coordinator.arbitrations_waiting.notified().await;
        let coordinator = coordinator.clone();
        let _ = tokio::task::spawn_blocking(move || coordinator.run_arbitrations()).await;
    }
}

async fn expire_leases_forever(coordinator: Arc<Coordinator>) {
    let mut interval = tokio::time::interval(EXPIRY_INTERVAL);
    loop {
        interval.tick().await;
        coordinator.expire_leases();
    }
}

/// Runs `work` on the blocking pool: it may wait for the store (a commit's fsync under way),
/// which must never hold up the runtime's threads (worker sessions, status requests).
pub(super) async fn off_the_runtime<T: Send + 'static>(
    coordinator: &Arc<Coordinator>,
    work: impl FnOnce(&Coordinator) -> T + Send + 'static,
) -> Result<T, String> {
    let coordinator = coordinator.clone();
    tokio::task::spawn_blocking(move || work(&coordinator))
        .await
        .map_err(|error| format!("the owner's work for this request failed: {error}"))
}

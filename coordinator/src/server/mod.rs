//! The coordinator's shell: one listening port with the WebSocket endpoint for workers
//! (`/ws`) and the JSON HTTP API (`/api/...`), around the sans-IO core and the store.
//!
//! Invariants:
//! - the core's mutex is never held across an `.await` or a store call;
//! - an outcome is acknowledged only after the store committed it;
//! - a bad frame, a bad request or a slow client affects only its own connection;
//! - every connection's buffers are bounded (see `worker_connection`).

mod activity;
mod api;
mod connections;
mod dashboard;
mod explain;
mod job_modules;
mod job_runtime;
mod metrics;
mod observe;
mod state;
mod submission;
mod token;
mod worker_connection;

pub use api::authorize;
pub use state::{ApiProblem, Coordinator, CoordinatorError};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest HTTP request body (a job with its module and inputs inline).
pub const SUBMISSION_BYTES_MAX: usize = 512 << 20;

/// How often expired leases are re-queued.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(500);

/// Serves `coordinator` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    coordinator: Arc<Coordinator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, coordinator, Router::new(), shutdown).await
}

/// [`serve`] with more routes on the same port (a peer adds its mesh endpoint).
pub async fn serve_with(
    listener: TcpListener,
    coordinator: Arc<Coordinator>,
    extra_routes: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let expiry = tokio::spawn(expire_leases_forever(coordinator.clone()));
    let sampling = tokio::spawn(sample_activity_forever(coordinator.clone()));
    let router = Router::new()
        .route("/", get(dashboard::page))
        .route("/metrics", get(dashboard::metrics))
        .route("/api/dashboard", get(dashboard::snapshot))
        .route("/api/events", get(dashboard::events))
        .route("/api/jobs/{job_id}/units", get(dashboard::active_units))
        .route("/ws", get(worker_connection::upgrade))
        .route("/api/jobs", post(api::submit_job).get(api::list_jobs))
        .route("/api/jobs/{job_id}", get(api::job_status))
        .route("/api/reputation", get(api::reputation))
        .route("/api/credit", get(api::credit))
        .route("/api/jobs/{job_id}/results", get(api::job_results))
        .route("/api/jobs/{job_id}/reduced", get(api::job_reduced))
        .route("/api/jobs/{job_id}/cancel", post(api::cancel_job))
        .layer(DefaultBodyLimit::max(SUBMISSION_BYTES_MAX))
        .with_state(coordinator)
        .merge(extra_routes);
    let result = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
    expiry.abort();
    sampling.abort();
    result
}

async fn sample_activity_forever(coordinator: Arc<Coordinator>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        coordinator.sample_activity();
    }
}

async fn expire_leases_forever(coordinator: Arc<Coordinator>) {
    let mut interval = tokio::time::interval(EXPIRY_INTERVAL);
    loop {
        interval.tick().await;
        coordinator.expire_leases();
    }
}

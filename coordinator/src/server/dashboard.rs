//! The owner's observability routes: the dashboard page (`/`), its live snapshot stream
//! (`/api/events`, server-sent events, one snapshot a second), the snapshot itself
//! (`/api/dashboard`), a job's active units (`/api/jobs/{id}/units`) and `/metrics`
//! (Prometheus text). Everything but the page needs the bearer token; the page reads it
//! from its URL fragment (`/#token=...`, never sent to the server) or asks for it.

use super::api::authorize;
use super::state::{ApiProblem, Coordinator};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// Active units listed at most by `/api/jobs/{id}/units`.
const ACTIVE_UNITS_LISTED: usize = 1000;
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);

/// The page, with a Content-Security-Policy that runs only its own script (a fresh nonce
/// per answer), loads nothing from elsewhere, and cannot be framed.
pub async fn page() -> Response {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).expect("the OS random source works");
    let nonce: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    let policy = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; connect-src 'self'; \
         img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    let html = include_str!("dashboard.html").replace("{{NONCE}}", &nonce);
    ([(header::CONTENT_SECURITY_POLICY, policy)], Html(html)).into_response()
}

pub async fn metrics(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    authorize(&coordinator, &headers)?;
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], coordinator.metrics_text()).into_response())
}

pub async fn snapshot(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    authorize(&coordinator, &headers)?;
    Ok(Json(coordinator.dashboard_snapshot()).into_response())
}

pub async fn events(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    authorize(&coordinator, &headers)?;
    let stream = futures_util::stream::unfold((coordinator, true), |(coordinator, first)| async move {
        if !first {
            tokio::time::sleep(SNAPSHOT_INTERVAL).await;
        }
        let snapshot = coordinator.dashboard_snapshot();
        let event = Event::default().event("snapshot").json_data(&snapshot).unwrap_or_default();
        Some((Ok::<_, Infallible>(event), (coordinator, false)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

pub async fn active_units(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Result<Response, ApiProblem> {
    authorize(&coordinator, &headers)?;
    coordinator.status(&job_id).ok_or_else(|| ApiProblem::not_found(&job_id))?;
    Ok(Json(coordinator.active_units(&job_id, ACTIVE_UNITS_LISTED)).into_response())
}

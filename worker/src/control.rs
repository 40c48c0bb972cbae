//! Local control of a running worker or peer: `wasmhive worker status|pause|resume`.
//!
//! An HTTP endpoint on a loopback port only, with its own token; both are written to
//! `DATA/control.json` (readable only by this user) while the process runs, so only the
//! machine's user who runs it can control it. Routes: `GET /status`, `POST /pause`,
//! `POST /resume` (each answers the status), all with `Authorization: Bearer TOKEN`.

use crate::Execution;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmhive_transport::write_private_file;

/// Where a running worker's control endpoint is (`DATA/control.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ControlFile {
    pub address: String,
    pub token: String,
}

pub fn control_file_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.json")
}

struct ControlState {
    execution: Arc<Execution>,
    token: String,
}

/// Serves the control endpoint until `shutdown` resolves, then removes `control.json`.
pub async fn serve_control(
    execution: Arc<Execution>,
    data_dir: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "no local control endpoint (`wasmhive worker status` will not reach this process)");
            return;
        }
    };
    let mut random = [0u8; 16];
    if getrandom::fill(&mut random).is_err() {
        tracing::warn!("no OS randomness for the control token; no local control endpoint");
        return;
    }
    let token: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    let address = listener.local_addr().map(|address| address.to_string()).unwrap_or_default();
    let file = ControlFile { address, token: token.clone() };
    let path = control_file_path(&data_dir);
    let text = serde_json::to_string_pretty(&file).expect("the control file serialises");
    if let Err(error) = write_private_file(&path, &text) {
        tracing::warn!(%error, path = %path.display(), "cannot write the control file; no local control endpoint");
        return;
    }
    let router = axum::Router::new()
        .route("/status", get(status))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .with_state(Arc::new(ControlState { execution, token }));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    wasmhive_transport::serve_connections(listener, router, stopped).await;
    let _ = std::fs::remove_file(&path);
}

fn authorized(state: &ControlState, headers: &HeaderMap) -> bool {
    let presented = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    presented.and_then(|value| value.strip_prefix("Bearer ")) == Some(state.token.as_str())
}

fn refusal() -> Response {
    let message = "missing or wrong token: use `wasmhive worker status|pause|resume --data DIR` as the user running the worker";
    (StatusCode::UNAUTHORIZED, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn status(State(state): State<Arc<ControlState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return refusal();
    }
    Json(state.execution.control_status()).into_response()
}

async fn pause(State(state): State<Arc<ControlState>>, headers: HeaderMap) -> Response {
    set_paused(&state, &headers, true)
}

async fn resume(State(state): State<Arc<ControlState>>, headers: HeaderMap) -> Response {
    set_paused(&state, &headers, false)
}

fn set_paused(state: &ControlState, headers: &HeaderMap, paused: bool) -> Response {
    if !authorized(state, headers) {
        return refusal();
    }
    state.execution.controls().set_paused_by_user(paused);
    Json(state.execution.control_status()).into_response()
}

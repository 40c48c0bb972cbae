//! The JSON HTTP API. Every route needs the bearer token the coordinator keeps in its data
//! directory; a missing or wrong token gets 401 saying where to find it.

use super::off_the_runtime;
use super::state::{ApiProblem, Coordinator};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use wasmhive_protocol::api::{ApiError, JobSubmission, ReducedResult, UnitResult};
use wasmhive_protocol::base64_bytes;

/// Results sent per page of a streamed results answer.
const RESULTS_PAGE_UNITS: u32 = 1000;

impl IntoResponse for ApiProblem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ApiError { error: self.message })).into_response()
    }
}

/// Checks the bearer token; the error says where the token is.
pub fn authorize(coordinator: &Coordinator, headers: &HeaderMap) -> Result<(), ApiProblem> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(token) if coordinator.token_matches(token.trim()) => Ok(()),
        _ => Err(ApiProblem {
            status: 401,
            message: format!(
                "missing or wrong bearer token: the coordinator's token is in {} on its machine; \
                 pass it with --token or WASMHIVE_TOKEN",
                coordinator.token_path().display()
            ),
        }),
    }
}

/// A refused client's body is read (and dropped) up to this much, so the refusal reaches
/// a client that is still sending, rather than a reset connection.
const REFUSED_BODY_DRAIN_BYTES_MAX: usize = 1 << 20;
const REFUSED_BODY_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Checks the token from the headers first: a stranger's body is never kept (at most
/// [`REFUSED_BODY_DRAIN_BYTES_MAX`] of it is read and dropped, for [`REFUSED_BODY_DRAIN_TIME`]).
pub async fn submit_job(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiProblem> {
    if let Err(refusal) = authorize(&coordinator, &headers) {
        drain(body).await;
        return Err(refusal);
    }
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > super::SUBMISSION_BYTES_MAX as u64) {
        drain(body).await;
        return Err(submission_over_limit(super::SUBMISSION_BYTES_MAX));
    }
    let body = read_body_within(body, super::SUBMISSION_BYTES_MAX).await?;
    let submission: JobSubmission = serde_json::from_slice(&body)
        .map_err(|error| ApiProblem::bad_request(format!("the body is not a job submission: {error}")))?;
    let answer = tokio::task::spawn_blocking(move || coordinator.submit(submission))
        .await
        .map_err(ApiProblem::internal)??;
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// The longest a body may pause between two pieces before the request is dropped (a
/// client that stops sending mid-body holds no connection and no buffer for long).
pub(super) const BODY_PAUSE_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a whole body of at most `bytes_max`, with no pause longer than [`BODY_PAUSE_MAX`].
async fn read_body_within(body: axum::body::Body, bytes_max: usize) -> Result<Vec<u8>, ApiProblem> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read = Vec::new();
    loop {
        let piece = tokio::time::timeout(BODY_PAUSE_MAX, stream.next()).await.map_err(|_| ApiProblem {
            status: 408,
            message: format!(
                "the body stopped arriving for {BODY_PAUSE_MAX:?} after {} bytes; send it whole",
                read.len()
            ),
        })?;
        match piece {
            None => return Ok(read),
            Some(Err(error)) => {
                return Err(ApiProblem::bad_request(format!(
                    "the body was cut short after {} bytes: {error}",
                    read.len()
                )));
            }
            Some(Ok(piece)) if read.len() + piece.len() > bytes_max => {
                return Err(submission_over_limit(bytes_max));
            }
            Some(Ok(piece)) => read.extend_from_slice(&piece),
        }
    }
}

fn submission_over_limit(bytes_max: usize) -> ApiProblem {
    ApiProblem {
        status: 413,
        message: format!(
            "the submission is over the owner's {} MiB limit; split the job's inputs into several jobs",
            bytes_max >> 20
        ),
    }
}

pub(super) async fn drain(body: axum::body::Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read = 0;
    let draining = async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read > REFUSED_BODY_DRAIN_BYTES_MAX {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(REFUSED_BODY_DRAIN_TIME, draining).await;
}

pub async fn list_jobs(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    authorize(&coordinator, &headers)?;
    let statuses = off_the_runtime(&coordinator, |coordinator| coordinator.statuses()).await;
    Ok(Json(statuses.map_err(ApiProblem::internal)?).into_response())
}

pub async fn reputation(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    authorize(&coordinator, &headers)?;
    let reputations = off_the_runtime(&coordinator, |coordinator| coordinator.reputations()).await;
    Ok(Json(reputations.map_err(ApiProblem::internal)?).into_response())
}

#[derive(serde::Deserialize)]
pub struct CreditQuery {
    job: Option<String>,
}

pub async fn credit(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<CreditQuery>,
) -> Result<Response, ApiProblem> {
    authorize(&coordinator, &headers)?;
    let credits =
        off_the_runtime(&coordinator, move |coordinator| coordinator.credits(query.job.as_deref())).await;
    Ok(Json(credits.map_err(ApiProblem::internal)??).into_response())
}

pub async fn job_status(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Result<Response, ApiProblem> {
    authorize(&coordinator, &headers)?;
    Ok(Json(status_of(&coordinator, &job_id).await?).into_response())
}

/// A job's status, read off the runtime; 404 naming the job when there is none.
async fn status_of(
    coordinator: &Arc<Coordinator>,
    job_id: &str,
) -> Result<wasmhive_protocol::api::JobStatus, ApiProblem> {
    let asked = job_id.to_string();
    let status = off_the_runtime(coordinator, move |coordinator| coordinator.status(&asked)).await;
    status.map_err(ApiProblem::internal)?.ok_or_else(|| ApiProblem::not_found(job_id))
}

/// How often a progress stream reports a running job.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// `GET /api/jobs/{id}/progress`: the job's status as JSON Lines: one at once, one every
/// [`PROGRESS_INTERVAL`] while it runs, and one the moment it ends, which ends the stream
/// (what `wasmhive submit --wait` follows: no polling, and no wait after the end).
pub async fn job_progress(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Result<Response, ApiProblem> {
    authorize(&coordinator, &headers)?;
    let first = status_of(&coordinator, &job_id).await?;
    let lines = futures_util::stream::unfold(Some((coordinator, job_id, Some(first))), |state| async move {
        let (coordinator, job_id, ready) = state?;
        let status = match ready {
            Some(status) => status,
            None => {
                tokio::select! {
                    () = coordinator.job_ended(&job_id) => {}
                    () = tokio::time::sleep(PROGRESS_INTERVAL) => {}
                }
                status_of(&coordinator, &job_id).await.ok()?
            }
        };
        let mut line = serde_json::to_vec(&status).expect("statuses serialise");
        line.push(b'\n');
        let running = status.state == wasmhive_protocol::api::JobState::Running;
        let next = running.then_some((coordinator, job_id, None));
        Some((Ok::<_, std::io::Error>(line), next))
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}

pub async fn cancel_job(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Result<Response, ApiProblem> {
    authorize(&coordinator, &headers)?;
    let cancelled = off_the_runtime(&coordinator, move |coordinator| coordinator.cancel(&job_id)).await;
    Ok(Json(cancelled.map_err(ApiProblem::internal)??).into_response())
}

/// JSON Lines, one [`UnitResult`] per decided unit in unit order, streamed page by page.
pub async fn job_results(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Result<Response, ApiProblem> {
    authorize(&coordinator, &headers)?;
    coordinator.status(&job_id).ok_or_else(|| ApiProblem::not_found(&job_id))?;
    let pages = futures_util::stream::unfold(Some(0u64), move |from_unit| {
        let coordinator = coordinator.clone();
        let job_id = job_id.clone();
        async move {
            let from_unit = from_unit?;
            let page = tokio::task::spawn_blocking(move || {
                coordinator.results_page(&job_id, from_unit, RESULTS_PAGE_UNITS)
            })
            .await
            .ok()?
            .ok()?;
            if page.is_empty() {
                return None;
            }
            let next = page.last().map(|(_, result)| result.unit_index + 1);
            let mut lines = Vec::new();
            for (label, result) in page {
                serde_json::to_writer(&mut lines, &unit_result(label, result)).expect("results serialise");
                lines.push(b'\n');
            }
            Some((Ok::<_, std::io::Error>(lines), next))
        }
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(pages)).into_response())
}

/// The job's reduced result; 404 saying why while there is none.
pub async fn job_reduced(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Result<Response, ApiProblem> {
    authorize(&coordinator, &headers)?;
    let state = coordinator.status(&job_id).ok_or_else(|| ApiProblem::not_found(&job_id))?.reduced;
    let reduction = coordinator.reduction(&job_id)?.ok_or_else(|| ApiProblem {
        status: 404,
        message: match state {
            None => {
                format!("job {job_id} has no reducer; its results are per unit (`wasmhive results {job_id}`)")
            }
            Some(state) => format!("job {job_id} has no reduced result yet: {state}"),
        },
    })?;
    let (output, output_base64) = text_or_base64(reduction.output);
    Ok(Json(ReducedResult {
        job_id,
        status: reduction.status,
        output,
        output_base64,
        message: reduction.message,
    })
    .into_response())
}

fn text_or_base64(bytes: Vec<u8>) -> (Option<String>, Option<String>) {
    match String::from_utf8(bytes) {
        Ok(text) => (Some(text), None),
        Err(error) => (None, Some(base64_bytes::encode(error.as_bytes()))),
    }
}

fn unit_result(label: String, result: crate::store::StoredResult) -> UnitResult {
    let (output, output_base64) = text_or_base64(result.output);
    UnitResult {
        unit: result.unit_index,
        input: label,
        state: if result.failure.is_none() { "success" } else { "failed" }.to_string(),
        status: result.status,
        output: output.filter(|_| result.digest.is_some() && result.output_blob.is_none()),
        output_base64,
        output_blob: result.output_blob,
        digest: result.digest,
        replicas: result.replicas,
        replica_peers: result.replica_workers,
        failure: result.failure,
    }
}

//! Blobs over the API: `PUT /api/blobs/{hash}` streams a blob into the owner's blob store
//! (on disk, never whole in memory); `HEAD /api/blobs/{hash}` says whether it is there;
//! `GET /api/blobs/{hash}` streams it back (large outputs are blobs).
//!
//! A blob is kept only when the sender holds the token, said its size (Content-Length, at
//! most [`BLOB_BYTES_MAX`]), sent every byte without pausing longer than the body pause
//! limit, and the bytes hash to the name it was sent under; otherwise nothing is kept and
//! the answer says which of these failed.

use super::api::{authorize, drain};
use super::state::{ApiProblem, Coordinator};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::io::Read;
use std::sync::Arc;
use wasmhive_blobs::BlobError;
use wasmhive_protocol::Hash;

/// The largest blob one upload may carry.
pub const BLOB_BYTES_MAX: u64 = 64 << 30;

/// Pieces of the body in flight between the connection and the thread writing the file.
const PIECES_IN_FLIGHT: usize = 8;

pub async fn upload_blob(
    State(coordinator): State<Arc<Coordinator>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiProblem> {
    if let Err(refusal) = authorize(&coordinator, &headers).and_then(|()| blob_name(&name).map(drop)) {
        drain(body).await;
        return Err(refusal);
    }
    let hash = blob_name(&name)?;
    let Some(length) = content_length(&headers) else {
        drain(body).await;
        let message = "say the blob's size in a Content-Length header (uploads are not chunked)";
        return Err(ApiProblem { status: 411, message: message.into() });
    };
    if length > BLOB_BYTES_MAX {
        drain(body).await;
        let message = format!("the blob is over the owner's {} GiB limit per blob", BLOB_BYTES_MAX >> 30);
        return Err(ApiProblem { status: 413, message });
    }
    if coordinator.blobs.has(&hash) {
        drain(body).await;
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "hash": hash, "size": length, "stored": false })),
        )
            .into_response());
    }
    let (sender, receiver) = tokio::sync::mpsc::channel(PIECES_IN_FLIGHT);
    let store = coordinator.clone();
    let reader = BodyReader { receiver, piece: Bytes::new() };
    let import = tokio::task::spawn_blocking(move || {
        let imported = store.blobs.import_as(reader, length, hash);
        if imported.is_ok() {
            store.evict_blobs(Some(hash));
        }
        imported
    });
    let pumped = pump(body, sender).await;
    let imported = import.await.map_err(ApiProblem::internal)?;
    pumped?;
    match imported {
        Ok(_) => Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({ "hash": hash, "size": length, "stored": true })),
        )
            .into_response()),
        Err(error @ BlobError::WrongHash { .. }) => {
            Err(ApiProblem { status: 422, message: error.to_string() })
        }
        Err(error @ BlobError::WrongLength { .. }) => Err(ApiProblem::bad_request(error.to_string())),
        Err(error) => Err(ApiProblem::internal(error)),
    }
}

pub async fn has_blob(
    State(coordinator): State<Arc<Coordinator>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    let (_, size) = blob_here(&coordinator, &headers, &name)?;
    Ok((StatusCode::OK, [(header::CONTENT_LENGTH, size.to_string())]).into_response())
}

/// The blob a request names and its size, if the token is right and the blob is here.
fn blob_here(coordinator: &Coordinator, headers: &HeaderMap, name: &str) -> Result<(Hash, u64), ApiProblem> {
    authorize(coordinator, headers)?;
    let hash = blob_name(name)?;
    match coordinator.blobs.size(&hash) {
        Some(size) => Ok((hash, size)),
        None => Err(ApiProblem { status: 404, message: format!("no blob {}", hash.to_hex()) }),
    }
}

/// Streams a blob from disk, a piece at a time (a reading thread, a bounded channel).
pub async fn download_blob(
    State(coordinator): State<Arc<Coordinator>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    let (hash, size) = blob_here(&coordinator, &headers, &name)?;
    let file = coordinator.blobs.open_blob(&hash).map_err(|error| ApiProblem {
        status: 404,
        message: format!("blob {} cannot be read: {error}", hash.to_hex()),
    })?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(PIECES_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut reader = std::io::Read::take(file, size);
        loop {
            let mut piece = vec![0; wasmhive_blobs::PIECE_BYTES as usize];
            let read = match reader.read(&mut piece) {
                Ok(0) => return,
                Ok(read) => Ok(Bytes::from(piece).slice(..read)),
                Err(error) => Err(error),
            };
            let failed = read.is_err();
            if sender.blocking_send(read).is_err() || failed {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async {
        receiver.recv().await.map(|piece| (piece, receiver))
    });
    Ok((
        [
            (header::CONTENT_LENGTH, size.to_string()),
            (header::CONTENT_TYPE, "application/octet-stream".into()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn blob_name(name: &str) -> Result<Hash, ApiProblem> {
    name.parse().map_err(|_| {
        ApiProblem::bad_request(format!(
            "{:?} is not a blob name: a blob is named by its blake3 hash, 64 hex digits",
            name.chars().take(80).collect::<String>()
        ))
    })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Moves the body's pieces to the writing thread; an error says why the body stopped.
/// Dropping the sender ends the writer's input: a short body is then a short import.
async fn pump(body: Body, sender: tokio::sync::mpsc::Sender<Bytes>) -> Result<(), ApiProblem> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read: u64 = 0;
    loop {
        let next = tokio::time::timeout(super::api::BODY_PAUSE_MAX, stream.next()).await;
        let piece = match next {
            Err(_) => {
                let message = format!("the body stopped arriving after {read} bytes; send it again");
                return Err(ApiProblem { status: 408, message });
            }
            Ok(None) => return Ok(()),
            Ok(Some(Err(error))) => {
                return Err(ApiProblem::bad_request(format!(
                    "the body was cut short after {read} bytes: {error}"
                )));
            }
            Ok(Some(Ok(piece))) => piece,
        };
        read += piece.len() as u64;
        if sender.send(piece).await.is_err() {
            return Ok(()); // the writer stopped (the body is longer than announced)
        }
    }
}

/// The body as a blocking reader for the thread that writes the blob.
struct BodyReader {
    receiver: tokio::sync::mpsc::Receiver<Bytes>,
    piece: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.piece.is_empty() {
            match self.receiver.blocking_recv() {
                Some(piece) => self.piece = piece,
                None => return Ok(0),
            }
        }
        let count = buffer.len().min(self.piece.len());
        buffer[..count].copy_from_slice(&self.piece.split_to(count));
        Ok(count)
    }
}

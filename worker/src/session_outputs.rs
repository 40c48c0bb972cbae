//! Outputs larger than [`OUTPUT_INLINE_BYTES_MAX`] travel as blobs: the unit's thread
//! stores the output in the worker's blob store and reports its hash and size; the owner
//! asks for the pieces it lacks (`want_piece`) over the same session before it records the
//! outcome, so a second replica with the same bytes sends none of them.
//!
//! Invariants: a reported output blob is held (never evicted) until the owner
//! acknowledges its outcome, and is spent from then on (evicted first); the owner may ask only for pieces of outputs reported on
//! this worker and not yet acknowledged, at most [`OUTPUT_PIECES_IN_FLIGHT_MAX`] at once;
//! pieces are read and paced by the upload budget off the session loop, which only sends
//! them.

use crate::connection::Socket;
use crate::session::Worker;
use crate::session_lost::SessionLost;
use futures_util::SinkExt;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_blobs::{BlobHold, BlobStore};
use wasmhive_protocol::{BlobRef, Hash, OUTPUT_INLINE_BYTES_MAX, OutcomeReport, Status, piece_frame_start};

/// Pieces of output an owner may have asked for and not yet received.
pub const OUTPUT_PIECES_IN_FLIGHT_MAX: usize = 8;

/// A piece read for the owner: the session it was asked in, the blob and index, and the
/// piece's frame or why it could not be read.
pub(crate) struct OutputPiece {
    session: u64,
    hash: Hash,
    index: u64,
    encoded: Result<Vec<u8>, String>,
}

/// Moves an output above the inline limit into the blob store (on the unit's thread) and
/// holds it; the report then names the blob. A blob that cannot be stored makes the run a
/// host failure (retried elsewhere, never a result).
pub(crate) fn output_as_blob(
    blobs: &Arc<BlobStore>,
    mut report: OutcomeReport,
) -> (OutcomeReport, Option<BlobHold>) {
    let size = report.output.len() as u64;
    if size <= OUTPUT_INLINE_BYTES_MAX {
        return (report, None);
    }
    let stored = blobs.import(report.output.as_slice(), size).map_err(|error| error.to_string());
    let held = stored.and_then(|hash| {
        let hold = blobs.hold([hash]);
        // Held before this check: an eviction between import and hold shows here.
        blobs
            .has(&hash)
            .then_some((hash, hold))
            .ok_or_else(|| "evicted at once: the blob cache is too small".into())
    });
    report.output = Vec::new();
    match held {
        Ok((hash, hold)) => {
            report.output_blob = Some(BlobRef { hash, size });
            (report, Some(hold))
        }
        Err(reason) => {
            tracing::warn!(lease = report.lease_id, %reason, "an output could not be stored as a blob; reported as a host failure");
            report.status = Status::HostTimeout;
            report.fuel_used = None;
            (report, None)
        }
    }
}

impl Worker {
    /// Remembers the blob a finished lease's output is, until the owner acknowledges it.
    pub(crate) fn output_reported(&mut self, lease_id: u64, hold: BlobHold, blob: BlobRef) {
        self.output_holds.insert(lease_id, (blob.hash, hold));
    }

    /// Lets go of the outputs of acknowledged outcomes: the owner has them, and no one else
    /// asks a worker for its outputs, so they are spent.
    pub(crate) fn outputs_acknowledged(&mut self, lease_ids: &[u64]) {
        let mut spent = false;
        for lease_id in lease_ids {
            if let Some((hash, _hold)) = self.output_holds.remove(lease_id) {
                self.execution.blobs.mark_spent(&hash);
                spent = true;
            }
        }
        if spent {
            self.evict_if_over_budget();
        }
    }

    /// The owner asks for piece `index` of an output: read it (and wait for the upload
    /// budget) on another task; [`Worker::send_output_piece`] sends it.
    pub(crate) fn output_piece_asked(&mut self, hash: Hash, index: u64) -> Result<(), SessionLost> {
        if !self.output_holds.values().any(|(held, _)| *held == hash) {
            return Err(SessionLost::NotOurOutput(hash.short()));
        }
        if self.output_pieces_in_flight >= OUTPUT_PIECES_IN_FLIGHT_MAX {
            return Err(SessionLost::TooManyPiecesAsked(OUTPUT_PIECES_IN_FLIGHT_MAX));
        }
        self.output_pieces_in_flight += 1;
        let (blobs, budget) = (self.execution.blobs.clone(), self.execution.swarm().upload_budget());
        let (answers, session) = (self.output_pieces_sender.clone(), self.output_session);
        tokio::spawn(async move {
            let read = tokio::task::spawn_blocking(move || {
                let mut frame = piece_frame_start(&hash, index);
                blobs
                    .encode_piece(&hash, index, &mut frame)
                    .map(|()| frame)
                    .map_err(|error| error.to_string())
            });
            let encoded = read.await.unwrap_or_else(|error| Err(error.to_string()));
            if let Ok(encoded) = &encoded {
                let wait = budget
                    .lock()
                    .expect("upload budget lock")
                    .reserve(encoded.len() as u64, std::time::Instant::now());
                tokio::time::sleep(wait).await;
            }
            let _ = answers.send(OutputPiece { session, hash, index, encoded });
        });
        Ok(())
    }

    /// Sends a piece read for the owner (unless it was asked in a session since lost).
    pub(crate) async fn send_output_piece(
        &mut self,
        socket: &mut Socket,
        piece: OutputPiece,
    ) -> Result<(), SessionLost> {
        let OutputPiece { session, hash, index, encoded } = piece;
        if session != self.output_session {
            return Ok(());
        }
        self.output_pieces_in_flight -= 1;
        let encoded = encoded.map_err(|reason| {
            SessionLost::OutputBlob(format!("piece {index} of {}: {reason}", hash.short()))
        })?;
        socket.send(Frame::Binary(encoded.into())).await?;
        Ok(())
    }

    /// The session ended: pieces asked in it are not sent to the next one (whose owner
    /// asks again for what it still lacks).
    pub(crate) fn output_session_lost(&mut self) {
        self.output_session += 1;
        self.output_pieces_in_flight = 0;
    }
}

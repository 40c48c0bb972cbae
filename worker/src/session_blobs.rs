//! The session's side of blob fetches (`input_blobs.rs` decides; this does the IO): a
//! lease waits until every blob it reads is here; pieces are asked of the owner on the
//! session and of other peers through the swarm, whose answers come back as events.

use crate::connection::Socket;
use crate::execution::LeaseToRun;
use crate::input_blobs::{FetchEvent, Progress};
use crate::session::{Worker, send_all};
use crate::session_lost::SessionLost;
use crate::swarm::Question;
use std::time::Instant;
use wasmhive_blobs::PieceError;
use wasmhive_protocol::BlobRef;

impl Worker {
    /// Runs a lease once every blob it reads is here (its input and the job's shared
    /// files), fetching them one at a time: a lease waits on the first one missing.
    pub(crate) async fn fetch_or_run(
        &mut self,
        socket: &mut Socket,
        lease: LeaseToRun,
    ) -> Result<(), SessionLost> {
        // Leases whose last blob arrived meanwhile wait here (most leases need none).
        let mut leases = Vec::new();
        let mut next = Some(lease);
        while let Some(lease) = next.take().or_else(|| leases.pop()) {
            match first_missing_blob(&self.execution.blobs, &lease) {
                Some(blob) => {
                    let mut progress =
                        self.input_fetches.lease_arrived(&self.execution.blobs, blob, lease)?;
                    self.start_swarm_work(&mut progress);
                    send_all(socket, progress.send).await?;
                    leases.extend(progress.ready);
                }
                None => self.input_ready(socket, lease).await?,
            }
        }
        Ok(())
    }

    /// Sends what a fetch asks of the owner and the swarm; leases whose blob is complete go on.
    pub(crate) async fn input_progress(
        &mut self,
        socket: &mut Socket,
        mut progress: Progress<LeaseToRun>,
    ) -> Result<(), SessionLost> {
        self.start_swarm_work(&mut progress);
        send_all(socket, progress.send).await?;
        for lease in progress.ready {
            self.fetch_or_run(socket, lease).await?;
        }
        Ok(())
    }

    pub(crate) async fn swarm_event(
        &mut self,
        socket: &mut Socket,
        event: FetchEvent,
    ) -> Result<(), SessionLost> {
        let progress = self.input_fetches.swarm_event(event, Instant::now())?;
        self.input_progress(socket, progress).await
    }

    pub(crate) async fn refresh_fetches(&mut self, socket: &mut Socket) -> Result<(), SessionLost> {
        let progress = self.input_fetches.refresh(Instant::now())?;
        self.input_progress(socket, progress).await
    }

    /// Drops the peers a fetch caught misbehaving, asks peers its questions and looks for
    /// sources, each answer coming back as a [`FetchEvent`].
    fn start_swarm_work(&self, progress: &mut Progress<LeaseToRun>) {
        for write in progress.write.drain(..) {
            // Verifying and writing a piece takes a blocking thread, not the session's.
            let events = self.swarm_events_sender.clone();
            let (hash, index, from) = (write.hash, write.index, write.from.clone());
            tokio::spawn(async move {
                let event =
                    tokio::task::spawn_blocking(move || write.write()).await.unwrap_or_else(|error| {
                        let reason = format!("writing it failed: {error}");
                        FetchEvent::Written {
                            hash,
                            index,
                            from,
                            result: Err(PieceError::Invalid { index, reason }),
                        }
                    });
                let _ = events.send(event);
            });
        }
        for download in progress.finish.drain(..) {
            let events = self.swarm_events_sender.clone();
            tokio::spawn(async move {
                let hash = download.hash();
                let finished =
                    tokio::task::spawn_blocking(move || download.finish_unsynced().map(drop)).await;
                let result = match finished {
                    Ok(result) => result.map_err(|error| error.to_string()),
                    Err(error) => Err(format!("finishing the download failed: {error}")),
                };
                let _ = events.send(FetchEvent::Finished { hash, result });
            });
        }
        if !progress.fetched.is_empty() {
            progress.fetched.clear();
            self.evict_if_over_budget();
        }
        for (peer_id, reason) in progress.drop_peers.drain(..) {
            self.execution.swarm.drop_peer(&peer_id, &reason);
        }
        for (peer, question) in progress.ask.drain(..) {
            let events = self.swarm_events_sender.clone();
            tokio::spawn(async move {
                let answer = peer.ask(question).await;
                let (Question::Holding(hash) | Question::Piece(hash, _) | Question::Module(hash)) = question;
                let _ = events.send(FetchEvent::Answer { hash, peer_id: peer.peer_id, question, answer });
            });
        }
        for hash in progress.seek_sources.drain(..) {
            let (execution, events, owner_id) =
                (self.execution.clone(), self.swarm_events_sender.clone(), self.owner_id.clone());
            tokio::spawn(async move {
                let peers = execution.swarm.sources(&execution.dialer, &owner_id).await;
                let _ = events.send(FetchEvent::Sources { hash, peers });
            });
        }
    }

    /// Evicts blobs off the session's thread when the store is over its budget or its
    /// allowance for spent inputs (checked here first: it costs no IO).
    pub(crate) fn evict_if_over_budget(&self) {
        if self.execution.blobs.over_budget() {
            let execution = self.execution.clone();
            tokio::task::spawn_blocking(move || evict_unheld_blobs(&execution));
        }
    }
}

/// Keeps the blob store within its budget (`--blob-cache`): spent inputs beyond their
/// allowance, then the least recently used blobs, that no queued or running lease holds
/// (and, on a peer, no running job of its own reads).
fn evict_unheld_blobs(execution: &crate::Execution) {
    let needed = match execution.blobs_needed.get() {
        Some(needed_elsewhere) => match needed_elsewhere() {
            Some(needed) => needed,
            None => return,
        },
        None => std::collections::HashSet::new(),
    };
    match execution.blobs.evict_to_budget(&needed) {
        Ok(removed) if !removed.is_empty() => {
            let removed: Vec<String> = removed.iter().map(wasmhive_protocol::Hash::short).collect();
            tracing::info!(?removed, "blobs evicted to stay within --blob-cache");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not evict blobs"),
    }
}

/// The first blob `lease` reads that is not on this host: its input, then the job's
/// shared files in order.
fn first_missing_blob(blobs: &wasmhive_blobs::BlobStore, lease: &LeaseToRun) -> Option<BlobRef> {
    let shared = lease.terms.shared.iter().map(|file| BlobRef { hash: file.hash, size: file.size });
    lease.lease.input_blob.into_iter().chain(shared).find(|blob| !blobs.has(&blob.hash))
}

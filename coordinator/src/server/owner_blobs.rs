//! The owner's blobs: its store (shared with a peer's worker side), eviction within
//! `--blob-cache` sparing what running jobs read, and `--upload-rate` for pieces it sends.

use super::Coordinator;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmhive_blobs::{BlobStore, UploadBudget};
use wasmhive_protocol::Hash;

impl Coordinator {
    /// Blobs a running job of this owner reads (never evicted); `None` when the store
    /// cannot say (then nothing is evicted).
    pub fn blobs_needed(&self) -> Option<HashSet<Hash>> {
        match self.store.lock().expect("store lock").blobs_of_running_jobs() {
            Ok(needed) => Some(needed),
            Err(error) => {
                tracing::warn!(%error, "cannot list the blobs running jobs need; nothing evicted");
                None
            }
        }
    }

    /// Keeps the blob store within its budget, sparing every running job's blobs and
    /// `also_needed` (a blob just uploaded for a job not yet submitted). Run on a blocking
    /// thread: it lists and removes files.
    pub fn evict_blobs(&self, also_needed: Option<Hash>) {
        if !self.blobs.over_budget() {
            return;
        }
        let Some(mut needed) = self.blobs_needed() else { return };
        needed.extend(also_needed);
        match self.blobs.evict_to_budget(&needed) {
            Ok(removed) if !removed.is_empty() => {
                let removed: Vec<String> = removed.iter().map(Hash::short).collect();
                tracing::info!(?removed, "blobs no running job needs evicted to stay within the budget");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not evict blobs"),
        }
    }

    /// The owner's blobs (a peer's worker side shares them: one store per data directory).
    pub fn blob_store(&self) -> Arc<BlobStore> {
        self.blobs.clone()
    }

    /// Sends blob pieces to workers within `budget` (`--upload-rate`; a peer passes the
    /// one its swarm uses). Set once; later calls change nothing.
    pub fn share_upload_budget(&self, budget: Arc<Mutex<UploadBudget>>) {
        let _ = self.upload_budget.set(budget);
    }

    /// Keeps at most `bytes` of blobs no running job reads (`--blob-cache`).
    pub fn set_blob_budget(&self, bytes: u64) {
        self.blobs.set_budget_bytes(bytes);
    }

    /// Sends blob pieces to workers at most `bytes_per_second` (`wasmhive coordinator
    /// --upload-rate`).
    pub fn set_upload_rate(&self, bytes_per_second: u64) {
        let budget = UploadBudget::new(Some(bytes_per_second));
        self.share_upload_budget(Arc::new(Mutex::new(budget)));
    }

    /// How long to wait before sending `bytes` of blob pieces (and reserves them).
    pub(super) fn reserve_upload(&self, bytes: u64) -> std::time::Duration {
        self.upload_budget.get().map_or(std::time::Duration::ZERO, |budget| {
            budget.lock().expect("upload budget lock").reserve(bytes, Instant::now())
        })
    }
}

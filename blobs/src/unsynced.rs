//! Downloads finished without an fsync, and what makes that safe.
//!
//! A worker's blob cache holds copies of blobs its owner (and the swarm) still have, so
//! syncing each 4 MiB download before a unit may read it buys nothing but time (0.7 s of a
//! 4 s data workload). Invariant: a complete blob that was never synced is listed only
//! while the marker file `unsynced-downloads` is on disk, and the marker is durable before
//! the first such blob is moved into `complete/`. So:
//! - a store that opens with the marker present (the last process did not close it
//!   cleanly: kill -9, a crash, a power cut) checks every complete blob against its hashes
//!   and removes the ones that no longer match, before anything can read them;
//! - a store dropped normally syncs every complete blob, then removes the marker.
//!
//! Limits: the check after an unclean stop reads every complete blob once (a 16 GiB cache
//! takes about as long as reading 16 GiB) before the store opens; a clean close opens and
//! syncs every complete blob, which costs little for blobs already on disk.

use crate::pieces::tree_of;
use crate::store::{BlobError, BlobStore, io_error};
use bao_tree::ChunkRanges;
use bao_tree::io::outboard::PreOrderOutboard;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

pub(crate) const UNSYNCED_MARKER: &str = "unsynced-downloads";

impl BlobStore {
    /// Blobs found torn and removed when this store opened after an unclean stop.
    pub fn removed_after_unclean_stop(&self) -> usize {
        self.removed_after_unclean_stop.load(Ordering::Relaxed)
    }

    /// At open: with the marker present, every complete blob is checked; returns how many
    /// were removed.
    pub(crate) fn check_blobs_after_unclean_stop(&self) -> Result<usize, BlobError> {
        if !self.root.join(UNSYNCED_MARKER).exists() {
            return Ok(0);
        }
        let mut removed = 0;
        for (hash, size) in self.complete_blobs_by_age()? {
            if !self.complete_blob_verifies(&hash, size) {
                self.remove(&hash)?;
                removed += 1;
            }
        }
        self.unsynced_marker_written.store(true, Ordering::Relaxed);
        Ok(removed)
    }

    /// Makes the marker durable (once per store) before an unsynced blob is listed.
    pub(crate) fn mark_unsynced_downloads(&self) -> Result<(), BlobError> {
        if self.unsynced_marker_written.load(Ordering::Relaxed) {
            return Ok(());
        }
        let marker = self.root.join(UNSYNCED_MARKER);
        File::create(&marker).and_then(|file| file.sync_all()).map_err(io_error("writing", &marker))?;
        sync_folder(&self.root).map_err(io_error("syncing", &self.root))?;
        self.unsynced_marker_written.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn complete_blob_verifies(&self, hash: &crate::Hash, size: u64) -> bool {
        let (data_path, outboard_path) = self.complete_paths(hash);
        let (Ok(data), Ok(outboard_file)) = (File::open(data_path), File::open(outboard_path)) else {
            return false;
        };
        let outboard = PreOrderOutboard {
            root: blake3::Hash::from_bytes(hash.0),
            tree: tree_of(size),
            data: outboard_file,
        };
        bao_tree::io::sync::encode_ranges_validated(&data, &outboard, &ChunkRanges::all(), io::sink()).is_ok()
    }

    /// Syncs every complete blob and its outboard, then removes the marker.
    fn sync_blobs_and_clear_marker(&self) -> io::Result<()> {
        let blobs = self.complete_blobs_by_age().map_err(io::Error::other)?;
        for (hash, _) in blobs {
            let (data, outboard) = self.complete_paths(&hash);
            File::open(data)?.sync_all()?;
            File::open(outboard)?.sync_all()?;
        }
        sync_folder(&self.root.join("complete"))?;
        std::fs::remove_file(self.root.join(UNSYNCED_MARKER))?;
        sync_folder(&self.root)
    }
}

impl Drop for BlobStore {
    /// A clean close. If it fails, the marker stays and the next open checks every blob.
    fn drop(&mut self) {
        if self.unsynced_marker_written.load(Ordering::Relaxed) {
            let _ = self.sync_blobs_and_clear_marker();
        }
    }
}

fn sync_folder(folder: &Path) -> io::Result<()> {
    File::open(folder)?.sync_all()
}

//! Lease inputs that are blobs: fetched from the owner piece by piece (`want_piece`), each
//! piece verified against the blob's hash as it arrives (`wasmhive-blobs`), kept on disk,
//! and the leases that wait for them released once complete (a unit reads its input from
//! disk when it starts: queued leases hold no input in memory).
//!
//! Invariants:
//! - a lease whose input blob is not here waits; it runs only with the verified bytes;
//! - only pieces asked for are accepted, and a piece that does not verify ends the session
//!   with its reason (an owner that sends bad bytes is not trusted further);
//! - at most [`PIECES_IN_FLIGHT`] pieces per blob are asked for at once, and no blob
//!   above [`INPUT_BLOB_BYTES_MAX`] is fetched at all (`session.rs` hands such a lease
//!   back); a unit reads its input from the blob on disk as it runs (stdin or `/input`),
//!   so an input's size does not count against the memory cap;
//! - a lost connection forgets the fetches but not the verified pieces on disk: the next
//!   session's download resumes from them.

use crate::session_lost::SessionLost;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use wasmhive_blobs::{BlobStore, Download};
#[cfg(doc)]
use wasmhive_protocol::INPUT_BLOB_BYTES_MAX;
use wasmhive_protocol::{BlobRef, Hash, Message};

/// Pieces of one blob asked for and not yet arrived, at most.
pub const PIECES_IN_FLIGHT: usize = 8;

/// Blobs being fetched, with the leases (of type `L`) waiting for each.
pub struct InputFetches<L> {
    fetches: HashMap<Hash, Fetch<L>>,
}

struct Fetch<L> {
    download: Download,
    asked: BTreeSet<u64>,
    waiting: Vec<L>,
}

/// What a piece or a lease led to: messages to send, and leases whose input is now on disk.
pub struct Progress<L> {
    pub send: Vec<Message>,
    pub ready: Vec<L>,
}

impl<L> Default for InputFetches<L> {
    fn default() -> Self {
        InputFetches { fetches: HashMap::new() }
    }
}

impl<L> InputFetches<L> {
    /// A lease whose input is `blob`: ready at once when the blob is here, else it waits
    /// for the fetch (started now, or already under way).
    pub fn lease_arrived(
        &mut self,
        store: &Arc<BlobStore>,
        blob: BlobRef,
        lease: L,
    ) -> Result<Progress<L>, SessionLost> {
        if store.has(&blob.hash) {
            return Ok(Progress { send: Vec::new(), ready: vec![lease] });
        }
        if let Some(fetch) = self.fetches.get_mut(&blob.hash) {
            fetch.waiting.push(lease);
            return Ok(Progress { send: Vec::new(), ready: Vec::new() });
        }
        let download = store
            .download(blob.hash, blob.size)
            .map_err(|error| SessionLost::InputBlob(error.to_string()))?;
        let mut fetch = Fetch { download, asked: BTreeSet::new(), waiting: vec![lease] };
        if fetch.download.is_complete() {
            // Every piece was already here from an earlier session.
            return Self::complete(fetch);
        }
        let send = fetch.ask_more(blob.hash);
        self.fetches.insert(blob.hash, fetch);
        Ok(Progress { send, ready: Vec::new() })
    }

    /// Piece `index` of blob `hash` arrived: verified and written, then more pieces are
    /// asked for, or the waiting leases get the complete blob.
    pub fn piece_arrived(
        &mut self,
        hash: Hash,
        index: u64,
        encoded: &[u8],
    ) -> Result<Progress<L>, SessionLost> {
        let Some(fetch) = self.fetches.get_mut(&hash) else {
            return Err(SessionLost::UnaskedBlob(format!("{} (piece {index})", hash.short())));
        };
        if !fetch.asked.remove(&index) {
            return Err(SessionLost::UnaskedBlob(format!("{} (piece {index})", hash.short())));
        }
        fetch
            .download
            .write_piece(index, encoded)
            .map_err(|error| SessionLost::BadPiece(error.to_string()))?;
        if !fetch.download.is_complete() {
            let send = fetch.ask_more(hash);
            return Ok(Progress { send, ready: Vec::new() });
        }
        let fetch = self.fetches.remove(&hash).expect("found above");
        Self::complete(fetch)
    }

    fn complete(fetch: Fetch<L>) -> Result<Progress<L>, SessionLost> {
        fetch.download.finish().map_err(|error| SessionLost::InputBlob(error.to_string()))?;
        Ok(Progress { send: Vec::new(), ready: fetch.waiting })
    }

    /// Leases waiting for an input, to drop those cancelled or hand them back.
    pub fn waiting_mut(&mut self) -> impl Iterator<Item = &mut Vec<L>> {
        self.fetches.values_mut().map(|fetch| &mut fetch.waiting)
    }

    pub fn waiting_count(&self) -> usize {
        self.fetches.values().map(|fetch| fetch.waiting.len()).sum()
    }

    /// Forgets every fetch and hands back the leases that waited (verified pieces stay on
    /// disk for the next download of the same blob).
    pub fn drain(&mut self) -> Vec<L> {
        self.fetches.drain().flat_map(|(_, fetch)| fetch.waiting).collect()
    }
}

impl<L> Fetch<L> {
    /// `want_piece` messages for missing pieces not yet asked for, up to the window.
    fn ask_more(&mut self, hash: Hash) -> Vec<Message> {
        let room = PIECES_IN_FLIGHT.saturating_sub(self.asked.len());
        let next: Vec<u64> =
            self.download.missing().filter(|index| !self.asked.contains(index)).take(room).collect();
        self.asked.extend(&next);
        next.into_iter().map(|index| Message::WantPiece { hash, index }).collect()
    }
}

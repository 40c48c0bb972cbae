//! A blob being fetched piece by piece, from any number of peers, across restarts.
//!
//! Files under `partial/`: `<hash>.data` (the blob's bytes, holes where pieces are
//! missing), `<hash>.obao` (its outboard, filled in as pieces verify) and `<hash>.have`
//! (the index of every verified piece, 8 bytes little-endian each, appended after the
//! piece's bytes were written). On resume every listed piece is checked again against its
//! hashes, so a piece whose bytes a crash lost is simply fetched again.

use crate::gathered_writes::{GatheredWrites, GatheringOutboard};
use crate::pieces::{piece_chunks, tree_of};
use crate::store::{BlobError, BlobStore, io_error};
use crate::{Hash, piece_count};
use bao_tree::io::outboard::PreOrderOutboard;
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::sync::Arc;

/// Why a piece was refused. The sender of an `Invalid` piece sent bytes that do not belong
/// to the blob: drop it from the swarm.
#[derive(Debug, thiserror::Error)]
pub enum PieceError {
    #[error("piece {index} does not exist: the blob has {pieces} pieces")]
    NoSuchPiece { index: u64, pieces: u64 },
    #[error("piece {index} does not verify against the blob's hash and size: {reason}")]
    Invalid { index: u64, reason: String },
    #[error(transparent)]
    Store(#[from] BlobError),
}

/// A download in progress; [`Download::finish`] moves the complete blob into the store.
pub struct Download {
    store: Arc<BlobStore>,
    hash: Hash,
    size: u64,
    data: File,
    outboard: PreOrderOutboard<File>,
    have: BTreeSet<u64>,
    have_file: File,
}

impl BlobStore {
    /// Starts fetching the blob `hash` of `size` bytes, or resumes the download already
    /// under way (keeping the pieces that still verify). A wrong `size` makes every
    /// piece fail to verify.
    pub fn download(self: &Arc<Self>, hash: Hash, size: u64) -> Result<Download, BlobError> {
        let open = |extension: &str| -> Result<File, BlobError> {
            let path = self.partial_path(&hash, extension);
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io_error("opening", &path))
        };
        let (data, outboard_file, mut have_file) = (open("data")?, open("obao")?, open("have")?);
        let tree = tree_of(size);
        let data_path = self.partial_path(&hash, "data");
        data.set_len(size).map_err(io_error("sizing", &data_path))?;
        let outboard_path = self.partial_path(&hash, "obao");
        outboard_file.set_len(tree.outboard_size()).map_err(io_error("sizing", &outboard_path))?;
        let outboard = PreOrderOutboard { root: blake3::Hash::from_bytes(hash.0), tree, data: outboard_file };
        let mut listed = Vec::new();
        have_file.read_to_end(&mut listed).map_err(io_error("reading", &self.partial_path(&hash, "have")))?;
        let mut download =
            Download { store: self.clone(), hash, size, data, outboard, have: BTreeSet::new(), have_file };
        for entry in listed.chunks_exact(8) {
            let index = u64::from_le_bytes(entry.try_into().expect("8 bytes"));
            if download.piece_still_verifies(index) {
                download.have.insert(index);
            }
        }
        download.rewrite_have_file()?;
        Ok(download)
    }
}

impl Download {
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The blob's size in bytes, as claimed when the download started.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Pieces not yet verified: the last piece first (it alone proves the blob's size, so
    /// a wrong size claim fails on the first piece fetched), then the others in order.
    pub fn missing(&self) -> impl Iterator<Item = u64> + '_ {
        let pieces = piece_count(self.size);
        let last = pieces.checked_sub(1);
        last.into_iter().chain(0..pieces.saturating_sub(1)).filter(|index| !self.have.contains(index))
    }

    pub fn is_complete(&self) -> bool {
        self.have.len() as u64 == piece_count(self.size)
    }

    /// Checks piece `index` (bao-encoded, as [`BlobStore::encode_piece`] writes it)
    /// against the blob's hash and writes it. A piece already held is accepted again.
    pub fn write_piece(&mut self, index: u64, encoded: &[u8]) -> Result<(), PieceError> {
        let chunks = piece_chunks(self.size, index)
            .ok_or(PieceError::NoSuchPiece { index, pieces: piece_count(self.size) })?;
        if self.have.contains(&index) {
            return Ok(());
        }
        let mut reader = encoded;
        // Gathered only while this piece is written: an idle download holds no piece (an
        // owner may have one output download per worker session under way).
        let (mut piece_data, mut piece_hashes) = (GatheredWrites::default(), GatheredWrites::default());
        let outboard = GatheringOutboard { outboard: &self.outboard, saves: &mut piece_hashes };
        bao_tree::io::sync::decode_ranges(&mut reader, &chunks, &mut piece_data, outboard)
            .map_err(|error| PieceError::Invalid { index, reason: error.to_string() })?;
        if !reader.is_empty() {
            let reason = format!("{} bytes follow the piece", reader.len());
            return Err(PieceError::Invalid { index, reason });
        }
        let data_path = self.store.partial_path(&self.hash, "data");
        piece_data.write_to(&self.data).map_err(io_error("writing", &data_path))?;
        let outboard_path = self.store.partial_path(&self.hash, "obao");
        piece_hashes.write_to(&self.outboard.data).map_err(io_error("writing", &outboard_path))?;
        let have_path = self.store.partial_path(&self.hash, "have");
        self.have_file.write_all(&index.to_le_bytes()).map_err(io_error("writing", &have_path))?;
        self.have.insert(index);
        Ok(())
    }

    /// Syncs the complete blob to disk and moves it into the store (a blob that must
    /// survive a power cut: an owner's results).
    pub fn finish(self) -> Result<Hash, BlobError> {
        self.finish_with(true)
    }

    /// Moves the complete blob into the store without syncing it (a cache's copy): after
    /// an unclean stop the store checks it again before anything reads it (`unsynced.rs`).
    pub fn finish_unsynced(self) -> Result<Hash, BlobError> {
        self.finish_with(false)
    }

    fn finish_with(self, sync: bool) -> Result<Hash, BlobError> {
        if !self.is_complete() {
            let missing = self.missing().count();
            return Err(BlobError::Missing(format!(
                "{} ({missing} pieces still missing)",
                self.hash.to_hex()
            )));
        }
        if self.size == 0 && Hash(*blake3::hash(b"").as_bytes()) != self.hash {
            return Err(BlobError::Corrupt { hash: self.hash.to_hex(), reason: "it is not empty".into() });
        }
        let (data_path, outboard_path) =
            (self.store.partial_path(&self.hash, "data"), self.store.partial_path(&self.hash, "obao"));
        if sync {
            self.data.sync_all().map_err(io_error("syncing", &data_path))?;
            self.outboard.data.sync_all().map_err(io_error("syncing", &outboard_path))?;
        } else {
            self.store.mark_unsynced_downloads()?;
        }
        self.store.move_into_place(&self.hash, self.size, &data_path, &outboard_path)?;
        let have_path = self.store.partial_path(&self.hash, "have");
        std::fs::remove_file(&have_path).map_err(io_error("removing", &have_path))?;
        Ok(self.hash)
    }

    /// Whether the bytes and hashes on disk for piece `index` still prove it.
    fn piece_still_verifies(&self, index: u64) -> bool {
        piece_chunks(self.size, index).is_some_and(|chunks| {
            bao_tree::io::sync::encode_ranges_validated(&self.data, &self.outboard, &chunks, io::sink())
                .is_ok()
        })
    }

    fn rewrite_have_file(&mut self) -> Result<(), BlobError> {
        let path = self.store.partial_path(&self.hash, "have");
        let listed: Vec<u8> = self.have.iter().flat_map(|index| index.to_le_bytes()).collect();
        let mut file = File::create(&path).map_err(io_error("rewriting", &path))?;
        file.write_all(&listed).map_err(io_error("rewriting", &path))?;
        self.have_file = OpenOptions::new().append(true).open(&path).map_err(io_error("opening", &path))?;
        Ok(())
    }
}

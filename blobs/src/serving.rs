//! Serving pieces to the swarm: from a complete blob, or from a download still under way
//! (what BitTorrent calls a leecher that uploads). Both answers come from disk alone, so
//! any task may serve while another downloads: a piece of a partial blob is sent only when
//! its bytes and the tree hashes on its path still prove it against the blob's hash.

use crate::piece_reads::encode_piece_read_once;
use crate::pieces::{piece_range, tree_of};
use crate::store::{BlobError, BlobStore, io_error};
use crate::{Hash, piece_count};
use bao_tree::io::outboard::PreOrderOutboard;
use std::fs::File;
use std::ops::Range;

/// Ranges of held pieces a peer reports at most (a subset of what it holds is still true).
pub const HELD_RANGES_MAX: usize = 1024;

/// The pieces of one blob this store holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldPieces {
    pub size: u64,
    /// Half-open ranges of piece indexes, ascending, at most [`HELD_RANGES_MAX`].
    pub ranges: Vec<Range<u64>>,
}

impl BlobStore {
    /// Which pieces of `hash` are here: all of a complete blob, the verified ones of a
    /// download under way, `None` when neither.
    pub fn held_pieces(&self, hash: &Hash) -> Option<HeldPieces> {
        if let Some(size) = self.size(hash) {
            let pieces = piece_count(size);
            let ranges = (pieces > 0).then_some(0..pieces).into_iter().collect();
            return Some(HeldPieces { size, ranges });
        }
        let size = std::fs::metadata(self.partial_path(hash, "data")).ok()?.len();
        let listed = std::fs::read(self.partial_path(hash, "have")).ok()?;
        let mut indexes: Vec<u64> = listed
            .chunks_exact(8)
            .map(|entry| u64::from_le_bytes(entry.try_into().expect("8 bytes")))
            .filter(|index| *index < piece_count(size))
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        Some(HeldPieces { size, ranges: ranges_of(&indexes) })
    }

    /// Piece `index` of `hash` with its proof, from the complete blob or from a download
    /// under way; `Ok(false)` when it is not here (or no longer proves itself).
    pub fn encode_held_piece(
        &self,
        hash: &Hash,
        index: u64,
        encoded: &mut Vec<u8>,
    ) -> Result<bool, BlobError> {
        if self.has(hash) {
            return self.encode_piece(hash, index, encoded).map(|()| true);
        }
        let data_path = self.partial_path(hash, "data");
        let Ok(data) = File::open(&data_path) else { return Ok(false) };
        let size = data.metadata().map_err(io_error("reading", &data_path))?.len();
        let Some(range) = piece_range(size, index) else { return Ok(false) };
        let outboard_path = self.partial_path(hash, "obao");
        let Ok(outboard_file) = File::open(&outboard_path) else { return Ok(false) };
        let outboard = PreOrderOutboard {
            root: blake3::Hash::from_bytes(hash.0),
            tree: tree_of(size),
            data: outboard_file,
        };
        Ok(encode_piece_read_once(&data, &outboard, range, encoded).is_ok())
    }
}

/// Sorted, distinct indexes as half-open ranges, at most [`HELD_RANGES_MAX`] of them.
pub fn ranges_of(indexes: &[u64]) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for &index in indexes {
        if let Some(last) = ranges.last_mut()
            && last.end == index
        {
            last.end += 1;
        } else if ranges.len() == HELD_RANGES_MAX {
            break;
        } else {
            ranges.push(index..index + 1);
        }
    }
    ranges
}

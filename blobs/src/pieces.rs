//! How a blob divides into pieces, and a piece into bao chunk ranges.

use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};

/// Bytes per piece (the last piece of a blob may be shorter).
pub const PIECE_BYTES: u64 = 256 << 10;

/// blake3's chunk: the tree's leaves are 1 KiB.
const CHUNK_BYTES: u64 = 1 << 10;

/// The outboard keeps one hash pair per 2^4 chunks (16 KiB).
pub(crate) const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);

/// Pieces of a blob of `size` bytes (none for an empty blob).
pub fn piece_count(size: u64) -> u64 {
    size.div_ceil(PIECE_BYTES)
}

/// The bytes of piece `index` of a blob of `size` bytes; `None` past its end.
pub fn piece_range(size: u64, index: u64) -> Option<std::ops::Range<u64>> {
    let start = index.checked_mul(PIECE_BYTES).filter(|start| *start < size)?;
    Some(start..(start + PIECE_BYTES).min(size))
}

/// The chunk ranges a bao query for piece `index` names.
pub(crate) fn piece_chunks(size: u64, index: u64) -> Option<ChunkRanges> {
    piece_range(size, index).map(|bytes| chunks_of(&bytes))
}

/// The chunk ranges covering `bytes` (a piece's, from [`piece_range`]).
pub(crate) fn chunks_of(bytes: &std::ops::Range<u64>) -> ChunkRanges {
    let start = ChunkNum(bytes.start / CHUNK_BYTES);
    let end = ChunkNum(bytes.end.div_ceil(CHUNK_BYTES));
    ChunkRanges::from(start..end)
}

pub(crate) fn tree_of(size: u64) -> BaoTree {
    BaoTree::new(size, BLOCK_SIZE)
}

//! A piece's reads gathered: its bytes in one read, its hash pairs a page at a time.
//!
//! bao's encoder reads each 16 KiB leaf and each 64-byte hash pair on its own: from the
//! files that was about 32 `pread`s per 256 KiB piece served (the counterpart of
//! `gathered_writes.rs`). Here a piece's bytes are read at once and its hash pairs through
//! 4 KiB pages of the outboard, each page read at most once per piece (the piece's own
//! subtree is one run of pairs in a pre-order outboard; its few ancestors add a page or
//! two). Everything read is still checked against the blob's hash while it is encoded: a
//! short or damaged file fails the encode, as it did read by read.

use crate::pieces::chunks_of;
use bao_tree::io::outboard::PreOrderOutboard;
use bao_tree::io::sync::{Outboard, ReadAt};
use bao_tree::{BaoTree, TreeNode};
use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

/// Bytes of outboard read at once.
const PAGE_BYTES: u64 = 4 << 10;

/// Room kept for a piece's proof beyond its bytes (more is grown into if ever needed).
const PROOF_BYTES_EXPECTED: usize = 4 << 10;

/// Appends to `encoded` the piece `range` of the blob in `data` (from [`piece_range`]) with
/// its proof against `outboard`; on `Err` (why it does not verify) `encoded` is as it was.
///
/// [`piece_range`]: crate::piece_range
pub(crate) fn encode_piece_read_once(
    data: &File,
    outboard: &PreOrderOutboard<File>,
    range: Range<u64>,
    encoded: &mut Vec<u8>,
) -> Result<(), String> {
    let chunks = chunks_of(&range);
    let piece = PieceBytes::read(data, range).map_err(|error| error.to_string())?;
    let outboard = PagedOutboard { outboard, pages: RefCell::new(Vec::new()) };
    let start = encoded.len();
    // A piece's proof is its subtree's pairs (15 × 64 bytes) and one pair per level above
    // it (22 levels for a TiB): a frame started with room for a piece and 8 KiB is not
    // reallocated (that copied the whole old buffer: a GiB served, a GiB copied).
    encoded.reserve(piece.bytes.len() + PROOF_BYTES_EXPECTED);
    bao_tree::io::sync::encode_ranges_validated(&piece, &outboard, &chunks, &mut *encoded).map_err(|error| {
        encoded.truncate(start);
        error.to_string()
    })
}

/// A piece's bytes, read at once, at their place in the blob.
struct PieceBytes {
    start: u64,
    bytes: Vec<u8>,
}

impl PieceBytes {
    /// One `pread` (a file shorter than the piece is an error).
    fn read(data: &File, range: Range<u64>) -> io::Result<PieceBytes> {
        let mut bytes = vec![0u8; usize::try_from(range.end - range.start).map_err(io::Error::other)?];
        FileExt::read_exact_at(data, &mut bytes, range.start)?;
        Ok(PieceBytes { start: range.start, bytes })
    }
}

impl ReadAt for PieceBytes {
    /// Reads past the piece return nothing: the encoder then fails with an unexpected end.
    fn read_at(&self, position: u64, buffer: &mut [u8]) -> io::Result<usize> {
        let from = position
            .checked_sub(self.start)
            .and_then(|offset| usize::try_from(offset).ok())
            .ok_or_else(|| io::Error::other("a read before the piece"))?;
        let available = self.bytes.get(from..).unwrap_or_default();
        let count = buffer.len().min(available.len());
        buffer[..count].copy_from_slice(&available[..count]);
        Ok(count)
    }
}

/// An outboard read through pages kept for one piece.
struct PagedOutboard<'a> {
    outboard: &'a PreOrderOutboard<File>,
    /// (offset, bytes) of each page read (the last may be short: the file's end).
    pages: RefCell<Vec<(u64, Vec<u8>)>>,
}

impl Outboard for PagedOutboard<'_> {
    fn root(&self) -> blake3::Hash {
        self.outboard.root
    }

    fn tree(&self) -> BaoTree {
        self.outboard.tree
    }

    fn load(&self, node: TreeNode) -> io::Result<Option<(blake3::Hash, blake3::Hash)>> {
        let Some(offset) = self.outboard.tree.pre_order_offset(node) else { return Ok(None) };
        let at = offset * 64;
        let page_start = at / PAGE_BYTES * PAGE_BYTES;
        let mut pages = self.pages.borrow_mut();
        let page = match pages.iter().position(|(start, _)| *start == page_start) {
            Some(position) => &pages[position].1,
            None => {
                pages.push((page_start, read_page(&self.outboard.data, page_start)?));
                &pages[pages.len() - 1].1
            }
        };
        // Pairs sit at multiples of 64 bytes, so none straddles two pages.
        let within = (at - page_start) as usize;
        let pair = page.get(within..within + 64).ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "the outboard ends before this hash pair")
        })?;
        let hash = |bytes: &[u8]| blake3::Hash::from_bytes(bytes.try_into().expect("32 bytes"));
        Ok(Some((hash(&pair[..32]), hash(&pair[32..]))))
    }
}

/// Up to [`PAGE_BYTES`] from `start`, fewer at the file's end.
fn read_page(file: &File, start: u64) -> io::Result<Vec<u8>> {
    let mut page = vec![0u8; PAGE_BYTES as usize];
    let mut filled = 0;
    while filled < page.len() {
        match FileExt::read_at(file, &mut page[filled..], start + filled as u64) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    page.truncate(filled);
    Ok(page)
}

//! Content-addressed blobs on disk, moved in verified pieces (issue 16's data plane).
//!
//! A blob is bytes named by their blake3 hash. A [`BlobStore`] keeps each blob as a file
//! with its bao outboard (the blake3 tree's inner hashes, 64 bytes per 16 KiB) beside it,
//! and moves blobs between peers in pieces of [`PIECE_BYTES`]: a piece travels with the
//! tree hashes that prove it against the blob's hash (bao, through `bao-tree`), so a
//! fetcher checks every piece the moment it arrives and knows which peer sent a bad one.
//!
//! Why 256 KiB pieces (BitTorrent's size): large enough that the proof (at most
//! 2 × 32 bytes per tree level, about 1.3 KiB for a 1 GiB blob) and a request's round trip
//! cost little per byte, small enough that a 4 MiB unit input comes from 16 peers at once
//! and a bad piece wastes 256 KiB. The outboard keeps one hash pair per 16 KiB chunk group
//! (0.4% of the blob), so serving any piece reads only its own bytes and ≤ 2 × 14 hashes.
//!
//! Invariants (tested in `tests.rs`):
//! - a blob in the store is complete and its bytes hash to its name: imports hash while
//!   they write and rename into place only at the end; a download is renamed into place
//!   only when every piece verified;
//! - a piece is written only after all of it verified against the blob's hash (it is
//!   decoded into memory, then written in a few runs: `gathered_writes.rs`); a bad
//!   piece (wrong bytes, wrong proof, a size claim that is not the blob's, trailing bytes)
//!   is an error naming the piece, writes nothing and counts for nothing. The blob's size is proven by its last
//!   piece alone (bao), so a download asks for the last piece first: a wrong size claim
//!   fails on the first piece fetched;
//! - a download survives a restart: the pieces it verified are listed in a file beside it
//!   and checked again against their data when it resumes (a piece whose bytes were lost
//!   in a crash is fetched again);
//! - a piece is served only from data that still matches its hashes (a blob corrupted on
//!   disk, or cut short, is never sent on); its bytes are read at once and its hash pairs
//!   a page at a time, then checked as they are encoded (`piece_reads.rs`);
//! - a download under way serves the pieces it verified, each only while its bytes and
//!   hashes on disk still prove it (`serving.rs`);
//! - imports stream: memory does not grow with the blob's size (bytes go to disk in 256 KiB
//!   writes, hash pairs in runs of neighbours, at most 16,384 pairs kept: `outboard_write_back.rs`);
//! - one store per folder at a time: it lists its complete blobs once, when it opens, and
//!   keeps their sizes and total in memory, so a budget check reads no folder;
//! - the store stays within its byte budget by evicting the least recently used blobs
//!   that nothing holds ([`BlobStore::evict_to_budget`]), spent ones first
//!   ([`BlobStore::mark_spent`]: this host will not read them again), and keeps spent
//!   ones within a quarter of the budget (256 MiB at most): a queued or running unit holds
//!   the blobs it reads ([`BlobStore::hold`], released when the hold is dropped), an owner
//!   names its running jobs' blobs as needed;
//! - a worker's download may finish without an fsync (`Download::finish_unsynced`): it is
//!   a copy of a blob others hold, and a torn one is found and removed at the next open
//!   after an unclean stop (`unsynced.rs`). An owner's blobs are always synced.

mod download;
mod gathered_writes;
mod holds;
mod outboard_write_back;
mod piece_reads;
mod pieces;
mod serving;
mod store;
mod unsynced;
mod upload_budget;

pub use download::{Download, PieceError};
pub use holds::BlobHold;
pub use pieces::{PIECE_BYTES, piece_count, piece_range};
pub use serving::{HELD_RANGES_MAX, HeldPieces, ranges_of};
pub use store::{BlobError, BlobStore};
pub use upload_budget::UploadBudget;
pub use wasmhive_protocol::Hash;

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // a list of one range of pieces
mod tests;

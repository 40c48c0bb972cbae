//! wasmhive's shared vocabulary and wire types.
//!
//! This crate knows nothing of tokio, wasmtime or SQLite. It defines the words that cross
//! crate and network boundaries: content hashes ([`Hash`]) and the status of one replica's
//! execution ([`Status`]), whose canonical text is part of every outcome digest.

mod hash;
mod status;

pub use hash::{Hash, HashParseError};
pub use status::{Status, TrapKind};

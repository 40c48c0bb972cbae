//! wasmhive's shared vocabulary and wire types.
//!
//! This crate knows nothing of tokio, wasmtime or SQLite. It defines the words that cross
//! crate and network boundaries: content hashes ([`Hash`]), the status of one replica's
//! execution ([`Status`], whose canonical text is part of every outcome digest), and the
//! messages peers exchange ([`Message`]) with their codec and size limits.

pub mod api;
pub mod base64_bytes;
mod codec;
mod compact_status;
pub mod gossip;
mod hash;
pub mod identity;
pub mod job_terms;
mod messages;
mod status;

pub use codec::{
    BinaryFrame, DecodeError, Encoded, decode_binary, decode_blob, decode_message, encode_blob,
    encode_message, encode_piece, piece_frame_start,
};
pub use hash::{Hash, HashParseError};
pub use messages::{
    BLOB_FRAME_BYTES_MAX, BlobRef, CreditSoFar, FRAME_BYTES_MAX, Hello, INPUT_BLOB_BYTES_MAX, JobTerms,
    Lease, Message, OUTPUT_INLINE_BYTES_MAX, OutcomeReport, PIECE_FRAME_BYTES_MAX, PROTOCOL_VERSION,
    SHARED_FILES_MAX, TERMS_KEPT,
};
pub use status::{Status, TrapKind, blob_outcome_digest, outcome_digest};

/// `text` without control characters, cut to `chars_max` characters: how a stranger's
/// words (a peer id, an address, a reason) are shown in a terminal or a log, so they
/// cannot move the cursor, change colours or forge lines.
pub fn printable(text: &str, chars_max: usize) -> String {
    text.chars().filter(|character| !character.is_control()).take(chars_max).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_never_reach_a_terminal() {
        assert_eq!(super::printable("ok\u{1b}[31mred\r\nfake log line\u{7}", 100), "ok[31mredfake log line");
        assert_eq!(super::printable("abcdef", 3), "abc");
    }
}

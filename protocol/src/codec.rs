//! Encoding and decoding of frames. Decoding never panics: a bad frame is a
//! [`DecodeError`] whose text is the reason the connection is closed with.

use crate::Hash;
use crate::messages::{BLOB_FRAME_BYTES_MAX, Message, TEXT_FRAME_BYTES_MAX};

/// Why a frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame is larger than any message may be.
    #[error("frame of {size} bytes is larger than the {limit}-byte limit")]
    FrameTooLarge { size: usize, limit: usize },
    /// The message is larger than its kind allows.
    #[error("{kind} message of {size} bytes is larger than the {limit}-byte limit for its kind")]
    MessageTooLarge { kind: &'static str, size: usize, limit: usize },
    /// The text is not a known message (bad JSON, unknown type, missing or unknown field).
    #[error("malformed message: {reason}")]
    Malformed { reason: String },
    /// A binary frame shorter than its 32-byte hash, or whose bytes do not match it.
    #[error("bad blob frame: {reason}")]
    BadBlob { reason: String },
}

/// Encodes a control message as the text of a frame.
pub fn encode_message(message: &Message) -> String {
    serde_json::to_string(message).expect("wire messages always serialise")
}

/// Decodes the text of a frame, checking the size limits of its kind.
pub fn decode_message(text: &str) -> Result<Message, DecodeError> {
    if text.len() > TEXT_FRAME_BYTES_MAX {
        return Err(DecodeError::FrameTooLarge { size: text.len(), limit: TEXT_FRAME_BYTES_MAX });
    }
    let message: Message = serde_json::from_str(text)
        .map_err(|error| DecodeError::Malformed { reason: error.to_string().chars().take(200).collect() })?;
    let limit = message.encoded_bytes_max();
    if text.len() > limit {
        return Err(DecodeError::MessageTooLarge { kind: message.kind(), size: text.len(), limit });
    }
    Ok(message)
}

/// Encodes a blob as a binary frame: hash then bytes.
pub fn encode_blob(bytes: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(32 + bytes.len());
    frame.extend_from_slice(&Hash::of(bytes).0);
    frame.extend_from_slice(bytes);
    frame
}

/// Decodes a binary frame and checks its bytes against its hash.
pub fn decode_blob(frame: &[u8]) -> Result<(Hash, &[u8]), DecodeError> {
    if frame.len() > BLOB_FRAME_BYTES_MAX {
        return Err(DecodeError::FrameTooLarge { size: frame.len(), limit: BLOB_FRAME_BYTES_MAX });
    }
    if frame.len() < 32 {
        return Err(DecodeError::BadBlob { reason: format!("{} bytes is shorter than a hash", frame.len()) });
    }
    let (hash_bytes, bytes) = frame.split_at(32);
    let hash = Hash(hash_bytes.try_into().expect("split at 32"));
    if Hash::of(bytes) != hash {
        return Err(DecodeError::BadBlob {
            reason: format!("bytes do not match their hash {}", hash.short()),
        });
    }
    Ok((hash, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Hello;

    #[test]
    fn messages_round_trip() {
        let hello = Message::Hello(Hello { protocol_version: 1, cores: 2, agent: "test".into() });
        assert_eq!(decode_message(&encode_message(&hello)).unwrap(), hello);
    }

    #[test]
    fn garbage_unknown_kinds_and_oversized_messages_are_errors() {
        assert!(matches!(decode_message("{not json"), Err(DecodeError::Malformed { .. })));
        let unknown = decode_message(r#"{"type":"launch_missiles"}"#).unwrap_err();
        assert!(unknown.to_string().contains("launch_missiles"), "{unknown}");
        let padded = format!(r#"{{"type":"goodbye","body":{{"reason":"{}"}}}}"#, "x".repeat(10_000));
        assert!(matches!(decode_message(&padded), Err(DecodeError::MessageTooLarge { kind: "goodbye", .. })));
        assert!(matches!(
            decode_message(r#"{"type":"request_work","body":{"slots":-1}}"#),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn blobs_are_checked_against_their_hash() {
        let frame = encode_blob(b"module bytes");
        let (hash, bytes) = decode_blob(&frame).unwrap();
        assert_eq!(hash, Hash::of(b"module bytes"));
        assert_eq!(bytes, b"module bytes");
        let mut tampered = frame.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(decode_blob(&tampered), Err(DecodeError::BadBlob { .. })));
        assert!(matches!(decode_blob(&[1, 2, 3]), Err(DecodeError::BadBlob { .. })));
    }
}

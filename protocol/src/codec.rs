//! Encoding and decoding of frames. Decoding never panics: a bad frame is a
//! [`DecodeError`] whose text is the reason the connection is closed with.
//!
//! Text frames are JSON control messages. Binary frames start with a kind byte: 0 a blob
//! (its 32-byte blake3 hash, then its bytes), 1 leases, 2 outcomes, 3 an acknowledgement,
//! 4 a piece of a blob (its hash, its index as 8 bytes little-endian, then the bao-encoded
//! piece, checked by the receiver against the blob's hash), the others each followed by
//! their body in postcard (varints, length-prefixed bytes; a few bytes per
//! unit where JSON took hundreds). Kinds and fields are only ever appended.

use crate::Hash;
use crate::messages::{
    BLOB_FRAME_BYTES_MAX, CreditSoFar, FRAME_BYTES_MAX, Lease, Message, OutcomeReport, PIECE_FRAME_BYTES_MAX,
};

/// Why a frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame is larger than any message may be.
    #[error("frame of {size} bytes is larger than the {limit}-byte limit")]
    FrameTooLarge { size: usize, limit: usize },
    /// The message is larger than its kind allows.
    #[error("{kind} message of {size} bytes is larger than the {limit}-byte limit for its kind")]
    MessageTooLarge { kind: &'static str, size: usize, limit: usize },
    /// The text is not a known message (bad JSON, unknown type, missing or unknown field),
    /// or a binary frame is not a known kind or does not decode as one.
    #[error("malformed message: {reason}")]
    Malformed { reason: String },
    /// A blob frame shorter than its 32-byte hash, or whose bytes do not match it.
    #[error("bad blob frame: {reason}")]
    BadBlob { reason: String },
}

/// A frame's payload, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encoded {
    Text(String),
    Binary(Vec<u8>),
}

const BLOB: u8 = 0;
const LEASES: u8 = 1;
const OUTCOMES: u8 = 2;
const ACKNOWLEDGED: u8 = 3;
const PIECE: u8 = 4;

/// Encodes a message: leases, outcomes and acknowledgements as binary frames, every other
/// message as JSON text.
pub fn encode_message(message: &Message) -> Encoded {
    match message {
        Message::Leases { leases } => binary_frame(LEASES, leases),
        Message::Outcomes { outcomes } => binary_frame(OUTCOMES, outcomes),
        Message::Acknowledged { lease_ids, credit } => binary_frame(ACKNOWLEDGED, &(lease_ids, credit)),
        other => Encoded::Text(serde_json::to_string(other).expect("wire messages always serialise")),
    }
}

/// A binary frame: the kind byte, then the body written after it (not shifted along to
/// make room).
fn binary_frame<T: serde::Serialize + ?Sized>(kind: u8, body: &T) -> Encoded {
    Encoded::Binary(postcard::to_extend(body, vec![kind]).expect("wire messages always serialise"))
}

/// Decodes the text of a frame, checking the size limits of its kind.
pub fn decode_message(text: &str) -> Result<Message, DecodeError> {
    if text.len() > FRAME_BYTES_MAX {
        return Err(DecodeError::FrameTooLarge { size: text.len(), limit: FRAME_BYTES_MAX });
    }
    let message: Message = serde_json::from_str(text)
        .map_err(|error| DecodeError::Malformed { reason: error.to_string().chars().take(200).collect() })?;
    check_size(&message, text.len())?;
    Ok(message)
}

/// What a binary frame carries.
#[derive(Debug, PartialEq)]
pub enum BinaryFrame<'a> {
    Message(Message),
    /// A blob whose bytes were checked against its hash.
    Blob(Hash, &'a [u8]),
    /// Piece `index` of blob `hash`, bao-encoded: the receiver checks it (`wasmhive-blobs`).
    Piece {
        hash: Hash,
        index: u64,
        encoded: &'a [u8],
    },
}

/// Decodes a binary frame, checking the size limits of its kind (and a blob's bytes
/// against its hash).
pub fn decode_binary(frame: &[u8]) -> Result<BinaryFrame<'_>, DecodeError> {
    let Some((&kind, body)) = frame.split_first() else {
        return Err(DecodeError::Malformed { reason: "an empty binary frame".into() });
    };
    if kind == BLOB {
        return decode_blob(frame).map(|(hash, bytes)| BinaryFrame::Blob(hash, bytes));
    }
    if kind == PIECE {
        return decode_piece(frame);
    }
    if frame.len() > FRAME_BYTES_MAX {
        return Err(DecodeError::FrameTooLarge { size: frame.len(), limit: FRAME_BYTES_MAX });
    }
    let message = match kind {
        LEASES => Message::Leases { leases: decode_body::<Vec<Lease>>("leases", body)? },
        OUTCOMES => Message::Outcomes { outcomes: decode_body::<Vec<OutcomeReport>>("outcomes", body)? },
        ACKNOWLEDGED => {
            let (lease_ids, credit) = decode_body::<(Vec<u64>, Option<CreditSoFar>)>("acknowledged", body)?;
            Message::Acknowledged { lease_ids, credit }
        }
        other => {
            return Err(DecodeError::Malformed {
                reason: format!("binary frame of unknown kind {other} (this peer speaks kinds 0 to 4)"),
            });
        }
    };
    check_size(&message, frame.len())?;
    Ok(BinaryFrame::Message(message))
}

fn decode_body<'a, T: serde::Deserialize<'a>>(kind: &str, body: &'a [u8]) -> Result<T, DecodeError> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(DecodeError::Malformed {
            reason: format!("{kind} frame has {} bytes after its end", rest.len()),
        }),
        Err(error) => {
            Err(DecodeError::Malformed { reason: format!("{kind} frame does not decode: {error}") })
        }
    }
}

fn check_size(message: &Message, size: usize) -> Result<(), DecodeError> {
    let limit = message.encoded_bytes_max();
    if size > limit {
        return Err(DecodeError::MessageTooLarge { kind: message.kind(), size, limit });
    }
    Ok(())
}

/// Encodes a blob as a binary frame: kind, hash, bytes.
pub fn encode_blob(bytes: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(1 + 32 + bytes.len());
    frame.push(BLOB);
    frame.extend_from_slice(&Hash::of(bytes).0);
    frame.extend_from_slice(bytes);
    frame
}

/// Encodes piece `index` of blob `hash` (bao-encoded, with its proof) as a binary frame.
pub fn encode_piece(hash: &Hash, index: u64, encoded: &[u8]) -> Vec<u8> {
    let mut frame = piece_frame_start(hash, index);
    frame.extend_from_slice(encoded);
    frame
}

/// The start of a piece frame: append the bao-encoded piece to it (a blob store encodes
/// straight into it, so the piece is not copied again).
pub fn piece_frame_start(hash: &Hash, index: u64) -> Vec<u8> {
    let mut frame = Vec::with_capacity(PIECE_FRAME_BYTES_MAX);
    frame.push(PIECE);
    frame.extend_from_slice(&hash.0);
    frame.extend_from_slice(&index.to_le_bytes());
    frame
}

fn decode_piece(frame: &[u8]) -> Result<BinaryFrame<'_>, DecodeError> {
    if frame.len() > PIECE_FRAME_BYTES_MAX {
        return Err(DecodeError::MessageTooLarge {
            kind: "piece",
            size: frame.len(),
            limit: PIECE_FRAME_BYTES_MAX,
        });
    }
    if frame.len() < 1 + 32 + 8 {
        return Err(DecodeError::Malformed {
            reason: format!("a piece frame of {} bytes has no room for its header", frame.len()),
        });
    }
    let hash = Hash(frame[1..33].try_into().expect("32 bytes"));
    let index = u64::from_le_bytes(frame[33..41].try_into().expect("8 bytes"));
    Ok(BinaryFrame::Piece { hash, index, encoded: &frame[41..] })
}

/// Decodes a blob frame and checks its bytes against its hash.
pub fn decode_blob(frame: &[u8]) -> Result<(Hash, &[u8]), DecodeError> {
    if frame.len() > 1 + BLOB_FRAME_BYTES_MAX {
        return Err(DecodeError::FrameTooLarge { size: frame.len(), limit: BLOB_FRAME_BYTES_MAX });
    }
    let Some((&BLOB, rest)) = frame.split_first() else {
        return Err(DecodeError::BadBlob { reason: "not a blob frame (its first byte must be 0)".into() });
    };
    if rest.len() < 32 {
        return Err(DecodeError::BadBlob { reason: format!("{} bytes is shorter than a hash", rest.len()) });
    }
    let (hash_bytes, bytes) = rest.split_at(32);
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
    use crate::{BlobRef, Status, TrapKind};

    fn round_trip(message: &Message) -> Message {
        match encode_message(message) {
            Encoded::Text(text) => decode_message(&text).unwrap(),
            Encoded::Binary(frame) => match decode_binary(&frame).unwrap() {
                BinaryFrame::Message(message) => message,
                other => panic!("a message decoded as {other:?}"),
            },
        }
    }

    fn outcomes() -> Message {
        let statuses = [
            Status::Success,
            Status::ExitCode { code: -3 },
            Status::Trap { trap: TrapKind::IntegerDivisionByZero },
            Status::HostTimeout,
            Status::InvalidModule { reason: "no _start".into() },
        ];
        let outcomes = statuses
            .into_iter()
            .enumerate()
            .map(|(index, status)| OutcomeReport {
                lease_id: 1 << (index * 9),
                status,
                output: vec![index as u8; index * 100],
                output_blob: (index == 3).then_some(BlobRef { hash: crate::Hash([3; 32]), size: 1 << 20 }),
                fuel_used: (index % 2 == 0).then_some(12_345),
                wall_time_ms: 7,
            })
            .collect();
        Message::Outcomes { outcomes }
    }

    #[test]
    fn messages_round_trip_as_text_or_binary() {
        let hello = Message::Hello(Hello {
            protocol_version: 1,
            cores: 2,
            agent: "test".into(),
            engine: "wasmtime".into(),
        });
        assert!(matches!(encode_message(&hello), Encoded::Text(_)));
        assert_eq!(round_trip(&hello), hello);
        let leases = Message::Leases {
            leases: vec![Lease {
                lease_id: 9,
                terms_id: 1,
                unit_index: 4,
                input: b"0 1000".to_vec(),
                input_blob: None,
            }],
        };
        let acknowledged = Message::Acknowledged {
            lease_ids: vec![1, 2, u64::MAX],
            credit: Some(CreditSoFar { replicas: 3, amount: 4 }),
        };
        for message in [leases, outcomes(), acknowledged] {
            assert!(matches!(encode_message(&message), Encoded::Binary(_)), "{}", message.kind());
            assert_eq!(round_trip(&message), message);
        }
    }

    #[test]
    fn a_tiny_unit_costs_a_few_bytes_each_way() {
        let lease = Lease {
            lease_id: 123_456,
            terms_id: 1,
            unit_index: 9_999,
            input: b"9999000 10000000".to_vec(),
            input_blob: None,
        };
        let Encoded::Binary(leases) = encode_message(&Message::Leases { leases: vec![lease; 100] }) else {
            panic!("leases are binary")
        };
        let outcome = OutcomeReport {
            lease_id: 123_456,
            status: Status::Success,
            output: b"4999999500000".to_vec(),
            output_blob: None,
            fuel_used: None,
            wall_time_ms: 0,
        };
        let Encoded::Binary(outcomes) = encode_message(&Message::Outcomes { outcomes: vec![outcome; 100] })
        else {
            panic!("outcomes are binary")
        };
        // Per unit: 16 input bytes + 8 (ids, length, no input blob); 13 output bytes + 8
        // (id, status, length, no output blob, fuel, time); per frame: a kind byte and a count.
        assert!(leases.len() <= 2 + 100 * 24, "{} bytes for 100 leases", leases.len());
        assert!(outcomes.len() <= 2 + 100 * 21, "{} bytes for 100 outcomes", outcomes.len());
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
        // The binary-only kinds are not read from text.
        assert!(matches!(
            decode_message(r#"{"type":"outcomes","body":{"outcomes":[]}}"#),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn binary_garbage_truncation_trailing_bytes_and_unknown_kinds_are_errors() {
        let Encoded::Binary(frame) = encode_message(&outcomes()) else { panic!("outcomes are binary") };
        for cut in 1..frame.len() {
            assert!(decode_binary(&frame[..cut]).is_err(), "cut at {cut} decoded");
        }
        let mut trailing = frame.clone();
        trailing.push(0);
        let error = decode_binary(&trailing).unwrap_err();
        assert!(error.to_string().contains("1 bytes after its end"), "{error}");
        let error = decode_binary(&[200, 1, 2]).unwrap_err();
        assert!(error.to_string().contains("unknown kind 200"), "{error}");
        assert!(decode_binary(&[]).is_err());
        // A length prefix claiming 2^60 elements is refused, not allocated.
        let mut huge = vec![OUTCOMES];
        huge.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
        assert!(matches!(decode_binary(&huge), Err(DecodeError::Malformed { .. })));
        let mut oversized_acknowledgement = vec![ACKNOWLEDGED];
        oversized_acknowledgement
            .extend(postcard::to_allocvec(&(vec![u64::MAX; 200_000], None::<CreditSoFar>)).unwrap());
        assert!(matches!(
            decode_binary(&oversized_acknowledgement),
            Err(DecodeError::MessageTooLarge { kind: "acknowledged", .. })
        ));
    }

    #[test]
    fn blobs_are_checked_against_their_hash() {
        let frame = encode_blob(b"module bytes");
        let (hash, bytes) = decode_blob(&frame).unwrap();
        assert_eq!(hash, Hash::of(b"module bytes"));
        assert_eq!(bytes, b"module bytes");
        assert_eq!(decode_binary(&frame).unwrap(), BinaryFrame::Blob(hash, b"module bytes"));
        let mut tampered = frame.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(decode_blob(&tampered), Err(DecodeError::BadBlob { .. })));
        assert!(matches!(decode_blob(&[0, 1, 2, 3]), Err(DecodeError::BadBlob { .. })));
        assert!(matches!(decode_blob(&frame[1..]), Err(DecodeError::BadBlob { .. })));
    }
}

//! Messages as WebSocket frames: JSON text or binary, as the codec encodes each kind.

use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_protocol::{Encoded, Message, encode_message};

/// The frame that carries `message`.
pub fn frame_of(message: &Message) -> Frame {
    match encode_message(message) {
        Encoded::Text(text) => Frame::Text(text.into()),
        Encoded::Binary(bytes) => Frame::Binary(bytes.into()),
    }
}

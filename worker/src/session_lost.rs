//! Why a worker's session with an owner ended other than by shutdown: logged, then the
//! worker reconnects with backoff.

use wasmhive_protocol::DecodeError;
use wasmhive_transport::DialError;

#[derive(Debug, thiserror::Error)]
pub enum SessionLost {
    #[error("{0}")]
    Unreachable(#[from] DialError),
    #[error("no welcome within {0} s")]
    NoWelcome(u64),
    #[error("the connection closed before the owner's welcome")]
    ClosedBeforeWelcome,
    #[error("the owner refused us: {0}")]
    Refused(String),
    #[error("expected welcome, got {0}")]
    NotWelcome(&'static str),
    #[error("the owner's welcome names {named}, but its TLS handshake proved {proven}")]
    WelcomeFromAnotherOwner { named: String, proven: String },
    #[error("the owner closed the connection{}", .0.as_ref().map(|reason| format!(": {reason}")).unwrap_or_default())]
    OwnerClosed(Option<String>),
    #[error("the owner said goodbye: {0}")]
    OwnerSaidGoodbye(String),
    #[error("the connection failed: {0}")]
    Connection(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("{0}")]
    Undecodable(#[from] DecodeError),
    #[error("the owner sent blob {0} we did not ask for")]
    UnaskedBlob(String),
    #[error("the owner sent a piece that does not verify: {0}")]
    BadPiece(String),
    #[error("an input blob could not be kept here: {0}")]
    InputBlob(String),
    #[error("the owner asked for a piece of blob {0}, which is no output we reported")]
    NotOurOutput(String),
    #[error("the owner asked for more than {0} pieces of output at once")]
    TooManyPiecesAsked(usize),
    #[error("an output blob could not be served: {0}")]
    OutputBlob(String),
    #[error("an owner may not send {0}")]
    NotForOwners(&'static str),
    /// Job terms out of order, or a lease naming terms never sent.
    #[error("{0}")]
    BrokenTerms(String),
}

//! One swarm connection (`/blobs`) between two proven peers. The protocol is the same in
//! both directions, whoever dialled: each side asks (`which_pieces`, `want_piece`, `want`
//! for a module) and answers what it is asked. So a peer behind NAT, which can only dial
//! out, serves the peers it dialled over the connections it opened.
//!
//! Invariants:
//! - answers go only to questions asked: an unasked piece, holding or blob ends the
//!   connection with that reason; so does a frame that is not a swarm message;
//! - at most [`SERVES_IN_FLIGHT`] answers are being prepared at once (fewer for a peer
//!   that never sent us a piece while our upload is contended: `reciprocity.rs`); a
//!   question beyond that is answered `not_held` at once (the asker tries elsewhere), so a
//!   peer that asks for everything cannot make us read or hold more than a few pieces;
//! - pieces leave at the peer's upload rate ([`wasmhive_blobs::UploadBudget`]), shared by
//!   all its connections;
//! - a `holding` answer must list ascending, disjoint ranges (at most 1,024).

use super::Swarm;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::collections::HashMap;
use std::fmt::Display;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_blobs::HELD_RANGES_MAX;
use wasmhive_protocol::{BinaryFrame, Hash, Message, decode_binary, decode_message, encode_blob};

/// Answers being prepared on one connection at once, at most.
pub const SERVES_IN_FLIGHT: usize = 8;
/// A connection with nothing asked either way for this long closes.
const IDLE_CLOSE: Duration = Duration::from_secs(60);
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// What one side asks the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Question {
    Holding(Hash),
    Piece(Hash, u64),
    Module(Hash),
}

/// The answer to a [`Question`].
#[derive(Debug)]
pub enum Answer {
    Holding {
        size: u64,
        ranges: Vec<Range<u64>>,
    },
    /// A bao-encoded piece (not yet verified: the asker verifies it), a slice of the frame
    /// it came in (no copy).
    Piece(bytes::Bytes),
    /// A module's bytes, checked against its hash.
    Module(Vec<u8>),
    NotHeld,
}

pub(super) struct Asking {
    pub question: Question,
    pub answer: oneshot::Sender<Answer>,
}

/// Runs one connection until either side closes it, it idles, the peer misbehaves, or the
/// swarm drops the peer (the `asking` sender goes away). Returns why it ended.
pub(super) async fn run<S, E>(
    socket: S,
    swarm: Arc<Swarm>,
    peer_id: &str,
    mut asking: mpsc::Receiver<Asking>,
) -> String
where
    S: Stream<Item = Result<Frame, E>> + Sink<Frame> + Send + Unpin + 'static,
    E: Display,
    <S as Sink<Frame>>::Error: Display,
{
    let (mut sink, mut stream) = socket.split();
    let (served_sender, mut served) = mpsc::channel::<Frame>(SERVES_IN_FLIGHT);
    let serving = Arc::new(Semaphore::new(SERVES_IN_FLIGHT));
    let mut waiting: HashMap<Question, oneshot::Sender<Answer>> = HashMap::new();
    loop {
        let outgoing = tokio::select! {
            frame = tokio::time::timeout(IDLE_CLOSE, stream.next()) => {
                let frame = match frame {
                    Err(_) if waiting.is_empty() && serving.available_permits() == SERVES_IN_FLIGHT => return "idle".into(),
                    Err(_) => continue,
                    Ok(None) => return "closed by the peer".into(),
                    Ok(Some(Err(error))) => return format!("connection failed: {error}"),
                    Ok(Some(Ok(frame))) => frame,
                };
                let connection = ConnectionState { swarm: &swarm, peer_id, serving: &serving, served: &served_sender };
                match received(frame, &connection, &mut waiting) {
                    Ok(outgoing) => outgoing,
                    Err(reason) => return reason,
                }
            }
            asked = asking.recv() => {
                let Some(Asking { question, answer }) = asked else { return "dropped from the swarm".into() };
                if waiting.contains_key(&question) {
                    let _ = answer.send(Answer::NotHeld);
                    continue;
                }
                waiting.insert(question, answer);
                Some(frame_asking(question))
            }
            Some(frame) = served.recv() => Some(frame),
        };
        if let Some(frame) = outgoing {
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(frame)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return format!("sending failed: {error}"),
                Err(_) => return "the peer stopped reading".into(),
            }
        }
    }
}

fn frame_asking(question: Question) -> Frame {
    let message = match question {
        Question::Holding(hash) => Message::WhichPieces { hash },
        Question::Piece(hash, index) => Message::WantPiece { hash, index },
        Question::Module(hash) => Message::Want { hash },
    };
    wasmhive_transport::frame_of(&message)
}

/// What answering on one connection needs: the swarm, the peer's id, the serving window
/// and where prepared answers go.
struct ConnectionState<'a> {
    swarm: &'a Arc<Swarm>,
    peer_id: &'a str,
    serving: &'a Arc<Semaphore>,
    served: &'a mpsc::Sender<Frame>,
}

/// Handles one frame from the peer: a question starts an answer, an answer goes to its
/// asker. `Ok(Some(frame))`: send it now; `Err`: end the connection for this reason.
fn received(
    frame: Frame,
    connection: &ConnectionState<'_>,
    waiting: &mut HashMap<Question, oneshot::Sender<Answer>>,
) -> Result<Option<Frame>, String> {
    let message = match &frame {
        Frame::Text(text) => decode_message(text).map_err(|error| error.to_string())?,
        Frame::Binary(bytes) => match decode_binary(bytes).map_err(|error| error.to_string())? {
            BinaryFrame::Piece { hash, index, encoded } => {
                let delivered =
                    deliver(waiting, Question::Piece(hash, index), Answer::Piece(bytes.slice_ref(encoded)));
                if delivered.is_ok() {
                    connection.swarm.piece_from(connection.peer_id);
                }
                return delivered;
            }
            BinaryFrame::Blob(hash, bytes) => {
                return deliver(waiting, Question::Module(hash), Answer::Module(bytes.to_vec()));
            }
            BinaryFrame::Message(message) => message,
        },
        Frame::Close(_) => return Err("closed by the peer".into()),
        _ => return Ok(None),
    };
    match message {
        Message::WhichPieces { hash } => Ok(serve(connection, Question::Holding(hash))),
        Message::WantPiece { hash, index } => Ok(serve(connection, Question::Piece(hash, index))),
        Message::Want { hash } => Ok(serve(connection, Question::Module(hash))),
        Message::Holding { hash, size, ranges } => {
            let ranges = checked_ranges(&ranges)?;
            deliver(waiting, Question::Holding(hash), Answer::Holding { size, ranges })
        }
        Message::NotHeld { hash, index: Some(index) } => {
            deliver(waiting, Question::Piece(hash, index), Answer::NotHeld)
        }
        Message::NotHeld { hash, index: None } => {
            let question = [Question::Holding(hash), Question::Module(hash)]
                .into_iter()
                .find(|question| waiting.contains_key(question))
                .unwrap_or(Question::Holding(hash));
            deliver(waiting, question, Answer::NotHeld)
        }
        other => Err(format!("sent `{}`, which is not a swarm message", other.kind())),
    }
}

fn deliver(
    waiting: &mut HashMap<Question, oneshot::Sender<Answer>>,
    question: Question,
    answer: Answer,
) -> Result<Option<Frame>, String> {
    let Some(asker) = waiting.remove(&question) else {
        return Err(format!("answered {question:?}, which was not asked"));
    };
    let _ = asker.send(answer);
    Ok(None)
}

/// Ranges as a peer sent them, if ascending, disjoint, non-empty and few enough.
pub(super) fn checked_ranges(ranges: &[(u64, u64)]) -> Result<Vec<Range<u64>>, String> {
    if ranges.len() > HELD_RANGES_MAX {
        return Err(format!("listed {} ranges of pieces (at most {HELD_RANGES_MAX})", ranges.len()));
    }
    let mut previous_end = 0;
    let mut checked = Vec::with_capacity(ranges.len());
    for (position, &(start, end)) in ranges.iter().enumerate() {
        if start >= end || (position > 0 && start <= previous_end) {
            return Err(format!("listed pieces {start}..{end} out of order or empty"));
        }
        previous_end = end;
        checked.push(start..end);
    }
    Ok(checked)
}

/// Starts answering `question` on a blocking thread (disk reads), or answers `not_held` at
/// once when the peer's serving window is full (`reciprocity.rs`).
fn serve(connection: &ConnectionState<'_>, question: Question) -> Option<Frame> {
    let in_preparation = SERVES_IN_FLIGHT - connection.serving.available_permits();
    if in_preparation >= connection.swarm.serves_allowed(connection.peer_id) {
        return Some(not_held(question));
    }
    let Ok(permit) = connection.serving.clone().try_acquire_owned() else {
        return Some(not_held(question));
    };
    let (swarm, served) = (connection.swarm.clone(), connection.served.clone());
    tokio::spawn(async move {
        let prepared = {
            let swarm = swarm.clone();
            tokio::task::spawn_blocking(move || swarm.answer(question)).await
        };
        let frame = match prepared {
            Ok(Some(frame)) => frame,
            _ => not_held(question),
        };
        let wait = match &frame {
            Frame::Binary(bytes) => swarm.reserve_upload(bytes.len() as u64),
            _ => Duration::ZERO,
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let _ = served.send(frame).await;
        drop(permit);
    });
    None
}

fn not_held(question: Question) -> Frame {
    let message = match question {
        Question::Piece(hash, index) => Message::NotHeld { hash, index: Some(index) },
        Question::Holding(hash) | Question::Module(hash) => Message::NotHeld { hash, index: None },
    };
    wasmhive_transport::frame_of(&message)
}

impl Swarm {
    /// The frame that answers `question` from this peer's disk (`None`: not held).
    fn answer(&self, question: Question) -> Option<Frame> {
        match question {
            Question::Holding(hash) => {
                let held = self.store.held_pieces(&hash)?;
                let ranges = held.ranges.iter().map(|range| (range.start, range.end)).collect();
                Some(wasmhive_transport::frame_of(&Message::Holding { hash, size: held.size, ranges }))
            }
            Question::Piece(hash, index) => {
                let mut frame = wasmhive_protocol::piece_frame_start(&hash, index);
                match self.store.encode_held_piece(&hash, index, &mut frame) {
                    Ok(true) => Some(Frame::Binary(frame.into())),
                    _ => None,
                }
            }
            Question::Module(hash) => {
                let bytes = (self.modules.get()?)(&hash)?;
                Some(Frame::Binary(encode_blob(&bytes).into()))
            }
        }
    }
}

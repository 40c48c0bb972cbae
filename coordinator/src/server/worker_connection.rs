//! One worker's WebSocket session: `hello`, then leases out and outcomes in. The worker is
//! the peer id its TLS handshake proved: a connection without a proven peer key is refused
//! before the upgrade, and nothing in a message can claim another identity.
//!
//! Limits: the first frame must come within [`HELLO_TIMEOUT`]; frames are at most
//! `FRAME_BYTES_MAX`; the read buffer starts at [`READ_BUFFER_BYTES`] so an idle
//! connection costs little; a send that does not complete in [`SEND_TIMEOUT`] (a client
//! that stopped reading) ends the connection. A bad frame ends only this connection, with
//! its reason in a `goodbye` message and the close frame. A worker silent for
//! [`SILENCE_MAX`] is dropped and its leases re-queued.
//!
//! Memory: an idle session is a task waiting in `session_loop`'s `select!`. A future is as
//! large as its largest state, so everything a session does only now and then (the hello,
//! handling a message, sending, closing) runs as a boxed future of its own: the idle task
//! holds only the socket, the session's state and one timer (issue 15: 4.9 KiB → 1.7 KiB).

use super::lazy_join_set::LazyJoinSet;
use super::off_the_runtime;
use super::outcomes::WorkerSeen;
use super::output_fetches::{FetchProgress, OutputFetches};
use super::state::Coordinator;
use crate::core::Network;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmhive_protocol::job_terms::TermsSent;
use wasmhive_protocol::{
    BLOB_FRAME_BYTES_MAX, BinaryFrame, Encoded, FRAME_BYTES_MAX, Hello, Message, PROTOCOL_VERSION,
    decode_binary, decode_message, encode_blob, encode_message, piece_frame_start,
};
use wasmhive_transport::Remote;

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
const READ_BUFFER_BYTES: usize = 256;
/// A worker silent this long is gone (its TCP connection may never say so): its leases go
/// back to the queue. Workers ping every 15 s.
const SILENCE_MAX: Duration = Duration::from_secs(60);
/// How long a worker waits before asking again when there is no work and it is not told
/// `work_ready` first: units that appear are announced at once, so this only covers what
/// time alone makes available (a drawn worker's reservation running out, a quarantine
/// ending).
const NO_WORK_RETRY_MS: u64 = 2_000;
/// How often an acknowledgement carries the worker's credit so far (a store query).
const CREDIT_REPORT_INTERVAL: Duration = Duration::from_secs(1);

pub async fn upgrade(
    State(coordinator): State<Arc<Coordinator>>,
    ConnectInfo(remote): ConnectInfo<Remote>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(worker_id) = remote.peer_id else {
        let reason = "a worker must prove its peer key in the TLS handshake (run `wasmhive worker` or \
                      `wasmhive peer`); anonymous clients may use only the token-checked API";
        return (StatusCode::FORBIDDEN, reason).into_response();
    };
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(FRAME_BYTES_MAX.max(BLOB_FRAME_BYTES_MAX))
        .max_frame_size(FRAME_BYTES_MAX.max(BLOB_FRAME_BYTES_MAX))
        .on_upgrade(move |socket| serve_worker(socket, coordinator, worker_id, remote.address.ip()))
}

/// Why the owner ended a worker's session; its text is sent to the worker (a `goodbye`
/// and the close reason) and logged.
#[derive(Debug, thiserror::Error)]
enum Ending {
    #[error("closed before hello")]
    ClosedBeforeHello,
    #[error("no hello within {} s", HELLO_TIMEOUT.as_secs())]
    NoHello,
    #[error("the first frame must be a hello text frame")]
    HelloNotText,
    #[error("protocol version {0} is not supported (this owner speaks {PROTOCOL_VERSION}); upgrade wasmhive")]
    UnsupportedProtocol(u32),
    #[error("the first message must be hello, not {0}")]
    NotHello(&'static str),
    #[error("{0}")]
    Undecodable(#[from] wasmhive_protocol::DecodeError),
    #[error("nothing heard for {} s (workers ping every 15 s)", SILENCE_MAX.as_secs())]
    Silent,
    #[error("workers send no whole blobs (outputs travel in pieces the owner asks for)")]
    BlobFromWorker,
    #[error("a worker may not send {0}")]
    NotForWorkers(&'static str),
    #[error("no blob {0} here")]
    NoSuchBlob(wasmhive_protocol::Hash),
    #[error("asked for a piece of blob {0}, which none of its leases names")]
    PieceNotLeased(wasmhive_protocol::Hash),
    #[error("cannot serve piece {index} of blob {hash}: {reason}")]
    NoSuchPiece { hash: wasmhive_protocol::Hash, index: u64, reason: String },
    #[error("{0}")]
    OutputRefused(#[from] super::outcomes::OutputRefused),
    #[error("{0}")]
    OutputFetch(#[from] super::output_fetches::OutputFetchError),
    #[error("the owner's store failed: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the owner's work for this session failed: {0}")]
    OwnerTask(String),
    #[error("the worker stopped reading")]
    StoppedReading,
    #[error("the connection failed: {0}")]
    Connection(#[from] axum::Error),
    /// The worker said goodbye: nothing to tell it.
    #[error("the worker left")]
    WorkerLeft,
}

/// Not an `async fn`: an async fn's future keeps its arguments twice (once as passed, once
/// as its locals; rustc issue 62958), and the socket is the largest thing an idle session
/// holds. A block that uses what it captured keeps one copy.
#[allow(clippy::manual_async_fn, reason = "an async fn would hold the socket twice")]
fn serve_worker(
    mut socket: WebSocket,
    coordinator: Arc<Coordinator>,
    worker_id: String,
    address: IpAddr,
) -> impl Future<Output = ()> {
    async move {
        let opened = Box::pin(open_session(&mut socket, &coordinator, worker_id, address)).await;
        let (worker, connection) = match opened {
            Ok(opened) => opened,
            Err(Some(ending)) => return Box::pin(close(socket, ending)).await,
            Err(None) => return,
        };
        let network = &connection.network;
        let connection_id = connection.connection_id;
        let session = Session { coordinator: &coordinator, worker: &worker, network, connection_id };
        let ending = Box::pin(session_loop(&mut socket, &session, &connection.pushed)).await;
        coordinator.connection_closed(connection_id, &worker.worker_id);
        if let Some(ending) = ending {
            if !matches!(ending, Ending::WorkerLeft) {
                tracing::warn!(worker = %worker.worker_id, reason = %ending, "closing worker connection");
            }
            Box::pin(close(socket, ending)).await;
        }
    }
}

/// The hello, the welcome and the connection registered: the worker and its connection,
/// or why the session ends before it began (`None`: the worker is gone).
async fn open_session(
    socket: &mut WebSocket,
    coordinator: &Coordinator,
    worker_id: String,
    address: IpAddr,
) -> Result<(WorkerSeen, super::connections::OpenedConnection), Option<Ending>> {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, receive_hello(socket)).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(ending)) => return Err(Some(ending)),
        Err(_) => return Err(Some(Ending::NoHello)),
    };
    let welcome =
        Message::Welcome { protocol_version: PROTOCOL_VERSION, owner_id: coordinator.owner_id().to_string() };
    send(socket, &welcome).await.map_err(|_| None)?;
    let worker = WorkerSeen::new(&worker_id, &hello.engine);
    let connection = coordinator.connection_opened(&worker, address, hello.cores);
    let network = &connection.network;
    tracing::info!(worker = %worker_id, %network, cores = hello.cores, agent = %wasmhive_protocol::printable(&hello.agent, 200), "worker connected");
    Ok((worker, connection))
}

async fn receive_hello(socket: &mut WebSocket) -> Result<Hello, Ending> {
    let frame = socket.recv().await.ok_or(Ending::ClosedBeforeHello)??;
    let Frame::Text(text) = frame else { return Err(Ending::HelloNotText) };
    match decode_message(&text)? {
        Message::Hello(hello) if hello.protocol_version == PROTOCOL_VERSION => Ok(hello),
        Message::Hello(hello) => Err(Ending::UnsupportedProtocol(hello.protocol_version)),
        other => Err(Ending::NotHello(other.kind())),
    }
}

/// Who a session serves: the identity its handshake proved (and the engine it named) and
/// the network it came from.
struct Session<'a> {
    coordinator: &'a Arc<Coordinator>,
    worker: &'a WorkerSeen,
    network: &'a Network,
    connection_id: u64,
}

/// Outcome batches of one connection being committed at once, at most; beyond them the
/// connection reads no more frames until one is done (back-pressure on a fast worker). It
/// still sends what is pushed to it (`work_ready`, `cancel`) meanwhile.
const COMMITS_IN_FLIGHT_MAX: usize = 4;

/// A batch's commit as it ends: the lease ids to acknowledge (none when it was not
/// committed) and the worker's credit when it was due.
type Committed = Result<(Vec<u64>, Option<wasmhive_protocol::CreditSoFar>), Ending>;

/// An outcome batch on its way to the blocking pool: recorded in the core already, or not.
enum BatchWork {
    Recorded(super::outcomes::RecordedOutcomes),
    Received(super::outcomes::ReceivedOutcomes),
}

/// What a session is doing besides reading frames: the acknowledgements it owes, and the
/// job terms it sent.
struct SessionState {
    credit_due: Instant,
    terms_sent: TermsSent,
    /// Outcome batches on their way through the store writer (at most
    /// [`COMMITS_IN_FLIGHT_MAX`]).
    commits: LazyJoinSet<Committed>,
    /// Blobs this session's leases named: the only ones it may ask pieces of (at most
    /// [`LEASED_BLOBS_MAX`], the oldest forgotten first).
    leased_blobs: std::collections::VecDeque<wasmhive_protocol::Hash>,
    /// Output blobs being fetched from the worker before their outcomes are recorded.
    outputs: OutputFetches,
    /// Input pieces the worker asked for, being read and encoded (at most
    /// [`PIECES_PREPARED_MAX`]).
    pieces: LazyJoinSet<Result<Frame, Ending>>,
}

/// Pieces one connection prepares at once, at most; a request beyond waits for one of them.
const PIECES_PREPARED_MAX: usize = 8;

/// Blobs a session remembers having leased.
const LEASED_BLOBS_MAX: usize = 1024;

impl Drop for SessionState {
    /// A session that ends leaves its batches to commit: a batch recorded in the core must
    /// reach the store (or be refused by it), or its job would wait for it forever. Tasks
    /// of a dropped `JoinSet` that had not started would never run.
    fn drop(&mut self) {
        self.commits.detach_all();
    }
}

/// Runs until the worker leaves (None) or breaks the protocol (Some(reason)).
async fn session_loop(
    socket: &mut WebSocket,
    session: &Session<'_>,
    pushed: &super::connections::PushedMessages,
) -> Option<Ending> {
    let mut state = SessionState {
        credit_due: Instant::now(),
        terms_sent: TermsSent::default(),
        commits: LazyJoinSet::new(),
        leased_blobs: std::collections::VecDeque::new(),
        pieces: LazyJoinSet::new(),
        outputs: OutputFetches::new(
            session.coordinator.blobs.clone(),
            session.coordinator.output_fetches.clone(),
        ),
    };
    loop {
        let reading = state.commits.len() < COMMITS_IN_FLIGHT_MAX;
        // One timer per session: the silence limit while reading, or an output fetch's
        // deadline when that comes first.
        let silent_at = Instant::now() + SILENCE_MAX;
        let wake_at = match state.outputs.deadline() {
            Some(deadline) => deadline.min(silent_at),
            None => silent_at,
        };
        let frame = tokio::select! {
            frame = socket.recv(), if reading => frame,
            message = pushed.next() => {
                if Box::pin(send(socket, &message)).await.is_err() {
                    return None;
                }
                continue;
            }
            () = tokio::time::sleep_until(wake_at.into()) => {
                let now = Instant::now();
                if reading && now >= silent_at {
                    return Some(Ending::Silent);
                }
                if state.outputs.deadline().is_none_or(|deadline| now < deadline) {
                    continue;
                }
                let progressed = match Box::pin(state.outputs.deadline_passed()).await {
                    Ok(progress) => Box::pin(fetch_progress(socket, session, &mut state, progress)).await,
                    Err(error) => Err(error.into()),
                };
                if let Err(ending) = progressed {
                    return Some(ending);
                }
                continue;
            }
            Some(prepared) = state.pieces.join_next(), if !state.pieces.is_empty() => {
                if let Err(ending) = Box::pin(send_prepared_piece(socket, prepared)).await {
                    return Some(ending);
                }
                continue;
            }
            Some(committed) = state.commits.join_next(), if !state.commits.is_empty() => {
                let committed = committed.unwrap_or_else(|error| Err(Ending::OwnerTask(error.to_string())));
                if let Err(ending) = Box::pin(acknowledge(socket, session, committed)).await {
                    return Some(ending);
                }
                continue;
            }
        };
        let decoded = match frame {
            None | Some(Err(_)) | Some(Ok(Frame::Close(_))) => return None,
            Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
            Some(Ok(Frame::Binary(bytes))) => match decode_binary(&bytes) {
                Ok(BinaryFrame::Message(message)) => Ok(message),
                Ok(BinaryFrame::Piece { hash, index, encoded }) => {
                    let arrived = Box::pin(state.outputs.piece_arrived(hash, index, encoded.to_vec())).await;
                    let progressed = match arrived {
                        Ok(progress) => Box::pin(fetch_progress(socket, session, &mut state, progress)).await,
                        Err(error) => Err(error.into()),
                    };
                    if let Err(ending) = progressed {
                        return Some(ending);
                    }
                    continue;
                }
                Ok(BinaryFrame::Blob(..)) => return Some(Ending::BlobFromWorker),
                Err(error) => Err(error),
            },
            Some(Ok(Frame::Text(text))) => decode_message(&text),
        };
        let message = match decoded {
            Ok(message) => message,
            Err(error) => return Some(error.into()),
        };
        if let Err(ending) = Box::pin(handle_message(socket, session, message, &mut state)).await {
            return Some(ending);
        }
    }
}

/// Acknowledges a committed batch (with the worker's credit when due); a worker whose
/// outcomes are acknowledged may hold leases again, so it is woken if it waits.
async fn acknowledge(
    socket: &mut WebSocket,
    session: &Session<'_>,
    committed: Committed,
) -> Result<(), Ending> {
    let (acknowledged, credit) = committed?;
    if acknowledged.is_empty() {
        return Ok(());
    }
    session.coordinator.outcomes_returned(session.connection_id);
    send(socket, &Message::Acknowledged { lease_ids: acknowledged, credit }).await
}

async fn handle_message(
    socket: &mut WebSocket,
    session: &Session<'_>,
    message: Message,
    state: &mut SessionState,
) -> Result<(), Ending> {
    let Session { coordinator, worker, network, connection_id } = *session;
    let worker_id = &*worker.worker_id;
    match message {
        Message::RequestWork { slots } => {
            // On the runtime: the core's lock is short, and the store is locked only for
            // jobs whose inputs are stored (reads, never behind an outcome commit's fsync:
            // the store writer has its own connection).
            // Waiting first: units that appear while this request looks are announced.
            coordinator.set_waiting(connection_id, true);
            let leases = coordinator.request_work(worker_id, network, slots)?;
            if !leases.is_empty() || coordinator.is_quarantined(worker_id) {
                // Only time ends a quarantine or a ban: no work_ready for it.
                coordinator.set_waiting(connection_id, false);
            }
            if leases.is_empty() {
                let reason = Some(coordinator.why_no_work(worker_id));
                return send(socket, &Message::NoWork { retry_after_ms: NO_WORK_RETRY_MS, reason }).await;
            }
            let mut wire_leases = Vec::with_capacity(leases.len());
            for lease in leases {
                let (terms_id, send_first) = state.terms_sent.terms_id(lease.job_id());
                if send_first {
                    send(socket, &Message::JobTerms(Box::new(lease.terms(terms_id)))).await?;
                }
                // The worker may now ask pieces of the unit's input and the job's shared files.
                for hash in lease.blobs_to_fetch() {
                    if !state.leased_blobs.contains(&hash) {
                        if state.leased_blobs.len() >= LEASED_BLOBS_MAX {
                            state.leased_blobs.pop_front();
                        }
                        state.leased_blobs.push_back(hash);
                    }
                }
                wire_leases.push(lease.into_lease(terms_id));
            }
            send(socket, &Message::Leases { leases: wire_leases }).await
        }
        Message::Outcomes { outcomes } => {
            let mut received = coordinator.receive_outcomes(worker_id, outcomes);
            received.check_outputs()?;
            for (blob, report) in received.take_outputs_to_fetch(&coordinator.blobs) {
                let progress = state.outputs.add(blob, report).await?;
                fetch_progress(socket, session, state, progress).await?;
            }
            if !received.is_empty() {
                take_outcomes(session, state, received, None)?;
            }
            Ok(())
        }
        Message::ReturnLeases { lease_ids } => {
            coordinator.return_leases(worker_id, &lease_ids);
            Ok(())
        }
        Message::Want { hash } => {
            let module = off_the_runtime(coordinator, move |coordinator| coordinator.module(&hash))
                .await
                .map_err(Ending::OwnerTask)?;
            match module {
                Some(bytes) => send_frame(socket, Frame::Binary(encode_blob(&bytes).into())).await,
                None => Err(Ending::NoSuchBlob(hash)),
            }
        }
        Message::WantPiece { hash, index } => {
            if !state.leased_blobs.contains(&hash) {
                return Err(Ending::PieceNotLeased(hash));
            }
            // Pieces are read and encoded side by side on the blocking pool and sent as
            // each is ready (order does not matter): one connection's pieces are not
            // prepared one after another.
            while state.pieces.len() >= PIECES_PREPARED_MAX {
                if let Some(prepared) = state.pieces.join_next().await {
                    send_prepared_piece(socket, prepared).await?;
                }
            }
            let coordinator = coordinator.clone();
            state.pieces.spawn(async move {
                let frame = off_the_runtime(&coordinator, move |coordinator| {
                    let mut frame = piece_frame_start(&hash, index);
                    coordinator.blobs.encode_piece(&hash, index, &mut frame).map(|()| frame)
                })
                .await
                .map_err(Ending::OwnerTask)?
                .map_err(|error| Ending::NoSuchPiece {
                    hash,
                    index,
                    reason: error.to_string(),
                })?;
                let wait = coordinator.reserve_upload(frame.len() as u64);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                Ok(Frame::Binary(frame.into()))
            });
            Ok(())
        }
        Message::Goodbye { reason } => {
            tracing::info!(worker = %worker_id, %reason, "worker said goodbye");
            Err(Ending::WorkerLeft)
        }
        other => Err(Ending::NotForWorkers(other.kind())),
    }
}

/// Sends what output fetches ask of the worker; outcomes whose outputs are now here go on
/// to be recorded (holding their blobs until committed).
async fn fetch_progress(
    socket: &mut WebSocket,
    session: &Session<'_>,
    state: &mut SessionState,
    progress: FetchProgress,
) -> Result<(), Ending> {
    for message in &progress.send {
        send(socket, message).await?;
    }
    for fetched in progress.ready {
        let received = session.coordinator.receive_outcomes(&session.worker.worker_id, fetched.reports);
        take_outcomes(session, state, received, Some(fetched.hold))?;
    }
    Ok(())
}

/// Records an outcome batch and commits it; its acknowledgement follows the commit
/// (`session_loop`). A small batch without validators is recorded in the core here, before
/// the next frame (a request for work) is read; only its commit waits on the blocking pool.
/// `hold` keeps the batch's output blobs until the commit ended.
fn take_outcomes(
    session: &Session<'_>,
    state: &mut SessionState,
    received: super::outcomes::ReceivedOutcomes,
    hold: Option<wasmhive_blobs::BlobHold>,
) -> Result<(), Ending> {
    let Session { coordinator, worker, .. } = *session;
    let report_credit = Instant::now() >= state.credit_due;
    if report_credit {
        state.credit_due = Instant::now() + CREDIT_REPORT_INTERVAL;
    }
    let work = if coordinator.records_quickly(&received) {
        BatchWork::Recorded(coordinator.record_outcome_batch(worker, received)?)
    } else {
        BatchWork::Received(received)
    };
    let (coordinator, worker) = (coordinator.clone(), worker.clone());
    match work {
        // A recorded batch waits for its commit on this task: no blocking-pool thread
        // hands it to the writer and waits (with a worker per unit, those hand-offs were a
        // fifth of the owner's CPU samples).
        BatchWork::Recorded(recorded) => state.commits.spawn(async move {
            let acknowledged = coordinator.store_recorded_batch_async(&worker.worker_id, recorded).await;
            drop(hold);
            let credit = if report_credit && !acknowledged.is_empty() {
                let worker_id = worker.worker_id.clone();
                let reading = move || coordinator.credit_of_worker(&worker_id);
                tokio::task::spawn_blocking(reading).await.ok().flatten()
            } else {
                None
            };
            Ok((acknowledged, credit))
        }),
        BatchWork::Received(received) => state.commits.spawn_blocking(move || {
            let acknowledged = coordinator.commit_received_outcomes(&worker, received)?;
            drop(hold);
            let credit = (report_credit && !acknowledged.is_empty())
                .then(|| coordinator.credit_of_worker(&worker.worker_id))
                .flatten();
            Ok((acknowledged, credit))
        }),
    };
    Ok(())
}

/// Sends a piece prepared for the worker (or ends the session with why it could not be).
async fn send_prepared_piece(
    socket: &mut WebSocket,
    prepared: Result<Result<Frame, Ending>, tokio::task::JoinError>,
) -> Result<(), Ending> {
    let frame = prepared.map_err(|error| Ending::OwnerTask(error.to_string()))??;
    send_frame(socket, frame).await
}

async fn send(socket: &mut WebSocket, message: &Message) -> Result<(), Ending> {
    let frame = match encode_message(message) {
        Encoded::Text(text) => Frame::Text(text.into()),
        Encoded::Binary(bytes) => Frame::Binary(bytes.into()),
    };
    send_frame(socket, frame).await
}

async fn send_frame(socket: &mut WebSocket, frame: Frame) -> Result<(), Ending> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(Ending::StoppedReading),
    }
}

async fn close(mut socket: WebSocket, ending: Ending) {
    let reason = if matches!(ending, Ending::WorkerLeft) { String::new() } else { ending.to_string() };
    if !reason.is_empty() {
        let goodbye = Message::Goodbye { reason: reason.clone() };
        let _ = tokio::time::timeout(Duration::from_secs(1), send(&mut socket, &goodbye)).await;
    }
    let reason: String = reason.chars().take(120).collect();
    let close = Frame::Close(Some(CloseFrame { code: 1008, reason: reason.into() }));
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(close)).await;
}

//! The worker's main loop: connect, say hello, keep the prefetch queue full, run leases,
//! return outcomes, reconnect when the connection drops, and shut down gracefully. The
//! rules (what to ask for, what to keep, when outcomes go out, what is sent again) are in
//! `session_core.rs`; this is the shell that does the IO.

use crate::connection::{Backoff, Socket, connect};
use crate::execution::{
    Execution, FINISHED_COLLECT_DELAY, Finished, FinishedQueue, LeaseToRun, NotStarted, SessionCount,
    spawn_lease,
};
use crate::input_blobs::{FetchEvent, InputFetches};
use crate::session_core::{QueueState, SessionCore};
use crate::session_lost::SessionLost;
use crate::session_outputs::OutputPiece;
use crate::{WorkerConfig, WorkerError};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;
use wasmhive_protocol::INPUT_BLOB_BYTES_MAX;
use wasmhive_protocol::job_terms::TermsReceived;
use wasmhive_protocol::{
    BinaryFrame, Hash, Hello, Lease, Message, PROTOCOL_VERSION, decode_binary, decode_message,
};
use wasmhive_transport::{PeerAddress, frame_of};

/// How often the worker pings its owner, so the owner can tell a silent worker from a busy one.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often a session looks again without any event (retry after `no_work`, resume after
/// a pause); everything else is event-driven, so an idle or throttled worker costs its
/// machine next to nothing.
const IDLE_TICK: Duration = Duration::from_millis(100);
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
const ACKNOWLEDGE_WAIT_ON_SHUTDOWN: Duration = Duration::from_secs(2);

type Shutdown<'a> = Pin<&'a mut (dyn Future<Output = ()> + Send)>;

enum SessionEnd {
    Shutdown,
    Lost(SessionLost),
}

pub(crate) struct Worker {
    pub(crate) execution: Arc<Execution>,
    worker_id: String,
    not_started: NotStarted,
    finished: FinishedQueue,
    /// When the finished reports are collected (set when the first of them arrives).
    collect_finished_at: Option<Instant>,
    waiting_for_module: HashMap<Hash, Vec<LeaseToRun>>,
    /// Leases waiting for their input blob, and its fetch (`input_blobs.rs`).
    pub(crate) input_fetches: InputFetches<LeaseToRun>,
    /// Swarm answers and sources found, for `input_fetches` (`session_blobs.rs`).
    pub(crate) swarm_events_sender: mpsc::UnboundedSender<FetchEvent>,
    swarm_events: mpsc::UnboundedReceiver<FetchEvent>,
    /// The job terms this session's leases may refer to.
    terms: TermsReceived,
    /// Modules fetched from other peers (or `None`: ask the owner).
    fetched_sender: mpsc::UnboundedSender<(Hash, Option<Vec<u8>>)>,
    fetched: mpsc::UnboundedReceiver<(Hash, Option<Vec<u8>>)>,
    owner_address: PeerAddress,
    /// Output blobs of outcomes not yet acknowledged, by lease (`session_outputs.rs`).
    pub(crate) output_holds: HashMap<u64, (Hash, wasmhive_blobs::BlobHold)>,
    pub(crate) output_pieces_in_flight: usize,
    pub(crate) output_pieces_sender: mpsc::UnboundedSender<OutputPiece>,
    output_pieces: mpsc::UnboundedReceiver<OutputPiece>,
    /// Numbers the sessions, so a piece read for a lost one is not sent in the next.
    pub(crate) output_session: u64,
    /// The owner's peer id as the TLS handshake proved it (credit, reasons and slot shares
    /// are kept per proven owner, never per address).
    pub(crate) owner_id: String,
    core: SessionCore,
}

/// Runs a worker until `shutdown` resolves, reconnecting with backoff whenever the owner
/// cannot be reached.
pub async fn run_worker(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), WorkerError> {
    let join = config.join.clone();
    let data_dir = config.data_dir.clone();
    let execution = Execution::new(config)?;
    let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
    let control = tokio::spawn(crate::control::serve_control(execution.clone(), data_dir, async {
        let _ = control_stopped.await;
    }));
    let result = run_owner_session(execution, &join, shutdown).await;
    let _ = stop_control.send(());
    let _ = control.await;
    result
}

/// Works for the owner at `join` (`HOST:PORT`, or `HOST:PORT#PEERID` to pin its key) on a
/// shared [`Execution`] until `shutdown` resolves.
pub async fn run_owner_session(
    execution: Arc<Execution>,
    join: &str,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), WorkerError> {
    let address = PeerAddress::parse(join)?;
    let url = address.to_string();
    let _session = SessionCount::enter(&execution);
    let mut worker = Worker::new(execution.clone(), address);
    let mut shutdown: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(shutdown);
    let mut backoff = Backoff::new();
    tracing::info!(worker = %worker.worker_id, cpus = worker.execution.config.cpus, %url, "worker starting");
    loop {
        let connected = tokio::select! {
            () = shutdown.as_mut() => return Ok(()),
            connected = connect(&worker.execution.dialer, &worker.owner_address) => connected,
        };
        let ending = match connected {
            Ok((socket, owner_id)) => {
                backoff.reset();
                worker.owner_id = owner_id;
                match worker.session(socket, shutdown.as_mut()).await {
                    SessionEnd::Shutdown => return Ok(()),
                    SessionEnd::Lost(reason) => reason,
                }
            }
            Err(error) => SessionLost::Unreachable(error),
        };
        worker.connection_lost();
        let delay = backoff.next_delay();
        tracing::warn!(%url, reason = %ending, retry_in_ms = delay.as_millis() as u64, "not connected to the owner");
        tokio::select! {
            () = shutdown.as_mut() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Sleeps until `at` (at once for `None`: the select! branches that use it are off then).
async fn sleep_until_set(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

impl Worker {
    fn new(execution: Arc<Execution>, owner_address: PeerAddress) -> Worker {
        let (fetched_sender, fetched) = mpsc::unbounded_channel();
        let (swarm_events_sender, swarm_events) = mpsc::unbounded_channel();
        let finds_sources = execution.swarm.finds_sources();
        let (output_pieces_sender, output_pieces) = mpsc::unbounded_channel();
        let prefetch_target = (execution.config.cpus * execution.config.prefetch_per_core).max(1);
        Worker {
            worker_id: execution.key.peer_id(),
            execution,
            not_started: NotStarted::default(),
            finished: FinishedQueue::default(),
            collect_finished_at: None,
            waiting_for_module: HashMap::new(),
            input_fetches: InputFetches::new(finds_sources),
            swarm_events_sender,
            swarm_events,
            terms: TermsReceived::default(),
            fetched_sender,
            fetched,
            owner_id: owner_address.peer_id.clone().unwrap_or_default(),
            owner_address,
            output_holds: HashMap::new(),
            output_pieces_in_flight: 0,
            output_pieces_sender,
            output_pieces,
            output_session: 0,
            core: SessionCore::new(prefetch_target),
        }
    }

    async fn session(&mut self, mut socket: Socket, mut shutdown: Shutdown<'_>) -> SessionEnd {
        if let Err(reason) = self.handshake(&mut socket).await {
            return SessionEnd::Lost(reason);
        }
        tracing::info!(worker = %self.worker_id, "connected to the owner");
        if let Err(reason) = send_all(&mut socket, self.core.connected()).await {
            return SessionEnd::Lost(reason);
        }
        let mut idle_tick = tokio::time::interval(IDLE_TICK);
        idle_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            let step = tokio::select! {
                () = shutdown.as_mut() => return self.shut_down(socket).await,
                frame = socket.next() => self.handle_frame(&mut socket, frame).await,
                () = self.finished.pushed(), if self.collect_finished_at.is_none() => {
                    self.collect_finished_at = Some(Instant::now() + FINISHED_COLLECT_DELAY);
                    Ok(())
                }
                () = sleep_until_set(self.collect_finished_at), if self.collect_finished_at.is_some() => {
                    self.collect_finished_at = None;
                    self.collect_finished();
                    Ok(())
                }
                Some((hash, bytes)) = self.fetched.recv() => self.module_fetched(&mut socket, hash, bytes).await,
                () = sleep_until_set(self.core.flush_at()), if self.core.flush_at().is_some() => Ok(()),
                Some(event) = self.swarm_events.recv() => self.swarm_event(&mut socket, event).await,
                Some(piece) = self.output_pieces.recv() => self.send_output_piece(&mut socket, piece).await,
                _ = idle_tick.tick() => self.refresh_fetches(&mut socket).await,
                _ = heartbeat.tick() => socket.send(Frame::Ping(Vec::new().into())).await.map_err(SessionLost::from),
            };
            let step = match step {
                Ok(()) => self.top_up(&mut socket).await,
                Err(reason) => Err(reason),
            };
            if let Err(reason) = step {
                return SessionEnd::Lost(reason);
            }
        }
    }

    async fn handshake(&mut self, socket: &mut Socket) -> Result<(), SessionLost> {
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            cores: self.execution.config.cpus as u32,
            agent: format!(
                "wasmhive/{} wasmtime/{}",
                env!("CARGO_PKG_VERSION"),
                wasmhive_sandbox::wasmtime_version()
            ),
            engine: wasmhive_sandbox::engine_class_name(std::env::consts::ARCH),
        };
        send(socket, &Message::Hello(hello)).await?;
        match receive_welcome(socket).await? {
            Message::Welcome { owner_id, .. } if owner_id == self.owner_id => Ok(()),
            Message::Welcome { owner_id, .. } => Err(SessionLost::WelcomeFromAnotherOwner {
                named: wasmhive_protocol::printable(&owner_id, 64),
                proven: self.owner_id.clone(),
            }),
            other => Err(SessionLost::NotWelcome(other.kind())),
        }
    }

    async fn handle_frame(
        &mut self,
        socket: &mut Socket,
        frame: Option<Result<Frame, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), SessionLost> {
        match frame {
            None => Err(SessionLost::OwnerClosed(None)),
            Some(Err(error)) => Err(error.into()),
            Some(Ok(Frame::Text(text))) => {
                let message = decode_message(&text)?;
                self.handle_message(socket, message).await
            }
            Some(Ok(Frame::Binary(bytes))) => {
                match decode_binary(&bytes)? {
                    BinaryFrame::Message(message) => self.handle_message(socket, message).await,
                    BinaryFrame::Blob(hash, bytes) => {
                        if !self.waiting_for_module.contains_key(&hash) {
                            // Only blobs we asked for are kept: an owner cannot fill our disk.
                            return Err(SessionLost::UnaskedBlob(hash.short()));
                        }
                        self.module_arrived(hash, bytes);
                        Ok(())
                    }
                    BinaryFrame::Piece { hash, index, encoded } => {
                        let progress =
                            self.input_fetches.piece_arrived(hash, index, bytes.slice_ref(encoded))?;
                        self.input_progress(socket, progress).await
                    }
                }
            }
            Some(Ok(Frame::Close(close))) => {
                let reason = close.map(|close| wasmhive_protocol::printable(&close.reason, 120));
                Err(SessionLost::OwnerClosed(reason))
            }
            Some(Ok(_)) => Ok(()),
        }
    }

    async fn handle_message(&mut self, socket: &mut Socket, message: Message) -> Result<(), SessionLost> {
        match message {
            Message::Leases { leases } => {
                self.execution.controls.owner_has_work(&self.owner_id);
                let (to_run, hand_back) = self.core.leases_arrived(leases, self.finished.in_pool());
                if let Some(hand_back) = hand_back {
                    tracing::warn!(owner = %self.owner_id, "the owner sent leases we did not ask for; handed back unrun");
                    send(socket, &hand_back).await?;
                }
                for lease in to_run {
                    let terms = self.terms.get(lease.terms_id).map_err(SessionLost::BrokenTerms)?;
                    self.accept_lease(socket, lease, terms).await?;
                }
                Ok(())
            }
            Message::JobTerms(terms) => self.terms.received(*terms).map_err(SessionLost::BrokenTerms),
            Message::NoWork { retry_after_ms, reason } => {
                self.execution.controls.owner_has_no_work(&self.owner_id, reason);
                self.core.no_work(retry_after_ms, Instant::now());
                Ok(())
            }
            Message::WorkReady {} => {
                self.core.work_ready();
                Ok(())
            }
            Message::Acknowledged { lease_ids, credit } => {
                self.core.acknowledged(&lease_ids);
                self.outputs_acknowledged(&lease_ids);
                if let Some(credit) = credit {
                    self.execution.controls.owner_reported_credit(
                        &self.owner_id,
                        credit.replicas,
                        credit.amount,
                    );
                }
                Ok(())
            }
            Message::Cancel { lease_ids } => {
                self.not_started.take_back(&lease_ids);
                for leases in self.waiting_for_module.values_mut().chain(self.input_fetches.waiting_mut()) {
                    leases.retain(|waiting| !lease_ids.contains(&waiting.lease.lease_id));
                }
                Ok(())
            }
            Message::WantPiece { hash, index } => self.output_piece_asked(hash, index),
            Message::Goodbye { reason } => {
                Err(SessionLost::OwnerSaidGoodbye(wasmhive_protocol::printable(&reason, 200)))
            }
            other => Err(SessionLost::NotForOwners(other.kind())),
        }
    }

    async fn accept_lease(
        &mut self,
        socket: &mut Socket,
        lease: Lease,
        terms: Arc<wasmhive_protocol::JobTerms>,
    ) -> Result<(), SessionLost> {
        let ceilings = &self.execution.config.volunteer;
        if terms.limits.output_bytes > ceilings.unit_output_bytes_max {
            tracing::warn!(
                job = %wasmhive_protocol::printable(&terms.job_id, 64),
                output = terms.limits.output_bytes,
                ceiling = ceilings.unit_output_bytes_max,
                "a unit may write more output than this worker allows (--unit-output-max); handed back"
            );
            return send(socket, &Message::ReturnLeases { lease_ids: vec![lease.lease_id] }).await;
        }
        // The wall-clock guard protects this host and never decides a result: clamping it
        // can only make this replica a host timeout, retried elsewhere.
        let unit_time_ms_max = u64::try_from(ceilings.unit_time_max.as_millis()).unwrap_or(u64::MAX);
        let wall_time_ms_max = terms.limits.timeout_ms.min(unit_time_ms_max);
        if !self.execution.controls.memory.fits(terms.limits.memory_bytes) {
            tracing::warn!(
                job = %wasmhive_protocol::printable(&terms.job_id, 64),
                memory = terms.limits.memory_bytes,
                cap = self.execution.controls.memory.bytes_max(),
                "a unit may use more memory than this worker's cap; handed back"
            );
            return send(socket, &Message::ReturnLeases { lease_ids: vec![lease.lease_id] }).await;
        }
        if let Some(blob) = lease.input_blob
            && blob.size > INPUT_BLOB_BYTES_MAX
        {
            tracing::warn!(
                job = %wasmhive_protocol::printable(&terms.job_id, 64),
                input = blob.size,
                ceiling = INPUT_BLOB_BYTES_MAX,
                "a unit's input is larger than this worker takes; handed back"
            );
            return send(socket, &Message::ReturnLeases { lease_ids: vec![lease.lease_id] }).await;
        }
        let shared = terms.shared.iter().map(|file| (file.name.as_str(), file.size));
        if let Err(problem) = wasmhive_protocol::api::check_shared_files(shared) {
            tracing::warn!(job = %wasmhive_protocol::printable(&terms.job_id, 64), %problem, "handed back");
            return send(socket, &Message::ReturnLeases { lease_ids: vec![lease.lease_id] }).await;
        }
        let blobs =
            lease.input_blob.iter().map(|blob| blob.hash).chain(terms.shared.iter().map(|file| file.hash));
        let blobs_held = self.execution.blobs.hold(blobs);
        let lease = LeaseToRun { lease, terms, wall_time_ms_max, blobs_held };
        self.fetch_or_run(socket, lease).await
    }

    /// A lease with its input: runs when its module is here, else waits for it.
    pub(crate) async fn input_ready(
        &mut self,
        socket: &mut Socket,
        lease: LeaseToRun,
    ) -> Result<(), SessionLost> {
        let hash = lease.terms.module;
        let known = self.execution.modules.lock().expect("module store lock").get(&hash);
        if let Some(module) = known {
            self.dispatch(module, lease);
            return Ok(());
        }
        let first_waiter = !self.waiting_for_module.contains_key(&hash);
        self.waiting_for_module.entry(hash).or_default().push(lease);
        if !first_waiter {
            return Ok(());
        }
        match self.execution.blob_fetcher.get() {
            Some(fetcher) => {
                let fetching = fetcher(hash, self.owner_id.clone());
                let fetched = self.fetched_sender.clone();
                tokio::spawn(async move {
                    let _ = fetched.send((hash, fetching.await));
                });
                Ok(())
            }
            None => send(socket, &Message::Want { hash }).await,
        }
    }

    /// A fetch from other peers ended: keep the module, or ask the owner after all.
    async fn module_fetched(
        &mut self,
        socket: &mut Socket,
        hash: Hash,
        bytes: Option<Vec<u8>>,
    ) -> Result<(), SessionLost> {
        match bytes {
            Some(bytes) if Hash::of(&bytes) == hash => {
                self.module_arrived(hash, &bytes);
                Ok(())
            }
            _ if self.waiting_for_module.contains_key(&hash) => send(socket, &Message::Want { hash }).await,
            _ => Ok(()),
        }
    }

    fn module_arrived(&mut self, hash: Hash, bytes: &[u8]) {
        let module = self.execution.modules.lock().expect("module store lock").insert(hash, bytes);
        for lease in self.waiting_for_module.remove(&hash).unwrap_or_default() {
            self.dispatch(module.clone(), lease);
        }
    }

    fn dispatch(&mut self, module: wasmhive_sandbox::ModuleBytes, lease: LeaseToRun) {
        self.finished.dispatched();
        spawn_lease(self.execution.clone(), module, lease, self.not_started.clone(), self.finished.clone());
    }

    fn collect_finished(&mut self) {
        let now = Instant::now();
        // The inputs of units that ran are spent (`spawn_lease`): keep within the budget.
        if self.execution.blobs.take_newly_spent() {
            self.evict_if_over_budget();
        }
        for finished in self.finished.take() {
            if let Finished::Ran(report, hold) = finished {
                if let (Some(hold), Some(blob)) = (hold, report.output_blob) {
                    self.output_reported(report.lease_id, hold, blob);
                }
                self.core.finished(report, now);
            }
        }
    }

    fn queued(&self) -> usize {
        self.finished.in_pool()
            + self.waiting_for_module.values().map(Vec::len).sum::<usize>()
            + self.input_fetches.waiting_count()
    }

    /// Sends what the session core says is due: outcomes, then a request for leases.
    async fn top_up(&mut self, socket: &mut Socket) -> Result<(), SessionLost> {
        let queue = QueueState {
            in_pool: self.finished.in_pool(),
            queued: self.queued(),
            // Slots are spread over owners: each session queues its share of the target.
            target: self.execution.session_target(&self.owner_id, self.core.prefetch_target()),
            paused: self.execution.controls.is_paused(),
        };
        // The session core asks for more when the queue is at half its target.
        self.finished.wake_at(queue.target / 2);
        send_all(socket, self.core.due(Instant::now(), queue)).await
    }

    /// The connection dropped: the owner re-queues our open leases, so unstarted ones are
    /// dropped here rather than run for nothing.
    fn connection_lost(&mut self) {
        self.not_started.take_back_all();
        self.waiting_for_module.clear();
        self.input_fetches.drain();
        // The next session's owner numbers its terms afresh.
        self.terms = TermsReceived::default();
        self.output_session_lost();
        self.core.connection_lost();
    }

    /// Hands back unstarted leases, lets running ones finish within the grace period,
    /// sends their outcomes, waits briefly for acknowledgements and says goodbye.
    async fn shut_down(&mut self, mut socket: Socket) -> SessionEnd {
        let mut returned = self.not_started.take_back_all();
        returned.extend(
            self.waiting_for_module
                .drain()
                .flat_map(|(_, leases)| leases)
                .chain(self.input_fetches.drain())
                .map(|waiting| waiting.lease.lease_id),
        );
        tracing::info!(
            returned = returned.len(),
            running = self.finished.in_pool(),
            "shutting down: handing back unstarted leases"
        );
        if !returned.is_empty()
            && send(&mut socket, &Message::ReturnLeases { lease_ids: returned }).await.is_err()
        {
            return SessionEnd::Shutdown;
        }
        let grace_ends = Instant::now() + self.execution.config.grace;
        while self.finished.in_pool() > 0 {
            self.collect_finished();
            if self.finished.in_pool() == 0
                || tokio::time::timeout_at(grace_ends.into(), self.finished.pushed()).await.is_err()
            {
                break;
            }
        }
        if send_all(&mut socket, self.core.flush_all()).await.is_err() {
            return SessionEnd::Shutdown;
        }
        let acknowledge_ends = Instant::now() + ACKNOWLEDGE_WAIT_ON_SHUTDOWN;
        while self.core.unacknowledged() > 0 {
            match tokio::time::timeout_at(acknowledge_ends.into(), socket.next()).await {
                Ok(Some(Ok(Frame::Binary(bytes)))) => {
                    if let Ok(BinaryFrame::Message(Message::Acknowledged { lease_ids, .. })) =
                        decode_binary(&bytes)
                    {
                        self.core.acknowledged(&lease_ids);
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        let goodbye = Message::Goodbye { reason: "worker shutting down".into() };
        let _ = send(&mut socket, &goodbye).await;
        let _ = socket.close(None).await;
        tracing::info!(unacknowledged = self.core.unacknowledged(), "worker stopped");
        SessionEnd::Shutdown
    }
}

async fn receive_welcome(socket: &mut Socket) -> Result<Message, SessionLost> {
    let frame = tokio::time::timeout(WELCOME_TIMEOUT, socket.next())
        .await
        .map_err(|_| SessionLost::NoWelcome(WELCOME_TIMEOUT.as_secs()))?;
    match frame {
        Some(Ok(Frame::Text(text))) => match decode_message(&text)? {
            Message::Goodbye { reason } => {
                Err(SessionLost::Refused(wasmhive_protocol::printable(&reason, 200)))
            }
            message => Ok(message),
        },
        _ => Err(SessionLost::ClosedBeforeWelcome),
    }
}

pub(crate) async fn send_all(socket: &mut Socket, messages: Vec<Message>) -> Result<(), SessionLost> {
    for message in &messages {
        send(socket, message).await?;
    }
    Ok(())
}

async fn send(socket: &mut Socket, message: &Message) -> Result<(), SessionLost> {
    Ok(socket.send(frame_of(message)).await?)
}

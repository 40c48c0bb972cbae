//! Output blobs a worker reported, fetched from it over its own session before their
//! outcomes are recorded (the owner computes every digest from bytes it holds).
//!
//! Invariants and limits:
//! - an outcome naming an output blob is recorded only once the blob is complete in the
//!   owner's store (every piece verified against its hash as it arrived); a blob the
//!   owner holds already (a second replica's same bytes) is not fetched again;
//! - only outputs of leases the worker holds, within their job's output limit and above
//!   the inline limit, are fetched (`outcomes.rs` checks before anything is asked), one
//!   blob at a time per session, at most [`PIECES_IN_FLIGHT`] pieces asked at once;
//! - a lease's report waits once, however often the worker sends it: what waits is bounded
//!   by the leases the worker holds;
//! - one session of the owner fetches a blob at a time ([`FetchesUnderWay`]): replicas
//!   that finish together send their same bytes once; the others look again every
//!   [`LOOK_AGAIN_AFTER`] and fetch it themselves if that fetch failed;
//! - a piece nobody asked for, one that does not verify, or no piece for
//!   [`PIECE_WAIT_MAX`] ends the session: its leases go back to the queue (the core's
//!   deadlines), and nothing recorded is lost;
//! - a fetched blob is held from its first piece until its outcomes are committed, so no
//!   eviction removes it in between.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmhive_blobs::{BlobHold, BlobStore, Download, PieceError};
use wasmhive_protocol::{BlobRef, Hash, Message, OutcomeReport};

/// Pieces of one output asked of its worker and not yet received.
pub const PIECES_IN_FLIGHT: usize = 8;

/// How long a worker may take to send the next piece of its output.
pub const PIECE_WAIT_MAX: Duration = Duration::from_secs(30);

/// How soon a session whose output another session is fetching looks again.
pub const LOOK_AGAIN_AFTER: Duration = Duration::from_millis(100);

/// The output blobs some session of this owner is fetching.
#[derive(Clone, Debug, Default)]
pub struct FetchesUnderWay(Arc<Mutex<HashSet<Hash>>>);

/// One session's claim to fetch a blob, released when its fetch ends however it ends.
struct FetchClaim {
    under_way: FetchesUnderWay,
    hash: Hash,
}

impl FetchesUnderWay {
    fn claim(&self, hash: Hash) -> Option<FetchClaim> {
        let claimed = self.0.lock().expect("fetch claims lock").insert(hash);
        claimed.then(|| FetchClaim { under_way: self.clone(), hash })
    }
}

impl Drop for FetchClaim {
    fn drop(&mut self) {
        self.under_way.0.lock().expect("fetch claims lock").remove(&self.hash);
    }
}

/// Why fetching a worker's output failed; the session ends with it.
#[derive(Debug, thiserror::Error)]
pub enum OutputFetchError {
    #[error("sent piece {index} of blob {hash}, which the owner did not ask for")]
    Unasked { hash: Hash, index: u64 },
    #[error("sent a piece of its output {hash} that does not verify: {reason}")]
    BadPiece { hash: Hash, reason: String },
    #[error("sent no piece of its output {hash} for {seconds} s")]
    Stalled { hash: Hash, seconds: u64 },
    #[error("the owner could not keep output {hash}: {reason}")]
    Store { hash: Hash, reason: String },
}

/// Outcomes whose output blobs are now here, held until they are committed.
pub struct FetchedOutputs {
    pub reports: Vec<OutcomeReport>,
    pub hold: BlobHold,
}

/// What a step of the fetches asks: messages for the worker, outcomes now ready.
#[derive(Default)]
pub struct FetchProgress {
    pub send: Vec<Message>,
    pub ready: Vec<FetchedOutputs>,
}

/// One session's output fetches: the current one and those waiting their turn.
pub struct OutputFetches {
    blobs: Arc<BlobStore>,
    under_way: FetchesUnderWay,
    /// Boxed: a session that fetches nothing carries a pointer, not the fetch (issue 15).
    current: Option<Box<OutputFetch>>,
    waiting: VecDeque<(BlobRef, Vec<OutcomeReport>)>,
    /// When to look again at a blob another session was fetching (the first waiting one).
    look_again_at: Option<Instant>,
}

struct OutputFetch {
    blob: BlobRef,
    /// `None` only while a piece is being written on a blocking thread.
    download: Option<Download>,
    /// Pieces still to ask, the next one last.
    to_ask: Vec<u64>,
    asked: BTreeSet<u64>,
    reports: Vec<OutcomeReport>,
    hold: BlobHold,
    last_piece_at: Instant,
    _claim: FetchClaim,
}

impl OutputFetches {
    pub fn new(blobs: Arc<BlobStore>, under_way: FetchesUnderWay) -> OutputFetches {
        OutputFetches { blobs, under_way, current: None, waiting: VecDeque::new(), look_again_at: None }
    }

    /// When [`OutputFetches::deadline_passed`] has something to do: the worker has waited
    /// too long to send a piece, or it is time to look again at a blob another session
    /// was fetching.
    pub fn deadline(&self) -> Option<Instant> {
        let stall = self.current.as_ref().map(|fetch| fetch.last_piece_at + PIECE_WAIT_MAX);
        stall.or(self.look_again_at)
    }

    /// The deadline passed: the current fetch stalled (an error), or the waiting outputs
    /// are looked at again.
    pub async fn deadline_passed(&mut self) -> Result<FetchProgress, OutputFetchError> {
        if let Some(fetch) =
            self.current.as_ref().filter(|fetch| fetch.last_piece_at.elapsed() >= PIECE_WAIT_MAX)
        {
            return Err(OutputFetchError::Stalled {
                hash: fetch.blob.hash,
                seconds: PIECE_WAIT_MAX.as_secs(),
            });
        }
        let mut progress = FetchProgress::default();
        self.start_next(&mut progress).await?;
        Ok(progress)
    }

    /// An outcome whose output blob the owner lacks: fetch it (after those before it).
    pub async fn add(
        &mut self,
        blob: BlobRef,
        report: OutcomeReport,
    ) -> Result<FetchProgress, OutputFetchError> {
        // A report of a lease already waiting (a worker sending it again) is dropped: what
        // waits is bounded by the leases the worker holds.
        let mut queued = self.current.iter().flat_map(|fetch| &fetch.reports);
        let mut waiting = self.waiting.iter().flat_map(|(_, reports)| reports);
        let lease_id = report.lease_id;
        if queued.any(|queued| queued.lease_id == lease_id)
            || waiting.any(|waiting| waiting.lease_id == lease_id)
        {
            return Ok(FetchProgress::default());
        }
        if let Some(current) = self.current.as_mut().filter(|fetch| fetch.blob == blob) {
            current.reports.push(report);
            return Ok(FetchProgress::default());
        }
        match self.waiting.iter_mut().find(|(waiting, _)| *waiting == blob) {
            Some((_, reports)) => reports.push(report),
            None => self.waiting.push_back((blob, vec![report])),
        }
        let mut progress = FetchProgress::default();
        if self.look_again_at.is_none() {
            self.start_next(&mut progress).await?;
        }
        Ok(progress)
    }

    /// A piece arrived from the worker: verify and write it, ask for more, and hand back
    /// the outcomes once their blob is complete.
    pub async fn piece_arrived(
        &mut self,
        hash: Hash,
        index: u64,
        encoded: Vec<u8>,
    ) -> Result<FetchProgress, OutputFetchError> {
        let Some(fetch) = self.current.as_mut().filter(|fetch| fetch.blob.hash == hash) else {
            return Err(OutputFetchError::Unasked { hash, index });
        };
        if !fetch.asked.remove(&index) {
            return Err(OutputFetchError::Unasked { hash, index });
        }
        fetch.last_piece_at = Instant::now();
        let mut download = fetch.download.take().expect("no write is under way");
        let (download, written) = tokio::task::spawn_blocking(move || {
            let written = download.write_piece(index, &encoded);
            (download, written)
        })
        .await
        .map_err(|error| OutputFetchError::Store { hash, reason: error.to_string() })?;
        fetch.download = Some(download);
        match written {
            Ok(()) => {}
            Err(PieceError::Store(error)) => {
                return Err(OutputFetchError::Store { hash, reason: error.to_string() });
            }
            Err(invalid) => return Err(OutputFetchError::BadPiece { hash, reason: invalid.to_string() }),
        }
        let mut progress = FetchProgress::default();
        if fetch.to_ask.is_empty() && fetch.asked.is_empty() {
            let fetch = self.current.take().expect("the fetch is current");
            progress.ready.push(finish(*fetch).await?);
            self.start_next(&mut progress).await?;
        } else {
            progress.send = ask_more(fetch);
        }
        Ok(progress)
    }

    /// Starts the next waiting fetch when none is under way; outputs already here are
    /// ready at once.
    async fn start_next(&mut self, progress: &mut FetchProgress) -> Result<(), OutputFetchError> {
        self.look_again_at = None;
        while self.current.is_none() {
            let Some((blob, reports)) = self.waiting.pop_front() else { return Ok(()) };
            let hold = self.blobs.hold([blob.hash]);
            if self.blobs.has(&blob.hash) {
                progress.ready.push(FetchedOutputs { reports, hold });
                continue;
            }
            let Some(claim) = self.under_way.claim(blob.hash) else {
                // Another session is fetching the same bytes: wait for it, not twice.
                self.waiting.push_front((blob, reports));
                self.look_again_at = Some(Instant::now() + LOOK_AGAIN_AFTER);
                return Ok(());
            };
            let blobs = self.blobs.clone();
            let started = tokio::task::spawn_blocking(move || {
                if blobs.has(&blob.hash) { Ok(None) } else { blobs.download(blob.hash, blob.size).map(Some) }
            })
            .await
            .map_err(|error| error.to_string())
            .and_then(|started| started.map_err(|error| error.to_string()))
            .map_err(|reason| OutputFetchError::Store { hash: blob.hash, reason })?;
            let Some(download) = started else {
                progress.ready.push(FetchedOutputs { reports, hold });
                continue;
            };
            let mut to_ask: Vec<u64> = download.missing().collect();
            to_ask.reverse();
            let mut fetch = OutputFetch {
                blob,
                download: Some(download),
                to_ask,
                asked: BTreeSet::new(),
                reports,
                hold,
                last_piece_at: Instant::now(),
                _claim: claim,
            };
            if fetch.to_ask.is_empty() {
                // Every piece was here already (a resumed download).
                progress.ready.push(finish(fetch).await?);
                continue;
            }
            progress.send.extend(ask_more(&mut fetch));
            self.current = Some(Box::new(fetch));
        }
        Ok(())
    }
}

/// Asks for pieces up to the window.
fn ask_more(fetch: &mut OutputFetch) -> Vec<Message> {
    let mut send = Vec::new();
    while fetch.asked.len() < PIECES_IN_FLIGHT {
        let Some(index) = fetch.to_ask.pop() else { break };
        fetch.asked.insert(index);
        send.push(Message::WantPiece { hash: fetch.blob.hash, index });
    }
    send
}

/// Moves a complete download into the store (off the runtime).
async fn finish(fetch: OutputFetch) -> Result<FetchedOutputs, OutputFetchError> {
    let OutputFetch { blob, download, reports, hold, .. } = fetch;
    let download = download.expect("no write is under way");
    tokio::task::spawn_blocking(move || download.finish())
        .await
        .map_err(|error| error.to_string())
        .and_then(|finished| finished.map_err(|error| error.to_string()))
        .map_err(|reason| OutputFetchError::Store { hash: blob.hash, reason })?;
    tracing::info!(blob = %blob.hash.short(), bytes = blob.size, "output fetched from its worker");
    Ok(FetchedOutputs { reports, hold })
}

//! Lease inputs and shared files that are blobs: fetched piece by piece from the owner
//! (`want_piece` on the session) and, on a peer, from up to four other peers at once
//! (`swarm/`), each piece verified against the blob's hash as it arrives
//! (`wasmhive-blobs`), kept on disk, and the leases that wait for them released once
//! complete (a unit reads its input from disk when it starts).
//!
//! Invariants:
//! - a lease whose blob is not here waits; it runs only with the verified bytes;
//! - a piece is asked of one source at a time, rarest first, the owner only for pieces no
//!   peer holds (`swarm/piece_picker.rs`); at most 8 pieces in flight per source;
//! - only pieces asked for are accepted; a bad piece from the owner ends the session with
//!   its reason (an owner that sends bad bytes is not trusted further); a bad piece, a
//!   wrong size or a stall from a peer drops that peer from the swarm, with the reason in
//!   the log, and its pieces are asked of other sources (the owner always has them all);
//! - no blob above [`INPUT_BLOB_BYTES_MAX`] is fetched at all (`session.rs` hands such a
//!   lease back), and a unit reads its blobs from disk as it runs, so their size does not
//!   count against the memory cap;
//! - a lost connection forgets the fetches but not the verified pieces on disk: the next
//!   session's download resumes from them;
//! - pieces are verified and written off the session's thread ([`PieceWrite`], ending in
//!   [`FetchEvent::Written`]); a piece being written is neither asked again nor accepted
//!   again, and a download is complete only when no write is under way.

use crate::session_lost::SessionLost;
use crate::swarm::piece_picker::{Ask, PeerView, pick};
use crate::swarm::{Answer, Question, SOURCES_PER_FETCH, SwarmPeer};
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmhive_blobs::{BlobStore, Download, PieceError, piece_count};
#[cfg(doc)]
use wasmhive_protocol::INPUT_BLOB_BYTES_MAX;
use wasmhive_protocol::{BlobRef, Hash, Message};

/// A peer that answers `not_held` this many times in a row for pieces it said it held is
/// dropped (it would otherwise keep the owner from being asked for them).
const BROKEN_CLAIMS_MAX: u32 = 8;
/// How often a peer source is asked again which pieces it holds, while a fetch lasts.
const HOLDING_REFRESH: Duration = Duration::from_millis(250);
/// How often a fetch with fewer than [`SOURCES_PER_FETCH`] peers looks for more.
const SOURCES_REFRESH: Duration = Duration::from_secs(2);

/// Blobs being fetched, with the leases (of type `L`) waiting for each.
pub struct InputFetches<L> {
    fetches: HashMap<Hash, Fetch<L>>,
    /// Complete downloads being synced and moved into the store, with their leases.
    finishing: HashMap<Hash, Vec<L>>,
    /// Whether other peers are looked for as sources (on a peer; a plain worker asks its owner).
    finds_sources: bool,
    rng: fastrand::Rng,
}

struct Fetch<L> {
    download: Arc<Mutex<Download>>,
    size: u64,
    owner_asked: BTreeSet<u64>,
    /// Pieces that arrived and are being verified and written.
    writing: BTreeSet<u64>,
    /// Pieces not yet written (the download's own list when it started, kept here so the
    /// session never waits on a write's lock to know what to ask).
    missing: BTreeSet<u64>,
    peers: Vec<PeerSource>,
    sources_sought_at: Option<Instant>,
    waiting: Vec<L>,
    /// Pieces written from the owner and from peers (reported when the fetch ends).
    from_owner: u64,
    from_peers: u64,
}

struct PeerSource {
    peer: SwarmPeer,
    held: Vec<Range<u64>>,
    asked: BTreeSet<u64>,
    holding_asked_at: Option<Instant>,
    holding_pending: bool,
    /// `not_held` answers in a row for pieces it claimed.
    broken_claims: u32,
}

/// What the session feeds back to a fetch: sources found, a peer's answer, or a complete
/// download moved into the store (synced to disk on a blocking thread).
pub enum FetchEvent {
    Sources {
        hash: Hash,
        peers: Vec<SwarmPeer>,
    },
    Answer {
        hash: Hash,
        peer_id: String,
        question: Question,
        answer: Result<Answer, String>,
    },
    /// A [`PieceWrite`] ended.
    Written {
        hash: Hash,
        index: u64,
        from: Option<String>,
        result: Result<(), PieceError>,
    },
    Finished {
        hash: Hash,
        result: Result<(), String>,
    },
}

/// A piece to verify and write into its download, off the session's thread; `from` is the
/// peer that sent it (`None`: the owner). Its end is a [`FetchEvent::Written`], sent once
/// this value (and its hold on the download) is gone.
pub struct PieceWrite {
    pub download: Arc<Mutex<Download>>,
    pub hash: Hash,
    pub index: u64,
    /// A slice of the frame it came in: pieces are not copied on their way to the disk.
    pub encoded: bytes::Bytes,
    pub from: Option<String>,
}

impl PieceWrite {
    /// Verifies and writes the piece (blocking disk IO); the event that reports it.
    pub fn write(self) -> FetchEvent {
        let PieceWrite { download, hash, index, encoded, from } = self;
        let result = download.lock().expect("download lock").write_piece(index, &encoded);
        drop(download);
        FetchEvent::Written { hash, index, from, result }
    }
}

/// What an event led to: messages to the owner, questions to peers, sources to look for,
/// peers to drop from the swarm (and why), and leases whose blob is now on disk.
pub struct Progress<L> {
    pub send: Vec<Message>,
    pub ask: Vec<(SwarmPeer, Question)>,
    pub seek_sources: Vec<Hash>,
    pub drop_peers: Vec<(String, String)>,
    pub ready: Vec<L>,
    /// Pieces to verify and write off the session's thread.
    pub write: Vec<PieceWrite>,
    /// Complete downloads to finish (sync and move into the store) off the session's
    /// thread; each ends in [`FetchEvent::Finished`].
    pub finish: Vec<Download>,
    /// Blobs whose fetch completed (the store may now be over its budget).
    pub fetched: Vec<Hash>,
}

impl<L> Default for Progress<L> {
    fn default() -> Self {
        Progress {
            send: Vec::new(),
            ask: Vec::new(),
            seek_sources: Vec::new(),
            drop_peers: Vec::new(),
            ready: Vec::new(),
            write: Vec::new(),
            finish: Vec::new(),
            fetched: Vec::new(),
        }
    }
}

impl<L> InputFetches<L> {
    pub fn new(finds_sources: bool) -> Self {
        InputFetches {
            fetches: HashMap::new(),
            finishing: HashMap::new(),
            finds_sources,
            rng: fastrand::Rng::new(),
        }
    }

    /// A lease that reads `blob`: ready at once when the blob is here, else it waits for
    /// the fetch (started now, or already under way).
    pub fn lease_arrived(
        &mut self,
        store: &Arc<BlobStore>,
        blob: BlobRef,
        lease: L,
    ) -> Result<Progress<L>, SessionLost> {
        let mut progress = Progress::default();
        if store.has(&blob.hash) {
            progress.ready.push(lease);
            return Ok(progress);
        }
        if let Some(fetch) = self.fetches.get_mut(&blob.hash) {
            fetch.waiting.push(lease);
            return Ok(progress);
        }
        if let Some(waiting) = self.finishing.get_mut(&blob.hash) {
            waiting.push(lease);
            return Ok(progress);
        }
        let download = store
            .download(blob.hash, blob.size)
            .map_err(|error| SessionLost::InputBlob(error.to_string()))?;
        let fetch = Fetch {
            missing: download.missing().collect(),
            download: Arc::new(Mutex::new(download)),
            size: blob.size,
            owner_asked: BTreeSet::new(),
            writing: BTreeSet::new(),
            peers: Vec::new(),
            sources_sought_at: None,
            waiting: vec![lease],
            from_owner: 0,
            from_peers: 0,
        };
        self.fetches.insert(blob.hash, fetch);
        self.step(blob.hash, Instant::now(), progress)
    }

    /// Piece `index` of blob `hash` arrived from the owner.
    pub fn piece_arrived(
        &mut self,
        hash: Hash,
        index: u64,
        encoded: bytes::Bytes,
    ) -> Result<Progress<L>, SessionLost> {
        let unasked = || SessionLost::UnaskedBlob(format!("{} (piece {index})", hash.short()));
        let fetch = self.fetches.get_mut(&hash).ok_or_else(unasked)?;
        if !fetch.owner_asked.remove(&index) {
            return Err(unasked());
        }
        fetch.writing.insert(index);
        let mut progress = Progress::default();
        progress.write.push(PieceWrite {
            download: fetch.download.clone(),
            hash,
            index,
            encoded,
            from: None,
        });
        Ok(progress)
    }

    /// A piece was verified and written, or refused: count it, or drop its sender (a peer)
    /// or end the session (the owner).
    fn written(
        &mut self,
        hash: Hash,
        index: u64,
        from: Option<String>,
        result: Result<(), PieceError>,
        progress: &mut Progress<L>,
    ) -> Result<(), SessionLost> {
        let Some(fetch) = self.fetches.get_mut(&hash) else { return Ok(()) };
        fetch.writing.remove(&index);
        if result.is_ok() {
            fetch.missing.remove(&index);
        }
        match (result, from) {
            (Ok(()), None) => fetch.from_owner += 1,
            (Ok(()), Some(peer_id)) => {
                fetch.from_peers += 1;
                if let Some(source) = fetch.peers.iter_mut().find(|source| source.peer.peer_id == peer_id) {
                    source.broken_claims = 0;
                }
            }
            (Err(PieceError::Store(error)), _) => return Err(SessionLost::InputBlob(error.to_string())),
            (Err(error), None) => return Err(SessionLost::BadPiece(error.to_string())),
            (Err(error), Some(peer_id)) => {
                if let Some(position) = fetch.peers.iter().position(|source| source.peer.peer_id == peer_id) {
                    fetch.peers.swap_remove(position);
                    progress.drop_peers.push((peer_id, format!("it sent a bad piece: {error}")));
                }
            }
        }
        Ok(())
    }

    /// Sources found for a fetch, or a peer's answer to a question.
    pub fn swarm_event(&mut self, event: FetchEvent, now: Instant) -> Result<Progress<L>, SessionLost> {
        let mut progress = Progress::default();
        let hash = match event {
            FetchEvent::Written { hash, index, from, result } => {
                self.written(hash, index, from, result, &mut progress)?;
                hash
            }
            FetchEvent::Finished { hash, result } => {
                result.map_err(SessionLost::InputBlob)?;
                progress.ready.extend(self.finishing.remove(&hash).unwrap_or_default());
                progress.fetched.push(hash);
                return Ok(progress);
            }
            FetchEvent::Sources { hash, peers } => {
                let Some(fetch) = self.fetches.get_mut(&hash) else { return Ok(progress) };
                for peer in peers {
                    if fetch.peers.len() < SOURCES_PER_FETCH
                        && !fetch.peers.iter().any(|known| known.peer.peer_id == peer.peer_id)
                    {
                        fetch.peers.push(PeerSource {
                            peer,
                            held: Vec::new(),
                            asked: BTreeSet::new(),
                            holding_asked_at: None,
                            holding_pending: false,
                            broken_claims: 0,
                        });
                    }
                }
                hash
            }
            FetchEvent::Answer { hash, peer_id, question, answer } => {
                let Some(fetch) = self.fetches.get_mut(&hash) else { return Ok(progress) };
                let Some(position) = fetch.peers.iter().position(|source| source.peer.peer_id == peer_id)
                else {
                    return Ok(progress);
                };
                if let Some(reason) = fetch.peer_answered(hash, position, question, answer, &mut progress) {
                    let source = fetch.peers.swap_remove(position);
                    progress.drop_peers.push((source.peer.peer_id, reason));
                }
                hash
            }
        };
        self.step(hash, now, progress)
    }

    /// Asks peers again which pieces they hold, and looks for more peers, as time passes.
    pub fn refresh(&mut self, now: Instant) -> Result<Progress<L>, SessionLost> {
        let hashes: Vec<Hash> = self.fetches.keys().copied().collect();
        let mut progress = Progress::default();
        for hash in hashes {
            progress = self.step(hash, now, progress)?;
        }
        Ok(progress)
    }

    /// Asks for more pieces of `hash` (and holdings, and sources, when due), or completes it.
    fn step(
        &mut self,
        hash: Hash,
        now: Instant,
        mut progress: Progress<L>,
    ) -> Result<Progress<L>, SessionLost> {
        let Some(fetch) = self.fetches.get_mut(&hash) else { return Ok(progress) };
        // Complete once every piece is written and no write holds the download any more.
        let settled = fetch.writing.is_empty() && Arc::strong_count(&fetch.download) == 1;
        if settled && fetch.missing.is_empty() {
            let fetch = self.fetches.remove(&hash).expect("found above");
            tracing::info!(
                blob = %hash.short(),
                bytes = fetch.size,
                pieces_from_owner = fetch.from_owner,
                pieces_from_peers = fetch.from_peers,
                "blob fetched"
            );
            let download = Arc::into_inner(fetch.download).expect("settled: no other holder");
            progress.finish.push(download.into_inner().expect("download lock"));
            self.finishing.insert(hash, fetch.waiting);
            return Ok(progress);
        }
        let seek_due = fetch.sources_sought_at.is_none_or(|at| now.duration_since(at) >= SOURCES_REFRESH);
        if self.finds_sources && fetch.peers.len() < SOURCES_PER_FETCH && seek_due {
            fetch.sources_sought_at = Some(now);
            progress.seek_sources.push(hash);
        }
        for source in &mut fetch.peers {
            let due = source.holding_asked_at.is_none_or(|at| now.duration_since(at) >= HOLDING_REFRESH);
            if !source.holding_pending && due {
                source.holding_pending = true;
                source.holding_asked_at = Some(now);
                progress.ask.push((source.peer.clone(), Question::Holding(hash)));
            }
        }
        fetch.ask_more(hash, &mut self.rng, &mut progress);
        Ok(progress)
    }

    /// Leases waiting for a blob, to drop those cancelled or hand them back.
    pub fn waiting_mut(&mut self) -> impl Iterator<Item = &mut Vec<L>> {
        self.fetches.values_mut().map(|fetch| &mut fetch.waiting).chain(self.finishing.values_mut())
    }

    pub fn waiting_count(&self) -> usize {
        self.fetches.values().map(|fetch| fetch.waiting.len()).sum::<usize>()
            + self.finishing.values().map(Vec::len).sum::<usize>()
    }

    /// Forgets every fetch and hands back the leases that waited (verified pieces stay on
    /// disk for the next download of the same blob).
    pub fn drain(&mut self) -> Vec<L> {
        let finishing = self.finishing.drain().flat_map(|(_, waiting)| waiting);
        self.fetches.drain().flat_map(|(_, fetch)| fetch.waiting).chain(finishing).collect()
    }
}

impl<L> Fetch<L> {
    /// Takes a peer's answer; `Some(reason)` when the peer is to be dropped from the swarm.
    fn peer_answered(
        &mut self,
        hash: Hash,
        position: usize,
        question: Question,
        answer: Result<Answer, String>,
        progress: &mut Progress<L>,
    ) -> Option<String> {
        let source = &mut self.peers[position];
        let answer = match answer {
            Ok(answer) => answer,
            Err(reason) => return Some(reason),
        };
        match (question, answer) {
            (Question::Holding(_), Answer::Holding { size, ranges }) => {
                source.holding_pending = false;
                if size != self.size {
                    return Some(format!("it says the blob has {size} bytes; it has {}", self.size));
                }
                source.held = ranges;
            }
            (Question::Holding(_), _) => {
                source.holding_pending = false;
                source.held.clear();
            }
            (Question::Piece(_, index), Answer::Piece(encoded)) => {
                source.asked.remove(&index);
                self.writing.insert(index);
                let from = Some(source.peer.peer_id.clone());
                progress.write.push(PieceWrite {
                    download: self.download.clone(),
                    hash,
                    index,
                    encoded,
                    from,
                });
            }
            (Question::Piece(_, index), _) => {
                // Not held after all (or busy): ask it again which pieces it holds.
                source.asked.remove(&index);
                source.held.clear();
                source.broken_claims += 1;
                if source.broken_claims >= BROKEN_CLAIMS_MAX {
                    return Some(format!(
                        "it said it held {BROKEN_CLAIMS_MAX} pieces in a row that it then would not send"
                    ));
                }
            }
            (Question::Module(_), _) => {}
        }
        None
    }

    /// Assigns missing pieces no source is asked for to sources with room.
    fn ask_more(&mut self, hash: Hash, rng: &mut fastrand::Rng, progress: &mut Progress<L>) {
        let in_flight = |index: &u64| {
            self.owner_asked.contains(index)
                || self.writing.contains(index)
                || self.peers.iter().any(|source| source.asked.contains(index))
        };
        let unasked: Vec<u64> = self.missing.iter().copied().filter(|index| !in_flight(index)).collect();
        if unasked.is_empty() {
            return;
        }
        let views: Vec<PeerView<'_>> = self
            .peers
            .iter()
            .map(|source| PeerView { held: &source.held, in_flight: source.asked.len() })
            .collect();
        let last_piece = piece_count(self.size).checked_sub(1);
        let picks = pick(&unasked, last_piece, &views, self.owner_asked.len(), rng);
        for (ask, index) in picks {
            match ask {
                Ask::Owner => {
                    self.owner_asked.insert(index);
                    progress.send.push(Message::WantPiece { hash, index });
                }
                Ask::Peer(position) => {
                    let source = &mut self.peers[position];
                    source.asked.insert(index);
                    progress.ask.push((source.peer.clone(), Question::Piece(hash, index)));
                }
            }
        }
    }
}

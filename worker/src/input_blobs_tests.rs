//! Fetching a blob from the owner and peers at once (`input_blobs.rs`), peers played by
//! the test: rarest first, the owner asked only for what no peer holds, and a peer that
//! sends a bad piece, claims a wrong size or stalls dropped with its reason.

use crate::input_blobs::{FetchEvent, InputFetches, Progress};
use crate::swarm::{Answer, Question, SwarmPeer};
use std::sync::Arc;
use std::time::Instant;
use wasmhive_blobs::{BlobStore, PIECE_BYTES};
use wasmhive_protocol::{BlobRef, Hash, Message};

struct Stores {
    seeder: Arc<BlobStore>,
    fetcher: Arc<BlobStore>,
    _folders: [TempFolder; 2],
}

struct TempFolder(std::path::PathBuf);

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stores(name: &str) -> Stores {
    let folder = |role: &str| {
        let path = std::env::temp_dir().join(format!("wasmhive-fetch-{name}-{role}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempFolder(path)
    };
    let folders = [folder("seeder"), folder("fetcher")];
    let seeder = Arc::new(BlobStore::open(&folders[0].0, u64::MAX).unwrap());
    let fetcher = Arc::new(BlobStore::open(&folders[1].0, u64::MAX).unwrap());
    Stores { seeder, fetcher, _folders: folders }
}

fn blob(stores: &Stores, pieces: u64) -> BlobRef {
    let data: Vec<u8> = (0..pieces * PIECE_BYTES).map(|index| (index * 31 % 251) as u8).collect();
    BlobRef { hash: stores.seeder.import(&data[..], data.len() as u64).unwrap(), size: data.len() as u64 }
}

fn piece(store: &BlobStore, hash: &Hash, index: u64) -> bytes::Bytes {
    let mut encoded = Vec::new();
    store.encode_piece(hash, index, &mut encoded).unwrap();
    encoded.into()
}

/// Runs the piece writes `progress` asks for (the session runs them on blocking threads;
/// here at once) and feeds their ends back; what they led to is added to `progress`.
fn settle(fetches: &mut InputFetches<u32>, mut progress: Progress<u32>) -> Progress<u32> {
    while let Some(write) = progress.write.pop() {
        let after = fetches.swarm_event(write.write(), Instant::now()).unwrap();
        progress.send.extend(after.send);
        progress.ask.extend(after.ask);
        progress.drop_peers.extend(after.drop_peers);
        progress.ready.extend(after.ready);
        progress.write.extend(after.write);
        progress.finish.extend(after.finish);
    }
    progress
}

fn answer(peer: &str, question: Question, answer: Answer) -> FetchEvent {
    let (Question::Holding(hash) | Question::Piece(hash, _) | Question::Module(hash)) = question;
    FetchEvent::Answer { hash, peer_id: peer.into(), question, answer: Ok(answer) }
}

fn owner_pieces(progress: &Progress<u32>) -> Vec<u64> {
    progress
        .send
        .iter()
        .filter_map(|message| match message {
            Message::WantPiece { index, .. } => Some(*index),
            _ => None,
        })
        .collect()
}

fn pieces_asked_of(progress: &Progress<u32>, peer: &str) -> Vec<u64> {
    progress
        .ask
        .iter()
        .filter(|(asked, _)| asked.peer_id == peer)
        .filter_map(|(_, question)| match question {
            Question::Piece(_, index) => Some(*index),
            _ => None,
        })
        .collect()
}

/// Starts a fetch of `blob` with peers `names`, each saying it holds every piece.
fn fetch_from_peers(stores: &Stores, blob: BlobRef, names: &[&str]) -> (InputFetches<u32>, Progress<u32>) {
    let mut fetches = InputFetches::new(true);
    let started = fetches.lease_arrived(&stores.fetcher, blob, 1).unwrap();
    assert_eq!(started.seek_sources, [blob.hash], "a peer looks for sources");
    let peers: Vec<SwarmPeer> = names.iter().map(|name| SwarmPeer::scripted(name)).collect();
    let found = fetches.swarm_event(FetchEvent::Sources { hash: blob.hash, peers }, Instant::now()).unwrap();
    assert_eq!(found.ask.len(), names.len(), "each source is asked what it holds");
    let pieces = blob.size / PIECE_BYTES;
    let mut progress = Progress::default();
    for name in names {
        let holding = Answer::Holding { size: blob.size, ranges: vec![0..pieces] };
        let answered =
            fetches.swarm_event(answer(name, Question::Holding(blob.hash), holding), Instant::now()).unwrap();
        progress.ask.extend(answered.ask);
    }
    (fetches, progress)
}

#[test]
fn pieces_peers_hold_are_fetched_from_them_and_not_from_the_owner() {
    let stores = stores("peers");
    let blob = blob(&stores, 12);
    let mut fetches = InputFetches::new(true);
    let started = fetches.lease_arrived(&stores.fetcher, blob, 1).unwrap();
    assert_eq!(
        owner_pieces(&started)[0],
        11,
        "before any peer answers, the owner is asked (last piece first)"
    );
    let owner_asked = owner_pieces(&started);
    let peer = SwarmPeer::scripted("peer-a");
    fetches.swarm_event(FetchEvent::Sources { hash: blob.hash, peers: vec![peer] }, Instant::now()).unwrap();
    let holding = Answer::Holding { size: blob.size, ranges: vec![0..12] };
    let progress =
        fetches.swarm_event(answer("peer-a", Question::Holding(blob.hash), holding), Instant::now()).unwrap();
    let mut peer_queue = pieces_asked_of(&progress, "peer-a");
    let (mut ready, mut complete) = (Vec::new(), Vec::new());
    for index in owner_asked {
        let arrived =
            fetches.piece_arrived(blob.hash, index, piece(&stores.seeder, &blob.hash, index)).unwrap();
        let progress = settle(&mut fetches, arrived);
        assert!(owner_pieces(&progress).is_empty(), "the owner is not asked for pieces a peer holds");
        peer_queue.extend(pieces_asked_of(&progress, "peer-a"));
        ready.extend(progress.ready);
        complete.extend(progress.finish);
    }
    let mut from_peer = 0;
    while let Some(index) = peer_queue.pop() {
        from_peer += 1;
        let encoded = Answer::Piece(piece(&stores.seeder, &blob.hash, index));
        let arrived = fetches
            .swarm_event(answer("peer-a", Question::Piece(blob.hash, index), encoded), Instant::now())
            .unwrap();
        let progress = settle(&mut fetches, arrived);
        assert!(owner_pieces(&progress).is_empty());
        peer_queue.extend(pieces_asked_of(&progress, "peer-a"));
        ready.extend(progress.ready);
        complete.extend(progress.finish);
    }
    assert!(ready.is_empty(), "the lease waits until the download is synced and in the store");
    assert_eq!(complete.len(), 1, "one download to finish");
    for download in complete {
        download.finish().unwrap();
    }
    let finished = FetchEvent::Finished { hash: blob.hash, result: Ok(()) };
    let progress = fetches.swarm_event(finished, Instant::now()).unwrap();
    assert_eq!(progress.ready, [1], "the lease runs once the blob is complete");
    assert_eq!(from_peer, 12 - 8, "the owner sent its first window, the peer the rest");
    assert!(stores.fetcher.has(&blob.hash));
}

#[test]
fn a_peer_that_sends_a_bad_piece_is_dropped_and_its_piece_asked_elsewhere() {
    let stores = stores("poisoned");
    let blob = blob(&stores, 12);
    let (mut fetches, progress) = fetch_from_peers(&stores, blob, &["poisoner", "honest"]);
    let index = pieces_asked_of(&progress, "poisoner")[0];
    let mut poisoned = piece(&stores.seeder, &blob.hash, index).to_vec();
    let last = poisoned.len() - 1;
    poisoned[last] ^= 1;
    let arrived = fetches
        .swarm_event(
            answer("poisoner", Question::Piece(blob.hash, index), Answer::Piece(poisoned.into())),
            Instant::now(),
        )
        .unwrap();
    let after = settle(&mut fetches, arrived);
    assert_eq!(after.drop_peers.len(), 1, "the poisoner is dropped");
    let (dropped, reason) = &after.drop_peers[0];
    assert_eq!(dropped, "poisoner");
    assert!(reason.contains("bad piece") && reason.contains(&format!("piece {index}")), "{reason}");
    let asked_again =
        pieces_asked_of(&after, "honest").contains(&index) || owner_pieces(&after).contains(&index);
    assert!(asked_again, "piece {index} is asked of another source");
    // A late answer from the dropped peer is ignored, not trusted.
    let late = Answer::Piece(piece(&stores.seeder, &blob.hash, index));
    let ignored = fetches
        .swarm_event(answer("poisoner", Question::Piece(blob.hash, index), late), Instant::now())
        .unwrap();
    assert!(ignored.ask.is_empty() && ignored.send.is_empty() && ignored.drop_peers.is_empty());
    assert!(ignored.write.is_empty(), "nothing of it is written");
}

#[test]
fn a_peer_that_claims_another_size_or_stalls_is_dropped_with_its_reason() {
    let stores = stores("liars");
    let blob = blob(&stores, 3);
    let mut fetches = InputFetches::<u32>::new(true);
    fetches.lease_arrived(&stores.fetcher, blob, 1).unwrap();
    let peers = vec![SwarmPeer::scripted("liar"), SwarmPeer::scripted("staller")];
    fetches.swarm_event(FetchEvent::Sources { hash: blob.hash, peers }, Instant::now()).unwrap();
    let lie = Answer::Holding { size: blob.size * 2, ranges: vec![0..6] };
    let after =
        fetches.swarm_event(answer("liar", Question::Holding(blob.hash), lie), Instant::now()).unwrap();
    assert_eq!(after.drop_peers.len(), 1);
    assert!(after.drop_peers[0].1.contains(&format!("{} bytes", blob.size * 2)), "{:?}", after.drop_peers);
    let stalled = FetchEvent::Answer {
        hash: blob.hash,
        peer_id: "staller".into(),
        question: Question::Holding(blob.hash),
        answer: Err("stalled: no answer in 10 s".into()),
    };
    let after = fetches.swarm_event(stalled, Instant::now()).unwrap();
    assert_eq!(after.drop_peers, [("staller".to_string(), "stalled: no answer in 10 s".to_string())]);
}

#[test]
fn a_peer_that_claims_pieces_it_then_will_not_send_is_dropped() {
    let stores = stores("claimer");
    let blob = blob(&stores, 40);
    let (mut fetches, progress) = fetch_from_peers(&stores, blob, &["claimer"]);
    let mut asked = pieces_asked_of(&progress, "claimer");
    let mut dropped = Vec::new();
    for _ in 0..64 {
        let Some(index) = asked.pop() else { break };
        let refused = answer("claimer", Question::Piece(blob.hash, index), Answer::NotHeld);
        let after = fetches.swarm_event(refused, Instant::now()).unwrap();
        dropped.extend(after.drop_peers);
        // It claims every piece again whenever asked.
        let claim = Answer::Holding { size: blob.size, ranges: vec![0..40] };
        let after =
            fetches.swarm_event(answer("claimer", Question::Holding(blob.hash), claim), Instant::now());
        if let Ok(after) = after {
            asked.extend(pieces_asked_of(&after, "claimer"));
        }
        if !dropped.is_empty() {
            break;
        }
    }
    assert_eq!(dropped.len(), 1, "a peer that keeps refusing pieces it claims is dropped");
    assert!(dropped[0].1.contains("would not send"), "{:?}", dropped[0]);
}

#[test]
fn a_piece_being_written_is_neither_taken_again_nor_asked_again() {
    let stores = stores("writing");
    let blob = blob(&stores, 12);
    let mut fetches = InputFetches::<u32>::new(false);
    let started = fetches.lease_arrived(&stores.fetcher, blob, 1).unwrap();
    let index = owner_pieces(&started)[0];
    let encoded = piece(&stores.seeder, &blob.hash, index);
    let arrived = fetches.piece_arrived(blob.hash, index, encoded.clone()).unwrap();
    assert_eq!(arrived.write.len(), 1, "written off the session's thread");
    assert!(fetches.piece_arrived(blob.hash, index, encoded).is_err(), "the same piece again is unasked");
    let refreshed = fetches.refresh(Instant::now()).unwrap();
    assert!(!owner_pieces(&refreshed).contains(&index), "not asked again while it is written");
    let written = settle(&mut fetches, arrived);
    assert!(!owner_pieces(&written).contains(&index), "nor once it is");
}

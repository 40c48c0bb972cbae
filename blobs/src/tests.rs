//! The blob store's invariants: blobs hash to their names, pieces verify before they are
//! written, downloads resume, bad pieces and bad data are refused, the budget holds.

use crate::{BlobError, BlobStore, Download, Hash, PIECE_BYTES, PieceError, piece_count};
use std::collections::HashSet;
use std::path::PathBuf;

/// A fresh folder under the system's temporary directory, removed when dropped.
pub(crate) struct Folder(pub(crate) PathBuf);

impl Folder {
    pub(crate) fn new(name: &str) -> Folder {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("wasmhive-blobs-{name}-{}-{serial}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Folder(path)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bytes that differ at every position (a piece swapped for another is caught).
pub(crate) fn bytes(size: usize, seed: u8) -> Vec<u8> {
    (0..size).map(|index| (index as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed).collect()
}

fn open_store(folder: &std::path::Path, budget_bytes: u64) -> Result<std::sync::Arc<BlobStore>, BlobError> {
    BlobStore::open(folder, budget_bytes).map(std::sync::Arc::new)
}

fn import(store: &BlobStore, data: &[u8]) -> Hash {
    store.import(data, data.len() as u64).unwrap()
}

fn encoded_piece(store: &BlobStore, hash: &Hash, index: u64) -> Vec<u8> {
    let mut encoded = Vec::new();
    store.encode_piece(hash, index, &mut encoded).unwrap();
    encoded
}

fn read_all(store: &BlobStore, hash: &Hash) -> Vec<u8> {
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut store.open_blob(hash).unwrap(), &mut data).unwrap();
    data
}

/// Fetches every missing piece of `download` from `source`.
fn fetch_all(source: &BlobStore, download: &mut Download) {
    let hash = download.hash();
    let missing: Vec<u64> = download.missing().collect();
    for index in missing {
        download.write_piece(index, &encoded_piece(source, &hash, index)).unwrap();
    }
}

#[test]
fn an_imported_blob_is_named_by_its_blake3_hash_and_reads_back() {
    let folder = Folder::new("import");
    let store = open_store(&folder.0, u64::MAX).unwrap();
    for size in [0, 1, 1023, 1024, 1025, 16 << 10, PIECE_BYTES as usize, PIECE_BYTES as usize * 3 + 17] {
        let data = bytes(size, 1);
        let hash = import(&store, &data);
        assert_eq!(hash, Hash::of(&data), "{size} bytes");
        assert_eq!(read_all(&store, &hash), data);
        assert_eq!(store.size(&hash), Some(size as u64));
    }
}

#[test]
fn an_import_that_is_shorter_or_longer_than_announced_is_refused_and_leaves_nothing() {
    let folder = Folder::new("short");
    let store = open_store(&folder.0, u64::MAX).unwrap();
    let data = bytes(100_000, 2);
    let short = store.import(&data[..99_000], 100_000).unwrap_err();
    assert!(matches!(short, BlobError::WrongLength { announced: 100_000, read: 99_000 }), "{short}");
    let long = store.import(&data[..], 99_000).unwrap_err();
    assert!(matches!(long, BlobError::WrongLength { announced: 99_000, .. }), "{long}");
    assert!(!store.has(&Hash::of(&data)) && !store.has(&Hash::of(&data[..99_000])));
    assert_eq!(store.total_bytes(), 0);
    assert_eq!(std::fs::read_dir(folder.0.join("tmp")).unwrap().count(), 0, "no half import left behind");
}

#[test]
fn a_blob_moves_between_stores_in_verified_pieces() {
    let (seeder_folder, fetcher_folder) = (Folder::new("seeder"), Folder::new("fetcher"));
    let seeder = open_store(&seeder_folder.0, u64::MAX).unwrap();
    let fetcher = open_store(&fetcher_folder.0, u64::MAX).unwrap();
    let data = bytes(PIECE_BYTES as usize * 5 + 4_000, 3);
    let hash = import(&seeder, &data);
    let mut download = fetcher.download(hash, data.len() as u64).unwrap();
    assert_eq!(download.missing().count() as u64, piece_count(data.len() as u64));
    // Pieces in any order, as a swarm delivers them.
    for index in [3, 0, 5, 1, 4, 2] {
        download.write_piece(index, &encoded_piece(&seeder, &hash, index)).unwrap();
    }
    assert_eq!(download.finish().unwrap(), hash);
    assert_eq!(read_all(&fetcher, &hash), data);
}

#[test]
fn a_poisoned_piece_is_refused_naming_it_and_the_true_piece_is_then_accepted() {
    let (seeder_folder, fetcher_folder) = (Folder::new("poison-seeder"), Folder::new("poison-fetcher"));
    let seeder = open_store(&seeder_folder.0, u64::MAX).unwrap();
    let fetcher = open_store(&fetcher_folder.0, u64::MAX).unwrap();
    let data = bytes(PIECE_BYTES as usize * 2, 4);
    let hash = import(&seeder, &data);
    let mut download = fetcher.download(hash, data.len() as u64).unwrap();
    let true_piece = encoded_piece(&seeder, &hash, 1);
    let mut flipped = true_piece.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let mut trailing = true_piece.clone();
    trailing.push(0);
    let other_blob = bytes(PIECE_BYTES as usize * 2, 5);
    let other_hash = import(&seeder, &other_blob);
    let hostile = [
        flipped,
        trailing,
        true_piece[..true_piece.len() / 2].to_vec(),
        Vec::new(),
        encoded_piece(&seeder, &other_hash, 1),
        encoded_piece(&seeder, &hash, 0),
    ];
    for (case, piece) in hostile.iter().enumerate() {
        let error = download.write_piece(1, piece).unwrap_err();
        assert!(matches!(error, PieceError::Invalid { index: 1, .. }), "case {case}: {error}");
    }
    assert_eq!(download.missing().collect::<Vec<_>>(), [1, 0], "no bad piece counts as held");
    let past_the_end = download.write_piece(2, &true_piece).unwrap_err();
    assert!(matches!(past_the_end, PieceError::NoSuchPiece { index: 2, pieces: 2 }), "{past_the_end}");
    download.write_piece(1, &true_piece).unwrap();
    download.write_piece(0, &encoded_piece(&seeder, &hash, 0)).unwrap();
    download.finish().unwrap();
    assert_eq!(read_all(&fetcher, &hash), data);
}

#[test]
fn a_size_claim_that_is_not_the_blobs_fails_on_the_last_piece_which_is_fetched_first() {
    let (seeder_folder, fetcher_folder) = (Folder::new("size-seeder"), Folder::new("size-fetcher"));
    let seeder = open_store(&seeder_folder.0, u64::MAX).unwrap();
    let fetcher = open_store(&fetcher_folder.0, u64::MAX).unwrap();
    let data = bytes(PIECE_BYTES as usize + 10, 6);
    let hash = import(&seeder, &data);
    for claimed in [data.len() as u64 + 1, data.len() as u64 - 1, data.len() as u64 + PIECE_BYTES] {
        let mut download = fetcher.download(hash, claimed).unwrap();
        let first = download.missing().next().unwrap();
        assert_eq!(first, piece_count(claimed) - 1, "the last piece is asked for first");
        let mut sent = Vec::new();
        let _ = seeder.encode_piece(&hash, first, &mut sent);
        let error = download.write_piece(first, &sent).unwrap_err();
        assert!(matches!(error, PieceError::Invalid { .. }), "claimed {claimed}: {error}");
    }
}

#[test]
fn a_download_resumes_after_a_restart_with_the_pieces_it_had() {
    let (seeder_folder, fetcher_folder) = (Folder::new("resume-seeder"), Folder::new("resume-fetcher"));
    let seeder = open_store(&seeder_folder.0, u64::MAX).unwrap();
    let data = bytes(PIECE_BYTES as usize * 4, 7);
    let hash = import(&seeder, &data);
    {
        let fetcher = open_store(&fetcher_folder.0, u64::MAX).unwrap();
        let mut download = fetcher.download(hash, data.len() as u64).unwrap();
        for index in [0, 2] {
            download.write_piece(index, &encoded_piece(&seeder, &hash, index)).unwrap();
        }
    } // the process stops here
    // A crash lost piece 2's bytes though its index was listed.
    let partial = fetcher_folder.0.join("partial").join(format!("{}.data", hash.to_hex()));
    let mut on_disk = std::fs::read(&partial).unwrap();
    on_disk[2 * PIECE_BYTES as usize + 5] ^= 0xff;
    std::fs::write(&partial, on_disk).unwrap();
    let fetcher = open_store(&fetcher_folder.0, u64::MAX).unwrap();
    let mut download = fetcher.download(hash, data.len() as u64).unwrap();
    assert_eq!(
        download.missing().collect::<Vec<_>>(),
        [3, 1, 2],
        "piece 0 kept, the damaged piece 2 fetched again"
    );
    fetch_all(&seeder, &mut download);
    download.finish().unwrap();
    assert_eq!(read_all(&fetcher, &hash), data);
}

#[test]
fn a_blob_damaged_on_disk_is_never_served_and_is_removed() {
    let folder = Folder::new("damaged");
    let store = open_store(&folder.0, u64::MAX).unwrap();
    let data = bytes(PIECE_BYTES as usize * 2, 8);
    let hash = import(&store, &data);
    let path = folder.0.join("complete").join(hash.to_hex());
    let mut on_disk = std::fs::read(&path).unwrap();
    on_disk[PIECE_BYTES as usize + 1] ^= 1;
    std::fs::write(&path, on_disk).unwrap();
    assert!(!encoded_piece(&store, &hash, 0).is_empty(), "the undamaged piece is still served");
    let error = store.encode_piece(&hash, 1, &mut Vec::new()).unwrap_err();
    assert!(matches!(error, BlobError::Corrupt { .. }), "{error}");
    assert!(!store.has(&hash), "a damaged blob is dropped");
}

#[test]
fn pieces_read_at_once_encode_exactly_as_bao_reading_the_files_does() {
    // 41 pieces: the outboard (64 bytes per 16 KiB) spans three 4 KiB pages.
    let folder = Folder::new("read-once");
    let store = open_store(&folder.0, u64::MAX).unwrap();
    let data = bytes(PIECE_BYTES as usize * 40 + 12_345, 12);
    let hash = import(&store, &data);
    let (data_path, outboard_path) = store.complete_paths(&hash);
    let size = data.len() as u64;
    for index in [0, 1, 15, 16, 17, 31, 32, 39, 40] {
        let outboard = bao_tree::io::outboard::PreOrderOutboard {
            root: blake3::Hash::from_bytes(hash.0),
            tree: crate::pieces::tree_of(size),
            data: std::fs::File::open(&outboard_path).unwrap(),
        };
        let chunks = crate::pieces::piece_chunks(size, index).unwrap();
        let mut by_bao = Vec::new();
        let file = std::fs::File::open(&data_path).unwrap();
        bao_tree::io::sync::encode_ranges_validated(&file, &outboard, &chunks, &mut by_bao).unwrap();
        assert_eq!(encoded_piece(&store, &hash, index), by_bao, "piece {index}");
    }
}

#[test]
fn a_piece_fits_a_frame_started_with_room_for_a_piece_and_8_kib() {
    // A piece frame as the owner and workers start one: a 41-byte header in a buffer of
    // 264 KiB. Growing it would copy the whole buffer, per piece served.
    let folder = Folder::new("frame-room");
    let store = open_store(&folder.0, u64::MAX).unwrap();
    let data = bytes(PIECE_BYTES as usize * 40 + 12_345, 3);
    let hash = import(&store, &data);
    for index in [0, 17, 39, 40] {
        let mut frame = wasmhive_protocol::piece_frame_start(&hash, index);
        let buffer = frame.as_ptr();
        store.encode_piece(&hash, index, &mut frame).unwrap();
        assert_eq!(frame.as_ptr(), buffer, "piece {index} was encoded without growing its frame");
    }
}

#[test]
fn a_blob_cut_short_on_disk_is_never_served_and_is_removed() {
    let folder = Folder::new("cut-short");
    let store = open_store(&folder.0, u64::MAX).unwrap();
    let data = bytes(PIECE_BYTES as usize * 2 + 100, 13);
    let hash = import(&store, &data);
    let path = store.complete_paths(&hash).0;
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(PIECE_BYTES * 2 - 10).unwrap();
    assert!(!encoded_piece(&store, &hash, 0).is_empty(), "a piece before the cut is still served");
    let mut encoded = b"frame start".to_vec();
    let error = store.encode_piece(&hash, 1, &mut encoded).unwrap_err();
    assert!(matches!(error, BlobError::Corrupt { .. }), "{error}");
    assert_eq!(encoded, b"frame start", "nothing of the piece is left in the frame");
    assert!(!store.has(&hash), "a blob cut short is dropped");
}

#[test]
fn eviction_keeps_needed_blobs_and_removes_the_least_recently_used() {
    let folder = Folder::new("evict");
    let store = open_store(&folder.0, 3 * 1000).unwrap();
    let hashes: Vec<Hash> = (0..5).map(|seed| import(&store, &bytes(1000, seed))).collect();
    store.open_blob(&hashes[0]).unwrap(); // used again: now the most recent
    let needed: HashSet<Hash> = [hashes[1]].into();
    let removed = store.evict_to_budget(&needed).unwrap();
    assert_eq!(removed, [hashes[2], hashes[3]], "least recently used first, the needed one skipped");
    assert_eq!(store.total_bytes(), 3000);
    let everything_needed: HashSet<Hash> = hashes.iter().copied().collect();
    let tight = open_store(&folder.0, 0).unwrap();
    assert!(tight.evict_to_budget(&everything_needed).unwrap().is_empty(), "needed blobs stay over budget");
}

#[test]
fn spent_blobs_beyond_their_allowance_go_first_oldest_first_unless_held_or_read_again_here() {
    let folder = Folder::new("spent");
    let store = open_store(&folder.0, 8_000).unwrap(); // spent blobs may keep a quarter: 2,000 bytes
    let hashes: Vec<Hash> = (0..6).map(|seed| import(&store, &bytes(1000, seed))).collect();
    for hash in &hashes[..4] {
        store.mark_spent(hash);
    }
    let hold = store.hold([hashes[0]]);
    store.open_blob(&hashes[3]).unwrap(); // read again: needed, no longer spent
    assert!(store.over_budget(), "3,000 bytes spent, 2,000 allowed, though 6,000 of 8,000 in all");
    let removed = store.evict_to_budget(&HashSet::new()).unwrap();
    assert_eq!(removed, [hashes[1]], "the oldest spent blob not held, until the spent bytes fit");
    assert!(!store.over_budget());

    store.mark_spent(&hashes[5]);
    encoded_piece(&store, &hashes[2], 0); // served to a peer: still spent here
    store.set_budget_bytes(4_000); // 5,000 bytes here; spent may keep 1,000
    let removed = store.evict_to_budget(&HashSet::new()).unwrap();
    // Both spent ones go before the older hashes[4], the one served just now last.
    assert_eq!(removed, [hashes[5], hashes[2]], "spent blobs go before older ones still wanted");
    assert_eq!(store.total_bytes(), 3_000);
    drop(hold);
    assert!(!store.over_budget(), "the held one, now free, fits the allowance");
    assert!(store.evict_to_budget(&HashSet::new()).unwrap().is_empty());
}

#[test]
fn a_spent_blob_eviction_finds_needed_is_wanted_again_and_checked_once() {
    // A peer's own job may need what its worker side spent (an output that became a
    // result): eviction keeps it, and it no longer counts against the spent allowance,
    // so the store is not over budget for ever (an eviction pass after every unit).
    let folder = Folder::new("spent-needed");
    let store = open_store(&folder.0, 4_000).unwrap(); // spent may keep 1,000
    let hashes: Vec<Hash> = (0..2).map(|seed| import(&store, &bytes(1000, seed))).collect();
    assert!(!store.take_newly_spent());
    store.mark_spent(&hashes[0]);
    store.mark_spent(&hashes[1]);
    store.mark_spent(&hashes[1]);
    assert!(store.take_newly_spent());
    assert!(!store.take_newly_spent(), "taken once");
    assert!(store.over_budget());
    let needed: HashSet<Hash> = hashes.iter().copied().collect();
    assert!(store.evict_to_budget(&needed).unwrap().is_empty());
    assert!(!store.over_budget(), "needed blobs are not spent");
}

#[test]
fn the_stores_byte_count_follows_imports_downloads_removals_and_a_reopen() {
    let (folder, seeder_folder) = (Folder::new("bytes"), Folder::new("bytes-seeder"));
    let store = open_store(&folder.0, 2_500).unwrap();
    let (first, second) = (bytes(1000, 1), bytes(PIECE_BYTES as usize + 1000, 2));
    let first_hash = import(&store, &first);
    import(&store, &first);
    assert_eq!(store.total_bytes(), 1000, "a blob imported twice counts once");
    assert!(!store.over_budget());
    let seeder = open_store(&seeder_folder.0, u64::MAX).unwrap();
    let second_hash = import(&seeder, &second);
    let mut download = store.download(second_hash, second.len() as u64).unwrap();
    assert_eq!(store.total_bytes(), 1000, "a download under way is not counted");
    fetch_all(&seeder, &mut download);
    download.finish_unsynced().unwrap();
    assert_eq!(store.total_bytes(), 1000 + second.len() as u64);
    assert_eq!(store.size(&second_hash), Some(second.len() as u64));
    assert!(store.over_budget());
    store.remove(&first_hash).unwrap();
    store.remove(&first_hash).unwrap();
    assert_eq!(store.total_bytes(), second.len() as u64, "a blob removed twice is subtracted once");
    drop(store);
    let reopened = open_store(&folder.0, 2_500).unwrap();
    assert_eq!(reopened.total_bytes(), second.len() as u64);
    assert_eq!(reopened.evict_to_budget(&HashSet::new()).unwrap(), [second_hash]);
    assert_eq!(reopened.total_bytes(), 0);
}

#[test]
fn a_reopened_store_lists_its_blobs_and_forgets_unfinished_imports() {
    let folder = Folder::new("reopen");
    let data = bytes(50_000, 9);
    let hash = {
        let store = open_store(&folder.0, u64::MAX).unwrap();
        import(&store, &data)
    };
    std::fs::write(folder.0.join("tmp").join("import-crashed"), b"half an import").unwrap();
    let store = open_store(&folder.0, u64::MAX).unwrap();
    assert!(store.has(&hash));
    assert_eq!(std::fs::read_dir(folder.0.join("tmp")).unwrap().count(), 0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    #[test]
    fn any_size_moves_in_any_piece_order(size in 0usize..(PIECE_BYTES as usize * 3 + 5000), seed in 0u8..255, rotate in 0usize..4) {
        let (seeder_folder, fetcher_folder) = (Folder::new("any-seeder"), Folder::new("any-fetcher"));
        let seeder = open_store(&seeder_folder.0, u64::MAX).unwrap();
        let fetcher = open_store(&fetcher_folder.0, u64::MAX).unwrap();
        let data = bytes(size, seed);
        let hash = import(&seeder, &data);
        let mut download = fetcher.download(hash, size as u64).unwrap();
        let mut order: Vec<u64> = download.missing().collect();
        let turn = rotate % order.len().max(1);
        order.rotate_left(turn);
        for index in order {
            download.write_piece(index, &encoded_piece(&seeder, &hash, index)).unwrap();
        }
        proptest::prop_assert_eq!(download.finish().unwrap(), hash);
        proptest::prop_assert_eq!(read_all(&fetcher, &hash), data);
    }
}

#[test]
fn a_blob_sent_under_another_hash_is_refused_and_kept_under_none() {
    let folder = Folder::new("import-as");
    let store = open_store(&folder.0, u64::MAX).unwrap();
    let data = bytes(70_000, 10);
    let claimed = Hash::of(b"something else");
    let error = store.import_as(&data[..], data.len() as u64, claimed).unwrap_err();
    assert!(
        matches!(&error, BlobError::WrongHash { actual, .. } if *actual == Hash::of(&data).to_hex()),
        "{error}"
    );
    assert!(!store.has(&claimed) && !store.has(&Hash::of(&data)));
    assert_eq!(store.import_as(&data[..], data.len() as u64, Hash::of(&data)).unwrap(), Hash::of(&data));
}

#[test]
fn a_download_under_way_serves_the_pieces_it_verified_and_no_others() {
    let folders = [Folder::new("leech-seeder"), Folder::new("leech-middle"), Folder::new("leech-last")];
    let [seeder, middle, last] = folders.each_ref().map(|folder| open_store(&folder.0, u64::MAX).unwrap());
    let data = bytes(PIECE_BYTES as usize * 5 + 100, 11);
    let hash = import(&seeder, &data);
    assert_eq!(seeder.held_pieces(&hash).unwrap().ranges, [0..6]);
    assert_eq!(middle.held_pieces(&hash), None, "nothing of the blob is here yet");
    let mut download = middle.download(hash, data.len() as u64).unwrap();
    for index in [5, 0, 1, 3] {
        download.write_piece(index, &encoded_piece(&seeder, &hash, index)).unwrap();
    }
    let held = middle.held_pieces(&hash).unwrap();
    assert_eq!((held.size, held.ranges), (data.len() as u64, vec![0..2, 3..4, 5..6]));
    assert!(!middle.encode_held_piece(&hash, 2, &mut Vec::new()).unwrap(), "piece 2 is not here");
    let mut onward = last.download(hash, data.len() as u64).unwrap();
    for index in [5, 0, 1, 3] {
        let mut encoded = Vec::new();
        assert!(middle.encode_held_piece(&hash, index, &mut encoded).unwrap());
        onward.write_piece(index, &encoded).unwrap();
    }
    // A listed piece whose bytes were damaged is not served.
    let partial = folders[1].0.join("partial").join(format!("{}.data", hash.to_hex()));
    let mut on_disk = std::fs::read(&partial).unwrap();
    on_disk[3 * PIECE_BYTES as usize + 9] ^= 0xff;
    std::fs::write(&partial, on_disk).unwrap();
    assert!(!middle.encode_held_piece(&hash, 3, &mut Vec::new()).unwrap());
    for index in [2, 4] {
        onward.write_piece(index, &encoded_piece(&seeder, &hash, index)).unwrap();
    }
    onward.finish().unwrap();
    assert_eq!(read_all(&last, &hash), data);
}

#[test]
fn held_ranges_merge_neighbours_and_stop_at_their_cap() {
    assert_eq!(crate::ranges_of(&[0, 1, 2, 5, 7, 8]), vec![0..3, 5..6, 7..9]);
    let every_other: Vec<u64> = (0..5000).map(|index| index * 2).collect();
    let ranges = crate::ranges_of(&every_other);
    assert_eq!(ranges.len(), crate::HELD_RANGES_MAX);
    assert_eq!(ranges.last(), Some(&(2046..2047)));
}

#[test]
fn a_held_blob_is_never_evicted_until_every_hold_and_clone_is_dropped() {
    let folder = Folder::new("holds");
    let store = open_store(&folder.0, u64::MAX).unwrap();
    let hashes: Vec<Hash> = (0..3).map(|seed| import(&store, &bytes(1000, seed))).collect();
    let hold = store.hold([hashes[0], hashes[1]]);
    let copy = hold.clone();
    store.set_budget_bytes(0);
    assert_eq!(store.evict_to_budget(&HashSet::new()).unwrap(), [hashes[2]], "only the unheld blob goes");
    drop(hold);
    assert!(store.evict_to_budget(&HashSet::new()).unwrap().is_empty(), "the clone still holds both");
    drop(copy);
    let mut removed = store.evict_to_budget(&HashSet::new()).unwrap();
    removed.sort();
    let mut expected = vec![hashes[0], hashes[1]];
    expected.sort();
    assert_eq!(removed, expected, "released: evicted");
}

/// A worker's downloads are finished without an fsync (a cache: the owner still has every
/// blob). A power cut can then leave a complete blob torn, so a store opened after a stop
/// that did not sync them (its marker is still there) checks every complete blob against
/// its hashes and removes what no longer matches, before any unit can read it.
#[test]
fn blobs_finished_unsynced_are_checked_again_after_an_unclean_stop() {
    let (source_folder, folder) = (Folder::new("unsynced-source"), Folder::new("unsynced"));
    let source = open_store(&source_folder.0, u64::MAX).unwrap();
    let (first, second) = (bytes(3 * PIECE_BYTES as usize, 1), bytes(1000, 2));
    let (first_hash, second_hash) = (import(&source, &first), import(&source, &second));
    let store = open_store(&folder.0, u64::MAX).unwrap();
    for (hash, size) in [(first_hash, first.len()), (second_hash, second.len())] {
        let mut download = store.download(hash, size as u64).unwrap();
        fetch_all(&source, &mut download);
        download.finish_unsynced().unwrap();
    }
    // A kill -9 or a power cut: nothing of the store runs at the end ...
    std::mem::forget(store);
    // ... and the first blob's last bytes never reached the disk.
    let torn = std::fs::OpenOptions::new()
        .write(true)
        .open(folder.0.join("complete").join(first_hash.to_hex()))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&torn, &[0; 100], first.len() as u64 - 100).unwrap();
    let reopened = open_store(&folder.0, u64::MAX).unwrap();
    assert!(!reopened.has(&first_hash), "a torn blob must never reach a unit");
    assert_eq!(read_all(&reopened, &second_hash), second);
    assert_eq!(reopened.removed_after_unclean_stop(), 1);
}

#[test]
fn a_store_closed_cleanly_syncs_its_unsynced_blobs_and_the_next_open_checks_nothing() {
    let (source_folder, folder) = (Folder::new("clean-source"), Folder::new("clean"));
    let source = open_store(&source_folder.0, u64::MAX).unwrap();
    let data = bytes(2 * PIECE_BYTES as usize + 5, 3);
    let hash = import(&source, &data);
    let store = open_store(&folder.0, u64::MAX).unwrap();
    let mut download = store.download(hash, data.len() as u64).unwrap();
    fetch_all(&source, &mut download);
    download.finish_unsynced().unwrap();
    let marker = folder.0.join("unsynced-downloads");
    assert!(marker.exists(), "the marker is durable before the first unsynced blob is listed");
    drop(store);
    assert!(!marker.exists());
    let reopened = open_store(&folder.0, u64::MAX).unwrap();
    assert_eq!((reopened.removed_after_unclean_stop(), read_all(&reopened, &hash)), (0, data));
}

//! The blob folder: complete blobs with their outboards, imports, serving pieces, budget.
//!
//! Layout under the store's root:
//! - `complete/<hash>` and `complete/<hash>.obao`: a blob and its pre-order outboard;
//! - `partial/<hash>.*`: a download in progress (`download.rs`);
//! - `tmp/`: imports being written (emptied when the store opens);
//! - `unsynced-downloads`: present while complete blobs may be unsynced (`unsynced.rs`).

use crate::outboard_write_back::{OutboardWriteBack, PAIRS_KEPT_MAX};
use crate::piece_reads::encode_piece_read_once;
use crate::pieces::tree_of;
use bao_tree::io::outboard::PreOrderOutboard;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use wasmhive_protocol::Hash;

/// An import's bytes reach its file in writes of this size (bao reads 16 KiB at a time).
const IMPORT_WRITE_BYTES: usize = 256 << 10;

/// What went wrong with a blob; each names the blob or file and the cause.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store: {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("blob {0} is not in this store")]
    Missing(String),
    #[error("the import was announced as {announced} bytes but {read} arrived; send the whole file again")]
    WrongLength { announced: u64, read: u64 },
    #[error("piece {index} of blob {hash} is past its end ({pieces} pieces)")]
    NoSuchPiece { hash: String, index: u64, pieces: u64 },
    #[error("the bytes hash to {actual}, not {expected}: send a blob under its own blake3 hash")]
    WrongHash { expected: String, actual: String },
    #[error("blob {hash} on disk no longer matches its hash ({reason}); it was removed, fetch it again")]
    Corrupt { hash: String, reason: String },
}

pub(crate) fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BlobError + 'a {
    move |source| BlobError::Io { action, path: path.to_path_buf(), source }
}

/// A folder of blobs, safe to share between threads (its methods block on disk IO).
///
/// Invariant: one store per folder at a time (one per data directory), so its list of
/// complete blobs, read from the folder once when it opens, stays the folder's truth: what
/// is here, its size and the bytes in all (a budget check costs no folder listing, which
/// once made every finished download of a job list every blob before it).
pub struct BlobStore {
    pub(crate) root: PathBuf,
    budget_bytes: AtomicU64,
    complete: Mutex<CompleteBlobs>,
    clock: AtomicU64,
    /// Holds per blob (`holds.rs`): a held blob is never evicted.
    holds: Mutex<HashMap<Hash, usize>>,
    /// A blob was marked spent since [`BlobStore::take_newly_spent`] last looked.
    newly_spent: AtomicBool,
    /// Whether the unsynced-downloads marker is on disk (`unsynced.rs`).
    pub(crate) unsynced_marker_written: AtomicBool,
    pub(crate) removed_after_unclean_stop: AtomicUsize,
}

impl BlobStore {
    /// Opens (or creates) the store at `root`, keeping at most `budget_bytes` of blobs
    /// once [`BlobStore::evict_to_budget`] runs.
    pub fn open(root: &Path, budget_bytes: u64) -> Result<BlobStore, BlobError> {
        for folder in ["complete", "partial", "tmp"] {
            let path = root.join(folder);
            std::fs::create_dir_all(&path).map_err(io_error("creating", &path))?;
        }
        let tmp = root.join("tmp");
        std::fs::remove_dir_all(&tmp)
            .and_then(|()| std::fs::create_dir(&tmp))
            .map_err(io_error("emptying", &tmp))?;
        let store = BlobStore {
            root: root.to_path_buf(),
            budget_bytes: AtomicU64::new(budget_bytes),
            complete: Mutex::new(CompleteBlobs::default()),
            clock: AtomicU64::new(0),
            holds: Mutex::new(HashMap::new()),
            newly_spent: AtomicBool::new(false),
            unsynced_marker_written: AtomicBool::new(false),
            removed_after_unclean_stop: AtomicUsize::new(0),
        };
        let removed = store.check_blobs_after_unclean_stop()?;
        store.removed_after_unclean_stop.store(removed, Ordering::Relaxed);
        for (hash, size) in store.complete_blobs_by_age()? {
            store.listed(&hash, size);
        }
        Ok(store)
    }

    /// Streams `announced_bytes` bytes from `reader` into the store: hashed as they are
    /// written, moved into place only when all arrived. Returns the blob's hash.
    pub fn import(&self, reader: impl Read, announced_bytes: u64) -> Result<Hash, BlobError> {
        self.import_checked(reader, announced_bytes, None)
    }

    /// [`BlobStore::import`] of a blob sent under the name `expected`: bytes that hash to
    /// anything else are refused and nothing is kept.
    pub fn import_as(
        &self,
        reader: impl Read,
        announced_bytes: u64,
        expected: Hash,
    ) -> Result<Hash, BlobError> {
        self.import_checked(reader, announced_bytes, Some(expected))
    }

    fn import_checked(
        &self,
        reader: impl Read,
        announced_bytes: u64,
        expected: Option<Hash>,
    ) -> Result<Hash, BlobError> {
        let serial = self.clock.fetch_add(1, Ordering::Relaxed);
        let data_path = self.root.join("tmp").join(format!("import-{}-{serial}", std::process::id()));
        let outboard_path = data_path.with_extension("obao");
        let imported = self.import_into(reader, announced_bytes, expected, &data_path, &outboard_path);
        if imported.is_err() {
            // A refused import leaves nothing behind, not even until the next start.
            let _ = std::fs::remove_file(&data_path);
            let _ = std::fs::remove_file(&outboard_path);
        }
        imported
    }

    fn import_into(
        &self,
        reader: impl Read,
        announced_bytes: u64,
        expected: Option<Hash>,
        data_path: &Path,
        outboard_path: &Path,
    ) -> Result<Hash, BlobError> {
        let data = File::create(data_path).map_err(io_error("creating", data_path))?;
        let outboard_file = File::create(outboard_path).map_err(io_error("creating", outboard_path))?;
        let written_back = OutboardWriteBack::new(outboard_file, PAIRS_KEPT_MAX);
        let mut outboard =
            PreOrderOutboard { root: blake3::hash(b""), tree: tree_of(announced_bytes), data: written_back };
        let copy = BufWriter::with_capacity(IMPORT_WRITE_BYTES, data);
        let mut tee = TeeReader { inner: reader.take(announced_bytes), copy, read: 0 };
        let root = match bao_tree::io::sync::outboard(&mut tee, tree_of(announced_bytes), &mut outboard) {
            Ok(root) => root,
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(BlobError::WrongLength { announced: announced_bytes, read: tee.read });
            }
            Err(error) => return Err(io_error("writing", data_path)(error)),
        };
        let mut extra = [0u8; 1];
        let more = tee.inner.into_inner().read(&mut extra).unwrap_or(0);
        if tee.read != announced_bytes || more > 0 {
            let read = tee.read + more as u64;
            return Err(BlobError::WrongLength { announced: announced_bytes, read });
        }
        let data =
            tee.copy.into_inner().map_err(|error| io_error("writing", data_path)(error.into_error()))?;
        data.sync_all().map_err(io_error("syncing", data_path))?;
        let outboard_file = outboard.data.finish().map_err(io_error("writing", outboard_path))?;
        outboard_file.sync_all().map_err(io_error("syncing", outboard_path))?;
        let hash = Hash(*root.as_bytes());
        if let Some(expected) = expected.filter(|expected| *expected != hash) {
            return Err(BlobError::WrongHash { expected: expected.to_hex(), actual: hash.to_hex() });
        }
        self.move_into_place(&hash, announced_bytes, data_path, outboard_path)?;
        Ok(hash)
    }

    pub(crate) fn move_into_place(
        &self,
        hash: &Hash,
        size: u64,
        data: &Path,
        outboard: &Path,
    ) -> Result<(), BlobError> {
        // The outboard first: a blob file whose outboard is missing is never listed.
        let (final_data, final_outboard) = self.complete_paths(hash);
        std::fs::rename(outboard, &final_outboard).map_err(io_error("moving", outboard))?;
        std::fs::rename(data, &final_data).map_err(io_error("moving", data))?;
        self.listed(hash, size);
        Ok(())
    }

    /// Whether the complete blob is here.
    pub fn has(&self, hash: &Hash) -> bool {
        self.complete().by_hash.contains_key(hash)
    }

    /// The blob's size in bytes, if it is here.
    pub fn size(&self, hash: &Hash) -> Option<u64> {
        self.complete().by_hash.get(hash).map(|blob| blob.size)
    }

    /// The blob's bytes, for this host to read (a spent blob read again is wanted again).
    pub fn open_blob(&self, hash: &Hash) -> Result<File, BlobError> {
        let file = self.open_to_serve(hash)?;
        self.unspend(hash);
        Ok(file)
    }

    /// The blob's bytes, to serve to a peer: recently used, but a spent blob stays spent.
    fn open_to_serve(&self, hash: &Hash) -> Result<File, BlobError> {
        if !self.has(hash) {
            return Err(BlobError::Missing(hash.to_hex()));
        }
        self.touch(hash);
        let path = self.complete_paths(hash).0;
        File::open(&path).map_err(io_error("opening", &path))
    }

    /// Appends the blob's bytes to `bytes`, at most `size` of them (its size as named), for
    /// the few readers that need it whole in memory (validators, reducers).
    pub fn read_into(&self, hash: &Hash, size: u64, bytes: &mut Vec<u8>) -> Result<(), BlobError> {
        let path = self.complete_paths(hash).0;
        self.open_blob(hash)?.take(size).read_to_end(bytes).map_err(io_error("reading", &path))?;
        Ok(())
    }

    /// Piece `index` of the blob with its proof, bao-encoded, appended to `encoded`. The
    /// data is checked against the outboard as it is read: a blob that no longer matches
    /// its hash is removed and reported, never sent.
    pub fn encode_piece(&self, hash: &Hash, index: u64, encoded: &mut Vec<u8>) -> Result<(), BlobError> {
        let data = self.open_to_serve(hash)?;
        let size = self.size(hash).ok_or_else(|| BlobError::Missing(hash.to_hex()))?;
        let range = crate::piece_range(size, index).ok_or_else(|| BlobError::NoSuchPiece {
            hash: hash.to_hex(),
            index,
            pieces: crate::piece_count(size),
        })?;
        let outboard_path = self.complete_paths(hash).1;
        let outboard_file = File::open(&outboard_path).map_err(io_error("opening", &outboard_path))?;
        let outboard = PreOrderOutboard {
            root: blake3::Hash::from_bytes(hash.0),
            tree: tree_of(size),
            data: outboard_file,
        };
        // Straight into `encoded` (a frame being built, say).
        if let Err(reason) = encode_piece_read_once(&data, &outboard, range, encoded) {
            self.remove(hash)?;
            return Err(BlobError::Corrupt { hash: hash.to_hex(), reason });
        }
        Ok(())
    }

    /// Deletes a complete blob (nothing if it is not here).
    pub fn remove(&self, hash: &Hash) -> Result<(), BlobError> {
        let mut complete = self.complete();
        if let Some(removed) = complete.by_hash.remove(hash) {
            complete.bytes -= removed.size;
            complete.spent_bytes -= if removed.spent { removed.size } else { 0 };
        }
        drop(complete);
        let (data, outboard) = self.complete_paths(hash);
        for path in [data, outboard] {
            match std::fs::remove_file(&path) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error("removing", &path)(error));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Marks a blob spent: this host will not read it again (the input of a unit it ran, an
    /// output its owner has). It stays only to serve other peers, within its allowance
    /// ([`spent_bytes_max`]), and is evicted before any blob still wanted. Serving it
    /// leaves it spent; reading it here ([`BlobStore::open_blob`]) unmarks it.
    pub fn mark_spent(&self, hash: &Hash) {
        let mut complete = self.complete();
        let CompleteBlobs { by_hash, spent_bytes, .. } = &mut *complete;
        if let Some(blob) = by_hash.get_mut(hash).filter(|blob| !blob.spent) {
            blob.spent = true;
            *spent_bytes += blob.size;
            self.newly_spent.store(true, Ordering::Relaxed);
        }
    }

    /// Whether a blob was marked spent since the last call (so eviction may have work).
    pub fn take_newly_spent(&self) -> bool {
        self.newly_spent.swap(false, Ordering::Relaxed)
    }

    /// Bytes of complete blobs here.
    pub fn total_bytes(&self) -> u64 {
        self.complete().bytes
    }

    /// Whether the complete blobs here take more than the budget, or the spent ones more
    /// than their allowance (so eviction has work: callers check this before gathering
    /// what eviction must spare).
    pub fn over_budget(&self) -> bool {
        let budget_bytes = self.budget_bytes.load(Ordering::Relaxed);
        let complete = self.complete();
        complete.bytes > budget_bytes || complete.spent_bytes > spent_bytes_max(budget_bytes)
    }

    /// Changes the byte budget [`BlobStore::evict_to_budget`] keeps to.
    pub fn set_budget_bytes(&self, budget_bytes: u64) {
        self.budget_bytes.store(budget_bytes, Ordering::Relaxed);
    }

    pub(crate) fn count_holds(&self, hashes: &[Hash], add: bool) {
        let mut holds = self.holds.lock().expect("blob holds poisoned");
        for hash in hashes {
            let count = holds.entry(*hash).or_default();
            if add {
                *count += 1;
            } else {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    holds.remove(hash);
                }
            }
        }
    }

    /// Removes blobs that are neither held ([`BlobStore::hold`]) nor in `needed`, spent
    /// ones first, each group least recently used first, until the spent blobs fit their
    /// allowance and the store its budget; returns what it removed. Held and needed blobs
    /// are never removed, even over budget.
    pub fn evict_to_budget(&self, needed: &HashSet<Hash>) -> Result<Vec<Hash>, BlobError> {
        let (mut blobs, mut total, mut spent_total) = {
            let complete = self.complete();
            let blobs: Vec<(Hash, CompleteBlob)> =
                complete.by_hash.iter().map(|(hash, blob)| (*hash, *blob)).collect();
            (blobs, complete.bytes, complete.spent_bytes)
        };
        blobs.sort_by_key(|(_, blob)| (!blob.spent, blob.last_used));
        let mut removed = Vec::new();
        let budget_bytes = self.budget_bytes.load(Ordering::Relaxed);
        for (hash, CompleteBlob { size, spent, .. }) in blobs {
            let over_allowance = spent && spent_total > spent_bytes_max(budget_bytes);
            if !over_allowance && total <= budget_bytes {
                break;
            }
            if needed.contains(&hash) {
                // Wanted here after all (a peer's own job reads it): no longer spent.
                if spent && self.unspend(&hash) {
                    spent_total -= size;
                }
                continue;
            }
            if self.holds.lock().expect("blob holds poisoned").contains_key(&hash) {
                continue;
            }
            self.remove(&hash)?;
            total -= size;
            spent_total -= if spent { size } else { 0 };
            removed.push(hash);
        }
        Ok(removed)
    }

    /// Every complete blob (one with its outboard) and its size, oldest file first.
    pub(crate) fn complete_blobs_by_age(&self) -> Result<Vec<(Hash, u64)>, BlobError> {
        let folder = self.root.join("complete");
        let mut blobs = Vec::new();
        for entry in std::fs::read_dir(&folder).map_err(io_error("listing", &folder))? {
            let entry = entry.map_err(io_error("listing", &folder))?;
            let name = entry.file_name();
            let Some(hash) = name.to_str().and_then(|name| name.parse::<Hash>().ok()) else { continue };
            if !self.complete_paths(&hash).1.exists() {
                continue;
            }
            let metadata = entry.metadata().map_err(io_error("reading", &entry.path()))?;
            let modified = metadata.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
            blobs.push((modified, hash, metadata.len()));
        }
        blobs.sort_by_key(|(modified, _, _)| *modified);
        Ok(blobs.into_iter().map(|(_, hash, size)| (hash, size)).collect())
    }

    fn complete(&self) -> std::sync::MutexGuard<'_, CompleteBlobs> {
        self.complete.lock().expect("blob list poisoned")
    }

    /// Records a blob now complete here (again, if it was already: counted once).
    fn listed(&self, hash: &Hash, size: u64) {
        let last_used = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut complete = self.complete();
        let before = complete.by_hash.insert(*hash, CompleteBlob { size, last_used, spent: false });
        if let Some(before) = before {
            complete.bytes -= before.size;
            complete.spent_bytes -= if before.spent { before.size } else { 0 };
        }
        complete.bytes += size;
    }

    fn touch(&self, hash: &Hash) {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        if let Some(blob) = self.complete().by_hash.get_mut(hash) {
            blob.last_used = now;
        }
    }

    /// Unmarks a spent blob; whether it was spent.
    fn unspend(&self, hash: &Hash) -> bool {
        let mut complete = self.complete();
        let CompleteBlobs { by_hash, spent_bytes, .. } = &mut *complete;
        match by_hash.get_mut(hash).filter(|blob| blob.spent) {
            Some(blob) => {
                blob.spent = false;
                *spent_bytes -= blob.size;
                true
            }
            None => false,
        }
    }

    pub(crate) fn complete_paths(&self, hash: &Hash) -> (PathBuf, PathBuf) {
        let data = self.root.join("complete").join(hash.to_hex());
        let outboard = data.with_extension("obao");
        (data, outboard)
    }

    pub(crate) fn partial_path(&self, hash: &Hash, extension: &str) -> PathBuf {
        self.root.join("partial").join(format!("{}.{extension}", hash.to_hex()))
    }
}

/// The complete blobs here (see [`BlobStore`]'s invariant).
#[derive(Default)]
struct CompleteBlobs {
    by_hash: HashMap<Hash, CompleteBlob>,
    /// The sum of their sizes.
    bytes: u64,
    /// The sum of the spent ones' sizes.
    spent_bytes: u64,
}

#[derive(Clone, Copy)]
struct CompleteBlob {
    size: u64,
    /// When it was last used, on the store's own clock (eviction order).
    last_used: u64,
    /// This host will not read it again ([`BlobStore::mark_spent`]).
    spent: bool,
}

/// Spent blobs are kept to serve other peers (a unit's other replicas fetch its input
/// around the same time), up to a quarter of the budget and at most this.
const SPENT_BYTES_KEPT_MAX: u64 = 256 << 20;

fn spent_bytes_max(budget_bytes: u64) -> u64 {
    (budget_bytes / 4).min(SPENT_BYTES_KEPT_MAX)
}

/// Copies what it reads into a file, counting it.
struct TeeReader<R> {
    inner: R,
    copy: BufWriter<File>,
    read: u64,
}

impl<R: Read> Read for TeeReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buffer)?;
        self.copy.write_all(&buffer[..count])?;
        self.read += count as u64;
        Ok(count)
    }
}

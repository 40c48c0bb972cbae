//! The blob cache for modules: by hash, in memory and on disk under `data_dir/modules` so a
//! restart does not fetch them again. Bytes are checked against their hash before they are
//! kept. The disk holds at most `bytes_max`; the least recently used modules go first.

use lru::LruCache;
use std::path::PathBuf;
use wasmhive_protocol::Hash;
use wasmhive_sandbox::ModuleBytes;

/// Default cap of the module cache on disk.
pub const MODULE_CACHE_BYTES_MAX: u64 = 1 << 30;

pub struct ModuleStore {
    directory: PathBuf,
    /// Every cached module, most recently used last; values are their sizes.
    recency: LruCache<Hash, u64>,
    bytes_total: u64,
    bytes_max: u64,
    /// Modules in use recently, kept in memory.
    loaded: LruCache<Hash, ModuleBytes>,
}

const LOADED_MODULES_MAX: usize = 64;

impl ModuleStore {
    /// Opens the cache folder and indexes what an earlier run left there.
    pub fn new(directory: PathBuf, bytes_max: u64) -> ModuleStore {
        let mut store = ModuleStore {
            directory,
            recency: LruCache::unbounded(),
            bytes_total: 0,
            bytes_max,
            loaded: LruCache::new(LOADED_MODULES_MAX.try_into().expect("nonzero")),
        };
        let entries = std::fs::read_dir(&store.directory).into_iter().flatten().flatten();
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(hash) = name.strip_suffix(".wasm").and_then(|hex| hex.parse::<Hash>().ok()) else {
                continue;
            };
            let size = entry.metadata().map_or(0, |metadata| metadata.len());
            store.recency.put(hash, size);
            store.bytes_total += size;
        }
        store.evict_over_cap();
        store
    }

    /// The module, from memory or disk.
    pub fn get(&mut self, hash: &Hash) -> Option<ModuleBytes> {
        self.recency.get(hash)?;
        if let Some(module) = self.loaded.get(hash) {
            return Some(module.clone());
        }
        let bytes = std::fs::read(self.path(hash)).ok()?;
        let module = ModuleBytes::new(bytes);
        if module.hash != *hash {
            return None;
        }
        self.loaded.put(*hash, module.clone());
        Some(module)
    }

    /// Keeps bytes that `decode_blob` already checked against `hash`.
    pub fn insert(&mut self, hash: Hash, bytes: &[u8]) -> ModuleBytes {
        let module = ModuleBytes::new(bytes.to_vec());
        assert_eq!(module.hash, hash, "blobs are checked before they are kept");
        if self.recency.get(&hash).is_none() && std::fs::create_dir_all(&self.directory).is_ok() {
            let path = self.path(&hash);
            let temporary = path.with_extension("tmp");
            if std::fs::write(&temporary, bytes).is_ok() && std::fs::rename(&temporary, &path).is_ok() {
                self.recency.put(hash, bytes.len() as u64);
                self.bytes_total += bytes.len() as u64;
                self.evict_over_cap();
            }
        }
        self.loaded.put(hash, module.clone());
        module
    }

    /// Bytes of modules on disk.
    #[cfg(test)]
    pub fn bytes_total(&self) -> u64 {
        self.bytes_total
    }

    fn evict_over_cap(&mut self) {
        while self.bytes_total > self.bytes_max && self.recency.len() > 1 {
            let Some((hash, size)) = self.recency.pop_lru() else { break };
            let _ = std::fs::remove_file(self.path(&hash));
            self.loaded.pop(&hash);
            self.bytes_total -= size;
        }
    }

    fn path(&self, hash: &Hash) -> PathBuf {
        self.directory.join(format!("{hash}.wasm"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_to_its_byte_cap_least_recently_used_first_and_survives_a_restart() {
        let directory = std::env::temp_dir().join(format!("wasmhive-module-store-{}", std::process::id()));
        let blobs: Vec<Vec<u8>> = (0..3u8).map(|index| vec![index; 1000]).collect();
        let hashes: Vec<Hash> = blobs.iter().map(|blob| Hash::of(blob)).collect();
        let mut store = ModuleStore::new(directory.clone(), 2500);
        store.insert(hashes[0], &blobs[0]);
        store.insert(hashes[1], &blobs[1]);
        assert!(store.get(&hashes[0]).is_some(), "touch 0 so 1 is the least recently used");
        store.insert(hashes[2], &blobs[2]);
        assert_eq!(store.bytes_total(), 2000);
        assert!(store.get(&hashes[1]).is_none(), "evicted");
        let mut reopened = ModuleStore::new(directory.clone(), 2500);
        assert_eq!(reopened.get(&hashes[2]).map(|module| module.hash), Some(hashes[2]));
        assert_eq!(reopened.bytes_total(), 2000);
        std::fs::remove_dir_all(&directory).unwrap();
    }
}

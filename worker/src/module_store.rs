//! Modules by hash: in memory, and on disk under `data_dir/modules` so a restart does not
//! fetch them again. Bytes are checked against their hash before they are kept.

use std::collections::HashMap;
use std::path::PathBuf;
use wasmhive_protocol::Hash;
use wasmhive_sandbox::ModuleBytes;

pub struct ModuleStore {
    directory: PathBuf,
    modules: HashMap<Hash, ModuleBytes>,
}

impl ModuleStore {
    pub fn new(directory: PathBuf) -> ModuleStore {
        ModuleStore { directory, modules: HashMap::new() }
    }

    /// The module, from memory or disk.
    pub fn get(&mut self, hash: &Hash) -> Option<ModuleBytes> {
        if let Some(module) = self.modules.get(hash) {
            return Some(module.clone());
        }
        let bytes = std::fs::read(self.directory.join(format!("{hash}.wasm"))).ok()?;
        let module = ModuleBytes::new(bytes);
        if module.hash != *hash {
            return None;
        }
        self.modules.insert(*hash, module.clone());
        Some(module)
    }

    /// Keeps bytes that `decode_blob` already checked against `hash`.
    pub fn insert(&mut self, hash: Hash, bytes: &[u8]) -> ModuleBytes {
        let module = ModuleBytes::new(bytes.to_vec());
        assert_eq!(module.hash, hash, "blobs are checked before they are kept");
        if std::fs::create_dir_all(&self.directory).is_ok() {
            let path = self.directory.join(format!("{hash}.wasm"));
            let temporary = path.with_extension("tmp");
            if std::fs::write(&temporary, bytes).is_ok() {
                let _ = std::fs::rename(&temporary, &path);
            }
        }
        self.modules.insert(hash, module.clone());
        module
    }
}

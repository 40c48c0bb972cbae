//! Test support: a store file that removes itself.

/// A store file in a folder of its own for one test, removed when dropped (also when the
/// test fails).
pub(crate) struct TemporaryStore {
    folder: std::path::PathBuf,
    pub path: std::path::PathBuf,
}

impl TemporaryStore {
    pub(crate) fn new(name: &str) -> TemporaryStore {
        let folder = std::env::temp_dir().join(format!("wasmhive-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        TemporaryStore { path: folder.join("owner.db"), folder }
    }
}

impl Drop for TemporaryStore {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.folder).ok();
    }
}

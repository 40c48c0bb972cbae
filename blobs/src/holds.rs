//! Holds: blobs a queued or running unit will read, which eviction never removes. A hold
//! is a value (RAII): it is released however its unit ends (ran, cancelled, handed back,
//! connection lost), so no exit path can leak or forget one.

use crate::store::BlobStore;
use std::sync::Arc;
use wasmhive_protocol::Hash;

/// Keeps its blobs from eviction until dropped; a clone holds them again.
pub struct BlobHold {
    store: Arc<BlobStore>,
    hashes: Vec<Hash>,
}

impl BlobStore {
    /// Holds `hashes` (present or still to be fetched) until the returned value is dropped.
    pub fn hold(self: &Arc<Self>, hashes: impl IntoIterator<Item = Hash>) -> BlobHold {
        let hashes: Vec<Hash> = hashes.into_iter().collect();
        self.count_holds(&hashes, true);
        BlobHold { store: self.clone(), hashes }
    }
}

impl Clone for BlobHold {
    fn clone(&self) -> Self {
        self.store.hold(self.hashes.iter().copied())
    }
}

impl Drop for BlobHold {
    fn drop(&mut self) {
        self.store.count_holds(&self.hashes, false);
    }
}

impl std::fmt::Debug for BlobHold {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_list().entries(self.hashes.iter().map(Hash::short)).finish()
    }
}

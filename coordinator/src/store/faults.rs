//! Failures tests inject into a store: one that turns read-only or fills its disk mid-job.

use super::{Store, StoreResult};

/// A failure injected into the store by tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFault {
    /// Every write fails.
    ReadOnly,
    /// The disk is full: a write that needs one more page fails with SQLite's "database or
    /// disk is full" (`SQLITE_FULL`); writes into pages that have room still succeed.
    DiskFull,
}

impl Store {
    /// Makes writes fail from now on, or (`None`) work again: a store that fails mid-job,
    /// for fault-injection tests.
    pub fn inject_fault(&self, fault: Option<StoreFault>) -> StoreResult<()> {
        let read_only = fault == Some(StoreFault::ReadOnly);
        self.connection.pragma_update(None, "query_only", read_only)?;
        let page_limit: i64 = match fault {
            Some(StoreFault::DiskFull) => {
                self.connection.query_row("PRAGMA page_count", [], |row| row.get(0))?
            }
            _ => i64::from(u32::MAX - 1),
        };
        self.connection.query_row(&format!("PRAGMA max_page_count = {page_limit}"), [], |_| Ok(()))?;
        Ok(())
    }
}

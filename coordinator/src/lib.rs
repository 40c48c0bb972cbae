//! The coordinator: jobs, units, leases, quorum and the store, around a sans-IO core.
//!
//! Built in step 2 (issue 3); see ARCHITECTURE.md.

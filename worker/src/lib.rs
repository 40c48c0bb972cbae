//! The worker: pulls leases, runs them on a rayon pool through the sandbox, returns outcomes.
//!
//! Built in step 2 (issue 3); see ARCHITECTURE.md.

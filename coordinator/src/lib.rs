//! The coordinator (a job's owner): jobs, units, leases, quorum and the store.
//!
//! `core` is the sans-IO scheduling core; everything else is a thin shell around it.

pub mod core;
pub mod human_units;
pub mod job_spec;
pub mod server;
pub mod store;
pub mod trust_simulation;

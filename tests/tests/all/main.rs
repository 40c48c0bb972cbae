//! wasmhive's integration tests: one binary, one module per capability.

mod api_values;
mod blob_cache;
mod blob_uploads;
mod cli_run;
mod dashboard;
mod examples;
mod fuzz_inputs;
mod gossip_attacks;
mod grid_hostile_peers;
mod grid_jobs;
mod grid_support;
mod grid_sybils;
mod grid_trust;
mod hostile_guests;
mod job_specs;
mod malicious_owner;
mod output_blobs;
mod peer_mesh;
mod sandbox_determinism;
mod store_faults;
mod strangers;
mod task_answers;
mod task_files;
mod task_languages;
mod volunteer_controls;
mod work_push;

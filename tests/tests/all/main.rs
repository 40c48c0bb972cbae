//! wasmhive's integration tests: one binary, one module per capability.

mod cli_run;
mod hostile_guests;
mod sandbox_determinism;
mod task_answers;

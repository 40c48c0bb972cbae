//! One module per `wasmhive` subcommand.

pub mod run;

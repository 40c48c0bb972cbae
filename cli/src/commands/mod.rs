//! One module per `wasmhive` subcommand.

pub mod cancel;
pub mod coordinator;
pub mod credit;
pub mod dashboard;
pub mod demo;
pub mod module;
pub mod new;
pub mod peer;
pub mod peers;
pub mod reputation;
pub mod results;
pub mod run;
pub mod simulate;
pub mod status;
pub mod submit;
pub mod worker;

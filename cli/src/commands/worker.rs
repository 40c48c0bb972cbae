//! `wasmhive worker`: donate CPU to a coordinator.

use crate::local::{data_dir, runtime, shutdown_signal};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use wasmhive_worker::{WorkerConfig, run_worker};

#[derive(Args)]
pub struct WorkerArgs {
    /// The coordinator: ws://HOST:PORT/ws, http://HOST:PORT or HOST:PORT.
    #[arg(long)]
    join: String,
    /// Cores to run units on (default: all).
    #[arg(long)]
    cpus: Option<usize>,
    /// Data directory (identity, modules, compiled artifacts).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seconds running units may take to finish on Ctrl-C or SIGTERM.
    #[arg(long, default_value_t = 30)]
    grace: u64,
}

pub fn worker(arguments: WorkerArgs) -> anyhow::Result<i32> {
    let mut config = WorkerConfig::new(arguments.join, data_dir(arguments.data));
    if let Some(cpus) = arguments.cpus {
        anyhow::ensure!(cpus >= 1, "--cpus must be at least 1");
        config.cpus = cpus;
    }
    config.grace = Duration::from_secs(arguments.grace);
    runtime()?.block_on(run_worker(config, shutdown_signal()))?;
    Ok(0)
}

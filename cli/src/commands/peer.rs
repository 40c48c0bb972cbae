//! `wasmhive peer`: own jobs and run units in one process, find other peers by gossip.

use crate::local::{DEFAULT_ADDRESS, data_dir, runtime, shutdown_signal};
use clap::Args;
use std::path::PathBuf;
use wasmhive_peer::{PeerConfig, run_peer};

#[derive(Args)]
pub struct PeerArgs {
    /// Address to listen on (port 0 picks a free port); it is also the address other peers
    /// are told, so give one they can reach.
    #[arg(long, default_value = DEFAULT_ADDRESS, conflicts_with = "no_listen")]
    listen: String,
    /// Listen nowhere (behind NAT): only outbound connections; runs units for others.
    #[arg(long)]
    no_listen: bool,
    /// A peer to join the mesh through (repeatable); not needed after the first start.
    #[arg(long, value_name = "HOST:PORT")]
    join: Vec<String>,
    /// Cores to run units on (default: all).
    #[arg(long)]
    cpus: Option<usize>,
    /// Data directory (identity, jobs, results, known peers, modules).
    #[arg(long)]
    data: Option<PathBuf>,
}

pub fn peer(arguments: PeerArgs) -> anyhow::Result<i32> {
    let data_dir = data_dir(arguments.data);
    let cpus =
        arguments.cpus.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |cores| cores.get()));
    anyhow::ensure!(cpus >= 1, "--cpus must be at least 1");
    let join =
        arguments.join.iter().map(|address| address.trim_start_matches("http://").to_string()).collect();
    let config = PeerConfig {
        listen: (!arguments.no_listen).then_some(arguments.listen),
        join,
        cpus,
        data_dir: data_dir.clone(),
    };
    runtime()?.block_on(run_peer(config, shutdown_signal(), |address| match address {
        Some(address) => {
            eprintln!("wasmhive peer listening on http://{address} (workers: ws://{address}/ws)");
            eprintln!("data: {} · token: {}", data_dir.display(), data_dir.join("token").display());
        }
        None => eprintln!("wasmhive peer (no listen address: outbound only) · data: {}", data_dir.display()),
    }))?;
    eprintln!("wasmhive peer stopped");
    Ok(0)
}

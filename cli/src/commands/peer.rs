//! `wasmhive peer`: own jobs and run units in one process, find other peers by gossip.

use crate::local::{DEFAULT_ADDRESS, runtime, shutdown_signal};
use crate::settings::{Settings, VolunteerArgs};
use clap::Args;
use wasmhive_peer::{PeerConfig, run_peer};

#[derive(Args)]
pub struct PeerArgs {
    /// Address to listen on (port 0 picks a free port); it is also the address other peers
    /// are told, so give one they can reach ([peer] listen).
    #[arg(long, conflicts_with = "no_listen")]
    listen: Option<String>,
    /// Listen nowhere (behind NAT): only outbound connections; runs units for others.
    #[arg(long)]
    no_listen: bool,
    /// A peer to join the mesh through (repeatable); not needed after the first start
    /// ([peer] join).
    #[arg(long, value_name = "HOST:PORT")]
    join: Vec<String>,
    #[command(flatten)]
    volunteer: VolunteerArgs,
}

pub fn peer(arguments: PeerArgs) -> anyhow::Result<i32> {
    let mut settings = Settings::resolve(&arguments.volunteer, "peer")?;
    let listen = settings.role_string("listen", arguments.listen, DEFAULT_ADDRESS)?;
    let join = settings.role_list("join", arguments.join)?;
    if arguments.volunteer.print_config {
        settings.print();
        return Ok(0);
    }
    let join = join.iter().map(|address| address.trim_start_matches("http://").to_string()).collect();
    let data_dir = settings.data_dir.clone();
    let mut config =
        PeerConfig::new((!arguments.no_listen).then_some(listen), join, settings.cpus, data_dir.clone());
    config.module_cache_bytes_max = settings.cache_bytes;
    config.volunteer = settings.volunteer;
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

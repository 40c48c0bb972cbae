//! `wasmhive peer`: own jobs and run units in one process, find other peers by gossip.

use crate::local::{DEFAULT_ADDRESS, DEFAULT_DASHBOARD_ADDRESS, NetworkArgs, runtime, shutdown_signal};
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
    /// The IP:PORT other peers are told to dial (needed when --listen is 0.0.0.0 or [::]);
    /// default: the listen address.
    #[arg(long, value_name = "IP:PORT")]
    advertise: Option<String>,
    /// Plain-HTTP loopback address of the dashboard and API for this machine's browser.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_DASHBOARD_ADDRESS)]
    dashboard_listen: String,
    /// A peer to join the mesh through (repeatable): HOST:PORT trusts its key on first
    /// use, HOST:PORT#PEERID pins it; not needed after the first start ([peer] join).
    #[arg(long, value_name = "HOST:PORT[#PEERID]")]
    join: Vec<String>,
    #[command(flatten)]
    volunteer: VolunteerArgs,
    #[command(flatten)]
    networks: NetworkArgs,
}

pub fn peer(arguments: PeerArgs) -> anyhow::Result<i32> {
    let mut settings = Settings::resolve(&arguments.volunteer, "peer")?;
    let listen = settings.role_string("listen", arguments.listen, DEFAULT_ADDRESS)?;
    let join = settings.role_list("join", arguments.join)?;
    if arguments.volunteer.print_config {
        settings.print();
        return Ok(0);
    }
    let data_dir = settings.data_dir.clone();
    let mut config =
        PeerConfig::new((!arguments.no_listen).then_some(listen), join, settings.cpus, data_dir.clone());
    config.advertise = arguments.advertise;
    config.dashboard_listen = Some(arguments.dashboard_listen);
    config.module_cache_bytes_max = settings.cache_bytes;
    config.volunteer = settings.volunteer;
    config.local_address = arguments.volunteer.bind_address;
    config.network_prefixes = arguments.networks.prefixes()?;
    config.connections_max = arguments.networks.connections_max;
    config.upload_bytes_per_second = settings.upload_bytes_per_second;
    config.blob_cache_bytes_max = settings.blob_cache_bytes;
    runtime()?.block_on(run_peer(config, shutdown_signal(), |peer| match peer.address {
        Some(address) => {
            let listening = crate::local::Listening {
                role: "peer",
                address,
                peer_id: peer.peer_id(),
                curl_pin: peer.curl_pin(),
                dashboard: peer.dashboard_address,
            };
            listening.announce(&data_dir);
        }
        None => eprintln!("wasmhive peer (no listen address: outbound only) · data: {}", data_dir.display()),
    }))?;
    eprintln!("wasmhive peer stopped");
    Ok(0)
}

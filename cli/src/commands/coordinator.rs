//! `wasmhive coordinator`: own jobs and serve workers and the API on one port.

use crate::local::{
    DEFAULT_ADDRESS, DEFAULT_DASHBOARD_ADDRESS, Listening, NetworkArgs, data_dir, runtime, shutdown_signal,
};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use wasmhive_coordinator::human_units::parse_byte_size;
use wasmhive_coordinator::server::{Coordinator, Listeners, serve};
use wasmhive_transport::LoopbackListener;

#[derive(Args)]
pub struct CoordinatorArgs {
    /// Address of the public TLS port (port 0 picks a free port).
    #[arg(long, default_value = DEFAULT_ADDRESS)]
    listen: String,
    /// Plain-HTTP loopback address of the dashboard and API for this machine's browser.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_DASHBOARD_ADDRESS)]
    dashboard_listen: String,
    /// Data directory (jobs, results, token).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Bytes per second of blob pieces sent to workers, e.g. "10 MiB" (default: no limit).
    #[arg(long, value_name = "SIZE", value_parser = parse_byte_size)]
    upload_rate: Option<u64>,
    /// Bytes of uploaded blobs kept; beyond it the least recently used that no running job
    /// reads are evicted (default: 256 GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_byte_size)]
    blob_cache: Option<u64>,
    #[command(flatten)]
    networks: NetworkArgs,
}

pub fn coordinator(arguments: CoordinatorArgs) -> anyhow::Result<i32> {
    let data = data_dir(arguments.data);
    let prefixes = arguments.networks.prefixes()?;
    let coordinator = Coordinator::open(&data)?;
    coordinator.set_network_prefixes(prefixes);
    if let Some(bytes) = arguments.blob_cache {
        coordinator.set_blob_budget(bytes);
    }
    if let Some(rate) = arguments.upload_rate.filter(|rate| *rate > 0) {
        coordinator.set_upload_rate(rate);
    }
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&arguments.listen).await.with_context(|| {
            format!("cannot listen on {}; pick another --listen address", arguments.listen)
        })?;
        let address = listener.local_addr()?;
        let loopback = LoopbackListener::bind(&arguments.dashboard_listen).await.with_context(|| {
            format!(
                "cannot listen on {}; pick another --dashboard-listen address",
                arguments.dashboard_listen
            )
        })?;
        let listening = Listening {
            role: "coordinator",
            address,
            peer_id: coordinator.owner_id().to_string(),
            curl_pin: coordinator.tls_identity().curl_pin(),
            dashboard: Some(loopback.0.local_addr()?),
        };
        listening.announce(&data);
        let mut listeners = Listeners::new(listener, Some(loopback));
        listeners.limits.total_max = arguments.networks.connections_max;
        serve(listeners, coordinator, shutdown_signal()).await?;
        eprintln!("wasmhive coordinator stopped");
        Ok(0)
    })
}

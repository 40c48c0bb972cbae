//! `wasmhive coordinator`: own jobs and serve workers and the API on one port.

use crate::local::{DEFAULT_ADDRESS, data_dir, runtime, shutdown_signal};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use wasmhive_coordinator::server::{Coordinator, serve};

#[derive(Args)]
pub struct CoordinatorArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = DEFAULT_ADDRESS)]
    listen: String,
    /// Data directory (jobs, results, token).
    #[arg(long)]
    data: Option<PathBuf>,
}

pub fn coordinator(arguments: CoordinatorArgs) -> anyhow::Result<i32> {
    let data = data_dir(arguments.data);
    let coordinator = Coordinator::open(&data)?;
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&arguments.listen).await.with_context(|| {
            format!("cannot listen on {}; pick another --listen address", arguments.listen)
        })?;
        let address = listener.local_addr()?;
        eprintln!("wasmhive coordinator listening on http://{address} (workers: ws://{address}/ws)");
        eprintln!("data: {} · token: {}", data.display(), coordinator.token_path().display());
        serve(listener, coordinator, shutdown_signal()).await?;
        eprintln!("wasmhive coordinator stopped");
        Ok(0)
    })
}

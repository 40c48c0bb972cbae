//! Local conventions: the data directory, logging, the default address, signals.

use std::path::PathBuf;

/// Where a coordinator or worker listens and clients connect by default.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:7878";
/// Where the plain loopback dashboard listens by default (port 0: any free port).
pub const DEFAULT_DASHBOARD_ADDRESS: &str = "127.0.0.1:0";
/// The file in the data directory that holds the running owner's dashboard address.
pub const DASHBOARD_FILE: &str = "dashboard.address";

/// `--data`, else `$WASMHIVE_DATA`, else `$XDG_DATA_HOME/wasmhive`, else
/// `~/.local/share/wasmhive`.
pub fn data_dir(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(directory) = explicit {
        return directory;
    }
    if let Some(directory) = std::env::var_os("WASMHIVE_DATA") {
        return PathBuf::from(directory);
    }
    if let Some(directory) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(directory).join("wasmhive");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/wasmhive")
}

/// Logs to stderr; `RUST_LOG` chooses the levels (default: `default_level`), as a level
/// and `target=level` pairs: `RUST_LOG=warn,wasmhive_worker=debug`.
pub fn init_logging(default_level: &str) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let from_environment = std::env::var("RUST_LOG").ok().filter(|levels| !levels.trim().is_empty());
    let parsed = from_environment.as_deref().map(|levels| (levels, levels.parse::<Targets>()));
    let default = || default_level.parse::<Targets>().expect("the built-in log levels parse");
    let filter = match parsed {
        Some((_, Ok(targets))) => targets,
        Some((levels, Err(error))) => {
            eprintln!(
                "wasmhive: ignoring RUST_LOG={levels:?} ({error}); use e.g. RUST_LOG=warn,wasmhive_worker=debug"
            );
            default()
        }
        None => default(),
    };
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).finish().with(filter).init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// What an owner prints when it starts listening (the tests read the first line).
pub struct Listening {
    pub role: &'static str,
    pub address: std::net::SocketAddr,
    pub peer_id: String,
    pub curl_pin: String,
    pub dashboard: Option<std::net::SocketAddr>,
}

impl Listening {
    /// Prints how to reach this owner and records its dashboard address in `data`.
    pub fn announce(&self, data: &std::path::Path) {
        let Listening { role, address, peer_id, curl_pin, dashboard } = self;
        if let Some(dashboard) = dashboard {
            // Before the first line is printed, whole (written, then renamed into place):
            // whoever waits for "listening" finds the file complete.
            let path = data.join(DASHBOARD_FILE);
            let partial = data.join(format!("{DASHBOARD_FILE}.partial"));
            if std::fs::write(&partial, format!("{dashboard}\n")).is_ok() {
                let _ = std::fs::rename(&partial, &path);
            }
        }
        eprintln!("wasmhive {role} listening on {address}#{peer_id} (TLS 1.3; this peer's id is {peer_id})");
        eprintln!("  workers and peers: --join {address}#{peer_id}");
        eprintln!("  remote API: wasmhive status --to {address}#{peer_id} --token TOKEN");
        eprintln!(
            "  curl: curl --insecure --pinnedpubkey '{curl_pin}' https://{address}/api/jobs -H 'Authorization: Bearer TOKEN'"
        );
        if let Some(dashboard) = dashboard {
            eprintln!(
                "  dashboard on this machine: http://{dashboard}/ (`wasmhive dashboard` prints it with the token)"
            );
        }
        eprintln!("data: {} · token: {}", data.display(), data.join("token").display());
    }
}

/// Flags of an owner (coordinator or peer): how worker addresses group into networks.
#[derive(clap::Args, Clone, Debug)]
pub struct NetworkArgs {
    /// Leading bits of an IPv4 address that name a worker's network: two replicas of a
    /// unit never come from one network (loopback addresses count per address).
    #[arg(long, value_name = "BITS", default_value_t = 24)]
    pub network_prefix_v4: u8,
    /// The same for IPv6.
    #[arg(long, value_name = "BITS", default_value_t = 48)]
    pub network_prefix_v6: u8,
    /// Connections the public port holds open at once (workers, peers, API clients); each
    /// needs a file descriptor, so raise `ulimit -n` above it. An idle worker connection
    /// costs the owner about 13 KiB.
    #[arg(long, value_name = "COUNT", default_value_t = wasmhive_transport::ConnectionLimits::default().total_max)]
    pub connections_max: usize,
}

impl NetworkArgs {
    pub fn prefixes(&self) -> anyhow::Result<wasmhive_coordinator::core::NetworkPrefixes> {
        wasmhive_coordinator::core::NetworkPrefixes::new(self.network_prefix_v4, self.network_prefix_v6)
            .map_err(anyhow::Error::msg)
    }
}

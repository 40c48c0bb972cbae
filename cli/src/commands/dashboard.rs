//! `wasmhive dashboard`: prints the address of the dashboard of the owner on this machine
//! (its plain loopback listener), with the token in the fragment (browsers never send the
//! fragment to the server, and the page keeps the token in memory only).

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct DashboardArgs {
    /// The owner's data directory.
    #[arg(long)]
    data: Option<PathBuf>,
}

pub fn dashboard(arguments: DashboardArgs) -> anyhow::Result<i32> {
    let data = crate::local::data_dir(arguments.data);
    let address_path = data.join(crate::local::DASHBOARD_FILE);
    let address = std::fs::read_to_string(&address_path).with_context(|| {
        format!("no owner with a dashboard runs with data {} (no {})", data.display(), address_path.display())
    })?;
    let token_path = data.join("token");
    let token = std::fs::read_to_string(&token_path)
        .with_context(|| format!("cannot read {}", token_path.display()))?;
    println!("http://{}/#token={}", address.trim(), token.trim());
    Ok(0)
}

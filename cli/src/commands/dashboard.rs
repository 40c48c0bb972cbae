//! `wasmhive dashboard`: prints the dashboard's address with the token in its fragment
//! (browsers never send the fragment to the server).

use crate::client::Connection;
use clap::Args;

#[derive(Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    connection: Connection,
}

pub fn dashboard(arguments: DashboardArgs) -> anyhow::Result<i32> {
    let (base, token) = arguments.connection.base_and_token()?;
    println!("{base}/#token={token}");
    Ok(0)
}

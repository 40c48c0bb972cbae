//! `wasmhive cancel JOB`: stop handing out a job's units and void its open leases.

use crate::client::Connection;
use clap::Args;
use wasmhive_protocol::api::JobStatus;

#[derive(Args)]
pub struct CancelArgs {
    /// The job id.
    job: String,
    #[command(flatten)]
    connection: Connection,
}

pub fn cancel(arguments: CancelArgs) -> anyhow::Result<i32> {
    let client = arguments.connection.client()?;
    let status: JobStatus =
        client.post(&format!("/api/jobs/{}/cancel", arguments.job), &serde_json::json!({}))?;
    eprintln!("{}: {} ({} of {} units verified)", status.job_id, status.state, status.verified, status.units);
    Ok(0)
}

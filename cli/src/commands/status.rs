//! `wasmhive status [JOB]`: one job's progress, or a table of all jobs.

use crate::client::{Connection, printed_as_json};
use clap::Args;
use wasmhive_protocol::api::JobStatus;
use wasmhive_protocol::printable as shown;

#[derive(Args)]
pub struct StatusArgs {
    /// The job id (default: all jobs).
    job: Option<String>,
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn status(arguments: StatusArgs) -> anyhow::Result<i32> {
    let client = arguments.connection.client()?;
    let statuses: Vec<JobStatus> = match &arguments.job {
        Some(job_id) => vec![client.get(&format!("/api/jobs/{job_id}"))?],
        None => client.get("/api/jobs")?,
    };
    if printed_as_json(&statuses, arguments.json)? {
        return Ok(0);
    }
    println!(
        "{:<28} {:<10} {:>9} {:>9} {:>7} {:>7} {:>6}",
        "JOB", "STATE", "UNITS", "VERIFIED", "FAILED", "LEASED", "QUORUM"
    );
    for status in statuses {
        println!(
            "{:<28} {:<10} {:>9} {:>9} {:>7} {:>7} {:>6}",
            shown(&status.job_id, 64),
            status.state.as_str(),
            status.units,
            status.verified,
            status.failed,
            status.leased,
            status.quorum
        );
        if let Some(eta) = status.eta_s {
            println!("  about {eta} s left at the current rate");
        }
        if let Some(waiting_for) = &status.waiting_for {
            println!("  waiting: {}", shown(waiting_for, 300));
        }
        if let Some(reduced) = &status.reduced {
            println!("  reduced result: {}", shown(reduced, 300));
        }
    }
    Ok(0)
}

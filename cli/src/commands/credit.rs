//! `wasmhive credit [--job JOB]`: the validated work each worker did for an owner's jobs.

use crate::client::{Connection, printed_as_json};
use clap::Args;
use wasmhive_protocol::api::CreditRow;
use wasmhive_protocol::printable as shown;

#[derive(Args)]
pub struct CreditArgs {
    /// Only this job.
    #[arg(long)]
    job: Option<String>,
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn credit(arguments: CreditArgs) -> anyhow::Result<i32> {
    let path = match &arguments.job {
        Some(job_id) => format!("/api/credit?job={job_id}"),
        None => "/api/credit".to_string(),
    };
    let rows: Vec<CreditRow> = arguments.connection.client()?.get(&path)?;
    if printed_as_json(&rows, arguments.json)? {
        return Ok(0);
    }
    println!("{:<28} {:<34} {:>9} {:>16} {:<6}", "JOB", "WORKER", "REPLICAS", "CREDIT", "MEASURE");
    for row in rows {
        println!(
            "{:<28} {:<34} {:>9} {:>16} {:<6}",
            shown(&row.job_id, 64),
            shown(&row.worker_id, 64),
            row.replicas,
            row.credit,
            shown(&row.measure, 16)
        );
    }
    Ok(0)
}

//! `wasmhive reputation`: what an owner knows of the workers that ran its units.

use crate::client::{Connection, printed_as_json};
use clap::Args;
use wasmhive_protocol::api::WorkerReputation;
use wasmhive_protocol::printable as shown;

#[derive(Args)]
pub struct ReputationArgs {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn reputation(arguments: ReputationArgs) -> anyhow::Result<i32> {
    let rows: Vec<WorkerReputation> = arguments.connection.client()?.get("/api/reputation")?;
    if printed_as_json(&rows, arguments.json)? {
        return Ok(0);
    }
    println!(
        "{:<34} {:>6} {:>7} {:>7} {:>11} {:>10} {:>12}",
        "WORKER", "TRUST", "VALID", "INVALID", "IN A ROW", "UNFINISHED", "QUARANTINED"
    );
    for row in rows {
        let quarantined = match (row.banned, row.quarantined_for_s) {
            (true, _) => "banned".to_string(),
            (false, Some(seconds)) => format!("{seconds} s left"),
            (false, None) => String::new(),
        };
        println!(
            "{:<34} {:>6.3} {:>7} {:>7} {:>11} {:>10} {:>12}",
            shown(&row.worker_id, 64),
            row.trust,
            row.valid,
            row.invalid,
            row.consecutive_valid,
            row.unfinished,
            quarantined
        );
    }
    Ok(0)
}

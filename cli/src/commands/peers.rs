//! `wasmhive peers`: the peers a peer knows, its neighbours, their spare slots.

use crate::client::{Connection, printed_as_json};
use clap::Args;
use wasmhive_protocol::gossip::PeerRow;
use wasmhive_protocol::printable as shown;

#[derive(Args)]
pub struct PeersArgs {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn peers(arguments: PeersArgs) -> anyhow::Result<i32> {
    let rows: Vec<PeerRow> = arguments.connection.client()?.get("/api/peers")?;
    if printed_as_json(&rows, arguments.json)? {
        return Ok(0);
    }
    println!(
        "{:<34} {:<22} {:>5} {:>5} {:>9} {:>10} {:>10} {:>12}",
        "PEER", "ADDRESS", "CORES", "SPARE", "NEIGHBOUR", "HEARD", "REPUTATION", "DONE FOR US"
    );
    for row in rows {
        let heard =
            row.heard_ms_ago.map_or("gossip".to_string(), |ago| format!("{:.1}s ago", ago as f64 / 1000.0));
        let reputation = row.reputation.map_or("-".to_string(), |value| format!("{value:.2}"));
        println!(
            "{:<34} {:<22} {:>5} {:>5} {:>9} {:>10} {:>10} {:>12}",
            shown(&row.peer_id, 64),
            shown(row.address.as_deref().unwrap_or("(nat)"), 64),
            row.cores,
            row.spare_slots,
            if row.neighbour { "yes" } else { "" },
            heard,
            reputation,
            row.replicas_done_for_us
        );
    }
    Ok(0)
}

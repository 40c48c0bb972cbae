//! `wasmhive simulate mesh`: drives the real membership code with many peers (no sockets)
//! and prints how fast the mesh forms and what gossip costs when idle.

use clap::{Args, Subcommand};
use wasmhive_peer::gossip_interval;
use wasmhive_peer::mesh_simulation::simulate_mesh;

#[derive(Args)]
pub struct SimulateArgs {
    #[command(subcommand)]
    what: Simulation,
}

#[derive(Subcommand)]
enum Simulation {
    /// Gossip membership: rounds for a mesh to form and for a newcomer to learn it.
    Mesh {
        /// Peers in the mesh.
        #[arg(long, default_value_t = 50)]
        peers: usize,
        /// Seed of the run (print it to replay a run).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub fn simulate(arguments: SimulateArgs) -> anyhow::Result<i32> {
    match arguments.what {
        Simulation::Mesh { peers, seed } => {
            anyhow::ensure!((2..=10_000).contains(&peers), "--peers must be 2 to 10000");
            let figures = simulate_mesh(peers, seed);
            let seconds = gossip_interval().as_secs_f64();
            let rounds = |rounds: Option<u32>| {
                rounds.map_or("did not happen in 200 rounds".to_string(), |rounds| {
                    format!(
                        "{rounds} rounds ({:.1} s at one exchange per {seconds} s)",
                        f64::from(rounds) * seconds
                    )
                })
            };
            println!("mesh simulation · {peers} peers · seed {seed}");
            println!(
                "  every peer knows 90% of the mesh after:  {}",
                rounds(figures.rounds_for_mesh_to_form)
            );
            println!("  a newcomer knows 90% of the mesh after:  {}", rounds(figures.rounds_for_newcomer));
            println!(
                "  idle gossip: {:.1} messages sent per peer per round ({:.1}/s), at most {} exchanges for one peer in a round",
                figures.idle_messages_per_peer_per_round,
                figures.idle_messages_per_peer_per_round / seconds,
                figures.idle_exchanges_per_peer_max
            );
            Ok(0)
        }
    }
}

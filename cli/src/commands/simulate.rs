//! `wasmhive simulate mesh`: drives the real membership code with many peers (no sockets)
//! and prints how fast the mesh forms and what gossip costs when idle. `simulate trust`
//! drives the real scheduling core with honest and dishonest workers.

use clap::{Args, Subcommand, ValueEnum};
use wasmhive_coordinator::trust_simulation::{Attack, TrustScenario, simulate_trust};
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
    /// Verification against dishonest workers, through the real scheduling core.
    Trust {
        #[arg(long, default_value_t = 20)]
        peers: usize,
        #[arg(long, default_value_t = 2000)]
        units: u64,
        /// Fraction of peers that attack (0 to 1; at least one peer when above 0).
        #[arg(long, default_value_t = 0.2)]
        attackers: f64,
        /// What the attackers do: saboteurs (each lies on every unit), colluders (all lie
        /// alike on every unit), careful-colluders (lie alike only when holding every
        /// replica a unit needs), sybil-group (one careful attacker and --sybil identities on
        /// one network), hoarders (take every lease allowed, never answer), griefers
        /// (answer host_timeout to everything).
        #[arg(long, default_value = "colluders", value_parser = Attack::from_flag)]
        attack: Attack,
        /// Extra identities of a `sybil-group` (all on the first attacker's network).
        #[arg(long, default_value_t = 10)]
        sybil: usize,
        /// Matching replicas needed (for every unit, or for untrusted results under adaptive).
        #[arg(long, default_value_t = 2)]
        quorum: u32,
        /// Fraction of fresh units that are decoys (decided units sent out again).
        #[arg(long, default_value_t = 0.02)]
        decoys: f64,
        /// `quorum`: every unit replicated; `adaptive`: trusted peers' results may stand
        /// alone (5% spot checks, 2 known-answer units per stranger).
        #[arg(long, value_enum, default_value_t = Policy::Quorum)]
        policy: Policy,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Policy {
    Quorum,
    Adaptive,
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
        Simulation::Trust { peers, units, attackers, attack, sybil, quorum, decoys, policy, seed } => {
            anyhow::ensure!((0.0..=0.5).contains(&decoys), "--decoys is a fraction from 0 to 0.5");
            anyhow::ensure!((1..=10_000).contains(&peers), "--peers must be 1 to 10000");
            anyhow::ensure!((0.0..=1.0).contains(&attackers), "--attackers is a fraction from 0 to 1");
            anyhow::ensure!((1..=16).contains(&quorum), "--quorum must be 1 to 16");
            anyhow::ensure!((1..=1_000_000).contains(&units), "--units must be 1 to 1000000");
            let scenario = TrustScenario {
                peers,
                units,
                attackers,
                attack,
                sybil: sybil.min(10_000),
                quorum,
                adaptive: policy == Policy::Adaptive,
                decoys,
                seed,
            };
            let figures = simulate_trust(&scenario);
            let attack_free = simulate_trust(&TrustScenario { attackers: 0.0, ..scenario.clone() });
            let policy_name = if scenario.adaptive { "adaptive" } else { "quorum" };
            let sybils = if scenario.attack == Attack::SybilGroup {
                format!(" (+{sybil} Sybil identities)")
            } else {
                String::new()
            };
            println!(
                "trust simulation · {peers} peers · {units} units · {attackers:.2} {}{sybils} · {policy_name} policy, quorum {quorum}, {decoys:.2} decoys · seed {seed}",
                scenario.attack.name()
            );
            println!(
                "  units accepted: {} · wrong results accepted: {} · units failed: {}",
                figures.units_accepted, figures.wrong_accepted, figures.units_failed
            );
            println!(
                "  replicas per accepted unit: {:.3} (second half of the job: {:.3}) · probes, decoys and late replicas: {} · all results per unit: {:.3}",
                figures.replicas_per_accepted_unit,
                figures.replicas_per_unit_after_warm_up,
                figures.known_answer_replicas,
                figures.replicas_per_unit_all_in,
            );
            println!(
                "  job time: {} rounds, {:.2}× the attack-free run ({} rounds)",
                figures.rounds,
                figures.rounds as f64 / attack_free.rounds.max(1) as f64,
                attack_free.rounds
            );
            println!(
                "  arbitrations: {} identities proven wrong ({} of them honest) · {} accepted units reopened",
                figures.identities_banned, figures.honest_banned, figures.units_reopened
            );
            let caught: Vec<String> = figures
                .results_until_quarantine
                .iter()
                .map(|results| results.map_or("never".to_string(), |results| results.to_string()))
                .collect();
            println!("  results each attacker reported before quarantine: [{}]", caught.join(", "));
            Ok(0)
        }
    }
}

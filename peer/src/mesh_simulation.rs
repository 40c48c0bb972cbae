//! A seeded simulation of the real membership code (no sockets): `peers` peers join through
//! one bootstrap peer and gossip in rounds (one exchange started per peer per round, as
//! the gossip task does every second). Gives the figures `wasmhive simulate mesh` prints.

use crate::membership::Membership;
use wasmhive_protocol::gossip::PeerInfo;

/// What the simulation measured.
#[derive(Clone, Debug, PartialEq)]
pub struct MeshFigures {
    pub peers: usize,
    /// Rounds until every peer knew 90% of the others (starting from the bootstrap only).
    pub rounds_for_mesh_to_form: Option<u32>,
    /// Rounds until a newcomer, joining the formed mesh, knew 90% of it.
    pub rounds_for_newcomer: Option<u32>,
    /// Gossip messages sent (requests and answers) per peer per round once the mesh is idle.
    pub idle_messages_per_peer_per_round: f64,
    /// Largest number of exchanges one peer took part in during one idle round.
    pub idle_exchanges_per_peer_max: u32,
}

const ROUNDS_MAX: u32 = 200;

fn info(index: usize) -> PeerInfo {
    PeerInfo {
        peer_id: format!("peer-{index:04}"),
        address: Some(format!("10.0.{}.{}:7878", index / 256, index % 256)),
        cores: 2,
        spare_slots: 2,
    }
}

pub fn simulate_mesh(peers: usize, seed: u64) -> MeshFigures {
    assert!(peers >= 2, "a mesh needs two peers");
    let mut random = fastrand::Rng::with_seed(seed);
    let mut members: Vec<Membership> = (0..peers).map(|index| Membership::new(info(index))).collect();
    for member in members.iter_mut().skip(1) {
        member.learn(info(0), 0);
    }
    let rounds_for_mesh_to_form = run_until(&mut members, &mut random, 0, |members| {
        members.iter().all(|member| member.known_count() * 10 >= (peers - 1) * 9)
    });
    members.push(Membership::new(info(peers)));
    members[peers].learn(info(0), 0);
    let rounds_for_newcomer =
        run_until(&mut members, &mut random, 1000, |members| members[peers].known_count() * 10 >= peers * 9);
    let mut exchanges = vec![0u32; members.len()];
    let idle_rounds = 20;
    let mut total_messages = 0u64;
    for round in 0..idle_rounds {
        for (index, count) in gossip_round(&mut members, &mut random, 2000 + round).into_iter().enumerate() {
            exchanges[index] = exchanges[index].max(count);
            total_messages += u64::from(count);
        }
    }
    MeshFigures {
        peers,
        rounds_for_mesh_to_form,
        rounds_for_newcomer,
        idle_messages_per_peer_per_round: total_messages as f64 / (idle_rounds as f64 * members.len() as f64),
        idle_exchanges_per_peer_max: exchanges.into_iter().max().unwrap_or(0),
    }
}

fn run_until(
    members: &mut [Membership],
    random: &mut fastrand::Rng,
    clock_start: u64,
    done: impl Fn(&[Membership]) -> bool,
) -> Option<u32> {
    for round in 1..=ROUNDS_MAX {
        gossip_round(members, random, clock_start + round as u64);
        if done(members) {
            return Some(round);
        }
    }
    None
}

/// One round: every peer starts one push-pull exchange with the neighbour it picks.
/// Returns how many exchanges each peer took part in.
fn gossip_round(members: &mut [Membership], random: &mut fastrand::Rng, round: u64) -> Vec<u32> {
    let now_ms = round * 1000;
    let mut exchanges = vec![0u32; members.len()];
    let index_of = |peer_id: &str| peer_id.trim_start_matches("peer-").parse::<usize>().ok();
    for caller in 0..members.len() {
        let Some(target) = members[caller].next_exchange(random) else { continue };
        let Some(callee) = index_of(&target.peer_id).filter(|callee| *callee < members.len()) else {
            continue;
        };
        let request = members[caller].gossip(random);
        let answer = members[callee].gossip(random);
        members[callee].receive(request, now_ms);
        members[caller].receive(answer, now_ms);
        exchanges[caller] += 1;
        exchanges[callee] += 1;
    }
    exchanges
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds: with 8 neighbours and 32 peers per message, epidemic spread should reach 90%
    /// of 50 peers in a handful of rounds; 15 leaves room for unlucky seeds. The idle load
    /// is one exchange started per peer per round, so no peer should handle more than a
    /// dozen in a round even when several neighbours pick it.
    #[test]
    fn a_fifty_peer_mesh_forms_and_a_newcomer_learns_it_quickly_at_bounded_cost() {
        for seed in 0..5 {
            let figures = simulate_mesh(50, seed);
            println!("seed {seed}: {figures:?}");
            assert!(
                figures.rounds_for_mesh_to_form.is_some_and(|rounds| rounds <= 15),
                "seed {seed}: {figures:?}"
            );
            assert!(
                figures.rounds_for_newcomer.is_some_and(|rounds| rounds <= 15),
                "seed {seed}: {figures:?}"
            );
            assert!(figures.idle_exchanges_per_peer_max <= 12, "seed {seed}: {figures:?}");
        }
    }
}

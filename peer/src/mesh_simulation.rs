//! A seeded simulation of the real membership code (no sockets): `peers` peers join through
//! one bootstrap peer and gossip in rounds (one exchange started per peer per round, as
//! the gossip task does every second). Gives the figures `wasmhive simulate mesh` prints.

use crate::membership::Membership;
use std::collections::HashMap;
use wasmhive_protocol::gossip::PeerInfo;
use wasmhive_protocol::identity::PeerKey;

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

/// The simulation's clock starts here (Unix ms), so signed records look current.
const CLOCK_START_MS: u64 = 1_800_000_000_000;

fn key(index: usize) -> PeerKey {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&(index as u64).to_le_bytes());
    PeerKey::from_secret(secret)
}

/// Peer `index`'s record, signed at `now_ms`.
fn info(keys: &[PeerKey], index: usize, now_ms: u64) -> PeerInfo {
    let address = format!("10.0.{}.{}:7878", index / 256, index % 256);
    PeerInfo::signed(&keys[index], Some(address), 2, 2, now_ms)
}

pub fn simulate_mesh(peers: usize, seed: u64) -> MeshFigures {
    assert!(peers >= 2, "a mesh needs two peers");
    let mut random = fastrand::Rng::with_seed(seed);
    let keys: Vec<PeerKey> = (0..=peers).map(key).collect();
    let ids: HashMap<String, usize> =
        keys.iter().enumerate().map(|(index, key)| (key.peer_id(), index)).collect();
    let mesh = Mesh { keys, ids };
    let start = CLOCK_START_MS;
    let mut members: Vec<Membership> =
        (0..peers).map(|index| Membership::new(info(&mesh.keys, index, start))).collect();
    for member in members.iter_mut().skip(1) {
        member.learn(info(&mesh.keys, 0, start), start).expect("a valid bootstrap record");
    }
    let rounds_for_mesh_to_form = run_until(&mesh, &mut members, &mut random, 0, |members| {
        members.iter().all(|member| member.known_count() * 10 >= (peers - 1) * 9)
    });
    let newcomer_start = start + 1000 * 1000;
    members.push(Membership::new(info(&mesh.keys, peers, newcomer_start)));
    members[peers].learn(info(&mesh.keys, 0, newcomer_start), newcomer_start).expect("a valid record");
    let rounds_for_newcomer = run_until(&mesh, &mut members, &mut random, 1000, |members| {
        members[peers].known_count() * 10 >= peers * 9
    });
    let mut exchanges = vec![0u32; members.len()];
    let idle_rounds = 20;
    let mut total_messages = 0u64;
    for round in 0..idle_rounds {
        for (index, count) in
            gossip_round(&mesh, &mut members, &mut random, 2000 + round).into_iter().enumerate()
        {
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

/// The simulated peers' keys, and who is who.
struct Mesh {
    keys: Vec<PeerKey>,
    ids: HashMap<String, usize>,
}

fn run_until(
    mesh: &Mesh,
    members: &mut [Membership],
    random: &mut fastrand::Rng,
    clock_start: u64,
    done: impl Fn(&[Membership]) -> bool,
) -> Option<u32> {
    for round in 1..=ROUNDS_MAX {
        gossip_round(mesh, members, random, clock_start + round as u64);
        if done(members) {
            return Some(round);
        }
    }
    None
}

/// One round: every peer starts one push-pull exchange with the neighbour it picks.
/// Returns how many exchanges each peer took part in.
fn gossip_round(mesh: &Mesh, members: &mut [Membership], random: &mut fastrand::Rng, round: u64) -> Vec<u32> {
    let now_ms = CLOCK_START_MS + round * 1000;
    let mut exchanges = vec![0u32; members.len()];
    let index_of = |peer_id: &str| mesh.ids.get(peer_id).copied();
    for (index, member) in members.iter_mut().enumerate() {
        member.set_me(info(&mesh.keys, index, now_ms));
    }
    for caller in 0..members.len() {
        let Some(target) = members[caller].next_exchange(random) else { continue };
        let Some(callee) = index_of(&target.peer_id).filter(|callee| *callee < members.len()) else {
            continue;
        };
        let request = members[caller].gossip(random);
        let answer = members[callee].gossip(random);
        let caller_id = mesh.keys[caller].peer_id();
        let callee_id = mesh.keys[callee].peer_id();
        members[callee].receive(request, &caller_id, now_ms).expect("honest gossip is taken");
        members[caller].receive(answer, &callee_id, now_ms).expect("honest gossip is taken");
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

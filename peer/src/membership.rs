//! Membership, sans IO: which peers we know, which are our neighbours, who is dead, and
//! which owners announced work. Plain data over events with an explicit `now_ms`; the
//! gossip task and the mesh simulation drive it.
//!
//! Invariants:
//! - at most [`NEIGHBOURS_MAX`] neighbours and [`KNOWN_PEERS_MAX`] known peers;
//! - a neighbour that fails [`FAILURES_MAX`] exchanges in a row is dropped; a known peer
//!   nobody mentioned for [`FORGET_AFTER_MS`] is forgotten;
//! - a `have` is forwarded with its ttl decreased, never with ttl 0, and forgotten after
//!   [`HAVE_LIFETIME_MS`] unless renewed;
//! - we never list ourselves as a neighbour, nor a peer we cannot dial (behind NAT: it
//!   dials us, and is listed as known).

use std::collections::{BTreeMap, BTreeSet};
use wasmhive_protocol::gossip::{GOSSIP_ENTRIES_MAX, Gossip, Have, PeerInfo};

pub const NEIGHBOURS_MAX: usize = 8;
pub const KNOWN_PEERS_MAX: usize = 1024;
pub const FAILURES_MAX: u32 = 3;
pub const FORGET_AFTER_MS: u64 = 120_000;
pub const HAVE_LIFETIME_MS: u64 = 10_000;
/// Hops a `have` travels from its owner.
pub const HAVE_TTL: u8 = 3;

#[derive(Clone, Debug)]
struct KnownPeer {
    info: PeerInfo,
    /// Last direct exchange with it, either way.
    heard_ms: Option<u64>,
    /// Last time anyone mentioned it.
    mentioned_ms: u64,
    failures: u32,
}

#[derive(Clone, Debug)]
struct HaveRecord {
    have: Have,
    received_ms: u64,
}

pub struct Membership {
    me: PeerInfo,
    known: BTreeMap<String, KnownPeer>,
    neighbours: BTreeSet<String>,
    haves: BTreeMap<String, HaveRecord>,
}

/// A peer as shown by `wasmhive peers`.
pub struct PeerView {
    pub info: PeerInfo,
    pub neighbour: bool,
    pub heard_ms_ago: Option<u64>,
}

impl Membership {
    pub fn new(me: PeerInfo) -> Membership {
        Membership { me, known: BTreeMap::new(), neighbours: BTreeSet::new(), haves: BTreeMap::new() }
    }

    pub fn me(&self) -> &PeerInfo {
        &self.me
    }

    pub fn set_spare_slots(&mut self, spare_slots: u32) {
        self.me.spare_slots = spare_slots;
    }

    /// Learns of a peer (from `--join`, the saved list or gossip).
    pub fn learn(&mut self, info: PeerInfo, now_ms: u64) {
        if info.peer_id == self.me.peer_id || info.address.is_none() {
            return;
        }
        let entry = self.known_entry(&info, now_ms);
        if entry.heard_ms.is_none() {
            entry.info = info;
        }
        if self.known.len() > KNOWN_PEERS_MAX {
            self.forget_stalest();
        }
        self.fill_neighbours();
    }

    /// A gossip message arrived (an exchange we started, or one a peer started with us).
    pub fn receive(&mut self, gossip: Gossip, now_ms: u64) {
        let from = gossip.from.clone();
        if from.peer_id != self.me.peer_id {
            let entry = self.known_entry(&from, now_ms);
            entry.info = from;
            entry.heard_ms = Some(now_ms);
            entry.failures = 0;
        }
        for info in gossip.peers.into_iter().take(GOSSIP_ENTRIES_MAX) {
            self.learn(info, now_ms);
        }
        for have in gossip.haves.into_iter().take(GOSSIP_ENTRIES_MAX) {
            self.receive_have(have, now_ms);
        }
        self.fill_neighbours();
    }

    /// Announces work of our own (ttl [`HAVE_TTL`]).
    pub fn announce(&mut self, have: Have, now_ms: u64) {
        self.haves.insert(have.job_id.clone(), HaveRecord { have, received_ms: now_ms });
    }

    fn receive_have(&mut self, have: Have, now_ms: u64) {
        let keep = match self.haves.get(&have.job_id) {
            Some(existing) => {
                have.ttl >= existing.have.ttl || now_ms > existing.received_ms + HAVE_LIFETIME_MS / 2
            }
            None => true,
        };
        if keep {
            self.haves.insert(have.job_id.clone(), HaveRecord { have, received_ms: now_ms });
        }
    }

    /// What we tell a peer: ourselves, a sample of peers, and the haves still worth forwarding.
    pub fn gossip(&self, random: &mut fastrand::Rng) -> Gossip {
        let mut peers: Vec<PeerInfo> = self.known.values().map(|known| known.info.clone()).collect();
        random.shuffle(&mut peers);
        peers.truncate(GOSSIP_ENTRIES_MAX / 2);
        let haves = self
            .haves
            .values()
            .filter(|record| record.have.ttl > 0)
            .map(|record| Have { ttl: record.have.ttl - 1, ..record.have.clone() })
            .take(GOSSIP_ENTRIES_MAX)
            .collect();
        Gossip { from: self.me.clone(), peers, haves }
    }

    /// The neighbour to exchange with next (at random), and now and then a random known
    /// peer in place of a neighbour, so the neighbour set keeps refreshing.
    pub fn next_exchange(&mut self, random: &mut fastrand::Rng) -> Option<PeerInfo> {
        if !self.known.is_empty() && random.u32(0..4) == 0 {
            let outsiders: Vec<&String> =
                self.known.keys().filter(|id| !self.neighbours.contains(*id)).collect();
            if !outsiders.is_empty() {
                let chosen = outsiders[random.usize(..outsiders.len())].clone();
                if self.neighbours.len() >= NEIGHBOURS_MAX {
                    let neighbours: Vec<String> = self.neighbours.iter().cloned().collect();
                    self.neighbours.remove(&neighbours[random.usize(..neighbours.len())]);
                }
                self.neighbours.insert(chosen);
            }
        }
        let neighbours: Vec<&String> = self.neighbours.iter().collect();
        if neighbours.is_empty() {
            return None;
        }
        let chosen = neighbours[random.usize(..neighbours.len())];
        self.known.get(chosen).map(|known| known.info.clone())
    }

    /// An exchange with `peer_id` failed; after [`FAILURES_MAX`] in a row it is dropped.
    pub fn exchange_failed(&mut self, peer_id: &str) {
        let Some(known) = self.known.get_mut(peer_id) else { return };
        known.failures += 1;
        if known.failures >= FAILURES_MAX {
            self.known.remove(peer_id);
            self.neighbours.remove(peer_id);
            self.haves.retain(|_, record| record.have.owner_id != peer_id);
            self.fill_neighbours();
        }
    }

    /// Forgets silent peers and stale haves.
    pub fn expire(&mut self, now_ms: u64) {
        let forgotten: Vec<String> = self
            .known
            .iter()
            .filter(|(_, known)| {
                known.mentioned_ms.max(known.heard_ms.unwrap_or(0)) + FORGET_AFTER_MS < now_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in forgotten {
            self.known.remove(&id);
            self.neighbours.remove(&id);
        }
        let me = self.me.peer_id.clone();
        self.haves
            .retain(|_, record| record.have.owner_id == me || record.received_ms + HAVE_LIFETIME_MS > now_ms);
        self.fill_neighbours();
    }

    /// Owners (id, address) announcing pending work, most pending first.
    pub fn owners_with_work(&self) -> Vec<(String, String)> {
        let mut owners: BTreeMap<(String, String), u64> = BTreeMap::new();
        for record in self.haves.values().filter(|record| record.have.pending > 0) {
            *owners.entry((record.have.owner_id.clone(), record.have.owner_address.clone())).or_default() +=
                record.have.pending;
        }
        let mut owners: Vec<((String, String), u64)> = owners.into_iter().collect();
        owners.sort_by_key(|(_, pending)| std::cmp::Reverse(*pending));
        owners.into_iter().map(|(owner, _)| owner).collect()
    }

    /// Every known peer's address, to save for the next start.
    pub fn known_peers(&self) -> Vec<PeerInfo> {
        self.known.values().map(|known| known.info.clone()).collect()
    }

    pub fn known_count(&self) -> usize {
        self.known.len()
    }

    pub fn view(&self, now_ms: u64) -> Vec<PeerView> {
        self.known
            .values()
            .map(|known| PeerView {
                info: known.info.clone(),
                neighbour: self.neighbours.contains(&known.info.peer_id),
                heard_ms_ago: known.heard_ms.map(|heard| now_ms.saturating_sub(heard)),
            })
            .collect()
    }

    /// The record of `info`'s peer, created if new, marked as mentioned now.
    fn known_entry(&mut self, info: &PeerInfo, now_ms: u64) -> &mut KnownPeer {
        let entry = self.known.entry(info.peer_id.clone()).or_insert_with(|| KnownPeer {
            info: info.clone(),
            heard_ms: None,
            mentioned_ms: now_ms,
            failures: 0,
        });
        entry.mentioned_ms = now_ms;
        entry
    }

    fn fill_neighbours(&mut self) {
        while self.neighbours.len() < NEIGHBOURS_MAX.min(self.known.len()) {
            let Some(id) = self.known.keys().find(|id| !self.neighbours.contains(*id)).cloned() else {
                break;
            };
            self.neighbours.insert(id);
        }
    }

    fn forget_stalest(&mut self) {
        let stalest = self.known.iter().min_by_key(|(_, known)| known.mentioned_ms).map(|(id, _)| id.clone());
        if let Some(id) = stalest {
            self.known.remove(&id);
            self.neighbours.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(index: u32) -> PeerInfo {
        PeerInfo {
            peer_id: format!("p{index}"),
            address: Some(format!("127.0.0.1:{}", 7000 + index)),
            cores: 1,
            spare_slots: 1,
        }
    }

    fn have(owner: u32, ttl: u8) -> Have {
        Have {
            job_id: format!("job-{owner}"),
            owner_id: format!("p{owner}"),
            owner_address: "a:1".into(),
            pending: 5,
            ttl,
        }
    }

    #[test]
    fn a_neighbour_that_stops_answering_is_dropped_and_we_never_list_ourselves() {
        let mut membership = Membership::new(peer(0));
        membership.learn(peer(0), 0);
        membership.learn(peer(1), 0);
        membership.learn(peer(2), 0);
        assert_eq!(membership.known_count(), 2);
        for _ in 0..FAILURES_MAX {
            membership.exchange_failed("p1");
        }
        assert_eq!(membership.known_count(), 1);
        assert!(membership.view(0).iter().all(|view| view.info.peer_id == "p2" && view.neighbour));
    }

    #[test]
    fn haves_travel_with_a_shrinking_ttl_and_expire() {
        let mut membership = Membership::new(peer(0));
        membership.receive(Gossip { from: peer(1), peers: vec![], haves: vec![have(1, 2), have(2, 0)] }, 0);
        assert_eq!(membership.owners_with_work().len(), 2);
        let forwarded = membership.gossip(&mut fastrand::Rng::with_seed(1)).haves;
        assert_eq!(forwarded, vec![have(1, 1)], "ttl 0 haves are not forwarded");
        membership.expire(HAVE_LIFETIME_MS + 1);
        assert!(membership.owners_with_work().is_empty());
    }

    #[test]
    fn neighbours_stay_bounded_and_silent_peers_are_forgotten() {
        let mut membership = Membership::new(peer(0));
        for index in 1..=40 {
            membership.learn(peer(index), 0);
        }
        let neighbours = membership.view(0).iter().filter(|view| view.neighbour).count();
        assert_eq!(neighbours, NEIGHBOURS_MAX);
        membership.expire(FORGET_AFTER_MS + 1);
        assert_eq!(membership.known_count(), 0);
    }
}

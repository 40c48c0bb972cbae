//! Membership, sans IO: which peers we know, which are our neighbours, who is dead, and
//! which owners announced work. Plain data over events with an explicit `now_ms` (Unix
//! time in ms, the clock records are signed with); the gossip task and the mesh
//! simulation drive it.
//!
//! Invariants:
//! - every stored record verified against its subject's key: a [`PeerInfo`] signed by
//!   that peer, a [`Have`] signed by its owner; a gossip message is taken only from the
//!   peer its connection's TLS handshake proved (`from` must be that peer);
//! - of each subject only the newest record is kept: an older or equal `sequence` is a
//!   replay and is dropped, as is a record signed more than [`CLOCK_SKEW_MAX_MS`] in the
//!   future or longer ago than [`RECORD_AGE_MAX_MS`] ([`HAVE_AGE_MAX_MS`] for haves);
//! - addresses are `IP:PORT` a peer can listen on (`check_gossip_address`), and the
//!   gossip task dials one only pinned to the id that signed it;
//! - every table is bounded: [`NEIGHBOURS_MAX`] neighbours, [`KNOWN_PEERS_MAX`] known
//!   peers (when full, a newcomer replaces only a peer never heard from directly, and one
//!   message adds at most [`NEW_PEERS_PER_MESSAGE_MAX`]), [`HAVES_PER_OWNER_MAX`] haves per
//!   owner and [`HAVES_MAX`] in all; every entry expires;
//! - a neighbour that fails [`FAILURES_MAX`] exchanges in a row is dropped; a known peer
//!   nobody mentioned for [`FORGET_AFTER_MS`] is forgotten; a `have` is forwarded with its
//!   ttl decreased, never with ttl 0, and forgotten after [`HAVE_LIFETIME_MS`] unless renewed;
//! - we never list ourselves as a neighbour, nor a peer we cannot dial (behind NAT: it
//!   dials us).

use std::collections::{BTreeMap, BTreeSet};
use wasmhive_protocol::gossip::{GOSSIP_ENTRIES_MAX, GOSSIP_VERSION, Gossip, Have, PeerInfo};
use wasmhive_transport::check_gossip_address;

pub const NEIGHBOURS_MAX: usize = 8;
pub const KNOWN_PEERS_MAX: usize = 1024;
pub const NEW_PEERS_PER_MESSAGE_MAX: usize = 8;
pub const HAVES_PER_OWNER_MAX: usize = 32;
pub const HAVES_MAX: usize = 1024;
pub const FAILURES_MAX: u32 = 3;
pub const FORGET_AFTER_MS: u64 = 120_000;
pub const HAVE_LIFETIME_MS: u64 = 10_000;
pub const RECORD_AGE_MAX_MS: u64 = 10 * 60_000;
pub const HAVE_AGE_MAX_MS: u64 = 60_000;
pub const CLOCK_SKEW_MAX_MS: u64 = 60_000;
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

/// Why a gossip message or record was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GossipRefused {
    #[error("the gossip's sender record is for {claimed}, but the connection proved {proven}")]
    NotTheSender { claimed: String, proven: String },
    #[error("bad signature: {0}")]
    Forged(#[from] wasmhive_protocol::identity::IdentityError),
    #[error("stale or replayed record")]
    Stale,
    #[error("{0}")]
    Address(#[from] wasmhive_transport::AddressError),
    #[error("table full")]
    Full,
}

pub struct Membership {
    me: PeerInfo,
    known: BTreeMap<String, KnownPeer>,
    neighbours: BTreeSet<String>,
    /// Keyed by (owner id, job id).
    haves: BTreeMap<(String, String), HaveRecord>,
}

/// A peer as shown by `wasmhive peers`.
pub struct PeerView {
    pub info: PeerInfo,
    pub neighbour: bool,
    pub heard_ms_ago: Option<u64>,
}

/// Is a record signed at `sequence` fresh at `now_ms`, given the age it may have?
fn fresh(sequence: u64, now_ms: u64, age_max_ms: u64) -> bool {
    sequence <= now_ms.saturating_add(CLOCK_SKEW_MAX_MS) && sequence.saturating_add(age_max_ms) >= now_ms
}

impl Membership {
    pub fn new(me: PeerInfo) -> Membership {
        Membership { me, known: BTreeMap::new(), neighbours: BTreeSet::new(), haves: BTreeMap::new() }
    }

    pub fn me(&self) -> &PeerInfo {
        &self.me
    }

    /// Our own record, freshly signed (spare slots change all the time).
    pub fn set_me(&mut self, me: PeerInfo) {
        debug_assert_eq!(me.peer_id, self.me.peer_id);
        self.me = me;
    }

    /// Learns of a peer from gossip: verified, fresh, dialable, newer than what we have.
    pub fn learn(&mut self, info: PeerInfo, now_ms: u64) -> Result<bool, GossipRefused> {
        if !fresh(info.sequence, now_ms, RECORD_AGE_MAX_MS) {
            return Err(GossipRefused::Stale);
        }
        self.learn_saved(info, now_ms)
    }

    /// Learns of a peer from our own saved list: verified and dialable, of any age (it is
    /// only ever dialled pinned to its key). Returns whether it is new.
    pub fn learn_saved(&mut self, info: PeerInfo, now_ms: u64) -> Result<bool, GossipRefused> {
        if info.peer_id == self.me.peer_id {
            return Ok(false);
        }
        check_gossip_address(info.address.as_deref().unwrap_or(""))?;
        info.verify()?;
        if let Some(known) = self.known.get_mut(&info.peer_id) {
            if info.sequence <= known.info.sequence {
                return Err(GossipRefused::Stale);
            }
            known.info = info;
            known.mentioned_ms = now_ms;
            return Ok(false);
        }
        if self.known.len() >= KNOWN_PEERS_MAX && !self.forget_one_never_heard() {
            return Err(GossipRefused::Full);
        }
        self.known.insert(
            info.peer_id.clone(),
            KnownPeer { info, heard_ms: None, mentioned_ms: now_ms, failures: 0 },
        );
        self.fill_neighbours();
        Ok(true)
    }

    /// A gossip message arrived over a connection whose TLS handshake proved `sender_id`
    /// (an exchange we started, or one a peer started with us).
    pub fn receive(&mut self, gossip: Gossip, sender_id: &str, now_ms: u64) -> Result<(), GossipRefused> {
        let from = gossip.from;
        if from.peer_id != sender_id {
            return Err(GossipRefused::NotTheSender { claimed: from.peer_id, proven: sender_id.to_string() });
        }
        from.verify()?;
        if from.address.is_some() {
            match self.learn(from.clone(), now_ms) {
                Ok(_) | Err(GossipRefused::Stale) => {}
                Err(refused) => return Err(refused),
            }
        }
        if let Some(known) = self.known.get_mut(sender_id) {
            known.heard_ms = Some(now_ms);
            known.failures = 0;
        }
        let mut new_peers = 0;
        for info in gossip.peers.into_iter().take(GOSSIP_ENTRIES_MAX) {
            if new_peers >= NEW_PEERS_PER_MESSAGE_MAX && !self.known.contains_key(&info.peer_id) {
                continue;
            }
            if let Ok(true) = self.learn(info, now_ms) {
                new_peers += 1;
            }
        }
        for have in gossip.haves.into_iter().take(GOSSIP_ENTRIES_MAX) {
            let _ = self.receive_have(have, now_ms);
        }
        self.fill_neighbours();
        Ok(())
    }

    /// Announces work of our own (ttl [`HAVE_TTL`]), signed by us.
    pub fn announce(&mut self, have: Have, now_ms: u64) {
        debug_assert_eq!(have.owner_id, self.me.peer_id);
        self.haves
            .insert((have.owner_id.clone(), have.job_id.clone()), HaveRecord { have, received_ms: now_ms });
    }

    fn receive_have(&mut self, mut have: Have, now_ms: u64) -> Result<(), GossipRefused> {
        if have.owner_id == self.me.peer_id || !fresh(have.sequence, now_ms, HAVE_AGE_MAX_MS) {
            return Err(GossipRefused::Stale);
        }
        check_gossip_address(&have.owner_address)?;
        have.verify()?;
        have.ttl = have.ttl.min(HAVE_TTL);
        let key = (have.owner_id.clone(), have.job_id.clone());
        match self.haves.get(&key) {
            Some(existing) if have.sequence < existing.have.sequence => return Err(GossipRefused::Stale),
            Some(existing) if have.sequence == existing.have.sequence && have.ttl <= existing.have.ttl => {
                return Err(GossipRefused::Stale);
            }
            Some(_) => {}
            None => {
                let of_owner = self
                    .haves
                    .range((have.owner_id.clone(), String::new())..)
                    .take_while(|((owner, _), _)| *owner == have.owner_id)
                    .count();
                if of_owner >= HAVES_PER_OWNER_MAX || self.haves.len() >= HAVES_MAX {
                    return Err(GossipRefused::Full);
                }
            }
        }
        self.haves.insert(key, HaveRecord { have, received_ms: now_ms });
        Ok(())
    }

    /// What we tell a peer: ourselves, a sample of peers, and the haves still worth forwarding.
    pub fn gossip(&self, random: &mut fastrand::Rng) -> Gossip {
        let mut peers: Vec<PeerInfo> = self.known.values().map(|known| known.info.clone()).collect();
        random.shuffle(&mut peers);
        peers.truncate(GOSSIP_ENTRIES_MAX / 2);
        let mut haves: Vec<Have> = self
            .haves
            .values()
            .filter(|record| record.have.ttl > 0)
            .map(|record| Have { ttl: record.have.ttl - 1, ..record.have.clone() })
            .collect();
        random.shuffle(&mut haves);
        haves.truncate(GOSSIP_ENTRIES_MAX);
        Gossip { version: GOSSIP_VERSION, from: self.me.clone(), peers, haves }
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
            self.forget(peer_id);
        }
    }

    /// Forgets `peer_id`, its neighbour slot and its haves (it is gone, or its address
    /// answered with another key).
    pub fn forget(&mut self, peer_id: &str) {
        self.known.remove(peer_id);
        self.neighbours.remove(peer_id);
        self.haves.retain(|(owner_id, _), _| owner_id != peer_id);
        self.fill_neighbours();
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
        self.haves.retain(|(owner_id, _), record| {
            *owner_id == me || record.received_ms.saturating_add(HAVE_LIFETIME_MS) > now_ms
        });
        self.fill_neighbours();
    }

    /// Owners (id, address) announcing pending work, most pending first. The address is
    /// the one in the owner's newest signed have; it is dialled pinned to the owner's id.
    pub fn owners_with_work(&self) -> Vec<(String, String)> {
        let mut owners: BTreeMap<(String, String), u64> = BTreeMap::new();
        for record in self.haves.values().filter(|record| record.have.pending > 0) {
            let pending =
                owners.entry((record.have.owner_id.clone(), record.have.owner_address.clone())).or_default();
            *pending = pending.saturating_add(record.have.pending);
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

    fn fill_neighbours(&mut self) {
        while self.neighbours.len() < NEIGHBOURS_MAX.min(self.known.len()) {
            let Some(id) = self.known.keys().find(|id| !self.neighbours.contains(*id)).cloned() else {
                break;
            };
            self.neighbours.insert(id);
        }
    }

    /// Makes room by forgetting the least recently mentioned peer we never heard from
    /// directly; false when every known peer was heard from (they are kept).
    fn forget_one_never_heard(&mut self) -> bool {
        let stalest = self
            .known
            .iter()
            .filter(|(_, known)| known.heard_ms.is_none())
            .min_by_key(|(_, known)| known.mentioned_ms)
            .map(|(id, _)| id.clone());
        let Some(id) = stalest else { return false };
        self.known.remove(&id);
        self.neighbours.remove(&id);
        true
    }

    /// Haves held right now (for tests and `wasmhive peers`).
    pub fn have_count(&self) -> usize {
        self.haves.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmhive_protocol::identity::PeerKey;

    const NOW: u64 = 1_800_000_000_000;

    fn key(index: u32) -> PeerKey {
        let mut secret = [0u8; 32];
        secret[..4].copy_from_slice(&index.to_le_bytes());
        PeerKey::from_secret(secret)
    }

    fn peer_at(index: u32, sequence: u64) -> PeerInfo {
        PeerInfo::signed(&key(index), Some(format!("127.0.0.1:{}", 7000 + index)), 1, 1, sequence)
    }

    fn peer(index: u32) -> PeerInfo {
        peer_at(index, NOW)
    }

    fn have(owner: u32, ttl: u8) -> Have {
        Have::signed(&key(owner), format!("job-{owner}"), "127.0.0.1:1".into(), 5, NOW, ttl)
    }

    fn gossip_from(index: u32, peers: Vec<PeerInfo>, haves: Vec<Have>) -> Gossip {
        Gossip { version: GOSSIP_VERSION, from: peer(index), peers, haves }
    }

    #[test]
    fn a_neighbour_that_stops_answering_is_dropped_and_we_never_list_ourselves() {
        let mut membership = Membership::new(peer(0));
        for index in 0..3 {
            membership.learn(peer(index), NOW).unwrap();
        }
        assert_eq!(membership.known_count(), 2);
        let id_1 = key(1).peer_id();
        for _ in 0..FAILURES_MAX {
            membership.exchange_failed(&id_1);
        }
        assert_eq!(membership.known_count(), 1);
        assert!(
            membership.view(NOW).iter().all(|view| view.info.peer_id == key(2).peer_id() && view.neighbour)
        );
    }

    #[test]
    fn haves_travel_with_a_shrinking_ttl_and_expire() {
        let mut membership = Membership::new(peer(0));
        membership
            .receive(gossip_from(1, vec![], vec![have(1, 2), have(2, 0)]), &key(1).peer_id(), NOW)
            .unwrap();
        assert_eq!(membership.owners_with_work().len(), 2);
        let forwarded = membership.gossip(&mut fastrand::Rng::with_seed(1)).haves;
        assert_eq!(forwarded, vec![have(1, 1)], "ttl 0 haves are not forwarded");
        membership.expire(NOW + HAVE_LIFETIME_MS + 1);
        assert!(membership.owners_with_work().is_empty());
    }

    #[test]
    fn neighbours_stay_bounded_and_silent_peers_are_forgotten() {
        let mut membership = Membership::new(peer(0));
        for index in 1..=40 {
            membership.learn(peer(index), NOW).unwrap();
        }
        let neighbours = membership.view(NOW).iter().filter(|view| view.neighbour).count();
        assert_eq!(neighbours, NEIGHBOURS_MAX);
        membership.expire(NOW + FORGET_AFTER_MS + 1);
        assert_eq!(membership.known_count(), 0);
    }

    #[test]
    fn forged_replayed_stale_and_misaddressed_records_are_dropped() {
        let mut membership = Membership::new(peer(0));
        let forged = PeerInfo { address: Some("127.0.0.1:9".into()), ..peer(1) };
        assert!(matches!(membership.learn(forged, NOW), Err(GossipRefused::Forged(_))));
        membership.learn(peer_at(1, NOW), NOW).unwrap();
        assert_eq!(membership.learn(peer_at(1, NOW - 1), NOW), Err(GossipRefused::Stale), "older");
        assert_eq!(membership.learn(peer_at(1, NOW), NOW), Err(GossipRefused::Stale), "replayed");
        assert_eq!(membership.learn(peer_at(2, NOW - RECORD_AGE_MAX_MS - 1), NOW), Err(GossipRefused::Stale));
        assert_eq!(membership.learn(peer_at(2, NOW + CLOCK_SKEW_MAX_MS + 1), NOW), Err(GossipRefused::Stale));
        let unspecified = PeerInfo::signed(&key(3), Some("0.0.0.0:7000".into()), 1, 1, NOW);
        assert!(matches!(membership.learn(unspecified, NOW), Err(GossipRefused::Address(_))));
        let forged_have = Have { owner_address: "127.0.0.1:9".into(), ..have(4, 3) };
        membership.receive(gossip_from(1, vec![], vec![forged_have]), &key(1).peer_id(), NOW).unwrap();
        assert!(membership.owners_with_work().is_empty(), "a have changed in flight is dropped");
        assert_eq!(membership.known_count(), 1);
    }

    #[test]
    fn gossip_is_taken_only_from_the_peer_the_connection_proved() {
        let mut membership = Membership::new(peer(0));
        let refused =
            membership.receive(gossip_from(1, vec![peer(2)], vec![have(1, 3)]), &key(9).peer_id(), NOW);
        assert!(matches!(refused, Err(GossipRefused::NotTheSender { .. })));
        assert_eq!(membership.known_count(), 0);
        assert_eq!(membership.have_count(), 0);
    }

    #[test]
    fn thousands_of_sybil_identities_stay_within_every_cap_and_their_haves_expire() {
        let mut membership = Membership::new(peer(0));
        membership.receive(gossip_from(1, vec![], vec![]), &key(1).peer_id(), NOW).unwrap();
        let honest = key(1).peer_id();
        for batch in 0..200u32 {
            let sender = 10_000 + batch;
            let peers =
                (0..GOSSIP_ENTRIES_MAX as u32).map(|index| peer(20_000 + batch * 100 + index)).collect();
            let haves = (0..GOSSIP_ENTRIES_MAX as u32)
                .map(|index| {
                    Have::signed(&key(sender), format!("job-{index}"), "127.0.0.1:1".into(), u64::MAX, NOW, 3)
                })
                .collect();
            let _ = membership.receive(gossip_from(sender, peers, haves), &key(sender).peer_id(), NOW);
            assert!(membership.known_count() <= KNOWN_PEERS_MAX);
            assert!(membership.have_count() <= HAVES_MAX);
        }
        assert!(membership.known_count() <= KNOWN_PEERS_MAX);
        assert!(
            membership.view(NOW).iter().any(|view| view.info.peer_id == honest),
            "a peer heard directly is kept"
        );
        let owners = membership.owners_with_work();
        assert!(!owners.is_empty(), "pending sums saturate, they do not overflow");
        membership.expire(NOW + HAVE_LIFETIME_MS + 1);
        assert_eq!(membership.have_count(), 0);
        membership.expire(NOW + FORGET_AFTER_MS + 1);
        assert!(membership.known_count() <= 1);
    }
}

//! Tit-for-tat in serving (BitTorrent's choking, simplified): while this peer's upload is
//! contended, a peer that has sent us pieces keeps the whole serving window
//! ([`SERVES_IN_FLIGHT`]) and every other peer gets a few answers at once
//! ([`OPTIMISTIC_SERVES_IN_FLIGHT`]: newcomers, which have nothing to give yet, still
//! get pieces; that is how they come to have some). While the upload is not contended
//! everyone gets the whole window: nothing is held back for its own sake.
//!
//! Invariants: a peer's count grows only by pieces it sent in answer to our questions,
//! and is forgotten when it is dropped from the swarm (a bad piece, a lie about a size,
//! a stall); at most [`SERVED_US_REMEMBERED_MAX`] peers are remembered (the ones that
//! sent least are forgotten first).

use super::connection::SERVES_IN_FLIGHT;
use std::collections::HashMap;
use std::time::Duration;

/// Answers a peer that never sent us a piece may have in preparation while our upload
/// is contended.
pub const OPTIMISTIC_SERVES_IN_FLIGHT: usize = 2;

/// Upload backlog beyond which the upload counts as contended.
pub const UPLOAD_CONTENDED: Duration = Duration::from_secs(1);

/// Peers whose pieces sent to us are counted, at most.
pub const SERVED_US_REMEMBERED_MAX: usize = 4096;

/// Pieces each peer sent us.
#[derive(Debug, Default)]
pub struct ServedUs {
    pieces: HashMap<String, u64>,
}

impl ServedUs {
    pub fn piece_from(&mut self, peer_id: &str) {
        if let Some(count) = self.pieces.get_mut(peer_id) {
            *count += 1;
            return;
        }
        if self.pieces.len() >= SERVED_US_REMEMBERED_MAX {
            let least = self.pieces.iter().min_by_key(|(_, count)| **count).map(|(peer, _)| peer.clone());
            self.pieces.remove(&least.unwrap_or_default());
        }
        self.pieces.insert(peer_id.to_string(), 1);
    }

    pub fn pieces_from(&self, peer_id: &str) -> u64 {
        self.pieces.get(peer_id).copied().unwrap_or(0)
    }

    pub fn forget(&mut self, peer_id: &str) {
        self.pieces.remove(peer_id);
    }
}

/// Answers a peer that sent us `pieces_from_peer` pieces may have in preparation at once,
/// with `upload_backlog` of our upload already scheduled.
pub fn serves_allowed(pieces_from_peer: u64, upload_backlog: Duration) -> usize {
    if pieces_from_peer > 0 || upload_backlog < UPLOAD_CONTENDED {
        SERVES_IN_FLIGHT
    } else {
        OPTIMISTIC_SERVES_IN_FLIGHT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_strangers_are_held_back_and_only_while_the_upload_is_contended() {
        assert_eq!(serves_allowed(0, Duration::ZERO), SERVES_IN_FLIGHT);
        assert_eq!(serves_allowed(0, UPLOAD_CONTENDED), OPTIMISTIC_SERVES_IN_FLIGHT);
        assert_eq!(serves_allowed(1, Duration::from_secs(60)), SERVES_IN_FLIGHT);
        const { assert!(OPTIMISTIC_SERVES_IN_FLIGHT > 0, "newcomers always get some") };
    }

    #[test]
    fn counts_are_bounded_and_forgotten_on_drop() {
        let mut served = ServedUs::default();
        served.piece_from("giver");
        served.piece_from("giver");
        for index in 0..SERVED_US_REMEMBERED_MAX {
            served.piece_from(&format!("peer-{index}"));
        }
        assert!(served.pieces.len() <= SERVED_US_REMEMBERED_MAX);
        assert_eq!(served.pieces_from("giver"), 2, "the least generous are forgotten first");
        served.forget("giver");
        assert_eq!(served.pieces_from("giver"), 0);
    }
}

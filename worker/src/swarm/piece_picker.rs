//! Which source to ask for which piece (sans-IO): rarest first, the owner last.
//!
//! Rules (tested below):
//! - a piece is asked of one source at a time;
//! - a peer is asked only for pieces it said it holds, the rarest among them first (the
//!   fewest peers hold it), ties broken at random so fetchers spread over the pieces;
//! - the owner, which holds every piece, is asked only for pieces no peer holds, at
//!   random, except that the blob's last piece comes first (it proves the blob's size);
//!   so every piece leaves the owner about once and the peers trade the rest;
//! - a source never has more than its window of pieces in flight.

use std::ops::Range;

/// Pieces asked of one peer at once, at most.
pub const PEER_PIECES_IN_FLIGHT: usize = 8;
/// Pieces asked of the owner at once, at most.
pub const OWNER_PIECES_IN_FLIGHT: usize = 8;

/// What the picker knows of one peer source.
pub struct PeerView<'a> {
    /// Half-open ranges of the pieces it holds, ascending.
    pub held: &'a [Range<u64>],
    pub in_flight: usize,
}

impl PeerView<'_> {
    pub fn holds(&self, index: u64) -> bool {
        let after = self.held.partition_point(|range| range.end <= index);
        self.held.get(after).is_some_and(|range| range.contains(&index))
    }
}

/// Who to ask for a piece: the owner, or the peer at this position of the sources given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    Owner,
    Peer(usize),
}

/// Assigns pieces from `unasked` (missing and asked of nobody) to sources with room.
/// `last_piece`: the blob's last piece index (asked of the owner first when unasked).
pub fn pick(
    unasked: &[u64],
    last_piece: Option<u64>,
    peers: &[PeerView<'_>],
    owner_in_flight: usize,
    rng: &mut fastrand::Rng,
) -> Vec<(Ask, u64)> {
    let availability: Vec<usize> =
        unasked.iter().map(|index| peers.iter().filter(|peer| peer.holds(*index)).count()).collect();
    let mut taken = vec![false; unasked.len()];
    let mut picks = Vec::new();
    let mut room: Vec<usize> =
        peers.iter().map(|peer| PEER_PIECES_IN_FLIGHT.saturating_sub(peer.in_flight)).collect();
    // One piece per peer per round, so each peer's rarest pieces are spread fairly.
    loop {
        let mut picked_this_round = false;
        for (position, peer) in peers.iter().enumerate() {
            if room[position] == 0 {
                continue;
            }
            let candidates = (0..unasked.len()).filter(|slot| !taken[*slot] && peer.holds(unasked[*slot]));
            if let Some(slot) = rarest(candidates, &availability, rng) {
                taken[slot] = true;
                room[position] -= 1;
                picks.push((Ask::Peer(position), unasked[slot]));
                picked_this_round = true;
            }
        }
        if !picked_this_round {
            break;
        }
    }
    let mut owner_room = OWNER_PIECES_IN_FLIGHT.saturating_sub(owner_in_flight);
    let mut only_owner: Vec<usize> =
        (0..unasked.len()).filter(|slot| !taken[*slot] && availability[*slot] == 0).collect();
    rng.shuffle(&mut only_owner);
    if let Some(last) = only_owner.iter().position(|slot| Some(unasked[*slot]) == last_piece) {
        only_owner.swap(0, last);
    }
    for slot in only_owner {
        if owner_room == 0 {
            break;
        }
        owner_room -= 1;
        picks.push((Ask::Owner, unasked[slot]));
    }
    picks
}

/// The candidate slot whose piece the fewest peers hold, at random among equals.
fn rarest(
    candidates: impl Iterator<Item = usize>,
    availability: &[usize],
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut ties = 0;
    for slot in candidates {
        match best {
            Some(current) if availability[slot] > availability[current] => {}
            Some(current) if availability[slot] == availability[current] => {
                ties += 1;
                if rng.usize(..=ties) == 0 {
                    best = Some(slot);
                }
            }
            _ => {
                best = Some(slot);
                ties = 0;
            }
        }
    }
    best
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // a list of one range of pieces
mod tests {
    use super::*;

    fn rng() -> fastrand::Rng {
        fastrand::Rng::with_seed(7)
    }

    #[test]
    fn the_owner_is_asked_for_the_last_piece_first_then_pieces_no_peer_holds() {
        let unasked: Vec<u64> = (0..20).collect();
        let picks = pick(&unasked, Some(19), &[], 0, &mut rng());
        assert_eq!(picks.len(), OWNER_PIECES_IN_FLIGHT, "the owner's window");
        assert_eq!(picks[0], (Ask::Owner, 19), "the last piece proves the size");
        let peer = PeerView { held: &[0..10], in_flight: 0 };
        let picks = pick(&unasked, Some(19), &[peer], 0, &mut rng());
        for (ask, index) in &picks {
            match ask {
                Ask::Owner => assert!(*index >= 10, "the owner is not asked for piece {index} a peer holds"),
                Ask::Peer(0) => assert!(*index < 10),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(picks.iter().filter(|(ask, _)| *ask == Ask::Peer(0)).count(), PEER_PIECES_IN_FLIGHT);
    }

    #[test]
    fn a_peer_is_asked_for_its_rarest_pieces_first_and_each_piece_of_one_source() {
        let unasked: Vec<u64> = (0..6).collect();
        let everything = [0..6];
        let common = PeerView { held: &everything, in_flight: 0 };
        let also_common = PeerView { held: &[0..4], in_flight: 0 };
        let picks = pick(&unasked, None, &[common, also_common], 0, &mut rng());
        let first_of_common = picks.iter().find(|(ask, _)| *ask == Ask::Peer(0)).unwrap().1;
        assert!(
            first_of_common >= 4,
            "pieces 4 and 5 are held by one peer only: asked first ({first_of_common})"
        );
        let mut asked: Vec<u64> = picks.iter().map(|(_, index)| *index).collect();
        asked.sort_unstable();
        assert_eq!(asked, unasked, "every piece once, none of the owner");
    }

    #[test]
    fn windows_hold_and_busy_sources_are_skipped() {
        let unasked: Vec<u64> = (0..100).collect();
        let full = PeerView { held: &[0..100], in_flight: PEER_PIECES_IN_FLIGHT };
        let picks = pick(&unasked, None, &[full], OWNER_PIECES_IN_FLIGHT - 1, &mut rng());
        assert!(
            picks.is_empty(),
            "a full peer gets nothing and the owner holds no piece no peer holds: {picks:?}"
        );
        assert!(PeerView { held: &[2..4, 8..9], in_flight: 0 }.holds(8));
        assert!(!PeerView { held: &[2..4, 8..9], in_flight: 0 }.holds(4));
    }

    #[test]
    fn ties_spread_fetchers_over_different_pieces() {
        let unasked: Vec<u64> = (0..64).collect();
        let firsts: std::collections::BTreeSet<u64> = (0..20)
            .map(|seed| pick(&unasked, None, &[], 0, &mut fastrand::Rng::with_seed(seed))[0].1)
            .collect();
        assert!(firsts.len() > 10, "twenty fetchers start on different pieces: {firsts:?}");
    }
}

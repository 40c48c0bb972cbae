//! The workers that asked for work lately, with their networks: the pool a unit's second
//! and later replicas are drawn from, so they go to a worker the owner picked at random
//! rather than to whoever asks next (a Sybil that asks right after its sibling).
//!
//! Invariants: at most one entry per identity (its latest network); entries older than
//! [`RECENT_WORKER_MS`] are dropped, so the pool is bounded by the workers that asked in
//! that window; a draw is uniform over the entries.

use super::Network;

/// How long a worker stays in the pool after it last asked for work.
pub const RECENT_WORKER_MS: u64 = 60_000;

#[derive(Default)]
pub struct RecentWorkers {
    entries: Vec<RecentWorker>,
    position: super::FastHashMap<super::WorkerId, usize>,
}

pub struct RecentWorker {
    pub worker_id: super::WorkerId,
    pub network: Network,
    last_asked_ms: u64,
}

impl RecentWorkers {
    /// `worker_id` asked for work from `network` at `now_ms`; returns the identity as the
    /// core shares it (one allocation per worker while it keeps asking, not one per lease).
    pub fn asked(&mut self, worker_id: &str, network: &Network, now_ms: u64) -> super::WorkerId {
        match self.position.get(worker_id) {
            Some(&index) => {
                let entry = &mut self.entries[index];
                if entry.network != *network {
                    entry.network = network.clone();
                }
                entry.last_asked_ms = entry.last_asked_ms.max(now_ms);
                entry.worker_id.clone()
            }
            None => {
                let shared = super::WorkerId::from(worker_id);
                self.position.insert(shared.clone(), self.entries.len());
                let entry = RecentWorker {
                    worker_id: shared.clone(),
                    network: network.clone(),
                    last_asked_ms: now_ms,
                };
                self.entries.push(entry);
                shared
            }
        }
    }

    /// Drops workers that have not asked since `now_ms - RECENT_WORKER_MS`.
    pub fn forget_idle(&mut self, now_ms: u64) {
        let mut index = 0;
        while index < self.entries.len() {
            if self.entries[index].last_asked_ms.saturating_add(RECENT_WORKER_MS) < now_ms {
                self.remove_at(index);
            } else {
                index += 1;
            }
        }
    }

    /// Forgets `worker_id` (it disconnected).
    pub fn forget(&mut self, worker_id: &str) {
        if let Some(&index) = self.position.get(worker_id) {
            self.remove_at(index);
        }
    }

    /// One worker drawn uniformly, or `None` when the pool is empty.
    pub fn draw(&self, random: &mut fastrand::Rng) -> Option<&RecentWorker> {
        (!self.entries.is_empty()).then(|| &self.entries[random.usize(..self.entries.len())])
    }

    pub fn contains(&self, worker_id: &str) -> bool {
        self.position.contains_key(worker_id)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn remove_at(&mut self, index: usize) {
        let removed = self.entries.swap_remove(index);
        self.position.remove(&removed.worker_id);
        if let Some(moved) = self.entries.get(index) {
            self.position.insert(moved.worker_id.clone(), index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_one_entry_per_worker_and_forgets_idle_and_departed_ones() {
        let mut pool = RecentWorkers::default();
        for (worker, at) in [("a", 0), ("b", 10), ("a", 20), ("c", 30)] {
            pool.asked(worker, &Network::of_identity(worker), at);
        }
        assert_eq!(pool.len(), 3);
        pool.forget("b");
        assert_eq!(pool.len(), 2);
        pool.forget_idle(RECENT_WORKER_MS + 25);
        let mut random = fastrand::Rng::with_seed(1);
        assert_eq!(&*pool.draw(&mut random).unwrap().worker_id, "c", "a asked last at 20: idle");
        pool.forget("c");
        assert!(pool.draw(&mut random).is_none());
    }
}

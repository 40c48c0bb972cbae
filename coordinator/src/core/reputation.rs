//! Reputation per worker identity, sans IO: slow to earn, quick to lose.
//!
//! Every replica of an accepted unit is judged: it agreed with the canonical result or it
//! did not. The error-rate estimate starts at [`ERROR_RATE_START`] (a stranger is not
//! trusted), shrinks by [`EARN_FACTOR`] per valid result (about 45 valid results to go from
//! 0.1 to 0.01) and jumps halfway to 1 per invalid one. [`INVALID_STRIKES`] invalid results
//! with no valid one in between quarantine the worker for [`QUARANTINE_MS`]: it gets no
//! leases until then. An identity the owner's own run of a unit proved wrong
//! (`arbitration.rs`) is quarantined for good: [`BANNED_UNTIL_MS`].

use std::collections::BTreeMap;

pub const ERROR_RATE_START: f64 = 0.1;
pub const EARN_FACTOR: f64 = 0.95;
pub const INVALID_STRIKES: u32 = 3;
pub const QUARANTINE_MS: u64 = 10 * 60 * 1000;
/// The quarantine of a proven liar: it never ends (the largest time the store can hold).
pub const BANNED_UNTIL_MS: u64 = i64::MAX as u64;

/// What an owner knows of one worker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reputation {
    pub valid: u64,
    pub invalid: u64,
    pub consecutive_valid: u64,
    /// Invalid results since the last valid one.
    pub strikes: u32,
    /// Units its host timed out on that other workers finished.
    pub unfinished: u64,
    pub error_rate: f64,
    /// In the owner's clock; no leases before then.
    pub quarantined_until_ms: Option<u64>,
}

impl Default for Reputation {
    fn default() -> Reputation {
        Reputation {
            valid: 0,
            invalid: 0,
            consecutive_valid: 0,
            strikes: 0,
            unfinished: 0,
            error_rate: ERROR_RATE_START,
            quarantined_until_ms: None,
        }
    }
}

impl Reputation {
    /// 1 − error rate: 0.9 for a stranger, towards 1 with a clean record.
    pub fn trust(&self) -> f64 {
        1.0 - self.error_rate
    }

    /// The same reputation with its quarantine's end read in another clock: `to_unix` from
    /// the core's clock (which starts at `started_unix_ms`) to Unix time, else back. A ban
    /// stays a ban in both.
    pub fn in_clock(mut self, started_unix_ms: u64, to_unix: bool) -> Reputation {
        self.quarantined_until_ms = self.quarantined_until_ms.map(|until| match until {
            BANNED_UNTIL_MS => BANNED_UNTIL_MS,
            until if to_unix => until.saturating_add(started_unix_ms).min(BANNED_UNTIL_MS - 1),
            until => until.saturating_sub(started_unix_ms),
        });
        self
    }

    /// Proven wrong by the owner's own run of a unit: no leases ever again.
    pub fn is_banned(&self) -> bool {
        self.quarantined_until_ms == Some(BANNED_UNTIL_MS)
    }
}

#[derive(Default)]
pub struct ReputationBook {
    workers: BTreeMap<String, Reputation>,
}

impl ReputationBook {
    /// The worker's reputation, created empty on first use (its id copied only then).
    fn entry(&mut self, worker_id: &str) -> &mut Reputation {
        if !self.workers.contains_key(worker_id) {
            self.workers.insert(worker_id.to_string(), Reputation::default());
        }
        self.workers.get_mut(worker_id).expect("inserted above")
    }

    /// Records one judged replica; returns the worker's new reputation.
    pub fn record(&mut self, worker_id: &str, agreed: bool, now_ms: u64) -> Reputation {
        let reputation = self.entry(worker_id);
        if agreed {
            reputation.valid += 1;
            reputation.consecutive_valid += 1;
            reputation.strikes = 0;
            reputation.error_rate *= EARN_FACTOR;
        } else if !reputation.is_banned() {
            reputation.invalid += 1;
            reputation.consecutive_valid = 0;
            reputation.strikes += 1;
            reputation.error_rate = (reputation.error_rate + 1.0) / 2.0;
            if reputation.strikes >= INVALID_STRIKES {
                reputation.quarantined_until_ms = Some(now_ms + QUARANTINE_MS);
                reputation.strikes = 0;
            }
        }
        *reputation
    }

    /// Bans a worker the owner's own run proved wrong: one more invalid result, no trust, no
    /// leases ever again.
    pub fn ban(&mut self, worker_id: &str) -> Reputation {
        let reputation = self.entry(worker_id);
        reputation.invalid += 1;
        reputation.consecutive_valid = 0;
        reputation.error_rate = 1.0;
        reputation.quarantined_until_ms = Some(BANNED_UNTIL_MS);
        *reputation
    }

    /// Records a unit this worker timed out on and others finished: no strike (a slow host
    /// is not a liar), but trust drops (a quarter of the way to none) and the run of valid
    /// results ends, so a worker that times out much more than its peers is not trusted.
    pub fn record_unfinished(&mut self, worker_id: &str) -> Reputation {
        let reputation = self.entry(worker_id);
        reputation.unfinished += 1;
        reputation.consecutive_valid = 0;
        reputation.error_rate += (1.0 - reputation.error_rate) / 4.0;
        *reputation
    }

    pub fn is_quarantined(&self, worker_id: &str, now_ms: u64) -> bool {
        self.workers
            .get(worker_id)
            .and_then(|reputation| reputation.quarantined_until_ms)
            .is_some_and(|until| now_ms < until)
    }

    pub fn restore(&mut self, worker_id: &str, reputation: Reputation) {
        self.workers.insert(worker_id.to_string(), reputation);
    }

    pub fn get(&self, worker_id: &str) -> Option<Reputation> {
        self.workers.get(worker_id).copied()
    }

    pub fn all(&self) -> Vec<(String, Reputation)> {
        self.workers.iter().map(|(id, reputation)| (id.clone(), *reputation)).collect()
    }
}

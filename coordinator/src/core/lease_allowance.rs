//! How many leases an identity, and a network, may hold open at once.
//!
//! A hoarder takes leases it never runs and delays every unit it holds by the lease time;
//! identities are free, so the allowance is kept per identity and per network, and grows
//! only with work actually returned (like TCP's slow start), and shrinks when leases expire:
//! - an identity may hold at most `per_core × cores` (the cores it advertised, at most
//!   [`CORES_COUNTED_MAX`]) and at most its *credit*; a network at most `network_max` and
//!   at most its own credit;
//! - credit starts at `identity_start` (an identity) or `network_start` (a network), grows by
//!   one per outcome returned (any status: a failure is work done too), and halves, rounding
//!   down, each time leases expire (once per expiry sweep); at 0 nothing is leased until [`FORGIVE_AFTER_MS`] after
//!   the last expiry, when it is 1 again;
//! - entries with no open lease and no activity for [`FORGIVE_AFTER_MS`] are forgotten, so
//!   memory is bounded by the identities and networks active in that window (advertised
//!   cores, by the workers connected).

use super::Network;

/// Cores an identity may claim for its allowance.
pub const CORES_COUNTED_MAX: u32 = 256;

/// After this long without an expiry, an allowance worn down to 0 is 1 again, and an idle
/// entry is forgotten.
pub const FORGIVE_AFTER_MS: u64 = 10 * 60 * 1000;

/// The allowance rules (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseLimits {
    pub per_core: u32,
    pub identity_start: u32,
    pub network_start: u32,
    pub network_max: u32,
}

impl LeaseLimits {
    /// The owner's rules: 1024 open leases per advertised core (tiny units need a deep
    /// pipeline: a lease is open from its grant until its outcome arrives, several
    /// milliseconds (queued, run, up to the worker's `FLUSH_DELAY`, recorded), in
    /// which a core runs hundreds of tiny units; 10,000 tiny units ran at 10,241 units/s
    /// with 8 per core, 18,064 with 64; 50,000 at about 26,000 with 64 and 45,000 with 256;
    /// W1 with 100,000 at 60,238 with 1024 against 50,719 with 256, 5 runs alternately,
    /// once outcomes waited 3 ms instead of 1), 8 to start with per identity, 32 per
    /// network, at most 4096 per network. What a hoarder holds is bounded by its credit,
    /// which only returned work raises.
    pub const OWNER: LeaseLimits =
        LeaseLimits { per_core: 1024, identity_start: 8, network_start: 32, network_max: 4096 };
}

#[derive(Clone, Debug)]
struct Allowance {
    credit: u32,
    open: u32,
    last_active_ms: u64,
    last_expiry_ms: Option<u64>,
}

impl Allowance {
    fn new(credit: u32, now_ms: u64) -> Allowance {
        Allowance { credit, open: 0, last_active_ms: now_ms, last_expiry_ms: None }
    }

    fn room(&mut self, ceiling: u32, now_ms: u64) -> u32 {
        if self.credit == 0
            && self.last_expiry_ms.is_some_and(|at| at.saturating_add(FORGIVE_AFTER_MS) <= now_ms)
        {
            self.credit = 1;
        }
        self.credit.min(ceiling).saturating_sub(self.open)
    }
}

/// The allowances of every active identity and network.
pub struct LeaseAllowances {
    /// `None`: no limit beyond the slots asked for (unit tests of other rules).
    limits: Option<LeaseLimits>,
    identities: super::FastHashMap<String, Allowance>,
    networks: super::FastHashMap<Network, Allowance>,
}

impl LeaseAllowances {
    pub fn new(limits: Option<LeaseLimits>) -> LeaseAllowances {
        LeaseAllowances {
            limits,
            identities: super::FastHashMap::default(),
            networks: super::FastHashMap::default(),
        }
    }

    /// How many more leases `worker_id` on `network`, which advertised `cores`, may take now.
    pub fn room(&mut self, worker_id: &str, network: &Network, cores: u32, now_ms: u64) -> u32 {
        let Some(limits) = self.limits else { return u32::MAX };
        let cores = cores.clamp(1, CORES_COUNTED_MAX);
        let identity_ceiling = limits.per_core.saturating_mul(cores);
        let Some([identity, network]) = self.both(worker_id, network, now_ms) else { return u32::MAX };
        identity.room(identity_ceiling, now_ms).min(network.room(limits.network_max, now_ms))
    }

    /// `count` leases were opened for `worker_id` on `network`.
    pub fn leases_opened(&mut self, worker_id: &str, network: &Network, count: u32, now_ms: u64) {
        for allowance in self.both(worker_id, network, now_ms).into_iter().flatten() {
            allowance.open += count;
            allowance.last_active_ms = now_ms;
        }
    }

    /// A lease ended with an outcome: the work was returned.
    pub fn outcome_returned(&mut self, worker_id: &str, network: &Network, now_ms: u64) {
        for allowance in self.both(worker_id, network, now_ms).into_iter().flatten() {
            allowance.open = allowance.open.saturating_sub(1);
            allowance.credit = allowance.credit.saturating_add(1);
            allowance.last_active_ms = now_ms;
        }
    }

    /// A lease was handed back or its worker left: no credit either way.
    pub fn lease_closed(&mut self, worker_id: &str, network: &Network) {
        for allowance in self.both(worker_id, network, 0).into_iter().flatten() {
            allowance.open = allowance.open.saturating_sub(1);
        }
    }

    /// A lease expired: the allowance halves (once per sweep: leases that expire together,
    /// at one `now_ms`, halve it once).
    pub fn lease_expired(&mut self, worker_id: &str, network: &Network, now_ms: u64) {
        for allowance in self.both(worker_id, network, now_ms).into_iter().flatten() {
            allowance.open = allowance.open.saturating_sub(1);
            if allowance.last_expiry_ms != Some(now_ms) {
                allowance.credit /= 2;
            }
            allowance.last_expiry_ms = Some(now_ms);
            allowance.last_active_ms = now_ms;
        }
    }

    /// Forgets entries with nothing open and no activity for [`FORGIVE_AFTER_MS`].
    pub fn forget_idle(&mut self, now_ms: u64) {
        let idle = |allowance: &Allowance| {
            allowance.open == 0 && allowance.last_active_ms.saturating_add(FORGIVE_AFTER_MS) <= now_ms
        };
        self.identities.retain(|_, allowance| !idle(allowance));
        self.networks.retain(|_, allowance| !idle(allowance));
    }

    /// The identity's and the network's allowances, new ones started at `now_ms` (none
    /// without limits). Called for every lease and outcome: no allocation once they exist.
    fn both(&mut self, worker_id: &str, network: &Network, now_ms: u64) -> Option<[&mut Allowance; 2]> {
        let limits = self.limits?;
        if !self.identities.contains_key(worker_id) {
            self.identities.insert(worker_id.to_string(), Allowance::new(limits.identity_start, now_ms));
        }
        if !self.networks.contains_key(network) {
            self.networks.insert(network.clone(), Allowance::new(limits.network_start, now_ms));
        }
        Some([self.identities.get_mut(worker_id)?, self.networks.get_mut(network)?])
    }
}

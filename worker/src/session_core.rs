//! The rules of one worker session, without IO or clock: when to ask for leases and how
//! many, which leases to keep, when outcomes go out, what is sent again after a reconnect.
//! The async shell (`session.rs`) feeds it events and sends the messages it returns; the
//! seeded simulation below drives it against a scripted owner.
//!
//! Invariants:
//! - at most one request for work is outstanding; leases beyond what it asked for are
//!   handed back unrun (an owner cannot make a worker hoard);
//! - an outcome stays unacknowledged until the owner acknowledges its lease, and every
//!   unacknowledged outcome is sent again after each reconnect: none is lost to a dropped
//!   connection;
//! - outcomes go out at most [`OUTCOMES_PER_MESSAGE_MAX`] per message: [`FLUSH_DELAY`]
//!   after the first of a batch finished, at once when that many wait, or when nothing else
//!   is running;
//! - a request is made only when the queue (leases running or waiting for their module) is
//!   at most half the target, and never while paused or while waiting out a `no_work`;
//! - the prefetch target doubles when leases arrive and the pool had run dry, up to
//!   [`PREFETCH_MAX`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wasmhive_protocol::{Lease, Message, OutcomeReport};

/// How long a finished outcome waits for others to share its message. Each message costs
/// both ends a frame, a record, an acknowledgement and part of a store transaction: 3 ms
/// (not 1) took W1 at quorum 2 from 1,871 to 1,365 messages and from 1,423 to 1,016
/// transactions per 100,000 units; 6 ms to 782–812 transactions (from 901–984), and W1's
/// grid / sandbox-only rate at quorum 1 from 0.39 to 0.42 (100,000 units, 5 runs
/// alternately; no change with 10,000). A busy worker's messages then hold the 256
/// outcomes one may; an outcome leaves at most 6 ms after it finished, at once when
/// nothing else runs.
pub const FLUSH_DELAY: Duration = Duration::from_millis(6);
/// Outcomes sent in one message at most.
pub const OUTCOMES_PER_MESSAGE_MAX: usize = 256;
/// The prefetch target never grows beyond this many leases.
pub const PREFETCH_MAX: usize = 4096;
/// The longest `no_work` wait an owner can impose.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(60);

/// What the shell knows about its queue when it asks what is due.
#[derive(Clone, Copy, Debug)]
pub struct QueueState {
    /// Leases on the pool (queued or running) whose end has not been seen.
    pub in_pool: usize,
    /// Those plus the leases waiting for their module.
    pub queued: usize,
    /// This session's share of the prefetch target (slots are spread over owners).
    pub target: usize,
    pub paused: bool,
}

pub struct SessionCore {
    pending: Vec<OutcomeReport>,
    unacknowledged: BTreeMap<u64, OutcomeReport>,
    prefetch_target: usize,
    /// Leases asked for and not yet answered (0: no request outstanding).
    requested: u32,
    retry_at: Option<Instant>,
    /// When waiting outcomes are sent (set when the first of a batch finishes).
    flush_at: Option<Instant>,
}

impl SessionCore {
    pub fn new(prefetch_target: usize) -> SessionCore {
        SessionCore {
            pending: Vec::new(),
            unacknowledged: BTreeMap::new(),
            prefetch_target: prefetch_target.clamp(1, PREFETCH_MAX),
            requested: 0,
            retry_at: None,
            flush_at: None,
        }
    }

    /// The whole prefetch target, before it is shared among owners.
    pub fn prefetch_target(&self) -> usize {
        self.prefetch_target
    }

    pub fn flush_at(&self) -> Option<Instant> {
        self.flush_at
    }

    pub fn unacknowledged(&self) -> usize {
        self.unacknowledged.len()
    }

    /// A new connection: nothing is asked yet, and every unacknowledged outcome goes again.
    pub fn connected(&mut self) -> Vec<Message> {
        self.requested = 0;
        self.retry_at = None;
        let resend: Vec<OutcomeReport> = self.unacknowledged.values().cloned().collect();
        resend
            .chunks(OUTCOMES_PER_MESSAGE_MAX)
            .map(|chunk| Message::Outcomes { outcomes: chunk.to_vec() })
            .collect()
    }

    /// The connection dropped: the owner re-queues our open leases.
    pub fn connection_lost(&mut self) {
        self.requested = 0;
    }

    /// Leases arrived (`in_pool` before them): returns those to run and, when the owner
    /// sent more than we asked for, a message handing the rest back unrun.
    pub fn leases_arrived(&mut self, leases: Vec<Lease>, in_pool: usize) -> (Vec<Lease>, Option<Message>) {
        if in_pool == 0 {
            self.prefetch_target = (self.prefetch_target * 2).min(PREFETCH_MAX);
        }
        let asked = std::mem::take(&mut self.requested) as usize;
        let unasked: Vec<u64> = leases.iter().skip(asked).map(|lease| lease.lease_id).collect();
        let hand_back = (!unasked.is_empty()).then_some(Message::ReturnLeases { lease_ids: unasked });
        (leases.into_iter().take(asked).collect(), hand_back)
    }

    pub fn no_work(&mut self, retry_after_ms: u64, now: Instant) {
        self.requested = 0;
        self.retry_at = Some(now + Duration::from_millis(retry_after_ms).min(RETRY_AFTER_MAX));
    }

    /// The owner has units again: ask at once.
    pub fn work_ready(&mut self) {
        self.retry_at = None;
    }

    pub fn acknowledged(&mut self, lease_ids: &[u64]) {
        for lease_id in lease_ids {
            self.unacknowledged.remove(lease_id);
        }
    }

    /// A lease ran to an outcome.
    pub fn finished(&mut self, report: OutcomeReport, now: Instant) {
        self.pending.push(report);
        self.flush_at.get_or_insert(now + FLUSH_DELAY);
    }

    /// What to send now: outcomes that are due, then a request for work when the queue is
    /// at most half its target.
    pub fn due(&mut self, now: Instant, queue: QueueState) -> Vec<Message> {
        let flush_due = self.flush_at.is_some_and(|flush_at| flush_at <= now)
            || self.pending.len() >= OUTCOMES_PER_MESSAGE_MAX
            || (queue.in_pool == 0 && !self.pending.is_empty());
        let mut messages = if flush_due { self.flush_all() } else { Vec::new() };
        messages.extend(self.request(now, queue));
        messages
    }

    /// Every waiting outcome, in messages of at most [`OUTCOMES_PER_MESSAGE_MAX`].
    pub fn flush_all(&mut self) -> Vec<Message> {
        self.flush_at = None;
        let mut messages = Vec::new();
        while !self.pending.is_empty() {
            let count = self.pending.len().min(OUTCOMES_PER_MESSAGE_MAX);
            let outcomes: Vec<OutcomeReport> = self.pending.drain(..count).collect();
            for outcome in &outcomes {
                self.unacknowledged.insert(outcome.lease_id, outcome.clone());
            }
            messages.push(Message::Outcomes { outcomes });
        }
        messages
    }

    fn request(&mut self, now: Instant, queue: QueueState) -> Option<Message> {
        let waiting_out_retry = self.retry_at.is_some_and(|retry_at| now < retry_at);
        if queue.paused || self.requested > 0 || waiting_out_retry || queue.queued * 2 > queue.target {
            return None;
        }
        let slots = u32::try_from(queue.target.saturating_sub(queue.queued)).unwrap_or(u32::MAX);
        if slots == 0 {
            return None;
        }
        self.requested = slots;
        Some(Message::RequestWork { slots })
    }
}

#[cfg(test)]
#[path = "session_core_tests.rs"]
mod tests;

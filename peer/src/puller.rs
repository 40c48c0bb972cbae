//! Pulling work: one worker session per owner that announces pending units (our own
//! coordinator included), all on the peer's one compute pool. A session whose owner has
//! announced nothing for [`IDLE_OWNER_MS`] is closed. The prefetch slots are split between
//! the owners by reciprocity (`reciprocity.rs`), recomputed on every pass.

use crate::reciprocity::{OwnerRecord, slot_shares};
use crate::{PeerState, wait_for};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const SUPERVISE_INTERVAL: Duration = Duration::from_millis(250);
const IDLE_OWNER_MS: u64 = 15_000;
/// Owners worked for at once at most.
const SESSIONS_MAX: usize = 16;

struct OwnerSession {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    last_announced_ms: u64,
}

pub async fn run(state: Arc<PeerState>, shutdown: impl Future<Output = ()>) {
    let mut sessions: HashMap<String, OwnerSession> = HashMap::new();
    let mut interval = tokio::time::interval(SUPERVISE_INTERVAL);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = shutdown.as_mut() => break,
            _ = interval.tick() => {}
        }
        let now_ms = state.now_ms();
        let owners = state.membership.lock().expect("membership lock").owners_with_work();
        share_slots_by_reciprocity(&state, &owners);
        for (owner_id, address) in owners {
            if let Some(session) = sessions.get_mut(&owner_id) {
                session.last_announced_ms = now_ms;
                continue;
            }
            if sessions.len() >= SESSIONS_MAX {
                break;
            }
            tracing::info!(owner = %owner_id, %address, "pulling work from an owner");
            // Pinned: the session works only for the owner whose key signed the have.
            let pinned = format!("{address}#{owner_id}");
            sessions.insert(owner_id, start_session(&state, pinned, now_ms));
        }
        sessions.retain(|owner_id, session| {
            let idle = now_ms > session.last_announced_ms + IDLE_OWNER_MS;
            if idle || session.task.is_finished() {
                tracing::info!(owner = %owner_id, "no more work from this owner");
                let _ = session.stop.send(true);
            }
            !idle && !session.task.is_finished()
        });
    }
    for session in sessions.into_values() {
        let _ = session.stop.send(true);
        let _ = session.task.await;
    }
}

fn share_slots_by_reciprocity(state: &PeerState, owners: &[(String, String)]) {
    let done_for_us = state.coordinator.replicas_per_worker();
    let own_id = state.execution.peer_id();
    let records: Vec<OwnerRecord> = owners
        .iter()
        .map(|(owner_id, _)| OwnerRecord {
            owner_id: owner_id.clone(),
            replicas_done_for_us: done_for_us.get(owner_id).copied().unwrap_or(0),
            is_self: *owner_id == own_id,
        })
        .collect();
    state.execution.set_slot_shares(slot_shares(&records).into_iter().collect());
}

fn start_session(state: &Arc<PeerState>, address: String, now_ms: u64) -> OwnerSession {
    let (stop, stopped) = watch::channel(false);
    let execution = state.execution.clone();
    let task = tokio::spawn(async move {
        if let Err(error) = wasmhive_worker::run_owner_session(execution, &address, wait_for(stopped)).await {
            tracing::warn!(%address, %error, "worker session ended");
        }
    });
    OwnerSession { stop, task, last_announced_ms: now_ms }
}

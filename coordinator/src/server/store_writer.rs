//! The store writer: one thread that owns a SQLite connection of its own and commits the
//! workers' outcome batches, as many per transaction as arrived while the previous one
//! committed (group commit: one fsync for all of them, where each batch used to pay its
//! own under the lock every store reader takes).
//!
//! Invariants:
//! - a batch is acknowledged to its worker only after the transaction holding it committed;
//! - a group that fails is retried batch by batch, so a bad batch fails only itself;
//! - when a batch cannot be committed, its jobs' core state is rebuilt from the store here,
//!   before any later batch commits; batches the core recorded before that rebuild (their
//!   job's generation is older) are refused, not committed, so the rebuilt core and the
//!   store never disagree about which units are decided.
//!
//! Limits: at most [`GROUP_BATCHES_MAX`] batches per transaction; at most
//! [`QUEUED_BATCHES_MAX`] wait (senders then wait too: back-pressure on the connections).

use super::state::Coordinator;
use crate::store::{OutcomeBatch, Store, StoreError, StoreFault, StoreResult};
use std::sync::Weak;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use tokio::sync::oneshot;

/// How a batch's commit ended.
pub type CommitAnswer = Result<(), CommitRefused>;

/// A batch and the generations of its jobs (given back when the writer's queue is full).
pub type UnqueuedBatch = (OutcomeBatch, Vec<(String, u64)>);

/// Batches committed in one transaction, at most.
pub const GROUP_BATCHES_MAX: usize = 512;
/// Batches waiting for the writer, at most.
pub const QUEUED_BATCHES_MAX: usize = 4096;

/// Why a batch was not committed. Its outcomes are not acknowledged: the worker sends them
/// again, and the core, rebuilt from the store, no longer knows their leases.
#[derive(Debug, thiserror::Error)]
pub enum CommitRefused {
    #[error("the store could not commit the batch: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the batch's job was rebuilt from the store after a failed commit; the batch was recorded before"
    )]
    JobRebuilt,
    #[error("the owner is shutting down")]
    ShuttingDown,
}

/// A batch, the generation of each of its jobs when the core recorded it, and where to say
/// how its commit went.
struct QueuedBatch {
    batch: OutcomeBatch,
    generations: Vec<(String, u64)>,
    reply: oneshot::Sender<CommitAnswer>,
}

enum WriterRequest {
    Batch(QueuedBatch),
    /// Fault-injection tests: make the writer's connection fail, or work again.
    Fault {
        fault: Option<StoreFault>,
        reply: SyncSender<StoreResult<()>>,
    },
}

/// The handle the coordinator sends batches through.
pub struct StoreWriter {
    requests: SyncSender<WriterRequest>,
}

impl StoreWriter {
    /// Starts the writer's thread on `store` (a connection of its own). It ends when the
    /// handle is dropped.
    pub fn start(store: Store, coordinator: Weak<Coordinator>) -> std::io::Result<StoreWriter> {
        let (requests, received) = sync_channel(QUEUED_BATCHES_MAX);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_until_closed(store, &received, &coordinator))?;
        Ok(StoreWriter { requests })
    }

    /// A handle whose thread could not start: every commit is refused.
    pub fn stopped() -> StoreWriter {
        let (requests, _) = sync_channel(0);
        StoreWriter { requests }
    }

    /// Commits `batch` (recorded by the core with these job generations); returns once it
    /// is committed or refused. Blocks: call it off the async runtime.
    pub fn commit(&self, batch: OutcomeBatch, generations: Vec<(String, u64)>) -> CommitAnswer {
        let (reply, answer) = oneshot::channel();
        let request = WriterRequest::Batch(QueuedBatch { batch, generations, reply });
        self.requests.send(request).map_err(|_| CommitRefused::ShuttingDown)?;
        answer.blocking_recv().unwrap_or(Err(CommitRefused::ShuttingDown))
    }

    /// Hands `batch` to the writer without blocking; the answer arrives on the receiver.
    /// When the queue is full, the batch comes back (commit it with [`StoreWriter::commit`]
    /// off the runtime: that waits for room).
    pub fn commit_later(
        &self,
        batch: OutcomeBatch,
        generations: Vec<(String, u64)>,
    ) -> Result<oneshot::Receiver<CommitAnswer>, UnqueuedBatch> {
        let (reply, answer) = oneshot::channel();
        match self.requests.try_send(WriterRequest::Batch(QueuedBatch { batch, generations, reply })) {
            Ok(()) => Ok(answer),
            Err(
                TrySendError::Full(WriterRequest::Batch(queued))
                | TrySendError::Disconnected(WriterRequest::Batch(queued)),
            ) => Err((queued.batch, queued.generations)),
            Err(_) => unreachable!("only a batch was sent"),
        }
    }

    pub fn inject_fault(&self, fault: Option<StoreFault>) -> StoreResult<()> {
        let (reply, answer) = sync_channel(1);
        let shutting_down = || StoreError::Corrupt("the store writer has stopped".into());
        self.requests.send(WriterRequest::Fault { fault, reply }).map_err(|_| shutting_down())?;
        answer.recv().unwrap_or_else(|_| Err(shutting_down()))
    }
}

fn write_until_closed(mut store: Store, received: &Receiver<WriterRequest>, coordinator: &Weak<Coordinator>) {
    while let Ok(first) = received.recv() {
        let mut group = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next {
            match request {
                WriterRequest::Batch(queued) => group.push(queued),
                WriterRequest::Fault { fault, reply } => {
                    commit_group(&mut store, std::mem::take(&mut group), coordinator);
                    let _ = reply.send(store.inject_fault(fault));
                }
            }
            next = (group.len() < GROUP_BATCHES_MAX).then(|| received.try_recv().ok()).flatten();
        }
        commit_group(&mut store, group, coordinator);
    }
}

/// Commits a group in one transaction; when that fails, each batch alone.
fn commit_group(store: &mut Store, group: Vec<QueuedBatch>, coordinator: &Weak<Coordinator>) {
    if group.is_empty() {
        return;
    }
    let Some(coordinator) = coordinator.upgrade() else { return }; // replies dropped: shutting down
    let (current, stale): (Vec<QueuedBatch>, Vec<QueuedBatch>) =
        group.into_iter().partition(|queued| coordinator.recorded_in_current_generation(&queued.generations));
    for queued in stale {
        let _ = queued.reply.send(Err(CommitRefused::JobRebuilt));
    }
    let batches: Vec<&OutcomeBatch> = current.iter().map(|queued| &queued.batch).collect();
    if batches.is_empty() {
        return;
    }
    if store.commit_outcome_batches(&batches).is_ok() {
        coordinator.metrics.outcome_commits.inc();
        coordinator.metrics.outcome_batches_committed.inc_by(batches.len() as u64);
        for queued in current {
            let _ = queued.reply.send(Ok(()));
        }
        return;
    }
    for queued in current {
        let answer = commit_alone(store, &queued, &coordinator);
        let _ = queued.reply.send(answer);
    }
}

/// Commits one batch in a transaction of its own; when that fails, rebuilds its jobs in the
/// core from the store before anything else commits.
fn commit_alone(
    store: &mut Store,
    queued: &QueuedBatch,
    coordinator: &Coordinator,
) -> Result<(), CommitRefused> {
    if !coordinator.recorded_in_current_generation(&queued.generations) {
        return Err(CommitRefused::JobRebuilt); // an earlier batch of its job failed
    }
    match store.commit_outcome_batches(&[&queued.batch]) {
        Ok(()) => {
            coordinator.metrics.outcome_commits.inc();
            coordinator.metrics.outcome_batches_committed.inc();
            Ok(())
        }
        Err(error) => {
            let job_ids = queued.generations.iter().map(|(job_id, _)| job_id.as_str());
            coordinator.commit_failed(&error, store, job_ids);
            Err(CommitRefused::Store(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_the_writer_cannot_take_now_comes_back_and_a_stopped_writer_refuses_commits() {
        let writer = StoreWriter::stopped();
        let generations = vec![("job".to_string(), 3)];
        let returned = writer.commit_later(OutcomeBatch::default(), generations.clone());
        let Err((_, given_back)) = returned else { panic!("the batch is given back") };
        assert_eq!(given_back, generations);
        assert!(matches!(
            writer.commit(OutcomeBatch::default(), generations),
            Err(CommitRefused::ShuttingDown)
        ));
    }
}

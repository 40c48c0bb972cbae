//! The worker connections an owner has open: who, with how many cores, and the channel
//! to push messages (cancels) to each.

use std::collections::{BTreeMap, HashMap};
use tokio::sync::mpsc;
use wasmhive_protocol::Message;

struct WorkerConnection {
    worker_id: String,
    cores: u32,
    sender: mpsc::Sender<Message>,
}

#[derive(Default)]
pub struct Connections {
    next_id: u64,
    open: HashMap<u64, WorkerConnection>,
}

impl Connections {
    /// Registers a connection; returns its id and the receiver of pushed messages.
    pub fn open(&mut self, worker_id: &str, cores: u32) -> (u64, mpsc::Receiver<Message>) {
        let (sender, receiver) = mpsc::channel(64);
        self.next_id += 1;
        self.open.insert(self.next_id, WorkerConnection { worker_id: worker_id.to_string(), cores, sender });
        (self.next_id, receiver)
    }

    /// Forgets a connection; true when its worker has no other connection open.
    pub fn close(&mut self, connection_id: u64) -> bool {
        let Some(closed) = self.open.remove(&connection_id) else { return false };
        !self.open.values().any(|connection| connection.worker_id == closed.worker_id)
    }

    /// Pushes a message to every connection of `worker_id` (dropped if its queue is full).
    pub fn push_to(&self, worker_id: &str, message: &Message) {
        for connection in self.open.values().filter(|connection| connection.worker_id == worker_id) {
            let _ = connection.sender.try_send(message.clone());
        }
    }

    /// Connections open (a worker may have several).
    pub fn count(&self) -> usize {
        self.open.len()
    }

    /// Connected workers and their cores (the most any of their connections announced).
    pub fn workers(&self) -> BTreeMap<String, u32> {
        let mut workers = BTreeMap::new();
        for connection in self.open.values() {
            let cores = workers.entry(connection.worker_id.clone()).or_insert(0);
            *cores = (*cores).max(connection.cores);
        }
        workers
    }
}

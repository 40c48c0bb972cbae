//! The worker connections an owner has open: who, from which network, with how many
//! cores, and the channel to push messages (cancels) to each.

use super::outcomes::WorkerSeen;
use super::state::Coordinator;
use crate::core::{Network, NetworkPrefixes};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use wasmhive_protocol::Message;

struct WorkerConnection {
    worker_id: Arc<str>,
    network: Network,
    cores: u32,
    pushed: PushedMessages,
}

/// Messages the owner pushes to one connection (`work_ready`, `cancel`): rare, so a
/// queue that allocates only when used (a channel's first block of slots cost every idle
/// connection 2 KiB). At most [`PUSHED_MAX`] wait; more are dropped (a worker that stopped
/// reading is ended by its send timeout anyway).
#[derive(Clone, Default)]
pub struct PushedMessages {
    shared: Arc<(Mutex<VecDeque<Message>>, tokio::sync::Notify)>,
}

const PUSHED_MAX: usize = 64;

impl PushedMessages {
    fn push(&self, message: Message) {
        let (queue, notify) = &*self.shared;
        let mut queue = queue.lock().expect("pushed messages lock");
        if queue.len() < PUSHED_MAX {
            queue.push_back(message);
            notify.notify_one();
        }
    }

    /// The next pushed message, when there is one. Cancel-safe: a message is taken only
    /// by the call that returns it.
    pub async fn next(&self) -> Message {
        let (queue, notify) = &*self.shared;
        loop {
            if let Some(message) = queue.lock().expect("pushed messages lock").pop_front() {
                return message;
            }
            notify.notified().await;
        }
    }
}

#[derive(Default)]
pub struct Connections {
    next_id: u64,
    open: HashMap<u64, WorkerConnection>,
    /// Connections whose last request got `no_work`: told `work_ready` when units wait.
    waiting: HashSet<u64>,
    /// How addresses are grouped into networks (`--network-prefix-v4/-v6`).
    pub(super) network_prefixes: NetworkPrefixes,
}

/// A worker connection as the session sees it.
pub struct OpenedConnection {
    pub connection_id: u64,
    /// The network the worker connects from: every replica it runs counts for it.
    pub network: Network,
    pub pushed: PushedMessages,
}

impl Connections {
    /// Registers a connection from `address`.
    pub fn open(&mut self, worker_id: &Arc<str>, address: IpAddr, cores: u32) -> OpenedConnection {
        let pushed = PushedMessages::default();
        self.next_id += 1;
        let network = Network::of_address(address, self.network_prefixes);
        let connection = WorkerConnection {
            worker_id: worker_id.clone(),
            network: network.clone(),
            cores,
            pushed: pushed.clone(),
        };
        self.open.insert(self.next_id, connection);
        OpenedConnection { connection_id: self.next_id, network, pushed }
    }

    /// Forgets a connection; true when its worker has no other connection open.
    pub fn close(&mut self, connection_id: u64) -> bool {
        self.waiting.remove(&connection_id);
        let Some(closed) = self.open.remove(&connection_id) else { return false };
        !self.open.values().any(|connection| connection.worker_id == closed.worker_id)
    }

    /// Pushes a message to every connection of `worker_id` (dropped if its queue is full).
    pub fn push_to(&self, worker_id: &str, message: &Message) {
        for connection in self.open.values().filter(|connection| &*connection.worker_id == worker_id) {
            connection.pushed.push(message.clone());
        }
    }

    /// The connection's last request got `no_work` (`waiting`) or leases.
    pub fn set_waiting(&mut self, connection_id: u64, waiting: bool) {
        if waiting {
            self.waiting.insert(connection_id);
        } else {
            self.waiting.remove(&connection_id);
        }
    }

    /// Tells up to `units` waiting connections `work_ready` (once: each waits no more until
    /// its next `no_work`), so one new unit does not wake a thousand idle workers to compete
    /// for it; returns how many were told.
    pub fn wake_waiting(&mut self, units: usize) -> usize {
        let woken: Vec<u64> = self.waiting.iter().take(units).copied().collect();
        for connection_id in &woken {
            self.waiting.remove(connection_id);
            if let Some(connection) = self.open.get(connection_id) {
                connection.pushed.push(Message::WorkReady {});
            }
        }
        woken.len()
    }

    /// Tells this connection `work_ready` if it is waiting.
    pub fn wake_connection(&mut self, connection_id: u64) {
        if self.waiting.remove(&connection_id)
            && let Some(connection) = self.open.get(&connection_id)
        {
            connection.pushed.push(Message::WorkReady {});
        }
    }

    /// Connections open (a worker may have several).
    pub fn count(&self) -> usize {
        self.open.len()
    }

    /// Connected workers, each with its cores (the most any of its connections announced)
    /// and the network of its latest connection.
    pub fn workers(&self) -> BTreeMap<String, (u32, Network)> {
        let mut workers: BTreeMap<String, (u32, Network)> = BTreeMap::new();
        let mut newest_first: Vec<(&u64, &WorkerConnection)> = self.open.iter().collect();
        newest_first.sort_by_key(|(connection_id, _)| std::cmp::Reverse(**connection_id));
        for (_, connection) in newest_first {
            let (cores, _) = workers
                .entry(connection.worker_id.to_string())
                .or_insert_with(|| (0, connection.network.clone()));
            *cores = (*cores).max(connection.cores);
        }
        workers
    }
}

impl Coordinator {
    /// Registers a worker connection from `address`: its id, network, and the receiver of
    /// messages pushed to it (cancels).
    pub fn connection_opened(&self, worker: &WorkerSeen, address: IpAddr, cores: u32) -> OpenedConnection {
        let worker_id = &*worker.worker_id;
        {
            let mut core = self.core.lock().expect("core lock");
            core.set_worker_cores(worker_id, cores);
            // An unknown class counts as none: it gets no unit whose replicas share a class.
            let engine =
                wasmhive_sandbox::is_known_engine_class(&worker.engine).then(|| worker.engine.clone());
            core.set_worker_engine(worker_id, engine);
        }
        self.connections.lock().expect("connections lock").open(&worker.worker_id, address, cores)
    }

    /// A worker connection ended: its open leases go back to the queue (and waiting
    /// workers are told).
    pub fn connection_closed(&self, connection_id: u64, worker_id: &str) {
        let last_of_worker = self.connections.lock().expect("connections lock").close(connection_id);
        if last_of_worker {
            let released = self.core.lock().expect("core lock").worker_disconnected(worker_id);
            tracing::info!(worker = %worker_id, released, "worker disconnected");
            self.wake_waiting_workers(released);
        }
    }

    /// `units` units may now be waiting that waiting workers can take: tell that many to
    /// ask. Called when units appear (a job submitted, leases expired, returned or released,
    /// outcomes that leave units waiting for another replica, units reopened).
    pub fn wake_waiting_workers(&self, units: usize) {
        if units > 0 {
            self.connections.lock().expect("connections lock").wake_waiting(units);
        }
    }

    /// Quarantined or banned now: no leases until time says otherwise.
    pub fn is_quarantined(&self, worker_id: &str) -> bool {
        self.core.lock().expect("core lock").is_quarantined(worker_id, self.now_ms())
    }

    /// The worker on this connection returned outcomes: if its last request got `no_work`
    /// because it held all the leases it may hold, it has room again.
    pub fn outcomes_returned(&self, connection_id: u64) {
        self.connections.lock().expect("connections lock").wake_connection(connection_id);
    }

    /// Records whether a connection's last request got `no_work`.
    pub fn set_waiting(&self, connection_id: u64, waiting: bool) {
        self.connections.lock().expect("connections lock").set_waiting(connection_id, waiting);
    }

    pub fn connection_count(&self) -> usize {
        self.connections.lock().expect("connections lock").count()
    }

    /// Groups worker addresses into networks with these prefixes from now on.
    pub fn set_network_prefixes(&self, prefixes: NetworkPrefixes) {
        self.connections.lock().expect("connections lock").network_prefixes = prefixes;
    }
}

//! What the core knows of each connected worker: the cores it advertised (its lease
//! allowance's ceiling) and its engine class. One entry per connected identity, dropped
//! when its last connection closes, so this map is sized by the open connections: an idle
//! connection costs it one key and a 32-byte value, and engine classes are shared, not
//! copied per worker.

use super::EngineClass;
use std::collections::HashMap;

/// Distinct engine classes kept for sharing; a class beyond them is still used, unshared.
/// The server lets in only this release's classes (one per ISA) and the empty one.
const SHARED_CLASSES_MAX: usize = 16;

/// One connected worker.
pub(super) struct ConnectedWorker {
    pub(super) cores: u32,
    pub(super) engine: EngineClass,
}

/// The connected workers, by identity.
#[derive(Default)]
pub(super) struct ConnectedWorkers {
    workers: HashMap<String, ConnectedWorker>,
    shared_classes: Vec<EngineClass>,
}

impl ConnectedWorkers {
    /// Records the cores `worker_id` advertised (1 until it says).
    pub(super) fn set_cores(&mut self, worker_id: &str, cores: u32) {
        self.entry(worker_id).cores = cores;
    }

    /// Records the engine class `worker_id` runs units on (empty until it says).
    pub(super) fn set_engine(&mut self, worker_id: &str, engine: &str) {
        let engine = self.shared_class(engine);
        self.entry(worker_id).engine = engine;
    }

    /// The cores `worker_id` advertised (1 for a worker not connected).
    pub(super) fn cores_of(&self, worker_id: &str) -> u32 {
        self.workers.get(worker_id).map_or(1, |worker| worker.cores)
    }

    /// The engine class of `worker_id` (empty for a worker that named none or is gone).
    pub(super) fn engine_of(&self, worker_id: &str) -> &str {
        self.workers.get(worker_id).map_or("", |worker| &worker.engine)
    }

    /// [`ConnectedWorkers::engine_of`] as a shared class.
    pub(super) fn engine_class_of(&mut self, worker_id: &str) -> EngineClass {
        match self.workers.get(worker_id) {
            Some(worker) => worker.engine.clone(),
            None => self.shared_class(""),
        }
    }

    /// `worker_id`'s last connection closed.
    pub(super) fn forget(&mut self, worker_id: &str) {
        self.workers.remove(worker_id);
    }

    fn entry(&mut self, worker_id: &str) -> &mut ConnectedWorker {
        if !self.workers.contains_key(worker_id) {
            let engine = self.shared_class("");
            self.workers.insert(worker_id.to_string(), ConnectedWorker { cores: 1, engine });
        }
        self.workers.get_mut(worker_id).expect("inserted above")
    }

    fn shared_class(&mut self, engine: &str) -> EngineClass {
        if let Some(shared) = self.shared_classes.iter().find(|shared| ***shared == *engine) {
            return shared.clone();
        }
        let class = EngineClass::from(engine);
        if self.shared_classes.len() < SHARED_CLASSES_MAX {
            self.shared_classes.push(class.clone());
        }
        class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_of_one_engine_class_share_one_copy_of_its_name() {
        let mut connected = ConnectedWorkers::default();
        for worker in ["a", "b", "c"] {
            connected.set_engine(worker, "wasmtime-48.0.8-x86_64");
        }
        let a = connected.engine_class_of("a");
        assert!(std::sync::Arc::ptr_eq(&a, &connected.engine_class_of("c")));
        assert_eq!(connected.engine_of("b"), "wasmtime-48.0.8-x86_64");
        assert_eq!(connected.engine_of("nobody"), "");
    }

    #[test]
    fn a_flood_of_distinct_class_names_keeps_only_a_bounded_list_for_sharing() {
        let mut connected = ConnectedWorkers::default();
        for index in 0..1_000 {
            connected.set_engine(&format!("w{index}"), &format!("class {index}"));
        }
        assert!(connected.shared_classes.len() <= SHARED_CLASSES_MAX);
        assert_eq!(connected.engine_of("w999"), "class 999");
    }

    #[test]
    fn cores_and_class_are_forgotten_with_the_worker() {
        let mut connected = ConnectedWorkers::default();
        connected.set_cores("a", 8);
        connected.set_engine("a", "wasmtime-48.0.8-x86_64");
        assert_eq!(connected.cores_of("a"), 8);
        connected.forget("a");
        assert_eq!(connected.cores_of("a"), 1);
        assert_eq!(connected.engine_of("a"), "");
    }
}

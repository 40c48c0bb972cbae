//! What the core knows of each connected worker: the cores it advertised (its lease
//! allowance's ceiling) and its engine class. One entry per connected identity, dropped
//! when its last connection closes, so this map is sized by the open connections: an idle
//! connection costs it one key and a 32-byte value. Engine classes are kept as given (the
//! server hands over the name its sessions share, so workers of one class share one copy).

use super::EngineClass;

/// One connected worker.
pub(super) struct ConnectedWorker {
    pub(super) cores: u32,
    pub(super) engine: EngineClass,
}

/// The connected workers, by identity.
pub(super) struct ConnectedWorkers {
    workers: super::FastHashMap<String, ConnectedWorker>,
    /// The class of workers that named none (shared by all of them).
    unnamed: EngineClass,
}

impl Default for ConnectedWorkers {
    fn default() -> ConnectedWorkers {
        ConnectedWorkers { workers: super::FastHashMap::default(), unnamed: EngineClass::from("") }
    }
}

impl ConnectedWorkers {
    /// Records the cores `worker_id` advertised (1 until it says).
    pub(super) fn set_cores(&mut self, worker_id: &str, cores: u32) {
        self.entry(worker_id).cores = cores;
    }

    /// Records the engine class `worker_id` runs units on (`None`: none, the empty class).
    pub(super) fn set_engine(&mut self, worker_id: &str, engine: Option<EngineClass>) {
        let engine = engine.unwrap_or_else(|| self.unnamed.clone());
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
    pub(super) fn engine_class_of(&self, worker_id: &str) -> EngineClass {
        self.workers.get(worker_id).map_or_else(|| self.unnamed.clone(), |worker| worker.engine.clone())
    }

    /// `worker_id`'s last connection closed.
    pub(super) fn forget(&mut self, worker_id: &str) {
        self.workers.remove(worker_id);
    }

    fn entry(&mut self, worker_id: &str) -> &mut ConnectedWorker {
        if !self.workers.contains_key(worker_id) {
            let engine = self.unnamed.clone();
            self.workers.insert(worker_id.to_string(), ConnectedWorker { cores: 1, engine });
        }
        self.workers.get_mut(worker_id).expect("inserted above")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_is_kept_as_given_and_workers_that_named_none_share_the_empty_one() {
        let mut connected = ConnectedWorkers::default();
        let class = EngineClass::from("wasmtime-48.0.8-x86_64");
        for worker in ["a", "b"] {
            connected.set_engine(worker, Some(class.clone()));
        }
        assert!(std::sync::Arc::ptr_eq(&connected.engine_class_of("a"), &class));
        assert_eq!(connected.engine_of("b"), "wasmtime-48.0.8-x86_64");
        connected.set_cores("c", 2);
        connected.set_engine("d", None);
        assert!(std::sync::Arc::ptr_eq(
            &connected.engine_class_of("d"),
            &connected.engine_class_of("nobody")
        ));
        assert!(std::sync::Arc::ptr_eq(
            &connected.engine_class_of("c"),
            &connected.engine_class_of("nobody")
        ));
        assert_eq!(connected.engine_of("nobody"), "");
    }

    #[test]
    fn cores_and_class_are_forgotten_with_the_worker() {
        let mut connected = ConnectedWorkers::default();
        connected.set_cores("a", 8);
        connected.set_engine("a", Some(EngineClass::from("wasmtime-48.0.8-x86_64")));
        assert_eq!(connected.cores_of("a"), 8);
        connected.forget("a");
        assert_eq!(connected.cores_of("a"), 1);
        assert_eq!(connected.engine_of("a"), "");
    }
}

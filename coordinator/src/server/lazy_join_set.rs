//! A `JoinSet` that exists only while it has tasks. tokio's allocates its shared lists in
//! `JoinSet::new` (72 bytes), which every idle worker session paid twice (issue 15: memory
//! per idle connection); this one allocates at the first spawn and frees the set when its
//! last task has been joined.

use std::future::Future;
use tokio::task::{JoinError, JoinSet};

pub struct LazyJoinSet<T>(Option<JoinSet<T>>);

impl<T: Send + 'static> LazyJoinSet<T> {
    pub fn new() -> LazyJoinSet<T> {
        LazyJoinSet(None)
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, JoinSet::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn spawn(&mut self, task: impl Future<Output = T> + Send + 'static) {
        self.0.get_or_insert_with(JoinSet::new).spawn(task);
    }

    pub fn spawn_blocking(&mut self, work: impl FnOnce() -> T + Send + 'static) {
        self.0.get_or_insert_with(JoinSet::new).spawn_blocking(work);
    }

    /// The next task to finish; `None` when there are none. Cancel-safe, as
    /// `JoinSet::join_next` is.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        let set = self.0.as_mut()?;
        let next = set.join_next().await;
        if set.is_empty() {
            self.0 = None;
        }
        next
    }

    /// Lets the tasks run on after this set is dropped (a dropped `JoinSet` aborts them).
    pub fn detach_all(&mut self) {
        if let Some(set) = &mut self.0 {
            set.detach_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LazyJoinSet;

    #[tokio::test]
    async fn it_holds_a_set_only_while_it_has_tasks() {
        let mut tasks = LazyJoinSet::new();
        assert!(tasks.0.is_none() && tasks.join_next().await.is_none());
        tasks.spawn(async { 1 });
        tasks.spawn_blocking(|| 2);
        assert_eq!(tasks.len(), 2);
        let mut results = vec![tasks.join_next().await.unwrap().unwrap()];
        assert!(tasks.0.is_some(), "one task left");
        results.push(tasks.join_next().await.unwrap().unwrap());
        results.sort();
        assert_eq!(results, [1, 2]);
        assert!(tasks.0.is_none() && tasks.is_empty(), "freed once empty");
    }
}

//! Single flight: concurrent callers in one process that ask for the same
//! key share one piece of work (one upstream fetch) and all get its result,
//! errors included.
//!
//! The first caller for a key (the leader) runs the work inside its own
//! future (no task is spawned: dropping the leader's future drops the work); the
//! others (followers) wait for the result on a `watch` channel. The key is
//! forgotten as soon as the work ends, so a later call starts afresh. If the
//! leader is cancelled (its future dropped) before it finishes, its followers
//! are not left waiting: one of them becomes the new leader and runs its own
//! work.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

/// The flights under way, by key. `V` is the shared result (cloned to every
/// caller).
#[derive(Debug)]
pub struct SingleFlight<K, V> {
    flights: Mutex<HashMap<K, watch::Receiver<Option<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            flights: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    /// A table with no flight under way.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `work` unless a flight for `key` is already under way, in which
    /// case waits for that flight's result instead. Every caller gets the
    /// same result; `work` runs at most once per flight.
    pub async fn run<F, Fut>(&self, key: K, work: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let mut work = Some(work);
        loop {
            let mut waiting = match self.join(&key) {
                Joined::Follower(rx) => rx,
                Joined::Leader(tx) => {
                    let flight = Flight {
                        table: self,
                        key: key.clone(),
                        tx,
                    };
                    let work = work
                        .take()
                        .expect("a caller leads at most once: it returns after leading");
                    let value = work().await;
                    flight.tx.send_replace(Some(value.clone()));
                    return value;
                }
            };
            // `wait_for` sees a value sent before it was called, too.
            match waiting.wait_for(Option::is_some).await {
                Ok(value) => {
                    return value
                        .clone()
                        .expect("wait_for only returns once the value is set");
                }
                // The leader was dropped before it finished: lead a new flight.
                Err(_) => continue,
            }
        }
    }

    /// How many flights are under way.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    fn join(&self, key: &K) -> Joined<V> {
        let mut flights = self.lock();
        if let Some(rx) = flights.get(key)
            && rx.has_changed().is_ok()
        {
            return Joined::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        flights.insert(key.clone(), rx);
        Joined::Leader(tx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, watch::Receiver<Option<V>>>> {
        // The map stays consistent whatever panicked while holding it.
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

enum Joined<V> {
    Leader(watch::Sender<Option<V>>),
    Follower(watch::Receiver<Option<V>>),
}

/// The leader's hold on a flight: dropping it (done or cancelled) removes
/// the flight from the table, then closes the channel.
struct Flight<'a, K: Eq + Hash, V> {
    table: &'a SingleFlight<K, V>,
    key: K,
    tx: watch::Sender<Option<V>>,
}

impl<K: Eq + Hash, V> Drop for Flight<'_, K, V> {
    fn drop(&mut self) {
        let mut flights = self
            .table
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only our own flight: a new one may already stand under this key.
        if flights
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            flights.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_concurrent_callers_share_one_run() {
        let flights = Arc::new(SingleFlight::<&str, Result<u32, String>>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let entered = Arc::new(AtomicUsize::new(0));
        // A gate that stays open once opened: a caller that came late (a
        // loaded machine) and led a second flight fails the count below
        // instead of waiting forever on a wake-up already spent.
        let (open, gate) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (flights, runs, entered, mut gate) =
                (flights.clone(), runs.clone(), entered.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                entered.fetch_add(1, Ordering::SeqCst);
                flights
                    .run("k", || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Hold the flight open until every caller has joined.
                        let _ = gate.wait_for(|open| *open).await;
                        Ok(7)
                    })
                    .await
            }));
        }
        while flights.in_flight() == 0 || entered.load(Ordering::SeqCst) < 100 {
            tokio::task::yield_now().await;
        }
        // Let the others reach the table; none can lead while the flight stands.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        open.send_replace(true);
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0, "a finished flight is forgotten");
    }

    #[tokio::test]
    async fn errors_are_shared_and_the_next_call_starts_afresh() {
        let flights = SingleFlight::<u8, Result<u32, String>>::new();
        let first = flights.run(1, || async { Err("boom".to_string()) }).await;
        assert_eq!(first, Err("boom".to_string()));
        let second = flights.run(1, || async { Ok(2) }).await;
        assert_eq!(second, Ok(2));
    }

    #[tokio::test]
    async fn followers_of_a_cancelled_leader_run_the_work_themselves() {
        let flights = Arc::new(SingleFlight::<u8, u32>::new());
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run(1, std::future::pending).await })
        };
        while flights.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        let follower = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run(1, || async { 5 }).await })
        };
        tokio::task::yield_now().await;
        leader.abort();
        assert_eq!(follower.await.unwrap(), 5);
        assert_eq!(flights.in_flight(), 0);
    }
}

//! Across processes: the lease a handle takes before it refetches an entry,
//! so that two processes do not refetch the same key at once.
//!
//! The lease itself is a row of the cache file ([`Leases`]); this module
//! runs its statements off the async executor (a lease may wait briefly for
//! the database's write lock) and makes sure a lease is given back, even by
//! a caller that is cancelled mid-fetch.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::RngExt;

use crate::Category;
use crate::cache::CacheError;
use crate::cache::leases::Leases;

/// The lease table of one handle, with the handle's holder name.
#[derive(Debug)]
pub(super) struct LeaseTable {
    leases: Arc<Mutex<Leases>>,
    holder: Arc<str>,
}

impl LeaseTable {
    /// The table behind `leases`, holding as this process plus a random
    /// number (two handles in one process are two holders).
    pub(super) fn new(leases: Leases) -> LeaseTable {
        let holder = format!(
            "{}-{:016x}",
            std::process::id(),
            rand::rng().random::<u64>()
        );
        LeaseTable {
            leases: Arc::new(Mutex::new(leases)),
            holder: holder.into(),
        }
    }

    /// Takes the lease on (`category`, `key`) for `ttl`, if it is free.
    pub(super) async fn try_acquire(
        &self,
        category: Category,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<LeaseGuard>, CacheError> {
        let leases = Arc::clone(&self.leases);
        let holder = Arc::clone(&self.holder);
        let owned_key = key.to_string();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let taken = tokio::task::spawn_blocking(move || {
            lock(&leases).try_acquire(category, &owned_key, &holder, super::now_ms(), ttl_ms)
        })
        .await;
        let taken = match taken {
            Ok(taken) => taken?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down: nobody is left to fetch for.
            Err(_) => false,
        };
        Ok(taken.then(|| LeaseGuard {
            leases: Arc::clone(&self.leases),
            holder: Arc::clone(&self.holder),
            category,
            key: key.to_string(),
            released: false,
        }))
    }
}

/// A lease held; give it back with [`LeaseGuard::release`]. Dropped
/// without that (the caller was cancelled), it is released in the
/// background.
#[derive(Debug)]
pub(super) struct LeaseGuard {
    leases: Arc<Mutex<Leases>>,
    holder: Arc<str>,
    category: Category,
    key: String,
    released: bool,
}

impl LeaseGuard {
    /// Gives the lease back, waiting until it is. A failure only logs: the
    /// lease expires by itself.
    pub(super) async fn release(mut self) {
        self.released = true;
        let job = self.job();
        if let Err(e) = tokio::task::spawn_blocking(job).await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    fn job(&self) -> impl FnOnce() + Send + 'static {
        let leases = Arc::clone(&self.leases);
        let holder = Arc::clone(&self.holder);
        let category = self.category;
        let key = self.key.clone();
        move || {
            if let Err(e) = lock(&leases).release(category, &key, &holder) {
                tracing::debug!(%category, key, error = %e, "could not release a lease; it will expire");
            }
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let job = self.job();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(job);
            }
            Err(_) => job(),
        }
    }
}

fn lock(leases: &Mutex<Leases>) -> std::sync::MutexGuard<'_, Leases> {
    // A statement that panicked left no transaction open: the table is fine.
    leases.lock().unwrap_or_else(PoisonError::into_inner)
}

//! Tasks owned by the future that spawned them.

use std::future::Future;

use tokio::task::JoinHandle;

/// A spawned task that stops when its owner is dropped, as a future run
/// in place would: work moved onto the runtime's threads (so that it runs
/// on whichever is free) without outliving an interrupted caller.
pub(crate) struct Owned<T>(JoinHandle<T>);

impl<T: Send + 'static> Owned<T> {
    pub(crate) fn spawn(future: impl Future<Output = T> + Send + 'static) -> Owned<T> {
        Owned(tokio::spawn(future))
    }

    /// The task's output; `None` if the runtime shut it down. A panic in
    /// the task goes on in the owner, as it would have in place.
    pub(crate) async fn join(mut self) -> Option<T> {
        match (&mut self.0).await {
            Ok(output) => Some(output),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => None,
        }
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

//! Hot answers: in-memory copies of the answers `cache_serve` gave from
//! fresh cache entries, so a repeated read skips SQLite (its look-up, its
//! WAL read locks, the JSON fitting of a warmed entry) and the copy of the
//! body.
//!
//! Correct because each copy is only served while nothing has been
//! committed to the cache file since it was read:
//! - every look-up first asks the file's `PRAGMA data_version` (one cheap
//!   read of the WAL index on the server's peek connection), which changes
//!   at any commit by any other connection: `cache_warm` and other
//!   processes, and this server's own writer (fetched values, the entries a
//!   write through the server drops, leases). A change drops every copy;
//! - a copy is filled only under the version read *before* the entry was
//!   read, so it is never older than the version it is filed under;
//! - a copy is served only before its entry's expiry, and for the entries
//!   the read path refreshes early (XFetch) only while the chance of an
//!   early refresh is nil (`e^-40`): past that the read goes through the
//!   library as before, which draws as it always did;
//! - every copy served counts as the hit it is
//!   ([`crate::read::ReadThrough::count_hit`]), in the same batches.
//!
//! A PostgreSQL store has no such version, so nothing is kept for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;

use crate::Category;

/// A read is answered from memory only while its entry's early-refresh
/// chance, `exp(-(expiry - now) / (beta * delta))`, is below `e^-40`.
pub(crate) const XFETCH_MARGIN: f64 = 40.0;
/// Past this many bytes of bodies, every copy is dropped (and refilled by
/// the next reads).
const MAX_BYTES: usize = 64 << 20;

/// One answer kept in memory.
#[derive(Debug, Clone)]
pub(crate) struct HotAnswer {
    /// The body as served.
    pub body: Bytes,
    /// When the entry was fetched (for `Age`), unix ms.
    pub fetched_at: i64,
    /// Served from memory only before this, unix ms.
    pub until: i64,
    /// The read it counts as: the entry's category and key.
    pub category: Category,
    pub key: Arc<str>,
}

#[derive(Debug, Default)]
struct State {
    /// The `data_version` the copies were read under.
    version: Option<i64>,
    /// By request target (path and query, exactly as they came).
    answers: HashMap<String, HotAnswer>,
    bytes: usize,
}

/// The copies; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Hot {
    state: Mutex<State>,
}

impl Hot {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The copy for `target` if the file is still at the version it was
    /// read under (`version`, just read) and it is served before `now`'s
    /// limit. A new version drops every copy.
    pub fn get(&self, target: &str, version: i64, now: i64) -> Option<HotAnswer> {
        let mut state = self.state();
        if state.version != Some(version) {
            state.answers.clear();
            state.bytes = 0;
            state.version = Some(version);
            return None;
        }
        state.answers.get(target).filter(|a| now < a.until).cloned()
    }

    /// Keeps `answer` for `target`, read after the file was at `version`;
    /// not if the file has moved on since (a later look-up saw another
    /// version).
    pub fn put(&self, target: &str, version: i64, answer: HotAnswer) {
        let mut state = self.state();
        if state.version != Some(version) {
            return;
        }
        if state.bytes + answer.body.len() > MAX_BYTES {
            state.answers.clear();
            state.bytes = 0;
        }
        state.bytes += answer.body.len();
        if let Some(old) = state.answers.insert(target.to_string(), answer) {
            state.bytes -= old.body.len();
        }
    }

    /// Drops every copy (after this server's own writes; the version
    /// would drop them at the next look-up anyway).
    pub fn clear(&self) {
        let mut state = self.state();
        state.answers.clear();
        state.bytes = 0;
        state.version = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str, until: i64) -> HotAnswer {
        HotAnswer {
            body: Bytes::from(body.to_string()),
            fetched_at: 0,
            until,
            category: Category::Issue,
            key: Arc::from("K"),
        }
    }

    #[test]
    fn a_copy_is_served_only_at_the_version_it_was_read_under_and_before_its_limit() {
        let hot = Hot::default();
        assert!(hot.get("/a", 1, 0).is_none());
        hot.put("/a", 1, answer("one", 100));
        assert_eq!(hot.get("/a", 1, 99).unwrap().body, "one");
        assert!(hot.get("/a", 1, 100).is_none(), "past its limit");
        // Another connection committed: every copy goes.
        assert!(hot.get("/a", 2, 0).is_none());
        assert!(hot.get("/a", 2, 0).is_none());
        // Read under the old version: not kept.
        hot.put("/a", 1, answer("old", 100));
        assert!(hot.get("/a", 2, 0).is_none());
        hot.put("/a", 2, answer("two", 100));
        assert_eq!(hot.get("/a", 2, 0).unwrap().body, "two");
        hot.clear();
        assert!(hot.get("/a", 2, 0).is_none());
    }
}

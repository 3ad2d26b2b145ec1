//! Hot answers: in-memory copies of the answers `cache_serve` gave from
//! fresh cache entries, so a repeated read skips SQLite (its look-up, its
//! WAL read locks, the JSON fitting of a warmed entry) and the copy of the
//! body. They are served by the server's front ([`super::Front`]), before
//! the router and its layers, once the request's credentials passed.
//!
//! Correct because each copy is only served while nothing has been
//! committed to the cache file since it was read:
//! - every answer from memory first asks the file's `data_version` (on the
//!   server's peek connection), *after* the request came, which changes at
//!   any commit by any other connection: `cache_warm` and other processes,
//!   and this server's own writer (fetched values, the entries a write
//!   through the server drops, leases, the read counts). A change drops
//!   every copy. So every commit that completed before the request came is
//!   seen. The version is asked without a read transaction when the WAL
//!   index header shows no commit since it was last asked
//!   ([`crate::cache::CacheReader::data_version_since`]: every commit
//!   rewrites that header before it returns), else with `PRAGMA
//!   data_version`;
//! - a copy is filled only under the version read *before* the entry was
//!   read, so it is never older than the version it is filed under;
//! - a copy is served only before its entry's expiry, and for the entries
//!   the read path refreshes early (XFetch) only while the chance of an
//!   early refresh is nil (`e^-40`): past that the read goes through the
//!   library as before, which draws as it always did;
//! - every copy served counts as the hit it is: tallied here, under the
//!   lock the look-up takes anyway, and handed to the read counts
//!   ([`crate::read::ReadThrough::count_hits`]) every second and at
//!   shutdown, off the requests' path; a copy dropped keeps its tally
//!   until then.
//!
//! Considered and left out: sharing one version check among the requests that
//! wait for it is sound only for a check that *started* after each of them
//! came, and with one worker thread per core the requests hardly ever
//! overlap there.
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

/// Reads answered from memory and not yet handed to the read counts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tally {
    pub category: Category,
    pub key: Arc<str>,
    pub hits: u64,
    /// The latest of them, unix ms.
    pub last_read: i64,
}

#[derive(Debug)]
struct Kept {
    answer: HotAnswer,
    hits: u64,
    last_read: i64,
}

impl Kept {
    fn tally(&mut self) -> Option<Tally> {
        let hits = std::mem::take(&mut self.hits);
        (hits > 0).then(|| Tally {
            category: self.answer.category,
            key: self.answer.key.clone(),
            hits,
            last_read: self.last_read,
        })
    }
}

#[derive(Debug, Default)]
struct State {
    /// The `data_version` the copies were read under.
    version: Option<i64>,
    /// By request target (path and query, exactly as they came).
    answers: HashMap<String, Kept>,
    bytes: usize,
    /// The tallies of dropped copies, until handed over.
    retired: Vec<Tally>,
}

impl State {
    fn drop_all(&mut self) {
        let retired = &mut self.retired;
        retired.extend(self.answers.values_mut().filter_map(Kept::tally));
        self.answers.clear();
        self.bytes = 0;
    }
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

    /// The body and fetch time of the copy for `target`, if there is one
    /// to serve before `now`'s limit and the file is still at the version
    /// it was read under. `version` is asked (after the request came) only
    /// when there is such a copy; a new version drops every copy, `None`
    /// serves nothing. The read is tallied ([`Self::take_tallies`]).
    pub fn get(
        &self,
        target: &str,
        now: i64,
        version: impl FnOnce() -> Option<i64>,
    ) -> Option<(Bytes, i64)> {
        if self
            .state()
            .answers
            .get(target)
            .is_none_or(|kept| now >= kept.answer.until)
        {
            return None;
        }
        let version = version()?;
        let mut state = self.state();
        if state.version != Some(version) {
            state.drop_all();
            state.version = Some(version);
            return None;
        }
        let kept = state.answers.get_mut(target)?;
        if now >= kept.answer.until {
            return None;
        }
        kept.hits += 1;
        kept.last_read = kept.last_read.max(now);
        Some((kept.answer.body.clone(), kept.answer.fetched_at))
    }

    /// Notes that the file is at `version` (just read, before the entries
    /// a request reads): a new version drops every copy.
    pub fn observe(&self, version: i64) {
        let mut state = self.state();
        if state.version != Some(version) {
            state.drop_all();
            state.version = Some(version);
        }
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
            state.drop_all();
        }
        state.bytes += answer.body.len();
        let kept = Kept {
            answer,
            hits: 0,
            last_read: 0,
        };
        if let Some(mut old) = state.answers.insert(target.to_string(), kept) {
            state.bytes -= old.answer.body.len();
            state.retired.extend(old.tally());
        }
    }

    /// Drops every copy (after this server's own writes; the version
    /// would drop them at the next look-up anyway).
    pub fn clear(&self) {
        let mut state = self.state();
        state.drop_all();
        state.version = None;
    }

    /// The reads answered from memory since the last call, by entry, for
    /// the read counts.
    pub fn take_tallies(&self) -> Vec<Tally> {
        let mut state = self.state();
        let mut tallies = std::mem::take(&mut state.retired);
        tallies.extend(state.answers.values_mut().filter_map(Kept::tally));
        tallies
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
        let at = |v: i64| move || Some(v);
        assert!(hot.get("/a", 0, at(1)).is_none());
        hot.put("/a", 1, answer("one", 100));
        assert!(hot.get("/a", 0, at(1)).is_none(), "no version observed yet");
        hot.observe(1);
        hot.put("/a", 1, answer("one", 100));
        assert_eq!(hot.get("/a", 99, at(1)).unwrap().0, "one");
        assert!(hot.get("/a", 100, at(1)).is_none(), "past its limit");
        // Another connection committed: every copy goes.
        assert!(hot.get("/a", 0, at(2)).is_none());
        assert!(hot.get("/a", 0, at(2)).is_none());
        // Read under the old version: not kept.
        hot.put("/a", 1, answer("old", 100));
        assert!(hot.get("/a", 0, at(2)).is_none());
        hot.put("/a", 2, answer("two", 100));
        assert_eq!(hot.get("/a", 0, at(2)).unwrap().0, "two");
        // No version to compare with: nothing from memory.
        assert!(hot.get("/a", 0, || None).is_none());
        hot.clear();
        assert!(hot.get("/a", 0, at(2)).is_none());
    }

    #[test]
    fn the_version_is_asked_only_for_a_copy_there_is() {
        let hot = Hot::default();
        hot.observe(1);
        hot.put("/a", 1, answer("one", 100));
        let asked = std::cell::Cell::new(0);
        let version = || {
            asked.set(asked.get() + 1);
            Some(1)
        };
        assert!(hot.get("/b", 0, version).is_none());
        assert!(hot.get("/a", 100, version).is_none());
        assert_eq!(asked.get(), 0);
        assert!(hot.get("/a", 0, version).is_some());
        assert_eq!(asked.get(), 1);
    }

    #[test]
    fn every_read_from_memory_is_tallied_once_even_when_its_copy_is_dropped() {
        let hot = Hot::default();
        let at = |v: i64| move || Some(v);
        hot.observe(1);
        hot.put("/a", 1, answer("one", 100));
        for now in [5, 7, 6] {
            assert!(hot.get("/a", now, at(1)).is_some());
        }
        let tally = |hits, last_read| Tally {
            category: Category::Issue,
            key: Arc::from("K"),
            hits,
            last_read,
        };
        assert_eq!(hot.take_tallies(), vec![tally(3, 7)]);
        assert_eq!(hot.take_tallies(), vec![]);
        assert!(hot.get("/a", 8, at(1)).is_some());
        // A commit drops the copy; its read is still handed over.
        assert!(hot.get("/a", 9, at(2)).is_none());
        hot.put("/a", 2, answer("two", 100));
        assert!(hot.get("/a", 10, at(2)).is_some());
        // Replaced, then cleared: both reads kept.
        hot.put("/a", 2, answer("three", 100));
        assert!(hot.get("/a", 11, at(2)).is_some());
        hot.clear();
        assert_eq!(
            hot.take_tallies(),
            vec![tally(1, 8), tally(1, 10), tally(1, 11)]
        );
    }
}

//! The running fake's site, shared between the server and the test that
//! changes it; every change drops the search index so the next read
//! rebuilds it and sees the change.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{IssueIndex, Site};

/// A running fake's data, to read or change while it serves. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SiteHandle {
    state: Arc<Mutex<State>>,
}

struct State {
    site: Site,
    /// Built when the fake starts (so that its first requests do not pay
    /// for it), and again on the first read after a change.
    index: Option<Arc<IssueIndex>>,
    /// Changes to make once so many more search pages have been served:
    /// a site that changes while a client pages through it.
    after_searches: Vec<(usize, SiteChange)>,
    /// Changes made after every search page served.
    each_search: Vec<RepeatedChange>,
}

/// A change made again and again (see [`SiteHandle::after_each_search_page`]).
type RepeatedChange = Box<dyn FnMut(&mut Site) + Send>;

/// A change to a running site, made from the server (see
/// [`SiteHandle::after_search_pages`]).
type SiteChange = Box<dyn FnOnce(&mut Site) + Send>;

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("site", &self.site)
            .field("index", &self.index.is_some())
            .field("after_searches", &self.after_searches.len())
            .field("each_search", &self.each_search.len())
            .finish()
    }
}

impl SiteHandle {
    pub(crate) fn new(site: Site) -> SiteHandle {
        let index = Some(Arc::new(IssueIndex::build(&site)));
        SiteHandle {
            state: Arc::new(Mutex::new(State {
                site,
                index,
                after_searches: Vec::new(),
                each_search: Vec::new(),
            })),
        }
    }

    /// Runs `f` on the site, with the server paused for as long as it runs.
    /// The change is served from the next request on. Do not call this
    /// handle again from inside `f`: the lock is not re-entrant.
    pub fn with<R>(&self, f: impl FnOnce(&mut Site) -> R) -> R {
        let mut state = self.lock();
        state.index = None;
        f(&mut state.site)
    }

    /// A copy of the site as it is now.
    pub fn snapshot(&self) -> Site {
        self.lock().site.clone()
    }

    /// [`Site::remove_project`]: deletes a project and its issues.
    pub fn remove_project(&self, key: &str) -> bool {
        self.with(|s| s.remove_project(key))
    }

    /// [`Site::remove_user`]: deletes a user by `accountId`, `key` or `name`.
    pub fn remove_user(&self, id: &str) -> bool {
        self.with(|s| s.remove_user(id))
    }

    /// [`Site::remove_issue`]: deletes an issue.
    pub fn remove_issue(&self, key: &str) -> bool {
        self.with(|s| s.remove_issue(key))
    }

    /// [`Site::touch_issue`]: `updated` becomes now and the summary changes.
    pub fn touch_issue(&self, key: &str) -> bool {
        self.with(|s| s.touch_issue(key))
    }

    /// [`Site::add_issue`]: creates an issue; returns its key.
    pub fn add_issue(&self, project_key: &str, summary: &str) -> Option<String> {
        self.with(|s| s.add_issue(project_key, summary))
    }

    /// [`Site::move_issue`]: moves an issue to another project; its old
    /// key keeps answering with it. Returns the new key.
    pub fn move_issue(&self, key: &str, to_project: &str) -> Option<String> {
        self.with(|s| s.move_issue(key, to_project))
    }

    /// [`Site::touch_random`]: touches `n` random issues updated within
    /// `within`; returns their keys.
    pub fn touch_random(&self, n: usize, within: chrono::Duration, seed: u64) -> Vec<String> {
        self.with(|s| s.touch_random(n, within, seed))
    }

    /// Makes `change` once `pages` more search pages (Cloud `/search/jql`,
    /// Data Center `/search`, counts included) have been answered, before
    /// the next one is: a site that changes under a listing, at a point
    /// the test chooses, without any timing.
    pub fn after_search_pages(
        &self,
        pages: usize,
        change: impl FnOnce(&mut Site) + Send + 'static,
    ) {
        self.lock().after_searches.push((pages, Box::new(change)));
    }

    /// Makes `change` after every search page answered, from now on: a
    /// site that never stops changing under a listing.
    pub fn after_each_search_page(&self, change: impl FnMut(&mut Site) + Send + 'static) {
        self.lock().each_search.push(Box::new(change));
    }

    /// Counts one search page answered, and makes the changes now due.
    pub(crate) fn search_page_served(&self) {
        let mut state = self.lock();
        if !state.each_search.is_empty() {
            let mut each = std::mem::take(&mut state.each_search);
            state.index = None;
            for change in &mut each {
                change(&mut state.site);
            }
            state.each_search = each;
        }
        if state.after_searches.is_empty() {
            return;
        }
        let mut due = Vec::new();
        let mut waiting = Vec::new();
        for (pages, change) in state.after_searches.drain(..) {
            if pages <= 1 {
                due.push(change);
            } else {
                waiting.push((pages - 1, change));
            }
        }
        state.after_searches = waiting;
        if !due.is_empty() {
            state.index = None;
            for change in due {
                change(&mut state.site);
            }
        }
    }

    /// Reads the site under the lock, without the issue index.
    pub(crate) fn view<R>(&self, f: impl FnOnce(&Site) -> R) -> R {
        f(&self.lock().site)
    }

    /// Reads the site and its (current) issue index under the lock.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Site, &IssueIndex) -> R) -> R {
        let mut state = self.lock();
        let index = match &state.index {
            Some(index) => Arc::clone(index),
            None => {
                let index = Arc::new(IssueIndex::build(&state.site));
                state.index = Some(Arc::clone(&index));
                index
            }
        };
        f(&state.site, &index)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

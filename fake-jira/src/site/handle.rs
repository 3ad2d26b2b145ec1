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

#[derive(Debug)]
struct State {
    site: Site,
    /// Built when the fake starts (so that its first requests do not pay
    /// for it), and again on the first read after a change.
    index: Option<Arc<IssueIndex>>,
}

impl SiteHandle {
    pub(crate) fn new(site: Site) -> SiteHandle {
        let index = Some(Arc::new(IssueIndex::build(&site)));
        SiteHandle {
            state: Arc::new(Mutex::new(State { site, index })),
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

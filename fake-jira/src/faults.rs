//! Injected faults: the failures and lies a real Jira (or the proxy in front
//! of it) produces now and then, on demand, so that the client's retry,
//! paging-guard and error paths are exercised by tests rather than by users.
//!
//! A [`Fault`] is a matcher (path prefix, optional method and query text,
//! skip the first N matching requests, then apply to the next M or always)
//! and a [`FaultKind`]. All faults that match a request take effect together:
//! delays add up, paging lies combine, and the first matching fault (in the
//! order added) that answers by itself (a status, a login page, a reset, a
//! hang, a redirect) answers. Requests refused by the rate limit never
//! reach the faults.
//!
//! The paging liars ([`FaultKind::EmptyPage`], [`FaultKind::RepeatPage`],
//! [`FaultKind::LyingTotal`], [`FaultKind::ShortPage`],
//! [`FaultKind::NeverLast`], [`FaultKind::UnrequestedItems`],
//! [`FaultKind::UpdateIssue`] mid-listing, and [`FaultKind::Redirect`] off
//! the site) break no HTTP rule: each answer is
//! well-formed, only the listing they add up to is not. A client must
//! notice that from the listing's own end markers (`JIRA_API.md`, "A page
//! that contradicts the listing") and never call such a listing complete.
//! Aim one at a listing with the path prefix, at one page with
//! [`Fault::query_contains`] or [`Fault::skip`], and combine them freely.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// What a fault does to a request it matches.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Answer with this status instead. `retry_after` is sent verbatim as
    /// `Retry-After` (seconds like `"2"`, or an HTTP date: see [`http_date`]).
    /// `body` is sent verbatim as JSON; `None` sends Jira's error shape with
    /// a message fitting the status.
    Status {
        /// The HTTP status, e.g. 429, 503, 500, 401, 403, 404.
        code: u16,
        /// The `Retry-After` header value, if any.
        retry_after: Option<String>,
        /// The response body, if not the default.
        body: Option<String>,
    },
    /// 200 `text/html`: an SSO login page, as a proxy in front of Jira sends
    /// when a session or credential is not accepted.
    HtmlLogin,
    /// 200 `application/json` whose body is cut off mid-JSON (the
    /// `Content-Length` matches the cut body, so only the JSON is broken).
    TruncatedBody,
    /// Close the connection without answering (a TCP reset).
    Reset,
    /// Accept the request and never answer, until the fake is dropped.
    Hang,
    /// Answer normally, this much later.
    Delay(Duration),
    /// Answer normally once the test opens the [`Gate`]: a request held at
    /// a known point of a run, while the test does something to the client's
    /// side (corrupts its cache, sends it a signal), with no sleep.
    Hold(Gate),
    /// Cloud `/search/jql`: hand out the same `nextPageToken` again (the one
    /// the request carried; on a first page, the token of the second page)
    /// with `isLast: false`.
    RepeatToken,
    /// Never say the listing ended: `isLast` is never true, `/search/jql`
    /// keeps handing out fresh tokens, and pages past the end repeat the
    /// listing from the start instead of coming back empty.
    NeverLast,
    /// PageBean and Data Center `/search` answers say `total` is this.
    LyingTotal(usize),
    /// Return more items than `maxResults` asked for (twice as many, when
    /// there are that many).
    OversizePage,
    /// Return at most this many items on the page, whatever was asked (a
    /// short page in the middle of a listing).
    ShortPage(usize),
    /// A liar: an empty page that says the listing goes on (PageBeans:
    /// `values: []` with `isLast: false` and a `nextPage`; offset arrays:
    /// `[]`; Data Center `/search`: no issues below the `total`; Cloud
    /// `/search/jql`: no issues and a token to the same place).
    EmptyPage,
    /// A liar: the server (or a proxy in front of it) ignores `startAt` and
    /// answers page 0 again, `startAt: 0` included.
    RepeatPage,
    /// A liar: lists that narrow by key or id (`/project/search` `keys` and
    /// `id`, `/priority/search` and `/resolution/search` `id`) ignore the
    /// narrowing and answer items that were not asked for.
    UnrequestedItems,
    /// A liar by timing: just before answering, the issue with this key is
    /// edited (as [`Site::touch_issue`](crate::Site::touch_issue) does), so a
    /// listing sorted by `updated` shifts under the client mid-listing: aim
    /// it at the second page of a Data Center search and the issue moves to
    /// a page already read, one later issue shifts back onto it too.
    UpdateIssue(String),
    /// Answer `302 Found` with `Location` on this origin
    /// (`http://host:port`, no trailing slash) and the request's own path and
    /// query: a redirect off the site (see [`FaultKind::redirect_to`]).
    Redirect {
        /// Where to: scheme, host and port.
        origin: String,
    },
}

impl FaultKind {
    /// A plain status with Jira's error body and no `Retry-After`.
    pub fn status(code: u16) -> Self {
        FaultKind::Status {
            code,
            retry_after: None,
            body: None,
        }
    }

    /// A redirect to the same path and query on another origin, e.g.
    /// another fake's [`url`](crate::FakeJira::url).
    pub fn redirect_to(origin: impl Into<String>) -> Self {
        FaultKind::Redirect {
            origin: origin.into().trim_end_matches('/').to_owned(),
        }
    }

    /// A status (429 or 503) with `Retry-After: <seconds>`.
    pub fn retry_after(code: u16, seconds: u64) -> Self {
        FaultKind::Status {
            code,
            retry_after: Some(seconds.to_string()),
            body: None,
        }
    }
}

/// A fault: which requests it applies to, and what it does to them.
///
/// ```
/// use fake_jira::{Fault, FaultKind};
/// // The second page of project search fails once with a 503.
/// let fault = Fault::new("/rest/api/3/project/search", FaultKind::retry_after(503, 1))
///     .skip(1)
///     .times(1);
/// # let _ = fault;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    path_prefix: String,
    method: Option<String>,
    query_contains: Option<String>,
    skip: usize,
    times: Option<usize>,
    kind: FaultKind,
}

impl Fault {
    /// A fault on every request whose path starts with `path_prefix`
    /// (`""` matches every request), applied always until cleared.
    pub fn new(path_prefix: impl Into<String>, kind: FaultKind) -> Self {
        Fault {
            path_prefix: path_prefix.into(),
            method: None,
            query_contains: None,
            skip: 0,
            times: None,
            kind,
        }
    }

    /// Only requests with this method (case-insensitive).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only requests whose raw query string contains this text
    /// (e.g. `"startAt=100"`).
    pub fn query_contains(mut self, text: impl Into<String>) -> Self {
        self.query_contains = Some(text.into());
        self
    }

    /// Let the first `n` matching requests through untouched.
    pub fn skip(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }

    /// Apply to the next `n` matching requests (after the skipped ones), then
    /// never again. Without it the fault applies until cleared.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    /// Apply to the next matching request only: `times(1)`.
    pub fn once(self) -> Self {
        self.times(1)
    }

    fn matches(&self, method: &str, path: &str, query: &str) -> bool {
        path.starts_with(&self.path_prefix)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .query_contains
                .as_deref()
                .is_none_or(|q| query.contains(q))
    }
}

/// The installed faults of a running fake; cheap to clone, shared with it.
#[derive(Debug, Clone, Default)]
pub struct FaultHandle {
    slots: Arc<Mutex<Vec<Slot>>>,
}

#[derive(Debug)]
struct Slot {
    fault: Fault,
    /// Matching requests seen so far.
    seen: usize,
}

/// The paging lies in force for one request, read by the list endpoints.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PagingLies {
    pub(crate) repeat_token: bool,
    pub(crate) never_last: bool,
    pub(crate) lying_total: Option<usize>,
    pub(crate) oversize: bool,
    pub(crate) short_page: Option<usize>,
    pub(crate) empty_page: bool,
    pub(crate) repeat_page: bool,
    pub(crate) unrequested: bool,
}

/// What the faults decided for one request.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// Added to the answer's latency.
    pub(crate) delay: Duration,
    /// Answer with this instead of the endpoint.
    pub(crate) answer: Option<FaultKind>,
    /// Cut the endpoint's body.
    pub(crate) truncate: bool,
    pub(crate) lies: PagingLies,
    /// Issues to edit before the endpoint answers.
    pub(crate) updates: Vec<String>,
    /// Gates to wait for before answering.
    pub(crate) holds: Vec<Gate>,
}

/// Where [`FaultKind::Hold`] keeps requests until [`Gate::open`]. Clones
/// are the same gate.
#[derive(Debug, Clone)]
pub struct Gate(Arc<GateState>);

#[derive(Debug)]
struct GateState {
    open: tokio::sync::watch::Sender<bool>,
    held: std::sync::atomic::AtomicUsize,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Gate) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        let (open, _) = tokio::sync::watch::channel(false);
        Gate(Arc::new(GateState {
            open,
            held: std::sync::atomic::AtomicUsize::new(0),
        }))
    }

    /// Lets every held request (and every later one) through.
    pub fn open(&self) {
        self.0.open.send_replace(true);
    }

    /// How many requests have reached the gate so far (held or let through).
    pub fn reached(&self) -> usize {
        self.0.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until the gate is open.
    pub(crate) async fn pass(&self) {
        self.0
            .held
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut open = self.0.open.subscribe();
        // An error means the sender is gone, which the Arc rules out.
        let _ = open.wait_for(|open| *open).await;
    }
}

impl FaultHandle {
    /// Installs a fault; it applies from the next request on.
    pub fn add(&self, fault: Fault) {
        self.lock().push(Slot { fault, seen: 0 });
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many faults are installed (spent ones included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no fault is installed.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Counts the request against every matching fault and says what applies.
    pub(crate) fn judge(&self, method: &str, path: &str, query: &str) -> Verdict {
        let mut verdict = Verdict::default();
        for slot in self.lock().iter_mut() {
            if !slot.fault.matches(method, path, query) {
                continue;
            }
            let n = slot.seen;
            slot.seen += 1;
            let active = n >= slot.fault.skip
                && slot
                    .fault
                    .times
                    .is_none_or(|times| n - slot.fault.skip < times);
            if !active {
                continue;
            }
            let kind = &slot.fault.kind;
            match kind {
                FaultKind::Delay(d) => verdict.delay += *d,
                FaultKind::Hold(gate) => verdict.holds.push(gate.clone()),
                FaultKind::TruncatedBody => verdict.truncate = true,
                FaultKind::RepeatToken => verdict.lies.repeat_token = true,
                FaultKind::NeverLast => verdict.lies.never_last = true,
                FaultKind::LyingTotal(n) => verdict.lies.lying_total = Some(*n),
                FaultKind::OversizePage => verdict.lies.oversize = true,
                FaultKind::ShortPage(n) => verdict.lies.short_page = Some(*n),
                FaultKind::EmptyPage => verdict.lies.empty_page = true,
                FaultKind::RepeatPage => verdict.lies.repeat_page = true,
                FaultKind::UnrequestedItems => verdict.lies.unrequested = true,
                FaultKind::UpdateIssue(key) => verdict.updates.push(key.clone()),
                FaultKind::Status { .. }
                | FaultKind::Redirect { .. }
                | FaultKind::HtmlLogin
                | FaultKind::Reset
                | FaultKind::Hang => {
                    verdict.answer.get_or_insert_with(|| kind.clone());
                }
            }
        }
        verdict
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Formats a time as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), the
/// other form `Retry-After` may take.
pub fn http_date(t: SystemTime) -> String {
    let t: chrono::DateTime<chrono::Utc> = t.into();
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_skips_then_applies_the_given_number_of_times() {
        let faults = FaultHandle::default();
        faults.add(
            Fault::new("/rest/api/3/field", FaultKind::status(500))
                .skip(1)
                .times(2),
        );
        let answers: Vec<bool> = (0..5)
            .map(|_| {
                faults
                    .judge("GET", "/rest/api/3/field", "")
                    .answer
                    .is_some()
            })
            .collect();
        assert_eq!(answers, [false, true, true, false, false]);
    }

    #[test]
    fn a_fault_ignores_other_paths_methods_and_queries() {
        let faults = FaultHandle::default();
        faults.add(
            Fault::new("/rest/api/3/search/jql", FaultKind::Hang)
                .method("post")
                .query_contains("x=1"),
        );
        assert!(
            faults
                .judge("POST", "/rest/api/3/field", "x=1")
                .answer
                .is_none()
        );
        assert!(
            faults
                .judge("GET", "/rest/api/3/search/jql", "x=1")
                .answer
                .is_none()
        );
        assert!(
            faults
                .judge("POST", "/rest/api/3/search/jql", "y=2")
                .answer
                .is_none()
        );
        assert!(
            faults
                .judge("POST", "/rest/api/3/search/jql", "x=1")
                .answer
                .is_some()
        );
    }

    #[test]
    fn matching_faults_combine_and_the_first_answer_wins() {
        let faults = FaultHandle::default();
        faults.add(Fault::new("", FaultKind::Delay(Duration::from_millis(5))));
        faults.add(Fault::new("", FaultKind::status(503)));
        faults.add(Fault::new("", FaultKind::Delay(Duration::from_millis(7))));
        faults.add(Fault::new("", FaultKind::Reset));
        faults.add(Fault::new("", FaultKind::LyingTotal(9)));
        let v = faults.judge("GET", "/x", "");
        assert_eq!(v.delay, Duration::from_millis(12));
        assert_eq!(v.answer, Some(FaultKind::status(503)));
        assert_eq!(v.lies.lying_total, Some(9));
        faults.clear();
        assert!(faults.is_empty());
        assert!(faults.judge("GET", "/x", "").answer.is_none());
    }

    #[test]
    fn http_dates_look_like_rfc_9110_dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}

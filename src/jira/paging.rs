//! One paging primitive for every list shape Jira uses (`JIRA_API.md`,
//! "Shapes of list, and how each ends"), with its stop rule and a request
//! budget, so that a server that lies cannot keep a warm running.
//!
//! **Completeness is proved only by the server's own end marker.** A page
//! that contradicts the listing (an empty page while `isLast` is false or
//! `total` is not reached, a page that repeats items already read, a `total`
//! smaller than what was received, a `startAt` other than the one asked) is
//! never taken as the end: the listing is *broken*, [`Pager::next_page`]
//! answers [`JiraError::Paging`], and what came before stays cached while
//! nothing is removed. A page that brings nothing new is such a page.
//!
//! **Budget.** Every listing has a request budget: once a page tells
//! `total`, the pages it can legitimately need (`total` over the size of the
//! first page, plus a quarter and two pages of slack); with
//! [`Listing::expect_items`] the same from the caller's estimate; always at
//! most [`Listing::max_pages`]. Past it the listing is truncated and
//! reported as a paging error.
//!
//! A [`Pager`] yields pages one at a time, in the server's order, each as a
//! `Result`: the caller writes a page to the cache before asking for the
//! next, so memory stays bounded by one page (plus the pages fetched ahead,
//! see below), and an error is never dropped. Items stay raw JSON
//! ([`Item`]), exactly as Jira sent them.
//!
//! **Fetching ahead (PageBean only).** A PageBean's first page tells
//! `total`, so the offsets of the later pages are known in advance. With
//! [`Pager::fetch_ahead`], up to that many of the next pages are requested
//! at once, each by its own task (the client's permits still cap the
//! requests in flight), while the caller writes the page it has. The pages
//! are still taken in order, through the same checks as one at a time: a
//! page fetched ahead is used only if it starts exactly where the pages
//! before it ended (`startAt` + items received), as the next request of a
//! one-at-a-time pager would; otherwise (a short or oversize page, a moved
//! `startAt`) every page fetched ahead is dropped and paging goes on from
//! the right offset. The end is decided page by page as before, so a page
//! fetched ahead past the end is dropped unread, and its error, if any, is
//! never reported. A listing with a limit, or whose pages report no
//! `total`, is fetched one page at a time.

use std::collections::{HashSet, VecDeque};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::JiraClient;
use super::error::JiraError;

/// One item of a listing, as Jira sent it.
pub type Item = Box<RawValue>;

/// Cloud `/user/assignable/search` looks at the site's users only up to
/// this one ("up to the thousandth user", the spec).
pub const WINDOW_LIMIT: u64 = 1000;

/// Reads the identity of an item (its key, id or accountId), used to spot
/// pages that bring nothing new.
pub type Identity = fn(&RawValue) -> Option<String>;

/// The list shapes, one stop rule each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Cloud PageBean (`/project/search`, `/priority/search`, …): `startAt`,
    /// `maxResults`, `total`, `isLast`, `values`. Complete on `isLast: true`
    /// with every offset up to `total` read (without `isLast`: on reaching
    /// `total`, or on an empty page when there is no `total` either).
    PageBean,
    /// A bare array paged by `startAt` (`/users/search`, DC `/user/search`):
    /// advances by the number received (pages may be short mid-listing);
    /// complete only on an empty page.
    OffsetArray,
    /// Cloud `/user/assignable/search`: the server filters the window
    /// `[startAt, startAt + maxResults)` of the site's users, up to
    /// [`WINDOW_LIMIT`]: short and empty pages say nothing about the end.
    /// `startAt` advances by `maxResults`; the listing ends once the window
    /// passes the limit, and ends [`End::Complete`] (every window read).
    /// Whether that covers every user depends on the site having at most
    /// [`WINDOW_LIMIT`] users, which the caller must check.
    Window,
    /// Cloud `/search/jql` (POST): `nextPageToken`, `isLast`, `issues`. Ends
    /// on `isLast` or a missing token; a token seen before is an error.
    Token,
    /// Data Center `/search` (POST): `startAt`, `total`, `issues`. Complete
    /// at `total` (or on an empty page when there is no `total`).
    OffsetSearch,
    /// An unpaged bare array (`/field`, `/status`, DC `/project`): one GET.
    Unpaged,
}

/// What to list and how.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The request path (already under the REST base).
    pub path: String,
    /// The shape of the answers.
    pub style: Style,
    /// Extra query parameters (GET styles).
    pub query: Vec<(&'static str, String)>,
    /// The request body without paging fields (POST styles).
    pub body: serde_json::Map<String, serde_json::Value>,
    /// Items asked for per page (`maxResults`).
    pub page_size: usize,
    /// Stop after this many items (the listing is then not complete).
    pub limit: Option<usize>,
    /// The identity of an item.
    pub identity: Identity,
    /// The most pages fetched before the listing is declared truncated,
    /// whatever it announces.
    pub max_pages: usize,
    /// How many items the caller expects (e.g. an approximate count): the
    /// listing's budget is then the pages those need, with slack.
    pub expected_items: Option<u64>,
    /// PageBean: how many of the next pages may be requested ahead of the
    /// caller once `total` is known; 0 fetches one page at a time.
    pub ahead: usize,
}

impl Listing {
    /// A listing with no extra parameters, no limit and a ceiling of 10,000 pages.
    pub fn new(path: String, style: Style, page_size: usize, identity: Identity) -> Listing {
        Listing {
            path,
            style,
            query: Vec::new(),
            body: serde_json::Map::new(),
            page_size,
            limit: None,
            identity,
            max_pages: 10_000,
            expected_items: None,
            ahead: 0,
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Listing {
        self.query.push((name, value.into()));
        self
    }

    /// Sets a body field (POST styles).
    pub fn body_field(mut self, name: &str, value: serde_json::Value) -> Listing {
        self.body.insert(name.to_string(), value);
        self
    }

    /// Sets the number of items the caller expects (the budget follows).
    pub fn expect_items(mut self, items: Option<u64>) -> Listing {
        self.expected_items = items;
        self
    }

    /// Stops after `limit` items.
    pub fn limit(mut self, limit: Option<usize>) -> Listing {
        self.limit = limit;
        if let Some(l) = limit {
            self.page_size = self.page_size.min(l.max(1));
        }
        self
    }
}

/// How a listing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server said this was everything.
    Complete,
    /// The caller's limit was reached first.
    Limit,
}

/// Walks one listing page by page.
#[derive(Debug)]
pub struct Pager {
    client: JiraClient,
    listing: Listing,
    start_at: u64,
    token: Option<String>,
    seen_tokens: HashSet<String>,
    seen: HashSet<String>,
    pages: usize,
    items: usize,
    end: Option<End>,
    last_page_ms: i64,
    /// PageBean pages requested ahead, in offset order.
    ahead: VecDeque<AheadPage>,
    /// PageBean: the offsets between pages fetched ahead (the size of the
    /// first page the server sent).
    stride: u64,
    /// The largest `total` any page announced.
    total: Option<u64>,
    /// The size of the first non-empty page, which the budget divides by.
    first_page: u64,
}

/// A PageBean page requested ahead of the caller, by its own task.
#[derive(Debug)]
struct AheadPage {
    start_at: u64,
    task: tokio::task::JoinHandle<(Result<PageBean, JiraError>, i64)>,
}

impl Drop for Pager {
    fn drop(&mut self) {
        self.cancel_ahead();
    }
}

/// The numbers and flags of a page are read as any JSON value, so that a
/// number the spec allows (`int64`, negative) never fails the whole answer
/// as unreadable; [`Pager::int`] then says what is invalid.
#[derive(Debug, Deserialize)]
struct PageBean {
    #[serde(rename = "startAt", default)]
    start_at: serde_json::Value,
    #[serde(default)]
    total: serde_json::Value,
    #[serde(rename = "isLast", default)]
    is_last: serde_json::Value,
    #[serde(default)]
    values: Vec<Item>,
}

#[derive(Deserialize)]
struct TokenPage {
    #[serde(default)]
    issues: Vec<Item>,
    #[serde(rename = "isLast", default)]
    is_last: serde_json::Value,
    #[serde(rename = "nextPageToken")]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct SearchPage {
    #[serde(rename = "startAt", default)]
    start_at: serde_json::Value,
    #[serde(default)]
    total: serde_json::Value,
    #[serde(default)]
    issues: Vec<Item>,
}

impl Pager {
    /// Starts a listing; nothing is sent until [`Pager::next_page`].
    pub fn new(client: JiraClient, listing: Listing) -> Pager {
        Pager {
            client,
            listing,
            start_at: 0,
            token: None,
            seen_tokens: HashSet::new(),
            seen: HashSet::new(),
            pages: 0,
            items: 0,
            end: None,
            last_page_ms: 0,
            ahead: VecDeque::new(),
            stride: 0,
            total: None,
            first_page: 0,
        }
    }

    /// PageBean: once the first page tells `total`, request up to `pages`
    /// of the next pages at once (see the module's "Fetching ahead"); 0
    /// (the default) fetches one page at a time. Ignored by other styles
    /// and by listings with a limit.
    pub fn fetch_ahead(mut self, pages: usize) -> Pager {
        self.listing.ahead = pages;
        self
    }

    /// How the listing ended, once it has.
    pub fn end(&self) -> Option<End> {
        self.end
    }

    /// Whether the server's own end signal was reached (not a limit).
    pub fn is_complete(&self) -> bool {
        self.end == Some(End::Complete)
    }

    /// Items yielded so far.
    pub fn items(&self) -> usize {
        self.items
    }

    /// How long the last page took to fetch, in ms (retries included): the
    /// δ of early refresh for the entries it brought.
    pub fn last_page_ms(&self) -> i64 {
        self.last_page_ms
    }

    /// Pages fetched so far.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Pages requested so far: those fetched, and those requested ahead and
    /// not yet taken. Requests start only while [`Pager::next_page`] runs,
    /// so between two calls this is every page the site can be asked for.
    pub fn pages_requested(&self) -> usize {
        self.pages + self.ahead.len()
    }

    /// The next page of new items, or `None` once the listing has ended.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Item>>, JiraError> {
        let identity = self.listing.identity;
        let page = self.next_page_with(|item| (identity(item), ())).await?;
        Ok(page.map(|page| page.into_iter().map(|(item, ())| item).collect()))
    }

    /// [`Pager::next_page`], with each item's identity read by `read`,
    /// which also answers whatever else the caller wants from the item, so
    /// that an item is parsed once: `read` must answer the same identity as
    /// the listing's [`Identity`] would.
    pub async fn next_page_with<T>(
        &mut self,
        mut read: impl FnMut(&RawValue) -> (Option<String>, T),
    ) -> Result<Option<Vec<(Item, T)>>, JiraError> {
        loop {
            if self.end.is_some() {
                return Ok(None);
            }
            if let Some(error) = self.over_budget() {
                self.cancel_ahead();
                return Err(error);
            }
            let page_size = self.page_size();
            let started = std::time::Instant::now();
            let (raw, server_says_end, fetch_ms) = match self.fetch(page_size).await {
                Ok(fetched) => fetched,
                Err(e) => {
                    self.cancel_ahead();
                    return Err(e);
                }
            };
            self.last_page_ms = fetch_ms
                .unwrap_or_else(|| started.elapsed().as_millis() as i64)
                .max(1);
            self.pages += 1;
            let received = raw.len();
            if self.first_page == 0 {
                self.first_page = received as u64;
            }
            let mut fresh: Vec<(Item, T)> = Vec::with_capacity(received);
            for item in raw {
                let (id, extra) = read(&item);
                let is_new = match id {
                    Some(id) => self.seen.insert(id),
                    None => true,
                };
                if is_new {
                    fresh.push((item, extra));
                }
            }
            // A page of items already read proves nothing, least of all the
            // end: a proxy that ignores `startAt` sends page 0 for ever.
            if received > 0 && fresh.is_empty() && !server_says_end {
                self.cancel_ahead();
                return Err(self.paging_error(format!(
                    "page {} repeated {received} items already read (the site or a proxy ignored startAt?)",
                    self.pages
                )));
            }
            if received > 0
                && fresh.is_empty()
                && server_says_end
                && self.listing.style != Style::Token
            {
                self.cancel_ahead();
                return Err(self.paging_error(format!(
                    "the last page repeated {received} items already read"
                )));
            }
            if server_says_end {
                self.finish(End::Complete);
            }
            if let Some(limit) = self.listing.limit {
                let room = limit.saturating_sub(self.items);
                if fresh.len() >= room {
                    let dropped = fresh.len() > room;
                    fresh.truncate(room);
                    if dropped || self.end.is_none() {
                        self.finish(End::Limit);
                    }
                }
            }
            self.items += fresh.len();
            if fresh.is_empty() {
                continue;
            }
            return Ok(Some(fresh));
        }
    }

    /// The pages this listing may still fetch: what `total` (or the
    /// caller's estimate) can legitimately need, with slack, and never more
    /// than [`Listing::max_pages`]. `None` while within it, else the error
    /// that truncates the listing.
    fn over_budget(&self) -> Option<JiraError> {
        let ceiling = self.listing.max_pages;
        let announced = match self.listing.style {
            Style::Window => Some(WINDOW_LIMIT),
            _ => self.total.or(self.listing.expected_items),
        };
        let budget = match announced {
            Some(items) => {
                let per_page = match self.first_page {
                    0 => self.listing.page_size.max(1) as u64,
                    n => n.min(self.listing.page_size.max(1) as u64),
                };
                let needed = items.div_ceil(per_page).max(1);
                let budget = needed.saturating_add(needed / 4).saturating_add(2);
                usize::try_from(budget).unwrap_or(usize::MAX).min(ceiling)
            }
            None => ceiling,
        };
        (self.pages >= budget).then(|| {
            let why = match announced {
                Some(items) if budget < ceiling => {
                    format!("{budget} pages, more than the {items} items announced can need")
                }
                _ => format!("{budget} pages without an end"),
            };
            self.paging_error(format!(
                "the listing was truncated after {why}; the server's paging looks broken"
            ))
        })
    }

    /// A number of a page: absent or null is `None`; an integer the spec
    /// allows but that makes no sense here (negative), or anything but an
    /// integer, is an invalid page.
    fn int(&self, name: &str, value: &serde_json::Value) -> Result<Option<u64>, JiraError> {
        let invalid = |what: String| JiraError::InvalidPage {
            endpoint: self.listing.path.clone(),
            message: format!("{name} is {what}"),
        };
        match value {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(v), _) => Ok(Some(v)),
                (None, Some(v)) => Err(invalid(format!("negative ({v})"))),
                (None, None) => Err(invalid(format!("not a whole number ({n})"))),
            },
            other => Err(invalid(format!("not a number ({other})"))),
        }
    }

    /// A flag of a page: absent or null is `None`, anything but a boolean
    /// is an invalid page.
    fn flag(&self, name: &str, value: &serde_json::Value) -> Result<Option<bool>, JiraError> {
        match value {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::Bool(b) => Ok(Some(*b)),
            other => Err(JiraError::InvalidPage {
                endpoint: self.listing.path.clone(),
                message: format!("{name} is not true or false ({other})"),
            }),
        }
    }

    /// Checks the `startAt` a page echoes against the one asked, and
    /// records its `total`.
    fn check_offsets(
        &mut self,
        asked: u64,
        start_at: &serde_json::Value,
        total: &serde_json::Value,
    ) -> Result<Option<u64>, JiraError> {
        let echoed = self.int("startAt", start_at)?;
        let total = self.int("total", total)?;
        if let Some(echoed) = echoed
            && echoed != asked
        {
            return Err(self.paging_error(format!(
                "asked for startAt={asked}, the site answered startAt={echoed}"
            )));
        }
        if let Some(t) = total {
            self.total = Some(self.total.map_or(t, |old| old.max(t)));
        }
        Ok(total)
    }

    /// Every remaining item; for listings known to be small.
    pub async fn collect_all(mut self) -> Result<(Vec<Item>, Option<End>), JiraError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok((all, self.end))
    }

    fn page_size(&self) -> usize {
        let size = self.listing.page_size.max(1);
        match self.listing.limit {
            Some(limit) => size.min(limit.saturating_sub(self.items).max(1)),
            None => size,
        }
    }

    /// Ends the listing; pages fetched ahead are not needed any more.
    fn finish(&mut self, end: End) {
        self.end = Some(end);
        self.cancel_ahead();
    }

    /// Drops every page fetched ahead (their requests are abandoned).
    fn cancel_ahead(&mut self) {
        for page in self.ahead.drain(..) {
            page.task.abort();
        }
    }

    /// The query of a PageBean or offset page.
    fn offset_query(&self, start_at: u64, page_size: usize) -> Vec<(&'static str, String)> {
        let mut query = self.listing.query.clone();
        query.push(("startAt", start_at.to_string()));
        query.push(("maxResults", page_size.to_string()));
        query
    }

    /// The PageBean page at `self.start_at`: the one fetched ahead for that
    /// offset, else a request now. A page fetched ahead for another offset
    /// means the server's paging went elsewhere: all of them are dropped.
    async fn page_bean(&mut self, page_size: usize) -> Result<(PageBean, Option<i64>), JiraError> {
        if let Some(next) = self.ahead.pop_front() {
            if next.start_at == self.start_at {
                let (page, fetch_ms) = next.task.await.map_err(|e| {
                    self.paging_error(format!("a page fetched ahead was lost: {e}"))
                })?;
                return Ok((page?, Some(fetch_ms)));
            }
            tracing::debug!(
                endpoint = %self.listing.path,
                expected = self.start_at,
                fetched = next.start_at,
                "the pages fetched ahead do not follow on; fetching one at a time from here"
            );
            next.task.abort();
            self.cancel_ahead();
        }
        let query = self.offset_query(self.start_at, page_size);
        let page = self.client.get(&self.listing.path, &query).await?;
        Ok((page, None))
    }

    /// Requests the pages after `self.start_at` (the next one to take), up
    /// to the listing's `ahead`, below `total` and within the page ceiling
    /// (counting the page being taken now).
    fn request_ahead(&mut self, page_size: usize, received: u64, total: Option<u64>) {
        let Some(total) = total else { return };
        if self.listing.ahead == 0 || self.listing.limit.is_some() {
            return;
        }
        if self.stride == 0 {
            self.stride = received;
        }
        if self.stride == 0 {
            return;
        }
        let mut next = match self.ahead.back() {
            Some(last) => last.start_at + self.stride,
            None => self.start_at,
        };
        while self.ahead.len() < self.listing.ahead
            && next < total
            && self.pages + 1 + self.ahead.len() < self.listing.max_pages
        {
            let client = self.client.clone();
            let path = self.listing.path.clone();
            let query = self.offset_query(next, page_size);
            let task = tokio::spawn(async move {
                let started = std::time::Instant::now();
                let page = client.get::<PageBean>(&path, &query).await;
                (page, started.elapsed().as_millis() as i64)
            });
            self.ahead.push_back(AheadPage {
                start_at: next,
                task,
            });
            next += self.stride;
        }
    }

    fn paging_error(&self, message: String) -> JiraError {
        JiraError::Paging {
            endpoint: self.listing.path.clone(),
            message,
        }
    }

    /// Fetches one page; answers the raw items, whether the server's own
    /// end marker says this is the end, and, for a page fetched ahead, how
    /// long its fetch took. A page that contradicts the listing is an error.
    async fn fetch(
        &mut self,
        page_size: usize,
    ) -> Result<(Vec<Item>, bool, Option<i64>), JiraError> {
        let path = self.listing.path.clone();
        match self.listing.style {
            Style::PageBean => {
                let asked = self.start_at;
                let (page, fetch_ms) = self.page_bean(page_size).await?;
                let total = self.check_offsets(asked, &page.start_at, &page.total)?;
                let is_last = self.flag("isLast", &page.is_last)?;
                let received = page.values.len() as u64;
                self.start_at = asked + received;
                let at = self.start_at;
                if let Some(t) = total
                    && at > t
                {
                    return Err(
                        self.paging_error(format!("the site says total {t} but {at} items came"))
                    );
                }
                let end = match is_last {
                    Some(true) => match total {
                        Some(t) if at < t => {
                            return Err(
                                self.paging_error(format!("isLast came at {at} of a total of {t}"))
                            );
                        }
                        _ => true,
                    },
                    Some(false) if received == 0 => {
                        return Err(self.paging_error(format!(
                            "an empty page at startAt={asked} while isLast is false"
                        )));
                    }
                    Some(false) => false,
                    None => match total {
                        Some(t) if received == 0 && at < t => {
                            return Err(self.paging_error(format!(
                                "an empty page at startAt={asked} before the total of {t}"
                            )));
                        }
                        Some(t) => at >= t,
                        None => received == 0,
                    },
                };
                if end {
                    self.cancel_ahead();
                } else {
                    self.request_ahead(page_size, received, total);
                }
                Ok((page.values, end, fetch_ms))
            }
            Style::OffsetArray => {
                let query = self.offset_query(self.start_at, page_size);
                let page: Vec<Item> = self.client.get(&path, &query).await?;
                self.start_at += page.len() as u64;
                let end = page.is_empty();
                Ok((page, end, None))
            }
            Style::Window => {
                let query = self.offset_query(self.start_at, page_size);
                let page: Vec<Item> = self.client.get(&path, &query).await?;
                self.start_at += page_size.max(1) as u64;
                let end = self.start_at >= WINDOW_LIMIT;
                Ok((page, end, None))
            }
            Style::Unpaged => {
                let all: Vec<Item> = self.client.get(&path, &self.listing.query).await?;
                Ok((all, true, None))
            }
            Style::Token => {
                let mut body = self.listing.body.clone();
                body.insert("maxResults".into(), page_size.into());
                if let Some(token) = &self.token {
                    body.insert("nextPageToken".into(), token.clone().into());
                }
                let page: TokenPage = self
                    .client
                    .post(&path, &serde_json::Value::Object(body))
                    .await?;
                let is_last = self.flag("isLast", &page.is_last)?;
                let end = match (is_last, page.next_page_token) {
                    (Some(true), _) | (_, None) => true,
                    (_, Some(token)) => {
                        if !self.seen_tokens.insert(token.clone()) {
                            return Err(self.paging_error(
                                "the server handed out the same nextPageToken twice".into(),
                            ));
                        }
                        self.token = Some(token);
                        false
                    }
                };
                Ok((page.issues, end, None))
            }
            Style::OffsetSearch => {
                let asked = self.start_at;
                let mut body = self.listing.body.clone();
                body.insert("startAt".into(), asked.into());
                body.insert("maxResults".into(), page_size.into());
                let page: SearchPage = self
                    .client
                    .post(&path, &serde_json::Value::Object(body))
                    .await?;
                let total = self.check_offsets(asked, &page.start_at, &page.total)?;
                let received = page.issues.len() as u64;
                self.start_at = asked + received;
                let at = self.start_at;
                let end = match total {
                    Some(t) if at > t => {
                        return Err(self.paging_error(format!(
                            "the site says total {t} but {at} issues came"
                        )));
                    }
                    Some(t) if received == 0 && at < t => {
                        return Err(self.paging_error(format!(
                            "an empty page at startAt={asked} before the total of {t}"
                        )));
                    }
                    Some(t) => at >= t,
                    None => received == 0,
                };
                Ok((page.issues, end, None))
            }
        }
    }
}

/// Identity by `key` (projects, issues).
pub fn by_key(item: &RawValue) -> Option<String> {
    probe(item).key
}

/// Identity by `id` (fields, statuses and other metadata).
pub fn by_id(item: &RawValue) -> Option<String> {
    probe(item).id
}

/// Identity of a user: Cloud `accountId`, else Data Center `key`, else `name`.
pub fn by_user(item: &RawValue) -> Option<String> {
    let p = probe(item);
    p.account_id.or(p.key).or(p.name)
}

/// The few identity fields of any Jira object; everything else is ignored.
#[derive(Deserialize, Default)]
pub(crate) struct Probe {
    pub key: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub id: Option<String>,
    #[serde(rename = "accountId")]
    pub account_id: Option<String>,
    pub name: Option<String>,
}

pub(crate) fn probe(item: &RawValue) -> Probe {
    serde_json::from_str(item.get()).unwrap_or_default()
}

/// Jira sends most ids as strings, status categories as numbers.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

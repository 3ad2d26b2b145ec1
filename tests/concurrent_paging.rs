//! PageBean listings fetched ahead (`Pager::fetch_ahead`, used by the
//! projects stage on Cloud): the later pages are requested together once the
//! first page tells `total`, yet the pages come out exactly as a pager that
//! fetches one page at a time gives them, whatever the server does: short or
//! oversize pages, totals that lie or change, errors, endless listings, the
//! page ceiling. Also the client's slots: a serial chain sent ahead
//! (`JiraClient::ahead`) never queues behind other requests waiting.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fake_jira::{FakeJira, Fault, FaultKind, Flavor, Gate, PageCap, Site, SiteSize};
use jira_cache::Deployment;
use jira_cache::jira::{
    Auth, ClientConfig, End, JiraClient, Listing, Metadata, Pager, RetryPolicy, Style, by_key,
};

const PROJECTS: usize = 230;
const CAP: usize = 50;
const SEARCH: &str = "/rest/api/3/project/search";

/// A Cloud site of 230 projects whose project search answers at most 50 a
/// page (5 pages), with `faults` added.
fn fake(faults: &[Fault]) -> FakeJira {
    let site = Site::generated(
        Flavor::Cloud,
        SiteSize {
            projects: PROJECTS,
            ..Default::default()
        },
    );
    let fake = FakeJira::builder(Flavor::Cloud)
        .site(site)
        .page_cap(PageCap::PageBean, CAP)
        .start();
    for f in faults {
        fake.faults().add(f.clone());
    }
    fake
}

/// A client with `concurrency` permits that never retries.
fn client(fake: &FakeJira, concurrency: usize) -> JiraClient {
    client_with_timeout(fake, concurrency, Duration::from_secs(30))
}

fn client_with_timeout(fake: &FakeJira, concurrency: usize, timeout: Duration) -> JiraClient {
    JiraClient::new(ClientConfig {
        site: url::Url::parse(&fake.url()).unwrap(),
        deployment: Deployment::Cloud,
        auth: Auth::Basic {
            email: CLOUD_EMAIL.into(),
            token: CLOUD_TOKEN.into(),
        },
        rate_limit: None,
        burst: 1,
        concurrency,
        timeout,
        ca_file: None,
        max_response: jira_cache::profile::DEFAULT_MAX_RESPONSE,
        retry: RetryPolicy {
            max_retries: 0,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
    })
    .unwrap()
}

/// What a listing gave: the keys of every page in order, how it ended, and
/// the error that stopped it, if any.
#[derive(Debug, PartialEq)]
struct Outcome {
    pages: Vec<Vec<String>>,
    end: Option<End>,
    error: Option<String>,
}

impl Outcome {
    fn keys(&self) -> Vec<String> {
        self.pages.concat()
    }
}

async fn drain(mut pager: Pager) -> Outcome {
    let mut pages = Vec::new();
    let error = loop {
        match pager.next_page().await {
            Ok(Some(page)) => pages.push(page.iter().map(|i| by_key(i).unwrap()).collect()),
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    Outcome {
        pages,
        end: pager.end(),
        error,
    }
}

/// Every project key of the fake, in the order project search gives them.
fn site_keys(fake: &FakeJira) -> Vec<String> {
    let mut keys: Vec<String> = fake.site().with(|s| {
        s.projects
            .iter()
            .map(|p| p["key"].as_str().unwrap().to_string())
            .collect()
    });
    keys.sort_by_key(|k| k.to_lowercase());
    keys
}

/// Lists the projects one page at a time and fetching 2 and 8 pages ahead,
/// each against a fresh fake with `faults`; asserts that all three give the
/// same pages, end and error; answers that outcome and the number of
/// project searches each sent (one at a time first).
async fn same_as_one_at_a_time(faults: &[Fault]) -> (Outcome, Vec<usize>, Vec<String>) {
    let mut outcomes = Vec::new();
    let mut requests = Vec::new();
    let mut keys = Vec::new();
    for ahead in [0, 2, 8] {
        let fake = fake(faults);
        keys = site_keys(&fake);
        let pager = client(&fake, 8).projects(&[]).fetch_ahead(ahead);
        outcomes.push(drain(pager).await);
        requests.push(fake.count_path(SEARCH));
    }
    let serial = outcomes.remove(0);
    for (outcome, ahead) in outcomes.iter().zip([2, 8]) {
        assert_eq!(
            outcome, &serial,
            "{ahead} pages ahead must give what one at a time gives"
        );
    }
    (serial, requests, keys)
}

#[tokio::test]
async fn an_honest_listing_is_complete_in_order_with_no_extra_request() {
    let (outcome, requests, keys) = same_as_one_at_a_time(&[]).await;
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.end, Some(End::Complete));
    assert_eq!(outcome.keys(), keys, "every project once, in order");
    assert_eq!(outcome.pages.len(), 5);
    assert_eq!(
        requests,
        [5, 5, 5],
        "the total tells exactly which pages exist"
    );
}

#[tokio::test]
async fn the_later_pages_are_requested_while_the_second_is_still_out() {
    // The second page never answers: one at a time, nothing after it would
    // be asked; fetching ahead, the pages after it are asked at once.
    let fake = fake(&[Fault::new(SEARCH, FaultKind::Hang).query_contains("startAt=50&")]);
    let mut pager = client(&fake, 8).projects(&[]).fetch_ahead(8);
    let first = pager.next_page().await.unwrap().unwrap();
    assert_eq!(first.len(), CAP);
    // Waits for the requests, bounded so that a failure cannot hang.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.count_path(SEARCH) < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let asked: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with(SEARCH))
        .map(|r| r.query.clone())
        .collect();
    for offset in [0, 50, 100, 150, 200] {
        assert!(
            asked
                .iter()
                .any(|q| q.contains(&format!("startAt={offset}&"))),
            "startAt={offset} asked: {asked:?}"
        );
    }
    assert_eq!(asked.len(), 5, "no page past the total: {asked:?}");
    drop(pager);
}

#[tokio::test]
async fn fetching_ahead_keeps_to_its_window() {
    let fake = fake(&[Fault::new(SEARCH, FaultKind::Hang).query_contains("startAt=50&")]);
    let mut pager = client(&fake, 8).projects(&[]).fetch_ahead(2);
    pager.next_page().await.unwrap().unwrap();
    // Pages are requested only while `next_page` runs, so what the pager
    // has requested now is all the site can see until the next call, which
    // would wait on the second page, held by the site.
    assert_eq!(pager.pages_requested(), 3, "the first page and 2 ahead");
    common::events::wait_until_async("the 2 pages ahead reach the site", || {
        fake.count_path(SEARCH) >= 3
    })
    .await;
    assert_eq!(fake.count_path(SEARCH), 3, "the first page and 2 ahead");
}

/// The window holds for the whole listing: after every page, at most 2 are
/// requested beyond it, and the site saw no page the pager did not count.
#[tokio::test]
async fn the_window_holds_at_every_page() {
    let fake = fake(&[]);
    let mut pager = client(&fake, 8).projects(&[]).fetch_ahead(2);
    while pager.next_page().await.unwrap().is_some() {
        assert!(
            pager.pages_requested() <= pager.pages() + 2,
            "{} requested after {} pages",
            pager.pages_requested(),
            pager.pages()
        );
    }
    assert!(pager.is_complete());
    assert_eq!(pager.pages(), PROJECTS.div_ceil(CAP));
    assert_eq!(pager.pages_requested(), pager.pages());
    assert_eq!(fake.count_path(SEARCH), pager.pages());
}

#[tokio::test]
async fn a_short_page_mid_listing_leaves_no_gap() {
    let (outcome, _, keys) = same_as_one_at_a_time(&[
        Fault::new(SEARCH, FaultKind::ShortPage(10)).query_contains("startAt=50&")
    ])
    .await;
    assert_eq!(outcome.end, Some(End::Complete));
    assert_eq!(outcome.keys(), keys);
    assert_eq!(outcome.pages[1].len(), 10);
}

#[tokio::test]
async fn an_oversize_page_mid_listing_brings_no_duplicate() {
    let (outcome, _, keys) = same_as_one_at_a_time(&[
        Fault::new(SEARCH, FaultKind::OversizePage).query_contains("startAt=50&")
    ])
    .await;
    assert_eq!(outcome.end, Some(End::Complete));
    assert_eq!(outcome.keys(), keys);
}

#[tokio::test]
async fn a_total_too_high_makes_is_last_a_broken_end_not_a_complete_one() {
    let (outcome, requests, keys) =
        same_as_one_at_a_time(&[Fault::new(SEARCH, FaultKind::LyingTotal(1000))]).await;
    assert_eq!(
        outcome.end, None,
        "isLast short of the total proves nothing"
    );
    let error = outcome
        .error
        .as_deref()
        .expect("a broken listing is an error");
    assert!(error.contains("isLast came at"), "{error}");
    assert_eq!(
        outcome.keys(),
        keys[..keys.len() - keys.len() % CAP].to_vec()
    );
    assert_eq!(requests[0], 5);
    assert!(
        requests[1] <= 5 + 2 && requests[2] <= 5 + 8,
        "pages past the end asked are bounded by the window: {requests:?}"
    );
}

#[tokio::test]
async fn a_total_smaller_than_what_came_breaks_the_listing() {
    let (outcome, requests, keys) =
        same_as_one_at_a_time(&[Fault::new(SEARCH, FaultKind::LyingTotal(120))]).await;
    assert_eq!(outcome.end, None, "not complete");
    let error = outcome
        .error
        .as_deref()
        .expect("a broken listing is an error");
    assert!(error.contains("total 120 but 150"), "{error}");
    assert_eq!(outcome.keys(), keys[..100].to_vec());
    assert_eq!(requests, [3, 3, 3]);
}

#[tokio::test]
async fn a_total_that_grows_after_the_first_page_is_followed() {
    let (outcome, requests, keys) =
        same_as_one_at_a_time(&[
            Fault::new(SEARCH, FaultKind::LyingTotal(100)).query_contains("startAt=0&")
        ])
        .await;
    assert_eq!(outcome.end, Some(End::Complete));
    assert_eq!(outcome.keys(), keys);
    assert_eq!(requests, [5, 5, 5]);
}

#[tokio::test]
async fn a_listing_that_never_ends_is_broken_at_the_first_repeated_page() {
    let (outcome, _, keys) = same_as_one_at_a_time(&[
        Fault::new(SEARCH, FaultKind::NeverLast),
        Fault::new(SEARCH, FaultKind::LyingTotal(100_000)),
    ])
    .await;
    assert_eq!(outcome.end, None, "a repeated page is not an end");
    let error = outcome
        .error
        .as_deref()
        .expect("a broken listing is an error");
    assert!(error.contains("repeated"), "{error}");
    assert_eq!(outcome.keys(), keys);
}

#[tokio::test]
async fn a_failing_later_page_is_an_error_after_the_pages_before_it() {
    let (outcome, _, keys) = same_as_one_at_a_time(&[
        Fault::new(SEARCH, FaultKind::status(400)).query_contains("startAt=100&")
    ])
    .await;
    assert!(outcome.error.is_some(), "{outcome:?}");
    assert_eq!(outcome.end, None, "not complete");
    assert_eq!(outcome.keys(), keys[..100].to_vec());
}

#[tokio::test]
async fn the_page_ceiling_holds_and_is_never_exceeded_by_requests_ahead() {
    for ahead in [0, 8] {
        let fake = fake(&[]);
        let client = client(&fake, 8);
        let mut listing = Listing::new(client.api("/project/search"), Style::PageBean, 100, by_key);
        listing.max_pages = 3;
        let outcome = drain(Pager::new(client, listing).fetch_ahead(ahead)).await;
        assert_eq!(outcome.pages.len(), 3, "{ahead} ahead");
        let error = outcome.error.expect("the ceiling is an error");
        assert!(error.contains("truncated after 3 pages"), "{error}");
        assert_eq!(fake.count_path(SEARCH), 3, "{ahead} ahead");
    }
}

/// The keys of the cached `list:projects`, in order.
fn cached_list(sb: &Sandbox) -> Vec<String> {
    let reader = jira_cache::cache::Cache::open_read_only(sb.cache_path("test")).unwrap();
    let entry = reader
        .peek(jira_cache::Category::Project, "list:projects")
        .unwrap()
        .expect("list:projects cached");
    let list: Vec<serde_json::Value> = serde_json::from_str(&entry.value).unwrap();
    list.iter()
        .map(|p| p["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_projects_stage_caches_every_page_in_order() {
    let fake = fake(&[]);
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\nconcurrency = 4",
    );
    let out = run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
    assert!(
        stdout(&out).contains(&format!("Warmed {PROJECTS} projects")),
        "{}",
        text(&out)
    );
    assert_eq!(fake.count_path(SEARCH), 5);
    assert_eq!(cached_list(&sb), site_keys(&fake));
    assert_eq!(entries(&sb.status_json(), "project"), PROJECTS as u64 + 1);
}

#[test]
fn a_failing_later_page_removes_nothing_and_the_next_warm_reconciles() {
    let fake = fake(&[]);
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\nconcurrency = 4",
    );
    run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
    let before = cached_list(&sb);

    // Three projects go, and the fourth page fails while the others are
    // fetched ahead.
    let gone = [&before[0], &before[120], &before[229]];
    for key in gone {
        assert!(fake.site().remove_project(key));
    }
    fake.faults()
        .add(Fault::new(SEARCH, FaultKind::status(500)).query_contains("startAt=150&"));
    // The stage cached the pages before the failure: partial, exit 4.
    // `--full`: the listing is still fresh, and only its fetch shows the change.
    let out = run_code(
        &mut sb.warm(&["--projects", "--full", "--profile", "test"]),
        4,
    );
    assert!(stderr(&out).contains("HTTP 500"), "{}", text(&out));
    let status = sb.status_json();
    assert_eq!(
        entries(&status, "project"),
        PROJECTS as u64 + 1,
        "an incomplete listing removes nothing"
    );
    assert_eq!(status["runs"][0]["removed"], 0);
    assert_eq!(cached_list(&sb), before, "list:projects is not rewritten");

    fake.faults().clear();
    run_ok(&mut sb.warm(&["--projects", "--full", "--profile", "test"]));
    let status = sb.status_json();
    assert_eq!(entries(&status, "project"), PROJECTS as u64 - 3 + 1);
    assert_eq!(status["runs"][0]["removed"], 3);
    assert_eq!(cached_list(&sb), site_keys(&fake));
}

/// The issues stage's chain (count, then census pages) goes ahead of the
/// users stage's many waiting requests: when a slot frees, the chain's
/// request takes it, not the ordinary requests that were waiting before it.
/// (A current-thread runtime: each spawned request has queued by the time
/// the test task yields.)
#[tokio::test]
async fn a_chain_sent_ahead_takes_the_first_slot_that_frees() {
    let first = Gate::new();
    let held = Gate::new();
    let fake = fake(&[
        Fault::new("/rest/api/3/myself", FaultKind::Hold(first.clone())),
        Fault::new("/rest/api/3/field", FaultKind::Hold(held.clone())),
    ]);
    let client = client(&fake, 2);
    let fields = |c: &JiraClient| {
        let c = c.clone();
        tokio::spawn(async move { c.metadata(Metadata::Fields).collect_all().await.map(|_| ()) })
    };
    let mine = client.clone();
    let one = tokio::spawn(async move { mine.myself().await.map(|_| ()) });
    let mut ordinary = vec![fields(&client)];
    common::events::wait_until_async("both slots taken at the site", || {
        first.reached() == 1 && held.reached() == 1
    })
    .await;
    ordinary.extend((0..4).map(|_| fields(&client)));
    tokio::task::yield_now().await;
    let chain = client.ahead();
    let sent = tokio::spawn(async move { chain.server_info().await.map(|_| ()) });
    tokio::task::yield_now().await;
    // The slot `myself` frees goes to the chain. In one queue it would go
    // to the first of the 4 waiting, held at the site like the rest, and
    // the chain would wait for the held gate: the guard gives up then.
    first.open();
    one.await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(60), sent)
        .await
        .expect("the chain's request queued behind the waiting ones")
        .unwrap()
        .unwrap();
    held.open();
    for task in ordinary {
        task.await.unwrap().unwrap();
    }
    // In the order the site saw them: the chain's request came before
    // every one that waited (only the first `field`, held from the start,
    // may come before it).
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    let chain_at = paths.iter().position(|p| p.ends_with("/serverInfo"));
    let fields_at: Vec<usize> = (0..paths.len())
        .filter(|&i| paths[i] == "/rest/api/3/field")
        .collect();
    assert_eq!(fields_at.len(), 5, "{paths:?}");
    assert!(chain_at.is_some_and(|c| c < fields_at[1]), "{paths:?}");
    assert_eq!(held.reached(), 5);
    assert_eq!(client.stats().requests, 7);
}

/// Each request runs as a task of its own (so its answer is read by
/// whichever runtime thread is free); dropping the caller's future must
/// still stop it and free its slot, as dropping it in place did. Here the
/// only slot is held by a request the site never answers: once its caller
/// gives up, the next request must get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_caller_gives_up_frees_its_slot() {
    let never = Gate::new();
    let fake = fake(&[Fault::new(
        "/rest/api/3/myself",
        FaultKind::Hold(never.clone()),
    )]);
    // Its own timeout would free the slot too, but only long after the
    // guard below gives up.
    let client = client_with_timeout(&fake, 1, Duration::from_secs(600));
    let mine = client.clone();
    let stuck = tokio::spawn(async move { mine.myself().await.map(|_| ()) });
    common::events::wait_until_async("the request held at the site", || never.reached() == 1).await;
    stuck.abort();
    assert!(stuck.await.unwrap_err().is_cancelled());
    tokio::time::timeout(Duration::from_secs(60), client.server_info())
        .await
        .expect("the slot stayed with the request its caller dropped")
        .unwrap();
    assert_eq!(client.stats().requests, 2);
}

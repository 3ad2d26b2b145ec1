//! Sites that lie, lock things away or sit behind proxies (issue 13): a
//! listing is complete only on the server's own end marker, a 403 belongs
//! to the resource that answered it, redirects stay on the site, and what
//! the spec allows is read. Each test fails on the client before issue 13.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::scripted::{Answer, Request, Scripted};
use common::*;
use fake_jira::{FakeJira, Fault, FaultKind, Flavor, Site, SiteSize};
use jira_cache::Deployment;
use jira_cache::jira::{
    Auth, ClientConfig, JiraClient, Listing, Pager, RetryPolicy, Style, by_id, by_key,
};
use serde_json::json;

fn client_for(url: &str, deployment: Deployment) -> JiraClient {
    JiraClient::new(ClientConfig {
        site: url::Url::parse(url).unwrap(),
        deployment,
        auth: Auth::Basic {
            email: CLOUD_EMAIL.into(),
            token: CLOUD_TOKEN.into(),
        },
        rate_limit: None,
        burst: 1,
        concurrency: 4,
        timeout: Duration::from_secs(10),
        ca_file: None,
        max_response: jira_cache::profile::DEFAULT_MAX_RESPONSE,
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
    })
    .unwrap()
}

/// Drains a pager: the items it yielded and the error that stopped it.
async fn drain(mut pager: Pager) -> (usize, Option<String>, bool) {
    let mut items = 0;
    loop {
        match pager.next_page().await {
            Ok(Some(page)) => items += page.len(),
            Ok(None) => return (items, None, pager.is_complete()),
            Err(e) => return (items, Some(e.to_string()), pager.is_complete()),
        }
    }
}

fn project(i: usize) -> serde_json::Value {
    json!({"id": (10_000 + i).to_string(), "key": format!("P{i:04}"), "name": format!("Project {i}")})
}

/// A PageBean of `items` at the request's `startAt`, `per_page` a page;
/// with `ignore`, the items of page 0 whatever was asked, under the
/// `startAt` asked (a proxy that drops the parameter on its way to Jira).
fn page_bean(req: &Request, items: &[serde_json::Value], per_page: usize, ignore: bool) -> Answer {
    let asked = req.number("startAt").unwrap_or(0) as usize;
    let start = if ignore { 0 } else { asked.min(items.len()) };
    let end = (start + per_page).min(items.len());
    Answer::json(json!({
        "startAt": asked, "maxResults": per_page, "total": items.len(),
        "isLast": asked + per_page >= items.len(), "values": &items[start..end],
    }))
}

#[test]
fn a_proxy_that_ignores_start_at_removes_nothing_and_exits_4() {
    let projects: Vec<_> = (0..300).map(project).collect();
    let truth = invariant::Truth::default()
        .with_items(
            jira_cache::Category::Project,
            projects
                .iter()
                .map(|p| p["key"].as_str().unwrap().to_string()),
        )
        .complete_on_success(&[jira_cache::Category::Project]);
    let lying = Arc::new(AtomicBool::new(false));
    let lying2 = lying.clone();
    let server =
        Scripted::start(move |req| page_bean(req, &projects, 100, lying2.load(Ordering::SeqCst)));
    let mut sb = Sandbox::new();
    let toml = format!(
        "[profiles.test]\nurl = \"{}\"\ndeployment = \"cloud\"\nemail = \"{CLOUD_EMAIL}\"\nrate_limit = \"unlimited\"\n",
        server.url()
    );
    sb.profiles(&toml);
    sb.set_env("JIRA_API_TOKEN", CLOUD_TOKEN);
    run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
    assert_eq!(entries(&sb.status_json(), "project"), 301);

    lying.store(true, Ordering::SeqCst);
    let out = invariant::warm_checked(&sb, &["--projects", "--full", "--profile", "test"], || {
        truth.clone()
    });
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains("repeated"),
        "the report says why: {}",
        text(&out)
    );
    let status = sb.status_json();
    assert_eq!(entries(&status, "project"), 301, "nothing removed");
    assert_eq!(status["runs"][0]["removed"], 0);
}

#[tokio::test]
async fn an_empty_page_while_is_last_is_false_breaks_the_listing() {
    let projects: Vec<_> = (0..150).map(project).collect();
    let server = Scripted::start(move |req| {
        if req.number("startAt") == Some(100) {
            return Answer::json(
                json!({"startAt": 100, "total": 150, "isLast": false, "values": []}),
            );
        }
        page_bean(req, &projects, 100, false)
    });
    let (items, error, complete) =
        drain(client_for(&server.url(), Deployment::Cloud).projects(&[])).await;
    assert_eq!(items, 100);
    assert!(!complete);
    assert!(error.unwrap().contains("empty page"));
}

#[tokio::test]
async fn a_negative_total_is_an_invalid_page_and_numbers_past_u32_are_read() {
    let server = Scripted::start(|req| {
        if req.path.ends_with("/negative") {
            Answer::json(json!({"startAt": 0, "total": -1, "isLast": true, "values": [project(1)]}))
        } else {
            Answer::json(json!({
                "startAt": 0, "maxResults": 5_000_000_000u64, "total": 1, "isLast": true,
                "values": [{"id": 5_000_000_000u64, "key": "BIG"}],
            }))
        }
    });
    let client = client_for(&server.url(), Deployment::Cloud);
    let listing = |path: &str| Listing::new(path.to_string(), Style::PageBean, 50, by_key);
    let (_, error, _) = drain(Pager::new(client.clone(), listing("/negative"))).await;
    let error = error.expect("a negative total is invalid");
    assert!(error.contains("the site sent an invalid page"), "{error}");
    assert!(!error.contains("could not be read as JSON"), "{error}");
    let (items, error, complete) = drain(Pager::new(client, listing("/big"))).await;
    assert_eq!((items, error, complete), (1, None, true));
}

#[tokio::test]
async fn a_never_ending_token_listing_stops_at_its_budget() {
    // Fresh issues and fresh tokens for ever.
    let server = Scripted::start(|req| {
        let n = req.body.len() + rand_serial();
        Answer::json(json!({
            "issues": [{"id": n.to_string(), "key": format!("P-{n}")}],
            "isLast": false, "nextPageToken": format!("t{n}"),
        }))
    });
    let client = client_for(&server.url(), Deployment::Cloud);
    let listing = Listing::new("/rest/api/3/search/jql".into(), Style::Token, 1, by_key)
        .expect_items(Some(8));
    let (items, error, complete) = drain(Pager::new(client, listing)).await;
    let error = error.expect("truncated at the budget");
    assert!(error.contains("truncated"), "{error}");
    assert!(!complete);
    assert!(
        items < 20,
        "{items} pages: the budget derives from the 8 expected"
    );
    assert!(server.requests().len() < 20);
}

fn rand_serial() -> usize {
    use std::sync::atomic::AtomicUsize;
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst) * 1000
}

#[tokio::test]
async fn redirects_are_followed_on_the_site_and_refused_off_it() {
    let server = Scripted::start(|req| match req.path.as_str() {
        "/moved" => Answer::redirect("/rest/api/3/field"),
        "/away" => Answer::redirect("http://127.0.0.2:9/evil/field?token=x"),
        _ => Answer::json(json!([{"id": "summary"}])),
    });
    let client = client_for(&server.url(), Deployment::Cloud);
    let listing = |path: &str| Listing::new(path.to_string(), Style::Unpaged, 0, by_id);
    let (items, error, _) = drain(Pager::new(client.clone(), listing("/moved"))).await;
    assert_eq!((items, error), (1, None), "same origin: followed");
    let (items, error, _) = drain(Pager::new(client, listing("/away"))).await;
    let error = error.expect("another origin is refused");
    assert_eq!(items, 0);
    assert!(error.contains("http://127.0.0.2:9/evil/field"), "{error}");
    assert!(!error.contains("token=x"), "{error}");
}

fn sso_server(accept: bool) -> Scripted {
    Scripted::start(move |req| {
        let basic = req
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "));
        match (req.path.as_str(), basic && accept) {
            (_, false) => Answer::status(401),
            ("/rest/api/2/serverInfo", true) => {
                Answer::json(json!({"deploymentType": "Cloud", "version": "1001.0.0"}))
            }
            (_, true) => Answer::json(json!({"displayName": "Cache Bot", "accountId": "abc"})),
        }
    })
}

#[test]
fn server_info_behind_sso_is_probed_again_with_the_profiles_credentials() {
    let server = sso_server(true);
    let mut sb = Sandbox::new();
    sb.profiles(&format!(
        "[profiles.test]\nurl = \"{}\"\nemail = \"{CLOUD_EMAIL}\"\nrate_limit = \"unlimited\"\n",
        server.url()
    ));
    sb.set_env("JIRA_API_TOKEN", CLOUD_TOKEN);
    let out = run_ok(&mut sb.warm(&["--check-auth", "--profile", "test"]));
    assert!(stdout(&out).contains("cloud"), "{}", text(&out));
    let probes: Vec<bool> = server
        .requests()
        .iter()
        .filter(|r| r.path == "/rest/api/2/serverInfo")
        .map(|r| r.authorization.is_some())
        .collect();
    assert_eq!(
        probes[..2],
        [false, true],
        "anonymous first, then with credentials"
    );

    let refused = sso_server(false);
    sb.profiles(&format!(
        "[profiles.test]\nurl = \"{}\"\nemail = \"{CLOUD_EMAIL}\"\nrate_limit = \"unlimited\"\n",
        refused.url()
    ));
    let out = run_code(&mut sb.warm(&["--check-auth", "--profile", "test"]), 3);
    assert!(
        stderr(&out).contains("anonymous request (HTTP 401)")
            && stderr(&out).contains("basic (email + token)"),
        "{}",
        text(&out)
    );
}

fn cloud_fake(size: SiteSize) -> FakeJira {
    FakeJira::builder(Flavor::Cloud)
        .site(Site::generated(Flavor::Cloud, size))
        .start()
}

#[tokio::test]
async fn cloud_project_keys_go_as_repeated_parameters_in_chunks_of_50() {
    let fake = cloud_fake(SiteSize {
        projects: 120,
        ..Default::default()
    });
    let keys: Vec<String> = fake.site().with(|s| {
        s.projects
            .iter()
            .map(|p| p["key"].as_str().unwrap().to_string())
            .collect()
    });
    let client = client_for(&fake.url(), Deployment::Cloud);
    let pagers = client.project_chunks(&keys[..60]);
    assert_eq!(pagers.len(), 2);
    for pager in pagers {
        drain(pager).await;
    }
    let queries: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/rest/api/3/project/search")
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(queries.len(), 2, "{queries:?}");
    for q in &queries {
        assert!(
            !q.contains("%2C") && !q.contains(','),
            "never comma-joined: {q}"
        );
    }
    let counts: Vec<usize> = queries.iter().map(|q| q.matches("keys=").count()).collect();
    assert_eq!(counts, [50, 10]);
    assert!(queries[0].contains(&format!("keys={}&keys={}", keys[0], keys[1])));
}

#[test]
fn cloud_priorities_and_resolutions_come_from_their_search_endpoints() {
    let fake = cloud_fake(SiteSize::default());
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    run_ok(&mut sb.warm(&["--fields", "--profile", "test"]));
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    for deprecated in ["/rest/api/3/priority", "/rest/api/3/resolution"] {
        assert!(
            !paths.iter().any(|p| p == deprecated),
            "{deprecated} asked: {paths:?}"
        );
        let search = format!("{deprecated}/search");
        assert!(paths.contains(&search), "{search} not asked: {paths:?}");
    }
    let reader = jira_cache::cache::Cache::open_read_only(sb.cache_path("test")).unwrap();
    let field = jira_cache::Category::Field;
    assert!(reader.peek(field, "list:priorities").unwrap().is_some());
    assert!(reader.peek(field, "list:resolutions").unwrap().is_some());
    assert!(!reader.keys(field, Some("priority:*")).unwrap().is_empty());
    assert!(!reader.keys(field, Some("resolution:*")).unwrap().is_empty());
}

#[test]
fn one_forbidden_assignable_list_fails_only_its_project() {
    let fake = cloud_fake(SiteSize {
        projects: 3,
        users: 20,
        issues_per_project: 2,
        ..Default::default()
    });
    let first: String = fake
        .site()
        .with(|s| s.projects[0]["key"].as_str().unwrap().into());
    fake.faults().add(
        Fault::new("/rest/api/3/user/assignable/search", FaultKind::status(403))
            .query_contains(format!("project={first}")),
    );
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    let out = invariant::warm_checked(&sb, &["--all", "--profile", "test"], || {
        invariant::Truth::of(&fake)
    });
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        !stdout(&out).contains("Skipped"),
        "no stage skipped: {}",
        text(&out)
    );
    assert!(
        !text(&out).contains("credentials refused"),
        "{}",
        text(&out)
    );
    let reader = jira_cache::cache::Cache::open_read_only(sb.cache_path("test")).unwrap();
    let user = jira_cache::Category::User;
    let assignable = reader.keys(user, Some("assignable:*")).unwrap();
    assert_eq!(
        assignable.len(),
        2,
        "the other projects' lists: {assignable:?}"
    );
    assert!(
        entries(&sb.status_json(), "issue") > 0,
        "the issues stage ran"
    );
}

#[test]
fn cloud_assignable_lists_past_1000_site_users_are_partial_and_marked() {
    let fake = cloud_fake(SiteSize {
        projects: 2,
        users: 1200,
        ..Default::default()
    });
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    let out = run_ok(&mut sb.warm(&["--projects", "--users", "--profile", "test"]));
    assert!(
        text(&out).contains("partial"),
        "the report says so: {}",
        text(&out)
    );
    // One window of 1,000 users covers all the endpoint can see.
    let windows: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/rest/api/3/user/assignable/search")
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(windows.len(), 2, "{windows:?}");
    assert!(
        windows
            .iter()
            .all(|q| q.contains("startAt=0") && q.contains("maxResults=1000"))
    );
    let reader = jira_cache::cache::Cache::open_read_only(sb.cache_path("test")).unwrap();
    let marked = reader
        .meta("partial_assignable")
        .unwrap()
        .unwrap_or_default();
    assert_eq!(marked.split(',').count(), 2, "{marked}");
    let status = sb.status_json();
    assert_eq!(
        status["partial_lists"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
}

/// A Data Center site whose users have systematic names, `e100000` …,
/// as employee ids: no three-character prefix gets under the cap.
fn systematic_dc(users: usize) -> FakeJira {
    let fake = FakeJira::builder(Flavor::DataCenter)
        .site(Site::generated(
            Flavor::DataCenter,
            SiteSize {
                projects: 1,
                users: 1,
                ..Default::default()
            },
        ))
        .start();
    fake.site().with(|s| {
        for n in 0..users {
            let name = format!("e{}", 100_000 + n);
            s.users.push(json!({
                "key": format!("JIRAUSER{}", 20_000 + n), "name": name,
                "displayName": name, "emailAddress": format!("{name}@example.com"),
                "active": true,
            }));
        }
    });
    fake
}

#[test]
fn systematic_dc_user_names_are_split_until_under_the_cap_and_removal_needs_proof() {
    let fake = systematic_dc(500);
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::DataCenter, "deployment = \"datacenter\"");
    let out = run_ok(&mut sb.warm(&["--users", "--profile", "test"]));
    let reader = jira_cache::cache::Cache::open_read_only(sb.cache_path("test")).unwrap();
    let users = reader
        .keys(jira_cache::Category::User, Some("JIRAUSER2*"))
        .unwrap();
    assert_eq!(
        users.len(),
        500,
        "every systematic user found: {}",
        text(&out)
    );
    drop(reader);

    assert!(fake.site().remove_user("JIRAUSER20250"));
    // --full: the split listing is complete and fresh, so a plain warm
    // within its TTL would (rightly) skip it.
    let out = invariant::warm_checked(&sb, &["--users", "--full", "--profile", "test"], || {
        invariant::Truth::of(&fake).complete_on_success(&[jira_cache::Category::User])
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let reader = jira_cache::cache::Cache::open_read_only(sb.cache_path("test")).unwrap();
    let users = reader
        .keys(jira_cache::Category::User, Some("JIRAUSER2*"))
        .unwrap();
    assert_eq!(
        users.len(),
        499,
        "the prefix listing that would find it was complete"
    );
}

fn issue_count(sb: &Sandbox) -> usize {
    jira_cache::cache::Cache::open_read_only(sb.cache_path("test"))
        .unwrap()
        .keys(jira_cache::Category::Issue, None)
        .unwrap()
        .len()
}

fn watermarked(sb: &Sandbox) -> Vec<String> {
    jira_cache::cache::Cache::open_read_only(sb.cache_path("test"))
        .unwrap()
        .watermarks()
        .unwrap()
        .into_iter()
        .map(|w| w.project)
        .collect()
}

#[test]
fn clearing_issues_clears_the_watermarks_that_cover_them() {
    let fake = cloud_fake(SiteSize {
        projects: 2,
        users: 3,
        issues_per_project: 12,
        ..Default::default()
    });
    let keys: Vec<String> = fake.site().with(|s| {
        s.projects
            .iter()
            .map(|p| p["key"].as_str().unwrap().to_string())
            .collect()
    });
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    run_ok(&mut sb.warm(&["--projects", "--issues", "--profile", "test"]));
    let warmed = issue_count(&sb);
    assert!(warmed > 0);
    assert_eq!(watermarked(&sb).len(), 2);

    // A pattern over one project's issues clears that project's watermark.
    let pattern = format!("{}-*", keys[0]);
    run_ok(&mut sb.warm(&[
        "--clear",
        "issue",
        "--pattern",
        &pattern,
        "--profile",
        "test",
    ]));
    assert_eq!(watermarked(&sb), vec![keys[1].clone()]);

    // Every issue: every watermark, and the next warm brings them all back.
    run_ok(&mut sb.warm(&["--clear", "issue", "--profile", "test"]));
    assert!(watermarked(&sb).is_empty());
    assert_eq!(issue_count(&sb), 0);
    let out = invariant::warm_checked(&sb, &["--issues", "--profile", "test"], || {
        invariant::Truth::of(&fake).complete_on_success(&[jira_cache::Category::Issue])
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(issue_count(&sb), warmed, "every issue came back");

    // --reset starts a new file: no watermark survives it.
    run_ok(&mut sb.warm(&["--reset", "--profile", "test"]));
    assert!(watermarked(&sb).is_empty());
}

/// The names of the cached projects, by key.
fn cached_names(sb: &Sandbox) -> std::collections::BTreeMap<String, String> {
    let reader = jira_cache::cache::Cache::open_read_only(sb.cache_path("test")).unwrap();
    let project = jira_cache::Category::Project;
    reader
        .keys(project, None)
        .unwrap()
        .into_iter()
        .filter(|k| !k.starts_with("list:"))
        .map(|k| {
            let entry = reader.peek(project, &k).unwrap().unwrap();
            let value: serde_json::Value = serde_json::from_str(&entry.value).unwrap();
            (k, value["name"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[test]
fn nothing_of_a_page_that_contradicts_its_listing_is_stored_as_current() {
    // 150 projects, 50 a page. Then a proxy that answers the third page
    // with the first page's items, renamed (stale content under the right
    // `startAt`), and answers a narrowed listing (`keys`) with projects
    // that were not asked for, renamed too.
    let projects: Vec<_> = (0..150).map(project).collect();
    let keys: Vec<String> = projects
        .iter()
        .map(|p| p["key"].as_str().unwrap().to_string())
        .collect();
    let lying = Arc::new(AtomicBool::new(false));
    let lying2 = lying.clone();
    let server = Scripted::start(move |req| {
        let lie = lying2.load(Ordering::SeqCst);
        let renamed = |items: &[serde_json::Value]| -> Vec<serde_json::Value> {
            items
                .iter()
                .map(|p| {
                    let mut p = p.clone();
                    p["name"] = json!("from a broken page");
                    p
                })
                .collect()
        };
        if lie && req.query.contains("keys=") {
            // Asked for some keys: all of them come back, renamed.
            return Answer::json(json!({
                "startAt": 0, "maxResults": 200, "total": 150, "isLast": true,
                "values": renamed(&projects),
            }));
        }
        if lie && req.number("startAt") == Some(100) {
            return Answer::json(json!({
                "startAt": 100, "maxResults": 50, "total": 150, "isLast": true,
                "values": renamed(&projects[..50]),
            }));
        }
        page_bean(req, &projects, 50, false)
    });
    let mut sb = Sandbox::new();
    sb.profiles(&format!(
        "[profiles.test]\nurl = \"{}\"\ndeployment = \"cloud\"\nemail = \"{CLOUD_EMAIL}\"\nrate_limit = \"unlimited\"\n",
        server.url()
    ));
    sb.set_env("JIRA_API_TOKEN", CLOUD_TOKEN);
    run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
    let before = cached_names(&sb);
    assert_eq!(before.len(), 150);
    let truth = invariant::Truth::default()
        .with_items(jira_cache::Category::Project, keys.clone())
        .complete_on_success(&[jira_cache::Category::Project]);

    lying.store(true, Ordering::SeqCst);
    let out = invariant::warm_checked(&sb, &["--projects", "--full", "--profile", "test"], || {
        truth.clone()
    });
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_eq!(
        cached_names(&sb),
        before,
        "the repeated page's items keep the versions first listed"
    );

    // Narrowed to two projects, answered with all 150: only the two asked
    // for are stored; the others keep what a real listing said.
    let out = invariant::warm_checked(
        &sb,
        &[
            "--projects",
            "--project",
            &keys[3],
            "--project",
            &keys[4],
            "--full",
            "--profile",
            "test",
        ],
        || truth.clone(),
    );
    let after = cached_names(&sb);
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, name)| before.get(*k) != Some(*name))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(changed, [&keys[3], &keys[4]], "{}", text(&out));
}

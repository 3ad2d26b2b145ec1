//! `cache_serve` through the real binary, against a fake Jira started per
//! test: it answers what the site answers, then answers it from the cache
//! with the site stopped; writes invalidate; strangers get 401 without the
//! site seeing them; paths never leave the site; SIGTERM lets the requests
//! under way finish.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::served::Served;
use common::{CLOUD_EMAIL, CLOUD_TOKEN, DC_TOKEN, Sandbox, category};
use fake_jira::{FakeJira, Fault, FaultKind, Flavor};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running `cache_serve`; killed if the test ends without stopping it.
fn basic(user: &str, token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
    )
}

fn cloud_auth() -> String {
    basic(CLOUD_EMAIL, CLOUD_TOKEN)
}

fn dc_auth() -> String {
    format!("Bearer {DC_TOKEN}")
}

struct Got {
    status: u16,
    cache: String,
    age: Option<u64>,
    json: Value,
}

async fn get(http: &reqwest::Client, url: &str, auth: Option<&str>) -> Got {
    let mut request = http.get(url);
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let cache = header("x-cache").unwrap_or_default();
    let age = header("age").and_then(|a| a.parse().ok());
    let text = response.text().await.expect("a body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Got {
        status,
        cache,
        age,
        json,
    }
}
/// A sandbox whose profile `test` points at `fake` as a Cloud site.
fn cloud_sandbox(fake: &FakeJira) -> Sandbox {
    cloud_sandbox_with(fake, "")
}

/// [`cloud_sandbox`] with `extra` profile lines.
fn cloud_sandbox_with(fake: &FakeJira, extra: &str) -> Sandbox {
    let mut sandbox = Sandbox::new();
    sandbox.profile_for(
        fake,
        Flavor::Cloud,
        &format!("deployment = \"cloud\"\n{extra}"),
    );
    sandbox
}

/// The body of the last PUT the site received.
fn last_write_body(fake: &FakeJira) -> Option<String> {
    fake.requests()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .expect("the write reached the site")
        .body
}

/// The key of the site's first issue.
fn first_issue(fake: &FakeJira) -> String {
    fake.site().snapshot().issues[0]["key"]
        .as_str()
        .expect("an issue")
        .to_string()
}

/// `serverInfo` carries the site's clock: equal but for `serverTime`.
fn comparable(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("serverTime");
    }
    v
}

/// The paths of every endpoint the cache answers, with real keys of the
/// fake's site.
async fn served_paths(http: &reqwest::Client, fake: &FakeJira, auth: &str) -> Vec<String> {
    let api = fake.api_url();
    let v = api.trim_start_matches(&fake.url()).to_string();
    let projects = get(http, &format!("{api}/project"), Some(auth)).await.json;
    let project = projects[0]["key"].as_str().expect("a project").to_string();
    let issue = first_issue(fake);
    let mut paths = vec![
        "/rest/api/2/serverInfo".to_string(),
        format!("{v}/myself"),
        format!("{v}/field"),
        format!("{v}/issuetype"),
        format!("{v}/priority"),
        format!("{v}/status"),
        format!("{v}/resolution"),
        format!("{v}/project"),
        format!("{v}/project/{project}"),
        format!("{v}/user/assignable/search?project={project}"),
        format!("{v}/issue/{issue}"),
        format!("{v}/issue/{issue}?fields=summary,status"),
    ];
    if fake.flavor() == Flavor::DataCenter {
        paths.extend(dc_user_paths(fake));
    }
    if fake.flavor() == Flavor::Cloud {
        let users = get(http, &format!("{api}/users/search"), Some(auth))
            .await
            .json;
        let account = users[0]["accountId"].as_str().expect("a user").to_string();
        paths.extend([
            "/rest/api/3/serverInfo".to_string(),
            format!("{v}/project/search?maxResults=2"),
            format!("{v}/priority/search"),
            format!("{v}/resolution/search"),
            format!("{v}/users/search?maxResults=5"),
            format!("{v}/user?accountId={account}"),
        ]);
    }
    paths
}

/// Data Center's `user` by `username` and by `key`, for a user of the site.
fn dc_user_paths(fake: &FakeJira) -> Vec<String> {
    let user = fake.site().snapshot().users[0].clone();
    let name = user["name"].as_str().expect("a user name").to_string();
    let key = user["key"].as_str().expect("a user key").to_string();
    vec![
        format!("/rest/api/2/user?username={name}"),
        format!("/rest/api/2/user?key={key}"),
    ]
}

async fn same_as_the_site_then_from_the_cache(flavor: Flavor, auth: String) {
    let fake = FakeJira::builder(flavor).start();
    let mut sandbox = Sandbox::new();
    sandbox.profile_for(&fake, flavor, "");
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let paths = served_paths(&http, &fake, &auth).await;
    let mut direct = Vec::new();
    for path in &paths {
        let site = get(&http, &format!("{}{path}", fake.url()), Some(&auth)).await;
        assert_eq!(site.status, 200, "{path} on the site");
        let first = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!(first.status, 200, "{path}: {}", first.json);
        assert_eq!(first.cache, "MISS", "{path}");
        assert_eq!(
            comparable(first.json),
            comparable(site.json.clone()),
            "{path}"
        );
        let again = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!(again.cache, "HIT", "{path}");
        assert!(again.age.is_some(), "{path}: an Age header");
        direct.push(site.json);
    }
    let asked = fake.request_count();
    drop(fake);
    for (path, site) in paths.iter().zip(direct) {
        let cached = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!(cached.status, 200, "{path} with the site stopped");
        assert_eq!(cached.cache, "HIT", "{path}");
        assert_eq!(comparable(cached.json), comparable(site), "{path}");
    }
    assert!(asked > 0);
    assert!(served.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cloud_endpoint_answers_as_the_site_does_then_from_the_cache_with_the_site_down() {
    same_as_the_site_then_from_the_cache(Flavor::Cloud, cloud_auth()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_data_center_endpoint_answers_as_the_site_does_then_from_the_cache_with_the_site_down()
 {
    same_as_the_site_then_from_the_cache(Flavor::DataCenter, dc_auth()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_ttl_an_entry_is_served_stale_while_the_site_is_down() {
    let fake = FakeJira::builder(Flavor::DataCenter).start();
    let mut sandbox = Sandbox::new();
    sandbox.profile_for(
        &fake,
        Flavor::DataCenter,
        "deployment = \"datacenter\"\n[profiles.test.ttl]\nfield = \"0s\"\n",
    );
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let url = format!("{}/rest/api/2/field", served.url);
    let first = get(&http, &url, Some(&dc_auth())).await;
    assert_eq!(first.cache, "MISS");
    // Expired at once: the next read with the site up fetches again.
    assert_eq!(get(&http, &url, Some(&dc_auth())).await.cache, "MISS");
    drop(fake);
    let stale = get(&http, &url, Some(&dc_auth())).await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.cache, "STALE");
    assert_eq!(stale.json, first.json);
    // Not cached at all: no answer to give, the site is down.
    let missing = get(
        &http,
        &format!("{}/rest/api/2/issuetype", served.url),
        Some(&dc_auth()),
    )
    .await;
    assert_eq!(missing.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_the_cache_drops_the_issue_so_it_is_never_read_back_stale() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox(&fake);
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let paths = served_paths(&http, &fake, &cloud_auth()).await;
    let issue_path = paths
        .iter()
        .find(|p| p.contains("/issue/") && !p.contains('?'))
        .expect("an issue path");
    let url = format!("{}{issue_path}", served.url);
    let before = get(&http, &url, Some(&cloud_auth())).await;
    // The first hit reads the file and keeps the answer in memory; the
    // second is answered from memory.
    assert_eq!(get(&http, &url, Some(&cloud_auth())).await.cache, "HIT");
    assert_eq!(get(&http, &url, Some(&cloud_auth())).await.cache, "HIT");
    let write = http
        .put(&url)
        .header("Authorization", cloud_auth())
        .header("Content-Type", "application/json")
        .body(r#"{"fields":{"summary":"edited"}}"#)
        .send()
        .await
        .expect("an answer");
    assert_eq!(write.status().as_u16(), 204);
    assert_eq!(write.headers()["x-cache"], "BYPASS");
    let after = get(&http, &url, Some(&cloud_auth())).await;
    assert_eq!(after.cache, "MISS");
    assert_ne!(
        after.json["fields"]["summary"],
        before.json["fields"]["summary"]
    );
    assert_eq!(fake.count_path("/rest/api/3/issue/"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_several_mebibytes_reaches_the_site_whole_with_a_length_or_chunked() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox(&fake);
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let key = first_issue(&fake);
    let url = format!("{}/rest/api/3/issue/{key}", served.url);
    let summary = "x".repeat(3 * 1024 * 1024);
    let body = format!(r#"{{"fields":{{"summary":"{summary}"}}}}"#);
    let chunks: Vec<Result<String, std::io::Error>> = body
        .as_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    for sent in [
        reqwest::Body::from(body.clone()),
        reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
    ] {
        let write = http
            .put(&url)
            .header("Authorization", cloud_auth())
            .header("Content-Type", "application/json")
            .body(sent)
            .send()
            .await
            .expect("an answer");
        assert_eq!(write.status().as_u16(), 204);
        assert_eq!(last_write_body(&fake).as_deref(), Some(body.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_past_max_response_is_never_kept_while_one_only_passed_on_streams_whole() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox_with(&fake, "max_response = \"1KiB\"\n");
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let issue = first_issue(&fake);
    // Kept answers and searches that refresh the cache are read whole:
    // past the cap, 502 and nothing kept.
    for path in [
        format!("/rest/api/3/issue/{issue}"),
        "/rest/api/3/search/jql?jql=project%20%3D%20ALPHA%20order%20by%20key&fields=summary,description".to_string(),
    ] {
        let got = get(&http, &format!("{}{path}", served.url), Some(&cloud_auth())).await;
        assert_eq!(got.status, 502, "{path}: {}", got.json);
        assert!(
            got.json
                .to_string()
                .contains("larger than max_response (1.0 KiB)"),
            "{path}: {}",
            got.json
        );
    }
    let reader = jira_cache::cache::Cache::open_read_only(sandbox.cache_path("test")).unwrap();
    assert_eq!(
        reader
            .keys(jira_cache::Category::Issue, Some("serve:*"))
            .unwrap(),
        Vec::<String>::new()
    );
    // An answer only passed on (a bulk fetch) goes whole.
    let keys: Vec<Value> = fake
        .site()
        .snapshot()
        .issues
        .iter()
        .take(5)
        .map(|i| i["key"].clone())
        .collect();
    let answer = http
        .post(format!("{}/rest/api/3/issue/bulkfetch", served.url))
        .header("Authorization", cloud_auth())
        .json(&serde_json::json!({"issueIdsOrKeys": keys, "fields": ["summary", "description"]}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.headers()["x-cache"], "BYPASS");
    let text = answer.text().await.unwrap();
    assert!(text.len() > 1024, "{text}");
    let json: Value = serde_json::from_str(&text).expect("whole JSON");
    assert_eq!(json["issues"].as_array().map(Vec::len), Some(5), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_server_keeps_is_brought_under_max_size() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox_with(&fake, "max_size = \"8KiB\"\n");
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let keys: Vec<String> = fake
        .site()
        .snapshot()
        .issues
        .iter()
        .take(20)
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect();
    for key in &keys {
        let url = format!("{}/rest/api/3/issue/{key}", served.url);
        assert_eq!(get(&http, &url, Some(&cloud_auth())).await.status, 200);
    }
    let reader = jira_cache::cache::Cache::open_read_only(sandbox.cache_path("test")).unwrap();
    // The server looks at the total every second.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let total = loop {
        let total = reader.total_bytes().unwrap();
        if total <= 8 * 1024 || std::time::Instant::now() > deadline {
            break total;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(total <= 8 * 1024, "{total} bytes kept");
    let kept = reader
        .keys(jira_cache::Category::Issue, Some("serve:*"))
        .unwrap();
    assert!(!kept.is_empty() && kept.len() < keys.len(), "{kept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_longer_than_the_profiles_timeout_reaches_the_site_whole() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox_with(&fake, "timeout = \"1s\"\n");
    let served = Served::start(&sandbox, &[]);
    let key = first_issue(&fake);
    let body = r#"{"fields":{"summary":"sent slowly, over three seconds"}}"#;
    // Six pieces half a second apart: three times the profile's timeout.
    let pieces: Vec<String> = body
        .as_bytes()
        .chunks(body.len().div_ceil(6))
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let slow = futures::StreamExt::then(futures::stream::iter(pieces), |piece| async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok::<_, std::io::Error>(piece)
    });
    let write = reqwest::Client::new()
        .put(format!("{}/rest/api/3/issue/{key}", served.url))
        .header("Authorization", cloud_auth())
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(slow))
        .send()
        .await
        .expect("an answer");
    assert_eq!(write.status().as_u16(), 204);
    assert_eq!(last_write_body(&fake).as_deref(), Some(body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_credentials_get_401_and_never_reach_the_site() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sandbox = cloud_sandbox_with(&fake, "serve_token_env = \"SERVE_TOKEN\"\n");
    sandbox.set_env("SERVE_TOKEN", "serve-secret-1");
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let url = format!("{}/rest/api/3/field", served.url);
    for auth in [
        None,
        Some(basic(CLOUD_EMAIL, "not-the-token")),
        Some(basic("someone@example.com", CLOUD_TOKEN)),
        Some(format!("Bearer {CLOUD_TOKEN}")),
        Some("Bearer serve-secret-2".to_string()),
    ] {
        let got = get(&http, &url, auth.as_deref()).await;
        assert_eq!(got.status, 401, "{auth:?}");
    }
    assert_eq!(fake.request_count(), 0, "nothing reached the site");
    // The serve token, as Bearer or as a Basic password, is let in.
    let bearer = get(&http, &url, Some("Bearer serve-secret-1")).await;
    assert_eq!((bearer.status, bearer.cache.as_str()), (200, "MISS"));
    let as_basic = get(&http, &url, Some(&basic("anyone", "serve-secret-1"))).await;
    assert_eq!((as_basic.status, as_basic.cache.as_str()), (200, "HIT"));
    // An answer kept in memory is no less guarded.
    assert_eq!(
        get(&http, &url, Some("Bearer serve-secret-1")).await.cache,
        "HIT"
    );
    assert_eq!(get(&http, &url, None).await.status, 401);
    assert_eq!(
        get(&http, &url, Some("Bearer serve-secret-2")).await.status,
        401
    );
}

/// Sends a raw request line (clients normalise `..` away before sending).
async fn raw(served: &Served, target: &str) -> String {
    let addr = served.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        cloud_auth()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_that_would_leave_the_api_or_the_site_are_refused() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox(&fake);
    let served = Served::start(&sandbox, &[]);
    for target in [
        "/rest/api/3/../../secure/admin",
        "/rest/api/3/issue/..%2F..%2Fsecure",
        "/rest/api/3/issue/%2e%2e/x",
        "/rest/api/3//field",
        "http://elsewhere.example/rest/api/3/field",
    ] {
        let status = raw(&served, target).await;
        assert!(status.contains(" 400 "), "{target}: {status}");
    }
    assert!(
        raw(&served, "/secure/Dashboard.jspa")
            .await
            .contains(" 404 ")
    );
    assert_eq!(fake.request_count(), 0, "nothing reached the site");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_asking_for_one_key_make_one_upstream_request() {
    let fake = FakeJira::builder(Flavor::Cloud)
        .latency(Duration::from_millis(200))
        .start();
    let sandbox = cloud_sandbox(&fake);
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let url = format!("{}/rest/api/3/field", served.url);
    let auth = cloud_auth();
    let answers = futures::future::join_all((0..200).map(|_| get(&http, &url, Some(&auth)))).await;
    assert!(answers.iter().all(|a| a.status == 200));
    assert!(answers.iter().all(|a| a.json == answers[0].json));
    assert_eq!(fake.count_path("/rest/api/3/field"), 1);
}

/// Issue 17's target as it is worded: the key is cached but expired. The
/// entry expired an hour ago, so whichever client comes first refreshes it
/// for everyone; one arriving after the refresh finds it fresh (its TTL is
/// hours), so the count does not depend on timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_asking_for_one_expired_key_make_at_most_one_upstream_request() {
    let fake = FakeJira::builder(Flavor::Cloud)
        .latency(Duration::from_millis(200))
        .start();
    let sandbox = cloud_sandbox(&fake);
    let issue = first_issue(&fake);
    let path = format!("/rest/api/3/issue/{issue}");
    // The entry cache_serve itself keeps for this read, an hour past its TTL.
    let dir = sandbox.cache_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let old = format!(r#"{{"key":"{issue}","fields":{{"summary":"before the expiry"}}}}"#);
    let now = chrono::Utc::now().timestamp_millis();
    store_serve_entry(&sandbox, &issue, &old, now - 2 * 3_600_000, now - 3_600_000).await;

    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let url = format!("{}{path}", served.url);
    let auth = cloud_auth();
    let answers = futures::future::join_all((0..200).map(|_| get(&http, &url, Some(&auth)))).await;
    assert!(answers.iter().all(|a| a.status == 200));
    assert_eq!(
        fake.count_path(&path),
        1,
        "one upstream request for 200 clients"
    );
    let site = get(&http, &format!("{}{path}", fake.url()), Some(&auth)).await;
    assert_ne!(site.json["fields"]["summary"], "before the expiry");
    assert!(
        answers.iter().all(|a| a.json == site.json),
        "every client got the refreshed issue, none the expired one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_requests_under_way_finish_then_exits_0() {
    let fake = FakeJira::builder(Flavor::Cloud)
        .latency(Duration::from_millis(300))
        .start();
    let sandbox = cloud_sandbox(&fake);
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let auth = cloud_auth();
    let urls: Vec<String> = (0..20)
        .map(|i| format!("{}/rest/api/3/project/search?startAt={i}", served.url))
        .collect();
    let load = tokio::spawn({
        let http = http.clone();
        async move { futures::future::join_all(urls.iter().map(|u| get(&http, u, Some(&auth)))).await }
    });
    // Every request is at the site (held there by its latency) before the
    // signal goes.
    while fake.count_path("/rest/api/3/project/search") < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = tokio::task::spawn_blocking(move || served.terminate())
        .await
        .unwrap();
    let answers = load.await.unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(answers.len(), 20);
    assert!(answers.iter().all(|a| a.status == 200 && a.cache == "MISS"));
    // Its writer closed before the process ended: the WAL went back into
    // the file, nothing is left beside it.
    let cache = sandbox.cache_path("test");
    assert!(cache.exists());
    for suffix in ["-wal", "-shm"] {
        let mut side = cache.clone().into_os_string();
        side.push(suffix);
        assert!(
            !std::path::Path::new(&side).exists(),
            "{suffix} left behind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_half_a_request_neither_holds_its_connection_nor_the_stop() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox(&fake);
    let served = Served::start(&sandbox, &["--header-timeout", "1s"]);
    let addr = served.url.trim_start_matches("http://").to_string();
    let mut half = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    half.write_all(b"GET /rest/api/3/field HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), half.read_to_end(&mut rest))
        .await
        .expect("disconnected at the header deadline")
        .expect("read");
    // Another half-sent request, then the stop: the server does not wait
    // for it beyond the same deadline.
    let mut other = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    other
        .write_all(b"GET /rest/api/3/field HTTP/1.1\r\n")
        .await
        .expect("send");
    let status = tokio::task::spawn_blocking(move || served.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(fake.request_count(), 0, "nothing reached the site");
}

#[test]
fn a_non_loopback_address_needs_allow_remote() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox(&fake);
    let out = sandbox
        .shell_command(env!("CARGO_BIN_EXE_cache_serve"))
        .args(["--profile", "test", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("--allow-remote"));
}

#[test]
fn print_systemd_gives_a_service_for_the_profile() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox(&fake);
    let out = common::run_ok(
        sandbox
            .shell_command(env!("CARGO_BIN_EXE_cache_serve"))
            .args(["--profile", "test", "--print-systemd", "--warm"]),
    );
    let unit = common::stdout(&out);
    assert!(unit.contains("[Service]"));
    let exec = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart");
    assert!(exec.contains("--profile test") && exec.contains("--warm"));
    assert!(!unit.contains(CLOUD_TOKEN));
    assert_eq!(fake.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_reads_count_in_the_hit_and_miss_figures_cache_status_shows() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox(&fake);
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let url = format!("{}/rest/api/3/field", served.url);
    // A miss, a hit from the file, then hits answered from memory: all
    // counted.
    for _ in 0..5 {
        assert_eq!(get(&http, &url, Some(&cloud_auth())).await.status, 200);
    }
    // The counts are written at the latest when the server stops.
    assert!(served.terminate().success());
    let status = sandbox.status_json();
    let field = category(&status, "field");
    assert_eq!(field["misses"], 1, "{field}");
    assert_eq!(field["hits"], 4, "{field}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_warm_it_warms_at_start_as_cache_warm_does_and_records_the_run() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox(&fake);
    let served = Served::start(&sandbox, &["--warm"]);
    // The warm runs beside the server; wait for its run to be recorded.
    let mut runs = Vec::new();
    for _ in 0..600 {
        if sandbox.cache_path("test").exists() {
            let status = sandbox.status_json();
            runs = status["runs"].as_array().cloned().unwrap_or_default();
            if runs.first().is_some_and(|r| !r["ended"].is_null()) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = runs.first().expect("a recorded run");
    assert_eq!(run["result"], "ok", "{run}");
    let status = sandbox.status_json();
    let issues = category(&status, "issue");
    assert!(issues["entries"].as_u64().unwrap() > 0, "{issues}");
    assert!(served.terminate().success());
}

/// `cache_warm` of the whole site, then `cache_serve` on its cache.
fn warmed_then_served(fake: &FakeJira, extra: &str) -> (Sandbox, Served) {
    let mut sandbox = Sandbox::new();
    let deployment = match fake.flavor() {
        Flavor::Cloud => "cloud",
        Flavor::DataCenter => "datacenter",
    };
    sandbox.profile_for(
        fake,
        fake.flavor(),
        &format!("deployment = \"{deployment}\"\n{extra}"),
    );
    common::run_ok(&mut sandbox.warm(&["--all", "--profile", "test"]));
    let served = Served::start(&sandbox, &[]);
    (sandbox, served)
}

/// `value` with the API version of every `self` link changed from 3 to 2,
/// as the v2 API of the site would give it.
fn as_v2(value: &Value) -> Value {
    match value {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("self", Value::String(s)) => (
                        k.clone(),
                        Value::String(s.replacen("/rest/api/3/", "/rest/api/2/", 1)),
                    ),
                    _ => (k.clone(), as_v2(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(as_v2).collect()),
        other => other.clone(),
    }
}

/// Keys of the fake's projects, in the site's order.
fn project_keys(fake: &FakeJira) -> Vec<String> {
    fake.site()
        .snapshot()
        .projects
        .iter()
        .filter_map(|p| p["key"].as_str().map(str::to_string))
        .collect()
}

/// An issue the warm cached (it caches the issues of its window only).
fn a_warmed_issue(sandbox: &Sandbox) -> String {
    let out = common::run_ok(&mut sandbox.status(&["--profile", "test", "--keys", "issue"]));
    common::stdout(&out)
        .lines()
        .next()
        .expect("the warm cached an issue")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answers_cache_serve_keeps_stay_out_of_keys_unless_a_pattern_asks() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let (sandbox, served) = warmed_then_served(&fake, "");
    let http = reqwest::Client::new();
    let got = get(
        &http,
        &format!("{}/rest/api/3/serverInfo", served.url),
        Some(&cloud_auth()),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.json);
    assert!(served.terminate().success());
    let keys = |extra: &[&str]| {
        let mut args = vec!["--profile", "test", "--keys", "field"];
        args.extend_from_slice(extra);
        common::stdout(&common::run_ok(&mut sandbox.status(&args)))
    };
    let plain = keys(&[]);
    assert!(plain.contains("list:fields"), "{plain}");
    assert!(!plain.contains("serve:"), "{plain}");
    assert_eq!(keys(&["--pattern", "serve:*"]).trim(), "serve:3/serverInfo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_warm_projects_fields_and_issues_are_answered_from_the_warmed_entries() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let (sandbox, served) = warmed_then_served(&fake, "");
    let http = reqwest::Client::new();
    let auth = cloud_auth();
    let keys = project_keys(&fake);
    assert!(keys.len() >= 3, "{keys:?}");
    let issue = a_warmed_issue(&sandbox);
    let v3 = [
        "/rest/api/3/project".to_string(),
        "/rest/api/3/field".to_string(),
        "/rest/api/3/project/search".to_string(),
        "/rest/api/3/project/search?startAt=1&maxResults=1".to_string(),
        format!(
            "/rest/api/3/project/search?keys={}&keys={}",
            keys[2], keys[0]
        ),
        format!("/rest/api/3/issue/{issue}?fields=summary,status"),
        format!("/rest/api/3/issue/{issue}?fields=status&fields=summary,assignee"),
    ];
    let mut expected = Vec::new();
    for path in &v3 {
        let site = get(&http, &format!("{}{path}", fake.url()), Some(&auth)).await;
        assert_eq!(site.status, 200, "{path}: {}", site.json);
        expected.push((path.clone(), site.json.clone()));
        // The same resource through v2, which the fake's Cloud does not
        // serve: what the v2 API gives is the v3 answer with v2 links.
        if !path.contains("project/search") {
            expected.push((
                path.replace("/rest/api/3/", "/rest/api/2/"),
                as_v2(&site.json),
            ));
        }
    }
    fake.reset_requests();
    for (path, site) in &expected {
        let got = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!(
            (got.status, got.cache.as_str()),
            (200, "HIT"),
            "{path}: {}",
            got.json
        );
        assert_eq!(&got.json, site, "{path}");
    }
    assert_eq!(fake.request_count(), 0, "the warmed entries answered");
    drop(fake);
    for (path, site) in &expected {
        let got = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!(
            (got.status, got.cache.as_str()),
            (200, "HIT"),
            "{path} with the site down"
        );
        assert_eq!(&got.json, site, "{path} with the site down");
    }
    assert!(served.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_data_center_warm_projects_fields_and_issues_are_answered_from_the_warmed_entries()
{
    let fake = FakeJira::builder(Flavor::DataCenter).start();
    let (sandbox, served) = warmed_then_served(&fake, "");
    let http = reqwest::Client::new();
    let auth = dc_auth();
    let issue = a_warmed_issue(&sandbox);
    let paths = [
        "/rest/api/2/project".to_string(),
        "/rest/api/2/field".to_string(),
        format!("/rest/api/2/issue/{issue}?fields=summary,status"),
    ];
    let mut direct = Vec::new();
    for path in &paths {
        let site = get(&http, &format!("{}{path}", fake.url()), Some(&auth)).await;
        assert_eq!(site.status, 200, "{path}: {}", site.json);
        direct.push(site.json);
    }
    fake.reset_requests();
    for (path, site) in paths.iter().zip(&direct) {
        let got = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!((got.status, got.cache.as_str()), (200, "HIT"), "{path}");
        assert_eq!(&got.json, site, "{path}");
    }
    assert_eq!(fake.request_count(), 0, "the warmed entries answered");
    drop(fake);
    for (path, site) in paths.iter().zip(&direct) {
        let got = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!((got.status, got.cache.as_str()), (200, "HIT"), "{path}");
        assert_eq!(&got.json, site, "{path} with the site down");
    }
    // Data Center has no `project/search`: the site says so, not the cache.
    let search = get(
        &http,
        &format!("{}/rest/api/2/project/search", served.url),
        Some(&auth),
    )
    .await;
    assert_eq!(search.status, 502, "{}", search.json);
    assert!(served.terminate().success());
    // Answers from warmed entries count as the hits they are.
    let status = sandbox.status_json();
    let field = category(&status, "field");
    assert_eq!(
        (field["hits"].as_u64(), field["misses"].as_u64()),
        (Some(2), Some(0)),
        "{field}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_warmed_entries_do_not_hold_goes_to_the_site() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let (sandbox, served) = warmed_then_served(&fake, "");
    let http = reqwest::Client::new();
    let auth = cloud_auth();
    let keys = project_keys(&fake);
    let issue = a_warmed_issue(&sandbox);
    let account = get(
        &http,
        &format!("{}/users/search", fake.api_url()),
        Some(&auth),
    )
    .await
    .json[0]["accountId"]
        .as_str()
        .expect("a user")
        .to_string();
    let passed_through = [
        // Not in the warm's `issue_fields`, so not covered.
        format!("/rest/api/3/issue/{issue}?fields=summary,description"),
        // Every field.
        format!("/rest/api/3/issue/{issue}"),
        format!("/rest/api/3/issue/{issue}?fields=summary&expand=names"),
        // The listing's project and user are not what these return.
        format!("/rest/api/3/project/{}", keys[0]),
        format!("/rest/api/3/user?accountId={account}"),
        // What the site makes of comma-joined keys is the site's to say.
        format!("/rest/api/3/project/search?keys={},{}", keys[0], keys[1]),
        "/rest/api/3/project/search?query=a".to_string(),
    ];
    for path in &passed_through {
        let site = get(&http, &format!("{}{path}", fake.url()), Some(&auth)).await;
        let before = fake.request_count();
        let got = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!(
            (got.status, got.cache.as_str()),
            (site.status, "MISS"),
            "{path}"
        );
        assert_eq!(got.json, site.json, "{path}");
        assert_eq!(
            fake.request_count(),
            before + 1,
            "{path}: one request to the site"
        );
        let again = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!(again.cache, "HIT", "{path}: kept for the next reader");
    }
    assert!(served.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_ttl_warmed_entries_are_served_stale_and_an_issue_short_of_fields_stale_partial() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let (sandbox, served) = warmed_then_served(
        &fake,
        "max_stale = \"1d\"\n[profiles.test.ttl]\nproject = \"0s\"\nfield = \"0s\"\n\
         issue_recent = \"0s\"\nissue_old = \"0s\"\n",
    );
    let http = reqwest::Client::new();
    let auth = cloud_auth();
    let issue = a_warmed_issue(&sandbox);
    let paths = [
        "/rest/api/3/project".to_string(),
        "/rest/api/3/field".to_string(),
        "/rest/api/3/project/search?maxResults=2".to_string(),
        format!("/rest/api/3/issue/{issue}?fields=summary,status"),
    ];
    let mut direct = Vec::new();
    for path in &paths {
        direct.push(
            get(&http, &format!("{}{path}", fake.url()), Some(&auth))
                .await
                .json,
        );
    }
    let full = get(
        &http,
        &format!(
            "{}/rest/api/3/issue/{issue}?fields=summary,description",
            fake.url()
        ),
        Some(&auth),
    )
    .await
    .json;
    drop(fake);
    for (path, site) in paths.iter().zip(&direct) {
        let got = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!(
            (got.status, got.cache.as_str()),
            (200, "STALE"),
            "{path}: {}",
            got.json
        );
        assert_eq!(&got.json, site, "{path}");
        assert!(got.age.is_some(), "{path}: an Age header");
    }
    // `description` was not warmed: the fields the entry has, marked.
    let partial = get(
        &http,
        &format!(
            "{}/rest/api/3/issue/{issue}?fields=summary,description",
            served.url
        ),
        Some(&auth),
    )
    .await;
    assert_eq!(
        (partial.status, partial.cache.as_str()),
        (200, "STALE-PARTIAL")
    );
    assert_eq!(partial.json["key"], full["key"]);
    assert_eq!(partial.json["fields"]["summary"], full["fields"]["summary"]);
    assert!(
        partial.json["fields"].get("description").is_none(),
        "{}",
        partial.json
    );
    // Nothing warmed covers an issue's every field, and nothing else is cached.
    let none = get(
        &http,
        &format!("{}/rest/api/3/issue/{issue}", served.url),
        Some(&auth),
    )
    .await;
    assert_eq!(none.status, 502);
    assert!(served.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_stale_a_warmed_entry_is_not_served() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let (sandbox, served) = warmed_then_served(
        &fake,
        "max_stale = \"0s\"\n[profiles.test.ttl]\nfield = \"0s\"\nissue_recent = \"0s\"\nissue_old = \"0s\"\n",
    );
    let http = reqwest::Client::new();
    let issue = a_warmed_issue(&sandbox);
    drop(fake);
    for path in [
        "/rest/api/3/field".to_string(),
        format!("/rest/api/3/issue/{issue}?fields=summary,description"),
    ] {
        let got = get(&http, &format!("{}{path}", served.url), Some(&cloud_auth())).await;
        assert_eq!(
            (got.status, got.cache.as_str()),
            (502, "MISS"),
            "{path}: {}",
            got.json
        );
    }
    assert!(served.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_client_never_gets_the_adf_of_a_v3_warmed_issue() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let (sandbox, served) = warmed_then_served(
        &fake,
        "issue_fields = [\"summary\", \"status\", \"description\", \"updated\", \"project\"]\n",
    );
    let http = reqwest::Client::new();
    let auth = cloud_auth();
    let issue = a_warmed_issue(&sandbox);
    let v3 = format!("/rest/api/3/issue/{issue}?fields=description");
    let site = get(&http, &format!("{}{v3}", fake.url()), Some(&auth))
        .await
        .json;
    assert_eq!(
        site["fields"]["description"]["type"], "doc",
        "the fake's v3 is ADF"
    );
    fake.reset_requests();
    // v3 asks for v3's shape: the warmed entry answers.
    let got = get(&http, &format!("{}{v3}", served.url), Some(&auth)).await;
    assert_eq!((got.cache.as_str(), &got.json), ("HIT", &site));
    // v2 with fields of one shape in both versions: answered too.
    let plain = format!("/rest/api/2/issue/{issue}?fields=summary,status");
    let got = get(&http, &format!("{}{plain}", served.url), Some(&auth)).await;
    assert_eq!(got.cache, "HIT");
    assert_eq!(got.json["fields"].as_object().map(|f| f.len()), Some(2));
    assert!(got.json["self"].as_str().unwrap().contains("/rest/api/2/"));
    assert_eq!(fake.request_count(), 0);
    // v2 asking for rich text: only the site has its wiki markup.
    let rich = format!("/rest/api/2/issue/{issue}?fields=summary,description");
    let got = get(&http, &format!("{}{rich}", served.url), Some(&auth)).await;
    assert_eq!(got.cache, "MISS");
    assert_eq!(fake.count_path("/rest/api/2/issue/"), 1, "asked the site");
    drop(fake);
    // With the site down: stale and partial, never the ADF document.
    let got = get(&http, &format!("{}{rich}", served.url), Some(&auth)).await;
    assert_eq!(
        (got.status, got.cache.as_str()),
        (200, "STALE-PARTIAL"),
        "{}",
        got.json
    );
    assert!(got.json["fields"].get("summary").is_some());
    assert!(!got.json.to_string().contains("\"doc\""), "{}", got.json);
    assert!(served.terminate().success());
}

/// An issue's `fields.summary` as the site has it now.
fn site_summary(fake: &FakeJira, key: &str) -> Value {
    fake.site().snapshot().issue(key).expect("the issue")["fields"]["summary"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_through_the_cache_refreshes_the_issues_it_answers_with() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let (sandbox, served) = warmed_then_served(&fake, "");
    let http = reqwest::Client::new();
    let auth = cloud_auth();
    let issue = a_warmed_issue(&sandbox);
    let read = format!(
        "{}/rest/api/3/issue/{issue}?fields=summary,status",
        served.url
    );
    let before = get(&http, &read, Some(&auth)).await;
    assert_eq!(before.cache, "HIT");
    assert!(fake.site().touch_issue(&issue));
    let changed = site_summary(&fake, &issue);
    assert_ne!(before.json["fields"]["summary"], changed);
    // Within its TTL the warmed entry still answers with the old summary.
    assert_eq!(
        get(&http, &read, Some(&auth)).await.json["fields"]["summary"],
        before.json["fields"]["summary"]
    );
    // A search whose fields cover the entry's: passed on unchanged…
    let search = format!("/rest/api/3/search/jql?jql=key%3D{issue}&fields=*all");
    let site = get(&http, &format!("{}{search}", fake.url()), Some(&auth)).await;
    let through = get(&http, &format!("{}{search}", served.url), Some(&auth)).await;
    assert_eq!((through.status, through.cache.as_str()), (200, "BYPASS"));
    assert_eq!(through.json, site.json);
    // …and the issue's entry now holds what it said, served from the cache.
    fake.reset_requests();
    let after = get(&http, &read, Some(&auth)).await;
    assert_eq!(after.cache, "HIT");
    assert_eq!(after.json["fields"]["summary"], changed);
    assert_eq!(fake.request_count(), 0);
    assert!(served.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_that_does_not_cover_the_entry_refreshes_nothing() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let (sandbox, served) = warmed_then_served(&fake, "");
    let http = reqwest::Client::new();
    let auth = cloud_auth();
    let issue = a_warmed_issue(&sandbox);
    let read = format!(
        "{}/rest/api/3/issue/{issue}?fields=summary,status",
        served.url
    );
    let before = get(&http, &read, Some(&auth)).await.json;
    assert!(fake.site().touch_issue(&issue));
    // Only two of the fields the warm keeps: the entry cannot be rebuilt.
    let narrow = format!("/rest/api/3/search/jql?jql=key%3D{issue}&fields=summary,updated");
    let got = get(&http, &format!("{}{narrow}", served.url), Some(&auth)).await;
    assert_eq!(got.status, 200, "{}", got.json);
    assert_eq!(
        got.json["issues"][0]["fields"]["summary"],
        site_summary(&fake, &issue)
    );
    let after = get(&http, &read, Some(&auth)).await;
    assert_eq!((after.cache.as_str(), &after.json), ("HIT", &before));
    assert!(served.terminate().success());
}

/// The spec's `keys` is an exploded array (`keys=PA&keys=PB`); a comma is
/// not its separator. The comma form is not split by the cache: the site
/// gets the query as it came and says what it means.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comma_joined_project_keys_go_to_the_site_as_they_came() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let (_sandbox, served) = warmed_then_served(&fake, "");
    let http = reqwest::Client::new();
    let auth = cloud_auth();
    let keys = project_keys(&fake);
    let repeated = format!(
        "/rest/api/3/project/search?keys={}&keys={}",
        keys[0], keys[1]
    );
    let joined = format!("/rest/api/3/project/search?keys={},{}", keys[0], keys[1]);
    fake.reset_requests();
    let from_list = get(&http, &format!("{}{repeated}", served.url), Some(&auth)).await;
    assert_eq!(from_list.cache, "HIT");
    assert_eq!(from_list.json["total"], 2);
    assert_eq!(fake.request_count(), 0, "answered from the warmed list");
    let site = get(&http, &format!("{}{joined}", fake.url()), Some(&auth)).await;
    fake.reset_requests();
    let passed = get(&http, &format!("{}{joined}", served.url), Some(&auth)).await;
    assert_eq!(passed.cache, "MISS");
    assert_eq!(passed.json, site.json, "the site's own answer");
    let asked: Vec<String> = fake.requests().into_iter().map(|r| r.query).collect();
    assert_eq!(asked, [format!("keys={},{}", keys[0], keys[1])]);
    assert!(served.terminate().success());
}

/// `project/{key}` and `user` are not in what a warm stores (its listing's
/// project and user lack what these return): read through, then, past the
/// TTL with the site down, served stale within `max_stale`.
async fn projects_and_users_past_their_ttl_are_served_stale(flavor: Flavor, auth: String) {
    let fake = FakeJira::builder(flavor).start();
    let mut sandbox = Sandbox::new();
    sandbox.profile_for(
        &fake,
        flavor,
        "max_stale = \"1d\"\n[profiles.test.ttl]\nproject = \"0s\"\nuser = \"0s\"\n",
    );
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let v = fake.api_url().trim_start_matches(&fake.url()).to_string();
    let project = project_keys(&fake)[0].clone();
    let mut paths = vec![format!("{v}/project/{project}")];
    match flavor {
        Flavor::Cloud => {
            let users = get(
                &http,
                &format!("{}/users/search", fake.api_url()),
                Some(&auth),
            )
            .await;
            let account = users.json[0]["accountId"].as_str().expect("a user");
            paths.push(format!("{v}/user?accountId={account}"));
        }
        Flavor::DataCenter => paths.extend(dc_user_paths(&fake)),
    }
    let mut direct = Vec::new();
    for path in &paths {
        let site = get(&http, &format!("{}{path}", fake.url()), Some(&auth)).await;
        assert_eq!(site.status, 200, "{path}: {}", site.json);
        let first = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!(
            (first.cache.as_str(), &first.json),
            ("MISS", &site.json),
            "{path}"
        );
        direct.push(site.json);
    }
    drop(fake);
    for (path, site) in paths.iter().zip(&direct) {
        let stale = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!(
            (stale.status, stale.cache.as_str()),
            (200, "STALE"),
            "{path}"
        );
        assert_eq!(&stale.json, site, "{path}");
        assert!(stale.age.is_some(), "{path}: an Age header");
    }
    assert!(served.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_projects_and_users_past_their_ttl_are_served_stale_with_the_site_down() {
    projects_and_users_past_their_ttl_are_served_stale(Flavor::Cloud, cloud_auth()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_center_projects_and_users_past_their_ttl_are_served_stale_with_the_site_down() {
    projects_and_users_past_their_ttl_are_served_stale(Flavor::DataCenter, dc_auth()).await;
}

/// The warmed project and user are the listing's objects, fewer members
/// than `project/{key}` and `user` return: with the site down and nothing
/// else kept, they are served as what they are, marked `STALE-PARTIAL`.
async fn warmed_projects_and_users_answer_partially_with_the_site_down(
    flavor: Flavor,
    auth: String,
) {
    let fake = FakeJira::builder(flavor).start();
    let (sandbox, served) = warmed_then_served(&fake, "");
    let http = reqwest::Client::new();
    let v = fake.api_url().trim_start_matches(&fake.url()).to_string();
    let project = project_keys(&fake)[0].clone();
    let user = fake.site().snapshot().users[0].clone();
    let (user_path, user_key) = match flavor {
        Flavor::Cloud => {
            let id = user["accountId"]
                .as_str()
                .expect("an accountId")
                .to_string();
            (format!("{v}/user?accountId={id}"), id)
        }
        Flavor::DataCenter => {
            let key = user["key"].as_str().expect("a user key").to_string();
            (format!("{v}/user?key={key}"), key)
        }
    };
    let warmed = |category: &str, key: &str| -> Value {
        let out =
            common::run_ok(&mut sandbox.status(&["--profile", "test", "--get", category, key]));
        serde_json::from_str(&common::stdout(&out)).expect("the warmed entry's JSON")
    };
    let cases = [
        (
            format!("{v}/project/{}", project.to_lowercase()),
            warmed("project", &project),
        ),
        (user_path, warmed("user", &user_key)),
    ];
    drop(fake);
    for (path, entry) in &cases {
        let got = get(&http, &format!("{}{path}", served.url), Some(&auth)).await;
        assert_eq!(
            (got.status, got.cache.as_str()),
            (200, "STALE-PARTIAL"),
            "{path}: {}",
            got.json
        );
        assert_eq!(&got.json, entry, "{path}");
    }
    // By id, or by user name: not how the warm keys them; nothing to serve.
    let by_name = match flavor {
        Flavor::Cloud => format!("{v}/project/10000"),
        Flavor::DataCenter => format!("{v}/user?username=nobody-warmed"),
    };
    let got = get(&http, &format!("{}{by_name}", served.url), Some(&auth)).await;
    assert_eq!(got.status, 502, "{by_name}: {}", got.json);
    assert!(served.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_warmed_projects_and_users_answer_partially_with_the_site_down() {
    warmed_projects_and_users_answer_partially_with_the_site_down(Flavor::Cloud, cloud_auth())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_center_warmed_projects_and_users_answer_partially_with_the_site_down() {
    warmed_projects_and_users_answer_partially_with_the_site_down(Flavor::DataCenter, dc_auth())
        .await;
}

/// A search answer may predate a write that is under way: it must not put
/// back what the write is about to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_answered_while_a_write_is_under_way_refreshes_nothing() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let (sandbox, served) = warmed_then_served(&fake, "");
    let http = reqwest::Client::new();
    let auth = cloud_auth();
    let issue = a_warmed_issue(&sandbox);
    let read = format!(
        "{}/rest/api/3/issue/{issue}?fields=summary,status",
        served.url
    );
    let before = get(&http, &read, Some(&auth)).await.json;
    // The site takes the write and does not answer it.
    fake.faults()
        .add(Fault::new("/rest/api/3/issue/", FaultKind::Hang).method("PUT"));
    let write = tokio::spawn({
        let (http, auth) = (http.clone(), auth.clone());
        let url = format!("{}/rest/api/3/issue/{issue}", served.url);
        async move {
            http.put(url)
                .header("Authorization", auth)
                .json(&serde_json::json!({"fields": {"summary": "written"}}))
                .send()
                .await
        }
    });
    // Wait for the site to see the write (an event, not a time).
    for _ in 0..1000 {
        if fake.requests().iter().any(|r| r.method == "PUT") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        fake.requests().iter().any(|r| r.method == "PUT"),
        "the write reached the site"
    );
    assert!(fake.site().touch_issue(&issue));
    let search = format!("/rest/api/3/search/jql?jql=key%3D{issue}&fields=*all");
    let through = get(&http, &format!("{}{search}", served.url), Some(&auth)).await;
    assert_eq!(through.status, 200, "{}", through.json);
    assert_eq!(
        through.json["issues"][0]["fields"]["summary"],
        site_summary(&fake, &issue)
    );
    let after = get(&http, &read, Some(&auth)).await;
    assert_eq!((after.cache.as_str(), &after.json), ("HIT", &before));
    drop(fake);
    let written = write.await.expect("the write task").expect("an answer");
    assert_eq!(
        written.status().as_u16(),
        502,
        "the site went away mid-write"
    );
    assert!(served.terminate().success());
}

/// Stores `value` as the entry `cache_serve` keeps for `GET
/// /rest/api/3/issue/{issue}`, fetched at `fetched_at` and expiring at
/// `expires_at` (unix ms), through a connection of this test process:
/// another process than the server.
async fn store_serve_entry(
    sandbox: &Sandbox,
    issue: &str,
    value: &str,
    fetched_at: i64,
    expires_at: i64,
) {
    let writer = jira_cache::cache::Cache::open(sandbox.cache_path("test"))
        .unwrap()
        .writer()
        .unwrap();
    writer
        .put_page(vec![jira_cache::cache::NewEntry {
            category: jira_cache::Category::Issue,
            key: format!("serve:3/issue/{issue}"),
            value: value.to_string(),
            fetched_at,
            expires_at,
            fetch_ms: 0,
            project: None,
            updated_at: None,
        }])
        .await
        .unwrap();
    writer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_another_process_changes_is_served_changed_at_the_next_read() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox(&fake);
    let issue = first_issue(&fake);
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let url = format!("{}/rest/api/3/issue/{issue}", served.url);
    assert_eq!(get(&http, &url, Some(&cloud_auth())).await.cache, "MISS");
    // Read from the file and kept in memory, then answered from memory.
    for _ in 0..3 {
        let hit = get(&http, &url, Some(&cloud_auth())).await;
        assert_eq!(hit.cache, "HIT");
        assert_ne!(hit.json["fields"]["summary"], "changed elsewhere 1");
    }
    for round in 1..=2 {
        let summary = format!("changed elsewhere {round}");
        let value = format!(r#"{{"key":"{issue}","fields":{{"summary":"{summary}"}}}}"#);
        let now = chrono::Utc::now().timestamp_millis();
        store_serve_entry(&sandbox, &issue, &value, now, now + 3_600_000).await;
        for _ in 0..2 {
            let after = get(&http, &url, Some(&cloud_auth())).await;
            assert_eq!(after.cache, "HIT");
            assert_eq!(after.json["fields"]["summary"], summary.as_str());
        }
    }
    assert_eq!(
        fake.count_path(&format!("/rest/api/3/issue/{issue}")),
        1,
        "the changes came from the file, not the site"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_by_numeric_id_drops_the_entry_the_warm_keeps_under_the_key() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let (sandbox, served) = warmed_then_served(&fake, "");
    let http = reqwest::Client::new();
    let issue = a_warmed_issue(&sandbox);
    let id = fake
        .site()
        .snapshot()
        .issues
        .iter()
        .find(|i| i["key"] == issue.as_str())
        .and_then(|i| i["id"].as_str().map(str::to_string))
        .expect("the issue's id");
    let url = format!("{}/rest/api/3/issue/{issue}?fields=summary", served.url);
    let before = get(&http, &url, Some(&cloud_auth())).await;
    assert_eq!((before.status, before.cache.as_str()), (200, "HIT"));
    // As the Python `jira` package's `issue.update()` does: by the id in
    // the issue's `self` link.
    let write = http
        .put(format!("{}/rest/api/3/issue/{id}", served.url))
        .header("Authorization", cloud_auth())
        .header("Content-Type", "application/json")
        .body(r#"{"fields":{"summary":"edited by id"}}"#)
        .send()
        .await
        .expect("an answer");
    assert_eq!(write.status().as_u16(), 204);
    // The fake marks a write in the summary (it does not apply the body).
    let after = get(&http, &url, Some(&cloud_auth())).await;
    assert_eq!(after.cache, "MISS");
    assert_ne!(
        after.json["fields"]["summary"],
        before.json["fields"]["summary"]
    );
    assert_eq!(after.json["fields"]["summary"], site_summary(&fake, &issue));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_cache_warm_reset_the_server_serves_the_new_file() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox(&fake);
    let issue = first_issue(&fake);
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let url = format!("{}/rest/api/3/issue/{issue}", served.url);
    assert_eq!(get(&http, &url, Some(&cloud_auth())).await.cache, "MISS");
    assert_eq!(get(&http, &url, Some(&cloud_auth())).await.cache, "HIT");
    common::run_ok(&mut sandbox.warm(&["--reset", "--profile", "test"]));
    let value = format!(r#"{{"key":"{issue}","fields":{{"summary":"after the reset"}}}}"#);
    let now = chrono::Utc::now().timestamp_millis();
    store_serve_entry(&sandbox, &issue, &value, now, now + 3_600_000).await;
    // The server looks at the file every second.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = get(&http, &url, Some(&cloud_auth())).await;
        if got.json["fields"]["summary"] == "after the reset" {
            assert_eq!(got.cache, "HIT");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still serving the deleted file: {}",
            got.json
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fake.count_path(&format!("/rest/api/3/issue/{issue}")), 1);
    // The deleted file is closed, so its disk space is given back.
    let fds = format!("/proc/{}/fd", served.child.id());
    let holds_deleted = || {
        std::fs::read_dir(&fds).unwrap().flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy().ends_with("(deleted)"))
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while holds_deleted() {
        assert!(
            std::time::Instant::now() < deadline,
            "the deleted file is still open: {:?}",
            std::fs::read_dir(&fds)
                .unwrap()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_moved_in_beside_the_servers_own_log_is_not_opened() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox(&fake);
    let issue = first_issue(&fake);
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    let url = format!("{}/rest/api/3/issue/{issue}", served.url);
    let before = get(&http, &url, Some(&cloud_auth())).await;
    assert_eq!(before.cache, "MISS");
    // A cache file made elsewhere (closed, so without a log of its own),
    // then moved over the served one by hand.
    let path = sandbox.cache_path("test");
    let elsewhere = path.with_file_name("restore.sqlite3");
    {
        let cache = jira_cache::cache::Cache::open(&elsewhere).unwrap();
        let writer = cache.writer().unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        writer
            .put_page(vec![jira_cache::cache::NewEntry {
                category: jira_cache::Category::Issue,
                key: format!("serve:3/issue/{issue}"),
                value: r#"{"fields":{"summary":"moved in"}}"#.to_string(),
                fetched_at: now,
                expires_at: now + 3_600_000,
                fetch_ms: 0,
                project: None,
                updated_at: None,
            }])
            .await
            .unwrap();
        writer.shutdown().await.unwrap();
    }
    std::fs::rename(&elsewhere, &path).unwrap();
    // Three of the server's checks.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = get(&http, &url, Some(&cloud_auth())).await;
    assert_eq!(after.status, 200);
    assert_eq!(
        after.json["fields"]["summary"],
        before.json["fields"]["summary"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_kept_in_memory_still_needs_credentials_counts_and_is_logged() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sandbox = cloud_sandbox(&fake);
    let issue = first_issue(&fake);
    let log = sandbox.dir.path().join("serve.log");
    // Quiet: the access log only reaches the file.
    let served = Served::start(&sandbox, &["-q", "--log-file", log.to_str().unwrap()]);
    let http = reqwest::Client::new();
    let url = format!("{}/rest/api/3/issue/{issue}", served.url);
    assert_eq!(get(&http, &url, Some(&cloud_auth())).await.cache, "MISS");
    // From the file (then kept in memory), then from memory.
    for _ in 0..3 {
        assert_eq!(get(&http, &url, Some(&cloud_auth())).await.cache, "HIT");
    }
    // Kept in memory, and still nothing for a stranger: the router's 401.
    for auth in [None, Some(basic(CLOUD_EMAIL, "not-the-token"))] {
        let response = match &auth {
            Some(auth) => http.get(&url).header("Authorization", auth),
            None => http.get(&url),
        }
        .send()
        .await
        .expect("an answer");
        assert_eq!(response.status().as_u16(), 401, "{auth:?}");
        assert_eq!(response.headers()["x-cache"], "BYPASS");
        assert!(response.headers().contains_key("www-authenticate"));
        let body = response.text().await.expect("a body");
        assert!(!body.contains(&issue), "{body}");
    }
    // An absolute-form target is refused even for an answer kept in memory.
    let addr = served.url.trim_start_matches("http://").to_string();
    let status = raw(&served, &format!("http://{addr}/rest/api/3/issue/{issue}")).await;
    assert!(status.contains(" 400 "), "{status}");
    assert!(served.terminate().success());
    let text = std::fs::read_to_string(&log).expect("the log file");
    let lines = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    let path = format!("GET /rest/api/3/issue/{issue} ");
    assert_eq!(lines(&format!("{path}200 MISS ")), 1, "{text}");
    assert_eq!(lines(&format!("{path}200 HIT ")), 3, "{text}");
    assert_eq!(lines(&format!("{path}401 BYPASS ")), 2, "{text}");
    assert!(!text.contains(CLOUD_TOKEN) && !text.contains(&cloud_auth()[6..]));
    // Every read from memory counts (the 401s do not).
    let status = sandbox.status_json();
    let issues = category(&status, "issue");
    assert_eq!(
        (issues["hits"].clone(), issues["misses"].clone()),
        (3.into(), 1.into()),
        "{issues}"
    );
}

/// The operator's credentials, echoed by the site in an answer's body or
/// `Location`, never reach a client of the server: it holds only the serve
/// token. Neither does the cache keep them.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_the_site_echoes_are_not_passed_on_to_the_servers_clients() {
    use common::scripted::{Answer, Scripted};
    const SECRET: &str = "operator-token-0123456789";
    let site = Scripted::start(|req| {
        let got = req.authorization.clone().unwrap_or_default();
        if req.path == "/rest/api/3/project/ECHO" {
            return Answer::json(serde_json::json!({
                "id": "1", "key": "ECHO", "name": SECRET, "description": format!("you sent {got}"),
            }));
        }
        Answer {
            status: 401,
            headers: vec![("Location".into(), format!("/x/{SECRET}/y"))],
            body: serde_json::json!({"errorMessages": [format!("{got} is not valid")]}).to_string(),
        }
    });
    let mut sandbox = Sandbox::new();
    sandbox.profiles(&format!(
        "[profiles.test]\nurl = \"{}\"\ndeployment = \"cloud\"\nemail = \"bot@example.com\"\nrate_limit = \"unlimited\"\nserve_token_env = \"SERVE_TOKEN\"\n",
        site.url()
    ));
    sandbox.set_env("JIRA_API_TOKEN", SECRET);
    sandbox.set_env("SERVE_TOKEN", "serve-secret-1");
    let basic_b64 =
        base64::engine::general_purpose::STANDARD.encode(format!("bot@example.com:{SECRET}"));
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    for path in ["/rest/api/3/project/ECHO", "/rest/api/3/myself"] {
        let answer = http
            .get(format!("{}{path}", served.url))
            .header("Authorization", "Bearer serve-secret-1")
            .send()
            .await
            .unwrap();
        let head = format!("{:?}", answer.headers());
        let body = answer.text().await.unwrap();
        for leaked in [SECRET, basic_b64.as_str()] {
            assert!(!head.contains(leaked), "{path}: {head}");
            assert!(!body.contains(leaked), "{path}: {body}");
        }
        assert!(body.contains("[redacted]"), "{path}: {body}");
    }
    // What the server kept of the answers (file, WAL and all).
    let mut kept = 0;
    for file in std::fs::read_dir(sandbox.cache_dir()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        kept += bytes.len();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(SECRET) && !text.contains(&basic_b64));
    }
    assert!(kept > 0);
}

/// An answer compressed though no encoding was asked for is not passed on:
/// its `Content-Encoding` is not among the headers passed back, and its
/// bytes would escape the scrubbing of the operator's credentials.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_encoded_unasked_gets_502_not_its_bytes() {
    use common::scripted::{Answer, Scripted};
    // A second header must not slip past the first: the project answer
    // says `identity` first, the comment answer a lone `gzip`.
    let site = Scripted::start(|req| Answer {
        status: 200,
        headers: match req.path.contains("project") {
            true => vec![
                ("Content-Encoding".into(), "identity".into()),
                ("Content-Encoding".into(), "gzip".into()),
            ],
            false => vec![("Content-Encoding".into(), "gzip".into())],
        },
        body: r#"{"compressed":"supposedly"}"#.into(),
    });
    let mut sandbox = Sandbox::new();
    sandbox.profiles(&format!(
        "[profiles.test]\nurl = \"{}\"\ndeployment = \"cloud\"\nemail = \"bot@example.com\"\nrate_limit = \"unlimited\"\n",
        site.url()
    ));
    sandbox.set_env("JIRA_API_TOKEN", CLOUD_TOKEN);
    let served = Served::start(&sandbox, &[]);
    let http = reqwest::Client::new();
    for (method, path) in [
        (reqwest::Method::GET, "/rest/api/3/project/ECHO"),
        (reqwest::Method::POST, "/rest/api/3/issue/ECHO-1/comment"),
    ] {
        let answer = http
            .request(method, format!("{}{path}", served.url))
            .header("Authorization", cloud_auth())
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 502, "{path}");
        let body = answer.text().await.unwrap();
        assert!(body.contains("encoded as gzip"), "{path}: {body}");
    }
}

//! Re-warms over a cache that already holds the site: what a run writes,
//! refreshes and removes when nothing, one value, or one entry changed on
//! the site (schema 4's listings), and what the issues stage keeps when a
//! later request of a project's listing fails.
//!
//! Times come from the real clock: each test notes the time between two
//! runs and checks that the second run's times are at or after it, never
//! how long anything took.

mod common;

use std::collections::BTreeMap;

use common::*;
use fake_jira::{FakeJira, Fault, FaultKind, Flavor, PageCap, Site, SiteSize};
use jira_cache::Category;
use jira_cache::cache::{Cache, CachedEntry, CategoryStats};
use serde_json::{Value, json};

/// The stages whose entries are all members of complete listings.
const LISTED_STAGES: [&str; 3] = ["--projects", "--fields", "--users"];

/// Their categories, as `cache_status --json` and `cache_warm --json` name
/// them: (category, stage).
const LISTED: [(&str, &str); 3] = [
    ("project", "projects"),
    ("field", "fields"),
    ("user", "users"),
];

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `ms` rounded down to the second: `cache_status --json` prints times to
/// the second.
fn floor_second(ms: i64) -> i64 {
    ms - ms.rem_euclid(1000)
}

fn category_of(name: &str) -> Category {
    match name {
        "project" => Category::Project,
        "field" => Category::Field,
        "user" => Category::User,
        "issue" => Category::Issue,
        other => panic!("no category {other}"),
    }
}

/// A profile `test` for `fake`, with its deployment stated (no probe).
fn sandbox(fake: &FakeJira, flavor: Flavor, extra: &str) -> Sandbox {
    let deployment = match flavor {
        Flavor::Cloud => "cloud",
        Flavor::DataCenter => "datacenter",
    };
    let mut sb = Sandbox::new();
    sb.profile_for(
        fake,
        flavor,
        &format!("deployment = \"{deployment}\"\n{extra}"),
    );
    sb
}

/// `cache_warm --json --profile test <args>`, expecting exit `code`; the
/// printed report.
fn warm_json(sb: &Sandbox, args: &[&str], code: i32) -> Value {
    let mut all = args.to_vec();
    all.extend(["--json", "--profile", "test"]);
    let out = run_code(&mut sb.warm(&all), code);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cache_warm --json prints one object ({e}): {}", text(&out)))
}

/// A stage's report in a `cache_warm --json` report.
fn stage<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["stage"] == name))
        .unwrap_or_else(|| panic!("no stage {name} in {report:#}"))
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// (written, unchanged, removed) of a stage or a run.
fn counts(v: &Value) -> (u64, u64, u64) {
    (
        count(&v["written"]),
        count(&v["unchanged"]),
        count(&v["removed"]),
    )
}

/// A category's object in a `cache_status --json` report.
fn category<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["categories"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["category"] == name))
        .unwrap_or_else(|| panic!("no category {name} in {status:#}"))
}

/// A time of a `cache_status --json` category, in Unix ms.
fn status_time(category: &Value, field: &str) -> i64 {
    let text = category[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {category}"));
    jira_cache::status::parse_rfc3339(text).unwrap_or_else(|| panic!("{field}: {text}"))
}

/// Every entry of a category, by key, read through the library.
fn snapshot(sb: &Sandbox, category: Category) -> BTreeMap<String, CachedEntry> {
    let reader = Cache::open_read_only(sb.cache_path("test")).unwrap();
    reader
        .keys(category, None)
        .unwrap()
        .into_iter()
        .map(|key| {
            let entry = reader.peek(category, &key).unwrap().expect("listed key");
            (key, entry)
        })
        .collect()
}

/// The library's figures of a category, to the millisecond.
fn stats(sb: &Sandbox, category: Category) -> CategoryStats {
    Cache::open_read_only(sb.cache_path("test"))
        .unwrap()
        .category_stats(now_ms())
        .unwrap()
        .into_iter()
        .find(|s| s.category == category)
        .expect("every category has figures")
}

fn peek(sb: &Sandbox, category: Category, key: &str) -> Option<CachedEntry> {
    Cache::open_read_only(sb.cache_path("test"))
        .unwrap()
        .peek(category, key)
        .unwrap()
}

fn json_of(entry: &CachedEntry) -> Value {
    serde_json::from_str(&entry.value).expect("a cached value is JSON")
}

/// The TTL `cache_status` reports for a category, in ms.
fn ttl_ms(status: &Value, category_name: &str) -> i64 {
    let seconds = count(&category(status, category_name)["ttl_seconds"]);
    i64::try_from(seconds).unwrap() * 1000
}

/// `Site::small` plus Zoe, a user no project lists as assignable: a change
/// to her touches her own entry and no `assignable:<KEY>` list. Answers
/// the site and her id (`accountId` on Cloud, `key` on Data Center).
fn site_with_zoe(flavor: Flavor) -> (Site, String) {
    let mut site = Site::small(flavor);
    let zoe = match flavor {
        Flavor::Cloud => json!({
            "accountId": "5d0000ff00000000deadbeef",
            "accountType": "atlassian",
            "emailAddress": "zoe@example.com",
            "displayName": "Zoe Zimmer",
            "active": true,
            "timeZone": "UTC",
        }),
        Flavor::DataCenter => json!({
            "key": "JIRAUSER19999",
            "name": "zoe",
            "emailAddress": "zoe@example.com",
            "displayName": "Zoe Zimmer",
            "active": true,
            "timeZone": "UTC",
        }),
    };
    let id = Site::user_id(&zoe).unwrap().to_string();
    site.users.push(zoe);
    assert!(site.assignable.values().all(|ids| !ids.contains(&id)));
    (site, id)
}

/// Checks that every entry of `after` but `except` has the value it had in
/// `before`, and that all of them carry times of a run that started at or
/// after `since` (ms).
fn unchanged_but_refreshed(
    before: &BTreeMap<String, CachedEntry>,
    after: &BTreeMap<String, CachedEntry>,
    except: &[&str],
    since: i64,
    what: &str,
) {
    for (key, entry) in after {
        assert!(
            entry.fetched_at >= since,
            "{what} {key}: fetched_at {} is older than the second run ({since})",
            entry.fetched_at
        );
        if except.contains(&key.as_str()) {
            continue;
        }
        let old = before
            .get(key)
            .unwrap_or_else(|| panic!("{what} {key} appeared from nowhere"));
        assert_eq!(entry.value, old.value, "{what} {key}: value changed");
    }
}

// ---- 1. Nothing changed ----------------------------------------------------

#[test]
fn a_rewarm_with_nothing_changed_writes_nothing_and_moves_every_entry_s_times_forward() {
    for flavor in [Flavor::Cloud, Flavor::DataCenter] {
        let fake = FakeJira::builder(flavor).site(Site::small(flavor)).start();
        let sb = sandbox(&fake, flavor, "");

        let first = warm_json(&sb, &LISTED_STAGES, 0);
        let before = sb.status_json();
        for (name, stage_name) in LISTED {
            let s = stage(&first, stage_name);
            assert!(entries(&before, name) > 0, "{flavor:?}: {name} is warmed");
            assert_eq!(
                count(&s["written"]),
                entries(&before, name),
                "{flavor:?}: a cold warm writes every {name} entry"
            );
        }
        let values_before: Vec<_> = LISTED
            .iter()
            .map(|(name, _)| snapshot(&sb, category_of(name)))
            .collect();
        let stats_before: Vec<_> = LISTED
            .iter()
            .map(|(name, _)| stats(&sb, category_of(name)))
            .collect();

        let between = now_ms();
        let second = warm_json(&sb, &LISTED_STAGES, 0);
        let after = sb.status_json();

        // What the run says it did: nothing written, everything unchanged.
        let mut total = 0;
        for (name, stage_name) in LISTED {
            let s = stage(&second, stage_name);
            assert_eq!(s["status"], "ok", "{flavor:?} {stage_name}: {s}");
            assert_eq!(
                counts(s),
                (0, entries(&after, name), 0),
                "{flavor:?} {stage_name}: every entry is unchanged: {s}"
            );
            total += entries(&after, name);
        }
        let run = &after["runs"][0];
        assert_eq!(run["result"], "ok", "{flavor:?}: {run}");
        assert_eq!(counts(run), (0, total, 0), "{flavor:?}: {run}");

        for (i, (name, _)) in LISTED.iter().enumerate() {
            let (was, now) = (category(&before, name), category(&after, name));
            let ttl = ttl_ms(&after, name);
            // `cache_status --json`: the same entries, none expired, and the
            // times of the second run (printed to the second).
            assert_eq!(now["entries"], was["entries"], "{flavor:?} {name}");
            assert_eq!(count(&now["expired"]), 0, "{flavor:?} {name}: {now}");
            assert_eq!(now["fresh"], now["entries"], "{flavor:?} {name}: {now}");
            assert!(
                status_time(was, "newest_fetch") <= floor_second(between),
                "{flavor:?} {name}: {was}"
            );
            assert!(
                status_time(now, "newest_fetch") >= floor_second(between),
                "{flavor:?} {name}: newest_fetch did not move to the second run: {now}"
            );
            // Every entry moved, not just some: the oldest fetch is the second run's too.
            assert!(
                status_time(now, "oldest_fetch") >= floor_second(between),
                "{flavor:?} {name}: some entry kept the first run's time: {now}"
            );
            assert!(
                status_time(now, "next_expiry") >= floor_second(between + ttl),
                "{flavor:?} {name}: next_expiry did not move: {now}"
            );

            // The library's figures, to the millisecond.
            let (old, new) = (&stats_before[i], stats(&sb, category_of(name)));
            assert!(old.newest_fetch.unwrap() <= between, "{flavor:?} {name}");
            assert!(new.oldest_fetch.unwrap() >= between, "{flavor:?} {name}");
            assert!(
                new.next_expiry.unwrap() >= between + ttl,
                "{flavor:?} {name}"
            );
            assert!(
                new.next_expiry.unwrap() > old.next_expiry.unwrap(),
                "{flavor:?} {name}"
            );

            // Each entry, read through the library: its old value, new times.
            let values = snapshot(&sb, category_of(name));
            assert_eq!(
                values.keys().collect::<Vec<_>>(),
                values_before[i].keys().collect::<Vec<_>>(),
                "{flavor:?} {name}: the same keys"
            );
            unchanged_but_refreshed(&values_before[i], &values, &[], between, name);
            for (key, e) in &values {
                assert_eq!(
                    e.expires_at - e.fetched_at,
                    ttl,
                    "{flavor:?} {name} {key}: expires one TTL after its fetch"
                );
            }
        }
    }
}

#[test]
fn entries_past_their_expiry_are_fresh_again_after_a_rewarm_that_rewrites_none_of_them() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sb = sandbox(&fake, Flavor::Cloud, "");
    warm_json(&sb, &LISTED_STAGES, 0);

    // Two days pass, as far as the cache knows: every time moves back.
    let two_days: i64 = 2 * 86_400_000;
    let conn = rusqlite::Connection::open(sb.cache_path("test")).unwrap();
    let aged = conn
        .execute(
            "UPDATE listings SET fetched_at = fetched_at - ?1, expires_at = expires_at - ?1",
            [two_days],
        )
        .unwrap();
    assert!(aged > 0, "the warm left listings");
    conn.execute(
        "UPDATE entries SET fetched_at = fetched_at - ?1, expires_at = expires_at - ?1
         WHERE fetched_at IS NOT NULL",
        [two_days],
    )
    .unwrap();
    drop(conn);
    let before = sb.status_json();
    for (name, _) in LISTED {
        let c = category(&before, name);
        assert!(count(&c["entries"]) > 0, "{name}");
        assert_eq!(c["expired"], c["entries"], "{name}: all expired: {c}");
    }

    let between = now_ms();
    let report = warm_json(&sb, &LISTED_STAGES, 0);
    let after = sb.status_json();
    for (name, stage_name) in LISTED {
        let s = stage(&report, stage_name);
        assert_eq!(count(&s["written"]), 0, "{stage_name}: {s}");
        let c = category(&after, name);
        assert_eq!(c["entries"], category(&before, name)["entries"], "{name}");
        assert_eq!(count(&c["expired"]), 0, "{name}: {c}");
        assert_eq!(c["fresh"], c["entries"], "{name}: {c}");
        assert!(
            status_time(c, "oldest_fetch") >= floor_second(between),
            "{name}: {c}"
        );
    }
}

// ---- 2. One value changed ----------------------------------------------------

#[test]
fn a_rewarm_after_one_user_changed_writes_that_user_only() {
    for flavor in [Flavor::Cloud, Flavor::DataCenter] {
        let (site, zoe) = site_with_zoe(flavor);
        let fake = FakeJira::builder(flavor).site(site).start();
        let sb = sandbox(&fake, flavor, "");
        warm_json(&sb, &LISTED_STAGES, 0);
        let users_before = snapshot(&sb, Category::User);
        assert_eq!(
            json_of(&users_before[&zoe])["displayName"],
            "Zoe Zimmer",
            "{flavor:?}"
        );
        let status_before = sb.status_json();

        fake.site().with(|s| {
            let user = s
                .users
                .iter_mut()
                .find(|u| Site::user_id(u) == Some(zoe.as_str()))
                .unwrap();
            user["displayName"] = json!("Zoe Zimmer-Ziegler");
        });
        let between = now_ms();
        let report = warm_json(&sb, &LISTED_STAGES, 0);
        let status = sb.status_json();

        let users = stage(&report, "users");
        assert_eq!(
            counts(users),
            (1, entries(&status, "user") - 1, 0),
            "{flavor:?}: {users}"
        );
        for other in ["projects", "fields"] {
            assert_eq!(
                count(&stage(&report, other)["written"]),
                0,
                "{flavor:?} {other}"
            );
        }
        let run = &status["runs"][0];
        assert_eq!(count(&run["written"]), 1, "{flavor:?}: {run}");
        assert_eq!(count(&run["removed"]), 0, "{flavor:?}: {run}");
        assert_eq!(
            entries(&status, "user"),
            entries(&status_before, "user"),
            "{flavor:?}"
        );

        let entry = peek(&sb, Category::User, &zoe).expect("still cached");
        assert_eq!(
            json_of(&entry)["displayName"],
            "Zoe Zimmer-Ziegler",
            "{flavor:?}: the new value is cached"
        );
        let users_after = snapshot(&sb, Category::User);
        assert_eq!(
            users_after.keys().collect::<Vec<_>>(),
            users_before.keys().collect::<Vec<_>>(),
            "{flavor:?}"
        );
        unchanged_but_refreshed(&users_before, &users_after, &[&zoe], between, "user");
    }
}

#[test]
fn a_rewarm_after_one_field_was_renamed_writes_that_field_and_the_list_holding_it() {
    let fake = FakeJira::builder(Flavor::Cloud)
        .site(Site::small(Flavor::Cloud))
        .start();
    let sb = sandbox(&fake, Flavor::Cloud, "");
    warm_json(&sb, &LISTED_STAGES, 0);
    let fields_before = snapshot(&sb, Category::Field);
    let id = "customfield_10010";
    assert_eq!(json_of(&fields_before[id])["name"], "Story Points");

    fake.site().with(|s| {
        let field = s.fields.iter_mut().find(|f| f["id"] == id).unwrap();
        field["name"] = json!("Story Points (estimate)");
    });
    let between = now_ms();
    let report = warm_json(&sb, &LISTED_STAGES, 0);
    let status = sb.status_json();

    // The field's own entry, and `list:fields`, whose value holds it.
    let fields = stage(&report, "fields");
    assert_eq!(
        counts(fields),
        (2, entries(&status, "field") - 2, 0),
        "{fields}"
    );
    assert_eq!(count(&stage(&report, "projects")["written"]), 0);
    assert_eq!(count(&stage(&report, "users")["written"]), 0);
    assert_eq!(count(&status["runs"][0]["written"]), 2);

    let entry = peek(&sb, Category::Field, id).expect("still cached");
    assert_eq!(json_of(&entry)["name"], "Story Points (estimate)");
    let list = json_of(&peek(&sb, Category::Field, "list:fields").expect("cached"));
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .expect("the list holds the field");
    assert_eq!(listed["name"], "Story Points (estimate)");

    let fields_after = snapshot(&sb, Category::Field);
    assert_eq!(
        fields_after.keys().collect::<Vec<_>>(),
        fields_before.keys().collect::<Vec<_>>()
    );
    unchanged_but_refreshed(
        &fields_before,
        &fields_after,
        &[id, "list:fields"],
        between,
        "field",
    );
}

// ---- 3. One entry deleted ------------------------------------------------------

#[test]
fn a_rewarm_after_one_user_was_deleted_removes_that_user_only() {
    for flavor in [Flavor::Cloud, Flavor::DataCenter] {
        let (site, zoe) = site_with_zoe(flavor);
        let fake = FakeJira::builder(flavor).site(site).start();
        let sb = sandbox(&fake, flavor, "");
        warm_json(&sb, &LISTED_STAGES, 0);
        let users_before = snapshot(&sb, Category::User);
        assert!(users_before.contains_key(&zoe), "{flavor:?}");
        let status_before = sb.status_json();

        assert!(fake.site().remove_user(&zoe));
        let between = now_ms();
        let report = warm_json(&sb, &LISTED_STAGES, 0);
        let status = sb.status_json();

        let users = stage(&report, "users");
        assert_eq!(
            counts(users),
            (0, entries(&status, "user"), 1),
            "{flavor:?}: {users}"
        );
        let run = &status["runs"][0];
        assert_eq!(count(&run["removed"]), 1, "{flavor:?}: {run}");
        assert_eq!(count(&run["written"]), 0, "{flavor:?}: {run}");
        assert_eq!(
            entries(&status, "user"),
            entries(&status_before, "user") - 1,
            "{flavor:?}"
        );
        assert_eq!(count(&category(&status, "user")["expired"]), 0);

        assert!(peek(&sb, Category::User, &zoe).is_none(), "{flavor:?}");
        let users_after = snapshot(&sb, Category::User);
        let mut expected: Vec<&String> = users_before.keys().filter(|k| **k != zoe).collect();
        expected.sort();
        assert_eq!(
            users_after.keys().collect::<Vec<_>>(),
            expected,
            "{flavor:?}"
        );
        unchanged_but_refreshed(&users_before, &users_after, &[], between, "user");
    }
}

#[test]
fn a_rewarm_after_one_project_was_deleted_removes_that_project_and_rewrites_only_the_list() {
    let fake = FakeJira::builder(Flavor::Cloud)
        .site(Site::small(Flavor::Cloud))
        .start();
    let sb = sandbox(&fake, Flavor::Cloud, "");
    warm_json(&sb, &["--projects"], 0);
    let before = snapshot(&sb, Category::Project);
    assert!(before.contains_key("BETA"));
    assert!(before.contains_key("list:projects"));

    assert!(fake.site().remove_project("BETA"));
    let between = now_ms();
    let report = warm_json(&sb, &["--projects"], 0);
    let status = sb.status_json();

    let projects = stage(&report, "projects");
    // `list:projects` is the one value that changed: it no longer holds BETA.
    assert_eq!(
        counts(projects),
        (1, entries(&status, "project") - 1, 1),
        "{projects}"
    );
    assert_eq!(entries(&status, "project"), before.len() as u64 - 1);
    assert!(peek(&sb, Category::Project, "BETA").is_none());
    let list = json_of(&peek(&sb, Category::Project, "list:projects").unwrap());
    let keys: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["key"].as_str())
        .collect();
    assert_eq!(keys, ["ALPHA", "FOR"]);

    let after = snapshot(&sb, Category::Project);
    assert_eq!(
        after.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ALPHA", "FOR", "list:projects"]
    );
    unchanged_but_refreshed(&before, &after, &["list:projects"], between, "project");
}

// ---- 4. A census that fails ------------------------------------------------------

/// A Cloud site with one project of 40 issues, 20 of them updated within
/// the last 20 days.
fn one_project_site() -> (Site, String) {
    let site = Site::generated(
        Flavor::Cloud,
        SiteSize {
            projects: 1,
            users: 5,
            issues_per_project: 40,
            fields: 20,
            issue_bytes: 600,
            recent_days: 20,
        },
    );
    let project = site.projects[0]["key"].as_str().unwrap().to_string();
    (site, project)
}

fn issue_keys(sb: &Sandbox) -> Vec<String> {
    Cache::open_read_only(sb.cache_path("test"))
        .unwrap()
        .keys(Category::Issue, None)
        .unwrap()
}

fn summary_on_site(fake: &FakeJira, key: &str) -> Value {
    fake.site()
        .with(|s| s.issue(key).unwrap()["fields"]["summary"].clone())
}

#[test]
fn an_incremental_rewarm_whose_census_fails_keeps_what_it_fetched_and_removes_nothing() {
    let (site, project) = one_project_site();
    let fake = FakeJira::builder(Flavor::Cloud).site(site).start();
    let sb = sandbox(
        &fake,
        Flavor::Cloud,
        "issue_fields = [\"summary\", \"status\"]",
    );
    // The projects stage runs too: it succeeds whatever the issues stage
    // does, so a failed project makes the run partial, not failed.
    warm_json(&sb, &["--projects", "--issues"], 0);
    let cached = issue_keys(&sb);
    assert_eq!(cached.len(), 20, "the 20 issues of the window");
    let watermark = Cache::open_read_only(sb.cache_path("test"))
        .unwrap()
        .watermark(&project)
        .unwrap()
        .expect("a complete listing sets the watermark");

    // One issue edited (something for the incremental search to bring) and
    // one deleted (something a census would prove gone).
    let (edited, deleted) = (cached[0].clone(), cached[1].clone());
    assert!(fake.site().touch_issue(&edited));
    assert!(fake.site().remove_issue(&deleted));
    let old_summary =
        json_of(&peek(&sb, Category::Issue, &edited).unwrap())["fields"]["summary"].clone();
    let new_summary = summary_on_site(&fake, &edited);
    assert_ne!(old_summary, new_summary);

    // One project, so its requests come in order: the search for what
    // changed passes, and every later search (the key census, and its
    // retries) fails. The changed issue is still fetched by key.
    fake.faults()
        .add(Fault::new("/rest/api/3/search/jql", FaultKind::status(500)).skip(1));
    fake.reset_requests();
    let report = warm_json(
        &sb,
        &["--projects", "--issues"],
        i32::from(jira_cache::exit::PARTIAL),
    );
    assert_eq!(report["result"], "partial", "{report:#}");
    assert_eq!(stage(&report, "projects")["status"], "ok");
    let issues = stage(&report, "issues");
    assert_eq!(issues["status"], "failed", "{issues}");
    assert_eq!(count(&issues["removed"]), 0, "{issues}");
    let errors = issues["errors"].to_string();
    assert!(
        errors.contains(&project) && errors.contains("500"),
        "the error names the project and the status: {errors}"
    );

    // The fault hit the census, and only it.
    let searches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/rest/api/3/search/jql")
        .collect();
    assert!(searches.len() >= 2, "{searches:?}");
    let body = |r: &fake_jira::RecordedRequest| -> Value {
        serde_json::from_str(r.body.as_deref().unwrap()).unwrap()
    };
    assert_eq!(searches[0].status, 200);
    let incremental = body(&searches[0]);
    assert_eq!(
        incremental["fields"],
        json!(["updated"]),
        "the first search is the one for what changed: {incremental}"
    );
    for census in &searches[1..] {
        assert_eq!(census.status, 500);
        assert_eq!(
            body(census)["fields"],
            json!(["key"]),
            "every failed search is the key census"
        );
    }

    // What the search for changes found is stored, with its new value.
    let entry = peek(&sb, Category::Issue, &edited).expect("still cached");
    assert_eq!(json_of(&entry)["fields"]["summary"], new_summary);
    // Nothing of the project was removed, though the deleted issue is gone
    // from the site, and the watermark did not move past a listing that
    // did not end.
    assert!(
        peek(&sb, Category::Issue, &deleted).is_some(),
        "nothing is removed without a census"
    );
    assert_eq!(issue_keys(&sb), cached);
    let status = sb.status_json();
    assert_eq!(status["runs"][0]["result"], "partial");
    assert_eq!(entries(&status, "issue"), 20);
    assert_eq!(
        Cache::open_read_only(sb.cache_path("test"))
            .unwrap()
            .watermark(&project)
            .unwrap(),
        Some(watermark)
    );

    // With the census back, the same re-warm removes the deleted issue:
    // the kept one above was kept for want of a census, not by chance.
    fake.faults().clear();
    let report = warm_json(&sb, &["--projects", "--issues"], 0);
    assert_eq!(count(&stage(&report, "issues")["removed"]), 1, "{report:#}");
    assert!(peek(&sb, Category::Issue, &deleted).is_none());
    assert!(peek(&sb, Category::Issue, &edited).is_some());
}

// ---- 5. A census page that fails ------------------------------------------------

#[test]
fn a_census_page_that_fails_removes_nothing_and_moves_no_watermark() {
    for (flavor, search, cap, counts) in [
        // Cloud counts on /search/approximate-count; Data Center's count
        // is a /search too.
        (
            Flavor::Cloud,
            "/rest/api/3/search/jql",
            PageCap::SearchJqlIds,
            0,
        ),
        (
            Flavor::DataCenter,
            "/rest/api/2/search",
            PageCap::DcSearch,
            1,
        ),
    ] {
        let mut site = Site::generated(
            flavor,
            SiteSize {
                projects: 1,
                users: 5,
                issues_per_project: 40,
                fields: 20,
                issue_bytes: 600,
                recent_days: 20,
            },
        );
        // Issue i was updated i + 1 hours ago: all 40 are in the window.
        let now = chrono::Utc::now();
        for (i, issue) in site.issues.iter_mut().enumerate() {
            let t = now - chrono::Duration::hours(1 + i as i64);
            issue["fields"]["updated"] = json!(fake_jira::format_jira_time(&t));
        }
        let project = site.projects[0]["key"].as_str().unwrap().to_string();
        // Census pages of 10: four of them.
        let fake = FakeJira::builder(flavor)
            .site(site)
            .page_cap(cap, 10)
            .start();
        let sb = sandbox(&fake, flavor, "");
        warm_json(&sb, &["--projects", "--issues"], 0);
        let cached = issue_keys(&sb);
        assert_eq!(cached.len(), 40, "{flavor:?}");
        let watermark = Cache::open_read_only(sb.cache_path("test"))
            .unwrap()
            .watermark(&project)
            .unwrap();
        assert!(watermark.is_some(), "{flavor:?}");

        let deleted = cached[3].clone();
        assert!(fake.site().remove_issue(&deleted));
        // The third census page fails, every time it is asked.
        fake.faults()
            .add(Fault::new(search, FaultKind::status(500)).skip(2 + counts));
        fake.reset_requests();
        let report = warm_json(
            &sb,
            &["--projects", "--issues"],
            i32::from(jira_cache::exit::PARTIAL),
        );
        let issues = stage(&report, "issues");
        assert_eq!(issues["status"], "failed", "{flavor:?}: {issues}");
        assert!(
            issues["errors"].to_string().contains(&project),
            "{flavor:?}: {issues}"
        );
        assert_eq!(count(&issues["removed"]), 0, "{flavor:?}: {issues}");
        let searches: Vec<u16> = fake
            .requests()
            .iter()
            .filter(|r| r.path == search)
            .map(|r| r.status)
            .collect();
        assert_eq!(
            &searches[counts..counts + 3],
            [200, 200, 500],
            "{flavor:?}: two census pages, then the third fails"
        );
        assert_eq!(issue_keys(&sb), cached, "{flavor:?}: nothing removed");
        assert_eq!(
            Cache::open_read_only(sb.cache_path("test"))
                .unwrap()
                .watermark(&project)
                .unwrap(),
            watermark,
            "{flavor:?}: the watermark did not move"
        );

        // With the census whole again, the deleted issue goes.
        fake.faults().clear();
        let report = warm_json(&sb, &["--projects", "--issues"], 0);
        assert_eq!(
            count(&stage(&report, "issues")["removed"]),
            1,
            "{flavor:?}: {report:#}"
        );
        assert!(!issue_keys(&sb).contains(&deleted), "{flavor:?}");
    }
}

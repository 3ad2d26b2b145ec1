//! Issue 4 end to end: `cache_status` through the real binary. Read counts
//! cross processes; `--check` returns each of its four codes from prepared
//! caches; `--json` matches `schemas/cache_status.schema.json`; `--get`
//! tells fresh, stale and missing apart; the human output is pinned by
//! snapshots (with "now" fixed by `JIRA_CACHE_NOW`, `TZ=UTC`, and the temp
//! path redacted).
//!
//! Most caches here are written directly through the library, so that every
//! time in them is exactly known; one test warms from a fake Jira to
//! validate real output.

mod common;

use std::path::Path;

use common::*;
use fake_jira::{FakeJira, Flavor};
use jira_cache::Category;
use jira_cache::cache::{Cache, CacheWriter, NewEntry, RunEnd, RunResult, RunStart};
use jira_cache::lock::WarmLock;
use serde_json::Value;

/// The fixed "now" of these tests: 2025-11-26T06:00:00Z.
const NOW: i64 = 1_764_136_800_000;
const NOW_TEXT: &str = "2025-11-26T06:00:00Z";
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// A sandbox whose profile `test` points at a site that is never called,
/// with "now" fixed and times shown in UTC.
fn sandbox(extra: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.profiles(&format!(
        "[profiles.test]\nurl = \"https://example.atlassian.net\"\ndeployment = \"cloud\"\n\
         email = \"bot@example.com\"\n{extra}\n"
    ));
    sb.set_env("JIRA_CACHE_NOW", NOW_TEXT)
        .set_env("TZ", "UTC")
        .set_env("COLUMNS", "80");
    sb
}

/// Runs `job` against a writer of the cache at `path` (created if missing).
fn write_cache(path: &Path, job: impl AsyncFnOnce(&CacheWriter)) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let cache = Cache::open(path).expect("open the cache");
        let writer = cache.writer().expect("start the writer");
        job(&writer).await;
        writer.shutdown().await.expect("stop the writer");
    });
}

/// An entry fetched at `fetched` that expires at `expires`.
fn entry(category: Category, key: &str, fetched: i64, expires: i64) -> NewEntry {
    let project = (category == Category::Issue).then(|| key.split('-').next().unwrap().to_string());
    NewEntry {
        category,
        key: key.to_string(),
        value: format!(r#"{{"key":"{key}"}}"#),
        fetched_at: fetched,
        expires_at: expires,
        fetch_ms: 40,
        updated_at: project.as_ref().map(|_| fetched - 3 * HOUR),
        project,
    }
}

/// Entries of the three judged categories, all fresh until `expires`,
/// fetched at `fetched`.
fn fresh_metadata(fetched: i64, expires: i64) -> Vec<NewEntry> {
    vec![
        entry(Category::Project, "PROJ", fetched, expires),
        entry(Category::Project, "OPS", fetched, expires),
        entry(Category::Project, "list:projects", fetched, expires),
        entry(Category::Field, "summary", fetched, expires),
        entry(Category::Field, "status", fetched, expires),
        entry(Category::Field, "list:fields", fetched, expires),
        entry(Category::User, "5b10ac8d82e05b22cc7d4ef5", fetched, expires),
        entry(Category::User, "assignable:PROJ", fetched, expires),
    ]
}

/// Records a run that started at `started` and, unless `end` is `None`,
/// ended with that result `took` later.
async fn record_run(w: &CacheWriter, started: i64, end: Option<(RunResult, i64)>, errors: &[&str]) {
    let id = w
        .run_start(RunStart {
            started_at: started,
            pid: 4242,
            stages: vec![
                "projects".into(),
                "fields".into(),
                "users".into(),
                "issues".into(),
            ],
        })
        .await
        .unwrap();
    if let Some((result, took)) = end {
        w.run_finish(
            id,
            RunEnd {
                ended_at: started + took,
                result,
                requests: 120,
                retries: 3,
                throttled: 2,
                written: 40,
                unchanged: 70,
                removed: 1,
                errors: errors.iter().map(|e| e.to_string()).collect(),
                report_json: "{}".into(),
            },
        )
        .await
        .unwrap();
    }
}

/// A cache whose last successful warm ended `age` before NOW; its entries
/// are fresh unless they expired.
fn warmed_ago(sb: &Sandbox, age: i64) {
    write_cache(&sb.cache_path("test"), async |w| {
        let fetched = NOW - age;
        w.put_page(fresh_metadata(fetched, NOW + HOUR))
            .await
            .unwrap();
        record_run(w, fetched - 2 * MIN, Some((RunResult::Ok, 2 * MIN)), &[]).await;
    });
}

/// The cache of the snapshots: every section filled, runs of each kind.
fn typical_cache(sb: &Sandbox) {
    let path = sb.cache_path("test");
    write_cache(&path, async |w| {
        let fetched = NOW - 2 * HOUR;
        let mut page = fresh_metadata(fetched, fetched + 24 * HOUR);
        page.push(entry(
            Category::Field,
            "customfield_10010",
            fetched - 24 * HOUR,
            NOW - HOUR,
        ));
        for key in ["PROJ-1", "PROJ-2", "OPS-7"] {
            page.push(entry(Category::Issue, key, fetched, fetched + 5 * MIN));
        }
        page.push(entry(
            Category::Issue,
            "PROJ-3",
            NOW - 2 * MIN,
            NOW + 3 * MIN,
        ));
        w.put_page(page).await.unwrap();
        w.set_watermark("PROJ".into(), NOW - 5 * HOUR, fetched)
            .await
            .unwrap();
        w.set_watermark("OPS".into(), NOW - 30 * HOUR, fetched)
            .await
            .unwrap();
        record_run(
            w,
            NOW - 26 * HOUR - 5 * MIN,
            Some((RunResult::Ok, 95_000)),
            &[],
        )
        .await;
        record_run(
            w,
            fetched - 3 * MIN,
            Some((RunResult::Partial, 170_000)),
            &["users: 503 Service Unavailable after 4 retries; try again later or lower rate_limit"],
        )
        .await;
        record_run(w, NOW - 30 * MIN, None, &[]).await;
    });
    // Reads from this process: shown by the binary, another process.
    let mut reader = Cache::open_read_only(&path).unwrap();
    for _ in 0..3 {
        assert!(
            reader
                .get(Category::Project, "PROJ", NOW)
                .unwrap()
                .is_some()
        );
    }
    assert!(
        reader
            .get(Category::Field, "customfield_10010", NOW)
            .unwrap()
            .is_some()
    );
    assert!(
        reader
            .get(Category::Issue, "NOPE-1", NOW)
            .unwrap()
            .is_none()
    );
    drop(reader);
}

/// Output with the sandbox's temp path and the file size (which depends on
/// SQLite's page and WAL housekeeping) replaced by placeholders.
fn redact(sb: &Sandbox, text: &str) -> String {
    let tmp = sb.dir.path().display().to_string();
    let mut out = text.replace(&tmp, "[TMP]");
    while let Some(start) = out.find("; file ").map(|i| i + "; file ".len())
        && !out[start..].starts_with('[')
    {
        let end = start + out[start..].find(')').unwrap();
        out.replace_range(start..end, "[SIZE]");
    }
    out
}

/// Validates a `--json` object against the schema in the repository.
fn validate(json: &Value) -> Result<(), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/cache_status.schema.json");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.enable_format_assertions();
    let index = compiler
        .compile(path.to_str().unwrap(), &mut schemas)
        .map_err(|e| format!("the schema does not compile: {e:#}"))?;
    schemas.validate(json, index).map_err(|e| format!("{e:#}"))
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {}", text(out)))
}

fn category<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["categories"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["category"] == name))
        .unwrap_or_else(|| panic!("no category {name} in {status}"))
}

// ---- reads counted across processes, and --get ---------------------------

#[test]
fn hit_and_miss_counts_written_by_one_process_are_shown_by_another() {
    let sb = sandbox("");
    warmed_ago(&sb, HOUR);
    write_cache(&sb.cache_path("test"), async |w| {
        w.put_page(vec![entry(
            Category::Field,
            "customfield_1",
            NOW - 3 * HOUR,
            NOW - HOUR,
        )])
        .await
        .unwrap();
    });
    // Each --get is its own process.
    let get = |category: &str, key: &str, code: i32| {
        run_code(
            &mut sb.status(&["--profile", "test", "--get", category, key]),
            code,
        )
    };
    let fresh = get("project", "PROJ", 0);
    assert_eq!(stdout(&fresh).trim(), r#"{"key":"PROJ"}"#);
    get("project", "PROJ", 0);
    let stale = get("field", "customfield_1", 10);
    assert_eq!(stdout(&stale).trim(), r#"{"key":"customfield_1"}"#);
    let miss = get("issue", "PROJ-404", 11);
    assert_eq!(stdout(&miss), "", "a miss prints nothing");
    // And this process, through the library.
    let mut reader = Cache::open_read_only(sb.cache_path("test")).unwrap();
    reader.get(Category::User, "nobody", NOW).unwrap();
    drop(reader);

    let status = sb.status_json();
    let project = category(&status, "project");
    // --get reads are counted apart, and not in the hit rate.
    assert_eq!(project["reads_by_source"]["get"]["hits"], 2);
    assert_eq!(
        (project["hits"].as_u64(), project["hit_rate"].is_null()),
        (Some(0), true)
    );
    let field = category(&status, "field");
    assert_eq!(field["reads_by_source"]["get"]["stale_hits"], 1);
    assert_eq!(
        category(&status, "issue")["reads_by_source"]["get"]["misses"],
        1
    );
    // The library's read counts in the hit rate.
    let user = category(&status, "user");
    assert_eq!(
        (user["misses"].as_u64(), user["hit_rate"].as_f64()),
        (Some(1), Some(0.0))
    );
    assert_eq!(user["reads_by_source"]["library"]["misses"], 1);
    // Showing the status is not a read.
    assert_eq!(
        category(&sb.status_json(), "project")["reads_by_source"]["get"]["hits"],
        2
    );
}

#[test]
fn misses_while_exploring_with_get_do_not_turn_the_check_to_warning() {
    let sb = sandbox("");
    warmed_ago(&sb, HOUR);
    for key in ["NOPE-1", "NOPE-2", "NOPE-3"] {
        run_code(
            &mut sb.status(&["--profile", "test", "--get", "issue", key]),
            11,
        );
    }
    let line = check(&sb, &["--warn-hit-rate", "90%"], 0);
    assert!(!line.contains("hit rate"), "{line}");
}

#[test]
fn get_without_a_cache_is_a_miss_and_an_unknown_category_a_usage_error() {
    let sb = sandbox("");
    run_code(
        &mut sb.status(&["--profile", "test", "--get", "issue", "PROJ-1"]),
        11,
    );
    assert!(
        !sb.cache_path("test").exists(),
        "--get must not create the cache"
    );
    let out = run_code(
        &mut sb.status(&["--profile", "test", "--get", "issues", "PROJ-1"]),
        2,
    );
    assert!(
        stderr(&out).contains("unknown category `issues`"),
        "{}",
        text(&out)
    );
}

// ---- --check --------------------------------------------------------------

fn check(sb: &Sandbox, args: &[&str], code: i32) -> String {
    let mut all = vec!["--profile", "test", "--check"];
    all.extend_from_slice(args);
    let out = run_code(&mut sb.status(&all), code);
    let line = stdout(&out);
    assert_eq!(
        line.lines().count(),
        1,
        "--check prints one line: {}",
        text(&out)
    );
    line.trim_end().to_string()
}

#[test]
fn check_is_ok_after_a_recent_successful_warm() {
    let sb = sandbox("");
    warmed_ago(&sb, HOUR);
    let line = check(&sb, &[], 0);
    assert!(
        line.starts_with(
            "JIRA-CACHE OK - test: last warm 60 min ago, none expired | age=3600s;93600;180000;0 "
        ),
        "{line}"
    );
}

#[test]
fn check_warns_when_the_last_successful_warm_is_older_than_warn_age() {
    let sb = sandbox("");
    warmed_ago(&sb, 27 * HOUR);
    let line = check(&sb, &[], 1);
    assert!(
        line.starts_with(
            "JIRA-CACHE WARNING - test: last warm 27 h ago (warn 26 h) | age=97200s;93600;180000;0 expired_project=0%;50;90;0;100"
        ),
        "{line}"
    );
}

#[test]
fn check_is_critical_past_crit_age_or_when_most_entries_expired() {
    let sb = sandbox("");
    warmed_ago(&sb, 51 * HOUR);
    let line = check(&sb, &[], 2);
    assert!(line.contains("last warm 51 h ago (crit 50 h)"), "{line}");

    let sb = sandbox("");
    warmed_ago(&sb, HOUR);
    write_cache(&sb.cache_path("test"), async |w| {
        let expired: Vec<NewEntry> = (0..30)
            .map(|i| {
                entry(
                    Category::Field,
                    &format!("customfield_{i}"),
                    NOW - 2 * HOUR,
                    NOW - HOUR,
                )
            })
            .collect();
        w.put_page(expired).await.unwrap();
    });
    let line = check(&sb, &[], 2);
    assert!(
        line.contains("test: field 90.9% expired (crit 90%)"),
        "{line}"
    );
}

#[test]
fn check_is_critical_for_a_profile_never_warmed() {
    let sb = sandbox("");
    let line = check(&sb, &[], 2);
    assert!(
        line.starts_with(
            "JIRA-CACHE CRITICAL - test: no cache yet; run `cache_warm --all --profile test`"
        ),
        "{line}"
    );
}

#[test]
fn check_thresholds_come_from_the_profile_and_flags_override_them() {
    let sb = sandbox("[profiles.test.check]\nwarn_age = \"12h\"\ncrit_age = \"30h\"");
    warmed_ago(&sb, 13 * HOUR);
    assert!(check(&sb, &[], 1).contains("(warn 12 h)"));
    check(&sb, &["--warn-age", "14h"], 0);
    check(&sb, &["--warn-age", "6h", "--crit-age", "12h"], 2);
}

#[test]
fn check_warns_on_a_low_hit_rate_only_once_there_have_been_reads() {
    let sb = sandbox("");
    warmed_ago(&sb, HOUR);
    check(&sb, &["--warn-hit-rate", "90%"], 0);
    let mut reader = Cache::open_read_only(sb.cache_path("test")).unwrap();
    reader.get(Category::Project, "PROJ", NOW).unwrap();
    reader.get(Category::Issue, "PROJ-1", NOW).unwrap();
    drop(reader);
    let line = check(&sb, &["--warn-hit-rate", "90%"], 1);
    assert!(
        line.contains("hit rate 50% of 2 reads (warn below 90%)"),
        "{line}"
    );
}

#[test]
fn check_says_unknown_with_exit_3_for_any_error_usage_errors_included() {
    let sb = sandbox("");
    warmed_ago(&sb, HOUR);
    for args in [
        vec!["--bogus"],
        vec!["--warn-age", "5x"],
        vec!["--warn-expired", "40"],
        vec!["--crit-age", "1h"],
        vec!["--json"],
    ] {
        let line = check(&sb, &args, 3);
        assert!(
            line.starts_with("JIRA-CACHE UNKNOWN - "),
            "{args:?}: {line}"
        );
    }
    let out = run_code(&mut sb.status(&["--check", "--profile", "nope"]), 3);
    assert!(
        stdout(&out).starts_with("JIRA-CACHE UNKNOWN - no profile `nope`"),
        "{}",
        text(&out)
    );
    sb.profiles("[profiles.test]\nurl = \"https://example.atlassian.net\"\nrate_limt = 5\n");
    let line = check(&sb, &[], 3);
    assert!(line.contains("rate_limt"), "{line}");
    // Without --check the same usage error keeps the contract's code 2.
    run_code(&mut sb.status(&["--bogus"]), 2);
}

// ---- runs -----------------------------------------------------------------

#[test]
fn a_run_whose_process_died_shows_as_abandoned_and_a_live_one_as_running() {
    let sb = sandbox("");
    write_cache(&sb.cache_path("test"), async |w| {
        record_run(w, NOW - 3 * HOUR, None, &[]).await;
        record_run(w, NOW - 2 * MIN, None, &[]).await;
    });
    let runs = sb.status_json()["runs"].clone();
    assert_eq!(
        (runs[0]["result"].as_str(), runs[1]["result"].as_str()),
        (Some("abandoned"), Some("abandoned"))
    );
    assert_eq!(runs[0]["ended"], Value::Null);

    std::fs::create_dir_all(sb.cache_dir()).unwrap();
    let _lock = WarmLock::acquire(&sb.cache_dir().join("test.lock")).unwrap();
    let runs = sb.status_json()["runs"].clone();
    assert_eq!(
        runs[0]["result"], "running",
        "the newest run holds the lock"
    );
    assert_eq!(runs[1]["result"], "abandoned", "an older one cannot");
}

#[test]
fn runs_shows_as_many_runs_as_asked_newest_first() {
    let sb = sandbox("");
    write_cache(&sb.cache_path("test"), async |w| {
        for i in 0..7 {
            record_run(w, NOW - (10 - i) * HOUR, Some((RunResult::Ok, MIN)), &[]).await;
        }
    });
    assert_eq!(sb.status_json()["runs"].as_array().unwrap().len(), 5);
    let out = run_ok(&mut sb.status(&["--profile", "test", "--json", "--runs", "2"]));
    let runs = json_of(&out)["runs"].clone();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(runs[0]["id"], 7);
    assert_eq!(runs[0]["throttled"], 2);
}

// ---- --json and its schema ------------------------------------------------

#[test]
fn json_of_a_real_warm_matches_the_schema_with_projects_and_watermarks() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "");
    run_ok(&mut sb.warm(&["--profile", "test", "--all"]));
    run_code(
        &mut sb.status(&["--profile", "test", "--get", "issue", "NOPE-1"]),
        11,
    );
    let status = sb.status_json();
    validate(&status).unwrap_or_else(|e| panic!("{e}\n{status:#}"));
    let projects = status["projects"].as_array().unwrap();
    assert!(!projects.is_empty(), "{status:#}");
    let issues: u64 = projects.iter().map(|p| p["issues"].as_u64().unwrap()).sum();
    assert_eq!(issues, entries(&status, "issue"));
    assert!(
        projects.iter().all(|p| p["watermark"].is_string()),
        "{status:#}"
    );
    assert!(status["last_success"].is_string());
    assert_eq!(status["runs"][0]["result"], "ok");
}

#[test]
fn json_of_prepared_caches_and_of_no_cache_matches_the_schema() {
    let sb = sandbox("");
    let none = sb.status_json();
    validate(&none).unwrap_or_else(|e| panic!("{e}\n{none:#}"));
    assert_eq!(none["exists"], false);
    assert_eq!(none["generated_at"], NOW_TEXT);

    typical_cache(&sb);
    let typical = sb.status_json();
    validate(&typical).unwrap_or_else(|e| panic!("{e}\n{typical:#}"));
    assert_eq!(typical["runs"][0]["result"], "abandoned");
    assert_eq!(typical["runs"][1]["errors"].as_array().unwrap().len(), 1);
    assert_eq!(typical["last_success"], "2025-11-25T03:56:35Z");
    assert_eq!(
        category(&typical, "field")["next_expiry"],
        "2025-11-27T04:00:00Z"
    );
}

#[test]
fn the_schema_rejects_what_the_binary_must_not_print() {
    let sb = sandbox("");
    typical_cache(&sb);
    let good = sb.status_json();
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("projects");
    assert!(validate(&missing).is_err());
    let mut extra = good.clone();
    extra["categories"][0]["surprise"] = 1.into();
    assert!(validate(&extra).is_err());
    let mut bad_result = good;
    bad_result["runs"][0]["result"] = "exploded".into();
    assert!(validate(&bad_result).is_err());
}

#[test]
fn all_profiles_json_has_one_entry_per_profile_and_matches_the_schema() {
    let sb = sandbox("");
    typical_cache(&sb);
    sb.profiles(
        "[profiles.test]\nurl = \"https://example.atlassian.net\"\ndeployment = \"cloud\"\nemail = \"bot@example.com\"\n\
         [profiles.broken]\nurl = \"https://example.atlassian.net\"\nemail = \"bot@example.com\"\nrate_limit = 0\n\
         [profiles.spare]\nurl = \"https://spare.atlassian.net\"\nemail = \"bot@example.com\"\n",
    );
    let out = run_code(&mut sb.status(&["--all-profiles", "--json"]), 3);
    let all = json_of(&out);
    validate(&all).unwrap_or_else(|e| panic!("{e}\n{all:#}"));
    let health: Vec<(&str, &str)> = all["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["profile"].as_str().unwrap(),
                p["health"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        health,
        [
            ("broken", "UNKNOWN"),
            ("spare", "CRITICAL"),
            ("test", "WARNING")
        ]
    );
    assert!(
        all["profiles"][0]["error"]
            .as_str()
            .unwrap()
            .contains("rate_limit")
    );
}

// ---- human output, pinned by snapshots -------------------------------------

#[test]
fn the_human_status_of_a_typical_cache_reads_as_pinned() {
    let sb = sandbox("");
    typical_cache(&sb);
    let out = run_ok(&mut sb.status(&["--profile", "test"]));
    assert!(!stdout(&out).contains('\x1b'), "no colour off a terminal");
    insta::assert_snapshot!("typical_cache", redact(&sb, &stdout(&out)));
}

#[test]
fn the_human_status_fits_80_columns_and_opens_with_the_verdict() {
    let sb = sandbox("");
    typical_cache(&sb);
    let out = stdout(&run_ok(&mut sb.status(&["--profile", "test"])));
    for line in out.lines().filter(|l| !l.starts_with("Cache ")) {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    let first = out.lines().next().unwrap();
    assert!(first.starts_with("WARNING: last warm 26 h"), "{first}");
    assert!(
        out.contains("5 min / 1 h"),
        "issue_recent / issue_old:\n{out}"
    );
    // To the second: two runs a few seconds apart do not look the same.
    assert!(out.contains("2025-11-26 03:57:00"), "{out}");
}

#[test]
fn a_wide_terminal_gets_every_column_in_one_table() {
    let mut sb = sandbox("");
    sb.set_env("COLUMNS", "200");
    typical_cache(&sb);
    let out = run_ok(&mut sb.status(&["--profile", "test"]));
    insta::assert_snapshot!("typical_cache_wide", redact(&sb, &stdout(&out)));
}

#[test]
fn runs_0_shows_no_run_history_and_does_not_claim_there_is_none() {
    let sb = sandbox("");
    typical_cache(&sb);
    let out = stdout(&run_ok(&mut sb.status(&[
        "--profile",
        "test",
        "--runs",
        "0",
    ])));
    assert!(!out.contains("No warm runs recorded yet"), "{out}");
    assert!(!out.contains("LAST RUNS"), "{out}");
    // The verdict still judges the runs it does not list.
    assert!(out.contains("last run abandoned"), "{out}");
}

#[test]
fn prometheus_output_parses_with_conventional_names_and_the_cache_figures() {
    let sb = sandbox("");
    typical_cache(&sb);
    let out = stdout(&run_ok(&mut sb.status(&[
        "--profile",
        "test",
        "--prometheus",
    ])));
    let scrape = prometheus_parse::Scrape::parse(out.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text format");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{out}"));
        match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a plain value"),
        }
    };
    for s in &scrape.samples {
        assert!(s.metric.starts_with("jira_cache_"), "{}", s.metric);
        assert_eq!(s.labels.get("profile"), Some("test"), "{}", s.metric);
        let counter = matches!(s.value, prometheus_parse::Value::Counter(_));
        assert_eq!(counter, s.metric.ends_with("_total"), "{}", s.metric);
    }
    let status = sb.status_json();
    for c in ["project", "field", "user", "issue"] {
        let figures = category(&status, c);
        let of = |field: &str| figures[field].as_u64().unwrap() as f64;
        assert_eq!(
            value("jira_cache_entries", &[("category", c)]),
            of("entries")
        );
        assert_eq!(
            value("jira_cache_fresh_entries", &[("category", c)]),
            of("fresh")
        );
        assert_eq!(
            value("jira_cache_expired_entries", &[("category", c)]),
            of("expired")
        );
        assert_eq!(
            value("jira_cache_entry_bytes", &[("category", c)]),
            of("bytes")
        );
    }
    assert_eq!(
        value("jira_cache_expired_entries", &[("category", "field")]),
        1.0
    );
    assert_eq!(
        value("jira_cache_hit_ratio", &[("category", "project")]),
        1.0
    );
    assert_eq!(
        value(
            "jira_cache_reads_total",
            &[
                ("category", "project"),
                ("source", "library"),
                ("outcome", "hit")
            ]
        ),
        3.0
    );
    let ended =
        jira_cache::status::parse_rfc3339(status["last_success"].as_str().unwrap()).unwrap();
    assert_eq!(
        value("jira_cache_last_success_age_seconds", &[]),
        (NOW - ended) as f64 / 1000.0
    );
    // The newest run was abandoned: it has a result but no figures.
    assert_eq!(
        value("jira_cache_last_run_result", &[("result", "abandoned")]),
        1.0
    );
    assert_eq!(
        value("jira_cache_last_run_result", &[("result", "ok")]),
        0.0
    );
    assert!(!out.contains("jira_cache_last_run_requests"), "{out}");
}

#[test]
fn prometheus_output_of_a_finished_run_has_its_duration_requests_and_429s() {
    let sb = sandbox("");
    warmed_ago(&sb, HOUR);
    let out = stdout(&run_ok(&mut sb.status(&[
        "--profile",
        "test",
        "--prometheus",
    ])));
    let scrape = prometheus_parse::Scrape::parse(out.lines().map(|l| Ok(l.to_string()))).unwrap();
    let gauge = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) => v,
                _ => panic!("{name} is not a gauge"),
            })
            .unwrap_or_else(|| panic!("no {name} in\n{out}"))
    };
    let run = &sb.status_json()["runs"][0];
    assert_eq!(
        gauge("jira_cache_last_run_duration_seconds"),
        run["seconds"].as_f64().unwrap()
    );
    assert_eq!(
        gauge("jira_cache_last_run_requests"),
        run["requests"].as_f64().unwrap()
    );
    assert_eq!(
        gauge("jira_cache_last_run_throttled_responses"),
        run["throttled"].as_f64().unwrap()
    );
    assert_eq!(gauge("jira_cache_last_success_age_seconds"), 3600.0);
}

#[test]
fn the_human_status_of_a_profile_never_warmed_says_how_to_warm_it() {
    let sb = sandbox("");
    let out = run_ok(&mut sb.status(&["--profile", "test"]));
    insta::assert_snapshot!("never_warmed", redact(&sb, &stdout(&out)));
}

#[test]
fn the_check_line_of_a_typical_cache_reads_as_pinned() {
    let sb = sandbox("");
    typical_cache(&sb);
    insta::assert_snapshot!("typical_check", check(&sb, &[], 1));
}

#[test]
fn all_profiles_prints_one_line_per_profile_as_pinned() {
    let sb = sandbox("");
    typical_cache(&sb);
    sb.profiles(
        "default = \"test\"\n\
         [profiles.test]\nurl = \"https://example.atlassian.net\"\ndeployment = \"cloud\"\nemail = \"bot@example.com\"\n\
         [profiles.broken]\nurl = \"https://example.atlassian.net\"\nemail = \"bot@example.com\"\nrate_limit = 0\n\
         [profiles.spare]\nurl = \"https://spare.atlassian.net\"\nemail = \"bot@example.com\"\n",
    );
    let out = run_code(&mut sb.status(&["--all-profiles"]), 3);
    insta::assert_snapshot!("all_profiles", redact(&sb, &stdout(&out)));
}

#[test]
fn json_of_a_corrupt_cache_is_one_error_object_the_schema_describes() {
    let sb = sandbox("");
    let path = sb.cache_path("test");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"not a database, not at all, no pages here.........").unwrap();
    let out = run_code(&mut sb.status(&["--json", "--profile", "test"]), 7);
    let json = json_of(&out);
    assert_eq!(
        (&json["result"], &json["exit_code"]),
        (&Value::from("error"), &Value::from(7))
    );
    validate(&json).unwrap();
    // The human line on stderr is the same one.
    assert!(
        stderr(&out).contains(json["error"].as_str().unwrap()),
        "{}",
        text(&out)
    );
}

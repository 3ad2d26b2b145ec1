//! PostgreSQL as the shared store, through the real binaries (issue 18):
//! several `HOME`s play several machines sharing one database.
//!
//! Each test starts its own PostgreSQL (`common::pg`) and fake Jira on ports
//! the OS picked. Without the server binaries the tests skip with a message
//! (under `CI=true` they fail).

mod common;

use std::time::{Duration, Instant};

use common::pg::{PASSWORD, PgServer};
use common::served::Served;
use common::{Sandbox, run_code, run_ok, stderr, stdout, text};
use fake_jira::{FakeJira, Fault, FaultKind, Flavor, Site, SiteSize};

fn site() -> Site {
    Site::generated(
        Flavor::Cloud,
        SiteSize {
            projects: 12,
            users: 30,
            issues_per_project: 6,
            ..Default::default()
        },
    )
}

/// A machine: its own HOME, a profile `test` for the site, its cache in the
/// database (`cache_url` + `cache_password_env`).
fn machine(fake: &FakeJira, server: &PgServer, db: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.profile_for(
        fake,
        Flavor::Cloud,
        &format!(
            "deployment = \"cloud\"\ncache_url = \"{}\"\ncache_password_env = \"TEST_PG_PASSWORD\"",
            server.url(db)
        ),
    );
    sb.set_env("TEST_PG_PASSWORD", PASSWORD);
    sb
}

/// Waits until `done` holds (a failure guard of 60 s, not a timing
/// assumption).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn entries(sb: &Sandbox) -> serde_json::Value {
    let status = sb.status_json();
    serde_json::json!({
        "project": common::entries(&status, "project"),
        "field": common::entries(&status, "field"),
        "user": common::entries(&status, "user"),
        "issue": common::entries(&status, "issue"),
    })
}

#[test]
fn two_machines_share_one_warm_a_kill_9_frees_the_lock_and_a_third_sees_the_same() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let db = server.create_database();
    let fake = FakeJira::builder(Flavor::Cloud).site(site()).start();
    let a = machine(&fake, &server, &db);
    let b = machine(&fake, &server, &db);
    let c = machine(&fake, &server, &db);
    // No SQLite file anywhere: the cache is the database.
    run_ok(&mut a.warm(&["--projects", "--profile", "test"]));
    assert!(!a.cache_path("test").exists());

    // Machine A warms and stalls on the site, holding the lock.
    fake.faults()
        .add(Fault::new("/rest/api/3/field", FaultKind::Hang));
    let mut holder = a
        .warm_std(&["--fields", "--profile", "test"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("A's warm to reach the site", || {
        fake.count_path("/rest/api/3/field") >= 1
    });

    // Machine B is refused with A's host, pid and start time.
    let out = run_code(&mut b.warm(&["--fields", "--profile", "test"]), 5);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("pid {} on ", holder.id())) && err.contains(" since "),
        "{}",
        text(&out)
    );

    // A third machine sees the warm running, and --wait says whom it waits for.
    assert_eq!(c.status_json()["runs"][0]["result"], "running");
    let out = run_code(
        &mut b.warm(&["--fields", "--wait=1s", "--profile", "test"]),
        5,
    );
    assert!(
        stderr(&out).contains(&format!(
            "waiting for the warm that holds its lock (pid {} on ",
            holder.id()
        )),
        "{}",
        text(&out)
    );

    // kill -9: the server drops A's connection and with it the lock.
    holder.kill().unwrap();
    holder.wait().unwrap();
    wait_until("the server to notice A is gone", || {
        c.status_json()["runs"][0]["result"] == "abandoned"
    });
    fake.faults().clear();
    run_ok(&mut b.warm(&["--all", "--profile", "test"]));

    // A third machine sees what B warmed: the same figures as a warm of
    // the same site into a SQLite file.
    let seen = entries(&c);
    assert_eq!(seen, entries(&b));
    let mut local = Sandbox::new();
    local.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    run_ok(&mut local.warm(&["--all", "--profile", "test"]));
    assert_eq!(seen, entries(&local), "PostgreSQL and SQLite hold the same");
    assert_eq!(seen["project"], 13, "12 projects and their list: {seen}");
    assert!(seen["issue"].as_u64().unwrap() > 0, "{seen}");
    let runs = c.status_json()["runs"].clone();
    assert!(
        runs.as_array().unwrap().iter().any(|r| r["result"] == "ok"),
        "{runs}"
    );
}

#[test]
fn every_status_form_and_maintenance_command_works_on_postgres() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let db = server.create_database();
    let fake = FakeJira::builder(Flavor::Cloud).site(site()).start();
    let sb = machine(&fake, &server, &db);
    run_ok(&mut sb.warm(&["--all", "--profile", "test"]));

    let table = run_ok(&mut sb.status(&["--profile", "test"]));
    assert!(stdout(&table).contains("project"), "{}", text(&table));
    assert!(
        !stdout(&table).contains(PASSWORD) && !stderr(&table).contains(PASSWORD),
        "{}",
        text(&table)
    );
    run_ok(&mut sb.status(&["--profile", "test", "--check"]));
    let got = run_ok(&mut sb.status(&["--profile", "test", "--get", "project", "AAB"]));
    assert!(stdout(&got).contains("\"AAB\""), "{}", text(&got));
    run_code(
        &mut sb.status(&["--profile", "test", "--get", "project", "NOPE"]),
        11,
    );
    let keys = run_ok(&mut sb.status(&["--profile", "test", "--keys", "project"]));
    assert_eq!(stdout(&keys).lines().count(), 13, "{}", text(&keys));
    let prom = run_ok(&mut sb.status(&["--profile", "test", "--prometheus"]));
    assert!(
        stdout(&prom).contains("jira_cache_entries"),
        "{}",
        text(&prom)
    );

    // --only-stale: nothing is stale, so nothing is fetched.
    let before = fake.count_path("/rest/api/3/");
    run_ok(&mut sb.warm(&["--projects", "--only-stale", "--profile", "test"]));
    assert!(fake.count_path("/rest/api/3/") - before <= 2);

    // --clear, --prune, --reset.
    run_ok(&mut sb.warm(&["--clear", "issue", "--profile", "test"]));
    assert_eq!(entries(&sb)["issue"], 0);
    assert_eq!(entries(&sb)["project"], 13);
    run_ok(&mut sb.warm(&["--prune", "--profile", "test"]));
    run_ok(&mut sb.warm(&["--reset", "--projects", "--profile", "test"]));
    let after = entries(&sb);
    assert_eq!(
        (after["project"].as_u64(), after["field"].as_u64()),
        (Some(13), Some(0))
    );
}

#[test]
fn a_database_restart_mid_warm_loses_nothing_that_was_committed() {
    let Some(mut server) = PgServer::start() else {
        return;
    };
    let db = server.create_database();
    let fake = FakeJira::builder(Flavor::Cloud).site(site()).start();
    let sb = machine(&fake, &server, &db);
    run_ok(&mut sb.warm(&["--projects", "--fields", "--profile", "test"]));
    let committed = entries(&sb);

    // A warm stalls on the site; the database restarts under it.
    fake.faults()
        .add(Fault::new("/rest/api/3/users/search", FaultKind::Hang).once());
    let warm = sb
        .warm_std(&["--users", "--profile", "test"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the warm to reach the users stage", || {
        fake.count_path("/rest/api/3/users/search") >= 1
    });
    server.restart();
    let out = warm.wait_with_output().unwrap();
    // The write that found the connection gone failed cleanly, and the run
    // says so in one line that names the database: exit 7, no backtrace.
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot reach the database"), "{}", text(&out));
    assert_eq!(err.trim().lines().count(), 1, "{}", text(&out));
    assert!(!err.contains(PASSWORD), "{}", text(&out));
    // What was committed before is all there, and the next warm succeeds.
    let after = entries(&sb);
    assert_eq!(after["project"], committed["project"]);
    assert_eq!(after["field"], committed["field"]);
    run_ok(&mut sb.warm(&["--users", "--profile", "test"]));
    // 30 users and the 12 projects' assignable lists.
    assert_eq!(entries(&sb)["user"], 42);
}

#[test]
fn a_wrong_password_an_unreachable_server_and_a_missing_database_are_one_line_each() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let fake = FakeJira::builder(Flavor::Cloud).site(site()).start();

    let mut wrong = machine(&fake, &server, "postgres");
    wrong.set_env("TEST_PG_PASSWORD", "not-it-at-all");
    let out = run_code(&mut wrong.warm(&["--projects", "--profile", "test"]), 3);
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("password") && !err.contains("not-it-at-all"),
        "{err}"
    );

    let missing = machine(&fake, &server, "no_such_database");
    let out = run_code(&mut missing.warm(&["--projects", "--profile", "test"]), 3);
    assert!(stderr(&out).contains("createdb"), "{}", text(&out));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut gone = machine(&fake, &server, "postgres");
    gone.set_env(
        "JIRA_CACHE_URL",
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
    );
    let out = run_code(&mut gone.warm(&["--projects", "--profile", "test"]), 7);
    assert!(
        stderr(&out).contains("cannot reach the database"),
        "{}",
        text(&out)
    );
    let out = run_code(&mut gone.status(&["--profile", "test", "--check"]), 3);
    assert!(
        stdout(&out).contains("UNKNOWN") || stderr(&out).contains("database"),
        "{}",
        text(&out)
    );

    // A password in the URL is refused before anything connects.
    let mut inline = Sandbox::new();
    inline.profile_for(
        &fake,
        Flavor::Cloud,
        &format!(
            "cache_url = \"postgres://postgres:{PASSWORD}@127.0.0.1:{}/postgres\"",
            server.port()
        ),
    );
    let out = run_code(&mut inline.warm(&["--projects", "--profile", "test"]), 3);
    assert!(
        stderr(&out).contains("cache_password_env"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains(PASSWORD), "{}", text(&out));
}

#[test]
fn copy_to_moves_a_sqlite_cache_into_postgres_with_its_times() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let db = server.create_database();
    let fake = FakeJira::builder(Flavor::Cloud).site(site()).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    sb.set_env("PGPASSWORD", PASSWORD);
    run_ok(&mut sb.warm(&["--all", "--profile", "test"]));
    let local = sb.status_json();

    // Alone: with stages it would copy and ignore them, so clap refuses it.
    run_code(
        &mut sb.warm(&["--copy-to", &server.url(&db), "--all", "--profile", "test"]),
        2,
    );
    let out = run_ok(&mut sb.warm(&["--copy-to", &server.url(&db), "--profile", "test"]));
    assert!(stdout(&out).starts_with("Copied "), "{}", text(&out));
    assert!(!text(&out).contains(PASSWORD), "{}", text(&out));

    // The same profile, now pointed at the database, sees the same cache:
    // entries, their times, and the run history.
    let shared = machine(&fake, &server, &db);
    let copied = shared.status_json();
    for category in ["project", "field", "user", "issue"] {
        let find = |s: &serde_json::Value| {
            s["categories"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["category"] == category)
                .cloned()
                .unwrap()
        };
        let (a, b) = (find(&local), find(&copied));
        for figure in [
            "entries",
            "fresh",
            "expired",
            "bytes",
            "oldest_fetch",
            "newest_fetch",
        ] {
            assert_eq!(a[figure], b[figure], "{category} {figure}: {a} vs {b}");
        }
    }
    assert_eq!(local["runs"][0]["requests"], copied["runs"][0]["requests"]);
    let a = run_ok(&mut sb.status(&["--profile", "test", "--get", "project", "AAB"]));
    let b = run_ok(&mut shared.status(&["--profile", "test", "--get", "project", "AAB"]));
    assert_eq!(stdout(&a), stdout(&b));
    // A re-warm on the database changes nothing that was copied.
    run_ok(&mut shared.warm(&["--projects", "--profile", "test"]));
    assert_eq!(entries(&shared), entries(&sb));
}

/// Two `cache_serve` processes on two machines share the database: 200
/// clients spread over both, asking one key nobody cached, make one
/// upstream request (the lease is in the database), and the answer is then
/// served by either with the site down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cache_serves_on_one_database_make_one_upstream_request_for_one_key() {
    use base64::Engine as _;
    let Some(server) = PgServer::start() else {
        return;
    };
    let db = server.create_database();
    let fake = FakeJira::builder(Flavor::Cloud)
        .site(site())
        .latency(Duration::from_millis(200))
        .start();
    let a = machine(&fake, &server, &db);
    let b = machine(&fake, &server, &db);
    let (sa, sb) = (Served::start(&a, &[]), Served::start(&b, &[]));
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            common::CLOUD_EMAIL,
            common::CLOUD_TOKEN
        ))
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let get = |base: &str| {
        http.get(format!("{base}/rest/api/3/field"))
            .header("Authorization", &auth)
            .send()
    };
    let answers = futures::future::join_all(
        (0..200).map(|i| get(if i % 2 == 0 { &sa.url } else { &sb.url })),
    )
    .await;
    let mut bodies = Vec::new();
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), 200);
        bodies.push(answer.text().await.unwrap());
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]));
    assert_eq!(fake.count_path("/rest/api/3/field"), 1);

    // The site goes away: both still answer, from the shared cache.
    drop(fake);
    for served in [&sa, &sb] {
        let answer = get(&served.url).await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer
                .headers()
                .get("x-cache")
                .and_then(|v| v.to_str().ok()),
            Some("HIT")
        );
        assert_eq!(answer.text().await.unwrap(), bodies[0]);
    }
}

/// TLS as libpq users expect from `sslmode`: `require` (and libpq's
/// `verify-full`) insist on it and check the certificate against the system's
/// CAs and the profile's `ca_file`; a server certificate nobody vouches for
/// is refused with a line that says to set `ca_file`.
#[test]
fn sslmode_require_talks_tls_and_checks_the_certificate() {
    let Some((server, ca)) = PgServer::start_tls() else {
        return;
    };
    let fake = FakeJira::builder(Flavor::Cloud).site(site()).start();
    let profile = |extra: &str| {
        let mut sb = Sandbox::new();
        sb.profile_for(
            &fake,
            Flavor::Cloud,
            &format!(
                "deployment = \"cloud\"\ncache_url = \"{}?sslmode=require\"\ncache_password_env = \"TEST_PG_PASSWORD\"\n{extra}",
                server.url("postgres")
            ),
        );
        sb.set_env("TEST_PG_PASSWORD", PASSWORD);
        sb
    };
    let trusted = profile(&format!("ca_file = \"{}\"", ca.display()));
    run_ok(&mut trusted.warm(&["--projects", "--profile", "test"]));
    assert_eq!(entries(&trusted)["project"], 13);

    let untrusted = profile("");
    let out = run_code(&mut untrusted.warm(&["--projects", "--profile", "test"]), 3);
    let err = stderr(&out);
    assert!(
        err.contains("certificate") && err.contains("ca_file"),
        "{}",
        text(&out)
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // The server takes TLS only: a profile that turns it off is refused.
    let mut plain = Sandbox::new();
    plain.profile_for(
        &fake,
        Flavor::Cloud,
        &format!(
            "cache_url = \"{}?sslmode=disable\"\ncache_password_env = \"TEST_PG_PASSWORD\"",
            server.url("postgres")
        ),
    );
    plain.set_env("TEST_PG_PASSWORD", PASSWORD);
    let out = run_code(&mut plain.warm(&["--projects", "--profile", "test"]), 3);
    assert!(stderr(&out).contains("database refused"), "{}", text(&out));
}

//! Issue 7: running it for real, through the real binary: exit codes, cron
//! output, quiet hours, staged and partial warms, dry runs, progress, JSON.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fake_jira::{FakeJira, Flavor, Site, SiteSize};

fn cloud() -> (FakeJira, Sandbox) {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    (fake, sb)
}

#[test]
fn quiet_prints_nothing_at_all_on_success() {
    let (_fake, sb) = cloud();
    let out = run_ok(&mut sb.warm(&["--all", "--quiet", "--profile", "test"]));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        text(&out)
    );
}

#[test]
fn quiet_prints_a_short_summary_on_stderr_on_failure() {
    let (fake, sb) = cloud();
    fake.faults().add(fake_jira::Fault::new(
        "/rest/api/3/field",
        fake_jira::FaultKind::status(500),
    ));
    let out = run_code(&mut sb.warm(&["--all", "--quiet", "--profile", "test"]), 4);
    assert!(out.stdout.is_empty(), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("partial") && err.contains("HTTP 500"), "{err}");
    assert!(err.lines().count() <= 4, "short: {err}");
}

#[test]
fn an_unreachable_site_exits_1_and_says_what_to_check() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sb = Sandbox::new();
    sb.profiles(&format!(
        "[profiles.test]\nurl = \"http://127.0.0.1:{port}\"\ndeployment = \"cloud\"\nemail = \"a@b.c\"\ntimeout = \"2s\"\n"
    ));
    sb.set_env("JIRA_API_TOKEN", "x");
    let out = run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 1);
    assert!(stderr(&out).contains("cannot connect"), "{}", text(&out));
    assert!(
        stderr(&out).contains("check the profile's `url`"),
        "{}",
        text(&out)
    );
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    let sb = Sandbox::new();
    let out = run_code(&mut sb.warm(&[]), 2);
    assert!(stderr(&out).contains("nothing to warm"), "{}", text(&out));
    let out = run_code(&mut sb.warm(&["--projects", "--project", "proj"]), 2);
    assert!(
        stderr(&out).contains("is not a project key"),
        "{}",
        text(&out)
    );
    let out = run_code(&mut sb.warm(&["--clear", "bogus"]), 2);
    assert!(
        stderr(&out).contains("possible values: project, field, user, issue"),
        "{}",
        text(&out)
    );
}

#[test]
fn help_lists_the_exit_codes() {
    let sb = Sandbox::new();
    let warm = stdout(&run_ok(&mut sb.warm(&["--help"])));
    let status = stdout(&run_ok(&mut sb.status(&["--help"])));
    for help in [&warm, &status] {
        assert!(
            help.contains("Exit codes:") && help.contains("  7    cache file error"),
            "{help}"
        );
    }
    // Only cache_warm takes the lock, runs stages and keeps quiet hours.
    assert!(
        warm.contains("  5    another warm holds the profile's lock"),
        "{warm}"
    );
    assert!(!status.contains("another warm holds"), "{status}");
    assert!(!status.contains("quiet hours"), "{status}");
    assert!(status.contains("With --check: 0 OK"), "{status}");
    // It runs no stage: its 1 is not cache_warm's "every stage failed".
    assert!(warm.contains("every stage failed"), "{warm}");
    assert!(!status.contains("every stage failed"), "{status}");
}

#[test]
fn print_cron_gives_a_crontab_line_with_an_absolute_path_and_warns_about_the_token() {
    let (_fake, sb) = cloud();
    let out = run_ok(&mut sb.warm(&["--print-cron", "--profile", "test"]));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| !l.starts_with('#'))
        .expect("a crontab line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &fields[..5],
        ["0", "6", "*", "*", "*"],
        "the default schedule: {line}"
    );
    let binary = fields
        .iter()
        .find(|f| f.ends_with("cache_warm"))
        .expect("the binary");
    assert!(std::path::Path::new(binary).is_absolute(), "{line}");
    assert!(
        line.contains("--all") && line.contains("--profile test") && line.contains("--quiet"),
        "{line}"
    );
    assert!(
        line.contains(". ") && text.contains("token_cmd"),
        "sources the token file and names token_cmd: {text}"
    );
}

#[test]
fn print_cron_with_token_cmd_needs_no_token_file() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "token_cmd = \"echo secret\"\nschedule = \"30 5 * * 1-5\"",
    );
    let out = run_ok(&mut sb.warm(&["--print-cron", "--profile", "test"]));
    let line = stdout(&out)
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .to_string();
    assert!(line.starts_with("30 5 * * 1-5 /"), "{line}");
    let out = run_ok(&mut sb.warm(&["--print-systemd", "--profile", "test"]));
    assert!(
        stdout(&out).contains("OnCalendar=Mon..Fri *-*-* 05:30:00"),
        "{}",
        stdout(&out)
    );
}

/// A profile with quiet hours 09:00-17:00, at 10:30 in Paris.
fn inside_quiet_hours() -> (FakeJira, Sandbox) {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\nquiet_hours = \"09:00-17:00\"",
    );
    sb.set_env("TZ", "Europe/Paris");
    sb.set_env("JIRA_CACHE_NOW", "2026-11-26T10:30:00+01:00");
    (fake, sb)
}

#[test]
fn quiet_hours_refuse_a_warm_and_force_overrides() {
    let (fake, mut sb) = inside_quiet_hours();
    let out = run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 6);
    assert!(
        stderr(&out).contains("09:00-17:00") && stderr(&out).contains("--force"),
        "{}",
        text(&out)
    );
    assert_eq!(fake.request_count(), 0);
    run_ok(&mut sb.warm(&["--projects", "--force", "--profile", "test"]));

    sb.set_env("JIRA_CACHE_NOW", "2026-11-26T06:00:00+01:00");
    run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
}

#[test]
fn only_stale_makes_no_request_when_everything_is_fresh() {
    let (fake, sb) = cloud();
    run_ok(&mut sb.warm(&["--projects", "--fields", "--profile", "test"]));
    fake.reset_requests();
    let out = run_ok(&mut sb.warm(&[
        "--projects",
        "--fields",
        "--only-stale",
        "--profile",
        "test",
    ]));
    assert_eq!(fake.request_count(), 0, "{}", text(&out));
    assert!(stdout(&out).contains("Nothing to do"), "{}", text(&out));
    // With --json, one object all the same: a script reads `result`.
    let out = run_ok(&mut sb.warm(&[
        "--projects",
        "--fields",
        "--only-stale",
        "--json",
        "--profile",
        "test",
    ]));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(json["result"], "ok", "{json}");
    assert_eq!(json["nothing_to_do"], true, "{json}");
    assert_eq!(
        json["fresh"],
        serde_json::json!(["projects", "fields"]),
        "{json}"
    );
    assert_eq!(fake.request_count(), 0);
    // A stage with nothing cached is stale.
    run_ok(&mut sb.warm(&["--projects", "--users", "--only-stale", "--profile", "test"]));
    assert!(fake.count_path("/rest/api/3/users/search") > 0);
    assert_eq!(fake.count_path("/rest/api/3/project/search"), 0);
}

#[test]
fn dry_run_makes_no_request_and_writes_nothing() {
    let (fake, sb) = cloud();
    let out = run_ok(&mut sb.warm(&["--all", "--dry-run", "--profile", "test"]));
    assert!(
        stdout(&out).contains("issues") && stdout(&out).contains("requests"),
        "{}",
        text(&out)
    );
    assert_eq!(fake.request_count(), 0);
    assert!(!sb.cache_path("test").exists(), "no cache file was created");
}

#[test]
fn max_duration_stops_a_slow_run_keeping_what_was_done() {
    let site = Site::generated(
        Flavor::Cloud,
        SiteSize {
            projects: 40,
            issues_per_project: 10,
            ..Default::default()
        },
    );
    let fake = FakeJira::builder(Flavor::Cloud)
        .site(site)
        .latency(Duration::from_millis(150))
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\nconcurrency = 1",
    );
    // That it stopped is told by its exit and report (the command's own
    // guard fails a run that hangs), not by a wall-clock bound.
    let out = run_code(
        &mut sb.warm(&["--all", "--max-duration", "2s", "--profile", "test"]),
        4,
    );
    assert!(stderr(&out).contains("--max-duration"), "{}", text(&out));
    let status = sb.status_json();
    assert_eq!(status["runs"][0]["result"], "partial");
    assert!(entries(&status, "project") > 0, "what was done is kept");
    assert!(
        stdout(&out).contains("Warmed 40 projects in"),
        "stages that ended before the stop are reported: {}",
        text(&out)
    );
    assert!(
        status["runs"][0]["written"].as_u64().unwrap() >= 40,
        "and counted in the run history"
    );
}

#[test]
fn stage_delay_pauses_between_stages() {
    let (_fake, sb) = cloud();
    let started = Instant::now();
    run_ok(&mut sb.warm(&[
        "--projects",
        "--fields",
        "--stage-delay",
        "1s",
        "--profile",
        "test",
    ]));
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[test]
fn json_prints_one_object_with_the_run_report() {
    let (_fake, sb) = cloud();
    let out = run_ok(&mut sb.warm(&["--all", "--json", "--profile", "test"]));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(report["schema_version"], 2);
    assert_eq!(report["result"], "ok");
    let stages: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["projects", "fields", "users", "issues"]);
    assert!(report["requests"]["requests"].as_u64().unwrap() > 0);
}

#[test]
fn log_file_collects_logs_even_when_quiet() {
    let (_fake, sb) = cloud();
    let log = sb.dir.path().join("warm.log");
    run_ok(&mut sb.warm(&[
        "--projects",
        "--quiet",
        "--log-file",
        log.to_str().unwrap(),
        "--profile",
        "test",
    ]));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("stage starts"), "{text}");
}

#[test]
fn completions_and_man_pages_come_from_the_clap_definitions() {
    let sb = Sandbox::new();
    for bin in ["warm", "status"] {
        let run = |args: &[&str]| {
            if bin == "warm" {
                sb.warm(args)
            } else {
                sb.status(args)
            }
        };
        let out = run_ok(&mut run(&["--completions", "bash"]));
        assert!(stdout(&out).contains("complete"), "{bin}");
        let out = run_ok(&mut run(&["--man"]));
        assert!(stdout(&out).contains(".TH"), "{bin}");
    }
}

#[test]
fn a_progress_bar_is_drawn_on_a_terminal_and_not_when_piped() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: `script` (util-linux) is not installed, so no pseudo-terminal");
        return;
    }
    let site = Site::generated(
        Flavor::Cloud,
        SiteSize {
            projects: 6,
            issues_per_project: 20,
            ..Default::default()
        },
    );
    let fake = FakeJira::builder(Flavor::Cloud)
        .site(site)
        .latency(Duration::from_millis(300))
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\nconcurrency = 1",
    );
    sb.env.retain(|(k, _)| k != "NO_COLOR");

    let piped = run_ok(&mut sb.warm(&["--issues", "--profile", "test"]));
    assert!(
        !stderr(&piped).contains("projects,"),
        "no bar when piped: {}",
        text(&piped)
    );

    let command = format!(
        "{} --issues --profile test",
        env!("CARGO_BIN_EXE_cache_warm")
    );
    let mut script = sb.shell_command("script");
    // Bars need a terminal that says what it is; cron's has no TERM.
    script.env("TERM", "xterm");
    script.args(["-qec", &command, "/dev/null"]);
    let tty = run_ok(&mut script);
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(
        screen.contains("projects,") && screen.contains("issues"),
        "a bar under a terminal: {screen}"
    );
}

#[test]
fn dry_run_counts_cached_users_whose_account_ids_hold_a_colon() {
    let (fake, sb) = cloud();
    run_ok(&mut sb.warm(&["--users", "--profile", "test"]));
    let users = fake.site().with(|s| s.users.len());
    let with_colon = fake.site().with(|s| {
        s.users
            .iter()
            .filter(|u| u["accountId"].as_str().unwrap_or("").contains(':'))
            .count()
    });
    let out = run_ok(&mut sb.warm(&["--all", "--dry-run", "--profile", "test"]));
    assert!(
        stdout(&out).contains(&format!("users ({users} cached)")),
        "{with_colon} ids with a colon: {}",
        text(&out)
    );
}

/// The users and issues stages run together (issue 16's network floor): the
/// issues stage does all its work while the users listing is held at the
/// site, yet each stage's figures count its own requests, and the lines and
/// the JSON keep the plan's order.
#[test]
fn the_issues_stage_runs_while_the_users_stage_waits_and_each_counts_its_own_requests() {
    use fake_jira::{Fault, FaultKind, Gate};
    use std::process::Stdio;
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = Sandbox::new();
    // The held request must not time out and be retried meanwhile.
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\ntimeout = \"300s\"",
    );
    run_ok(&mut sb.warm(&["--projects", "--fields", "--profile", "test"]));
    let gate = Gate::new();
    fake.faults()
        .add(Fault::new("/rest/api/3/users/search", FaultKind::Hold(gate.clone())).once());
    let from = fake.requests().len();
    let child = sb
        .warm_std(&["--users", "--issues", "--json", "--profile", "test"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Without the overlap the issues stage would wait for the users stage,
    // held here until the issue bodies are in: this wait would give up.
    common::events::wait_until("the issue bodies fetched while users wait", || {
        fake.count_path("/rest/api/3/issue/bulkfetch") > 0
    });
    assert_eq!(gate.reached(), 1);
    gate.open();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    let stages = report["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["users", "issues"]);
    let sent: Vec<String> = fake.requests()[from..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    let users = sent.iter().filter(|p| p.contains("/user")).count() as u64;
    let issues = sent
        .iter()
        .filter(|p| p.starts_with("/rest/api/3/search") || p.starts_with("/rest/api/3/issue"))
        .count() as u64;
    assert_eq!(stages[0]["requests"].as_u64(), Some(users), "{sent:?}");
    assert_eq!(stages[1]["requests"].as_u64(), Some(issues), "{sent:?}");
    assert_eq!(
        report["requests"]["requests"].as_u64(),
        Some(sent.len() as u64),
        "{sent:?}"
    );
}

#[test]
fn copy_to_a_url_with_a_password_blames_the_flag_and_never_prints_the_password() {
    let (_fake, sb) = cloud();
    run_ok(&mut sb.warm(&["--all", "--profile", "test"]));
    let out = run_code(
        &mut sb.warm(&[
            "--copy-to",
            "postgres://jira:hunter2-secret@127.0.0.1:1/cache",
            "--profile",
            "test",
        ]),
        3,
    );
    let err = stderr(&out);
    assert!(
        err.starts_with("cache_warm: --copy-to: the URL holds a password"),
        "{err}"
    );
    assert!(!err.contains("profiles.toml"), "{err}");
    assert!(!text(&out).contains("hunter2-secret"), "{}", text(&out));
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `--json` stdout of a command that failed before it had a report.
fn json_error_of(out: &std::process::Output, code: i32) -> serde_json::Value {
    let stdout = stdout(out);
    assert_eq!(stdout.lines().count(), 1, "one object: {}", text(out));
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(v["result"], "error", "{v}");
    assert_eq!(v["exit_code"], code, "{v}");
    assert!(v["schema_version"].is_u64(), "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    v
}

#[test]
fn json_carries_one_object_when_a_command_fails_before_its_report() {
    let (_fake, sb) = cloud();
    let missing = sb.home().join("nowhere.toml");
    let missing = missing.to_str().unwrap();
    let out = run_code(&mut sb.warm(&["--all", "--json", "--config", missing]), 3);
    let v = json_error_of(&out, 3);
    assert!(v["error"].as_str().unwrap().contains("nowhere.toml"), "{v}");
    let out = run_code(&mut sb.status(&["--json", "--config", missing]), 3);
    json_error_of(&out, 3);

    // Refused inside quiet hours: exit 6, and still one object.
    let (_quiet_fake, sb) = inside_quiet_hours();
    let out = run_code(
        &mut sb.warm(&["--projects", "--json", "--profile", "test"]),
        6,
    );
    let v = json_error_of(&out, 6);
    assert!(v["error"].as_str().unwrap().contains("quiet hours"), "{v}");
}

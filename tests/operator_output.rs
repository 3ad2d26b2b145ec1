//! Issue 15 through the real binary: what an operator reads. The warm's
//! default output on a 300-project site is one line per stage; a site that
//! answers a login page everywhere gives one line per cause and no tracing
//! lines; `--log-file` keeps each run's summary and a failed run's cause.
//! Snapshots pin the output with times and paths redacted.

mod common;

use common::*;
use fake_jira::{FakeJira, Fault, FaultKind, Flavor, Site, SiteSize};

/// A Cloud site of `projects` small projects, and a sandbox profile for it.
fn site_of(projects: usize) -> (FakeJira, Sandbox) {
    let site = Site::generated(
        Flavor::Cloud,
        SiteSize {
            projects,
            fields: 10,
            users: 20,
            issues_per_project: 2,
            ..Default::default()
        },
    );
    let fake = FakeJira::builder(Flavor::Cloud).site(site).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    sb.set_env("JIRA_CACHE_RETRY_BASE", "1ms");
    (fake, sb)
}

/// Output with the temp path, the fake's address and timings replaced.
fn redact(sb: &Sandbox, fake: &FakeJira, text: &str) -> String {
    let text = text
        .replace(&sb.dir.path().display().to_string(), "[TMP]")
        .replace(fake.url().trim_end_matches('/'), "[SITE]");
    text.lines()
        .map(|line| {
            // `in 0.8 s`, `in 1 min 2 s`: the only figures that vary.
            let mut out = String::new();
            let mut rest = line;
            while let Some((at, len)) = [" in ", " after "]
                .iter()
                .filter_map(|w| rest.find(w).map(|at| (at, w.len())))
                .min()
            {
                out.push_str(&rest[..at + len]);
                rest = &rest[at + len..];
                let end = rest.find([':', ',', ')', '(']).unwrap_or(rest.len());
                let took = &rest[..end];
                if took.starts_with(|c: char| c.is_ascii_digit()) {
                    out.push_str("[TIME]");
                    if took.ends_with(' ') {
                        out.push(' ');
                    }
                    rest = &rest[end..];
                }
            }
            out.push_str(rest);
            out + "\n"
        })
        .collect()
}

fn both(out: &std::process::Output) -> String {
    format!("--- stdout\n{}--- stderr\n{}", stdout(out), stderr(out))
}

#[test]
fn a_warm_of_a_300_project_site_prints_one_line_per_stage() {
    let (fake, sb) = site_of(300);
    let out = run_ok(&mut sb.warm(&["--all", "--profile", "test"]));
    let lines = stdout(&out).lines().count();
    assert!(lines < 10, "{lines} lines:\n{}", text(&out));
    insta::assert_snapshot!("warm_300_projects", redact(&sb, &fake, &both(&out)));
    // -v shows each project's line.
    let verbose = run_ok(&mut sb.warm(&["--issues", "-v", "--profile", "test"]));
    assert!(
        stdout(&verbose)
            .lines()
            .filter(|l| l.contains(" for PB"))
            .count()
            >= 300
            || stdout(&verbose)
                .lines()
                .filter(|l| l.contains(" for "))
                .count()
                >= 300,
        "{}",
        text(&verbose)
    );
}

#[test]
fn a_login_page_everywhere_gives_one_line_per_cause_and_no_tracing() {
    let (fake, sb) = site_of(12);
    fake.faults().add(Fault::new("", FaultKind::HtmlLogin));
    let out = run_code(&mut sb.warm(&["--all", "--profile", "test"]), 1);
    let err = stderr(&out);
    assert!(!err.contains("WARN") && !err.contains("ERROR"), "{err}");
    assert_eq!(
        err.matches("login page").count(),
        1,
        "one line for the one cause:\n{err}"
    );
    insta::assert_snapshot!("warm_login_page", redact(&sb, &fake, &both(&out)));
}

#[test]
fn the_log_file_keeps_each_run_summary_and_a_failed_run_cause() {
    let (fake, sb) = site_of(3);
    let log = sb.dir.path().join("warm.log");
    let log_arg = log.display().to_string();
    run_ok(&mut sb.warm(&[
        "--all",
        "--quiet",
        "--log-file",
        &log_arg,
        "--profile",
        "test",
    ]));
    let first = std::fs::read_to_string(&log).unwrap();
    assert!(first.contains("Warmed 3 projects"), "{first}");
    assert!(first.contains("Done in"), "{first}");

    fake.faults().add(Fault::new("", FaultKind::HtmlLogin));
    // `--full`: every listing is still fresh, and only a fetch meets the
    // login page.
    run_code(
        &mut sb.warm(&[
            "--all",
            "--full",
            "--quiet",
            "--log-file",
            &log_arg,
            "--profile",
            "test",
        ]),
        1,
    );
    let both_runs = std::fs::read_to_string(&log).unwrap();
    let second = &both_runs[first.len()..];
    assert!(second.contains("Failed in"), "{second}");
    assert!(second.contains("login page"), "the cause:\n{second}");
    assert!(second.contains("failed: 4 of 4 stages failed"), "{second}");
}

#[test]
fn a_profile_missing_its_email_fails_before_any_file_is_made() {
    let (fake, sb) = site_of(1);
    sb.profiles(&format!(
        "[profiles.test]\nurl = \"{}\"\ndeployment = \"cloud\"\n",
        fake.url()
    ));
    let out = run_code(&mut sb.warm(&["--all", "--profile", "test"]), 3);
    assert!(stderr(&out).contains("email"), "{}", text(&out));
    assert!(!sb.cache_path("test").exists(), "no cache file");
    assert!(
        !sb.cache_dir().join("test.lock").exists(),
        "no lock file: {}",
        text(&out)
    );
}

#[test]
fn man_pages_have_exit_status_files_and_environment_sections() {
    let sb = Sandbox::new();
    for (mut cmd, code) in [
        (sb.warm(&["--man"]), "\\fB5\\fR"),
        (sb.status(&["--man"]), "\\fB\\-\\-check\\fR"),
    ] {
        let page = stdout(&run_ok(&mut cmd));
        for section in [
            ".SH \"EXIT STATUS\"",
            ".SH \"FILES\"",
            ".SH \"ENVIRONMENT\"",
        ] {
            assert!(page.contains(section), "{section} missing:\n{page}");
        }
        assert!(page.contains(code), "{code}:\n{page}");
        assert!(
            !page.contains("Exit codes:"),
            "the table is a section, not EXTRA:\n{page}"
        );
        assert!(page.contains("JIRA_CACHE_CONFIG") && page.contains("profiles.toml"));
    }
}

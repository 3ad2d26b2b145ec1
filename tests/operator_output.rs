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

#[test]
fn a_suggested_command_keeps_the_config_and_profile_the_user_gave() {
    let sb = Sandbox::new();
    // Not the default path: a pasted hint must find this file again.
    let config = sb.dir.path().join("other profiles.toml");
    std::fs::write(
        &config,
        "[profiles.a]\nurl = \"https://a.example.net\"\nemail = \"a@b.c\"\n\
         [profiles.b]\nurl = \"https://b.example.net\"\nemail = \"a@b.c\"\n",
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let quoted = format!("'{config_arg}'");

    // No cache yet: --check suggests the warm that makes one.
    let out = run_code(
        &mut sb.status(&["--check", "--config", config_arg, "--profile", "b"]),
        2,
    );
    assert!(
        stdout(&out).contains(&format!(
            "run `cache_warm --config {quoted} --all --profile b`"
        )),
        "{}",
        text(&out)
    );

    // A corrupt file: the error suggests --reset, for this profile of this file.
    std::fs::create_dir_all(sb.cache_dir()).unwrap();
    std::fs::write(
        sb.cache_path("b"),
        "not a database at all, but long enough to look",
    )
    .unwrap();
    let out = run_code(&mut sb.status(&["--config", config_arg, "-p", "b"]), 7);
    assert!(
        stderr(&out).contains(&format!(
            "run `cache_warm --config {quoted} --profile b --reset`"
        )),
        "{}",
        text(&out)
    );
    // Without the flags, the hint stays as it was: $JIRA_PROFILE and
    // $JIRA_CACHE_CONFIG carry over to the next command by themselves.
    let mut bare = sb.status(&[]);
    bare.env("JIRA_CACHE_CONFIG", config_arg)
        .env("JIRA_PROFILE", "b");
    let out = run_code(&mut bare, 7);
    assert!(
        stderr(&out).contains("run `cache_warm --reset`"),
        "{}",
        text(&out)
    );
}

#[test]
fn wait_says_whose_warm_it_waits_for_and_since_when() {
    let (fake, sb) = site_of(1);
    std::fs::create_dir_all(sb.cache_dir()).unwrap();
    // This test process holds the profile's lock, as a running warm would.
    let held = jira_cache::lock::WarmLock::acquire(&sb.cache_dir().join("test.lock")).unwrap();
    let out = run_code(
        &mut sb.warm(&["--projects", "--wait=1s", "--profile", "test"]),
        5,
    );
    let err = stderr(&out);
    let waiting = err
        .lines()
        .find(|l| l.contains("waiting for"))
        .unwrap_or_else(|| panic!("no waiting line: {}", text(&out)));
    assert!(
        waiting.contains(&format!("(pid {} since 20", std::process::id())),
        "the holder's pid and since when: {waiting}"
    );
    assert!(waiting.contains("for up to 1s"), "{waiting}");
    assert_eq!(fake.request_count(), 0, "nothing asked while waiting");
    drop(held);
    // A free lock: no word about waiting.
    let out = run_ok(&mut sb.warm(&["--projects", "--wait=1s", "--profile", "test"]));
    assert!(!stderr(&out).contains("waiting"), "{}", text(&out));
}

/// A Cloud site whose `path` never answers, and a profile `test` that
/// would wait for it for 10 minutes; the warm runs with `--max-duration`.
fn warm_against_a_hang(
    path: &str,
    prepare: &[&str],
    flags: &[&str],
    limit: &str,
) -> std::process::Output {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    fake.faults().add(Fault::new(path, FaultKind::Hang));
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\ntimeout = \"10m\"",
    );
    if !prepare.is_empty() {
        run_ok(&mut sb.warm(&[prepare, &["--profile", "test"]].concat()));
    }
    let args = [flags, &["--max-duration", limit, "--profile", "test"]].concat();
    run_code(&mut sb.warm(&args), 4)
}

#[test]
fn max_duration_names_the_stage_it_cut_short_and_those_it_never_ran() {
    // The projects stage never gets an answer: whenever the limit comes, it
    // is the stage under way, and users (which needs its projects) has not
    // started.
    let out = warm_against_a_hang(
        "/rest/api/3/project/search",
        &[],
        &["--projects", "--users"],
        "1s",
    );
    let err = stderr(&out);
    assert!(
        err.contains("stopped after --max-duration 1s"),
        "{}",
        text(&out)
    );
    assert!(
        err.contains("cut short: projects; not run: users"),
        "{}",
        text(&out)
    );
}

#[test]
fn max_duration_keeps_the_line_of_a_stage_that_ended_beside_one_it_cut_short() {
    // Fields and users run together; fields never gets an answer. The
    // limit is a failure guard for the users stage's 4 requests, not a
    // timing: on any machine they end well within it.
    let out = warm_against_a_hang(
        "/rest/api/3/field",
        &["--projects"],
        &["--fields", "--users"],
        "15s",
    );
    let err = stderr(&out);
    assert!(err.contains("cut short: fields"), "{}", text(&out));
    assert!(!err.contains("users"), "users ended: {}", text(&out));
    assert!(stdout(&out).contains("Warmed 6 users"), "{}", text(&out));
}

/// A profile `test` for `url` (Cloud, so no probe), with a token.
fn profile_at(url: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.profiles(&format!(
        "[profiles.test]\nurl = \"{url}\"\ndeployment = \"cloud\"\nemail = \"a@b.c\"\ntimeout = \"5s\"\n"
    ));
    sb.set_env("JIRA_API_TOKEN", "x");
    sb.set_env("JIRA_CACHE_RETRY_BASE", "1ms");
    sb
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn an_unreachable_site_ends_with_one_short_line_naming_the_site_once() {
    let port = closed_port();
    let sb = profile_at(&format!("https://127.0.0.1:{port}"));
    let out = run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 1);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {}", text(&out));
    let line = lines[0];
    assert!(
        line.contains(&format!(
            "cannot connect to https://127.0.0.1:{port}: connection refused (5 attempts)"
        )),
        "{line}"
    );
    assert_eq!(
        line.matches(&format!("127.0.0.1:{port}")).count(),
        1,
        "the site once: {line}"
    );
    assert!(line.len() <= 200, "short ({} chars): {line}", line.len());
    // Off a terminal, no attempt-by-attempt lines.
    assert!(!err.contains("connecting to"), "{err}");
}

#[test]
fn https_pointed_at_a_plain_http_port_asks_whether_the_site_is_http() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    // A plain HTTP server: whatever arrives (a TLS ClientHello here), it
    // answers as an HTTP server answers bytes it cannot parse.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    // No `deployment`: the first request is the serverInfo probe.
    let mut sb = Sandbox::new();
    sb.profiles(&format!(
        "[profiles.test]\nurl = \"https://127.0.0.1:{port}\"\nemail = \"a@b.c\"\n"
    ));
    sb.set_env("JIRA_API_TOKEN", "x");
    let out = run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 1);
    let err = stderr(&out);
    assert!(err.contains("is this site http?"), "{}", text(&out));
    assert_eq!(
        err.matches(&format!("127.0.0.1:{port}")).count(),
        1,
        "the site once: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "not retried: the answer would not change"
    );
}

#[test]
fn on_a_terminal_each_connection_attempt_is_said() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: `script` (util-linux) is not installed, so no pseudo-terminal");
        return;
    }
    let port = closed_port();
    let sb = profile_at(&format!("https://127.0.0.1:{port}"));
    // A warm, and --check-auth, which connects the same way.
    for action in ["--projects", "--check-auth"] {
        let command = format!(
            "{} {action} --profile test",
            env!("CARGO_BIN_EXE_cache_warm")
        );
        let mut script = sb.shell_command("script");
        script.env("TERM", "xterm");
        script.args(["-qec", &command, "/dev/null"]);
        let out = script.output().unwrap();
        let screen = String::from_utf8_lossy(&out.stdout);
        for attempt in 2..=5 {
            let said = format!("connecting to https://127.0.0.1:{port} (attempt {attempt} of 5");
            assert_eq!(
                screen.matches(&said).count(),
                1,
                "{action}: {said} once: {screen}"
            );
        }
        assert!(screen.contains("cannot connect"), "{action}: {screen}");
    }
}

#[test]
fn profile_names_complete_on_tab_in_every_binary() {
    let sb = Sandbox::new();
    let config = sb.dir.path().join("mine.toml");
    std::fs::write(
        &config,
        "[profiles.production]\nurl = \"https://p.example.net\"\n\
         [profiles.preview]\nurl = \"https://v.example.net\"\n\
         [profiles.staging]\nurl = \"https://s.example.net\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for bin in [
        env!("CARGO_BIN_EXE_cache_warm"),
        env!("CARGO_BIN_EXE_cache_status"),
        env!("CARGO_BIN_EXE_cache_serve"),
    ] {
        // What fish asks when TAB is pressed after `--profile pr`.
        let mut cmd = sb.shell_command(bin);
        cmd.env("COMPLETE", "fish")
            .args(["--", bin, "--config", config, "--profile", "pr"]);
        let out = run_ok(&mut cmd);
        let said = stdout(&out);
        let offered: Vec<&str> = said
            .lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect();
        assert_eq!(offered, ["preview", "production"], "{bin}: {}", text(&out));
    }
}

/// A child process on its own pseudo-terminal, as under a person's shell:
/// its session leader, so the terminal's Ctrl-C (byte 3) is its SIGINT.
struct OnTerminal {
    child: std::process::Child,
    /// The terminal's side of the pty: what the child prints, and where
    /// keys are typed.
    master: std::fs::File,
    /// Everything printed so far, gathered by a reader thread.
    printed: std::sync::mpsc::Receiver<Vec<u8>>,
    screen: Vec<u8>,
}

impl OnTerminal {
    fn spawn(mut cmd: std::process::Command) -> OnTerminal {
        use std::os::fd::{FromRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: 30,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two new descriptors into the two ints.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned here only.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        cmd.stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        // The parent's copies of the terminal's child side go with `cmd`:
        // once the child exits, reading the master side ends.
        drop(cmd);
        let master = std::fs::File::from(master);
        let mut reader = master.try_clone().unwrap();
        let (tx, printed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            // Linux answers EIO once the child side is closed: the end.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        OnTerminal {
            child,
            master,
            printed,
            screen: Vec::new(),
        }
    }

    /// Reads what the child prints until `seen` holds for it.
    fn wait_for(&mut self, what: &str, seen: impl Fn(&str) -> bool) {
        while !seen(&String::from_utf8_lossy(&self.screen)) {
            match self
                .printed
                .recv_timeout(std::time::Duration::from_secs(60))
            {
                Ok(bytes) => self.screen.extend(bytes),
                Err(e) => panic!(
                    "no {what} ({e}); printed so far: {}",
                    String::from_utf8_lossy(&self.screen)
                ),
            }
        }
    }

    /// Types `bytes`, as a person at the keyboard.
    fn type_keys(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.master.write_all(bytes).unwrap();
    }

    /// Waits for the child's end and everything it printed.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<u8>) {
        let status = self.child.wait().unwrap();
        while let Ok(bytes) = self
            .printed
            .recv_timeout(std::time::Duration::from_secs(60))
        {
            self.screen.extend(bytes);
        }
        (status, self.screen)
    }
}

#[test]
fn ctrl_c_leaves_no_progress_bar_on_the_screen() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    // The fields stage waits for ever: the run is under way, its bar on
    // screen, when Ctrl-C comes.
    fake.faults()
        .add(Fault::new("/rest/api/3/field", FaultKind::Hang));
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\ntimeout = \"10m\"",
    );
    let mut cmd = sb.warm_std(&["--projects", "--fields", "--profile", "test"]);
    cmd.env("TERM", "xterm");
    let mut term = OnTerminal::spawn(cmd);
    term.wait_for("fields bar", |screen| {
        screen
            .rfind("fields")
            .is_some_and(|at| screen[at..].contains("entries"))
    });
    term.type_keys(&[3]); // Ctrl-C
    let (status, printed) = term.finish();
    assert_eq!(
        status.code(),
        Some(130),
        "{status:?}: {}",
        String::from_utf8_lossy(&printed)
    );
    // What a person sees once it ended: the terminal's final screen.
    let size = |n| std::num::NonZeroU16::new(n).unwrap();
    let mut screen = vt100::Parser::new(size(30), size(120), 0);
    screen.process(&printed);
    let shown = screen.screen().contents();
    // A bar line starts with its spinner, a braille pattern.
    let bar_line = |line: &str| {
        line.contains("entries")
            || line
                .trim_start()
                .starts_with(|c: char| ('\u{2800}'..='\u{28FF}').contains(&c))
    };
    assert!(
        !shown.lines().any(bar_line),
        "a bar stayed on screen:\n{shown}\n(raw: {:?})",
        String::from_utf8_lossy(&printed)
    );
    assert!(
        shown.contains("Interrupted"),
        "the run's end is said:\n{shown}"
    );
}

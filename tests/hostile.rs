//! Issue 14: hostile answers and hostile files. A small loopback server
//! that answers as an attacker would (huge `Retry-After`, huge bodies,
//! echoed credentials, odd keys) and files planted next to the cache; the
//! tools must not crash, leak or write outside the cache.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use common::*;

/// One request as the hostile server saw it.
struct Request {
    path: String,
    authorization: Option<String>,
}

type Handler = dyn Fn(&Request, &mut TcpStream, &AtomicU64) + Send + Sync;

/// A loopback server whose every answer `handler` writes raw; each
/// connection serves one request and is closed.
struct Hostile {
    port: u16,
    hits: Arc<AtomicUsize>,
    /// Body bytes the handler managed to write (for the size caps).
    written: Arc<AtomicU64>,
}

impl Hostile {
    fn start(
        handler: impl Fn(&Request, &mut TcpStream, &AtomicU64) + Send + Sync + 'static,
    ) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (h, w) = (hits.clone(), written.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, hits, written) = (handler.clone(), h.clone(), w.clone());
                std::thread::spawn(move || {
                    if let Some(req) = read_request(&stream) {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let mut stream = stream;
                        handler(&req, &mut stream, &written);
                    }
                });
            }
        });
        Hostile {
            port,
            hits,
            written,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let path = first.split_whitespace().nth(1)?.to_string();
    let mut authorization = None;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim().to_string();
            match name.to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value),
                "content-length" => length = value.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        path,
        authorization,
    })
}

/// Writes a whole answer; the connection closes after it.
fn answer(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head =
        format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

const TOKEN: &str = "tok-HOSTILE-SECRET-0123456789";

/// A Data Center profile (bearer token) for `url`, with `extra` lines.
fn dc_sandbox(url: &str, extra: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.profiles(&format!(
        "[profiles.test]\nurl = \"{url}\"\ndeployment = \"datacenter\"\nrate_limit = \"unlimited\"\ntimeout = \"5s\"\n{extra}\n"
    ));
    sb.set_env("JIRA_API_TOKEN", TOKEN);
    sb
}

fn no_panic(out: &std::process::Output) {
    assert_ne!(out.status.code(), Some(101), "{}", text(out));
    assert!(!stderr(out).contains("panicked"), "{}", text(out));
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(d).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                out.push(path);
            }
        }
    }
    out
}

/// No output and no file in the sandbox (cache, logs) holds any of `secrets`.
fn assert_nothing_holds(sb: &Sandbox, outputs: &[std::process::Output], secrets: &[&str]) {
    for out in outputs {
        let all = text(out);
        for s in secrets {
            assert!(!all.contains(s), "`{s}` leaked in output: {all}");
        }
    }
    for path in files_under(sb.dir.path()) {
        let bytes = std::fs::read(&path).unwrap();
        let hay = String::from_utf8_lossy(&bytes);
        for s in secrets {
            assert!(!hay.contains(s), "`{s}` leaked into {}", path.display());
        }
    }
}

// ---- Crashes and limits ---------------------------------------------------------

#[test]
fn a_retry_after_too_large_for_a_duration_ends_the_run_with_the_throttling_error() {
    for value in ["1e20", "99999999999999999999", "1e300"] {
        let server = Hostile::start(move |_, s, _| {
            answer(
                s,
                "429 Too Many Requests",
                &[("Retry-After", value.to_string())],
                b"{}",
            )
        });
        let sb = dc_sandbox(&server.url(), "");
        let out = sb.warm(&["--all", "--profile", "test"]).output().unwrap();
        no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "{value}: {}", text(&out));
        assert!(
            stderr(&out).contains("throttling"),
            "{value}: {}",
            text(&out)
        );
        assert_eq!(
            server.hits(),
            1,
            "{value}: the run ends at the first such answer"
        );
    }
}

#[test]
fn a_retry_after_above_a_minute_ends_the_whole_run_not_only_its_stage() {
    let server = Hostile::start(|_, s, _| {
        answer(
            s,
            "429 Too Many Requests",
            &[("Retry-After", "3600".into())],
            b"{}",
        )
    });
    let sb = dc_sandbox(&server.url(), "");
    let out = run_code(&mut sb.warm(&["--all", "--profile", "test"]), 1);
    assert!(stderr(&out).contains("throttling"), "{}", text(&out));
    assert_eq!(
        server.hits(),
        1,
        "no later stage asks again: {}",
        text(&out)
    );
}

#[test]
fn a_success_body_past_max_response_is_cut_and_named_whether_or_not_its_length_is_announced() {
    // No Content-Length: read until the cap, then dropped.
    let server = Hostile::start(|_, s, _| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n[",
        );
        for i in 0..2000 {
            let _ = write!(s, "{{\"id\":\"{i}\",\"key\":\"K{i}\"}},");
        }
        let _ = s.write_all(b"{}]");
    });
    let sb = dc_sandbox(&server.url(), "max_response = \"1KiB\"");
    let out = run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 1);
    assert!(
        stderr(&out).contains("larger than max_response (1 KiB)"),
        "{}",
        text(&out)
    );
    assert!(
        !stderr(&out).contains("--reset"),
        "the cache is not blamed: {}",
        text(&out)
    );
    assert_eq!(server.hits(), 1, "a body too large is not asked for again");

    // An announced 2 GiB: refused before reading.
    let server = Hostile::start(|_, s, _| {
        answer(
            s,
            "200 OK",
            &[("Content-Length", (2u64 << 30).to_string())],
            b"[",
        );
    });
    let sb = dc_sandbox(&server.url(), "");
    let out = run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 1);
    assert!(
        stderr(&out).contains("larger than max_response (64 MiB)"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_error_body_is_read_only_as_far_as_its_small_cap() {
    const BODY: u64 = 64 << 20;
    const ATTEMPTS: u64 = 5;
    let server = Hostile::start(|_, s, written| {
        let head =
            format!("HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: {BODY}\r\n\r\n");
        let _ = s.write_all(head.as_bytes());
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0;
        while sent < BODY {
            if s.write_all(&chunk).is_err() {
                return;
            }
            sent += chunk.len() as u64;
            written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
    });
    let sb = dc_sandbox(&server.url(), "");
    let out = run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 1);
    assert!(stderr(&out).contains("HTTP 500"), "{}", text(&out));
    assert_eq!(server.hits() as u64, ATTEMPTS, "{}", text(&out));
    // Only the socket buffers' worth of each answer can have gone out.
    let written = server.written.load(Ordering::SeqCst);
    assert!(
        written < ATTEMPTS * BODY / 2,
        "{written} bytes of error bodies were taken in"
    );
}

#[test]
fn keys_a_server_should_never_send_are_refused_reported_and_never_printed_raw() {
    let server = Hostile::start(|req, s, _| {
        if req.path.starts_with("/rest/api/2/project") {
            let body = r#"[{"id":"1","key":"GOOD","name":"Good"},
                {"id":"2","key":"","name":"empty"},
                {"id":"3","key":"AL\u001b[2J","name":"escape"},
                {"id":"4","key":"../GOOD","name":"path"},
                {"id":"5","key":"RTL\u202eX","name":"bidi"}]"#;
            answer(s, "200 OK", &[], body.as_bytes());
        } else {
            answer(s, "404 Not Found", &[], b"{}");
        }
    });
    let sb = dc_sandbox(&server.url(), "");
    let warm = sb
        .warm(&["--projects", "--profile", "test"])
        .output()
        .unwrap();
    no_panic(&warm);
    assert_eq!(warm.status.code(), Some(0), "{}", text(&warm));
    for shown in [
        r#""""#,
        r#""AL\u{1b}[2J""#,
        r#""../GOOD""#,
        r#""RTL\u{202e}X""#,
    ] {
        assert!(
            stdout(&warm).contains(&format!("refused project key {shown}")),
            "{shown}: {}",
            text(&warm)
        );
    }
    let keys = run_ok(&mut sb.status(&["--profile", "test", "--keys", "project"]));
    let listed: Vec<String> = stdout(&keys).lines().map(str::to_string).collect();
    assert!(listed.contains(&"GOOD".to_string()), "{listed:?}");
    assert!(
        !listed
            .iter()
            .any(|k| k.is_empty() || k.contains("..") || k.contains("AL") || k.contains("RTL")),
        "{listed:?}"
    );
    for out in [&warm, &keys] {
        let all = text(out);
        assert!(
            !all.contains('\u{1b}') && !all.contains('\u{202e}'),
            "raw control text: {all:?}"
        );
    }
}

// ---- Closed stdout ------------------------------------------------------------

/// A cache of profile `test` with many users and one large value.
fn big_cache(sb: &Sandbox) {
    use jira_cache::Category;
    use jira_cache::cache::{Cache, NewEntry};
    let now = chrono::Utc::now().timestamp_millis();
    let entry = |key: String, value: String| NewEntry {
        category: Category::User,
        key,
        value,
        fetched_at: now,
        expires_at: now + 86_400_000,
        fetch_ms: 0,
        project: None,
        updated_at: None,
    };
    let mut entries: Vec<NewEntry> = (0..5000)
        .map(|i| entry(format!("5b10ac8d82e05b22cc7d{i:06}"), "{}".to_string()))
        .collect();
    entries.push(entry("big".into(), format!("\"{}\"", "x".repeat(1 << 20))));
    let cache = Cache::open(sb.cache_path("test")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let writer = cache.writer().unwrap();
        writer.put_page(entries).await.unwrap();
        writer.shutdown().await.unwrap();
    });
}

#[test]
fn a_closed_stdout_ends_cache_status_quietly_as_it_ends_ls() {
    let sb = dc_sandbox("http://127.0.0.1:9", "");
    big_cache(&sb);
    for (args, take) in [
        (vec!["--profile", "test", "--keys", "user"], 30usize),
        (vec!["--profile", "test", "--get", "user", "big"], 200),
    ] {
        let mut child = sb
            .std_command(env!("CARGO_BIN_EXE_cache_status"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut head = vec![0; take];
        stdout.read_exact(&mut head).unwrap();
        drop(stdout); // `| head -c N` exits
        let out = child.wait_with_output().unwrap();
        no_panic(&out);
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {}",
            text(&out)
        );
        assert!(stderr(&out).is_empty(), "{args:?}: {}", text(&out));
    }
}

#[test]
fn a_closed_stdout_or_stderr_neither_crashes_a_warm_nor_cuts_it_short() {
    use fake_jira::{FakeJira, Flavor, Site, SiteSize};
    let site = Site::generated(
        Flavor::Cloud,
        SiteSize {
            projects: 6,
            users: 5,
            issues_per_project: 10,
            ..Default::default()
        },
    );
    // Slow enough that the stage lines come after the reader has gone.
    let fake = FakeJira::builder(Flavor::Cloud)
        .site(site)
        .latency(std::time::Duration::from_millis(30))
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\nconcurrency = 1",
    );
    // `cache_warm --all | head -1`, then `cache_warm --all 2>&1 | head -1`.
    for both in [false, true] {
        let mut command = sb.std_command(env!("CARGO_BIN_EXE_cache_warm"));
        command
            .args(["--all", "--full", "--profile", "test"])
            .stdout(std::process::Stdio::piped());
        if both {
            command.stderr(std::process::Stdio::piped());
        }
        let mut child = command.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        drop(stdout);
        if both {
            drop(child.stderr.take());
        }
        let out = child.wait_with_output().unwrap();
        no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{first}{}", text(&out));
        let status = sb
            .status(&["--profile", "test", "--json"])
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!(json["runs"][0]["result"], "ok", "{}", text(&status));
    }
}

// ---- Secrets ------------------------------------------------------------------

#[test]
fn an_authorization_header_echoed_by_the_server_reaches_no_output_log_or_cache() {
    use base64::Engine as _;
    let echo = |req: &Request, s: &mut TcpStream, _: &AtomicU64| {
        let got = req.authorization.clone().unwrap_or_default();
        let body = serde_json::json!({
            "errorMessages": [format!("you sent Authorization: {got}")],
            "message": format!("{got} is not valid"),
        });
        answer(s, "401 Unauthorized", &[], body.to_string().as_bytes());
    };
    // Bearer on Data Center.
    let server = Hostile::start(echo);
    let sb = dc_sandbox(&server.url(), "");
    let log = sb.dir.path().join("warm.log");
    let mut outputs = vec![
        sb.warm(&[
            "--all",
            "-vvv",
            "--log-file",
            log.to_str().unwrap(),
            "--profile",
            "test",
        ])
        .output()
        .unwrap(),
        sb.warm(&["--all", "-vvv", "--json", "--profile", "test"])
            .output()
            .unwrap(),
    ];
    outputs.push(
        sb.status(&["--profile", "test", "-vvv", "--json"])
            .output()
            .unwrap(),
    );
    outputs.push(sb.status(&["--profile", "test", "-vvv"]).output().unwrap());
    for out in &outputs[..2] {
        assert_eq!(out.status.code(), Some(3), "{}", text(out));
    }
    assert!(std::fs::metadata(&log).unwrap().len() > 0);
    assert_nothing_holds(&sb, &outputs, &[TOKEN]);

    // Basic on Cloud: the header carries base64 of email:token.
    let server = Hostile::start(echo);
    let mut sb = Sandbox::new();
    sb.profiles(&format!(
        "[profiles.test]\nurl = \"{}\"\ndeployment = \"cloud\"\nemail = \"bot@example.com\"\nrate_limit = \"unlimited\"\n",
        server.url()
    ));
    sb.set_env("JIRA_API_TOKEN", TOKEN);
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("bot@example.com:{TOKEN}"));
    let outputs = vec![
        sb.warm(&[
            "--all",
            "-vvv",
            "--log-file",
            log.to_str().unwrap(),
            "--profile",
            "test",
        ])
        .output()
        .unwrap(),
        sb.status(&["--profile", "test", "-vvv", "--json"])
            .output()
            .unwrap(),
    ];
    assert_nothing_holds(&sb, &outputs, &[TOKEN, &b64, b64.trim_end_matches('=')]);
}

#[test]
fn a_token_a_site_echoes_in_its_user_or_in_a_redirects_address_is_never_shown() {
    use base64::Engine as _;
    // `/myself` names the user after the credentials it got; every other
    // path redirects to an address that holds the token, on the site
    // itself (a loop) or on another host.
    let port_elsewhere = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Hostile::start(move |req, s, _| {
        let got = req.authorization.clone().unwrap_or_default();
        if req.path.contains("/myself") {
            let body = serde_json::json!({
                "displayName": format!("User {got}"),
                "emailAddress": format!("bot@example.com:{TOKEN}"),
                "accountId": "5b10ac8d82e05b22cc7d4ef5",
            });
            answer(s, "200 OK", &[], body.to_string().as_bytes());
        } else if req.path.contains("/field") {
            let to = format!("http://127.0.0.2:{port_elsewhere}/x/{TOKEN}/y");
            answer(s, "302 Found", &[("Location", to)], b"");
        } else {
            answer(
                s,
                "302 Found",
                &[("Location", format!("/x/{TOKEN}/y"))],
                b"",
            );
        }
    });
    let mut sb = Sandbox::new();
    sb.profiles(&format!(
        "[profiles.test]\nurl = \"{}\"\ndeployment = \"cloud\"\nemail = \"bot@example.com\"\nrate_limit = \"unlimited\"\ntimeout = \"5s\"\n",
        server.url()
    ));
    sb.set_env("JIRA_API_TOKEN", TOKEN);
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("bot@example.com:{TOKEN}"));
    let outputs = vec![
        sb.warm(&["--check-auth", "--profile", "test"])
            .output()
            .unwrap(),
        sb.warm(&["--projects", "--fields", "-vv", "--profile", "test"])
            .output()
            .unwrap(),
        sb.warm(&["--projects", "--fields", "--json", "--profile", "test"])
            .output()
            .unwrap(),
        sb.status(&["--profile", "test", "--json"])
            .output()
            .unwrap(),
    ];
    assert_eq!(outputs[0].status.code(), Some(0), "{}", text(&outputs[0]));
    assert!(
        String::from_utf8_lossy(&outputs[0].stdout).contains("[redacted]"),
        "{}",
        text(&outputs[0])
    );
    for out in &outputs[1..3] {
        assert_ne!(out.status.code(), Some(0), "{}", text(out));
        no_panic(out);
    }
    let warm = text(&outputs[1]);
    assert!(warm.contains("redirect in a row"), "{warm}");
    assert!(warm.contains("outside the profile's `url`"), "{warm}");
    assert_nothing_holds(&sb, &outputs, &[TOKEN, &b64, b64.trim_end_matches('=')]);
}

#[test]
fn a_token_a_site_echoes_in_a_successful_answer_is_neither_cached_nor_shown() {
    let server = Hostile::start(|req, s, _| {
        let got = req.authorization.clone().unwrap_or_default();
        if req.path.starts_with("/rest/api/2/project") {
            let body = serde_json::json!([{
                "id": "1",
                "key": "GOOD",
                "name": TOKEN,
                "description": format!("you sent {got}"),
            }]);
            answer(s, "200 OK", &[], body.to_string().as_bytes());
        } else {
            answer(s, "404 Not Found", &[], b"{}");
        }
    });
    let sb = dc_sandbox(&server.url(), "");
    let warm = sb
        .warm(&["--projects", "-vvv", "--profile", "test"])
        .output()
        .unwrap();
    assert_eq!(warm.status.code(), Some(0), "{}", text(&warm));
    let get = sb
        .status(&["--profile", "test", "--get", "project", "GOOD"])
        .output()
        .unwrap();
    assert_eq!(get.status.code(), Some(0), "{}", text(&get));
    assert!(stdout(&get).contains("[redacted]"), "{}", text(&get));
    assert_nothing_holds(&sb, &[warm, get], &[TOKEN]);
}

#[test]
fn a_failing_token_cmd_shows_its_exit_status_and_never_the_secret_it_printed() {
    let server = Hostile::start(|_, s, _| answer(s, "200 OK", &[], b"[]"));
    let mut sb = dc_sandbox(
        &server.url(),
        "token_cmd = \"echo \\\"gpg: cannot decrypt $PASS_SECRET\\\" >&2; exit 3\"",
    );
    sb.set_env("PASS_SECRET", TOKEN);
    let log = sb.dir.path().join("warm.log");
    let outputs = vec![
        sb.warm(&[
            "--all",
            "-vvv",
            "--log-file",
            log.to_str().unwrap(),
            "--profile",
            "test",
        ])
        .output()
        .unwrap(),
        sb.status(&["--profile", "test", "-vvv", "--json"])
            .output()
            .unwrap(),
    ];
    assert_eq!(outputs[0].status.code(), Some(3), "{}", text(&outputs[0]));
    assert!(
        stderr(&outputs[0]).contains("exit status: 3"),
        "{}",
        text(&outputs[0])
    );
    // Neither its output nor its arguments (the secret is in both here).
    assert!(
        !stderr(&outputs[0]).contains("gpg: cannot decrypt"),
        "{}",
        text(&outputs[0])
    );
    assert!(
        stderr(&outputs[0]).contains("run it by hand"),
        "{}",
        text(&outputs[0])
    );
    assert_eq!(server.hits(), 0);
    assert_nothing_holds(&sb, &outputs, &[TOKEN]);
}

#[test]
fn a_profiles_file_others_can_write_is_refused_before_its_token_cmd_runs() {
    use std::os::unix::fs::PermissionsExt as _;
    let server = Hostile::start(|_, s, _| answer(s, "200 OK", &[], b"[]"));
    let marker = tempfile::tempdir().unwrap();
    let ran = marker.path().join("ran");
    let sb = dc_sandbox(
        &server.url(),
        &format!("token_cmd = \"touch {}; echo tok-123456\"", ran.display()),
    );
    std::fs::set_permissions(sb.config_path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 3);
    let expected = format!("chmod go-w {}", sb.config_path().display());
    assert!(stderr(&out).contains(&expected), "{}", text(&out));
    assert!(!ran.exists(), "token_cmd ran");
    assert_eq!(server.hits(), 0);
}

// ---- The file system ----------------------------------------------------------

fn project_server() -> Hostile {
    Hostile::start(|req, s, _| {
        if req.path.starts_with("/rest/api/2/project") {
            answer(
                s,
                "200 OK",
                &[],
                br#"[{"id":"1","key":"GOOD","name":"Good"}]"#,
            );
        } else {
            answer(s, "404 Not Found", &[], b"{}");
        }
    })
}

#[test]
fn a_lock_file_that_is_a_symlink_is_refused_and_its_target_untouched() {
    let server = project_server();
    let sb = dc_sandbox(&server.url(), "");
    std::fs::create_dir_all(sb.cache_dir()).unwrap();
    let victim = sb.dir.path().join("victim.txt");
    std::fs::write(&victim, "34 bytes that must stay as they are").unwrap();
    std::os::unix::fs::symlink(&victim, sb.cache_dir().join("test.lock")).unwrap();
    let out = run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 7);
    assert!(stderr(&out).contains("symbolic link"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "34 bytes that must stay as they are"
    );
    assert_eq!(server.hits(), 0);
}

#[test]
fn a_log_file_that_is_a_symlink_is_refused_and_a_new_one_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let server = project_server();
    let sb = dc_sandbox(&server.url(), "");
    // Bounded: a log that blocks must fail the test, not hang it.
    let warm_logging_to = |log: &Path| {
        sb.warm(&[
            "--projects",
            "--profile",
            "test",
            "--log-file",
            log.to_str().unwrap(),
        ])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap()
    };
    let victim = sb.dir.path().join("victim.txt");
    std::fs::write(&victim, "34 bytes that must stay as they are").unwrap();
    let link = sb.dir.path().join("warm.log");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = warm_logging_to(&link);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    no_panic(&out);
    assert!(stderr(&out).contains("symbolic link"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "34 bytes that must stay as they are"
    );
    assert_eq!(server.hits(), 0);

    // A named pipe would block the run until someone read it.
    let fifo = sb.dir.path().join("fifo.log");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string and mode.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = warm_logging_to(&fifo);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        text(&out)
    );

    let log = sb.dir.path().join("new.log");
    let out = warm_logging_to(&log);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A cron line that turns the log off.
    let out = warm_logging_to(Path::new("/dev/null"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_symlink_on_the_way_to_the_cache_is_refused_before_anything_is_created() {
    let server = project_server();
    let sb = dc_sandbox(&server.url(), "");
    let home = sb.home();
    let elsewhere = home.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    // ~/.cache is a link: the cache directory is below it.
    std::os::unix::fs::symlink(&elsewhere, home.join(".cache")).unwrap();
    let out = run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 7);
    assert!(
        stderr(&out).contains("is a symbolic link"),
        "{}",
        text(&out)
    );
    assert!(stderr(&out).contains("set `cache_dir`"), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(server.hits(), 0);
    // cache_status says so too, rather than "run cache_warm".
    let out = run_code(&mut sb.status(&["--profile", "test"]), 7);
    assert!(
        stderr(&out).contains("is a symbolic link"),
        "{}",
        text(&out)
    );

    // A cache warmed in place, then reached through a link.
    std::fs::remove_file(home.join(".cache")).unwrap();
    run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 0);
    let moved = home.join("moved");
    std::fs::rename(home.join(".cache"), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, home.join(".cache")).unwrap();
    let out = run_code(&mut sb.status(&["--profile", "test"]), 7);
    assert!(
        stderr(&out).contains("is a symbolic link"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_cache_file_that_is_a_symlink_is_refused_and_its_target_untouched() {
    let server = project_server();
    let sb = dc_sandbox(&server.url(), "");
    std::fs::create_dir_all(sb.cache_dir()).unwrap();
    let elsewhere = sb.dir.path().join("elsewhere.sqlite3");
    std::fs::write(&elsewhere, "").unwrap();
    std::os::unix::fs::symlink(&elsewhere, sb.cache_path("test")).unwrap();
    let out = run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 7);
    assert!(stderr(&out).contains("symbolic link"), "{}", text(&out));
    assert_eq!(
        std::fs::metadata(&elsewhere).unwrap().len(),
        0,
        "the target became a cache"
    );
    let status = sb.status(&["--profile", "test"]).output().unwrap();
    assert_eq!(status.status.code(), Some(7), "{}", text(&status));
}

#[test]
fn a_foreign_sqlite_file_is_refused_without_being_switched_to_wal() {
    let server = project_server();
    let sb = dc_sandbox(&server.url(), "");
    std::fs::create_dir_all(sb.cache_dir()).unwrap();
    let path = sb.cache_path("test");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    // Header bytes 18 and 19: 1 for a rollback journal, 2 for WAL.
    assert_eq!((before[18], before[19]), (1, 1));
    for out in [
        sb.warm(&["--projects", "--profile", "test"])
            .output()
            .unwrap(),
        sb.status(&["--profile", "test"]).output().unwrap(),
    ] {
        assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the foreign file was modified"
    );
    assert!(!Path::new(&format!("{}-wal", path.display())).exists());
}

#[test]
fn a_cache_directory_others_can_write_or_another_user_owns_is_warned_about() {
    use std::os::unix::fs::PermissionsExt as _;
    let server = project_server();
    let sb = dc_sandbox(&server.url(), "");
    std::fs::create_dir_all(sb.cache_dir()).unwrap();
    std::fs::set_permissions(sb.cache_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
    assert!(
        stderr(&out).contains("writable by other users"),
        "{}",
        text(&out)
    );
    std::fs::set_permissions(sb.cache_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
    assert!(
        !stderr(&out).contains("writable by other users"),
        "{}",
        text(&out)
    );
}

#[test]
fn cache_status_reads_a_cache_on_a_read_only_file_system_in_every_form() {
    let server = project_server();
    let sb = dc_sandbox(&server.url(), "");
    run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
    let _ = std::fs::remove_file(sb.cache_dir().join("test.lock"));
    let dir = sb.cache_dir();
    // A private mount namespace with the cache directory bound read-only.
    let probe = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!(
            "mount --bind '{0}' '{0}' && mount -o remount,bind,ro '{0}' '{0}' && ! touch '{0}/x' 2>/dev/null",
            dir.display()
        ))
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        panic!("this test needs `unshare -m` and bind mounts (root in a container allows them)");
    }
    let bin = env!("CARGO_BIN_EXE_cache_status");
    for (args, ok_codes) in [
        ("--profile test", vec![0]),
        ("--profile test --json", vec![0]),
        ("--profile test --keys project", vec![0]),
        ("--profile test --get project GOOD", vec![0, 10]),
        ("--profile test --check", vec![0, 1, 2]),
    ] {
        let out = sb
            .std_command("unshare")
            .args(["-m", "sh", "-c"])
            .arg(format!(
                "mount --bind '{0}' '{0}' && mount -o remount,bind,ro '{0}' '{0}' && exec '{bin}' {args}",
                dir.display()
            ))
            .output()
            .unwrap();
        assert!(
            ok_codes.contains(&out.status.code().unwrap_or(-1)),
            "{args}: {}",
            text(&out)
        );
    }
    assert!(
        !dir.join("test.lock").exists(),
        "cache_status needs no lock file"
    );
}

// ---- Smaller truths -----------------------------------------------------------

#[test]
fn ci_fails_when_the_shared_fixtures_are_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join(".ci")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run"),
        repo.join(".ci/run"),
    )
    .unwrap();
    let out = std::process::Command::new("bash")
        .arg(repo.join(".ci/run"))
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("../shared/jira/fixtures is missing"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_page_of_garbage_in_the_middle_of_the_file_is_critical_under_check_with_quick_check() {
    use std::io::{Seek, SeekFrom};
    let sb = dc_sandbox("http://127.0.0.1:9", "");
    big_cache(&sb);
    let path = sb.cache_path("test");
    let ok = sb
        .status(&["--profile", "test", "--check", "--quick-check"])
        .output()
        .unwrap();
    assert!(!stdout(&ok).contains("corrupt"), "{}", text(&ok));
    let len = std::fs::metadata(&path).unwrap().len();
    let page = 4096;
    let middle = (len / 2) / page * page;
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(middle)).unwrap();
    file.write_all(&vec![0xA5; page as usize]).unwrap();
    drop(file);
    let out = run_code(
        &mut sb.status(&["--profile", "test", "--check", "--quick-check"]),
        2,
    );
    assert!(
        stdout(&out).starts_with("JIRA-CACHE CRITICAL"),
        "{}",
        text(&out)
    );
    assert!(stdout(&out).contains("corrupt"), "{}", text(&out));
}

#[test]
fn check_reads_the_whole_file_on_its_own_once_a_day_and_records_when() {
    use std::io::{Seek, SeekFrom};
    let mut sb = dc_sandbox("http://127.0.0.1:9", "");
    big_cache(&sb);
    let path = sb.cache_path("test");
    let start = chrono::Utc::now();
    let at = |hours: i64| (start + chrono::Duration::hours(hours)).to_rfc3339();
    let last_check = |path: &Path| {
        jira_cache::cache::Cache::open_read_only(path)
            .unwrap()
            .last_quick_check()
            .unwrap()
    };
    assert_eq!(last_check(&path), None);
    // Never checked: a plain --check reads the file, and records when.
    sb.set_env("JIRA_CACHE_NOW", &at(0));
    let out = sb
        .status(&["--profile", "test", "--check"])
        .output()
        .unwrap();
    assert!(!stdout(&out).contains("corrupt"), "{}", text(&out));
    let recorded = last_check(&path).expect("the check was recorded");
    assert!(
        (recorded - start.timestamp_millis()).abs() < 1000,
        "recorded at the check's now: {recorded}"
    );

    // A page of garbage in the middle of the file.
    let len = std::fs::metadata(&path).unwrap().len();
    let page = 4096;
    let middle = (len / 2) / page * page;
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(middle)).unwrap();
    file.write_all(&vec![0xA5; page as usize]).unwrap();
    drop(file);

    // An hour later the check is not due: not read again (the garbage
    // lies where no figure of --check reads).
    sb.set_env("JIRA_CACHE_NOW", &at(1));
    let out = sb
        .status(&["--profile", "test", "--check"])
        .output()
        .unwrap();
    assert!(!stdout(&out).contains("corrupt"), "{}", text(&out));
    // A day later it is, and finds it: CRITICAL, without the flag.
    sb.set_env("JIRA_CACHE_NOW", &at(25));
    let out = run_code(&mut sb.status(&["--profile", "test", "--check"]), 2);
    assert!(
        stdout(&out).starts_with("JIRA-CACHE CRITICAL") && stdout(&out).contains("corrupt"),
        "{}",
        text(&out)
    );
}

/// A Cloud site of 12 projects with 200 issues of 4 KB each (about 10 MB
/// to write), and a profile `test` for it that fetches 2 at a time.
fn issues_of_4_kb() -> (fake_jira::FakeJira, Sandbox) {
    use fake_jira::{FakeJira, Flavor, Site, SiteSize};
    let site = Site::generated(
        Flavor::Cloud,
        SiteSize {
            projects: 12,
            users: 5,
            issues_per_project: 200,
            issue_bytes: 4000,
            recent_days: 25,
            ..Default::default()
        },
    );
    let fake = FakeJira::builder(Flavor::Cloud).site(site).start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\nconcurrency = 2",
    );
    (fake, sb)
}

#[test]
fn a_full_disk_is_reported_once_and_stops_the_run() {
    use std::os::unix::process::CommandExt;
    let (fake, sb) = issues_of_4_kb();
    run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
    let limit = std::fs::metadata(sb.cache_path("test")).unwrap().len() + 64 * 1024;
    let mut cmd = sb.warm_std(&["--issues", "--users", "--profile", "test"]);
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let cache = sb.cache_path("test").display().to_string();
    // stdout: only the summary's `cache <path>` (a failed project has no
    // line of its own by default); stderr: the one error.
    assert_eq!(stdout(&out).matches(&cache).count(), 1, "{}", text(&out));
    assert_eq!(stderr(&out).matches(&cache).count(), 1, "{}", text(&out));
    assert!(stderr(&out).contains("the disk refused"), "{}", text(&out));
    assert!(
        !stderr(&out).contains("--reset"),
        "the file is not to blame: {}",
        text(&out)
    );
    // The stage stopped fetching at the first failed write, not only
    // reporting once: of the 24 batches of 100 issues, only those already
    // started were fetched (twice the profile's concurrency of 2: two in
    // flight, two waiting for a slot).
    let bulk = fake.count_path("/rest/api/3/issue/bulkfetch");
    assert!(
        bulk <= 4,
        "{bulk} bulk fetches after the disk filled: {}",
        text(&out)
    );
}

#[test]
fn a_cache_file_corrupted_in_the_middle_of_a_warm_stops_it_at_the_first_error() {
    use fake_jira::{Fault, FaultKind, Gate};
    use std::io::{Seek, SeekFrom};
    use std::process::Stdio;
    let (fake, sb) = issues_of_4_kb();
    run_ok(&mut sb.warm(&["--projects", "--issues", "--profile", "test"]));
    let path = sb.cache_path("test");

    // The next warm is held at its first issue search, with its cache open,
    // while every page of the file past the first (the schema's) becomes
    // garbage: the warm meets the damage only when it reads or writes
    // entries, as it would a disk going bad under it.
    let gate = Gate::new();
    fake.faults().add(Fault::new(
        "/rest/api/3/search",
        FaultKind::Hold(gate.clone()),
    ));
    let child = sb
        .warm_std(&["--issues", "--full", "--profile", "test"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::events::wait_until("the warm reaches the issue search", || gate.reached() >= 1);
    let len = std::fs::metadata(&path).unwrap().len();
    let page = 4096;
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(page)).unwrap();
    file.write_all(&vec![0xA5; (len - page) as usize]).unwrap();
    drop(file);
    let bulk_before = fake.count_path("/rest/api/3/issue/bulkfetch");
    gate.open();
    let out = child.wait_with_output().unwrap();
    no_panic(&out);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("corrupt"), "{}", text(&out));
    assert!(err.contains("--reset"), "the next step: {}", text(&out));
    assert_eq!(
        err.matches("corrupt").count(),
        1,
        "reported once: {}",
        text(&out)
    );
    // The stage stopped at the first error: of the 24 batches of 100
    // issues, at most those already in flight (concurrency 2) were asked.
    let bulk = fake.count_path("/rest/api/3/issue/bulkfetch") - bulk_before;
    assert!(
        bulk <= 2,
        "{bulk} bulk fetches after the damage: {}",
        text(&out)
    );
    // And the operator's check says so.
    let check = run_code(&mut sb.status(&["--profile", "test", "--check"]), 2);
    assert!(
        stdout(&check).starts_with("JIRA-CACHE CRITICAL"),
        "{}",
        text(&check)
    );
}

// ---- Numbers no conversion may choke on (issue 14's audit) --------------------

#[test]
fn a_rate_limit_too_low_for_a_duration_is_one_line_not_a_panic() {
    use fake_jira::{FakeJira, Flavor};
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\nrate_limit = 1e-300",
    );
    let out = sb
        .warm(&["--projects", "--profile", "test"])
        .output()
        .unwrap();
    no_panic(&out);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stderr(&out).contains("rate_limit 1e-300 is too low"),
        "{}",
        text(&out)
    );
    assert_eq!(fake.request_count(), 0, "{}", text(&out));
}

#[test]
fn times_at_the_ends_of_i64_in_a_planted_cache_crash_no_reader_and_no_warm() {
    use fake_jira::{FakeJira, Flavor, Site, SiteSize};
    let fake = FakeJira::builder(Flavor::Cloud)
        .site(Site::generated(
            Flavor::Cloud,
            SiteSize {
                projects: 2,
                users: 3,
                issues_per_project: 5,
                ..Default::default()
            },
        ))
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    run_ok(&mut sb.warm(&["--all", "--profile", "test"]));
    let project: String = fake
        .site()
        .with(|s| s.projects[0]["key"].as_str().unwrap().into());
    // A hostile (or merely broken) file: times as far apart as an i64 goes.
    let conn = rusqlite::Connection::open(sb.cache_path("test")).unwrap();
    conn.execute_batch(&format!(
        "UPDATE runs SET started_at = {min}, ended_at = {max};
         UPDATE entries SET fetched_at = {min}, expires_at = {max}
             WHERE category = 'project' AND fetched_at IS NOT NULL;
         UPDATE entries SET fetched_at = {max}, expires_at = {min}
             WHERE category = 'issue' AND fetched_at IS NOT NULL;
         UPDATE listings SET fetched_at = {min}, expires_at = {max};
         UPDATE watermarks SET newest_updated_ms = {min}, warmed_at = {max};",
        min = i64::MIN,
        max = i64::MAX
    ))
    .unwrap();
    drop(conn);
    let mut outs = Vec::new();
    for args in [
        vec!["--profile", "test"],
        vec!["--profile", "test", "--json"],
        vec!["--profile", "test", "--check"],
        vec!["--profile", "test", "--prometheus"],
        vec!["--profile", "test", "--get", "project", &project],
    ] {
        outs.push(sb.status(&args).output().unwrap());
    }
    outs.push(sb.warm(&["--all", "--profile", "test"]).output().unwrap());
    outs.push(
        sb.warm(&["--issues", "--full", "--profile", "test"])
            .output()
            .unwrap(),
    );
    for out in &outs {
        no_panic(out);
    }
}

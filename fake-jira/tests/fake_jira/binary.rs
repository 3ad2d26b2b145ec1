//! The `fake-jira` binary: one line with its URL on stdout, serving until
//! SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-jira"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    (Running(child), line)
}

fn http_get(url: &str, path: &str, auth: &str) -> String {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connects");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reads");
    answer
}

#[test]
fn the_binary_prints_its_url_serves_and_stops_on_sigterm() {
    let (mut running, line) = spawn(&["--port", "0", "--flavor", "datacenter"]);
    let url = line
        .trim()
        .strip_prefix("fake-jira (datacenter) listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"));
    let answer = http_get(&url, "/rest/api/2/project", "Bearer dc-token-456");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""key":"FOR""#));

    let pid = running.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = running.0.wait().expect("the binary exits");
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    running
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("reads");
    assert!(stderr.contains("stopped"), "{stderr}");
}

#[test]
fn the_binary_serves_generated_data_with_the_given_credentials() {
    let (_running, line) = spawn(&[
        "--port",
        "0",
        "--generated",
        "--projects",
        "4",
        "--issues-per-project",
        "2",
        "--email",
        "me@example.com",
        "--token",
        "t0k3n",
        "--rate-limit",
        "100",
    ]);
    let url = line.trim().rsplit(' ').next().expect("a url").to_owned();
    // me@example.com:t0k3n
    let auth = "Basic bWVAZXhhbXBsZS5jb206dDBrM24=";
    let answer = http_get(&url, "/rest/api/3/project/search", auth);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""total":4"#), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-ratelimit-limit: 100"),
        "{answer}"
    );
    let refused = http_get(&url, "/rest/api/3/project/search", "Bearer nope");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
}

#[test]
fn the_binary_explains_a_fixture_directory_it_cannot_read() {
    let output = Command::new(env!("CARGO_BIN_EXE_fake-jira"))
        .args(["--port", "0", "--fixtures", "/nonexistent/fixtures"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot load fixtures from /nonexistent/fixtures"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn the_binary_prints_spec_violations_and_still_answers() {
    if !fake_jira::default_openapi_dir().is_dir() {
        eprintln!("skipped: the OpenAPI documents are absent");
        return;
    }
    let (mut running, line) = spawn(&["--port", "0", "--flavor", "datacenter"]);
    let url = line.trim().rsplit(' ').next().expect("a url").to_owned();
    let answer = http_get(&url, "/rest/api/2/field?bogus=1", "Bearer dc-token-456");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let pid = running.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = running.0.wait().expect("the binary exits");
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    running
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("reads");
    assert!(
        stderr.contains(
            "spec violation: GET /rest/api/2/field?bogus=1: query parameter `bogus` is not declared"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 request(s) broke the OpenAPI document"),
        "{stderr}"
    );
}

#[test]
fn the_binary_refuses_an_openapi_directory_without_the_documents() {
    let output = Command::new(env!("CARGO_BIN_EXE_fake-jira"))
        .args(["--port", "0", "--openapi", "/nonexistent/openapi"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/openapi"), "{stderr}");
}

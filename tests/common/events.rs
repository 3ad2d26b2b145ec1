//! Waiting on events instead of sleeping (issue 14): a line on a child's
//! stderr, a condition becoming true, a child ending. Each wait has a
//! generous limit, only so that a broken run fails its test instead of
//! hanging the suite; no test passes or fails by how fast something is.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long any wait may take before the test fails as hung.
pub const GUARD: Duration = Duration::from_secs(60);

/// The lines of a child's stream, as they come (read on their own thread).
pub fn stderr_lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`; returns the lines seen until then.
pub fn wait_for_line(lines: &Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + GUARD;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("no line with {needle:?} within {GUARD:?}; saw {seen:#?}")
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the stream ended without a line with {needle:?}; saw {seen:#?}")
            }
        }
    }
}

/// Waits until `cond` holds (checked every few milliseconds).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {GUARD:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// [`wait_until`] for async tests: yields to the runtime between checks.
pub async fn wait_until_async(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {GUARD:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits for a child to end; kills it and fails if it does not.
pub fn wait_child(child: &mut Child) -> ExitStatus {
    let mut status = None;
    wait_until("the child to end", || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    status.expect("ended")
}

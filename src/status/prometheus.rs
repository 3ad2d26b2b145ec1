//! `cache_status --prometheus`: a [`StatusReport`] in Prometheus' text
//! exposition format, for node_exporter's textfile collector.
//!
//! Names follow Prometheus' conventions: the `jira_cache_` prefix, base
//! units (`_bytes`, `_seconds`, ratios from 0 to 1), `_total` for the
//! counters that only grow (reads). Every sample carries the `profile`
//! label, so that the files of several profiles can sit side by side.
//! Figures that do not exist yet (no successful warm, no run) are left
//! out rather than given a made-up value.

use std::fmt::Write as _;

use crate::cache::ReadSource;

use super::{StatusReport, parse_rfc3339};

/// The results a run can have, one sample each for the last run.
const RESULTS: [&str; 6] = [
    "ok",
    "partial",
    "failed",
    "interrupted",
    "running",
    "abandoned",
];

/// One metric family being written: its help and type once, then samples.
struct Family<'a> {
    out: &'a mut String,
    profile: &'a str,
}

impl Family<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut text = format!("profile=\"{}\"", escape(self.profile));
        for (k, v) in labels {
            let _ = write!(text, ",{k}=\"{}\"", escape(v));
        }
        let _ = writeln!(self.out, "{name}{{{text}}} {}", number(value));
    }
}

/// The report as Prometheus text, as of `now_ms`.
pub fn prometheus(report: &StatusReport, now_ms: i64) -> String {
    let mut out = String::new();
    let mut f = Family {
        out: &mut out,
        profile: &report.profile,
    };
    let categories = &report.categories;
    let per_category =
        |f: &mut Family<'_>, name: &str, help: &str, value: &dyn Fn(usize) -> f64| {
            f.header(name, "gauge", help);
            for (i, c) in categories.iter().enumerate() {
                f.sample(name, &[("category", c.category.as_str())], value(i));
            }
        };
    per_category(&mut f, "jira_cache_entries", "Entries cached.", &|i| {
        categories[i].entries as f64
    });
    per_category(
        &mut f,
        "jira_cache_fresh_entries",
        "Entries not yet past their expiry.",
        &|i| categories[i].fresh as f64,
    );
    per_category(
        &mut f,
        "jira_cache_expired_entries",
        "Entries past their expiry (still served stale).",
        &|i| categories[i].expired as f64,
    );
    per_category(
        &mut f,
        "jira_cache_entry_bytes",
        "Bytes of cached keys and values.",
        &|i| categories[i].bytes as f64,
    );
    per_category(
        &mut f,
        "jira_cache_ttl_seconds",
        "The TTL of the category's entries (issues: issue_recent).",
        &|i| categories[i].ttl_seconds as f64,
    );

    f.header(
        "jira_cache_max_bytes",
        "gauge",
        "The profile's max_size cap on the bytes of entries.",
    );
    f.sample("jira_cache_max_bytes", &[], report.max_size as f64);
    f.header(
        "jira_cache_file_bytes",
        "gauge",
        "Size of the cache file on disk, write-ahead log included.",
    );
    f.sample("jira_cache_file_bytes", &[], report.file_bytes as f64);

    f.header(
        "jira_cache_reads_total",
        "counter",
        "Reads of the cache by source (library, serve, get) and outcome (hit, stale_hit, miss).",
    );
    for c in categories {
        for source in ReadSource::ALL {
            let counts = c.reads_by_source.get(&source).copied().unwrap_or_default();
            for (outcome, n) in [
                ("hit", counts.hits),
                ("stale_hit", counts.stale_hits),
                ("miss", counts.misses),
            ] {
                f.sample(
                    "jira_cache_reads_total",
                    &[
                        ("category", c.category.as_str()),
                        ("source", source.as_str()),
                        ("outcome", outcome),
                    ],
                    n as f64,
                );
            }
        }
    }
    let rated: Vec<_> = categories
        .iter()
        .filter_map(|c| c.hit_rate.map(|r| (c.category, r)))
        .collect();
    if !rated.is_empty() {
        f.header(
            "jira_cache_hit_ratio",
            "gauge",
            "Share of reads by programs (library and cache_serve, not --get) that found an entry, fresh or stale; what --check judges.",
        );
        for (category, rate) in rated {
            f.sample(
                "jira_cache_hit_ratio",
                &[("category", category.as_str())],
                rate,
            );
        }
    }

    if let Some(ended) = report.last_success.as_deref().and_then(parse_rfc3339) {
        f.header(
            "jira_cache_last_success_timestamp_seconds",
            "gauge",
            "When the last successful (ok) warm ended, Unix time.",
        );
        f.sample(
            "jira_cache_last_success_timestamp_seconds",
            &[],
            ended as f64 / 1000.0,
        );
        f.header(
            "jira_cache_last_success_age_seconds",
            "gauge",
            "Time since the last successful (ok) warm ended.",
        );
        f.sample(
            "jira_cache_last_success_age_seconds",
            &[],
            now_ms.saturating_sub(ended).max(0) as f64 / 1000.0,
        );
    }

    if let Some(run) = report.runs.first() {
        f.header(
            "jira_cache_last_run_result",
            "gauge",
            "1 for the result of the newest warm run, 0 for the others.",
        );
        for result in RESULTS {
            let on = if run.result == result { 1.0 } else { 0.0 };
            f.sample("jira_cache_last_run_result", &[("result", result)], on);
        }
        if let Some(started) = parse_rfc3339(&run.started) {
            f.header(
                "jira_cache_last_run_start_timestamp_seconds",
                "gauge",
                "When the newest warm run started, Unix time.",
            );
            f.sample(
                "jira_cache_last_run_start_timestamp_seconds",
                &[],
                started as f64 / 1000.0,
            );
        }
        // A run that never recorded its end has no figures to give.
        if let Some(seconds) = run.seconds.filter(|_| run.ended.is_some()) {
            for (name, help, value) in [
                (
                    "jira_cache_last_run_duration_seconds",
                    "How long the newest finished warm run took.",
                    seconds,
                ),
                (
                    "jira_cache_last_run_requests",
                    "HTTP requests the newest warm run sent, retries included.",
                    run.requests as f64,
                ),
                (
                    "jira_cache_last_run_retries",
                    "Requests of the newest warm run that were retries.",
                    run.retries as f64,
                ),
                (
                    "jira_cache_last_run_throttled_responses",
                    "429 (and 503 with Retry-After) answers the newest warm run got.",
                    run.throttled as f64,
                ),
            ] {
                f.header(name, "gauge", help);
                f.sample(name, &[], value);
            }
        }
    }
    out
}

/// A label value with `\`, `"` and newlines escaped, as the format asks.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: integers without a fraction, others as Rust prints them.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_quotes_backslashes_and_newlines() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
    }
}

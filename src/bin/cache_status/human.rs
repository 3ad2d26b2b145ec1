//! The human-readable output of `cache_status`: aligned tables, rendered to
//! a `String` so the binary prints once. Times are shown in local time to
//! the minute; colour (result and health words only) only when asked, which
//! the binary decides from the terminal and `NO_COLOR`.

use std::fmt::Write as _;
use std::time::Duration;

use jira_cache::status::{CheckLevel, CheckOutcome, StatusReport, parse_rfc3339};

use crate::common;

/// Projects listed before the rest is summed up in one line.
const PROJECTS_SHOWN: usize = 25;

/// How a cell is coloured, when colour is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
}

impl Tone {
    fn of_result(result: &str) -> Tone {
        match result {
            "ok" => Tone::Good,
            "failed" => Tone::Bad,
            "running" => Tone::Plain,
            _ => Tone::Warn,
        }
    }

    fn of_level(level: CheckLevel) -> Tone {
        match level {
            CheckLevel::Ok => Tone::Good,
            CheckLevel::Warning => Tone::Warn,
            CheckLevel::Critical | CheckLevel::Unknown => Tone::Bad,
        }
    }

    /// `text` in this tone's colour (or as is).
    fn paint(self, text: &str, colour: bool) -> String {
        let code = match self {
            Tone::Plain => return text.to_string(),
            Tone::Good => "32",
            Tone::Warn => "33",
            Tone::Bad => "31",
        };
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// A table cell: its text and its tone.
struct Cell {
    text: String,
    tone: Tone,
}

impl<T: Into<String>> From<T> for Cell {
    fn from(text: T) -> Cell {
        Cell {
            text: text.into(),
            tone: Tone::Plain,
        }
    }
}

fn toned(text: impl Into<String>, tone: Tone) -> Cell {
    Cell {
        text: text.into(),
        tone,
    }
}

/// An aligned table: columns two spaces apart, those in `right`
/// right-aligned, no trailing spaces. Columns in `optional` are dropped, in
/// that order, while the table is wider than the width it is rendered at.
struct Table {
    header: Vec<&'static str>,
    right: Vec<usize>,
    optional: Vec<usize>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    fn new(header: Vec<&'static str>, right: Vec<usize>) -> Table {
        Table {
            header,
            right,
            optional: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// The width of each column.
    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.text.chars().count());
            }
        }
        widths
    }

    /// Whether the whole table fits in `width` columns.
    fn fits(&self, width: usize) -> bool {
        let widths = self.widths();
        widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1) <= width
    }

    fn render(&self, out: &mut String, colour: bool, width: usize) {
        let widths = self.widths();
        let mut shown: Vec<usize> = (0..widths.len()).collect();
        let total = |shown: &[usize]| {
            shown.iter().map(|&i| widths[i]).sum::<usize>() + 2 * shown.len().saturating_sub(1)
        };
        for &drop in &self.optional {
            if total(&shown) <= width {
                break;
            }
            shown.retain(|&i| i != drop);
        }
        let header: Vec<Cell> = self.header.iter().map(|&h| Cell::from(h)).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let last = shown.last().copied().unwrap_or(0);
            let parts: Vec<String> = row
                .iter()
                .enumerate()
                .filter(|(i, _)| shown.contains(i))
                .map(|(i, cell)| {
                    let w = widths[i];
                    let padded = if self.right.contains(&i) {
                        format!("{:>w$}", cell.text)
                    } else if i == last {
                        cell.text.clone()
                    } else {
                        format!("{:<w$}", cell.text)
                    };
                    // Colour the text only, so the padding stays aligned.
                    let text = cell.text.as_str();
                    padded.replacen(text, &cell.tone.paint(text, colour), 1)
                })
                .collect();
            let _ = writeln!(out, "{}", parts.join("  ").trim_end());
        }
    }
}

/// How the report is laid out.
pub struct Layout {
    /// Colour the result and health words.
    pub colour: bool,
    /// The columns to fit in.
    pub width: usize,
    /// How many runs `--runs` asked for (0: no run history).
    pub runs_asked: usize,
}

/// The whole report of one profile, starting with `verdict`, the
/// `--check` judgement.
pub fn report(r: &StatusReport, verdict: &CheckOutcome, now: i64, layout: &Layout) -> String {
    let (colour, width) = (layout.colour, layout.width);
    let mut out = String::new();
    // The judgement in words: the --check summary without its profile
    // prefix (the next line names the profile) or its performance data.
    let details = verdict
        .summary
        .strip_prefix(&format!("{}: ", r.profile))
        .unwrap_or(&verdict.summary);
    // Before wrapping: a suggested command gains the user's flags.
    let details = common::with_user_flags(details);
    let level = Tone::of_level(verdict.level).paint(verdict.level.as_str(), colour);
    wrap(&mut out, &format!("{level}: {details}"), width, 2);
    let deployment = r
        .deployment
        .as_deref()
        .unwrap_or("deployment not yet probed");
    wrap(
        &mut out,
        &format!("Profile  {} ({}, {deployment})", r.profile, r.site),
        width,
        9,
    );
    if !r.exists {
        // The verdict above says how to make one.
        let _ = writeln!(out, "Cache    {} (not created yet)", r.cache_path);
        return out;
    }
    let _ = writeln!(out, "Cache    {}", r.cache_path);
    let cap = if r.total_bytes > r.max_size {
        Tone::Bad.paint(
            &format!("over its cap of {}", common::bytes(r.max_size)),
            colour,
        )
    } else {
        format!("cap {}", common::bytes(r.max_size))
    };
    // A PostgreSQL store has no file: its entries table (every profile
    // sharing the schema) is what it takes.
    let stored = if r.cache_path.starts_with("postgres://") {
        "table"
    } else {
        "file"
    };
    let _ = writeln!(
        out,
        "Size     {} of entries ({cap}; {stored} {})",
        common::bytes(r.total_bytes),
        common::bytes(r.file_bytes)
    );
    let warmed = match r.last_success.as_deref() {
        Some(t) => format!("last ok run ended {} ({} ago)", local(Some(t)), ago(t, now)),
        None => Tone::Warn.paint("no successful warm recorded yet", colour),
    };
    let _ = writeln!(out, "Warmed   {warmed}");
    if !r.partial_lists.is_empty() {
        let line = format!(
            "{} cached lists are partial (the site cannot give them in full): {}",
            r.partial_lists.len(),
            r.partial_lists.join(", ")
        );
        let _ = writeln!(out, "Partial  {}", Tone::Warn.paint(&line, colour));
    }

    out.push('\n');
    categories(&mut out, r, layout);
    if !r.projects.is_empty() {
        out.push('\n');
        let mut projects = Table::new(
            vec!["PROJECT", "ISSUES", "WATERMARK", "ISSUES WARMED"],
            vec![1],
        );
        for p in r.projects.iter().take(PROJECTS_SHOWN) {
            projects.rows.push(vec![
                p.project.as_str().into(),
                p.issues.to_string().into(),
                local(p.watermark.as_deref()).into(),
                local(p.issues_warmed.as_deref()).into(),
            ]);
        }
        projects.render(&mut out, colour, width);
        if r.projects.len() > PROJECTS_SHOWN {
            let _ = writeln!(
                out,
                "… and {} more projects (`--json` lists them all)",
                r.projects.len() - PROJECTS_SHOWN
            );
        }
    }
    if layout.runs_asked > 0 {
        out.push('\n');
        runs(&mut out, r, layout);
    }
    out
}

/// The categories: one table if it fits, else the figures and the times
/// as two.
fn categories(out: &mut String, r: &StatusReport, layout: &Layout) {
    let mut figures = Table::new(
        vec![
            "CATEGORY", "ENTRIES", "FRESH", "EXPIRED", "SIZE", "TTL", "HIT RATE",
        ],
        vec![1, 2, 3, 4, 5, 6],
    );
    let mut times = Table::new(
        vec!["CATEGORY", "OLDEST FETCH", "NEWEST FETCH", "NEXT EXPIRY"],
        vec![],
    );
    for c in &r.categories {
        let reads = c.reads();
        let hit_rate = match c.hit_rate {
            Some(rate) if reads > 0 => {
                format!("{:.0}% ({}/{reads})", rate * 100.0, c.hits + c.stale_hits)
            }
            _ => "-".to_string(),
        };
        let ttl = common::duration(Duration::from_secs(c.ttl_seconds));
        // Issues have two TTLs: recently updated ones, and the rest.
        let ttl = match c.ttl_old_seconds {
            Some(old) => format!("{ttl} / {}", common::duration(Duration::from_secs(old))),
            None => ttl,
        };
        figures.rows.push(vec![
            c.category.to_string().into(),
            c.entries.to_string().into(),
            c.fresh.to_string().into(),
            c.expired.to_string().into(),
            common::bytes(c.bytes).into(),
            ttl.into(),
            hit_rate.into(),
        ]);
        times.rows.push(vec![
            c.category.to_string().into(),
            local(c.oldest_fetch.as_deref()).into(),
            local(c.newest_fetch.as_deref()).into(),
            local(c.next_expiry.as_deref()).into(),
        ]);
    }
    // Side by side when the terminal is wide enough.
    let mut wide = Table::new(
        [figures.header.clone(), times.header[1..].to_vec()].concat(),
        vec![1, 2, 3, 4, 5, 6],
    );
    wide.rows = figures
        .rows
        .iter()
        .zip(&times.rows)
        .map(|(f, t)| {
            f.iter()
                .chain(&t[1..])
                .map(|c| toned(c.text.clone(), c.tone))
                .collect()
        })
        .collect();
    if wide.fits(layout.width) {
        wide.render(out, layout.colour, layout.width);
    } else {
        figures.render(out, layout.colour, layout.width);
        out.push('\n');
        times.render(out, layout.colour, layout.width);
    }
    if r.exists && r.categories.iter().any(|c| c.ttl_old_seconds.is_some()) {
        let _ = writeln!(
            out,
            "Issue TTL: issue_recent (updated in the last 7 days) / issue_old."
        );
    }
}

/// The run history, to the second; the columns people need least are
/// dropped first on a narrow terminal.
fn runs(out: &mut String, r: &StatusReport, layout: &Layout) {
    let colour = layout.colour;
    if r.runs.is_empty() {
        let _ = writeln!(out, "No warm runs recorded yet.");
        return;
    }
    let mut runs = Table::new(
        vec![
            "LAST RUNS",
            "TOOK",
            "STAGES",
            "RESULT",
            "REQUESTS",
            "RETRIES",
            "THROTTLED",
            "WRITTEN",
            "UNCHANGED",
            "REMOVED",
        ],
        vec![1, 4, 5, 6, 7, 8, 9],
    );
    // UNCHANGED, RETRIES, STAGES: in the errors below and in --json.
    runs.optional = vec![8, 5, 2];
    for run in &r.runs {
        // A run that never recorded its end has no counts to show.
        let count = |n: u64| -> Cell {
            match run.ended {
                Some(_) => n.to_string().into(),
                None => "-".into(),
            }
        };
        runs.rows.push(vec![
            local_seconds(&run.started).into(),
            run.seconds
                .map(|s| common::duration(Duration::from_secs_f64(s.max(0.0))))
                .unwrap_or_else(|| "-".into())
                .into(),
            run.stages.as_str().into(),
            toned(run.result.as_str(), Tone::of_result(&run.result)),
            count(run.requests),
            count(run.retries),
            count(run.throttled),
            count(run.written),
            count(run.unchanged),
            count(run.removed),
        ]);
    }
    runs.render(out, colour, layout.width);
    if let Some((run, rate)) = r
        .runs
        .first()
        .and_then(|run| Some((run, run.rate.as_ref()?)))
        .filter(|(run, rate)| run.throttled > 0 || rate.slowed_early > 0)
    {
        let ceiling = match rate.ceiling {
            Some(c) => format!("rate_limit {c}"),
            None => "rate_limit unlimited".into(),
        };
        let settled = match rate.settled {
            Some(s) => format!("settled at {s:.1} requests/s ({ceiling})"),
            None => format!("back to full speed ({ceiling})"),
        };
        out.push('\n');
        let line = format!(
            "The site limited the last run: {} throttled, {} early slow-downs, paused {:.1} s; {settled}",
            run.throttled, rate.slowed_early, rate.waited_seconds
        );
        wrap(out, &line, layout.width, 2);
    }
    for run in r.runs.iter().filter(|run| !run.errors.is_empty()) {
        out.push('\n');
        let heading = format!(
            "Errors of the run of {} ({}; stages {}):",
            local_seconds(&run.started),
            Tone::of_result(&run.result).paint(&run.result, colour),
            run.stages
        );
        wrap(out, &heading, layout.width, 2);
        for e in &run.errors {
            wrap(out, &format!("  {e}"), layout.width, 4);
        }
    }
}

/// Appends `text` as lines of at most `width` columns, broken at spaces;
/// lines after the first are indented by `indent`. A word longer than a
/// line stays whole.
fn wrap(out: &mut String, text: &str, width: usize, indent: usize) {
    let body = text.trim_start_matches(' ');
    let mut line = text[..text.len() - body.len()].to_string();
    let mut len = line.len();
    let lead = len;
    for word in body.split(' ') {
        let wlen = word.chars().count();
        if len > indent.max(lead) && len + 1 + wlen > width {
            let _ = writeln!(out, "{}", line.trim_end());
            line = " ".repeat(indent);
            len = indent;
        } else if len > lead {
            line.push(' ');
            len += 1;
        }
        line.push_str(word);
        len += wlen;
    }
    let _ = writeln!(out, "{}", line.trim_end());
}

/// One line of `--all-profiles`.
pub struct ProfileRow<'a> {
    /// The profile's name.
    pub profile: &'a str,
    /// Its health, as `--check` judges it.
    pub health: CheckLevel,
    /// Its figures, unless they could not be read.
    pub report: Option<&'a StatusReport>,
    /// Why they could not be read.
    pub error: Option<&'a str>,
}

/// `--all-profiles`: one line per profile.
pub fn profiles(rows: &[ProfileRow<'_>], now: i64, colour: bool, width: usize) -> String {
    let mut table = Table::new(
        vec![
            "PROFILE",
            "HEALTH",
            "ENTRIES",
            "SIZE",
            "CAP",
            "LAST OK WARM",
            "LAST RUN",
            "SITE",
        ],
        vec![2, 3, 4],
    );
    for row in rows {
        let health = toned(row.health.as_str(), Tone::of_level(row.health));
        let cells = match (row.report, row.error) {
            (Some(r), _) => vec![
                row.profile.into(),
                health,
                r.categories
                    .iter()
                    .map(|c| c.entries)
                    .sum::<u64>()
                    .to_string()
                    .into(),
                common::bytes(r.total_bytes).into(),
                common::bytes(r.max_size).into(),
                match r.last_success.as_deref() {
                    Some(t) => format!("{} ago", ago(t, now)).into(),
                    None => toned(if r.exists { "never" } else { "no cache" }, Tone::Warn),
                },
                match r.runs.first() {
                    Some(run) => toned(run.result.as_str(), Tone::of_result(&run.result)),
                    None => "-".into(),
                },
                r.site.as_str().into(),
            ],
            (None, error) => {
                let mut cells: Vec<Cell> = vec![row.profile.into(), health];
                cells.extend((0..5).map(|_| Cell::from("-")));
                cells.push(format!("error: {}", error.unwrap_or("unknown")).into());
                cells
            }
        };
        table.rows.push(cells);
    }
    let mut out = String::new();
    table.render(&mut out, colour, width);
    out
}

/// An RFC 3339 time shown in local time, to the second.
fn local_seconds(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| "-".into())
}

/// An RFC 3339 time shown in local time, to the minute; `-` for none.
fn local(t: Option<&str>) -> String {
    t.and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

/// How long before `now` an RFC 3339 time was: `59 min`, `1 d 2 h`.
fn ago(t: &str, now: i64) -> String {
    let then = parse_rfc3339(t).unwrap_or(now);
    let ms = u64::try_from(now - then).unwrap_or(0);
    common::duration(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_colour_only_the_text() {
        let mut t = Table::new(vec!["NAME", "N", "RESULT"], vec![1]);
        t.rows
            .push(vec!["a".into(), "10".into(), toned("ok", Tone::Good)]);
        t.rows.push(vec![
            "bbbbbb".into(),
            "2".into(),
            toned("failed", Tone::Bad),
        ]);
        let mut plain = String::new();
        t.render(&mut plain, false, 80);
        assert_eq!(
            plain,
            "NAME     N  RESULT\na       10  ok\nbbbbbb   2  failed\n"
        );
        let mut coloured = String::new();
        t.render(&mut coloured, true, 80);
        assert!(
            coloured.contains("a       10  \x1b[32mok\x1b[0m\n"),
            "{coloured:?}"
        );
    }
}

//! Running `cache_warm` unattended: the crontab line and systemd units for a
//! profile's `schedule`, and the quiet-hours guard's clock.
//!
//! Cron and systemd start with none of the user's environment, so a token
//! kept in `token_env` has to come from a file the job reads; the printed
//! output says so and names `token_cmd` as the cleaner fix.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Local, NaiveTime};
use jira_cache::profile::{Profile, TokenSource};
use jira_cache::warm;

/// The time the quiet-hours guard reads: now, or `JIRA_CACHE_NOW`
/// (RFC 3339) when set, so that tests can stand at any hour.
pub fn local_now() -> DateTime<Local> {
    std::env::var("JIRA_CACHE_NOW")
        .ok()
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Local))
        .unwrap_or_else(Local::now)
}

/// The time of day of [`local_now`].
pub fn local_time_of_day() -> NaiveTime {
    local_now().time()
}

/// Which fresh listings a warm may skip: none with `--full`; otherwise
/// those that stay fresh past the profile's next scheduled warm, with room
/// for that warm to reach them (twice the last good run, at least
/// [`warm::MIN_SCHEDULE_MARGIN`]).
pub fn fresh_policy(
    profile: &Profile,
    full: bool,
    reader: Option<&jira_cache::cache::CacheReader>,
) -> warm::FreshPolicy {
    let now = local_now();
    let (next_schedule_ms, schedule_problem) =
        match profile.schedule.parse::<jira_cache::cron::CronSchedule>() {
            Ok(s) => match s.next_after(&now) {
                Some(next) => (Some(next.timestamp_millis()), None),
                None => (
                    None,
                    Some(format!("`{}` never comes round", profile.schedule)),
                ),
            },
            Err(e) => (None, Some(e)),
        };
    let last_run = reader
        .and_then(|r| r.runs(5).ok())
        .into_iter()
        .flatten()
        .filter(|r| r.result == jira_cache::cache::RunResult::Ok)
        .find_map(|r| r.ended_at.map(|end| end - r.started_at))
        .unwrap_or(0);
    let margin = Duration::from_millis(u64::try_from(last_run.saturating_mul(2)).unwrap_or(0))
        .max(warm::MIN_SCHEDULE_MARGIN);
    warm::FreshPolicy {
        skip_fresh: !full,
        next_schedule_ms,
        schedule_problem,
        margin,
    }
}

/// The absolute path of the running binary.
fn binary() -> PathBuf {
    std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .unwrap_or_else(|_| PathBuf::from("cache_warm"))
}

/// The file a scheduled job reads the token from, when it comes from `token_env`.
fn env_file(profile: &Profile) -> PathBuf {
    let dir = match &profile.source {
        jira_cache::profile::ProfileSource::File(path) => path.parent().map(Path::to_path_buf),
        jira_cache::profile::ProfileSource::Environment => None,
    };
    dir.unwrap_or_else(|| profile.cache_dir.clone())
        .join(format!("{}.env", profile.name))
}

fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn command_line(profile: &Profile) -> String {
    let mut args = vec![quote(&binary().display().to_string()), "--all".into()];
    if let jira_cache::profile::ProfileSource::File(path) = &profile.source {
        args.push("--config".into());
        args.push(quote(&path.display().to_string()));
    }
    args.extend(["--profile".into(), quote(&profile.name), "--quiet".into()]);
    args.join(" ")
}

/// The crontab line (and, for a `token_env` token, the file it sources).
pub fn cron(profile: &Profile) -> String {
    let command = command_line(profile);
    match &profile.token {
        TokenSource::Command(_) => format!(
            "# jira-cache: warm profile `{}` on its schedule; the token comes from token_cmd\n{} {command}\n",
            profile.name, profile.schedule
        ),
        TokenSource::Env(var) => {
            let file = env_file(profile);
            format!(
                "# jira-cache: warm profile `{name}` on its schedule.\n\
                 # Cron has none of your environment: {file} must hold `export {var}=...`\n\
                 # (chmod 600). Better: set token_cmd in the profile (e.g. token_cmd = \"pass show jira\").\n\
                 {schedule} . {qfile} && {command}\n",
                name = profile.name,
                file = file.display(),
                qfile = quote(&file.display().to_string()),
                schedule = profile.schedule,
            )
        }
    }
}

/// A systemd service and timer pair for the profile.
pub fn systemd(profile: &Profile) -> String {
    let unit = format!("jira-cache-warm-{}", profile.name);
    let calendar = cron_to_on_calendar(&profile.schedule);
    let env_line = match &profile.token {
        TokenSource::Env(var) => format!(
            "# {file} holds {var}=... (no `export`; chmod 600), or set token_cmd in the profile and drop this line.\n\
             EnvironmentFile={file}\n",
            file = env_file(profile).display()
        ),
        TokenSource::Command(_) => String::new(),
    };
    let calendar_line = match calendar {
        Some(c) => format!("OnCalendar={c}\n"),
        None => format!(
            "# The schedule `{}` has no direct OnCalendar form; write one by hand:\nOnCalendar=*-*-* 06:00:00\n",
            profile.schedule
        ),
    };
    format!(
        "# ~/.config/systemd/user/{unit}.service\n\
         [Unit]\n\
         Description=Warm the Jira cache of profile {name}\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         {env_line}\
         ExecStart={command}\n\
         \n\
         # ~/.config/systemd/user/{unit}.timer\n\
         [Unit]\n\
         Description=Warm the Jira cache of profile {name} on schedule\n\
         \n\
         [Timer]\n\
         {calendar_line}\
         Persistent=true\n\
         RandomizedDelaySec=120\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n\
         \n\
         # Then: systemctl --user daemon-reload && systemctl --user enable --now {unit}.timer\n",
        name = profile.name,
        command = command_line(profile),
    )
}

/// Converts a five-field cron schedule to a systemd `OnCalendar` value, for
/// numbers, `*`, lists, ranges and `*/step`; `None` for anything else.
pub fn cron_to_on_calendar(schedule: &str) -> Option<String> {
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return None;
    };
    let minute = calendar_field(minute, 0, 59)?;
    let hour = calendar_field(hour, 0, 23)?;
    let dom = calendar_field(dom, 1, 31)?;
    let month = calendar_field(month, 1, 12)?;
    let days = if *dow == "*" {
        String::new()
    } else {
        format!("{} ", weekdays(dow)?)
    };
    Some(format!("{days}*-{month}-{dom} {hour}:{minute}:00"))
}

fn calendar_field(field: &str, min: u32, max: u32) -> Option<String> {
    if field == "*" {
        return Some("*".into());
    }
    if let Some(step) = field.strip_prefix("*/") {
        let step: u32 = step.parse().ok().filter(|s| *s > 0)?;
        return Some(format!("{min:02}/{step}"));
    }
    let mut parts = Vec::new();
    for part in field.split(',') {
        let piece = match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b || a < min || b > max {
                    return None;
                }
                format!("{a:02}..{b:02}")
            }
            None => {
                let n: u32 = part.parse().ok()?;
                if n < min || n > max {
                    return None;
                }
                format!("{n:02}")
            }
        };
        parts.push(piece);
    }
    Some(parts.join(","))
}

fn weekdays(field: &str) -> Option<String> {
    const NAMES: [&str; 8] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let name = |s: &str| s.parse::<usize>().ok().and_then(|n| NAMES.get(n).copied());
    let mut parts = Vec::new();
    for part in field.split(',') {
        match part.split_once('-') {
            Some((a, b)) => parts.push(format!("{}..{}", name(a)?, name(b)?)),
            None => parts.push(name(part)?.to_string()),
        }
    }
    Some(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_schedules_become_on_calendar_values() {
        assert_eq!(
            cron_to_on_calendar("0 6 * * *").as_deref(),
            Some("*-*-* 06:00:00")
        );
        assert_eq!(
            cron_to_on_calendar("30 7 * * 1-5").as_deref(),
            Some("Mon..Fri *-*-* 07:30:00")
        );
        assert_eq!(
            cron_to_on_calendar("*/15 5,6 1 1,7 0").as_deref(),
            Some("Sun *-01,07-01 05,06:00/15:00")
        );
        assert_eq!(cron_to_on_calendar("0 6 L * *"), None);
        assert_eq!(cron_to_on_calendar("0 25 * * *"), None);
    }

    #[test]
    fn paths_with_spaces_are_quoted_for_the_shell() {
        assert_eq!(quote("/usr/bin/cache_warm"), "/usr/bin/cache_warm");
        assert_eq!(quote("/home/a b/x"), "'/home/a b/x'");
    }
}

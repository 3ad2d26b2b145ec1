//! Running `cache_warm` unattended: the crontab line and systemd units for a
//! profile's `schedule`, and the quiet-hours guard's clock.
//!
//! Cron and systemd start with none of the user's environment, so a token
//! kept in `token_env` has to come from a file the job reads; the printed
//! output says so and names `token_cmd` as the cleaner fix.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Local, NaiveTime};
use jira_cache::profile::{Profile, TokenSource};
use jira_cache::schedule::CronSchedule;
use jira_cache::warm;

use crate::common::recipe::{build_directory_warning, env_file, env_file_note, quote};

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
    let (next_schedule_ms, schedule_problem) = match profile.schedule.parse::<CronSchedule>() {
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
        .find_map(|r| r.ended_at.map(|end| end.saturating_sub(r.started_at)))
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

/// What to fix before installing a recipe that runs `binary` on the
/// profile's schedule.
fn warnings(profile: &Profile, binary: &Path) -> Vec<String> {
    build_directory_warning(binary)
        .into_iter()
        .chain(quiet_hours_warning(profile, Local::now()))
        .collect()
}

/// How many of the schedule's runs to look at for quiet hours: a year of a
/// daily job, a few days of an every-minute one.
const RUNS_TO_CHECK: usize = 400;

/// A warning when runs of the profile's schedule (from `now`, in local
/// time, as cron and the quiet-hours guard read it) fall inside its
/// `quiet_hours`: each such run is refused with exit 6.
fn quiet_hours_warning(profile: &Profile, now: DateTime<Local>) -> Option<String> {
    let quiet = profile.quiet_hours.as_ref()?;
    let schedule: CronSchedule = profile.schedule.parse().ok()?;
    let mut at = now;
    let (mut runs, mut refused) = (0usize, 0usize);
    while runs < RUNS_TO_CHECK {
        let Some(next) = schedule.next_after(&at) else {
            break;
        };
        runs += 1;
        if quiet.contains(next.time()) {
            refused += 1;
        }
        at = next;
    }
    let window = format!(
        "{}-{}",
        quiet.start.format("%H:%M"),
        quiet.end.format("%H:%M")
    );
    if refused == 0 {
        return None;
    }
    let schedule = &profile.schedule;
    let how_many = match refused == runs {
        true => format!("every run of schedule `{schedule}` falls"),
        false => format!("{refused} of the next {runs} runs of schedule `{schedule}` fall"),
    };
    Some(format!(
        "warning: {how_many} inside quiet_hours {window} and will be refused (exit 6); move the schedule or the quiet hours"
    ))
}

fn command_line(profile: &Profile, binary: &Path) -> String {
    let mut args = vec![quote(&binary.display().to_string()), "--all".into()];
    if let jira_cache::profile::ProfileSource::File(path) = &profile.source {
        args.push("--config".into());
        args.push(quote(&path.display().to_string()));
    }
    args.extend(["--profile".into(), quote(&profile.name), "--quiet".into()]);
    args.join(" ")
}

/// What `--print-cron` and `--print-systemd` print: the text for stdout and
/// a warning for stderr, if any.
pub struct Recipe {
    /// The crontab line or the units, with their comments.
    pub text: String,
    /// Things to fix before installing it.
    pub warnings: Vec<String>,
}

/// The crontab line (and, for a `token_env` token, the file it sources).
pub fn cron(profile: &Profile) -> Recipe {
    cron_for(profile, &crate::common::recipe::binary("cache_warm"))
}

fn cron_for(profile: &Profile, binary: &Path) -> Recipe {
    // In a crontab an unescaped `%` ends the command.
    let command = command_line(profile, binary).replace('%', "\\%");
    let text = match &profile.token {
        TokenSource::Command(_) => format!(
            "# jira-cache: warm profile `{}` on its schedule; the token comes from token_cmd\n{} {command}\n",
            profile.name, profile.schedule
        ),
        TokenSource::Env(var) => {
            let file = env_file(profile);
            format!(
                "# jira-cache: warm profile `{name}` on its schedule.\n\
                 # Cron has none of your environment:\n\
                 {note}\
                 {schedule} set -a && . {qfile} && set +a && {command}\n",
                name = profile.name,
                note = env_file_note(profile, var),
                qfile = quote(&file.display().to_string()).replace('%', "\\%"),
                schedule = profile.schedule,
            )
        }
    };
    Recipe {
        text,
        warnings: warnings(profile, binary),
    }
}

/// A systemd service and timer pair for the profile, or why its schedule
/// cannot be one.
pub fn systemd(profile: &Profile) -> Result<Recipe, String> {
    systemd_for(profile, &crate::common::recipe::binary("cache_warm"))
}

fn systemd_for(profile: &Profile, binary: &Path) -> Result<Recipe, String> {
    let schedule: CronSchedule = profile.schedule.parse().map_err(|e| {
        format!(
            "profile `{}`: cannot convert its schedule to a systemd timer: {e}",
            profile.name
        )
    })?;
    let unit = format!("jira-cache-warm-{}", profile.name);
    let env_line = match &profile.token {
        TokenSource::Env(var) => format!(
            "{}EnvironmentFile={}\n",
            env_file_note(profile, var),
            env_file(profile).display()
        ),
        TokenSource::Command(_) => String::new(),
    };
    let calendar = schedule.on_calendar();
    let calendar_note = if calendar.len() > 1 {
        format!(
            "# `{schedule}` names both a day of the month and a day of the week: cron runs on either,\n\
             # so the timer has one OnCalendar per day rule.\n"
        )
    } else {
        String::new()
    };
    let calendar_lines: String = calendar
        .iter()
        .map(|c| format!("OnCalendar={c}\n"))
        .collect();
    // systemd expands `%` specifiers in ExecStart.
    let command = command_line(profile, binary).replace('%', "%%");
    let text = format!(
        "# ~/.config/systemd/user/{unit}.service\n\
         [Unit]\n\
         Description=Warm the Jira cache of profile {name}\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         {env_line}\
         ExecStart={command}\n\
         \n\
         # ~/.config/systemd/user/{unit}.timer\n\
         [Unit]\n\
         Description=Warm the Jira cache of profile {name} on schedule ({schedule})\n\
         \n\
         [Timer]\n\
         {calendar_note}\
         {calendar_lines}\
         Persistent=true\n\
         RandomizedDelaySec=120\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n\
         \n\
         # Then: systemctl --user daemon-reload && systemctl --user enable --now {unit}.timer\n\
         # User timers fire only while you are logged in, unless lingering is on: loginctl enable-linger \"$USER\"\n",
        name = profile.name,
    );
    Ok(Recipe {
        text,
        warnings: warnings(profile, binary),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(schedule: &str) -> Profile {
        let dir = tempfile::tempdir().unwrap().keep();
        let path = dir.join("profiles.toml");
        let text = format!(
            "[profiles.prod]\nurl = \"https://example.atlassian.net\"\nemail = \"a@b.c\"\nschedule = \"{schedule}\"\ncache_dir = \"/var/cache/jc\"\n"
        );
        std::fs::write(&path, text).unwrap();
        let options = jira_cache::profile::LoadOptions::from_process_env(Some(path), None);
        jira_cache::profile::load(&options).unwrap()
    }

    #[test]
    fn systemd_units_fire_on_either_day_as_cron_does() {
        let p = profile("0 6 1 * MON");
        let units = systemd_for(&p, Path::new("/usr/bin/cache_warm"))
            .unwrap()
            .text;
        let calendars: Vec<&str> = units
            .lines()
            .filter(|l| l.starts_with("OnCalendar="))
            .collect();
        assert_eq!(
            calendars,
            [
                "OnCalendar=*-*-01 06:00:00",
                "OnCalendar=Mon *-*-* 06:00:00"
            ]
        );
    }

    #[test]
    fn systemd_units_need_linger_and_no_network_target() {
        let units = systemd_for(&profile("@daily"), Path::new("/usr/bin/cache_warm"))
            .unwrap()
            .text;
        assert!(units.contains("loginctl enable-linger"), "{units}");
        assert!(!units.contains("network-online.target"), "{units}");
        assert!(units.contains("OnCalendar=*-*-* 00:00:00\n"), "{units}");
        assert!(units.contains("EnvironmentFile="), "{units}");
        assert!(
            units.contains("`JIRA_API_TOKEN=<token>` (no `export`"),
            "{units}"
        );
    }

    #[test]
    fn a_schedule_that_cannot_convert_is_refused_not_replaced() {
        let mut p = profile("0 6 * * *");
        p.schedule = "0 6 L * *".into();
        let err = systemd_for(&p, Path::new("/usr/bin/cache_warm"))
            .err()
            .unwrap();
        assert!(err.contains("cannot convert"), "{err}");
    }

    #[test]
    fn cron_and_systemd_read_the_same_env_file_format() {
        let p = profile("0 6 * * *");
        let bin = Path::new("/usr/bin/cache_warm");
        let cron = cron_for(&p, bin).text;
        let units = systemd_for(&p, bin).unwrap().text;
        let note = env_file_note(&p, "JIRA_API_TOKEN");
        assert!(
            cron.contains(&note) && units.contains(&note),
            "{cron}\n{units}"
        );
        // `set -a` exports the plain NAME=value lines to cache_warm.
        assert!(cron.contains("0 6 * * * set -a && . "), "{cron}");
    }

    #[test]
    fn a_binary_in_a_build_directory_is_warned_about() {
        let p = profile("0 6 * * *");
        let debug = cron_for(&p, Path::new("/home/me/jira-cache/target/debug/cache_warm"));
        assert!(
            debug.warnings.len() == 1 && debug.warnings[0].contains("build directory"),
            "{:?}",
            debug.warnings
        );
        let installed = cron_for(&p, Path::new("/home/me/.cargo/bin/cache_warm"));
        assert_eq!(installed.warnings, Vec::<String>::new());
    }

    #[test]
    fn a_schedule_inside_quiet_hours_is_warned_about() {
        let with_quiet = |schedule: &str| {
            let mut p = profile(schedule);
            p.quiet_hours = Some(jira_cache::profile::QuietHours {
                start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                end: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
            });
            p
        };
        let now = Local::now();
        let every = quiet_hours_warning(&with_quiet("0 10 * * *"), now).unwrap();
        assert!(
            every.starts_with("warning: every run of schedule `0 10 * * *` falls inside")
                && every.contains("quiet_hours 09:00-17:00")
                && every.contains("exit 6"),
            "{every}"
        );
        let some = quiet_hours_warning(&with_quiet("0 */4 * * *"), now).unwrap();
        assert!(
            some.contains("of the next 400 runs of schedule `0 */4 * * *` fall inside"),
            "{some}"
        );
        assert_eq!(quiet_hours_warning(&with_quiet("0 6 * * *"), now), None);
        assert_eq!(quiet_hours_warning(&profile("0 10 * * *"), now), None);
    }

    #[test]
    fn paths_with_spaces_are_quoted_for_the_shell() {
        assert_eq!(quote("/usr/bin/cache_warm"), "/usr/bin/cache_warm");
        assert_eq!(quote("/home/a b/x"), "'/home/a b/x'");
    }
}

//! A profile's `schedule`: a cron schedule, checked when the profile loads
//! and converted to systemd's `OnCalendar` for `cache_warm --print-systemd`.
//!
//! Parsing is the `croner` crate's, held to what cron itself accepts: five
//! fields (minute hour day-of-month month day-of-week), names (`MON`, `JAN`),
//! and the macros `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`
//! and `@hourly`. Croner's extensions that cron refuses (`L`, `W`, `#`, `?`,
//! a `+` prefix, seconds, years) are refused too, so a schedule that loads is
//! one a crontab takes.
//!
//! The conversion follows cron's rule for days: when both day fields are
//! restricted (neither starts with `*`), a day matches if EITHER matches;
//! otherwise both must. systemd's `OnCalendar` always means AND, so the OR
//! case becomes two `OnCalendar=` lines, which a timer fires on both of.

use std::fmt;
use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The macros cron accepts in place of five fields (`@reboot` is not a time).
const MACROS: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// A cron schedule cron accepts.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// The text as written (whitespace collapsed).
    text: String,
    cron: Cron,
    /// Day-of-month starts with `*` (cron's `DOM_STAR`: `*/2` counts).
    dom_star: bool,
    /// Day-of-week starts with `*`.
    dow_star: bool,
}

impl CronSchedule {
    /// The schedule as written, whitespace collapsed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `OnCalendar=` values that fire exactly when cron would: one, or
    /// two when cron's day-of-month OR day-of-week rule applies.
    pub fn on_calendar(&self) -> Vec<String> {
        let p = &self.cron.pattern;
        let minute = numbers(&p.minutes.values(), 0, 59);
        let hour = numbers(&p.hours.values(), 0, 23);
        let month = numbers(&p.months.values(), 1, 12);
        let dom = numbers(&p.days.values(), 1, 31);
        let dow = weekdays(&p.days_of_week.values());
        let time = format!("{hour}:{minute}:00");
        let line = |dow: Option<&str>, dom: &str| match dow {
            Some(days) => format!("{days} *-{month}-{dom} {time}"),
            None => format!("*-{month}-{dom} {time}"),
        };
        if !self.dom_star && !self.dow_star {
            // Cron: either day field matching is enough.
            return vec![line(None, &dom), line(dow.as_deref(), "*")];
        }
        vec![line(dow.as_deref(), &dom)]
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for CronSchedule {
    type Err = String;

    /// Parses a schedule; the error says what is wrong and what to write.
    fn from_str(s: &str) -> Result<CronSchedule, String> {
        let text = s.split_whitespace().collect::<Vec<_>>().join(" ");
        let example = "e.g. \"0 6 * * *\", \"30 7 * * MON-FRI\" or \"@daily\"";
        if text.starts_with('@') {
            if !MACROS.iter().any(|m| m.eq_ignore_ascii_case(&text)) {
                return Err(format!(
                    "`{text}` is not a schedule macro cron runs on a clock; use one of {} or five fields, {example}",
                    MACROS.join(", ")
                ));
            }
        } else {
            let fields: Vec<&str> = text.split(' ').collect();
            if fields.len() != 5 {
                return Err(format!(
                    "`{text}` has {} fields; a cron schedule has five (minute hour day-of-month month day-of-week), {example}",
                    fields.len()
                ));
            }
            if let Some(bad) = fields
                .iter()
                .find(|f| f.contains(['?', '#']) || f.starts_with('+'))
            {
                return Err(format!(
                    "`{bad}` in `{text}` is not cron syntax (`?`, `#` and `+` are extensions cron refuses); {example}"
                ));
            }
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(&text)
            .map_err(|e| format!("`{text}` is not a valid cron schedule ({e}); {example}"))?;
        let p = &cron.pattern;
        if [&p.minutes, &p.hours, &p.days, &p.months, &p.days_of_week]
            .iter()
            .any(|c| c.has_modifiers())
        {
            return Err(format!(
                "`{text}` uses `L` or `W`, which cron does not accept; {example}"
            ));
        }
        let (dom_star, dow_star) = match text.split(' ').collect::<Vec<_>>().as_slice() {
            [_, _, dom, _, dow] => (dom.starts_with('*'), dow.starts_with('*')),
            // The macros restrict at most one of the two day fields.
            _ => (p.is_dom_wildcard(), p.is_dow_wildcard()),
        };
        Ok(CronSchedule {
            text,
            cron,
            dom_star,
            dow_star,
        })
    }
}

/// A set of numbers as systemd writes them: `*` for the whole range, else
/// a list with runs of three or more as `a..b`, two digits each.
fn numbers(values: &[u16], min: u16, max: u16) -> String {
    if values.len() == usize::from(max - min + 1) {
        return "*".to_string();
    }
    runs(values)
        .into_iter()
        .map(|(a, b)| match b - a {
            0 => format!("{a:02}"),
            1 => format!("{a:02},{b:02}"),
            _ => format!("{a:02}..{b:02}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Cron's weekdays (0 and 7 are Sunday) as systemd names; `None` for all
/// seven.
fn weekdays(values: &[u16]) -> Option<String> {
    const NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let mut days: Vec<u16> = values.iter().map(|&d| d % 7).collect();
    days.sort_unstable();
    days.dedup();
    if days.len() == 7 {
        return None;
    }
    Some(
        runs(&days)
            .into_iter()
            .map(|(a, b)| {
                let (name_a, name_b) = (NAMES[usize::from(a)], NAMES[usize::from(b)]);
                match b - a {
                    0 => name_a.to_string(),
                    1 => format!("{name_a},{name_b}"),
                    _ => format!("{name_a}..{name_b}"),
                }
            })
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Sorted values as runs of consecutive numbers.
fn runs(values: &[u16]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &v in values {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == v => *end = v,
            _ => out.push((v, v)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar(s: &str) -> Vec<String> {
        s.parse::<CronSchedule>().unwrap().on_calendar()
    }

    #[test]
    fn schedules_cron_accepts_load_with_names_and_macros() {
        for good in [
            "0 6 * * *",
            "*/15 8-18 * * MON-FRI",
            "0 6 * JAN,JUL sun",
            "@daily",
            "@WEEKLY",
            "0 6 1 * 7",
        ] {
            assert!(good.parse::<CronSchedule>().is_ok(), "{good}");
        }
    }

    #[test]
    fn schedules_cron_refuses_are_refused_with_what_to_write() {
        for (bad, says) in [
            ("0 25 * * *", "not a valid cron schedule"),
            ("60 6 * * *", "not a valid cron schedule"),
            ("0 6 * *", "has 4 fields"),
            ("0 0 6 * * *", "has 6 fields"),
            ("0 6 L * *", "`L` or `W`"),
            ("0 6 * * 5L", "`L` or `W`"),
            ("0 6 15W * *", "`L` or `W`"),
            ("0 6 * * MON#2", "not cron syntax"),
            ("0 6 ? * *", "not cron syntax"),
            ("0 6 1 * +MON", "not cron syntax"),
            ("@reboot", "macro"),
            ("@sometimes", "macro"),
        ] {
            let err = bad.parse::<CronSchedule>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(err.contains("0 6 * * *"), "{bad}: {err}");
        }
    }

    #[test]
    fn plain_schedules_become_one_on_calendar_value() {
        assert_eq!(calendar("0 6 * * *"), ["*-*-* 06:00:00"]);
        assert_eq!(calendar("30 7 * * 1-5"), ["Mon..Fri *-*-* 07:30:00"]);
        assert_eq!(calendar("30 7 * * MON-FRI"), ["Mon..Fri *-*-* 07:30:00"]);
        assert_eq!(
            calendar("*/15 5,6 * 1,7 *"),
            ["*-01,07-* 05,06:00,15,30,45:00"]
        );
        assert_eq!(calendar("@daily"), ["*-*-* 00:00:00"]);
        assert_eq!(calendar("@weekly"), ["Sun *-*-* 00:00:00"]);
        assert_eq!(calendar("@monthly"), ["*-*-01 00:00:00"]);
        assert_eq!(calendar("@hourly"), ["*-*-* *:00:00"]);
        assert_eq!(calendar("0 6 * * 0,7"), ["Sun *-*-* 06:00:00"]);
        assert_eq!(calendar("0 6 * * 5-7"), ["Sun,Fri,Sat *-*-* 06:00:00"]);
    }

    #[test]
    fn day_of_month_and_day_of_week_both_set_mean_either_as_in_cron() {
        // Cron runs this on the 1st AND on every Monday: two timers' worth.
        assert_eq!(
            calendar("0 6 1 * MON"),
            ["*-*-01 06:00:00", "Mon *-*-* 06:00:00"]
        );
        assert_eq!(
            calendar("0 6 1,15 3 1-5"),
            ["*-03-01,15 06:00:00", "Mon..Fri *-03-* 06:00:00"]
        );
        // A day field starting with `*` makes cron require both (its
        // DOM_STAR rule), so one value with both restrictions.
        assert_eq!(
            calendar("0 6 */2 * MON"),
            ["Mon *-*-01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31 06:00:00"]
        );
    }
}

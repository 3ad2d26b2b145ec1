//! The value types of a profile and their parsers: rate limits, quiet
//! hours, durations, sizes, percentages, cron schedules, project keys, and
//! the loopback rule for `http://` URLs.
//!
//! Each parser returns a message that says what is wrong and what a valid
//! value looks like; the loader adds the file, line and key.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveTime;

/// The steady request rate of a profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateLimit {
    /// At most this many requests per second on average (finite, > 0).
    PerSecond(f64),
    /// No limit.
    Unlimited,
}

impl RateLimit {
    /// The rate in requests per second; `None` when unlimited.
    pub fn per_second(self) -> Option<f64> {
        match self {
            RateLimit::PerSecond(rate) => Some(rate),
            RateLimit::Unlimited => None,
        }
    }

    /// Reads a TOML `rate_limit`: a float, an integer, or `"unlimited"`.
    pub(crate) fn from_toml(value: &toml::Value) -> Result<RateLimit, String> {
        const HINT: &str =
            "write requests per second as a number > 0 (e.g. 10 or 2.5), or \"unlimited\"";
        let rate = match value {
            toml::Value::Float(f) => *f,
            // Any realistic rate is exact as f64.
            toml::Value::Integer(i) => *i as f64,
            toml::Value::String(s) if s.trim().eq_ignore_ascii_case("unlimited") => {
                return Ok(RateLimit::Unlimited);
            }
            toml::Value::String(s) => return Err(format!("`{s}` is not a rate; {HINT}")),
            other => return Err(format!("a {} is not a rate; {HINT}", other.type_str())),
        };
        if rate.is_finite() && rate > 0.0 {
            Ok(RateLimit::PerSecond(rate))
        } else {
            Err(format!("{rate} is not a rate > 0; {HINT}"))
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimit::PerSecond(rate) => write!(f, "{rate}/s"),
            RateLimit::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// A daily window of local time in which warming refuses to start, such as
/// `09:00-17:00`. A window whose end is before its start wraps midnight
/// (`22:00-06:00`). The start is inside the window, the end is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// First minute of the window.
    pub start: NaiveTime,
    /// First minute after the window.
    pub end: NaiveTime,
}

impl QuietHours {
    /// Whether `time` (local time) is inside the window.
    pub fn contains(&self, time: NaiveTime) -> bool {
        if self.start <= self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

impl FromStr for QuietHours {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{s}` is not a window of local time; write it as \"HH:MM-HH:MM\", e.g. \"09:00-17:00\" or \"22:00-06:00\""
            )
        };
        let (start, end) = s.split_once('-').ok_or_else(bad)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| bad());
        let hours = QuietHours {
            start: time(start)?,
            end: time(end)?,
        };
        if hours.start == hours.end {
            return Err(format!(
                "`{s}` starts and ends at the same time; give a window such as \"09:00-17:00\", or remove quiet_hours"
            ));
        }
        Ok(hours)
    }
}

/// Parses a humantime duration (`30s`, `5m`, `1h 30m`, `1d`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write e.g. \"30s\", \"5m\", \"1h\" or \"1d\"")
    })
}

/// Parses a size: a whole or decimal number with an optional unit, `B`,
/// `KB`, `MB`, `GB`, `TB` (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB`
/// (powers of 1024), case-insensitive: `"500MiB"`, `"10 MB"`, `"2048"`.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let bad = |why: &str| {
        format!(
            "`{s}` is not a size ({why}); write e.g. \"500MiB\", \"1GiB\", \"10MB\" or a number of bytes"
        )
    };
    let trimmed = s.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    if number.is_empty() {
        return Err(bad("no number"));
    }
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad("unknown unit")),
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .ok_or_else(|| bad("too large"));
    }
    let value = number.parse::<f64>().map_err(|_| bad("not a number"))?;
    let bytes = (value * multiplier as f64).round();
    if bytes.is_finite() && bytes < u64::MAX as f64 {
        Ok(bytes as u64)
    } else {
        Err(bad("too large"))
    }
}

/// Reads a TOML size: a size string, or an integer number of bytes.
pub(crate) fn size_from_toml(value: &toml::Value) -> Result<u64, String> {
    match value {
        toml::Value::String(s) => parse_size(s),
        toml::Value::Integer(i) => u64::try_from(*i)
            .map_err(|_| format!("{i} is not a size; write e.g. \"500MiB\" or a number of bytes")),
        other => Err(format!(
            "a {} is not a size; write e.g. \"500MiB\", \"1GiB\" or a number of bytes",
            other.type_str()
        )),
    }
}

/// Parses a percentage, `"50%"` or `"12.5%"`, from 0 to 100, into a share
/// from 0.0 to 1.0.
pub(crate) fn parse_percent(s: &str) -> Result<f64, String> {
    let bad = || format!("`{s}` is not a percentage; write e.g. \"50%\" (0% to 100%)");
    let number = s.trim().strip_suffix('%').ok_or_else(bad)?;
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    if (0.0..=100.0).contains(&value) {
        Ok(value / 100.0)
    } else {
        Err(bad())
    }
}

/// Checks that a cron schedule is one cron accepts (see
/// [`crate::schedule`]): five fields in range, names, `@daily`-style macros.
pub(crate) fn validate_schedule(s: &str) -> Result<(), String> {
    s.parse::<crate::schedule::CronSchedule>().map(|_| ())
}

/// Checks a Jira project key: `[A-Z][A-Z0-9_]+`.
pub(crate) fn validate_project_key(key: &str) -> Result<(), String> {
    let mut chars = key.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_uppercase());
    let rest: Vec<char> = chars.collect();
    let rest_ok = !rest.is_empty()
        && rest
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "`{key}` is not a project key; a key is an upper-case letter followed by upper-case letters, digits or `_` (e.g. \"PROJ\")"
        ))
    }
}

/// Whether a URL's host is loopback: `localhost`, 127.0.0.0/8 or `::1`.
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain
            .trim_end_matches('.')
            .eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).to_canonical().is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    #[test]
    fn rate_limit_accepts_floats_integers_and_unlimited() {
        let rate = |v: toml::Value| RateLimit::from_toml(&v);
        assert_eq!(rate(toml::Value::Float(2.5)), Ok(RateLimit::PerSecond(2.5)));
        assert_eq!(
            rate(toml::Value::Integer(10)),
            Ok(RateLimit::PerSecond(10.0))
        );
        assert_eq!(rate("unlimited".into()), Ok(RateLimit::Unlimited));
        assert_eq!(rate("Unlimited".into()), Ok(RateLimit::Unlimited));
    }

    #[test]
    fn rate_limit_refuses_zero_negative_nan_infinity_and_words() {
        for value in [
            toml::Value::Float(0.0),
            toml::Value::Integer(0),
            toml::Value::Integer(-1),
            toml::Value::Float(-0.5),
            toml::Value::Float(f64::NAN),
            toml::Value::Float(f64::INFINITY),
            "fast".into(),
            "10".into(),
            toml::Value::Boolean(true),
        ] {
            let err = RateLimit::from_toml(&value).unwrap_err();
            assert!(err.contains("unlimited"), "{err}");
        }
    }

    #[test]
    fn rate_limit_displays_as_per_second_or_unlimited() {
        assert_eq!(RateLimit::PerSecond(2.5).to_string(), "2.5/s");
        assert_eq!(RateLimit::Unlimited.to_string(), "unlimited");
        assert_eq!(RateLimit::Unlimited.per_second(), None);
    }

    #[test]
    fn quiet_hours_within_a_day_include_the_start_and_exclude_the_end() {
        let hours: QuietHours = "09:00-17:00".parse().unwrap();
        assert!(hours.contains(time("09:00")));
        assert!(hours.contains(time("12:30")));
        assert!(!hours.contains(time("17:00")));
        assert!(!hours.contains(time("08:59")));
        assert!(!hours.contains(time("23:00")));
        assert_eq!(hours.to_string(), "09:00-17:00");
    }

    #[test]
    fn quiet_hours_that_wrap_midnight_cover_both_sides() {
        let hours: QuietHours = "22:00 - 06:00".parse().unwrap();
        assert!(hours.contains(time("22:00")));
        assert!(hours.contains(time("23:59")));
        assert!(hours.contains(time("00:00")));
        assert!(hours.contains(time("05:59")));
        assert!(!hours.contains(time("06:00")));
        assert!(!hours.contains(time("12:00")));
        assert_eq!(hours.to_string(), "22:00-06:00");
    }

    #[test]
    fn quiet_hours_refuse_malformed_and_empty_windows() {
        for bad in [
            "",
            "9-17",
            "09:00",
            "25:00-01:00",
            "09:00-09:00",
            "nine-five",
        ] {
            assert!(bad.parse::<QuietHours>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_are_humantime_strings() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["5x", "", "-5m", "5"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("\"30s\""), "{err}");
        }
    }

    #[test]
    fn sizes_take_decimal_and_binary_units_in_any_case() {
        assert_eq!(parse_size("500MiB"), Ok(500 * 1024 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("10 mb"), Ok(10_000_000));
        assert_eq!(parse_size("3KB"), Ok(3000));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("2048B"), Ok(2048));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn sizes_refuse_unknown_units_negatives_and_overflow() {
        for bad in ["", "MiB", "5x", "-1MiB", "1.2.3MB", "99999999999TiB", "1e3"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(size_from_toml(&toml::Value::Integer(4096)), Ok(4096));
        assert!(size_from_toml(&toml::Value::Integer(-1)).is_err());
        assert!(size_from_toml(&toml::Value::Float(1.0)).is_err());
    }

    #[test]
    fn percentages_become_shares_from_zero_to_one() {
        assert_eq!(parse_percent("50%"), Ok(0.5));
        assert_eq!(parse_percent("0%"), Ok(0.0));
        assert_eq!(parse_percent("100%"), Ok(1.0));
        assert_eq!(parse_percent("12.5 %"), Ok(0.125));
        for bad in ["50", "0.5", "101%", "-1%", "half%", "%"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules_are_what_cron_accepts() {
        for good in ["0 6 * * *", "*/15 8-18 * * MON-FRI", "@daily"] {
            assert!(validate_schedule(good).is_ok(), "{good}");
        }
        for bad in ["", "0 6 * *", "0 6 * * * *", "0 25 * * *", "0 6 * * ;rm"] {
            assert!(validate_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn project_keys_are_an_upper_case_letter_then_letters_digits_or_underscores() {
        for good in ["PROJ", "OPS", "A1", "MY_PROJ", "FOR"] {
            assert!(validate_project_key(good).is_ok(), "{good}");
        }
        for bad in ["", "P", "proj", "1PROJ", "_P", "PRO-J", "PROJ ", "ÄB"] {
            assert!(validate_project_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_hosts_are_localhost_127_slash_8_and_ipv6_one() {
        let loopback = |s: &str| is_loopback(&url::Url::parse(s).unwrap());
        assert!(loopback("http://localhost:8080/"));
        assert!(loopback("http://LOCALHOST/"));
        assert!(loopback("http://127.0.0.1/"));
        assert!(loopback("http://127.1.2.3/"));
        assert!(loopback("http://[::1]:9000/"));
        assert!(loopback("http://[::ffff:127.0.0.1]/"));
        assert!(!loopback("http://jira.example.com/"));
        assert!(!loopback("http://10.0.0.1/"));
        assert!(!loopback("http://localhost.example.com/"));
        assert!(!loopback("http://[::2]/"));
    }
}

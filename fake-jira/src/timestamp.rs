//! Jira's timestamp format, `2020-12-03T14:05:20.974+0100`
//! (`%Y-%m-%dT%H:%M:%S%.3f%z`), which RFC 3339 parsers reject: one place to
//! write and read it, so generated data and JQL date filters agree.

use chrono::{DateTime, FixedOffset, TimeZone};

/// The `strftime` pattern of Jira timestamps.
pub(crate) const JIRA_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3f%z";

/// Formats a time the way Jira writes `created` / `updated`:
/// `2020-12-03T14:05:20.974+0100`.
pub fn format_jira_time<Tz: TimeZone>(t: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.format(JIRA_TIME_FORMAT).to_string()
}

/// Reads a Jira timestamp; `None` if it is not one. Lenient where chrono
/// is: an offset written `+01:00` is accepted too.
pub fn parse_jira_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_str(s, JIRA_TIME_FORMAT).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jira_timestamp_survives_a_round_trip() {
        let s = "2020-12-03T14:05:20.974+0100";
        let t = parse_jira_time(s).expect("parses");
        assert_eq!(format_jira_time(&t), s);
        assert_eq!(t.timestamp_millis(), 1_607_000_720_974);
    }

    #[test]
    fn a_date_alone_is_not_a_jira_timestamp() {
        assert!(parse_jira_time("2020-12-03").is_none());
        assert!(parse_jira_time("yesterday").is_none());
    }
}

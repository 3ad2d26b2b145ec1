//! The profile's `schedule` read as a five-field cron expression, for one
//! question: when does the next scheduled warm start?
//!
//! A warm skips a listing that is still fresh only if it will stay fresh
//! until after the next scheduled warm (`warm::freshness`), so that a daily
//! 6 AM warm never leaves a listing that expires at 6:00:05 to itself.
//! Fields: minute, hour, day of month, month, day of week; each `*`, `?`, a
//! number, a name (`MON`, `JAN`), a range, a list, and `/step`. As in cron,
//! when both day fields are restricted a day matching either one counts.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike};

/// A parsed cron schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    dom_restricted: bool,
    dow_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl std::str::FromStr for CronSchedule {
    type Err = String;

    fn from_str(s: &str) -> Result<CronSchedule, String> {
        let fields: Vec<&str> = s.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields.as_slice() else {
            return Err(format!("`{s}` does not have five cron fields"));
        };
        let dow_mask = field(dow, 0, 7, &DAYS, 0)?;
        // 7 is Sunday too.
        let dow_mask = (dow_mask | (dow_mask >> 7)) & 0x7f;
        Ok(CronSchedule {
            minutes: field(minute, 0, 59, &[], 0)?,
            hours: field(hour, 0, 23, &[], 0)? as u32,
            days_of_month: field(dom, 1, 31, &[], 1)? as u32,
            months: field(month, 1, 12, &MONTHS, 1)? as u16,
            days_of_week: dow_mask as u8,
            dom_restricted: !matches!(*dom, "*" | "?"),
            dow_restricted: !matches!(*dow, "*" | "?"),
        })
    }
}

/// One field as a bit mask (bit n: value n matches).
fn field(text: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<u64, String> {
    let value = |v: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(i as u32 + name_base);
        }
        match v.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("`{v}` is out of range {min}-{max} in `{text}`")),
        }
    };
    let mut mask = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step in `{text}`"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = match range {
            "*" | "?" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/15` means from 5 to the end, every 15.
                None if step > 1 => (value(r)?, max),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if lo > hi {
            return Err(format!("`{range}` runs backwards in `{text}`"));
        }
        let mut v = lo;
        while v <= hi {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok(mask)
}

impl CronSchedule {
    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().num_days_from_sunday()) != 0;
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first start strictly after `after`, in `after`'s time zone (a
    /// time the clock skips is no start; of a time it passes twice, the
    /// first counts). `None` if there is none within five years.
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let tz = after.timezone();
        let local = after.naive_local();
        let mut t: NaiveDateTime = local.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let limit = local + Duration::days(5 * 366);
        while t <= limit {
            if self.months & (1 << t.month()) == 0 {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t.date().and_hms_opt(t.hour(), 0, 0)? + Duration::hours(1);
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t += Duration::minutes(1);
                continue;
            }
            if let Some(found) = tz.from_local_datetime(&t).earliest()
                && found > *after
            {
                return Some(found);
            }
            t += Duration::minutes(1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn next(schedule: &str, after: &str) -> String {
        let s: CronSchedule = schedule.parse().unwrap();
        s.next_after(&at(after)).unwrap().to_rfc3339()
    }

    #[test]
    fn a_daily_schedule_starts_next_at_its_hour() {
        assert_eq!(
            next("0 6 * * *", "2026-11-28T01:30:00Z"),
            "2026-11-28T06:00:00+00:00"
        );
        assert_eq!(
            next("0 6 * * *", "2026-11-28T06:00:00Z"),
            "2026-11-29T06:00:00+00:00"
        );
    }

    #[test]
    fn steps_ranges_lists_and_names_are_understood() {
        assert_eq!(
            next("*/15 8-18 * * MON-FRI", "2026-11-28T12:00:00Z"), // a Saturday
            "2026-11-30T08:00:00+00:00"
        );
        assert_eq!(
            next("30 7 1,15 * *", "2026-11-02T00:00:00Z"),
            "2026-11-15T07:30:00+00:00"
        );
        assert_eq!(
            next("0 0 1 JAN 0", "2026-11-02T00:00:00Z"),
            "2027-01-01T00:00:00+00:00",
            "both day fields restricted: either matches (Jan 1, a Friday)"
        );
        assert_eq!(
            next("0 0 * JAN 0", "2026-11-02T00:00:00Z"),
            "2027-01-03T00:00:00+00:00",
            "only the day of week restricted: the first Sunday"
        );
        assert_eq!(
            next("0 0 * * 7", "2026-11-28T00:00:00Z"),
            "2026-11-29T00:00:00+00:00",
            "7 is Sunday"
        );
    }

    #[test]
    fn the_next_start_is_in_the_clocks_own_zone() {
        let tz = FixedOffset::east_opt(3600).unwrap();
        let after = at("2026-11-28T05:30:00Z").with_timezone(&tz); // 06:30 local
        let s: CronSchedule = "0 6 * * *".parse().unwrap();
        assert_eq!(
            s.next_after(&after).unwrap().to_rfc3339(),
            "2026-11-29T06:00:00+01:00"
        );
    }

    #[test]
    fn impossible_and_malformed_schedules_are_told_apart() {
        let s: CronSchedule = "0 0 30 2 *".parse().unwrap();
        assert_eq!(s.next_after(&at("2026-01-01T00:00:00Z")), None);
        for bad in [
            "0 6 * *",
            "61 6 * * *",
            "0 6 * * XYZ",
            "5-1 * * * *",
            "*/0 * * * *",
        ] {
            assert!(bad.parse::<CronSchedule>().is_err(), "{bad}");
        }
    }
}

//! `cache_serve --warm`: warm at start, then at each time the profile's
//! `schedule` (five cron fields, local time) names, through the same library
//! call as `cache_warm` ([`crate::warm::WarmSession`]), so the run history
//! is the same whichever started the warm.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration as ChronoDuration, Local, Timelike};

use crate::profile::Profile;
use crate::warm::{self, Progress, Stage, WarmOutcome, WarmRequest, WarmSession};

/// A parsed five-field cron schedule: minute, hour, day of month, month,
/// day of week (0 or 7 = Sunday). Each field is `*`, a number, a range
/// `a-b`, a list `a,b`, or any of these with a step `/n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    any_day: bool,
    any_weekday: bool,
}

impl Cron {
    /// Parses `0 6 * * *`; the error names the field that is wrong.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields.as_slice() else {
            return Err(format!("`{text}` is not five cron fields"));
        };
        let mut weekdays = field(dow, 0, 7, "day of week")?;
        if weekdays[7] {
            weekdays[0] = true;
        }
        Ok(Cron {
            minutes: field(m, 0, 59, "minute")?,
            hours: field(h, 0, 23, "hour")?,
            days: field(dom, 1, 31, "day of month")?,
            months: field(mon, 1, 12, "month")?,
            weekdays,
            any_day: *dom == "*",
            any_weekday: *dow == "*",
        })
    }

    /// The first minute strictly after `after` that the schedule names, at
    /// most a year and a day ahead.
    pub fn next_after(&self, after: DateTime<Local>) -> Option<DateTime<Local>> {
        let mut t = after.with_second(0)?.with_nanosecond(0)? + ChronoDuration::minutes(1);
        for _ in 0..(366 * 24 * 60) {
            if self.matches(&t) {
                return Some(t);
            }
            t += ChronoDuration::minutes(1);
        }
        None
    }

    fn matches(&self, t: &DateTime<Local>) -> bool {
        let day = self.days[t.day() as usize];
        let weekday = self.weekdays[t.weekday().num_days_from_sunday() as usize];
        // Cron's rule: with both day fields restricted, either may match.
        let day_ok = match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (false, true) => day,
            (true, false) => weekday,
            (false, false) => day || weekday,
        };
        self.minutes[t.minute() as usize]
            && self.hours[t.hour() as usize]
            && self.months[t.month() as usize]
            && day_ok
    }
}

fn field(text: &str, min: usize, max: usize, name: &str) -> Result<Vec<bool>, String> {
    let mut set = vec![false; max + 1];
    let bad = || format!("cron {name} field `{text}` is not understood");
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<usize>().map_err(|_| bad())?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(bad());
        }
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)
        } else {
            let n: usize = range.parse().map_err(|_| bad())?;
            (n, if part.contains('/') { max } else { n })
        };
        if lo < min || hi > max || lo > hi {
            return Err(bad());
        }
        for v in (lo..=hi).step_by(step) {
            set[v] = true;
        }
    }
    Ok(set)
}

/// What one scheduled warm came to, for the caller to log.
#[derive(Debug)]
pub enum Warmed {
    /// It ran (or found nothing stale).
    Done(WarmOutcome),
    /// It could not start or failed as a whole (lock held, site down…).
    Failed(warm::SessionError),
}

/// Warms every stage now, then at each time of `cron`, until `stop`
/// resolves; each run's outcome goes to `report`. A warm under way when
/// `stop` resolves is stopped as `cache_warm` stops on a signal: what was
/// written stays and the run is recorded as interrupted.
pub async fn warm_on_schedule<S>(
    profile: Profile,
    cron: Cron,
    retry: crate::jira::RetryPolicy,
    progress: Arc<dyn Progress>,
    report: impl Fn(Warmed) + Send,
    stop: impl Fn() -> S,
) where
    S: Future<Output = warm::Interrupt>,
{
    loop {
        let outcome = warm_once(&profile, retry.clone(), progress.clone(), stop()).await;
        report(outcome);
        let Some(next) = cron.next_after(Local::now()) else {
            return;
        };
        let wait = (next - Local::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop() => return,
        }
    }
}

async fn warm_once<S: Future<Output = warm::Interrupt>>(
    profile: &Profile,
    retry: crate::jira::RetryPolicy,
    progress: Arc<dyn Progress>,
    stop: S,
) -> Warmed {
    let session = match WarmSession::open(profile, None, false).await {
        Ok(s) => s,
        Err(e) => return Warmed::Failed(e),
    };
    let request = WarmRequest {
        stages: Stage::ALL.to_vec(),
        retry,
        ..WarmRequest::default()
    };
    let outcome = session.warm(profile, request, progress, stop).await;
    let closed = session.close().await;
    match (outcome, closed) {
        (Ok(o), Ok(())) => Warmed::Done(o),
        (Err(e), _) | (Ok(_), Err(e)) => Warmed::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_next_time_of_a_daily_schedule_is_tomorrow_once_past() {
        let cron = Cron::parse("0 6 * * *").unwrap();
        let at = Local.with_ymd_and_hms(2026, 3, 10, 7, 30, 0).unwrap();
        let next = cron.next_after(at).unwrap();
        assert_eq!((next.day(), next.hour(), next.minute()), (11, 6, 0));
        let before = Local.with_ymd_and_hms(2026, 3, 10, 5, 59, 10).unwrap();
        assert_eq!(cron.next_after(before).unwrap().day(), 10);
    }

    #[test]
    fn steps_lists_and_weekdays() {
        let cron = Cron::parse("*/15 8-18 * * 1-5").unwrap();
        // Saturday 2026-03-14 → Monday 2026-03-16 08:00.
        let at = Local.with_ymd_and_hms(2026, 3, 14, 12, 0, 0).unwrap();
        let next = cron.next_after(at).unwrap();
        assert_eq!((next.day(), next.hour(), next.minute()), (16, 8, 0));
        assert!(Cron::parse("0 6 * *").is_err());
        assert!(Cron::parse("61 6 * * *").is_err());
        assert!(Cron::parse("*/0 6 * * *").is_err());
    }
}

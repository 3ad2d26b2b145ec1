//! `cache_serve --warm`: warm at start, then at each time the profile's
//! `schedule` (five cron fields, local time) names, through the same library
//! call as `cache_warm` ([`crate::warm::WarmSession`]), so the run history
//! is the same whichever started the warm.

use std::future::Future;
use std::sync::Arc;

use chrono::Local;

use crate::profile::Profile;
use crate::schedule::CronSchedule;
use crate::warm::{self, Progress, Stage, WarmOutcome, WarmRequest, WarmSession};

/// What one scheduled warm came to, for the caller to log.
#[derive(Debug)]
pub enum Warmed {
    /// It ran (or found nothing stale).
    Done(WarmOutcome),
    /// It could not start or failed as a whole (lock held, site down…).
    Failed(warm::SessionError),
}

/// Warms every stage now, then at each time of `cron` (none: only now), until `stop`
/// resolves; each run's outcome goes to `report`. A warm under way when
/// `stop` resolves is stopped as `cache_warm` stops on a signal: what was
/// written stays and the run is recorded as interrupted.
pub async fn warm_on_schedule<S>(
    profile: Profile,
    cron: Option<CronSchedule>,
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
        let Some(next) = cron.as_ref().and_then(|c| c.next_after(&Local::now())) else {
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
    use chrono::{Datelike, TimeZone, Timelike};

    #[test]
    fn the_next_warm_of_a_daily_schedule_is_tomorrow_once_past() {
        let cron: CronSchedule = "0 6 * * *".parse().unwrap();
        let at = Local.with_ymd_and_hms(2026, 3, 10, 7, 30, 0).unwrap();
        let next = cron.next_after(&at).unwrap();
        assert_eq!((next.day(), next.hour(), next.minute()), (11, 6, 0));
        let before = Local.with_ymd_and_hms(2026, 3, 10, 5, 59, 10).unwrap();
        assert_eq!(cron.next_after(&before).unwrap().day(), 10);
    }
}

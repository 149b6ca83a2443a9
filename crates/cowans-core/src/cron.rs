//! Cron schedules with a time zone, and which ticks are due after a gap (the missed-tick
//! policy). Pure: the scheduler passes the clock in.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// Why a schedule was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronSpecError {
    #[error("schedule {expr:?} is not a cron expression: {reason}")]
    Schedule { expr: String, reason: String },
    #[error("timezone {0:?} is not an IANA time zone name (e.g. \"Europe/Paris\", \"UTC\")")]
    Timezone(String),
}

/// A parsed cron expression (5 fields, or 6 with seconds first) evaluated in a time zone, so
/// "0 9 * * 1-5" in "Europe/Paris" means 9:00 Paris time across daylight-saving changes.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    tz: Tz,
}

impl CronSchedule {
    pub fn parse(expr: &str, timezone: &str) -> Result<Self, CronSpecError> {
        let cron = Cron::from_str(expr).map_err(|e| CronSpecError::Schedule {
            expr: expr.to_owned(),
            reason: e.to_string(),
        })?;
        let tz =
            Tz::from_str(timezone).map_err(|_| CronSpecError::Timezone(timezone.to_owned()))?;
        Ok(Self { cron, tz })
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The ticks to enqueue now, oldest first: of the ticks in `(last, now]`, the latest plus at
    /// most `catch_up` missed ones before it (`catch_up = 0` skips every missed tick). Found by
    /// walking back from `now`, so a long outage costs `catch_up + 1` steps, not one per tick.
    pub fn due(
        &self,
        last: DateTime<Utc>,
        now: DateTime<Utc>,
        catch_up: u32,
    ) -> Vec<DateTime<Utc>> {
        let mut ticks = Vec::new();
        let mut cursor = now.with_timezone(&self.tz);
        let mut inclusive = true;
        while ticks.len() <= catch_up as usize {
            let Ok(prev) = self.cron.find_previous_occurrence(&cursor, inclusive) else {
                break;
            };
            let prev_utc = prev.with_timezone(&Utc);
            if prev_utc <= last {
                break;
            }
            ticks.push(prev_utc);
            cursor = prev;
            inclusive = false;
        }
        ticks.reverse();
        ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn bad_expressions_and_zones_name_the_field() {
        let e = CronSchedule::parse("61 * * * *", "UTC").unwrap_err();
        assert!(e.to_string().starts_with("schedule"), "{e}");
        let e = CronSchedule::parse("* * * * *", "Mars/Base").unwrap_err();
        assert!(e.to_string().starts_with("timezone"), "{e}");
    }

    #[test]
    fn ticks_follow_the_time_zone_across_daylight_saving() {
        let s = CronSchedule::parse("0 9 * * *", "Europe/Paris").unwrap();
        // Winter: 9:00 Paris = 8:00 UTC; summer: 7:00 UTC.
        assert_eq!(
            s.next_after(at("2026-01-10T12:00:00Z")),
            Some(at("2026-01-11T08:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-07-10T12:00:00Z")),
            Some(at("2026-07-11T07:00:00Z"))
        );
    }

    #[test]
    fn missed_ticks_are_skipped_or_caught_up_to_the_bound() {
        let s = CronSchedule::parse("*/10 * * * *", "UTC").unwrap();
        let last = at("2026-01-01T00:00:00Z");
        let now = at("2026-01-01T01:05:00Z"); // six ticks missed: 00:10 .. 01:00
        assert_eq!(s.due(last, now, 0), vec![at("2026-01-01T01:00:00Z")]);
        assert_eq!(
            s.due(last, now, 2),
            vec![
                at("2026-01-01T00:40:00Z"),
                at("2026-01-01T00:50:00Z"),
                at("2026-01-01T01:00:00Z")
            ]
        );
        assert_eq!(s.due(last, now, 100).len(), 6, "no more than were missed");
        assert!(
            s.due(at("2026-01-01T01:00:00Z"), now, 5).is_empty(),
            "nothing new"
        );
        // A tick exactly at `now` is due; one exactly at `last` was already run.
        assert_eq!(
            s.due(last, at("2026-01-01T00:10:00Z"), 0),
            vec![at("2026-01-01T00:10:00Z")]
        );
    }

    #[test]
    fn six_fields_mean_seconds() {
        let s = CronSchedule::parse("*/5 * * * * *", "UTC").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T00:00:01Z")),
            Some(at("2026-01-01T00:00:05Z"))
        );
    }
}

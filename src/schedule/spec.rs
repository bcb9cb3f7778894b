//! A backup policy's `schedule`: when scheduled backups run.
//!
//! Forms: a five-field cron expression (`minute hour day-of-month month day-of-week`, as
//! standard cron reads it: a day matches when either day field does, if both are
//! restricted), a nickname (`@hourly`, `@daily` or `@midnight`, `@weekly`, `@monthly`,
//! `@yearly` or `@annually`), or `@every <duration>` of at least a second (`@every 6h`,
//! `@every 90m`, `@every 1d`). A cron expression or nickname may start with `CRON_TZ=<IANA zone> `
//! (`CRON_TZ=Europe/Paris 0 3 * * *`): it is then read in that zone's local time, and
//! the zone is also the one retention buckets backups by; UTC otherwise.
//!
//! Daylight saving: a local time skipped by a change runs at the first minute that
//! exists after it; a local time that happens twice runs once, at its first occurrence.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// The shortest `@every` interval.
const MIN_EVERY: Duration = Duration::from_secs(1);

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    when: When,
    zone: Tz,
}

#[derive(Debug, Clone)]
enum When {
    Cron(Box<Cron>),
    Every(Duration),
}

impl Schedule {
    /// Parses a schedule; the error says what is wrong, for a field violation.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        if let Some(every) = text.strip_prefix("@every") {
            let every = every.trim();
            let duration = crate::config::parse_duration(every)
                .ok_or_else(|| format!("'@every {every}' needs a duration like 90m, 6h or 1d"))?;
            if duration < MIN_EVERY {
                return Err(format!("'@every {every}' is shorter than the 1 second minimum"));
            }
            return Ok(Schedule { text: text.to_owned(), when: When::Every(duration), zone: Tz::UTC });
        }
        let (zone, pattern) = match text.strip_prefix("CRON_TZ=") {
            Some(rest) => {
                let (zone, pattern) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                let zone: Tz = zone
                    .parse()
                    .map_err(|_| format!("'{zone}' is not an IANA time zone like Europe/Paris"))?;
                (zone, pattern.trim())
            }
            None => (Tz::UTC, text),
        };
        let nickname = pattern.starts_with('@');
        let fields = pattern.split_whitespace().count();
        if !nickname && fields != 5 {
            return Err(format!(
                "'{pattern}' has {fields} fields; a cron schedule has 5 (minute hour day-of-month month \
                 day-of-week), or is @hourly, @daily, @weekly, @monthly, @yearly or @every <duration>"
            ));
        }
        let cron = Cron::from_str(pattern)
            .map_err(|error| format!("'{pattern}' is not a cron schedule: {error}"))?;
        Ok(Schedule { text: text.to_owned(), when: When::Cron(Box::new(cron)), zone })
    }

    /// The zone the schedule is read in, and retention buckets by.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first run strictly after `after`, or `None` if the schedule never runs again.
    /// `@every` runs count from `anchor` (the previous run, or when the schedule was
    /// set): the first multiple of the interval after `after`.
    pub fn next_after(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            When::Every(every) => {
                let every = chrono::Duration::from_std(*every).ok()?;
                if after < anchor {
                    return Some(anchor);
                }
                let elapsed = (after - anchor).num_milliseconds();
                let steps = elapsed / every.num_milliseconds() + 1;
                Some(anchor + every * i32::try_from(steps).ok()?)
            }
            When::Cron(cron) => {
                let local = after.with_timezone(&self.zone);
                let next = cron.find_next_occurrence(&local, false).ok()?;
                // A repeated local hour (clocks going back) matches twice: run once, at
                // the first, so skip a match whose local time equals the last one's.
                if next.naive_local() == local.naive_local() {
                    let later = cron.find_next_occurrence(&next, false).ok()?;
                    return Some(later.with_timezone(&Utc));
                }
                Some(next.with_timezone(&Utc))
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn runs(schedule: &str, from: &str, count: usize) -> Vec<String> {
        let schedule = Schedule::parse(schedule).unwrap();
        let anchor = utc(from);
        let mut at = anchor;
        let mut runs = Vec::new();
        for _ in 0..count {
            at = schedule.next_after(at, anchor).unwrap();
            runs.push(at.to_rfc3339());
        }
        runs
    }

    #[test]
    fn accepts_the_documented_forms() {
        for good in [
            "0 3 * * *",
            "*/15 * * * *",
            "0 0 1,15 * MON-FRI",
            "@hourly",
            "@daily",
            "@weekly",
            "@monthly",
            "@yearly",
            "@every 6h",
            "@every 90m",
            "@every 1d",
            "CRON_TZ=Europe/Paris 0 3 * * *",
            "CRON_TZ=America/New_York @daily",
        ] {
            assert!(Schedule::parse(good).is_ok(), "{good}: {:?}", Schedule::parse(good).err());
        }
    }

    #[test]
    fn refuses_with_a_reason() {
        for (bad, says) in [
            ("sometimes", "5"),
            ("0 3 * *", "4 fields"),
            ("0 0 3 * * *", "6 fields"),
            ("61 * * * *", "not a cron schedule"),
            ("@every 500ms", "1 second minimum"),
            ("@every 0", "1 second minimum"),
            ("@every often", "needs a duration"),
            ("CRON_TZ=Mars/Olympus 0 3 * * *", "IANA time zone"),
        ] {
            let error = Schedule::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn daily_runs_cross_month_ends_and_leap_days() {
        assert_eq!(
            runs("0 3 * * *", "2028-02-28T12:00:00Z", 3),
            ["2028-02-29T03:00:00+00:00", "2028-03-01T03:00:00+00:00", "2028-03-02T03:00:00+00:00"]
        );
        assert_eq!(
            runs("0 0 31 * *", "2027-01-31T00:00:00Z", 3),
            ["2027-03-31T00:00:00+00:00", "2027-05-31T00:00:00+00:00", "2027-07-31T00:00:00+00:00"]
        );
        assert_eq!(
            runs("@monthly", "2027-12-15T00:00:00Z", 2),
            ["2028-01-01T00:00:00+00:00", "2028-02-01T00:00:00+00:00"]
        );
    }

    #[test]
    fn every_counts_from_its_anchor() {
        assert_eq!(
            runs("@every 90m", "2027-06-01T10:00:00Z", 3),
            ["2027-06-01T11:30:00+00:00", "2027-06-01T13:00:00+00:00", "2027-06-01T14:30:00+00:00"]
        );
        let schedule = Schedule::parse("@every 1h").unwrap();
        let anchor = utc("2027-06-01T10:00:00Z");
        // Asked long after (the server was down): the next slot, not every missed one.
        assert_eq!(
            schedule.next_after(utc("2027-06-01T15:20:00Z"), anchor),
            Some(utc("2027-06-01T16:00:00Z"))
        );
    }

    #[test]
    fn a_zone_with_daylight_saving_runs_skipped_times_once_and_repeated_times_once() {
        // Europe/Paris: 2027-03-28 02:00 -> 03:00 (02:30 does not exist), 2027-10-31
        // 03:00 -> 02:00 (02:30 happens twice).
        let paris = "CRON_TZ=Europe/Paris 30 2 * * *";
        let spring = runs(paris, "2027-03-27T12:00:00Z", 2);
        assert_eq!(spring[0], "2027-03-28T01:00:00+00:00", "the skipped 02:30 runs at 03:00 local");
        assert_eq!(spring[1], "2027-03-29T00:30:00+00:00");
        let autumn = runs(paris, "2027-10-30T12:00:00Z", 2);
        assert_eq!(autumn[0], "2027-10-31T00:30:00+00:00", "02:30 CEST, the first of the two");
        assert_eq!(autumn[1], "2027-11-01T01:30:00+00:00", "once only: the next is the day after");
        // In local time the runs stay at 03:00 across the change.
        let schedule = Schedule::parse("CRON_TZ=Europe/Paris 0 3 * * *").unwrap();
        let before = Tz::Europe__Paris.with_ymd_and_hms(2027, 10, 30, 12, 0, 0).unwrap().with_timezone(&Utc);
        let next = schedule.next_after(before, before).unwrap();
        assert_eq!(next.with_timezone(&Tz::Europe__Paris).to_rfc3339(), "2027-10-31T03:00:00+01:00");
    }
}

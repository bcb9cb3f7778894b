//! Count-based retention, grandfather-father-son style: which of a database's backups a
//! policy deletes now.
//!
//! Only READY scheduled backups are pruned (on-demand and imported ones go only by their
//! expiry). Among them, a backup is kept when any rule keeps it: `keep_last` the N
//! newest; `keep_hourly`, `keep_daily`, `keep_weekly` (ISO weeks), `keep_monthly` the
//! newest backup of each of the N most recent hours, days, weeks or months that have
//! backups, read in the policy's time zone. The database's newest READY backup, of any
//! origin, is never deleted. A policy whose counts are all zero deletes nothing.

use std::collections::BTreeSet;

use chrono::{Datelike, Timelike};
use chrono_tz::Tz;

use crate::domain::{BackupId, RetentionPolicy, Timestamp};

/// A READY backup of the database, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The backup.
    pub id: BackupId,
    /// When it was taken.
    pub create_time: Timestamp,
    /// Whether the schedule took it (only those are pruned).
    pub scheduled: bool,
}

/// A calendar period a rule keeps one backup of.
#[derive(Debug, Clone, Copy)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
}

impl Period {
    /// The bucket `time` falls in, in `zone`: equal keys, same period.
    fn key(self, time: Timestamp, zone: Tz) -> (i32, u32, u32) {
        let local = time.with_timezone(&zone);
        match self {
            Period::Hour => (local.year(), local.ordinal(), local.hour()),
            Period::Day => (local.year(), local.ordinal(), 0),
            Period::Week => {
                let week = local.iso_week();
                (week.year(), week.week(), 0)
            }
            Period::Month => (local.year(), local.month(), 0),
        }
    }
}

/// The backups among `candidates` that `policy` deletes now, oldest first.
pub fn to_delete(candidates: &[Candidate], policy: &RetentionPolicy, zone: Tz) -> Vec<BackupId> {
    let rules = [
        (Period::Hour, policy.keep_hourly),
        (Period::Day, policy.keep_daily),
        (Period::Week, policy.keep_weekly),
        (Period::Month, policy.keep_monthly),
    ];
    if policy.keep_last == 0 && rules.iter().all(|(_, count)| *count == 0) {
        return Vec::new();
    }
    let mut scheduled: Vec<&Candidate> = candidates.iter().filter(|candidate| candidate.scheduled).collect();
    // Newest first; the id breaks ties so that the result does not depend on the order given.
    scheduled.sort_by(|a, b| b.create_time.cmp(&a.create_time).then(b.id.to_string().cmp(&a.id.to_string())));

    let mut kept: BTreeSet<String> = BTreeSet::new();
    for candidate in scheduled.iter().take(policy.keep_last as usize) {
        kept.insert(candidate.id.to_string());
    }
    for (period, count) in rules {
        let mut buckets = BTreeSet::new();
        for candidate in &scheduled {
            if buckets.len() == count as usize {
                break;
            }
            if buckets.insert(period.key(candidate.create_time, zone)) {
                kept.insert(candidate.id.to_string());
            }
        }
    }
    if let Some(newest) = candidates.iter().max_by_key(|candidate| candidate.create_time) {
        kept.insert(newest.id.to_string());
    }
    scheduled
        .into_iter()
        .rev()
        .filter(|candidate| !kept.contains(&candidate.id.to_string()))
        .map(|c| c.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;

    /// A daily scheduled backup at 00:30 Paris time for every day of 2027: in UTC each
    /// falls on the day before, so bucketing in the wrong zone would show.
    fn a_year_of_dailies() -> Vec<(NaiveDate, Candidate)> {
        let paris = Tz::Europe__Paris;
        let first = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        first
            .iter_days()
            .take_while(|day| day.year() == 2027)
            .map(|day| {
                let local = paris.from_local_datetime(&day.and_hms_opt(0, 30, 0).unwrap()).unwrap();
                let candidate = Candidate {
                    id: BackupId::new(),
                    create_time: local.with_timezone(&Utc),
                    scheduled: true,
                };
                (day, candidate)
            })
            .collect()
    }

    fn kept_days(year: &[(NaiveDate, Candidate)], policy: RetentionPolicy) -> Vec<String> {
        let candidates: Vec<Candidate> = year.iter().map(|(_, candidate)| candidate.clone()).collect();
        let deleted: BTreeSet<String> =
            to_delete(&candidates, &policy, Tz::Europe__Paris).iter().map(ToString::to_string).collect();
        year.iter()
            .filter(|(_, candidate)| !deleted.contains(&candidate.id.to_string()))
            .map(|(day, _)| day.format("%m-%d").to_string())
            .collect()
    }

    #[test]
    fn grandfather_father_son_over_a_year_of_daily_backups() {
        let year = a_year_of_dailies();
        assert_eq!(year.len(), 365);
        let policy =
            RetentionPolicy { keep_daily: 7, keep_weekly: 4, keep_monthly: 12, ..Default::default() };
        assert_eq!(
            kept_days(&year, policy),
            [
                "01-31", "02-28", "03-31", "04-30", "05-31", "06-30", "07-31", "08-31", "09-30", "10-31",
                "11-30",
                // ISO weeks ending on Sundays 12-12 and 12-19 (12-26 is a daily anyway).
                "12-12", "12-19", //
                "12-25", "12-26", "12-27", "12-28", "12-29", "12-30", "12-31",
            ]
        );
    }

    #[test]
    fn keep_last_and_the_newest_ready_backup() {
        let year = a_year_of_dailies();
        let last = RetentionPolicy { keep_last: 3, ..Default::default() };
        assert_eq!(kept_days(&year, last), ["12-29", "12-30", "12-31"]);
        // Nothing configured: nothing pruned.
        assert_eq!(kept_days(&year, RetentionPolicy::default()).len(), 365);

        // An on-demand backup newer than every scheduled one is never pruned (not
        // scheduled), and the newest READY one is kept whatever the rules say.
        let now = Utc.with_ymd_and_hms(2028, 1, 5, 0, 0, 0).unwrap();
        let manual = Candidate { id: BackupId::new(), create_time: now, scheduled: false };
        let mut candidates: Vec<Candidate> = year.iter().map(|(_, candidate)| candidate.clone()).collect();
        let one_hourly = RetentionPolicy { keep_hourly: 1, ..Default::default() };
        let deleted = to_delete(&candidates, &one_hourly, Tz::UTC);
        assert_eq!(deleted.len(), 364, "one hour bucket: only the newest survives");
        candidates.push(manual.clone());
        let deleted = to_delete(&candidates, &one_hourly, Tz::UTC);
        assert!(!deleted.contains(&manual.id));
        assert_eq!(deleted.len(), 364);
        let scheduled_only = Candidate { scheduled: true, ..manual };
        candidates.pop();
        candidates.push(scheduled_only.clone());
        let deleted =
            to_delete(&candidates, &RetentionPolicy { keep_last: 1, ..Default::default() }, Tz::UTC);
        assert!(!deleted.contains(&scheduled_only.id), "the newest is kept");
        assert_eq!(deleted.len(), 365);
    }

    #[test]
    fn buckets_follow_the_zone() {
        // 23:30 UTC on Jan 31 is already Feb 1 in Paris: in Paris it is February's only
        // backup, in UTC January's newest.
        let late = Candidate {
            id: BackupId::new(),
            create_time: Utc.with_ymd_and_hms(2027, 1, 31, 23, 30, 0).unwrap(),
            scheduled: true,
        };
        let early = Candidate {
            id: BackupId::new(),
            create_time: Utc.with_ymd_and_hms(2027, 1, 31, 10, 0, 0).unwrap(),
            scheduled: true,
        };
        let candidates = [early.clone(), late.clone()];
        let monthly = RetentionPolicy { keep_monthly: 2, ..Default::default() };
        assert!(to_delete(&candidates, &monthly, Tz::Europe__Paris).is_empty());
        assert_eq!(to_delete(&candidates, &monthly, Tz::UTC), [early.id]);
    }
}

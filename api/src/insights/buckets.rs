//! Time buckets in a named time zone: hour, day, ISO week (Monday) or month, with
//! boundaries at local midnight, so a day in the week daylight-saving time starts is
//! 23 hours long and a bucket always matches the calendar a manager reads.
//!
//! Boundaries are computed here (chrono-tz carries the zone rules) and handed to SQL
//! as a small table of `[start, end)` ranges, so SQLite (which has no zone database)
//! and PostgreSQL bucket identically.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::error::{AppError, AppResult};

/// Most buckets one query may span.
pub const MAX_BUCKETS: usize = 1000;

/// The width of a time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
    Week,
    Month,
}

/// One bucket: `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A zone by IANA name (`Europe/London`); unknown names are the caller's to fix.
pub fn zone(name: &str) -> AppResult<Tz> {
    name.parse::<Tz>().map_err(|_| AppError::invalid(&["timeZone"], "INVALID", "is not an IANA time zone name"))
}

/// The UTC instant of a local time; a time skipped by a DST jump moves to the first
/// instant after the gap.
fn instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..4 {
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => return t.with_timezone(&Utc),
            LocalResult::None => probe += Duration::minutes(30),
        }
    }
    local.and_utc()
}

fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_hms_opt(0, 0, 0).unwrap_or_default()
}

/// The local start of the bucket holding `at`.
fn floor(tz: Tz, bucket: Bucket, at: DateTime<Utc>) -> NaiveDateTime {
    let local = at.with_timezone(&tz).naive_local();
    let date = local.date();
    match bucket {
        Bucket::Hour => midnight(date) + Duration::hours(i64::from(local.hour())),
        Bucket::Day => midnight(date),
        Bucket::Week => midnight(date - Duration::days(i64::from(date.weekday().num_days_from_monday()))),
        Bucket::Month => midnight(date.with_day(1).unwrap_or(date)),
    }
}

fn next(bucket: Bucket, local: NaiveDateTime) -> NaiveDateTime {
    match bucket {
        Bucket::Hour => local + Duration::hours(1),
        Bucket::Day => local + Duration::days(1),
        Bucket::Week => local + Duration::days(7),
        Bucket::Month => {
            let d = local.date();
            let (y, m) = if d.month() == 12 { (d.year() + 1, 1) } else { (d.year(), d.month() + 1) };
            NaiveDate::from_ymd_opt(y, m, 1).map_or(local + Duration::days(31), midnight)
        }
    }
}

/// The buckets covering `[from, to)`, in order.
pub fn ranges(tz: Tz, bucket: Bucket, from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<Vec<Range>> {
    let mut out = Vec::new();
    if bucket == Bucket::Hour {
        // Hours step in absolute time: the repeated hour of an autumn night is two buckets.
        let mut start = instant(tz, floor(tz, bucket, from));
        while start < to {
            out.push(Range { start, end: start + Duration::hours(1) });
            start += Duration::hours(1);
            if out.len() > MAX_BUCKETS {
                break;
            }
        }
    } else {
        let mut local = floor(tz, bucket, from);
        let mut start = instant(tz, local);
        while start < to {
            local = next(bucket, local);
            let end = instant(tz, local);
            out.push(Range { start, end });
            start = end;
            if out.len() > MAX_BUCKETS {
                break;
            }
        }
    }
    if out.len() > MAX_BUCKETS {
        return Err(AppError::invalid(
            &["bucket"],
            "TOO_MANY_BUCKETS",
            format!("the range holds more than {MAX_BUCKETS} buckets; use a wider bucket or a shorter range"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn days_follow_the_local_calendar_across_dst() {
        let london = zone("Europe/London").unwrap();
        let days = ranges(london, Bucket::Day, utc("2026-03-28T12:00:00Z"), utc("2026-03-31T00:00:00Z")).unwrap();
        assert_eq!(days[0].start, utc("2026-03-28T00:00:00Z"));
        // 29 March 2026: clocks go forward at 01:00 GMT, the day lasts 23 hours.
        assert_eq!(days[1], Range { start: utc("2026-03-29T00:00:00Z"), end: utc("2026-03-29T23:00:00Z") });
        assert_eq!(days[2].start, utc("2026-03-29T23:00:00Z"));
        // 31 March (BST) starts at 23:00Z on the 30th, before the range ends.
        assert_eq!(days.len(), 4);
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let tz = zone("UTC").unwrap();
        let weeks = ranges(tz, Bucket::Week, utc("2026-11-25T10:00:00Z"), utc("2026-12-01T00:00:00Z")).unwrap();
        assert_eq!(weeks[0].start, utc("2026-11-23T00:00:00Z"), "Monday");
        assert_eq!(weeks[1].start, utc("2026-11-30T00:00:00Z"));
        let months = ranges(tz, Bucket::Month, utc("2026-01-15T00:00:00Z"), utc("2027-01-01T00:00:00Z")).unwrap();
        assert_eq!(months.len(), 12);
        assert_eq!(months[1], Range { start: utc("2026-02-01T00:00:00Z"), end: utc("2026-03-01T00:00:00Z") });
        assert_eq!(months[11].end, utc("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn hours_repeat_when_clocks_go_back_and_too_many_is_refused() {
        let ny = zone("America/New_York").unwrap();
        let hours = ranges(ny, Bucket::Hour, utc("2026-11-01T04:00:00Z"), utc("2026-11-01T08:00:00Z")).unwrap();
        assert_eq!(hours.len(), 4, "00:00, 01:00 EDT, 01:00 EST, 02:00");
        assert!(ranges(ny, Bucket::Hour, utc("2025-01-01T00:00:00Z"), utc("2026-01-01T00:00:00Z")).is_err());
        assert!(zone("Mars/Olympus").is_err());
    }
}

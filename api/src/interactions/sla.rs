//! SLA policies: the most specific active policy for a conversation's channel and
//! priority sets its first-response and resolution due times.
//!
//! Specificity: channel and priority both match, then channel only, then priority
//! only, then the catch-all (both null). A policy with business hours counts its
//! minutes only while open (a 60-minute target set at 16:30 on a 9–17 weekday policy
//! is due at 9:30 the next working day).

use chrono::{DateTime, Datelike, Duration, Utc};
use entity::enums::{Channel, Priority};
use entity::sla_policy;

use super::routing::BusinessHours;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::error::AppResult;

/// The due times a policy gives a conversation opened at `opened_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueTimes {
    pub policy_id: uuid::Uuid,
    pub first_response_due_at: DateTime<Utc>,
    pub resolution_due_at: DateTime<Utc>,
}

/// The most specific active policy for a channel and priority.
pub fn pick(policies: &[sla_policy::Model], channel: Channel, priority: Priority) -> Option<&sla_policy::Model> {
    let rank = |p: &sla_policy::Model| match (p.channel, p.priority) {
        (Some(c), Some(pr)) if c == channel && pr == priority => Some(0),
        (Some(c), None) if c == channel => Some(1),
        (None, Some(pr)) if pr == priority => Some(2),
        (None, None) => Some(3),
        _ => None,
    };
    policies.iter().filter(|p| p.active).filter_map(|p| rank(p).map(|r| (r, p))).min_by_key(|(r, _)| *r).map(|(_, p)| p)
}

/// Due times for a conversation.
pub fn due_times(policy: &sla_policy::Model, opened_at: DateTime<Utc>) -> DueTimes {
    let hours = hours_of(policy);
    let due = |minutes: i32| match &hours {
        Some(h) => add_business_minutes(opened_at, i64::from(minutes), h),
        None => opened_at + Duration::minutes(i64::from(minutes)),
    };
    DueTimes {
        policy_id: policy.id,
        first_response_due_at: due(policy.first_response_minutes),
        resolution_due_at: due(policy.resolution_minutes),
    }
}

/// `start` plus `minutes` counted only inside `hours`. Hours with no days count around
/// the clock. Bounded: a target never needs more than a few years of calendar.
pub fn add_business_minutes(start: DateTime<Utc>, minutes: i64, hours: &BusinessHours) -> DateTime<Utc> {
    if hours.days.is_empty() || hours.start >= hours.end {
        return start + Duration::minutes(minutes);
    }
    let offset = Duration::minutes(i64::from(hours.utc_offset_minutes));
    let mut local = start + offset;
    let mut remaining = Duration::minutes(minutes);
    for _ in 0..(366 * 5) {
        let midnight = local.date_naive().and_hms_opt(0, 0, 0).map(|m| m.and_utc()).unwrap_or(local);
        let next_day = midnight + Duration::days(1);
        if hours.days.contains(&local.weekday().number_from_monday()) {
            let open = midnight + Duration::hours(i64::from(hours.start));
            let close = midnight + Duration::hours(i64::from(hours.end));
            if local < open {
                local = open;
            }
            if local < close {
                let available = close - local;
                if remaining <= available {
                    return local + remaining - offset;
                }
                remaining -= available;
            }
        }
        local = next_day;
    }
    local - offset
}

/// Every active policy (a handful of rows; loaded once per ingest batch).
pub async fn load(db: &impl ConnectionTrait) -> AppResult<Vec<sla_policy::Model>> {
    Ok(sla_policy::Entity::find().filter(sla_policy::Column::Active.eq(true)).all(db).await?)
}

/// Business minutes (inside `hours`) between `from` and `to`; wall-clock minutes when
/// the hours have no days.
pub fn business_minutes_between(from: DateTime<Utc>, to: DateTime<Utc>, hours: &BusinessHours) -> i64 {
    if to <= from {
        return 0;
    }
    if hours.days.is_empty() || hours.start >= hours.end {
        return (to - from).num_minutes();
    }
    let offset = Duration::minutes(i64::from(hours.utc_offset_minutes));
    let (mut local, end) = (from + offset, to + offset);
    let mut total = Duration::zero();
    while local < end {
        let midnight = local.date_naive().and_hms_opt(0, 0, 0).map(|m| m.and_utc()).unwrap_or(local);
        if hours.days.contains(&local.weekday().number_from_monday()) {
            let open = (midnight + Duration::hours(i64::from(hours.start))).max(local);
            let close = (midnight + Duration::hours(i64::from(hours.end))).min(end);
            if close > open {
                total += close - open;
            }
        }
        local = midnight + Duration::days(1);
    }
    total.num_minutes()
}

/// The business hours of a policy, when it has them.
pub fn hours_of(policy: &sla_policy::Model) -> Option<BusinessHours> {
    policy.business_hours.clone().and_then(|h| serde_json::from_value(h).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        // November 2026: the 23rd is a Monday.
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).single().unwrap_or_default()
    }

    fn weekdays_9_to_17() -> BusinessHours {
        BusinessHours { days: vec![1, 2, 3, 4, 5], start: 9, end: 17, utc_offset_minutes: 0, outside: false }
    }

    #[test]
    fn business_minutes_skip_closed_hours_and_weekends() {
        let h = weekdays_9_to_17();
        assert_eq!(add_business_minutes(at(23, 10, 0), 30, &h), at(23, 10, 30), "inside hours");
        assert_eq!(add_business_minutes(at(23, 16, 30), 60, &h), at(24, 9, 30), "over the night");
        assert_eq!(add_business_minutes(at(27, 16, 0), 120, &h), at(30, 10, 0), "Friday to Monday");
        assert_eq!(add_business_minutes(at(28, 12, 0), 10, &h), at(30, 9, 10), "opened on a Saturday");
        assert_eq!(add_business_minutes(at(23, 7, 0), 8 * 60, &h), at(23, 17, 0), "a full day");
        let cet = BusinessHours { utc_offset_minutes: 60, ..weekdays_9_to_17() };
        assert_eq!(add_business_minutes(at(23, 7, 30), 30, &cet), at(23, 8, 30), "9:00 CET is 8:00 UTC");
    }

    #[test]
    fn business_minutes_between_count_only_open_time() {
        let h = weekdays_9_to_17();
        assert_eq!(business_minutes_between(at(23, 10, 0), at(23, 11, 0), &h), 60);
        assert_eq!(business_minutes_between(at(23, 16, 0), at(24, 10, 0), &h), 120, "overnight");
        assert_eq!(business_minutes_between(at(27, 16, 0), at(30, 9, 30), &h), 90, "over a weekend");
        assert_eq!(business_minutes_between(at(28, 10, 0), at(29, 10, 0), &h), 0, "all weekend");
        let start = at(26, 15, 0);
        let due = add_business_minutes(start, 200, &h);
        assert_eq!(business_minutes_between(start, due, &h), 200, "the two agree");
    }
}

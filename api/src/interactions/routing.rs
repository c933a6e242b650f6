//! Routing rules: ordered conditions → actions, first match wins.
//!
//! A rule's `conditions` is a JSON object; every condition given must hold:
//! `channels` (any of), `visibility`, `inboxes` (any of), `keywords` (any, matched as
//! whole words, case-insensitive), `segments` (customer segment, any of),
//! `sentimentBelow` (inbound sentiment score strictly below), and `businessHours`
//! (`{"days": [1..7 Mon=1], "start": hour, "end": hour, "utcOffsetMinutes": n}`, true when
//! the event falls inside them; `"outside": true` inverts). Unknown keys make a rule
//! invalid at write time, never silently true.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use entity::enums::{Channel, Priority, Visibility};
use entity::routing_rule;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::AppResult;

/// Conditions of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<Channel>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inboxes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment_below: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_hours: Option<BusinessHours>,
}

/// Opening hours, in a fixed UTC offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BusinessHours {
    /// ISO weekdays, Monday = 1.
    pub days: Vec<u32>,
    /// First hour open (0–23).
    pub start: u32,
    /// First hour closed (1–24).
    pub end: u32,
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// Match outside these hours instead.
    #[serde(default)]
    pub outside: bool,
}

impl BusinessHours {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at + Duration::minutes(i64::from(self.utc_offset_minutes));
        let open = self.days.contains(&local.weekday().number_from_monday())
            && local.hour() >= self.start
            && local.hour() < self.end;
        open != self.outside
    }
}

/// What an event looks like to the rules.
#[derive(Debug, Clone)]
pub struct RoutingFacts<'a> {
    pub channel: Channel,
    pub visibility: Visibility,
    pub inbox: Option<&'a str>,
    pub body: Option<&'a str>,
    pub segment: Option<&'a str>,
    pub sentiment: Option<f64>,
    pub at: DateTime<Utc>,
}

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: Uuid,
    pub conditions: Conditions,
    pub team_id: Option<Uuid>,
    pub priority: Option<Priority>,
    pub tags: Vec<String>,
}

/// The decision for one event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Route {
    pub rule_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub priority: Option<Priority>,
    pub tags: Vec<String>,
}

fn has_word(text: &str, word: &str) -> bool {
    let word = word.to_lowercase();
    text.to_lowercase().split(|c: char| !c.is_alphanumeric() && c != '\'').any(|w| w == word)
        || (word.contains(' ') && text.to_lowercase().contains(&word))
}

impl Conditions {
    pub fn matches(&self, f: &RoutingFacts<'_>) -> bool {
        self.channels.as_ref().is_none_or(|c| c.contains(&f.channel))
            && self.visibility.is_none_or(|v| v == f.visibility)
            && self
                .inboxes
                .as_ref()
                .is_none_or(|i| f.inbox.is_some_and(|inbox| i.iter().any(|x| x.eq_ignore_ascii_case(inbox))))
            && self.keywords.as_ref().is_none_or(|k| f.body.is_some_and(|b| k.iter().any(|w| has_word(b, w))))
            && self.segments.as_ref().is_none_or(|s| f.segment.is_some_and(|seg| s.iter().any(|x| x == seg)))
            && self.sentiment_below.is_none_or(|t| f.sentiment.is_some_and(|s| s < t))
            && self.business_hours.as_ref().is_none_or(|h| h.contains(f.at))
    }
}

/// The enabled rules in order.
pub async fn load_rules(db: &impl ConnectionTrait) -> AppResult<Vec<Rule>> {
    let rows = routing_rule::Entity::find()
        .filter(routing_rule::Column::Enabled.eq(true))
        .order_by_asc(routing_rule::Column::Position)
        .order_by_asc(routing_rule::Column::CreatedAt)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            // A rule whose stored conditions no longer parse is skipped (and logged), never
            // treated as matching everything.
            let conditions = match serde_json::from_value::<Conditions>(r.conditions.clone()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(rule = %r.id, error = %e, "routing rule with unreadable conditions skipped");
                    return None;
                }
            };
            let tags = serde_json::from_value::<Vec<String>>(r.add_tags.clone()).unwrap_or_default();
            Some(Rule { id: r.id, conditions, team_id: r.team_id, priority: r.set_priority, tags })
        })
        .collect())
}

/// The first matching rule's actions, or the default (no team, normal priority).
pub fn route(rules: &[Rule], facts: &RoutingFacts<'_>) -> Route {
    rules
        .iter()
        .find(|r| r.conditions.matches(facts))
        .map(|r| Route { rule_id: Some(r.id), team_id: r.team_id, priority: r.priority, tags: r.tags.clone() })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn facts(body: &str) -> RoutingFacts<'_> {
        RoutingFacts {
            channel: Channel::Twitter,
            visibility: Visibility::PublicPost,
            inbox: Some("@AcmeCare"),
            body: Some(body),
            segment: Some("premium"),
            sentiment: Some(-0.6),
            at: Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).single().unwrap_or_default(),
        }
    }

    fn rule(conditions: serde_json::Value) -> Rule {
        Rule {
            id: Uuid::now_v7(),
            conditions: serde_json::from_value(conditions).unwrap_or_default(),
            team_id: Some(Uuid::now_v7()),
            priority: Some(Priority::High),
            tags: vec!["t".into()],
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let billing = rule(serde_json::json!({ "keywords": ["refund", "charged"] }));
        let social = rule(serde_json::json!({ "channels": ["twitter"], "visibility": "public_post" }));
        let rules = vec![billing.clone(), social.clone()];
        assert_eq!(route(&rules, &facts("I was charged twice")).rule_id, Some(billing.id));
        assert_eq!(route(&rules, &facts("where is my parcel")).rule_id, Some(social.id));
        assert_eq!(route(&[], &facts("x")), Route::default());
    }

    #[test]
    fn every_condition_must_hold() {
        let f = facts("parcel late");
        assert!(rule(serde_json::json!({ "segments": ["premium"], "sentimentBelow": -0.5 })).conditions.matches(&f));
        assert!(!rule(serde_json::json!({ "segments": ["premium"], "sentimentBelow": -0.7 })).conditions.matches(&f));
        assert!(!rule(serde_json::json!({ "keywords": ["par"] })).conditions.matches(&f), "whole words only");
        let monday_10 = serde_json::json!({ "businessHours": { "days": [1,2,3,4,5], "start": 9, "end": 17 } });
        assert!(rule(monday_10).conditions.matches(&f));
        let evening =
            serde_json::json!({ "businessHours": { "days": [1,2,3,4,5], "start": 9, "end": 17, "outside": true } });
        assert!(!rule(evening).conditions.matches(&f));
    }

    #[test]
    fn unknown_condition_keys_are_refused() {
        assert!(serde_json::from_value::<Conditions>(serde_json::json!({ "chanels": ["email"] })).is_err());
    }
}
